/* The rig: buses, devices and channels of one bench, from a rig file. */
#include "rig.h"
#include "rigdigest.h"
#include "base/sha256.h"
#include "base/units.h"
#include "base/yamldoc.h"

#include <errno.h>
#include <libgen.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RIG_MAX_BYTES (1 << 20)
#define RIG_MAX_PARAMS 64
#define NS_PER_S 1000000000LL

/* What a limit or a monitor does when it trips, as written in a rig or protocol. */
static const char *const limit_actions[] = { "alarm", "pause", "safe-stop", NULL };

/* What a device's dev_config error callback needs to report into the diag list. */
struct devcfg_ctx {
    struct ydoc *y;
    yaml_node_t *entry;
    const struct dev_param *params;
    size_t n_params;
};

/* Report a driver's complaint about a device parameter at its position. */
static void devcfg_report(const struct dev_config *cfg, const char *key, const char *fmt, ...)
{
    struct devcfg_ctx *c = cfg->error_ctx;
    char buf[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    const struct dev_param *p = key ? devcfg_param(cfg, key) : NULL;
    if (p != NULL)
        diag_error(c->y->diag, c->y->file, p->line, p->col, "%s: %s", cfg->name, buf);
    else
        diag_error(c->y->diag, c->y->file, ynode_line(c->entry), ynode_col(c->entry), "%s: %s",
                   cfg->name, buf);
}

/* Flatten a device entry's driver parameters into dotted keys. */
static void flatten_params(struct ydoc *y, yaml_node_t *map, const char *prefix,
                           struct dev_param *out, size_t *n, char keys[][96])
{
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = ydoc_node(y, p->key);
        yaml_node_t *v = ydoc_node(y, p->value);
        const char *ks = ynode_str(k);
        if (ks == NULL)
            continue;
        if (prefix[0] == '\0' && (strcmp(ks, "name") == 0 || strcmp(ks, "driver") == 0 ||
                                  strcmp(ks, "bus") == 0 || strcmp(ks, "sample_hz") == 0 ||
                                  strcmp(ks, "stuck_after") == 0 || strcmp(ks, "lost_after") == 0))
            continue;
        if (*n >= RIG_MAX_PARAMS) {
            yerr(y, k, "too many parameters in one device entry (at most %d)", RIG_MAX_PARAMS);
            return;
        }
        char key[96];
        snprintf(key, sizeof key, "%s%s%s", prefix, prefix[0] ? "." : "", ks);
        if (v != NULL && v->type == YAML_MAPPING_NODE) {
            flatten_params(y, v, key, out, n, keys);
            continue;
        }
        if (v == NULL || v->type != YAML_SCALAR_NODE) {
            yerr(y, v ? v : k, "'%s' must be a value or a mapping, found %s", key, ynode_kind(v));
            continue;
        }
        memcpy(keys[*n], key, sizeof key);
        out[*n].key = keys[*n];
        out[*n].value = ynode_str(v);
        out[*n].line = ynode_line(v);
        out[*n].col = ynode_col(v);
        (*n)++;
    }
}

/* The word of the comma-separated list nearest to word, if close enough to be
 * a typo ("new-era" for newera), into buf; false if none is. */
static bool nearest_word(const char *word, const char *list, char *buf, size_t len)
{
    int best = 1000;
    const char *p = list;
    while (*p != '\0') {
        while (*p == ',' || *p == ' ')
            p++;
        size_t n = strcspn(p, ", ");
        char w[64];
        if (n > 0 && n < sizeof w) {
            memcpy(w, p, n);
            w[n] = '\0';
            int d = unit_edit_distance(word, w);
            if (d < best) {
                best = d;
                snprintf(buf, len, "%s", w);
            }
        }
        p += n;
    }
    size_t wl = strlen(word);
    return best <= (wl <= 4 ? 1 : wl <= 8 ? 2 : 3);
}

