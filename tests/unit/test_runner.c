/* The runner in virtual time: deadlines, ramps, waveforms, repeats, waits, pause. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "plan/plan.h"
#include "run/runner.h"

#define S 1000000000LL

struct write_rec { int ch; double v; int64_t planned, now; };

struct harness {
    struct pclock clk;
    struct rig rig;
    struct rig_device devs[2];
    struct rig_channel chans[2];
    struct plan *plan;
    struct runner *runner;
    struct write_rec writes[4096];
    size_t n_writes;
    struct rec_step rows[256];
    size_t n_rows;
    int safe_states;
    enum run_state final;
    int finished;
    char events[64][128];
    size_t n_events;
    int torn_positions;         /* events at which the position was not whole */
};

static void h_write(void *ctx, int ch, double v, int64_t planned)
{
    struct harness *h = ctx;
    if (h->n_writes < 4096)
        h->writes[h->n_writes++] = (struct write_rec){ ch, v, planned, pclock_now(&h->clk) };
}

static void h_safe(void *ctx)
{
    ((struct harness *)ctx)->safe_states++;
}

static void h_event(void *ctx, int64_t now, const char *sev, const char *code, const char *msg)
{
    struct harness *h = ctx;
    (void)now; (void)sev; (void)msg;
    if (h->n_events < 64)
        snprintf(h->events[h->n_events++], 128, "%s", code);
    /* What an owner journals at this event must be a whole position. */
    struct runner_pos pos;
    if (h->runner != NULL && runner_get_pos(h->runner, &pos) &&
        pos.step_start_ns != pos.shift_ns + pos.plan_pos_ns)
        h->torn_positions++;
}

static void h_step(void *ctx, const struct rec_step *row)
{
    struct harness *h = ctx;
    if (row->index >= 0 && row->index < 256) {
        h->rows[row->index] = *row;
        if ((size_t)row->index + 1 > h->n_rows)
            h->n_rows = (size_t)row->index + 1;
    }
}

static void h_finished(void *ctx, enum run_state final)
{
    struct harness *h = ctx;
    h->final = final;
    h->finished++;
}

/* A rig with pumpA.flow (writable, readable) and sensor.pressure (readable). */
static void make_rig(struct harness *h)
{
    h->rig.name = "test";
    h->rig.devices = h->devs;
    h->rig.n_devices = 2;
    h->rig.channels = h->chans;
    h->rig.n_channels = 2;
    h->devs[0] = (struct rig_device){ .name = "pumpA", .n_chans = 1, .first_channel = 0 };
    h->devs[0].chans[0] = (struct driver_channel){ .name = "flow", .q = Q_FLOW, .unit = "uL/min",
                                                   .readable = 1, .writable = 1, .min = -1000, .max = 1000 };
    h->devs[1] = (struct rig_device){ .name = "sensor", .n_chans = 1, .first_channel = 1 };
    h->devs[1].chans[0] = (struct driver_channel){ .name = "pressure", .q = Q_PRESSURE, .unit = "mbar",
                                                   .readable = 1, .min = NAN, .max = NAN };
    h->chans[0] = (struct rig_channel){ .name = "pumpA.flow", .device = 0, .q = Q_FLOW, .unit = "uL/min",
                                        .readable = true, .writable = true, .min = -1000, .max = 1000 };
    h->chans[1] = (struct rig_channel){ .name = "sensor.pressure", .device = 1, .q = Q_PRESSURE,
                                        .unit = "mbar", .readable = true, .min = NAN, .max = NAN };
}

/* Load text as a plan and create a runner at virtual time 1000 s. */
static struct harness *setup(const char *text)
{
    struct harness *h = calloc(1, sizeof *h);
    make_rig(h);
    pclock_init_virtual(&h->clk, 1000 * S);
    struct diag d;
    diag_init(&d);
    if (plan_load("t.yaml", text, strlen(text), &h->rig, &h->plan, &d) != 0) {
        diag_print(&d, stderr);
        fail_msg("plan did not load");
    }
    diag_free(&d);
    struct runner_hooks hooks = { h, h_write, h_safe, h_event, h_step, h_finished };
    assert_int_equal(runner_create(&h->runner, h->plan, &h->rig, &h->clk, &hooks), 0);
    return h;
}

