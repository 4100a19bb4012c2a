/*
 * New Era NE-500/NE-1000 syringe pumps: the wire framing, exposed for tests.
 * The driver itself is newera_driver (drivers.c lists it). Every function
 * here is pure: no I/O, no state, any thread.
 */
#ifndef PERFUSE_NEWERA_H
#define PERFUSE_NEWERA_H

#include <stddef.h>

#define NEWERA_STX 0x02
#define NEWERA_ETX 0x03
#define NEWERA_DATA_MAX 64

/* A parsed pump reply: STX, 2-digit address, status prompt or alarm, data, ETX. */
struct newera_reply {
    int address;                    /* 0..99 */
    char status;                    /* prompt I W S P T U X, or 'A' for an alarm */
    char alarm;                     /* with status 'A': R S T E O (as the pump sent it) */
    char data[NEWERA_DATA_MAX];     /* after the prompt: "12.50UM", "?OOR", "" */
};

/* Format v >= 0 as the pump's float: at most 4 digits and one point, at most
 * 3 decimals, with the most decimals that fit ("14.57", "0.500", "1234").
 * Returns 0, or -ERANGE if v is negative, not finite or 9999.5 or more. */
int newera_format_float(double v, char *buf, size_t len);

/* Format a rate (uL/min, > 0) as the argument of RAT, e.g. "12.50 UM": the
 * float and the unit (UM uL/min, MM mL/min, UH uL/h, MH mL/h) that represent
 * the rate most exactly. Returns 0, or -ERANGE if no unit can represent it
 * (zero, negative, not finite, below 0.0005 uL/h or above 9999 mL/min). */
int newera_format_rate(double ul_per_min, char *buf, size_t len);

/* Parse a rate as the pump reports it ("12.50UM"; a space before the unit is
 * accepted) into uL/min. Returns 0 or -EBADMSG. */
int newera_parse_rate(const char *data, double *ul_per_min);

/* Parse a DIS reply "I0.250W0.000ML" (or ...UL) into infused and withdrawn uL.
 * Returns 0 or -EBADMSG. */
int newera_parse_dispensed(const char *data, double *infused_ul, double *withdrawn_ul);

/*
 * Find the first complete reply in buf[0..len). Bytes before its STX are
 * skipped (line noise, the tail of an earlier reply). Returns the number of
 * bytes up to and including its ETX with *out filled, 0 if there is no
 * complete reply yet, or -EBADMSG if the first complete frame is malformed
 * (bad address digits, unknown prompt, non-printable data, data too long).
 */
int newera_parse_reply(const char *buf, size_t len, struct newera_reply *out);

/* Safe mode: a command or reply travels as STX, a length byte (the bytes
 * that follow, itself included), the data, its CRC-16 (CCITT, initial value
 * 0: "XMODEM"), high byte first, and ETX. The pump stops itself with alarm
 * A?T if no valid packet arrives within its SAF time-out. */
unsigned newera_crc16(const char *data, size_t n);
/* Wrap data in a safe-mode packet. Returns its length, or -ERANGE if too long. */
int newera_safe_packet(const char *data, size_t n, char *out, size_t len);
/* Find the first complete safe-mode packet in buf, unwrap it, and parse its
 * data as a reply. Returns the bytes used, 0 if none is complete yet, or
 * -EBADMSG (bad length, CRC or ETX, or a malformed reply inside). */
int newera_parse_safe_reply(const char *buf, size_t len, struct newera_reply *out);

/* What an alarm means, for people: "motor stalled (A?S): syringe empty or blocked". */
const char *newera_alarm_text(char alarm);

/* Whether a reply reports a problem: an alarm, or a command error ("?",
 * "?OOR", ...). Returns 0, or -EREMOTEIO with one line in err naming the
 * device and, for command errors, the command it refused. */
int newera_reply_error(const struct newera_reply *r, const char *device, const char *cmd,
                       char *err, size_t len);

/* The flow the pump delivers, given its status prompt and its programmed
 * rate: +rate infusing (I), -rate withdrawing (W), 0 otherwise. */
double newera_delivered_flow(char status, double rate_ul_per_min);

#endif
