/* Checked reads of run-file attributes and datasets: type, size and rank first. */
#include "h5check.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A type class as a reader would name it. */
static const char *class_name(H5T_class_t c)
{
    switch (c) {
    case H5T_INTEGER: return "an integer";
    case H5T_FLOAT: return "a float";
    case H5T_STRING: return "a string";
    case H5T_COMPOUND: return "a compound";
    case H5T_ARRAY: return "an array type";
    case H5T_VLEN: return "a variable-length sequence";
    case H5T_ENUM: return "an enum";
    case H5T_REFERENCE: return "a reference";
    case H5T_OPAQUE: return "an opaque type";
    case H5T_BITFIELD: return "a bitfield";
    case H5T_TIME: return "a time type";
    default: return "an unknown type";
    }
}

/* Describe a dataspace: "scalar", "empty", or its rank and dimensions. */
static void describe_space(hid_t space, char *buf, size_t len)
{
    H5S_class_t sc = H5Sget_simple_extent_type(space);
    if (sc == H5S_SCALAR) {
        snprintf(buf, len, "scalar");
        return;
    }
    if (sc != H5S_SIMPLE) {
        snprintf(buf, len, "empty");
        return;
    }
    hsize_t dims[H5S_MAX_RANK];
    int rank = H5Sget_simple_extent_dims(space, dims, NULL);
    size_t off = (size_t)snprintf(buf, len, "rank %d [", rank);
    for (int i = 0; i < rank && off < len; i++)
        off += (size_t)snprintf(buf + off, len - off, "%s%llu", i ? " x " : "",
                                (unsigned long long)dims[i]);
    if (off < len)
        snprintf(buf + off, len - off, "]");
}

int h5check_type_space(hid_t type, hid_t space, const struct h5_expect *e, const char *what,
                       char *err, size_t errlen)
{
    H5T_class_t cls = H5Tget_class(type);
    size_t size = H5Tget_size(type);
    bool vlen = cls == H5T_STRING && H5Tis_variable_str(type) > 0;
    H5S_class_t sc = H5Sget_simple_extent_type(space);
    int rank = H5Sget_simple_extent_ndims(space);
    bool space_ok = e->rank == 0 ? sc == H5S_SCALAR : sc == H5S_SIMPLE && rank == e->rank;
    bool type_ok = cls == e->cls && (vlen ? e->vlen_ok : size >= e->min_size &&
                                             (e->max_size == 0 || size <= e->max_size));
    if (space_ok && type_ok)
        return 0;
    char found[160], want[48];
    describe_space(space, found, sizeof found);
    if (e->max_size > 0 && e->max_size == e->min_size)
        snprintf(want, sizeof want, "%zu bytes", e->min_size);
    else if (e->max_size > 0)
        snprintf(want, sizeof want, "%zu to %zu bytes", e->min_size, e->max_size);
    else
        snprintf(want, sizeof want, "at least %zu bytes", e->min_size);
    /* the class without its article: "a float" -> "float" */
    const char *expected = strchr(class_name(e->cls), ' ') + 1;
    snprintf(err, errlen, "%s: expected a %s %s%s (%s), found %s of %zu bytes, %s", what,
             e->rank == 0 ? "scalar" : "one-dimensional", e->cls == H5T_STRING && !e->vlen_ok ? "fixed-length " : "",
             expected, want, vlen ? "a variable-length string" : class_name(cls), size, found);
    return -EINVAL;
}

/* Check an object's type t and dataspace s (either may be an error, < 0)
 * against e; closes s, leaves t to the caller. */
static int check_object(hid_t t, hid_t s, const struct h5_expect *e, const char *what, char *err,
                        size_t errlen)
{
    int rc = t >= 0 && s >= 0 ? h5check_type_space(t, s, e, what, err, errlen) : -EINVAL;
    if (t < 0 || s < 0)
        snprintf(err, errlen, "%s: unreadable type or dataspace", what);
    if (s >= 0)
        H5Sclose(s);
    return rc;
}

/* Open attribute name of loc and check it is a scalar string, variable-length
 * or of min to max bytes; *type is a copy of its file type (close both). */
static hid_t open_str_attr(hid_t loc, const char *name, size_t min, size_t max, hid_t *type,
                           char *err, size_t errlen)
{
    htri_t exists;
    H5E_BEGIN_TRY {
        exists = H5Aexists(loc, name);
    } H5E_END_TRY;
    if (exists <= 0) {
        snprintf(err, errlen, "no attribute '%s'", name);
        return -ENOENT;
    }
    hid_t a;
    H5E_BEGIN_TRY {
        a = H5Aopen(loc, name, H5P_DEFAULT);
    } H5E_END_TRY;
    if (a < 0) {
        snprintf(err, errlen, "cannot open attribute '%s'", name);
        return -EINVAL;
    }
    hid_t t = H5Aget_type(a), s = H5Aget_space(a);
    char what[80];
    snprintf(what, sizeof what, "attribute '%s'", name);
    struct h5_expect e = { .cls = H5T_STRING, .min_size = min, .max_size = max, .rank = 0,
                           .vlen_ok = 1 };
    int rc = check_object(t, s, &e, what, err, errlen);
    if (rc < 0) {
        if (t >= 0)
            H5Tclose(t);
        H5Aclose(a);
        return rc;
    }
    *type = t;
    return a;
}

