/*
 * The last hour of every rig channel, kept in memory so that a page opening
 * on the rig can draw full plots at once (the `history` command,
 * controller/daemon/CONTROL.md). The run file stays the record: this is a
 * view of it for eyes, rig-wide, runs or not.
 *
 * Each series is a ring of HISTORY_SECONDS buckets of one second (of the
 * monotonic clock the samples carry): the sum, count, min and max of the
 * valid readings in that second, and the count of failed ones (NaN, as the
 * run file records a failed or implausible reading). A series is one of:
 *  - sampled (a measurement): each reading goes into its second's bucket; a
 *    second without readings stays empty;
 *  - held (an actuator's confirmed value): a value holds from when it is given
 *    until the next one, so every second it holds counts it once; NaN (not
 *    confirmed, e.g. the device is out of reach) holds like a failed reading.
 *
 * Memory: fixed at history_init, never grown: HISTORY_SECONDS buckets of
 * sizeof(struct history_bucket) = 32 bytes, 115,200 bytes (112.5 KiB) per
 * series, plus 40 bytes of header; 64 channels take 7.0 MiB.
 * Cost: history_add and history_hold are O(1), except that moving on past
 * seconds without readings clears (or, held, fills) their buckets: at most
 * HISTORY_SECONDS writes at once, amortised O(1). history_decimate reads each
 * second of its window once, O(window) (3600 buckets at most).
 * Loop thread only (or a test); no I/O, no clock of its own.
 */
#ifndef PERFUSE_HISTORY_H
#define PERFUSE_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HISTORY_SECONDS 3600        /* the ring: one hour of one-second buckets */

/* One second of a series. */
struct history_bucket {
    double sum, min, max;           /* of the valid readings (n of them) */
    uint32_t n;                     /* valid readings */
    uint32_t failed;                /* failed readings (NaN, or not finite) */
};

/* One series. */
struct history_series {
    struct history_bucket *b;       /* HISTORY_SECONDS; second s is b[s % HISTORY_SECONDS] */
    int64_t last;                   /* the latest second written, -1: none yet */
    bool held;                      /* a held series (see above) */
    bool holding;                   /* held: a value was given */
    double hold;                    /* held: the value given last (NaN: not confirmed) */
};

/* Every series of the rig. Owned by its creator: history_init, history_free. */
struct history {
    struct history_series *s;
    size_t n;
};

/* One slot of a decimated series. */
struct history_point {
    double t_s;                     /* the middle of the slot, seconds of the samples' clock */
    double mean, min, max;          /* of the slot's valid readings; NaN: they all failed */
};

/* Set up n series, series i held if held[i] (held may be NULL: none). Returns
 * 0 or -ENOMEM (then nothing is allocated). */
int history_init(struct history *h, size_t n, const bool *held);
/* Free what history_init allocated. A zeroed history is fine. */
void history_free(struct history *h);
/* A reading of sampled series i at clock time t_ns (NaN: failed). Ignored for a
 * held series, an unknown series, and a reading older than the ring. */
void history_add(struct history *h, size_t i, double v, int64_t t_ns);
/* Held series i holds v from clock time t_ns on (NaN: not confirmed). Ignored
 * for a sampled or unknown series. A time before the latest second written
 * counts as that second. */
void history_hold(struct history *h, size_t i, double v, int64_t t_ns);
/* Series i over the window of `seconds` seconds (1 to HISTORY_SECONDS) that
 * ends with the second of now_ns, cut into min(slots, seconds) slots of equal
 * length (to a second): writes to out, oldest first, each slot that had a
 * reading (a slot whose readings all failed has NaN values; a slot without
 * any reading is left out), and returns how many. out has room for
 * min(slots, seconds) points. */
size_t history_decimate(const struct history *h, size_t i, int64_t now_ns, unsigned seconds,
                        unsigned slots, struct history_point *out);

#endif
