/*
 * Harvard Apparatus Pump 11 Elite and PHD ULTRA syringe pumps, RS-232 or USB
 * (a virtual serial port), the "Ultra" command set.
 *
 * Example rig entry:
 *
 *   buses:
 *     - {name: syringes, type: serial, port: /dev/ttyUSB0, baud: 115200}
 *   devices:
 *     - {name: hpump1, driver: harvard, bus: syringes, address: 0,
 *        syringe: {diameter: 14.57 mm, volume: 10 mL}, max_flow: 1000 uL/min}
 *
 * Parameters: address (0-99, default 0: the pump's own setting, in a daisy
 * chain each pump has its own), syringe.diameter (required: the inside
 * diameter, 0.1 to 50 mm), syringe.volume (optional: how much the syringe
 * holds), max_flow (optional, default 1000 uL/min; setpoints are limited to
 * -max_flow..max_flow, negative meaning withdraw). The pump must be in its
 * Quick Start mode, where irun/wrun/irate/wrate apply.
 *
 * Channels:
 *   flow       uL/min, read and write. 0 stops, > 0 infuses, < 0 withdraws.
 *              Reads back what the pump delivers now: its current rate
 *              (crate) signed by its prompt, 0 when idle. A stalled pump has
 *              no flow to report: the read fails (-EREMOTEIO, "stalled:
 *              syringe empty or blocked") and no number is delivered.
 *   dispensed  uL, read: the infused volume the pump counts (ivolume).
 *
 * Wire: a command is its words and CR; at a non-zero address the address and
 * a colon come first ("1:irate 10 ul/min"). Each command is answered by CR LF,
 * text lines ended by CR LF, and the prompt, which has no line end: ':' idle,
 * '>' infusing, '<' withdrawing, '*' stalled, "T*" target reached; with an
 * address it is preceded by the two-digit address ("01>"). Refusals come as
 * text ("Command error", "Unknown command", "Argument error", "Out of
 * range") and are reported as -EREMOTEIO with the pump's words. Several pumps
 * share one line in a daisy chain; a reply whose prompt has another address
 * is not ours and is skipped.
 *
 * The stall prompt stays until the pump is told to stop or run again: a
 * setpoint (stop, irun, wrun) or safe_state clears it, and if the syringe is
 * still empty the pump stalls again and the write fails with the stall.
 */
#include "harvard.h"
#include "driver.h"
#include "serial_reply.h"
#include "setpoint.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HV_DEFAULT_MAX_FLOW 1000.0      /* uL/min */
#define HV_MIN_DIAMETER 0.1             /* mm */
#define HV_MAX_DIAMETER 50.0
#define HV_DIAMETER_TOL 0.00005         /* mm: below the 4 decimals we send */

enum { CH_FLOW = 0, CH_DISPENSED = 1, N_CHANNELS };

/* One pump: its rig entry. Its running state is never remembered: every
 * reply's prompt says it afresh. */
struct harvard {
    char name[32];
    int address;
    double diameter_mm;
    double syringe_ul;
    double max_flow;
};

/* ------------------------------------------------------------------------ */
/* Numbers                                                                  */
/* ------------------------------------------------------------------------ */

/* A unit the pump writes and its factor to the canonical unit. */
struct hv_unit {
    const char *name;
    double factor;
};

/* Rates, to uL/min. */
static const struct hv_unit rate_units[] = {
    { "ml/min", 1000.0 }, { "ul/min", 1.0 }, { "nl/min", 1e-3 }, { "pl/min", 1e-6 },
    { "ml/hr", 1000.0 / 60 }, { "ul/hr", 1.0 / 60 }, { "nl/hr", 1e-3 / 60 }, { "pl/hr", 1e-6 / 60 },
    { "ml/s", 60000.0 }, { "ul/s", 60.0 }, { "nl/s", 0.06 }, { "pl/s", 6e-5 },
};

