/* The protocol loader: valid plans and malformed files, with exact positions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plan/plan.h"

#define S 1000000000LL

static struct rig rig;
static struct rig_device devs[3];
static struct rig_channel chans[3];

/* A rig with pumpA.flow (writable, 0..1000 uL/min), sensor.pressure and
 * valve.position (ports 1..6, whole numbers only). */
static int make_rig(void **state)
{
    (void)state;
    rig.name = "test";
    rig.devices = devs;
    rig.n_devices = 3;
    rig.channels = chans;
    rig.n_channels = 3;
    devs[0] = (struct rig_device){ .name = "pumpA", .n_chans = 1, .first_channel = 0 };
    devs[0].chans[0] = (struct driver_channel){ .name = "flow", .q = Q_FLOW, .unit = "uL/min",
                                                .readable = 1, .writable = 1, .min = 0, .max = 1000 };
    devs[1] = (struct rig_device){ .name = "sensor", .n_chans = 1, .first_channel = 1 };
    devs[1].chans[0] = (struct driver_channel){ .name = "pressure", .q = Q_PRESSURE, .unit = "mbar",
                                                .readable = 1, .min = NAN, .max = NAN };
    chans[0] = (struct rig_channel){ .name = "pumpA.flow", .device = 0, .q = Q_FLOW, .unit = "uL/min",
                                     .readable = true, .writable = true, .min = 0, .max = 1000 };
    chans[1] = (struct rig_channel){ .name = "sensor.pressure", .device = 1, .q = Q_PRESSURE,
                                     .unit = "mbar", .readable = true, .min = NAN, .max = NAN };
    devs[2] = (struct rig_device){ .name = "valve", .n_chans = 1, .first_channel = 2 };
    devs[2].chans[0] = (struct driver_channel){ .name = "position", .q = Q_NONE, .unit = "port",
                                                .readable = 1, .writable = 1, .integer = 1, .min = 1, .max = 6 };
    chans[2] = (struct rig_channel){ .name = "valve.position", .device = 2, .q = Q_NONE, .unit = "port",
                                     .readable = true, .writable = true, .integer = true, .min = 1, .max = 6 };
    return 0;
}

/* Load text; return the plan (or NULL) and leave diagnostics in d. */
static struct plan *load(const char *text, size_t len, struct diag *d)
{
    struct plan *p = NULL;
    diag_init(d);
    plan_load("p.yaml", text, len, &rig, &p, d);
    return p;
}

struct bad_case {
    const char *text;
    int line, col;
    const char *gist;
};

