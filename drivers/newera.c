/*
 * New Era NE-500 / NE-1000 family syringe pumps, RS-232 "Basic" mode.
 *
 * Example rig entry:
 *
 *   buses:
 *     - {name: pumps, type: serial, port: /dev/ttyUSB0, baud: 19200}
 *   devices:
 *     - {name: pump1, driver: newera, bus: pumps, address: 0,
 *        syringe: {diameter: 14.57 mm, volume: 10 mL}, max_flow: 1000 uL/min}
 *
 * Parameters: address (0-99, default 0), syringe.diameter (required: the
 * inside diameter), syringe.volume (optional: how much the syringe holds),
 * max_flow (optional, default 1000 uL/min; setpoints are limited to
 * -max_flow..max_flow, negative meaning withdraw).
 *
 * Channels:
 *   flow       uL/min, read and write. Reads back what the pump delivers now:
 *              the programmed rate while infusing, its negative while
 *              withdrawing, 0 otherwise.
 *   dispensed  uL, read: the infused volume the pump counts (DIS).
 *
 * Wire: a command is "[address]COMMAND[args]" + CR; the pump ignores spaces.
 * A reply is STX, the 2-digit address, a status prompt (I infusing,
 * W withdrawing, S stopped, P paused, T timed pause, U user wait, X purging)
 * or an alarm "A?x", optional data, ETX. Command errors come as data: "?",
 * "?NA", "?OOR", "?COM", "?IGN". Several pumps share one line at addresses
 * 0-99; a reply from another address is not ours and is skipped.
 *
 * After an alarm (a stall when the syringe is empty, a power cut) the pump
 * answers the next command with the alarm instead of executing it; the
 * driver reports that as -EREMOTEIO and never as a value.
 *
 * safe_mode: N s (optional, 2-255 s) puts the pump in its "Safe" mode: every
 * exchange is a packet with a length and a CRC, and the pump stops itself
 * (alarm A?T) when no valid packet has come for N s, so a pump is never left
 * running by a daemon that died. The bus's polls (flow at 2 Hz, by default)
 * keep it alive; keep the pump's channels sampled more often than every N/3 s.
 * When the daemon stops in order, the pump is returned to Basic mode, so that
 * on_shutdown: hold leaves it pumping.
 */
#include "newera.h"
#include "driver.h"
#include "serial_reply.h"
#include "setpoint.h"
#include "base/timeutil.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NE_DEFAULT_MAX_FLOW 1000.0      /* uL/min */
#define NE_MIN_DIAMETER 0.1             /* mm: the pump's own limits */
#define NE_MAX_DIAMETER 50.0

enum { CH_FLOW = 0, CH_DISPENSED = 1, N_CHANNELS };

/* One pump. What it was last told and last reported, so a repeated setpoint
 * costs one RAT and the direction or RUN are only sent when needed. */
struct newera {
    char name[32];
    int address;
    double diameter_mm;
    double syringe_ul;
    double max_flow;
    int dir;            /* +1 infuse, -1 withdraw, 0 unknown */
    int running;        /* 1 pumping, 0 stopped, -1 unknown */
    int safe_s;         /* safe_mode time-out asked for, s; 0: Basic mode */
    bool safe_on;       /* the pump talks in safe-mode packets now */
    int64_t last_ms;    /* when the last exchange ended */
    bool switching;     /* a SAF command is out: its reply comes in the mode it sets */
    bool safe_next;
};

/* ------------------------------------------------------------------------ */
/* Numbers                                                                  */
/* ------------------------------------------------------------------------ */

/* Rate units of the pump, in the order preferred when two are equally exact. */
static const struct { const char *name; double per_ul_min; } rate_units[] = {
    { "UM", 1.0 }, { "MM", 1e-3 }, { "UH", 60.0 }, { "MH", 0.06 },
};
#define N_RATE_UNITS (sizeof rate_units / sizeof rate_units[0])

/* Count the decimal digits of a formatted number. */
static int count_digits(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += isdigit((unsigned char)*s) != 0;
    return n;
}

