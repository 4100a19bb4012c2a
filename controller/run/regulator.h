/*
 * A regulator: the loop that moves an actuator (a pressure controller's
 * channel) so that a measured channel (a flow sensor) follows a setpoint.
 * Pure: state plus calls with the time, talking through hooks; it knows
 * nothing of buses, runs, files or the daemon, so perfused and perfusectl
 * simulate run the same law.
 *
 * Control law, every 1/rate s (t in ns, dt the tick's length in s):
 *   e = sp - y                                      (y: the latest measurement)
 *   P = s * kp * (b * sp - y)                       (b: setpoint weight, s: plant sign)
 *   D = filtered -s * kd * dy/dt, filter tau d_filter (derivative on the
 *       measurement: a setpoint step gives no kick)
 *   I += s * ki * e * dt, then back-calculation: u = clamp(P + I + D) to the
 *       output limits, and I += (u - (P + I + D)) * dt / Tt with Tt = kp/ki
 *       (at least dt), so the integral never winds up beyond what the
 *       output can do
 * Bumpless transfer: on start, resume and manual -> auto the integral is set
 * so that the first output equals the output in force.
 *
 * Setpoint feedforward (two degrees of freedom; rig 'feedforward', on unless
 * off): the feedback above is tuned for robustness (a chip of a tenth of the
 * resistance must not oscillate), which leaves it too slow for a large step
 * down to settle within 5 % of the new setpoint; the feedforward answers
 * setpoint changes through a model of the plant instead:
 *   - the plant's gain g (output per measured unit) is learned while settled
 *     (the filtered measurement within tolerance for 3 lags, at least 1 s):
 *     the slope between the last two settled points when they lie 20 % apart,
 *     else the ratio output / measurement (an output of 0 gives no flow; only
 *     for plant_sign positive). Nothing is learned before the first settled
 *     point: the first step after a start is feedback alone. The gain is
 *     forgotten on start, resume, manual -> auto, a bad measurement, a sign
 *     test, and when the measurement leaves the setpoint by itself by more than
 *     twice the tolerance (a clog, a new chip: the plant changed);
 *   - on a setpoint change with a gain known, a transient begins: a model of
 *     the plant (gain g, lag `lag`) is driven so that it answers as a first
 *     order of time constant `response` would, by the plant's inverse: the
 *     term FF = g (q - base), q the steady flow that moves the model there in
 *     one tick. The feedforward gives way at the output limits (the model
 *     follows what was given), so a large step is taken at the limit and then
 *     landed. The feedback acts on the model's answer `dead_time` later
 *     instead of the setpoint: with the model right it has nothing to do, and
 *     it integrates nothing that an output at its limit could not follow.
 *     When the model and its delayed answer are within 5 % of a tolerance of
 *     a setpoint that has stopped moving, the integral takes FF over (no
 *     bump) and the transient ends;
 *   - a stale gain (the chip changed with the step) cannot overdrive: until
 *     the plant's answer can be compared with the model's (dead_time + 2
 *     ticks) FF is no more than the static change g (sp - base); when the
 *     measurement runs ahead of the model by more than 10 % of the setpoint's
 *     change plus the tolerance, FF and the gain are dropped and the feedback
 *     carries on alone.
 *
 * A measurement that is NaN, older than stale_s or stuck (the same value for
 * stuck_s) freezes the integral and holds the output (or safes it, as the rig
 * says); it is never integrated. Faults, each raised once and cleared when
 * the cause goes:
 *   regulation_inverted   the output moved one way and the measurement the
 *                         other, with the error growing, and either the
 *                         measurement left the range on the wrong side (two
 *                         checks 1 s apart), or, after inverted_s and once it
 *                         settled, a test (the output moved by 5 % of its
 *                         range for 1 s, then back) answered twice with the
 *                         wrong sign: the plant's sign is wrong. The output goes to the safe
 *                         value and stays there (latched) until restarted.
 *                         A clog or a bubble answers the test at most once.
 *   regulation_saturated  the output at a limit for saturated_s (a clog, an
 *                         empty reservoir)
 *   regulation_lost       the error beyond tolerance for lost_s
 *   regulation_measurement  the measurement is unusable (NaN, stale, stuck)
 *
 * Loop thread only. The struct is the caller's; nothing to free.
 */
#ifndef PERFUSE_REGULATOR_H
#define PERFUSE_REGULATOR_H

#include <stdbool.h>
#include <stdint.h>

#include "plan/rig.h"

enum reg_mode {
    REG_IDLE,       /* not started: the output is not touched */
    REG_AUTO,       /* regulating */
    REG_HOLD,       /* paused: the output held, nothing integrated */
    REG_MANUAL,     /* the output set by hand */
    REG_SAFED,      /* the output at the safe value after a fault (latched) */
};

