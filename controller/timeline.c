/* What a plan will do: volumes per pump and when a syringe runs empty. */
#include "timeline.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct walk {
    const struct rig *rig;
    struct timeline *tl;
    double *value;              /* setpoint in force, per rig channel (NaN: never set) */
    int64_t t;                  /* planned time */
};

/* Add volume moved at a constant rate (uL/min) for dur ns to pump p, noting when it empties. */
static void flow(struct walk *w, int p, double rate, int64_t dur, const struct plan_step *step)
{
    struct timeline_pump *tp = &w->tl->pumps[p];
    double minutes = (double)dur / 60e9;
    if (rate < 0) {
        tp->withdrawn_ul += -rate * minutes;
        return;
    }
    double before = tp->delivered_ul;
    tp->delivered_ul += rate * minutes;
    if (tp->capacity_ul > 0 && tp->empty_at_ns < 0 && tp->delivered_ul > tp->capacity_ul) {
        double frac = (tp->capacity_ul - before) / (rate * minutes);
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

/* Passes of a steady repeat that can be skipped before some syringe empties. */
static uint64_t passes_before_empty(const struct walk *w, const double *vol0, uint64_t rest)
{
    uint64_t skip = rest;
    for (size_t p = 0; p < w->tl->n_pumps; p++) {
        const struct timeline_pump *tp = &w->tl->pumps[p];
        double per_pass = tp->delivered_ul - vol0[p];
        if (tp->capacity_ul <= 0 || tp->empty_at_ns >= 0 || per_pass <= 0)
            continue;
        double left = (tp->capacity_ul - tp->delivered_ul) / per_pass;
        uint64_t n = left < (double)rest ? (uint64_t)left : rest;
        if (n < skip)
            skip = n;
    }
    return skip;
}

/* Account a repeat. Once the setpoints entering a pass stop changing, every
 * later pass is the same, so passes are multiplied instead of walked, except
 * the one in which a syringe runs empty, which is walked to find the moment.
 * A repeat of a million passes costs a few walks, not a million. */
static void repeat(struct walk *w, const struct plan_step *s)
{
    size_t nch = w->rig->n_channels;
    double *before = malloc(nch * sizeof *before);
    double *vol0 = malloc((w->tl->n_pumps + 1) * sizeof *vol0);
    if (before == NULL || vol0 == NULL) {
        free(before);
        free(vol0);
        return;
    }
    for (uint64_t k = 0; k < s->count; k++) {
        memcpy(before, w->value, nch * sizeof *before);
        for (size_t p = 0; p < w->tl->n_pumps; p++)
            vol0[p] = w->tl->pumps[p].delivered_ul;
        int64_t t0 = w->t;
        walk_steps(w, s);
        if (memcmp(before, w->value, nch * sizeof *before) != 0 || k + 1 >= s->count)
            continue;
        uint64_t skip = passes_before_empty(w, vol0, s->count - k - 1);
        for (size_t p = 0; p < w->tl->n_pumps; p++) {
            struct timeline_pump *tp = &w->tl->pumps[p];
            double per_pass = tp->delivered_ul - vol0[p];
            tp->delivered_ul += (double)skip * per_pass;
        }
        w->t += (int64_t)skip * (w->t - t0);
        k += skip;
    }
    free(before);
    free(vol0);
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
    out->pumps = calloc(rig->n_channels ? rig->n_channels : 1, sizeof *out->pumps);
    double *value = malloc((rig->n_channels ? rig->n_channels : 1) * sizeof *value);
    if (out->pumps == NULL || value == NULL) {
        free(value);
        free(out->pumps);
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
    struct walk w = { .rig = rig, .tl = out, .value = value };
    walk_steps(&w, &plan->root);
    free(value);
    return 0;
}

void timeline_free(struct timeline *t)
{
    free(t->pumps);
    t->pumps = NULL;
    t->n_pumps = 0;
}
