/*
 * perfusectl: the technician's client for perfused, plus offline tools.
 *
 *   perfusectl [--socket PATH] [--json] COMMAND ...
 */
#include "daemon/control.h"
#include "ctlclient.h"
#include "base/diag.h"
#include "base/log.h"
#include "plan/plan.h"
#include "record/recorder.h"
#include "plan/rig.h"
#include "daemon/run.h"
#include "simulate.h"
#include "fleet.h"
#include "plan/timeline.h"
#include "base/timeutil.h"
#include "base/utf8.h"
#include "base/yamldoc.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { EXIT_OK = 0, EXIT_REFUSED = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3 };

struct ctl {
    const char *socket;
    bool json;
    bool ro;                    /* --ro: use the read-only socket */
    bool socket_given;          /* --socket was given */
    bool read_cmd;              /* the command only reads: the read-only socket will do */
    char sockbuf[108];
    char robuf[108];
};

/* Print the overall usage. */
static void usage(FILE *out)
{
    fprintf(out,
        "usage: perfusectl [--socket PATH] [--ro] [--server-user USER] [--json] COMMAND ...\n"
        "\n"
        "  --ro                use the daemon's read-only socket (perfused-ro.sock beside the\n"
        "                      control socket): status, watch, events, devices and wait work\n"
        "                      there, nothing else. These read commands also use it by\n"
        "                      themselves when the control socket is not open to you.\n"
        "  --server-user USER  the user perfused runs as (default $PERFUSE_SERVER_USER, else the\n"
        "                      owner of the socket's directory); any other server is refused\n"
        "\n"
        "Commands (talk to perfused):\n"
        "  run PROTOCOL [--operator NAME] [--fill PUMP=VOLUME]... [--wait] [--force]\n"
        "                                  load and start; print the run id and file\n"
        "  status                          state, step, progress, ETA, latest values\n"
        "  pause [--reason TEXT]           freeze the protocol clock, hold setpoints\n"
        "  resume [--keep-overrides]       continue; the rest of the plan shifts by the pause\n"
        "  abort [--reason TEXT]           stop the run and apply the safe state\n"
        "  watch [--interval SECONDS]      status, refreshed in place until Ctrl-C\n"
        "  confirm [PROMPT_ID]             answer a pending operator prompt\n"
        "  ack ID|all                      acknowledge an alarm (see status)\n"
        "  devices                         buses and devices: state, faults, last error\n"
        "  wait                            block until the current run ends; print its status\n"
        "  set CHANNEL VALUE UNIT          manual setpoint (no run active, or the run paused)\n"
        "  events [--since SECONDS] [--limit N] [--cursor SEQ]\n"
        "                                  the event log of the current (or last) run\n"
        "Offline:\n"
        "  check PROTOCOL [--rig FILE]     validate; print the timeline, total duration, volumes\n"
        "  simulate PROTOCOL [--rig FILE] [-o OUT.h5] [--speed N|max] [--fault SPEC]...\n"
        "                                  run it in virtual time on the simulated rig; write the\n"
        "                                  same HDF5 file a real run writes\n"
        "  recover FILE.h5                 make a run file left by a crash readable (safe to repeat)\n"
        "  fleet --mqtt mqtt://[USER@]HOST[:PORT]  every rig on an MQTT broker: state, run, alarms\n"
        "\n"
        "Every command takes --help (with an example) and --json (output for programs).\n"
        "Exit codes: 0 success, 1 invalid input or refused, 2 usage error, 3 daemon not reachable.\n");
}

/* One command's help: what it does and an example. */
struct cmd_help {
    const char *name, *synopsis, *text, *example;
};

static const struct cmd_help helps[] = {
    { "run", "run PROTOCOL [--operator NAME] [--fill PUMP=VOLUME]... [--wait] [--force]",
      "Load PROTOCOL (checked first: errors name file, line and column) and start it now.\n"
      "Prints the run id and the HDF5 file. --operator is recorded in the file; --wait blocks\n"
      "until the run ends and exits 1 unless it completed. --fill gives a syringe's fill level\n"
      "at the start (repeat it for each pump); a syringe not named is taken to be full. The\n"
      "levels are recorded in the file, and the low and empty alarms count from them. A run\n"
      "is refused while a device it writes is faulted or out of reach, or a sensor its limits\n"
      "or wait_until name is lost; --force starts it anyway, and the file records who forced\n"
      "it and what was wrong.",
      "perfusectl run protocols/demo.yaml --operator alice --fill pump1=8mL" },
    { "status", "status",
      "The run state, protocol and file; the current step with its path inside repeats; progress\n"
      "of the step and the run with the ETA as a clock time; every channel's latest value with\n"
      "its unit and age; alarms; a pending prompt.",
      "perfusectl status" },
    { "watch", "watch [--interval SECONDS]",
      "The status, refreshed in place every SECONDS (default 1, from 0.2 to 60) until Ctrl-C.\n"
      "When the output is not a terminal, one line per refresh plus each new event.",
      "perfusectl watch --interval 2" },
    { "pause", "pause [--reason TEXT]",
      "Freeze the protocol clock and hold the current setpoints. The reason is recorded.",
      "perfusectl pause --reason \"bubble in line 2\"" },
    { "resume", "resume [--keep-overrides]",
      "Continue a paused run; the rest of the plan shifts by the length of the pause. Manual\n"
      "setpoints made in the pause (overrides) are set back to the protocol's values first, and\n"
      "each one restored is printed; --keep-overrides keeps them until the protocol next sets\n"
      "those channels.",
      "perfusectl resume" },
    { "abort", "abort [--reason TEXT]",
      "Stop the run for good and apply the protocol's safe state. Recorded with who and why.",
      "perfusectl abort --reason \"chip leaking\"" },
    { "confirm", "confirm [PROMPT_ID]",
      "Answer the pending operator prompt; the protocol goes on. PROMPT_ID is the prompt's step\n"
      "path that status shows (e.g. 3.2): with it, only that prompt is answered, so that an old\n"
      "screen cannot answer a newer prompt.",
      "perfusectl confirm 3.2" },
    { "ack", "ack ID|all",
      "Acknowledge an alarm by the id status shows, or every alarm. An alarm stays listed\n"
      "until it is acknowledged and its condition has gone. Recorded with who.",
      "perfusectl ack 3" },
    { "wait", "wait",
      "Block until the current run ends, then print its final status.",
      "perfusectl wait" },
    { "set", "set CHANNEL VALUE [UNIT]",
      "A manual setpoint. Refused while a run is active and not paused, for a channel that\n"
      "cannot be written, for a value outside the device's limits (the limit is named), and for\n"
      "an actuator held in its safe state by a tripped safe-stop limit (the alarm is named).\n"
      "Made while the run is paused, it is an override: status shows it until resume.",
      "perfusectl set pump1 10 uL/min" },
    { "events", "events [--since SECONDS] [--limit N] [--cursor SEQ]",
      "The current (or last) run's event log, or its events after SECONDS of run time.\n"
      "The daemon sends it in pages; all are fetched unless --limit N asks for the first N.\n"
      "--cursor SEQ starts at event SEQ (the \"next\" printed by --json).",
      "perfusectl events --since 3600" },
    { "devices", "devices",
      "Every bus and device of the rig: state, number of faults, last error, and channels.",
      "perfusectl devices" },
    { "check", "check PROTOCOL [--rig FILE] [--json]",
      "Validate a protocol without a daemon; print its timeline, duration and volumes.",
      "perfusectl check protocols/kidney-proximal-tubule.yaml" },
    { "simulate", "simulate PROTOCOL [--rig FILE] [-o OUT.h5] [--speed N|max] [--fault SPEC]... [--seed N]\n"
                  "                           [--prompt-delay DURATION] [--fill PUMP=VOLUME]...",
      "Run a protocol in virtual time on the simulated rig; write the same HDF5 file a run writes.",
      "perfusectl simulate protocols/kidney-proximal-tubule.yaml --speed max" },
    { "recover", "recover FILE.h5",
      "Make a run file left by a crash or power cut readable; safe to run twice.",
      "perfusectl recover runs/20261122-101500-demo-1a2b3c4d.h5" },
};

