/*
 * The watcher (watch.h) on a real event loop run by the test: files
 * closed after writing, folders moved in, excluded names, symbolic links,
 * and a found() callback that stops a scan.
 *
 * The loop runs until the paths a test waits for are reported (or a
 * deadline timer fires, which fails the test).  A file closed once is
 * reported at its close; "reported once" is checked with a last file
 * written twice (settled_last()), whose second report comes through the
 * settle queue after anything queued before it: a second report of an
 * earlier file would come first.
 */
#include "config.h"

#include <sys/epoll.h>
#include <time.h>

#include "testutil.h"
#include "sftprelay/log.h"
#include "sftprelay/loop.h"
#include "sftprelay/watch.h"

#define SETTLE_MS 200
#define DEADLINE_MS 20000
#define MAX_SEEN 256

static char *dir, *root;
static struct loop *loop;
static struct watch *watch;

static struct {
    char *rel[MAX_SEEN];
    int64_t at_ms[MAX_SEEN];
    int n;
    const char *until; /* stop the loop once this is reported */
    int until_n;       /* that many times */
    int fail_at;       /* found() returns -EINTR on this call (1-based) */
    int calls;
} seen;

static int times(const char *rel);

static int on_found(void *arg, const char *rel, const struct stat *st)
{
    (void)arg;
    seen.calls++;
    if (seen.fail_at && seen.calls == seen.fail_at)
        return -EINTR;
    ck_assert_msg(S_ISREG(st->st_mode), "%s: not a regular file", rel);
    ck_assert_int_lt(seen.n, MAX_SEEN);
    seen.rel[seen.n] = strdup(rel);
    seen.at_ms[seen.n] = mono_ms();
    seen.n++;
    if (seen.until && strcmp(rel, seen.until) == 0 &&
        times(rel) >= seen.until_n)
        loop_stop(loop);
    return 0;
}

/* How many times rel was reported. */
static int times(const char *rel)
{
    int i, n = 0;

    for (i = 0; i < seen.n; i++)
        n += strcmp(seen.rel[i], rel) == 0;
    return n;
}

/* When rel was last reported (monotonic ms), or -1. */
static int64_t last_when(const char *rel)
{
    int i;

    for (i = seen.n - 1; i >= 0; i--)
        if (strcmp(seen.rel[i], rel) == 0)
            return seen.at_ms[i];
    return -1;
}

/* When rel was first reported (monotonic ms), or -1. */
static int64_t when(const char *rel)
{
    int i;

    for (i = 0; i < seen.n; i++)
        if (strcmp(seen.rel[i], rel) == 0)
            return seen.at_ms[i];
    return -1;
}

static void forget(void)
{
    int i;

    for (i = 0; i < seen.n; i++)
        free(seen.rel[i]);
    memset(&seen, 0, sizeof(seen));
}

static void setup(void)
{
    log_set_level(LOG_LVL_WARN);
    forget();
    dir = tu_tmpdir();
    ck_assert_int_ge(asprintf(&root, "%s/root", dir), 0);
    ck_assert_int_eq(mkdir(root, 0755), 0);
    ck_assert_int_eq(loop_new(&loop), 0);
    watch = NULL;
}

static void teardown(void)
{
    watch_free(watch);
    loop_free(loop);
    forget();
    tu_rmtree(dir);
    free(root);
    free(dir);
}

static void start(char *const *exclude, size_t n_exclude)
{
    struct watch_opts o = {.root = root,
                           .exclude = exclude,
                           .n_exclude = n_exclude,
                           .settle_ms = SETTLE_MS};
    struct watch_cb cb = {.found = on_found};

    ck_assert_int_eq(watch_new(&o, loop, &cb, &watch), 0);
    ck_assert_int_eq(watch_scan(watch), 0);
}

static void on_deadline(struct loop *l, int fd, uint32_t events, void *arg)
{
    (void)fd;
    (void)events;
    *(int *)arg = 1;
    loop_stop(l);
}

/* Run the loop until `until` is reported n times; fail after DEADLINE_MS. */
static void run_until_n(const char *until, int n)
{
    int timed_out = 0, t = timer_new();
    struct loop_handler h = {.fn = on_deadline, .arg = &timed_out};

    ck_assert_int_ge(t, 0);
    seen.until = until;
    seen.until_n = n;
    if (times(until) < n) {
        ck_assert_int_eq(loop_add(loop, t, EPOLLIN, &h), 0);
        ck_assert_int_eq(timer_arm(t, DEADLINE_MS, 0), 0);
        ck_assert_int_eq(loop_run(loop), 0);
        loop_del(loop, t);
    }
    close(t);
    seen.until = NULL;
    ck_assert_msg(!timed_out, "%s not reported %d times within %d ms", until,
                  n, DEADLINE_MS);
}

