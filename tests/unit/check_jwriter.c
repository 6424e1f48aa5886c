/*
 * The journal writer (jwriter.h): group commit, the order of results,
 * checkpoints coalesced while queued, flush, and a journal that refuses
 * writes (a full filesystem) and then takes them again with nothing lost.
 *
 * The writer is held still where a test needs a known queue: its
 * on_commit callback (run on the writer's thread, no lock held) waits at
 * a gate the test opens.
 */
#include "config.h"

#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sqlite3.h>
#include <sys/mount.h>
#include <time.h>

#include "testutil.h"
#include "sftprelay/journal.h"
#include "sftprelay/jwriter.h"
#include "sftprelay/log.h"
#include "sftprelay/loop.h"

/* The checkpoint of a file sent as it is, with no resume token. */
#define MARK(off) (&(struct journal_mark){.offset = (off), .source_offset = (off)})
/* A delivery written under the row's own name. */
#define DELIVERY(sha) (&(struct journal_delivery){.sha256 = (sha), .outcome = "written"})

#define DEADLINE_MS 30000

static char *dir, *state, *db;
static struct jwriter *jw;
static struct journal *tj; /* the test's own connection */
static int mounted;

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int closed;  /* on_commit waits while set */
    int entered; /* on_commit is waiting */
    int64_t queued, commits;
    int recovered;
} gate = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static void on_commit(void *arg, int queued, int recovered, int lost)
{
    (void)arg;
    (void)lost;
    pthread_mutex_lock(&gate.lock);
    gate.queued += queued;
    gate.commits++;
    gate.recovered += recovered;
    gate.entered = gate.closed;
    pthread_cond_broadcast(&gate.cond);
    while (gate.closed)
        pthread_cond_wait(&gate.cond, &gate.lock);
    gate.entered = 0;
    pthread_mutex_unlock(&gate.lock);
}

/*
 * Wait until on_commit was called for every commit so far (it runs after
 * the commit, so jwriter_flush() may return before it).
 */
static void settled(void)
{
    struct jwriter_stats st;
    int64_t until = mono_ms() + DEADLINE_MS;
    int done;

    ck_assert_int_eq(jwriter_flush(jw, DEADLINE_MS), 0);
    jwriter_stats(jw, &st);
    for (;;) {
        pthread_mutex_lock(&gate.lock);
        done = gate.commits == st.commits;
        pthread_mutex_unlock(&gate.lock);
        if (done)
            return;
        ck_assert_msg(mono_ms() < until, "on_commit not called");
        poll(NULL, 0, 5);
    }
}

/* Close the gate and wait until the writer is held at it. */
static void hold_writer(void)
{
    settled();
    pthread_mutex_lock(&gate.lock);
    gate.closed = 1;
    pthread_mutex_unlock(&gate.lock);
    ck_assert_int_eq(jwriter_agent_set(jw, "hold", "1", 1), 0);
    pthread_mutex_lock(&gate.lock);
    while (!gate.entered)
        pthread_cond_wait(&gate.cond, &gate.lock);
    pthread_mutex_unlock(&gate.lock);
}

static void release_writer(void)
{
    pthread_mutex_lock(&gate.lock);
    gate.closed = 0;
    pthread_cond_broadcast(&gate.cond);
    pthread_mutex_unlock(&gate.lock);
}

static void setup(void)
{
    log_set_level(LOG_LVL_ERROR);
    gate.closed = gate.entered = gate.recovered = 0;
    gate.queued = gate.commits = 0;
    dir = tu_tmpdir();
    ck_assert_int_ge(asprintf(&state, "%s/state", dir), 0);
    ck_assert_int_ge(asprintf(&db, "%s/journal.db", state), 0);
    ck_assert_int_eq(mkdir(state, 0755), 0);
    mounted = 0;
    jw = NULL;
    tj = NULL;
}

static void start(void)
{
    struct jwriter_cb cb = {.on_commit = on_commit};

    ck_assert_int_eq(jwriter_new(db, &cb, &jw), 0);
    ck_assert_int_eq(journal_open(db, JOURNAL_CREATE, &tj), 0);
}

static void teardown(void)
{
    release_writer();
    jwriter_free(jw);
    journal_close(tj);
    if (mounted)
        ck_assert_int_eq(umount2(state, MNT_DETACH), 0);
    tu_rmtree(dir);
    free(db);
    free(state);
    free(dir);
}

