/*
 * Modbus device profiles: the register map of a device family, in a YAML file
 * (format: the header of protocols/profiles/pressure-flow.yaml). A new Modbus
 * sensor needs a profile, not C code. Loaded on the loop thread at rig load.
 */
#ifndef PERFUSE_PROFILE_H
#define PERFUSE_PROFILE_H

#include <stdbool.h>
#include <stddef.h>

#include "base/diag.h"
#include "driver.h"
#include "mbcodec.h"

enum mb_table { MB_COIL, MB_DISCRETE, MB_INPUT, MB_HOLDING };

/* One channel of a profile: where it lives and what its raw value means. */
struct profile_reg {
    char name[32];              /* channel name, the key under 'channels:' */
    enum mb_table table;
    int address;                /* 0-based, as sent on the wire */
    enum mb_type type;          /* MB_BOOL exactly for coils and discrete inputs */
    enum mb_order order;        /* 32-bit types only; MB_ABCD otherwise */
    double scale, offset;       /* value in unit = raw * scale + offset */
    enum quantity q;
    char unit[16];              /* the profile's unit ("kPa"; "port" or "" for Q_NONE) */
    double unit_factor;         /* canonical = value-in-unit * unit_factor */
    bool readable, writable;
    double min, max;            /* in the canonical unit; NaN if none */
    double sample_hz;           /* 0 for write-only channels */
};

/* A loaded profile. Owned by whoever loaded it; free with profile_free. */
struct profile {
    char *name;                 /* 'profile:' value, or the file path */
    struct profile_reg regs[DRIVER_MAX_CHANNELS];
    size_t n_regs;
};

/* Load and validate the profile at path. Every problem is added to d as
 * "FILE:LINE:COLUMN: error: ..." (all of them, not only the first). Returns
 * 0 and *out (caller frees with profile_free), or -EINVAL / a negative errno
 * if the file cannot be read; *out is untouched on error. */
int profile_load(const char *path, struct profile **out, struct diag *d);
/* Free a profile; NULL is fine. */
void profile_free(struct profile *p);
/* The name of a table, as profiles write it. */
const char *profile_table_name(enum mb_table t);

#endif