/* Parse one bus entry. */
static void load_bus(struct rig *rig, struct ydoc *y, yaml_node_t *e)
{
    static const char *const keys[] = { "name", "type", "port", "baud", "parity", "data_bits",
                                        "stop_bits", "host", "timeout", NULL };
    if (!yexpect_map(y, e, "a bus entry"))
        return;
    ymap_check_keys(y, e, keys, "a bus entry");
    struct rig_bus *b = &rig->buses[rig->n_buses];
    memset(b, 0, sizeof *b);
    b->line = ynode_line(e);
    yaml_node_t *name = ymap_get(y, e, "name", NULL);
    yaml_node_t *type = ymap_get(y, e, "type", NULL);
    if (!yexpect_str(y, name ? name : e, "the bus 'name'"))
        return;
    for (size_t i = 0; i < rig->n_buses; i++)
        if (strcmp(rig->buses[i].name, ynode_str(name)) == 0)
            yerr(y, name, "duplicate bus name '%s'", ynode_str(name));
    if (!yexpect_str(y, type ? type : e, "the bus 'type'"))
        return;
    struct link_config *l = &b->link;
    if (link_type_parse(ynode_str(type), &l->type) < 0) {
        char near[64];
        if (nearest_word(ynode_str(type), "serial, modbus-rtu, modbus-tcp", near, sizeof near))
            yerr(y, type, "unknown bus type '%s' (did you mean '%s'? expected serial, modbus-rtu or "
                 "modbus-tcp)", ynode_str(type), near);
        else
            yerr(y, type, "unknown bus type '%s' (expected serial, modbus-rtu or modbus-tcp)",
                 ynode_str(type));
        return;
    }
    b->name = strdup(ynode_str(name));
    l->name = b->name;
    l->parity = 'N';
    l->data_bits = 8;
    l->stop_bits = 1;
    l->baud = l->type == LINK_SERIAL ? 19200 : 9600;
    long v;
    yaml_node_t *n;
    if (l->type == LINK_MODBUS_TCP) {
        yaml_node_t *host = ymap_get(y, e, "host", NULL);
        b->host = strdup(host && ynode_str(host) ? ynode_str(host) : "127.0.0.1");
        l->host = b->host;
        n = ymap_get(y, e, "port", NULL);
        l->tcp_port = 502;
        if (n != NULL && ynode_int(y, n, 1, 65535, &v))
            l->tcp_port = (int)v;
    } else {
        n = ymap_get(y, e, "port", NULL);
        if (yexpect_str(y, n ? n : e, "the bus 'port' (a device path such as /dev/ttyUSB0)")) {
            b->port_path = strdup(ynode_str(n));
            l->port = b->port_path;
        }
        if ((n = ymap_get(y, e, "baud", NULL)) && ynode_int(y, n, 300, 4000000, &v))
            l->baud = (int)v;
        if ((n = ymap_get(y, e, "data_bits", NULL)) && ynode_int(y, n, 5, 8, &v))
            l->data_bits = (int)v;
        if ((n = ymap_get(y, e, "stop_bits", NULL)) && ynode_int(y, n, 1, 2, &v))
            l->stop_bits = (int)v;
        if ((n = ymap_get(y, e, "parity", NULL)) != NULL) {
            const char *s = ynode_str(n);
            if (s && (strcmp(s, "N") == 0 || strcmp(s, "E") == 0 || strcmp(s, "O") == 0))
                l->parity = s[0];
            else
                yerr(y, n, "parity must be N, E or O, found '%s'", s ? s : ynode_kind(n));
        }
    }
    int64_t ns;
    if ((n = ymap_get(y, e, "timeout", NULL)) != NULL &&
        ynode_duration(y, n, "bus timeout", NS_PER_S / 100, 10 * NS_PER_S, &ns))
        l->timeout_ms = (uint32_t)(ns / 1000000);
    rig->n_buses++;
}

/* Apply a device entry's sample_hz (one number, or per channel) to its channels. */
static void apply_sample_rates(struct rig *rig, struct ydoc *y, yaml_node_t *n,
                               struct rig_device *d)
{
    if (n == NULL)
        return;
    char err[200];
    int col;
    double hz;
    if (n->type == YAML_SCALAR_NODE) {
        if (unit_parse_value(ynode_str(n), Q_NONE, &hz, err, sizeof err, &col) < 0 ||
            hz < 0 || hz > 1000) {
            yerr(y, n, "sample_hz must be a number of samples per second from 0 to 1000");
            return;
        }
        for (size_t i = 0; i < d->n_chans; i++)
            if (d->chans[i].readable)
                rig->channels[d->first_channel + i].sample_hz = hz;
        return;
    }
    if (!yexpect_map(y, n, "sample_hz"))
        return;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = ydoc_node(y, p->key), *v = ydoc_node(y, p->value);
        const char *ks = ynode_str(k);
        size_t i;
        for (i = 0; ks && i < d->n_chans; i++)
            if (strcmp(d->chans[i].name, ks) == 0)
                break;
        if (ks == NULL || i == d->n_chans || !d->chans[i].readable) {
            yerr(y, k, "device '%s' has no readable channel '%s'", d->name, ks ? ks : "?");
            continue;
        }
        const char *vs = ynode_str(v);
        if (vs == NULL || unit_parse_value(vs, Q_NONE, &hz, err, sizeof err, &col) < 0 ||
            hz < 0 || hz > 1000) {
            yerr(y, v, "sample_hz must be a number of samples per second from 0 to 1000");
            continue;
        }
        rig->channels[d->first_channel + i].sample_hz = hz;
    }
}

/* Add the channels a driver described for device d. */
static int add_channels(struct rig *rig, struct rig_device *d, size_t dev_index)
{
    struct rig_channel *c = realloc(rig->channels, (rig->n_channels + d->n_chans) * sizeof *c);
    if (c == NULL)
        return -ENOMEM;
    rig->channels = c;
    d->first_channel = rig->n_channels;
    for (size_t i = 0; i < d->n_chans; i++) {
        struct rig_channel *rc = &rig->channels[rig->n_channels++];
        const struct driver_channel *dc = &d->chans[i];
        memset(rc, 0, sizeof *rc);
        snprintf(rc->name, sizeof rc->name, "%s.%s", d->name, dc->name);
        rc->device = dev_index;
        rc->dev_ch = i;
        rc->q = dc->q;
        snprintf(rc->unit, sizeof rc->unit, "%s", dc->unit);
        rc->readable = dc->readable;
        rc->writable = dc->writable;
        rc->integer = dc->integer;
        rc->min = dc->min;
        rc->max = dc->max;
        rc->sample_hz = dc->readable ? dc->sample_hz : 0;
    }
    return 0;
}