int h5check_read_str_attr(hid_t loc, const char *name, char *buf, size_t len, char *err,
                          size_t errlen)
{
    hid_t t;
    hid_t a = open_str_attr(loc, name, 1, len - 1, &t, err, errlen);
    if (a < 0)
        return (int)a;
    /* The memory type is the file type itself: the bytes as stored, whatever
     * the padding and character set. A fixed size was checked to fit buf; a
     * variable-length string is allocated by HDF5 and measured before use. */
    memset(buf, 0, len);
    int rc = 0;
    herr_t e;
    char *vstr = NULL;
    bool vlen = H5Tis_variable_str(t) > 0;
    H5E_BEGIN_TRY {
        e = H5Aread(a, t, vlen ? (void *)&vstr : (void *)buf);
    } H5E_END_TRY;
    if (e < 0) {
        snprintf(err, errlen, "attribute '%s' cannot be read", name);
        rc = -EINVAL;
    } else if (vlen && (vstr == NULL || strlen(vstr) >= len)) {
        snprintf(err, errlen, "attribute '%s': expected a string of at most %zu bytes, found %zu",
                 name, len - 1, vstr ? strlen(vstr) : 0);
        rc = -EINVAL;
    } else if (vlen) {
        memcpy(buf, vstr, strlen(vstr));
    }
    if (vstr != NULL)
        H5free_memory(vstr);
    buf[len - 1] = '\0';
    H5Tclose(t);
    H5Aclose(a);
    return rc;
}

int h5check_write_str_attr(hid_t loc, const char *name, const char *value, size_t max_size,
                           char *err, size_t errlen)
{
    hid_t t;
    hid_t a = open_str_attr(loc, name, strlen(value), max_size, &t, err, errlen);
    if (a < 0)
        return (int)a;
    bool vlen = H5Tis_variable_str(t) > 0;
    size_t size = vlen ? strlen(value) : H5Tget_size(t);
    char *buf = calloc(1, size + 1);
    int rc = buf ? 0 : -ENOMEM;
    if (buf != NULL) {
        memcpy(buf, value, strlen(value));
        if (H5Awrite(a, t, vlen ? (void *)&buf : (void *)buf) < 0) {
            snprintf(err, errlen, "attribute '%s' cannot be written", name);
            rc = -EIO;
        }
    }
    free(buf);
    H5Tclose(t);
    H5Aclose(a);
    return rc;
}

hid_t h5check_open_dataset(hid_t loc, const char *name, const struct h5_expect *e, char *err,
                           size_t errlen)
{
    hid_t ds;
    H5E_BEGIN_TRY {
        ds = H5Lexists(loc, name, H5P_DEFAULT) > 0 ? H5Dopen2(loc, name, H5P_DEFAULT) : -1;
    } H5E_END_TRY;
    if (ds < 0) {
        snprintf(err, errlen, "no dataset '%s'", name);
        return -ENOENT;
    }
    hid_t t = H5Dget_type(ds), s = H5Dget_space(ds);
    char what[200];
    snprintf(what, sizeof what, "dataset '%.150s'", name);
    int rc = check_object(t, s, e, what, err, errlen);
    if (t >= 0)
        H5Tclose(t);
    if (rc < 0) {
        H5Dclose(ds);
        return rc;
    }
    return ds;
}

/* Whether an open file says it is a perfuse run file; -EINVAL with the reason if not. */
int h5check_run_format(hid_t f, char *err, size_t errlen)
{
    char fmt[32], why[200];
    int rc = h5check_read_str_attr(f, "format", fmt, sizeof fmt, why, sizeof why);
    if (rc == 0 && strcmp(fmt, "perfuse-run") != 0)
        snprintf(err, errlen, "not a perfuse run file (its format is '%s')", fmt);
    else if (rc < 0)
        snprintf(err, errlen, "not a perfuse run file (%s)", why);
    return rc == 0 && strcmp(fmt, "perfuse-run") == 0 ? 0 : -EINVAL;
}

hsize_t h5check_rows(hid_t ds)
{
    hid_t sp = H5Dget_space(ds);
    hsize_t dims[H5S_MAX_RANK] = { 0 };
    if (sp >= 0 && H5Sget_simple_extent_ndims(sp) != 1)
        dims[0] = 0;
    else if (sp >= 0)
        H5Sget_simple_extent_dims(sp, dims, NULL);
    if (sp >= 0)
        H5Sclose(sp);
    return dims[0];
}
