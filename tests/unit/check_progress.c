/*
 * The table of files being sent (progress.c), on a clock the tests move:
 * the rate is over the last few seconds (a file that slows down, stalls
 * or resumes shows what it does now), the time left follows from it,
 * ranges sent by several threads add up to one row, a snapshot is a copy,
 * and the journal's text form gives back every byte of a path.
 */
#include "config.h"

#include <pthread.h>
#include <stdatomic.h>

#include "testutil.h"
#include "sftprelay/progress.h"

#define KIB 1024
#define MIB (1024 * 1024)

static _Atomic int64_t clock_now;
static struct progress *p;

static int64_t test_clock(void)
{
    return atomic_load(&clock_now);
}

static void setup(void)
{
    atomic_store(&clock_now, 1000000);
    ck_assert_int_eq(progress_new(test_clock, &p), 0);
}

static void teardown(void)
{
    progress_free(p);
    p = NULL;
}

static void tick(int64_t ms)
{
    atomic_fetch_add(&clock_now, ms);
}

/* The one row of the table, copied; freed by the caller. */
static struct progress_entry *only_row(void)
{
    struct progress_entry *e;
    size_t n;

    ck_assert_int_eq(progress_snapshot(p, &e, &n), 0);
    ck_assert_uint_eq(n, 1);
    return e;
}

/* Send bytes every step_ms for ms. */
static void send_for(struct progress_file *pf, int64_t ms, int64_t step_ms,
                     int64_t bytes)
{
    int64_t t;

    for (t = 0; t < ms; t += step_ms) {
        tick(step_ms);
        progress_add(pf, bytes, bytes);
    }
}

START_TEST(test_rate_is_over_the_window)
{
    struct progress_file *pf = progress_begin(p, "big.bin", 100 * MIB);
    struct progress_entry *e;

    ck_assert_ptr_nonnull(pf);
    /* 400 KiB/s for 20 s, then 100 KiB/s: after a window at the new
     * speed, only the new speed shows. */
    send_for(pf, 20000, 250, 100 * KIB);
    e = only_row();
    ck_assert_int_eq(e->rate, 400 * KIB);
    ck_assert_int_eq(e->sent, 8000 * KIB);
    progress_entries_free(e, 1);
    send_for(pf, 5000, 250, 25 * KIB);
    e = only_row();
    ck_assert_int_eq(e->rate, 250 * KIB); /* half a window of each */
    progress_entries_free(e, 1);
    send_for(pf, PROGRESS_WINDOW_MS, 250, 25 * KIB);
    e = only_row();
    ck_assert_int_eq(e->rate, 100 * KIB);
    ck_assert_int_eq(e->sent, 8000 * KIB + 1500 * KIB);
    ck_assert_int_eq(progress_eta(e),
                     (100 * MIB - 9500 * KIB + 100 * KIB - 1) / (100 * KIB));
    progress_entries_free(e, 1);
    progress_end(pf);
}
END_TEST

START_TEST(test_rate_unknown_at_first_and_when_stalled)
{
    struct progress_file *pf = progress_begin(p, "slow.bin", 10 * MIB);
    struct progress_entry *e;

    /* Under a second in: not known yet, nor the time left. */
    send_for(pf, 750, 250, 64 * KIB);
    e = only_row();
    ck_assert_int_eq(e->sent, 192 * KIB);
    ck_assert_int_eq(e->rate, 0);
    ck_assert_int_eq(progress_eta(e), -1);
    progress_entries_free(e, 1);
    /* Chunks now and then (slower than a sample): the rate is of the
     * time since the start while it is shorter than the window. */
    send_for(pf, 1250, 1250, 64 * KIB);
    e = only_row();
    ck_assert_int_eq(e->rate, 256 * KIB / 2);
    progress_entries_free(e, 1);
    /* Nothing for a whole window: the rate is 0, the time left unknown. */
    tick(PROGRESS_WINDOW_MS);
    e = only_row();
    ck_assert_int_eq(e->rate, 0);
    ck_assert_int_eq(progress_eta(e), -1);
    progress_entries_free(e, 1);
    /* Half a window later, it goes again at 128 KiB/s. */
    send_for(pf, 5000, 500, 64 * KIB);
    e = only_row();
    ck_assert_int_eq(e->rate, 64 * KIB); /* 640 KiB over the 10 s */
    progress_entries_free(e, 1);
    progress_end(pf);
}
END_TEST

