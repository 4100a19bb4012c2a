/* Diagnostics for files people write: "FILE:LINE:COLUMN: error: MESSAGE". */
#ifndef PERFUSE_DIAG_H
#define PERFUSE_DIAG_H

#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

enum diag_severity { DIAG_ERROR, DIAG_WARNING };

struct diag_msg {
    enum diag_severity severity;
    char *file;         /* owned */
    int line, col;      /* 1-based; 0 when unknown */
    char *text;         /* owned */
};

/* Messages kept in a list; the rest are only counted, so that a hostile file
 * (a YAML alias repeating a bad map in every step) costs bounded memory and
 * output, and reads "... and N more". */
#define DIAG_MAX_KEPT 50

/* A list of diagnostics, in the order found. Zero-initialise or diag_init. */
struct diag {
    struct diag_msg *msgs;      /* the first DIAG_MAX_KEPT */
    size_t n, cap;
    size_t omitted;             /* messages counted but not kept */
    int errors, warnings;
};

void diag_init(struct diag *d);
/* Free every message; the struct may be reused after diag_init. */
void diag_free(struct diag *d);
/* Add an error at file:line:col. */
void diag_error(struct diag *d, const char *file, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Add a warning at file:line:col. */
void diag_warn(struct diag *d, const char *file, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Print every kept message, one line each, compiler style, then "... and N
 * more" if some were omitted. */
void diag_print(const struct diag *d, FILE *out);
/* The kept messages joined by newlines, compiler style, then "... and N more"
 * if some were omitted; linear in the output. Caller frees. */
char *diag_join(const struct diag *d);
/* Put the messages into obj as "diagnostics" (a list of {file, line, column,
 * severity, message}) and, if some were omitted, "diagnostics_omitted". */
void diag_to_json(const struct diag *d, json_t *obj);

#endif
