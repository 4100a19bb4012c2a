/*
 * Hamilton MVP valves: reply framing with recorded good, bad and partial
 * replies, the small parsers, the rig entry, what only the valves do (a write
 * that initialises a valve after a power cut, a hint for a line set up
 * wrong) and the driver against the simulator's independent valve
 * implementation. The steps every serial driver shares (exact bytes,
 * refusals, bad replies, a closed line, bad rig entries...) are in
 * test_driver_contract.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config_errors.h"
#include "drivers/driver.h"
#include "drivers/hamilton.h"
#include "drivers/sim/sim_hamilton.h"
#include "pty_rig.h"
#include "pty_script.h"
#include "sim_responder.h"

#define LINK_TIMEOUT_MS 100
#define UNTOUCHED 12345.0
#define N(a) (sizeof a / sizeof a[0])

/* ------------------------------------------------------------------------ */
/* Reply framing                                                            */
/* ------------------------------------------------------------------------ */

/* A recorded reply and what parsing it must give. */
struct reply_case {
    const char *bytes;
    int rc;             /* bytes consumed, 0 (incomplete) or -EBADMSG */
    char address;
    const char *echo;
    bool ack;
    const char *data;
};

static const struct reply_case reply_cases[] = {
    /* the echo, then the answer */
    { "aLQP\r\x06" "3\r", 8, 'a', "LQP", true, "3" },
    { "aF\r\x06" "Y\r", 6, 'a', "F", true, "Y" },
    { "aF\r\x06" "*\r", 6, 'a', "F", true, "*" },
    { "bLXR\r\x06\r", 7, 'b', "LXR", true, "" },
    { "aE2\r\x06" "P@PP\r", 10, 'a', "E2", true, "P@PP" },
    { "aLQP\r\x06" "12\r", 9, 'a', "LQP", true, "12" },
    { "pLQT\r\x06" "3\r", 8, 'p', "LQT", true, "3" },
    /* refused */
    { "aLP07R\r\x15\r", 9, 'a', "LP07R", false, "" },
    { "aXYZ\r\x15\r", 7, 'a', "XYZ", false, "" },
    /* an answer without an echo */
    { "\x06" "Y\r", 3, 0, "", true, "Y" },
    { "\x15\r", 2, 0, "", false, "" },
    /* CR LF line ends and empty lines are skipped */
    { "aF\r\n\x06" "Y\r\n", 7, 'a', "F", true, "Y" },
    { "\r\r\naF\r\x06" "Y\r", 9, 'a', "F", true, "Y" },
    /* an echo that got no answer is replaced by the next one */
    { "aF\raLQP\r\x06" "2\r", 11, 'a', "LQP", true, "2" },
    /* two exchanges: the first only */
    { "bF\r\x06" "*\raF\r\x06" "Y\r", 6, 'b', "F", true, "*" },
    /* incomplete: nothing yet */
    { "", 0, 0, NULL, false, NULL },
    { "aLQ", 0, 0, NULL, false, NULL },
    { "aLQP\r", 0, 0, NULL, false, NULL },
    { "aLQP\r\x06" "3", 0, 0, NULL, false, NULL },
    { "\r\n\r", 0, 0, NULL, false, NULL },
    /* malformed */
    { "ALQP\r\x06" "3\r", -EBADMSG, 0, NULL, false, NULL },      /* an upper-case address */
    { "3\r", -EBADMSG, 0, NULL, false, NULL },
    { "\x01\x02junk\r", -EBADMSG, 0, NULL, false, NULL },
    { "aLQP\r\x06\x01" "3\r", -EBADMSG, 0, NULL, false, NULL },   /* a control byte in the data */
    { "aLQP\r\x06\xff\r", -EBADMSG, 0, NULL, false, NULL },
    { "aL\x7fQP\r\x06" "3\r", -EBADMSG, 0, NULL, false, NULL },
    { "aLQP\r\x06" "0123456789012345678901234567890123\r", -EBADMSG, 0, NULL, false, NULL },
};

