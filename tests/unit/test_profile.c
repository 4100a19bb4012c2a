/*
 * Modbus profiles: every shipped profile loads, and malformed ones are
 * refused with every error at its exact FILE:LINE:COLUMN in one pass.
 * Run from the repository root (make unit does).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <glob.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "drivers/profile.h"

/* ------------------------------------------------------------------------ */
/* The shipped profiles                                                     */
/* ------------------------------------------------------------------------ */

static void test_every_shipped_profile_loads(void **state)
{
    (void)state;
    glob_t g;
    assert_int_equal(glob("protocols/profiles/*.yaml", 0, NULL, &g), 0);
    assert_true(g.gl_pathc >= 4);
    for (size_t i = 0; i < g.gl_pathc; i++) {
        struct diag d;
        diag_init(&d);
        struct profile *p = NULL;
        int rc = profile_load(g.gl_pathv[i], &p, &d);
        if (rc != 0) {
            char *msg = diag_join(&d);
            fail_msg("%s: %s", g.gl_pathv[i], msg ? msg : "?");
        }
        assert_int_equal(d.errors, 0);
        assert_non_null(p);
        assert_true(p->n_regs >= 1);
        profile_free(p);
        diag_free(&d);
    }
    globfree(&g);
}

/* Load a shipped profile that must be valid. */
static struct profile *load_ok(const char *path)
{
    struct diag d;
    diag_init(&d);
    struct profile *p = NULL;
    assert_int_equal(profile_load(path, &p, &d), 0);
    diag_free(&d);
    return p;
}

static void test_shipped_profiles_mean_what_they_say(void **state)
{
    (void)state;
    struct profile *p = load_ok("protocols/profiles/pressure-flow.yaml");
    assert_string_equal(p->name, "pressure-flow");
    assert_int_equal(p->n_regs, 2);
    const struct profile_reg *r = &p->regs[0];
    assert_string_equal(r->name, "pressure");
    assert_int_equal(r->table, MB_INPUT);
    assert_int_equal(r->address, 0);
    assert_int_equal(r->type, MB_F32);
    assert_int_equal(r->order, MB_ABCD);
    assert_int_equal(r->q, Q_PRESSURE);
    assert_string_equal(r->unit, "mbar");
    assert_true(r->readable && !r->writable);
    assert_float_equal(r->min, -100, 0);
    assert_float_equal(r->max, 2000, 0);
    assert_float_equal(r->sample_hz, 10, 0);
    assert_int_equal(p->regs[1].address, 2);
    assert_int_equal(p->regs[1].q, Q_FLOW);
    profile_free(p);

    p = load_ok("protocols/profiles/rotary-valve.yaml");
    assert_int_equal(p->n_regs, 2);
    assert_int_equal(p->regs[0].table, MB_HOLDING);
    assert_int_equal(p->regs[0].type, MB_U16);
    assert_true(p->regs[0].readable && p->regs[0].writable);
    assert_int_equal(p->regs[0].q, Q_NONE);
    assert_string_equal(p->regs[0].unit, "port");
    assert_float_equal(p->regs[0].min, 1, 0);
    assert_float_equal(p->regs[0].max, 6, 0);
    assert_int_equal(p->regs[1].table, MB_DISCRETE);
    assert_int_equal(p->regs[1].type, MB_BOOL);
    assert_string_equal(p->regs[1].unit, "");
    assert_true(isnan(p->regs[1].min) && isnan(p->regs[1].max));
    profile_free(p);

    p = load_ok("protocols/profiles/temperature-controller.yaml");
    assert_int_equal(p->regs[0].type, MB_I16);
    assert_float_equal(p->regs[0].scale, 0.1, 0);
    assert_float_equal(p->regs[0].offset, 0, 0);
    assert_int_equal(p->regs[1].table, MB_HOLDING);
    assert_float_equal(p->regs[1].sample_hz, 0.2, 0);
    profile_free(p);

    p = load_ok("protocols/profiles/chip-sensor-o2.yaml");
    assert_int_equal(p->n_regs, 3);
    assert_int_equal(p->regs[2].q, Q_PERCENT);
    assert_float_equal(p->regs[2].scale, 0.01, 0);
    profile_free(p);
}

