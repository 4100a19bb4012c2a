/* A PID regulator with back-calculation, bumpless transfer, setpoint feedforward and fault
 * detection (regulator.h). */
#include "regulator.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define NS 1e9
/* The inverted-sign test looks at windows this long; the output must move by
 * this share of its range, and the measurement by this many tolerances. */
#define INV_WINDOW_S 1.0
#define INV_MIN_DU_FRAC 0.01
/* A suspicion is tested by moving the output by this share of its range for PROBE_S, then back. */
#define PROBE_FRAC 0.05
#define PROBE_S 1.0
/* How far beyond its range (share of the range, plus the tolerance) a measurement is wrong. */
#define RANGE_MARGIN 0.05
/* Feedforward: the measurement is filtered over FF_FILTER_S to judge whether it has settled; a
 * point is learned after FF_SETTLE_LAGS plant lags (at least FF_SETTLE_MIN_S) within tolerance;
 * two points give the slope when they lie this share apart; a disturbance beyond FF_FORGET_TOLS
 * tolerances forgets the gain; a transient ends when the model is within FF_END_TOL of a
 * tolerance of the setpoint, and is abandoned when the plant runs ahead of its model by more
 * than FF_AHEAD of the transient's largest setpoint change (plus the tolerance): the gain was
 * stale. */
#define FF_FILTER_S 0.1
#define FF_SETTLE_LAGS 3.0
#define FF_SETTLE_MIN_S 1.0
#define FF_APART 0.2
#define FF_FORGET_TOLS 2.0
#define FF_END_TOL 0.05
#define FF_AHEAD 0.1
#define FF_WATCH_TICKS 2

static const char *const fault_codes[RF_KINDS] = {
    "regulation_inverted", "regulation_saturated", "regulation_lost", "regulation_measurement",
};

const char *regulator_fault_code(enum reg_fault f)
{
    return f < RF_KINDS ? fault_codes[f] : "regulation";
}

const char *regulator_mode_name(enum reg_mode m)
{
    static const char *const names[] = { "idle", "auto", "hold", "manual", "safed" };
    return m <= REG_SAFED ? names[m] : "?";
}

