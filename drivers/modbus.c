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
 * Parameters: unit (the slave id, 1-247, required) and profile (the register
 * map, required; a relative path is taken from the rig file's directory).
 * The channels are the profile's: each gives its table, address, type, word
 * order, scale, offset, quantity, unit, access, range and sampling rate (see
 * protocols/profiles/pressure-flow.yaml).
 *
 * A reading is raw * scale + offset in the profile's unit, converted to the
 * canonical unit of its quantity; a write does the inverse. A NaN float is
 * passed on as NaN: the device did send it, and judging plausibility is not
 * the driver's business.
 */
#include "driver.h"
#include "profile.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One device: its slave id and its register map. */
struct mbdev {
    char name[32];
    int unit;
    struct profile *prof;
};

static const char *const mb_params[] = { "unit", "profile", NULL };

/* ------------------------------------------------------------------------ */
/* Configuration                                                            */
/* ------------------------------------------------------------------------ */

/* Report the profile's own diagnostics through the rig's error callback. */
static void report_profile(const struct dev_config *cfg, const struct diag *d)
{
    for (size_t i = 0; i < d->n; i++) {
        const struct diag_msg *m = &d->msgs[i];
        if (m->line > 0)
            cfg->error(cfg, "profile", "in profile %s:%d:%d: %s", m->file, m->line, m->col,
                       m->text);
        else
            cfg->error(cfg, "profile", "profile %s: %s", m->file, m->text);
    }
}

/* Load the profile named in the rig entry, relative to the rig file's directory. */
static int load_profile(const struct dev_config *cfg, struct mbdev *m)
{
    const char *prof = devcfg_get(cfg, "profile");
    if (prof == NULL || *prof == '\0') {
        cfg->error(cfg, NULL, "a Modbus device needs 'profile' (its register map file, e.g. "
                   "profiles/pressure-flow.yaml)");
        return -EINVAL;
    }
    char path[4096];
    bool relative = prof[0] != '/' && cfg->dir != NULL && cfg->dir[0] != '\0';
    int n = snprintf(path, sizeof path, "%s%s%s", relative ? cfg->dir : "", relative ? "/" : "",
                     prof);
    if (n < 0 || (size_t)n >= sizeof path) {
        cfg->error(cfg, "profile", "profile path too long");
        return -EINVAL;
    }
    struct diag d;
    diag_init(&d);
    int rc = profile_load(path, &m->prof, &d);
    if (rc < 0)
        report_profile(cfg, &d);
    diag_free(&d);
    return rc < 0 ? -EINVAL : 0;
}

/* Describe one channel from its profile entry. */
static void describe(const struct profile_reg *r, struct driver_channel *ch)
{
    *ch = (struct driver_channel){ .q = r->q, .readable = r->readable, .writable = r->writable,
                                   .min = r->min, .max = r->max, .sample_hz = r->sample_hz,
                                   /* A read-write register reads back what was written: a
                                    * device that lost power comes back at its default, and
                                    * writing the wanted value again is what was asked. */
                                   .readback = r->readable && r->writable, .reassert = 1,
                                   .readback_tol = fabs(r->scale * r->unit_factor) / 2 };
    /* A plain number held in an integer register one for one (a port, a
     * count): a fraction would be rounded on the wire, so it is refused. */
    ch->integer = r->q == Q_NONE && r->type != MB_F32 && fabs(r->scale) == 1.0 &&
                  r->offset == floor(r->offset);
    snprintf(ch->name, sizeof ch->name, "%s", r->name);
    /* Values reach the rest of perfuse in the canonical unit, whatever the profile's unit. */
    snprintf(ch->unit, sizeof ch->unit, "%s", r->q == Q_NONE ? r->unit : quantity_unit(r->q));
}

/* Parse the rig entry, load the profile, describe the channels. */
static int mb_open(const struct dev_config *cfg, void **state, struct driver_channel *ch,
                   size_t *n)
{
    struct mbdev *m = calloc(1, sizeof *m);
    if (m == NULL)
        return -ENOMEM;
    snprintf(m->name, sizeof m->name, "%s", cfg->name ? cfg->name : "modbus");
    int bad = devcfg_check_known(cfg, mb_params, "a Modbus device") < 0;
    long unit = 0;
    int rc = devcfg_int(cfg, "unit", 1, 247, &unit);
    if (rc == -ENOENT)
        cfg->error(cfg, NULL, "a Modbus device needs 'unit' (its slave id, 1-247)");
    bad |= rc < 0;
    m->unit = (int)unit;
    bad |= load_profile(cfg, m) < 0;
    if (bad) {
        profile_free(m->prof);
        free(m);
        return -EINVAL;
    }
    for (size_t i = 0; i < m->prof->n_regs; i++)
        describe(&m->prof->regs[i], &ch[i]);
    *n = m->prof->n_regs;
    *state = m;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Transactions                                                             */
/* ------------------------------------------------------------------------ */

/* Map a failed libmodbus call to a driver error, with the message in link->err. */
static int mb_fail(struct mbdev *m, struct bus_link *link, const char *verb,
                   const struct profile_reg *r, int e)
{
    link_seterr(link, "%s: %s %s (%s %d, unit %d): %s", m->name, verb, r->name,
                profile_table_name(r->table), r->address, m->unit, modbus_strerror(e));
    /* What is still on the line (a late reply, the rest of a garbled frame)
     * must not be taken for the next request's answer. */
    if (e == ETIMEDOUT) {
        link_resync(link);
        return -ETIMEDOUT;
    }
    if (e == EMBBADCRC || e == EMBBADDATA || e == EMBBADSLAVE || e == EMBBADEXC) {
        link_resync(link);
        return -EBADMSG;
    }
    if ((e >= EMBXILFUN && e <= EMBXGTAR) || e == EMBUNKEXC)
        return -EREMOTEIO;
    return -ENOTCONN;
}

/* Address the device: the link is shared by every unit on the bus. On RTU,
 * what waits on the line before a request is stale (RTU replies do not say
 * which registers they hold), so it is discarded. */
static int select_unit(struct mbdev *m, struct bus_link *link)
{
    if (link->mb == NULL) {
        link_seterr(link, "%s: the link is not open", m->name);
        return -ENOTCONN;
    }
    if (modbus_set_slave(link->mb, m->unit) < 0) {
        link_seterr(link, "%s: bad unit id %d", m->name, m->unit);
        return -EINVAL;
    }
    link_drain(link);
    return 0;
}

/* Read the raw registers (or bit) of one channel. */
static int read_raw(struct bus_link *link, const struct profile_reg *r, uint16_t *regs)
{
    uint8_t bit = 0;
    int rc;
    switch (r->table) {
    case MB_COIL:
        rc = modbus_read_bits(link->mb, r->address, 1, &bit);
        regs[0] = bit;
        return rc;
    case MB_DISCRETE:
        rc = modbus_read_input_bits(link->mb, r->address, 1, &bit);
        regs[0] = bit;
        return rc;
    case MB_INPUT:
        return modbus_read_input_registers(link->mb, r->address, mb_type_regs(r->type), regs);
    case MB_HOLDING:
        return modbus_read_registers(link->mb, r->address, mb_type_regs(r->type), regs);
    }
    errno = EINVAL;
    return -1;
}

/* Read one channel. */
static int mb_read(void *state, struct bus_link *link, size_t ch, double *value)
{
    struct mbdev *m = state;
    if (ch >= m->prof->n_regs)
        return -EINVAL;
    const struct profile_reg *r = &m->prof->regs[ch];
    int rc = select_unit(m, link);
    if (rc < 0)
        return rc;
    uint16_t regs[2] = { 0, 0 };
    if (read_raw(link, r, regs) < 0)
        return mb_fail(m, link, "reading", r, errno);
    double raw = mb_decode(regs, r->type, r->order);
    *value = (raw * r->scale + r->offset) * r->unit_factor;
    return 0;
}

/* Convert a value in the canonical unit to the channel's raw registers. */
static int to_raw(struct mbdev *m, struct bus_link *link, const struct profile_reg *r,
                  double value, uint16_t *regs)
{
    const double slack = 1e-9 * (fabs(r->min) + fabs(r->max) + 1);
    if (!isfinite(value)) {
        link_seterr(link, "%s: %s: setpoint is not a number", m->name, r->name);
        return -EINVAL;
    }
    if (value < r->min - slack || value > r->max + slack) {
        link_seterr(link, "%s: %s: %g %s is outside the range %g to %g", m->name, r->name, value,
                    r->q == Q_NONE ? r->unit : quantity_unit(r->q), r->min, r->max);
        return -ERANGE;
    }
    double raw = (value / r->unit_factor - r->offset) / r->scale;
    if (mb_encode(raw, r->type, r->order, regs) < 0) {
        link_seterr(link, "%s: %s: %g does not fit a %s register (raw %g)", m->name, r->name,
                    value, mb_type_name(r->type), raw);
        return -ERANGE;
    }
    return 0;
}

/* Write one channel. */
static int mb_write(void *state, struct bus_link *link, size_t ch, double value)
{
    struct mbdev *m = state;
    if (ch >= m->prof->n_regs || !m->prof->regs[ch].writable) {
        link_seterr(link, "%s: channel %zu cannot be written", m->name, ch);
        return -EINVAL;
    }
    const struct profile_reg *r = &m->prof->regs[ch];
    uint16_t regs[2];
    int rc = to_raw(m, link, r, value, regs);
    if (rc == 0)
        rc = select_unit(m, link);
    if (rc < 0)
        return rc;
    if (r->table == MB_COIL)
        rc = modbus_write_bit(link->mb, r->address, regs[0] != 0);
    else if (mb_type_regs(r->type) == 1)
        rc = modbus_write_register(link->mb, r->address, regs[0]);
    else
        rc = modbus_write_registers(link->mb, r->address, 2, regs);
    return rc < 0 ? mb_fail(m, link, "writing", r, errno) : 0;
}

/* Free the device's state and its profile. */
static void mb_close(void *state)
{
    struct mbdev *m = state;
    if (m == NULL)
        return;
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