/* Start the run at virtual time t (the clock is set there first). */
static void start(struct harness *h, int64_t t)
{
    h->clk.now = t;
    assert_int_equal(runner_start(h->runner, t), 0);
}

static void teardown(struct harness *h)
{
    runner_free(h->runner);
    plan_free(h->plan);
    pclock_free(&h->clk);
    free(h);
}

/* Step the virtual clock until the run finishes or time passes until. */
static void run_until(struct harness *h, int64_t until)
{
    while (!h->finished && pclock_virtual_next(&h->clk) <= until)
        pclock_virtual_step(&h->clk);
}

static void test_set_steps_start_exactly_on_their_deadlines(void **state)
{
    (void)state;
    struct harness *h = setup("perfuse: 1\nname: t\nsteps:\n"
                              "  - {set: {pumpA: 10 uL/min}, for: 5 s}\n"
                              "  - {set: {pumpA: 20 uL/min}, for: 1 h 30 min}\n"
                              "  - {set: {pumpA: 0 uL/min}, for: 250 ms}\n");
    assert_int_equal(h->plan->total_ns, 5 * S + 5400 * S + 250000000LL);
    start(h, 1000 * S);
    run_until(h, INT64_MAX);
    assert_int_equal(h->finished, 1);
    assert_int_equal(h->final, RUN_COMPLETED);
    assert_int_equal(h->safe_states, 1);
    assert_int_equal(h->n_rows, 3);
    double planned[] = { 0, 5, 5405 };
    for (int i = 0; i < 3; i++) {
        assert_float_equal(h->rows[i].planned_start, planned[i], 0);
        assert_float_equal(h->rows[i].start, planned[i], 0);
        assert_string_equal(h->rows[i].outcome, "done");
    }
    assert_float_equal(h->rows[2].end, 5405.25, 1e-9);
    assert_int_equal(h->n_writes, 3);
    assert_int_equal(h->writes[1].planned, 1005 * S);
    assert_float_equal(h->writes[1].v, 20, 0);
    teardown(h);
}

static void test_ramp_values_come_from_the_deadline(void **state)
{
    (void)state;
    struct harness *h = setup("perfuse: 1\nname: t\nsteps:\n"
                              "  - {ramp: {pumpA: [1 uL/min, 11 uL/min]}, over: 10 s, update_rate: 2 Hz}\n");
    start(h, 1000 * S);
    run_until(h, INT64_MAX);
    /* 20 updates at k/2 s for k = 0..19, then the end value at 10 s. */
    assert_int_equal(h->n_writes, 21);
    for (size_t k = 0; k < 20; k++) {
        assert_int_equal(h->writes[k].planned, 1000 * S + (int64_t)k * S / 2);
        assert_float_equal(h->writes[k].v, 1.0 + 10.0 * (double)k / 20.0, 1e-12);
    }
    assert_float_equal(h->writes[20].v, 11.0, 0);
    assert_int_equal(h->writes[20].planned, 1010 * S);
    teardown(h);
}

static void test_pause_mid_ramp_resumes_where_it_stopped_and_ends_late_by_the_pause(void **state)
{
    (void)state;
    struct harness *h = setup("perfuse: 1\nname: t\nsteps:\n"
                              "  - {ramp: {pumpA: [0 uL/min, 100 uL/min]}, over: 100 s}\n"
                              "  - {set: {pumpA: 5 uL/min}, for: 10 s}\n");
    start(h, 1000 * S);
    run_until(h, 1040 * S);
    h->clk.now = 1040 * S + S / 2;
    assert_int_equal(runner_pause(h->runner, "test"), 0);
    size_t before = h->n_writes;
    h->clk.now = 1040 * S + S / 2 + 123 * S;          /* paused for exactly 123 s */
    run_until(h, h->clk.now);
    assert_int_equal(h->n_writes, before);            /* nothing while paused */
    assert_int_equal(runner_resume(h->runner, "test"), 0);
    /* The first value after resuming is the one the ramp had when it paused. */
    assert_float_equal(h->writes[before].v, 40.5, 1e-9);
    run_until(h, INT64_MAX);
    assert_int_equal(h->n_rows, 2);
    assert_float_equal(h->rows[0].end, 100.0 + 123.0, 1e-9);
    assert_float_equal(h->rows[1].planned_start, 223.0, 1e-9);
    assert_float_equal(h->rows[1].start, 223.0, 1e-9);
    /* Later updates stay on the whole-second grid of the shifted ramp. */
    for (size_t i = before + 1; i + 2 < h->n_writes; i++)
        assert_int_equal((h->writes[i].planned - 1000 * S) % (S / 2), 0);
    teardown(h);
}

