/*
 * Elveflow OB1 MK4-style multi-channel pressure controller on a serial line.
 *
 * Example rig entry:
 *
 *   buses:
 *     - {name: ob1line, type: serial, port: /dev/ttyACM0, baud: 115200}
 *   devices:
 *     - {name: ob1, driver: ob1, bus: ob1line, channels: 4,
 *        min_pressure: 0 mbar, max_pressure: 2000 mbar}
 *
 * Parameters: channels (1 to 4, default 4: how many pressure regulators the
 * controller has), min_pressure and max_pressure (the channels' range,
 * default 0 and 2000 mbar; a vacuum-capable channel may go below 0, down to
 * -1000 mbar), settle_tolerance (how far the read pressure may be from the
 * setpoint to count as confirmed, default 5 mbar; unused unless readback is
 * asked for with readback: true).
 *
 * Channels: p1 .. pN, pressure in mbar, read and write. Written: the
 * regulator's pressure setpoint. Read: the regulator's own pressure
 * measurement (what it delivers now, which lags the setpoint). safe_state
 * sets every channel to 0 mbar (vented), so that nothing is pushed.
 *
 * Wire, as documented by the open Micro-Manager Elveflow device adapter
 * (DeviceAdapters/Elveflow/ob1_mk4.cpp), which this file follows without
 * sharing its code:
 *   - the line runs at 115200 baud, 8N1, no handshake;
 *   - a command is '<' + KEYWORD, then '?' to get or '!' to set, then its
 *     parameters, then LF; the controller answers one line ended by LF;
 *   - keywords: FIRMV (firmware), PINGA (all data), PRESS (set a channel's
 *     pressure: parameters ":CH:VALUE", channels numbered from 0), TRIGI and
 *     TRIGO (triggers);
 *   - the PINGA answer carries, after a header, ':'-separated fields: for each
 *     of the four channels the regulator value, the sensor value and the
 *     sensor type, then the trigger in and out.
 * Assumed (not stated there, so a real controller may differ):
 *   - the PINGA header is the keyword echoed ("<PINGA?" or "PINGA") and the
 *     fields start after its first ':'; regulator values are in mbar;
 *   - PRESS takes a decimal value in mbar (the adapter only ever sends whole
 *     numbers; perfuse sends up to two decimals);
 *   - the answer to a set is a line echoing the keyword; a line holding "ERR"
 *     is a refusal;
 *   - no reply arrives unasked (the adapter polls; so does perfuse).
 * A time-out, a garbled line or a line answering another keyword is never
 * taken as a value.
 */
#include "ob1.h"
#include "driver.h"
#include "serial_reply.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One controller. */
struct ob1 {
    char name[32];
    int channels;
    double pmin, pmax;      /* mbar */
    double tol;             /* mbar */
    bool readback;
};

/* ------------------------------------------------------------------------ */
/* Framing                                                                  */
/* ------------------------------------------------------------------------ */

/* Format one command. */
int ob1_format(char *buf, size_t len, const char *keyword, bool set, const char *args)
{
    int n = snprintf(buf, len, "<%s%c%s\n", keyword, set ? '!' : '?', args ? args : "");
    return n < 0 || (size_t)n >= len ? -ERANGE : n;
}

/* Take the first reply line. */
int ob1_take_line(const char *buf, size_t len, char *line, size_t cap)
{
    const char *lf = memchr(buf, '\n', len);
    if (lf == NULL)
        return len < cap ? 0 : -EBADMSG;
    size_t n = (size_t)(lf - buf);
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    if (n >= cap)
        return -EBADMSG;
    for (size_t i = 0; i < n; i++)
        if (buf[i] < 0x20 || buf[i] > 0x7e)
            return -EBADMSG;
    memcpy(line, buf, n);
    line[n] = '\0';
    return (int)(lf - buf) + 1;
}

/* Whether a reply answers keyword. */
bool ob1_reply_is(const char *line, const char *keyword)
{
    if (*line == '<')
        line++;
    size_t k = strlen(keyword);
    return strncmp(line, keyword, k) == 0 && !isalpha((unsigned char)line[k]);
}

/* Whether a reply is a refusal. */
bool ob1_reply_refused(const char *line)
{
    return strstr(line, "ERR") != NULL;
}

/* Parse one decimal number field [s, e). */
static bool field_number(const char *s, const char *e, double *v)
{
    char tmp[32], *end;
    size_t n = (size_t)(e - s);
    if (n == 0 || n >= sizeof tmp)
        return false;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    *v = strtod(tmp, &end);
    return *end == '\0' && isfinite(*v);
}

