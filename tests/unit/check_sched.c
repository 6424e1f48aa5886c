/*
 * The scheduler with a fake sink that counts what it is given, fails on
 * demand (one file, or the whole target) and blocks on demand; the real
 * local source, the real journal writer and a real journal file.
 *
 * Every wait is for a state in the journal, a counter of the fake sink or
 * a descriptor, with a deadline; none is a fixed sleep.
 */
#include "config.h"

#include <poll.h>
#include <pthread.h>
#include <time.h>

#include "testutil.h"
#include "sftprelay/conf.h"
#include "sftprelay/journal.h"
#include "sftprelay/jwriter.h"
#include "sftprelay/log.h"
#include "sftprelay/loop.h"
#include "sftprelay/sched.h"
#include "sftprelay/sink.h"
#include "sftprelay/source.h"

#define CHUNK 32768
#define MAX_PATHS 512
#define DEADLINE_MS 30000

/* What every instance of the fake sink shares: counters and switches. */
static struct {
    pthread_mutex_t lock;
    int files;              /* committed */
    int64_t bytes;          /* written by committed files */
    char *paths[MAX_PATHS]; /* committed, in order */
    int connects;           /* connect() calls */
    int bad_opens;          /* open() calls for bad_path */
    time_t bad_open_at[8];  /* when the first of them came, in seconds */
    const char *bad_path;   /* open() fails for it with -EACCES */
    int target_err;         /* connect() and open() fail with it */
    int slow_down;          /* open() answers -EAGAIN this many times */
    int64_t block_at;       /* write() at or past it waits; -1: never */
    int blocked;            /* write() calls waiting now */
} fk = {.lock = PTHREAD_MUTEX_INITIALIZER};

static const struct sink_ops sink_fake;

struct fake_sink {
    struct sink base;
    int cancel_fd;
    char *rel;
    int64_t pos;
    int64_t written;
};

static int fake_create(const void *settings, int cancel_fd, struct sink **out)
{
    struct fake_sink *fs = calloc(1, sizeof(*fs));

    (void)settings;
    if (fs == NULL)
        return -ENOMEM;
    fs->base.ops = &sink_fake;
    fs->cancel_fd = cancel_fd;
    *out = &fs->base;
    return 0;
}

static void fake_destroy(struct sink *s)
{
    struct fake_sink *fs = (struct fake_sink *)s;

    free(fs->rel);
    free(fs);
}

static int fake_connect(struct sink *s)
{
    int r;

    pthread_mutex_lock(&fk.lock);
    fk.connects++;
    r = fk.target_err;
    if (r == 0 && fk.slow_down > 0) {
        fk.slow_down--;
        r = -EAGAIN;
    }
    pthread_mutex_unlock(&fk.lock);
    if (r == -EAGAIN)
        return sink_fail(s, r, "fake target: slow down");
    if (r < 0)
        return sink_fail(s, r, "fake target: %s", strerror(-r));
    return 0;
}

static void fake_disconnect(struct sink *s)
{
    (void)s;
}

static int fake_open(struct sink *s, struct sink_file *f)
{
    struct fake_sink *fs = (struct fake_sink *)s;
    const char *rel = f->rel;
    int bad, r;

    pthread_mutex_lock(&fk.lock);
    bad = fk.bad_path && strcmp(rel, fk.bad_path) == 0;
    if (bad && fk.bad_opens < 8)
        fk.bad_open_at[fk.bad_opens] = time(NULL);
    fk.bad_opens += bad;
    r = fk.target_err;
    if (r == 0 && fk.slow_down > 0) {
        fk.slow_down--;
        r = -EAGAIN;
    }
    pthread_mutex_unlock(&fk.lock);
    if (r == -EAGAIN)
        return sink_fail(s, r, "fake target: slow down");
    if (r < 0)
        return sink_fail(s, r, "fake target: %s", strerror(-r));
    if (bad)
        return sink_fail(s, -EACCES, "refused by the fake sink");
    free(fs->rel);
    fs->rel = strdup(rel);
    fs->pos = f->offset;
    fs->written = 0;
    return fs->rel ? 0 : -ENOMEM;
}

/* Whether fd is readable within ms. */
static int readable(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};

    return fd >= 0 && poll(&p, 1, ms) > 0;
}

