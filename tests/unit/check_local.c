/*
 * The local source (source_local): after_delivery's remove and move act
 * beneath the root and follow no symbolic link on the way, so a writer of
 * the source folder who swaps a folder for a link to another one (/etc,
 * say) after a file in it was delivered cannot make the agent remove or
 * move a file there, nor make folders there.
 */
#include "config.h"

#include "testutil.h"
#include "sftprelay/source.h"

static char *dir;  /* the scratch folder: src/ is the root, etc/ outside */
static char *root; /* dir/src */
static struct source *src;

static void setup(void)
{
    dir = tu_tmpdir();
    ck_assert_int_ge(asprintf(&root, "%s/src", dir), 0);
    free(tu_write_str(dir, "src/x/passwd", "delivered\n"));
    free(tu_write_str(dir, "etc/passwd", "precious\n"));
    ck_assert_int_eq(source_local.create(root, NULL, -1, &src), 0);
}

static void teardown(void)
{
    source_destroy(src);
    src = NULL;
    tu_rmtree(dir);
    free(dir);
    free(root);
}

/* Whether dir/rel exists (not following a last link). */
static int there(const char *rel)
{
    char *p = NULL;
    struct stat st;
    int r;

    ck_assert_int_ge(asprintf(&p, "%s/%s", dir, rel), 0);
    r = lstat(p, &st) == 0;
    free(p);
    return r;
}

/* etc/passwd, untouched. */
static void assert_precious(void)
{
    char *p = NULL, buf[32] = "";
    FILE *f;

    ck_assert_int_ge(asprintf(&p, "%s/etc/passwd", dir), 0);
    f = fopen(p, "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(fgets(buf, sizeof(buf), f));
    fclose(f);
    free(p);
    ck_assert_str_eq(buf, "precious\n");
}

/* Replace the folder dir/from by a link to dir/to. */
static void swap_for_link(const char *from, const char *to)
{
    char *a = NULL, *b = NULL, *c = NULL;

    ck_assert_int_ge(asprintf(&a, "%s/%s", dir, from), 0);
    ck_assert_int_ge(asprintf(&b, "%s/%s.old", dir, from), 0);
    ck_assert_int_ge(asprintf(&c, "%s/%s", dir, to), 0);
    if (there(from))
        ck_assert_int_eq(rename(a, b), 0);
    ck_assert_int_eq(symlink(c, a), 0);
    free(a);
    free(b);
    free(c);
}

START_TEST(test_remove)
{
    ck_assert_int_eq(source_local.remove(src, "x/passwd"), 0);
    ck_assert(!there("src/x/passwd"));
    assert_precious();
}
END_TEST

START_TEST(test_remove_not_through_a_link)
{
    swap_for_link("src/x", "etc");
    ck_assert_int_eq(source_local.remove(src, "x/passwd"), -ELOOP);
    assert_precious();
}
END_TEST

START_TEST(test_move)
{
    free(tu_write_str(dir, "src/x/y/z.txt", "deep\n"));
    ck_assert_int_eq(source_local.move(src, "x/y/z.txt", "done"), 0);
    ck_assert_int_eq(source_local.move(src, "x/passwd", "done"), 0);
    ck_assert(there("src/done/x/y/z.txt"));
    ck_assert(there("src/done/x/passwd"));
    ck_assert(!there("src/x/passwd"));
}
END_TEST

START_TEST(test_move_not_from_a_link)
{
    swap_for_link("src/x", "etc");
    ck_assert_int_eq(source_local.move(src, "x/passwd", "done"), -ELOOP);
    assert_precious();
    ck_assert(!there("src/done/x/passwd"));
}
END_TEST

/* The move folder, or a folder in it, swapped for a link: nothing is
 * made or moved where it points. */
START_TEST(test_move_not_into_a_link)
{
    static const char *const links[] = {"src/done", "src/done/x"};

    if (_i == 1)
        ck_assert_int_eq(source_local.move(src, "x/passwd", "done"), 0);
    free(tu_write_str(dir, "src/x/passwd", "again\n"));
    swap_for_link(links[_i], "etc");
    ck_assert_int_eq(source_local.move(src, "x/passwd", "done"), -ELOOP);
    ck_assert(there("src/x/passwd"));
    ck_assert(!there("etc/x"));
    assert_precious();
}
END_TEST

static Suite *local_suite(void)
{
    Suite *s = suite_create("local");
    TCase *t = tcase_create("after_delivery");

    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, test_remove);
    tcase_add_test(t, test_remove_not_through_a_link);
    tcase_add_test(t, test_move);
    tcase_add_test(t, test_move_not_from_a_link);
    tcase_add_loop_test(t, test_move_not_into_a_link, 0, 2);
    suite_add_tcase(s, t);
    return s;
}

TU_MAIN(local_suite)
