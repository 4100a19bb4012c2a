/* Interlock rules (debounce, unknown values) and the alarm lifecycle. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <string.h>

#include "run/alarms.h"
#include "run/interlock.h"

#define S 1000000000LL

static int trips, clears;
static double trip_value;
static int64_t trip_t;

static void on_trip(void *ctx, const struct limit_rule *r, double v, int64_t t)
{
    (void)ctx; (void)r;
    trips++;
    trip_value = v;
    trip_t = t;
}

static void on_clear(void *ctx, const struct limit_rule *r, double v, int64_t t)
{
    (void)ctx; (void)r; (void)v; (void)t;
    clears++;
}

static struct interlocks make(double min, double max, int64_t for_ns)
{
    struct plan_limit lim = { .channel = 3, .min = min, .max = max, .for_ns = for_ns, .action = LIMIT_ALARM };
    struct interlock_hooks h = { .trip = on_trip, .clear = on_clear };
    struct interlocks il;
    assert_int_equal(interlocks_init(&il, &lim, 1, &h), 0);
    trips = clears = 0;
    return il;
}

/* A limit trips only after its channel stays out for 'for', on the sample that completes it. */
static void test_debounce(void **state)
{
    (void)state;
    struct interlocks il = make(NAN, 100, 2 * S);
    interlocks_on_sample(&il, 3, 150, 10 * S);
    interlocks_on_sample(&il, 3, 150, 11 * S);
    assert_int_equal(trips, 0);
    interlocks_on_sample(&il, 3, 90, 11 * S + 1);       /* back inside: the excursion restarts */
    interlocks_on_sample(&il, 3, 150, 12 * S);
    interlocks_on_sample(&il, 3, 150, 13 * S);
    assert_int_equal(trips, 0);
    interlocks_on_sample(&il, 4, 999, 14 * S);           /* another channel: no effect */
    interlocks_on_sample(&il, 3, 160, 14 * S);
    assert_int_equal(trips, 1);
    assert_true(trip_value == 160 && trip_t == 14 * S);
    interlocks_on_sample(&il, 3, 170, 15 * S);           /* still out: no second trip */
    assert_int_equal(trips, 1);
    interlocks_on_sample(&il, 3, 50, 16 * S);
    assert_int_equal(clears, 1);
    interlocks_free(&il);
}

/* An unknown value (NaN) neither trips, nor clears, nor restarts the debounce. */
static void test_unknown_is_not_a_value(void **state)
{
    (void)state;
    struct interlocks il = make(10, NAN, 0);
    interlocks_on_sample(&il, 3, NAN, 1 * S);            /* "lost sensor reads 0" must not trip min */
    assert_int_equal(trips, 0);
    interlocks_on_sample(&il, 3, 5, 2 * S);
    assert_int_equal(trips, 1);
    interlocks_on_sample(&il, 3, NAN, 3 * S);
    assert_int_equal(clears, 0);
    interlocks_free(&il);
    il = make(NAN, 100, 2 * S);
    interlocks_on_sample(&il, 3, 150, 0);
    interlocks_on_sample(&il, 3, NAN, 1 * S);
    interlocks_on_sample(&il, 3, 150, 2 * S);            /* NaN in between did not restart it */
    assert_int_equal(trips, 1);
    interlocks_free(&il);
}

/* The run's rules come and go; the rig's stay. */
static void test_run_rules_replace(void **state)
{
    (void)state;
    struct interlocks il = make(NAN, 100, 0);
    struct plan_limit run = { .channel = 3, .min = 20, .max = NAN, .action = LIMIT_PAUSE };
    assert_int_equal(interlocks_set_run(&il, &run, 1, 0), 0);
    interlocks_on_sample(&il, 3, 10, 1 * S);
    assert_int_equal(trips, 1);
    assert_int_equal(clears, 0);
    assert_int_equal(interlocks_set_run(&il, NULL, 0, 0), 0);
    assert_int_equal(clears, 1);     /* the tripped pause rule is dropped, and its alarm with it */
    interlocks_on_sample(&il, 3, 5, 2 * S);
    assert_int_equal(trips, 1);
    interlocks_on_sample(&il, 3, 200, 3 * S);            /* the rig's max still applies */
    assert_int_equal(trips, 2);
    interlocks_free(&il);
}

