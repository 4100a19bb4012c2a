/* The runner: a plan executed at absolute deadlines, with pause, resume, abort. */
#include "runner.h"
#include "base/timeutil.h"
#include "base/utf8.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One level of the cursor: which step of which list, and which repeat pass. */
struct frame {
    const struct plan_step *parent;     /* a repeat (or the root) */
    size_t idx;
    uint32_t iter;
};

struct runner {
    const struct plan *plan;
    const struct rig *rig;
    struct pclock *clk;
    struct runner_hooks hooks;
    enum run_state state;

    struct ptimer step_timer;           /* step end or wait/prompt timeout */
    struct ptimer update_timer;         /* ramp and waveform updates */
    int closing;                        /* timers still closing */

    struct frame stack[PLAN_MAX_DEPTH + 1];
    int depth;
    const struct plan_step *cur;        /* the leaf step running now */

    int64_t start_ns;                   /* t = 0 */
    int64_t shift_ns;                   /* added by waits, prompts, pauses */
    int64_t plan_pos_ns;                /* fixed durations before the current step */
    int64_t step_start_ns;              /* the current step's (shifted) deadline */
    int64_t step_actual_ns;             /* when it really started */
    int64_t pause_ns;                   /* when the current pause began */
    int64_t extend_ns;                  /* added to the current step by `extend` */
    char pause_reason[256];             /* why the run is paused */
    uint64_t update_k;                  /* next update index within the step */
    int step_index;                     /* /steps row of the current step */
    bool prompt_answered;               /* the current prompt was confirmed while paused */
    struct rec_step row;
};

static void runner_advance(struct runner *r, int64_t base);
static void step_begin(struct runner *r);

const char *run_state_name(enum run_state s)
{
    static const char *const names[] = { "idle", "loaded", "running", "paused", "completed",
                                         "aborted", "faulted" };
    return names[s];
}

/* The outcome recorded for a run that ended in state s. */
const char *run_outcome_name(enum run_state s)
{
    return s == RUN_COMPLETED || s == RUN_FAULTED || s == RUN_PAUSED ? run_state_name(s) : "aborted";
}

/* Seconds since the run's start for clock time t. */
static double run_time(const struct runner *r, int64_t t)
{
    return (double)(t - r->start_ns) / 1e9;
}

/* Emit a formatted event at the current clock time. */
static void emit(struct runner *r, const char *sev, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void emit(struct runner *r, const char *sev, const char *code, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    utf8_vformat(msg, sizeof msg, fmt, ap);
    va_end(ap);
    r->hooks.event(r->hooks.ctx, pclock_now(r->clk), sev, code, msg);
}

/* Path of the current step: 1-based indices through the repeats, "4.2.1". */
static void cursor_path(const struct runner *r, char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int i = 0; i <= r->depth && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, "%s%zu", i ? "." : "", r->stack[i].idx + 1);
}

/* Step name for /steps, with the pass of every enclosing repeat. The passes
 * always fit (the protocol loader bounds name lengths); were the name too
 * long, it is the name that is cut, between two characters. */
static void cursor_name(const struct runner *r, char *buf, size_t len)
{
    char passes[PLAN_MAX_DEPTH * 24 + 1] = "";
    size_t n = 0;
    for (int i = 1; i <= r->depth && n < sizeof passes; i++)
        n += (size_t)snprintf(passes + n, sizeof passes - n, " [%u/%u]", r->stack[i].iter + 1,
                              r->stack[i].parent->count);
    n = strlen(passes);
    utf8_copy(buf, n < len ? len - n : 1, r->cur->name);
    utf8_copy(buf + strlen(buf), len - strlen(buf), passes);
}