/* A duration node (ynode_duration) in seconds within [min_s, max_s]; false if reported. */
static bool seconds_at(struct ydoc *y, yaml_node_t *n, const char *what, double min_s,
                       double max_s, double *out)
{
    int64_t ns;
    if (!ynode_duration(y, n, what, (int64_t)(min_s * 1e9), (int64_t)(max_s * 1e9), &ns))
        return false;
    *out = (double)ns / 1e9;
    return true;
}

/* stuck_after / lost_after: when a measured channel's reading stops being believed. */
static void apply_plausibility(struct rig *rig, struct ydoc *y, yaml_node_t *e, struct rig_device *d)
{
    double stuck = 0, lost = -1;
    yaml_node_t *n;
    if ((n = ymap_get(y, e, "stuck_after", NULL)) != NULL)
        seconds_at(y, n, "stuck_after", 1.0, 30 * 86400.0, &stuck);
    if ((n = ymap_get(y, e, "lost_after", NULL)) != NULL)
        seconds_at(y, n, "lost_after", 0.1, 86400.0, &lost);
    for (size_t i = 0; i < d->n_chans; i++) {
        struct rig_channel *c = &rig->channels[d->first_channel + i];
        c->stuck_s = stuck;
        c->lost_s = lost;
    }
}

/* Parse one device entry and open it through its driver. */
static void load_device(struct rig *rig, struct ydoc *y, yaml_node_t *e, const char *dir)
{
    if (!yexpect_map(y, e, "a device entry"))
        return;
    yaml_node_t *name = ymap_get(y, e, "name", NULL);
    yaml_node_t *drvn = ymap_get(y, e, "driver", NULL);
    yaml_node_t *busn = ymap_get(y, e, "bus", NULL);
    if (!yexpect_str(y, name ? name : e, "the device 'name'") ||
        !yexpect_str(y, drvn ? drvn : e, "the device 'driver'") ||
        !yexpect_str(y, busn ? busn : e, "the device 'bus'"))
        return;
    const char *nm = ynode_str(name);
    if (strchr(nm, '.') != NULL || strchr(nm, ' ') != NULL) {
        yerr(y, name, "device name '%s' must not contain '.' or spaces", nm);
        return;
    }
    if (strlen(nm) > RIG_MAX_DEVICE_NAME) {
        yerr(y, name, "device name '%s' is %zu bytes long; at most %d bytes fit: shorten it", nm,
             strlen(nm), RIG_MAX_DEVICE_NAME);
        return;
    }
    if (rig_find_device(rig, nm) >= 0) {
        yerr(y, name, "duplicate device name '%s'", nm);
        return;
    }
    const struct driver_ops *drv = driver_find(ynode_str(drvn));
    if (drv == NULL) {
        char near[64];
        if (nearest_word(ynode_str(drvn), driver_names(), near, sizeof near))
            yerr(y, drvn, "unknown driver '%s' (did you mean '%s'? expected one of: %s)", ynode_str(drvn),
                 near, driver_names());
        else
            yerr(y, drvn, "unknown driver '%s' (expected one of: %s)", ynode_str(drvn), driver_names());
        return;
    }
    size_t bus;
    for (bus = 0; bus < rig->n_buses; bus++)
        if (strcmp(rig->buses[bus].name, ynode_str(busn)) == 0)
            break;
    if (bus == rig->n_buses) {
        char names[512] = "", near[64];
        for (size_t i = 0; i < rig->n_buses; i++) {
            size_t used = strlen(names);
            snprintf(names + used, sizeof names - used, "%s%s", i ? ", " : "", rig->buses[i].name);
        }
        if (nearest_word(ynode_str(busn), names, near, sizeof near))
            yerr(y, busn, "unknown bus '%s' (did you mean '%s'? buses are declared under 'buses:')",
                 ynode_str(busn), near);
        else
            yerr(y, busn, "unknown bus '%s' (buses are declared under 'buses:'%s%s)", ynode_str(busn),
                 names[0] ? ": " : "", names);
        return;
    }
    const char *bt = link_type_name(rig->buses[bus].link.type);
    if (strstr(drv->bus_types, bt) == NULL) {
        yerr(y, busn, "driver '%s' runs on %s buses, but bus '%s' is %s", drv->name,
             drv->bus_types, rig->buses[bus].name, bt);
        return;
    }
    struct dev_param params[RIG_MAX_PARAMS];
    char keys[RIG_MAX_PARAMS][96];
    size_t n_params = 0;
    flatten_params(y, e, "", params, &n_params, keys);
    struct devcfg_ctx ctx = { y, e, params, n_params };
    struct dev_config cfg = {
        .name = nm, .file = y->file, .dir = dir, .params = params, .n_params = n_params,
        .error = devcfg_report, .error_ctx = &ctx,
    };
    struct rig_device *d = &rig->devices[rig->n_devices];
    memset(d, 0, sizeof *d);
    int errors_before = y->diag->errors;
    int rc = drv->open(&cfg, &d->state, d->chans, &d->n_chans);
    if (rc < 0 || y->diag->errors > errors_before) {
        if (y->diag->errors == errors_before)
            yerr(y, e, "%s: driver '%s' refused this entry: %s", nm, drv->name, strerror(-rc));
        if (rc == 0 && d->state)
            drv->close(d->state);
        return;
    }
    d->name = strdup(nm);
    d->drv = drv;
    d->bus = bus;
    if (add_channels(rig, d, rig->n_devices) < 0) {
        yerr(y, e, "out of memory");
        drv->close(d->state);
        free(d->name);
        return;
    }
    rig->n_devices++;
    apply_sample_rates(rig, y, ymap_get(y, e, "sample_hz", NULL), d);
    apply_plausibility(rig, y, e, d);
}

