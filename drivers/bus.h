/*
 * A bus: one thread that owns one link (serial line, Modbus RTU line or
 * Modbus TCP connection) and every device on it.
 *
 * The thread samples each readable channel on its own absolute schedule,
 * executes writes as they come (safety first, then setpoints; a newer
 * setpoint for a channel replaces one still queued, and a safety action drops
 * the setpoints queued before it for its channel or device, each reported as
 * a WRITE note with -ECANCELED), reconnects a lost link,
 * and backs off a failing device without slowing the others: after a
 * failure a device waits for its next cycle (one timeout per cycle, however
 * many channels it has), is marked faulted after a few failures and is then
 * probed at a doubling interval (capped), so it costs the bus at most one
 * timeout per probe.
 *
 * Setpoints are handed over ahead of time with their deadline (planned_ns;
 * 0 or a time already past: as soon as possible). The bus thread sends each
 * at its deadline, timed on its own thread: it waits on its condition variable
 * until BUS_SCHED_FINAL_NS (1 ms) before, then sleeps with
 * clock_nanosleep(TIMER_ABSTIME). It keeps an estimate of each device's read
 * transaction (the 98th percentile of its last 64 successful reads) and never
 * starts a read whose estimated end falls after the next setpoint's deadline
 * (drivers/bus_sched.h): reads fill the gaps between setpoints.
 *
 * What each kind of request can cost another on the same line:
 * - a safety write waits for the transaction already on the wire (one read,
 *   write or keep-alive), or for at most BUS_SCHED_FINAL_NS if the thread is
 *   in its last sleep before a setpoint, then that setpoint's transaction;
 *   it cancels the setpoints queued for its channel (device) before it.
 * - a setpoint waits for nothing in the normal case: reads and keep-alives
 *   that would overlap its deadline are held back. It can be late by a read
 *   that ran longer than its estimate (beyond the 98th percentile), by a
 *   silent device's probe (up to one time-out, once per probe), by another
 *   setpoint due at the same moment (one transaction each, in deadline order)
 *   and by safety writes.
 * - a read waits for every setpoint whose deadline falls inside its estimated
 *   transaction, plus that setpoint's transaction: at most one setpoint
 *   period, or as many as the line needs when its setpoints leave no gap as
 *   long as a read (then its reads starve: give the line fewer setpoints).
 * - a setpoint handed ahead for a channel stays queued behind an earlier
 *   one; one due now (a manual set, a retry) replaces what is queued for the
 *   channel.
 *
 * Results go back as notes, through a queue, with notify() (e.g.
 * uv_async_send) called after each batch. The owner drains them with
 * bus_take_notes on its own thread. The bus knows channel ids but nothing of
 * runs, files or clients.
 */
#ifndef PERFUSE_BUS_H
#define PERFUSE_BUS_H

#include <stddef.h>
#include <stdint.h>

#include "bus_note.h"
#include "driver.h"
#include "link.h"

/* One device on the bus, as the owner configures it. Pointers must outlive the bus. */
struct bus_device_cfg {
    const char *name;
    const struct driver_ops *drv;
    void *state;                        /* the driver's state from open() */
    const struct driver_channel *chans;
    size_t n_chans;
    const double *sample_hz;            /* per channel; 0 = not sampled */
    uint32_t first_id;                  /* owner's id of chans[0]; ids are consecutive */
};

enum bus_priority { BUS_PRIO_SAFETY = 0, BUS_PRIO_SETPOINT = 1 };

struct bus;

/* Create a bus for link with devices (copied). notify is called from the bus
 * thread when notes are waiting. Returns 0 or a negative errno. */
int bus_create(struct bus **out, const struct link_config *link,
               const struct bus_device_cfg *devs, size_t n_devs,
               void (*notify)(void *arg), void *arg);
/* Run the bus thread under SCHED_FIFO at prio (0: normal, the default);
 * call before bus_start. If the system refuses, the thread says so in the log
 * and runs at normal priority. */
void bus_set_realtime(struct bus *b, int prio);
/* Start the thread. */
int bus_start(struct bus *b);
/* Queue a write of value to channel ch of device dev, to be sent at
 * planned_ns (CLOCK_MONOTONIC; 0 or past: at once). Thread-safe, never blocks on I/O. */
int bus_write(struct bus *b, size_t dev, size_t ch, double value, enum bus_priority prio,
              int64_t planned_ns, uint64_t tag);
/* Queue the safe-state action of device dev, ahead of everything else; tag
 * comes back in the write's note. */
int bus_safe_state(struct bus *b, size_t dev, uint64_t tag);
/* Move up to max waiting notes into out; returns how many. Thread-safe. */
size_t bus_take_notes(struct bus *b, struct bus_note *out, size_t max);
/* Ask the thread to finish what is queued and due, close the link and exit;
 * join it. Setpoints whose deadline has not come are reported -ECANCELED. */
void bus_stop(struct bus *b);
/* Free (stops first if needed). NULL is fine. */
void bus_free(struct bus *b);
/* The bus's name. */
const char *bus_name(const struct bus *b);

#endif
