/* Physical quantities and units: parsing "50 uL/min", "1 h 30 min", conversions. */
#include "units.h"

#include "utf8.h"

#include <ctype.h>
#include <stdbool.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const quantity_names[Q_COUNT] = {
    [Q_NONE] = "plain number", [Q_FLOW] = "flow", [Q_PRESSURE] = "pressure",
    [Q_TEMPERATURE] = "temperature", [Q_VOLUME] = "volume", [Q_LENGTH] = "length",
    [Q_TIME] = "time", [Q_PERCENT] = "percentage", [Q_PH] = "pH",
    [Q_CONCENTRATION] = "concentration",
};

static const char *const canonical_units[Q_COUNT] = {
    [Q_NONE] = "", [Q_FLOW] = "uL/min", [Q_PRESSURE] = "mbar",
    [Q_TEMPERATURE] = "degC", [Q_VOLUME] = "uL", [Q_LENGTH] = "mm",
    [Q_TIME] = "s", [Q_PERCENT] = "%", [Q_PH] = "pH",
    [Q_CONCENTRATION] = "mg/L",
};

/* Factors are exact where the unit is defined exactly (1 psi = 68.9475729 mbar). */
static const struct unit_def units[] = {
    { "nL/min", Q_FLOW, 1e-3 },
    { "uL/min", Q_FLOW, 1.0 },
    { "\xc2\xb5L/min", Q_FLOW, 1.0 },      /* µL/min, micro sign */
    { "\xce\xbcL/min", Q_FLOW, 1.0 },      /* μL/min, Greek mu */
    { "uL/s", Q_FLOW, 60.0 },
    { "\xc2\xb5L/s", Q_FLOW, 60.0 },
    { "\xce\xbcL/s", Q_FLOW, 60.0 },
    { "uL/h", Q_FLOW, 1.0 / 60.0 },
    { "\xc2\xb5L/h", Q_FLOW, 1.0 / 60.0 },
    { "\xce\xbcL/h", Q_FLOW, 1.0 / 60.0 },
    { "mL/min", Q_FLOW, 1000.0 },
    { "mL/h", Q_FLOW, 1000.0 / 60.0 },
    { "mL/d", Q_FLOW, 1000.0 / 1440.0 },
    { "Pa", Q_PRESSURE, 0.01 },
    { "kPa", Q_PRESSURE, 10.0 },
    { "mbar", Q_PRESSURE, 1.0 },
    { "bar", Q_PRESSURE, 1000.0 },
    { "psi", Q_PRESSURE, 68.94757293168361 },
    { "degC", Q_TEMPERATURE, 1.0 },
    { "\xc2\xb0""C", Q_TEMPERATURE, 1.0 },  /* °C */
    { "uL", Q_VOLUME, 1.0 },
    { "\xc2\xb5L", Q_VOLUME, 1.0 },
    { "\xce\xbcL", Q_VOLUME, 1.0 },
    { "mL", Q_VOLUME, 1000.0 },
    { "um", Q_LENGTH, 1e-3 },
    { "\xc2\xb5m", Q_LENGTH, 1e-3 },
    { "\xce\xbcm", Q_LENGTH, 1e-3 },
    { "mm", Q_LENGTH, 1.0 },
    { "ms", Q_TIME, 1e-3 },
    { "s", Q_TIME, 1.0 },
    { "min", Q_TIME, 60.0 },
    { "h", Q_TIME, 3600.0 },
    { "d", Q_TIME, 86400.0 },
    { "%", Q_PERCENT, 1.0 },
    { "pH", Q_PH, 1.0 },
    { "ug/L", Q_CONCENTRATION, 1e-3 },
    { "\xc2\xb5g/L", Q_CONCENTRATION, 1e-3 },
    { "\xce\xbcg/L", Q_CONCENTRATION, 1e-3 },
    { "mg/L", Q_CONCENTRATION, 1.0 },
    { "g/L", Q_CONCENTRATION, 1000.0 },
};
#define N_UNITS (sizeof units / sizeof units[0])

/* Duration units in exact nanoseconds, so sums of durations never round. */
static const struct { const char *name; int64_t ns; } time_units[] = {
    { "ms", 1000000LL }, { "s", 1000000000LL }, { "min", 60000000000LL },
    { "h", 3600000000000LL }, { "d", 86400000000000LL },
};

