/* The simulated New Era NE-1000 pumps' command interpreter (no I/O). */
#ifndef PERFUSE_SIM_NEWERA_H
#define PERFUSE_SIM_NEWERA_H

#include <stddef.h>

#include "physics.h"

/* Answer one command line (without its CR) for the pumps at addresses
 * 0..SIM_PUMPS-1. Writes the reply bytes to out and returns their number, or 0
 * for silence (a command for an address nobody has). */
size_t sim_newera_handle(struct sim_physics *p, const char *line, char *out, size_t len);

#endif
