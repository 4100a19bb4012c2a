/*
 * Waiting for one reply on a serial line, for drivers of ASCII devices: read
 * until the driver's parser finds a complete frame that answers us, skipping
 * frames from other devices on a shared line, and explain a timeout or a
 * garbled reply in one line in link->err. The framing itself stays in each
 * driver: the wait knows nothing of any device's protocol.
 *
 * Bus thread only (it reads the link's port).
 */
#ifndef PERFUSE_SERIAL_REPLY_H
#define PERFUSE_SERIAL_REPLY_H

#include <stdbool.h>
#include <stddef.h>

#include "link.h"

struct serial_wait {
    const char *dev;            /* the device's name, for messages */
    const char *cmd;            /* the command as messages show it */
    const char *who;            /* "address 3": who must answer, or NULL if replies carry no address */
    const char *hint;           /* appended to timeout and garble messages, or NULL */
    /*
     * Parse the head of buf[0..len): return the bytes of the first complete
     * frame (> 0) with *ours set, 0 if no frame is complete yet, or -EBADMSG.
     * A frame that is not ours names its sender in other ("address 1"). The
     * parsed reply stays in ctx; the last one parsed is ours when the wait
     * returns 0.
     */
    int (*take)(void *ctx, const char *buf, size_t len, bool *ours, char *other, size_t other_len);
    void *ctx;
    /* Whether leftover bytes hold the start of a frame (an incomplete reply)
     * rather than noise; NULL counts any bytes as an incomplete reply. */
    bool (*started)(const char *buf, size_t len);
};

/* Wait up to ms for our reply. Returns 0, -ETIMEDOUT, -EBADMSG or -ENOTCONN
 * (the line was lost), with the explanation in link->err on error. */
int serial_await_reply(struct bus_link *link, unsigned ms, const struct serial_wait *w);

/* One exchange: discard stale input, send out[0..n) and wait for our reply,
 * each within the link's time-out. Returns as serial_await_reply, and
 * -ENOTCONN if the line is not open or the bytes cannot be sent. */
int serial_exchange(struct bus_link *link, const void *out, size_t n, const struct serial_wait *w);

#endif