/* Print a command's help; false if there is no such command. */
static bool print_help(const char *name)
{
    for (size_t i = 0; i < sizeof helps / sizeof helps[0]; i++)
        if (strcmp(helps[i].name, name) == 0) {
            printf("usage: perfusectl [--socket PATH] [--json] %s\n\n%s\n\nexample: %s\n", helps[i].synopsis,
                   helps[i].text, helps[i].example);
            return true;
        }
    return false;
}

/* Connect to the daemon, or exit 3 with a message. A read command goes to
 * the read-only socket when the control socket is not open to this user. */
static struct ctlclient *connect_or_exit(struct ctl *c)
{
    struct ctlclient *cl;
    char err[512];
    int rc = ctlclient_connect(c->socket, &cl, err, sizeof err);
    if (rc == -EACCES && c->read_cmd && !c->ro && !c->socket_given) {
        control_default_ro_path(c->socket, c->robuf, sizeof c->robuf);
        char err2[512];
        if (ctlclient_connect(c->robuf, &cl, err2, sizeof err2) == 0)
            return cl;
    }
    if (rc < 0) {
        fprintf(stderr, "perfusectl: %s\n", err);
        exit(EXIT_UNREACHABLE);
    }
    return cl;
}

/* Send one request; print errors; return the result object (owned) or NULL. */
static json_t *call(struct ctl *c, struct ctlclient *cl, json_t *req, int *exit_code)
{
    json_t *reply = NULL;
    char err[512];
    int rc = ctlclient_call(cl, req, &reply, err, sizeof err);
    json_decref(req);
    if (rc < 0) {
        fprintf(stderr, "perfusectl: %s\n", err);
        *exit_code = EXIT_UNREACHABLE;
        return NULL;
    }
    if (!json_is_true(json_object_get(reply, "ok"))) {
        json_t *e = json_object_get(reply, "error");
        if (c->json) {
            char *text = json_dumps(reply, JSON_INDENT(2));
            printf("%s\n", text ? text : "");
            free(text);
        } else
            fprintf(stderr, "%s\n", json_string_value(json_object_get(e, "message")));
        json_decref(reply);
        *exit_code = EXIT_REFUSED;
        return NULL;
    }
    json_t *res = json_incref(json_object_get(reply, "result"));
    json_decref(reply);
    *exit_code = EXIT_OK;
    return res;
}

/* A text progress bar of width w for fraction f. */
static void bar(char *buf, int w, double f)
{
    if (!(f >= 0))
        f = 0;
    if (f > 1)
        f = 1;
    int n = (int)lround(f * w);
    buf[0] = '[';
    for (int i = 0; i < w; i++)
        buf[1 + i] = i < n ? '#' : '.';
    buf[w + 1] = ']';
    buf[w + 2] = '\0';
}

/* Seconds as "1 h 2 min 3 s". */
static const char *dur(double s, char *buf, size_t len)
{
    unit_format_duration((int64_t)llround(s * 1e9), buf, len);
    return buf;
}

/* Print a status result for people. */
static void print_status(json_t *st)
{
    const char *state = json_string_value(json_object_get(st, "state"));
    printf("rig       %s\nstate     %s\n", json_string_value(json_object_get(st, "rig")), state);
    if (json_object_get(st, "run_id")) {
        char b1[64], b2[64], pb[48];
        printf("protocol  %s  (run %.8s)\n", json_string_value(json_object_get(st, "protocol")),
               json_string_value(json_object_get(st, "run_id")));
        printf("file      %s\n", json_string_value(json_object_get(st, "file")));
        json_t *step = json_object_get(st, "step");
        if (step) {
            double el = json_real_value(json_object_get(step, "elapsed_s"));
            double du = json_real_value(json_object_get(step, "duration_s"));
            bar(pb, 20, du > 0 ? el / du : 0);
            printf("step      %s %s (%s)  %s %s / %s\n", json_string_value(json_object_get(step, "path")),
                   json_string_value(json_object_get(step, "name")),
                   json_string_value(json_object_get(step, "kind")), pb, dur(el, b1, sizeof b1),
                   du > 0 ? dur(du, b2, sizeof b2) : "open-ended");
        }
        double el = json_real_value(json_object_get(st, "elapsed_s"));
        double tot = json_real_value(json_object_get(st, "planned_total_s"));
        bar(pb, 20, tot > 0 ? el / tot : 0);
        printf("run       %s %s / %s", pb, dur(el, b1, sizeof b1), dur(tot, b2, sizeof b2));
        json_t *eta = json_object_get(st, "eta_epoch_s");
        if (json_is_number(eta)) {
            time_t t = (time_t)json_number_value(eta);
            struct tm tm;
            char when[64];
            localtime_r(&t, &tm);
            strftime(when, sizeof when, "%H:%M:%S %a %d %b", &tm);
            printf("   ETA %s", when);
        }
        printf("\n");
        const char *prompt = json_string_value(json_object_get(st, "prompt"));
        const char *pid = json_string_value(json_object_get(st, "prompt_id"));
        if (prompt)
            printf("PROMPT    [%s] %s   (answer with: perfusectl confirm %s)\n", pid ? pid : "", prompt,
                   pid ? pid : "");
    }
    size_t i;
    json_t *al, *alarms = json_object_get(st, "alarms");
    if (json_array_size(alarms) > 0)
        printf("alarms    (acknowledge with: perfusectl ack ID|all)\n");
    json_array_foreach(alarms, i, al) {
        char b[64];
        printf("  %3lld %-12s %-7s %-16s %s (%s ago)\n", (long long)json_integer_value(json_object_get(al, "id")),
               json_string_value(json_object_get(al, "state")), json_string_value(json_object_get(al, "severity")),
               json_string_value(json_object_get(al, "source")), json_string_value(json_object_get(al, "message")),
               dur(json_number_value(json_object_get(al, "age_s")), b, sizeof b));
    }
    json_t *ov, *ovs = json_object_get(st, "overrides");
    if (json_array_size(ovs) > 0)
        printf("overrides (manual setpoints; resume restores the protocol's values)\n");
    json_array_foreach(ovs, i, ov) {
        json_t *pv = json_object_get(ov, "protocol_value");
        char proto[48] = "none";
        if (json_is_number(pv))
            snprintf(proto, sizeof proto, "%g", json_number_value(pv));
        printf("  %-18s %g %s by %s since %s (protocol: %s)\n",
               json_string_value(json_object_get(ov, "channel")), json_number_value(json_object_get(ov, "value")),
               json_string_value(json_object_get(ov, "unit")), json_string_value(json_object_get(ov, "by")),
               json_string_value(json_object_get(ov, "since")), proto);
    }
    printf("channels\n");
    json_t *ch;
    json_array_foreach(json_object_get(st, "channels"), i, ch) {
        json_t *v = json_object_get(ch, "value"), *sp = json_object_get(ch, "setpoint");
        const char *unit = json_string_value(json_object_get(ch, "unit"));
        printf("  %-18s", json_string_value(json_object_get(ch, "name")));
        if (json_is_number(v))
            printf(" %10.3f %-7s", json_number_value(v), unit);
        else
            printf(" %10s %-7s", json_object_get(ch, "samples") ? "-" : "", unit);
        if (json_is_number(sp))
            printf("  setpoint %.3f", json_number_value(sp));
        json_t *cf = json_object_get(ch, "confirmed");
        const char *since = json_string_value(json_object_get(ch, "unconfirmed_since"));
        if (since != NULL)
            printf("  UNCONFIRMED since %s (device at %s)", since,
                   json_is_number(cf) ? "its last confirmed value" : "an unknown value");
        else if (json_is_number(cf) && json_is_number(sp))
            printf(" (confirmed)");
        json_t *age = json_object_get(ch, "age_s");
        if (json_is_number(age))
            printf("  (%.1f s ago)", json_number_value(age));
        const char *e = json_string_value(json_object_get(ch, "error"));
        if (e)
            printf("  ERROR: %s", e);
        printf("\n");
    }
}

