/* The control commands: one table entry per command. */
#include "commands.h"
#include "base/control_proto.h"
#include "daemon.h"
#include "history_reply.h"
#include "plan/planwork.h"
#include "run.h"
#include "base/timeutil.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/units.h"
#include "base/run_operator.h"
#include "base/utf8.h"

/* The daemon a handler runs in. */
static struct daemon *daemon_of(struct ctl_client *cl)
{
    return control_context(cl->ctl);
}

/* Who is asking, for the audit trail. */
static struct run_actor actor(struct ctl_client *cl, const char *operator_name)
{
    return (struct run_actor){ .user = cl->user, .operator_name = operator_name };
}

/* A string argument of the request, or NULL. */
static const char *arg_str(json_t *req, const char *key)
{
    return req ? json_string_value(json_object_get(req, key)) : NULL;
}

/* The run a request means ("run": its name or id; without it, the one run
 * going, or the last one), or NULL with why in err. A request without
 * "run" from a status hook follows the run the client chose before. */
static struct run_slot *pick(struct ctl_client *cl, json_t *req, char *err, size_t len)
{
    const char *sel = arg_str(req, "run");
    if (sel == NULL && req == NULL && cl->run_sel[0] != '\0')
        sel = cl->run_sel;
    return daemon_find_run(daemon_of(cl), sel, err, len);
}

/* The run of the request if its file is still open, else NULL. */
static struct run *active_run(struct ctl_client *cl, json_t *req)
{
    char err[8];
    struct run_slot *s = pick(cl, req, err, sizeof err);
    return s != NULL && s->run != NULL && !run_closed(s->run) ? s->run : NULL;
}

/* A refused request that would have changed something: recorded in the
 * events of the run it was for, if its file is open (the audit trail keeps
 * attempts too), then returned as is. */
static int refuse(struct ctl_client *cl, json_t *req, int rc, const char *code, const char *what,
                  const char *err)
{
    struct run *r = active_run(cl, req);
    if (r != NULL) {
        struct run_actor who = actor(cl, NULL);
        run_refused(r, &who, code, what, err);
    }
    return rc;
}

/* hello: versions. */
static int cmd_hello(struct ctl_client *cl, json_t *req, json_t *res, char *err, size_t len)
{
    (void)cl; (void)req; (void)err; (void)len;
    json_object_set_new(res, "perfused", json_string(PERFUSE_VERSION));
    json_object_set_new(res, "protocol", json_integer(CONTROL_PROTOCOL_VERSION));
    json_object_set_new(res, "protocols", json_pack("[i,i]", CONTROL_PROTOCOL_BASE, CONTROL_PROTOCOL_VERSION));
    return 0;
}

/* How long a run request waits for the file of a run that has just ended. */
#define RUN_CLOSE_WAIT_MS 15000

/* The diagnostics of a failed load as the reply's list and err. */
static int load_failed(struct diag *dg, int rc, json_t *res, char *err, size_t len)
{
    diag_to_json(dg, res);
    char *all = diag_join(dg);
    utf8_copy(err, len, all && *all ? all : strerror(-rc));
    free(all);
    return rc;
}

/* The run's "sample" (a list of "KEY=VALUE") and "notes" into who, checked,
 * sample pointing into the request; -EINVAL with the reason in err. */
static int run_metadata_args(json_t *req, struct run_actor *who, const char **sample, char *err,
                             size_t len)
{
    json_t *list = json_object_get(req, "sample"), *v;
    size_t k;
    json_array_foreach(list, k, v) {
        const char *kv = json_string_value(v);
        if (kv == NULL) {
            snprintf(err, len, "run \"sample\" must be a list of \"KEY=VALUE\" texts");
            return -EINVAL;
        }
        if (who->n_sample == RUN_SAMPLE_MAX) {
            snprintf(err, len, "at most %d sample fields can be given", RUN_SAMPLE_MAX);
            return -EINVAL;
        }
        if (!run_sample_ok(kv, err, len))
            return -EINVAL;
        size_t klen = (size_t)(strchr(kv, '=') - kv);
        for (size_t i = 0; i < who->n_sample; i++)
            if (strncmp(sample[i], kv, klen + 1) == 0) {
                snprintf(err, len, "sample %.*s is given twice", (int)klen, kv);
                return -EINVAL;
            }
        sample[who->n_sample++] = kv;
    }
    who->sample = sample;
    const char *notes = arg_str(req, "notes");
    if (notes != NULL && !run_notes_ok(notes, err, len))
        return -EINVAL;
    who->notes = notes;
    return 0;
}

/* run: load a protocol (on the thread pool) and start it. */
static int cmd_run(struct ctl_client *cl, json_t *req, json_t *res, char *err, size_t len)
{
    struct daemon *d = daemon_of(cl);
    const char *text = arg_str(req, "protocol_text");
    const char *path = arg_str(req, "protocol_path");
    const char *op = arg_str(req, "operator");
    if (text == NULL || path == NULL) {
        snprintf(err, len, "run needs \"protocol_text\" and \"protocol_path\"");
        return -EPROTO;
    }
    if (d->shutting_down) {
        snprintf(err, len, "the daemon is shutting down");
        return -EBUSY;
    }
    if (op != NULL && !run_operator_ok(op, err, len))
        return -EINVAL;
    if (cl->parsed == NULL) {
        /* Parsing and checking a file can take long: not on the loop. A protocol's
         * errors are reported first, also while another run is active. */
        int rc = control_load_protocol(cl, req, d->rig, path, text);
        if (rc < 0) {
            snprintf(err, len, "cannot load the protocol: %s", strerror(-rc));
            return rc;
        }
        return CMD_DEFERRED;
    }
    struct plan_work *w = cl->parsed;
    if (w->rc < 0)
        return load_failed(&w->dg, w->rc, res, err, len);
    const char *name = arg_str(req, "name");
    if (name != NULL && !claims_name_valid(name, err, len))
        return -EINVAL;
    if (name != NULL && daemon_name_taken(d, NULL, name)) {
        snprintf(err, len, "a run called '%s' is going; give this one another --name", name);
        return -EBUSY;
    }
    /* What the new run would claim, against every run whose file is open: a
     * run going keeps what it holds; one that has ended is closed first. */
    struct claims want;
    if (claims_of_plan(w->plan, d->rig, &want) < 0) {
        snprintf(err, len, "out of memory");
        return -ENOMEM;
    }
    struct run_slot *ending = NULL, *holder = NULL;
    int held = -1;
    for (size_t i = 0; i < DAEMON_MAX_RUNS && holder == NULL; i++) {
        struct run_slot *s = &d->slots[i];
        if (s->run == NULL || run_closed(s->run))
            continue;
        int ch = claims_overlap(&want, &s->claims);
        if (run_ended(s->run) && (ch >= 0 || daemon_free_slot(d) == NULL))
            ending = s;
        else if (ch >= 0)
            holder = s, held = ch;
    }
    claims_free(&want);
    if (holder != NULL) {
        claims_conflict_message(d->rig, held, holder->name, run_id(holder->run), err, len);
        return -EBUSY;
    }
    if (ending != NULL && !cl->retrying &&
        control_retry_after_close(cl, req, "run", RUN_CLOSE_WAIT_MS) == 0) {
        /* The last run has ended and its file is closing: start this one then. */
        run_close_now(ending->run);
        return CMD_DEFERRED;
    }
    if (ending != NULL) {
        snprintf(err, len, "the last run's file (%s) is still being closed; try again in a moment",
                 run_path(ending->run));
        return -EBUSY;
    }
    struct run_slot *slot = daemon_free_slot(d);
    if (slot == NULL) {
        snprintf(err, len, "%d runs are going, as many as the daemon holds at once; wait for one to end",
                 DAEMON_MAX_RUNS);
        return -EBUSY;
    }
    struct diag dg;
    diag_init(&dg);
    struct run_actor who = actor(cl, op && *op ? op : NULL);
    who.force = json_is_true(json_object_get(req, "force"));
    const char *sample[RUN_SAMPLE_MAX];
    if (run_metadata_args(req, &who, sample, err, len) < 0) {
        diag_free(&dg);
        return -EINVAL;
    }
    struct run *r = NULL;
    const char *fills[DELIVERY_MAX_FILLS];
    size_t n_fills = 0, k;
    json_t *f, *fl = json_object_get(req, "fill");
    json_array_foreach(fl, k, f) {
        if (n_fills == DELIVERY_MAX_FILLS) {
            snprintf(err, len, "at most %d fill levels can be given", DELIVERY_MAX_FILLS);
            diag_free(&dg);
            return -EINVAL;
        }
        fills[n_fills++] = json_string_value(f);
    }
    struct plan *plan = w->plan;
    w->plan = NULL;
    if (daemon_slot_prepare(d, slot, plan, name) < 0) {
        plan_free(plan);
        diag_free(&dg);
        snprintf(err, len, "out of memory");
        return -ENOMEM;
    }
    int rc = run_start_plan(&slot->host, plan, &who, fills, n_fills, &dg, &r);
    if (rc < 0) {
        claims_free(&slot->claims);
        slot->host.claimed = NULL;
        load_failed(&dg, rc, res, err, len);
        diag_free(&dg);
        return rc;
    }
    diag_free(&dg);
    daemon_slot_started(d, slot, r);
    json_object_set_new(res, "run_id", json_string(run_id(r)));
    json_object_set_new(res, "name", json_string(slot->name));
    json_object_set_new(res, "file", json_string(run_path(r)));
    json_object_set_new(res, "protocol", json_string(run_plan(r)->name));
    json_object_set_new(res, "planned_total_s", json_real((double)run_plan(r)->total_ns / 1e9));
    json_object_set_new(res, "open_ended", json_boolean(run_plan(r)->open_ended));
    return 0;
}

