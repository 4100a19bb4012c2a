/* The simulator's line-rate pacing against arithmetic: N bytes at B baud with
 * F bits per character take N * F / B seconds. Tolerance: each character is
 * rounded to a whole ns, so N characters may be off by at most N / 2 ns. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "drivers/sim/sim_wire.h"

#define MS 1000000LL

/* The exact time of n characters of bits bits at baud, in ns (as a double). */
static double exact_ns(size_t n, int bits, int baud)
{
    return (double)n * bits * 1e9 / baud;
}

/* |got - want| within the rounding tolerance of n characters. */
static void assert_close(int64_t got, double want, size_t n)
{
    double tol = (double)n / 2 + 1;
    double d = (double)got - want;
    if (d < -tol || d > tol)
        fail_msg("got %lld ns, expected %.1f ns (tolerance %.1f ns)", (long long)got, want, tol);
}

/* Send n bytes from the host at t=0 and return when the last reached the device. */
static int64_t host_to_device(struct sim_wire *w, size_t n)
{
    uint8_t buf[SIM_WIRE_BUF], got[SIM_WIRE_BUF];
    memset(buf, 'x', n);
    sim_wire_host_sent(w, 0, buf, n);
    int64_t done = -1;
    size_t k = sim_wire_device_take(w, INT64_MAX / 2, got, sizeof got, &done);
    assert_int_equal(k, n);
    return done;
}

static void test_bytes_from_the_host_take_n_times_f_over_b(void **state)
{
    (void)state;
    static const struct { int baud, data; char parity; int stop, bits; } cases[] = {
        { 9600, 8, 'N', 1, 10 }, { 19200, 8, 'N', 1, 10 }, { 9600, 7, 'O', 1, 10 },
        { 19200, 8, 'E', 2, 12 }, { 115200, 8, 'N', 1, 10 }, { 9600, 7, 'N', 2, 10 },
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        assert_int_equal(sim_wire_char_bits(cases[c].data, cases[c].parity, cases[c].stop),
                         cases[c].bits);
        for (size_t n = 1; n <= 1000; n = n * 10) {
            struct sim_wire w;
            sim_wire_init(&w, cases[c].baud, cases[c].data, cases[c].parity, cases[c].stop, false,
                          true);
            assert_close(host_to_device(&w, n), exact_ns(n, cases[c].bits, cases[c].baud), n);
        }
    }
}

static void test_a_reply_takes_latency_plus_n_times_f_over_b(void **state)
{
    (void)state;
    struct sim_wire w;
    sim_wire_init(&w, 19200, 8, 'N', 1, false, true);
    uint8_t reply[200], got[SIM_WIRE_BUF];
    memset(reply, 'r', sizeof reply);
    int64_t done = 7 * MS, lat = 2 * MS;
    sim_wire_device_reply(&w, done, lat, reply, sizeof reply);
    double end = (double)(done + lat) + exact_ns(sizeof reply, 10, 19200);
    /* Nothing is on the host's side before the first character is through. */
    assert_int_equal(sim_wire_host_take(&w, done + lat + 1000, got, sizeof got), 0);
    /* Half-way, about half of it. */
    int64_t half = done + lat + (int64_t)exact_ns(100, 10, 19200);
    assert_int_equal(sim_wire_host_take(&w, half + 1, got, sizeof got), 100);
    assert_int_equal(sim_wire_host_take(&w, (int64_t)end - 1000, got, sizeof got), 99);
    assert_close(sim_wire_next_ns(&w), end, sizeof reply);
    assert_int_equal(sim_wire_host_take(&w, (int64_t)end + 100, got, sizeof got), 1);
    assert_int_equal(sim_wire_next_ns(&w), INT64_MAX);
}

