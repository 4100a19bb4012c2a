/* Modbus device profiles: register maps loaded from YAML, validated with positions. */
#include "profile.h"
#include "yamldoc.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const reg_keys[] = { "table", "address", "type", "order", "scale", "offset",
                                        "quantity", "unit", "access", "range", "sample_hz", NULL };

/* Parse a number scalar; reports and returns false on error. */
static bool num(struct ydoc *y, yaml_node_t *n, const char *what, double *out)
{
    const char *s = ynode_str(n);
    char err[200];
    int col;
    if (s == NULL || unit_parse_value(s, Q_NONE, out, err, sizeof err, &col) < 0) {
        yerr(y, n, "%s must be a number, found %s", what, s ? s : ynode_kind(n));
        return false;
    }
    return true;
}

/* Parse the table, type and order of one register. */
static void parse_encoding(struct ydoc *y, yaml_node_t *e, struct profile_reg *r)
{
    static const char *const tables[] = { "coil", "discrete", "input", "holding" };
    yaml_node_t *n = ymap_get(y, e, "table", NULL);
    const char *s = ynode_str(n);
    int t = -1;
    for (int i = 0; s && i < 4; i++)
        if (strcmp(s, tables[i]) == 0)
            t = i;
    if (t < 0)
        yerr(y, n ? n : e, "'table' must be coil, discrete, input or holding, found %s", s ? s : "nothing");
    r->table = t < 0 ? MB_INPUT : (enum mb_table)t;
    long addr;
    n = ymap_get(y, e, "address", NULL);
    if (n == NULL)
        yerr(y, e, "a register needs 'address' (0-based, as sent on the wire)");
    else if (ynode_int(y, n, 0, 65535, &addr))
        r->address = (int)addr;
    n = ymap_get(y, e, "type", NULL);
    s = ynode_str(n);
    bool bits = r->table == MB_COIL || r->table == MB_DISCRETE;
    r->type = bits ? MB_BOOL : MB_U16;
    if (n != NULL && (s == NULL || mb_type_parse(s, &r->type) < 0))
        yerr(y, n, "'type' must be u16, i16, u32, i32, f32 or bool, found %s", s ? s : ynode_kind(n));
    else if (bits != (r->type == MB_BOOL))
        yerr(y, n ? n : e, bits ? "coils and discrete inputs are type bool" :
             "bool is only for coils and discrete inputs; registers are u16, i16, u32, i32 or f32");
    n = ymap_get(y, e, "order", NULL);
    r->order = MB_ABCD;
    if (n != NULL) {
        s = ynode_str(n);
        if (s == NULL || mb_order_parse(s, &r->order) < 0)
            yerr(y, n, "'order' must be abcd, cdab, badc or dcba, found %s", s ? s : ynode_kind(n));
        else if (mb_type_regs(r->type) != 2)
            yerr(y, n, "'order' applies only to 32-bit types (u32, i32, f32)");
    }
}

