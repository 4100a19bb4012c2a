/* A rig's 'regulators:': parsed with their units, and every mistake at its line:column
 * with what to write instead. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plan/rig.h"
#include "text_rig.h"

#define S 1000000000LL

struct bad_case {
    const char *extra;          /* after text_rig_base, from line 9 */
    int line, col;
    const char *text;           /* the whole message */
};

/* Each case is refused, its first error at line:column with exactly its message. */
static void expect_first_errors(const struct bad_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct diag d;
        struct rig *rig = text_rig_load(cases[i].extra, &d);
        if (rig != NULL || d.errors == 0 || d.n == 0)
            fail_msg("case %zu was accepted:\n%s", i, cases[i].extra);
        const struct diag_msg *m = &d.msgs[0];
        if (getenv("SHOW_DIAG"))
            fprintf(stderr, "case %zu: %d:%d %s\n", i, m->line, m->col, m->text);
        else if (m->line != cases[i].line || m->col != cases[i].col || strcmp(m->text, cases[i].text) != 0) {
            diag_print(&d, stderr);
            fail_msg("case %zu: got %d:%d '%s', want %d:%d '%s'", i, m->line, m->col, m->text,
                     cases[i].line, cases[i].col, cases[i].text);
        }
        diag_free(&d);
    }
}


#define REG "regulators:\n  - {name: r1, measure: chip1.flow, actuator: pump1, "

/* A good entry keeps its channels, gains, limits, range, sign, tolerance and timers. */
static void test_a_regulator_is_parsed_with_its_units(void **state)
{
    (void)state;
    struct diag d;
    struct rig *rig = text_rig_load(REG "kp: 0.5 uL/min per uL/min,\n"
                           "     ki: 2 uL/min per uL/min per s, kd: 0.01, rate: 20 Hz,\n"
                           "     output: [0 uL/min, 500 uL/min], range: [1 uL/min, 400 uL/min],\n"
                           "     plant_sign: negative, tolerance: {abs: 0.5 uL/min, rel: 5 %, for: 1 min},\n"
                           "     saturated_for: 4 s, inverted_for: 2 s, setpoint_weight: 0.5,\n"
                           "     measurement: {stale_after: 300 ms, stuck_after: 20 s, on_loss: safe},\n"
                           "     safe_output: 0 uL/min, d_filter: 20 ms,\n"
                           "     feedforward: {lag: 400 ms, response: 0.1 s, dead_time: 30 ms}}\n", &d);
    if (rig == NULL) {
        diag_print(&d, stderr);
        fail();
    }
    assert_int_equal(rig->n_regulators, 1);
    const struct rig_regulator *g = &rig->regulators[0];
    assert_string_equal(g->name, "r1");
    assert_string_equal(rig->channels[g->measure].name, "chip1.flow");
    assert_string_equal(rig->channels[g->actuator].name, "pump1.flow");
    assert_float_equal(g->kp, 0.5, 0);
    assert_float_equal(g->ki, 2, 0);
    assert_float_equal(g->kd, 0.01, 0);
    assert_float_equal(g->rate_hz, 20, 0);
    assert_float_equal(g->out_max, 500, 1e-9);
    assert_float_equal(g->sp_min, 1, 1e-9);
    assert_float_equal(g->sp_max, 400, 1e-9);
    assert_int_equal(g->sign, -1);
    assert_float_equal(g->tol_abs, 0.5, 1e-9);
    assert_float_equal(g->tol_rel, 0.05, 1e-9);
    assert_float_equal(g->lost_s, 60, 1e-9);
    assert_float_equal(g->saturated_s, 4, 1e-9);
    assert_float_equal(g->inverted_s, 2, 1e-9);
    assert_float_equal(g->sp_weight, 0.5, 0);
    assert_float_equal(g->stale_s, 0.3, 1e-9);
    assert_float_equal(g->stuck_s, 20, 1e-9);
    assert_int_equal(g->on_loss, REG_LOSS_SAFE);
    assert_float_equal(g->d_filter_s, 0.02, 1e-9);
    assert_false(g->ff_off);
    assert_float_equal(g->ff_lag_s, 0.4, 1e-9);
    assert_float_equal(g->ff_response_s, 0.1, 1e-9);
    assert_float_equal(g->ff_delay_s, 0.03, 1e-9);
    /* The measured channel is now a setpoint of that regulator. */
    assert_int_equal(rig_regulator_of(rig, g->measure), 0);
    assert_int_equal(rig_find_regulator(rig, "r1"), 0);
    assert_int_equal(rig_find_regulator(rig, "r2"), -1);
    rig_free(rig);
    diag_free(&d);
}

/* The feedforward is on by default with its settings derived at run time (0), or off. */
static void test_the_feedforward_defaults_on_and_can_be_off(void **state)
{
    (void)state;
    for (int off = 0; off < 2; off++) {
        struct diag d;
        struct rig *rig = text_rig_load(off ? REG "kp: 1, ki: 2, range: [0 uL/min, 10 uL/min], "
                                              "feedforward: off}\n"
                                            : REG "kp: 1, ki: 2, range: [0 uL/min, 10 uL/min]}\n", &d);
        if (rig == NULL) {
            diag_print(&d, stderr);
            fail();
        }
        const struct rig_regulator *g = &rig->regulators[0];
        assert_int_equal(g->ff_off, off);
        assert_float_equal(g->ff_lag_s, 0, 0);
        assert_float_equal(g->ff_response_s, 0, 0);
        assert_float_equal(g->ff_delay_s, 0, 0);
        rig_free(rig);
        diag_free(&d);
    }
}