/* Volumes, to uL. */
static const struct hv_unit volume_units[] = {
    { "ml", 1000.0 }, { "ul", 1.0 }, { "nl", 1e-3 }, { "pl", 1e-6 },
};

/* Format cmd for the pump's address. */
int harvard_format_command(int address, const char *cmd, char *out, size_t len)
{
    if (address < 0 || address > 99 || cmd == NULL)
        return -ERANGE;
    int n = address == 0 ? snprintf(out, len, "%s\r", cmd)
                         : snprintf(out, len, "%d:%s\r", address, cmd);
    if (n < 0 || (size_t)n >= len)
        return -ERANGE;
    return n;
}

/* Format v with up to 4 decimals, trailing zeros dropped. */
int harvard_format_number(double v, char *buf, size_t len)
{
    if (!(v >= 0) || v >= 1e6 || len == 0)
        return -ERANGE;
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%.4f", v);
    char *p = tmp + strlen(tmp) - 1;
    while (*p == '0')
        *p-- = '\0';
    if (*p == '.')
        *p = '\0';
    if (v > 0 && strcmp(tmp, "0") == 0)
        return -ERANGE;
    if (strlen(tmp) >= len)
        return -ERANGE;
    memcpy(buf, tmp, strlen(tmp) + 1);
    return 0;
}

/* Format a rate in ul/min, or nl/min when small. */
int harvard_format_rate(double ul_min, char *buf, size_t len)
{
    if (!(ul_min > 0) || !isfinite(ul_min))
        return -ERANGE;
    char num[32];
    bool nano = ul_min < 0.1;
    if (harvard_format_number(nano ? ul_min * 1000.0 : ul_min, num, sizeof num) < 0)
        return -ERANGE;
    int n = snprintf(buf, len, "%s %s", num, nano ? "nl/min" : "ul/min");
    return n < 0 || (size_t)n >= len ? -ERANGE : 0;
}

/* Parse a plain decimal number (digits, one point, an optional exponent); *end after it. */
static int parse_number(const char *s, double *out, const char **end)
{
    if (s == NULL)
        return -EBADMSG;
    size_t n = 0, digits = 0;
    while (isdigit((unsigned char)s[n]))
        n++, digits++;
    if (s[n] == '.')
        for (n++; isdigit((unsigned char)s[n]); n++)
            digits++;
    if (digits == 0)
        return -EBADMSG;
    if ((s[n] == 'e' || s[n] == 'E') &&
        (isdigit((unsigned char)s[n + 1]) ||
         ((s[n + 1] == '-' || s[n + 1] == '+') && isdigit((unsigned char)s[n + 2])))) {
        n += 2;
        while (isdigit((unsigned char)s[n]))
            n++;
    }
    char tmp[48];
    if (n >= sizeof tmp)
        return -EBADMSG;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    double v = strtod(tmp, NULL);
    if (!isfinite(v))
        return -EBADMSG;
    *out = v;
    *end = s + n;
    return 0;
}

/* Parse "NUMBER UNIT" against a table of units; spaces around are allowed. */
static int parse_with_unit(const char *text, const struct hv_unit *units, size_t n, double *out)
{
    double v;
    const char *p;
    while (text != NULL && *text == ' ')
        text++;
    if (parse_number(text, &v, &p) < 0)
        return -EBADMSG;
    while (*p == ' ')
        p++;
    size_t ulen = strcspn(p, " ");
    for (const char *q = p + ulen; *q; q++)
        if (*q != ' ')
            return -EBADMSG;
    for (size_t i = 0; i < n; i++)
        if (ulen == strlen(units[i].name) && strncasecmp(p, units[i].name, ulen) == 0) {
            *out = v * units[i].factor;
            return 0;
        }
    return -EBADMSG;
}

/* Parse a rate reply into uL/min. */
int harvard_parse_rate(const char *text, double *ul_min)
{
    return parse_with_unit(text, rate_units, sizeof rate_units / sizeof rate_units[0], ul_min);
}

