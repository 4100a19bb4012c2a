/* The protocol loader: protocol YAML (DESIGN.md section 3) to a validated
 * plan (plan.h), and what a plan's waveforms and conditions mean. */
#include "plan.h"
#include "base/yamldoc.h"
#include "base/utf8.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct loader {
    struct ydoc *y;
    const struct rig *rig;
    struct plan *plan;
    size_t n_steps;             /* steps written, to bound the file */
};

static const char *const step_keys[] = {
    "name", "set", "for", "ramp", "over", "waveform", "update_rate", "wait_until",
    "timeout", "on_timeout", "prompt", "repeat", "steps", "note", NULL,
};

/* Check a setpoint against the channel's limits, and that an integer
 * channel (a valve's port) gets a whole number. */
static bool check_limits(struct loader *L, yaml_node_t *n, int ch, double v)
{
    const struct rig_channel *c = &L->rig->channels[ch];
    int reg = rig_regulator_of(L->rig, ch);
    if (reg >= 0 && !c->writable) {
        /* A regulated channel: what its regulator can reach, not the sensor's range. */
        const struct rig_regulator *g = &L->rig->regulators[reg];
        if (v < g->sp_min || v > g->sp_max) {
            yerr(L->y, n, "%g %s is outside what regulator '%s' can reach on %s (%g to %g %s, its "
                 "'range' in the rig)", v, c->unit, g->name, c->name, g->sp_min, g->sp_max, c->unit);
            return false;
        }
        return true;
    }
    if ((!isnan(c->min) && v < c->min) || (!isnan(c->max) && v > c->max)) {
        yerr(L->y, n, "%g %s is outside the limits of %s (%g to %g %s)", v, c->unit, c->name,
             c->min, c->max, c->unit);
        return false;
    }
    char err[200];
    if (!rig_value_whole(c, v, err, sizeof err)) {
        yerr(L->y, n, "%s", err);
        return false;
    }
    return true;
}

/* Grow a target array by one. */
static struct plan_target *add_target(struct plan_target **arr, size_t *n)
{
    struct plan_target *t = realloc(*arr, (*n + 1) * sizeof **arr);
    if (t == NULL)
        return NULL;
    *arr = t;
    memset(&t[*n], 0, sizeof t[*n]);
    return &t[(*n)++];
}

/* Parse a mapping of channel: value (set and safe_state). */
static void parse_set_map(struct loader *L, yaml_node_t *map, const char *what,
                          struct plan_target **arr, size_t *n)
{
    if (!yexpect_map(L->y, map, what))
        return;
    if (map->data.mapping.pairs.top == map->data.mapping.pairs.start)
        yerr(L->y, map, "%s is empty; give at least one channel: value", what);
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = ydoc_node(L->y, p->key), *v = ydoc_node(L->y, p->value);
        int ch = rig_channel_at(L->y, k, L->rig, true);
        if (ch < 0)
            continue;
        for (size_t i = 0; i < *n; i++)
            if ((*arr)[i].channel == ch)
                yerr(L->y, k, "channel '%s' is given twice", L->rig->channels[ch].name);
        double val;
        if (!ynode_value(L->y, v, L->rig->channels[ch].q, L->rig->channels[ch].name, NULL, &val))
            continue;
        if (!check_limits(L, v, ch, val))
            continue;
        struct plan_target *t = add_target(arr, n);
        if (t == NULL)
            return;
        t->channel = ch;
        t->v0 = t->v1 = val;
        t->line = ynode_line(k);
        t->col = ynode_col(k);
    }
}

