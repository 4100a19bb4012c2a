/*
 * The recorder thread: the only code that makes HDF5 calls for a run file.
 *
 * Other threads append compact records to a queue under a mutex; the thread
 * swaps the whole queue out (O(1)), appends each series' new rows with one
 * extent change and one hyperslab write per dataset, then flushes. Flushing
 * at least once a second bounds what a crash can lose; HDF5 never fsyncs, so
 * the file descriptor is fsynced at a checkpoint interval as well.
 *
 * Every object is created before SWMR writing starts, because a SWMR writer
 * may not create objects; readers can then follow the run with
 * h5py.File(path, 'r', swmr=True).
 *
 * Compression (shuffle + deflate) applies to measured series only, and only
 * whole chunks are ever written to them. A SWMR writer never frees the space
 * of a rewritten chunk (a reader may still be reading it), so compressing a
 * partly filled chunk at every flush and again when it grows would leave the
 * file several times the size of its data, and recompressing it would block
 * each flush. Instead a compressed series' chunk holds about one
 * second of samples (from the channel's rate), the partial chunk stays in
 * memory until it is full, and each chunk is compressed exactly once. The
 * price is a crash-loss bound of one chunk (about a second) more.
 */
#include "recorder.h"
#include "h5check.h"
#include "base/rtsched.h"
#include "base/log.h"
#include "base/sha256.h"
#include "base/timeutil.h"
#include "base/utf8.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK_ROWS 8192                /* 64 KiB: few chunks to index when a long series is read */
#define MIN_ZCHUNK 16                 /* compressed chunk bounds, in rows */
#define MAX_ZCHUNK 65536
#define ZCHUNK_SECONDS 1.0            /* a compressed chunk holds about this much time */
#define EVENT_CHUNK 256
#define STEP_CHUNK 64
#define WAKE_RECORDS 65536            /* wake the thread early past this many queued */
#define STATE_LEN 16
#define STATE_MAX H5CHECK_STATE_MAX   /* the longest state attribute a file may hold */
#define EV_SEV 8
#define EV_SRC 72                     /* a channel name: "device.channel" */
#define EV_CODE 32
#define EV_MSG 256
#define META_NAME 64                  /* a metadata field's name, in bytes + NUL */
#define FORMAT_VERSION 2              /* 2: the NeXus tree (/entry), per-run counters */

/* A sample or setpoint, compact: the hot path. */
struct rec_value {
    uint32_t series;                  /* channel index, or n_channels + setpoint index */
    double t, v;
};

struct rec_event {
    double time;
    char severity[EV_SEV];
    char source[EV_SRC];
    char code[EV_CODE];
    char message[EV_MSG];
};

struct rec_step_row {
    int32_t index;
    char path[32];
    char name[REC_STEP_NAME];
    double planned_start, start, end;
    char outcome[16];
};

/* A growable array swapped between producers and the thread. */
struct vec {
    void *data;
    size_t n, cap, elem;
};

struct series {
    char *name, *units, *device, *driver, *kind;
    double rate_hz;
    hid_t group, time, value;
    hsize_t rows;
    hsize_t chunk;                    /* rows per chunk */
    bool compressed;                  /* whole chunks only; a partial one waits in bt/bv */
    double *bt, *bv;                  /* rows not yet on disk */
    size_t bn, bcap;
    size_t bw;                        /* of those, written in this batch */
    bool counter;                     /* stored from the run's start: value - cstart */
    double cstart;                    /* the raw reading at the run's start; NaN until seen */
    hid_t cstart_ds;                  /* the group's counter_at_start dataset (-1: none) */
    bool cstart_dirty;                /* cstart is not yet in cstart_ds */
};

/* Metadata fields: our copies. */
struct meta {
    char **key, **value;
    size_t n;
};

/* Our copy of a regulator's description, for the recorder thread. */
struct reg_attrs {
    char name[64], measure[80], actuator[80], units[3][48];
    double kp, ki, kd, rate_hz, out_min, out_max;
    int sign;
    double d_filter_s, sp_weight;
    bool feedforward;
    double ff_lag_s, ff_response_s, ff_dead_time_s;
};

struct recorder {
    struct rec_run_info info;         /* strings below are our copies */
    struct reg_attrs *regs;           /* our copy of info.regulators */
    size_t n_confirmed;
    char *strs[12];
    struct syringe_attrs *syr;        /* our copy of info.syringes */
    size_t n_series, n_channels, n_setpoints;
    struct series *series;
    size_t max_queued;
    void (*notify)(void *);
    void *notify_arg;

    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    pthread_cond_t drained;           /* signalled after each swap, for recorder_throttle */
    struct vec values, events, steps; /* producer side, under lock */
    bool finish;
    char final_state[STATE_LEN];
    struct rec_status status;
    uint64_t dropped_reported;
    struct meta meta_late;            /* set during the run, under lock; written at close */
    struct meta meta_start;           /* given at the start; thread only */
    struct meta meta_root;            /* the run's fields that are root attributes too */

    /* thread side */
    struct vec pend_events, pend_steps;     /* waiting to be written (storage failing) */
    size_t buffer_max;                      /* staged rows held at most */
    int failing;
    uint64_t lost;                          /* rows dropped from the buffer, not yet reported */
    double lost_t0, lost_t1;
    struct log_ratelimit rl, rl_write;
    hid_t file, ev_ds, step_ds, ev_type, step_type;
    hsize_t ev_rows, step_rows;
    int64_t last_fsync_ns;
    double max_t;                     /* the latest record time seen (a simulation's end) */
};

/* Append one element to v, growing it; false if the bound or memory is hit. */
static bool vec_push(struct vec *v, const void *elem, size_t bound)
{
    if (v->n == v->cap) {
        if (v->n >= bound)
            return false;
        size_t cap = v->cap ? v->cap * 2 : 1024;
        void *d = realloc(v->data, cap * v->elem);
        if (d == NULL)
            return false;
        v->data = d;
        v->cap = cap;
    }
    memcpy((char *)v->data + v->n * v->elem, elem, v->elem);
    v->n++;
    return true;
}

/* ---------------------------------------------------------------- layout */

/* A syringe's start, copied from rec_run_info. */
struct syringe_attrs {
    char pump[64], source[16];
    double capacity_ul, fill_ul;
};

/* Every string perfuse writes is UTF-8 and typed so (H5T_CSET_UTF8), so that
 * h5py, MATLAB and HDFView decode names such as "Müller" as text. A file
 * written before that types its strings ASCII: HDF5 does not convert between
 * the two, so rows appended to such a file use its own character set. */

/* Write a fixed-length UTF-8 string attribute of at least min_len bytes,
 * replacing one of that name (a continued run's file closes a second time). */
static int attr_str(hid_t loc, const char *name, const char *value, size_t min_len)
{
    if (H5Aexists(loc, name) > 0 && H5Adelete(loc, name) < 0)
        return -EIO;
    size_t len = strlen(value);
    if (len < min_len)
        len = min_len;
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, len ? len : 1);
    H5Tset_strpad(type, H5T_STR_NULLPAD);
    H5Tset_cset(type, H5T_CSET_UTF8);
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    char *buf = calloc(1, len + 1);
    int rc = -EIO;
    if (a >= 0 && buf != NULL) {
        memcpy(buf, value, strlen(value));
        rc = H5Awrite(a, type, buf) < 0 ? -EIO : 0;
    }
    free(buf);
    if (a >= 0)
        H5Aclose(a);
    H5Sclose(space);
    H5Tclose(type);
    return rc;
}

/* Write a scalar int attribute. */
static void attr_int(hid_t loc, const char *name, int value)
{
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(loc, name, H5T_NATIVE_INT, space, H5P_DEFAULT, H5P_DEFAULT);
    if (a >= 0) {
        H5Awrite(a, H5T_NATIVE_INT, &value);
        H5Aclose(a);
    }
    H5Sclose(space);
}

/* Write a scalar double attribute. */
static void attr_double(hid_t loc, const char *name, double value)
{
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(loc, name, H5T_NATIVE_DOUBLE, space, H5P_DEFAULT, H5P_DEFAULT);
    if (a >= 0) {
        H5Awrite(a, H5T_NATIVE_DOUBLE, &value);
        H5Aclose(a);
    }
    H5Sclose(space);
}

