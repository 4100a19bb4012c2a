/* Crash recovery from start to decision: each data directory of
 * tests/unit/fixtures/resume/ is copied, its run files are written by the
 * recorder and killed (kill -9) as a crash leaves them, the directory is
 * recovered as perfused does at start (record/recovery.h), and what becomes
 * of the journaled run is decided (daemon/resume.h), with its reason. The
 * journals are written by tests/unit/fixtures/resume/make-fixtures.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <pthread.h>
#include <signal.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon/resume.h"
#include "daemon/run.h"
#include "plan/rig.h"
#include "record/recorder.h"
#include "record/recovery.h"
#include "record/runfile.h"
#include "base/yamldoc.h"

/* Tests run from the repository root (make unit). */
#define FIXTURES "tests/unit/fixtures/resume/"
/* The fixtures' run start and the wall clock they are read at (make-fixtures.py). */
#define START_NS 1796000000000000000LL
#define NOW_NS (START_NS + 70 * 1000000000LL)
#define RUN "20261129-221320-fixture-01234567.h5"
#define RUN_ID "0123456789abcdef0123456789abcdef"
/* The samples a crashed run file holds: at 0.5 s, 1 s, ... LAST_T s. */
#define N_SAMPLES 10
#define LAST_T 5.0

static struct rig *rig;

/* Load the rig the fixtures were written on, and check they were written for it. */
static int load_rig(void **state)
{
    (void)state;
    struct diag d;
    diag_init(&d);
    int rc = rig_load(FIXTURES "rig.yaml", &rig, &d);
    diag_print(&d, stderr);
    diag_free(&d);
    if (rc < 0) {
        fprintf(stderr, "cannot load " FIXTURES "rig.yaml: run the tests from the repository root\n");
        return -1;
    }
    char *text;
    size_t len;
    if (read_file_text(FIXTURES "good/run.journal", 1 << 20, &text, &len) < 0)
        return -1;
    bool same = strstr(text, rig->digest) != NULL;
    free(text);
    if (!same)
        fprintf(stderr, "the fixtures' rig digest is not rig.yaml's: rerun make-fixtures.py %s\n",
                rig->digest);
    return same ? 0 : -1;
}

static int free_rig(void **state)
{
    (void)state;
    rig_free(rig);
    return 0;
}

/* ------------------------------------------------- a crashed run file */

struct flushed {
    pthread_mutex_t m;
    pthread_cond_t c;
    struct recorder *r;
    uint64_t written;
};

/* Notify callback in the child: wake it when records are written (and flushed). */
static void on_status(void *arg)
{
    struct flushed *fl = arg;
    pthread_mutex_lock(&fl->m);
    if (fl->r) {
        struct rec_status st;
        recorder_get_status(fl->r, &st);
        fl->written = st.written;
    }
    pthread_cond_signal(&fl->c);
    pthread_mutex_unlock(&fl->m);
}

/* Child: start a run file recording protocol_text, write N_SAMPLES samples,
 * wait until they are on disk, say so on fd, then wait to be killed. */
static void crash_child(const char *path, const char *protocol_text, int fd)
{
    static struct flushed fl = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, 0 };
    struct runfile_series s;
    char *rig_text;
    size_t len;
    if (runfile_series_build(rig, &s) < 0 || read_file_text(FIXTURES "rig.yaml", 1 << 20, &rig_text, &len) < 0)
        _exit(2);
    struct rec_run_info info = {
        .path = path, .run_id = RUN_ID, .protocol_name = "fixture", .protocol_path = "protocol.yaml",
        .protocol_text = protocol_text, .rig_name = rig->name, .rig_text = rig_text,
        .operator_name = "alice", .host = "h", .software_version = "test", .start_wall_ns = START_NS,
        .channels = s.chans, .n_channels = s.n_chans, .setpoints = s.sps, .n_setpoints = s.n_sps,
        .confirmed = s.confs, .n_confirmed = s.n_sps, .flush_interval_s = 0.05,
    };
    struct recorder *r;
    if (recorder_start(&r, &info, on_status, &fl) != 0)
        _exit(3);
    pthread_mutex_lock(&fl.m);
    fl.r = r;
    pthread_mutex_unlock(&fl.m);
    for (int i = 1; i <= N_SAMPLES; i++)
        recorder_sample(r, 0, LAST_T * i / N_SAMPLES, i);
    pthread_mutex_lock(&fl.m);
    while (fl.written < N_SAMPLES)
        pthread_cond_wait(&fl.c, &fl.m);
    pthread_mutex_unlock(&fl.m);
    if (write(fd, "F", 1) != 1)
        _exit(4);
    for (;;)
        pause();
}

