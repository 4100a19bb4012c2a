/*
 * The run journal: where a run is, in a small file rewritten atomically
 * (write to a temporary file, fsync, rename, fsync the directory) at every
 * transition, so that after kill -9 or a power cut the daemon can continue
 * the run (DESIGN.md section 6).
 *
 * Encoding and decoding are pure; journal_write_sync blocks and runs on the
 * worker threads (base/workpool.h) through the writer, never on the loop thread.
 */
#ifndef PERFUSE_JOURNAL_H
#define PERFUSE_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "base/workpool.h"
#include "run/runner.h"

#define JOURNAL_NAME "run.journal"
#define JOURNAL_MAX_BYTES (16 << 20)     /* a protocol of 64 KiB and its state fit many times */
#define JOURNAL_VERSION 2           /* 2: with the rig's and the protocol's hashes */
#define JOURNAL_MAX_SETPOINTS 64
#define JOURNAL_MAX_FILLS 16

struct journal_rec {
    char run_id[33];
    char file[4096];                /* the run's HDF5 file */
    int64_t start_wall_ns;          /* CLOCK_REALTIME of t = 0 */
    int64_t written_wall_ns;        /* CLOCK_REALTIME when it was written: the run was alive then
                                     * (absent from older journals: 0) */
    char rig_name[64];
    char operator_name[96];
    char run_name[33];              /* the run's name among runs at once (absent from older journals: "") */
    char *protocol_path;            /* owned */
    char *protocol_text;            /* owned */
    /* What the run was started with, checked before the journal is used
     * (journal_check.h): hex SHA-256 of the rig file's text (as /rig@sha256),
     * the rig's digest without its bus endpoints (rigdigest.h), and the
     * protocol's text (as /protocol@sha256). */
    char rig_sha256[65], rig_digest[65], protocol_sha256[65];
    struct runner_pos pos;
    size_t n_setpoints;
    struct { char channel[72]; double value; } setpoints[JOURNAL_MAX_SETPOINTS];
    /* Manual overrides made in a pause (absent from older journals: none). */
    size_t n_overrides;
    size_t overrides_skipped;       /* entries that could not be read (malformed) */
    struct journal_override {
        char channel[72];
        double value;               /* the manual value */
        double protocol;            /* the protocol's value it replaces (NaN: none) */
        char by[96];
        int64_t since_wall_ns;
    } overrides[JOURNAL_MAX_SETPOINTS];
    /* Syringe pumps' fill levels (absent from older journals: unknown after a restart). */
    size_t n_fills;
    size_t fills_skipped;           /* entries that could not be read (malformed) */
    struct journal_fill {
        char pump[64];
        double fill_ul;             /* NaN: unknown */
        double counter_ul;          /* the pump's counter reading fill_ul was computed at */
        double fill0_ul;            /* the level at the run's start (NaN: unknown) */
        char source[16];            /* of fill0_ul: "given", "assumed full" or "unknown" */
    } fills[JOURNAL_MAX_FILLS];
};

/* Encode as JSON text (malloc'd). Returns 0 or -ENOMEM. */
int journal_encode(const struct journal_rec *j, char **text);
/* Decode JSON text; 0, or -EINVAL with a message in err naming what is wrong
 * (not JSON, another version, a missing or mistyped member). Only the form is
 * checked here; whether the journal fits this rig and its protocol, and its
 * times are sane, is journal_validate's (journal_check.h). Free with
 * journal_rec_free, also after an error. */
int journal_decode(const char *text, size_t len, struct journal_rec *j, char *err, size_t errlen);
void journal_rec_free(struct journal_rec *j);

/* Replace name's content in the directory dir_fd atomically and durably: a
 * temporary file name.tmp is created with O_EXCL | O_NOFOLLOW (anything at
 * that name is unlinked first, never followed), mode 0640, fsynced, renamed
 * over name, and the directory fsynced. Blocking. 0 or a negative errno. */
int journal_write_at(int dir_fd, const char *name, const char *text);
/* Read name in the directory dir_fd: never through a symbolic link (-ELOOP),
 * only a regular file (-EINVAL) of at most max bytes (-EFBIG).
 * -ENOENT: there is none. Blocking (a small local file, at start-up).
 * 0 and *text (malloc'd, NUL-terminated), *len; or a negative errno. */
int journal_read_at(int dir_fd, const char *name, size_t max, char **text, size_t *len);
/* The same for a path (its directory is opened for the call). */
int journal_write_sync(const char *path, const char *text);

/* Writes journal texts on the thread pool in order, keeping only the newest
 * when writes come faster than the disk; or removes the file. Loop thread.
 * The same writer keeps other small state files of the data directory
 * (journal_writer_init_file). */
struct journal_writer {
    uv_loop_t *loop;
    char path[4096];
    char name[64];                  /* the file's name in the directory */
    const char *loss;               /* what a failed write costs, for the log */
    int dir_fd;                     /* the data directory, open while the writer lives */
    int dir_error;                  /* why it could not be opened */
    char *pending;                  /* the next text to write; NULL: nothing */
    bool remove_pending;
    bool busy;
    struct workpool_req work;
    char *writing;                  /* the text the thread pool is writing (NULL: remove) */
    int last_error;                 /* of the last write, 0 if it worked */
    /* Told the outcome of every write or removal (0 or a negative errno), on
     * the loop thread; NULL: only logged. */
    void (*result)(void *ctx, const char *path, int err);
    void *result_ctx;
};

void journal_writer_init(struct journal_writer *w, uv_loop_t *loop, const char *dir);
/* The journal file of the k-th of several runs at once: JOURNAL_NAME for
 * k = 0 (as with one run), "run-K.journal" for the others. */
void journal_slot_name(size_t k, char *buf, size_t len);
/* The same for the file name in dir; loss (static) says what a failed write
 * costs, for the log ("a restart could not continue the run from here"). */
void journal_writer_init_file(struct journal_writer *w, uv_loop_t *loop, const char *dir,
                              const char *name, const char *loss);
/* Queue text (stolen) to be written. */
void journal_writer_put(struct journal_writer *w, char *text);
/* Queue the removal of the journal (the run ended). */
void journal_writer_remove(struct journal_writer *w);
/* Free what is queued; the loop must have finished any write in flight. */
void journal_writer_free(struct journal_writer *w);

#endif
