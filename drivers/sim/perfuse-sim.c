/*
 * perfuse-sim: the simulated rig "sim", speaking the real wire protocols.
 *
 *   perfuse-sim [--seed N] [--rig-out FILE] [--profiles DIR] [--fault SPEC]...
 *               [--control PATH] [--die-with-parent] [--log-level LEVEL] [--trace FILE]
 *               [--line-rate on|off] [--baud N] [--response-latency DEVICE=MS]...
 *
 * Two New Era pumps (addresses 0, 1) on one pty, the chip sensors as Modbus
 * RTU slaves (units 1, 2) on another pty, the valve and incubator as Modbus TCP
 * units 1 and 2 on 127.0.0.1. The pressure-driven chips (pplant.h): chip3's
 * flow sensor as RTU unit 3 on its own pty (flow.tty, 115200 baud), pushed by
 * the OB1-style controller "ob1" on its own pty (always in the rig file), and
 * the Modbus pressure controller "pc1" as TCP unit 3 with its chip's flow
 * sensor. Extra lab devices beyond the contract rig
 * (sim_lines.h) each have a pty too, listed in the rig file with
 * --lab-devices. The ptys are reached through stable symlinks
 * (pumps.tty, sensors.tty) beside the rig file, so a simulated unplug and
 * replug keeps the path. When everything listens it prints one JSON line:
 *   {"pid": N, "seed": S, "rig_file": "...", "control": "...",
 *    "buses": {"pumps": ".../pumps.tty", "sensors": ".../sensors.tty", "plc": "127.0.0.1:40123",
 *               "flow": ".../flow.tty", "ob1": ".../ob1.tty", ...}}
 * and runs until SIGTERM or SIGINT.
 *
 * Every serial line is paced at its baud rate and framing, in both directions,
 * with each device's response latency and, on the Modbus RTU line, the
 * 3.5-character silences (sim_wire.h); --line-rate off passes bytes at once.
 * --baud sets the rate of the pump and sensor lines (default 19200).
 *
 * Faults (drivers/sim/sim_faults.h lists the kinds): --fault KIND:DEVICE[,at=D][,for=D]
 * at start, or at run time on the control socket, one command per line:
 *   fault KIND:DEVICE[,at=D][,for=D]    -> "ok" or "error: ..."
 *   clear DEVICE|all                    -> "ok"
 *   list                                -> one line per fault, then "ok"
 */
#include "base/log.h"
#include "drivers/newera.h"
#include "physics.h"
#include "sim_faults.h"
#include "sim_lines.h"
#include "sim_modbus.h"
#include "sim_newera.h"
#include "sim_wire.h"
#include "base/timeutil.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define MAX_CLIENTS 16
#define MAX_FAULTS 32
#define MAX_LINES 8

struct pty {
    int master, slave;
    char link[PATH_MAX - 32];   /* stable symlink to the pts */
    char pts[64];
    struct sim_wire wire;       /* its pacing; kept across an unplug */
};

/* An extra lab line (sim_lines.h) being served. */
struct sim_line {
    const struct sim_line_ops *ops;
    void *state;
    enum sim_device dev;        /* its fault device */
    struct pty pty;
    char cmd[256];              /* the command being received */
    size_t cmd_len;
};

struct sim {
    struct sim_physics phys;
    struct sim_faults_table faults;
    struct sim_modbus *mb;
    struct pty pumps, sensors;
    struct pty flow;            /* chip3's flow sensor: its own RTU line at 115200 baud */
    struct sim_line lines[MAX_LINES];
    size_t n_lines;
    bool lab_devices;           /* --lab-devices: the rig file lists the extra lines' devices */
    int tcp_fd, tcp_port;
    int clients[MAX_CLIENTS];
    int ctl_fd, ctl_clients[4];
    char ctl_path[108];
    int sig_fd;
    uint64_t t0;                /* CLOCK_MONOTONIC at model time 0 */
    bool line_rate;             /* pace the serial lines (--line-rate, default on) */
    int baud;                   /* the pump and sensor lines' rate (--baud) */
    int64_t latency_ns[SD_DEVICES];  /* each device's response latency */
    int64_t done_ns;            /* when the command being answered was complete */
    char line[256];
    size_t line_len;
    char pkt[160];              /* a safe-mode packet being received */
    size_t pkt_len;
    const char *rig_out;
    int trace_fd;               /* --trace: every reply, for tests; -1 if none */
    char dir[PATH_MAX - 64];
    bool made_dir;
};

/* Open a pty pair behind the symlink p->link. The sim keeps the slave open and
 * raw, so replies are never echoed back and the master never sees EIO when the
 * daemon closes its end. */