/* Raise or clear a fault once per change. */
static void set_fault(struct regulator *r, enum reg_fault f, bool on, int64_t t, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void set_fault(struct regulator *r, enum reg_fault f, bool on, int64_t t, const char *fmt, ...)
{
    if (r->active[f] == on)
        return;
    r->active[f] = on;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (r->hooks.fault != NULL)
        r->hooks.fault(r->hooks.ctx, f, on, msg, t);
}

/* Forget the learned plant and end any feedforward transient. */
static void ff_forget(struct regulator *r)
{
    r->ff_known = false;
    r->ff_active = false;
    r->ff_term = 0.0;
    r->ff_y0 = r->ff_u0 = r->ff_y1 = r->ff_u1 = NAN;
    r->ff_settled_since = -1;
    r->ff_point = false;
    r->ff_yf = NAN;
}

/* Set up. */
void regulator_init(struct regulator *r, const struct rig_regulator *cfg, double dev_min,
                    double dev_max, const struct regulator_hooks *hooks)
{
    memset(r, 0, sizeof *r);
    r->cfg = cfg;
    r->hooks = *hooks;
    r->out_lo = isnan(dev_min) ? cfg->out_min : fmax(cfg->out_min, dev_min);
    r->out_hi = isnan(dev_max) ? cfg->out_max : fmin(cfg->out_max, dev_max);
    r->mode = REG_IDLE;
    r->sp = r->y = r->y_prev = r->out = r->stuck_v = NAN;
    r->sat_since = r->err_since = -1;
    r->last = (struct reg_terms){ NAN, NAN, NAN, NAN, NAN, NAN, NAN };
    r->ff_sp = NAN;
    ff_forget(r);
}

/* Clamp to the output limits. */
static double clamp(const struct regulator *r, double u)
{
    return fmin(r->out_hi, fmax(r->out_lo, u));
}

/* The P term now. */
static double p_term(const struct regulator *r);

/* Set the integral so that P + I + D gives the output in force, timers untouched. */
static void align_only(struct regulator *r, int64_t t)
{
    if (isnan(r->out))
        r->out = clamp(r, r->out_lo);
    ff_forget(r);           /* a restart, a pause, a test or a bad measurement: the plant may have changed */
    r->last.d = 0.0;
    r->last.ff = 0.0;
    r->last.p = p_term(r);
    r->last.i = r->out - r->last.p;
    r->y_prev = r->y;
    r->y_prev_t = r->y_t;
    r->last_tick = t;
}

/* The P term now. */
static double p_term(const struct regulator *r)
{
    const struct rig_regulator *c = r->cfg;
    if (isnan(r->sp) || isnan(r->y))
        return 0.0;
    return c->sign * c->kp * (c->sp_weight * r->sp - r->y);
}

/* Set the integral so that P + I + D gives the output in force: no bump. */
static void align_integral(struct regulator *r, int64_t t)
{
    align_only(r, t);
    r->sat_since = r->err_since = -1;
    r->inv_t0 = -1;
    r->inv_beyond = 0;
    r->inv_ylast = r->y;
    r->probe_phase = 0;
    r->probe_cleared = false;
}

/* Start regulating. */
void regulator_start(struct regulator *r, double out_now, int64_t t_ns)
{
    r->out = isnan(out_now) ? NAN : clamp(r, out_now);
    r->mode = REG_AUTO;
    for (int f = 0; f < RF_KINDS; f++)
        set_fault(r, (enum reg_fault)f, false, t_ns, "%s: regulation restarted", r->cfg->name);
    align_integral(r, t_ns);
}

/* Stop. */
void regulator_stop(struct regulator *r)
{
    r->mode = REG_IDLE;
}

void regulator_set_setpoint(struct regulator *r, double sp)
{
    r->sp = sp;
}

/* Take a measurement: the stuck timer runs while it repeats to the bit. */
void regulator_measure(struct regulator *r, double y, int64_t t_ns)
{
    if (!isnan(y) && y == r->stuck_v) {
        /* the same bits again */
    } else {
        r->stuck_v = y;
        r->stuck_since = t_ns;
    }
    r->y = y;
    r->y_t = t_ns;
}

void regulator_pause(struct regulator *r)
{
    if (r->mode == REG_AUTO)
        r->mode = REG_HOLD;
}

void regulator_resume(struct regulator *r, int64_t t_ns)
{
    if (r->mode != REG_HOLD)
        return;
    r->mode = REG_AUTO;
    align_integral(r, t_ns);
}

void regulator_manual(struct regulator *r, double out, int64_t t_ns)
{
    if (r->mode == REG_SAFED)
        return;
    r->mode = REG_MANUAL;
    r->out = clamp(r, out);
    r->hooks.write(r->hooks.ctx, r->out, t_ns);
}

void regulator_auto(struct regulator *r, int64_t t_ns)
{
    if (r->mode != REG_MANUAL)
        return;
    r->mode = REG_AUTO;
    align_integral(r, t_ns);
}

/* Whether in tolerance. */
bool regulator_in_tolerance(const struct regulator *r)
{
    if (isnan(r->sp) || isnan(r->y) || r->meas_bad)
        return false;
    return fabs(r->sp - r->y) <= r->cfg->tol_abs + r->cfg->tol_rel * fabs(r->sp);
}

/* Why the measurement cannot be used now, or NULL. */
static const char *measurement_problem(const struct regulator *r, int64_t t)
{
    const struct rig_regulator *c = r->cfg;
    if (isnan(r->y))
        return "no valid measurement (NaN)";
    if (c->stale_s > 0 && (double)(t - r->y_t) / NS > c->stale_s)
        return "no measurement came in time (stale)";
    if (c->stuck_s > 0 && (double)(t - r->stuck_since) / NS > c->stuck_s)
        return "the measurement has not changed (stuck)";
    return NULL;
}

/* Go to the safe output and stay there. */
static void safe(struct regulator *r, int64_t t)
{
    r->mode = REG_SAFED;
    r->out = clamp(r, r->cfg->safe_output);
    r->hooks.write(r->hooks.ctx, r->out, t);
}

/* The wrong-sign suspicion, once per window against a reference point: since
 * the reference the output moved by a useful amount, the measurement moved
 * the other way by more than the tolerance, and the error grew. A clog looks
 * the same at first (the flow falls while the output rises), so a suspicion
 * alone trips nothing:
 *   - the measurement beyond the regulator's range on the wrong side (a flow
 *     running backwards while the pressure rises) at two checks in a row
 *     trips at once;
 *   - otherwise, once the suspicion has lasted inverted_s and the measurement
 *     has settled, it is tested by probe_step. */
static void check_inverted(struct regulator *r, int64_t t, double e)
{
    const struct rig_regulator *c = r->cfg;
    if (r->inv_t0 >= 0 && (double)(t - r->inv_check) / NS < INV_WINDOW_S)
        return;
    r->inv_check = t;
    double tol = c->tol_abs + c->tol_rel * fabs(r->sp);
    bool wrong = false, beyond = false, settled = fabs(r->y - r->inv_ylast) <= tol;
    double du = 0, dy = 0;
    r->inv_ylast = r->y;
    if (r->inv_t0 >= 0) {
        du = r->out - r->inv_u0;
        dy = r->y - r->inv_y0;
        wrong = fabs(du) > INV_MIN_DU_FRAC * (r->out_hi - r->out_lo) && c->sign * du * dy < 0 &&
                fabs(dy) > tol && fabs(e) > fabs(r->inv_e0);
        double m = tol + RANGE_MARGIN * (c->sp_max - c->sp_min);
        beyond = wrong && ((r->y < c->sp_min - m && c->sign * du > 0) ||
                           (r->y > c->sp_max + m && c->sign * du < 0));
    }
    if (!wrong) {
        r->inv_t0 = t;
        r->inv_u0 = r->out;
        r->inv_y0 = r->y;
        r->inv_e0 = e;
        r->inv_beyond = 0;
        r->probe_cleared = false;
        return;
    }
    r->inv_beyond = beyond ? r->inv_beyond + 1 : 0;
    if (r->inv_beyond >= 2) {
        safe(r, t);
        set_fault(r, RF_INVERTED, true, t, "%s: the plant answers with the wrong sign (output %+.3g "
                  "drove the measurement %+.3g, beyond the range %g .. %g): output set to %g and "
                  "held; check the plumbing or the regulator's plant_sign, then restart it",
                  c->name, du, dy, c->sp_min, c->sp_max, r->out);
        return;
    }
    if ((double)(t - r->inv_t0) / NS >= c->inverted_s && settled && !r->probe_cleared) {
        /* Test it: move the output by delta, then back, and see which way the measurement goes. */
        double delta = PROBE_FRAC * (r->out_hi - r->out_lo);
        r->probe_delta = r->out - delta >= r->out_lo ? -delta : delta;
        r->probe_u0 = r->out;
        r->probe_y0 = r->y;
        r->probe_phase = 1;
        r->probe_t = t;
        r->out = clamp(r, r->out + r->probe_delta);
        r->hooks.write(r->hooks.ctx, r->out, t);
    }
}

/* During the test of a suspicion: hold the probe, then the way back; two answers of the
 * wrong sign mean the plant is inverted (a bubble or a clog gives at most one). */
static void probe_step(struct regulator *r, int64_t t)
{
    const struct rig_regulator *c = r->cfg;
    if ((double)(t - r->probe_t) / NS < PROBE_S)
        return;
    double tol = c->tol_abs + c->tol_rel * fabs(r->sp);
    if (r->probe_phase == 1) {
        r->probe_y1 = r->y;
        r->probe_phase = 2;
        r->probe_t = t;
        r->out = r->probe_u0;
        r->hooks.write(r->hooks.ctx, r->out, t);
        return;
    }
    double dy1 = r->probe_y1 - r->probe_y0, dy2 = r->y - r->probe_y1;
    bool wrong1 = c->sign * r->probe_delta * dy1 < 0 && fabs(dy1) > tol;
    bool wrong2 = -c->sign * r->probe_delta * dy2 < 0 && fabs(dy2) > tol;
    r->probe_phase = 0;
    if (wrong1 && wrong2) {
        safe(r, t);
        set_fault(r, RF_INVERTED, true, t, "%s: the plant answers with the wrong sign (output "
                  "%+.3g gave measurement %+.3g, and back %+.3g): output set to %g and held; check "
                  "the plumbing or the regulator's plant_sign, then restart it", c->name,
                  r->probe_delta, dy1, dy2, r->out);
        return;
    }
    r->probe_cleared = true;    /* not inverted: no new test until the suspicion ends */
    align_only(r, t);           /* regulate on from the output in force */
}

/* Saturation and tolerance timers. */
static void check_timers(struct regulator *r, int64_t t, double e, bool saturated)
{
    const struct rig_regulator *c = r->cfg;
    if (saturated && r->sat_since < 0)
        r->sat_since = t;
    else if (!saturated)
        r->sat_since = -1;
    if (r->sat_since >= 0 && (double)(t - r->sat_since) / NS >= c->saturated_s)
        set_fault(r, RF_SATURATED, true, t, "%s: the output has been at its limit (%g) for %.0f s "
                  "and the setpoint is not reached: a clog, an empty reservoir or a setpoint "
                  "beyond reach", c->name, r->out, c->saturated_s);
    else if (r->sat_since < 0)
        set_fault(r, RF_SATURATED, false, t, "%s: the output is within its limits again", c->name);
    bool out_tol = fabs(e) > c->tol_abs + c->tol_rel * fabs(r->sp);
    if (out_tol && r->err_since < 0)
        r->err_since = t;
    else if (!out_tol)
        r->err_since = -1;
    if (r->err_since >= 0 && (double)(t - r->err_since) / NS >= c->lost_s)
        set_fault(r, RF_LOST, true, t, "%s: the measurement %.4g is %.3g away from the setpoint "
                  "%.4g for %.0f s (tolerance %g + %g %%)", c->name, r->y, e, r->sp, c->lost_s,
                  c->tol_abs, c->tol_rel * 100);
    else if (r->err_since < 0)
        set_fault(r, RF_LOST, false, t, "%s: back within tolerance", c->name);
}

/* The feedforward's settings in force (plan/rig.h), the dead time in ticks (fractional). */
static bool ff_params(const struct regulator *r, double *lag, double *resp, double *delay_ticks)
{
    double dead;
    bool on = rig_regulator_feedforward(r->cfg, lag, resp, &dead);
    *delay_ticks = fmin(dead * r->cfg->rate_hz, REG_FF_RING - 2);
    return on;
}

/* The model's value delay ticks ago (linear between ticks). */
static double ff_delayed(const struct regulator *r, double delay)
{
    int n = (int)delay;
    double frac = delay - n;
    double a = r->ff_ring[(r->ff_head + 2 * REG_FF_RING - n) % REG_FF_RING];
    double b = r->ff_ring[(r->ff_head + 2 * REG_FF_RING - n - 1) % REG_FF_RING];
    return a + (b - a) * frac;
}

/* The tolerance at the setpoint in force. */
static double tolerance(const struct regulator *r)
{
    return r->cfg->tol_abs + r->cfg->tol_rel * fabs(r->sp);
}

/* Learn the plant's gain from settled operating points (output, measurement); forget it when
 * the measurement leaves the setpoint by itself (a clog, a new chip: the plant changed). */
static void ff_learn(struct regulator *r, int64_t t, double dt, double lag)
{
    const struct rig_regulator *c = r->cfg;
    double tol = tolerance(r);
    double err = fabs(r->sp - r->ff_yf);
    if (r->sp != r->ff_sp || err > tol) {
        r->ff_settled_since = -1;
        if (r->ff_known && r->sp == r->ff_sp && err > FF_FORGET_TOLS * tol) {
            r->ff_known = false;
            r->ff_y0 = r->ff_u0 = r->ff_y1 = r->ff_u1 = NAN;
        }
        return;
    }
    if (r->ff_settled_since < 0) {
        r->ff_settled_since = t;
        r->ff_point = false;
        r->ff_ya = r->y;
        r->ff_ua = r->out;
        return;
    }
    double a = dt / (lag + dt);
    r->ff_ya += (r->y - r->ff_ya) * a;
    r->ff_ua += (r->out - r->ff_ua) * a;
    if ((double)(t - r->ff_settled_since) / NS < fmax(FF_SETTLE_LAGS * lag, FF_SETTLE_MIN_S))
        return;
    if (!r->ff_point) {
        /* A new settled spell: a point of its own if it lies apart from the last one. */
        if (!isnan(r->ff_y1) && fabs(r->ff_ya - r->ff_y1) > fmax(FF_APART * fmax(fabs(r->ff_ya),
                                                                                 fabs(r->ff_y1)), tol)) {
            r->ff_y0 = r->ff_y1;
            r->ff_u0 = r->ff_u1;
        }
        r->ff_point = true;
    }
    r->ff_y1 = r->ff_ya;
    r->ff_u1 = r->ff_ua;
    /* Two points give the slope; one alone, the ratio (an output of 0 gives no flow, which
     * holds for a pressure source up to the hydrostatic head). */
    double g = !isnan(r->ff_y0) ? (r->ff_u1 - r->ff_u0) / (r->ff_y1 - r->ff_y0)
             : c->sign > 0 && r->ff_y1 > tol ? r->ff_u1 / r->ff_y1 : NAN;
    r->ff_known = isfinite(g) && c->sign * g > 0;
    if (r->ff_known)
        r->ff_g = g;
}

/* Start a transient from the setpoint in force until now: the model sits there. */
static void ff_begin(struct regulator *r)
{
    r->ff_active = true;
    r->ff_ym = r->ff_base = r->ff_sp;
    r->ff_term = 0.0;
    r->ff_span = 0.0;
    r->ff_ticks = 0;
    for (int k = 0; k < REG_FF_RING; k++)
        r->ff_ring[k] = r->ff_ym;
    r->ff_head = 0;
    r->ff_settled_since = -1;
}

/* One control step. */
void regulator_tick(struct regulator *r, int64_t t_ns, struct reg_terms *terms)
{
    const struct rig_regulator *c = r->cfg;
    double dt = (double)(t_ns - r->last_tick) / NS;
    if (r->mode == REG_AUTO && (dt <= 0 || dt > 10.0 / c->rate_hz))
        dt = 1.0 / c->rate_hz;      /* the first tick, or one after a stall: a nominal step */
    r->last_tick = t_ns;
    r->last.sp = r->sp;
    r->last.y = r->y;
    if (r->mode != REG_AUTO || isnan(r->sp)) {
        r->last.out = r->out;
        if (terms)
            *terms = r->last;
        return;
    }
    const char *bad = measurement_problem(r, t_ns);
    if (bad != NULL) {
        /* Never integrate a measurement that cannot be believed: freeze and hold (or safe). */
        r->meas_bad = true;
        set_fault(r, RF_MEASUREMENT, true, t_ns, "%s: %s: integral frozen, output %s", c->name, bad,
                  c->on_loss == REG_LOSS_SAFE ? "set to the safe value" : "held");
        if (c->on_loss == REG_LOSS_SAFE) {
            r->out = clamp(r, c->safe_output);
            r->hooks.write(r->hooks.ctx, r->out, t_ns);
        }
        r->y_prev = NAN;
        r->last.out = r->out;
        if (terms)
            *terms = r->last;
        return;
    }
    if (r->probe_phase > 0) {
        probe_step(r, t_ns);
        r->last.out = r->out;
        if (terms)
            *terms = r->last;
        return;
    }
    if (r->meas_bad) {
        /* Back from a bad measurement: continue from the output in force. */
        r->meas_bad = false;
        set_fault(r, RF_MEASUREMENT, false, t_ns, "%s: the measurement is usable again", c->name);
        align_integral(r, t_ns);
    }
    double e = r->sp - r->y;
    double lag = 0, resp = 0;
    double nd = 0;
    if (!ff_params(r, &lag, &resp, &nd)) {
        r->ff_known = r->ff_active = false;
        r->ff_term = 0.0;
    } else if (!r->ff_active) {
        r->ff_yf = isnan(r->ff_yf) ? r->y : r->ff_yf + (r->y - r->ff_yf) * dt / (FF_FILTER_S + dt);
        ff_learn(r, t_ns, dt, lag);
        if (r->ff_known && r->sp != r->ff_sp)
            ff_begin(r);
    }
    /* What the feedback follows: the setpoint, or during a feedforward transient the
     * model's answer to the feedforward, as late as the plant's. */
    double ref = r->sp;
    if (r->ff_active) {
        r->ff_ring[r->ff_head] = r->ff_ym;
        ref = ff_delayed(r, nd);
        r->ff_head = (r->ff_head + 1) % REG_FF_RING;
        r->ff_span = fmax(r->ff_span, fabs(r->sp - r->ff_base));
        double ahead = r->y - ref, away = ref - r->ff_base;
        if (ahead * away > 0 && fabs(ahead) > FF_AHEAD * r->ff_span + tolerance(r)) {
            /* The plant runs ahead of its model: the gain is stale (the chip changed). Drop the
             * feedforward term (it stops driving) and the gain, and regulate on by feedback. */
            r->ff_active = r->ff_known = false;
            r->ff_term = 0.0;
            r->ff_y0 = r->ff_u0 = r->ff_y1 = r->ff_u1 = NAN;
            ref = r->sp;
        }
    }
    double p = c->sign * c->kp * (c->sp_weight * ref - r->y);
    double d = r->last.d;
    if (c->kd > 0 && !isnan(r->y_prev)) {
        /* Over the readings' own interval: a tick that saw no new reading keeps the term,
         * and a late tick does not shrink the slope (the sensor and the ticks run apart). */
        if (r->y_t > r->y_prev_t) {
            double raw = -c->sign * c->kd * (r->y - r->y_prev) / ((double)(r->y_t - r->y_prev_t) / NS);
            d += (raw - d) * dt / (c->d_filter_s + dt);
        }
    } else {
        d = 0.0;
    }
    if (isnan(r->y_prev) || r->y_t > r->y_prev_t) {
        r->y_prev = r->y;
        r->y_prev_t = r->y_t;
    }
    double i = r->last.i + c->sign * c->ki * (ref - r->y) * dt;
    double f = 0.0;
    if (r->ff_active) {
        /* The output that moves the model from ff_ym to where a first-order answer of time
         * constant resp would be one tick later: the plant's inverse (lag) on that answer. */
        double a = exp(-dt / lag);
        double want = r->sp + (r->ff_ym - r->sp) * exp(-dt / resp);
        f = r->ff_g * ((want - r->ff_ym * a) / (1.0 - a) - r->ff_base);
        if (r->ff_ticks++ <= nd + FF_WATCH_TICKS) {
            /* Until the plant's answer can be compared with the model's, no more than the
             * static change: a stale gain (the chip changed with the step) cannot overdrive. */
            double st = r->ff_g * (r->sp - r->ff_base);
            f = st > 0 ? fmin(fmax(f, 0.0), st) : fmax(fmin(f, 0.0), st);
        }
    }
    double v = p + i + d + f;
    double u = clamp(r, v);
    if (r->ff_active) {
        /* The feedforward gives way at the limits, and the model follows what was given. An
         * output at a limit integrates no error that asks for more of it (conditional
         * integration): the plant cannot follow faster, whatever the feedback asks. */
        if (u != v && (v - u) * (ref - r->y) * c->sign > 0)
            i = r->last.i;
        f = u - (p + i + d);
        double q = r->ff_base + f / r->ff_g;
        r->ff_ym = q + (r->ff_ym - q) * exp(-dt / lag);
        double end = FF_END_TOL * tolerance(r);
        if (r->sp == r->ff_sp && fabs(r->sp - r->ff_ym) <= end && fabs(r->sp - ref) <= end) {
            i += f;             /* the transient is over: the integral takes the term over */
            f = 0.0;
            r->ff_active = false;
            r->ff_yf = r->y;
        }
        v = u;
    } else if (c->ki > 0) {
        double tt = c->kp > 0 ? fmax(c->kp / c->ki, dt) : dt;
        i += (u - v) * dt / tt;
    }
    r->ff_term = f;
    r->ff_sp = r->sp;
    r->out = u;
    r->last = (struct reg_terms){ r->sp, r->y, u, p, i, d, f };
    r->hooks.write(r->hooks.ctx, u, t_ns);
    check_timers(r, t_ns, e, u != v);
    check_inverted(r, t_ns, e);
    if (terms)
        *terms = r->last;
}
