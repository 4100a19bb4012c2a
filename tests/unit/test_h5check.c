/* Checked reads of run-file attributes and datasets: type, size and rank are
 * compared before anything is read, and a mismatch names what was found. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "record/h5check.h"

static char path[64];
static hid_t file;

/* An attribute of type t and space s holding buf. */
static void put_attr(const char *name, hid_t t, hid_t s, const void *buf)
{
    hid_t a = H5Acreate2(file, name, t, s, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(a >= 0);
    assert_true(H5Awrite(a, t, buf) >= 0);
    H5Aclose(a);
    H5Sclose(s);
}

/* A fixed-length string type of n bytes. */
static hid_t str_type(size_t n)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, n);
    return t;
}

static int setup(void **state)
{
    (void)state;
    snprintf(path, sizeof path, "/tmp/perfuse-h5check-%d.h5", (int)getpid());
    file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    return file < 0 ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    H5Fclose(file);
    return unlink(path);
}

static void test_an_array_of_2000_strings_is_refused_before_reading(void **state)
{
    (void)state;
    static char many[2000][16];
    for (int i = 0; i < 2000; i++)
        memcpy(many[i], "running", 7);
    hsize_t n = 2000;
    hid_t t = str_type(16);
    put_attr("state", t, H5Screate_simple(1, &n, NULL), many);
    H5Tclose(t);
    char buf[65], err[256];
    assert_int_equal(h5check_read_str_attr(file, "state", buf, sizeof buf, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "rank 1 [2000]"));
}

static void test_strings_too_long_or_of_another_type_are_refused(void **state)
{
    (void)state;
    char big[4096] = "running", buf[65], err[256];
    hid_t t = str_type(sizeof big);
    put_attr("long", t, H5Screate(H5S_SCALAR), big);
    H5Tclose(t);
    int seven = 7;
    put_attr("int", H5T_NATIVE_INT, H5Screate(H5S_SCALAR), &seven);
    char vlong[200];
    memset(vlong, 'x', sizeof vlong - 1);
    vlong[sizeof vlong - 1] = '\0';
    const char *pv = vlong;
    hid_t vt = H5Tcopy(H5T_C_S1);
    H5Tset_size(vt, H5T_VARIABLE);
    put_attr("vlong", vt, H5Screate(H5S_SCALAR), &pv);
    assert_int_equal(h5check_read_str_attr(file, "long", buf, sizeof buf, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "4096 bytes"));
    assert_int_equal(h5check_read_str_attr(file, "int", buf, sizeof buf, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "found an integer"));
    assert_int_equal(h5check_read_str_attr(file, "vlong", buf, sizeof buf, err, sizeof err), -EINVAL);
    assert_int_equal(h5check_read_str_attr(file, "none", buf, sizeof buf, err, sizeof err), -ENOENT);
    H5Tclose(vt);
}

static void test_fixed_and_variable_strings_that_fit_are_read_and_written(void **state)
{
    (void)state;
    char s16[16] = "running", s8[8] = "running", buf[65], err[256];
    hid_t t = str_type(16), t8 = str_type(8);
    put_attr("state", t, H5Screate(H5S_SCALAR), s16);
    put_attr("short", t8, H5Screate(H5S_SCALAR), s8);
    const char *pv = "running";
    hid_t vt = H5Tcopy(H5T_C_S1);
    H5Tset_size(vt, H5T_VARIABLE);
    put_attr("vstate", vt, H5Screate(H5S_SCALAR), &pv);
    assert_int_equal(h5check_read_str_attr(file, "state", buf, sizeof buf, err, sizeof err), 0);
    assert_string_equal(buf, "running");
    assert_int_equal(h5check_read_str_attr(file, "vstate", buf, sizeof buf, err, sizeof err), 0);
    assert_string_equal(buf, "running");
    assert_int_equal(h5check_write_str_attr(file, "state", "interrupted", 64, err, sizeof err), 0);
    assert_int_equal(h5check_read_str_attr(file, "state", buf, sizeof buf, err, sizeof err), 0);
    assert_string_equal(buf, "interrupted");
    assert_int_equal(h5check_write_str_attr(file, "vstate", "interrupted", 64, err, sizeof err), 0);
    assert_int_equal(h5check_read_str_attr(file, "vstate", buf, sizeof buf, err, sizeof err), 0);
    assert_string_equal(buf, "interrupted");
    /* Too small to hold the new value: refused, not cut. */
    assert_int_equal(h5check_write_str_attr(file, "short", "interrupted", 64, err, sizeof err), -EINVAL);
    assert_int_equal(h5check_read_str_attr(file, "short", buf, sizeof buf, err, sizeof err), 0);
    assert_string_equal(buf, "running");
    H5Tclose(t);
    H5Tclose(t8);
    H5Tclose(vt);
}

static void test_a_dataset_of_the_wrong_rank_or_class_is_not_opened(void **state)
{
    (void)state;
    hsize_t dims[2] = { 4, 3 };
    double zeros[12] = { 0 };
    hid_t s = H5Screate_simple(2, dims, NULL);
    hid_t ds = H5Dcreate2(file, "time", H5T_IEEE_F64LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, zeros);
    H5Dclose(ds);
    H5Sclose(s);
    hsize_t n = 3;
    s = H5Screate_simple(1, &n, NULL);
    ds = H5Dcreate2(file, "ints", H5T_STD_I32LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dclose(ds);
    H5Sclose(s);
    char err[256];
    const struct h5_expect f64 = { .cls = H5T_FLOAT, .min_size = 8, .max_size = 8, .rank = 1 };
    assert_true(h5check_open_dataset(file, "time", &f64, err, sizeof err) < 0);
    assert_non_null(strstr(err, "rank 2 [4 x 3]"));
    assert_true(h5check_open_dataset(file, "ints", &f64, err, sizeof err) < 0);
    assert_non_null(strstr(err, "found an integer"));
    assert_true(h5check_open_dataset(file, "nothing", &f64, err, sizeof err) < 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_an_array_of_2000_strings_is_refused_before_reading, setup, teardown),
        cmocka_unit_test_setup_teardown(test_strings_too_long_or_of_another_type_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fixed_and_variable_strings_that_fit_are_read_and_written, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_dataset_of_the_wrong_rank_or_class_is_not_opened, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