static void test_a_byte_is_not_at_the_device_before_its_time(void **state)
{
    (void)state;
    struct sim_wire w;
    sim_wire_init(&w, 9600, 8, 'N', 1, false, true);
    uint8_t cmd[5] = "0RAT\r", got[8];
    int64_t done = -1;
    sim_wire_host_sent(&w, 0, cmd, sizeof cmd);
    int64_t one = (int64_t)exact_ns(1, 10, 9600);
    assert_int_equal(sim_wire_device_take(&w, one - 1000, got, sizeof got, &done), 0);
    assert_int_equal(sim_wire_device_take(&w, one + 1000, got, sizeof got, &done), 1);
    assert_close(done, exact_ns(1, 10, 9600), 1);
    /* A second write while the first is on the wire queues behind it. */
    sim_wire_host_sent(&w, one + 2000, cmd, 1);
    assert_int_equal(sim_wire_device_take(&w, INT64_MAX / 2, got, sizeof got, &done), 5);
    assert_close(done, exact_ns(6, 10, 9600), 6);
}

static void test_an_rtu_request_is_taken_after_its_silence(void **state)
{
    (void)state;
    struct sim_wire w;
    sim_wire_init(&w, 19200, 8, 'N', 1, true, true);
    uint8_t req[8] = { 1, 4, 0, 0, 0, 2, 0x71, 0xCB }, got[32];
    int64_t done = -1;
    double frame = exact_ns(8, 10, 19200), gap = 3.5 * exact_ns(1, 10, 19200);
    assert_close(sim_wire_rtu_gap_ns(19200, 10), gap, 4);
    assert_int_equal(sim_wire_rtu_gap_ns(38400, 10), 1750000);    /* fixed above 19200 */
    sim_wire_host_sent(&w, 0, req, sizeof req);
    /* All bytes are in, but the silence that ends the frame is not over yet. */
    assert_int_equal(sim_wire_device_take(&w, (int64_t)(frame + gap) - 1000, got, sizeof got,
                                          &done), 0);
    assert_close(sim_wire_next_ns(&w), frame + gap, 12);
    assert_int_equal(sim_wire_device_take(&w, (int64_t)(frame + gap) + 1000, got, sizeof got,
                                          &done), 8);
    assert_close(done, frame + gap, 12);
    /* The reply leaves the silence after the request, plus the slave's latency. */
    sim_wire_device_reply(&w, done, MS, req, sizeof req);
    assert_close(sim_wire_next_ns(&w), frame + gap + MS + exact_ns(1, 10, 19200), 13);
}

static void test_rtu_frames_without_a_silence_between_run_together(void **state)
{
    (void)state;
    struct sim_wire w;
    sim_wire_init(&w, 9600, 8, 'N', 1, true, true);
    uint8_t a[4] = { 1, 2, 3, 4 }, got[32];
    int64_t done = -1;
    sim_wire_host_sent(&w, 0, a, sizeof a);
    /* The second part starts 1 character after the first ends: less than t3.5. */
    sim_wire_host_sent(&w, (int64_t)exact_ns(5, 10, 9600), a, sizeof a);
    assert_int_equal(sim_wire_device_take(&w, (int64_t)exact_ns(8, 10, 9600), got, sizeof got,
                                          &done), 0);
    assert_int_equal(sim_wire_device_take(&w, INT64_MAX / 2, got, sizeof got, &done), 8);
    assert_close(done, exact_ns(9, 10, 9600) + 3.5 * exact_ns(1, 10, 9600), 13);
}

static void test_line_rate_off_passes_bytes_at_once(void **state)
{
    (void)state;
    struct sim_wire w;
    sim_wire_init(&w, 9600, 8, 'N', 1, true, false);
    uint8_t req[8] = { 1, 4, 0, 0, 0, 2, 0x71, 0xCB }, got[32];
    int64_t done = -1;
    sim_wire_host_sent(&w, 5, req, sizeof req);
    assert_int_equal(sim_wire_device_take(&w, 5, got, sizeof got, &done), 8);
    assert_int_equal(done, 5);
    sim_wire_device_reply(&w, 5, 2 * MS, req, sizeof req);
    assert_int_equal(sim_wire_host_take(&w, 5, got, sizeof got), 8);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bytes_from_the_host_take_n_times_f_over_b),
        cmocka_unit_test(test_a_reply_takes_latency_plus_n_times_f_over_b),
        cmocka_unit_test(test_a_byte_is_not_at_the_device_before_its_time),
        cmocka_unit_test(test_an_rtu_request_is_taken_after_its_silence),
        cmocka_unit_test(test_rtu_frames_without_a_silence_between_run_together),
        cmocka_unit_test(test_line_rate_off_passes_bytes_at_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