static void test_recorded_replies_parse_or_are_refused(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(reply_cases); i++) {
        const struct reply_case *c = &reply_cases[i];
        struct hamilton_reply r;
        int rc = hamilton_parse_reply(c->bytes, strlen(c->bytes), &r);
        if (rc != c->rc)
            fail_msg("reply case %zu: rc %d, want %d", i, rc, c->rc);
        if (rc <= 0)
            continue;
        assert_int_equal(r.address, c->address);
        assert_string_equal(r.echo, c->echo);
        assert_int_equal(r.ack, c->ack);
        assert_string_equal(r.data, c->data);
    }
    struct hamilton_reply r;
    assert_int_equal(hamilton_parse_reply(NULL, 0, &r), 0);
}

static void test_every_prefix_of_a_reply_is_incomplete(void **state)
{
    (void)state;
    const char *whole = "\r\nbLQP\r\x06" "7\r";
    struct hamilton_reply r;
    for (size_t n = 0; n < strlen(whole); n++)
        assert_int_equal(hamilton_parse_reply(whole, n, &r), 0);
    assert_int_equal(hamilton_parse_reply(whole, strlen(whole), &r), (int)strlen(whole));
    assert_int_equal(r.address, 'b');
    assert_string_equal(r.data, "7");
}

static void test_move_commands_and_directions(void **state)
{
    (void)state;
    char b[16];
    assert_int_equal(hamilton_move_command(3, false, b, sizeof b), 0);
    assert_string_equal(b, "LP03R");
    assert_int_equal(hamilton_move_command(5, true, b, sizeof b), 0);
    assert_string_equal(b, "LP15R");
    assert_int_equal(hamilton_move_command(12, false, b, sizeof b), 0);
    assert_string_equal(b, "LP012R");
    assert_int_equal(hamilton_move_command(0, false, b, sizeof b), -ERANGE);
    assert_int_equal(hamilton_move_command(100, false, b, sizeof b), -ERANGE);
    assert_int_equal(hamilton_move_command(3, false, b, 5), -ERANGE);     /* "LP03R" needs 6 */
    /* port numbers rise clockwise; a tie goes clockwise */
    static const struct { int from, to, ports; bool ccw; } d[] = {
        { 1, 2, 6, false }, { 2, 1, 6, true }, { 1, 4, 6, false }, { 1, 5, 6, true },
        { 5, 1, 6, false }, { 6, 1, 6, false }, { 1, 6, 6, true }, { 3, 3, 6, false },
        { 1, 5, 8, false }, { 1, 6, 8, true }, { 8, 2, 8, false }, { 2, 8, 8, true },
        { 1, 2, 2, false }, { 2, 1, 2, false }, { 0, 1, 6, false }, { 1, 2, 1, false },
    };
    for (size_t i = 0; i < N(d); i++)
        if (hamilton_shortest_ccw(d[i].from, d[i].to, d[i].ports) != d[i].ccw)
            fail_msg("direction case %zu: %d -> %d of %d", i, d[i].from, d[i].to, d[i].ports);
}

