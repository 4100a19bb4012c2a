/* Desired and confirmed actuator state: confirmation, retries with back-off,
 * re-assertion after a reconnect as the driver allows, the latched safe state. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <string.h>

#include "run/actuators.h"

#define MS 1000000LL
#define S 1000000000LL

/* What the owner was asked to send, and what it was told. */
static struct {
    int sends;
    double value;
    bool device_safe, safety;
    int send_rc;
    int overdue, back_in_time;
    int changes;
} seen;

static int on_send(void *ctx, int ch, double value, bool device_safe, bool safety)
{
    (void)ctx; (void)ch;
    seen.sends++;
    seen.value = value;
    seen.device_safe = device_safe;
    seen.safety = safety;
    return seen.send_rc;
}

static void on_changed(void *ctx, int ch, const struct act_chan *c, int64_t now)
{
    (void)ctx; (void)ch; (void)c; (void)now;
    seen.changes++;
}

static void on_overdue(void *ctx, int ch, const struct act_chan *c, bool overdue, int64_t now)
{
    (void)ctx; (void)ch; (void)c; (void)now;
    if (overdue)
        seen.overdue++;
    else
        seen.back_in_time++;
}

/* Two channels: 0 a syringe pump (read-back, re-assert, stops at 0), 1 a
 * peristaltic pump that a reconnect must never start. */
static struct actuators make(void)
{
    memset(&seen, 0, sizeof seen);
    struct act_hooks h = { .send = on_send, .changed = on_changed, .overdue = on_overdue };
    struct actuators a;
    assert_int_equal(actuators_init(&a, 3, 5 * S, 5 * S, &h), 0);
    actuators_config(&a, 0, true, true, true, 0.0, 0);
    actuators_config(&a, 1, true, false, true, 0.0, 0);
    return a;
}

static void test_a_value_is_confirmed_only_when_the_device_acknowledges_it(void **st)
{
    (void)st;
    struct actuators a = make();
    assert_int_equal(actuators_set_desired(&a, 0, 10, ACT_PROTOCOL, 1 * S), 0);
    assert_int_equal(seen.sends, 1);
    assert_true(seen.value == 10);
    const struct act_chan *c = actuators_get(&a, 0);
    assert_false(c->confirmed);
    assert_true(c->unconfirmed_ns == 1 * S);
    assert_true(isnan(c->value));
    actuators_on_write(&a, 0, 10, false, 0, "", 1 * S + 5 * MS);
    assert_true(c->confirmed);
    assert_true(c->value == 10);
    assert_string_equal(c->how, "write");
    assert_true(c->unconfirmed_ns == 0);
    assert_null(actuators_get(&a, 2));      /* not writable */
    assert_int_equal(actuators_set_desired(&a, 2, 1, ACT_MANUAL, 0), -EINVAL);
    actuators_free(&a);
}

static void test_a_failed_write_is_retried_with_doubling_back_off_until_confirmed(void **st)
{
    (void)st;
    struct actuators a = make();
    int64_t t = 10 * S;
    actuators_set_desired(&a, 0, 10, ACT_PROTOCOL, t);
    const struct act_chan *c = actuators_get(&a, 0);
    int64_t gaps[8];
    for (int i = 0; i < 8; i++) {
        actuators_on_write(&a, 0, 10, false, -ETIMEDOUT, "pump1: no reply", t);
        assert_false(c->confirmed);
        assert_string_equal(c->why, "pump1: no reply");
        int64_t due = c->next_try_ns;
        gaps[i] = due - t;
        int before = seen.sends;
        actuators_tick(&a, due - 1);
        assert_int_equal(seen.sends, before);       /* not before its time */
        actuators_tick(&a, due);
        assert_int_equal(seen.sends, before + 1);
        t = due;
    }
    assert_true(gaps[0] == 200 * MS);
    assert_true(gaps[1] == 400 * MS);
    assert_true(gaps[2] == 800 * MS);
    assert_true(gaps[5] == 5 * S);                  /* capped */
    assert_true(gaps[7] == 5 * S);
    actuators_on_write(&a, 0, 10, false, 0, "", t + MS);
    assert_true(c->confirmed);
    int before = seen.sends;
    actuators_tick(&a, t + 60 * S);
    assert_int_equal(seen.sends, before);           /* confirmed: nothing more to send */
    actuators_free(&a);
}

