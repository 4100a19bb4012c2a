/* Latched interlocks: what a safe state holds, what is refused, and when it is released. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "run/alarms.h"
#include "drivers/driver.h"
#include "run/interlock.h"
#include "run/latch.h"

#define S 1000000000LL

static int released_n;
static uint32_t released_alarm;

static void on_released(void *ctx, const struct latch_hold *h)
{
    (void)ctx;
    released_n++;
    released_alarm = h->alarm;
}

static int stop_pump(void *state, struct bus_link *link)
{
    (void)state; (void)link;
    return 0;
}

/* pump1 (flow, with a driver safe action), pump2 (flow, safe action), valve1
 * (position, no safe action), chip1 (pressure, measured). */
static const struct driver_ops with_safe = { .name = "pump", .safe_state = stop_pump };
static const struct driver_ops without_safe = { .name = "valve" };

static struct rig make_rig(struct rig_device *devs, struct rig_channel *chans)
{
    const char *names[] = { "pump1.flow", "pump2.flow", "valve1.position", "chip1.pressure" };
    const struct driver_ops *drv[] = { &with_safe, &with_safe, &without_safe, &without_safe };
    for (size_t i = 0; i < 4; i++) {
        memset(&devs[i], 0, sizeof devs[i]);
        devs[i].drv = drv[i];
        devs[i].first_channel = i;
        devs[i].n_chans = 1;
        memset(&chans[i], 0, sizeof chans[i]);
        strcpy(chans[i].name, names[i]);
        chans[i].device = i;
        chans[i].writable = i < 3;
        chans[i].readable = true;
    }
    return (struct rig){ .devices = devs, .n_devices = 4, .channels = chans, .n_channels = 4 };
}

/* A protocol limit holds its safe_state channels and every device whose driver has its own
 * safe action; a rig limit holds every actuator; a measurement is never held. */
static void test_a_safe_state_holds_what_it_put_down(void **state)
{
    (void)state;
    struct rig_device devs[4];
    struct rig_channel chans[4];
    struct rig rig = make_rig(devs, chans);
    bool held[4];
    struct plan_target t = { .channel = 0, .v0 = 0 };
    latch_safe_channels(&rig, &t, 1, false, held);
    assert_true(held[0] && held[1] && !held[2] && !held[3]);
    struct plan_target v = { .channel = 2, .v0 = 1 };
    latch_safe_channels(&rig, &v, 1, false, held);
    assert_true(held[0] && held[1] && held[2] && !held[3]);
    latch_safe_channels(&rig, NULL, 0, true, held);
    assert_true(held[0] && held[1] && held[2] && !held[3]);
}

/* Held until the alarm is acknowledged AND clear, in either order; the refusal names the
 * alarm and says what is still missing. */
static void test_held_until_acknowledged_and_clear(void **state)
{
    (void)state;
    struct alarms a;
    alarms_init(&a, NULL, NULL);
    struct latch l;
    latch_init(&l, 4);
    bool held[4] = { true, false, false, false };
    uint32_t id = alarms_raise(&a, 1, "alarm", "chip1.pressure", "limit_max", "r3", "too high");
    assert_int_equal(latch_add(&l, id, "chip1.pressure above its max 40 mbar", "chip1.pressure", held), 0);
    assert_non_null(latch_holder(&l, 0));
    assert_null(latch_holder(&l, 1));
    assert_null(latch_holder(&l, -1));
    assert_null(latch_holder(&l, 4));

    char why[400];
    latch_refusal(latch_holder(&l, 0), &a, "pump1.flow", why, sizeof why);
    assert_string_equal(why, "pump1.flow is held in its safe state by alarm 1 (chip1.pressure above its "
                        "max 40 mbar); acknowledge it with `perfusectl ack 1` once chip1.pressure is back "
                        "within its limit");
    released_n = 0;
    assert_int_equal(latch_update(&l, &a, on_released, NULL), 0);

    /* Acknowledged while the condition holds: still held. */
    alarms_ack(&a, 2, id, "alice");
    assert_int_equal(latch_update(&l, &a, on_released, NULL), 0);
    assert_non_null(latch_holder(&l, 0));
    latch_refusal(latch_holder(&l, 0), &a, "pump1.flow", why, sizeof why);
    assert_non_null(strstr(why, "by alarm 1 (chip1.pressure above its max 40 mbar), acknowledged; it is "
                                "released once chip1.pressure is back"));

    /* The condition clears: acknowledged and clear, released (checked before the alarm is dropped). */
    struct alarm copy = a.v[0];
    a.v[0].active = false;
    assert_int_equal(latch_update(&l, &a, on_released, NULL), 1);
    assert_int_equal(released_n, 1);
    assert_int_equal(released_alarm, id);
    assert_null(latch_holder(&l, 0));
    a.v[0] = copy;

    /* The other order: clear first, still held, and the refusal asks for the ack. */
    uint32_t id2 = alarms_raise(&a, 3, "alarm", "chip2.pressure", "limit_max", "r4", "too high");
    bool held2[4] = { false, true, true, false };
    assert_int_equal(latch_add(&l, id2, "chip2.pressure above its max 60 mbar", "chip2.pressure", held2), 0);
    alarms_clear(&a, 4, "chip2.pressure", "limit_max", "r4");
    assert_int_equal(latch_update(&l, &a, on_released, NULL), 0);
    latch_refusal(latch_holder(&l, 2), &a, "valve1.position", why, sizeof why);
    assert_non_null(strstr(why, "chip2.pressure is back within its limit: acknowledge the alarm with "
                                "`perfusectl ack 2` to release it"));
    alarms_ack(&a, 5, id2, "bob");          /* acknowledged and clear: the alarm is dropped */
    assert_int_equal(latch_update(&l, &a, on_released, NULL), 1);
    assert_null(latch_holder(&l, 1));
    assert_null(latch_holder(&l, 2));
    latch_free(&l);
    alarms_free(&a);
}

