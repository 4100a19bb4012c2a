/*
 * Harvard Apparatus Pump 11 Elite / PHD ULTRA pumps: number formats, reply
 * framing with recorded good, bad and partial replies, the rig entry, stale
 * bytes drained before a command, and the driver against the simulator's
 * independent pump line. The steps every serial driver shares (exact bytes,
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
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config_errors.h"
#include "drivers/driver.h"
#include "drivers/harvard.h"
#include "drivers/sim/sim_harvard.h"
#include "pty_rig.h"
#include "pty_script.h"
#include "sim_responder.h"
#include "syringe_entry.h"

#define LINK_TIMEOUT_MS 100
#define UNTOUCHED 12345.0
#define MIN_NS (60LL * 1000000000LL)

/* ------------------------------------------------------------------------ */
/* Numbers and commands                                                     */
/* ------------------------------------------------------------------------ */

static void test_commands_carry_the_address_only_when_not_zero(void **state)
{
    (void)state;
    char b[32];
    assert_int_equal(harvard_format_command(0, "irun", b, sizeof b), 5);
    assert_string_equal(b, "irun\r");
    assert_int_equal(harvard_format_command(1, "crate", b, sizeof b), 8);
    assert_string_equal(b, "1:crate\r");
    assert_int_equal(harvard_format_command(12, "irate 3.2 ul/min", b, sizeof b), 20);
    assert_string_equal(b, "12:irate 3.2 ul/min\r");
    assert_int_equal(harvard_format_command(100, "irun", b, sizeof b), -ERANGE);
    assert_int_equal(harvard_format_command(-1, "irun", b, sizeof b), -ERANGE);
    assert_int_equal(harvard_format_command(5, "irun", b, 7), -ERANGE);    /* "5:irun\r" needs 8 */
}

static void test_numbers_and_rates_are_formatted_for_the_pump(void **state)
{
    (void)state;
    static const struct { double v; const char *want; } num[] = {
        { 14.57, "14.57" }, { 1000, "1000" }, { 0.0025, "0.0025" }, { 12.5, "12.5" },
        { 0.123456, "0.1235" }, { 0, "0" }, { 999999.4, "999999.4" },
    };
    char b[32];
    for (size_t i = 0; i < sizeof num / sizeof num[0]; i++) {
        assert_int_equal(harvard_format_number(num[i].v, b, sizeof b), 0);
        assert_string_equal(b, num[i].want);
    }
    const double bad_num[] = { -1, NAN, INFINITY, 1e6, 0.00001 };
    for (size_t i = 0; i < sizeof bad_num / sizeof bad_num[0]; i++)
        assert_int_equal(harvard_format_number(bad_num[i], b, sizeof b), -ERANGE);
    assert_int_equal(harvard_format_number(14.57, b, 5), -ERANGE);

    static const struct { double v; const char *want; } rate[] = {
        { 12.5, "12.5 ul/min" }, { 1000, "1000 ul/min" }, { 0.1, "0.1 ul/min" },
        { 0.05, "50 nl/min" }, { 0.0001234, "0.1234 nl/min" },
    };
    for (size_t i = 0; i < sizeof rate / sizeof rate[0]; i++) {
        assert_int_equal(harvard_format_rate(rate[i].v, b, sizeof b), 0);
        assert_string_equal(b, rate[i].want);
    }
    const double bad_rate[] = { 0, -1, NAN, INFINITY, 1e-9, 1e7 };
    for (size_t i = 0; i < sizeof bad_rate / sizeof bad_rate[0]; i++)
        assert_int_equal(harvard_format_rate(bad_rate[i], b, sizeof b), -ERANGE);
}

