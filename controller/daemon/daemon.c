/* The daemon's state on the loop thread: rig, buses, channels, run, signals. */
#include "daemon.h"
#include "base/rtsched.h"
#include "base/workpool.h"
#include "base/units.h"
#include "base/yamldoc.h"
#include "control.h"
#include "base/log.h"
#include "record/runfile.h"
#include "record/recovery.h"
#include "resume.h"
#include "run.h"
#include "run/trip.h"
#include "drivers/serial.h"
#include "simchild.h"
#include "base/timeutil.h"
#include "base/utf8.h"

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define NOTE_BATCH 256


/* ------------------------------------------------------------- the runs */

/* The run of slot s if it is going (not yet ended), else NULL. */
static struct run *slot_going(const struct run_slot *s)
{
    return s->run != NULL && !run_ended(s->run) ? s->run : NULL;
}

/* The run of slot s if its file is open, else NULL. */
static struct run *slot_open(const struct run_slot *s)
{
    return s->run != NULL && !run_closed(s->run) ? s->run : NULL;
}

/* The number of runs going. */
size_t daemon_runs_going(const struct daemon *d)
{
    size_t n = 0;
    for (size_t i = 0; i < DAEMON_MAX_RUNS; i++)
        n += slot_going(&d->slots[i]) != NULL;
    return n;
}

/* The slot whose run is r. */
struct run_slot *daemon_slot_of(struct daemon *d, const struct run *r)
{
    for (size_t i = 0; r != NULL && i < DAEMON_MAX_RUNS; i++)
        if (d->slots[i].run == r)
            return &d->slots[i];
    return NULL;
}

/* The slot of the run started last, or NULL if none was. */
static struct run_slot *last_slot(struct daemon *d)
{
    struct run_slot *best = NULL;
    for (size_t i = 0; i < DAEMON_MAX_RUNS; i++)
        if (d->slots[i].run != NULL && (best == NULL || d->slots[i].started > best->started))
            best = &d->slots[i];
    return best;
}

/* The runs going, "name (id4), name (id4)", into buf. */
static void list_going(struct daemon *d, char *buf, size_t len)
{
    size_t k = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < DAEMON_MAX_RUNS && k + 1 < len; i++) {
        struct run_slot *s = &d->slots[i];
        if (slot_going(s) != NULL)
            k += (size_t)snprintf(buf + k, len - k, "%s%s (%.4s)", k ? ", " : "", s->name, run_id(s->run));
    }
}

/* The run a command means. */
struct run_slot *daemon_find_run(struct daemon *d, const char *sel, char *err, size_t len)
{
    if (sel != NULL && sel[0] != '\0') {
        struct run_slot *best = NULL;
        size_t n_sel = strlen(sel);
        for (size_t i = 0; i < DAEMON_MAX_RUNS; i++) {
            struct run_slot *s = &d->slots[i];
            if (s->run == NULL)
                continue;
            bool by_name = strcmp(s->name, sel) == 0;
            bool by_id = n_sel >= 4 && strncmp(run_id(s->run), sel, n_sel) == 0;
            /* A run going wins over an ended one of the same name, a later one over an earlier. */
            if ((by_name || by_id) &&
                (best == NULL || (slot_going(s) && !slot_going(best)) ||
                 (!slot_going(s) == !slot_going(best) && s->started > best->started)))
                best = s;
        }
        if (best == NULL) {
            char list[512];
            list_going(d, list, sizeof list);
            snprintf(err, len, "no run '%s'%s%s%s", sel, list[0] ? " (going: " : "", list,
                     list[0] ? ")" : "");
        }
        return best;
    }
    size_t going = 0;
    struct run_slot *one = NULL;
    for (size_t i = 0; i < DAEMON_MAX_RUNS; i++) {
        struct run_slot *s = &d->slots[i];
        if (slot_going(s) != NULL) {
            going++;
            one = s;
        }
    }
    if (going > 1) {
        char list[512];
        list_going(d, list, sizeof list);
        snprintf(err, len, "%zu runs are going: %s; say which with --run NAME", going, list);
        return NULL;
    }
    if (one == NULL)
        one = last_slot(d);
    if (one == NULL)
        snprintf(err, len, "no run yet");
    return one;
}

/* Whether channel ch is held by a run going in another slot than self. */
static bool held_by_other(struct daemon *d, const struct run_slot *self, size_t ch)
{
    for (size_t i = 0; i < DAEMON_MAX_RUNS; i++) {
        const struct run_slot *s = &d->slots[i];
        if (s != self && (slot_going(s) != NULL || s->resuming) && ch < s->claims.n && s->claims.writes[ch])
            return true;
    }
    return false;
}

/* Whether a run other than the one of slot self is going (or about to continue). */
static bool others_going(struct daemon *d, const struct run_slot *self)
{
    for (size_t i = 0; i < DAEMON_MAX_RUNS; i++) {
        const struct run_slot *s = &d->slots[i];
        if (s != self && (slot_going(s) != NULL || s->resuming))
            return true;
    }
    return false;
}

/* Whether the safe state of the run of slot self (NULL: the rig's) may touch
 * channel ch. Never what another run going holds; beside other runs, a run's
 * touches only what it claims; alone on the rig it covers the rig, as always. */
static bool may_touch(struct daemon *d, const struct run_slot *self, size_t ch)
{
    if (held_by_other(d, self, ch))
        return false;
    if (self == NULL || !others_going(d, self))
        return true;
    return ch < self->claims.n && self->claims.writes[ch];
}

/* The next run going from slot *from on that holds (or, with reads_too,
 * reads) a channel of device dev; NULL when there is none. */
static struct run *run_using_device(struct daemon *d, size_t dev, bool reads_too, size_t *from)
{
    const struct rig_device *rd = &d->rig->devices[dev];
    for (size_t i = *from; i < DAEMON_MAX_RUNS; i++) {
        struct run_slot *s = &d->slots[i];
        if (slot_going(s) == NULL)
            continue;
        for (size_t k = 0; k < rd->n_chans; k++) {
            size_t ch = rd->first_channel + k;
            if (ch < s->claims.n && (s->claims.writes[ch] || (reads_too && s->claims.reads[ch]))) {
                *from = i + 1;
                return s->run;
            }
        }
    }
    *from = DAEMON_MAX_RUNS;
    return NULL;
}

/* Record a daemon-level event in every run whose file is open, else in the log. */
void daemon_event(struct daemon *d, int64_t t, const char *sev, const char *src,
                  const char *code, const char *msg)
{
    bool any = false;
    for (size_t i = 0; i < DAEMON_MAX_RUNS; i++) {
        struct run *r = slot_open(&d->slots[i]);
        if (r != NULL) {
            run_event(r, t, sev, src, code, "%s", msg);
            any = true;
        }
    }
    if (any)
        return;
    rig_events_add(&d->rig_events, time_wall_ns(), sev, src, code, msg);
    if (strcmp(sev, "info") == 0)
        log_info(src, "%s: %s", code, msg);
    else
        log_warn(src, "%s: %s", code, msg);
}

/* Send an alert with the details of the run it is about. */
void daemon_alert(struct daemon *d, const struct run *run, const char *kind, const char *severity,
                  const char *source, const char *code, const char *message)
{
    struct alert_info in = { .kind = kind, .severity = severity, .source = source, .code = code,
                             .message = message };
    if (run != NULL) {
        in.run_id = run_id(run);
        in.protocol = run_plan(run)->name;
        in.file = run_path(run);
    }
    alerts_send(&d->alerts, pclock_now(&d->clock), &in);
}

/* A journal write failed or worked again: a run that cannot be continued
 * after a crash is an alarm, not only a log line. */
static void journal_result(void *ctx, const char *path, int err)
{
    struct daemon *d = ctx;
    int64_t now = pclock_now(&d->clock);
    if (err < 0)
        alarms_raise(&d->alarms, now, "alarm", "journal", "journal_failed", NULL,
                     "cannot write %s: %s; after a crash or restart the run could not be "
                     "continued from here (free disk space or file descriptors)", path, strerror(-err));
    else
        alarms_clear(&d->alarms, now, "journal", "journal_failed", NULL);
}

static struct run *live_run(struct daemon *d);

/* A latched safe state is released: its alarm is acknowledged and clear. */
static void latch_released(void *ctx, const struct latch_hold *h)
{
    struct daemon *d = ctx;
    char m[300];
    snprintf(m, sizeof m, "alarm %u (%s) is acknowledged and clear: its actuators may be set again",
             h->alarm, h->cause);
    daemon_event(d, pclock_now(&d->clock), "info", "interlock", "safe_state_released", m);
}

/* An alarm changed state; a new one is also an alert, about the run whose
 * file is open (none once the last run's file is closed). An acknowledgement
 * or a clearing may release a latched safe state. */
static void alarm_event(void *ctx, int64_t t, const char *sev, const char *src, const char *code,
                        const char *msg, const char *run)
{
    struct daemon *d = ctx;
    /* A run's own alarm goes into its file only; the rig's into every open one. */
    struct run *owner = NULL;
    for (size_t i = 0; run[0] != '\0' && i < DAEMON_MAX_RUNS; i++)
        if (d->slots[i].run != NULL && strcmp(run_id(d->slots[i].run), run) == 0)
            owner = d->slots[i].run;
    if (run[0] == '\0')
        daemon_event(ctx, t, sev, src, code, msg);
    else if (owner != NULL && !run_closed(owner))
        run_event(owner, t, sev, src, code, "%s", msg);
    else {
        /* Its run's file has closed: the rig keeps it. */
        rig_events_add(&d->rig_events, time_wall_ns(), sev, src, code, msg);
        log_warn(src, "%s: %s", code, msg);
    }
    if (strcmp(code, "alarm_raised") == 0)
        daemon_alert(ctx, owner != NULL ? owner : live_run(ctx), sev, sev, src, code, msg);
    else
        latch_update(&d->latch, &d->alarms, latch_released, d);
    latchstore_sync(&d->latchstore);
}

/* The one run whose file is open, if there is exactly one (an alert about
 * the rig then names it, as with one run); else NULL. */
