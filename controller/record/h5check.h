/*
 * Checked access to the attributes and datasets of a run file that perfuse did
 * not necessarily write: a file in the data directory may be foreign, damaged
 * or crafted. Before anything is read or written, the object's type class,
 * element size and rank are compared with what perfuse expects; a mismatch is
 * an error naming the object and what was found, never a read into a buffer
 * of the wrong size.
 *
 * Used by the recorder's thread and by start-up recovery (blocking HDF5 calls).
 */
#ifndef PERFUSE_H5CHECK_H
#define PERFUSE_H5CHECK_H

#include <stddef.h>

#include <hdf5.h>

/* The longest /@state attribute a run file may hold ("running", "interrupted"...). */
#define H5CHECK_STATE_MAX 64

/* What an attribute or dataset must be. */
struct h5_expect {
    H5T_class_t cls;            /* H5T_STRING (fixed length only), H5T_FLOAT, H5T_COMPOUND ... */
    size_t min_size, max_size;  /* bytes per element; max_size 0: no upper bound */
    int rank;                   /* 0: scalar; 1: one-dimensional */
    int vlen_ok;                /* strings: a variable-length one is fine too */
};

/* Check a type and a dataspace against e. Returns 0, or -EINVAL with
 * "WHAT: expected ..., found ..." in err. */
int h5check_type_space(hid_t type, hid_t space, const struct h5_expect *e, const char *what,
                       char *err, size_t errlen);

/* Read the scalar string attribute name of loc (fixed or variable length)
 * into buf (len bytes, NUL-terminated; the string may hold at most len - 1).
 * Returns 0, -ENOENT if there is none, or -EINVAL with the reason in err. */
int h5check_read_str_attr(hid_t loc, const char *name, char *buf, size_t len, char *err,
                          size_t errlen);

/* Overwrite the scalar string attribute name of loc with value, which must
 * fit in it (a fixed-length one holds at most max_size bytes). Returns 0,
 * -ENOENT, -EINVAL with the reason in err, or -EIO. */
int h5check_write_str_attr(hid_t loc, const char *name, const char *value, size_t max_size,
                           char *err, size_t errlen);

/* Open the dataset name of loc if it is what e says; a negative id with the
 * reason in err otherwise. Close with H5Dclose. */
hid_t h5check_open_dataset(hid_t loc, const char *name, const struct h5_expect *e, char *err,
                           size_t errlen);

/* Whether an open file says it is a perfuse run file (/@format is
 * "perfuse-run"). Returns 0, or -EINVAL with the reason in err. */
int h5check_run_format(hid_t file, char *err, size_t errlen);

/* Rows of a dataset opened by h5check_open_dataset with rank 1. */
hsize_t h5check_rows(hid_t ds);

#endif