/* Format v in at most 4 digits and 3 decimals. */
int newera_format_float(double v, char *buf, size_t len)
{
    if (!(v >= 0) || v >= 9999.5 || len == 0)
        return -ERANGE;
    char tmp[32];
    for (int dec = 3; dec >= 0; dec--) {
        snprintf(tmp, sizeof tmp, "%.*f", dec, v);
        if (count_digits(tmp) <= 4) {
            if (strlen(tmp) >= len)
                return -ERANGE;
            memcpy(buf, tmp, strlen(tmp) + 1);
            return 0;
        }
    }
    return -ERANGE;
}

/* Format a rate, choosing the unit that represents it most exactly. */
int newera_format_rate(double ul_min, char *buf, size_t len)
{
    if (!(ul_min > 0) || !isfinite(ul_min))
        return -ERANGE;
    double best_err = INFINITY;
    char best[32] = "";
    for (size_t i = 0; i < N_RATE_UNITS; i++) {
        char num[24];
        if (newera_format_float(ul_min * rate_units[i].per_ul_min, num, sizeof num) < 0)
            continue;
        double back = strtod(num, NULL) / rate_units[i].per_ul_min;
        double err = fabs(back - ul_min);
        /* A tie goes to the earlier unit; relative 1e-12 absorbs binary rounding. */
        if (back > 0 && err < best_err - 1e-12 * ul_min) {
            best_err = err;
            snprintf(best, sizeof best, "%s %s", num, rate_units[i].name);
        }
    }
    if (best[0] == '\0' || strlen(best) >= len)
        return -ERANGE;
    memcpy(buf, best, strlen(best) + 1);
    return 0;
}

/* Parse a pump float (digits and at most one point, nothing else); *end after it. */
static int parse_float(const char *s, double *out, const char **end)
{
    char tmp[16];
    size_t n = 0;
    int digits = 0, points = 0;
    for (const char *p = s; isdigit((unsigned char)*p) || *p == '.'; p++) {
        if (n + 1 >= sizeof tmp)
            return -EBADMSG;
        tmp[n++] = *p;
        if (*p == '.')
            points++;
        else
            digits++;
    }
    if (digits == 0 || points > 1)
        return -EBADMSG;
    tmp[n] = '\0';
    *out = strtod(tmp, NULL);
    *end = s + n;
    return 0;
}

/* Parse "12.50UM" into uL/min. */
int newera_parse_rate(const char *data, double *ul_min)
{
    double v;
    const char *p;
    if (data == NULL || parse_float(data, &v, &p) < 0)
        return -EBADMSG;
    while (*p == ' ')
        p++;
    for (size_t i = 0; i < N_RATE_UNITS; i++)
        if (strcmp(p, rate_units[i].name) == 0) {
            *ul_min = v / rate_units[i].per_ul_min;
            return 0;
        }
    return -EBADMSG;
}

