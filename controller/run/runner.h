/*
 * The runner: turns a plan into setpoint commands at absolute deadlines.
 *
 * Every step's deadline is computed from the run's start: start + shift +
 * (sum of the fixed durations before it). shift grows only by what waits,
 * prompts and pauses actually took. Ramp and waveform values are computed
 * from the deadline of each update, never accumulated. The runner knows
 * nothing of wire formats, buses or files: it talks through hooks.
 *
 * Loop thread only (or the simulation's thread, with a virtual clock).
 */
#ifndef PERFUSE_RUNNER_H
#define PERFUSE_RUNNER_H

#include <stdbool.h>
#include <stdint.h>

#include "clock.h"
#include "plan/plan.h"
#include "record/recorder.h"

enum run_state { RUN_IDLE, RUN_LOADED, RUN_RUNNING, RUN_PAUSED, RUN_COMPLETED, RUN_ABORTED,
                 RUN_FAULTED };

const char *run_state_name(enum run_state s);
/* The outcome a run file's /@state and a step's outcome record for a run that
 * ended in state s: "completed", "faulted" (a safety action, on_fault: abort),
 * "paused" (only an offline simulation ends so), otherwise "aborted". */
const char *run_outcome_name(enum run_state s);

/* On the real clock, ramp and waveform updates are handed to write()
 * this long before their deadline (planned_ns), so that the bus can send them
 * on time and keep reads out of their way. Step starts are not: they follow
 * the step's own timer. */
#define RUNNER_LEAD_NS (50 * 1000000LL)

/* What the runner asks of its owner. All called on the runner's thread. */
struct runner_hooks {
    void *ctx;
    /* Command channel to value, planned for time planned_ns (clock time). */
    void (*write)(void *ctx, int channel, double value, int64_t planned_ns);
    /* Put the rig in the plan's safe state (abort, completion). */
    void (*safe_state)(void *ctx);
    /* An event for /events; now is clock time. */
    void (*event)(void *ctx, int64_t now, const char *severity, const char *code,
                  const char *message);
    /* A /steps row (times already in seconds since the run's start). */
    void (*step)(void *ctx, const struct rec_step *row);
    /* The run reached a final state (completed, aborted, faulted). */
    void (*finished)(void *ctx, enum run_state final);
};

struct runner_status {
    enum run_state state;
    char step_path[32];
    char step_name[REC_STEP_NAME];
    const char *step_kind;
    int64_t step_elapsed_ns, step_duration_ns;  /* duration 0: open-ended */
    int64_t run_elapsed_ns;                     /* protocol time, pauses excluded */
    int64_t planned_total_ns;
    int64_t shift_ns;                           /* how much waits and pauses added */
    bool waiting_prompt;
    bool prompt_answered;                       /* confirmed while paused: goes on when resumed */
    const char *prompt;
    const char *step_note;                      /* the step's note: (NULL if none) */
    int step_index;
    int64_t extend_ns;                          /* what `extend` added to the step */
    int64_t timeout_ns;                         /* a wait's or prompt's timeout, extended; 0: none */
    const char *pause_reason;                   /* why it is paused (NULL unless paused) */
    const char *cond_text;                      /* a wait_until's condition, or NULL */
    int cond_channel;                           /* its rig channel (-1: none) */
    double cond_value;                          /* the value it compares with */
};

/* Where a run is, for the run journal: enough to continue it after a restart.
 * Times are relative to the run's t = 0. */
struct runner_pos {
    int depth;
    uint32_t idx[PLAN_MAX_DEPTH + 1];   /* per level: the step being run (0-based) */
    uint32_t iter[PLAN_MAX_DEPTH + 1];  /* per level: the repeat pass (0-based) */
    int64_t shift_ns, plan_pos_ns, step_start_ns;
    int step_index;                     /* its /steps row */
    double row_planned_start, row_start;
    bool paused;
    int64_t pause_ns;                   /* when the pause began */
    int64_t extend_ns;                  /* what `extend` added to the step */
};

struct runner;

/* Create a runner for plan on clock. plan and rig must outlive it. */
int runner_create(struct runner **out, const struct plan *plan, const struct rig *rig,
                  struct pclock *clk, const struct runner_hooks *hooks);
/* Start at clock time start_ns (t = 0 of the run). */
int runner_start(struct runner *r, int64_t start_ns);
/* Freeze the protocol clock, holding setpoints (waveforms hold their mean). */
int runner_pause(struct runner *r, const char *reason);
/* Continue, shifting the rest of the plan by the pause's length. */
int runner_resume(struct runner *r, const char *reason);
/* Stop the run and apply the safe state. */
int runner_abort(struct runner *r, const char *reason);
/* A device failed: stop the run as faulted and apply the safe state. */
int runner_fault(struct runner *r, const char *reason);
/* Answer the pending prompt; in a paused run the run goes on past it when
 * resumed. Returns -ENOENT if none is pending. */
int runner_confirm(struct runner *r, const char *who);
/* End the current step now and go on with the next (recorded as "skipped",
 * with who). A fixed step's unused time comes off the rest of the plan.
 * Returns -EAGAIN while paused (resume first), -ENOENT with no step running. */
int runner_next(struct runner *r, const char *who);
/* Make the current step ns longer (a wait's or prompt's timeout; a ramp holds
 * its end value, a waveform goes on); the rest of the plan moves by as much.
 * Running or paused. Returns -EINVAL for ns <= 0 or a wait or prompt with no
 * timeout, -ENOENT with no step running. */
int runner_extend(struct runner *r, int64_t ns, const char *who);
/* A new valid sample of channel (for wait_until). */
void runner_on_sample(struct runner *r, int channel, double value, int64_t t);
/* Where the run is; false if it is not running or paused on a step. */
bool runner_get_pos(const struct runner *r, struct runner_pos *pos);
/* Continue a run from pos after a restart: start_ns is t = 0 on this clock and
 * gap_ns the downtime, which shifts the rest of the plan like a pause (a wait
 * or prompt counts it as waiting time). Setpoints are applied again, a ramp or
 * waveform goes on from where it was, a prompt is asked again. A run that was
 * paused stays paused, and its owner restores the setpoints it held. Returns
 * -EINVAL if pos does not fit the plan. */
int runner_start_at(struct runner *r, int64_t start_ns, const struct runner_pos *pos, int64_t gap_ns);
/* Fill *st. */
void runner_get_status(struct runner *r, struct runner_status *st);
/* Stop timers and free; done (may be NULL) runs when the memory is released. */
void runner_free(struct runner *r);

#endif
