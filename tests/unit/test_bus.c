/*
 * The bus thread with a scripted driver: the order of queued work (safety,
 * then setpoints, then samples; a newer setpoint replaces a queued one; a
 * safety action drops the setpoints queued before it for its device), a
 * dead device on a shared line (faulted after a few failures, then probed at
 * a doubling interval, costing its neighbour at most one timeout per probe,
 * and complaining in the log at most once per interval), its recovery, and
 * never a number for a read that failed, and an owner that stops taking
 * notes: samples are dropped oldest first, writes, faults, recoveries and
 * link news never; and a setpoint handed ahead leaves at its deadline, not
 * before, with reads kept out of its way.
 *
 * The link is a real pty that the driver never uses: the bus opens it like
 * any serial line, and the driver's answers come from the script.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "drivers/bus.h"
#include "drivers/note_queue.h"
#include "pty_pair.h"
#include "base/timeutil.h"

#define WAIT_MS 5000                /* the longest any test waits for the bus */
#define MAX_OPS 256
#define MAX_NOTES 4096

/* A scripted device. */
struct fake_dev {
    const char *name;
    bool fail;                      /* reads time out */
    int timeout_ms;                 /* how long a read that times out takes */
    int read_ms;                    /* how long a read that answers takes */
    int reads;                      /* read attempts so far */
};

/* What the driver was asked to do, in order, and the notes the bus sent back. */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool gate;                      /* while set, a read waits at the gate */
    bool at_gate;                   /* a read is waiting there */
    char ops[MAX_OPS][40];
    size_t n_ops;
    struct bus_note notes[MAX_NOTES];
    size_t n_notes;
    struct bus *bus;
} W = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

/* Record one operation (bus thread). */
static void record(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&W.lock);
    if (W.n_ops < MAX_OPS)
        vsnprintf(W.ops[W.n_ops++], sizeof W.ops[0], fmt, ap);
    pthread_cond_broadcast(&W.cond);
    pthread_mutex_unlock(&W.lock);
    va_end(ap);
}

/* Spend ms as a device on a slow line would (the bus thread's time, not a wait for an event). */
static void line_time(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Read: wait at the gate if it is set, then answer or time out. A failed
 * read leaves a number in *value on purpose: the bus must not pass it on. */
static int fake_read(void *state, struct bus_link *link, size_t ch, double *value)
{
    struct fake_dev *d = state;
    pthread_mutex_lock(&W.lock);
    d->reads++;
    while (W.gate) {
        W.at_gate = true;
        pthread_cond_broadcast(&W.cond);
        pthread_cond_wait(&W.cond, &W.lock);
    }
    W.at_gate = false;
    bool fail = d->fail;
    pthread_mutex_unlock(&W.lock);
    record("read %s.%zu", d->name, ch);
    *value = fail ? 0.0 : 40.0 + (double)ch;
    if (fail) {
        line_time(d->timeout_ms);
        link_seterr(link, "%s: no reply", d->name);
        return -ETIMEDOUT;
    }
    line_time(d->read_ms);
    return 0;
}

/* Write: record it. */
static int fake_write(void *state, struct bus_link *link, size_t ch, double value)
{
    (void)link;
    record("write %s.%zu=%g", ((struct fake_dev *)state)->name, ch, value);
    return 0;
}

/* Safe state: record it. */
static int fake_safe(void *state, struct bus_link *link)
{
    (void)link;
    record("safe %s", ((struct fake_dev *)state)->name);
    return 0;
}

/* Nothing to free: the devices are the test's. */
static void fake_close(void *state)
{
    (void)state;
}

static const struct driver_ops fake_driver = {
    .name = "fake", .bus_types = "serial", .read = fake_read, .write = fake_write,
    .safe_state = fake_safe, .close = fake_close,
};

/* Channels: 0 a measurement, 1 a setpoint that reads back, 2 a setpoint. */
static const struct driver_channel chans[3] = {
    { .name = "value", .readable = 1 },
    { .name = "a", .readable = 1, .writable = 1 },
    { .name = "b", .writable = 1 },
};

/* The bus's notify(): collect its notes (bus thread). */
static void on_notes(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&W.lock);
    size_t room = MAX_NOTES - W.n_notes;
    W.n_notes += bus_take_notes(W.bus, W.notes + W.n_notes, room);
    pthread_cond_broadcast(&W.cond);
    pthread_mutex_unlock(&W.lock);
}

