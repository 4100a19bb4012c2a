/*
 * Ismatec Reglo ICC: number formats, reply framing with recorded good, bad
 * and partial replies, the rig entry, and the driver against the simulator's
 * independent pump, two channels of one head. The steps every serial driver
 * shares (exact bytes, refusals, bad replies, a closed line, bad rig
 * entries...) are in test_driver_contract.c.
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
#include <unistd.h>

#include "config_errors.h"
#include "drivers/driver.h"
#include "drivers/reglo.h"
#include "drivers/sim/sim_reglo.h"
#include "pty_rig.h"
#include "pty_script.h"
#include "sim_responder.h"

#define LINK_TIMEOUT_MS 100
#define UNTOUCHED 12345.0
#define N(a) (sizeof a / sizeof a[0])

/* ------------------------------------------------------------------------ */
/* Numbers                                                                  */
/* ------------------------------------------------------------------------ */

static void test_volume_type_2_has_four_digits_a_sign_and_an_exponent(void **state)
{
    (void)state;
    static const struct { double v; const char *want; } ok[] = {
        { 1.234, "1234+0" }, { 0.05, "5000-2" }, { 12.5, "1250+1" }, { 1, "1000+0" },
        { 0.00123456, "1235-3" }, { 9.9996, "1000+1" }, { 1e-9, "1000-9" }, { 0.1, "1000-1" },
        { 9999e6, "9999+9" }, { 100, "1000+2" }, { 0.0015, "1500-3" },
    };
    char b[16];
    for (size_t i = 0; i < N(ok); i++) {
        assert_int_equal(reglo_format_vol2(ok[i].v, b, sizeof b), 0);
        assert_string_equal(b, ok[i].want);
    }
    assert_int_equal(reglo_format_vol2(0, b, sizeof b), -ERANGE);
    assert_int_equal(reglo_format_vol2(-1, b, sizeof b), -ERANGE);
    assert_int_equal(reglo_format_vol2(NAN, b, sizeof b), -ERANGE);
    assert_int_equal(reglo_format_vol2(INFINITY, b, sizeof b), -ERANGE);
    assert_int_equal(reglo_format_vol2(1e10, b, sizeof b), -ERANGE);
    assert_int_equal(reglo_format_vol2(9e-10, b, sizeof b), -ERANGE);
    assert_int_equal(reglo_format_vol2(1.234, b, 6), -ERANGE);     /* "1234+0" needs 7 bytes */
}

static void test_numbers_the_pump_reports_parse(void **state)
{
    (void)state;
    static const struct { const char *in; double want; } ok[] = {
        { "1234E-3", 0.001234 }, { "1234E+0", 1.234 }, { "5000E-2", 0.05 },
        { "1200E-1", 0.12 }, { "1234-3", 0.001234 }, { "0000E+0", 0 }, { "0.800 ml/min", 0.8 },
        { "2.000 ML/MIN", 2 }, { "1500E+0 ml/min", 1.5 }, { "1500E-3", 0.0015 }, { "12", 12 }, { "3.5", 3.5 },
    };
    for (size_t i = 0; i < N(ok); i++) {
        double v = UNTOUCHED;
        assert_int_equal(reglo_parse_number(ok[i].in, &v), 0);
        assert_float_equal(v, ok[i].want, 1e-12);
    }
    static const char *const bad[] = {
        "", "12E-3", "1234E3", "1234E-", "1234E-x", "abc", "1.2.3", "1.5 uL/min", "1234E-3x",
        "E-3", ".", "-1.0", " 1.0",
    };
    for (size_t i = 0; i < N(bad); i++) {
        double v = UNTOUCHED;
        assert_int_equal(reglo_parse_number(bad[i], &v), -EBADMSG);
        assert_float_equal(v, UNTOUCHED, 0);
    }
    assert_int_equal(reglo_parse_number(NULL, NULL), -EBADMSG);
    /* Exact in uL/min, so a read-back compares equal to the setpoint it answers. */
    static const struct { const char *in; double ul; } exact[] = {
        { "3000E-1", 300 }, { "2000E-1", 200 }, { "2500E-1", 250 }, { "1230E-1", 123 },
        { "5000E-2", 50 }, { "1500E+0", 1500 },
    };
    for (size_t i = 0; i < N(exact); i++) {
        double v;
        assert_int_equal(reglo_parse_number(exact[i].in, &v), 0);
        assert_true(reglo_delivered_flow(1, 'J', 'J', v) == exact[i].ul);
    }
}

/* ------------------------------------------------------------------------ */
/* Replies                                                                  */
/* ------------------------------------------------------------------------ */

/* A reply as the pump sends it, and what the parser must make of it. */
struct reply_case {
    const char *bytes;
    enum reglo_expect expect;
    int used;               /* > 0 parsed, 0 incomplete, < 0 error */
    char status;
    const char *data;
};