static void test_answers_parse_or_are_refused(void **state)
{
    (void)state;
    char st = 0;
    const char *good_done = "Y*N";
    for (const char *p = good_done; *p; p++) {
        char s[2] = { *p, '\0' };
        assert_int_equal(hamilton_parse_done(s, &st), 0);
        assert_int_equal(st, *p);
    }
    const char *bad_done[] = { "", "y", "YY", "?", "1" };
    for (size_t i = 0; i < N(bad_done); i++)
        assert_int_equal(hamilton_parse_done(bad_done[i], &st), -EBADMSG);
    assert_int_equal(hamilton_parse_done(NULL, &st), -EBADMSG);

    int port = 0;
    assert_int_equal(hamilton_parse_position("3", &port), 0);
    assert_int_equal(port, 3);
    assert_int_equal(hamilton_parse_position("12", &port), 0);
    assert_int_equal(port, 12);
    assert_int_equal(hamilton_parse_position("06", &port), 0);
    assert_int_equal(port, 6);
    const char *bad_pos[] = { "", "0", "00", "123", "3a", "-1", " 3", "x" };
    for (size_t i = 0; i < N(bad_pos); i++)
        assert_int_equal(hamilton_parse_position(bad_pos[i], &port), -EBADMSG);

    unsigned bits = 99;
    assert_int_equal(hamilton_parse_valve_errors("P@PP", &bits), 0);
    assert_int_equal(bits, 0);
    assert_int_equal(hamilton_parse_valve_errors("PAPP", &bits), 0);
    assert_int_equal(bits, HAMILTON_ERR_NOT_INITIALISED);
    assert_int_equal(hamilton_parse_valve_errors("PBPP", &bits), 0);
    assert_int_equal(bits, HAMILTON_ERR_INIT_FAILED);
    assert_int_equal(hamilton_parse_valve_errors("PDPP", &bits), 0);
    assert_int_equal(bits, HAMILTON_ERR_OVERLOAD);
    /* bit 6 must be set and bits 3-5 clear; exactly four bytes */
    const char *bad_err[] = { "P\x01PP", "PHPP", "P`PP", "P@P", "P@PPP", "" };
    for (size_t i = 0; i < N(bad_err); i++)
        assert_int_equal(hamilton_parse_valve_errors(bad_err[i], &bits), -EBADMSG);

    static const int ports[] = { 0, 0, 8, 6, 3, 2, 2, 4, 0, 0 };
    for (int t = 0; t < (int)N(ports); t++)
        assert_int_equal(hamilton_valve_type_ports(t), ports[t]);

    assert_non_null(strstr(hamilton_valve_error_text(HAMILTON_ERR_NOT_INITIALISED), "not initialised"));
    assert_non_null(strstr(hamilton_valve_error_text(HAMILTON_ERR_OVERLOAD), "overload"));
    /* the most serious first */
    assert_non_null(strstr(hamilton_valve_error_text(HAMILTON_ERR_OVERLOAD | HAMILTON_ERR_INIT_FAILED),
                           "initialisation error"));
}

/* ------------------------------------------------------------------------ */
/* The rig entry                                                            */
/* ------------------------------------------------------------------------ */

/* Open a valve from params; returns open()'s result. */
static int open_valve(const struct dev_param *params, size_t n, struct config_errors *e, void **st,
                      struct driver_channel *ch, size_t *n_ch)
{
    return pty_rig_open_device("hamilton", "selector1", params, n, e, st, ch, n_ch);
}

static void test_rig_entry_gives_a_position_channel(void **state)
{
    (void)state;
    const struct dev_param p[] = { { "address", "b", 1, 1 }, { "ports", "8", 1, 1 },
                                   { "move_timeout", "2 s", 1, 1 }, { "direction", "clockwise", 1, 1 } };
    struct config_errors e;
    struct driver_channel ch[DRIVER_MAX_CHANNELS];
    size_t n;
    void *st;
    assert_int_equal(open_valve(p, N(p), &e, &st, ch, &n), 0);
    assert_int_equal(e.n, 0);
    assert_int_equal(n, 1);
    assert_string_equal(ch[0].name, "position");
    assert_int_equal(ch[0].q, Q_NONE);
    assert_string_equal(ch[0].unit, "port");
    assert_true(ch[0].readable && ch[0].writable);
    assert_float_equal(ch[0].min, 1, 0);
    assert_float_equal(ch[0].max, 8, 0);
    assert_float_equal(ch[0].sample_hz, 1, 0);
    driver_find("hamilton")->close(st);
    /* Only ports is required. */
    assert_int_equal(open_valve(p + 1, 1, &e, &st, ch, &n), 0);
    driver_find("hamilton")->close(st);
}

/* ------------------------------------------------------------------------ */
/* The rig: a device on a pty, answered by a script                         */
/* ------------------------------------------------------------------------ */