/* Start a bus over a pty with the devices, each sampling channel 0 at hz. */
static void start_bus(struct fake_dev *devs, size_t n, const double *hz, struct link_config *lc,
                      struct pty *pty)
{
    pty_open(pty);
    *lc = (struct link_config){ .name = "line", .type = LINK_SERIAL, .port = pty->path, .baud = 9600,
                                .parity = 'N', .data_bits = 8, .stop_bits = 1, .timeout_ms = 100 };
    struct bus_device_cfg cfg[4];
    assert_true(n <= 4);
    for (size_t i = 0; i < n; i++)
        cfg[i] = (struct bus_device_cfg){ .name = devs[i].name, .drv = &fake_driver,
                                          .state = &devs[i], .chans = chans, .n_chans = 3,
                                          .sample_hz = hz, .first_id = (uint32_t)(10 * i) };
    W.n_ops = W.n_notes = 0;
    assert_int_equal(bus_create(&W.bus, lc, cfg, n, on_notes, NULL), 0);
    assert_int_equal(bus_start(W.bus), 0);
}

/* Wait (bounded) until pred holds; W.lock is held while pred runs. */
static bool wait_for(bool (*pred)(void *), void *arg)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += WAIT_MS / 1000;
    pthread_mutex_lock(&W.lock);
    bool ok;
    while (!(ok = pred(arg)) && pthread_cond_timedwait(&W.cond, &W.lock, &ts) == 0)
        ;
    pthread_mutex_unlock(&W.lock);
    return ok;
}

/* Whether a read waits at the gate. */
static bool read_at_gate(void *arg)
{
    (void)arg;
    return W.at_gate;
}

/* Whether at least *(size_t *)arg operations were recorded. */
static bool ops_at_least(void *arg)
{
    return W.n_ops >= *(size_t *)arg;
}

/* Whether a note of kind *(int *)arg came. */
static bool note_came(void *arg)
{
    for (size_t i = 0; i < W.n_notes; i++)
        if ((int)W.notes[i].kind == *(int *)arg)
            return true;
    return false;
}

/* Whether a WRITE note with err -ECANCELED and tag *arg came back. */
static bool cancelled_note(void *arg)
{
    for (size_t i = 0; i < W.n_notes; i++)
        if (W.notes[i].kind == BUS_NOTE_WRITE && W.notes[i].err == -ECANCELED &&
            W.notes[i].tag == *(uint64_t *)arg)
            return true;
    return false;
}

