/*
 * The recorder thread: the only thread that writes a run's HDF5 file.
 *
 * Producers (the loop thread, a simulation) copy records into a queue of
 * recycled blocks under a mutex: a push is a memcpy, with no I/O and no
 * allocation once the queue has its usual size. The thread wakes when
 * records are queued and the flush interval has passed since its last
 * write (or at once past WAKE_RECORDS), takes every queued block at once,
 * sorts the rows per series and appends each series with one extent change
 * and one hyperslab write per dataset, then flushes, so SWMR readers see new
 * data within about one flush interval. It fsyncs at the checkpoint interval,
 * because HDF5 never does.
 *
 * Failed writes keep their rows staged and are retried at the next interval;
 * records that do not fit in max_queued are dropped, counted, and reported
 * in /events once there is room again. The HDF5 side is recorder_file.c.
 */
#include "recorder.h"
#include "recorder_file.h"
#include "recorder_queue.h"
#include "log.h"
#include "timeutil.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_MAX_QUEUED (4u * 1024 * 1024)
#define WAKE_RECORDS 65536            /* write early past this many queued records */
#define VALUE_BLOCK_BYTES (64 * 1024) /* 2730 samples: about 27 s of 10 channels at 10 Hz */
#define TABLE_BLOCK_BYTES (16 * 1024)

/* A queued sample or setpoint: 24 bytes, the hot path. */
struct rec_value {
    uint32_t series;              /* channel index, or n_channels + setpoint index */
    double t, v;
};

/* One series' rows waiting to be appended (thread only). */
struct stage {
    double *t, *v;
    size_t n, cap;
};

struct recorder {
    /* Fixed at start. */
    struct rec_run_info info;     /* strings and arrays point into owned */
    char **owned;                 /* every string copied at start */
    size_t n_owned;
    struct rec_channel *series;   /* channels, then setpoints */
    size_t n_channels, n_series, max_queued, wake_records;
    uint64_t flush_ns, fsync_ns;
    void (*notify)(void *arg);
    void *notify_arg;
    pthread_t thread;
    bool thread_started;

    /* Shared with producers, under lock. */
    pthread_mutex_t lock;
    pthread_cond_t wake;          /* records queued, finish asked, drain asked */
    pthread_cond_t drained;       /* the thread took the queue (recorder_throttle) */
    struct recq values, events, steps;
    size_t queued;                /* records in the three queues */
    bool accepting;               /* false once finishing or if the file failed */
    bool finish, drain_now;
    char final_state[REC_STATE_LEN];
    struct rec_status status;
    double last_drop_t;           /* time of the latest dropped record */

    /* The recorder thread's own. */
    struct recorder_file *file;
    struct stage *stage;
    size_t staged;                /* rows in stage[] */
    struct rec_event_row *ev;     /* events waiting to be appended */
    size_t ev_n, ev_cap;
    struct rec_step_row *st;      /* step rows waiting to be written */
    size_t st_n, st_cap;
    uint64_t unflushed;           /* rows appended but not yet flushed */
    uint64_t dropped_reported;
    uint64_t last_write_ns, last_fsync_ns;
    bool unsynced;                /* flushed data not yet fsynced */
    struct log_ratelimit err_rl;
};

/* ----------------------------------------------------------- status */

/* Call the notify callback, if any (recorder thread, no lock held). */
static void notify(struct recorder *r)
{
    if (r->notify != NULL)
        r->notify(r->notify_arg);
}

/* Count a write error and keep its message (recorder thread). */
static void write_failed(struct recorder *r, const char *msg)
{
    pthread_mutex_lock(&r->lock);
    r->status.write_errors++;
    snprintf(r->status.last_error, sizeof r->status.last_error, "%s", msg);
    pthread_mutex_unlock(&r->lock);
    log_limited(&r->err_rl, 10000, LOG_ERROR, "recorder", "%s: %s", r->info.path, msg);
}

/* ------------------------------------------------------ thread: batch */

/* Make room for one more row in a stage; false if memory ran out. */
static bool stage_grow(struct stage *s)
{
    if (s->n < s->cap)
        return true;
    size_t cap = s->cap ? s->cap * 2 : 1024;
    double *t = realloc(s->t, cap * sizeof *t);
    if (t == NULL)
        return false;
    s->t = t;
    double *v = realloc(s->v, cap * sizeof *v);
    if (v == NULL)
        return false;
    s->v = v;
    s->cap = cap;
    return true;
}

