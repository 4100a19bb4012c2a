/*
 * The queue of notes a bus keeps for its owner: first in, first out, bounded
 * for samples only. When the owner stops draining and the queue holds limit
 * notes, a new note makes room by dropping the oldest queued sample; with no
 * sample queued, a new sample is itself dropped. A write's outcome, a device
 * fault or recovery and link news are never dropped: the owner's view of
 * what the devices confirmed depends on every one of them, and there are
 * few (one per write the owner queued, one per change of state).
 *
 * Threads: none of its own; the bus guards it with its lock.
 * Ownership: the caller owns the struct; note_queue_free() frees the notes.
 */
#ifndef PERFUSE_NOTE_QUEUE_H
#define PERFUSE_NOTE_QUEUE_H

#include <stddef.h>

#include "bus_note.h"

struct note_queue {
    struct bus_note *notes;
    size_t n, cap;
    size_t limit;               /* samples are dropped to keep n at most this */
};

/* An empty queue that drops samples beyond limit notes. */
void note_queue_init(struct note_queue *q, size_t limit);
/* Append a copy of n. Returns 0, 1 if a sample was dropped to bound the
 * queue (the oldest, or n itself), or -ENOMEM if n could not be kept. */
int note_queue_push(struct note_queue *q, const struct bus_note *n);
/* Move up to max notes, oldest first, into out; returns how many. */
size_t note_queue_take(struct note_queue *q, struct bus_note *out, size_t max);
/* Free the notes. */
void note_queue_free(struct note_queue *q);

#endif