static const struct reply_case reply_cases[] = {
    { "*", REGLO_STATUS, 1, '*', "" },
    { "#", REGLO_STATUS, 1, '#', "" },
    { "+", REGLO_STATUS, 1, '+', "" },
    { "-", REGLO_STATUS, 1, '-', "" },
    { "\r\n*", REGLO_STATUS, 3, '*', "" },              /* the end of an earlier line first */
    { "^U1\r\n+", REGLO_STATUS, 6, '+', "" },           /* an event line first */
    { "^X2\r\n^U1\r\n-", REGLO_STATUS, 11, '-', "" },
    { "*#", REGLO_STATUS, 1, '*', "" },                 /* one reply at a time */
    { "x", REGLO_STATUS, -EBADMSG, 0, "" },
    { "1234E-3\r\n", REGLO_STATUS, -EBADMSG, 0, "" },   /* data where a status belongs */
    { "", REGLO_STATUS, 0, 0, "" },
    { "^U1\r", REGLO_STATUS, 0, 0, "" },                /* an event line, not finished */
    { "1234E-3\r\n", REGLO_DATA, 9, 0, "1234E-3" },
    { "J\r\n", REGLO_DATA, 3, 0, "J" },
    { "J\n", REGLO_DATA, 2, 0, "J" },
    { "0.800 ml/min\r\n", REGLO_DATA, 14, 0, "0.800 ml/min" },
    { "\r\nM\r\n", REGLO_DATA, 5, 0, "M" },
    { "^U2\r\n5000E-2\r\n", REGLO_DATA, 14, 0, "5000E-2" },
    { "#", REGLO_DATA, 1, '#', "" },                    /* a data command refused */
    { "*", REGLO_DATA, 1, '*', "" },
    { "1234E-3\r", REGLO_DATA, 0, 0, "" },              /* the LF still on its way */
    { "1234E-3", REGLO_DATA, 0, 0, "" },
    { "12\x01" "4\r\n", REGLO_DATA, -EBADMSG, 0, "" },
    { "\xff\xfe\r\n", REGLO_DATA, -EBADMSG, 0, "" },
    { "0123456789012345678901234567890123456789012345678901234567890123456789\r\n", REGLO_DATA,
      -EBADMSG, 0, "" },
};

static void test_recorded_replies_parse_or_are_refused(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(reply_cases); i++) {
        const struct reply_case *c = &reply_cases[i];
        struct reglo_reply r;
        int used = reglo_parse_reply(c->bytes, strlen(c->bytes), c->expect, &r);
        if (used != c->used)
            fail_msg("case %zu ('%s'): used %d, expected %d", i, c->bytes, used, c->used);
        if (used > 0) {
            assert_int_equal(r.status, c->status);
            assert_string_equal(r.data, c->data);
        }
    }
}

static void test_every_prefix_of_a_reply_is_incomplete(void **state)
{
    (void)state;
    static const char full[] = "^U1\r\n1234E-3\r\n";
    struct reglo_reply r;
    for (size_t n = 0; n < strlen(full); n++)
        assert_int_equal(reglo_parse_reply(full, n, REGLO_DATA, &r), 0);
    assert_int_equal(reglo_parse_reply(full, strlen(full), REGLO_DATA, &r), (int)strlen(full));
    assert_string_equal(r.data, "1234E-3");
}

static void test_delivered_flow_follows_running_and_rotation(void **state)
{
    (void)state;
    assert_float_equal(reglo_delivered_flow(1, 'J', 'J', 0.05), 50, 1e-9);
    assert_float_equal(reglo_delivered_flow(1, 'K', 'J', 0.05), -50, 1e-9);
    assert_float_equal(reglo_delivered_flow(1, 'K', 'K', 1.2), 1200, 1e-9);
    assert_float_equal(reglo_delivered_flow(1, 'J', 'K', 1.2), -1200, 1e-9);
    assert_float_equal(reglo_delivered_flow(0, 'J', 'J', 1.2), 0, 0);
    assert_float_equal(reglo_delivered_flow(-1, 'J', 'J', 1.2), 0, 0);
    assert_non_null(strstr(reglo_cannot_run_text(), "maximum for its tubing"));
}

/* ------------------------------------------------------------------------ */
/* The rig entry                                                            */
/* ------------------------------------------------------------------------ */

/* Open a channel device from params; returns open()'s result. */
static int open_channel(const char *name, const struct dev_param *params, size_t n,
                        struct config_errors *e, void **st, struct driver_channel *ch, size_t *n_ch)
{
    return pty_rig_open_device("reglo", name, params, n, e, st, ch, n_ch);
}