static void test_nested_repeats_run_every_pass_with_paths(void **state)
{
    (void)state;
    struct harness *h = setup("perfuse: 1\nname: t\nsteps:\n"
                              "  - {set: {pumpA: 1 uL/min}, for: 1 s}\n"
                              "  - repeat: 3\n"
                              "    steps:\n"
                              "      - {set: {pumpA: 2 uL/min}, for: 2 s}\n"
                              "      - repeat: 2\n"
                              "        steps:\n"
                              "          - {name: inner, set: {pumpA: 3 uL/min}, for: 500 ms}\n");
    assert_int_equal(h->plan->total_ns, 1 * S + 3 * (2 * S + 2 * (S / 2)));
    start(h, 0);
    run_until(h, INT64_MAX);
    assert_int_equal(h->n_rows, 1 + 3 * 3);
    assert_string_equal(h->rows[0].path, "1");
    assert_string_equal(h->rows[1].path, "2.1");
    assert_string_equal(h->rows[2].path, "2.2.1");
    assert_string_equal(h->rows[3].path, "2.2.1");
    assert_string_equal(h->rows[4].path, "2.1");
    assert_string_equal(h->rows[3].name, "inner [1/3] [2/2]");
    assert_float_equal(h->rows[9].planned_start, 1 + 2 * 3 + 2 + 0.5, 1e-12);
    assert_float_equal(h->rows[9].end, 10.0, 1e-12);
    teardown(h);
}

static void test_wait_until_shifts_what_follows_by_the_time_it_took(void **state)
{
    (void)state;
    struct harness *h = setup("perfuse: 1\nname: t\nsteps:\n"
                              "  - {set: {pumpA: 1 uL/min}, for: 10 s}\n"
                              "  - {wait_until: sensor.pressure >= 50 mbar, timeout: 1 h}\n"
                              "  - {set: {pumpA: 2 uL/min}, for: 10 s}\n");
    start(h, 0);
    run_until(h, 30 * S);
    assert_int_equal(h->n_rows, 2);
    runner_on_sample(h->runner, 1, 49.9, 30 * S);     /* not yet */
    runner_on_sample(h->runner, 0, 60.0, 30 * S);     /* another channel */
    assert_int_equal(h->n_rows, 2);
    runner_on_sample(h->runner, 1, NAN, 30 * S);      /* unknown never satisfies */
    assert_int_equal(h->n_rows, 2);
    h->clk.now = 37 * S;
    runner_on_sample(h->runner, 1, 50.0, 37 * S);
    assert_int_equal(h->n_rows, 3);
    assert_float_equal(h->rows[1].end, 37.0, 0);
    assert_float_equal(h->rows[2].planned_start, 37.0, 0);
    run_until(h, INT64_MAX);
    assert_float_equal(h->rows[2].end, 47.0, 0);
    teardown(h);
}

static void test_wait_timeout_aborts_by_default(void **state)
{
    (void)state;
    struct harness *h = setup("perfuse: 1\nname: t\nsteps:\n"
                              "  - {wait_until: sensor.pressure > 50 mbar, timeout: 30 s}\n"
                              "  - {set: {pumpA: 2 uL/min}, for: 10 s}\n");
    start(h, 0);
    run_until(h, INT64_MAX);
    assert_int_equal(h->final, RUN_ABORTED);
    assert_int_equal(h->n_rows, 1);
    assert_string_equal(h->rows[0].outcome, "timeout");
    assert_float_equal(h->rows[0].end, 30.0, 0);
    assert_int_equal(h->safe_states, 1);
    teardown(h);
}

