/*
 * The bus thread's timing rule, apart from its I/O so that it can be tested
 * against a fake clock.
 *
 * A line carries setpoints with deadlines and reads with due times. A
 * setpoint leaves at its deadline; a read is started only if its estimated
 * end (a high percentile of the device's recent transaction times) falls
 * before the next setpoint's deadline, with a guard to spare; otherwise it
 * waits until after that setpoint. Reads fill the gaps between setpoints.
 */
#ifndef PERFUSE_BUS_SCHED_H
#define PERFUSE_BUS_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TXN_WINDOW 64                   /* transactions remembered per device */
#define TXN_MIN_SAMPLES 4               /* fewer: the caller's fallback is used */
/* A read must end this long before a setpoint's deadline: the time the thread
 * needs to go from the read's end to its sleep until the deadline. */
#define BUS_SCHED_GUARD_NS 300000
/* The last stretch before a setpoint's deadline is slept with
 * clock_nanosleep(TIMER_ABSTIME); before it the thread waits on its condition
 * variable, so that a new request (a safety write) still wakes it. */
#define BUS_SCHED_FINAL_NS 1000000

/* A running estimate of one device's transaction time. */
struct txn_estimate {
    int64_t d[TXN_WINDOW];
    size_t n, next;
};

/* Remember one transaction of ns. */
void txn_estimate_add(struct txn_estimate *e, int64_t ns);
/* The 98th percentile of the remembered transactions (over 64: the second
 * longest), or fallback_ns while fewer than TXN_MIN_SAMPLES are known. */
int64_t txn_estimate_get(const struct txn_estimate *e, int64_t fallback_ns);

enum bus_sched_action {
    BUS_SCHED_READ,         /* start the due read now */
    BUS_SCHED_WAIT,         /* wait (woken by a new request) until *until */
    BUS_SCHED_SLEEP,        /* sleep, absolute, until *until: the setpoint's deadline */
};

/* What to do at now when no write is due: setpoint_ns is the next queued
 * setpoint's deadline (INT64_MAX: none), read_due_ns the earliest due read
 * (INT64_MAX: none) and read_est_ns its device's estimated transaction time. */
enum bus_sched_action bus_sched_next(int64_t now, int64_t setpoint_ns, int64_t read_due_ns,
                                     int64_t read_est_ns, int64_t *until);
/* Whether a read of est_ns started at now ends in time for a setpoint at setpoint_ns. */
bool bus_sched_read_fits(int64_t now, int64_t est_ns, int64_t setpoint_ns);

#endif