static int pty_open(struct pty *p)
{
    p->master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (p->master < 0 || grantpt(p->master) < 0 || unlockpt(p->master) < 0)
        return -errno;
    const char *name = ptsname(p->master);
    if (name == NULL)
        return -errno;
    snprintf(p->pts, sizeof p->pts, "%s", name);
    p->slave = open(p->pts, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (p->slave < 0)
        return -errno;
    struct termios t;
    tcgetattr(p->slave, &t);
    cfmakeraw(&t);
    tcsetattr(p->slave, TCSANOW, &t);
    fcntl(p->master, F_SETFL, O_NONBLOCK);
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s.new", p->link);
    unlink(tmp);
    if (symlink(p->pts, tmp) < 0 || rename(tmp, p->link) < 0)
        return -errno;
    return 0;
}

/* Unplug: close both ends and remove the symlink; what was on the wire is lost. */
static void pty_close(struct pty *p)
{
    if (p->master >= 0) {
        close(p->master);
        close(p->slave);
        unlink(p->link);
    }
    p->master = p->slave = -1;
    sim_wire_reset(&p->wire);
}

/* Model time now. */
static int64_t model_now(const struct sim *s)
{
    return (int64_t)(time_mono_ns() - s->t0);
}

/* Write the reply bytes that have reached the host by now. */
static void pty_flush(struct sim *s, struct pty *p, const char *who)
{
    uint8_t buf[SIM_WIRE_BUF];
    size_t n = sim_wire_host_take(&p->wire, model_now(s), buf, sizeof buf);
    if (n > 0 && p->master >= 0 && write(p->master, buf, n) < 0)
        log_warn(who, "write: %s", strerror(errno));
}

/* A device's reply goes on its line, after its latency, paced by the wire. */
static void line_send(struct sim *s, struct pty *p, enum sim_device dev, const char *who,
                      const void *buf, size_t len)
{
    sim_wire_device_reply(&p->wire, s->done_ns, s->latency_ns[dev], buf, len);
    pty_flush(s, p, who);
}

/* The host wrote to a line: its bytes go on the wire. */
static void pty_readable(struct sim *s, struct pty *p)
{
    uint8_t buf[256];
    ssize_t n = read(p->master, buf, sizeof buf);
    if (n > 0)
        sim_wire_host_sent(&p->wire, model_now(s), buf, (size_t)n);
}

/* Bring the model up to the present and apply the faults of this moment. */
static void sync_model(struct sim *s)
{
    sim_physics_advance_to(&s->phys, model_now(s));
    sim_fault_apply(&s->faults, &s->phys, s->phys.now_ns);
    /* A pump in Safe mode stops itself when no valid packet came in time. */
    for (int i = 0; i < SIM_PUMPS; i++) {
        struct sim_pump *pu = &s->phys.pump[i];
        if (pu->safe_s > 0 && pu->safe_armed &&
            s->phys.now_ns - pu->safe_last_ns >= (int64_t)pu->safe_s * 1000000000LL) {
            pu->safe_armed = false;
            pu->running = false;
            pu->alarm = 'T';
            log_info("pumps", "pump%d: safe-mode time-out after %d s without a packet: stopped (A?T)",
                     i + 1, pu->safe_s);
        }
    }
}

/* Whether a pump's safe-mode timer runs (the loop must wake to check it). */
static bool safe_timer_running(const struct sim *s)
{
    for (int i = 0; i < SIM_PUMPS; i++)
        if (s->phys.pump[i].safe_s > 0 && s->phys.pump[i].safe_armed)
            return true;
    return false;
}

/* The pump a command line is for (its leading address), or -1. */
static int line_address(const char *line)
{
    int addr = 0, digits = 0;
    for (const char *p = line; *p && digits < 2; p++) {
        if (*p == ' ')
            continue;
        if (*p < '0' || *p > '9')
            break;
        addr = addr * 10 + (*p - '0');
        digits++;
    }
    return addr < SIM_PUMPS ? addr : -1;
}

/* Trace one serial exchange: "WHO COMMAND REPLY", control characters dropped. */
static void trace_serial(int fd, const char *who, const char *cmd, const char *reply, size_t len)
{
    char buf[300];
    int n = snprintf(buf, sizeof buf, "%.16s ", who);
    for (const char *p = cmd; *p && n < 120; p++)
        if (isgraph((unsigned char)*p))
            buf[n++] = *p;
    buf[n++] = ' ';
    for (size_t i = 0; i < len && n < 280; i++)
        if (isgraph((unsigned char)reply[i]))
            buf[n++] = reply[i];
    buf[n++] = '\n';
    if (write(fd, buf, (size_t)n) < 0)
        log_warn("sim", "trace: %s", strerror(errno));
}

/* Answer one pump command, applying that pump's wire faults. */
static void pump_command(struct sim *s, const char *line)
{
    sync_model(s);
    int addr = line_address(line);
    char out[128];
    size_t len = 0;
    enum sim_device dev = addr == 1 ? SD_PUMP2 : SD_PUMP1;
    int64_t now = s->phys.now_ns;
    if (addr >= 0 && sim_fault_active(&s->faults, dev, SF_TIMEOUT, now))
        return;
    if (addr >= 0 && sim_fault_active(&s->faults, dev, SF_GARBAGE, now)) {
        len = 9;
        sim_garbage(s->phys.tick, (uint8_t *)out, len);
    } else if (addr >= 0 && sim_fault_active(&s->faults, dev, SF_EXCEPTION, now)) {
        len = (size_t)snprintf(out, sizeof out, "\x02%02dS?NA\x03", addr);
    } else {
        len = sim_newera_handle(&s->phys, line, out, sizeof out);
    }
    if (len > 0)
        line_send(s, &s->pumps, dev, "pumps", out, len);
    if (len > 0 && s->trace_fd >= 0)
        trace_serial(s->trace_fd, "ne", line, out, len);
}

/* A complete safe-mode packet from the pump line: check it, answer in kind. */
static void pump_packet(struct sim *s, const char *pkt, size_t n)
{
    size_t dn = n - 5;
    unsigned crc = ((unsigned)(unsigned char)pkt[2 + dn] << 8) | (unsigned char)pkt[3 + dn];
    if (pkt[n - 1] != NEWERA_ETX || crc != newera_crc16(pkt + 2, dn))
        return;     /* a corrupted packet is not a valid packet: no answer, no keep-alive */
    char cmd[64];
    snprintf(cmd, sizeof cmd, "%.*s", (int)dn, pkt + 2);
    sync_model(s);
    int addr = line_address(cmd);
    struct sim_pump *pu = addr >= 0 && addr < SIM_PUMPS ? &s->phys.pump[addr] : NULL;
    char out[128];
    size_t len = sim_newera_handle(&s->phys, cmd, out, sizeof out);
    if (pu != NULL) {
        pu->safe_last_ns = s->phys.now_ns;
        pu->safe_armed = pu->safe_s > 0;
    }
    /* The answer is the Basic reply's inside, wrapped. */
    char pk[160];
    int m = len >= 2 ? newera_safe_packet(out + 1, len - 2, pk, sizeof pk) : -1;
    if (m > 0)
        line_send(s, &s->pumps, addr == 1 ? SD_PUMP2 : SD_PUMP1, "pumps", pk, (size_t)m);
    if (m > 0 && s->trace_fd >= 0)
        trace_serial(s->trace_fd, "ne", cmd, out, len);
}

/* One byte arrived at the pumps: answer each CR-terminated command, or each
 * safe-mode packet (STX, length, data, CRC, ETX). */
static void pumps_byte(struct sim *s, char c)
{
    if (s->pkt_len > 0 || (s->line_len == 0 && c == NEWERA_STX)) {
        s->pkt[s->pkt_len++] = c;
        size_t want = s->pkt_len >= 2 ? 1 + (unsigned char)s->pkt[1] : 0;
        if (s->pkt_len >= 2 && (want < 6 || want > sizeof s->pkt))
            s->pkt_len = 0;             /* not a packet we can take */
        else if (want > 0 && s->pkt_len == want) {
            pump_packet(s, s->pkt, s->pkt_len);
            s->pkt_len = 0;
        }
        return;
    }
    if (c != '\r') {
        if (s->line_len + 1 < sizeof s->line)
            s->line[s->line_len++] = c;
        return;
    }
    s->line[s->line_len] = '\0';
    s->line_len = 0;
    pump_command(s, s->line);
}

/* The pump line: act on each byte as it completes, send what is due. */
static void pumps_due(struct sim *s)
{
    uint8_t c;
    while (s->pumps.master >= 0 &&
           sim_wire_device_take(&s->pumps.wire, model_now(s), &c, 1, &s->done_ns) == 1)
        pumps_byte(s, (char)c);
    pty_flush(s, &s->pumps, "pumps");
}

/* Answer one command on an extra line, applying the line's wire faults. */
static void line_command(struct sim *s, struct sim_line *l, const char *cmd)
{
    sync_model(s);
    int64_t now = s->phys.now_ns;
    char out[512];
    size_t len;
    if (sim_fault_active(&s->faults, l->dev, SF_TIMEOUT, now))
        return;
    if (sim_fault_active(&s->faults, l->dev, SF_GARBAGE, now)) {
        len = 9;
        sim_garbage(s->phys.tick, (uint8_t *)out, len);
    } else if (sim_fault_active(&s->faults, l->dev, SF_EXCEPTION, now)) {
        len = l->ops->refuse(l->state, cmd, out, sizeof out);
    } else {
        len = l->ops->handle(l->state, now, cmd, out, sizeof out);
    }
    if (len > sizeof out)
        len = sizeof out;
    if (len > 0)
        line_send(s, &l->pty, l->dev, l->ops->name, out, len);
    if (len > 0 && s->trace_fd >= 0)
        trace_serial(s->trace_fd, l->ops->name, cmd, out, len);
}

/* An extra line: one command per CR (LF dropped), or per LF (CR dropped), as
 * its bytes complete; send what is due. */
static void line_due(struct sim *s, struct sim_line *l)
{
    uint8_t c;
    char eol = l->ops->eol ? l->ops->eol : '\r';
    while (l->pty.master >= 0 &&
           sim_wire_device_take(&l->pty.wire, model_now(s), &c, 1, &s->done_ns) == 1) {
        if ((c == '\n' || c == '\r') && (char)c != eol)
            continue;
        if ((char)c != eol) {
            if (l->cmd_len + 1 < sizeof l->cmd)
                l->cmd[l->cmd_len++] = (char)c;
            continue;
        }
        l->cmd[l->cmd_len] = '\0';
        l->cmd_len = 0;
        line_command(s, l, l->cmd);
    }
    pty_flush(s, &l->pty, l->ops->name);
}

/* A sensor's RTU reply goes on the line. */
static void rtu_reply(void *arg, int unit, const uint8_t *out, size_t len)
{
    struct sim *s = arg;
    line_send(s, &s->sensors, unit == 2 ? SD_CHIP2 : SD_CHIP1, "sensors", out, len);
}

/* chip3's RTU reply goes on the flow line. */
static void flow_reply(void *arg, int unit, const uint8_t *out, size_t len)
{
    struct sim *s = arg;
    (void)unit;
    line_send(s, &s->flow, SD_CHIP3, "flow", out, len);
}

/* The RTU line: answer each request once its frame (and silence) is complete. */
static void sensors_due(struct sim *s)
{
    uint8_t buf[SIM_WIRE_BUF];
    size_t n;
    while (s->sensors.master >= 0 &&
           (n = sim_wire_device_take(&s->sensors.wire, model_now(s), buf, sizeof buf,
                                     &s->done_ns)) > 0) {
        sync_model(s);
        sim_rtu_feed(s->mb, SIM_RTU_SENSORS, buf, n, rtu_reply, s);
    }
    pty_flush(s, &s->sensors, "sensors");
}

/* chip3's flow line, as the sensor line. */
static void flow_due(struct sim *s)
{
    uint8_t buf[SIM_WIRE_BUF];
    size_t n;
    while (s->flow.master >= 0 &&
           (n = sim_wire_device_take(&s->flow.wire, model_now(s), buf, sizeof buf, &s->done_ns)) > 0) {
        sync_model(s);
        sim_rtu_feed(s->mb, SIM_RTU_FLOW, buf, n, flow_reply, s);
    }
    pty_flush(s, &s->flow, "flow");
}

/* Accept a connection on fd into one of n slots. */
static void accept_into(int fd, int *slots, int n)
{
    int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
    if (c < 0)
        return;
    for (int i = 0; i < n; i++)
        if (slots[i] < 0) {
            slots[i] = c;
            return;
        }
    close(c);
}

/* Execute one control command; the reply goes to fd. */
static void control_command(struct sim *s, int fd, char *cmd)
{
    char reply[2048];
    char err[256];
    cmd[strcspn(cmd, "\r\n")] = '\0';
    sync_model(s);
    if (strncmp(cmd, "fault ", 6) == 0) {
        if (sim_fault_add(&s->faults, cmd + 6, s->phys.now_ns, err, sizeof err) < 0)
            snprintf(reply, sizeof reply, "error: %s\n", err);
        else
            snprintf(reply, sizeof reply, "ok\n");
    } else if (strncmp(cmd, "clear ", 6) == 0) {
        snprintf(reply, sizeof reply, sim_fault_clear(&s->faults, cmd + 6) == 0 ? "ok\n" :
                 "error: unknown device (pump1, pump2, chip1, chip2, valve1, incubator, reglo, "
                 "harvard, hamilton, ob1, chip3, pc1, all)\n");
    } else if (strcmp(cmd, "list") == 0) {
        sim_fault_describe(&s->faults, s->phys.now_ns, reply, sizeof reply - 4);
        strcat(reply, "ok\n");
    } else {
        snprintf(reply, sizeof reply, "error: unknown command (fault SPEC, clear DEVICE|all, list)\n");
    }
    sync_model(s);
    if (write(fd, reply, strlen(reply)) < 0)
        log_warn("control", "write: %s", strerror(errno));
}

/* A control client sent something: one command per line. */
static void control_readable(struct sim *s, int i)
{
    char buf[512];
    ssize_t n = read(s->ctl_clients[i], buf, sizeof buf - 1);
    if (n <= 0) {
        close(s->ctl_clients[i]);
        s->ctl_clients[i] = -1;
        return;
    }
    buf[n] = '\0';
    for (char *save = NULL, *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
        control_command(s, s->ctl_clients[i], line);
}

/* Open the control socket. */
static int control_open(struct sim *s)
{
    s->ctl_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", s->ctl_path);
    unlink(s->ctl_path);
    if (s->ctl_fd < 0 || bind(s->ctl_fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(s->ctl_fd, 4) < 0)
        return -errno;
    return 0;
}

/* Close or reopen lines whose disconnect fault starts or ends. */
static void apply_disconnects(struct sim *s)
{
    int64_t now = s->phys.now_ns;
    bool pumps_off = sim_fault_active(&s->faults, SD_PUMP1, SF_DISCONNECT, now) ||
                     sim_fault_active(&s->faults, SD_PUMP2, SF_DISCONNECT, now);
    bool sensors_off = sim_fault_active(&s->faults, SD_CHIP1, SF_DISCONNECT, now) ||
                       sim_fault_active(&s->faults, SD_CHIP2, SF_DISCONNECT, now);
    bool flow_off = sim_fault_active(&s->faults, SD_CHIP3, SF_DISCONNECT, now);
    bool plc_off = sim_fault_active(&s->faults, SD_VALVE1, SF_DISCONNECT, now) ||
                   sim_fault_active(&s->faults, SD_INCUBATOR, SF_DISCONNECT, now) ||
                   sim_fault_active(&s->faults, SD_PC1, SF_DISCONNECT, now);
    if (pumps_off && s->pumps.master >= 0)
        pty_close(&s->pumps);
    else if (!pumps_off && s->pumps.master < 0 && pty_open(&s->pumps) < 0)
        log_error("pumps", "cannot reopen the pump line");
    for (size_t i = 0; i < s->n_lines; i++) {
        struct sim_line *l = &s->lines[i];
        bool off = sim_fault_active(&s->faults, l->dev, SF_DISCONNECT, now);
        if (off && l->pty.master >= 0)
            pty_close(&l->pty);
        else if (!off && l->pty.master < 0 && pty_open(&l->pty) < 0)
            log_error(l->ops->name, "cannot reopen the line");
        struct sim_fault *f = &s->faults.f[l->dev][SF_SYRINGE_EMPTY];
        if (l->ops->empty != NULL && !f->applied &&
            sim_fault_active(&s->faults, l->dev, SF_SYRINGE_EMPTY, now)) {
            l->ops->empty(l->state, now);
            f->applied = true;
        }
    }
    if (sensors_off && s->sensors.master >= 0)
        pty_close(&s->sensors);
    else if (!sensors_off && s->sensors.master < 0 && pty_open(&s->sensors) < 0)
        log_error("sensors", "cannot reopen the sensor line");
    if (flow_off && s->flow.master >= 0)
        pty_close(&s->flow);
    else if (!flow_off && s->flow.master < 0 && pty_open(&s->flow) < 0)
        log_error("flow", "cannot reopen the flow line");
    if (plc_off && s->tcp_fd >= 0) {
        for (int i = 0; i < MAX_CLIENTS; i++)
            if (s->clients[i] >= 0) {
                close(s->clients[i]);
                s->clients[i] = -1;
            }
        sim_tcp_close(s->mb);
        s->tcp_fd = -1;
    } else if (!plc_off && s->tcp_fd < 0) {
        int port;
        s->tcp_fd = sim_tcp_listen(s->mb, s->tcp_port, &port);
        if (s->tcp_fd < 0)
            log_error("plc", "cannot listen again on port %d", s->tcp_port);
    }
}

/* The regulators of the simulated rig, as protocols/rigs/sim.yaml has them. */
static const char sim_regulators_yaml[] =
    "regulators:\n"
    "  - {name: flow3, measure: chip3.flow, actuator: ob1.p1, kp: 2 mbar per uL/min,\n"
    "     ki: 4 mbar per uL/min per s, kd: 0.04 mbar s per uL/min, d_filter: 20 ms, rate: 50 Hz,\n"
    "     output: [0 mbar, 2000 mbar], range: [0 uL/min, 900 uL/min],\n"
    "     tolerance: {abs: 0.2 uL/min, rel: 2 %, for: 30 s}, saturated_for: 10 s}\n"
    "  - {name: flow4, measure: pc1.flow, actuator: pc1.p1, kp: 2.5 mbar per uL/min,\n"
    "     ki: 5 mbar per uL/min per s, kd: 0.05 mbar s per uL/min, d_filter: 20 ms, rate: 50 Hz,\n"
    "     output: [0 mbar, 2000 mbar], range: [0 uL/min, 700 uL/min],\n"
    "     tolerance: {abs: 0.2 uL/min, rel: 2 %, for: 30 s}, saturated_for: 10 s}\n";

/* Write the rig file describing the endpoints, atomically. */
static int write_rig(struct sim *s, const char *profiles)
{
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", s->rig_out);
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return -errno;
    fprintf(f, "# Written by perfuse-sim (pid %d): the simulated rig's endpoints.\n"
            "rig: sim\nbuses:\n"
            "  - {name: pumps, type: serial, port: %s, baud: %d}\n"
            "  - {name: sensors, type: modbus-rtu, port: %s, baud: %d, parity: N}\n"
            "  - {name: plc, type: modbus-tcp, host: 127.0.0.1, port: %d}\n"
            "  - {name: flow, type: modbus-rtu, port: %s, baud: 115200, parity: N}\n",
            (int)getpid(), s->pumps.link, s->baud, s->sensors.link, s->baud, s->tcp_port,
            s->flow.link);
    for (size_t i = 0; i < s->n_lines; i++)
        if (s->lab_devices || s->lines[i].ops->in_rig)
            fprintf(f, s->lines[i].ops->bus_yaml, s->lines[i].pty.link);
    fprintf(f, "devices:\n");
    for (int i = 0; i < SIM_PUMPS; i++)
        fprintf(f, "  - {name: pump%d, driver: newera, bus: pumps, address: %d,\n"
                "     syringe: {diameter: 14.57 mm, volume: 10 mL}, max_flow: 1000 uL/min}\n", i + 1, i);
    fprintf(f, "  - {name: chip1, driver: modbus, bus: sensors, unit: 1, profile: %s/chip-sensor-o2.yaml}\n"
            "  - {name: chip2, driver: modbus, bus: sensors, unit: 2, profile: %s/pressure-flow.yaml}\n"
            "  - {name: valve1, driver: modbus, bus: plc, unit: 1, profile: %s/rotary-valve.yaml}\n"
            "  - {name: incubator, driver: modbus, bus: plc, unit: 2, profile: %s/temperature-controller.yaml}\n",
            profiles, profiles, profiles, profiles);
    fprintf(f, "  - {name: chip3, driver: modbus, bus: flow, unit: 3, profile: %s/pressure-flow.yaml,\n"
            "     sample_hz: {flow: 50}}\n"
            "  - {name: pc1, driver: modbus, bus: plc, unit: 3, profile: %s/pressure-controller.yaml,\n"
            "     sample_hz: {flow: 50}}\n", profiles, profiles);
    for (size_t i = 0; i < s->n_lines; i++)
        if (s->lab_devices || s->lines[i].ops->in_rig)
            fputs(s->lines[i].ops->devices_yaml, f);
    fputs(sim_regulators_yaml, f);
    fflush(f);
    fsync(fileno(f));
    if (fclose(f) != 0 || rename(tmp, s->rig_out) < 0)
        return -errno;
    return 0;
}

/* Where the profile files are: --profiles, the source tree, or the installed share dir. */
static void find_profiles(const char *given, char *out, size_t len)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (given != NULL) {
        if (realpath(given, out) == NULL)
            snprintf(out, len, "%s", given);
        return;
    }
    if (n > 0) {
        exe[n] = '\0';
        char cand[PATH_MAX + 32];
        snprintf(cand, sizeof cand, "%s/../protocols/profiles", dirname(exe));
        if (realpath(cand, out) != NULL)
            return;
    }
    snprintf(out, len, "%s/share/perfuse/protocols/profiles", PERFUSE_PREFIX);
}

/* The directory for the symlinks and the control socket: the rig file's, or a new one. */
static int make_dir(struct sim *s)
{
    if (s->rig_out != NULL) {
        char copy[PATH_MAX];
        snprintf(copy, sizeof copy, "%s", s->rig_out);
        snprintf(s->dir, sizeof s->dir, "%s", dirname(copy));
        return 0;
    }
    snprintf(s->dir, sizeof s->dir, "%s/perfuse-sim-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(s->dir) == NULL)
        return -errno;
    s->made_dir = true;
    return 0;
}

/* Add an extra lab line: its state in the power-on state, its pty path, its fault device. */
static int line_create(struct sim *s, const struct sim_line_ops *ops)
{
    struct sim_line *l = &s->lines[s->n_lines];
    l->ops = ops;
    l->pty.master = l->pty.slave = -1;
    l->dev = SD_DEVICES;
    for (int d = 0; d < SD_DEVICES; d++)
        if (strcmp(sim_device_name((enum sim_device)d), ops->name) == 0)
            l->dev = (enum sim_device)d;
    if (l->dev == SD_DEVICES) {
        log_error("sim", "line %s has no fault device in sim_faults.h", ops->name);
        return -EINVAL;
    }
    l->state = calloc(1, ops->state_size ? ops->state_size : 1);
    if (l->state == NULL)
        return -ENOMEM;
    ops->init(l->state);
    if (ops->attach != NULL)
        ops->attach(l->state, &s->phys);
    sim_wire_init(&l->pty.wire, ops->baud, ops->data_bits, ops->parity, 1, false, s->line_rate);
    if (s->latency_ns[l->dev] < 0)
        s->latency_ns[l->dev] = ops->latency_ns;
    snprintf(l->pty.link, sizeof l->pty.link, "%s/%s.tty", s->dir, ops->name);
    s->n_lines++;
    return 0;
}

/* Set everything up; returns 0 or a negative errno. */
static int sim_setup(struct sim *s, uint64_t seed, const char *profiles)
{
    sim_physics_init(&s->phys, seed);
    s->t0 = time_mono_ns();
    for (int i = 0; i < MAX_CLIENTS; i++)
        s->clients[i] = -1;
    for (int i = 0; i < 4; i++)
        s->ctl_clients[i] = -1;
    int rc = make_dir(s);
    static const struct { enum sim_device d; int64_t ns; } lat[] = {
        { SD_PUMP1, SIM_LATENCY_NEWERA_NS }, { SD_PUMP2, SIM_LATENCY_NEWERA_NS },
        { SD_CHIP1, SIM_LATENCY_MODBUS_NS }, { SD_CHIP2, SIM_LATENCY_MODBUS_NS },
        { SD_CHIP3, SIM_LATENCY_MODBUS_NS },
    };
    for (size_t i = 0; i < sizeof lat / sizeof lat[0]; i++)
        if (s->latency_ns[lat[i].d] < 0)
            s->latency_ns[lat[i].d] = lat[i].ns;
    /* New Era: 8N1 (its manual); the RTU sensors: 8N1, as the rig file says (parity N). */
    sim_wire_init(&s->pumps.wire, s->baud, 8, 'N', 1, false, s->line_rate);
    sim_wire_init(&s->sensors.wire, s->baud, 8, 'N', 1, true, s->line_rate);
    /* chip3's flow line: 115200 8N1, so that its 50 Hz reads fit (rig.c checks). */
    sim_wire_init(&s->flow.wire, 115200, 8, 'N', 1, true, s->line_rate);
    snprintf(s->pumps.link, sizeof s->pumps.link, "%s/pumps.tty", s->dir);
    snprintf(s->sensors.link, sizeof s->sensors.link, "%s/sensors.tty", s->dir);
    snprintf(s->flow.link, sizeof s->flow.link, "%s/flow.tty", s->dir);
    for (size_t i = 0; rc == 0 && i < sim_n_lines && i < MAX_LINES; i++)
        rc = line_create(s, sim_lines[i]);
    if (s->ctl_path[0] == '\0')
        snprintf(s->ctl_path, sizeof s->ctl_path, "%.90s/sim.sock", s->dir);
    if (rc == 0)
        rc = sim_modbus_create(&s->mb, &s->phys, &s->faults);
    if (rc == 0)
        rc = pty_open(&s->pumps);
    if (rc == 0)
        rc = pty_open(&s->sensors);
    if (rc == 0)
        rc = pty_open(&s->flow);
    for (size_t i = 0; rc == 0 && i < s->n_lines; i++)
        rc = pty_open(&s->lines[i].pty);
    if (rc == 0 && (s->tcp_fd = sim_tcp_listen(s->mb, 0, &s->tcp_port)) < 0)
        rc = s->tcp_fd;
    if (rc == 0)
        rc = control_open(s);
    if (rc == 0 && s->rig_out != NULL)
        rc = write_rig(s, profiles);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, NULL);
    s->sig_fd = signalfd(-1, &set, SFD_CLOEXEC);
    return rc;
}

/* Whether any fault is set (then the loop wakes regularly to apply windows). */
static bool any_fault(const struct sim *s)
{
    for (int d = 0; d < SD_DEVICES; d++)
        for (int k = 0; k < SF_KINDS; k++)
            if (s->faults.f[d][k].set && s->faults.f[d][k].end_ns > s->phys.now_ns)
                return true;
    return false;
}

/* The next moment a byte is due on any serial line (model time); INT64_MAX if none. */
static int64_t wire_next(const struct sim *s)
{
    int64_t t = sim_wire_next_ns(&s->pumps.wire);
    int64_t u = sim_wire_next_ns(&s->sensors.wire);
    t = u < t ? u : t;
    u = sim_wire_next_ns(&s->flow.wire);
    t = u < t ? u : t;
    for (size_t i = 0; i < s->n_lines; i++) {
        u = sim_wire_next_ns(&s->lines[i].pty.wire);
        t = u < t ? u : t;
    }
    return t;
}

/* Serve until a signal arrives. */
static void sim_loop(struct sim *s)
{
    for (;;) {
        struct pollfd pf[10 + MAX_CLIENTS + MAX_LINES];
        enum { P_SIG, P_PUMPS, P_SENSORS, P_FLOW, P_TCP, P_CTL, P_CTLC };
        int n = P_CTLC + 4;
        pf[P_SIG] = (struct pollfd){ .fd = s->sig_fd, .events = POLLIN };
        pf[P_PUMPS] = (struct pollfd){ .fd = s->pumps.master, .events = POLLIN };
        pf[P_SENSORS] = (struct pollfd){ .fd = s->sensors.master, .events = POLLIN };
        pf[P_FLOW] = (struct pollfd){ .fd = s->flow.master, .events = POLLIN };
        pf[P_TCP] = (struct pollfd){ .fd = s->tcp_fd, .events = POLLIN };
        pf[P_CTL] = (struct pollfd){ .fd = s->ctl_fd, .events = POLLIN };
        for (int i = 0; i < 4; i++)
            pf[P_CTLC + i] = (struct pollfd){ .fd = s->ctl_clients[i], .events = POLLIN };
        for (int i = 0; i < MAX_CLIENTS; i++)
            pf[n++] = (struct pollfd){ .fd = s->clients[i], .events = POLLIN };
        int p_lines = n;
        for (size_t i = 0; i < s->n_lines; i++)
            pf[n++] = (struct pollfd){ .fd = s->lines[i].pty.master, .events = POLLIN };
        /* Fault windows open and close on time: wake every 50 ms while any is set;
         * a byte due on a paced line wakes it at that byte's time. */
        int64_t wait = any_fault(s) || safe_timer_running(s) ? 50000000 : -1;
        int64_t due = wire_next(s);
        if (due != INT64_MAX) {
            int64_t left = due - model_now(s);
            left = left < 0 ? 0 : left;
            wait = wait < 0 || left < wait ? left : wait;
        }
        struct timespec ts = { .tv_sec = wait / 1000000000, .tv_nsec = wait % 1000000000 };
        if (ppoll(pf, (nfds_t)n, wait < 0 ? NULL : &ts, NULL) < 0 && errno != EINTR)
            return;
        if (pf[P_SIG].revents)
            return;
        sync_model(s);
        apply_disconnects(s);
        if (pf[P_PUMPS].revents & POLLIN && s->pumps.master >= 0)
            pty_readable(s, &s->pumps);
        if (pf[P_SENSORS].revents & POLLIN && s->sensors.master >= 0)
            pty_readable(s, &s->sensors);
        if (pf[P_FLOW].revents & POLLIN && s->flow.master >= 0)
            pty_readable(s, &s->flow);
        if (pf[P_TCP].revents & POLLIN && s->tcp_fd >= 0)
            accept_into(s->tcp_fd, s->clients, MAX_CLIENTS);
        if (pf[P_CTL].revents & POLLIN)
            accept_into(s->ctl_fd, s->ctl_clients, 4);
        for (int i = 0; i < 4; i++)
            if (pf[P_CTLC + i].revents && s->ctl_clients[i] >= 0)
                control_readable(s, i);
        for (size_t i = 0; i < s->n_lines; i++)
            if (pf[p_lines + (int)i].revents & POLLIN && s->lines[i].pty.master >= 0)
                pty_readable(s, &s->lines[i].pty);
        pumps_due(s);
        sensors_due(s);
        flow_due(s);
        for (size_t i = 0; i < s->n_lines; i++)
            line_due(s, &s->lines[i]);
        for (int k = P_CTLC + 4; k < p_lines; k++) {
            int idx = k - (P_CTLC + 4);
            if (!pf[k].revents || s->clients[idx] < 0)
                continue;
            sync_model(s);
            if ((pf[k].revents & (POLLHUP | POLLERR)) || sim_tcp_serve(s->mb, s->clients[idx]) < 0) {
                close(s->clients[idx]);
                s->clients[idx] = -1;
            }
        }
    }
}

/* Release everything and remove the files made. */
static void sim_cleanup(struct sim *s)
{
    for (int i = 0; i < MAX_CLIENTS; i++)
        if (s->clients[i] >= 0)
            close(s->clients[i]);
    for (int i = 0; i < 4; i++)
        if (s->ctl_clients[i] >= 0)
            close(s->ctl_clients[i]);
    sim_modbus_free(s->mb);
    pty_close(&s->pumps);
    pty_close(&s->sensors);
    pty_close(&s->flow);
    for (size_t i = 0; i < s->n_lines; i++) {
        pty_close(&s->lines[i].pty);
        free(s->lines[i].state);
    }
    if (s->ctl_fd >= 0) {
        close(s->ctl_fd);
        unlink(s->ctl_path);
    }
    if (s->rig_out)
        unlink(s->rig_out);
    if (s->made_dir)
        rmdir(s->dir);
}

/* --response-latency DEVICE=MS: that device's turnaround. Returns 0 or -EINVAL (said). */
static int latency_arg(struct sim *s, const char *arg)
{
    const char *eq = strchr(arg, '=');
    char *end = NULL;
    double ms = eq ? strtod(eq + 1, &end) : -1;
    for (int d = 0; eq && d < SD_DEVICES; d++) {
        const char *name = sim_device_name((enum sim_device)d);
        if (strlen(name) == (size_t)(eq - arg) && strncmp(arg, name, (size_t)(eq - arg)) == 0 &&
            end != eq + 1 && *end == '\0' && ms >= 0 && ms <= 1000) {
            s->latency_ns[d] = (int64_t)llround(ms * 1e6);
            return 0;
        }
    }
    fprintf(stderr, "perfuse-sim: --response-latency %s: expected DEVICE=MS with MS from 0 to 1000 "
            "and a serial device (pump1 pump2 chip1 chip2 chip3 reglo harvard hamilton ob1)\n", arg);
    return -EINVAL;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: perfuse-sim [--seed N] [--rig-out FILE] [--profiles DIR] [--fault SPEC]...\n"
                 "                   [--control PATH] [--die-with-parent] [--log-level LEVEL]\n"
                 "                   [--trace FILE] [--lab-devices] [--line-rate on|off] [--baud N]\n"
                 "                   [--response-latency DEVICE=MS]... [--version]\n"
                 "Serve the simulated rig 'sim' on ptys and 127.0.0.1; print its endpoints as JSON.\n"
                 "SPEC is KIND:DEVICE[,at=DURATION][,for=DURATION], e.g. timeout:chip1,at=10s,for=5s.\n"
                 "Kinds: timeout garbage crc disconnect exception stuck nan clog bubble syringe-empty range.\n"
                 "Devices: pump1 pump2 chip1 chip2 valve1 incubator chip3 pc1; extra lines: reglo harvard\n"
                 "hamilton ob1.\n"
                 "--trace appends a line per answered read or pump command to FILE, so that a\n"
                 "test can check every recorded value against what was sent on the wire.\n"
                 "--lab-devices adds the extra lab devices (each family on its own pty: NAME.tty\n"
                 "beside the rig file) to the rig file; they are served either way.\n"
                 "--line-rate (default on) paces every serial line at its baud rate and framing,\n"
                 "with each device's response latency and the Modbus RTU 3.5-character gaps;\n"
                 "off passes bytes at once. --baud N sets the pump and sensor lines' rate\n"
                 "(default 19200). --response-latency pump1=5 sets a device's turnaround in ms\n"
                 "(defaults, all assumed: 2 ms, Modbus sensors 1 ms).\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "seed", required_argument, NULL, 's' }, { "rig-out", required_argument, NULL, 'r' },
        { "profiles", required_argument, NULL, 'p' }, { "die-with-parent", no_argument, NULL, 'd' },
        { "fault", required_argument, NULL, 'f' }, { "control", required_argument, NULL, 'c' },
        { "log-level", required_argument, NULL, 'l' }, { "help", no_argument, NULL, 'h' },
        { "trace", required_argument, NULL, 't' }, { "lab-devices", no_argument, NULL, 'L' },
        { "line-rate", required_argument, NULL, 'R' }, { "baud", required_argument, NULL, 'b' },
        { "response-latency", required_argument, NULL, 'T' }, { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    static struct sim s;
    s.tcp_fd = s.ctl_fd = s.trace_fd = -1;
    s.pumps.master = s.sensors.master = s.flow.master = -1;
    uint64_t seed = 1;
    s.line_rate = true;
    s.baud = 19200;
    for (int d = 0; d < SD_DEVICES; d++)
        s.latency_ns[d] = -1;
    const char *profiles_arg = NULL;
    const char *faults[MAX_FAULTS];
    int n_faults = 0;
    log_set_program("perfuse-sim");
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 's': seed = strtoull(optarg, NULL, 10); break;
        case 'r': s.rig_out = optarg; break;
        case 'p': profiles_arg = optarg; break;
        case 'c': snprintf(s.ctl_path, sizeof s.ctl_path, "%s", optarg); break;
        case 'f':
            if (n_faults < MAX_FAULTS)
                faults[n_faults++] = optarg;
            break;
        case 'd': {
            pid_t parent = getppid();
            prctl(PR_SET_PDEATHSIG, SIGTERM);
            if (getppid() != parent)
                return 0;   /* the parent died before we asked to be told */
            break;
        }
        case 'l': log_set_level_name(optarg); break;
        case 'L': s.lab_devices = true; break;
        case 'R':
            if (strcmp(optarg, "on") != 0 && strcmp(optarg, "off") != 0) {
                fprintf(stderr, "perfuse-sim: --line-rate takes on or off, not '%s'\n", optarg);
                return 2;
            }
            s.line_rate = strcmp(optarg, "on") == 0;
            break;
        case 'b':
            s.baud = atoi(optarg);
            if (s.baud != 9600 && s.baud != 19200 && s.baud != 38400 && s.baud != 57600 &&
                s.baud != 115200) {
                fprintf(stderr, "perfuse-sim: --baud takes 9600, 19200, 38400, 57600 or 115200, "
                        "not '%s'\n", optarg);
                return 2;
            }
            break;
        case 'T':
            if (latency_arg(&s, optarg) < 0)
                return 2;
            break;
        case 't':
            s.trace_fd = open(optarg, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
            if (s.trace_fd < 0) {
                fprintf(stderr, "perfuse-sim: --trace %s: %s\n", optarg, strerror(errno));
                return 2;
            }
            break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("perfuse-sim %s (%s)\n", PERFUSE_VERSION, PERFUSE_GIT_REV); return 0;
        default: usage(stderr); return 2;
        }
    }
    char err[256];
    for (int i = 0; i < n_faults; i++)
        if (sim_fault_add(&s.faults, faults[i], 0, err, sizeof err) < 0) {
            fprintf(stderr, "perfuse-sim: --fault %s: %s\n", faults[i], err);
            return 2;
        }
    char profiles[PATH_MAX];
    find_profiles(profiles_arg, profiles, sizeof profiles);
    int rc = sim_setup(&s, seed, profiles);
    if (rc == 0 && s.trace_fd >= 0)
        sim_modbus_set_trace(s.mb, s.trace_fd);
    if (rc < 0) {
        log_error("sim", "cannot start: %s", strerror(-rc));
        sim_cleanup(&s);
        return 1;
    }
    printf("{\"pid\": %d, \"seed\": %llu, \"rig_file\": %s%s%s, \"control\": \"%s\", \"buses\": "
           "{\"pumps\": \"%s\", \"sensors\": \"%s\", \"plc\": \"127.0.0.1:%d\", \"flow\": \"%s\"",
           (int)getpid(), (unsigned long long)seed, s.rig_out ? "\"" : "",
           s.rig_out ? s.rig_out : "null", s.rig_out ? "\"" : "", s.ctl_path, s.pumps.link,
           s.sensors.link, s.tcp_port, s.flow.link);
    for (size_t i = 0; i < s.n_lines; i++)
        printf(", \"%s\": \"%s\"", s.lines[i].ops->name, s.lines[i].pty.link);
    printf("}}\n");
    fflush(stdout);
    sim_loop(&s);
    sim_cleanup(&s);
    return 0;
}
