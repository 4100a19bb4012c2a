/* Checks of a run journal against the rig, the protocol and the clock. */
#include "journal_check.h"
#include "base/sha256.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Fail with a message. Returns -EINVAL. */
static int refuse(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int refuse(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* The run was started on this rig, with the protocol the journal holds. */
static int check_origin(const struct journal_rec *j, const struct rig *rig, char *err, size_t errlen)
{
    if (strcmp(j->rig_name, rig->name) != 0)
        return refuse(err, errlen, "the run was on rig '%s', this daemon runs rig '%s'", j->rig_name,
                      rig->name);
    char hex[65];
    if (strcmp(rig->digest, j->rig_digest) != 0)
        return refuse(err, errlen, "foreign rig: the journal's rig digest %.12s... is not this rig's "
                      "%.12s... (its devices, channels or settings differ from those the run started "
                      "with)", j->rig_digest, rig->digest);
    sha256_hex(j->protocol_text, strlen(j->protocol_text), hex);
    if (strcmp(hex, j->protocol_sha256) != 0)
        return refuse(err, errlen, "edited protocol: the journal's protocol text has sha256 %.12s..., "
                      "the run started with %.12s...", hex, j->protocol_sha256);
    return 0;
}

/* v (ns since t = 0) is within [0, hi]. */
static bool in_run(int64_t v, int64_t hi)
{
    return v >= 0 && v <= hi;
}

/* The run's times: its start in the past (but not before 2000, nor more than
 * a year ago), every time since t = 0 between 0 and the time elapsed since
 * then, and the step's deadline the sum the runner keeps it at. */
static int check_times(const struct journal_rec *j, int64_t now, char *err, size_t errlen)
{
    const struct runner_pos *p = &j->pos;
    int64_t elapsed, hi, sum;
    if (j->start_wall_ns < JOURNAL_MIN_START_NS)
        return refuse(err, errlen, "absurd start time %lld ns: before the year 2000",
                      (long long)j->start_wall_ns);
    if (__builtin_sub_overflow(now, j->start_wall_ns, &elapsed) || elapsed < -JOURNAL_CLOCK_SLACK_NS)
        return refuse(err, errlen, "absurd start time: %.0f s in the future (is the clock right?)",
                      -(double)elapsed / 1e9);
    if (elapsed > JOURNAL_MAX_AGE_NS)
        return refuse(err, errlen, "the run started %.0f days ago: a journal older than %lld days is "
                      "not continued", (double)elapsed / 86400e9, JOURNAL_MAX_AGE_NS / 86400000000000LL);
    hi = (elapsed > 0 ? elapsed : 0) + JOURNAL_CLOCK_SLACK_NS;
    /* When it was written: the last moment the run is known alive without its file. */
    int64_t written;
    if (j->written_wall_ns != 0 &&
        (__builtin_sub_overflow(j->written_wall_ns, j->start_wall_ns, &written) ||
         written < -JOURNAL_CLOCK_SLACK_NS || written > hi))
        return refuse(err, errlen, "absurd time: the journal says it was written at %lld ns, not "
                      "between the run's start and now", (long long)j->written_wall_ns);
    /* Steps ended early by `next` take their unused time off shift_ns, which
     * may then be negative, and leave plan_pos_ns (the plan's fixed durations
     * before the step) beyond the time elapsed. The step's start, shift + plan,
     * is still in the run. */
    static const char *const names[] = { "step_start_ns" };
    const int64_t vals[] = { p->step_start_ns };
    if (p->shift_ns > hi)
        return refuse(err, errlen, "absurd time: position shift_ns = %lld ns is more than the %.0f s "
                      "since the run started", (long long)p->shift_ns, (double)elapsed / 1e9);
    if (p->plan_pos_ns < 0)
        return refuse(err, errlen, "absurd time: position plan_pos_ns = %lld ns is negative",
                      (long long)p->plan_pos_ns);
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++)
        if (!in_run(vals[i], hi))
            return refuse(err, errlen, "absurd time: position %s = %lld ns is not between 0 and the "
                          "%.0f s since the run started", names[i], (long long)vals[i], (double)elapsed / 1e9);
    if (__builtin_add_overflow(p->shift_ns, p->plan_pos_ns, &sum) || sum != p->step_start_ns)
        return refuse(err, errlen, "inconsistent times: step_start_ns %lld is not shift_ns + "
                      "plan_pos_ns (%lld + %lld)", (long long)p->step_start_ns, (long long)p->shift_ns,
                      (long long)p->plan_pos_ns);
    if (p->paused && !in_run(p->pause_ns, hi))
        return refuse(err, errlen, "absurd time: the pause began at %lld ns, not between 0 and the "
                      "%.0f s since the run started", (long long)p->pause_ns, (double)elapsed / 1e9);
    double hi_s = (double)hi / 1e9;
    if (!(p->row_planned_start >= 0 && p->row_planned_start <= hi_s) ||
        !(p->row_start >= 0 && p->row_start <= hi_s))
        return refuse(err, errlen, "absurd time: the step's row starts at %g s (planned %g s), not "
                      "between 0 and the %.0f s since the run started", p->row_start,
                      p->row_planned_start, (double)elapsed / 1e9);
    return 0;
}

/* A value (what: "setpoint", "override") for channel name is one this rig
 * allows: a writable channel, a finite number, inside its limits. */
static int check_value(const struct rig *rig, const char *what, const char *name, double v, char *err,
                       size_t errlen)
{
    int ch = rig_find_channel(rig, name);
    if (ch < 0)
        return refuse(err, errlen, "%s of '%s': the rig has no such channel", what, name);
    const struct rig_channel *c = &rig->channels[ch];
    if (!c->writable)
        return refuse(err, errlen, "%s of %s: a measurement cannot be set", what, c->name);
    if (!isfinite(v))
        return refuse(err, errlen, "%s of %s is not a number", what, c->name);
    if ((!isnan(c->min) && v < c->min) || (!isnan(c->max) && v > c->max))
        return refuse(err, errlen, "out-of-limit %s: %s = %g %s is outside the rig's limits "
                      "(%g to %g %s)", what, c->name, v, c->unit, c->min, c->max, c->unit);
    return 0;
}

/* Every setpoint and override is a value the rig allows, and an override was
 * made during the run. */
static int check_setpoints(const struct journal_rec *j, const struct rig *rig, int64_t now, char *err,
                           size_t errlen)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < j->n_setpoints; i++)
        rc = check_value(rig, "setpoint", j->setpoints[i].channel, j->setpoints[i].value, err, errlen);
    for (size_t i = 0; rc == 0 && i < j->n_overrides; i++) {
        const struct journal_override *o = &j->overrides[i];
        rc = check_value(rig, "override", o->channel, o->value, err, errlen);
        /* The protocol's value it replaces goes back out on resume. */
        if (rc == 0 && !isnan(o->protocol))
            rc = check_value(rig, "override's protocol value", o->channel, o->protocol, err, errlen);
        /* check_times has bounded start_wall_ns from below; now is the caller's clock. */
        int64_t hi;
        if (__builtin_add_overflow(now, JOURNAL_CLOCK_SLACK_NS, &hi))
            hi = INT64_MAX;
        if (rc == 0 && (o->since_wall_ns < j->start_wall_ns - JOURNAL_CLOCK_SLACK_NS || o->since_wall_ns > hi))
            rc = refuse(err, errlen, "absurd time: the override of %s was made at %lld ns, not "
                        "during the run", o->channel, (long long)o->since_wall_ns);
    }
    return rc;
}

