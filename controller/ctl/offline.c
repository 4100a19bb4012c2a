/*
 * perfusectl's offline tools, which need no daemon: check (a protocol's
 * timeline, duration and volumes, with its warnings), simulate (a run in
 * virtual time on the simulated rig, see simulate.h) and recover (a run file
 * left by a crash).
 */
#include "offline.h"
#include "ctl.h"
#include "simulate.h"
#include "simtune.h"
#include "subopts.h"
#include "base/diag.h"
#include "base/timeutil.h"
#include "base/units.h"
#include "base/yamldoc.h"
#include "plan/claims.h"
#include "plan/plan.h"
#include "plan/rig.h"
#include "plan/timeline.h"
#include "record/recovery.h"

#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
static json_t *check_json(const struct plan *plan, const struct rig *rig, const struct timeline *tl,
                          const struct claims *cl)
{
    json_t *claims = json_array(), *reads = json_array();
    for (size_t i = 0; i < cl->n; i++) {
        if (cl->writes[i])
            json_array_append_new(claims, json_string(rig->channels[i].name));
        if (cl->reads[i])
            json_array_append_new(reads, json_string(rig->channels[i].name));
    }
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
    return json_pack("{s:s,s:s,s:f,s:b,s:o,s:o,s:o,s:o}", "protocol", plan->name, "rig", rig->name,
                     "total_s", (double)plan->total_ns / 1e9, "open_ended", plan->open_ended,
                     "steps", json_steps(&plan->root, "", &t), "volumes", vols, "claims", claims,
                     "sensors", reads);
}

/* Read and load the protocol in file against rig (problems in dg). */
static int load_protocol(const char *file, const struct rig *rig, struct plan **plan, struct diag *dg)
{
    char *text;
    size_t len;
    int rc = read_file_text(file, 4 << 20, &text, &len);
    if (rc < 0) {
        diag_error(dg, file, 0, 0, "cannot read protocol: %s",
                   rc == -EFBIG ? "larger than 4 MiB" : strerror(-rc));
        return rc;
    }
    rc = plan_load(file, text, len, rig, plan, dg);
    free(text);
    return rc;
}

/* check --alongside: the protocols in others, loaded on rig, must not claim
 * an actuator plan claims (nor one another's); each overlap is an error at
 * file, naming the channel and the run (by its default name) that holds it. */
static int check_alongside(const char *file, const struct plan *plan, const struct rig *rig,
                           const char *const *others, size_t n_others, struct diag *dg)
{
    size_t n = n_others + 1;
    struct claims *cl = calloc(n, sizeof *cl);
    struct plan **plans = calloc(n, sizeof *plans);
    const char **files = calloc(n, sizeof *files);
    int rc = cl && plans && files ? 0 : -ENOMEM;
    if (rc == 0) {
        plans[0] = (struct plan *)plan;
        files[0] = file;
    }
    for (size_t i = 1; rc == 0 && i < n; i++) {
        files[i] = others[i - 1];
        rc = load_protocol(files[i], rig, &plans[i], dg);
    }
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = claims_of_plan(plans[i], rig, &cl[i]);
    for (size_t i = 1; rc == 0 && i < n; i++) {
        for (size_t k = 0; k < i; k++) {
            int ch = claims_overlap(&cl[i], &cl[k]);
            if (ch < 0)
                continue;
            char holder[CLAIMS_MAX_NAME + 1], msg[256];
            claims_default_name(plans[k]->name, holder, sizeof holder);
            claims_conflict_message(rig, ch, holder, NULL, msg, sizeof msg);
            diag_error(dg, files[i], 0, 0, "cannot run alongside %s: %s", files[k], msg);
            rc = -EINVAL;
        }
    }
    for (size_t i = 0; cl && i < n; i++)
        claims_free(&cl[i]);
    for (size_t i = 1; plans && i < n; i++)
        plan_free(plans[i]);
    free(cl);
    free(plans);
    free(files);
    return rc;
}

/* check PROTOCOL [--rig FILE]. */
int offline_check(struct ctl *c, int argc, char **argv)
{
    struct subopts o;
    int i = subopts_parse(argc, argv, &o);
    c->json |= o.json;
    if (i < 0 || i != argc - 1)
        return ctl_usage_error(c);
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
    if (rc == 0)
        rc = load_protocol(file, rig, &plan, &dg);
    struct claims cl = { 0 };
    if (rc == 0)
        rc = claims_of_plan(plan, rig, &cl);
    if (rc == 0 && o.n_alongside > 0)
        rc = check_alongside(file, plan, rig, o.alongside, o.n_alongside, &dg) < 0 ? -EINVAL : 0;
    if (rc == 0 && (rc = timeline_compute(plan, rig, &tl)) == 0) {
        warn_volumes(&tl, rig, file, &dg);
        warn_reversals(&plan->root, rig, file, &dg);
        warn_open_ended(&plan->root, file, &dg);
    }
    if (c->json) {
        json_t *out = rc == 0 ? check_json(plan, rig, &tl, &cl) : json_object();
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
        char list[1024];
        claims_list(&cl, rig, list, sizeof list);
        printf("claims: %s\n", list[0] ? list : "(no actuator)");
    }
    claims_free(&cl);
    timeline_free(&tl);
    plan_free(plan);
    rig_free(rig);
    diag_free(&dg);
    return rc == 0 ? EXIT_OK : EXIT_REFUSED;
}

