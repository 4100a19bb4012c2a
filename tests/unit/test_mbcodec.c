/* Modbus register codecs in every word order, and the RTU CRC. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>

#include "mbcodec.h"

static void test_float_in_all_four_orders(void **state)
{
    (void)state;
    /* 1.5f is 0x3FC00000. */
    static const struct { enum mb_order o; uint16_t r[2]; } cases[] = {
        { MB_ABCD, { 0x3FC0, 0x0000 } }, { MB_CDAB, { 0x0000, 0x3FC0 } },
        { MB_BADC, { 0xC03F, 0x0000 } }, { MB_DCBA, { 0x0000, 0xC03F } },
    };
    for (size_t i = 0; i < 4; i++) {
        uint16_t r[2];
        assert_int_equal(mb_encode(1.5, MB_F32, cases[i].o, r), 0);
        assert_int_equal(r[0], cases[i].r[0]);
        assert_int_equal(r[1], cases[i].r[1]);
        assert_float_equal(mb_decode(cases[i].r, MB_F32, cases[i].o), 1.5, 0);
    }
}

static void test_integers_and_signs(void **state)
{
    (void)state;
    uint16_t r[2];
    assert_int_equal(mb_encode(-2, MB_I16, MB_ABCD, r), 0);
    assert_int_equal(r[0], 0xFFFE);
    assert_float_equal(mb_decode(r, MB_I16, MB_ABCD), -2, 0);
    assert_float_equal(mb_decode(r, MB_U16, MB_ABCD), 65534, 0);
    assert_int_equal(mb_encode(0x12345678, MB_U32, MB_CDAB, r), 0);
    assert_int_equal(r[0], 0x5678);
    assert_int_equal(r[1], 0x1234);
    assert_int_equal(mb_encode(-100000, MB_I32, MB_DCBA, r), 0);
    assert_float_equal(mb_decode(r, MB_I32, MB_DCBA), -100000, 0);
    assert_int_equal(mb_encode(70000, MB_U16, MB_ABCD, r), -34);
    assert_int_equal(mb_encode(-1, MB_U32, MB_ABCD, r), -34);
    assert_int_equal(mb_encode(NAN, MB_I16, MB_ABCD, r), -34);
    assert_int_equal(mb_encode(NAN, MB_F32, MB_ABCD, r), 0);
    assert_true(isnan(mb_decode(r, MB_F32, MB_ABCD)));
}

static void test_round_trips(void **state)
{
    (void)state;
    const double values[] = { 0, 1, -1, 37.25, 1234.5, -0.125, 3.0e6 };
    for (int o = 0; o < 4; o++)
        for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
            uint16_t r[2];
            assert_int_equal(mb_encode(values[i], MB_F32, (enum mb_order)o, r), 0);
            assert_float_equal(mb_decode(r, MB_F32, (enum mb_order)o), values[i], 0);
            assert_int_equal(mb_encode(values[i], MB_I32, (enum mb_order)o, r), 0);
            assert_float_equal(mb_decode(r, MB_I32, (enum mb_order)o), nearbyint(values[i]), 0);
        }
}

static void test_crc_of_a_known_frame(void **state)
{
    (void)state;
    const uint8_t frame[] = { 0x01, 0x03, 0x00, 0x00, 0x00, 0x0A };
    uint16_t crc = mb_crc16(frame, sizeof frame);
    assert_int_equal(crc & 0xFF, 0xC5);
    assert_int_equal(crc >> 8, 0xCD);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_float_in_all_four_orders),
        cmocka_unit_test(test_integers_and_signs),
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_crc_of_a_known_frame),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
