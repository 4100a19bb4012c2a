/*
 * The daemon's state, owned by the loop thread: the rig, its buses, the
 * latest value of every channel, the current run and the control server.
 */
#ifndef PERFUSE_DAEMON_H
#define PERFUSE_DAEMON_H

#include "base/loopwake.h"
#include "rigevents.h"
#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "run/actuators.h"
#include "run/alarms.h"
#include "alerts.h"
#include "history.h"
#include "drivers/bus.h"
#include "run/clock.h"
#include "run/delivery.h"
#include "run/interlock.h"
#include "journal.h"
#include "run/latch.h"
#include "latchstore.h"
#include "run/plausibility.h"
#include "run/regloop.h"
#include "run_host.h"
#include "sdnotify.h"
#include "simchild.h"
#include "base/latency.h"
#include "plan/claims.h"
#include "plan/plan.h"
#include "plan/rig.h"

struct run;
struct control;
struct daemon;

/* How many runs the daemon holds at once (active, or ended and kept for status). */
#define DAEMON_MAX_RUNS 16

/* One place for a run: the run, what it claims, its name and its journal.
 * A slot keeps its run after the run has ended, for status, events and
 * wait, until a new run needs the slot. */
struct run_slot {
    struct daemon *d;
    size_t index;
    struct run *run;            /* NULL: the slot is free */
    struct run_host host;       /* the daemon's host with ctx = this slot and its own journal */
    struct claims claims;       /* what the run holds while it is going */
    char name[CLAIMS_MAX_NAME + 1];
    uint64_t started;           /* order of the runs' starts (0: none yet) */
    bool resuming;              /* at start-up: its journal's run is about to continue and
                                 * already holds its claim against the others' safe states */
    struct journal_writer journal;  /* run.journal for slot 0, run-N.journal for slot N */
};

/* The latest news of one channel. */
struct chan_state {
    double value;               /* NaN when unknown */
    int64_t t_ns;               /* CLOCK_MONOTONIC of the last sample (0: never) */
    int err;                    /* last read error, 0 if the last read was good */
    char msg[208];              /* last error message */
    double setpoint;            /* the desired value (NaN: none); actuators.h has its confirmation */
    uint64_t samples;
    bool write_fail_reported;   /* a write_failed event was recorded since it was last confirmed */
    double confirmed_recorded;  /* the confirmed value last put in the run file (NaN: unknown) */
};

/* What the daemon knows of a device's or a bus's health, for `devices`. */
struct health {
    bool faulted;               /* device faulted / bus link down */
    bool seen;                  /* devices: answered at least once */
    int64_t since_ns;           /* clock time of the last change (0: never) */
    uint64_t faults;            /* times it faulted */
    char last_error[160];       /* the most recent error, kept after recovery */
};

struct daemon_config {
    const char *rig_path;       /* NULL with sim */
    bool sim;
    const char *data_dir;
    const char *sim_path;       /* perfuse-sim binary */
    uint64_t sim_seed;
    const char *sim_args[8];    /* more perfuse-sim options (--line-rate, --baud), NULL-ended */
    double sample_hz;           /* > 0: sample every readable channel at this rate */
    int realtime_prio;          /* > 0: the loop and bus threads run SCHED_FIFO at this priority */
};

