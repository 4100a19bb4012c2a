/*
 * YAML documents with positions, for the rig and protocol loaders: typed
 * accessors that report "FILE:LINE:COLUMN: error: ..." through a diag list.
 */
#ifndef PERFUSE_YAMLDOC_H
#define PERFUSE_YAMLDOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <yaml.h>

#include "diag.h"
#include "units.h"

/* Deepest nesting of lists and mappings accepted. */
#define YDOC_MAX_DEPTH 64

struct ydoc {
    yaml_document_t doc;
    bool loaded;
    const char *file;       /* for messages; not owned */
    struct diag *diag;      /* not owned */
    unsigned char *seen;    /* per node: visited, to refuse aliases (shared nodes) */
    size_t n_nodes;
    const char *text;       /* the text loaded, for hints; not owned (kept by the caller) */
    size_t len;
};

/* Parse text as one YAML document (text must stay valid until ydoc_free).
 * Syntax errors go to d with their position;
 * so do nesting deeper than YDOC_MAX_DEPTH and aliases (a node used twice).
 * Returns 0, or -EINVAL. Free with ydoc_free either way. */
int ydoc_load(struct ydoc *y, const char *file, const char *text, size_t len, struct diag *d);
void ydoc_free(struct ydoc *y);

/* The root node, or NULL for an empty document. */
yaml_node_t *ydoc_root(struct ydoc *y);
/* The node with this document index (from pairs/items), or NULL. */
yaml_node_t *ydoc_node(struct ydoc *y, int index);

/* 1-based line and column of a node. */
int ynode_line(const yaml_node_t *n);
int ynode_col(const yaml_node_t *n);
/* The scalar text of n, or NULL if n is not a scalar. */
const char *ynode_str(const yaml_node_t *n);
/* Name of the node's kind for messages: "a mapping", "a list", "text". */
const char *ynode_kind(const yaml_node_t *n);

/* Report an error / warning at node n. */
void yerr(struct ydoc *y, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void ywarn(struct ydoc *y, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Mark n visited; reports and returns false if it was visited before, which
 * only happens with YAML aliases (refused: they hide what a protocol does). */
bool ydoc_visit(struct ydoc *y, const yaml_node_t *n);

/* Require n to be a mapping / list / scalar; reports "expected X, found Y". */
bool yexpect_map(struct ydoc *y, const yaml_node_t *n, const char *what);
bool yexpect_seq(struct ydoc *y, const yaml_node_t *n, const char *what);
bool yexpect_str(struct ydoc *y, const yaml_node_t *n, const char *what);

/* The value of key in mapping map (NULL if absent); *key_out gets the key node. */
yaml_node_t *ymap_get(struct ydoc *y, yaml_node_t *map, const char *key, yaml_node_t **key_out);

/* Report keys of map that are not in allowed (NULL-terminated), suggesting the
 * nearest allowed key, and duplicate keys. Returns the number of bad keys. */
int ymap_check_keys(struct ydoc *y, yaml_node_t *map, const char *const allowed[],
                    const char *context);

/* Parse a scalar as a whole number in [min, max]. */
bool ynode_int(struct ydoc *y, const yaml_node_t *n, long min, long max, long *out);

/* Parse scalar n, "NUMBER UNIT", as a value of quantity q in its canonical
 * unit (units.h). Not a value: "WHAT must be a value such as '10 UNIT'"; a
 * unit error is reported at its own column in the text, after "PREFIX: "
 * unless prefix is NULL. Returns false once reported. */
bool ynode_value(struct ydoc *y, const yaml_node_t *n, enum quantity q, const char *what,
                 const char *prefix, double *out);

/* Parse scalar n as a duration ("90 s", "1 h 30 min") into *ns, within
 * [min_ns, max_ns] (max_ns INT64_MAX: no upper bound; min_ns 1: longer than
 * zero). Every problem is reported at n naming what, a unit error at its own
 * column; returns false once reported. This is the one YAML duration parser:
 * the rig's and the protocol's durations all go through it. */
bool ynode_duration(struct ydoc *y, const yaml_node_t *n, const char *what, int64_t min_ns,
                    int64_t max_ns, int64_t *ns);

/* The index of n's text in names (NULL-terminated), or -1 after reporting
 * "WHAT must be a | b | c, found 'X'". */
int ynode_choice(struct ydoc *y, const yaml_node_t *n, const char *what, const char *const names[]);

/* Number of items of a list node. */
size_t yseq_len(const yaml_node_t *n);
/* The i-th item of a list node. */
yaml_node_t *yseq_item(struct ydoc *y, yaml_node_t *seq, size_t i);

/* Read a whole file into a malloc'd, NUL-terminated buffer (max_len bytes at most).
 * Returns 0 or a negative errno. */
int read_file_text(const char *path, size_t max_len, char **out, size_t *len);

#endif
