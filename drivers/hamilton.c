/*
 * Hamilton MVP rotary selector valves, RS-232 "protocol 1".
 *
 * Example rig entry:
 *
 *   buses:
 *     - {name: valves, type: serial, port: /dev/ttyUSB2, baud: 9600, parity: O, data_bits: 7}
 *   devices:
 *     - {name: selector1, driver: hamilton, bus: valves, address: a, ports: 6}
 *     - {name: selector2, driver: hamilton, bus: valves, address: b, ports: 8,
 *        move_timeout: 5 s, direction: shortest}
 *
 * Parameters: address (the valve's daisy-chain letter, a to p; default a),
 * ports (required, 2 to 16: checked against the valve's own type at connect
 * when it reports one), move_timeout (0.5 s to 60 s, default 5 s: how long a
 * move or an initialisation may take), direction (shortest, clockwise or
 * counterclockwise; default shortest; port numbers rise clockwise).
 *
 * Channel:
 *   position   port (a plain number), read and write, 1..ports. A setpoint
 *              must be a whole port number. Written: the valve moves there
 *              and the write returns when the valve says it is done and
 *              reports that port. Read: the port the valve reports, only
 *              when it is not moving and has no valve error; otherwise an
 *              error, never a number.
 *
 * Wire: the line runs at 9600 baud, 7 data bits, odd parity, 1 stop bit.
 * A command is the address letter, the command and CR ("aLQP\r"); commands
 * that act end in R ("aLXR\r" initialises the valve, "aLP03R\r" moves it
 * clockwise to port 3, "aLP13R\r" counter-clockwise). The valve repeats the
 * command line, then answers ACK (0x06) with any data and CR, or NAK (0x15)
 * and CR for a command it does not take. Queries used: F (done? 'Y' done,
 * '*' busy, 'N' received but not yet executed), LQP (the port), LQT (the
 * valve type), E2 (four bytes; the second holds the valve error bits: not
 * initialised, initialisation error, overload). Several valves share one
 * line, each at its letter; the echo names the address, so an answer that
 * follows another valve's echo is not ours and is skipped.
 *
 * A valve must be initialised (LXR) after power-up before it moves. connect()
 * asks E2 and initialises only a valve that says it is not initialised:
 * initialising moves the rotor, and moving a selector valve during a run
 * changes what flows into the chip, so a reconnect leaves an initialised
 * valve where it is. A valve that lost power while the line stayed up is
 * initialised by the next write (which moves it anyway); reads report it as
 * not initialised until then.
 *
 * There is no safe_state: a selector valve has no "off", and turning it in an
 * emergency would connect another reservoir to the chip at the worst moment.
 * It stays where it is; the pumps' safe state is what stops the flow. A
 * protocol that wants a port on abort names it in its safe_state.
 */
#include "hamilton.h"
#include "driver.h"
#include "serial_reply.h"
#include "base/timeutil.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HM_DEFAULT_MOVE_MS 5000
#define HM_POLL_MS 50                   /* F is asked this often while the valve moves */
#define HM_MAX_PORTS 16

enum { CH_POSITION = 0, N_CHANNELS };
enum direction { DIR_SHORTEST, DIR_CW, DIR_CCW };

/* One valve. */
struct hamilton {
    char name[32];
    char address;           /* 'a'..'p' */
    int ports;
    unsigned move_ms;
    enum direction dir;
};

/* ------------------------------------------------------------------------ */
/* Framing                                                                  */
/* ------------------------------------------------------------------------ */

/* Copy printable text of n bytes; -EBADMSG if it is not printable or too long. */
static int copy_text(char *dst, const char *src, size_t n)
{
    if (n >= HAMILTON_TEXT_MAX)
        return -EBADMSG;
    for (size_t i = 0; i < n; i++)
        if (src[i] < 0x20 || src[i] > 0x7e)
            return -EBADMSG;
    memcpy(dst, src, n);
    dst[n] = '\0';
    return 0;
}