static int64_t count(enum journal_state s)
{
    struct journal_status st;
    int64_t n;

    ck_assert_int_eq(journal_status(tj, &st), 0);
    n = st.counts[s];
    journal_status_clear(&st);
    return n;
}

static struct jwriter_stats stats(void)
{
    struct jwriter_stats st;

    jwriter_stats(jw, &st);
    return st;
}

static void offer(const char *path, int64_t size)
{
    ck_assert_int_eq(
        jwriter_offer(jw, JW_FOUND, path, size, 1000, 100, NULL, -1), 0);
}

START_TEST(test_group_commit)
{
    enum { N = 5000 };
    struct jwriter_stats st;
    char name[64];
    int i;

    start();
    hold_writer(); /* the offers pile up behind the first commit */
    for (i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "g/%05d.dat", i);
        offer(name, i);
    }
    ck_assert_int_eq(stats().waiting, N);
    release_writer();
    ck_assert_int_eq(jwriter_flush(jw, DEADLINE_MS), 0);
    st = stats();
    ck_assert_int_eq(st.offers, N);
    ck_assert_int_eq(st.waiting, 0);
    ck_assert_int_eq(st.failing, 0);
    /* The hold, then N offers in batches of a few thousand. */
    ck_assert_int_le(st.commits, 4);
    ck_assert_int_eq(count(JS_QUEUED), N);
    settled();
    ck_assert_int_eq(gate.queued, N);

    /* Unheld, a burst still takes far fewer commits than offers. */
    for (i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "h/%05d.dat", i);
        offer(name, i);
    }
    ck_assert_int_eq(jwriter_flush(jw, DEADLINE_MS), 0);
    ck_assert_int_eq(count(JS_QUEUED), 2 * N);
    ck_assert_int_eq(stats().offers, 2 * N);
}
END_TEST

/* A row claimed on the test's connection, as a worker would. */
static struct journal_file claimed(const char *path, int64_t size)
{
    struct journal_file f;

    offer(path, size);
    ck_assert_int_eq(jwriter_flush(jw, DEADLINE_MS), 0);
    ck_assert_int_eq(journal_claim(tj, 1000, -1, &f), 0);
    ck_assert_str_eq(f.path, path);
    return f;
}

static struct journal_file row(const char *path)
{
    struct journal_file f;

    ck_assert_int_eq(journal_get(tj, path, &f), 0);
    return f;
}

START_TEST(test_results_in_order)
{
    struct journal_file x, y, g;
    char *v = NULL;
    int64_t at;

    start();
    x = claimed("x", 100);
    y = claimed("y", 100);
    hold_writer();
    /* A checkpoint then a requeue: applied in the other order, the
     * checkpoint would find the row queued and be ignored. */
    ck_assert_int_eq(jwriter_checkpoint(jw, &x, MARK(40)), 0);
    ck_assert_int_eq(jwriter_requeue(jw, &x, 5000, "first", 1, 0), 0);
    /* A delivered then a checkpoint: the late checkpoint changes nothing. */
    ck_assert_int_eq(jwriter_delivered(jw, &y, DELIVERY("cafe"), 1001, 1002), 0);
    ck_assert_int_eq(jwriter_checkpoint(jw, &y, MARK(7)), 0);
    ck_assert_int_eq(jwriter_agent_set(jw, "k", "1", 1), 0);
    ck_assert_int_eq(jwriter_agent_set(jw, "k", "2", 2), 0);
    ck_assert_int_eq(jwriter_agent_set(jw, "k", "3", 3), 0);
    release_writer();
    ck_assert_int_eq(jwriter_flush(jw, DEADLINE_MS), 0);
    g = row("x");
    ck_assert_int_eq(g.state, JS_QUEUED);
    ck_assert_int_eq(g.resume_offset, 40);
    ck_assert_int_eq(g.attempts, 1);
    ck_assert_int_eq(g.next_attempt, 5000);
    ck_assert_str_eq(g.last_error, "first");
    journal_file_clear(&g);
    g = row("y");
    ck_assert_int_eq(g.state, JS_DELIVERED);
    ck_assert_int_eq(g.resume_offset, 100);
    ck_assert_str_eq(g.sha256, "cafe");
    journal_file_clear(&g);
    ck_assert_int_eq(journal_agent_get(tj, "k", &v, &at), 0);
    ck_assert_str_eq(v, "3");
    ck_assert_int_eq(at, 3);
    free(v);
    journal_file_clear(&x);
    journal_file_clear(&y);
}
END_TEST

