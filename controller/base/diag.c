/* Diagnostics for files people write: "FILE:LINE:COLUMN: error: MESSAGE". */
#include "diag.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* Start an empty list. */
void diag_init(struct diag *d)
{
    memset(d, 0, sizeof *d);
}

/* Free every message. */
void diag_free(struct diag *d)
{
    for (size_t i = 0; i < d->n; i++) {
        free(d->msgs[i].file);
        free(d->msgs[i].text);
    }
    free(d->msgs);
    memset(d, 0, sizeof *d);
}

/* Append one formatted message; on allocation failure the message is dropped
 * but still counted, so a failed check is never reported as a pass. */
static void diag_add(struct diag *d, enum diag_severity sev, const char *file, int line,
                     int col, const char *fmt, va_list ap)
{
    if (sev == DIAG_ERROR)
        d->errors++;
    else
        d->warnings++;
    if (d->n >= DIAG_MAX_KEPT) {
        d->omitted++;
        return;
    }
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 8;
        struct diag_msg *m = realloc(d->msgs, cap * sizeof *m);
        if (m == NULL)
            return;
        d->msgs = m;
        d->cap = cap;
    }
    char *text = NULL;
    if (vasprintf(&text, fmt, ap) < 0)
        return;
    struct diag_msg *m = &d->msgs[d->n++];
    m->severity = sev;
    m->file = strdup(file ? file : "");
    m->line = line;
    m->col = col;
    m->text = text;
}

/* Add an error at file:line:col. */
void diag_error(struct diag *d, const char *file, int line, int col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_add(d, DIAG_ERROR, file, line, col, fmt, ap);
    va_end(ap);
}

/* Add a warning at file:line:col. */
void diag_warn(struct diag *d, const char *file, int line, int col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_add(d, DIAG_WARNING, file, line, col, fmt, ap);
    va_end(ap);
}

/* Format one message compiler style into a malloc'd string. */
static char *diag_format(const struct diag_msg *m)
{
    const char *sev = m->severity == DIAG_ERROR ? "error" : "warning";
    char *s = NULL;
    int rc;
    if (m->line > 0)
        rc = asprintf(&s, "%s:%d:%d: %s: %s", m->file, m->line, m->col, sev, m->text);
    else
        rc = asprintf(&s, "%s: %s: %s", m->file, sev, m->text);
    return rc < 0 ? NULL : s;
}

/* The closing line for omitted messages, or NULL. */
static char *diag_more(const struct diag *d)
{
    char *s = NULL;
    if (d->omitted == 0 || asprintf(&s, "... and %zu more", d->omitted) < 0)
        return NULL;
    return s;
}

/* Print every kept message, one line each, then how many were omitted. */
void diag_print(const struct diag *d, FILE *out)
{
    for (size_t i = 0; i < d->n; i++) {
        char *s = diag_format(&d->msgs[i]);
        if (s != NULL)
            fprintf(out, "%s\n", s);
        free(s);
    }
    char *more = diag_more(d);
    if (more != NULL)
        fprintf(out, "%s\n", more);
    free(more);
}

/* The kept messages and the omitted count, joined by newlines in one pass. */
char *diag_join(const struct diag *d)
{
    size_t n = d->n + 1, len = 1;
    char **lines = calloc(n, sizeof *lines);
    if (lines == NULL)
        return NULL;
    for (size_t i = 0; i < d->n; i++)
        lines[i] = diag_format(&d->msgs[i]);
    lines[d->n] = diag_more(d);
    for (size_t i = 0; i < n; i++)
        len += lines[i] ? strlen(lines[i]) + 1 : 0;
    char *out = malloc(len);
    if (out != NULL) {
        size_t used = 0;
        for (size_t i = 0; i < n; i++) {
            if (lines[i] == NULL)
                continue;
            if (used > 0)
                out[used++] = '\n';
            size_t k = strlen(lines[i]);
            memcpy(out + used, lines[i], k);
            used += k;
        }
        out[used] = '\0';
    }
    for (size_t i = 0; i < n; i++)
        free(lines[i]);
    free(lines);
    return out;
}

/* The messages as JSON members of obj. */
void diag_to_json(const struct diag *d, json_t *obj)
{
    json_t *list = json_array();
    for (size_t i = 0; i < d->n; i++)
        json_array_append_new(list, json_pack("{s:s,s:i,s:i,s:s,s:s}", "file", d->msgs[i].file,
            "line", d->msgs[i].line, "column", d->msgs[i].col, "severity",
            d->msgs[i].severity == DIAG_ERROR ? "error" : "warning", "message", d->msgs[i].text));
    json_object_set_new(obj, "diagnostics", list);
    if (d->omitted)
        json_object_set_new(obj, "diagnostics_omitted", json_integer((json_int_t)d->omitted));
}