/* The valves' line, as the valves talk: 9600 7O1. */
static const struct link_config valves_line = { .name = "valves", .baud = 9600, .parity = 'O',
                                                .data_bits = 7, .stop_bits = 1,
                                                .timeout_ms = LINK_TIMEOUT_MS };

/* The usual valve: a, 6 ports, shortest way, move_timeout 0.5 s. */
static void rig_open(struct pty_rig *r)
{
    static const struct dev_param p[] = { { "address", "a", 1, 1 }, { "ports", "6", 1, 1 },
                                          { "move_timeout", "0.5 s", 1, 1 } };
    pty_rig_open(r, &valves_line, "hamilton", "selector1", p, N(p));
}

/* Replies as valve a sends them: the echo, then ACK and data, or NAK. */
#define ACK(cmd, data) cmd "\r\x06" data "\r"
#define NAK(cmd) cmd "\r\x15\r"
#define IDLE { "aF\r", ACK("aF", "Y"), 0, false }
#define BUSY { "aF\r", ACK("aF", "*"), 0, false }
#define NO_ERRORS { "aE2\r", ACK("aE2", "P@PP"), 0, false }
#define AT(port) { "aLQP\r", ACK("aLQP", port), 0, false }

/* ------------------------------------------------------------------------ */
/* End to end over the pty                                                  */
/* ------------------------------------------------------------------------ */

static void test_a_write_initialises_a_valve_that_lost_power(void **state)
{
    (void)state;
    static const struct step steps[] = {
        IDLE, { "aE2\r", ACK("aE2", "PAPP"), 0, false },
        { "aLXR\r", ACK("aLXR", ""), 0, false }, IDLE, NO_ERRORS,
        AT("1"), { "aLP02R\r", ACK("aLP02R", ""), 0, false }, IDLE, NO_ERRORS, AT("2"),
    };
    struct pty_rig r;
    rig_open(&r);
    script_start(&r.script, r.pty.master, steps, N(steps));
    assert_int_equal(r.drv->write(r.dev, &r.link, 0, 2), 0);
    script_finish(&r.script);
    pty_rig_close(&r);
}

static void test_a_line_set_up_wrong_gets_a_hint(void **state)
{
    (void)state;
    static const struct step steps[] = { { "aF\r", NULL, 0, false } };
    struct pty_rig r;
    rig_open(&r);
    link_close(&r.link);
    r.lc.parity = 'N';
    r.lc.data_bits = 8;
    assert_int_equal(link_open(&r.link, &r.lc), 0);
    script_start(&r.script, r.pty.master, steps, N(steps));
    double v = UNTOUCHED;
    assert_int_equal(r.drv->read(r.dev, &r.link, 0, &v), -ETIMEDOUT);
    assert_non_null(strstr(r.link.err, "set the bus to 'baud: 9600, parity: O, data_bits: 7'"));
    script_finish(&r.script);
    pty_rig_close(&r);
}

/* ------------------------------------------------------------------------ */
/* Against the simulator's valves                                           */
/* ------------------------------------------------------------------------ */

/* The simulated valves and the responder answering with them. */
struct sim_valves {
    struct sim_responder resp;
    struct sim_hamilton line;   /* guarded by resp.lock */
    struct timespec t0;
    atomic_int refuse;          /* answer with the valves' refusal (the 'exception' fault) */
    atomic_int lxr;             /* LXR commands seen */
};

/* Model time: nanoseconds since the responder started. */
static int64_t model_ns(const struct sim_valves *s)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)(ts.tv_sec - s->t0.tv_sec) * 1000000000LL + (ts.tv_nsec - s->t0.tv_nsec);
}