/* Each regulator: its mode, setpoint, measurement, output and whether it is in tolerance. */
static json_t *status_regulators(struct daemon *d)
{
    json_t *arr = json_array();
    for (size_t k = 0; k < d->rl.n; k++) {
        const struct regloop_entry *e = regloop_get(&d->rl, k);
        const struct regulator *r = &e->reg;
        const struct rig_regulator *g = r->cfg;
        json_t *faults = json_array();
        for (int f = 0; f < RF_KINDS; f++)
            if (r->active[f])
                json_array_append_new(faults, json_string(regulator_fault_code((enum reg_fault)f)));
        json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:o}", "name", g->name,
                              "measure", d->rig->channels[g->measure].name,
                              "actuator", d->rig->channels[g->actuator].name,
                              "mode", regulator_mode_name(r->mode),
                              "units", d->rig->channels[g->measure].unit,
                              "output_units", d->rig->channels[g->actuator].unit,
                              "in_tolerance", regulator_in_tolerance(r), "faults", faults);
        json_object_set_new(o, "setpoint", isnan(r->sp) ? json_null() : json_real(r->sp));
        json_object_set_new(o, "measurement", isnan(r->y) ? json_null() : json_real(r->y));
        json_object_set_new(o, "output", isnan(r->out) ? json_null() : json_real(r->out));
        /* What the controller has confirmed of it: the output above is only commanded. */
        const struct act_chan *ac = &d->act.c[g->actuator];
        json_object_set_new(o, "output_confirmed", ac->confirmed && !isnan(ac->value)
                                                   ? json_real(ac->value) : json_null());
        json_object_set_new(o, "rate_hz", json_real(g->rate_hz));
        json_object_set_new(o, "output_range", json_pack("[f,f]", g->out_min, g->out_max));
        json_object_set_new(o, "range", json_pack("[f,f]", g->sp_min, g->sp_max));
        json_object_set_new(o, "gains", json_pack("{s:f,s:f,s:f,s:f}", "kp", g->kp, "ki", g->ki, "kd", g->kd,
                                                  "d_filter_s", g->d_filter_s));
        double ff_lag, ff_resp, ff_dead;
        bool ff_on = rig_regulator_feedforward(g, &ff_lag, &ff_resp, &ff_dead);
        json_object_set_new(o, "feedforward", ff_on ? json_pack("{s:b,s:f,s:f,s:f,s:b}", "on", 1, "lag_s",
                                                                ff_lag, "response_s", ff_resp, "dead_time_s",
                                                                ff_dead, "gain_known", r->ff_known)
                                                    : json_pack("{s:b}", "on", 0));
        if (e->tuning || e->tuned) {
            const struct autotune_result *a = &e->at.res;
            json_t *tu = json_pack("{s:s}", "state", e->tuning ? "running"
                                   : e->at.phase == AT_DONE ? "done" : "failed");
            if (e->tuned && e->at.phase == AT_DONE)
                json_object_update_new(tu, json_pack("{s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:s,s:f}",
                    "gain", a->K, "time_constant_s", a->tau, "dead_time_s", a->L, "ultimate_gain", a->Ku,
                    "ultimate_period_s", a->Pu, "amplitude", a->a, "hysteresis", a->eps, "sample_s", a->h,
                    "kp", a->kp, "ki", a->ki, "kd", a->kd, "d_filter_s", a->d_filter, "rule", a->rule,
                    "seconds", (double)(e->tune_t1 - e->tune_t0) / 1e9));
            else if (e->tuned)
                json_object_set_new(tu, "why", json_string(e->at.why));
            json_object_set_new(o, "tune", tu);
        }
        /* Whose setpoint it is: the run going that holds its regulated channel. */
        for (size_t i = 0; i < DAEMON_MAX_RUNS; i++) {
            const struct run_slot *s = &d->slots[i];
            if (s->run != NULL && !run_ended(s->run) && (size_t)g->measure < s->claims.n &&
                s->claims.writes[g->measure]) {
                json_object_set_new(o, "run", json_string(s->name));
                break;
            }
        }
        json_array_append_new(arr, o);
    }
    return arr;
}

/* A writable channel's desired and confirmed values, into o. */
static void actuator_json(struct daemon *d, size_t ch, json_t *o)
{
    const struct act_chan *a = actuators_get(&d->act, (int)ch);
    if (a == NULL)
        return;
    bool any = a->origin != ACT_NONE;
    json_object_set_new(o, "desired", any && !isnan(a->desired) ? json_real(a->desired) : json_null());
    json_object_set_new(o, "desired_origin", json_string(act_origin_name(a->origin)));
    if (a->latched)
        json_object_set_new(o, "latched", json_true());
    json_object_set_new(o, "confirmed", !isnan(a->value) ? json_real(a->value) : json_null());
    json_object_set_new(o, "confirmation", json_string(!any ? "none" : a->confirmed ? "confirmed"
                                                                                    : "unconfirmed"));
    if (a->confirmed && a->how != NULL)
        json_object_set_new(o, "confirmed_by", json_string(a->how));
    if (any && !a->confirmed) {
        int64_t ago = pclock_now(&d->clock) - a->unconfirmed_ns;
        char iso[40];
        time_iso8601(time_wall_ns() - ago, iso, sizeof iso);
        json_object_set_new(o, "unconfirmed_since", json_string(iso));
        json_object_set_new(o, "unconfirmed_s", json_real((double)ago / 1e9));
        json_object_set_new(o, "unconfirmed_why", a->why[0] ? json_string(a->why) : json_null());
    }
}

/* The channels part of a status: latest value, unit and age of each. */
static json_t *status_channels(struct daemon *d)
{
    json_t *arr = json_array();
    int64_t now = (int64_t)time_mono_ns();
    for (size_t i = 0; i < d->rig->n_channels; i++) {
        const struct rig_channel *c = &d->rig->channels[i];
        const struct chan_state *s = &d->chans[i];
        json_t *o = json_pack("{s:s,s:s,s:s}", "name", c->name, "unit", c->unit, "kind",
                              c->writable ? "setpoint" : "measured");
        if (c->readable) {
            json_object_set_new(o, "value", s->t_ns && !isnan(s->value) ? json_real(s->value) : json_null());
            json_object_set_new(o, "age_s", s->t_ns ? json_real((double)(now - s->t_ns) / 1e9) : json_null());
            json_object_set_new(o, "samples", json_integer((json_int_t)s->samples));
        }
        if (c->writable) {
            json_object_set_new(o, "setpoint", isnan(s->setpoint) ? json_null() : json_real(s->setpoint));
            actuator_json(d, i, o);
        }
        if (s->err != 0)
            json_object_set_new(o, "error", json_string(s->msg));
        json_array_append_new(arr, o);
    }
    return arr;
}

