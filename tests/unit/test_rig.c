/* The rig's own 'limits:', 'monitors:' and 'syringe_low:': parsed by the rig
 * loader itself, with every mistake at its line:column. */
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

/* Good limits are kept with their channel, bounds, debounce, action and line. */
static void test_a_rigs_limits_are_parsed_by_the_rig(void **state)
{
    (void)state;
    struct diag d;
    struct rig *rig = text_rig_load("limits:\n"
                           "  - {channel: chip1.pressure, max: 350 mbar, for: 2 s, action: safe-stop}\n"
                           "  - {channel: chip1.flow, min: 1 uL/min, max: 2 mL/min}\n"
                           "  - {channel: pump1, min: 0 uL/min, for: 0 s, action: pause}\n", &d);
    if (rig == NULL) {
        diag_print(&d, stderr);
        fail();
    }
    assert_int_equal(rig->n_limits, 3);
    const struct plan_limit *l = rig->limits;
    assert_string_equal(rig->channels[l[0].channel].name, "chip1.pressure");
    assert_true(isnan(l[0].min));
    assert_float_equal(l[0].max, 350, 1e-9);
    assert_int_equal(l[0].for_ns, 2 * S);
    assert_int_equal(l[0].action, LIMIT_SAFE_STOP);
    assert_int_equal(l[0].line, 10);
    assert_string_equal(rig->channels[l[1].channel].name, "chip1.flow");
    assert_float_equal(l[1].min, 1, 1e-9);
    assert_float_equal(l[1].max, 2000, 1e-9);
    assert_int_equal(l[1].for_ns, 0);
    assert_int_equal(l[1].action, LIMIT_ALARM);
    assert_int_equal(l[1].line, 11);
    assert_string_equal(rig->channels[l[2].channel].name, "pump1.flow");
    assert_true(isnan(l[2].max));
    assert_int_equal(l[2].action, LIMIT_PAUSE);
    rig_free(rig);
    diag_free(&d);
}

/* Good monitors and syringe_low are kept as written. */
static void test_a_rigs_monitors_and_syringe_low_are_parsed_by_the_rig(void **state)
{
    (void)state;
    struct diag d;
    struct rig *rig = text_rig_load("syringe_low: 15 %\n"
                           "monitors:\n"
                           "  - {name: m1, flow: chip1.flow, follows: pump1, tolerance: 10 %,\n"
                           "     min_abs: 2 uL/min, for: 1 min, action: pause}\n"
                           "  - {name: m2, flow: chip1.flow, follows: pump1.flow}\n", &d);
    if (rig == NULL) {
        diag_print(&d, stderr);
        fail();
    }
    assert_float_equal(rig->syringe_low, 0.15, 1e-12);
    assert_int_equal(rig->n_monitors, 2);
    const struct rig_monitor *m = rig->monitors;
    assert_string_equal(m[0].name, "m1");
    assert_string_equal(rig->channels[m[0].flow].name, "chip1.flow");
    assert_string_equal(rig->channels[m[0].pump].name, "pump1.flow");
    assert_float_equal(m[0].tolerance, 0.1, 1e-12);
    assert_float_equal(m[0].min_abs, 2, 1e-12);
    assert_int_equal(m[0].for_ns, 60 * S);
    assert_int_equal(m[0].action, LIMIT_PAUSE);
    assert_int_equal(m[0].line, 11);
    /* The defaults: 20 %, 1 uL/min, 10 s, alarm. */
    assert_float_equal(m[1].tolerance, 0.2, 1e-12);
    assert_float_equal(m[1].min_abs, 1, 1e-12);
    assert_int_equal(m[1].for_ns, 10 * S);
    assert_int_equal(m[1].action, LIMIT_ALARM);
    rig_free(rig);
    diag_free(&d);
}

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

