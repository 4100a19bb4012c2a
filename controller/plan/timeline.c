/* What a plan will do: volumes per pump and when a syringe runs empty. */
#include "timeline.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Per pump, the extremes of its net volume since a mark (a repeat pass start). */
struct extent {
    double lo, hi;              /* least and most net volume out */
    bool clamped;               /* a withdraw found the syringe full */
};

struct walk {
    const struct rig *rig;
    struct timeline *tl;
    double *value;              /* setpoint in force, per rig channel (NaN: never set) */
    struct extent *ext;         /* per pump */
    int64_t t;                  /* planned time */
};

/* Move volume at a constant rate (uL/min) for dur ns through pump p: pushing
 * empties the syringe (noting when it is empty), withdrawing refills it. */
static void flow(struct walk *w, int p, double rate, int64_t dur, const struct plan_step *step)
{
    struct timeline_pump *tp = &w->tl->pumps[p];
    struct extent *x = &w->ext[p];
    double vol = rate * (double)dur / 60e9;
    if (vol < 0) {
        tp->withdrawn_ul += -vol;
        tp->net_ul += vol;
        if (tp->capacity_ul > 0 && tp->net_ul < 0) {
            tp->net_ul = 0;     /* full: the plunger cannot go further back */
            x->clamped = true;
        }
        if (tp->net_ul < x->lo)
            x->lo = tp->net_ul;
        return;
    }
    double before = tp->net_ul;
    tp->delivered_ul += vol;
    tp->net_ul += vol;
    if (tp->net_ul > x->hi)
        x->hi = tp->net_ul;
    if (tp->net_ul > tp->need_ul)
        tp->need_ul = tp->net_ul;
    if (tp->capacity_ul > 0 && tp->empty_at_ns < 0 && tp->net_ul > tp->capacity_ul) {
        double frac = (tp->capacity_ul - before) / vol;
        tp->empty_at_ns = w->t + (int64_t)llround(frac * (double)dur);
        tp->empty_step = step;
    }
}

/* Mean rate of a ramp or waveform target over its step. */
static double mean_rate(const struct plan_step *s, const struct plan_target *t)
{
    if (s->kind == STEP_RAMP)
        return (t->v0 + t->v1) / 2.0;
    if (t->shape == WAVE_PULSE)
        return t->mean + t->amplitude * (2.0 * t->duty - 1.0);
    return t->mean;
}

/* Whether step s drives channel ch itself (ramp/waveform target). */
static const struct plan_target *driven(const struct plan_step *s, int ch)
{
    if (s->kind != STEP_RAMP && s->kind != STEP_WAVEFORM)
        return NULL;
    for (size_t i = 0; i < s->n_targets; i++)
        if (s->targets[i].channel == ch)
            return &s->targets[i];
    return NULL;
}

/* Account one leaf step. */
static void leaf(struct walk *w, const struct plan_step *s)
{
    if (s->kind == STEP_SET)
        for (size_t i = 0; i < s->n_targets; i++)
            w->value[s->targets[i].channel] = s->targets[i].v0;
    for (size_t p = 0; p < w->tl->n_pumps; p++) {
        int ch = w->tl->pumps[p].channel;
        const struct plan_target *t = driven(s, ch);
        double rate = t ? mean_rate(s, t) : w->value[ch];
        if (isnan(rate))
            continue;
        if (s->kind == STEP_WAIT || s->kind == STEP_PROMPT) {
            if (rate != 0)
                w->tl->pumps[p].open_ended_flow = true;
            continue;
        }
        flow(w, (int)p, rate, s->duration_ns, s);
    }
    for (size_t i = 0; i < s->n_targets; i++) {
        if (s->kind == STEP_RAMP)
            w->value[s->targets[i].channel] = s->targets[i].v1;
        else if (s->kind == STEP_WAVEFORM)
            w->value[s->targets[i].channel] = s->targets[i].mean;
    }
    w->t += s->duration_ns;
}

static void walk_steps(struct walk *w, const struct plan_step *parent);

/* How many more passes like the last one can be counted without walking
 * them: none while a pass still meets a full syringe and changes the level
 * (it is not periodic yet); otherwise as many as keep every syringe between
 * full and empty, so that the pass in which one empties is walked. */
static uint64_t passes_to_skip(const struct walk *w, const double *start, uint64_t rest)
{
    uint64_t skip = rest;
    for (size_t p = 0; p < w->tl->n_pumps; p++) {
        const struct timeline_pump *tp = &w->tl->pumps[p];
        const struct extent *x = &w->ext[p];
        double per = tp->net_ul - start[p];
        if (per == 0)
            continue;           /* the same level after every pass */
        if (x->clamped)
            return 0;
        if (tp->capacity_ul <= 0 || (per > 0 && tp->empty_at_ns >= 0))
            continue;
        /* Each later pass reaches per further than this one did. */
        double room = per > 0 ? tp->capacity_ul - (x->hi + per) : x->lo + per;
        double n = room <= 0 ? 0 : floor(room / fabs(per));
        if (n < (double)skip)
            skip = (uint64_t)n;
    }
    return skip;
}

