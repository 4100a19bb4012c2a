/* The relay-feedback autotune (autotune.h). */
#include "autotune.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define NS 1e9
#define SETTLE_CYCLES 1

/* Start the test. */
int autotune_start(struct autotune *at, double u0, double step, double d, double u_lo, double u_hi,
                   int64_t t_ns)
{
    memset(at, 0, sizeof *at);
    at->u_lo = u_lo;
    at->u_hi = u_hi;
    at->settle_s = 3.0;
    at->cycles = 20;
    at->timeout_ns = (int64_t)(120 * NS);
    at->u0 = fmin(u_hi, fmax(u_lo, u0));
    at->step = at->u0 + step <= u_hi ? step : -step;
    at->d = d;
    at->phase = AT_BASELINE;
    at->t_start = at->t_phase = t_ns;
    at->u = at->u0;
    if (!(step > 0) || !(d > 0) || at->u0 + at->step < u_lo || at->u0 + at->step > u_hi) {
        snprintf(at->why, sizeof at->why, "the step of %g does not fit the output limits %g .. %g "
                 "from %g", step, u_lo, u_hi, at->u0);
        at->phase = AT_FAILED;
        return -EINVAL;
    }
    return 0;
}

bool autotune_over(const struct autotune *at)
{
    return at->phase == AT_DONE || at->phase == AT_FAILED;
}

/* Fail with a reason; the output goes back to where it was. */
static double fail(struct autotune *at, const char *why)
{
    snprintf(at->why, sizeof at->why, "%s", why);
    at->phase = AT_FAILED;
    at->u = at->u0;
    return at->u;
}

/* Average the last second of a hold phase. */
static void accumulate(struct autotune *at, double y, int64_t t)
{
    if ((double)(t - at->t_phase) / NS >= at->settle_s - 1.0) {
        at->sum += y;
        at->sum2 += y * y;
        at->n++;
    }
}

/* The step's answer integrated from 0 to t (trapezoids, the last one cut at t). */
static double step_area(const struct autotune *at, double t)
{
    double a = 0;
    for (int k = 1; k < at->sn; k++) {
        double t0 = at->st[k - 1], t1 = at->st[k], y0 = at->sy[k - 1], y1 = at->sy[k];
        if (t0 >= t)
            break;
        if (t1 > t) {
            y1 = y0 + (y1 - y0) * (t - t0) / (t1 - t0);
            t1 = t;
        }
        a += 0.5 * (y0 + y1) * (t1 - t0);
    }
    return a;
}

/* Time constant and dead time from the step's answer by areas (Astrom and Hagglund): for
 * K exp(-L s) / (1 + tau s) and a step of answer dy, the area between dy and the answer is
 * dy (tau + L), and the area under the answer up to tau + L is dy tau / e. Integrals, so
 * the noise averages out, and the step starts on a sample: no sampling delay. */
static void step_identify(struct autotune *at, double *dy, double *tau, double *l)
{
    double t_end = at->st[at->sn - 1], dy_avg = *dy;
    for (int k = 0; k < 4; k++) {
        double tar = t_end - step_area(at, t_end) / *dy;
        *tau = M_E * step_area(at, tar) / *dy;
        *l = tar - *tau;
        if (!(*tau > 0))
            return;
        /* The answer still lacked dy exp(-(t - L) / tau) over the last second, where dy was
         * averaged: correct dy for it, and again with the better figures. */
        double w = at->settle_s - 1.0;
        double lack = *tau * (exp(-(w - *l) / *tau) - exp(-(at->settle_s - *l) / *tau));
        *dy = dy_avg / (1.0 - fmin(lack, 0.5));
    }
}

/* Identify the plant from the step and the relay, and suggest gains. */
static double identify(struct autotune *at)
{
    struct autotune_result *r = &at->res;
    int first = 2 * SETTLE_CYCLES;
    int last = at->switches - 1;
    r->Pu = 2.0 * (double)(at->t_switch[last] - at->t_switch[first]) / NS / (last - first);
    r->a = at->amp_sum / at->amp_n;
    r->eps = 3.0 * at->sigma;
    if (r->a <= r->eps)
        return fail(at, "the relay's oscillation is no larger than the noise: give a larger relay amplitude");
    r->Ku = 4.0 * at->d / (M_PI * sqrt(r->a * r->a - r->eps * r->eps));
    r->h = at->h_n > 0 ? at->h_sum / at->h_n : 0.0;
    double dy = at->y1 - at->y0;
    step_identify(at, &dy, &r->tau, &r->L);
    if (!(r->tau > 0) || !isfinite(r->tau))
        return fail(at, "the step's answer is not that of a lag (no time constant): is the plant "
                        "first order with dead time, and the measurement steady?");
    r->K = dy / at->step;
    /* The dead time from the relay, where it matters (near the ultimate frequency wu): there
     * the loop's phase is -pi + asin(eps / a) (the hysteresis), the lag takes atan(wu tau) of
     * it and the delay the rest. The relay switches at the first sample past the threshold,
     * on average half a sample after the crossing: that half sample is the test's, not the
     * plant's. */
    double wu = 2.0 * M_PI / r->Pu;
    r->L = (M_PI - asin(r->eps / r->a) - atan(wu * r->tau)) / wu - 0.5 * r->h;
    if (!(r->L > 1e-3))
        r->L = 1e-3;
    /* The regulator, sampling at the same rate, holds its output for a sample: half a sample
     * of delay, so the rule works on the loop's delay L' = L + h / 2. */
    double l_loop = r->L + 0.5 * r->h;
    double lam_l = 36.0 * l_loop / M_PI;
    r->kp = r->tau / (fabs(r->K) * lam_l);
    r->ki = r->kp / r->tau;
    /* A derivative of time 0.6 L' (filtered over L' / 3) gives back some of the phase the
     * delay takes near the crossover of a tenfold gain, where the margin is thinnest. */
    r->kd = r->kp * 0.6 * l_loop;
    r->d_filter = l_loop / 3.0;
    r->rule = "lambda-10x: PID, Ti = tau, Td = 0.6 L' (filter L' / 3), lambda + L' = 36 L' / pi "
              "with L' = L + h / 2 the loop's delay (40 degree phase margin kept for a tenfold "
              "plant gain)";
    at->phase = AT_DONE;
    at->u = at->u0;
    return at->u;
}

