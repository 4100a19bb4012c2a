/*
 * The rig: buses, devices and channels of one bench, loaded from a rig file
 * (DESIGN.md section 2). Devices are opened through their drivers at load,
 * which validates their entries; no I/O happens here.
 */
#ifndef PERFUSE_RIG_H
#define PERFUSE_RIG_H

#include <stdbool.h>
#include <stddef.h>

#include <stdint.h>

#include "base/diag.h"
#include "base/yamldoc.h"
#include "drivers/driver.h"
#include "drivers/link.h"
#include "rigmqtt.h"

/* Names a run keeps whole, in bytes of UTF-8 (the journal and alerts keep a
 * rig's name in 64 bytes; "device.channel" must fit a channel's name). */
#define RIG_MAX_NAME 63
#define RIG_MAX_DEVICE_NAME 32

enum limit_action { LIMIT_ALARM, LIMIT_PAUSE, LIMIT_SAFE_STOP };

/* A limit on a measured channel: a rig's 'limits:' entry (always on) or a
 * protocol's (during its run). */
struct plan_limit {
    int channel;
    double min, max;            /* NaN: none */
    int64_t for_ns;
    enum limit_action action;
    int line;
};

/* A rig's 'monitors:' entry: a measured flow that should follow a pump's
 * setpoint (run/monitor.h judges it). */
struct rig_monitor {
    char name[48];
    int flow;                   /* the measured flow channel */
    int pump;                   /* the flow actuator it should follow */
    double tolerance;           /* fraction of |setpoint| */
    double min_abs;             /* uL/min: the least deviation that counts */
    int64_t for_ns;             /* debounce */
    enum limit_action action;
    int line;                   /* in the rig file */
};

enum reg_on_loss { REG_LOSS_HOLD, REG_LOSS_SAFE };

/* A rig's 'regulators:' entry: a loop from a measured channel to an actuator
 * channel (run/regulator.h runs it). Gains are in the channels' canonical
 * units: kp in actuator unit per measured unit (mbar per uL/min), ki in that
 * per second, kd in that times seconds. */
struct rig_regulator {
    char name[48];
    int measure;                /* the measured channel */
    int actuator;               /* the writable channel it drives */
    double kp, ki, kd;
    double d_filter_s;          /* derivative filter time constant */
    double sp_weight;           /* share of the setpoint in the P term, 0..1 (1: plain error) */
    bool ff_off;                /* no setpoint feedforward (feedforward: off) */
    double ff_lag_s;            /* the plant's time constant for the feedforward (0: kp / ki) */
    double ff_response_s;       /* the setpoint response the feedforward aims at (0: a fifth of the lag) */
    double ff_delay_s;          /* the plant's dead time for the feedforward's model (0: one tick) */
    double rate_hz;             /* ticks per second */
    double out_min, out_max;    /* output limits, actuator unit (within the channel's) */
    double sp_min, sp_max;      /* setpoints accepted, measured unit (the reachable range) */
    int sign;                   /* +1: more output gives more measurement; -1: less */
    double tol_abs, tol_rel;    /* in tolerance: |error| <= tol_abs + tol_rel * |setpoint| */
    double lost_s;              /* out of tolerance this long: regulation_lost */
    double saturated_s;         /* output at a limit this long: regulation_saturated */
    double inverted_s;          /* the response's sign wrong this long: regulation_inverted */
    double stale_s;             /* no measurement this long: the measurement is lost */
    double stuck_s;             /* the same reading this long: stuck (0: not checked) */
    enum reg_on_loss on_loss;   /* a bad measurement holds the output, or safes it */
    double safe_output;         /* the output when safed, actuator unit */
    int line;                   /* in the rig file */
};

struct rig_bus {
    char *name;
    struct link_config link;    /* strings point into this struct's own copies */
    char *port_path, *host;
    int line;
};

struct rig_device {
    char *name;
    const struct driver_ops *drv;
    void *state;                /* driver state from open(); freed by drv->close */
    size_t bus;                 /* index into rig->buses */
    struct driver_channel chans[DRIVER_MAX_CHANNELS];
    size_t n_chans;
    size_t first_channel;       /* index of chans[0] in rig->channels */
};

