/*
 * Alerts for unattended runs: the rig's `alerts: {command: ...}` is run (by
 * /bin/sh -c, without waiting for it) on an alarm, a fault, a prompt, the end
 * of a run and a restart. The details go in environment variables
 * (PERFUSE_ALERT, PERFUSE_SEVERITY, PERFUSE_SOURCE, PERFUSE_CODE,
 * PERFUSE_MESSAGE, PERFUSE_TIME, PERFUSE_RIG, PERFUSE_HOST, PERFUSE_RUN_ID,
 * PERFUSE_PROTOCOL, PERFUSE_FILE, PERFUSE_SUPPRESSED), so that a lab can wire
 * in mail, chat or a pager without perfuse knowing about any of them.
 *
 * Rate limits: one alert per kind and source per min_interval, at most
 * max_per_hour in all, at most ALERTS_MAX_RUNNING commands at once. What is
 * held back is counted and reported with the next alert that goes out.
 *
 * Loop thread only.
 */
#ifndef PERFUSE_ALERTS_H
#define PERFUSE_ALERTS_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#define ALERTS_MAX_RUNNING 4
#define ALERTS_KEYS 64

struct alert_info {
    const char *kind;           /* alarm | fault | prompt | run_end | restart */
    const char *severity, *source, *code, *message;
    const char *run_id, *protocol, *file;   /* may be NULL */
};

struct alerts {
    uv_loop_t *loop;
    char *command;              /* NULL: alerts are off */
    char rig[64], host[64];
    int64_t min_interval_ns;
    int max_per_hour;
    struct { char key[104]; int64_t last_ns; } keys[ALERTS_KEYS];
    size_t n_keys;
    int64_t hour_start_ns;
    int sent_this_hour;
    int running;
    uint64_t suppressed;        /* held back since the last alert that went out */
    uint64_t sent, failed;
};

/* command (copied; NULL turns alerts off). */
void alerts_init(struct alerts *a, uv_loop_t *loop, const char *command, const char *rig,
                 const char *host, double min_interval_s, int max_per_hour);
/* Run the command for one alert at clock time now, unless rate-limited.
 * Returns 1 if it was started, 0 if held back or off, a negative errno on failure. */
int alerts_send(struct alerts *a, int64_t now_ns, const struct alert_info *info);
void alerts_free(struct alerts *a);

#endif