/* Count records lost on the thread's side (staging full or out of memory). */
static void drop_on_thread(struct recorder *r, uint64_t n, double t)
{
    pthread_mutex_lock(&r->lock);
    r->status.dropped += n;
    r->last_drop_t = t;
    pthread_mutex_unlock(&r->lock);
}

/* Sort a batch of values into per-series rows. Staged rows are bounded by
 * max_queued too, so a disk that keeps failing cannot eat the memory. */
static void stage_values(struct recorder *r, const struct recq_batch *b)
{
    for (const struct recq_block *blk = b->head; blk != NULL; blk = blk->next) {
        for (size_t i = 0; i < blk->n; i++) {
            const struct rec_value *rv = recq_at(&r->values, blk, i);
            struct stage *s = &r->stage[rv->series];
            if (r->staged >= r->max_queued || !stage_grow(s)) {
                drop_on_thread(r, 1, rv->t);
                continue;
            }
            s->t[s->n] = rv->t;
            s->v[s->n++] = rv->v;
            r->staged++;
        }
    }
}

/* Append one row to a growable array of elem-byte rows; false on no memory. */
static bool rows_push(void **rows, size_t *n, size_t *cap, size_t elem, const void *row)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 64;
        void *p = realloc(*rows, c * elem);
        if (p == NULL)
            return false;
        *rows = p;
        *cap = c;
    }
    memcpy((char *)*rows + *n * elem, row, elem);
    (*n)++;
    return true;
}

/* Copy a batch of table rows (events or steps) to the thread's pending list. */
static void stage_rows(struct recorder *r, const struct recq *q, const struct recq_batch *b,
                       void **rows, size_t *n, size_t *cap)
{
    for (const struct recq_block *blk = b->head; blk != NULL; blk = blk->next)
        for (size_t i = 0; i < blk->n; i++)
            if (!rows_push(rows, n, cap, q->elem, recq_at(q, blk, i)))
                drop_on_thread(r, 1, *(const double *)recq_at(q, blk, i));
}

/* Give a batch's blocks back to their queue. */
static void give_back(struct recorder *r, struct recq *q, struct recq_batch *b)
{
    pthread_mutex_lock(&r->lock);
    struct recq_block *excess = recq_give_back(q, b);
    pthread_mutex_unlock(&r->lock);
    recq_free_chain(excess);
}

/* Add a /events row saying how many records were dropped, once per new loss. */
static void report_drops(struct recorder *r)
{
    pthread_mutex_lock(&r->lock);
    uint64_t dropped = r->status.dropped;
    double t = r->last_drop_t;
    pthread_mutex_unlock(&r->lock);
    if (dropped == r->dropped_reported)
        return;
    struct rec_event_row e = { .time = t };
    snprintf(e.severity, sizeof e.severity, "alarm");
    snprintf(e.source, sizeof e.source, "storage");
    snprintf(e.code, sizeof e.code, "records_dropped");
    snprintf(e.message, sizeof e.message,
             "%llu records lost (%llu in all): the recorder queue was full (max %zu records); "
             "the file has a gap before t = %.3f s",
             (unsigned long long)(dropped - r->dropped_reported), (unsigned long long)dropped,
             r->max_queued, t);
    log_error("recorder", "%s: %s", r->info.path, e.message);
    r->dropped_reported = dropped;
    rows_push((void **)&r->ev, &r->ev_n, &r->ev_cap, sizeof e, &e);
}

/* Append every staged series; returns the rows written. Failed series stay staged. */
static uint64_t write_series(struct recorder *r)
{
    uint64_t rows = 0;
    char err[160];
    for (size_t i = 0; i < r->n_series; i++) {
        struct stage *s = &r->stage[i];
        if (s->n == 0)
            continue;
        if (recorder_file_append_series(r->file, i, s->t, s->v, s->n, err, sizeof err) < 0) {
            char msg[200];
            snprintf(msg, sizeof msg, "writing %s: %s", r->series[i].name, err);
            write_failed(r, msg);
            continue;
        }
        rows += s->n;
        r->staged -= s->n;
        s->n = 0;
    }
    return rows;
}

