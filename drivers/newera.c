/*
 * New Era NE-500 / NE-1000 family syringe pumps, RS-232 "basic" mode.
 *
 * Example rig entry:
 *
 *   buses:
 *     - {name: pumps, type: serial, port: /dev/ttyUSB0, baud: 19200}
 *   devices:
 *     - {name: pump1, driver: newera, bus: pumps, address: 0,
 *        syringe: {diameter: 14.57 mm, volume: 10 mL}, max_flow: 1000 uL/min}
 *
 * Several pumps share one line at addresses 0-99. A command is
 * "[address]COMMAND[args]" + CR; a reply is STX, the 2-digit address, a status
 * prompt (I infusing, W withdrawing, S stopped, P paused, T timed pause,
 * U user wait, X purging) or an alarm "A?x", optional data, ETX. Rates are at
 * most 4 digits with up to 3 decimals, in UM/MM/UH/MH.
 *
 * Channels: flow (uL/min; set, and read back as what the pump delivers now:
 * the programmed rate while it runs, 0 when stopped) and dispensed (uL infused).
 */
#include "newera.h"
#include "driver.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STX 0x02
#define ETX 0x03

struct newera {
    int address;
    double diameter_mm;
    double syringe_ul;
    double max_flow;
    /* What the pump was last told, so a repeated setpoint costs one command. */
    bool known;
    bool running;
    int direction;      /* +1 infuse, -1 withdraw */
    double rate;        /* uL/min, > 0 */
};

enum { CH_FLOW = 0, CH_DISPENSED = 1 };

/* Format v in at most 4 digits and 3 decimals; -ERANGE if it cannot be. */
int newera_format_float(double v, char *buf, size_t len)
{
    if (!(v >= 0) || v >= 9999.5)
        return -ERANGE;
    for (int dec = 3; dec >= 0; dec--) {
        snprintf(buf, len, "%.*f", dec, v);
        int digits = 0;
        for (const char *p = buf; *p; p++)
            digits += isdigit((unsigned char)*p) != 0;
        if (digits <= 4)
            return 0;
    }
    return -ERANGE;
}

/* Format a rate, choosing the unit that keeps the most precision. */
int newera_format_rate(double ul_min, char *buf, size_t len)
{
    static const struct { const char *unit; double factor; } units[] = {
        { "UM", 1.0 }, { "MM", 1e-3 }, { "UH", 60.0 }, { "MH", 0.06 },
    };
    double best_err = INFINITY;
    char best[32] = "";
    for (size_t i = 0; i < 4; i++) {
        char num[24];
        double x = ul_min * units[i].factor;
        if (newera_format_float(x, num, sizeof num) < 0)
            continue;
        double back = strtod(num, NULL) / units[i].factor;
        double err = fabs(back - ul_min);
        if (back > 0 && err < best_err - 1e-12) {
            best_err = err;
            snprintf(best, sizeof best, "%s%s", num, units[i].unit);
        }
    }
    if (best[0] == '\0' || !(ul_min > 0))
        return -ERANGE;
    snprintf(buf, len, "%s", best);
    return 0;
}

/* Parse "12.50UM" into uL/min. */
int newera_parse_rate(const char *data, double *ul_min)
{
    char *end;
    double v = strtod(data, &end);
    if (end == data)
        return -EBADMSG;
    static const struct { const char *unit; double to_ul_min; } units[] = {
        { "UM", 1.0 }, { "MM", 1000.0 }, { "UH", 1.0 / 60.0 }, { "MH", 1000.0 / 60.0 },
    };
    for (size_t i = 0; i < 4; i++)
        if (strcmp(end, units[i].unit) == 0) {
            *ul_min = v * units[i].to_ul_min;
            return 0;
        }
    return -EBADMSG;
}

/* Parse "I0.250W0.000ML" into infused and withdrawn uL. */
int newera_parse_dispensed(const char *data, double *inf, double *wdr)
{
    char unit[4] = "";
    double i, w;
    if (sscanf(data, "I%lfW%lf%2s", &i, &w, unit) != 3)
        return -EBADMSG;
    double f = strcmp(unit, "ML") == 0 ? 1000.0 : strcmp(unit, "UL") == 0 ? 1.0 : 0;
    if (f == 0)
        return -EBADMSG;
    *inf = i * f;
    *wdr = w * f;
    return 0;
}

