/*
 * Desired and confirmed state of every actuator channel (DESIGN.md section 9).
 *
 * For each writable channel perfuse keeps what it wants the output to be (the
 * desired value, with its origin: the protocol, a manual set, or the safe
 * state) apart from what the device has confirmed (a write it acknowledged,
 * or a read-back that agrees, where the driver has one). A desired value that
 * is not confirmed is sent again with back-off (0.2 s doubling to 5 s) until
 * it is (a safe state: doubling to 1 s). When the device comes back (link up, device answers again), the
 * desired value is asserted again if the driver allows it (driver_channel's
 * reassert); otherwise only a safe value is re-sent, and any other waits for
 * a read-back that agrees or for a new command.
 *
 * The safe state is latched: a safe desired value is kept, and retried, until
 * it is released (a new run, a manual set); a protocol's value does not
 * replace it meanwhile.
 *
 * Cost: a retry to a device that does not answer costs its bus the write's
 * time-outs (drivers/bus.c tries a write three times), at most once per
 * back-off interval, so at the cap once per 5 s (a safe state: once a
 * second). A faulted device whose channel has a read-back is not retried at
 * all: the bus probes it by sampling, and it is sent its value when it answers.
 *
 * This module does no I/O and knows no bus: the owner tells it what happened
 * (writes finished, samples, a device lost or back) and it asks the owner to
 * send through hooks. Loop thread only (or a test).
 */
#ifndef PERFUSE_ACTUATORS_H
#define PERFUSE_ACTUATORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum act_origin { ACT_NONE, ACT_PROTOCOL, ACT_MANUAL, ACT_SAFE };

#define ACT_BACKOFF_MIN_NS 200000000LL      /* first retry after 0.2 s */
#define ACT_BACKOFF_MAX_NS 5000000000LL     /* doubling up to 5 s */
#define ACT_SAFE_BACKOFF_MAX_NS 1000000000LL /* a safe state: up to 1 s */
#define ACT_READBACK_CONTRADICTS 3          /* read-backs in a row that undo a confirmation */
#define ACT_CONTRA_MAX_NS 60000000000LL     /* a device that keeps undoing it: told again at most once a minute */
#define ACT_CONTRA_RESET_NS 600000000000LL  /* ... until it has kept a value for 10 min */

/* One writable channel. Read it through actuators_get; change it through the functions below. */
struct act_chan {
    bool on;                    /* a writable channel (set by actuators_config) */
    /* What the driver declares (driver_channel). */
    bool readback, reassert;
    bool has_safe_action;       /* the device has its own safe action (driver safe_state) */
    double safe_value, tol;
    /* Desired. */
    enum act_origin origin;     /* ACT_NONE: nothing wanted yet */
    double desired;             /* canonical unit */
    bool device_safe;           /* desired is the device's own safe action (value: safe_value) */
    bool latched;               /* a safe state, kept until released */
    int64_t desired_ns;         /* when it was set */
    /* Confirmed. */
    bool confirmed;             /* the desired value is confirmed */
    double value;               /* the value the device last confirmed; NaN: unknown */
    int64_t confirmed_ns;       /* when value was confirmed (0: never) */
    const char *how;            /* "write" (acknowledged) or "read-back" */
    int64_t unconfirmed_ns;     /* since when desired is unconfirmed; 0 while confirmed */
    char why[160];              /* why it is unconfirmed (last error), "" if not known */
    /* Reconciliation. */
    bool reachable;             /* the device's link is up and it is not faulted */
    bool probed;                /* out of reach, but the bus probes it by itself (faulted, link up) */
    bool held;                  /* not re-sent after a reconnect: waits for a read-back or a command */
    bool give_up;               /* the device refused the value as invalid: not retried */
    bool in_flight;             /* a write of desired is queued on the bus */
    int64_t next_try_ns;        /* 0: no retry scheduled */
    int64_t backoff_ns;
    bool overdue;               /* unconfirmed past its tolerance, reported once */
    bool reported;              /* an overdue report is out and not yet taken back */
    int64_t safe_since_ns;      /* when the safe state became the desired state: its
                                 * own tolerance counts from here */
    int contradictions;         /* read-backs in a row that disagree with a confirmed value */
    int64_t contra_ns;          /* when a read-back last took a confirmation back (0: never) */
    int64_t contra_backoff_ns;  /* delay before the value is sent again after that */
};

