/*
 * libFuzzer target for the protocol loader: any bytes, as a protocol file,
 * against the simulated rig. The loader must return (a plan or errors)
 * without crashing, hanging, leaking or reading out of bounds.
 *
 *   make fuzz                      (FUZZ_SECONDS=N to choose how long)
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "plan.h"
#include "rig.h"

static struct rig *rig;

/* Load the simulated rig once. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *path = getenv("PERFUSE_FUZZ_RIG");
    struct diag d;
    diag_init(&d);
    if (rig_load(path ? path : "protocols/rigs/sim.yaml", &rig, &d) != 0) {
        diag_print(&d, stderr);
        abort();
    }
    diag_free(&d);
    return 0;
}

/* One input: load it as a protocol, then free whatever came back. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct diag d;
    struct plan *p = NULL;
    diag_init(&d);
    plan_load("fuzz.yaml", (const char *)data, size, rig, &p, &d);
    plan_free(p);
    diag_free(&d);
    return 0;
}