static void test_prompt_waits_for_confirm(void **state)
{
    (void)state;
    struct harness *h = setup("perfuse: 1\nname: t\nsteps:\n"
                              "  - {prompt: Replace the reservoir}\n"
                              "  - {set: {pumpA: 2 uL/min}, for: 10 s}\n");
    start(h, 0);
    run_until(h, 1000 * S);
    assert_int_equal(h->n_rows, 1);
    struct runner_status st;
    runner_get_status(h->runner, &st);
    assert_true(st.waiting_prompt);
    assert_string_equal(st.prompt, "Replace the reservoir");
    h->clk.now = 100 * S;
    assert_int_equal(runner_confirm(h->runner, "tester"), 0);
    assert_int_equal(runner_confirm(h->runner, "tester"), -2);
    run_until(h, INT64_MAX);
    assert_float_equal(h->rows[1].start, 100.0, 0);
    assert_int_equal(h->final, RUN_COMPLETED);
    teardown(h);
}

/* A prompt confirmed while the run is paused: the answer is taken (once),
 * nothing moves during the pause, and the run goes on past it at the resume. */
static void test_prompt_confirmed_while_paused_goes_on_at_resume(void **state)
{
    (void)state;
    struct harness *h = setup("perfuse: 1\nname: t\nsteps:\n"
                              "  - {prompt: Replace the reservoir}\n"
                              "  - {set: {pumpA: 2 uL/min}, for: 10 s}\n");
    start(h, 0);
    run_until(h, 1000 * S);
    h->clk.now = 50 * S;
    assert_int_equal(runner_pause(h->runner, "tester"), 0);
    h->clk.now = 60 * S;
    assert_int_equal(runner_confirm(h->runner, "tester"), 0);
    struct runner_status st;
    runner_get_status(h->runner, &st);
    assert_int_equal(st.state, RUN_PAUSED);
    assert_false(st.waiting_prompt);
    assert_true(st.prompt_answered);
    assert_int_equal(runner_confirm(h->runner, "tester"), -2);
    run_until(h, 1000 * S);
    assert_int_equal(h->n_rows, 1);             /* still on the prompt while paused */
    h->clk.now = 100 * S;
    assert_int_equal(runner_resume(h->runner, "tester"), 0);
    assert_int_equal(h->n_rows, 2);
    assert_string_equal(h->rows[0].outcome, "confirmed");
    assert_float_equal(h->rows[0].end, 100.0, 0);
    assert_float_equal(h->rows[1].start, 100.0, 0);
    run_until(h, INT64_MAX);
    assert_int_equal(h->final, RUN_COMPLETED);
    teardown(h);
}

/* Continued after a restart, a step keeps its own path ("2", "3.1"), not the next one's. */
static void test_a_continued_step_keeps_its_path(void **state)
{
    (void)state;
    const char *text = "perfuse: 1\nname: t\nsteps:\n"
                       "  - {set: {pumpA: 1 uL/min}, for: 10 s}\n"
                       "  - {prompt: Replace the reservoir}\n"
                       "  - repeat: 2\n"
                       "    steps:\n"
                       "      - {prompt: Look}\n"
                       "      - {set: {pumpA: 2 uL/min}, for: 10 s}\n";
    struct harness *h = setup(text);
    start(h, 0);
    run_until(h, 1000 * S);
    struct runner_pos pos;
    assert_true(runner_get_pos(h->runner, &pos));
    struct harness *g = setup(text);
    assert_int_equal(runner_start_at(g->runner, 0, &pos, 0), 0);
    struct runner_status st;
    runner_get_status(g->runner, &st);
    assert_string_equal(st.step_path, "2");
    assert_string_equal(g->rows[pos.step_index].path, "2");
    assert_int_equal(runner_confirm(g->runner, "tester"), 0);
    run_until(g, 2000 * S);
    runner_get_status(g->runner, &st);
    assert_string_equal(st.step_path, "3.1");
    assert_true(runner_get_pos(g->runner, &pos));
    struct harness *k = setup(text);
    assert_int_equal(runner_start_at(k->runner, 0, &pos, 0), 0);
    runner_get_status(k->runner, &st);
    assert_string_equal(st.step_path, "3.1");
    assert_string_equal(st.step_name, "prompt (line 8) [1/2]");
    teardown(k);
    teardown(g);
    teardown(h);
}

