/*
 * A rig's regulators on a clock: each regulator (regulator.h) ticks at its
 * rate on a timer of the clock (real in perfused, virtual in perfusectl
 * simulate), takes the samples of its measured channel and the setpoints
 * written to it, and drives its actuator through hooks. It knows nothing of
 * buses, files or clients.
 *
 * A regulator starts (bumplessly, from the actuator's output in force) at the
 * first setpoint written to its channel, and stops at regloop_stop, which
 * sends each actuator it drove to the regulator's safe_output.
 *
 * Loop thread only. regloop_init allocates; regloop_free releases.
 */
#ifndef PERFUSE_REGLOOP_H
#define PERFUSE_REGLOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "autotune.h"
#include "clock.h"
#include "regulator.h"
#include "plan/rig.h"

struct regloop_hooks {
    void *ctx;
    /* Command actuator channel ch to out. Required. */
    void (*write)(void *ctx, int ch, double out, int64_t t_ns);
    /* What regulator k computed in a tick, for the run file. Optional. */
    void (*terms)(void *ctx, size_t k, const struct reg_terms *terms, int64_t t_ns);
    /* A fault of regulator k began or ended (regulator.h). Optional. */
    void (*fault)(void *ctx, size_t k, enum reg_fault f, bool active, const char *msg, int64_t t_ns);
};

struct regloop_entry {
    struct regloop *loop;
    size_t k;
    struct regulator reg;
    struct ptimer timer;
    int64_t period_ns, next_ns;
    bool running;
    /* A relay autotune (perfusectl tune) drives the actuator instead while tuning. */
    bool tuning, tuned;                 /* tuned: at holds a finished test (done or failed) */
    struct autotune at;
    int64_t tune_t0, tune_t1;
};

struct regloop {
    const struct rig *rig;              /* borrowed */
    struct pclock *clk;
    struct regloop_hooks hooks;
    struct regloop_entry *e;
    size_t n;
    double *out_in_force;               /* per rig channel: the last output commanded (NaN: unknown) */
};

/* One entry per rig regulator, all stopped. Returns 0 or -ENOMEM. */
int regloop_init(struct regloop *l, const struct rig *rig, struct pclock *clk,
                 const struct regloop_hooks *hooks);
void regloop_free(struct regloop *l);
/* A setpoint for channel ch: true if ch is regulated (the regulator starts if it was not
 * running); false if not, and nothing is done. */
bool regloop_setpoint(struct regloop *l, int ch, double v, int64_t t_ns);
/* A manual setpoint of actuator channel ch: its running regulator goes to manual (holding
 * that output) until its channel gets a setpoint again (then back to auto, bumplessly). */
void regloop_manual(struct regloop *l, int ch, double v, int64_t t_ns);
/* A sample (NaN allowed) of channel ch. */
void regloop_on_sample(struct regloop *l, int ch, double v, int64_t t_ns);
/* An actuator channel was commanded by someone else (manual set, safe state): remember it. */
void regloop_on_output(struct regloop *l, int ch, double v);
/* Pause every running regulator (outputs held) / resume them bumplessly, also one set to
 * manual during the pause (from its manual output). */
void regloop_pause(struct regloop *l);
void regloop_resume(struct regloop *l, int64_t t_ns);
/* Stop every regulator; with send, each actuator a running one drove is sent its safe_output
 * (without, the caller latches its own safe state). */
void regloop_stop(struct regloop *l, bool send);
/* The same for regulator k alone (with several runs: the regulators of one run). */
void regloop_pause_one(struct regloop *l, size_t k);
void regloop_resume_one(struct regloop *l, size_t k, int64_t t_ns);
void regloop_stop_one(struct regloop *l, size_t k, bool send);
/* Start a relay autotune of regulator k (run/autotune.h) within its output limits, from the
 * output in force. Only while the regulator is not regulating (stopped, or held by a paused
 * run); the test gives the actuator back at the output it started from. Returns 0, or
 * -EBUSY (it regulates, or a test runs) / -EINVAL with why in err. */
int regloop_tune_start(struct regloop *l, size_t k, int64_t t_ns, char *err, size_t len);
/* Regulator k's entry, or NULL. */
const struct regloop_entry *regloop_get(const struct regloop *l, size_t k);

#endif
