/* Delivery monitoring's pure parts: a syringe's fill level and stalls, and a
 * flow monitor's debounce with a dead sensor. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>

#include "run/monitor.h"
#include "run/syringe.h"

#define S 1000000000LL

/* ------------------------------------------------------------ fill level */

/* With no level given, a syringe of known volume is taken to be full. */
static void test_an_unnamed_syringe_is_assumed_full(void **state)
{
    (void)state;
    struct syringe s;
    syringe_init(&s, 10000, NAN, 0);
    assert_int_equal(s.source, FILL_ASSUMED_FULL);
    assert_true(s.fill0_ul == 10000 && s.fill_ul == 10000);
    assert_string_equal(syringe_source_name(s.source), "assumed full");
    syringe_init(&s, 10000, 8000, 0);
    assert_int_equal(s.source, FILL_GIVEN);
    assert_true(s.fill_ul == 8000);
    syringe_init(&s, 0, NAN, 0);                    /* no volume in the rig, none given */
    assert_int_equal(s.source, FILL_UNKNOWN);
    assert_true(isnan(s.fill_ul));
    assert_int_equal(syringe_on_counter(&s, 5, 1 * S), SYR_NONE);
    assert_true(isnan(s.fill_ul));
}

/* The level counts from the pump's counter at the start, not from 0: the
 * counter may hold an earlier run's volume. */
static void test_the_fill_level_follows_the_counter_from_the_start(void **state)
{
    (void)state;
    struct syringe s;
    syringe_init(&s, 10000, 8000, 0);
    assert_int_equal(syringe_on_counter(&s, 1234, 0), SYR_NONE);
    assert_true(s.fill_ul == 8000);
    syringe_on_counter(&s, 1234 + 500, 10 * S);
    assert_true(fabs(s.fill_ul - 7500) < 1e-9);
    syringe_on_counter(&s, NAN, 11 * S);            /* a failed read changes nothing */
    assert_true(fabs(s.fill_ul - 7500) < 1e-9);
}

/* Seeded from the reading just before the start, the level and its counter
 * reading are known at once; the first reading in the run is then where the
 * count starts, as the file's dispensed counter does; thresholds wait for it. */
static void test_a_seeded_counter_holds_the_level_until_the_first_reading(void **state)
{
    (void)state;
    struct syringe s;
    syringe_init(&s, 1500, 200, 0.10);
    syringe_seed_counter(&s, 700);
    assert_true(s.counter0_ul == 700 && s.counter_ul == 700 && s.fill_ul == 200 && s.seeded);
    assert_int_equal(syringe_on_counter(&s, 710, 1 * S), SYR_NONE);  /* counts from here */
    assert_true(s.counter0_ul == 710 && !s.seeded && fabs(s.fill_ul - 200) < 1e-9);
    assert_int_equal(syringe_on_counter(&s, 760, 2 * S), SYR_LOW);   /* 150 uL left of 1500 */
    assert_true(fabs(s.fill_ul - 150) < 1e-9);
    syringe_seed_counter(&s, 0);                    /* already counting: ignored */
    assert_true(s.counter0_ul == 710);
    syringe_init(&s, 0, NAN, 0);                    /* level unknown: nothing to count */
    syringe_seed_counter(&s, 700);
    assert_true(isnan(s.counter_ul));
    syringe_carry(&s, 1500, 0.10, 300, FILL_GIVEN, 200, 900);
    syringe_seed_counter(&s, 950);                  /* a carried level waits for its own reading */
    assert_true(syringe_carry_pending(&s));
    syringe_on_counter(&s, 950, 1 * S);
    assert_true(fabs(s.fill_ul - 150) < 1e-9);
}

/* The low warning comes once at the threshold, then the empty alarm at 0. */
static void test_low_then_empty_each_once(void **state)
{
    (void)state;
    struct syringe s;
    syringe_init(&s, 10000, NAN, 0.10);
    syringe_on_counter(&s, 0, 0);
    assert_int_equal(syringe_on_counter(&s, 8999, 1 * S), SYR_NONE);
    assert_int_equal(syringe_on_counter(&s, 9000, 2 * S), SYR_LOW);
    assert_int_equal(syringe_on_counter(&s, 9500, 3 * S), SYR_NONE);
    assert_int_equal(syringe_on_counter(&s, 10000, 4 * S), SYR_EMPTY);
    assert_int_equal(syringe_on_counter(&s, 10001, 5 * S), SYR_NONE);
    assert_true(s.low && s.empty);
}