/* Append pending events and write pending step rows; returns the rows written. */
static uint64_t write_tables(struct recorder *r)
{
    uint64_t rows = 0;
    char err[160];
    if (r->ev_n > 0) {
        if (recorder_file_append_events(r->file, r->ev, r->ev_n, err, sizeof err) < 0) {
            write_failed(r, err);
        } else {
            rows += r->ev_n;
            r->ev_n = 0;
        }
    }
    size_t done = 0;
    while (done < r->st_n && recorder_file_write_step(r->file, &r->st[done], err, sizeof err) == 0)
        done++;
    if (done < r->st_n)
        write_failed(r, err);
    /* Keep the rows not written, in order, for the next attempt. */
    memmove(r->st, r->st + done, (r->st_n - done) * sizeof *r->st);
    r->st_n -= done;
    return rows + done;
}

/* Write everything pending and flush; time it, and warn when the disk cannot keep up. */
static void write_pending(struct recorder *r)
{
    uint64_t t0 = time_mono_ns();
    r->unflushed += write_series(r) + write_tables(r);
    uint64_t t1 = time_mono_ns();
    char err[160];
    if (recorder_file_flush(r->file, err, sizeof err) < 0) {
        write_failed(r, err);
    } else {
        pthread_mutex_lock(&r->lock);
        r->status.written += r->unflushed;
        pthread_mutex_unlock(&r->lock);
        r->unflushed = 0;
        r->unsynced = true;
    }
    uint64_t t2 = time_mono_ns();
    r->last_write_ns = t2;
    log_debug("recorder", "batch written in %.2f ms, flushed in %.2f ms",
              (double)(t1 - t0) / 1e6, (double)(t2 - t1) / 1e6);
    if (t2 - t0 > r->flush_ns)
        log_warn("recorder", "%s: writing one batch took %.0f ms, longer than the flush interval",
                 r->info.path, (double)(t2 - t0) / 1e6);
}

/* fsync if data was flushed since the last fsync and the interval has passed. */
static void fsync_if_due(struct recorder *r, uint64_t now)
{
    if (!r->unsynced || now - r->last_fsync_ns < r->fsync_ns)
        return;
    char err[160];
    if (recorder_file_fsync(r->file, err, sizeof err) < 0)
        write_failed(r, err);
    else
        r->unsynced = false;
    r->last_fsync_ns = now;
}

/* The batches taken from the three queues in one go. */
struct batches {
    struct recq_batch values, events, steps;
    bool last;                    /* finishing: nothing more will be queued */
};

/* Stage a taken batch, write, flush, fsync when due, and tell the owner. */
static void process(struct recorder *r, struct batches *b)
{
    stage_values(r, &b->values);
    stage_rows(r, &r->events, &b->events, (void **)&r->ev, &r->ev_n, &r->ev_cap);
    stage_rows(r, &r->steps, &b->steps, (void **)&r->st, &r->st_n, &r->st_cap);
    give_back(r, &r->values, &b->values);
    give_back(r, &r->events, &b->events);
    give_back(r, &r->steps, &b->steps);
    report_drops(r);
    bool pending = r->staged > 0 || r->ev_n > 0 || r->st_n > 0 || r->unflushed > 0;
    if (pending)
        write_pending(r);
    fsync_if_due(r, time_mono_ns());
    if (pending)
        notify(r);
}

/* ------------------------------------------------------- thread: loop */

/* Rows the thread still holds (staged after a failed write). Under lock or on the thread. */
static bool thread_pending(const struct recorder *r)
{
    return r->staged > 0 || r->ev_n > 0 || r->st_n > 0 || r->unflushed > 0;
}

/* When the thread must next wake with nothing new queued, or UINT64_MAX. */
static uint64_t next_deadline(const struct recorder *r)
{
    uint64_t d = UINT64_MAX;
    if (r->queued > 0 || thread_pending(r))
        d = r->last_write_ns + r->flush_ns;
    if (r->unsynced && r->last_fsync_ns + r->fsync_ns < d)
        d = r->last_fsync_ns + r->fsync_ns;
    return d;
}

/* Wait on the wake condition until the monotonic deadline (or forever). */
static void wait_until(struct recorder *r, uint64_t deadline)
{
    if (deadline == UINT64_MAX) {
        pthread_cond_wait(&r->wake, &r->lock);
        return;
    }
    struct timespec ts = { .tv_sec = (time_t)(deadline / NS_PER_SEC),
                           .tv_nsec = (long)(deadline % NS_PER_SEC) };
    pthread_cond_timedwait(&r->wake, &r->lock, &ts);
}