/* Find the first complete exchange (optional echo, then ACK/NAK) in buf. */
int hamilton_parse_reply(const char *buf, size_t len, struct hamilton_reply *out)
{
    memset(out, 0, sizeof *out);
    size_t pos = 0;
    while (buf != NULL && pos < len) {
        const char *cr = memchr(buf + pos, '\r', len - pos);
        if (cr == NULL)
            return 0;
        const char *line = buf + pos;
        size_t n = (size_t)(cr - line);
        size_t next = (size_t)(cr - buf) + 1;
        while (n > 0 && *line == '\n') {        /* an LF left over from a CR LF */
            line++;
            n--;
        }
        if (n == 0) {
            pos = next;
            continue;
        }
        if (line[0] == HAMILTON_ACK || line[0] == HAMILTON_NAK) {
            out->ack = line[0] == HAMILTON_ACK;
            if (copy_text(out->data, line + 1, n - 1) < 0)
                return -EBADMSG;
            return (int)next;
        }
        if (line[0] < 'a' || line[0] > 'z' || copy_text(out->echo, line + 1, n - 1) < 0)
            return -EBADMSG;
        out->address = line[0];     /* a later echo replaces one that got no answer */
        pos = next;
    }
    return 0;
}

/* Format a move to port, clockwise or counter-clockwise. */
int hamilton_move_command(int port, bool ccw, char *buf, size_t len)
{
    if (port < 1 || port > 99)
        return -ERANGE;
    int n = snprintf(buf, len, "LP%d%dR", ccw ? 1 : 0, port);
    return n < 0 || (size_t)n >= len ? -ERANGE : 0;
}

/* Whether counter-clockwise is the shorter way from one port to another. */
bool hamilton_shortest_ccw(int from, int to, int ports)
{
    if (ports < 2 || from < 1 || to < 1)
        return false;
    int cw = ((to - from) % ports + ports) % ports;
    return ports - cw < cw && cw != 0;
}

/* Parse an F reply. */
int hamilton_parse_done(const char *data, char *state)
{
    if (data == NULL || strlen(data) != 1 || strchr("Y*N", data[0]) == NULL)
        return -EBADMSG;
    *state = data[0];
    return 0;
}

/* Parse an LQP reply. */
int hamilton_parse_position(const char *data, int *port)
{
    size_t n = data ? strlen(data) : 0;
    if (n < 1 || n > 2 || !isdigit((unsigned char)data[0]) ||
        (n == 2 && !isdigit((unsigned char)data[1])))
        return -EBADMSG;
    int v = atoi(data);
    if (v < 1)
        return -EBADMSG;
    *port = v;
    return 0;
}

/* Parse an E2 reply. */
int hamilton_parse_valve_errors(const char *data, unsigned *bits)
{
    if (data == NULL || strlen(data) != 4)
        return -EBADMSG;
    unsigned b = (unsigned char)data[1];
    if ((b & 0x40) == 0 || (b & 0x38) != 0)
        return -EBADMSG;
    *bits = b & 0x07;
    return 0;
}

/* Ports of an LQT valve type. */
int hamilton_valve_type_ports(int type)
{
    switch (type) {
    case 2: return 8;
    case 3: return 6;
    case 4: return 3;
    case 5: case 6: return 2;
    case 7: return 4;
    default: return 0;
    }
}

/* What E2's error bits mean. */
const char *hamilton_valve_error_text(unsigned bits)
{
    if (bits & HAMILTON_ERR_INIT_FAILED)
        return "valve initialisation error (E2): the rotor did not find its home position";
    if (bits & HAMILTON_ERR_OVERLOAD)
        return "valve overload (E2): the drive was blocked and the valve may be between ports";
    if (bits & HAMILTON_ERR_NOT_INITIALISED)
        return "valve not initialised (E2): it was powered up and has not been initialised (LXR)";
    return "no valve error";
}

/* ------------------------------------------------------------------------ */
/* Exchanges                                                                */
/* ------------------------------------------------------------------------ */

/* A hint when the bus is not set up the way the valve talks. */
static const char *line_hint(const struct bus_link *link)
{
    const struct link_config *c = link->cfg;
    if (c == NULL || (c->data_bits == 7 && c->parity == 'O' && c->baud == 9600))
        return "";
    return " (the MVP talks 9600 baud, 7 data bits, odd parity: set the bus to "
           "'baud: 9600, parity: O, data_bits: 7')";
}

