/* A bus thread: one link, its devices, sampling, writes, faults and reconnects. */
#include "bus.h"
#include "bus_sched.h"
#include "note_queue.h"
#include "base/log.h"
#include "base/rtsched.h"
#include "base/timeutil.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FAULT_AFTER 3                   /* consecutive failures before "faulted" */
#define BACKOFF_MIN_NS (500 * NS_PER_MS)
#define BACKOFF_MAX_NS (30 * NS_PER_SEC)
#define WRITE_RETRIES 2
#define MAX_PENDING_WRITES 256
#define NOTE_LIMIT 65536                /* notes kept for an owner that stops draining */

struct pending_write {
    bool used;
    enum bus_priority prio;
    bool safe_state;                    /* run drv->safe_state instead of write */
    uint32_t dev, ch;
    double value;
    int64_t planned_ns;
    uint64_t tag;
    uint64_t seq;                       /* FIFO order within a priority */
};

struct bus_chan_sched {
    int64_t period_ns;                  /* 0: not sampled */
    int64_t next_ns;
};

struct bus_dev {
    struct bus_device_cfg cfg;
    struct bus_chan_sched sched[DRIVER_MAX_CHANNELS];
    int failures;
    bool faulted;
    bool connected;                     /* drv->connect succeeded since the link came up */
    int64_t backoff_ns;
    int64_t next_try_ns;                /* after a failure: not asked again before this */
    int64_t cycle_ns;                   /* its shortest sampling period: one cycle */
    struct txn_estimate read_txn;       /* how long its successful reads take */
    struct log_ratelimit rl;
};

struct bus {
    struct link_config link_cfg;
    struct bus_link link;
    bool link_up;
    bool link_reported_down;
    int64_t link_backoff_ns, link_next_try_ns;
    struct bus_dev *devs;
    size_t n_devs;
    void (*notify)(void *arg);
    void *notify_arg;

    pthread_t thread;
    bool started;
    int rt_prio;                        /* > 0: the thread runs SCHED_FIFO at this priority */
    pthread_mutex_t lock;
    pthread_cond_t cond;                /* CLOCK_MONOTONIC */
    bool stop;
    struct pending_write writes[MAX_PENDING_WRITES];
    uint64_t write_seq;

    struct note_queue notes;            /* waiting for the owner */
    uint64_t notes_dropped;             /* samples dropped because the owner did not drain */
    struct log_ratelimit notes_rl;
    int64_t last_keepalive_ns;
    int64_t last_write_planned_ns;      /* the previous write's deadline ... */
    int64_t last_write_end_ns;          /* ... and when its transaction ended */
    struct log_ratelimit rl;
};

/* The bus's name. */
const char *bus_name(const struct bus *b)
{
    return b->link_cfg.name;
}

/* Create a bus. */
int bus_create(struct bus **out, const struct link_config *link,
               const struct bus_device_cfg *devs, size_t n_devs,
               void (*notify)(void *arg), void *arg)
{
    struct bus *b = calloc(1, sizeof *b);
    if (b == NULL)
        return -ENOMEM;
    b->devs = calloc(n_devs ? n_devs : 1, sizeof *b->devs);
    if (b->devs == NULL) {
        free(b);
        return -ENOMEM;
    }
    b->link_cfg = *link;
    b->n_devs = n_devs;
    b->notify = notify;
    b->notify_arg = arg;
    int64_t now = (int64_t)time_mono_ns();
    for (size_t i = 0; i < n_devs; i++) {
        b->devs[i].cfg = devs[i];
        for (size_t c = 0; c < devs[i].n_chans && c < DRIVER_MAX_CHANNELS; c++) {
            double hz = devs[i].sample_hz[c];
            if (devs[i].chans[c].readable && hz > 0) {
                int64_t period = (int64_t)llround(1e9 / hz);
                b->devs[i].sched[c].period_ns = period;
                b->devs[i].sched[c].next_ns = now;
                if (b->devs[i].cycle_ns == 0 || period < b->devs[i].cycle_ns)
                    b->devs[i].cycle_ns = period;
            }
        }
    }
    note_queue_init(&b->notes, NOTE_LIMIT);
    rtsched_mutex_init(&b->lock);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&b->cond, &ca);
    pthread_condattr_destroy(&ca);
    *out = b;
    return 0;
}

