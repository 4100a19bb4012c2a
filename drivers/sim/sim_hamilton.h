/* The simulated Hamilton MVP valves' line (sim_lines.h): two valves at a and b. */
#ifndef PERFUSE_SIM_HAMILTON_H
#define PERFUSE_SIM_HAMILTON_H

#include <stdbool.h>
#include <stdint.h>

#include "sim_lines.h"

#define SIM_HM_VALVES 2
#define SIM_HM_INIT_NS 500000000LL          /* an initialisation takes 0.5 s */
#define SIM_HM_MOVE_BASE_NS 40000000LL      /* a move takes 40 ms ... */
#define SIM_HM_MOVE_STEP_NS 60000000LL      /* ... plus 60 ms per port passed */

/* One valve: where its rotor is and where it is going. */
struct sim_valve {
    int ports;
    bool initialised;
    int port;                   /* the port it is at, or the one it left while moving */
    bool moving, homing;        /* homing: the move is an initialisation */
    int target;
    int64_t end_ns;             /* when the move ends, in model time */
};

/* The line: valve i answers at address 'a' + i. */
struct sim_hamilton {
    struct sim_valve valve[SIM_HM_VALVES];
};

extern const struct sim_line_ops sim_hamilton_line;

#endif