/* After resume: which overrides went back to the protocol's values, which stayed. */
static void print_overrides_settled(json_t *res)
{
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(res, "restored"), i, o)
        printf("restored  %s to the protocol's %g %s (override was %g %s)\n",
               json_string_value(json_object_get(o, "channel")), json_number_value(json_object_get(o, "value")),
               json_string_value(json_object_get(o, "unit")), json_number_value(json_object_get(o, "override")),
               json_string_value(json_object_get(o, "unit")));
    json_array_foreach(json_object_get(res, "kept"), i, o)
        printf("kept      %s at %g %s (override, until the protocol next sets it)\n",
               json_string_value(json_object_get(o, "channel")), json_number_value(json_object_get(o, "value")),
               json_string_value(json_object_get(o, "unit")));
}

/* Print a result: JSON, or for people. */
static void print_result(struct ctl *c, json_t *res)
{
    if (c->json) {
        char *s = json_dumps(res, JSON_INDENT(2));
        printf("%s\n", s ? s : "{}");
        free(s);
    } else {
        print_status(res);
    }
}

/* Parse sub-command options --reason/--operator/--wait. */
struct subopts {
    const char *reason, *operator_name, *rig;
    const char *fills[32];      /* run --fill PUMP=VOLUME, repeatable */
    size_t n_fills;
    bool wait, json, force, keep_overrides;
};

/* True if arg is a number with a leading minus ("-5", "-0.25"): a value, not an option. */
static bool is_negative_number(const char *arg)
{
    char *end;
    if (arg[0] != '-' || !(isdigit((unsigned char)arg[1]) || arg[1] == '.'))
        return false;
    strtod(arg, &end);
    return *end == '\0';
}

/* Parse the long options of a sub-command wherever they stand; the other
 * arguments are moved, in order, behind them. Returns the index of the first
 * of those, or -1 after a message. getopt is not used because it would take a
 * negative value ("set valve1.offset -5") for an option. */
