/* YAML documents with positions: typed accessors that report where and what. */
#include "yamldoc.h"
#include "units.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Refuse nesting deeper than YDOC_MAX_DEPTH before building the document:
 * libyaml's cost grows with the square of the depth (60 KB of '[' took
 * seconds), and no rig or protocol needs more than a few levels. Only the
 * events up to the first too-deep one are parsed. */
static int check_depth(const char *file, const char *text, size_t len, struct diag *d)
{
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return 0;   /* the load reports it */
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    int depth = 0, rc = 0;
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev))
            break;  /* a syntax error: the load reports it with its position */
        yaml_event_type_t t = ev.type;
        if (t == YAML_SEQUENCE_START_EVENT || t == YAML_MAPPING_START_EVENT) {
            if (++depth > YDOC_MAX_DEPTH) {
                diag_error(d, file, (int)ev.start_mark.line + 1, (int)ev.start_mark.column + 1,
                           "nested more than %d levels deep (lists and mappings inside each "
                           "other); flatten the file", YDOC_MAX_DEPTH);
                rc = -EINVAL;
            }
        } else if (t == YAML_SEQUENCE_END_EVENT || t == YAML_MAPPING_END_EVENT) {
            depth--;
        }
        yaml_event_delete(&ev);
        if (rc < 0 || t == YAML_STREAM_END_EVENT)
            break;
    }
    yaml_parser_delete(&parser);
    return rc;
}

/* Refuse every node that more than one place refers to (a YAML alias): aliases
 * hide what a file does, and one map aliased in every step multiplies the
 * work and the messages. Linear in the document. */
static void check_aliases(struct ydoc *y)
{
    unsigned char *refs = calloc(y->n_nodes + 1, 1);
    if (refs == NULL)
        return;
    for (yaml_node_t *n = y->doc.nodes.start; n < y->doc.nodes.top; n++) {
        yaml_node_item_t *items = NULL, *items_end = NULL;
        if (n->type == YAML_SEQUENCE_NODE) {
            items = n->data.sequence.items.start;
            items_end = n->data.sequence.items.top;
        }
        for (yaml_node_item_t *i = items; i && i < items_end; i++)
            if (*i >= 1 && (size_t)*i <= y->n_nodes && refs[*i - 1] < 2)
                refs[*i - 1]++;
        if (n->type != YAML_MAPPING_NODE)
            continue;
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
            if (p->key >= 1 && (size_t)p->key <= y->n_nodes && refs[p->key - 1] < 2)
                refs[p->key - 1]++;
            if (p->value >= 1 && (size_t)p->value <= y->n_nodes && refs[p->value - 1] < 2)
                refs[p->value - 1]++;
        }
    }
    for (size_t i = 0; i < y->n_nodes; i++)
        if (refs[i] > 1)
            yerr(y, &y->doc.nodes.start[i], "YAML aliases (*name) are not supported here; write the value out");
    free(refs);
}

/* The byte offset in text of libyaml mark m. Its index counts characters,
 * not bytes: go by its line, then its column in characters. */
static size_t mark_offset(const char *text, size_t len, yaml_mark_t m)
{
    size_t off = 0;
    for (size_t line = 0; line < m.line && off < len; off++)
        if (text[off] == '\n')
            line++;
    for (size_t col = 0; col < m.column && off < len; col++) {
        off++;
        while (off < len && ((unsigned char)text[off] & 0xc0) == 0x80)
            off++;
    }
    return off;
}

/* A libyaml error in plain words, at its line and column: a tab where
 * indentation goes is the commonest, and libyaml's words for it ("found
 * character that cannot start any token") say nothing to a technician. A
 * reader error (bad UTF-8, a control character) has its position as a byte
 * offset only: it is turned into line and column here. */