/* A run's manual overrides: channel, value, unit, protocol_value
 * (null: none), by, since (ISO 8601 UTC), since_epoch_s. */
static json_t *overrides_json(struct daemon *d, struct run *r)
{
    json_t *arr = json_array();
    for (size_t i = 0; r != NULL && !run_ended(r) && i < d->rig->n_channels; i++) {
        const struct run_override *o = run_override(r, (int)i);
        if (o == NULL)
            continue;
        char since[40];
        time_iso8601(o->since_wall_ns, since, sizeof since);
        double pv = run_protocol_value(r, (int)i);
        json_array_append_new(arr, json_pack("{s:s,s:f,s:s,s:o,s:s,s:s,s:f}", "channel", d->rig->channels[i].name,
                              "value", o->value, "unit", d->rig->channels[i].unit, "protocol_value",
                              isnan(pv) ? json_null() : json_real(pv), "by", o->by, "since", since,
                              "since_epoch_s", (double)o->since_wall_ns / 1e9));
    }
    return arr;
}

/* The current step of a status: where, how far, what `extend` added, a
 * timeout's countdown, and a wait_until's condition with the live value. */
static json_t *status_step(struct daemon *d, const struct runner_status *st)
{
    json_t *o = json_pack("{s:s,s:s,s:s,s:f,s:f,s:f}", "path", st->step_path, "name", st->step_name,
                          "kind", st->step_kind, "elapsed_s", (double)st->step_elapsed_ns / 1e9,
                          "duration_s", (double)st->step_duration_ns / 1e9, "extended_s",
                          (double)st->extend_ns / 1e9);
    if (st->step_note != NULL)
        json_object_set_new(o, "note", json_string(st->step_note));
    if (st->timeout_ns > 0) {
        int64_t left = st->timeout_ns - st->step_elapsed_ns;
        json_object_set_new(o, "timeout_s", json_real((double)st->timeout_ns / 1e9));
        json_object_set_new(o, "timeout_left_s", json_real((double)(left > 0 ? left : 0) / 1e9));
    }
    if (st->cond_text != NULL && st->cond_channel >= 0 && (size_t)st->cond_channel < d->rig->n_channels) {
        const struct rig_channel *c = &d->rig->channels[st->cond_channel];
        const struct chan_state *cs = &d->chans[st->cond_channel];
        bool known = cs->t_ns != 0 && !isnan(cs->value);
        json_t *cond = json_pack("{s:s,s:s,s:f,s:s}", "text", st->cond_text, "channel", c->name,
                                 "target", st->cond_value, "unit", c->unit);
        /* Only a known value has a distance: an unknown one is said to be unknown. */
        json_object_set_new(cond, "value", known ? json_real(cs->value) : json_null());
        json_object_set_new(cond, "distance", known ? json_real(st->cond_value - cs->value) : json_null());
        json_object_set_new(cond, "age_s", cs->t_ns ? json_real((double)((int64_t)time_mono_ns() - cs->t_ns) / 1e9)
                                                    : json_null());
        json_object_set_new(o, "condition", cond);
    }
    return o;
}


/* The state a status gives a run: a run whose file closed before it ended is interrupted. */
static const char *state_of(struct run *r, const struct runner_status *st)
{
    const char *state = run_state_name(st->state);
    if (run_closed(r) && st->state != RUN_COMPLETED && st->state != RUN_ABORTED && st->state != RUN_FAULTED)
        state = "interrupted";
    return state;
}

/* One line of `status` per run: name, id, protocol, state, step, progress,
 * ETA, claims and the alarms of its channels or of it. */
static json_t *run_line(struct daemon *d, struct run_slot *s)
{
    struct run *r = s->run;
    struct runner_status st;
    run_get_status(r, &st);
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:b,s:s,s:f,s:f,s:b}", "name", s->name, "run_id", run_id(r),
                          "protocol", run_plan(r)->name, "state", state_of(r, &st), "run_active",
                          !run_closed(r), "file", run_path(r), "elapsed_s",
                          (double)st.run_elapsed_ns / 1e9, "planned_total_s",
                          (double)st.planned_total_ns / 1e9, "open_ended", run_plan(r)->open_ended);
    /* Continued in a new file after a restart: the file it was in before. */
    if (run_replaced_file(r) != NULL)
        json_object_set_new(o, "replaced_file", json_string(run_replaced_file(r)));
    if (st.planned_total_ns > 0)
        json_object_set_new(o, "progress", json_real(fmin(1.0, (double)st.run_elapsed_ns /
                                                                (double)st.planned_total_ns)));
    if (!run_closed(r) && (st.state == RUN_RUNNING || st.state == RUN_PAUSED)) {
        int64_t left = st.planned_total_ns - st.run_elapsed_ns;
        int64_t eta = time_wall_ns() + (left > 0 ? left : 0);
        char iso[40];
        time_iso8601(eta, iso, sizeof iso);
        json_object_set_new(o, "eta", json_string(iso));
    }
    if (st.step_kind != NULL)
        json_object_set_new(o, "step", json_pack("{s:s,s:s,s:s}", "path", st.step_path, "name",
                                                 st.step_name, "kind", st.step_kind));
    /* What a page or a list of runs needs to act on each: why it waits. */
    bool closed = run_closed(r);
    json_object_set_new(o, "pause_reason", st.pause_reason && !closed ? json_string(st.pause_reason)
                                                                      : json_null());
    json_object_set_new(o, "prompt", st.waiting_prompt && st.prompt ? json_string(st.prompt) : json_null());
    json_object_set_new(o, "prompt_id", st.waiting_prompt ? json_string(st.step_path) : json_null());
    json_t *claims = json_array();
    for (size_t i = 0; !run_ended(r) && i < s->claims.n; i++)
        if (s->claims.writes[i])
            json_array_append_new(claims, json_string(d->rig->channels[i].name));
    json_object_set_new(o, "claims", claims);
    /* Its alarms: its own, and the rig's raised by a source it holds or reads
     * (a channel, its device); never another run's. */
    int n_alarms = 0;
    for (size_t a = 0; a < d->alarms.n; a++) {
        const char *src = d->alarms.v[a].source;
        if (!alarm_concerns(&d->alarms.v[a], run_id(r)))
            continue;
        if (d->alarms.v[a].run[0] != '\0') {
            n_alarms++;
            continue;
        }
        for (size_t i = 0; i < s->claims.n; i++) {
            const struct rig_channel *c = &d->rig->channels[i];
            if ((s->claims.writes[i] || s->claims.reads[i]) &&
                (strcmp(src, c->name) == 0 || strcmp(src, d->rig->devices[c->device].name) == 0)) {
                n_alarms++;
                break;
            }
        }
    }
    json_object_set_new(o, "alarms", json_integer(n_alarms));
    return o;
}

/* Every run going, then the ones kept after their end, latest first. */
static json_t *runs_json(struct daemon *d)
{
    json_t *arr = json_array();
    for (int pass = 0; pass < 2; pass++) {
        bool taken[DAEMON_MAX_RUNS] = { false };
        for (;;) {
            struct run_slot *best = NULL;
            for (size_t i = 0; i < DAEMON_MAX_RUNS; i++) {
                struct run_slot *s = &d->slots[i];
                if (s->run == NULL || taken[i] || (pass == 0) == run_ended(s->run))
                    continue;
                if (best == NULL || (pass == 0 ? s->started < best->started : s->started > best->started))
                    best = s;
            }
            if (best == NULL)
                break;
            taken[best->index] = true;
            json_array_append_new(arr, run_line(d, best));
        }
    }
    return arr;
}

