/* After a restart: continue the journaled run, close it as interrupted, or refuse its journal. */
#include "resume.h"
#include "journal_check.h"
#include "base/diag.h"
#include "base/log.h"
#include "record/recovery.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Whether path is a file in directory dir (both resolved, so that "runs" and
 * "./runs" agree). */
static bool file_in_dir(const char *path, const char *dir)
{
    char p[PATH_MAX], dreal[PATH_MAX], preal[PATH_MAX];
    snprintf(p, sizeof p, "%s", path);
    const char *slash = strrchr(p, '/');
    const char *parent = slash == NULL ? "." : slash == p ? "/" : (p[slash - p] = '\0', p);
    return realpath(dir, dreal) != NULL && realpath(parent, preal) != NULL && strcmp(dreal, preal) == 0;
}

/* Check the journal's run file and read its last time stamp; 0, or -EINVAL
 * with the reason in why. */
static int check_run_file(const struct resume_source *src, const struct journal_rec *j, double *last,
                          char *why, size_t len)
{
    size_t n = strlen(j->file);
    if (n < 4 || strcmp(j->file + n - 3, ".h5") != 0 || !file_in_dir(j->file, src->data_dir)) {
        snprintf(why, len, "its run file %.150s is not a .h5 file in the data directory %.150s", j->file,
                 src->data_dir);
        return -EINVAL;
    }
    if (recorder_last_time(j->file, last) < 0) {
        snprintf(why, len, "cannot read its run file %.300s", j->file);
        return -EINVAL;
    }
    /* The journal's protocol hash is checked against its text already; a hand
     * that edited both still has to match what the run file recorded. */
    char hex[65], err[200];
    if (recorder_protocol_sha256(j->file, hex, err, sizeof err) < 0) {
        snprintf(why, len, "cannot read the protocol's sha256 in its run file %.200s: %.150s", j->file, err);
        return -EINVAL;
    }
    if (strcmp(hex, j->protocol_sha256) != 0) {
        snprintf(why, len, "edited protocol: the journal's protocol (sha256 %.12s...) is not the one "
                 "its run file recorded (%.12s...)", j->protocol_sha256, hex);
        return -EINVAL;
    }
    /* The gap is computed in ns from it: an absurd value would overflow. */
    double elapsed_s = (double)(src->now_wall_ns - j->start_wall_ns) / 1e9;
    if (!(*last >= 0 && *last <= elapsed_s + (double)JOURNAL_CLOCK_SLACK_NS / 1e9)) {
        snprintf(why, len, "its run file's last time stamp (%g s) is not within the run's %.0f s",
                 *last, elapsed_s);
        return -EINVAL;
    }
    return 0;
}

/* Load the journal's protocol on this rig and check the journal against it;
 * 0 and *plan, or a negative errno with the reason in why. */
static int load_journal_plan(const struct resume_source *src, const struct journal_rec *j,
                             struct plan **plan, char *why, size_t len)
{
    /* What needs no plan first: an edited protocol is reported as edited. */
    int rc = journal_validate(j, src->rig, NULL, src->now_wall_ns, why, len);
    if (rc < 0)
        return rc;
    struct diag dg;
    diag_init(&dg);
    rc = plan_load(j->protocol_path, j->protocol_text, strlen(j->protocol_text), src->rig, plan, &dg);
    if (rc < 0) {
        diag_print(&dg, stderr);
        snprintf(why, len, "its protocol does not load on this rig (%d errors, logged)", (int)dg.errors);
    }
    diag_free(&dg);
    if (rc == 0 && (rc = journal_validate(j, src->rig, *plan, src->now_wall_ns, why, len)) < 0) {
        plan_free(*plan);
        *plan = NULL;
    }
    return rc;
}