/* /syringes/<pump>: each syringe's fill level at the start and where it came from. */
static int syringes_group(struct recorder *r)
{
    if (r->info.n_syringes == 0)
        return 0;
    hid_t g = H5Gcreate2(r->file, "syringes", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0)
        return -EIO;
    for (size_t i = 0; i < r->info.n_syringes; i++) {
        const struct syringe_attrs *a = &r->syr[i];
        hid_t p = H5Gcreate2(g, a->pump, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (p < 0)
            continue;
        attr_str(p, "units", "uL", 0);
        attr_double(p, "capacity", a->capacity_ul);
        attr_double(p, "fill_at_start", a->fill_ul);
        attr_str(p, "fill_source", a->source, 0);
        H5Gclose(p);
    }
    H5Gclose(g);
    return 0;
}

/* A scalar fixed-length UTF-8 string dataset holding text, with its sha256. */
static int text_dataset(hid_t file, const char *name, const char *text, const char *path)
{
    size_t len = strlen(text);
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, len ? len : 1);
    H5Tset_strpad(type, H5T_STR_NULLPAD);
    H5Tset_cset(type, H5T_CSET_UTF8);
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t ds = H5Dcreate2(file, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int rc = -EIO;
    if (ds >= 0) {
        rc = H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, len ? text : "") < 0 ? -EIO : 0;
        char hex[65];
        sha256_hex(text, len, hex);
        attr_str(ds, "sha256", hex, 0);
        if (path != NULL)
            attr_str(ds, "path", path, 0);
        H5Dclose(ds);
    }
    H5Sclose(space);
    H5Tclose(type);
    return rc;
}

/* An empty, unlimited, chunked 1-D dataset of type; deflate > 0 adds shuffle + deflate. */
static hid_t growing_dataset(hid_t loc, const char *name, hid_t type, hsize_t chunk, int deflate)
{
    hsize_t dims = 0, maxdims = H5S_UNLIMITED;
    hid_t space = H5Screate_simple(1, &dims, &maxdims);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 1, &chunk);
    if (deflate > 0) {
        H5Pset_shuffle(dcpl);
        H5Pset_deflate(dcpl, (unsigned)deflate);
    }
    hid_t ds = H5Dcreate2(loc, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Pclose(dcpl);
    H5Sclose(space);
    return ds;
}

/* A counter's raw reading at the run's start: one float64, NaN until the
 * first reading. A dataset, not an attribute, because a SWMR writer may write
 * a dataset that exists but not an attribute; it is made with the file and
 * written at the first reading, so a file left by a crash has it too. */
static hid_t counter_dataset(hid_t group, const char *units)
{
    hsize_t one = 1;
    hid_t space = H5Screate_simple(1, &one, &one);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    double nan = NAN;
    H5Pset_chunk(dcpl, 1, &one);
    H5Pset_fill_value(dcpl, H5T_NATIVE_DOUBLE, &nan);
    H5Pset_fill_time(dcpl, H5D_FILL_TIME_ALLOC);
    hid_t ds = H5Dcreate2(group, "counter_at_start", H5T_IEEE_F64LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Pclose(dcpl);
    H5Sclose(space);
    if (ds >= 0)
        attr_str(ds, "units", units, 0);
    return ds;
}

/* Create one NXlog group with its time and value datasets. */
static int create_series(struct recorder *r, hid_t parent, struct series *s, const char *start)
{
    s->group = H5Gcreate2(parent, s->name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (s->group < 0)
        return -EIO;
    attr_str(s->group, "NX_class", "NXlog", 0);
    attr_str(s->group, "units", s->units, 0);
    attr_str(s->group, "device", s->device, 0);
    attr_str(s->group, "driver", s->driver, 0);
    attr_str(s->group, "kind", s->kind, 0);
    if (strcmp(s->kind, "readback") == 0) {
        /* What was asked of this actuator is a different series: say where. */
        char sp[160];
        snprintf(sp, sizeof sp, "/entry/setpoints/%s", s->name);
        attr_str(s->group, "commanded", sp, 0);
    }
    int deflate = s->compressed ? r->info.compression : 0;
    s->time = growing_dataset(s->group, "time", H5T_IEEE_F64LE, s->chunk, deflate);
    s->value = growing_dataset(s->group, "value", H5T_IEEE_F64LE, s->chunk, deflate);
    if (s->time < 0 || s->value < 0)
        return -EIO;
    attr_str(s->time, "units", "s", 0);
    attr_str(s->time, "start", start, 0);
    attr_str(s->value, "units", s->units, 0);
    if (s->counter && (s->cstart_ds = counter_dataset(s->group, s->units)) < 0)
        return -EIO;
    return 0;
}

/* A fixed-length string type of n bytes in character set cset. */
static hid_t fixed_str(size_t n, H5T_cset_t cset)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, n);
    H5Tset_strpad(t, H5T_STR_NULLTERM);
    H5Tset_cset(t, cset);
    return t;
}

/* The compound types of /events and /steps (memory layout = file layout),
 * their strings in character set cset. */
static void make_table_types(struct recorder *r, H5T_cset_t cset)
{
    hid_t sev = fixed_str(EV_SEV, cset), src = fixed_str(EV_SRC, cset), code = fixed_str(EV_CODE, cset),
          msg = fixed_str(EV_MSG, cset);
    r->ev_type = H5Tcreate(H5T_COMPOUND, sizeof(struct rec_event));
    H5Tinsert(r->ev_type, "time", HOFFSET(struct rec_event, time), H5T_NATIVE_DOUBLE);
    H5Tinsert(r->ev_type, "severity", HOFFSET(struct rec_event, severity), sev);
    H5Tinsert(r->ev_type, "source", HOFFSET(struct rec_event, source), src);
    H5Tinsert(r->ev_type, "code", HOFFSET(struct rec_event, code), code);
    H5Tinsert(r->ev_type, "message", HOFFSET(struct rec_event, message), msg);
    hid_t path = fixed_str(32, cset), name = fixed_str(REC_STEP_NAME, cset), out = fixed_str(16, cset);
    r->step_type = H5Tcreate(H5T_COMPOUND, sizeof(struct rec_step_row));
    H5Tinsert(r->step_type, "index", HOFFSET(struct rec_step_row, index), H5T_NATIVE_INT32);
    H5Tinsert(r->step_type, "path", HOFFSET(struct rec_step_row, path), path);
    H5Tinsert(r->step_type, "name", HOFFSET(struct rec_step_row, name), name);
    H5Tinsert(r->step_type, "planned_start", HOFFSET(struct rec_step_row, planned_start), H5T_NATIVE_DOUBLE);
    H5Tinsert(r->step_type, "start", HOFFSET(struct rec_step_row, start), H5T_NATIVE_DOUBLE);
    H5Tinsert(r->step_type, "end", HOFFSET(struct rec_step_row, end), H5T_NATIVE_DOUBLE);
    H5Tinsert(r->step_type, "outcome", HOFFSET(struct rec_step_row, outcome), out);
    H5Tclose(sev);
    H5Tclose(src);
    H5Tclose(code);
    H5Tclose(msg);
    H5Tclose(path);
    H5Tclose(name);
    H5Tclose(out);
}

/* Write the root attributes. */
static void root_attrs(struct recorder *r, const char *start)
{
    const struct rec_run_info *i = &r->info;
    attr_str(r->file, "NX_class", "NXroot", 0);
    attr_str(r->file, "default", "entry", 0);
    attr_str(r->file, "format", "perfuse-run", 0);
    attr_int(r->file, "format_version", FORMAT_VERSION);
    attr_str(r->file, "software_version", i->software_version, 0);
    attr_str(r->file, "run_id", i->run_id, 0);
    attr_str(r->file, "protocol_name", i->protocol_name, 0);
    attr_str(r->file, "rig_name", i->rig_name, 0);
    attr_str(r->file, "operator", i->operator_name, 0);
    if (i->claims != NULL) {
        attr_str(r->file, "claims", i->claims, 0);
        attr_str(r->file, "sensors", i->sensors ? i->sensors : "", 0);
    }
    attr_str(r->file, "host", i->host, 0);
    attr_str(r->file, "start_time", start, 0);
    attr_str(r->file, "state", "running", STATE_LEN);
    if (i->simulated)
        attr_str(r->file, "time_source", "simulated", 0);
}

