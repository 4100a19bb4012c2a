/*
 * The pressure-driven chip model (pplant.h).
 *
 * Nominal values: R = 2.0 mbar per uL/min (chip 0) and 2.5 (chip 1), so that
 * 500 uL/min needs about 1000 mbar and a fivefold clog saturates a 2000 mbar
 * channel; tau = 0.5 s, T_d = 20 ms; a 15 mL reservoir of 200 mm2 section
 * whose outlet sits 70 mm above its bottom: full, the level is 75 mm and the
 * head +0.49 mbar; every millilitre used lowers it by 0.49 mbar.
 */
#include "pplant.h"

#include <math.h>
#include <string.h>

#define MBAR_PER_MM 0.0981      /* rho * g for water, mbar per mm of height */
#define BUBBLE_SPIKE_NS 400000000LL
#define BUBBLE_DIP_NS 1600000000LL

/* The simulated rig's plant number i. */
struct pplant_params pplant_nominal(int i)
{
    return (struct pplant_params){
        .resistance = i == 0 ? 2.0 : 2.5, .tau_s = 0.5, .delay_s = 0.02, .source_tau_s = 0.01,
        .reservoir_ul = 15000.0, .area_mm2 = 200.0, .outlet_mm = 70.0,
        .noise_abs = 0.05, .noise_rel = 0.005,
    };
}

/* Initialise: full reservoir, no pressure, the line filled with the resting flow. */
void pplant_init(struct sim_pplant *pl, const struct pplant_params *par)
{
    memset(pl, 0, sizeof *pl);
    pl->par = *par;
    pl->volume_ul = par->reservoir_ul;
    pl->r_factor = 1.0;
    pl->sign = 1;
    double q = pplant_head(pl) / par->resistance;
    for (int i = 0; i < PPLANT_DELAY_MAX; i++)
        pl->line[i] = q;
    pl->flow = q;
}

/* Hydrostatic head now. */
double pplant_head(const struct sim_pplant *pl)
{
    double level = pl->volume_ul / pl->par.area_mm2;
    return MBAR_PER_MM * (level - pl->par.outlet_mm);
}

/* Steady gain now. */
double pplant_gain(const struct sim_pplant *pl)
{
    if (pl->empty || pl->volume_ul <= 0)
        return 0.0;
    return pl->sign / (pl->par.resistance * pl->r_factor);
}

/* One step: source lag, steady flow into the delay line, compliance lag, reservoir. */
void pplant_tick(struct sim_pplant *pl, double dt, int64_t now_ns)
{
    (void)now_ns;
    pl->p_src += (pl->p_cmd - pl->p_src) * (1.0 - exp(-dt / pl->par.source_tau_s));
    double target = 0.0;
    if (!pl->empty && pl->volume_ul > 0)
        target = (pl->sign * pl->p_src + pplant_head(pl)) / (pl->par.resistance * pl->r_factor);
    int d = (int)lround(pl->par.delay_s / dt);
    if (d < 1)
        d = 1;
    if (d > PPLANT_DELAY_MAX)
        d = PPLANT_DELAY_MAX;
    /* line[head] leaves now; the new value enters d ticks ahead of it. */
    double arrived = pl->line[pl->head];
    pl->line[(pl->head + d) % PPLANT_DELAY_MAX] = target;
    pl->head = (pl->head + 1) % PPLANT_DELAY_MAX;
    pl->flow += (arrived - pl->flow) * (1.0 - exp(-dt / pl->par.tau_s));
    double dv = pl->flow * dt / 60.0;
    if (dv > 0) {
        pl->volume_ul = fmax(0.0, pl->volume_ul - dv);
        pl->used_ul += dv;
    }
}

/* The flow the sensor sees now: a bubble spikes, then dips. */
double pplant_sensed(const struct sim_pplant *pl, int64_t now_ns)
{
    if (!pl->bubble)
        return pl->flow;
    int64_t since = now_ns - pl->bubble_ns;
    if (since < BUBBLE_SPIKE_NS)
        return pl->flow * 1.6;
    if (since < BUBBLE_DIP_NS)
        return pl->flow * 0.4;
    return pl->flow;
}
