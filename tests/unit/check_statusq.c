/*
 * What a request to the status endpoint asks: the query of GET /v1/files
 * (raw bytes, strict keys, the limit's bounds) and the bearer token.
 */
#include "config.h"

#include "testutil.h"
#include "sftprelay/statusq.h"

static struct statusq_files q;
static char err[256];

static void teardown(void)
{
    statusq_files_clear(&q);
}

/* query is refused with exactly want. */
static void refused(const char *query, const char *want)
{
    err[0] = '\0';
    ck_assert_int_eq(statusq_files(query, &q, err, sizeof(err)), -EINVAL);
    ck_assert_str_eq(err, want);
    statusq_files_clear(&q);
}

START_TEST(test_defaults)
{
    ck_assert_int_eq(statusq_files(NULL, &q, err, sizeof(err)), 0);
    ck_assert_ptr_null(q.path);
    ck_assert_ptr_null(q.prefix);
    ck_assert_int_eq(q.state, JS_COUNT);
    ck_assert_int_eq(q.limit, STATUSQ_LIMIT_DEFAULT);
    statusq_files_clear(&q);
    ck_assert_int_eq(statusq_files("", &q, err, sizeof(err)), 0);
    statusq_files_clear(&q);
    ck_assert_int_eq(statusq_files("&&", &q, err, sizeof(err)), 0);
}
END_TEST

START_TEST(test_values_decoded_to_bytes)
{
    ck_assert_int_eq(
        statusq_files("path=in%2Fr%E9sum%e9+1%2B1.csv&state=failed&limit=7", &q,
                      err, sizeof(err)),
        0);
    ck_assert_str_eq(q.path, "in/r\xe9sum\xe9 1+1.csv");
    ck_assert_int_eq(q.state, JS_FAILED);
    ck_assert_int_eq(q.limit, 7);
    statusq_files_clear(&q);
    ck_assert_int_eq(
        statusq_files("limit=10000&prefix=a/%FF", &q, err, sizeof(err)), 0);
    ck_assert_str_eq(q.prefix, "a/\xff");
    ck_assert_int_eq(q.limit, STATUSQ_LIMIT_MAX);
    ck_assert_ptr_null(q.after);
    statusq_files_clear(&q);
    ck_assert_int_eq(statusq_files("prefix=in%2F&after=in%2Fr%E9sum%E9.csv&"
                                   "state=queued",
                                   &q, err, sizeof(err)),
                     0);
    ck_assert_str_eq(q.prefix, "in/");
    ck_assert_str_eq(q.after, "in/r\xe9sum\xe9.csv");
    statusq_files_clear(&q);
    ck_assert_int_eq(statusq_files("after=", &q, err, sizeof(err)), 0);
    ck_assert_str_eq(q.after, "");
}
END_TEST

START_TEST(test_limit_bounds)
{
    static const char *const bad[] = {
        "99999999999999999999", "10001", "0", "-1", "5x", "", "1e3", " 5",
    };
    char query[64], want[256];
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(query, sizeof(query), "limit=%s", bad[i]);
        snprintf(want, sizeof(want),
                 "limit: expected a whole number from 1 to 10000 (the "
                 "maximum), not \"%s\"",
                 bad[i]);
        refused(query, want);
    }
    refused("limit=%2B5", "limit: expected a whole number from 1 to 10000 "
                          "(the maximum), not \"+5\"");
}
END_TEST

START_TEST(test_strict_keys)
{
    refused("pth=a", "unknown query key \"pth\" (known: path, prefix, state, "
                     "limit, after)");
    refused("path=a&path=b", "path: given twice");
    refused("path=a&prefix=b", "path and prefix: give one of them");
    refused("path=a&after=b", "path and after: after pages a list, not one "
                              "path");
    refused("after=a&after=b", "after: given twice");
    refused("after", "after: expected after=VALUE");
    refused("after=a%00", "after: a bad percent-escape or a NUL byte (%00)");
    refused("path", "path: expected path=VALUE");
    refused("path=", "path: empty");
    refused("state=done", "state: \"done\" is not queued, sending, delivered "
                          "or failed");
    refused("path=a%00b", "path: a bad percent-escape or a NUL byte (%00)");
    refused("path=a%G1", "path: a bad percent-escape or a NUL byte (%00)");
    refused("path=a%4", "path: a bad percent-escape or a NUL byte (%00)");
    refused("p%ath=a", "query: a bad percent-escape or a NUL byte (%00)");
    ck_assert_int_eq(statusq_none(NULL, err, sizeof(err)), 0);
    ck_assert_int_eq(statusq_none("", err, sizeof(err)), 0);
    ck_assert_int_eq(statusq_none("limit=1", err, sizeof(err)), -EINVAL);
    ck_assert_str_eq(err, "unknown query key \"limit\" (this endpoint takes "
                          "none)");
}
END_TEST

START_TEST(test_bearer)
{
    ck_assert_str_eq(statusq_bearer("Bearer abc"), "abc");
    ck_assert_str_eq(statusq_bearer("bearer   abc"), "abc");
    ck_assert_ptr_null(statusq_bearer(NULL));
    ck_assert_ptr_null(statusq_bearer("Basic YWJj"));
    ck_assert_ptr_null(statusq_bearer("Bearer"));
    ck_assert_ptr_null(statusq_bearer("Bearer "));
    ck_assert_ptr_null(statusq_bearer("Bearerabc"));
}
END_TEST

static Suite *statusq_suite(void)
{
    Suite *s = suite_create("statusq");
    TCase *tc = tcase_create("query");

    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_values_decoded_to_bytes);
    tcase_add_test(tc, test_limit_bounds);
    tcase_add_test(tc, test_strict_keys);
    tcase_add_test(tc, test_bearer);
    suite_add_tcase(s, tc);
    return s;
}

TU_MAIN(statusq_suite)