static struct run *live_run(struct daemon *d)
{
    struct run *one = NULL;
    for (size_t i = 0; i < DAEMON_MAX_RUNS; i++) {
        struct run *r = slot_open(&d->slots[i]);
        if (r != NULL && one != NULL)
            return NULL;
        if (r != NULL)
            one = r;
    }
    return one;
}

/* The run going that owns a protocol's limit rule (NULL: none, or a rig rule). */
static struct run *rule_run(struct daemon *d, const struct limit_rule *rule)
{
    if (rule->from_rig || rule->owner == NULL)
        return NULL;
    for (size_t i = 0; i < DAEMON_MAX_RUNS; i++)
        if (d->slots[i].run == rule->owner)
            return slot_going(&d->slots[i]);
    return NULL;
}

/* The alarm scope of a protocol's limit rule: its run's id (going or ended,
 * so that the trip and its clearing agree), into buf; NULL for a rig rule. */
static const char *rule_scope(struct daemon *d, const struct limit_rule *rule, char *buf, size_t len)
{
    if (rule->from_rig || rule->owner == NULL)
        return NULL;
    for (size_t i = 0; i < DAEMON_MAX_RUNS; i++)
        if (d->slots[i].run != NULL && d->slots[i].run == rule->owner) {
            snprintf(buf, len, "%s", run_id(d->slots[i].run));
            return buf;
        }
    return NULL;
}

/* Hold a tripped safe-stop's actuators in their safe state (the values in
 * safe, n_safe, and their devices' own safe actions) until its alarm id is
 * acknowledged and clear; say which in the events. The hold is kept in the
 * data directory, for a restart. */
static void latch_tripped(struct daemon *d, uint32_t id, const struct limit_rule *rule, const bool *held,
                          const struct plan_target *safe, size_t n_safe, int64_t t)
{
    const struct rig_channel *c = &d->rig->channels[rule->lim.channel];
    bool above = rule->side == '>';
    char cause[160], names[200] = "", m[640];     /* room for all three and the words */
    snprintf(cause, sizeof cause, "%s %s its %s %g %s", c->name, above ? "above" : "below",
             above ? "max" : "min", above ? rule->lim.max : rule->lim.min, c->unit);
    for (size_t i = 0, k = 0; held != NULL && i < d->rig->n_channels && k < sizeof names; i++)
        if (held[i])
            k += (size_t)snprintf(names + k, sizeof names - k, "%s%s", k ? ", " : "", d->rig->channels[i].name);
    struct latch_origin o = { .lim = rule->lim, .from_rig = rule->from_rig, .side = rule->side,
                              .tripped_wall_ns = time_wall_ns() };
    if (id == 0 || held == NULL || latch_add_origin(&d->latch, id, cause, c->name, held, safe, n_safe, &o) < 0) {
        snprintf(m, sizeof m, "cannot latch the safe state of %s (%s): out of memory or no alarm; "
                 "nothing stops a later set from moving them", names[0] ? names : "its actuators", cause);
        daemon_event(d, t, "fault", "interlock", "safe_state_latched", m);
        return;
    }
    snprintf(m, sizeof m, "%s held in the safe state until alarm %u (%s) is acknowledged and %s is back "
             "within its limit", names[0] ? names : "no actuator", id, cause, c->name);
    daemon_event(d, t, "warning", "interlock", "safe_state_latched", m);
    latchstore_sync(&d->latchstore);
}

/* Stop safely for source: the run's safe state while a run is going (not
 * merely ended with its file still open), else every device's own. */
static void safe_stop(struct daemon *d, struct run *r, const char *source, const char *why, int64_t t)
{
    if (r != NULL && !run_ended(r)) {
        run_safe_stop(r, why);
        return;
    }
    daemon_safe_state(d, NULL, 0);
    char m[400];
    utf8_format(m, sizeof m, "no run going: every device sent its safe state (%s)", why);
    daemon_event(d, t, "warning", source, "safe_state", m);
}

/* Trip hook: a safe-stop limit tripped; its writes are tagged, to time the first on the wire. */
static void limit_safe_stop(void *ctx, const struct limit_rule *rule, const char *why, int64_t t)
{
    struct daemon *d = ctx;
    d->il_sample_ns = t;
    d->il_tag = d->write_tag = (1ull << 63) | ++d->il_trips;
    if (rule->from_rig) {
        /* A rig limit stops every run, each to its own safe state; the last
         * one's covers the rest of the rig. */
        bool any = false;
        for (size_t i = 0; i < DAEMON_MAX_RUNS; i++) {
            struct run *r = slot_going(&d->slots[i]);
            if (r != NULL) {
                run_safe_stop(r, why);
                any = true;
            }
        }
        if (!any)
            safe_stop(d, NULL, "interlock", why, t);
    } else {
        safe_stop(d, rule_run(d, rule), "interlock", why, t);
    }
    d->write_tag = 0;
}

/* Trip hook: a pause limit tripped. */
static void limit_pause(void *ctx, const struct limit_rule *rule, const char *why, int64_t t)
{
    struct daemon *d = ctx;
    (void)t;
    struct run_actor who = { .user = "interlock" };
    if (!rule->from_rig) {
        struct run *r = rule_run(d, rule);
        if (r != NULL)
            run_pause(r, &who, why);
        return;
    }
    for (size_t i = 0; i < DAEMON_MAX_RUNS; i++)
        if (slot_going(&d->slots[i]) != NULL)
            run_pause(d->slots[i].run, &who, why);
}

/* A limit tripped: act and raise the alarm (trip.h); a safe-stop's actuators
 * are then held under that alarm. */
static void limit_tripped(void *ctx, const struct limit_rule *rule_p, double v, int64_t t)
{
    struct daemon *d = ctx;
    /* Ending the run frees the run's rules: keep a copy of this one. */
    const struct limit_rule copy = *rule_p, *rule = &copy;
    const struct rig_channel *c = &d->rig->channels[rule->lim.channel];
    struct run *r = rule->from_rig ? live_run(d) : rule_run(d, rule);
    /* What the safe state puts down is held there (a rig limit: every
     * actuator), as the run stood before the trip ended it; a protocol's
     * limit never holds what another run going holds. */
    bool *held = NULL;
    bool going = r != NULL && !run_ended(r);
    const struct plan_target *safe = going && !rule->from_rig ? run_plan(r)->safe_state : NULL;
    size_t n_safe = safe != NULL ? run_plan(r)->n_safe : 0;
    if (rule->lim.action == LIMIT_SAFE_STOP && (held = calloc(d->rig->n_channels + 1, sizeof *held))) {
        latch_safe_channels(d->rig, safe, n_safe, !going || rule->from_rig, held);
        struct run_slot *self = daemon_slot_of(d, r);
        for (size_t i = 0; !rule->from_rig && i < d->rig->n_channels; i++)
            if (held[i] && !may_touch(d, self, i))
                held[i] = false;
    }
    char scope[40];
    struct trip_hooks h = { .ctx = d, .safe_stop = limit_safe_stop, .pause = limit_pause,
                            .run = rule_scope(d, rule, scope, sizeof scope) };
    uint32_t id = trip_limit(&d->alarms, rule, c->name, c->unit, v, t, &h);
    if (rule->lim.action == LIMIT_SAFE_STOP)
        latch_tripped(d, id, rule, held, safe, n_safe, t);     /* the run keeps its plan */
    free(held);
}

/* A tripped limit's channel is inside again: the alarm clears (it stays until acknowledged). */
static void limit_cleared(void *ctx, const struct limit_rule *rule, double v, int64_t t)
{
    struct daemon *d = ctx;
    (void)v;
    char scope[40];
    trip_clear(&d->alarms, rule, rule_scope(d, rule, scope, sizeof scope),
               d->rig->channels[rule->lim.channel].name, t);
}

/* A delivery condition began (delivery.h): act as its kind says, then raise the alarm. */
static void delivery_raised(void *ctx, int64_t t, const char *sev, const char *src, const char *code,
                            enum delivery_action act, const char *msg)
{
    struct daemon *d = ctx;
    /* The run driving the pump (source: the pump, or a monitor of it). */
    int dev = rig_find_device(d->rig, src);
    for (size_t i = 0; dev < 0 && i < d->rig->n_monitors; i++)
        if (strcmp(d->rig->monitors[i].name, src) == 0)
            dev = (int)d->rig->channels[d->rig->monitors[i].pump].device;
    size_t from = 0;
    struct run *r = dev >= 0 ? run_using_device(d, (size_t)dev, false, &from) : NULL;
    if (r == NULL && daemon_runs_going(d) <= 1)
        r = live_run(d);        /* alone on the rig, a run answers for every pump, as always */
    struct run_actor who = { .user = "delivery monitor" };
    if (act == DELIVERY_ON_FAULT && r != NULL) {
        run_on_device_fault(r, src, msg);
    } else if (act == DELIVERY_PAUSE && r != NULL) {
        run_pause(r, &who, msg);
    } else if (act == DELIVERY_SAFE_STOP) {
        safe_stop(d, r, src, msg, t);
    }
    alarms_raise(&d->alarms, t, sev, src, code, NULL, "%s", msg);
}

/* A delivery condition ended; its alarm stays listed until acknowledged. */
static void delivery_cleared(void *ctx, int64_t t, const char *src, const char *code)
{
    struct daemon *d = ctx;
    alarms_clear(&d->alarms, t, src, code, NULL);
}

/* A syringe's fill level, into the run file. */
static void delivery_fill(void *ctx, size_t i, double fill, int64_t t)
{
    struct daemon *d = ctx;
    int ch = d->dl.pumps[i].flow;
    bool any = false;
    struct run *alone = live_run(d);      /* alone on the rig, a run records every pump's level */
    for (size_t k = 0; k < DAEMON_MAX_RUNS; k++) {
        struct run_slot *s = &d->slots[k];
        if (slot_open(s) == NULL ||
            (s->run != alone && ((size_t)ch >= s->claims.n || !s->claims.writes[ch])))
            continue;
        run_record_derived(s->run, d->dl.pumps[i].rec_fill, fill, t);
        any = true;
    }
    if (any && d->observer.fill != NULL)
        d->observer.fill(d->observer.ctx, i, fill, t);
}

