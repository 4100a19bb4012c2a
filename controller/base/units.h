/* Physical quantities and units: parsing "50 uL/min", "1 h 30 min", conversions. */
#ifndef PERFUSE_UNITS_H
#define PERFUSE_UNITS_H

#include <stddef.h>
#include <stdint.h>

/* Every value inside perfuse is held in the canonical unit of its quantity. */
enum quantity {
    Q_NONE = 0,     /* a plain number (valve port, count) */
    Q_FLOW,         /* uL/min */
    Q_PRESSURE,     /* mbar */
    Q_TEMPERATURE,  /* degC */
    Q_VOLUME,       /* uL */
    Q_LENGTH,       /* mm */
    Q_TIME,         /* s */
    Q_PERCENT,      /* % */
    Q_PH,           /* pH */
    Q_CONCENTRATION, /* mg/L (dissolved oxygen, glucose, drug doses) */
    Q_COUNT
};

struct unit_def {
    const char *name;     /* as written in files, e.g. "uL/min" */
    enum quantity q;
    double factor;        /* canonical = value * factor */
};

/* Quantity name for messages ("flow"). */
const char *quantity_name(enum quantity q);
/* Canonical unit of a quantity ("uL/min"); "" for Q_NONE. */
const char *quantity_unit(enum quantity q);
/* Quantity from its name ("flow"), or -1. */
int quantity_from_name(const char *name);

/* The unit called name (exact, case-sensitive), or NULL. */
const struct unit_def *unit_lookup(const char *name);
/* The unit of quantity q (any q if Q_COUNT) whose name is nearest to name, or NULL. */
const char *unit_suggest(const char *name, enum quantity q);
/* Comma-separated list of the units of q, for messages: "nL/min, uL/min, ...". */
const char *unit_list(enum quantity q);

/*
 * Parse "NUMBER UNIT" (or "NUMBER" when expect is Q_NONE) into the canonical unit
 * of expect. Returns 0, or -EINVAL with a message in err and *err_col set to the
 * 0-based offset in text of the offending part.
 */
int unit_parse_value(const char *text, enum quantity expect, double *out,
                     char *err, size_t errlen, int *err_col);

/*
 * Parse a duration: "90 s", "1 h 30 min", "2 d", "250 ms". Result in nanoseconds.
 * Rejects negative values, missing units and totals that overflow int64 ns.
 * Zero is allowed here; callers that need a positive duration check it.
 */
int unit_parse_duration(const char *text, int64_t *ns, char *err, size_t errlen,
                        int *err_col);

/* Format a duration in ns as "1 d 2 h 3 min 4.5 s" (compact, for people). */
void unit_format_duration(int64_t ns, char *buf, size_t len);

/* Levenshtein distance, used for "did you mean" suggestions. */
int unit_edit_distance(const char *a, const char *b);

#endif
