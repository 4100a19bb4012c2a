/*
 * The simulated Ismatec Reglo ICC: one 4-channel pump at address 1 on the
 * "reglo" line (sim_lines.h). Its state is public so tests can look at what
 * the pump did; only sim_reglo_line's functions change it.
 */
#ifndef PERFUSE_SIM_REGLO_H
#define PERFUSE_SIM_REGLO_H

#include <stdbool.h>
#include <stdint.h>

#include "sim_lines.h"

#define SIM_REGLO_ADDRESS 1
#define SIM_REGLO_CHANNELS 4

/* One channel of the pump head. */
struct sim_reglo_channel {
    bool running;
    char rotation;          /* 'J' clockwise, 'K' counter-clockwise */
    char mode;              /* 'L' RPM, 'M' flow rate, ... */
    double rate_ml_min;     /* flow-rate setting */
    double max_ml_min;      /* the most its tubing gives */
    double pumped_ml;       /* volume moved while running: + clockwise, - counter-clockwise */
};

struct sim_reglo {
    bool channel_addressing;    /* "~1" given: addresses 1-4 are channels */
    int64_t last_ns;            /* model time the volumes were brought up to */
    struct sim_reglo_channel ch[SIM_REGLO_CHANNELS];
};

extern const struct sim_line_ops sim_reglo_line;

#endif
