/* The bus thread's timing rule: reads fit between setpoints by a transaction-time estimate. */
#include "bus_sched.h"

#include <stdlib.h>
#include <string.h>

/* Remember one transaction. */
void txn_estimate_add(struct txn_estimate *e, int64_t ns)
{
    e->d[e->next] = ns;
    e->next = (e->next + 1) % TXN_WINDOW;
    if (e->n < TXN_WINDOW)
        e->n++;
}

/* Order for qsort. */
static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The 98th percentile, or the fallback. Sorting 64 numbers per read is cheap
 * next to a serial transaction of milliseconds. */
int64_t txn_estimate_get(const struct txn_estimate *e, int64_t fallback_ns)
{
    if (e->n < TXN_MIN_SAMPLES)
        return fallback_ns;
    int64_t s[TXN_WINDOW];
    memcpy(s, e->d, e->n * sizeof *s);
    qsort(s, e->n, sizeof *s, cmp_i64);
    size_t k = (e->n * 98 + 99) / 100;     /* ceil(0.98 n), 1-based */
    return s[k - 1];
}

/* Whether the read ends in time. */
bool bus_sched_read_fits(int64_t now, int64_t est_ns, int64_t setpoint_ns)
{
    if (setpoint_ns == INT64_MAX)
        return true;
    return now + est_ns + BUS_SCHED_GUARD_NS <= setpoint_ns;
}

/* What to do next. */
enum bus_sched_action bus_sched_next(int64_t now, int64_t setpoint_ns, int64_t read_due_ns,
                                     int64_t read_est_ns, int64_t *until)
{
    if (read_due_ns <= now && bus_sched_read_fits(now, read_est_ns, setpoint_ns))
        return BUS_SCHED_READ;
    /* A due read that does not fit waits for the setpoint; a read not yet due
     * wakes the thread at its time (it may fit then). */
    int64_t wake = read_due_ns > now ? read_due_ns : INT64_MAX;
    if (setpoint_ns != INT64_MAX && setpoint_ns - BUS_SCHED_FINAL_NS <= now) {
        *until = setpoint_ns;
        return BUS_SCHED_SLEEP;
    }
    if (setpoint_ns != INT64_MAX && setpoint_ns - BUS_SCHED_FINAL_NS < wake)
        wake = setpoint_ns - BUS_SCHED_FINAL_NS;
    *until = wake;
    return BUS_SCHED_WAIT;
}
