/* Diagnostics for files people write: "FILE:LINE:COLUMN: error: MESSAGE". */
#ifndef PERFUSE_DIAG_H
#define PERFUSE_DIAG_H

#include <stddef.h>
#include <stdio.h>

enum diag_severity { DIAG_ERROR, DIAG_WARNING };

struct diag_msg {
    enum diag_severity severity;
    char *file;         /* owned */
    int line, col;      /* 1-based; 0 when unknown */
    char *text;         /* owned */
};

/* A list of diagnostics, in the order found. Zero-initialise or diag_init. */
struct diag {
    struct diag_msg *msgs;
    size_t n, cap;
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
/* Print every message, one line each, compiler style. */
void diag_print(const struct diag *d, FILE *out);
/* All messages joined by newlines, compiler style; caller frees. */
char *diag_join(const struct diag *d);

#endif
