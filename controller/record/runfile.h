/* What goes into a run file for a rig: its series, and the file's name. Shared by runs and simulations. */
#ifndef PERFUSE_RUNFILE_H
#define PERFUSE_RUNFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "recorder.h"
#include "plan/rig.h"

/* The series of each regulator, in this order. */
enum { RUNFILE_REG_SETPOINT, RUNFILE_REG_MEASUREMENT, RUNFILE_REG_OUTPUT, RUNFILE_REG_P,
       RUNFILE_REG_I, RUNFILE_REG_D, RUNFILE_REG_FF, RUNFILE_REG_SERIES };

/* The series of a run file for rig: one /channels entry per readable channel,
 * one /setpoints and one /confirmed entry per writable one. rec_chan/rec_sp
 * map a rig channel to its series index (or -1; a writable channel's
 * /confirmed index is its rec_sp). Strings point into rig. Free with
 * runfile_series_free. */
struct runfile_series {
    struct rec_channel *chans, *sps, *confs;
    size_t n_chans, n_sps;
    int *rec_chan, *rec_sp;
    /* Regulators: one description each, and RUNFILE_REG_SERIES series each
     * (/regulators/<name>/setpoint ...), regulator k's term j at k * RUNFILE_REG_SERIES + j. */
    struct rec_regulator *regs;
    size_t n_regs;
    struct rec_channel *reg_series;
    size_t n_reg_series;
    char (*reg_text)[RUNFILE_REG_SERIES + 3][64];   /* the series' names and the gains' units */
};

int runfile_series_build(const struct rig *rig, struct runfile_series *out);
/* The same with only the rig channels marked in keep (NULL: all). */
int runfile_series_build_only(const struct rig *rig, const bool *keep, struct runfile_series *out);
void runfile_series_free(struct runfile_series *s);
/* Add a /channels series that no rig channel feeds (a derived one, such as a
 * syringe's fill level); c's strings must outlive s. Returns its index or -ENOMEM. */
int runfile_series_add(struct runfile_series *s, const struct rec_channel *c);
/* DIR/<YYYYmmdd-HHMMSS>-<protocol-slug>[-TAG]-<id8>.h5 */
void runfile_path(char *buf, size_t len, const char *dir, int64_t wall_ns, const char *protocol,
                  const char *tag, const char *run_id);
/* A random 128-bit run id in hex. */
void runfile_make_id(char out[33]);

#endif
