/* Units: parsing values and durations, conversions against known values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "base/units.h"

/* Parse text as quantity q and return the canonical value; fail the test on error. */
static double val(const char *text, enum quantity q)
{
    double v;
    char err[256];
    int col;
    int rc = unit_parse_value(text, q, &v, err, sizeof err, &col);
    if (rc != 0)
        fail_msg("'%s': %s", text, err);
    return v;
}

static void test_flow_units_convert_to_ul_per_min(void **state)
{
    (void)state;
    assert_float_equal(val("50 uL/min", Q_FLOW), 50.0, 1e-12);
    assert_float_equal(val("50 \xc2\xb5L/min", Q_FLOW), 50.0, 1e-12);
    assert_float_equal(val("1500 nL/min", Q_FLOW), 1.5, 1e-12);
    assert_float_equal(val("60 uL/h", Q_FLOW), 1.0, 1e-12);
    assert_float_equal(val("1 mL/min", Q_FLOW), 1000.0, 1e-12);
    assert_float_equal(val("0.6 mL/h", Q_FLOW), 10.0, 1e-12);
}

static void test_pressure_units_convert_to_mbar(void **state)
{
    (void)state;
    assert_float_equal(val("100 Pa", Q_PRESSURE), 1.0, 1e-12);
    assert_float_equal(val("1 kPa", Q_PRESSURE), 10.0, 1e-12);
    assert_float_equal(val("1.5 bar", Q_PRESSURE), 1500.0, 1e-9);
    assert_float_equal(val("1 psi", Q_PRESSURE), 68.9475729, 1e-6);
    assert_float_equal(val("350 mbar", Q_PRESSURE), 350.0, 1e-12);
}

static void test_other_units(void **state)
{
    (void)state;
    assert_float_equal(val("37 degC", Q_TEMPERATURE), 37.0, 1e-12);
    assert_float_equal(val("10 mL", Q_VOLUME), 10000.0, 1e-9);
    assert_float_equal(val("250 uL", Q_VOLUME), 250.0, 1e-12);
    assert_float_equal(val("500 um", Q_LENGTH), 0.5, 1e-12);
    assert_float_equal(val("14.57 mm", Q_LENGTH), 14.57, 1e-12);
    assert_float_equal(val("21 %", Q_PERCENT), 21.0, 1e-12);
    assert_float_equal(val("7.4 pH", Q_PH), 7.4, 1e-12);
    assert_float_equal(val("8.12 mg/L", Q_CONCENTRATION), 8.12, 1e-12);
    assert_float_equal(val("250 ug/L", Q_CONCENTRATION), 0.25, 1e-12);
    assert_float_equal(val("250 \xc2\xb5g/L", Q_CONCENTRATION), 0.25, 1e-12);
    assert_float_equal(val("4.5 g/L", Q_CONCENTRATION), 4500.0, 1e-9);
    assert_float_equal(val("3", Q_NONE), 3.0, 1e-12);
    assert_float_equal(val("-2.5e1 uL/min", Q_FLOW), -25.0, 1e-12);
}

/* Expect a parse failure whose message contains needle, at column col. */
static void expect_bad(const char *text, enum quantity q, const char *needle, int col_expected)
{
    double v;
    char err[256];
    int col = -1;
    assert_int_equal(unit_parse_value(text, q, &v, err, sizeof err, &col), -22);
    if (strstr(err, needle) == NULL)
        fail_msg("'%s': message '%s' lacks '%s'", text, err, needle);
    assert_int_equal(col, col_expected);
}

static void test_bad_values_name_the_problem(void **state)
{
    (void)state;
    expect_bad("10 ul/mn", Q_FLOW, "unknown unit 'ul/mn'", 3);
    expect_bad("10 ul/min", Q_FLOW, "did you mean 'uL/min'", 3);
    expect_bad("10", Q_FLOW, "missing unit", 0);
    expect_bad("10 mbar", Q_FLOW, "is a pressure, but a flow is expected", 3);
    expect_bad("fast", Q_FLOW, "expected a flow", 0);
    expect_bad("8 mg/l", Q_CONCENTRATION, "did you mean 'mg/L'", 2);
    expect_bad("8 mg/L", Q_PRESSURE, "is a concentration, but a pressure is expected", 2);
    expect_bad("10 uL/min extra", Q_FLOW, "unexpected 'extra'", 10);
    expect_bad("1e999 uL/min", Q_FLOW, "out of range", 0);
    expect_bad("3 uL", Q_NONE, "plain number", 2);
    expect_bad("nan uL/min", Q_FLOW, "expected a flow", 0);
}

/* Parse a duration; fail the test on error. */
static int64_t dur(const char *text)
{
    int64_t ns;
    char err[256];
    int col;
    if (unit_parse_duration(text, &ns, err, sizeof err, &col) != 0)
        fail_msg("'%s': %s", text, err);
    return ns;
}

