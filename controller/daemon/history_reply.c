/* The history command's reply: decimated series, written as JSON text off the loop. */
#include "history_reply.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

struct history_reply *history_reply_new(const struct history *h, size_t n, int64_t at_ns,
                                        unsigned seconds, unsigned slots)
{
    struct history_reply *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->s = calloc(n ? n : 1, sizeof *r->s);
    r->from = calloc(n ? n : 1, sizeof *r->from);
    if (r->s == NULL || r->from == NULL) {
        free(r->s);
        free(r->from);
        free(r);
        return NULL;
    }
    r->n = n;
    r->h = h;
    r->at_ns = at_ns;
    r->seconds = seconds;
    r->slots = slots;
    for (size_t k = 0; k < n; k++)
        /* Not zeroed: decimation writes the points it has (zeroing them cost the loop more). */
        if ((r->s[k].p = malloc((slots ? slots : 1) * sizeof *r->s[k].p)) == NULL) {
            history_reply_free(r);
            return NULL;
        }
    return r;
}

int history_reply_step(void *arg)
{
    struct history_reply *r = arg;
    if (r->next < r->n) {
        struct history_reply_series *s = &r->s[r->next];
        s->n = history_decimate(r->h, r->from[r->next], r->at_ns, r->seconds, r->slots, s->p);
        r->next++;
    }
    return r->next < r->n;
}

/* text as a JSON string (quoted, escaped), or NULL. */
static char *json_text(const char *text)
{
    json_t *j = json_string(text);
    char *out = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
    json_decref(j);
    return out;
}

int history_reply_name(struct history_reply *r, size_t k, const char *name, const char *unit,
                       const char *kind)
{
    struct history_reply_series *s = &r->s[k];
    s->name = json_text(name);
    s->unit = json_text(unit);
    s->kind = kind;
    return s->name && s->unit ? 0 : -ENOMEM;
}

/* One list of the series: each point's field at offset off, with fmt; null for NaN. */
static void write_list(FILE *out, const char *key, const struct history_reply_series *s, size_t off,
                       const char *fmt, double add)
{
    fprintf(out, ",\"%s\":[", key);
    for (size_t i = 0; i < s->n; i++) {
        double v = *(const double *)((const char *)&s->p[i] + off);
        if (i > 0)
            fputc(',', out);
        if (isfinite(v))
            fprintf(out, fmt, v + add);
        else
            fputs("null", out);
    }
    fputc(']', out);
}

int history_reply_write(void *arg, FILE *out)
{
    const struct history_reply *r = arg;
    /* Times to the millisecond, values to 9 significant digits: a view for eyes (the
     * run file has every sample in full). A reading such as 151.2 prints as 151.2. */
    fprintf(out, "{\"now\":%.6f,\"minutes\":%.17g,\"step_s\":%.17g,\"channels\":{", r->now_s,
            r->minutes, r->step_s);
    for (size_t k = 0; k < r->n; k++) {
        const struct history_reply_series *s = &r->s[k];
        fprintf(out, "%s%s:{\"unit\":%s,\"kind\":\"%s\"", k ? "," : "", s->name, s->unit, s->kind);
        write_list(out, "t", s, offsetof(struct history_point, t_s), "%.3f", r->wall_minus_clock_s);
        write_list(out, "v", s, offsetof(struct history_point, mean), "%.9g", 0);
        write_list(out, "min", s, offsetof(struct history_point, min), "%.9g", 0);
        write_list(out, "max", s, offsetof(struct history_point, max), "%.9g", 0);
        fputc('}', out);
    }
    fputs("}}", out);
    return ferror(out) ? -EIO : 0;
}

void history_reply_free(void *arg)
{
    struct history_reply *r = arg;
    if (r == NULL)
        return;
    for (size_t k = 0; r->s != NULL && k < r->n; k++) {
        free(r->s[k].name);
        free(r->s[k].unit);
        free(r->s[k].p);
    }
    free(r->s);
    free(r->from);
    free(r);
}
