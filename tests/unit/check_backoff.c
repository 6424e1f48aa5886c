/*
 * Backoff: doubling, the cap, and jitter bounds.
 */
#include "config.h"

#include "testutil.h"
#include "sftprelay/backoff.h"

START_TEST(test_doubles_up_to_cap)
{
    /* With the largest draw the delay is the full step. */
    ck_assert_int_eq(backoff_ms(1, 1, 300, UINT32_MAX - 1),
                     1000 - 500 + (int64_t)((UINT32_MAX - 1) % 501));
    ck_assert_int_le(backoff_ms(1, 1, 300, 0), 1000);
    ck_assert_int_ge(backoff_ms(1, 1, 300, 0), 500);
    ck_assert_int_ge(backoff_ms(2, 1, 300, 0), 1000);
    ck_assert_int_le(backoff_ms(2, 1, 300, 1000), 2000);
    ck_assert_int_ge(backoff_ms(5, 1, 300, 0), 8000);
    ck_assert_int_le(backoff_ms(5, 1, 300, 8000), 16000);
    /* capped at backoff_max, whatever the attempt */
    ck_assert_int_le(backoff_ms(20, 1, 300, UINT32_MAX), 300000);
    ck_assert_int_ge(backoff_ms(20, 1, 300, 0), 150000);
    ck_assert_int_le(backoff_ms(1000000, 2, 60, UINT32_MAX), 60000);
    /* n below 1 is treated as 1 */
    ck_assert_int_le(backoff_ms(0, 1, 300, UINT32_MAX), 1000);
}
END_TEST

START_TEST(test_jitter_spreads)
{
    int64_t lo = INT64_MAX, hi = 0, d;
    int i;

    for (i = 0; i < 2000; i++) {
        d = backoff_ms(4, 1, 300, backoff_rnd());
        ck_assert_int_ge(d, 4000);
        ck_assert_int_le(d, 8000);
        if (d < lo)
            lo = d;
        if (d > hi)
            hi = d;
    }
    /* 2000 draws over 4001 values: they are not all the same. */
    ck_assert_int_lt(lo, 5000);
    ck_assert_int_gt(hi, 7000);
}
END_TEST

static Suite *backoff_suite(void)
{
    Suite *s = suite_create("backoff");
    TCase *tc = tcase_create("delays");

    tcase_add_test(tc, test_doubles_up_to_cap);
    tcase_add_test(tc, test_jitter_spreads);
    suite_add_tcase(s, tc);
    return s;
}

TU_MAIN(backoff_suite)
