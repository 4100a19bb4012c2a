/*
 * What a tripped limit does, wherever limits are watched: in perfused and in
 * perfusectl simulate. The action comes first, so that a safe state goes out
 * before anything else; then the alarm is raised, "alarm" severity, from the
 * limit's channel, code limit_max or limit_min, the rule's tag (two limits
 * on one channel are two alarms), limit_describe's text. A channel back
 * inside clears both codes of that tag. How to stop safely or pause is the
 * caller's (hooks); this order and these names are written only here.
 *
 * Loop thread only.
 */
#ifndef PERFUSE_TRIP_H
#define PERFUSE_TRIP_H

#include <stdint.h>

#include "alarms.h"
#include "interlock.h"

struct trip_hooks {
    void *ctx;
    /* A safe-stop limit tripped: put the outputs in their safe state now.
     * why describes the trip (limit_describe). Required. */
    void (*safe_stop)(void *ctx, const struct limit_rule *rule, const char *why, int64_t t_ns);
    /* A pause limit tripped: pause the run, if one is going. Required. */
    void (*pause)(void *ctx, const struct limit_rule *rule, const char *why, int64_t t_ns);
    /* The run the rule belongs to, which the alarm belongs to (alarms.h);
     * NULL for a rig limit. */
    const char *run;
};

/* rule tripped on value v at t_ns; its channel is called name and measured
 * in unit. Act as the rule's action says (hooks; an alarm action does
 * nothing more), then raise its alarm in alarms. rule may be freed by what
 * the hooks do (ending a run drops its rules): it is copied first. Returns
 * the alarm's id: the new one, or the one still active from an earlier trip
 * of the same rule; 0 if out of memory. */
uint32_t trip_limit(struct alarms *alarms, const struct limit_rule *rule, const char *name,
                    const char *unit, double v, int64_t t_ns, const struct trip_hooks *hooks);
/* rule's channel (called name) is back inside at t_ns: its alarm, of run
 * (NULL: a rig limit), clears (it stays listed until acknowledged). */
void trip_clear(struct alarms *alarms, const struct limit_rule *rule, const char *run, const char *name,
                int64_t t_ns);

#endif