static void run_until(const char *until)
{
    run_until_n(until, 1);
}

/* Make path's mtime an hour old: a scan reports it without settling. */
static void age(const char *path)
{
    struct timespec ts[2];

    clock_gettime(CLOCK_REALTIME, &ts[0]);
    ts[0].tv_sec -= 3600;
    ts[1] = ts[0];
    ck_assert_int_eq(utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW), 0);
}

static void write_old(const char *base, const char *rel)
{
    char *p = tu_write_str(base, rel, "old\n");

    age(p);
    free(p);
}

static void write_now(const char *base, const char *rel)
{
    free(tu_write_str(base, rel, rel));
}

/*
 * Write last.txt twice and run until its second report, which comes
 * through the settle queue behind every report queued before it.
 */
static void settled_last(void)
{
    write_now(root, "last.txt");
    write_now(root, "last.txt");
    run_until_n("last.txt", 2);
}

/* A second write of a.txt in the middle of its quiet period. */
static int64_t rewritten_ms;

static void on_rewrite(struct loop *l, int fd, uint32_t events, void *arg)
{
    (void)l;
    (void)events;
    (void)arg;
    timer_ack(fd);
    ck_assert_int_eq(times("a.txt"), 1);
    rewritten_ms = mono_ms();
    write_now(root, "a.txt");
}

START_TEST(test_closed_after_write)
{
    struct loop_handler h = {.fn = on_rewrite};
    int64_t written_ms;
    int t = timer_new();

    start(NULL, 0);
    ck_assert_int_eq(seen.n, 0);
    written_ms = mono_ms();
    write_now(root, "a.txt");
    write_now(root, "sub/b.txt"); /* a folder made after the scan */
    ck_assert_int_eq(loop_add(loop, t, EPOLLIN, &h), 0);
    ck_assert_int_eq(timer_arm(t, SETTLE_MS / 2, 0), 0);
    /* Closed once: reported at its close, not settle_ms later. */
    run_until("a.txt");
    ck_assert_int_lt(when("a.txt") - written_ms, SETTLE_MS / 2);
    /* Written again within settle_ms (the timer): reported again once
     * quiet for settle_ms since that close. */
    run_until_n("a.txt", 2);
    loop_del(loop, t);
    close(t);
    ck_assert_int_gt(rewritten_ms, 0);
    ck_assert_int_ge(last_when("a.txt") - rewritten_ms, SETTLE_MS - 1);
    run_until("sub/b.txt");
    settled_last();
    ck_assert_int_eq(times("a.txt"), 2);
    ck_assert_int_eq(times("sub/b.txt"), 1);
    ck_assert_int_eq(seen.n, 5);
}
END_TEST

START_TEST(test_folder_moved_in)
{
    char *out = NULL, *in = NULL, name[64];
    int i;

    ck_assert_int_ge(asprintf(&out, "%s/outside", dir), 0);
    ck_assert_int_eq(mkdir(out, 0755), 0);
    ck_assert_int_ge(asprintf(&in, "%s/batch", root), 0);
    for (i = 0; i < 60; i++) {
        snprintf(name, sizeof(name), "%s/f%02d.txt",
                 i % 3 == 0   ? "deep/er"
                 : i % 3 == 1 ? "deep"
                              : ".",
                 i);
        /* Half written long ago, half just now (those settle first). */
        if (i % 2)
            write_old(out, name);
        else
            write_now(out, name);
    }
    start(NULL, 0);
    ck_assert_int_eq(rename(out, in), 0);
    /* A file written later inside the moved folder: it is watched. */
    write_now(in, "deep/er/late.txt");
    run_until("batch/deep/er/late.txt");
    settled_last();
    for (i = 0; i < 60; i++) {
        snprintf(name, sizeof(name), "batch/%sf%02d.txt",
                 i % 3 == 0   ? "deep/er/"
                 : i % 3 == 1 ? "deep/"
                              : "",
                 i);
        ck_assert_msg(times(name) == 1, "%s reported %d times", name,
                      times(name));
    }
    ck_assert_int_eq(seen.n, 63);
    free(out);
    free(in);
}
END_TEST