static int fake_write(struct sink *s, const void *buf, size_t len)
{
    struct fake_sink *fs = (struct fake_sink *)s;
    int counted = 0, block;

    (void)buf;
    /* Blocked until released, or until the scheduler cancels. */
    for (;;) {
        pthread_mutex_lock(&fk.lock);
        block = fk.block_at >= 0 && fs->pos >= fk.block_at;
        if (block && !counted)
            fk.blocked++;
        if (!block && counted)
            fk.blocked--;
        counted = block;
        pthread_mutex_unlock(&fk.lock);
        if (!block)
            break;
        if (readable(fs->cancel_fd, 10)) {
            pthread_mutex_lock(&fk.lock);
            fk.blocked--;
            pthread_mutex_unlock(&fk.lock);
            return sink_fail(s, -ECANCELED, "cancelled");
        }
    }
    fs->pos += (int64_t)len;
    fs->written += (int64_t)len;
    return 0;
}

static int fake_commit(struct sink *s, struct sink_done *d)
{
    struct fake_sink *fs = (struct fake_sink *)s;

    (void)d;
    pthread_mutex_lock(&fk.lock);
    if (fk.files < MAX_PATHS)
        fk.paths[fk.files] = fs->rel;
    else
        free(fs->rel);
    fk.files++;
    fk.bytes += fs->pos;
    pthread_mutex_unlock(&fk.lock);
    fs->rel = NULL;
    return 0;
}

static void fake_abort(struct sink *s)
{
    struct fake_sink *fs = (struct fake_sink *)s;

    free(fs->rel);
    fs->rel = NULL;
}

static const struct sink_ops sink_fake = {
    .name = "fake",
    .create = fake_create,
    .destroy = fake_destroy,
    .connect = fake_connect,
    .disconnect = fake_disconnect,
    .open = fake_open,
    .write = fake_write,
    .commit = fake_commit,
    .abort = fake_abort,
};

static char *dir, *src, *db;
static struct conf *conf;
static struct sched *sched;
static struct jwriter *jw;
static struct journal *tj; /* the test's own connection, to read */
static int sweep_s;        /* sched_opts.sweep_s for the next start() */

static void on_commit(void *arg, int queued, int recovered, int lost)
{
    (void)recovered;
    (void)lost;
    if (queued > 0 && arg)
        sched_notify(arg);
}

static void setup(void)
{
    char err[CONF_ERR_MAX], *cfile = NULL;
    FILE *f;
    int i;

    log_set_level(LOG_LVL_WARN);
    pthread_mutex_lock(&fk.lock);
    for (i = 0; i < fk.files && i < MAX_PATHS; i++)
        free(fk.paths[i]);
    fk.files = fk.connects = fk.bad_opens = fk.blocked = 0;
    fk.bytes = 0;
    fk.bad_path = NULL;
    fk.slow_down = 0;
    fk.target_err = 0;
    fk.block_at = -1;
    pthread_mutex_unlock(&fk.lock);

    dir = tu_tmpdir();
    ck_assert_int_ge(asprintf(&src, "%s/src", dir), 0);
    ck_assert_int_ge(asprintf(&db, "%s/state/journal.db", dir), 0);
    ck_assert_int_eq(mkdir(src, 0755), 0);
    /* A local target's settings; the workers get the fake sink instead. */
    ck_assert_int_ge(asprintf(&cfile, "%s/sftprelay.conf", dir), 0);
    f = fopen(cfile, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "source = { path = \"%s\"; settle_ms = 0; };\n", src);
    fprintf(f, "target = { type = \"local\"; path = \"%s\"; };\n", dir);
    fprintf(f, "journal = { path = \"%s\"; };\n", db);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_int_eq(conf_load(cfile, NULL, &conf, err, sizeof(err)), 0);
    free(cfile);
    conf->transfer.workers = 3;
    conf->transfer.chunk_size = CHUNK;
    conf->transfer.backoff_initial = 1;
    conf->transfer.backoff_max = 1;
    conf->target.probe_interval = 1;
    ck_assert_int_eq(journal_open(db, JOURNAL_CREATE, &tj), 0);
    sched = NULL;
    jw = NULL;
    sweep_s = 0;
}

static void teardown(void)
{
    sched_free(sched); /* stops the workers first: they post to jw */
    jwriter_free(jw);
    journal_close(tj);
    conf_free(conf);
    tu_rmtree(dir);
    free(src);
    free(db);
    free(dir);
}

