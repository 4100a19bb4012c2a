/* A wake-up for the event loop from any thread: an eventfd and a uv_poll_t. */
#include "loopwake.h"

#include <errno.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* The eventfd is readable: reset it and run the owner's callback. */
static void readable(uv_poll_t *p, int status, int events)
{
    (void)events;
    struct loopwake *w = p->data;
    uint64_t n;
    /* Reset before the callback: a send during it wakes the loop again. */
    while (read(w->fd, &n, sizeof n) < 0 && errno == EINTR)
        ;
    if (status == 0)
        w->cb(w);
}

int loopwake_init(uv_loop_t *loop, struct loopwake *w, loopwake_cb cb)
{
    w->cb = cb;
    w->close_cb = NULL;
    w->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->fd < 0)
        return -errno;
    int rc = uv_poll_init(loop, &w->poll, w->fd);
    if (rc == 0) {
        w->poll.data = w;
        rc = uv_poll_start(&w->poll, UV_READABLE, readable);
        if (rc < 0)
            uv_close((uv_handle_t *)&w->poll, NULL);
    }
    if (rc < 0) {
        close(w->fd);
        w->fd = -1;
    }
    return rc;
}

void loopwake_send(void *arg)
{
    struct loopwake *w = arg;
    uint64_t one = 1;
    /* Only EINTR can fail it here (the counter cannot reach its limit). */
    while (write(w->fd, &one, sizeof one) < 0 && errno == EINTR)
        ;
}

/* The loop has let go of the poll handle: close the eventfd, tell the owner. */
static void closed(uv_handle_t *h)
{
    struct loopwake *w = h->data;
    close(w->fd);
    w->fd = -1;
    h->data = w->data;
    if (w->close_cb != NULL)
        w->close_cb(h);
}

void loopwake_close(struct loopwake *w, uv_close_cb close_cb)
{
    if (w->fd < 0)
        return;     /* never opened (its init failed) */
    w->close_cb = close_cb;
    uv_close((uv_handle_t *)&w->poll, closed);
}
