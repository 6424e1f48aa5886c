/*
 * The journal's state machine, its recovery after a crash, and what
 * readers in other processes see.
 */
#include "config.h"

#include <sqlite3.h>

#include "testutil.h"
#include "journal/sql.h"
#include "sftprelay/journal.h"

/* The checkpoint of a file sent as it is, with no resume token. */
#define MARK(off) (&(struct journal_mark){.offset = (off), .source_offset = (off)})
/* A delivery written under the row's own name. */
#define DELIVERY(sha) (&(struct journal_delivery){.sha256 = (sha), .outcome = "written"})

#ifndef JOURNAL_FIXTURES
#error "JOURNAL_FIXTURES: the folder of the journal dumps (Makefile.am)"
#endif

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

/* The transfer contract's fields: token, source offset, where and how. */
START_TEST(test_resume_token_and_delivery)
{
    struct journal_file f, g;
    struct journal_mark m = {.offset = 8388608,
                             .source_offset = 9000000,
                             .token = "upload-1"};
    struct journal_delivery d = {.sha256 = "cd34",
                                 .target_path = "r.1.csv",
                                 .etag = "\"abc-2\"",
                                 .outcome = "renamed"};

    ck_assert_int_eq(journal_offer(j, "r.csv", 20000000, 1, 100, NULL), 0);
    ck_assert_int_eq(journal_claim(j, 100, -1, &f), 0);
    ck_assert_int_eq(journal_checkpoint(j, &f, &m), 0);
    ck_assert_int_eq(journal_get(j, "r.csv", &g), 0);
    ck_assert_int_eq(g.resume_offset, 8388608);
    ck_assert_int_eq(g.source_offset, 9000000);
    ck_assert_str_eq(g.resume_token, "upload-1");
    journal_file_clear(&g);
    /* A new version starts from 0 and keeps the token as stale, so that
     * the next attempt throws that upload away. */
    ck_assert_int_eq(journal_restat(j, f.id, 20000001, 2), 0);
    ck_assert_int_eq(journal_get(j, "r.csv", &g), 0);
    ck_assert_int_eq(g.resume_offset, 0);
    ck_assert_int_eq(g.source_offset, 0);
    ck_assert_ptr_null(g.resume_token);
    ck_assert_str_eq(g.stale_token, "upload-1");
    journal_file_clear(&g);
    /* The next attempt's first checkpoint: it was thrown away. */
    f.size = 20000001;
    f.mtime_ns = 2;
    m = (struct journal_mark){.offset = 0, .token = "upload-2"};
    ck_assert_int_eq(journal_checkpoint(j, &f, &m), 0);
    ck_assert_int_eq(journal_get(j, "r.csv", &g), 0);
    ck_assert_ptr_null(g.stale_token);
    ck_assert_str_eq(g.resume_token, "upload-2");
    journal_file_clear(&g);
    ck_assert_int_eq(journal_delivered(j, &f, &d, 105, 106), 0);
    ck_assert_int_eq(journal_get(j, "r.csv", &g), 0);
    ck_assert_int_eq(g.state, JS_DELIVERED);
    ck_assert_ptr_null(g.resume_token);
    ck_assert_str_eq(g.target_path, "r.1.csv");
    ck_assert_str_eq(g.etag, "\"abc-2\"");
    ck_assert_str_eq(g.outcome, "renamed");
    journal_file_clear(&g);
    /* Sent again by hand: where and how are of the next delivery. */
    ck_assert_int_eq(journal_retry(j, "r.csv"), 0);
    ck_assert_int_eq(journal_get(j, "r.csv", &g), 0);
    ck_assert_ptr_null(g.target_path);
    ck_assert_ptr_null(g.outcome);
    journal_file_clear(&g);
    journal_file_clear(&f);
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

    ck_assert_int_eq(journal_checkpoint(j, &f, MARK(4)), 0);
    ck_assert_int_eq(journal_get(j, f.path, &g), 0);
    ck_assert_int_eq(g.resume_offset, 4);
    journal_file_clear(&g);

    ck_assert_int_eq(journal_delivered(j, &f, DELIVERY("ab12"), 105, 106), 0);
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
    ck_assert_int_eq(journal_checkpoint(j, &f, MARK(8)), 0);
    /* The file grows while it is sent. */
    ck_assert_int_eq(journal_offer(j, "f", 30, 3, 201, NULL), 0);
    ck_assert_int_eq(state_of("f"), JS_SENDING);
    /* A late checkpoint of the old version changes nothing. */
    ck_assert_int_eq(journal_checkpoint(j, &f, MARK(12)), 0);
    ck_assert_int_eq(journal_delivered(j, &f, DELIVERY("old"), 202, 210), -ESTALE);
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
    ck_assert_int_eq(journal_checkpoint(j, &f, MARK(3)), 0);
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
    ck_assert_int_eq(journal_delivered(j, &f, DELIVERY("s"), 101, 0), 0);
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
    ck_assert_int_eq(journal_checkpoint(j, &f, MARK(400)), 0);
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

/* Small files come many to a claim, a big one alone, in id order. */
START_TEST(test_claim_batch)
{
    struct journal_file b[16];
    int n, i;

    ck_assert_int_eq(journal_offer(j, "a", 1000, 1, 100, NULL), 0);
    ck_assert_int_eq(journal_offer(j, "b", 1000, 1, 100, NULL), 0);
    ck_assert_int_eq(journal_offer(j, "c", 3000, 1, 100, NULL), 0);
    ck_assert_int_eq(journal_offer(j, "d", 10, 1, 100, NULL), 0);
    ck_assert_int_eq(journal_offer(j, "e", 10, 1, 100, NULL), 0);
    /* a and b: c would start at 2000 bytes, not below 2000. */
    ck_assert_int_eq(journal_claim_batch(j, 100, -1, 16, 2000, b, &n), 0);
    ck_assert_int_eq(n, 2);
    ck_assert_str_eq(b[0].path, "a");
    ck_assert_str_eq(b[1].path, "b");
    ck_assert_int_eq(b[1].state, JS_SENDING);
    for (i = 0; i < n; i++)
        journal_file_clear(&b[i]);
    /* c alone: bigger than the budget, still taken. */
    ck_assert_int_eq(journal_claim_batch(j, 100, -1, 16, 2000, b, &n), 0);
    ck_assert_int_eq(n, 1);
    ck_assert_str_eq(b[0].path, "c");
    journal_file_clear(&b[0]);
    /* At most max rows. */
    ck_assert_int_eq(journal_claim_batch(j, 100, -1, 1, 2000, b, &n), 0);
    ck_assert_int_eq(n, 1);
    ck_assert_str_eq(b[0].path, "d");
    journal_file_clear(&b[0]);
    /* --once: after an id, whatever the due time. */
    ck_assert_int_eq(journal_claim_batch(j, 0, 0, 16, 2000, b, &n), 0);
    ck_assert_int_eq(n, 1);
    ck_assert_str_eq(b[0].path, "e");
    journal_file_clear(&b[0]);
    ck_assert_int_eq(journal_claim_batch(j, 100, -1, 16, 2000, b, &n),
                     -ENOENT);
    ck_assert_int_eq(n, 0);
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
    ck_assert_int_eq(journal_delivered(j, &f, DELIVERY("s1"), 100, 0), 0);
    journal_file_clear(&f);
    ck_assert_int_eq(journal_claim(j, 100, -1, &f), 0);
    ck_assert_int_eq(journal_delivered(j, &f, DELIVERY("s2"), 200, 0), 0);
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

/* Appends each path it is called with to a string, "|"-separated. */
static int join_paths(const struct journal_file *f, void *arg)
{
    char *all = arg;

    strcat(all, f->path);
    strcat(all, "|");
    return 0;
}

/* The n paths queued, then the first of them claimed: sending. */
static void offer_claim_first(const char *const *paths, size_t n)
{
    struct journal_file f;
    size_t i;

    for (i = 0; i < n; i++)
        ck_assert_int_eq(journal_offer(j, paths[i], 1, 1, 1, NULL), 0);
    ck_assert_int_eq(journal_claim(j, 5, -1, &f), 0);
    ck_assert_str_eq(f.path, paths[0]);
    journal_file_clear(&f);
}

/* journal_find(): a prefix is a range of bytes, whatever their encoding. */
START_TEST(test_find_prefix_state_limit)
{
    static const char *const paths[] = {
        "a/1", "a/2", "a/\xff", "a/\xff\xff", "a0", "b", "r\xe9sum\xe9.csv",
        "\xff", "\xff\xff/x",
    };
    struct journal_query q = {.state = JS_COUNT};
    char all[256];

    offer_claim_first(paths, sizeof(paths) / sizeof(paths[0]));

#define FIND(want)                                                             \
    do {                                                                       \
        all[0] = '\0';                                                         \
        ck_assert_int_eq(journal_find(j, &q, join_paths, all), 0);             \
        ck_assert_str_eq(all, (want));                                         \
    } while (0)
    q.prefix = "a/";
    FIND("a/1|a/2|a/\xff|a/\xff\xff|");
    q.prefix = "a/\xff";
    FIND("a/\xff|a/\xff\xff|");
    q.prefix = "\xff";
    FIND("\xff|\xff\xff/x|");
    q.prefix = "r\xe9";
    FIND("r\xe9sum\xe9.csv|");
    q.prefix = "c";
    FIND("");
    q.prefix = NULL;
    q.limit = 3;
    FIND("a/1|a/2|a/\xff|");
    q.limit = 0;
    q.state = JS_SENDING;
    FIND("a/1|");
    q.prefix = "a/";
    q.state = JS_QUEUED;
    q.limit = 2;
    FIND("a/2|a/\xff|");
    q.path = "a/1"; /* exactly, and in its state only */
    FIND("");
    q.state = JS_COUNT;
    FIND("a/1|");
    q.path = "a/";
    FIND("");
#undef FIND
}
END_TEST

/* journal_find() after a path: the next page, with a prefix and a state. */
START_TEST(test_find_after)
{
    static const char *const paths[] = {
        "a/1", "a/2", "a/\xff", "a0", "b", "r\xe9sum\xe9.csv", "\xff",
    };
    static const struct {
        const char *prefix, *after;
        enum journal_state state;
        int64_t limit;
        const char *want;
    } cases[] = {
        /* a path there, one not there, bytes that are not UTF-8 */
        {NULL, "a/2", JS_COUNT, 0, "a/\xff|a0|b|r\xe9sum\xe9.csv|\xff|"},
        {NULL, "a/3", JS_COUNT, 0, "a/\xff|a0|b|r\xe9sum\xe9.csv|\xff|"},
        {NULL, "r\xe9sum\xe9.csv", JS_COUNT, 0, "\xff|"},
        {NULL, "\xff", JS_COUNT, 0, ""},
        /* a page, the next one */
        {NULL, "", JS_COUNT, 2, "a/1|a/2|"},
        {NULL, "a/2", JS_COUNT, 2, "a/\xff|a0|"},
        /* below the prefix, at it, in it, at its end, past it */
        {"a/", "0", JS_COUNT, 0, "a/1|a/2|a/\xff|"},
        {"a/", "a/", JS_COUNT, 0, "a/1|a/2|a/\xff|"},
        {"a/", "a/1", JS_COUNT, 0, "a/2|a/\xff|"},
        {"a/", "a/\xff", JS_COUNT, 0, ""},
        {"a/", "b", JS_COUNT, 0, ""},
        {"\xff", "a", JS_COUNT, 0, "\xff|"},
        /* in a state */
        {NULL, "a/", JS_QUEUED, 0, "a/2|a/\xff|a0|b|r\xe9sum\xe9.csv|\xff|"},
        {NULL, "a/", JS_SENDING, 0, "a/1|"},
        {NULL, "a/1", JS_SENDING, 0, ""},
    };
    struct journal_query q;
    char all[256];
    size_t i;

    offer_claim_first(paths, sizeof(paths) / sizeof(paths[0]));
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        q = (struct journal_query){.prefix = cases[i].prefix,
                                   .after = cases[i].after,
                                   .state = cases[i].state,
                                   .limit = cases[i].limit};
        all[0] = '\0';
        ck_assert_int_eq(journal_find(j, &q, join_paths, all), 0);
        ck_assert_msg(strcmp(all, cases[i].want) == 0, "case %zu: \"%s\"", i,
                      all);
    }
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

/* --- journals left by earlier releases ------------------------------- */

/*
 * tests/data/journal-v*.sql are dumps of journals real agents wrote (see
 * tests/data/mkjournal.sh).  Each is loaded into a new file, then opened
 * as the agent opens it at start-up.
 */

/* A files row as the dump holds it. */
struct want_file {
    int64_t id;
    const char *path;
    int64_t size, mtime_ns;
    enum journal_state state;
    int64_t attempts, next_attempt, resume_offset;
    const char *sha256, *last_error;
    int64_t detected_at, attempted_at, delivered_at, version;
};

/* A dump: its schema version and what it holds. */
struct fixture {
    const char *file;
    int version;
    const struct want_file *files;
    size_t n_files;
    const char *pid;
    int64_t pid_at;
    const char *target_error;
    int64_t target_error_at;
    const char *sending; /* the row left 'sending' */
    const char *queued;  /* the row queued for later ... */
    int64_t queued_due;  /* ... due then */
    const char *partial; /* the 'partial' row (v2 on), or NULL */
    int64_t partial_size, partial_mtime_ns, partial_at;
    const char *partial_peer;
};

static const struct want_file v1_files[] = {
    {1, "report.csv", 13, 1796021125405630318, JS_DELIVERED, 1, 1796021125, 13,
     "c15097c46e6dbfe67d8106c18b850ff4312898c146771669ae50324f910ed93c", NULL,
     1796021125, 1796021125, 1796021125, 2},
    {2,
     "\xc3\xa9t\xc3\xa9/donn\xc3\xa9"
     "es.txt",
     9, 1796021124067058639, JS_DELIVERED, 1, 1796021124, 9,
     "3dde892e6cd182a57d0923c22d51604831ff0ddfc0a3366346a05ed36ca9e9bb", NULL,
     1796021124, 1796021124, 1796021124, 1},
    {3, "a/b/c/file_1.txt", 11, 1796021124067058639, JS_DELIVERED, 1,
     1796021124, 11,
     "7ca46ed8705ae80e983715aa2d60e4c49c87465c9d9467cafddf02bfadf6fc77", NULL,
     1796021124, 1796021124, 1796021124, 1},
    {4, "blocked/x.txt", 6, 1796021125481630318, JS_FAILED, 1, 1796021125, 0,
     NULL,
     "/tmp/mkjournal/dst/blocked/x.txt: creating its folder: Not a directory",
     1796021125, 1796021125, 0, 1},
    {5, "later.txt", 8, 1796021125569630318, JS_QUEUED, 0, 1796024150, 0, NULL,
     "target.path /tmp/mkjournal/dst: No such file or directory", 1796021125,
     1796021125, 0, 1},
    {6, "big.bin", 536870912, 1796021127253630318, JS_SENDING, 0, 1796021127,
     8683520, NULL, NULL, 1796021127, 1796021127, 0, 1},
};

/* Schema 1 has no partial table: the upgrade adds it, empty. */
static const struct fixture v1 = {
    .file = "journal-v1.sql",
    .version = 1,
    .files = v1_files,
    .n_files = sizeof(v1_files) / sizeof(v1_files[0]),
    .pid = "7472",
    .pid_at = 1796021127,
    .target_error = "target.path /tmp/mkjournal/dst: No such file or directory",
    .target_error_at = 1796021125,
    .sending = "big.bin",
    .queued = "later.txt",
    .queued_due = 1796024150,
};

static const struct want_file v2_files[] = {
    {1, "report.csv", 13, 1796020955945630318, JS_DELIVERED, 1, 1796020955, 13,
     "c15097c46e6dbfe67d8106c18b850ff4312898c146771669ae50324f910ed93c", NULL,
     1796020955, 1796020956, 1796020956, 2},
    {2,
     "\xc3\xa9t\xc3\xa9/donn\xc3\xa9"
     "es.txt",
     9, 1796020954617777889, JS_DELIVERED, 1, 1796020954, 9,
     "3dde892e6cd182a57d0923c22d51604831ff0ddfc0a3366346a05ed36ca9e9bb", NULL,
     1796020954, 1796020954, 1796020954, 1},
    {3, "a/b/c/file_1.txt", 11, 1796020954617777889, JS_DELIVERED, 1,
     1796020954, 11,
     "7ca46ed8705ae80e983715aa2d60e4c49c87465c9d9467cafddf02bfadf6fc77", NULL,
     1796020954, 1796020954, 1796020954, 1},
    {4, "blocked/x.txt", 6, 1796020956053630318, JS_FAILED, 1, 1796020956, 0,
     NULL,
     "/tmp/mkjournal/dst/blocked/x.txt: creating its folder: Not a directory",
     1796020956, 1796020956, 0, 1},
    {5, "later.txt", 8, 1796020961545630318, JS_QUEUED, 0, 1796024480, 0, NULL,
     "target.path /tmp/mkjournal/dst: No such file or directory", 1796020961,
     1796020961, 0, 1},
    {6, "big.bin", 536870912, 1796020963349630318, JS_SENDING, 0, 1796020963,
     14843904, NULL, NULL, 1796020963, 1796020963, 0, 1},
};

static const struct fixture v2 = {
    .file = "journal-v2.sql",
    .version = 2,
    .files = v2_files,
    .n_files = sizeof(v2_files) / sizeof(v2_files[0]),
    .pid = "28781",
    .pid_at = 1796020963,
    .target_error = "target.path /tmp/mkjournal/dst: No such file or directory",
    .target_error_at = 1796020961,
    .sending = "big.bin",
    .queued = "later.txt",
    .queued_due = 1796024480,
    .partial = "upload/half.bin",
    .partial_size = 1044480,
    .partial_mtime_ns = 1796020961353630318,
    .partial_peer = "127.0.0.1:46856",
    .partial_at = 1796020961,
};

static void setup_empty(void)
{
    dir = tu_tmpdir();
    ck_assert_int_ge(asprintf(&db, "%s/journal.db", dir), 0);
    j = NULL;
}

/* The user_version of the file db, read with SQLite itself. */
static int file_version(void)
{
    sqlite3 *raw;
    sqlite3_stmt *st;
    int v;

    ck_assert_int_eq(sqlite3_open_v2(db, &raw, SQLITE_OPEN_READONLY, NULL),
                     SQLITE_OK);
    ck_assert_int_eq(
        sqlite3_prepare_v2(raw, "PRAGMA user_version", -1, &st, NULL),
        SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(raw);
    return v;
}

/* Load the dump fx->file into the (new) file db; check its version. */
static void load_dump(const struct fixture *fx)
{
    char *path = NULL, *sql;
    sqlite3 *raw;
    struct stat st;
    FILE *f;

    ck_assert_int_ge(asprintf(&path, "%s/%s", JOURNAL_FIXTURES, fx->file), 0);
    f = fopen(path, "re");
    ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
    ck_assert_int_eq(fstat(fileno(f), &st), 0);
    sql = calloc(1, (size_t)st.st_size + 1);
    ck_assert_ptr_nonnull(sql);
    ck_assert_int_eq(fread(sql, 1, (size_t)st.st_size, f), st.st_size);
    fclose(f);
    ck_assert_int_eq(access(db, F_OK), -1);
    ck_assert_int_eq(sqlite3_open(db, &raw), SQLITE_OK);
    ck_assert_msg(sqlite3_exec(raw, sql, NULL, NULL, NULL) == SQLITE_OK,
                  "%s: %s", path, sqlite3_errmsg(raw));
    sqlite3_close(raw);
    free(sql);
    free(path);
    ck_assert_int_eq(file_version(), fx->version);
}

static void str_eq_or_null(const char *got, const char *want)
{
    if (want == NULL)
        ck_assert_ptr_null(got);
    else
        ck_assert_str_eq(got, want);
}

/* Every column of the row for w->path is what w says. */
static void check_file(const struct want_file *w)
{
    struct journal_file f;

    ck_assert_msg(journal_get(j, w->path, &f) == 0, "%s: missing", w->path);
    ck_assert_int_eq(f.id, w->id);
    ck_assert_str_eq(f.path, w->path);
    ck_assert_int_eq(f.size, w->size);
    ck_assert_int_eq(f.mtime_ns, w->mtime_ns);
    ck_assert_int_eq(f.state, w->state);
    ck_assert_int_eq(f.attempts, w->attempts);
    ck_assert_int_eq(f.next_attempt, w->next_attempt);
    ck_assert_int_eq(f.resume_offset, w->resume_offset);
    /* Before version 5 the source offset was the target's. */
    ck_assert_int_eq(f.source_offset, w->resume_offset);
    ck_assert_ptr_null(f.resume_token);
    ck_assert_ptr_null(f.stale_token);
    ck_assert_ptr_null(f.target_path);
    ck_assert_ptr_null(f.outcome);
    str_eq_or_null(f.sha256, w->sha256);
    str_eq_or_null(f.last_error, w->last_error);
    ck_assert_int_eq(f.detected_at, w->detected_at);
    ck_assert_int_eq(f.attempted_at, w->attempted_at);
    ck_assert_int_eq(f.delivered_at, w->delivered_at);
    ck_assert_int_eq(f.version, w->version);
    journal_file_clear(&f);
}

/* The agent row key holds value, written at at. */
static void check_agent(const char *key, const char *value, int64_t at)
{
    char *v = NULL;
    int64_t got = 0;

    ck_assert_int_eq(journal_agent_get(j, key, &v, &got), 0);
    ck_assert_str_eq(v, value);
    ck_assert_int_eq(got, at);
    free(v);
}

/* The partial table holds fx's row, column for column, and nothing else. */
static void check_partial(const struct fixture *fx)
{
    sqlite3 *raw;
    sqlite3_stmt *st;

    ck_assert_int_eq(sqlite3_open_v2(db, &raw, SQLITE_OPEN_READONLY, NULL),
                     SQLITE_OK);
    ck_assert_int_eq(sqlite3_prepare_v2(raw,
                                        "SELECT path, size, mtime_ns, peer,"
                                        " recorded_at FROM partial",
                                        -1, &st, NULL),
                     SQLITE_OK);
    if (fx->partial) {
        ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
        ck_assert_str_eq((const char *)sqlite3_column_text(st, 0), fx->partial);
        ck_assert_int_eq(sqlite3_column_int64(st, 1), fx->partial_size);
        ck_assert_int_eq(sqlite3_column_int64(st, 2), fx->partial_mtime_ns);
        ck_assert_str_eq((const char *)sqlite3_column_text(st, 3),
                         fx->partial_peer);
        ck_assert_int_eq(sqlite3_column_int64(st, 4), fx->partial_at);
    }
    ck_assert_int_eq(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    sqlite3_close(raw);
}

/* Everything fx holds is still in the journal, as it was. */
static void check_contents(const struct fixture *fx)
{
    size_t i;
    int n = 0;

    for (i = 0; i < fx->n_files; i++)
        check_file(&fx->files[i]);
    ck_assert_int_eq(journal_list(j, JS_COUNT, count_rows, &n), 0);
    ck_assert_int_eq(n, (int)fx->n_files);
    check_agent("pid", fx->pid, fx->pid_at);
    check_agent("target_error", fx->target_error, fx->target_error_at);
    check_partial(fx);
}

/*
 * As the agent starts: the row left sending is queued again, due now,
 * keeping its resume offset, and claimed first; the row queued for later
 * is claimed when it is due.
 */
static void check_recover_and_claim(const struct fixture *fx)
{
    const struct want_file *w = NULL;
    struct journal_file f;
    size_t i;
    int n = -1;

    for (i = 0; i < fx->n_files; i++)
        if (strcmp(fx->files[i].path, fx->sending) == 0)
            w = &fx->files[i];
    ck_assert_ptr_nonnull(w);
    ck_assert_int_gt(w->resume_offset, 0);

    ck_assert_int_eq(journal_recover(j, &n), 0);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(journal_get(j, fx->sending, &f), 0);
    ck_assert_int_eq(f.state, JS_QUEUED);
    ck_assert_int_eq(f.next_attempt, 0);
    ck_assert_int_eq(f.resume_offset, w->resume_offset);
    ck_assert_int_eq(f.attempts, w->attempts);
    journal_file_clear(&f);
    ck_assert_int_eq(journal_claim(j, fx->queued_due - 1, -1, &f), 0);
    ck_assert_str_eq(f.path, fx->sending);
    ck_assert_int_eq(f.state, JS_SENDING);
    ck_assert_int_eq(f.resume_offset, w->resume_offset);
    ck_assert_int_eq(f.attempted_at, fx->queued_due - 1);
    journal_file_clear(&f);
    ck_assert_int_eq(journal_claim(j, fx->queued_due - 1, -1, &f), -ENOENT);
    ck_assert_int_eq(journal_claim(j, fx->queued_due, -1, &f), 0);
    ck_assert_str_eq(f.path, fx->queued);
    ck_assert_int_eq(f.state, JS_SENDING);
    journal_file_clear(&f);
}

/* Load fx, open it as the agent does, and check it all. */
static void check_upgrade(const struct fixture *fx)
{
    size_t i;

    load_dump(fx);
    /* A reader (the CLI, before the agent upgraded it) reads it as is. */
    ck_assert_int_eq(journal_open(db, JOURNAL_RDONLY, &j), 0);
    for (i = 0; i < fx->n_files; i++)
        check_file(&fx->files[i]);
    journal_close(j);
    ck_assert_int_eq(file_version(), fx->version);
    ck_assert_int_eq(journal_open(db, JOURNAL_CREATE, &j), 0);
    ck_assert_int_eq(file_version(), JOURNAL_SCHEMA_VERSION);
    check_contents(fx);
    check_recover_and_claim(fx);
    /* A schema that has the partial table works on it. */
    ck_assert_int_eq(journal_partial_add(j, "p", 1, 1, NULL, 1), 0);
}

START_TEST(test_upgrades_v1_journal)
{
    check_upgrade(&v1);
}
END_TEST

START_TEST(test_upgrades_v2_journal)
{
    check_upgrade(&v2);
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
    tcase_add_test(tc, test_resume_token_and_delivery);
    tcase_add_test(tc, test_changed_while_queued_and_sending);
    tcase_add_test(tc, test_backoff_and_failure);
    tcase_add_test(tc, test_retry_by_path);
    tcase_add_test(tc, test_recover_after_crash);
    tcase_add_test(tc, test_claim_batch);
    tcase_add_test(tc, test_once_claims_each_row_once);
    tcase_add_test(tc, test_prune_and_status);
    tcase_add_test(tc, test_list_and_agent_keys);
    tcase_add_test(tc, test_find_prefix_state_limit);
    tcase_add_test(tc, test_find_after);
    tcase_add_test(tc, test_reader_while_writing);
    tcase_add_test(tc, test_partial_upload_not_queued);
    tcase_add_test(tc, test_migrates_version_1);
    suite_add_tcase(s, tc);

    tc = tcase_create("upgrades");
    tcase_add_checked_fixture(tc, setup_empty, teardown);
    tcase_add_test(tc, test_upgrades_v1_journal);
    tcase_add_test(tc, test_upgrades_v2_journal);
    suite_add_tcase(s, tc);
    return s;
}

TU_MAIN(journal_suite)
