/*
 * perfused: the daemon that runs one perfusion rig.
 *
 *   perfused [--rig FILE | --sim] [--socket PATH] [--data-dir DIR] [--log-level LEVEL]
 */
#include "commands.h"
#include "control.h"
#include "daemon.h"
#include "mqtt.h"
#include "sdnotify.h"
#include "base/log.h"
#include "base/rtsched.h"
#include "base/sockpath.h"
#include "simchild.h"
#include "base/utf8.h"

#include <errno.h>
#include <getopt.h>
#include <sys/stat.h>
#include <unistd.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Print usage to out. */
static void usage(FILE *out)
{
    char sock[108];
    sockpath_default(sock, sizeof sock);
    fprintf(out,
        "usage: perfused [--rig FILE | --sim] [--socket PATH] [--data-dir DIR] [--log-level LEVEL]\n"
        "                [--realtime PRIO] [OPTIONS]\n"
        "\n"
        "Run one perfusion rig: drive its devices, run protocols, record every run to HDF5.\n"
        "\n"
        "  --rig FILE        the rig file (buses, devices, channels)\n"
        "  --sim             start perfuse-sim and drive its simulated devices through the\n"
        "                    real drivers (mock-device mode; no hardware needed)\n"
        "  --sim-seed N      seed of the simulated rig's noise (default 1)\n"
        "  --line-rate on|off  with --sim: pace the simulated serial lines at their baud\n"
        "                    rate, framing and device latency (default on); off for speed\n"
        "  --sim-baud N      with --sim: the pump and sensor lines' baud rate (default 19200)\n"
        "  --socket PATH     control socket, mode 0660 (default here: %s)\n"
        "  --ro-socket PATH  read-only socket: status, watch, events, devices, wait\n"
        "                    (default: perfused-ro.sock beside the control socket;\n"
        "                    'none': no read-only socket)\n"
        "  --socket-group G  give the control socket to group G (the operators)\n"
        "  --ro-socket-group G  give the read-only socket to group G (the viewers), mode\n"
        "                    0660; without it the read-only socket is 0666\n"
        "  --max-clients N   connections served at once (default 64); more are refused\n"
        "  --data-dir DIR    where run files go (default ./runs)\n"
        "  --log-level LEVEL error, warning, info or debug (default info)\n"
        "  --sample-hz N     sample every measured channel N times a second (overrides the rig)\n"
        "  --realtime PRIO   run the event loop and the bus threads under SCHED_FIFO at\n"
        "                    priority PRIO (1-99), so that a busy machine cannot delay\n"
        "                    setpoints; needs root, CAP_SYS_NICE or LimitRTPRIO (default:\n"
        "                    normal scheduling)\n"
        "  --ready-fd FD     write \"READY=1\\n\" to FD once the control socket is open,\n"
        "                    then close it (for scripts: an event instead of polling)\n"
        "  --version         print the version\n", sock);
}

