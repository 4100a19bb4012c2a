/* The OB1-style pressure controller driver: framing, parsing, rig entries, and the driver
 * over a pty against the simulated controller pushing the simulated chip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "drivers/driver.h"
#include "drivers/ob1.h"
#include "drivers/sim/physics.h"
#include "drivers/sim/sim_ob1.h"
#include "pty_rig.h"

#define N(a) (sizeof a / sizeof a[0])
#define UNTOUCHED 12345.0

/* ------------------------------------------------------------------------ */
/* Framing                                                                  */
/* ------------------------------------------------------------------------ */

static void test_commands_are_framed_as_documented(void **state)
{
    (void)state;
    char buf[64];
    assert_int_equal(ob1_format(buf, sizeof buf, "PINGA", false, ""), 8);
    assert_string_equal(buf, "<PINGA?\n");
    assert_int_equal(ob1_format(buf, sizeof buf, "PRESS", true, ":0:250.00"), 17);
    assert_string_equal(buf, "<PRESS!:0:250.00\n");
    assert_int_equal(ob1_format(buf, 8, "PRESS", true, ":0:250.00"), -ERANGE);
}

static void test_reply_lines_are_taken_whole_or_not_at_all(void **state)
{
    (void)state;
    char line[OB1_LINE_MAX];
    assert_int_equal(ob1_take_line("<FIRMV?:1.0\n", 12, line, sizeof line), 12);
    assert_string_equal(line, "<FIRMV?:1.0");
    assert_int_equal(ob1_take_line("<FIRMV?:1.0\r\nX", 14, line, sizeof line), 13);
    assert_string_equal(line, "<FIRMV?:1.0");
    assert_int_equal(ob1_take_line("<FIRMV?:1.0", 11, line, sizeof line), 0);
    assert_int_equal(ob1_take_line("", 0, line, sizeof line), 0);
    assert_int_equal(ob1_take_line("<FI\x01RMV\n", 8, line, sizeof line), -EBADMSG);
    assert_int_equal(ob1_take_line("abcdefgh\n", 9, line, 4), -EBADMSG);
    assert_int_equal(ob1_take_line("abcdefgh", 8, line, 4), -EBADMSG);  /* too long to ever end */
}

static void test_pinga_answers_parse_or_are_refused(void **state)
{
    (void)state;
    double reg[OB1_MAX_CHANNELS];
    assert_int_equal(ob1_parse_pinga("<PINGA?:100.5:0:0:20:1.5:3:-3:0:0:0:0:0:0:1", reg), 4);
    assert_float_equal(reg[0], 100.5, 0);
    assert_float_equal(reg[1], 20, 0);
    assert_float_equal(reg[2], -3, 0);
    assert_float_equal(reg[3], 0, 0);
    assert_int_equal(ob1_parse_pinga("PINGA:7:0:0", reg), 1);
    assert_int_equal(ob1_parse_pinga("<PINGA?:7:0:0:x:0:0", reg), 1);   /* channel 2 garbled */
    assert_int_equal(ob1_parse_pinga("<PINGA?:nan:0:0", reg), -EBADMSG);
    assert_int_equal(ob1_parse_pinga("<PRESS!:0:100", reg), -EBADMSG);
    assert_int_equal(ob1_parse_pinga("<PINGAX?:1", reg), -EBADMSG);
    assert_int_equal(ob1_parse_pinga("<PINGA?", reg), -EBADMSG);
    assert_true(ob1_reply_is("<PRESS!:0:1", "PRESS"));
    assert_false(ob1_reply_is("<PRESSX!:0:1", "PRESS"));
    assert_true(ob1_reply_refused("<PRESS!:ERR:VALUE"));
}

/* ------------------------------------------------------------------------ */
/* Rig entries                                                              */
/* ------------------------------------------------------------------------ */