static void test_durations_are_exact_nanoseconds(void **state)
{
    (void)state;
    assert_int_equal(dur("250 ms"), 250000000LL);
    assert_int_equal(dur("90 s"), 90000000000LL);
    assert_int_equal(dur("1 h 30 min"), 5400000000000LL);
    assert_int_equal(dur("23 h 30 min"), 84600000000000LL);
    assert_int_equal(dur("14 d"), 1209600000000000LL);
    assert_int_equal(dur("0.5 s"), 500000000LL);
    assert_int_equal(dur("1 d 2 h 3 min 4 s 5 ms"), 93784005000000LL);
}

static void test_bad_durations(void **state)
{
    (void)state;
    int64_t ns;
    char err[256];
    int col;
    assert_int_equal(unit_parse_duration("5 mins", &ns, err, sizeof err, &col), -22);
    assert_non_null(strstr(err, "did you mean 'min'"));
    assert_int_equal(col, 2);
    assert_int_equal(unit_parse_duration("5", &ns, err, sizeof err, &col), -22);
    assert_non_null(strstr(err, "missing time unit"));
    assert_int_equal(unit_parse_duration("-5 s", &ns, err, sizeof err, &col), -22);
    assert_non_null(strstr(err, "negative"));
    assert_int_equal(unit_parse_duration("1e12 d", &ns, err, sizeof err, &col), -22);
    assert_non_null(strstr(err, "too long"));
    assert_int_equal(unit_parse_duration("", &ns, err, sizeof err, &col), -22);
}

static void test_format_duration(void **state)
{
    (void)state;
    char buf[64];
    unit_format_duration(5400000000000LL, buf, sizeof buf);
    assert_string_equal(buf, "1 h 30 min");
    unit_format_duration(0, buf, sizeof buf);
    assert_string_equal(buf, "0 s");
    unit_format_duration(93784000000000LL, buf, sizeof buf);
    assert_string_equal(buf, "1 d 2 h 3 min 4 s");
    unit_format_duration(450000LL, buf, sizeof buf);       /* a step just begun */
    assert_string_equal(buf, "0 s");
    unit_format_duration(59999999999LL, buf, sizeof buf);
    assert_string_equal(buf, "1 min");
}

/* What a technician types: uL/s, mL/d, °C, both micro signs, on every micro unit. */
static void test_units_people_type(void **state)
{
    (void)state;
    assert_float_equal(val("1 uL/s", Q_FLOW), 60.0, 1e-12);
    assert_float_equal(val("1 \xc2\xb5L/s", Q_FLOW), 60.0, 1e-12);
    assert_float_equal(val("1.44 mL/d", Q_FLOW), 1.0, 1e-12);
    assert_float_equal(val("37 \xc2\xb0""C", Q_TEMPERATURE), 37.0, 1e-12);
    assert_float_equal(val("60 \xc2\xb5L/h", Q_FLOW), 1.0, 1e-12);
    assert_float_equal(val("60 \xce\xbcL/h", Q_FLOW), 1.0, 1e-12);
    assert_float_equal(val("50 \xce\xbcL/min", Q_FLOW), 50.0, 1e-12);
    assert_float_equal(val("250 \xce\xbcL", Q_VOLUME), 250.0, 1e-12);
    assert_float_equal(val("500 \xce\xbcm", Q_LENGTH), 0.5, 1e-12);
    assert_float_equal(val("250 \xce\xbcg/L", Q_CONCENTRATION), 0.25, 1e-12);
}

/* A decimal comma gets the value with a point back as a suggestion. */
static void test_decimal_comma_did_you_mean(void **state)
{
    (void)state;
    expect_bad("1,5 uL/min", Q_FLOW, "did you mean 1.5 uL/min?", 1);
    expect_bad("2,25", Q_NONE, "did you mean 2.25?", 1);
    int64_t ns;
    char err[256];
    int col;
    assert_int_equal(unit_parse_duration("1,5 h", &ns, err, sizeof err, &col), -22);
    assert_non_null(strstr(err, "did you mean 1.5 h?"));
    assert_int_equal(col, 1);
    assert_int_equal(unit_parse_duration("2 days", &ns, err, sizeof err, &col), -22);
    assert_non_null(strstr(err, "did you mean 'd'"));
    expect_bad("37 C", Q_TEMPERATURE, "did you mean 'degC'", 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flow_units_convert_to_ul_per_min),
        cmocka_unit_test(test_pressure_units_convert_to_mbar),
        cmocka_unit_test(test_other_units),
        cmocka_unit_test(test_units_people_type),
        cmocka_unit_test(test_decimal_comma_did_you_mean),
        cmocka_unit_test(test_bad_values_name_the_problem),
        cmocka_unit_test(test_durations_are_exact_nanoseconds),
        cmocka_unit_test(test_bad_durations),
        cmocka_unit_test(test_format_duration),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
