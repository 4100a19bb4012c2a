/* Claims: what a protocol holds of the rig, overlaps named with their holder, run names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plan/claims.h"
#include "plan/plan.h"
#include "plan/rig.h"

static struct rig *rig;

/* The simulated rig as perfusectl check sees it. */
static int load_rig(void **state)
{
    (void)state;
    struct diag d;
    diag_init(&d);
    if (rig_load("protocols/rigs/sim.yaml", &rig, &d) != 0) {
        diag_print(&d, stderr);
        return -1;
    }
    diag_free(&d);
    return 0;
}

static int free_rig(void **state)
{
    (void)state;
    rig_free(rig);
    return 0;
}

/* The claim of a protocol text (which must load). */
static void claim(const char *text, struct claims *c)
{
    struct diag d;
    diag_init(&d);
    struct plan *p = NULL;
    if (plan_load("p.yaml", text, strlen(text), rig, &p, &d) != 0) {
        diag_print(&d, stderr);
        fail_msg("the protocol did not load");
    }
    diag_free(&d);
    assert_int_equal(claims_of_plan(p, rig, c), 0);
    plan_free(p);
}

static bool writes(const struct claims *c, const char *name)
{
    int ch = rig_find_channel(rig, name);
    assert_true(ch >= 0);
    return c->writes[ch];
}

static bool reads(const struct claims *c, const char *name)
{
    int ch = rig_find_channel(rig, name);
    assert_true(ch >= 0);
    return c->reads[ch];
}

/* Steps inside repeats, the safe state and whole devices are claimed; sensors are only read. */
static void test_claim_covers_steps_safe_state_and_devices(void **state)
{
    (void)state;
    struct claims c;
    claim("perfuse: 1\nname: a\n"
          "safe_state: {valve1.position: 1}\n"
          "limits:\n  - {channel: chip2.pressure, max: 300 mbar, action: safe-stop}\n"
          "steps:\n"
          "  - repeat: 2\n    steps:\n"
          "      - {set: {pump1: 10 uL/min}, for: 1 s}\n"
          "  - {set: {incubator.setpoint: 37 degC}, for: 1 s}\n"
          "  - {wait_until: chip1.o2 > 1 %, timeout: 10 s}\n", &c);
    assert_true(writes(&c, "pump1.flow"));
    assert_true(writes(&c, "valve1.position"));
    assert_true(writes(&c, "incubator.setpoint"));
    assert_false(writes(&c, "pump2.flow"));
    assert_false(writes(&c, "chip1.o2"));
    assert_true(reads(&c, "chip1.o2"));
    assert_true(reads(&c, "chip2.pressure"));
    assert_false(reads(&c, "chip1.pressure"));
    char list[256];
    claims_list(&c, rig, list, sizeof list);
    assert_non_null(strstr(list, "pump1.flow"));
    assert_non_null(strstr(list, "valve1.position"));
    assert_null(strstr(list, "pump2"));
    claims_free(&c);
    assert_null(c.writes);
}

/* Two pumps on one line do not overlap; the same pump does, named with its holder. */
static void test_overlap_names_channel_and_holder(void **state)
{
    (void)state;
    struct claims a, b, c;
    claim("perfuse: 1\nname: a\nsteps:\n  - {set: {pump1: 10 uL/min}, for: 1 s}\n", &a);
    claim("perfuse: 1\nname: b\nsteps:\n  - {set: {pump2: 10 uL/min}, for: 1 s}\n"
          "  - {wait_until: chip1.pressure > 1 mbar}\n", &b);
    claim("perfuse: 1\nname: c\nsafe_state: {pump2: 0 uL/min}\n"
          "steps:\n  - {wait_until: chip1.pressure > 1 mbar}\n", &c);
    assert_int_equal(claims_overlap(&a, &b), -1);
    assert_int_equal(claims_overlap(&a, &c), -1);
    int ch = claims_overlap(&b, &c);
    assert_int_equal(ch, rig_find_channel(rig, "pump2.flow"));
    char msg[200];
    claims_conflict_message(rig, ch, "kidney-dose-10", "3f2a9c0d", msg, sizeof msg);
    assert_string_equal(msg, "pump2.flow is held by run kidney-dose-10 (3f2a) until it ends");
    assert_int_equal(claims_count(&a), 1);
    claims_free(&a);
    claims_free(&b);
    claims_free(&c);
}

