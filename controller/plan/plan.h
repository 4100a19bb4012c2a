/*
 * A validated plan: what a protocol file (DESIGN.md section 3) asks for,
 * resolved against a rig. Channels are indices into rig->channels; values are
 * in canonical units; durations are exact nanoseconds. plan.c is the protocol
 * loader that makes one (plan_load); the rig (rig.h) parses the 'limits:' of
 * both files.
 */
#ifndef PERFUSE_PLAN_H
#define PERFUSE_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/diag.h"
#include "rig.h"

#define PLAN_MAX_DEPTH 8          /* nesting of repeat inside repeat */
#define PLAN_MAX_REPEAT 1000000
#define PLAN_MAX_STEPS 10000      /* steps written in one file */
#define PLAN_DEFAULT_WAVE_HZ 10.0
#define PLAN_DEFAULT_RAMP_HZ 1.0
/* Text a run keeps whole, in bytes of UTF-8: a step's name (with its repeat
 * passes it must fit the /steps name field), a prompt (it must fit an event's
 * message after "waiting for the operator: "). Longer text is an error. */
#define PLAN_MAX_NAME 96
/* Longest step note and protocol description, in bytes (kept whole in the run file). */
#define PLAN_MAX_NOTE 1024
#define PLAN_MAX_DESCRIPTION 8192
#define PLAN_MAX_PROMPT 200

enum step_kind { STEP_SET, STEP_RAMP, STEP_WAVEFORM, STEP_WAIT, STEP_PROMPT, STEP_REPEAT };
enum wave_shape { WAVE_SINE, WAVE_SQUARE, WAVE_TRIANGLE, WAVE_PULSE };
enum cond_op { OP_LT, OP_LE, OP_GT, OP_GE, OP_EQ };
enum fault_policy { ON_FAULT_PAUSE, ON_FAULT_CONTINUE, ON_FAULT_ABORT };
enum restart_policy { ON_RESTART_RESUME, ON_RESTART_SAFE_STOP };
enum shutdown_policy { ON_SHUTDOWN_SAFE_STOP, ON_SHUTDOWN_HOLD };
enum timeout_action { TIMEOUT_ABORT, TIMEOUT_CONTINUE, TIMEOUT_PAUSE };

/* One channel's part of a set, ramp or waveform step, or of safe_state. */
struct plan_target {
    int channel;
    double v0, v1;              /* set: v0; ramp: from v0 to v1 */
    enum wave_shape shape;      /* waveform only */
    double mean, amplitude, period_s, duty;
    int line, col;
};

struct plan_step {
    enum step_kind kind;
    char *name;                 /* as written, or a generated one */
    char *note;                 /* the step's note: (NULL if none) */
    int line, col;
    int64_t duration_ns;        /* fixed part: set/ramp/waveform; repeat: count x body; else 0 */
    struct plan_target *targets;
    size_t n_targets;
    double update_hz;           /* ramp and waveform updates */
    /* wait_until */
    int cond_channel;
    enum cond_op op;
    double cond_value;
    char *cond_text;
    /* wait_until and prompt */
    int64_t timeout_ns;         /* 0: none */
    enum timeout_action on_timeout;
    char *prompt;
    /* repeat */
    uint32_t count;
    struct plan_step *steps;
    size_t n_steps;
    bool open_ended;            /* contains a wait_until or prompt */
};

struct plan {
    char *name;
    char *description;          /* description: (NULL if none) */
    char *rig_name;             /* NULL if the protocol names none */
    char *path;
    char *text;
    enum fault_policy on_fault;
    enum restart_policy on_restart;
    enum shutdown_policy on_shutdown;
    struct plan_target *safe_state;
    size_t n_safe;
    struct plan_limit *limits;
    size_t n_limits;
    struct plan_step root;      /* a repeat with count 1 holding the top-level steps */
    int64_t total_ns;           /* sum of fixed durations */
    bool open_ended;
};

/* Load and validate a protocol against rig. Every problem goes to d, with its
 * position. Returns 0 and *out, or -EINVAL. */
int plan_load(const char *path, const char *text, size_t len, const struct rig *rig,
              struct plan **out, struct diag *d);
/* Free a plan. NULL is fine. */
void plan_free(struct plan *p);

/* Waveform value of target t at time t_s into the step. */
double plan_wave_value(const struct plan_target *t, double t_s);
/* Whether value satisfies op against ref. */
bool plan_cond_holds(enum cond_op op, double value, double ref);
/* Name of an operator: "<", ">=" ... */
const char *plan_op_name(enum cond_op op);
const char *plan_step_kind_name(enum step_kind k);

#endif
