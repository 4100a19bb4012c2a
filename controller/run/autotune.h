/*
 * Autotune: a relay-feedback test (Astrom and Hagglund, 1984) that
 * identifies the plant of a regulator and suggests gains. Pure: feed it the
 * measurement with the time, apply the output it returns; it knows nothing of
 * buses or runs, so perfused (perfusectl tune) and perfusectl simulate --tune
 * run the same test.
 *
 * The test, within the output limits, sampled every h (the regulator's tick):
 *   1. hold the output u0 for settle_s: the baseline y0 and the noise;
 *   2. hold u0 + step for settle_s: the step's answer is kept;
 *   3. a relay with hysteresis around the middle: u = um +/- d as the
 *      measurement is below or above ym (+/- eps, three times the noise); after
 *      a cycle to settle, `cycles` full cycles give the ultimate period Pu and
 *      the amplitude a, so Ku = 4 d / (pi sqrt(a^2 - eps^2)).
 * The plant, taken as K exp(-L s) / (1 + tau s):
 *   - K and tau from the step's answer, by areas (Astrom and Hagglund): the area
 *     between the answer's end value dy and the answer is dy (tau + L), the area
 *     under the answer up to tau + L is dy tau / e; dy, averaged over the last
 *     second of the step, is corrected for what the lag still lacked then;
 *   - L from the relay, where robustness is decided (near wu = 2 pi / Pu):
 *     L = (pi - asin(eps / a) - atan(wu tau)) / wu - h / 2, the half sample
 *     being the relay's own lateness in switching (it sees a crossing at the
 *     next sample), not the plant's.
 *
 * Suggested gains (rule "lambda-10x"): with L' = L + h / 2 the loop's delay
 * (the regulator's output held for a sample), a PID with Ti = tau, Td = 0.6 L'
 * (derivative filter L' / 3) and lambda + L' = 36 L' / pi, which keeps a 40
 * degree phase margin when the plant's gain rises tenfold (a chip whose
 * resistance drops tenfold) before the derivative's lead, which adds to it:
 *   kp = tau / (|K| (lambda + L')), ki = kp / tau, kd = 0.6 kp L'.
 * On the simulated chip the first step from rest (feedback alone, the
 * feedforward having learned nothing yet) then settles within 3 (tau + L).
 *
 * Loop thread only; the struct is the caller's, nothing to free.
 */
#ifndef PERFUSE_AUTOTUNE_H
#define PERFUSE_AUTOTUNE_H

#include <stdbool.h>
#include <stdint.h>

enum at_phase { AT_BASELINE, AT_STEP, AT_RELAY, AT_DONE, AT_FAILED };

/* The step's answer is kept at most this many samples (thinned if sampled faster). */
#define AT_STEP_MAX 1024

struct autotune_result {
    double K, tau, L;           /* plant: measured unit per output unit, s, s */
    double Ku, Pu, a, eps;      /* relay: ultimate gain and period, amplitude, hysteresis */
    double h;                   /* the test's sampling period, s */
    double kp, ki, kd;          /* suggested gains */
    double d_filter;            /* suggested derivative filter, s */
    const char *rule;
};

struct autotune {
    /* configuration */
    double u_lo, u_hi;          /* output limits */
    double u0, step, d;         /* baseline output, step, relay amplitude */
    double settle_s;
    int cycles;
    int64_t timeout_ns;
    /* state */
    enum at_phase phase;
    int64_t t_start, t_phase;
    double sum, sum2;
    int n;
    double y0, y1, sigma, ym, um;
    double u;                   /* the output in force */
    int relay;                  /* +1 or -1 */
    int switches;
    int64_t t_switch[64];
    double ymax, ymin, amp_sum;
    double st[AT_STEP_MAX], sy[AT_STEP_MAX];    /* the step's answer: time since, y - y0 */
    int sn;
    int64_t t_prev;             /* the last sample's time (0: none yet) */
    double h_sum;               /* sum and count of the sampling intervals */
    int h_n;
    int amp_n;
    char why[200];              /* why it failed */
    struct autotune_result res;
};

/* Start at t from output u0 within [u_lo, u_hi]; step and d in output units (> 0; the
 * step goes up unless that leaves the limits). Returns 0 or -EINVAL with at->why. */
int autotune_start(struct autotune *at, double u0, double step, double d, double u_lo, double u_hi,
                   int64_t t_ns);
/* Feed a measurement at t; returns the output to apply now. NaN measurements fail the test. */
double autotune_step(struct autotune *at, double y, int64_t t_ns);
/* Whether the test is over (done or failed). */
bool autotune_over(const struct autotune *at);

#endif
