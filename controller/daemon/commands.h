/*
 * The daemon's control commands: one table, one entry per command, from
 * which the control server dispatches and its messages list the names.
 * The handlers and hooks run on the loop thread, in the daemon given to
 * control_start as the hooks' ctx.
 */
#ifndef PERFUSE_COMMANDS_H
#define PERFUSE_COMMANDS_H

#include "control.h"

struct daemon;

/* The daemon's commands. */
const struct ctl_table *commands_table(void);
/* The hooks the control server needs from daemon d (status, the current
 * run's events), into *h. */
void commands_hooks(struct daemon *d, struct control_hooks *h);

#endif