/* Decide what becomes of the journaled run. */
void resume_decide(const struct resume_source *src, struct resume_decision *out)
{
    memset(out, 0, sizeof *out);
    char *text;
    size_t len;
    /* Through the data directory's descriptor: never a link, never a fifo that would stall the start. */
    int rc = src->dir_fd < 0 ? src->dir_error
             : journal_read_at(src->dir_fd, JOURNAL_NAME, JOURNAL_MAX_BYTES, &text, &len);
    if (rc == -ENOENT) {
        out->verdict = RESUME_NOTHING;
        snprintf(out->why, sizeof out->why, "no journal: nothing was running");
        return;
    }
    out->verdict = RESUME_UNUSABLE;
    if (rc < 0) {
        snprintf(out->why, sizeof out->why, "cannot read it: %s", strerror(-rc));
        return;
    }
    rc = journal_decode(text, len, &out->j, out->why, sizeof out->why);
    free(text);
    if (rc < 0)
        return;
    out->decoded = true;
    rc = load_journal_plan(src, &out->j, &out->plan, out->why, sizeof out->why);
    if (rc == 0 && (rc = check_run_file(src, &out->j, &out->last_alive_s, out->why, sizeof out->why)) < 0) {
        plan_free(out->plan);
        out->plan = NULL;
    }
    if (rc < 0)
        return;
    bool resume = out->plan->on_restart == ON_RESTART_RESUME;
    out->verdict = resume ? RESUME_CONTINUE : RESUME_INTERRUPTED;
    snprintf(out->why, sizeof out->why, "on_restart: %s", resume ? "resume" : "safe-stop");
}

void resume_decision_free(struct resume_decision *d)
{
    journal_rec_free(&d->j);
    plan_free(d->plan);
    d->plan = NULL;
}

/* The journal cannot be used to continue its run: whatever that run left
 * running is put in its safe state (every actuator of the rig, by its
 * driver), the journal is kept aside as evidence, and an alarm (hence an
 * alert) says why. Silence here would leave a crashed run's pumps running. */
static void journal_unusable(const struct resume_source *src, const struct resume_hooks *h,
                             const char *run, const char *why)
{
    char path[4096], bad[sizeof path + 16];     /* as the journal writer's path */
    snprintf(path, sizeof path, "%s/%s", src->data_dir, JOURNAL_NAME);
    snprintf(bad, sizeof bad, "%s.unusable", path);
    bool kept = rename(path, bad) == 0;
    h->safe_state(h->ctx);
    log_error("journal", "%s: %s%s%s%s; no run continued, every actuator sent its safe state; %s%s",
              path, run ? "run " : "", run ? run : "", run ? ": " : "", why,
              kept ? "journal kept as " : "", kept ? bad : "the journal could not be renamed");
    char msg[1024];
    snprintf(msg, sizeof msg,
             "run journal unusable%s%.8s: %s; every actuator sent its safe state; kept as %s.unusable",
             run ? " for run " : "", run ? run : "", why, JOURNAL_NAME);
    h->alarm(h->ctx, "journal_unusable", msg);
}

/* A run was going when the daemon last stopped: continue it as its
 * protocol's on_restart says, once its journal has been checked; a journal
 * that cannot be used makes the rig safe and raises an alarm. */
void resume_at_start(const struct resume_source *src, const struct resume_hooks *h)
{
    struct resume_decision d;
    resume_decide(src, &d);
    if (d.verdict == RESUME_UNUSABLE) {
        journal_unusable(src, h, d.decoded ? d.j.run_id : NULL, d.why);
    } else if (d.verdict == RESUME_CONTINUE || d.verdict == RESUME_INTERRUPTED) {
        struct plan *plan = d.plan;
        d.plan = NULL;              /* the run owns it now, also on failure */
        char *name = strdup(plan->name);
        int rc = h->continue_run(h->ctx, &d.j, plan, d.last_alive_s);
        if (rc < 0) {
            char why[128];
            snprintf(why, sizeof why, "the run cannot be continued: %s", strerror(-rc));
            journal_unusable(src, h, d.j.run_id, why);
        } else {
            log_warn("journal", "continuing run %.8s (%s) in %s", d.j.run_id, name ? name : "?", d.j.file);
        }
        free(name);
    }
    resume_decision_free(&d);
}
