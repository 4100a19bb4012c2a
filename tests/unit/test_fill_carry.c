/* Syringe fill levels carried over a restart: the journal keeps them, and the
 * level goes on from the pump's next counter reading, or is unknown if the
 * pump's count went back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/journal.h"
#include "run/syringe.h"

#define S 1000000000LL

/* The journaled level minus what the counter counted since the journal, however stale it is. */
static void test_a_carried_level_counts_on_from_the_journaled_counter(void **state)
{
    (void)state;
    struct syringe s;
    /* 2 mL given at the start; 1700 uL left when the counter read 5300 uL. */
    syringe_carry(&s, 10000, 0.10, 2000, FILL_GIVEN, 1700, 5300);
    assert_true(syringe_carry_pending(&s));
    assert_true(isnan(s.fill_ul));                  /* not confirmed before a reading */
    assert_int_equal(s.source, FILL_GIVEN);
    assert_true(s.fill0_ul == 2000);
    assert_int_equal(syringe_on_counter(&s, NAN, 1 * S), SYR_NONE);     /* a failed read confirms nothing */
    assert_true(syringe_carry_pending(&s));
    /* The pump went on infusing while perfused was down: 400 uL more counted. */
    assert_int_equal(syringe_on_counter(&s, 5700, 2 * S), SYR_NONE);
    assert_false(syringe_carry_pending(&s));
    assert_true(fabs(s.fill_ul - 1300) < 1e-9);
    /* The low threshold stays 10 % of the capacity; then empty at 0. */
    assert_int_equal(syringe_on_counter(&s, 5999, 3 * S), SYR_NONE);
    assert_int_equal(syringe_on_counter(&s, 6000, 4 * S), SYR_LOW);
    assert_int_equal(syringe_on_counter(&s, 6999, 5 * S), SYR_NONE);
    assert_int_equal(syringe_on_counter(&s, 7000, 6 * S), SYR_EMPTY);
    assert_true(fabs(s.fill_ul) < 1e-9);
}

/* A level already under the threshold when journaled is low again at the first reading. */
static void test_a_carried_low_level_warns_again(void **state)
{
    (void)state;
    struct syringe s;
    syringe_carry(&s, 0, 0.10, 2000, FILL_GIVEN, 150, 100);  /* no capacity: 10 % of the start */
    assert_int_equal(syringe_on_counter(&s, 100, 1 * S), SYR_LOW);
    assert_true(fabs(s.fill_ul - 150) < 1e-9);
    assert_int_equal(syringe_on_counter(&s, 250, 2 * S), SYR_EMPTY);
}

/* A counter below the journaled one: the pump reset its count, the level is not guessed. */
static void test_a_counter_that_went_back_leaves_the_level_unknown(void **state)
{
    (void)state;
    struct syringe s;
    syringe_carry(&s, 10000, 0.10, 8000, FILL_ASSUMED_FULL, 700, 5300);
    assert_int_equal(syringe_on_counter(&s, 12, 1 * S), SYR_LOST);
    assert_int_equal(s.source, FILL_UNKNOWN);
    assert_true(isnan(s.fill_ul) && isnan(s.fill0_ul));
    assert_false(syringe_carry_pending(&s));
    assert_true(s.carry_counter_ul == 5300);           /* kept for the message */
    /* Later readings neither bring a level back nor warn again. */
    assert_int_equal(syringe_on_counter(&s, 9000, 2 * S), SYR_NONE);
    assert_true(isnan(s.fill_ul));
}

/* A journal with no level, or an impossible one, carries nothing over. */
static void test_an_unknown_or_impossible_level_stays_unknown(void **state)
{
    (void)state;
    struct syringe s;
    syringe_carry(&s, 10000, 0.10, 8000, FILL_GIVEN, NAN, NAN);
    assert_false(syringe_carry_pending(&s));
    assert_int_equal(s.source, FILL_UNKNOWN);
    assert_int_equal(syringe_on_counter(&s, 100, 1 * S), SYR_NONE);
    assert_true(isnan(s.fill_ul));
    syringe_carry(&s, 10000, 0.10, 8000, FILL_GIVEN, 20000, 5);        /* above the volume */
    assert_false(syringe_carry_pending(&s));
    syringe_carry(&s, 10000, 0.10, 8000, FILL_UNKNOWN, 100, 5);
    assert_false(syringe_carry_pending(&s));
}

/* A journal with the syringes' levels, as the run writes it. */
static void base(struct journal_rec *j)
{
    memset(j, 0, sizeof *j);
    strcpy(j->run_id, "abcd0123456789abcdef0123456789ab");
    strcpy(j->file, "/data/r.h5");
    strcpy(j->rig_name, "sim");
    memset(j->rig_sha256, 'a', 64);
    memset(j->rig_digest, 'b', 64);
    memset(j->protocol_sha256, 'c', 64);
    j->protocol_path = "p.yaml";
    j->protocol_text = "perfuse: 1";
}

/* The levels survive encode and decode; an unknown one stays NaN. */
static void test_fills_survive_encode_and_decode(void **state)
{
    (void)state;
    static struct journal_rec j, back;
    base(&j);
    j.n_fills = 2;
    j.fills[0] = (struct journal_fill){ .pump = "pump1", .fill_ul = 1234.5, .counter_ul = 98765.25,
                                        .fill0_ul = 2000, .source = "given" };
    j.fills[1] = (struct journal_fill){ .pump = "pump2", .fill_ul = NAN, .counter_ul = NAN,
                                        .fill0_ul = 10000, .source = "assumed full" };
    char *text, err[200];
    assert_int_equal(journal_encode(&j, &text), 0);
    assert_int_equal(journal_decode(text, strlen(text), &back, err, sizeof err), 0);
    free(text);
    assert_int_equal(back.n_fills, 2);
    const struct journal_fill *a = &back.fills[0], *b = &back.fills[1];
    if (strcmp(a->pump, "pump1") != 0) {
        const struct journal_fill *t = a;
        a = b;
        b = t;
    }
    assert_string_equal(a->pump, "pump1");
    assert_true(a->fill_ul == 1234.5 && a->counter_ul == 98765.25 && a->fill0_ul == 2000);
    assert_string_equal(a->source, "given");
    assert_string_equal(b->pump, "pump2");
    assert_true(isnan(b->fill_ul) && isnan(b->counter_ul) && b->fill0_ul == 10000);
    assert_string_equal(b->source, "assumed full");
    journal_rec_free(&back);
}


int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_carried_level_counts_on_from_the_journaled_counter),
        cmocka_unit_test(test_a_carried_low_level_warns_again),
        cmocka_unit_test(test_a_counter_that_went_back_leaves_the_level_unknown),
        cmocka_unit_test(test_an_unknown_or_impossible_level_stays_unknown),
        cmocka_unit_test(test_fills_survive_encode_and_decode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