/* Parse a volume reply into uL. */
int harvard_parse_volume(const char *text, double *ul)
{
    return parse_with_unit(text, volume_units, sizeof volume_units / sizeof volume_units[0], ul);
}

/* Parse a diameter reply into mm; the unit is optional. */
int harvard_parse_diameter(const char *text, double *mm)
{
    static const struct hv_unit mm_unit[] = { { "mm", 1.0 } };
    double v;
    const char *p;
    const char *t = text;
    while (t != NULL && *t == ' ')
        t++;
    if (parse_number(t, &v, &p) == 0) {
        while (*p == ' ')
            p++;
        if (*p == '\0') {
            *mm = v;
            return 0;
        }
    }
    return parse_with_unit(text, mm_unit, 1, mm);
}

/* ------------------------------------------------------------------------ */
/* Replies                                                                  */
/* ------------------------------------------------------------------------ */

/* Whether s[0..n) is a prompt: [d[d]] then ':' '>' '<' '*' or "T*". Fills address and prompt. */
static bool is_prompt(const char *s, size_t n, int *address, char *prompt)
{
    size_t d = 0;
    while (d < n && d < 2 && isdigit((unsigned char)s[d]))
        d++;
    const char *p = s + d;
    size_t rest = n - d;
    char pr;
    if (rest == 1 && strchr(":><*", p[0]) != NULL)
        pr = p[0];
    else if (rest == 2 && p[0] == 'T' && p[1] == '*')
        pr = 'T';
    else
        return false;
    *address = d == 0 ? 0 : d == 1 ? s[0] - '0' : (s[0] - '0') * 10 + (s[1] - '0');
    *prompt = pr;
    return true;
}

/* Length of a leading "AA" + prompt on a text line ("00:10 ul/min"), or 0. */
static size_t line_prefix(const char *s, size_t n)
{
    if (n < 3 || !isdigit((unsigned char)s[0]) || !isdigit((unsigned char)s[1]))
        return 0;
    if (n >= 4 && s[2] == 'T' && s[3] == '*')
        return 4;
    return strchr(":><*", s[2]) != NULL && s[2] != '\0' ? 3 : 0;
}

/* Find and parse the first complete reply in buf. */
int harvard_parse_reply(const char *buf, size_t len, struct harvard_reply *out)
{
    memset(out, 0, sizeof *out);
    if (buf == NULL)
        return 0;
    size_t start = 0;       /* of the current line */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (c != '\r' && c != '\n' && (c < 0x20 || c > 0x7e))
            return -EBADMSG;
        if (c != '\r' && c != '\n') {
            if (i + 1 - start >= HARVARD_LINE_LEN)
                return -EBADMSG;
            continue;
        }
        size_t n = i - start;
        if (n > 0) {
            const char *s = buf + start;
            if (is_prompt(s, n, &out->address, &out->prompt))
                return (int)i;      /* a prompt that came with a line end: the reply ends before it */
            if (out->n_lines >= HARVARD_MAX_LINES)
                return -EBADMSG;
            size_t skip = line_prefix(s, n);
            char *l = out->line[out->n_lines++];
            memcpy(l, s + skip, n - skip);
            l[n - skip] = '\0';
        }
        start = i + 1;
    }
    /* The unterminated tail: the prompt, or a line still coming. */
    if (len > start && is_prompt(buf + start, len - start, &out->address, &out->prompt))
        return (int)len;
    return 0;
}

/* What a refusal line is, or NULL if the line is no refusal. */
static const char *refusal_kind(const char *line)
{
    static const char *const kinds[] = { "Command error", "Unknown command", "Argument error",
                                         "Out of range" };
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (strncasecmp(line, kinds[i], strlen(kinds[i])) == 0)
            return kinds[i];
    return NULL;
}

