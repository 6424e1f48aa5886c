/*
 * The status as JSON (report.c), as `sftprelay status --json` and the
 * status endpoint print it: the files being sent, read from the copy the
 * agent writes into the journal every second (not believed once it is a
 * few seconds old) or taken from the agent's own table.
 */
#include "config.h"

#include <time.h>

#include "testutil.h"
#include "sftprelay/journal.h"
#include "sftprelay/progress.h"
#include "sftprelay/report.h"

static char *dir, *db;
static struct journal *j;

static void setup(void)
{
    dir = tu_tmpdir();
    ck_assert_int_ge(asprintf(&db, "%s/journal.db", dir), 0);
    ck_assert_int_eq(journal_open(db, JOURNAL_CREATE, &j), 0);
}

static void teardown(void)
{
    journal_close(j);
    tu_rmtree(dir);
    free(db);
    free(dir);
}

/* report_status_json() of rs into a string (freed by the caller). */
static char *json_of(const struct report_status *rs)
{
    char *text = NULL;
    size_t len;
    FILE *m = open_memstream(&text, &len);

    ck_assert_ptr_nonnull(m);
    report_status_json(m, "/j.db", rs, (int64_t)time(NULL));
    ck_assert_int_eq(fclose(m), 0);
    return text;
}

/* The "sending" list of the status (not its count): from there on. */
static const char *sending_part(const char *json)
{
    const char *s = strstr(json, "\"sending\": [");

    ck_assert_ptr_nonnull(s);
    return s;
}

/* What the agent would write: two files, the second of unknown rate. */
static void agent_says(int64_t at)
{
    struct progress_entry e[2] = {
        {.path = "big/one.bin",
         .size = 1000,
         .sent = 400,
         .target_bytes = 300,
         .rate = 100,
         .started_at = 1700000000},
        {.path = "two.csv", .size = 50, .sent = 0, .started_at = 1700000001},
    };
    char *text;

    ck_assert_int_eq(progress_encode(e, 2, &text), 0);
    ck_assert_int_eq(journal_agent_set(j, "sending", text, at), 0);
    free(text);
}

START_TEST(test_sending_from_the_journal)
{
    int64_t now = (int64_t)time(NULL);
    struct report_status rs;
    char *json, *want = NULL;

    agent_says(now);
    ck_assert_int_eq(report_status_get(j, &rs), 0);
    ck_assert_uint_eq(rs.n_sending, 2);
    ck_assert_int_eq(rs.sending_stale, 0);
    json = json_of(&rs);
    ck_assert_int_ge(
        asprintf(&want,
                 "\"sending\": [{\"path\": \"big/one.bin\", \"size\": 1000, "
                 "\"sent\": 400, \"target_bytes\": 300, \"rate\": 100, "
                 "\"eta\": 6, \"started_at\": 1700000000}, "
                 "{\"path\": \"two.csv\", \"size\": 50, \"sent\": 0, "
                 "\"target_bytes\": 0, \"rate\": 0, \"eta\": null, "
                 "\"started_at\": 1700000001}], \"sending_at\": %lld, "
                 "\"sending_stale\": false, ",
                 (long long)now),
        0);
    ck_assert_msg(strncmp(sending_part(json), want, strlen(want)) == 0,
                  "%s\n%s", sending_part(json), want);
    free(want);
    free(json);
    report_status_clear(&rs);
}
END_TEST