/* A device or bus faulted or recovered. */
static void note_health(struct health *h, bool fault, int64_t t, const char *msg)
{
    if (fault && !h->faulted)
        h->faults++;
    h->faulted = fault;
    h->since_ns = t;
    if (fault && msg[0])
        utf8_copy(h->last_error, sizeof h->last_error, msg);
}

/* A measured channel's reading became implausible, or plausible again. */
static void plaus_changed(void *ctx, int ch, enum plaus_kind k, bool active, double v, int64_t t)
{
    struct daemon *d = ctx;
    const struct rig_channel *c = &d->rig->channels[ch];
    const struct plaus_chan *pc = &d->plaus.c[ch];
    char code[32], why[200];
    snprintf(code, sizeof code, "sensor_%s", plaus_kind_name(k));
    if (!active) {
        alarms_clear(&d->alarms, t, c->name, code, NULL);
        return;
    }
    switch (k) {
    case PF_NAN:
        utf8_format(why, sizeof why, "%s reads NaN: the sensor reports no valid value", c->name);
        break;
    case PF_RANGE:
        utf8_format(why, sizeof why, "%s reads %g %s, outside its physical range %g to %g %s", c->name, v,
                 c->unit, pc->min, pc->max, c->unit);
        break;
    case PF_STUCK:
        utf8_format(why, sizeof why, "%s has read exactly %g %s for %.0f s: the sensor looks stuck", c->name,
                 v, c->unit, (double)pc->stuck_ns / 1e9);
        break;
    default:
        utf8_format(why, sizeof why, "%s: no valid reading for %.1f s", c->name, (double)pc->lost_ns / 1e9);
        break;
    }
    utf8_copy(d->chans[ch].msg, sizeof d->chans[ch].msg, why);
    /* A device that stopped answering has its own alarm; its channels' are noise. */
    if (k == PF_LOST && d->dev_health[c->device].faulted) {
        daemon_event(d, t, "warning", c->name, code, why);
        return;
    }
    alarms_raise(&d->alarms, t, "fault", c->name, code, NULL, "%s; its value is unknown until it "
                 "reads plausibly again", why);
}

/* Every quarter second: are any sensors lost? */
static void plaus_timer_cb(uv_timer_t *t)
{
    struct daemon *d = t->data;
    plaus_tick(&d->plaus, pclock_now(&d->clock));
}

/* Configure plausibility from the rig: measured channels only. */
static int setup_plausibility(struct daemon *d)
{
    struct plaus_hooks ph = { .ctx = d, .change = plaus_changed };
    if (plaus_init(&d->plaus, d->rig->n_channels, pclock_now(&d->clock), &ph) < 0)
        return -ENOMEM;
    for (size_t i = 0; i < d->rig->n_channels; i++) {
        const struct rig_channel *c = &d->rig->channels[i];
        struct plaus_chan *pc = &d->plaus.c[i];
        double hz = d->sample_hz[i];
        if (!c->readable || !(hz > 0))
            continue;
        pc->on = true;
        /* An actuator's read-back is judged by its device; its limits are for setpoints. */
        if (!c->writable) {
            pc->min = c->min;
            pc->max = c->max;
        }
        pc->stuck_ns = (int64_t)(c->stuck_s * 1e9);
        /* Never shorter than a few sample periods: one late sample is not a lost sensor. */
        double lost = c->lost_s >= 0 ? fmax(c->lost_s, 2.5 / hz) : fmax(3.0, 5.0 / hz);
        pc->lost_ns = (int64_t)(lost * 1e9);
    }
    uv_timer_init(d->loop, &d->plaus_timer);
    d->plaus_timer.data = d;
    uv_timer_start(&d->plaus_timer, plaus_timer_cb, 250, 250);
    return 0;
}

/* ------------------------------------------------------------- actuators */

/* The rig device of a bus's device index, or SIZE_MAX (logged) if the bus has
 * no such device: a note is never blamed on a device that did not send it. */
static size_t rig_device_of(struct daemon *d, size_t bus, uint32_t bus_dev)
{
    for (size_t i = 0, k = 0; i < d->rig->n_devices; i++)
        if (d->rig->devices[i].bus == bus && k++ == bus_dev)
            return i;
    log_error(d->rig->buses[bus].name, "a note names device %u of the bus, which has no such device; "
              "ignored", (unsigned)bus_dev);
    return SIZE_MAX;
}

/* Actuator hook: send a desired value (or the device's safe action) to the bus. */
static int act_send(void *ctx, int ch, double value, bool device_safe, bool safety)
{
    struct daemon *d = ctx;
    const struct rig_channel *c = &d->rig->channels[ch];
    size_t dev = c->device;
    struct bus *b = d->buses[d->rig->devices[dev].bus];
    if (device_safe)
        return bus_safe_state(b, d->dev_bus_index[dev], d->write_tag);
    return bus_write(b, d->dev_bus_index[dev], c->dev_ch, value,
                     safety ? BUS_PRIO_SAFETY : BUS_PRIO_SETPOINT, d->planned_ns, d->write_tag);
}

/* Every latched safe state is confirmed now: say so, once. */
static void safe_state_check(struct daemon *d, int64_t now)
{
    if (!d->safe_pending)
        return;
    if (!actuators_any_latched(&d->act)) {
        /* Nothing whose confirmation can be known (every channel released, or
         * no device with a safe value): never claim it was applied. */
        d->safe_pending = false;
        return;
    }
    if (!actuators_safe_confirmed(&d->act))
        return;
    d->safe_pending = false;
    char m[200];
    if (d->safe_superseded > 0)
        snprintf(m, sizeof m, "safe state applied: every channel still held confirmed it %.3f s after "
                 "it was requested (%u released before)", (double)(now - d->safe_requested_ns) / 1e9,
                 d->safe_superseded);
    else
        snprintf(m, sizeof m, "safe state applied: every device confirmed it %.3f s after it was requested",
                 (double)(now - d->safe_requested_ns) / 1e9);
    daemon_event(d, now, "info", "daemon", "safe_state_applied", m);
}

/* Actuator hook: a channel's confirmation changed. */
static void act_changed(void *ctx, int ch, const struct act_chan *c, int64_t now)
{
    struct daemon *d = ctx;
    struct chan_state *cs = &d->chans[ch];
    if (c->confirmed)
        cs->write_fail_reported = false;
    double v = c->value;        /* what the device last confirmed; NaN while unknown */
    bool same = (isnan(v) && isnan(cs->confirmed_recorded)) || v == cs->confirmed_recorded;
    if (!same) {
        cs->confirmed_recorded = v;
        history_hold(&d->hist, (size_t)ch, v, now);
        for (size_t i = 0; i < DAEMON_MAX_RUNS; i++)
            if (d->slots[i].run != NULL)
                run_on_confirmed(d->slots[i].run, ch, v, now);
    }
    safe_state_check(d, now);
}

/* Actuator hook: a channel stayed unconfirmed past its tolerance, or is confirmed after that. */
static void act_overdue(void *ctx, int ch, const struct act_chan *c, bool overdue, int64_t now)
{
    struct daemon *d = ctx;
    const struct rig_channel *rc = &d->rig->channels[ch];
    const char *dname = d->rig->devices[rc->device].name;
    bool safe = c->origin == ACT_SAFE;
    const char *code = safe ? "safe_state_unconfirmed" : "setpoint_unconfirmed";
    if (!overdue) {
        alarms_clear(&d->alarms, now, rc->name, "safe_state_unconfirmed", NULL);
        alarms_clear(&d->alarms, now, rc->name, "setpoint_unconfirmed", NULL);
        char m[200];
        snprintf(m, sizeof m, "%s %g %s confirmed by the device after %.1f s", rc->name,
                 c->desired, rc->unit, (double)(now - c->desired_ns) / 1e9);
        daemon_event(d, now, "info", rc->name, "setpoint_confirmed", m);
        return;
    }
    char want[64];
    if (c->device_safe && isnan(c->desired))
        snprintf(want, sizeof want, "its own safe action");
    else
        snprintf(want, sizeof want, "%g %s", c->desired, rc->unit);
    double for_s = (double)(now - c->unconfirmed_ns) / 1e9;
    log_warn(rc->name, "%s: %s (%s) not confirmed for %.1f s: %s", code, want,
             act_origin_name(c->origin), for_s, c->why[0] ? c->why : "no answer yet");
    alarms_raise(&d->alarms, now, safe ? "alarm" : "fault", rc->name, code, NULL,
                 "%s%s not confirmed by %s for %.1f s: %s", safe ? "safe state " : "", want, dname,
                 for_s, c->why[0] ? c->why : "no answer yet");
    struct run *holder = NULL;
    for (size_t i = 0; !safe && i < DAEMON_MAX_RUNS && holder == NULL; i++)
        if (slot_going(&d->slots[i]) != NULL && (size_t)ch < d->slots[i].claims.n &&
            d->slots[i].claims.writes[ch])
            holder = d->slots[i].run;
    if (!safe && holder == NULL)
        holder = live_run(d);
    if (holder != NULL) {
        char why[512];
        snprintf(why, sizeof why, "%s: %s not confirmed for %.1f s (%s)", rc->name, want, for_s,
                 c->why[0] ? c->why : "no answer yet");
        run_on_device_fault(holder, dname, why);
    }
}

/* Every 100 ms: retries that are due, and tolerances. */
static void act_timer_cb(uv_timer_t *t)
{
    struct daemon *d = t->data;
    actuators_tick(&d->act, pclock_now(&d->clock));
}