/* Quantity name for messages. */
const char *quantity_name(enum quantity q)
{
    return (q >= 0 && q < Q_COUNT) ? quantity_names[q] : "?";
}

/* Canonical unit of a quantity. */
const char *quantity_unit(enum quantity q)
{
    return (q >= 0 && q < Q_COUNT) ? canonical_units[q] : "";
}

/* Quantity from its name, or -1. */
int quantity_from_name(const char *name)
{
    for (int q = 0; q < Q_COUNT; q++)
        if (strcmp(name, quantity_names[q]) == 0)
            return q;
    return -1;
}

/* The unit called name, or NULL. */
const struct unit_def *unit_lookup(const char *name)
{
    for (size_t i = 0; i < N_UNITS; i++)
        if (strcmp(units[i].name, name) == 0)
            return &units[i];
    return NULL;
}

/* Levenshtein distance, case-insensitive, capped at 64 bytes of input. */
int unit_edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return 1000;
    /* Optimal string alignment: a swapped pair of letters ("fro") costs 1, as typed. */
    int d[65][65];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            int ai = tolower((unsigned char)a[i - 1]), bj = tolower((unsigned char)b[j - 1]);
            int best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + (ai != bj) < best)
                best = d[i - 1][j - 1] + (ai != bj);
            if (i > 1 && j > 1 && ai == tolower((unsigned char)b[j - 2]) &&
                tolower((unsigned char)a[i - 2]) == bj && d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    }
    return d[la][lb];
}

/* Words people write for a unit, and the unit perfuse spells: suggested, not accepted,
 * so that a file reads the same everywhere. */
static const struct { const char *word, *unit; } unit_words[] = {
    { "day", "d" }, { "days", "d" }, { "hour", "h" }, { "hours", "h" }, { "hr", "h" },
    { "hrs", "h" }, { "minute", "min" }, { "minutes", "min" }, { "mins", "min" },
    { "sec", "s" }, { "secs", "s" }, { "second", "s" }, { "seconds", "s" },
    { "msec", "ms" }, { "C", "degC" }, { "celsius", "degC" }, { "Celsius", "degC" },
};

/* Nearest unit name of quantity q (or any), if it is close enough to be a typo. */
const char *unit_suggest(const char *name, enum quantity q)
{
    for (size_t i = 0; i < sizeof unit_words / sizeof unit_words[0]; i++) {
        const struct unit_def *u = unit_lookup(unit_words[i].unit);
        if (strcmp(name, unit_words[i].word) == 0 && u && (q == Q_COUNT || u->q == q))
            return unit_words[i].unit;
    }
    const char *best = NULL;
    int best_d = 1000;
    for (size_t i = 0; i < N_UNITS; i++) {
        if (q != Q_COUNT && units[i].q != q)
            continue;
        if ((unsigned char)units[i].name[0] >= 0x80)
            continue;   /* suggest the ASCII spelling */
        int d = unit_edit_distance(name, units[i].name);
        if (d < best_d) {
            best_d = d;
            best = units[i].name;
        }
    }
    size_t len = strlen(name);
    int max_d = len <= 3 ? 1 : (len <= 6 ? 2 : 3);
    return best_d <= max_d ? best : NULL;
}

static char unit_lists[Q_COUNT][160];
static pthread_once_t unit_lists_once = PTHREAD_ONCE_INIT;

/* Build every quantity's list of units (once: protocols are parsed on the
 * thread pool too). */
static void build_unit_lists(void)
{
    for (int q = 0; q < Q_COUNT; q++) {
        char *buf = unit_lists[q];
        for (size_t i = 0; i < N_UNITS; i++) {
            if ((int)units[i].q != q || (unsigned char)units[i].name[0] >= 0x80)
                continue;
            size_t used = strlen(buf);
            snprintf(buf + used, sizeof unit_lists[q] - used, "%s%s", used ? ", " : "", units[i].name);
        }
    }
}

/* Comma-separated list of the units of q. */
const char *unit_list(enum quantity q)
{
    if (q < 0 || q >= Q_COUNT)
        return "";
    pthread_once(&unit_lists_once, build_unit_lists);
    return unit_lists[q];
}