/* Write a run file at path as a crash leaves it: kill -9 while it is open. */
static void make_crashed_run(const char *path, const char *protocol_file)
{
    char pfile[256], *text;
    size_t len;
    snprintf(pfile, sizeof pfile, FIXTURES "%s", protocol_file);
    assert_int_equal(read_file_text(pfile, 1 << 20, &text, &len), 0);
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        crash_child(path, text, p[1]);
    }
    close(p[1]);
    free(text);
    char c;
    ssize_t n = read(p[0], &c, 1);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    close(p[0]);
    assert_int_equal(n, 1);
}

/* ------------------------------------------------- a data directory */

/* Copy fixture case name to a new directory dir: its journal with its run
 * file's directory put in, and its crashed run files made. */
static void copy_case(const char *name, char dir[64])
{
    snprintf(dir, 64, "/tmp/perfuse-resume.XXXXXX");
    assert_non_null(mkdtemp(dir));
    char src[256], dst[256], *text;
    size_t len;
    snprintf(src, sizeof src, FIXTURES "%s/run.journal", name);
    if (read_file_text(src, 1 << 20, &text, &len) == 0) {
        snprintf(dst, sizeof dst, "%s/run.journal", dir);
        FILE *f = fopen(dst, "w");
        assert_non_null(f);
        const char *mark = "@DATA_DIR@", *at = strstr(text, mark);
        if (at != NULL)
            fprintf(f, "%.*s%s%s", (int)(at - text), text, dir, at + strlen(mark));
        else
            fputs(text, f);
        assert_int_equal(fclose(f), 0);
        free(text);
    }
    snprintf(src, sizeof src, FIXTURES "%s/crashed", name);
    FILE *f = fopen(src, "r");
    char run[128], protocol[128];
    while (f != NULL && fscanf(f, "%127s %127s", run, protocol) == 2) {
        snprintf(dst, sizeof dst, "%s/%s", dir, run);
        make_crashed_run(dst, protocol);
    }
    if (f != NULL)
        fclose(f);
}

/* Remove the data directory and what it holds (only plain files). */
static void remove_dir(const char *dir)
{
    DIR *dp = opendir(dir);
    assert_non_null(dp);
    for (struct dirent *e; (e = readdir(dp)) != NULL;)
        if (e->d_name[0] != '.')
            unlinkat(dirfd(dp), e->d_name, 0);
    closedir(dp);
    rmdir(dir);
}

/* Decide on the data directory dir, as perfused does at start. */
static void decide(const char *dir, struct resume_decision *d)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(fd >= 0);
    struct resume_source src = { .data_dir = dir, .dir_fd = fd, .rig = rig, .now_wall_ns = NOW_NS };
    resume_decide(&src, d);
    close(fd);
}

/* The root attribute state of a run file (which must open plainly). */
static void run_state(const char *path, char *buf, size_t len)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t a = H5Aopen(f, "state", H5P_DEFAULT);
    assert_true(a >= 0);
    hid_t t = H5Aget_type(a);
    assert_true(H5Tget_size(t) < len);
    memset(buf, 0, len);
    assert_true(H5Aread(a, t, buf) >= 0);
    H5Tclose(t);
    H5Aclose(a);
    H5Fclose(f);
}

/* The path of the fixtures' run file in dir. */
static void fixture_path(const char *dir, char *buf, size_t len)
{
    snprintf(buf, len, "%s/" RUN, dir);
}

/* ------------------------------------------------- the decisions */

static void test_no_journal_nothing_to_do(void **state)
{
    (void)state;
    char dir[64];
    copy_case("no-journal", dir);
    assert_int_equal(recorder_recover_dir(dir), 0);
    struct resume_decision d;
    decide(dir, &d);
    assert_int_equal(d.verdict, RESUME_NOTHING);
    assert_string_equal(d.why, "no journal: nothing was running");
    assert_false(d.decoded);
    assert_null(d.plan);
    resume_decision_free(&d);
    remove_dir(dir);
}