/* Parse ramp: {channel: [from, to]}. */
static void parse_ramp(struct loader *L, yaml_node_t *map, struct plan_step *s)
{
    if (!yexpect_map(L->y, map, "'ramp'"))
        return;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = ydoc_node(L->y, p->key), *v = ydoc_node(L->y, p->value);
        int ch = rig_channel_at(L->y, k, L->rig, true);
        if (ch < 0)
            continue;
        if (v == NULL || v->type != YAML_SEQUENCE_NODE || yseq_len(v) != 2) {
            yerr(L->y, v, "a ramp needs [from, to], e.g. [1 %s, 10 %s], found %s",
                 L->rig->channels[ch].unit, L->rig->channels[ch].unit,
                 v && v->type == YAML_SEQUENCE_NODE ? "a list of another length" : ynode_kind(v));
            continue;
        }
        double a, b;
        yaml_node_t *na = yseq_item(L->y, v, 0), *nb = yseq_item(L->y, v, 1);
        enum quantity q = L->rig->channels[ch].q;
        if (!ynode_value(L->y, na, q, "ramp start", NULL, &a) ||
            !ynode_value(L->y, nb, q, "ramp end", NULL, &b))
            continue;
        if (!check_limits(L, na, ch, a) || !check_limits(L, nb, ch, b))
            continue;
        if (L->rig->channels[ch].integer && a != b) {
            yerr(L->y, k, "a ramp on %s would pass through fractions, and it takes whole numbers "
                 "only: use 'set' steps", L->rig->channels[ch].name);
            continue;
        }
        struct plan_target *t = add_target(&s->targets, &s->n_targets);
        if (t == NULL)
            return;
        t->channel = ch;
        t->v0 = a;
        t->v1 = b;
        t->line = ynode_line(k);
        t->col = ynode_col(k);
    }
}

/* Parse one waveform description for one channel. */
static void parse_wave_one(struct loader *L, yaml_node_t *k, yaml_node_t *v, struct plan_step *s)
{
    static const char *const keys[] = { "shape", "mean", "amplitude", "period", "duty", NULL };
    int ch = rig_channel_at(L->y, k, L->rig, true);
    if (ch < 0 || !yexpect_map(L->y, v, "a waveform"))
        return;
    ymap_check_keys(L->y, v, keys, "a waveform");
    struct plan_target t = { .channel = ch, .line = ynode_line(k), .col = ynode_col(k), .duty = 0.5 };
    enum quantity q = L->rig->channels[ch].q;
    yaml_node_t *shape = ymap_get(L->y, v, "shape", NULL);
    const char *ss = ynode_str(shape);
    static const char *const shapes[] = { "sine", "square", "triangle", "pulse" };
    bool ok = false;
    for (int i = 0; ss && i < 4; i++)
        if (strcmp(ss, shapes[i]) == 0) {
            t.shape = (enum wave_shape)i;
            ok = true;
        }
    if (!ok) {
        yerr(L->y, shape ? shape : v, "waveform 'shape' must be sine, square, triangle or pulse, found %s",
             ss ? ss : "nothing");
        return;
    }
    yaml_node_t *mean = ymap_get(L->y, v, "mean", NULL);
    yaml_node_t *amp = ymap_get(L->y, v, "amplitude", NULL);
    yaml_node_t *per = ymap_get(L->y, v, "period", NULL);
    if (mean == NULL || amp == NULL || per == NULL) {
        yerr(L->y, v, "a waveform needs 'mean', 'amplitude' and 'period' (missing %s)",
             mean == NULL ? "'mean'" : amp == NULL ? "'amplitude'" : "'period'");
        return;
    }
    int64_t period_ns;
    if (!ynode_value(L->y, mean, q, "waveform mean", NULL, &t.mean) ||
        !ynode_value(L->y, amp, q, "waveform amplitude", NULL, &t.amplitude) ||
        !ynode_duration(L->y, per, "waveform period", 1, INT64_MAX, &period_ns))
        return;
    t.period_s = (double)period_ns / 1e9;
    if (t.amplitude < 0) {
        yerr(L->y, amp, "waveform amplitude must not be negative");
        return;
    }
    yaml_node_t *duty = ymap_get(L->y, v, "duty", NULL);
    if (duty != NULL) {
        double d;
        const char *ds = ynode_str(duty);
        if (ds && strchr(ds, '%') ? !ynode_value(L->y, duty, Q_PERCENT, "duty", NULL, &d)
                                  : !ynode_value(L->y, duty, Q_NONE, "duty", NULL, &d))
            return;
        if (ds && strchr(ds, '%'))
            d /= 100.0;
        if (d <= 0 || d >= 1) {
            yerr(L->y, duty, "duty must be between 0 and 100 %% (exclusive), found '%s'", ds);
            return;
        }
        t.duty = d;
        if (t.shape != WAVE_PULSE)
            ywarn(L->y, duty, "'duty' only applies to the pulse shape; ignored");
    }
    if (L->rig->channels[ch].integer && t.amplitude != 0 &&
        (t.shape == WAVE_SINE || t.shape == WAVE_TRIANGLE)) {
        yerr(L->y, shape, "a %s waveform on %s would pass through fractions, and it takes whole "
             "numbers only: use shape square or pulse, with whole levels", ss, L->rig->channels[ch].name);
        return;
    }
    if (L->rig->channels[ch].integer && t.mean != floor(t.mean)) {
        yerr(L->y, mean, "a waveform holds its mean (%g) on a pause and at its end, and %s takes "
             "whole numbers only", t.mean, L->rig->channels[ch].name);
        return;
    }
    if (!check_limits(L, mean, ch, t.mean - t.amplitude) || !check_limits(L, mean, ch, t.mean + t.amplitude))
        return;
    struct plan_target *nt = add_target(&s->targets, &s->n_targets);
    if (nt != NULL)
        *nt = t;
}

