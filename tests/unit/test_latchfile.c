/* The latch file: holds kept across a restart, and every damaged file refused with its reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "run/alarms.h"
#include "run/interlock.h"
#include "run/latch.h"
#include "daemon/journal.h"
#include "daemon/latchfile.h"
#include "small_rig.h"

#define S 1000000000LL
#define TRIPPED 1796605323123456000LL   /* 2026-12-07 */


/* A valid file: a rig limit's hold on every actuator, acknowledged by alice. */
static const char valid[] =
    "{\"latch\": 1, \"rig\": \"sim\", \"holds\": [\n"
    " {\"cause\": \"chip1.pressure above its max 40 mbar\", \"channel\": \"chip1.pressure\",\n"
    "  \"limit\": {\"from\": \"rig\", \"line\": 3, \"min\": null, \"max\": 40, \"for_ns\": 1000000000,"
    " \"side\": \"max\"},\n"
    "  \"held\": {\"pump1.flow\": null, \"pump2.flow\": null, \"valve1.position\": 2},\n"
    "  \"tripped\": \"2026-12-07T01:02:03.123456Z\", \"tripped_wall_ns\": 1796605323123456000,\n"
    "  \"acknowledged\": true, \"acknowledged_by\": \"alice\"}]}\n";

/* Three kinds of hold (a rig limit's, acknowledged; a protocol limit's with the values its
 * safe state wrote; one released by acknowledgement alone) come back as they were. */
static void test_holds_come_back_as_they_were_written(void **state)
{
    (void)state;
    struct rig_device devs[4];
    struct rig_channel chans[4];
    struct rig rig = small_rig(devs, chans);
    struct alarms a;
    alarms_init(&a, NULL, NULL);
    struct latch l;
    latch_init(&l, 4);

    bool all[4] = { true, true, true, false }, some[4] = { true, false, true, false };
    uint32_t id1 = alarms_raise(&a, 1, "alarm", "chip1.pressure", "limit_max", "r3", "high");
    struct latch_origin o1 = { .lim = { .channel = 3, .min = NAN, .max = 40, .for_ns = S, .line = 3,
                                        .action = LIMIT_SAFE_STOP }, .from_rig = true, .side = '>',
                               .tripped_wall_ns = TRIPPED };
    assert_int_equal(latch_add_origin(&l, id1, "chip1.pressure above its max 40 mbar", "chip1.pressure",
                                      all, NULL, 0, &o1), 0);
    alarms_ack(&a, 2, id1, "alice");
    uint32_t id2 = alarms_raise(&a, 3, "alarm", "chip1.pressure", "limit_min", "p12", "low");
    struct plan_target safe[2] = { { .channel = 0, .v0 = 0 }, { .channel = 2, .v0 = 2 } };
    struct latch_origin o2 = { .lim = { .channel = 3, .min = 5, .max = 90, .for_ns = 2 * S, .line = 12,
                                        .action = LIMIT_SAFE_STOP }, .side = '<',
                               .tripped_wall_ns = TRIPPED + S };
    assert_int_equal(latch_add_origin(&l, id2, "chip1.pressure below its min 5 mbar", "chip1.pressure",
                                      some, safe, 2, &o2), 0);
    assert_true(l.v[1].safe[0] == 0 && isnan(l.v[1].safe[1]) && l.v[1].safe[2] == 2);
    uint32_t id3 = alarms_raise(&a, 4, "alarm", "latch", "latch_unusable", NULL, "unusable");
    struct latch_origin o3 = { .lim.channel = -1, .tripped_wall_ns = TRIPPED + 2 * S };
    assert_int_equal(latch_add_origin(&l, id3, "the latch file could not be used: not JSON", "", all,
                                      NULL, 0, &o3), 0);

    char *text;
    assert_int_equal(latchfile_encode(&l, &a, &rig, &text), 0);
    struct latchfile f;
    char err[300] = "";
    assert_int_equal(latchfile_decode(text, strlen(text), &rig, &f, err, sizeof err), 0);
    assert_int_equal(f.n, 3);

    assert_string_equal(f.v[0].cause, "chip1.pressure above its max 40 mbar");
    assert_string_equal(f.v[0].channel, "chip1.pressure");
    assert_true(f.v[0].origin.from_rig);
    assert_int_equal(f.v[0].origin.side, '>');
    assert_int_equal(f.v[0].origin.lim.channel, 3);
    assert_int_equal(f.v[0].origin.lim.line, 3);
    assert_true(isnan(f.v[0].origin.lim.min));
    assert_true(f.v[0].origin.lim.max == 40);
    assert_int_equal(f.v[0].origin.lim.for_ns, S);
    assert_int_equal(f.v[0].origin.lim.action, LIMIT_SAFE_STOP);
    assert_int_equal(f.v[0].origin.tripped_wall_ns, TRIPPED);
    assert_true(f.v[0].held[0] && f.v[0].held[1] && f.v[0].held[2] && !f.v[0].held[3]);
    assert_true(isnan(f.v[0].safe[0]) && isnan(f.v[0].safe[2]));
    assert_true(f.v[0].acked);
    assert_string_equal(f.v[0].acked_by, "alice");

    assert_false(f.v[1].origin.from_rig);
    assert_int_equal(f.v[1].origin.side, '<');
    assert_true(f.v[1].origin.lim.min == 5 && f.v[1].origin.lim.max == 90);
    assert_int_equal(f.v[1].origin.lim.line, 12);
    assert_true(f.v[1].held[0] && !f.v[1].held[1] && f.v[1].held[2]);
    assert_true(f.v[1].safe[0] == 0 && f.v[1].safe[2] == 2);
    assert_false(f.v[1].acked);
    assert_int_equal(f.v[1].origin.tripped_wall_ns, TRIPPED + S);

    assert_string_equal(f.v[2].channel, "");
    assert_int_equal(f.v[2].origin.lim.channel, -1);
    assert_true(f.v[2].held[0] && f.v[2].held[1] && f.v[2].held[2]);
    latchfile_free(&f);
    free(text);

    /* Released, nothing is held: a file of no holds is still a valid one. */
    latch_free(&l);
    latch_init(&l, 4);
    assert_int_equal(latchfile_encode(&l, &a, &rig, &text), 0);
    assert_int_equal(latchfile_decode(text, strlen(text), &rig, &f, err, sizeof err), 0);
    assert_int_equal(f.n, 0);
    latchfile_free(&f);
    free(text);
    latch_free(&l);
    alarms_free(&a);
}

