/* A run: one protocol on its host's rig, its runner and its run file. */
#include "run.h"
#include "base/loopwake.h"
#include "base/units.h"
#include "run/alarms.h"
#include "run/delivery.h"
#include "run/interlock.h"
#include "run/latch.h"
#include "journal.h"
#include "base/latency.h"
#include "record/eventlog.h"
#include "record/runfile.h"
#include "plan/claims.h"
#include "base/sha256.h"
#include "base/log.h"
#include "base/timeutil.h"
#include "base/utf8.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

struct run {
    struct run_host h;          /* a copy of what it was started with */
    struct plan *plan;
    struct runner *runner;
    struct recorder *rec;
    struct loopwake rec_wake;   /* the recorder reported something */
    bool rec_async_open;
    uv_timer_t settle;          /* from the run's end to closing its file */
    bool settle_open;
    bool finishing;             /* recorder_finish has been called */
    int handles;                /* libuv handles still open */
    char operator_name[RUN_OPERATOR_MAX + 1];
    int storage_alarm;          /* the storage_fault alarm is raised */
    int64_t refusal_window_ns;  /* start of the second in which refusals are counted */
    unsigned refusals;          /* refusals recorded in that second */
    unsigned refusals_held;     /* refusals not recorded since the last one that was */
    char id[33];
    char path[PATH_MAX];
    char replaced[PATH_MAX];    /* continued in a new file: the one before it ("": none) */
    int64_t start_ns, start_wall_ns;
    struct runfile_series series;
    int *rec_chan;              /* rig channel -> /channels index, or -1 (in series) */
    int *rec_sp;                /* rig channel -> /setpoints index, or -1 (in series) */
    enum run_state final;
    bool interrupted;           /* closed by on_restart: safe-stop: its file's state is "interrupted" */
    bool ended;                 /* runner reached a final state */
    bool closed;                /* the file is closed */
    bool shutdown;              /* the daemon is stopping during the run */
    int64_t end_ns;             /* clock time the run ended */
    struct run_event_rec *events;   /* ring of the latest RUN_EVENTS_KEPT */
    size_t n_events;                /* ever recorded */
    double *proto_sp;           /* per rig channel: the protocol's last value (NaN: none) */
    struct run_override *ovr;   /* per rig channel: a manual override made in a pause */
    /* For the journal: what a restart checks it against (journal_check.h). */
    char rig_sha256[65], rig_digest[65], protocol_sha256[65];
};

_Static_assert(sizeof ((struct journal_rec *)0)->operator_name > RUN_OPERATOR_MAX,
               "the journal keeps an operator's name whole");

/* The file's state for a run that has ended: completed, aborted (by an
 * operator) or faulted (a safety action, or on_fault: abort). */
static const char *final_state(const struct run *r)
{
    return r->interrupted ? "interrupted" : run_outcome_name(r->final);
}

/* How long a run's file stays open after its end, for the end's consequences. */
#define RUN_SETTLE_MS 500

/* Seconds since t = 0 for a clock time. */
static double rel(const struct run *r, int64_t t_ns)
{
    return (double)(t_ns - r->start_ns) / 1e9;
}