static void test_units_convert_ranges_to_canonical(void **state)
{
    (void)state;
    char dir[] = "/tmp/perfuse-profile-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/kpa.yaml", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("profile: kpa\n"
          "channels:\n"
          "  p: {table: holding, address: 10, type: u32, order: dcba, quantity: pressure,\n"
          "      unit: kPa, access: w, range: [0, 20], scale: 0.001, offset: -1}\n", f);
    fclose(f);
    struct profile *p = load_ok(path);
    assert_int_equal(p->regs[0].order, MB_DCBA);
    assert_float_equal(p->regs[0].unit_factor, 10, 0);
    assert_float_equal(p->regs[0].min, 0, 0);
    assert_float_equal(p->regs[0].max, 200, 1e-9);     /* 20 kPa = 200 mbar */
    assert_false(p->regs[0].readable);
    assert_true(p->regs[0].writable);
    assert_float_equal(p->regs[0].sample_hz, 0, 0);     /* write-only: not sampled */
    assert_float_equal(p->regs[0].offset, -1, 0);
    profile_free(p);
    unlink(path);
    rmdir(dir);
}

/* ------------------------------------------------------------------------ */
/* Malformed profiles                                                       */
/* ------------------------------------------------------------------------ */

/* One expected error: its position and a piece of its message. */
struct want {
    int line, col;
    const char *gist;
};

#define MAX_WANT 6

/* A malformed profile and every error it must give, in order. */
struct bad_case {
    const char *name;
    const char *text;
    struct want want[MAX_WANT];
};

#define HEAD "profile: t\nchannels:\n"