/* Every bad form is refused, its first error at line:column with this message. */
static void test_bad_rig_limits_and_monitors_name_their_place_and_fix(void **state)
{
    (void)state;
    static const struct bad_case cases[] = {
        { "limits: {channel: chip1.pressure, max: 1 mbar}\n", 9, 9,
          "'limits' must be a list, found a mapping (key: value)" },
        { "limits: [5]\n", 9, 10, "a limit must be a mapping (key: value), found text" },
        { "limits:\n  - {max: 1 mbar}\n", 10, 5, "a limit needs 'channel'" },
        { "limits:\n  - {channel: chip1.presure, max: 1 mbar}\n", 10, 15,
          "unknown channel 'chip1.presure' on rig 't' (did you mean 'chip1.pressure'?)" },
        { "limits:\n  - {channel: chip9.pressure, max: 1 mbar}\n", 10, 15,
          "unknown channel 'chip9.pressure' on rig 't' (did you mean 'chip1.pressure'?)" },
        { "limits:\n  - {channel: chip1, max: 1 mbar}\n", 10, 15,
          "device 'chip1' has several channels; name one, e.g. 'chip1.pressure'" },
        { "limits:\n  - {channel: [chip1.pressure], max: 1 mbar}\n", 10, 15,
          "expected a channel name such as 'pump1' or 'chip1.pressure', found a list" },
        { "limits:\n  - {channel: chip1.pressure}\n", 10, 5, "a limit needs 'min', 'max' or both" },
        { "limits:\n  - {channel: chip1.pressure, max: 1 uL/min}\n", 10, 38,
          "unit 'uL/min' is a flow, but a pressure is expected (Pa, kPa, mbar, bar, psi)" },
        { "limits:\n  - {channel: chip1.pressure, max: 5}\n", 10, 36,
          "missing unit after 5 (expected a pressure unit: Pa, kPa, mbar, bar, psi)" },
        { "limits:\n  - {channel: chip1.pressure, max: {v: 1}}\n", 10, 36,
          "limit max must be a value such as '10 mbar', found a mapping (key: value)" },
        { "limits:\n  - {channel: chip1.pressure, min: 9 mbar, max: 1 mbar}\n", 10, 36,
          "limit min must be below max" },
        { "limits:\n  - {channel: chip1.pressure, max: 1 mbar, for: 2 mins}\n", 10, 51,
          "limit 'for': unknown time unit 'mins' (did you mean 'min'? expected ms, s, min, h or d)" },
        { "limits:\n  - {channel: chip1.pressure, max: 1 mbar, for: -2 s}\n", 10, 49,
          "limit 'for': negative duration '-2 s'" },
        { "limits:\n  - {channel: chip1.pressure, max: 1 mbar, action: panic}\n", 10, 52,
          "action must be alarm | pause | safe-stop, found 'panic'" },
        { "limits:\n  - {channel: chip1.pressure, max: 1 mbar, fro: 1 s}\n", 10, 44,
          "unknown key 'fro' in a limit (did you mean 'for'?)" },
        { "monitors:\n  - {name: m, flow: chip1.flow, follows: pump1, for: 2 d}\n", 10, 54,
          "monitor 'm': for must be between 0 s and 1 d, found '2 d'" },
        { "monitors:\n  - {name: m, flow: chip1.flow, follows: pump1, for: 5 sec}\n", 10, 56,
          "monitor 'm': for: unknown time unit 'sec' (did you mean 's'? expected ms, s, min, h or d)" },
        { "monitors:\n  - {name: m, flow: chip1.flow, follows: pump1, min_abs: 1 mbar}\n", 10, 60,
          "monitor 'm': min_abs: unit 'mbar' is a pressure, but a flow is expected "
          "(nL/min, uL/min, uL/s, uL/h, mL/min, mL/h, mL/d)" },
        { "syringe_low: 150 %\n", 9, 14, "syringe_low must be above 0 % and below 100 %, found '150 %'" },
        { "syringe_low: 10 uL\n", 9, 17,
          "syringe_low: unit 'uL' is a volume, but a percentage is expected (%)" },
    };
    expect_first_errors(cases, sizeof cases / sizeof cases[0]);
}

/* The rig's durations all go through the one parser: a bound is named in
 * words, and a wrong unit is shown at its column. */