/* A scalar fixed-length UTF-8 string dataset (a NeXus field) of loc; one
 * already there is replaced, unless it is not a dataset. */
static int str_field(hid_t loc, const char *name, const char *value)
{
    htri_t there;
    H5E_BEGIN_TRY {
        there = H5Lexists(loc, name, H5P_DEFAULT);
        if (there > 0) {
            hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
            if (d < 0)
                there = -1;
            else {
                H5Dclose(d);
                if (H5Ldelete(loc, name, H5P_DEFAULT) < 0)
                    there = -1;
            }
        }
    } H5E_END_TRY;
    if (there < 0)
        return -EEXIST;
    size_t len = strlen(value);
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, len ? len : 1);
    H5Tset_strpad(type, H5T_STR_NULLPAD);
    H5Tset_cset(type, H5T_CSET_UTF8);
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t ds = H5Dcreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int rc = ds >= 0 && H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, len ? value : "") >= 0 ? 0 : -EIO;
    if (ds >= 0)
        H5Dclose(ds);
    H5Sclose(space);
    H5Tclose(type);
    return rc;
}

/* Open group name of loc, or create it with NeXus class nx_class. */
static hid_t nx_group(hid_t loc, const char *name, const char *nx_class)
{
    hid_t g;
    H5E_BEGIN_TRY {
        g = H5Gopen2(loc, name, H5P_DEFAULT);
    } H5E_END_TRY;
    if (g >= 0)
        return g;
    g = H5Gcreate2(loc, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g >= 0)
        attr_str(g, "NX_class", nx_class, 0);
    return g;
}

/* Write metadata field key (struct rec_meta) into the entry group. */
static int write_meta(hid_t entry, const char *key, const char *value)
{
    if (strncmp(key, "sample/", 7) != 0)
        return str_field(entry, key, value);
    hid_t g = nx_group(entry, "sample", "NXsample");
    if (g < 0)
        return -EIO;
    int rc = str_field(g, key + 7, value);
    H5Gclose(g);
    return rc;
}

/* Write every field of m into the file's /entry; a file without one (format
 * version 1, continued) gets none, with a log line. */
static void write_metadata(struct recorder *r, hid_t file, const struct meta *m)
{
    if (m->n == 0)
        return;
    hid_t entry;
    H5E_BEGIN_TRY {
        entry = H5Gopen2(file, "entry", H5P_DEFAULT);
    } H5E_END_TRY;
    if (entry < 0) {
        log_msg(LOG_WARN, "recorder", "%s has no /entry (an earlier format): %zu metadata fields not written",
                r->info.path, m->n);
        return;
    }
    for (size_t i = 0; i < m->n; i++)
        if (write_meta(entry, m->key[i], m->value[i]) < 0)
            log_msg(LOG_WARN, "recorder", "%s: cannot write metadata field %s", r->info.path, m->key[i]);
    H5Gclose(entry);
}

/* The NeXus entry: what the run is, who ran it, the sample, and the groups
 * that hold the series (linked from the root under their old names). */
static int entry_group(struct recorder *r, const char *start, hid_t groups[3])
{
    static const char *const names[3] = { "channels", "setpoints", "confirmed" };
    const struct rec_run_info *i = &r->info;
    hid_t entry = nx_group(r->file, "entry", "NXentry");
    if (entry < 0)
        return -EIO;
    int rc = str_field(entry, "title", i->protocol_name);
    rc |= str_field(entry, "experiment_identifier", i->run_id);
    rc |= str_field(entry, "start_time", start);
    rc |= str_field(entry, "program_name", "perfuse");
    hid_t g = nx_group(entry, "user", "NXuser");
    if (g >= 0) {
        rc |= str_field(g, "name", i->operator_name);
        H5Gclose(g);
    }
    g = nx_group(entry, "sample", "NXsample");
    if (g < 0 || H5Lcreate_soft("/entry/sample", r->file, "sample", H5P_DEFAULT, H5P_DEFAULT) < 0)
        rc = -EIO;
    if (g >= 0)
        H5Gclose(g);
    for (int k = 0; k < 3; k++) {
        char target[32];
        snprintf(target, sizeof target, "/entry/%s", names[k]);
        groups[k] = nx_group(entry, names[k], "NXcollection");
        if (groups[k] < 0 || H5Lcreate_soft(target, r->file, names[k], H5P_DEFAULT, H5P_DEFAULT) < 0)
            rc = -EIO;
    }
    H5Gclose(entry);
    write_metadata(r, r->file, &r->meta_start);
    return rc ? -EIO : 0;
}


/* Open a growing 1-D dataset of loc to append to: of class e, chunked, with
 * an unlimited extent; *chunk gets its rows per chunk. */
static hid_t open_growing(hid_t loc, const char *name, const struct h5_expect *e, hsize_t *chunk,
                          char *err, size_t errlen)
{
    hid_t ds = h5check_open_dataset(loc, name, e, err, errlen);
    if (ds < 0)
        return ds;
    hid_t dcpl = H5Dget_create_plist(ds), sp = H5Dget_space(ds);
    hsize_t c = 0, dims = 0, maxdims = 0;
    bool ok = dcpl >= 0 && sp >= 0 && H5Pget_layout(dcpl) == H5D_CHUNKED &&
              H5Pget_chunk(dcpl, 1, &c) == 1 && c > 0 &&
              H5Sget_simple_extent_dims(sp, &dims, &maxdims) == 1 && maxdims == H5S_UNLIMITED;
    if (ok && chunk != NULL)
        *chunk = c;
    if (dcpl >= 0)
        H5Pclose(dcpl);
    if (sp >= 0)
        H5Sclose(sp);
    if (!ok) {
        snprintf(err, errlen, "dataset '%s' is not chunked and unlimited, so it cannot grow", name);
        H5Dclose(ds);
        return -EINVAL;
    }
    return ds;
}

/* Make a run file's descriptor close-on-exec (HDF5 opens it without
 * O_CLOEXEC) and a new file 0640 whatever the umask, so that researchers read
 * run files through the group and nobody else does. The default (sec2)
 * driver's handle is a pointer to its int descriptor. */
static void seal_fd(hid_t file, bool created)
{
    void *h = NULL;
    if (H5Fget_vfd_handle(file, H5P_DEFAULT, &h) < 0 || h == NULL)
        return;
    int fd = *(int *)h;
    int flags = fcntl(fd, F_GETFD);
    if (flags >= 0)
        fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
    if (created)
        fchmod(fd, 0640);
}

/* The character set of the strings in an existing /events table: UTF-8
 * unless the file was written with ASCII strings. */
static H5T_cset_t table_cset(hid_t events)
{
    H5T_cset_t cset = H5T_CSET_UTF8;
    hid_t t = events >= 0 ? H5Dget_type(events) : -1, m = -1;
    H5E_BEGIN_TRY {
        int i = t >= 0 && H5Tget_class(t) == H5T_COMPOUND ? H5Tget_member_index(t, "message") : -1;
        m = i >= 0 ? H5Tget_member_type(t, (unsigned)i) : -1;
    } H5E_END_TRY;
    if (m >= 0 && H5Tget_class(m) == H5T_STRING && H5Tget_cset(m) == H5T_CSET_ASCII)
        cset = H5T_CSET_ASCII;
    if (m >= 0)
        H5Tclose(m);
    if (t >= 0)
        H5Tclose(t);
    return cset;
}

/* The group a series goes in. */
static const char *series_group(const struct recorder *r, size_t i)
{
    size_t nc = r->n_channels, ns = r->n_setpoints, ncf = r->n_confirmed;
    return i < nc ? "channels" : i < nc + ns ? "setpoints" : i < nc + ns + ncf ? "confirmed" : "regulators";
}

/* /entry/regulators (also /regulators, a link) and a group per regulator
 * with its gains and ends as attributes. */