/* Two holds on one channel: it is free only when both are released. */
static void test_two_holds_on_one_channel(void **state)
{
    (void)state;
    struct alarms a;
    alarms_init(&a, NULL, NULL);
    struct latch l;
    latch_init(&l, 4);
    bool held[4] = { true, false, false, false };
    uint32_t id1 = alarms_raise(&a, 1, "alarm", "x", "limit_max", "r1", "m");
    uint32_t id2 = alarms_raise(&a, 1, "alarm", "y", "limit_max", "r2", "m");
    latch_add(&l, id1, "x", "x", held);
    latch_add(&l, id2, "y", "y", held);
    alarms_clear(&a, 2, "x", "limit_max", "r1");
    alarms_ack(&a, 3, id1, "alice");
    latch_update(&l, &a, NULL, NULL);
    assert_non_null(latch_holder(&l, 0));
    assert_int_equal(latch_holder(&l, 0)->alarm, id2);
    alarms_clear(&a, 4, "y", "limit_max", "r2");
    alarms_ack(&a, 5, id2, "alice");
    latch_update(&l, &a, NULL, NULL);
    assert_null(latch_holder(&l, 0));
    latch_free(&l);
    alarms_free(&a);
}

/* A plan's writes: every target of every step, inside repeats too. */
static void test_the_channels_a_plan_writes(void **state)
{
    (void)state;
    struct plan_target t1 = { .channel = 2 }, t2 = { .channel = 0 };
    struct plan_step inner = { .kind = STEP_SET, .targets = &t2, .n_targets = 1 };
    struct plan_step steps[2] = {
        { .kind = STEP_SET, .targets = &t1, .n_targets = 1 },
        { .kind = STEP_REPEAT, .count = 2, .steps = &inner, .n_steps = 1 },
    };
    struct plan p = { .root = { .kind = STEP_REPEAT, .count = 1, .steps = steps, .n_steps = 2 } };
    bool w[4];
    latch_plan_writes(&p, 4, w);
    assert_true(w[0] && !w[1] && w[2] && !w[3]);
}

static int trips, clears;
static void on_trip(void *ctx, const struct limit_rule *r, double v, int64_t t)
{
    (void)ctx; (void)r; (void)v; (void)t;
    trips++;
}
static void on_clear(void *ctx, const struct limit_rule *r, double v, int64_t t)
{
    (void)ctx; (void)r; (void)v; (void)t;
    clears++;
}

/* A tripped safe-stop of a run that has ended still clears (so its latch can be released),
 * never trips again, and is gone once cleared; other run rules go with the run. */
static void test_a_tripped_safe_stop_outlives_its_run_until_it_clears(void **state)
{
    (void)state;
    struct interlock_hooks h = { .trip = on_trip, .clear = on_clear };
    struct interlocks il;
    assert_int_equal(interlocks_init(&il, NULL, 0, &h), 0);
    struct plan_limit lim[2] = {
        { .channel = 3, .min = NAN, .max = 100, .action = LIMIT_SAFE_STOP },
        { .channel = 3, .min = NAN, .max = 50, .action = LIMIT_ALARM },
    };
    assert_int_equal(interlocks_set_run(&il, lim, 2, 0), 0);
    trips = clears = 0;
    interlocks_on_sample(&il, 3, 150, 1 * S);
    assert_int_equal(trips, 2);
    assert_int_equal(interlocks_set_run(&il, NULL, 0, 0), 0);        /* the run ended */
    assert_int_equal(clears, 1);            /* the alarm rule is dropped, its alarm cleared */
    assert_int_equal(il.n, 1);
    assert_true(il.rules[0].lingering);
    interlocks_on_sample(&il, 3, 160, 2 * S);
    assert_int_equal(trips, 2);
    interlocks_on_sample(&il, 3, 20, 3 * S);
    assert_int_equal(clears, 2);
    assert_int_equal(il.n, 0);
    interlocks_on_sample(&il, 3, 150, 4 * S);                      /* no rule left to trip */
    assert_int_equal(trips, 2);
    interlocks_free(&il);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_safe_state_holds_what_it_put_down),
        cmocka_unit_test(test_held_until_acknowledged_and_clear),
        cmocka_unit_test(test_two_holds_on_one_channel),
        cmocka_unit_test(test_the_channels_a_plan_writes),
        cmocka_unit_test(test_a_tripped_safe_stop_outlives_its_run_until_it_clears),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
