/* New Era pumps: framing and parsing, and the driver against the simulated pump over a pty. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "driver.h"
#include "newera.h"
#include "physics.h"
#include "sim_newera.h"

static void test_rate_format_keeps_four_digits(void **state)
{
    (void)state;
    char b[32];
    static const struct { double v; const char *want; } cases[] = {
        { 12.5, "12.50UM" }, { 1234, "1234UM" }, { 0.5, "0.500UM" }, { 1.234, "1.234UM" },
        { 5000, "5000UM" }, { 12345, "740.7MH" }, { 50, "50.00UM" }, { 0.01, "0.010UM" }, { 0.0123, "0.738UH" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(newera_format_rate(cases[i].v, b, sizeof b), 0);
        assert_string_equal(b, cases[i].want);
    }
    assert_int_equal(newera_format_rate(0, b, sizeof b), -ERANGE);
    assert_int_equal(newera_format_rate(-1, b, sizeof b), -ERANGE);
    assert_int_equal(newera_format_rate(NAN, b, sizeof b), -ERANGE);
    assert_int_equal(newera_format_float(14.57, b, sizeof b), 0);
    assert_string_equal(b, "14.57");
}

static void test_replies_good_bad_and_partial(void **state)
{
    (void)state;
    struct newera_reply r;
    assert_int_equal(newera_parse_reply("\x02" "00S\x03", 5, &r), 5);
    assert_int_equal(r.address, 0);
    assert_int_equal(r.status, 'S');
    assert_int_equal(newera_parse_reply("junk\x02" "01I12.50UM\x03", 16, &r), 16);
    assert_int_equal(r.address, 1);
    assert_string_equal(r.data, "12.50UM");
    assert_int_equal(newera_parse_reply("\x02" "00A?S\x03", 7, &r), 7);
    assert_int_equal(r.status, 'A');
    assert_int_equal(r.alarm, 'S');
    assert_int_equal(newera_parse_reply("\x02" "00S?OOR\x03", 9, &r), 9);
    assert_string_equal(r.data, "?OOR");
    assert_int_equal(newera_parse_reply("\x02" "00S12.5", 8, &r), 0);        /* no ETX yet */
    assert_int_equal(newera_parse_reply("", 0, &r), 0);
    assert_int_equal(newera_parse_reply("\x02" "0\x03", 3, &r), -EBADMSG);   /* too short */
    assert_int_equal(newera_parse_reply("\x02" "00Q\x03", 5, &r), -EBADMSG);  /* no such status */
    assert_int_equal(newera_parse_reply("\x02" "x0S\x03", 5, &r), -EBADMSG);
    double v, w;
    assert_int_equal(newera_parse_rate("30.00UH", &v), 0);
    assert_float_equal(v, 0.5, 1e-12);
    assert_int_equal(newera_parse_rate("12.5XX", &v), -EBADMSG);
    assert_int_equal(newera_parse_dispensed("I0.250W0.010ML", &v, &w), 0);
    assert_float_equal(v, 250, 1e-9);
    assert_float_equal(w, 10, 1e-9);
    assert_int_equal(newera_parse_dispensed("I0.250", &v, &w), -EBADMSG);
}

/* The simulated pump answering on the master side of a pty, in a thread. */
struct responder {
    int master;
    struct sim_physics phys;
    char seen[2048];
    volatile int stop;
};

static void *respond(void *arg)
{
    struct responder *r = arg;
    char line[128];
    size_t n = 0;
    while (!r->stop) {
        struct pollfd p = { .fd = r->master, .events = POLLIN };
        if (poll(&p, 1, 50) <= 0)
            continue;
        char c;
        if (read(r->master, &c, 1) != 1)
            continue;
        if (c != '\r') {
            if (n + 1 < sizeof line)
                line[n++] = c;
            continue;
        }
        line[n] = '\0';
        strncat(r->seen, line, sizeof r->seen - strlen(r->seen) - 2);
        strcat(r->seen, "|");
        n = 0;
        char out[128];
        size_t len = sim_newera_handle(&r->phys, line, out, sizeof out);
        if (len > 0 && write(r->master, out, len) < 0)
            break;
    }
    return NULL;
}