/* Configure the actuators from the rig's writable channels and their drivers' rules. */
static int setup_actuators(struct daemon *d)
{
    struct act_hooks h = { .ctx = d, .send = act_send, .changed = act_changed, .overdue = act_overdue };
    if (actuators_init(&d->act, d->rig->n_channels, (int64_t)(d->rig->confirm_s * 1e9),
                       (int64_t)(d->rig->safe_confirm_s * 1e9), &h) < 0)
        return -ENOMEM;
    for (size_t i = 0; i < d->rig->n_channels; i++) {
        const struct rig_channel *c = &d->rig->channels[i];
        if (!c->writable)
            continue;
        const struct rig_device *dev = &d->rig->devices[c->device];
        const struct driver_channel *dc = &dev->chans[c->dev_ch];
        actuators_config(&d->act, (int)i, dc->readback && c->readable, dc->reassert,
                         dev->drv->safe_state != NULL, dc->safe_value, dc->readback_tol);
    }
    uv_timer_init(d->loop, &d->act_timer);
    d->act_timer.data = d;
    uv_timer_start(&d->act_timer, act_timer_cb, 100, 100);
    return 0;
}

/* The writable channels of rig device dev lost their device, or have it back
 * (probed: the bus probes the device by itself, its link being up). */
static void device_reach(struct daemon *d, size_t dev, bool back, bool probed, const char *why,
                         int64_t t)
{
    const struct rig_device *rd = &d->rig->devices[dev];
    for (size_t k = 0; k < rd->n_chans; k++) {
        int ch = (int)(rd->first_channel + k);
        if (!d->rig->channels[ch].writable)
            continue;
        if (back)
            actuators_device_back(&d->act, ch, t);
        else
            actuators_device_lost(&d->act, ch, probed, why, t);
    }
}

/* A write failure's message for its event. */
static const char *msg_retried(const struct act_chan *c, const char *why, char *buf, size_t len)
{
    snprintf(buf, len, "command not delivered: %.200s; %s", why,
             c != NULL && c->give_up ? "the device refused it as invalid, so it is not sent again"
             : c != NULL && c->held ? "it is not sent again by itself: it waits for a read-back or a command"
             : "sent again until the device confirms it");
    return buf;
}

/* A finished write: its confirmation, and an event for the first failure of an episode. */
static void write_done(struct daemon *d, size_t bus, const struct bus_note *n)
{
    char m[300];
    if (n->err == -ECANCELED) {
        /* Dropped from the bus's queue by a safety action queued after it: it
         * never reached the device, which says nothing about the device. */
        if (n->channel != UINT32_MAX)
            actuators_on_write(&d->act, (int)n->channel, n->value, false, n->err, n->msg, n->t_ns);
        return;
    }
    if (n->channel != UINT32_MAX) {
        struct chan_state *cs = &d->chans[n->channel];
        bool report = n->err != 0 && !cs->write_fail_reported;
        actuators_on_write(&d->act, (int)n->channel, n->value, false, n->err, n->msg, n->t_ns);
        if (report) {
            cs->write_fail_reported = true;
            daemon_event(d, n->t_ns, "fault", d->rig->channels[n->channel].name, "write_failed",
                         msg_retried(actuators_get(&d->act, (int)n->channel), n->msg, m, sizeof m));
        }
        return;
    }
    /* A device's own safe action: the device that failed is the one the bus names. */
    size_t dev = rig_device_of(d, bus, n->device);
    if (dev == SIZE_MAX)
        return;
    const struct rig_device *rd = &d->rig->devices[dev];
    bool report = false;
    const struct act_chan *first = NULL;    /* its first writable channel, for the retry policy */
    for (size_t k = 0; k < rd->n_chans; k++) {
        size_t ch = rd->first_channel + k;
        if (!d->rig->channels[ch].writable)
            continue;
        report |= n->err != 0 && !d->chans[ch].write_fail_reported;
        if (n->err != 0)
            d->chans[ch].write_fail_reported = true;
        actuators_on_write(&d->act, (int)ch, NAN, true, n->err, n->msg, n->t_ns);
        if (first == NULL)
            first = actuators_get(&d->act, (int)ch);
    }
    if (report)
        daemon_event(d, n->t_ns, "fault", rd->name, "write_failed", msg_retried(first, n->msg, m, sizeof m));
}

/* Handle one note from a bus. */
static void handle_note(struct daemon *d, size_t bus, const struct bus_note *n)
{
    const char *bname = d->rig->buses[bus].name;
    switch (n->kind) {
    case BUS_NOTE_SAMPLE: {
        struct chan_state *c = &d->chans[n->channel];
        /* What control may use: NaN for a failed read or an implausible reading. */
        double use = NAN, record = NAN;
        int prev_err = c->err;
        c->err = n->err;
        if (n->err == 0) {
            /* The end of a refusal is an event too, so that a reader sees how long it lasted. */
            if (prev_err == -EREMOTEIO && c->msg[0] != '\0') {
                char m[sizeof c->msg + 32];
                utf8_format(m, sizeof m, "reads again after: %s", c->msg);
                daemon_event(d, n->t_ns, "info", d->rig->channels[n->channel].name, "device_error_cleared", m);
            }
            use = plaus_sample(&d->plaus, (int)n->channel, n->value, n->t_ns, &record);
            c->value = use;
            c->t_ns = n->t_ns;
            c->samples++;
            if (d->plaus.c != NULL && d->plaus.c[n->channel].active) {
                c->err = -EDOM;
            } else {
                c->msg[0] = '\0';
            }
        } else if (strcmp(c->msg, n->msg) != 0) {
            utf8_copy(c->msg, sizeof c->msg, n->msg);
            if (n->err == -EREMOTEIO)
                daemon_event(d, n->t_ns, "fault", d->rig->channels[n->channel].name,
                             "device_error", n->msg);
        }
        if (n->err == 0) {
            d->dev_health[d->rig->channels[n->channel].device].seen = true;
            actuators_on_sample(&d->act, (int)n->channel, n->value, n->t_ns);
        }
        /* Interlocks first: a safe state is queued before anything else is done. */
        interlocks_on_sample(&d->il, (int)n->channel, use, n->t_ns);
        regloop_on_sample(&d->rl, (int)n->channel, use, n->t_ns);
        delivery_on_sample(&d->dl, (int)n->channel, use, n->t_ns);
        for (size_t i = 0; i < DAEMON_MAX_RUNS; i++)
            if (d->slots[i].run != NULL)
                run_on_sample(d->slots[i].run, (int)n->channel, record, use, n->t_ns);
        /* A measurement's history (an actuator's read-back is not one: its history is
         * what the device confirmed, from act_changed). */
        history_add(&d->hist, n->channel, record, n->t_ns);
        if (d->observer.sample != NULL)
            d->observer.sample(d->observer.ctx, n->channel, record, n->t_ns);
        break;
    }
    case BUS_NOTE_WRITE:
        if (n->err == 0 && n->channel != UINT32_MAX && n->planned_ns > 0) {
            latency_add(&d->wire, n->sent_ns - n->planned_ns);
            latency_add(&d->wire_txn, n->t_ns - n->sent_ns);
            latency_add(&d->wire_sched, n->sent_ns - n->ready_ns);
        }
        if (n->err == 0 && d->il_tag != 0 && n->tag == d->il_tag) {
            /* The first safety write of a safe-stop interlock is on the wire. */
            char m[160];
            snprintf(m, sizeof m, "safe state on the wire %.3f ms after the offending sample arrived; "
                     "its transaction took %.3f ms", (double)(n->sent_ns - d->il_sample_ns) / 1e6,
                     (double)(n->t_ns - n->sent_ns) / 1e6);
            d->il_tag = 0;
            daemon_event(d, n->sent_ns, "info", "interlock", "interlock_latency", m);
        }
        if (n->err == 0) {
            size_t dev = n->channel != UINT32_MAX ? d->rig->channels[n->channel].device
                                                  : rig_device_of(d, bus, n->device);
            if (dev != SIZE_MAX)
                d->dev_health[dev].seen = true;
        }
        write_done(d, bus, n);
        break;
    case BUS_NOTE_DEVICE_FAULT:
    case BUS_NOTE_DEVICE_OK: {
        size_t found = rig_device_of(d, bus, n->device);
        if (found == SIZE_MAX)
            break;
        bool fault = n->kind == BUS_NOTE_DEVICE_FAULT;
        const char *dname = d->rig->devices[found].name;
        note_health(&d->dev_health[found], fault, n->t_ns, n->msg);
        daemon_event(d, n->t_ns, fault ? "fault" : "info", dname,
                     fault ? "device_faulted" : "device_recovered", n->msg);
        /* A device fault is an alarm too: someone must see it, even if it recovers. */
        if (fault)
            alarms_raise(&d->alarms, n->t_ns, "fault", dname, "device_fault", NULL, "%s", n->msg);
        else
            alarms_clear(&d->alarms, n->t_ns, dname, "device_fault", NULL);
        /* A run alone on the rig follows its on_fault for any device; with
         * several, only the runs that use the device do: the others go on. */
        if (fault && daemon_runs_going(d) == 1) {
            for (size_t i = 0; i < DAEMON_MAX_RUNS; i++)
                if (slot_going(&d->slots[i]) != NULL)
                    run_on_device_fault(d->slots[i].run, dname, n->msg);
        }
        for (size_t from = 0; fault && daemon_runs_going(d) > 1 && from < DAEMON_MAX_RUNS;) {
            struct run *r = run_using_device(d, found, true, &from);
            if (r != NULL)
                run_on_device_fault(r, dname, n->msg);
        }
        if (fault || !d->bus_health[bus].faulted)
            device_reach(d, found, !fault, true, n->msg, n->t_ns);
        break;
    }
    case BUS_NOTE_LINK_DOWN: {
        note_health(&d->bus_health[bus], true, n->t_ns, n->msg);
        daemon_event(d, n->t_ns, "fault", bname, "link_down", n->msg);
        char why[200];
        snprintf(why, sizeof why, "link %s is down: %s", bname, n->msg);
        for (size_t i = 0; i < d->rig->n_devices; i++)
            if (d->rig->devices[i].bus == bus)
                device_reach(d, i, false, false, why, n->t_ns);
        break;
    }
    case BUS_NOTE_LINK_UP:
        note_health(&d->bus_health[bus], false, n->t_ns, n->msg);
        daemon_event(d, n->t_ns, "info", bname, "link_up", n->msg);
        for (size_t i = 0; i < d->rig->n_devices; i++)
            if (d->rig->devices[i].bus == bus && !d->dev_health[i].faulted)
                device_reach(d, i, true, false, NULL, n->t_ns);
        break;
    }
}

