/* The regulator's control law on the simulated pressure-driven chip: tracking, anti-windup,
 * bumpless transfer, no derivative kick, NaN handling, and its faults. */
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

/* The closed loop: the model, the regulator, what it wrote and raised. */
struct loop {
    struct sim_physics phys;
    struct sim_faults_table faults;
    struct rig_regulator cfg;
    struct regulator reg;
    double written;
    int writes;
    bool fault[RF_KINDS];
    int raised[RF_KINDS];
    bool nan_meas;                  /* feed NaN instead of the reading */
    double max_step;                /* the largest output change in one tick */
};

static void hook_write(void *ctx, double out, int64_t t)
{
    (void)t;
    struct loop *l = ctx;
    if (l->writes > 0 && fabs(out - l->written) > l->max_step)
        l->max_step = fabs(out - l->written);
    l->written = out;
    l->writes++;
    l->phys.pplant[0].p_cmd = out;
}

static void hook_fault(void *ctx, enum reg_fault f, bool active, const char *msg, int64_t t)
{
    (void)msg;
    (void)t;
    struct loop *l = ctx;
    l->fault[f] = active;
    if (active)
        l->raised[f]++;
}

/* The shipped gains for chip3 (protocols/rigs/sim.yaml). */
static void loop_init(struct loop *l)
{
    memset(l, 0, sizeof *l);
    sim_physics_init(&l->phys, 11);
    l->cfg = (struct rig_regulator){ .name = "flow1", .kp = 2.0, .ki = 4.0, .kd = 0,
        .d_filter_s = 0.05, .sp_weight = 1, .rate_hz = 100, .out_min = 0, .out_max = 2000,
        .sp_min = 0, .sp_max = 900, .sign = 1, .tol_abs = 0.2, .tol_rel = 0.02, .lost_s = 10,
        .saturated_s = 5, .inverted_s = 1, .stale_s = 0.5, .on_loss = REG_LOSS_HOLD };
    struct regulator_hooks h = { .ctx = l, .write = hook_write, .fault = hook_fault };
    regulator_init(&l->reg, &l->cfg, 0, 2000, &h);
}

/* Run the loop until t_end: the model in 10 ms steps, a reading and a tick every 10 ms. */
static void loop_run(struct loop *l, int64_t t_end)
{
    while (l->phys.now_ns < t_end) {
        int64_t t = l->phys.now_ns + 10 * MS;
        sim_physics_advance_to(&l->phys, t);
        sim_fault_apply(&l->faults, &l->phys, t);
        regulator_measure(&l->reg, l->nan_meas ? NAN : sim_read_pflow(&l->phys, 0), t);
        regulator_tick(&l->reg, t, NULL);
    }
}

/* Mean of the flow through the chip over the last window. */
static double mean_flow(struct loop *l, int64_t window)
{
    double s = 0;
    int n = 0;
    int64_t end = l->phys.now_ns + window;
    while (l->phys.now_ns < end) {
        loop_run(l, l->phys.now_ns + 10 * MS);
        s += l->phys.pplant[0].flow;
        n++;
    }
    return s / n;
}

static void test_the_loop_follows_steps(void **state)
{
    (void)state;
    static struct loop l;
    loop_init(&l);
    regulator_set_setpoint(&l.reg, 500);
    regulator_start(&l.reg, 0, 0);
    loop_run(&l, 5 * S);
    assert_true(fabs(mean_flow(&l, S) - 500) < 2.5);
    regulator_set_setpoint(&l.reg, 50);
    loop_run(&l, l.phys.now_ns + 5 * S);
    assert_true(fabs(mean_flow(&l, S) - 50) < 0.25);
    assert_true(regulator_in_tolerance(&l.reg));
    for (int f = 0; f < RF_KINDS; f++)
        assert_int_equal(l.raised[f], 0);
}

/* A clog the output cannot overcome: the integral stays bounded, and once the clog
 * clears the flow comes back without a long overshoot (no wound-up integral). */