static int parse_subopts(int argc, char **argv, struct subopts *o)
{
    static const struct {
        const char *name;
        bool has_arg;
        char key;
    } opts[] = { { "reason", true, 'r' }, { "operator", true, 'o' }, { "wait", false, 'w' },
                 { "rig", true, 'g' },    { "json", false, 'j' }, { "force", false, 'f' },
                 { "keep-overrides", false, 'k' }, { "fill", true, 'F' } };
    memset(o, 0, sizeof *o);
    char **pos = calloc((size_t)argc + 1, sizeof *pos);
    if (pos == NULL)
        return -1;
    int n_pos = 0, n_opt = 1;
    bool only_args = false;
    for (int k = 1; k < argc; k++) {
        char *a = argv[k];
        if (only_args || a[0] != '-' || a[1] == '\0' || is_negative_number(a)) {
            pos[n_pos++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_args = true;
            continue;
        }
        /* Only long options exist: "-x" is as unknown as "--nonsense". */
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        size_t i = 0;
        while (i < sizeof opts / sizeof opts[0] &&
               !(a[1] == '-' && strlen(opts[i].name) == len && strncmp(opts[i].name, name, len) == 0))
            i++;
        if (i == sizeof opts / sizeof opts[0]) {
            fprintf(stderr, "%s: unknown option '%s'\n", argv[0], a);
            free(pos);
            return -1;
        }
        const char *val = NULL;
        if (opts[i].has_arg && eq != NULL) {
            val = eq + 1;
        } else if (opts[i].has_arg && k + 1 < argc) {
            argv[n_opt++] = a;      /* the option, then its value: both stay in front */
            a = argv[++k];
            val = a;
        } else if (opts[i].has_arg) {
            fprintf(stderr, "%s: option '--%s' needs a value\n", argv[0], opts[i].name);
            free(pos);
            return -1;
        } else if (eq) {
            fprintf(stderr, "%s: option '--%s' takes no value\n", argv[0], opts[i].name);
            free(pos);
            return -1;
        }
        argv[n_opt++] = a;
        switch (opts[i].key) {
        case 'r': o->reason = val; break;
        case 'o': o->operator_name = val; break;
        case 'w': o->wait = true; break;
        case 'g': o->rig = val; break;
        case 'j': o->json = true; break;
        case 'f': o->force = true; break;
        case 'k': o->keep_overrides = true; break;
        case 'F':
            if (o->n_fills < sizeof o->fills / sizeof o->fills[0])
                o->fills[o->n_fills++] = val;
            break;
        }
    }
    memcpy(argv + n_opt, pos, (size_t)n_pos * sizeof *pos);
    free(pos);
    return n_opt;
}

/* Read a protocol file for sending; exit 1 with a message on failure. The
 * control protocol carries UTF-8 only: a file saved in another encoding is
 * refused here, at the first byte that is not UTF-8. */
static char *read_protocol(const char *path, char *abspath)
{
    char *text;
    size_t len;
    int rc = read_file_text(path, 4 << 20, &text, &len);
    if (rc < 0) {
        fprintf(stderr, "%s: error: cannot read protocol: %s\n", path,
                rc == -EFBIG ? "larger than 4 MiB" : strerror(-rc));
        exit(EXIT_REFUSED);
    }
    size_t ok = utf8_valid_prefix(text, len);
    if (ok < len || strlen(text) != len) {
        int line, col;
        utf8_line_col(text, ok < len ? ok : strlen(text), &line, &col);
        fprintf(stderr, "%s:%d:%d: error: %s (save the file as UTF-8)\n", path, line, col,
                ok < len ? "this byte is not UTF-8 text" : "a NUL byte in the text");
        free(text);
        exit(EXIT_REFUSED);
    }
    if (realpath(path, abspath) == NULL)
        snprintf(abspath, PATH_MAX, "%s", path);
    if (!utf8_valid(abspath, strlen(abspath))) {
        fprintf(stderr, "%s: error: the file's path is not UTF-8 text: give the file (or its "
                "directory) a UTF-8 name\n", path);
        free(text);
        exit(EXIT_REFUSED);
    }
    return text;
}

/* run PROTOCOL. */
static int cmd_run(struct ctl *c, int argc, char **argv)
{
    struct subopts o;
    int i = parse_subopts(argc, argv, &o);
    c->json |= o.json;
    if (i < 0 || i != argc - 1) {
        fprintf(stderr, "usage: perfusectl run PROTOCOL [--operator NAME] [--fill PUMP=VOLUME]... [--wait] [--force]\n"
                        "example: perfusectl run protocols/demo.yaml --operator alice --fill pump1=8mL\n");
        return EXIT_USAGE;
    }
    char err[256];
    if (o.operator_name != NULL && !run_operator_ok(o.operator_name, err, sizeof err)) {
        fprintf(stderr, "perfusectl: --operator: %s\n", err);
        return EXIT_REFUSED;
    }
    char abspath[PATH_MAX];
    char *text = read_protocol(argv[i], abspath);
    struct ctlclient *cl = connect_or_exit(c);
    json_t *req = json_pack("{s:s,s:s,s:s}", "cmd", "run", "protocol_text", text, "protocol_path", abspath);
    free(text);
    if (o.operator_name)
        json_object_set_new(req, "operator", json_string(o.operator_name));
    if (o.n_fills > 0) {
        json_t *fl = json_array();
        for (size_t k = 0; k < o.n_fills; k++)
            json_array_append_new(fl, json_string(o.fills[k]));
        json_object_set_new(req, "fill", fl);
    }
    if (o.force)
        json_object_set_new(req, "force", json_true());
    int code;
    json_t *res = call(c, cl, req, &code);
    if (res != NULL) {
        if (c->json && !o.wait) {
            print_result(c, res);
        } else if (!c->json) {
            printf("run %s started\nfile %s\n", json_string_value(json_object_get(res, "run_id")),
                   json_string_value(json_object_get(res, "file")));
            fflush(stdout);
        }
        json_decref(res);
        if (o.wait) {
            res = call(c, cl, json_pack("{s:s}", "cmd", "wait"), &code);
            if (res != NULL) {
                if (c->json)
                    print_result(c, res);
                else
                    printf("run ended: %s\n", json_string_value(json_object_get(res, "state")));
                const char *st = json_string_value(json_object_get(res, "state"));
                if (code == EXIT_OK && st && strcmp(st, "completed") != 0)
                    code = EXIT_REFUSED;
                json_decref(res);
            }
        }
    }
    ctlclient_close(cl);
    return code;
}

/* A simple request with an optional --reason. */
static int cmd_simple(struct ctl *c, const char *name, int argc, char **argv)
{
    struct subopts o;
    int i = parse_subopts(argc, argv, &o);
    c->json |= o.json;
    bool resume = strcmp(name, "resume") == 0;
    if (i < 0 || i != argc || (o.keep_overrides && !resume)) {
        fprintf(stderr, "usage: perfusectl %s%s\n", name,
                strcmp(name, "abort") == 0 || strcmp(name, "pause") == 0 ? " [--reason TEXT]"
                : resume ? " [--keep-overrides]" : "");
        return EXIT_USAGE;
    }
    struct ctlclient *cl = connect_or_exit(c);
    json_t *req = json_pack("{s:s}", "cmd", name);
    if (o.reason)
        json_object_set_new(req, "reason", json_string(o.reason));
    if (o.keep_overrides)
        json_object_set_new(req, "keep_overrides", json_true());
    int code;
    json_t *res = call(c, cl, req, &code);
    if (res) {
        if (resume && !c->json)
            print_overrides_settled(res);
        print_result(c, res);
        json_decref(res);
    }
    ctlclient_close(cl);
    return code;
}

/* Print one event as a line. */
static void print_event(json_t *e)
{
    char t[64];
    unit_format_duration((int64_t)(json_number_value(json_object_get(e, "time")) * 1e9), t, sizeof t);
    printf("%-14s %-8s %-14s %-18s %s\n", t, json_string_value(json_object_get(e, "severity")),
           json_string_value(json_object_get(e, "source")), json_string_value(json_object_get(e, "code")),
           json_string_value(json_object_get(e, "message")));
}

/* events [--since SECONDS] [--limit N] [--cursor SEQ]: the run's event log, page by page. */
static int cmd_events(struct ctl *c, int argc, char **argv)
{
    static const struct option opts[] = {
        { "since", required_argument, NULL, 's' }, { "json", no_argument, NULL, 'j' },
        { "limit", required_argument, NULL, 'l' }, { "cursor", required_argument, NULL, 'c' },
        { NULL, 0, NULL, 0 },
    };
    double since = -1;
    long limit = -1, cursor = 0;
    optind = 0;
    int ch;
    bool bad = false;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        char *end = NULL;
        if (ch == 's')
            since = strtod(optarg, &end);
        else if (ch == 'l')
            limit = strtol(optarg, &end, 10);
        else if (ch == 'c')
            cursor = strtol(optarg, &end, 10);
        else if (ch == 'j')
            c->json = true;
        else
            bad = true;
        if (end != NULL && (end == optarg || *end != '\0'))
            bad = true;
    }
    if (limit == 0 || limit < -1 || cursor < 0 || since < -1)
        bad = true;
    if (bad || optind != argc) {
        if (bad)
            fprintf(stderr, "perfusectl events: --since takes seconds, --limit a whole number from 1, "
                            "--cursor a whole number from 0\n");
        fprintf(stderr, "usage: perfusectl events [--since SECONDS] [--limit N] [--cursor SEQ]\n"
                        "example: perfusectl events --since 3600\n");
        return EXIT_USAGE;
    }
    struct ctlclient *cl = connect_or_exit(c);
    json_t *all = json_array(), *last = NULL;
    int code = EXIT_OK;
    for (;;) {
        json_t *req = json_pack("{s:s,s:I}", "cmd", "events", "cursor", (json_int_t)cursor);
        if (since >= 0)
            json_object_set_new(req, "since", json_real(since));
        long want = limit > 0 ? limit - (long)json_array_size(all) : 500;
        if (want <= 0)
            break;
        json_object_set_new(req, "limit", json_integer(want < 500 ? want : 500));
        json_t *res = call(c, cl, req, &code);
        if (res == NULL)
            break;
        json_array_extend(all, json_object_get(res, "events"));
        cursor = (long)json_integer_value(json_object_get(res, "next"));
        json_decref(last);
        last = res;
        if (!json_is_true(json_object_get(res, "more")))
            break;
    }
    if (last != NULL && c->json) {
        json_object_set(last, "events", all);
        print_result(c, last);
    } else if (last != NULL) {
        size_t i;
        json_t *e;
        json_array_foreach(all, i, e)
            print_event(e);
    }
    json_decref(last);
    json_decref(all);
    ctlclient_close(cl);
    return code;
}

/* set CHANNEL VALUE UNIT: a manual setpoint. */
static int cmd_set(struct ctl *c, int argc, char **argv)
{
    struct subopts o;
    int i = parse_subopts(argc, argv, &o);
    c->json |= o.json;
    if (i < 0 || argc - i < 2 || argc - i > 3) {
        fprintf(stderr, "usage: perfusectl set CHANNEL VALUE [UNIT]\n"
                        "example: perfusectl set pump1 10 uL/min      (refused while a run is active and not paused)\n");
        return EXIT_USAGE;
    }
    char value[128];
    utf8_format(value, sizeof value, "%s%s%s", argv[i + 1], argc - i == 3 ? " " : "", argc - i == 3 ? argv[i + 2] : "");
    struct ctlclient *cl = connect_or_exit(c);
    int code;
    json_t *res = call(c, cl, json_pack("{s:s,s:s,s:s}", "cmd", "set", "channel", argv[i], "value", value), &code);
    if (res) {
        if (c->json)
            print_result(c, res);
        else
            printf("%s set to %g %s\n", json_string_value(json_object_get(res, "channel")),
                   json_number_value(json_object_get(res, "value")), json_string_value(json_object_get(res, "unit")));
        json_decref(res);
    }
    ctlclient_close(cl);
    return code;
}

