/* The relay autotune on the simulated rig's pressure-driven chips (simtune.h). */
#include "simtune.h"
#include "drivers/sim/physics.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#define NS 1000000000LL

/* Print a result for people or, with json, for programs. */
void simtune_print(FILE *out, bool json, const struct rig *rig, const struct rig_regulator *g,
                   const struct autotune_result *r, double seconds)
{
    const struct rig_channel *m = &rig->channels[g->measure], *a = &rig->channels[g->actuator];
    if (json) {
        fprintf(out, "{\"regulator\": \"%s\", \"seconds\": %.3f, \"plant\": {\"gain\": %.6g, "
                "\"gain_units\": \"%s per %s\", \"time_constant_s\": %.6g, \"dead_time_s\": %.6g}, "
                "\"relay\": {\"ultimate_gain\": %.6g, \"ultimate_period_s\": %.6g, \"amplitude\": %.6g, "
                "\"hysteresis\": %.6g, \"sample_s\": %.6g}, \"rule\": \"%s\", \"kp\": %.6g, "
                "\"ki\": %.6g, \"kd\": %.6g, \"d_filter_s\": %.6g, \"feedforward\": {\"lag_s\": %.6g, "
                "\"dead_time_s\": %.6g}}\n", g->name, seconds, r->K, m->unit, a->unit, r->tau, r->L,
                r->Ku, r->Pu, r->a, r->eps, r->h, r->rule, r->kp, r->ki, r->kd, r->d_filter, r->tau, r->L);
        return;
    }
    fprintf(out, "%s: relay test of %.1f s on %s (output %s)\n", g->name, seconds, m->name, a->name);
    fprintf(out, "plant: gain %.4g %s per %s, time constant %.3g s, dead time %.3g s\n", r->K, m->unit,
            a->unit, r->tau, r->L);
    fprintf(out, "relay: ultimate gain %.4g, ultimate period %.3g s, amplitude %.3g %s (hysteresis %.3g), "
            "sampled every %.3g s\n", r->Ku, r->Pu, r->a, m->unit, r->eps, r->h);
    fprintf(out, "rule: %s\n", r->rule);
    fprintf(out, "suggested rig entry (the rig file is not changed; copy it in if you want it):\n");
    fprintf(out, "  - {name: %s, measure: %s, actuator: %s, kp: %.4g %s per %s,\n"
            "     ki: %.4g %s per %s per s, kd: %.4g %s s per %s, d_filter: %.3g ms, rate: %g Hz,\n"
            "     feedforward: {lag: %.3g s, dead_time: %.3g ms},\n"
            "     output: [%g %s, %g %s], range: [%g %s, %g %s]}\n", g->name, m->name, a->name, r->kp,
            a->unit, m->unit, r->ki, a->unit, m->unit, r->kd, a->unit, m->unit, r->d_filter * 1e3,
            g->rate_hz, r->tau, r->L * 1e3, g->out_min, a->unit, g->out_max, a->unit, g->sp_min, m->unit,
            g->sp_max, m->unit);
    double lag, resp, dead;
    bool ff = rig_regulator_feedforward(g, &lag, &resp, &dead);
    fprintf(out, "now: kp %.4g, ki %.4g, kd %.4g (filter %.3g ms), ", g->kp, g->ki, g->kd, g->d_filter_s * 1e3);
    if (ff)
        fprintf(out, "feedforward on (lag %.3g s, response %.3g s, dead time %.3g ms)\n", lag, resp, dead * 1e3);
    else
        fprintf(out, "feedforward off\n");
}

/* Which simulated chip a measured channel is: 0 (chip3), 1 (pc1), or -1. */
static int plant_of(const char *channel)
{
    if (strcmp(channel, "chip3.flow") == 0)
        return 0;
    if (strcmp(channel, "pc1.flow") == 0)
        return 1;
    return -1;
}

/* Run the test in virtual time. */
int simtune_run(const char *rig_path, const char *name, uint64_t seed, struct diag *d, bool json,
                FILE *out)
{
    struct rig *rig = NULL;
    int rc = rig_load(rig_path, &rig, d);
    if (rc < 0)
        return rc;
    int k = rig_find_regulator(rig, name);
    if (k < 0) {
        char list[256] = "";
        for (size_t i = 0; i < rig->n_regulators; i++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "",
                     rig->regulators[i].name);
        diag_error(d, rig_path, 0, 0, "no regulator '%s' in the rig (it has: %s)", name,
                   list[0] ? list : "none");
        rig_free(rig);
        return -ENOENT;
    }
    const struct rig_regulator *g = &rig->regulators[k];
    int plant = plant_of(rig->channels[g->measure].name);
    if (plant < 0) {
        diag_error(d, rig_path, g->line, 0, "regulator '%s' measures %s: simulate --tune works on the "
                   "simulated rig's pressure-driven chips (chip3.flow, pc1.flow); use perfusectl tune "
                   "on the live rig", name, rig->channels[g->measure].name);
        rig_free(rig);
        return -EINVAL;
    }
    static struct sim_physics p;
    sim_physics_init(&p, seed);
    struct autotune at;
    double span = g->out_max - g->out_min;
    int64_t t = 0, step = (int64_t)llround(1e9 / g->rate_hz);
    autotune_start(&at, g->out_min + 0.05 * span, 0.05 * span, 0.025 * span, g->out_min, g->out_max, 0);
    while (!autotune_over(&at)) {
        t += step;
        sim_physics_advance_to(&p, t);
        p.pplant[plant].p_cmd = autotune_step(&at, sim_read_pflow(&p, plant), t);
    }
    if (at.phase != AT_DONE) {
        diag_error(d, rig_path, g->line, 0, "regulator '%s': the relay test failed: %s", name, at.why);
        rig_free(rig);
        return -EIO;
    }
    simtune_print(out, json, rig, g, &at.res, (double)t / NS);
    rig_free(rig);
    return 0;
}