/* Create a runner for plan. */
int runner_create(struct runner **out, const struct plan *plan, const struct rig *rig,
                  struct pclock *clk, const struct runner_hooks *hooks)
{
    struct runner *r = calloc(1, sizeof *r);
    if (r == NULL)
        return -ENOMEM;
    r->plan = plan;
    r->rig = rig;
    r->clk = clk;
    r->hooks = *hooks;
    r->state = RUN_LOADED;
    int rc = ptimer_init(clk, &r->step_timer, NULL, r);
    if (rc == 0)
        rc = ptimer_init(clk, &r->update_timer, NULL, r);
    if (rc < 0) {
        free(r);
        return rc;
    }
    *out = r;
    return 0;
}

/* Write every target of a set step. */
static void apply_set(struct runner *r, int64_t at)
{
    for (size_t i = 0; i < r->cur->n_targets; i++)
        r->hooks.write(r->hooks.ctx, r->cur->targets[i].channel, r->cur->targets[i].v0, at);
}

/* Value of target i of the current ramp/waveform at step-local time t_ns. */
static double target_value(const struct runner *r, size_t i, int64_t t_ns)
{
    const struct plan_target *t = &r->cur->targets[i];
    if (r->cur->kind == STEP_WAVEFORM)
        return plan_wave_value(t, (double)t_ns / 1e9);
    double f = (double)t_ns / (double)r->cur->duration_ns;
    if (f > 1)
        f = 1;
    return t->v0 + (t->v1 - t->v0) * f;
}

/* Step-local time of update k: k / update_hz, exact in ns. */
static int64_t update_offset(const struct runner *r, uint64_t k)
{
    return (int64_t)llround((double)k * 1e9 / r->cur->update_hz);
}

/* Arm the update timer for update r->update_k, if it falls inside the step.
 * On the real clock it fires RUNNER_LEAD_NS early: the value goes to the bus
 * with its deadline, and the bus thread sends it on time by itself. */
static void arm_update(struct runner *r)
{
    int64_t off = update_offset(r, r->update_k);
    int64_t end = r->cur->duration_ns + (r->cur->kind == STEP_WAVEFORM ? r->extend_ns : 0);
    if (off >= end)
        return;
    ptimer_start(&r->update_timer, r->step_start_ns + off - (r->clk->is_virtual ? 0 : RUNNER_LEAD_NS));
}

/* A ramp or waveform update is due: write the values for its deadline. */
static void update_fired(struct ptimer *t)
{
    struct runner *r = t->data;
    if (r->state != RUN_RUNNING || r->cur == NULL)
        return;
    int64_t off = update_offset(r, r->update_k);
    for (size_t i = 0; i < r->cur->n_targets; i++)
        r->hooks.write(r->hooks.ctx, r->cur->targets[i].channel, target_value(r, i, off),
                       r->step_start_ns + off);
    r->update_k++;
    arm_update(r);
}

/* Write the /steps row of the current step. */
static void write_row(struct runner *r)
{
    r->hooks.step(r->hooks.ctx, &r->row);
}

/* Finish the current step with outcome and move on from clock time base. */
static void step_end(struct runner *r, const char *outcome, int64_t base)
{
    ptimer_stop(&r->step_timer);
    ptimer_stop(&r->update_timer);
    const struct plan_step *s = r->cur;
    if (s->kind == STEP_RAMP) {
        for (size_t i = 0; i < s->n_targets; i++)
            r->hooks.write(r->hooks.ctx, s->targets[i].channel, s->targets[i].v1, base);
    } else if (s->kind == STEP_WAVEFORM) {
        for (size_t i = 0; i < s->n_targets; i++)
            r->hooks.write(r->hooks.ctx, s->targets[i].channel, s->targets[i].mean, base);
    }
    r->row.end = run_time(r, pclock_now(r->clk));
    snprintf(r->row.outcome, sizeof r->row.outcome, "%s", outcome);
    write_row(r);
    emit(r, "info", "step_end", "step %s '%s' %s", r->row.path, r->row.name, outcome);
    /* A wait or prompt adds what it took; a fixed step what it took beyond its
     * duration (an extension), or less (ended early by `next`). */
    if (s->kind == STEP_WAIT || s->kind == STEP_PROMPT)
        r->shift_ns += base - r->step_start_ns;
    else
        r->shift_ns += base - r->step_start_ns - s->duration_ns;
    r->extend_ns = 0;
    r->plan_pos_ns += s->duration_ns;
    r->cur = NULL;
    runner_advance(r, base);
}

