/* The latched safe states across a restart: the latch file written and restored. */
#include "latchstore.h"

#include "latchfile.h"
#include "run/alarms.h"
#include "run/interlock.h"
#include "run/latch.h"
#include "base/log.h"
#include "base/timeutil.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The writer's outcome: a latch file that cannot be written is an alarm, since
 * a restart would then not hold what is held now. */
static void write_result(void *ctx, const char *path, int err)
{
    struct latchstore *s = ctx;
    int64_t now = pclock_now(s->h.clock);
    if (err < 0)
        alarms_raise(s->h.alarms, now, "alarm", "latch", "latch_failed", NULL,
                     "cannot write %s: %s; after a restart the latched safe state would not be held "
                     "(free disk space or file descriptors)", path, strerror(-err));
    else
        alarms_clear(s->h.alarms, now, "latch", "latch_failed", NULL);
}

void latchstore_sync(struct latchstore *s)
{
    if (!s->ready)
        return;
    char *text = NULL;
    if (s->h.latch->n > 0 && latchfile_encode(s->h.latch, s->h.alarms, s->h.rig, &text) < 0) {
        log_error("latch", "%s: cannot encode the holds: out of memory (the file keeps the previous "
                  "ones)", s->w.path);
        return;
    }
    bool same = text == NULL ? s->last == NULL : s->last != NULL && strcmp(text, s->last) == 0;
    char *copy = text != NULL ? strdup(text) : NULL;
    if (same || (text != NULL && copy == NULL)) {
        free(text);
        free(copy);
        return;
    }
    free(s->last);
    s->last = copy;
    if (text != NULL)
        journal_writer_put(&s->w, text);
    else
        journal_writer_remove(&s->w);
}

/* The latch file cannot be used: every actuator is put in its safe state and
 * held until the alarm latch_unusable is acknowledged; the file is kept aside
 * as evidence. Silence here would let a pump that a limit stopped be moved. */
static void hold_everything(struct latchstore *s, const char *why)
{
    const struct latchstore_host *host = &s->h;
    int64_t now = pclock_now(host->clock);
    bool kept = s->w.dir_fd >= 0 &&
                renameat(s->w.dir_fd, LATCHFILE_NAME, s->w.dir_fd, LATCHFILE_NAME ".unusable") == 0;
    host->safe_state(host->ctx, NULL, 0);
    bool *held = calloc(host->rig->n_channels + 1, sizeof *held);
    for (size_t c = 0; held != NULL && c < host->rig->n_channels; c++)
        held[c] = host->rig->channels[c].writable;
    uint32_t id = alarms_raise(host->alarms, now, "alarm", "latch", "latch_unusable", NULL,
                               "latch file %s unusable: %s; every actuator held in its safe state until "
                               "this alarm is acknowledged%s", LATCHFILE_NAME, why,
                               kept ? "; kept as " LATCHFILE_NAME ".unusable" : "");
    char cause[160];
    snprintf(cause, sizeof cause, "the latch file could not be used: %s", why);
    struct latch_origin o = { .lim.channel = -1, .tripped_wall_ns = time_wall_ns() };
    int rc = id != 0 && held != NULL ? latch_add_origin(host->latch, id, cause, "", held, NULL, 0, &o) : -ENOMEM;
    free(held);
    log_error("latch", "%s: %s; every actuator sent its safe state%s; %s" LATCHFILE_NAME ".unusable",
              s->w.path, why,
              rc == 0 ? " and held until the alarm is acknowledged" : ", but it cannot be held (out of memory)",
              kept ? "the file is kept as " : "it could not be renamed to ");
    /* Nothing to wait for but a person: cleared now, the alarm stays listed
     * until acknowledged, and the acknowledgement releases the hold. */
    alarms_clear(host->alarms, now, "latch", "latch_unusable", NULL);
}

/* Raise hold k's alarm again, restored; its id, or 0 (out of memory). */
static uint32_t raise_again(const struct latchstore_host *host, const struct latchfile_hold *h, size_t k,
                            int64_t now)
{
    char since[40], tag[16];
    time_iso8601(h->origin.tripped_wall_ns, since, sizeof since);
    if (h->origin.lim.channel < 0) {
        snprintf(tag, sizeof tag, "h%u", (unsigned)k);
        uint32_t id = alarms_raise(host->alarms, now, "alarm", "latch", "latch_unusable", tag,
                                   "restored after a restart: %s (since %s); held in the safe state until "
                                   "this alarm is acknowledged", h->cause, since);
        alarms_clear(host->alarms, now, "latch", "latch_unusable", tag);
        return id;
    }
    const struct rig_channel *c = &host->rig->channels[h->origin.lim.channel];
    struct limit_rule rule = { .lim = h->origin.lim, .from_rig = h->origin.from_rig, .side = h->origin.side };
    limit_tag(&rule, tag, sizeof tag);
    const char *code = h->origin.side == '>' ? "limit_max" : "limit_min";
    char where[24] = "";
    if (h->origin.lim.line > 0)
        snprintf(where, sizeof where, ", line %d", h->origin.lim.line);
    uint32_t id = alarms_raise(host->alarms, now, "alarm", c->name, code, tag,
                               "restored after a restart: %s since %s (%s limit%s, action safe-stop); "
                               "its actuators stay in the safe state", h->cause, since,
                               h->origin.from_rig ? "rig" : "protocol", where);
    /* Two kept holds of one limit share its alarm. */
    return id != 0 ? id : alarms_find_active(host->alarms, c->name, code, tag);
}

