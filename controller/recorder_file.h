/*
 * The run file itself: the HDF5 layout of DESIGN.md section 5, appends,
 * flushes and the final close. Private to the recorder (recorder.c is the
 * only user; recorder_recover.c shares the lock and the names).
 *
 * Threading: HDF5 here is the serial build, which is not thread-safe, so
 * every function below takes one process-wide lock around its HDF5 calls.
 * A recorder_file is owned by one recorder thread; only that thread may
 * call the functions that take it.
 */
#ifndef PERFUSE_RECORDER_FILE_H
#define PERFUSE_RECORDER_FILE_H

#include "recorder.h"

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

/* Fixed string lengths in the file, NUL included (the last byte is always NUL). */
#define REC_STATE_LEN 16
#define REC_EV_SEVERITY 8
#define REC_EV_SOURCE 32
#define REC_EV_CODE 32
#define REC_EV_MESSAGE 256

/* Rows per chunk. 1024 float64 rows = 8 KiB, about 100 s at 10 Hz: a
 * partly filled chunk is rewritten at each flush, so small chunks keep that
 * cheap; the index stays small enough for week-long runs (12 k chunks/week). */
#define REC_SERIES_CHUNK 1024
#define REC_EVENT_CHUNK 256
#define REC_STEP_CHUNK 256

/* One /events row, in memory exactly as in the file (a compound). */
struct rec_event_row {
    double time;
    char severity[REC_EV_SEVERITY];
    char source[REC_EV_SOURCE];
    char code[REC_EV_CODE];
    char message[REC_EV_MESSAGE];
};

/* One /steps row, in memory exactly as in the file (a compound). */
struct rec_step_row {
    int32_t index;
    char path[32];
    char name[64];
    double planned_start;
    double start;
    double end;
    char outcome[16];
};

struct recorder_file;

/*
 * Create info->path (it must not exist), lay out every group, dataset and
 * attribute, then start SWMR writing. On success *out is owned by the caller
 * and freed by recorder_file_close. On failure nothing is left open, err says
 * why, and a half-made file may remain on disk (it is never a valid run file).
 */
int recorder_file_create(struct recorder_file **out, const struct rec_run_info *info,
                         char *err, size_t errlen);

/* Append n rows to series s (channels first, then setpoints). The rows count
 * as written only after the next successful flush. */
int recorder_file_append_series(struct recorder_file *f, size_t s, const double *t,
                                const double *v, size_t n, char *err, size_t errlen);
/* Append n rows to /events. */
int recorder_file_append_events(struct recorder_file *f, const struct rec_event_row *rows,
                                size_t n, char *err, size_t errlen);
/* Write one /steps row at its index, growing the table if the index is new. */
int recorder_file_write_step(struct recorder_file *f, const struct rec_step_row *row,
                             char *err, size_t errlen);
/* Flush HDF5's caches to the file so SWMR readers see everything appended. */
int recorder_file_flush(struct recorder_file *f, char *err, size_t errlen);
/* fsync the file: HDF5 itself never does, so a power cut loses what is only
 * in the page cache. Costs one disk round trip (ms on SSD, more on SD cards). */
int recorder_file_fsync(struct recorder_file *f, char *err, size_t errlen);

/*
 * End SWMR by closing the file, reopen it plainly, set /@state to
 * final_state, add /@end_time (wall clock now), close and fsync. Frees f
 * whatever happens; returns 0 or the first error.
 */
int recorder_file_close(struct recorder_file *f, const char *final_state, char *err, size_t errlen);

/* The process-wide lock around HDF5 calls, for recorder_recover.c. */
void recorder_file_lock(void);
void recorder_file_unlock(void);
/* Describe the innermost HDF5 error on the current error stack as "what: detail". */
void recorder_file_error(char *err, size_t errlen, const char *what);
/* Write a fixed-length string attribute of exactly len bytes (NUL padded) on loc. */
int recorder_file_attr_str(hid_t loc, const char *name, const char *value, size_t len);
/* Read a string attribute of loc into buf (NUL terminated); 0 or -ENOENT/-EIO. */
int recorder_file_attr_read(hid_t loc, const char *name, char *buf, size_t len);

#endif