static const struct bad_case bad_cases[] = {
    { "misspelled-key",
      HEAD "  p:\n    table: input\n    adress: 0\n    type: u16\n    quantity: plain number\n",
      { { 5, 5, "unknown key 'adress' in a profile channel (did you mean 'address'?)" },
        { 3, 3, "channel 'p' needs 'address'" } } },
    { "bad-table",
      HEAD "  p:\n    table: holdng\n    address: 0\n    type: u16\n    quantity: plain number\n",
      { { 4, 12, "'table' must be coil, discrete, input or holding, found 'holdng' (did you mean 'holding'?)" } } },
    { "bool-register",
      HEAD "  p: {table: holding, address: 0, type: bool, quantity: plain number}\n",
      { { 3, 41, "bool is for coils and discrete inputs; a holding register is u16, i16, u32, i32 or f32" } } },
    { "float-coil",
      HEAD "  p: {table: coil, address: 0, type: f32, quantity: plain number}\n",
      { { 3, 38, "a coil holds one bit: type must be bool, found 'f32'" } } },
    { "writable-input",
      HEAD "  p: {table: input, address: 0, type: u16, quantity: plain number, access: rw}\n",
      { { 3, 76, "input registers are read-only (access: r); a writable value is a holding register" } } },
    { "order-on-16-bit",
      HEAD "  p: {table: input, address: 0, type: i16, order: cdab, quantity: plain number}\n",
      { { 3, 51, "'order' applies only to 32-bit types (u32, i32, f32), not to i16" } } },
    { "bad-order",
      HEAD "  p: {table: input, address: 0, type: f32, order: abdc, quantity: plain number}\n",
      { { 3, 51, "'order' must be abcd, cdab, badc or dcba, found 'abdc'" } } },
    { "unit-of-another-quantity",
      HEAD "  p: {table: input, address: 0, type: f32, quantity: pressure, unit: uL/min}\n",
      { { 3, 70, "unit 'uL/min' is a flow unit, not a pressure unit (expected" } } },
    { "misspelled-unit",
      HEAD "  p: {table: input, address: 0, type: f32, quantity: pressure, unit: mbr}\n",
      { { 3, 70, "unknown unit 'mbr' for a pressure (did you mean 'mbar'?" } } },
    { "unit-on-a-plain-number",
      HEAD "  p: {table: holding, address: 0, type: u16, quantity: plain number, unit: mbar}\n",
      { { 3, 76, "unit 'mbar' is a pressure unit, but the quantity is a plain number" } } },
    { "misspelled-quantity",
      HEAD "  p: {table: input, address: 0, type: f32, quantity: presure, unit: mbar}\n",
      { { 3, 54, "'quantity' must be flow, pressure, temperature, volume, length, percentage, pH, concentration or plain number, found 'presure' (did you mean 'pressure'?)" } } },
    { "range-reversed",
      HEAD "  p: {table: input, address: 0, type: u16, quantity: plain number, range: [10, 5]}\n",
      { { 3, 75, "range min must be below max, found [10, 5]" } } },
    { "range-not-a-pair",
      HEAD "  p: {table: input, address: 0, type: u16, quantity: plain number, range: [10]}\n"
           "  q: {table: input, address: 1, type: u16, quantity: plain number, range: 10}\n"
           "  r: {table: input, address: 2, type: u16, quantity: plain number, range: [a, 5]}\n",
      { { 3, 75, "'range' must be [min, max], found a list of 1" },
        { 4, 75, "'range' must be [min, max], found text" },
        { 5, 76, "range min must be a number, found 'a'" } } },
    { "missing-type-quantity-unit",
      HEAD "  p: {table: input, address: 0}\n"
           "  q: {table: input, address: 1, type: u16, quantity: flow}\n",
      { { 3, 3, "channel 'p' needs 'type' (u16, i16, u32, i32 or f32)" },
        { 3, 3, "channel 'p' needs 'quantity'" },
        { 4, 3, "channel 'q' needs 'unit' (the unit of the scaled value, one of nL/min" } } },
    { "address-and-scale",
      HEAD "  p: {table: input, address: 70000, type: u16, quantity: plain number, scale: 0}\n"
           "  q: {table: input, address: x, type: u16, quantity: plain number, scale: big}\n",
      { { 3, 30, "'address' must be a whole number from 0 to 65535, found '70000'" },
        { 3, 79, "'scale' must not be 0" },
        { 4, 30, "'address' must be a whole number from 0 to 65535, found 'x'" },
        { 4, 75, "'scale' must be a number, found 'big'" } } },
    { "duplicate-channel",
      HEAD "  p: {table: input, address: 0, type: u16, quantity: plain number}\n"
           "  p: {table: input, address: 1, type: u16, quantity: plain number}\n",
      { { 4, 3, "duplicate channel 'p'" } } },
    { "write-only-sampled",
      HEAD "  p: {table: holding, address: 0, type: u16, quantity: plain number, access: w, sample_hz: 5}\n",
      { { 3, 92, "a write-only channel is not sampled" } } },
    { "bad-root",
      "profil: t\nchanels:\n  p: {}\n",
      { { 1, 1, "unknown key 'profil' in a profile (did you mean 'profile'?)" },
        { 2, 1, "unknown key 'chanels' in a profile (did you mean 'channels'?)" },
        { 1, 1, "a profile needs 'channels:'" } } },
    { "channels-not-a-mapping",
      "profile: t\nchannels: [a, b]\n",
      { { 2, 11, "'channels' must be a mapping (key: value), found a list" } } },
    { "no-channels",
      "profile: t\nchannels: {}\n",
      { { 2, 1, "'channels' is empty" } } },
    { "channel-not-a-mapping",
      HEAD "  p: 3\n",
      { { 3, 6, "channel 'p' must be a mapping (key: value), found text" } } },
    { "unknown-table-does-not-cascade",
      HEAD "  p: {table: inpt, address: 0, type: bool, quantity: plain number, access: rw}\n",
      { { 3, 14, "found 'inpt' (did you mean 'input'?)" } } },
    { "32-bit-past-the-end",
      HEAD "  p: {table: input, address: 65535, type: f32, quantity: plain number}\n",
      { { 3, 30, "a 32-bit value at address 65535 would run past the last register" } } },
    { "yaml-syntax",
      HEAD "  p: {table: input,\n",
      { { 4, 1, "YAML syntax" } } },
    { "empty-file",
      "",
      { { 1, 1, "empty profile" } } },
    { "not-a-mapping",
      "- a\n- b\n",
      { { 1, 1, "a profile must be a mapping (key: value), found a list" } } },
};

