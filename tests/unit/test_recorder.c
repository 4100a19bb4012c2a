/* The recorder: the run file's layout and values, dropped records, and recovery after kill -9. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "record/recorder.h"
#include "record/recovery.h"

static const struct rec_channel chans[] = {
    { "chip1.pressure", "mbar", "chip1", "modbus", "measured", 0, 0 },
    { "pump1.flow", "uL/min", "pump1", "newera", "setpoint", 0, 0 },
};
static const struct rec_channel sps[] = { { "pump1.flow", "uL/min", "pump1", "newera", "setpoint", 0, 0 } };

static char dir[64];

static int make_dir(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/perfuse-rec.XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

/* Run info for a file at path. */
static struct rec_run_info info_for(const char *path)
{
    return (struct rec_run_info){
        .path = path, .run_id = "0123456789abcdef", .protocol_name = "t", .protocol_path = "/p.yaml",
        .protocol_text = "perfuse: 1\n", .rig_name = "sim", .rig_text = "rig: sim\n",
        .operator_name = "alice", .host = "h", .software_version = "test",
        .start_wall_ns = 1700000000000000000LL, .channels = chans, .n_channels = 2,
        .setpoints = sps, .n_setpoints = 1,
    };
}

/* Read a 1-D float64 dataset. */
static size_t read_f64(hid_t f, const char *name, double *out, size_t max)
{
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    assert_true(d >= 0);
    hid_t s = H5Dget_space(d);
    hsize_t n;
    H5Sget_simple_extent_dims(s, &n, NULL);
    assert_true(n <= max);
    if (n > 0)
        assert_true(H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) >= 0);
    H5Sclose(s);
    H5Dclose(d);
    return (size_t)n;
}