/* Drain every bus's notes. */
static void drain_notes(struct daemon *d)
{
    struct bus_note notes[NOTE_BATCH];
    for (size_t b = 0; b < d->n_buses; b++) {
        size_t n;
        while ((n = bus_take_notes(d->buses[b], notes, NOTE_BATCH)) > 0)
            for (size_t i = 0; i < n; i++) {
                /* A driver's message may quote a device's bytes: keep every
                 * reply, event and file string valid UTF-8. */
                utf8_scrub(notes[i].msg);
                handle_note(d, b, &notes[i]);
            }
    }
}

/* A bus thread woke the loop: notes are waiting. */
static void bus_woken(struct loopwake *w)
{
    drain_notes(w->data);
}

/* ------------------------------------------------------------------------ */
/* Regulators: each ticks on the loop at its rate (run/regloop.h); its output */
/* is commanded like any setpoint, its figures go to the run file.          */
/* ------------------------------------------------------------------------ */

/* A regulator's output: the actuator's desired value, confirmed as any setpoint. */
static void reg_write(void *ctx, int ch, double out, int64_t t)
{
    struct daemon *d = ctx;
    /* Refused while a latched safe state holds the actuator: the safe state wins. */
    daemon_command(d, ch, out, ACT_PROTOCOL, t);
}

/* The run whose file is open that holds regulator k's regulated channel (its
 * setpoint is that run's); alone on the rig, the one run. NULL: none. */
static struct run *reg_run(struct daemon *d, size_t k)
{
    int m = d->rig->regulators[k].measure;
    for (size_t i = 0; i < DAEMON_MAX_RUNS; i++) {
        const struct run_slot *s = &d->slots[i];
        if (slot_open(s) != NULL && (size_t)m < s->claims.n && s->claims.writes[m])
            return s->run;
    }
    return daemon_runs_going(d) <= 1 ? live_run(d) : NULL;
}

/* A tick's setpoint, measurement, output and terms: /regulators in the file of
 * the run the regulator's setpoint belongs to. */
static void reg_terms(void *ctx, size_t k, const struct reg_terms *r, int64_t t)
{
    struct daemon *d = ctx;
    struct run *run = reg_run(d, k);
    if (run == NULL)
        return;
    const double v[RUNFILE_REG_SERIES] = { r->sp, r->y, r->out, r->p, r->i, r->d, r->ff };
    for (int j = 0; j < RUNFILE_REG_SERIES; j++)
        run_record_regulated(run, (int)(k * RUNFILE_REG_SERIES + (size_t)j), v[j], t);
}

/* A regulator's fault: an alarm; inverted, saturated and lost are device faults for the run
 * (its on_fault); a bad measurement is an alarm only (the regulator already holds or safes). */
static void reg_fault(void *ctx, size_t k, enum reg_fault f, bool active, const char *msg, int64_t t)
{
    struct daemon *d = ctx;
    const char *name = d->rig->regulators[k].name, *code = regulator_fault_code(f);
    if (!active) {
        alarms_clear(&d->alarms, t, name, code, NULL);
        daemon_event(d, t, "info", name, "regulation_cleared", msg);
        return;
    }
    daemon_event(d, t, f == RF_MEASUREMENT ? "alarm" : "fault", name, code, msg);
    alarms_raise(&d->alarms, t, f == RF_MEASUREMENT ? "alarm" : "fault", name, code, NULL, "%s", msg);
    struct run *run = reg_run(d, k);
    if (f != RF_MEASUREMENT && run != NULL)
        run_on_device_fault(run, name, msg);
}

/* Set up the regulators, all stopped until their channel gets a setpoint. */
static int setup_regulators(struct daemon *d)
{
    struct regloop_hooks h = { .ctx = d, .write = reg_write, .terms = reg_terms, .fault = reg_fault };
    return regloop_init(&d->rl, d->rig, &d->clock, &h);
}

/* Run hook: the run paused or resumed; every regulator holds or goes on bumplessly. */
static void host_paused(void *ctx, bool pause, int64_t now)
{
    struct daemon *d = ctx;
    if (pause)
        regloop_pause(&d->rl);
    else
        regloop_resume(&d->rl, now);
}

/* Stop the regulators whose actuator the safe state may touch (every one for the
 * rig or a run alone; beside other runs, those of the run) and latch each actuator
 * one drove to its safe output, unless the safe state being applied names it. */
static void stop_regulators(struct daemon *d, const struct run_slot *self, const struct plan_target *targets,
                            size_t n, int64_t now)
{
    for (size_t k = 0; k < d->rl.n; k++) {
        const struct regloop_entry *e = regloop_get(&d->rl, k);
        const struct rig_regulator *g = e->reg.cfg;
        if (!may_touch(d, self, (size_t)g->actuator))
            continue;
        bool covered = false;
        for (size_t i = 0; i < n; i++)
            covered |= targets[i].channel == g->actuator;
        if (e->running && !covered)
            daemon_write(d, g->actuator, g->safe_output, BUS_PRIO_SAFETY, now);
        regloop_stop_one(&d->rl, k, false);
    }
}

/* Command a channel. */
int daemon_command(struct daemon *d, int channel, double value, enum act_origin origin,
                   int64_t planned_ns)
{
    if (channel < 0 || (size_t)channel >= d->rig->n_channels)
        return -EINVAL;
    if (regloop_setpoint(&d->rl, channel, value, pclock_now(&d->clock)))
        return 0;   /* a regulated channel: its regulator moves the actuator */
    if (!d->rig->channels[channel].writable)
        return -EPERM;
    if (latch_holder(&d->latch, channel) != NULL)
        return -EACCES;     /* held in its safe state by a tripped limit */
    d->planned_ns = planned_ns;
    int rc = actuators_set_desired(&d->act, channel, value, origin, pclock_now(&d->clock));
    d->planned_ns = 0;
    if (rc == -EINVAL || rc == -EPERM)
        return rc;
    d->chans[channel].setpoint = value;
    delivery_on_setpoint(&d->dl, channel, value, pclock_now(&d->clock));
    return 0;       /* sent, or queued for a retry: it is desired either way */
}

/* Command a channel with a bus priority: safety latches a safe state. */
int daemon_write(struct daemon *d, int channel, double value, enum bus_priority prio,
                 int64_t planned_ns)
{
    if (prio == BUS_PRIO_SETPOINT)
        return daemon_command(d, channel, value, ACT_PROTOCOL, planned_ns);
    if (channel < 0 || (size_t)channel >= d->rig->n_channels)
        return -EINVAL;
    if (!d->rig->channels[channel].writable)
        return -EPERM;
    d->planned_ns = planned_ns;
    int64_t now = pclock_now(&d->clock);
    int rc = actuators_latch_safe(&d->act, channel, value, false, now);
    d->planned_ns = 0;
    if (rc == -EINVAL)
        return rc;
    d->chans[channel].setpoint = value;
    delivery_on_setpoint(&d->dl, channel, value, now);
    return 0;
}

/* End the latched safe state of channel ch (every channel if ch < 0). */
void daemon_release_safe(struct daemon *d, int ch)
{
    bool superseded = false;
    for (size_t i = 0; i < d->act.n; i++) {
        if (ch >= 0 && (size_t)ch != i)
            continue;
        const struct act_chan *c = actuators_get(&d->act, (int)i);
        if (c == NULL || !c->latched)
            continue;
        if (!c->confirmed && d->safe_pending) {
            superseded = true;
            d->safe_superseded++;
            char m[200];
            snprintf(m, sizeof m, "the safe state of %s is released before the device confirmed it",
                     d->rig->channels[i].name);
            daemon_event(d, pclock_now(&d->clock), "warning", d->rig->channels[i].name,
                         "safe_state_superseded", m);
        }
        actuators_release(&d->act, (int)i);
    }
    /* A channel released before it confirmed was never applied there: the
     * others still held are still awaited (safe_state_check says which). */
    if (superseded)
        safe_state_check(d, pclock_now(&d->clock));
}

/* Whether the safe state last requested is confirmed. */
bool daemon_safe_confirmed(const struct daemon *d)
{
    return actuators_safe_confirmed(&d->act);
}

/* Whether every latched safe state on a channel the run of slot self may touch is confirmed. */
static bool safe_confirmed_for(struct daemon *d, const struct run_slot *self)
{
    for (size_t i = 0; i < d->act.n; i++)
        if (d->act.c[i].on && d->act.c[i].latched && !d->act.c[i].confirmed && may_touch(d, self, i))
            return false;
    return true;
}

/* End the latched safe state of every channel the run of slot self may touch. */
static void release_safe_for(struct daemon *d, const struct run_slot *self)
{
    for (size_t i = 0; i < d->rig->n_channels; i++)
        if (may_touch(d, self, i))
            daemon_release_safe(d, (int)i);
}

static void safe_state_for(struct daemon *d, const struct run_slot *self,
                           const struct plan_target *targets, size_t n);

/* Put every device in its safe state, latched until confirmed and released. */
void daemon_safe_state(struct daemon *d, const struct plan_target *targets, size_t n)
{
    safe_state_for(d, NULL, targets, n);
}

/* The safe state for the run of slot self (NULL: for the rig): targets
 * first, then every device's own safe action, on what it may touch (may_touch). */