/* Find and parse one reply in buf. */
int newera_parse_reply(const char *buf, size_t len, struct newera_reply *out)
{
    const char *stx = memchr(buf, STX, len);
    if (stx == NULL)
        return 0;
    const char *etx = memchr(stx, ETX, len - (size_t)(stx - buf));
    if (etx == NULL)
        return 0;
    size_t n = (size_t)(etx - stx - 1);
    const char *p = stx + 1;
    memset(out, 0, sizeof *out);
    if (n < 3 || !isdigit((unsigned char)p[0]) || !isdigit((unsigned char)p[1]))
        return -EBADMSG;
    out->address = (p[0] - '0') * 10 + (p[1] - '0');
    p += 2;
    n -= 2;
    if (p[0] == 'A') {
        if (n < 3 || p[1] != '?')
            return -EBADMSG;
        out->status = 'A';
        out->alarm = p[2];
        p += 3;
        n -= 3;
    } else if (strchr("IWSPTUX", p[0]) != NULL) {
        out->status = p[0];
        p++;
        n--;
    } else {
        return -EBADMSG;
    }
    if (n >= sizeof out->data)
        return -EBADMSG;
    memcpy(out->data, p, n);
    out->data[n] = '\0';
    return (int)(etx - buf + 1);
}

/* One line explaining an alarm. */
const char *newera_alarm_text(char alarm)
{
    switch (alarm) {
    case 'R': return "pump was reset (power interrupted)";
    case 'S': return "motor stalled: syringe empty or line blocked";
    case 'T': return "safe-mode communications time-out";
    case 'E': return "pumping program error";
    case 'O': return "pumping program phase out of range";
    default: return "unknown alarm";
    }
}

/* Send cmd to the pump and read its reply; errors and alarms are -EREMOTEIO. */
static int transact(struct newera *ne, struct bus_link *link, const char *cmd,
                    struct newera_reply *reply)
{
    char out[64];
    int n = snprintf(out, sizeof out, "%d%s\r", ne->address, cmd);
    unsigned timeout = link->cfg->timeout_ms ? link->cfg->timeout_ms : 200;
    serial_drain(link->serial);
    int rc = serial_write(link->serial, out, (size_t)n, timeout);
    if (rc < 0) {
        link_seterr(link, "sending %s: %s", cmd, strerror(-rc));
        return rc == -ENOTCONN || rc == -EIO ? -ENOTCONN : rc;
    }
    char in[256];
    size_t got = 0;
    for (;;) {
        ssize_t r = serial_read(link->serial, in + got, sizeof in - got, timeout);
        if (r < 0) {
            link_seterr(link, "reading the reply to %s: %s", cmd, strerror((int)-r));
            return r == -ENOTCONN ? -ENOTCONN : -EIO;
        }
        if (r == 0) {
            link_seterr(link, "no reply to %s from address %d within %u ms", cmd, ne->address, timeout);
            return -ETIMEDOUT;
        }
        got += (size_t)r;
        int used = newera_parse_reply(in, got, reply);
        if (used < 0) {
            link_seterr(link, "garbled reply to %s", cmd);
            return -EBADMSG;
        }
        if (used > 0)
            break;
        if (got == sizeof in) {
            link_seterr(link, "reply to %s too long", cmd);
            return -EBADMSG;
        }
    }
    if (reply->address != ne->address) {
        link_seterr(link, "reply to %s came from address %d, not %d", cmd, reply->address, ne->address);
        return -EBADMSG;
    }
    if (reply->status == 'A') {
        ne->known = false;      /* an alarm stops the pump: resend everything next time */
        link_seterr(link, "alarm A?%c: %s", reply->alarm, newera_alarm_text(reply->alarm));
        return -EREMOTEIO;
    }
    if (reply->data[0] == '?') {
        const char *why = strcmp(reply->data, "?OOR") == 0 ? "value out of range"
                        : strcmp(reply->data, "?NA") == 0 ? "not applicable now"
                        : strcmp(reply->data, "?COM") == 0 ? "invalid packet"
                        : strcmp(reply->data, "?IGN") == 0 ? "command ignored" : "command not understood";
        link_seterr(link, "pump refused %s: %s (%s)", cmd, why, reply->data);
        return -EREMOTEIO;
    }
    return 0;
}

