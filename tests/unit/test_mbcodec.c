/* Modbus register codecs: every type in every word order against hand-computed registers, and the RTU CRC. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>

#include "drivers/mbcodec.h"

/* One value and its two registers in abcd, cdab, badc and dcba. */
struct case32 {
    enum mb_type type;
    double value;
    uint16_t regs[4][2];
};

static const struct case32 cases32[] = {
    /* 1.5f = 0x3FC00000 */
    { MB_F32, 1.5, { { 0x3FC0, 0x0000 }, { 0x0000, 0x3FC0 }, { 0xC03F, 0x0000 }, { 0x0000, 0xC03F } } },
    /* -2.5f = 0xC0200000 */
    { MB_F32, -2.5, { { 0xC020, 0x0000 }, { 0x0000, 0xC020 }, { 0x20C0, 0x0000 }, { 0x0000, 0x20C0 } } },
    /* 123.456f = 0x42F6E979 */
    { MB_F32, (float)123.456, { { 0x42F6, 0xE979 }, { 0xE979, 0x42F6 }, { 0xF642, 0x79E9 }, { 0x79E9, 0xF642 } } },
    /* 0x12345678 = 305419896 */
    { MB_U32, 305419896.0, { { 0x1234, 0x5678 }, { 0x5678, 0x1234 }, { 0x3412, 0x7856 }, { 0x7856, 0x3412 } } },
    /* 4294967295 = 0xFFFFFFFF, the largest u32 */
    { MB_U32, 4294967295.0, { { 0xFFFF, 0xFFFF }, { 0xFFFF, 0xFFFF }, { 0xFFFF, 0xFFFF }, { 0xFFFF, 0xFFFF } } },
    /* -2 = 0xFFFFFFFE */
    { MB_I32, -2.0, { { 0xFFFF, 0xFFFE }, { 0xFFFE, 0xFFFF }, { 0xFFFF, 0xFEFF }, { 0xFEFF, 0xFFFF } } },
    /* -100000 = 0xFFFE7960 */
    { MB_I32, -100000.0, { { 0xFFFE, 0x7960 }, { 0x7960, 0xFFFE }, { 0xFEFF, 0x6079 }, { 0x6079, 0xFEFF } } },
    /* INT32_MIN = 0x80000000 */
    { MB_I32, -2147483648.0, { { 0x8000, 0x0000 }, { 0x0000, 0x8000 }, { 0x0080, 0x0000 }, { 0x0000, 0x0080 } } },
};

static void test_32_bit_types_in_all_four_orders(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases32 / sizeof cases32[0]; i++) {
        const struct case32 *c = &cases32[i];
        for (int o = 0; o < 4; o++) {
            uint16_t r[2] = { 0xAAAA, 0xAAAA };
            assert_int_equal(mb_encode(c->value, c->type, (enum mb_order)o, r), 0);
            assert_int_equal(r[0], c->regs[o][0]);
            assert_int_equal(r[1], c->regs[o][1]);
            assert_true(mb_decode(c->regs[o], c->type, (enum mb_order)o) == c->value);
        }
    }
}