/* A resumed file: what was sent before counts in sent, not in the rate. */
START_TEST(test_resumed_file_shows_the_rate_of_now)
{
    struct progress_file *pf = progress_begin(p, "resumed.bin", 100 * MIB);
    struct progress_entry *e;

    tick(3000); /* connecting, reading again for the digest */
    progress_from(pf, 60 * MIB, 20 * MIB); /* gzip'd: fewer on the target */
    send_for(pf, 4000, 250, 32 * KIB);
    e = only_row();
    ck_assert_int_eq(e->sent, 60 * MIB + 512 * KIB);
    ck_assert_int_eq(e->target_bytes, 20 * MIB + 512 * KIB);
    ck_assert_int_eq(e->rate, 128 * KIB);
    ck_assert_int_eq(progress_eta(e),
                     (40 * MIB - 512 * KIB + 128 * KIB - 1) / (128 * KIB));
    ck_assert_int_eq(e->size, 100 * MIB);
    ck_assert_str_eq(e->path, "resumed.bin");
    progress_entries_free(e, 1);
    progress_end(pf);
}
END_TEST

START_TEST(test_eta)
{
    struct progress_entry e = {.size = 1000, .sent = 400, .rate = 100};

    ck_assert_int_eq(progress_eta(&e), 6);
    e.rate = 7;
    ck_assert_int_eq(progress_eta(&e), 86); /* 85.7, rounded up */
    e.rate = 0;
    ck_assert_int_eq(progress_eta(&e), -1);
    e.sent = 1000;
    ck_assert_int_eq(progress_eta(&e), 0); /* all read: committing */
}
END_TEST

/* Ranges: threads of their own add to one row. */
struct range_arg {
    struct progress_file *pf;
    int chunks;
};

static void *range_thread(void *arg)
{
    struct range_arg *ra = arg;
    int i;

    for (i = 0; i < ra->chunks; i++) {
        if (i % 16 == 0)
            tick(1);
        progress_add(ra->pf, 4 * KIB, 4 * KIB);
    }
    return NULL;
}

START_TEST(test_ranges_are_one_row_with_the_sum)
{
    struct progress_file *pf = progress_begin(p, "ranged.bin", 64 * MIB);
    struct range_arg ra = {.pf = pf, .chunks = 1000};
    pthread_t t[4];
    struct progress_entry *e;
    int i;

    progress_from(pf, 3 * MIB, 3 * MIB); /* the ranges' recorded progress */
    for (i = 0; i < 4; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, range_thread, &ra), 0);
    for (i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    e = only_row();
    ck_assert_int_eq(e->sent, 3 * MIB + 4 * 1000 * 4 * KIB);
    ck_assert_int_eq(e->target_bytes, e->sent);
    progress_entries_free(e, 1);
    progress_end(pf);
}
END_TEST

START_TEST(test_snapshot_is_a_copy)
{
    struct progress_file *a = progress_begin(p, "a.csv", 10);
    struct progress_file *b = progress_begin(p, "b.csv", 20);
    struct progress_file *c = progress_begin(p, "c.csv", 30);
    struct progress_entry *e;
    size_t n;

    progress_add(b, 5, 5);
    progress_end(a);
    ck_assert_int_eq(progress_snapshot(p, &e, &n), 0);
    ck_assert_uint_eq(n, 2); /* in the order they began */
    ck_assert_str_eq(e[0].path, "b.csv");
    ck_assert_int_eq(e[0].sent, 5);
    ck_assert_str_eq(e[1].path, "c.csv");
    ck_assert_int_le(e[1].started_at, (int64_t)time(NULL));
    ck_assert_int_gt(e[1].started_at, (int64_t)time(NULL) - 60);
    /* The rows end; the copy stays as it was. */
    progress_end(b);
    progress_end(c);
    ck_assert_str_eq(e[1].path, "c.csv");
    progress_entries_free(e, n);
    ck_assert_int_eq(progress_snapshot(p, &e, &n), 0);
    ck_assert_uint_eq(n, 0);
    ck_assert_ptr_null(e);
}
END_TEST