/* A level that drops past both thresholds at once reports both. */
static void test_a_jump_to_empty_reports_low_and_empty(void **state)
{
    (void)state;
    struct syringe s;
    syringe_init(&s, 1000, NAN, 0);
    syringe_on_counter(&s, 0, 0);
    assert_int_equal(syringe_on_counter(&s, 1000, 1 * S), SYR_LOW | SYR_EMPTY);
}

/* A counter reset (the pump cleared it) does not refill the syringe. */
static void test_a_counter_reset_keeps_what_was_infused(void **state)
{
    (void)state;
    struct syringe s;
    syringe_init(&s, 10000, NAN, 0);
    syringe_on_counter(&s, 100, 0);
    syringe_on_counter(&s, 600, 1 * S);
    syringe_on_counter(&s, 0, 2 * S);               /* reset */
    assert_true(fabs(s.fill_ul - 9500) < 1e-9);
    syringe_on_counter(&s, 200, 3 * S);
    assert_true(fabs(s.fill_ul - 9300) < 1e-9);
}

/* Withdrawing refills the syringe by the integral of the negative read-backs,
 * up to its volume; a refill above the low level ends the low warning. */
static void test_withdrawal_refills_up_to_the_volume(void **state)
{
    (void)state;
    struct syringe s;
    syringe_init(&s, 1000, NAN, 0.10);
    syringe_on_counter(&s, 0, 0);
    assert_int_equal(syringe_on_counter(&s, 950, 1 * S), SYR_LOW);
    syringe_on_setpoint(&s, -60, 2 * S);
    syringe_on_flow(&s, -60, 2 * S);
    assert_int_equal(syringe_on_flow(&s, -60, 62 * S), SYR_REFILLED);    /* 60 uL back in */
    assert_true(fabs(s.fill_ul - 110) < 1e-9);
    syringe_on_flow(&s, -60, 3600 * S);
    assert_true(s.fill_ul == 1000);
}

/* ----------------------------------------------------------------- stalls */

/* A read-back near 0 for SYRINGE_STALL_NS while told to infuse is a stall;
 * the debounce starts with the first such reading after the setpoint. */
static void test_a_read_back_of_zero_while_infusing_is_a_stall(void **state)
{
    (void)state;
    struct syringe s;
    syringe_init(&s, 10000, NAN, 0);
    syringe_on_setpoint(&s, 20, 0);
    assert_int_equal(syringe_on_flow(&s, 0, 100000000), SYR_NONE);    /* not applied yet */
    assert_int_equal(syringe_on_flow(&s, 20, 500000000), SYR_NONE);   /* it runs */
    assert_int_equal(syringe_on_flow(&s, 0, 10 * S), SYR_NONE);       /* it stops */
    assert_int_equal(syringe_on_flow(&s, 0, 12 * S), SYR_NONE);
    assert_int_equal(syringe_on_flow(&s, 0, 13 * S), SYR_STALLED);
    assert_int_equal(syringe_on_flow(&s, 0, 14 * S), SYR_NONE);        /* once */
    assert_int_equal(syringe_on_flow(&s, 20, 15 * S), SYR_STALL_OVER);
}

/* A failed read-back (NaN) is no stall, and a pump told to stop is not stalled. */
static void test_a_failed_read_back_is_no_stall_and_a_stop_ends_one(void **state)
{
    (void)state;
    struct syringe s;
    syringe_init(&s, 10000, NAN, 0);
    syringe_on_setpoint(&s, 20, 0);
    for (int k = 1; k < 20; k++)
        assert_int_equal(syringe_on_flow(&s, NAN, k * S), SYR_NONE);
    syringe_on_setpoint(&s, 0, 20 * S);
    for (int k = 21; k < 40; k++)
        assert_int_equal(syringe_on_flow(&s, 0, k * S), SYR_NONE);  /* stopped, as told */
    syringe_on_setpoint(&s, 20, 40 * S);
    syringe_on_flow(&s, 0, 41 * S);
    assert_int_equal(syringe_on_flow(&s, 0, 44 * S), SYR_STALLED);
    assert_int_equal(syringe_on_setpoint(&s, 0, 45 * S), SYR_STALL_OVER);
}

/* A pump whose read-back fails (a Harvard stall) but whose counter stands
 * still while SYRINGE_STALL_UL were due is stalled; a rate read-back does not
 * disprove a counter that does not move, progress does. */
