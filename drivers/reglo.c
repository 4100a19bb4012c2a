/*
 * Ismatec Reglo ICC multi-channel peristaltic pumps, RS-232.
 *
 * Example rig entry (one device per pump channel):
 *
 *   buses:
 *     - {name: perist, type: serial, port: /dev/ttyUSB0, baud: 9600}
 *   devices:
 *     - {name: perist1, driver: reglo, bus: perist, address: 1, channel: 1,
 *        max_flow: 1 mL/min}
 *     - {name: perist2, driver: reglo, bus: perist, address: 1, channel: 2,
 *        max_flow: 1 mL/min, direction: ccw}
 *
 * Parameters: address (1-8, default 1): the pump's address, to which the
 * command enabling channel addressing goes; channel (1-4, required): the
 * channel of the pump head this device is; max_flow (required): the largest
 * flow the channel's tubing gives, setpoints are limited to
 * -max_flow..max_flow; direction (cw or ccw, default cw): the rotor rotation
 * that counts as forward (positive) flow.
 *
 * Channels:
 *   flow   uL/min, read and write. Writing 0 stops the channel; a negative
 *          flow turns the rotor against `direction`. Reads back what the
 *          channel delivers now: the rate the pump reports while it runs,
 *          signed by the rotation it reports, and 0 while it is stopped.
 *
 * Wire (9600 baud 8N1): a command is the address character, the command and
 * its argument, then CR. The pump answers with one status character
 * ('*' done, '#' not executed, '+'/'-' yes/no for queries and for a start
 * that cannot run) or with a line of data ended by CR LF. Replies carry no
 * address: the line is a plain request/answer exchange.
 *
 * At the pump's address, "~1" switches on channel addressing; from then on
 * the address character names a channel (1-4) instead of a pump, which is
 * how the channels are run independently. The manual allows that for one
 * pump per line only, so every device on one line must name the same pump.
 *
 * Commands used, at the channel's address: M flow-rate mode, xM the mode
 * (M means flow rate), ? the channel's maximum flow for its tubing (mL/min),
 * J clockwise, K counter-clockwise, xD the rotation (J or K), f<rate> set the
 * flow rate in "volume type 2" (4-digit mantissa, exponent sign, exponent
 * digit: 1.234 mL/min is "1234+0"; the pump answers with the rate it set,
 * "volume type 1": "1234E+0"), f the flow rate, H start, I stop, E running
 * (+ or -). A start the pump cannot make (flow 0, or above the tubing's
 * maximum) is answered '-'. A rate the pump sets more than 0.5 % away from
 * the one asked for is reported as a refusal, and the channel not started.
 *
 * connect() switches channel addressing on, puts the channel in flow-rate
 * mode if it is in another, and learns the pump's maximum for the channel,
 * its rotation and whether it runs: a running channel is neither stopped
 * nor reversed. Event lines the pump may send on its own ("^U1", "^X1")
 * are skipped; stale bytes are drained before every command.
 */
#include "reglo.h"
#include "driver.h"
#include "serial_reply.h"
#include "setpoint.h"
#include "base/timeutil.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>


enum { CH_FLOW = 0, N_CHANNELS };

/* One pump channel, and what its pump last reported about it. */
struct reglo {
    char name[32];
    int address;        /* the pump's address, 1-8 */
    int channel;        /* 1-4 */
    double max_flow;    /* uL/min, from the rig */
    double pump_max;    /* uL/min, the pump's maximum for the tubing; 0 unknown */
    char forward;       /* 'J' or 'K': the rotation the rig calls forward */
    char rotation;      /* 'J', 'K', or 0 unknown */
    int running;        /* 1, 0, or -1 unknown */
};

/* ------------------------------------------------------------------------ */
/* Numbers                                                                  */
/* ------------------------------------------------------------------------ */

/* Format a rate as volume type 2, rounded to 4 significant digits. */
int reglo_format_vol2(double v, char *buf, size_t len)
{
    if (!isfinite(v) || !(v > 0) || buf == NULL)
        return -ERANGE;
    int e = (int)floor(log10(v));
    long m = lround(v / pow(10.0, e) * 1000.0);
    if (m >= 10000) {           /* 9.9996 rounds up to 10.00: one more decade */
        m = lround((double)m / 10.0);
        e++;
    }
    if (m < 1000) {             /* log10 rounded just below a power of ten */
        m *= 10;
        e--;
    }
    if (e < -9 || e > 9)
        return -ERANGE;
    int n = snprintf(buf, len, "%04ld%c%d", m, e < 0 ? '-' : '+', abs(e));
    return n > 0 && (size_t)n < len ? 0 : -ERANGE;
}