static void cfg_error(const struct dev_config *cfg, const char *key, const char *fmt, ...)
{
    (void)cfg; (void)key; (void)fmt;
    fail_msg("unexpected config error");
}

static void test_driver_talks_to_the_simulated_pump_over_a_pty(void **state)
{
    (void)state;
    static struct responder r;
    memset(&r, 0, sizeof r);
    sim_physics_init(&r.phys, 1);
    r.master = posix_openpt(O_RDWR | O_NOCTTY);
    assert_true(r.master >= 0 && grantpt(r.master) == 0 && unlockpt(r.master) == 0);
    char path[64];
    snprintf(path, sizeof path, "%s", ptsname(r.master));
    int keep = open(path, O_RDWR | O_NOCTTY);
    struct termios t;
    tcgetattr(keep, &t);
    cfmakeraw(&t);
    tcsetattr(keep, TCSANOW, &t);
    pthread_t th;
    pthread_create(&th, NULL, respond, &r);

    const struct driver_ops *drv = driver_find("newera");
    assert_non_null(drv);
    struct dev_param params[] = { { "address", "1", 1, 1 }, { "syringe.diameter", "14.57 mm", 1, 1 },
                                  { "syringe.volume", "10 mL", 1, 1 } };
    struct dev_config cfg = { .name = "pump2", .file = "t", .dir = ".", .params = params,
                              .n_params = 3, .error = cfg_error };
    void *st;
    struct driver_channel ch[DRIVER_MAX_CHANNELS];
    size_t n;
    assert_int_equal(drv->open(&cfg, &st, ch, &n), 0);
    assert_int_equal(n, 2);
    assert_float_equal(ch[0].volume_ul, 10000, 0);
    struct link_config lc = { .name = "pumps", .type = LINK_SERIAL, .port = path, .baud = 19200,
                              .parity = 'N', .data_bits = 8, .stop_bits = 1, .timeout_ms = 500 };
    struct bus_link link = { 0 };
    assert_int_equal(link_open(&link, &lc), 0);
    assert_int_equal(drv->connect(st, &link), 0);
    assert_int_equal(drv->write(st, &link, 0, 12.5), 0);
    double v;
    assert_int_equal(drv->read(st, &link, 0, &v), 0);
    assert_float_equal(v, 12.5, 1e-9);
    assert_int_equal(drv->write(st, &link, 0, 12.5), 0);        /* unchanged: nothing sent */
    assert_int_equal(drv->write(st, &link, 0, 0.5), 0);         /* only the rate changes */
    assert_int_equal(drv->safe_state(st, &link), 0);
    assert_int_equal(drv->read(st, &link, 0, &v), 0);
    assert_float_equal(v, 0, 0);
    /* The exact commands on the wire, in order. */
    assert_string_equal(r.seen, "1DIA 14.57|1DIR INF|1RAT 12.50UM|1RUN|1RAT|1RAT 0.500UM|1STP|1RAT|");
    /* An empty syringe stalls the pump: the alarm is an error, never a value. */
    r.phys.pump[1].remaining_ul = 0.001;
    assert_int_equal(drv->write(st, &link, 0, 100), 0);
    sim_physics_advance_to(&r.phys, 1000000000LL);
    assert_int_equal(drv->read(st, &link, 0, &v), -EREMOTEIO);
    assert_non_null(strstr(link.err, "stalled"));
    /* A pump at an address nobody answers: a time-out. */
    params[0].value = "7";
    void *st2;
    assert_int_equal(drv->open(&cfg, &st2, ch, &n), 0);
    assert_int_equal(drv->read(st2, &link, 0, &v), -ETIMEDOUT);
    drv->close(st2);
    link_close(&link);
    drv->close(st);
    r.stop = 1;
    pthread_join(th, NULL);
    close(keep);
    close(r.master);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rate_format_keeps_four_digits),
        cmocka_unit_test(test_replies_good_bad_and_partial),
        cmocka_unit_test(test_driver_talks_to_the_simulated_pump_over_a_pty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