/* Record an event from outside the runner. */
void run_event(struct run *r, int64_t t_ns, const char *severity, const char *source,
               const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    utf8_vformat(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log_info(source, "%s: %s", code, msg);
    if (r->rec != NULL && !r->closed)
        recorder_event(r->rec, rel(r, t_ns), severity, source, code, msg);
    if (r->events == NULL)
        r->events = calloc(RUN_EVENTS_KEPT, sizeof *r->events);
    if (r->events != NULL) {
        struct run_event_rec *e = &r->events[r->n_events % RUN_EVENTS_KEPT];
        e->seq = r->n_events++;
        e->t = rel(r, t_ns);
        utf8_copy(e->severity, sizeof e->severity, severity);
        utf8_copy(e->source, sizeof e->source, source);
        utf8_copy(e->code, sizeof e->code, code);
        utf8_copy(e->message, sizeof e->message, msg);   /* the file keeps as many bytes */
    }
}

/* The pumps whose syringes the run follows: alone on the rig every pump (as
 * always), beside other runs only those it claims. */
static const bool *pumps_of(const struct run *r)
{
    return r->h.others != NULL && r->h.others(r->h.ctx) ? r->h.claimed : NULL;
}

/* Each syringe's level and the counter reading it was computed at, into j. */
static void journal_put_fills(const struct delivery *dl, struct journal_rec *j)
{
    for (size_t i = 0; i < dl->n_pumps && j->n_fills < JOURNAL_MAX_FILLS; i++) {
        struct journal_fill *f = &j->fills[j->n_fills];
        struct delivery_level l;
        if (strlen(dl->pumps[i].name) >= sizeof f->pump)
            continue;           /* not kept: unknown after a restart */
        delivery_get_level(dl, i, &l);
        snprintf(f->pump, sizeof f->pump, "%s", dl->pumps[i].name);
        f->fill_ul = l.fill_ul;
        f->counter_ul = l.counter_ul;
        f->fill0_ul = l.fill0_ul;
        snprintf(f->source, sizeof f->source, "%s", syringe_source_name(l.source));
        j->n_fills++;
    }
}

/* The syringes' levels a journal carried over a restart (unknown where it has none). */
static void journal_get_fills(const struct journal_rec *j, const struct delivery *dl,
                              struct delivery_level *levels)
{
    for (size_t i = 0; i < dl->n_pumps; i++) {
        levels[i] = (struct delivery_level){ .fill_ul = NAN, .counter_ul = NAN, .fill0_ul = NAN,
                                             .source = FILL_UNKNOWN };
        for (size_t k = 0; k < j->n_fills; k++) {
            const struct journal_fill *f = &j->fills[k];
            if (strcmp(f->pump, dl->pumps[i].name) != 0)
                continue;
            levels[i] = (struct delivery_level){ .fill_ul = f->fill_ul, .counter_ul = f->counter_ul,
                                                 .fill0_ul = f->fill0_ul };
            if (strcmp(f->source, syringe_source_name(FILL_GIVEN)) == 0)
                levels[i].source = FILL_GIVEN;
            else if (strcmp(f->source, syringe_source_name(FILL_ASSUMED_FULL)) == 0)
                levels[i].source = FILL_ASSUMED_FULL;
        }
    }
}

/* Write where the run is to the journal (in the background). */
static void journal_update(struct run *r)
{
    struct journal_rec j;
    memset(&j, 0, sizeof j);
    if (r->runner == NULL || r->ended || !runner_get_pos(r->runner, &j.pos))
        return;
    snprintf(j.run_id, sizeof j.run_id, "%s", r->id);
    if (r->h.run_name != NULL)
        utf8_copy(j.run_name, sizeof j.run_name, r->h.run_name);
    snprintf(j.file, sizeof j.file, "%s", r->path);
    j.start_wall_ns = r->start_wall_ns;
    j.written_wall_ns = time_wall_ns();
    utf8_copy(j.rig_name, sizeof j.rig_name, r->h.rig->name);
    utf8_copy(j.operator_name, sizeof j.operator_name, r->operator_name);
    j.protocol_path = r->plan->path;
    j.protocol_text = r->plan->text;
    memcpy(j.rig_sha256, r->rig_sha256, sizeof j.rig_sha256);
    memcpy(j.rig_digest, r->rig_digest, sizeof j.rig_digest);
    memcpy(j.protocol_sha256, r->protocol_sha256, sizeof j.protocol_sha256);
    const struct rig *rig = r->h.rig;
    for (size_t i = 0; i < rig->n_channels && j.n_setpoints < JOURNAL_MAX_SETPOINTS; i++)
        if (rig->channels[i].writable && !isnan(r->h.setpoint(r->h.ctx, (int)i))) {
            utf8_copy(j.setpoints[j.n_setpoints].channel, sizeof j.setpoints[0].channel,
                      rig->channels[i].name);
            j.setpoints[j.n_setpoints++].value = r->h.setpoint(r->h.ctx, (int)i);
        }
    for (size_t i = 0; i < rig->n_channels && j.n_overrides < JOURNAL_MAX_SETPOINTS; i++)
        if (r->ovr[i].on) {
            struct journal_override *o = &j.overrides[j.n_overrides++];
            snprintf(o->channel, sizeof o->channel, "%s", rig->channels[i].name);
            o->value = r->ovr[i].value;
            o->protocol = r->proto_sp[i];
            snprintf(o->by, sizeof o->by, "%s", r->ovr[i].by);
            o->since_wall_ns = r->ovr[i].since_wall_ns;
        }
    journal_put_fills(r->h.dl, &j);
    char *text;
    if (journal_encode(&j, &text) == 0)
        journal_writer_put(r->h.journal, text);
    else
        log_error("journal", "run %.8s: its position cannot be encoded; a restart could not "
                  "continue it from here", r->id);
}

/* Command a channel for the run; 0, or the refusal (recorded as write_refused). */
static int run_write(struct run *r, int channel, double value, int64_t planned_ns)
{
    /* A setpoint handed ahead (RUNNER_LEAD_NS) is late if handed later than that. */
    int64_t now = pclock_now(r->h.clock);
    latency_add(r->h.dispatch, now - (planned_ns > now ? planned_ns - RUNNER_LEAD_NS : planned_ns));
    int rc = r->h.write(r->h.ctx, channel, value, planned_ns);
    r->proto_sp[channel] = value;
    if (r->ovr[channel].on) {
        /* The protocol sets the channel again: a kept override ends here. */
        const struct rig_channel *c = &r->h.rig->channels[channel];
        r->ovr[channel].on = false;
        run_event(r, pclock_now(r->h.clock), "info", c->name, "override_ended",
                  "the protocol sets %s to %g %s: the manual override of %g %s by %s ends", c->name, value,
                  c->unit, r->ovr[channel].value, c->unit, r->ovr[channel].by);
    }
    if (r->rec_sp[channel] >= 0 && rc == 0)
        recorder_setpoint(r->rec, (uint32_t)r->rec_sp[channel], rel(r, planned_ns), value);
    if (rc < 0)
        run_event(r, pclock_now(r->h.clock), "fault", r->h.rig->channels[channel].name,
                  "write_refused", "setpoint %g %s not sent: %s", value,
                  r->h.rig->channels[channel].unit,
                  rc == -EACCES ? "held in its safe state by a tripped limit"
                  : rc == -EPERM ? "the channel holds a latched safe state" : strerror(-rc));
    return rc;
}

/* Runner hook: command a channel. */
static void hook_write(void *ctx, int channel, double value, int64_t planned_ns)
{
    run_write(ctx, channel, value, planned_ns);
}

/* Runner hook: put the rig in the plan's safe state. */
static void hook_safe_state(void *ctx)
{
    struct run *r = ctx;
    int64_t now = pclock_now(r->h.clock);
    for (size_t i = 0; i < r->plan->n_safe; i++) {
        int ch = r->plan->safe_state[i].channel;
        if (r->rec_sp[ch] >= 0)
            recorder_setpoint(r->rec, (uint32_t)r->rec_sp[ch], rel(r, now), r->plan->safe_state[i].v0);
    }
    r->h.safe_state(r->h.ctx, r->plan->safe_state, r->plan->n_safe);
    /* Applied only once the devices confirm it: then a safe_state_applied event follows. */
    if (!r->h.safe_confirmed(r->h.ctx))
        run_event(r, now, "info", "runner", "safe_state",
                  "safe state sent; waiting for the devices to confirm it");
}

/* Runner hook: an event. */
static void hook_event(void *ctx, int64_t now, const char *severity, const char *code,
                       const char *message)
{
    struct run *r = ctx;
    run_event(r, now, severity, "runner", code, "%s", message);
    if (strcmp(code, "paused") == 0 || strcmp(code, "resumed") == 0)
        journal_update(r);
    if (strcmp(code, "resumed") == 0)
        delivery_on_resume(r->h.dl, now);
    if ((strcmp(code, "paused") == 0 || strcmp(code, "resumed") == 0) && r->h.paused != NULL)
        r->h.paused(r->h.ctx, strcmp(code, "paused") == 0, now);
    if (strcmp(code, "prompt") == 0)
        r->h.alert(r->h.ctx, r, "prompt", "info", "runner", code, message);
}

/* Runner hook: a /steps row. */
static void hook_step(void *ctx, const struct rec_step *row)
{
    struct run *r = ctx;
    if (r->rec != NULL && !r->closed)
        recorder_step(r->rec, row);
    journal_update(r);
}

/* Tell the recorder to close the file with the run's final state (once). */
static void finish_file(struct run *r, const char *state)
{
    if (r->finishing || r->rec == NULL)
        return;
    r->finishing = true;
    if (r->settle_open)
        uv_timer_stop(&r->settle);
    recorder_finish(r->rec, state);
}

/* How long a run's file waits after its end for the safe state's confirmation. */
#define RUN_SAFE_WAIT_MS 30000

/* The run ended a moment ago: what its end caused is recorded; close the file,
 * once the safe state is confirmed (or has been waited for long enough). */
static void settle_done(uv_timer_t *t)
{
    struct run *r = t->data;
    int64_t now = pclock_now(r->h.clock);
    if (!r->h.safe_confirmed(r->h.ctx)) {
        if (now - r->end_ns < (int64_t)RUN_SAFE_WAIT_MS * 1000000) {
            uv_timer_start(&r->settle, settle_done, 100, 0);
            return;
        }
        run_event(r, now, "fault", "runner", "safe_state_unconfirmed",
                  "the safe state is still not confirmed %d s after the run ended; the file closes "
                  "without it", RUN_SAFE_WAIT_MS / 1000);
    }
    finish_file(r, final_state(r));
}

/* Runner hook: the run is over. The file stays open a moment longer, so that
 * the outcome of the safe-state commands its end sent is in it too. */
static void hook_finished(void *ctx, enum run_state final)
{
    struct run *r = ctx;
    r->ended = true;
    r->final = final;
    r->end_ns = pclock_now(r->h.clock);
    interlocks_set_owner(r->h.il, r, NULL, 0, r->end_ns);
    delivery_stop_some(r->h.dl, pumps_of(r));
    journal_writer_remove(r->h.journal);     /* nothing left to continue */
    char msg[200];
    utf8_format(msg, sizeof msg, "run of '%s' ended: %s", r->plan->name, run_state_name(final));
    r->h.alert(r->h.ctx, r, "run_end", final == RUN_COMPLETED ? "info" : "warning", "runner",
                 run_state_name(final), msg);
    if (r->settle_open)
        uv_timer_start(&r->settle, settle_done, RUN_SETTLE_MS, 0);
    else
        finish_file(r, final_state(r));
}

/* The recorder reported something (from its thread, through the async). */
static void rec_notified(struct loopwake *w)
{
    struct run *r = w->data;
    struct rec_status st;
    recorder_get_status(r->rec, &st);
    if (st.open_error != 0 && !r->ended) {
        /* A run nobody can analyse afterwards is not worth the cells: stop it. */
        log_error("recorder", "cannot create %s: %s", r->path, st.last_error);
        runner_abort(r->runner, "the run file cannot be created");
    }
    if (st.storage_failing != r->storage_alarm) {
        /* Control goes on; the samples wait in memory (bounded) for the disk. */
        r->storage_alarm = st.storage_failing;
        char m[sizeof r->path + sizeof st.last_error + 64];
        snprintf(m, sizeof m, "cannot write %s: %s; the run goes on and its data waits in memory",
                 r->path, st.last_error);
        r->h.alarm(r->h.ctx, r, st.storage_failing, "alarm", "storage", "storage_fault", m);
    }
    if (st.finished && !r->closed) {
        r->closed = true;
        log_info("run", "run file closed: %s", r->path);
        r->h.closed(r->h.ctx, r);
    }
}


/* Create the data directory if needed (0750: researchers read through the group). */
static int ensure_dir(const char *dir)
{
    if (mkdir(dir, 0750) == 0 || errno == EEXIST)
        return 0;
    return -errno;
}

/* The run's metadata for its file: the protocol's description, the notes and
 * sample fields given with run. Keys point into who and the plan; values of
 * sample fields into kv (one buffer per field). Returns how many. */
static size_t run_metadata(const struct run *r, const struct run_actor *who, struct rec_field *f,
                           char kv[][RUN_SAMPLE_KEY_MAX + 1])
{
    size_t n = 0;
    if (r->plan->description != NULL)
        f[n++] = (struct rec_field){ .group = "", .key = "description", .value = r->plan->description };
    if (who->notes != NULL && *who->notes)
        f[n++] = (struct rec_field){ .group = "", .key = "notes", .value = who->notes };
    for (size_t i = 0; i < who->n_sample && i < RUN_SAMPLE_MAX; i++) {
        const char *eq = strchr(who->sample[i], '=');
        if (eq == NULL || (size_t)(eq - who->sample[i]) > RUN_SAMPLE_KEY_MAX)
            continue;
        snprintf(kv[i], RUN_SAMPLE_KEY_MAX + 1, "%.*s", (int)(eq - who->sample[i]), who->sample[i]);
        f[n++] = (struct rec_field){ .group = "sample", .key = kv[i], .value = eq + 1 };
    }
    return n;
}

/* Start the recorder for a new run file. */
static int open_file(struct run *r, const struct run_actor *who, bool append)
{
    const struct run_host *h = &r->h;
    int rc = ensure_dir(h->data_dir);
    if (rc < 0)
        return rc;
    /* What it records: what it claims, the sensors it names, its 'record:' (default: every channel). */
    struct claims cl;
    if ((rc = claims_of_plan(r->plan, r->h.rig, &cl)) < 0)
        return rc;
    bool *keep = calloc(r->h.rig->n_channels + 1, sizeof *keep);
    char *claimed = malloc(4096), *sensors = malloc(4096);
    if (keep == NULL || claimed == NULL || sensors == NULL) {
        claims_free(&cl);
        free(keep), free(claimed), free(sensors);
        return -ENOMEM;
    }
    claims_recorded(r->plan, &cl, keep);
    claims_list(&cl, r->h.rig, claimed, 4096);
    struct claims reads = { .n = cl.n, .writes = cl.reads };
    claims_list(&reads, r->h.rig, sensors, 4096);
    claims_free(&cl);
    rc = runfile_series_build_only(r->h.rig, keep, &r->series);
    free(keep);
    if (rc < 0) {
        free(claimed), free(sensors);
        return rc;
    }
    r->rec_chan = r->series.rec_chan;
    r->rec_sp = r->series.rec_sp;
    struct rec_run_info info = {
        .path = r->path, .run_id = r->id, .protocol_name = r->plan->name,
        .protocol_path = r->plan->path, .protocol_text = r->plan->text,
        .rig_name = r->h.rig->name, .rig_text = r->h.rig->text,
        .operator_name = who->operator_name ? who->operator_name : "",
        .host = h->host_name, .software_version = PERFUSE_VERSION " (" PERFUSE_GIT_REV ")",
        .start_wall_ns = r->start_wall_ns,
        .channels = r->series.chans, .n_channels = r->series.n_chans,
        .setpoints = r->series.sps, .n_setpoints = r->series.n_sps,
        .confirmed = r->series.confs, .n_confirmed = r->series.n_sps,
        .regulators = r->series.regs, .n_regulators = r->series.n_regs,
        .regulated = r->series.reg_series, .n_regulated = r->series.n_reg_series,
        .compression = r->h.rig->rec.compression, .flush_interval_s = r->h.rig->rec.flush_s,
        .fsync_interval_s = r->h.rig->rec.checkpoint_s, .append = append,
        .buffer_samples = r->h.rig->rec.buffer, .claims = claimed, .sensors = sensors,
    };
    struct rec_field fields[RUN_SAMPLE_MAX + 3];
    char keys[RUN_SAMPLE_MAX][RUN_SAMPLE_KEY_MAX + 1];
    const char *slash = strrchr(r->replaced, '/');
    if (!append) {
        info.fields = fields;
        info.n_fields = run_metadata(r, who, fields, keys);
        /* A run continued in a new file: the file it was in before, by name. */
        if (r->replaced[0] != '\0')
            fields[info.n_fields++] = (struct rec_field){ .group = "", .key = "continued_from",
                                                          .value = slash ? slash + 1 : r->replaced };
    }
    /* A continued run goes on in its file as it was laid out. */
    if (!append && (rc = delivery_add_to_file(r->h.dl, &r->series, &info)) < 0) {
        free(claimed), free(sensors);
        return rc;
    }
    info.channels = r->series.chans;
    info.n_channels = r->series.n_chans;
    rc = loopwake_init(h->loop, &r->rec_wake, rec_notified);
    if (rc < 0) {
        free(claimed), free(sensors);
        return rc;
    }
    r->rec_wake.data = r;
    r->rec_async_open = true;
    r->handles++;
    if ((rc = uv_timer_init(h->loop, &r->settle)) < 0) {
        free(claimed), free(sensors);
        return rc;
    }
    r->settle.data = r;
    r->settle_open = true;
    r->handles++;
    rc = recorder_start(&r->rec, &info, loopwake_send, &r->rec_wake);
    free(claimed);
    free(sensors);
    return rc;
}

/* Per channel: no protocol value and no override yet. */
static int overrides_init(struct run *r)
{
    size_t n = r->h.rig->n_channels + 1;
    r->proto_sp = malloc(n * sizeof *r->proto_sp);
    r->ovr = calloc(n, sizeof *r->ovr);
    if (r->proto_sp == NULL || r->ovr == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        r->proto_sp[i] = NAN;
    return 0;
}

/* Refuse a protocol that would move an actuator a tripped limit holds in its
 * safe state, naming the alarm (-EACCES, with the reason in d). */
static int refuse_if_latched(struct run *r, const char *path, struct diag *d)
{
    const struct rig *rig = r->h.rig;
    bool *writes = calloc(rig->n_channels + 1, sizeof *writes);
    if (writes == NULL)
        return -ENOMEM;
    latch_plan_writes(r->plan, rig->n_channels, writes);
    int rc = 0;
    for (size_t i = 0; i < rig->n_channels && rc == 0; i++) {
        const struct latch_hold *h = writes[i] ? latch_holder(r->h.latch, (int)i) : NULL;
        if (h == NULL)
            continue;
        char name[120], why[600];
        snprintf(name, sizeof name, "%s (set by this protocol)", rig->channels[i].name);
        latch_refusal(h, r->h.alarms, name, why, sizeof why);
        diag_error(d, path, 0, 0, "%s", why);
        rc = -EACCES;
    }
    free(writes);
    return rc;
}

/* The rig's hashes (made when it was loaded) and the protocol's, for the run's journal. */
static void hash_origin(struct run *r)
{
    memcpy(r->rig_sha256, r->h.rig->sha256, sizeof r->rig_sha256);
    memcpy(r->rig_digest, r->h.rig->digest, sizeof r->rig_digest);
    sha256_hex(r->plan->text, strlen(r->plan->text), r->protocol_sha256);
}

/* Each syringe's level at the start, into the run's events. */
static void announce_fills(struct run *r, int64_t t)
{
    const struct delivery *dl = r->h.dl;
    char m[400];
    for (size_t i = 0; i < dl->n_pumps; i++) {
        delivery_describe_start(dl, i, m, sizeof m);
        run_event(r, t, dl->pumps[i].s.source == FILL_GIVEN ? "info" : "warning", dl->pumps[i].name,
                  "syringe_fill", "%s", m);
    }
}

/* Start following the syringes from the levels given, the others full. */
static int start_fills(struct run *r, const char *const *fills, size_t n, int64_t t,
                       struct diag *d)
{
    double level[DELIVERY_MAX_FILLS + 1];
    char err[300];
    if (r->h.dl->n_pumps > DELIVERY_MAX_FILLS)
        return -E2BIG;
    size_t bad;
    if (delivery_parse_fills(r->h.dl, fills, n, level, &bad, err, sizeof err) < 0) {
        delivery_fill_error(d, fills[bad], err);
        return -EINVAL;
    }
    delivery_start_some(r->h.dl, level, pumps_of(r), t);
    return 0;
}

/* Load a protocol and start it now. */
int run_start(const struct run_host *host, const char *path, const char *text, size_t len,
              const struct run_actor *who, const char *const *fills, size_t n_fills,
              struct diag *d, struct run **out)
{
    struct plan *plan;
    int rc = plan_load(path, text, len, host->rig, &plan, d);
    return rc < 0 ? rc : run_start_plan(host, plan, who, fills, n_fills, d, out);
}

/* Start a loaded plan now. */
int run_start_plan(const struct run_host *host, struct plan *plan, const struct run_actor *who,
                   const char *const *fills, size_t n_fills, struct diag *d, struct run **out)
{
    const char *path = plan->path;
    struct run *r = calloc(1, sizeof *r);
    if (r == NULL) {
        plan_free(plan);
        return -ENOMEM;
    }
    r->h = *host;
    r->plan = plan;
    int rc;
    if ((rc = overrides_init(r)) < 0 || (rc = refuse_if_latched(r, path, d)) < 0) {
        run_free(r);
        return rc;
    }
    char why[1024];
    if (r->h.blockers(r->h.ctx, r->plan, why, sizeof why) > 0) {
        if (!who->force) {
            char *save = NULL;
            for (char *line = strtok_r(why, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
                diag_error(d, path, 0, 0, "run refused: %s (fix it, or start anyway with run --force)", line);
            run_free(r);
            return -EBUSY;
        }
    } else {
        why[0] = '\0';
    }
    runfile_make_id(r->id);
    if (r->h.others == NULL || !r->h.others(r->h.ctx)) {
        latency_reset(r->h.dispatch);
        latency_reset(r->h.wire);
        if (r->h.wire_txn != NULL)
            latency_reset(r->h.wire_txn);
        if (r->h.wire_sched != NULL)
            latency_reset(r->h.wire_sched);
    }
    r->start_wall_ns = time_wall_ns();
    r->start_ns = pclock_now(r->h.clock);
    utf8_copy(r->operator_name, sizeof r->operator_name, who->operator_name ? who->operator_name : "");
    if ((rc = start_fills(r, fills, n_fills, r->start_ns, d)) < 0) {
        run_free(r);
        return rc;
    }
    hash_origin(r);
    runfile_path(r->path, sizeof r->path, host->data_dir, r->start_wall_ns, r->plan->name, NULL, r->id);
    rc = open_file(r, who, false);
    struct runner_hooks hooks = { .ctx = r, .write = hook_write, .safe_state = hook_safe_state,
                                  .event = hook_event, .step = hook_step, .finished = hook_finished };
    if (rc == 0)
        rc = runner_create(&r->runner, r->plan, r->h.rig, r->h.clock, &hooks);
    if (rc < 0) {
        delivery_stop_some(r->h.dl, pumps_of(r));
        diag_error(d, path, 0, 0, "cannot start the run: %s", strerror(-rc));
        run_free(r);
        return rc;
    }
    run_event(r, r->start_ns, "info", "control", "run_requested",
              "run of '%s' requested by %s%s%s", r->plan->name, who->user,
              who->operator_name ? ", operator " : "", who->operator_name ? who->operator_name : "");
    announce_fills(r, r->start_ns);
    if (why[0] != '\0') {
        for (char *p = why; (p = strchr(p, '\n')) != NULL;)
            *p = ';';
        run_event(r, r->start_ns, "warning", "control", "run_forced",
                  "run forced by %s although: %s", who->user, why);
    }
    if (interlocks_set_owner(r->h.il, r, r->plan->limits, r->plan->n_limits, r->start_ns) < 0) {
        diag_error(d, path, 0, 0, "cannot start the run: out of memory for its limits");
        run_free(r);
        return -ENOMEM;
    }
    /* A new run is an explicit command: the latched safe state of the last one
     * ends here, once nothing can refuse the run any more. */
    r->h.release_safe(r->h.ctx);
    runner_start(r->runner, r->start_ns);
    *out = r;
    return 0;
}

/* After a restart: the journal's overrides (made in a pause, or kept on
 * resume) are overrides again, with their value applied and the protocol's
 * value they replace remembered. */
static void restore_overrides(struct run *r, const struct journal_rec *j, int64_t now)
{
    for (size_t i = 0; i < j->n_overrides; i++) {
        const struct journal_override *o = &j->overrides[i];
        int ch = rig_find_channel(r->h.rig, o->channel);
        const struct rig_channel *c = ch >= 0 ? &r->h.rig->channels[ch] : NULL;
        if (c == NULL || !c->writable || isnan(o->value) || (!isnan(c->min) && o->value < c->min) ||
            (!isnan(c->max) && o->value > c->max)) {
            run_event(r, now, "warning", "daemon", "override_dropped", "the journal's override of %s "
                      "(%g) is not a writable channel's value within its limits; not applied", o->channel,
                      o->value);
            continue;
        }
        if (run_write(r, ch, o->value, now) < 0)
            continue;       /* refused (held by a restored latch): recorded as write_refused */
        r->proto_sp[ch] = o->protocol;
        struct run_override *ov = &r->ovr[ch];
        ov->on = true;
        ov->value = o->value;
        snprintf(ov->by, sizeof ov->by, "%s", o->by);
        ov->since_wall_ns = o->since_wall_ns;
        char since[40];
        time_iso8601(o->since_wall_ns, since, sizeof since);
        run_event(r, now, "warning", c->name, "override", "%s = %g %s: manual override by %s since %s, "
                  "sent again after the restart", c->name, o->value, c->unit, o->by, since);
    }
    if (j->n_overrides > 0)
        journal_update(r);
}

/* Continue the run a journal describes, in its file, after a restart. */
/* eventlog_read callback: one event of the file into the ring. */
static void history_row(void *ctx, uint64_t seq, const struct eventlog_row *row)
{
    struct run *r = ctx;
    struct run_event_rec *e = &r->events[seq % RUN_EVENTS_KEPT];
    e->seq = seq;
    e->t = row->time;
    utf8_copy(e->severity, sizeof e->severity, row->severity);
    utf8_copy(e->source, sizeof e->source, row->source);
    utf8_copy(e->code, sizeof e->code, row->code);
    utf8_copy(e->message, sizeof e->message, row->message);
}

/* A run continued after a restart: its events so far, from its file, so that
 * `events` shows the whole history and not only what came since. Before the
 * recorder opens the file; if they cannot be read, the run goes on without. */
static void load_history(struct run *r)
{
    if (r->events == NULL && (r->events = calloc(RUN_EVENTS_KEPT, sizeof *r->events)) == NULL)
        return;
    uint64_t total = 0;
    char err[256];
    if (eventlog_read(r->path, RUN_EVENTS_KEPT, &total, history_row, r, err, sizeof err) < 0) {
        log_warn("run", "%s; `events` shows only what happens from now", err);
        return;
    }
    r->n_events = (size_t)total;
}

/* The syringes go on from the levels journaled before the restart. */
static void continue_fills(struct run *r, const struct journal_rec *j, int64_t now)
{
    struct delivery_level levels[DELIVERY_MAX_FILLS];
    if (r->h.dl->n_pumps <= DELIVERY_MAX_FILLS) {
        journal_get_fills(j, r->h.dl, levels);
        delivery_continue_some(r->h.dl, levels, pumps_of(r), now);
    } else {
        delivery_start_some(r->h.dl, NULL, pumps_of(r), now);
    }
}

/* A run continued in a new file: what became of the one it was in, into the
 * new file's events (a message holds 255 bytes: the names alone, both in the
 * data directory). */
static void replaced_event(struct run *r, const struct run_replaced *rep, int64_t now)
{
    const char *old = strrchr(rep->file, '/'), *now_in = strrchr(r->path, '/');
    run_event(r, now, "warning", "daemon", "run_file_replaced",
              "%s %s%s; the run (same id, same t = 0) goes on in this file, %s", old ? old + 1 : rep->file,
              rep->problem,
              rep->kept_as ? ", kept as .unreadable" : "", now_in ? now_in + 1 : r->path);
}

int run_continue(const struct run_host *host, const struct journal_rec *j, struct plan *plan,
                 double last_alive_s, const struct run_replaced *rep, struct diag *d, struct run **out)
{
    struct run *r = calloc(1, sizeof *r);
    if (r == NULL) {
        plan_free(plan);
        return -ENOMEM;
    }
    r->h = *host;
    r->plan = plan;
    int rc = overrides_init(r);
    if (rc < 0) {
        run_free(r);
        return rc;
    }
    snprintf(r->id, sizeof r->id, "%s", j->run_id);
    snprintf(r->path, sizeof r->path, "%s", j->file);
    utf8_copy(r->operator_name, sizeof r->operator_name, j->operator_name);
    r->start_wall_ns = j->start_wall_ns;
    /* t = 0 on this boot's clock: the run's time axis stays wall-clock true. */
    int64_t now = pclock_now(r->h.clock), wall = time_wall_ns();
    r->start_ns = now - (wall - r->start_wall_ns);
    int64_t gap = (wall - r->start_wall_ns) - (int64_t)(last_alive_s * 1e9);
    if (gap < 0)
        gap = 0;
    struct run_actor who = { .user = "daemon", .operator_name = r->operator_name };
    hash_origin(r);
    /* A file that cannot be read has no history to load: the run goes on in a new one. */
    if (rep != NULL)
        snprintf(r->replaced, sizeof r->replaced, "%s", rep->file);
    else
        load_history(r);
    bool resume = r->plan->on_restart == ON_RESTART_RESUME;
    /* A new file records the syringes' levels at its start: they go on first, as for a new run. */
    if (rep != NULL && resume)
        continue_fills(r, j, now);
    rc = open_file(r, &who, rep == NULL);
    struct runner_hooks hooks = { .ctx = r, .write = hook_write, .safe_state = hook_safe_state,
                                  .event = hook_event, .step = hook_step, .finished = hook_finished };
    if (rc == 0)
        rc = runner_create(&r->runner, r->plan, r->h.rig, r->h.clock, &hooks);
    if (rc < 0) {
        if (rep != NULL && resume)
            delivery_stop_some(r->h.dl, pumps_of(r));
        diag_error(d, r->path, 0, 0, "cannot continue the run: %s", strerror(-rc));
        run_free(r);
        return rc;
    }
    char g[64];
    unit_format_duration(gap, g, sizeof g);
    run_event(r, now, "warning", "daemon", "restart",
              "perfused restarted; the run was without control for %s (gap %.3f s%s); on_restart: %s",
              g, (double)gap / 1e9, rep ? ", counted from the journal's last write" : "",
              resume ? "resume" : "safe-stop");
    if (rep != NULL)
        replaced_event(r, rep, now);
    if (j->overrides_skipped > 0)
        run_event(r, now, "warning", "daemon", "override_dropped", "%zu override(s) in the journal could "
                  "not be read (malformed); the protocol's values apply to those channels",
                  j->overrides_skipped);
    if (j->fills_skipped > 0)
        run_event(r, now, "warning", "daemon", "syringe_fill", "%zu syringe level(s) in the journal could "
                  "not be read (malformed); those levels are unknown after the restart", j->fills_skipped);
    char amsg[200];
    snprintf(amsg, sizeof amsg, "perfused restarted after %s without control; on_restart: %s", g,
             resume ? "resume" : "safe-stop");
    if (strcmp(j->rig_sha256, r->rig_sha256) != 0)
        run_event(r, now, "info", "daemon", "rig_file_changed",
                  "the rig file (sha256 %.12s...) is not the one the run started with (%.12s...); "
                  "its devices and settings are the same, only where its buses are reached differs",
                  r->rig_sha256, j->rig_sha256);
    r->h.alert(r->h.ctx, r, "restart", "warning", "daemon", "restart", amsg);
    if (resume) {
        interlocks_set_owner(r->h.il, r, r->plan->limits, r->plan->n_limits, now);
        if (rep == NULL)
            continue_fills(r, j, now);
        announce_fills(r, now);
        rc = runner_start_at(r->runner, r->start_ns, &j->pos, gap);
        if (rc < 0)
            run_event(r, now, "fault", "daemon", "resume_failed",
                      "the journal's position does not fit the protocol; stopping safely");
    }
    if (!resume || rc < 0) {
        hook_safe_state(r);
        r->ended = true;
        r->final = RUN_ABORTED;
        r->interrupted = true;
        journal_writer_remove(r->h.journal);
        /* A new file stays open, as at a run's end, for what its caller
         * records next (the alarm) and the safe state's confirmation. */
        if (rep != NULL && r->settle_open) {
            r->end_ns = now;
            uv_timer_start(&r->settle, settle_done, RUN_SETTLE_MS, 0);
        } else {
            finish_file(r, "interrupted");
        }
    } else if (j->pos.paused) {
        /* Paused: the setpoints held before the crash, manual ones included. */
        for (size_t i = 0; i < j->n_setpoints; i++) {
            int ch = rig_find_channel(r->h.rig, j->setpoints[i].channel);
            if (ch >= 0)
                hook_write(r, ch, j->setpoints[i].value, now);
        }
        restore_overrides(r, j, now);
    } else {
        /* Running: the step's setpoints are applied again above; an override kept
         * on resume stays in force until the protocol next writes its channel. */
        restore_overrides(r, j, now);
    }
    /* A second crash goes on in the new file, not in the one that could not be read. */
    if (rep != NULL && resume && rc == 0)
        journal_update(r);
    *out = r;
    return 0;
}

/* A valid or failed sample: record is what the file gets, use what control may use. */
void run_on_sample(struct run *r, int channel, double record, double use, int64_t t_ns)
{
    if (r->h.dl->levels_changed) {
        /* A syringe's level is tied to a counter reading now: a restart can go on from it. */
        r->h.dl->levels_changed = false;
        journal_update(r);
    }
    if (r->closed || r->ended || r->rec_chan[channel] < 0)
        return;
    /* Samples taken before t = 0 (queued on a bus) belong to no run. */
    if (t_ns < r->start_ns)
        return;
    recorder_sample(r->rec, (uint32_t)r->rec_chan[channel], rel(r, t_ns), record);
    if (!isnan(use))
        runner_on_sample(r->runner, channel, use, t_ns);
}

/* A value of a derived series. */
void run_record_derived(struct run *r, int series, double value, int64_t t_ns)
{
    if (r->closed || r->ended || series < 0 || t_ns < r->start_ns)
        return;
    recorder_sample(r->rec, (uint32_t)series, rel(r, t_ns), value);
}

/* A value of a /regulators series. */
void run_record_regulated(struct run *r, int idx, double value, int64_t t_ns)
{
    if (r->closed || r->ended || r->rec == NULL || idx < 0 || t_ns < r->start_ns)
        return;
    recorder_regulated(r->rec, (uint32_t)idx, rel(r, t_ns), value);
}

/* A writable channel's confirmed value changed: /confirmed. */
void run_on_confirmed(struct run *r, int channel, double value, int64_t t_ns)
{
    if (r->closed || r->rec == NULL || r->rec_sp[channel] < 0 || t_ns < r->start_ns)
        return;
    recorder_confirmed(r->rec, (uint32_t)r->rec_sp[channel], rel(r, t_ns), value);
}

/* A device faulted during the run: pause, abort (faulted) or carry on, as on_fault says. */
void run_on_device_fault(struct run *r, const char *device, const char *why)
{
    if (r->closed || r->ended)
        return;
    char reason[256];
    utf8_format(reason, sizeof reason, "device %s faulted: %s", device, why);
    switch (r->plan->on_fault) {
    case ON_FAULT_PAUSE:
        runner_pause(r->runner, reason);
        break;
    case ON_FAULT_ABORT:
        runner_fault(r->runner, reason);
        break;
    case ON_FAULT_CONTINUE:
        run_event(r, pclock_now(r->h.clock), "warning", device, "fault_ignored",
                  "on_fault: continue; the run goes on without %s", device);
        break;
    }
}

/* A safe-stop limit tripped: safe state now, and the run ends as faulted. */
void run_safe_stop(struct run *r, const char *why)
{
    if (r->closed || r->ended)
        return;
    runner_fault(r->runner, why);
}

/* Record a manual setpoint made while the run is paused: an override. */
void run_manual_set(struct run *r, const struct run_actor *who, int channel, double value)
{
    struct run_override *o = &r->ovr[channel];
    o->on = true;
    o->value = value;
    snprintf(o->by, sizeof o->by, "%s", who && who->user ? who->user : "daemon");
    o->since_wall_ns = time_wall_ns();
    journal_update(r);
    int64_t now = pclock_now(r->h.clock);
    const struct rig_channel *c = &r->h.rig->channels[channel];
    if (r->rec_sp[channel] >= 0 && !r->closed)
        recorder_setpoint(r->rec, (uint32_t)r->rec_sp[channel], rel(r, now), value);
    run_event(r, now, "info", "control", "cmd_set", "manual set %s = %g %s by %s", c->name, value,
              c->unit, o->by);
    char since[40], proto[64] = "none yet";
    time_iso8601(o->since_wall_ns, since, sizeof since);
    if (!isnan(r->proto_sp[channel]))
        snprintf(proto, sizeof proto, "%g %s", r->proto_sp[channel], c->unit);
    run_event(r, now, "warning", c->name, "override", "%s = %g %s: manual override by %s since %s "
              "(the protocol's value: %s); resume restores the protocol's value, resume "
              "--keep-overrides keeps it", c->name, value, c->unit, o->by, since, proto);
}

const struct run_override *run_override(const struct run *r, int channel)
{
    return channel >= 0 && (size_t)channel < r->h.rig->n_channels && r->ovr[channel].on
           ? &r->ovr[channel] : NULL;
}

double run_protocol_value(const struct run *r, int channel)
{
    return channel >= 0 && (size_t)channel < r->h.rig->n_channels ? r->proto_sp[channel] : NAN;
}

/* Before a resume: put every override back to the protocol's value, or keep it
 * (asked to, or the protocol has set no value), saying which in the events. */
static void settle_overrides(struct run *r, bool keep)
{
    int64_t now = pclock_now(r->h.clock);
    for (size_t ch = 0; ch < r->h.rig->n_channels; ch++) {
        struct run_override *o = &r->ovr[ch];
        if (!o->on)
            continue;
        const struct rig_channel *c = &r->h.rig->channels[ch];
        double v = r->proto_sp[ch];
        if (keep || isnan(v)) {
            run_event(r, now, "warning", c->name, "override_kept", "%s stays at %g %s (manual override by "
                      "%s) %s; it stays until the protocol next sets %s", c->name, o->value, c->unit, o->by,
                      keep ? "as resume --keep-overrides asked" : "because the protocol has set no value",
                      c->name);
            continue;
        }
        o->on = false;
        run_event(r, now, "info", c->name, "override_restored", "%s back to the protocol's %g %s (manual "
                  "override of %g %s by %s ends)", c->name, v, c->unit, o->value, c->unit, o->by);
        hook_write(r, (int)ch, v, now);
    }
}

/* Format who for events. */
static void actor_text(const struct run_actor *who, char *buf, size_t len)
{
    utf8_copy(buf, len, who && who->user ? who->user : "daemon");
}

#define REFUSALS_PER_S 5

/* Record a refused command with who asked and why. A client repeating refused
 * requests must not flood the file: past REFUSALS_PER_S a second they are only
 * counted, and the count goes with the next one recorded. */
void run_refused(struct run *r, const struct run_actor *who, const char *code, const char *what,
                 const char *why)
{
    int64_t now = pclock_now(r->h.clock);
    if (now - r->refusal_window_ns >= 1000000000LL) {
        r->refusal_window_ns = now;
        r->refusals = 0;
    }
    if (r->refusals >= REFUSALS_PER_S) {
        r->refusals_held++;
        return;
    }
    r->refusals++;
    char w[96], held[64] = "";
    actor_text(who, w, sizeof w);
    if (r->refusals_held > 0)
        snprintf(held, sizeof held, " (%u more refusals not recorded before this)", r->refusals_held);
    r->refusals_held = 0;
    run_event(r, now, "warning", "control", code, "%s by %s: refused: %s%s", what, w, why, held);
}

/* Pause or resume on a command, recording who asked and whether it took. */
static int run_command(struct run *r, const struct run_actor *who, const char *reason,
                       int (*op)(struct runner *, const char *), const char *code,
                       const char *verb, const char *refusal)
{
    int rc = op(r->runner, reason && *reason ? reason : "operator request");
    if (rc < 0) {
        run_refused(r, who, code, verb, refusal);
        return rc;
    }
    char w[96];
    actor_text(who, w, sizeof w);
    run_event(r, pclock_now(r->h.clock), "info", "control", code, "%s by %s: ok", verb, w);
    return rc;
}

int run_pause(struct run *r, const struct run_actor *who, const char *reason)
{
    return run_command(r, who, reason, runner_pause, "cmd_pause", "pause", "not running");
}

int run_resume(struct run *r, const struct run_actor *who, const char *reason, bool keep_overrides)
{
    struct runner_status st;
    runner_get_status(r->runner, &st);
    if (st.state == RUN_PAUSED)
        settle_overrides(r, keep_overrides);
    return run_command(r, who, reason, runner_resume, "cmd_resume", "resume", "not paused");
}

int run_abort(struct run *r, const struct run_actor *who, const char *reason)
{
    char w[96];
    actor_text(who, w, sizeof w);
    run_event(r, pclock_now(r->h.clock), "warning", "control", "cmd_abort", "abort by %s: %s", w,
              reason && *reason ? reason : "no reason given");
    return runner_abort(r->runner, reason && *reason ? reason : "operator request");
}

int run_next(struct run *r, const struct run_actor *who)
{
    char w[96];
    actor_text(who, w, sizeof w);
    int rc = runner_next(r->runner, w);
    if (rc < 0) {
        run_refused(r, who, "cmd_next", "next", rc == -EAGAIN ? "the run is paused; resume it first"
                                                              : "no step is running");
        return rc;
    }
    run_event(r, pclock_now(r->h.clock), "info", "control", "cmd_next", "next by %s: ok", w);
    return 0;
}

int run_extend(struct run *r, const struct run_actor *who, int64_t ns)
{
    char w[96], d[64], what[96];
    actor_text(who, w, sizeof w);
    unit_format_duration(ns, d, sizeof d);
    snprintf(what, sizeof what, "extend %s", d);
    int rc = runner_extend(r->runner, ns, w);
    if (rc < 0) {
        run_refused(r, who, "cmd_extend", what, rc == -EINVAL ? "the step has no end to move (a wait or "
                    "prompt without a timeout), or the duration is not positive" : "no step is running");
        return rc;
    }
    run_event(r, pclock_now(r->h.clock), "info", "control", "cmd_extend", "%s by %s: ok", what, w);
    journal_update(r);
    return 0;
}

int run_note(struct run *r, const struct run_actor *who, const char *text)
{
    char w[96];
    actor_text(who, w, sizeof w);
    if (who != NULL && who->operator_name != NULL && *who->operator_name)
        utf8_format(w, sizeof w, "%s (%s)", who->operator_name, who->user ? who->user : "daemon");
    run_event(r, pclock_now(r->h.clock), "info", "operator", "note", "%s (by %s)", text, w);
    return 0;
}

int run_confirm(struct run *r, const struct run_actor *who)
{
    char w[96];
    actor_text(who, w, sizeof w);
    return runner_confirm(r->runner, w);
}

/* The daemon is stopping: record it and apply on_shutdown. */
void run_shutdown_begin(struct run *r)
{
    if (r->closed || r->ended)
        return;
    int64_t now = pclock_now(r->h.clock);
    {
        bool hold = r->plan->on_shutdown == ON_SHUTDOWN_HOLD;
        run_event(r, now, "warning", "daemon", "shutdown",
                  "daemon stopping during the run; pumps %s (on_shutdown: %s)",
                  hold ? "keep their setpoints" : "told to stop",
                  hold ? "hold" : "safe-stop");
        if (!hold)
            hook_safe_state(r);
        r->shutdown = true;
    }
}

/* Close the file as interrupted once the buses have stopped. */
void run_shutdown_finish(struct run *r)
{
    if (r->closed)
        return;
    if (!r->shutdown) {
        /* Ended just before the daemon stopped: close it as it ended. */
        if (r->ended)
            finish_file(r, final_state(r));
        return;
    }
    r->ended = true;
    r->final = RUN_ABORTED;
    finish_file(r, "interrupted");
}

bool run_closed(const struct run *r)
{
    return r->closed;
}

bool run_ended(const struct run *r)
{
    return r->ended;
}

void run_close_now(struct run *r)
{
    if (r->ended)
        finish_file(r, final_state(r));
}

void run_get_status(struct run *r, struct runner_status *st)
{
    runner_get_status(r->runner, st);
}

const char *run_path(const struct run *r)
{
    return r->path;
}

const char *run_replaced_file(const struct run *r)
{
    return r->replaced[0] != '\0' ? r->replaced : NULL;
}

const char *run_id(const struct run *r)
{
    return r->id;
}

const struct plan *run_plan(const struct run *r)
{
    return r->plan;
}

int64_t run_start_ns(const struct run *r)
{
    return r->start_ns;
}

int64_t run_start_wall_ns(const struct run *r)
{
    return r->start_wall_ns;
}

void run_storage(struct run *r, int *write_errors, uint64_t *dropped)
{
    struct rec_status st;
    recorder_get_status(r->rec, &st);
    *write_errors = st.write_errors;
    *dropped = st.dropped;
}

uint64_t run_events_total(const struct run *r)
{
    return r->events ? r->n_events : 0;
}

const struct run_event_rec *run_event_at(const struct run *r, uint64_t seq)
{
    if (r->events == NULL || seq >= r->n_events)
        return NULL;
    const struct run_event_rec *e = &r->events[seq % RUN_EVENTS_KEPT];
    return e->seq == seq ? e : NULL;
}

json_t *run_event_json(const struct run *r, const struct run_event_rec *e)
{
    /* The wall time from the run's t = 0 (kept across a restart by the journal). */
    int64_t wall = run_start_wall_ns(r) + (int64_t)llround(e->t * 1e9);
    char utc[40], local[48];
    time_iso8601(wall, utc, sizeof utc);
    time_iso8601_local(wall, local, sizeof local);
    return json_pack("{s:I,s:f,s:s,s:s,s:s,s:s,s:s,s:s}", "seq", (json_int_t)e->seq, "time", e->t,
                     "utc", utc, "local", local, "severity", e->severity, "source", e->source, "code",
                     e->code, "message", e->message);
}

/* Free what the run owns. */
static void run_release(struct run *r)
{
    plan_free(r->plan);
    runfile_series_free(&r->series);
    free(r->events);
    free(r->proto_sp);
    free(r->ovr);
    free(r);
}

/* One of the run's handles is closed: free the rest after the last. */
static void run_handle_closed(uv_handle_t *h)
{
    struct run *r = h->data;
    if (--r->handles == 0)
        run_release(r);
}

/* Free a run; joins the recorder thread (the file is normally closed by now). */
void run_free(struct run *r)
{
    if (r == NULL)
        return;
    if (r->ended)
        finish_file(r, final_state(r));
    recorder_free(r->rec);
    r->rec = NULL;
    runner_free(r->runner);
    r->runner = NULL;
    if (r->handles == 0) {
        run_release(r);
        return;
    }
    if (r->settle_open)
        uv_close((uv_handle_t *)&r->settle, run_handle_closed);
    if (r->rec_async_open)
        loopwake_close(&r->rec_wake, run_handle_closed);
}