struct rig_channel {
    char name[72];              /* "device.channel" */
    size_t device;              /* index into rig->devices */
    size_t dev_ch;              /* index into the device's chans */
    enum quantity q;
    char unit[16];
    bool readable, writable;
    bool integer;               /* setpoints are whole numbers only (a valve's port) */
    double min, max;            /* NaN when none */
    double sample_hz;           /* 0: not sampled */
    double stuck_s;             /* the same reading this long is a fault; 0: not checked */
    double lost_s;              /* no valid reading this long is a fault; < 0: the default */
};

struct rig {
    char *name;
    char *path;                 /* as given */
    char *text;                 /* the file's text, recorded in every run file */
    char sha256[65];            /* of text, for the run journal */
    char digest[65];            /* rig_digest of text: the rig without its bus endpoints */
    struct rig_bus *buses;
    size_t n_buses;
    struct rig_device *devices;
    size_t n_devices;
    struct rig_channel *channels;
    size_t n_channels;
    char *alert_command;        /* NULL if none */
    double alert_min_interval_s;    /* per kind and source; default 10 min */
    int alert_max_per_hour;         /* in all; default 30 */
    double confirm_s;           /* 'confirm: setpoints': a setpoint unconfirmed this long is a fault; default 5 */
    double safe_confirm_s;      /* 'confirm: safe_state': then safe_state_unconfirmed; default 5 */
    struct plan_limit *limits;  /* the rig's 'limits:', applied always */
    size_t n_limits;
    struct rig_monitor *monitors;   /* the rig's 'monitors:' */
    size_t n_monitors;
    double syringe_low;         /* 'syringe_low:' as a fraction; 0: the default */
    struct rig_regulator *regulators;   /* the rig's 'regulators:' */
    size_t n_regulators;
    struct {                    /* the rig's 'recorder:' section */
        int compression;        /* deflate level 1-9, 0 = off */
        double flush_s;         /* flush interval, s */
        double checkpoint_s;    /* fsync interval, s */
        size_t buffer;          /* samples held in memory while storage fails; 0: default */
    } rec;
    struct rig_mqtt mqtt;       /* the rig's 'mqtt:' section (off unless given) */
};

/* Load and validate a rig file. Every problem goes to d. Returns 0 and *out,
 * or -EINVAL (see d) / another negative errno. */
int rig_load(const char *path, struct rig **out, struct diag *d);
/* The same from text already read; path is used for messages and relative paths. */
int rig_load_text(const char *path, const char *text, size_t len, struct rig **out,
                  struct diag *d);
/* Close every device's driver state and free. NULL is fine. */
void rig_free(struct rig *rig);

/* Parse a rig's 'regulators:' list into rig->regulators (plan/rigreg.c). */
void rig_parse_regulators(struct ydoc *y, yaml_node_t *list, struct rig *rig);
/* A regulator's feedforward settings in force, the defaults resolved: the plant's lag (kp / ki),
 * the response (a fifth of the lag) and the dead time (one tick), s. False if it is off (also
 * when no lag can be had: no ki). */
bool rig_regulator_feedforward(const struct rig_regulator *g, double *lag_s, double *response_s,
                               double *dead_time_s);
/* The regulator whose measured channel is ch (a regulated channel), or -1. */
int rig_regulator_of(const struct rig *rig, int ch);
/* The regulator called name, or -1. */
int rig_find_regulator(const struct rig *rig, const char *name);

/* Index of the channel called name ("chip1.pressure", or "pump1" for a device
 * with exactly one writable channel), or -1. */
int rig_find_channel(const struct rig *rig, const char *name);
/* The device called name, or -1. */
int rig_find_device(const struct rig *rig, const char *name);
/* The channel name nearest to name, for "did you mean", or NULL. */
const char *rig_suggest_channel(const struct rig *rig, const char *name);
/* The channel named by scalar n (as rig_find_channel), or -1 after
 * reporting at n why not, with a suggestion; writable demands an actuator. */
int rig_channel_at(struct ydoc *y, const yaml_node_t *n, const struct rig *rig, bool writable);
/* Parse a 'limits:' list (a rig's or a protocol's) against rig, appending to
 * *out (realloc'd; the caller frees it). Problems are reported through y. */
void rig_parse_limits(struct ydoc *y, yaml_node_t *list, const struct rig *rig,
                      struct plan_limit **out, size_t *n);
/* Whether v is a value channel c can be set to as it is: on an integer
 * channel (a valve's port) a fraction is not. If not, why in err. */
bool rig_value_whole(const struct rig_channel *c, double v, char *err, size_t len);

#endif
