/* Real (timerfd) and virtual (discrete-event) clocks behind one interface. */
#include "clock.h"
#include "base/timeutil.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

/* A real clock on loop. */
void pclock_init_real(struct pclock *c, uv_loop_t *loop)
{
    memset(c, 0, sizeof *c);
    c->loop = loop;
}

/* A virtual clock starting at start_ns. */
void pclock_init_virtual(struct pclock *c, int64_t start_ns)
{
    memset(c, 0, sizeof *c);
    c->is_virtual = true;
    c->now = start_ns;
}

/* Free the virtual timer list. */
void pclock_free(struct pclock *c)
{
    free(c->timers);
    c->timers = NULL;
    c->n_timers = c->cap = 0;
}

/* The clock's current time in ns. */
int64_t pclock_now(struct pclock *c)
{
    return c->is_virtual ? c->now : (int64_t)time_mono_ns();
}

/* libuv saw the timerfd become readable: consume it and fire. */
static void real_fired(uv_poll_t *p, int status, int events)
{
    struct ptimer *t = p->data;
    (void)events;
    uint64_t expirations;
    if (read(t->fd, &expirations, sizeof expirations) != sizeof expirations && status == 0)
        return;     /* spurious wake-up: the timer was re-armed meanwhile */
    if (!t->armed)
        return;
    t->armed = false;
    t->cb(t);
}

/* Prepare a timer. */
int ptimer_init(struct pclock *c, struct ptimer *t, ptimer_cb cb, void *data)
{
    memset(t, 0, sizeof *t);
    t->clk = c;
    t->cb = cb;
    t->data = data;
    t->fd = -1;
    if (c->is_virtual) {
        if (c->n_timers == c->cap) {
            size_t cap = c->cap ? c->cap * 2 : 8;
            struct ptimer **v = realloc(c->timers, cap * sizeof *v);
            if (v == NULL)
                return -ENOMEM;
            c->timers = v;
            c->cap = cap;
        }
        c->timers[c->n_timers++] = t;
        return 0;
    }
    t->fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (t->fd < 0)
        return -errno;
    int rc = uv_poll_init(c->loop, &t->poll, t->fd);
    if (rc < 0) {
        close(t->fd);
        t->fd = -1;
        return rc;
    }
    t->poll.data = t;
    return uv_poll_start(&t->poll, UV_READABLE, real_fired);
}

/* Arm t to fire once at an absolute deadline. */
int ptimer_start(struct ptimer *t, int64_t deadline)
{
    t->deadline = deadline;
    t->armed = true;
    if (t->clk->is_virtual)
        return 0;
    if (deadline <= 0)
        deadline = 1;   /* an all-zero it_value would disarm the timerfd */
    struct itimerspec its = { 0 };
    its.it_value.tv_sec = deadline / NS_PER_SEC;
    its.it_value.tv_nsec = deadline % NS_PER_SEC;
    if (timerfd_settime(t->fd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
        return -errno;
    return 0;
}

/* Disarm t. */
void ptimer_stop(struct ptimer *t)
{
    t->armed = false;
    if (!t->clk->is_virtual && t->fd >= 0) {
        struct itimerspec its = { 0 };
        timerfd_settime(t->fd, 0, &its, NULL);
    }
}

/* The poll handle is closed: release the fd and tell the owner. */
static void real_closed(uv_handle_t *h)
{
    struct ptimer *t = h->data;
    close(t->fd);
    t->fd = -1;
    if (t->closed)
        t->closed(t);
}

/* Release t. */
void ptimer_close(struct ptimer *t, void (*closed)(struct ptimer *t))
{
    t->armed = false;
    struct pclock *c = t->clk;
    if (c == NULL) {
        if (closed)
            closed(t);
        return;
    }
    if (c->is_virtual) {
        for (size_t i = 0; i < c->n_timers; i++)
            if (c->timers[i] == t) {
                c->timers[i] = c->timers[--c->n_timers];
                break;
            }
        if (closed)
            closed(t);
        return;
    }
    t->closed = closed;
    if (t->fd < 0) {
        if (closed)
            closed(t);
        return;
    }
    uv_poll_stop(&t->poll);
    uv_close((uv_handle_t *)&t->poll, real_closed);
}

/* The earliest armed virtual timer, or NULL. */
static struct ptimer *virtual_earliest(struct pclock *c)
{
    struct ptimer *best = NULL;
    for (size_t i = 0; i < c->n_timers; i++) {
        struct ptimer *t = c->timers[i];
        if (t->armed && (best == NULL || t->deadline < best->deadline))
            best = t;
    }
    return best;
}

/* Fire the earliest armed virtual timer. */
bool pclock_virtual_step(struct pclock *c)
{
    struct ptimer *t = virtual_earliest(c);
    if (t == NULL)
        return false;
    if (t->deadline > c->now)
        c->now = t->deadline;
    t->armed = false;
    t->cb(t);
    return true;
}

/* The earliest armed virtual deadline. */
int64_t pclock_virtual_next(struct pclock *c)
{
    struct ptimer *t = virtual_earliest(c);
    return t ? t->deadline : INT64_MAX;
}
