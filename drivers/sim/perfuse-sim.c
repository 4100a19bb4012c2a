/*
 * perfuse-sim: the simulated rig "sim", speaking the real wire protocols.
 *
 *   perfuse-sim [--seed N] [--rig-out FILE] [--profiles DIR] [--die-with-parent]
 *               [--log-level LEVEL]
 *
 * Two New Era pumps (addresses 0, 1) on one pty, the chip sensors as Modbus
 * RTU slaves (units 1, 2) on another pty, the valve and incubator as Modbus TCP
 * units 1 and 2 on 127.0.0.1. When everything listens it prints one JSON line:
 *   {"pid": N, "seed": S, "rig_file": "...", "buses": {"pumps": "/dev/pts/5",
 *    "sensors": "/dev/pts/6", "plc": "127.0.0.1:40123"}}
 * and runs until SIGTERM or SIGINT.
 */
#include "log.h"
#include "physics.h"
#include "sim_modbus.h"
#include "sim_newera.h"
#include "timeutil.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#define MAX_CLIENTS 16

struct pty {
    int master, slave;
    char path[64];
};

struct sim {
    struct sim_physics phys;
    struct sim_modbus *mb;
    struct pty pumps, sensors;
    int tcp_fd, tcp_port;
    int clients[MAX_CLIENTS];
    int sig_fd;
    uint64_t t0;                /* CLOCK_MONOTONIC at model time 0 */
    char line[256];
    size_t line_len;
    const char *rig_out;
};

/* Open a pty pair; the sim keeps the slave open and raw, so replies are never
 * echoed back and the master never sees EIO when the daemon closes its end. */
