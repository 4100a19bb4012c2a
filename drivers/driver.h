/*
 * The driver interface: one ops table per device family.
 *
 * A driver knows one wire protocol and one family of devices. It knows
 * nothing of runs, protocol files, run files or clients. The bus layer
 * (drivers/bus.c) owns the link and calls the driver from the bus thread.
 *
 * Life of a device:
 *   open()        loop thread, at rig load. Validate the rig entry, allocate
 *                 state, describe the channels. No I/O.
 *   connect()     bus thread, after the link is up and after every reconnect.
 *                 Bring the device into a known state (e.g. syringe diameter).
 *   read/write()  bus thread, one channel at a time.
 *   safe_state()  bus thread: make the device harmless (stop the pump).
 *   keepalive()   bus thread, about once a second: feed a device-side watchdog.
 *   disconnect()  bus thread, on an orderly stop, before the link closes.
 *   close()       any thread, after the bus thread has stopped: free state.
 *
 * Errors are 0 or a negative errno:
 *   -ETIMEDOUT  no reply in time         -EBADMSG   garbled reply / bad CRC
 *   -EREMOTEIO  the device refused       -ENOTCONN  link is down
 *   -EINVAL     bad argument (a bug or a bad rig entry)
 * On error the driver leaves a one-line explanation in link->err.
 */
#ifndef PERFUSE_DRIVER_H
#define PERFUSE_DRIVER_H

#include <stddef.h>
#include <stdint.h>

#include "base/units.h"
#include "link.h"

#define DRIVER_MAX_CHANNELS 16

/* One channel a device offers, described by its driver at open(). */
struct driver_channel {
    char name[32];          /* "flow", "pressure": the part after "device." */
    enum quantity q;        /* quantity; values are in its canonical unit */
    char unit[16];          /* unit for display and files; for Q_NONE e.g. "port" */
    unsigned readable : 1;  /* sampled by the bus thread */
    unsigned writable : 1;  /* accepts setpoints */
    unsigned integer : 1;   /* setpoints are whole numbers only (a valve's port): 2.5 is refused */
    double min, max;        /* setpoint limits (writable) or physical range (readable); NaN = none */
    double sample_hz;       /* default sampling rate; the rig file may override */
    double volume_ul;       /* flow actuators: volume available (syringe), uL; 0 = unknown */
    /* How perfuse confirms and re-sends a writable channel's setpoint (controller/run/actuators.h). */
    unsigned readback : 1;  /* a read of this channel reports what the device does now (a pump's
                             * delivered rate, a valve's port), so a reading equal to the
                             * setpoint confirms it */
    unsigned reassert : 1;  /* after a reconnect or a recovery the desired value may be sent
                             * again; 0: only the safe value (a stop) is re-sent, any other waits
                             * for the read-back or a new command (a reconnect never moves the rotor) */
    double safe_value;      /* the channel's value once safe_state() succeeded (a pump: 0);
                             * used only when the driver has safe_state */
    double readback_tol;    /* how far a read-back may be from the setpoint, canonical unit;
                             * 0: 1 % of the setpoint or 1e-3, whichever is larger */
};

/*
 * A device's entry in the rig file, flattened: nested maps become dotted keys
 * ("syringe.diameter"). Values are the scalars as written ("14.57 mm").
 */
struct dev_param {
    const char *key;
    const char *value;
    int line, col;          /* 1-based position of the value in the rig file */
};

struct dev_config {
    const char *name;       /* device name, e.g. "pump1" */
    const char *file;       /* rig file path, for messages and relative paths */
    const char *dir;        /* directory of the rig file */
    const struct dev_param *params;
    size_t n_params;
    /* Report a problem with the value of key (NULL: the whole entry). Counts as an error. */
    void (*error)(const struct dev_config *cfg, const char *key, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
    void *error_ctx;
};

/* The value of key, or NULL. */
const char *devcfg_get(const struct dev_config *cfg, const char *key);
/* The position of key's value, or NULL. */
const struct dev_param *devcfg_param(const struct dev_config *cfg, const char *key);
/* Parse key as a quantity. Returns 0, -ENOENT if absent, -EINVAL (reported) if malformed. */
int devcfg_quantity(const struct dev_config *cfg, const char *key, enum quantity q, double *out);
/* Parse key as an integer in [min, max]. Returns 0, -ENOENT if absent, -EINVAL (reported). */
int devcfg_int(const struct dev_config *cfg, const char *key, long min, long max, long *out);
/* Report every parameter whose key is not in known (NULL-terminated), with
 * the nearest known key as a suggestion or else the whole list; what names
 * the device for the message ("a New Era pump"). Returns 0 or -EINVAL. */
int devcfg_check_known(const struct dev_config *cfg, const char *const known[], const char *what);
/* A syringe pump's syringe.diameter (required, min_mm..max_mm) and
 * syringe.volume (optional, above 0; *volume_ul 0 when absent), in mm and uL.
 * what names the pump for messages. Returns 0 or -EINVAL (reported). */
int devcfg_syringe(const struct dev_config *cfg, const char *what, double min_mm, double max_mm,
                   double *diameter_mm, double *volume_ul);
/* Parse key as a flow above 0 (uL/min); *out is dflt when key is absent.
 * Returns 0 or -EINVAL (reported). */
int devcfg_positive_flow(const struct dev_config *cfg, const char *key, double dflt, double *out);

struct driver_ops {
    const char *name;       /* the rig file's "driver:" value */
    const char *bus_types;  /* which link types it runs on, e.g. "serial" or "modbus-rtu,modbus-tcp" */
    /* On a serial line: the fewest characters one reading takes on the wire, its
     * shortest read command and shortest reply with their framing, so that the
     * rig can refuse sample rates the line's baud rate cannot carry. 0: unknown
     * (not checked). */
    unsigned chars_per_reading;

    /* Loop thread, rig load. Fill chans[0..*n) (at most DRIVER_MAX_CHANNELS) and *state.
     * Report every config problem through cfg->error and return -EINVAL. Required. */
    int (*open)(const struct dev_config *cfg, void **state, struct driver_channel *chans,
                size_t *n);
    /* Bus thread. Initialise the device after the link is (re)connected. Optional. */
    int (*connect)(void *state, struct bus_link *link);
    /* Bus thread. Read channel ch (index into chans) into *value. Required if any
     * channel is readable. Never returns 0 without a value the device delivered. */
    int (*read)(void *state, struct bus_link *link, size_t ch, double *value);
    /* Bus thread. Command channel ch to value (canonical unit). Required if any
     * channel is writable. */
    int (*write)(void *state, struct bus_link *link, size_t ch, double value);
    /* Bus thread. Put the device in its safe state (pumps stopped). Optional. */
    int (*safe_state)(void *state, struct bus_link *link);
    /* Bus thread. Called about once a second while connected, for device-side
     * watchdogs that must be fed. Optional. */
    int (*keepalive)(void *state, struct bus_link *link);
    /* Bus thread, when the daemon stops in order, before the link closes: undo
     * what only made sense while the daemon runs (a device-side watchdog).
     * Optional. */
    int (*disconnect)(void *state, struct bus_link *link);
    /* Any thread, after the bus thread has stopped. Free state. Required. */
    void (*close)(void *state);
};

/* The driver called name, or NULL. */
const struct driver_ops *driver_find(const char *name);
/* Comma-separated names of all drivers, for messages. */
const char *driver_names(void);

#endif