/* Answer a command with the simulator's valve model, counting initialisations. */
static size_t sim_answer(void *ctx, const char *cmd, char *out, size_t len)
{
    struct sim_valves *s = ctx;
    if (strcmp(cmd + 1, "LXR") == 0)
        atomic_fetch_add(&s->lxr, 1);
    return atomic_load(&s->refuse)
        ? sim_hamilton_line.refuse(&s->line, cmd, out, len)
        : sim_hamilton_line.handle(&s->line, model_ns(s), cmd, out, len);
}

static void test_driver_runs_the_simulated_valves(void **state)
{
    (void)state;
    struct pty_rig r;
    rig_open(&r);
    static const struct dev_param pb[] = { { "address", "b", 1, 1 }, { "ports", "8", 1, 1 } };
    void *b = pty_rig_add(&r, "selector1", pb, N(pb));
    struct sim_valves *s = calloc(1, sizeof *s);
    assert_non_null(s);
    sim_hamilton_line.init(&s->line);
    clock_gettime(CLOCK_MONOTONIC, &s->t0);
    sim_responder_start(&s->resp, r.pty.master, sim_answer, s);

    /* Power-up: both valves are initialised by connect, once. */
    double v = UNTOUCHED;
    assert_int_equal(r.drv->connect(r.dev, &r.link), 0);
    assert_int_equal(r.drv->connect(b, &r.link), 0);
    assert_int_equal(atomic_load(&s->lxr), 2);
    assert_int_equal(r.drv->read(r.dev, &r.link, 0, &v), 0);
    assert_float_equal(v, 1, 0);
    /* Moves take time; the write returns when the valve is there. */
    assert_int_equal(r.drv->write(r.dev, &r.link, 0, 5), 0);
    pthread_mutex_lock(&s->resp.lock);
    assert_int_equal(s->line.valve[0].port, 5);
    assert_false(s->line.valve[0].moving);
    pthread_mutex_unlock(&s->resp.lock);
    assert_int_equal(r.drv->write(b, &r.link, 0, 8), 0);
    assert_int_equal(r.drv->read(r.dev, &r.link, 0, &v), 0);
    assert_float_equal(v, 5, 0);
    assert_int_equal(r.drv->read(b, &r.link, 0, &v), 0);
    assert_float_equal(v, 8, 0);
    /* A reconnect does not initialise (move) them again. */
    assert_int_equal(r.drv->connect(r.dev, &r.link), 0);
    assert_int_equal(r.drv->connect(b, &r.link), 0);
    assert_int_equal(atomic_load(&s->lxr), 2);
    /* A move in progress (started by someone else): no position, not the old one. */
    pthread_mutex_lock(&s->resp.lock);
    s->line.valve[0].moving = true;
    s->line.valve[0].target = 2;
    s->line.valve[0].end_ns = model_ns(s) + 10000000000LL;
    pthread_mutex_unlock(&s->resp.lock);
    v = UNTOUCHED;
    assert_int_equal(r.drv->read(r.dev, &r.link, 0, &v), -EBUSY);
    assert_float_equal(v, UNTOUCHED, 0);
    pthread_mutex_lock(&s->resp.lock);
    s->line.valve[0].end_ns = model_ns(s);
    pthread_mutex_unlock(&s->resp.lock);
    assert_int_equal(r.drv->read(r.dev, &r.link, 0, &v), 0);
    assert_float_equal(v, 2, 0);
    /* A power cut with the line up: reads refuse, the next write initialises. */
    pthread_mutex_lock(&s->resp.lock);
    s->line.valve[1].initialised = false;
    pthread_mutex_unlock(&s->resp.lock);
    v = UNTOUCHED;
    assert_int_equal(r.drv->read(b, &r.link, 0, &v), -EREMOTEIO);
    assert_non_null(strstr(r.link.err, "selector1: valve not initialised"));
    assert_float_equal(v, UNTOUCHED, 0);
    assert_int_equal(r.drv->write(b, &r.link, 0, 3), 0);
    assert_int_equal(atomic_load(&s->lxr), 3);
    assert_int_equal(r.drv->read(b, &r.link, 0, &v), 0);
    assert_float_equal(v, 3, 0);
    /* The valves' own refusal. */
    atomic_store(&s->refuse, 1);
    assert_int_equal(r.drv->read(r.dev, &r.link, 0, &v), -EREMOTEIO);
    assert_string_equal(r.link.err, "selector1: the valve refused 'F' (NAK)");
    atomic_store(&s->refuse, 0);

    sim_responder_stop(&s->resp);
    free(s);
    r.drv->close(b);
    pty_rig_close(&r);
}