/* The step timer fired: a fixed step ended, or a wait/prompt timed out. */
static void step_fired(struct ptimer *t)
{
    struct runner *r = t->data;
    if (r->state != RUN_RUNNING || r->cur == NULL)
        return;
    const struct plan_step *s = r->cur;
    if (s->kind != STEP_WAIT && s->kind != STEP_PROMPT) {
        step_end(r, "done", t->deadline);
        return;
    }
    emit(r, "warning", "step_timeout", "step %s '%s' timed out", r->row.path, r->row.name);
    switch (s->on_timeout) {
    case TIMEOUT_CONTINUE:
        step_end(r, "timeout", t->deadline);
        break;
    case TIMEOUT_PAUSE:
        runner_pause(r, "step timed out");
        break;
    case TIMEOUT_ABORT:
        snprintf(r->row.outcome, sizeof r->row.outcome, "timeout");
        runner_abort(r, "step timed out (on_timeout: abort)");
        break;
    }
}

/* Arm the step timer: a fixed step's end, or a wait's or prompt's timeout,
 * each with what `extend` added. */
static void arm_step(struct runner *r)
{
    const struct plan_step *s = r->cur;
    if (s->kind == STEP_WAIT || s->kind == STEP_PROMPT) {
        if (s->timeout_ns > 0)
            ptimer_start(&r->step_timer, r->step_start_ns + s->timeout_ns + r->extend_ns);
    } else {
        ptimer_start(&r->step_timer, r->step_start_ns + s->duration_ns + r->extend_ns);
    }
}

/* Start the leaf step under the cursor at its deadline. */
static void step_begin(struct runner *r)
{
    const struct plan_step *s = r->cur;
    int64_t now = pclock_now(r->clk);
    r->step_actual_ns = now;
    r->update_k = 0;
    r->extend_ns = 0;
    r->prompt_answered = false;
    memset(&r->row, 0, sizeof r->row);
    r->row.index = r->step_index++;
    cursor_path(r, r->row.path, sizeof r->row.path);
    cursor_name(r, r->row.name, sizeof r->row.name);
    r->row.planned_start = run_time(r, r->step_start_ns);
    r->row.start = run_time(r, now);
    r->row.end = NAN;
    snprintf(r->row.outcome, sizeof r->row.outcome, "running");
    write_row(r);
    emit(r, "info", "step_start", "step %s '%s' (%s) started", r->row.path, r->row.name,
         plan_step_kind_name(s->kind));
    if (s->note != NULL)
        emit(r, "info", "step_note", "step %s note: %s", r->row.path, s->note);
    switch (s->kind) {
    case STEP_SET:
        apply_set(r, r->step_start_ns);
        break;
    case STEP_RAMP:
    case STEP_WAVEFORM:
        update_fired(&r->update_timer);
        break;
    case STEP_PROMPT:
        emit(r, "info", "prompt", "waiting for the operator: %s", s->prompt);
        break;
    case STEP_WAIT:
    case STEP_REPEAT:
        break;
    }
    arm_step(r);
}

/* Move the cursor to the next leaf step and begin it; finish when none is left.
 * base is the clock time the previous step ended (its deadline, for fixed steps). */
