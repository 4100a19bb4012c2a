/*
 * A run: one protocol executing on its host's rig, with its runner and its
 * run file. A run is a guest: it reaches its host (the daemon) only through
 * the struct run_host it is started with. Loop thread only.
 */
#ifndef PERFUSE_RUN_H
#define PERFUSE_RUN_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "base/diag.h"
#include "base/run_operator.h"
#include "run/runner.h"
#include "run_host.h"

struct run;

/* Who asked, for the audit trail. */
struct run_actor {
    const char *user;           /* from SO_PEERCRED, e.g. "uid 1000 (alice)" */
    const char *operator_name;  /* run --operator, may be NULL; valid UTF-8, at most RUN_OPERATOR_MAX bytes */
    bool force;                 /* run --force: start although devices are faulted or out of reach */
    /* What the operator gave with run (checked: run_sample_ok, run_notes_ok), for the file. */
    const char *const *sample;  /* "KEY=VALUE" fields, n_sample of them (may be NULL) */
    size_t n_sample;
    const char *notes;          /* may be NULL */
};

/* Load text as a protocol against the host's rig and start it now; fills
 * are the syringes' levels at the start ("pump1=8mL"; the others are taken
 * to be full). On a protocol or fill error returns -EINVAL with every
 * diagnostic in d. A device the protocol writes that is faulted or out of
 * reach, or a sensor its limits or wait_until name that is lost, refuses the
 * run (-EBUSY, the reasons in d) unless who->force, which is recorded as a
 * run_forced event. */
int run_start(const struct run_host *host, const char *path, const char *text, size_t len,
              const struct run_actor *who, const char *const *fills, size_t n_fills,
              struct diag *d, struct run **out);

/* The same with a plan already loaded (on the thread pool) against the
 * host's rig; takes the plan, also on failure. */
int run_start_plan(const struct run_host *host, struct plan *plan, const struct run_actor *who,
                   const char *const *fills, size_t n_fills, struct diag *d, struct run **out);

struct journal_rec;
/* A continued run's file that could not be read (resume.h): the run goes on
 * in a new file. The strings are the caller's, read during run_continue. */
struct run_replaced {
    const char *file;           /* the journal's run file, as the journal named it */
    const char *kept_as;        /* where it is kept now; NULL: it was missing, or stays at file */
    const char *problem;        /* what is wrong with it */
};

/* Continue the run described by a journal after a restart, appending to its
 * (recovered) file; last_alive_s is its last time stamp, so the downtime is
 * known. plan is the journal's protocol loaded on this rig; the run owns it
 * from here, also on failure. The journal must have passed journal_validate
 * against plan, and last_alive_s must lie within the run. What happens
 * follows the protocol's on_restart. rep: NULL, or the journal's file could
 * not be read: j->file is then a new file, created as a run file of the same
 * run (id, t = 0, protocol, operator), its events say why, and the journal is
 * rewritten to name it; closed as interrupted, it stays open as at a run's
 * end (until the safe state is confirmed), so that an alarm raised about it
 * right after this lands in it. On failure returns a negative errno with the
 * reason in d. */
int run_continue(const struct run_host *host, const struct journal_rec *j, struct plan *plan,
                 double last_alive_s, const struct run_replaced *rep, struct diag *d, struct run **out);
/* The file a continued run was in before the restart, when it could not be
 * read and the run went on in a new one (its original path); NULL otherwise. */
const char *run_replaced_file(const struct run *r);

/* Forward a sample / a finished write to the run: record goes into the file
 * (NaN for a failed or implausible reading), use to wait_until (NaN: unknown). */