START_TEST(test_excluded)
{
    char *exclude[] = {"*.part", "skip"};

    write_old(root, "old.part");
    write_old(root, "skip/old.txt");
    write_old(root, "old.txt");
    start(exclude, 2);
    ck_assert_int_eq(seen.n, 1); /* the scan: old.txt only */
    ck_assert_int_eq(times("old.txt"), 1);
    write_now(root, "new.part");
    write_now(root, "skip/new.txt");
    write_now(root, "deeper/skip/new.txt");
    write_now(root, "deeper/x.part");
    write_now(root, "new.txt");
    run_until("new.txt");
    settled_last();
    ck_assert_int_eq(seen.n, 4);
    ck_assert_int_eq(times("new.txt"), 1);
}
END_TEST

START_TEST(test_symlinks_not_followed)
{
    char *out = NULL, *p = NULL, *q = NULL;

    ck_assert_int_ge(asprintf(&out, "%s/outside", dir), 0);
    ck_assert_int_eq(mkdir(out, 0755), 0);
    write_old(out, "secret.txt");
    write_old(out, "tree/inside.txt");
    write_old(root, "real.txt");
    ck_assert_int_ge(asprintf(&p, "%s/link.txt", root), 0);
    ck_assert_int_eq(symlink("../outside/secret.txt", p), 0);
    free(p);
    ck_assert_int_ge(asprintf(&p, "%s/dlink", root), 0);
    ck_assert_int_eq(symlink("../outside/tree", p), 0);
    free(p);
    start(NULL, 0);
    ck_assert_int_eq(seen.n, 1);
    ck_assert_int_eq(times("real.txt"), 1);
    /* Links made, and moved in, while watched. */
    ck_assert_int_ge(asprintf(&p, "%s/new-link.txt", root), 0);
    ck_assert_int_eq(symlink(out, p), 0);
    free(p);
    ck_assert_int_ge(asprintf(&p, "%s/moved-link", out), 0);
    ck_assert_int_ge(asprintf(&q, "%s/moved-link.txt", root), 0);
    ck_assert_int_eq(symlink("secret.txt", p), 0);
    ck_assert_int_eq(rename(p, q), 0);
    free(p);
    free(q);
    settled_last();
    ck_assert_int_eq(seen.n, 3);
    ck_assert_int_eq(times("real.txt"), 1);
    free(out);
}
END_TEST

START_TEST(test_found_error_stops_scan)
{
    struct watch_opts o = {.root = root, .settle_ms = SETTLE_MS};
    struct watch_cb cb = {.found = on_found};
    char name[32];
    int i;

    for (i = 0; i < 10; i++) {
        snprintf(name, sizeof(name), "d%d/f%d", i % 2, i);
        write_old(root, name);
    }
    ck_assert_int_eq(watch_new(&o, loop, &cb, &watch), 0);
    seen.fail_at = 3;
    ck_assert_int_eq(watch_scan(watch), -EINTR);
    ck_assert_int_eq(seen.calls, 3);
    ck_assert_int_eq(seen.n, 2);
    /* The next scan finds them all. */
    seen.fail_at = 0;
    seen.calls = 0;
    forget();
    ck_assert_int_eq(watch_scan(watch), 0);
    ck_assert_int_eq(seen.n, 10);
}
END_TEST

START_TEST(test_missing_root)
{
    struct watch_opts o = {.root = "/nonexistent/sftprelay-root"};
    struct watch_cb cb = {.found = on_found};
    struct watch *w = NULL;
    char *f = tu_write_str(dir, "plain", "x");

    ck_assert_int_eq(watch_new(&o, loop, &cb, &w), -ENOENT);
    ck_assert_ptr_null(w);
    o.root = f;
    ck_assert_int_eq(watch_new(&o, loop, &cb, &w), -ENOTDIR);
    free(f);
}
END_TEST

static Suite *watch_suite(void)
{
    Suite *s = suite_create("watch");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_closed_after_write);
    tcase_add_test(tc, test_folder_moved_in);
    tcase_add_test(tc, test_excluded);
    tcase_add_test(tc, test_symlinks_not_followed);
    tcase_add_test(tc, test_found_error_stops_scan);
    tcase_add_test(tc, test_missing_root);
    suite_add_tcase(s, tc);
    return s;
}

TU_MAIN(watch_suite)