static int pty_open(struct pty *p)
{
    p->master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (p->master < 0 || grantpt(p->master) < 0 || unlockpt(p->master) < 0)
        return -errno;
    const char *name = ptsname(p->master);
    if (name == NULL)
        return -errno;
    snprintf(p->path, sizeof p->path, "%s", name);
    p->slave = open(p->path, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (p->slave < 0)
        return -errno;
    struct termios t;
    tcgetattr(p->slave, &t);
    cfmakeraw(&t);
    tcsetattr(p->slave, TCSANOW, &t);
    fcntl(p->master, F_SETFL, O_NONBLOCK);
    return 0;
}

/* Bring the model up to the present. */
static void sync_model(struct sim *s)
{
    sim_physics_advance_to(&s->phys, (int64_t)(time_mono_ns() - s->t0));
}

/* Bytes from the pump line: answer each CR-terminated command. */
static void pumps_readable(struct sim *s)
{
    char buf[256];
    ssize_t n = read(s->pumps.master, buf, sizeof buf);
    for (ssize_t i = 0; i < n; i++) {
        if (buf[i] != '\r') {
            if (s->line_len + 1 < sizeof s->line)
                s->line[s->line_len++] = buf[i];
            continue;
        }
        s->line[s->line_len] = '\0';
        s->line_len = 0;
        sync_model(s);
        char out[128];
        size_t len = sim_newera_handle(&s->phys, s->line, out, sizeof out);
        if (len > 0 && write(s->pumps.master, out, len) < 0)
            log_warn("pumps", "write: %s", strerror(errno));
    }
}

/* Bytes from the RTU line. */
static void sensors_readable(struct sim *s)
{
    uint8_t buf[256];
    ssize_t n = read(s->sensors.master, buf, sizeof buf);
    if (n > 0) {
        sync_model(s);
        sim_rtu_feed(s->mb, s->sensors.master, buf, (size_t)n);
    }
}

/* A TCP client connected. */
static void tcp_accept(struct sim *s)
{
    int fd = accept4(s->tcp_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        return;
    for (int i = 0; i < MAX_CLIENTS; i++)
        if (s->clients[i] < 0) {
            s->clients[i] = fd;
            return;
        }
    close(fd);
}

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
            "  - {name: pumps, type: serial, port: %s, baud: 19200}\n"
            "  - {name: sensors, type: modbus-rtu, port: %s, baud: 19200, parity: N}\n"
            "  - {name: plc, type: modbus-tcp, host: 127.0.0.1, port: %d}\n"
            "devices:\n", (int)getpid(), s->pumps.path, s->sensors.path, s->tcp_port);
    for (int i = 0; i < SIM_PUMPS; i++)
        fprintf(f, "  - {name: pump%d, driver: newera, bus: pumps, address: %d,\n"
                "     syringe: {diameter: 14.57 mm, volume: 10 mL}, max_flow: 1000 uL/min}\n", i + 1, i);
    fprintf(f, "  - {name: chip1, driver: modbus, bus: sensors, unit: 1, profile: %s/chip-sensor-o2.yaml}\n"
            "  - {name: chip2, driver: modbus, bus: sensors, unit: 2, profile: %s/pressure-flow.yaml}\n"
            "  - {name: valve1, driver: modbus, bus: plc, unit: 1, profile: %s/rotary-valve.yaml}\n"
            "  - {name: incubator, driver: modbus, bus: plc, unit: 2, profile: %s/temperature-controller.yaml}\n",
            profiles, profiles, profiles, profiles);
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

/* Set everything up; returns 0 or a negative errno. */
static int sim_setup(struct sim *s, uint64_t seed, const char *profiles)
{
    sim_physics_init(&s->phys, seed);
    s->t0 = time_mono_ns();
    for (int i = 0; i < MAX_CLIENTS; i++)
        s->clients[i] = -1;
    int rc = sim_modbus_create(&s->mb, &s->phys);
    if (rc == 0)
        rc = pty_open(&s->pumps);
    if (rc == 0)
        rc = pty_open(&s->sensors);
    if (rc == 0 && (s->tcp_fd = sim_tcp_listen(s->mb, 0, &s->tcp_port)) < 0)
        rc = s->tcp_fd;
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

/* Serve until a signal arrives. */
static void sim_loop(struct sim *s)
{
    for (;;) {
        struct pollfd pf[4 + MAX_CLIENTS];
        int map[MAX_CLIENTS];
        int n = 0;
        pf[n++] = (struct pollfd){ .fd = s->sig_fd, .events = POLLIN };
        pf[n++] = (struct pollfd){ .fd = s->pumps.master, .events = POLLIN };
        pf[n++] = (struct pollfd){ .fd = s->sensors.master, .events = POLLIN };
        pf[n++] = (struct pollfd){ .fd = s->tcp_fd, .events = POLLIN };
        int nc = 0;
        for (int i = 0; i < MAX_CLIENTS; i++)
            if (s->clients[i] >= 0) {
                map[nc++] = i;
                pf[n++] = (struct pollfd){ .fd = s->clients[i], .events = POLLIN };
            }
        if (poll(pf, (nfds_t)n, -1) < 0 && errno != EINTR)
            return;
        if (pf[0].revents)
            return;
        if (pf[1].revents & POLLIN)
            pumps_readable(s);
        if (pf[2].revents & POLLIN)
            sensors_readable(s);
        if (pf[3].revents & POLLIN)
            tcp_accept(s);
        for (int k = 0; k < nc; k++) {
            if (!pf[4 + k].revents)
                continue;
            sync_model(s);
            int idx = map[k];
            if ((pf[4 + k].revents & (POLLHUP | POLLERR)) || sim_tcp_serve(s->mb, s->clients[idx]) < 0) {
                close(s->clients[idx]);
                s->clients[idx] = -1;
            }
        }
    }
}

/* Release everything and remove the rig file. */
static void sim_cleanup(struct sim *s)
{
    for (int i = 0; i < MAX_CLIENTS; i++)
        if (s->clients[i] >= 0)
            close(s->clients[i]);
    sim_modbus_free(s->mb);
    if (s->tcp_fd >= 0)
        close(s->tcp_fd);
    close(s->pumps.master);
    close(s->pumps.slave);
    close(s->sensors.master);
    close(s->sensors.slave);
    if (s->rig_out)
        unlink(s->rig_out);
}

static void usage(FILE *out)
{
    fprintf(out, "usage: perfuse-sim [--seed N] [--rig-out FILE] [--profiles DIR] [--die-with-parent]\n"
                 "                   [--log-level LEVEL]\n"
                 "Serve the simulated rig 'sim' on ptys and 127.0.0.1; print its endpoints as JSON.\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "seed", required_argument, NULL, 's' }, { "rig-out", required_argument, NULL, 'r' },
        { "profiles", required_argument, NULL, 'p' }, { "die-with-parent", no_argument, NULL, 'd' },
        { "log-level", required_argument, NULL, 'l' }, { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct sim s = { .tcp_fd = -1 };
    uint64_t seed = 1;
    const char *profiles_arg = NULL;
    log_set_program("perfuse-sim");
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 's': seed = strtoull(optarg, NULL, 10); break;
        case 'r': s.rig_out = optarg; break;
        case 'p': profiles_arg = optarg; break;
        case 'd': {
            pid_t parent = getppid();
            prctl(PR_SET_PDEATHSIG, SIGTERM);
            if (getppid() != parent)
                return 0;   /* the parent died before we asked to be told */
            break;
        }
        case 'l': log_set_level_name(optarg); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    char profiles[PATH_MAX];
    find_profiles(profiles_arg, profiles, sizeof profiles);
    int rc = sim_setup(&s, seed, profiles);
    if (rc < 0) {
        log_error("sim", "cannot start: %s", strerror(-rc));
        sim_cleanup(&s);
        return 1;
    }
    printf("{\"pid\": %d, \"seed\": %llu, \"rig_file\": %s%s%s, \"buses\": {\"pumps\": \"%s\", "
           "\"sensors\": \"%s\", \"plc\": \"127.0.0.1:%d\"}}\n", (int)getpid(),
           (unsigned long long)seed, s.rig_out ? "\"" : "", s.rig_out ? s.rig_out : "null",
           s.rig_out ? "\"" : "", s.pumps.path, s.sensors.path, s.tcp_port);
    fflush(stdout);
    sim_loop(&s);
    sim_cleanup(&s);
    return 0;
}
