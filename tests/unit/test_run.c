/*
 * A run as a guest of a fake host: its outputs, safe states, alerts, journal
 * and file go through the struct run_host it is started with, in virtual time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/journal.h"
#include "base/workpool.h"
#include "daemon/run.h"
#include "base/latency.h"
#include "run/alarms.h"
#include "run/delivery.h"
#include "run/interlock.h"
#include "run/latch.h"

#define S 1000000000LL
#define T0 (1000 * S)

/* Two syringe pumps on a serial bus: loading opens no port. */
static const char RIG[] =
    "rig: bench\n"
    "buses:\n"
    "  - {name: pumps, type: serial, port: /dev/null, baud: 19200}\n"
    "devices:\n"
    "  - {name: pump1, driver: newera, bus: pumps, address: 0,\n"
    "     syringe: {diameter: 14.57 mm, volume: 10 mL}, max_flow: 1000 uL/min}\n"
    "  - {name: pump2, driver: newera, bus: pumps, address: 1,\n"
    "     syringe: {diameter: 14.57 mm, volume: 10 mL}, max_flow: 1000 uL/min}\n";

/* Two steps, a safe state on pump1 only; on_fault filled in by the test. */
static const char PLAN_FMT[] =
    "perfuse: 1\n"
    "name: guest\n"
    "on_fault: %s\n"
    "safe_state: {pump1: 0 uL/min}\n"
    "steps:\n"
    "  - {name: first, set: {pump1: 100 uL/min, pump2: 50 uL/min}, for: 10 s}\n"
    "  - {name: second, set: {pump1: 200 uL/min}, for: 10 s}\n";

struct write_rec { int ch; double v; int64_t planned; };
struct alert_rec { const struct run *r; char kind[16], code[32]; };

/* The fake host: what the run gives it, kept for the checks. */
struct fake {
    uv_loop_t loop;
    uv_timer_t guard;           /* bounds every wait for the loop */
    bool timed_out;
    struct pclock clk;
    struct rig *rig;
    char dir[64];
    struct journal_writer journal;
    int journal_done;           /* writes and removals finished */
    struct interlocks il;
    struct alarms alarms;
    struct latch latch;
    struct delivery dl;
    struct latency dispatch, wire, wire_txn, wire_sched;
    struct run_host host;

    struct write_rec writes[64];
    size_t n_writes;
    double setpoint[8];
    int refuse_ch;              /* a write of this channel is refused (-EACCES); -1: none */
    int safe_calls;
    struct plan_target safe[8];
    size_t n_safe;
    int releases;
    const char *blocker;        /* a reason the run cannot start; NULL: none */
    struct alert_rec alerts[8];
    size_t n_alerts;
    const struct run *alarm_run;
    int n_closed;
    struct run *closed;
    struct run *run;            /* the test's run until it is freed */
};

static int f_write(void *ctx, int ch, double v, int64_t planned)
{
    struct fake *f = ctx;
    if (ch == f->refuse_ch)
        return -EACCES;
    if (f->n_writes < 64)
        f->writes[f->n_writes++] = (struct write_rec){ ch, v, planned };
    f->setpoint[ch] = v;
    return 0;
}

static void f_safe_state(void *ctx, const struct plan_target *t, size_t n)
{
    struct fake *f = ctx;
    f->safe_calls++;
    f->n_safe = n < 8 ? n : 8;
    if (f->n_safe > 0)          /* t may be NULL for "every actuator" */
        memcpy(f->safe, t, f->n_safe * sizeof *t);
}

static bool f_safe_confirmed(void *ctx)
{
    (void)ctx;
    return true;
}

static void f_release_safe(void *ctx)
{
    ((struct fake *)ctx)->releases++;
}

static double f_setpoint(void *ctx, int ch)
{
    return ((struct fake *)ctx)->setpoint[ch];
}

static int f_blockers(void *ctx, const struct plan *p, char *buf, size_t len)
{
    struct fake *f = ctx;
    (void)p;
    snprintf(buf, len, "%s", f->blocker ? f->blocker : "");
    return f->blocker != NULL;
}

static void f_alert(void *ctx, const struct run *r, const char *kind, const char *sev, const char *src,
                    const char *code, const char *msg)
{
    struct fake *f = ctx;
    (void)sev; (void)src; (void)msg;
    if (f->n_alerts < 8) {
        struct alert_rec *a = &f->alerts[f->n_alerts++];
        a->r = r;
        snprintf(a->kind, sizeof a->kind, "%s", kind);
        snprintf(a->code, sizeof a->code, "%s", code);
    }
}

