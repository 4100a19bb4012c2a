/*
 * Reading a run file's /events back: the history a run continued after a
 * restart shows in `events`, not only what happened since. Called before the
 * run's recorder opens the file (on the thread that continues the run).
 */
#ifndef PERFUSE_EVENTLOG_H
#define PERFUSE_EVENTLOG_H

#include <stddef.h>
#include <stdint.h>

/* One row of /events, as text. */
struct eventlog_row {
    double time;                  /* seconds since the run's start */
    char severity[8], source[72], code[32], message[256];
};

/* Call row(ctx, seq, e) for the last at most max rows of path's /events,
 * oldest first (seq: the row's index in the file). *total gets the number of
 * rows in the file. Returns 0, or a negative errno if the file or its /events
 * cannot be read (a message in err). */
int eventlog_read(const char *path, size_t max, uint64_t *total,
                  void (*row)(void *ctx, uint64_t seq, const struct eventlog_row *e), void *ctx,
                  char *err, size_t errlen);

#endif