static int regulators_group(struct recorder *r, hid_t *out)
{
    *out = -1;
    if (r->info.n_regulators == 0)
        return 0;
    hid_t entry = H5Gopen2(r->file, "entry", H5P_DEFAULT);
    if (entry < 0)
        return -EIO;
    hid_t g = nx_group(entry, "regulators", "NXcollection");
    H5Gclose(entry);
    if (g >= 0 && H5Lcreate_soft("/entry/regulators", r->file, "regulators", H5P_DEFAULT, H5P_DEFAULT) < 0) {
        H5Gclose(g);
        g = -1;
    }
    if (g < 0)
        return -EIO;
    for (size_t i = 0; i < r->info.n_regulators; i++) {
        const struct reg_attrs *a = &r->regs[i];
        hid_t p = nx_group(g, a->name, "NXcollection");
        if (p < 0) {
            H5Gclose(g);
            return -EIO;
        }
        attr_str(p, "measure", a->measure, 0);
        attr_str(p, "actuator", a->actuator, 0);
        attr_double(p, "kp", a->kp);
        attr_double(p, "ki", a->ki);
        attr_double(p, "kd", a->kd);
        attr_str(p, "kp_units", a->units[0], 0);
        attr_str(p, "ki_units", a->units[1], 0);
        attr_str(p, "kd_units", a->units[2], 0);
        attr_double(p, "rate_hz", a->rate_hz);
        attr_double(p, "output_min", a->out_min);
        attr_double(p, "output_max", a->out_max);
        attr_int(p, "plant_sign", a->sign);
        attr_double(p, "d_filter_s", a->d_filter_s);
        attr_double(p, "setpoint_weight", a->sp_weight);
        attr_str(p, "feedforward", a->feedforward ? "on" : "off", 0);
        if (a->feedforward) {
            attr_double(p, "feedforward_lag_s", a->ff_lag_s);
            attr_double(p, "feedforward_response_s", a->ff_response_s);
            attr_double(p, "feedforward_dead_time_s", a->ff_dead_time_s);
        }
        H5Gclose(p);
    }
    *out = g;
    return 0;
}

/* Create a /confirmed series missing from a file being continued. */
static int add_confirmed_series(struct recorder *r, struct series *s)
{
    char start[40];
    time_iso8601(r->info.start_wall_ns, start, sizeof start);
    hid_t g;
    H5E_BEGIN_TRY {
        g = H5Gopen2(r->file, "confirmed", H5P_DEFAULT);
    } H5E_END_TRY;
    if (g < 0) {
        H5E_BEGIN_TRY {
            g = H5Gcreate2(r->file, "confirmed", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        } H5E_END_TRY;
    }
    if (g < 0) {
        snprintf(r->status.last_error, sizeof r->status.last_error,
                 "'/confirmed' is not a group and cannot be made one: the file is not perfuse's to extend");
        return -EIO;
    }
    int rc = create_series(r, g, s, start);
    H5Gclose(g);
    return rc;
}

/* A continued file's counter series go on counting from the run's first
 * start, the raw reading in their counter_at_start dataset. A file of format
 * version 1 (no /entry) holds raw counters, and goes on so. */
static void counters_from_file(struct recorder *r)
{
    htri_t v2;
    H5E_BEGIN_TRY {
        v2 = H5Lexists(r->file, "entry", H5P_DEFAULT);
    } H5E_END_TRY;
    for (size_t i = 0; i < r->n_series; i++) {
        struct series *s = &r->series[i];
        if (v2 <= 0)
            s->counter = false;     /* format version 1 stored raw counters: keep on */
        if (!s->counter || s->group < 0)
            continue;
        double v = NAN;
        H5E_BEGIN_TRY {
            s->cstart_ds = H5Dopen2(s->group, "counter_at_start", H5P_DEFAULT);
            if (s->cstart_ds < 0)
                s->cstart_ds = counter_dataset(s->group, s->units);
            else if (h5check_rows(s->cstart_ds) == 1)
                H5Dread(s->cstart_ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, &v);
        } H5E_END_TRY;
        s->cstart = v;
    }
}

/* Open an existing run file to continue it: every series the rig has must be
 * there; new rows go after the old. */
static int open_existing(struct recorder *r)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
    H5E_BEGIN_TRY {
        r->file = H5Fopen(r->info.path, H5F_ACC_RDWR, fapl);
    } H5E_END_TRY;
    H5Pclose(fapl);
    if (r->file < 0) {
        snprintf(r->status.last_error, sizeof r->status.last_error, "cannot reopen %s", r->info.path);
        return -EIO;
    }
    seal_fd(r->file, false);
    char *err = r->status.last_error;
    size_t errlen = sizeof r->status.last_error;
    int rc = h5check_run_format(r->file, err, errlen);
    const struct h5_expect f64 = { .cls = H5T_FLOAT, .min_size = 8, .max_size = 8, .rank = 1 };
    for (size_t i = 0; rc == 0 && i < r->n_series; i++) {
        struct series *s = &r->series[i];
        char name[160];
        snprintf(name, sizeof name, "/%s/%s", series_group(r, i), s->name);
        H5E_BEGIN_TRY {
            s->group = H5Gopen2(r->file, name, H5P_DEFAULT);
        } H5E_END_TRY;
        s->time = s->value = -1;
        if (s->group < 0 && i >= r->n_channels + r->n_setpoints &&
            i < r->n_channels + r->n_setpoints + r->n_confirmed) {
            /* A file from before /confirmed existed: the group starts now. */
            rc = add_confirmed_series(r, s);
            continue;
        }
        if (s->group < 0) {
            snprintf(err, errlen, "the run file has no series %.100s", name);
            rc = -ENOENT;
            break;
        }
        hsize_t tchunk = 0;
        s->time = open_growing(s->group, "time", &f64, &tchunk, err, errlen);
        s->value = s->time >= 0 ? open_growing(s->group, "value", &f64, &s->chunk, err, errlen) : -1;
        if (s->time < 0 || s->value < 0) {
            rc = -EINVAL;
            break;
        }
        hid_t dcpl = H5Dget_create_plist(s->value);
        s->compressed = H5Pget_nfilters(dcpl) > 0;
        H5Pclose(dcpl);
        hsize_t nt = h5check_rows(s->time), nv = h5check_rows(s->value);
        s->rows = nt < nv ? nt : nv;
        /* A compressed series ended with a partial chunk: later rows start a new one. */
        if (s->compressed && s->rows % s->chunk != 0)
            s->compressed = false;
    }
    const struct h5_expect table = { .cls = H5T_COMPOUND, .min_size = 1, .rank = 1 };
    r->ev_ds = r->step_ds = -1;
    if (rc == 0 && (r->ev_ds = open_growing(r->file, "events", &table, NULL, err, errlen)) < 0)
        rc = -EINVAL;
    if (rc == 0 && (r->step_ds = open_growing(r->file, "steps", &table, NULL, err, errlen)) < 0)
        rc = -EINVAL;
    make_table_types(r, table_cset(r->ev_ds));
    if (rc == 0) {
        r->ev_rows = h5check_rows(r->ev_ds);
        r->step_rows = h5check_rows(r->step_ds);
        rc = h5check_write_str_attr(r->file, "state", "running", STATE_MAX, err, errlen);
    }
    if (rc == 0) {
        counters_from_file(r);
        write_metadata(r, r->file, &r->meta_start);
    }
    if (rc == 0 && H5Fstart_swmr_write(r->file) < 0)
        rc = -EIO;
    if (rc < 0 && r->status.last_error[0] == '\0')
        snprintf(r->status.last_error, sizeof r->status.last_error, "cannot continue %s", r->info.path);
    return rc;
}

/* The run's own fields (description, notes) as root attributes. */
static int metadata_write(struct recorder *r)
{
    int rc = 0;
    for (size_t i = 0; i < r->meta_root.n; i++)
        if (attr_str(r->file, r->meta_root.key[i], r->meta_root.value[i], 0) < 0)
            rc = -EIO;
    return rc;
}

