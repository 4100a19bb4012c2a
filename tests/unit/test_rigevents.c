/* The rig's events while no run records them: numbering, the ring's wrap,
 * texts cut to fit, and the broker's JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "daemon/rigevents.h"

static struct rig_events ev;

/* Numbered from 0; after more than the ring holds, the oldest are gone. */
static void test_wrap(void **state)
{
    (void)state;
    memset(&ev, 0, sizeof ev);
    assert_null(rig_events_at(&ev, 0));
    for (int i = 0; i < RIG_EVENTS_KEPT + 10; i++) {
        char m[32];
        snprintf(m, sizeof m, "event %d", i);
        rig_events_add(&ev, 1000000000LL * i, "info", "control", "cmd_set", m);
    }
    assert_int_equal(ev.total, RIG_EVENTS_KEPT + 10);
    assert_null(rig_events_at(&ev, 9));
    const struct rig_event *e = rig_events_at(&ev, 10);
    assert_non_null(e);
    assert_int_equal(e->seq, 10);
    assert_string_equal(e->message, "event 10");
    e = rig_events_at(&ev, RIG_EVENTS_KEPT + 9);
    assert_non_null(e);
    assert_string_equal(e->message, "event 265");
    assert_null(rig_events_at(&ev, RIG_EVENTS_KEPT + 10));
}

/* A long text is cut to fit, on a character boundary; the JSON has wall-clock time. */
static void test_cut_and_json(void **state)
{
    (void)state;
    memset(&ev, 0, sizeof ev);
    char longmsg[600];
    memset(longmsg, 'x', sizeof longmsg);
    strcpy(longmsg + 250, "\xc2\xb5\xc2\xb5\xc2\xb5 end");
    rig_events_add(&ev, 1796614471330000000LL, "warning", "pump1", "device_fault", longmsg);
    const struct rig_event *e = rig_events_at(&ev, 0);
    assert_true(strlen(e->message) < sizeof e->message);
    json_t *j = rig_event_json(e);
    assert_non_null(j);     /* jansson refuses invalid UTF-8: the cut kept it valid */
    assert_int_equal(json_integer_value(json_object_get(j, "seq")), 0);
    assert_true(json_real_value(json_object_get(j, "time")) > 1796614471.0);
    assert_string_equal(json_string_value(json_object_get(j, "code")), "device_fault");
    assert_true(strncmp(json_string_value(json_object_get(j, "utc")), "2026-12-", 8) == 0);
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wrap),
        cmocka_unit_test(test_cut_and_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
