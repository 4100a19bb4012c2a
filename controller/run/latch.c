/* Latched interlocks: which actuators a tripped safe-stop holds, and until when. */
#include "latch.h"

#include "drivers/driver.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void latch_init(struct latch *l, size_t n_channels)
{
    memset(l, 0, sizeof *l);
    l->n_channels = n_channels;
}

void latch_free(struct latch *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].held);
        free(l->v[i].safe);
    }
    free(l->v);
    memset(l, 0, sizeof *l);
}

int latch_add(struct latch *l, uint32_t alarm, const char *cause, const char *channel,
              const bool *held)
{
    return latch_add_origin(l, alarm, cause, channel, held, NULL, 0, NULL);
}

int latch_add_origin(struct latch *l, uint32_t alarm, const char *cause, const char *channel,
                     const bool *held, const struct plan_target *safe, size_t n_safe,
                     const struct latch_origin *origin)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4;
        struct latch_hold *v = realloc(l->v, cap * sizeof *v);
        if (v == NULL)
            return -ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    struct latch_hold *h = &l->v[l->n];
    memset(h, 0, sizeof *h);
    size_t n = l->n_channels ? l->n_channels : 1;
    h->held = malloc(n * sizeof *h->held);
    h->safe = malloc(n * sizeof *h->safe);
    if (h->held == NULL || h->safe == NULL) {
        free(h->held);
        free(h->safe);
        return -ENOMEM;
    }
    memcpy(h->held, held, l->n_channels * sizeof *h->held);
    for (size_t i = 0; i < n; i++)
        h->safe[i] = NAN;
    for (size_t i = 0; i < n_safe; i++)
        if (safe[i].channel >= 0 && (size_t)safe[i].channel < l->n_channels)
            h->safe[safe[i].channel] = safe[i].v0;
    h->alarm = alarm;
    snprintf(h->cause, sizeof h->cause, "%s", cause);
    snprintf(h->channel, sizeof h->channel, "%s", channel);
    if (origin != NULL)
        h->origin = *origin;
    else
        h->origin.lim.channel = -1;
    l->n++;
    return 0;
}

const struct latch_hold *latch_holder(const struct latch *l, int channel)
{
    if (channel < 0 || (size_t)channel >= l->n_channels)
        return NULL;
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i].held[channel])
            return &l->v[i];
    return NULL;
}

/* The listed alarm with id, or NULL. */
static const struct alarm *find_alarm(const struct alarms *a, uint32_t id)
{
    for (size_t i = 0; i < a->n; i++)
        if (a->v[i].id == id)
            return &a->v[i];
    return NULL;
}

size_t latch_update(struct latch *l, const struct alarms *a,
                    void (*released)(void *ctx, const struct latch_hold *h), void *ctx)
{
    size_t n = 0;
    for (size_t i = 0; i < l->n;) {
        const struct alarm *al = find_alarm(a, l->v[i].alarm);
        if (al != NULL && (al->active || !al->acked)) {
            i++;
            continue;
        }
        if (released)
            released(ctx, &l->v[i]);
        free(l->v[i].held);
        free(l->v[i].safe);
        memmove(&l->v[i], &l->v[i + 1], (l->n - i - 1) * sizeof *l->v);
        l->n--;
        n++;
    }
    return n;
}

void latch_refusal(const struct latch_hold *h, const struct alarms *a, const char *name, char *buf,
                   size_t len)
{
    const struct alarm *al = find_alarm(a, h->alarm);
    bool active = al == NULL || al->active, acked = al != NULL && al->acked;
    int k = snprintf(buf, len, "%s is held in its safe state by alarm %u (%s)", name, h->alarm, h->cause);
    if (k < 0 || (size_t)k >= len)
        return;
    if (h->channel[0] == '\0')     /* no condition to wait for: the acknowledgement releases it */
        snprintf(buf + k, len - (size_t)k, "; check the rig, then acknowledge it with `perfusectl ack "
                 "%u` to release it", h->alarm);
    else if (!acked && active)
        snprintf(buf + k, len - (size_t)k, "; acknowledge it with `perfusectl ack %u` once %s is back "
                 "within its limit", h->alarm, h->channel);
    else if (!acked)
        snprintf(buf + k, len - (size_t)k, "; %s is back within its limit: acknowledge the alarm with "
                 "`perfusectl ack %u` to release it", h->channel, h->alarm);
    else
        snprintf(buf + k, len - (size_t)k, ", acknowledged; it is released once %s is back within its "
                 "limit", h->channel);
}

void latch_safe_channels(const struct rig *rig, const struct plan_target *targets, size_t n,
                         bool every, bool *held)
{
    for (size_t c = 0; c < rig->n_channels; c++)
        held[c] = every && rig->channels[c].writable;
    if (every)
        return;
    for (size_t i = 0; i < n; i++)
        held[targets[i].channel] = true;
    for (size_t d = 0; d < rig->n_devices; d++) {
        bool covered = false;
        for (size_t i = 0; i < n; i++)
            if (rig->channels[targets[i].channel].device == d)
                covered = true;
        if (covered || rig->devices[d].drv == NULL || rig->devices[d].drv->safe_state == NULL)
            continue;
        for (size_t c = 0; c < rig->n_channels; c++)
            if (rig->channels[c].device == d && rig->channels[c].writable)
                held[c] = true;
    }
}

/* Mark the channels that step and the steps inside it write. */
static void step_writes(const struct plan_step *s, size_t n_channels, bool *writes)
{
    for (size_t i = 0; i < s->n_targets; i++)
        if (s->targets[i].channel >= 0 && (size_t)s->targets[i].channel < n_channels)
            writes[s->targets[i].channel] = true;
    for (size_t i = 0; i < s->n_steps; i++)
        step_writes(&s->steps[i], n_channels, writes);
}

void latch_plan_writes(const struct plan *p, size_t n_channels, bool *writes)
{
    memset(writes, 0, n_channels * sizeof *writes);
    step_writes(&p->root, n_channels, writes);
}