static void safe_state_for(struct daemon *d, const struct run_slot *self,
                           const struct plan_target *targets, size_t n)
{
    int64_t now = pclock_now(&d->clock);
    d->safe_pending = true;
    d->safe_superseded = 0;
    d->safe_requested_ns = now;
    stop_regulators(d, self, targets, n, now);
    for (size_t i = 0; i < n; i++)
        if (d->rig->channels[targets[i].channel].writable)
            daemon_write(d, targets[i].channel, targets[i].v0, BUS_PRIO_SAFETY, now);
    for (size_t i = 0; i < d->rig->n_devices; i++) {
        const struct rig_device *dev = &d->rig->devices[i];
        bool covered = false;
        for (size_t k = 0; k < n; k++)
            if (d->rig->channels[targets[k].channel].device == i)
                covered = true;
        if (covered || dev->drv->safe_state == NULL)
            continue;
        bool other = false;
        for (size_t k = 0; k < dev->n_chans; k++)
            other |= !may_touch(d, self, dev->first_channel + k);
        if (other)
            continue;       /* another run's device: it keeps going */
        bool any = false;
        for (size_t k = 0; k < dev->n_chans; k++) {
            size_t c = dev->first_channel + k;
            if (!d->rig->channels[c].writable)
                continue;
            any = true;
            actuators_latch_safe(&d->act, (int)c, NAN, true, now);
            /* The device's own safe state is no setpoint of ours: status shows it as the
             * desired state (origin safe), and no longer the last setpoint. */
            d->chans[c].setpoint = NAN;
            delivery_on_setpoint(&d->dl, (int)c, NAN, now);
        }
        if (!any)
            bus_safe_state(d->buses[dev->bus], d->dev_bus_index[i], d->write_tag);
    }
    safe_state_check(d, now);
}

/* Mark the channels the steps under s write and the ones their wait_until reads. */
static void plan_step_channels(const struct plan_step *s, bool *writes, bool *reads)
{
    for (size_t i = 0; i < s->n_targets; i++)
        writes[s->targets[i].channel] = true;
    if (s->kind == STEP_WAIT && s->cond_channel >= 0)
        reads[s->cond_channel] = true;
    for (size_t i = 0; i < s->n_steps; i++)
        plan_step_channels(&s->steps[i], writes, reads);
}

/* The channels a plan writes (steps and safe state) and the sensors it watches. */
static void plan_channels(const struct plan *p, bool *writes, bool *reads)
{
    plan_step_channels(&p->root, writes, reads);
    for (size_t i = 0; i < p->n_safe; i++)
        writes[p->safe_state[i].channel] = true;
    for (size_t i = 0; i < p->n_limits; i++)
        reads[p->limits[i].channel] = true;
}

/* Why a plan cannot run now; the number of reasons, each on its line in buf. */
int daemon_run_blockers(struct daemon *d, const struct plan *p, char *buf, size_t len)
{
    const struct rig *rig = d->rig;
    bool *writes = calloc(rig->n_channels + 1, sizeof *writes), *reads = calloc(rig->n_channels + 1, sizeof *reads);
    if (writes == NULL || reads == NULL) {
        free(writes);
        free(reads);
        snprintf(buf, len, "out of memory");
        return 1;
    }
    plan_channels(p, writes, reads);
    size_t k = 0;
    int n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < rig->n_devices; i++) {
        const struct rig_device *dev = &rig->devices[i];
        bool w = false;
        for (size_t c = 0; c < dev->n_chans; c++)
            w |= writes[dev->first_channel + c];
        if (!w)
            continue;
        const char *why = NULL;
        char m[512];
        if (d->bus_health[dev->bus].faulted)
            snprintf(m, sizeof m, "%s (which the protocol sets) is out of reach: link %s is down: %s",
                     dev->name, rig->buses[dev->bus].name, d->bus_health[dev->bus].last_error), why = m;
        else if (d->dev_health[i].faulted)
            snprintf(m, sizeof m, "%s (which the protocol sets) is faulted: %s", dev->name,
                     d->dev_health[i].last_error), why = m;
        if (why && k + 1 < len) {
            k += (size_t)snprintf(buf + k, len - k, "%s%s", n ? "\n" : "", why);
            n++;
        }
    }
    for (size_t i = 0; i < rig->n_channels; i++) {
        if (!reads[i])
            continue;
        const struct rig_channel *c = &rig->channels[i];
        char m[512];
        m[0] = '\0';
        if (d->bus_health[rig->devices[c->device].bus].faulted)
            snprintf(m, sizeof m, "%s (in the protocol's limits or wait_until) is lost: link %s is down",
                     c->name, rig->buses[rig->devices[c->device].bus].name);
        else if (d->dev_health[c->device].faulted)
            snprintf(m, sizeof m, "%s (in the protocol's limits or wait_until) is lost: %s is faulted",
                     c->name, rig->devices[c->device].name);
        else if (d->plaus.c != NULL && (d->plaus.c[i].active & (1u << PF_LOST)))
            snprintf(m, sizeof m, "%s (in the protocol's limits or wait_until) is lost: %s", c->name,
                     d->chans[i].msg);
        if (m[0] && k + 1 < len) {
            k += (size_t)snprintf(buf + k, len - k, "%s%s", n ? "\n" : "", m);
            n++;
        }
    }
    free(writes);
    free(reads);
    return n;
}

/* Create one bus thread per rig bus. */
static int start_buses(struct daemon *d)
{
    struct rig *rig = d->rig;
    d->buses = calloc(rig->n_buses ? rig->n_buses : 1, sizeof *d->buses);
    d->dev_bus_index = calloc(rig->n_devices ? rig->n_devices : 1, sizeof *d->dev_bus_index);
    d->sample_hz = calloc(rig->n_channels ? rig->n_channels : 1, sizeof *d->sample_hz);
    struct bus_device_cfg *cfgs = calloc(rig->n_devices ? rig->n_devices : 1, sizeof *cfgs);
    if (!d->buses || !d->dev_bus_index || !d->sample_hz || !cfgs) {
        free(cfgs);
        return -ENOMEM;
    }
    for (size_t i = 0; i < rig->n_channels; i++)
        d->sample_hz[i] = d->cfg.sample_hz > 0 && rig->channels[i].readable ? d->cfg.sample_hz
                                                                             : rig->channels[i].sample_hz;
    int rc = 0;
    for (size_t b = 0; b < rig->n_buses && rc == 0; b++) {
        size_t n = 0;
        for (size_t i = 0; i < rig->n_devices; i++) {
            struct rig_device *dev = &rig->devices[i];
            if (dev->bus != b)
                continue;
            d->dev_bus_index[i] = n;
            cfgs[n++] = (struct bus_device_cfg){
                .name = dev->name, .drv = dev->drv, .state = dev->state, .chans = dev->chans,
                .n_chans = dev->n_chans, .sample_hz = &d->sample_hz[dev->first_channel],
                .first_id = (uint32_t)dev->first_channel,
            };
        }
        rc = bus_create(&d->buses[b], &rig->buses[b].link, cfgs, n, loopwake_send, &d->bus_wake);
        if (rc == 0) {
            d->n_buses++;
            bus_set_realtime(d->buses[b], d->cfg.realtime_prio);
            rc = bus_start(d->buses[b]);
        }
    }
    free(cfgs);
    return rc;
}