/* Parse a PINGA reply. */
int ob1_parse_pinga(const char *line, double reg[OB1_MAX_CHANNELS])
{
    if (!ob1_reply_is(line, "PINGA"))
        return -EBADMSG;
    const char *p = strchr(line, ':');
    if (p == NULL)
        return -EBADMSG;
    p++;
    int field = 0, found = 0;
    while (found < OB1_MAX_CHANNELS) {
        const char *e = strchr(p, ':');
        if (e == NULL)
            e = p + strlen(p);
        if (field % 3 == 0) {
            if (!field_number(p, e, &reg[found]))
                break;      /* a channel's value unreadable: only those before it count */
            found++;
        }
        field++;
        if (*e == '\0')
            break;
        p = e + 1;
    }
    return found > 0 ? found : -EBADMSG;
}

/* ------------------------------------------------------------------------ */
/* Exchanges                                                                */
/* ------------------------------------------------------------------------ */

/* What ob1_take needs: the keyword answered and where the line goes. */
struct ob1_wait {
    const char *keyword;
    char line[OB1_LINE_MAX];
};

/* One reply line for serial_await_reply: ours if it answers our keyword. */
static int ob1_take(void *ctx, const char *buf, size_t len, bool *ours, char *other, size_t olen)
{
    struct ob1_wait *w = ctx;
    int used = ob1_take_line(buf, len, w->line, sizeof w->line);
    if (used > 0) {
        *ours = ob1_reply_is(w->line, w->keyword) || ob1_reply_refused(w->line);
        if (!*ours)
            snprintf(other, olen, "a reply to another command ('%.40s')", w->line);
    }
    return used;
}

/* A hint when the line is not set up the way the controller talks. */
static const char *line_hint(const struct bus_link *link)
{
    const struct link_config *c = link->cfg;
    if (c == NULL || c->baud == 115200)
        return "";
    return " (the OB1 talks 115200 baud 8N1: set the bus to 'baud: 115200')";
}

/* Send one command and take its answer line into w->line; a refusal is -EREMOTEIO. */
static int transact(const struct ob1 *o, struct bus_link *link, const char *keyword, bool set,
                    const char *args, struct ob1_wait *w)
{
    char out[96], shown[96];
    int n = ob1_format(out, sizeof out, keyword, set, args);
    if (n < 0) {
        link_seterr(link, "%s: command '%s' is too long to send", o->name, keyword);
        return -EINVAL;
    }
    snprintf(shown, sizeof shown, "%.*s", n - 1, out);
    w->keyword = keyword;
    w->line[0] = '\0';
    const struct serial_wait sw = { .dev = o->name, .cmd = shown, .hint = line_hint(link),
                                    .take = ob1_take, .ctx = w };
    int rc = serial_exchange(link, out, (size_t)n, &sw);
    if (rc < 0)
        return rc;
    if (ob1_reply_refused(w->line)) {
        link_seterr(link, "%s: the controller refused '%s': '%s'", o->name, shown, w->line);
        return -EREMOTEIO;
    }
    return 0;
}

/* Read every regulator's pressure. */
static int ping(const struct ob1 *o, struct bus_link *link, double reg[OB1_MAX_CHANNELS])
{
    struct ob1_wait w;
    int rc = transact(o, link, "PINGA", false, "", &w);
    if (rc < 0)
        return rc;
    int n = ob1_parse_pinga(w.line, reg);
    if (n < o->channels) {
        link_seterr(link, "%s: cannot read %d channel pressures from the PINGA answer '%.60s'",
                    o->name, o->channels, w.line);
        return -EBADMSG;
    }
    return 0;
}

/* Set channel ch (0-based) to p mbar. */
static int press(const struct ob1 *o, struct bus_link *link, int ch, double p)
{
    char args[48];
    snprintf(args, sizeof args, ":%d:%.2f", ch, p);
    struct ob1_wait w;
    return transact(o, link, "PRESS", true, args, &w);
}

/* ------------------------------------------------------------------------ */
/* Configuration                                                            */
/* ------------------------------------------------------------------------ */

static const char *const ob1_params[] = { "channels", "min_pressure", "max_pressure",
                                          "settle_tolerance", "readback", NULL };

/* Read the pressure range and tolerance. */
static int parse_range(const struct dev_config *cfg, struct ob1 *o)
{
    int bad = 0, rc;
    o->pmin = 0;
    o->pmax = 2000;
    o->tol = 5;
    if ((rc = devcfg_quantity(cfg, "min_pressure", Q_PRESSURE, &o->pmin)) == -EINVAL)
        bad = 1;
    if ((rc = devcfg_quantity(cfg, "max_pressure", Q_PRESSURE, &o->pmax)) == -EINVAL)
        bad = 1;
    if ((rc = devcfg_quantity(cfg, "settle_tolerance", Q_PRESSURE, &o->tol)) == -EINVAL)
        bad = 1;
    if (!bad && (o->pmin < -1000 || o->pmax > 8000 || o->pmin >= o->pmax)) {
        cfg->error(cfg, "max_pressure", "the pressure range must lie within -1000 .. 8000 mbar "
                   "with min_pressure below max_pressure, found %g .. %g mbar", o->pmin, o->pmax);
        bad = 1;
    }
    if (!bad && !(o->tol > 0)) {
        cfg->error(cfg, "settle_tolerance", "settle_tolerance must be a pressure above 0");
        bad = 1;
    }
    const char *rb = devcfg_get(cfg, "readback");
    if (rb != NULL && strcmp(rb, "true") != 0 && strcmp(rb, "false") != 0) {
        cfg->error(cfg, "readback", "readback must be true or false, found '%s'", rb);
        bad = 1;
    }
    o->readback = rb != NULL && strcmp(rb, "true") == 0;
    return bad ? -EINVAL : 0;
}

