/*
 * Transports: serial ports on a real pty (raw settings, reads and writes with
 * time-outs, draining, the exclusive lock, hang-ups) and bus links (types,
 * Modbus RTU locking, Modbus TCP refusals).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "drivers/link.h"
#include "drivers/serial.h"

#include "pty_pair.h"

/* Milliseconds on the monotonic clock. */
static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Open path 19200 8N1, asserting success. */
static struct serial_port *open_ok(const char *path)
{
    struct serial_port *sp = NULL;
    char err[160] = "";
    int rc = serial_open(path, 19200, 'N', 8, 1, &sp, err, sizeof err);
    if (rc != 0)
        fail_msg("serial_open %s: %d %s", path, rc, err);
    return sp;
}

/* ------------------------------------------------------------------------ */
/* Serial ports                                                             */
/* ------------------------------------------------------------------------ */

static void test_a_pty_opens_raw_with_the_settings_asked_for(void **state)
{
    (void)state;
    struct pty p;
    pty_open(&p);
    struct serial_port *sp = NULL;
    char err[160];
    /* The pty driver forces 8 bits and no parity whatever is asked, so only the
     * speed, stop bits and raw mode can be seen here. */
    assert_int_equal(serial_open(p.path, 9600, 'N', 8, 2, &sp, err, sizeof err), 0);
    struct termios t;
    assert_int_equal(tcgetattr(p.slave, &t), 0);
    assert_int_equal(cfgetospeed(&t), B9600);
    assert_int_equal(cfgetispeed(&t), B9600);
    assert_int_equal(t.c_cflag & CSIZE, CS8);
    assert_false(t.c_cflag & PARENB);
    assert_true(t.c_cflag & CSTOPB);
    assert_false(t.c_lflag & (ICANON | ECHO));
    assert_false(t.c_oflag & OPOST);
    assert_false(t.c_iflag & (ICRNL | IXON));
    serial_close(sp);
    pty_close(&p);
}

static void test_bytes_pass_both_ways_unchanged(void **state)
{
    (void)state;
    struct pty p;
    pty_open(&p);
    struct serial_port *sp = open_ok(p.path);
    const char cmd[] = "0RAT 12.50 UM\r\n\x02\x03";
    assert_int_equal(serial_write(sp, cmd, sizeof cmd - 1, 200), 0);
    char got[64] = "";
    size_t n = 0;
    while (n < sizeof cmd - 1) {
        struct pollfd pf = { .fd = p.master, .events = POLLIN };
        assert_int_equal(poll(&pf, 1, 1000), 1);
        ssize_t r = read(p.master, got + n, sizeof got - n);
        assert_true(r > 0);
        n += (size_t)r;
    }
    assert_memory_equal(got, cmd, sizeof cmd - 1);
    const char reply[] = "\x02" "00S\x03\r\n";
    assert_int_equal(write(p.master, reply, sizeof reply - 1), (ssize_t)(sizeof reply - 1));
    char in[64];
    n = 0;
    while (n < sizeof reply - 1) {
        ssize_t r = serial_read(sp, in + n, sizeof in - n, 1000);
        assert_true(r > 0);
        n += (size_t)r;
    }
    assert_memory_equal(in, reply, sizeof reply - 1);
    serial_close(sp);
    pty_close(&p);
}

static void test_a_read_with_nothing_to_read_times_out(void **state)
{
    (void)state;
    struct pty p;
    pty_open(&p);
    struct serial_port *sp = open_ok(p.path);
    char in[8];
    long t0 = now_ms();
    assert_int_equal(serial_read(sp, in, sizeof in, 120), 0);
    long took = now_ms() - t0;
    assert_true(took >= 110 && took < 1000);
    assert_int_equal(serial_read(sp, in, sizeof in, 0), 0);
    serial_close(sp);
    pty_close(&p);
}

static void test_drain_discards_stale_input(void **state)
{
    (void)state;
    struct pty p;
    pty_open(&p);
    struct serial_port *sp = open_ok(p.path);
    assert_int_equal(write(p.master, "stale reply", 11), 11);
    /* Wait until the bytes are in the line's input queue, then drain them. */
    struct pollfd pf = { .fd = p.slave, .events = POLLIN };
    assert_int_equal(poll(&pf, 1, 1000), 1);
    serial_drain(sp);
    char in[16];
    assert_int_equal(serial_read(sp, in, sizeof in, 50), 0);
    assert_int_equal(write(p.master, "new", 3), 3);
    assert_int_equal(serial_read(sp, in, sizeof in, 1000) > 0, 1);
    assert_int_equal(in[0], 'n');
    serial_close(sp);
    pty_close(&p);
}

