/*
 * Two clocks behind one interface. The real clock is CLOCK_MONOTONIC with
 * one-shot timerfd timers armed at absolute deadlines (TFD_TIMER_ABSTIME),
 * watched by the libuv loop: libuv's own timers have millisecond resolution
 * and repeating ones drift. The virtual clock is a discrete-event clock that
 * jumps to the next deadline, for simulation in virtual time.
 *
 * All times are nanoseconds on the clock's own time line. Loop thread only.
 */
#ifndef PERFUSE_CLOCK_H
#define PERFUSE_CLOCK_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

struct pclock;
struct ptimer;

typedef void (*ptimer_cb)(struct ptimer *t);

/* A one-shot timer. Embed it; ptimer_init it; ptimer_close it before freeing. */
struct ptimer {
    struct pclock *clk;
    ptimer_cb cb;
    void *data;                 /* for the owner */
    int64_t deadline;
    bool armed;
    /* real clock */
    int fd;
    uv_poll_t poll;
    void (*closed)(struct ptimer *t);
};

struct pclock {
    bool is_virtual;
    uv_loop_t *loop;            /* real clock */
    int64_t now;                /* virtual clock */
    struct ptimer **timers;     /* virtual clock: registered timers */
    size_t n_timers, cap;
};

/* A real clock on loop. */
void pclock_init_real(struct pclock *c, uv_loop_t *loop);
/* A virtual clock starting at start_ns. */
void pclock_init_virtual(struct pclock *c, int64_t start_ns);
/* Free what the clock holds (the virtual timer list). Timers must be closed. */
void pclock_free(struct pclock *c);

/* The clock's current time in ns. */
int64_t pclock_now(struct pclock *c);

/* Prepare a timer. Returns 0 or a negative errno. */
int ptimer_init(struct pclock *c, struct ptimer *t, ptimer_cb cb, void *data);
/* Arm t to fire once at the absolute time deadline (re-arming replaces). */
int ptimer_start(struct ptimer *t, int64_t deadline);
/* Disarm t. */
void ptimer_stop(struct ptimer *t);
/* Release t; closed (may be NULL) runs once its memory may be freed. */
void ptimer_close(struct ptimer *t, void (*closed)(struct ptimer *t));

/* Virtual clock: fire the earliest armed timer, jumping time to its deadline.
 * Returns false when no timer is armed. */
bool pclock_virtual_step(struct pclock *c);
/* Virtual clock: the earliest armed deadline, or INT64_MAX. */
int64_t pclock_virtual_next(struct pclock *c);

#endif