/* Parse the rig entry and describe the channels. */
static int ob1_open(const struct dev_config *cfg, void **state, struct driver_channel *ch,
                    size_t *n)
{
    struct ob1 *o = calloc(1, sizeof *o);
    if (o == NULL)
        return -ENOMEM;
    snprintf(o->name, sizeof o->name, "%s", cfg->name ? cfg->name : "ob1");
    int bad = devcfg_check_known(cfg, ob1_params, "an OB1 pressure controller") < 0;
    long channels = OB1_MAX_CHANNELS;
    if (devcfg_int(cfg, "channels", 1, OB1_MAX_CHANNELS, &channels) == -EINVAL)
        bad = 1;
    bad |= parse_range(cfg, o) < 0;
    if (bad) {
        free(o);
        return -EINVAL;
    }
    o->channels = (int)channels;
    for (int i = 0; i < o->channels; i++) {
        ch[i] = (struct driver_channel){ .q = Q_PRESSURE, .unit = "mbar", .readable = 1,
            .writable = 1, .min = o->pmin, .max = o->pmax, .sample_hz = 10,
            .readback = o->readback, .reassert = 1, .safe_value = 0, .readback_tol = o->tol };
        snprintf(ch[i].name, sizeof ch[i].name, "p%d", i + 1);
    }
    *n = (size_t)o->channels;
    *state = o;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Operations                                                               */
/* ------------------------------------------------------------------------ */

/* Ask the firmware version and check that PINGA carries every channel. */
static int ob1_connect(void *state, struct bus_link *link)
{
    struct ob1 *o = state;
    struct ob1_wait w;
    double reg[OB1_MAX_CHANNELS];
    int rc = transact(o, link, "FIRMV", false, "", &w);
    if (rc < 0)
        return rc;
    return ping(o, link, reg);
}

/* Read one regulator's measured pressure. */
static int ob1_read(void *state, struct bus_link *link, size_t ch, double *value)
{
    struct ob1 *o = state;
    double reg[OB1_MAX_CHANNELS];
    if (ch >= (size_t)o->channels)
        return -EINVAL;
    int rc = ping(o, link, reg);
    if (rc < 0)
        return rc;
    *value = reg[ch];
    return 0;
}

/* Set one regulator's pressure, within the channel's range. */
static int ob1_write(void *state, struct bus_link *link, size_t ch, double v)
{
    struct ob1 *o = state;
    if (ch >= (size_t)o->channels) {
        link_seterr(link, "%s: no channel p%zu", o->name, ch + 1);
        return -EINVAL;
    }
    if (!isfinite(v)) {
        link_seterr(link, "%s: p%zu: a pressure setpoint must be a number", o->name, ch + 1);
        return -EINVAL;
    }
    if (v < o->pmin || v > o->pmax) {
        link_seterr(link, "%s: p%zu: %g mbar is outside the channel's range %g .. %g mbar",
                    o->name, ch + 1, v, o->pmin, o->pmax);
        return -ERANGE;
    }
    return press(o, link, (int)ch, v);
}

/* Vent every channel: 0 mbar pushes nothing. */
static int ob1_safe_state(void *state, struct bus_link *link)
{
    struct ob1 *o = state;
    int first = 0;
    for (int i = 0; i < o->channels; i++) {
        int rc = press(o, link, i, 0.0);
        if (rc < 0 && first == 0)
            first = rc;
        if (rc == -ENOTCONN)
            break;
    }
    return first;
}

/* Free the controller's state. */
static void ob1_close(void *state)
{
    free(state);
}

const struct driver_ops ob1_driver = {
    .name = "ob1",
    .bus_types = "serial",
    /* A reading is one PINGA exchange: "<PINGA?" LF (8), answered by the header
     * "PINGA", then 14 fields of at least one character (3 for each of the four
     * channels, trigger in and out), each after a ':', and LF (5 + 28 + 1 = 34). */
    .chars_per_reading = 42,
    .open = ob1_open,
    .connect = ob1_connect,
    .read = ob1_read,
    .write = ob1_write,
    .safe_state = ob1_safe_state,
    .close = ob1_close,
};