static void syntax_error(struct diag *d, const char *file, const char *text, size_t len,
                         const yaml_parser_t *parser)
{
    yaml_mark_t m = parser->problem_mark;
    const char *problem = parser->problem ? parser->problem : "syntax error";
    int line = (int)m.line + 1, col = (int)m.column + 1;
    if (parser->error == YAML_READER_ERROR) {
        size_t off = parser->problem_offset < len ? parser->problem_offset : len;
        line = 1;
        col = 1;
        for (size_t i = 0; i < off; i++) {
            if (text[i] == '\n') {
                line++;
                col = 1;
            } else if (((unsigned char)text[i] & 0xc0) != 0x80) {
                col++;
            }
        }
        diag_error(d, file, line, col, "the text cannot be read here: %s (byte 0x%02x); save the "
                   "file as UTF-8 text", problem, parser->problem_value >= 0 ?
                   (unsigned)parser->problem_value & 0xff : 0u);
        return;
    }
    /* The character at the mark: a tab gets its own message. */
    size_t off = mark_offset(text, len, m);
    if (off < len && text[off] == '\t') {
        diag_error(d, file, line, col, "a tab character: tabs are not allowed for indentation in "
                   "YAML; use spaces");
        return;
    }
    if (parser->context != NULL)
        diag_error(d, file, line, col, "YAML syntax: %s %s", problem, parser->context);
    else
        diag_error(d, file, line, col, "YAML syntax: %s", problem);
}