/* The fewest characters one Modbus RTU reading takes on the line: a request of
 * 8 bytes (address, function, start, count, CRC), a reply of at least 7 (one
 * register), and the silence of 3.5 characters after each frame. */
#define RTU_CHARS_PER_READING 22

/* Where to report bus b's rates: its 'baud' key, else its entry, else 'buses'. */
static yaml_node_t *bus_baud_node(const struct rig *rig, struct ydoc *y, yaml_node_t *buses,
                                  size_t b)
{
    yaml_node_t *at = NULL;
    for (size_t i = 0; i < yseq_len(buses); i++) {
        yaml_node_t *e = yseq_item(y, buses, i), *nm = ymap_get(y, e, "name", NULL);
        if (nm && ynode_str(nm) && strcmp(ynode_str(nm), rig->buses[b].name) == 0)
            at = ymap_get(y, e, "baud", NULL) ? ymap_get(y, e, "baud", NULL) : e;
    }
    return at ? at : buses;
}

/* Refuse sample rates a serial line's baud rate cannot carry: each reading is
 * a command and a reply on the one line, at least the characters its driver
 * names (chars_per_reading), so the sum over the devices on it of their
 * readings a second times those characters, times the bits a character takes,
 * must fit in the baud rate. Devices whose driver does not know are left out.
 * The message shows each device's share and the sum. */
static void check_serial_rates(struct rig *rig, struct ydoc *y, yaml_node_t *buses, size_t b,
                               int bits)
{
    const struct link_config *l = &rig->buses[b].link;
    char terms[512] = "";
    size_t len = 0, n_dev = 0;
    double chars = 0;
    for (size_t d = 0; d < rig->n_devices; d++) {
        const struct rig_device *dev = &rig->devices[d];
        if (dev->bus != b || dev->drv->chars_per_reading == 0)
            continue;
        double readings = 0;
        for (size_t i = 0; i < rig->n_channels; i++) {
            const struct rig_channel *c = &rig->channels[i];
            if (c->device == d && c->readable && c->sample_hz > 0)
                readings += c->sample_hz;
        }
        if (readings <= 0)
            continue;
        chars += readings * dev->drv->chars_per_reading;
        if (len < sizeof terms) {
            int k = snprintf(terms + len, sizeof terms - len, "%s%s: %g x %u (%s)",
                             n_dev ? " + " : "", dev->name, readings,
                             dev->drv->chars_per_reading, dev->drv->name);
            len += k > 0 ? (size_t)k : 0;
        }
        n_dev++;
    }
    double need = chars * bits;
    if (need <= l->baud)
        return;
    yerr(y, bus_baud_node(rig, y, buses, b), "bus '%s' (serial, %d baud) cannot carry its sample "
         "rates: each reading is a command and a reply of at least the characters its driver "
         "takes, so readings a second x characters, %s = %.0f characters a second, each of %d "
         "bits, so %.0f bit/s, more than the line's %d. At most %.0f characters a second fit: "
         "lower sample_hz of the devices on it, or raise the baud rate", rig->buses[b].name,
         l->baud, terms, chars, bits, need, l->baud, (double)l->baud / bits);
}

/* Refuse sample rates a Modbus RTU line's baud rate cannot carry: each reading
 * is a request and a reply on the one line, so the readings a second of every
 * device on it, times the characters each takes, times the bits a character
 * takes, must fit in the baud rate. The message shows the arithmetic. Serial
 * lines: check_serial_rates. */
static void check_line_rates(struct rig *rig, struct ydoc *y, yaml_node_t *buses)
{
    for (size_t b = 0; b < rig->n_buses; b++) {
        const struct link_config *l = &rig->buses[b].link;
        int bits = link_char_bits(l);
        if (l->type == LINK_SERIAL && l->baud > 0)
            check_serial_rates(rig, y, buses, b, bits);
        if (l->type != LINK_MODBUS_RTU || l->baud <= 0)
            continue;
        double readings = 0;
        size_t n = 0;
        for (size_t i = 0; i < rig->n_channels; i++) {
            const struct rig_channel *c = &rig->channels[i];
            if (rig->devices[c->device].bus == b && c->readable && c->sample_hz > 0) {
                readings += c->sample_hz;
                n++;
            }
        }
        double need = readings * RTU_CHARS_PER_READING * bits;
        if (need <= l->baud)
            continue;
        yerr(y, bus_baud_node(rig, y, buses, b), "bus '%s' (modbus-rtu, %d baud) cannot carry "
             "its sample rates: %zu channels read %g times a second in all, each reading at least %d characters of %d bits "
             "(a request, a reply and the silences between frames), so %g x %d x %d = %.0f bit/s, more "
             "than the line's %d. At most %.1f readings a second fit: lower sample_hz of the devices "
             "on it, or raise the baud rate", rig->buses[b].name, l->baud, n, readings,
             RTU_CHARS_PER_READING, bits, readings, RTU_CHARS_PER_READING, bits, need, l->baud,
             (double)l->baud / (RTU_CHARS_PER_READING * bits));
    }
}

