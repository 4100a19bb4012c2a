/*
 * The generic Modbus driver against a libmodbus TCP server in a thread on
 * 127.0.0.1 (an ephemeral port): every type and word order read through a
 * profile and written back, unit conversion, range checks, and the errors a
 * device can cause (exception, silence, a closed connection). On an RTU line
 * (a pty with a scripted device): a stale reply, the tail of a garbled one and
 * a garbled one cut short are never taken for the next request's answer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <modbus.h>

#include "drivers/driver.h"
#include "drivers/mbcodec.h"

#include "config_errors.h"
#include "pty_pair.h"

#define LINK_TIMEOUT_MS 150
#define SERVER_IDLE_MS 5000     /* the server gives up if nothing happens for this long */
#define UNIT 7

/* ------------------------------------------------------------------------ */
/* The server                                                               */
/* ------------------------------------------------------------------------ */

struct server {
    modbus_t *ctx;
    modbus_mapping_t *map;
    int listen_fd;
    int wake[2];                /* a byte here stops the thread */
    int port;
    atomic_int silent;          /* receive requests but never answer: a dead device */
    atomic_int last_unit;       /* unit id of the last request */
    pthread_t thread;
};

/* Wait for fd or the wake pipe; true if fd is readable. */
static bool wait_readable(struct server *s, int fd, bool *stop)
{
    struct pollfd p[2] = { { .fd = fd, .events = POLLIN }, { .fd = s->wake[0], .events = POLLIN } };
    int rc = poll(p, 2, SERVER_IDLE_MS);
    *stop = rc <= 0 || (p[1].revents & POLLIN);
    return !*stop && (p[0].revents & (POLLIN | POLLHUP | POLLERR));
}

/* Serve one client until it leaves or the test stops the thread. */
static void serve_client(struct server *s, int client)
{
    uint8_t q[MODBUS_TCP_MAX_ADU_LENGTH];
    bool stop = false;
    while (wait_readable(s, client, &stop)) {
        int rc = modbus_receive(s->ctx, q);
        if (rc < 0)
            break;
        if (rc == 0)
            continue;
        atomic_store(&s->last_unit, q[6]);      /* MBAP header: the unit id is byte 6 */
        if (!atomic_load(&s->silent))
            modbus_reply(s->ctx, q, rc, s->map);
    }
}

/* The server thread: accept clients one after another. */
static void *serve(void *arg)
{
    struct server *s = arg;
    bool stop = false;
    while (wait_readable(s, s->listen_fd, &stop)) {
        int client = modbus_tcp_accept(s->ctx, &s->listen_fd);
        if (client < 0)
            break;
        serve_client(s, client);
        close(client);
        modbus_set_socket(s->ctx, -1);
    }
    return NULL;
}

/* Start a server on an ephemeral port of 127.0.0.1. */
static void server_start(struct server *s)
{
    memset(s, 0, sizeof *s);
    s->ctx = modbus_new_tcp("127.0.0.1", 0);
    assert_non_null(s->ctx);
    s->map = modbus_mapping_new(16, 16, 16, 16);
    assert_non_null(s->map);
    s->listen_fd = modbus_tcp_listen(s->ctx, 1);
    assert_true(s->listen_fd >= 0);
    struct sockaddr_in a;
    socklen_t alen = sizeof a;
    assert_int_equal(getsockname(s->listen_fd, (struct sockaddr *)&a, &alen), 0);
    s->port = ntohs(a.sin_port);
    assert_true(s->port > 0);
    assert_int_equal(pipe(s->wake), 0);
    assert_int_equal(pthread_create(&s->thread, NULL, serve, s), 0);
}

/* Stop the server thread and free everything. */
static void server_stop(struct server *s)
{
    if (s->ctx == NULL)
        return;
    assert_int_equal(write(s->wake[1], "x", 1), 1);
    assert_int_equal(pthread_join(s->thread, NULL), 0);
    close(s->wake[0]);
    close(s->wake[1]);
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    modbus_mapping_free(s->map);
    modbus_free(s->ctx);
    s->ctx = NULL;
}

