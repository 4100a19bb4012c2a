/* The last hour of every rig channel: rings of one-second buckets. */
#include "history.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NS_PER_S 1000000000LL

int history_init(struct history *h, size_t n, const bool *held)
{
    memset(h, 0, sizeof *h);
    h->s = calloc(n ? n : 1, sizeof *h->s);
    if (h->s == NULL)
        return -ENOMEM;
    h->n = n;
    for (size_t i = 0; i < n; i++) {
        struct history_series *s = &h->s[i];
        s->b = calloc(HISTORY_SECONDS, sizeof *s->b);
        if (s->b == NULL) {
            history_free(h);
            return -ENOMEM;
        }
        s->last = -1;
        s->held = held != NULL && held[i];
        s->hold = NAN;
    }
    return 0;
}

void history_free(struct history *h)
{
    for (size_t i = 0; h->s != NULL && i < h->n; i++)
        free(h->s[i].b);
    free(h->s);
    memset(h, 0, sizeof *h);
}

/* Count one reading (or held value) in bucket b. */
static void bucket_put(struct history_bucket *b, double v)
{
    if (!isfinite(v)) {
        b->failed++;
        return;
    }
    if (b->n == 0 || v < b->min)
        b->min = v;
    if (b->n == 0 || v > b->max)
        b->max = v;
    b->sum += v;
    b->n++;
}

/* Move series s on to second sec (> s->last): the seconds in between, and
 * sec itself, start empty, or holding the held value. */
static void advance(struct history_series *s, int64_t sec)
{
    int64_t from = s->last < 0 ? sec : s->last + 1;
    if (sec - from >= HISTORY_SECONDS)
        from = sec - HISTORY_SECONDS + 1;   /* the whole ring is rewritten once */
    for (int64_t k = from; k <= sec; k++) {
        struct history_bucket *b = &s->b[k % HISTORY_SECONDS];
        memset(b, 0, sizeof *b);
        if (s->held && s->holding)
            bucket_put(b, s->hold);
    }
    s->last = sec;
}

/* The series to write to, or NULL. */
static struct history_series *series(struct history *h, size_t i, bool held)
{
    if (h == NULL || i >= h->n || h->s[i].held != held)
        return NULL;
    return &h->s[i];
}

void history_add(struct history *h, size_t i, double v, int64_t t_ns)
{
    struct history_series *s = series(h, i, false);
    if (s == NULL || t_ns < 0)
        return;
    int64_t sec = t_ns / NS_PER_S;
    if (sec > s->last)
        advance(s, sec);
    else if (sec <= s->last - HISTORY_SECONDS)
        return;             /* older than the ring */
    bucket_put(&s->b[sec % HISTORY_SECONDS], v);
}

void history_hold(struct history *h, size_t i, double v, int64_t t_ns)
{
    struct history_series *s = series(h, i, true);
    if (s == NULL)
        return;
    int64_t sec = t_ns > 0 ? t_ns / NS_PER_S : 0;
    if (sec > s->last)
        advance(s, sec);
    else
        sec = s->last;
    bucket_put(&s->b[sec % HISTORY_SECONDS], v);
    s->hold = v;
    s->holding = true;
}

/* Second sec of series s as a bucket: from the ring, held on past the last
 * second written, or empty (before the first, or older than the ring). */
static struct history_bucket bucket_at(const struct history_series *s, int64_t sec)
{
    struct history_bucket e = { 0 };
    if (sec > s->last) {
        if (s->held && s->holding && s->last >= 0)
            bucket_put(&e, s->hold);
        return e;
    }
    if (sec < 0 || s->last < 0 || sec <= s->last - HISTORY_SECONDS)
        return e;
    return s->b[sec % HISTORY_SECONDS];
}

size_t history_decimate(const struct history *h, size_t i, int64_t now_ns, unsigned seconds,
                        unsigned slots, struct history_point *out)
{
    if (h == NULL || i >= h->n || seconds == 0 || slots == 0 || now_ns < 0)
        return 0;
    if (seconds > HISTORY_SECONDS)
        seconds = HISTORY_SECONDS;
    const struct history_series *s = &h->s[i];
    unsigned n = slots < seconds ? slots : seconds;
    int64_t now_s = now_ns / NS_PER_S, first = now_s - (int64_t)seconds + 1;
    double now = (double)now_ns / 1e9;
    size_t k = 0;
    for (unsigned j = 0; j < n; j++) {
        /* Slot j: the seconds a to b - 1; slots differ in length by one second at most. */
        int64_t a = first + (int64_t)j * seconds / n, b = first + (int64_t)(j + 1) * seconds / n;
        struct history_bucket sum = { 0 };
        for (int64_t sec = a; sec < b; sec++) {
            struct history_bucket x = bucket_at(s, sec);
            if (x.n > 0) {
                if (sum.n == 0 || x.min < sum.min)
                    sum.min = x.min;
                if (sum.n == 0 || x.max > sum.max)
                    sum.max = x.max;
                sum.sum += x.sum;
                sum.n += x.n;
            }
            sum.failed += x.failed;
        }
        if (sum.n == 0 && sum.failed == 0)
            continue;
        double end = (double)b < now ? (double)b : now;
        out[k].t_s = ((double)a + end) / 2;
        if (sum.n > 0) {
            out[k].mean = sum.sum / sum.n;
            out[k].min = sum.min;
            out[k].max = sum.max;
        } else {
            out[k].mean = out[k].min = out[k].max = NAN;
        }
        k++;
    }
    return k;
}
