/* Delivery monitoring on a rig: syringe fill levels and stalls, and flow monitors. */
#include "delivery.h"
#include "interlock.h"
#include "base/units.h"
#include "base/utf8.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The device's readable volume channel (its infused counter), or -1. */
static int counter_channel(const struct rig_device *dev)
{
    for (size_t i = 0; i < dev->n_chans; i++)
        if (dev->chans[i].q == Q_VOLUME && dev->chans[i].readable && !dev->chans[i].writable)
            return (int)(dev->first_channel + i);
    return -1;
}

/* Find the syringe pumps and copy the monitors. */
int delivery_init(struct delivery *d, const struct rig *rig, const struct delivery_hooks *hooks)
{
    memset(d, 0, sizeof *d);
    d->rig = rig;
    d->hooks = *hooks;
    d->pumps = calloc(rig->n_devices + 1, sizeof *d->pumps);
    d->recs = calloc(rig->n_devices + 1, sizeof *d->recs);
    d->mon = calloc(rig->n_monitors + 1, sizeof *d->mon);
    if (d->pumps == NULL || d->recs == NULL || d->mon == NULL) {
        delivery_free(d);
        return -ENOMEM;
    }
    for (size_t i = 0; i < rig->n_devices; i++) {
        const struct rig_device *dev = &rig->devices[i];
        int counter = counter_channel(dev);
        for (size_t c = 0; c < dev->n_chans && counter >= 0; c++) {
            if (dev->chans[c].q != Q_FLOW || !dev->chans[c].writable)
                continue;
            struct delivery_pump *p = &d->pumps[d->n_pumps++];
            p->name = dev->name;
            p->flow = (int)(dev->first_channel + c);
            p->counter = counter;
            p->capacity_ul = dev->chans[c].volume_ul;
            p->rec_fill = -1;
            p->last_counter_ul = NAN;
            break;
        }
    }
    d->n_mon = rig->n_monitors;
    for (size_t i = 0; i < d->n_mon; i++) {
        d->mon[i].spec = rig->monitors[i];
        monitor_reset(&d->mon[i]);
    }
    return 0;
}

/* Free what delivery_init allocated. */
void delivery_free(struct delivery *d)
{
    free(d->pumps);
    free(d->recs);
    free(d->mon);
    d->pumps = NULL;
    d->recs = NULL;
    d->mon = NULL;
    d->n_pumps = d->n_mon = 0;
}

