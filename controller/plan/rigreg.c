/*
 * A rig's 'regulators:' section (plan/rig.h, struct rig_regulator):
 *
 *   regulators:
 *     - name: flow1
 *       measure: chip3.flow            # a measured channel
 *       actuator: ob1.p1               # a writable channel
 *       kp: 0.35 mbar per uL/min       # or a plain number in these units
 *       ki: 1.2 mbar per uL/min per s
 *       kd: 0 mbar s per uL/min
 *       d_filter: 50 ms                # derivative filter (default 50 ms)
 *       setpoint_weight: 1             # 0..1, the setpoint's share in the P term
 *       feedforward: {lag: 0.5 s, response: 0.1 s, dead_time: 30 ms}   # or on (defaults) | off
 *       rate: 50 Hz                    # 1 to 200 Hz
 *       output: [0 mbar, 1500 mbar]    # within the actuator's own range
 *       range: [0 uL/min, 600 uL/min]  # the setpoints it accepts (what it can reach)
 *       plant_sign: positive           # positive | negative
 *       tolerance: {abs: 0.2 uL/min, rel: 2 %, for: 30 s}
 *       saturated_for: 10 s
 *       inverted_for: 1 s
 *       measurement: {stale_after: 1 s, stuck_after: 10 s, on_loss: hold}   # hold | safe
 *       safe_output: 0 mbar
 */
#include "rig.h"
#include "base/units.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NS_PER_S 1000000000LL

/* The units a gain is written in: kind 0 kp, 1 ki, 2 kd. */
static void gain_unit(const struct rig *rig, const struct rig_regulator *g, int kind, char *buf,
                      size_t len)
{
    const char *a = quantity_unit(rig->channels[g->actuator].q);
    const char *m = quantity_unit(rig->channels[g->measure].q);
    if (*a == '\0')
        a = "1";
    if (*m == '\0')
        m = "1";
    snprintf(buf, len, kind == 0 ? "%s per %s" : kind == 1 ? "%s per %s per s" : "%s s per %s", a, m);
}

/* A gain: a number, optionally followed by exactly its stated unit. */
static void parse_gain(struct ydoc *y, yaml_node_t *n, const struct rig *rig,
                       const struct rig_regulator *g, int kind, double *out)
{
    static const char *const keys[] = { "kp", "ki", "kd" };
    char unit[64];
    gain_unit(rig, g, kind, unit, sizeof unit);
    const char *s = ynode_str(n);
    char *end;
    double v = s ? strtod(s, &end) : NAN;
    if (s == NULL || end == s || !isfinite(v)) {
        yerr(y, n, "regulator '%s': %s must be a number in %s, e.g. '%s: 0.5 %s', found '%s'",
             g->name, keys[kind], unit, keys[kind], unit, s ? s : ynode_kind(n));
        return;
    }
    while (*end == ' ')
        end++;
    if (*end != '\0' && strcmp(end, unit) != 0) {
        yerr(y, n, "regulator '%s': %s is in %s (the actuator's unit per the measured one), "
             "found the unit '%s'", g->name, keys[kind], unit, end);
        return;
    }
    if (v < 0) {
        yerr(y, n, "regulator '%s': %s cannot be negative (the plant's direction is "
             "'plant_sign'), found %g", g->name, keys[kind], v);
        return;
    }
    *out = v;
}

/* A [low, high] pair of quantity q. */
static bool parse_pair(struct ydoc *y, yaml_node_t *n, enum quantity q, const char *what,
                       const char *reg, double *lo, double *hi)
{
    char w[96];
    snprintf(w, sizeof w, "regulator '%s': %s", reg, what);
    if (!yexpect_seq(y, n, w))
        return false;
    if (yseq_len(n) != 2) {
        yerr(y, n, "%s must be [low, high], e.g. [0 %s, 100 %s]", w, quantity_unit(q), quantity_unit(q));
        return false;
    }
    if (!ynode_value(y, yseq_item(y, n, 0), q, w, w, lo) || !ynode_value(y, yseq_item(y, n, 1), q, w, w, hi))
        return false;
    if (!(*lo < *hi)) {
        yerr(y, n, "%s: the low end must be below the high end, found [%g, %g] %s", w, *lo, *hi,
             quantity_unit(q));
        return false;
    }
    return true;
}

