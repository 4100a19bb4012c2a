/* Worker threads for the loop's blocking work, their completions sent through a loopwake. */
#include "workpool.h"
#include "loopwake.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define WORKERS 4           /* as many as libuv's own pool */
#define MAX_LOOPS 8

struct pool {
    uv_loop_t *loop;
    struct loopwake wake;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct workpool_req *todo, *todo_tail;     /* queued, oldest first (lock) */
    struct workpool_req *done, *done_tail;     /* finished, oldest first (lock) */
    bool stop;                                  /* lock */
    size_t outstanding;                         /* queued and not yet after'd; loop thread */
    pthread_t threads[WORKERS];
    size_t n_threads;
};

/* The pools by loop. Each loop's thread touches only its own entry, but
 * two loops may live on two threads: the table has a lock. */
static pthread_mutex_t pools_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pool *pools[MAX_LOOPS];

/* Append r to the list head/tail. */
static void append(struct workpool_req **head, struct workpool_req **tail, struct workpool_req *r)
{
    r->next = NULL;
    if (*head == NULL)
        *head = r;
    else
        (*tail)->next = r;
    *tail = r;
}

/* A worker: take the oldest job, run it, hand it back to the loop. */
static void *worker(void *arg)
{
    struct pool *p = arg;
    pthread_setname_np(pthread_self(), "worker");
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (p->todo == NULL && !p->stop)
            pthread_cond_wait(&p->cond, &p->lock);
        struct workpool_req *r = p->todo;
        if (r == NULL)
            break;      /* stopping, and nothing is left to do */
        p->todo = r->next;
        pthread_mutex_unlock(&p->lock);
        r->work(r);
        pthread_mutex_lock(&p->lock);
        append(&p->done, &p->done_tail, r);
        pthread_mutex_unlock(&p->lock);
        loopwake_send(&p->wake);
        pthread_mutex_lock(&p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* Run the after callbacks of the finished jobs, oldest first (loop thread). */
static void run_finished(struct pool *p)
{
    pthread_mutex_lock(&p->lock);
    struct workpool_req *r = p->done;
    p->done = p->done_tail = NULL;
    pthread_mutex_unlock(&p->lock);
    while (r != NULL) {
        struct workpool_req *next = r->next;
        /* Unref before the callback: it may queue the next job (and ref again). */
        if (--p->outstanding == 0)
            uv_unref((uv_handle_t *)&p->wake.poll);
        r->after(r, 0);
        r = next;
    }
}

/* The loop was woken: jobs have finished. */
static void woken(struct loopwake *w)
{
    run_finished(w->data);
}

/* The pool of loop, made if need be; NULL (errno-style rc) if it cannot be. */
static struct pool *pool_of(uv_loop_t *loop, int *rc)
{
    pthread_mutex_lock(&pools_lock);
    struct pool *p = NULL;
    size_t free_slot = MAX_LOOPS;
    for (size_t i = 0; i < MAX_LOOPS; i++) {
        if (pools[i] != NULL && pools[i]->loop == loop)
            p = pools[i];
        else if (pools[i] == NULL && free_slot == MAX_LOOPS)
            free_slot = i;
    }
    if (p != NULL || free_slot == MAX_LOOPS) {
        pthread_mutex_unlock(&pools_lock);
        *rc = p != NULL ? 0 : -EMFILE;
        return p;
    }
    p = calloc(1, sizeof *p);
    if (p == NULL) {
        pthread_mutex_unlock(&pools_lock);
        *rc = -ENOMEM;
        return NULL;
    }
    p->loop = loop;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    *rc = loopwake_init(loop, &p->wake, woken);
    if (*rc < 0) {
        pthread_cond_destroy(&p->cond);
        pthread_mutex_destroy(&p->lock);
        free(p);
        pthread_mutex_unlock(&pools_lock);
        return NULL;
    }
    p->wake.data = p;
    uv_unref((uv_handle_t *)&p->wake.poll);     /* idle, it keeps no loop going */
    for (size_t i = 0; i < WORKERS; i++)
        if (pthread_create(&p->threads[p->n_threads], NULL, worker, p) == 0)
            p->n_threads++;
    /* Kept even without workers: workpool_loop_close closes its wake-up. */
    pools[free_slot] = p;
    pthread_mutex_unlock(&pools_lock);
    return p;
}

int workpool_queue(uv_loop_t *loop, struct workpool_req *req, workpool_work_cb work,
                   workpool_after_cb after)
{
    int rc;
    struct pool *p = pool_of(loop, &rc);
    if (p == NULL)
        return rc;
    if (p->n_threads == 0)
        return -EAGAIN;     /* no worker could be started */
    req->work = work;
    req->after = after;
    if (p->outstanding++ == 0)
        uv_ref((uv_handle_t *)&p->wake.poll);
    pthread_mutex_lock(&p->lock);
    append(&p->todo, &p->todo_tail, req);
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->lock);
    return 0;
}

/* The loop has let go of the wake-up: free the pool. */
static void pool_closed(uv_handle_t *h)
{
    struct pool *p = h->data;
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

void workpool_loop_close(uv_loop_t *loop)
{
    pthread_mutex_lock(&pools_lock);
    struct pool *p = NULL;
    for (size_t i = 0; i < MAX_LOOPS && p == NULL; i++)
        if (pools[i] != NULL && pools[i]->loop == loop)
            p = pools[i];
    pthread_mutex_unlock(&pools_lock);
    if (p == NULL)
        return;
    /* Every job queued is made and its after callback run (which may queue
     * the next, as the journal writer does): a journal write asked for is a
     * journal write made. The pool's handle is referenced while jobs are
     * out, so each turn waits for one to finish. */
    while (p->outstanding > 0 && p->n_threads > 0)
        uv_run(loop, UV_RUN_ONCE);
    pthread_mutex_lock(&pools_lock);
    for (size_t i = 0; i < MAX_LOOPS; i++)
        if (pools[i] == p)
            pools[i] = NULL;
    pthread_mutex_unlock(&pools_lock);
    pthread_mutex_lock(&p->lock);
    p->stop = true;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    for (size_t i = 0; i < p->n_threads; i++)
        pthread_join(p->threads[i], NULL);
    loopwake_close(&p->wake, pool_closed);
    uv_run(loop, UV_RUN_NOWAIT);
}