/* simulate PROTOCOL [--rig FILE] [-o OUT.h5] [--speed N|max] [--fault SPEC]...,
 * or simulate --tune REGULATOR [--rig FILE]. */
int offline_simulate(struct ctl *c, int argc, char **argv)
{
    static const struct option opts[] = {
        { "rig", required_argument, NULL, 'g' }, { "out", required_argument, NULL, 'o' },
        { "speed", required_argument, NULL, 's' }, { "fault", required_argument, NULL, 'f' },
        { "seed", required_argument, NULL, 'e' }, { "prompt-delay", required_argument, NULL, 'p' },
        { "json", no_argument, NULL, 'j' }, { "fill", required_argument, NULL, 'F' },
        { "tune", required_argument, NULL, 't' }, { "line-rate", required_argument, NULL, 'L' },
        { NULL, 0, NULL, 0 },
    };
    const char *faults[32], *fills[32], *tune = NULL;
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
        case 't': tune = optarg; break;
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
        case 'L':
            if (strcmp(optarg, "on") != 0 && strcmp(optarg, "off") != 0) {
                fprintf(stderr, "perfusectl: --line-rate takes on or off\n");
                return EXIT_USAGE;
            }
            o.line_rate_off = strcmp(optarg, "off") == 0;
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
    if (ch == -2 || (tune ? optind != argc : optind >= argc))
        return ctl_usage_error(c);
    struct diag dg;
    diag_init(&dg);
    if (tune != NULL) {
        /* The relay autotune on the simulated plant instead of a protocol. */
        int trc = simtune_run(o.rig_path, tune, o.seed, &dg, c->json, stdout);
        diag_print(&dg, stderr);
        diag_free(&dg);
        return trc == 0 ? EXIT_OK : EXIT_REFUSED;
    }
    size_t n = (size_t)(argc - optind);
    if (n > 1 && o.out_path != NULL) {
        fprintf(stderr, "perfusectl: -o names the file of one protocol; with several, each gets "
                "its own file under runs/\n");
        diag_free(&dg);
        return EXIT_USAGE;
    }
    o.protocol_path = argv[optind];
    o.protocol_paths = (const char *const *)&argv[optind];
    o.n_protocols = n;
    struct simulate_result *res = calloc(n, sizeof *res);
    int rc = res ? simulate_run(&o, &dg, res) : -ENOMEM;
    diag_print(&dg, stderr);
    diag_free(&dg);
    if (rc < 0) {
        if (rc != -EINVAL)
            fprintf(stderr, "perfusectl: simulation failed: %s\n", strerror(-rc));
        free(res);
        return EXIT_REFUSED;
    }
    bool all_done = true;
    for (size_t i = 0; i < n; i++) {
        const struct simulate_result *r = &res[i];
        char vt[64];
        unit_format_duration(r->virtual_ns, vt, sizeof vt);
        if (c->json)
            printf("{\"file\": \"%s\", \"state\": \"%s\", \"virtual_s\": %.3f, \"wall_s\": %.3f, "
                   "\"samples\": %llu}\n", r->path, r->state, (double)r->virtual_ns / 1e9, r->wall_s,
                   (unsigned long long)r->samples);
        else if (n == 1)
            printf("simulated %s of protocol time in %.2f s: %s, %llu samples\nfile %s\n", vt, r->wall_s,
                   r->state, (unsigned long long)r->samples, r->path);
        else
            printf("%s: %s, %llu samples\nfile %s\n", argv[optind + i], r->state,
                   (unsigned long long)r->samples, r->path);
        all_done &= strcmp(r->state, "completed") == 0;
    }
    if (n > 1 && !c->json)
        printf("simulated %zu protocols together in virtual time\n", n);
    free(res);
    return all_done ? EXIT_OK : EXIT_REFUSED;
}

/* recover FILE.h5: make a run file left by a crash readable again. */
int offline_recover(struct ctl *c, int argc, char **argv)
{
    if (argc != 2)
        return ctl_usage_error(c);
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