static void test_16_bit_types_and_signs(void **state)
{
    (void)state;
    uint16_t r[2] = { 0, 0xAAAA };
    static const struct { enum mb_type t; double v; uint16_t reg; } cases[] = {
        { MB_U16, 0, 0x0000 }, { MB_U16, 48879, 0xBEEF }, { MB_U16, 65535, 0xFFFF },
        { MB_I16, -1, 0xFFFF }, { MB_I16, -2, 0xFFFE }, { MB_I16, -32768, 0x8000 },
        { MB_I16, 32767, 0x7FFF }, { MB_I16, 372, 0x0174 }, { MB_BOOL, 1, 0x0001 },
        { MB_BOOL, 0, 0x0000 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (int o = 0; o < 4; o++) {   /* the order never touches a 16-bit value */
            assert_int_equal(mb_encode(cases[i].v, cases[i].t, (enum mb_order)o, r), 0);
            assert_int_equal(r[0], cases[i].reg);
            assert_int_equal(r[1], 0xAAAA);     /* one register written, not two */
            assert_true(mb_decode(r, cases[i].t, (enum mb_order)o) == cases[i].v);
        }
    }
    r[0] = 0xFFFE;
    assert_true(mb_decode(r, MB_U16, MB_ABCD) == 65534);
    assert_true(mb_decode(r, MB_I16, MB_ABCD) == -2);
    assert_true(mb_decode(r, MB_BOOL, MB_ABCD) == 1);  /* any non-zero bit register is on */
}

static void test_integers_round_half_away_from_zero(void **state)
{
    (void)state;
    uint16_t r[2];
    assert_int_equal(mb_encode(2.5, MB_I16, MB_ABCD, r), 0);
    assert_int_equal(r[0], 3);
    assert_int_equal(mb_encode(-2.5, MB_I16, MB_ABCD, r), 0);
    assert_int_equal((int16_t)r[0], -3);
    assert_int_equal(mb_encode(371.9999999, MB_U16, MB_ABCD, r), 0);
    assert_int_equal(r[0], 372);
    assert_int_equal(mb_encode(65535.4, MB_U16, MB_ABCD, r), 0);
    assert_int_equal(r[0], 65535);
    assert_int_equal(mb_encode(-100000.4, MB_I32, MB_CDAB, r), 0);
    assert_true(mb_decode(r, MB_I32, MB_CDAB) == -100000);
}

static void test_values_that_do_not_fit_are_refused(void **state)
{
    (void)state;
    uint16_t r[2] = { 0x5555, 0x5555 };
    static const struct { enum mb_type t; double v; } bad[] = {
        { MB_U16, 65535.5 }, { MB_U16, -1 }, { MB_U16, NAN }, { MB_I16, 32767.5 },
        { MB_I16, -32769 }, { MB_U32, 4294967296.0 }, { MB_U32, -0.5 }, { MB_I32, 2147483648.0 },
        { MB_I32, -2147483649.0 }, { MB_I32, INFINITY }, { MB_BOOL, 2 }, { MB_BOOL, -1 },
        { MB_F32, 1e39 }, { MB_F32, -1e39 },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(mb_encode(bad[i].v, bad[i].t, MB_ABCD, r), -ERANGE);
        assert_int_equal(r[0], 0x5555);     /* nothing written */
        assert_int_equal(r[1], 0x5555);
    }
    assert_int_equal(mb_encode(1, (enum mb_type)42, MB_ABCD, r), -EINVAL);
}

static void test_float_specials(void **state)
{
    (void)state;
    uint16_t r[2];
    assert_int_equal(mb_encode(NAN, MB_F32, MB_DCBA, r), 0);
    assert_true(isnan(mb_decode(r, MB_F32, MB_DCBA)));
    assert_int_equal(mb_encode(INFINITY, MB_F32, MB_ABCD, r), 0);
    assert_int_equal(r[0], 0x7F80);
    assert_int_equal(r[1], 0x0000);
    assert_true(isinf(mb_decode(r, MB_F32, MB_ABCD)));
    const uint16_t qnan[2] = { 0x7FC0, 0x0000 };
    assert_true(isnan(mb_decode(qnan, MB_F32, MB_ABCD)));
    assert_false(isnan(mb_decode(qnan, MB_F32, MB_CDAB)));  /* the same words read the other way */
}

static void test_round_trips_in_every_order(void **state)
{
    (void)state;
    const double values[] = { 0, 1, -1, 37.25, 1234.5, -0.125, 3.0e6, -65536, 123456789 };
    for (int o = 0; o < 4; o++) {
        for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
            uint16_t r[2];
            double v = values[i];
            assert_int_equal(mb_encode(v, MB_F32, (enum mb_order)o, r), 0);
            assert_true(mb_decode(r, MB_F32, (enum mb_order)o) == (double)(float)v);
            assert_int_equal(mb_encode(v, MB_I32, (enum mb_order)o, r), 0);
            assert_true(mb_decode(r, MB_I32, (enum mb_order)o) == round(v));
            if (v >= 0) {
                assert_int_equal(mb_encode(v, MB_U32, (enum mb_order)o, r), 0);
                assert_true(mb_decode(r, MB_U32, (enum mb_order)o) == round(v));
            }
        }
    }
}

static void test_names_parse_and_print(void **state)
{
    (void)state;
    enum mb_type t;
    enum mb_order o;
    const char *types[] = { "u16", "i16", "u32", "i32", "f32", "bool" };
    const char *orders[] = { "abcd", "cdab", "badc", "dcba" };
    for (int i = 0; i < 6; i++) {
        assert_int_equal(mb_type_parse(types[i], &t), 0);
        assert_int_equal(t, i);
        assert_string_equal(mb_type_name(t), types[i]);
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(mb_order_parse(orders[i], &o), 0);
        assert_int_equal(o, i);
        assert_string_equal(mb_order_name(o), orders[i]);
    }
    assert_int_equal(mb_type_parse("F32", &t), -EINVAL);
    assert_int_equal(mb_type_parse("float", &t), -EINVAL);
    assert_int_equal(mb_type_parse(NULL, &t), -EINVAL);
    assert_int_equal(mb_order_parse("abdc", &o), -EINVAL);
    assert_int_equal(mb_type_regs(MB_F32), 2);
    assert_int_equal(mb_type_regs(MB_U32), 2);
    assert_int_equal(mb_type_regs(MB_I16), 1);
    assert_int_equal(mb_type_regs(MB_BOOL), 1);
}

static void test_crc_of_known_frames(void **state)
{
    (void)state;
    const uint8_t read10[] = { 0x01, 0x03, 0x00, 0x00, 0x00, 0x0A };
    uint16_t crc = mb_crc16(read10, sizeof read10);
    assert_int_equal(crc & 0xFF, 0xC5);     /* sent low byte first */
    assert_int_equal(crc >> 8, 0xCD);
    const uint8_t read1[] = { 0x01, 0x03, 0x00, 0x00, 0x00, 0x01 };
    crc = mb_crc16(read1, sizeof read1);
    assert_int_equal(crc & 0xFF, 0x84);
    assert_int_equal(crc >> 8, 0x0A);
    /* A whole frame, CRC included, checks to zero. */
    const uint8_t whole[] = { 0x01, 0x03, 0x00, 0x00, 0x00, 0x0A, 0xC5, 0xCD };
    assert_int_equal(mb_crc16(whole, sizeof whole), 0);
    const uint8_t corrupt[] = { 0x01, 0x03, 0x00, 0x01, 0x00, 0x0A, 0xC5, 0xCD };
    assert_int_not_equal(mb_crc16(corrupt, sizeof corrupt), 0);
    assert_int_equal(mb_crc16(NULL, 0), 0xFFFF);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_32_bit_types_in_all_four_orders),
        cmocka_unit_test(test_16_bit_types_and_signs),
        cmocka_unit_test(test_integers_round_half_away_from_zero),
        cmocka_unit_test(test_values_that_do_not_fit_are_refused),
        cmocka_unit_test(test_float_specials),
        cmocka_unit_test(test_round_trips_in_every_order),
        cmocka_unit_test(test_names_parse_and_print),
        cmocka_unit_test(test_crc_of_known_frames),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
