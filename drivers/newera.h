/* New Era NE-500/NE-1000 syringe pumps: the framing, exposed for tests. */
#ifndef PERFUSE_NEWERA_H
#define PERFUSE_NEWERA_H

#include <stddef.h>

/* A parsed pump reply: STX, 2-digit address, status, data, ETX. */
struct newera_reply {
    int address;
    char status;        /* I W S P T U X, or 'A' for an alarm */
    char alarm;         /* with status 'A': R S T E O */
    char data[64];      /* what follows the status; "?", "?OOR"... for errors */
};

/* Format a rate (uL/min, > 0) as the pump wants it, e.g. "12.50UM": at most
 * 4 digits and 3 decimals, choosing UM, MM, UH or MH for the most precision.
 * Returns 0 or -ERANGE. */
int newera_format_rate(double ul_per_min, char *buf, size_t len);
/* Format a plain float (e.g. a diameter in mm) in at most 4 digits. */
int newera_format_float(double v, char *buf, size_t len);
/* Parse a rate reply such as "12.50UM" into uL/min. Returns 0 or -EBADMSG. */
int newera_parse_rate(const char *data, double *ul_per_min);
/* Parse a DIS reply "I0.250W0.000ML" into infused and withdrawn uL. */
int newera_parse_dispensed(const char *data, double *infused_ul, double *withdrawn_ul);
/* Find and parse one reply in buf (junk before STX is skipped). Returns the
 * number of bytes consumed, 0 if no complete reply is there yet, or -EBADMSG. */
int newera_parse_reply(const char *buf, size_t len, struct newera_reply *out);
/* One line explaining an alarm code. */
const char *newera_alarm_text(char alarm);

#endif
