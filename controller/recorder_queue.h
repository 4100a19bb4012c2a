/*
 * A FIFO of fixed-size records kept in recycled blocks, for the recorder.
 *
 * Producers append into the tail block; the consumer takes every queued
 * block at once (O(1), whatever the count) and hands the blocks back when it
 * has read them. Blocks come back to a spare list, so once the queue has
 * grown to its usual size nothing is allocated: a push is a memcpy.
 *
 * Not locked: the owner holds its own mutex around every call. Ownership: a
 * recq owns its blocks; a taken batch owns its blocks until recq_give_back.
 */
#ifndef PERFUSE_RECORDER_QUEUE_H
#define PERFUSE_RECORDER_QUEUE_H

#include <stddef.h>

struct recq_block {
    struct recq_block *next;
    size_t n;                     /* records used */
    max_align_t data[];           /* per_block records of elem bytes */
};

struct recq {
    size_t elem, per_block;
    struct recq_block *head, *tail;   /* queued blocks */
    size_t count;                     /* queued records */
    size_t blocks;                    /* queued blocks */
    struct recq_block *spare;         /* empty blocks ready for reuse */
    size_t n_spare, max_spare;
};

/* Blocks taken out of a queue at once. */
struct recq_batch {
    struct recq_block *head, *tail;
    size_t count, blocks;
};

/* Set up a queue of elem-byte records in blocks of about block_bytes, with
 * prealloc spare blocks made now and at most max_spare kept after a burst.
 * Returns 0 or -ENOMEM. */
int recq_init(struct recq *q, size_t elem, size_t block_bytes, size_t prealloc, size_t max_spare);
/* Free every block. */
void recq_destroy(struct recq *q);
/* Append a copy of rec; -ENOMEM if a new block was needed and none could be had. */
int recq_push(struct recq *q, const void *rec);
/* Move every queued block into b (O(1)); the queue is then empty. */
void recq_take(struct recq *q, struct recq_batch *b);
/* Record i of block blk. */
void *recq_at(const struct recq *q, const struct recq_block *blk, size_t i);
/* Return a batch's blocks to the spare list (O(1)). Blocks beyond max_spare
 * are returned as a chain for recq_free_chain, to free outside the lock. */
struct recq_block *recq_give_back(struct recq *q, struct recq_batch *b);
/* Free a chain of blocks. */
void recq_free_chain(struct recq_block *chain);

#endif
