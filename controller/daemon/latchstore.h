/*
 * The latched safe states kept across a restart: the daemon's holds
 * (latch.h) written to DATA_DIR/latch.json (latchfile.h) whenever one is
 * added or released or its alarm acknowledged, and held again at start-up.
 *
 * At start-up each kept hold raises its alarm again (the limit's code, the
 * message saying it was restored and since when), its safe state is applied
 * again, its limit is watched again so that the alarm clears when the
 * channel is back inside, and the hold is bound to the new alarm id. A latch
 * file that cannot be used (unreadable, not JSON, another version or rig,
 * unknown channels, a symbolic link, ...) holds every actuator in its safe
 * state under the alarm latch_unusable until it is acknowledged; the file is
 * kept as latch.json.unusable.
 *
 * Loop thread only. Writes go through a journal_writer on the thread pool.
 */
#ifndef PERFUSE_LATCHSTORE_H
#define PERFUSE_LATCHSTORE_H

#include <stdbool.h>

#include "journal.h"

struct daemon;

struct latchstore {
    struct journal_writer w;    /* latch.json in the data directory */
    char *last;                 /* the text last queued (owned); NULL: no file queued */
    bool ready;                 /* restored: from now on the file follows the holds */
};

/* Open the data directory's latch file and hold again what it keeps (or
 * everything, if it cannot be used). Call once, after the buses started and
 * before a journaled run continues or a command is served. Blocking (a small
 * local file). */
void latchstore_restore(struct daemon *d);

/* Queue a write of the latch file if the holds or their acknowledgements
 * changed since the last one (the file is removed once nothing is held). */
void latchstore_sync(struct daemon *d);

/* Free what is queued; the loop must have finished any write in flight. */
void latchstore_free(struct latchstore *s);

#endif