static void test_good_journal_and_file_continue(void **state)
{
    (void)state;
    char dir[64], path[128], st[80];
    copy_case("good", dir);
    fixture_path(dir, path, sizeof path);
    assert_int_equal(recorder_recover_dir(dir), 1);
    run_state(path, st, sizeof st);
    assert_string_equal(st, "interrupted");
    struct resume_decision d;
    decide(dir, &d);
    assert_int_equal(d.verdict, RESUME_CONTINUE);
    assert_string_equal(d.why, "on_restart: resume");
    assert_true(d.decoded);
    assert_string_equal(d.j.run_id, RUN_ID);
    assert_string_equal(d.j.file, path);
    assert_non_null(d.plan);
    assert_string_equal(d.plan->name, "fixture");
    assert_float_equal(d.last_alive_s, LAST_T, 1e-9);
    resume_decision_free(&d);
    remove_dir(dir);
}

static void test_good_journal_safe_stop_closes_interrupted(void **state)
{
    (void)state;
    char dir[64];
    copy_case("good-safe-stop", dir);
    assert_int_equal(recorder_recover_dir(dir), 1);
    struct resume_decision d;
    decide(dir, &d);
    assert_int_equal(d.verdict, RESUME_INTERRUPTED);
    assert_string_equal(d.why, "on_restart: safe-stop");
    assert_non_null(d.plan);
    assert_float_equal(d.last_alive_s, LAST_T, 1e-9);
    resume_decision_free(&d);
    remove_dir(dir);
}

static void test_journal_of_another_rig_unusable(void **state)
{
    (void)state;
    char dir[64];
    copy_case("other-rig", dir);
    assert_int_equal(recorder_recover_dir(dir), 1);
    struct resume_decision d;
    decide(dir, &d);
    assert_int_equal(d.verdict, RESUME_UNUSABLE);
    assert_string_equal(d.why, "the run was on rig 'bench-k', this daemon runs rig 'bench-j'");
    assert_true(d.decoded);             /* the alarm names the run */
    assert_string_equal(d.j.run_id, RUN_ID);
    assert_null(d.plan);
    resume_decision_free(&d);
    remove_dir(dir);
}

static void test_corrupt_journal_unusable(void **state)
{
    (void)state;
    char dir[64];
    copy_case("corrupt-journal", dir);
    assert_int_equal(recorder_recover_dir(dir), 1);
    struct resume_decision d;
    decide(dir, &d);
    assert_int_equal(d.verdict, RESUME_UNUSABLE);
    assert_non_null(strstr(d.why, "not JSON ("));
    assert_non_null(strstr(d.why, "): the file is truncated or corrupt"));
    assert_false(d.decoded);            /* no run id to trust */
    assert_null(d.plan);
    resume_decision_free(&d);
    remove_dir(dir);
}

/* The fixtures' run file in dir with suffix instead of ".h5" (e.g. "-continued.h5"). */
static void fixture_path_as(const char *dir, const char *suffix, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%.*s%s", dir, (int)strlen(RUN) - 3, RUN, suffix);
}

/* Put "written_wall_ns": written at the start of dir's journal. */
static void journal_written_at(const char *dir, long long written)
{
    char path[128], *text;
    size_t len;
    snprintf(path, sizeof path, "%s/run.journal", dir);
    assert_int_equal(read_file_text(path, 1 << 20, &text, &len), 0);
    assert_true(text[0] == '{');
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "{\"written_wall_ns\": %lld, %s", written, text + 1);
    assert_int_equal(fclose(f), 0);
    free(text);
}