/* The run part of a status: the full view of one run. */
static void status_run(struct daemon *d, struct run_slot *s, json_t *res)
{
    struct run *r = s->run;
    json_object_set_new(res, "name", json_string(s->name));
    struct runner_status st;
    run_get_status(r, &st);
    bool closed = run_closed(r);
    json_object_set_new(res, "state", json_string(state_of(r, &st)));
    json_object_set_new(res, "run_active", json_boolean(!closed));
    json_object_set_new(res, "run_id", json_string(run_id(r)));
    json_object_set_new(res, "protocol", json_string(run_plan(r)->name));
    json_object_set_new(res, "file", json_string(run_path(r)));
    if (run_replaced_file(r) != NULL)
        json_object_set_new(res, "replaced_file", json_string(run_replaced_file(r)));
    char iso[40];
    time_iso8601(run_start_wall_ns(r), iso, sizeof iso);
    json_object_set_new(res, "started", json_string(iso));
    json_object_set_new(res, "elapsed_s", json_real((double)st.run_elapsed_ns / 1e9));
    json_object_set_new(res, "planned_total_s", json_real((double)st.planned_total_ns / 1e9));
    json_object_set_new(res, "shift_s", json_real((double)st.shift_ns / 1e9));
    json_object_set_new(res, "open_ended", json_boolean(run_plan(r)->open_ended));
    if (!closed && (st.state == RUN_RUNNING || st.state == RUN_PAUSED)) {
        int64_t left = st.planned_total_ns - st.run_elapsed_ns;
        int64_t eta = time_wall_ns() + (left > 0 ? left : 0);
        time_iso8601(eta, iso, sizeof iso);
        json_object_set_new(res, "eta", json_string(iso));
        json_object_set_new(res, "eta_epoch_s", json_real((double)eta / 1e9));
    }
    if (st.step_kind != NULL)
        json_object_set_new(res, "step", status_step(d, &st));
    json_object_set_new(res, "pause_reason", st.pause_reason && !closed ? json_string(st.pause_reason)
                                                                        : json_null());
    json_object_set_new(res, "prompt", st.waiting_prompt && st.prompt ? json_string(st.prompt) : json_null());
    json_object_set_new(res, "prompt_id", st.waiting_prompt ? json_string(st.step_path) : json_null());
    int werr;
    uint64_t dropped;
    run_storage(r, &werr, &dropped);
    json_object_set_new(res, "storage", json_pack("{s:i,s:I}", "write_errors", werr, "dropped",
                                                  (json_int_t)dropped));
    json_object_set_new(res, "overrides", overrides_json(d, r));
}

/* One lateness histogram as JSON, in microseconds. */
static json_t *latency_json(const struct latency *l)
{
    return json_pack("{s:I,s:f,s:f,s:f,s:f}", "count", (json_int_t)l->count,
                     "p50_us", (double)latency_quantile(l, 0.50) / 1e3,
                     "p99_us", (double)latency_quantile(l, 0.99) / 1e3,
                     "max_us", (double)l->max_ns / 1e3, "min_us", (double)l->min_ns / 1e3);
}

/* The listed alarms, oldest first: every one, or (only_run) those of that
 * run and the rig's. A run's own alarm names its run. */
static json_t *alarms_json(struct daemon *d, const char *only_run)
{
    json_t *arr = json_array();
    int64_t now = pclock_now(&d->clock);
    for (size_t i = 0; i < d->alarms.n; i++) {
        const struct alarm *a = &d->alarms.v[i];
        if (only_run != NULL && !alarm_concerns(a, only_run))
            continue;
        json_t *o = json_pack("{s:I,s:s,s:s,s:s,s:s,s:s,s:f}", "id", (json_int_t)a->id, "state",
                              alarm_state_name(a), "severity", a->severity, "source", a->source,
                              "code", a->code, "message", a->message, "age_s",
                              (double)(now - a->raised_ns) / 1e9);
        if (a->acked)
            json_object_set_new(o, "acked_by", json_string(a->acked_by));
        if (a->run[0] != '\0') {
            json_object_set_new(o, "run_id", json_string(a->run));
            for (size_t k = 0; k < DAEMON_MAX_RUNS; k++)
                if (d->slots[k].run != NULL && strcmp(run_id(d->slots[k].run), a->run) == 0)
                    json_object_set_new(o, "run", json_string(d->slots[k].name));
        }
        json_array_append_new(arr, o);
    }
    return arr;
}

/* status: state, step, progress, channels, alarms; of the run named by
 * "run", else of the one run going (or the last one); with several runs
 * going and none named, state "several" and only the list of runs. */
static int cmd_status(struct ctl_client *cl, json_t *req, json_t *res, char *err, size_t len)
{
    struct daemon *d = daemon_of(cl);
    char why[512];
    struct run_slot *s = pick(cl, req, why, sizeof why);
    if (s == NULL && arg_str(req, "run") != NULL) {
        snprintf(err, len, "%s", why);
        return -ENOENT;
    }
    json_object_set_new(res, "rig", json_string(d->rig->name));
    json_object_set_new(res, "scheduling", json_string(d->sched));
    /* Asked about one run: its alarms and the rig's. */
    json_object_set_new(res, "alarms", alarms_json(d, s != NULL && arg_str(req, "run") != NULL &&
                                                      s->run != NULL ? run_id(s->run) : NULL));
    if (s != NULL) {
        status_run(d, s, res);
    } else if (daemon_runs_going(d) > 1) {
        json_object_set_new(res, "state", json_string("several"));
        json_object_set_new(res, "run_active", json_true());
    } else {
        json_object_set_new(res, "state", json_string("idle"));
        json_object_set_new(res, "run_active", json_false());
    }
    json_object_set_new(res, "runs", runs_json(d));
    json_object_set_new(res, "channels", status_channels(d));
    json_object_set_new(res, "regulators", status_regulators(d));
    json_object_set_new(res, "timing", json_pack("{s:o,s:o,s:o,s:o}", "dispatch",
                                                 latency_json(&d->dispatch), "wire", latency_json(&d->wire),
                                                 "wire_scheduling", latency_json(&d->wire_sched),
                                                 "wire_transaction", latency_json(&d->wire_txn)));
    return 0;
}

/* The run a run command acts on (its file open), or NULL with why in err:
 * no run is active, several are (named), or no run has that name. */
static struct run *need_run(struct ctl_client *cl, json_t *req, char *err, size_t len)
{
    char why[512];
    struct run_slot *s = pick(cl, req, why, sizeof why);
    if (s != NULL && s->run != NULL && !run_closed(s->run))
        return s->run;
    if (s == NULL && (arg_str(req, "run") != NULL || daemon_runs_going(daemon_of(cl)) > 1))
        snprintf(err, len, "%s", why);
    else if (s != NULL && arg_str(req, "run") != NULL)
        snprintf(err, len, "run %s has ended", arg_str(req, "run"));
    else
        snprintf(err, len, "no run is active");
    return NULL;
}

/* pause, resume and abort: ACT on the run as this client, then reply with a status. */
static int run_action(struct ctl_client *cl, json_t *req, json_t *res, char *err, size_t len,
                      int (*act)(struct run *, const struct run_actor *, const char *),
                      const char *refusal)
{
    struct run *r = need_run(cl, req, err, len);
    int rc = r != NULL ? 0 : -ENOENT;
    struct run_actor who = actor(cl, NULL);
    if (rc == 0 && (rc = act(r, &who, arg_str(req, "reason"))) < 0)
        snprintf(err, len, "%s", refusal);
    return rc < 0 ? (rc == -ENOENT ? rc : -EALREADY) : cmd_status(cl, req, res, err, len);
}

/* pause. */
static int cmd_pause(struct ctl_client *cl, json_t *req, json_t *res, char *err, size_t len)
{
    return run_action(cl, req, res, err, len, run_pause, "the run is not running (it may already be paused)");
}

/* resume: the protocol's values replace the overrides, unless "keep_overrides";
 * the reply is a status with "restored" and "kept": channel, value, unit, override. */