/* confirm [PROMPT_ID]: answer the pending prompt. */
static int cmd_confirm(struct ctl *c, int argc, char **argv)
{
    struct subopts o;
    int i = parse_subopts(argc, argv, &o);
    c->json |= o.json;
    if (i < 0 || argc - i > 1) {
        fprintf(stderr, "usage: perfusectl confirm [PROMPT_ID]\nexample: perfusectl confirm 3.2\n");
        return EXIT_USAGE;
    }
    struct ctlclient *cl = connect_or_exit(c);
    json_t *req = json_pack("{s:s}", "cmd", "confirm");
    if (argc - i == 1)
        json_object_set_new(req, "prompt", json_string(argv[i]));
    int code;
    json_t *res = call(c, cl, req, &code);
    if (res) {
        print_result(c, res);
        json_decref(res);
    }
    ctlclient_close(cl);
    return code;
}

/* ack ID|all: acknowledge alarms. */
static int cmd_ack(struct ctl *c, int argc, char **argv)
{
    struct subopts o;
    int i = parse_subopts(argc, argv, &o);
    c->json |= o.json;
    char *end = NULL;
    long id = i >= 0 && i == argc - 1 ? strtol(argv[i], &end, 10) : 0;
    bool all = i >= 0 && i == argc - 1 && strcmp(argv[i], "all") == 0;
    if (!all && (end == NULL || *end != '\0' || id <= 0)) {
        fprintf(stderr, "usage: perfusectl ack ID|all\nexample: perfusectl ack 3\n");
        return EXIT_USAGE;
    }
    struct ctlclient *cl = connect_or_exit(c);
    json_t *req = json_pack("{s:s}", "cmd", "ack");
    json_object_set_new(req, "alarm", all ? json_string("all") : json_integer(id));
    int code;
    json_t *res = call(c, cl, req, &code);
    if (res && c->json)
        print_result(c, res);
    else if (res)
        printf("%lld alarm(s) acknowledged; %zu listed\n",
               (long long)json_integer_value(json_object_get(res, "acknowledged")),
               json_array_size(json_object_get(res, "alarms")));
    json_decref(res);
    ctlclient_close(cl);
    return code;
}

/* Print one health record's state words. */
static void print_health(json_t *o)
{
    printf("%-8s faults %-3lld", json_string_value(json_object_get(o, "state")),
           (long long)json_integer_value(json_object_get(o, "faults")));
    const char *e = json_string_value(json_object_get(o, "last_error"));
    if (e)
        printf("  last error: %s", e);
    printf("\n");
}

/* devices: buses and devices with their health. */
static int cmd_devices(struct ctl *c, int argc, char **argv)
{
    struct subopts o;
    int i = parse_subopts(argc, argv, &o);
    c->json |= o.json;
    if (i < 0 || i != argc) {
        fprintf(stderr, "usage: perfusectl devices\nexample: perfusectl devices\n");
        return EXIT_USAGE;
    }
    struct ctlclient *cl = connect_or_exit(c);
    int code;
    json_t *res = call(c, cl, json_pack("{s:s}", "cmd", "devices"), &code);
    if (res && c->json) {
        print_result(c, res);
    } else if (res) {
        size_t k;
        json_t *o;
        printf("rig %s\nbuses\n", json_string_value(json_object_get(res, "rig")));
        json_array_foreach(json_object_get(res, "buses"), k, o) {
            printf("  %-10s %-11s %-34s ", json_string_value(json_object_get(o, "name")),
                   json_string_value(json_object_get(o, "type")), json_string_value(json_object_get(o, "address")));
            print_health(o);
        }
        printf("devices\n");
        json_array_foreach(json_object_get(res, "devices"), k, o) {
            printf("  %-10s %-8s on %-10s ", json_string_value(json_object_get(o, "name")),
                   json_string_value(json_object_get(o, "driver")), json_string_value(json_object_get(o, "bus")));
            print_health(o);
            size_t j;
            json_t *ch;
            json_array_foreach(json_object_get(o, "channels"), j, ch) {
                const char *e = json_string_value(json_object_get(ch, "error"));
                printf("      %-22s %-7s %s%s %5.1f Hz", json_string_value(json_object_get(ch, "name")),
                       json_string_value(json_object_get(ch, "unit")),
                       json_is_true(json_object_get(ch, "readable")) ? "r" : "-",
                       json_is_true(json_object_get(ch, "writable")) ? "w" : "-",
                       json_number_value(json_object_get(ch, "sample_hz")));
                json_t *want = json_object_get(ch, "desired"), *cf = json_object_get(ch, "confirmed");
                const char *since = json_string_value(json_object_get(ch, "unconfirmed_since"));
                if (json_is_number(want))
                    printf("  desired %g (%s)", json_number_value(want),
                           json_string_value(json_object_get(ch, "desired_origin")));
                if (since != NULL)
                    printf(", UNCONFIRMED since %s", since);
                else if (json_is_number(want) && json_is_number(cf))
                    printf(", confirmed %g", json_number_value(cf));
                printf("%s%s\n", e ? "  error: " : "", e ? e : "");
            }
        }
    }
    json_decref(res);
    ctlclient_close(cl);
    return code;
}

/* One line of a watch for a non-terminal: time, state, step, progress, values, alarms. */
static void print_watch_line(json_t *st)
{
    char now[40];
    time_iso8601(time_wall_ns(), now, sizeof now);
    printf("%s %s", now, json_string_value(json_object_get(st, "state")));
    json_t *step = json_object_get(st, "step");
    if (step) {
        double el = json_number_value(json_object_get(step, "elapsed_s"));
        double du = json_number_value(json_object_get(step, "duration_s"));
        printf(" step %s '%s'", json_string_value(json_object_get(step, "path")),
               json_string_value(json_object_get(step, "name")));
        if (du > 0)
            printf(" %.0f%%", 100.0 * el / du);
    }
    double tot = json_number_value(json_object_get(st, "planned_total_s"));
    if (tot > 0)
        printf(" run %.0f%%", 100.0 * json_number_value(json_object_get(st, "elapsed_s")) / tot);
    size_t i;
    json_t *ch;
    json_array_foreach(json_object_get(st, "channels"), i, ch) {
        json_t *v = json_object_get(ch, "value");
        if (json_is_number(v))
            printf(" %s=%.4g", json_string_value(json_object_get(ch, "name")), json_number_value(v));
    }
    printf(" alarms=%zu", json_array_size(json_object_get(st, "alarms")));
    const char *prompt = json_string_value(json_object_get(st, "prompt"));
    if (prompt)
        printf(" PROMPT: %s", prompt);
    printf("\n");
}

