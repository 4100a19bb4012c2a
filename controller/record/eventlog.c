/* Reading a run file's /events back, for a run continued after a restart. */
#include "eventlog.h"
#include "h5check.h"

#include <errno.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A fixed-length string type of n bytes in cset, for reading a member. */
static hid_t str_type(size_t n, H5T_cset_t cset)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, n);
    H5Tset_strpad(t, H5T_STR_NULLTERM);
    H5Tset_cset(t, cset);
    return t;
}

/* The character set of the table's "message" member (files of older versions are ASCII). */
static H5T_cset_t member_cset(hid_t ds)
{
    H5T_cset_t cset = H5T_CSET_UTF8;
    hid_t t = H5Dget_type(ds), m = -1;
    H5E_BEGIN_TRY {
        int i = t >= 0 && H5Tget_class(t) == H5T_COMPOUND ? H5Tget_member_index(t, "message") : -1;
        m = i >= 0 ? H5Tget_member_type(t, (unsigned)i) : -1;
    } H5E_END_TRY;
    if (m >= 0 && H5Tget_class(m) == H5T_STRING)
        cset = H5Tget_cset(m);
    if (m >= 0)
        H5Tclose(m);
    if (t >= 0)
        H5Tclose(t);
    return cset;
}

/* Read the last rows of /events. */
int eventlog_read(const char *path, size_t max, uint64_t *total,
                  void (*row)(void *ctx, uint64_t seq, const struct eventlog_row *e), void *ctx,
                  char *err, size_t errlen)
{
    *total = 0;
    hid_t f;
    H5E_BEGIN_TRY {
        f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    } H5E_END_TRY;
    if (f < 0) {
        snprintf(err, errlen, "cannot open %s to read its events", path);
        return -EIO;
    }
    const struct h5_expect table = { .cls = H5T_COMPOUND, .rank = 1 };
    hid_t ds = h5check_open_dataset(f, "events", &table, err, errlen);
    if (ds < 0) {
        H5Fclose(f);
        return -EIO;
    }
    hsize_t rows = h5check_rows(ds);
    *total = rows;
    hsize_t n = rows < max ? rows : max, start = rows - n;
    struct eventlog_row *buf = n ? calloc(n, sizeof *buf) : NULL;
    int rc = n && buf == NULL ? -ENOMEM : 0;
    if (rc == 0 && n > 0) {
        H5T_cset_t cset = member_cset(ds);
        hid_t mt = H5Tcreate(H5T_COMPOUND, sizeof *buf);
        hid_t sev = str_type(sizeof buf->severity, cset), src = str_type(sizeof buf->source, cset),
              code = str_type(sizeof buf->code, cset), msg = str_type(sizeof buf->message, cset);
        H5Tinsert(mt, "time", HOFFSET(struct eventlog_row, time), H5T_NATIVE_DOUBLE);
        H5Tinsert(mt, "severity", HOFFSET(struct eventlog_row, severity), sev);
        H5Tinsert(mt, "source", HOFFSET(struct eventlog_row, source), src);
        H5Tinsert(mt, "code", HOFFSET(struct eventlog_row, code), code);
        H5Tinsert(mt, "message", HOFFSET(struct eventlog_row, message), msg);
        hid_t fs = H5Dget_space(ds), ms = H5Screate_simple(1, &n, NULL);
        H5Sselect_hyperslab(fs, H5S_SELECT_SET, &start, NULL, &n, NULL);
        herr_t r;
        H5E_BEGIN_TRY {
            r = H5Dread(ds, mt, ms, fs, H5P_DEFAULT, buf);
        } H5E_END_TRY;
        if (r < 0) {
            snprintf(err, errlen, "cannot read the events of %s", path);
            rc = -EIO;
        }
        H5Sclose(ms);
        H5Sclose(fs);
        H5Tclose(sev);
        H5Tclose(src);
        H5Tclose(code);
        H5Tclose(msg);
        H5Tclose(mt);
    }
    for (hsize_t i = 0; rc == 0 && i < n; i++) {
        struct eventlog_row *e = &buf[i];
        /* Whatever the file held, the strings end inside their fields. */
        e->severity[sizeof e->severity - 1] = e->source[sizeof e->source - 1] = '\0';
        e->code[sizeof e->code - 1] = e->message[sizeof e->message - 1] = '\0';
        row(ctx, (uint64_t)(start + i), e);
    }
    free(buf);
    H5Dclose(ds);
    H5Fclose(f);
    return rc;
}