/* Parse text as one YAML document, reporting syntax errors with position. */
int ydoc_load(struct ydoc *y, const char *file, const char *text, size_t len, struct diag *d)
{
    memset(y, 0, sizeof *y);
    y->file = file;
    y->diag = d;
    y->text = text;
    y->len = len;
    if (memchr(text, '\0', len) != NULL) {
        const char *nul = memchr(text, '\0', len);
        int line = 1, col = 1;
        for (const char *p = text; p < nul; p++) {
            if (*p == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
        diag_error(d, file, line, col, "binary data (a NUL byte) in a text file; is this the right file?");
        return -EINVAL;
    }
    if (check_depth(file, text, len, d) < 0)
        return -EINVAL;
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        diag_error(d, file, 0, 0, "out of memory");
        return -ENOMEM;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    int ok = yaml_parser_load(&parser, &y->doc);
    if (!ok) {
        syntax_error(d, file, text, len, &parser);
        yaml_parser_delete(&parser);
        return -EINVAL;
    }
    y->loaded = true;
    /* A second document in the same file would be silently ignored: refuse it. */
    yaml_document_t extra;
    if (yaml_parser_load(&parser, &extra)) {
        yaml_node_t *r = yaml_document_get_root_node(&extra);
        if (r != NULL)
            diag_error(d, file, (int)r->start_mark.line + 1, (int)r->start_mark.column + 1,
                       "a second YAML document ('---'); put everything in one document");
        yaml_document_delete(&extra);
    } else if (parser.error != YAML_NO_ERROR) {
        syntax_error(d, file, text, len, &parser);
    }
    yaml_parser_delete(&parser);
    y->n_nodes = (size_t)(y->doc.nodes.top - y->doc.nodes.start);
    y->seen = calloc(y->n_nodes + 1, 1);
    if (y->seen == NULL)
        return -ENOMEM;
    check_aliases(y);
    return d->errors ? -EINVAL : 0;
}

/* Free the document. */
void ydoc_free(struct ydoc *y)
{
    if (y->loaded)
        yaml_document_delete(&y->doc);
    free(y->seen);
    y->loaded = false;
    y->seen = NULL;
}

/* The root node, or NULL for an empty document. */
yaml_node_t *ydoc_root(struct ydoc *y)
{
    return y->loaded ? yaml_document_get_root_node(&y->doc) : NULL;
}

/* The node with this document index. */
yaml_node_t *ydoc_node(struct ydoc *y, int index)
{
    return yaml_document_get_node(&y->doc, index);
}

int ynode_line(const yaml_node_t *n)
{
    return n ? (int)n->start_mark.line + 1 : 0;
}

int ynode_col(const yaml_node_t *n)
{
    return n ? (int)n->start_mark.column + 1 : 0;
}

/* The scalar text of n, or NULL. */
const char *ynode_str(const yaml_node_t *n)
{
    if (n == NULL || n->type != YAML_SCALAR_NODE)
        return NULL;
    return (const char *)n->data.scalar.value;
}

/* Name of the node's kind for messages. */
const char *ynode_kind(const yaml_node_t *n)
{
    if (n == NULL)
        return "nothing";
    switch (n->type) {
    case YAML_MAPPING_NODE: return "a mapping (key: value)";
    case YAML_SEQUENCE_NODE: return "a list";
    case YAML_SCALAR_NODE:
        return n->data.scalar.length == 0 ? "an empty value" : "text";
    default: return "nothing";
    }
}

/* Report an error at node n. */
void yerr(struct ydoc *y, const yaml_node_t *n, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    diag_error(y->diag, y->file, ynode_line(n), ynode_col(n), "%s", buf);
}

/* Report a warning at node n. */
void ywarn(struct ydoc *y, const yaml_node_t *n, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    diag_warn(y->diag, y->file, ynode_line(n), ynode_col(n), "%s", buf);
}

/* Mark n visited; refuse a node reached twice (a YAML alias). */
bool ydoc_visit(struct ydoc *y, const yaml_node_t *n)
{
    size_t i = (size_t)(n - y->doc.nodes.start);
    if (i >= y->n_nodes)
        return false;
    if (y->seen[i]) {
        yerr(y, n, "YAML aliases (*name) are not supported here; write the value out");
        return false;
    }
    y->seen[i] = 1;
    return true;
}

/* Require n to be a mapping. */
bool yexpect_map(struct ydoc *y, const yaml_node_t *n, const char *what)
{
    if (n != NULL && n->type == YAML_MAPPING_NODE)
        return true;
    yerr(y, n, "%s must be a mapping (key: value), found %s", what, ynode_kind(n));
    return false;
}

/* Require n to be a list. */
bool yexpect_seq(struct ydoc *y, const yaml_node_t *n, const char *what)
{
    if (n != NULL && n->type == YAML_SEQUENCE_NODE)
        return true;
    yerr(y, n, "%s must be a list, found %s", what, ynode_kind(n));
    return false;
}

/* Require n to be a non-empty scalar. */
bool yexpect_str(struct ydoc *y, const yaml_node_t *n, const char *what)
{
    if (n != NULL && n->type == YAML_SCALAR_NODE && n->data.scalar.length > 0)
        return true;
    yerr(y, n, "%s must be a value, found %s", what, ynode_kind(n));
    return false;
}

/* The value of key in map, or NULL. */
yaml_node_t *ymap_get(struct ydoc *y, yaml_node_t *map, const char *key, yaml_node_t **key_out)
{
    if (key_out)
        *key_out = NULL;
    if (map == NULL || map->type != YAML_MAPPING_NODE)
        return NULL;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = ydoc_node(y, p->key);
        const char *ks = ynode_str(k);
        if (ks != NULL && strcmp(ks, key) == 0) {
            if (key_out)
                *key_out = k;
            return ydoc_node(y, p->value);
        }
    }
    return NULL;
}

/* The allowed key nearest to key, if close enough to be a typo. */
static const char *nearest_key(const char *key, const char *const allowed[])
{
    const char *best = NULL;
    int best_d = 1000;
    for (size_t i = 0; allowed[i] != NULL; i++) {
        int d = unit_edit_distance(key, allowed[i]);
        if (d < best_d) {
            best_d = d;
            best = allowed[i];
        }
    }
    size_t len = strlen(key);
    int max_d = len <= 4 ? 1 : (len <= 8 ? 2 : 3);
    return best_d <= max_d ? best : NULL;
}

/* Report unknown and duplicate keys of map. */
int ymap_check_keys(struct ydoc *y, yaml_node_t *map, const char *const allowed[],
                    const char *context)
{
    int bad = 0;
    if (map == NULL || map->type != YAML_MAPPING_NODE)
        return 0;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = ydoc_node(y, p->key);
        const char *ks = ynode_str(k);
        if (ks == NULL) {
            yerr(y, k, "a key must be a plain name, found %s", ynode_kind(k));
            bad++;
            continue;
        }
        for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++) {
            const char *qs = ynode_str(ydoc_node(y, q->key));
            if (qs != NULL && strcmp(qs, ks) == 0) {
                yerr(y, k, "duplicate key '%s' (first given at line %d)", ks,
                     ynode_line(ydoc_node(y, q->key)));
                bad++;
                break;
            }
        }
        bool known = false;
        for (size_t i = 0; allowed[i] != NULL; i++)
            if (strcmp(allowed[i], ks) == 0)
                known = true;
        if (known)
            continue;
        bad++;
        const char *s = nearest_key(ks, allowed);
        char list[400] = "";
        for (size_t i = 0; allowed[i] != NULL; i++) {
            size_t used = strlen(list);
            snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", allowed[i]);
        }
        if (s != NULL)
            yerr(y, k, "unknown key '%s' in %s (did you mean '%s'?)", ks, context, s);
        else
            yerr(y, k, "unknown key '%s' in %s (expected one of: %s)", ks, context, list);
    }
    return bad;
}

