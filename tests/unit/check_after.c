/*
 * source.after_delivery (after.c) against a real journal, its writer and
 * the local source: a file goes only once its delivery of that version is
 * recorded, and stays when the journal says it changed, when the source
 * holds another version by then, or when the target kept its own copy.
 */
#include "config.h"

#include "testutil.h"
#include "sftprelay/after.h"
#include "sftprelay/conf.h"
#include "sftprelay/journal.h"
#include "sftprelay/jwriter.h"
#include "sftprelay/log.h"
#include "sftprelay/source.h"

static char *dir, *src, *db;
static struct conf *conf;
static struct source *source;
static struct jwriter *jw;
static struct journal *j;
static struct after *after;

static void setup(void)
{
    char err[CONF_ERR_MAX], *cfile = NULL;
    struct jwriter_cb cb = {0};
    FILE *f;

    log_set_level(LOG_LVL_ERROR);
    dir = tu_tmpdir();
    ck_assert_int_ge(asprintf(&src, "%s/src", dir), 0);
    ck_assert_int_ge(asprintf(&db, "%s/journal.db", dir), 0);
    ck_assert_int_eq(mkdir(src, 0755), 0);
    ck_assert_int_ge(asprintf(&cfile, "%s/sftprelay.conf", dir), 0);
    f = fopen(cfile, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "source = { path = \"%s\"; after_delivery = \"delete\"; };\n",
            src);
    fprintf(f, "target = { type = \"local\"; path = \"%s\"; };\n", dir);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_int_eq(conf_load(cfile, NULL, &conf, err, sizeof(err)), 0);
    free(cfile);
    ck_assert_int_eq(conf->source.ops->create(conf->source.path,
                                              conf->source.settings, -1,
                                              &source),
                     0);
    ck_assert_int_eq(jwriter_new(db, &cb, &jw), 0);
    ck_assert_int_eq(journal_open(db, JOURNAL_CREATE, &j), 0);
    ck_assert_int_eq(
        after_new(conf->source.after_delivery, jw, j, source, &after), 0);
    ck_assert_ptr_nonnull(after);
}

static void teardown(void)
{
    after_free(after);
    jwriter_free(jw);
    journal_close(j);
    source_destroy(source);
    conf_free(conf);
    tu_rmtree(dir);
    free(src);
    free(db);
    free(dir);
}

/* Write rel in the source, queue it and claim it: the row being sent. */
static void sending(const char *rel, const char *text, struct journal_file *f)
{
    struct stat st;
    char *p = tu_write_str(src, rel, text);

    ck_assert_int_eq(stat(p, &st), 0);
    free(p);
    ck_assert_int_eq(
        journal_offer(j, rel, st.st_size, source_mtime_ns(&st), 1, NULL), 0);
    ck_assert_int_eq(journal_claim(j, 1, -1, f), 0);
    ck_assert_str_eq(f->path, rel);
}

/* Record f delivered as outcome says, and tell after.c, as sched.c does. */
static void delivered(const struct journal_file *f, const char *outcome)
{
    struct journal_delivery d = {.sha256 = "00", .outcome = outcome};

    ck_assert_int_eq(jwriter_delivered(jw, f, &d, 2, 2), 0);
    after_delivered(after, f->path, f->size, f->mtime_ns);
    after_finish(after, 10000);
}

static int in_source(const char *rel)
{
    char *p = NULL;
    int r;

    ck_assert_int_ge(asprintf(&p, "%s/%s", src, rel), 0);
    r = access(p, F_OK) == 0;
    free(p);
    return r;
}

START_TEST(test_removed_once_recorded)
{
    struct journal_file f;

    sending("a/b/c/file_1.txt", "one", &f);
    delivered(&f, "written");
    ck_assert_int_eq(in_source("a/b/c/file_1.txt"), 0);
    journal_file_clear(&f);
}
END_TEST

/* A new version of rel in the source; told to the journal if offer. */
static void rewrite(const char *rel, int offer)
{
    struct stat st;
    char *p = tu_write_str(src, rel, "version 2, longer");

    ck_assert_int_eq(stat(p, &st), 0);
    free(p);
    if (offer)
        ck_assert_int_eq(journal_offer(j, rel, st.st_size,
                                       source_mtime_ns(&st), 2, NULL),
                         0);
}

/* Rewritten while it was sent: the journal said "changed", so the new
 * version stays for its own delivery. */
START_TEST(test_kept_when_the_journal_says_changed)
{
    struct journal_file f;

    sending("report.csv", "version 1", &f);
    rewrite("report.csv", 1);
    delivered(&f, "written");
    ck_assert_int_eq(in_source("report.csv"), 1);
    journal_file_clear(&f);
    ck_assert_int_eq(journal_get(j, "report.csv", &f), 0);
    ck_assert_int_eq(f.state, JS_QUEUED);
    journal_file_clear(&f);
}
END_TEST

/* Rewritten before the watcher told the journal: the delivery of version
 * 1 is recorded, but the source holds another version. */
START_TEST(test_kept_when_the_source_changed_since)
{
    struct journal_file f;

    sending("late.csv", "version 1", &f);
    rewrite("late.csv", 0);
    delivered(&f, "written");
    ck_assert_int_eq(in_source("late.csv"), 1);
    journal_file_clear(&f);
}
END_TEST

/* The target kept its own copy (on_exists = "skip"): ours never got
 * there, so it is not thrown away. */
START_TEST(test_kept_when_skipped)
{
    struct journal_file f;

    sending("theirs.txt", "ours", &f);
    delivered(&f, "skipped");
    ck_assert_int_eq(in_source("theirs.txt"), 1);
    journal_file_clear(&f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("after");
    TCase *tc = tcase_create("delete");
    SRunner *sr;
    int failed;

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_removed_once_recorded);
    tcase_add_test(tc, test_kept_when_the_journal_says_changed);
    tcase_add_test(tc, test_kept_when_the_source_changed_since);
    tcase_add_test(tc, test_kept_when_skipped);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
