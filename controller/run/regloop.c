/* A rig's regulators, each ticking on a timer of the clock (regloop.h). */
#include "regloop.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* Regulator hook: the output goes to its actuator. */
static void entry_write(void *ctx, double out, int64_t t)
{
    struct regloop_entry *e = ctx;
    struct regloop *l = e->loop;
    int ch = e->reg.cfg->actuator;
    l->out_in_force[ch] = out;
    l->hooks.write(l->hooks.ctx, ch, out, t);
}

/* Regulator hook: a fault. */
static void entry_fault(void *ctx, enum reg_fault f, bool active, const char *msg, int64_t t)
{
    struct regloop_entry *e = ctx;
    if (e->loop->hooks.fault != NULL)
        e->loop->hooks.fault(e->loop->hooks.ctx, e->k, f, active, msg, t);
}

/* The tick timer: one control step, then the next deadline (absolute: no drift). */
static void entry_tick(struct ptimer *t)
{
    struct regloop_entry *e = t->data;
    struct regloop *l = e->loop;
    if (e->tuning) {
        /* The relay test drives the actuator; the regulator only keeps its measurement. */
        int ch = e->reg.cfg->actuator;
        double out = autotune_step(&e->at, e->reg.y, e->next_ns);
        l->out_in_force[ch] = out;
        l->hooks.write(l->hooks.ctx, ch, out, e->next_ns);
        if (autotune_over(&e->at)) {
            if (e->reg.mode == REG_HOLD)
                e->reg.out = out;   /* a resume continues from where the test left the output */
            e->tuning = false;
            e->tuned = true;
            e->tune_t1 = e->next_ns;
        }
    } else if (!e->running) {
        return;
    } else {
        struct reg_terms terms;
        regulator_tick(&e->reg, e->next_ns, &terms);
        if (l->hooks.terms != NULL && e->reg.mode != REG_IDLE)
            l->hooks.terms(l->hooks.ctx, e->k, &terms, e->next_ns);
    }
    if (!e->running && !e->tuning)
        return;
    e->next_ns += e->period_ns;
    int64_t now = pclock_now(l->clk);
    if (e->next_ns < now)
        e->next_ns = now;       /* a stalled loop skips ticks rather than running them late in a burst */
    ptimer_start(&e->timer, e->next_ns);
}

/* Set up every regulator. */
int regloop_init(struct regloop *l, const struct rig *rig, struct pclock *clk,
                 const struct regloop_hooks *hooks)
{
    l->rig = rig;
    l->clk = clk;
    l->hooks = *hooks;
    l->n = rig->n_regulators;
    l->e = calloc(l->n + 1, sizeof *l->e);
    l->out_in_force = calloc(rig->n_channels + 1, sizeof *l->out_in_force);
    if (l->e == NULL || l->out_in_force == NULL) {
        free(l->e);
        free(l->out_in_force);
        l->e = NULL;
        l->out_in_force = NULL;
        l->n = 0;
        return -ENOMEM;
    }
    for (size_t i = 0; i < rig->n_channels; i++)
        l->out_in_force[i] = NAN;
    for (size_t k = 0; k < l->n; k++) {
        struct regloop_entry *e = &l->e[k];
        const struct rig_regulator *g = &rig->regulators[k];
        const struct rig_channel *a = &rig->channels[g->actuator];
        e->loop = l;
        e->k = k;
        e->period_ns = (int64_t)llround(1e9 / g->rate_hz);
        struct regulator_hooks h = { .ctx = e, .write = entry_write, .fault = entry_fault };
        regulator_init(&e->reg, g, a->min, a->max, &h);
        ptimer_init(clk, &e->timer, entry_tick, e);
    }
    return 0;
}

/* The entries of a freed regloop, kept until their timers' handles close. */
struct regloop_graveyard {
    struct regloop_entry *e;
    size_t left;
};

/* One timer of a freed regloop closed: the last frees the entries. */
static void entry_timer_closed(struct ptimer *t)
{
    struct regloop_graveyard *g = t->data;
    if (--g->left == 0) {
        free(g->e);
        free(g);
    }
}

void regloop_free(struct regloop *l)
{
    /* A real timer's handle closes on a later turn of the loop, inside the
     * entry: the entries live until the last one has closed. */
    struct regloop_graveyard *g = l->n > 0 ? malloc(sizeof *g) : NULL;
    if (g != NULL) {
        g->e = l->e;
        g->left = l->n;
        for (size_t k = 0; k < l->n; k++) {
            l->e[k].timer.data = g;
            ptimer_close(&l->e[k].timer, entry_timer_closed);
        }
    } else {
        for (size_t k = 0; k < l->n; k++)
            ptimer_close(&l->e[k].timer, NULL);
        if (l->n == 0)
            free(l->e);         /* else (no memory) left to the process's end, never freed under a handle */
    }
    free(l->out_in_force);
    l->e = NULL;
    l->out_in_force = NULL;
    l->n = 0;
}