static void test_journal_whose_run_file_is_missing_goes_on_in_a_new_file(void **state)
{
    (void)state;
    char dir[64], path[128], next[128], why[600];
    copy_case("missing-run-file", dir);
    fixture_path(dir, path, sizeof path);
    fixture_path_as(dir, "-continued.h5", next, sizeof next);
    assert_int_equal(recorder_recover_dir(dir), 0);
    struct resume_decision d;
    decide(dir, &d);
    assert_int_equal(d.verdict, RESUME_CONTINUE);
    assert_true(d.replace);
    assert_string_equal(d.new_file, next);
    assert_string_equal(d.file_problem, "is missing");
    snprintf(why, sizeof why, "on_restart: resume; its run file %s is missing: the run goes on in %s", path, next);
    assert_string_equal(d.why, why);
    assert_string_equal(d.j.file, path);        /* as the journal says: nothing is changed yet */
    assert_non_null(d.plan);
    /* An older journal, without its write time: the step's start (53 s) is the last moment known alive. */
    assert_float_equal(d.last_alive_s, 53.0, 1e-9);
    resume_decision_free(&d);
    remove_dir(dir);
}

static void test_empty_run_file_goes_on_from_the_journals_write_time(void **state)
{
    (void)state;
    char dir[64], path[128], next[128];
    copy_case("missing-run-file", dir);
    fixture_path(dir, path, sizeof path);
    /* What a crash before the recorder's first flush leaves: an empty file. */
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
    journal_written_at(dir, START_NS + 61500000000LL);
    /* The name taken by another file: the next one. */
    fixture_path_as(dir, "-continued.h5", next, sizeof next);
    assert_non_null(f = fopen(next, "w"));
    fclose(f);
    fixture_path_as(dir, "-continued-2.h5", next, sizeof next);
    assert_int_equal(recorder_recover_dir(dir), 0);
    struct resume_decision d;
    decide(dir, &d);
    assert_int_equal(d.verdict, RESUME_CONTINUE);
    assert_true(d.replace);
    assert_string_equal(d.new_file, next);
    assert_string_equal(d.file_problem, "is empty (nothing reached the disk)");
    assert_float_equal(d.last_alive_s, 61.5, 1e-9);
    resume_decision_free(&d);
    remove_dir(dir);
}

static void test_a_journal_written_at_an_absurd_time_is_unusable(void **state)
{
    (void)state;
    char dir[64];
    copy_case("missing-run-file", dir);
    journal_written_at(dir, START_NS - 3600 * 1000000000LL);
    struct resume_decision d;
    decide(dir, &d);
    assert_int_equal(d.verdict, RESUME_UNUSABLE);
    assert_non_null(strstr(d.why, "absurd time: the journal says it was written at"));
    assert_false(d.replace);
    assert_null(d.plan);
    resume_decision_free(&d);
    remove_dir(dir);
}

static void test_run_file_of_another_protocol_is_still_refused(void **state)
{
    (void)state;
    char dir[64], path[128];
    copy_case("missing-run-file", dir);
    fixture_path(dir, path, sizeof path);
    make_crashed_run(path, "protocol-safe-stop.yaml");
    assert_int_equal(recorder_recover_dir(dir), 1);
    struct resume_decision d;
    decide(dir, &d);
    assert_int_equal(d.verdict, RESUME_UNUSABLE);
    assert_non_null(strstr(d.why, "edited protocol: the journal's protocol"));
    assert_false(d.replace);
    assert_null(d.plan);
    resume_decision_free(&d);
    remove_dir(dir);
}

static void test_run_file_that_is_a_link_is_refused(void **state)
{
    (void)state;
    char dir[64], path[128], why[300];
    copy_case("missing-run-file", dir);
    fixture_path(dir, path, sizeof path);
    assert_int_equal(symlink("/dev/null", path), 0);
    struct resume_decision d;
    decide(dir, &d);
    assert_int_equal(d.verdict, RESUME_UNUSABLE);
    snprintf(why, sizeof why, "its run file %s is not a regular file (a symbolic link)", path);
    assert_string_equal(d.why, why);
    assert_false(d.replace);
    resume_decision_free(&d);
    remove_dir(dir);
}

static void test_run_file_without_journal_closed_interrupted(void **state)
{
    (void)state;
    char dir[64], path[128], st[80];
    copy_case("run-file-no-journal", dir);
    fixture_path(dir, path, sizeof path);
    assert_int_equal(recorder_recover_dir(dir), 1);
    run_state(path, st, sizeof st);
    assert_string_equal(st, "interrupted");
    assert_int_equal(recorder_recover_dir(dir), 0);     /* recovered: nothing left to do */
    struct resume_decision d;
    decide(dir, &d);
    assert_int_equal(d.verdict, RESUME_NOTHING);
    assert_string_equal(d.why, "no journal: nothing was running");
    resume_decision_free(&d);
    remove_dir(dir);
}

