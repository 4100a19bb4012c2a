/*
 * bench-history: what a `history` reply costs, for 64 channels with a full
 * hour of readings at 10 Hz: the part on the loop (decimating each series
 * into the reply's slots, history_reply_step: the whole, and the longest
 * step, which is what one turn of the loop may take) and the part on the thread pool
 * (writing the reply's JSON text, history_reply_write), for 600 and 2000
 * points over 10 and 60 minutes. Figures are printed, not asserted.
 *
 *   build/bench/history [--repeat N]
 */
#include "daemon/history.h"
#include "daemon/history_reply.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S 1000000000LL
#define CHANNELS 64

/* CLOCK_MONOTONIC in ns. */
static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * S + ts.tv_nsec;
}

/* Ascending order for qsort. */
static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One reply of `minutes` and `points`, repeat times: the loop's and the thread's part, in ms. */
static void measure(const struct history *h, int64_t at, unsigned minutes, unsigned points, int repeat)
{
    double *loop = calloc((size_t)repeat, sizeof *loop), *thread = calloc((size_t)repeat, sizeof *thread);
    double *piece = calloc((size_t)repeat, sizeof *piece), *setup = calloc((size_t)repeat, sizeof *setup);
    size_t bytes = 0, got = 0;
    unsigned seconds = minutes * 60, slots = points < seconds ? points : seconds;
    for (int r = 0; r < repeat; r++) {
        int64_t t0 = now_ns();
        struct history_reply *rep = history_reply_new(h, CHANNELS, at, seconds, slots);
        rep->now_s = 1796614467.0;
        rep->minutes = minutes;
        rep->step_s = (double)seconds / slots;
        rep->wall_minus_clock_s = 1796610000.0;
        got = 0;
        for (size_t k = 0; k < CHANNELS; k++) {
            char name[32];
            snprintf(name, sizeof name, "chip%zu.pressure", k);
            history_reply_name(rep, k, name, "mbar", k % 4 ? "measured" : "setpoint");
            rep->from[k] = k;
        }
        setup[r] = (double)(now_ns() - t0) / 1e6;
        for (int more = 1; more;) {
            int64_t s0 = now_ns();
            more = history_reply_step(rep);
            double ms = (double)(now_ns() - s0) / 1e6;
            if (ms > piece[r])
                piece[r] = ms;
        }
        for (size_t k = 0; k < CHANNELS; k++)
            got += rep->s[k].n;
        int64_t t1 = now_ns();
        char *text = NULL;
        size_t len = 0;
        FILE *out = open_memstream(&text, &len);
        history_reply_write(rep, out);
        fclose(out);
        int64_t t2 = now_ns();
        bytes = len;
        free(text);
        history_reply_free(rep);
        loop[r] = (double)(t1 - t0) / 1e6;
        thread[r] = (double)(t2 - t1) / 1e6;
    }
    qsort(loop, (size_t)repeat, sizeof *loop, cmp);
    qsort(thread, (size_t)repeat, sizeof *thread, cmp);
    qsort(piece, (size_t)repeat, sizeof *piece, cmp);
    qsort(setup, (size_t)repeat, sizeof *setup, cmp);
    printf("%2u min x %4u points: %6zu points, %8zu bytes; on the loop %.2f ms in all (median; max %.2f), "
           "of which the request's turn %.3f ms (median; max %.3f) and the longest step %.3f ms (median; max %.3f); on the thread pool %.1f ms (median; max %.1f)\n",
           minutes, points, got, bytes, loop[repeat / 2], loop[repeat - 1], setup[repeat / 2],
           setup[repeat - 1], piece[repeat / 2],
           piece[repeat - 1], thread[repeat / 2], thread[repeat - 1]);
    free(piece);
    free(setup);
    free(loop);
    free(thread);
}

int main(int argc, char **argv)
{
    int repeat = 11;
    if (argc == 3 && strcmp(argv[1], "--repeat") == 0)
        repeat = atoi(argv[2]) > 0 ? atoi(argv[2]) : 1;
    bool held[CHANNELS];
    for (size_t k = 0; k < CHANNELS; k++)
        held[k] = k % 4 == 0;                       /* a quarter are actuators */
    struct history h;
    int64_t t0 = now_ns();
    if (history_init(&h, CHANNELS, held) < 0) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    int64_t t1 = now_ns();
    /* An hour at 10 Hz: readings with noise, a setpoint change a minute. */
    int64_t base = 1000 * S;
    uint64_t x = 88172645463325252ULL;
    for (int64_t i = 0; i < 36000; i++) {
        int64_t t = base + i * (S / 10);
        for (size_t k = 0; k < CHANNELS; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            if (held[k] && i % 600 == 0)
                history_hold(&h, k, (double)(i / 600 % 7) * 10.0, t);
            else if (!held[k])
                history_add(&h, k, 100.0 + (double)(x % 100000) / 1000.0, t);
        }
    }
    int64_t t2 = now_ns();
    int64_t at = base + 36000 * (S / 10);
    printf("history of %d channels: %zu bytes per series (%d one-second buckets of %zu bytes), "
           "set up in %.1f ms; %d readings taken in %.1f ms (%.0f ns each)\n", CHANNELS,
           (size_t)HISTORY_SECONDS * sizeof(struct history_bucket), HISTORY_SECONDS,
           sizeof(struct history_bucket), (double)(t1 - t0) / 1e6, CHANNELS * 36000,
           (double)(t2 - t1) / 1e6, (double)(t2 - t1) / (CHANNELS * 36000.0));
    measure(&h, at, 10, 600, repeat);
    measure(&h, at, 60, 600, repeat);
    measure(&h, at, 10, 2000, repeat);
    measure(&h, at, 60, 2000, repeat);
    history_free(&h);
    return 0;
}