/* One relay sample: switch with hysteresis, track the half-cycle's peak. */
static double relay(struct autotune *at, double y, int64_t t)
{
    double eps = 3.0 * at->sigma;
    int s = at->res.K > 0 ? 1 : -1;
    at->ymax = fmax(at->ymax, y);
    at->ymin = fmin(at->ymin, y);
    int want = at->relay;
    if (s * (y - at->ym) > eps)
        want = -1;
    else if (s * (y - at->ym) < -eps)
        want = 1;
    if (want != at->relay) {
        if (at->switches >= 2 * SETTLE_CYCLES + 1) {
            /* A half-cycle ended. The peak comes after a switch (the plant lags): the
             * half-cycle that ends by switching up held the maximum, and the other the minimum. */
            at->amp_sum += want > 0 ? fmax(0.0, at->ymax - at->ym) : fmax(0.0, at->ym - at->ymin);
            at->amp_n++;
        }
        if (at->switches < 64)
            at->t_switch[at->switches] = t;
        at->switches++;
        at->relay = want;
        at->ymax = at->ymin = y;
        if (at->switches >= 2 * (SETTLE_CYCLES + at->cycles) + 1)
            return identify(at);
    }
    at->u = fmin(at->u_hi, fmax(at->u_lo, at->um + at->relay * at->d));
    return at->u;
}

/* Feed a measurement; returns the output. */
double autotune_step(struct autotune *at, double y, int64_t t_ns)
{
    if (autotune_over(at))
        return at->u;
    if (isnan(y))
        return fail(at, "the measurement was lost (NaN) during the test");
    if (at->t_prev > 0 && t_ns > at->t_prev) {
        at->h_sum += (double)(t_ns - at->t_prev) / NS;
        at->h_n++;
    }
    at->t_prev = t_ns;
    if (t_ns - at->t_start > at->timeout_ns)
        return fail(at, "no steady oscillation within 120 s: the relay amplitude may be too small");
    double since = (double)(t_ns - at->t_phase) / NS;
    switch (at->phase) {
    case AT_BASELINE:
        accumulate(at, y, t_ns);
        if (since >= at->settle_s) {
            at->y0 = at->sum / at->n;
            at->sigma = sqrt(fmax(0.0, at->sum2 / at->n - at->y0 * at->y0));
            at->sum = at->sum2 = 0;
            at->n = 0;
            at->phase = AT_STEP;
            at->t_phase = t_ns;
            at->u = at->u0 + at->step;
            at->st[0] = at->sy[0] = 0;      /* the step starts now, from the baseline */
            at->sn = 1;
        }
        return at->u;
    case AT_STEP:
        accumulate(at, y, t_ns);
        if (at->sn < AT_STEP_MAX && since - at->st[at->sn - 1] >= at->settle_s / AT_STEP_MAX) {
            at->st[at->sn] = since;
            at->sy[at->sn++] = y - at->y0;
        }
        if (since >= at->settle_s) {
            at->y1 = at->sum / at->n;
            at->res.K = (at->y1 - at->y0) / at->step;
            if (fabs(at->y1 - at->y0) < 6.0 * at->sigma + 1e-9)
                return fail(at, "the step moved the measurement no more than its noise: the plant "
                                "does not answer (a closed valve, an empty reservoir?) or the step "
                                "is too small");
            at->ym = 0.5 * (at->y0 + at->y1);
            at->um = at->u0 + 0.5 * at->step;
            at->phase = AT_RELAY;
            at->t_phase = t_ns;
            at->relay = (at->res.K > 0) == (y < at->ym) ? 1 : -1;
            at->ymax = at->ymin = y;
        }
        return at->u;
    case AT_RELAY:
        return relay(at, y, t_ns);
    default:
        return at->u;
    }
}