/* Whether an exchange is the answer to our command: our echo, or no echo at all. */
static bool is_ours(const struct hamilton *hm, const struct hamilton_reply *r, const char *cmd)
{
    return r->address == 0 || (r->address == hm->address && strcmp(r->echo, cmd) == 0);
}

/* What hm_take needs: the valve, the command it answers and where the reply goes. */
struct hm_wait {
    const struct hamilton *hm;
    const char *cmd;
    struct hamilton_reply *reply;
};

/* One exchange for serial_await_reply: ours if it echoes our command at our
 * letter (or carries no echo); another letter's is another valve's. */
static int hm_take(void *ctx, const char *buf, size_t len, bool *ours, char *other, size_t olen)
{
    struct hm_wait *w = ctx;
    int used = hamilton_parse_reply(buf, len, w->reply);
    if (used > 0) {
        *ours = is_ours(w->hm, w->reply, w->cmd);
        if (w->reply->address != w->hm->address)
            snprintf(other, olen, "address '%c'", w->reply->address);
    }
    return used;
}

/* Send out[0..n) and read until our exchange is complete; skip other valves'. */
static int exchange(const struct hamilton *hm, struct bus_link *link, const char *cmd,
                    const char *out, size_t n, struct hamilton_reply *reply)
{
    char who[16];
    struct hm_wait ctx = { hm, cmd, reply };
    snprintf(who, sizeof who, "address '%c'", hm->address);
    const struct serial_wait w = { .dev = hm->name, .cmd = cmd, .who = who,
                                   .hint = line_hint(link), .take = hm_take, .ctx = &ctx };
    return serial_exchange(link, out, n, &w);
}

/* Send one command and take its answer. ACK is 0; NAK is -EREMOTEIO with
 * *reply filled (the caller may explain it). */
static int transact(const struct hamilton *hm, struct bus_link *link, const char *cmd,
                    struct hamilton_reply *reply)
{
    memset(reply, 0, sizeof *reply);
    char out[48];
    int n = snprintf(out, sizeof out, "%c%s\r", hm->address, cmd);
    if (n < 0 || (size_t)n >= sizeof out) {
        link_seterr(link, "%s: command '%s' is too long to send", hm->name, cmd);
        return -EINVAL;
    }
    int rc = exchange(hm, link, cmd, out, (size_t)n, reply);
    if (rc < 0)
        return rc;
    if (!reply->ack) {
        link_seterr(link, "%s: the valve refused '%s' (NAK)", hm->name, cmd);
        return -EREMOTEIO;
    }
    return 0;
}

/* Ask F: 'Y', '*' or 'N' in *state. */
static int query_done(const struct hamilton *hm, struct bus_link *link, char *state)
{
    struct hamilton_reply r;
    int rc = transact(hm, link, "F", &r);
    if (rc < 0)
        return rc;
    if (hamilton_parse_done(r.data, state) < 0) {
        link_seterr(link, "%s: cannot parse the answer '%s' to 'F' (expected Y, * or N)",
                    hm->name, r.data);
        return -EBADMSG;
    }
    return 0;
}

/* Ask E2: the valve error bits. */
static int query_errors(const struct hamilton *hm, struct bus_link *link, unsigned *bits)
{
    struct hamilton_reply r;
    int rc = transact(hm, link, "E2", &r);
    if (rc < 0)
        return rc;
    if (hamilton_parse_valve_errors(r.data, bits) < 0) {
        char seen[64];
        serial_escape(r.data, strlen(r.data), seen, sizeof seen);
        link_seterr(link, "%s: cannot parse the answer '%s' to 'E2'", hm->name, seen);
        return -EBADMSG;
    }
    return 0;
}

/* Ask LQP: the port. */
static int query_position(const struct hamilton *hm, struct bus_link *link, int *port)
{
    struct hamilton_reply r;
    int rc = transact(hm, link, "LQP", &r);
    if (rc < 0)
        return rc;
    if (hamilton_parse_position(r.data, port) < 0 || *port > hm->ports) {
        link_seterr(link, "%s: the valve reports port '%s', not one of 1..%d", hm->name, r.data,
                    hm->ports);
        return -EBADMSG;
    }
    return 0;
}

