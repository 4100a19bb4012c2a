/*
 * The recorder: one thread that owns the run's HDF5 file and makes every HDF5
 * call for it. Other threads hand it samples, setpoints, events and step rows
 * through a queue; it writes them in batches, flushes twice a second (by default)
 * and fsyncs at a checkpoint interval.
 *
 * The layout is DESIGN.md section 5 (NeXus NXlog groups, SWMR while running),
 * extended by format version 2 (scripts/README.md): a NeXus tree, NXroot ->
 * NXentry (with NXuser and NXsample) -> NXcollection -> NXlog, the old group
 * paths kept as links.
 *
 * Threading: recorder_start/recorder_finish/recorder_free are called by the
 * thread that owns the run (the loop thread). The enqueue functions
 * (recorder_sample, _setpoint, _event, _step) are thread-safe and never block
 * on I/O: they take a mutex for a memory copy.
 */
#ifndef PERFUSE_RECORDER_H
#define PERFUSE_RECORDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct recorder;

/* One logged series: /channels/<name>, /setpoints/<name> or /confirmed/<name>. */
struct rec_channel {
    const char *name;       /* "chip1.pressure" */
    const char *units;      /* "mbar" */
    const char *device;     /* "chip1" */
    const char *driver;     /* "modbus" */
    const char *kind;       /* "measured" or "setpoint" */
    double rate_hz;         /* expected samples per second; 0 if unknown (sizes compressed chunks) */
    int counter;            /* 1: a device's running total (a pump's dispensed volume): the file
                               holds it from the run's start, the raw reading there is kept */
};

/* A string field of the run's NeXus entry: key "sample/<name>" is
 * /entry/sample/<name> (NXsample), a plain "<name>" is /entry/<name>.
 * Names are letters, digits and '_' (at most 63 bytes). */
struct rec_meta {
    const char *key;              /* "sample/chip_id", "notes" */
    const char *value;            /* UTF-8 text */
};

/* A syringe pump's fill level at the run's start: /syringes/<pump>. */
struct rec_syringe {
    const char *pump;             /* "pump1" */
    double capacity_ul;           /* the syringe's volume; NaN if unknown */
    double fill_at_start_ul;      /* NaN if unknown */
    const char *fill_source;      /* "given", "assumed full" or "unknown" */
};

/* A regulator's description: the attributes of /regulators/<name>. */
struct rec_regulator {
    const char *name;             /* "flow1" */
    const char *measure, *actuator;   /* "chip3.flow", "ob1.p1" */
    const char *kp_units, *ki_units, *kd_units;   /* "mbar per uL/min", ... */
    double kp, ki, kd, rate_hz, out_min, out_max;
    int plant_sign;
    double d_filter_s, sp_weight;     /* derivative filter, setpoint weight */
    bool feedforward;                 /* the setpoint feedforward on, with these settings in force */
    double ff_lag_s, ff_response_s, ff_dead_time_s;
};

/* A field of the run's metadata: in group "sample" it is /entry/sample/<key>
 * (a string dataset in the entry's NXsample group, also read as /sample/<key>
 * through a link); in group "" a string attribute of the file's root and the
 * field /entry/<key> (the run as a whole: description, notes). */
struct rec_field {
    const char *group;            /* "sample" or "" */
    const char *key;              /* "cell_line" */
    const char *value;            /* UTF-8 text */
};

/* What the file is about. All strings are copied by recorder_start. */
struct rec_run_info {
    const char *path;             /* file to create (must not exist) */
    const char *run_id;
    const char *protocol_name;
    const char *protocol_path;
    const char *protocol_text;
    const char *rig_name;
    const char *rig_text;
    const char *operator_name;    /* "" if none */
    const char *host;
    const char *software_version;
    int64_t start_wall_ns;        /* CLOCK_REALTIME of t = 0: /@start_time */
    const struct rec_channel *channels;   /* -> /channels/<name> */
    size_t n_channels;
    const struct rec_channel *setpoints;  /* -> /setpoints/<name> */
    size_t n_setpoints;
    const struct rec_channel *confirmed;  /* -> /confirmed/<name>: what the devices confirmed */
    size_t n_confirmed;
    double flush_interval_s;      /* 0 -> 0.5 */
    double fsync_interval_s;      /* 0 -> 10.0 */
    size_t max_queued;            /* bound on queued records; 0 -> 4 million */
    int compression;              /* deflate level 1-9 with shuffle for measured series; 0 = off */
    int append;                   /* 1: path is an existing run file (recovered) to continue */
    size_t buffer_samples;        /* samples held in memory while storage fails; 0 -> 4 million */
    const char *claims;           /* /@claims: the actuators the run holds, comma-separated; NULL: none written */
    const char *sensors;          /* /@sensors: the sensors its protocol names, comma-separated */
    const struct rec_syringe *syringes;   /* -> /syringes/<pump> (not when appending) */
    size_t n_syringes;
    const struct rec_regulator *regulators;   /* -> /regulators/<name>, with the gains as attributes */
    size_t n_regulators;
    const struct rec_channel *regulated;  /* -> /regulators/<name>/<series>: names "flow1/setpoint" */
    size_t n_regulated;
    const struct rec_meta *metadata;      /* written when the file is made; copied */
    size_t n_metadata;
    int simulated;                /* 1: times are a simulation's (perfusectl simulate): the file
                                     says so, and end_time is start_time + the last record's t */
    const struct rec_field *fields;       /* the run's metadata (not when appending) */
    size_t n_fields;
};