static void test_safety_then_setpoints_then_samples(void **state)
{
    (void)state;
    struct fake_dev devs[2] = { { .name = "pump" }, { .name = "valve" } };
    const double hz[3] = { 5, 0, 0 };
    struct link_config lc;
    struct pty pty;
    W.gate = true;
    start_bus(devs, 2, hz, &lc, &pty);
    assert_true(wait_for(read_at_gate, NULL));
    /* While the bus is busy with a read, work piles up in the wrong order. */
    assert_int_equal(bus_write(W.bus, 1, 1, 1.0, BUS_PRIO_SETPOINT, 0, 1), 0);
    assert_int_equal(bus_write(W.bus, 1, 2, 3.0, BUS_PRIO_SETPOINT, 0, 3), 0);
    assert_int_equal(bus_write(W.bus, 1, 1, 2.0, BUS_PRIO_SETPOINT, 0, 2), 0);
    assert_int_equal(bus_write(W.bus, 0, 1, 7.0, BUS_PRIO_SETPOINT, 0, 7), 0);
    assert_int_equal(bus_safe_state(W.bus, 0, 9), 0);
    assert_int_equal(bus_write(W.bus, 0, 2, 8.0, BUS_PRIO_SETPOINT, 0, 8), 0);
    /* The pump's setpoint queued before its safe state is dropped at once, and said so. */
    uint64_t tag7 = 7;
    assert_true(wait_for(cancelled_note, &tag7));
    pthread_mutex_lock(&W.lock);
    W.gate = false;
    pthread_cond_broadcast(&W.cond);
    pthread_mutex_unlock(&W.lock);
    size_t want = 5;    /* the gated read, then the safe state and three writes */
    assert_true(wait_for(ops_at_least, &want));
    bus_free(W.bus);
    pty_close(&pty);
    assert_string_equal(W.ops[1], "safe pump");
    /* The newer setpoint for valve.1 replaced the queued one, in its place;
     * pump.1=7 never went out (it would have undone the safe state), and the
     * setpoint queued after the safe state follows it. */
    assert_string_equal(W.ops[2], "write valve.1=2");
    assert_string_equal(W.ops[3], "write valve.2=3");
    assert_string_equal(W.ops[4], "write pump.2=8");
    for (size_t i = 5; i < W.n_ops; i++)
        assert_true(strncmp(W.ops[i], "read ", 5) == 0);
    for (size_t i = 0; i < W.n_notes; i++)
        if (W.notes[i].kind == BUS_NOTE_WRITE)
            assert_true(W.notes[i].err == 0 ? W.notes[i].tag == 9 || W.notes[i].tag == 2 ||
                                                  W.notes[i].tag == 3 || W.notes[i].tag == 8
                                            : W.notes[i].err == -ECANCELED && W.notes[i].tag == 7 &&
                                                  W.notes[i].channel == 1 && W.notes[i].value == 7.0);
}

/* Whether *(size_t *)arg successful WRITE notes came. */
static bool writes_done(void *arg)
{
    size_t n = 0;
    for (size_t i = 0; i < W.n_notes; i++)
        n += W.notes[i].kind == BUS_NOTE_WRITE && W.notes[i].err == 0;
    return n >= *(size_t *)arg;
}

static void test_a_setpoint_handed_ahead_leaves_at_its_deadline_past_busy_reads(void **state)
{
    (void)state;
    /* Reads of 30 ms at 20 Hz keep the line 60 % busy: a setpoint that had to
     * wait for the read in flight would often be late by tens of ms. */
    struct fake_dev devs[1] = { { .name = "pump", .read_ms = 30 } };
    const double hz[3] = { 20, 0, 0 };
    struct link_config lc;
    struct pty pty;
    start_bus(devs, 1, hz, &lc, &pty);
    size_t warm = 6;
    assert_true(wait_for(ops_at_least, &warm));     /* the bus knows how long a read takes */
    const int n = 8;
    int64_t base = (int64_t)time_mono_ns() + 60 * NS_PER_MS;
    for (int i = 0; i < n; i++)     /* deadlines at odd phases of the read schedule */
        assert_int_equal(bus_write(W.bus, 0, 2, i, BUS_PRIO_SETPOINT, base + i * 77 * NS_PER_MS,
                                   100 + (uint64_t)i), 0);
    size_t want = (size_t)n;
    assert_true(wait_for(writes_done, &want));
    bus_free(W.bus);
    pty_close(&pty);
    int64_t worst = 0;
    for (size_t i = 0; i < W.n_notes; i++) {
        const struct bus_note *w = &W.notes[i];
        if (w->kind != BUS_NOTE_WRITE)
            continue;
        assert_int_equal(w->err, 0);
        assert_true(w->sent_ns >= w->planned_ns);           /* never early */
        if (w->sent_ns - w->planned_ns > worst)
            worst = w->sent_ns - w->planned_ns;
    }
    print_message("setpoints handed ahead: worst %.2f ms after the deadline\n", worst / 1e6);
    /* Late only by the wake-up, not by a read (30 ms); loose for a loaded machine. */
    assert_true(worst < 10 * NS_PER_MS);
}