/* A list the agent wrote long ago is not what is being sent now. */
START_TEST(test_old_list_is_stale)
{
    struct report_status rs;
    char *json;

    agent_says((int64_t)time(NULL) - REPORT_SENDING_STALE_S - 2);
    ck_assert_int_eq(report_status_get(j, &rs), 0);
    ck_assert_uint_eq(rs.n_sending, 0);
    ck_assert_int_eq(rs.sending_stale, 1);
    json = json_of(&rs);
    ck_assert_ptr_nonnull(strstr(json, "\"sending\": [], \"sending_at\": "));
    ck_assert_ptr_nonnull(strstr(json, "\"sending_stale\": true"));
    free(json);
    report_status_clear(&rs);
    /* An empty one is true however old: the agent sent nothing since. */
    ck_assert_int_eq(journal_agent_set(j, "sending", "", 1000), 0);
    ck_assert_int_eq(report_status_get(j, &rs), 0);
    ck_assert_uint_eq(rs.n_sending, 0);
    ck_assert_int_eq(rs.sending_stale, 0);
    ck_assert_int_eq(rs.sending_at, 1000);
    report_status_clear(&rs);
    /* Text that is not a list is not believed either. */
    ck_assert_int_eq(
        journal_agent_set(j, "sending", "garbage\n", (int64_t)time(NULL)), 0);
    ck_assert_int_eq(report_status_get(j, &rs), 0);
    ck_assert_uint_eq(rs.n_sending, 0);
    ck_assert_int_eq(rs.sending_stale, 1);
    report_status_clear(&rs);
}
END_TEST

START_TEST(test_never_said)
{
    struct report_status rs;
    char *json;

    ck_assert_int_eq(report_status_get(j, &rs), 0);
    json = json_of(&rs);
    ck_assert_ptr_nonnull(strstr(json, "\"sending\": [], \"sending_at\": null, "
                                       "\"sending_stale\": false, "));
    free(json);
    report_status_clear(&rs);
}
END_TEST

/* A name that is not UTF-8: shown, and its bytes, as list --json does. */
START_TEST(test_latin1_path)
{
    struct progress_entry e = {.path = "r\xe9sum\xe9.csv", .size = 10};
    struct report_status rs;
    char *text, *json;

    ck_assert_int_eq(progress_encode(&e, 1, &text), 0);
    ck_assert_int_eq(journal_agent_set(j, "sending", text, time(NULL)), 0);
    free(text);
    ck_assert_int_eq(report_status_get(j, &rs), 0);
    json = json_of(&rs);
    ck_assert_ptr_nonnull(strstr(json,
                                 "\"sending\": [{\"path\": \"r\xef\xbf\xbdsum"
                                 "\xef\xbf\xbd.csv\", \"path_bytes\": "
                                 "\"r\\\\xe9sum\\\\xe9.csv\", \"size\": 10, "));
    free(json);
    report_status_clear(&rs);
}
END_TEST

/* The agent's own endpoint: the table itself, whatever the journal says. */
START_TEST(test_fill_from_the_table)
{
    struct progress *p;
    struct progress_file *pf;
    struct report_status rs;

    agent_says((int64_t)time(NULL));
    ck_assert_int_eq(progress_new(NULL, &p), 0);
    pf = progress_begin(p, "live.bin", 2048);
    progress_add(pf, 1024, 512);
    ck_assert_int_eq(report_status_get(j, &rs), 0);
    ck_assert_int_eq(report_status_fill_sending(&rs, p), 0);
    ck_assert_uint_eq(rs.n_sending, 1);
    ck_assert_str_eq(rs.sending[0].path, "live.bin");
    ck_assert_int_eq(rs.sending[0].sent, 1024);
    ck_assert_int_eq(rs.sending[0].target_bytes, 512);
    ck_assert_int_eq(rs.sending_stale, 0);
    ck_assert_int_ge(rs.sending_at, (int64_t)time(NULL) - 1);
    progress_end(pf);
    ck_assert_int_eq(report_status_fill_sending(&rs, p), 0);
    ck_assert_uint_eq(rs.n_sending, 0);
    report_status_clear(&rs);
    progress_free(p);
}
END_TEST

static Suite *report_suite(void)
{
    Suite *s = suite_create("report");
    TCase *tc = tcase_create("sending");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_sending_from_the_journal);
    tcase_add_test(tc, test_old_list_is_stale);
    tcase_add_test(tc, test_never_said);
    tcase_add_test(tc, test_latin1_path);
    tcase_add_test(tc, test_fill_from_the_table);
    suite_add_tcase(s, tc);
    return s;
}

TU_MAIN(report_suite)