/* Every malformed protocol is rejected with its first error at line:col containing gist. */
static void test_malformed_protocols_name_line_column_and_problem(void **state)
{
    (void)state;
    static const struct bad_case cases[] = {
        { "", 1, 1, "empty protocol" },
        { "perfuse: 1\nname: x\nsteps:\n  - {set: {pumpA: 10 ul/mn}, for: 1 s}\n", 4, 22, "unknown unit 'ul/mn'" },
        { "perfuse: 1\nname: x\nsteps:\n  - {set: {pumpA: 10 ul/min}, for: 1 s}\n", 4, 22, "did you mean 'uL/min'" },
        { "perfuse: 1\nname: x\nsteps:\n  - {set: {pumpA: 10 mbar}, for: 1 s}\n", 4, 22, "is a pressure, but a flow" },
        { "perfuse: 1\nname: x\nsteps:\n  - {set: {pumpA: 10}, for: 1 s}\n", 4, 19, "missing unit" },
        { "perfuse: 1\nname: x\nsteps:\n  - {set: {pumpB: 10 uL/min}, for: 1 s}\n", 4, 12, "unknown channel 'pumpB'" },
        { "perfuse: 1\nname: x\nsteps:\n  - {set: {pumpA: 10 uL/min}, for: 0 s}\n", 4, 36, "longer than zero" },
        { "perfuse: 1\nname: x\nsteps:\n  - {set: {pumpA: 10 uL/min}}\n", 4, 5, "needs 'for'" },
        { "perfuse: 1\nname: x\nsteps:\n  - {set: {pumpA: 5000 uL/min}, for: 1 s}\n", 4, 19, "outside the limits" },
        { "perfuse: 1\nname: x\nsteps:\n  - {ramp: {pumpA: [1 uL/min, 2 uL/min]}}\n", 4, 6, "needs 'over'" },
        { "perfuse: 1\nname: x\nsteps:\n  - {set: {sensor.pressure: 1 mbar}, for: 1 s}\n", 4, 12, "cannot be set" },
        { "perfuse: 1\nname: x\nstesp:\n  - {set: {pumpA: 1 uL/min}, for: 1 s}\n", 3, 1, "did you mean 'steps'" },
        { "perfuse: 1\nname: x\nsteps:\n  - {set: {pumpA: 1 uL/min}, fro: 1 s}\n", 4, 30, "did you mean 'for'" },
        { "perfuse: 1\nname: x\nsteps:\n  - {repeat: 0, steps: [{set: {pumpA: 1 uL/min}, for: 1 s}]}\n", 4, 14, "out of range" },
        { "perfuse: 1\nname: x\nsteps:\n  - {repeat: 99999999, steps: [{set: {pumpA: 1 uL/min}, for: 1 s}]}\n", 4, 14, "out of range" },
        { "perfuse: 1\nname: x\nsteps:\n  - {set: {pumpA: 1 uL/min}, for: 1000000000 d}\n", 4, 35, "too long" },
        { "perfuse: 1\nname: x\nsteps:\n  - {set: {pumpA: 1 uL/min}, for: 1 s\n", 5, 1, "YAML syntax" },
        { "perfuse: 2\nname: x\nsteps:\n  - {set: {pumpA: 1 uL/min}, for: 1 s}\n", 1, 10, "unsupported format version" },
        { "name: x\nsteps:\n  - {set: {pumpA: 1 uL/min}, for: 1 s}\n", 1, 1, "missing 'perfuse: 1'" },
        { "perfuse: 1\nname: x\nsteps:\n  - {set: {pumpA: 1 uL/min}, ramp: {pumpA: [1 uL/min, 2 uL/min]}, for: 1 s}\n", 4, 30, "both 'set' and 'ramp'" },
        { "perfuse: 1\nname: x\nsteps:\n  - {wait_until: sensor.pressure => 5 mbar}\n", 4, 34, "unknown operator '=>'" },
        { "perfuse: 1\nname: x\nsteps:\n  - {wait_until: sensor.pressure >= 5 uL/min}\n", 4, 39, "is a flow, but a pressure" },
        { "perfuse: 1\nname: x\nsteps:\n  - waveform: {pumpA: {shape: sine, mean: 5 uL/min, amplitude: 1 uL/min}}\n    for: 1 s\n", 4, 23, "needs 'mean', 'amplitude' and 'period'" },
        { "perfuse: 1\nname: x\nsteps:\n  - waveform: {pumpA: {shape: saw, mean: 5 uL/min, amplitude: 1 uL/min, period: 1 s}}\n    for: 1 s\n", 4, 31, "sine, square, triangle or pulse" },
        { "perfuse: 1\nname: x\non_fault: explode\nsteps:\n  - {set: {pumpA: 1 uL/min}, for: 1 s}\n", 3, 11, "pause | continue | abort" },
        { "perfuse: 1\nname: x\nsteps: []\n", 3, 8, "'steps' is empty" },
        { "perfuse: 1\nname: x\nsteps:\n  - &x {set: {pumpA: 1 uL/min}, for: 1 s}\n  - *x\n", 4, 5, "aliases (*name) are not supported" },
        { "perfuse: 1\nname: x\nsteps:\n  - {set: &m {pumpA: 1 uL/min}, for: 1 s}\n  - {set: *m, for: 1 s}\n", 4, 11, "aliases (*name) are not supported" },
        { "- just\n- a list\n", 1, 1, "must be a mapping" },
        { "perfuse: 1\nname: x\nsteps:\n  - {set: {pumpA: 1 uL/min, pumpA: 2 uL/min}, for: 1 s}\n", 4, 29, "is given twice" },
        { "perfuse: 1\nname: [a, b]\nsteps:\n  - {set: {pumpA: 1 uL/min}, for: 1 s}\n", 2, 7, "must be a value" },
        { "perfuse: 1\nname: x\nsteps: {a: 1}\n", 3, 8, "'steps' must be a list" },
        { "perfuse: 1\nname: x\nsteps:\n  - {set: 5, for: 1 s}\n", 4, 11, "'set' must be a mapping" },
        { "perfuse: 1\nname: x\nsteps:\n  - {set: {pumpA: 1 uL/min}, for: -5 s}\n", 4, 35, "negative duration" },
        { "perfuse: 1\nname: x\nsteps:\n  - {ramp: {pumpA: [1 uL/min, 2000 uL/min]}, over: 1 h}\n", 4, 31, "outside the limits" },
        { "perfuse: 1\nname: x\nsteps:\n  - {ramp: {pumpA: 1 uL/min}, over: 1 h}\n", 4, 20, "needs [from, to]" },
        { "perfuse: 1\nname: x\nsteps:\n  - waveform: {pumpA: {shape: sine, mean: 5 uL/min, amplitude: -1 uL/min, period: 1 s}}\n    for: 1 s\n", 4, 64, "must not be negative" },
        { "perfuse: 1\nname: x\nsteps:\n  - {repeat: many, steps: [{set: {pumpA: 1 uL/min}, for: 1 s}]}\n", 4, 14, "whole number" },
        { "perfuse: 1\nname: x\nsteps:\n  - {set: {pumpA: 1e400 uL/min}, for: 1 s}\n", 4, 19, "out of range" },
        { "perfuse: 1\nname: x\nsteps:\n  - {set: {pumpA: 1 uL/min}, for: 5 mins}\n", 4, 37, "did you mean 'min'" },
        { "perfuse: 1\nname: x\nsteps:\n  - {wait_until: sensr.pressure > 5 mbar}\n", 4, 18, "did you mean 'sensor.pressure'" },
        { "perfuse: 1\nname: x\nsteps:\n  - {wait_until: sensor.pressure 5 mbar}\n", 4, 18, "needs an operator" },
        { "perfuse: 1\nname: x\nsteps:\n  - {prompt: \"\"}\n", 4, 14, "must be a value" },
        { "perfuse: 1\nname: x\nsteps:\n  - {prompt: go, timeout: 1 h, on_timeout: explode}\n", 4, 44, "abort, continue or pause" },
        { "perfuse: 1\nname: x\nlimits:\n  - {channel: chip9.pressure, max: 1 mbar}\nsteps:\n  - {set: {pumpA: 1 uL/min}, for: 1 s}\n", 4, 15, "unknown channel 'chip9.pressure'" },
        { "perfuse: 1\nname: x\nlimits:\n  - {channel: sensor.pressure, min: 9 mbar, max: 1 mbar}\nsteps:\n  - {set: {pumpA: 1 uL/min}, for: 1 s}\n", 4, 37, "min must be below max" },
        { "perfuse: 1\nname: x\nlimits:\n  - {channel: sensor.pressure, max: 1 mbar, action: panic}\nsteps:\n  - {set: {pumpA: 1 uL/min}, for: 1 s}\n", 4, 53, "alarm | pause | safe-stop" },
        { "perfuse: 1\nname: x\nsafe_state: {sensor.pressure: 0 mbar}\nsteps:\n  - {set: {pumpA: 1 uL/min}, for: 1 s}\n", 3, 14, "cannot be set" },
        { "perfuse: 1\nname: x\nsteps:\n\t- {set: {pumpA: 1 uL/min}, for: 1 s}\n", 4, 1, "tabs are not allowed for indentation in YAML; use spaces" },
        /* Range errors name their key; a decimal comma is explained, also inside { }. */
        { "perfuse: 1\nname: x\nsteps:\n  - {repeat: 0, steps: [{set: {pumpA: 1 uL/min}, for: 1 s}]}\n", 4, 14,
          "repeat: 0 is out of range (repeat must be from 1 to" },
        { "perfuse: 1\nname: x\nsteps:\n  - {set: {pumpA: 1,5 uL/min}, for: 1 s}\n", 4, 20,
          "did you mean 1.5 uL/min?" },
        { "perfuse: 1\nname: x\nsteps:\n  - set:\n      pumpA: 2,25 uL/min\n    for: 1 s\n", 5, 15,
          "'2,25 uL/min' has a decimal comma: did you mean 2.25 uL/min?" },
        { "perfuse: 1\nname: x\nsteps:\n  - {set: {pumpA: 1 uL/min}, for: 2 days}\n", 4, 37, "did you mean 'd'" },
        /* Letters of several bytes before the place do not move it. */
        { "perfuse: 1\nname: Sp\xc3\xbclung\nsteps:\n  - {name: \xc3\xa9\xc3\xa9, set: {pumpA: 1,5 uL/min}, for: 1 s}\n", 4, 30,
          "did you mean 1.5 uL/min?" },
        { "perfuse: 1\nname: Sp\xc3\xbclung\xc3\xa9\nsteps:\n\t- {set: {pumpA: 1 uL/min}, for: 1 s}\n", 4, 1,
          "tabs are not allowed for indentation" },
        { "perfuse: 1\nname: x\ndescription: [a]\nsteps:\n  - {set: {pumpA: 1 uL/min}, for: 1 s}\n", 3, 14,
          "'description' must be" },
        { "perfuse: 1\nname: x\nrig: bench-9\nsteps:\n  - {set: {pumpA: 1 uL/min}, for: 1 s}\n", 3, 6, "for rig 'bench-9'" },
        { "perfuse: 1\nname: x\nsteps:\n  - {set: {pumpA: 1 uL/min}, for: 20000 d}\n  - {set: {pumpA: 1 uL/min}, for: 20000 d}\n", 5, 5, "overflows" },
        { "perfuse: 1\nname: x\nsteps:\n  - {ramp: {pumpA: [1 uL/min, 2 uL/min]}, over: 1 h, update_rate: 0 Hz}\n", 4, 67, "between 0 and 100 Hz" },
        { "perfuse: 1\nname: x\nsteps:\n  - waveform: {pumpA: {shape: pulse, mean: 5 uL/min, amplitude: 1 uL/min, period: 1 s, duty: 150 %}}\n    for: 1 s\n", 4, 94, "duty must be between" },
        /* A valve's port is a whole number: no fractions, no ramps or sines through them. */
        { "perfuse: 1\nname: x\nsteps:\n  - {set: {valve: 2.5}, for: 1 s}\n", 4, 19, "valve.position takes whole numbers only" },
        { "perfuse: 1\nname: x\nsafe_state: {valve: 1.5}\nsteps:\n  - {set: {valve: 2}, for: 1 s}\n", 3, 21, "whole numbers only" },
        { "perfuse: 1\nname: x\nsteps:\n  - {ramp: {valve: [1, 4]}, over: 1 s}\n", 4, 13, "would pass through fractions" },
        { "perfuse: 1\nname: x\nsteps:\n  - waveform: {valve: {shape: sine, mean: 3, amplitude: 1, period: 1 s}}\n    for: 1 s\n", 4, 31, "sine waveform on valve.position" },
        { "perfuse: 1\nname: x\nsteps:\n  - waveform: {valve: {shape: square, mean: 2.5, amplitude: 0.5, period: 1 s}}\n    for: 1 s\n", 4, 45, "holds its mean (2.5)" },
        /* Text a run keeps whole: too long is an error where it is written. */
        { "perfuse: 1\nname: x\nsteps:\n  - {name: \"" "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\xc3\xa9"
          "\", set: {pumpA: 1 uL/min}, for: 1 s}\n", 4, 12, "is 97 bytes long; at most 96 bytes fit" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct diag d;
        struct plan *p = load(cases[i].text, strlen(cases[i].text), &d);
        if (p != NULL || d.errors == 0 || d.n == 0)
            fail_msg("case %zu was accepted:\n%s", i, cases[i].text);
        const struct diag_msg *m = &d.msgs[0];
        if (getenv("SHOW_DIAG"))
            fprintf(stderr, "case %zu: %d:%d %s\n", i, m->line, m->col, m->text);
        else if (m->line != cases[i].line || m->col != cases[i].col || strstr(m->text, cases[i].gist) == NULL) {
            diag_print(&d, stderr);
            fail_msg("case %zu: got %d:%d '%s', want %d:%d '...%s...'", i, m->line, m->col, m->text,
                     cases[i].line, cases[i].col, cases[i].gist);
        }
        diag_free(&d);
    }
}

/* Several errors in one file are all reported in one pass. */
static void test_all_errors_are_reported(void **state)
{
    (void)state;
    const char *text = "perfuse: 1\nname: x\nsteps:\n"
                       "  - {set: {pumpA: 10 ul/mn}, for: 1 s}\n"
                       "  - {set: {pumpB: 1 uL/min}, for: 1 s}\n"
                       "  - {set: {pumpA: 1 uL/min}, for: 5 mins}\n";
    struct diag d;
    assert_null(load(text, strlen(text), &d));
    assert_int_equal(d.errors, 3);
    assert_int_equal(d.msgs[0].line, 4);
    assert_int_equal(d.msgs[1].line, 5);
    assert_int_equal(d.msgs[2].line, 6);
    diag_free(&d);
}

/* Binary garbage is refused cleanly. */
static void test_binary_garbage_is_refused(void **state)
{
    (void)state;
    const char bin[] = "\x7f" "ELF\x02\x01\x01\x00\x00\x00garbage";
    struct diag d;
    assert_null(load(bin, sizeof bin - 1, &d));
    assert_true(d.errors > 0);
    diag_free(&d);
}

/* Repeats nested deeper than the bound are refused, not recursed into. */
static void test_deep_nesting_is_bounded(void **state)
{
    (void)state;
    char text[8192] = "perfuse: 1\nname: x\nsteps:\n";
    char indent[256] = "  ";
    for (int i = 0; i < 20; i++) {
        size_t n = strlen(text);
        snprintf(text + n, sizeof text - n, "%s- repeat: 2\n%s  steps:\n", indent, indent);
        strcat(indent, "    ");
    }
    size_t n = strlen(text);
    snprintf(text + n, sizeof text - n, "%s- {set: {pumpA: 1 uL/min}, for: 1 s}\n", indent);
    struct diag d;
    assert_null(load(text, strlen(text), &d));
    int found = 0;
    for (size_t i = 0; i < d.n; i++)
        found |= strstr(d.msgs[i].text, "nested too deeply") != NULL;
    assert_true(found);
    diag_free(&d);
}

/* 60 KB of '[' is refused at the nesting bound, in linear time. */
static void test_flow_nesting_is_bounded(void **state)
{
    (void)state;
    size_t n = 60000;
    char *text = malloc(n + 64);
    assert_non_null(text);
    int k = snprintf(text, 64, "perfuse: 1\nname: x\nsteps: ");
    memset(text + k, '[', n);
    text[k + n] = '\n';
    struct diag d;
    assert_null(load(text, (size_t)k + n + 1, &d));
    assert_int_equal(d.errors, 1);
    assert_int_equal(d.msgs[0].line, 3);
    assert_non_null(strstr(d.msgs[0].text, "nested more than 64 levels"));
    diag_free(&d);
    free(text);
}

/* Thousands of errors: the first DIAG_MAX_KEPT are kept, the rest counted,
 * and the joined text ends with how many were left out. */
static void test_diagnostics_are_capped(void **state)
{
    (void)state;
    size_t cap = 64 * 1024, n = 0;
    char *text = malloc(cap);
    assert_non_null(text);
    n += (size_t)snprintf(text, cap, "perfuse: 1\nname: x\nsteps:\n  - for: 1 s\n    set: {");
    for (int i = 0; i < 2000; i++)
        n += (size_t)snprintf(text + n, cap - n, "%sno%d: 1", i ? ", " : "", i);
    n += (size_t)snprintf(text + n, cap - n, "}\n");
    struct diag d;
    assert_null(load(text, n, &d));
    assert_int_equal(d.errors, 2000);
    assert_int_equal(d.n, DIAG_MAX_KEPT);
    assert_int_equal(d.omitted, 2000 - DIAG_MAX_KEPT);
    char *all = diag_join(&d);
    assert_non_null(all);
    assert_non_null(strstr(all, "unknown channel 'no0'"));
    assert_null(strstr(all, "unknown channel 'no50'"));
    char want[64];
    snprintf(want, sizeof want, "\n... and %d more", 2000 - DIAG_MAX_KEPT);
    assert_non_null(strstr(all, want));
    free(all);
    diag_free(&d);
    free(text);
}

/* A step name of 96 bytes and a prompt of 200, ending in a two-byte
 * character, fit and are kept whole; one byte more is refused with its place. */
static void test_names_and_prompts_that_fit_are_kept_whole(void **state)
{
    (void)state;
    char name[97], prompt[201], text[1024];
    memset(name, 'n', 94);
    memcpy(name + 94, "\xc3\xa9", 3);
    memset(prompt, 'p', 198);
    memcpy(prompt + 198, "\xc3\xa9", 3);
    snprintf(text, sizeof text, "perfuse: 1\nname: x\nsteps:\n  - {name: %s, set: {pumpA: 1 uL/min}, for: 1 s}\n"
             "  - {prompt: %s}\n", name, prompt);
    struct diag d;
    struct plan *p = load(text, strlen(text), &d);
    if (p == NULL) {
        diag_print(&d, stderr);
        fail();
    }
    assert_string_equal(p->root.steps[0].name, name);
    assert_string_equal(p->root.steps[1].prompt, prompt);
    plan_free(p);
    diag_free(&d);
    snprintf(text, sizeof text, "perfuse: 1\nname: x\nsteps:\n  - {prompt: q%s}\n", prompt);
    p = load(text, strlen(text), &d);
    assert_null(p);
    assert_int_equal(d.msgs[0].line, 4);
    assert_int_equal(d.msgs[0].col, 14);
    assert_non_null(strstr(d.msgs[0].text, "the 'prompt' text is 201 bytes long; at most 200 bytes fit"));
    diag_free(&d);
}

/* A protocol's description and a step's note are kept; units people type work. */
static void test_description_note_and_units_people_type(void **state)
{
    (void)state;
    static const char text[] = "perfuse: 1\nname: x\ndescription: |\n  Gut-on-chip, week 1.\n  Caco-2.\n"
        "steps:\n  - {set: {pumpA: 1 \xc2\xb5L/h}, for: 1 s, note: seeding at low shear}\n"
        "  - {set: {pumpA: 0.5 uL/s}, for: 1 s}\n  - {set: {pumpA: 1.44 mL/d}, for: 1 s}\n"
        "  - {set: {pumpA: 60 \xce\xbcL/h}, for: 1 s}\n";
    struct diag d;
    struct plan *p = load(text, strlen(text), &d);
    if (p == NULL) {
        diag_print(&d, stderr);
        fail();
    }
    assert_string_equal(p->description, "Gut-on-chip, week 1.\nCaco-2.\n");
    assert_string_equal(p->root.steps[0].note, "seeding at low shear");
    assert_null(p->root.steps[1].note);
    assert_float_equal(p->root.steps[0].targets[0].v0, 1.0 / 60, 1e-12);
    assert_float_equal(p->root.steps[1].targets[0].v0, 30, 1e-12);
    assert_float_equal(p->root.steps[2].targets[0].v0, 1, 1e-12);
    assert_float_equal(p->root.steps[3].targets[0].v0, 1, 1e-12);
    plan_free(p);
    diag_free(&d);
}

/* Totals are exact sums, including nested repeats. */
static void test_total_duration_is_the_exact_sum(void **state)
{
    (void)state;
    const char *text = "perfuse: 1\nname: x\nsteps:\n"
                       "  - {set: {pumpA: 50 uL/min}, for: 5 min}\n"
                       "  - {ramp: {pumpA: [1 uL/min, 10 uL/min]}, over: 6 h}\n"
                       "  - repeat: 14\n"
                       "    steps:\n"
                       "      - {set: {pumpA: 10 uL/min}, for: 23 h 30 min}\n"
                       "      - {set: {pumpA: 100 uL/min}, for: 10 min}\n"
                       "      - {prompt: Replace the reservoir, timeout: 2 h, on_timeout: continue}\n"
                       "  - waveform: {pumpA: {shape: pulse, mean: 10 uL/min, amplitude: 5 uL/min, period: 1 s, duty: 20 %}}\n"
                       "    for: 1 h\n";
    struct diag d;
    struct plan *p = load(text, strlen(text), &d);
    if (p == NULL) {
        diag_print(&d, stderr);
        fail();
    }
    int64_t want = 5 * 60 * S + 6 * 3600 * S + 14 * (23 * 3600 * S + 30 * 60 * S + 10 * 60 * S) + 3600 * S;
    assert_int_equal(p->total_ns, want);
    assert_true(p->open_ended);
    assert_int_equal(p->root.steps[2].count, 14);
    assert_float_equal(p->root.steps[3].targets[0].duty, 0.2, 1e-12);
    plan_free(p);
    diag_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_malformed_protocols_name_line_column_and_problem),
        cmocka_unit_test(test_all_errors_are_reported),
        cmocka_unit_test(test_binary_garbage_is_refused),
        cmocka_unit_test(test_deep_nesting_is_bounded),
        cmocka_unit_test(test_flow_nesting_is_bounded),
        cmocka_unit_test(test_diagnostics_are_capped),
        cmocka_unit_test(test_total_duration_is_the_exact_sum),
        cmocka_unit_test(test_names_and_prompts_that_fit_are_kept_whole),
        cmocka_unit_test(test_description_note_and_units_people_type),
    };
    return cmocka_run_group_tests(tests, make_rig, NULL);
}