/* Start the scheduler and the writer; once as sched_opts.once. */
static void start(int once)
{
    struct sched_opts o = {.c = conf,
                           .sink = &sink_fake,
                           .source = &source_local,
                           .once = once,
                           .sweep_s = sweep_s};
    struct jwriter_cb cb = {.on_commit = on_commit};

    ck_assert_int_eq(sched_new(&o, &sched), 0);
    cb.arg = sched;
    ck_assert_int_eq(jwriter_new(db, &cb, &jw), 0);
}

static void run(void)
{
    ck_assert_int_eq(sched_start(sched, jw), 0);
}

/* Write rel with n bytes under src and offer it; returns n. */
static int64_t offer(const char *rel, size_t n)
{
    char *data = malloc(n + 1), *p;
    struct stat st;
    size_t i;

    for (i = 0; i < n; i++)
        data[i] = (char)('a' + (i * 7 + n) % 26);
    p = tu_write(src, rel, data, n);
    ck_assert_int_eq(lstat(p, &st), 0);
    ck_assert_int_eq(jwriter_offer(jw, JW_FOUND, rel, st.st_size,
                                   source_mtime_ns(&st), (int64_t)time(NULL),
                                   NULL, -1),
                     0);
    free(p);
    free(data);
    return (int64_t)n;
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

/* The row of path (clear it with journal_file_clear()). */
static struct journal_file row(const char *path)
{
    struct journal_file f;

    ck_assert_int_eq(journal_get(tj, path, &f), 0);
    return f;
}

static enum journal_state state_of(const char *path)
{
    struct journal_file f = row(path);
    enum journal_state s = f.state;

    journal_file_clear(&f);
    return s;
}

static int64_t offset_of(const char *path)
{
    struct journal_file f = row(path);
    int64_t off = f.resume_offset;

    journal_file_clear(&f);
    return off;
}

static int fk_get(const int *v)
{
    int n;

    pthread_mutex_lock(&fk.lock);
    n = *v;
    pthread_mutex_unlock(&fk.lock);
    return n;
}

/* Poll cond until it holds or DEADLINE_MS pass; fail with what. */
#define WAIT_UNTIL(cond, what)                                                 \
    do {                                                                       \
        int64_t until_ = mono_ms() + DEADLINE_MS;                              \
        while (!(cond)) {                                                      \
            ck_assert_msg(mono_ms() < until_, "timed out waiting: %s", what);  \
            poll(NULL, 0, 20);                                                 \
        }                                                                      \
    } while (0)

START_TEST(test_all_delivered_once)
{
    enum { N = 300 };
    char name[64];
    int64_t total = 0;
    int i, k;

    start(0);
    run();
    for (i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "d%d/f%03d.txt", i % 7, i);
        /* A few span several chunks (checkpoints on the way). */
        total += offer(name, i % 50 == 0 ? 3 * CHUNK + 11 : (size_t)i + 1);
    }
    WAIT_UNTIL(count(JS_DELIVERED) == N, "every file delivered");
    ck_assert_int_eq(jwriter_flush(jw, 10000), 0);
    ck_assert_int_eq(count(JS_QUEUED), 0);
    ck_assert_int_eq(count(JS_SENDING), 0);
    ck_assert_int_eq(count(JS_FAILED), 0);
    pthread_mutex_lock(&fk.lock);
    ck_assert_int_eq(fk.files, N);
    ck_assert_int_eq(fk.bytes, total);
    /* Exactly once: no path was committed twice. */
    for (i = 0; i < N; i++)
        for (k = i + 1; k < N; k++)
            ck_assert_msg(strcmp(fk.paths[i], fk.paths[k]) != 0,
                          "%s delivered twice", fk.paths[i]);
    pthread_mutex_unlock(&fk.lock);
    for (i = 0; i < N; i += 50) {
        struct journal_file f;

        snprintf(name, sizeof(name), "d%d/f%03d.txt", i % 7, i);
        f = row(name);
        ck_assert_ptr_nonnull(f.sha256);
        ck_assert_int_eq(strlen(f.sha256), 64);
        ck_assert_int_eq(f.attempts, 1);
        journal_file_clear(&f);
    }
}
END_TEST