/* Queue a note for the owner. If the owner stops draining, samples are
 * dropped oldest first to bound memory; nothing else ever is. */
static void push_note(struct bus *b, const struct bus_note *n)
{
    pthread_mutex_lock(&b->lock);
    int rc = note_queue_push(&b->notes, n);
    if (rc == 1) {
        b->notes_dropped++;
        log_limited(&b->notes_rl, 10000, LOG_WARN, b->link_cfg.name,
                    "the owner is not taking notes: %llu samples dropped so far (oldest first)",
                    (unsigned long long)b->notes_dropped);
    } else if (rc < 0) {
        log_limited(&b->notes_rl, 10000, LOG_ERROR, b->link_cfg.name,
                    "out of memory: a note of kind %d was lost", (int)n->kind);
    }
    pthread_mutex_unlock(&b->lock);
    if (b->notify)
        b->notify(b->notify_arg);
}

/* Queue a note with a message (bus thread). */
static void note_msg(struct bus *b, enum bus_note_kind kind, uint32_t dev, int err, const char *msg)
{
    struct bus_note n = { .kind = kind, .device = dev, .err = err, .t_ns = (int64_t)time_mono_ns() };
    snprintf(n.msg, sizeof n.msg, "%s", msg ? msg : "");
    push_note(b, &n);
}

/* Move waiting notes out. */
size_t bus_take_notes(struct bus *b, struct bus_note *out, size_t max)
{
    pthread_mutex_lock(&b->lock);
    size_t n = note_queue_take(&b->notes, out, max);
    pthread_mutex_unlock(&b->lock);
    return n;
}

/* Queue a write, replacing a queued setpoint for the same channel. A safety
 * write cancels the setpoints queued before it for its channel (a device's
 * safe state: for every channel of the device): sent after it, they would
 * undo it. Each cancelled write is reported as a WRITE note with -ECANCELED. */
static int queue_write(struct bus *b, const struct pending_write *w)
{
    struct pending_write cancelled[MAX_PENDING_WRITES];
    size_t n_cancelled = 0;
    pthread_mutex_lock(&b->lock);
    for (size_t i = 0; w->prio == BUS_PRIO_SAFETY && i < MAX_PENDING_WRITES; i++) {
        struct pending_write *p = &b->writes[i];
        if (p->used && p->prio == BUS_PRIO_SETPOINT && !p->safe_state && p->dev == w->dev &&
            (w->safe_state || p->ch == w->ch)) {
            cancelled[n_cancelled++] = *p;
            p->used = false;
        }
    }
    struct pending_write *slot = NULL;
    int64_t now = (int64_t)time_mono_ns();
    for (size_t i = 0; i < MAX_PENDING_WRITES; i++) {
        struct pending_write *p = &b->writes[i];
        if (!p->used || w->safe_state || p->safe_state || p->prio != w->prio ||
            p->dev != w->dev || p->ch != w->ch)
            continue;
        /* A setpoint handed ahead (deadline still to come) queues behind one
         * due earlier; one due now replaces what is queued for the channel,
         * and so does one for the same time or earlier (a manual set
         * supersedes what the protocol had handed ahead). */
        if (w->prio == BUS_PRIO_SETPOINT && w->planned_ns > now && p->planned_ns < w->planned_ns)
            continue;
        if (slot == NULL) {
            slot = p;
        } else {
            if (p->seq < slot->seq)
                slot->seq = p->seq;
            p->used = false;
        }
    }
    for (size_t i = 0; slot == NULL && i < MAX_PENDING_WRITES; i++)
        if (!b->writes[i].used)
            slot = &b->writes[i];
    if (slot == NULL) {
        pthread_mutex_unlock(&b->lock);
        return -ENOBUFS;
    }
    uint64_t seq = slot->used ? slot->seq : b->write_seq++;
    *slot = *w;
    slot->used = true;
    slot->seq = seq;
    pthread_cond_signal(&b->cond);
    pthread_mutex_unlock(&b->lock);
    for (size_t i = 0; i < n_cancelled; i++) {
        const struct pending_write *c = &cancelled[i];
        struct bus_note n = { .kind = BUS_NOTE_WRITE, .device = c->dev,
                              .channel = b->devs[c->dev].cfg.first_id + c->ch, .err = -ECANCELED,
                              .value = c->value, .t_ns = (int64_t)time_mono_ns(),
                              .planned_ns = c->planned_ns, .tag = c->tag };
        snprintf(n.msg, sizeof n.msg, "not sent: a safety action came first");
        push_note(b, &n);
    }
    return 0;
}

