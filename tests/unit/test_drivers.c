/* The driver table and the helpers drivers read their rig entries with. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "drivers/driver.h"

static void test_every_listed_driver_is_found_and_complete(void **state)
{
    (void)state;
    char names[256];
    snprintf(names, sizeof names, "%s", driver_names());
    assert_string_equal(names, "newera, modbus, reglo, harvard, hamilton, ob1");
    int n = 0;
    for (char *save, *tok = strtok_r(names, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
        const struct driver_ops *d = driver_find(tok);
        assert_non_null(d);
        assert_string_equal(d->name, tok);
        assert_non_null(d->open);
        assert_non_null(d->close);
        assert_non_null(d->read);
        assert_non_null(d->bus_types);
        n++;
    }
    assert_int_equal(n, 6);
    assert_string_equal(driver_find("newera")->bus_types, "serial");
    assert_string_equal(driver_find("reglo")->bus_types, "serial");
    assert_string_equal(driver_find("modbus")->bus_types, "modbus-rtu,modbus-tcp");
    assert_string_equal(driver_find("harvard")->bus_types, "serial");
    assert_string_equal(driver_find("hamilton")->bus_types, "serial");
    assert_string_equal(driver_find("ob1")->bus_types, "serial");
    assert_null(driver_find("NewEra"));
    assert_null(driver_find(""));
    assert_null(driver_find(NULL));
}

/* The last config error reported. */
struct last_error {
    int n;
    char key[48];
    char text[256];
};

/* dev_config.error that keeps the last complaint. */
static void keep_error(const struct dev_config *cfg, const char *key, const char *fmt, ...)
{
    struct last_error *e = cfg->error_ctx;
    e->n++;
    snprintf(e->key, sizeof e->key, "%s", key ? key : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->text, sizeof e->text, fmt, ap);
    va_end(ap);
}

static const struct dev_param params[] = {
    { "address", "12", 3, 40 }, { "syringe.diameter", "14.57 mm", 3, 60 },
    { "max_flow", "0.5 mL/min", 4, 10 }, { "bad_int", "12x", 5, 1 }, { "big", "99999999999999999999", 5, 9 },
    { "flow_no_unit", "50", 6, 1 }, { "flow_wrong_unit", "50 mbar", 6, 20 },
};

/* A device config over params whose errors go to e. */
static struct dev_config config(struct last_error *e)
{
    memset(e, 0, sizeof *e);
    return (struct dev_config){ .name = "dev1", .file = "rig.yaml", .dir = ".", .params = params,
                                .n_params = sizeof params / sizeof params[0],
                                .error = keep_error, .error_ctx = e };
}

static void test_parameters_are_found_with_their_positions(void **state)
{
    (void)state;
    struct last_error e;
    struct dev_config cfg = config(&e);
    assert_string_equal(devcfg_get(&cfg, "syringe.diameter"), "14.57 mm");
    assert_null(devcfg_get(&cfg, "syringe"));
    const struct dev_param *p = devcfg_param(&cfg, "max_flow");
    assert_non_null(p);
    assert_int_equal(p->line, 4);
    assert_int_equal(p->col, 10);
    assert_null(devcfg_param(&cfg, "nothing"));
    assert_int_equal(e.n, 0);
}

static void test_quantities_convert_to_canonical_units(void **state)
{
    (void)state;
    struct last_error e;
    struct dev_config cfg = config(&e);
    double v = -1;
    assert_int_equal(devcfg_quantity(&cfg, "max_flow", Q_FLOW, &v), 0);
    assert_float_equal(v, 500, 1e-9);
    assert_int_equal(devcfg_quantity(&cfg, "syringe.diameter", Q_LENGTH, &v), 0);
    assert_float_equal(v, 14.57, 1e-12);
    v = -1;
    assert_int_equal(devcfg_quantity(&cfg, "absent", Q_FLOW, &v), -ENOENT);
    assert_int_equal(e.n, 0);
    assert_int_equal(devcfg_quantity(&cfg, "flow_no_unit", Q_FLOW, &v), -EINVAL);
    assert_int_equal(e.n, 1);
    assert_string_equal(e.key, "flow_no_unit");
    assert_non_null(strstr(e.text, "missing unit"));
    assert_int_equal(devcfg_quantity(&cfg, "flow_wrong_unit", Q_FLOW, &v), -EINVAL);
    assert_string_equal(e.key, "flow_wrong_unit");
    assert_non_null(strstr(e.text, "unit 'mbar' is a pressure, but a flow is expected"));
    assert_float_equal(v, -1, 0);       /* untouched on error */
}

static void test_integers_are_whole_and_in_range(void **state)
{
    (void)state;
    struct last_error e;
    struct dev_config cfg = config(&e);
    long n = -1;
    assert_int_equal(devcfg_int(&cfg, "address", 0, 99, &n), 0);
    assert_int_equal(n, 12);
    assert_int_equal(devcfg_int(&cfg, "absent", 0, 99, &n), -ENOENT);
    assert_int_equal(e.n, 0);
    assert_int_equal(devcfg_int(&cfg, "address", 0, 9, &n), -EINVAL);
    assert_string_equal(e.text, "'address' must be a whole number from 0 to 9, found '12'");
    assert_int_equal(devcfg_int(&cfg, "bad_int", 0, 99, &n), -EINVAL);
    assert_string_equal(e.key, "bad_int");
    assert_non_null(strstr(e.text, "found '12x'"));
    assert_int_equal(devcfg_int(&cfg, "big", 0, 99, &n), -EINVAL);
    assert_int_equal(devcfg_int(&cfg, "syringe.diameter", 0, 99, &n), -EINVAL);
    assert_int_equal(e.n, 4);
    assert_int_equal(n, 12);            /* untouched on error */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_listed_driver_is_found_and_complete),
        cmocka_unit_test(test_parameters_are_found_with_their_positions),
        cmocka_unit_test(test_quantities_convert_to_canonical_units),
        cmocka_unit_test(test_integers_are_whole_and_in_range),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