/* Hold h again under a new alarm, watching its limit again; 0 or -ENOMEM. */
static int hold_again(const struct latchstore_host *host, const struct latchfile_hold *h, size_t k,
                      int64_t now)
{
    uint32_t id = raise_again(host, h, k, now);
    if (id == 0)
        return -ENOMEM;
    if (h->origin.lim.channel >= 0 &&
        interlocks_restore(host->il, &h->origin.lim, h->origin.from_rig, h->origin.side) < 0)
        return -ENOMEM;
    size_t n = 0;
    struct plan_target *safe = calloc(host->rig->n_channels + 1, sizeof *safe);
    if (safe == NULL)
        return -ENOMEM;
    for (size_t c = 0; c < host->rig->n_channels; c++)
        if (h->held[c] && !isnan(h->safe[c]))
            safe[n++] = (struct plan_target){ .channel = (int)c, .v0 = h->safe[c] };
    int rc = latch_add_origin(host->latch, id, h->cause, h->channel, h->held, safe, n, &h->origin);
    free(safe);
    if (rc < 0)
        return rc;
    char names[200] = "", m[640];
    for (size_t c = 0, w = 0; c < host->rig->n_channels && w < sizeof names; c++)
        if (h->held[c])
            w += (size_t)snprintf(names + w, sizeof names - w, "%s%s", w ? ", " : "", host->rig->channels[c].name);
    snprintf(m, sizeof m, "%s held in the safe state again after a restart, until alarm %u (%s) is "
             "acknowledged%s%s%s", names, id, h->cause, h->channel[0] ? " and " : "", h->channel,
             h->channel[0] ? " is back within its limit" : "");
    host->event(host->ctx, now, "warning", "interlock", "safe_state_restored", m);
    /* Acknowledged before the restart: it still is (the condition is judged anew). */
    if (h->acked)
        alarms_ack(host->alarms, now, id, h->acked_by);
    return 0;
}

/* Apply the kept holds' safe state as their trips did: the values the safe
 * states wrote, and every other device's own safe action. */
static void apply_safe_state(const struct latchstore_host *host, const struct latchfile *f)
{
    struct plan_target *t = calloc(host->rig->n_channels + 1, sizeof *t);
    size_t n = 0;
    for (size_t c = 0; t != NULL && c < host->rig->n_channels; c++)
        for (size_t i = 0; i < f->n; i++)
            if (f->v[i].held[c] && !isnan(f->v[i].safe[c])) {
                t[n++] = (struct plan_target){ .channel = (int)c, .v0 = f->v[i].safe[c] };
                break;
            }
    host->safe_state(host->ctx, t, t != NULL ? n : 0);
    free(t);
}

/* Why a read failed, in words. */
static void read_failure(int rc, char *why, size_t len)
{
    if (rc == -ELOOP)
        snprintf(why, len, "it is a symbolic link (only a regular file is trusted)");
    else if (rc == -EINVAL)
        snprintf(why, len, "it is not a regular file");
    else if (rc == -EFBIG)
        snprintf(why, len, "it is larger than %d bytes", LATCHFILE_MAX_BYTES);
    else
        snprintf(why, len, "cannot read it: %s", strerror(-rc));
}

void latchstore_restore(struct latchstore *s, const struct latchstore_host *h)
{
    s->h = *h;
    const struct latchstore_host *host = &s->h;
    journal_writer_init_file(&s->w, host->loop, host->data_dir, LATCHFILE_NAME,
                             "after a restart the latched safe state would not be held");
    s->w.result = write_result;
    s->w.result_ctx = s;
    /* Not ready until every hold is back: the file is never rewritten with
     * only some of them (s->ready stays false meanwhile). */
    char *text = NULL, why[512];
    size_t len = 0;
    int rc = s->w.dir_fd < 0 ? s->w.dir_error : journal_read_at(s->w.dir_fd, LATCHFILE_NAME, LATCHFILE_MAX_BYTES, &text, &len);
    if (rc == -ENOENT && s->w.dir_fd >= 0) {
        s->ready = true;                        /* nothing was held */
        return;
    }
    if (rc < 0) {
        if (s->w.dir_fd < 0)
            snprintf(why, sizeof why, "cannot open the data directory: %s", strerror(-rc));
        else
            read_failure(rc, why, sizeof why);
        hold_everything(s, why);
        s->ready = true;
        latchstore_sync(s);
        return;
    }
    struct latchfile f;
    rc = latchfile_decode(text, len, host->rig, &f, why, sizeof why);
    free(text);
    if (rc == 0 && f.n > 0) {
        apply_safe_state(host, &f);
        int64_t now = pclock_now(host->clock);
        for (size_t i = 0; i < f.n && rc == 0; i++)
            rc = hold_again(host, &f.v[i], i + 1, now);
        if (rc < 0)
            snprintf(why, sizeof why, "out of memory while holding its %zu holds again", f.n);
        else if (f.n > 0)
            log_warn("latch", "%s: %zu latched safe state%s held again after the restart", s->w.path, f.n,
                     f.n == 1 ? "" : "s");
    }
    latchfile_free(&f);
    if (rc < 0)
        hold_everything(s, why);
    s->ready = true;
    latchstore_sync(s);
}

void latchstore_free(struct latchstore *s)
{
    free(s->last);
    s->last = NULL;
    journal_writer_free(&s->w);
}