/* The optional 'recorder:' section: how run files are written on this rig. */
static void load_recorder(struct rig *rig, struct ydoc *y, yaml_node_t *n)
{
    rig->rec.flush_s = 0.5;
    rig->rec.checkpoint_s = 10.0;
    if (n == NULL || !yexpect_map(y, n, "'recorder'"))
        return;
    static const char *const keys[] = { "compression", "flush", "checkpoint", "buffer", NULL };
    ymap_check_keys(y, n, keys, "'recorder'");
    yaml_node_t *v;
    if ((v = ymap_get(y, n, "compression", NULL)) != NULL) {
        long level;
        const char *s = ynode_str(v);
        if (s != NULL && (strcmp(s, "off") == 0 || strcmp(s, "none") == 0))
            rig->rec.compression = 0;
        else if (s != NULL && strcmp(s, "deflate") == 0)
            rig->rec.compression = 4;
        else if (s == NULL || strspn(s, "0123456789") != strlen(s) || *s == '\0')
            yerr(y, v, "recorder compression must be off, deflate, or a deflate level 1 to 9; found '%s'",
                 s ? s : ynode_kind(v));
        else if (ynode_int(y, v, 0, 9, &level))
            rig->rec.compression = (int)level;
    }
    if ((v = ymap_get(y, n, "flush", NULL)) != NULL)
        seconds_at(y, v, "recorder flush", 0.1, 1.0, &rig->rec.flush_s);
    if ((v = ymap_get(y, n, "checkpoint", NULL)) != NULL)
        seconds_at(y, v, "recorder checkpoint", 1.0, 3600.0, &rig->rec.checkpoint_s);
    long buf;
    if ((v = ymap_get(y, n, "buffer", NULL)) != NULL && ynode_int(y, v, 100, 100000000, &buf))
        rig->rec.buffer = (size_t)buf;
}

/* The optional 'confirm:' section: how long actuators may stay unconfirmed. */
static void load_confirm(struct rig *rig, struct ydoc *y, yaml_node_t *n)
{
    rig->confirm_s = 5.0;
    rig->safe_confirm_s = 5.0;
    if (n == NULL || !yexpect_map(y, n, "'confirm'"))
        return;
    static const char *const keys[] = { "setpoints", "safe_state", NULL };
    ymap_check_keys(y, n, keys, "'confirm'");
    yaml_node_t *v;
    if ((v = ymap_get(y, n, "setpoints", NULL)) != NULL)
        seconds_at(y, v, "confirm setpoints", 0.5, 3600.0, &rig->confirm_s);
    if ((v = ymap_get(y, n, "safe_state", NULL)) != NULL)
        seconds_at(y, v, "confirm safe_state", 0.5, 600.0, &rig->safe_confirm_s);
}

/* ------------------------------------------------------------------------ */
/* Limits and monitors: the rig's 'limits:', 'monitors:' and 'syringe_low:' */
/* (a protocol's 'limits:' are parsed here too)                             */
/* ------------------------------------------------------------------------ */

/* The channel named by node n, or -1 (reported). */
int rig_channel_at(struct ydoc *y, const yaml_node_t *n, const struct rig *rig, bool writable)
{
    const char *s = ynode_str(n);
    if (s == NULL || *s == '\0') {
        yerr(y, n, "expected a channel name such as 'pump1' or 'chip1.pressure', found %s",
             ynode_kind(n));
        return -1;
    }
    int ch = rig_find_channel(rig, s);
    if (ch < 0) {
        const char *sug = rig_suggest_channel(rig, s);
        int dev = rig_find_device(rig, s);
        if (dev >= 0)
            yerr(y, n, "device '%s' has several channels; name one, e.g. '%s'", s,
                 rig->channels[rig->devices[dev].first_channel].name);
        else if (sug != NULL)
            yerr(y, n, "unknown channel '%s' on rig '%s' (did you mean '%s'?)", s, rig->name, sug);
        else
            yerr(y, n, "unknown channel '%s' on rig '%s'", s, rig->name);
        return -1;
    }
    if (writable && !rig->channels[ch].writable && rig_regulator_of(rig, ch) < 0) {
        yerr(y, n, "channel '%s' is a measurement and cannot be set (a rig 'regulators:' entry "
             "with 'measure: %s' would make it a regulated setpoint)", rig->channels[ch].name,
             rig->channels[ch].name);
        return -1;
    }
    return ch;
}

/* Parse one limit entry, appending it to *out. */
static void parse_limit(struct ydoc *y, yaml_node_t *e, const struct rig *rig,
                        struct plan_limit **out, size_t *n)
{
    static const char *const keys[] = { "channel", "min", "max", "for", "action", NULL };
    if (!yexpect_map(y, e, "a limit"))
        return;
    ymap_check_keys(y, e, keys, "a limit");
    struct plan_limit lim = { .channel = -1, .min = NAN, .max = NAN, .line = ynode_line(e) };
    yaml_node_t *chn = ymap_get(y, e, "channel", NULL);
    if (chn == NULL) {
        yerr(y, e, "a limit needs 'channel'");
        return;
    }
    lim.channel = rig_channel_at(y, chn, rig, false);
    if (lim.channel < 0)
        return;
    enum quantity q = rig->channels[lim.channel].q;
    yaml_node_t *mn = ymap_get(y, e, "min", NULL), *mx = ymap_get(y, e, "max", NULL);
    if (mn == NULL && mx == NULL)
        yerr(y, e, "a limit needs 'min', 'max' or both");
    if (mn)
        ynode_value(y, mn, q, "limit min", NULL, &lim.min);
    if (mx)
        ynode_value(y, mx, q, "limit max", NULL, &lim.max);
    if (!isnan(lim.min) && !isnan(lim.max) && lim.min >= lim.max)
        yerr(y, mn, "limit min must be below max");
    yaml_node_t *v;
    if ((v = ymap_get(y, e, "for", NULL)) != NULL)
        ynode_duration(y, v, "limit 'for'", 0, INT64_MAX, &lim.for_ns);
    int action;
    if ((v = ymap_get(y, e, "action", NULL)) != NULL &&
        (action = ynode_choice(y, v, "action", limit_actions)) >= 0)
        lim.action = (enum limit_action)action;
    struct plan_limit *arr = realloc(*out, (*n + 1) * sizeof *arr);
    if (arr == NULL) {
        yerr(y, e, "out of memory");
        return;
    }
    *out = arr;
    arr[(*n)++] = lim;
}

