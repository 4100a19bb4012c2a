/* Plausibility checks per measured channel: NaN, physical range, stuck, lost. */
#include "plausibility.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

const char *plaus_kind_name(enum plaus_kind k)
{
    static const char *const names[PF_KINDS] = { "nan", "range", "stuck", "lost" };
    return k < PF_KINDS ? names[k] : "?";
}

int plaus_init(struct plausibility *p, size_t n, int64_t t0_ns, const struct plaus_hooks *hooks)
{
    p->c = calloc(n ? n : 1, sizeof *p->c);
    if (p->c == NULL)
        return -ENOMEM;
    p->n = n;
    p->hooks = *hooks;
    for (size_t i = 0; i < n; i++) {
        p->c[i].min = p->c[i].max = p->c[i].last = NAN;
        p->c[i].last_change_ns = p->c[i].last_valid_ns = t0_ns;
    }
    return 0;
}

void plaus_free(struct plausibility *p)
{
    free(p->c);
    p->c = NULL;
    p->n = 0;
}

/* Set or clear one fault, telling the hook on a change. */
static void set(struct plausibility *p, int ch, enum plaus_kind k, bool on, double v, int64_t t)
{
    struct plaus_chan *c = &p->c[ch];
    bool was = (c->active >> k) & 1u;
    if (was == on)
        return;
    c->active = on ? c->active | (1u << k) : c->active & ~(1u << k);
    if (p->hooks.change)
        p->hooks.change(p->hooks.ctx, ch, k, on, v, t);
}

double plaus_sample(struct plausibility *p, int ch, double v, int64_t t, double *record)
{
    *record = v;
    if (ch < 0 || (size_t)ch >= p->n || !p->c[ch].on)
        return v;
    struct plaus_chan *c = &p->c[ch];
    bool nan = isnan(v);
    bool out = !nan && ((!isnan(c->min) && v < c->min) || (!isnan(c->max) && v > c->max));
    set(p, ch, PF_NAN, nan, v, t);
    set(p, ch, PF_RANGE, out, v, t);
    if (nan || out) {
        *record = NAN;
        return NAN;
    }
    if (v != c->last) {
        c->last = v;
        c->last_change_ns = t;
        set(p, ch, PF_STUCK, false, v, t);
    } else if (c->stuck_ns > 0 && t - c->last_change_ns >= c->stuck_ns) {
        set(p, ch, PF_STUCK, true, v, t);
    }
    c->last_valid_ns = t;
    set(p, ch, PF_LOST, false, v, t);
    return c->active ? NAN : v;
}

void plaus_tick(struct plausibility *p, int64_t now)
{
    for (size_t i = 0; i < p->n; i++) {
        struct plaus_chan *c = &p->c[i];
        if (c->on && c->lost_ns > 0 && now - c->last_valid_ns >= c->lost_ns)
            set(p, (int)i, PF_LOST, true, NAN, now);
    }
}