struct daemon {
    uv_loop_t *loop;
    struct daemon_config cfg;
    struct pclock clock;
    struct rig *rig;            /* read-only once loaded: protocols are checked against it
                                 * on the thread pool too */
    struct bus **buses;         /* one per rig bus */
    size_t n_buses;
    size_t *dev_bus_index;      /* rig device -> index within its bus */
    double *sample_hz;          /* per rig channel */
    struct chan_state *chans;   /* per rig channel */
    struct loopwake bus_wake;   /* bus threads: notes are waiting */
    uv_signal_t sig_term, sig_int, sig_chld;
    struct control *control;    /* the control server started for it (perfused.c), closed
                                 * by the shutdown; NULL: none */
    struct {                    /* who else follows the daemon (the MQTT client); NULLs: none */
        void *ctx;
        /* every sample, value as the run file records it (NaN: failed or implausible) */
        void (*sample)(void *ctx, uint32_t ch, double record, int64_t t_ns);
        /* a syringe's fill level as the run file records it (/channels/<pump>.fill) */
        void (*fill)(void *ctx, size_t pump, double fill_ul, int64_t t_ns);
        /* the daemon stops; the last run is still there */
        void (*stopping)(void *ctx);
    } observer;
    struct run_slot slots[DAEMON_MAX_RUNS];  /* the runs, going or kept after their end */
    uint64_t runs_started;
    struct run_host run_host;   /* what a run is given of the daemon (built at init; each slot
                                 * has its copy) */
    struct simchild sim;        /* perfuse-sim, with --sim */
    bool shutting_down;
    bool stopped_unconfirmed;   /* it stopped with a safe state its devices did not confirm */
    /* Timing of setpoint commands in the current (or last) run: from the planned
     * time to the runner issuing it (dispatch) and to its first byte leaving on
     * the line (wire). */
    struct latency dispatch, wire;
    /* How long each such setpoint's transaction took once on the wire (command,
     * device turnaround, reply): the line's own time, apart from the lateness. */
    struct latency wire_txn;
    /* Of the wire lateness, what the bus's scheduling added (sent - ready_ns),
     * apart from waiting for the frames of other setpoints due no later. */
    struct latency wire_sched;
    char host[64];
    char sched[96];             /* the loop thread's scheduling, as status shows it */
    struct rig_events rig_events;   /* events while no run file was open to take them */
    struct health *dev_health;  /* per rig device */
    struct health *bus_health;  /* per rig bus */
    struct alarms alarms;       /* latched until acknowledged */
    struct interlocks il;       /* the rig's limits, and the run's */
    struct latch latch;         /* actuators held in their safe state by a tripped limit */
    struct latchstore latchstore;   /* the holds kept in the data directory across a restart */
    struct plausibility plaus;  /* which measured channels can be believed */
    struct delivery dl;         /* syringe fill levels and stalls, flow monitors */
    struct sdnotify sdn;        /* systemd readiness and watchdog */
    struct alerts alerts;       /* the rig's alert command */
    /* Interlock timing: the sample that tripped the last safe-stop, and the tag
     * of the safety writes it caused, to measure when the first left on the wire. */
    int64_t il_sample_ns;
    uint64_t il_tag;            /* 0: none pending */
    uint64_t il_trips;          /* safe-stop trips so far: each one's writes get their own tag */
    uint64_t write_tag;         /* tag for the writes being queued now */
    uv_timer_t plaus_timer;     /* checks for lost sensors */
    struct actuators act;       /* desired and confirmed state of every actuator */
    uv_timer_t act_timer;       /* retries and tolerances of the actuators */
    int64_t planned_ns;         /* planned time of the write being sent now (0: a retry) */
    bool safe_pending;          /* a safe state was requested and is not yet confirmed */
    unsigned safe_superseded;   /* its channels released before they confirmed it */
    int64_t safe_requested_ns;
    uv_timer_t shutdown_timer;  /* shutdown waits (bounded) for the safe state's confirmation */
    int64_t shutdown_deadline_ns;
    struct regloop rl;          /* the rig's regulators (run/regloop.h) */
    struct history hist;        /* the last hour of every channel: measurements as read,
                                 * actuators as confirmed (history.h; the history command) */
};

/* Set up the daemon: its signals, the rig (or the simulated rig), the check
 * that no other process has its serial ports. Nothing is driven yet: the
 * control socket can be opened (d->control) before daemon_start, so that a
 * second daemon stops there. Blocking work (starting the simulator) happens
 * here, before the loop runs. Returns 0 or a negative errno (reported on
 * stderr); either way daemon_shutdown and daemon_run release it. */
int daemon_init(struct daemon *d, uv_loop_t *loop, const struct daemon_config *cfg);
/* Start driving the rig: actuators, bus threads, plausibility; hold again
 * what a tripped limit held before a restart, and continue a journaled run.
 * Returns 0 or a negative errno (reported on stderr). */
