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
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "journal.h"
#include "plan/plan.h"
#include "plan/rig.h"
#include "run/clock.h"

struct alarms;
struct latch;
struct interlocks;

/* What the store works on, given by its owner (the daemon); what the pointers
 * point to must outlive the store. Both hooks are required. */
struct latchstore_host {
    uv_loop_t *loop;            /* the writer's thread-pool work */
    struct pclock *clock;
    const struct rig *rig;
    const char *data_dir;
    struct alarms *alarms;      /* a restored hold raises its alarm again here */
    struct latch *latch;        /* the holds: written to the file, restored into */
    struct interlocks *il;      /* a restored hold's limit is watched again here */
    void *ctx;                  /* given to the hooks */
    /* Put the rig in its safe state: targets first, then every other device's own. */
    void (*safe_state)(void *ctx, const struct plan_target *targets, size_t n);
    /* Record an event (in the current run's file, or the log). */
    void (*event)(void *ctx, int64_t t, const char *severity, const char *source, const char *code,
                  const char *message);
};

struct latchstore {
    struct latchstore_host h;   /* a copy of what latchstore_restore was given */
    struct journal_writer w;    /* latch.json in the data directory */
    char *last;                 /* the text last queued (owned); NULL: no file queued */
    bool ready;                 /* restored: from now on the file follows the holds */
};

/* Open the data directory's latch file and hold again what it keeps (or
 * everything, if it cannot be used). Call once, after the buses started and
 * before a journaled run continues or a command is served. Blocking (a small
 * local file). s must be zeroed before. */
void latchstore_restore(struct latchstore *s, const struct latchstore_host *h);

/* Queue a write of the latch file if the holds or their acknowledgements
 * changed since the last one (the file is removed once nothing is held).
 * Nothing before latchstore_restore. */
void latchstore_sync(struct latchstore *s);

/* Free what is queued; the loop must have finished any write in flight. */
void latchstore_free(struct latchstore *s);

#endif
