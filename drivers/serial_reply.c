/* Waiting for one reply on a serial line: the loop every ASCII driver shares. */
#include "serial_reply.h"
#include "base/timeutil.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define REPLY_BUF 1024

/* Explain a reply that did not come in time. */
static int timed_out(struct bus_link *link, unsigned ms, const struct serial_wait *w,
                     const char *buf, size_t got, const char *other)
{
    char seen[64] = "";
    const char *hint = w->hint ? w->hint : "";
    if (got > 0)
        serial_escape(buf, got, seen, sizeof seen);
    if (other[0] != '\0' && w->who != NULL)
        link_seterr(link, "%s: no reply to '%s' from %s within %u ms (%s answered: is the "
                    "address right?)", w->dev, w->cmd, w->who, ms, other);
    else if (got > 0 && (w->started == NULL || w->started(buf, got)))
        link_seterr(link, "%s: incomplete reply to '%s' within %u ms: '%s'%s", w->dev, w->cmd,
                    ms, seen, hint);
    else if (got > 0)
        link_seterr(link, "%s: no reply to '%s' within %u ms, only noise: '%s'%s", w->dev,
                    w->cmd, ms, seen, hint);
    else
        link_seterr(link, "%s: no reply to '%s' within %u ms%s", w->dev, w->cmd, ms, hint);
    return -ETIMEDOUT;
}

/* Read until our reply is complete; skip other devices' replies. */
int serial_await_reply(struct bus_link *link, unsigned ms, const struct serial_wait *w)
{
    char in[REPLY_BUF], other[32] = "";
    size_t got = 0;
    int64_t deadline = time_mono_ms() + ms;
    for (;;) {
        int64_t left = deadline - time_mono_ms();
        ssize_t r = left > 0 ? serial_read(link->serial, in + got, sizeof in - got, (unsigned)left) : 0;
        if (r < 0) {
            link_seterr(link, "%s: line lost waiting for the reply to '%s': %s", w->dev, w->cmd,
                        strerror((int)-r));
            return -ENOTCONN;
        }
        if (r == 0)
            return timed_out(link, ms, w, in, got, other);
        got += (size_t)r;
        int used;
        bool ours = false;
        char from[32] = "";
        while ((used = w->take(w->ctx, in, got, &ours, from, sizeof from)) > 0) {
            if (ours)
                return 0;
            if (from[0] != '\0')
                snprintf(other, sizeof other, "%s", from);
            memmove(in, in + used, got - (size_t)used);
            got -= (size_t)used;
        }
        if (used < 0) {
            char seen[96];
            serial_escape(in, got, seen, sizeof seen);
            link_seterr(link, "%s: garbled reply to '%s': '%s'%s", w->dev, w->cmd, seen,
                        w->hint ? w->hint : "");
            return -EBADMSG;
        }
        if (got == sizeof in)
            got = 0;    /* a full buffer without one frame is noise */
    }
}

/* Send a command and wait for its reply. */
int serial_exchange(struct bus_link *link, const void *out, size_t n, const struct serial_wait *w)
{
    if (link->serial == NULL) {
        link_seterr(link, "%s: the line is not open", w->dev);
        return -ENOTCONN;
    }
    unsigned ms = link_timeout_ms(link->cfg);
    serial_drain(link->serial);     /* a late reply to an earlier command is not this one's */
    int rc = serial_write(link->serial, out, n, ms);
    if (rc < 0) {
        link_seterr(link, "%s: cannot send '%s': %s", w->dev, w->cmd, strerror(-rc));
        return rc == -ETIMEDOUT ? -ETIMEDOUT : -ENOTCONN;
    }
    return serial_await_reply(link, ms, w);
}