static void test_rig_entry_gives_one_flow_channel(void **state)
{
    (void)state;
    const struct dev_param p[] = { { "address", "3", 1, 1 }, { "channel", "2", 1, 1 },
                                   { "max_flow", "1.5 mL/min", 1, 1 }, { "direction", "ccw", 1, 1 } };
    struct config_errors e;
    struct driver_channel ch[DRIVER_MAX_CHANNELS];
    size_t n;
    void *st;
    assert_int_equal(open_channel("perist1", p, 4, &e, &st, ch, &n), 0);
    assert_int_equal(e.n, 0);
    assert_int_equal(n, 1);
    assert_string_equal(ch[0].name, "flow");
    assert_int_equal(ch[0].q, Q_FLOW);
    assert_string_equal(ch[0].unit, "uL/min");
    assert_true(ch[0].readable && ch[0].writable);
    assert_float_equal(ch[0].min, -1500, 1e-9);
    assert_float_equal(ch[0].max, 1500, 1e-9);
    assert_float_equal(ch[0].sample_hz, 2, 0);
    driver_find("reglo")->close(st);

    /* channel and max_flow are required; address and direction have defaults. */
    assert_int_equal(open_channel("perist1", p + 1, 2, &e, &st, ch, &n), 0);
    driver_find("reglo")->close(st);
}

/* ------------------------------------------------------------------------ */
/* The rig: a device on a pty, answered by a script                         */
/* ------------------------------------------------------------------------ */

/* The pump's line, as the pump is set up: 9600 8N1. */
static const struct link_config perist_line = { .name = "perist", .baud = 9600, .parity = 'N',
                                                .data_bits = 8, .stop_bits = 1,
                                                .timeout_ms = LINK_TIMEOUT_MS };

/* Open the pty, the link and a device for channel chan with max_flow. */
static void rig_open(struct pty_rig *r, const char *chan, const char *max_flow)
{
    const struct dev_param p[] = { { "address", "1", 1, 1 }, { "channel", chan, 1, 1 },
                                   { "max_flow", max_flow, 1, 1 } };
    pty_rig_open(r, &perist_line, "reglo", "perist1", p, 3);
}

/* ------------------------------------------------------------------------ */
/* Against the simulator's pump                                             */
/* ------------------------------------------------------------------------ */

/* The simulated pump and the responder answering with it. */
struct sim_pump {
    struct sim_responder resp;
    struct sim_reglo pump;      /* guarded by resp.lock */
    atomic_llong now_ns;        /* model time, set by the test */
    atomic_int refuse;          /* answer every command with the device's refusal */
};

/* Answer a command with the simulator's pump model. */
static size_t sim_answer(void *ctx, const char *cmd, char *out, size_t len)
{
    struct sim_pump *s = ctx;
    return atomic_load(&s->refuse)
               ? sim_reglo_line.refuse(&s->pump, cmd, out, len)
               : sim_reglo_line.handle(&s->pump, atomic_load(&s->now_ns), cmd, out, len);
}