/* ------------------------------------------------- carried out */

/* A fake daemon: what the hooks were asked to do. */
struct fake {
    int safe_states, alarms, continues;
    char code[64], message[1024], run_id[33], alarm_run[33];
    double last_alive_s;
    int continue_rc;
    char file[4096], replaced[4096], kept_as[4200];  /* what continue_run was given */
};

static void fake_safe_state(void *ctx)
{
    ((struct fake *)ctx)->safe_states++;
}

static void fake_alarm(void *ctx, const char *run, const char *code, const char *message)
{
    struct fake *f = ctx;
    f->alarms++;
    snprintf(f->alarm_run, sizeof f->alarm_run, "%s", run ? run : "");
    snprintf(f->code, sizeof f->code, "%s", code);
    snprintf(f->message, sizeof f->message, "%s", message);
}

static int fake_continue(void *ctx, const struct journal_rec *j, struct plan *plan, double last_alive_s,
                         const struct run_replaced *rep)
{
    struct fake *f = ctx;
    f->continues++;
    snprintf(f->file, sizeof f->file, "%s", j->file);
    snprintf(f->replaced, sizeof f->replaced, "%s", rep ? rep->file : "");
    snprintf(f->kept_as, sizeof f->kept_as, "%s", rep && rep->kept_as ? rep->kept_as : "");
    snprintf(f->run_id, sizeof f->run_id, "%s", j->run_id);
    f->last_alive_s = last_alive_s;
    assert_non_null(plan);
    plan_free(plan);                    /* the run would own it, also on failure */
    return f->continue_rc;
}

/* Recover dir and carry out the decision on f. */
static void at_start(const char *dir, struct fake *f)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(fd >= 0);
    struct resume_source src = { .data_dir = dir, .dir_fd = fd, .rig = rig, .now_wall_ns = NOW_NS };
    struct resume_hooks h = { .ctx = f, .safe_state = fake_safe_state, .alarm = fake_alarm,
                              .continue_run = fake_continue };
    recorder_recover_dir(dir);
    resume_at_start(&src, &h);
    close(fd);
}

/* Whether name exists in dir. */
static bool exists(const char *dir, const char *name)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

static void test_unusable_journal_safe_state_alarm_and_kept_aside(void **state)
{
    (void)state;
    char dir[64];
    copy_case("other-rig", dir);
    struct fake f = { 0 };
    at_start(dir, &f);
    assert_int_equal(f.continues, 0);
    assert_int_equal(f.safe_states, 1);
    assert_int_equal(f.alarms, 1);
    assert_string_equal(f.code, "journal_unusable");
    assert_string_equal(f.message, "run journal unusable for run 01234567: the run was on rig 'bench-k', "
                        "this daemon runs rig 'bench-j'; every actuator sent its safe state; kept as "
                        "run.journal.unusable");
    assert_false(exists(dir, "run.journal"));
    assert_true(exists(dir, "run.journal.unusable"));
    remove_dir(dir);
}

static void test_good_journal_continued(void **state)
{
    (void)state;
    char dir[64];
    copy_case("good", dir);
    struct fake f = { 0 };
    at_start(dir, &f);
    assert_int_equal(f.continues, 1);
    assert_string_equal(f.run_id, RUN_ID);
    assert_float_equal(f.last_alive_s, LAST_T, 1e-9);
    assert_int_equal(f.safe_states, 0);
    assert_int_equal(f.alarms, 0);
    assert_true(exists(dir, "run.journal"));        /* the run goes on writing it */
    remove_dir(dir);
}

static void test_run_that_cannot_continue_unusable(void **state)
{
    (void)state;
    char dir[64];
    copy_case("good", dir);
    struct fake f = { .continue_rc = -EIO };
    at_start(dir, &f);
    assert_int_equal(f.continues, 1);
    assert_int_equal(f.safe_states, 1);
    assert_int_equal(f.alarms, 1);
    assert_string_equal(f.message, "run journal unusable for run 01234567: the run cannot be continued: "
                        "Input/output error; every actuator sent its safe state; kept as run.journal.unusable");
    assert_true(exists(dir, "run.journal.unusable"));
    remove_dir(dir);
}