START_TEST(test_file_failure_backoff)
{
    struct journal_file f;
    char *err = NULL;
    int64_t at = 0;

    conf->transfer.max_attempts = 3;
    fk.bad_path = "bad.txt";
    start(0);
    run();
    offer("bad.txt", 100);
    offer("good.txt", 100);
    ck_assert_int_eq(jwriter_flush(jw, 10000), 0);
    WAIT_UNTIL(state_of("good.txt") == JS_DELIVERED, "good.txt delivered");
    WAIT_UNTIL(state_of("bad.txt") == JS_FAILED, "bad.txt failed");
    f = row("bad.txt");
    ck_assert_int_eq(f.attempts, 3);
    ck_assert_str_eq(f.last_error, "refused by the fake sink");
    journal_file_clear(&f);
    ck_assert_int_eq(fk_get(&fk.bad_opens), 3);
    /* Each attempt was due a second or more after the one before (next
     * attempts are whole seconds): a backoff, not a retry at once.  Read
     * from the sink, not caught in the journal in passing: a slow build
     * (ThreadSanitizer) could miss the queued state between attempts. */
    ck_assert_int_ge(fk.bad_open_at[1], fk.bad_open_at[0] + 1);
    ck_assert_int_ge(fk.bad_open_at[2], fk.bad_open_at[1] + 1);
    /* One file's failure never marked the target down. */
    ck_assert_int_eq(jwriter_flush(jw, 10000), 0);
    if (journal_agent_get(tj, "target_error", &err, &at) == 0)
        ck_assert_msg(err == NULL || err[0] == '\0', "target_error: %s", err);
    free(err);
    ck_assert_int_eq(fk_get(&fk.files), 1);
}
END_TEST

/* "Slow down" (S3's 503 SlowDown) backs off and counts no attempt. */
START_TEST(test_slow_down_counts_no_attempt)
{
    struct journal_file f;

    conf->transfer.max_attempts = 1;
    pthread_mutex_lock(&fk.lock);
    fk.slow_down = 2;
    pthread_mutex_unlock(&fk.lock);
    start(0);
    run();
    offer("slow.txt", 100);
    ck_assert_int_eq(jwriter_flush(jw, 10000), 0);
    WAIT_UNTIL(state_of("slow.txt") == JS_DELIVERED, "slow.txt delivered");
    f = row("slow.txt");
    /* Two answers of "slow down", then one attempt, within one allowed. */
    ck_assert_int_eq(f.attempts, 1);
    ck_assert_int_eq(fk_get(&fk.slow_down), 0);
    journal_file_clear(&f);
}
END_TEST

/* The agent's target_error: "" or NULL if unset or cleared. */
static char *target_error(void)
{
    char *err = NULL;
    int64_t at;

    if (journal_agent_get(tj, "target_error", &err, &at) < 0 || err == NULL)
        return strdup("");
    return err;
}

static int target_error_is(const char *want)
{
    char *err = target_error();
    int same = strcmp(err, want) == 0;

    free(err);
    return same;
}

START_TEST(test_target_down_then_probe)
{
    enum { N = 20 };
    char name[32], *down = NULL;
    int i, connects;

    ck_assert_int_eq(sink_error_is_target(-ECONNREFUSED), 1);
    ck_assert_int_ge(asprintf(&down, "fake target: %s", strerror(ECONNREFUSED)),
                     0);
    conf->transfer.max_attempts = 2; /* target errors must not count */
    fk.target_err = -ECONNREFUSED;
    start(0);
    for (i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "t%02d", i);
        offer(name, 10);
    }
    ck_assert_int_eq(jwriter_flush(jw, 10000), 0);
    run();
    WAIT_UNTIL(target_error_is(down), "the target marked down");
    /* Probes go on while it is down (probe_interval = 1 s). */
    connects = fk_get(&fk.connects);
    WAIT_UNTIL(fk_get(&fk.connects) >= connects + 2, "two more probes");
    ck_assert_int_eq(jwriter_flush(jw, 10000), 0);
    ck_assert_int_eq(count(JS_FAILED), 0);
    ck_assert_int_eq(count(JS_DELIVERED), 0);
    for (i = 0; i < N; i++) {
        struct journal_file f;

        snprintf(name, sizeof(name), "t%02d", i);
        f = row(name);
        ck_assert_int_eq(f.attempts, 0);
        ck_assert_int_ne(f.state, JS_FAILED);
        journal_file_clear(&f);
    }
    ck_assert_int_eq(fk_get(&fk.files), 0);

    pthread_mutex_lock(&fk.lock);
    fk.target_err = 0;
    pthread_mutex_unlock(&fk.lock);
    WAIT_UNTIL(count(JS_DELIVERED) == N, "every file delivered once it is up");
    WAIT_UNTIL(target_error_is(""), "target_error cleared");
    ck_assert_int_eq(fk_get(&fk.files), N);
    ck_assert_int_eq(count(JS_FAILED), 0);
    free(down);
}
END_TEST