/* Whether a reply's text refuses the command. */
int harvard_reply_error(const struct harvard_reply *r, const char *device, const char *cmd,
                        char *err, size_t len)
{
    for (int i = 0; i < r->n_lines; i++)
        if (refusal_kind(r->line[i]) != NULL) {
            snprintf(err, len, "%s: pump refused '%s': %s", device, cmd, r->line[i]);
            return -EREMOTEIO;
        }
    return 0;
}

/* What a prompt means. */
const char *harvard_prompt_text(char prompt)
{
    switch (prompt) {
    case ':': return "idle";
    case '>': return "infusing";
    case '<': return "withdrawing";
    case '*': return "stalled: syringe empty or blocked";
    case 'T': return "target volume reached";
    default: return "unknown prompt";
    }
}

/* The flow delivered now. */
double harvard_delivered_flow(char prompt, double rate)
{
    return prompt == '>' ? rate : prompt == '<' ? -rate : 0.0;
}

/* ------------------------------------------------------------------------ */
/* Exchanges                                                                */
/* ------------------------------------------------------------------------ */

/* What hv_take needs: the pump and where its reply goes. */
struct hv_wait {
    const struct harvard *hv;
    struct harvard_reply *reply;
};

/* One reply for serial_await_reply: ours if its prompt carries the pump's address. */
static int hv_take(void *ctx, const char *buf, size_t len, bool *ours, char *other, size_t olen)
{
    struct hv_wait *w = ctx;
    int used = harvard_parse_reply(buf, len, w->reply);
    if (used > 0) {
        *ours = w->reply->address == w->hv->address;
        snprintf(other, olen, "address %d", w->reply->address);
    }
    return used;
}

/* Send out[0..n) and read until a reply from our address arrives; skip other pumps' replies. */
static int exchange(const struct harvard *hv, struct bus_link *link, const char *cmd,
                    const char *out, size_t n, struct harvard_reply *reply)
{
    char who[16];
    struct hv_wait ctx = { hv, reply };
    snprintf(who, sizeof who, "address %d", hv->address);
    const struct serial_wait w = { .dev = hv->name, .cmd = cmd, .who = who, .take = hv_take,
                                   .ctx = &ctx };
    return serial_exchange(link, out, n, &w);
}

/* Send one command and read the reply; refusals are -EREMOTEIO. *reply is
 * filled whenever a reply came, also with -EREMOTEIO. The prompt is left to
 * the caller: a stall is an error for some commands and not for others. */
static int transact(const struct harvard *hv, struct bus_link *link, const char *cmd,
                    struct harvard_reply *reply)
{
    memset(reply, 0, sizeof *reply);
    char out[96];
    int n = harvard_format_command(hv->address, cmd, out, sizeof out);
    if (n < 0) {
        link_seterr(link, "%s: command '%s' too long", hv->name, cmd);
        return -EINVAL;
    }
    int rc = exchange(hv, link, cmd, out, (size_t)n, reply);
    if (rc < 0)
        return rc;
    return harvard_reply_error(reply, hv->name, cmd, link->err, sizeof link->err);
}

/* Report a stall as the device's fault. */
static int stalled(const struct harvard *hv, struct bus_link *link, const char *cmd)
{
    link_seterr(link, "%s: %s (prompt '*' after '%s')", hv->name, harvard_prompt_text('*'), cmd);
    return -EREMOTEIO;
}

/* ------------------------------------------------------------------------ */
/* Configuration                                                            */
/* ------------------------------------------------------------------------ */

static const char *const hv_params[] = { "address", "syringe.diameter", "syringe.volume",
                                         "max_flow", NULL };

/* Read address and max_flow. */
static int parse_limits(const struct dev_config *cfg, struct harvard *hv)
{
    int bad = 0;
    long addr = 0;
    bad |= devcfg_int(cfg, "address", 0, 99, &addr) == -EINVAL;
    hv->address = (int)addr;
    bad |= devcfg_positive_flow(cfg, "max_flow", HV_DEFAULT_MAX_FLOW, &hv->max_flow) < 0;
    return bad ? -EINVAL : 0;
}

