/*
 * Plausibility: whether a measured channel's sample can be believed. A NaN,
 * a value outside the channel's physical range, the same value for too long
 * (stuck) or no valid sample for too long (lost) is a fault of the channel.
 * While a channel is faulted its value is unknown (NaN) to limits and to
 * wait_until conditions: a dead sensor is never taken as a number.
 *
 * Loop thread only.
 */
#ifndef PERFUSE_PLAUSIBILITY_H
#define PERFUSE_PLAUSIBILITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum plaus_kind { PF_NAN, PF_RANGE, PF_STUCK, PF_LOST, PF_KINDS };

struct plaus_chan {
    /* configuration */
    bool on;                    /* a measured channel */
    double min, max;            /* physical range; NaN: none */
    int64_t stuck_ns;           /* 0: not checked */
    int64_t lost_ns;            /* 0: not checked */
    /* state */
    double last;                /* last valid value (NaN: none yet) */
    int64_t last_change_ns, last_valid_ns;
    unsigned active;            /* bit per enum plaus_kind */
};

struct plaus_hooks {
    void *ctx;
    /* A fault of channel ch began (active) or ended; value is the sample that did it
     * (NaN for lost). */
    void (*change)(void *ctx, int ch, enum plaus_kind kind, bool active, double value, int64_t t_ns);
};

struct plausibility {
    struct plaus_chan *c;
    size_t n;
    struct plaus_hooks hooks;
};

/* n channels, all off until configured; t0 starts every lost timer. 0 or -ENOMEM. */
int plaus_init(struct plausibility *p, size_t n, int64_t t0_ns, const struct plaus_hooks *hooks);
void plaus_free(struct plausibility *p);
/* Judge a delivered sample v (NaN allowed) of channel ch at t. Returns the value
 * control may use: v, or NaN while the channel is faulted. *record is what the
 * run file gets: v, except NaN for a NaN or an out-of-range value. */
double plaus_sample(struct plausibility *p, int ch, double v, int64_t t_ns, double *record);
/* Check every channel for a lost sensor at now. */
void plaus_tick(struct plausibility *p, int64_t now_ns);
/* "nan", "range", "stuck", "lost". */
const char *plaus_kind_name(enum plaus_kind k);

#endif
