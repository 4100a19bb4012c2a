/* The loop's worker threads: every job runs once off the loop and its after
 * callback on it, a job keeps uv_run going until it is done, an idle pool
 * keeps nothing going, and closing leaves the loop closable. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "base/workpool.h"

#define JOBS 200

struct job {
    struct workpool_req req;
    int index;
    pthread_t worked_on;
    int afters;
    atomic_int *worked;
};

static pthread_t loop_thread;
static int afters_total;
static int chained;

/* A worker: note where it ran, and take a little time. */
static void work(struct workpool_req *r)
{
    struct job *j = r->data;
    j->worked_on = pthread_self();
    atomic_fetch_add(j->worked, 1);
    struct timespec ts = { 0, 100000 };
    nanosleep(&ts, NULL);
}

/* The loop: its after callback, on the loop's thread. */
static void after(struct workpool_req *r, int status)
{
    struct job *j = r->data;
    assert_int_equal(status, 0);
    assert_true(pthread_equal(pthread_self(), loop_thread));
    assert_false(pthread_equal(j->worked_on, loop_thread));
    j->afters++;
    afters_total++;
}

/* Each of many jobs ran once on a worker and once after on the loop; uv_run
 * returned only once all were done, and the loop closes cleanly. */
static void test_every_job_once(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    loop_thread = pthread_self();
    atomic_int worked = 0;
    struct job *jobs = calloc(JOBS, sizeof *jobs);
    afters_total = 0;
    for (int i = 0; i < JOBS; i++) {
        jobs[i] = (struct job){ .index = i, .worked = &worked };
        jobs[i].req.data = &jobs[i];
        assert_int_equal(workpool_queue(&loop, &jobs[i].req, work, after), 0);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(atomic_load(&worked), JOBS);
    assert_int_equal(afters_total, JOBS);
    for (int i = 0; i < JOBS; i++)
        assert_int_equal(jobs[i].afters, 1);
    /* Idle, the pool keeps no loop going: this returns at once. */
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    workpool_loop_close(&loop);
    assert_int_equal(uv_loop_close(&loop), 0);
    free(jobs);
}

/* The loop a chained job queues on. */
static uv_loop_t *chain_loop;

/* An after callback that queues the next job on chain_loop (as the journal
 * writer does): the chain runs to its end within one uv_run. */
static void after_requeue(struct workpool_req *r, int status)
{
    assert_int_equal(status, 0);
    chained++;
    if (chained < 20)
        assert_int_equal(workpool_queue(chain_loop, r, work, after_requeue), 0);
}

static void test_chain(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    chain_loop = &loop;
    loop_thread = pthread_self();
    atomic_int worked = 0;
    struct job j = { .worked = &worked };
    j.req.data = &j;
    chained = 0;
    assert_int_equal(workpool_queue(&loop, &j.req, work, after_requeue), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(chained, 20);
    assert_int_equal(atomic_load(&worked), 20);
    workpool_loop_close(&loop);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* Closing runs what was queued and never waited for, and what its after
 * callbacks queue: a journal write asked for is made even if the loop
 * stopped before it finished. */
static void test_close_finishes_queued(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    loop_thread = pthread_self();
    atomic_int worked = 0;
    struct job jobs[8];
    afters_total = 0;
    for (int i = 0; i < 8; i++) {
        jobs[i] = (struct job){ .index = i, .worked = &worked };
        jobs[i].req.data = &jobs[i];
        assert_int_equal(workpool_queue(&loop, &jobs[i].req, work, after), 0);
    }
    /* And a chain whose after callbacks queue the next job. */
    struct job c = { .worked = &worked };
    c.req.data = &c;
    chain_loop = &loop;
    chained = 0;
    assert_int_equal(workpool_queue(&loop, &c.req, work, after_requeue), 0);
    workpool_loop_close(&loop);     /* without uv_run */
    assert_int_equal(atomic_load(&worked), 8 + 20);
    assert_int_equal(afters_total, 8);
    assert_int_equal(chained, 20);
    assert_int_equal(uv_loop_close(&loop), 0);
    /* A loop with no pool: nothing to do. */
    workpool_loop_close(&loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_job_once),
        cmocka_unit_test(test_chain),
        cmocka_unit_test(test_close_finishes_queued),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
