/*
 * The scripted responder thread and the check that the driver sent exactly
 * the script.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "pty_script.h"

/* Read one command, up to and including its CR, waiting at most ms per byte; false on time-out. */
bool script_read_command(int fd, char *line, size_t len, int ms)
{
    size_t n = 0;
    while (n + 1 < len) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, ms) <= 0)
            return false;
        if (read(fd, &line[n], 1) != 1)
            return false;
        if (line[n++] == '\r')
            break;
    }
    line[n] = '\0';
    return true;
}

/* Wait a little: only to split a reply across two reads, never to synchronise. */
static void pause_ms(long ms)
{
    struct timespec ts = { 0, ms * 1000000L };
    nanosleep(&ts, NULL);
}

/* Write a step's reply, in two parts if it says so. */
static bool answer(int fd, const struct step *st)
{
    if (st->reply == NULL)
        return true;
    size_t len = strlen(st->reply), first = st->split ? st->split : len;
    bool ok = write(fd, st->reply, first) == (ssize_t)first;
    if (ok && first < len) {
        pause_ms(30);
        ok = write(fd, st->reply + first, len - first) == (ssize_t)(len - first);
    }
    return ok;
}

/* Copy text into out with CR, LF and other control bytes spelled out, for messages. */
static const char *visible(const char *text, char *out, size_t len)
{
    size_t n = 0;
    for (const unsigned char *c = (const unsigned char *)text; *c && n + 5 < len; c++) {
        if (*c == '\r')
            n += (size_t)snprintf(out + n, len - n, "\\r");
        else if (*c == '\n')
            n += (size_t)snprintf(out + n, len - n, "\\n");
        else if (*c < 0x20 || *c >= 0x7f)
            n += (size_t)snprintf(out + n, len - n, "\\x%02x", *c);
        else
            out[n++] = (char)*c;
    }
    out[n] = '\0';
    return out;
}

/* Record the first difference and print it at once. */
static void __attribute__((format(printf, 2, 3))) mismatch(struct script *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->mismatch, sizeof s->mismatch, fmt, ap);
    va_end(ap);
    /* a driver call that fails on it ends the test before script_finish() could say why */
    print_error("responder: %s\n", s->mismatch);
}

/* The responder thread: play the script, stop at the first surprise. */
static void *play(void *arg)
{
    struct script *s = arg;
    char line[128], got[96], want[96];
    bool have = false;      /* line holds a command read ahead by a repeating step */
    for (size_t i = 0; i < s->n; i++) {
        const struct step *st = &s->steps[i];
        if (!have && !script_read_command(s->fd, line, sizeof line, SCRIPT_WAIT_MS)) {
            mismatch(s, "step %zu: no command (expected '%s')", i,
                     visible(st->expect, want, sizeof want));
            return NULL;
        }
        have = false;
        if (strcmp(line, st->expect) != 0) {
            mismatch(s, "step %zu: got '%s', expected '%s'", i, visible(line, got, sizeof got),
                     visible(st->expect, want, sizeof want));
            return NULL;
        }
        if (!answer(s->fd, st)) {
            mismatch(s, "step %zu: cannot write the reply", i);
            return NULL;
        }
        while (st->repeat && script_read_command(s->fd, line, sizeof line, SCRIPT_REPEAT_IDLE_MS)) {
            if (strcmp(line, st->expect) != 0) {
                have = true;
                break;
            }
            atomic_fetch_add(&s->repeats, 1);
            if (!answer(s->fd, st)) {
                mismatch(s, "step %zu: cannot write a repeated reply", i);
                return NULL;
            }
        }
        atomic_store(&s->done, i + 1);
    }
    /* a command read ahead after the last step is one the script does not have */
    if (have)
        mismatch(s, "the driver sent more than the script: '%s'", visible(line, got, sizeof got));
    return NULL;
}

/* Start a responder thread playing steps on fd; fails the test if it cannot. */
void script_start(struct script *s, int fd, const struct step *steps, size_t n)
{
    s->fd = fd;
    s->steps = steps;
    s->n = n;
    atomic_store(&s->done, 0);
    atomic_store(&s->repeats, 0);
    s->mismatch[0] = '\0';
    assert_int_equal(pthread_create(&s->thread, NULL, play, s), 0);
}

/* Join the responder; fail on a mismatch, a step not played, or bytes beyond the script. */
void script_finish(struct script *s)
{
    assert_int_equal(pthread_join(s->thread, NULL), 0);
    if (s->mismatch[0])
        fail_msg("%s", s->mismatch);
    assert_int_equal(atomic_load(&s->done), s->n);
    /* the driver calls have returned, so anything more it sent is already waiting */
    struct pollfd p = { .fd = s->fd, .events = POLLIN };
    if (poll(&p, 1, 0) == 1) {
        char extra[64] = "";
        ssize_t got = read(s->fd, extra, sizeof extra - 1);
        char shown[256];
        fail_msg("the driver sent more than the script: '%s'",
                 got > 0 ? visible(extra, shown, sizeof shown) : "?");
    }
}
