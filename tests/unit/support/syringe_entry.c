/*
 * The channels a syringe pump driver gives for its rig entry.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "pty_rig.h"
#include "syringe_entry.h"

/* Open a pump of driver from a full entry and from a diameter alone, checking both channels each time. */
void expect_syringe_pump_channels(const char *driver)
{
    const struct dev_param p[] = { { "address", "3", 1, 1 }, { "syringe.diameter", "14.57 mm", 1, 1 },
                                   { "syringe.volume", "10 mL", 1, 1 }, { "max_flow", "500 uL/min", 1, 1 } };
    struct config_errors e;
    struct driver_channel ch[DRIVER_MAX_CHANNELS];
    size_t n;
    void *st;
    assert_int_equal(pty_rig_open_device(driver, "pump1", p, 4, &e, &st, ch, &n), 0);
    assert_int_equal(e.n, 0);
    assert_int_equal(n, 2);
    assert_string_equal(ch[0].name, "flow");
    assert_int_equal(ch[0].q, Q_FLOW);
    assert_string_equal(ch[0].unit, "uL/min");
    assert_true(ch[0].readable && ch[0].writable);
    assert_float_equal(ch[0].min, -500, 0);
    assert_float_equal(ch[0].max, 500, 0);
    assert_float_equal(ch[0].sample_hz, 2, 0);
    assert_float_equal(ch[0].volume_ul, 10000, 0);
    assert_string_equal(ch[1].name, "dispensed");
    assert_int_equal(ch[1].q, Q_VOLUME);
    assert_string_equal(ch[1].unit, "uL");
    assert_true(ch[1].readable && !ch[1].writable);
    assert_float_equal(ch[1].sample_hz, 1, 0);
    driver_find(driver)->close(st);

    /* Only the diameter is required; max_flow defaults to 1000 uL/min. */
    assert_int_equal(pty_rig_open_device(driver, "pump1", p + 1, 1, &e, &st, ch, &n), 0);
    assert_float_equal(ch[0].max, 1000, 0);
    assert_float_equal(ch[0].volume_ul, 0, 0);
    driver_find(driver)->close(st);
}
