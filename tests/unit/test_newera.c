/*
 * New Era pumps: number formats, reply framing with recorded good, bad and
 * partial replies, the rig entry, what only New Era pumps do (a power-cut
 * alarm, safe mode) and the driver against the simulator's independent pump
 * implementation. The steps every serial driver shares (exact bytes, refusals,
 * bad replies, a closed line, bad rig entries...) are in test_driver_contract.c.
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
#include <unistd.h>

#include "config_errors.h"
#include "drivers/driver.h"
#include "drivers/newera.h"
#include "drivers/sim/physics.h"
#include "drivers/sim/sim_newera.h"
#include "pty_rig.h"
#include "pty_script.h"
#include "sim_responder.h"
#include "syringe_entry.h"

#define LINK_TIMEOUT_MS 100
#define UNTOUCHED 12345.0

/* ------------------------------------------------------------------------ */
/* Numbers                                                                  */
/* ------------------------------------------------------------------------ */

static void test_float_format_keeps_four_digits_and_three_decimals(void **state)
{
    (void)state;
    static const struct { double v; const char *want; } ok[] = {
        { 14.57, "14.57" }, { 1234, "1234" }, { 123.4, "123.4" }, { 12.34, "12.34" },
        { 1.234, "1.234" }, { 0.123, "0.123" }, { 0, "0.000" }, { 26.7, "26.70" },
        { 9999.4, "9999" }, { 999.96, "1000" }, { 4.66, "4.660" },
    };
    char b[16];
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        assert_int_equal(newera_format_float(ok[i].v, b, sizeof b), 0);
        assert_string_equal(b, ok[i].want);
    }
    assert_int_equal(newera_format_float(9999.5, b, sizeof b), -ERANGE);
    assert_int_equal(newera_format_float(-0.5, b, sizeof b), -ERANGE);
    assert_int_equal(newera_format_float(NAN, b, sizeof b), -ERANGE);
    assert_int_equal(newera_format_float(INFINITY, b, sizeof b), -ERANGE);
    assert_int_equal(newera_format_float(14.57, b, 5), -ERANGE);    /* "14.57" needs 6 bytes */
}

static void test_rate_format_picks_the_most_exact_unit(void **state)
{
    (void)state;
    static const struct { double v; const char *want; } ok[] = {
        { 12.5, "12.50 UM" }, { 1234, "1234 UM" }, { 0.5, "0.500 UM" }, { 1.234, "1.234 UM" },
        { 5000, "5000 UM" },
        { 12345, "740.7 MH" },          /* 12.345 mL/min: MM would lose 5 uL/min */
        { 0.0123, "0.738 UH" },         /* UM would keep 2 digits */
        { 0.25 / 60, "0.250 UH" },      /* 0.25 uL/h */
        { 0.01, "0.010 UM" },           /* UH 0.600 is as exact: the first unit wins */
        { 100000, "100.0 MM" },         /* 100 mL/min: too many digits in UM */
        { 10000, "10.00 MM" },
        { 9999.6, "10.00 MM" },
    };
    char b[24];
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        assert_int_equal(newera_format_rate(ok[i].v, b, sizeof b), 0);
        assert_string_equal(b, ok[i].want);
    }
    const double bad[] = { 0, -1, NAN, INFINITY, 1e-6, 1e7 };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(newera_format_rate(bad[i], b, sizeof b), -ERANGE);
    assert_int_equal(newera_format_rate(12.5, b, 8), -ERANGE);      /* no room for "12.50 UM" */
}

