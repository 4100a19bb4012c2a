/* A tripped limit: act, then raise its alarm; back inside: clear it. */
#include "trip.h"

/* The alarm code of a rule tripped on its side. */
static const char *trip_code(const struct limit_rule *rule)
{
    return rule->side == '>' ? "limit_max" : "limit_min";
}

uint32_t trip_limit(struct alarms *alarms, const struct limit_rule *rule_p, const char *name,
                    const char *unit, double v, int64_t t_ns, const struct trip_hooks *hooks)
{
    const struct limit_rule copy = *rule_p, *rule = &copy;
    char why[200], tag[16];
    limit_describe(rule, name, unit, v, why, sizeof why);
    if (rule->lim.action == LIMIT_SAFE_STOP)
        hooks->safe_stop(hooks->ctx, rule, why, t_ns);
    else if (rule->lim.action == LIMIT_PAUSE)
        hooks->pause(hooks->ctx, rule, why, t_ns);
    limit_tag(rule, tag, sizeof tag);
    uint32_t id = alarms_raise_run(alarms, hooks->run, t_ns, "alarm", name, trip_code(rule), tag, "%s", why);
    if (id == 0)    /* already active (tripped again before it cleared) */
        id = alarms_find_active_run(alarms, hooks->run, name, trip_code(rule), tag);
    return id;
}

void trip_clear(struct alarms *alarms, const struct limit_rule *rule, const char *run, const char *name,
                int64_t t_ns)
{
    char tag[16];
    limit_tag(rule, tag, sizeof tag);
    alarms_clear_run(alarms, run, t_ns, name, "limit_max", tag);
    alarms_clear_run(alarms, run, t_ns, name, "limit_min", tag);
}
