/* After a restart: continue the journaled run, close it as interrupted, or refuse its journal. */
#include "resume.h"
#include "journal_check.h"
#include "base/diag.h"
#include "base/log.h"
#include "base/utf8.h"
#include "record/recovery.h"

#include "run.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

/* Check the journal's run file and read its last time stamp; 0, -EINVAL
 * (refused, the reason in why) or -ENODATA (missing, or a regular file that
 * cannot be read: it may be replaced; what is wrong with it in why, after
 * its name, e.g. "is missing"). */
static int check_run_file(const struct resume_source *src, const struct journal_rec *j, double *last,
                          char *why, size_t len)
{
    size_t n = strlen(j->file);
    if (n < 4 || strcmp(j->file + n - 3, ".h5") != 0 || !file_in_dir(j->file, src->data_dir)) {
        snprintf(why, len, "its run file %.150s is not a .h5 file in the data directory %.150s", j->file,
                 src->data_dir);
        return -EINVAL;
    }
    struct stat st;
    if (lstat(j->file, &st) < 0) {
        bool missing = errno == ENOENT;
        if (missing)
            snprintf(why, len, "is missing");
        else
            snprintf(why, len, "its run file %.300s: %s", j->file, strerror(errno));
        return missing ? -ENODATA : -EINVAL;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(why, len, "its run file %.300s is not a regular file (%s)", j->file,
                 S_ISLNK(st.st_mode) ? "a symbolic link" : "a directory, device or fifo");
        return -EINVAL;
    }
    if (recorder_last_time(j->file, last) < 0) {
        if (st.st_size == 0)
            snprintf(why, len, "is empty (nothing reached the disk)");
        else
            snprintf(why, len, "cannot be read (%lld bytes)", (long long)st.st_size);
        return -ENODATA;
    }
    /* The journal's protocol hash is checked against its text already; a hand
     * that edited both still has to match what the run file recorded. */
    char hex[65], err[200];
    if (recorder_protocol_sha256(j->file, hex, err, sizeof err) < 0) {
        snprintf(why, len, "cannot be read (its protocol's sha256: %.150s)", err);
        return -ENODATA;
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

/* The last moment the run is known alive without its file, in s since t = 0:
 * when the journal was written, or (an older journal, without that time) when
 * its step began or its pause did. journal_validate has bounded both. */
static double journal_last_alive(const struct journal_rec *j)
{
    int64_t t = j->pos.step_start_ns;
    if (j->pos.paused && j->pos.pause_ns > t)
        t = j->pos.pause_ns;
    if (j->written_wall_ns != 0 && j->written_wall_ns - j->start_wall_ns > t)
        t = j->written_wall_ns - j->start_wall_ns;
    return t > 0 ? (double)t / 1e9 : 0;
}

/* The file name in path. */
static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* Whether anything (a file, a link, ...) is at path. */
static bool taken(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 || errno != ENOENT;
}

/* A new file beside file (NAME.h5) for the run to go on in: NAME-continued.h5,
 * or NAME-continued-2.h5 and on if taken (a "-continued" already in NAME is
 * not repeated). 0, or -EEXIST / -ENAMETOOLONG with the reason in why. */
static int new_file_name(const char *file, char *out, size_t outlen, char *why, size_t len)
{
    size_t n = strlen(file) - 3;            /* without ".h5" (checked) */
    const char *sfx = "-continued";
    const char *c = NULL;
    for (const char *p = file; (p = strstr(p, sfx)) != NULL && p < file + n; p++)
        c = p;
    /* NAME-continued or NAME-continued-K: go on from NAME. */
    if (c != NULL) {
        const char *e = c + strlen(sfx);
        size_t digits = e < file + n ? (size_t)(file + n - e - 1) : 0;
        if (e == file + n || (*e == '-' && digits >= 1 && digits <= 2 && strspn(e + 1, "0123456789") == digits))
            n = (size_t)(c - file);
    }
    for (int k = 1; k <= 99; k++) {
        char num[8] = "";
        if (k > 1)
            snprintf(num, sizeof num, "-%d", k);
        if ((size_t)snprintf(out, outlen, "%.*s%s%s.h5", (int)n, file, sfx, num) >= outlen) {
            snprintf(why, len, "no name is left for a new run file beside %.300s: the path is too long", file);
            return -ENAMETOOLONG;
        }
        if (!taken(out))
            return 0;
    }
    snprintf(why, len, "no name is left for a new run file beside %.300s: %.*s%s to -99 are taken", file,
             (int)n, file, sfx);
    return -EEXIST;
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
             : journal_read_at(src->dir_fd, src->name ? src->name : JOURNAL_NAME, JOURNAL_MAX_BYTES, &text, &len);
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
    if (rc == 0)
        rc = check_run_file(src, &out->j, &out->last_alive_s, out->file_problem, sizeof out->file_problem);
    if (rc == -ENODATA) {
        /* A sound journal whose file never reached the disk: the run goes on in a new one. */
        out->replace = true;
        out->last_alive_s = journal_last_alive(&out->j);
        rc = new_file_name(out->j.file, out->new_file, sizeof out->new_file, out->why, sizeof out->why);
    } else if (rc < 0 && out->plan != NULL) {
        snprintf(out->why, sizeof out->why, "%s", out->file_problem);
    }
    if (rc < 0) {
        plan_free(out->plan);
        out->plan = NULL;
        out->replace = false;
        return;
    }
    bool resume = out->plan->on_restart == ON_RESTART_RESUME;
    out->verdict = resume ? RESUME_CONTINUE : RESUME_INTERRUPTED;
    if (out->replace)
        snprintf(out->why, sizeof out->why, "on_restart: %s; its run file %.150s %.100s: the run goes "
                 "on in %.150s", resume ? "resume" : "safe-stop", out->j.file, out->file_problem, out->new_file);
    else
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
    snprintf(path, sizeof path, "%s/%s", src->data_dir, src->name ? src->name : JOURNAL_NAME);
    snprintf(bad, sizeof bad, "%s.unusable", path);
    bool kept = rename(path, bad) == 0;
    h->safe_state(h->ctx);
    log_error("journal", "%s: %s%s%s%s; no run continued, every actuator sent its safe state; %s%s",
              path, run ? "run " : "", run ? run : "", run ? ": " : "", why,
              kept ? "journal kept as " : "", kept ? bad : "the journal could not be renamed");
    char msg[1024];
    snprintf(msg, sizeof msg,
             "run journal unusable%s%.8s: %s; every actuator sent its safe state; kept as %s.unusable",
             run ? " for run " : "", run ? run : "", why, src->name ? src->name : JOURNAL_NAME);
    h->alarm(h->ctx, NULL, "journal_unusable", msg);
}

/* Keep the journal's unreadable run file aside as FILE.unreadable (never
 * over anything): no start-up recovery or listing of run files takes it for
 * one, and it stays as it was for whoever wants to look. Returns whether it
 * was renamed, kept_as filled. */
static bool keep_unreadable(const char *file, char *kept_as, size_t len)
{
    if ((size_t)snprintf(kept_as, len, "%s.unreadable", file) >= len || !taken(file))
        return false;
    if (renameat2(AT_FDCWD, file, AT_FDCWD, kept_as, RENAME_NOREPLACE) == 0)
        return true;
    log_error("journal", "cannot rename %s to %s: %s; it stays where it is", file, kept_as, strerror(errno));
    return false;
}

/* Continue the journaled run in a new file: the journal's own is missing or
 * cannot be read. The alarm names both. */
static void continue_in_new_file(const struct resume_source *src, const struct resume_hooks *h,
                                 struct resume_decision *d, struct plan *plan)
{
    char old[sizeof d->j.file], kept[sizeof d->j.file + 16];
    snprintf(old, sizeof old, "%s", d->j.file);
    bool renamed = keep_unreadable(old, kept, sizeof kept);
    struct run_replaced rep = { .file = old, .kept_as = renamed ? kept : NULL, .problem = d->file_problem };
    snprintf(d->j.file, sizeof d->j.file, "%s", d->new_file);
    bool resume = plan->on_restart == ON_RESTART_RESUME;
    int rc = h->continue_run(h->ctx, &d->j, plan, d->last_alive_s, &rep);
    if (rc < 0) {
        if (renamed && rename(kept, old) < 0)
            log_error("journal", "cannot rename %s back to %s: %s", kept, old, strerror(errno));
        snprintf(d->j.file, sizeof d->j.file, "%s", old);
        char why[700];
        snprintf(why, sizeof why, "its run file %.300s %.100s, and a new run file cannot be made: %s", old,
                 d->file_problem, strerror(-rc));
        journal_unusable(src, h, d->j.run_id, why);
        return;
    }
    log_warn("journal", "run %.8s: its run file %s %s; %s%s; the run %s in %s", d->j.run_id, old,
             d->file_problem, renamed ? "kept as " : "", renamed ? kept : taken(old) ? "left where it is"
             : "nothing to keep", resume ? "goes on" : "is closed as interrupted", d->new_file);
    /* An alarm holds 200 bytes: the names alone, both in the data directory. */
    char msg[512];
    utf8_format(msg, sizeof msg, "run %.8s %s in %s: %s %s%s", d->j.run_id,
                resume ? "goes on" : "closed as interrupted", base_name(d->new_file), base_name(old),
                d->file_problem, renamed ? ", kept as .unreadable" : "");
    h->alarm(h->ctx, d->j.run_id, "run_file_replaced", msg);
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
    } else if ((d.verdict == RESUME_CONTINUE || d.verdict == RESUME_INTERRUPTED) && d.replace) {
        struct plan *plan = d.plan;
        d.plan = NULL;              /* the run owns it now, also on failure */
        continue_in_new_file(src, h, &d, plan);
    } else if (d.verdict == RESUME_CONTINUE || d.verdict == RESUME_INTERRUPTED) {
        struct plan *plan = d.plan;
        d.plan = NULL;              /* the run owns it now, also on failure */
        char *name = strdup(plan->name);
        int rc = h->continue_run(h->ctx, &d.j, plan, d.last_alive_s, NULL);
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