/* The entry regulating channel ch, or NULL. */
static struct regloop_entry *entry_of(struct regloop *l, int ch)
{
    for (size_t k = 0; k < l->n; k++)
        if (l->e[k].reg.cfg->measure == ch)
            return &l->e[k];
    return NULL;
}

/* A setpoint for a regulated channel. */
bool regloop_setpoint(struct regloop *l, int ch, double v, int64_t t_ns)
{
    struct regloop_entry *e = entry_of(l, ch);
    if (e == NULL)
        return false;
    regulator_set_setpoint(&e->reg, v);
    if (e->running && e->reg.mode == REG_MANUAL)
        regulator_auto(&e->reg, t_ns);
    if (!e->running) {
        e->running = true;
        regulator_start(&e->reg, l->out_in_force[e->reg.cfg->actuator], t_ns);
        e->next_ns = t_ns;
        ptimer_start(&e->timer, t_ns);
    }
    return true;
}

void regloop_manual(struct regloop *l, int ch, double v, int64_t t_ns)
{
    for (size_t k = 0; k < l->n; k++)
        if (l->e[k].running && l->e[k].reg.cfg->actuator == ch)
            regulator_manual(&l->e[k].reg, v, t_ns);
}

void regloop_on_sample(struct regloop *l, int ch, double v, int64_t t_ns)
{
    for (size_t k = 0; k < l->n; k++)
        if (l->e[k].reg.cfg->measure == ch)
            regulator_measure(&l->e[k].reg, v, t_ns);
}

void regloop_on_output(struct regloop *l, int ch, double v)
{
    if (ch >= 0 && (size_t)ch < l->rig->n_channels)
        l->out_in_force[ch] = v;
}

void regloop_pause_one(struct regloop *l, size_t k)
{
    if (k < l->n)
        regulator_pause(&l->e[k].reg);
}

void regloop_pause(struct regloop *l)
{
    for (size_t k = 0; k < l->n; k++)
        regloop_pause_one(l, k);
}

void regloop_resume_one(struct regloop *l, size_t k, int64_t t_ns)
{
    if (k >= l->n)
        return;
    regulator_resume(&l->e[k].reg, t_ns);
    regulator_auto(&l->e[k].reg, t_ns);     /* set by hand during the pause: back to auto */
}

void regloop_resume(struct regloop *l, int64_t t_ns)
{
    for (size_t k = 0; k < l->n; k++)
        regloop_resume_one(l, k, t_ns);
}

void regloop_stop_one(struct regloop *l, size_t k, bool send)
{
    if (k >= l->n)
        return;                 /* none, or never set up (a daemon that failed to start) */
    struct regloop_entry *e = &l->e[k];
    if (e->running && send) {
        const struct rig_regulator *g = e->reg.cfg;
        l->out_in_force[g->actuator] = g->safe_output;
        l->hooks.write(l->hooks.ctx, g->actuator, g->safe_output, pclock_now(l->clk));
    }
    e->running = false;
    e->tuning = false;
    regulator_stop(&e->reg);
    ptimer_stop(&e->timer);
}

void regloop_stop(struct regloop *l, bool send)
{
    for (size_t k = 0; k < l->n; k++)
        regloop_stop_one(l, k, send);
}

int regloop_tune_start(struct regloop *l, size_t k, int64_t t_ns, char *err, size_t len)
{
    if (k >= l->n) {
        snprintf(err, len, "no such regulator");
        return -EINVAL;
    }
    struct regloop_entry *e = &l->e[k];
    const struct rig_regulator *g = e->reg.cfg;
    if (e->tuning) {
        snprintf(err, len, "%s: a relay test is already running", g->name);
        return -EBUSY;
    }
    if (e->running && e->reg.mode != REG_HOLD) {
        snprintf(err, len, "%s is regulating: pause the run first (a test runs only with the "
                 "regulator idle or held by a paused run)", g->name);
        return -EBUSY;
    }
    double span = g->out_max - g->out_min, u0 = l->out_in_force[g->actuator];
    if (isnan(u0))
        u0 = g->out_min;
    if (autotune_start(&e->at, u0, 0.05 * span, 0.025 * span, g->out_min, g->out_max, t_ns) < 0) {
        snprintf(err, len, "%s: %s", g->name, e->at.why);
        return -EINVAL;
    }
    e->tuning = true;
    e->tuned = false;
    e->tune_t0 = t_ns;
    if (!e->running) {
        e->next_ns = t_ns;
        ptimer_start(&e->timer, t_ns);
    }
    return 0;
}

const struct regloop_entry *regloop_get(const struct regloop *l, size_t k)
{
    return k < l->n ? &l->e[k] : NULL;
}