/* watch [--interval S]: the status, pushed by the daemon, until Ctrl-C or the daemon goes. */
static int cmd_watch(struct ctl *c, int argc, char **argv)
{
    static const struct option opts[] = {
        { "interval", required_argument, NULL, 'i' }, { "json", no_argument, NULL, 'j' }, { NULL, 0, NULL, 0 },
    };
    double interval = 1.0;
    optind = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ch == 'i')
            interval = strtod(optarg, NULL);
        else if (ch == 'j')
            c->json = true;
        else
            return EXIT_USAGE;
    }
    if (optind != argc || !(interval >= 0.2 && interval <= 60)) {
        fprintf(stderr, "usage: perfusectl watch [--interval SECONDS]   (0.2 to 60)\n"
                        "example: perfusectl watch --interval 2\n");
        return EXIT_USAGE;
    }
    struct ctlclient *cl = connect_or_exit(c);
    int code;
    json_t *res = call(c, cl, json_pack("{s:s,s:f}", "cmd", "watch", "interval", interval), &code);
    bool tty = isatty(STDOUT_FILENO) && !c->json;
    json_t *st = res;
    json_t *recent = json_array();      /* the last events, shown under the status on a terminal */
    while (st != NULL) {
        if (c->json) {
            char *t = json_dumps(st, JSON_COMPACT);
            printf("%s\n", t ? t : "{}");
            free(t);
        } else if (tty) {
            printf("\033[H\033[2J");
            print_status(st);
            if (json_array_size(recent) > 0)
                printf("recent events\n");
            size_t i;
            json_t *e;
            json_array_foreach(recent, i, e)
                printf("  %10.1f s %-8s %-14s %-18s %s\n", json_number_value(json_object_get(e, "time")),
                       json_string_value(json_object_get(e, "severity")), json_string_value(json_object_get(e, "source")),
                       json_string_value(json_object_get(e, "code")), json_string_value(json_object_get(e, "message")));
        } else {
            print_watch_line(st);
        }
        fflush(stdout);
        json_decref(st);
        st = NULL;
        json_t *msg = NULL;
        char err[256];
        if (ctlclient_next(cl, &msg, err, sizeof err) < 0) {
            fprintf(stderr, "perfusectl: %s\n", err);
            code = EXIT_UNREACHABLE;
            break;
        }
        json_t *e = json_object_get(msg, "error");
        if (e != NULL) {
            fprintf(stderr, "perfusectl: %s\n", json_string_value(json_object_get(e, "message")));
            json_decref(msg);
            code = EXIT_REFUSED;
            break;
        }
        size_t i;
        json_t *ev;
        json_array_foreach(json_object_get(msg, "events"), i, ev) {
            if (!tty && !c->json)
                printf("  event %.3f s %s %s %s: %s\n", json_number_value(json_object_get(ev, "time")),
                       json_string_value(json_object_get(ev, "severity")), json_string_value(json_object_get(ev, "source")),
                       json_string_value(json_object_get(ev, "code")), json_string_value(json_object_get(ev, "message")));
            json_array_append(recent, ev);
            if (json_array_size(recent) > 8)
                json_array_remove(recent, 0);
        }
        st = json_incref(json_object_get(msg, "watch"));
        json_decref(msg);
    }
    json_decref(recent);
    ctlclient_close(cl);
    return code;
}

/* The default rig for offline tools: the simulated rig file. */
static void default_rig(char *buf, size_t len)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        snprintf(buf, len, "%s/../protocols/rigs/sim.yaml", dirname(exe));
        if (access(buf, R_OK) == 0)
            return;
    }
    snprintf(buf, len, "%s/share/perfuse/protocols/rigs/sim.yaml", PERFUSE_PREFIX);
}

/* Print the timeline of a step list, repeats summarised once with their count. */
static void print_steps(const struct plan_step *parent, const char *prefix, int64_t *t, int depth)
{
    for (size_t i = 0; i < parent->n_steps; i++) {
        const struct plan_step *s = &parent->steps[i];
        char path[64], start[64], d[64];
        snprintf(path, sizeof path, "%s%s%zu", prefix, prefix[0] ? "." : "", i + 1);
        unit_format_duration(*t, start, sizeof start);
        unit_format_duration(s->duration_ns, d, sizeof d);
        if (s->kind == STEP_REPEAT) {
            printf("  %-9s %-16s %*s%-34s x %u, %s in all\n", path, start, depth * 2, "", s->name,
                   s->count, d);
            int64_t inner = *t;
            print_steps(s, path, &inner, depth + 1);
        } else {
            printf("  %-9s %-16s %*s%-34s %-10s %s\n", path, start, depth * 2, "", s->name,
                   plan_step_kind_name(s->kind),
                   s->kind == STEP_WAIT || s->kind == STEP_PROMPT ? "open-ended" : d);
        }
        *t += s->duration_ns;
    }
}

/* The timeline as JSON, repeats nested. */
static json_t *json_steps(const struct plan_step *parent, const char *prefix, int64_t *t)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < parent->n_steps; i++) {
        const struct plan_step *s = &parent->steps[i];
        char path[64];
        snprintf(path, sizeof path, "%s%s%zu", prefix, prefix[0] ? "." : "", i + 1);
        json_t *o = json_pack("{s:s,s:s,s:s,s:f,s:f,s:i}", "path", path, "name", s->name, "kind",
                              plan_step_kind_name(s->kind), "planned_start_s", (double)*t / 1e9,
                              "duration_s", (double)s->duration_ns / 1e9, "line", s->line);
        if (s->kind == STEP_REPEAT) {
            int64_t inner = *t;
            json_object_set_new(o, "count", json_integer(s->count));
            json_object_set_new(o, "steps", json_steps(s, path, &inner));
        }
        if (s->kind == STEP_WAIT || s->kind == STEP_PROMPT)
            json_object_set_new(o, "open_ended", json_true());
        json_array_append_new(arr, o);
        *t += s->duration_ns;
    }
    return arr;
}

/* Warn about every wait and prompt: they make the total duration open-ended. */
static void warn_open_ended(const struct plan_step *parent, const char *file, struct diag *d)
{
    for (size_t i = 0; i < parent->n_steps; i++) {
        const struct plan_step *s = &parent->steps[i];
        char to[64] = "no timeout";
        if (s->timeout_ns > 0) {
            char t[48];
            unit_format_duration(s->timeout_ns, t, sizeof t);
            snprintf(to, sizeof to, "timeout %s", t);
        }
        if (s->kind == STEP_WAIT || s->kind == STEP_PROMPT)
            diag_warn(d, file, s->line, s->col, "step '%s' waits for %s (%s): everything after it "
                      "shifts by the time it takes, so the total duration is open-ended", s->name,
                      s->kind == STEP_WAIT ? "a condition" : "the operator", to);
        if (s->kind == STEP_REPEAT)
            warn_open_ended(s, file, d);
    }
}

/* Warn about syringes that run out before the protocol ends. */
static void warn_volumes(const struct timeline *tl, const struct rig *rig, const char *file,
                         struct diag *d)
{
    for (size_t i = 0; i < tl->n_pumps; i++) {
        const struct timeline_pump *p = &tl->pumps[i];
        if (p->empty_at_ns < 0)
            continue;
        char when[64];
        unit_format_duration(p->empty_at_ns, when, sizeof when);
        diag_warn(d, file, p->empty_step->line, p->empty_step->col,
                  "%s runs out: its syringe (%.4g mL) is empty %s after the start, during step '%s' "
                  "(the protocol needs %.4g mL in it at once)", rig->channels[p->channel].name,
                  p->capacity_ul / 1000.0, when, p->empty_step->name, p->need_ul / 1000.0);
    }
}

/* Warn about waveforms that swing a pump through zero into reverse: the pump
 * withdraws for part of each period, which a protocol rarely means. */
