/*
 * The run file: the HDF5 layout of DESIGN.md section 5, appends, flushes and
 * the final close.
 *
 *   /                       format, format_version, ..., state (16 bytes), end_time
 *   /protocol, /rig         scalar strings with their sha256
 *   /channels/<name>/       NXlog: time, value (float64, chunks of 1024 rows)
 *   /setpoints/<name>/      NXlog: time, value
 *   /events, /steps         compound tables of fixed-length strings and float64
 *
 * Every object exists before SWMR writing starts (a SWMR writer may only
 * append). Costs: an append is one H5Dset_extent plus one hyperslab H5Dwrite
 * per dataset whatever the number of rows; a flush rewrites the partly
 * filled chunk of each series that grew (8 KiB) and the metadata that
 * changed, so about 20 KiB per growing series per flush.
 *
 * The datasets' fill value is NaN (index -1 in /steps): a row whose extent
 * reached the disk before its data reads NaN, never a plausible 0, and
 * recorder_recover trims such rows.
 */
#include "recorder_file.h"
#include "sha256.h"
#include "timeutil.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The serial HDF5 build keeps global state (identifiers, caches, the error
 * stack and its printing switch) with no lock of its own, so every HDF5 call
 * in the process goes through this one. Held for one append or flush at a
 * time, never while waiting for records. */
static pthread_mutex_t hdf5_lock = PTHREAD_MUTEX_INITIALIZER;

/* One NXlog group and its two datasets. */
struct rf_series {
    hid_t group, time, value;
    hsize_t rows;                 /* rows of both datasets known to be written */
};

struct recorder_file {
    char *path;
    hid_t file;
    hid_t events, steps;          /* the two tables */
    hid_t ev_mem, step_mem;       /* their compound types as laid out in memory */
    hsize_t ev_rows, step_rows;
    struct rf_series *series;     /* channels first, then setpoints */
    size_t n_series;
    int fd;                       /* the sec2 driver's descriptor, for fsync */
};

/* Take the process-wide HDF5 lock. */
void recorder_file_lock(void)
{
    pthread_mutex_lock(&hdf5_lock);
}

/* Release the process-wide HDF5 lock. */
void recorder_file_unlock(void)
{
    pthread_mutex_unlock(&hdf5_lock);
}

/* ------------------------------------------------------------- errors */

/* What the error-stack walk found. */
struct err_walk {
    char detail[200];
    int code;
};

/* Keep the innermost error of the stack (the first one walking upward). */
static herr_t err_walk_cb(unsigned n, const H5E_error2_t *e, void *arg)
{
    struct err_walk *w = arg;
    if (n != 0 || e->desc == NULL)
        return 0;
    /* System errors read "... errno = 28, error message = 'No space left on
     * device', ..."; keep the message and the number, drop the rest. */
    const char *en = strstr(e->desc, "errno = ");
    const char *msg = strstr(e->desc, "error message = '");
    if (en != NULL)
        w->code = -atoi(en + 8);
    if (msg != NULL) {
        msg += strlen("error message = '");
        const char *end = strchr(msg, '\'');
        int len = end ? (int)(end - msg) : (int)strlen(msg);
        snprintf(w->detail, sizeof w->detail, "%.*s", len, msg);
    } else {
        snprintf(w->detail, sizeof w->detail, "%s", e->desc);
    }
    return 0;
}

/* Describe the innermost HDF5 error as "what: detail"; returns the errno it
 * names, or -EIO. */
static int describe_error(char *err, size_t errlen, const char *what)
{
    struct err_walk w = { .detail = "HDF5 error", .code = -EIO };
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, err_walk_cb, &w);
    if (w.code >= 0)
        w.code = -EIO;
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "%s: %s", what, w.detail);
    return w.code;
}

/* Describe the innermost HDF5 error as "what: detail". */
void recorder_file_error(char *err, size_t errlen, const char *what)
{
    describe_error(err, errlen, what);
}

/* -------------------------------------------------------- attributes */