static void test_a_counter_that_does_not_move_is_a_stall(void **state)
{
    (void)state;
    struct syringe s;
    syringe_init(&s, 10000, NAN, 0);
    syringe_on_counter(&s, 50, 0);
    syringe_on_setpoint(&s, 10, 0);                 /* 10 uL/min: 10 uL due after 60 s */
    assert_int_equal(syringe_on_counter(&s, 50.5, 10 * S), SYR_NONE);
    assert_int_equal(syringe_on_counter(&s, 51, 59 * S), SYR_NONE);
    assert_int_equal(syringe_on_counter(&s, 51.5, 60 * S), SYR_STALLED);
    assert_int_equal(syringe_on_flow(&s, 10, 61 * S), SYR_NONE);
    assert_true(s.stalled);
    assert_int_equal(syringe_on_counter(&s, 58, 62 * S), SYR_STALL_OVER);
}

/* A large count shown with four digits moves in 100 uL steps: at 1 uL/min
 * that is no stall, though 10 uL are due long before the count moves. */
static void test_a_coarse_counter_is_no_stall(void **state)
{
    (void)state;
    struct syringe s;
    syringe_init(&s, 10000, NAN, 0);
    syringe_on_counter(&s, 123400, 0);
    syringe_on_setpoint(&s, 1, 0);
    for (int k = 1; k <= 3 * 3600; k++) {
        double shown = 123400 + 100 * floor((k / 60.0) / 100);
        assert_int_equal(syringe_on_counter(&s, shown, k * S) & SYR_STALLED, 0);
    }
    /* A counter that stands still that long is a stall, all the same. */
    int news = 0;
    for (int k = 3 * 3600 + 1; k <= 9 * 3600; k++)
        news |= syringe_on_counter(&s, 123500, k * S);
    assert_true(news & SYR_STALLED);
}

/* A resumed run judges a stall afresh: a pump still stalled stalls again. */
static void test_a_resume_judges_a_stall_afresh(void **state)
{
    (void)state;
    struct syringe s;
    syringe_init(&s, 10000, NAN, 0);
    syringe_on_setpoint(&s, 20, 0);
    syringe_on_flow(&s, 0, 1 * S);
    assert_int_equal(syringe_on_flow(&s, 0, 4 * S), SYR_STALLED);
    assert_int_equal(syringe_on_flow(&s, 0, 60 * S), SYR_NONE);
    assert_int_equal(syringe_on_resume(&s, 61 * S), SYR_STALL_OVER);
    syringe_on_flow(&s, 0, 62 * S);
    assert_int_equal(syringe_on_flow(&s, 0, 65 * S), SYR_STALLED);
}

/* A pump that delivers what it is told never stalls, whatever the counter's resolution. */
static void test_a_pump_that_delivers_never_stalls(void **state)
{
    (void)state;
    struct syringe s;
    syringe_init(&s, 10000, NAN, 0);
    syringe_on_counter(&s, 0, 0);
    syringe_on_setpoint(&s, 1, 0);                  /* 1 uL/min, counted in whole uL */
    for (int k = 1; k <= 3600; k++) {
        double counted = floor(k / 60.0);
        assert_int_equal(syringe_on_counter(&s, counted, k * S) & SYR_STALLED, 0);
        assert_int_equal(syringe_on_flow(&s, 1, k * S) & SYR_STALLED, 0);
    }
}

/* --------------------------------------------------------------- monitors */

static struct flow_monitor make_monitor(void)
{
    struct flow_monitor m = { .spec = { .name = "m", .flow = 1, .pump = 2, .tolerance = 0.2,
                                        .min_abs = 2, .for_ns = 10 * S } };
    monitor_reset(&m);
    return m;
}

/* A deviation trips only once it has lasted 'for', and clears when back in the band. */
static void test_a_monitor_trips_after_its_debounce(void **state)
{
    (void)state;
    struct flow_monitor m = make_monitor();
    monitor_on_setpoint(&m, 20);
    assert_int_equal(monitor_on_sample(&m, 17, 0), MON_NONE);          /* within 20 % */
    assert_int_equal(monitor_on_sample(&m, 8, 1 * S), MON_NONE);
    assert_int_equal(monitor_on_sample(&m, 8, 10 * S), MON_NONE);
    assert_int_equal(monitor_on_sample(&m, 19, 10 * S + 1), MON_NONE); /* back: restarts */
    assert_int_equal(monitor_on_sample(&m, 8, 11 * S), MON_NONE);
    assert_int_equal(monitor_on_sample(&m, 8, 20 * S), MON_NONE);
    assert_int_equal(monitor_on_sample(&m, 8, 21 * S), MON_TRIP);
    assert_int_equal(monitor_on_sample(&m, 8, 22 * S), MON_NONE);      /* once */
    assert_int_equal(monitor_on_sample(&m, 20, 23 * S), MON_CLEAR);
}