static void test_rate_and_volume_replies_parse(void **state)
{
    (void)state;
    double v, w;
    static const struct { const char *s; double want; } rates[] = {
        { "12.50UM", 12.5 }, { "12.50 UM", 12.5 }, { "30.00UH", 0.5 }, { "1.500MM", 1500 },
        { "60.00MH", 1000 }, { "0.000UM", 0 }, { ".5UM", 0.5 },
    };
    for (size_t i = 0; i < sizeof rates / sizeof rates[0]; i++) {
        assert_int_equal(newera_parse_rate(rates[i].s, &v), 0);
        assert_float_equal(v, rates[i].want, 1e-9);
    }
    const char *bad_rates[] = { "", "UM", "12.5", "12.5XX", "1e3UM", "-1UM", "1.2.3UM",
                                "12.50UMX", "nanUM", "12.50um", "123456789012345678UM" };
    for (size_t i = 0; i < sizeof bad_rates / sizeof bad_rates[0]; i++)
        assert_int_equal(newera_parse_rate(bad_rates[i], &v), -EBADMSG);
    assert_int_equal(newera_parse_rate(NULL, &v), -EBADMSG);

    assert_int_equal(newera_parse_dispensed("I0.250W0.010ML", &v, &w), 0);
    assert_float_equal(v, 250, 1e-9);
    assert_float_equal(w, 10, 1e-9);
    assert_int_equal(newera_parse_dispensed("I12.50W0.000UL", &v, &w), 0);
    assert_float_equal(v, 12.5, 1e-9);
    assert_float_equal(w, 0, 0);
    const char *bad_dis[] = { "", "I0.250", "I0.250W0.010", "I0.250W0.010XL", "W0.1I0.2ML",
                              "I.W.ML", "I0.250W0.010MLX", "0.250W0.010ML" };
    for (size_t i = 0; i < sizeof bad_dis / sizeof bad_dis[0]; i++)
        assert_int_equal(newera_parse_dispensed(bad_dis[i], &v, &w), -EBADMSG);
}

/* ------------------------------------------------------------------------ */
/* Reply framing                                                            */
/* ------------------------------------------------------------------------ */

/* A recorded reply and what parsing it must give. */
struct reply_case {
    const char *bytes;
    int rc;             /* bytes consumed, 0 (incomplete) or -EBADMSG */
    int address;
    char status, alarm;
    const char *data;
};

static const struct reply_case reply_cases[] = {
    { "\x02" "00S\x03", 5, 0, 'S', 0, "" },
    { "\x02" "01I12.50UM\x03", 12, 1, 'I', 0, "12.50UM" },
    { "\x02" "99W\x03", 5, 99, 'W', 0, "" },
    { "\x02" "00P\x03", 5, 0, 'P', 0, "" },
    { "\x02" "00T\x03", 5, 0, 'T', 0, "" },
    { "\x02" "00U\x03", 5, 0, 'U', 0, "" },
    { "\x02" "00X\x03", 5, 0, 'X', 0, "" },
    { "\x02" "00SI0.250W0.000ML\x03", 19, 0, 'S', 0, "I0.250W0.000ML" },
    /* alarms */
    { "\x02" "00A?S\x03", 7, 0, 'A', 'S', "" },
    { "\x02" "00A?R\x03", 7, 0, 'A', 'R', "" },
    { "\x02" "03A?T\x03", 7, 3, 'A', 'T', "" },
    { "\x02" "00A?E\x03", 7, 0, 'A', 'E', "" },
    { "\x02" "00A?O\x03", 7, 0, 'A', 'O', "" },
    /* command errors are data after the prompt */
    { "\x02" "00S?\x03", 6, 0, 'S', 0, "?" },
    { "\x02" "00S?OOR\x03", 9, 0, 'S', 0, "?OOR" },
    { "\x02" "00I?NA\x03", 8, 0, 'I', 0, "?NA" },
    { "\x02" "00S?COM\x03", 9, 0, 'S', 0, "?COM" },
    { "\x02" "00S?IGN\x03", 9, 0, 'S', 0, "?IGN" },
    /* noise before the frame is skipped */
    { "xx\x01\x02" "00S\x03", 8, 0, 'S', 0, "" },
    { "\x03\x02" "00S\x03", 6, 0, 'S', 0, "" },
    { "\x02" "00I12\x02" "00S\x03", 11, 0, 'S', 0, "" },     /* a truncated frame, then a whole one */
    /* two frames: the first one only */
    { "\x02" "00S\x03\x02" "01I\x03", 5, 0, 'S', 0, "" },
    /* incomplete: nothing yet */
    { "", 0, 0, 0, 0, NULL },
    { "\x02" "00S12.5", 0, 0, 0, 0, NULL },
    { "\x02", 0, 0, 0, 0, NULL },
    { "hello", 0, 0, 0, 0, NULL },
    { "hello\x03", 0, 0, 0, 0, NULL },
    /* malformed */
    { "\x02" "0\x03", -EBADMSG, 0, 0, 0, NULL },
    { "\x02\x03", -EBADMSG, 0, 0, 0, NULL },
    { "\x02" "00\x03", -EBADMSG, 0, 0, 0, NULL },
    { "\x02" "00Q\x03", -EBADMSG, 0, 0, 0, NULL },
    { "\x02" "x0S\x03", -EBADMSG, 0, 0, 0, NULL },
    { "\x02" "00A\x03", -EBADMSG, 0, 0, 0, NULL },
    { "\x02" "00A?\x03", -EBADMSG, 0, 0, 0, NULL },
    { "\x02" "00AXS\x03", -EBADMSG, 0, 0, 0, NULL },
    { "\x02" "00S\x01\x03", -EBADMSG, 0, 0, 0, NULL },
    { "\x02" "00S\xff\x03", -EBADMSG, 0, 0, 0, NULL },
    { "\x02" "00S0123456789012345678901234567890123456789012345678901234567890123\x03",
      -EBADMSG, 0, 0, 0, NULL },
};

