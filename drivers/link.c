/*
 * Bus links: open and close the transport of a serial, Modbus RTU or Modbus
 * TCP bus. libmodbus's own error recovery is always off: with it on, a dead
 * device can keep a call reconnecting forever, and the bus layer reconnects
 * by itself with back-off. RTU stays in libmodbus's default RS-232 mode:
 * RS-485 mode is an ioctl that ptys refuse (ENOTTY), and USB RS-485 adapters
 * switch direction in hardware.
 */
#include "link.h"
#include "base/timeutil.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#define LINK_DEFAULT_TIMEOUT_MS 200
#define LINK_QUIET_MIN_MS 20

static const char *const type_names[] = {
    [LINK_SERIAL] = "serial", [LINK_MODBUS_RTU] = "modbus-rtu", [LINK_MODBUS_TCP] = "modbus-tcp",
};
#define N_TYPES (sizeof type_names / sizeof type_names[0])

/* Parse a bus type name. */
int link_type_parse(const char *s, enum link_type *out)
{
    for (size_t i = 0; s != NULL && i < N_TYPES; i++)
        if (strcmp(s, type_names[i]) == 0) {
            *out = (enum link_type)i;
            return 0;
        }
    return -EINVAL;
}

/* The name of a bus type, as the rig file writes it. */
const char *link_type_name(enum link_type t)
{
    return (size_t)t < N_TYPES ? type_names[t] : "?";
}

/* Set link->err. */
void link_seterr(struct bus_link *link, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(link->err, sizeof link->err, fmt, ap);
    va_end(ap);
}

/* The per-transaction time-out of a link, in ms. */
uint32_t link_timeout_ms(const struct link_config *cfg)
{
    return cfg != NULL && cfg->timeout_ms ? cfg->timeout_ms : LINK_DEFAULT_TIMEOUT_MS;
}

/* Free a Modbus context that failed half-way through opening. */
static int modbus_fail(struct bus_link *link, int rc)
{
    modbus_free(link->mb);
    link->mb = NULL;
    return rc;
}

/* Lock an RTU line exclusively, as serial.c does for plain serial lines. */
static int lock_rtu(struct bus_link *link, const struct link_config *cfg)
{
    if (flock(modbus_get_socket(link->mb), LOCK_EX | LOCK_NB) == 0)
        return 0;
    int e = errno;
    if (e == EWOULDBLOCK)
        link_seterr(link, "%s is held by another process (is another perfused or a terminal "
                    "program using it?)", cfg->port);
    else
        link_seterr(link, "cannot lock %s: %s", cfg->port, strerror(e));
    modbus_close(link->mb);
    return modbus_fail(link, e == EWOULDBLOCK ? -EBUSY : -e);
}

/* Create the libmodbus context of a link. */
static int new_modbus(struct bus_link *link, const struct link_config *cfg)
{
    if (cfg->type == LINK_MODBUS_RTU) {
        if (cfg->port == NULL) {
            link_seterr(link, "bus %s: no serial port given", cfg->name);
            return -EINVAL;
        }
        link->mb = modbus_new_rtu(cfg->port, cfg->baud, cfg->parity, cfg->data_bits,
                                  cfg->stop_bits);
    } else {
        if (cfg->host == NULL) {
            link_seterr(link, "bus %s: no host given", cfg->name);
            return -EINVAL;
        }
        link->mb = modbus_new_tcp(cfg->host, cfg->tcp_port);
    }
    if (link->mb == NULL) {
        link_seterr(link, "bus %s: bad settings: %s", cfg->name, modbus_strerror(errno));
        return -EINVAL;
    }
    return 0;
}

/* Bits per character on cfg's line. */
int link_char_bits(const struct link_config *cfg)
{
    return 1 + (cfg->data_bits > 0 ? cfg->data_bits : 8) + (cfg->parity == 'E' || cfg->parity == 'O' ? 1 : 0) +
           (cfg->stop_bits > 0 ? cfg->stop_bits : 1);
}

/* The silence that ends what is still arriving on an RTU line: the Modbus
 * end of frame (3.5 characters at the line's rate), but at least
 * LINK_QUIET_MIN_MS, since a USB serial adapter hands received bytes over in
 * packets up to its latency timer apart (16 ms by default on FTDI chips). */
static int64_t quiet_ns(const struct link_config *cfg)
{
    int bits = link_char_bits(cfg);
    int64_t t35 = cfg->baud > 0 ? 35LL * bits * NS_PER_SEC / (10LL * cfg->baud) : 0;
    int64_t min = LINK_QUIET_MIN_MS * NS_PER_MS;
    return t35 > min ? t35 : min;
}

