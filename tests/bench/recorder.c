/*
 * bench-recorder: samples per second through the recorder path (queue,
 * recorder thread, SWMR HDF5 with 1 s flushes), and through a plain HDF5 C
 * append loop with the same layout, measured in the same run. Also the file
 * size against the raw data (8-byte time + 8-byte value per sample), with and
 * without compression. It prints figures; it asserts nothing about speed.
 *
 *   bench-recorder [-n SAMPLES] [-c CHANNELS] [-z LEVEL] [-d DIR]
 */
#include "record/recorder.h"
#include "base/timeutil.h"

#include <errno.h>
#include <getopt.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define RATE_HZ 1000.0
#define PLAIN_CHUNK 1024

/* A sensor-like value: slow drift, a little noise, 0.01 resolution. */
static double sample_value(unsigned ch, uint64_t row)
{
    uint64_t h = (row * 0x9E3779B97F4A7C15ull) ^ (ch * 0xC2B2AE3D27D4EB4Full);
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 32;
    double noise = ((double)(h & 0xffff) / 65535.0 - 0.5) * 0.1;
    double v = 20.0 + ch + 2.0 * sin((double)row / 60000.0 * 2 * M_PI + ch) + noise;
    return round(v * 100.0) / 100.0;
}

/* Size of a file in bytes, or -1. */
static double file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (double)st.st_size : -1;
}

/* Read back channel ch of a run file and count rows whose value is wrong. */
static long verify(const char *path, const char *group_fmt, unsigned ch, uint64_t rows)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0)
        return -1;
    char name[96];
    snprintf(name, sizeof name, group_fmt, ch);
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
    long bad = -1;
    if (ds >= 0) {
        hid_t sp = H5Dget_space(ds);
        hsize_t n = 0;
        H5Sget_simple_extent_dims(sp, &n, NULL);
        H5Sclose(sp);
        double *v = malloc((n ? n : 1) * sizeof *v);
        if (v && n == rows && H5Dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0) {
            bad = 0;
            for (uint64_t i = 0; i < n; i++)
                bad += v[i] != sample_value(ch, i);
        }
        free(v);
        H5Dclose(ds);
    }
    H5Fclose(f);
    return bad;
}

/* Push every sample through the recorder; returns elapsed seconds or -1. */
static double bench_recorder(const char *path, unsigned nch, uint64_t rows, int level)
{
    struct rec_channel *ch = calloc(nch, sizeof *ch);
    char (*names)[32] = calloc(nch, sizeof *names);
    for (unsigned i = 0; i < nch; i++) {
        snprintf(names[i], sizeof names[i], "dev%u.value", i);
        ch[i] = (struct rec_channel){ .name = names[i], .units = "mbar", .device = "dev",
                                      .driver = "bench", .kind = "measured", .rate_hz = RATE_HZ };
    }
    struct rec_run_info info = {
        .path = path, .run_id = "bench", .protocol_name = "bench", .protocol_path = "bench.yaml",
        .protocol_text = "perfuse: 1\n", .rig_name = "bench", .rig_text = "rig: bench\n",
        .operator_name = "", .host = "localhost", .software_version = "bench",
        .start_wall_ns = time_wall_ns(), .channels = ch, .n_channels = nch,
        .flush_interval_s = 1.0, .fsync_interval_s = 10.0, .compression = level,
    };
    struct recorder *r;
    uint64_t t0 = time_mono_ns();
    if (recorder_start(&r, &info, NULL, NULL) < 0) {
        fprintf(stderr, "bench-recorder: cannot start the recorder\n");
        return -1;
    }
    for (uint64_t row = 0; row < rows; row++) {
        double t = (double)row / RATE_HZ;
        for (unsigned i = 0; i < nch; i++)
            recorder_sample(r, i, t, sample_value(i, row));
        /* Like `perfusectl simulate`: a producer that may wait for the disk
         * does, so that the figure is what is written, not what is dropped. */
        if ((row & 1023) == 1023)
            recorder_throttle(r, 1u << 21);
    }
    recorder_finish(r, "completed");
    struct rec_status st;
    recorder_free(r);
    double secs = (double)(time_mono_ns() - t0) / 1e9;
    (void)st;
    free(ch);
    free(names);
    return secs;
}

/* The same layout written by a plain append loop: 1 s of rows per dataset per
 * write, SWMR, a flush every second of wall time. Returns seconds or -1. */