/* Parse update_rate: "10 Hz" or "10". */
static bool get_rate(struct loader *L, yaml_node_t *n, double *hz)
{
    const char *s = ynode_str(n);
    char buf[64];
    if (s == NULL || strlen(s) >= sizeof buf) {
        yerr(L->y, n, "update_rate must be a rate such as '10 Hz'");
        return false;
    }
    strcpy(buf, s);
    char *hzs = strstr(buf, "Hz");
    if (hzs != NULL && hzs[2] == '\0')
        *hzs = '\0';
    double v;
    char err[200];
    int col;
    if (unit_parse_value(buf, Q_NONE, &v, err, sizeof err, &col) < 0 || v <= 0 || v > 100) {
        yerr(L->y, n, "update_rate must be between 0 and 100 Hz, found '%s'", s);
        return false;
    }
    *hz = v;
    return true;
}

/* Parse "channel OP value unit". */
static void parse_condition(struct loader *L, yaml_node_t *n, struct plan_step *s)
{
    const char *text = ynode_str(n);
    if (text == NULL || *text == '\0') {
        yerr(L->y, n, "wait_until needs a condition such as 'incubator.temp >= 36.5 degC'");
        return;
    }
    s->cond_text = strdup(text);
    static const struct { const char *sym; enum cond_op op; } ops[] = {
        { "<=", OP_LE }, { ">=", OP_GE }, { "==", OP_EQ }, { "<", OP_LT }, { ">", OP_GT },
    };
    const char *at = NULL;
    size_t oplen = 0;
    for (size_t i = 0; i < sizeof ops / sizeof ops[0] && at == NULL; i++) {
        at = strstr(text, ops[i].sym);
        if (at) {
            s->op = ops[i].op;
            oplen = strlen(ops[i].sym);
        }
    }
    if (at == NULL) {
        yerr(L->y, n, "condition '%s' needs an operator: <, <=, >, >= or ==", text);
        return;
    }
    if (at > text && (at[-1] == '=' || at[-1] == '!' || at[-1] == '<' || at[-1] == '>')) {
        diag_error(L->y->diag, L->y->file, ynode_line(n), ynode_col(n) + (int)(at - text) - 1,
                   "unknown operator '%.2s' in condition (expected <, <=, >, >= or ==)", at - 1);
        return;
    }
    char chname[96];
    size_t len = (size_t)(at - text);
    while (len > 0 && text[len - 1] == ' ')
        len--;
    if (len == 0 || len >= sizeof chname) {
        yerr(L->y, n, "condition '%s' must start with a channel name", text);
        return;
    }
    memcpy(chname, text, len);
    chname[len] = '\0';
    int ch = rig_find_channel(L->rig, chname);
    if (ch < 0) {
        const char *sug = rig_suggest_channel(L->rig, chname);
        if (sug)
            yerr(L->y, n, "unknown channel '%s' in condition (did you mean '%s'?)", chname, sug);
        else
            yerr(L->y, n, "unknown channel '%s' in condition", chname);
        return;
    }
    if (!L->rig->channels[ch].readable) {
        yerr(L->y, n, "channel '%s' is not measured, so a condition on it can never be checked", chname);
        return;
    }
    s->cond_channel = ch;
    const char *val = at + oplen;
    char err[256];
    int col;
    if (unit_parse_value(val, L->rig->channels[ch].q, &s->cond_value, err, sizeof err, &col) < 0)
        diag_error(L->y->diag, L->y->file, ynode_line(n), ynode_col(n) + (int)(val - text) + col,
                   "%s", err);
}

