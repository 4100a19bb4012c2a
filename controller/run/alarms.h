/*
 * Alarms: raised, active, acknowledged, cleared. An alarm is latched: once
 * raised it stays listed until an operator acknowledges it, even if its
 * condition has gone; it disappears when it is both acknowledged and clear.
 * A condition that returns after acknowledgement raises the alarm again.
 * Every transition is reported through the event callback (for /events).
 *
 * An alarm belongs to the rig, or to one run (its id): a run's own limit or
 * storage fault. Two runs' alarms with the same source, code and tag are
 * two alarms. The owner shows a run's alarms to that run and the rig's to all.
 *
 * Loop thread only.
 */
#ifndef PERFUSE_ALARMS_H
#define PERFUSE_ALARMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct alarm {
    uint32_t id;                /* 1, 2, ...; never reused while the daemon runs */
    char source[72];            /* a channel, device or "storage" */
    char code[32];              /* "limit_max", "sensor_nan", ... */
    char tag[16];               /* tells apart alarms with the same source and code
                                 * (two limits on one channel); not shown */
    char severity[8];           /* alarm | fault */
    char message[200];
    int64_t raised_ns;          /* clock time it was (last) raised */
    bool active;                /* the condition still holds */
    bool acked;
    char acked_by[96];
    char run[33];               /* the id of the run it belongs to; "": the rig's */
};

/* run: the alarm's run id, "" for the rig's. */
typedef void (*alarm_event_fn)(void *ctx, int64_t t_ns, const char *severity, const char *source,
                               const char *code, const char *message, const char *run);

struct alarms {
    struct alarm *v;            /* listed alarms, oldest first */
    size_t n, cap;
    uint32_t next_id;
    alarm_event_fn event;
    void *ctx;
};

/* Start with no alarms; event (may be NULL) records each transition. */
void alarms_init(struct alarms *a, alarm_event_fn event, void *ctx);
void alarms_free(struct alarms *a);

/* The condition source/code/tag of run (NULL or "": the rig) holds: raise it
 * if it is not already active. Returns the alarm's id, or 0 if it was already
 * active (or out of memory). */
uint32_t alarms_raise_run(struct alarms *a, const char *run, int64_t t_ns, const char *severity,
                          const char *source, const char *code, const char *tag, const char *fmt, ...)
    __attribute__((format(printf, 8, 9)));
/* The rig's condition source/code/tag holds (alarms_raise_run without a run). */
#define alarms_raise(a, ...) alarms_raise_run((a), NULL, __VA_ARGS__)
/* The condition source/code/tag of run (NULL: the rig) no longer holds.
 * No-op if it was not active. */
void alarms_clear_run(struct alarms *a, const char *run, int64_t t_ns, const char *source,
                      const char *code, const char *tag);
#define alarms_clear(a, ...) alarms_clear_run((a), NULL, __VA_ARGS__)
/* Acknowledge alarm id (0: every unacknowledged alarm) on behalf of who.
 * Returns the number acknowledged, or -ENOENT if id is not listed. */
int alarms_ack(struct alarms *a, int64_t t_ns, uint32_t id, const char *who);
/* The id of run's (NULL: the rig's) active alarm source/code/tag, or 0 if none is active. */
uint32_t alarms_find_active_run(const struct alarms *a, const char *run, const char *source,
                                const char *code, const char *tag);
#define alarms_find_active(a, ...) alarms_find_active_run((a), NULL, __VA_ARGS__)
/* Whether alarm al concerns the run run_id: the run's own, or the rig's. */
bool alarm_concerns(const struct alarm *al, const char *run_id);
/* Number of listed alarms that are active and not yet acknowledged. */
size_t alarms_unacked(const struct alarms *a);
/* The state of a listed alarm as a word: "active", "acknowledged" or "cleared". */
const char *alarm_state_name(const struct alarm *al);

#endif