static void runner_advance(struct runner *r, int64_t base)
{
    (void)base;
    for (;;) {
        struct frame *f = &r->stack[r->depth];
        if (f->idx >= f->parent->n_steps) {
            if (++f->iter < f->parent->count) {
                f->idx = 0;
            } else if (r->depth == 0) {
                r->state = RUN_COMPLETED;
                emit(r, "info", "run_completed", "protocol '%s' completed", r->plan->name);
                r->hooks.safe_state(r->hooks.ctx);
                r->hooks.finished(r->hooks.ctx, RUN_COMPLETED);
                return;
            } else {
                r->depth--;
                r->stack[r->depth].idx++;
                continue;
            }
        }
        const struct plan_step *s = &f->parent->steps[f->idx];
        if (s->kind == STEP_REPEAT) {
            r->depth++;
            r->stack[r->depth] = (struct frame){ .parent = s, .idx = 0, .iter = 0 };
            continue;
        }
        r->cur = s;
        r->step_start_ns = r->start_ns + r->shift_ns + r->plan_pos_ns;
        step_begin(r);
        /* The step may have ended synchronously (abort); never touch it after. */
        if (r->cur == s)
            f->idx++;
        return;
    }
}

/* Start the run at clock time start_ns. */
int runner_start(struct runner *r, int64_t start_ns)
{
    if (r->state != RUN_LOADED)
        return -EALREADY;
    r->step_timer.cb = step_fired;
    r->update_timer.cb = update_fired;
    r->start_ns = start_ns;
    r->state = RUN_RUNNING;
    r->depth = 0;
    r->stack[0] = (struct frame){ .parent = &r->plan->root, .idx = 0, .iter = 0 };
    emit(r, "info", "run_started", "protocol '%s' started", r->plan->name);
    runner_advance(r, start_ns);
    return 0;
}

/* Where the run is. */
bool runner_get_pos(const struct runner *r, struct runner_pos *pos)
{
    if ((r->state != RUN_RUNNING && r->state != RUN_PAUSED) || r->cur == NULL)
        return false;
    memset(pos, 0, sizeof *pos);
    pos->depth = r->depth;
    for (int i = 0; i <= r->depth; i++) {
        /* The leaf's index moves past the running step as it begins: use the step itself. */
        pos->idx[i] = (uint32_t)(i == r->depth ? (size_t)(r->cur - r->stack[i].parent->steps)
                                               : r->stack[i].idx);
        pos->iter[i] = r->stack[i].iter;
    }
    pos->shift_ns = r->shift_ns;
    pos->plan_pos_ns = r->plan_pos_ns;
    pos->step_start_ns = r->step_start_ns - r->start_ns;
    pos->step_index = r->row.index;
    pos->row_planned_start = r->row.planned_start;
    pos->row_start = r->row.start;
    pos->paused = r->state == RUN_PAUSED;
    pos->pause_ns = r->pause_ns - r->start_ns;
    pos->extend_ns = r->extend_ns;
    return true;
}

