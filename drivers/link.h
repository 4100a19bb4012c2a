/*
 * A bus link: the open transport of one bus (a serial line, a Modbus RTU line,
 * a Modbus TCP connection). Owned and used by exactly one bus thread.
 */
#ifndef PERFUSE_LINK_H
#define PERFUSE_LINK_H

#include <stdint.h>

#include <modbus.h>

#include "serial.h"

enum link_type { LINK_SERIAL, LINK_MODBUS_RTU, LINK_MODBUS_TCP };

/* A bus as the rig file describes it. Strings are owned by the rig. */
struct link_config {
    const char *name;           /* bus name, for logs */
    enum link_type type;
    const char *port;           /* serial and modbus-rtu: device path */
    int baud;                   /* default 9600 (rtu) / 19200 (serial) */
    char parity;                /* 'N', 'E' or 'O' */
    int data_bits, stop_bits;
    const char *host;           /* modbus-tcp */
    int tcp_port;
    uint32_t timeout_ms;        /* per transaction; default 200 */
};

struct bus_link {
    const struct link_config *cfg;
    modbus_t *mb;               /* LINK_MODBUS_*: set while connected */
    struct serial_port *serial; /* LINK_SERIAL: set while connected */
    char err[160];              /* last error, one line */
};

/* Parse "serial", "modbus-rtu", "modbus-tcp". Returns 0 or -EINVAL. */
int link_type_parse(const char *s, enum link_type *out);
const char *link_type_name(enum link_type t);

/* Bus thread. Open the transport. Returns 0 or a negative errno (message in link->err). */
int link_open(struct bus_link *link, const struct link_config *cfg);
/* Bus thread. Close the transport; safe on a closed link. */
void link_close(struct bus_link *link);
/* Bus thread. Discard unread input on an RTU line (after opening it, and before
 * each request: an RTU master is sent nothing it did not ask for, so whatever
 * waits then is stale); no-op on other links. */
void link_drain(struct bus_link *link);
/* Bus thread. After a failed transaction on an RTU line (a garbled reply, a
 * time-out): discard input until the line has been silent for the end of a
 * frame (3.5 characters, at least 20 ms), so that the rest of a garbled frame
 * or a late reply is never read as the next request's answer. Costs at least
 * that silence and at most the link's time-out; no-op on other links. */
void link_resync(struct bus_link *link);
/* The bits one character takes on a serial line: start, data, parity, stop
 * (8 data bits and 1 stop bit where cfg gives none). */
int link_char_bits(const struct link_config *cfg);
/* The per-transaction time-out in ms: cfg's, or 200 when it gives none (or cfg is NULL). */
uint32_t link_timeout_ms(const struct link_config *cfg);
/* Set link->err with printf formatting. */
void link_seterr(struct bus_link *link, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
