/* Loading a protocol on the worker threads. */
#include "planwork.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Worker: parse and validate; touches only w and the read-only rig. */
static void work_cb(struct workpool_req *req)
{
    struct plan_work *w = req->data;
    w->rc = plan_load(w->path, w->text, w->len, w->rig, &w->plan, &w->dg);
}

/* Loop thread: hand the result over. */
static void after_cb(struct workpool_req *req, int status)
{
    struct plan_work *w = req->data;
    if (status < 0 && w->rc == 0 && w->plan == NULL)
        w->rc = status;
    w->done(w);
}

/* Queue a protocol load. */
int plan_work_start(uv_loop_t *loop, const struct rig *rig, const char *path, const char *text,
                    size_t len, plan_work_done done, void *arg, struct plan_work **out)
{
    struct plan_work *w = calloc(1, sizeof *w);
    if (w == NULL)
        return -ENOMEM;
    diag_init(&w->dg);
    w->rig = rig;
    w->path = strdup(path);
    w->text = malloc(len + 1);
    w->len = len;
    w->done = done;
    w->arg = arg;
    w->req.data = w;
    if (w->path == NULL || w->text == NULL) {
        plan_work_free(w);
        return -ENOMEM;
    }
    memcpy(w->text, text, len);
    w->text[len] = '\0';
    int rc = workpool_queue(loop, &w->req, work_cb, after_cb);
    if (rc < 0) {
        plan_work_free(w);
        return rc;
    }
    *out = w;
    return 0;
}

/* Free a finished load. */
void plan_work_free(struct plan_work *w)
{
    if (w == NULL)
        return;
    plan_free(w->plan);
    diag_free(&w->dg);
    free(w->path);
    free(w->text);
    free(w);
}
