/*
 * Figures for people (human.c): the units sizes, rates and durations are
 * shown in by `sftprelay status`.
 */
#include "config.h"

#include "testutil.h"
#include "sftprelay/human.h"

/* Figures and the text fn makes of each. */
struct human_case {
    int64_t n;
    const char *want;
};

static void expect(char *(*fn)(int64_t, char *, size_t),
                   const struct human_case *cases, size_t n)
{
    char buf[HUMAN_MAX];
    size_t i;

    for (i = 0; i < n; i++)
        ck_assert_str_eq(fn(cases[i].n, buf, sizeof(buf)), cases[i].want);
}

#define EXPECT(fn, cases) expect(fn, cases, sizeof(cases) / sizeof(cases[0]))

START_TEST(test_bytes)
{
    static const struct human_case cases[] = {
        {0, "0 B"},
        {1023, "1023 B"},
        {1024, "1.0 KiB"},
        {1536, "1.5 KiB"},
        {12897485, "12.3 MiB"},
        {1048524, "1023.9 KiB"},
        {1048575, "1.0 MiB"}, /* 1023.999 KiB: never "1024.0 KiB" */
        {1073741824, "1.0 GiB"},
        {5LL * 1024 * 1024 * 1024 * 1024, "5.0 TiB"},
        {INT64_MAX, "8.0 EiB"},
    };

    EXPECT(human_bytes, cases);
}
END_TEST

START_TEST(test_rate)
{
    static const struct human_case cases[] = {
        {0, "0 B/s"},
        {262144, "256.0 KiB/s"},
        {2621440, "2.5 MiB/s"},
    };

    EXPECT(human_rate, cases);
}
END_TEST

START_TEST(test_duration)
{
    static const struct human_case cases[] = {
        {-1, "?"},        {0, "0s"},
        {59, "59s"},      {60, "1m00s"},
        {65, "1m05s"},    {3599, "59m59s"},
        {3600, "1h00m"},  {86399, "23h59m"},
        {86400, "1d00h"}, {400 * 86400 + 7300, "400d02h"},
    };

    EXPECT(human_duration, cases);
}
END_TEST

/* A buffer too short is cut, never overrun. */
START_TEST(test_short_buffer)
{
    char buf[5];

    ck_assert_str_eq(human_bytes(12897485, buf, sizeof(buf)), "12.3");
}
END_TEST

static Suite *human_suite(void)
{
    Suite *s = suite_create("human");
    TCase *tc = tcase_create("units");

    tcase_add_test(tc, test_bytes);
    tcase_add_test(tc, test_rate);
    tcase_add_test(tc, test_duration);
    tcase_add_test(tc, test_short_buffer);
    suite_add_tcase(s, tc);
    return s;
}

TU_MAIN(human_suite)