/* Read a string attribute. */
static void read_attr(hid_t loc, const char *obj, const char *name, char *buf, size_t len)
{
    hid_t a = H5Aopen_by_name(loc, obj, name, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(a >= 0);
    hid_t t = H5Aget_type(a);
    size_t n = H5Tget_size(t);
    assert_true(n < len);
    memset(buf, 0, len);
    assert_true(H5Aread(a, t, buf) >= 0);
    H5Tclose(t);
    H5Aclose(a);
}

static void test_layout_and_values(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/a.h5", dir);
    struct rec_run_info info = info_for(path);
    struct recorder *r;
    assert_int_equal(recorder_start(&r, &info, NULL, NULL), 0);
    for (int i = 0; i < 3000; i++)
        recorder_sample(r, 0, i * 0.1, 100.0 + i);
    recorder_setpoint(r, 0, 0.0, 50.0);
    recorder_setpoint(r, 0, 8.0, 5.0);
    recorder_event(r, 0.0, "info", "runner", "run_started", "started");
    struct rec_step s = { .index = 0, .path = "1", .name = "prime", .planned_start = 0, .start = 0.001,
                          .end = NAN, .outcome = "running" };
    recorder_step(r, &s);
    s.end = 8.0;
    snprintf(s.outcome, sizeof s.outcome, "done");
    recorder_step(r, &s);       /* rewrites row 0 */
    recorder_finish(r, "completed");
    recorder_free(r);

    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    char buf[256];
    read_attr(f, "/", "state", buf, sizeof buf);
    assert_string_equal(buf, "completed");
    read_attr(f, "/", "format", buf, sizeof buf);
    assert_string_equal(buf, "perfuse-run");
    read_attr(f, "/", "operator", buf, sizeof buf);
    assert_string_equal(buf, "alice");
    read_attr(f, "/channels/chip1.pressure", "NX_class", buf, sizeof buf);
    assert_string_equal(buf, "NXlog");
    read_attr(f, "/channels/chip1.pressure", "units", buf, sizeof buf);
    assert_string_equal(buf, "mbar");
    read_attr(f, "/channels/chip1.pressure/time", "units", buf, sizeof buf);
    assert_string_equal(buf, "s");
    read_attr(f, "/protocol", "sha256", buf, sizeof buf);
    /* sha256("perfuse: 1\n") */
    assert_int_equal(strlen(buf), 64);
    static double t[4000], v[4000];
    assert_int_equal(read_f64(f, "/channels/chip1.pressure/time", t, 4000), 3000);
    assert_int_equal(read_f64(f, "/channels/chip1.pressure/value", v, 4000), 3000);
    for (int i = 0; i < 3000; i++) {
        assert_float_equal(t[i], i * 0.1, 0);
        assert_float_equal(v[i], 100.0 + i, 0);
    }
    assert_int_equal(read_f64(f, "/channels/pump1.flow/value", v, 4000), 0);
    assert_int_equal(read_f64(f, "/setpoints/pump1.flow/value", v, 4000), 2);
    assert_float_equal(v[1], 5.0, 0);
    hid_t d = H5Dopen2(f, "/steps", H5P_DEFAULT);
    hid_t sp = H5Dget_space(d);
    hsize_t n;
    H5Sget_simple_extent_dims(sp, &n, NULL);
    assert_int_equal(n, 1);
    H5Sclose(sp);
    H5Dclose(d);
    H5Fclose(f);
}

/* Read a scalar string dataset. */
static void read_str(hid_t f, const char *name, char *buf, size_t len)
{
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    assert_true(d >= 0);
    hid_t t = H5Dget_type(d);
    assert_true(H5Tget_size(t) < len);
    memset(buf, 0, len);
    assert_true(H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0);
    H5Tclose(t);
    H5Dclose(d);
}

/* The NeXus entry with its sample fields (at the start and during the run),
 * and a counter stored from the run's start, continued after a restart. */
static void test_nexus_metadata_and_counters(void **state)
{
    (void)state;
    static const struct rec_channel cch[] = {
        { .name = "pump1.dispensed", .units = "uL", .device = "pump1", .driver = "newera",
          .kind = "measured", .counter = 1 },
    };
    static const struct rec_meta meta[] = { { "sample/chip_id", "C-17" }, { "notes", "lot 2211" } };
    assert_int_equal(recorder_metadata_key_ok("channels"), -EINVAL);
    assert_int_equal(recorder_metadata_key_ok("sample/a b"), -EINVAL);
    assert_int_equal(recorder_metadata_key_ok("../x"), -EINVAL);
    assert_int_equal(recorder_metadata_key_ok("sample/"), -EINVAL);
    assert_int_equal(recorder_metadata_key_ok("sample/passage"), 0);
    char path[128];
    snprintf(path, sizeof path, "%s/meta.h5", dir);
    struct rec_run_info info = info_for(path);
    info.channels = cch;
    info.n_channels = 1;
    info.metadata = meta;
    info.n_metadata = 2;
    struct recorder *r;
    assert_int_equal(recorder_start(&r, &info, NULL, NULL), 0);
    recorder_sample(r, 0, 0.0, NAN);
    recorder_sample(r, 0, 1.0, 287.0);
    recorder_sample(r, 0, 2.0, 288.5);
    assert_int_equal(recorder_set_metadata(r, "sample/cell_line", "Caco-2"), 0);
    assert_int_equal(recorder_set_metadata(r, "sample/cell_line", "Caco-2 p12"), 0);
    assert_int_equal(recorder_set_metadata(r, "start_time", "x"), -EINVAL);
    recorder_finish(r, "completed");
    recorder_free(r);

    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    char buf[256];
    read_attr(f, "/", "NX_class", buf, sizeof buf);
    assert_string_equal(buf, "NXroot");
    read_attr(f, "/entry", "NX_class", buf, sizeof buf);
    assert_string_equal(buf, "NXentry");
    read_attr(f, "/entry/sample", "NX_class", buf, sizeof buf);
    assert_string_equal(buf, "NXsample");
    read_attr(f, "/entry/channels", "NX_class", buf, sizeof buf);
    assert_string_equal(buf, "NXcollection");
    read_str(f, "/entry/sample/chip_id", buf, sizeof buf);
    assert_string_equal(buf, "C-17");
    read_str(f, "/entry/sample/cell_line", buf, sizeof buf);
    assert_string_equal(buf, "Caco-2 p12");
    read_str(f, "/entry/notes", buf, sizeof buf);
    assert_string_equal(buf, "lot 2211");
    read_str(f, "/entry/user/name", buf, sizeof buf);
    assert_string_equal(buf, "alice");
    static double v[16];
    assert_int_equal(read_f64(f, "/channels/pump1.dispensed/value", v, 16), 3);
    assert_true(isnan(v[0]));
    assert_float_equal(v[1], 0.0, 0);
    assert_float_equal(v[2], 1.5, 0);
    hid_t a = H5Aopen_by_name(f, "/entry/channels/pump1.dispensed", "counter_at_start", H5P_DEFAULT, H5P_DEFAULT);
    assert_true(a >= 0);
    double raw = 0;
    assert_true(H5Aread(a, H5T_NATIVE_DOUBLE, &raw) >= 0);
    assert_float_equal(raw, 287.0, 0);
    H5Aclose(a);
    static double c[2];
    assert_int_equal(read_f64(f, "/channels/pump1.dispensed/counter_at_start", c, 2), 1);
    assert_float_equal(c[0], 287.0, 0);
    /* A crash leaves no attribute: the continued run finds the start in the dataset. */
    assert_true(H5Adelete_by_name(f, "/channels/pump1.dispensed", "counter_at_start", H5P_DEFAULT) >= 0);
    H5Fclose(f);

    info.append = 1;
    info.n_metadata = 0;
    assert_int_equal(recorder_start(&r, &info, NULL, NULL), 0);
    recorder_sample(r, 0, 10.0, 295.0);
    recorder_finish(r, "completed");
    recorder_free(r);
    f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_int_equal(read_f64(f, "/channels/pump1.dispensed/value", v, 16), 4);
    assert_float_equal(v[3], 8.0, 0);
    H5Fclose(f);
}

static void test_dropped_records_are_counted(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/b.h5", dir);
    struct rec_run_info info = info_for(path);
    info.max_queued = 1024;
    struct recorder *r;
    assert_int_equal(recorder_start(&r, &info, NULL, NULL), 0);
    for (int i = 0; i < 100000; i++)
        recorder_sample(r, 0, i, i);
    struct rec_status st;
    recorder_get_status(r, &st);
    recorder_finish(r, "completed");
    recorder_free(r);
    /* The thread swaps the queue out at least once a second, so with a bound of
     * 1024 most of 100000 samples queued in a burst cannot all fit. */
    assert_true(st.dropped > 0);
}

struct flushed {
    pthread_mutex_t m;
    pthread_cond_t c;
    struct recorder *r;
    uint64_t written;
};

/* Notify callback in the child: wake the writer when records are written. */
static void on_status(void *arg)
{
    struct flushed *fl = arg;
    pthread_mutex_lock(&fl->m);
    if (fl->r) {
        struct rec_status st;
        recorder_get_status(fl->r, &st);
        fl->written = st.written;
    }
    pthread_cond_signal(&fl->c);
    pthread_mutex_unlock(&fl->m);
}

/* Child: write 2000 samples, wait until they are flushed, report, then keep writing. */
static void crash_child(const char *path, int fd)
{
    static struct flushed fl = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, 0 };
    struct rec_run_info info = info_for(path);
    struct recorder *r;
    if (recorder_start(&r, &info, on_status, &fl) != 0)
        _exit(2);
    pthread_mutex_lock(&fl.m);
    fl.r = r;
    pthread_mutex_unlock(&fl.m);
    for (int i = 0; i < 2000; i++)
        recorder_sample(r, 0, i * 0.01, i * 1.5);
    pthread_mutex_lock(&fl.m);
    while (fl.written < 2000)
        pthread_cond_wait(&fl.c, &fl.m);
    pthread_mutex_unlock(&fl.m);
    if (write(fd, "F", 1) != 1)
        _exit(3);
    for (int i = 2000;; i++)
        recorder_sample(r, 0, i * 0.01, i * 1.5);
}

