/*
 * Modbus device profiles: register maps loaded from YAML and validated with
 * positions. Every problem is reported, each at the node it is about, so a
 * technician fixes a profile in one round.
 */
#include "profile.h"
#include "base/yamldoc.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROFILE_MAX_BYTES (1 << 20)

static const char *const root_keys[] = { "profile", "description", "channels", NULL };
static const char *const reg_keys[] = { "table", "address", "type", "order", "scale", "offset",
                                        "quantity", "unit", "access", "range", "sample_hz",
                                        NULL };
static const char *const table_names[] = { "coil", "discrete", "input", "holding", NULL };
static const char *const type_names[] = { "u16", "i16", "u32", "i32", "f32", "bool", NULL };
static const char *const order_names[] = { "abcd", "cdab", "badc", "dcba", NULL };
static const char *const access_names[] = { "r", "w", "rw", NULL };
static const char *const quantity_names[] = { "flow", "pressure", "temperature", "volume",
                                              "length", "percentage", "pH", "concentration",
                                              "plain number", NULL };
static const char *const plain_units[] = { "port", "", NULL };

/* The name of a table. */
const char *profile_table_name(enum mb_table t)
{
    return t >= MB_COIL && t <= MB_HOLDING ? table_names[t] : "?";
}

/* "a, b, c or d", for messages. */
static void list_names(const char *const names[], char *buf, size_t len)
{
    size_t n = 0, used = 0;
    while (names[n] != NULL)
        n++;
    buf[0] = '\0';
    for (size_t i = 0; i < n && used < len; i++) {
        const char *sep = i == 0 ? "" : i + 1 == n ? " or " : ", ";
        used += (size_t)snprintf(buf + used, len - used, "%s%s", sep,
                                 names[i][0] ? names[i] : "\"\"");
    }
}

/* The name nearest to s, if close enough to be a typo; or NULL. */
static const char *nearest(const char *s, const char *const names[])
{
    const char *best = NULL;
    int best_d = 1000;
    for (size_t i = 0; names[i] != NULL; i++) {
        int d = unit_edit_distance(s, names[i]);
        if (d < best_d) {
            best_d = d;
            best = names[i];
        }
    }
    int max_d = strlen(s) <= 4 ? 1 : 2;
    return best_d <= max_d ? best : NULL;
}

