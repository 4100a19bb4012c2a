/* The bus's note queue: samples are dropped oldest first, nothing else is. */
#include "note_queue.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* An empty queue that drops samples beyond limit notes. */
void note_queue_init(struct note_queue *q, size_t limit)
{
    memset(q, 0, sizeof *q);
    q->limit = limit ? limit : 1;
}

/* Remove note k, keeping the order of the others. */
static void remove_at(struct note_queue *q, size_t k)
{
    memmove(q->notes + k, q->notes + k + 1, (q->n - k - 1) * sizeof *q->notes);
    q->n--;
}

/* Append a copy of n, dropping the oldest sample if the queue is at its limit. */
int note_queue_push(struct note_queue *q, const struct bus_note *n)
{
    int dropped = 0;
    if (q->n >= q->limit) {
        size_t k = 0;
        while (k < q->n && q->notes[k].kind != BUS_NOTE_SAMPLE)
            k++;
        if (k < q->n) {
            remove_at(q, k);
            dropped = 1;
        } else if (n->kind == BUS_NOTE_SAMPLE) {
            return 1;       /* no older sample to make room: this one goes */
        }
    }
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 64;
        if (q->cap < q->limit && cap > q->limit)
            cap = q->limit;
        struct bus_note *v = realloc(q->notes, cap * sizeof *v);
        if (v == NULL)
            return -ENOMEM;
        q->notes = v;
        q->cap = cap;
    }
    q->notes[q->n++] = *n;
    return dropped;
}

/* Move up to max notes, oldest first, into out. */
size_t note_queue_take(struct note_queue *q, struct bus_note *out, size_t max)
{
    size_t n = q->n < max ? q->n : max;
    if (n == 0)
        return 0;
    memcpy(out, q->notes, n * sizeof *out);
    memmove(q->notes, q->notes + n, (q->n - n) * sizeof *q->notes);
    q->n -= n;
    return n;
}

/* Free the notes. */
void note_queue_free(struct note_queue *q)
{
    free(q->notes);
    q->notes = NULL;
    q->n = q->cap = 0;
}