static int cmd_resume(struct ctl_client *cl, json_t *req, json_t *res, char *err, size_t len)
{
    struct daemon *d = daemon_of(cl);
    struct run *r = need_run(cl, req, err, len);
    if (r == NULL)
        return -ENOENT;
    int rc;
    bool keep = json_is_true(json_object_get(req, "keep_overrides"));
    json_t *restored = json_array(), *kept = json_array();
    bool *was = calloc(d->rig->n_channels + 1, sizeof *was);
    double *value = calloc(d->rig->n_channels + 1, sizeof *value);
    for (size_t i = 0; was && value && i < d->rig->n_channels; i++) {
        const struct run_override *o = run_override(r, (int)i);
        if ((was[i] = o != NULL))
            value[i] = o->value;
    }
    struct run_actor who = actor(cl, NULL);
    rc = run_resume(r, &who, arg_str(req, "reason"), keep);
    for (size_t i = 0; rc == 0 && was && value && i < d->rig->n_channels; i++) {
        if (!was[i])
            continue;
        const struct run_override *o = run_override(r, (int)i);
        double pv = run_protocol_value(r, (int)i);
        json_array_append_new(o ? kept : restored, json_pack("{s:s,s:f,s:s,s:f}", "channel",
                              d->rig->channels[i].name, "value", o ? o->value : pv, "unit",
                              d->rig->channels[i].unit, "override", value[i]));
    }
    free(was);
    free(value);
    if (rc < 0) {
        json_decref(restored);
        json_decref(kept);
        snprintf(err, len, "the run is not paused");
        return -EALREADY;
    }
    json_object_set_new(res, "restored", restored);
    json_object_set_new(res, "kept", kept);
    return cmd_status(cl, req, res, err, len);
}

/* abort. */
static int cmd_abort(struct ctl_client *cl, json_t *req, json_t *res, char *err, size_t len)
{
    return run_action(cl, req, res, err, len, run_abort, "the run has already ended");
}

/* next: end the current step now and go on; the reply is a status. */
static int cmd_next(struct ctl_client *cl, json_t *req, json_t *res, char *err, size_t len)
{
    struct run *r = need_run(cl, req, err, len);
    int rc;
    if (r == NULL)
        return refuse(cl, req, -ENOENT, "cmd_next", "next", err);
    struct run_actor who = actor(cl, NULL);
    if ((rc = run_next(r, &who)) < 0) {
        snprintf(err, len, "%s", rc == -EAGAIN ? "the run is paused: resume it first, then next ends the "
                 "step it is in" : "no step is running");
        return rc == -EAGAIN ? -EBUSY : -ENOENT;
    }
    return cmd_status(cl, req, res, err, len);
}

/* extend: make the current step longer by "duration" ("30 min"); the reply is a status. */
static int cmd_extend(struct ctl_client *cl, json_t *req, json_t *res, char *err, size_t len)
{
    const char *text = arg_str(req, "duration");
    char what[120];
    snprintf(what, sizeof what, "extend %.*s", text ? (int)utf8_cut(text, 80) : 1, text ? text : "?");
    struct run *r = need_run(cl, req, err, len);
    int rc;
    if (r == NULL)
        return refuse(cl, req, -ENOENT, "cmd_extend", what, err);
    int64_t ns = 0;
    char perr[200] = "";
    int col;
    int prc = text != NULL ? unit_parse_duration(text, &ns, perr, sizeof perr, &col) : -EINVAL;
    if (prc < 0 || ns <= 0) {
        snprintf(err, len, "extend needs \"duration\", a positive duration such as \"30 min\"%s%s",
                 perr[0] ? ": " : "", perr);
        return refuse(cl, req, -EINVAL, "cmd_extend", what, err);
    }
    struct run_actor who = actor(cl, NULL);
    if ((rc = run_extend(r, &who, ns)) < 0) {
        snprintf(err, len, "%s", rc == -EINVAL ? "the step has no end to move: a wait or prompt without "
                 "a timeout waits as long as it takes (next ends it)" : "no step is running");
        return rc;
    }
    return cmd_status(cl, req, res, err, len);
}

/* Longest note, in bytes: it must fit an event's message whole. */
#define NOTE_MAX 200

/* note: a timestamped note in the run's events; the reply has the event's time. */
static int cmd_note(struct ctl_client *cl, json_t *req, json_t *res, char *err, size_t len)
{
    struct daemon *d = daemon_of(cl);
    const char *text = arg_str(req, "text"), *op = arg_str(req, "operator");
    struct run *r = need_run(cl, req, err, len);
    if (r == NULL)
        return -ENOENT;
    if (text == NULL || *text == '\0') {
        snprintf(err, len, "note needs \"text\", what happened (e.g. \"medium changed, lot 2211\")");
        return -EINVAL;
    }
    if (strlen(text) > NOTE_MAX) {
        snprintf(err, len, "a note is at most %d bytes (this one has %zu): split it into several notes",
                 NOTE_MAX, strlen(text));
        return -EINVAL;
    }
    for (const char *p = text; *p; p++)
        if ((unsigned char)*p < 0x20) {
            snprintf(err, len, "a note is one line of text: no line breaks or control characters "
                     "(byte %zu)", (size_t)(p - text) + 1);
            return -EINVAL;
        }
    if (op != NULL && !run_operator_ok(op, err, len))
        return -EINVAL;
    struct run_actor who = actor(cl, op);
    run_note(r, &who, text);
    int64_t wall = time_wall_ns();
    char utc[40], local[48];
    time_iso8601(wall, utc, sizeof utc);
    time_iso8601_local(wall, local, sizeof local);
    json_object_set_new(res, "run_id", json_string(run_id(r)));
    json_object_set_new(res, "time", json_real((double)(pclock_now(&d->clock) - run_start_ns(r)) / 1e9));
    json_object_set_new(res, "utc", json_string(utc));
    json_object_set_new(res, "local", json_string(local));
    json_object_set_new(res, "text", json_string(text));
    return 0;
}

/* Answer the pending prompt, or say in err why not. */
static int confirm_prompt(struct ctl_client *cl, json_t *req, json_t *res, char *err, size_t len)
{
    struct run *r = need_run(cl, req, err, len);
    if (r == NULL)
        return -ENOENT;
    int rc;
    /* With an id, only that prompt: an old status must not answer a newer prompt. */
    const char *want = arg_str(req, "prompt");
    struct runner_status st;
    run_get_status(r, &st);
    if (!st.waiting_prompt) {
        if (st.prompt_answered)
            snprintf(err, len, "the prompt of step %s is already confirmed; the run is paused and "
                     "goes on past it when resumed", st.step_path);
        else
            snprintf(err, len, "no prompt is waiting for confirmation");
        return -ENOENT;
    }
    if (want != NULL && strcmp(want, st.step_path) != 0) {
        snprintf(err, len, "the prompt waiting is %s ('%s'), not %s", st.step_path,
                 st.prompt ? st.prompt : "", want);
        return -EINVAL;
    }
    struct run_actor who = actor(cl, NULL);
    if ((rc = run_confirm(r, &who)) < 0) {
        snprintf(err, len, "no prompt is waiting for confirmation");
        return rc;
    }
    return cmd_status(cl, req, res, err, len);
}

/* confirm: answer the pending prompt. */
static int cmd_confirm(struct ctl_client *cl, json_t *req, json_t *res, char *err, size_t len)
{
    int rc = confirm_prompt(cl, req, res, err, len);
    if (rc < 0) {
        char what[120];
        const char *want = arg_str(req, "prompt");
        snprintf(what, sizeof what, "confirm%s%.*s", want ? " " : "", want ? (int)utf8_cut(want, 80) : 0,
                 want ? want : "");
        return refuse(cl, req, rc, "cmd_confirm", what, err);
    }
    return rc;
}

