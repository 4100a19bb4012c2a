/* The latch file: encoding, checked decoding and a careful read. */
#include "latchfile.h"
#include "base/jsonfield.h"

#include "base/timeutil.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* 2000-01-01 and 2200-01-01 UTC: a trip time outside is not a real one. */
#define WALL_MIN_NS 946684800000000000LL
#define WALL_MAX_NS (7258118400LL * 1000000000LL)

/* ------------------------------------------------------------- encoding */

/* The listed alarm with id, or NULL. */
static const struct alarm *alarm_by_id(const struct alarms *a, uint32_t id)
{
    for (size_t i = 0; i < a->n; i++)
        if (a->v[i].id == id)
            return &a->v[i];
    return NULL;
}

/* A number, or null for NaN. */
static json_t *num_or_null(double v)
{
    return isnan(v) ? json_null() : json_real(v);
}

/* The limit of a hold as an object, or null with none. */
static json_t *encode_limit(const struct latch_origin *o)
{
    if (o->lim.channel < 0)
        return json_null();
    return json_pack("{s:s,s:i,s:o,s:o,s:I,s:s}", "from", o->from_rig ? "rig" : "protocol",
                     "line", o->lim.line, "min", num_or_null(o->lim.min), "max", num_or_null(o->lim.max),
                     "for_ns", (json_int_t)o->lim.for_ns, "side", o->side == '<' ? "min" : "max");
}

/* One hold as an object. */
static json_t *encode_hold(const struct latch_hold *h, const struct alarms *a, const struct rig *rig,
                           size_t n_channels)
{
    json_t *held = json_object();
    for (size_t c = 0; held != NULL && c < n_channels; c++)
        if (h->held[c])
            json_object_set_new(held, rig->channels[c].name, num_or_null(h->safe[c]));
    const struct alarm *al = alarm_by_id(a, h->alarm);
    bool acked = al != NULL && al->acked;
    char when[40];
    time_iso8601(h->origin.tripped_wall_ns, when, sizeof when);
    return json_pack("{s:s,s:s,s:o,s:o,s:s,s:I,s:b,s:s}", "cause", h->cause, "channel", h->channel,
                     "limit", encode_limit(&h->origin), "held", held, "tripped", when,
                     "tripped_wall_ns", (json_int_t)h->origin.tripped_wall_ns, "acknowledged", acked,
                     "acknowledged_by", acked ? al->acked_by : "");
}

int latchfile_encode(const struct latch *l, const struct alarms *a, const struct rig *rig,
                     char **text)
{
    *text = NULL;
    size_t n_channels = l->n_channels < rig->n_channels ? l->n_channels : rig->n_channels;
    json_t *holds = json_array();
    json_t *o = json_pack("{s:i,s:s,s:o}", "latch", LATCHFILE_VERSION, "rig", rig->name, "holds", holds);
    bool ok = o != NULL;
    for (size_t i = 0; ok && i < l->n; i++) {
        json_t *h = encode_hold(&l->v[i], a, rig, n_channels);
        ok = h != NULL && json_array_append_new(holds, h) == 0;
    }
    if (ok)
        *text = json_dumps(o, JSON_INDENT(1));
    json_decref(o);
    return *text != NULL ? 0 : -ENOMEM;
}

/* ------------------------------------------------------------- decoding */

