/*
 * perfusectl's commands that talk to perfused: run, status, pause, resume,
 * abort, next, extend, note, wait, watch, confirm, ack, devices, history, set and events. Each sends its
 * request (controller/daemon/CONTROL.md) and shows the reply.
 */
#include "daemon_cmds.h"
#include "ctl.h"
#include "status_view.h"
#include "subopts.h"
#include "base/run_operator.h"
#include "base/utf8.h"
#include "base/yamldoc.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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
int daemon_cmds_run(struct ctl *c, int argc, char **argv)
{
    struct subopts o;
    int i = subopts_parse(argc, argv, &o);
    c->json |= o.json;
    if (i < 0 || i != argc - 1)
        return ctl_usage_error(c);
    char err[256];
    if (o.operator_name != NULL && !run_operator_ok(o.operator_name, err, sizeof err)) {
        fprintf(stderr, "perfusectl: --operator: %s\n", err);
        return EXIT_REFUSED;
    }
    for (size_t k = 0; k < o.n_samples; k++)
        if (!run_sample_ok(o.samples[k], err, sizeof err)) {
            fprintf(stderr, "perfusectl: --sample: %s\n", err);
            return EXIT_REFUSED;
        }
    if (o.notes != NULL && !run_notes_ok(o.notes, err, sizeof err)) {
        fprintf(stderr, "perfusectl: --notes: %s\n", err);
        return EXIT_REFUSED;
    }
    char abspath[PATH_MAX];
    char *text = read_protocol(argv[i], abspath);
    struct ctlclient *cl = ctl_connect(c);
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
    if (o.n_samples > 0) {
        json_t *sl = json_array();
        for (size_t k = 0; k < o.n_samples; k++)
            json_array_append_new(sl, json_string(o.samples[k]));
        json_object_set_new(req, "sample", sl);
    }
    if (o.notes)
        json_object_set_new(req, "notes", json_string(o.notes));
    if (o.name)
        json_object_set_new(req, "name", json_string(o.name));
    int code;
    json_t *res = ctl_call(c, cl, req, &code);
    if (res != NULL) {
        if (c->json && !o.wait) {
            status_view_result(c->json, res);
        } else if (!c->json) {
            printf("run %s started\nfile %s\n", json_string_value(json_object_get(res, "run_id")),
                   json_string_value(json_object_get(res, "file")));
            if (json_string_value(json_object_get(res, "name")) != NULL)
                printf("name %s\n", json_string_value(json_object_get(res, "name")));
            fflush(stdout);
        }
        if (!o.wait)
            json_decref(res);
        if (o.wait) {
            json_t *w = json_pack("{s:s}", "cmd", "wait");
            const char *rid = json_string_value(json_object_get(res, "run_id"));
            if (rid != NULL)
                json_object_set_new(w, "run", json_string(rid));
            json_decref(res);
            res = ctl_call(c, cl, w, &code);
            if (res != NULL) {
                if (c->json)
                    status_view_result(c->json, res);
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

/* abort on a terminal: show what would be stopped and ask; true to go on.
 * Scripts (no terminal on stdin, or --yes) are not asked. */
static bool abort_confirmed(struct ctl *c, struct ctlclient *cl, const char *run)
{
    int code;
    json_t *sreq = json_pack("{s:s}", "cmd", "status");
    if (run != NULL)
        json_object_set_new(sreq, "run", json_string(run));
    json_t *st = ctl_call(c, cl, sreq, &code);
    if (st == NULL)
        return false;
    if (!json_is_true(json_object_get(st, "run_active"))) {
        json_decref(st);
        return true;            /* nothing to stop: the daemon says so */
    }
    json_t *step = json_object_get(st, "step");
    fprintf(stderr, "Abort run %.8s (protocol '%s'%s%s%s%s)?\nThe run stops for good and the rig goes "
            "to its safe state; pause stops it for a while instead.\nType yes to abort: ",
            json_string_value(json_object_get(st, "run_id")), json_string_value(json_object_get(st, "protocol")),
            step ? ", step " : "", step ? json_string_value(json_object_get(step, "path")) : "",
            step ? " " : "", step ? json_string_value(json_object_get(step, "name")) : "");
    fflush(stderr);
    json_decref(st);
    char line[32];
    if (fgets(line, sizeof line, stdin) == NULL)
        return false;
    line[strcspn(line, "\r\n")] = '\0';
    return strcmp(line, "yes") == 0 || strcmp(line, "y") == 0;
}

/* status, pause, resume, abort, wait: a request named for the command, with --reason or --keep-overrides. */
int daemon_cmds_simple(struct ctl *c, int argc, char **argv)
{
    struct subopts o;
    int i = subopts_parse(argc, argv, &o);
    c->json |= o.json;
    const char *name = argv[0];
    bool resume = strcmp(name, "resume") == 0, abort_cmd = strcmp(name, "abort") == 0;
    if (i < 0 || i != argc || (o.keep_overrides && !resume) || (o.yes && !abort_cmd))
        return ctl_usage_error(c);
    struct ctlclient *cl = ctl_connect(c);
    if (abort_cmd && !o.yes && isatty(STDIN_FILENO) && !abort_confirmed(c, cl, o.run)) {
        fprintf(stderr, "not aborted\n");
        ctlclient_close(cl);
        return EXIT_REFUSED;
    }
    json_t *req = json_pack("{s:s}", "cmd", name);
    if (o.run)
        json_object_set_new(req, "run", json_string(o.run));
    if (o.reason)
        json_object_set_new(req, "reason", json_string(o.reason));
    if (o.keep_overrides)
        json_object_set_new(req, "keep_overrides", json_true());
    int code;
    json_t *res = ctl_call(c, cl, req, &code);
    if (res) {
        if (resume && !c->json)
            status_view_overrides_settled(res);
        status_view_result(c->json, res);
        json_decref(res);
    }
    ctlclient_close(cl);
    return code;
}

/* next, extend DURATION, note TEXT: steer the run; the reply is shown as a status
 * (next, extend) or as the note's time. */
int daemon_cmds_steer(struct ctl *c, int argc, char **argv)
{
    struct subopts o;
    int i = subopts_parse(argc, argv, &o);
    c->json |= o.json;
    const char *name = argv[0];
    bool next = strcmp(name, "next") == 0, note = strcmp(name, "note") == 0;
    if (i < 0 || argc - i != (next ? 0 : 1) || (o.operator_name && !note))
        return ctl_usage_error(c);
    char err[256];
    if (o.operator_name != NULL && !run_operator_ok(o.operator_name, err, sizeof err)) {
        fprintf(stderr, "perfusectl: --operator: %s\n", err);
        return EXIT_REFUSED;
    }
    json_t *req = json_pack("{s:s}", "cmd", name);
    if (!next)
        json_object_set_new(req, note ? "text" : "duration", json_string(argv[i]));
    if (o.operator_name)
        json_object_set_new(req, "operator", json_string(o.operator_name));
    if (o.run)
        json_object_set_new(req, "run", json_string(o.run));
    struct ctlclient *cl = ctl_connect(c);
    int code;
    json_t *res = ctl_call(c, cl, req, &code);
    if (res != NULL && note && !c->json) {
        const char *local = json_string_value(json_object_get(res, "local"));
        printf("note recorded at %.10s %.8s (run time %.3f s)\n", local ? local : "?", local && strlen(local) >= 19
               ? local + 11 : "", json_number_value(json_object_get(res, "time")));
    } else if (res != NULL) {
        status_view_result(c->json, res);
    }
    json_decref(res);
    ctlclient_close(cl);
    return code;
}

/* events [--since SECONDS] [--limit N] [--cursor SEQ | --last N]: the run's event log, page by page. */
int daemon_cmds_events(struct ctl *c, int argc, char **argv)
{
    static const struct option opts[] = {
        { "since", required_argument, NULL, 's' }, { "json", no_argument, NULL, 'j' },
        { "limit", required_argument, NULL, 'l' }, { "cursor", required_argument, NULL, 'c' },
        { "run", required_argument, NULL, 'r' }, { "last", required_argument, NULL, 'n' },
        { NULL, 0, NULL, 0 },
    };
    const char *run = NULL;
    double since = -1;
    long limit = -1, cursor = 0, latest = 0;
    bool cursor_given = false;
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
            cursor = strtol(optarg, &end, 10), cursor_given = true;
        else if (ch == 'n')
            latest = strtol(optarg, &end, 10);
        else if (ch == 'j')
            c->json = true;
        else if (ch == 'r')
            run = optarg;
        else
            bad = true;
        if (end != NULL && (end == optarg || *end != '\0'))
            bad = true;
    }
    if (limit == 0 || limit < -1 || cursor < 0 || since < -1 || latest < 0 || latest > 500 ||
        (latest > 0 && cursor_given))
        bad = true;
    if (bad || optind != argc) {
        if (bad)
            fprintf(stderr, "perfusectl events: --since takes seconds, --limit a whole number from 1, "
                            "--cursor a whole number from 0, --last a whole number from 1 to 500 "
                            "(and not with --cursor)\n");
        return ctl_usage_error(c);
    }
    struct ctlclient *cl = ctl_connect(c);
    json_t *all = json_array(), *last = NULL;
    int code = EXIT_OK;
    for (;;) {
        json_t *req = json_pack("{s:s,s:I}", "cmd", "events", latest > 0 ? "last" : "cursor",
                                (json_int_t)(latest > 0 ? latest : cursor));
        if (latest > 0 && limit < 0)
            limit = latest;
        latest = 0;             /* the next pages follow on from the first */
        if (run != NULL)
            json_object_set_new(req, "run", json_string(run));
        if (since >= 0)
            json_object_set_new(req, "since", json_real(since));
        long want = limit > 0 ? limit - (long)json_array_size(all) : 500;
        if (want <= 0)
            break;
        json_object_set_new(req, "limit", json_integer(want < 500 ? want : 500));
        json_t *res = ctl_call(c, cl, req, &code);
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
        status_view_result(c->json, last);
    } else if (last != NULL) {
        size_t i;
        json_t *e;
        json_array_foreach(all, i, e)
            status_view_event(e);
    }
    json_decref(last);
    json_decref(all);
    ctlclient_close(cl);
    return code;
}

/* set CHANNEL VALUE [UNIT]: a manual setpoint. */
int daemon_cmds_set(struct ctl *c, int argc, char **argv)
{
    struct subopts o;
    int i = subopts_parse(argc, argv, &o);
    c->json |= o.json;
    if (i < 0 || argc - i < 2 || argc - i > 3)
        return ctl_usage_error(c);
    char value[128];
    utf8_format(value, sizeof value, "%s%s%s", argv[i + 1], argc - i == 3 ? " " : "", argc - i == 3 ? argv[i + 2] : "");
    struct ctlclient *cl = ctl_connect(c);
    int code;
    json_t *req = json_pack("{s:s,s:s,s:s}", "cmd", "set", "channel", argv[i], "value", value);
    if (o.run)
        json_object_set_new(req, "run", json_string(o.run));
    json_t *res = ctl_call(c, cl, req, &code);
    if (res) {
        if (c->json)
            status_view_result(c->json, res);
        else
            printf("%s set to %g %s\n", json_string_value(json_object_get(res, "channel")),
                   json_number_value(json_object_get(res, "value")), json_string_value(json_object_get(res, "unit")));
        json_decref(res);
    }
    ctlclient_close(cl);
    return code;
}

/* The regulator called name in a status, or NULL. */
static json_t *status_regulator(json_t *st, const char *name)
{
    size_t i;
    json_t *g;
    json_array_foreach(json_object_get(st, "regulators"), i, g)
        if (strcmp(json_string_value(json_object_get(g, "name")), name) == 0)
            return g;
    return NULL;
}

/* Print a finished relay test: the plant, the rule, and the gains as a rig entry. */
static void print_tune(json_t *g, json_t *tu)
{
    const char *name = json_string_value(json_object_get(g, "name"));
    const char *u = json_string_value(json_object_get(g, "units"));
    const char *ou = json_string_value(json_object_get(g, "output_units"));
    json_t *orng = json_object_get(g, "output_range"), *rng = json_object_get(g, "range");
#define NUM(o, k) json_number_value(json_object_get(o, k))
    printf("%s: relay test of %.1f s on %s (output %s)\n", name, NUM(tu, "seconds"),
           json_string_value(json_object_get(g, "measure")), json_string_value(json_object_get(g, "actuator")));
    printf("plant: gain %.4g %s per %s, time constant %.3g s, dead time %.3g s\n", NUM(tu, "gain"), u, ou,
           NUM(tu, "time_constant_s"), NUM(tu, "dead_time_s"));
    printf("relay: ultimate gain %.4g, ultimate period %.3g s, amplitude %.3g %s (hysteresis %.3g), "
           "sampled every %.3g s\n", NUM(tu, "ultimate_gain"), NUM(tu, "ultimate_period_s"), NUM(tu, "amplitude"),
           u, NUM(tu, "hysteresis"), NUM(tu, "sample_s"));
    printf("rule: %s\n", json_string_value(json_object_get(tu, "rule")));
    printf("suggested rig entry (the rig file is not changed; copy it in if you want it):\n");
    printf("  - {name: %s, measure: %s, actuator: %s, kp: %.4g %s per %s,\n"
           "     ki: %.4g %s per %s per s, kd: %.4g %s s per %s, d_filter: %.3g ms, rate: %g Hz,\n"
           "     feedforward: {lag: %.3g s, dead_time: %.3g ms},\n"
           "     output: [%g %s, %g %s], range: [%g %s, %g %s]}\n", name,
           json_string_value(json_object_get(g, "measure")), json_string_value(json_object_get(g, "actuator")),
           NUM(tu, "kp"), ou, u, NUM(tu, "ki"), ou, u, NUM(tu, "kd"), ou, u, NUM(tu, "d_filter_s") * 1e3,
           NUM(g, "rate_hz"), NUM(tu, "time_constant_s"), NUM(tu, "dead_time_s") * 1e3,
           json_number_value(json_array_get(orng, 0)), ou, json_number_value(json_array_get(orng, 1)), ou,
           json_number_value(json_array_get(rng, 0)), u, json_number_value(json_array_get(rng, 1)), u);
    json_t *gains = json_object_get(g, "gains"), *ff = json_object_get(g, "feedforward");
    printf("now: kp %.4g, ki %.4g, kd %.4g (filter %.3g ms), ", NUM(gains, "kp"), NUM(gains, "ki"),
           NUM(gains, "kd"), NUM(gains, "d_filter_s") * 1e3);
    if (json_is_true(json_object_get(ff, "on")))
        printf("feedforward on (lag %.3g s, response %.3g s, dead time %.3g ms)\n", NUM(ff, "lag_s"),
               NUM(ff, "response_s"), NUM(ff, "dead_time_s") * 1e3);
    else
        printf("feedforward off\n");
#undef NUM
}

/* tune REGULATOR: a relay autotune on the live rig; waits for it and prints the result. */
int daemon_cmds_tune(struct ctl *c, int argc, char **argv)
{
    struct subopts o;
    int i = subopts_parse(argc, argv, &o);
    c->json |= o.json;
    if (i < 0 || argc - i != 1)
        return ctl_usage_error(c);
    const char *name = argv[i];
    struct ctlclient *cl = ctl_connect(c);
    int code;
    json_t *res = ctl_call(c, cl, json_pack("{s:s,s:s}", "cmd", "tune", "regulator", name), &code);
    if (res == NULL) {
        ctlclient_close(cl);
        return code;
    }
    json_decref(res);
    if (!c->json)
        printf("%s: relay test running (about 10 s; the output stays within its limits)\n", name);
    /* The daemon has no event for the test's end: its status says when it is over. */
    for (int n = 0; n < 300; n++) {
        struct timespec ts = { 0, 500000000L };
        nanosleep(&ts, NULL);
        json_t *st = ctl_call(c, cl, json_pack("{s:s}", "cmd", "status"), &code);
        if (st == NULL)
            break;
        json_t *g = status_regulator(st, name), *tu = g ? json_object_get(g, "tune") : NULL;
        const char *state = tu ? json_string_value(json_object_get(tu, "state")) : NULL;
        if (state != NULL && strcmp(state, "running") != 0) {
            if (c->json)
                status_view_result(true, tu);
            else if (strcmp(state, "done") == 0)
                print_tune(g, tu);
            else
                fprintf(stderr, "perfusectl: %s: the relay test failed: %s\n", name,
                        json_string_value(json_object_get(tu, "why")));
            code = strcmp(state, "done") == 0 ? EXIT_OK : EXIT_REFUSED;
            json_decref(st);
            ctlclient_close(cl);
            return code;
        }
        json_decref(st);
    }
    fprintf(stderr, "perfusectl: %s: no result from the relay test\n", name);
    ctlclient_close(cl);
    return EXIT_REFUSED;
}

/* confirm [PROMPT_ID]: answer the pending prompt. */
int daemon_cmds_confirm(struct ctl *c, int argc, char **argv)
{
    struct subopts o;
    int i = subopts_parse(argc, argv, &o);
    c->json |= o.json;
    if (i < 0 || argc - i > 1)
        return ctl_usage_error(c);
    struct ctlclient *cl = ctl_connect(c);
    json_t *req = json_pack("{s:s}", "cmd", "confirm");
    if (o.run)
        json_object_set_new(req, "run", json_string(o.run));
    if (argc - i == 1)
        json_object_set_new(req, "prompt", json_string(argv[i]));
    int code;
    json_t *res = ctl_call(c, cl, req, &code);
    if (res) {
        status_view_result(c->json, res);
        json_decref(res);
    }
    ctlclient_close(cl);
    return code;
}

/* ack ID|all: acknowledge alarms. */
int daemon_cmds_ack(struct ctl *c, int argc, char **argv)
{
    struct subopts o;
    int i = subopts_parse(argc, argv, &o);
    c->json |= o.json;
    char *end = NULL;
    long id = i >= 0 && i == argc - 1 ? strtol(argv[i], &end, 10) : 0;
    bool all = i >= 0 && i == argc - 1 && strcmp(argv[i], "all") == 0;
    if (!all && (end == NULL || *end != '\0' || id <= 0))
        return ctl_usage_error(c);
    struct ctlclient *cl = ctl_connect(c);
    json_t *req = json_pack("{s:s}", "cmd", "ack");
    json_object_set_new(req, "alarm", all ? json_string("all") : json_integer(id));
    int code;
    json_t *res = ctl_call(c, cl, req, &code);
    if (res && c->json)
        status_view_result(c->json, res);
    else if (res)
        printf("%lld alarm(s) acknowledged; %zu listed\n",
               (long long)json_integer_value(json_object_get(res, "acknowledged")),
               json_array_size(json_object_get(res, "alarms")));
    json_decref(res);
    ctlclient_close(cl);
    return code;
}

/* devices: buses and devices with their health. */
int daemon_cmds_devices(struct ctl *c, int argc, char **argv)
{
    struct subopts o;
    int i = subopts_parse(argc, argv, &o);
    c->json |= o.json;
    if (i < 0 || i != argc)
        return ctl_usage_error(c);
    struct ctlclient *cl = ctl_connect(c);
    int code;
    json_t *res = ctl_call(c, cl, json_pack("{s:s}", "cmd", "devices"), &code);
    if (res && c->json)
        status_view_result(true, res);
    else if (res)
        status_view_devices(res);
    json_decref(res);
    ctlclient_close(cl);
    return code;
}

/* history [--minutes M] [--points N] [CHANNEL...]: the last minutes of the channels. */
int daemon_cmds_history(struct ctl *c, int argc, char **argv)
{
    static const struct option opts[] = {
        { "minutes", required_argument, NULL, 'm' }, { "points", required_argument, NULL, 'p' },
        { "json", no_argument, NULL, 'j' }, { NULL, 0, NULL, 0 },
    };
    double minutes = -1;
    long points = -1;
    bool bad = false;
    optind = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        char *end = NULL;
        if (ch == 'm')
            minutes = strtod(optarg, &end);
        else if (ch == 'p')
            points = strtol(optarg, &end, 10);
        else if (ch == 'j')
            c->json = true;
        else
            bad = true;
        if (end != NULL && (end == optarg || *end != '\0'))
            bad = true;
    }
    if ((minutes != -1 && !(minutes >= 1 && minutes <= 60)) || (points != -1 && (points < 10 || points > 2000)))
        bad = true;
    if (bad) {
        fprintf(stderr, "perfusectl history: --minutes takes a number from 1 to 60, --points a whole "
                        "number from 10 to 2000\n");
        return ctl_usage_error(c);
    }
    json_t *req = json_pack("{s:s}", "cmd", "history");
    if (minutes != -1)
        json_object_set_new(req, "minutes", json_real(minutes));
    if (points != -1)
        json_object_set_new(req, "points", json_integer(points));
    if (optind < argc) {
        json_t *list = json_array();
        for (int i = optind; i < argc; i++)
            json_array_append_new(list, json_string(argv[i]));
        json_object_set_new(req, "channels", list);
    }
    struct ctlclient *cl = ctl_connect(c);
    int code;
    json_t *res = ctl_call(c, cl, req, &code);
    if (res && c->json)
        status_view_result(true, res);
    else if (res)
        status_view_history(res);
    json_decref(res);
    ctlclient_close(cl);
    return code;
}

/* Connect again to a daemon that went away and ask it to watch; a try a
 * second (a daemon restarting is back within seconds, and a technician leaves
 * watch open across it). Returns the connection with the first status in *st,
 * or NULL if the daemon refuses to watch. */
static struct ctlclient *watch_reconnect(struct ctl *c, double interval, json_t **st)
{
    for (unsigned tries = 1;; tries++) {
        struct timespec pause = { .tv_sec = 1 };
        nanosleep(&pause, NULL);
        struct ctlclient *cl;
        char err[512];
        if (ctlclient_connect(c->socket, &cl, err, sizeof err) < 0) {
            if (tries % 30 == 0)
                fprintf(stderr, "perfusectl: still no daemon after %u s: %s\n", tries, err);
            continue;
        }
        int code;
        *st = ctl_call(c, cl, json_pack("{s:s,s:f}", "cmd", "watch", "interval", interval), &code);
        if (*st != NULL) {
            fprintf(stderr, "perfusectl: reconnected\n");
            return cl;
        }
        ctlclient_close(cl);
        if (code == EXIT_REFUSED)
            return NULL;
    }
}

/* watch [--interval S]: the status, pushed by the daemon, until Ctrl-C; it
 * reconnects when the daemon restarts. */
int daemon_cmds_watch(struct ctl *c, int argc, char **argv)
{
    static const struct option opts[] = {
        { "interval", required_argument, NULL, 'i' }, { "json", no_argument, NULL, 'j' },
        { "run", required_argument, NULL, 'r' }, { NULL, 0, NULL, 0 },
    };
    const char *run = NULL;
    double interval = 1.0;
    optind = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ch == 'i')
            interval = strtod(optarg, NULL);
        else if (ch == 'j')
            c->json = true;
        else if (ch == 'r')
            run = optarg;
        else
            return ctl_usage_error(c);
    }
    if (optind != argc || !(interval >= 0.2 && interval <= 60))
        return ctl_usage_error(c);
    struct ctlclient *cl = ctl_connect(c);
    int code;
    json_t *wreq = json_pack("{s:s,s:f}", "cmd", "watch", "interval", interval);
    if (run != NULL)
        json_object_set_new(wreq, "run", json_string(run));
    json_t *res = ctl_call(c, cl, wreq, &code);
    bool tty = isatty(STDOUT_FILENO) && !c->json;
    json_t *st = res;
    json_t *recent = json_array();      /* the last events, shown under the status on a terminal */
    while (st != NULL) {
        if (c->json) {
            char *t = json_dumps(st, JSON_COMPACT);
            printf("%s\n", t ? t : "{}");
            free(t);
        } else if (tty) {
            status_view_watch_screen(st, recent);
        } else {
            status_view_watch_line(st);
        }
        fflush(stdout);
        json_decref(st);
        st = NULL;
        json_t *msg = NULL;
        char err[256];
        if (ctlclient_next(cl, &msg, err, sizeof err) < 0) {
            /* The daemon went (a restart, an upgrade): wait for it to come back. */
            fprintf(stderr, "perfusectl: %s; reconnecting (Ctrl-C to stop)\n", err);
            fflush(stderr);
            ctlclient_close(cl);
            cl = watch_reconnect(c, interval, &st);
            if (cl == NULL) {
                code = EXIT_UNREACHABLE;
                break;
            }
            continue;
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