/* Apply a manual setpoint, or say in err why not. */
static int set_value(struct ctl_client *cl, json_t *req, json_t *res, char *err, size_t len)
{
    struct daemon *d = daemon_of(cl);
    const char *name = arg_str(req, "channel"), *text = arg_str(req, "value");
    if (name == NULL || text == NULL) {
        snprintf(err, len, "set needs \"channel\" and \"value\" (e.g. \"10 uL/min\")");
        return -EPROTO;
    }
    int ch = rig_find_channel(d->rig, name);
    if (ch < 0) {
        const char *sug = rig_suggest_channel(d->rig, name);
        snprintf(err, len, "unknown channel '%s'%s%s%s", name, sug ? " (did you mean '" : "",
                 sug ? sug : "", sug ? "'?)" : "");
        return -EINVAL;
    }
    const struct rig_channel *c = &d->rig->channels[ch];
    int reg = rig_regulator_of(d->rig, ch);
    if (!c->writable && reg < 0) {
        snprintf(err, len, "%s is a measurement and cannot be set", c->name);
        return -EPERM;
    }
    const struct latch_hold *held = latch_holder(&d->latch, ch);
    if (held != NULL) {
        latch_refusal(held, &d->alarms, c->name, err, len);
        return -EACCES;
    }
    /* The run that holds the channel, if one is going; else, as with one run,
     * the run going (a channel no run holds may be set while that run is paused). */
    struct run_slot *holder = NULL;
    for (size_t i = 0; i < DAEMON_MAX_RUNS && holder == NULL; i++) {
        struct run_slot *s = &d->slots[i];
        if (s->run != NULL && !run_ended(s->run) && (size_t)ch < s->claims.n && s->claims.writes[ch])
            holder = s;
    }
    struct run *r = holder != NULL ? holder->run : NULL;
    if (r == NULL && daemon_runs_going(d) == 1)
        r = active_run(cl, NULL);
    struct runner_status st = { .state = RUN_IDLE };
    if (r != NULL)
        run_get_status(r, &st);
    if (r != NULL && !run_ended(r) && st.state != RUN_PAUSED) {
        if (holder != NULL && daemon_runs_going(d) > 1)
            snprintf(err, len, "%s is held by run %s (%.4s), which is going: pause it first (--run %s)",
                     c->name, holder->name, run_id(r), holder->name);
        else
            snprintf(err, len, "a run is active: pause it first (manual setpoints are allowed only "
                     "with no run, or while the run is paused)");
        return -EBUSY;
    }
    double v;
    char perr[256];
    int col;
    if (unit_parse_value(text, c->q, &v, perr, sizeof perr, &col) < 0) {
        snprintf(err, len, "%s: %s", c->name, perr);
        return -EINVAL;
    }
    if (reg >= 0 && !c->writable) {
        const struct rig_regulator *g = &d->rig->regulators[reg];
        if (v < g->sp_min || v > g->sp_max) {
            snprintf(err, len, "%g %s is outside what regulator '%s' can reach on %s (%g to %g %s)",
                     v, c->unit, g->name, c->name, g->sp_min, g->sp_max, c->unit);
            return -EINVAL;
        }
    } else if ((!isnan(c->min) && v < c->min) || (!isnan(c->max) && v > c->max)) {
        snprintf(err, len, "%g %s is outside the limits of %s (%g to %g %s)", v, c->unit, c->name,
                 c->min, c->max, c->unit);
        return -EINVAL;
    }
    if (!rig_value_whole(c, v, err, len))
        return -EINVAL;
    /* A manual set is an explicit command: it ends a latched safe state on this channel. */
    daemon_release_safe(d, ch);
    int rc = daemon_command(d, ch, v, ACT_MANUAL, pclock_now(&d->clock));
    if (rc < 0) {
        snprintf(err, len, "cannot send the setpoint: %s", strerror(-rc));
        return rc;
    }
    regloop_manual(&d->rl, ch, v, pclock_now(&d->clock));  /* a regulator's actuator set by hand */
    struct run_actor who = actor(cl, NULL);
    if (r != NULL && !run_closed(r)) {
        run_manual_set(r, &who, ch, v);
    } else {
        /* No run records it: the rig's events do (and the broker publishes them). */
        char m[256];
        snprintf(m, sizeof m, "manual set %s = %g %s by %s", c->name, v, c->unit, who.user);
        daemon_event(d, pclock_now(&d->clock), "info", "control", "cmd_set", m);
    }
    json_object_set_new(res, "channel", json_string(c->name));
    json_object_set_new(res, "value", json_real(v));
    json_object_set_new(res, "unit", json_string(c->unit));
    return 0;
}

/* set: a manual setpoint, only with no run active or the run paused. */
static int cmd_set(struct ctl_client *cl, json_t *req, json_t *res, char *err, size_t len)
{
    int rc = set_value(cl, req, res, err, len);
    if (rc < 0) {
        char what[200];
        const char *ch = arg_str(req, "channel") ? arg_str(req, "channel") : "?";
        const char *val = arg_str(req, "value") ? arg_str(req, "value") : "?";
        snprintf(what, sizeof what, "set %.*s %.*s", (int)utf8_cut(ch, 80), ch, (int)utf8_cut(val, 80), val);
        return refuse(cl, req, rc, "cmd_set", what, err);
    }
    return rc;
}

/* tune: a relay autotune of a regulator, with no run active or the run paused; the result
 * shows in the status (regulators[].tune) when it ends. */
static int cmd_tune(struct ctl_client *cl, json_t *req, json_t *res, char *err, size_t len)
{
    struct daemon *d = daemon_of(cl);
    const char *name = arg_str(req, "regulator");
    int k = rig_find_regulator(d->rig, name);
    if (k < 0) {
        snprintf(err, len, "no regulator '%s' in rig '%s'", name ? name : "", d->rig->name);
        return refuse(cl, req, -EINVAL, "cmd_tune", "tune", err);
    }
    const struct rig_regulator *g = &d->rig->regulators[k];
    /* The run that holds the regulated channel (or its actuator) must be paused;
     * with one run going, that run, as with a single run. */
    struct run_slot *holder = NULL;
    for (size_t i = 0; i < DAEMON_MAX_RUNS && holder == NULL; i++) {
        struct run_slot *s = &d->slots[i];
        if (s->run != NULL && !run_ended(s->run) &&
            (((size_t)g->measure < s->claims.n && s->claims.writes[g->measure]) ||
             ((size_t)g->actuator < s->claims.n && s->claims.writes[g->actuator])))
            holder = s;
    }
    struct run *r = holder != NULL ? holder->run : NULL;
    if (r == NULL && daemon_runs_going(d) == 1)
        r = active_run(cl, NULL);
    struct runner_status st = { .state = RUN_IDLE };
    if (r != NULL)
        run_get_status(r, &st);
    if (r != NULL && !run_ended(r) && st.state != RUN_PAUSED) {
        if (holder != NULL && daemon_runs_going(d) > 1)
            snprintf(err, len, "%s is held by run %s (%.4s), which is going: pause it first (--run %s)",
                     d->rig->channels[g->measure].name, holder->name, run_id(r), holder->name);
        else
            snprintf(err, len, "a run is active: pause it first (a relay test runs only with no run, or "
                     "while the run is paused)");
        return refuse(cl, req, -EBUSY, "cmd_tune", "tune", err);
    }
    const struct latch_hold *held = latch_holder(&d->latch, g->actuator);
    if (held != NULL) {
        latch_refusal(held, &d->alarms, d->rig->channels[g->actuator].name, err, len);
        return refuse(cl, req, -EACCES, "cmd_tune", "tune", err);
    }
    daemon_release_safe(d, g->actuator);
    int rc = regloop_tune_start(&d->rl, (size_t)k, pclock_now(&d->clock), err, len);
    if (rc < 0)
        return refuse(cl, req, rc, "cmd_tune", "tune", err);
    daemon_event(d, pclock_now(&d->clock), "info", g->name, "tune_started",
                 "relay autotune started: output within its limits, about 10 s");
    json_object_set_new(res, "regulator", json_string(g->name));
    json_object_set_new(res, "tuning", json_true());
    return 0;
}

/* events: one page of the current (or last) run's event log: "since" in
 * seconds of run time, "cursor" the "next" of the page before, or "last" for
 * the latest events; "limit". The control server streams the page, a few
 * events per loop turn. */