/* Parse the rig entry and describe the channels. */
static int hv_open(const struct dev_config *cfg, void **state, struct driver_channel *ch,
                   size_t *n)
{
    struct harvard *hv = calloc(1, sizeof *hv);
    if (hv == NULL)
        return -ENOMEM;
    snprintf(hv->name, sizeof hv->name, "%s", cfg->name ? cfg->name : "pump");
    int bad = devcfg_check_known(cfg, hv_params, "a Harvard pump") < 0;
    bad |= devcfg_syringe(cfg, "a Harvard pump", HV_MIN_DIAMETER, HV_MAX_DIAMETER, &hv->diameter_mm,
                          &hv->syringe_ul) < 0;
    bad |= parse_limits(cfg, hv) < 0;
    if (bad) {
        free(hv);
        return -EINVAL;
    }
    ch[CH_FLOW] = (struct driver_channel){ .name = "flow", .q = Q_FLOW, .unit = "uL/min",
        .readable = 1, .writable = 1, .min = -hv->max_flow, .max = hv->max_flow,
        .sample_hz = 2, .volume_ul = hv->syringe_ul, .readback = 1, .reassert = 1,
        .safe_value = 0 };
    ch[CH_DISPENSED] = (struct driver_channel){ .name = "dispensed", .q = Q_VOLUME,
        .unit = "uL", .readable = 1, .min = 0, .max = NAN, .sample_hz = 1 };
    *n = N_CHANNELS;
    *state = hv;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Operations                                                               */
/* ------------------------------------------------------------------------ */

/* Set the syringe diameter unless the pump already has it; a running pump
 * is left running (a reconnect must not stop or reverse a run). */
static int hv_connect(void *state, struct bus_link *link)
{
    struct harvard *hv = state;
    struct harvard_reply r;
    char num[32], cmd[48];
    if (harvard_format_number(hv->diameter_mm, num, sizeof num) < 0) {
        link_seterr(link, "%s: the diameter %g mm cannot be written for the pump", hv->name,
                    hv->diameter_mm);
        return -EINVAL;
    }
    int rc = transact(hv, link, "diameter", &r);
    if (rc < 0)
        return rc;
    double have;
    if (r.n_lines < 1 || harvard_parse_diameter(r.line[r.n_lines - 1], &have) < 0) {
        link_seterr(link, "%s: cannot parse the diameter '%s' the pump reports", hv->name,
                    r.n_lines > 0 ? r.line[r.n_lines - 1] : "");
        return -EBADMSG;
    }
    if (fabs(have - strtod(num, NULL)) <= HV_DIAMETER_TOL)
        return 0;
    bool running = r.prompt == '>' || r.prompt == '<';
    snprintf(cmd, sizeof cmd, "diameter %s", num);
    rc = transact(hv, link, cmd, &r);
    if (rc == -EREMOTEIO && running)
        link_seterr(link, "%s: the pump is %s with a %g mm syringe, the rig says %s mm; stop it "
                    "to change the diameter", hv->name, harvard_prompt_text(r.prompt), have, num);
    return rc;
}

/* Read the delivered flow (crate: the current rate, and the prompt) or the infused volume. */
static int hv_read(void *state, struct bus_link *link, size_t ch, double *value)
{
    struct harvard *hv = state;
    struct harvard_reply r;
    if (ch >= N_CHANNELS)
        return -EINVAL;
    const char *cmd = ch == CH_FLOW ? "crate" : "ivolume";
    int rc = transact(hv, link, cmd, &r);
    if (rc < 0)
        return rc;
    if (ch == CH_FLOW && r.prompt == '*')
        return stalled(hv, link, cmd);
    if (ch == CH_FLOW && r.prompt != '>' && r.prompt != '<') {
        *value = 0.0;       /* idle or at its target: whatever rate it holds, none is delivered */
        return 0;
    }
    double v;
    const char *text = r.n_lines > 0 ? r.line[r.n_lines - 1] : "";
    rc = ch == CH_FLOW ? harvard_parse_rate(text, &v) : harvard_parse_volume(text, &v);
    if (rc < 0) {
        link_seterr(link, "%s: cannot parse the pump's reply '%s' to '%s'", hv->name, text, cmd);
        return -EBADMSG;
    }
    *value = ch == CH_FLOW ? harvard_delivered_flow(r.prompt, v) : v;
    return 0;
}

/* Stop the pump; always sent, whatever its state. It also ends a stall. */
static int hv_stop(struct harvard *hv, struct bus_link *link)
{
    struct harvard_reply r;
    int rc = transact(hv, link, "stop", &r);
    if (rc == 0 && (r.prompt == '>' || r.prompt == '<')) {
        link_seterr(link, "%s: the pump is still %s after 'stop'", hv->name,
                    harvard_prompt_text(r.prompt));
        return -EREMOTEIO;
    }
    return rc;
}

/* Check a flow setpoint and format its rate; -ERANGE/-EINVAL with a message. */
static int check_setpoint(const struct harvard *hv, struct bus_link *link, double v, char *rate,
                          size_t len)
{
    int rc = setpoint_check_flow(link, hv->name, v, hv->max_flow);
    if (rc < 0)
        return rc;
    if (harvard_format_rate(fabs(v), rate, len) < 0) {
        link_seterr(link, "%s: %g uL/min cannot be written as a pump rate", hv->name, v);
        return -ERANGE;
    }
    return 0;
}

/* Command a flow: 0 stops; otherwise set the direction's rate and, unless it
 * already runs that way, stop a run the other way and start this one. */
static int hv_write(void *state, struct bus_link *link, size_t ch, double v)
{
    struct harvard *hv = state;
    struct harvard_reply r;
    char rate[32], cmd[64];
    if (ch != CH_FLOW) {
        link_seterr(link, "%s: only 'flow' can be set", hv->name);
        return -EINVAL;
    }
    if (v == 0)
        return hv_stop(hv, link);
    int rc = check_setpoint(hv, link, v, rate, sizeof rate);
    if (rc < 0)
        return rc;
    bool infuse = v > 0;
    char want = infuse ? '>' : '<';
    snprintf(cmd, sizeof cmd, "%s %s", infuse ? "irate" : "wrate", rate);
    if ((rc = transact(hv, link, cmd, &r)) < 0)
        return rc;
    if (r.prompt == want)
        return 0;           /* already running this way: the new rate applies at once */
    if (r.prompt == (infuse ? '<' : '>') && (rc = hv_stop(hv, link)) < 0)
        return rc;          /* never run the wrong way, not even for one exchange */
    const char *run = infuse ? "irun" : "wrun";
    if ((rc = transact(hv, link, run, &r)) < 0)
        return rc;
    if (r.prompt == '*')
        return stalled(hv, link, run);
    if (r.prompt != want) {
        link_seterr(link, "%s: the pump is %s after '%s'", hv->name, harvard_prompt_text(r.prompt),
                    run);
        return -EREMOTEIO;
    }
    return 0;
}

/* Stop the pump. */
static int hv_safe_state(void *state, struct bus_link *link)
{
    return hv_stop(state, link);
}

/* Free the pump's state. */
static void hv_close(void *state)
{
    free(state);
}

const struct driver_ops harvard_driver = {
    .name = "harvard",
    .bus_types = "serial",
    /* The shortest reading is crate at address 0: "crate" CR (6), answered CR LF and
     * the prompt ':' (3) when the pump is idle and no rate line is needed. */
    .chars_per_reading = 9,
    .open = hv_open,
    .connect = hv_connect,
    .read = hv_read,
    .write = hv_write,
    .safe_state = hv_safe_state,
    .close = hv_close,
};