/* A duration in seconds within [min_s, max_s]. */
static void seconds(struct ydoc *y, yaml_node_t *n, const char *what, double min_s, double max_s,
                    double *out)
{
    int64_t ns;
    if (ynode_duration(y, n, what, (int64_t)(min_s * 1e9), (int64_t)(max_s * 1e9), &ns))
        *out = (double)ns / 1e9;
}

/* rate: "50 Hz" or "50". */
static void parse_rate(struct ydoc *y, yaml_node_t *n, const char *reg, double *out)
{
    const char *s = ynode_str(n);
    char *end;
    double v = s ? strtod(s, &end) : NAN;
    if (s != NULL && end != s) {
        while (*end == ' ')
            end++;
    }
    if (s == NULL || end == s || (*end != '\0' && strcmp(end, "Hz") != 0) || !(v >= 1 && v <= 200)) {
        yerr(y, n, "regulator '%s': rate must be from 1 Hz to 200 Hz, e.g. 'rate: 50 Hz', found '%s'",
             reg, s ? s : ynode_kind(n));
        return;
    }
    *out = v;
}

/* tolerance: {abs, rel, for}. */
static void parse_tolerance(struct ydoc *y, yaml_node_t *n, const struct rig *rig,
                            struct rig_regulator *g)
{
    static const char *const keys[] = { "abs", "rel", "for", NULL };
    if (!yexpect_map(y, n, "a regulator's 'tolerance'"))
        return;
    ymap_check_keys(y, n, keys, "a regulator's 'tolerance'");
    char w[96];
    snprintf(w, sizeof w, "regulator '%s': tolerance", g->name);
    yaml_node_t *v;
    if ((v = ymap_get(y, n, "abs", NULL)) != NULL &&
        ynode_value(y, v, rig->channels[g->measure].q, w, w, &g->tol_abs) && g->tol_abs < 0)
        yerr(y, v, "%s: abs cannot be negative", w);
    if ((v = ymap_get(y, n, "rel", NULL)) != NULL && ynode_value(y, v, Q_PERCENT, w, w, &g->tol_rel)) {
        if (!(g->tol_rel >= 0 && g->tol_rel <= 100))
            yerr(y, v, "%s: rel must be from 0 %% to 100 %%", w);
        g->tol_rel /= 100.0;
    }
    if ((v = ymap_get(y, n, "for", NULL)) != NULL)
        seconds(y, v, w, 0.1, 86400, &g->lost_s);
}

/* measurement: {stale_after, stuck_after, on_loss}. */
static void parse_measurement(struct ydoc *y, yaml_node_t *n, struct rig_regulator *g)
{
    static const char *const keys[] = { "stale_after", "stuck_after", "on_loss", NULL };
    static const char *const losses[] = { "hold", "safe", NULL };
    if (!yexpect_map(y, n, "a regulator's 'measurement'"))
        return;
    ymap_check_keys(y, n, keys, "a regulator's 'measurement'");
    yaml_node_t *v;
    if ((v = ymap_get(y, n, "stale_after", NULL)) != NULL)
        seconds(y, v, "measurement stale_after", 0.01, 3600, &g->stale_s);
    if ((v = ymap_get(y, n, "stuck_after", NULL)) != NULL)
        seconds(y, v, "measurement stuck_after", 0.1, 86400, &g->stuck_s);
    int k;
    if ((v = ymap_get(y, n, "on_loss", NULL)) != NULL &&
        (k = ynode_choice(y, v, "measurement on_loss", losses)) >= 0)
        g->on_loss = (enum reg_on_loss)k;
}