void run_on_sample(struct run *r, int channel, double record, double use, int64_t t_ns);
/* Record a value of a derived series (a syringe's fill level) at t. */
void run_record_derived(struct run *r, int series, double value, int64_t t_ns);
/* A writable channel's confirmed value changed (NaN: no longer known): /confirmed. */
void run_on_confirmed(struct run *r, int channel, double value, int64_t t_ns);
/* Record a value of the /regulators series idx (record/runfile.h). */
void run_record_regulated(struct run *r, int idx, double value, int64_t t_ns);
/* Record an event from outside the runner (device faults, commands). */
void run_event(struct run *r, int64_t t_ns, const char *severity, const char *source,
               const char *code, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* A device of the rig faulted or recovered: apply the protocol's on_fault. */
void run_on_device_fault(struct run *r, const char *device, const char *why);
/* A safe-stop interlock tripped: apply the safe state and end the run (faulted). */
void run_safe_stop(struct run *r, const char *why);
/* Record a manual setpoint made while the run is paused: an override of the
 * protocol's value, named in status and events until resume restores the
 * protocol's value or the protocol next sets that channel. */
void run_manual_set(struct run *r, const struct run_actor *who, int channel, double value);

/* A manual override of one channel. */
struct run_override {
    bool on;
    double value;               /* the manual value */
    char by[96];                /* who set it */
    int64_t since_wall_ns;      /* when it was set */
};
/* The override on a rig channel, or NULL if there is none. */
const struct run_override *run_override(const struct run *r, int channel);
/* The last value the protocol commanded on a rig channel (NaN: none yet). */
double run_protocol_value(const struct run *r, int channel);
/* Record in the run's events that a command that would have changed something
 * (code, e.g. "cmd_set"; what, e.g. "set pump1 5000 uL/min") was refused, and why;
 * at most a few a second, the rest counted in the next one recorded. */
void run_refused(struct run *r, const struct run_actor *who, const char *code, const char *what,
                 const char *why);
int run_pause(struct run *r, const struct run_actor *who, const char *reason);
/* Continue a paused run. Overrides are first set back to the protocol's values
 * (kept instead with keep_overrides, or when the protocol has set no value). */
int run_resume(struct run *r, const struct run_actor *who, const char *reason, bool keep_overrides);
int run_abort(struct run *r, const struct run_actor *who, const char *reason);
int run_confirm(struct run *r, const struct run_actor *who);
/* End the current step now and go on (runner_next), recorded with who; a
 * refusal is recorded too. */
int run_next(struct run *r, const struct run_actor *who);
/* Make the current step ns longer (runner_extend), recorded with who. */
int run_extend(struct run *r, const struct run_actor *who, int64_t ns);
/* A note of the operator's in the run's events ("note"), with who. */
int run_note(struct run *r, const struct run_actor *who, const char *text);

/* The daemon is stopping: record it and apply on_shutdown (safe-stop or hold). */
void run_shutdown_begin(struct run *r);
/* Then, once the buses have stopped: close the file as "interrupted". */
void run_shutdown_finish(struct run *r);

/* True once the run has ended and its file is closed. */
bool run_closed(const struct run *r);
/* True once the run has ended (its file may still be open a moment). */
bool run_ended(const struct run *r);
/* The run has ended: close its file now instead of after the settle time
 * (another run is waiting to start). */
void run_close_now(struct run *r);
/* Current state and details. */
void run_get_status(struct run *r, struct runner_status *st);
const char *run_path(const struct run *r);
const char *run_id(const struct run *r);
const struct plan *run_plan(const struct run *r);
/* Clock time of t = 0, and the wall time of t = 0. */
int64_t run_start_ns(const struct run *r);
int64_t run_start_wall_ns(const struct run *r);
/* Count of record write errors / dropped records so far. */
void run_storage(struct run *r, int *write_errors, uint64_t *dropped);

/* One event of the run, as kept in memory for `events` (the file has them all). */
struct run_event_rec {
    uint64_t seq;               /* 0, 1, ... in the order recorded */
    double t;
    char severity[8], source[72], code[32], message[256];   /* as the file's /events */
};
/* How many of the run's most recent events are kept in memory. */
#define RUN_EVENTS_KEPT 4096

/* Events recorded so far (the next one gets this sequence number). */
uint64_t run_events_total(const struct run *r);
/* The event with sequence number seq if it is still kept, else NULL. */
const struct run_event_rec *run_event_at(const struct run *r, uint64_t seq);
/* An event of run r as the control socket and the broker send it: run time,
 * and the wall-clock time in UTC and local time (a new reference). */
json_t *run_event_json(const struct run *r, const struct run_event_rec *e);

/* Free a closed run (or a run that never started). */
void run_free(struct run *r);

#endif