/* Create the file and its whole layout, then start SWMR writing. */
static int create_file(struct recorder *r)
{
    if (r->info.append)
        return open_existing(r);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
    r->file = H5Fcreate(r->info.path, H5F_ACC_EXCL, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (r->file < 0) {
        snprintf(r->status.last_error, sizeof r->status.last_error, "cannot create %s", r->info.path);
        return -EIO;
    }
    seal_fd(r->file, true);
    char start[40];
    time_iso8601(r->info.start_wall_ns, start, sizeof start);
    root_attrs(r, start);
    int rc = text_dataset(r->file, "protocol", r->info.protocol_text, r->info.protocol_path);
    if (rc == 0)
        rc = text_dataset(r->file, "rig", r->info.rig_text, NULL);
    hid_t groups[3] = { -1, -1, -1 };
    if (rc == 0)
        rc = entry_group(r, start, groups);
    hid_t ch = groups[0], sp = groups[1], cf = groups[2];
    hid_t rg = -1;
    if (rc == 0)
        rc = regulators_group(r, &rg);
    size_t nc = r->n_channels, ns = r->n_setpoints, ncf = r->n_confirmed;
    for (size_t i = 0; rc == 0 && i < r->n_series; i++)
        rc = create_series(r, i < nc ? ch : i < nc + ns ? sp : i < nc + ns + ncf ? cf : rg,
                           &r->series[i], start);
    for (int k = 0; k < 3; k++)
        if (groups[k] >= 0)
            H5Gclose(groups[k]);
    if (rg >= 0)
        H5Gclose(rg);
    if (rc == 0)
        rc = syringes_group(r);
    if (rc == 0)
        rc = metadata_write(r);
    make_table_types(r, H5T_CSET_UTF8);
    r->ev_ds = growing_dataset(r->file, "events", r->ev_type, EVENT_CHUNK, 0);
    r->step_ds = growing_dataset(r->file, "steps", r->step_type, STEP_CHUNK, 0);
    if (rc == 0 && (r->ev_ds < 0 || r->step_ds < 0))
        rc = -EIO;
    if (rc == 0 && H5Fstart_swmr_write(r->file) < 0)
        rc = -EIO;
    if (rc < 0)
        snprintf(r->status.last_error, sizeof r->status.last_error, "cannot lay out %s", r->info.path);
    return rc;
}

/* ------------------------------------------------------------- writing */

/* Append n rows of buf to a 1-D dataset that has *rows rows. */
static int append(hid_t ds, hid_t memtype, const void *buf, hsize_t n, hsize_t *rows)
{
    hsize_t size = *rows + n, start = *rows, count = n;
    if (H5Dset_extent(ds, &size) < 0)
        return -EIO;
    hid_t fs = H5Dget_space(ds);
    hid_t ms = H5Screate_simple(1, &count, NULL);
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, &start, NULL, &count, NULL);
    herr_t e = H5Dwrite(ds, memtype, ms, fs, H5P_DEFAULT, buf);
    H5Sclose(ms);
    H5Sclose(fs);
    if (e < 0)
        return -EIO;
    *rows = size;
    return 0;
}

/* Write one /steps row at its index, growing the table if it is new. */
static int write_step(struct recorder *r, const struct rec_step_row *row)
{
    hsize_t idx = (hsize_t)row->index, one = 1;
    if (idx >= r->step_rows) {
        hsize_t size = idx + 1;
        if (H5Dset_extent(r->step_ds, &size) < 0)
            return -EIO;
        r->step_rows = size;
    }
    hid_t fs = H5Dget_space(r->step_ds);
    hid_t ms = H5Screate_simple(1, &one, NULL);
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, &idx, NULL, &one, NULL);
    herr_t e = H5Dwrite(r->step_ds, r->step_type, ms, fs, H5P_DEFAULT, row);
    H5Sclose(ms);
    H5Sclose(fs);
    return e < 0 ? -EIO : 0;
}

/* Sort a batch of values into per-series rows. */
static void stage_values(struct recorder *r, const struct rec_value *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (v[i].series >= r->n_series)
            continue;
        struct series *s = &r->series[v[i].series];
        if (s->bn == s->bcap) {
            size_t cap = s->bcap ? s->bcap * 2 : 256;
            double *t = realloc(s->bt, cap * sizeof *t);
            if (t)
                s->bt = t;
            double *w = realloc(s->bv, cap * sizeof *w);
            if (w)
                s->bv = w;
            if (!t || !w)
                continue;
            s->bcap = cap;
        }
        double value = v[i].v;
        if (s->counter && !isnan(value)) {
            if (isnan(s->cstart)) {
                s->cstart = value;        /* the series counts from here */
                s->cstart_dirty = true;
            }
            value -= s->cstart;
        }
        if (v[i].t > r->max_t)
            r->max_t = v[i].t;
        s->bt[s->bn] = v[i].t;
        s->bv[s->bn++] = value;
    }
}

/* Count a failed write and remember why. */
static void write_failed(struct recorder *r, const char *what)
{
    pthread_mutex_lock(&r->lock);
    r->status.write_errors++;
    snprintf(r->status.last_error, sizeof r->status.last_error, "HDF5 write failed: %s", what);
    pthread_mutex_unlock(&r->lock);
    log_limited(&r->rl_write, 10000, LOG_ERROR, "recorder", "%s: HDF5 write failed: %s", r->info.path, what);
}

/* Write a series' staged rows after its last flushed row: all of them, or for
 * a compressed series only whole chunks unless final (the last, partial chunk
 * at close). They stay staged until a flush has put them on disk (consume),
 * so that after a failed flush (a full disk) the next try writes them again. */
static int write_series(struct recorder *r, struct series *s, bool final, size_t *n_out)
{
    size_t n = s->bn;
    if (s->compressed && !final)
        n -= n % s->chunk;
    *n_out = 0;
    if (n == 0)
        return 0;
    hsize_t rows = s->rows, rows2 = s->rows;
    if (append(s->time, H5T_NATIVE_DOUBLE, s->bt, n, &rows) < 0 ||
        append(s->value, H5T_NATIVE_DOUBLE, s->bv, n, &rows2) < 0) {
        write_failed(r, s->name);
        return -EIO;
    }
    *n_out = n;
    return 0;
}

/* The first n staged rows of s are on disk. */
static void consume(struct series *s, size_t n)
{
    s->rows += n;
    s->bn -= n;
    if (s->bn > 0) {
        memmove(s->bt, s->bt + n, s->bn * sizeof *s->bt);
        memmove(s->bv, s->bv + n, s->bn * sizeof *s->bv);
    }
}

/* Keep what waits to be written within the buffer's bound: while storage fails,
 * the oldest rows of the longest series go first, counted as lost. */
static void bound_staged(struct recorder *r)
{
    size_t total = 0;
    for (size_t i = 0; i < r->n_series; i++)
        total += r->series[i].bn;
    while (total > r->buffer_max) {
        struct series *big = &r->series[0];
        for (size_t i = 1; i < r->n_series; i++)
            if (r->series[i].bn > big->bn)
                big = &r->series[i];
        size_t drop = total - r->buffer_max < big->bn ? total - r->buffer_max : big->bn;
        if (drop == 0)
            break;
        if (r->lost == 0 || big->bt[0] < r->lost_t0)
            r->lost_t0 = big->bt[0];
        if (big->bt[drop - 1] > r->lost_t1)
            r->lost_t1 = big->bt[drop - 1];
        r->lost += drop;
        big->bn -= drop;
        memmove(big->bt, big->bt + drop, big->bn * sizeof *big->bt);
        memmove(big->bv, big->bv + drop, big->bn * sizeof *big->bv);
        total -= drop;
    }
}

/* Append the elements of src to dst (events or steps waiting to be written). */
static void vec_append(struct vec *dst, const struct vec *src)
{
    for (size_t i = 0; i < src->n; i++)
        vec_push(dst, (const char *)src->data + i * src->elem, SIZE_MAX);
}