/* Continue a run from a journal position. */
int runner_start_at(struct runner *r, int64_t start_ns, const struct runner_pos *pos, int64_t gap_ns)
{
    if (r->state != RUN_LOADED || pos->depth < 0 || pos->depth > PLAN_MAX_DEPTH)
        return -EINVAL;
    const struct plan_step *parent = &r->plan->root;
    for (int i = 0; i <= pos->depth; i++) {
        if (pos->idx[i] >= parent->n_steps || pos->iter[i] >= parent->count)
            return -EINVAL;
        const struct plan_step *s = &parent->steps[pos->idx[i]];
        if ((i < pos->depth) != (s->kind == STEP_REPEAT))
            return -EINVAL;
        r->stack[i] = (struct frame){ .parent = parent, .idx = pos->idx[i], .iter = pos->iter[i] };
        parent = s;
    }
    r->depth = pos->depth;
    r->cur = parent;
    r->step_timer.cb = step_fired;
    r->update_timer.cb = update_fired;
    r->start_ns = start_ns;
    r->plan_pos_ns = pos->plan_pos_ns;
    r->step_index = pos->step_index + 1;
    r->prompt_answered = false;
    r->extend_ns = pos->extend_ns;
    const struct plan_step *s = r->cur;
    bool open = s->kind == STEP_WAIT || s->kind == STEP_PROMPT;
    /* The downtime is a pause. Inside a pause that was already on, or inside a
     * wait or prompt, it is part of what the pause or wait will add. */
    r->shift_ns = pos->shift_ns + (pos->paused || open ? 0 : gap_ns);
    r->step_start_ns = start_ns + pos->step_start_ns + (pos->paused || open ? 0 : gap_ns);
    memset(&r->row, 0, sizeof r->row);
    r->row.index = pos->step_index;
    cursor_path(r, r->row.path, sizeof r->row.path);
    cursor_name(r, r->row.name, sizeof r->row.name);
    r->stack[r->depth].idx++;     /* as after step_begin: the leaf's frame points past it */
    r->row.planned_start = pos->row_planned_start;
    r->row.start = pos->row_start;
    r->row.end = NAN;
    snprintf(r->row.outcome, sizeof r->row.outcome, "running");
    write_row(r);
    int64_t now = pclock_now(r->clk);
    if (pos->paused) {
        r->state = RUN_PAUSED;
        r->pause_ns = start_ns + pos->pause_ns;
        utf8_copy(r->pause_reason, sizeof r->pause_reason, "paused before the daemon restarted");
        /* The owner restores the setpoints held in the pause (the operator may have set them). */
        emit(r, "info", "paused", "run still paused after the restart: resume it when ready");
        return 0;
    }
    r->state = RUN_RUNNING;
    emit(r, "info", "step_continued", "step %s '%s' (%s) continues after the restart", r->row.path,
         r->row.name, plan_step_kind_name(s->kind));
    switch (s->kind) {
    case STEP_SET:
        apply_set(r, now);
        break;
    case STEP_RAMP:
    case STEP_WAVEFORM: {
        int64_t off = now - r->step_start_ns;
        if (off < 0)
            off = 0;
        for (size_t i = 0; i < s->n_targets; i++)
            r->hooks.write(r->hooks.ctx, s->targets[i].channel, target_value(r, i, off), now);
        r->update_k = 0;
        while (update_offset(r, r->update_k) <= off)
            r->update_k++;
        arm_update(r);
        break;
    }
    case STEP_PROMPT:
        emit(r, "info", "prompt", "waiting for the operator: %s", s->prompt);
        break;
    case STEP_WAIT:
    case STEP_REPEAT:
        break;
    }
    arm_step(r);
    return 0;
}

/* Freeze the protocol clock. */
int runner_pause(struct runner *r, const char *reason)
{
    if (r->state != RUN_RUNNING)
        return -EINVAL;
    r->state = RUN_PAUSED;
    r->pause_ns = pclock_now(r->clk);
    ptimer_stop(&r->step_timer);
    ptimer_stop(&r->update_timer);
    if (r->cur && r->cur->kind == STEP_WAVEFORM)
        for (size_t i = 0; i < r->cur->n_targets; i++)
            r->hooks.write(r->hooks.ctx, r->cur->targets[i].channel, r->cur->targets[i].mean,
                           r->pause_ns);
    utf8_copy(r->pause_reason, sizeof r->pause_reason, reason);
    emit(r, "info", "paused", "run paused: %s", reason);
    return 0;
}

/* Continue, shifting the rest of the plan by the pause's length. */
int runner_resume(struct runner *r, const char *reason)
{
    if (r->state != RUN_PAUSED)
        return -EINVAL;
    int64_t now = pclock_now(r->clk);
    int64_t gap = now - r->pause_ns;
    r->shift_ns += gap;
    r->state = RUN_RUNNING;
    const struct plan_step *s = r->cur;
    /* A wait or prompt keeps its own start: the pause counts as waiting time. */
    if (s != NULL && s->kind != STEP_WAIT && s->kind != STEP_PROMPT)
        r->step_start_ns += gap;
    else if (s != NULL)
        r->shift_ns -= gap;
    /* Only now: the event has the position journaled, which must be whole
     * (a restart checks that the step's start is the shift plus the plan). */
    char d[64];
    unit_format_duration(gap, d, sizeof d);
    emit(r, "info", "resumed", "run resumed after %s: %s", d, reason);
    if (s == NULL)
        return 0;
    if (s->kind == STEP_PROMPT && r->prompt_answered) {
        step_end(r, "confirmed", now);     /* answered during the pause: go on */
        return 0;
    }
    if (s->kind == STEP_RAMP || s->kind == STEP_WAVEFORM) {
        /* Re-phase: send the value for now, then continue on the shifted grid. */
        int64_t off = now - r->step_start_ns;
        for (size_t i = 0; i < s->n_targets; i++)
            r->hooks.write(r->hooks.ctx, s->targets[i].channel, target_value(r, i, off), now);
        while (update_offset(r, r->update_k) <= off)
            r->update_k++;
        arm_update(r);
    }
    arm_step(r);
    return 0;
}

