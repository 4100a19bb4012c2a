/*
 * Serial ports for drivers: libserialport for real ports, the same calls for
 * ptys (which libserialport cannot open by name), and an exclusive lock so two
 * daemons never share a line.
 */
#ifndef PERFUSE_SERIAL_H
#define PERFUSE_SERIAL_H

#include <stddef.h>
#include <sys/types.h>

struct serial_port;

/* Refuse early: -EBUSY with a message if another process holds path (a second
 * daemon on the same port); 0 if it is free or does not exist (yet). */
int serial_check_free(const char *path, char *err, size_t errlen);
/* Open path at baud/parity('N','E','O')/bits/stop, raw, exclusively locked.
 * Returns 0 and *out, or a negative errno with a message in err
 * (-EBUSY if another process holds the port). */
int serial_open(const char *path, int baud, char parity, int data_bits, int stop_bits,
                struct serial_port **out, char *err, size_t errlen);
/* Write all of buf within timeout_ms. Returns 0 or a negative errno. */
int serial_write(struct serial_port *sp, const void *buf, size_t len, unsigned timeout_ms);
/* Read up to len bytes, waiting at most timeout_ms for the first byte.
 * Returns the number of bytes read (0 on timeout) or a negative errno. */
ssize_t serial_read(struct serial_port *sp, void *buf, size_t len, unsigned timeout_ms);
/* Discard unread input (stale bytes from a previous, timed-out exchange). */
void serial_drain(struct serial_port *sp);
/* Bytes as printable text for messages: control bytes and '\\' as \xNN,
 * cut to fit len (always terminated). */
void serial_escape(const void *in, size_t n, char *out, size_t len);
/* Close and free; NULL is fine. */
void serial_close(struct serial_port *sp);

#endif