/* The position names a leaf step of the plan, and plan_pos_ns is exactly the
 * sum of the fixed durations before it, as the runner counts them. */
static int check_position(const struct journal_rec *j, const struct plan *plan, char *err, size_t errlen)
{
    const struct runner_pos *p = &j->pos;
    const struct plan_step *parent = &plan->root;
    int64_t before = 0;
    for (int i = 0; i <= p->depth; i++) {
        if (p->idx[i] >= parent->n_steps || p->iter[i] >= (parent->count ? parent->count : 1))
            return refuse(err, errlen, "position: level %d names step %u, pass %u; the protocol has "
                          "%zu steps there, repeated %u times", i + 1, p->idx[i] + 1, p->iter[i] + 1,
                          parent->n_steps, parent->count ? parent->count : 1);
        const struct plan_step *s = &parent->steps[p->idx[i]];
        if ((i < p->depth) != (s->kind == STEP_REPEAT))
            return refuse(err, errlen, "position: level %d's step %u is %s", i + 1, p->idx[i] + 1,
                          s->kind == STEP_REPEAT ? "a repeat, not a step that runs"
                                                 : "not a repeat to go into");
        /* Durations are bounded by plan_load; overflow here means a broken plan. */
        int64_t pass = parent->duration_ns / (parent->count ? parent->count : 1), t;
        if (__builtin_mul_overflow(pass, (int64_t)p->iter[i], &t) || __builtin_add_overflow(before, t, &before))
            return refuse(err, errlen, "position: the time before it overflows");
        for (uint32_t k = 0; k < p->idx[i]; k++)
            if (__builtin_add_overflow(before, parent->steps[k].duration_ns, &before))
                return refuse(err, errlen, "position: the time before it overflows");
        parent = s;
    }
    if (before != p->plan_pos_ns)
        return refuse(err, errlen, "position: plan_pos_ns %lld is not the %lld ns of fixed steps "
                      "before that step", (long long)p->plan_pos_ns, (long long)before);
    return 0;
}

/* Check a journal before anything in it is used. */
int journal_validate(const struct journal_rec *j, const struct rig *rig, const struct plan *plan,
                     int64_t now_wall_ns, char *err, size_t errlen)
{
    int rc = check_origin(j, rig, err, errlen);
    if (rc == 0)
        rc = check_times(j, now_wall_ns, err, errlen);
    if (rc == 0)
        rc = check_setpoints(j, rig, now_wall_ns, err, errlen);
    if (rc == 0 && plan != NULL)
        rc = check_position(j, plan, err, errlen);
    return rc;
}
