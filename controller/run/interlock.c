/* Limit rules with debounce: trip and clear on samples; unknown values are ignored. */
#include "interlock.h"

#include "base/units.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *limit_action_name(enum limit_action a)
{
    switch (a) {
    case LIMIT_ALARM: return "alarm";
    case LIMIT_PAUSE: return "pause";
    case LIMIT_SAFE_STOP: return "safe-stop";
    }
    return "?";
}

/* Make room for n rules in all. */
static int reserve(struct interlocks *il, size_t n)
{
    struct limit_rule *v = realloc(il->rules, (n ? n : 1) * sizeof *v);
    if (v == NULL)
        return -ENOMEM;
    il->rules = v;
    return 0;
}

/* Append limits as rules. */
static void add(struct interlocks *il, const struct plan_limit *lim, size_t n, bool from_rig,
                const void *owner)
{
    for (size_t i = 0; i < n; i++) {
        struct limit_rule *r = &il->rules[il->n++];
        memset(r, 0, sizeof *r);
        r->lim = lim[i];
        r->from_rig = from_rig;
        r->owner = owner;
        r->since_ns = -1;
    }
}

int interlocks_init(struct interlocks *il, const struct plan_limit *rig_limits, size_t n,
                    const struct interlock_hooks *hooks)
{
    memset(il, 0, sizeof *il);
    il->hooks = *hooks;
    if (reserve(il, n) < 0)
        return -ENOMEM;
    add(il, rig_limits, n, true, NULL);
    il->n_rig = n;
    return 0;
}

int interlocks_set_run(struct interlocks *il, const struct plan_limit *limits, size_t n, int64_t t_ns)
{
    return interlocks_set_owner(il, NULL, limits, n, t_ns);
}

int interlocks_set_owner(struct interlocks *il, const void *owner, const struct plan_limit *limits,
                         size_t n, int64_t t_ns)
{
    il->gen++;
    size_t k = il->n_rig;
    for (size_t i = il->n_rig; i < il->n; i++) {
        if (il->rules[i].owner != owner && !il->rules[i].lingering) {
            il->rules[k++] = il->rules[i];      /* another run's: kept as it is */
        } else if (il->rules[i].tripped && il->rules[i].lim.action == LIMIT_SAFE_STOP) {
            il->rules[k] = il->rules[i];
            il->rules[k++].lingering = true;
        } else if (il->rules[i].tripped && il->hooks.clear) {
            il->hooks.clear(il->hooks.ctx, &il->rules[i], NAN, t_ns);
        }
    }
    il->n = k;
    if (reserve(il, k + n) < 0)
        return -ENOMEM;
    add(il, limits, n, false, owner);
    return 0;
}

/* Whether two bounds are the same (NaN: none, on both). */
static bool same_bound(double a, double b)
{
    return (isnan(a) && isnan(b)) || a == b;
}

int interlocks_restore(struct interlocks *il, const struct plan_limit *lim, bool from_rig, char side)
{
    for (size_t i = 0; from_rig && i < il->n_rig; i++) {
        struct limit_rule *r = &il->rules[i];
        if (r->lim.channel == lim->channel && r->lim.line == lim->line && r->lim.action == LIMIT_SAFE_STOP &&
            same_bound(r->lim.min, lim->min) && same_bound(r->lim.max, lim->max)) {
            r->tripped = true;
            r->side = side;
            return 0;
        }
    }
    if (reserve(il, il->n + 1) < 0)
        return -ENOMEM;
    add(il, lim, 1, from_rig, NULL);
    struct limit_rule *r = &il->rules[il->n - 1];
    r->lim.action = LIMIT_SAFE_STOP;
    r->tripped = true;
    r->side = side;
    r->lingering = true;
    return 0;
}

void interlocks_on_sample(struct interlocks *il, int channel, double value, int64_t t_ns)
{
    if (isnan(value))
        return;
    for (size_t i = 0; i < il->n; i++) {
        struct limit_rule *r = &il->rules[i];
        if (r->lim.channel != channel)
            continue;
        char side = !isnan(r->lim.max) && value > r->lim.max ? '>'
                  : !isnan(r->lim.min) && value < r->lim.min ? '<' : 0;
        if (side == 0) {
            r->since_ns = -1;
            if (r->tripped) {
                r->tripped = false;
                unsigned gen = il->gen;
                if (il->hooks.clear)
                    il->hooks.clear(il->hooks.ctx, r, value, t_ns);
                if (il->gen != gen)
                    return;         /* the hook changed the rules (a run ended) */
                if (r->lingering) {
                    /* Its run is over: cleared, it has nothing left to do. */
                    memmove(r, r + 1, (il->n - i - 1) * sizeof *r);
                    il->n--;
                    i--;
                }
            }
            continue;
        }
        if (r->lingering)
            continue;               /* it only waits to clear */
        /* Crossing straight from one side to the other starts a new excursion. */
        if (r->since_ns < 0 || side != r->side) {
            r->since_ns = t_ns;
            r->side = side;
        }
        if (!r->tripped && t_ns - r->since_ns >= r->lim.for_ns) {
            r->tripped = true;
            unsigned gen = il->gen;
            if (il->hooks.trip)
                il->hooks.trip(il->hooks.ctx, r, value, t_ns);
            if (il->gen != gen)
                return;             /* a safe-stop ended the run: its rules are gone */
        }
    }
}

void interlocks_free(struct interlocks *il)
{
    free(il->rules);
    memset(il, 0, sizeof *il);
}

void limit_tag(const struct limit_rule *rule, char *buf, size_t len)
{
    snprintf(buf, len, "%c%d", rule->from_rig ? 'r' : 'p', rule->lim.line);
}

void limit_describe(const struct limit_rule *rule, const char *name, const char *unit, double v,
                    char *buf, size_t len)
{
    bool above = rule->side == '>';
    char held[48] = "", where[24] = "";
    if (rule->lim.for_ns > 0) {
        char dur[32];
        unit_format_duration(rule->lim.for_ns, dur, sizeof dur);
        snprintf(held, sizeof held, " for %s", dur);
    }
    if (rule->lim.line > 0)
        snprintf(where, sizeof where, ", line %d", rule->lim.line);
    snprintf(buf, len, "%s %.4g %s is %s its %s %.4g %s%s (%s limit%s, action %s)", name, v, unit,
             above ? "above" : "below", above ? "max" : "min", above ? rule->lim.max : rule->lim.min,
             unit, held, rule->from_rig ? "rig" : "protocol", where, limit_action_name(rule->lim.action));
}