static void test_rate_volume_and_diameter_replies_parse(void **state)
{
    (void)state;
    double v;
    static const struct { const char *text; double want; } rates[] = {
        { "10 ul/min", 10 }, { "1.5 ml/min", 1500 }, { "120 ul/hr", 2 }, { "500 nl/min", 0.5 },
        { "0.5 ul/s", 30 }, { " 2.0000 UL/MIN ", 2 }, { "3e1 ul/min", 30 }, { "6 ml/hr", 100 },
    };
    for (size_t i = 0; i < sizeof rates / sizeof rates[0]; i++) {
        assert_int_equal(harvard_parse_rate(rates[i].text, &v), 0);
        assert_float_equal(v, rates[i].want, 1e-9);
    }
    const char *bad_rates[] = { "", "ul/min", "10", "10 ul", "10 ul/day", "-5 ul/min",
                                "10 ul/min extra", "nan ul/min", "0x10 ul/min", "10ul/min/" };
    for (size_t i = 0; i < sizeof bad_rates / sizeof bad_rates[0]; i++)
        assert_int_equal(harvard_parse_rate(bad_rates[i], &v), -EBADMSG);
    assert_int_equal(harvard_parse_rate(NULL, &v), -EBADMSG);

    assert_int_equal(harvard_parse_volume("1.234 ul", &v), 0);
    assert_float_equal(v, 1.234, 1e-12);
    assert_int_equal(harvard_parse_volume("2.5 ml", &v), 0);
    assert_float_equal(v, 2500, 1e-9);
    assert_int_equal(harvard_parse_volume("750 nl", &v), 0);
    assert_float_equal(v, 0.75, 1e-12);
    assert_int_equal(harvard_parse_volume("1.234", &v), -EBADMSG);
    assert_int_equal(harvard_parse_volume("1.234 ul/min", &v), -EBADMSG);
    assert_int_equal(harvard_parse_volume("Command error", &v), -EBADMSG);

    assert_int_equal(harvard_parse_diameter("14.57 mm", &v), 0);
    assert_float_equal(v, 14.57, 1e-12);
    assert_int_equal(harvard_parse_diameter("4.78", &v), 0);
    assert_float_equal(v, 4.78, 1e-12);
    assert_int_equal(harvard_parse_diameter("14.57 cm", &v), -EBADMSG);
    assert_int_equal(harvard_parse_diameter("mm", &v), -EBADMSG);
}

/* ------------------------------------------------------------------------ */
/* Reply framing                                                            */
/* ------------------------------------------------------------------------ */

/* A recorded reply and what parsing it must give. */
struct reply_case {
    const char *bytes;
    int used;               /* expected return: bytes used, 0 (incomplete) or -EBADMSG */
    int address;
    char prompt;
    int n_lines;
    const char *last;       /* the last text line, if any */
    size_t len;             /* bytes to parse when they hold a NUL; 0: strlen */
};

