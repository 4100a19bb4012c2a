/* What goes into a run file for a rig: its series, and the file's name. */
#include "runfile.h"
#include "base/timeutil.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* The regulators' descriptions and their series. */
static int regulator_series(const struct rig *rig, struct runfile_series *s)
{
    static const char *const terms[RUNFILE_REG_SERIES] = { "setpoint", "measurement", "output",
                                                           "p", "i", "d", "feedforward" };
    size_t n = rig->n_regulators;
    s->regs = calloc(n + 1, sizeof *s->regs);
    s->reg_series = calloc(n * RUNFILE_REG_SERIES + 1, sizeof *s->reg_series);
    s->reg_text = calloc(n + 1, sizeof *s->reg_text);
    if (!s->regs || !s->reg_series || !s->reg_text)
        return -ENOMEM;
    for (size_t k = 0; k < n; k++) {
        const struct rig_regulator *g = &rig->regulators[k];
        const struct rig_channel *m = &rig->channels[g->measure], *a = &rig->channels[g->actuator];
        char (*txt)[64] = s->reg_text[k];
        snprintf(txt[RUNFILE_REG_SERIES], 64, "%s per %s", quantity_unit(a->q), quantity_unit(m->q));
        snprintf(txt[RUNFILE_REG_SERIES + 1], 64, "%s per %s per s", quantity_unit(a->q), quantity_unit(m->q));
        snprintf(txt[RUNFILE_REG_SERIES + 2], 64, "%s s per %s", quantity_unit(a->q), quantity_unit(m->q));
        s->regs[k] = (struct rec_regulator){ .name = g->name, .measure = m->name, .actuator = a->name,
            .kp_units = txt[RUNFILE_REG_SERIES], .ki_units = txt[RUNFILE_REG_SERIES + 1],
            .kd_units = txt[RUNFILE_REG_SERIES + 2], .kp = g->kp, .ki = g->ki, .kd = g->kd,
            .rate_hz = g->rate_hz, .out_min = g->out_min, .out_max = g->out_max,
            .plant_sign = g->sign, .d_filter_s = g->d_filter_s, .sp_weight = g->sp_weight };
        s->regs[k].feedforward = rig_regulator_feedforward(g, &s->regs[k].ff_lag_s,
                                                           &s->regs[k].ff_response_s,
                                                           &s->regs[k].ff_dead_time_s);
        for (int j = 0; j < RUNFILE_REG_SERIES; j++) {
            snprintf(txt[j], 64, "%s/%s", g->name, terms[j]);
            s->reg_series[k * RUNFILE_REG_SERIES + (size_t)j] = (struct rec_channel){
                .name = txt[j], .units = j < RUNFILE_REG_OUTPUT ? quantity_unit(m->q) : quantity_unit(a->q),
                .device = rig->devices[a->device].name, .driver = "regulator",
                .kind = j == RUNFILE_REG_SETPOINT ? "setpoint" : j == RUNFILE_REG_MEASUREMENT ? "measured"
                      : j == RUNFILE_REG_OUTPUT ? "output" : "term",
                .rate_hz = g->rate_hz };
        }
    }
    s->n_regs = n;
    s->n_reg_series = n * RUNFILE_REG_SERIES;
    return 0;
}

/* Build the series tables from the rig. */
int runfile_series_build(const struct rig *rig, struct runfile_series *s)
{
    return runfile_series_build_only(rig, NULL, s);
}

/* Build the series tables of the rig channels marked in keep (NULL: all). */
int runfile_series_build_only(const struct rig *rig, const bool *keep, struct runfile_series *s)
{
    memset(s, 0, sizeof *s);
    size_t n = rig->n_channels ? rig->n_channels : 1;
    s->rec_chan = calloc(n, sizeof *s->rec_chan);
    s->rec_sp = calloc(n, sizeof *s->rec_sp);
    s->chans = calloc(n, sizeof *s->chans);
    s->sps = calloc(n, sizeof *s->sps);
    s->confs = calloc(n, sizeof *s->confs);
    if (!s->rec_chan || !s->rec_sp || !s->chans || !s->sps || !s->confs) {
        runfile_series_free(s);
        return -ENOMEM;
    }
    for (size_t i = 0; i < rig->n_channels; i++) {
        const struct rig_channel *c = &rig->channels[i];
        const struct rig_device *dev = &rig->devices[c->device];
        struct rec_channel info = { .name = c->name, .units = c->unit, .device = dev->name,
                                    .driver = dev->drv->name,
                                    .kind = c->writable ? "readback" : "measured",
                                    .counter = c->q == Q_VOLUME && !c->writable,
                                    .rate_hz = c->sample_hz };
        s->rec_chan[i] = s->rec_sp[i] = -1;
        if (keep != NULL && !keep[i])
            continue;
        if (c->readable) {
            s->rec_chan[i] = (int)s->n_chans;
            s->chans[s->n_chans++] = info;
        }
        if (c->writable) {
            s->rec_sp[i] = (int)s->n_sps;
            s->confs[s->n_sps] = info;
            s->confs[s->n_sps].kind = "confirmed";
            s->sps[s->n_sps++] = info;
        }
    }
    return regulator_series(rig, s);
}

/* Append a derived /channels series. */
int runfile_series_add(struct runfile_series *s, const struct rec_channel *c)
{
    struct rec_channel *v = realloc(s->chans, (s->n_chans + 1) * sizeof *v);
    if (v == NULL)
        return -ENOMEM;
    s->chans = v;
    s->chans[s->n_chans] = *c;
    return (int)s->n_chans++;
}

void runfile_series_free(struct runfile_series *s)
{
    free(s->rec_chan);
    free(s->rec_sp);
    free(s->chans);
    free(s->sps);
    free(s->confs);
    free(s->regs);
    free(s->reg_series);
    free(s->reg_text);
    memset(s, 0, sizeof *s);
}

/* Lower-case, dash-separated file name part from the protocol name. */
static void slugify(const char *name, char *out, size_t len)
{
    size_t n = 0;
    bool dash = false;
    for (const char *p = name; *p && n + 2 < len && n < 40; p++) {
        if (isalnum((unsigned char)*p)) {
            if (dash && n > 0)
                out[n++] = '-';
            out[n++] = (char)tolower((unsigned char)*p);
            dash = false;
        } else {
            dash = true;
        }
    }
    if (n == 0)
        n = (size_t)snprintf(out, len, "protocol");
    out[n] = '\0';
}

/* DIR/<stamp>-<slug>[-TAG]-<id8>.h5 */
void runfile_path(char *buf, size_t len, const char *dir, int64_t wall_ns, const char *protocol,
                  const char *tag, const char *run_id)
{
    char stamp[32], slug[48];
    time_stamp_compact(wall_ns, stamp, sizeof stamp);
    slugify(protocol, slug, sizeof slug);
    snprintf(buf, len, "%s/%s-%s%s%s-%.8s.h5", dir, stamp, slug, tag ? "-" : "", tag ? tag : "", run_id);
}

/* A random 128-bit run id in hex. */
void runfile_make_id(char out[33])
{
    unsigned char b[16];
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) {
        uint64_t t = time_mono_ns() ^ (uint64_t)time_wall_ns();
        memcpy(b, &t, 8);
        memcpy(b + 8, &t, 8);
    }
    for (int i = 0; i < 16; i++)
        sprintf(out + 2 * i, "%02x", b[i]);
}
