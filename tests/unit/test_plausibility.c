/* Plausibility of readings: NaN, range, stuck, lost; what control and the file get. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>

#include "run/plausibility.h"

#define S 1000000000LL

static int changes[PF_KINDS][2];

static void on_change(void *ctx, int ch, enum plaus_kind k, bool active, double v, int64_t t)
{
    (void)ctx; (void)ch; (void)v; (void)t;
    changes[k][active]++;
}

static struct plausibility make(void)
{
    struct plausibility p;
    struct plaus_hooks h = { .change = on_change };
    assert_int_equal(plaus_init(&p, 2, 0, &h), 0);
    p.c[1].on = true;
    p.c[1].min = -100;
    p.c[1].max = 2000;
    p.c[1].stuck_ns = 5 * S;
    p.c[1].lost_ns = 2 * S;
    for (int k = 0; k < PF_KINDS; k++)
        changes[k][0] = changes[k][1] = 0;
    return p;
}

/* NaN and out-of-range readings are unknown to control and NaN in the file. */
static void test_nan_and_range(void **state)
{
    (void)state;
    struct plausibility p = make();
    double rec;
    assert_true(plaus_sample(&p, 1, 50, 1 * S, &rec) == 50 && rec == 50);
    assert_true(isnan(plaus_sample(&p, 1, NAN, 2 * S, &rec)) && isnan(rec));
    assert_int_equal(changes[PF_NAN][1], 1);
    assert_true(isnan(plaus_sample(&p, 1, 65000, 3 * S, &rec)) && isnan(rec));
    assert_int_equal(changes[PF_NAN][0], 1);
    assert_int_equal(changes[PF_RANGE][1], 1);
    assert_true(plaus_sample(&p, 1, 60, 4 * S, &rec) == 60);
    assert_int_equal(changes[PF_RANGE][0], 1);
    /* A channel that is not checked passes anything through. */
    assert_true(plaus_sample(&p, 0, 65000, 5 * S, &rec) == 65000 && rec == 65000);
    plaus_free(&p);
}

/* The same value for stuck_ns is a fault; a change ends it. The file keeps the values. */
static void test_stuck(void **state)
{
    (void)state;
    struct plausibility p = make();
    double rec;
    for (int64_t t = 0; t <= 4 * S; t += S)
        assert_true(plaus_sample(&p, 1, 42, t, &rec) == 42);
    assert_true(isnan(plaus_sample(&p, 1, 42, 5 * S, &rec)));
    assert_true(rec == 42);
    assert_int_equal(changes[PF_STUCK][1], 1);
    assert_true(plaus_sample(&p, 1, 42.5, 6 * S, &rec) == 42.5);
    assert_int_equal(changes[PF_STUCK][0], 1);
    plaus_free(&p);
}

/* No valid reading for lost_ns is a fault, found by the tick; a valid one ends it. */
static void test_lost(void **state)
{
    (void)state;
    struct plausibility p = make();
    double rec;
    plaus_sample(&p, 1, 10, 1 * S, &rec);
    plaus_tick(&p, 2 * S);
    assert_int_equal(changes[PF_LOST][1], 0);
    plaus_sample(&p, 1, NAN, 2 * S, &rec);         /* a NaN is not a valid reading */
    plaus_tick(&p, 3 * S);
    assert_int_equal(changes[PF_LOST][1], 1);
    assert_true(isnan(plaus_sample(&p, 1, NAN, 3 * S, &rec)));
    assert_true(plaus_sample(&p, 1, 11, 4 * S, &rec) == 11);
    assert_int_equal(changes[PF_LOST][0], 1);
    plaus_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nan_and_range),
        cmocka_unit_test(test_stuck),
        cmocka_unit_test(test_lost),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