static void test_the_simulated_valve_refuses_what_the_real_one_would(void **state)
{
    (void)state;
    struct sim_hamilton h;
    char out[64];
    sim_hamilton_line.init(&h);
    /* not initialised: a move is refused, E2 says why */
    size_t n = sim_hamilton_line.handle(&h, 0, "aLP03R", out, sizeof out);
    assert_int_equal(n, strlen(NAK("aLP03R")));
    assert_memory_equal(out, NAK("aLP03R"), n);
    n = sim_hamilton_line.handle(&h, 0, "aE2", out, sizeof out);
    assert_memory_equal(out, ACK("aE2", "PAPP"), n);
    /* LXR takes its time; F says busy meanwhile */
    n = sim_hamilton_line.handle(&h, 0, "aLXR", out, sizeof out);
    assert_memory_equal(out, ACK("aLXR", ""), n);
    n = sim_hamilton_line.handle(&h, SIM_HM_INIT_NS - 1, "aF", out, sizeof out);
    assert_memory_equal(out, ACK("aF", "*"), n);
    n = sim_hamilton_line.handle(&h, SIM_HM_INIT_NS, "aF", out, sizeof out);
    assert_memory_equal(out, ACK("aF", "Y"), n);
    /* 1 -> 4 counter-clockwise passes 3 ports; the old port until the move ends */
    int64_t t = SIM_HM_INIT_NS;
    n = sim_hamilton_line.handle(&h, t, "aLP14R", out, sizeof out);
    assert_memory_equal(out, ACK("aLP14R", ""), n);
    int64_t end = t + SIM_HM_MOVE_BASE_NS + 3 * SIM_HM_MOVE_STEP_NS;
    n = sim_hamilton_line.handle(&h, end - 1, "aLQP", out, sizeof out);
    assert_memory_equal(out, ACK("aLQP", "1"), n);
    n = sim_hamilton_line.handle(&h, end, "aLQP", out, sizeof out);
    assert_memory_equal(out, ACK("aLQP", "4"), n);
    /* ports it lacks, bad syntax, unknown commands; nobody at address c */
    const char *bad[] = { "aLP07R", "aLP00R", "aLP23R", "aLP03", "aLP0R", "aXYZ" };
    for (size_t i = 0; i < N(bad); i++) {
        n = sim_hamilton_line.handle(&h, end, bad[i], out, sizeof out);
        assert_true(n > 2 && out[n - 2] == HAMILTON_NAK);
    }
    assert_int_equal(sim_hamilton_line.handle(&h, end, "cF", out, sizeof out), 0);
    assert_int_equal(sim_hamilton_line.refuse(&h, "cF", out, sizeof out), 0);
    n = sim_hamilton_line.handle(&h, end, "bLQT", out, sizeof out);
    assert_memory_equal(out, ACK("bLQT", "2"), n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recorded_replies_parse_or_are_refused),
        cmocka_unit_test(test_every_prefix_of_a_reply_is_incomplete),
        cmocka_unit_test(test_move_commands_and_directions),
        cmocka_unit_test(test_answers_parse_or_are_refused),
        cmocka_unit_test(test_rig_entry_gives_a_position_channel),
        cmocka_unit_test(test_a_write_initialises_a_valve_that_lost_power),
        cmocka_unit_test(test_a_line_set_up_wrong_gets_a_hint),
        cmocka_unit_test(test_driver_runs_the_simulated_valves),
        cmocka_unit_test(test_the_simulated_valve_refuses_what_the_real_one_would),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