/* One edit of the valid file, and the words its refusal must contain. */
struct damage {
    const char *from, *to;      /* replace the first from by to; from NULL: the whole text is to */
    const char *why;
};

static const struct damage damages[] = {
    { "}]}", "}]", "not JSON" },
    { NULL, "", "not JSON" },
    { NULL, "[1, 2]", "not a perfuse latch file" },
    { "{\"latch\": 1,", "{\"latch\": 1, \"latch\": 1,", "not JSON" },            /* a duplicate */
    { "\"latch\": 1", "\"latch\": 2", "latch file version 2; this perfused reads version 1" },
    { "\"latch\": 1", "\"latch\": \"1\"", "no \"latch\" version" },
    { "\"rig\": \"sim\"", "\"rig\": \"bench\"", "written for rig 'bench', this daemon runs rig 'sim'" },
    { "\"holds\": [", "\"holds\": 3, \"x\": [", "\"holds\" is not a list" },
    { "\"cause\": \"chip1.pressure above its max 40 mbar\"", "\"cause\": \"\"", "hold 1: \"cause\"" },
    { "\"pump1.flow\": null", "\"pump9.flow\": null",
      "hold 1: held channel 'pump9.flow' is not a writable channel of rig 'sim'" },
    { "\"pump1.flow\": null", "\"chip1.pressure\": null",
      "hold 1: held channel 'chip1.pressure' is not a writable channel" },
    { "\"valve1.position\": 2", "\"valve1.position\": 9", "hold 1: the safe value of valve1.position is not" },
    { "\"valve1.position\": 2", "\"valve1.position\": \"2\"", "the safe value of valve1.position" },
    { "\"held\": {\"pump1.flow\": null, \"pump2.flow\": null, \"valve1.position\": 2}", "\"held\": {}",
      "hold 1: \"held\" is not an object naming at least one channel" },
    { "\"channel\": \"chip1.pressure\"", "\"channel\": \"chip7.pressure\"",
      "hold 1: the limit's channel 'chip7.pressure' is not a measured channel" },
    { "\"channel\": \"chip1.pressure\"", "\"channel\": \"pump1.flow\"", "not a measured channel" },
    { "\"side\": \"max\"", "\"side\": \"min\"", "hold 1: the limit tripped on its min, which it does not have" },
    { "\"side\": \"max\"", "\"side\": \"above\"", "limit \"side\"" },
    { "\"from\": \"rig\"", "\"from\": \"hand\"", "limit \"from\"" },
    { "\"line\": 3", "\"line\": -3", "limit \"line\"" },
    { "\"for_ns\": 1000000000", "\"for_ns\": 1.5", "limit \"for_ns\"" },
    { "\"max\": 40", "\"max\": \"40\"", "limit \"min\" or \"max\"" },
    { "\"limit\": {", "\"limit\": null, \"x\": {", "\"channel\" is set but \"limit\" is null" },
    { "\"tripped_wall_ns\": 1796605323123456000", "\"tripped_wall_ns\": -5", "\"tripped_wall_ns\"" },
    { "\"tripped_wall_ns\": 1796605323123456000", "\"tripped_wall_ns\": 99999999999999999999",
      "not JSON" },                                                              /* beyond int64 */
    { "\"acknowledged\": true", "\"acknowledged\": \"yes\"", "\"acknowledged\" is not true or false" },
    { "\"acknowledged_by\": \"alice\"", "\"acknowledged_by\": \"\"", "names no one" },
};