int daemon_start(struct daemon *d);
/* Run the loop until shutdown, then release everything. Returns perfused's
 * exit status: 0 after an orderly stop, 1 if it stopped with a safe state
 * its devices had not confirmed (the log names them). */
int daemon_run(struct daemon *d);
/* Begin an orderly shutdown (signal, or fatal error). */
void daemon_shutdown(struct daemon *d, const char *why);

/* Command a channel: value becomes its desired value (origin protocol or
 * manual), sent now and retried until the device confirms it. Returns 0 or a
 * negative errno (-EINVAL unknown channel, -EPERM not writable or holding a
 * latched safe state). */
int daemon_command(struct daemon *d, int channel, double value, enum act_origin origin,
                   int64_t planned_ns);
/* The same with a bus priority: BUS_PRIO_SAFETY latches value as the channel's
 * safe state, BUS_PRIO_SETPOINT is daemon_command with origin protocol. */
int daemon_write(struct daemon *d, int channel, double value, enum bus_priority prio,
                 int64_t planned_ns);
/* End the latched safe state of channel ch (every channel if ch < 0): a new
 * run or a manual set replaces it. One released before it was confirmed is
 * recorded (safe_state_superseded) and never reported as applied. */
void daemon_release_safe(struct daemon *d, int ch);
/* Whether the safe state last requested is confirmed by every device (true if none). */
bool daemon_safe_confirmed(const struct daemon *d);
/* Why the plan cannot run on the rig now (a device it writes faulted or out of
 * reach, a sensor it watches lost), one reason per line in buf; 0 if none,
 * else the number of reasons. */
int daemon_run_blockers(struct daemon *d, const struct plan *p, char *buf, size_t len);
/* The run going (or last run) that a command means: sel names it (its name,
 * its id, or the start of its id); without sel, the one run going, or the
 * last one if none is going. NULL with the reason in err (no run; several
 * runs going, listed; no such run). */
struct run_slot *daemon_find_run(struct daemon *d, const char *sel, char *err, size_t len);
/* The number of runs going (not yet ended). */
size_t daemon_runs_going(const struct daemon *d);
/* The slot whose run is r, or NULL. */
struct run_slot *daemon_slot_of(struct daemon *d, const struct run *r);
/* Give slot s the run of plan to come: its claim, and name (NULL: one derived
 * from the protocol's name that no run going has); the slot's last run is
 * freed. 0 or -ENOMEM. */
int daemon_slot_prepare(struct daemon *d, struct run_slot *s, const struct plan *plan, const char *name);
/* Whether a run going in another slot than self is called name. */
bool daemon_name_taken(struct daemon *d, const struct run_slot *self, const char *name);
/* A slot for a new run (the first empty, or whose run's file is closed), or NULL. */
struct run_slot *daemon_free_slot(struct daemon *d);
/* Slot s now holds run r, the latest started. */
void daemon_slot_started(struct daemon *d, struct run_slot *s, struct run *r);
/* Record an event in every open run's file, else in the log. */
void daemon_event(struct daemon *d, int64_t t, const char *severity, const char *source,
                  const char *code, const char *msg);

/* Send an alert (kind: alarm, fault, prompt, run_end, restart) through the
 * rig's alert command, with the details of run, the run it is about (NULL:
 * none). The caller names the run: while a new run starts, d->run is still
 * the last one. */
void daemon_alert(struct daemon *d, const struct run *run, const char *kind, const char *severity,
                  const char *source, const char *code, const char *message);

/* Put every device in its safe state: the plan's safe_state values first
 * (if a plan is given), then each driver's own safe action. The safe state is
 * latched (actuators.h) and retried until confirmed; a safe_state_unconfirmed
 * alarm is raised if it is not confirmed within the rig's confirm.safe_state
 * time, and a safe_state_applied event recorded once it is. */
void daemon_safe_state(struct daemon *d, const struct plan_target *targets, size_t n);

#endif