/* A fixed-length UTF-8 string type of size bytes. */
static hid_t str_type(size_t size, H5T_str_t pad)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0)
        return t;
    if (H5Tset_size(t, size) < 0 || H5Tset_strpad(t, pad) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
        H5Tclose(t);
        return H5I_INVALID_HID;
    }
    return t;
}

/* Write a fixed-length string attribute of exactly len bytes (NUL padded). */
int recorder_file_attr_str(hid_t loc, const char *name, const char *value, size_t len)
{
    size_t vlen = strlen(value);
    if (len == 0)
        len = vlen ? vlen : 1;
    char *buf = calloc(1, len);
    hid_t type = str_type(len, H5T_STR_NULLPAD);
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = H5I_INVALID_HID;
    int rc = -1;
    if (buf != NULL && type >= 0 && space >= 0)
        a = H5Acreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    if (a >= 0) {
        memcpy(buf, value, vlen < len ? vlen : len);
        rc = H5Awrite(a, type, buf) < 0 ? -1 : 0;
        H5Aclose(a);
    }
    if (space >= 0)
        H5Sclose(space);
    if (type >= 0)
        H5Tclose(type);
    free(buf);
    return rc;
}

/* Read a string attribute into buf; 0, -ENOENT if absent, -EIO otherwise. */
int recorder_file_attr_read(hid_t loc, const char *name, char *buf, size_t len)
{
    if (H5Aexists(loc, name) <= 0)
        return -ENOENT;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    hid_t t = a >= 0 ? H5Aget_type(a) : H5I_INVALID_HID;
    int rc = -EIO;
    if (t >= 0 && H5Tget_class(t) == H5T_STRING && H5Tis_variable_str(t) == 0) {
        size_t n = H5Tget_size(t);
        char *tmp = calloc(1, n + 1);
        if (tmp != NULL && H5Aread(a, t, tmp) >= 0) {
            snprintf(buf, len, "%s", tmp);
            rc = 0;
        }
        free(tmp);
    }
    if (t >= 0)
        H5Tclose(t);
    if (a >= 0)
        H5Aclose(a);
    return rc;
}

/* Write a scalar 32-bit integer attribute. */
static int attr_int(hid_t loc, const char *name, int value)
{
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = space >= 0 ? H5Acreate2(loc, name, H5T_STD_I32LE, space, H5P_DEFAULT, H5P_DEFAULT)
                         : H5I_INVALID_HID;
    int rc = a >= 0 && H5Awrite(a, H5T_NATIVE_INT, &value) >= 0 ? 0 : -1;
    if (a >= 0)
        H5Aclose(a);
    if (space >= 0)
        H5Sclose(space);
    return rc;
}

/* ------------------------------------------------------------ layout */

/* Write the root attributes; state gets 16 bytes so it can be rewritten in place. */
static int root_attrs(hid_t file, const struct rec_run_info *i, const char *start)
{
    struct { const char *name, *value; } a[] = {
        { "format", "perfuse-run" }, { "software_version", i->software_version },
        { "run_id", i->run_id }, { "protocol_name", i->protocol_name },
        { "rig_name", i->rig_name }, { "operator", i->operator_name }, { "host", i->host },
        { "start_time", start },
    };
    int rc = attr_int(file, "format_version", 1);
    for (size_t k = 0; rc == 0 && k < sizeof a / sizeof a[0]; k++)
        rc = recorder_file_attr_str(file, a[k].name, a[k].value ? a[k].value : "", 0);
    if (rc == 0)
        rc = recorder_file_attr_str(file, "state", "running", REC_STATE_LEN);
    return rc;
}

/* A scalar string dataset holding text, with attributes sha256 and (if given) path. */
static int text_dataset(hid_t file, const char *name, const char *text, const char *path)
{
    size_t len = strlen(text);
    hid_t type = str_type(len ? len : 1, H5T_STR_NULLPAD);
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t ds = H5I_INVALID_HID;
    int rc = -1;
    if (type >= 0 && space >= 0)
        ds = H5Dcreate2(file, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (ds >= 0 && H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, len ? text : "") >= 0) {
        char hex[65];
        sha256_hex(text, len, hex);
        rc = recorder_file_attr_str(ds, "sha256", hex, 0);
        if (rc == 0 && path != NULL)
            rc = recorder_file_attr_str(ds, "path", path, 0);
    }
    if (ds >= 0)
        H5Dclose(ds);
    if (space >= 0)
        H5Sclose(space);
    if (type >= 0)
        H5Tclose(type);
    return rc;
}

