/* Crash recovery of run files: finding those a crash left open, repairing them, reading them back. */
#include "recovery.h"
#include "h5check.h"
#include "base/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Recover the run files a crash left in dir (before the daemon's loop runs:
 * this blocks, and no recorder writes to them now). */
int recorder_recover_dir(const char *dir)
{
    DIR *dp = opendir(dir);
    if (dp == NULL)
        return -errno;
    int recovered = 0;
    for (struct dirent *e; (e = readdir(dp)) != NULL;) {
        size_t len = strlen(e->d_name);
        if (len < 4 || strcmp(e->d_name + len - 3, ".h5") != 0)
            continue;
        char path[4096], err[256];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        /* Recovery writes: never through a link, never into a device or a fifo. */
        struct stat st = { 0 };
        if (fstatat(dirfd(dp), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode)) {
            log_warn("recorder", "skipping %s: %s, not a regular run file", path,
                     S_ISLNK(st.st_mode) ? "a symbolic link" : "not a regular file");
            continue;
        }
        int need = recorder_needs_recovery(path, err, sizeof err);
        if (need < 0)
            log_warn("recorder", "skipping %s: %s", path, err);
        if (need != 1)
            continue;
        if (recorder_recover(path, err, sizeof err) == 0) {
            log_warn("recorder", "recovered %s, left by a crash (its state is now interrupted)", path);
            recovered++;
        } else {
            log_error("recorder", "cannot recover %s", err);     /* err names the file */
        }
    }
    closedir(dp);
    return recovered;
}

/* Make a file left by a crash readable again; safe to repeat. */
/* What even_series_cb counts. */
struct evened {
    int series;                 /* series cut to their common length */
    hsize_t rows;               /* rows cut off, in all */
};

/* H5Lvisit: a group holding a series (its "time" and "value", one row each
 * per sample) whose two datasets a crash left at different lengths is cut to
 * the shorter: HDF5 may write one dataset's new extent to the file before
 * the other's, between the recorder's flushes, and a row with a time but no
 * value (or the reverse) is no sample. */
static herr_t even_series_cb(hid_t root, const char *name, const H5L_info_t *info, void *data)
{
    struct evened *ev = data;
    char tp[1024], vp[1024];
    if (info->type != H5L_TYPE_HARD ||
        snprintf(tp, sizeof tp, "%s/time", name) >= (int)sizeof tp ||
        snprintf(vp, sizeof vp, "%s/value", name) >= (int)sizeof vp)
        return 0;
    htri_t both;
    H5E_BEGIN_TRY {
        both = H5Lexists(root, tp, H5P_DEFAULT) > 0 && H5Lexists(root, vp, H5P_DEFAULT) > 0;
    } H5E_END_TRY;
    if (!both)
        return 0;
    const struct h5_expect f64 = { .cls = H5T_FLOAT, .min_size = 8, .rank = 1 };
    char why[200];
    hid_t t = h5check_open_dataset(root, tp, &f64, why, sizeof why);
    hid_t v = t >= 0 ? h5check_open_dataset(root, vp, &f64, why, sizeof why) : -1;
    if (t >= 0 && v >= 0) {
        hsize_t nt = h5check_rows(t), nv = h5check_rows(v), n = nt < nv ? nt : nv;
        if (nt != nv && H5Dset_extent(nt > n ? t : v, &n) >= 0) {
            ev->series++;
            ev->rows += (nt > n ? nt : nv) - n;
            log_msg(LOG_WARN, "recovery", "%s: cut to %llu rows, its time and value ended %llu and %llu "
                    "rows long", name, (unsigned long long)n, (unsigned long long)nt, (unsigned long long)nv);
        }
    }
    if (v >= 0)
        H5Dclose(v);
    if (t >= 0)
        H5Dclose(t);
    return 0;
}

int recorder_recover(const char *path, char *err, size_t errlen)
{
    if (access(path, R_OK | W_OK) < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -errno;
    }
    /* What h5clear -s does: open while clearing the superblock's status flags. */
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    hbool_t clear = 1;
    H5Pset(fapl, "clear_status_flags", &clear);
    hid_t f;
    H5E_BEGIN_TRY {
        f = H5Fopen(path, H5F_ACC_RDWR, fapl);
    } H5E_END_TRY;
    H5Pclose(fapl);
    if (f < 0) {
        snprintf(err, errlen, "%s: not an HDF5 file perfuse can recover", path);
        return -EINVAL;
    }
    char why[200];
    if (h5check_run_format(f, why, sizeof why) < 0) {
        snprintf(err, errlen, "%s: %s", path, why);
        H5Fclose(f);
        return -EINVAL;
    }
    /* What h5clear --increment does: the EOA recorded at the last flush may lie
     * before data written after it; move it past the end of the file. */
    int rc = 0;
    if (H5Fincrement_filesize(f, 1 << 20) < 0) {
        snprintf(err, errlen, "%s: cannot fix the end of allocation", path);
        rc = -EIO;
    }
    struct evened ev = { 0, 0 };
    H5E_BEGIN_TRY {
        H5Lvisit(f, H5_INDEX_NAME, H5_ITER_NATIVE, even_series_cb, &ev);
    } H5E_END_TRY;
    if (ev.series > 0)
        log_msg(LOG_WARN, "recovery", "%s: %d series cut to their common length (%llu rows that had a time "
                "or a value but not both)", path, ev.series, (unsigned long long)ev.rows);
    char state[H5CHECK_STATE_MAX + 1];
    int src = h5check_read_str_attr(f, "state", state, sizeof state, why, sizeof why);
    if (src == 0 && strcmp(state, "running") == 0)
        src = h5check_write_str_attr(f, "state", "interrupted", H5CHECK_STATE_MAX, why, sizeof why);
    if (src < 0 && src != -ENOENT && rc == 0) {
        snprintf(err, errlen, "%s: %s", path, why);
        rc = src;
    }
    if (H5Fclose(f) < 0 && rc == 0) {
        snprintf(err, errlen, "%s: closing after recovery failed", path);
        rc = -EIO;
    }
    return rc;
}