/* Account a repeat. Once the setpoints entering a pass stop changing and the
 * syringes' levels move by the same amount every pass, later passes are
 * multiplied instead of walked, except the one in which a syringe runs empty,
 * which is walked to find the moment. A repeat of a million passes costs a
 * few walks, not a million. */
static void repeat(struct walk *w, const struct plan_step *s)
{
    size_t nch = w->rig->n_channels, np = w->tl->n_pumps;
    double *before = malloc(nch * sizeof *before);
    double *start = malloc((np + 1) * sizeof *start);
    double *del0 = malloc((np + 1) * sizeof *del0), *wd0 = malloc((np + 1) * sizeof *wd0);
    struct extent *outer = malloc((np + 1) * sizeof *outer);
    if (before == NULL || start == NULL || del0 == NULL || wd0 == NULL || outer == NULL)
        goto out;
    memcpy(outer, w->ext, np * sizeof *outer);
    for (uint64_t k = 0; k < s->count; k++) {
        memcpy(before, w->value, nch * sizeof *before);
        for (size_t p = 0; p < np; p++) {
            struct timeline_pump *tp = &w->tl->pumps[p];
            start[p] = tp->net_ul;
            del0[p] = tp->delivered_ul;
            wd0[p] = tp->withdrawn_ul;
            w->ext[p] = (struct extent){ .lo = tp->net_ul, .hi = tp->net_ul };
        }
        int64_t t0 = w->t;
        walk_steps(w, s);
        uint64_t skip = 0;
        if (memcmp(before, w->value, nch * sizeof *before) == 0 && k + 1 < s->count)
            skip = passes_to_skip(w, start, s->count - k - 1);
        for (size_t p = 0; p < np; p++) {
            struct timeline_pump *tp = &w->tl->pumps[p];
            struct extent *x = &w->ext[p];
            double per = tp->net_ul - start[p];
            tp->delivered_ul += (double)skip * (tp->delivered_ul - del0[p]);
            tp->withdrawn_ul += (double)skip * (tp->withdrawn_ul - wd0[p]);
            tp->net_ul += (double)skip * per;
            if (per > 0)
                x->hi += (double)skip * per;
            else
                x->lo += (double)skip * per;
            if (x->hi > tp->need_ul)
                tp->need_ul = x->hi;
            /* What this pass reached counts for the enclosing one too. */
            outer[p].lo = fmin(outer[p].lo, x->lo);
            outer[p].hi = fmax(outer[p].hi, x->hi);
            outer[p].clamped |= x->clamped;
        }
        w->t += (int64_t)skip * (w->t - t0);
        k += skip;
    }
    memcpy(w->ext, outer, np * sizeof *outer);
out:
    free(before);
    free(start);
    free(del0);
    free(wd0);
    free(outer);
}

/* Account a list of steps in order. */
static void walk_steps(struct walk *w, const struct plan_step *parent)
{
    for (size_t i = 0; i < parent->n_steps; i++) {
        if (parent->steps[i].kind == STEP_REPEAT)
            repeat(w, &parent->steps[i]);
        else
            leaf(w, &parent->steps[i]);
    }
}

/* Work out volumes for every flow actuator. */
int timeline_compute(const struct plan *plan, const struct rig *rig, struct timeline *out)
{
    memset(out, 0, sizeof *out);
    size_t n = rig->n_channels ? rig->n_channels : 1;
    out->pumps = calloc(n, sizeof *out->pumps);
    double *value = malloc(n * sizeof *value);
    struct extent *ext = calloc(n, sizeof *ext);
    if (out->pumps == NULL || value == NULL || ext == NULL) {
        free(value);
        free(ext);
        free(out->pumps);
        out->pumps = NULL;
        return -ENOMEM;
    }
    for (size_t i = 0; i < rig->n_channels; i++) {
        value[i] = NAN;
        const struct rig_channel *c = &rig->channels[i];
        if (c->q != Q_FLOW || !c->writable)
            continue;
        struct timeline_pump *tp = &out->pumps[out->n_pumps++];
        tp->channel = (int)i;
        tp->capacity_ul = rig->devices[c->device].chans[c->dev_ch].volume_ul;
        tp->empty_at_ns = -1;
    }
    struct walk w = { .rig = rig, .tl = out, .value = value, .ext = ext };
    walk_steps(&w, &plan->root);
    free(value);
    free(ext);
    return 0;
}

void timeline_free(struct timeline *t)
{
    free(t->pumps);
    t->pumps = NULL;
    t->n_pumps = 0;
}