static void test_waveform_follows_its_shape_and_ends_at_the_mean(void **state)
{
    (void)state;
    struct harness *h = setup("perfuse: 1\nname: t\nsteps:\n"
                              "  - waveform: {pumpA: {shape: sine, mean: 10 uL/min, amplitude: 5 uL/min, period: 1 s}}\n"
                              "    for: 2 s\n");
    start(h, 0);
    run_until(h, INT64_MAX);
    assert_int_equal(h->n_writes, 21);
    for (size_t k = 0; k < 20; k++)
        assert_float_equal(h->writes[k].v, 10 + 5 * sin(2 * M_PI * (double)k / 10.0), 1e-9);
    assert_float_equal(h->writes[20].v, 10.0, 0);
    teardown(h);
}

static void test_abort_applies_safe_state_and_closes_the_step(void **state)
{
    (void)state;
    struct harness *h = setup("perfuse: 1\nname: t\nsteps:\n"
                              "  - {set: {pumpA: 1 uL/min}, for: 10 s}\n");
    start(h, 0);
    h->clk.now = 4 * S;
    assert_int_equal(runner_abort(h->runner, "test"), 0);
    assert_int_equal(h->final, RUN_ABORTED);
    assert_int_equal(h->safe_states, 1);
    assert_string_equal(h->rows[0].outcome, "aborted");
    assert_float_equal(h->rows[0].end, 4.0, 0);
    assert_false(pclock_virtual_next(&h->clk) < INT64_MAX);
    assert_int_equal(runner_abort(h->runner, "again"), -22);
    teardown(h);
}

/* At every event (the owner journals the position at pause and resume) the
 * step's start is the shift plus the fixed time before it, as a restart checks. */
static void test_the_position_is_whole_at_every_event(void **state)
{
    (void)state;
    struct harness *h = setup("perfuse: 1\nname: t\nsteps:\n"
                              "  - {set: {pumpA: 1 uL/min}, for: 5 s}\n"
                              "  - {ramp: {pumpA: [1 uL/min, 9 uL/min]}, over: 10 s}\n"
                              "  - {wait_until: sensor.pressure > 5 mbar, timeout: 5 s, on_timeout: continue}\n"
                              "  - {set: {pumpA: 2 uL/min}, for: 5 s}\n");
    start(h, 0);
    run_until(h, 7 * S);
    h->clk.now = 7 * S;
    assert_int_equal(runner_pause(h->runner, "test"), 0);
    h->clk.now = 7 * S + 20000000;
    assert_int_equal(runner_resume(h->runner, "test"), 0);
    run_until(h, 17 * S);
    h->clk.now = 17 * S;
    assert_int_equal(runner_pause(h->runner, "test"), 0);
    h->clk.now = 19 * S;
    assert_int_equal(runner_resume(h->runner, "test"), 0);
    run_until(h, INT64_MAX);
    assert_int_equal(h->final, RUN_COMPLETED);
    assert_int_equal(h->torn_positions, 0);
    teardown(h);
}

/* next ends a fixed step now: what follows starts then, the unused time comes
 * off the plan, and the row says "skipped". Refused while paused. */
static void test_next_ends_the_step_now_and_the_plan_moves_up(void **state)
{
    (void)state;
    struct harness *h = setup("perfuse: 1\nname: t\nsteps:\n"
                              "  - {set: {pumpA: 1 uL/min}, for: 1 h}\n"
                              "  - {set: {pumpA: 2 uL/min}, for: 10 s}\n"
                              "  - {set: {pumpA: 3 uL/min}, for: 10 s}\n");
    start(h, 0);
    run_until(h, 60 * S);
    h->clk.now = 60 * S;
    assert_int_equal(runner_pause(h->runner, "test"), 0);
    assert_int_equal(runner_next(h->runner, "tester"), -EAGAIN);
    assert_int_equal(runner_resume(h->runner, "test"), 0);
    assert_int_equal(runner_next(h->runner, "tester"), 0);
    assert_int_equal(h->n_rows, 2);
    assert_string_equal(h->rows[0].outcome, "skipped");
    assert_float_equal(h->rows[0].end, 60.0, 0);
    assert_float_equal(h->rows[1].start, 60.0, 0);
    struct runner_status st;
    runner_get_status(h->runner, &st);
    assert_int_equal(st.planned_total_ns - st.run_elapsed_ns, 20 * S);  /* ETA: the 20 s left */
    run_until(h, INT64_MAX);
    assert_int_equal(h->final, RUN_COMPLETED);
    assert_float_equal(h->rows[2].start, 70.0, 0);
    assert_float_equal(h->rows[2].end, 80.0, 0);
    assert_int_equal(h->torn_positions, 0);
    bool seen = false;
    for (size_t i = 0; i < h->n_events; i++)
        seen |= strcmp(h->events[i], "step_skipped") == 0;
    assert_true(seen);
    teardown(h);
}

