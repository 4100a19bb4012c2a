/*
 * Crash recovery, the run half: after perfused restarts (kill -9, power cut,
 * SIGTERM while a run went on), what becomes of the run its journal
 * describes. One entry point, resume_at_start, called once at start-up
 * after the rig is loaded and the buses run; resume_decide is the decision
 * alone, without side effects, for tests.
 *
 * Where each part of crash recovery lives, and why:
 *   - record/recovery.h: the run files a crash left open in the data
 *     directory, found and made readable (state "interrupted"), and read back
 *     (last time stamp, protocol hash). Pure record layer, used by perfused
 *     at start (before this) and by `perfusectl recover`.
 *   - here: read the journal through the data directory's descriptor, check
 *     it against this rig and its protocol loaded on it (journal_check.h),
 *     check its run file, and decide: nothing to do, continue the run, close
 *     it as interrupted (both as the protocol's on_restart says), or refuse
 *     the journal; a refusal makes the rig safe, keeps the journal aside as
 *     run.journal.unusable, and logs and raises an alarm with the reason. A
 *     run file that is missing or cannot be read (a crash before its
 *     structure reached the disk) is no reason to refuse a sound journal: it
 *     is kept aside as FILE.unreadable, and the run goes on (or is closed) in
 *     a new file beside it, FILE-continued.h5, with alarm run_file_replaced. This
 *     needs the journal and plans, which are above the record layer, and it
 *     reaches the daemon only through hooks (the daemon includes this, not
 *     the other way round).
 *   - journal.h / journal_check.h: the journal's format and its checks.
 *   - run.h (run_continue): carrying out a continue or a close: reopening the
 *     run file, the restart event and alert, the safe state for a close; the
 *     runner (run/runner.h, runner_start_at) goes on from the journal's position.
 *
 * Blocking (HDF5 and file reads): start-up only, before the loop runs.
 */
#ifndef PERFUSE_RESUME_H
#define PERFUSE_RESUME_H

#include <stdbool.h>
#include <stdint.h>

#include "journal.h"
#include "plan/plan.h"
#include "plan/rig.h"

/* What becomes of the journaled run. */
enum resume_verdict {
    RESUME_NOTHING,             /* no journal: nothing was running */
    RESUME_UNUSABLE,            /* the journal cannot be used: safe state, kept aside, alarm */
    RESUME_CONTINUE,            /* on_restart: resume: the run goes on from its position */
    RESUME_INTERRUPTED,         /* on_restart: safe-stop: safe state, its file closed as interrupted */
};

/* Where the journal is and what it must fit. */
struct resume_source {
    const char *data_dir;       /* the run file must be a .h5 file in it */
    int dir_fd;                 /* the data directory, open (the journal writer's); < 0: not open */
    int dir_error;              /* why it could not be opened (negative errno) */
    const struct rig *rig;      /* the rig this daemon runs */
    int64_t now_wall_ns;        /* CLOCK_REALTIME now: the journal's times must lie before it */
    const char *name;           /* the journal's file name in the directory; NULL: JOURNAL_NAME
                                 * (each of several runs has its own, journal_slot_name) */
};

/* The decision and what it was made from. Free with resume_decision_free. */
struct resume_decision {
    enum resume_verdict verdict;
    char why[512];              /* the reason: what is wrong with an unusable journal, or the on_restart */
    bool decoded;               /* j holds a decoded journal (its run_id names the run) */
    struct journal_rec j;
    struct plan *plan;          /* CONTINUE, INTERRUPTED: the journal's protocol loaded on the rig */
    double last_alive_s;        /* CONTINUE, INTERRUPTED: the run file's last time stamp, or
                                 * (replace) the journal's write time (its position's time in an
                                 * older journal without one), in s since t = 0 */
    /* CONTINUE, INTERRUPTED: the run file is missing, or a regular file that
     * cannot be read (a crash before its structure reached the disk): the run
     * goes on (or is closed) in new_file, which does not exist yet. A file
     * that can be read but does not fit the journal (another protocol, time
     * stamps beyond the run) is not replaced: the journal is unusable. */
    bool replace;
    char new_file[4096];        /* replace: beside the old one, "-continued" (or "-continued-N") */
    char file_problem[512];     /* replace: what is wrong with the journal's run file */
};

/* Read, decode and check the journal in src's data directory and decide.
 * Nothing is changed; a protocol that does not load has its diagnostics
 * printed on stderr. Always fills out (free it with resume_decision_free). */
void resume_decide(const struct resume_source *src, struct resume_decision *out);
void resume_decision_free(struct resume_decision *d);

struct run_replaced;            /* run.h */

/* What the daemon does for a decision. */
struct resume_hooks {
    void *ctx;
    /* Put every actuator of the rig in its safe state. */
    void (*safe_state)(void *ctx);
    /* Raise an alarm (source "journal") with code and message; run: the run
     * it concerns (its id, started by continue_run), or NULL: the rig's. */
    void (*alarm)(void *ctx, const char *run, const char *code, const char *message);
    /* Continue the run (CONTINUE) or reopen it to close it as interrupted
     * (INTERRUPTED), as plan's on_restart says; takes plan, also on failure.
     * rep: NULL, or (replace) the journal's file that could not be read, the
     * run then goes on in a new file, j->file. 0, or a negative errno (the run
     * cannot be continued; its diagnostics already logged). */
    int (*continue_run)(void *ctx, const struct journal_rec *j, struct plan *plan, double last_alive_s,
                        const struct run_replaced *rep);
};

/* Decide, and carry the decision out through h. */
void resume_at_start(const struct resume_source *src, const struct resume_hooks *h);

#endif