static void test_rig_entry_gives_pressure_channels(void **state)
{
    (void)state;
    static const struct dev_param p[] = { { "channels", "2", 1, 1 },
                                          { "max_pressure", "1 bar", 1, 1 } };
    struct config_errors e = { 0 };
    void *st;
    struct driver_channel ch[DRIVER_MAX_CHANNELS];
    size_t n = 0;
    assert_int_equal(pty_rig_open_device("ob1", "ob1", p, N(p), &e, &st, ch, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(ch[1].name, "p2");
    assert_int_equal(ch[0].q, Q_PRESSURE);
    assert_true(ch[0].readable && ch[0].writable && ch[0].reassert && !ch[0].readback);
    assert_float_equal(ch[0].max, 1000, 1e-9);
    assert_float_equal(ch[0].min, 0, 0);
    driver_find("ob1")->close(st);
}

static void test_bad_rig_entries_are_all_reported(void **state)
{
    (void)state;
    static const struct dev_param p[] = { { "channels", "6", 1, 1 }, { "max_presure", "1 bar", 1, 1 },
                                          { "min_pressure", "3 bar", 1, 1 },
                                          { "readback", "yes", 1, 1 } };
    struct config_errors e = { 0 };
    void *st = NULL;
    struct driver_channel ch[DRIVER_MAX_CHANNELS];
    size_t n = 0;
    assert_int_equal(pty_rig_open_device("ob1", "ob1", p, N(p), &e, &st, ch, &n), -EINVAL);
    const struct config_error_want want[] = {
        { "max_presure", "did you mean 'max_pressure'" },
        { "channels", "1" },
        { "max_pressure", "min_pressure below max_pressure" },
        { "readback", "readback must be true or false" },
    };
    config_errors_expect(&e, N(want), want);
}

/* ------------------------------------------------------------------------ */
/* Against the simulated controller                                         */
/* ------------------------------------------------------------------------ */

/* The simulated controller on the device side of the pty, one command per LF. */
struct sim_ctl {
    int fd;
    struct sim_physics phys;
    struct sim_ob1 ob1;
    pthread_mutex_t lock;
    atomic_int stop, refuse, garble, silent;
    char last[128];                 /* the last command seen, for exact-bytes checks */
    pthread_t thread;
};

/* Answer commands until told to stop. */
static void *sim_ctl_main(void *arg)
{
    struct sim_ctl *s = arg;
    char cmd[128];
    size_t n = 0;
    while (!atomic_load(&s->stop)) {
        struct pollfd p = { .fd = s->fd, .events = POLLIN };
        if (poll(&p, 1, 20) <= 0)
            continue;
        char c;
        if (read(s->fd, &c, 1) != 1)
            continue;
        if (c != '\n') {
            if (n + 1 < sizeof cmd)
                cmd[n++] = c;
            continue;
        }
        cmd[n] = '\0';
        n = 0;
        char out[256];
        size_t len;
        pthread_mutex_lock(&s->lock);
        snprintf(s->last, sizeof s->last, "%s", cmd);
        if (atomic_load(&s->silent))
            len = 0;
        else if (atomic_load(&s->garble))
            len = (size_t)snprintf(out, sizeof out, "<PINGA?:\x01\x02\n");
        else if (atomic_load(&s->refuse))
            len = sim_ob1_line.refuse(&s->ob1, cmd, out, sizeof out);
        else
            len = sim_ob1_line.handle(&s->ob1, s->phys.now_ns, cmd, out, sizeof out);
        pthread_mutex_unlock(&s->lock);
        if (len > 0 && write(s->fd, out, len) != (ssize_t)len)
            break;
    }
    return NULL;
}

static const struct link_config ob1_line = { .name = "ob1line", .type = LINK_SERIAL, .baud = 115200,
                                             .parity = 'N', .data_bits = 8, .stop_bits = 1,
                                             .timeout_ms = 150 };

static void test_driver_pushes_the_simulated_chip(void **state)
{
    (void)state;
    struct pty_rig r;
    static const struct dev_param p[] = { { "channels", "4", 1, 1 } };
    pty_rig_open(&r, &ob1_line, "ob1", "ob1", p, N(p));
    struct sim_ctl *s = calloc(1, sizeof *s);
    assert_non_null(s);
    s->fd = r.pty.master;
    pthread_mutex_init(&s->lock, NULL);
    sim_physics_init(&s->phys, 7);
    sim_ob1_line.init(&s->ob1);
    sim_ob1_line.attach(&s->ob1, &s->phys);
    assert_int_equal(pthread_create(&s->thread, NULL, sim_ctl_main, s), 0);

    assert_int_equal(r.drv->connect(r.dev, &r.link), 0);
    /* A setpoint goes out as documented, to channel 0 for p1, and pushes the chip. */
    assert_int_equal(r.drv->write(r.dev, &r.link, 0, 200.0), 0);
    pthread_mutex_lock(&s->lock);
    assert_string_equal(s->last, "<PRESS!:0:200.00");
    assert_float_equal(s->phys.pplant[0].p_cmd, 200.0, 0);
    sim_physics_advance_to(&s->phys, 5000000000LL);
    pthread_mutex_unlock(&s->lock);
    double v = UNTOUCHED;
    assert_int_equal(r.drv->read(r.dev, &r.link, 0, &v), 0);
    assert_true(fabs(v - 200.0) < 1.0);
    pthread_mutex_lock(&s->lock);
    assert_true(fabs(s->phys.pplant[0].flow - 100.0) < 1.0);
    pthread_mutex_unlock(&s->lock);
    /* p3 is channel 2 on the wire; reads pick that channel's field. */
    assert_int_equal(r.drv->write(r.dev, &r.link, 2, 55.5), 0);
    assert_int_equal(r.drv->read(r.dev, &r.link, 2, &v), 0);
    assert_float_equal(v, 55.5, 1e-9);
    /* Out of range or not a number: refused before anything is sent. */
    pthread_mutex_lock(&s->lock);
    s->last[0] = '\0';
    pthread_mutex_unlock(&s->lock);
    assert_int_equal(r.drv->write(r.dev, &r.link, 0, 2500.0), -ERANGE);
    assert_non_null(strstr(r.link.err, "outside the channel's range"));
    assert_int_equal(r.drv->write(r.dev, &r.link, 0, NAN), -EINVAL);
    pthread_mutex_lock(&s->lock);
    assert_string_equal(s->last, "");
    pthread_mutex_unlock(&s->lock);
    /* The safe state vents every channel. */
    assert_int_equal(r.drv->safe_state(r.dev, &r.link), 0);
    pthread_mutex_lock(&s->lock);
    for (int i = 0; i < 4; i++)
        assert_float_equal(s->ob1.press[i], 0.0, 0);
    pthread_mutex_unlock(&s->lock);
    /* The controller's refusal, a garbled answer and silence are errors, never values. */
    atomic_store(&s->refuse, 1);
    v = UNTOUCHED;
    assert_int_equal(r.drv->read(r.dev, &r.link, 0, &v), -EREMOTEIO);
    assert_non_null(strstr(r.link.err, "ob1: the controller refused '<PINGA?'"));
    assert_int_equal(r.drv->write(r.dev, &r.link, 0, 10.0), -EREMOTEIO);
    atomic_store(&s->refuse, 0);
    atomic_store(&s->garble, 1);
    assert_int_equal(r.drv->read(r.dev, &r.link, 0, &v), -EBADMSG);
    atomic_store(&s->garble, 0);
    atomic_store(&s->silent, 1);
    assert_int_equal(r.drv->read(r.dev, &r.link, 0, &v), -ETIMEDOUT);
    assert_float_equal(v, UNTOUCHED, 0);
    atomic_store(&s->silent, 0);
    assert_int_equal(r.drv->read(r.dev, &r.link, 0, &v), 0);

    atomic_store(&s->stop, 1);
    pthread_join(s->thread, NULL);
    free(s);
    pty_rig_close(&r);
}

static void test_the_simulated_controller_refuses_what_it_cannot_do(void **state)
{
    (void)state;
    struct sim_ob1 o;
    char out[128];
    sim_ob1_line.init(&o);
    size_t n = sim_ob1_line.handle(&o, 0, "<PRESS!:4:10", out, sizeof out);
    assert_true(n > 0 && strstr(out, "ERR") != NULL);
    n = sim_ob1_line.handle(&o, 0, "<PRESS!:0:5000", out, sizeof out);
    assert_true(n > 0 && strstr(out, "ERR") != NULL);
    n = sim_ob1_line.handle(&o, 0, "<PRESS!:1:12.5", out, sizeof out);
    assert_string_equal(out, "<PRESS!:1:12.5\n");
    assert_float_equal(o.press[1], 12.5, 0);
    n = sim_ob1_line.handle(&o, 0, "<NOPE?", out, sizeof out);
    assert_true(n > 0 && strstr(out, "ERR") != NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_commands_are_framed_as_documented),
        cmocka_unit_test(test_reply_lines_are_taken_whole_or_not_at_all),
        cmocka_unit_test(test_pinga_answers_parse_or_are_refused),
        cmocka_unit_test(test_rig_entry_gives_pressure_channels),
        cmocka_unit_test(test_bad_rig_entries_are_all_reported),
        cmocka_unit_test(test_driver_pushes_the_simulated_chip),
        cmocka_unit_test(test_the_simulated_controller_refuses_what_it_cannot_do),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