/* Every bad form is refused, its first error at line:column with this message. */
static void test_bad_regulators_name_their_place_and_fix(void **state)
{
    (void)state;
    static const struct bad_case cases[] = {
        { "regulators: {name: r1}\n", 9, 13,
          "'regulators' must be a list, found a mapping (key: value)" },
        { "regulators:\n  - {name: r1, actuator: pump1, kp: 1}\n", 10, 5,
          "regulator 'r1' needs 'measure' (the measured channel, e.g. chip3.flow) and 'actuator' "
          "(the channel it moves, e.g. ob1.p1)" },
        { "regulators:\n  - {name: r1, measure: chip1.flwo, actuator: pump1, kp: 1}\n", 10, 25,
          "unknown channel 'chip1.flwo' on rig 't' (did you mean 'chip1.flow'?)" },
        { "regulators:\n  - {name: r1, measure: pump1, actuator: pump1, kp: 1}\n", 10, 25,
          "regulator 'r1': measure: pump1.flow is not a measured channel" },
        { "regulators:\n  - {name: r1, measure: chip1.flow, actuator: chip1.o2, kp: 1}\n", 10, 47,
          "channel 'chip1.o2' is a measurement and cannot be set (a rig 'regulators:' entry with "
          "'measure: chip1.o2' would make it a regulated setpoint)" },
        { REG "kp: 1 mbar per uL/min, range: [0 uL/min, 10 uL/min]}\n", 10, 58,
          "regulator 'r1': kp is in uL/min per uL/min (the actuator's unit per the measured one), "
          "found the unit 'mbar per uL/min'" },
        { REG "kp: -1, range: [0 uL/min, 10 uL/min]}\n", 10, 58,
          "regulator 'r1': kp cannot be negative (the plant's direction is 'plant_sign'), found -1" },
        { REG "range: [0 uL/min, 10 uL/min]}\n", 10, 5,
          "regulator 'r1' needs its gains, e.g. 'kp: 0.3 uL/min per uL/min, ki: 1 uL/min per uL/min "
          "per s' (perfusectl tune r1 suggests them)" },
        { REG "kp: 1, rate: 500 Hz, range: [0 uL/min, 10 uL/min]}\n", 10, 67,
          "regulator 'r1': rate must be from 1 Hz to 200 Hz, e.g. 'rate: 50 Hz', found '500 Hz'" },
        { REG "kp: 1, output: [0 uL/min, 5000 uL/min], range: [0 uL/min, 10 uL/min]}\n", 10, 69,
          "regulator 'r1': output [0, 5000] uL/min goes beyond what pump1.flow takes (-1000 .. 1000 uL/min)" },
        { REG "kp: 1, range: [10 uL/min, 1 uL/min]}\n", 10, 68,
          "regulator 'r1': range: the low end must be below the high end, found [10, 1] uL/min" },
        { REG "kp: 1, range: [0 uL/min, 10 uL/min], plant_sign: up}\n", 10, 103,
          "plant_sign must be positive | negative, found 'up'" },
        { REG "kp: 1, range: [0 uL/min, 10 uL/min], tolerance: {rel: 150 %}}\n", 10, 108,
          "regulator 'r1': tolerance: rel must be from 0 % to 100 %" },
        { REG "kp: 1, range: [0 uL/min, 10 uL/min], measurement: {on_loss: drop}}\n", 10, 114,
          "measurement on_loss must be hold | safe, found 'drop'" },
        { REG "kp: 1, range: [0 uL/min, 10 uL/min], gain: 2}\n", 10, 91,
          "unknown key 'gain' in a regulator (expected one of: name, measure, actuator, kp, ki, kd, "
          "d_filter, setpoint_weight, feedforward, rate, output, range, plant_sign, tolerance, "
          "saturated_for, inverted_for, measurement, safe_output)" },
        { REG "kp: 1, range: [0 uL/min, 10 uL/min], feedforward: maybe}\n", 10, 104,
          "regulator 'r1': feedforward must be on | off, found 'maybe'" },
        { REG "kp: 1, range: [0 uL/min, 10 uL/min], feedforward: {lag: 0.5 s, gain: 2}}\n", 10, 117,
          "unknown key 'gain' in a regulator's 'feedforward' (expected one of: lag, response, "
          "dead_time)" },
        { REG "kp: 1, range: [0 uL/min, 10 uL/min]}\n"
          "  - {name: r1, measure: chip1.flow, actuator: pump1, kp: 1, range: [0 uL/min, 10 uL/min]}\n",
          11, 12, "duplicate regulator name 'r1'" },
    };
    expect_first_errors(cases, sizeof cases / sizeof cases[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_regulator_is_parsed_with_its_units),
        cmocka_unit_test(test_the_feedforward_defaults_on_and_can_be_off),
        cmocka_unit_test(test_bad_regulators_name_their_place_and_fix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
