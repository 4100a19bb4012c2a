/* Lateness statistics: a histogram in 1 us buckets up to 100 ms, exact maximum.
 * Fixed memory (400 KB) however long a run lasts. */
#include "latency.h"

#include <stdlib.h>
#include <string.h>

/* Add one lateness. */
void latency_add(struct latency *l, int64_t ns)
{
    if (l->bucket == NULL) {
        l->bucket = calloc(LATENCY_BUCKETS, sizeof *l->bucket);
        if (l->bucket == NULL)
            return;
        l->min_ns = ns;
        l->max_ns = ns;
    }
    int64_t us = ns < 0 ? 0 : ns / 1000;
    l->bucket[us >= LATENCY_BUCKETS ? LATENCY_BUCKETS - 1 : us]++;
    l->count++;
    if (ns > l->max_ns)
        l->max_ns = ns;
    if (ns < l->min_ns)
        l->min_ns = ns;
}

/* The q-quantile in ns. */
int64_t latency_quantile(const struct latency *l, double q)
{
    if (l->count == 0)
        return 0;
    uint64_t want = (uint64_t)(q * (double)(l->count - 1)) + 1, seen = 0;
    for (int64_t i = 0; i < LATENCY_BUCKETS; i++) {
        seen += l->bucket[i];
        if (seen >= want)
            return i * 1000 + 500;      /* the bucket's middle */
    }
    return l->max_ns;
}

void latency_reset(struct latency *l)
{
    if (l->bucket)
        memset(l->bucket, 0, LATENCY_BUCKETS * sizeof *l->bucket);
    l->count = 0;
    l->max_ns = l->min_ns = 0;
}

void latency_free(struct latency *l)
{
    free(l->bucket);
    memset(l, 0, sizeof *l);
}
