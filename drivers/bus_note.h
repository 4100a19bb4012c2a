/*
 * A note from a bus to its owner: a sample, the outcome of a write, or news
 * of a device or the link. Plain data, copied by value.
 */
#ifndef PERFUSE_BUS_NOTE_H
#define PERFUSE_BUS_NOTE_H

#include <stdint.h>

enum bus_note_kind {
    BUS_NOTE_SAMPLE,        /* a read finished: value, or err */
    BUS_NOTE_WRITE,         /* a write finished (err 0 or negative) */
    BUS_NOTE_DEVICE_FAULT,  /* device stopped answering; msg says why */
    BUS_NOTE_DEVICE_OK,     /* device answers again */
    BUS_NOTE_LINK_DOWN,     /* the link could not be opened or was lost */
    BUS_NOTE_LINK_UP,
};

struct bus_note {
    enum bus_note_kind kind;
    uint32_t device;        /* index into the bus's devices */
    uint32_t channel;       /* owner's channel id (SAMPLE, WRITE) */
    int err;
    double value;
    int64_t t_ns;           /* CLOCK_MONOTONIC when the exchange finished */
    int64_t planned_ns;     /* WRITE: when the owner wanted it sent */
    int64_t sent_ns;        /* WRITE: when its bytes started on the wire */
    int64_t ready_ns;       /* WRITE: when the line was first free for it: planned_ns, or
                             * the end of a write due no later that ran past planned_ns
                             * (sent_ns - ready_ns: what the bus's scheduling added) */
    uint64_t tag;           /* WRITE: the owner's tag */
    char msg[160];
};

#endif
