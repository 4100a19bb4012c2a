/*
 * A model responder: a thread on the device side of a line that answers every
 * command the driver sends with a simulator model, for tests that run a
 * driver against the simulator's independent device implementation rather
 * than a script.
 *
 * The model is reached only through the answer callback, so a line module's
 * handle op (struct sim_line_ops) and New Era's sim_newera_handle both fit:
 * the test wraps either in a small function over its own state.
 *
 * Threads: the responder calls answer with lock held. The test's main thread
 * holds lock while it reads or changes the model between driver calls, and
 * calls sim_responder_stop() before it frees the model.
 *
 * Ownership: the caller owns the struct, ctx and the descriptor; stopping
 * joins the thread and destroys the lock but closes nothing.
 */
#ifndef PERFUSE_TEST_SIM_RESPONDER_H
#define PERFUSE_TEST_SIM_RESPONDER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

/* Answer one command (CR stripped) into out; returns the reply's length, 0 for silence. */
typedef size_t (*sim_answer_fn)(void *ctx, const char *cmd, char *out, size_t len);

struct sim_responder {
    int fd;
    sim_answer_fn answer;
    void *ctx;
    pthread_mutex_t lock;       /* guards the model behind ctx between the test and the responder */
    atomic_int stop;
    pthread_t thread;
};

/* Start answering commands on fd with answer(ctx, ...); fails the test if it cannot. */
void sim_responder_start(struct sim_responder *s, int fd, sim_answer_fn answer, void *ctx);

/* Stop the responder and wait for it. */
void sim_responder_stop(struct sim_responder *s);

#endif
