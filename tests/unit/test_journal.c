/* The run journal: what a restart may continue from. Every corrupt or edited
 * fixture in tests/unit/fixtures/journal/ is refused with its own reason, the
 * valid one is accepted, an override or syringe level that cannot be read is
 * skipped and counted, and a journal survives its own encoding. The fixtures
 * are written by tests/unit/fixtures/journal/make-fixtures.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/journal.h"
#include "daemon/journal_check.h"
#include "plan/plan.h"
#include "plan/rig.h"
#include "plan/rigdigest.h"
#include "base/yamldoc.h"

/* Tests run from the repository root (make unit). */
#define FIXTURES "tests/unit/fixtures/journal/"
/* The wall clock the fixtures were written for (make-fixtures.py: NOW_NS). */
#define NOW_NS (1796000000000000000LL + 70 * 1000000000LL)

static struct rig *rig;

/* Load the rig the fixtures were written on. */
static int load_rig(void **state)
{
    (void)state;
    struct diag d;
    diag_init(&d);
    int rc = rig_load(FIXTURES "rig.yaml", &rig, &d);
    diag_print(&d, stderr);
    diag_free(&d);
    if (rc < 0)
        fprintf(stderr, "cannot load " FIXTURES "rig.yaml: run the tests from the repository root\n");
    return rc < 0 ? -1 : 0;
}

static int free_rig(void **state)
{
    (void)state;
    rig_free(rig);
    return 0;
}

/* Take a fixture through everything a restart does before using it: decode,
 * check without the plan, load the plan, check with it. Returns 0 or the
 * first refusal, with its message in err. */
static int use_fixture(const char *name, char *err, size_t errlen)
{
    char path[256], *text;
    size_t len;
    snprintf(path, sizeof path, FIXTURES "%s", name);
    if (read_file_text(path, 1 << 20, &text, &len) < 0)
        fail_msg("cannot read %s (tests run from the repository root)", path);
    struct journal_rec j;
    int rc = journal_decode(text, len, &j, err, errlen);
    free(text);
    if (rc == 0)
        rc = journal_validate(&j, rig, NULL, NOW_NS, err, errlen);
    struct plan *plan = NULL;
    if (rc == 0) {
        struct diag d;
        diag_init(&d);
        rc = plan_load(j.protocol_path, j.protocol_text, strlen(j.protocol_text), rig, &plan, &d);
        if (rc < 0)
            snprintf(err, errlen, "protocol does not load (%d errors)", d.errors);
        diag_free(&d);
    }
    if (rc == 0)
        rc = journal_validate(&j, rig, plan, NOW_NS, err, errlen);
    plan_free(plan);
    journal_rec_free(&j);
    return rc;
}

static void test_the_valid_journal_is_accepted(void **state)
{
    (void)state;
    char err[512] = "";
    int rc = use_fixture("valid.json", err, sizeof err);
    if (rc != 0)
        fail_msg("valid.json refused: %s (if the rig digest changed, rerun make-fixtures.py)", err);
}

struct bad_fixture {
    const char *file;
    const char *reason;         /* a part of the message that says what is wrong */
};