static void warn_reversals(const struct plan_step *parent, const struct rig *rig, const char *file,
                           struct diag *d)
{
    for (size_t i = 0; i < parent->n_steps; i++) {
        const struct plan_step *s = &parent->steps[i];
        if (s->kind == STEP_REPEAT)
            warn_reversals(s, rig, file, d);
        if (s->kind != STEP_WAVEFORM)
            continue;
        for (size_t k = 0; k < s->n_targets; k++) {
            const struct plan_target *t = &s->targets[k];
            const struct rig_channel *c = &rig->channels[t->channel];
            double lo = t->mean - t->amplitude, hi = t->mean + t->amplitude;
            if (c->q != Q_FLOW || !(lo < 0 && hi > 0))
                continue;
            diag_warn(d, file, t->line, t->col, "the waveform of step '%s' swings %s between %g and "
                      "%g %s: the pump runs in reverse (withdraws) for part of each period; keep "
                      "the amplitude at most the mean if that is not meant", s->name, c->name, hi,
                      lo, c->unit);
        }
    }
}

/* Print the volumes each pump delivers. */
static void print_volumes(const struct timeline *tl, const struct rig *rig)
{
    printf("volumes (fixed steps only):\n");
    for (size_t i = 0; i < tl->n_pumps; i++) {
        const struct timeline_pump *p = &tl->pumps[i];
        printf("  %-16s delivers %9.3f mL", rig->channels[p->channel].name, p->delivered_ul / 1000.0);
        if (p->withdrawn_ul > 0)
            printf(", withdraws %.3f mL (net %.3f mL out, at most %.3f mL at once)",
                   p->withdrawn_ul / 1000.0, p->net_ul / 1000.0, p->need_ul / 1000.0);
        if (p->capacity_ul > 0)
            printf("  (syringe %.4g mL%s)", p->capacity_ul / 1000.0, p->empty_at_ns >= 0 ? ": RUNS OUT" : "");
        if (p->open_ended_flow)
            printf("  + more while waits and prompts last");
        printf("\n");
    }
}

/* The check result as JSON. */
static json_t *check_json(const struct plan *plan, const struct rig *rig, const struct timeline *tl)
{
    int64_t t = 0;
    json_t *vols = json_array();
    for (size_t i = 0; i < tl->n_pumps; i++) {
        const struct timeline_pump *p = &tl->pumps[i];
        json_t *o = json_pack("{s:s,s:f,s:f,s:f,s:f,s:b}", "channel", rig->channels[p->channel].name,
                              "delivered_ul", p->delivered_ul, "withdrawn_ul", p->withdrawn_ul,
                              "net_ul", p->net_ul, "need_ul", p->need_ul,
                              "open_ended_flow", p->open_ended_flow);
        if (p->capacity_ul > 0)
            json_object_set_new(o, "syringe_ul", json_real(p->capacity_ul));
        if (p->empty_at_ns >= 0)
            json_object_set_new(o, "empty_at_s", json_real((double)p->empty_at_ns / 1e9));
        json_array_append_new(vols, o);
    }
    return json_pack("{s:s,s:s,s:f,s:b,s:o,s:o}", "protocol", plan->name, "rig", rig->name,
                     "total_s", (double)plan->total_ns / 1e9, "open_ended", plan->open_ended,
                     "steps", json_steps(&plan->root, "", &t), "volumes", vols);
}

/* check PROTOCOL [--rig FILE]. */
static int cmd_check(struct ctl *c, int argc, char **argv)
{
    struct subopts o;
    int i = parse_subopts(argc, argv, &o);
    c->json |= o.json;
    if (i < 0 || i != argc - 1) {
        fprintf(stderr, "usage: perfusectl check PROTOCOL [--rig FILE] [--json]\n"
                        "example: perfusectl check protocols/demo.yaml\n"
                        "Without --rig the protocol is checked against the simulated rig.\n");
        return EXIT_USAGE;
    }
    const char *file = argv[i];
    char rigpath[PATH_MAX];
    if (o.rig)
        snprintf(rigpath, sizeof rigpath, "%s", o.rig);
    else
        default_rig(rigpath, sizeof rigpath);
    struct diag dg;
    diag_init(&dg);
    struct rig *rig = NULL;
    struct plan *plan = NULL;
    struct timeline tl = { 0 };
    int rc = rig_load(rigpath, &rig, &dg);
    if (rc == 0) {
        char *text;
        size_t len;
        rc = read_file_text(file, 4 << 20, &text, &len);
        if (rc < 0) {
            diag_error(&dg, file, 0, 0, "cannot read protocol: %s",
                       rc == -EFBIG ? "larger than 4 MiB" : strerror(-rc));
        } else {
            rc = plan_load(file, text, len, rig, &plan, &dg);
            free(text);
        }
    }
    if (rc == 0 && (rc = timeline_compute(plan, rig, &tl)) == 0) {
        warn_volumes(&tl, rig, file, &dg);
        warn_reversals(&plan->root, rig, file, &dg);
        warn_open_ended(&plan->root, file, &dg);
    }
    if (c->json) {
        json_t *out = rc == 0 ? check_json(plan, rig, &tl) : json_object();
        json_object_set_new(out, "ok", json_boolean(rc == 0));
        diag_to_json(&dg, out);
        char *s = json_dumps(out, JSON_INDENT(2));
        printf("%s\n", s ? s : "{}");
        free(s);
        json_decref(out);
    } else {
        diag_print(&dg, stderr);
    }
    if (rc == 0 && !c->json) {
        char tot[64];
        unit_format_duration(plan->total_ns, tot, sizeof tot);
        printf("%s: '%s' on rig '%s'\n", file, plan->name, rig->name);
        printf("  %-9s %-16s %-34s %-10s %s\n", "step", "planned start", "name", "kind", "duration");
        int64_t t = 0;
        print_steps(&plan->root, "", &t, 0);
        printf("total duration: %s (%.3f s)%s\n", tot, (double)plan->total_ns / 1e9,
               plan->open_ended ? ", plus however long the waits and prompts take" : "");
        print_volumes(&tl, rig);
    }
    timeline_free(&tl);
    plan_free(plan);
    rig_free(rig);
    diag_free(&dg);
    return rc == 0 ? EXIT_OK : EXIT_REFUSED;
}