/* The key whose value is node n in some mapping of the document, or NULL. */
static const char *key_of(struct ydoc *y, const yaml_node_t *n)
{
    if (!y->loaded || n == NULL)
        return NULL;
    for (yaml_node_t *m = y->doc.nodes.start; m < y->doc.nodes.top; m++) {
        if (m->type != YAML_MAPPING_NODE)
            continue;
        for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++)
            if (yaml_document_get_node(&y->doc, p->value) == n)
                return ynode_str(yaml_document_get_node(&y->doc, p->key));
    }
    return NULL;
}

/* Parse a scalar as a whole number in [min, max]. */
bool ynode_int(struct ydoc *y, const yaml_node_t *n, long min, long max, long *out)
{
    const char *s = ynode_str(n);
    if (s == NULL || *s == '\0') {
        yerr(y, n, "expected a whole number, found %s", ynode_kind(n));
        return false;
    }
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*end != '\0') {
        yerr(y, n, "expected a whole number, found '%s'", s);
        return false;
    }
    if (errno == ERANGE || v < min || v > max) {
        const char *key = key_of(y, n);
        if (key != NULL)
            yerr(y, n, "%s: %s is out of range (%s must be from %ld to %ld)", key, s, key, min, max);
        else
            yerr(y, n, "%s is out of range (expected %ld to %ld)", s, min, max);
        return false;
    }
    *out = v;
    return true;
}

/* A number cut at a decimal comma inside { }: "{pump1: 1,5 uL/min}" reads as
 * pump1: 1 and a key "5 uL/min". If the text right after plain scalar n is a
 * comma and digits, say so in err with the value meant; true if it did. */
static bool flow_comma(struct ydoc *y, const yaml_node_t *n, char *err, size_t errlen)
{
    const char *s = ynode_str(n);
    size_t end = y->text != NULL ? mark_offset(y->text, y->len, n->end_mark) : 0;
    if (y->text == NULL || s == NULL || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE ||
        end + 1 >= y->len || y->text[end] != ',' || !isdigit((unsigned char)y->text[end + 1]))
        return false;
    size_t k = end + 1;
    while (k < y->len && y->text[k] != ',' && y->text[k] != '}' && y->text[k] != ']' && y->text[k] != '\n')
        k++;
    int more = (int)(k - end - 1);
    snprintf(err, errlen, "'%s,%.*s' has a decimal comma, and inside { } a comma separates entries: "
             "did you mean %s.%.*s? (write decimals with a point)", s, more, y->text + end + 1, s, more,
             y->text + end + 1);
    return true;
}

