/*
 * The metrics module: label values escaped as the Prometheus text format
 * wants, counters and the histogram as a scrape prints them.  (The text
 * as a whole is checked by promtool in tests/integration/t_status_http.sh.)
 * Adders on four threads and a scrape lose nothing.
 */
#include "config.h"

#include <pthread.h>
#include <time.h>

#include "testutil.h"
#include "sftprelay/journal.h"
#include "sftprelay/metrics.h"

/* metrics_print_label(s), malloc'd. */
static char *label_of(const char *s)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    ck_assert_ptr_nonnull(f);
    metrics_print_label(f, s);
    fclose(f);
    return buf;
}

static void label_is(const char *in, const char *want)
{
    char *got = label_of(in);

    ck_assert_str_eq(got, want);
    free(got);
}

START_TEST(test_label_escapes)
{
    label_is("plain", "plain");
    label_is("a\\b", "a\\\\b");
    label_is("say \"no\"", "say \\\"no\\\"");
    label_is("two\nlines", "two\\nlines");
    label_is("tab\tstays", "tab\tstays");
    label_is("r\xc3\xa9sum\xc3\xa9", "r\xc3\xa9sum\xc3\xa9"); /* UTF-8 kept */
    label_is("r\xe9sum\xe9", "r\xef\xbf\xbdsum\xef\xbf\xbd"); /* Latin-1 */
    label_is("\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd");         /* overlong */
    label_is("\xed\xa0\x80",
             "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"); /* surrogate */
    label_is("\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                                 "\xef\xbf\xbd"); /* past U+10FFFF */
    label_is("\xf0\x9f\x93\x81 cut \xe2\x82", "\xf0\x9f\x93\x81 cut "
                                              "\xef\xbf\xbd\xef\xbf\xbd");
}
END_TEST

static char *scrape(const struct journal_status *st, int64_t now)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    ck_assert_ptr_nonnull(f);
    metrics_print(f, st, now);
    fclose(f);
    return buf;
}

static void has_line(const char *text, const char *line)
{
    char *want = NULL;

    ck_assert_int_ge(asprintf(&want, "\n%s\n", line), 0);
    if (strstr(text, want) == NULL)
        ck_abort_msg("no line \"%s\" in:\n%s", line, text);
    free(want);
}

START_TEST(test_counters_and_histogram)
{
    struct journal_status st = {.counts = {2, 1, 7, 3}, .oldest_pending = 990};
    char *t;

    metrics_reset();
    metrics_describe("sftp u@h:22 /in", "local /srv/\"up\"");
    metrics_queued();
    metrics_queued();
    metrics_delivered(1000);
    metrics_delivered(24);
    metrics_failed();
    metrics_transfer_ms(5);       /* <= 0.01 */
    metrics_transfer_ms(10);      /* <= 0.01: the bound is inclusive */
    metrics_transfer_ms(2500);    /* <= 5 */
    metrics_transfer_ms(7200000); /* +Inf only */
    t = scrape(&st, 1000);
    has_line(t, "sftprelay_files{state=\"queued\"} 2");
    has_line(t, "sftprelay_files{state=\"sending\"} 1");
    has_line(t, "sftprelay_files{state=\"delivered\"} 7");
    has_line(t, "sftprelay_files{state=\"failed\"} 3");
    has_line(t, "sftprelay_queue_depth 3");
    has_line(t, "sftprelay_queue_oldest_age_seconds 10");
    has_line(t, "sftprelay_files_queued_total 2");
    has_line(t, "sftprelay_files_delivered_total 2");
    has_line(t, "sftprelay_delivered_bytes_total 1024");
    has_line(t, "sftprelay_files_failed_total 1");
    has_line(t, "sftprelay_transfer_duration_seconds_bucket{le=\"0.010\"} 2");
    has_line(t, "sftprelay_transfer_duration_seconds_bucket{le=\"1.000\"} 2");
    has_line(t, "sftprelay_transfer_duration_seconds_bucket{le=\"5.000\"} 3");
    has_line(t,
             "sftprelay_transfer_duration_seconds_bucket{le=\"3600.000\"} 3");
    has_line(t, "sftprelay_transfer_duration_seconds_bucket{le=\"+Inf\"} 4");
    has_line(t, "sftprelay_transfer_duration_seconds_sum 7202.515");
    has_line(t, "sftprelay_transfer_duration_seconds_count 4");
    has_line(t, "sftprelay_target_up{target=\"sftp u@h:22 /in\"} 1");
    has_line(t, "sftprelay_source_up{source=\"local /srv/\\\"up\\\"\"} 1");
    has_line(t, "sftprelay_target_last_error_timestamp_seconds{target=\"sftp "
                "u@h:22 /in\"} 0");
    ck_assert_ptr_null(strstr(t, "sftprelay_target_last_error_info{"));
    free(t);
}
END_TEST