/* Queue a write of value to channel ch of device dev. */
int bus_write(struct bus *b, size_t dev, size_t ch, double value, enum bus_priority prio,
              int64_t planned_ns, uint64_t tag)
{
    if (dev >= b->n_devs || ch >= b->devs[dev].cfg.n_chans)
        return -EINVAL;
    struct pending_write w = { .prio = prio, .dev = (uint32_t)dev, .ch = (uint32_t)ch,
                               .value = value, .planned_ns = planned_ns, .tag = tag };
    return queue_write(b, &w);
}

/* Queue the safe-state action of device dev. */
int bus_safe_state(struct bus *b, size_t dev, uint64_t tag)
{
    if (dev >= b->n_devs)
        return -EINVAL;
    struct pending_write w = { .prio = BUS_PRIO_SAFETY, .safe_state = true, .dev = (uint32_t)dev,
                               .tag = tag };
    return queue_write(b, &w);
}

/* Take the most urgent write that is due at now (lock held): safety first,
 * then the setpoint with the earliest deadline. *next_ns is the deadline of
 * the earliest setpoint not yet due (INT64_MAX: none). */
static bool take_write(struct bus *b, int64_t now, struct pending_write *out, int64_t *next_ns)
{
    struct pending_write *best = NULL;
    *next_ns = INT64_MAX;
    for (size_t i = 0; i < MAX_PENDING_WRITES; i++) {
        struct pending_write *p = &b->writes[i];
        if (!p->used)
            continue;
        if (p->prio == BUS_PRIO_SETPOINT && p->planned_ns > now) {
            if (p->planned_ns < *next_ns)
                *next_ns = p->planned_ns;
            continue;
        }
        if (best == NULL || p->prio < best->prio ||
            (p->prio == best->prio && (p->planned_ns < best->planned_ns ||
                                       (p->planned_ns == best->planned_ns && p->seq < best->seq))))
            best = p;
    }
    if (best == NULL)
        return false;
    *out = *best;
    best->used = false;
    return true;
}

/* Setpoints whose deadline has not come are dropped when the bus stops: sent
 * early they would be wrong. Each is reported -ECANCELED (lock held). */
static size_t take_future(struct bus *b, struct pending_write *out)
{
    size_t n = 0;
    for (size_t i = 0; i < MAX_PENDING_WRITES; i++)
        if (b->writes[i].used) {
            out[n++] = b->writes[i];
            b->writes[i].used = false;
        }
    return n;
}

/* Close the link after a connection-level failure. */
static void link_lost(struct bus *b, const char *why)
{
    link_close(&b->link);
    b->link_up = false;
    for (size_t i = 0; i < b->n_devs; i++)
        b->devs[i].connected = false;
    b->link_backoff_ns = BACKOFF_MIN_NS;
    b->link_next_try_ns = (int64_t)time_mono_ns() + b->link_backoff_ns;
    log_warn(b->link_cfg.name, "link lost: %s", why);
    note_msg(b, BUS_NOTE_LINK_DOWN, 0, -ENOTCONN, why);
    b->link_reported_down = true;
}