/* Parse a decimal number at *p, advancing p; rejects hex, inf and nan. */
static int parse_number(const char **p, double *out)
{
    const char *s = *p;
    const char *q = s;
    if (*q == '+' || *q == '-')
        q++;
    if (!isdigit((unsigned char)*q) && !(*q == '.' && isdigit((unsigned char)q[1])))
        return -EINVAL;
    while (isdigit((unsigned char)*q) || *q == '.')
        q++;
    if (*q == 'e' || *q == 'E') {
        const char *e = q + 1;
        if (*e == '+' || *e == '-')
            e++;
        if (isdigit((unsigned char)*e)) {
            q = e;
            while (isdigit((unsigned char)*q))
                q++;
        }
    }
    char buf[64];
    size_t n = (size_t)(q - s);
    if (n >= sizeof buf)
        return -ERANGE;
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *end;
    errno = 0;
    double v = strtod(buf, &end);
    if (end != buf + n)
        return -EINVAL;
    if (errno == ERANGE || !isfinite(v))
        return -ERANGE;
    *out = v;
    *p = q;
    return 0;
}

/* A decimal comma right after a number ("1,5 uL/min"): the message says what was
 * meant, with the comma made a point. p is just past the number's digits. */
static bool decimal_comma(const char *text, const char *p, char *err, size_t errlen)
{
    if (*p != ',' || !isdigit((unsigned char)p[1]))
        return false;
    char fixed[96];
    utf8_copy(fixed, sizeof fixed, text);
    char *c = fixed + (p - text);
    if ((size_t)(p - text) < strlen(fixed))
        *c = '.';
    snprintf(err, errlen, "'%s' has a decimal comma: did you mean %s? (write decimals with a point)",
             text, fixed);
    return true;
}

