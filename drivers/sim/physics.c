/*
 * The simulated rig's physics.
 *
 * Models (time step dt = 10 ms; first-order lags are exact exponentials):
 *
 *   Syringe pump i   delivers q_i = rate (infusing), -rate (withdrawing) or 0.
 *                    The syringe (10 mL, starting full) loses q_i * dt while
 *                    infusing; when it is empty the pump stops and latches the
 *                    stall alarm 'S' (New Era "A?S").
 *   Chip i flow      Q_i follows q_i with a lag: tau_Q = 0.5 s (tubing compliance).
 *   Chip i pressure  P_i follows R_i * c_i * Q_i + p0 with tau_P = 1.5 s, where
 *                    R_1 = 2.5 and R_2 = 3.0 mbar per uL/min, p0 = 4 mbar
 *                    (hydrostatic head) and c_i the clog factor (1 = none).
 *                    Reading: P_i + N(0, 0.3 mbar).
 *   Flow sensor i    Q_i + N(0, 0.05 uL/min + 0.5 % of |Q_i|); a bubble makes it
 *                    read 40 % of the flow.
 *   Oxygen (chip1)   dO/dt = -k_c + k_r * |Q_1| * (100 - O), O in % air
 *                    saturation, k_c = 0.05 %/s (cell consumption),
 *                    k_r = 0.002 per (uL/min s); O starts at 95 %. At 10 uL/min
 *                    it settles near 97.5 %, at 1 uL/min near 75 %, and with
 *                    no flow it falls by 3 % a minute. Reading: + N(0, 0.2 %).
 *   Incubator        T approaches its setpoint (37 degC) with tau_T = 120 s,
 *                    from 36.0 degC. Reading: + N(0, 0.02 degC).
 *   Rotary valve     6 ports; a move takes 300 ms, during which it is busy.
 *   Pressure chips   two chips driven by pressure controllers (pplant.c):
 *                    plant 0 by ob1's channel 1, plant 1 by pc1. Source
 *                    pressure reading: + N(0, 0.1 mbar).
 *
 * Noise: splitmix64 of (seed, tick, sensor) gives two uniforms, Box-Muller
 * gives the Gaussian: a reading depends only on the seed and the model time.
 */
#include "physics.h"

#include <math.h>
#include <string.h>

const double sim_resistance[SIM_CHIPS] = { 2.5, 3.0 };
const double sim_p0 = 4.0;

#define TAU_Q 0.5
#define TAU_P 1.5
#define TAU_T 120.0
#define K_CONSUME 0.05
#define K_RECOVER 0.002
#define VALVE_MOVE_NS 300000000LL

enum { NOISE_P0, NOISE_P1, NOISE_Q0, NOISE_Q1, NOISE_O2, NOISE_T, NOISE_PQ0, NOISE_PQ1,
       NOISE_PS0, NOISE_PS1 };

/* Initialise the model. */
void sim_physics_init(struct sim_physics *p, uint64_t seed)
{
    memset(p, 0, sizeof *p);
    p->seed = seed;
    for (int i = 0; i < SIM_PUMPS; i++) {
        p->pump[i].diameter_mm = 14.57;
        p->pump[i].direction = 1;
        p->pump[i].syringe_ul = 10000.0;
        p->pump[i].remaining_ul = 10000.0;
        memcpy(p->pump[i].rate_units, "UM", 3);
    }
    for (int i = 0; i < SIM_CHIPS; i++) {
        p->chip_pressure[i] = sim_p0;
        p->faults.clog[i] = 1.0;
    }
    for (int i = 0; i < SIM_PPLANTS; i++) {
        struct pplant_params par = pplant_nominal(i);
        pplant_init(&p->pplant[i], &par);
    }
    p->o2 = 95.0;
    p->temp = 36.0;
    p->temp_setpoint = 37.0;
    p->valve_position = p->valve_target = 1;
}

/* The flow a pump delivers now. */
double sim_pump_flow(const struct sim_pump *pump)
{
    return pump->running ? pump->rate * pump->direction : 0.0;
}