static const struct reply_case reply_cases[] = {
    /* idle, no text: the pump at address 0 in the chain */
    { "\r\n00:", 5, 0, ':', 0, NULL, 0 },
    /* a single pump that shows no address */
    { "\r\n:", 3, 0, ':', 0, NULL, 0 },
    { "\r\n10 ul/min\r\n00>", 16, 0, '>', 1, "10 ul/min", 0 },
    { "\r\n0.5 ml/hr\r\n01<", 16, 1, '<', 1, "0.5 ml/hr", 0 },
    { "\r\n12*", 5, 12, '*', 0, NULL, 0 },
    { "\r\n99T*", 6, 99, 'T', 0, NULL, 0 },
    { "\r\n1>", 4, 1, '>', 0, NULL, 0 },
    /* a refusal is text too; the prompt follows */
    { "\r\nCommand error\r\n00:", 20, 0, ':', 1, "Command error", 0 },
    { "\r\nArgument error: 12x\r\n00:", 26, 0, ':', 1, "Argument error: 12x", 0 },
    /* text lines that carry the address and prompt keep only their text */
    { "\r\n00:10 ul/min\r\n00:", 19, 0, ':', 1, "10 ul/min", 0 },
    { "\r\n03T*Target reached\r\n03T*", 26, 3, 'T', 1, "Target reached", 0 },
    /* two replies in a row: only the first is used */
    { "\r\n01:\r\n00>", 5, 1, ':', 0, NULL, 0 },
    /* a prompt that came with a line end ends the reply before it */
    { "\r\n5 ul\r\n00:\r\n", 11, 0, ':', 1, "5 ul", 0 },
    /* several lines (ver on some firmware) */
    { "\r\nELITE I/W Single\r\n3.0.7\r\n00:", 30, 0, ':', 2, "3.0.7", 0 },
    /* incomplete: no prompt yet, or a prompt not finished */
    { "", 0, 0, 0, 0, NULL, 0 },
    { "\r\n", 0, 0, 0, 0, NULL, 0 },
    { "\r\n10 ul/min\r\n", 0, 0, 0, 0, NULL, 0 },
    { "\r\n10 ul/m", 0, 0, 0, 0, NULL, 0 },
    { "\r\n10 ul/min\r\n0", 0, 0, 0, 0, NULL, 0 },
    { "\r\n10 ul/min\r\n01", 0, 0, 0, 0, NULL, 0 },
    { "\r\n01T", 0, 0, 0, 0, NULL, 0 },
    { "\r\n123:", 0, 0, 0, 0, NULL, 0 },     /* three digits: not an address, not complete */
    /* garbled: bytes no pump sends */
    { "\r\n\x01\xfe\x7f", -EBADMSG, 0, 0, 0, NULL, 0 },
    { "\r\n10 ul/min\x00\r\n00:", -EBADMSG, 0, 0, 0, NULL, 17 },
};

static void test_recorded_replies_parse_or_are_refused(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof reply_cases / sizeof reply_cases[0]; i++) {
        const struct reply_case *c = &reply_cases[i];
        size_t len = c->len ? c->len : strlen(c->bytes);
        struct harvard_reply r;
        int got = harvard_parse_reply(c->bytes, len, &r);
        if (got != c->used)
            fail_msg("case %zu: got %d, expected %d", i, got, c->used);
        if (got <= 0)
            continue;
        assert_int_equal(r.address, c->address);
        assert_int_equal(r.prompt, c->prompt);
        assert_int_equal(r.n_lines, c->n_lines);
        if (c->last != NULL)
            assert_string_equal(r.line[r.n_lines - 1], c->last);
    }
}

static void test_long_replies_are_garbled(void **state)
{
    (void)state;
    struct harvard_reply r;
    char buf[400];
    /* A line longer than any the pump sends. */
    memset(buf, 'x', sizeof buf);
    assert_int_equal(harvard_parse_reply(buf, HARVARD_LINE_LEN + 1, &r), -EBADMSG);
    /* More text lines than any command's reply. */
    size_t n = 0;
    for (int i = 0; i <= HARVARD_MAX_LINES; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "line %d\r\n", i);
    n += (size_t)snprintf(buf + n, sizeof buf - n, "00:");
    assert_int_equal(harvard_parse_reply(buf, n, &r), -EBADMSG);
    assert_int_equal(harvard_parse_reply(NULL, 0, &r), 0);
}

static void test_every_prefix_of_a_reply_is_incomplete(void **state)
{
    (void)state;
    const char *full = "\r\n12.5 ul/min\r\n07<";
    struct harvard_reply r;
    for (size_t n = 0; n < strlen(full); n++)
        assert_int_equal(harvard_parse_reply(full, n, &r), 0);
    assert_int_equal(harvard_parse_reply(full, strlen(full), &r), (int)strlen(full));
    assert_int_equal(r.address, 7);
    assert_int_equal(r.prompt, '<');
}

