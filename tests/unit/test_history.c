/* The last hour of every channel: one-second buckets in a ring, held
 * actuator values, decimation into slots, failed readings, and the reply's text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "daemon/history.h"
#include "daemon/history_reply.h"

#define S 1000000000LL
#define MS 1000000LL

/* One sampled series (0) and one held series (1). */
static void two_series(struct history *h)
{
    const bool held[2] = { false, true };
    assert_int_equal(history_init(h, 2, held), 0);
}

/* The memory per series is what history.h says: 3600 buckets of 32 bytes. */
static void test_a_series_takes_a_fixed_112_kib(void **state)
{
    (void)state;
    assert_int_equal(sizeof(struct history_bucket), 32);
    assert_int_equal(HISTORY_SECONDS * sizeof(struct history_bucket), 115200);
}

/* Readings of one second share its bucket; each second is its own slot. */
static void test_readings_of_one_second_share_a_bucket(void **state)
{
    (void)state;
    struct history h;
    two_series(&h);
    history_add(&h, 0, 1.0, 100 * S + 100 * MS);
    history_add(&h, 0, 3.0, 100 * S + 500 * MS);
    history_add(&h, 0, 2.0, 100 * S + 999 * MS);
    history_add(&h, 0, 10.0, 101 * S);
    struct history_point p[10];
    size_t n = history_decimate(&h, 0, 101 * S + 500 * MS, 10, 10, p);
    assert_int_equal(n, 2);
    assert_true(p[0].mean == 2.0 && p[0].min == 1.0 && p[0].max == 3.0);
    assert_true(p[0].t_s == 100.5);                 /* the middle of its second */
    assert_true(p[1].mean == 10.0 && p[1].min == 10.0 && p[1].max == 10.0);
    assert_true(p[1].t_s == 101.25);                /* the second so far: to now */
    history_free(&h);
}

/* The ring keeps the last hour: older seconds are overwritten as time goes on,
 * a reading older than the ring is ignored, and a jump of more than an hour
 * leaves nothing of before. */
static void test_the_ring_wraps_around_after_an_hour(void **state)
{
    (void)state;
    struct history h;
    two_series(&h);
    for (int64_t s = 0; s < 5000; s++)
        history_add(&h, 0, (double)s, s * S);
    struct history_point *p = calloc(HISTORY_SECONDS, sizeof *p);
    size_t n = history_decimate(&h, 0, 4999 * S, HISTORY_SECONDS, HISTORY_SECONDS, p);
    assert_int_equal(n, HISTORY_SECONDS);
    for (size_t i = 0; i < n; i++)
        assert_true(p[i].mean == (double)(5000 - HISTORY_SECONDS + (int64_t)i));
    history_add(&h, 0, -1.0, 1000 * S);             /* older than the ring: ignored */
    n = history_decimate(&h, 0, 4999 * S, HISTORY_SECONDS, HISTORY_SECONDS, p);
    assert_int_equal(n, HISTORY_SECONDS);
    assert_true(p[0].min == 1400.0);
    history_add(&h, 0, 7.0, 4000 * S);              /* within it: counted in its second */
    n = history_decimate(&h, 0, 4999 * S, HISTORY_SECONDS, HISTORY_SECONDS, p);
    assert_true(p[4000 - 1400].min == 7.0 && p[4000 - 1400].max == 4000.0);
    /* Two hours later one reading: the hour before it is empty. */
    history_add(&h, 0, 42.0, 12000 * S);
    n = history_decimate(&h, 0, 12000 * S, HISTORY_SECONDS, HISTORY_SECONDS, p);
    assert_int_equal(n, 1);
    assert_true(p[0].mean == 42.0);
    /* Seconds without readings after a reading are empty too, not the old ring. */
    history_add(&h, 0, 43.0, 12000 * S + 5 * S + HISTORY_SECONDS * S);
    n = history_decimate(&h, 0, 12005 * S + HISTORY_SECONDS * S, HISTORY_SECONDS, HISTORY_SECONDS, p);
    assert_int_equal(n, 1);
    assert_true(p[0].mean == 43.0);
    free(p);
    history_free(&h);
}

/* A window cut into fewer slots: each slot's mean, min and max over its
 * seconds, slots of equal length to a second, never more slots than seconds. */