/* The index of n's value in names; reports and returns -1 if it is not one of them. */
static int pick(struct ydoc *y, const yaml_node_t *n, const char *key, const char *const names[])
{
    const char *s = ynode_str(n);
    for (int i = 0; s != NULL && names[i] != NULL; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    char list[160];
    list_names(names, list, sizeof list);
    const char *sug = s ? nearest(s, names) : NULL;
    if (s == NULL)
        yerr(y, n, "'%s' must be %s, found %s", key, list, ynode_kind(n));
    else if (sug != NULL)
        yerr(y, n, "'%s' must be %s, found '%s' (did you mean '%s'?)", key, list, s, sug);
    else
        yerr(y, n, "'%s' must be %s, found '%s'", key, list, s);
    return -1;
}

/* Parse a number scalar; reports and returns false on error. */
static bool number(struct ydoc *y, const yaml_node_t *n, const char *what, double *out)
{
    const char *s = ynode_str(n);
    char err[200];
    int col;
    double v;
    if (s == NULL || unit_parse_value(s, Q_NONE, &v, err, sizeof err, &col) < 0 || !isfinite(v)) {
        if (s != NULL)
            yerr(y, n, "%s must be a number, found '%s'", what, s);
        else
            yerr(y, n, "%s must be a number, found %s", what, ynode_kind(n));
        return false;
    }
    *out = v;
    return true;
}

/* Report a key a channel must have. */
static void missing(struct ydoc *y, const yaml_node_t *name, const char *key, const char *hint)
{
    yerr(y, name, "channel '%s' needs '%s' (%s)", ynode_str(name), key, hint);
}

/* ------------------------------------------------------------------------ */
/* Where the value lives: table, address, type, order                       */
/* ------------------------------------------------------------------------ */

/* Parse the address of one channel. */
static void parse_address(struct ydoc *y, yaml_node_t *name, yaml_node_t *e, struct profile_reg *r)
{
    yaml_node_t *n = ymap_get(y, e, "address", NULL);
    const char *s = ynode_str(n);
    char *end = NULL;
    long addr = s ? strtol(s, &end, 10) : -1;
    if (n == NULL)
        missing(y, name, "address", "the 0-based register number as sent on the wire");
    else if (s == NULL || *s == '\0' || *end != '\0' || addr < 0 || addr > 65535)
        yerr(y, n, "'address' must be a whole number from 0 to 65535, found %s%s%s",
             s ? "'" : "", s ? s : ynode_kind(n), s ? "'" : "");
    else
        r->address = (int)addr;
}

/* Parse the table of one channel; false if it is unknown, so that checks
 * depending on it are skipped rather than piling up. */
static bool parse_table(struct ydoc *y, yaml_node_t *name, yaml_node_t *e, struct profile_reg *r)
{
    yaml_node_t *n = ymap_get(y, e, "table", NULL);
    int t = n ? pick(y, n, "table", table_names) : -1;
    if (n == NULL)
        missing(y, name, "table", "coil, discrete, input or holding");
    r->table = t < 0 ? MB_HOLDING : (enum mb_table)t;
    return t >= 0;
}

/* Parse the type of one channel; bool exactly for the bit tables. */
static void parse_type(struct ydoc *y, yaml_node_t *name, yaml_node_t *e, struct profile_reg *r,
                       bool table_known)
{
    bool bits = r->table == MB_COIL || r->table == MB_DISCRETE;
    yaml_node_t *n = ymap_get(y, e, "type", NULL);
    r->type = bits ? MB_BOOL : MB_U16;
    if (n == NULL) {
        if (!bits)
            missing(y, name, "type", "u16, i16, u32, i32 or f32");
        return;
    }
    int t = pick(y, n, "type", type_names);
    if (t < 0)
        return;
    r->type = (enum mb_type)t;
    if (!table_known)
        return;
    if (bits && r->type != MB_BOOL)
        yerr(y, n, "a %s holds one bit: type must be bool, found '%s'",
             r->table == MB_COIL ? "coil" : "discrete input", ynode_str(n));
    else if (!bits && r->type == MB_BOOL)
        yerr(y, n, "bool is for coils and discrete inputs; a%s register is u16, i16, u32, i32 "
             "or f32", r->table == MB_INPUT ? "n input" : " holding");
}

/* Parse the word order of one channel. */
static void parse_order(struct ydoc *y, yaml_node_t *e, struct profile_reg *r)
{
    yaml_node_t *n = ymap_get(y, e, "order", NULL);
    r->order = MB_ABCD;
    if (n == NULL)
        return;
    if (mb_type_regs(r->type) != 2) {
        yerr(y, n, "'order' applies only to 32-bit types (u32, i32, f32), not to %s",
             mb_type_name(r->type));
        return;
    }
    int o = pick(y, n, "order", order_names);
    if (o >= 0)
        r->order = (enum mb_order)o;
}

/* A 32-bit value needs two registers within the 16-bit address space. */
static void check_span(struct ydoc *y, yaml_node_t *e, const struct profile_reg *r)
{
    if (mb_type_regs(r->type) == 2 && r->address == 65535)
        yerr(y, ymap_get(y, e, "address", NULL),
             "a 32-bit value at address 65535 would run past the last register");
}

/* ------------------------------------------------------------------------ */
/* What the value means: quantity, unit, scale, access, range, rate         */
/* ------------------------------------------------------------------------ */

/* Parse the unit of a plain-number channel: "port" or "". */
static void parse_plain_unit(struct ydoc *y, yaml_node_t *n, struct profile_reg *r)
{
    r->unit_factor = 1.0;
    r->unit[0] = '\0';
    if (n == NULL)
        return;
    const char *s = ynode_str(n);
    const struct unit_def *u = s ? unit_lookup(s) : NULL;
    if (u != NULL) {
        yerr(y, n, "unit '%s' is a %s unit, but the quantity is a plain number (unit \"port\" "
             "or \"\"); set 'quantity: %s' to use it", s, quantity_name(u->q),
             quantity_name(u->q));
        return;
    }
    if (pick(y, n, "unit", plain_units) < 0)
        return;
    snprintf(r->unit, sizeof r->unit, "%s", s);
}

/* Parse the unit of a channel with a physical quantity. */
static void parse_unit(struct ydoc *y, yaml_node_t *name, yaml_node_t *e, struct profile_reg *r)
{
    yaml_node_t *n = ymap_get(y, e, "unit", NULL);
    if (r->q == Q_NONE) {
        parse_plain_unit(y, n, r);
        return;
    }
    r->unit_factor = 1.0;
    snprintf(r->unit, sizeof r->unit, "%s", quantity_unit(r->q));
    const char *s = ynode_str(n);
    if (n == NULL) {
        char hint[160];
        snprintf(hint, sizeof hint, "the unit of the scaled value, one of %s", unit_list(r->q));
        missing(y, name, "unit", hint);
        return;
    }
    const struct unit_def *u = s ? unit_lookup(s) : NULL;
    if (u != NULL && u->q == r->q) {
        r->unit_factor = u->factor;
        snprintf(r->unit, sizeof r->unit, "%s", s);
        return;
    }
    const char *sug = s ? unit_suggest(s, r->q) : NULL;
    if (u != NULL)
        yerr(y, n, "unit '%s' is a %s unit, not a %s unit (expected %s)", s,
             quantity_name(u->q), quantity_name(r->q), unit_list(r->q));
    else if (sug != NULL)
        yerr(y, n, "unknown unit '%s' for a %s (did you mean '%s'? expected %s)", s,
             quantity_name(r->q), sug, unit_list(r->q));
    else
        yerr(y, n, "unknown unit '%s' for a %s (expected %s)", s ? s : ynode_kind(n),
             quantity_name(r->q), unit_list(r->q));
}

/* Parse the quantity and unit of one channel. */
static void parse_quantity(struct ydoc *y, yaml_node_t *name, yaml_node_t *e, struct profile_reg *r)
{
    yaml_node_t *n = ymap_get(y, e, "quantity", NULL);
    r->q = Q_NONE;
    if (n == NULL) {
        missing(y, name, "quantity", "flow, pressure, temperature, volume, length, percentage, "
                "pH, concentration or plain number");
    } else if (pick(y, n, "quantity", quantity_names) >= 0) {
        r->q = (enum quantity)quantity_from_name(ynode_str(n));
    } else {
        return;     /* without a quantity its unit cannot be judged */
    }
    parse_unit(y, name, e, r);
}

/* Parse scale and offset. */
static void parse_scale(struct ydoc *y, yaml_node_t *e, struct profile_reg *r)
{
    yaml_node_t *n;
    r->scale = 1.0;
    r->offset = 0.0;
    if ((n = ymap_get(y, e, "scale", NULL)) != NULL && number(y, n, "'scale'", &r->scale) &&
        r->scale == 0) {
        yerr(y, n, "'scale' must not be 0 (value = raw * scale + offset)");
        r->scale = 1.0;
    }
    if ((n = ymap_get(y, e, "offset", NULL)) != NULL)
        number(y, n, "'offset'", &r->offset);
}

/* Parse the access of one channel; input registers and discrete inputs are read-only. */
static void parse_access(struct ydoc *y, yaml_node_t *e, struct profile_reg *r, bool table_known)
{
    yaml_node_t *n = ymap_get(y, e, "access", NULL);
    int a = n ? pick(y, n, "access", access_names) : 0;
    r->readable = a != 1;
    r->writable = a >= 1;
    if (table_known && r->writable && (r->table == MB_INPUT || r->table == MB_DISCRETE))
        yerr(y, n, "%s are read-only (access: r); a writable value is a %s",
             r->table == MB_INPUT ? "input registers" : "discrete inputs",
             r->table == MB_INPUT ? "holding register" : "coil");
}

/* Parse range: [min, max] in the channel's unit, kept in the canonical unit. */
static void parse_range(struct ydoc *y, yaml_node_t *e, struct profile_reg *r)
{
    yaml_node_t *n = ymap_get(y, e, "range", NULL);
    r->min = r->max = NAN;
    if (n == NULL)
        return;
    if (n->type != YAML_SEQUENCE_NODE || yseq_len(n) != 2) {
        if (n->type == YAML_SEQUENCE_NODE)
            yerr(y, n, "'range' must be [min, max], found a list of %zu", yseq_len(n));
        else
            yerr(y, n, "'range' must be [min, max], found %s", ynode_kind(n));
        return;
    }
    double lo, hi;
    /* Parse both bounds before giving up, so both errors are reported. */
    bool lo_ok = number(y, yseq_item(y, n, 0), "range min", &lo);
    bool hi_ok = number(y, yseq_item(y, n, 1), "range max", &hi);
    if (!lo_ok || !hi_ok)
        return;
    if (!(lo < hi)) {
        yerr(y, n, "range min must be below max, found [%g, %g]", lo, hi);
        return;
    }
    r->min = lo * r->unit_factor;
    r->max = hi * r->unit_factor;
}

/* Parse the default sampling rate. */
static void parse_rate(struct ydoc *y, yaml_node_t *e, struct profile_reg *r)
{
    yaml_node_t *n = ymap_get(y, e, "sample_hz", NULL);
    r->sample_hz = r->readable ? 1.0 : 0.0;
    if (n == NULL || !number(y, n, "'sample_hz'", &r->sample_hz))
        return;
    if (r->sample_hz < 0 || r->sample_hz > 1000)
        yerr(y, n, "'sample_hz' must be 0 to 1000, found %g", r->sample_hz);
    else if (!r->readable && r->sample_hz > 0)
        yerr(y, n, "a write-only channel is not sampled; remove 'sample_hz' or use access: rw");
    if (!r->readable)
        r->sample_hz = 0;
}

/* ------------------------------------------------------------------------ */
/* Channels and file                                                        */
/* ------------------------------------------------------------------------ */

/* Whether a channel name is acceptable and new; reports otherwise. */
static bool check_channel_name(struct ydoc *y, yaml_node_t *k, const struct profile *p)
{
    const char *name = ynode_str(k);
    if (name == NULL || *name == '\0' || strlen(name) >= sizeof p->regs[0].name ||
        strpbrk(name, ". ") != NULL) {
        yerr(y, k, "a channel name must be a word of 1 to 31 characters without '.' or "
             "spaces, found %s%s%s", name ? "'" : "", name ? name : ynode_kind(k),
             name ? "'" : "");
        return false;
    }
    for (size_t i = 0; i < p->n_regs; i++)
        if (strcmp(p->regs[i].name, name) == 0) {
            yerr(y, k, "duplicate channel '%s'", name);
            return false;
        }
    return true;
}

/* Parse one channel entry. */
static void parse_channel(struct ydoc *y, yaml_node_t *k, yaml_node_t *v, struct profile_reg *r)
{
    memset(r, 0, sizeof *r);
    snprintf(r->name, sizeof r->name, "%s", ynode_str(k));
    ymap_check_keys(y, v, reg_keys, "a profile channel");
    bool table_known = parse_table(y, k, v, r);
    parse_address(y, k, v, r);
    parse_type(y, k, v, r, table_known);
    parse_order(y, v, r);
    check_span(y, v, r);
    parse_quantity(y, k, v, r);
    parse_scale(y, v, r);
    parse_access(y, v, r, table_known);
    parse_range(y, v, r);
    parse_rate(y, v, r);
}

/* Parse the channels mapping of a profile. */
static void parse_channels(struct ydoc *y, yaml_node_t *key, yaml_node_t *map, struct profile *p)
{
    if (!yexpect_map(y, map, "'channels'"))
        return;
    if (map->data.mapping.pairs.top == map->data.mapping.pairs.start) {
        yerr(y, key, "'channels' is empty; a profile describes at least one channel");
        return;
    }
    for (yaml_node_pair_t *pr = map->data.mapping.pairs.start; pr < map->data.mapping.pairs.top;
         pr++) {
        yaml_node_t *k = ydoc_node(y, pr->key), *v = ydoc_node(y, pr->value);
        if (!check_channel_name(y, k, p))
            continue;
        if (p->n_regs == DRIVER_MAX_CHANNELS) {
            yerr(y, k, "too many channels (at most %d per device)", DRIVER_MAX_CHANNELS);
            return;
        }
        char what[64];
        snprintf(what, sizeof what, "channel '%s'", ynode_str(k));
        if (yexpect_map(y, v, what))
            parse_channel(y, k, v, &p->regs[p->n_regs++]);
    }
}

/* Parse the top level of a profile document. */
static void parse_root(struct ydoc *y, const char *path, struct profile *p)
{
    yaml_node_t *root = ydoc_root(y);
    if (root == NULL) {
        diag_error(y->diag, path, 1, 1, "empty profile (expected 'profile:' and 'channels:')");
        return;
    }
    if (!yexpect_map(y, root, "a profile"))
        return;
    ymap_check_keys(y, root, root_keys, "a profile");
    yaml_node_t *n = ymap_get(y, root, "profile", NULL);
    if (n != NULL && yexpect_str(y, n, "'profile' (the profile's name)"))
        p->name = strdup(ynode_str(n));
    n = ymap_get(y, root, "description", NULL);
    if (n != NULL)
        yexpect_str(y, n, "'description'");
    yaml_node_t *key;
    n = ymap_get(y, root, "channels", &key);
    if (n == NULL)
        yerr(y, root, "a profile needs 'channels:' (one entry per channel)");
    else
        parse_channels(y, key, n, p);
}

/* Load and validate a profile. */
int profile_load(const char *path, struct profile **out, struct diag *d)
{
    char *text;
    size_t len;
    int rc = read_file_text(path, PROFILE_MAX_BYTES, &text, &len);
    if (rc < 0) {
        diag_error(d, path, 0, 0, "cannot read the profile: %s",
                   rc == -EINVAL ? "not a regular file" : strerror(-rc));
        return rc;
    }
    struct profile *p = calloc(1, sizeof *p);
    if (p == NULL) {
        free(text);
        diag_error(d, path, 0, 0, "out of memory");
        return -ENOMEM;
    }
    int errors = d->errors;
    struct ydoc y;
    if (ydoc_load(&y, path, text, len, d) == 0)
        parse_root(&y, path, p);
    ydoc_free(&y);
    free(text);
    if (p->name == NULL)
        p->name = strdup(path);
    if (d->errors > errors || p->name == NULL) {
        profile_free(p);
        return -EINVAL;
    }
    *out = p;
    return 0;
}

/* Free a profile. */
void profile_free(struct profile *p)
{
    if (p == NULL)
        return;
    free(p->name);
    free(p);
}