static void test_recorded_replies_parse_or_are_refused(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof reply_cases / sizeof reply_cases[0]; i++) {
        const struct reply_case *c = &reply_cases[i];
        struct newera_reply r;
        int rc = newera_parse_reply(c->bytes, strlen(c->bytes), &r);
        if (rc != c->rc)
            fail_msg("reply case %zu: rc %d, want %d", i, rc, c->rc);
        if (rc <= 0)
            continue;
        assert_int_equal(r.address, c->address);
        assert_int_equal(r.status, c->status);
        assert_int_equal(r.alarm, c->alarm);
        assert_string_equal(r.data, c->data);
    }
    struct newera_reply r;
    assert_int_equal(newera_parse_reply(NULL, 0, &r), 0);
    /* A NUL where the prompt goes (line noise) is no prompt; found by fuzz_replies. */
    static const char nul_prompt[] = "\x02" "00\0" "12.50UM\x03";
    assert_int_equal(newera_parse_reply(nul_prompt, sizeof nul_prompt - 1, &r), -EBADMSG);
}

static void test_every_prefix_of_a_reply_is_incomplete(void **state)
{
    (void)state;
    const char *whole = "noise\x02" "07I123.4UH\x03";
    struct newera_reply r;
    for (size_t n = 0; n < strlen(whole); n++)
        assert_int_equal(newera_parse_reply(whole, n, &r), 0);
    assert_int_equal(newera_parse_reply(whole, strlen(whole), &r), (int)strlen(whole));
    assert_int_equal(r.address, 7);
    assert_string_equal(r.data, "123.4UH");
}

static void test_alarms_and_refusals_are_remote_errors(void **state)
{
    (void)state;
    struct newera_reply r = { .address = 0, .status = 'A', .alarm = 'S' };
    char err[160];
    assert_int_equal(newera_reply_error(&r, "pump1", "RAT", err, sizeof err), -EREMOTEIO);
    assert_string_equal(err, "pump1: motor stalled (A?S): syringe empty or blocked");
    r.alarm = 'R';
    assert_int_equal(newera_reply_error(&r, "pump1", "RAT", err, sizeof err), -EREMOTEIO);
    assert_string_equal(err, "pump1: pump was reset (A?R): power was interrupted");
    r.alarm = 'T';
    assert_int_equal(newera_reply_error(&r, "pump1", "RAT", err, sizeof err), -EREMOTEIO);
    assert_non_null(strstr(err, "(A?T)"));
    r.alarm = 'Z';
    assert_int_equal(newera_reply_error(&r, "pump1", "RAT", err, sizeof err), -EREMOTEIO);
    assert_string_equal(err, "pump1: unknown alarm A?Z from the pump");

    struct newera_reply q = { .status = 'S', .data = "?OOR" };
    assert_int_equal(newera_reply_error(&q, "pump2", "RAT 9999 UM", err, sizeof err), -EREMOTEIO);
    assert_string_equal(err, "pump2: pump refused 'RAT 9999 UM': value out of range (?OOR)");
    strcpy(q.data, "?");
    assert_int_equal(newera_reply_error(&q, "pump2", "FOO", err, sizeof err), -EREMOTEIO);
    assert_non_null(strstr(err, "not recognised"));
    strcpy(q.data, "?NA");
    assert_int_equal(newera_reply_error(&q, "pump2", "DIA 14.57", err, sizeof err), -EREMOTEIO);
    assert_non_null(strstr(err, "not applicable"));
    strcpy(q.data, "12.50UM");
    err[0] = '\0';
    assert_int_equal(newera_reply_error(&q, "pump2", "RAT", err, sizeof err), 0);
    assert_string_equal(err, "");
}