/* The latest measured time stamp in a run file. */
int recorder_last_time(const char *path, double *t)
{
    hid_t f;
    H5E_BEGIN_TRY {
        f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    } H5E_END_TRY;
    if (f < 0)
        return -EIO;
    *t = 0;
    hid_t g;
    H5E_BEGIN_TRY {
        g = H5Gopen2(f, "channels", H5P_DEFAULT);
    } H5E_END_TRY;
    hsize_t n = 0;
    const struct h5_expect f64 = { .cls = H5T_FLOAT, .min_size = 8, .max_size = 8, .rank = 1 };
    if (g >= 0 && H5Gget_num_objs(g, &n) >= 0) {
        for (hsize_t i = 0; i < n; i++) {
            char name[160];
            if (H5Gget_objname_by_idx(g, i, name, sizeof name) < 0)
                continue;
            char dpath[200], why[200];
            snprintf(dpath, sizeof dpath, "%s/time", name);
            hid_t ds = h5check_open_dataset(g, dpath, &f64, why, sizeof why);
            if (ds < 0) {
                log_warn("recorder", "%s: %s; not used for the last time stamp", path, why);
                continue;
            }
            hsize_t rows = h5check_rows(ds);
            if (rows > 0) {
                hid_t fs = H5Dget_space(ds);
                hsize_t start = rows - 1, one = 1;
                hid_t ms = H5Screate_simple(1, &one, NULL);
                H5Sselect_hyperslab(fs, H5S_SELECT_SET, &start, NULL, &one, NULL);
                double v;
                if (H5Dread(ds, H5T_NATIVE_DOUBLE, ms, fs, H5P_DEFAULT, &v) >= 0 && v > *t)
                    *t = v;
                H5Sclose(ms);
                H5Sclose(fs);
            }
            H5Dclose(ds);
        }
    }
    if (g >= 0)
        H5Gclose(g);
    H5Fclose(f);
    return 0;
}

/* The sha256 attribute of a run file's /protocol. */
int recorder_protocol_sha256(const char *path, char hex[65], char *err, size_t errlen)
{
    hid_t f, ds;
    H5E_BEGIN_TRY {
        f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    } H5E_END_TRY;
    if (f < 0) {
        snprintf(err, errlen, "not an HDF5 file perfuse can open");
        return -EIO;
    }
    H5E_BEGIN_TRY {
        ds = H5Dopen2(f, "protocol", H5P_DEFAULT);
    } H5E_END_TRY;
    int rc = -ENOENT;
    if (ds < 0)
        snprintf(err, errlen, "no dataset 'protocol'");
    else if ((rc = h5check_read_str_attr(ds, "sha256", hex, 65, err, errlen)) == -ENOENT)
        snprintf(err, errlen, "'protocol' has no attribute 'sha256'");
    if (ds >= 0)
        H5Dclose(ds);
    H5Fclose(f);
    return rc;
}

/* Whether path is a run file left by a crash. */
int recorder_needs_recovery(const char *path, char *err, size_t errlen)
{
    hid_t f;
    H5E_BEGIN_TRY {
        f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    } H5E_END_TRY;
    if (f < 0) {
        htri_t is;
        H5E_BEGIN_TRY {
            is = H5Fis_hdf5(path);
        } H5E_END_TRY;
        if (is > 0)
            return 1;
        /* A crash before the recorder's first flush leaves an empty file: nothing to recover. */
        struct stat st;
        if (stat(path, &st) == 0 && st.st_size == 0)
            snprintf(err, errlen, "empty: nothing of it reached the disk before a crash; nothing to recover");
        else
            snprintf(err, errlen, "not an HDF5 file");
        return -EINVAL;
    }
    char state[H5CHECK_STATE_MAX + 1], why[200];
    int rc = h5check_run_format(f, err, errlen);
    if (rc == 0) {
        rc = h5check_read_str_attr(f, "state", state, sizeof state, why, sizeof why);
        if (rc < 0)
            snprintf(err, errlen, "%s", why);
        else
            rc = strcmp(state, "running") == 0;
    }
    H5Fclose(f);
    return rc < 0 ? -EINVAL : rc;
}