/* No table: nothing is shown, and nothing fails. */
START_TEST(test_no_table)
{
    struct progress_file *pf = progress_begin(NULL, "x", 1);
    struct progress_entry *e;
    size_t n = 7;

    ck_assert_ptr_null(pf);
    progress_from(pf, 1, 1);
    progress_add(pf, 1, 1);
    progress_end(pf);
    ck_assert_int_eq(progress_snapshot(NULL, &e, &n), 0);
    ck_assert_uint_eq(n, 0);
}
END_TEST

START_TEST(test_journal_text_round_trip)
{
    /* a space first, '%', a newline, a tab, UTF-8, a Latin-1 byte */
    static const char *paths[] = {" lead.txt", "100%/x\nnew\tline",
                                  "caf\xc3\xa9/r\xe9sum\xe9.csv"};
    struct progress_entry in[3], *out;
    char *text;
    size_t n, i;

    for (i = 0; i < 3; i++)
        in[i] = (struct progress_entry){.path = (char *)paths[i],
                                        .size = 1000 + (int64_t)i,
                                        .sent = 10 + (int64_t)i,
                                        .target_bytes = 7,
                                        .rate = 5 * (int64_t)i,
                                        .started_at = 1700000000};
    ck_assert_int_eq(progress_encode(in, 3, &text), 0);
    ck_assert_ptr_null(memchr(text, '\t', strlen(text)));
    ck_assert_str_eq(strchr(text, '\n') + 1,
                     "1001 11 7 5 1700000000 100%25/x%0Anew%09line\n"
                     "1002 12 7 10 1700000000 caf\xc3\xa9/r\xe9sum\xe9.csv\n");
    ck_assert_int_eq(progress_decode(text, &out, &n), 0);
    ck_assert_uint_eq(n, 3);
    for (i = 0; i < 3; i++) {
        ck_assert_str_eq(out[i].path, paths[i]);
        ck_assert_int_eq(out[i].size, in[i].size);
        ck_assert_int_eq(out[i].sent, in[i].sent);
        ck_assert_int_eq(out[i].target_bytes, 7);
        ck_assert_int_eq(out[i].rate, in[i].rate);
        ck_assert_int_eq(out[i].started_at, 1700000000);
    }
    progress_entries_free(out, n);
    free(text);
    /* None: "" both ways. */
    ck_assert_int_eq(progress_encode(NULL, 0, &text), 0);
    ck_assert_str_eq(text, "");
    ck_assert_int_eq(progress_decode(text, &out, &n), 0);
    ck_assert_uint_eq(n, 0);
    free(text);
}
END_TEST

START_TEST(test_journal_text_refused)
{
    static const char *bad[] = {
        "1 2 3 4 5\n",                      /* no path */
        "1 2 3 4 5 x",                      /* no newline */
        "1 2 -3 4 5 x\n",                   /* a sign */
        "1 2 3 4 5 a%2\n",                  /* a cut escape */
        "1 2 3 4 5 a%00b\n",                /* NUL */
        "1 2 3 4 99999999999999999999 x\n", /* too big */
        "1 2 3 4 5 ok\ngarbage\n",
    };
    struct progress_entry *out;
    size_t n, i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(progress_decode(bad[i], &out, &n) == -EPROTO, "%s",
                      bad[i]);
        ck_assert_ptr_null(out);
        ck_assert_uint_eq(n, 0);
    }
}
END_TEST

static Suite *progress_suite(void)
{
    Suite *s = suite_create("progress");
    TCase *tc = tcase_create("table");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_rate_is_over_the_window);
    tcase_add_test(tc, test_rate_unknown_at_first_and_when_stalled);
    tcase_add_test(tc, test_resumed_file_shows_the_rate_of_now);
    tcase_add_test(tc, test_eta);
    tcase_add_test(tc, test_ranges_are_one_row_with_the_sum);
    tcase_add_test(tc, test_snapshot_is_a_copy);
    tcase_add_test(tc, test_no_table);
    tcase_add_test(tc, test_journal_text_round_trip);
    tcase_add_test(tc, test_journal_text_refused);
    suite_add_tcase(s, tc);
    return s;
}

TU_MAIN(progress_suite)
