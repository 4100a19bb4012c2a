/*
 * A scripted responder: a thread on the device side of a line that expects
 * exact commands from the driver and sends canned replies, and a check
 * afterwards that the driver sent exactly the script.
 *
 * Threads: the test's main thread calls script_start(), then drives the code
 * under test, then script_finish(). Between the two the responder thread owns
 * the descriptor's device side and the script's fields; done and repeats may
 * be read by the main thread at any time, mismatch only after script_finish().
 *
 * Ownership: the caller owns struct script and the steps, which must outlive
 * script_finish(); the descriptor stays the caller's and is not closed.
 */
#ifndef PERFUSE_TEST_PTY_SCRIPT_H
#define PERFUSE_TEST_PTY_SCRIPT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

/* The responder gives up on a silent driver after this. */
#define SCRIPT_WAIT_MS 3000
/* A repeating step ends when the driver is quiet this long. */
#define SCRIPT_REPEAT_IDLE_MS 400

/* One expected command (up to and including its CR) and the reply to it. */
struct step {
    const char *expect;
    const char *reply;  /* NULL: stay silent */
    size_t split;       /* > 0: send the reply in two writes, split after this many bytes */
    bool repeat;        /* answer the same command again until the driver goes quiet */
};

struct script {
    int fd;
    const struct step *steps;
    size_t n;
    atomic_size_t done;         /* steps answered */
    atomic_int repeats;         /* extra answers given by repeating steps */
    char mismatch[256];         /* the first difference; written only by the responder */
    pthread_t thread;
};

/* Read one command, up to and including its CR, waiting at most ms per byte; false on time-out. */
bool script_read_command(int fd, char *line, size_t len, int ms);

/* Start a responder thread playing steps on fd; fails the test if it cannot. */
void script_start(struct script *s, int fd, const struct step *steps, size_t n);

/* Join the responder; fail on a mismatch, a step not played, or bytes beyond the script. */
void script_finish(struct script *s);

#endif
