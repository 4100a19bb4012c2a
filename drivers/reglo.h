/*
 * Ismatec Reglo ICC peristaltic pumps: the wire framing and number formats,
 * exposed for tests. The driver itself is reglo_driver (drivers.c lists it).
 * Every function here is pure: no I/O, no state, any thread.
 */
#ifndef PERFUSE_REGLO_H
#define PERFUSE_REGLO_H

#include <stddef.h>

#define REGLO_DATA_MAX 64

/* What a command is answered with: one status character, or a line of data. */
enum reglo_expect { REGLO_STATUS, REGLO_DATA };

/* A parsed reply. */
struct reglo_reply {
    char status;                /* '*' done, '#' not executed, '+' yes, '-' no; 0 for data */
    char data[REGLO_DATA_MAX];  /* a data reply without its CR LF: "1234E-3", "J" */
};

/* Format ml_per_min (> 0) as the pump's "volume type 2" argument: a 4-digit
 * mantissa m.mmm, the exponent's sign and one exponent digit, no 'E'
 * (1.234 -> "1234+0", 0.05 -> "5000-2", 12.5 -> "1250+1"), rounded to 4
 * significant digits. Returns 0, or -ERANGE if v is not finite, not above 0,
 * or outside 1.000e-9 .. 9.999e9 after rounding, or buf is too small. */
int reglo_format_vol2(double ml_per_min, char *buf, size_t len);

/*
 * Parse a number the pump reports: "volume type 1" ("1234E-3": m.mmm x 10^-3),
 * the same without the 'E' ("1234-3"), or a plain decimal ("0.050"),
 * optionally followed by spaces and the unit "ml/min" (any case).
 * Returns 0 with *value, or -EBADMSG.
 */
int reglo_parse_number(const char *data, double *value);

/*
 * Find the first complete reply in buf[0..len) to a command answered as
 * `expect`. Line ends left over from earlier replies and whole event lines
 * ("^U1", "^X1": a channel started or stopped on its own) before it are
 * skipped. A status reply is its one character; a data reply ends with CR LF
 * (a lone LF is accepted). A data command may also be answered with a status
 * ('#' refused, '*'), which is returned as such. Returns the number of bytes
 * the reply used, 0 if it is not complete yet, or -EBADMSG if the bytes cannot
 * be a reply (an unknown status character, a control byte or an over-long
 * line in the data).
 */
int reglo_parse_reply(const char *buf, size_t len, enum reglo_expect expect,
                      struct reglo_reply *out);

/* What the pump's '-' answer to a start (H) means, for people. */
const char *reglo_cannot_run_text(void);

/* The flow a channel delivers, in uL/min: 0 unless running; otherwise the
 * rate (mL/min) the pump reports, positive when the rotor turns the way the
 * rig calls forward ('J' clockwise or 'K' counter-clockwise). */
double reglo_delivered_flow(int running, char rotation, char forward, double ml_per_min);

#endif