/* Wait, between polls of F: the valve has no completion event of its own. */
static void poll_pause(void)
{
    struct timespec ts = { 0, HM_POLL_MS * 1000000L };
    nanosleep(&ts, NULL);
}

/* Poll F until the valve is done with what it was told to do (what: for messages). */
static int wait_done(const struct hamilton *hm, struct bus_link *link, const char *what)
{
    int64_t start = time_mono_ms();
    for (;;) {
        char st;
        int rc = query_done(hm, link, &st);
        if (rc < 0)
            return rc;
        if (st == 'Y')
            return 0;
        if (time_mono_ms() - start >= hm->move_ms) {
            link_seterr(link, "%s: the valve still reports busy ('%c' to F) %.1f s after '%s' "
                        "(move_timeout): is the rotor blocked?", hm->name, st, hm->move_ms / 1e3, what);
            return -EREMOTEIO;
        }
        poll_pause();
    }
}

/* Turn a valve error into -EREMOTEIO with its meaning; 0 if there is none. */
static int valve_error(const struct hamilton *hm, struct bus_link *link, unsigned bits,
                       const char *after)
{
    if (bits == 0)
        return 0;
    link_seterr(link, "%s: %s%s%s", hm->name, hamilton_valve_error_text(bits), after ? " after " : "",
                after ? after : "");
    return -EREMOTEIO;
}

/* Explain a NAK: ask E2 why; keep the NAK message if the valve names no error. */
static int explain_refusal(const struct hamilton *hm, struct bus_link *link, const char *cmd)
{
    char nak[sizeof link->err];
    snprintf(nak, sizeof nak, "%s", link->err);
    unsigned bits;
    if (query_errors(hm, link, &bits) == 0 && bits != 0)
        link_seterr(link, "%s: the valve refused '%s' (NAK): %s", hm->name, cmd,
                    hamilton_valve_error_text(bits));
    else
        link_seterr(link, "%s", nak);
    return -EREMOTEIO;
}

/* Initialise the valve (LXR) and wait until it is done and error-free. */
static int initialise(struct hamilton *hm, struct bus_link *link)
{
    struct hamilton_reply r;
    int rc = transact(hm, link, "LXR", &r);
    if (rc == -EREMOTEIO)
        return explain_refusal(hm, link, "LXR");
    if (rc < 0 || (rc = wait_done(hm, link, "LXR")) < 0)
        return rc;
    unsigned bits;
    if ((rc = query_errors(hm, link, &bits)) < 0)
        return rc;
    return valve_error(hm, link, bits, "LXR");
}

/* ------------------------------------------------------------------------ */
/* Configuration                                                            */
/* ------------------------------------------------------------------------ */

static const char *const hm_params[] = { "address", "ports", "move_timeout", "direction", NULL };

/* Read address and ports. */
static int parse_identity(const struct dev_config *cfg, struct hamilton *hm)
{
    int bad = 0;
    const char *a = devcfg_get(cfg, "address");
    hm->address = 'a';
    if (a != NULL) {
        if (strlen(a) != 1 || a[0] < 'a' || a[0] > 'p') {
            cfg->error(cfg, "address", "address must be one letter from a to p (the valve's "
                       "daisy-chain address), found '%s'", a);
            bad = 1;
        } else {
            hm->address = a[0];
        }
    }
    long ports;
    int rc = devcfg_int(cfg, "ports", 2, HM_MAX_PORTS, &ports);
    if (rc == -ENOENT) {
        cfg->error(cfg, NULL, "a Hamilton valve needs its number of ports, e.g. 'ports: 6'");
        bad = 1;
    } else if (rc == 0) {
        hm->ports = (int)ports;
    }
    return bad || rc == -EINVAL ? -EINVAL : 0;
}