struct act_hooks {
    void *ctx;
    /* Send desired to channel ch: a value, or the device's own safe action
     * (device_safe). safety: the safe state's priority. Returns 0 or a negative
     * errno (queue full, ...; then it is retried like a failed write). */
    int (*send)(void *ctx, int ch, double value, bool device_safe, bool safety);
    /* ch's confirmed value or its confirmation changed (for events and the run file). */
    void (*changed)(void *ctx, int ch, const struct act_chan *c, int64_t now);
    /* ch has been unconfirmed longer than its tolerance (once per episode), or
     * is confirmed again after that (overdue false). */
    void (*overdue)(void *ctx, int ch, const struct act_chan *c, bool overdue, int64_t now);
};

struct actuators {
    struct act_chan *c;         /* one per rig channel; c[i].on for writable ones */
    size_t n;
    int64_t tol_ns;             /* a setpoint may stay unconfirmed this long */
    int64_t safe_tol_ns;        /* the safe state may stay unconfirmed this long */
    struct act_hooks hooks;
};

/* Set up n channels (all off) with the tolerances; returns 0 or -ENOMEM. Free with actuators_free. */
int actuators_init(struct actuators *a, size_t n, int64_t tol_ns, int64_t safe_tol_ns,
                   const struct act_hooks *hooks);
void actuators_free(struct actuators *a);
/* Declare ch writable, with its driver's rules (see driver_channel); tol 0 picks the default. */
void actuators_config(struct actuators *a, int ch, bool readback, bool reassert,
                      bool has_safe_action, double safe_value, double tol);

/* Want ch at value (origin protocol or manual) and send it now. Returns 0,
 * -EINVAL (not a writable channel), -EPERM (ch holds a latched safe state:
 * release it first) or the send's error (the value stays desired and is
 * retried). */
int actuators_set_desired(struct actuators *a, int ch, double value, enum act_origin origin,
                          int64_t now);
/* Latch ch's safe state: value, or the device's own safe action (device_safe),
 * and send it now. Returns 0, -EINVAL, or the send's error (retried). */
int actuators_latch_safe(struct actuators *a, int ch, double value, bool device_safe, int64_t now);
/* Release ch's latched safe state (the value stays desired until replaced). */
void actuators_release(struct actuators *a, int ch);

/* A write of ch finished (err 0 or negative errno, msg why); device_safe for
 * the device's own safe action. */
void actuators_on_write(struct actuators *a, int ch, double value, bool device_safe, int err,
                        const char *msg, int64_t now);
/* A good read of ch (value in canonical unit): a read-back that agrees confirms
 * the desired value; ACT_READBACK_CONTRADICTS in a row that disagree with a
 * confirmed one make it unconfirmed, and it is sent again (as after a reconnect). */
void actuators_on_sample(struct actuators *a, int ch, double value, int64_t now);
/* ch's device cannot be reached: what it does is unknown. probed: the bus
 * probes it by itself (a faulted device on a link that is up), so a channel
 * with a read-back is not retried until actuators_device_back; false for a
 * link that is down, where retries also reopen it. */
void actuators_device_lost(struct actuators *a, int ch, bool probed, const char *why, int64_t now);
/* ch's device answers again: assert desired again, as the driver allows. */
void actuators_device_back(struct actuators *a, int ch, int64_t now);

/* Send retries that are due and report channels past their tolerance.
 * Returns the clock time of the next thing to do (INT64_MAX: nothing). */
int64_t actuators_tick(struct actuators *a, int64_t now);

/* ch's state, or NULL if ch is not writable. */
const struct act_chan *actuators_get(const struct actuators *a, int ch);
/* Whether any channel holds a latched safe state. */
bool actuators_any_latched(const struct actuators *a);
/* Whether every latched safe state is confirmed (true when none is latched). */
bool actuators_safe_confirmed(const struct actuators *a);
/* The name of an origin: "protocol", "manual", "safe" or "none". */
const char *act_origin_name(enum act_origin o);

#endif
