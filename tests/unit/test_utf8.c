/* UTF-8 in fixed-size fields: validation, and cuts that never split a character. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "base/utf8.h"

static void test_valid_accepts_utf8_and_refuses_the_rest(void **state)
{
    (void)state;
    static const char *const good[] = { "", "Müller", "Grüße aus Köln", "µL/min", "日本語",
                                        "\xf0\x9f\xa7\xaa test tube", "\xed\x9f\xbf", "\xf4\x8f\xbf\xbf" };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_true(utf8_valid(good[i], strlen(good[i])));
    static const char *const bad[] = {
        "M\xfcller",            /* Latin-1 u-umlaut */
        "abc\xc3",              /* cut after the first byte of a 2-byte character */
        "\xe6\x97",             /* a 3-byte character missing its last byte */
        "\x80",                 /* a lone continuation byte */
        "\xc0\xaf",             /* overlong '/' */
        "\xe0\x80\xaf",         /* overlong, 3 bytes */
        "\xed\xa0\x80",         /* a UTF-16 surrogate */
        "\xf4\x90\x80\x80",     /* above U+10FFFF */
        "\xff",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(utf8_valid(bad[i], strlen(bad[i])));
    assert_int_equal(utf8_valid_prefix("Mü\xfcller", 9), 3);
}

static void test_copy_cuts_only_between_characters(void **state)
{
    (void)state;
    char buf[8];
    /* "Müller" is 7 bytes: it fits in 8 exactly. */
    assert_int_equal(utf8_copy(buf, sizeof buf, "Müller"), 7);
    assert_string_equal(buf, "Müller");
    /* "abcdeé" is 7 bytes; into 7 (6 + NUL) the é would be split: it goes whole. */
    char small[7];
    assert_int_equal(utf8_copy(small, sizeof small, "abcdeé"), 7);
    assert_string_equal(small, "abcde");
    assert_true(utf8_valid(small, strlen(small)));
    /* Every cut of a string of 1-, 2-, 3- and 4-byte characters stays valid and
     * is as long as it can be. */
    const char *s = "a\xc3\xa9\xe6\x97\xa5\xf0\x9f\xa7\xaa" "b";
    static const size_t keep[] = { 0, 1, 1, 3, 3, 3, 6, 6, 6, 6, 10, 11 };
    for (size_t cap = 1; cap <= 12; cap++) {
        char out[16];
        size_t n = utf8_copy(out, cap, s);
        assert_int_equal(n, 11);
        assert_int_equal(strlen(out), keep[cap - 1]);
        assert_true(utf8_valid(out, strlen(out)));
        assert_memory_equal(out, s, strlen(out));
    }
}

static void test_cut_keeps_ascii_and_whole_characters(void **state)
{
    (void)state;
    assert_int_equal(utf8_cut("hello", 3), 3);
    assert_int_equal(utf8_cut("hi", 10), 2);
    assert_int_equal(utf8_cut("\xc3\xa9\xc3\xa9", 3), 2);
    assert_int_equal(utf8_cut("\xc3\xa9\xc3\xa9", 4), 4);
    assert_int_equal(utf8_cut("\xf0\x9f\xa7\xaa", 3), 0);
}

/* A 96-byte name ending in é, in a 96-byte field (95 + NUL): the é goes. */
static void test_operator_name_of_96_bytes_ending_in_e_acute(void **state)
{
    (void)state;
    char name[97];
    memset(name, 'x', 94);
    memcpy(name + 94, "\xc3\xa9", 3);
    assert_int_equal(strlen(name), 96);
    char field[96];
    assert_int_equal(utf8_copy(field, sizeof field, name), 96);
    assert_int_equal(strlen(field), 94);
    assert_true(utf8_valid(field, strlen(field)));
}

static void test_format_cuts_on_a_boundary(void **state)
{
    (void)state;
    char buf[12];
    int n = utf8_format(buf, sizeof buf, "step '%s'", "Spülung");
    assert_int_equal(n, 15);
    assert_true(utf8_valid(buf, strlen(buf)));
    assert_string_equal(buf, "step 'Sp\xc3\xbcl");   /* 11 bytes */
    n = utf8_format(buf, 10, "step '%s'", "Spülung");
    assert_string_equal(buf, "step 'Sp");            /* ü would not fit whole */
    n = utf8_format(buf, sizeof buf, "%d", 42);
    assert_int_equal(n, 2);
    assert_string_equal(buf, "42");
}

static void test_line_col_counts_characters(void **state)
{
    (void)state;
    int line, col;
    const char *t = "name: x\nsteps: [é, \xff]\n";
    utf8_line_col(t, utf8_valid_prefix(t, strlen(t)), &line, &col);
    assert_int_equal(line, 2);
    assert_int_equal(col, 12);
}

/* A device's garbage becomes '?', byte for byte; valid text is untouched. */
static void test_scrub_replaces_only_bad_bytes(void **state)
{
    (void)state;
    char ok[] = "M\xc3\xbcller 42";
    utf8_scrub(ok);
    assert_string_equal(ok, "M\xc3\xbcller 42");
    char bad[] = "rate \xff\xfe? \xc3(x \xe2\x82";
    utf8_scrub(bad);
    assert_string_equal(bad, "rate ??? ?(x ??");
    assert_true(utf8_valid(bad, strlen(bad)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_accepts_utf8_and_refuses_the_rest),
        cmocka_unit_test(test_copy_cuts_only_between_characters),
        cmocka_unit_test(test_cut_keeps_ascii_and_whole_characters),
        cmocka_unit_test(test_operator_name_of_96_bytes_ending_in_e_acute),
        cmocka_unit_test(test_format_cuts_on_a_boundary),
        cmocka_unit_test(test_line_col_counts_characters),
        cmocka_unit_test(test_scrub_replaces_only_bad_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
