/*
 * perfusectl's offline tools: they need no daemon. Each is run with the
 * command's arguments (argv[0] its name) and returns perfusectl's exit code.
 */
#ifndef PERFUSE_OFFLINE_H
#define PERFUSE_OFFLINE_H

struct ctl;

/* check PROTOCOL [--rig FILE] [--json]: validate; print the timeline, duration and volumes. */
int offline_check(struct ctl *c, int argc, char **argv);
/* simulate PROTOCOL [--rig FILE] [-o OUT.h5] ...: a run in virtual time on the simulated rig. */
int offline_simulate(struct ctl *c, int argc, char **argv);
/* recover FILE.h5: make a run file left by a crash readable. */
int offline_recover(struct ctl *c, int argc, char **argv);

#endif
