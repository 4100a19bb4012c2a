/* perfusectl check's volume model: a syringe followed through push, withdraw and refill. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "plan/plan.h"
#include "plan/timeline.h"

#define S 1000000000LL

static struct rig rig;
static struct rig_device devs[1];
static struct rig_channel chans[1];

/* A rig with one syringe pump, pumpA.flow (-1000..1000 uL/min), holding 1 mL. */
static int make_rig(void **state)
{
    (void)state;
    rig.name = "test";
    rig.devices = devs;
    rig.n_devices = 1;
    rig.channels = chans;
    rig.n_channels = 1;
    devs[0] = (struct rig_device){ .name = "pumpA", .n_chans = 1, .first_channel = 0 };
    devs[0].chans[0] = (struct driver_channel){ .name = "flow", .q = Q_FLOW, .unit = "uL/min",
                                                .readable = 1, .writable = 1, .min = -1000,
                                                .max = 1000, .volume_ul = 1000 };
    chans[0] = (struct rig_channel){ .name = "pumpA.flow", .device = 0, .q = Q_FLOW, .unit = "uL/min",
                                     .readable = true, .writable = true, .min = -1000, .max = 1000 };
    return 0;
}

/* The volume model of a protocol's steps (a "steps:" list in flow style). */
static struct timeline_pump model(const char *steps)
{
    char text[1024];
    snprintf(text, sizeof text, "perfuse: 1\nname: x\nsteps: %s\n", steps);
    struct diag d;
    diag_init(&d);
    struct plan *p = NULL;
    if (plan_load("p.yaml", text, strlen(text), &rig, &p, &d) < 0) {
        diag_print(&d, stderr);
        fail_msg("not loaded: %s", text);
    }
    struct timeline tl;
    assert_int_equal(timeline_compute(p, &rig, &tl), 0);
    assert_int_equal(tl.n_pumps, 1);
    struct timeline_pump tp = tl.pumps[0];
    timeline_free(&tl);
    plan_free(p);
    diag_free(&d);
    return tp;
}

/* Push 100 uL, withdraw it again, 100 times: nothing leaves the syringe in the end. */
static void test_a_net_zero_cycle_never_runs_out(void **state)
{
    (void)state;
    struct timeline_pump tp = model("[{repeat: 100, steps: [{set: {pumpA: 100 uL/min}, for: 1 min}, "
                                    "{set: {pumpA: -100 uL/min}, for: 1 min}]}]");
    assert_float_equal(tp.delivered_ul, 10000, 1e-6);
    assert_float_equal(tp.withdrawn_ul, 10000, 1e-6);
    assert_float_equal(tp.net_ul, 0, 1e-6);
    assert_float_equal(tp.need_ul, 100, 1e-6);
    assert_true(tp.empty_at_ns < 0);
}

/* Withdrawing from a full syringe refills nothing: the plunger is at its end. */
static void test_withdrawing_first_from_a_full_syringe_adds_nothing(void **state)
{
    (void)state;
    struct timeline_pump tp = model("[{repeat: 50, steps: [{set: {pumpA: -100 uL/min}, for: 1 min}, "
                                    "{set: {pumpA: 100 uL/min}, for: 1 min}]}]");
    assert_float_equal(tp.delivered_ul, 5000, 1e-6);
    assert_float_equal(tp.withdrawn_ul, 5000, 1e-6);
    assert_float_equal(tp.net_ul, 100, 1e-6);
    assert_float_equal(tp.need_ul, 100, 1e-6);
    assert_true(tp.empty_at_ns < 0);
}

/* Push 101 uL, refill 100 uL: one more uL out every pass. The syringe (1 mL)
 * runs out during the push of pass 901, (1000 - 900) / 101 into its minute. */
static void test_a_cycle_that_loses_a_little_each_pass_runs_out_at_the_right_moment(void **state)
{
    (void)state;
    struct timeline_pump tp = model("[{repeat: 2000, steps: [{set: {pumpA: 101 uL/min}, for: 1 min}, "
                                    "{set: {pumpA: -100 uL/min}, for: 1 min}]}]");
    assert_true(tp.empty_at_ns >= 0);
    double want = 900 * 120.0 + 100.0 / 101.0 * 60.0;
    assert_float_equal((double)tp.empty_at_ns / 1e9, want, 1e-3);
    assert_float_equal(tp.delivered_ul, 2000 * 101.0, 1e-6);
    assert_float_equal(tp.withdrawn_ul, 2000 * 100.0, 1e-6);
    assert_float_equal(tp.net_ul, 2000, 1e-6);
}

/* Only pushing: empty after exactly 10 minutes of 100 uL/min. */
static void test_pushing_only_empties_the_syringe(void **state)
{
    (void)state;
    struct timeline_pump tp = model("[{repeat: 20, steps: [{set: {pumpA: 100 uL/min}, for: 1 min}]}]");
    assert_int_equal(tp.empty_at_ns, 600 * S);
    assert_float_equal(tp.delivered_ul, 2000, 1e-6);
    assert_float_equal(tp.need_ul, 2000, 1e-6);
}

/* More refill than push: the level settles at full and the passes are not walked one by one. */
static void test_a_refill_heavy_cycle_settles_at_full(void **state)
{
    (void)state;
    struct timeline_pump tp = model("[{set: {pumpA: 500 uL/min}, for: 1 min}, "
                                    "{repeat: 1000000, steps: [{set: {pumpA: 10 uL/min}, for: 1 s}, "
                                    "{set: {pumpA: -20 uL/min}, for: 1 s}]}]");
    assert_true(tp.empty_at_ns < 0);
    assert_float_equal(tp.net_ul, 0, 1e-6);
    assert_float_equal(tp.need_ul, 500 + 10 / 60.0, 1e-6);     /* the first pass pushes first */
    assert_float_equal(tp.delivered_ul, 500 + 1e6 * 10 / 60.0, 1e-3);
    assert_float_equal(tp.withdrawn_ul, 1e6 * 20 / 60.0, 1e-3);
}

/* Repeats inside repeats: the inner passes' extremes count for the outer ones. */
static void test_nested_cycles_follow_the_level(void **state)
{
    (void)state;
    struct timeline_pump tp = model("[{repeat: 3, steps: [{repeat: 4, steps: [{set: {pumpA: 60 uL/min}, for: 1 min}]}, "
                                    "{set: {pumpA: -240 uL/min}, for: 1 min}]}]");
    assert_float_equal(tp.delivered_ul, 720, 1e-6);
    assert_float_equal(tp.withdrawn_ul, 720, 1e-6);
    assert_float_equal(tp.net_ul, 0, 1e-6);
    assert_float_equal(tp.need_ul, 240, 1e-6);
    assert_true(tp.empty_at_ns < 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_net_zero_cycle_never_runs_out),
        cmocka_unit_test(test_withdrawing_first_from_a_full_syringe_adds_nothing),
        cmocka_unit_test(test_a_cycle_that_loses_a_little_each_pass_runs_out_at_the_right_moment),
        cmocka_unit_test(test_pushing_only_empties_the_syringe),
        cmocka_unit_test(test_a_refill_heavy_cycle_settles_at_full),
        cmocka_unit_test(test_nested_cycles_follow_the_level),
    };
    return cmocka_run_group_tests(tests, make_rig, NULL);
}