static double bench_plain(const char *path, unsigned nch, uint64_t rows)
{
    uint64_t t0 = time_mono_ns();
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (f < 0)
        return -1;
    hid_t chans = H5Gcreate2(f, "channels", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t *ds = calloc(2 * nch, sizeof *ds);
    hsize_t zero = 0, unl = H5S_UNLIMITED, chunk = PLAIN_CHUNK;
    for (unsigned i = 0; i < nch; i++) {
        char name[32];
        snprintf(name, sizeof name, "dev%u.value", i);
        hid_t g = H5Gcreate2(chans, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        for (int k = 0; k < 2; k++) {
            hid_t sp = H5Screate_simple(1, &zero, &unl);
            hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
            H5Pset_chunk(dcpl, 1, &chunk);
            ds[2 * i + k] = H5Dcreate2(g, k ? "value" : "time", H5T_IEEE_F64LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
            H5Pclose(dcpl);
            H5Sclose(sp);
        }
        H5Gclose(g);
    }
    H5Gclose(chans);
    H5Fstart_swmr_write(f);
    hsize_t block = (hsize_t)RATE_HZ;
    double *tb = malloc(block * sizeof *tb), *vb = malloc(block * sizeof *vb);
    uint64_t last_flush = time_mono_ns();
    for (uint64_t row = 0; row < rows; row += block) {
        hsize_t n = rows - row < block ? rows - row : block, start = row, size = row + n;
        for (unsigned i = 0; i < nch; i++) {
            for (hsize_t k = 0; k < n; k++) {
                tb[k] = (double)(row + k) / RATE_HZ;
                vb[k] = sample_value(i, row + k);
            }
            for (int k = 0; k < 2; k++) {
                hid_t d = ds[2 * i + k];
                H5Dset_extent(d, &size);
                hid_t fs = H5Dget_space(d), ms = H5Screate_simple(1, &n, NULL);
                H5Sselect_hyperslab(fs, H5S_SELECT_SET, &start, NULL, &n, NULL);
                H5Dwrite(d, H5T_NATIVE_DOUBLE, ms, fs, H5P_DEFAULT, k ? vb : tb);
                H5Sclose(ms);
                H5Sclose(fs);
            }
        }
        if (time_mono_ns() - last_flush >= 1000000000ull) {
            H5Fflush(f, H5F_SCOPE_GLOBAL);
            last_flush = time_mono_ns();
        }
    }
    for (unsigned i = 0; i < 2 * nch; i++)
        H5Dclose(ds[i]);
    H5Fclose(f);
    free(ds);
    free(tb);
    free(vb);
    return (double)(time_mono_ns() - t0) / 1e9;
}

int main(int argc, char **argv)
{
    uint64_t samples = 10000000;
    unsigned nch = 64;
    int level = 4;
    const char *dir = "/tmp";
    int c;
    while ((c = getopt(argc, argv, "n:c:z:d:h")) != -1) {
        switch (c) {
        case 'n': samples = strtoull(optarg, NULL, 10); break;
        case 'c': nch = (unsigned)atoi(optarg); break;
        case 'z': level = atoi(optarg); break;
        case 'd': dir = optarg; break;
        default:
            fprintf(stderr, "usage: bench-recorder [-n SAMPLES] [-c CHANNELS] [-z LEVEL] [-d DIR]\n");
            return c == 'h' ? 0 : 2;
        }
    }
    if (nch == 0 || samples < nch || level < 1 || level > 9) {
        fprintf(stderr, "bench-recorder: need CHANNELS >= 1, SAMPLES >= CHANNELS, LEVEL 1-9\n");
        return 2;
    }
    uint64_t rows = samples / nch;
    samples = rows * nch;
    double raw = (double)samples * 16.0;
    char rec_path[512], zrec_path[512], plain_path[512];
    snprintf(rec_path, sizeof rec_path, "%s/bench-recorder.h5", dir);
    snprintf(zrec_path, sizeof zrec_path, "%s/bench-recorder-deflate.h5", dir);
    snprintf(plain_path, sizeof plain_path, "%s/bench-plain.h5", dir);
    unlink(rec_path);
    unlink(zrec_path);
    printf("bench-recorder: %llu samples, %u channels at %.0f Hz, SWMR, 1 s flushes\n",
           (unsigned long long)samples, nch, RATE_HZ);

    double t_plain = bench_plain(plain_path, nch, rows);
    double t_rec = bench_recorder(rec_path, nch, rows, 0);
    double t_zrec = bench_recorder(zrec_path, nch, rows, level);
    if (t_plain < 0 || t_rec < 0 || t_zrec < 0) {
        fprintf(stderr, "bench-recorder: a run failed\n");
        return 1;
    }
    long bad = verify(rec_path, "/channels/dev%u.value/value", nch - 1, rows);
    long zbad = verify(zrec_path, "/channels/dev%u.value/value", nch - 1, rows);
    long pbad = verify(plain_path, "/channels/dev%u.value/value", nch - 1, rows);
    double s_plain = file_size(plain_path), s_rec = file_size(rec_path), s_zrec = file_size(zrec_path);

    printf("  %-34s %10s %14s %12s %10s\n", "path", "seconds", "samples/s", "file/raw", "bad rows");
    printf("  %-34s %10.2f %14.0f %12.2f %10ld\n", "plain HDF5 append loop", t_plain,
           (double)samples / t_plain, s_plain / raw, pbad);
    printf("  %-34s %10.2f %14.0f %12.2f %10ld\n", "recorder, uncompressed", t_rec,
           (double)samples / t_rec, s_rec / raw, bad);
    char zname[64];
    snprintf(zname, sizeof zname, "recorder, shuffle+deflate %d", level);
    printf("  %-34s %10.2f %14.0f %12.2f %10ld\n", zname, t_zrec, (double)samples / t_zrec,
           s_zrec / raw, zbad);
    printf("  recorder / plain loop: %.0f %% (uncompressed), %.0f %% (compressed)\n",
           100.0 * t_plain / t_rec, 100.0 * t_plain / t_zrec);
    printf("  raw data %.1f MB; files: plain %.1f MB, recorder %.1f MB, compressed %.1f MB\n",
           raw / 1e6, s_plain / 1e6, s_rec / 1e6, s_zrec / 1e6);
    unlink(rec_path);
    unlink(zrec_path);
    unlink(plain_path);
    return bad == 0 && zbad == 0 && pbad == 0 ? 0 : 1;
}