/* An empty 1-D dataset with unlimited rows, chunked, with a fill value. */
static hid_t growing_dataset(hid_t loc, const char *name, hid_t ftype, hid_t mtype,
                             hsize_t chunk, const void *fill)
{
    hsize_t dims = 0, maxdims = H5S_UNLIMITED;
    hid_t space = H5Screate_simple(1, &dims, &maxdims);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hid_t ds = H5I_INVALID_HID;
    if (space >= 0 && dcpl >= 0 && H5Pset_chunk(dcpl, 1, &chunk) >= 0 &&
        H5Pset_fill_value(dcpl, mtype, fill) >= 0)
        ds = H5Dcreate2(loc, name, ftype, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (dcpl >= 0)
        H5Pclose(dcpl);
    if (space >= 0)
        H5Sclose(space);
    return ds;
}

/* True if name can be one HDF5 link name (no '/', not "." or empty). */
static bool valid_link_name(const char *name)
{
    return name != NULL && name[0] != '\0' && strchr(name, '/') == NULL && strcmp(name, ".") != 0;
}

/* Create one NXlog group with its time and value datasets. */
static int create_series(hid_t parent, struct rf_series *s, const struct rec_channel *c,
                         const char *default_kind, const char *start)
{
    const double nan = NAN;
    s->group = H5Gcreate2(parent, c->name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (s->group < 0)
        return -1;
    const char *units = c->units ? c->units : "";
    int rc = recorder_file_attr_str(s->group, "NX_class", "NXlog", 0);
    rc = rc ? rc : recorder_file_attr_str(s->group, "units", units, 0);
    rc = rc ? rc : recorder_file_attr_str(s->group, "device", c->device ? c->device : "", 0);
    rc = rc ? rc : recorder_file_attr_str(s->group, "driver", c->driver ? c->driver : "", 0);
    rc = rc ? rc : recorder_file_attr_str(s->group, "kind", c->kind ? c->kind : default_kind, 0);
    if (rc < 0)
        return rc;
    s->time = growing_dataset(s->group, "time", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, REC_SERIES_CHUNK, &nan);
    s->value = growing_dataset(s->group, "value", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, REC_SERIES_CHUNK, &nan);
    if (s->time < 0 || s->value < 0)
        return -1;
    rc = recorder_file_attr_str(s->time, "units", "s", 0);
    rc = rc ? rc : recorder_file_attr_str(s->time, "start", start, 0);
    rc = rc ? rc : recorder_file_attr_str(s->value, "units", units, 0);
    return rc;
}

/* Insert a NUL-terminated string field of n bytes into a compound type. */
static int insert_str(hid_t compound, const char *name, size_t offset, size_t n)
{
    hid_t t = str_type(n, H5T_STR_NULLTERM);
    int rc = t >= 0 && H5Tinsert(compound, name, offset, t) >= 0 ? 0 : -1;
    if (t >= 0)
        H5Tclose(t);
    return rc;
}

/* The compound type of /events rows in memory. */
static hid_t event_mem_type(void)
{
    hid_t t = H5Tcreate(H5T_COMPOUND, sizeof(struct rec_event_row));
    if (t < 0)
        return t;
    int rc = H5Tinsert(t, "time", HOFFSET(struct rec_event_row, time), H5T_NATIVE_DOUBLE) < 0 ? -1 : 0;
    rc = rc ? rc : insert_str(t, "severity", HOFFSET(struct rec_event_row, severity), REC_EV_SEVERITY);
    rc = rc ? rc : insert_str(t, "source", HOFFSET(struct rec_event_row, source), REC_EV_SOURCE);
    rc = rc ? rc : insert_str(t, "code", HOFFSET(struct rec_event_row, code), REC_EV_CODE);
    rc = rc ? rc : insert_str(t, "message", HOFFSET(struct rec_event_row, message), REC_EV_MESSAGE);
    if (rc < 0) {
        H5Tclose(t);
        return H5I_INVALID_HID;
    }
    return t;
}

/* The compound type of /steps rows in memory. */
static hid_t step_mem_type(void)
{
    hid_t t = H5Tcreate(H5T_COMPOUND, sizeof(struct rec_step_row));
    if (t < 0)
        return t;
    int rc = H5Tinsert(t, "index", HOFFSET(struct rec_step_row, index), H5T_NATIVE_INT32) < 0 ? -1 : 0;
    rc = rc ? rc : insert_str(t, "path", HOFFSET(struct rec_step_row, path), sizeof ((struct rec_step_row *)0)->path);
    rc = rc ? rc : insert_str(t, "name", HOFFSET(struct rec_step_row, name), sizeof ((struct rec_step_row *)0)->name);
    rc = rc ? rc : (H5Tinsert(t, "planned_start", HOFFSET(struct rec_step_row, planned_start), H5T_NATIVE_DOUBLE) < 0 ? -1 : 0);
    rc = rc ? rc : (H5Tinsert(t, "start", HOFFSET(struct rec_step_row, start), H5T_NATIVE_DOUBLE) < 0 ? -1 : 0);
    rc = rc ? rc : (H5Tinsert(t, "end", HOFFSET(struct rec_step_row, end), H5T_NATIVE_DOUBLE) < 0 ? -1 : 0);
    rc = rc ? rc : insert_str(t, "outcome", HOFFSET(struct rec_step_row, outcome), sizeof ((struct rec_step_row *)0)->outcome);
    if (rc < 0) {
        H5Tclose(t);
        return H5I_INVALID_HID;
    }
    return t;
}

/* A table dataset whose file type is the memory type without padding. */
static hid_t table_dataset(hid_t file, const char *name, hid_t mem, hsize_t chunk, const void *fill)
{
    hid_t ftype = H5Tcopy(mem);
    hid_t ds = H5I_INVALID_HID;
    if (ftype >= 0 && H5Tpack(ftype) >= 0)
        ds = growing_dataset(file, name, ftype, mem, chunk, fill);
    if (ftype >= 0)
        H5Tclose(ftype);
    return ds;
}

/* Create /events and /steps. */
static int create_tables(struct recorder_file *f)
{
    struct rec_event_row ev_fill = { .time = NAN };
    struct rec_step_row step_fill = { .index = -1, .planned_start = NAN, .start = NAN, .end = NAN };
    f->ev_mem = event_mem_type();
    f->step_mem = step_mem_type();
    if (f->ev_mem < 0 || f->step_mem < 0)
        return -1;
    f->events = table_dataset(f->file, "events", f->ev_mem, REC_EVENT_CHUNK, &ev_fill);
    f->steps = table_dataset(f->file, "steps", f->step_mem, REC_STEP_CHUNK, &step_fill);
    return f->events >= 0 && f->steps >= 0 ? 0 : -1;
}

/* Create /channels/<name> and /setpoints/<name> for every series. */
static int create_all_series(struct recorder_file *f, const struct rec_run_info *info,
                             const char *start, char *err, size_t errlen)
{
    hid_t ch = H5Gcreate2(f->file, "channels", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t sp = H5Gcreate2(f->file, "setpoints", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int rc = ch >= 0 && sp >= 0 ? 0 : describe_error(err, errlen, "cannot create /channels and /setpoints");
    for (size_t i = 0; rc == 0 && i < f->n_series; i++) {
        bool is_ch = i < info->n_channels;
        const struct rec_channel *c = is_ch ? &info->channels[i] : &info->setpoints[i - info->n_channels];
        if (!valid_link_name(c->name)) {
            snprintf(err, errlen, "channel name '%s' cannot name an HDF5 group", c->name ? c->name : "");
            rc = -EINVAL;
        } else if (create_series(is_ch ? ch : sp, &f->series[i], c, is_ch ? "measured" : "setpoint", start) < 0) {
            char what[160];
            snprintf(what, sizeof what, "cannot create /%s/%s", is_ch ? "channels" : "setpoints", c->name);
            rc = describe_error(err, errlen, what);
        }
    }
    if (ch >= 0)
        H5Gclose(ch);
    if (sp >= 0)
        H5Gclose(sp);
    return rc;
}

/* Create the file and every object in it, then start SWMR writing. */
static int layout(struct recorder_file *f, const struct rec_run_info *info, char *err, size_t errlen)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    /* SWMR needs the 1.10 format (superblock 3, extensible-array chunk indexes);
     * closing strong makes H5Fclose really close, so the file can be reopened. */
    if (fapl >= 0 && H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST) >= 0 &&
        H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) >= 0)
        f->file = H5Fcreate(info->path, H5F_ACC_EXCL, H5P_DEFAULT, fapl);
    if (fapl >= 0)
        H5Pclose(fapl);
    if (f->file < 0)
        return describe_error(err, errlen, "cannot create the file");
    char start[40];
    time_iso8601(info->start_wall_ns, start, sizeof start);
    if (root_attrs(f->file, info, start) < 0)
        return describe_error(err, errlen, "cannot write the root attributes");
    if (text_dataset(f->file, "protocol", info->protocol_text ? info->protocol_text : "", info->protocol_path ? info->protocol_path : "") < 0 ||
        text_dataset(f->file, "rig", info->rig_text ? info->rig_text : "", NULL) < 0)
        return describe_error(err, errlen, "cannot write /protocol and /rig");
    int rc = create_all_series(f, info, start, err, errlen);
    if (rc < 0)
        return rc;
    if (create_tables(f) < 0)
        return describe_error(err, errlen, "cannot create /events and /steps");
    if (H5Fstart_swmr_write(f->file) < 0)
        return describe_error(err, errlen, "cannot start SWMR writing");
    void *handle = NULL;
    if (H5Fget_vfd_handle(f->file, H5P_DEFAULT, &handle) < 0 || handle == NULL)
        return describe_error(err, errlen, "cannot get the file descriptor");
    f->fd = *(int *)handle;
    return 0;
}

/* Close every HDF5 object of f; returns -1 if any close failed. */
static int close_objects(struct recorder_file *f)
{
    int rc = 0;
    for (size_t i = 0; f->series != NULL && i < f->n_series; i++) {
        struct rf_series *s = &f->series[i];
        rc |= s->time >= 0 && H5Dclose(s->time) < 0;
        rc |= s->value >= 0 && H5Dclose(s->value) < 0;
        rc |= s->group >= 0 && H5Gclose(s->group) < 0;
        s->time = s->value = s->group = H5I_INVALID_HID;
    }
    rc |= f->events >= 0 && H5Dclose(f->events) < 0;
    rc |= f->steps >= 0 && H5Dclose(f->steps) < 0;
    rc |= f->ev_mem >= 0 && H5Tclose(f->ev_mem) < 0;
    rc |= f->step_mem >= 0 && H5Tclose(f->step_mem) < 0;
    f->events = f->steps = f->ev_mem = f->step_mem = H5I_INVALID_HID;
    return rc ? -1 : 0;
}

/* Free f's memory (its HDF5 objects must be closed). */
static void free_file(struct recorder_file *f)
{
    free(f->series);
    free(f->path);
    free(f);
}

/* A recorder_file with every identifier invalid. */
static struct recorder_file *alloc_file(const struct rec_run_info *info)
{
    struct recorder_file *f = calloc(1, sizeof *f);
    if (f == NULL)
        return NULL;
    f->n_series = info->n_channels + info->n_setpoints;
    f->series = calloc(f->n_series ? f->n_series : 1, sizeof *f->series);
    f->path = strdup(info->path);
    if (f->series == NULL || f->path == NULL) {
        free_file(f);
        return NULL;
    }
    f->file = f->events = f->steps = f->ev_mem = f->step_mem = H5I_INVALID_HID;
    for (size_t i = 0; i < f->n_series; i++)
        f->series[i].group = f->series[i].time = f->series[i].value = H5I_INVALID_HID;
    f->fd = -1;
    return f;
}

/* fsync the directory holding path, so a new or renamed entry survives a power cut. */
static int fsync_parent(const char *path)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        snprintf(dir, sizeof dir, ".");
    else
        snprintf(dir, sizeof dir, "%.*s", slash == path ? 1 : (int)(slash - path), path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

/* Create the run file with its whole layout and start SWMR writing. */
int recorder_file_create(struct recorder_file **out, const struct rec_run_info *info,
                         char *err, size_t errlen)
{
    struct recorder_file *f = alloc_file(info);
    if (f == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    int rc;
    recorder_file_lock();
    H5E_BEGIN_TRY {
        rc = layout(f, info, err, errlen);
        if (rc < 0) {
            close_objects(f);
            if (f->file >= 0)
                H5Fclose(f->file);
        }
    } H5E_END_TRY;
    recorder_file_unlock();
    if (rc < 0) {
        free_file(f);
        return rc;
    }
    fsync_parent(f->path);
    *out = f;
    return 0;
}

/* ----------------------------------------------------------- writing */

/* Write n rows of buf at row `at` of a 1-D dataset that already has them. */
static int write_at(hid_t ds, hid_t memtype, const void *buf, hsize_t at, hsize_t n)
{
    hid_t fs = H5Dget_space(ds);
    hid_t ms = H5Screate_simple(1, &n, NULL);
    herr_t e = -1;
    if (fs >= 0 && ms >= 0 && H5Sselect_hyperslab(fs, H5S_SELECT_SET, &at, NULL, &n, NULL) >= 0)
        e = H5Dwrite(ds, memtype, ms, fs, H5P_DEFAULT, buf);
    if (ms >= 0)
        H5Sclose(ms);
    if (fs >= 0)
        H5Sclose(fs);
    return e < 0 ? -1 : 0;
}

/* Grow a 1-D dataset to at + n rows and write n rows of buf at row `at`. */
static int write_rows(hid_t ds, hid_t memtype, const void *buf, hsize_t at, hsize_t n)
{
    hsize_t size = at + n;
    if (H5Dset_extent(ds, &size) < 0)
        return -1;
    return write_at(ds, memtype, buf, at, n);
}

/* Append n rows to series s; on failure nothing counts and a retry rewrites
 * the same rows at the same place. */
int recorder_file_append_series(struct recorder_file *f, size_t s, const double *t,
                                const double *v, size_t n, char *err, size_t errlen)
{
    struct rf_series *se = &f->series[s];
    int rc = 0;
    recorder_file_lock();
    H5E_BEGIN_TRY {
        /* Values first: recovery trusts a row whose time is not NaN. */
        if (write_rows(se->value, H5T_NATIVE_DOUBLE, v, se->rows, n) < 0 ||
            write_rows(se->time, H5T_NATIVE_DOUBLE, t, se->rows, n) < 0) {
            char what[96];
            snprintf(what, sizeof what, "series %zu", s);
            rc = describe_error(err, errlen, what);
        } else {
            se->rows += n;
        }
    } H5E_END_TRY;
    recorder_file_unlock();
    return rc;
}

/* Append n rows to /events. */
int recorder_file_append_events(struct recorder_file *f, const struct rec_event_row *rows,
                                size_t n, char *err, size_t errlen)
{
    int rc = 0;
    recorder_file_lock();
    H5E_BEGIN_TRY {
        if (write_rows(f->events, f->ev_mem, rows, f->ev_rows, n) < 0)
            rc = describe_error(err, errlen, "/events");
        else
            f->ev_rows += n;
    } H5E_END_TRY;
    recorder_file_unlock();
    return rc;
}

/* Write one /steps row at its index. One row per call: steps change a few
 * times an hour, so batching them would buy nothing. */
int recorder_file_write_step(struct recorder_file *f, const struct rec_step_row *row,
                             char *err, size_t errlen)
{
    hsize_t at = (hsize_t)row->index, size = at + 1;
    int rc = 0;
    recorder_file_lock();
    H5E_BEGIN_TRY {
        /* A new index grows the table; an old one is rewritten in place. */
        if ((size > f->step_rows && H5Dset_extent(f->steps, &size) < 0) ||
            write_at(f->steps, f->step_mem, row, at, 1) < 0)
            rc = describe_error(err, errlen, "/steps");
        else if (size > f->step_rows)
            f->step_rows = size;
    } H5E_END_TRY;
    recorder_file_unlock();
    return rc;
}

/* Flush HDF5's caches so SWMR readers see every row appended so far. */
int recorder_file_flush(struct recorder_file *f, char *err, size_t errlen)
{
    int rc = 0;
    recorder_file_lock();
    H5E_BEGIN_TRY {
        if (H5Fflush(f->file, H5F_SCOPE_LOCAL) < 0)
            rc = describe_error(err, errlen, "flush");
    } H5E_END_TRY;
    recorder_file_unlock();
    return rc;
}

/* fsync the file's descriptor (no HDF5 call, so no lock). */
int recorder_file_fsync(struct recorder_file *f, char *err, size_t errlen)
{
    if (f->fd >= 0 && fsync(f->fd) < 0) {
        int e = errno;
        snprintf(err, errlen, "fsync: %s", strerror(e));
        return -e;
    }
    return 0;
}

/* ------------------------------------------------------------ closing */

/* Rewrite the 16-byte /@state in place. */
static int write_state(hid_t file, const char *state)
{
    hid_t a = H5Aopen(file, "state", H5P_DEFAULT);
    hid_t t = a >= 0 ? H5Aget_type(a) : H5I_INVALID_HID;
    int rc = -1;
    if (t >= 0) {
        size_t n = H5Tget_size(t);
        char *buf = calloc(1, n);
        if (buf != NULL) {
            memcpy(buf, state, strlen(state) < n ? strlen(state) : n - 1);
            rc = H5Awrite(a, t, buf) < 0 ? -1 : 0;
        }
        free(buf);
        H5Tclose(t);
    }
    if (a >= 0)
        H5Aclose(a);
    return rc;
}

/* Reopen the closed file plainly, write the final state and end_time, close. */
static int finalize(const char *path, const char *state, char *err, size_t errlen)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    hid_t file = H5I_INVALID_HID;
    if (fapl >= 0 && H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) >= 0)
        file = H5Fopen(path, H5F_ACC_RDWR, fapl);
    if (fapl >= 0)
        H5Pclose(fapl);
    if (file < 0)
        return describe_error(err, errlen, "cannot reopen the file to write its final state");
    char end[40];
    time_iso8601(time_wall_ns(), end, sizeof end);
    int rc = 0;
    if (write_state(file, state) < 0)
        rc = describe_error(err, errlen, "cannot write /@state");
    else if (H5Aexists(file, "end_time") > 0 && H5Adelete(file, "end_time") < 0)
        rc = describe_error(err, errlen, "cannot replace /@end_time");
    else if (recorder_file_attr_str(file, "end_time", end, 0) < 0)
        rc = describe_error(err, errlen, "cannot write /@end_time");
    if (H5Fclose(file) < 0 && rc == 0)
        rc = describe_error(err, errlen, "closing after the final state");
    return rc;
}

/* fsync a file by name, then its directory. */
static int fsync_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    int rc2 = fsync_parent(path);
    return rc ? rc : rc2;
}

/* End SWMR, write the final state and end time, make it durable, free f. */
int recorder_file_close(struct recorder_file *f, const char *final_state, char *err, size_t errlen)
{
    int rc = 0;
    recorder_file_lock();
    H5E_BEGIN_TRY {
        if (close_objects(f) < 0)
            rc = describe_error(err, errlen, "closing datasets");
        /* Closing ends SWMR writing and clears the superblock's "open" flags. */
        if (H5Fclose(f->file) < 0 && rc == 0)
            rc = describe_error(err, errlen, "closing the SWMR file");
        if (rc == 0)
            rc = finalize(f->path, final_state, err, errlen);
    } H5E_END_TRY;
    recorder_file_unlock();
    int s = fsync_path(f->path);
    if (s < 0 && rc == 0) {
        snprintf(err, errlen, "fsync at close: %s", strerror(-s));
        rc = s;
    }
    free_file(f);
    return rc;
}