/* Parse the quantity, unit, scale, access and range of one register. */
static void parse_meaning(struct ydoc *y, yaml_node_t *e, struct profile_reg *r)
{
    yaml_node_t *n = ymap_get(y, e, "quantity", NULL);
    const char *s = ynode_str(n);
    int q = s ? quantity_from_name(s) : -1;
    if (n == NULL)
        q = Q_NONE;
    else if (q < 0)
        yerr(y, n, "unknown quantity '%s' (expected flow, pressure, temperature, volume, length, "
             "percentage, pH or plain number)", s ? s : "?");
    r->q = q < 0 ? Q_NONE : (enum quantity)q;
    n = ymap_get(y, e, "unit", NULL);
    s = ynode_str(n);
    r->unit_factor = 1.0;
    snprintf(r->unit, sizeof r->unit, "%s", quantity_unit(r->q));
    if (s != NULL && r->q != Q_NONE) {
        const struct unit_def *u = unit_lookup(s);
        if (u == NULL || u->q != r->q) {
            const char *sug = unit_suggest(s, r->q);
            yerr(y, n, "unit '%s' is not a %s unit (expected %s)%s%s%s", s, quantity_name(r->q),
                 unit_list(r->q), sug ? "; did you mean '" : "", sug ? sug : "", sug ? "'?" : "");
        } else {
            r->unit_factor = u->factor;
        }
    } else if (s != NULL) {
        snprintf(r->unit, sizeof r->unit, "%s", s);
    }
    r->scale = 1.0;
    r->offset = 0.0;
    if ((n = ymap_get(y, e, "scale", NULL)) != NULL && num(y, n, "'scale'", &r->scale) && r->scale == 0)
        yerr(y, n, "'scale' must not be 0");
    if ((n = ymap_get(y, e, "offset", NULL)) != NULL)
        num(y, n, "'offset'", &r->offset);
    n = ymap_get(y, e, "access", NULL);
    s = ynode_str(n);
    r->readable = s == NULL || strchr(s, 'r') != NULL;
    r->writable = s != NULL && strchr(s, 'w') != NULL;
    if (s != NULL && strcmp(s, "r") && strcmp(s, "w") && strcmp(s, "rw"))
        yerr(y, n, "'access' must be r, w or rw, found '%s'", s);
    else if (r->writable && (r->table == MB_INPUT || r->table == MB_DISCRETE))
        yerr(y, n, "input registers and discrete inputs are read-only; use a holding register or coil");
    r->min = r->max = NAN;
    if ((n = ymap_get(y, e, "range", NULL)) != NULL) {
        if (n->type != YAML_SEQUENCE_NODE || yseq_len(n) != 2) {
            yerr(y, n, "'range' must be [min, max]");
        } else if (num(y, yseq_item(y, n, 0), "range min", &r->min) &&
                   num(y, yseq_item(y, n, 1), "range max", &r->max)) {
            if (r->min >= r->max)
                yerr(y, n, "range min must be below max");
            r->min *= r->unit_factor;
            r->max *= r->unit_factor;
        }
    }
    r->sample_hz = r->readable ? 1.0 : 0;
    if ((n = ymap_get(y, e, "sample_hz", NULL)) != NULL && num(y, n, "'sample_hz'", &r->sample_hz) &&
        (r->sample_hz < 0 || r->sample_hz > 1000))
        yerr(y, n, "'sample_hz' must be 0 to 1000");
}

/* Parse the channels mapping of a profile. */
static void parse_channels(struct ydoc *y, yaml_node_t *map, struct profile *p)
{
    if (!yexpect_map(y, map, "'channels'"))
        return;
    for (yaml_node_pair_t *pr = map->data.mapping.pairs.start; pr < map->data.mapping.pairs.top; pr++) {
        yaml_node_t *k = ydoc_node(y, pr->key), *v = ydoc_node(y, pr->value);
        const char *name = ynode_str(k);
        if (name == NULL || *name == '\0' || strlen(name) >= 32 || strchr(name, '.')) {
            yerr(y, k, "a channel name must be a word of at most 31 characters without '.'");
            continue;
        }
        if (p->n_regs == DRIVER_MAX_CHANNELS) {
            yerr(y, k, "too many channels (at most %d per device)", DRIVER_MAX_CHANNELS);
            return;
        }
        if (!yexpect_map(y, v, "a channel"))
            continue;
        ymap_check_keys(y, v, reg_keys, "a profile channel");
        struct profile_reg *r = &p->regs[p->n_regs++];
        memset(r, 0, sizeof *r);
        snprintf(r->name, sizeof r->name, "%s", name);
        parse_encoding(y, v, r);
        parse_meaning(y, v, r);
    }
}

/* Load and validate a profile. */
int profile_load(const char *path, struct profile **out, struct diag *d)
{
    char *text;
    size_t len;
    int rc = read_file_text(path, 1 << 20, &text, &len);
    if (rc < 0) {
        diag_error(d, path, 0, 0, "cannot read profile: %s", strerror(-rc));
        return rc;
    }
    struct profile *p = calloc(1, sizeof *p);
    struct ydoc y;
    int errors = d->errors;
    if (p != NULL && ydoc_load(&y, path, text, len, d) == 0) {
        static const char *const keys[] = { "profile", "description", "channels", NULL };
        yaml_node_t *root = ydoc_root(&y);
        if (root == NULL)
            diag_error(d, path, 1, 1, "empty profile (expected 'profile:' and 'channels:')");
        else if (yexpect_map(&y, root, "a profile")) {
            ymap_check_keys(&y, root, keys, "a profile");
            yaml_node_t *name = ymap_get(&y, root, "profile", NULL);
            p->name = strdup(name && ynode_str(name) ? ynode_str(name) : path);
            yaml_node_t *ch = ymap_get(&y, root, "channels", NULL);
            if (ch == NULL)
                yerr(&y, root, "a profile needs 'channels:'");
            else
                parse_channels(&y, ch, p);
        }
    }
    ydoc_free(&y);
    free(text);
    if (p == NULL || d->errors > errors) {
        profile_free(p);
        return -EINVAL;
    }
    *out = p;
    return 0;
}

void profile_free(struct profile *p)
{
    if (p == NULL)
        return;
    free(p->name);
    free(p);
}