static void test_a_dead_device_is_backed_off_alone_and_comes_back(void **state)
{
    (void)state;
    /* The device that dies has two channels due together and, dead, a 200 ms timeout. */
    struct fake_dev devs[2] = { { .name = "dead", .timeout_ms = 200 }, { .name = "alive" } };
    const double hz[3] = { 20, 20, 0 };
    struct link_config lc;
    struct pty pty;
    W.gate = false;
    /* The bus's log lines go to a file, to be counted. */
    FILE *log = tmpfile();
    assert_non_null(log);
    int saved_stderr = dup(STDERR_FILENO);
    assert_true(saved_stderr >= 0 && dup2(fileno(log), STDERR_FILENO) >= 0);
    start_bus(devs, 2, hz, &lc, &pty);
    /* Both answer for a while, then one dies. */
    size_t want = 20;
    assert_true(wait_for(ops_at_least, &want));
    pthread_mutex_lock(&W.lock);
    devs[0].fail = true;
    int reads_before = devs[0].reads;
    uint64_t t0 = time_mono_ns();
    pthread_mutex_unlock(&W.lock);
    int kind = BUS_NOTE_DEVICE_FAULT;
    assert_true(wait_for(note_came, &kind));
    /* A window of the faulted state: the neighbour's rate is measured over it. */
    line_time(2500);
    pthread_mutex_lock(&W.lock);
    int dead_reads = devs[0].reads - reads_before;
    devs[0].fail = false;
    pthread_mutex_unlock(&W.lock);
    double window = (double)(time_mono_ns() - t0) / 1e9;
    kind = BUS_NOTE_DEVICE_OK;
    assert_true(wait_for(note_came, &kind));
    bus_free(W.bus);
    pty_close(&pty);
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
    double secs = (double)(time_mono_ns() - t0) / 1e9;
    int64_t from = (int64_t)t0;

    /* Three failures, one per cycle, make the fault; then probes 0.5, 1 and
     * 2 s apart. Retried at its sample rate it would have been read over 20
     * times. */
    print_message("dead device: %d reads in its first %.1f s dead\n", dead_reads, window);
    assert_in_range(dead_reads, 4, 7);

    int faults = 0, recovered = 0;
    int64_t last_alive = 0, max_gap = 0;
    size_t alive = 0;
    for (size_t i = 0; i < W.n_notes; i++) {
        const struct bus_note *n = &W.notes[i];
        faults += n->kind == BUS_NOTE_DEVICE_FAULT;
        assert_false(n->kind == BUS_NOTE_DEVICE_FAULT && n->device != 0);
        recovered += n->kind == BUS_NOTE_DEVICE_OK;
        if (n->kind != BUS_NOTE_SAMPLE)
            continue;
        if (n->device == 0) {
            /* Never a number for a read that failed, whatever the driver left. */
            assert_true(n->err == 0 ? n->value == 40.0 + (double)n->channel : isnan(n->value));
            continue;
        }
        assert_int_equal(n->err, 0);
        assert_true(n->value == 40.0 + (double)(n->channel - 10));
        if (n->channel != 10)
            continue;       /* the gaps of channel 0, from the death on */
        if (n->t_ns >= from && last_alive != 0 && n->t_ns - last_alive > max_gap)
            max_gap = n->t_ns - last_alive;
        last_alive = n->t_ns;
        alive += n->t_ns >= from;
    }
    assert_int_equal(faults, 1);
    assert_int_equal(recovered, 1);

    /* Every failed probe was a complaint; the log got one line for them all. */
    char line[256];
    int complaints = 0;
    rewind(log);
    while (fgets(line, sizeof line, log) != NULL)
        complaints += strstr(line, "dead: no reply") != NULL;
    fclose(log);
    print_message("log: %d line(s) for %d failed reads\n", complaints, dead_reads);
    assert_int_equal(complaints, 1);
    /* The neighbour kept sampling: a gap is at most its period plus one
     * timeout (50 + 200 ms), with room for a loaded machine; a timeout per
     * channel of the dead device would make it 450 ms. */
    print_message("alive device: %zu samples in %.1f s (%.1f Hz of 20), longest gap %.0f ms\n",
                  alive, secs, (double)alive / secs, (double)max_gap / 1e6);
    assert_true(max_gap < 370 * NS_PER_MS);
    assert_true((double)alive / secs > 20 * 0.7);
}