static void test_unreadable_run_file_kept_aside_and_the_run_goes_on_in_a_new_one(void **state)
{
    (void)state;
    char dir[64], path[128], next[128], kept[160], msg[1024];
    copy_case("missing-run-file", dir);
    fixture_path(dir, path, sizeof path);
    fixture_path_as(dir, "-continued.h5", next, sizeof next);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("not HDF5", fp);
    fclose(fp);
    struct fake f = { 0 };
    at_start(dir, &f);
    assert_int_equal(f.continues, 1);
    assert_int_equal(f.safe_states, 0);
    assert_string_equal(f.file, next);
    assert_string_equal(f.replaced, path);
    snprintf(kept, sizeof kept, "%s.unreadable", path);
    assert_string_equal(f.kept_as, kept);
    assert_int_equal(access(path, F_OK), -1);       /* kept aside, as it was */
    assert_int_equal(access(kept, F_OK), 0);
    assert_int_equal(f.alarms, 1);
    assert_string_equal(f.code, "run_file_replaced");
    assert_string_equal(f.alarm_run, RUN_ID);
    snprintf(msg, sizeof msg, "run 01234567 goes on in %s: %s cannot be read (8 bytes), kept as .unreadable",
             strrchr(next, '/') + 1, strrchr(path, '/') + 1);
    assert_string_equal(f.message, msg);
    assert_true(exists(dir, "run.journal"));
    assert_false(exists(dir, "run.journal.unusable"));
    remove_dir(dir);
}

static void test_no_new_run_file_safe_state_and_the_old_one_back(void **state)
{
    (void)state;
    char dir[64], path[128];
    copy_case("missing-run-file", dir);
    fixture_path(dir, path, sizeof path);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fclose(fp);
    struct fake f = { .continue_rc = -ENOSPC };
    at_start(dir, &f);
    assert_int_equal(f.continues, 1);
    assert_int_equal(f.safe_states, 1);
    assert_string_equal(f.code, "journal_unusable");
    assert_non_null(strstr(f.message, "and a new run file cannot be made: No space left on device"));
    assert_int_equal(access(path, F_OK), 0);        /* back where the journal says */
    assert_true(exists(dir, "run.journal.unusable"));
    remove_dir(dir);
}

static void test_no_journal_nothing_done(void **state)
{
    (void)state;
    char dir[64];
    copy_case("run-file-no-journal", dir);
    struct fake f = { 0 };
    at_start(dir, &f);
    assert_int_equal(f.continues + f.safe_states + f.alarms, 0);
    assert_false(exists(dir, "run.journal.unusable"));
    remove_dir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_journal_nothing_to_do),
        cmocka_unit_test(test_good_journal_and_file_continue),
        cmocka_unit_test(test_good_journal_safe_stop_closes_interrupted),
        cmocka_unit_test(test_journal_of_another_rig_unusable),
        cmocka_unit_test(test_corrupt_journal_unusable),
        cmocka_unit_test(test_journal_whose_run_file_is_missing_goes_on_in_a_new_file),
        cmocka_unit_test(test_empty_run_file_goes_on_from_the_journals_write_time),
        cmocka_unit_test(test_a_journal_written_at_an_absurd_time_is_unusable),
        cmocka_unit_test(test_run_file_of_another_protocol_is_still_refused),
        cmocka_unit_test(test_run_file_that_is_a_link_is_refused),
        cmocka_unit_test(test_run_file_without_journal_closed_interrupted),
        cmocka_unit_test(test_unusable_journal_safe_state_alarm_and_kept_aside),
        cmocka_unit_test(test_good_journal_continued),
        cmocka_unit_test(test_run_that_cannot_continue_unusable),
        cmocka_unit_test(test_unreadable_run_file_kept_aside_and_the_run_goes_on_in_a_new_one),
        cmocka_unit_test(test_no_new_run_file_safe_state_and_the_old_one_back),
        cmocka_unit_test(test_no_journal_nothing_done),
    };
    return cmocka_run_group_tests(tests, load_rig, free_rig);
}
