/*
 * A wake-up for the event loop that any thread may send: an eventfd watched
 * by the loop (uv_poll_t).
 *
 * Why not uv_async_t: libuv's loop side spins (with sched_yield) while a
 * sender is between marking the handle pending and writing its eventfd. A
 * sender preempted in that window (the recorder or the MQTT client, on a busy
 * machine) makes the loop spin for as long, and a real-time loop (--realtime)
 * spins at real-time priority, which delays every setpoint behind it. Here a
 * send is one write(2) and the loop never waits for a sender.
 *
 * Several sends before the loop turns give one callback. The loop owns the
 * struct; it must outlive every sender (stop the senders before closing).
 */
#ifndef PERFUSE_LOOPWAKE_H
#define PERFUSE_LOOPWAKE_H

#include <uv.h>

struct loopwake;
typedef void (*loopwake_cb)(struct loopwake *w);

struct loopwake {
    uv_poll_t poll;
    int fd;                 /* the eventfd; -1 when closed */
    loopwake_cb cb;
    uv_close_cb close_cb;
    void *data;             /* the owner's */
};

/* Open w on loop; cb runs on the loop after sends. 0 or a negative errno. */
int loopwake_init(uv_loop_t *loop, struct loopwake *w, loopwake_cb cb);
/* Wake the loop (any thread; never blocks). arg is the struct loopwake, so
 * that it fits a notify(void *) callback. */
void loopwake_send(void *arg);
/* Close w; close_cb (may be NULL) gets the poll handle, its data set to
 * w->data, once the loop lets go of it. A w whose init failed is left as it
 * is (no callback). */
void loopwake_close(struct loopwake *w, uv_close_cb close_cb);

#endif
