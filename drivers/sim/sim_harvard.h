/* The simulated Harvard Apparatus Pump 11 Elite line: two pumps in a daisy
 * chain at addresses 0 and 1, speaking the Ultra command set (no I/O). */
#ifndef PERFUSE_SIM_HARVARD_H
#define PERFUSE_SIM_HARVARD_H

#include <stdbool.h>
#include <stdint.h>

#include "sim_lines.h"

#define SIM_HARVARD_PUMPS 2

/* One simulated pump. Rates are in uL/min, volumes in uL. */
struct sim_hv_pump {
    double diameter_mm;
    double irate, wrate;
    int motion;                 /* +1 infusing, -1 withdrawing, 0 idle */
    bool stalled;               /* the prompt is '*' until stop or a run command */
    double capacity_ul;         /* what the syringe holds */
    double contents_ul;         /* what is in it now */
    double infused_ul, withdrawn_ul;
};

struct sim_harvard {
    struct sim_hv_pump pump[SIM_HARVARD_PUMPS];
    int64_t t_ns;               /* model time the pumps were last advanced to */
};

/* The line's module for perfuse-sim (sim_lines.c lists it). */
extern const struct sim_line_ops sim_harvard_line;

#endif