/* SIGTERM / SIGINT: stop in order. */
static void signal_cb(uv_signal_t *s, int signum)
{
    struct daemon *d = s->data;
    log_info("daemon", "received %s", strsignal(signum));
    daemon_shutdown(d, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* SIGCHLD: the simulator exited on its own. */
static void sigchld_cb(uv_signal_t *s, int signum)
{
    struct daemon *d = s->data;
    (void)signum;
    int status;
    if (d->sim.pid > 0 && waitpid(d->sim.pid, &status, WNOHANG) == d->sim.pid) {
        d->sim.pid = 0;
        daemon_event(d, pclock_now(&d->clock), "fault", "sim", "sim_exited",
                     "perfuse-sim exited; the simulated devices are gone");
    }
}

/* Load the rig file (or start the simulator and load its rig). */
static int load_rig(struct daemon *d)
{
    const char *path = d->cfg.rig_path;
    if (d->cfg.sim) {
        char err[512];
        int rc = simchild_start(&d->sim, d->cfg.sim_path, d->cfg.sim_seed, d->cfg.sim_args,
                                err, sizeof err);
        if (rc < 0) {
            log_error("sim", "%s", err);
            return rc;
        }
        path = d->sim.rig_file;
    }
    struct diag dg;
    diag_init(&dg);
    int rc = rig_load(path, &d->rig, &dg);
    diag_print(&dg, stderr);
    diag_free(&dg);
    return rc;
}

/* ------------------------------------------------------------- the run's host */

/* Latch store: the safe state of the rig (never another run's actuators). */
static void host_safe_state(void *ctx, const struct plan_target *targets, size_t n)
{
    daemon_safe_state(ctx, targets, n);
}

/* Run host (ctx: the run's slot): command a channel for the protocol. */
static int slot_write(void *ctx, int channel, double value, int64_t planned_ns)
{
    struct run_slot *s = ctx;
    return daemon_write(s->d, channel, value, BUS_PRIO_SETPOINT, planned_ns);
}

/* Run host: the run's safe state, on what it holds and what no other run holds. */
static void slot_safe_state(void *ctx, const struct plan_target *targets, size_t n)
{
    struct run_slot *s = ctx;
    safe_state_for(s->d, s, targets, n);
}

/* Run host: whether the run's safe state is confirmed. */
static bool slot_safe_confirmed(void *ctx)
{
    struct run_slot *s = ctx;
    return safe_confirmed_for(s->d, s);
}

/* Run host: a new run ends the latched safe state of what it may take. */
static void slot_release_safe(void *ctx)
{
    struct run_slot *s = ctx;
    release_safe_for(s->d, s);
}

/* Run host: a channel's commanded value, for the journal. */
static double slot_setpoint(void *ctx, int channel)
{
    struct run_slot *s = ctx;
    return s->d->chans[channel].setpoint;
}

/* Run host: why a plan cannot start now. */
static int slot_blockers(void *ctx, const struct plan *p, char *buf, size_t len)
{
    struct run_slot *s = ctx;
    return daemon_run_blockers(s->d, p, buf, len);
}

/* Run host: an alert about run r. */
static void slot_alert(void *ctx, const struct run *r, const char *kind, const char *severity,
                       const char *source, const char *code, const char *message)
{
    struct run_slot *s = ctx;
    daemon_alert(s->d, r, kind, severity, source, code, message);
}

/* Run host: whether another run is going beside this one. */
static bool slot_others(void *ctx)
{
    struct run_slot *s = ctx;
    for (size_t i = 0; i < DAEMON_MAX_RUNS; i++)
        if (&s->d->slots[i] != s && slot_going(&s->d->slots[i]) != NULL)
            return true;
    return false;
}

/* Latch store: an event, in the current run's file or the log. */
static void host_event(void *ctx, int64_t t, const char *severity, const char *source, const char *code,
                       const char *message)
{
    daemon_event(ctx, t, severity, source, code, message);
}

/* Run host: raise or clear a run's alarm. Its alert (alarm_event) is about the
 * live run, which r is: a run raises alarms only while its file is open. */
static void slot_alarm(void *ctx, const struct run *r, bool raise, const char *severity,
                       const char *source, const char *code, const char *message)
{
    struct daemon *d = ((struct run_slot *)ctx)->d;
    int64_t now = pclock_now(&d->clock);
    if (raise)
        alarms_raise_run(&d->alarms, run_id(r), now, severity, source, code, NULL, "%s", message);
    else
        alarms_clear_run(&d->alarms, run_id(r), now, source, code, NULL);
}

/* Run host: the run paused or resumed. Its regulators (alone on the rig: all of
 * them; beside other runs: those whose regulated channel it holds) hold or go on. */
static void slot_paused(void *ctx, bool pause, int64_t now)
{
    struct run_slot *s = ctx;
    if (!slot_others(s)) {
        host_paused(s->d, pause, now);
        return;
    }
    for (size_t k = 0; k < s->d->rl.n; k++) {
        int m = s->d->rig->regulators[k].measure;
        if ((size_t)m >= s->claims.n || !s->claims.writes[m])
            continue;
        if (pause)
            regloop_pause_one(&s->d->rl, k);
        else
            regloop_resume_one(&s->d->rl, k, now);
    }
}

/* Run host: a run's file closed; the control server answers those waiting for it. */
static void slot_closed(void *ctx, struct run *r)
{
    struct run_slot *s = ctx;
    control_run_closed(s->d->control, run_id(r));
}

/* Resume hook: every actuator of the rig in its safe state. */
static void resume_safe_state(void *ctx)
{
    daemon_safe_state(ctx, NULL, 0);
}

/* Resume hook: an alarm about the journal, or (run) about the run it continued.
 * A run's is about what happened at the restart, not a lasting condition:
 * listed as cleared, until acknowledged. */
static void resume_alarm(void *ctx, const char *run, const char *code, const char *message)
{
    struct daemon *d = ctx;
    int64_t now = pclock_now(&d->clock);
    if (run == NULL) {
        alarms_raise(&d->alarms, now, "alarm", "journal", code, NULL, "%s", message);
        return;
    }
    alarms_raise_run(&d->alarms, run, now, "alarm", "journal", code, NULL, "%s", message);
    alarms_clear_run(&d->alarms, run, now, "journal", code, NULL);
}

/* Give slot s the run of plan (its claim, and name, or one derived from the
 * protocol's name that no run going has). 0 or -ENOMEM. */
int daemon_slot_prepare(struct daemon *d, struct run_slot *s, const struct plan *plan, const char *name)
{
    claims_free(&s->claims);
    if (s->run != NULL) {
        run_free(s->run);
        s->run = NULL;
    }
    if (claims_of_plan(plan, d->rig, &s->claims) < 0)
        return -ENOMEM;
    s->host.claimed = s->claims.writes;
    if (name != NULL && name[0] != '\0') {
        snprintf(s->name, sizeof s->name, "%s", name);
        return 0;
    }
    char base[CLAIMS_MAX_NAME + 1];
    claims_default_name(plan->name, base, sizeof base);
    snprintf(s->name, sizeof s->name, "%s", base);
    for (unsigned k = 2; daemon_name_taken(d, s, s->name); k++) {
        char sfx[16];
        int n = snprintf(sfx, sizeof sfx, "-%u", k);
        size_t keep = strlen(base);
        if (keep + (size_t)n > CLAIMS_MAX_NAME)
            keep = CLAIMS_MAX_NAME - (size_t)n;
        snprintf(s->name, sizeof s->name, "%.*s%s", (int)keep, base, sfx);
    }
    return 0;
}

/* Whether a run going in another slot than self is called name. */
bool daemon_name_taken(struct daemon *d, const struct run_slot *self, const char *name)
{
    for (size_t i = 0; i < DAEMON_MAX_RUNS; i++)
        if (&d->slots[i] != self && slot_going(&d->slots[i]) != NULL && strcmp(d->slots[i].name, name) == 0)
            return true;
    return false;
}

/* A free slot for a new run: the first one empty or whose run's file is
 * closed (so that a run alone on the rig always has slot 0 and its journal
 * is run.journal, as it always was); NULL if every slot's run is open. */
struct run_slot *daemon_free_slot(struct daemon *d)
{
    for (size_t i = 0; i < DAEMON_MAX_RUNS; i++) {
        struct run_slot *s = &d->slots[i];
        if (s->run == NULL || run_closed(s->run))
            return s;
    }
    return NULL;
}

/* The run of slot s has started (or continued): it is the latest. */
void daemon_slot_started(struct daemon *d, struct run_slot *s, struct run *r)
{
    s->run = r;
    s->started = ++d->runs_started;
}

/* The slot resuming now (resume_at_start continues one journal at a time). */
static struct run_slot *resuming;

/* Resume hook: continue the journaled run (or close it, as its on_restart says). */
static int resume_run(void *ctx, const struct journal_rec *j, struct plan *plan, double last_alive_s,
                      const struct run_replaced *rep)
{
    struct daemon *d = ctx;
    struct run_slot *s = resuming;
    struct diag dg;
    diag_init(&dg);
    struct run *r;
    if (daemon_slot_prepare(d, s, plan, j->run_name[0] ? j->run_name : NULL) < 0) {
        plan_free(plan);
        diag_free(&dg);
        return -ENOMEM;
    }
    int rc = run_continue(&s->host, j, plan, last_alive_s, rep, &dg, &r);
    if (rc < 0) {
        diag_print(&dg, stderr);
        claims_free(&s->claims);
        s->host.claimed = NULL;
    } else {
        daemon_slot_started(d, s, r);
    }
    diag_free(&dg);
    return rc;
}

/* The runs going when the daemon last stopped (kill -9, power cut, SIGTERM):
 * each one's journal is continued, closed or refused (resume.h), in its own
 * slot. Blocking, at start-up only. */
static void continue_journaled_runs(struct daemon *d)
{
    /* First every journal's claim, so that a run closed by its safe-stop never
     * stops what a run continued after it holds. */
    for (size_t i = 0; i < DAEMON_MAX_RUNS; i++) {
        struct run_slot *s = &d->slots[i];
        char name[64];
        journal_slot_name(i, name, sizeof name);
        struct resume_source src = { .data_dir = d->cfg.data_dir, .dir_fd = s->journal.dir_fd,
                                     .dir_error = s->journal.dir_error, .rig = d->rig,
                                     .now_wall_ns = time_wall_ns(), .name = name };
        struct resume_decision dec;
        resume_decide(&src, &dec);
        if (dec.plan != NULL && dec.plan->on_restart == ON_RESTART_RESUME &&
            claims_of_plan(dec.plan, d->rig, &s->claims) == 0)
            s->resuming = true;
        resume_decision_free(&dec);
    }
    for (size_t i = 0; i < DAEMON_MAX_RUNS; i++) {
        struct run_slot *s = &d->slots[i];
        char name[64];
        journal_slot_name(i, name, sizeof name);
        struct resume_source src = { .data_dir = d->cfg.data_dir, .dir_fd = s->journal.dir_fd,
                                     .dir_error = s->journal.dir_error, .rig = d->rig,
                                     .now_wall_ns = time_wall_ns(), .name = name };
        struct resume_hooks h = { .ctx = d, .safe_state = resume_safe_state, .alarm = resume_alarm,
                                  .continue_run = resume_run };
        resuming = s;
        s->resuming = false;
        resume_at_start(&src, &h);
        resuming = NULL;
    }
}

/* Set up the daemon. */
int daemon_init(struct daemon *d, uv_loop_t *loop, const struct daemon_config *cfg)
{
    memset(d, 0, sizeof *d);
    d->loop = loop;
    d->cfg = *cfg;
    gethostname(d->host, sizeof d->host - 1);
    pclock_init_real(&d->clock, loop);
    /* Handles first: daemon_shutdown closes them whatever fails later. */
    uv_signal_init(loop, &d->sig_term);
    uv_signal_init(loop, &d->sig_int);
    uv_signal_init(loop, &d->sig_chld);
    d->sig_term.data = d->sig_int.data = d->sig_chld.data = d;
    uv_signal_start(&d->sig_term, signal_cb, SIGTERM);
    uv_signal_start(&d->sig_int, signal_cb, SIGINT);
    uv_signal_start(&d->sig_chld, sigchld_cb, SIGCHLD);
    int rc = loopwake_init(loop, &d->bus_wake, bus_woken);
    if (rc < 0) {
        log_error("daemon", "cannot set up the buses' wake-up: %s", uv_strerror(rc));
        return rc;
    }
    d->bus_wake.data = d;
    recorder_recover_dir(cfg->data_dir);
    rc = load_rig(d);
    if (rc < 0)
        return rc;
    d->chans = calloc(d->rig->n_channels ? d->rig->n_channels : 1, sizeof *d->chans);
    if (d->chans == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < d->rig->n_channels; i++)
        d->chans[i].value = d->chans[i].setpoint = d->chans[i].confirmed_recorded = NAN;
    /* An actuator's history is what its device confirmed, held between changes. */
    bool *held = calloc(d->rig->n_channels + 1, sizeof *held);
    for (size_t i = 0; held != NULL && i < d->rig->n_channels; i++)
        held[i] = d->rig->channels[i].writable;
    rc = held != NULL ? history_init(&d->hist, d->rig->n_channels, held) : -ENOMEM;
    free(held);
    if (rc < 0)
        return rc;
    d->dev_health = calloc(d->rig->n_devices + 1, sizeof *d->dev_health);
    d->bus_health = calloc(d->rig->n_buses + 1, sizeof *d->bus_health);
    if (d->dev_health == NULL || d->bus_health == NULL)
        return -ENOMEM;
    alarms_init(&d->alarms, alarm_event, d);
    latch_init(&d->latch, d->rig->n_channels);
    alerts_init(&d->alerts, loop, d->rig->alert_command, d->rig->name, d->host,
                d->rig->alert_min_interval_s, d->rig->alert_max_per_hour);
    struct interlock_hooks ih = { .ctx = d, .trip = limit_tripped, .clear = limit_cleared };
    if (interlocks_init(&d->il, d->rig->limits, d->rig->n_limits, &ih) < 0)
        return -ENOMEM;
    struct delivery_hooks dh = { .ctx = d, .raise = delivery_raised, .clear = delivery_cleared,
                                 .fill = delivery_fill };
    if (delivery_init(&d->dl, d->rig, &dh) < 0)
        return -ENOMEM;
    d->run_host = (struct run_host){
        .loop = loop, .clock = &d->clock, .rig = d->rig, .data_dir = cfg->data_dir,
        .host_name = d->host, .il = &d->il, .alarms = &d->alarms,
        .latch = &d->latch, .dl = &d->dl, .dispatch = &d->dispatch, .wire = &d->wire,
        .wire_txn = &d->wire_txn, .wire_sched = &d->wire_sched,
        .write = slot_write, .safe_state = slot_safe_state,
        .safe_confirmed = slot_safe_confirmed, .release_safe = slot_release_safe,
        .setpoint = slot_setpoint, .blockers = slot_blockers, .alert = slot_alert,
        .alarm = slot_alarm, .closed = slot_closed, .others = slot_others, .paused = slot_paused,
    };
    for (size_t i = 0; i < DAEMON_MAX_RUNS; i++) {
        struct run_slot *s = &d->slots[i];
        s->d = d;
        s->index = i;
        s->host = d->run_host;
        s->host.ctx = s;
        s->host.journal = &s->journal;
        s->host.run_name = s->name;
    }
    char err[512] = "";
    /* A second daemon on the same serial ports must not start at all. */
    for (size_t i = 0; i < d->rig->n_buses; i++) {
        const struct link_config *l = &d->rig->buses[i].link;
        if ((l->type == LINK_SERIAL || l->type == LINK_MODBUS_RTU) && l->port != NULL &&
            serial_check_free(l->port, err, sizeof err) < 0) {
            log_error("daemon", "bus %s: %s; refusing to start", d->rig->buses[i].name, err);
            return -EBUSY;
        }
    }
    return 0;
}

/* Start driving the rig. */
int daemon_start(struct daemon *d)
{
    /* Before the bus threads exist: they start normal (reset on fork) and
     * raise themselves only if the loop could. */
    if (d->cfg.realtime_prio > 0) {
        int rrc = rtsched_enter(d->cfg.realtime_prio);
        if (rrc < 0) {
            log_warn("daemon", "cannot run at real-time priority %d (%s): setpoints are timed at "
                     "normal priority, and a busy machine can make them late; give perfused "
                     "CAP_SYS_NICE or LimitRTPRIO=%d", d->cfg.realtime_prio, strerror(-rrc),
                     d->cfg.realtime_prio);
            d->cfg.realtime_prio = 0;
        }
    }
    rtsched_describe(d->sched, sizeof d->sched);
    int rc = setup_actuators(d);
    if (rc == 0)
        rc = setup_regulators(d);
    if (rc == 0)
        rc = start_buses(d);
    if (rc == 0)
        rc = setup_plausibility(d);
    if (rc == 0) {
        /* What a tripped limit held before the restart is held again before a
         * journaled run continues or a command is served. */
        latchstore_restore(&d->latchstore, &(struct latchstore_host){
            .loop = d->loop, .clock = &d->clock, .rig = d->rig, .data_dir = d->cfg.data_dir,
            .alarms = &d->alarms, .latch = &d->latch, .il = &d->il,
            .ctx = d, .safe_state = host_safe_state, .event = host_event });
        for (size_t i = 0; i < DAEMON_MAX_RUNS; i++) {
            struct journal_writer *w = &d->slots[i].journal;
            char name[64];
            journal_slot_name(i, name, sizeof name);
            journal_writer_init_file(w, d->loop, d->cfg.data_dir, name,
                                     "a restart could not continue the run from here");
            w->result = journal_result;
            w->result_ctx = d;
        }
        continue_journaled_runs(d);
    }
    if (rc < 0)
        log_error("daemon", "cannot start the bus threads: %s", strerror(-rc));
    log_info("daemon", "rig '%s': %zu buses, %zu devices, %zu channels; control socket %s",
             d->rig->name, d->rig->n_buses, d->rig->n_devices, d->rig->n_channels,
             d->control ? control_path(d->control) : "none");
    return rc;
}

/* The end of the shutdown: say honestly whether the safe state was confirmed,
 * stop the buses (queued safe-state commands reach the wire first), close the
 * run and the handles. */
static void shutdown_finish(struct daemon *d)
{
    if (d->safe_pending) {
        char list[600] = "";
        size_t k = 0;
        for (size_t i = 0; i < d->act.n && k + 80 < sizeof list; i++) {
            const struct act_chan *c = &d->act.c[i];
            if (c->on && c->latched && !c->confirmed)
                k += (size_t)snprintf(list + k, sizeof list - k, "%s%s (%s)", k ? "; " : "",
                                      d->rig->channels[i].name, c->why[0] ? c->why : "no answer");
        }
        log_error("daemon", "safe state NOT confirmed before stopping: %s; those devices may still be "
                  "running", list);
        d->stopped_unconfirmed = true;
        for (size_t i = 0; i < DAEMON_MAX_RUNS; i++)
            if (slot_open(&d->slots[i]) != NULL)
                run_event(d->slots[i].run, pclock_now(&d->clock), "fault", "daemon",
                          "safe_state_unconfirmed",
                          "safe state not confirmed before the daemon stopped: %s", list);
    }
    regloop_stop(&d->rl, false);
    regloop_free(&d->rl);
    for (size_t b = 0; b < d->n_buses; b++)
        bus_stop(d->buses[b]);
    drain_notes(d);
    for (size_t i = 0; i < DAEMON_MAX_RUNS; i++)
        if (d->slots[i].run != NULL)
            run_shutdown_finish(d->slots[i].run);
    if (d->observer.stopping != NULL)
        d->observer.stopping(d->observer.ctx);  /* while the last run's events are there */
    for (size_t i = 0; i < DAEMON_MAX_RUNS; i++) {
        if (d->slots[i].run != NULL) {
            run_free(d->slots[i].run);
            d->slots[i].run = NULL;
        }
    }
    loopwake_close(&d->bus_wake, NULL);
    uv_close((uv_handle_t *)&d->sig_term, NULL);
    uv_close((uv_handle_t *)&d->sig_int, NULL);
    uv_close((uv_handle_t *)&d->sig_chld, NULL);
    if (d->plaus.c != NULL)
        uv_close((uv_handle_t *)&d->plaus_timer, NULL);
    if (d->act.c != NULL)
        uv_close((uv_handle_t *)&d->act_timer, NULL);
    uv_close((uv_handle_t *)&d->shutdown_timer, NULL);
}

/* While stopping: wait for the safe state's confirmation, up to the deadline. */
static void shutdown_wait_cb(uv_timer_t *t)
{
    struct daemon *d = t->data;
    if (d->safe_pending && pclock_now(&d->clock) < d->shutdown_deadline_ns)
        return;
    uv_timer_stop(t);
    shutdown_finish(d);
}

/* Begin an orderly shutdown: the run's on_shutdown first; a safe state it asks
 * for is waited for (at most the rig's confirm.safe_state time) while the
 * buses keep retrying it. */
void daemon_shutdown(struct daemon *d, const char *why)
{
    if (d->shutting_down)
        return;
    d->shutting_down = true;
    log_info("daemon", "shutting down (%s)", why);
    sdnotify_stopping(&d->sdn);
    control_close(d->control);
    for (size_t i = 0; i < DAEMON_MAX_RUNS; i++)
        if (d->slots[i].run != NULL)
            run_shutdown_begin(d->slots[i].run);
    uv_timer_init(d->loop, &d->shutdown_timer);
    d->shutdown_timer.data = d;
    if (!d->safe_pending || d->n_buses == 0) {
        shutdown_finish(d);
        return;
    }
    log_info("daemon", "waiting up to %.1f s for the devices to confirm the safe state",
             d->rig->safe_confirm_s);
    d->shutdown_deadline_ns = pclock_now(&d->clock) + (int64_t)(d->rig->safe_confirm_s * 1e9);
    uv_timer_start(&d->shutdown_timer, shutdown_wait_cb, 20, 20);
}

/* Run the loop until shutdown, then release everything. */
int daemon_run(struct daemon *d)
{
    uv_run(d->loop, UV_RUN_DEFAULT);
    workpool_loop_close(d->loop);
    for (size_t b = 0; b < d->n_buses; b++)
        bus_free(d->buses[b]);
    simchild_stop(&d->sim);
    rig_free(d->rig);
    free(d->buses);
    free(d->dev_bus_index);
    free(d->sample_hz);
    free(d->chans);
    history_free(&d->hist);
    latency_free(&d->dispatch);
    latency_free(&d->wire);
    latency_free(&d->wire_txn);
    latency_free(&d->wire_sched);
    alarms_free(&d->alarms);
    plaus_free(&d->plaus);
    actuators_free(&d->act);
    alerts_free(&d->alerts);
    for (size_t i = 0; i < DAEMON_MAX_RUNS; i++) {
        journal_writer_free(&d->slots[i].journal);
        claims_free(&d->slots[i].claims);
    }
    free(d->dev_health);
    free(d->bus_health);
    interlocks_free(&d->il);
    latch_free(&d->latch);
    latchstore_free(&d->latchstore);
    delivery_free(&d->dl);
    pclock_free(&d->clock);
    return d->stopped_unconfirmed ? 1 : 0;
}
