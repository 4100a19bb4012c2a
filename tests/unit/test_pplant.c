/* The pressure-driven chip model: gain, delay, lag, reservoir head and its faults. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "drivers/sim/physics.h"
#include "drivers/sim/sim_faults.h"

#define S 1000000000LL
#define MS 1000000LL

static struct sim_physics p;

/* A step of pressure: no flow change before the transport delay, 63 % after delay + tau,
 * and the steady flow (P + head) / R. */
static void test_a_pressure_step_arrives_late_then_lags_to_p_over_r(void **state)
{
    (void)state;
    sim_physics_init(&p, 1);
    struct sim_pplant *pl = &p.pplant[0];
    double q0 = pl->flow;
    assert_true(fabs(q0 - pplant_head(pl) / 2.0) < 1e-9);
    pl->p_cmd = 200.0;
    sim_physics_advance_to(&p, 10 * MS);
    assert_true(fabs(pl->flow - q0) < 1e-9);              /* still in the line */
    sim_physics_advance_to(&p, 540 * MS);                   /* delay + tau + source lag */
    double frac = (pl->flow - q0) / (100.0 - q0 + pplant_head(pl) / 2.0 - pplant_head(pl) / 2.0);
    assert_true(frac > 0.55 && frac < 0.66);
    sim_physics_advance_to(&p, 6 * S);
    assert_true(fabs(pl->flow - (200.0 + pplant_head(pl)) / 2.0) < 0.05);
}

/* Liquid used lowers the reservoir, and with it the flow at the same pressure. */
static void test_the_reservoir_head_falls_as_liquid_is_used(void **state)
{
    (void)state;
    sim_physics_init(&p, 1);
    struct sim_pplant *pl = &p.pplant[0];
    double h0 = pplant_head(pl);
    pl->p_cmd = 1000.0;                                     /* 500 uL/min */
    sim_physics_advance_to(&p, 120 * S);
    assert_true(pl->used_ul > 900.0);
    assert_true(pplant_head(pl) < h0 - 0.4);
}

/* clog: five times less flow; low-resistance: ten times more; inverted: the sign turns;
 * reservoir-empty: nothing flows. */
static void test_plant_faults_change_the_gain(void **state)
{
    (void)state;
    static struct sim_faults_table t;
    char err[128];
    const char *specs[] = { "clog:chip3", "low-resistance:chip3", "inverted:chip3", "reservoir-empty:chip3" };
    const double expect[] = { 100.0 / 5, 100.0 * 10, -100.0, 0.0 };
    for (int i = 0; i < 4; i++) {
        sim_physics_init(&p, 1);
        memset(&t, 0, sizeof t);
        assert_int_equal(sim_fault_add(&t, specs[i], 0, err, sizeof err), 0);
        sim_fault_apply(&t, &p, 0);
        p.pplant[0].p_cmd = 200.0;
        sim_physics_advance_to(&p, 8 * S);
        double head = p.pplant[0].empty ? 0 : pplant_head(&p.pplant[0]) / (2.0 * p.pplant[0].r_factor);
        assert_true(fabs(p.pplant[0].flow - (expect[i] + head)) < 0.01 * fabs(expect[i]) + 0.05);
    }
    assert_true(sim_fault_add(&t, "inverted:chip1", 0, err, sizeof err) < 0);
}

/* A bubble reads high first, then low, then the flow again. */
static void test_a_bubble_spikes_then_dips(void **state)
{
    (void)state;
    static struct sim_faults_table t;
    char err[128];
    sim_physics_init(&p, 3);
    memset(&t, 0, sizeof t);
    p.pplant[0].p_cmd = 100.0;
    sim_physics_advance_to(&p, 5 * S);
    assert_int_equal(sim_fault_add(&t, "bubble:chip3,for=3s", 5 * S, err, sizeof err), 0);
    sim_fault_apply(&t, &p, 5 * S);
    double q = p.pplant[0].flow;
    assert_true(pplant_sensed(&p.pplant[0], p.now_ns) > 1.5 * q);
    sim_physics_advance_to(&p, 5 * S + 800 * MS);
    assert_true(pplant_sensed(&p.pplant[0], p.now_ns) < 0.5 * q);
    sim_physics_advance_to(&p, 9 * S);
    sim_fault_apply(&t, &p, 9 * S);
    assert_true(fabs(pplant_sensed(&p.pplant[0], p.now_ns) - q) < 0.05 * q);
}

/* The reading carries the stated noise, and nan/stuck act on it. */
static void test_the_flow_reading_has_the_stated_noise(void **state)
{
    (void)state;
    sim_physics_init(&p, 5);
    p.pplant[0].p_cmd = 20.0;                               /* 10 uL/min */
    sim_physics_advance_to(&p, 5 * S);
    double s = 0, s2 = 0;
    int n = 2000;
    for (int i = 0; i < n; i++) {
        sim_physics_advance_to(&p, p.now_ns + 10 * MS);
        double d = sim_read_pflow(&p, 0) - p.pplant[0].flow;
        s += d;
        s2 += d * d;
    }
    double sd = sqrt(s2 / n - (s / n) * (s / n));
    double want = 0.05 + 0.005 * p.pplant[0].flow;
    assert_true(sd > 0.9 * want && sd < 1.1 * want);
    p.faults.pflow_nan[0] = true;
    assert_true(isnan(sim_read_pflow(&p, 0)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_pressure_step_arrives_late_then_lags_to_p_over_r),
        cmocka_unit_test(test_the_reservoir_head_falls_as_liquid_is_used),
        cmocka_unit_test(test_plant_faults_change_the_gain),
        cmocka_unit_test(test_a_bubble_spikes_then_dips),
        cmocka_unit_test(test_the_flow_reading_has_the_stated_noise),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