/* What a run records: its claims, the sensors it names and its 'record:' (default: all). */
static void test_recorded_channels(void **state)
{
    (void)state;
    struct claims c;
    bool keep[64];
    assert_true(rig->n_channels <= 64);
    const char *text = "perfuse: 1\nname: r\nrecord: [incubator.temp]\n"
                       "steps:\n  - {set: {pump1: 1 uL/min}, for: 1 s}\n"
                       "  - {wait_until: chip1.o2 > 1 %, timeout: 1 s}\n";
    struct diag d;
    diag_init(&d);
    struct plan *p = NULL;
    assert_int_equal(plan_load("p.yaml", text, strlen(text), rig, &p, &d), 0);
    assert_int_equal(claims_of_plan(p, rig, &c), 0);
    claims_recorded(p, &c, keep);
    for (size_t i = 0; i < rig->n_channels; i++) {
        const char *n = rig->channels[i].name;
        bool want = !strcmp(n, "pump1.flow") || !strcmp(n, "chip1.o2") || !strcmp(n, "incubator.temp");
        assert_int_equal(keep[i], want);
    }
    plan_free(p);
    claims_free(&c);
    /* Without 'record:' every channel; a bad entry is an error at its place. */
    claim("perfuse: 1\nname: r\nsteps:\n  - {set: {pump1: 1 uL/min}, for: 1 s}\n", &c);
    text = "perfuse: 1\nname: r\nsteps:\n  - {set: {pump1: 1 uL/min}, for: 1 s}\n";
    assert_int_equal(plan_load("p.yaml", text, strlen(text), rig, &p, &d), 0);
    claims_recorded(p, &c, keep);
    for (size_t i = 0; i < rig->n_channels; i++)
        assert_true(keep[i]);
    plan_free(p);
    claims_free(&c);
    text = "perfuse: 1\nname: r\nrecord: [chip9.o2]\nsteps:\n  - {set: {pump1: 1 uL/min}, for: 1 s}\n";
    p = NULL;
    assert_int_not_equal(plan_load("p.yaml", text, strlen(text), rig, &p, &d), 0);
    assert_null(p);
    assert_int_equal(d.msgs[d.n - 1].line, 3);
    assert_non_null(strstr(d.msgs[d.n - 1].text, "chip9.o2"));
    diag_free(&d);
}

/* Run names: valid ones pass, others say why; a default is derived from the protocol. */
static void test_run_names(void **state)
{
    (void)state;
    char err[128], buf[64];
    assert_true(claims_name_valid("kidney-dose-10", err, sizeof err));
    assert_false(claims_name_valid("", err, sizeof err));
    assert_false(claims_name_valid("a b", err, sizeof err));
    assert_non_null(strstr(err, "' '"));
    assert_false(claims_name_valid("0123456789012345678901234567890123", err, sizeof err));
    claims_default_name("Kidney proximal tubule: dose 10", buf, sizeof buf);
    assert_string_equal(buf, "kidney-proximal-tubule-dose-10");
    assert_true(claims_name_valid(buf, err, sizeof err));
    claims_default_name("  ***  ", buf, sizeof buf);
    assert_string_equal(buf, "run");
    claims_default_name("a very long protocol name that goes on and on", buf, sizeof buf);
    assert_true(strlen(buf) <= CLAIMS_MAX_NAME);
    assert_true(claims_name_valid(buf, err, sizeof err));
}

/* A regulated channel is claimed with its regulator's actuator, so that a protocol
 * setting that actuator directly overlaps the one holding the regulator. */
static void test_regulated_channel_claims_actuator(void **state)
{
    (void)state;
    struct claims a, b;
    claim("perfuse: 1\nname: a\nsteps:\n  - {set: {chip3.flow: 100 uL/min}, for: 1 s}\n", &a);
    assert_true(writes(&a, "chip3.flow"));
    assert_true(writes(&a, "ob1.p1"));
    assert_false(writes(&a, "pc1.p1"));
    claim("perfuse: 1\nname: b\nsteps:\n  - {set: {ob1.p1: 100 mbar}, for: 1 s}\n", &b);
    assert_true(claims_overlap(&a, &b) >= 0);
    claims_free(&a);
    claims_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_claim_covers_steps_safe_state_and_devices),
        cmocka_unit_test(test_overlap_names_channel_and_holder),
        cmocka_unit_test(test_run_names),
        cmocka_unit_test(test_recorded_channels),
        cmocka_unit_test(test_regulated_channel_claims_actuator),
    };
    return cmocka_run_group_tests(tests, load_rig, free_rig);
}