static void test_anti_windup_keeps_the_integral_within_reach(void **state)
{
    /* The clog fault as a window: it clears by itself at 23 s. */
    (void)state;
    static struct loop l;
    char err[128];
    loop_init(&l);
    regulator_set_setpoint(&l.reg, 500);
    regulator_start(&l.reg, 0, 0);
    assert_int_equal(sim_fault_add(&l.faults, "clog:chip3,at=3s,for=20s", 0, err, sizeof err), 0);
    loop_run(&l, 22 * S);
    assert_float_equal(l.written, 2000, 0);                 /* saturated */
    assert_true(l.fault[RF_SATURATED]);
    assert_true(l.reg.last.i <= 2000 + 1e-6);               /* not wound up beyond the limit */
    loop_run(&l, 23 * S);                                   /* the clog clears */
    /* Without back-calculation 20 s of a 300 uL/min error would have wound the integral
     * up by ki * 300 * 20 = 24000 mbar, holding the output at its limit (a flow near
     * 1000 uL/min) for a further 12 s; with it the flow is back within 5 % in 3 s. */
    loop_run(&l, 26 * S);
    assert_true(fabs(mean_flow(&l, S) - 500) < 25);
    assert_false(l.fault[RF_SATURATED]);
}

/* Start, pause/resume and manual -> auto do not move the output. */
static void test_transfers_are_bumpless(void **state)
{
    (void)state;
    static struct loop l;
    loop_init(&l);
    /* Start from an output already in force. */
    l.phys.pplant[0].p_cmd = 300;
    loop_run(&l, 3 * S);
    regulator_set_setpoint(&l.reg, 150);
    regulator_start(&l.reg, 300, l.phys.now_ns);
    l.writes = 0;
    l.max_step = 0;
    loop_run(&l, l.phys.now_ns + 20 * MS);
    assert_true(fabs(l.written - 300) < 5);
    loop_run(&l, l.phys.now_ns + 5 * S);
    /* Pause holds; resume continues from the held output. */
    regulator_pause(&l.reg);
    double held = l.written;
    int w = l.writes;
    loop_run(&l, l.phys.now_ns + 2 * S);
    assert_int_equal(l.writes, w);
    regulator_resume(&l.reg, l.phys.now_ns);
    l.max_step = 0;
    loop_run(&l, l.phys.now_ns + 100 * MS);
    assert_true(fabs(l.written - held) < 5);
    assert_true(l.max_step < 5);
    /* Manual, then auto from the manual output. */
    regulator_manual(&l.reg, 250, l.phys.now_ns);
    loop_run(&l, l.phys.now_ns + 3 * S);
    assert_float_equal(l.written, 250, 0);
    regulator_auto(&l.reg, l.phys.now_ns);
    l.max_step = 0;
    loop_run(&l, l.phys.now_ns + 20 * MS);
    assert_true(fabs(l.written - 250) < 10);
    loop_run(&l, l.phys.now_ns + 5 * S);
    assert_true(fabs(mean_flow(&l, S) - 150) < 1.5);
}

/* A setpoint step moves the output through P only: the derivative acts on the
 * measurement, so there is no kick of kd * step / dt. */
static void test_a_setpoint_step_gives_no_derivative_kick(void **state)
{
    (void)state;
    static struct loop l;
    loop_init(&l);
    l.cfg.kd = 0.5;
    l.cfg.ff_off = true;    /* the feedforward's own answer to a step is tested in test_regff */
    regulator_set_setpoint(&l.reg, 100);
    regulator_start(&l.reg, 0, 0);
    loop_run(&l, 5 * S);
    l.max_step = 0;
    regulator_set_setpoint(&l.reg, 200);
    loop_run(&l, l.phys.now_ns + 10 * MS);
    /* The P kick is kp * 100 = 200 mbar; a derivative on the error would add kd * 100 / 0.01. */
    assert_true(l.max_step < 200 + 10);
    assert_true(l.max_step > 150);
}

/* NaN readings are never integrated: the output holds and the integral freezes; then
 * regulation resumes from where it was. With on_loss: safe the output goes to the safe value. */