/* Say what is wrong; returns -EINVAL. */
static int bad(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(char *err, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* The rig channel called exactly name, or -1. */
static int channel_named(const struct rig *rig, const char *name)
{
    for (size_t i = 0; i < rig->n_channels; i++)
        if (strcmp(rig->channels[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* A bound of a limit: a number, or null for none. */
static bool get_bound(json_t *o, const char *key, double *v)
{
    json_t *x = json_object_get(o, key);
    if (json_is_null(x)) {
        *v = NAN;
        return true;
    }
    *v = json_number_value(x);
    return json_is_number(x) && isfinite(*v);
}

/* Decode hold k's limit (the hold's channel is already read). */
static int decode_limit(json_t *lim, const struct rig *rig, size_t k, struct latchfile_hold *h,
                        char *err, size_t len)
{
    struct latch_origin *o = &h->origin;
    if (json_is_null(lim)) {
        o->lim.channel = -1;
        return h->channel[0] == '\0' ? 0
               : bad(err, len, "hold %zu: \"channel\" is set but \"limit\" is null", k);
    }
    if (!json_is_object(lim))
        return bad(err, len, "hold %zu: \"limit\" is not an object or null", k);
    int ch = channel_named(rig, h->channel);
    if (ch < 0 || !rig->channels[ch].readable)
        return bad(err, len, "hold %zu: the limit's channel '%s' is not a measured channel of rig '%s'",
                   k, h->channel, rig->name);
    const char *from = json_string_value(json_object_get(lim, "from"));
    const char *side = json_string_value(json_object_get(lim, "side"));
    json_t *line = json_object_get(lim, "line"), *for_ns = json_object_get(lim, "for_ns");
    if (from == NULL || (strcmp(from, "rig") != 0 && strcmp(from, "protocol") != 0))
        return bad(err, len, "hold %zu: limit \"from\" is not \"rig\" or \"protocol\"", k);
    if (side == NULL || (strcmp(side, "max") != 0 && strcmp(side, "min") != 0))
        return bad(err, len, "hold %zu: limit \"side\" is not \"max\" or \"min\"", k);
    if (!json_is_integer(line) || json_integer_value(line) < 0 || json_integer_value(line) > 10000000)
        return bad(err, len, "hold %zu: limit \"line\" is not a line number", k);
    if (!json_is_integer(for_ns) || json_integer_value(for_ns) < 0)
        return bad(err, len, "hold %zu: limit \"for_ns\" is not a duration in ns", k);
    if (!get_bound(lim, "min", &o->lim.min) || !get_bound(lim, "max", &o->lim.max))
        return bad(err, len, "hold %zu: limit \"min\" or \"max\" is not a number or null", k);
    o->side = side[1] == 'a' ? '>' : '<';
    if (isnan(o->side == '>' ? o->lim.max : o->lim.min))
        return bad(err, len, "hold %zu: the limit tripped on its %s, which it does not have", k, side);
    o->lim.channel = ch;
    o->lim.line = (int)json_integer_value(line);
    o->lim.for_ns = json_integer_value(for_ns);
    o->lim.action = LIMIT_SAFE_STOP;
    o->from_rig = from[0] == 'r';
    return 0;
}

/* Decode hold k's held channels and their safe values. */
static int decode_held(json_t *held, const struct rig *rig, size_t k, struct latchfile_hold *h,
                       char *err, size_t len)
{
    if (!json_is_object(held) || json_object_size(held) == 0)
        return bad(err, len, "hold %zu: \"held\" is not an object naming at least one channel", k);
    const char *name;
    json_t *v;
    json_object_foreach(held, name, v) {
        int ch = channel_named(rig, name);
        if (ch < 0 || !rig->channels[ch].writable)
            return bad(err, len, "hold %zu: held channel '%.80s' is not a writable channel of rig '%s'",
                       k, name, rig->name);
        const struct rig_channel *c = &rig->channels[ch];
        double x = json_number_value(v);
        if (!json_is_null(v) && (!json_is_number(v) || !isfinite(x) || (!isnan(c->min) && x < c->min) ||
                                 (!isnan(c->max) && x > c->max)))
            return bad(err, len, "hold %zu: the safe value of %s is not null or a number within the "
                       "channel's limits", k, c->name);
        h->held[ch] = true;
        h->safe[ch] = json_is_null(v) ? NAN : x;
    }
    return 0;
}

/* Decode hold k (1-based, for messages) of the file. */
static int decode_hold(json_t *o, const struct rig *rig, size_t k, struct latchfile_hold *h, char *err,
                       size_t len)
{
    size_t n = rig->n_channels ? rig->n_channels : 1;
    h->held = calloc(n, sizeof *h->held);
    h->safe = malloc(n * sizeof *h->safe);
    if (h->held == NULL || h->safe == NULL) {
        snprintf(err, len, "out of memory");
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        h->safe[i] = NAN;
    if (!json_is_object(o))
        return bad(err, len, "hold %zu is not an object", k);
    if (!jfield_str(o, "cause", h->cause, sizeof h->cause) || h->cause[0] == '\0')
        return bad(err, len, "hold %zu: \"cause\" is missing or not a string of at most %zu bytes", k,
                   sizeof h->cause - 1);
    if (!jfield_str(o, "channel", h->channel, sizeof h->channel))
        return bad(err, len, "hold %zu: \"channel\" is missing or not a channel name", k);
    int rc = decode_limit(json_object_get(o, "limit"), rig, k, h, err, len);
    if (rc == 0)
        rc = decode_held(json_object_get(o, "held"), rig, k, h, err, len);
    if (rc < 0)
        return rc;
    json_t *t = json_object_get(o, "tripped_wall_ns"), *acked = json_object_get(o, "acknowledged");
    if (!json_is_integer(t) || json_integer_value(t) < WALL_MIN_NS || json_integer_value(t) > WALL_MAX_NS)
        return bad(err, len, "hold %zu: \"tripped_wall_ns\" is not a time between 2000 and 2200", k);
    h->origin.tripped_wall_ns = json_integer_value(t);
    if (!json_is_boolean(acked))
        return bad(err, len, "hold %zu: \"acknowledged\" is not true or false", k);
    h->acked = json_is_true(acked);
    if (h->acked && (!jfield_str(o, "acknowledged_by", h->acked_by, sizeof h->acked_by) || !h->acked_by[0]))
        return bad(err, len, "hold %zu: acknowledged, but \"acknowledged_by\" names no one", k);
    return 0;
}

int latchfile_decode(const char *text, size_t len, const struct rig *rig, struct latchfile *f,
                     char *err, size_t errlen)
{
    memset(f, 0, sizeof *f);
    json_error_t je;
    json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (o == NULL)
        return bad(err, errlen, "not JSON: %s (line %d)", je.text, je.line);
    json_t *version = json_object_get(o, "latch"), *holds = json_object_get(o, "holds");
    const char *rig_name = json_string_value(json_object_get(o, "rig"));
    int rc = 0;
    if (!json_is_object(o) || !json_is_integer(version))
        rc = bad(err, errlen, "not a perfuse latch file (no \"latch\" version)");
    else if (json_integer_value(version) != LATCHFILE_VERSION)
        rc = bad(err, errlen, "latch file version %lld; this perfused reads version %d",
                 (long long)json_integer_value(version), LATCHFILE_VERSION);
    else if (rig_name == NULL || strcmp(rig_name, rig->name) != 0)
        rc = bad(err, errlen, "written for rig '%.64s', this daemon runs rig '%s'", rig_name ? rig_name : "?",
                 rig->name);
    else if (!json_is_array(holds) || json_array_size(holds) > LATCHFILE_MAX_HOLDS)
        rc = bad(err, errlen, "\"holds\" is not a list of at most %d holds", LATCHFILE_MAX_HOLDS);
    else if (json_array_size(holds) > 0 &&
             (f->v = calloc(json_array_size(holds), sizeof *f->v)) == NULL)
        rc = -ENOMEM;
    for (size_t i = 0; rc == 0 && i < json_array_size(holds); i++) {
        f->n++;
        rc = decode_hold(json_array_get(holds, i), rig, i + 1, &f->v[i], err, errlen);
    }
    if (rc == -ENOMEM)
        snprintf(err, errlen, "out of memory");
    json_decref(o);
    return rc;
}

void latchfile_free(struct latchfile *f)
{
    for (size_t i = 0; i < f->n; i++) {
        free(f->v[i].held);
        free(f->v[i].safe);
    }
    free(f->v);
    memset(f, 0, sizeof *f);
}