static struct interlocks *ending;

/* A trip hook that ends the run, as a safe-stop does: the run's rules go away. */
static void trip_and_end(void *ctx, const struct limit_rule *r, double v, int64_t t)
{
    (void)ctx; (void)r; (void)v; (void)t;
    trips++;
    interlocks_set_run(ending, NULL, 0, 0);
}

/* A hook that drops the rules being evaluated must not have them used after
 * (under make asan a use after free here is caught). */
static void test_a_safe_stop_that_ends_the_run(void **state)
{
    (void)state;
    struct plan_limit rig = { .channel = 3, .min = NAN, .max = 1000, .action = LIMIT_SAFE_STOP };
    struct interlock_hooks h = { .trip = trip_and_end, .clear = on_clear };
    struct interlocks il;
    assert_int_equal(interlocks_init(&il, &rig, 1, &h), 0);
    ending = &il;
    trips = 0;
    struct plan_limit run[3] = {
        { .channel = 3, .min = NAN, .max = 10, .action = LIMIT_SAFE_STOP },
        { .channel = 3, .min = NAN, .max = 20, .action = LIMIT_ALARM },
        { .channel = 3, .min = NAN, .max = 30, .action = LIMIT_PAUSE },
    };
    assert_int_equal(interlocks_set_run(&il, run, 3, 0), 0);
    interlocks_on_sample(&il, 3, 50, 1 * S);
    assert_int_equal(trips, 1);                 /* the first ended the run; the rest are gone */
    assert_int_equal(il.n, 2);                  /* but the tripped safe-stop waits to clear */
    assert_true(il.rules[1].lingering);
    interlocks_on_sample(&il, 3, 2000, 2 * S);  /* the rig's rule still works; the other never trips again */
    assert_int_equal(trips, 2);
    interlocks_free(&il);
}

static char last_code[32][32];
static int n_events;

static char last_run[32][40];

static void on_event(void *ctx, int64_t t, const char *sev, const char *src, const char *code, const char *msg,
                     const char *run)
{
    (void)ctx; (void)t; (void)sev; (void)src; (void)msg;
    if (n_events < 32)
        snprintf(last_run[n_events], sizeof last_run[0], "%s", run);
    if (n_events < 32)
        snprintf(last_code[n_events++], 32, "%s", code);
}