/* Parse scalar n as a value of quantity q in its canonical unit. */
bool ynode_value(struct ydoc *y, const yaml_node_t *n, enum quantity q, const char *what,
                 const char *prefix, double *out)
{
    const char *s = ynode_str(n);
    if (s == NULL || *s == '\0') {
        yerr(y, n, "%s must be a value such as '10 %s', found %s", what,
             q == Q_NONE ? "" : quantity_unit(q), ynode_kind(n));
        return false;
    }
    char err[256];
    int col;
    if (unit_parse_value(s, q, out, err, sizeof err, &col) < 0) {
        if (flow_comma(y, n, err, sizeof err))
            col = (int)strlen(s);
        diag_error(y->diag, y->file, ynode_line(n), ynode_col(n) + col, "%s%s%s",
                   prefix ? prefix : "", prefix ? ": " : "", err);
        return false;
    }
    return true;
}

/* Parse scalar n as a duration within [min_ns, max_ns]. */
bool ynode_duration(struct ydoc *y, const yaml_node_t *n, const char *what, int64_t min_ns,
                    int64_t max_ns, int64_t *ns)
{
    const char *s = ynode_str(n);
    if (s == NULL || *s == '\0') {
        yerr(y, n, "%s must be a duration such as '5 min' or '1 h 30 min', found %s", what,
             ynode_kind(n));
        return false;
    }
    char err[256];
    int col;
    int64_t v;
    if (unit_parse_duration(s, &v, err, sizeof err, &col) < 0) {
        diag_error(y->diag, y->file, ynode_line(n), ynode_col(n) + col, "%s: %s", what, err);
        return false;
    }
    if (v >= min_ns && v <= max_ns) {
        *ns = v;
        return true;
    }
    char lo[48], hi[48];
    unit_format_duration(min_ns, lo, sizeof lo);
    unit_format_duration(max_ns, hi, sizeof hi);
    if (max_ns == INT64_MAX && min_ns == 1)
        yerr(y, n, "%s must be longer than zero, found '%s'", what, s);
    else if (max_ns == INT64_MAX)
        yerr(y, n, "%s must be at least %s, found '%s'", what, lo, s);
    else
        yerr(y, n, "%s must be between %s and %s, found '%s'", what, lo, hi, s);
    return false;
}

/* The index of n's text in names. */
int ynode_choice(struct ydoc *y, const yaml_node_t *n, const char *what, const char *const names[])
{
    const char *v = ynode_str(n);
    char list[160] = "";
    for (int i = 0; names[i] != NULL; i++) {
        if (v && strcmp(v, names[i]) == 0)
            return i;
        size_t used = strlen(list);
        snprintf(list + used, sizeof list - used, "%s%s", i ? " | " : "", names[i]);
    }
    yerr(y, n, "%s must be %s, found '%s'", what, list, v ? v : ynode_kind(n));
    return -1;
}

/* Number of items of a list node. */
size_t yseq_len(const yaml_node_t *n)
{
    if (n == NULL || n->type != YAML_SEQUENCE_NODE)
        return 0;
    return (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
}

/* The i-th item of a list node. */
yaml_node_t *yseq_item(struct ydoc *y, yaml_node_t *seq, size_t i)
{
    return ydoc_node(y, seq->data.sequence.items.start[i]);
}

/* Read a whole file into a NUL-terminated buffer. */
int read_file_text(const char *path, size_t max_len, char **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return -EINVAL;
    }
    if ((size_t)st.st_size > max_len) {
        close(fd);
        return -EFBIG;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL) {
        close(fd);
        return -ENOMEM;
    }
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    buf[got] = '\0';
    *out = buf;
    *len = got;
    return 0;
}