/* feedforward: on | off | {lag, response, dead_time} (a map: on). */
static void parse_feedforward(struct ydoc *y, yaml_node_t *n, struct rig_regulator *g)
{
    static const char *const keys[] = { "lag", "response", "dead_time", NULL };
    static const char *const onoff[] = { "on", "off", NULL };
    char w[96];
    if (n->type == YAML_SCALAR_NODE) {
        snprintf(w, sizeof w, "regulator '%s': feedforward", g->name);
        int k = ynode_choice(y, n, w, onoff);
        if (k >= 0)
            g->ff_off = k == 1;
        return;
    }
    if (!yexpect_map(y, n, "a regulator's 'feedforward' (on, off or {lag, response, dead_time})"))
        return;
    ymap_check_keys(y, n, keys, "a regulator's 'feedforward'");
    yaml_node_t *v;
    snprintf(w, sizeof w, "regulator '%s': feedforward lag", g->name);
    if ((v = ymap_get(y, n, "lag", NULL)) != NULL)
        seconds(y, v, w, 0.001, 3600, &g->ff_lag_s);
    snprintf(w, sizeof w, "regulator '%s': feedforward response", g->name);
    if ((v = ymap_get(y, n, "response", NULL)) != NULL)
        seconds(y, v, w, 0.001, 3600, &g->ff_response_s);
    snprintf(w, sizeof w, "regulator '%s': feedforward dead_time", g->name);
    if ((v = ymap_get(y, n, "dead_time", NULL)) != NULL)
        seconds(y, v, w, 0.001, 10, &g->ff_delay_s);
}

/* Channels, name and the checks that need them; false if the entry is unusable. */
static bool parse_ends(struct ydoc *y, yaml_node_t *e, struct rig *rig, struct rig_regulator *g)
{
    yaml_node_t *name = ymap_get(y, e, "name", NULL), *meas = ymap_get(y, e, "measure", NULL),
                *act = ymap_get(y, e, "actuator", NULL);
    if (!yexpect_str(y, name ? name : e, "a regulator's 'name'"))
        return false;
    if (strlen(ynode_str(name)) >= sizeof g->name) {
        yerr(y, name, "a regulator's name must be at most %zu bytes", sizeof g->name - 1);
        return false;
    }
    snprintf(g->name, sizeof g->name, "%s", ynode_str(name));
    for (size_t i = 0; i < rig->n_regulators; i++)
        if (strcmp(rig->regulators[i].name, g->name) == 0)
            yerr(y, name, "duplicate regulator name '%s'", g->name);
    if (meas == NULL || act == NULL) {
        yerr(y, e, "regulator '%s' needs 'measure' (the measured channel, e.g. chip3.flow) and "
             "'actuator' (the channel it moves, e.g. ob1.p1)", g->name);
        return false;
    }
    g->measure = rig_channel_at(y, meas, rig, false);
    g->actuator = rig_channel_at(y, act, rig, true);
    if (g->measure < 0 || g->actuator < 0)
        return false;
    const struct rig_channel *m = &rig->channels[g->measure], *a = &rig->channels[g->actuator];
    if (!m->readable || m->writable) {
        yerr(y, meas, "regulator '%s': measure: %s is not a measured channel", g->name, m->name);
        return false;
    }
    if (!a->writable || a->integer) {
        yerr(y, act, "regulator '%s': actuator: %s cannot be driven continuously (it is %s)",
             g->name, a->name, a->writable ? "a whole-number channel such as a valve's port" : "read-only");
        return false;
    }
    for (size_t i = 0; i < rig->n_regulators; i++) {
        if (rig->regulators[i].measure == g->measure)
            yerr(y, meas, "regulator '%s': %s is already regulated by '%s'", g->name, m->name,
                 rig->regulators[i].name);
        if (rig->regulators[i].actuator == g->actuator)
            yerr(y, act, "regulator '%s': %s is already driven by '%s'", g->name, a->name,
                 rig->regulators[i].name);
    }
    return true;
}

