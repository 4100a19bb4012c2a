/*
 * Latched interlocks. When a safe-stop limit trips, the actuators its safe
 * state put down are held there until the limit's alarm is acknowledged and
 * its condition has cleared (DESIGN.md section 9). Meanwhile a manual set or
 * a run that would move a held actuator is refused, naming the alarm.
 *
 * A hold is tied to one alarm id: it is released when that alarm is both
 * acknowledged and cleared (or no longer listed). The daemon asks for that
 * to be checked on every alarm transition (latch_update). The holds are kept
 * in the data directory (latchfile.h), so that a restart holds them again.
 *
 * Loop thread only. Memory: the latch owns its holds; latch_free frees them.
 */
#ifndef PERFUSE_LATCH_H
#define PERFUSE_LATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alarms.h"
#include "plan/plan.h"
#include "plan/rig.h"

/* Where a hold comes from: what a restart needs to hold the same channels
 * again and to tell when the condition has cleared (latchfile.h). */
struct latch_origin {
    struct plan_limit lim;      /* the limit that tripped; lim.channel -1: none (a
                                 * hold released by acknowledgement alone) */
    bool from_rig;              /* a rig limit, else a protocol's */
    char side;                  /* '>' above its max, '<' below its min */
    int64_t tripped_wall_ns;    /* CLOCK_REALTIME of the trip */
};

struct latch_hold {
    uint32_t alarm;             /* the alarm that holds the channels */
    char cause[160];            /* "chip1.pressure above its max 40 mbar" */
    char channel[72];           /* the limit's channel, "chip1.pressure" ("": none) */
    bool *held;                 /* per rig channel; owned */
    double *safe;               /* per rig channel: the value its safe state wrote, NaN
                                 * for the device's own safe action; owned */
    struct latch_origin origin;
};

struct latch {
    struct latch_hold *v;
    size_t n, cap;
    size_t n_channels;          /* of the rig */
};

/* Start with nothing held, for a rig of n_channels channels. */
void latch_init(struct latch *l, size_t n_channels);
void latch_free(struct latch *l);

/* Hold the channels marked in held (n_channels entries, copied) until alarm
 * is acknowledged and clear. cause and channel say why, for refusals.
 * Returns 0 or -ENOMEM (then nothing is held: the caller says so). */
int latch_add(struct latch *l, uint32_t alarm, const char *cause, const char *channel,
              const bool *held);

/* The same, with where the hold comes from and the values its safe state
 * wrote (safe, n_safe: the plan's safe_state targets, v0 each; NULL, 0: every
 * held channel had its device's own safe action), so that it can be kept
 * across a restart. origin NULL: none. Returns 0 or -ENOMEM. */
int latch_add_origin(struct latch *l, uint32_t alarm, const char *cause, const char *channel,
                     const bool *held, const struct plan_target *safe, size_t n_safe,
                     const struct latch_origin *origin);

/* The hold on a rig channel, or NULL if it is free. */
const struct latch_hold *latch_holder(const struct latch *l, int channel);

/* Release every hold whose alarm is acknowledged and clear (or gone);
 * released (may be NULL) is told of each first. Returns how many. */
size_t latch_update(struct latch *l, const struct alarms *a,
                    void (*released)(void *ctx, const struct latch_hold *h), void *ctx);

/* Why a write to channel name is refused by hold h, with what to do about it:
 * "pump1.flow is held in its safe state by alarm 3 (chip1.pressure above its
 * max 40 mbar); acknowledge it with `perfusectl ack 3` once chip1.pressure is
 * back within its limit". A hold with no limit channel is released by the
 * acknowledgement alone, and says so. */
void latch_refusal(const struct latch_hold *h, const struct alarms *a, const char *name, char *buf,
                   size_t len);

/* Mark in held (rig->n_channels entries) the actuators a safe state puts
 * down: every writable channel if every, else the targets' channels and the
 * writable channels of each device not among them whose driver has its own
 * safe action (as daemon_safe_state applies them). */
void latch_safe_channels(const struct rig *rig, const struct plan_target *targets, size_t n,
                         bool every, bool *held);

/* Mark in writes (rig->n_channels entries) every channel the plan's steps write. */
void latch_plan_writes(const struct plan *p, size_t n_channels, bool *writes);

#endif
