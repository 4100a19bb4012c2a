/*
 * perfusectl fleet: every rig seen on an MQTT broker (controller/MQTT.md),
 * from the retained state, status and alarms topics.
 */
#ifndef PERFUSE_FLEET_H
#define PERFUSE_FLEET_H

#include "ctl.h"

/* Run `perfusectl fleet` (argv[0] = "fleet"); c->json: print JSON. Returns
 * perfusectl's exit code (3: the broker cannot be reached or refuses the login). */
int fleet_run(struct ctl *c, int argc, char **argv);

#endif