static int cmd_events(struct ctl_client *cl, json_t *req, json_t *res, char *err, size_t len)
{
    (void)res;
    struct run_slot *s = pick(cl, req, err, len);
    if (s == NULL)
        return -ENOENT;
    snprintf(cl->run_sel, sizeof cl->run_sel, "%s", run_id(s->run));
    json_t *since = req ? json_object_get(req, "since") : NULL;
    json_t *cursor = req ? json_object_get(req, "cursor") : NULL;
    json_t *limit = req ? json_object_get(req, "limit") : NULL;
    json_t *last = req ? json_object_get(req, "last") : NULL;
    if (cursor && last) {
        snprintf(err, len, "events takes \"cursor\" (the next page) or \"last\" (the latest events), not both");
        return -EINVAL;
    }
    if (last && !(json_number_value(last) >= 1 && json_number_value(last) <= CONTROL_EVENTS_PAGE &&
                  json_number_value(last) == floor(json_number_value(last)))) {
        snprintf(err, len, "events \"last\" must be a whole number from 1 to %d", CONTROL_EVENTS_PAGE);
        return -EINVAL;
    }
    if (cursor && !(json_number_value(cursor) >= 0 && json_number_value(cursor) < 1e18)) {
        snprintf(err, len, "events \"cursor\" must be the \"next\" of an earlier reply (0 or more)");
        return -EINVAL;
    }
    if (limit && !(json_number_value(limit) >= 1 && json_number_value(limit) <= CONTROL_EVENTS_PAGE)) {
        snprintf(err, len, "events \"limit\" must be from 1 to %d", CONTROL_EVENTS_PAGE);
        return -EINVAL;
    }
    int rc = control_stream_events(cl, json_object_get(req, "id"), json_is_number(since) ? json_number_value(since) : -1,
                                   cursor ? (uint64_t)json_number_value(cursor) : 0,
                                   limit ? (size_t)json_number_value(limit) : CONTROL_EVENTS_PAGE,
                                   last ? (size_t)json_number_value(last) : 0);
    if (rc == -EBUSY) {
        snprintf(err, len, "the daemon is busy making other replies; ask again in a moment");
        return rc;
    }
    if (rc < 0) {
        snprintf(err, len, "cannot send the events: %s", strerror(-rc));
        return rc;
    }
    return CMD_DEFERRED;
}

/* wait: reply when the current run's file is closed. */
static int cmd_wait(struct ctl_client *cl, json_t *req, json_t *res, char *err, size_t len)
{
    struct run_slot *s = pick(cl, req, err, len);
    if (s == NULL && (arg_str(req, "run") != NULL || daemon_runs_going(daemon_of(cl)) > 1))
        return -ENOENT;
    if (s == NULL || run_closed(s->run))
        return cmd_status(cl, req, res, err, len);
    snprintf(cl->run_sel, sizeof cl->run_sel, "%s", run_id(s->run));
    control_add_waiter(cl, json_object_get(req, "id"));
    return CMD_DEFERRED;
}

/* ack: acknowledge one alarm ("alarm": ID) or every one ("alarm": "all"). */
static int cmd_ack(struct ctl_client *cl, json_t *req, json_t *res, char *err, size_t len)
{
    struct daemon *d = daemon_of(cl);
    json_t *which = json_object_get(req, "alarm");
    json_int_t id = 0;
    if (json_is_integer(which) && json_integer_value(which) > 0 &&
        json_integer_value(which) <= UINT32_MAX) {
        id = json_integer_value(which);
    } else if (!(json_is_string(which) && strcmp(json_string_value(which), "all") == 0)) {
        snprintf(err, len, "ack needs \"alarm\": an alarm id (see status) or \"all\"");
        return refuse(cl, req, -EINVAL, "cmd_ack", "ack", err);
    }
    int n = alarms_ack(&d->alarms, pclock_now(&d->clock), (uint32_t)id, cl->user);
    if (n == -ENOENT) {
        char ids[256] = "";
        for (size_t i = 0, k = 0; i < d->alarms.n && k + 12 < sizeof ids; i++)
            k += (size_t)snprintf(ids + k, sizeof ids - k, "%s%u", i ? ", " : "", d->alarms.v[i].id);
        snprintf(err, len, "no alarm %lld is listed (listed: %s)", (long long)id, ids[0] ? ids : "none");
        char what[40];
        snprintf(what, sizeof what, "ack %lld", (long long)id);
        return refuse(cl, req, -ENOENT, "cmd_ack", what, err);
    }
    json_object_set_new(res, "acknowledged", json_integer(n));
    json_object_set_new(res, "alarms", alarms_json(d, NULL));
    return 0;
}

/* One health record as JSON. */
static void health_json(struct daemon *d, json_t *o, const struct health *h, const char *ok_word,
                        const char *bad_word)
{
    json_object_set_new(o, "state", json_string(h->faulted ? bad_word : ok_word));
    json_object_set_new(o, "faults", json_integer((json_int_t)h->faults));
    json_object_set_new(o, "last_error", h->last_error[0] ? json_string(h->last_error) : json_null());
    json_object_set_new(o, "since_s", h->since_ns ? json_real((double)(pclock_now(&d->clock) - h->since_ns) / 1e9)
                                                  : json_null());
}

/* devices: every bus and device with its state and last error. */
static int cmd_devices(struct ctl_client *cl, json_t *req, json_t *res, char *err, size_t len)
{
    (void)req; (void)err; (void)len;
    struct daemon *d = daemon_of(cl);
    json_t *buses = json_array(), *devs = json_array();
    for (size_t i = 0; i < d->rig->n_buses; i++) {
        const struct rig_bus *b = &d->rig->buses[i];
        char where[160];
        if (b->link.type == LINK_MODBUS_TCP)
            snprintf(where, sizeof where, "%s:%d", b->link.host, b->link.tcp_port);
        else
            snprintf(where, sizeof where, "%s", b->link.port);
        json_t *o = json_pack("{s:s,s:s,s:s}", "name", b->name, "type", link_type_name(b->link.type),
                              "address", where);
        health_json(d, o, &d->bus_health[i], "up", "down");
        json_array_append_new(buses, o);
    }
    for (size_t i = 0; i < d->rig->n_devices; i++) {
        const struct rig_device *dev = &d->rig->devices[i];
        json_t *chans = json_array();
        for (size_t k = 0; k < dev->n_chans; k++) {
            const struct rig_channel *c = &d->rig->channels[dev->first_channel + k];
            const struct chan_state *cs = &d->chans[dev->first_channel + k];
            json_t *co = json_pack("{s:s,s:s,s:b,s:b,s:f}", "name", c->name, "unit", c->unit,
                                   "readable", c->readable, "writable", c->writable, "sample_hz",
                                   d->sample_hz[dev->first_channel + k]);
            if (cs->err != 0)
                json_object_set_new(co, "error", json_string(cs->msg));
            actuator_json(d, dev->first_channel + k, co);
            json_array_append_new(chans, co);
        }
        json_t *o = json_pack("{s:s,s:s,s:s,s:o}", "name", dev->name, "driver", dev->drv->name,
                              "bus", d->rig->buses[dev->bus].name, "channels", chans);
        health_json(d, o, &d->dev_health[i], "ok", "faulted");
        /* Only what is confirmed is ok: a device out of reach or never heard from is not. */
        if (!d->dev_health[i].faulted && d->bus_health[dev->bus].faulted)
            json_object_set_new(o, "state", json_string("unreachable"));
        else if (!d->dev_health[i].faulted && !d->dev_health[i].seen)
            json_object_set_new(o, "state", json_string("unknown"));
        json_array_append_new(devs, o);
    }
    json_object_set_new(res, "rig", json_string(d->rig->name));
    json_object_set_new(res, "buses", buses);
    json_object_set_new(res, "devices", devs);
    return 0;
}

/* watch: a status now, then one every "interval" seconds (default 1) until the client goes. */
static int cmd_watch(struct ctl_client *cl, json_t *req, json_t *res, char *err, size_t len)
{
    json_t *iv = json_object_get(req, "interval");
    double interval = 1.0;
    if (iv != NULL) {
        if (!json_is_number(iv) || !(json_number_value(iv) >= 0.2 && json_number_value(iv) <= 60)) {
            snprintf(err, len, "watch \"interval\" must be a number of seconds from 0.2 to 60");
            return -EINVAL;
        }
        interval = json_number_value(iv);
    }
    /* With --run it follows that run's events; else the one run going (none with several). */
    char why[512];
    struct run_slot *s = pick(cl, req, why, sizeof why);
    if (s == NULL && arg_str(req, "run") != NULL) {
        snprintf(err, len, "%s", why);
        return -ENOENT;
    }
    snprintf(cl->run_sel, sizeof cl->run_sel, "%s", arg_str(req, "run") && s ? run_id(s->run) : "");
    int rc = control_add_watcher(cl, interval);
    if (rc < 0) {
        snprintf(err, len, "cannot watch: %s", strerror(-rc));
        return rc;
    }
    return cmd_status(cl, req, res, err, len);
}

