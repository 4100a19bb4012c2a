/* A FIFO of fixed-size records in recycled blocks (see recorder_queue.h). */
#include "recorder_queue.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Allocate one empty block. */
static struct recq_block *block_new(const struct recq *q)
{
    struct recq_block *b = malloc(sizeof *b + q->per_block * q->elem);
    if (b != NULL) {
        b->next = NULL;
        b->n = 0;
    }
    return b;
}

/* Set up a queue and preallocate its first spare blocks. */
int recq_init(struct recq *q, size_t elem, size_t block_bytes, size_t prealloc, size_t max_spare)
{
    memset(q, 0, sizeof *q);
    q->elem = elem;
    q->per_block = block_bytes > sizeof(struct recq_block) + elem
                       ? (block_bytes - sizeof(struct recq_block)) / elem : 1;
    q->max_spare = max_spare;
    for (size_t i = 0; i < prealloc; i++) {
        struct recq_block *b = block_new(q);
        if (b == NULL)
            return -ENOMEM;
        b->next = q->spare;
        q->spare = b;
        q->n_spare++;
    }
    return 0;
}

/* Free a chain of blocks. */
void recq_free_chain(struct recq_block *chain)
{
    while (chain != NULL) {
        struct recq_block *next = chain->next;
        free(chain);
        chain = next;
    }
}

/* Free every block, queued or spare. */
void recq_destroy(struct recq *q)
{
    recq_free_chain(q->head);
    recq_free_chain(q->spare);
    q->head = q->tail = q->spare = NULL;
    q->count = q->blocks = q->n_spare = 0;
}

/* A block to append to: a spare one if any, else a new one (only while the
 * queue grows past its usual size). */
static struct recq_block *block_get(struct recq *q)
{
    struct recq_block *b = q->spare;
    if (b != NULL) {
        q->spare = b->next;
        q->n_spare--;
        b->next = NULL;
        b->n = 0;
        return b;
    }
    return block_new(q);
}

/* Append a copy of rec to the tail block. */
int recq_push(struct recq *q, const void *rec)
{
    if (q->tail == NULL || q->tail->n == q->per_block) {
        struct recq_block *b = block_get(q);
        if (b == NULL)
            return -ENOMEM;
        if (q->tail != NULL)
            q->tail->next = b;
        else
            q->head = b;
        q->tail = b;
        q->blocks++;
    }
    memcpy((unsigned char *)q->tail->data + q->tail->n * q->elem, rec, q->elem);
    q->tail->n++;
    q->count++;
    return 0;
}

/* Move every queued block into b. */
void recq_take(struct recq *q, struct recq_batch *b)
{
    b->head = q->head;
    b->tail = q->tail;
    b->count = q->count;
    b->blocks = q->blocks;
    q->head = q->tail = NULL;
    q->count = q->blocks = 0;
}

/* Record i of block blk. */
void *recq_at(const struct recq *q, const struct recq_block *blk, size_t i)
{
    return (unsigned char *)blk->data + i * q->elem;
}

/* Return a batch's blocks to the spare list; hand back any excess to free. */
struct recq_block *recq_give_back(struct recq *q, struct recq_batch *b)
{
    struct recq_block *excess = NULL;
    if (b->head == NULL)
        return NULL;
    if (q->n_spare + b->blocks <= q->max_spare) {
        b->tail->next = q->spare;
        q->spare = b->head;
        q->n_spare += b->blocks;
    } else {
        excess = b->head;
    }
    b->head = b->tail = NULL;
    b->count = b->blocks = 0;
    return excess;
}