static void test_a_second_opener_is_refused_until_the_first_closes(void **state)
{
    (void)state;
    struct pty p;
    pty_open(&p);
    struct serial_port *sp = open_ok(p.path), *sp2 = NULL;
    char err[160] = "";
    assert_int_equal(serial_open(p.path, 19200, 'N', 8, 1, &sp2, err, sizeof err), -EBUSY);
    assert_null(sp2);
    assert_non_null(strstr(err, p.path));
    assert_non_null(strstr(err, "held by another process"));
    int excl = 0;
    assert_int_equal(ioctl(p.slave, TIOCGEXCL, &excl), 0);
    assert_int_equal(excl, 1);  /* TIOCEXCL: refuses other openers (except root) */
    serial_close(sp);
    /* Exclusive mode is a property of the tty, which our own fd keeps alive:
     * the close must clear it, or a reconnect by a non-root daemon fails. */
    assert_int_equal(ioctl(p.slave, TIOCGEXCL, &excl), 0);
    assert_int_equal(excl, 0);
    sp2 = open_ok(p.path);      /* both locks are gone with the first opener */
    serial_close(sp2);
    pty_close(&p);
}

static void test_a_hang_up_is_not_connected(void **state)
{
    (void)state;
    struct pty p;
    pty_open(&p);
    struct serial_port *sp = open_ok(p.path);
    close(p.master);
    p.master = -1;
    char in[8];
    assert_int_equal(serial_read(sp, in, sizeof in, 500), -ENOTCONN);
    assert_int_equal(serial_write(sp, "x", 1, 500), -ENOTCONN);
    serial_close(sp);
    pty_close(&p);
}

static void test_what_is_not_a_serial_port_is_refused(void **state)
{
    (void)state;
    struct serial_port *sp = NULL;
    char err[160];
    assert_int_equal(serial_open("/dev/does-not-exist", 19200, 'N', 8, 1, &sp, err, sizeof err), -ENOENT);
    assert_string_equal(err, "cannot open /dev/does-not-exist: No such file or directory");
    assert_int_equal(serial_open("/dev/null", 19200, 'N', 8, 1, &sp, err, sizeof err), -ENOTTY);
    assert_non_null(strstr(err, "/dev/null is not a serial port"));
    assert_int_equal(serial_open("/dev/null", 12345, 'N', 8, 1, &sp, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "unsupported baud rate 12345"));
    assert_int_equal(serial_open("/dev/null", 9600, 'X', 8, 1, &sp, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "parity must be N, E or O, found 'X'"));
    assert_int_equal(serial_open("/dev/null", 9600, 'N', 9, 1, &sp, err, sizeof err), -EINVAL);
    assert_int_equal(serial_open("/dev/null", 9600, 'N', 8, 3, &sp, err, sizeof err), -EINVAL);
    assert_int_equal(serial_open(NULL, 9600, 'N', 8, 1, &sp, err, sizeof err), -EINVAL);
    assert_null(sp);
    /* Closed or never opened: no crash, a clear code. */
    serial_close(NULL);
    serial_drain(NULL);
    assert_int_equal(serial_write(NULL, "x", 1, 10), -ENOTCONN);
    assert_int_equal(serial_read(NULL, err, 1, 10), -ENOTCONN);
}

/* ------------------------------------------------------------------------ */
/* Links                                                                    */
/* ------------------------------------------------------------------------ */

static void test_link_types_parse_and_print(void **state)
{
    (void)state;
    const char *names[] = { "serial", "modbus-rtu", "modbus-tcp" };
    const enum link_type types[] = { LINK_SERIAL, LINK_MODBUS_RTU, LINK_MODBUS_TCP };
    for (int i = 0; i < 3; i++) {
        enum link_type t = (enum link_type)99;
        assert_int_equal(link_type_parse(names[i], &t), 0);
        assert_int_equal(t, types[i]);
        assert_string_equal(link_type_name(t), names[i]);
    }
    enum link_type t;
    assert_int_equal(link_type_parse("modbus", &t), -EINVAL);
    assert_int_equal(link_type_parse("Serial", &t), -EINVAL);
    assert_int_equal(link_type_parse(NULL, &t), -EINVAL);
    assert_string_equal(link_type_name((enum link_type)7), "?");
}

/* Bytes a previous owner of the line left (a reply to its last request) are
 * gone once a link is open: an RTU reply does not say which registers it
 * holds, so a stale one would be taken for the answer to the next request. */
static void test_an_open_link_starts_with_nothing_stale(void **state)
{
    (void)state;
    struct pty p;
    pty_open(&p);
    static const unsigned char stale[] = { 0x01, 0x04, 0x04, 0x42, 0xb1, 0x50, 0x8a, 0x12, 0x34 };
    for (int kind = 0; kind < 2; kind++) {
        assert_int_equal(write(p.master, stale, sizeof stale), (ssize_t)sizeof stale);
        struct pollfd pf = { .fd = p.slave, .events = POLLIN };
        assert_int_equal(poll(&pf, 1, 2000), 1);          /* the bytes are on the line */
        struct link_config cfg = { .name = "rs485", .type = kind ? LINK_SERIAL : LINK_MODBUS_RTU,
                                   .port = p.path, .baud = 19200, .parity = 'N', .data_bits = 8,
                                   .stop_bits = 1 };
        struct bus_link l = { 0 };
        assert_int_equal(link_open(&l, &cfg), 0);
        int pending = -1;
        assert_int_equal(ioctl(p.slave, FIONREAD, &pending), 0);
        assert_int_equal(pending, 0);
        link_close(&l);
    }
    pty_close(&p);
}