/* Wait until there is work, then take every queued record into b. */
static void take_work(struct recorder *r, struct batches *b)
{
    pthread_mutex_lock(&r->lock);
    while (!r->finish && !r->drain_now && r->queued < r->wake_records) {
        uint64_t deadline = next_deadline(r);
        if (time_mono_ns() >= deadline)
            break;
        wait_until(r, deadline);
    }
    recq_take(&r->values, &b->values);
    recq_take(&r->events, &b->events);
    recq_take(&r->steps, &b->steps);
    r->queued = 0;
    r->drain_now = false;
    b->last = r->finish;
    pthread_cond_broadcast(&r->drained);
    pthread_mutex_unlock(&r->lock);
}

/* Create the file and publish the outcome; false if it could not be made. */
static bool open_file(struct recorder *r)
{
    char err[160] = "";
    int rc = recorder_file_create(&r->file, &r->info, err, sizeof err);
    pthread_mutex_lock(&r->lock);
    r->status.open_error = rc;
    if (rc < 0) {
        snprintf(r->status.last_error, sizeof r->status.last_error, "%s", err);
        r->accepting = false;
    }
    pthread_mutex_unlock(&r->lock);
    if (rc < 0)
        log_error("recorder", "%s: %s", r->info.path, err);
    notify(r);
    return rc == 0;
}

/* Wait for finish when there is no file, discarding whatever was queued. */
static void idle_without_file(struct recorder *r)
{
    struct batches b;
    do {
        take_work(r, &b);
        give_back(r, &r->values, &b.values);
        give_back(r, &r->events, &b.events);
        give_back(r, &r->steps, &b.steps);
    } while (!b.last);
}

/* Close the file with its final state and report the outcome. */
static void close_file(struct recorder *r)
{
    if (thread_pending(r))
        log_error("recorder", "%s: %zu rows could not be written before closing", r->info.path,
                  r->staged + r->ev_n + r->st_n);
    char state[REC_STATE_LEN], err[160];
    pthread_mutex_lock(&r->lock);
    snprintf(state, sizeof state, "%s", r->final_state);
    pthread_mutex_unlock(&r->lock);
    if (recorder_file_close(r->file, state, err, sizeof err) < 0)
        write_failed(r, err);
    r->file = NULL;
}

/* The recorder thread: create, then write batches until finished, then close. */
static void *recorder_main(void *arg)
{
    struct recorder *r = arg;
    pthread_setname_np(pthread_self(), "recorder");
    if (open_file(r)) {
        r->last_fsync_ns = time_mono_ns();
        struct batches b;
        do {
            take_work(r, &b);
            process(r, &b);
        } while (!b.last);
        close_file(r);
    } else {
        idle_without_file(r);
    }
    pthread_mutex_lock(&r->lock);
    r->status.finished = 1;
    pthread_cond_broadcast(&r->drained);
    pthread_mutex_unlock(&r->lock);
    notify(r);
    return NULL;
}

/* ------------------------------------------------------------ start */

/* Copy s (NULL as "") into r's owned strings. */
static const char *keep(struct recorder *r, const char *s)
{
    char *c = strdup(s ? s : "");
    if (c == NULL)
        return NULL;
    r->owned[r->n_owned++] = c;
    return c;
}

/* Copy one series description; false on no memory. */
static bool copy_series(struct recorder *r, struct rec_channel *dst, const struct rec_channel *src,
                        const char *default_kind)
{
    dst->name = keep(r, src->name);
    dst->units = keep(r, src->units);
    dst->device = keep(r, src->device);
    dst->driver = keep(r, src->driver);
    dst->kind = keep(r, src->kind ? src->kind : default_kind);
    return dst->name && dst->units && dst->device && dst->driver && dst->kind;
}