enum reg_fault { RF_INVERTED, RF_SATURATED, RF_LOST, RF_MEASUREMENT, RF_KINDS };

struct regulator_hooks {
    void *ctx;
    /* Command the actuator to out (actuator unit). Required. */
    void (*write)(void *ctx, double out, int64_t t_ns);
    /* A fault began (active) or ended; msg says what and what to do. Optional. */
    void (*fault)(void *ctx, enum reg_fault f, bool active, const char *msg, int64_t t_ns);
};

/* What one tick computed, for the run file and status (ff: the feedforward term, 0 outside a
 * transient; out = p + i + d + ff within the limits). */
struct reg_terms {
    double sp, y, out, p, i, d, ff;
};

/* The feedforward's model delay line, in ticks. */
#define REG_FF_RING 64

struct regulator {
    const struct rig_regulator *cfg;    /* borrowed; must outlive the regulator */
    double out_lo, out_hi;              /* the rig's limits within the actuator's */
    struct regulator_hooks hooks;
    enum reg_mode mode;
    double sp;                          /* NaN until set */
    double y;                           /* latest measurement; NaN if none */
    int64_t y_t;                        /* when it came */
    double y_prev;                      /* the measurement the derivative last used */
    int64_t y_prev_t;                   /* when it came */
    double stuck_v;
    int64_t stuck_since;
    double out;                         /* the output in force (NaN: unknown) */
    struct reg_terms last;
    int64_t last_tick;
    bool meas_bad;
    /* fault detection */
    int64_t sat_since, err_since;       /* -1: not now */
    int64_t inv_t0;                     /* the wrong-sign test's reference point (-1: none) */
    double inv_u0, inv_y0, inv_e0;
    int64_t inv_check;                  /* when the test last looked */
    double inv_ylast;                   /* the measurement then */
    int inv_beyond;                     /* checks in a row beyond the range on the wrong side */
    int probe_phase;                    /* 0: none; 1: output moved; 2: moved back */
    int64_t probe_t;
    double probe_u0, probe_y0, probe_y1, probe_delta;
    bool probe_cleared;                 /* the test found no inversion: none again until the suspicion ends */
    /* setpoint feedforward: the plant's gain learned from settled operating points */
    bool ff_known;                      /* a gain learned since the last start or disturbance */
    double ff_g;                        /* output per measured unit */
    double ff_y0, ff_u0, ff_y1, ff_u1;  /* the last two settled points (NaN: none) */
    int64_t ff_settled_since;           /* -1: not settled */
    bool ff_point;                      /* this settled spell has given its point */
    double ff_yf, ff_ya, ff_ua;         /* the filtered measurement; averages while settled */
    double ff_sp;                       /* the setpoint at the last tick */
    bool ff_active;                     /* a setpoint transient driven by the feedforward */
    double ff_ym, ff_base, ff_term;     /* the model's measurement, where the transient left, the term */
    double ff_span;                     /* the largest setpoint change from ff_base in this transient */
    int ff_ticks;                       /* ticks since the transient began */
    double ff_ring[REG_FF_RING];        /* the model's past values, for its dead time */
    int ff_head;
    bool active[RF_KINDS];
};

/* Set up with the rig's entry and the actuator channel's own limits (NaN: none). */
void regulator_init(struct regulator *r, const struct rig_regulator *cfg, double dev_min,
                    double dev_max, const struct regulator_hooks *hooks);
/* Start regulating at t from the output in force now (bumpless); NaN: the low limit. */
void regulator_start(struct regulator *r, double out_now, int64_t t_ns);
/* Stop: the output is left where it is (the caller applies a safe state if it wants one). */
void regulator_stop(struct regulator *r);
/* A new setpoint (measured unit). */
void regulator_set_setpoint(struct regulator *r, double sp);
/* A measurement (NaN allowed: an unusable one) at t. */
void regulator_measure(struct regulator *r, double y, int64_t t_ns);
/* Pause: hold the output, integrate nothing. Resume: bumpless from the held output. */
void regulator_pause(struct regulator *r);
void regulator_resume(struct regulator *r, int64_t t_ns);
/* Manual: the output set by hand. Auto: back to regulating, bumpless from it. */
void regulator_manual(struct regulator *r, double out, int64_t t_ns);
void regulator_auto(struct regulator *r, int64_t t_ns);
/* One control step at t (the caller ticks at cfg->rate_hz). Fills *terms if not NULL. */
void regulator_tick(struct regulator *r, int64_t t_ns, struct reg_terms *terms);
/* Whether the measurement is within tolerance of the setpoint now. */
bool regulator_in_tolerance(const struct regulator *r);
/* "regulation_inverted", ... */
const char *regulator_fault_code(enum reg_fault f);
/* "auto", "hold", ... */
const char *regulator_mode_name(enum reg_mode m);

#endif