/* Parse on_timeout. */
static void parse_on_timeout(struct loader *L, yaml_node_t *n, struct plan_step *s)
{
    const char *v = ynode_str(n);
    if (v && strcmp(v, "abort") == 0)
        s->on_timeout = TIMEOUT_ABORT;
    else if (v && strcmp(v, "continue") == 0)
        s->on_timeout = TIMEOUT_CONTINUE;
    else if (v && strcmp(v, "pause") == 0)
        s->on_timeout = TIMEOUT_PAUSE;
    else
        yerr(L->y, n, "on_timeout must be abort, continue or pause, found '%s'", v ? v : ynode_kind(n));
}

static void parse_steps(struct loader *L, yaml_node_t *seq, struct plan_step *parent, int depth);

/* Which step kind a mapping is, from its keys; -1 (reported) if none or several. */
static int step_kind_of(struct loader *L, yaml_node_t *e)
{
    static const char *const kinds[] = { "set", "ramp", "waveform", "wait_until", "prompt", "repeat" };
    int kind = -1;
    for (int i = 0; i < 6; i++) {
        yaml_node_t *key;
        if (ymap_get(L->y, e, kinds[i], &key) == NULL)
            continue;
        if (kind >= 0) {
            yerr(L->y, key, "a step has one kind, but this one has both '%s' and '%s'; split it into two steps",
                 kinds[kind], kinds[i]);
            return -1;
        }
        kind = i;
    }
    if (kind < 0)
        yerr(L->y, e, "a step needs one of: set, ramp, waveform, wait_until, prompt, repeat");
    return kind;
}

/* Refuse keys that belong to another step kind. */
static void refuse_keys(struct loader *L, yaml_node_t *e, const char *kind, const char *const bad[])
{
    for (size_t i = 0; bad[i] != NULL; i++) {
        yaml_node_t *key;
        if (ymap_get(L->y, e, bad[i], &key) != NULL)
            yerr(L->y, key, "'%s' does not apply to a %s step", bad[i], kind);
    }
}

/* A string node as text a run keeps whole: valid UTF-8, at most max bytes.
 * Reports and returns NULL otherwise. */
static const char *get_text(struct loader *L, yaml_node_t *n, const char *what, size_t max)
{
    const char *s = ynode_str(n);
    size_t len = strlen(s);
    if (!utf8_valid(s, len)) {
        yerr(L->y, n, "%s is not UTF-8 text (save the file as UTF-8)", what);
        return NULL;
    }
    if (len > max) {
        yerr(L->y, n, "%s is %zu bytes long; at most %zu bytes fit (%zu letters of plain ASCII, "
             "fewer with accents or other scripts): shorten it", what, len, max, max);
        return NULL;
    }
    return s;
}