static void test_delivered_flow_follows_the_prompt(void **state)
{
    (void)state;
    assert_float_equal(newera_delivered_flow('I', 12.5), 12.5, 0);
    assert_float_equal(newera_delivered_flow('W', 12.5), -12.5, 0);
    const char *others = "SPTUXA";
    for (const char *p = others; *p; p++)
        assert_float_equal(newera_delivered_flow(*p, 12.5), 0, 0);
}

/* ------------------------------------------------------------------------ */
/* The rig entry                                                            */
/* ------------------------------------------------------------------------ */

static void test_rig_entry_gives_two_channels(void **state)
{
    (void)state;
    expect_syringe_pump_channels("newera");
}

/* ------------------------------------------------------------------------ */
/* The rig: a device on a pty, answered by a script                         */
/* ------------------------------------------------------------------------ */

/* The pumps' line, as the pumps are set up: 19200 8N1. */
static const struct link_config pumps_line = { .name = "pumps", .baud = 19200, .parity = 'N',
                                               .data_bits = 8, .stop_bits = 1,
                                               .timeout_ms = LINK_TIMEOUT_MS };

/* Open the pty, the link and a pump at address addr. */
static void rig_open(struct pty_rig *r, const char *addr)
{
    const struct dev_param p[] = { { "address", addr, 1, 1 }, { "syringe.diameter", "14.57 mm", 1, 1 },
                                   { "syringe.volume", "10 mL", 1, 1 } };
    pty_rig_open(r, &pumps_line, "newera", "pump1", p, 3);
}

#define N(a) (sizeof a / sizeof a[0])

/* ------------------------------------------------------------------------ */
/* End to end over the pty                                                  */
/* ------------------------------------------------------------------------ */

static void test_connect_clears_a_power_cut_alarm(void **state)
{
    (void)state;
    static const struct step steps[] = {
        { "0DIA 14.57\r", "\x02" "00A?R\x03", 0, false },
        { "0DIA 14.57\r", "\x02" "00S\x03", 0, false },
        { "0DIR INF\r", "\x02" "00S\x03", 0, false },
    };
    struct pty_rig r;
    rig_open(&r, "0");
    script_start(&r.script, r.pty.master, steps, N(steps));
    assert_int_equal(r.drv->connect(r.dev, &r.link), 0);
    script_finish(&r.script);
    pty_rig_close(&r);
}

/* ------------------------------------------------------------------------ */
/* Against the simulator's pump                                             */
/* ------------------------------------------------------------------------ */

/* The simulated pumps and the responder answering with them. */
struct sim_pumps {
    struct sim_responder resp;
    struct sim_physics phys;    /* guarded by resp.lock */
};

/* Answer a command with the simulator's pump model. */
static size_t sim_answer(void *ctx, const char *cmd, char *out, size_t len)
{
    struct sim_pumps *s = ctx;
    return sim_newera_handle(&s->phys, cmd, out, len);
}