static void test_refusals_are_remote_errors_and_prompts_have_meanings(void **state)
{
    (void)state;
    struct harvard_reply r;
    char err[160];
    const char *refused[] = { "\r\nCommand error\r\n00:", "\r\nUnknown command\r\n00:",
                              "\r\nArgument error\r\n00>", "\r\nOut of range\r\n00:",
                              "\r\nout of range\r\n00:" };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        assert_true(harvard_parse_reply(refused[i], strlen(refused[i]), &r) > 0);
        assert_int_equal(harvard_reply_error(&r, "hpump1", "irate 5 ul/min", err, sizeof err),
                         -EREMOTEIO);
        assert_non_null(strstr(err, "hpump1: pump refused 'irate 5 ul/min': "));
        assert_non_null(strstr(err, r.line[0]));
    }
    assert_true(harvard_parse_reply("\r\n10 ul/min\r\n00>", 16, &r) > 0);
    assert_int_equal(harvard_reply_error(&r, "hpump1", "crate", err, sizeof err), 0);

    assert_string_equal(harvard_prompt_text('*'), "stalled: syringe empty or blocked");
    assert_string_equal(harvard_prompt_text(':'), "idle");
    assert_string_equal(harvard_prompt_text('T'), "target volume reached");
    assert_float_equal(harvard_delivered_flow('>', 5), 5, 0);
    assert_float_equal(harvard_delivered_flow('<', 5), -5, 0);
    assert_float_equal(harvard_delivered_flow(':', 5), 0, 0);
    assert_float_equal(harvard_delivered_flow('T', 5), 0, 0);
}

/* ------------------------------------------------------------------------ */
/* The rig entry                                                            */
/* ------------------------------------------------------------------------ */

static void test_rig_entry_gives_two_channels(void **state)
{
    (void)state;
    expect_syringe_pump_channels("harvard");
}

/* ------------------------------------------------------------------------ */
/* The rig: a device on a pty, answered by a script                         */
/* ------------------------------------------------------------------------ */

/* The pumps' line, as the pumps are set up: 115200 8N1. */
static const struct link_config syringes_line = { .name = "syringes", .baud = 115200, .parity = 'N',
                                                  .data_bits = 8, .stop_bits = 1,
                                                  .timeout_ms = LINK_TIMEOUT_MS };

/* Open the pty, the link and a pump at address addr. */
static void rig_open(struct pty_rig *r, const char *addr)
{
    const struct dev_param p[] = { { "address", addr, 1, 1 }, { "syringe.diameter", "14.57 mm", 1, 1 },
                                   { "syringe.volume", "10 mL", 1, 1 } };
    pty_rig_open(r, &syringes_line, "harvard", "hpump1", p, 3);
}

#define N(a) (sizeof a / sizeof a[0])

/* ------------------------------------------------------------------------ */
/* End to end over the pty                                                  */
/* ------------------------------------------------------------------------ */

static void test_stale_bytes_are_drained_before_a_command(void **state)
{
    (void)state;
    static const struct step steps[] = {
        { "crate\r", "\r\n2 ul/min\r\n00>", 0, false },
    };
    struct pty_rig r;
    rig_open(&r, "0");
    /* A late reply to an earlier, timed-out command is already in the line. */
    const char *late = "\r\n99 ul/min\r\n00>";
    assert_int_equal(write(r.pty.master, late, strlen(late)), (ssize_t)strlen(late));
    struct pollfd p = { .fd = r.pty.slave, .events = POLLIN };
    assert_int_equal(poll(&p, 1, 1000), 1);     /* it has arrived on the driver's side */
    script_start(&r.script, r.pty.master, steps, N(steps));
    double v = UNTOUCHED;
    assert_int_equal(r.drv->read(r.dev, &r.link, 0, &v), 0);
    assert_float_equal(v, 2, 0);
    script_finish(&r.script);
    pty_rig_close(&r);
}

/* ------------------------------------------------------------------------ */
/* Against the simulator's pump line                                        */
/* ------------------------------------------------------------------------ */

