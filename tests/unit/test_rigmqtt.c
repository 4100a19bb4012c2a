/* The rig's 'mqtt:' section: defaults, and each mistake named at its place with the fix. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "base/diag.h"
#include "base/yamldoc.h"
#include "plan/rigmqtt.h"

/* Parse text (a mapping with 'mqtt:') into m, the messages into d. */
static void parse(const char *text, struct rig_mqtt *m, struct diag *d)
{
    struct ydoc y;
    diag_init(d);
    assert_int_equal(ydoc_load(&y, "rig.yaml", text, strlen(text), d), 0);
    yaml_node_t *n = ymap_get(&y, ydoc_root(&y), "mqtt", NULL);
    assert_non_null(n);
    rig_mqtt_parse(&y, n, "/etc/perfuse", m);
    ydoc_free(&y);
}

/* Fail unless d holds exactly one error, at line:col, containing text. */
static void expect_error(const struct diag *d, int line, int col, const char *text)
{
    assert_int_equal(d->errors, 1);
    if (strstr(d->msgs[0].text, text) == NULL)
        fail_msg("error '%s' lacks '%s'", d->msgs[0].text, text);
    assert_int_equal(d->msgs[0].line, line);
    assert_int_equal(d->msgs[0].col, col);
}

static void test_defaults(void **state)
{
    (void)state;
    struct rig_mqtt m;
    struct diag d;
    parse("mqtt:\n  host: broker.lab\n", &m, &d);
    assert_int_equal(d.errors, 0);
    assert_true(m.on);
    assert_string_equal(m.host, "broker.lab");
    assert_int_equal(m.port, 1883);
    assert_string_equal(m.site, "default");
    assert_true(m.interval_s == 1.0);
    assert_int_equal(m.queue, 10000);
    assert_int_equal(m.keepalive_s, 10);
    assert_null(m.ca);
    rig_mqtt_free(&m);
    diag_free(&d);
}

static void test_full(void **state)
{
    (void)state;
    struct rig_mqtt m;
    struct diag d;
    parse("mqtt:\n  host: 10.0.0.5\n  tls: {ca: ca.crt, cert: /k/rig.crt, key: rig.key}\n"
          "  username: rig1\n  password_file: mqtt.pw\n  site: lab2\n  interval: 500 ms\n"
          "  queue: 5000\n  keepalive: 30 s\n", &m, &d);
    assert_int_equal(d.errors, 0);
    assert_int_equal(m.port, 8883);        /* TLS: the MQTT over TLS port */
    assert_string_equal(m.ca, "/etc/perfuse/ca.crt");
    assert_string_equal(m.cert, "/k/rig.crt");
    assert_string_equal(m.key, "/etc/perfuse/rig.key");
    assert_string_equal(m.password_file, "/etc/perfuse/mqtt.pw");
    assert_string_equal(m.site, "lab2");
    assert_true(m.interval_s == 0.5);
    assert_int_equal(m.queue, 5000);
    assert_int_equal(m.keepalive_s, 30);
    rig_mqtt_free(&m);
    diag_free(&d);
}

static void test_errors(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int line, col;
        const char *msg;
    } cases[] = {
        { "mqtt:\n  port: 1883\n", 2, 3, "'mqtt' needs 'host'" },
        { "mqtt:\n  host: b\n  port: 99999\n", 3, 9, "99999" },
        { "mqtt:\n  host: b\n  site: lab/2\n", 3, 9, "cannot hold '/'" },
        { "mqtt:\n  host: b\n  interval: 5 ms\n", 3, 13, "between 0.1 s and 1 min" },
        { "mqtt:\n  host: b\n  tls: {cert: a.crt, key: a.key}\n", 3, 8, "needs 'ca'" },
        { "mqtt:\n  host: b\n  tls: {ca: c.crt, cert: a.crt}\n", 3, 26, "both 'cert' and 'key'" },
        { "mqtt:\n  host: b\n  password_file: pw\n", 3, 18, "needs 'mqtt.username'" },
        { "mqtt:\n  host: b\n  hots: c\n", 3, 3, "host" },
        { "mqtt: broker.lab\n", 1, 7, "must be a mapping" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct rig_mqtt m;
        struct diag d;
        parse(cases[i].text, &m, &d);
        if (d.errors != 1)
            diag_print(&d, stderr);
        expect_error(&d, cases[i].line, cases[i].col, cases[i].msg);
        rig_mqtt_free(&m);
        diag_free(&d);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_full),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
