/*
 * Real-time scheduling for the threads that keep a protocol's time: the
 * event loop (it dispatches setpoints at their deadlines) and the bus threads
 * (they put them on the wire). On a busy machine a normal thread can wait
 * tens of milliseconds for a core; a SCHED_FIFO thread preempts every normal
 * one at once. The others (recorder, MQTT client, thread pool, perfuse-sim)
 * stay normal: SCHED_RESET_ON_FORK gives every thread or process created by a
 * real-time thread the normal policy.
 *
 * Locks shared between the two kinds of thread inherit priority
 * (rtsched_mutex_init).
 *
 * The kernel's real-time throttling (sched_rt_runtime_us) keeps 5 % of each
 * core for normal threads, so a runaway real-time thread cannot lock the
 * machine up.
 */
#ifndef PERFUSE_RTSCHED_H
#define PERFUSE_RTSCHED_H

#include <pthread.h>
#include <stddef.h>

#define RTSCHED_PRIO_MAX 99

/* Put the calling thread under SCHED_FIFO at prio (1..99), its children
 * reset to normal. 0, or a negative errno (-EPERM: not permitted; give the
 * process CAP_SYS_NICE or a RLIMIT_RTPRIO of at least prio, e.g. systemd's
 * LimitRTPRIO=). */
int rtsched_enter(int prio);
/* Initialise a mutex with priority inheritance: a normal thread holding a
 * lock that a real-time thread waits for runs at that thread's priority until
 * it lets go, so that other work cannot keep the real-time thread waiting.
 * Every lock the loop or a bus thread shares with another thread is one. */
int rtsched_mutex_init(pthread_mutex_t *m);
/* Describe the calling thread's scheduling ("fifo 20", "normal") into buf. */
void rtsched_describe(char *buf, size_t len);

#endif