/* Apply a damage to the valid file (malloc'd). */
static char *damaged(const struct damage *dm)
{
    if (dm->from == NULL)
        return strdup(dm->to);
    const char *at = strstr(valid, dm->from);
    assert_non_null(at);
    size_t head = (size_t)(at - valid), n = strlen(valid) - strlen(dm->from) + strlen(dm->to) + 1;
    char *s = malloc(n);
    snprintf(s, n, "%.*s%s%s", (int)head, valid, dm->to, at + strlen(dm->from));
    return s;
}

/* Every damaged file is refused (never half-used), and the refusal says what is wrong. */
static void test_every_damaged_file_is_refused_with_its_reason(void **state)
{
    (void)state;
    struct rig_device devs[4];
    struct rig_channel chans[4];
    struct rig rig = small_rig(devs, chans);
    struct latchfile f;
    char err[300];
    assert_int_equal(latchfile_decode(valid, strlen(valid), &rig, &f, err, sizeof err), 0);
    assert_int_equal(f.n, 1);
    latchfile_free(&f);
    for (size_t i = 0; i < sizeof damages / sizeof *damages; i++) {
        char *text = damaged(&damages[i]);
        err[0] = '\0';
        int rc = latchfile_decode(text, strlen(text), &rig, &f, err, sizeof err);
        if (rc != -EINVAL || strstr(err, damages[i].why) == NULL)
            fail_msg("case %zu (%s): rc %d, \"%s\"; expected \"%s\"", i, damages[i].to, rc, err,
                     damages[i].why);
        latchfile_free(&f);
        free(text);
    }
}

/* The file is read only as a regular file, never through a link, a fifo or a directory,
 * and not when it is absurdly large; a missing one is told apart. */
static void test_only_a_regular_file_is_read(void **state)
{
    (void)state;
    char dir[] = "/tmp/perfuse-latchfile.XXXXXX";
    assert_non_null(mkdtemp(dir));
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    assert_true(dfd >= 0);
    char *text;
    size_t len;
    assert_int_equal(journal_read_at(dfd, "latch.json", LATCHFILE_MAX_BYTES, &text, &len), -ENOENT);

    int fd = openat(dfd, "latch.json", O_WRONLY | O_CREAT, 0640);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, valid, strlen(valid)), (ssize_t)strlen(valid));
    close(fd);
    assert_int_equal(journal_read_at(dfd, "latch.json", LATCHFILE_MAX_BYTES, &text, &len), 0);
    assert_int_equal(len, strlen(valid));
    assert_string_equal(text, valid);
    free(text);

    assert_int_equal(symlinkat("latch.json", dfd, "link.json"), 0);
    assert_int_equal(journal_read_at(dfd, "link.json", LATCHFILE_MAX_BYTES, &text, &len), -ELOOP);
    assert_int_equal(mkfifoat(dfd, "fifo.json", 0600), 0);
    assert_int_equal(journal_read_at(dfd, "fifo.json", LATCHFILE_MAX_BYTES, &text, &len), -EINVAL);
    assert_int_equal(mkdirat(dfd, "dir.json", 0700), 0);
    assert_int_equal(journal_read_at(dfd, "dir.json", LATCHFILE_MAX_BYTES, &text, &len), -EINVAL);
    fd = openat(dfd, "big.json", O_WRONLY | O_CREAT, 0640);
    assert_int_equal(ftruncate(fd, LATCHFILE_MAX_BYTES + 1), 0);
    close(fd);
    assert_int_equal(journal_read_at(dfd, "big.json", LATCHFILE_MAX_BYTES, &text, &len), -EFBIG);

    const char *names[] = { "latch.json", "link.json", "fifo.json", "big.json" };
    for (size_t i = 0; i < 4; i++)
        unlinkat(dfd, names[i], 0);
    unlinkat(dfd, "dir.json", AT_REMOVEDIR);
    close(dfd);
    rmdir(dir);
}

static int trips, clears;
static void on_trip(void *ctx, const struct limit_rule *r, double v, int64_t t)
{
    (void)ctx; (void)r; (void)v; (void)t;
    trips++;
}
static void on_clear(void *ctx, const struct limit_rule *r, double v, int64_t t)
{
    (void)ctx; (void)r; (void)v; (void)t;
    clears++;
}

