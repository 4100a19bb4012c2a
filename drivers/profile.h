/*
 * Modbus device profiles: the register map of a device family, in a YAML file
 * (format: the header of protocols/profiles/pressure-flow.yaml). A new Modbus
 * sensor needs a profile, not C code.
 */
#ifndef PERFUSE_PROFILE_H
#define PERFUSE_PROFILE_H

#include <stdbool.h>
#include <stddef.h>

#include "diag.h"
#include "driver.h"
#include "mbcodec.h"

enum mb_table { MB_COIL, MB_DISCRETE, MB_INPUT, MB_HOLDING };

struct profile_reg {
    char name[32];
    enum mb_table table;
    int address;
    enum mb_type type;
    enum mb_order order;
    double scale, offset;
    enum quantity q;
    char unit[16];
    double unit_factor;         /* canonical = value-in-unit x factor */
    bool readable, writable;
    double min, max;            /* in the canonical unit; NaN if none */
    double sample_hz;
};

struct profile {
    char *name;
    struct profile_reg regs[DRIVER_MAX_CHANNELS];
    size_t n_regs;
};

/* Load and validate a profile; every problem goes to d. Returns 0 or -EINVAL. */
int profile_load(const char *path, struct profile **out, struct diag *d);
void profile_free(struct profile *p);

#endif