static const char *skip_space(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* Read a unit token (everything up to white space) into buf. */
static const char *read_token(const char *p, char *buf, size_t len)
{
    size_t n = 0;
    while (*p != '\0' && *p != ' ' && *p != '\t') {
        if (n + 1 < len)
            buf[n++] = *p;
        p++;
    }
    buf[n] = '\0';
    return p;
}

/* Parse "NUMBER UNIT" into the canonical unit of expect. */
int unit_parse_value(const char *text, enum quantity expect, double *out,
                     char *err, size_t errlen, int *err_col)
{
    const char *p = skip_space(text);
    double v;
    *err_col = (int)(p - text);
    int rc = parse_number(&p, &v);
    if (rc == -ERANGE) {
        snprintf(err, errlen, "number out of range in '%s'", text);
        return -EINVAL;
    }
    if (rc < 0) {
        if (expect == Q_NONE)
            snprintf(err, errlen, "expected a number, found '%s'", text);
        else
            snprintf(err, errlen, "expected a %s such as '10 %s', found '%s'",
                     quantity_name(expect), quantity_unit(expect), text);
        return -EINVAL;
    }
    if (decimal_comma(text, p, err, errlen)) {
        *err_col = (int)(p - text);
        return -EINVAL;
    }
    p = skip_space(p);
    if (*p == '\0') {
        if (expect == Q_NONE) {
            *out = v;
            return 0;
        }
        snprintf(err, errlen, "missing unit after %s (expected a %s unit: %s)",
                 text, quantity_name(expect), unit_list(expect));
        return -EINVAL;
    }
    *err_col = (int)(p - text);
    char tok[32];
    const char *rest = read_token(p, tok, sizeof tok);
    const struct unit_def *u = unit_lookup(tok);
    if (u == NULL) {
        const char *s = unit_suggest(tok, expect == Q_NONE ? Q_COUNT : expect);
        if (expect == Q_NONE)
            snprintf(err, errlen, "unexpected unit '%s' (expected a plain number)", tok);
        else if (s != NULL)
            snprintf(err, errlen, "unknown unit '%s' for a %s (did you mean '%s'? expected %s)",
                     tok, quantity_name(expect), s, unit_list(expect));
        else
            snprintf(err, errlen, "unknown unit '%s' for a %s (expected %s)", tok,
                     quantity_name(expect), unit_list(expect));
        return -EINVAL;
    }
    if (u->q != expect) {
        if (expect == Q_NONE)
            snprintf(err, errlen, "unexpected unit '%s' (a %s); expected a plain number",
                     tok, quantity_name(u->q));
        else
            snprintf(err, errlen, "unit '%s' is a %s, but a %s is expected (%s)", tok,
                     quantity_name(u->q), quantity_name(expect), unit_list(expect));
        return -EINVAL;
    }
    rest = skip_space(rest);
    if (*rest != '\0') {
        *err_col = (int)(rest - text);
        snprintf(err, errlen, "unexpected '%s' after the unit", rest);
        return -EINVAL;
    }
    *out = v * u->factor;
    return 0;
}

/* Parse a sum of "NUMBER UNIT" time terms into nanoseconds. */
int unit_parse_duration(const char *text, int64_t *ns, char *err, size_t errlen,
                        int *err_col)
{
    const char *p = skip_space(text);
    long double total = 0;
    int terms = 0;
    *err_col = (int)(p - text);
    while (*p != '\0') {
        const char *term = p;
        double v;
        int rc = parse_number(&p, &v);
        *err_col = (int)(term - text);
        if (rc < 0) {
            if (terms == 0)
                snprintf(err, errlen, "expected a duration such as '5 min' or '1 h 30 min', found '%s'", text);
            else
                snprintf(err, errlen, "expected a number in duration '%s'", text);
            return -EINVAL;
        }
        if (decimal_comma(text, p, err, errlen)) {
            *err_col = (int)(p - text);
            return -EINVAL;
        }
        if (v < 0) {
            snprintf(err, errlen, "negative duration '%s'", text);
            return -EINVAL;
        }
        p = skip_space(p);
        if (*p == '\0') {
            *err_col = (int)(p - text);
            snprintf(err, errlen, "missing time unit in '%s' (expected ms, s, min, h or d)", text);
            return -EINVAL;
        }
        char tok[32];
        *err_col = (int)(p - text);
        p = read_token(p, tok, sizeof tok);
        int64_t unit_ns = 0;
        for (size_t i = 0; i < sizeof time_units / sizeof time_units[0]; i++)
            if (strcmp(tok, time_units[i].name) == 0)
                unit_ns = time_units[i].ns;
        if (unit_ns == 0) {
            const char *s = unit_suggest(tok, Q_TIME);
            if (s != NULL)
                snprintf(err, errlen, "unknown time unit '%s' (did you mean '%s'? expected ms, s, min, h or d)", tok, s);
            else
                snprintf(err, errlen, "unknown time unit '%s' (expected ms, s, min, h or d)", tok);
            return -EINVAL;
        }
        total += (long double)v * (long double)unit_ns;
        if (total > (long double)INT64_MAX / 2) {
            *err_col = 0;
            snprintf(err, errlen, "duration '%s' is too long (at most about 146 years)", text);
            return -EINVAL;
        }
        terms++;
        p = skip_space(p);
    }
    if (terms == 0) {
        snprintf(err, errlen, "expected a duration such as '5 min', found nothing");
        return -EINVAL;
    }
    *ns = (int64_t)llroundl(total);
    return 0;
}

/* Format a duration compactly for people. */
void unit_format_duration(int64_t ns, char *buf, size_t len)
{
    if (ns < 0) {
        snprintf(buf, len, "-");
        return;
    }
    /* Whole milliseconds: a step just begun reads "0 s", not "0.00045 s". */
    int64_t ms = ns / 1000000 + (ns % 1000000 >= 500000);     /* in ms: no overflow near INT64_MAX */
    int64_t d = ms / 86400000LL;
    ms -= d * 86400000LL;
    int64_t h = ms / 3600000LL;
    ms -= h * 3600000LL;
    int64_t m = ms / 60000LL;
    ms -= m * 60000LL;
    double s = (double)ms / 1e3;
    size_t n = 0;
    buf[0] = '\0';
    if (d > 0)
        n += (size_t)snprintf(buf + n, len - n, "%lld d ", (long long)d);
    if (h > 0 && n < len)
        n += (size_t)snprintf(buf + n, len - n, "%lld h ", (long long)h);
    if (m > 0 && n < len)
        n += (size_t)snprintf(buf + n, len - n, "%lld min ", (long long)m);
    if ((s > 0 || n == 0) && n < len)
        n += (size_t)snprintf(buf + n, len - n, "%.3g s ", s);
    if (n > 0 && n <= len && buf[n - 1] == ' ')
        buf[n - 1] = '\0';
}