/* ------------------------------------------------------------------------ */
/* A device on it                                                           */
/* ------------------------------------------------------------------------ */

static const char profile_text[] =
    "profile: test-device\n"
    "channels:\n"
    "  h_u16:  {table: holding, address: 0, type: u16, quantity: plain number, access: rw}\n"
    "  i_i16:  {table: input, address: 0, type: i16, scale: 0.1, quantity: temperature, unit: degC}\n"
    "  h_u32:  {table: holding, address: 2, type: u32, order: cdab, quantity: plain number, access: rw}\n"
    "  i_i32:  {table: input, address: 2, type: i32, order: badc, quantity: plain number}\n"
    "  f_abcd: {table: input, address: 4, type: f32, order: abcd, quantity: pressure, unit: mbar}\n"
    "  f_cdab: {table: input, address: 6, type: f32, order: cdab, quantity: pressure, unit: kPa}\n"
    "  f_badc: {table: input, address: 8, type: f32, order: badc, quantity: flow, unit: mL/min}\n"
    "  f_dcba: {table: holding, address: 4, type: f32, order: dcba, quantity: flow, unit: uL/h,\n"
    "           access: rw, range: [0, 6000], sample_hz: 5}\n"
    "  setpt:  {table: holding, address: 6, type: i16, scale: 0.1, offset: -50,\n"
    "           quantity: temperature, unit: degC, access: rw, range: [-50, 100]}\n"
    "  coil:   {table: coil, address: 3, type: bool, quantity: plain number, unit: \"\", access: rw}\n"
    "  din:    {table: discrete, address: 5, type: bool, quantity: plain number}\n"
    "  i_nan:  {table: input, address: 10, type: f32, quantity: pressure, unit: mbar}\n"
    "  absent: {table: input, address: 100, type: u16, quantity: plain number}\n";

enum { H_U16, I_I16, H_U32, I_I32, F_ABCD, F_CDAB, F_BADC, F_DCBA, SETPT, COIL, DIN, I_NAN,
       ABSENT, N_CH };

/* Everything a test needs: a server (or, on RTU, a pty line), a profile on
 * disk, a link and the device. */
struct fixture {
    struct server srv;
    struct pty line;
    char dir[64];
    char profile[96];
    struct link_config lc;
    struct bus_link link;
    const struct driver_ops *drv;
    void *dev;
    struct driver_channel ch[DRIVER_MAX_CHANNELS];
    size_t n_ch;
};

/* Write the profile into a fresh temporary directory. */
static void write_profile(struct fixture *f, const char *text)
{
    snprintf(f->dir, sizeof f->dir, "/tmp/perfuse-mb-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->profile, sizeof f->profile, "%s/dev.yaml", f->dir);
    FILE *fp = fopen(f->profile, "w");
    assert_non_null(fp);
    assert_true(fputs(text, fp) >= 0);
    assert_int_equal(fclose(fp), 0);
}

/* Open the device from params, with dev.yaml relative to the fixture's directory. */
static int open_dev(struct fixture *f, const struct dev_param *p, size_t n, struct config_errors *e)
{
    memset(e, 0, sizeof *e);
    struct dev_config cfg = { .name = "chip9", .file = "rig.yaml", .dir = f->dir, .params = p,
                              .n_params = n, .error = config_errors_record, .error_ctx = e };
    f->drv = driver_find("modbus");
    assert_non_null(f->drv);
    return f->drv->open(&cfg, &f->dev, f->ch, &f->n_ch);
}

/* Start everything: server, profile, device, link. */
static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    server_start(&f->srv);
    write_profile(f, profile_text);
    const struct dev_param p[] = { { "unit", "7", 1, 1 }, { "profile", "dev.yaml", 1, 1 } };
    struct config_errors e;
    assert_int_equal(open_dev(f, p, 2, &e), 0);
    assert_int_equal(e.n, 0);
    f->lc = (struct link_config){ .name = "plc", .type = LINK_MODBUS_TCP, .host = "127.0.0.1",
                                  .tcp_port = f->srv.port, .timeout_ms = LINK_TIMEOUT_MS };
    assert_int_equal(link_open(&f->link, &f->lc), 0);
    *state = f;
    return 0;
}

