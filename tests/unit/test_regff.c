/* The regulator's setpoint feedforward on the simulated pressure-driven chip, at the rig's
 * 50 Hz: the gain it learns, the step down it speeds up, a stale gain that cannot overdrive,
 * a disturbance that makes it forget, and a bumpless hand-over to the integral. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "drivers/sim/physics.h"
#include "drivers/sim/sim_faults.h"
#include "run/regulator.h"

#define MS 1000000LL
#define S 1000000000LL

struct loop {
    struct sim_physics phys;
    struct sim_faults_table faults;
    struct rig_regulator cfg;
    struct regulator reg;
    double written;
    /* from loop_run's start */
    double peak, low;               /* the chip's flow at its highest and lowest */
    double last_out_band;           /* when the flow was last outside the band (s), or -1 */
    double band_lo, band_hi;
    double end_jump;                /* the output's change at the tick the transient ended */
};

static void hook_write(void *ctx, double out, int64_t t)
{
    (void)t;
    struct loop *l = ctx;
    l->written = out;
    l->phys.pplant[0].p_cmd = out;
}

/* The shipped gains for chip3 (protocols/rigs/sim.yaml), the feedforward on with its defaults. */
static void loop_init(struct loop *l, bool ff_off)
{
    memset(l, 0, sizeof *l);
    sim_physics_init(&l->phys, 5);
    l->cfg = (struct rig_regulator){ .name = "flow1", .kp = 2.0, .ki = 4.0, .kd = 0.04,
        .d_filter_s = 0.02, .sp_weight = 1, .rate_hz = 50, .out_min = 0, .out_max = 2000,
        .sp_min = 0, .sp_max = 900, .sign = 1, .tol_abs = 0.2, .tol_rel = 0.02, .lost_s = 30,
        .saturated_s = 10, .inverted_s = 1, .stale_s = 0.5, .on_loss = REG_LOSS_HOLD,
        .ff_off = ff_off };
    struct regulator_hooks h = { .ctx = l, .write = hook_write };
    regulator_init(&l->reg, &l->cfg, 0, 2000, &h);
}

/* Run until t_end (the model in 10 ms steps, a reading and a tick every 20 ms), with the
 * flow's extremes and when it was last outside [band_lo, band_hi]. */
static void loop_run(struct loop *l, int64_t t_end)
{
    l->peak = -INFINITY;
    l->low = INFINITY;
    l->last_out_band = -1;
    l->end_jump = NAN;
    int ended = 0;
    int64_t t0 = l->phys.now_ns;
    while (l->phys.now_ns < t_end) {
        int64_t t = l->phys.now_ns + 10 * MS;
        sim_physics_advance_to(&l->phys, t);
        sim_fault_apply(&l->faults, &l->phys, t);
        if (t % (20 * MS) == 0) {
            bool was = l->reg.ff_active;
            double before = l->written;
            regulator_measure(&l->reg, sim_read_pflow(&l->phys, 0), t);
            regulator_tick(&l->reg, t, NULL);
            /* The change over the tick that ended the transient and the one after it. */
            if (ended == 1) {
                l->end_jump = fmax(l->end_jump, fabs(l->written - before));
                ended = 2;
            }
            if (was && !l->reg.ff_active && ended == 0) {
                l->end_jump = fabs(l->written - before);
                ended = 1;
            }
        }
        double q = l->phys.pplant[0].flow;
        l->peak = fmax(l->peak, q);
        l->low = fmin(l->low, q);
        if (q < l->band_lo || q > l->band_hi)
            l->last_out_band = (double)(t - t0) / S;
    }
}

/* Steady at 500 uL/min: the gain is learned once settled, not before, and is the chip's
 * 2 mbar per uL/min within 1 %. */
static void test_the_gain_is_learned_once_settled(void **state)
{
    (void)state;
    static struct loop l;
    loop_init(&l, false);
    regulator_set_setpoint(&l.reg, 500);
    regulator_start(&l.reg, 0, 0);
    loop_run(&l, 1 * S);
    assert_false(l.reg.ff_known);
    loop_run(&l, 5 * S);
    assert_true(l.reg.ff_known);
    assert_float_equal(l.reg.ff_g, 2.0, 0.02);
}

/* 500 -> 50 uL/min: with the feedforward the flow is within 5 % of 50 for good after less
 * than 3 (tau + L) = 1.59 s, and never below 95 % of it; by feedback alone it takes over 2 s. */
