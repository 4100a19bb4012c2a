/* How perfusectl shows the daemon's replies to people: the status, a watch,
 * events, devices, and the overrides a resume settled. */
#include "status_view.h"
#include "base/timeutil.h"
#include "base/units.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* One line per run (when there is more than one): name, protocol, step,
 * progress and ETA, state, alarms. */
static void print_runs(json_t *st)
{
    json_t *runs = json_object_get(st, "runs");
    if (json_array_size(runs) < 2)
        return;
    printf("runs      (one in full: perfusectl status --run NAME)\n");
    size_t i;
    json_t *r;
    json_array_foreach(runs, i, r) {
        char pb[48], step[120] = "-", eta[16] = "";
        json_t *prog = json_object_get(r, "progress");
        bar(pb, 10, json_is_number(prog) ? json_number_value(prog) : 0);
        json_t *s = json_object_get(r, "step");
        if (s != NULL)
            snprintf(step, sizeof step, "%s %s", json_string_value(json_object_get(s, "path")),
                     json_string_value(json_object_get(s, "name")));
        const char *e = json_string_value(json_object_get(r, "eta"));
        if (e != NULL && strlen(e) >= 19)
            snprintf(eta, sizeof eta, "ETA %.8s", e + 11);
        printf("  %-16s %-10s %-24s %-20s %s %-12s alarms %lld\n", json_string_value(json_object_get(r, "name")),
               json_string_value(json_object_get(r, "state")), json_string_value(json_object_get(r, "protocol")),
               step, pb, eta, (long long)json_integer_value(json_object_get(r, "alarms")));
    }
}

/* The regulators: setpoint, measurement, output, and whether in tolerance. */
static void print_regulators(json_t *regs)
{
    if (json_array_size(regs) == 0)
        return;
    printf("regulators\n");
    size_t i;
    json_t *g;
    json_array_foreach(regs, i, g) {
        json_t *sp = json_object_get(g, "setpoint"), *y = json_object_get(g, "measurement"),
               *out = json_object_get(g, "output");
        const char *u = json_string_value(json_object_get(g, "units"));
        const char *ou = json_string_value(json_object_get(g, "output_units"));
        printf("  %-10s %s -> %s  %-6s", json_string_value(json_object_get(g, "name")),
               json_string_value(json_object_get(g, "actuator")),
               json_string_value(json_object_get(g, "measure")),
               json_string_value(json_object_get(g, "mode")));
        if (json_is_number(sp))
            printf("  setpoint %.3f %s", json_number_value(sp), u);
        if (json_is_number(y))
            printf("  measured %.3f %s", json_number_value(y), u);
        json_t *oc = json_object_get(g, "output_confirmed");
        if (json_is_number(out))
            printf("  output %.2f %s (%s)", json_number_value(out), ou,
                   json_is_number(oc) ? "confirmed" : "commanded, not confirmed");
        if (json_is_number(sp))
            printf("  %s", json_is_true(json_object_get(g, "in_tolerance")) ? "in tolerance" : "OUT OF TOLERANCE");
        size_t j;
        json_t *f;
        json_array_foreach(json_object_get(g, "faults"), j, f)
            printf("  %s", json_string_value(f));
        printf("\n");
    }
}

/* Print a status result for people. */
void status_view_print(json_t *st)
{
    const char *state = json_string_value(json_object_get(st, "state"));
    printf("rig       %s\nstate     %s\n", json_string_value(json_object_get(st, "rig")), state);
    print_runs(st);
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
            json_t *to = json_object_get(step, "timeout_s");
            double ext = json_number_value(json_object_get(step, "extended_s"));
            if (du <= 0 && json_is_number(to))
                bar(pb, 20, el / json_number_value(to));
            printf("step      %s %s (%s)  %s %s / %s", json_string_value(json_object_get(step, "path")),
                   json_string_value(json_object_get(step, "name")),
                   json_string_value(json_object_get(step, "kind")), pb, dur(el, b1, sizeof b1),
                   du > 0 ? dur(du, b2, sizeof b2) : json_is_number(to) ? "timeout" : "open-ended");
            if (du > 0 && ext > 0)
                printf("  (extended by %s)", dur(ext, b2, sizeof b2));
            printf("\n");
            if (json_is_number(to))
                printf("timeout   in %s (after %s%s)\n",
                       dur(json_number_value(json_object_get(step, "timeout_left_s")), b1, sizeof b1),
                       dur(json_number_value(to), b2, sizeof b2), ext > 0 ? ", extended" : "");
            json_t *cond = json_object_get(step, "condition");
            if (cond != NULL) {
                json_t *v = json_object_get(cond, "value");
                const char *unit = json_string_value(json_object_get(cond, "unit"));
                if (json_is_number(v))
                    printf("waiting   until %s: now %g %s (%+g %s to go)\n",
                           json_string_value(json_object_get(cond, "text")), json_number_value(v), unit,
                           json_number_value(json_object_get(cond, "distance")), unit);
                else
                    printf("waiting   until %s: %s value unknown (no valid reading)\n",
                           json_string_value(json_object_get(cond, "text")),
                           json_string_value(json_object_get(cond, "channel")));
            }
        }
        const char *why = json_string_value(json_object_get(st, "pause_reason"));
        if (why != NULL)
            printf("paused    %s\n", why);
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
    print_regulators(json_object_get(st, "regulators"));
}