static void test_driver_runs_the_simulated_pump_until_it_stalls(void **state)
{
    (void)state;
    struct pty_rig r;
    rig_open(&r, "1");
    struct sim_pumps *s = calloc(1, sizeof *s);
    assert_non_null(s);
    sim_physics_init(&s->phys, 1);
    sim_responder_start(&s->resp, r.pty.master, sim_answer, s);
    double v;
    assert_int_equal(r.drv->connect(r.dev, &r.link), 0);
    assert_int_equal(r.drv->write(r.dev, &r.link, 0, 12.5), 0);
    assert_int_equal(r.drv->read(r.dev, &r.link, 0, &v), 0);
    assert_float_equal(v, 12.5, 1e-9);
    assert_int_equal(r.drv->write(r.dev, &r.link, 0, 600), 0);
    pthread_mutex_lock(&s->resp.lock);
    sim_physics_advance_to(&s->phys, 60LL * 1000000000LL);      /* one minute at 600 uL/min */
    pthread_mutex_unlock(&s->resp.lock);
    assert_int_equal(r.drv->read(r.dev, &r.link, 1, &v), 0);
    assert_true(v > 550 && v < 650);
    assert_int_equal(r.drv->safe_state(r.dev, &r.link), 0);
    assert_int_equal(r.drv->read(r.dev, &r.link, 0, &v), 0);
    assert_float_equal(v, 0, 0);
    /* An empty syringe stalls the pump: the alarm is an error, never a value. */
    pthread_mutex_lock(&s->resp.lock);
    s->phys.pump[1].remaining_ul = 0.001;
    pthread_mutex_unlock(&s->resp.lock);
    assert_int_equal(r.drv->write(r.dev, &r.link, 0, 100), 0);
    pthread_mutex_lock(&s->resp.lock);
    sim_physics_advance_to(&s->phys, 61LL * 1000000000LL);
    pthread_mutex_unlock(&s->resp.lock);
    v = UNTOUCHED;
    assert_int_equal(r.drv->read(r.dev, &r.link, 0, &v), -EREMOTEIO);
    assert_string_equal(r.link.err, "pump1: motor stalled (A?S): syringe empty or blocked");
    assert_float_equal(v, UNTOUCHED, 0);
    sim_responder_stop(&s->resp);
    free(s);
    pty_rig_close(&r);
}

/* Safe-mode packets: the manual's own example (SAF0 back to Basic mode is
 * 02 08 'S' 'A' 'F' '0' 55 43 03), replies with good, bad and partial CRCs. */
static void test_safe_mode_packets(void **state)
{
    (void)state;
    assert_int_equal(newera_crc16("SAF0", 4), 0x5543);
    char pk[32];
    int n = newera_safe_packet("SAF0", 4, pk, sizeof pk);
    static const char want[] = { 0x02, 0x08, 'S', 'A', 'F', '0', 0x55, 0x43, 0x03 };
    assert_int_equal(n, (int)sizeof want);
    assert_memory_equal(pk, want, sizeof want);
    /* A reply "00S12.50UM" wrapped, after some noise. */
    char buf[64] = "xx";
    n = newera_safe_packet("00S12.50UM", 10, buf + 2, sizeof buf - 2);
    struct newera_reply r;
    assert_int_equal(newera_parse_safe_reply(buf, (size_t)n + 2, &r), n + 2);
    assert_int_equal(r.address, 0);
    assert_int_equal(r.status, 'S');
    assert_string_equal(r.data, "12.50UM");
    for (int cut = 0; cut < n + 2; cut++)          /* partial: not yet */
        assert_int_equal(newera_parse_safe_reply(buf, (size_t)cut, &r), 0);
    buf[2 + 5] ^= 1;                                /* a flipped bit: the CRC says no */
    assert_int_equal(newera_parse_safe_reply(buf, (size_t)n + 2, &r), -EBADMSG);
    buf[2 + 5] ^= 1;
    buf[2 + n - 1] = 'x';                           /* no ETX where the length says */
    assert_int_equal(newera_parse_safe_reply(buf, (size_t)n + 2, &r), -EBADMSG);
    /* An alarm in a packet (A?T: the pump's safe mode stopped it). */
    n = newera_safe_packet("01A?T", 5, buf, sizeof buf);
    assert_int_equal(newera_parse_safe_reply(buf, (size_t)n, &r), n);
    assert_int_equal(r.status, 'A');
    assert_int_equal(r.alarm, 'T');
    assert_int_equal(newera_safe_packet(buf, 300, pk, sizeof pk), -ERANGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_float_format_keeps_four_digits_and_three_decimals),
        cmocka_unit_test(test_rate_format_picks_the_most_exact_unit),
        cmocka_unit_test(test_rate_and_volume_replies_parse),
        cmocka_unit_test(test_recorded_replies_parse_or_are_refused),
        cmocka_unit_test(test_every_prefix_of_a_reply_is_incomplete),
        cmocka_unit_test(test_alarms_and_refusals_are_remote_errors),
        cmocka_unit_test(test_delivered_flow_follows_the_prompt),
        cmocka_unit_test(test_rig_entry_gives_two_channels),
        cmocka_unit_test(test_connect_clears_a_power_cut_alarm),
        cmocka_unit_test(test_driver_runs_the_simulated_pump_until_it_stalls),
        cmocka_unit_test(test_safe_mode_packets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