/* The simulated line and the responder answering with it. */
struct sim_line {
    struct sim_responder resp;
    struct sim_harvard line;    /* guarded by resp.lock */
    int64_t now_ns;             /* model time, set by the test; guarded by resp.lock */
};

/* Answer a command with the simulator's line module. */
static size_t sim_answer(void *ctx, const char *cmd, char *out, size_t len)
{
    struct sim_line *s = ctx;
    return sim_harvard_line.handle(&s->line, s->now_ns, cmd, out, len);
}

/* Set the model time the responder answers at. */
static void sim_at(struct sim_line *s, int64_t ns)
{
    pthread_mutex_lock(&s->resp.lock);
    s->now_ns = ns;
    pthread_mutex_unlock(&s->resp.lock);
}

static void test_driver_runs_the_simulated_pumps_until_one_stalls(void **state)
{
    (void)state;
    struct pty_rig r;
    rig_open(&r, "0");
    const struct dev_param p[] = { { "address", "1", 1, 1 }, { "syringe.diameter", "4.78 mm", 1, 1 } };
    void *pump2 = pty_rig_add(&r, "hpump1", p, 2);
    struct sim_line *s = calloc(1, sizeof *s);
    assert_non_null(s);
    assert_int_equal(sim_harvard_line.state_size, sizeof s->line);
    sim_harvard_line.init(&s->line);
    sim_responder_start(&s->resp, r.pty.master, sim_answer, s);
    double v;
    assert_int_equal(r.drv->connect(r.dev, &r.link), 0);
    assert_int_equal(r.drv->connect(pump2, &r.link), 0);
    assert_float_equal(s->line.pump[0].diameter_mm, 14.57, 1e-9);
    assert_float_equal(s->line.pump[1].diameter_mm, 4.78, 1e-9);
    /* pump 0 infuses, pump 1 withdraws, on one line */
    assert_int_equal(r.drv->write(r.dev, &r.link, 0, 600), 0);
    assert_int_equal(r.drv->write(pump2, &r.link, 0, -2.5), 0);
    assert_int_equal(r.drv->read(r.dev, &r.link, 0, &v), 0);
    assert_float_equal(v, 600, 1e-9);
    assert_int_equal(r.drv->read(pump2, &r.link, 0, &v), 0);
    assert_float_equal(v, -2.5, 1e-9);
    sim_at(s, MIN_NS);                           /* one minute at 600 uL/min */
    assert_int_equal(r.drv->read(r.dev, &r.link, 1, &v), 0);
    assert_float_equal(v, 600, 1e-6);
    /* reversing pump 0 goes through a stop; a new rate while running is one command */
    assert_int_equal(r.drv->write(r.dev, &r.link, 0, -10), 0);
    assert_int_equal(r.drv->read(r.dev, &r.link, 0, &v), 0);
    assert_float_equal(v, -10, 1e-9);
    assert_int_equal(r.drv->write(r.dev, &r.link, 0, -20), 0);
    assert_int_equal(r.drv->read(r.dev, &r.link, 0, &v), 0);
    assert_float_equal(v, -20, 1e-9);
    assert_int_equal(r.drv->safe_state(r.dev, &r.link), 0);
    assert_int_equal(r.drv->read(r.dev, &r.link, 0, &v), 0);
    assert_float_equal(v, 0, 0);
    /* a reconnect while pump 1 withdraws leaves it withdrawing */
    assert_int_equal(r.drv->connect(pump2, &r.link), 0);
    assert_int_equal(r.drv->read(pump2, &r.link, 0, &v), 0);
    assert_float_equal(v, -2.5, 1e-9);
    /* the syringes run empty (the syringe-empty fault): an infusing pump stalls */
    assert_int_equal(r.drv->write(r.dev, &r.link, 0, 100), 0);
    pthread_mutex_lock(&s->resp.lock);
    sim_harvard_line.empty(&s->line, 2 * MIN_NS);
    s->now_ns = 2 * MIN_NS;
    pthread_mutex_unlock(&s->resp.lock);
    v = UNTOUCHED;
    assert_int_equal(r.drv->read(r.dev, &r.link, 0, &v), -EREMOTEIO);
    assert_non_null(strstr(r.link.err, "hpump1: stalled: syringe empty or blocked"));
    assert_float_equal(v, UNTOUCHED, 0);
    /* a new infusion stalls again at once; a stop clears the stall */
    assert_int_equal(r.drv->write(r.dev, &r.link, 0, 50), -EREMOTEIO);
    assert_non_null(strstr(r.link.err, "stalled"));
    assert_int_equal(r.drv->write(r.dev, &r.link, 0, 0), 0);
    assert_int_equal(r.drv->read(r.dev, &r.link, 0, &v), 0);
    assert_float_equal(v, 0, 0);
    /* withdrawing into the empty syringe works */
    assert_int_equal(r.drv->write(r.dev, &r.link, 0, -30), 0);
    assert_int_equal(r.drv->read(r.dev, &r.link, 0, &v), 0);
    assert_float_equal(v, -30, 1e-9);
    /* an address nobody in the chain has: silence */
    const struct dev_param p7[] = { { "address", "7", 1, 1 }, { "syringe.diameter", "4.78 mm", 1, 1 } };
    void *pump7 = pty_rig_add(&r, "hpump1", p7, 2);
    assert_int_equal(r.drv->read(pump7, &r.link, 0, &v), -ETIMEDOUT);
    r.drv->close(pump7);
    sim_responder_stop(&s->resp);
    free(s);
    r.drv->close(pump2);
    pty_rig_close(&r);
}