/* After resume: which overrides went back to the protocol's values, which stayed. */
void status_view_overrides_settled(json_t *res)
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
void status_view_result(bool json, json_t *res)
{
    if (json) {
        char *s = json_dumps(res, JSON_INDENT(2));
        printf("%s\n", s ? s : "{}");
        free(s);
    } else {
        status_view_print(res);
    }
}

/* Print one event as a line. */
void status_view_event(json_t *e)
{
    char t[64], when[24] = "";
    unit_format_duration((int64_t)(json_number_value(json_object_get(e, "time")) * 1e9), t, sizeof t);
    /* The daemon's local clock time, "2026-11-22 10:10:11", from its ISO 8601 text. */
    const char *local = json_string_value(json_object_get(e, "local"));
    if (local != NULL && strlen(local) >= 19)
        snprintf(when, sizeof when, "%.10s %.8s", local, local + 11);
    printf("%-19s %-14s %-8s %-14s %-18s %s\n", when, t, json_string_value(json_object_get(e, "severity")),
           json_string_value(json_object_get(e, "source")), json_string_value(json_object_get(e, "code")),
           json_string_value(json_object_get(e, "message")));
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

/* Print a devices result for people: buses, devices, their health and channels. */
void status_view_devices(json_t *res)
{
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

/* A number of a history, or "-" when there is none. */
static void history_num(double v, bool known)
{
    if (known)
        printf(" %12.6g", v);
    else
        printf(" %12s", "-");
}

/* Print a history result: per channel its last value and the min and max over the window. */
void status_view_history(json_t *res)
{
    double minutes = json_number_value(json_object_get(res, "minutes"));
    double step = json_number_value(json_object_get(res, "step_s"));
    char now[40];
    time_iso8601((int64_t)(json_number_value(json_object_get(res, "now")) * 1e9), now, sizeof now);
    printf("the last %g min to %s, in slots of %g s (setpoints: what the devices confirmed)\n", minutes,
           now, step);
    printf("%-24s %-9s %-8s %12s %12s %12s %6s\n", "CHANNEL", "KIND", "UNIT", "LAST", "MIN", "MAX", "POINTS");
    const char *name;
    json_t *c;
    json_object_foreach(json_object_get(res, "channels"), name, c) {
        json_t *v = json_object_get(c, "v"), *lo = json_object_get(c, "min"), *hi = json_object_get(c, "max");
        size_t n = json_array_size(v), failed = 0;
        double last = NAN, mn = INFINITY, mx = -INFINITY;
        for (size_t i = 0; i < n; i++) {
            if (!json_is_number(json_array_get(v, i))) {
                failed++;
                continue;
            }
            last = json_number_value(json_array_get(v, i));
            mn = fmin(mn, json_number_value(json_array_get(lo, i)));
            mx = fmax(mx, json_number_value(json_array_get(hi, i)));
        }
        printf("%-24s %-9s %-8s", name, json_string_value(json_object_get(c, "kind")),
               json_string_value(json_object_get(c, "unit")));
        history_num(last, n > failed && json_is_number(json_array_get(v, n - 1)));
        history_num(mn, n > failed);
        history_num(mx, n > failed);
        printf(" %6zu", n);
        if (n == 0)
            printf("  (no %s in the window)", strcmp(json_string_value(json_object_get(c, "kind")), "setpoint") == 0
                                              ? "confirmed value" : "reading");
        else if (failed > 0)
            printf("  (%zu without a valid reading%s)", failed,
                   json_is_number(json_array_get(v, n - 1)) ? "" : ", the last one too");
        printf("\n");
    }
}

/* One line of a watch for a non-terminal: time, state, step, progress, values, alarms. */
void status_view_watch_line(json_t *st)
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
    const char *why = json_string_value(json_object_get(st, "pause_reason"));
    if (why)
        printf(" PAUSED: %s", why);
    json_t *runs = json_object_get(st, "runs"), *r;
    json_array_foreach(runs, i, r) {
        if (json_array_size(runs) < 2)
            break;
        json_t *s = json_object_get(r, "step"), *prog = json_object_get(r, "progress");
        printf(" | %s %s", json_string_value(json_object_get(r, "name")),
               json_string_value(json_object_get(r, "state")));
        if (s != NULL)
            printf(" step %s", json_string_value(json_object_get(s, "path")));
        if (json_is_number(prog))
            printf(" %.0f%%", 100.0 * json_number_value(prog));
    }
    const char *prompt = json_string_value(json_object_get(st, "prompt"));
    if (prompt)
        printf(" PROMPT: %s", prompt);
    printf("\n");
}

/* Redraw a terminal with the status and, under it, the recent events. */
void status_view_watch_screen(json_t *st, json_t *recent)
{
    printf("\033[H\033[2J");
    status_view_print(st);
    if (json_array_size(recent) > 0)
        printf("recent events\n");
    size_t i;
    json_t *e;
    json_array_foreach(recent, i, e)
        printf("  %10.1f s %-8s %-14s %-18s %s\n", json_number_value(json_object_get(e, "time")),
               json_string_value(json_object_get(e, "severity")), json_string_value(json_object_get(e, "source")),
               json_string_value(json_object_get(e, "code")), json_string_value(json_object_get(e, "message")));
}