START_TEST(test_checkpoints_coalesce)
{
    struct journal_file x, y, other, g;
    int i;

    start();
    x = claimed("x", 1 << 20);
    y = claimed("y", 1 << 20);
    hold_writer();
    for (i = 1; i <= 100; i++)
        ck_assert_int_eq(jwriter_checkpoint(jw, &x, MARK(i * 1000)), 0);
    ck_assert_int_eq(stats().waiting, 1);
    ck_assert_int_eq(jwriter_checkpoint(jw, &y, MARK(10)), 0);
    ck_assert_int_eq(jwriter_checkpoint(jw, &y, MARK(20)), 0);
    ck_assert_int_eq(stats().waiting, 2);
    /* Another version of x is another checkpoint. */
    other = x;
    other.size = 5;
    ck_assert_int_eq(jwriter_checkpoint(jw, &other, MARK(3)), 0);
    ck_assert_int_eq(stats().waiting, 3);
    /* One still queued behind another result is moved forward too (the
     * row cannot be claimed again before that result is written). */
    ck_assert_int_eq(jwriter_agent_set(jw, "k", "v", 1), 0);
    ck_assert_int_eq(stats().waiting, 4);
    ck_assert_int_eq(jwriter_checkpoint(jw, &x, MARK(200000)), 0);
    ck_assert_int_eq(stats().waiting, 4);
    release_writer();
    ck_assert_int_eq(jwriter_flush(jw, DEADLINE_MS), 0);
    g = row("x");
    ck_assert_int_eq(g.resume_offset, 200000);
    journal_file_clear(&g);
    g = row("y");
    ck_assert_int_eq(g.resume_offset, 20);
    journal_file_clear(&g);
    journal_file_clear(&x);
    journal_file_clear(&y);
}
END_TEST

/* An agent fact set again while queued replaces its value: one written
 * every second ("sending") does not pile up while the writer waits. */
START_TEST(test_agent_values_coalesce)
{
    char *v = NULL;
    int64_t at;
    int i;

    start();
    hold_writer();
    for (i = 1; i <= 100; i++)
        ck_assert_int_eq(jwriter_agent_set(jw, "sending", i % 2 ? "a" : "b", i),
                         0);
    ck_assert_int_eq(jwriter_agent_set(jw, "target_error", "down", 7), 0);
    ck_assert_int_eq(stats().waiting, 2);
    ck_assert_int_eq(jwriter_agent_set(jw, "sending", "", 101), 0);
    ck_assert_int_eq(stats().waiting, 2);
    release_writer();
    ck_assert_int_eq(jwriter_flush(jw, DEADLINE_MS), 0);
    ck_assert_int_eq(journal_agent_get(tj, "sending", &v, &at), 0);
    ck_assert_str_eq(v, "");
    ck_assert_int_eq(at, 101);
    free(v);
    ck_assert_int_eq(journal_agent_get(tj, "target_error", &v, &at), 0);
    ck_assert_str_eq(v, "down");
    free(v);
}
END_TEST

START_TEST(test_flush)
{
    start();
    offer("a", 1);
    ck_assert_int_eq(jwriter_flush(jw, DEADLINE_MS), 0);
    ck_assert_int_eq(count(JS_QUEUED), 1); /* visible to another reader */
    hold_writer();
    offer("b", 1);
    /* Queued behind a writer that cannot take it: flush times out. */
    ck_assert_int_eq(jwriter_flush(jw, 200), -ETIMEDOUT);
    ck_assert_int_eq(count(JS_QUEUED), 1);
    release_writer();
    ck_assert_int_eq(jwriter_flush(jw, DEADLINE_MS), 0);
    ck_assert_int_eq(count(JS_QUEUED), 2);
    /* Nothing queued: at once. */
    ck_assert_int_eq(jwriter_flush(jw, 0), 0);
}
END_TEST

/* Write id_map to /proc/self/FILE; 0 or -1. */
static int write_map(const char *file, const char *text)
{
    char path[64];
    int fd, r;

    snprintf(path, sizeof(path), "/proc/self/%s", file);
    fd = open(path, O_WRONLY);
    if (fd < 0)
        return -1;
    r = write(fd, text, strlen(text)) == (ssize_t)strlen(text) ? 0 : -1;
    close(fd);
    return r;
}

/*
 * A tiny tmpfs on the journal's folder, in a mount namespace of this
 * test's process alone (Check runs each test in a child): as root, or as
 * root of a new user namespace.  0, or -1 where neither is allowed.
 */
