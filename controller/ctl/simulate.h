/*
 * perfusectl simulate: a protocol run in virtual time on the simulated rig.
 * The same runner as a real run drives the same physics model perfuse-sim
 * serves, on the discrete-event clock, and the same recorder writes the same
 * HDF5 layout. Blocking; for perfusectl, not the daemon.
 */
#ifndef PERFUSE_SIMULATE_H
#define PERFUSE_SIMULATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/diag.h"

struct simulate_options {
    const char *protocol_path;
    const char *rig_path;       /* a rig of the simulated rig's devices */
    const char *out_path;       /* NULL: runs/<stamp>-<slug>-sim-<id8>.h5 */
    double speed;               /* virtual seconds per wall second; 0 = as fast as possible */
    int64_t prompt_delay_ns;    /* prompts are confirmed this long after they appear */
    uint64_t seed;
    const char *const *faults;  /* sim fault specs (drivers/sim/sim_faults.h) */
    size_t n_faults;
    const char *const *fills;   /* syringe fill levels at the start, "pump1=8mL" */
    size_t n_fills;
    bool line_rate_off;         /* samples without their time on the line (--line-rate off) */
};

struct simulate_result {
    char path[4096];
    char state[16];             /* completed | aborted | faulted | paused (on a delivery fault) */
    int64_t virtual_ns;
    double wall_s;
    uint64_t samples;
};

/* Run the simulation. Problems with the inputs go to d. Returns 0 or a negative errno. */
int simulate_run(const struct simulate_options *o, struct diag *d, struct simulate_result *res);

#endif