static void test_rig_durations_name_their_range_and_place(void **state)
{
    (void)state;
    static const struct bad_case cases[] = {
        { "recorder: {flush: 2 s}\n", 9, 19, "recorder flush must be between 0.1 s and 1 s, found '2 s'" },
        { "confirm: {setpoints: 2 h}\n", 9, 22, "confirm setpoints must be between 0.5 s and 1 h, found '2 h'" },
        { "confirm: {safe_state: 3 sec}\n", 9, 25,
          "confirm safe_state: unknown time unit 'sec' (did you mean 's'? expected ms, s, min, h or d)" },
        { "alerts: {command: x, min_interval: [1 s]}\n", 9, 36,
          "alerts min_interval must be a duration such as '5 min' or '1 h 30 min', found a list" },
    };
    expect_first_errors(cases, sizeof cases / sizeof cases[0]);
}

/* A serial line of two New Era pumps at 9600 baud with the given framing keys;
 * pump1 reads 62 times a second, pump2 3 (its driver's defaults). */
static struct rig *load_serial_line(const char *framing, struct diag *d)
{
    char text[1024];
    snprintf(text, sizeof text,
             "rig: t\n"
             "buses:\n"
             "  - {name: pumps, type: serial, port: /dev/null, baud: 9600%s}\n"
             "devices:\n"
             "  - {name: pump1, driver: newera, bus: pumps, address: 0, sample_hz: {flow: 50, dispensed: 12},\n"
             "     syringe: {diameter: 14.57 mm}}\n"
             "  - {name: pump2, driver: newera, bus: pumps, address: 1, syringe: {diameter: 14.57 mm}}\n",
             framing);
    struct rig *rig = NULL;
    diag_init(d);
    if (rig_load_text("protocols/rigs/t.yaml", text, strlen(text), &rig, d) != 0)
        return NULL;
    return rig;
}

/* A serial line carries its rates when the readings a second, times the
 * characters each takes (13 for a New Era pump), times the bits of a character
 * fit in the baud rate: 65 x 13 = 845 characters a second, x 10 bits (8N1) is
 * 8450 bit/s, within 9600; with even parity and 2 stop bits (12 bits) it is
 * 10140 bit/s, and the rig is refused at the bus's baud, with the arithmetic. */
static void test_a_serial_line_must_carry_its_sample_rates(void **state)
{
    (void)state;
    struct diag d;
    struct rig *rig = load_serial_line("", &d);
    if (rig == NULL) {
        diag_print(&d, stderr);
        fail();
    }
    rig_free(rig);
    diag_free(&d);

    rig = load_serial_line(", parity: E, stop_bits: 2", &d);
    if (rig != NULL || d.errors != 1 || d.n == 0)
        fail_msg("a serial line that cannot carry its rates was accepted");
    const struct diag_msg *m = &d.msgs[0];
    const char *want = "bus 'pumps' (serial, 9600 baud) cannot carry its sample rates: each "
        "reading is a command and a reply of at least the characters its driver takes, so "
        "readings a second x characters, pump1: 62 x 13 (newera) + pump2: 3 x 13 (newera) = 845 "
        "characters a second, each of 12 bits, so 10140 bit/s, more than the line's 9600. At "
        "most 800 characters a second fit: lower sample_hz of the devices on it, or raise the "
        "baud rate";
    if (m->line != 3 || m->col != 56 || strcmp(m->text, want) != 0) {
        diag_print(&d, stderr);
        fail_msg("got %d:%d '%s'", m->line, m->col, m->text);
    }
    diag_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_rigs_limits_are_parsed_by_the_rig),
        cmocka_unit_test(test_a_rigs_monitors_and_syringe_low_are_parsed_by_the_rig),
        cmocka_unit_test(test_bad_rig_limits_and_monitors_name_their_place_and_fix),
        cmocka_unit_test(test_rig_durations_name_their_range_and_place),
        cmocka_unit_test(test_a_serial_line_must_carry_its_sample_rates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