/* End the run in state final (aborted or faulted) and apply the safe state. */
static int runner_stop(struct runner *r, enum run_state final, const char *code, const char *reason)
{
    if (r->state != RUN_RUNNING && r->state != RUN_PAUSED)
        return -EINVAL;
    ptimer_stop(&r->step_timer);
    ptimer_stop(&r->update_timer);
    r->state = final;
    if (r->cur != NULL) {
        r->row.end = run_time(r, pclock_now(r->clk));
        if (strcmp(r->row.outcome, "running") == 0)
            snprintf(r->row.outcome, sizeof r->row.outcome, "%s", run_outcome_name(final));
        write_row(r);
        r->cur = NULL;
    }
    emit(r, final == RUN_FAULTED ? "fault" : "warning", code, "run %s: %s",
         final == RUN_FAULTED ? "stopped by a fault" : "aborted", reason);
    r->hooks.safe_state(r->hooks.ctx);
    r->hooks.finished(r->hooks.ctx, final);
    return 0;
}

/* Stop the run and apply the safe state. */
int runner_abort(struct runner *r, const char *reason)
{
    return runner_stop(r, RUN_ABORTED, "run_aborted", reason);
}

/* A device failed: stop the run as faulted. */
int runner_fault(struct runner *r, const char *reason)
{
    return runner_stop(r, RUN_FAULTED, "run_faulted", reason);
}

/* Answer the pending prompt. In a paused run the answer is recorded now and
 * the run goes on past the prompt when it is resumed: the technician who did
 * what the prompt asked need not wait for the resume to say so. */
int runner_confirm(struct runner *r, const char *who)
{
    if ((r->state != RUN_RUNNING && r->state != RUN_PAUSED) || r->cur == NULL ||
        r->cur->kind != STEP_PROMPT || r->prompt_answered)
        return -ENOENT;
    if (r->state == RUN_PAUSED) {
        r->prompt_answered = true;
        emit(r, "info", "prompt_confirmed", "prompt confirmed by %s while the run is paused; "
             "the run goes on past it when resumed", who);
        return 0;
    }
    emit(r, "info", "prompt_confirmed", "prompt confirmed by %s", who);
    step_end(r, "confirmed", pclock_now(r->clk));
    return 0;
}

/* End the current step now and go on with the next. */
int runner_next(struct runner *r, const char *who)
{
    if (r->state == RUN_PAUSED)
        return -EAGAIN;
    if (r->state != RUN_RUNNING || r->cur == NULL)
        return -ENOENT;
    emit(r, "info", "step_skipped", "step %s '%s' ended early by %s", r->row.path, r->row.name, who);
    step_end(r, "skipped", pclock_now(r->clk));
    return 0;
}

/* Make the current step longer by ns. */
int runner_extend(struct runner *r, int64_t ns, const char *who)
{
    if ((r->state != RUN_RUNNING && r->state != RUN_PAUSED) || r->cur == NULL)
        return -ENOENT;
    const struct plan_step *s = r->cur;
    bool open = s->kind == STEP_WAIT || s->kind == STEP_PROMPT;
    if (ns <= 0 || (open && s->timeout_ns == 0))
        return -EINVAL;
    if (r->extend_ns > INT64_MAX / 4 - ns)
        return -ERANGE;
    r->extend_ns += ns;
    char d[64], total[64];
    unit_format_duration(ns, d, sizeof d);
    unit_format_duration((open ? s->timeout_ns : s->duration_ns) + r->extend_ns, total, sizeof total);
    emit(r, "info", "step_extended", "step %s '%s' extended by %s by %s: its %s is now %s", r->row.path,
         r->row.name, d, who, open ? "timeout" : "duration", total);
    if (r->state == RUN_RUNNING) {
        ptimer_stop(&r->step_timer);
        arm_step(r);
        if (s->kind == STEP_WAVEFORM)
            arm_update(r);      /* re-arming replaces: the next update, now also past the old end */
    }
    return 0;
}

