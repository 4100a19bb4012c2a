/*
 * Generic Modbus devices (RTU or TCP), described by a profile file.
 *
 * Example rig entries:
 *
 *   buses:
 *     - {name: rs485, type: modbus-rtu, port: /dev/ttyUSB0, baud: 9600, parity: N}
 *     - {name: plc, type: modbus-tcp, host: 192.168.1.20, port: 502}
 *   devices:
 *     - {name: chip1, driver: modbus, bus: rs485, unit: 1, profile: profiles/pressure-flow.yaml}
 *     - {name: valve1, driver: modbus, bus: plc, unit: 2, profile: profiles/rotary-valve.yaml}
 *
 * The profile gives each channel's table, address, type, word order, scale,
 * offset, unit and access; see protocols/profiles/pressure-flow.yaml.
 */
#include "driver.h"
#include "profile.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct mbdev {
    int unit;
    struct profile *prof;
};

/* Report the profile's own diagnostics through the rig's error callback. */
static void report_profile(const struct dev_config *cfg, const struct diag *d)
{
    for (size_t i = 0; i < d->n; i++)
        cfg->error(cfg, "profile", "%s:%d:%d: %s", d->msgs[i].file, d->msgs[i].line, d->msgs[i].col,
                   d->msgs[i].text);
}

/* Parse the rig entry, load the profile, describe the channels. */
static int mb_open(const struct dev_config *cfg, void **state, struct driver_channel *ch, size_t *n)
{
    struct mbdev *m = calloc(1, sizeof *m);
    if (m == NULL)
        return -ENOMEM;
    long unit = 0;
    int rc = devcfg_int(cfg, "unit", 1, 247, &unit);
    if (rc == -ENOENT)
        cfg->error(cfg, NULL, "a Modbus device needs 'unit' (its slave id, 1-247)");
    m->unit = (int)unit;
    const char *prof = devcfg_get(cfg, "profile");
    if (prof == NULL) {
        cfg->error(cfg, NULL, "a Modbus device needs 'profile' (its register map file)");
        rc = -EINVAL;
    } else {
        char path[4096];
        snprintf(path, sizeof path, "%s%s%s", prof[0] == '/' ? "" : cfg->dir, prof[0] == '/' ? "" : "/", prof);
        struct diag d;
        diag_init(&d);
        if (profile_load(path, &m->prof, &d) < 0) {
            report_profile(cfg, &d);
            rc = -EINVAL;
        }
        diag_free(&d);
    }
    for (size_t i = 0; i < cfg->n_params; i++)
        if (strcmp(cfg->params[i].key, "unit") && strcmp(cfg->params[i].key, "profile")) {
            cfg->error(cfg, cfg->params[i].key, "unknown parameter '%s' for a Modbus device "
                       "(expected unit, profile)", cfg->params[i].key);
            rc = -EINVAL;
        }
    if (rc < 0) {
        profile_free(m->prof);
        free(m);
        return -EINVAL;
    }
    for (size_t i = 0; i < m->prof->n_regs; i++) {
        const struct profile_reg *r = &m->prof->regs[i];
        ch[i] = (struct driver_channel){ .q = r->q, .readable = r->readable, .writable = r->writable,
                                         .min = r->min, .max = r->max, .sample_hz = r->sample_hz };
        snprintf(ch[i].name, sizeof ch[i].name, "%s", r->name);
        snprintf(ch[i].unit, sizeof ch[i].unit, "%s", r->q == Q_NONE ? r->unit : quantity_unit(r->q));
    }
    *n = m->prof->n_regs;
    *state = m;
    return 0;
}

/* Map a failed libmodbus call to our error codes, with the message in link->err. */
static int mb_fail(struct bus_link *link, const char *what, int e)
{
    link_seterr(link, "%s: %s", what, modbus_strerror(e));
    if (e == ETIMEDOUT)
        return -ETIMEDOUT;
    if (e == EMBBADCRC || e == EMBBADDATA || e == EMBBADSLAVE || e == EMBBADEXC || e == EMBMDATA) {
        if (link->cfg->type == LINK_MODBUS_RTU)
            modbus_flush(link->mb);
        return -EBADMSG;
    }
    if (e >= EMBXILFUN && e <= EMBXGTAR)
        return -EREMOTEIO;
    return -ENOTCONN;
}

/* Read one channel. */
static int mb_read(void *state, struct bus_link *link, size_t ch, double *value)
{
    struct mbdev *m = state;
    const struct profile_reg *r = &m->prof->regs[ch];
    uint16_t regs[2] = { 0, 0 };
    uint8_t bit = 0;
    int n = mb_type_regs(r->type), rc;
    modbus_set_slave(link->mb, m->unit);
    switch (r->table) {
    case MB_COIL: rc = modbus_read_bits(link->mb, r->address, 1, &bit); regs[0] = bit; break;
    case MB_DISCRETE: rc = modbus_read_input_bits(link->mb, r->address, 1, &bit); regs[0] = bit; break;
    case MB_INPUT: rc = modbus_read_input_registers(link->mb, r->address, n, regs); break;
    default: rc = modbus_read_registers(link->mb, r->address, n, regs); break;
    }
    if (rc < 0) {
        char what[64];
        snprintf(what, sizeof what, "reading %s", r->name);
        return mb_fail(link, what, errno);
    }
    double raw = mb_decode(regs, r->type, r->order);
    *value = (raw * r->scale + r->offset) * r->unit_factor;
    return 0;
}

/* Write one channel. */
static int mb_write(void *state, struct bus_link *link, size_t ch, double value)
{
    struct mbdev *m = state;
    const struct profile_reg *r = &m->prof->regs[ch];
    if (!r->writable)
        return -EINVAL;
    double raw = (value / r->unit_factor - r->offset) / r->scale;
    uint16_t regs[2];
    if (mb_encode(raw, r->type, r->order, regs) < 0) {
        link_seterr(link, "%g does not fit %s's register", value, r->name);
        return -ERANGE;
    }
    modbus_set_slave(link->mb, m->unit);
    int rc;
    if (r->table == MB_COIL)
        rc = modbus_write_bit(link->mb, r->address, regs[0] != 0);
    else if (mb_type_regs(r->type) == 1)
        rc = modbus_write_register(link->mb, r->address, regs[0]);
    else
        rc = modbus_write_registers(link->mb, r->address, 2, regs);
    if (rc < 0) {
        char what[64];
        snprintf(what, sizeof what, "writing %s", r->name);
        return mb_fail(link, what, errno);
    }
    return 0;
}

static void mb_close(void *state)
{
    struct mbdev *m = state;
    profile_free(m->prof);
    free(m);
}

const struct driver_ops modbus_driver = {
    .name = "modbus",
    .bus_types = "modbus-rtu,modbus-tcp",
    .open = mb_open,
    .read = mb_read,
    .write = mb_write,
    .close = mb_close,
};