/* Write one batch taken from the queue, then flush. */
static void write_batch(struct recorder *r, struct vec *values, struct vec *events, struct vec *steps)
{
    stage_values(r, values->data, values->n);
    bound_staged(r);
    for (size_t i = 0; i < events->n; i++) {
        double t = ((const struct rec_event *)events->data)[i].time;
        if (t > r->max_t)
            r->max_t = t;
    }
    vec_append(&r->pend_events, events);
    vec_append(&r->pend_steps, steps);
    size_t written = values->n + events->n + steps->n;
    int failed = 0;
    hsize_t ev_rows = r->ev_rows;
    H5E_BEGIN_TRY {
        for (size_t i = 0; i < r->n_series; i++) {
            struct series *s = &r->series[i];
            failed |= write_series(r, s, false, &s->bw) < 0;
            if (s->cstart_dirty && s->cstart_ds >= 0) {
                if (H5Dwrite(s->cstart_ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, &s->cstart) < 0) {
                    write_failed(r, "counter start");
                    failed = 1;
                } else {
                    s->cstart_dirty = false;
                }
            }
        }
        if (r->pend_events.n > 0 &&
            append(r->ev_ds, r->ev_type, r->pend_events.data, r->pend_events.n, &ev_rows) < 0) {
            write_failed(r, "events");
            failed = 1;
        }
        size_t k = 0;
        for (; k < r->pend_steps.n; k++)
            if (write_step(r, (struct rec_step_row *)r->pend_steps.data + k) < 0) {
                write_failed(r, "steps");
                failed = 1;
                break;
            }
        if (k == r->pend_steps.n)
            r->pend_steps.n = 0;
        if (H5Fflush(r->file, H5F_SCOPE_GLOBAL) < 0) {
            write_failed(r, "flush");
            failed = 1;
        }
    } H5E_END_TRY;
    if (!failed) {
        for (size_t i = 0; i < r->n_series; i++)
            consume(&r->series[i], r->series[i].bw);
        r->ev_rows = ev_rows;
        r->pend_events.n = 0;
    }
    int64_t now = (int64_t)time_mono_ns();
    if (!failed && now - r->last_fsync_ns >= (int64_t)(r->info.fsync_interval_s * 1e9)) {
        void *handle = NULL;
        if (H5Fget_vfd_handle(r->file, H5P_DEFAULT, &handle) >= 0 && handle != NULL &&
            fsync(*(int *)handle) < 0) {
            write_failed(r, "fsync");
            failed = 1;
        }
        r->last_fsync_ns = now;
    }
    if (failed != r->failing) {
        r->failing = failed;
        if (!failed && r->lost > 0) {
            /* Storage works again: say what it cost, in the file itself. */
            struct rec_event e = { .time = r->lost_t1 };
            snprintf(e.severity, sizeof e.severity, "alarm");
            snprintf(e.source, sizeof e.source, "storage");
            snprintf(e.code, sizeof e.code, "samples_lost");
            snprintf(e.message, sizeof e.message, "%llu samples lost between %.3f s and %.3f s: storage "
                     "failed for longer than the memory buffer (%zu samples) could hold",
                     (unsigned long long)r->lost, r->lost_t0, r->lost_t1, r->buffer_max);
            vec_push(&r->pend_events, &e, SIZE_MAX);
        }
        pthread_mutex_lock(&r->lock);
        r->status.storage_failing = failed;
        r->status.lost += failed ? 0 : r->lost;
        pthread_mutex_unlock(&r->lock);
        if (!failed)
            r->lost = 0;
        log_limited(&r->rl, 10000, failed ? LOG_ERROR : LOG_INFO, "recorder", "%s: %s", r->info.path,
                    failed ? "storage is failing; samples are held in memory" : "storage works again");
    }
    pthread_mutex_lock(&r->lock);
    r->status.written += written;
    pthread_mutex_unlock(&r->lock);
    values->n = events->n = steps->n = 0;
}

/* Record that records were dropped, once there is room again. */
static void report_drops(struct recorder *r, struct vec *events)
{
    pthread_mutex_lock(&r->lock);
    uint64_t dropped = r->status.dropped;
    pthread_mutex_unlock(&r->lock);
    if (dropped == r->dropped_reported)
        return;
    struct rec_event e = { .time = NAN };
    snprintf(e.severity, sizeof e.severity, "alarm");
    snprintf(e.source, sizeof e.source, "storage");
    snprintf(e.code, sizeof e.code, "records_dropped");
    snprintf(e.message, sizeof e.message, "%llu records lost: the recorder could not keep up (queue full)",
             (unsigned long long)(dropped - r->dropped_reported));
    r->dropped_reported = dropped;
    vec_push(events, &e, SIZE_MAX);
}

/* Free a metadata list's copies. */
static void meta_free(struct meta *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->key[i]);
        free(m->value[i]);
    }
    free(m->key);
    free(m->value);
    memset(m, 0, sizeof *m);
}

/* Add a copy of key = value to m (replacing the key's earlier value). */
static int meta_add(struct meta *m, const char *key, const char *value)
{
    char *k = strdup(key), *v = strdup(value ? value : "");
    if (k == NULL || v == NULL) {
        free(k);
        free(v);
        return -ENOMEM;
    }
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->key[i], key) == 0) {
            free(k);
            free(m->value[i]);
            m->value[i] = v;
            return 0;
        }
    char **nk = realloc(m->key, (m->n + 1) * sizeof *nk);
    if (nk != NULL)
        m->key = nk;
    char **nv = nk ? realloc(m->value, (m->n + 1) * sizeof *nv) : NULL;
    if (nv != NULL)
        m->value = nv;
    if (nk == NULL || nv == NULL) {
        free(k);
        free(v);
        return -ENOMEM;
    }
    m->key[m->n] = k;
    m->value[m->n++] = v;
    return 0;
}

/* Close every object, end SWMR, and write the final state in a plain open. */
static void close_file(struct recorder *r, const char *state)
{
    for (size_t i = 0; i < r->n_series; i++) {
        size_t n;
        if (write_series(r, &r->series[i], true, &n) == 0)
            consume(&r->series[i], n);
    }
    if (r->pend_events.n > 0 &&
        append(r->ev_ds, r->ev_type, r->pend_events.data, r->pend_events.n, &r->ev_rows) < 0)
        write_failed(r, "events");
    for (size_t i = 0; i < r->n_series; i++) {
        struct series *s = &r->series[i];
        if (s->cstart_ds >= 0 && s->cstart_dirty)
            H5Dwrite(s->cstart_ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, &s->cstart);
        if (s->cstart_ds >= 0)
            H5Dclose(s->cstart_ds);
        H5Dclose(s->time);
        H5Dclose(s->value);
        H5Gclose(s->group);
    }
    H5Dclose(r->ev_ds);
    H5Dclose(r->step_ds);
    H5Tclose(r->ev_type);
    H5Tclose(r->step_type);
    H5Fclose(r->file);
    hid_t f = H5Fopen(r->info.path, H5F_ACC_RDWR, H5P_DEFAULT);
    if (f < 0) {
        write_failed(r, "reopening to write the final state");
        return;
    }
    seal_fd(f, false);
    char why[200];
    if (h5check_write_str_attr(f, "state", state, STATE_MAX, why, sizeof why) < 0)
        write_failed(r, "state attribute");
    char end[40];
    int64_t end_ns = r->info.simulated ? r->info.start_wall_ns + (int64_t)(r->max_t * 1e9) : time_wall_ns();
    time_iso8601(end_ns, end, sizeof end);
    H5E_BEGIN_TRY {
        if (H5Aexists(f, "end_time") > 0)
            H5Adelete(f, "end_time");      /* a continued run ends again */
    } H5E_END_TRY;
    attr_str(f, "end_time", end, 0);
    hid_t entry;
    H5E_BEGIN_TRY {
        entry = H5Gopen2(f, "entry", H5P_DEFAULT);
    } H5E_END_TRY;
    if (entry >= 0) {
        str_field(entry, "end_time", end);
        H5Gclose(entry);
    }
    for (size_t i = 0; i < r->n_series; i++) {
        const struct series *s = &r->series[i];
        if (!s->counter || isnan(s->cstart))
            continue;
        char name[160];
        snprintf(name, sizeof name, "/channels/%s", s->name);
        hid_t g;
        H5E_BEGIN_TRY {
            g = H5Gopen2(f, name, H5P_DEFAULT);
            if (g >= 0 && H5Aexists(g, "counter_at_start") > 0)
                H5Adelete(g, "counter_at_start");
        } H5E_END_TRY;
        if (g >= 0) {
            attr_double(g, "counter_at_start", s->cstart);
            H5Gclose(g);
        }
    }
    pthread_mutex_lock(&r->lock);
    struct meta late = r->meta_late;
    memset(&r->meta_late, 0, sizeof r->meta_late);
    pthread_mutex_unlock(&r->lock);
    write_metadata(r, f, &late);
    meta_free(&late);
    H5Fclose(f);
}