/* Parse the kind-specific keys of one step. */
static void parse_step_body(struct loader *L, yaml_node_t *e, struct plan_step *s, int depth)
{
    yaml_node_t *n, *key;
    switch (s->kind) {
    case STEP_SET:
        refuse_keys(L, e, "set", (const char *const[]){ "over", "update_rate", "timeout", "on_timeout", "steps", NULL });
        parse_set_map(L, ymap_get(L->y, e, "set", NULL), "'set'", &s->targets, &s->n_targets);
        if ((n = ymap_get(L->y, e, "for", NULL)) == NULL)
            yerr(L->y, e, "a set step needs 'for' (how long to hold), e.g. 'for: 10 min'");
        else
            ynode_duration(L->y, n, "'for'", 1, INT64_MAX, &s->duration_ns);
        break;
    case STEP_RAMP:
        refuse_keys(L, e, "ramp", (const char *const[]){ "for", "timeout", "on_timeout", "steps", NULL });
        parse_ramp(L, ymap_get(L->y, e, "ramp", NULL), s);
        s->update_hz = PLAN_DEFAULT_RAMP_HZ;
        if ((n = ymap_get(L->y, e, "update_rate", NULL)) != NULL)
            get_rate(L, n, &s->update_hz);
        if ((n = ymap_get(L->y, e, "over", NULL)) == NULL)
            yerr(L->y, ymap_get(L->y, e, "ramp", &key) ? key : e,
                 "a ramp step needs 'over' (its duration), e.g. 'over: 6 h'");
        else
            ynode_duration(L->y, n, "'over'", 1, INT64_MAX, &s->duration_ns);
        break;
    case STEP_WAVEFORM:
        refuse_keys(L, e, "waveform", (const char *const[]){ "over", "timeout", "on_timeout", "steps", NULL });
        n = ymap_get(L->y, e, "waveform", NULL);
        if (yexpect_map(L->y, n, "'waveform'"))
            for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++)
                parse_wave_one(L, ydoc_node(L->y, p->key), ydoc_node(L->y, p->value), s);
        s->update_hz = PLAN_DEFAULT_WAVE_HZ;
        if ((n = ymap_get(L->y, e, "update_rate", NULL)) != NULL)
            get_rate(L, n, &s->update_hz);
        if ((n = ymap_get(L->y, e, "for", NULL)) == NULL)
            yerr(L->y, e, "a waveform step needs 'for' (its duration), e.g. 'for: 1 h'");
        else
            ynode_duration(L->y, n, "'for'", 1, INT64_MAX, &s->duration_ns);
        break;
    case STEP_WAIT:
    case STEP_PROMPT:
        refuse_keys(L, e, s->kind == STEP_WAIT ? "wait_until" : "prompt",
                    (const char *const[]){ "for", "over", "update_rate", "steps", NULL });
        if (s->kind == STEP_WAIT) {
            parse_condition(L, ymap_get(L->y, e, "wait_until", NULL), s);
        } else {
            n = ymap_get(L->y, e, "prompt", NULL);
            const char *text;
            if (yexpect_str(L->y, n, "'prompt' (the text shown to the operator)") &&
                (text = get_text(L, n, "the 'prompt' text", PLAN_MAX_PROMPT)) != NULL)
                s->prompt = strdup(text);
        }
        s->on_timeout = TIMEOUT_ABORT;
        if ((n = ymap_get(L->y, e, "timeout", NULL)) != NULL)
            ynode_duration(L->y, n, "'timeout'", 1, INT64_MAX, &s->timeout_ns);
        if ((n = ymap_get(L->y, e, "on_timeout", &key)) != NULL) {
            parse_on_timeout(L, n, s);
            if (s->timeout_ns == 0)
                ywarn(L->y, key, "'on_timeout' has no effect without 'timeout'");
        }
        s->open_ended = true;
        break;
    case STEP_REPEAT:
        refuse_keys(L, e, "repeat", (const char *const[]){ "for", "over", "update_rate", "timeout", "on_timeout", NULL });
        n = ymap_get(L->y, e, "repeat", NULL);
        long count = 0;
        if (ynode_int(L->y, n, 1, PLAN_MAX_REPEAT, &count))
            s->count = (uint32_t)count;
        if (depth + 1 >= PLAN_MAX_DEPTH) {
            yerr(L->y, e, "repeats nested too deeply (at most %d levels)", PLAN_MAX_DEPTH - 1);
            break;
        }
        n = ymap_get(L->y, e, "steps", &key);
        if (n == NULL)
            yerr(L->y, e, "a repeat step needs 'steps' (the steps to repeat)");
        else
            parse_steps(L, n, s, depth + 1);
        break;
    }
}