static int tiny_fs(void)
{
    char map[64];
    uid_t uid = getuid();
    gid_t gid = getgid();

    if (unshare(CLONE_NEWNS) < 0) {
        if (unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0)
            return -1;
        snprintf(map, sizeof(map), "0 %u 1", (unsigned)uid);
        write_map("setgroups", "deny");
        if (write_map("uid_map", map) < 0)
            return -1;
        snprintf(map, sizeof(map), "0 %u 1", (unsigned)gid);
        if (write_map("gid_map", map) < 0)
            return -1;
    }
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
        mount("tmpfs", state, "tmpfs", 0, "size=8m,mode=0755") < 0)
        return -1;
    mounted = 1;
    return 0;
}

/* Fill the filesystem that holds path's folder. */
static char *fill(void)
{
    static char buf[16384];
    char *p = NULL;
    int fd;

    ck_assert_int_ge(asprintf(&p, "%s/filler", state), 0);
    fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    while (write(fd, buf, sizeof(buf)) > 0)
        ;
    ck_assert_int_eq(errno, ENOSPC);
    close(fd);
    return p;
}

START_TEST(test_refuses_then_recovers)
{
    enum { BEFORE = 50, DURING = 3000 };
    sqlite3 *locker = NULL;
    char name[256], *filler = NULL, *v = NULL;
    int64_t until, at;
    int i, full = tiny_fs() == 0;

    start();
    for (i = 0; i < BEFORE; i++) {
        snprintf(name, sizeof(name), "before/%03d", i);
        offer(name, i);
    }
    ck_assert_int_eq(jwriter_flush(jw, DEADLINE_MS), 0);
    /* Everything below goes in one batch, after the space is gone. */
    hold_writer();
    if (full) {
        filler = fill();
    } else {
        /* No mount namespace here: another process's write lock, held past
         * the writer's busy timeout, makes it fail with -EBUSY instead. */
        fprintf(stderr, "no tmpfs: holding the journal's write lock\n");
        ck_assert_int_eq(sqlite3_open(db, &locker), SQLITE_OK);
        ck_assert_int_eq(
            sqlite3_exec(locker, "BEGIN IMMEDIATE", NULL, NULL, NULL),
            SQLITE_OK);
    }
    /* Long paths: the WAL must grow, and there is no room. */
    for (i = 0; i < DURING; i++) {
        snprintf(name, sizeof(name), "during/%04d/%0200d", i, i);
        offer(name, i);
    }
    ck_assert_int_eq(jwriter_agent_set(jw, "k", "kept", 7), 0);
    release_writer();
    until = mono_ms() + DEADLINE_MS;
    while (!stats().failing) {
        ck_assert_msg(mono_ms() < until, "the writer never failed");
        poll(NULL, 0, 20);
    }
    /* Kept, not written, not dropped. */
    ck_assert_int_eq(jwriter_flush(jw, 300), -ETIMEDOUT);
    ck_assert_int_eq(stats().failing, 1);
    ck_assert_int_eq(stats().waiting, DURING + 1);
    ck_assert_int_eq(count(JS_QUEUED), BEFORE);

    if (full) {
        ck_assert_int_eq(unlink(filler), 0);
    } else {
        ck_assert_int_eq(sqlite3_exec(locker, "COMMIT", NULL, NULL, NULL),
                         SQLITE_OK);
        sqlite3_close(locker);
    }
    ck_assert_int_eq(jwriter_flush(jw, DEADLINE_MS), 0);
    ck_assert_int_eq(stats().failing, 0);
    ck_assert_int_eq(stats().waiting, 0);
    ck_assert_int_eq(count(JS_QUEUED), BEFORE + DURING);
    ck_assert_int_eq(stats().offers, BEFORE + DURING);
    ck_assert_int_eq(journal_agent_get(tj, "k", &v, &at), 0);
    ck_assert_str_eq(v, "kept");
    free(v);
    pthread_mutex_lock(&gate.lock);
    ck_assert_int_eq(gate.recovered, 1);
    pthread_mutex_unlock(&gate.lock);
    free(filler);
}
END_TEST

static Suite *jwriter_suite(void)
{
    Suite *s = suite_create("jwriter");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, test_group_commit);
    tcase_add_test(tc, test_results_in_order);
    tcase_add_test(tc, test_checkpoints_coalesce);
    tcase_add_test(tc, test_agent_values_coalesce);
    tcase_add_test(tc, test_flush);
    tcase_add_test(tc, test_refuses_then_recovers);
    suite_add_tcase(s, tc);
    return s;
}

TU_MAIN(jwriter_suite)