/* Read off what is on an RTU line, then, for up to max_ns, what is still
 * arriving, until the line has been silent for quiet_ns. tcflush misses
 * bytes still passing through a pty, hence the reads. */
static void rtu_discard(struct bus_link *link, int64_t max_ns)
{
    if (link->mb == NULL || link->cfg == NULL || link->cfg->type != LINK_MODBUS_RTU)
        return;
    modbus_flush(link->mb);
    int fd = modbus_get_socket(link->mb);
    int fl = fcntl(fd, F_GETFL);
    if (fd < 0 || fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return;
    int64_t quiet = quiet_ns(link->cfg);
    int64_t end = (int64_t)time_mono_ns() + max_ns;
    char junk[256];
    for (;;) {
        size_t total = 0;
        ssize_t r;
        while (total < 65536 && (r = read(fd, junk, sizeof junk)) > 0)
            total += (size_t)r;
        int64_t left = end - (int64_t)time_mono_ns();
        if (left <= 0)
            break;
        int64_t wait = quiet < left ? quiet : left;
        struct timespec ts = { .tv_sec = wait / NS_PER_SEC, .tv_nsec = wait % NS_PER_SEC };
        struct pollfd pf = { .fd = fd, .events = POLLIN };
        int rc = ppoll(&pf, 1, &ts, NULL);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0 || (pf.revents & (POLLERR | POLLHUP | POLLNVAL)))
            break;      /* silent for quiet_ns (or the line is gone: the next call says so) */
    }
    fcntl(fd, F_SETFL, fl);
}

/* Discard whatever is waiting on an RTU line: a reply meant for an earlier
 * request (a timed-out one, or one a previous owner of the port sent) would
 * otherwise be taken for the answer to the next, since RTU replies do not
 * say which registers they hold. */
void link_drain(struct bus_link *link)
{
    rtu_discard(link, 0);
}

/* Discard what is on an RTU line after a failed transaction, and what is still
 * arriving: the rest of a garbled frame, or a reply later than the time-out.
 * Bounded by the link's time-out: a line that never falls silent costs one
 * time-out, not more. */
void link_resync(struct bus_link *link)
{
    if (link->cfg != NULL)
        rtu_discard(link, (int64_t)link_timeout_ms(link->cfg) * NS_PER_MS);
}

/* Open a Modbus link. */
static int open_modbus(struct bus_link *link, const struct link_config *cfg)
{
    int rc = new_modbus(link, cfg);
    if (rc < 0)
        return rc;
    modbus_set_error_recovery(link->mb, MODBUS_ERROR_RECOVERY_NONE);
    uint32_t ms = link_timeout_ms(cfg);
    modbus_set_response_timeout(link->mb, ms / 1000, (ms % 1000) * 1000);
    if (cfg->type == LINK_MODBUS_RTU) {
        /* A silence as long as the end of a frame ends the reply: a garbled one
         * that promises more bytes than it sends is then given up at once,
         * not after libmodbus's default 500 ms between two bytes. */
        int64_t quiet = quiet_ns(cfg);
        modbus_set_byte_timeout(link->mb, (uint32_t)(quiet / NS_PER_SEC),
                                (uint32_t)(quiet % NS_PER_SEC / 1000));
    }
    if (modbus_connect(link->mb) < 0) {
        int e = errno;
        if (cfg->type == LINK_MODBUS_RTU)
            link_seterr(link, "cannot open %s: %s", cfg->port, modbus_strerror(e));
        else
            link_seterr(link, "cannot connect to %s:%d: %s", cfg->host, cfg->tcp_port,
                        modbus_strerror(e));
        return modbus_fail(link, -ENOTCONN);
    }
    if (cfg->type == LINK_MODBUS_RTU) {
        rc = lock_rtu(link, cfg);
        if (rc == 0)
            link_drain(link);
        return rc;
    }
    return 0;
}

/* Open the transport. */
int link_open(struct bus_link *link, const struct link_config *cfg)
{
    link->cfg = cfg;
    link->mb = NULL;
    link->serial = NULL;
    link->err[0] = '\0';
    switch (cfg->type) {
    case LINK_SERIAL:
        return serial_open(cfg->port, cfg->baud, cfg->parity, cfg->data_bits, cfg->stop_bits,
                           &link->serial, link->err, sizeof link->err);
    case LINK_MODBUS_RTU:
    case LINK_MODBUS_TCP:
        return open_modbus(link, cfg);
    }
    link_seterr(link, "bus %s: unknown bus type %d", cfg->name, (int)cfg->type);
    return -EINVAL;
}

/* Close the transport. */
void link_close(struct bus_link *link)
{
    if (link->mb != NULL) {
        modbus_close(link->mb);
        modbus_free(link->mb);
        link->mb = NULL;
    }
    serial_close(link->serial);
    link->serial = NULL;
}