/* Parse one step entry into s. */
static void parse_step(struct loader *L, yaml_node_t *e, struct plan_step *s, int depth)
{
    s->line = ynode_line(e);
    s->col = ynode_col(e);
    s->cond_channel = -1;
    if (!yexpect_map(L->y, e, "a step"))
        return;
    ymap_check_keys(L->y, e, step_keys, "a step");
    yaml_node_t *name = ymap_get(L->y, e, "name", NULL);
    const char *text;
    if (name != NULL && yexpect_str(L->y, name, "the step 'name'") &&
        (text = get_text(L, name, "the step 'name'", PLAN_MAX_NAME)) != NULL)
        s->name = strdup(text);
    yaml_node_t *note = ymap_get(L->y, e, "note", NULL);
    if (note != NULL && yexpect_str(L->y, note, "the step 'note'") &&
        (text = get_text(L, note, "the step 'note'", PLAN_MAX_NOTE)) != NULL)
        s->note = strdup(text);
    int kind = step_kind_of(L, e);
    if (kind < 0)
        return;
    s->kind = (enum step_kind)kind;
    parse_step_body(L, e, s, depth);
    if (s->name == NULL) {
        char buf[64];
        snprintf(buf, sizeof buf, "%s (line %d)", plan_step_kind_name(s->kind), s->line);
        s->name = strdup(buf);
    }
}

/* Parse a list of steps into parent->steps and compute the parent's duration. */
static void parse_steps(struct loader *L, yaml_node_t *seq, struct plan_step *parent, int depth)
{
    if (!yexpect_seq(L->y, seq, "'steps'"))
        return;
    size_t n = yseq_len(seq);
    if (n == 0) {
        yerr(L->y, seq, "'steps' is empty; give at least one step");
        return;
    }
    L->n_steps += n;
    if (L->n_steps > PLAN_MAX_STEPS) {
        yerr(L->y, seq, "too many steps (at most %d in one protocol)", PLAN_MAX_STEPS);
        return;
    }
    parent->steps = calloc(n, sizeof *parent->steps);
    if (parent->steps == NULL)
        return;
    parent->n_steps = n;
    int64_t body = 0;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *e = yseq_item(L->y, seq, i);
        if (!ydoc_visit(L->y, e))
            continue;
        struct plan_step *s = &parent->steps[i];
        parse_step(L, e, s, depth);
        if (s->open_ended)
            parent->open_ended = true;
        if (__builtin_add_overflow(body, s->duration_ns, &body) || body > INT64_MAX / 4) {
            yerr(L->y, e, "the protocol is too long (its total duration overflows)");
            body = 0;
        }
    }
    int64_t total = 0;
    if (__builtin_mul_overflow(body, (int64_t)(parent->count ? parent->count : 1), &total) ||
        total > INT64_MAX / 4) {
        yerr(L->y, seq, "repeating these steps %u times makes the protocol too long (overflow)",
             parent->count);
        total = 0;
    }
    parent->duration_ns = total;
}

/* Parse one enum-valued top-level key; dflt if absent or wrong (reported). */
static int parse_policy(struct loader *L, yaml_node_t *root, const char *key,
                        const char *const names[], int dflt)
{
    yaml_node_t *n = ymap_get(L->y, root, key, NULL);
    int i = n != NULL ? ynode_choice(L->y, n, key, names) : -1;
    return i >= 0 ? i : dflt;
}