static void test_an_unconfirmed_value_past_its_tolerance_is_reported_once(void **st)
{
    (void)st;
    struct actuators a = make();
    actuators_set_desired(&a, 0, 10, ACT_PROTOCOL, 0);
    actuators_on_write(&a, 0, 10, false, -ENOTCONN, "link pumps is down", 1 * MS);
    int64_t next = actuators_tick(&a, 1 * S);
    assert_true(next <= 5 * S);
    assert_int_equal(seen.overdue, 0);
    actuators_tick(&a, 5 * S);
    assert_int_equal(seen.overdue, 1);
    actuators_tick(&a, 9 * S);
    actuators_set_desired(&a, 0, 11, ACT_PROTOCOL, 9 * S);  /* a new value, still no device */
    actuators_tick(&a, 12 * S);
    assert_int_equal(seen.overdue, 1);
    actuators_on_write(&a, 0, 11, false, 0, "", 13 * S);
    assert_int_equal(seen.back_in_time, 1);
    actuators_free(&a);
}

static void test_a_read_back_that_agrees_confirms_and_one_that_does_not_does_not(void **st)
{
    (void)st;
    struct actuators a = make();
    actuators_set_desired(&a, 0, 10, ACT_PROTOCOL, 0);
    actuators_on_write(&a, 0, 10, false, -ETIMEDOUT, "no reply", 1 * MS);
    const struct act_chan *c = actuators_get(&a, 0);
    actuators_on_sample(&a, 0, 9.0, 2 * MS);
    assert_false(c->confirmed);
    actuators_on_sample(&a, 0, 10.02, 3 * MS);      /* within 0.5 % */
    assert_true(c->confirmed);
    assert_string_equal(c->how, "read-back");
    actuators_free(&a);
}

static void test_a_read_back_that_keeps_disagreeing_takes_the_confirmation_back(void **st)
{
    (void)st;
    struct actuators a = make();
    actuators_set_desired(&a, 0, 10, ACT_PROTOCOL, 0);
    actuators_on_write(&a, 0, 10, false, 0, "", MS);
    const struct act_chan *c = actuators_get(&a, 0);
    actuators_on_sample(&a, 0, 0, 1 * S);            /* one odd reading is not enough */
    actuators_on_sample(&a, 0, 10, 2 * S);
    actuators_on_sample(&a, 0, 0, 3 * S);
    actuators_on_sample(&a, 0, 0, 4 * S);
    assert_true(c->confirmed);
    int before = seen.sends;
    actuators_on_sample(&a, 0, 0, 5 * S);            /* the pump stopped by itself */
    assert_false(c->confirmed);
    assert_true(c->value == 0);
    assert_true(c->unconfirmed_ns == 5 * S);
    actuators_tick(&a, 5 * S + 200 * MS);
    assert_int_equal(seen.sends, before + 1);       /* and is told again */
    assert_true(seen.value == 10);
    /* It keeps stopping (an empty syringe): told again less and less often. */
    int64_t t = 5 * S + 200 * MS, gap = 0;
    for (int k = 0; k < 12; k++) {
        actuators_on_write(&a, 0, 10, false, 0, "", t);
        for (int i = 0; i < 3; i++)
            actuators_on_sample(&a, 0, 0, t + (i + 1) * 500 * MS);
        t += 1500 * MS;
        gap = c->next_try_ns - t;
        actuators_tick(&a, c->next_try_ns);
        t = c->next_try_ns;
    }
    assert_true(gap == 60 * S);
    /* A device a reconnect must not move is not restarted by a read-back either. */
    actuators_set_desired(&a, 1, 500, ACT_PROTOCOL, 6 * S);
    actuators_on_write(&a, 1, 500, false, 0, "", 6 * S);
    before = seen.sends;
    for (int i = 0; i < 3; i++)
        actuators_on_sample(&a, 1, 0, 7 * S + i * S);
    assert_false(actuators_get(&a, 1)->confirmed);
    assert_true(actuators_get(&a, 1)->held);
    assert_int_equal(seen.sends, before);
    actuators_free(&a);
}

static void test_an_older_acknowledgement_does_not_confirm_a_newer_value(void **st)
{
    (void)st;
    struct actuators a = make();
    actuators_set_desired(&a, 0, 10, ACT_PROTOCOL, 1 * S);
    actuators_set_desired(&a, 0, 0, ACT_PROTOCOL, 2 * S);
    actuators_on_write(&a, 0, 10, false, 0, "", 3 * S);
    const struct act_chan *c = actuators_get(&a, 0);
    assert_false(c->confirmed);
    assert_true(c->value == 10);                    /* what the device does now */
    assert_true(c->unconfirmed_ns == 2 * S);        /* the newest since it was set */
    actuators_on_write(&a, 0, 0, false, 0, "", 3 * S + MS);
    assert_true(c->confirmed);
    actuators_free(&a);
}