/* Parse a 'limits:' list against rig. */
void rig_parse_limits(struct ydoc *y, yaml_node_t *list, const struct rig *rig,
                      struct plan_limit **out, size_t *n)
{
    if (list != NULL && yexpect_seq(y, list, "'limits'"))
        for (size_t i = 0; i < yseq_len(list); i++)
            parse_limit(y, yseq_item(y, list, i), rig, out, n);
}

/* A monitor's flow channel (a sensor) or pump (an actuator) named by node n,
 * or -1 (reported). */
static int monitor_channel(struct ydoc *y, yaml_node_t *n, const struct rig *rig, bool actuator,
                           const char *key, const char *mon)
{
    const char *s = ynode_str(n);
    if (!yexpect_str(y, n, key))
        return -1;
    int ch = rig_find_channel(rig, s);
    if (ch < 0) {
        const char *near = rig_suggest_channel(rig, s);
        yerr(y, n, "monitor '%s': %s: unknown channel '%s'%s%s%s", mon, key, s, near ? " (did you mean '" : "",
             near ? near : "", near ? "'?)" : "");
        return -1;
    }
    const struct rig_channel *c = &rig->channels[ch];
    if (c->q != Q_FLOW || (actuator ? !c->writable : (!c->readable || c->writable))) {
        yerr(y, n, "monitor '%s': %s: %s is not %s", mon, key, c->name,
             actuator ? "a pump (a writable flow channel)" : "a flow sensor (a measured flow channel)");
        return -1;
    }
    return ch;
}

/* Parse one monitor entry, appending it to rig->monitors. */
static void parse_monitor(struct ydoc *y, yaml_node_t *e, struct rig *rig)
{
    static const char *const keys[] = { "name", "flow", "follows", "tolerance", "min_abs", "for",
                                        "action", NULL };
    if (!yexpect_map(y, e, "a monitor"))
        return;
    ymap_check_keys(y, e, keys, "a monitor");
    struct rig_monitor m = { .tolerance = 0.2, .min_abs = 1.0, .for_ns = 10 * NS_PER_S,
                             .action = LIMIT_ALARM, .line = ynode_line(e) };
    yaml_node_t *name = ymap_get(y, e, "name", NULL), *flow = ymap_get(y, e, "flow", NULL),
                *follows = ymap_get(y, e, "follows", NULL), *v;
    bool ok = yexpect_str(y, name ? name : e, "a monitor's 'name'");
    if (ok && strlen(ynode_str(name)) >= sizeof m.name) {
        yerr(y, name, "a monitor's name must be at most %zu bytes", sizeof m.name - 1);
        ok = false;
    }
    if (ok) {
        snprintf(m.name, sizeof m.name, "%s", ynode_str(name));
        for (size_t i = 0; i < rig->n_monitors; i++)
            if (strcmp(rig->monitors[i].name, m.name) == 0)
                yerr(y, name, "duplicate monitor name '%s'", m.name);
    }
    if (flow == NULL || follows == NULL) {
        yerr(y, e, "monitor '%s' needs 'flow' (the flow sensor) and 'follows' (the pump it should "
             "follow)", m.name);
        return;
    }
    m.flow = monitor_channel(y, flow, rig, false, "flow", m.name);
    m.pump = monitor_channel(y, follows, rig, true, "follows", m.name);
    char what[96];
    snprintf(what, sizeof what, "monitor '%s': tolerance", m.name);
    if ((v = ymap_get(y, e, "tolerance", NULL)) != NULL &&
        ynode_value(y, v, Q_PERCENT, what, what, &m.tolerance)) {
        if (!(m.tolerance > 0 && m.tolerance <= 100))
            yerr(y, v, "monitor '%s': tolerance must be above 0 %% and at most 100 %%, found '%s'",
                 m.name, ynode_str(v));
        m.tolerance /= 100.0;
    }
    snprintf(what, sizeof what, "monitor '%s': min_abs", m.name);
    if ((v = ymap_get(y, e, "min_abs", NULL)) != NULL &&
        ynode_value(y, v, Q_FLOW, what, what, &m.min_abs) && m.min_abs < 0)
        yerr(y, v, "monitor '%s': min_abs cannot be negative, found '%s'", m.name, ynode_str(v));
    snprintf(what, sizeof what, "monitor '%s': for", m.name);
    if ((v = ymap_get(y, e, "for", NULL)) != NULL)
        ynode_duration(y, v, what, 0, 86400 * NS_PER_S, &m.for_ns);
    if ((v = ymap_get(y, e, "action", NULL)) != NULL) {
        const char *s = ynode_str(v);
        int i;
        for (i = 0; s && limit_actions[i] != NULL; i++)
            if (strcmp(s, limit_actions[i]) == 0)
                break;
        if (s && limit_actions[i] != NULL)
            m.action = (enum limit_action)i;
        else
            yerr(y, v, "monitor '%s': action must be alarm, pause or safe-stop, found '%s'", m.name,
                 s ? s : ynode_kind(v));
    }
    if (!ok || m.flow < 0 || m.pump < 0)
        return;
    struct rig_monitor *arr = realloc(rig->monitors, (rig->n_monitors + 1) * sizeof *arr);
    if (arr == NULL) {
        yerr(y, e, "out of memory");
        return;
    }
    rig->monitors = arr;
    arr[rig->n_monitors++] = m;
}

