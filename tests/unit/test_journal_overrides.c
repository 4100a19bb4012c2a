/* The run journal's overrides: kept through encode and decode. A journal
 * without them, or with one that cannot be read: test_journal.c, from fixtures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/journal.h"

/* A journal with one override (protocol value known) and one without a protocol value. */
static void test_overrides_survive_encode_and_decode(void **state)
{
    (void)state;
    static struct journal_rec j, back;
    memset(&j, 0, sizeof j);
    strcpy(j.run_id, "abcd0123456789abcdef0123456789ab");
    strcpy(j.file, "/data/r.h5");
    strcpy(j.rig_name, "sim");
    memset(j.rig_sha256, 'a', 64);
    memset(j.rig_digest, 'b', 64);
    memset(j.protocol_sha256, 'c', 64);
    j.protocol_path = "p.yaml";
    j.protocol_text = "perfuse: 1";
    j.n_setpoints = 1;
    strcpy(j.setpoints[0].channel, "pump1.flow");
    j.setpoints[0].value = 500;
    j.n_overrides = 2;
    strcpy(j.overrides[0].channel, "pump1.flow");
    j.overrides[0].value = 500;
    j.overrides[0].protocol = 10;
    strcpy(j.overrides[0].by, "uid 1000 (alice)");
    j.overrides[0].since_wall_ns = 1796600000123456789LL;
    strcpy(j.overrides[1].channel, "valve1.position");
    j.overrides[1].value = 3;
    j.overrides[1].protocol = NAN;
    strcpy(j.overrides[1].by, "uid 1001 (bob)");
    char *text, err[200];
    assert_int_equal(journal_encode(&j, &text), 0);
    assert_int_equal(journal_decode(text, strlen(text), &back, err, sizeof err), 0);
    free(text);
    assert_int_equal(back.n_overrides, 2);
    const struct journal_override *a = &back.overrides[0], *b = &back.overrides[1];
    if (strcmp(a->channel, "pump1.flow") != 0) {
        const struct journal_override *t = a;
        a = b;
        b = t;
    }
    assert_string_equal(a->channel, "pump1.flow");
    assert_true(a->value == 500 && a->protocol == 10);
    assert_string_equal(a->by, "uid 1000 (alice)");
    assert_true(a->since_wall_ns == 1796600000123456789LL);
    assert_string_equal(b->channel, "valve1.position");
    assert_true(b->value == 3 && isnan(b->protocol));
    journal_rec_free(&back);
}


int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_overrides_survive_encode_and_decode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
