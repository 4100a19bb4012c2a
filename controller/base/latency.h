/* Lateness statistics: a histogram in 1 us buckets up to 100 ms, exact maximum. */
#ifndef PERFUSE_LATENCY_H
#define PERFUSE_LATENCY_H

#include <stdint.h>

#define LATENCY_BUCKETS 100000      /* 1 us each: 0 .. 100 ms; later goes in the last */

struct latency {
    uint32_t *bucket;               /* owned; NULL until the first sample */
    uint64_t count;
    int64_t max_ns, min_ns;
};

/* Add one lateness (ns; negative = early, counted as 0 in the histogram). */
void latency_add(struct latency *l, int64_t ns);
/* The q-quantile (0..1) in ns, to the microsecond. */
int64_t latency_quantile(const struct latency *l, double q);
void latency_reset(struct latency *l);
void latency_free(struct latency *l);

#endif