static void test_a_step_down_settles_within_the_setpoint_band(void **state)
{
    (void)state;
    static struct loop l;
    double settle[2];
    for (int off = 0; off < 2; off++) {
        loop_init(&l, off);
        regulator_set_setpoint(&l.reg, 500);
        regulator_start(&l.reg, 0, 0);
        loop_run(&l, 10 * S);
        regulator_set_setpoint(&l.reg, 50);
        l.band_lo = 47.5;
        l.band_hi = 52.5;
        loop_run(&l, 20 * S);
        settle[off] = l.last_out_band;
        if (!off)
            assert_true(l.low > 47.5);
    }
    assert_true(settle[0] < 1.59);
    assert_true(settle[1] > 2.0);
}

/* The gain learned at 50 uL/min on the nominal chip; the resistance drops tenfold at the very
 * step to 100 (the gain is then ten times too high for the chip). The feedforward adds no more
 * than the feedback alone does: the peak stays within 5 % of the step of the peak without it,
 * and the gain is dropped. */
static void test_a_stale_gain_does_not_overdrive(void **state)
{
    (void)state;
    static struct loop l;
    double peak[2];
    char err[128];
    for (int off = 0; off < 2; off++) {
        loop_init(&l, off);
        regulator_set_setpoint(&l.reg, 50);
        regulator_start(&l.reg, 0, 0);
        loop_run(&l, 5 * S);
        assert_int_equal(l.reg.ff_known, !off);
        assert_int_equal(sim_fault_add(&l.faults, "low-resistance:chip3", l.phys.now_ns, err,
                                       sizeof err), 0);
        regulator_set_setpoint(&l.reg, 100);
        loop_run(&l, 10 * S);
        peak[off] = l.peak;
        assert_false(l.reg.ff_known && l.reg.ff_g > 1.0);   /* not the stale 2 mbar per uL/min */
        assert_true(fabs(l.phys.pplant[0].flow - 100) < 2);
    }
    assert_true(peak[0] <= peak[1] + 0.05 * 50);
}

/* At a steady setpoint a tenfold drop of the resistance is a disturbance: the gain is
 * forgotten within a second, then learned again at the new chip (0.2 mbar per uL/min). */
static void test_a_disturbance_forgets_the_gain(void **state)
{
    (void)state;
    static struct loop l;
    char err[128];
    loop_init(&l, false);
    regulator_set_setpoint(&l.reg, 50);
    regulator_start(&l.reg, 0, 0);
    loop_run(&l, 5 * S);
    assert_true(l.reg.ff_known);
    assert_int_equal(sim_fault_add(&l.faults, "low-resistance:chip3", l.phys.now_ns, err, sizeof err), 0);
    loop_run(&l, 6 * S);
    assert_false(l.reg.ff_known);
    loop_run(&l, 12 * S);
    assert_true(l.reg.ff_known);
    assert_float_equal(l.reg.ff_g, 0.2, 0.02);
}

/* The transient hands its term over to the integral without a bump, and a pause in the middle
 * of one resumes from the held output with the gain forgotten. */
static void test_the_hand_over_and_a_pause_are_bumpless(void **state)
{
    (void)state;
    static struct loop l;
    loop_init(&l, false);
    regulator_set_setpoint(&l.reg, 500);
    regulator_start(&l.reg, 0, 0);
    loop_run(&l, 10 * S);
    regulator_set_setpoint(&l.reg, 50);
    loop_run(&l, 13 * S);
    assert_false(l.reg.ff_active);
    assert_false(isnan(l.end_jump));
    assert_true(l.end_jump < 3.0);          /* mbar: an ordinary tick's change */
    assert_float_equal(l.reg.last.ff, 0, 0);
    /* a step up, paused in its middle */
    loop_run(&l, 18 * S);
    regulator_set_setpoint(&l.reg, 200);
    loop_run(&l, l.phys.now_ns + 200 * MS);
    assert_true(l.reg.ff_active);
    regulator_pause(&l.reg);
    double held = l.written;
    loop_run(&l, l.phys.now_ns + 1 * S);
    assert_float_equal(l.written, held, 0);
    regulator_resume(&l.reg, l.phys.now_ns);
    assert_false(l.reg.ff_known);
    assert_false(l.reg.ff_active);
    double before = l.written;
    loop_run(&l, l.phys.now_ns + 20 * MS);
    assert_true(fabs(l.written - before) < 10);
    loop_run(&l, l.phys.now_ns + 5 * S);
    assert_true(fabs(l.phys.pplant[0].flow - 200) < 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_gain_is_learned_once_settled),
        cmocka_unit_test(test_a_step_down_settles_within_the_setpoint_band),
        cmocka_unit_test(test_a_stale_gain_does_not_overdrive),
        cmocka_unit_test(test_a_disturbance_forgets_the_gain),
        cmocka_unit_test(test_the_hand_over_and_a_pause_are_bumpless),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
