/*
 * Elveflow OB1 MK4-style pressure controller: the framing and parsing of its
 * serial protocol, public for the tests and the simulator. Pure: no I/O.
 */
#ifndef PERFUSE_OB1_H
#define PERFUSE_OB1_H

#include <stdbool.h>
#include <stddef.h>

#define OB1_MAX_CHANNELS 4
#define OB1_LINE_MAX 256

/* Format one command: '<' KEYWORD ('?' get | '!' set) ARGS '\n'. Returns its length, or -ERANGE. */
int ob1_format(char *buf, size_t len, const char *keyword, bool set, const char *args);
/* Take the first reply line (up to LF; a CR before it is dropped) from buf[0..len) into line.
 * Returns the bytes used (> 0), 0 if no line is complete yet, or -EBADMSG (too long, not text). */
int ob1_take_line(const char *buf, size_t len, char *line, size_t cap);
/* Whether a reply line answers keyword: it starts with '<'KEYWORD or KEYWORD. */
bool ob1_reply_is(const char *line, const char *keyword);
/* Whether a reply line is the controller's refusal ("ERR..." anywhere after the keyword). */
bool ob1_reply_refused(const char *line);
/* Parse a PINGA reply: the regulator values of channels 0..3 (mbar) into reg[].
 * Returns the number of channels found (1..4) or -EBADMSG. */
int ob1_parse_pinga(const char *line, double reg[OB1_MAX_CHANNELS]);

#endif