/* A second daemon asks before it starts: a held port is busy, a free or missing one is not. */
static void test_a_held_port_is_reported_before_start(void **state)
{
    (void)state;
    struct pty p;
    pty_open(&p);
    char err[256] = "";
    assert_int_equal(serial_check_free(p.path, err, sizeof err), 0);
    struct serial_port *sp = open_ok(p.path);
    assert_int_equal(serial_check_free(p.path, err, sizeof err), -EBUSY);
    assert_non_null(strstr(err, "is held by another process"));
    serial_close(sp);
    assert_int_equal(serial_check_free(p.path, err, sizeof err), 0);
    assert_int_equal(serial_check_free("/dev/perfuse-no-such-port", err, sizeof err), 0);
    pty_close(&p);
}

static void test_an_rtu_line_is_locked_against_every_other_opener(void **state)
{
    (void)state;
    struct pty p;
    pty_open(&p);
    struct link_config rtu = { .name = "rs485", .type = LINK_MODBUS_RTU, .port = p.path,
                               .baud = 9600, .parity = 'N', .data_bits = 8, .stop_bits = 1 };
    struct link_config ser = rtu;
    ser.type = LINK_SERIAL;
    struct bus_link a = { 0 }, b = { 0 };
    assert_int_equal(link_open(&a, &rtu), 0);
    assert_non_null(a.mb);
    assert_null(a.serial);
    assert_int_equal(link_open(&b, &rtu), -EBUSY);
    assert_null(b.mb);
    assert_non_null(strstr(b.err, "held by another process"));
    assert_int_equal(link_open(&b, &ser), -EBUSY);
    assert_null(b.serial);
    link_close(&a);
    link_close(&a);             /* closing twice is harmless */
    assert_null(a.mb);
    assert_int_equal(link_open(&b, &ser), 0);
    assert_non_null(b.serial);
    assert_int_equal(link_open(&a, &rtu), -EBUSY);
    link_close(&b);
    pty_close(&p);
}

/* A TCP port on 127.0.0.1 with nobody listening. */
static int closed_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s >= 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
    close(s);
    return ntohs(a.sin_port);
}

static void test_tcp_links_report_refusals(void **state)
{
    (void)state;
    int port = closed_port();
    struct link_config tcp = { .name = "plc", .type = LINK_MODBUS_TCP, .host = "127.0.0.1",
                               .tcp_port = port };
    struct bus_link l = { 0 };
    char want[96];
    assert_int_equal(link_open(&l, &tcp), -ENOTCONN);
    assert_null(l.mb);
    snprintf(want, sizeof want, "cannot connect to 127.0.0.1:%d: Connection refused", port);
    assert_string_equal(l.err, want);
    tcp.host = NULL;
    assert_int_equal(link_open(&l, &tcp), -EINVAL);
    assert_string_equal(l.err, "bus plc: no host given");
    struct link_config rtu = { .name = "rs485", .type = LINK_MODBUS_RTU, .port = "/dev/does-not-exist",
                               .baud = 9600, .parity = 'N', .data_bits = 8, .stop_bits = 1 };
    assert_int_equal(link_open(&l, &rtu), -ENOTCONN);
    assert_non_null(strstr(l.err, "cannot open /dev/does-not-exist"));
    rtu.parity = 'X';
    assert_int_equal(link_open(&l, &rtu), -EINVAL);
    assert_non_null(strstr(l.err, "bus rs485: bad settings"));
    link_close(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_pty_opens_raw_with_the_settings_asked_for),
        cmocka_unit_test(test_bytes_pass_both_ways_unchanged),
        cmocka_unit_test(test_a_read_with_nothing_to_read_times_out),
        cmocka_unit_test(test_drain_discards_stale_input),
        cmocka_unit_test(test_a_second_opener_is_refused_until_the_first_closes),
        cmocka_unit_test(test_a_hang_up_is_not_connected),
        cmocka_unit_test(test_what_is_not_a_serial_port_is_refused),
        cmocka_unit_test(test_link_types_parse_and_print),
        cmocka_unit_test(test_an_rtu_line_is_locked_against_every_other_opener),
        cmocka_unit_test(test_an_open_link_starts_with_nothing_stale),
        cmocka_unit_test(test_a_held_port_is_reported_before_start),
        cmocka_unit_test(test_tcp_links_report_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