/* A new valid sample: end a wait_until whose condition now holds. */
void runner_on_sample(struct runner *r, int channel, double value, int64_t t)
{
    (void)t;
    if (r->state != RUN_RUNNING || r->cur == NULL || r->cur->kind != STEP_WAIT)
        return;
    if (r->cur->cond_channel != channel || !plan_cond_holds(r->cur->op, value, r->cur->cond_value))
        return;
    emit(r, "info", "condition_met", "%s (value %g)", r->cur->cond_text, value);
    step_end(r, "done", pclock_now(r->clk));
}

/* Fill *st. */
void runner_get_status(struct runner *r, struct runner_status *st)
{
    memset(st, 0, sizeof *st);
    st->state = r->state;
    st->planned_total_ns = r->plan->total_ns;
    st->shift_ns = r->shift_ns;
    st->step_index = r->step_index - 1;
    st->cond_channel = -1;
    if (r->state == RUN_PAUSED)
        st->pause_reason = r->pause_reason;
    if (r->cur != NULL && r->cur->kind != STEP_WAIT && r->cur->kind != STEP_PROMPT)
        st->planned_total_ns += r->extend_ns;
    if (r->state == RUN_LOADED)
        return;
    int64_t now = r->state == RUN_PAUSED ? r->pause_ns : pclock_now(r->clk);
    if (r->cur != NULL) {
        memcpy(st->step_path, r->row.path, sizeof st->step_path);
        memcpy(st->step_name, r->row.name, sizeof st->step_name);
        st->step_kind = plan_step_kind_name(r->cur->kind);
        bool open = r->cur->kind == STEP_WAIT || r->cur->kind == STEP_PROMPT;
        st->step_duration_ns = r->cur->duration_ns + (open ? 0 : r->extend_ns);
        st->extend_ns = r->extend_ns;
        st->timeout_ns = open && r->cur->timeout_ns > 0 ? r->cur->timeout_ns + r->extend_ns : 0;
        if (r->cur->kind == STEP_WAIT && r->cur->cond_text != NULL) {
            st->cond_text = r->cur->cond_text;
            st->cond_channel = r->cur->cond_channel;
            st->cond_value = r->cur->cond_value;
        }
        st->step_elapsed_ns = now - r->step_start_ns;
        if (st->step_elapsed_ns < 0)
            st->step_elapsed_ns = 0;
        st->waiting_prompt = r->cur->kind == STEP_PROMPT && !r->prompt_answered;
        st->prompt_answered = r->cur->kind == STEP_PROMPT && r->prompt_answered;
        st->prompt = r->cur->prompt;
        st->step_note = r->cur->note;
        st->run_elapsed_ns = r->plan_pos_ns + (r->cur->kind == STEP_WAIT || r->cur->kind == STEP_PROMPT
                                               ? 0 : st->step_elapsed_ns);
    } else {
        st->run_elapsed_ns = r->plan_pos_ns;
    }
}

/* Both timers closed: free the runner. */
static void timer_closed(struct ptimer *t)
{
    struct runner *r = t->data;
    if (--r->closing == 0)
        free(r);
}

/* Stop timers and free once they are closed. */
void runner_free(struct runner *r)
{
    if (r == NULL)
        return;
    r->closing = 2;
    ptimer_close(&r->step_timer, timer_closed);
    ptimer_close(&r->update_timer, timer_closed);
}