static void test_a_nan_measurement_freezes_the_integral_and_holds(void **state)
{
    (void)state;
    static struct loop l;
    loop_init(&l);
    regulator_set_setpoint(&l.reg, 100);
    regulator_start(&l.reg, 0, 0);
    loop_run(&l, 5 * S);
    double out = l.written, i = l.reg.last.i;
    l.nan_meas = true;
    loop_run(&l, 8 * S);
    assert_true(l.fault[RF_MEASUREMENT]);
    assert_float_equal(l.written, out, 0);
    assert_float_equal(l.reg.last.i, i, 0);
    l.nan_meas = false;
    loop_run(&l, 8 * S + 100 * MS);
    assert_false(l.fault[RF_MEASUREMENT]);
    assert_true(fabs(l.written - out) < 10);
    loop_init(&l);
    l.cfg.on_loss = REG_LOSS_SAFE;
    l.cfg.safe_output = 0;
    regulator_set_setpoint(&l.reg, 100);
    regulator_start(&l.reg, 0, 0);
    loop_run(&l, 5 * S);
    l.nan_meas = true;
    loop_run(&l, 6 * S);
    assert_float_equal(l.written, 0, 0);
}

/* A measurement that stops coming is stale: the same as NaN. */
static void test_a_stale_measurement_holds(void **state)
{
    (void)state;
    static struct loop l;
    loop_init(&l);
    regulator_set_setpoint(&l.reg, 100);
    regulator_start(&l.reg, 0, 0);
    loop_run(&l, 3 * S);
    double out = l.written;
    for (int64_t t = 3 * S; t < 5 * S; t += 10 * MS)
        regulator_tick(&l.reg, t, NULL);       /* ticks without readings */
    assert_true(l.fault[RF_MEASUREMENT]);
    assert_true(fabs(l.written - out) < 5);
}

/* An inverted plant is put in the safe state within 5 s, and stays there. */
static void test_an_inverted_plant_is_safed_within_5_s(void **state)
{
    (void)state;
    static struct loop l;
    char err[128];
    loop_init(&l);
    regulator_set_setpoint(&l.reg, 100);
    regulator_start(&l.reg, 0, 0);
    loop_run(&l, 5 * S);
    assert_int_equal(sim_fault_add(&l.faults, "inverted:chip3", 5 * S, err, sizeof err), 0);
    int64_t t0 = l.phys.now_ns;
    while (!l.fault[RF_INVERTED] && l.phys.now_ns < t0 + 10 * S)
        loop_run(&l, l.phys.now_ns + 10 * MS);
    assert_true(l.fault[RF_INVERTED]);
    assert_true(l.phys.now_ns - t0 <= 5 * S);
    assert_float_equal(l.written, 0, 0);
    assert_int_equal(l.reg.mode, REG_SAFED);
    loop_run(&l, l.phys.now_ns + 3 * S);
    assert_float_equal(l.written, 0, 0);
}

/* A bubble's spike and dip is not taken for an inverted plant; an empty reservoir saturates. */
static void test_a_bubble_is_not_an_inversion_and_an_empty_reservoir_saturates(void **state)
{
    (void)state;
    static struct loop l;
    char err[128];
    loop_init(&l);
    regulator_set_setpoint(&l.reg, 100);
    regulator_start(&l.reg, 0, 0);
    assert_int_equal(sim_fault_add(&l.faults, "bubble:chip3,at=5s,for=2s", 0, err, sizeof err), 0);
    loop_run(&l, 12 * S);
    assert_int_equal(l.raised[RF_INVERTED], 0);
    assert_true(fabs(mean_flow(&l, S) - 100) < 1);
    assert_int_equal(sim_fault_add(&l.faults, "reservoir-empty:chip3", l.phys.now_ns, err, sizeof err), 0);
    loop_run(&l, l.phys.now_ns + 15 * S);
    assert_true(l.fault[RF_SATURATED]);
    assert_true(l.fault[RF_LOST]);
    assert_int_equal(l.raised[RF_INVERTED], 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_loop_follows_steps),
        cmocka_unit_test(test_anti_windup_keeps_the_integral_within_reach),
        cmocka_unit_test(test_transfers_are_bumpless),
        cmocka_unit_test(test_a_setpoint_step_gives_no_derivative_kick),
        cmocka_unit_test(test_a_nan_measurement_freezes_the_integral_and_holds),
        cmocka_unit_test(test_a_stale_measurement_holds),
        cmocka_unit_test(test_an_inverted_plant_is_safed_within_5_s),
        cmocka_unit_test(test_a_bubble_is_not_an_inversion_and_an_empty_reservoir_saturates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