static void test_the_simulated_line_refuses_in_its_own_words(void **state)
{
    (void)state;
    struct sim_harvard h;
    sim_harvard_line.init(&h);
    char out[256];
    size_t n = sim_harvard_line.refuse(&h, "1:irun", out, sizeof out);
    struct harvard_reply r;
    char err[160];
    assert_int_equal(harvard_parse_reply(out, n, &r), (int)n);
    assert_int_equal(r.address, 1);
    assert_int_equal(harvard_reply_error(&r, "hpump2", "irun", err, sizeof err), -EREMOTEIO);
    assert_int_equal(sim_harvard_line.refuse(&h, "9:irun", out, sizeof out), 0);
    /* the model takes the manual's 4-letter abbreviations and refuses bad arguments */
    n = sim_harvard_line.handle(&h, 0, "irat 2 ml/min", out, sizeof out);
    assert_int_equal(harvard_parse_reply(out, n, &r), (int)n);
    assert_int_equal(r.n_lines, 0);
    assert_float_equal(h.pump[0].irate, 2000, 1e-9);
    n = sim_harvard_line.handle(&h, 0, "irate 2 furlongs", out, sizeof out);
    assert_int_equal(harvard_parse_reply(out, n, &r), (int)n);
    assert_int_equal(harvard_reply_error(&r, "hpump1", "irate", err, sizeof err), -EREMOTEIO);
    n = sim_harvard_line.handle(&h, 0, "irate 99 ml/min", out, sizeof out);
    assert_int_equal(harvard_parse_reply(out, n, &r), (int)n);
    assert_string_equal(r.line[0], "Out of range");
    n = sim_harvard_line.handle(&h, 0, "fly", out, sizeof out);
    assert_int_equal(harvard_parse_reply(out, n, &r), (int)n);
    assert_string_equal(r.line[0], "Unknown command");
}