/* Record a device failure; mark it faulted after several. Until it answers
 * again, its other channels wait for the next cycle, so a silent device costs
 * its neighbours on the line one timeout per cycle, not one per channel. */
static void device_failed(struct bus *b, size_t di, int err, const char *msg)
{
    struct bus_dev *d = &b->devs[di];
    d->failures++;
    log_limited(&d->rl, 10000, LOG_WARN, d->cfg.name, "%s", msg);
    int64_t now = (int64_t)time_mono_ns();
    d->next_try_ns = now + d->cycle_ns;
    if (!d->faulted && d->failures >= FAULT_AFTER) {
        d->faulted = true;
        d->backoff_ns = BACKOFF_MIN_NS;
        d->next_try_ns = now + d->backoff_ns;
        note_msg(b, BUS_NOTE_DEVICE_FAULT, (uint32_t)di, err, msg);
    } else if (d->faulted) {
        d->backoff_ns = d->backoff_ns * 2 > BACKOFF_MAX_NS ? BACKOFF_MAX_NS : d->backoff_ns * 2;
        d->next_try_ns = now + d->backoff_ns;
    }
}

/* Record a device success; clear a fault. */
static void device_ok(struct bus *b, size_t di)
{
    struct bus_dev *d = &b->devs[di];
    d->failures = 0;
    if (d->faulted) {
        d->faulted = false;
        note_msg(b, BUS_NOTE_DEVICE_OK, (uint32_t)di, 0, "answers again");
        log_info(d->cfg.name, "answers again");
    }
}

/* Bring a device into its known state after the link came up. */
static int device_connect(struct bus *b, size_t di)
{
    struct bus_dev *d = &b->devs[di];
    if (d->connected || d->cfg.drv->connect == NULL) {
        d->connected = true;
        return 0;
    }
    b->link.err[0] = '\0';
    int rc = d->cfg.drv->connect(d->cfg.state, &b->link);
    if (rc == 0)
        d->connected = true;
    return rc;
}

/* Handle the outcome of one exchange with device di; returns false if the link died. */
static bool exchange_done(struct bus *b, size_t di, int rc)
{
    if (rc == 0) {
        device_ok(b, di);
        return true;
    }
    if (rc == -ENOTCONN) {
        link_lost(b, b->link.err[0] ? b->link.err : "connection closed");
        return false;
    }
    if (rc == -ETIMEDOUT || rc == -EBADMSG)
        device_failed(b, di, rc, b->link.err[0] ? b->link.err : strerror(-rc));
    return true;
}

/* Execute one queued write or safe-state action. */
static void do_write(struct bus *b, const struct pending_write *w)
{
    struct bus_dev *d = &b->devs[w->dev];
    struct bus_note n = { .kind = BUS_NOTE_WRITE, .device = w->dev,
                          .channel = d->cfg.first_id + w->ch, .value = w->value,
                          .planned_ns = w->planned_ns, .tag = w->tag };
    int rc = -ENOTCONN;
    snprintf(b->link.err, sizeof b->link.err, "link %s is down", b->link_cfg.name);
    /* Behind a write due no later, the line was busy with that one's frames. */
    n.ready_ns = w->planned_ns;
    if (b->last_write_planned_ns <= w->planned_ns && b->last_write_end_ns > w->planned_ns)
        n.ready_ns = b->last_write_end_ns;
    for (int attempt = 0; b->link_up && attempt <= WRITE_RETRIES; attempt++) {
        b->link.err[0] = '\0';
        rc = device_connect(b, w->dev);
        n.sent_ns = (int64_t)time_mono_ns();
        if (rc == 0) {
            if (w->safe_state)
                rc = d->cfg.drv->safe_state ? d->cfg.drv->safe_state(d->cfg.state, &b->link) : 0;
            else
                rc = d->cfg.drv->write(d->cfg.state, &b->link, w->ch, w->value);
        }
        if (!exchange_done(b, w->dev, rc) || rc == 0 || rc == -EREMOTEIO || rc == -EINVAL ||
            rc == -ERANGE)
            break;
    }
    n.err = rc;
    n.t_ns = (int64_t)time_mono_ns();
    b->last_write_planned_ns = w->planned_ns;
    b->last_write_end_ns = n.t_ns;
    if (w->safe_state)
        n.channel = UINT32_MAX;
    snprintf(n.msg, sizeof n.msg, "%s", rc ? b->link.err : "");
    push_note(b, &n);
}