/* Parse "I0.250W0.000ML" into infused and withdrawn uL. */
int newera_parse_dispensed(const char *data, double *inf, double *wdr)
{
    double i, w;
    const char *p = data;
    if (p == NULL || *p++ != 'I' || parse_float(p, &i, &p) < 0 || *p++ != 'W' ||
        parse_float(p, &w, &p) < 0)
        return -EBADMSG;
    double f = strcmp(p, "ML") == 0 ? 1000.0 : strcmp(p, "UL") == 0 ? 1.0 : 0.0;
    if (f == 0)
        return -EBADMSG;
    *inf = i * f;
    *wdr = w * f;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Replies                                                                  */
/* ------------------------------------------------------------------------ */

/* Parse the inside of one frame (between STX and ETX). */
static int parse_frame(const char *p, size_t n, struct newera_reply *out)
{
    memset(out, 0, sizeof *out);
    if (n < 3 || !isdigit((unsigned char)p[0]) || !isdigit((unsigned char)p[1]))
        return -EBADMSG;
    out->address = (p[0] - '0') * 10 + (p[1] - '0');
    p += 2;
    n -= 2;
    if (p[0] == 'A') {
        if (n < 3 || p[1] != '?' || !isupper((unsigned char)p[2]))
            return -EBADMSG;
        out->status = 'A';
        out->alarm = p[2];
        p += 3;
        n -= 3;
    } else if (p[0] != '\0' && strchr("IWSPTUX", p[0]) != NULL) {
        out->status = p[0];
        p++;
        n--;
    } else {
        return -EBADMSG;
    }
    if (n >= sizeof out->data)
        return -EBADMSG;
    for (size_t i = 0; i < n; i++)
        if (p[i] < 0x20 || p[i] > 0x7e)
            return -EBADMSG;
    memcpy(out->data, p, n);
    out->data[n] = '\0';
    return 0;
}

unsigned newera_crc16(const char *data, size_t n)
{
    unsigned crc = 0;
    for (size_t i = 0; i < n; i++) {
        crc ^= (unsigned)(unsigned char)data[i] << 8;
        for (int b = 0; b < 8; b++)
            crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    }
    return crc;
}

int newera_safe_packet(const char *data, size_t n, char *out, size_t len)
{
    if (n + 5 > len || n + 4 > 255)
        return -ERANGE;
    unsigned crc = newera_crc16(data, n);
    out[0] = NEWERA_STX;
    out[1] = (char)(n + 4);
    memcpy(out + 2, data, n);
    out[2 + n] = (char)(crc >> 8);
    out[3 + n] = (char)(crc & 0xff);
    out[4 + n] = NEWERA_ETX;
    return (int)n + 5;
}

int newera_parse_safe_reply(const char *buf, size_t len, struct newera_reply *out)
{
    const char *stx = buf ? memchr(buf, NEWERA_STX, len) : NULL;
    if (stx == NULL)
        return 0;
    size_t at = (size_t)(stx - buf);
    if (len - at < 2)
        return 0;
    size_t plen = (unsigned char)stx[1];
    if (plen < 5)
        return -EBADMSG;
    if (len - at < 1 + plen)
        return 0;
    size_t n = plen - 4;
    const char *data = stx + 2;
    unsigned crc = ((unsigned)(unsigned char)data[n] << 8) | (unsigned char)data[n + 1];
    if (data[n + 2] != NEWERA_ETX || crc != newera_crc16(data, n) || parse_frame(data, n, out) < 0)
        return -EBADMSG;
    return (int)(at + 1 + plen);
}

/* Find and parse the first complete reply in buf. */
int newera_parse_reply(const char *buf, size_t len, struct newera_reply *out)
{
    size_t start = 0;
    while (buf != NULL && start < len) {
        const char *etx = memchr(buf + start, NEWERA_ETX, len - start);
        if (etx == NULL)
            return 0;
        /* The last STX before the ETX: a truncated frame before it is noise. */
        const char *stx = NULL;
        for (const char *p = etx; p > buf + start; p--)
            if (p[-1] == NEWERA_STX) {
                stx = p - 1;
                break;
            }
        if (stx == NULL) {
            start = (size_t)(etx - buf) + 1;    /* an ETX with no frame: noise */
            continue;
        }
        if (parse_frame(stx + 1, (size_t)(etx - stx - 1), out) < 0)
            return -EBADMSG;
        return (int)(etx - buf + 1);
    }
    return 0;
}

/* What an alarm means. */
const char *newera_alarm_text(char alarm)
{
    switch (alarm) {
    case 'R': return "pump was reset (A?R): power was interrupted";
    case 'S': return "motor stalled (A?S): syringe empty or blocked";
    case 'T': return "communications time-out (A?T): the pump's safe mode stopped it";
    case 'E': return "pumping program error (A?E)";
    case 'O': return "pumping program phase out of range (A?O)";
    default: return "unknown alarm from the pump";
    }
}

/* What a command error means. */
static const char *command_error_text(const char *data)
{
    if (strcmp(data, "?") == 0)
        return "command not recognised";
    if (strcmp(data, "?NA") == 0)
        return "not applicable now";
    if (strcmp(data, "?OOR") == 0)
        return "value out of range";
    if (strcmp(data, "?COM") == 0)
        return "invalid packet";
    if (strcmp(data, "?IGN") == 0)
        return "command ignored";
    return "error";
}

/* Whether a reply reports an alarm or a command error. */
int newera_reply_error(const struct newera_reply *r, const char *device, const char *cmd,
                       char *err, size_t len)
{
    if (r->status == 'A') {
        if (strchr("RSTEO", r->alarm) != NULL)
            snprintf(err, len, "%s: %s", device, newera_alarm_text(r->alarm));
        else
            snprintf(err, len, "%s: unknown alarm A?%c from the pump", device, r->alarm);
        return -EREMOTEIO;
    }
    if (r->data[0] == '?') {
        snprintf(err, len, "%s: pump refused '%s': %s (%s)", device, cmd,
                 command_error_text(r->data), r->data);
        return -EREMOTEIO;
    }
    return 0;
}

/* The flow the pump delivers now. */
double newera_delivered_flow(char status, double rate)
{
    return status == 'I' ? rate : status == 'W' ? -rate : 0.0;
}

/* ------------------------------------------------------------------------ */
/* Exchanges                                                                */
/* ------------------------------------------------------------------------ */

/* Learn the pump's state from the prompt of any reply. */
static void note_status(struct newera *ne, const struct newera_reply *r)
{
    switch (r->status) {
    case 'I': ne->running = 1; ne->dir = 1; break;
    case 'W': ne->running = 1; ne->dir = -1; break;
    case 'S': case 'P': case 'T': case 'U': ne->running = 0; break;
    case 'A': ne->running = -1; ne->dir = 0; break;    /* stopped, and nothing was executed */
    default: ne->running = -1; break;                  /* purging: the rate is not ours */
    }
}

/* The first reply in buf in the current mode; the reply to a mode switch
 * (SAF) may come in either, the manual does not say which. */
static int parse_any(const struct newera *ne, const char *buf, size_t len, struct newera_reply *reply)
{
    if (!ne->switching)
        return ne->safe_on ? newera_parse_safe_reply(buf, len, reply) : newera_parse_reply(buf, len, reply);
    int used = newera_parse_safe_reply(buf, len, reply);
    return used > 0 ? used : newera_parse_reply(buf, len, reply);
}

/* What ne_take needs: the pump and where its reply goes. */
struct ne_wait {
    struct newera *ne;
    struct newera_reply *reply;
};

/* One frame for serial_await_reply: ours if it comes from the pump's address. */
static int ne_take(void *ctx, const char *buf, size_t len, bool *ours, char *other, size_t olen)
{
    struct ne_wait *w = ctx;
    int used = parse_any(w->ne, buf, len, w->reply);
    if (used > 0) {
        *ours = w->reply->address == w->ne->address;
        snprintf(other, olen, "address %d", w->reply->address);
    }
    return used;
}

/* Whether leftover bytes hold the start of a frame, not just noise. */
static bool ne_started(const char *buf, size_t len)
{
    return memchr(buf, NEWERA_STX, len) != NULL;
}

/* Send out[0..n) and read until a reply from our address arrives; skip other pumps' replies. */
static int exchange(struct newera *ne, struct bus_link *link, const char *cmd, const char *out,
                    size_t n, struct newera_reply *reply)
{
    char who[16];
    struct ne_wait ctx = { ne, reply };
    snprintf(who, sizeof who, "address %d", ne->address);
    const struct serial_wait w = { .dev = ne->name, .cmd = cmd, .who = who, .take = ne_take,
                                   .ctx = &ctx, .started = ne_started };
    return serial_exchange(link, out, n, &w);
}


static int transact(struct newera *ne, struct bus_link *link, const char *cmd,
                    struct newera_reply *reply);

/* Send a mode switch (SAF) in the current mode and take its reply in the new one. */
static int transact_switch(struct newera *ne, struct bus_link *link, const char *cmd, bool safe_after,
                           struct newera_reply *reply)
{
    ne->switching = true;
    ne->safe_next = safe_after;
    int rc = transact(ne, link, cmd, reply);
    ne->switching = false;
    if (rc == 0)
        ne->safe_on = safe_after;
    return rc;
}

/* Send one command and read the reply; alarms and command errors are -EREMOTEIO.
 * *reply is filled whenever a reply came, also with -EREMOTEIO. */
static int transact(struct newera *ne, struct bus_link *link, const char *cmd,
                    struct newera_reply *reply)
{
    memset(reply, 0, sizeof *reply);
    char out[64], body[48];
    int n = snprintf(body, sizeof body, "%d%s", ne->address, cmd);
    if (ne->safe_on) {
        /* The pump strips spaces from Basic commands only; packets carry none. */
        size_t k = 0;
        for (int i = 0; i < n; i++)
            if (body[i] != ' ')
                body[k++] = body[i];
        n = newera_safe_packet(body, k, out, sizeof out);
    } else {
        n = snprintf(out, sizeof out, "%s\r", body);
    }
    if (n < 0) {
        link_seterr(link, "%s: command '%s' is too long to send", ne->name, cmd);
        return -EINVAL;
    }
    int rc = exchange(ne, link, cmd, out, (size_t)n, reply);
    if (rc < 0)
        return rc;
    note_status(ne, reply);
    ne->last_ms = time_mono_ms();
    return newera_reply_error(reply, ne->name, cmd, link->err, sizeof link->err);
}

/* ------------------------------------------------------------------------ */
/* Configuration                                                            */
/* ------------------------------------------------------------------------ */

static const char *const ne_params[] = { "address", "syringe.diameter", "syringe.volume",
                                         "max_flow", "safe_mode", NULL };

/* Read address and max_flow. */
static int parse_limits(const struct dev_config *cfg, struct newera *ne)
{
    int bad = 0;
    long addr = 0;
    bad |= devcfg_int(cfg, "address", 0, 99, &addr) == -EINVAL;
    ne->address = (int)addr;
    bad |= devcfg_positive_flow(cfg, "max_flow", NE_DEFAULT_MAX_FLOW, &ne->max_flow) < 0;
    const char *safe = devcfg_get(cfg, "safe_mode");
    if (safe != NULL) {
        double sec;
        char err[160];
        int col;
        if (unit_parse_value(safe, Q_TIME, &sec, err, sizeof err, &col) < 0 || sec < 2 || sec > 255 ||
            sec != floor(sec)) {
            cfg->error(cfg, "safe_mode", "safe_mode must be whole seconds from 2 s to 255 s (the pump's "
                       "communications time-out), found '%s'", safe);
            bad = 1;
        } else {
            ne->safe_s = (int)sec;
        }
    }
    return bad ? -EINVAL : 0;
}

/* Parse the rig entry and describe the channels. */
static int ne_open(const struct dev_config *cfg, void **state, struct driver_channel *ch,
                   size_t *n)
{
    struct newera *ne = calloc(1, sizeof *ne);
    if (ne == NULL)
        return -ENOMEM;
    snprintf(ne->name, sizeof ne->name, "%s", cfg->name ? cfg->name : "pump");
    int bad = devcfg_check_known(cfg, ne_params, "a New Era pump") < 0;
    bad |= devcfg_syringe(cfg, "a New Era pump", NE_MIN_DIAMETER, NE_MAX_DIAMETER, &ne->diameter_mm,
                          &ne->syringe_ul) < 0;
    bad |= parse_limits(cfg, ne) < 0;
    if (bad) {
        free(ne);
        return -EINVAL;
    }
    ne->running = -1;
    ch[CH_FLOW] = (struct driver_channel){ .name = "flow", .q = Q_FLOW, .unit = "uL/min",
        .readable = 1, .writable = 1, .min = -ne->max_flow, .max = ne->max_flow,
        .sample_hz = 2, .volume_ul = ne->syringe_ul, .readback = 1, .reassert = 1,
        .safe_value = 0 };
    ch[CH_DISPENSED] = (struct driver_channel){ .name = "dispensed", .q = Q_VOLUME,
        .unit = "uL", .readable = 1, .min = 0, .max = NAN, .sample_hz = 1 };
    *n = N_CHANNELS;
    *state = ne;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Operations                                                               */
/* ------------------------------------------------------------------------ */

/* The pump refused DIA because it is pumping: accept if it already has our diameter. */
static int check_running_diameter(struct newera *ne, struct bus_link *link, const char *want)
{
    struct newera_reply r;
    int rc = transact(ne, link, "DIA", &r);
    if (rc < 0)
        return rc;
    double have;
    const char *end;
    if (parse_float(r.data, &have, &end) < 0 || *end != '\0') {
        link_seterr(link, "%s: cannot parse the diameter '%s' the pump reports", ne->name, r.data);
        return -EBADMSG;
    }
    if (fabs(have - strtod(want, NULL)) > 0.0005) {
        link_seterr(link, "%s: the pump is running with a %s mm syringe, the rig says %s mm; "
                    "stop it to change the diameter", ne->name, r.data, want);
        return -EREMOTEIO;
    }
    link->err[0] = '\0';
    return 0;
}

/* Set the syringe diameter and, unless the pump is already pumping, infusion. */
/* Bring the pump into the mode asked for: Basic, or Safe with our time-out.
 * It may be in either (a pump keeps Safe mode across power cycles). */
static int set_mode(struct newera *ne, struct bus_link *link)
{
    struct newera_reply r;
    char cmd[16];
    ne->safe_on = false;
    int rc = transact(ne, link, "VER", &r);
    if (rc == -EREMOTEIO && r.status == 'A')
        rc = transact(ne, link, "VER", &r);
    if (rc == -ETIMEDOUT || rc == -EBADMSG) {
        ne->safe_on = true;                     /* silent to Basic: try Safe */
        rc = transact(ne, link, "VER", &r);
        if (rc == -EREMOTEIO && r.status == 'A')
            rc = transact(ne, link, "VER", &r); /* A?T: it stopped itself while we were away */
    }
    if (rc < 0 || (!ne->safe_on && ne->safe_s == 0))
        return rc;                              /* Basic, as asked */
    /* Switch (or set the time-out): the reply comes in the new mode. */
    snprintf(cmd, sizeof cmd, "SAF%d", ne->safe_s);
    bool was = ne->safe_on;
    rc = transact_switch(ne, link, cmd, ne->safe_s > 0, &r);
    if (rc < 0)
        ne->safe_on = was;
    return rc;
}

static int ne_connect(void *state, struct bus_link *link)
{
    struct newera *ne = state;
    struct newera_reply r;
    char num[16], cmd[32];
    if (newera_format_float(ne->diameter_mm, num, sizeof num) < 0) {
        link_seterr(link, "%s: the diameter %g mm cannot be written for the pump", ne->name,
                    ne->diameter_mm);
        return -EINVAL;
    }
    /* Safe mode asked for (or in use): settle the mode first. Otherwise Basic is
     * assumed, and probed only if the pump does not answer in it. */
    if (ne->safe_s > 0 || ne->safe_on) {
        int mrc = set_mode(ne, link);
        if (mrc < 0)
            return mrc;
    }
    snprintf(cmd, sizeof cmd, "DIA %s", num);
    ne->dir = 0;
    ne->running = -1;
    int rc = transact(ne, link, cmd, &r);
    if ((rc == -ETIMEDOUT || rc == -EBADMSG) && !ne->safe_on && set_mode(ne, link) == 0)
        rc = transact(ne, link, cmd, &r);  /* it was left in Safe mode: now in the mode asked for */
    if (rc == -EREMOTEIO && r.status == 'A')
        rc = transact(ne, link, cmd, &r);  /* the alarm answered instead (A?R at power-up); it is cleared now */
    if (rc == -EREMOTEIO && strcmp(r.data, "?NA") == 0 && ne->running == 1)
        rc = check_running_diameter(ne, link, num);
    if (rc < 0 || ne->running == 1)
        return rc;  /* pumping: keep its direction, a reconnect must not reverse a run */
    rc = transact(ne, link, "DIR INF", &r);
    if (rc == 0)
        ne->dir = 1;
    return rc;
}

/* Read the delivered flow (RAT query: rate and prompt in one exchange) or the infused volume. */
static int ne_read(void *state, struct bus_link *link, size_t ch, double *value)
{
    struct newera *ne = state;
    struct newera_reply r;
    if (ch >= N_CHANNELS) {
        link_seterr(link, "%s: no channel %zu", ne->name, ch);
        return -EINVAL;
    }
    int rc = transact(ne, link, ch == CH_FLOW ? "RAT" : "DIS", &r);
    if (rc < 0)
        return rc;
    double v, wdr;
    if (ch == CH_FLOW)
        rc = newera_parse_rate(r.data, &v);
    else
        rc = newera_parse_dispensed(r.data, &v, &wdr);
    if (rc < 0) {
        link_seterr(link, "%s: cannot parse the pump's reply '%s' to '%s'", ne->name, r.data,
                    ch == CH_FLOW ? "RAT" : "DIS");
        return -EBADMSG;
    }
    *value = ch == CH_FLOW ? newera_delivered_flow(r.status, v) : v;
    return 0;
}

/* Stop the pump; always sent, whatever we believe its state is. */
static int ne_stop(struct newera *ne, struct bus_link *link)
{
    struct newera_reply r;
    int rc = transact(ne, link, "STP", &r);
    if (rc == 0)
        ne->running = 0;
    return rc;
}

/* Set the direction; a running pump is stopped first so it never runs the wrong way. */
static int set_direction(struct newera *ne, struct bus_link *link, int dir)
{
    struct newera_reply r;
    if (ne->dir == dir)
        return 0;
    if (ne->running != 0) {
        int rc = ne_stop(ne, link);
        if (rc < 0)
            return rc;
    }
    int rc = transact(ne, link, dir > 0 ? "DIR INF" : "DIR WDR", &r);
    if (rc == 0)
        ne->dir = dir;
    return rc;
}

/* Check a flow setpoint; -ERANGE/-EINVAL with a message if it cannot be sent. */
static int check_setpoint(struct newera *ne, struct bus_link *link, double v, char *rate,
                          size_t len)
{
    int rc = setpoint_check_flow(link, ne->name, v, ne->max_flow);
    if (rc < 0)
        return rc;
    if (newera_format_rate(fabs(v), rate, len) < 0) {
        link_seterr(link, "%s: %g uL/min cannot be written in the pump's 4-digit format",
                    ne->name, v);
        return -ERANGE;
    }
    return 0;
}

/* Command a flow: 0 stops; otherwise direction if it changed, one RAT, RUN if not pumping. */
static int ne_write(void *state, struct bus_link *link, size_t ch, double v)
{
    struct newera *ne = state;
    struct newera_reply r;
    char rate[24], cmd[40];
    if (ch != CH_FLOW) {
        link_seterr(link, "%s: only 'flow' can be set", ne->name);
        return -EINVAL;
    }
    if (v == 0)
        return ne_stop(ne, link);
    int rc = check_setpoint(ne, link, v, rate, sizeof rate);
    if (rc < 0)
        return rc;
    if ((rc = set_direction(ne, link, v > 0 ? 1 : -1)) < 0)
        return rc;
    snprintf(cmd, sizeof cmd, "RAT %s", rate);
    if ((rc = transact(ne, link, cmd, &r)) < 0)
        return rc;
    if (ne->running == 1)
        return 0;
    if ((rc = transact(ne, link, "RUN", &r)) < 0)
        return rc;
    if (ne->running != 1) {
        link_seterr(link, "%s: the pump did not start after RUN (status %c)", ne->name, r.status);
        return -EREMOTEIO;
    }
    return 0;
}

/* Stop the pump. */
static int ne_safe_state(void *state, struct bus_link *link)
{
    return ne_stop(state, link);
}

/* Feed the pump's safe-mode watchdog when the polls have been quiet for a second. */
static int ne_keepalive(void *state, struct bus_link *link)
{
    struct newera *ne = state;
    struct newera_reply r;
    if (!ne->safe_on || time_mono_ms() - ne->last_ms < 1000)
        return 0;
    return transact(ne, link, "VER", &r);
}

/* The daemon stops in order: back to Basic mode, so that a pump told to hold
 * keeps pumping instead of stopping itself when the time-out runs out. */
static int ne_disconnect(void *state, struct bus_link *link)
{
    struct newera *ne = state;
    struct newera_reply r;
    if (!ne->safe_on)
        return 0;
    return transact_switch(ne, link, "SAF0", false, &r);
}

/* Free the pump's state. */
static void ne_close(void *state)
{
    free(state);
}

const struct driver_ops newera_driver = {
    .name = "newera",
    .bus_types = "serial",
    /* The shortest reading is RAT at a one-digit address, "0RAT" CR (5), answered
     * STX, the 2-digit address, the prompt, the shortest rate "0UM", ETX (8). */
    .chars_per_reading = 13,
    .open = ne_open,
    .connect = ne_connect,
    .read = ne_read,
    .write = ne_write,
    .safe_state = ne_safe_state,
    .keepalive = ne_keepalive,
    .disconnect = ne_disconnect,
    .close = ne_close,
};