static void test_a_full_queue_drops_samples_oldest_first_and_nothing_else(void **state)
{
    (void)state;
    struct note_queue q;
    note_queue_init(&q, 4);
    /* Full: a write's outcome, a sample, a device fault, a sample. */
    assert_int_equal(note_queue_push(&q, &(struct bus_note){ .kind = BUS_NOTE_WRITE, .channel = 1 }), 0);
    assert_int_equal(note_queue_push(&q, &(struct bus_note){ .kind = BUS_NOTE_SAMPLE, .channel = 2 }), 0);
    assert_int_equal(note_queue_push(&q, &(struct bus_note){ .kind = BUS_NOTE_DEVICE_FAULT, .channel = 3 }), 0);
    assert_int_equal(note_queue_push(&q, &(struct bus_note){ .kind = BUS_NOTE_SAMPLE, .channel = 4 }), 0);
    /* A recovery makes room by dropping the oldest sample (2), not the write in front. */
    assert_int_equal(note_queue_push(&q, &(struct bus_note){ .kind = BUS_NOTE_DEVICE_OK, .channel = 5 }), 1);
    /* A newer sample drops the next oldest sample (4). */
    assert_int_equal(note_queue_push(&q, &(struct bus_note){ .kind = BUS_NOTE_SAMPLE, .channel = 6 }), 1);
    /* Link news drops the last sample (6): now only notes that are never dropped are queued. */
    assert_int_equal(note_queue_push(&q, &(struct bus_note){ .kind = BUS_NOTE_LINK_DOWN, .channel = 7 }), 1);
    /* A sample with no older sample to drop is itself dropped... */
    assert_int_equal(note_queue_push(&q, &(struct bus_note){ .kind = BUS_NOTE_SAMPLE, .channel = 8 }), 1);
    /* ...and a write's outcome, a fault and link news are kept beyond the limit. */
    assert_int_equal(note_queue_push(&q, &(struct bus_note){ .kind = BUS_NOTE_WRITE, .channel = 9 }), 0);
    assert_int_equal(note_queue_push(&q, &(struct bus_note){ .kind = BUS_NOTE_LINK_UP, .channel = 10 }), 0);

    static const struct { enum bus_note_kind kind; uint32_t channel; } want[] = {
        { BUS_NOTE_WRITE, 1 }, { BUS_NOTE_DEVICE_FAULT, 3 }, { BUS_NOTE_DEVICE_OK, 5 },
        { BUS_NOTE_LINK_DOWN, 7 }, { BUS_NOTE_WRITE, 9 }, { BUS_NOTE_LINK_UP, 10 },
    };
    struct bus_note out[16];
    size_t n = note_queue_take(&q, out, 2);
    n += note_queue_take(&q, out + n, 16 - n);
    assert_int_equal(n, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < n; i++) {
        if (out[i].kind != want[i].kind || out[i].channel != want[i].channel)
            fail_msg("note %zu: kind %d channel %u, want kind %d channel %u", i, (int)out[i].kind,
                     out[i].channel, (int)want[i].kind, want[i].channel);
    }
    assert_int_equal(note_queue_take(&q, out, 16), 0);

    /* Drained, the queue holds samples again, oldest first. */
    for (uint32_t ch = 20; ch < 26; ch++)
        note_queue_push(&q, &(struct bus_note){ .kind = BUS_NOTE_SAMPLE, .channel = ch });
    n = note_queue_take(&q, out, 16);
    assert_int_equal(n, 4);
    assert_int_equal(out[0].channel, 22);
    assert_int_equal(out[3].channel, 25);
    note_queue_free(&q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_safety_then_setpoints_then_samples),
        cmocka_unit_test(test_a_dead_device_is_backed_off_alone_and_comes_back),
        cmocka_unit_test(test_a_full_queue_drops_samples_oldest_first_and_nothing_else),
        cmocka_unit_test(test_a_setpoint_handed_ahead_leaves_at_its_deadline_past_busy_reads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