/* Read channel c of device di and report the sample. */
static void do_read(struct bus *b, size_t di, size_t c)
{
    struct bus_dev *d = &b->devs[di];
    struct bus_note n = { .kind = BUS_NOTE_SAMPLE, .device = (uint32_t)di,
                          .channel = d->cfg.first_id + (uint32_t)c, .value = NAN };
    b->link.err[0] = '\0';
    int rc = device_connect(b, di);
    int64_t t0 = (int64_t)time_mono_ns();
    if (rc == 0)
        rc = d->cfg.drv->read(d->cfg.state, &b->link, c, &n.value);
    n.t_ns = (int64_t)time_mono_ns();
    if (rc == 0)
        txn_estimate_add(&d->read_txn, n.t_ns - t0);
    n.err = rc;
    if (rc != 0) {
        n.value = NAN;
        snprintf(n.msg, sizeof n.msg, "%s", b->link.err[0] ? b->link.err : strerror(-rc));
    }
    if (exchange_done(b, di, rc))
        push_note(b, &n);
}

/* Whether device di may be talked to now (not waiting after a failure). */
static bool device_ready(const struct bus_dev *d, int64_t now)
{
    return d->failures == 0 || now >= d->next_try_ns;
}

/* Find the earliest due sample; returns its time (INT64_MAX if none). */
static int64_t next_sample(struct bus *b, int64_t now, size_t *dev, size_t *ch)
{
    int64_t best = INT64_MAX;
    for (size_t i = 0; i < b->n_devs; i++) {
        struct bus_dev *d = &b->devs[i];
        for (size_t c = 0; c < d->cfg.n_chans; c++) {
            if (d->sched[c].period_ns == 0)
                continue;
            int64_t due = d->sched[c].next_ns;
            if (d->failures > 0 && due < d->next_try_ns)
                due = d->next_try_ns;
            if (due < best) {
                best = due;
                *dev = i;
                *ch = c;
            }
        }
    }
    (void)now;
    return best;
}

/* Advance a channel's schedule from its previous due time, skipping missed slots. */
static void reschedule(struct bus_chan_sched *s, int64_t now)
{
    s->next_ns += s->period_ns;
    if (s->next_ns <= now - s->period_ns)
        s->next_ns = now + s->period_ns - (now - s->next_ns) % s->period_ns;
}

/* Try to open the link; report the outcome once per change. */
static void try_link(struct bus *b)
{
    int rc = link_open(&b->link, &b->link_cfg);
    int64_t now = (int64_t)time_mono_ns();
    if (rc == 0) {
        b->link_up = true;
        b->link_reported_down = false;
        note_msg(b, BUS_NOTE_LINK_UP, 0, 0, "link up");
        return;
    }
    if (!b->link_reported_down) {
        log_warn(b->link_cfg.name, "cannot open link: %s", b->link.err);
        note_msg(b, BUS_NOTE_LINK_DOWN, 0, rc, b->link.err);
        b->link_reported_down = true;
        b->link_backoff_ns = BACKOFF_MIN_NS;
    } else {
        log_limited(&b->rl, 60000, LOG_WARN, b->link_cfg.name, "still cannot open link: %s", b->link.err);
        b->link_backoff_ns = b->link_backoff_ns * 2 > BACKOFF_MAX_NS ? BACKOFF_MAX_NS : b->link_backoff_ns * 2;
    }
    b->link_next_try_ns = now + b->link_backoff_ns;
}