static void f_alarm(void *ctx, const struct run *r, bool raise, const char *sev, const char *src,
                    const char *code, const char *msg)
{
    struct fake *f = ctx;
    (void)raise; (void)sev; (void)src; (void)code; (void)msg;
    f->alarm_run = r;
}

static void f_closed(void *ctx, struct run *r)
{
    struct fake *f = ctx;
    f->n_closed++;
    f->closed = r;
}

static void f_journal_result(void *ctx, const char *path, int err)
{
    struct fake *f = ctx;
    (void)path;
    assert_int_equal(err, 0);
    f->journal_done++;
}

static void d_raise(void *ctx, int64_t t, const char *sev, const char *src, const char *code,
                    enum delivery_action act, const char *msg)
{
    (void)ctx; (void)t; (void)sev; (void)src; (void)code; (void)act; (void)msg;
}

static void d_clear(void *ctx, int64_t t, const char *src, const char *code)
{
    (void)ctx; (void)t; (void)src; (void)code;
}

static void d_fill(void *ctx, size_t i, double fill, int64_t t)
{
    (void)ctx; (void)i; (void)fill; (void)t;
}

static void i_trip(void *ctx, const struct limit_rule *rule, double v, int64_t t)
{
    (void)ctx; (void)rule; (void)v; (void)t;
}

static void guard_fired(uv_timer_t *t)
{
    ((struct fake *)t->data)->timed_out = true;
}

/* Turn the loop until *count reaches want (or 10 s pass: a failure). */
static void wait_for(struct fake *f, const int *count, int want)
{
    f->timed_out = false;
    uv_timer_start(&f->guard, guard_fired, 10000, 0);
    while (*count < want && !f->timed_out)
        uv_run(&f->loop, UV_RUN_ONCE);
    uv_timer_stop(&f->guard);
    assert_false(f->timed_out);
}

/* Turn the loop until the journal writer has nothing queued or in flight. */
static void wait_journal_idle(struct fake *f)
{
    f->timed_out = false;
    uv_timer_start(&f->guard, guard_fired, 10000, 0);
    while ((f->journal.busy || f->journal.pending != NULL || f->journal.remove_pending) && !f->timed_out)
        uv_run(&f->loop, UV_RUN_ONCE);
    uv_timer_stop(&f->guard);
    assert_false(f->timed_out);
}