/* Copy everything info points to; 0 or -ENOMEM. */
static int copy_info(struct recorder *r, const struct rec_run_info *info)
{
    r->n_channels = info->n_channels;
    r->n_series = info->n_channels + info->n_setpoints;
    r->owned = calloc(10 + 5 * r->n_series, sizeof *r->owned);
    r->series = calloc(r->n_series ? r->n_series : 1, sizeof *r->series);
    r->stage = calloc(r->n_series ? r->n_series : 1, sizeof *r->stage);
    if (r->owned == NULL || r->series == NULL || r->stage == NULL)
        return -ENOMEM;
    struct rec_run_info *c = &r->info;
    *c = *info;
    bool ok = (c->path = keep(r, info->path)) && (c->run_id = keep(r, info->run_id)) &&
              (c->protocol_name = keep(r, info->protocol_name)) &&
              (c->protocol_path = keep(r, info->protocol_path)) &&
              (c->protocol_text = keep(r, info->protocol_text)) &&
              (c->rig_name = keep(r, info->rig_name)) && (c->rig_text = keep(r, info->rig_text)) &&
              (c->operator_name = keep(r, info->operator_name)) && (c->host = keep(r, info->host)) &&
              (c->software_version = keep(r, info->software_version));
    for (size_t i = 0; ok && i < r->n_series; i++)
        ok = i < info->n_channels
                 ? copy_series(r, &r->series[i], &info->channels[i], "measured")
                 : copy_series(r, &r->series[i], &info->setpoints[i - info->n_channels], "setpoint");
    c->channels = r->series;
    c->setpoints = r->series + info->n_channels;
    return ok ? 0 : -ENOMEM;
}

/* Apply the defaults of rec_run_info's tunables. */
static void set_tunables(struct recorder *r, const struct rec_run_info *info)
{
    double flush = info->flush_interval_s > 0 ? info->flush_interval_s : 1.0;
    double sync = info->fsync_interval_s > 0 ? info->fsync_interval_s : 10.0;
    r->flush_ns = (uint64_t)(flush * 1e9);
    r->fsync_ns = (uint64_t)(sync * 1e9);
    r->max_queued = info->max_queued ? info->max_queued : DEFAULT_MAX_QUEUED;
    r->wake_records = r->max_queued / 2 < WAKE_RECORDS ? r->max_queued / 2 + 1 : WAKE_RECORDS;
}

/* Set up the mutex, the conditions (on the monotonic clock) and the queues. */
static int init_sync(struct recorder *r)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->wake, &ca);
    pthread_cond_init(&r->drained, NULL);
    pthread_condattr_destroy(&ca);
    /* Two value blocks preallocated: one filling while the thread writes the other. */
    int rc = recq_init(&r->values, sizeof(struct rec_value), VALUE_BLOCK_BYTES, 2, 16);
    rc = rc ? rc : recq_init(&r->events, sizeof(struct rec_event_row), TABLE_BLOCK_BYTES, 1, 4);
    rc = rc ? rc : recq_init(&r->steps, sizeof(struct rec_step_row), TABLE_BLOCK_BYTES, 1, 4);
    return rc;
}

/* Start the thread with every signal blocked, so signals go to the loop thread. */
static int spawn(struct recorder *r)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&r->thread, NULL, recorder_main, r);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        return -rc;
    r->thread_started = true;
    return 0;
}