/* Parse the rig entry and describe the channels. */
static int ne_open(const struct dev_config *cfg, void **state, struct driver_channel *ch, size_t *n)
{
    struct newera *ne = calloc(1, sizeof *ne);
    if (ne == NULL)
        return -ENOMEM;
    long addr = 0;
    int bad = devcfg_int(cfg, "address", 0, 99, &addr) == -EINVAL;
    ne->address = (int)addr;
    int rc = devcfg_quantity(cfg, "syringe.diameter", Q_LENGTH, &ne->diameter_mm);
    if (rc == -ENOENT)
        cfg->error(cfg, NULL, "a New Era pump needs 'syringe: {diameter: ...}' (e.g. 14.57 mm for a 10 mL syringe)");
    else if (rc == 0 && (ne->diameter_mm < 0.1 || ne->diameter_mm > 50.0))
        cfg->error(cfg, "syringe.diameter", "syringe diameter must be 0.1 to 50 mm");
    bad |= rc != 0;
    if (devcfg_quantity(cfg, "syringe.volume", Q_VOLUME, &ne->syringe_ul) == -EINVAL)
        bad = 1;
    ne->max_flow = 1000.0;
    if (devcfg_quantity(cfg, "max_flow", Q_FLOW, &ne->max_flow) == -EINVAL)
        bad = 1;
    for (size_t i = 0; i < cfg->n_params; i++) {
        static const char *const known[] = { "address", "syringe.diameter", "syringe.volume", "max_flow" };
        bool ok = false;
        for (size_t k = 0; k < 4; k++)
            ok |= strcmp(cfg->params[i].key, known[k]) == 0;
        if (!ok) {
            cfg->error(cfg, cfg->params[i].key, "unknown parameter '%s' for a New Era pump "
                       "(expected address, syringe.diameter, syringe.volume, max_flow)", cfg->params[i].key);
            bad = 1;
        }
    }
    if (bad) {
        free(ne);
        return -EINVAL;
    }
    ch[CH_FLOW] = (struct driver_channel){ .name = "flow", .q = Q_FLOW, .unit = "uL/min",
        .readable = 1, .writable = 1, .min = -ne->max_flow, .max = ne->max_flow, .sample_hz = 2,
        .volume_ul = ne->syringe_ul };
    ch[CH_DISPENSED] = (struct driver_channel){ .name = "dispensed", .q = Q_VOLUME, .unit = "uL",
        .readable = 1, .min = 0, .max = NAN, .sample_hz = 1 };
    *n = 2;
    *state = ne;
    return 0;
}

/* Set the syringe diameter and a known direction. */
static int ne_connect(void *state, struct bus_link *link)
{
    struct newera *ne = state;
    struct newera_reply r;
    char cmd[32], num[16];
    if (newera_format_float(ne->diameter_mm, num, sizeof num) < 0)
        return -EINVAL;
    snprintf(cmd, sizeof cmd, "DIA %s", num);
    int rc = transact(ne, link, cmd, &r);
    if (rc == -EREMOTEIO && r.status == 'A')
        rc = transact(ne, link, cmd, &r);   /* the alarm (e.g. A?R after power-up) is now cleared */
    if (rc < 0)
        return rc;
    ne->known = false;
    return 0;
}

/* Read the delivered flow or the dispensed volume. */
static int ne_read(void *state, struct bus_link *link, size_t ch, double *value)
{
    struct newera *ne = state;
    struct newera_reply r;
    int rc = transact(ne, link, ch == CH_FLOW ? "RAT" : "DIS", &r);
    if (rc < 0)
        return rc;
    if (ch == CH_DISPENSED) {
        double wdr;
        rc = newera_parse_dispensed(r.data, value, &wdr);
    } else {
        double rate;
        rc = newera_parse_rate(r.data, &rate);
        *value = r.status == 'I' || r.status == 'X' ? rate : r.status == 'W' ? -rate : 0.0;
        if (rc == 0 && ne->known)
            ne->running = r.status == 'I' || r.status == 'W' || r.status == 'X';
    }
    if (rc < 0)
        link_seterr(link, "cannot parse the pump's reply '%s'", r.data);
    return rc;
}

/* Command a flow: stop, or direction + rate + run, sending only what changed. */
static int ne_write(void *state, struct bus_link *link, size_t ch, double v)
{
    struct newera *ne = state;
    struct newera_reply r;
    if (ch != CH_FLOW)
        return -EINVAL;
    if (v == 0) {
        int rc = transact(ne, link, "STP", &r);
        if (rc == 0) {
            ne->running = false;
            ne->known = true;
        }
        return rc;
    }
    int dir = v > 0 ? 1 : -1;
    double rate = fabs(v);
    char cmd[40], num[24];
    if (newera_format_rate(rate, num, sizeof num) < 0) {
        link_seterr(link, "%g uL/min cannot be sent to the pump", v);
        return -ERANGE;
    }
    int rc = 0;
    if (!ne->known || dir != ne->direction) {
        rc = transact(ne, link, dir > 0 ? "DIR INF" : "DIR WDR", &r);
        if (rc < 0)
            return rc;
        ne->direction = dir;
    }
    if (!ne->known || rate != ne->rate) {
        snprintf(cmd, sizeof cmd, "RAT %s", num);
        if ((rc = transact(ne, link, cmd, &r)) < 0)
            return rc;
        ne->rate = rate;
    }
    if (!ne->known || !ne->running) {
        if ((rc = transact(ne, link, "RUN", &r)) < 0)
            return rc;
        ne->running = true;
    }
    ne->known = true;
    return 0;
}

/* Stop the pump. */
static int ne_safe_state(void *state, struct bus_link *link)
{
    return ne_write(state, link, CH_FLOW, 0.0);
}

static void ne_close(void *state)
{
    free(state);
}

const struct driver_ops newera_driver = {
    .name = "newera",
    .bus_types = "serial",
    .open = ne_open,
    .connect = ne_connect,
    .read = ne_read,
    .write = ne_write,
    .safe_state = ne_safe_state,
    .close = ne_close,
};
