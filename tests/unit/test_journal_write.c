/* The journal's durable write: relative to the directory's descriptor, never
 * through whatever sits at the temporary name, 0640 whatever the umask. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/journal.h"

static char dir[64], victim[128];
static int dfd;

/* A scratch directory, and a file outside it that must never change. */
static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/perfuse-jw.XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(victim, sizeof victim, "%s.victim", dir);
    FILE *f = fopen(victim, "w");
    if (f == NULL)
        return -1;
    fputs("not the journal\n", f);
    fclose(f);
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    return dfd < 0 ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    close(dfd);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", dir, victim);
    return system(cmd) == 0 ? 0 : -1;
}

/* The whole content of dir/name, or "" (static buffer). */
static const char *content(const char *path)
{
    static char buf[256];
    buf[0] = '\0';
    FILE *f = fopen(path, "r");
    if (f != NULL) {
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        buf[n] = '\0';
        fclose(f);
    }
    return buf;
}

static void test_a_link_at_the_temporary_name_is_removed_not_followed(void **state)
{
    (void)state;
    char tmp[128], path[128];
    snprintf(tmp, sizeof tmp, "%s/run.journal.tmp", dir);
    snprintf(path, sizeof path, "%s/run.journal", dir);
    assert_int_equal(symlink(victim, tmp), 0);
    mode_t old = umask(0);
    assert_int_equal(journal_write_at(dfd, "run.journal", "{\"journal\": 1}\n"), 0);
    umask(old);
    assert_string_equal(content(victim), "not the journal\n");
    assert_string_equal(content(path), "{\"journal\": 1}\n");
    struct stat st;
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0640);
    assert_int_equal(lstat(tmp, &st), -1);
}

static void test_a_stale_temporary_file_is_replaced(void **state)
{
    (void)state;
    char tmp[128], path[128];
    snprintf(tmp, sizeof tmp, "%s/run.journal.tmp", dir);
    snprintf(path, sizeof path, "%s/run.journal", dir);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    fputs("half a journal from before a crash, longer than the new one", f);
    fclose(f);
    assert_int_equal(journal_write_at(dfd, "run.journal", "{}\n"), 0);
    assert_string_equal(content(path), "{}\n");
}

static void test_a_directory_at_the_temporary_name_fails_cleanly(void **state)
{
    (void)state;
    char tmp[128];
    snprintf(tmp, sizeof tmp, "%s/run.journal.tmp", dir);
    assert_int_equal(mkdir(tmp, 0700), 0);
    int rc = journal_write_at(dfd, "run.journal", "{}\n");
    assert_true(rc == -EISDIR || rc == -EPERM);
    assert_int_equal(rmdir(tmp), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_a_link_at_the_temporary_name_is_removed_not_followed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_stale_temporary_file_is_replaced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_directory_at_the_temporary_name_fails_cleanly, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