/* The recorder thread. */
static void *recorder_main(void *arg)
{
    struct recorder *r = arg;
    pthread_setname_np(pthread_self(), "recorder");
    int rc = create_file(r);
    pthread_mutex_lock(&r->lock);
    r->status.open_error = rc;
    pthread_mutex_unlock(&r->lock);
    if (r->notify)
        r->notify(r->notify_arg);
    struct vec values = { .elem = sizeof(struct rec_value) };
    struct vec events = { .elem = sizeof(struct rec_event) };
    struct vec steps = { .elem = sizeof(struct rec_step_row) };
    r->last_fsync_ns = (int64_t)time_mono_ns();
    bool done = false;
    while (!done) {
        pthread_mutex_lock(&r->lock);
        if (!r->finish && r->values.n < WAKE_RECORDS) {
            int64_t wake = (int64_t)time_mono_ns() + (int64_t)(r->info.flush_interval_s * 1e9);
            struct timespec ts = { .tv_sec = wake / NS_PER_SEC, .tv_nsec = wake % NS_PER_SEC };
            pthread_cond_timedwait(&r->cond, &r->lock, &ts);
        }
        /* Swap the queues: producers continue into the emptied vectors. */
        struct vec tmp;
        tmp = r->values; r->values = values; values = tmp;
        tmp = r->events; r->events = events; events = tmp;
        tmp = r->steps; r->steps = steps; steps = tmp;
        done = r->finish;
        pthread_cond_broadcast(&r->drained);
        pthread_mutex_unlock(&r->lock);
        if (rc == 0) {
            report_drops(r, &events);
            if (values.n + events.n + steps.n > 0)
                write_batch(r, &values, &events, &steps);
            if (r->notify)
                r->notify(r->notify_arg);
        }
        values.n = events.n = steps.n = 0;
    }
    if (rc == 0)
        close_file(r, r->final_state);
    free(values.data);
    free(events.data);
    free(steps.data);
    pthread_mutex_lock(&r->lock);
    r->status.finished = 1;
    pthread_mutex_unlock(&r->lock);
    if (r->notify)
        r->notify(r->notify_arg);
    return NULL;
}

/* ---------------------------------------------------------- public API */

/* Duplicate s (NULL as ""), remembering it for freeing. */
static const char *keep(struct recorder *r, size_t slot, const char *s)
{
    r->strs[slot] = strdup(s ? s : "");
    return r->strs[slot] ? r->strs[slot] : "";
}

/* Rows per chunk: fixed for plain series; about a second of samples for a
 * compressed one, so that a crash loses at most that much more. */
static void size_chunks(struct recorder *r, struct series *s, bool measured)
{
    s->chunk = CHUNK_ROWS;
    s->compressed = measured && r->info.compression > 0 && s->rate_hz > 0;
    if (s->compressed) {
        double rows = s->rate_hz * ZCHUNK_SECONDS;
        s->chunk = rows < MIN_ZCHUNK ? MIN_ZCHUNK : rows > MAX_ZCHUNK ? MAX_ZCHUNK : (hsize_t)rows;
    }
}

/* Copy one series description. */
static int copy_series(struct series *s, const struct rec_channel *c)
{
    s->rate_hz = c->rate_hz;
    s->name = strdup(c->name);
    s->units = strdup(c->units ? c->units : "");
    s->device = strdup(c->device ? c->device : "");
    s->driver = strdup(c->driver ? c->driver : "");
    s->kind = strdup(c->kind ? c->kind : "measured");
    s->counter = c->counter != 0;
    s->cstart = NAN;
    s->cstart_ds = -1;
    return s->name && s->units && s->device && s->driver && s->kind ? 0 : -ENOMEM;
}

/* Start the recorder thread. */
int recorder_start(struct recorder **out, const struct rec_run_info *info,
                   void (*notify)(void *arg), void *notify_arg)
{
    struct recorder *r = calloc(1, sizeof *r);
    if (r == NULL)
        return -ENOMEM;
    r->info = *info;
    r->info.path = keep(r, 0, info->path);
    r->info.run_id = keep(r, 1, info->run_id);
    r->info.protocol_name = keep(r, 2, info->protocol_name);
    r->info.protocol_path = keep(r, 3, info->protocol_path);
    r->info.protocol_text = keep(r, 4, info->protocol_text);
    r->info.rig_name = keep(r, 5, info->rig_name);
    r->info.rig_text = keep(r, 6, info->rig_text);
    r->info.operator_name = keep(r, 7, info->operator_name);
    r->info.host = keep(r, 8, info->host);
    r->info.software_version = keep(r, 9, info->software_version);
    if (info->claims != NULL) {
        r->info.claims = keep(r, 10, info->claims);
        r->info.sensors = keep(r, 11, info->sensors);
    }
    if (r->info.flush_interval_s <= 0)
        r->info.flush_interval_s = 0.5;
    if (r->info.fsync_interval_s <= 0)
        r->info.fsync_interval_s = 10.0;
    r->max_queued = info->max_queued ? info->max_queued : 4u << 20;
    r->syr = calloc(info->n_syringes + 1, sizeof *r->syr);
    for (size_t i = 0; r->syr != NULL && i < info->n_syringes; i++) {
        const struct rec_syringe *a = &info->syringes[i];
        snprintf(r->syr[i].pump, sizeof r->syr[i].pump, "%s", a->pump);
        snprintf(r->syr[i].source, sizeof r->syr[i].source, "%s", a->fill_source);
        r->syr[i].capacity_ul = a->capacity_ul;
        r->syr[i].fill_ul = a->fill_at_start_ul;
    }
    r->info.syringes = NULL;        /* only our copy is used after this */
    int mrc = 0;
    for (size_t i = 0; i < info->n_metadata; i++)
        if (recorder_metadata_key_ok(info->metadata[i].key) < 0)
            mrc = -EINVAL;
        else if (meta_add(&r->meta_start, info->metadata[i].key, info->metadata[i].value) < 0)
            mrc = -ENOMEM;
    r->info.metadata = NULL;
    r->info.n_metadata = 0;
    /* The run's fields: a sample's go to /entry/sample; the run's own are
     * root attributes and, where the name is free, /entry fields too. */
    for (size_t i = 0; mrc == 0 && i < info->n_fields; i++) {
        const struct rec_field *f = &info->fields[i];
        char key[META_NAME + 8];
        bool sample = f->group != NULL && f->group[0] != '\0';
        snprintf(key, sizeof key, "%s%s", sample ? "sample/" : "", f->key);
        if (recorder_metadata_key_ok(key) == 0 && meta_add(&r->meta_start, key, f->value) < 0)
            mrc = -ENOMEM;
        if (!sample && meta_add(&r->meta_root, f->key, f->value) < 0)
            mrc = -ENOMEM;
    }
    r->info.fields = NULL;
    r->info.n_fields = 0;
    r->n_channels = info->n_channels;
    r->n_setpoints = info->n_setpoints;
    r->n_confirmed = info->n_confirmed;
    r->n_series = info->n_channels + info->n_setpoints + info->n_confirmed + info->n_regulated;
    r->regs = calloc(info->n_regulators + 1, sizeof *r->regs);
    for (size_t i = 0; r->regs != NULL && i < info->n_regulators; i++) {
        const struct rec_regulator *a = &info->regulators[i];
        struct reg_attrs *b = &r->regs[i];
        snprintf(b->name, sizeof b->name, "%s", a->name);
        snprintf(b->measure, sizeof b->measure, "%s", a->measure);
        snprintf(b->actuator, sizeof b->actuator, "%s", a->actuator);
        snprintf(b->units[0], sizeof b->units[0], "%s", a->kp_units);
        snprintf(b->units[1], sizeof b->units[1], "%s", a->ki_units);
        snprintf(b->units[2], sizeof b->units[2], "%s", a->kd_units);
        b->kp = a->kp;
        b->ki = a->ki;
        b->kd = a->kd;
        b->rate_hz = a->rate_hz;
        b->out_min = a->out_min;
        b->out_max = a->out_max;
        b->sign = a->plant_sign;
        b->d_filter_s = a->d_filter_s;
        b->sp_weight = a->sp_weight;
        b->feedforward = a->feedforward;
        b->ff_lag_s = a->ff_lag_s;
        b->ff_response_s = a->ff_response_s;
        b->ff_dead_time_s = a->ff_dead_time_s;
    }
    r->info.regulators = NULL;      /* only our copy is used after this */
    r->info.regulated = NULL;
    r->series = calloc(r->n_series ? r->n_series : 1, sizeof *r->series);
    int rc = r->series && r->syr && r->regs ? mrc : -ENOMEM;
    if (r->info.compression < 0 || r->info.compression > 9)
        rc = -EINVAL;
    for (size_t i = 0; rc == 0 && i < r->n_series; i++) {
        size_t nc = info->n_channels, ns = info->n_setpoints, ncf = info->n_confirmed;
        rc = copy_series(&r->series[i], i < nc ? &info->channels[i]
                                        : i < nc + ns ? &info->setpoints[i - nc]
                                        : i < nc + ns + ncf ? &info->confirmed[i - nc - ns]
                                        : &info->regulated[i - nc - ns - ncf]);
        size_chunks(r, &r->series[i], i < info->n_channels || i >= nc + ns + ncf);
    }
    /* deflate allocates a few hundred KiB per chunk; above glibc's default
     * mmap threshold each one is an mmap/munmap pair and its page faults, and
     * heap trimming returns the memory only to fault it in again. Keeping both
     * in the heap cut the time of a compressed flush several-fold. */
    if (rc == 0 && r->info.compression > 0) {
        mallopt(M_MMAP_THRESHOLD, 4 << 20);
        mallopt(M_TRIM_THRESHOLD, 64 << 20);
    }
    r->values.elem = sizeof(struct rec_value);
    r->events.elem = sizeof(struct rec_event);
    r->steps.elem = sizeof(struct rec_step_row);
    r->pend_events.elem = sizeof(struct rec_event);
    r->pend_steps.elem = sizeof(struct rec_step_row);
    r->buffer_max = info->buffer_samples ? info->buffer_samples : 4u << 20;
    r->notify = notify;
    r->notify_arg = notify_arg;
    snprintf(r->final_state, sizeof r->final_state, "interrupted");
    rtsched_mutex_init(&r->lock);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&r->drained, NULL);
    if (rc == 0)
        rc = -pthread_create(&r->thread, NULL, recorder_main, r);
    if (rc < 0) {
        r->status.finished = 1;
        recorder_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

/* Queue a value of a series; count it as dropped if the queue is full. */
static void push_value(struct recorder *r, uint32_t series, double t, double v)
{
    struct rec_value rv = { series, t, v };
    pthread_mutex_lock(&r->lock);
    if (r->finish) {
        pthread_mutex_unlock(&r->lock);
        return;
    }
    if (!vec_push(&r->values, &rv, r->max_queued))
        r->status.dropped++;
    else if (r->values.n == WAKE_RECORDS)
        pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->lock);
}

