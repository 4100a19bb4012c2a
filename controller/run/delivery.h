/*
 * Delivery monitoring on a rig: the fill level and stalls of each syringe
 * pump (syringe.h) during a run, and the rig's flow monitors (monitor.h) at
 * all times. It is fed with setpoints and samples and reports through hooks,
 * so that perfused and `perfusectl simulate` act on the same conditions the
 * same way:
 *
 *   syringe_low     warning  the fill level fell to the rig's syringe_low
 *   syringe_empty   alarm    the fill level reached 0; the protocol's on_fault applies
 *   syringe_unknown warning  a level carried over a restart cannot be confirmed
 *   pump_stalled    alarm    a pump told to infuse does not; on_fault applies
 *   flow_deviation  alarm    a monitor's flow left its pump's setpoint; its action applies
 *
 * A syringe pump is a device with a writable flow channel and a readable
 * volume channel (its infused counter, e.g. pump1.dispensed).
 *
 * Loop thread only (or the simulation's thread).
 */
#ifndef PERFUSE_DELIVERY_H
#define PERFUSE_DELIVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/diag.h"
#include "monitor.h"
#include "plan/rig.h"
#include "record/runfile.h"
#include "syringe.h"

#define DELIVERY_MAX_FILLS 16

/* What a condition asks of the run. */
enum delivery_action {
    DELIVERY_WARN,              /* nothing: a warning */
    DELIVERY_ON_FAULT,          /* the protocol's on_fault */
    DELIVERY_ALARM,             /* a monitor's action: alarm, pause or safe-stop */
    DELIVERY_PAUSE,
    DELIVERY_SAFE_STOP,
};

struct delivery_hooks {
    void *ctx;
    /* A condition began: source is the pump or the monitor, code as above. */
    void (*raise)(void *ctx, int64_t t_ns, const char *severity, const char *source,
                  const char *code, enum delivery_action act, const char *message);
    /* It ended (the alarm stays listed until acknowledged). */
    void (*clear)(void *ctx, int64_t t_ns, const char *source, const char *code);
    /* Pump i's fill level is now fill_ul (for /channels/<pump>.fill). */
    void (*fill)(void *ctx, size_t i, double fill_ul, int64_t t_ns);
};

struct delivery_pump {
    const char *name;           /* the device's, in the rig */
    int flow;                   /* its writable flow channel */
    int counter;                /* its readable volume channel */
    double capacity_ul;         /* syringe.volume; 0: unknown */
    struct syringe s;
    char fill_name[72];         /* "pump1.fill" */
    int rec_fill;               /* its /channels index in the run file; -1: none */
    bool tracking;              /* a run that drives it is on: its syringe is followed */
    double last_counter_ul;     /* its counter's latest reading, run or not (NaN: none) */
    int64_t last_counter_ns;    /* when that was */
};

struct delivery {
    const struct rig *rig;
    struct delivery_pump *pumps;
    size_t n_pumps;
    struct rec_syringe *recs;   /* the run file's /syringes entries, one per pump */
    struct flow_monitor *mon;   /* a copy of the rig's */
    size_t n_mon;
    bool tracking;              /* a run is on: the syringes of its pumps are followed */
    bool levels_changed;        /* a level met its first counter reading: journal it (reset by the reader) */
    struct delivery_hooks hooks;
};

/* Find the rig's syringe pumps and copy its monitors. 0 or -ENOMEM. */
int delivery_init(struct delivery *d, const struct rig *rig, const struct delivery_hooks *hooks);
void delivery_free(struct delivery *d);
/* The syringe pump called name, or -1. */
int delivery_find_pump(const struct delivery *d, const char *name);
/* Parse fill specs ("pump1=8mL", "pump2=2.5 mL") into fills[n_pumps] (NaN:
 * not given). Returns 0, or -EINVAL with specs[*bad] the wrong one and a
 * message saying what is wrong and what would be right. */
int delivery_parse_fills(const struct delivery *d, const char *const *specs, size_t n,
                         double *fills, size_t *bad, char *err, size_t errlen);
/* Report a fill error for specs[bad] as "--fill SPEC: error: MESSAGE". */
void delivery_fill_error(struct diag *d, const char *spec, const char *err);
/* A run starts: follow each syringe from fills[i] (NaN: assumed full);
 * fills NULL: every level is unknown (a run continued after a restart). */
void delivery_start(struct delivery *d, const double *fills, int64_t t_ns);
/* A syringe's level as a restart needs it (the run journal keeps one per pump). */
struct delivery_level {
    double fill_ul;             /* NaN: unknown */
    double counter_ul;          /* the pump's counter reading it was computed at */
    double fill0_ul;            /* the level at the run's start */
    enum fill_source source;    /* where that came from */
};
/* Pump i's level and the counter reading it was computed at (a level carried
 * over and not confirmed yet stays as it was carried); fill_ul NaN if unknown
 * or not yet tied to a reading. */
void delivery_get_level(const struct delivery *d, size_t i, struct delivery_level *out);
/* A run continues after a restart: follow each syringe from levels[i]
 * (syringe_carry: the pump's next counter reading confirms it, or leaves it
 * unknown with a syringe_unknown warning if the count went back). */
void delivery_continue(struct delivery *d, const struct delivery_level *levels, int64_t t_ns);
/* After delivery_start: add each syringe's fill level to a run file's
 * series (/channels/<pump>.fill, kind "derived") and fill info's /syringes
 * entries, which point into d. Returns 0 or -ENOMEM. */
int delivery_add_to_file(struct delivery *d, struct runfile_series *s, struct rec_run_info *info);
/* "pump1: fill at start 8 mL (given)", for pump i's start event. */
void delivery_describe_start(const struct delivery *d, size_t i, char *buf, size_t len);
/* The run resumed after a pause: stalls are judged afresh, so that a pump
 * still stalled raises its alarm (and on_fault) again. */
void delivery_on_resume(struct delivery *d, int64_t t_ns);
/* The run ended: the syringes are no longer followed. */
void delivery_stop(struct delivery *d);
/* delivery_start, delivery_continue and delivery_stop for the pumps whose
 * flow channel is marked in only (per rig channel; NULL: every pump), for
 * one of several runs at once: the other pumps are left as they are. */
void delivery_start_some(struct delivery *d, const double *fills, const bool *only, int64_t t_ns);
void delivery_continue_some(struct delivery *d, const struct delivery_level *levels, const bool *only,
                            int64_t t_ns);
void delivery_stop_some(struct delivery *d, const bool *only);
/* A flow actuator was commanded (NaN: it went to its own safe state). */
void delivery_on_setpoint(struct delivery *d, int channel, double v, int64_t t_ns);
/* A sample (NaN: failed or implausible). */
void delivery_on_sample(struct delivery *d, int channel, double v, int64_t t_ns);

#endif