/* raised -> acknowledged -> cleared (gone); raised -> cleared (latched) -> acknowledged (gone). */
static void test_alarm_lifecycle(void **state)
{
    (void)state;
    struct alarms a;
    alarms_init(&a, on_event, NULL);
    n_events = 0;
    uint32_t id = alarms_raise(&a, 1, "alarm", "chip1.pressure", "limit_max", "p6", "too high: %d", 412);
    assert_true(id > 0);
    assert_int_equal(alarms_raise(&a, 2, "alarm", "chip1.pressure", "limit_max", "p6", "again"), 0);
    assert_int_equal(a.n, 1);
    assert_string_equal(alarm_state_name(&a.v[0]), "active");
    assert_int_equal(alarms_ack(&a, 3, id, "alice"), 1);
    assert_string_equal(alarm_state_name(&a.v[0]), "acknowledged");
    assert_string_equal(a.v[0].acked_by, "alice");
    alarms_clear(&a, 4, "chip1.pressure", "limit_max", "p7");     /* another rule's: no effect */
    assert_int_equal(a.n, 1);
    alarms_clear(&a, 4, "chip1.pressure", "limit_max", "p6");
    assert_int_equal(a.n, 0);

    uint32_t id2 = alarms_raise(&a, 5, "fault", "pump1", "device_fault", NULL, "no reply");
    assert_true(id2 > id);
    alarms_clear(&a, 6, "pump1", "device_fault", NULL);
    assert_int_equal(a.n, 1);                              /* latched until acknowledged */
    assert_string_equal(alarm_state_name(&a.v[0]), "cleared");
    assert_int_equal(alarms_unacked(&a), 1);
    assert_int_equal(alarms_ack(&a, 7, 12345, "bob"), -ENOENT);
    assert_int_equal(alarms_ack(&a, 7, 0, "bob"), 1);
    assert_int_equal(a.n, 0);

    /* A condition that returns after acknowledgement is a new occurrence. */
    uint32_t id3 = alarms_raise(&a, 8, "alarm", "x", "c", NULL, "m");
    alarms_ack(&a, 9, id3, "carol");
    alarms_clear(&a, 10, "x", "c", NULL);
    uint32_t id4 = alarms_raise(&a, 11, "alarm", "x", "c", NULL, "m");
    assert_true(id4 > id3);
    assert_false(a.v[0].acked);
    const char *want[] = { "alarm_raised", "alarm_acked", "alarm_cleared", "alarm_raised", "alarm_cleared",
                           "alarm_acked", "alarm_raised", "alarm_acked", "alarm_cleared", "alarm_raised" };
    assert_int_equal(n_events, 10);
    for (int i = 0; i < 10; i++)
        assert_string_equal(last_code[i], want[i]);
    alarms_free(&a);
}

/* Two runs' alarms with the same source, code and tag are two alarms, each
 * cleared on its own; the rig's concerns every run, a run's only itself. */
static void test_alarm_runs(void **state)
{
    (void)state;
    struct alarms a;
    alarms_init(&a, on_event, NULL);
    n_events = 0;
    uint32_t ida = alarms_raise_run(&a, "aaaa", 1, "alarm", "chip1.pressure", "limit_max", "p6", "A");
    uint32_t idb = alarms_raise_run(&a, "bbbb", 1, "alarm", "chip1.pressure", "limit_max", "p6", "B");
    uint32_t idr = alarms_raise(&a, 1, "alarm", "chip1.pressure", "limit_max", "p6", "rig");
    assert_true(ida > 0 && idb > ida && idr > idb);
    assert_int_equal(a.n, 3);
    assert_string_equal(last_run[0], "aaaa");
    assert_string_equal(last_run[1], "bbbb");
    assert_string_equal(last_run[2], "");
    assert_int_equal(alarms_find_active_run(&a, "bbbb", "chip1.pressure", "limit_max", "p6"), idb);
    assert_int_equal(alarms_find_active(&a, "chip1.pressure", "limit_max", "p6"), idr);
    /* Clearing run A's touches neither B's nor the rig's. */
    alarms_clear_run(&a, "aaaa", 2, "chip1.pressure", "limit_max", "p6");
    assert_false(a.v[0].active);
    assert_true(a.v[1].active);
    assert_true(a.v[2].active);
    alarms_clear(&a, 2, "chip1.pressure", "limit_max", "p6");
    assert_true(a.v[1].active);
    assert_true(alarm_concerns(&a.v[0], "aaaa"));
    assert_false(alarm_concerns(&a.v[0], "bbbb"));
    assert_false(alarm_concerns(&a.v[1], "aaaa"));
    assert_true(alarm_concerns(&a.v[2], "aaaa"));
    assert_true(alarm_concerns(&a.v[2], NULL));
    assert_false(alarm_concerns(&a.v[0], NULL));
    alarms_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_debounce),
        cmocka_unit_test(test_unknown_is_not_a_value),
        cmocka_unit_test(test_run_rules_replace),
        cmocka_unit_test(test_a_safe_stop_that_ends_the_run),
        cmocka_unit_test(test_alarm_lifecycle),
        cmocka_unit_test(test_alarm_runs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
