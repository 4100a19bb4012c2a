/*
 * The `history` command's reply (controller/daemon/CONTROL.md): the series
 * decimated on the loop one channel at a time (history_reply_step, between
 * the loop's other work: a copy of the points only), then written as JSON
 * text on the thread pool (history_reply_write; control_reply_off_loop).
 * Printing 64 channels of 2000 points is some 500,000 numbers; made there, it
 * costs the loop nothing.
 */
#ifndef PERFUSE_HISTORY_REPLY_H
#define PERFUSE_HISTORY_REPLY_H

#include <stddef.h>
#include <stdio.h>

#include "history.h"

#define HISTORY_DEFAULT_MINUTES 10     /* the window a history request gets by default */
#define HISTORY_DEFAULT_POINTS 600      /* and at most this many points per channel */

/* One channel of the reply. */
struct history_reply_series {
    char *name, *unit;          /* as JSON strings: quoted, escaped */
    const char *kind;           /* "measured" or "setpoint" (static text) */
    struct history_point *p;    /* room for the reply's slots; times on the samples' clock */
    size_t n;                   /* points in p */
};

/* The whole reply. Made on the loop by history_reply_new, its setters and
 * history_reply_step; then read only (history_reply_write, on any thread);
 * freed on the loop. */
struct history_reply {
    double now_s;               /* the wall clock when it was taken, Unix s */
    double minutes;             /* the window, as asked */
    double step_s;              /* the length of a slot */
    double wall_minus_clock_s;  /* added to a point's time: Unix s */
    struct history_reply_series *s;
    size_t n;
    /* What history_reply_step decimates: series from[k] of h into s[k]. */
    const struct history *h;    /* the loop's (not owned) */
    size_t *from;               /* n series of h */
    size_t next;                /* the next s[k] to decimate */
    int64_t at_ns;              /* the window ends with this clock time's second */
    unsigned seconds, slots;    /* the window, and at most this many slots */
};

/* A reply of n series of h over the window of seconds ending at at_ns, with
 * at most slots points each, or NULL (out of memory). Owned by the caller:
 * history_reply_free. Set from[k], the series of h that s[k] shows. */
struct history_reply *history_reply_new(const struct history *h, size_t n, int64_t at_ns,
                                        unsigned seconds, unsigned slots);
/* Decimate the next series of reply arg; 1 while more are left, else 0.
 * Loop thread (it reads the history); some 60 us per series at 2000 points. */
int history_reply_step(void *arg);
/* Name series k (name and unit are copied as JSON strings). 0 or -ENOMEM. */
int history_reply_name(struct history_reply *r, size_t k, const char *name, const char *unit,
                       const char *kind);
/* Write reply arg (a struct history_reply) as the result's JSON object to out:
 * {"now", "minutes", "step_s", "channels": {NAME: {"unit", "kind", "t", "v",
 * "min", "max"}}}, null for a slot whose readings all failed. 0 or -EIO.
 * Any thread (a control_write_fn). */
int history_reply_write(void *arg, FILE *out);
/* Free reply arg. NULL is fine. */
void history_reply_free(void *arg);

#endif
