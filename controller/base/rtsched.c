/* Real-time scheduling of the calling thread (SCHED_FIFO, reset on fork). */
#include "rtsched.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>

int rtsched_enter(int prio)
{
    if (prio < 1 || prio > RTSCHED_PRIO_MAX)
        return -EINVAL;
    struct sched_param sp = { .sched_priority = prio };
    /* pid 0: the calling thread only (Linux schedules threads one by one). */
    if (sched_setscheduler(0, SCHED_FIFO | SCHED_RESET_ON_FORK, &sp) < 0)
        return -errno;
    return 0;
}

int rtsched_mutex_init(pthread_mutex_t *m)
{
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    int rc = pthread_mutexattr_setprotocol(&a, PTHREAD_PRIO_INHERIT);
    if (rc == 0)
        rc = pthread_mutex_init(m, &a);
    else
        rc = pthread_mutex_init(m, NULL);   /* no inheritance: still a working lock */
    pthread_mutexattr_destroy(&a);
    return -rc;
}

void rtsched_describe(char *buf, size_t len)
{
    int pol = sched_getscheduler(0);
    struct sched_param sp = { 0 };
    sched_getparam(0, &sp);
    pol &= ~SCHED_RESET_ON_FORK;
    if (pol == SCHED_FIFO)
        snprintf(buf, len, "fifo %d", sp.sched_priority);
    else if (pol == SCHED_RR)
        snprintf(buf, len, "rr %d", sp.sched_priority);
    else
        snprintf(buf, len, "normal");
}
