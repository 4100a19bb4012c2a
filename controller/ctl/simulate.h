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
    const char *protocol_path;  /* one protocol (n_protocols 0) */
    const char *const *protocol_paths;  /* or several at once, on the one simulated rig */
    size_t n_protocols;
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

/* Run the simulation: one protocol, or n_protocols together on the one model,
 * each in its own file (res: one result per protocol; out_path only with one).
 * Protocols that claim one actuator are refused, naming it and its holder.
 * Problems with the inputs go to d. Returns 0 or a negative errno. */
int simulate_run(const struct simulate_options *o, struct diag *d, struct simulate_result *res);

#endif