static void test_two_channels_of_the_simulated_head_are_independent(void **state)
{
    (void)state;
    struct pty_rig r;
    rig_open(&r, "1", "1.5 mL/min");
    const struct dev_param p2[] = { { "channel", "2", 1, 1 }, { "max_flow", "1.5 mL/min", 1, 1 },
                                    { "direction", "ccw", 1, 1 } };
    void *ccw = pty_rig_add(&r, "perist2", p2, 3);
    const struct dev_param p4[] = { { "channel", "4", 1, 1 }, { "max_flow", "1.5 mL/min", 1, 1 } };
    void *narrow = pty_rig_add(&r, "perist4", p4, 2);

    struct sim_pump *s = calloc(1, sizeof *s);
    assert_non_null(s);
    sim_reglo_line.init(&s->pump);
    sim_responder_start(&s->resp, r.pty.master, sim_answer, s);

    double v;
    assert_int_equal(r.drv->connect(r.dev, &r.link), 0);
    assert_int_equal(r.drv->connect(ccw, &r.link), 0);
    assert_int_equal(r.drv->connect(narrow, &r.link), 0);
    assert_true(s->pump.channel_addressing);
    assert_int_equal(s->pump.ch[0].mode, 'M');
    assert_int_equal(s->pump.ch[1].mode, 'M');
    assert_int_equal(r.drv->write(r.dev, &r.link, 0, 1000), 0);
    assert_int_equal(r.drv->write(ccw, &r.link, 0, 500), 0);
    assert_int_equal(r.drv->read(r.dev, &r.link, 0, &v), 0);
    assert_float_equal(v, 1000, 1e-9);
    assert_int_equal(r.drv->read(ccw, &r.link, 0, &v), 0);
    assert_float_equal(v, 500, 1e-9);
    /* One minute of model time: 1 mL clockwise on channel 1, 0.5 mL counter-clockwise on 2. */
    atomic_store(&s->now_ns, 60LL * 1000000000LL);
    assert_int_equal(r.drv->write(r.dev, &r.link, 0, 0), 0);
    pthread_mutex_lock(&s->resp.lock);
    assert_float_equal(s->pump.ch[0].pumped_ml, 1.0, 1e-9);
    assert_float_equal(s->pump.ch[1].pumped_ml, -0.5, 1e-9);
    assert_false(s->pump.ch[0].running);
    assert_true(s->pump.ch[1].running);
    assert_int_equal(s->pump.ch[1].rotation, 'K');
    pthread_mutex_unlock(&s->resp.lock);
    assert_int_equal(r.drv->read(r.dev, &r.link, 0, &v), 0);
    assert_float_equal(v, 0, 0);
    assert_int_equal(r.drv->read(ccw, &r.link, 0, &v), 0);
    assert_float_equal(v, 500, 1e-9);
    /* Reverse channel 2 only: negative is clockwise for a ccw channel. */
    assert_int_equal(r.drv->write(ccw, &r.link, 0, -250), 0);
    assert_int_equal(s->pump.ch[1].rotation, 'J');
    assert_int_equal(r.drv->read(ccw, &r.link, 0, &v), 0);
    assert_float_equal(v, -250, 1e-9);
    /* Channel 4's tubing gives 0.8 mL/min: more is refused before it reaches the pump. */
    assert_int_equal(r.drv->write(narrow, &r.link, 0, 1000), -ERANGE);
    assert_non_null(strstr(r.link.err, "above the 800 uL/min the pump gives on channel 4"));
    assert_int_equal(r.drv->write(narrow, &r.link, 0, 600), 0);
    assert_int_equal(r.drv->read(narrow, &r.link, 0, &v), 0);
    assert_float_equal(v, 600, 1e-9);
    /* The pump refusing everything: an error, never a value. */
    atomic_store(&s->refuse, 1);
    v = UNTOUCHED;
    assert_int_equal(r.drv->read(ccw, &r.link, 0, &v), -EREMOTEIO);
    assert_string_equal(r.link.err, "perist2: pump refused '2E' (#: not executed)");
    assert_float_equal(v, UNTOUCHED, 0);
    atomic_store(&s->refuse, 0);
    assert_int_equal(r.drv->safe_state(ccw, &r.link), 0);
    assert_int_equal(r.drv->safe_state(narrow, &r.link), 0);
    assert_false(s->pump.ch[1].running);
    assert_false(s->pump.ch[3].running);

    sim_responder_stop(&s->resp);
    free(s);
    r.drv->close(ccw);
    r.drv->close(narrow);
    pty_rig_close(&r);
}

static void test_the_simulated_pump_answers_like_the_manual(void **state)
{
    (void)state;
    struct sim_reglo p;
    sim_reglo_line.init(&p);
    char out[64];
    size_t n;
#define SAYS(cmd, want)                                                     \
    do {                                                                    \
        n = sim_reglo_line.handle(&p, 0, cmd, out, sizeof out);             \
        out[n] = '\0';                                                      \
        assert_string_equal(out, want);                                     \
    } while (0)
    SAYS("2E", "");                 /* legacy addressing: pump 2 does not exist */
    SAYS("1xD", "J\r\n");
    SAYS("1~", "0\r\n");
    SAYS("1~1", "*");
    SAYS("1~", "1\r\n");
    SAYS("4xM", "L\r\n");
    SAYS("4H", "*");                /* RPM mode runs without a flow rate */
    SAYS("4I", "*");
    SAYS("4M", "*");
    SAYS("4H", "-");                /* flow-rate mode with no rate cannot run */
    SAYS("4f9000-1", "#");          /* 0.9 mL/min is above channel 4's 0.8 */
    SAYS("4f7500-1", "7500E-1\r\n");
    SAYS("4f", "7500E-1\r\n");
    SAYS("4?", "0.800 ml/min\r\n");
    SAYS("4f75-1", "#");
    SAYS("4Z", "#");
    SAYS("0H", "#");
    SAYS("5E", "");
    SAYS("E", "");
    n = sim_reglo_line.refuse(&p, "1H", out, sizeof out);
    assert_int_equal(n, 1);
    assert_int_equal(out[0], '#');
#undef SAYS
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_volume_type_2_has_four_digits_a_sign_and_an_exponent),
        cmocka_unit_test(test_numbers_the_pump_reports_parse),
        cmocka_unit_test(test_recorded_replies_parse_or_are_refused),
        cmocka_unit_test(test_every_prefix_of_a_reply_is_incomplete),
        cmocka_unit_test(test_delivered_flow_follows_running_and_rotation),
        cmocka_unit_test(test_rig_entry_gives_one_flow_channel),
        cmocka_unit_test(test_two_channels_of_the_simulated_head_are_independent),
        cmocka_unit_test(test_the_simulated_pump_answers_like_the_manual),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
