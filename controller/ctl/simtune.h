/*
 * perfusectl simulate --tune REGULATOR: the relay autotune (run/autotune.h) on
 * the simulated rig's pressure-driven chip that the regulator drives, in
 * virtual time; prints the identified plant and the suggested gains as a rig
 * snippet. The rig file is never changed.
 */
#ifndef PERFUSE_SIMTUNE_H
#define PERFUSE_SIMTUNE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "base/diag.h"
#include "plan/rig.h"
#include "run/autotune.h"

/* Run the test for regulator name of the rig at rig_path; problems go to d.
 * Returns 0, -ENOENT (no such regulator), -EINVAL (not on a simulated chip) or
 * -EIO (the test failed: d says why). */
int simtune_run(const char *rig_path, const char *name, uint64_t seed, struct diag *d, bool json,
                FILE *out);
/* Print a tune result: the plant, the rule and the rig snippet with the new gains. */
void simtune_print(FILE *out, bool json, const struct rig *rig, const struct rig_regulator *g,
                   const struct autotune_result *res, double seconds);

#endif
