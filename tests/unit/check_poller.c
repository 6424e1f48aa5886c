/*
 * The poller against a fake listed source: a file is reported once it was
 * seen unchanged in stable_polls listings, once; a growing file is not;
 * a vanished file is forgotten; a failed listing forgets nothing.
 */
#include "config.h"

#include "testutil.h"
#include "sftprelay/poller.h"
#include "sftprelay/source.h"

#define MAXF 8

/* The fake source's tree, and what the poller reported. */
static struct {
    const char *rel[MAXF];
    struct source_stat st[MAXF];
    int n;
    int fail;  /* the next listing fails with this */
    int grow;  /* 1 + the index of a file that grows at every listing */
    int lists; /* listings so far */
    char reported[256];
} fake;

static struct source fake_src;

static int fake_create(const char *root, const void *settings, int cancel_fd,
                       struct source **out)
{
    *out = &fake_src;
    return 0;
}

static void fake_destroy(struct source *s)
{
}

static int fake_list(struct source *s, const struct source_walk *w)
{
    int i, r;

    fake.lists++;
    if (fake.fail) {
        snprintf(s->err, sizeof(s->err), "fake: down");
        return fake.fail;
    }
    if (fake.grow)
        fake.st[fake.grow - 1].size++;
    for (i = 0; i < fake.n; i++) {
        r = w->found(w->arg, fake.rel[i], &fake.st[i]);
        if (r < 0)
            return r;
    }
    return 0;
}

static const struct source_ops fake_ops = {
    .name = "fake",
    .create = fake_create,
    .destroy = fake_destroy,
    .list = fake_list,
};

static int found(void *arg, const char *rel, const struct source_stat *st)
{
    strcat(fake.reported, rel);
    strcat(fake.reported, " ");
    return 0;
}

/* A poller of the fake source: listings of max_files files at most (0:
 * no limit). */
static struct poller *new_poller_max(int stable, size_t max_files)
{
    struct poller_opts o = {.ops = &fake_ops,
                            .root = "/r",
                            .interval_s = 1,
                            .stable_polls = stable,
                            .max_files = max_files,
                            .backoff_initial_s = 1};
    struct poller_cb cb = {.found = found};
    struct poller *p = NULL;

    fake_src.ops = &fake_ops;
    memset(&fake, 0, sizeof(fake));
    ck_assert_int_eq(poller_new(&o, &cb, &p), 0);
    return p;
}

static struct poller *new_poller(int stable)
{
    return new_poller_max(stable, 0);
}

static void put(int i, const char *rel, int64_t size, int64_t mtime)
{
    fake.rel[i] = rel;
    fake.st[i] = (struct source_stat){.size = size, .mtime_ns = mtime};
    if (i >= fake.n)
        fake.n = i + 1;
}

/* One listing; what it reported. */
static const char *round_(struct poller *p)
{
    fake.reported[0] = '\0';
    ck_assert_int_eq(poller_poll(p), fake.fail);
    return fake.reported;
}

START_TEST(test_stable_once)
{
    struct poller *p = new_poller(2);

    put(0, "b/2", 10, 1);
    put(1, "a/1", 5, 1);
    ck_assert_str_eq(round_(p), "");
    ck_assert_str_eq(round_(p), "a/1 b/2 ");
    ck_assert_str_eq(round_(p), "");
    /* Changed: reported again once it settles anew. */
    put(1, "a/1", 6, 2);
    ck_assert_str_eq(round_(p), "");
    ck_assert_str_eq(round_(p), "a/1 ");
    poller_free(p);
}
END_TEST

START_TEST(test_growing_waits)
{
    struct poller *p = new_poller(3);
    int i;

    for (i = 1; i <= 5; i++) {
        put(0, "big", i * 100, i);
        ck_assert_str_eq(round_(p), "");
    }
    ck_assert_str_eq(round_(p), "");
    ck_assert_str_eq(round_(p), "big ");
    poller_free(p);
}
END_TEST

START_TEST(test_vanished_forgotten)
{
    struct poller *p = new_poller(2);

    put(0, "x", 1, 1);
    round_(p);
    ck_assert_str_eq(round_(p), "x ");
    fake.n = 0; /* gone */
    ck_assert_str_eq(round_(p), "");
    put(0, "x", 1, 1); /* back, the same: counted afresh */
    ck_assert_str_eq(round_(p), "");
    ck_assert_str_eq(round_(p), "x ");
    poller_free(p);
}
END_TEST

START_TEST(test_failure_forgets_nothing)
{
    struct poller *p = new_poller(2);

    put(0, "x", 1, 1);
    ck_assert_str_eq(round_(p), "");
    fake.fail = -EHOSTDOWN;
    ck_assert_str_eq(round_(p), "");
    fake.fail = 0;
    ck_assert_str_eq(round_(p), "x ");
    poller_free(p);
}
END_TEST

START_TEST(test_one_poll_and_rescan)
{
    struct poller *p = new_poller(1);

    put(0, "x", 1, 1);
    ck_assert_str_eq(round_(p), "x ");
    ck_assert_str_eq(round_(p), "");
    poller_rescan(p);
    ck_assert_str_eq(round_(p), "x ");
    poller_free(p);
}
END_TEST

/* A listing past source.max_files stops and fails: nothing is reported
 * from it, nothing known is forgotten. */
START_TEST(test_max_files)
{
    struct poller *p = new_poller_max(1, 2);

    put(0, "a", 1, 1);
    put(1, "b", 1, 1);
    ck_assert_str_eq(round_(p), "a b ");
    put(2, "c", 1, 1);
    fake.reported[0] = '\0';
    ck_assert_int_eq(poller_poll(p), -E2BIG);
    ck_assert_str_eq(fake.reported, "");
    ck_assert_str_eq(source_error(&fake_src, -E2BIG),
                     "more than 2 files (source.max_files); the listing "
                     "stopped");
    fake.n = 2;
    ck_assert_str_eq(round_(p), ""); /* a and b still known */
    poller_free(p);
}
END_TEST

/* --once lists stable_polls times and sends only what stayed still; with
 * stable_polls 1, one listing and everything. */
START_TEST(test_list_once_stable)
{
    static const char *const want[] = {"growing still ", "still "};
    struct poller *p = new_poller(1 + _i);

    put(0, "still", 5, 1);
    put(1, "growing", 5, 1);
    fake.grow = 2;
    ck_assert_int_eq(poller_list_once(p, -1), 0);
    ck_assert_int_eq(fake.lists, 1 + _i);
    ck_assert_str_eq(fake.reported, want[_i]);
    poller_free(p);
}
END_TEST

static Suite *poller_suite(void)
{
    Suite *s = suite_create("poller");
    TCase *tc = tcase_create("stability");

    tcase_add_test(tc, test_stable_once);
    tcase_add_test(tc, test_growing_waits);
    tcase_add_test(tc, test_vanished_forgotten);
    tcase_add_test(tc, test_failure_forgets_nothing);
    tcase_add_test(tc, test_one_poll_and_rescan);
    tcase_add_test(tc, test_max_files);
    tcase_add_loop_test(tc, test_list_once_stable, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}

TU_MAIN(poller_suite)
