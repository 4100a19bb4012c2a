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
    at->cycles = 4;
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

/* Identify the plant from the relay figures and suggest gains. */
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
    double wu = 2.0 * M_PI / r->Pu, kk = fabs(r->K) * r->Ku;
    if (kk <= 1.0)
        return fail(at, "the plant's gain and its relay answer disagree (|K| Ku <= 1): is it "
                        "first order with dead time?");
    r->tau = sqrt(kk * kk - 1.0) / wu;
    /* The relay switches at the first sample past the threshold, on average half a sample
     * after the crossing: the loop's delay is the plant's plus that half sample. */
    r->h = at->h_n > 0 ? at->h_sum / at->h_n : 0.0;
    double l_loop = (M_PI - asin(r->eps / r->a) - atan(wu * r->tau)) / wu;
    r->L = l_loop - 0.5 * r->h;
    if (!(r->L > 1e-3))
        r->L = 1e-3;
    /* The regulator, sampling at the same rate, holds its output for a sample: the same
     * half sample again, so the rule works on the loop's delay L + h / 2. */
    l_loop = r->L + 0.5 * r->h;
    double lam_l = 36.0 * l_loop / M_PI;
    r->kp = r->tau / (fabs(r->K) * lam_l);
    r->ki = r->kp / r->tau;
    /* A derivative of time L' / 2 (filtered over as long) gives back the phase the delay
     * takes near the crossover of a tenfold gain, where the margin is thinnest. */
    r->kd = r->kp * 0.5 * l_loop;
    r->d_filter = 0.5 * l_loop;
    r->rule = "lambda-10x: PID, Ti = tau, Td = L' / 2 (filter L' / 2), lambda + L' = 36 L' / pi "
              "with L' = L + h / 2 the loop's delay (a tenfold plant gain keeps its phase margin)";
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
        }
        return at->u;
    case AT_STEP:
        accumulate(at, y, t_ns);
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
