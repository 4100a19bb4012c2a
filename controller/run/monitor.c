/* Flow monitors: a flow sensor that must follow its pump, with a debounce. */
#include "monitor.h"

#include <math.h>

/* Nothing to follow yet, no deviation. */
void monitor_reset(struct flow_monitor *m)
{
    m->setpoint = NAN;
    m->since_ns = m->dead_since_ns = -1;
    m->tripped = false;
}

/* The setpoint the flow must follow now. */
void monitor_on_setpoint(struct flow_monitor *m, double v)
{
    m->setpoint = v;
}

/* The allowed deviation: a fraction of the setpoint, at least min_abs. */
double monitor_band(const struct flow_monitor *m)
{
    return fmax(m->spec.tolerance * fabs(m->setpoint), m->spec.min_abs);
}

/* Judge one sample against the setpoint. */
enum monitor_news monitor_on_sample(struct flow_monitor *m, double v, int64_t t_ns)
{
    if (isnan(v) || isnan(m->setpoint)) {
        if (m->dead_since_ns < 0)
            m->dead_since_ns = t_ns;
        return MON_NONE;
    }
    if (m->dead_since_ns >= 0) {
        /* The time nothing could be judged is not part of a deviation. */
        if (m->since_ns >= 0)
            m->since_ns += t_ns - m->dead_since_ns;
        m->dead_since_ns = -1;
    }
    if (fabs(v - m->setpoint) <= monitor_band(m)) {
        m->since_ns = -1;
        if (!m->tripped)
            return MON_NONE;
        m->tripped = false;
        return MON_CLEAR;
    }
    if (m->since_ns < 0)
        m->since_ns = t_ns;
    if (m->tripped || t_ns - m->since_ns < m->spec.for_ns)
        return MON_NONE;
    m->tripped = true;
    return MON_TRIP;
}