/* Parse one regulator entry, appending it to rig->regulators. */
static void parse_regulator(struct ydoc *y, yaml_node_t *e, struct rig *rig)
{
    static const char *const keys[] = { "name", "measure", "actuator", "kp", "ki", "kd", "d_filter",
                                        "setpoint_weight", "feedforward", "rate", "output", "range",
                                        "plant_sign",
                                        "tolerance", "saturated_for", "inverted_for", "measurement",
                                        "safe_output", NULL };
    static const char *const signs[] = { "positive", "negative", NULL };
    if (!yexpect_map(y, e, "a regulator"))
        return;
    ymap_check_keys(y, e, keys, "a regulator");
    struct rig_regulator g = { .d_filter_s = 0.05, .sp_weight = 1.0, .rate_hz = 20, .sign = 1,
                               .tol_rel = 0.02, .lost_s = 30, .saturated_s = 10, .inverted_s = 1,
                               .stale_s = 1.0, .on_loss = REG_LOSS_HOLD, .line = ynode_line(e) };
    if (!parse_ends(y, e, rig, &g))
        return;
    const struct rig_channel *m = &rig->channels[g.measure], *a = &rig->channels[g.actuator];
    g.out_min = isnan(a->min) ? 0 : a->min;
    g.out_max = isnan(a->max) ? NAN : a->max;
    g.sp_min = isnan(m->min) ? 0 : m->min;
    g.sp_max = m->max;
    g.safe_output = fmax(g.out_min, 0);
    yaml_node_t *v;
    bool gains = false;
    const char *gk[] = { "kp", "ki", "kd" };
    double *gp[] = { &g.kp, &g.ki, &g.kd };
    for (int k = 0; k < 3; k++)
        if ((v = ymap_get(y, e, gk[k], NULL)) != NULL) {
            parse_gain(y, v, rig, &g, k, gp[k]);
            gains = true;
        }
    if (!gains)
        yerr(y, e, "regulator '%s' needs its gains, e.g. 'kp: 0.3 %s per %s, ki: 1 %s per %s per s' "
             "(perfusectl tune %s suggests them)", g.name, a->unit, m->unit, a->unit, m->unit, g.name);
    char w[96];
    snprintf(w, sizeof w, "regulator '%s': d_filter", g.name);
    if ((v = ymap_get(y, e, "d_filter", NULL)) != NULL)
        seconds(y, v, w, 0.001, 10, &g.d_filter_s);
    if ((v = ymap_get(y, e, "setpoint_weight", NULL)) != NULL) {
        const char *s = ynode_str(v);
        char *end;
        double b = s ? strtod(s, &end) : NAN;
        if (s == NULL || end == s || *end != '\0' || !(b >= 0 && b <= 1))
            yerr(y, v, "regulator '%s': setpoint_weight must be a number from 0 to 1, found '%s'",
                 g.name, s ? s : ynode_kind(v));
        else
            g.sp_weight = b;
    }
    if ((v = ymap_get(y, e, "feedforward", NULL)) != NULL)
        parse_feedforward(y, v, &g);
    if ((v = ymap_get(y, e, "rate", NULL)) != NULL)
        parse_rate(y, v, g.name, &g.rate_hz);
    double lo, hi;
    if ((v = ymap_get(y, e, "output", NULL)) != NULL && parse_pair(y, v, a->q, "output", g.name, &lo, &hi)) {
        if ((!isnan(a->min) && lo < a->min) || (!isnan(a->max) && hi > a->max))
            yerr(y, v, "regulator '%s': output [%g, %g] %s goes beyond what %s takes (%g .. %g %s)",
                 g.name, lo, hi, a->unit, a->name, a->min, a->max, a->unit);
        g.out_min = lo;
        g.out_max = hi;
        g.safe_output = fmin(fmax(0, lo), hi);
    }
    if (isnan(g.out_max))
        yerr(y, e, "regulator '%s' needs 'output: [low, high]': %s states no range of its own",
             g.name, a->name);
    if ((v = ymap_get(y, e, "range", NULL)) != NULL && parse_pair(y, v, m->q, "range", g.name, &lo, &hi)) {
        g.sp_min = lo;
        g.sp_max = hi;
    }
    if (isnan(g.sp_max))
        yerr(y, e, "regulator '%s' needs 'range: [low, high]', the setpoints it can reach", g.name);
    int k;
    if ((v = ymap_get(y, e, "plant_sign", NULL)) != NULL &&
        (k = ynode_choice(y, v, "plant_sign", signs)) >= 0)
        g.sign = k == 0 ? 1 : -1;
    if ((v = ymap_get(y, e, "tolerance", NULL)) != NULL)
        parse_tolerance(y, v, rig, &g);
    snprintf(w, sizeof w, "regulator '%s': saturated_for", g.name);
    if ((v = ymap_get(y, e, "saturated_for", NULL)) != NULL)
        seconds(y, v, w, 0.1, 86400, &g.saturated_s);
    snprintf(w, sizeof w, "regulator '%s': inverted_for", g.name);
    if ((v = ymap_get(y, e, "inverted_for", NULL)) != NULL)
        seconds(y, v, w, 1, 60, &g.inverted_s);
    if ((v = ymap_get(y, e, "measurement", NULL)) != NULL)
        parse_measurement(y, v, &g);
    if ((v = ymap_get(y, e, "safe_output", NULL)) != NULL) {
        snprintf(w, sizeof w, "regulator '%s': safe_output", g.name);
        if (ynode_value(y, v, a->q, w, w, &g.safe_output) &&
            (g.safe_output < g.out_min || g.safe_output > g.out_max))
            yerr(y, v, "%s must lie within output [%g, %g] %s", w, g.out_min, g.out_max, a->unit);
    }
    struct rig_regulator *arr = realloc(rig->regulators, (rig->n_regulators + 1) * sizeof *arr);
    if (arr == NULL) {
        yerr(y, e, "out of memory");
        return;
    }
    rig->regulators = arr;
    arr[rig->n_regulators++] = g;
}