/* 'record:': 'all', or a list of channels (measured or not) recorded besides
 * those the protocol claims and the sensors it names. */
static void parse_record(struct loader *L, yaml_node_t *n)
{
    struct plan *p = L->plan;
    if (n->type == YAML_SCALAR_NODE && strcmp(ynode_str(n), "all") == 0)
        return;
    if (n->type != YAML_SEQUENCE_NODE) {
        yerr(L->y, n, "'record' takes 'all' or a list of channels (e.g. [chip1.pressure, "
             "incubator.temp]), not %s", ynode_kind(n));
        return;
    }
    size_t len = yseq_len(n);
    p->record = calloc(len + 1, sizeof *p->record);
    if (p->record == NULL) {
        yerr(L->y, n, "out of memory");
        return;
    }
    for (size_t i = 0; i < len; i++) {
        int ch = rig_channel_at(L->y, yseq_item(L->y, n, i), L->rig, false);
        if (ch >= 0)
            p->record[p->n_record++] = ch;
    }
}

/* Parse the top level of a protocol document. */
static void parse_protocol(struct loader *L)
{
    static const char *const keys[] = { "perfuse", "name", "description", "rig", "on_fault", "on_restart",
                                        "on_shutdown", "safe_state", "limits", "record", "steps", NULL };
    struct ydoc *y = L->y;
    struct plan *p = L->plan;
    yaml_node_t *root = ydoc_root(y);
    if (root == NULL || (root->type == YAML_SCALAR_NODE && root->data.scalar.length == 0)) {
        diag_error(y->diag, y->file, 1, 1, "empty protocol (expected 'perfuse: 1', 'name:' and 'steps:')");
        return;
    }
    if (!yexpect_map(y, root, "a protocol file"))
        return;
    ymap_check_keys(y, root, keys, "the protocol");
    yaml_node_t *ver = ymap_get(y, root, "perfuse", NULL);
    long v;
    if (ver == NULL)
        yerr(y, root, "missing 'perfuse: 1' (the format version) at the top of the protocol");
    else if (ynode_int(y, ver, 0, 1000, &v) && v != 1)
        yerr(y, ver, "unsupported format version %ld (this perfuse reads version 1)", v);
    yaml_node_t *name = ymap_get(y, root, "name", NULL);
    if (yexpect_str(y, name ? name : root, "'name' (the protocol's title)"))
        p->name = strdup(ynode_str(name));
    yaml_node_t *desc = ymap_get(y, root, "description", NULL);
    const char *text;
    if (desc != NULL && yexpect_str(y, desc, "'description'") &&
        (text = get_text(L, desc, "'description'", PLAN_MAX_DESCRIPTION)) != NULL)
        p->description = strdup(text);
    yaml_node_t *rig = ymap_get(y, root, "rig", NULL);
    if (rig != NULL && yexpect_str(y, rig, "'rig'")) {
        p->rig_name = strdup(ynode_str(rig));
        if (L->rig->name && strcmp(p->rig_name, L->rig->name) != 0)
            yerr(y, rig, "this protocol is for rig '%s', but the loaded rig is '%s'", p->rig_name,
                 L->rig->name);
    }
    p->on_fault = (enum fault_policy)parse_policy(L, root, "on_fault",
        (const char *const[]){ "pause", "continue", "abort", NULL }, ON_FAULT_PAUSE);
    p->on_restart = (enum restart_policy)parse_policy(L, root, "on_restart",
        (const char *const[]){ "resume", "safe-stop", NULL }, ON_RESTART_RESUME);
    p->on_shutdown = (enum shutdown_policy)parse_policy(L, root, "on_shutdown",
        (const char *const[]){ "safe-stop", "hold", NULL }, ON_SHUTDOWN_SAFE_STOP);
    yaml_node_t *safe = ymap_get(y, root, "safe_state", NULL);
    if (safe != NULL)
        parse_set_map(L, safe, "'safe_state'", &p->safe_state, &p->n_safe);
    yaml_node_t *limits = ymap_get(y, root, "limits", NULL);
    if (limits != NULL)
        rig_parse_limits(y, limits, L->rig, &p->limits, &p->n_limits);
    yaml_node_t *rec = ymap_get(y, root, "record", NULL);
    if (rec != NULL)
        parse_record(L, rec);
    yaml_node_t *steps = ymap_get(y, root, "steps", NULL);
    p->root.kind = STEP_REPEAT;
    p->root.count = 1;
    p->root.name = strdup("protocol");
    if (steps == NULL)
        yerr(y, root, "missing 'steps:' (the list of steps to run)");
    else
        parse_steps(L, steps, &p->root, 0);
    p->total_ns = p->root.duration_ns;
    p->open_ended = p->root.open_ended;
}

