/*
 * The journal's state machine, its recovery after a crash, and what
 * readers in other processes see.
 */
#include "config.h"

#include <sqlite3.h>

#include "testutil.h"
#include "sftprelay/journal.h"

static char *dir, *db;
static struct journal *j;

static void setup(void)
{
    dir = tu_tmpdir();
    ck_assert_int_ge(asprintf(&db, "%s/state/journal.db", dir), 0);
    ck_assert_int_eq(journal_open(db, JOURNAL_CREATE, &j), 0);
}

static void teardown(void)
{
    journal_close(j);
    tu_rmtree(dir);
    free(db);
    free(dir);
}

static enum journal_state state_of(const char *path)
{
    struct journal_file f;
    enum journal_state s;

    ck_assert_int_eq(journal_get(j, path, &f), 0);
    s = f.state;
    journal_file_clear(&f);
    return s;
}

START_TEST(test_create_mode_and_wal)
{
    struct stat st;
    char *wal = NULL;

    ck_assert_int_eq(stat(db, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0640);
    ck_assert_int_eq(journal_offer(j, "a", 1, 1, 100, NULL), 0);
    journal_close(j);
    j = NULL;
    /* The WAL file stays after close, for read-only readers. */
    ck_assert_int_ge(asprintf(&wal, "%s-wal", db), 0);
    ck_assert_int_eq(stat(wal, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0640);
    free(wal);
    ck_assert_int_eq(journal_open(db, JOURNAL_RDONLY, &j), 0);
    ck_assert_int_eq(state_of("a"), JS_QUEUED);
    ck_assert_int_eq(journal_offer(j, "b", 1, 1, 100, NULL), -EROFS);
}
END_TEST

START_TEST(test_missing_readonly)
{
    struct journal *r = NULL;
    char *p = NULL;

    ck_assert_int_ge(asprintf(&p, "%s/none.db", dir), 0);
    ck_assert_int_eq(journal_open(p, JOURNAL_RDONLY, &r), -ENOENT);
    ck_assert_int_eq(journal_open(p, 0, &r), -ENOENT);
    ck_assert_ptr_null(r);
    ck_assert_int_eq(access(p, F_OK), -1);
    free(p);
}
END_TEST

START_TEST(test_newer_schema_refused)
{
    sqlite3 *raw;

    journal_close(j);
    j = NULL;
    ck_assert_int_eq(sqlite3_open(db, &raw), SQLITE_OK);
    ck_assert_int_eq(
        sqlite3_exec(raw, "PRAGMA user_version = 99", NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(raw);
    ck_assert_int_eq(journal_open(db, 0, &j), -EPROTO);
    ck_assert_int_eq(journal_open(db, JOURNAL_RDONLY, &j), -EPROTO);
}
END_TEST

START_TEST(test_lifecycle)
{
    struct journal_file f, g;
    int queued = -1;

    ck_assert_int_eq(
        journal_offer(j, "a/b/c/file_1.txt", 10, 111, 100, &queued), 0);
    ck_assert_int_eq(queued, 1);
    /* Closed again unchanged: nothing new. */
    ck_assert_int_eq(
        journal_offer(j, "a/b/c/file_1.txt", 10, 111, 101, &queued), 0);
    ck_assert_int_eq(queued, 0);

    ck_assert_int_eq(journal_claim(j, 100, -1, &f), 0);
    ck_assert_str_eq(f.path, "a/b/c/file_1.txt");
    ck_assert_int_eq(f.state, JS_SENDING);
    ck_assert_int_eq(f.size, 10);
    ck_assert_int_eq(journal_claim(j, 100, -1, &g), -ENOENT);

    ck_assert_int_eq(journal_checkpoint(j, &f, 4), 0);
    ck_assert_int_eq(journal_get(j, f.path, &g), 0);
    ck_assert_int_eq(g.resume_offset, 4);
    journal_file_clear(&g);

    ck_assert_int_eq(journal_delivered(j, &f, "ab12", 105, 106), 0);
    ck_assert_int_eq(journal_get(j, f.path, &g), 0);
    ck_assert_int_eq(g.state, JS_DELIVERED);
    ck_assert_str_eq(g.sha256, "ab12");
    ck_assert_int_eq(g.delivered_at, 105);
    ck_assert_int_eq(g.attempts, 1);
    ck_assert_int_eq(g.version, 1);
    journal_file_clear(&g);

    /* The same version again: still delivered, no new work. */
    ck_assert_int_eq(journal_offer(j, f.path, 10, 111, 200, &queued), 0);
    ck_assert_int_eq(queued, 0);
    ck_assert_int_eq(state_of(f.path), JS_DELIVERED);

    /* A new version: queued again, from byte 0. */
    ck_assert_int_eq(journal_offer(j, f.path, 20, 222, 300, &queued), 0);
    ck_assert_int_eq(queued, 1);
    ck_assert_int_eq(journal_get(j, f.path, &g), 0);
    ck_assert_int_eq(g.state, JS_QUEUED);
    ck_assert_int_eq(g.version, 2);
    ck_assert_int_eq(g.size, 20);
    ck_assert_int_eq(g.resume_offset, 0);
    ck_assert_ptr_null(g.sha256);
    ck_assert_int_eq(g.delivered_at, 0);
    ck_assert_int_eq(g.detected_at, 300);
    journal_file_clear(&g);
    journal_file_clear(&f);
}
END_TEST

START_TEST(test_changed_while_queued_and_sending)
{
    struct journal_file f, g;
    int queued;

    ck_assert_int_eq(journal_offer(j, "f", 10, 1, 100, NULL), 0);
    ck_assert_int_eq(journal_offer(j, "f", 15, 2, 101, &queued), 0);
    ck_assert_int_eq(queued, 1);
    ck_assert_int_eq(journal_get(j, "f", &g), 0);
    ck_assert_int_eq(g.version, 1); /* one row, no duplicate work */
    ck_assert_int_eq(g.size, 15);
    ck_assert_int_eq(g.detected_at, 100);
    journal_file_clear(&g);

    ck_assert_int_eq(journal_claim(j, 200, -1, &f), 0);
    ck_assert_int_eq(journal_checkpoint(j, &f, 8), 0);
    /* The file grows while it is sent. */
    ck_assert_int_eq(journal_offer(j, "f", 30, 3, 201, NULL), 0);
    ck_assert_int_eq(state_of("f"), JS_SENDING);
    /* A late checkpoint of the old version changes nothing. */
    ck_assert_int_eq(journal_checkpoint(j, &f, 12), 0);
    ck_assert_int_eq(journal_delivered(j, &f, "old", 202, 210), -ESTALE);
    ck_assert_int_eq(journal_get(j, "f", &g), 0);
    ck_assert_int_eq(g.state, JS_QUEUED);
    ck_assert_int_eq(g.size, 30);
    ck_assert_int_eq(g.resume_offset, 0);
    ck_assert_int_eq(g.next_attempt, 210);
    ck_assert_ptr_null(g.sha256);
    journal_file_clear(&g);
    journal_file_clear(&f);
}
END_TEST

START_TEST(test_backoff_and_failure)
{
    struct journal_file f, g;
    int64_t due = 0;
    int n = 0;

    ck_assert_int_eq(journal_next_due(j, &due), -ENOENT);
    ck_assert_int_eq(journal_offer(j, "x", 5, 1, 100, NULL), 0);
    ck_assert_int_eq(journal_claim(j, 100, -1, &f), 0);
    ck_assert_int_eq(journal_checkpoint(j, &f, 3), 0);
    ck_assert_int_eq(journal_requeue(j, f.id, 160, "no space left", 1, 0), 0);
    ck_assert_int_eq(journal_next_due(j, &due), 0);
    ck_assert_int_eq(due, 160);
    ck_assert_int_eq(journal_claim(j, 159, -1, &g), -ENOENT);
    journal_file_clear(&f);

    ck_assert_int_eq(journal_claim(j, 160, -1, &f), 0);
    ck_assert_int_eq(f.attempts, 1);
    ck_assert_int_eq(f.resume_offset, 3); /* kept for the resume */
    ck_assert_str_eq(f.last_error, "no space left");
    ck_assert_int_eq(journal_fail(j, f.id, "permission denied"), 0);
    ck_assert_int_eq(journal_get(j, "x", &g), 0);
    ck_assert_int_eq(g.state, JS_FAILED);
    ck_assert_int_eq(g.attempts, 2);
    ck_assert_str_eq(g.last_error, "permission denied");
    journal_file_clear(&g);
    journal_file_clear(&f);
    /* failed stays failed until retried by hand */
    ck_assert_int_eq(journal_claim(j, 100000, -1, &f), -ENOENT);
    ck_assert_int_eq(journal_offer(j, "x", 5, 1, 300, NULL), 0);
    ck_assert_int_eq(state_of("x"), JS_FAILED);

    ck_assert_int_eq(journal_retry_failed(j, &n), 0);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(journal_get(j, "x", &g), 0);
    ck_assert_int_eq(g.state, JS_QUEUED);
    ck_assert_int_eq(g.attempts, 0);
    ck_assert_ptr_null(g.last_error);
    journal_file_clear(&g);
}
END_TEST

START_TEST(test_retry_by_path)
{
    struct journal_file f, g;

    ck_assert_int_eq(journal_retry(j, "nope"), -ENOENT);
    ck_assert_int_eq(journal_offer(j, "p", 5, 1, 100, NULL), 0);
    ck_assert_int_eq(journal_claim(j, 100, -1, &f), 0);
    ck_assert_int_eq(journal_retry(j, "p"), -EBUSY);
    ck_assert_int_eq(journal_delivered(j, &f, "s", 101, 0), 0);
    /* A delivered file retried by hand is sent again as a new version. */
    ck_assert_int_eq(journal_retry(j, "p"), 0);
    ck_assert_int_eq(journal_get(j, "p", &g), 0);
    ck_assert_int_eq(g.state, JS_QUEUED);
    ck_assert_int_eq(g.version, 2);
    ck_assert_int_eq(g.resume_offset, 0);
    journal_file_clear(&g);
    journal_file_clear(&f);
}
END_TEST

START_TEST(test_recover_after_crash)
{
    struct journal_file f;
    int n = -1;

    ck_assert_int_eq(journal_offer(j, "big", 1000, 1, 100, NULL), 0);
    ck_assert_int_eq(journal_claim(j, 100, -1, &f), 0);
    ck_assert_int_eq(journal_checkpoint(j, &f, 400), 0);
    journal_file_clear(&f);
    /* The agent dies here; a new one opens the same journal. */
    journal_close(j);
    ck_assert_int_eq(journal_open(db, JOURNAL_CREATE, &j), 0);
    ck_assert_int_eq(journal_recover(j, &n), 0);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(journal_claim(j, 101, -1, &f), 0);
    ck_assert_str_eq(f.path, "big");
    ck_assert_int_eq(f.resume_offset, 400);
    journal_file_clear(&f);
}
END_TEST

START_TEST(test_once_claims_each_row_once)
{
    struct journal_file f;
    int64_t last = 0;

    ck_assert_int_eq(journal_offer(j, "1", 1, 1, 100, NULL), 0);
    ck_assert_int_eq(journal_offer(j, "2", 1, 1, 100, NULL), 0);
    ck_assert_int_eq(journal_claim(j, 100, last, &f), 0);
    ck_assert_str_eq(f.path, "1");
    last = f.id;
    /* Failed once, queued for much later: --once does not take it again. */
    ck_assert_int_eq(journal_requeue(j, f.id, 999999, "x", 1, 0), 0);
    journal_file_clear(&f);
    ck_assert_int_eq(journal_claim(j, 100, last, &f), 0);
    ck_assert_str_eq(f.path, "2");
    last = f.id;
    journal_file_clear(&f);
    ck_assert_int_eq(journal_claim(j, 100, last, &f), -ENOENT);
}
END_TEST

START_TEST(test_prune_and_status)
{
    struct journal_status s;
    struct journal_file f;
    int n = -1;

    ck_assert_int_eq(journal_offer(j, "old", 1, 1, 50, NULL), 0);
    ck_assert_int_eq(journal_offer(j, "new", 1, 1, 60, NULL), 0);
    ck_assert_int_eq(journal_offer(j, "waiting", 1, 1, 70, NULL), 0);
    ck_assert_int_eq(journal_claim(j, 100, -1, &f), 0);
    ck_assert_int_eq(journal_delivered(j, &f, "s1", 100, 0), 0);
    journal_file_clear(&f);
    ck_assert_int_eq(journal_claim(j, 100, -1, &f), 0);
    ck_assert_int_eq(journal_delivered(j, &f, "s2", 200, 0), 0);
    journal_file_clear(&f);
    ck_assert_int_eq(journal_claim(j, 300, -1, &f), 0);
    ck_assert_int_eq(journal_requeue(j, f.id, 400, "connection refused", 0, 0),
                     0);
    journal_file_clear(&f);

    ck_assert_int_eq(journal_status(j, &s), 0);
    ck_assert_int_eq(s.counts[JS_DELIVERED], 2);
    ck_assert_int_eq(s.counts[JS_QUEUED], 1);
    ck_assert_int_eq(s.oldest_pending, 70);
    ck_assert_str_eq(s.last_error_path, "waiting");
    ck_assert_str_eq(s.last_error, "connection refused");
    journal_status_clear(&s);

    ck_assert_int_eq(journal_prune(j, 150, &n), 0);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(journal_get(j, "old", &f), -ENOENT);
    ck_assert_int_eq(state_of("new"), JS_DELIVERED);
}
END_TEST

static int count_rows(const struct journal_file *f, void *arg)
{
    (*(int *)arg)++;
    return 0;
}

START_TEST(test_list_and_agent_keys)
{
    struct journal_file f;
    char *v = NULL;
    int64_t at = 0;
    int n = 0;

    ck_assert_int_eq(journal_offer(j, "b", 1, 1, 1, NULL), 0);
    ck_assert_int_eq(journal_offer(j, "a", 1, 1, 1, NULL), 0);
    ck_assert_int_eq(journal_claim(j, 5, -1, &f), 0);
    journal_file_clear(&f);
    ck_assert_int_eq(journal_list(j, JS_COUNT, count_rows, &n), 0);
    ck_assert_int_eq(n, 2);
    n = 0;
    ck_assert_int_eq(journal_list(j, JS_SENDING, count_rows, &n), 0);
    ck_assert_int_eq(n, 1);

    ck_assert_int_eq(journal_agent_get(j, "target_error", &v, &at), -ENOENT);
    ck_assert_int_eq(journal_agent_set(j, "target_error", "refused", 42), 0);
    ck_assert_int_eq(journal_agent_get(j, "target_error", &v, &at), 0);
    ck_assert_str_eq(v, "refused");
    ck_assert_int_eq(at, 42);
    free(v);
}
END_TEST

START_TEST(test_reader_while_writing)
{
    struct journal *r = NULL;
    struct journal_file f;
    int i;

    ck_assert_int_eq(journal_open(db, JOURNAL_RDONLY, &r), 0);
    ck_assert_int_eq(journal_begin(j), 0);
    for (i = 0; i < 100; i++) {
        char p[16];

        snprintf(p, sizeof(p), "f%03d", i);
        ck_assert_int_eq(journal_offer(j, p, i, i, 1, NULL), 0);
    }
    /* The writer's open transaction is invisible, not an error. */
    ck_assert_int_eq(journal_get(r, "f000", &f), -ENOENT);
    ck_assert_int_eq(journal_commit(j), 0);
    ck_assert_int_eq(journal_get(r, "f099", &f), 0);
    ck_assert_int_eq(f.size, 99);
    journal_file_clear(&f);
    journal_close(r);
}
END_TEST

START_TEST(test_partial_upload_not_queued)
{
    struct journal_file f;
    int queued = -1;

    /* A client vanished half-way: that exact version is never queued. */
    ck_assert_int_eq(
        journal_partial_add(j, "half.bin", 500, 7, "1.2.3.4:5", 100), 0);
    ck_assert_int_eq(journal_offer(j, "half.bin", 500, 7, 101, &queued), 0);
    ck_assert_int_eq(queued, 0);
    ck_assert_int_eq(journal_get(j, "half.bin", &f), -ENOENT);
    /* It grew (the client resumed): that version is queued. */
    ck_assert_int_eq(journal_offer(j, "half.bin", 900, 8, 102, &queued), 0);
    ck_assert_int_eq(queued, 1);
    /* A complete upload clears the record. */
    ck_assert_int_eq(journal_partial_add(j, "other", 5, 1, NULL, 100), 0);
    ck_assert_int_eq(journal_partial_clear(j, "other"), 0);
    ck_assert_int_eq(journal_offer(j, "other", 5, 1, 103, &queued), 0);
    ck_assert_int_eq(queued, 1);
}
END_TEST

START_TEST(test_migrates_version_1)
{
    struct journal *r = NULL;
    sqlite3 *raw;
    int queued = 0;

    ck_assert_int_eq(journal_offer(j, "kept", 1, 1, 1, NULL), 0);
    journal_close(j);
    j = NULL;
    /* Make it a version 1 journal, as an older agent left it. */
    ck_assert_int_eq(sqlite3_open(db, &raw), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(raw,
                                  "DROP TABLE partial; "
                                  "PRAGMA user_version = 1",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(raw);
    /* A reader copes with it as it is. */
    ck_assert_int_eq(journal_open(db, JOURNAL_RDONLY, &r), 0);
    journal_close(r);
    /* The agent upgrades it, keeping its rows. */
    ck_assert_int_eq(journal_open(db, JOURNAL_CREATE, &j), 0);
    ck_assert_int_eq(journal_partial_add(j, "p", 1, 1, NULL, 1), 0);
    ck_assert_int_eq(journal_offer(j, "kept", 2, 2, 2, &queued), 0);
    ck_assert_int_eq(queued, 1);
}
END_TEST

static Suite *journal_suite(void)
{
    Suite *s = suite_create("journal");
    TCase *tc = tcase_create("states");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_create_mode_and_wal);
    tcase_add_test(tc, test_missing_readonly);
    tcase_add_test(tc, test_newer_schema_refused);
    tcase_add_test(tc, test_lifecycle);
    tcase_add_test(tc, test_changed_while_queued_and_sending);
    tcase_add_test(tc, test_backoff_and_failure);
    tcase_add_test(tc, test_retry_by_path);
    tcase_add_test(tc, test_recover_after_crash);
    tcase_add_test(tc, test_once_claims_each_row_once);
    tcase_add_test(tc, test_prune_and_status);
    tcase_add_test(tc, test_list_and_agent_keys);
    tcase_add_test(tc, test_reader_while_writing);
    tcase_add_test(tc, test_partial_upload_not_queued);
    tcase_add_test(tc, test_migrates_version_1);
    suite_add_tcase(s, tc);
    return s;
}

TU_MAIN(journal_suite)
