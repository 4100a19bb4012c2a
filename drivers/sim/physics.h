/*
 * The simulated rig's physics: two syringe pumps, two chips (hydraulic
 * resistance, pressure and flow sensors), oxygen on chip1, an incubator and a
 * rotary valve. A pure model: state plus advance_to(t), no clock and no I/O,
 * so perfuse-sim (real time) and perfusectl simulate (virtual time) share it.
 *
 * Deterministic: the noise of a reading is a function of (seed, tick,
 * sensor), so the same seed gives the same samples to the bit, however often
 * and in whatever order the sensors are read.
 */
#ifndef PERFUSE_PHYSICS_H
#define PERFUSE_PHYSICS_H

#include <stdbool.h>
#include <stdint.h>

#include "pplant.h"

#define SIM_PUMPS 2
#define SIM_CHIPS 2
#define SIM_TICK_NS 10000000LL      /* 10 ms model step */

struct sim_pump {
    double diameter_mm;
    double rate;                    /* uL/min, >= 0 */
    char rate_units[3];             /* as last set: UM, MM, UH, MH */
    int direction;                  /* +1 infuse, -1 withdraw */
    bool running;
    double infused_ul, withdrawn_ul;
    double remaining_ul;            /* left in the syringe */
    double syringe_ul;
    char alarm;                     /* latched alarm ('S' stall), 0 if none */
    int safe_s;                     /* safe-mode time-out (SAF), s; 0: Basic mode */
    bool safe_armed;                /* a valid packet came; the time-out runs */
    int64_t safe_last_ns;           /* model time of the last valid packet */
};

/* Faults that change what the devices do (wire faults live in the servers). */
struct sim_faults {
    double clog[SIM_CHIPS];         /* resistance multiplier, 1 = none */
    bool bubble[SIM_CHIPS];         /* flow sensor reads low */
    bool stuck[SIM_CHIPS];          /* pressure reading frozen */
    bool nan_pressure[SIM_CHIPS];   /* pressure reads NaN */
    bool range_pressure[SIM_CHIPS]; /* pressure reads far outside any sensor's range */
    bool pflow_nan[SIM_PPLANTS];    /* a pressure-driven chip's flow reads NaN */
    bool pflow_stuck[SIM_PPLANTS];  /* ... or freezes */
};

struct sim_physics {
    uint64_t seed;
    int64_t now_ns;                 /* model time; starts at 0 */
    uint64_t tick;
    struct sim_pump pump[SIM_PUMPS];
    double chip_flow[SIM_CHIPS];    /* actual flow through the chip, uL/min */
    double chip_pressure[SIM_CHIPS];/* noiseless inlet pressure, mbar */
    double stuck_value[SIM_CHIPS];
    struct sim_pplant pplant[SIM_PPLANTS];  /* chips driven by pressure (ob1, pc1) */
    double pflow_stuck_value[SIM_PPLANTS];
    double o2;                      /* chip1, % air saturation */
    double temp, temp_setpoint;     /* incubator, degC */
    int valve_position, valve_target;
    int64_t valve_done_ns;          /* when the move ends */
    struct sim_faults faults;
};

/* Nominal model parameters (documented in physics.c). */
extern const double sim_resistance[SIM_CHIPS];   /* mbar per uL/min */
extern const double sim_p0;                      /* mbar */

/* Initialise the model with a seed: syringes full, valve at port 1, incubator at 36 degC. */
void sim_physics_init(struct sim_physics *p, uint64_t seed);
/* Advance the model in 10 ms ticks until now_ns reaches t_ns. */
void sim_physics_advance_to(struct sim_physics *p, int64_t t_ns);

/* Sensor readings at the current tick, with noise (and faults). */
double sim_read_pressure(const struct sim_physics *p, int chip);
double sim_read_flow(const struct sim_physics *p, int chip);
double sim_read_o2(const struct sim_physics *p);
double sim_read_temp(const struct sim_physics *p);
/* A pressure-driven chip's flow reading, uL/min, and its source's pressure reading, mbar. */
double sim_read_pflow(const struct sim_physics *p, int plant);
double sim_read_psource(const struct sim_physics *p, int plant);
/* The valve's position (while moving, the old one) and whether it moves. */
int sim_valve_position(const struct sim_physics *p);
bool sim_valve_busy(const struct sim_physics *p);
/* Command the valve to a port 1..6; returns false if out of range. */
bool sim_valve_move(struct sim_physics *p, int port);

/* The flow a pump delivers now, uL/min (negative when withdrawing). */
double sim_pump_flow(const struct sim_pump *pump);

#endif
