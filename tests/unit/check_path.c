/*
 * Path mapping with hard names: spaces, newlines, UTF-8, 255-byte names,
 * deep trees, and every way a path could climb out of target.path.
 */
#include "config.h"

#include "testutil.h"
#include "sftprelay/path.h"

START_TEST(test_rel_check)
{
    static const char *const good[] = {
        "file_1.txt",
        "a/b/c/file_1.txt",
        "with space/and\nnewline",
        "\xc3\xa9t\xc3\xa9/\xe6\x97\xa5\xe6\x9c\xac.txt",
        ".hidden",
        "a/..b/c..",
        "\xff\xfe-not-utf8",
    };
    static const char *const bad[] = {
        "",      "/abs", "a//b", "a/",     "./a",
        "a/./b", "..",   "../a", "a/../b", "a/..",
    };
    size_t i;

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        ck_assert_msg(path_rel_check(good[i]) == 0, "refused %s", good[i]);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(path_rel_check(bad[i]) == -EINVAL, "accepted %s", bad[i]);
    ck_assert_int_eq(path_rel_check(NULL), -EINVAL);
}
END_TEST

START_TEST(test_name_lengths)
{
    char name[300], *p = NULL;

    memset(name, 'x', sizeof(name));
    name[PATH_NAME_MAX] = '\0';
    ck_assert_int_eq(path_rel_check(name), 0);
    name[PATH_NAME_MAX] = 'x';
    name[PATH_NAME_MAX + 1] = '\0';
    ck_assert_int_eq(path_rel_check(name), -EINVAL);
    ck_assert_int_eq(path_tmp_name(name, &p), -EINVAL);
    ck_assert_ptr_null(p);
}
END_TEST

START_TEST(test_join)
{
    char *p = NULL;

    ck_assert_int_eq(path_join("/upload", "a/b/c/file_1.txt", &p), 0);
    ck_assert_str_eq(p, "/upload/a/b/c/file_1.txt");
    free(p);
    ck_assert_int_eq(path_join("/upload///", "a b", &p), 0);
    ck_assert_str_eq(p, "/upload/a b");
    free(p);
    ck_assert_int_eq(path_join("/", "a", &p), 0);
    ck_assert_str_eq(p, "/a");
    free(p);
    ck_assert_int_eq(path_join(".", "a/b", &p), 0);
    ck_assert_str_eq(p, "a/b");
    free(p);
    ck_assert_int_eq(path_join("in", "x\ny", &p), 0);
    ck_assert_str_eq(p, "in/x\ny");
    free(p);
}
END_TEST

START_TEST(test_tmp_name)
{
    char name[PATH_NAME_MAX + 1], rel[PATH_NAME_MAX + 8];
    char *p = NULL, *q = NULL;

    ck_assert_int_eq(path_tmp_name("a/b/c/file_1.txt", &p), 0);
    ck_assert_str_eq(p, "a/b/c/.file_1.txt.sftprelay-tmp");
    ck_assert(path_is_tmp_name(path_base(p)));
    free(p);
    ck_assert_int_eq(path_tmp_name("top.bin", &p), 0);
    ck_assert_str_eq(p, ".top.bin.sftprelay-tmp");
    free(p);
    ck_assert_int_eq(path_tmp_name("d/with space\n.txt", &p), 0);
    ck_assert_str_eq(p, "d/.with space\n.txt.sftprelay-tmp");
    free(p);
    ck_assert(!path_is_tmp_name("file_1.txt"));
    ck_assert(!path_is_tmp_name(".sftprelay-tmp"));

    /* A 255-byte name has no room for the suffix: a hashed name, stable
     * for the same path, different for another. */
    memset(name, 'n', PATH_NAME_MAX);
    name[PATH_NAME_MAX] = '\0';
    snprintf(rel, sizeof(rel), "d/%s", name);
    ck_assert_int_eq(path_tmp_name(rel, &p), 0);
    ck_assert_int_eq(strncmp(p, "d/.sftprelay-", 13), 0);
    ck_assert_uint_le(strlen(path_base(p)), PATH_NAME_MAX);
    ck_assert(path_is_tmp_name(path_base(p)));
    ck_assert_int_eq(path_tmp_name(rel, &q), 0);
    ck_assert_str_eq(p, q);
    free(q);
    rel[3] = 'm';
    ck_assert_int_eq(path_tmp_name(rel, &q), 0);
    ck_assert_str_ne(p, q);
    free(q);
    free(p);
}
END_TEST

START_TEST(test_deep_tree)
{
    char rel[4096] = "";
    char *p = NULL, *t = NULL;
    int i;

    for (i = 0; i < 200; i++)
        strcat(rel, "d/");
    strcat(rel, "leaf");
    ck_assert_int_eq(path_rel_check(rel), 0);
    ck_assert_int_eq(path_join("/t", rel, &p), 0);
    ck_assert_uint_eq(strlen(p), strlen(rel) + 3);
    ck_assert_int_eq(path_tmp_name(rel, &t), 0);
    ck_assert_uint_eq(path_dir_len(t), 399);
    ck_assert_str_eq(path_base(t), ".leaf.sftprelay-tmp");
    free(t);
    free(p);
}
END_TEST

START_TEST(test_is_under)
{
    ck_assert(path_is_under("a/b.txt", ""));
    ck_assert(path_is_under("up/b.txt", "up"));
    ck_assert(path_is_under("up", "up"));
    ck_assert(path_is_under("up/x/y", "up/x"));
    ck_assert(!path_is_under("upload/b.txt", "up"));
    ck_assert(!path_is_under("b.txt", "up"));
}
END_TEST

static Suite *path_suite(void)
{
    Suite *s = suite_create("path");
    TCase *tc = tcase_create("mapping");

    tcase_add_test(tc, test_rel_check);
    tcase_add_test(tc, test_name_lengths);
    tcase_add_test(tc, test_join);
    tcase_add_test(tc, test_tmp_name);
    tcase_add_test(tc, test_deep_tree);
    tcase_add_test(tc, test_is_under);
    suite_add_tcase(s, tc);
    return s;
}

TU_MAIN(path_suite)