/* Wait on the condition until abs_ns or a signal (lock held). */
static void wait_until(struct bus *b, int64_t abs_ns)
{
    if (abs_ns == INT64_MAX) {
        pthread_cond_wait(&b->cond, &b->lock);
        return;
    }
    struct timespec ts = { .tv_sec = abs_ns / NS_PER_SEC, .tv_nsec = abs_ns % NS_PER_SEC };
    pthread_cond_timedwait(&b->cond, &b->lock, &ts);
}

/* Device di's read transaction time, as estimated: the high percentile of
 * its recent successful reads; until a few are known, 48 characters at the
 * line's rate plus 2 ms (a Modbus TCP device: 2 ms). A device that is failing
 * is still estimated by its successful reads: its probe may then cost a
 * setpoint up to one time-out, once per probe (see bus.h). */
static int64_t read_estimate(const struct bus *b, size_t di)
{
    int64_t fallback = 2 * NS_PER_MS;
    if (b->link_cfg.type != LINK_MODBUS_TCP && b->link_cfg.baud > 0)
        fallback += 48LL * 10 * NS_PER_SEC / b->link_cfg.baud;
    return txn_estimate_get(&b->devs[di].read_txn, fallback);
}

/* Feed device-side watchdogs about once a second, each only if its exchange
 * (estimated as a read) ends before the next setpoint's deadline. */
static void keepalive(struct bus *b, int64_t now, int64_t next_setpoint_ns)
{
    if (now - b->last_keepalive_ns < NS_PER_SEC)
        return;
    for (size_t i = 0; i < b->n_devs && b->link_up; i++) {
        struct bus_dev *d = &b->devs[i];
        if (!d->cfg.drv->keepalive || !device_ready(d, now) || !d->connected)
            continue;
        if (!bus_sched_read_fits((int64_t)time_mono_ns(), read_estimate(b, i), next_setpoint_ns))
            return;     /* after the setpoint: the next cycle tries again */
        exchange_done(b, i, d->cfg.drv->keepalive(d->cfg.state, &b->link));
    }
    b->last_keepalive_ns = now;
}

/* Sleep until the absolute time abs_ns on CLOCK_MONOTONIC. */
static void sleep_until(int64_t abs_ns)
{
    struct timespec ts = { .tv_sec = abs_ns / NS_PER_SEC, .tv_nsec = abs_ns % NS_PER_SEC };
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

/* Report the setpoints still waiting for their deadline when the bus stops. */
static void drop_future(struct bus *b, const struct pending_write *w, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct bus_note note = { .kind = BUS_NOTE_WRITE, .device = w[i].dev,
                                 .channel = b->devs[w[i].dev].cfg.first_id + w[i].ch,
                                 .err = -ECANCELED, .value = w[i].value,
                                 .t_ns = (int64_t)time_mono_ns(), .planned_ns = w[i].planned_ns,
                                 .tag = w[i].tag };
        snprintf(note.msg, sizeof note.msg, "not sent: the bus stopped before its time");
        push_note(b, &note);
    }
}

