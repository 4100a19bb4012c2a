/* The simulated rig's physics: determinism to the bit, and each model's behaviour. */
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

/* Sample every sensor once a second for an hour of virtual time, with setpoints changing. */
static void run(uint64_t seed, int64_t step_ns, double *out, size_t n)
{
    static struct sim_physics p;
    sim_physics_init(&p, seed);
    size_t k = 0;
    for (int64_t t = 0; k + 6 <= n; t += S) {
        for (int64_t u = p.now_ns; u < t; u += step_ns)
            sim_physics_advance_to(&p, u + step_ns < t ? u + step_ns : t);
        sim_physics_advance_to(&p, t);
        if (t == 60 * S) {
            p.pump[0].rate = 20;
            p.pump[0].running = true;
        }
        if (t == 600 * S) {
            p.pump[1].rate = 5;
            p.pump[1].running = true;
        }
        out[k++] = sim_read_pressure(&p, 0);
        out[k++] = sim_read_pressure(&p, 1);
        out[k++] = sim_read_flow(&p, 0);
        out[k++] = sim_read_flow(&p, 1);
        out[k++] = sim_read_o2(&p);
        out[k++] = sim_read_temp(&p);
    }
}

static void test_same_seed_same_samples_to_the_bit(void **state)
{
    (void)state;
    static double a[6 * 3600], b[6 * 3600], c[6 * 3600], d[6 * 3600];
    run(42, S, a, 6 * 3600);
    run(42, S, b, 6 * 3600);
    assert_memory_equal(a, b, sizeof a);
    /* Chopping virtual time differently changes nothing either. */
    run(42, 7 * 1000000LL, c, 6 * 3600);
    assert_memory_equal(a, c, sizeof a);
    run(43, S, d, 6 * 3600);
    assert_true(memcmp(a, d, sizeof a) != 0);
}

static void test_pressure_is_resistance_times_flow_plus_offset(void **state)
{
    (void)state;
    static struct sim_physics p;
    sim_physics_init(&p, 1);
    p.pump[0].rate = 20;
    p.pump[0].running = true;
    sim_physics_advance_to(&p, 30 * S);
    double sum = 0;
    for (int i = 0; i < 100; i++) {
        sim_physics_advance_to(&p, 30 * S + i * S / 10);
        sum += sim_read_pressure(&p, 0);
    }
    assert_float_equal(sum / 100, sim_resistance[0] * 20 + sim_p0, 0.15);
    assert_float_equal(p.chip_pressure[0], sim_resistance[0] * 20 + sim_p0, 1e-6);
}

static void test_syringe_runs_down_and_stalls_once(void **state)
{
    (void)state;
    static struct sim_physics p;
    sim_physics_init(&p, 1);
    p.pump[0].rate = 1000;          /* 10 mL at 1 mL/min: empty after 10 min */
    p.pump[0].running = true;
    sim_physics_advance_to(&p, 9 * 60 * S);
    assert_true(p.pump[0].running);
    assert_float_equal(p.pump[0].remaining_ul, 1000, 1);
    sim_physics_advance_to(&p, 11 * 60 * S);
    assert_false(p.pump[0].running);
    assert_int_equal(p.pump[0].alarm, 'S');
    assert_float_equal(p.pump[0].infused_ul, 10000, 1e-6);
}

static void test_incubator_oxygen_and_valve(void **state)
{
    (void)state;
    static struct sim_physics p;
    sim_physics_init(&p, 1);
    double o2_start = p.o2;
    sim_physics_advance_to(&p, 120 * S);
    assert_true(p.o2 < o2_start - 4);                     /* no flow: cells use oxygen up */
    assert_float_equal(p.temp, 37 - exp(-1.0), 0.01);     /* one time constant */
    p.pump[0].rate = 10;
    p.pump[0].running = true;
    sim_physics_advance_to(&p, 1200 * S);
    assert_float_equal(p.o2, 97.5, 0.5);
    assert_true(sim_valve_move(&p, 4));
    assert_false(sim_valve_move(&p, 7));
    assert_true(sim_valve_busy(&p));
    sim_physics_advance_to(&p, 1200 * S + 290000000LL);
    assert_int_equal(sim_valve_position(&p), 1);
    sim_physics_advance_to(&p, 1200 * S + 310000000LL);
    assert_int_equal(sim_valve_position(&p), 4);
    assert_false(sim_valve_busy(&p));
}

static void test_fault_specs_and_windows(void **state)
{
    (void)state;
    static struct sim_faults_table t;
    static struct sim_physics p;
    memset(&t, 0, sizeof t);
    sim_physics_init(&p, 1);
    char err[256];
    assert_int_equal(sim_fault_add(&t, "clog:chip1,at=10s,for=5s", 0, err, sizeof err), 0);
    assert_false(sim_fault_active(&t, SD_CHIP1, SF_CLOG, 9 * S));
    assert_true(sim_fault_active(&t, SD_CHIP1, SF_CLOG, 12 * S));
    assert_false(sim_fault_active(&t, SD_CHIP1, SF_CLOG, 15 * S));
    assert_int_equal(sim_fault_add(&t, "timeout:pump1", 0, err, sizeof err), 0);
    assert_true(sim_fault_active(&t, SD_PUMP1, SF_TIMEOUT, 1000 * S));
    assert_int_equal(sim_fault_clear(&t, "pump1"), 0);
    assert_false(sim_fault_active(&t, SD_PUMP1, SF_TIMEOUT, 1000 * S));
    assert_int_equal(sim_fault_add(&t, "crc:pump1", 0, err, sizeof err), -22);
    assert_non_null(strstr(err, "does not apply"));
    assert_int_equal(sim_fault_add(&t, "clog:chip9", 0, err, sizeof err), -22);
    assert_int_equal(sim_fault_add(&t, "clog:chip1,for=5 sec", 0, err, sizeof err), -22);
    sim_fault_apply(&t, &p, 12 * S);
    assert_float_equal(p.faults.clog[0], 5.0, 0);
    sim_fault_apply(&t, &p, 16 * S);
    assert_float_equal(p.faults.clog[0], 1.0, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_seed_same_samples_to_the_bit),
        cmocka_unit_test(test_pressure_is_resistance_times_flow_plus_offset),
        cmocka_unit_test(test_syringe_runs_down_and_stalls_once),
        cmocka_unit_test(test_incubator_oxygen_and_valve),
        cmocka_unit_test(test_fault_specs_and_windows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