/* Read move_timeout and direction. */
static int parse_motion(const struct dev_config *cfg, struct hamilton *hm)
{
    int bad = 0;
    hm->move_ms = HM_DEFAULT_MOVE_MS;
    const char *t = devcfg_get(cfg, "move_timeout");
    if (t != NULL) {
        double sec;
        char err[160];
        int col;
        if (unit_parse_value(t, Q_TIME, &sec, err, sizeof err, &col) < 0 || !(sec >= 0.5) ||
            sec > 60) {
            cfg->error(cfg, "move_timeout", "move_timeout must be a time from 0.5 s to 60 s, "
                       "found '%s'", t);
            bad = 1;
        } else {
            hm->move_ms = (unsigned)lround(sec * 1000);
        }
    }
    const char *d = devcfg_get(cfg, "direction");
    hm->dir = DIR_SHORTEST;
    if (d != NULL) {
        if (strcmp(d, "shortest") == 0)
            hm->dir = DIR_SHORTEST;
        else if (strcmp(d, "clockwise") == 0)
            hm->dir = DIR_CW;
        else if (strcmp(d, "counterclockwise") == 0)
            hm->dir = DIR_CCW;
        else {
            cfg->error(cfg, "direction", "direction must be shortest, clockwise or "
                       "counterclockwise, found '%s'", d);
            bad = 1;
        }
    }
    return bad ? -EINVAL : 0;
}

