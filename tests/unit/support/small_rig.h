/*
 * A small rig for tests of files checked against a rig (the latch file): pump1.flow
 * and pump2.flow (0 to 1000 uL/min), valve1.position (ports 1 to 6) and
 * chip1.pressure (measured only), called sim. Header-only, so that the fuzz
 * targets, which link no test support objects, can use it too.
 */
#ifndef PERFUSE_TEST_SMALL_RIG_H
#define PERFUSE_TEST_SMALL_RIG_H

#include <math.h>
#include <string.h>

#include "plan/rig.h"

/* Fill devs[4] and chans[4] and return the rig over them. */
static inline struct rig small_rig(struct rig_device *devs, struct rig_channel *chans)
{
    const char *names[] = { "pump1.flow", "pump2.flow", "valve1.position", "chip1.pressure" };
    const double min[] = { 0, 0, 1, NAN }, max[] = { 1000, 1000, 6, NAN };
    for (size_t i = 0; i < 4; i++) {
        memset(&devs[i], 0, sizeof devs[i]);
        devs[i].first_channel = i;
        devs[i].n_chans = 1;
        memset(&chans[i], 0, sizeof chans[i]);
        strcpy(chans[i].name, names[i]);
        chans[i].device = i;
        chans[i].writable = i < 3;
        chans[i].readable = i == 3;
        chans[i].min = min[i];
        chans[i].max = max[i];
    }
    return (struct rig){ .name = "sim", .devices = devs, .n_devices = 4, .channels = chans, .n_channels = 4 };
}

#endif