/* Start the recorder thread, which creates the file. */
int recorder_start(struct recorder **out, const struct rec_run_info *info,
                   void (*notify_cb)(void *arg), void *notify_arg)
{
    struct recorder *r = calloc(1, sizeof *r);
    if (r == NULL)
        return -ENOMEM;
    set_tunables(r, info);
    r->notify = notify_cb;
    r->notify_arg = notify_arg;
    r->accepting = true;
    snprintf(r->final_state, sizeof r->final_state, "interrupted");
    int rc = init_sync(r);
    rc = rc ? rc : copy_info(r, info);
    rc = rc ? rc : spawn(r);
    if (rc < 0) {
        recorder_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

/* ---------------------------------------------------------- enqueue */

/* Queue one record under the lock, or count it as dropped. */
static void enqueue(struct recorder *r, struct recq *q, const void *rec, double t)
{
    pthread_mutex_lock(&r->lock);
    if (!r->accepting) {
        if (r->status.open_error != 0)
            r->status.dropped++;       /* no file: lost, and the owner knows why */
    } else if (r->queued >= r->max_queued || recq_push(q, rec) < 0) {
        r->status.dropped++;
        r->last_drop_t = t;
    } else if (++r->queued == 1 || r->queued == r->wake_records) {
        /* First record since the last take: the thread may be asleep with no
         * deadline. Past the threshold: write early rather than drop. */
        pthread_cond_signal(&r->wake);
    }
    pthread_mutex_unlock(&r->lock);
}

/* Queue a measured sample. */
void recorder_sample(struct recorder *r, uint32_t ch, double t, double value)
{
    if (ch >= r->n_channels)
        return;
    struct rec_value rv = { ch, t, value };
    enqueue(r, &r->values, &rv, t);
}

/* Queue a commanded value. */
void recorder_setpoint(struct recorder *r, uint32_t sp, double t, double value)
{
    if (sp >= r->n_series - r->n_channels)
        return;
    struct rec_value rv = { (uint32_t)r->n_channels + sp, t, value };
    enqueue(r, &r->values, &rv, t);
}

/* Copy at most n - 1 bytes of s and a NUL, never cutting a UTF-8 sequence. */
static void copy_utf8(char *dst, size_t n, const char *s)
{
    size_t len = s ? strlen(s) : 0;
    if (len >= n) {
        len = n - 1;
        /* Back up over continuation bytes (10xxxxxx) to a sequence start. */
        while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80)
            len--;
    }
    memcpy(dst, s ? s : "", len);
    memset(dst + len, 0, n - len);
}

/* Queue an event row. */
void recorder_event(struct recorder *r, double t, const char *severity, const char *source,
                    const char *code, const char *message)
{
    struct rec_event_row e = { .time = t };
    copy_utf8(e.severity, sizeof e.severity, severity);
    copy_utf8(e.source, sizeof e.source, source);
    copy_utf8(e.code, sizeof e.code, code);
    copy_utf8(e.message, sizeof e.message, message);
    enqueue(r, &r->events, &e, t);
}

/* Queue a /steps row. */
void recorder_step(struct recorder *r, const struct rec_step *step)
{
    if (step->index < 0)
        return;
    struct rec_step_row row = { .index = step->index, .planned_start = step->planned_start,
                                .start = step->start, .end = step->end };
    copy_utf8(row.path, sizeof row.path, step->path);
    copy_utf8(row.name, sizeof row.name, step->name);
    copy_utf8(row.outcome, sizeof row.outcome, step->outcome);
    enqueue(r, &r->steps, &row, step->start);
}

/* Block until at most max_pending samples are queued (never on the loop thread). */
void recorder_throttle(struct recorder *r, size_t max_pending)
{
    pthread_mutex_lock(&r->lock);
    while (r->values.count > max_pending && !r->status.finished) {
        r->drain_now = true;
        pthread_cond_signal(&r->wake);
        pthread_cond_wait(&r->drained, &r->lock);
    }
    pthread_mutex_unlock(&r->lock);
}

/* ----------------------------------------------------- status, finish */

/* Copy the current status. */
void recorder_get_status(struct recorder *r, struct rec_status *out)
{
    pthread_mutex_lock(&r->lock);
    *out = r->status;
    pthread_mutex_unlock(&r->lock);
}

/* Ask the thread to write what is queued and close with final_state. */
void recorder_finish(struct recorder *r, const char *final_state)
{
    pthread_mutex_lock(&r->lock);
    if (!r->finish) {
        snprintf(r->final_state, sizeof r->final_state, "%s", final_state ? final_state : "interrupted");
        r->finish = true;
        r->accepting = false;
        pthread_cond_signal(&r->wake);
    }
    pthread_mutex_unlock(&r->lock);
}

/* Free the thread's staging memory. */
static void free_stages(struct recorder *r)
{
    for (size_t i = 0; r->stage != NULL && i < r->n_series; i++) {
        free(r->stage[i].t);
        free(r->stage[i].v);
    }
    free(r->stage);
    free(r->ev);
    free(r->st);
}

/* Join the thread (finishing as "interrupted" if needed) and free. */
void recorder_free(struct recorder *r)
{
    if (r == NULL)
        return;
    if (r->thread_started) {
        recorder_finish(r, "interrupted");
        pthread_join(r->thread, NULL);
    }
    free_stages(r);
    for (size_t i = 0; i < r->n_owned; i++)
        free(r->owned[i]);
    free(r->owned);
    free(r->series);
    recq_destroy(&r->values);
    recq_destroy(&r->events);
    recq_destroy(&r->steps);
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->wake);
    pthread_cond_destroy(&r->drained);
    free(r);
}