static void test_kill9_then_recover_keeps_every_flushed_sample(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/c.h5", dir);
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        crash_child(path, p[1]);
    }
    close(p[1]);
    char c;
    assert_int_equal(read(p[0], &c, 1), 1);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    close(p[0]);
    char err[256];
    assert_int_equal(recorder_recover(path, err, sizeof err), 0);
    assert_int_equal(recorder_recover(path, err, sizeof err), 0);     /* safe twice */
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    char buf[64];
    read_attr(f, "/", "state", buf, sizeof buf);
    assert_string_equal(buf, "interrupted");
    static double t[4000000], v[4000000];
    size_t n = read_f64(f, "/channels/chip1.pressure/time", t, 4000000);
    size_t m = read_f64(f, "/channels/chip1.pressure/value", v, 4000000);
    assert_true(n >= 2000);
    assert_int_equal(n, m);
    for (size_t i = 0; i < n; i++) {
        assert_float_equal(t[i], (double)i * 0.01, 1e-12);
        assert_float_equal(v[i], (double)i * 1.5, 0);
    }
    H5Fclose(f);
}

/* Compression: hundreds of flushes that each end inside a chunk. Every value
 * must come back exact (the partial last chunk too), and the file must stay
 * smaller than its raw data: no chunk is rewritten, so no space is leaked. */