/* One pass of the bus thread: a write, a sample, or a wait. Returns false to exit. */
static bool bus_cycle(struct bus *b)
{
    struct pending_write w;
    int64_t next_sp;
    pthread_mutex_lock(&b->lock);
    int64_t now = (int64_t)time_mono_ns();
    bool have = take_write(b, now, &w, &next_sp);
    if (b->stop && !have) {
        struct pending_write left[MAX_PENDING_WRITES];
        size_t n = take_future(b, left);
        pthread_mutex_unlock(&b->lock);
        drop_future(b, left, n);
        return false;
    }
    if (!have && !b->link_up && now < b->link_next_try_ns) {
        wait_until(b, next_sp < b->link_next_try_ns ? next_sp : b->link_next_try_ns);
        pthread_mutex_unlock(&b->lock);
        return true;
    }
    size_t dev = 0, ch = 0;
    int64_t due = have ? now : next_sample(b, now, &dev, &ch);
    if (!have && b->link_up) {
        int64_t until = INT64_MAX;
        int64_t est = due <= now ? read_estimate(b, dev) : 0;
        switch (bus_sched_next(now, next_sp, due, est, &until)) {
        case BUS_SCHED_SLEEP:
            /* The setpoint's own thread times it, absolutely; a request
             * arriving now waits at most BUS_SCHED_FINAL_NS. */
            pthread_mutex_unlock(&b->lock);
            sleep_until(until);
            return true;
        case BUS_SCHED_WAIT: {
            /* An overdue keep-alive (held back by a setpoint) is tried at the next wake. */
            int64_t ka = b->last_keepalive_ns + NS_PER_SEC;
            if (ka > now && ka < until)
                until = ka;
            wait_until(b, until);
            pthread_mutex_unlock(&b->lock);
            keepalive(b, (int64_t)time_mono_ns(), next_sp);
            return true;
        }
        case BUS_SCHED_READ:
            break;
        }
    }
    pthread_mutex_unlock(&b->lock);
    if (!b->link_up) {
        try_link(b);
        if (!b->link_up && have)
            do_write(b, &w);    /* reports the failure to the owner */
        return true;
    }
    if (have) {
        do_write(b, &w);
        return true;
    }
    if (due == INT64_MAX)
        return true;
    struct bus_dev *d = &b->devs[dev];
    reschedule(&d->sched[ch], now);
    do_read(b, dev, ch);
    return true;
}

/* The bus thread. */
static void *bus_main(void *arg)
{
    struct bus *b = arg;
    char name[16];
    snprintf(name, sizeof name, "bus-%s", b->link_cfg.name);
    pthread_setname_np(pthread_self(), name);
    if (b->rt_prio > 0) {
        int rc = rtsched_enter(b->rt_prio);
        if (rc < 0)
            log_warn(b->link_cfg.name, "cannot run at real-time priority %d (%s): its setpoints are "
                     "timed at normal priority; give perfused CAP_SYS_NICE or LimitRTPRIO=%d",
                     b->rt_prio, strerror(-rc), b->rt_prio);
    }
    try_link(b);
    while (bus_cycle(b))
        ;
    for (size_t i = 0; b->link_up && i < b->n_devs; i++) {
        struct bus_dev *d = &b->devs[i];
        if (d->connected && d->cfg.drv->disconnect)
            d->cfg.drv->disconnect(d->cfg.state, &b->link);
    }
    link_close(&b->link);
    return NULL;
}

/* Run the bus thread at real-time priority prio (0: normal); before bus_start. */
void bus_set_realtime(struct bus *b, int prio)
{
    b->rt_prio = prio;
}

/* Start the thread. */
int bus_start(struct bus *b)
{
    int rc = pthread_create(&b->thread, NULL, bus_main, b);
    if (rc != 0)
        return -rc;
    b->started = true;
    return 0;
}

/* Ask the thread to finish queued writes, close the link and exit; join it. */
void bus_stop(struct bus *b)
{
    if (!b->started)
        return;
    pthread_mutex_lock(&b->lock);
    b->stop = true;
    pthread_cond_signal(&b->cond);
    pthread_mutex_unlock(&b->lock);
    pthread_join(b->thread, NULL);
    b->started = false;
}

/* Free the bus. */
void bus_free(struct bus *b)
{
    if (b == NULL)
        return;
    bus_stop(b);
    pthread_mutex_destroy(&b->lock);
    pthread_cond_destroy(&b->cond);
    note_queue_free(&b->notes);
    free(b->devs);
    free(b);
}