/* Open the control sockets for d, serving the daemon's commands. */
static int start_control(struct daemon *d, const struct control_config *cfg)
{
    struct control_hooks hooks;
    commands_hooks(d, &hooks);
    char err[512] = "";
    int rc = control_start(&d->control, d->loop, cfg, commands_table(), &hooks, err, sizeof err);
    if (rc < 0)
        log_error("control", "%s", err);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "rig", required_argument, NULL, 'r' }, { "sim", no_argument, NULL, 's' },
        { "sim-seed", required_argument, NULL, 'S' }, { "socket", required_argument, NULL, 'k' },
        { "data-dir", required_argument, NULL, 'd' }, { "log-level", required_argument, NULL, 'l' },
        { "ready-fd", required_argument, NULL, 'R' }, { "sample-hz", required_argument, NULL, 'H' },
        { "ro-socket", required_argument, NULL, 'o' }, { "socket-group", required_argument, NULL, 'g' },
        { "ro-socket-group", required_argument, NULL, 'G' }, { "max-clients", required_argument, NULL, 'm' },
        { "help", no_argument, NULL, 'h' }, { "version", no_argument, NULL, 'V' },
        { "line-rate", required_argument, NULL, 'L' }, { "sim-baud", required_argument, NULL, 'B' },
        { "realtime", required_argument, NULL, 'T' },
        { NULL, 0, NULL, 0 },
    };
    struct daemon_config cfg = { .data_dir = "runs", .sim_seed = 1 };
    struct control_config ccfg = { 0 };
    int ready_fd = -1;
    size_t n_sim_args = 0;
    char sim_path[PATH_MAX];
    log_set_program("perfused");
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'r': cfg.rig_path = optarg; break;
        case 's': cfg.sim = true; break;
        case 'S': cfg.sim_seed = strtoull(optarg, NULL, 10); break;
        case 'k': ccfg.socket_path = optarg; break;
        case 'd': cfg.data_dir = optarg; break;
        case 'o': ccfg.ro_socket_path = optarg; break;
        case 'g': ccfg.socket_group = optarg; break;
        case 'G': ccfg.ro_socket_group = optarg; break;
        case 'm':
            ccfg.max_clients = atoi(optarg);
            if (ccfg.max_clients < 1 || ccfg.max_clients > 4096) {
                fprintf(stderr, "perfused: --max-clients takes a number from 1 to 4096\n");
                return 2;
            }
            break;
        case 'R': ready_fd = atoi(optarg); break;
        case 'T': {
            char *end;
            long p = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || p < 1 || p > RTSCHED_PRIO_MAX) {
                fprintf(stderr, "perfused: --realtime takes a priority from 1 to %d (20 is a good "
                        "choice: above ordinary work, below the kernel's own threads)\n", RTSCHED_PRIO_MAX);
                return 2;
            }
            cfg.realtime_prio = (int)p;
            break;
        }
        case 'L':
            if (strcmp(optarg, "on") != 0 && strcmp(optarg, "off") != 0) {
                fprintf(stderr, "perfused: --line-rate takes on or off\n");
                return 2;
            }
            __attribute__((fallthrough));   /* perfuse-sim checks --sim-baud */
        case 'B':
            if (n_sim_args + 3 > sizeof cfg.sim_args / sizeof cfg.sim_args[0]) {
                fprintf(stderr, "perfused: --line-rate and --sim-baud are given once each\n");
                return 2;
            }
            cfg.sim_args[n_sim_args++] = c == 'L' ? "--line-rate" : "--baud";
            cfg.sim_args[n_sim_args++] = optarg;
            break;
        case 'H':
            cfg.sample_hz = strtod(optarg, NULL);
            if (!(cfg.sample_hz > 0 && cfg.sample_hz <= 1000)) {
                fprintf(stderr, "perfused: --sample-hz takes a rate from 0 to 1000\n");
                return 2;
            }
            break;
        case 'l':
            if (log_set_level_name(optarg) < 0) {
                fprintf(stderr, "perfused: unknown log level '%s' (error, warning, info, debug)\n", optarg);
                return 2;
            }
            break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("perfused %s (%s)\n", PERFUSE_VERSION, PERFUSE_GIT_REV); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc || (cfg.sim == (cfg.rig_path != NULL))) {
        fprintf(stderr, "perfused: give exactly one of --rig FILE or --sim\n");
        usage(stderr);
        return 2;
    }
    if (n_sim_args > 0 && !cfg.sim) {
        fprintf(stderr, "perfused: --line-rate and --sim-baud go with --sim (a real line runs at "
                "its own rate)\n");
        return 2;
    }
    if (cfg.sim) {
        const char *env = getenv("PERFUSE_SIM");
        if (env && *env)
            snprintf(sim_path, sizeof sim_path, "%s", env);
        else if (simchild_default_path(sim_path, sizeof sim_path) < 0)
            snprintf(sim_path, sizeof sim_path, "perfuse-sim");
        cfg.sim_path = sim_path;
    }
    /* Clients may run elsewhere: give them absolute run-file paths. */
    /* What the daemon creates is for its user and the lab's group only: run
     * files and the journal 0640, directories 0750, whatever the caller's umask. */
    umask(027);
    char data_dir[PATH_MAX];
    if (mkdir(cfg.data_dir, 0750) < 0 && errno != EEXIST) {
        fprintf(stderr, "perfused: cannot create data directory %s: %s\n", cfg.data_dir, strerror(errno));
        return 1;
    }
    if (realpath(cfg.data_dir, data_dir) == NULL) {
        fprintf(stderr, "perfused: data directory %s: %s\n", cfg.data_dir, strerror(errno));
        return 1;
    }
    /* Run-file paths go into replies and the journal, which are UTF-8 only. */
    if (!utf8_valid(data_dir, strlen(data_dir))) {
        fprintf(stderr, "perfused: data directory %s: its path is not UTF-8 text; give it a UTF-8 "
                "name\n", data_dir);
        return 1;
    }
    cfg.data_dir = data_dir;
    /* A client that disconnects mid-reply must not kill the daemon. */
    signal(SIGPIPE, SIG_IGN);
    /* Nor may a file-size limit: a write past it fails (EFBIG) and the recorder copes. */
    signal(SIGXFSZ, SIG_IGN);
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct daemon d;
    /* The socket is opened before anything is driven: a second daemon on the
     * same socket stops there, before it touches the devices or the journal. */
    int rc = daemon_init(&d, &loop, &cfg);
    if (rc == 0)
        rc = start_control(&d, &ccfg);
    if (rc == 0)
        rc = daemon_start(&d);
    if (rc < 0) {
        daemon_shutdown(&d, "start-up failed");
        daemon_run(&d);
        uv_loop_close(&loop);
        return 1;
    }
    /* MQTT: a broker out of reach is no error; a bad setting is an alarm, not a stop. */
    struct mqtt *mqtt = NULL;
    char err[512] = "";
    if (mqtt_start(&mqtt, &d, err, sizeof err) < 0) {
        log_error("mqtt", "%s; running without MQTT", err);
        alarms_raise(&d.alarms, pclock_now(&d.clock), "fault", "mqtt", "mqtt_config", NULL, "%s", err);
    }
    char status[160];
    snprintf(status, sizeof status, "rig %s; control socket %s", d.rig->name, control_path(d.control));
    sdnotify_ready(&d.sdn, &loop, status);
    if (ready_fd >= 0) {
        static const char ready[] = "READY=1\n";
        if (write(ready_fd, ready, sizeof ready - 1) < 0)
            log_warn("daemon", "cannot write to --ready-fd %d: %s", ready_fd, strerror(errno));
        close(ready_fd);
    }
    rc = daemon_run(&d);
    mqtt_free(mqtt);
    uv_loop_close(&loop);
    return rc;
}
