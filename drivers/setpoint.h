/*
 * Checks of a setpoint that every flow actuator's driver makes before it
 * sends anything. Pure: no I/O, any thread (drivers call them on the bus
 * thread).
 */
#ifndef PERFUSE_SETPOINT_H
#define PERFUSE_SETPOINT_H

#include "link.h"

/* Check a flow setpoint v (uL/min, signed) against max_flow (uL/min, > 0).
 * Returns 0, -EINVAL if v is not a number, or -ERANGE if |v| is beyond
 * max_flow; on error link->err says so, naming the device dev. */
int setpoint_check_flow(struct bus_link *link, const char *dev, double v, double max_flow);

#endif
