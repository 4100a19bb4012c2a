/*
 * perfusectl fleet: every rig seen on an MQTT broker (controller/MQTT.md),
 * from the retained state, status and alarms topics.
 */
#ifndef PERFUSE_FLEET_H
#define PERFUSE_FLEET_H

#include <stdbool.h>

/* Run `perfusectl fleet` with argv[0] = "fleet"; json: print JSON. Returns
 * perfusectl's exit code (0, 1 refused, 2 usage, 3 broker not reachable). */
int fleet_main(int argc, char **argv, bool json);

#endif