/* extend lengthens the step (also while paused); the rest follows it, and a
 * wait's timeout moves; a wait without one refuses. */
static void test_extend_lengthens_the_step_and_what_follows_moves(void **state)
{
    (void)state;
    struct harness *h = setup("perfuse: 1\nname: t\nsteps:\n"
                              "  - {set: {pumpA: 1 uL/min}, for: 10 s}\n"
                              "  - {wait_until: sensor.pressure > 50 mbar, timeout: 30 s, on_timeout: continue}\n"
                              "  - {set: {pumpA: 2 uL/min}, for: 10 s}\n"
                              "  - {wait_until: sensor.pressure > 50 mbar}\n");
    start(h, 0);
    run_until(h, 5 * S);
    h->clk.now = 5 * S;
    assert_int_equal(runner_extend(h->runner, 0, "tester"), -EINVAL);
    assert_int_equal(runner_extend(h->runner, 20 * S, "tester"), 0);
    struct runner_status st;
    runner_get_status(h->runner, &st);
    assert_int_equal(st.step_duration_ns, 30 * S);
    assert_int_equal(st.extend_ns, 20 * S);
    run_until(h, 29 * S);
    assert_int_equal(h->n_rows, 1);                     /* not ended at 10 s */
    run_until(h, 40 * S);
    assert_int_equal(h->n_rows, 2);
    assert_float_equal(h->rows[0].end, 30.0, 0);
    assert_float_equal(h->rows[1].start, 30.0, 0);
    h->clk.now = 40 * S;
    assert_int_equal(runner_pause(h->runner, "test"), 0);
    assert_int_equal(runner_extend(h->runner, 15 * S, "tester"), 0);   /* while paused */
    runner_get_status(h->runner, &st);
    assert_int_equal(st.timeout_ns, 45 * S);
    assert_string_equal(st.pause_reason, "test");
    assert_string_equal(st.cond_text, "sensor.pressure > 50 mbar");
    assert_int_equal(st.cond_channel, 1);
    h->clk.now = 50 * S;
    assert_int_equal(runner_resume(h->runner, "test"), 0);
    run_until(h, INT64_MAX - 1);
    assert_int_equal(h->n_rows, 4);
    assert_string_equal(h->rows[1].outcome, "timeout");
    assert_float_equal(h->rows[1].end, 75.0, 0);         /* 30 + 30 s + 15 s extended */
    assert_float_equal(h->rows[2].end, 85.0, 0);
    assert_int_equal(runner_extend(h->runner, S, "tester"), -EINVAL);   /* no timeout to move */
    assert_int_equal(h->torn_positions, 0);
    struct runner_pos pos;
    assert_true(runner_get_pos(h->runner, &pos));
    assert_int_equal(pos.extend_ns, 0);
    teardown(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_steps_start_exactly_on_their_deadlines),
        cmocka_unit_test(test_ramp_values_come_from_the_deadline),
        cmocka_unit_test(test_pause_mid_ramp_resumes_where_it_stopped_and_ends_late_by_the_pause),
        cmocka_unit_test(test_nested_repeats_run_every_pass_with_paths),
        cmocka_unit_test(test_wait_until_shifts_what_follows_by_the_time_it_took),
        cmocka_unit_test(test_wait_timeout_aborts_by_default),
        cmocka_unit_test(test_prompt_waits_for_confirm),
        cmocka_unit_test(test_prompt_confirmed_while_paused_goes_on_at_resume),
        cmocka_unit_test(test_a_continued_step_keeps_its_path),
        cmocka_unit_test(test_waveform_follows_its_shape_and_ends_at_the_mean),
        cmocka_unit_test(test_abort_applies_safe_state_and_closes_the_step),
        cmocka_unit_test(test_the_position_is_whole_at_every_event),
        cmocka_unit_test(test_next_ends_the_step_now_and_the_plan_moves_up),
        cmocka_unit_test(test_extend_lengthens_the_step_and_what_follows_moves),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