/* Parse the 'regulators:' list. */
void rig_parse_regulators(struct ydoc *y, yaml_node_t *list, struct rig *rig)
{
    if (!yexpect_seq(y, list, "'regulators'"))
        return;
    for (size_t i = 0; i < yseq_len(list); i++)
        parse_regulator(y, yseq_item(y, list, i), rig);
}

/* The feedforward's settings with the defaults resolved. */
bool rig_regulator_feedforward(const struct rig_regulator *g, double *lag_s, double *response_s,
                               double *dead_time_s)
{
    double lag = g->ff_lag_s > 0 ? g->ff_lag_s : g->kp > 0 && g->ki > 0 ? g->kp / g->ki : 0;
    *lag_s = lag;
    *response_s = g->ff_response_s > 0 ? g->ff_response_s : lag / 5.0;
    *dead_time_s = g->ff_delay_s > 0 ? g->ff_delay_s : 1.0 / g->rate_hz;
    return !g->ff_off && lag > 0;
}

/* The regulator of a measured channel. */
int rig_regulator_of(const struct rig *rig, int ch)
{
    for (size_t i = 0; rig != NULL && i < rig->n_regulators; i++)
        if (rig->regulators[i].measure == ch)
            return (int)i;
    return -1;
}

/* The regulator called name. */
int rig_find_regulator(const struct rig *rig, const char *name)
{
    for (size_t i = 0; rig != NULL && name != NULL && i < rig->n_regulators; i++)
        if (strcmp(rig->regulators[i].name, name) == 0)
            return (int)i;
    return -1;
}
