/*
 * Harvard Apparatus Pump 11 Elite / PHD ULTRA syringe pumps ("Ultra" command
 * set): the wire framing, exposed for tests. The driver itself is
 * harvard_driver (drivers.c lists it). Every function here is pure: no I/O,
 * no state, any thread.
 */
#ifndef PERFUSE_HARVARD_H
#define PERFUSE_HARVARD_H

#include <stddef.h>

#define HARVARD_MAX_LINES 8         /* text lines before the prompt */
#define HARVARD_LINE_LEN 96         /* longest text line kept, with its NUL */

/* A parsed reply: the text lines the pump sent, then its prompt. */
struct harvard_reply {
    int address;                    /* 0..99: the prompt's address; 0 when it carried none */
    char prompt;                    /* ':' idle, '>' infusing, '<' withdrawing, '*' stalled,
                                     * 'T' target reached (the prompt "T*") */
    int n_lines;
    char line[HARVARD_MAX_LINES][HARVARD_LINE_LEN];
};

/* Write cmd as the pump expects it: "cmd" CR at address 0, "N:cmd" CR at
 * address N. Returns the length, or -ERANGE (bad address, too long). */
int harvard_format_command(int address, const char *cmd, char *out, size_t len);

/* Format v >= 0 with at most 4 decimals, trailing zeros dropped ("14.57",
 * "1000", "0.0025"). Returns 0, or -ERANGE if v is negative, not finite,
 * 1e6 or more, or positive but rounds to 0. */
int harvard_format_number(double v, char *buf, size_t len);

/* Format a rate (uL/min, > 0) as the argument of irate/wrate: "12.5 ul/min",
 * or in nl/min below 0.1 uL/min ("50 nl/min"). Returns 0 or -ERANGE. */
int harvard_format_rate(double ul_per_min, char *buf, size_t len);

/* Parse "12.5 ul/min" (ml, ul, nl, pl per min, hr or s; any case) into
 * uL/min. Returns 0 or -EBADMSG. */
int harvard_parse_rate(const char *text, double *ul_per_min);

/* Parse "1.234 ul" (ml, ul, nl, pl; any case) into uL. Returns 0 or -EBADMSG. */
int harvard_parse_volume(const char *text, double *ul);

/* Parse a diameter "14.57 mm" (the unit may be missing) into mm. Returns 0 or -EBADMSG. */
int harvard_parse_diameter(const char *text, double *mm);

/*
 * Find the first complete reply in buf[0..len): lines ended by CR or LF (empty
 * ones skipped), then the prompt, which ends the reply without a line end:
 * an optional 1-2 digit address and one of ':' '>' '<' '*' "T*". A text line
 * carrying the address and a prompt before its text ("00:10 ul/min") has them
 * removed. Returns the number of bytes up to and including the prompt with
 * *out filled, 0 if no reply is complete yet, or -EBADMSG (a byte that is
 * neither printable ASCII nor CR/LF, a line too long, too many lines).
 */
int harvard_parse_reply(const char *buf, size_t len, struct harvard_reply *out);

/* Whether the reply's text is a refusal ("Command error", "Unknown command",
 * "Argument error", "Out of range"). Returns 0, or -EREMOTEIO with one line
 * in err naming the device, the command and the pump's own words. */
int harvard_reply_error(const struct harvard_reply *r, const char *device, const char *cmd,
                        char *err, size_t len);

/* What a prompt means, for people: "stalled: syringe empty or blocked". */
const char *harvard_prompt_text(char prompt);

/* The flow the pump delivers now, given its prompt and its current rate:
 * +rate infusing, -rate withdrawing, 0 idle or target reached. A stalled pump
 * ('*') delivers no known flow: the caller reports the stall instead. */
double harvard_delivered_flow(char prompt, double rate_ul_per_min);

#endif