START_TEST(test_stop_while_blocked)
{
    struct journal_file f;
    int64_t t0, took;

    fk.block_at = CHUNK; /* the first chunk goes through, the second waits */
    start(0);
    run();
    offer("big.bin", 4 * CHUNK);
    ck_assert_int_eq(jwriter_flush(jw, 10000), 0);
    WAIT_UNTIL(fk_get(&fk.blocked) == 1, "a write blocked");
    /* The first chunk's checkpoint reaches the journal. */
    WAIT_UNTIL(offset_of("big.bin") == CHUNK, "the first chunk's checkpoint");
    t0 = mono_ms();
    sched_stop(sched);
    took = mono_ms() - t0;
    ck_assert_msg(took < 5000, "sched_stop() took %lld ms", (long long)took);
    ck_assert_int_eq(fk_get(&fk.blocked), 0);
    ck_assert_int_eq(jwriter_flush(jw, 10000), 0);
    f = row("big.bin");
    ck_assert_int_eq(f.state, JS_QUEUED); /* resumable, not failed */
    ck_assert_int_eq(f.attempts, 0);
    ck_assert_int_eq(f.resume_offset, CHUNK);
    journal_file_clear(&f);
    ck_assert_int_eq(fk_get(&fk.files), 0);
    ck_assert_int_eq(readable(sched_done_fd(sched), 0), 1);
}
END_TEST

START_TEST(test_once)
{
    struct journal_file f;
    char name[32];
    int i;

    fk.bad_path = "bad.txt";
    start(1);
    for (i = 0; i < 5; i++) {
        snprintf(name, sizeof(name), "ok%d.txt", i);
        offer(name, 10 + (size_t)i);
    }
    offer("bad.txt", 10);
    ck_assert_int_eq(jwriter_flush(jw, 10000), 0);
    run();
    ck_assert_msg(readable(sched_done_fd(sched), DEADLINE_MS),
                  "done_fd not readable in once mode");
    ck_assert_int_eq(jwriter_flush(jw, 10000), 0);
    ck_assert_int_eq(count(JS_DELIVERED), 5);
    ck_assert_int_eq(fk_get(&fk.files), 5);
    /* The failing file was tried once, and is left queued for later. */
    ck_assert_int_eq(fk_get(&fk.bad_opens), 1);
    f = row("bad.txt");
    ck_assert_int_eq(f.state, JS_QUEUED);
    ck_assert_int_eq(f.attempts, 1);
    journal_file_clear(&f);
}
END_TEST

/*
 * A row left sending by no worker (a claim whose answer was lost) is
 * queued again by the sweep while the agent runs, and delivered.
 */
START_TEST(test_sweep_takes_up_orphans)
{
    int64_t now = (int64_t)time(NULL);
    struct journal_file f;
    struct stat st;
    char *p;

    p = tu_write(src, "orphan.txt", "lost claim\n", 11);
    ck_assert_int_eq(lstat(p, &st), 0);
    free(p);
    ck_assert_int_eq(journal_offer(tj, "orphan.txt", st.st_size,
                                   source_mtime_ns(&st), now - 100, NULL),
                     0);
    /* Claimed 10 s ago by a worker that is gone. */
    ck_assert_int_eq(journal_claim(tj, now - 10, -1, &f), 0);
    journal_file_clear(&f);
    ck_assert_int_eq(state_of("orphan.txt"), JS_SENDING);
    sweep_s = 1;
    start(0);
    run();
    WAIT_UNTIL(state_of("orphan.txt") == JS_DELIVERED,
               "the orphan queued again and delivered");
    ck_assert_int_eq(fk_get(&fk.files), 1);
}
END_TEST

static Suite *sched_suite(void)
{
    Suite *s = suite_create("sched");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, test_all_delivered_once);
    tcase_add_test(tc, test_file_failure_backoff);
    tcase_add_test(tc, test_slow_down_counts_no_attempt);
    tcase_add_test(tc, test_target_down_then_probe);
    tcase_add_test(tc, test_stop_while_blocked);
    tcase_add_test(tc, test_once);
    tcase_add_test(tc, test_sweep_takes_up_orphans);
    suite_add_tcase(s, tc);
    return s;
}

TU_MAIN(sched_suite)