/* Each corrupt or edited journal is refused, and the message says why. */
static void test_each_corrupt_or_edited_journal_is_refused_with_its_reason(void **state)
{
    (void)state;
    static const struct bad_fixture cases[] = {
        { "truncated.json", "not JSON (line 9: premature end of input)" },
        { "wrong-version.json", "journal version 1 is not the one this perfused reads (2): it was "
                                "written by an older perfused" },
        { "bad-run-id.json", "'run_id' must be 32 hex digits" },
        { "foreign-rig.json", "foreign rig" },
        { "other-rig-name.json", "the run was on rig 'bench-k', this daemon runs rig 'bench-j'" },
        { "edited-protocol.json", "edited protocol" },
        { "out-of-limit-setpoint.json", "out-of-limit setpoint: pump1.flow = 5000 uL/min is outside "
                                        "the rig's limits (-500 to 500 uL/min)" },
        { "unknown-channel-setpoint.json", "setpoint of 'pump9.flow': the rig has no such channel" },
        { "measurement-setpoint.json", "setpoint of pump1.dispensed: a measurement cannot be set" },
        { "out-of-limit-override.json", "out-of-limit override: pump2.flow = -800 uL/min is outside "
                                        "the rig's limits (-500 to 500 uL/min)" },
        { "override-before-the-run.json", "absurd time: the override of pump2.flow was made at 5 ns" },
        { "time-int64-overflow.json", "absurd time: position shift_ns = 9223372036854775807 ns" },
        { "time-beyond-int64.json", "not JSON (line 5: too big integer)" },
        { "time-not-whole-ns.json", "'step_start_ns' is missing or not a whole number of ns" },
        { "time-seconds-overflow-ns.json", "absurd time: the step's row starts at 1e+300 s" },
        { "time-negative.json", "absurd time: position plan_pos_ns = -5000000000 ns" },
        { "time-far-future.json", "absurd start time: 86400 s in the future" },
        { "time-before-2000.json", "absurd start time 0 ns: before the year 2000" },
        { "time-stale.json", "the run started 800 days ago" },
        { "time-inconsistent.json", "inconsistent times: step_start_ns 60000000000 is not shift_ns + plan_pos_ns" },
        { "position-beyond-plan.json", "position: level 1 names step 8, pass 1; the protocol has 3 steps there" },
        { "position-wrong-plan-pos.json", "plan_pos_ns 40000000000 is not the 50000000000 ns of fixed steps" },
        { "paused-before-start.json", "absurd time: the pause began at -1000000000 ns" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[512] = "";
        int rc = use_fixture(cases[i].file, err, sizeof err);
        if (rc != -EINVAL || strstr(err, cases[i].reason) == NULL)
            fail_msg("%s: rc %d, message '%s'; expected -EINVAL and '%s'", cases[i].file, rc, err,
                     cases[i].reason);
    }
}

/* Decode a fixture (no checks against the rig); fails the test if it does not decode. */
static void decode_fixture(const char *name, struct journal_rec *j)
{
    char path[256], err[512] = "", *text;
    size_t len;
    snprintf(path, sizeof path, FIXTURES "%s", name);
    if (read_file_text(path, 1 << 20, &text, &len) < 0)
        fail_msg("cannot read %s (tests run from the repository root)", path);
    int rc = journal_decode(text, len, j, err, sizeof err);
    free(text);
    if (rc != 0)
        fail_msg("%s: %s", name, err);
}

/* A journal written before overrides and syringe levels were kept has none, and skipped none. */
static void test_a_journal_without_overrides_or_levels_has_none(void **state)
{
    (void)state;
    static struct journal_rec j;
    decode_fixture("valid.json", &j);
    assert_int_equal(j.n_overrides, 0);
    assert_int_equal(j.overrides_skipped, 0);
    assert_int_equal(j.n_fills, 0);
    assert_int_equal(j.n_setpoints, 2);
    journal_rec_free(&j);
}

/* An override that cannot be read is skipped and counted, so the restart can say so. */
static void test_a_malformed_override_is_skipped_and_counted(void **state)
{
    (void)state;
    static struct journal_rec j;
    decode_fixture("malformed-overrides.json", &j);
    assert_int_equal(j.n_overrides, 1);
    assert_int_equal(j.overrides_skipped, 1);
    assert_string_equal(j.overrides[0].channel, "pump2.flow");
    journal_rec_free(&j);
}

/* A syringe level that cannot be read is skipped and counted, so the restart can say so. */
static void test_a_malformed_syringe_level_is_skipped_and_counted(void **state)
{
    (void)state;
    static struct journal_rec j;
    decode_fixture("malformed-syringes.json", &j);
    assert_int_equal(j.n_fills, 1);
    assert_int_equal(j.fills_skipped, 2);
    assert_string_equal(j.fills[0].pump, "pump2");
    assert_true(j.fills[0].fill_ul == 4 && j.fills[0].counter_ul == 5 && j.fills[0].fill0_ul == 6);
    journal_rec_free(&j);
}

/* The rig's digest ignores where its buses are reached (perfuse-sim picks new
 * ptys and ports at every start) but not what its devices are. */
static void test_the_rig_digest_ignores_bus_endpoints_only(void **state)
{
    (void)state;
    static const char *const files[] = { FIXTURES "rig.yaml", FIXTURES "rig-moved.yaml",
                                         FIXTURES "rig-foreign.yaml" };
    char hex[3][65];
    for (size_t i = 0; i < 3; i++) {
        char *text;
        size_t len;
        assert_int_equal(read_file_text(files[i], 1 << 20, &text, &len), 0);
        assert_int_equal(rig_digest(text, len, hex[i]), 0);
        free(text);
    }
    assert_string_equal(hex[0], hex[1]);
    assert_string_not_equal(hex[0], hex[2]);
    assert_int_equal(rig_digest("a: [", 4, hex[0]), -EINVAL);
}

/* What journal_encode writes, journal_decode reads back the same. */
static void test_a_journal_decodes_to_what_was_encoded(void **state)
{
    (void)state;
    char err[512], *text, *again;
    size_t len;
    assert_int_equal(read_file_text(FIXTURES "valid.json", 1 << 20, &text, &len), 0);
    struct journal_rec j, k;
    assert_int_equal(journal_decode(text, len, &j, err, sizeof err), 0);
    free(text);
    assert_int_equal(journal_encode(&j, &again), 0);
    assert_int_equal(journal_decode(again, strlen(again), &k, err, sizeof err), 0);
    free(again);
    assert_string_equal(k.rig_digest, j.rig_digest);
    assert_string_equal(k.protocol_sha256, j.protocol_sha256);
    assert_string_equal(k.protocol_text, j.protocol_text);
    assert_int_equal(k.pos.depth, 1);
    assert_int_equal(k.pos.iter[1], 1);
    assert_int_equal(k.pos.step_start_ns, 53000000000LL);
    assert_int_equal(k.n_setpoints, 2);
    assert_int_equal(journal_validate(&k, rig, NULL, NOW_NS, err, sizeof err), 0);
    journal_rec_free(&j);
    journal_rec_free(&k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_valid_journal_is_accepted),
        cmocka_unit_test(test_each_corrupt_or_edited_journal_is_refused_with_its_reason),
        cmocka_unit_test(test_a_journal_without_overrides_or_levels_has_none),
        cmocka_unit_test(test_a_malformed_override_is_skipped_and_counted),
        cmocka_unit_test(test_a_malformed_syringe_level_is_skipped_and_counted),
        cmocka_unit_test(test_the_rig_digest_ignores_bus_endpoints_only),
        cmocka_unit_test(test_a_journal_decodes_to_what_was_encoded),
    };
    return cmocka_run_group_tests(tests, load_rig, free_rig);
}