/* The rig's 'syringe_low: 10 %': the fraction of a syringe that warns. */
static void parse_syringe_low(struct ydoc *y, yaml_node_t *n, double *frac)
{
    double v;
    if (!ynode_value(y, n, Q_PERCENT, "syringe_low", "syringe_low", &v))
        return;
    if (!(v > 0 && v < 100))
        yerr(y, n, "syringe_low must be above 0 %% and below 100 %%, found '%s'", ynode_str(n));
    else
        *frac = v / 100.0;
}

/* Load the top level of a rig document. */
static void load_rig_doc(struct rig *rig, struct ydoc *y, const char *dir)
{
    static const char *const keys[] = { "rig", "buses", "devices", "alerts", "recorder", "limits",
                                        "monitors", "syringe_low", "confirm", "mqtt", "regulators", NULL };
    yaml_node_t *root = ydoc_root(y);
    if (root == NULL) {
        diag_error(y->diag, y->file, 1, 1, "empty rig file (expected 'rig:', 'buses:' and 'devices:')");
        return;
    }
    if (!yexpect_map(y, root, "a rig file"))
        return;
    ymap_check_keys(y, root, keys, "the rig file");
    yaml_node_t *name = ymap_get(y, root, "rig", NULL);
    if (yexpect_str(y, name ? name : root, "'rig' (the bench's name)")) {
        rig->name = strdup(ynode_str(name));
        if (strlen(ynode_str(name)) > RIG_MAX_NAME)
            yerr(y, name, "the rig's name is %zu bytes long; at most %d bytes fit: shorten it",
                 strlen(ynode_str(name)), RIG_MAX_NAME);
    }
    rig->alert_min_interval_s = 600;
    rig->alert_max_per_hour = 30;
    yaml_node_t *alerts = ymap_get(y, root, "alerts", NULL);
    if (alerts != NULL && yexpect_map(y, alerts, "'alerts'")) {
        static const char *const akeys[] = { "command", "min_interval", "max_per_hour", NULL };
        ymap_check_keys(y, alerts, akeys, "'alerts'");
        yaml_node_t *cmd = ymap_get(y, alerts, "command", NULL);
        if (cmd == NULL)
            yerr(y, alerts, "'alerts' needs 'command', the program to run for each alert");
        else if (yexpect_str(y, cmd, "'alerts.command'"))
            rig->alert_command = strdup(ynode_str(cmd));
        yaml_node_t *n;
        long per_hour;
        if ((n = ymap_get(y, alerts, "min_interval", NULL)) != NULL)
            seconds_at(y, n, "alerts min_interval", 0.0, 86400.0, &rig->alert_min_interval_s);
        if ((n = ymap_get(y, alerts, "max_per_hour", NULL)) != NULL && ynode_int(y, n, 1, 3600, &per_hour))
            rig->alert_max_per_hour = (int)per_hour;
    }
    load_recorder(rig, y, ymap_get(y, root, "recorder", NULL));
    load_confirm(rig, y, ymap_get(y, root, "confirm", NULL));
    yaml_node_t *mqtt = ymap_get(y, root, "mqtt", NULL);
    if (mqtt != NULL)
        rig_mqtt_parse(y, mqtt, dir, &rig->mqtt);
    yaml_node_t *buses = ymap_get(y, root, "buses", NULL);
    if (yexpect_seq(y, buses ? buses : root, "'buses'")) {
        rig->buses = calloc(yseq_len(buses) + 1, sizeof *rig->buses);
        for (size_t i = 0; rig->buses && i < yseq_len(buses); i++)
            load_bus(rig, y, yseq_item(y, buses, i));
    }
    yaml_node_t *devs = ymap_get(y, root, "devices", NULL);
    if (yexpect_seq(y, devs ? devs : root, "'devices'")) {
        rig->devices = calloc(yseq_len(devs) + 1, sizeof *rig->devices);
        for (size_t i = 0; rig->devices && i < yseq_len(devs); i++)
            load_device(rig, y, yseq_item(y, devs, i), dir);
    }
    if (rig->buses != NULL && rig->devices != NULL)
        check_line_rates(rig, y, buses);
    yaml_node_t *limits = ymap_get(y, root, "limits", NULL);
    if (limits != NULL)
        rig_parse_limits(y, limits, rig, &rig->limits, &rig->n_limits);
    yaml_node_t *monitors = ymap_get(y, root, "monitors", NULL);
    if (monitors != NULL && yexpect_seq(y, monitors, "'monitors'"))
        for (size_t i = 0; i < yseq_len(monitors); i++)
            parse_monitor(y, yseq_item(y, monitors, i), rig);
    yaml_node_t *low = ymap_get(y, root, "syringe_low", NULL);
    if (low != NULL)
        parse_syringe_low(y, low, &rig->syringe_low);
    yaml_node_t *regs = ymap_get(y, root, "regulators", NULL);
    if (regs != NULL)
        rig_parse_regulators(y, regs, rig);
}

