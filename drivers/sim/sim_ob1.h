/*
 * The simulated OB1 MK4-style pressure controller: four regulators on the
 * "ob1" line (sim_lines.h). Channel 0 pushes the pressure-driven chip 0 of the
 * shared physics (chip3 in the rig); the others hold their pressure ideally.
 * Its state is public so tests can look at what it was told.
 */
#ifndef PERFUSE_SIM_OB1_H
#define PERFUSE_SIM_OB1_H

#include <stdint.h>

#include "physics.h"
#include "sim_lines.h"

#define SIM_OB1_CHANNELS 4

struct sim_ob1 {
    struct sim_physics *phys;           /* borrowed; NULL: no chip attached */
    double press[SIM_OB1_CHANNELS];     /* setpoints, mbar */
    unsigned presses;                   /* PRESS commands taken */
};

extern const struct sim_line_ops sim_ob1_line;

#endif