/* The rig channels a history request names ("channels"; without it, all)
 * into idx (room for the rig's channels), their number in *n; -EINVAL with
 * the channel named in err. */
static int history_channels(struct daemon *d, json_t *list, size_t *idx, size_t *n, char *err, size_t len)
{
    *n = 0;
    if (list == NULL) {
        for (size_t i = 0; i < d->rig->n_channels; i++)
            idx[(*n)++] = i;
        return 0;
    }
    size_t k;
    json_t *v;
    json_array_foreach(list, k, v) {
        const char *name = json_string_value(v);
        int ch = rig_find_channel(d->rig, name);
        if (ch < 0) {
            const char *sug = rig_suggest_channel(d->rig, name);
            snprintf(err, len, "history: no channel '%.*s' in rig '%s'%s%s%s", (int)utf8_cut(name, 80), name,
                     d->rig->name, sug ? " (did you mean '" : "", sug ? sug : "", sug ? "'?)" : "");
            return -EINVAL;
        }
        bool dup = false;
        for (size_t i = 0; i < *n && !dup; i++)
            dup = idx[i] == (size_t)ch;
        if (!dup)
            idx[(*n)++] = (size_t)ch;
    }
    if (*n == 0) {
        snprintf(err, len, "history \"channels\" names no channel; leave it out for every channel");
        return -EINVAL;
    }
    return 0;
}

/* history: the last "minutes" of each channel (or of those in "channels"),
 * decimated to at most "points" slots: measurements as read, actuators as
 * their devices confirmed them. The series are decimated on the loop, one
 * channel at a time between its other work (O(window) each); the reply's
 * text is written on the thread pool. */
static int cmd_history(struct ctl_client *cl, json_t *req, json_t *res, char *err, size_t len)
{
    (void)res;
    struct daemon *d = daemon_of(cl);
    json_t *jm = json_object_get(req, "minutes"), *jp = json_object_get(req, "points");
    double minutes = jm ? json_number_value(jm) : HISTORY_DEFAULT_MINUTES;
    double points = jp ? json_number_value(jp) : HISTORY_DEFAULT_POINTS;
    if (!(minutes >= 1 && minutes <= 60)) {
        snprintf(err, len, "history \"minutes\" must be a number from 1 to 60");
        return -EINVAL;
    }
    if (!(points >= 10 && points <= 2000) || points != floor(points)) {
        snprintf(err, len, "history \"points\" must be a whole number from 10 to 2000");
        return -EINVAL;
    }
    size_t *idx = calloc(d->rig->n_channels + 1, sizeof *idx), n;
    if (idx == NULL) {
        snprintf(err, len, "out of memory");
        return -ENOMEM;
    }
    int rc = history_channels(d, json_object_get(req, "channels"), idx, &n, err, len);
    unsigned seconds = (unsigned)lround(minutes * 60), slots = (unsigned)points;
    if (slots > seconds)
        slots = seconds;
    int64_t now = pclock_now(&d->clock), wall = time_wall_ns();
    struct history_reply *r = rc < 0 ? NULL : history_reply_new(&d->hist, n, now, seconds, slots);
    if (rc == 0 && r == NULL)
        rc = -ENOMEM;
    if (r != NULL) {
        r->now_s = (double)wall / 1e9;
        r->minutes = minutes;
        r->step_s = (double)seconds / slots;
        r->wall_minus_clock_s = (double)(wall - now) / 1e9;
    }
    for (size_t k = 0; rc == 0 && k < n; k++) {
        const struct rig_channel *c = &d->rig->channels[idx[k]];
        rc = history_reply_name(r, k, c->name, c->unit, c->writable ? "setpoint" : "measured");
        r->from[k] = idx[k];
    }
    free(idx);
    if (rc == -ENOMEM)
        snprintf(err, len, "out of memory");
    if (rc == 0)
        rc = control_reply_off_loop(cl, json_object_get(req, "id"), history_reply_step,
                                    history_reply_write, history_reply_free, r);
    if (rc == -EBUSY)
        snprintf(err, len, "%d replies are being made already; ask again in a moment", CONTROL_OFFLOOP_MAX);
    else if (rc == -ENOTSUP)
        snprintf(err, len, "history is not served here");
    else if (rc < 0 && err[0] == '\0')
        snprintf(err, len, "cannot make the history: %s", strerror(-rc));
    if (rc < 0) {
        history_reply_free(r);
        return rc;
    }
    return CMD_DEFERRED;
}

/* The daemon's commands, in the order their names are listed in messages. */
static const struct ctl_command commands[] = {
    { .name = "hello", .exec = cmd_hello, .args = "", .read_only = true },
    { .name = "run", .exec = cmd_run, .args = "protocol_text=s! protocol_path=s operator=s fill=l force=b "
                                              "sample=l notes=s name=s",
      .loads_protocol = true },
    { .name = "status", .exec = cmd_status, .args = "run=s", .read_only = true },
    { .name = "watch", .exec = cmd_watch, .args = "interval=n run=s", .read_only = true },
    { .name = "pause", .exec = cmd_pause, .args = "reason=s run=s" },
    { .name = "resume", .exec = cmd_resume, .args = "reason=s keep_overrides=b run=s" },
    { .name = "abort", .exec = cmd_abort, .args = "reason=s run=s" },
    { .name = "confirm", .exec = cmd_confirm, .args = "prompt=s run=s" },
    { .name = "next", .exec = cmd_next, .args = "run=s" },
    { .name = "extend", .exec = cmd_extend, .args = "duration=s! run=s" },
    { .name = "note", .exec = cmd_note, .args = "text=s! operator=s run=s" },
    { .name = "ack", .exec = cmd_ack, .args = "alarm=a!" },
    { .name = "wait", .exec = cmd_wait, .args = "run=s", .read_only = true },
    { .name = "set", .exec = cmd_set, .args = "channel=s! value=s! run=s" },
    { .name = "tune", .exec = cmd_tune, .args = "regulator=s!" },
    { .name = "events", .exec = cmd_events, .args = "since=n cursor=n last=n limit=n run=s", .read_only = true },
    { .name = "devices", .exec = cmd_devices, .args = "", .read_only = true },
    { .name = "history", .exec = cmd_history, .args = "minutes=n points=n channels=l", .read_only = true },
};

static const struct ctl_table table = { .v = commands, .n = sizeof commands / sizeof commands[0] };

/* The daemon's commands. */
const struct ctl_table *commands_table(void)
{
    return &table;
}

/* Hook: a fresh status, for a watcher or a waiter. */
static json_t *hook_status(void *ctx, struct ctl_client *cl)
{
    (void)ctx;
    json_t *res = json_object();
    char err[64];
    cmd_status(cl, NULL, res, err, sizeof err);
    return res;
}

/* The run a client follows: the one it chose (by id), else the default. */
static struct run *followed(struct daemon *d, struct ctl_client *cl)
{
    char err[8];
    struct run_slot *s = daemon_find_run(d, cl->run_sel[0] ? cl->run_sel : NULL, err, sizeof err);
    return s != NULL ? s->run : NULL;
}

/* Hook: the run a client follows and the range of its events still kept. */
static const char *hook_events(void *ctx, struct ctl_client *cl, uint64_t *first, uint64_t *total)
{
    struct run *r = followed(ctx, cl);
    *first = *total = 0;
    if (r == NULL)
        return NULL;
    *total = run_events_total(r);
    *first = *total > RUN_EVENTS_KEPT ? *total - RUN_EVENTS_KEPT : 0;
    return run_id(r);
}

/* Hook: one event of the run a client follows, as `events` and `watch` send it. */
static json_t *hook_event(void *ctx, struct ctl_client *cl, uint64_t seq)
{
    struct run *r = followed(ctx, cl);
    const struct run_event_rec *e = r != NULL ? run_event_at(r, seq) : NULL;
    if (e == NULL)
        return NULL;
    return run_event_json(r, e);
}

/* The hooks the control server needs from the daemon. */
void commands_hooks(struct daemon *d, struct control_hooks *h)
{
    *h = (struct control_hooks){ .ctx = d, .status = hook_status, .events = hook_events, .event = hook_event };
}
