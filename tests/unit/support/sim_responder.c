/*
 * The model responder thread.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <poll.h>
#include <stdbool.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "pty_script.h"
#include "sim_responder.h"

/* How often the responder looks at its stop flag while the line is quiet. */
#define SIM_RESPONDER_IDLE_MS 20

/* The responder thread: answer each command until told to stop. */
static void *respond(void *arg)
{
    struct sim_responder *s = arg;
    char line[128];
    while (!atomic_load(&s->stop)) {
        /* wait for the first byte here, so that a command is then read whole however slow its bytes */
        struct pollfd p = { .fd = s->fd, .events = POLLIN };
        if (poll(&p, 1, SIM_RESPONDER_IDLE_MS) <= 0)
            continue;
        if (!script_read_command(s->fd, line, sizeof line, SCRIPT_WAIT_MS))
            continue;
        line[strcspn(line, "\r")] = '\0';
        char out[256];
        pthread_mutex_lock(&s->lock);
        size_t len = s->answer(s->ctx, line, out, sizeof out);
        pthread_mutex_unlock(&s->lock);
        if (len > 0 && write(s->fd, out, len) != (ssize_t)len)
            break;
    }
    return NULL;
}

/* Start answering commands on fd with answer(ctx, ...); fails the test if it cannot. */
void sim_responder_start(struct sim_responder *s, int fd, sim_answer_fn answer, void *ctx)
{
    s->fd = fd;
    s->answer = answer;
    s->ctx = ctx;
    atomic_store(&s->stop, 0);
    assert_int_equal(pthread_mutex_init(&s->lock, NULL), 0);
    assert_int_equal(pthread_create(&s->thread, NULL, respond, s), 0);
}

/* Stop the responder and wait for it. */
void sim_responder_stop(struct sim_responder *s)
{
    atomic_store(&s->stop, 1);
    assert_int_equal(pthread_join(s->thread, NULL), 0);
    pthread_mutex_destroy(&s->lock);
}