/* A restored limit does not trip again while its channel stays out (the safe state is
 * already held) and clears on the first valid sample inside: the rig's own rule when the
 * rig still has it, else a lingering copy that goes once cleared, also past a new run. */
static void test_a_restored_limit_clears_once_its_channel_is_back(void **state)
{
    (void)state;
    struct interlock_hooks h = { .trip = on_trip, .clear = on_clear };
    struct plan_limit rig_lim = { .channel = 3, .min = NAN, .max = 40, .for_ns = S, .line = 3,
                                  .action = LIMIT_SAFE_STOP };
    struct interlocks il;
    assert_int_equal(interlocks_init(&il, &rig_lim, 1, &h), 0);
    trips = clears = 0;

    assert_int_equal(interlocks_restore(&il, &rig_lim, true, '>'), 0);
    assert_int_equal(il.n, 1);                                  /* the rig's rule itself */
    interlocks_on_sample(&il, 3, 80, 1 * S);
    interlocks_on_sample(&il, 3, 80, 3 * S);
    interlocks_on_sample(&il, 3, NAN, 4 * S);
    assert_int_equal(trips, 0);
    assert_int_equal(clears, 0);
    interlocks_on_sample(&il, 3, 30, 5 * S);
    assert_int_equal(clears, 1);
    interlocks_on_sample(&il, 3, 80, 6 * S);                    /* a new excursion trips as ever */
    interlocks_on_sample(&il, 3, 80, 7 * S);
    assert_int_equal(trips, 1);
    interlocks_on_sample(&il, 3, 30, 8 * S);
    assert_int_equal(clears, 2);

    /* The rig's limit was edited since, and a protocol's limit of an ended run: lingering copies. */
    struct plan_limit old = rig_lim, proto = { .channel = 3, .min = 10, .max = NAN, .line = 12 };
    old.max = 35;
    assert_int_equal(interlocks_restore(&il, &old, true, '>'), 0);
    assert_int_equal(interlocks_restore(&il, &proto, false, '<'), 0);
    assert_int_equal(il.n, 3);
    assert_true(il.rules[1].lingering && il.rules[1].from_rig && il.rules[1].tripped);
    assert_true(il.rules[2].lingering && !il.rules[2].from_rig && il.rules[2].lim.action == LIMIT_SAFE_STOP);
    assert_int_equal(interlocks_set_run(&il, NULL, 0, 0), 0);      /* a run ends: they stay */
    assert_int_equal(il.n, 3);
    interlocks_on_sample(&il, 3, 5, 9 * S);                     /* below 10: proto stays out */
    interlocks_on_sample(&il, 3, 5, 11 * S);
    assert_int_equal(clears, 3);                                /* the edited rig copy: back below 35 */
    assert_int_equal(il.n, 2);
    assert_int_equal(trips, 1);
    interlocks_on_sample(&il, 3, 20, 12 * S);
    assert_int_equal(clears, 4);
    assert_int_equal(il.n, 1);
    interlocks_free(&il);
}

/* A hold with no limit (a latch file that could not be used) is released by the
 * acknowledgement alone, and its refusal says so. */
static void test_a_hold_without_a_limit_is_released_by_its_acknowledgement(void **state)
{
    (void)state;
    struct alarms a;
    alarms_init(&a, NULL, NULL);
    struct latch l;
    latch_init(&l, 4);
    bool all[4] = { true, true, true, false };
    uint32_t id = alarms_raise(&a, 1, "alarm", "latch", "latch_unusable", NULL, "unusable");
    alarms_clear(&a, 1, "latch", "latch_unusable", NULL);
    assert_int_equal(latch_add_origin(&l, id, "the latch file could not be used: not JSON", "", all, NULL, 0,
                                      NULL), 0);
    assert_int_equal(l.v[0].origin.lim.channel, -1);
    assert_int_equal(latch_update(&l, &a, NULL, NULL), 0);
    char why[400];
    latch_refusal(latch_holder(&l, 1), &a, "pump2.flow", why, sizeof why);
    assert_string_equal(why, "pump2.flow is held in its safe state by alarm 1 (the latch file could not be "
                        "used: not JSON); check the rig, then acknowledge it with `perfusectl ack 1` to "
                        "release it");
    alarms_ack(&a, 2, id, "alice");
    assert_int_equal(latch_update(&l, &a, NULL, NULL), 1);
    assert_null(latch_holder(&l, 1));
    latch_free(&l);
    alarms_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_holds_come_back_as_they_were_written),
        cmocka_unit_test(test_every_damaged_file_is_refused_with_its_reason),
        cmocka_unit_test(test_only_a_regular_file_is_read),
        cmocka_unit_test(test_a_restored_limit_clears_once_its_channel_is_back),
        cmocka_unit_test(test_a_hold_without_a_limit_is_released_by_its_acknowledgement),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