static void test_the_simulated_syringe_runs_down_and_stalls(void **state)
{
    (void)state;
    struct sim_harvard h;
    sim_harvard_line.init(&h);
    char out[256];
    struct harvard_reply r;
    double v;
    /* pump 1 holds 1 mL, half full at power-up: 500 uL at 1 mL/min lasts 30 s */
    size_t n = sim_harvard_line.handle(&h, 0, "1:irate 1 ml/min", out, sizeof out);
    n = sim_harvard_line.handle(&h, 0, "1:irun", out, sizeof out);
    assert_int_equal(harvard_parse_reply(out, n, &r), (int)n);
    assert_int_equal(r.prompt, '>');
    n = sim_harvard_line.handle(&h, MIN_NS / 4, "1:ivolume", out, sizeof out);
    assert_int_equal(harvard_parse_reply(out, n, &r), (int)n);
    assert_int_equal(harvard_parse_volume(r.line[0], &v), 0);
    assert_float_equal(v, 250, 1e-6);
    assert_int_equal(r.prompt, '>');
    n = sim_harvard_line.handle(&h, MIN_NS, "1:crate", out, sizeof out);
    assert_int_equal(harvard_parse_reply(out, n, &r), (int)n);
    assert_int_equal(r.address, 1);
    assert_int_equal(r.prompt, '*');
    n = sim_harvard_line.handle(&h, MIN_NS, "1:ivolume", out, sizeof out);
    assert_int_equal(harvard_parse_reply(out, n, &r), (int)n);
    assert_int_equal(harvard_parse_volume(r.line[0], &v), 0);
    assert_float_equal(v, 500, 1e-6);       /* all it held, not a drop more */
    /* the stall stays until a stop; pump 0 never noticed */
    n = sim_harvard_line.handle(&h, MIN_NS, "1:irate 2 ul/min", out, sizeof out);
    assert_int_equal(harvard_parse_reply(out, n, &r), (int)n);
    assert_int_equal(r.prompt, '*');
    n = sim_harvard_line.handle(&h, MIN_NS, "1:stop", out, sizeof out);
    assert_int_equal(harvard_parse_reply(out, n, &r), (int)n);
    assert_int_equal(r.prompt, ':');
    n = sim_harvard_line.handle(&h, MIN_NS, "crate", out, sizeof out);
    assert_int_equal(harvard_parse_reply(out, n, &r), (int)n);
    assert_int_equal(r.address, 0);
    assert_int_equal(r.prompt, ':');
    /* withdrawing fills it up to its capacity, then it stalls too */
    n = sim_harvard_line.handle(&h, MIN_NS, "1:wrate 1 ml/min", out, sizeof out);
    n = sim_harvard_line.handle(&h, MIN_NS, "1:wrun", out, sizeof out);
    assert_int_equal(harvard_parse_reply(out, n, &r), (int)n);
    assert_int_equal(r.prompt, '<');
    n = sim_harvard_line.handle(&h, 3 * MIN_NS, "1:wvolume", out, sizeof out);
    assert_int_equal(harvard_parse_reply(out, n, &r), (int)n);
    assert_int_equal(r.prompt, '*');
    assert_int_equal(harvard_parse_volume(r.line[0], &v), 0);
    assert_float_equal(v, 1000, 1e-6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_commands_carry_the_address_only_when_not_zero),
        cmocka_unit_test(test_numbers_and_rates_are_formatted_for_the_pump),
        cmocka_unit_test(test_rate_volume_and_diameter_replies_parse),
        cmocka_unit_test(test_recorded_replies_parse_or_are_refused),
        cmocka_unit_test(test_long_replies_are_garbled),
        cmocka_unit_test(test_every_prefix_of_a_reply_is_incomplete),
        cmocka_unit_test(test_refusals_are_remote_errors_and_prompts_have_meanings),
        cmocka_unit_test(test_rig_entry_gives_two_channels),
        cmocka_unit_test(test_stale_bytes_are_drained_before_a_command),
        cmocka_unit_test(test_driver_runs_the_simulated_pumps_until_one_stalls),
        cmocka_unit_test(test_the_simulated_line_refuses_in_its_own_words),
        cmocka_unit_test(test_the_simulated_syringe_runs_down_and_stalls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
