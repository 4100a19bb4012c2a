/*
 * Loading a protocol on the worker threads (base/workpool.h), so that a large or hostile
 * file never holds the loop thread. The worker reads only the rig (which does
 * not change while the daemon runs) and its own copy of the text; the result,
 * a plan or the diagnostics, is handed back to the loop in the done callback.
 */
#ifndef PERFUSE_PLANWORK_H
#define PERFUSE_PLANWORK_H

#include <stddef.h>

#include <uv.h>

#include "base/diag.h"
#include "base/workpool.h"
#include "plan.h"
#include "rig.h"

struct plan_work;
/* Called on the loop thread when the load has finished (w->rc, w->plan, w->dg). */
typedef void (*plan_work_done)(struct plan_work *w);

struct plan_work {
    struct workpool_req req;
    const struct rig *rig;      /* read-only for the whole load */
    char *path, *text;          /* owned copies */
    size_t len;
    int rc;                     /* of plan_load */
    struct plan *plan;          /* on success; owned until taken (set to NULL) */
    struct diag dg;             /* every diagnostic, on success too (warnings) */
    plan_work_done done;
    void *arg;                  /* the caller's */
};

/* Queue the load of text (copied) against rig; done runs on loop's thread.
 * Returns 0 with *out (freed by the caller with plan_work_free, once done has
 * run), or a negative errno. */
int plan_work_start(uv_loop_t *loop, const struct rig *rig, const char *path, const char *text,
                    size_t len, plan_work_done done, void *arg, struct plan_work **out);
/* Free a finished load and whatever of its result was not taken. */
void plan_work_free(struct plan_work *w);

#endif