/* Load and validate a protocol against a rig. */
int plan_load(const char *path, const char *text, size_t len, const struct rig *rig,
              struct plan **out, struct diag *d)
{
    struct plan *p = calloc(1, sizeof *p);
    if (p == NULL)
        return -ENOMEM;
    p->path = strdup(path);
    p->text = strndup(text, len);
    struct ydoc y;
    struct loader L = { .y = &y, .rig = rig, .plan = p };
    int errors_before = d->errors;
    if (ydoc_load(&y, path, text, len, d) == 0)
        parse_protocol(&L);
    ydoc_free(&y);
    if (d->errors > errors_before || p->path == NULL || p->text == NULL) {
        plan_free(p);
        return -EINVAL;
    }
    *out = p;
    return 0;
}

/* Free a step's contents recursively. */
static void step_free(struct plan_step *s)
{
    for (size_t i = 0; i < s->n_steps; i++)
        step_free(&s->steps[i]);
    free(s->steps);
    free(s->targets);
    free(s->name);
    free(s->cond_text);
    free(s->prompt);
    free(s->note);
}

/* Free a plan. */
void plan_free(struct plan *p)
{
    if (p == NULL)
        return;
    step_free(&p->root);
    free(p->safe_state);
    free(p->limits);
    free(p->record);
    free(p->name);
    free(p->description);
    free(p->rig_name);
    free(p->path);
    free(p->text);
    free(p);
}

/* Waveform value of target t at t_s seconds into the step; phase starts at 0. */
double plan_wave_value(const struct plan_target *t, double t_s)
{
    double ph = fmod(t_s / t->period_s, 1.0);
    if (ph < 0)
        ph += 1.0;
    switch (t->shape) {
    case WAVE_SINE:
        return t->mean + t->amplitude * sin(2.0 * M_PI * ph);
    case WAVE_SQUARE:
        return t->mean + (ph < 0.5 ? t->amplitude : -t->amplitude);
    case WAVE_TRIANGLE: {
        /* Starts at the mean and rises, like the sine, so shapes are comparable. */
        double tri = ph < 0.25 ? 4 * ph : (ph < 0.75 ? 2 - 4 * ph : 4 * ph - 4);
        return t->mean + t->amplitude * tri;
    }
    case WAVE_PULSE:
        return t->mean + (ph < t->duty ? t->amplitude : -t->amplitude);
    }
    return t->mean;
}

/* Whether value satisfies op against ref. */
bool plan_cond_holds(enum cond_op op, double value, double ref)
{
    if (isnan(value))
        return false;
    switch (op) {
    case OP_LT: return value < ref;
    case OP_LE: return value <= ref;
    case OP_GT: return value > ref;
    case OP_GE: return value >= ref;
    case OP_EQ: return fabs(value - ref) <= 1e-9 * fmax(1.0, fabs(ref));
    }
    return false;
}

const char *plan_op_name(enum cond_op op)
{
    static const char *const names[] = { "<", "<=", ">", ">=", "==" };
    return names[op];
}

const char *plan_step_kind_name(enum step_kind k)
{
    static const char *const names[] = { "set", "ramp", "waveform", "wait_until", "prompt", "repeat" };
    return names[k];
}
