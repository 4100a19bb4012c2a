/* The limit-trip policy shared by perfused and simulate: act, then raise; clear by rule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run/alarms.h"
#include "run/interlock.h"
#include "run/trip.h"

#define S 1000000000LL

/* What happened, in order: "safe_stop", "pause", "alarm_raised limit_max ...". */
static char log_[16][300];
static int n_log;
static char hook_why[200];
static struct limit_rule *to_drop;     /* a hook overwrites this rule, as ending a run drops its rules */

static void note(const char *fmt, const char *a, const char *b)
{
    if (n_log < 16)
        snprintf(log_[n_log++], sizeof log_[0], fmt, a, b);
}

static void on_alarm(void *ctx, int64_t t, const char *sev, const char *src, const char *code,
                     const char *msg, const char *run)
{
    (void)ctx; (void)t; (void)sev; (void)msg; (void)run;
    note("%s %s", code, src);
}

static void act(const char *what, const struct limit_rule *rule, const char *why)
{
    (void)rule;
    snprintf(hook_why, sizeof hook_why, "%s", why);
    note("%s%s", what, "");
    if (to_drop != NULL) {
        memset(to_drop, 0x5a, sizeof *to_drop);
        to_drop = NULL;
    }
}

static void on_safe_stop(void *ctx, const struct limit_rule *rule, const char *why, int64_t t)
{
    (void)ctx; (void)t;
    act("safe_stop", rule, why);
}

static void on_pause(void *ctx, const struct limit_rule *rule, const char *why, int64_t t)
{
    (void)ctx; (void)t;
    act("pause", rule, why);
}

static const struct trip_hooks hooks = { .safe_stop = on_safe_stop, .pause = on_pause };

/* A tripped rule on channel 2, line line, of a rig or a protocol. */
static struct limit_rule rule_of(enum limit_action action, char side, int line, bool from_rig)
{
    struct limit_rule r = { .lim = { .channel = 2, .min = 5, .max = 40, .action = action, .line = line },
                            .from_rig = from_rig, .tripped = true, .side = side };
    return r;
}

static int setup(void **state)
{
    (void)state;
    n_log = 0;
    hook_why[0] = '\0';
    return 0;
}

/* A safe-stop acts before its alarm is raised, and the alarm says what the hook was told. */
static void test_a_safe_stop_acts_before_its_alarm_is_raised(void **state)
{
    (void)state;
    struct alarms a;
    alarms_init(&a, on_alarm, NULL);
    struct limit_rule r = rule_of(LIMIT_SAFE_STOP, '>', 12, true);
    uint32_t id = trip_limit(&a, &r, "chip1.pressure", "mbar", 41.5, 3 * S, &hooks);
    assert_int_equal(n_log, 2);
    assert_string_equal(log_[0], "safe_stop");
    assert_string_equal(log_[1], "alarm_raised chip1.pressure");
    assert_int_equal(a.n, 1);
    assert_int_equal(id, a.v[0].id);
    assert_string_equal(a.v[0].code, "limit_max");
    assert_string_equal(a.v[0].severity, "alarm");
    assert_string_equal(a.v[0].tag, "r12");
    char want[200];
    limit_describe(&r, "chip1.pressure", "mbar", 41.5, want, sizeof want);
    assert_string_equal(a.v[0].message, want);
    assert_string_equal(hook_why, want);
    assert_non_null(strstr(want, "above its max 40 mbar"));
    alarms_free(&a);
}

/* A pause limit pauses (below its min: limit_min); an alarm limit only raises its alarm. */
static void test_pause_pauses_and_alarm_only_raises(void **state)
{
    (void)state;
    struct alarms a;
    alarms_init(&a, on_alarm, NULL);
    struct limit_rule p = rule_of(LIMIT_PAUSE, '<', 7, false);
    trip_limit(&a, &p, "chip1.flow", "uL/min", 1, S, &hooks);
    assert_int_equal(n_log, 2);
    assert_string_equal(log_[0], "pause");
    assert_string_equal(a.v[0].code, "limit_min");
    assert_string_equal(a.v[0].tag, "p7");
    struct limit_rule al = rule_of(LIMIT_ALARM, '>', 8, false);
    trip_limit(&a, &al, "chip1.flow", "uL/min", 99, 2 * S, &hooks);
    assert_int_equal(n_log, 3);
    assert_string_equal(log_[2], "alarm_raised chip1.flow");
    assert_int_equal(a.n, 2);
    alarms_free(&a);
}

/* Tripped again before it cleared: it acts again, and the id is the alarm still active. */
static void test_a_second_trip_returns_the_active_alarm(void **state)
{
    (void)state;
    struct alarms a;
    alarms_init(&a, on_alarm, NULL);
    struct limit_rule r = rule_of(LIMIT_SAFE_STOP, '>', 3, true);
    uint32_t first = trip_limit(&a, &r, "chip1.pressure", "mbar", 50, S, &hooks);
    uint32_t again = trip_limit(&a, &r, "chip1.pressure", "mbar", 60, 2 * S, &hooks);
    assert_true(first != 0);
    assert_int_equal(again, first);
    assert_int_equal(a.n, 1);
    assert_int_equal(n_log, 3);     /* safe_stop, raised, safe_stop */
    assert_string_equal(log_[2], "safe_stop");
    alarms_free(&a);
}

/* The action may drop the rule (a safe-stop ends the run, which frees its
 * rules): the alarm is still raised from the rule as it was. */
static void test_the_rule_may_be_dropped_by_the_action(void **state)
{
    (void)state;
    struct alarms a;
    alarms_init(&a, on_alarm, NULL);
    struct limit_rule *r = malloc(sizeof *r);
    assert_non_null(r);
    *r = rule_of(LIMIT_SAFE_STOP, '<', 21, false);
    to_drop = r;
    trip_limit(&a, r, "chip1.flow", "uL/min", 1, S, &hooks);
    assert_null(to_drop);
    free(r);
    assert_int_equal(a.n, 1);
    assert_string_equal(a.v[0].code, "limit_min");
    assert_string_equal(a.v[0].tag, "p21");
    assert_non_null(strstr(a.v[0].message, "below its min 5 uL/min"));
    alarms_free(&a);
}

/* Back inside, a rule clears its own alarm and not another limit's on the same channel. */
static void test_clearing_is_by_rule(void **state)
{
    (void)state;
    struct alarms a;
    alarms_init(&a, on_alarm, NULL);
    struct limit_rule hi = rule_of(LIMIT_ALARM, '>', 3, true), lo = rule_of(LIMIT_ALARM, '<', 9, false);
    trip_limit(&a, &hi, "chip1.pressure", "mbar", 50, S, &hooks);
    trip_limit(&a, &lo, "chip1.pressure", "mbar", 1, S, &hooks);
    trip_clear(&a, &hi, NULL, "chip1.pressure", 2 * S);
    assert_int_equal(a.n, 2);
    assert_false(a.v[0].active);
    assert_true(a.v[1].active);
    assert_string_equal(log_[n_log - 1], "alarm_cleared chip1.pressure");
    trip_clear(&a, &lo, NULL, "chip1.pressure", 3 * S);
    assert_false(a.v[1].active);
    alarms_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_a_safe_stop_acts_before_its_alarm_is_raised, setup),
        cmocka_unit_test_setup(test_pause_pauses_and_alarm_only_raises, setup),
        cmocka_unit_test_setup(test_a_second_trip_returns_the_active_alarm, setup),
        cmocka_unit_test_setup(test_the_rule_may_be_dropped_by_the_action, setup),
        cmocka_unit_test_setup(test_clearing_is_by_rule, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