/* Parse the rig entry and describe the channel. */
static int hm_open(const struct dev_config *cfg, void **state, struct driver_channel *ch,
                   size_t *n)
{
    struct hamilton *hm = calloc(1, sizeof *hm);
    if (hm == NULL)
        return -ENOMEM;
    snprintf(hm->name, sizeof hm->name, "%s", cfg->name ? cfg->name : "valve");
    int bad = devcfg_check_known(cfg, hm_params, "a Hamilton valve") < 0;
    bad |= parse_identity(cfg, hm) < 0;
    bad |= parse_motion(cfg, hm) < 0;
    if (bad) {
        free(hm);
        return -EINVAL;
    }
    ch[CH_POSITION] = (struct driver_channel){ .name = "position", .q = Q_NONE, .unit = "port",
        .readable = 1, .writable = 1, .integer = 1, .min = 1, .max = hm->ports, .sample_hz = 1,
        .readback = 1, .reassert = 0 };
    *n = N_CHANNELS;
    *state = hm;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Operations                                                               */
/* ------------------------------------------------------------------------ */

/* Check the rig's ports against the valve's own type, if it tells it. */
static int check_type(const struct hamilton *hm, struct bus_link *link)
{
    struct hamilton_reply r;
    int rc = transact(hm, link, "LQT", &r);
    if (rc == -EREMOTEIO) {
        link->err[0] = '\0';    /* a valve that does not say its type: trust the rig */
        return 0;
    }
    if (rc < 0)
        return rc;
    int have = strlen(r.data) == 1 && isdigit((unsigned char)r.data[0]) ?
               hamilton_valve_type_ports(r.data[0] - '0') : 0;
    if (have != 0 && have != hm->ports) {
        link_seterr(link, "%s: the valve is a %d-port valve (LQT %s), the rig says 'ports: %d': "
                    "fix the rig entry", hm->name, have, r.data, hm->ports);
        return -EREMOTEIO;
    }
    return 0;
}

/* Initialise the valve only if it needs it; check its type and that it reports a port. */
static int hm_connect(void *state, struct bus_link *link)
{
    struct hamilton *hm = state;
    unsigned bits;
    char st;
    int rc = query_done(hm, link, &st);
    if (rc == 0 && st != 'Y')
        rc = wait_done(hm, link, "a reconnect");   /* a move or initialisation still running */
    if (rc < 0 || (rc = query_errors(hm, link, &bits)) < 0)
        return rc;
    /* Other valve errors do not fail the connect: reads report them, and a
     * write must stay possible, since a move may be what clears them. */
    if ((bits & HAMILTON_ERR_NOT_INITIALISED) && (rc = initialise(hm, link)) < 0)
        return rc;
    if ((rc = check_type(hm, link)) < 0)
        return rc;
    int port;
    return query_position(hm, link, &port);
}

/* Read the port, only while the valve is idle and without a valve error. */
static int hm_read(void *state, struct bus_link *link, size_t ch, double *value)
{
    struct hamilton *hm = state;
    char st;
    unsigned bits;
    int port;
    if (ch != CH_POSITION)
        return -EINVAL;
    int rc = query_done(hm, link, &st);
    if (rc < 0)
        return rc;
    if (st != 'Y') {
        /* Mid-move the valve may report the port it left: not the new one. */
        link_seterr(link, "%s: the valve is moving ('%c' to F): no position until it stops",
                    hm->name, st);
        return -EBUSY;
    }
    if ((rc = query_errors(hm, link, &bits)) < 0)
        return rc;
    if (bits != 0)
        return valve_error(hm, link, bits, NULL);
    if ((rc = query_position(hm, link, &port)) < 0)
        return rc;
    *value = port;
    return 0;
}

/* Check a setpoint: a whole port number on this valve. */
static int check_setpoint(const struct hamilton *hm, struct bus_link *link, double v)
{
    if (!isfinite(v) || v != floor(v)) {
        link_seterr(link, "%s: a valve position is a whole port number, found %g", hm->name, v);
        return -EINVAL;
    }
    if (v < 1 || v > hm->ports) {
        link_seterr(link, "%s: port %g does not exist: the valve has ports 1 to %d", hm->name, v,
                    hm->ports);
        return -ERANGE;
    }
    return 0;
}

/* Move to a port: wait until idle, initialise if it lost it, move, wait, confirm. */
static int hm_write(void *state, struct bus_link *link, size_t ch, double v)
{
    struct hamilton *hm = state;
    struct hamilton_reply r;
    unsigned bits;
    int port;
    if (ch != CH_POSITION) {
        link_seterr(link, "%s: only 'position' can be set", hm->name);
        return -EINVAL;
    }
    int rc = check_setpoint(hm, link, v);
    if (rc < 0)
        return rc;
    int target = (int)v;
    if ((rc = wait_done(hm, link, "the previous command")) < 0 ||
        (rc = query_errors(hm, link, &bits)) < 0)
        return rc;
    if ((bits & HAMILTON_ERR_NOT_INITIALISED) && (rc = initialise(hm, link)) < 0)
        return rc;
    if ((rc = query_position(hm, link, &port)) < 0)
        return rc;
    if (port == target && !(bits & ~HAMILTON_ERR_NOT_INITIALISED))
        return 0;   /* already there: a move would turn the rotor for nothing */
    bool ccw = hm->dir == DIR_CCW || (hm->dir == DIR_SHORTEST &&
                                      hamilton_shortest_ccw(port, target, hm->ports));
    char cmd[16];
    if (hamilton_move_command(target, ccw, cmd, sizeof cmd) < 0) {
        link_seterr(link, "%s: port %d cannot be written as a move command", hm->name, target);
        return -EINVAL;
    }
    rc = transact(hm, link, cmd, &r);
    if (rc == -EREMOTEIO)
        return explain_refusal(hm, link, cmd);
    if (rc < 0 || (rc = wait_done(hm, link, cmd)) < 0 || (rc = query_errors(hm, link, &bits)) < 0)
        return rc;
    if ((rc = valve_error(hm, link, bits, cmd)) < 0)
        return rc;
    if ((rc = query_position(hm, link, &port)) < 0)
        return rc;
    if (port != target) {
        link_seterr(link, "%s: the valve stopped at port %d after '%s', not at port %d", hm->name,
                    port, cmd, target);
        return -EREMOTEIO;
    }
    return 0;
}

/* Free the valve's state. */
static void hm_close(void *state)
{
    free(state);
}

const struct driver_ops hamilton_driver = {
    .name = "hamilton",
    .bus_types = "serial",
    /* A reading is three exchanges, each the command with CR, its echo and ACK, the
     * data and CR: "aF" (3 + 3 + ACK 'Y' CR 3 = 9), "aE2" (4 + 4 + ACK, 4 bytes,
     * CR 6 = 14) and "aLQP" (5 + 5 + ACK, one digit, CR 3 = 13): 36. */
    .chars_per_reading = 36,
    .open = hm_open,
    .connect = hm_connect,
    .read = hm_read,
    .write = hm_write,
    .close = hm_close,
};