static void test_a_window_is_decimated_into_slots(void **state)
{
    (void)state;
    struct history h;
    two_series(&h);
    for (int64_t s = 1000; s < 1600; s++)           /* 10 minutes, 2 readings a second */
        for (int k = 0; k < 2; k++)
            history_add(&h, 0, (double)(s - 1000) + k * 0.5, s * S + k * 500 * MS);
    struct history_point p[600];
    size_t n = history_decimate(&h, 0, 1599 * S + 999 * MS, 600, 60, p);
    assert_int_equal(n, 60);
    for (size_t j = 0; j < n; j++) {
        double lo = (double)(j * 10), hi = lo + 9.5;
        assert_true(p[j].min == lo && p[j].max == hi);
        assert_true(fabs(p[j].mean - (lo + hi) / 2) < 1e-9);
        assert_true(fabs(p[j].t_s - (1000.0 + (double)j * 10 + 5)) < 1e-3);
    }
    /* 7 seconds in 3 slots: 2, 2 and 3 seconds. */
    n = history_decimate(&h, 0, 1006 * S + 999 * MS, 7, 3, p);
    assert_int_equal(n, 3);
    assert_true(p[0].min == 0.0 && p[0].max == 1.5);
    assert_true(p[1].min == 2.0 && p[1].max == 3.5);
    assert_true(p[2].min == 4.0 && p[2].max == 6.5);
    /* More slots asked than seconds: one slot a second. */
    n = history_decimate(&h, 0, 1599 * S + 999 * MS, 60, 2000, p);
    assert_int_equal(n, 60);
    history_free(&h);
}

/* Failed readings (NaN) count as such: a second with only failed ones is a
 * slot without a value, one with some good ones has those. */
static void test_failed_readings_make_slots_without_values(void **state)
{
    (void)state;
    struct history h;
    two_series(&h);
    history_add(&h, 0, NAN, 10 * S);
    history_add(&h, 0, NAN, 10 * S + 500 * MS);
    history_add(&h, 0, 4.0, 11 * S);
    history_add(&h, 0, NAN, 11 * S + 500 * MS);
    history_add(&h, 0, INFINITY, 12 * S);
    struct history_point p[5];
    size_t n = history_decimate(&h, 0, 12 * S + 999 * MS, 3, 3, p);
    assert_int_equal(n, 3);
    assert_true(isnan(p[0].mean) && isnan(p[0].min) && isnan(p[0].max));
    assert_true(p[1].mean == 4.0 && p[1].min == 4.0 && p[1].max == 4.0);
    assert_true(isnan(p[2].mean));                  /* not finite: failed too */
    history_free(&h);
}

/* Nothing read: no points; nor before the first reading; nor for an unknown
 * series or an empty window. */
static void test_an_empty_history_has_no_points(void **state)
{
    (void)state;
    struct history h;
    two_series(&h);
    struct history_point p[600];
    assert_int_equal(history_decimate(&h, 0, 1000 * S, 600, 600, p), 0);
    assert_int_equal(history_decimate(&h, 1, 1000 * S, 600, 600, p), 0);     /* nothing held yet */
    history_add(&h, 0, 1.0, 2000 * S);
    assert_int_equal(history_decimate(&h, 0, 1999 * S, 600, 600, p), 0);   /* all before it */
    assert_int_equal(history_decimate(&h, 0, 2000 * S, 0, 600, p), 0);
    assert_int_equal(history_decimate(&h, 0, 2000 * S, 600, 0, p), 0);
    assert_int_equal(history_decimate(&h, 5, 2000 * S, 600, 600, p), 0);
    history_free(&h);
    struct history none = { 0 };
    history_free(&none);                            /* a zeroed history is fine */
    assert_int_equal(history_init(&none, 0, NULL), 0);
    history_free(&none);
}

/* A held value counts in every second until the next one, also past the last
 * change, and an unconfirmed one (NaN) holds as a slot without a value. A
 * sampled series takes no held value, a held series no reading. */