/* Parse "1234E-3", "1234-3" or "0.050", then an optional " ml/min". */
int reglo_parse_number(const char *data, double *value)
{
    if (data == NULL)
        return -EBADMSG;
    const char *p = data;
    double v;
    int digits = 0;
    while (isdigit((unsigned char)p[digits]))
        digits++;
    const char *q = p + digits;
    if (digits == 4 && (*q == 'E' || *q == 'e' || *q == '+' || *q == '-')) {
        /* Mantissa m.mmm and a one-digit signed exponent. */
        if (*q == 'E' || *q == 'e')
            q++;
        if ((*q != '+' && *q != '-') || !isdigit((unsigned char)q[1]))
            return -EBADMSG;
        /* m.mmm x 10^e is mmmm x 10^(e-3); dividing by an exact power of ten
         * keeps 3000E-1 at 0.3 rather than 0.30000000000000004. */
        int e = (*q == '-' ? -1 : 1) * (q[1] - '0') - 3;
        double m = (double)strtol(p, NULL, 10);
        v = e < 0 ? m / pow(10.0, -e) : m * pow(10.0, e);
        q += 2;
    } else {
        int points = 0, ds = 0;
        for (q = p; isdigit((unsigned char)*q) || *q == '.'; q++) {
            points += *q == '.';
            ds += *q != '.';
        }
        if (ds == 0 || points > 1 || q - p > 15)
            return -EBADMSG;
        v = strtod(p, NULL);
    }
    while (*q == ' ')
        q++;
    if (*q != '\0' && strcasecmp(q, "ml/min") != 0)
        return -EBADMSG;
    *value = v;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Replies                                                                  */
/* ------------------------------------------------------------------------ */

/* Whether c can start a status reply. */
static bool is_status(char c)
{
    return c == '*' || c == '#' || c == '+' || c == '-';
}

/* Find and parse the first complete reply in buf. */
int reglo_parse_reply(const char *buf, size_t len, enum reglo_expect expect,
                      struct reglo_reply *out)
{
    memset(out, 0, sizeof *out);
    size_t i = 0;
    for (;;) {
        while (i < len && (buf[i] == '\r' || buf[i] == '\n'))
            i++;
        if (i >= len)
            return 0;
        if (buf[i] != '^')
            break;
        /* An event line: a channel started or stopped by itself. Not ours. */
        const char *lf = memchr(buf + i, '\n', len - i);
        if (lf == NULL)
            return 0;
        i = (size_t)(lf - buf) + 1;
    }
    if (expect == REGLO_STATUS || buf[i] == '#' || buf[i] == '*') {
        if (!is_status(buf[i]))
            return -EBADMSG;
        out->status = buf[i];
        return (int)i + 1;
    }
    size_t n = 0;
    for (; i < len; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (c == '\r' || c == '\n')
            break;
        if (c < 0x20 || c > 0x7e || n + 1 >= sizeof out->data)
            return -EBADMSG;
        out->data[n++] = (char)c;
    }
    if (i >= len)
        return 0;
    if (buf[i] == '\r') {
        if (i + 1 >= len)
            return 0;               /* the LF is still on its way */
        if (buf[i + 1] == '\n')
            i++;
    }
    out->data[n] = '\0';
    return (int)i + 1;
}

/* What a '-' answer to H means. */
const char *reglo_cannot_run_text(void)
{
    return "the channel cannot run with its settings (flow rate 0, or above the maximum for its "
           "tubing)";
}

/* The flow a channel delivers now, in uL/min. */
double reglo_delivered_flow(int running, char rotation, char forward, double ml_per_min)
{
    if (running != 1)
        return 0.0;
    return (rotation == forward ? 1000.0 : -1000.0) * ml_per_min;
}

/* ------------------------------------------------------------------------ */
/* Exchanges                                                                */
/* ------------------------------------------------------------------------ */

/* What rg_take needs: the kind of answer expected and where it goes. */
struct rg_wait {
    enum reglo_expect expect;
    struct reglo_reply *reply;
};

/* One reply for serial_await_reply: the pump's replies carry no address, so
 * any complete one is ours. */
static int rg_take(void *ctx, const char *buf, size_t len, bool *ours, char *other, size_t olen)
{
    struct rg_wait *w = ctx;
    (void)other;
    (void)olen;
    *ours = true;
    return reglo_parse_reply(buf, len, w->expect, w->reply);
}

/* Send out[0..n) and read until the reply is complete. */
static int exchange(struct reglo *rg, struct bus_link *link, const char *cmd, const char *out,
                    size_t n, enum reglo_expect expect, struct reglo_reply *reply)
{
    struct rg_wait ctx = { expect, reply };
    const struct serial_wait w = { .dev = rg->name, .cmd = cmd, .take = rg_take, .ctx = &ctx };
    return serial_exchange(link, out, n, &w);
}

/* Send "<address><cmd>" CR and read the reply. A '#' is -EREMOTEIO; any other
 * status is returned in reply->status for the caller to judge. */
static int transact_at(struct reglo *rg, struct bus_link *link, int address, const char *cmd,
                       enum reglo_expect expect, struct reglo_reply *reply)
{
    memset(reply, 0, sizeof *reply);
    char out[48];
    int n = snprintf(out, sizeof out, "%d%s\r", address, cmd);
    if (n < 0 || (size_t)n >= sizeof out) {
        link_seterr(link, "%s: command '%s' is too long to send", rg->name, cmd);
        return -EINVAL;
    }
    char shown[48];
    snprintf(shown, sizeof shown, "%d%s", address, cmd);
    int rc = exchange(rg, link, shown, out, (size_t)n, expect, reply);
    if (rc < 0)
        return rc;
    if (reply->status == '#') {
        link_seterr(link, "%s: pump refused '%s' (#: not executed)", rg->name, shown);
        return -EREMOTEIO;
    }
    if (expect == REGLO_DATA && reply->status != 0) {
        link_seterr(link, "%s: expected data in reply to '%s', got '%c'", rg->name, shown,
                    reply->status);
        return -EBADMSG;
    }
    return 0;
}

/* A command to this device's channel. */
static int transact(struct reglo *rg, struct bus_link *link, const char *cmd,
                    enum reglo_expect expect, struct reglo_reply *reply)
{
    return transact_at(rg, link, rg->channel, cmd, expect, reply);
}

/* A command answered '*' (anything else is an error). */
static int command(struct reglo *rg, struct bus_link *link, const char *cmd)
{
    struct reglo_reply r;
    int rc = transact(rg, link, cmd, REGLO_STATUS, &r);
    if (rc == 0 && r.status != '*') {
        link_seterr(link, "%s: unexpected '%c' in reply to '%d%s'", rg->name, r.status,
                    rg->channel, cmd);
        return -EBADMSG;
    }
    return rc;
}

/* A yes/no query: 1 for '+', 0 for '-'. */
static int ask(struct reglo *rg, struct bus_link *link, const char *cmd, int *yes)
{
    struct reglo_reply r;
    int rc = transact(rg, link, cmd, REGLO_STATUS, &r);
    if (rc < 0)
        return rc;
    if (r.status != '+' && r.status != '-') {
        link_seterr(link, "%s: expected + or - in reply to '%d%s', got '%c'", rg->name,
                    rg->channel, cmd, r.status);
        return -EBADMSG;
    }
    *yes = r.status == '+';
    return 0;
}

/* A query answered with a rate in mL/min. */
static int ask_rate(struct reglo *rg, struct bus_link *link, const char *cmd, double *ml_min)
{
    struct reglo_reply r;
    int rc = transact(rg, link, cmd, REGLO_DATA, &r);
    if (rc < 0)
        return rc;
    if (reglo_parse_number(r.data, ml_min) < 0) {
        link_seterr(link, "%s: cannot parse the rate '%s' in reply to '%d%s'", rg->name, r.data,
                    rg->channel, cmd);
        return -EBADMSG;
    }
    return 0;
}

/* The rotation the pump reports: 'J' or 'K'. */
static int ask_rotation(struct reglo *rg, struct bus_link *link, char *rot)
{
    struct reglo_reply r;
    int rc = transact(rg, link, "xD", REGLO_DATA, &r);
    if (rc < 0)
        return rc;
    if (strcmp(r.data, "J") != 0 && strcmp(r.data, "K") != 0) {
        link_seterr(link, "%s: expected J or K in reply to '%dxD', got '%s'", rg->name,
                    rg->channel, r.data);
        return -EBADMSG;
    }
    *rot = r.data[0];
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Configuration                                                            */
/* ------------------------------------------------------------------------ */

static const char *const rg_params[] = { "address", "channel", "max_flow", "direction", NULL };

/* Read address, channel, max_flow and direction. */
static int parse_entry(const struct dev_config *cfg, struct reglo *rg)
{
    int bad = 0;
    long addr = 1, chan = 0;
    bad |= devcfg_int(cfg, "address", 1, 8, &addr) == -EINVAL;
    int rc = devcfg_int(cfg, "channel", 1, 4, &chan);
    if (rc == -ENOENT) {
        cfg->error(cfg, NULL, "a Reglo ICC device is one channel of the pump head: add "
                   "'channel: N' (1 to 4)");
        bad = 1;
    }
    bad |= rc == -EINVAL;
    rg->address = (int)addr;
    rg->channel = (int)chan;
    rc = devcfg_quantity(cfg, "max_flow", Q_FLOW, &rg->max_flow);
    if (rc == -ENOENT) {
        cfg->error(cfg, NULL, "a Reglo ICC channel needs the largest flow its tubing gives, e.g. "
                   "'max_flow: 1 mL/min' (the pump's own figure is on its display)");
        bad = 1;
    } else if (rc == 0 && !(rg->max_flow > 0)) {
        cfg->error(cfg, "max_flow", "max_flow must be above 0, found %g uL/min", rg->max_flow);
        bad = 1;
    }
    bad |= rc == -EINVAL;
    const char *dir = devcfg_get(cfg, "direction");
    rg->forward = 'J';
    if (dir != NULL && strcmp(dir, "ccw") == 0)
        rg->forward = 'K';
    else if (dir != NULL && strcmp(dir, "cw") != 0) {
        cfg->error(cfg, "direction", "direction must be cw or ccw (the rotor rotation that is "
                   "forward flow), found '%s'", dir);
        bad = 1;
    }
    return bad ? -EINVAL : 0;
}

/* Parse the rig entry and describe the channel. */
static int rg_open(const struct dev_config *cfg, void **state, struct driver_channel *ch,
                   size_t *n)
{
    struct reglo *rg = calloc(1, sizeof *rg);
    if (rg == NULL)
        return -ENOMEM;
    snprintf(rg->name, sizeof rg->name, "%s", cfg->name ? cfg->name : "reglo");
    int bad = devcfg_check_known(cfg, rg_params, "a Reglo ICC pump") < 0;
    bad |= parse_entry(cfg, rg) < 0;
    if (bad) {
        free(rg);
        return -EINVAL;
    }
    rg->running = -1;
    ch[CH_FLOW] = (struct driver_channel){ .name = "flow", .q = Q_FLOW, .unit = "uL/min",
        .readable = 1, .writable = 1, .min = -rg->max_flow, .max = rg->max_flow,
        .sample_hz = 2, .readback = 1, .reassert = 0, .safe_value = 0 };
    *n = N_CHANNELS;
    *state = rg;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Operations                                                               */
/* ------------------------------------------------------------------------ */

/* Channel addressing on, flow-rate mode, and what the channel does now. */
static int rg_connect(void *state, struct bus_link *link)
{
    struct reglo *rg = state;
    struct reglo_reply r;
    rg->running = -1;
    rg->rotation = 0;
    rg->pump_max = 0;
    int rc = transact_at(rg, link, rg->address, "~1", REGLO_STATUS, &r);
    if (rc == 0 && r.status != '*') {
        link_seterr(link, "%s: unexpected '%c' in reply to '%d~1'", rg->name, r.status,
                    rg->address);
        rc = -EBADMSG;
    }
    if (rc < 0)
        return rc;
    rc = transact(rg, link, "xM", REGLO_DATA, &r);
    if (rc < 0)
        return rc;
    if (strcmp(r.data, "M") != 0 && (rc = command(rg, link, "M")) < 0)
        return rc;
    double max;
    if ((rc = ask_rate(rg, link, "?", &max)) < 0)
        return rc;
    rg->pump_max = max * 1000.0;
    if ((rc = ask_rotation(rg, link, &rg->rotation)) < 0)
        return rc;
    return ask(rg, link, "E", &rg->running);
}

/* Read the delivered flow: 0 when stopped, else the rate signed by the rotation. */
static int rg_read(void *state, struct bus_link *link, size_t ch, double *value)
{
    struct reglo *rg = state;
    if (ch != CH_FLOW) {
        link_seterr(link, "%s: no channel %zu", rg->name, ch);
        return -EINVAL;
    }
    int running, rc = ask(rg, link, "E", &running);
    if (rc < 0)
        return rc;
    rg->running = running;
    if (!running) {
        *value = 0.0;
        return 0;
    }
    char rot;
    double ml_min;
    if ((rc = ask_rotation(rg, link, &rot)) < 0)
        return rc;
    rg->rotation = rot;
    if ((rc = ask_rate(rg, link, "f", &ml_min)) < 0)
        return rc;
    *value = reglo_delivered_flow(1, rot, rg->forward, ml_min);
    return 0;
}

/* Stop the channel; always sent, whatever we believe its state is. */
static int rg_stop(struct reglo *rg, struct bus_link *link)
{
    int rc = command(rg, link, "I");
    if (rc == 0)
        rg->running = 0;
    return rc;
}

/* Check a flow setpoint and format its magnitude; -ERANGE/-EINVAL with a message. */
static int check_setpoint(struct reglo *rg, struct bus_link *link, double v, char *arg, size_t len)
{
    int rc = setpoint_check_flow(link, rg->name, v, rg->max_flow);
    if (rc < 0)
        return rc;
    if (rg->pump_max > 0 && fabs(v) > rg->pump_max * (1 + 1e-9)) {
        link_seterr(link, "%s: %g uL/min is above the %g uL/min the pump gives on channel %d "
                    "with its tubing; lower max_flow or fit wider tubing", rg->name, v,
                    rg->pump_max, rg->channel);
        return -ERANGE;
    }
    if (reglo_format_vol2(fabs(v) / 1000.0, arg, len) < 0) {
        link_seterr(link, "%s: %g uL/min cannot be written in the pump's number format",
                    rg->name, v);
        return -ERANGE;
    }
    return 0;
}

/* Command a flow: 0 stops; otherwise the rotation if it differs, the rate, then H. */
static int rg_write(void *state, struct bus_link *link, size_t ch, double v)
{
    struct reglo *rg = state;
    if (ch != CH_FLOW) {
        link_seterr(link, "%s: only 'flow' can be set", rg->name);
        return -EINVAL;
    }
    if (v == 0)
        return rg_stop(rg, link);
    char arg[16], cmd[24];
    int rc = check_setpoint(rg, link, v, arg, sizeof arg);
    if (rc < 0)
        return rc;
    char want = v > 0 ? rg->forward : (rg->forward == 'J' ? 'K' : 'J');
    if (rg->rotation != want) {
        rc = command(rg, link, want == 'J' ? "J" : "K");
        rg->rotation = rc == 0 ? want : 0;
        if (rc < 0)
            return rc;
    }
    snprintf(cmd, sizeof cmd, "f%s", arg);
    double set, asked = fabs(v) / 1000.0;
    if ((rc = ask_rate(rg, link, cmd, &set)) < 0)
        return rc;
    if (fabs(set - asked) > 0.005 * asked) {
        /* The pump took another rate (its limit for the tubing): say so rather than run it. */
        link_seterr(link, "%s: pump set %g mL/min on channel %d when asked for %g mL/min",
                    rg->name, set, rg->channel, asked);
        return -EREMOTEIO;
    }
    /* H even if we believe it runs: a start of a running channel changes nothing,
     * and the channel may have been stopped at its keypad since the last poll. */
    struct reglo_reply r;
    if ((rc = transact(rg, link, "H", REGLO_STATUS, &r)) < 0)
        return rc;
    if (r.status == '-') {
        link_seterr(link, "%s: pump answered '-' to '%dH': %s", rg->name, rg->channel,
                    reglo_cannot_run_text());
        return -EREMOTEIO;
    }
    if (r.status != '*') {
        link_seterr(link, "%s: unexpected '%c' in reply to '%dH'", rg->name, r.status,
                    rg->channel);
        return -EBADMSG;
    }
    rg->running = 1;
    return 0;
}

/* Stop the channel. */
static int rg_safe_state(void *state, struct bus_link *link)
{
    return rg_stop(state, link);
}

/* Free the channel's state. */
static void rg_close(void *state)
{
    free(state);
}

const struct driver_ops reglo_driver = {
    .name = "reglo",
    .bus_types = "serial",
    /* The shortest reading is a stopped channel's: "1E" CR (3) answered by the one
     * status character '-' (1); a running channel adds xD and f exchanges. */
    .chars_per_reading = 4,
    .open = rg_open,
    .connect = rg_connect,
    .read = rg_read,
    .write = rg_write,
    .safe_state = rg_safe_state,
    .close = rg_close,
};
