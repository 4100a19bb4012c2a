/*
 * libFuzzer target for the protocol loader: any bytes, as a protocol file,
 * against the simulated rig, then the volume timeline, as perfusectl check
 * does. Neither may crash, hang, leak or read out of bounds.
 *
 *   make fuzz                      (FUZZ_SECONDS=N to choose how long)
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "plan/plan.h"
#include "plan/rig.h"
#include "plan/timeline.h"

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
    if (plan_load("fuzz.yaml", (const char *)data, size, rig, &p, &d) == 0) {
        /* What perfusectl check does next: volumes and syringe warnings. */
        struct timeline tl;
        if (timeline_compute(p, rig, &tl) == 0)
            timeline_free(&tl);
    }
    plan_free(p);
    diag_free(&d);
    return 0;
}