static void test_a_held_value_holds_until_the_next(void **state)
{
    (void)state;
    struct history h;
    two_series(&h);
    history_hold(&h, 1, 5.0, 10 * S + 200 * MS);
    history_hold(&h, 1, 7.0, 15 * S + 500 * MS);
    history_add(&h, 1, 100.0, 16 * S);              /* a read-back is not the history */
    history_hold(&h, 0, 100.0, 16 * S);             /* nor is a held value a reading */
    struct history_point p[20];
    size_t n = history_decimate(&h, 1, 19 * S + 500 * MS, 20, 20, p);
    assert_int_equal(n, 10);                        /* seconds 10 to 19 */
    for (size_t i = 0; i < 5; i++)
        assert_true(p[i].mean == 5.0 && p[i].min == 5.0 && p[i].max == 5.0);
    assert_true(p[5].min == 5.0 && p[5].max == 7.0 && p[5].mean == 6.0);   /* it changed in 15 */
    for (size_t i = 6; i < n; i++)
        assert_true(p[i].mean == 7.0 && p[i].max == 7.0);
    assert_int_equal(history_decimate(&h, 0, 19 * S, 20, 20, p), 0);
    history_hold(&h, 1, NAN, 20 * S);               /* its device out of reach */
    n = history_decimate(&h, 1, 30 * S + 500 * MS, 5, 5, p);
    assert_int_equal(n, 5);
    assert_true(isnan(p[4].mean));
    /* An hour and more later, it still holds what was last confirmed. */
    history_hold(&h, 1, 3.0, 40 * S);
    n = history_decimate(&h, 1, 9000 * S, 60, 6, p);
    assert_int_equal(n, 6);
    assert_true(p[0].mean == 3.0 && p[5].mean == 3.0);
    /* A time before the latest second counts as that second. */
    history_hold(&h, 1, 4.0, 39 * S);
    n = history_decimate(&h, 1, 40 * S + 500 * MS, 1, 1, p);
    assert_true(p[0].min == 3.0 && p[0].max == 4.0);
    history_free(&h);
}

/* The reply's text: JSON with every series, times on the wall clock, null for
 * a slot whose readings failed, names escaped. */
static void test_the_reply_is_json_with_nulls_for_failed_slots(void **state)
{
    (void)state;
    struct history h;
    two_series(&h);
    history_add(&h, 0, 151.2, 100 * S);
    history_add(&h, 0, NAN, 101 * S);
    history_hold(&h, 1, 10.0, 100 * S);
    struct history_reply *r = history_reply_new(&h, 2, 101 * S + 500 * MS, 10, 10);
    assert_non_null(r);
    r->now_s = 1796614567.5;
    r->minutes = 1;
    r->step_s = 1;
    r->wall_minus_clock_s = 1796614467.0;
    assert_int_equal(history_reply_name(r, 0, "chip1.pressure", "mbar", "measured"), 0);
    assert_int_equal(history_reply_name(r, 1, "odd \"name\"", "uL/min", "setpoint"), 0);
    r->from[0] = 0;
    r->from[1] = 1;
    assert_int_equal(history_reply_step(r), 1);     /* a series a step */
    assert_int_equal(history_reply_step(r), 0);
    assert_int_equal(history_reply_step(r), 0);
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    assert_int_equal(history_reply_write(r, out), 0);
    fclose(out);
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    assert_non_null(j);
    assert_true(strstr(text, "\"v\":[151.2,null]") != NULL);   /* a reading prints as read */
    json_t *c = json_object_get(json_object_get(j, "channels"), "chip1.pressure");
    assert_string_equal(json_string_value(json_object_get(c, "unit")), "mbar");
    assert_string_equal(json_string_value(json_object_get(c, "kind")), "measured");
    assert_int_equal(json_array_size(json_object_get(c, "t")), 2);
    assert_true(fabs(json_number_value(json_array_get(json_object_get(c, "t"), 0)) - 1796614567.5) < 1e-3);
    assert_true(json_is_null(json_array_get(json_object_get(c, "min"), 1)));
    json_t *sp = json_object_get(json_object_get(j, "channels"), "odd \"name\"");
    assert_string_equal(json_string_value(json_object_get(sp, "kind")), "setpoint");
    assert_int_equal(json_array_size(json_object_get(sp, "v")), 2);
    assert_true(json_number_value(json_object_get(j, "now")) == 1796614567.5);
    json_decref(j);
    free(text);
    history_reply_free(r);
    history_reply_free(NULL);
    history_free(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_series_takes_a_fixed_112_kib),
        cmocka_unit_test(test_readings_of_one_second_share_a_bucket),
        cmocka_unit_test(test_the_ring_wraps_around_after_an_hour),
        cmocka_unit_test(test_a_window_is_decimated_into_slots),
        cmocka_unit_test(test_failed_readings_make_slots_without_values),
        cmocka_unit_test(test_an_empty_history_has_no_points),
        cmocka_unit_test(test_a_held_value_holds_until_the_next),
        cmocka_unit_test(test_the_reply_is_json_with_nulls_for_failed_slots),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
