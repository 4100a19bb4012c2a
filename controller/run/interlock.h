/*
 * Interlocks: limits on measured channels, evaluated on every sample on the
 * loop thread. A rule trips when its channel stays outside [min, max] for
 * its debounce time ('for'); it clears when a valid sample is inside again.
 * An unknown value (a failed read, NaN) neither trips nor clears a rule, nor
 * advances or restarts its debounce: a dead sensor is never taken as a value.
 *
 * Two sets of rules: the rig's (always applied, even with no run) and the
 * current protocol's (from its 'limits:' list, for the run's length).
 *
 * Loop thread only.
 */
#ifndef PERFUSE_INTERLOCK_H
#define PERFUSE_INTERLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "plan/plan.h"

struct limit_rule {
    struct plan_limit lim;      /* channel, min, max, for_ns, action, line */
    bool from_rig;
    const void *owner;          /* a protocol's rule: the run it belongs to (NULL: the only one) */
    /* state */
    int64_t since_ns;           /* when the current excursion began; -1 when inside */
    bool tripped;
    char side;                  /* '>' above max, '<' below min */
    bool lingering;             /* a tripped safe-stop of a run that has ended: kept,
                                 * only to clear, until its channel is back inside */
};

struct interlock_hooks {
    void *ctx;
    /* A rule tripped on value at t (the sample that completed its debounce).
     * rule may be freed by what the hook does (ending the run drops its rules):
     * copy what is needed first. */
    void (*trip)(void *ctx, const struct limit_rule *rule, double value, int64_t t_ns);
    /* A tripped rule's channel is back inside its limits. */
    void (*clear)(void *ctx, const struct limit_rule *rule, double value, int64_t t_ns);
};

struct interlocks {
    struct limit_rule *rules;   /* the rig's first, then the run's */
    size_t n_rig, n;
    unsigned gen;               /* changes when the run's rules change */
    struct interlock_hooks hooks;
};

/* Start with the rig's limits (copied); returns 0 or -ENOMEM. */
int interlocks_init(struct interlocks *il, const struct plan_limit *rig_limits, size_t n,
                    const struct interlock_hooks *hooks);
/* Replace the run's rules with a protocol's limits (NULL, 0: the run ended),
 * at clock time t_ns. A tripped safe-stop rule of the last run lingers until
 * it clears: the safe state it latched is released only once its condition is
 * gone. Any other tripped rule of the last run is cleared (hooks.clear, with
 * a NaN value) as it is dropped: nothing watches its condition any more, and
 * an alarm left active would hide the next run's own. */
int interlocks_set_run(struct interlocks *il, const struct plan_limit *limits, size_t n, int64_t t_ns);
/* The same for one of several runs at once: only the rules of owner (the
 * run, as the trip hook sees it in rule->owner) are replaced. */
int interlocks_set_owner(struct interlocks *il, const void *owner, const struct plan_limit *limits,
                         size_t n, int64_t t_ns);
/* A safe-stop limit that had tripped before a restart (lim, from the rig or
 * a protocol, on side '>' or '<'): its rule is tripped again without a trip
 * (the caller applies the safe state), so that the clear hook is called once
 * a valid sample is back inside. A rig rule still in the rig (the same
 * channel, line and bounds) is marked; otherwise a lingering copy is added,
 * as for a tripped rule of an ended run. Returns 0 or -ENOMEM. */
int interlocks_restore(struct interlocks *il, const struct plan_limit *lim, bool from_rig, char side);
/* Evaluate every rule on channel for one sample (NaN: unknown). */
void interlocks_on_sample(struct interlocks *il, int channel, double value, int64_t t_ns);
void interlocks_free(struct interlocks *il);

/* Which rule an alarm is for ("p12": protocol line 12): two limits on one
 * channel are two alarms. */
void limit_tag(const struct limit_rule *rule, char *buf, size_t len);
/* "chip1.pressure 412 mbar is above its max 350 mbar for 2 s (protocol limit,
 * line 14, action safe-stop)": a tripped rule, for events and alarms. */
void limit_describe(const struct limit_rule *rule, const char *name, const char *unit, double v,
                    char *buf, size_t len);
/* "alarm", "pause" or "safe-stop". */
const char *limit_action_name(enum limit_action a);

#endif
