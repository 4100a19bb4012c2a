/*
 * Hamilton MVP rotary selector valves (Hamilton "protocol 1", serial ASCII):
 * the wire framing, exposed for tests. The driver itself is hamilton_driver
 * (drivers.c lists it). Every function here is pure: no I/O, no state, any
 * thread.
 */
#ifndef PERFUSE_HAMILTON_H
#define PERFUSE_HAMILTON_H

#include <stdbool.h>
#include <stddef.h>

#define HAMILTON_ACK 0x06
#define HAMILTON_NAK 0x15
#define HAMILTON_TEXT_MAX 32

/* Valve error bits of the E2 reply (its second byte, bits 0-2). */
#define HAMILTON_ERR_NOT_INITIALISED 0x01
#define HAMILTON_ERR_INIT_FAILED 0x02
#define HAMILTON_ERR_OVERLOAD 0x04

/* One exchange as the valve sends it: the echo of the command line (the
 * address letter and the command; absent if the valve did not echo), then
 * ACK with optional data, or NAK, each line ended by CR. */
struct hamilton_reply {
    char address;                   /* the echo's address letter, 0 if no echo came */
    char echo[HAMILTON_TEXT_MAX];   /* the echoed command without its address, "" if none */
    bool ack;                       /* ACK (the command was taken) or NAK (refused) */
    char data[HAMILTON_TEXT_MAX];   /* after the ACK: "3" for LQP, "Y" for F, "" */
};

/*
 * Find the first complete exchange in buf[0..len): an optional echo line,
 * then an ACK or NAK line. Empty lines and LF are skipped; an echo followed
 * by another echo lost its answer and is dropped. Returns the bytes up to and
 * including the CR of the ACK/NAK line with *out filled, 0 if no exchange is
 * complete yet, or -EBADMSG for a line that is neither an echo (a lower-case
 * address letter and printable text) nor an answer (ACK or NAK and printable
 * text), or one longer than HAMILTON_TEXT_MAX.
 */
int hamilton_parse_reply(const char *buf, size_t len, struct hamilton_reply *out);

/* The move command for port (1..99): "LP0<port>R" clockwise, "LP1<port>R"
 * counter-clockwise. Returns 0, or -ERANGE if port or len do not fit. */
int hamilton_move_command(int port, bool ccw, char *buf, size_t len);

/* Whether the shortest way from port from to port to on a valve with ports
 * equally spaced ports is counter-clockwise (port numbers rise clockwise);
 * a tie goes clockwise. */
bool hamilton_shortest_ccw(int from, int to, int ports);

/* Parse the data of an F reply: 'Y' done, '*' busy, 'N' a command received
 * but not yet executed. Returns 0 with *state set, or -EBADMSG. */
int hamilton_parse_done(const char *data, char *state);

/* Parse the data of an LQP reply (one or two digits, >= 1). Returns 0 or -EBADMSG. */
int hamilton_parse_position(const char *data, int *port);

/* Parse the data of an E2 reply: four bytes, the second with bit 6 set and
 * its error bits in 0-2 (bits 3-5 clear). Returns 0 with *bits set (the
 * HAMILTON_ERR_* bits), or -EBADMSG. */
int hamilton_parse_valve_errors(const char *data, unsigned *bits);

/* The number of ports of an LQT valve type code (2: 8 ports, 3: 6, 4: 3,
 * 5: 2 at 180 degrees, 6: 2 at 90 degrees, 7: 4), or 0 for an unknown code. */
int hamilton_valve_type_ports(int type);

/* What the E2 error bits mean, for people: the most serious one first. */
const char *hamilton_valve_error_text(unsigned bits);

#endif
