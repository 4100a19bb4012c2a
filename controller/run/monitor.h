/*
 * Flow monitors: a measured flow that should follow a pump's setpoint (a
 * rig's 'monitors:' entry). A monitor trips when the flow stays off the
 * setpoint by more than max(tolerance x |setpoint|, min_abs) for its debounce
 * time ('for'), and clears when a valid sample is within again. As with
 * interlocks, a dead sensor is never taken as a value: an unknown sample
 * (NaN) neither trips nor clears a monitor, and the time the sensor was dead
 * does not count toward the debounce. With no setpoint to follow (none yet,
 * or the pump in its own safe state) the monitor has nothing to judge.
 *
 * A pure module: no clock, no I/O. Loop thread only (or the simulation's).
 */
#ifndef PERFUSE_MONITOR_H
#define PERFUSE_MONITOR_H

#include <stdbool.h>
#include <stdint.h>

#include "plan/rig.h"

struct flow_monitor {
    struct rig_monitor spec;    /* the rig's entry */
    /* state */
    double setpoint;            /* NaN: nothing to follow */
    int64_t since_ns;           /* when the current deviation began; -1: none */
    int64_t dead_since_ns;      /* the sensor has been unknown since; -1: it is known */
    bool tripped;
};

enum monitor_news { MON_NONE, MON_TRIP, MON_CLEAR };

/* Reset the state: nothing to follow yet. */
void monitor_reset(struct flow_monitor *m);
/* The pump was commanded to v (NaN: no setpoint any more). */
void monitor_on_setpoint(struct flow_monitor *m, double v);
/* A sample of the flow (NaN: unknown) at t. */
enum monitor_news monitor_on_sample(struct flow_monitor *m, double v, int64_t t_ns);
/* The band the flow must stay in around the current setpoint, uL/min. */
double monitor_band(const struct flow_monitor *m);

#endif