/* A fake host over a fresh data directory, at virtual time T0. */
static int setup(void **state)
{
    struct fake *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_timer_init(&f->loop, &f->guard);
    f->guard.data = f;
    pclock_init_virtual(&f->clk, T0);
    struct diag d;
    diag_init(&d);
    if (rig_load_text("bench.yaml", RIG, strlen(RIG), &f->rig, &d) != 0) {
        diag_print(&d, stderr);
        fail_msg("the rig did not load");
    }
    diag_free(&d);
    snprintf(f->dir, sizeof f->dir, "/tmp/perfuse-test-run.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    journal_writer_init(&f->journal, &f->loop, f->dir);
    f->journal.result = f_journal_result;
    f->journal.result_ctx = f;
    struct interlock_hooks ih = { .ctx = f, .trip = i_trip, .clear = i_trip };
    assert_int_equal(interlocks_init(&f->il, NULL, 0, &ih), 0);
    alarms_init(&f->alarms, NULL, NULL);
    latch_init(&f->latch, f->rig->n_channels);
    struct delivery_hooks dh = { .ctx = f, .raise = d_raise, .clear = d_clear, .fill = d_fill };
    assert_int_equal(delivery_init(&f->dl, f->rig, &dh), 0);
    for (size_t i = 0; i < 8; i++)
        f->setpoint[i] = NAN;
    f->refuse_ch = -1;
    f->host = (struct run_host){
        .loop = &f->loop, .clock = &f->clk, .rig = f->rig, .data_dir = f->dir, .host_name = "testhost",
        .journal = &f->journal, .il = &f->il, .alarms = &f->alarms, .latch = &f->latch, .dl = &f->dl,
        .dispatch = &f->dispatch, .wire = &f->wire, .wire_txn = &f->wire_txn,
        .wire_sched = &f->wire_sched,
        .ctx = f, .write = f_write, .safe_state = f_safe_state, .safe_confirmed = f_safe_confirmed,
        .release_safe = f_release_safe, .setpoint = f_setpoint, .blockers = f_blockers,
        .alert = f_alert, .alarm = f_alarm, .closed = f_closed,
    };
    *state = f;
    return 0;
}

/* Remove dir and what is in it (run files, journal). */
static void remove_dir(const char *dir)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static int teardown(void **state)
{
    struct fake *f = *state;
    if (f->run != NULL) {
        /* A failed check left it: end it, so that its handles close. */
        struct run_actor who = { .user = "tester" };
        if (!run_ended(f->run))
            run_abort(f->run, &who, "test failed");
        run_free(f->run);
    }
    uv_close((uv_handle_t *)&f->guard, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);       /* finishes journal writes and closes */
    workpool_loop_close(&f->loop);
    journal_writer_free(&f->journal);
    interlocks_free(&f->il);
    alarms_free(&f->alarms);
    latch_free(&f->latch);
    delivery_free(&f->dl);
    latency_free(&f->dispatch);
    latency_free(&f->wire);
    latency_free(&f->wire_txn);
    latency_free(&f->wire_sched);
    rig_free(f->rig);
    pclock_free(&f->clk);
    remove_dir(f->dir);
    int rc = uv_loop_close(&f->loop);
    free(f);
    assert_int_equal(rc, 0);
    return 0;
}

/* Start the plan (on_fault as given) now; asserts it started. */
static struct run *start(struct fake *f, const char *on_fault)
{
    char text[1024];
    snprintf(text, sizeof text, PLAN_FMT, on_fault);
    struct run_actor who = { .user = "uid 1000 (tester)", .operator_name = "Ada" };
    struct diag d;
    diag_init(&d);
    struct run *r = NULL;
    int rc = run_start(&f->host, "guest.yaml", text, strlen(text), &who, NULL, 0, &d, &r);
    if (rc != 0)
        diag_print(&d, stderr);
    diag_free(&d);
    assert_int_equal(rc, 0);
    assert_non_null(r);
    f->run = r;
    return r;
}

/* Close the run's file now, wait for the host to be told, and free the run. */
static void close_and_free(struct fake *f, struct run *r)
{
    if (!run_ended(r)) {
        struct run_actor who = { .user = "tester" };
        run_abort(r, &who, "test over");
    }
    run_close_now(r);
    wait_for(f, &f->n_closed, 1);
    assert_ptr_equal(f->closed, r);
    assert_true(run_closed(r));
    run_free(r);
    f->run = NULL;
}

static int channel(const struct fake *f, const char *name)
{
    int ch = rig_find_channel(f->rig, name);
    assert_true(ch >= 0);
    return ch;
}

static enum run_state state_of(struct run *r)
{
    struct runner_status st;
    run_get_status(r, &st);
    return st.state;
}

/* Whether the run recorded an event with code since its start. */
static bool has_event(const struct run *r, const char *code)
{
    for (uint64_t i = 0; i < run_events_total(r); i++) {
        const struct run_event_rec *e = run_event_at(r, i);
        if (e != NULL && strcmp(e->code, code) == 0)
            return true;
    }
    return false;
}

/* Every setpoint goes through the host's write hook, with its value and its planned time. */
static void test_outputs_go_through_the_host_with_the_planned_values(void **state)
{
    struct fake *f = *state;
    struct run *r = start(f, "pause");
    int p1 = channel(f, "pump1"), p2 = channel(f, "pump2");
    assert_int_equal(f->releases, 1);       /* the last run's safe state ends */
    assert_int_equal(f->n_writes, 2);
    assert_int_equal(f->writes[0].ch, p1);
    assert_true(f->writes[0].v == 100.0);
    assert_true(f->writes[0].planned == T0);
    assert_int_equal(f->writes[1].ch, p2);
    assert_true(f->writes[1].v == 50.0);
    assert_true(pclock_virtual_step(&f->clk));
    assert_int_equal(f->n_writes, 3);
    assert_int_equal(f->writes[2].ch, p1);
    assert_true(f->writes[2].v == 200.0);
    assert_true(f->writes[2].planned == T0 + 10 * S);
    assert_int_equal(f->safe_calls, 0);
    assert_true(run_protocol_value(r, p1) == 200.0);
    close_and_free(f, r);
}

/* A write the host refuses is recorded in the run's events, and is not the protocol's value lost. */
static void test_a_refused_write_is_recorded(void **state)
{
    struct fake *f = *state;
    f->refuse_ch = channel(f, "pump2");
    struct run *r = start(f, "pause");
    assert_true(has_event(r, "write_refused"));
    assert_int_equal(f->n_writes, 1);           /* pump1 only */
    close_and_free(f, r);
}

/* The end of the run puts the plan's safe state through the host, naming its channels. */
static void check_safe_state(const struct fake *f)
{
    assert_int_equal(f->safe_calls, 1);
    assert_int_equal(f->n_safe, 1);
    assert_int_equal(f->safe[0].channel, channel(f, "pump1"));
    assert_true(f->safe[0].v0 == 0.0);
}

/* A pause holds the setpoints (no safe state); an abort then applies the plan's safe state. */
static void test_pause_holds_and_abort_applies_the_safe_state(void **state)
{
    struct fake *f = *state;
    struct run *r = start(f, "pause");
    struct run_actor who = { .user = "tester" };
    assert_int_equal(run_pause(r, &who, "look"), 0);
    assert_int_equal(state_of(r), RUN_PAUSED);
    assert_int_equal(f->safe_calls, 0);
    assert_int_equal(run_abort(r, &who, "enough"), 0);
    assert_int_equal(state_of(r), RUN_ABORTED);
    check_safe_state(f);
    assert_true(run_ended(r));
    close_and_free(f, r);
}

/* A safe-stop interlock applies the plan's safe state and ends the run as faulted. */
static void test_a_safe_stop_applies_the_safe_state_and_faults_the_run(void **state)
{
    struct fake *f = *state;
    struct run *r = start(f, "continue");
    run_safe_stop(r, "pressure above its max");
    assert_int_equal(state_of(r), RUN_FAULTED);
    check_safe_state(f);
    /* The run's end is an alert about this run. */
    assert_int_equal(f->n_alerts, 1);
    assert_string_equal(f->alerts[0].kind, "run_end");
    assert_string_equal(f->alerts[0].code, "faulted");
    assert_ptr_equal(f->alerts[0].r, r);
    close_and_free(f, r);
}

/* A device fault does what the protocol's on_fault says. */
static void test_a_device_fault_applies_on_fault(void **state)
{
    struct fake *f = *state;
    struct run *r = start(f, "pause");
    run_on_device_fault(r, "pump2", "no answer");
    assert_int_equal(state_of(r), RUN_PAUSED);
    assert_int_equal(f->safe_calls, 0);
    close_and_free(f, r);

    f->safe_calls = 0;
    f->n_closed = 0;
    r = start(f, "abort");
    run_on_device_fault(r, "pump2", "no answer");
    assert_int_equal(state_of(r), RUN_FAULTED);
    check_safe_state(f);
    close_and_free(f, r);

    f->safe_calls = 0;
    f->n_closed = 0;
    r = start(f, "continue");
    run_on_device_fault(r, "pump2", "no answer");
    assert_int_equal(state_of(r), RUN_RUNNING);
    assert_int_equal(f->safe_calls, 0);
    assert_true(has_event(r, "fault_ignored"));
    close_and_free(f, r);
}

/* A prompt and the end of the run are alerts that name the run; so is its close. */
static void test_alerts_name_the_run(void **state)
{
    struct fake *f = *state;
    static const char text[] =
        "perfuse: 1\nname: asks\nsteps:\n"
        "  - {set: {pump1: 10 uL/min}, for: 1 s}\n"
        "  - prompt: Replace the reservoir\n"
        "  - {set: {pump1: 20 uL/min}, for: 1 s}\n";
    struct run_actor who = { .user = "tester" };
    struct diag d;
    diag_init(&d);
    struct run *r = NULL;
    assert_int_equal(run_start(&f->host, "asks.yaml", text, strlen(text), &who, NULL, 0, &d, &r), 0);
    diag_free(&d);
    f->run = r;
    assert_true(pclock_virtual_step(&f->clk));     /* to the prompt */
    assert_int_equal(f->n_alerts, 1);
    assert_string_equal(f->alerts[0].kind, "prompt");
    assert_ptr_equal(f->alerts[0].r, r);
    assert_int_equal(run_confirm(r, &who), 0);
    while (!run_ended(r) && pclock_virtual_step(&f->clk))
        ;
    assert_int_equal(state_of(r), RUN_COMPLETED);
    assert_int_equal(f->n_alerts, 2);
    assert_string_equal(f->alerts[1].kind, "run_end");
    assert_string_equal(f->alerts[1].code, "completed");
    assert_ptr_equal(f->alerts[1].r, r);
    assert_null(f->alarm_run);                  /* storage never failed */
    close_and_free(f, r);
}

/* A run the host says cannot start now is refused with the reason, unless forced. */
static void test_a_blocked_run_is_refused_unless_forced(void **state)
{
    struct fake *f = *state;
    f->blocker = "pump2 (which the protocol sets) is faulted: no answer";
    char text[1024];
    snprintf(text, sizeof text, PLAN_FMT, "pause");
    struct run_actor who = { .user = "tester" };
    struct diag d;
    diag_init(&d);
    struct run *r = NULL;
    int rc = run_start(&f->host, "guest.yaml", text, strlen(text), &who, NULL, 0, &d, &r);
    f->run = r;
    assert_int_equal(rc, -EBUSY);
    assert_null(r);
    assert_true(d.errors > 0);
    assert_int_equal(f->n_writes, 0);
    assert_int_equal(f->releases, 0);           /* a refused run keeps the last safe state */
    diag_free(&d);
    who.force = true;
    diag_init(&d);
    assert_int_equal(run_start(&f->host, "guest.yaml", text, strlen(text), &who, NULL, 0, &d, &r), 0);
    diag_free(&d);
    f->run = r;
    assert_true(has_event(r, "run_forced"));
    assert_int_equal(f->n_writes, 2);
    close_and_free(f, r);
}

/* Read the data directory's journal; 0, or -ENOENT when there is none. */
static int read_journal(const struct fake *f, struct journal_rec *j)
{
    int fd = open(f->dir, O_RDONLY | O_DIRECTORY);
    assert_true(fd >= 0);
    char *text;
    size_t len;
    int rc = journal_read_at(fd, JOURNAL_NAME, JOURNAL_MAX_BYTES, &text, &len);
    close(fd);
    if (rc < 0)
        return rc;
    char err[256];
    memset(j, 0, sizeof *j);
    rc = journal_decode(text, len, j, err, sizeof err);
    free(text);
    if (rc < 0)
        fail_msg("journal: %s", err);
    return 0;
}

/* The journal in the host's data directory follows the run, and goes when it ends. */
static void test_the_journal_follows_the_run(void **state)
{
    struct fake *f = *state;
    struct run *r = start(f, "pause");
    wait_journal_idle(f);
    assert_true(f->journal_done >= 1);
    struct journal_rec j;
    assert_int_equal(read_journal(f, &j), 0);
    assert_string_equal(j.run_id, run_id(r));
    assert_string_equal(j.file, run_path(r));
    assert_int_equal(strncmp(j.file, f->dir, strlen(f->dir)), 0);    /* in the data directory */
    assert_string_equal(j.operator_name, "Ada");
    assert_int_equal(j.pos.step_index, 0);
    assert_false(j.pos.paused);
    journal_rec_free(&j);
    /* The second step is journaled as it begins. */
    assert_true(pclock_virtual_step(&f->clk));
    wait_journal_idle(f);
    assert_int_equal(read_journal(f, &j), 0);
    assert_int_equal(j.pos.step_index, 1);
    journal_rec_free(&j);
    /* A pause is journaled with the setpoints the host holds, to be restored after a restart. */
    struct run_actor who = { .user = "tester" };
    assert_int_equal(run_pause(r, &who, "look"), 0);
    wait_journal_idle(f);
    assert_int_equal(read_journal(f, &j), 0);
    assert_true(j.pos.paused);
    assert_int_equal(j.n_setpoints, 2);
    assert_string_equal(j.setpoints[0].channel, "pump1.flow");
    assert_true(j.setpoints[0].value == 200.0);
    assert_string_equal(j.setpoints[1].channel, "pump2.flow");
    assert_true(j.setpoints[1].value == 50.0);
    assert_int_equal(j.n_overrides, 0);
    journal_rec_free(&j);
    /* A manual set in the pause: the journal keeps what the host now holds, and the override. */
    int p2 = channel(f, "pump2");
    f->setpoint[p2] = 7.0;
    run_manual_set(r, &who, p2, 7.0);
    wait_journal_idle(f);
    assert_int_equal(read_journal(f, &j), 0);
    assert_true(j.setpoints[1].value == 7.0);
    assert_int_equal(j.n_overrides, 1);
    assert_string_equal(j.overrides[0].channel, "pump2.flow");
    assert_true(j.overrides[0].value == 7.0);
    assert_true(j.overrides[0].protocol == 50.0);
    assert_string_equal(j.overrides[0].by, "tester");
    journal_rec_free(&j);
    /* Ended: nothing left to continue. */
    run_abort(r, &who, "done");
    wait_journal_idle(f);
    assert_int_equal(read_journal(f, &j), -ENOENT);
    close_and_free(f, r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_outputs_go_through_the_host_with_the_planned_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_refused_write_is_recorded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pause_holds_and_abort_applies_the_safe_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_safe_stop_applies_the_safe_state_and_faults_the_run, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_device_fault_applies_on_fault, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alerts_name_the_run, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_blocked_run_is_refused_unless_forced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_the_journal_follows_the_run, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