/* At low flows min_abs is the band: noise around 1 uL/min is no deviation. */
static void test_min_abs_is_the_band_at_low_flow(void **state)
{
    (void)state;
    struct flow_monitor m = make_monitor();
    monitor_on_setpoint(&m, 1);
    assert_true(monitor_band(&m) == 2);
    assert_int_equal(monitor_on_sample(&m, 2.9, 0), MON_NONE);
    assert_int_equal(monitor_on_sample(&m, 2.9, 60 * S), MON_NONE);
    assert_int_equal(monitor_on_sample(&m, 3.1, 61 * S), MON_NONE);
    assert_int_equal(monitor_on_sample(&m, 3.1, 71 * S), MON_TRIP);
}

/* A dead sensor is neither a deviation nor ok: it never trips or clears a
 * monitor, and its dead time does not count toward the debounce. */
static void test_a_dead_sensor_neither_deviates_nor_counts_as_ok(void **state)
{
    (void)state;
    struct flow_monitor m = make_monitor();
    monitor_on_setpoint(&m, 20);
    for (int k = 0; k < 100; k++)
        assert_int_equal(monitor_on_sample(&m, NAN, k * S), MON_NONE);
    assert_int_equal(monitor_on_sample(&m, 5, 100 * S), MON_NONE);     /* deviation: 0 s */
    assert_int_equal(monitor_on_sample(&m, 5, 106 * S), MON_NONE);     /* 6 s */
    assert_int_equal(monitor_on_sample(&m, NAN, 107 * S), MON_NONE);   /* dead for 60 s */
    assert_int_equal(monitor_on_sample(&m, NAN, 160 * S), MON_NONE);
    /* 7 s so far: up to the first unknown sample, then nothing until the next valid one */
    assert_int_equal(monitor_on_sample(&m, 5, 167 * S), MON_NONE);
    assert_int_equal(monitor_on_sample(&m, 5, 169 * S), MON_NONE);     /* 9 s */
    assert_int_equal(monitor_on_sample(&m, 5, 170 * S), MON_TRIP);     /* 10 s */
    assert_int_equal(monitor_on_sample(&m, NAN, 172 * S), MON_NONE);   /* tripped stays tripped */
    assert_true(m.tripped);
    assert_int_equal(monitor_on_sample(&m, 20, 173 * S), MON_CLEAR);
}

/* Without a setpoint to follow (the pump's own safe state) nothing is judged. */
static void test_no_setpoint_no_judgement(void **state)
{
    (void)state;
    struct flow_monitor m = make_monitor();
    for (int k = 0; k < 30; k++)
        assert_int_equal(monitor_on_sample(&m, 50, k * S), MON_NONE);
    monitor_on_setpoint(&m, 10);
    monitor_on_sample(&m, 50, 30 * S);
    monitor_on_setpoint(&m, NAN);
    for (int k = 31; k < 60; k++)
        assert_int_equal(monitor_on_sample(&m, 50, k * S), MON_NONE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_an_unnamed_syringe_is_assumed_full),
        cmocka_unit_test(test_the_fill_level_follows_the_counter_from_the_start),
        cmocka_unit_test(test_a_seeded_counter_holds_the_level_until_the_first_reading),
        cmocka_unit_test(test_low_then_empty_each_once),
        cmocka_unit_test(test_a_jump_to_empty_reports_low_and_empty),
        cmocka_unit_test(test_a_counter_reset_keeps_what_was_infused),
        cmocka_unit_test(test_withdrawal_refills_up_to_the_volume),
        cmocka_unit_test(test_a_read_back_of_zero_while_infusing_is_a_stall),
        cmocka_unit_test(test_a_failed_read_back_is_no_stall_and_a_stop_ends_one),
        cmocka_unit_test(test_a_counter_that_does_not_move_is_a_stall),
        cmocka_unit_test(test_a_coarse_counter_is_no_stall),
        cmocka_unit_test(test_a_resume_judges_a_stall_afresh),
        cmocka_unit_test(test_a_pump_that_delivers_never_stalls),
        cmocka_unit_test(test_a_monitor_trips_after_its_debounce),
        cmocka_unit_test(test_min_abs_is_the_band_at_low_flow),
        cmocka_unit_test(test_a_dead_sensor_neither_deviates_nor_counts_as_ok),
        cmocka_unit_test(test_no_setpoint_no_judgement),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