/* A row of /steps. Rows are keyed by index: a second call with the same index
 * rewrites the row (a step is written when it starts and again when it ends). */
#define REC_STEP_NAME 256         /* a step's name with its repeat passes, in bytes + NUL */

struct rec_step {
    int32_t index;                /* 0, 1, 2, ... in execution order */
    char path[32];                /* "4.2.1" */
    char name[REC_STEP_NAME];     /* "media exchange [3/14]" */
    double planned_start;         /* seconds since start_time */
    double start;
    double end;                   /* NaN while the step runs */
    char outcome[16];             /* "running", "done", "aborted", "timeout", ... */
};

/* What the recorder thread reports back. */
struct rec_status {
    int open_error;               /* 0, or negative errno if the file could not be made */
    int write_errors;             /* count of failed HDF5 writes or flushes */
    uint64_t dropped;             /* records lost because the queue was full */
    uint64_t written;             /* records written so far */
    int finished;                 /* the file is closed; recorder_free will not block */
    int storage_failing;          /* the last write or flush failed; samples are held in memory */
    uint64_t lost;                /* samples dropped from the full buffer while storage failed */
    char last_error[160];
};

/*
 * Start the recorder thread, which creates the file. notify (may be NULL) is
 * called from the recorder thread whenever rec_status changes (file opened,
 * write error, finished); it must be cheap and thread-safe, e.g. uv_async_send.
 * Returns 0 or a negative errno (the thread could not start).
 */
int recorder_start(struct recorder **out, const struct rec_run_info *info,
                   void (*notify)(void *arg), void *notify_arg);

/* Queue a measured sample of channel index ch (into info->channels) at t seconds. */
void recorder_sample(struct recorder *r, uint32_t ch, double t, double value);
/* Queue a commanded value of setpoint index sp (into info->setpoints). */
void recorder_setpoint(struct recorder *r, uint32_t sp, double t, double value);
/* Queue a confirmed value of index cf (into info->confirmed); NaN: no longer known. */
void recorder_confirmed(struct recorder *r, uint32_t cf, double t, double value);
/* Queue a value of the regulated series rg (index into info.regulated). */
void recorder_regulated(struct recorder *r, uint32_t rg, double t, double value);
/* Queue an event row. severity: info|warning|alarm|fault. Strings are copied
 * (and truncated to the file's fixed lengths). */
void recorder_event(struct recorder *r, double t, const char *severity, const char *source,
                    const char *code, const char *message);
/* Queue a /steps row (insert, or rewrite if index was written before). */
void recorder_step(struct recorder *r, const struct rec_step *step);

/* Check a metadata key (see struct rec_meta): 0, or -EINVAL. */
int recorder_metadata_key_ok(const char *key);

/* Set a string field of the NeXus entry during the run (see struct rec_meta);
 * the strings are copied. A SWMR writer cannot add objects, so the field is
 * written when the file closes (a later call for the same key wins). Give the
 * fields known at the start in rec_run_info.metadata instead: those are in
 * the file from its first flush. Thread-safe. Returns 0 or -EINVAL (bad key). */
int recorder_set_metadata(struct recorder *r, const char *key, const char *value);

/* Block until at most max_pending samples are queued. For producers that may
 * block (a simulation in virtual time), so they wait for the disk instead of
 * losing data; never call it on the daemon's loop thread. */
void recorder_throttle(struct recorder *r, size_t max_pending);

/* Copy the current status. Thread-safe. */
void recorder_get_status(struct recorder *r, struct rec_status *out);

/* Ask the thread to write everything queued, set the root attribute state
 * (completed|aborted|interrupted) and close the file. Does not block; notify
 * fires when status.finished becomes 1. */
void recorder_finish(struct recorder *r, const char *final_state);

/* Join the thread and free. Blocks until the file is closed (finishing it as
 * "interrupted" if recorder_finish was not called). NULL is fine. */
void recorder_free(struct recorder *r);

/* A file left by a crash (never finished) is made readable again, and read
 * for a continued run, by recovery.h. */

#endif