/* simulate PROTOCOL [--rig FILE] [-o OUT.h5] [--speed N|max] [--fault SPEC]... */
static int cmd_simulate(struct ctl *c, int argc, char **argv)
{
    static const struct option opts[] = {
        { "rig", required_argument, NULL, 'g' }, { "out", required_argument, NULL, 'o' },
        { "speed", required_argument, NULL, 's' }, { "fault", required_argument, NULL, 'f' },
        { "seed", required_argument, NULL, 'e' }, { "prompt-delay", required_argument, NULL, 'p' },
        { "json", no_argument, NULL, 'j' }, { "fill", required_argument, NULL, 'F' },
        { NULL, 0, NULL, 0 },
    };
    const char *faults[32], *fills[32];
    char rigpath[PATH_MAX];
    struct simulate_options o = { .seed = 1, .prompt_delay_ns = 60 * NS_PER_SEC, .faults = faults,
                                  .fills = fills };
    default_rig(rigpath, sizeof rigpath);
    o.rig_path = rigpath;
    optind = 0;
    int ch;
    char err[200];
    int col;
    while ((ch = getopt_long(argc, argv, "o:", opts, NULL)) != -1) {
        switch (ch) {
        case 'g': o.rig_path = optarg; break;
        case 'o': o.out_path = optarg; break;
        case 'e': o.seed = strtoull(optarg, NULL, 10); break;
        case 'j': c->json = true; break;
        case 'f':
            if (o.n_faults < 32)
                faults[o.n_faults++] = optarg;
            break;
        case 'F':
            if (o.n_fills < 32)
                fills[o.n_fills++] = optarg;
            break;
        case 's':
            if (strcmp(optarg, "max") == 0) {
                o.speed = 0;
            } else if ((o.speed = strtod(optarg, NULL)) <= 0) {
                fprintf(stderr, "perfusectl: --speed takes a positive number or 'max'\n");
                return EXIT_USAGE;
            }
            break;
        case 'p':
            if (unit_parse_duration(optarg, &o.prompt_delay_ns, err, sizeof err, &col) < 0) {
                fprintf(stderr, "perfusectl: --prompt-delay: %s\n", err);
                return EXIT_USAGE;
            }
            break;
        default: ch = -2; break;
        }
        if (ch == -2)
            break;
    }
    if (ch == -2 || optind != argc - 1) {
        fprintf(stderr, "usage: perfusectl simulate PROTOCOL [--rig FILE] [-o OUT.h5] [--speed N|max]\n"
                        "                           [--fault SPEC]... [--fill PUMP=VOLUME]... [--seed N]\n"
                        "                           [--prompt-delay DURATION]\n"
                        "example: perfusectl simulate protocols/kidney-proximal-tubule.yaml --speed max\n");
        return EXIT_USAGE;
    }
    o.protocol_path = argv[optind];
    struct diag dg;
    diag_init(&dg);
    struct simulate_result res;
    int rc = simulate_run(&o, &dg, &res);
    diag_print(&dg, stderr);
    diag_free(&dg);
    if (rc < 0) {
        if (rc != -EINVAL)
            fprintf(stderr, "perfusectl: simulation failed: %s\n", strerror(-rc));
        return EXIT_REFUSED;
    }
    char vt[64];
    unit_format_duration(res.virtual_ns, vt, sizeof vt);
    if (c->json)
        printf("{\"file\": \"%s\", \"state\": \"%s\", \"virtual_s\": %.3f, \"wall_s\": %.3f, "
               "\"samples\": %llu}\n", res.path, res.state, (double)res.virtual_ns / 1e9, res.wall_s,
               (unsigned long long)res.samples);
    else
        printf("simulated %s of protocol time in %.2f s: %s, %llu samples\nfile %s\n", vt, res.wall_s,
               res.state, (unsigned long long)res.samples, res.path);
    return strcmp(res.state, "completed") == 0 ? EXIT_OK : EXIT_REFUSED;
}

/* recover FILE.h5: make a run file left by a crash readable again. */
static int cmd_recover(struct ctl *c, int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: perfusectl recover FILE.h5\n"
                        "example: perfusectl recover runs/20261122-101500-demo-1a2b3c4d.h5\n");
        return EXIT_USAGE;
    }
    char err[512];
    int rc = recorder_recover(argv[1], err, sizeof err);
    if (c->json)
        printf("{\"ok\": %s, \"file\": \"%s\"%s%s%s}\n", rc == 0 ? "true" : "false", argv[1],
               rc ? ", \"error\": \"" : "", rc ? err : "", rc ? "\"" : "");
    else if (rc == 0)
        printf("%s: recovered (safe to run again)\n", argv[1]);
    else
        fprintf(stderr, "perfusectl: %s\n", err);
    return rc == 0 ? EXIT_OK : EXIT_REFUSED;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "socket", required_argument, NULL, 's' }, { "json", no_argument, NULL, 'j' },
        { "ro", no_argument, NULL, 'o' }, { "server-user", required_argument, NULL, 'u' },
        { "help", no_argument, NULL, 'h' }, { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    struct ctl c = { 0 };
    log_set_program("perfusectl");
    log_set_level(LOG_WARN);
    int ch;
    while ((ch = getopt_long(argc, argv, "+hj", opts, NULL)) != -1) {
        switch (ch) {
        case 's': c.socket = optarg; c.socket_given = true; break;
        case 'o': c.ro = true; break;
        case 'j': c.json = true; break;
        case 'u': setenv("PERFUSE_SERVER_USER", optarg, 1); break;     /* read by ctlclient_connect */
        case 'h': usage(stdout); return EXIT_OK;
        case 'V': printf("perfusectl %s (%s)\n", PERFUSE_VERSION, PERFUSE_GIT_REV); return EXIT_OK;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    if (c.socket == NULL) {
        control_default_path(c.sockbuf, sizeof c.sockbuf);
        c.socket = c.sockbuf;
    }
    if (optind >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[optind];
    static const char *const reads[] = { "status", "watch", "events", "devices", "wait", NULL };
    for (int i = 0; reads[i]; i++)
        c.read_cmd |= strcmp(cmd, reads[i]) == 0;
    if (c.ro) {
        /* --ro: the read-only socket beside the control socket (given or default). */
        control_default_ro_path(c.socket, c.robuf, sizeof c.robuf);
        c.socket = c.robuf;
    }
    int sub_argc = argc - optind;
    char **sub_argv = argv + optind;
    /* What goes to the daemon goes as JSON, which is UTF-8: say so here rather
     * than send a request that lost an argument. The offline tools send
     * nothing, and run checks its own (a protocol file's name may be bytes). */
    bool sends_args = strcmp(cmd, "check") != 0 && strcmp(cmd, "simulate") != 0 &&
                      strcmp(cmd, "recover") != 0 && strcmp(cmd, "run") != 0;
    for (int i = 1; i < sub_argc && sends_args; i++)
        if (!utf8_valid(sub_argv[i], strlen(sub_argv[i]))) {
            fprintf(stderr, "perfusectl: argument '%s' is not UTF-8 text (byte %zu); give it in UTF-8\n",
                    sub_argv[i], utf8_valid_prefix(sub_argv[i], strlen(sub_argv[i])) + 1);
            return EXIT_REFUSED;
        }
    for (int i = 1; i < sub_argc; i++)
        if (strcmp(sub_argv[i], "--help") == 0 || strcmp(sub_argv[i], "-h") == 0) {
            if (print_help(cmd))
                return EXIT_OK;
            break;
        }
    if (strcmp(cmd, "help") == 0) {
        if (sub_argc > 1 && print_help(sub_argv[1]))
            return EXIT_OK;
        usage(stdout);
        return sub_argc > 1 ? EXIT_USAGE : EXIT_OK;
    }
    static const struct {
        const char *name;
        int (*fn)(struct ctl *, int, char **);
    } commands[] = {
        { "run", cmd_run },         { "check", cmd_check },     { "events", cmd_events },
        { "set", cmd_set },         { "simulate", cmd_simulate }, { "recover", cmd_recover },
        { "ack", cmd_ack },         { "devices", cmd_devices }, { "watch", cmd_watch },
        { "confirm", cmd_confirm },
    };
    if (strcmp(cmd, "fleet") == 0)
        return fleet_main(sub_argc, sub_argv, c.json);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(cmd, commands[i].name) == 0)
            return commands[i].fn(&c, sub_argc, sub_argv);
    static const char *const simple[] = { "status", "pause", "resume", "abort", "wait", NULL };
    for (int i = 0; simple[i]; i++)
        if (strcmp(cmd, simple[i]) == 0)
            return cmd_simple(&c, cmd, sub_argc, sub_argv);
    fprintf(stderr, "perfusectl: unknown command '%s'\n", cmd);
    usage(stderr);
    return EXIT_USAGE;
}
