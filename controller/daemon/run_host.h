/*
 * What a run gets from the program that hosts it (the daemon, or a test):
 * the loop, the clock, the rig, the data directory and the journal writer,
 * the lower-layer state it shares with its host (limits, alarms, held safe
 * states, syringes, command timing), and hooks for everything that belongs to
 * the host: commanding an output, the safe state, alerts, alarms, why a plan
 * cannot start, and the end of the run's file.
 *
 * A run copies its host when it starts; what the pointers point to must
 * outlive the run. Every hook is required (except where it says optional) and is called on
 * the loop thread.
 */
#ifndef PERFUSE_RUN_HOST_H
#define PERFUSE_RUN_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "journal.h"
#include "plan/plan.h"
#include "plan/rig.h"
#include "run/clock.h"

struct run;
struct interlocks;
struct alarms;
struct latch;
struct delivery;
struct latency;

struct run_host {
    uv_loop_t *loop;            /* the run's recorder notifications and timers */
    struct pclock *clock;
    const struct rig *rig;
    const char *data_dir;       /* where run files go (created 0750 if missing) */
    const char *host_name;      /* recorded in the run file */
    const char *run_name;       /* the run's name among runs at once (kept in its journal); NULL: none */
    struct journal_writer *journal;     /* the run journal, for a restart */
    struct interlocks *il;      /* the run's limits are set here for its duration */
    const struct alarms *alarms;    /* read to name the alarm that holds a channel */
    const struct latch *latch;  /* channels held in their safe state refuse a run that sets them */
    struct delivery *dl;        /* syringe levels, started and stopped with the run */
    struct latency *dispatch;   /* planned time to the runner's command, reset at each start */
    struct latency *wire;       /* planned time to the first byte on the line, reset at each start */
    /* Each such command's transaction on the line, and the part of wire the
     * bus's scheduling added; reset at each start; NULL: not kept. */
    struct latency *wire_txn, *wire_sched;
    /* Per rig channel, the actuators this run claims (plan/claims.h), whose
     * syringes it follows; NULL: every one (the run is alone on the rig). */
    const bool *claimed;
    /* Whether another run is going beside this one (then the timing above is
     * shared and not reset at this run's start). NULL: never. */
    bool (*others)(void *ctx);

    void *ctx;                  /* given to every hook */
    /* Command channel to value for the protocol, planned for planned_ns
     * (clock time). 0, or why it was refused: -EACCES held in its safe state
     * by a tripped limit, -EPERM not writable, -EINVAL no such channel. */
    int (*write)(void *ctx, int channel, double value, int64_t planned_ns);
    /* Put the rig in its safe state: targets first, then every other
     * device's own safe action; latched until confirmed or released. */
    void (*safe_state)(void *ctx, const struct plan_target *targets, size_t n);
    /* Whether the safe state last requested is confirmed by every device. */
    bool (*safe_confirmed)(void *ctx);
    /* A new run starts: the latched safe state of the last one ends. */
    void (*release_safe)(void *ctx);
    /* The value a writable channel is commanded to now (NaN: none). */
    double (*setpoint)(void *ctx, int channel);
    /* Why plan cannot run now, one reason a line in buf; the number of reasons. */
    int (*blockers)(void *ctx, const struct plan *plan, char *buf, size_t len);
    /* An alert (kind: prompt, run_end, restart) about run r. */
    void (*alert)(void *ctx, const struct run *r, const char *kind, const char *severity,
                  const char *source, const char *code, const char *message);
    /* Raise (raise true) or clear the alarm source/code that run r has, with message. */
    void (*alarm)(void *ctx, const struct run *r, bool raise, const char *severity,
                  const char *source, const char *code, const char *message);
    /* Run r's file is closed (the hook must not free r). */
    void (*closed)(void *ctx, struct run *r);
    /* The run paused (paused true) or resumed at now: the host's regulators hold or go on.
     * Optional (NULL: nothing to do). */
    void (*paused)(void *ctx, bool paused, int64_t now);
};

#endif