static void test_compressed_flushes_do_not_bloat(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/z.h5", dir);
    static const struct rec_channel zch[] = {
        { "chip1.pressure", "mbar", "chip1", "modbus", "measured", 100.0, 0 },
        { "chip1.o2", "%", "chip1", "modbus", "measured", 100.0, 0 },
    };
    struct rec_run_info info = info_for(path);
    info.channels = zch;
    info.n_setpoints = 0;
    info.compression = 4;
    info.flush_interval_s = 0.1;          /* 100 Hz: 100-row chunks */
    struct recorder *r;
    assert_int_equal(recorder_start(&r, &info, NULL, NULL), 0);
    const size_t per_batch = 37, batches = 300, n = per_batch * batches;
    for (size_t b = 0; b < batches; b++) {
        for (size_t k = 0; k < per_batch; k++) {
            size_t i = b * per_batch + k;
            recorder_sample(r, 0, (double)i / 1000.0, 20.0 + (double)(i % 97) / 100.0);
            recorder_sample(r, 1, (double)i / 1000.0, 95.0 - (double)(i % 13) / 10.0);
        }
        recorder_throttle(r, 0);          /* one write batch and flush per loop */
    }
    recorder_finish(r, "completed");
    recorder_free(r);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    double *t = malloc(n * sizeof *t), *v = malloc(n * sizeof *v);
    assert_int_equal(read_f64(f, "/channels/chip1.pressure/time", t, n), n);
    assert_int_equal(read_f64(f, "/channels/chip1.pressure/value", v, n), n);
    for (size_t i = 0; i < n; i++) {
        assert_true(t[i] == (double)i / 1000.0);
        assert_true(v[i] == 20.0 + (double)(i % 97) / 100.0);
    }
    assert_int_equal(read_f64(f, "/channels/chip1.o2/value", v, n), n);
    for (size_t i = 0; i < n; i++)
        assert_true(v[i] == 95.0 - (double)(i % 13) / 10.0);
    hid_t d = H5Dopen2(f, "/channels/chip1.o2/value", H5P_DEFAULT);
    hid_t dcpl = H5Dget_create_plist(d);
    assert_int_equal(H5Pget_nfilters(dcpl), 2);       /* shuffle, deflate */
    hsize_t chunk;
    H5Pget_chunk(dcpl, 1, &chunk);
    assert_int_equal(chunk, 100);
    H5Pclose(dcpl);
    H5Dclose(d);
    H5Fclose(f);
    free(t);
    free(v);
    FILE *fp = fopen(path, "rb");
    fseek(fp, 0, SEEK_END);
    double size = (double)ftell(fp);
    fclose(fp);
    double raw = 2.0 * (double)n * 16.0;
    print_message("compressed file: %.0f bytes for %.0f raw (%.2f)\n", size, raw, size / raw);
    assert_true(size < 0.8 * raw);
    unlink(path);
}

/* Rows of a 1-D dataset. */
static hsize_t rows_of(hid_t f, const char *name)
{
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    assert_true(d >= 0);
    hid_t sp = H5Dget_space(d);
    hsize_t n = 0;
    H5Sget_simple_extent_dims(sp, &n, NULL);
    H5Sclose(sp);
    H5Dclose(d);
    return n;
}

/* A crash can leave a series' time and value at different lengths (HDF5 may
 * write one's new extent before the other's): recovery cuts both to the
 * shorter, and leaves a series whose lengths agree as it is. */
static void test_recover_evens_a_series_left_uneven(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/u.h5", dir);
    struct rec_run_info info = info_for(path);
    struct recorder *r;
    assert_int_equal(recorder_start(&r, &info, NULL, NULL), 0);
    for (int i = 0; i < 100; i++) {
        recorder_sample(r, 0, i * 0.1, 1.0 + i);
        recorder_sample(r, 1, i * 0.1, 2.0 + i);
    }
    recorder_finish(r, "completed");
    recorder_free(r);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t d = H5Dopen2(f, "/channels/chip1.pressure/time", H5P_DEFAULT);
    hsize_t more = 105;
    assert_true(H5Dset_extent(d, &more) >= 0);
    H5Dclose(d);
    d = H5Dopen2(f, "/channels/pump1.flow/value", H5P_DEFAULT);
    assert_true(H5Dset_extent(d, &more) >= 0);
    H5Dclose(d);
    H5Fclose(f);
    char err[256];
    assert_int_equal(recorder_recover(path, err, sizeof err), 0);
    f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    assert_int_equal(rows_of(f, "/channels/chip1.pressure/time"), 100);
    assert_int_equal(rows_of(f, "/channels/chip1.pressure/value"), 100);
    assert_int_equal(rows_of(f, "/channels/pump1.flow/time"), 100);
    assert_int_equal(rows_of(f, "/channels/pump1.flow/value"), 100);
    assert_int_equal(rows_of(f, "/setpoints/pump1.flow/time"), rows_of(f, "/setpoints/pump1.flow/value"));
    static double v[200];
    assert_int_equal(read_f64(f, "/channels/chip1.pressure/value", v, 200), 100);
    assert_float_equal(v[99], 100.0, 0);
    H5Fclose(f);
    unlink(path);
}

static int cleanup(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout_and_values),
        cmocka_unit_test(test_nexus_metadata_and_counters),
        cmocka_unit_test(test_dropped_records_are_counted),
        cmocka_unit_test(test_kill9_then_recover_keeps_every_flushed_sample),
        cmocka_unit_test(test_compressed_flushes_do_not_bloat),
        cmocka_unit_test(test_recover_evens_a_series_left_uneven),
    };
    return cmocka_run_group_tests(tests, make_dir, cleanup);
}