/* The syringe pump called name, or -1. */
int delivery_find_pump(const struct delivery *d, const char *name)
{
    for (size_t i = 0; i < d->n_pumps; i++)
        if (strcmp(d->pumps[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* Names of the syringe pumps, for messages. */
static void pump_names(const struct delivery *d, char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < d->n_pumps && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, "%s%s", i ? ", " : "", d->pumps[i].name);
    if (d->n_pumps == 0)
        snprintf(buf, len, "none on this rig");
}

/* Parse "PUMP=VOLUME" specs. */
int delivery_parse_fills(const struct delivery *d, const char *const *specs, size_t n,
                         double *fills, size_t *bad, char *err, size_t errlen)
{
    for (size_t i = 0; i < d->n_pumps; i++)
        fills[i] = NAN;
    for (size_t k = 0; k < n; k++) {
        const char *s = specs[k], *eq = strchr(s, '=');
        *bad = k;
        char name[64], names[512], uerr[200];
        if (eq == NULL || eq == s || (size_t)(eq - s) >= sizeof name) {
            utf8_format(err, errlen, "expected PUMP=VOLUME, e.g. pump1=8mL");
            return -EINVAL;
        }
        memcpy(name, s, (size_t)(eq - s));
        name[eq - s] = '\0';
        int p = delivery_find_pump(d, name);
        if (p < 0) {
            pump_names(d, names, sizeof names);
            utf8_format(err, errlen, "'%s' is not a syringe pump of rig '%s' (syringe pumps: %s)",
                     name, d->rig->name, names);
            return -EINVAL;
        }
        double v;
        int col;
        if (unit_parse_value(eq + 1, Q_VOLUME, &v, uerr, sizeof uerr, &col) < 0) {
            utf8_format(err, errlen, "%s", uerr);
            return -EINVAL;
        }
        if (v < 0) {
            utf8_format(err, errlen, "a fill level cannot be negative");
            return -EINVAL;
        }
        if (d->pumps[p].capacity_ul > 0 && v > d->pumps[p].capacity_ul) {
            utf8_format(err, errlen, "more than %s's syringe holds (%g uL)", name, d->pumps[p].capacity_ul);
            return -EINVAL;
        }
        if (!isnan(fills[p])) {
            utf8_format(err, errlen, "%s's fill level is given twice", name);
            return -EINVAL;
        }
        fills[p] = v;
    }
    return 0;
}

/* A --fill error, at the spec as its place. */
void delivery_fill_error(struct diag *d, const char *spec, const char *err)
{
    char place[96];
    utf8_format(place, sizeof place, "--fill %s", spec);
    diag_error(d, place, 0, 0, "%s", err);
}

/* A run starts: each syringe from its given level, or full. The conditions
 * the last run left (a syringe low, empty or stalled) end here: the syringes
 * are judged afresh, and an alarm still active would hide a new occurrence. */
void delivery_start(struct delivery *d, const double *fills, int64_t t_ns)
{
    delivery_start_some(d, fills, NULL, t_ns);
}

/* Hold pump p's syringe level against its counter's reading just before
 * t_ns, if recent (two of its sample periods, at least 1 s), until the first
 * reading in the run: the level is then known, and journaled, from the start,
 * so that a crash before that reading does not leave it unknown after the
 * restart (what the pump moved meanwhile then counts as infused: the level
 * errs low, toward an early warning). */
static void seed_counter(const struct delivery *d, struct delivery_pump *p, int64_t t_ns)
{
    double hz = d->rig->channels[p->counter].sample_hz;
    int64_t fresh_ns = hz > 0 ? (int64_t)(2e9 / hz) : 0;
    if (fresh_ns < 1000000000LL)
        fresh_ns = 1000000000LL;
    if (!isnan(p->last_counter_ul) && t_ns >= p->last_counter_ns && t_ns - p->last_counter_ns <= fresh_ns)
        syringe_seed_counter(&p->s, p->last_counter_ul);
}

/* Start following the pumps marked in only (NULL: all). */
void delivery_start_some(struct delivery *d, const double *fills, const bool *only, int64_t t_ns)
{
    static const char *const codes[] = { "syringe_low", "syringe_empty", "syringe_unknown", "pump_stalled" };
    for (size_t i = 0; i < d->n_pumps; i++) {
        struct delivery_pump *p = &d->pumps[i];
        if (only != NULL && !only[p->flow])
            continue;
        p->tracking = true;
        for (size_t k = 0; k < sizeof codes / sizeof codes[0] && d->hooks.clear; k++)
            d->hooks.clear(d->hooks.ctx, t_ns, p->name, codes[k]);
        p->rec_fill = -1;
        syringe_init(&p->s, p->capacity_ul, fills ? fills[i] : NAN, d->rig->syringe_low);
        if (fills == NULL) {
            p->s.fill0_ul = p->s.fill_ul = NAN;
            p->s.source = FILL_UNKNOWN;
        }
        seed_counter(d, p, t_ns);
        /* Stall checks start from the setpoint the pump holds now. */
        syringe_on_setpoint(&p->s, NAN, t_ns);
    }
    d->tracking = true;
}

/* Pump i's level, tied to the counter reading it was computed at. */
void delivery_get_level(const struct delivery *d, size_t i, struct delivery_level *out)
{
    const struct syringe *s = &d->pumps[i].s;
    *out = (struct delivery_level){ .fill_ul = s->fill_ul, .counter_ul = s->counter_ul,
                                    .fill0_ul = s->fill0_ul, .source = s->source };
    if (syringe_carry_pending(s)) {
        out->fill_ul = s->carry_fill_ul;
        out->counter_ul = s->carry_counter_ul;
    } else if (isnan(s->counter_ul)) {
        out->fill_ul = NAN;
    }
}

/* A run continues after a restart: each syringe from its carried level. */
void delivery_continue(struct delivery *d, const struct delivery_level *levels, int64_t t_ns)
{
    delivery_continue_some(d, levels, NULL, t_ns);
}

/* Continue following the pumps marked in only (NULL: all). */
void delivery_continue_some(struct delivery *d, const struct delivery_level *levels, const bool *only,
                            int64_t t_ns)
{
    for (size_t i = 0; i < d->n_pumps; i++) {
        struct delivery_pump *p = &d->pumps[i];
        if (only != NULL && !only[p->flow])
            continue;
        p->tracking = true;
        const struct delivery_level *l = &levels[i];
        p->rec_fill = -1;
        syringe_carry(&p->s, p->capacity_ul, d->rig->syringe_low, l->fill0_ul, l->source, l->fill_ul,
                      l->counter_ul);
        syringe_on_setpoint(&p->s, NAN, t_ns);
    }
    d->tracking = true;
}

/* Lay out the syringes' part of a run file. */
int delivery_add_to_file(struct delivery *d, struct runfile_series *s, struct rec_run_info *info)
{
    for (size_t i = 0; i < d->n_pumps; i++) {
        struct delivery_pump *p = &d->pumps[i];
        const struct rig_device *dev = &d->rig->devices[d->rig->channels[p->flow].device];
        snprintf(p->fill_name, sizeof p->fill_name, "%s.fill", p->name);
        struct rec_channel c = { .name = p->fill_name, .units = "uL", .device = p->name,
                                 .driver = dev->drv->name, .kind = "derived",
                                 .rate_hz = d->rig->channels[p->counter].sample_hz };
        p->rec_fill = runfile_series_add(s, &c);
        if (p->rec_fill < 0)
            return -ENOMEM;
        d->recs[i] = (struct rec_syringe){ .pump = p->name,
            .capacity_ul = p->capacity_ul > 0 ? p->capacity_ul : NAN,
            .fill_at_start_ul = p->s.fill0_ul, .fill_source = syringe_source_name(p->s.source) };
    }
    info->syringes = d->recs;
    info->n_syringes = d->n_pumps;
    return 0;
}

/* Pump i's level at the start, in words. */
void delivery_describe_start(const struct delivery *d, size_t i, char *buf, size_t len)
{
    const struct delivery_pump *p = &d->pumps[i];
    const struct syringe *s = &p->s;
    if (syringe_carry_pending(s)) {
        utf8_format(buf, len, "%s: fill level carried over from before the restart: %.1f uL when its "
                 "counter read %.1f uL (fill level at the start %g uL, %s); it counts on from the "
                 "pump's next reading", p->name, s->carry_fill_ul, s->carry_counter_ul, s->fill0_ul,
                 syringe_source_name(s->source));
        return;
    }
    switch (s->source) {
    case FILL_GIVEN:
        utf8_format(buf, len, "%s: fill level at the start %g uL (given)%s", p->name, s->fill0_ul,
                 p->capacity_ul > 0 ? "" : "; no syringe.volume in the rig");
        break;
    case FILL_ASSUMED_FULL:
        utf8_format(buf, len, "%s: fill level at the start taken to be full, %g uL (assumed full; "
                 "give run --fill %s=VOLUME if it is not)", p->name, s->fill0_ul, p->name);
        break;
    default:
        utf8_format(buf, len, "%s: fill level unknown (%s): only stalls are detected", p->name,
                 p->capacity_ul > 0 ? "not known after a restart"
                                    : "no syringe.volume in the rig and no --fill");
        break;
    }
}

/* The run ended: stop following the syringes. */
void delivery_stop(struct delivery *d)
{
    delivery_stop_some(d, NULL);
}

/* Stop following the pumps marked in only (NULL: all). */
void delivery_stop_some(struct delivery *d, const bool *only)
{
    bool any = false;
    for (size_t i = 0; i < d->n_pumps; i++) {
        if (only == NULL || only[d->pumps[i].flow])
            d->pumps[i].tracking = false;
        any |= d->pumps[i].tracking;
    }
    d->tracking = any;
}

/* Report what a syringe's news means. */
static void syringe_report(struct delivery *d, struct delivery_pump *p, int news, int64_t t)
{
    const struct syringe *s = &p->s;
    const struct delivery_hooks *h = &d->hooks;
    char m[300];
    if (news & SYR_LOW) {
        utf8_format(m, sizeof m, "%s: syringe low, %.0f uL left (%.0f %% of %g uL, fill at start %s); "
                 "refill or replace it soon", p->name, s->fill_ul,
                 100.0 * s->fill_ul / (p->capacity_ul > 0 ? p->capacity_ul : s->fill0_ul),
                 p->capacity_ul > 0 ? p->capacity_ul : s->fill0_ul, syringe_source_name(s->source));
        h->raise(h->ctx, t, "warning", p->name, "syringe_low", DELIVERY_WARN, m);
    }
    if (news & SYR_EMPTY) {
        utf8_format(m, sizeof m, "%s: syringe empty by the pump's count (%.0f uL infused since the "
                 "start, fill at start %g uL %s)", p->name, s->counter_ul - s->counter0_ul,
                 s->fill0_ul, syringe_source_name(s->source));
        h->raise(h->ctx, t, "alarm", p->name, "syringe_empty", DELIVERY_ON_FAULT, m);
    }
    if (news & SYR_LOST) {
        utf8_format(m, sizeof m, "%s: fill level unknown: its counter reads %.1f uL, below the %.1f uL "
                 "it read before the restart (the pump reset its count); only stalls are detected; "
                 "check the syringe", p->name, s->counter_ul, s->carry_counter_ul);
        h->raise(h->ctx, t, "warning", p->name, "syringe_unknown", DELIVERY_WARN, m);
    }
    if (news & SYR_STALLED) {
        if (s->stall_by_counter)
            utf8_format(m, sizeof m, "%s: stalled: told to infuse %g uL/min, its counter moved %.1f uL "
                     "where %.1f uL were due: syringe empty or blocked", p->name, s->setpoint,
                     s->counter_ul - s->ref_counter_ul,
                     s->setpoint * (double)(t - s->ref_ns) / 60e9);
        else
            utf8_format(m, sizeof m, "%s: stalled: told to infuse %g uL/min, it reads %g uL/min for "
                     "%.0f s: syringe empty or blocked", p->name, s->setpoint, s->last_flow,
                     (double)(t - s->still_since_ns) / 1e9);
        h->raise(h->ctx, t, "alarm", p->name, "pump_stalled", DELIVERY_ON_FAULT, m);
    }
    if (news & SYR_STALL_OVER)
        h->clear(h->ctx, t, p->name, "pump_stalled");
    if (news & SYR_REFILLED) {
        h->clear(h->ctx, t, p->name, "syringe_low");
        h->clear(h->ctx, t, p->name, "syringe_empty");
    }
}

/* The run resumed: judge stalls afresh. */
void delivery_on_resume(struct delivery *d, int64_t t_ns)
{
    if (!d->tracking)
        return;
    for (size_t i = 0; i < d->n_pumps; i++)
        if (d->pumps[i].tracking)
            syringe_report(d, &d->pumps[i], syringe_on_resume(&d->pumps[i].s, t_ns), t_ns);
}

/* A pump was commanded: monitors and syringes follow it. */
void delivery_on_setpoint(struct delivery *d, int channel, double v, int64_t t_ns)
{
    /* A pump's own safe action stops it: its monitors then expect no flow, so
     * a deviation they reported can clear. */
    for (size_t i = 0; i < d->n_mon; i++)
        if (d->mon[i].spec.pump == channel)
            monitor_on_setpoint(&d->mon[i], isnan(v) ? 0.0 : v);
    if (!d->tracking)
        return;
    for (size_t i = 0; i < d->n_pumps; i++)
        if (d->pumps[i].flow == channel && d->pumps[i].tracking)
            syringe_report(d, &d->pumps[i], syringe_on_setpoint(&d->pumps[i].s, v, t_ns), t_ns);
}

/* A monitor tripped: say what it saw. */
static void monitor_report(struct delivery *d, const struct flow_monitor *m, double v, int64_t t)
{
    static const enum delivery_action act[] = { [LIMIT_ALARM] = DELIVERY_ALARM,
        [LIMIT_PAUSE] = DELIVERY_PAUSE, [LIMIT_SAFE_STOP] = DELIVERY_SAFE_STOP };
    const struct rig_monitor *r = &m->spec;
    const struct rig_channel *f = &d->rig->channels[r->flow], *p = &d->rig->channels[r->pump];
    char msg[600], dur[48];
    unit_format_duration(r->for_ns, dur, sizeof dur);
    utf8_format(msg, sizeof msg, "%s: %s reads %.3g %s while %s is set to %g %s (allowed +-%.3g %s) "
             "for %s; action %s (rig monitor, line %d)", r->name, f->name, v, f->unit, p->name,
             m->setpoint, p->unit, monitor_band(m), f->unit, dur, limit_action_name(r->action), r->line);
    d->hooks.raise(d->hooks.ctx, t, "alarm", r->name, "flow_deviation", act[r->action], msg);
}

/* A sample: monitors judge their flows, syringes their read-backs and counters. */
void delivery_on_sample(struct delivery *d, int channel, double v, int64_t t_ns)
{
    for (size_t i = 0; i < d->n_mon; i++) {
        struct flow_monitor *m = &d->mon[i];
        if (m->spec.flow != channel)
            continue;
        enum monitor_news news = monitor_on_sample(m, v, t_ns);
        if (news == MON_TRIP)
            monitor_report(d, m, v, t_ns);
        else if (news == MON_CLEAR)
            d->hooks.clear(d->hooks.ctx, t_ns, m->spec.name, "flow_deviation");
    }
    for (size_t i = 0; i < d->n_pumps; i++) {
        struct delivery_pump *p = &d->pumps[i];
        if (p->counter == channel && !isnan(v)) {
            p->last_counter_ul = v;
            p->last_counter_ns = t_ns;
        }
    }
    if (!d->tracking)
        return;
    for (size_t i = 0; i < d->n_pumps; i++) {
        struct delivery_pump *p = &d->pumps[i];
        if (!p->tracking)
            continue;
        if (p->flow == channel) {
            syringe_report(d, p, syringe_on_flow(&p->s, v, t_ns), t_ns);
        } else if (p->counter == channel) {
            bool first = isnan(p->s.counter_ul) || p->s.seeded;
            syringe_report(d, p, syringe_on_counter(&p->s, v, t_ns), t_ns);
            if (first && !isnan(p->s.counter_ul))
                d->levels_changed = true;
            if (!isnan(p->s.fill_ul) && !isnan(v) && d->hooks.fill)
                d->hooks.fill(d->hooks.ctx, i, p->s.fill_ul, t_ns);
        }
    }
}
