/*
 * A pressure-driven chip: a pressure controller's channel pushes liquid from
 * a reservoir through tubing and a chip past a flow sensor. A pure model
 * (state plus a 10 ms tick, no clock and no I/O), part of struct sim_physics,
 * so perfuse-sim, perfusectl simulate and the regulation bench share it.
 *
 *   source      the controller's output follows its command with tau_s = 10 ms
 *   reservoir   hydrostatic head rho*g*(level - outlet height) adds to the
 *               source pressure; the level falls as liquid is used
 *   chip        steady flow Q* = (sign * P_source + P_head) / (R * r_factor),
 *               reached through a transport delay T_d and a first-order lag
 *               tau (tubing compliance)
 *   sensor      Q + N(0, 0.05 uL/min + 0.5 % of |Q|)
 *
 * Faults: clog (r_factor 5), a 10-fold resistance drop (r_factor 0.1, a
 * low-resistance chip), an empty reservoir (no flow whatever the pressure),
 * a bubble (the reading spikes to 160 % for 0.4 s, then dips to 40 % for
 * 1.2 s) and an inverted plant (sign -1: more pressure, less flow).
 */
#ifndef PERFUSE_PPLANT_H
#define PERFUSE_PPLANT_H

#include <stdbool.h>
#include <stdint.h>

#define SIM_PPLANTS 2
#define PPLANT_DELAY_MAX 64             /* ticks of transport delay at most */

/* The model's parameters (pplant_nominal gives the simulated rig's). */
struct pplant_params {
    double resistance;                  /* mbar per uL/min */
    double tau_s;                       /* compliance lag, s */
    double delay_s;                     /* transport delay, s (at most 0.64) */
    double source_tau_s;                /* the controller's own lag, s */
    double reservoir_ul;                /* full reservoir */
    double area_mm2;                    /* reservoir cross-section */
    double outlet_mm;                   /* outlet height above the reservoir's bottom */
    double noise_abs, noise_rel;        /* sensor noise: uL/min and fraction of |Q| */
};

struct sim_pplant {
    struct pplant_params par;
    double p_cmd;                       /* commanded source pressure, mbar */
    double p_src;                       /* the source's actual pressure, mbar */
    double flow;                        /* through the chip, uL/min */
    double volume_ul;                   /* left in the reservoir */
    double used_ul;
    double r_factor;                    /* 1 nominal, 5 clogged, 0.1 low resistance */
    int sign;                           /* +1, or -1 for an inverted plant */
    bool empty;                         /* reservoir emptied by a fault */
    bool bubble;
    int64_t bubble_ns;                  /* when the bubble reached the sensor */
    double line[PPLANT_DELAY_MAX];      /* steady flows on their way, oldest at head */
    int head;
};

/* The simulated rig's plant number i (0 or 1). */
struct pplant_params pplant_nominal(int i);
/* Initialise with parameters: full reservoir, no pressure, settled. */
void pplant_init(struct sim_pplant *pl, const struct pplant_params *par);
/* One step of dt seconds at model time now_ns. */
void pplant_tick(struct sim_pplant *pl, double dt, int64_t now_ns);
/* Hydrostatic head of the reservoir now, mbar. */
double pplant_head(const struct sim_pplant *pl);
/* The flow the sensor shows (before noise) at now_ns, bubble included. */
double pplant_sensed(const struct sim_pplant *pl, int64_t now_ns);
/* Steady-state gain, uL/min per mbar, with the plant as it is now (faults included). */
double pplant_gain(const struct sim_pplant *pl);

#endif