/* Write text to dir/name.yaml; returns the path in buf. */
static const char *write_profile(const char *dir, const char *name, const char *text, char *buf,
                                 size_t len)
{
    snprintf(buf, len, "%s/%s.yaml", dir, name);
    FILE *f = fopen(buf, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0 || text[0] == '\0', 1);
    assert_int_equal(fclose(f), 0);
    return buf;
}

/* Check that loading c gives exactly its errors. */
static void check_bad_case(const char *dir, const struct bad_case *c)
{
    char path[256];
    write_profile(dir, c->name, c->text, path, sizeof path);
    struct diag d;
    diag_init(&d);
    struct profile *p = NULL;
    int rc = profile_load(path, &p, &d);
    char *all = diag_join(&d);
    if (rc != -EINVAL || p != NULL)
        fail_msg("%s: loaded (rc %d) but should be refused", c->name, rc);
    size_t n_want = 0;
    while (n_want < MAX_WANT && c->want[n_want].gist != NULL)
        n_want++;
    if (d.n != n_want || d.errors != (int)n_want)
        fail_msg("%s: %zu errors, want %zu:\n%s", c->name, d.n, n_want, all ? all : "");
    for (size_t i = 0; i < n_want; i++) {
        const struct diag_msg *m = &d.msgs[i];
        const struct want *w = &c->want[i];
        if (strcmp(m->file, path) != 0 || m->line != w->line || m->col != w->col ||
            strstr(m->text, w->gist) == NULL)
            fail_msg("%s: error %zu is\n  %s:%d:%d: %s\nwant\n  %s:%d:%d: ...%s...", c->name, i,
                     m->file, m->line, m->col, m->text, path, w->line, w->col, w->gist);
    }
    free(all);
    diag_free(&d);
    unlink(path);
}

static void test_malformed_profiles_report_every_error_at_its_position(void **state)
{
    (void)state;
    char dir[] = "/tmp/perfuse-profile-XXXXXX";
    assert_non_null(mkdtemp(dir));
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++)
        check_bad_case(dir, &bad_cases[i]);
    rmdir(dir);
}

static void test_errors_print_compiler_style(void **state)
{
    (void)state;
    char dir[] = "/tmp/perfuse-profile-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], want[512];
    write_profile(dir, "t", HEAD "  p:\n    table: holdng\n    address: 0\n    type: u16\n"
                  "    quantity: plain number\n", path, sizeof path);
    struct diag d;
    diag_init(&d);
    struct profile *p = NULL;
    assert_int_equal(profile_load(path, &p, &d), -EINVAL);
    char *all = diag_join(&d);
    assert_non_null(all);
    snprintf(want, sizeof want, "%s:4:12: error: 'table' must be coil, discrete, input or holding, "
             "found 'holdng' (did you mean 'holding'?)", path);
    assert_string_equal(all, want);
    free(all);
    diag_free(&d);
    unlink(path);
    rmdir(dir);
}

static void test_a_missing_file_is_reported(void **state)
{
    (void)state;
    struct diag d;
    diag_init(&d);
    struct profile *p = NULL;
    assert_int_equal(profile_load("/nonexistent/profile.yaml", &p, &d), -ENOENT);
    assert_null(p);
    assert_int_equal(d.errors, 1);
    assert_string_equal(d.msgs[0].file, "/nonexistent/profile.yaml");
    assert_non_null(strstr(d.msgs[0].text, "No such file"));
    diag_free(&d);
    diag_init(&d);
    assert_int_equal(profile_load("protocols/profiles", &p, &d), -EINVAL);
    assert_non_null(strstr(d.msgs[0].text, "not a regular file"));
    diag_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_shipped_profile_loads),
        cmocka_unit_test(test_shipped_profiles_mean_what_they_say),
        cmocka_unit_test(test_units_convert_ranges_to_canonical),
        cmocka_unit_test(test_malformed_profiles_report_every_error_at_its_position),
        cmocka_unit_test(test_errors_print_compiler_style),
        cmocka_unit_test(test_a_missing_file_is_reported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