void recorder_sample(struct recorder *r, uint32_t ch, double t, double value)
{
    if (ch < r->n_channels)
        push_value(r, ch, t, value);
}

void recorder_setpoint(struct recorder *r, uint32_t sp, double t, double value)
{
    if (sp < r->n_setpoints)
        push_value(r, (uint32_t)r->n_channels + sp, t, value);
}

void recorder_confirmed(struct recorder *r, uint32_t cf, double t, double value)
{
    if (cf < r->n_confirmed)
        push_value(r, (uint32_t)(r->n_channels + r->n_setpoints + cf), t, value);
}

void recorder_regulated(struct recorder *r, uint32_t rg, double t, double value)
{
    if (rg < r->n_series - r->n_channels - r->n_setpoints - r->n_confirmed)
        push_value(r, (uint32_t)(r->n_channels + r->n_setpoints + r->n_confirmed + rg), t, value);
}

/* Copy at most n-1 bytes of s, never cutting a UTF-8 character in half. */
static void copy_utf8(char *dst, size_t n, const char *s)
{
    utf8_copy(dst, n, s ? s : "");
}

void recorder_event(struct recorder *r, double t, const char *severity, const char *source,
                    const char *code, const char *message)
{
    struct rec_event e = { .time = t };
    copy_utf8(e.severity, sizeof e.severity, severity);
    copy_utf8(e.source, sizeof e.source, source);
    copy_utf8(e.code, sizeof e.code, code);
    copy_utf8(e.message, sizeof e.message, message);
    pthread_mutex_lock(&r->lock);
    if (!r->finish && !vec_push(&r->events, &e, r->max_queued))
        r->status.dropped++;
    pthread_mutex_unlock(&r->lock);
}

void recorder_step(struct recorder *r, const struct rec_step *step)
{
    struct rec_step_row row = { .index = step->index, .planned_start = step->planned_start,
                                .start = step->start, .end = step->end };
    copy_utf8(row.path, sizeof row.path, step->path);
    copy_utf8(row.name, sizeof row.name, step->name);
    copy_utf8(row.outcome, sizeof row.outcome, step->outcome);
    if (step->index < 0)
        return;
    pthread_mutex_lock(&r->lock);
    if (!r->finish && !vec_push(&r->steps, &row, r->max_queued))
        r->status.dropped++;
    pthread_mutex_unlock(&r->lock);
}

/* Names perfuse writes itself under /entry, which metadata may not replace. */
static const char *const reserved_fields[] = {
    "channels", "setpoints", "confirmed", "sample", "user", "title", "experiment_identifier",
    "start_time", "end_time", "program_name", NULL
};

int recorder_metadata_key_ok(const char *key)
{
    if (key == NULL)
        return -EINVAL;
    bool sample = strncmp(key, "sample/", 7) == 0;
    const char *name = sample ? key + 7 : key;
    size_t n = strlen(name);
    if (n == 0 || n >= META_NAME)
        return -EINVAL;
    for (const char *p = name; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_')
            return -EINVAL;
    for (size_t i = 0; !sample && reserved_fields[i]; i++)
        if (strcmp(name, reserved_fields[i]) == 0)
            return -EINVAL;
    return 0;
}

int recorder_set_metadata(struct recorder *r, const char *key, const char *value)
{
    if (recorder_metadata_key_ok(key) < 0)
        return -EINVAL;
    pthread_mutex_lock(&r->lock);
    int rc = r->finish ? -EPIPE : meta_add(&r->meta_late, key, value);
    pthread_mutex_unlock(&r->lock);
    return rc;
}

/* Block until at most max_pending samples are queued. */
void recorder_throttle(struct recorder *r, size_t max_pending)
{
    pthread_mutex_lock(&r->lock);
    while (r->values.n > max_pending && !r->status.finished) {
        pthread_cond_signal(&r->cond);
        pthread_cond_wait(&r->drained, &r->lock);
    }
    pthread_mutex_unlock(&r->lock);
}

void recorder_get_status(struct recorder *r, struct rec_status *out)
{
    pthread_mutex_lock(&r->lock);
    *out = r->status;
    pthread_mutex_unlock(&r->lock);
}

void recorder_finish(struct recorder *r, const char *final_state)
{
    pthread_mutex_lock(&r->lock);
    if (!r->finish) {
        snprintf(r->final_state, sizeof r->final_state, "%s", final_state);
        r->finish = true;
        pthread_cond_signal(&r->cond);
    }
    pthread_mutex_unlock(&r->lock);
}

void recorder_free(struct recorder *r)
{
    if (r == NULL)
        return;
    if (!r->status.finished || r->thread) {
        recorder_finish(r, "interrupted");
        if (r->thread)
            pthread_join(r->thread, NULL);
    }
    for (size_t i = 0; i < r->n_series; i++) {
        struct series *s = &r->series[i];
        free(s->name);
        free(s->units);
        free(s->device);
        free(s->driver);
        free(s->kind);
        free(s->bt);
        free(s->bv);
    }
    free(r->series);
    free(r->syr);
    free(r->regs);
    meta_free(&r->meta_start);
    meta_free(&r->meta_late);
    meta_free(&r->meta_root);
    for (size_t i = 0; i < sizeof r->strs / sizeof r->strs[0]; i++)
        free(r->strs[i]);
    free(r->values.data);
    free(r->events.data);
    free(r->steps.data);
    free(r->pend_events.data);
    free(r->pend_steps.data);
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->cond);
    pthread_cond_destroy(&r->drained);
    free(r);
}
