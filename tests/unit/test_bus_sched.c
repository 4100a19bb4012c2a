/* The bus's read-scheduling rule against a fake clock: a read that would
 * overlap a due setpoint is held back, one that fits is sent. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "drivers/bus_sched.h"

#define MS 1000000LL

static void test_a_read_that_would_overlap_a_setpoint_is_held_back(void **state)
{
    (void)state;
    int64_t now = 80 * MS, until = 0;
    /* Due now, 25 ms long, setpoint at 100 ms: it would end at 105 ms. */
    assert_false(bus_sched_read_fits(now, 25 * MS, 100 * MS));
    assert_int_equal(bus_sched_next(now, 100 * MS, now, 25 * MS, &until), BUS_SCHED_WAIT);
    /* The thread waits (wakeable) until the last stretch, then sleeps to the deadline. */
    assert_int_equal(until, 100 * MS - BUS_SCHED_FINAL_NS);
    now = until;
    assert_int_equal(bus_sched_next(now, 100 * MS, 80 * MS, 25 * MS, &until), BUS_SCHED_SLEEP);
    assert_int_equal(until, 100 * MS);
}

static void test_a_read_that_fits_before_the_setpoint_is_sent(void **state)
{
    (void)state;
    int64_t until = -1;
    assert_true(bus_sched_read_fits(50 * MS, 25 * MS, 100 * MS));
    assert_int_equal(bus_sched_next(50 * MS, 100 * MS, 50 * MS, 25 * MS, &until), BUS_SCHED_READ);
    /* The guard counts: ending exactly at the deadline is too late. */
    assert_false(bus_sched_read_fits(75 * MS, 25 * MS, 100 * MS));
    assert_true(bus_sched_read_fits(75 * MS - BUS_SCHED_GUARD_NS, 25 * MS, 100 * MS));
}

static void test_without_setpoints_reads_go_when_due(void **state)
{
    (void)state;
    int64_t until = -1;
    assert_int_equal(bus_sched_next(10 * MS, INT64_MAX, 10 * MS, 500 * MS, &until), BUS_SCHED_READ);
    assert_int_equal(bus_sched_next(10 * MS, INT64_MAX, 30 * MS, 5 * MS, &until), BUS_SCHED_WAIT);
    assert_int_equal(until, 30 * MS);
    assert_int_equal(bus_sched_next(10 * MS, INT64_MAX, INT64_MAX, 0, &until), BUS_SCHED_WAIT);
    assert_int_equal(until, INT64_MAX);
}

static void test_a_read_not_yet_due_wakes_the_thread_before_the_setpoint(void **state)
{
    (void)state;
    int64_t until = -1;
    assert_int_equal(bus_sched_next(10 * MS, 100 * MS, 40 * MS, 5 * MS, &until), BUS_SCHED_WAIT);
    assert_int_equal(until, 40 * MS);
    /* A setpoint sooner than the read: wake for the setpoint's last stretch. */
    assert_int_equal(bus_sched_next(10 * MS, 30 * MS, 40 * MS, 5 * MS, &until), BUS_SCHED_WAIT);
    assert_int_equal(until, 30 * MS - BUS_SCHED_FINAL_NS);
}

static void test_the_estimate_is_a_high_percentile_of_recent_transactions(void **state)
{
    (void)state;
    struct txn_estimate e = { 0 };
    for (int i = 0; i < TXN_MIN_SAMPLES - 1; i++)
        txn_estimate_add(&e, 10 * MS);
    assert_int_equal(txn_estimate_get(&e, 77), 77);     /* too few: the fallback */
    for (int i = 0; i < 200; i++)
        txn_estimate_add(&e, (10 + i % 10) * MS);
    txn_estimate_add(&e, 90 * MS);                      /* one outlier in 64 */
    int64_t est = txn_estimate_get(&e, 0);
    assert_true(est >= 19 * MS && est < 90 * MS);
    txn_estimate_add(&e, 80 * MS);                      /* two: the 98th percentile is the second */
    assert_int_equal(txn_estimate_get(&e, 0), 80 * MS);
}

/* A line on a fake clock: setpoints every 100 ms (each a 10 ms transaction)
 * and reads every 25 ms (11 ms each), for 10 s. Returns the latest setpoint
 * start after its deadline; *reads counts the reads done. rule false: a read
 * goes whenever it is due (the behaviour before the rule). */
static int64_t fake_line(bool rule, int *reads)
{
    const int64_t sp_period = 100 * MS, sp_txn = 10 * MS, rd_period = 25 * MS, rd_txn = 11 * MS;
    int64_t t = 0, next_sp = 7 * MS, next_rd = 0, worst = 0;
    struct txn_estimate e = { 0 };
    *reads = 0;
    while (t < 10000 * MS) {
        if (next_sp <= t) {
            if (t - next_sp > worst)
                worst = t - next_sp;
            t += sp_txn;
            next_sp += sp_period;
            continue;
        }
        int64_t until = INT64_MAX;
        enum bus_sched_action a = rule ? bus_sched_next(t, next_sp, next_rd,
                                                        txn_estimate_get(&e, 20 * MS), &until)
                                       : next_rd <= t ? BUS_SCHED_READ : BUS_SCHED_WAIT;
        if (!rule && a == BUS_SCHED_WAIT)
            until = next_rd < next_sp ? next_rd : next_sp;
        if (a == BUS_SCHED_READ) {
            t += rd_txn;
            txn_estimate_add(&e, rd_txn);
            (*reads)++;
            next_rd += rd_period;
            if (next_rd <= t - rd_period)
                next_rd = t;
        } else {
            assert_true(until > t);
            t = until;
        }
    }
    return worst;
}

static void test_on_a_fake_line_setpoints_leave_on_time_and_reads_fill_the_gaps(void **state)
{
    (void)state;
    int free_reads, ruled_reads;
    int64_t late_free = fake_line(false, &free_reads);
    int64_t late_ruled = fake_line(true, &ruled_reads);
    print_message("fake line: without the rule %d reads, worst setpoint %.1f ms late; "
                  "with it %d reads, worst %.1f ms late\n", free_reads, late_free / 1e6,
                  ruled_reads, late_ruled / 1e6);
    assert_true(late_free > 0);         /* reads do get in the way without the rule */
    assert_int_equal(late_ruled, 0);
    assert_true(ruled_reads >= free_reads * 9 / 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_read_that_would_overlap_a_setpoint_is_held_back),
        cmocka_unit_test(test_a_read_that_fits_before_the_setpoint_is_sent),
        cmocka_unit_test(test_without_setpoints_reads_go_when_due),
        cmocka_unit_test(test_a_read_not_yet_due_wakes_the_thread_before_the_setpoint),
        cmocka_unit_test(test_the_estimate_is_a_high_percentile_of_recent_transactions),
        cmocka_unit_test(test_on_a_fake_line_setpoints_leave_on_time_and_reads_fill_the_gaps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