/* One 10 ms step of every model. */
static void tick(struct sim_physics *p)
{
    const double dt = SIM_TICK_NS / 1e9;
    const double aq = 1.0 - exp(-dt / TAU_Q), ap = 1.0 - exp(-dt / TAU_P), at = 1.0 - exp(-dt / TAU_T);
    for (int i = 0; i < SIM_PUMPS; i++) {
        struct sim_pump *pu = &p->pump[i];
        double q = sim_pump_flow(pu);
        double dv = fabs(q) * dt / 60.0;
        if (q > 0) {
            if (dv >= pu->remaining_ul) {
                dv = pu->remaining_ul;
                pu->running = false;
                pu->alarm = 'S';
            }
            pu->remaining_ul -= dv;
            pu->infused_ul += dv;
        } else if (q < 0) {
            dv = fmin(dv, pu->syringe_ul - pu->remaining_ul);
            pu->remaining_ul += dv;
            pu->withdrawn_ul += dv;
        }
        p->chip_flow[i] += (sim_pump_flow(pu) - p->chip_flow[i]) * aq;
        double target = sim_resistance[i] * p->faults.clog[i] * p->chip_flow[i] + sim_p0;
        p->chip_pressure[i] += (target - p->chip_pressure[i]) * ap;
    }
    for (int i = 0; i < SIM_PPLANTS; i++)
        pplant_tick(&p->pplant[i], dt, p->now_ns);
    double q1 = fabs(p->chip_flow[0]);
    p->o2 += (-K_CONSUME + K_RECOVER * q1 * (100.0 - p->o2)) * dt;
    p->o2 = fmin(100.0, fmax(0.0, p->o2));
    p->temp += (p->temp_setpoint - p->temp) * at;
    p->now_ns += SIM_TICK_NS;
    p->tick++;
    if (p->valve_position != p->valve_target && p->now_ns >= p->valve_done_ns)
        p->valve_position = p->valve_target;
}

/* Advance in ticks until now_ns reaches t_ns. */
void sim_physics_advance_to(struct sim_physics *p, int64_t t_ns)
{
    while (p->now_ns + SIM_TICK_NS <= t_ns)
        tick(p);
}

/* splitmix64 step: a well-mixed 64-bit hash. */
static uint64_t mix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

/* Standard normal noise for (seed, tick, sensor). */
static double gauss(const struct sim_physics *p, int sensor)
{
    uint64_t a = mix(p->seed ^ mix(p->tick * 16 + (uint64_t)sensor));
    uint64_t b = mix(a);
    double u1 = ((double)(a >> 11) + 0.5) / 9007199254740992.0;
    double u2 = (double)(b >> 11) / 9007199254740992.0;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

double sim_read_pressure(const struct sim_physics *p, int chip)
{
    if (p->faults.nan_pressure[chip])
        return NAN;
    if (p->faults.range_pressure[chip])
        return 65000.0;
    if (p->faults.stuck[chip])
        return p->stuck_value[chip];
    return p->chip_pressure[chip] + 0.3 * gauss(p, NOISE_P0 + chip);
}

double sim_read_flow(const struct sim_physics *p, int chip)
{
    double q = p->chip_flow[chip] * (p->faults.bubble[chip] ? 0.4 : 1.0);
    return q + (0.05 + 0.005 * fabs(q)) * gauss(p, NOISE_Q0 + chip);
}

double sim_read_pflow(const struct sim_physics *p, int plant)
{
    if (p->faults.pflow_nan[plant])
        return NAN;
    if (p->faults.pflow_stuck[plant])
        return p->pflow_stuck_value[plant];
    const struct sim_pplant *pl = &p->pplant[plant];
    double q = pplant_sensed(pl, p->now_ns);
    return q + (pl->par.noise_abs + pl->par.noise_rel * fabs(q)) * gauss(p, NOISE_PQ0 + plant);
}

double sim_read_psource(const struct sim_physics *p, int plant)
{
    return p->pplant[plant].p_src + 0.1 * gauss(p, NOISE_PS0 + plant);
}

double sim_read_o2(const struct sim_physics *p)
{
    return fmin(100.0, fmax(0.0, p->o2 + 0.2 * gauss(p, NOISE_O2)));
}

double sim_read_temp(const struct sim_physics *p)
{
    return p->temp + 0.02 * gauss(p, NOISE_T);
}

int sim_valve_position(const struct sim_physics *p)
{
    return p->valve_position;
}

bool sim_valve_busy(const struct sim_physics *p)
{
    return p->valve_position != p->valve_target;
}

/* Start a valve move. */
bool sim_valve_move(struct sim_physics *p, int port)
{
    if (port < 1 || port > 6)
        return false;
    if (port != p->valve_position) {
        p->valve_target = port;
        p->valve_done_ns = p->now_ns + VALVE_MOVE_NS;
    }
    return true;
}
