/*
 * The timing floor of this machine: a plain clock_nanosleep(TIMER_ABSTIME)
 * loop on absolute deadlines, reporting how late each wake-up was.
 *
 *   floor HZ SECONDS       prints {"count":..,"p50_us":..,"p99_us":..,"max_us":..}
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static int cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: floor HZ SECONDS\n");
        return 2;
    }
    double hz = atof(argv[1]), secs = atof(argv[2]);
    size_t n = (size_t)(hz * secs);
    if (n == 0)
        return 2;
    int64_t *late = malloc(n * sizeof *late);
    int64_t period = (int64_t)(1e9 / hz);
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t t0 = (int64_t)now.tv_sec * 1000000000LL + now.tv_nsec + period;
    for (size_t i = 0; i < n; i++) {
        int64_t due = t0 + (int64_t)i * period;
        struct timespec ts = { .tv_sec = due / 1000000000LL, .tv_nsec = due % 1000000000LL };
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
        clock_gettime(CLOCK_MONOTONIC, &now);
        late[i] = (int64_t)now.tv_sec * 1000000000LL + now.tv_nsec - due;
    }
    qsort(late, n, sizeof *late, cmp);
    printf("{\"count\": %zu, \"p50_us\": %.1f, \"p99_us\": %.1f, \"max_us\": %.1f}\n", n,
           late[n / 2] / 1e3, late[(size_t)(0.99 * (double)(n - 1))] / 1e3, late[n - 1] / 1e3);
    free(late);
    return 0;
}