static void test_after_a_reconnect_the_desired_value_is_asserted_again(void **st)
{
    (void)st;
    struct actuators a = make();
    actuators_set_desired(&a, 0, 10, ACT_PROTOCOL, 0);
    actuators_on_write(&a, 0, 10, false, 0, "", MS);
    const struct act_chan *c = actuators_get(&a, 0);
    actuators_device_lost(&a, 0, true, "pump1 faulted", 1 * S);
    assert_false(c->confirmed);
    assert_true(isnan(c->value));
    assert_true(c->unconfirmed_ns == 1 * S);
    int before = seen.sends;
    actuators_on_write(&a, 0, 10, false, -ENOTCONN, "link pumps is down", 1 * S);
    actuators_tick(&a, 6 * S);                      /* faulted: the bus probes it, no retries */
    assert_int_equal(seen.sends, before);
    actuators_device_back(&a, 0, 7 * S);
    assert_int_equal(seen.sends, before + 1);
    assert_true(seen.value == 10);
    actuators_on_write(&a, 0, 10, false, 0, "", 7 * S + MS);
    assert_true(c->confirmed);
    actuators_free(&a);
}

static void test_a_device_that_must_not_move_on_a_reconnect_gets_only_its_stop(void **st)
{
    (void)st;
    struct actuators a = make();
    /* Running: after the reconnect it is not started again, only checked. */
    actuators_set_desired(&a, 1, 500, ACT_PROTOCOL, 0);
    actuators_on_write(&a, 1, 500, false, 0, "", MS);
    const struct act_chan *c = actuators_get(&a, 1);
    actuators_device_lost(&a, 1, false, "link lost", 1 * S);
    actuators_tick(&a, 3 * S);                      /* no retries while it is away */
    int before = seen.sends;
    actuators_device_back(&a, 1, 4 * S);
    actuators_tick(&a, 4 * S + 500 * MS);
    assert_int_equal(seen.sends, before);
    assert_true(c->held);
    assert_false(c->confirmed);
    actuators_on_sample(&a, 1, 500, 4 * S + 600 * MS);  /* it kept running: confirmed */
    assert_true(c->confirmed);
    /* A stop is re-sent after the reconnect: it never starts the rotor. */
    actuators_set_desired(&a, 1, 0, ACT_PROTOCOL, 5 * S);
    actuators_on_write(&a, 1, 0, false, -ENOTCONN, "link lost", 5 * S);
    actuators_device_lost(&a, 1, false, "link lost", 5 * S);
    before = seen.sends;
    actuators_device_back(&a, 1, 8 * S);
    assert_int_equal(seen.sends, before + 1);
    assert_true(seen.value == 0);
    actuators_free(&a);
}

static void test_the_safe_state_is_latched_and_retried_until_confirmed(void **st)
{
    (void)st;
    struct actuators a = make();
    actuators_set_desired(&a, 0, 10, ACT_PROTOCOL, 0);
    actuators_on_write(&a, 0, 10, false, 0, "", MS);
    assert_true(actuators_safe_confirmed(&a));
    assert_int_equal(actuators_latch_safe(&a, 0, NAN, true, 1 * S), 0);
    assert_true(seen.device_safe);
    assert_true(seen.safety);
    assert_false(actuators_safe_confirmed(&a));
    assert_int_equal(actuators_set_desired(&a, 0, 10, ACT_PROTOCOL, 1 * S), -EPERM);
    const struct act_chan *c = actuators_get(&a, 0);
    assert_true(c->origin == ACT_SAFE);
    assert_true(c->desired == 0);                   /* the pump's safe value */
    actuators_on_write(&a, 0, 0, true, -ENOTCONN, "link pumps is down", 1 * S);
    actuators_device_lost(&a, 0, false, "link pumps is down", 1 * S);
    assert_true(c->next_try_ns == 1 * S + 200 * MS);
    for (int64_t t = 1 * S + 200 * MS; t < 5 * S; t = c->next_try_ns) {
        actuators_tick(&a, t);                      /* link down: retried, at most 1 s apart */
        actuators_on_write(&a, 0, 0, true, -ENOTCONN, "link pumps is down", t);
        assert_true(c->next_try_ns - t <= 1 * S);
    }
    actuators_tick(&a, 5 * S + 999 * MS);
    assert_int_equal(seen.overdue, 0);
    actuators_tick(&a, 6 * S);
    assert_int_equal(seen.overdue, 1);              /* safe_state_unconfirmed */
    int before = seen.sends;
    actuators_device_back(&a, 0, 7 * S);
    assert_int_equal(seen.sends, before + 1);
    assert_true(seen.device_safe);
    actuators_on_write(&a, 0, NAN, true, 0, "", 7 * S + 10 * MS);
    assert_true(actuators_safe_confirmed(&a));
    assert_int_equal(seen.back_in_time, 1);
    assert_true(c->latched);
    actuators_release(&a, 0);
    assert_int_equal(actuators_set_desired(&a, 0, 10, ACT_MANUAL, 8 * S), 0);
    actuators_free(&a);
}