/* Load and validate a rig from text. */
int rig_load_text(const char *path, const char *text, size_t len, struct rig **out,
                  struct diag *d)
{
    struct rig *rig = calloc(1, sizeof *rig);
    if (rig == NULL)
        return -ENOMEM;
    rig->path = strdup(path);
    rig->text = strndup(text, len);
    char *pathcopy = strdup(path);
    const char *dir = pathcopy ? dirname(pathcopy) : ".";
    struct ydoc y;
    int errors_before = d->errors;
    if (ydoc_load(&y, path, text, len, d) == 0)
        load_rig_doc(rig, &y, dir);
    ydoc_free(&y);
    free(pathcopy);
    if (d->errors > errors_before || rig->path == NULL || rig->text == NULL) {
        rig_free(rig);
        return -EINVAL;
    }
    /* Once per rig, not per run: a journal names the rig it was written on. */
    sha256_hex(text, len, rig->sha256);
    int rc = rig_digest(text, len, rig->digest);
    if (rc < 0) {
        diag_error(d, path, 0, 0, "cannot digest the rig file: %s", strerror(-rc));
        rig_free(rig);
        return rc;
    }
    *out = rig;
    return 0;
}

/* Load and validate a rig file. */
int rig_load(const char *path, struct rig **out, struct diag *d)
{
    char *text;
    size_t len;
    int rc = read_file_text(path, RIG_MAX_BYTES, &text, &len);
    if (rc < 0) {
        diag_error(d, path, 0, 0, "cannot read rig file: %s", rc == -EFBIG ? "larger than 1 MiB" : strerror(-rc));
        return rc;
    }
    rc = rig_load_text(path, text, len, out, d);
    free(text);
    return rc;
}

/* Close every device's driver state and free. */
void rig_free(struct rig *rig)
{
    if (rig == NULL)
        return;
    for (size_t i = 0; i < rig->n_devices; i++) {
        if (rig->devices[i].drv && rig->devices[i].state)
            rig->devices[i].drv->close(rig->devices[i].state);
        free(rig->devices[i].name);
    }
    for (size_t i = 0; i < rig->n_buses; i++) {
        free(rig->buses[i].name);
        free(rig->buses[i].port_path);
        free(rig->buses[i].host);
    }
    free(rig->buses);
    free(rig->devices);
    free(rig->channels);
    free(rig->name);
    free(rig->path);
    free(rig->text);
    free(rig->alert_command);
    rig_mqtt_free(&rig->mqtt);
    free(rig->limits);
    free(rig->monitors);
    free(rig->regulators);
    free(rig);
}

/* The device called name, or -1. */
int rig_find_device(const struct rig *rig, const char *name)
{
    for (size_t i = 0; i < rig->n_devices; i++)
        if (strcmp(rig->devices[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* Whether v suits channel c: a whole number if c is an integer channel. */
bool rig_value_whole(const struct rig_channel *c, double v, char *err, size_t len)
{
    if (!c->integer || v == floor(v))
        return true;
    snprintf(err, len, "%s takes whole numbers only%s%s%s, found %g (it would not be set as "
             "written)", c->name, c->unit[0] ? " (" : "", c->unit, c->unit[0] ? " 1, 2, 3...)" : "", v);
    return false;
}

/* Index of the channel called name, or -1. */
int rig_find_channel(const struct rig *rig, const char *name)
{
    for (size_t i = 0; i < rig->n_channels; i++)
        if (strcmp(rig->channels[i].name, name) == 0)
            return (int)i;
    int dev = rig_find_device(rig, name);
    if (dev < 0)
        return -1;
    const struct rig_device *d = &rig->devices[dev];
    int found = -1;
    for (size_t i = 0; i < d->n_chans; i++) {
        if (!d->chans[i].writable)
            continue;
        if (found >= 0)
            return -1;
        found = (int)(d->first_channel + i);
    }
    return found;
}

/* The channel name nearest to name. */
const char *rig_suggest_channel(const struct rig *rig, const char *name)
{
    const char *best = NULL;
    int best_d = 1000;
    for (size_t i = 0; i < rig->n_channels; i++) {
        int d = unit_edit_distance(name, rig->channels[i].name);
        if (d < best_d) {
            best_d = d;
            best = rig->channels[i].name;
        }
    }
    /* A device with one actuated channel may be named alone ("pump1"). */
    for (size_t i = 0; i < rig->n_devices; i++) {
        const char *dev = rig->devices[i].name;
        int d = unit_edit_distance(name, dev);
        if (d < best_d && rig_find_channel(rig, dev) >= 0) {
            best_d = d;
            best = dev;
        }
    }
    size_t len = strlen(name);
    return best_d <= (len <= 6 ? 1 : (len <= 12 ? 2 : 3)) ? best : NULL;
}
