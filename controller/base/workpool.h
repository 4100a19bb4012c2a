/*
 * Blocking work off the event loop (journal writes with their fsync,
 * protocol parsing, long replies) on a few worker threads; the loop hears of
 * each finished job through a loopwake.
 *
 * Why not uv_queue_work: libuv tells the loop of a finished job through a
 * uv_async_t, whose loop side spins while a worker is between marking it
 * pending and writing its eventfd. A worker preempted there (workers run at
 * normal priority) held a real-time loop (--realtime) spinning for tens of
 * milliseconds at a run's start, and every other run's setpoints waited
 * behind it. Here a worker's send is one write(2) and the loop never waits.
 *
 * One pool per loop, made at its first job (its workers are made by the
 * loop's thread: a real-time loop's SCHED_RESET_ON_FORK leaves them at normal
 * priority). Like uv_queue_work, a job keeps uv_run going until its after
 * callback has run. workpool_loop_close ends the loop's pool; call it once
 * uv_run has returned and before uv_loop_close.
 */
#ifndef PERFUSE_WORKPOOL_H
#define PERFUSE_WORKPOOL_H

#include <uv.h>

struct workpool_req;
/* Runs on a worker thread. */
typedef void (*workpool_work_cb)(struct workpool_req *req);
/* Runs on the loop's thread once work has returned; status is 0. */
typedef void (*workpool_after_cb)(struct workpool_req *req, int status);

/* A job; the caller owns it (usually inside its own struct) until after runs. */
struct workpool_req {
    void *data;                 /* the caller's */
    /* The pool's: */
    workpool_work_cb work;
    workpool_after_cb after;
    struct workpool_req *next;
};

/* Queue req on loop's pool (made if need be); loop thread. 0 or a negative errno. */
int workpool_queue(uv_loop_t *loop, struct workpool_req *req, workpool_work_cb work,
                   workpool_after_cb after);
/* End loop's pool, if it has one: run the loop until every job queued is
 * made and its after callback has run (callbacks may queue more), then stop
 * the workers and close the wake-up (the loop is run once more, without
 * waiting, for it). Loop thread, after uv_run has returned. */
void workpool_loop_close(uv_loop_t *loop);

#endif