static void test_a_value_the_device_refuses_as_invalid_is_not_sent_again(void **st)
{
    (void)st;
    struct actuators a = make();
    actuators_set_desired(&a, 0, 10, ACT_MANUAL, 0);
    actuators_on_write(&a, 0, 10, false, -ERANGE, "too fast", MS);
    int before = seen.sends;
    actuators_tick(&a, 30 * S);
    assert_int_equal(seen.sends, before);
    assert_false(actuators_get(&a, 0)->confirmed);
    actuators_free(&a);
}

static void test_a_send_that_cannot_be_queued_is_retried(void **st)
{
    (void)st;
    struct actuators a = make();
    seen.send_rc = -ENOBUFS;
    assert_int_equal(actuators_set_desired(&a, 0, 10, ACT_PROTOCOL, 0), -ENOBUFS);
    seen.send_rc = 0;
    actuators_tick(&a, 200 * MS);
    assert_int_equal(seen.sends, 2);
    actuators_free(&a);
}

/* An older setpoint that reaches the device after the safe state was
 * confirmed undoes it: the safe state is unconfirmed and sent again. */
static void test_a_stale_write_after_the_safe_state_is_sent_again(void **st)
{
    (void)st;
    struct actuators a = make();
    actuators_set_desired(&a, 1, 5, ACT_PROTOCOL, 0);
    assert_int_equal(actuators_latch_safe(&a, 1, 0, false, 10 * MS), 0);
    actuators_on_write(&a, 1, 0, false, 0, "", 20 * MS);      /* the safe value: confirmed */
    assert_true(actuators_safe_confirmed(&a));
    actuators_on_write(&a, 1, 5, false, 0, "", 30 * MS);      /* then the stale 5 lands */
    const struct act_chan *c = actuators_get(&a, 1);
    assert_false(c->confirmed);
    assert_true(c->value == 5);
    assert_false(actuators_safe_confirmed(&a));
    int before = seen.sends;
    actuators_tick(&a, 30 * MS);
    assert_int_equal(seen.sends, before + 1);
    assert_true(seen.value == 0 && seen.safety);
    /* A write the bus dropped before sending (-ECANCELED) changes nothing. */
    actuators_on_write(&a, 1, 7, false, -ECANCELED, "not sent", 40 * MS);
    assert_true(c->value == 5);
    actuators_on_write(&a, 1, 0, false, 0, "", 50 * MS);
    assert_true(actuators_safe_confirmed(&a));
    actuators_free(&a);
}

/* A setpoint already reported overdue does not hide the safe state's own
 * alarm: the safe state's tolerance counts from when it was latched. */
static void test_an_overdue_setpoint_does_not_hide_the_safe_state_alarm(void **st)
{
    (void)st;
    struct actuators a = make();
    actuators_set_desired(&a, 0, 5, ACT_PROTOCOL, 0);
    actuators_on_write(&a, 0, 5, false, -ETIMEDOUT, "no reply", 100 * MS);
    actuators_tick(&a, 6 * S);
    assert_int_equal(seen.overdue, 1);                          /* setpoint_unconfirmed */
    assert_int_equal(actuators_latch_safe(&a, 0, 0, false, 7 * S), 0);
    actuators_tick(&a, 11 * S);
    assert_int_equal(seen.overdue, 1);                          /* 4 s: not yet */
    actuators_tick(&a, 12 * S);
    assert_int_equal(seen.overdue, 2);                          /* safe_state_unconfirmed */
    actuators_on_write(&a, 0, 0, false, 0, "", 13 * S);
    assert_true(actuators_safe_confirmed(&a));
    assert_int_equal(seen.back_in_time, 1);                     /* both taken back at once */
    actuators_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_value_is_confirmed_only_when_the_device_acknowledges_it),
        cmocka_unit_test(test_a_failed_write_is_retried_with_doubling_back_off_until_confirmed),
        cmocka_unit_test(test_an_unconfirmed_value_past_its_tolerance_is_reported_once),
        cmocka_unit_test(test_a_read_back_that_agrees_confirms_and_one_that_does_not_does_not),
        cmocka_unit_test(test_a_read_back_that_keeps_disagreeing_takes_the_confirmation_back),
        cmocka_unit_test(test_an_older_acknowledgement_does_not_confirm_a_newer_value),
        cmocka_unit_test(test_after_a_reconnect_the_desired_value_is_asserted_again),
        cmocka_unit_test(test_a_device_that_must_not_move_on_a_reconnect_gets_only_its_stop),
        cmocka_unit_test(test_the_safe_state_is_latched_and_retried_until_confirmed),
        cmocka_unit_test(test_a_value_the_device_refuses_as_invalid_is_not_sent_again),
        cmocka_unit_test(test_a_send_that_cannot_be_queued_is_retried),
        cmocka_unit_test(test_a_stale_write_after_the_safe_state_is_sent_again),
        cmocka_unit_test(test_an_overdue_setpoint_does_not_hide_the_safe_state_alarm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