START_TEST(test_outage_kept_after_recovery)
{
    struct journal_status st = {0};
    int64_t before = (int64_t)time(NULL);
    char *t, *at;

    metrics_reset();
    metrics_describe("sftp u@h:22 /in", "local /srv");
    metrics_outage("target", "connect: Connection refused\n\"twice\"");
    metrics_outage("elsewhere", "ignored");
    t = scrape(&st, 1000);
    has_line(t, "sftprelay_target_up{target=\"sftp u@h:22 /in\"} 0");
    has_line(t, "sftprelay_target_last_error_info{target=\"sftp u@h:22 /in\","
                "error=\"connect: Connection refused\\n\\\"twice\\\"\"} 1");
    has_line(t, "sftprelay_source_up{source=\"local /srv\"} 1");
    has_line(t, "sftprelay_queue_oldest_age_seconds 0");
    at = strstr(t, "sftprelay_target_last_error_timestamp_seconds{target=\""
                   "sftp u@h:22 /in\"} ");
    ck_assert_ptr_nonnull(at);
    ck_assert_int_ge(atoll(strchr(at, '}') + 2), before);
    free(t);

    metrics_outage("target", NULL); /* up again: the last error stays */
    t = scrape(&st, 1000);
    has_line(t, "sftprelay_target_up{target=\"sftp u@h:22 /in\"} 1");
    ck_assert_ptr_nonnull(strstr(t, "sftprelay_target_last_error_info{"));
    free(t);
}
END_TEST

/*
 * As in the agent: workers and the writer add while the endpoint's
 * thread scrapes.  Nothing is lost, and ThreadSanitizer (scripts/test
 * runs this under it) sees every counter under metrics.lock.
 */
#define ADDERS 4
#define ADDS 2000

static void *adder(void *arg)
{
    int i;

    for (i = 0; i < ADDS; i++) {
        metrics_queued();
        metrics_delivered(3);
        metrics_transfer_ms(i % 7);
        metrics_outage("target", i % 2 ? "down" : NULL);
    }
    return arg;
}

START_TEST(test_threads_lose_nothing)
{
    struct journal_status st = {0};
    pthread_t th[ADDERS];
    char *t, want[80];
    int i;

    metrics_reset();
    metrics_describe("sftp u@h:22 /in", "local /srv");
    for (i = 0; i < ADDERS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, adder, NULL), 0);
    for (i = 0; i < 50; i++)
        free(scrape(&st, 1000));
    for (i = 0; i < ADDERS; i++)
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
    t = scrape(&st, 1000);
    snprintf(want, sizeof(want), "sftprelay_files_queued_total %d",
             ADDERS * ADDS);
    has_line(t, want);
    snprintf(want, sizeof(want), "sftprelay_delivered_bytes_total %d",
             3 * ADDERS * ADDS);
    has_line(t, want);
    snprintf(want, sizeof(want), "sftprelay_transfer_duration_seconds_count %d",
             ADDERS * ADDS);
    has_line(t, want);
    has_line(t, "sftprelay_target_up{target=\"sftp u@h:22 /in\"} 0");
    free(t);
}
END_TEST

static Suite *metrics_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("text");

    tcase_add_test(tc, test_label_escapes);
    tcase_add_test(tc, test_counters_and_histogram);
    tcase_add_test(tc, test_outage_kept_after_recovery);
    tcase_add_test(tc, test_threads_lose_nothing);
    suite_add_tcase(s, tc);
    return s;
}

TU_MAIN(metrics_suite)
