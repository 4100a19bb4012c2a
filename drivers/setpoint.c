/* Setpoint checks shared by the flow actuators' drivers. */
#include "setpoint.h"

#include <errno.h>
#include <math.h>

/* Check a flow setpoint against max_flow. */
int setpoint_check_flow(struct bus_link *link, const char *dev, double v, double max_flow)
{
    if (!isfinite(v)) {
        link_seterr(link, "%s: flow setpoint is not a number", dev);
        return -EINVAL;
    }
    /* The relative margin keeps a setpoint of exactly max_flow, converted
     * from another unit, from failing on its last bit. */
    if (fabs(v) > max_flow * (1 + 1e-9)) {
        link_seterr(link, "%s: %g uL/min is beyond max_flow (%g uL/min)", dev, v, max_flow);
        return -ERANGE;
    }
    return 0;
}