/* Stop and free everything. */
static int teardown(void **state)
{
    struct fixture *f = *state;
    link_close(&f->link);
    server_stop(&f->srv);
    f->drv->close(f->dev);
    unlink(f->profile);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* Read channel ch; fail the test if the driver refuses. */
static double read_ok(struct fixture *f, size_t ch)
{
    double v = -999;
    int rc = f->drv->read(f->dev, &f->link, ch, &v);
    if (rc != 0)
        fail_msg("reading %s: %d (%s)", f->ch[ch].name, rc, f->link.err);
    return v;
}

/* ------------------------------------------------------------------------ */
/* Tests                                                                    */
/* ------------------------------------------------------------------------ */

static void test_channels_come_from_the_profile(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(f->n_ch, N_CH);
    assert_string_equal(f->ch[F_CDAB].name, "f_cdab");
    assert_int_equal(f->ch[F_CDAB].q, Q_PRESSURE);
    assert_string_equal(f->ch[F_CDAB].unit, "mbar");    /* values arrive canonical */
    assert_true(f->ch[F_CDAB].readable && !f->ch[F_CDAB].writable);
    assert_true(isnan(f->ch[F_CDAB].min));
    assert_int_equal(f->ch[F_DCBA].q, Q_FLOW);
    assert_string_equal(f->ch[F_DCBA].unit, "uL/min");
    assert_true(f->ch[F_DCBA].readable && f->ch[F_DCBA].writable);
    assert_float_equal(f->ch[F_DCBA].min, 0, 0);
    assert_float_equal(f->ch[F_DCBA].max, 100, 1e-9);   /* 6000 uL/h */
    assert_float_equal(f->ch[F_DCBA].sample_hz, 5, 0);
    assert_float_equal(f->ch[SETPT].min, -50, 0);
    assert_float_equal(f->ch[SETPT].max, 100, 0);
    assert_string_equal(f->ch[COIL].unit, "");
    assert_string_equal(f->ch[H_U16].unit, "");
    assert_int_equal(f->ch[H_U16].q, Q_NONE);
}

static void test_every_type_and_order_reads(void **state)
{
    struct fixture *f = *state;
    uint16_t *hold = f->srv.map->tab_registers, *in = f->srv.map->tab_input_registers;
    hold[0] = 0xBEEF;                           /* u16 48879 */
    in[0] = 0xFE8E;                             /* i16 -370: -37.0 degC */
    hold[2] = 0x5678, hold[3] = 0x1234;         /* u32 0x12345678, cdab */
    in[2] = 0xFEFF, in[3] = 0x6079;             /* i32 -100000 (0xFFFE7960), badc */
    in[4] = 0x3FC0, in[5] = 0x0000;             /* f32 1.5 mbar, abcd */
    in[6] = 0x0000, in[7] = 0xC020;             /* f32 -2.5 kPa, cdab: -25 mbar */
    in[8] = 0xC03F, in[9] = 0x0000;             /* f32 1.5 mL/min, badc: 1500 uL/min */
    hold[4] = 0x0000, hold[5] = 0xF042;         /* f32 120 uL/h (0x42F00000), dcba: 2 uL/min */
    hold[6] = 870;                              /* 870 * 0.1 - 50 = 37 degC */
    f->srv.map->tab_bits[3] = 1;
    f->srv.map->tab_input_bits[5] = 1;
    in[10] = 0x7FC0, in[11] = 0x0000;           /* NaN */

    assert_float_equal(read_ok(f, H_U16), 48879, 0);
    assert_float_equal(read_ok(f, I_I16), -37.0, 1e-9);
    assert_float_equal(read_ok(f, H_U32), 305419896.0, 0);
    assert_float_equal(read_ok(f, I_I32), -100000, 0);
    assert_float_equal(read_ok(f, F_ABCD), 1.5, 0);
    assert_float_equal(read_ok(f, F_CDAB), -25, 1e-9);
    assert_float_equal(read_ok(f, F_BADC), 1500, 1e-9);
    assert_float_equal(read_ok(f, F_DCBA), 2, 1e-9);
    assert_float_equal(read_ok(f, SETPT), 37, 1e-9);
    assert_float_equal(read_ok(f, COIL), 1, 0);
    assert_float_equal(read_ok(f, DIN), 1, 0);
    f->srv.map->tab_input_bits[5] = 0;
    assert_float_equal(read_ok(f, DIN), 0, 0);
    /* The device sent NaN: that is what it said, not a failed read. */
    assert_true(isnan(read_ok(f, I_NAN)));
    assert_int_equal(atomic_load(&f->srv.last_unit), UNIT);
}

static void test_writes_land_in_the_right_registers(void **state)
{
    struct fixture *f = *state;
    uint16_t *hold = f->srv.map->tab_registers;
    assert_int_equal(f->drv->write(f->dev, &f->link, H_U16, 1234), 0);
    assert_int_equal(hold[0], 1234);
    assert_int_equal(f->drv->write(f->dev, &f->link, H_U32, 3735928559.0), 0);  /* 0xDEADBEEF */
    assert_int_equal(hold[2], 0xBEEF);
    assert_int_equal(hold[3], 0xDEAD);
    /* 50 uL/min = 3000 uL/h = 0x453B8000, dcba */
    assert_int_equal(f->drv->write(f->dev, &f->link, F_DCBA, 50), 0);
    assert_int_equal(hold[4], 0x0080);
    assert_int_equal(hold[5], 0x3B45);
    /* (37.5 + 50) / 0.1 = 875 */
    assert_int_equal(f->drv->write(f->dev, &f->link, SETPT, 37.5), 0);
    assert_int_equal(hold[6], 875);
    assert_int_equal(f->drv->write(f->dev, &f->link, SETPT, -42.04), 0);  /* raw 79.6 rounds to 80 */
    assert_int_equal(hold[6], 80);
    f->srv.map->tab_bits[3] = 1;
    assert_int_equal(f->drv->write(f->dev, &f->link, COIL, 0), 0);
    assert_int_equal(f->srv.map->tab_bits[3], 0);
    assert_int_equal(f->drv->write(f->dev, &f->link, COIL, 1), 0);
    assert_int_equal(f->srv.map->tab_bits[3], 1);
    /* And they read back through the same conversion. */
    assert_float_equal(read_ok(f, H_U32), 3735928559.0, 0);
    assert_float_equal(read_ok(f, F_DCBA), 50, 1e-9);
    assert_float_equal(read_ok(f, SETPT), -42, 1e-9);
    assert_int_equal(atomic_load(&f->srv.last_unit), UNIT);
}

static void test_writes_that_cannot_be_sent_are_refused(void **state)
{
    struct fixture *f = *state;
    uint16_t *hold = f->srv.map->tab_registers;
    hold[0] = 7;
    hold[6] = 500;
    assert_int_equal(f->drv->write(f->dev, &f->link, SETPT, 200), -ERANGE);     /* beyond range */
    assert_non_null(strstr(f->link.err, "outside the range"));
    assert_int_equal(f->drv->write(f->dev, &f->link, H_U16, 70000), -ERANGE);   /* beyond u16 */
    assert_non_null(strstr(f->link.err, "does not fit a u16"));
    assert_int_equal(f->drv->write(f->dev, &f->link, H_U16, -1), -ERANGE);
    assert_int_equal(f->drv->write(f->dev, &f->link, H_U16, NAN), -EINVAL);
    assert_int_equal(f->drv->write(f->dev, &f->link, I_I16, 20), -EINVAL);       /* read-only */
    assert_int_equal(f->drv->write(f->dev, &f->link, N_CH, 1), -EINVAL);
    assert_int_equal(hold[0], 7);       /* nothing was written */
    assert_int_equal(hold[6], 500);
}

static void test_an_exception_is_a_remote_error(void **state)
{
    struct fixture *f = *state;
    double v = -999;
    assert_int_equal(f->drv->read(f->dev, &f->link, ABSENT, &v), -EREMOTEIO);
    assert_float_equal(v, -999, 0);
    assert_non_null(strstr(f->link.err, "chip9: reading absent (input 100, unit 7): Illegal data address"));
    /* The link is still good for the next exchange. */
    f->srv.map->tab_input_registers[4] = 0x3FC0;
    f->srv.map->tab_input_registers[5] = 0x0000;
    assert_float_equal(read_ok(f, F_ABCD), 1.5, 0);
}

static void test_a_silent_device_times_out(void **state)
{
    struct fixture *f = *state;
    double v = -999;
    atomic_store(&f->srv.silent, 1);
    assert_int_equal(f->drv->read(f->dev, &f->link, H_U16, &v), -ETIMEDOUT);
    assert_float_equal(v, -999, 0);
    assert_non_null(strstr(f->link.err, "chip9: reading h_u16"));
    assert_int_equal(f->drv->write(f->dev, &f->link, H_U16, 5), -ETIMEDOUT);
    atomic_store(&f->srv.silent, 0);
}

static void test_a_closed_connection_is_not_connected(void **state)
{
    struct fixture *f = *state;
    double v = -999;
    server_stop(&f->srv);
    assert_int_equal(f->drv->read(f->dev, &f->link, H_U16, &v), -ENOTCONN);
    assert_float_equal(v, -999, 0);
    link_close(&f->link);
    assert_int_equal(f->drv->read(f->dev, &f->link, H_U16, &v), -ENOTCONN);
    assert_string_equal(f->link.err, "chip9: the link is not open");
    /* Nobody listens any more: opening the link fails with a message. */
    assert_int_equal(link_open(&f->link, &f->lc), -ENOTCONN);
    assert_non_null(strstr(f->link.err, "cannot connect to 127.0.0.1:"));
}

static void test_bad_rig_entries_are_all_reported(void **state)
{
    struct fixture *f = *state;
    void *keep = f->dev;
    struct config_errors e;
    const struct dev_param none[] = { { "unitt", "1", 1, 1 } };
    f->dev = NULL;
    assert_int_equal(open_dev(f, none, 1, &e), -EINVAL);
    assert_null(f->dev);
    assert_int_equal(e.n, 3);
    assert_string_equal(e.key[0], "unitt");
    assert_non_null(strstr(e.text[0], "did you mean 'unit'?"));
    assert_non_null(strstr(e.text[1], "needs 'unit'"));
    assert_non_null(strstr(e.text[2], "needs 'profile'"));

    const struct dev_param bad[] = { { "unit", "0", 1, 1 }, { "profile", "nope.yaml", 1, 1 } };
    assert_int_equal(open_dev(f, bad, 2, &e), -EINVAL);
    assert_int_equal(e.n, 2);
    assert_string_equal(e.key[0], "unit");
    assert_non_null(strstr(e.text[0], "1 to 247, found '0'"));
    assert_string_equal(e.key[1], "profile");
    assert_non_null(strstr(e.text[1], "/nope.yaml"));
    assert_non_null(strstr(e.text[1], "No such file"));

    /* A broken profile: its own positions are passed on. */
    FILE *fp = fopen(f->profile, "w");
    assert_non_null(fp);
    fputs("profile: x\nchannels:\n  p: {table: input, address: 0, type: u16, quantity: presure}\n", fp);
    fclose(fp);
    const struct dev_param ok[] = { { "unit", "1", 1, 1 }, { "profile", "dev.yaml", 1, 1 } };
    assert_int_equal(open_dev(f, ok, 2, &e), -EINVAL);
    assert_int_equal(e.n, 1);
    assert_string_equal(e.key[0], "profile");
    assert_non_null(strstr(e.text[0], "dev.yaml:3:54: 'quantity' must be"));

    /* An absolute profile path ignores the rig's directory. */
    char abs[300], cwd[256];
    assert_non_null(getcwd(cwd, sizeof cwd));
    snprintf(abs, sizeof abs, "%s/protocols/profiles/rotary-valve.yaml", cwd);
    const struct dev_param valve[] = { { "unit", "2", 1, 1 }, { "profile", abs, 1, 1 } };
    assert_int_equal(open_dev(f, valve, 2, &e), 0);
    assert_int_equal(f->n_ch, 2);
    assert_string_equal(f->ch[0].name, "position");
    assert_string_equal(f->ch[0].unit, "port");
    f->drv->close(f->dev);
    f->dev = keep;
}

/* ------------------------------------------------------------------------ */
/* An RTU line                                                              */
/* ------------------------------------------------------------------------ */

/* What the scripted device sends after each request: bytes, one every pace_ms. */
struct rtu_answer {
    uint8_t bytes[16];
    size_t len;
    int pace_ms;
};

/* A device on a pty that reads each 8-byte request and sends its answer. */
struct rtu_device {
    int fd;
    const struct rtu_answer *answers;
    size_t n;
    atomic_size_t served;
    pthread_t thread;
};

/* Read one 8-byte RTU request from fd, waiting at most ms; false on time-out. */
static bool rtu_read_request(int fd, int ms)
{
    uint8_t q[8];
    size_t got = 0;
    while (got < sizeof q) {
        struct pollfd pf = { .fd = fd, .events = POLLIN };
        if (poll(&pf, 1, ms) != 1)
            return false;
        ssize_t r = read(fd, q + got, sizeof q - got);
        if (r <= 0)
            return false;
        got += (size_t)r;
    }
    return true;
}

/* The device thread: one answer per request, each byte after pace_ms. */
static void *rtu_serve(void *arg)
{
    struct rtu_device *d = arg;
    for (size_t i = 0; i < d->n && rtu_read_request(d->fd, 2000); i++) {
        const struct rtu_answer *a = &d->answers[i];
        for (size_t k = 0; k < a->len; k++) {
            if (a->pace_ms > 0)
                nanosleep(&(struct timespec){ .tv_nsec = a->pace_ms * 1000000L }, NULL);
            if (write(d->fd, &a->bytes[k], 1) != 1)
                return NULL;
        }
        atomic_store(&d->served, i + 1);
    }
    return NULL;
}

/* A whole reply of unit UNIT to a read of one input register holding raw. */
static struct rtu_answer rtu_reply(uint16_t raw)
{
    struct rtu_answer a = { .bytes = { UNIT, 4, 2, (uint8_t)(raw >> 8), (uint8_t)raw }, .len = 7 };
    uint16_t crc = mb_crc16(a.bytes, 5);
    a.bytes[5] = (uint8_t)crc;
    a.bytes[6] = (uint8_t)(crc >> 8);
    return a;
}

/* Start everything for an RTU test: a profile, the device, a pty and the link. */
static int setup_rtu(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    write_profile(f, profile_text);
    const struct dev_param p[] = { { "unit", "7", 1, 1 }, { "profile", "dev.yaml", 1, 1 } };
    struct config_errors e;
    assert_int_equal(open_dev(f, p, 2, &e), 0);
    pty_open(&f->line);
    f->lc = (struct link_config){ .name = "rs485", .type = LINK_MODBUS_RTU, .port = f->line.path,
                                  .baud = 19200, .parity = 'N', .data_bits = 8, .stop_bits = 1,
                                  .timeout_ms = LINK_TIMEOUT_MS };
    assert_int_equal(link_open(&f->link, &f->lc), 0);
    *state = f;
    return 0;
}

/* Stop and free everything of an RTU test. */
static int teardown_rtu(void **state)
{
    struct fixture *f = *state;
    link_close(&f->link);
    pty_close(&f->line);
    f->drv->close(f->dev);
    unlink(f->profile);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* Play answers on the fixture's line; the thread is joined by rtu_finish. */
static void rtu_start(struct fixture *f, struct rtu_device *d, const struct rtu_answer *a, size_t n)
{
    *d = (struct rtu_device){ .fd = f->line.master, .answers = a, .n = n };
    assert_int_equal(pthread_create(&d->thread, NULL, rtu_serve, d), 0);
}

/* Join the device thread; every answer must have been asked for. */
static void rtu_finish(struct rtu_device *d)
{
    assert_int_equal(pthread_join(d->thread, NULL), 0);
    assert_int_equal(atomic_load(&d->served), d->n);
}

/* A reply that came after its request was given up waits on the line; RTU
 * replies do not say which registers they hold, so the next read would take
 * it for its own answer and record a wrong value. */
static void test_a_stale_rtu_reply_is_never_taken_for_the_next_answer(void **state)
{
    struct fixture *f = *state;
    struct rtu_answer stale = rtu_reply(80);
    assert_int_equal(write(f->line.master, stale.bytes, stale.len), (ssize_t)stale.len);
    struct pollfd pf = { .fd = f->line.slave, .events = POLLIN };
    assert_int_equal(poll(&pf, 1, 2000), 1);      /* the stale reply is on the line */
    const struct rtu_answer a[] = { rtu_reply(291) };
    struct rtu_device d;
    rtu_start(f, &d, a, 1);
    assert_float_equal(read_ok(f, I_I16), 29.1, 1e-9);
    rtu_finish(&d);
}

/* Line noise in place of a reply: libmodbus gives up after the bytes it
 * parses as a frame, while the rest still arrives at the line's pace. Read
 * at once after the failure, the next request must get its own answer. */
static void test_the_tail_of_a_garbled_rtu_reply_is_not_the_next_answer(void **state)
{
    struct fixture *f = *state;
    const struct rtu_answer a[] = {
        { .bytes = { 0x09, 0x04, 0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0x5a, 0xa5, 0x3c }, .len = 11,
          .pace_ms = 1 },
        rtu_reply(291),
    };
    struct rtu_device d;
    rtu_start(f, &d, a, 2);
    double v = -999;
    assert_int_equal(f->drv->read(f->dev, &f->link, I_I16, &v), -EBADMSG);
    assert_float_equal(v, -999, 0);
    assert_non_null(strstr(f->link.err, "chip9: reading i_i16"));
    assert_float_equal(read_ok(f, I_I16), 29.1, 1e-9);
    rtu_finish(&d);
}

/* Milliseconds on the monotonic clock. */
static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* A garbled reply that promises more bytes than it sends costs about one
 * time-out, not libmodbus's default 500 ms wait between two bytes; the line
 * answers again right after. */
static void test_a_garbled_rtu_reply_cut_short_costs_no_more_than_a_timeout(void **state)
{
    struct fixture *f = *state;
    const struct rtu_answer a[] = {
        { .bytes = { UNIT, 0x04, 0x10, 0x01, 0x02, 0x03 }, .len = 6 },
        rtu_reply(291),
    };
    struct rtu_device d;
    rtu_start(f, &d, a, 2);
    double v = -999;
    long t0 = now_ms();
    assert_int_equal(f->drv->read(f->dev, &f->link, I_I16, &v), -ETIMEDOUT);
    long took = now_ms() - t0;
    if (took >= 2 * LINK_TIMEOUT_MS)
        fail_msg("a reply cut short held the line %ld ms (at most about one %d ms time-out)",
                 took, LINK_TIMEOUT_MS);
    assert_float_equal(v, -999, 0);
    assert_float_equal(read_ok(f, I_I16), 29.1, 1e-9);
    rtu_finish(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_channels_come_from_the_profile, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_type_and_order_reads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writes_land_in_the_right_registers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writes_that_cannot_be_sent_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_an_exception_is_a_remote_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_silent_device_times_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_closed_connection_is_not_connected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_rig_entries_are_all_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_stale_rtu_reply_is_never_taken_for_the_next_answer,
                                        setup_rtu, teardown_rtu),
        cmocka_unit_test_setup_teardown(test_the_tail_of_a_garbled_rtu_reply_is_not_the_next_answer,
                                        setup_rtu, teardown_rtu),
        cmocka_unit_test_setup_teardown(test_a_garbled_rtu_reply_cut_short_costs_no_more_than_a_timeout,
                                        setup_rtu, teardown_rtu),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
