/*
 * JSON strings from text.c: valid UTF-8 whatever the name's bytes, a
 * display form with U+FFFD per invalid byte, and the exact bytes as
 * escaped text ("\xHH", "\\") that a reader turns back into the name;
 * percent-escapes decoded (text_unpercent).
 */
#include "config.h"

#include "testutil.h"
#include "sftprelay/text.h"

/* What fn writes for s, as a malloc'd string (the status endpoint's way:
 * open_memstream). */
static char *printed(void (*fn)(FILE *, const char *), const char *s)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    ck_assert_ptr_nonnull(f);
    fn(f, s);
    ck_assert_int_eq(fclose(f), 0);
    return buf;
}

static void print_path_name(FILE *f, const char *s)
{
    text_print_json_name(f, "path", s);
}

/* Each case: the name's bytes, then the JSON text of its display form and
 * of its escaped bytes. */
static const char *const cases[][3] = {
    /* the partner's Latin-1 name */
    {"r\xe9sum\xe9.csv", "\"r\xef\xbf\xbdsum\xef\xbf\xbd.csv\"",
     "\"r\\\\xe9sum\\\\xe9.csv\""},
    /* valid UTF-8 stays itself in both */
    {"r\xc3\xa9sum\xc3\xa9.csv", "\"r\xc3\xa9sum\xc3\xa9.csv\"",
     "\"r\xc3\xa9sum\xc3\xa9.csv\""},
    /* a backslash: JSON's "\\" in the display, "\\\\" in the bytes */
    {"a\\b", "\"a\\\\b\"", "\"a\\\\\\\\b\""},
    /* a truncated sequence: one U+FFFD per byte */
    {"x\xe2\x82y", "\"x\xef\xbf\xbd\xef\xbf\xbdy\"", "\"x\\\\xe2\\\\x82y\""},
    /* an encoded surrogate, an overlong '/', bytes no UTF-8 has */
    {"\xed\xa0\x80", "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"",
     "\"\\\\xed\\\\xa0\\\\x80\""},
    {"\xc0\xaf", "\"\xef\xbf\xbd\xef\xbf\xbd\"", "\"\\\\xc0\\\\xaf\""},
    {"\xff\xfe", "\"\xef\xbf\xbd\xef\xbf\xbd\"", "\"\\\\xff\\\\xfe\""},
    /* U+FFFD in the name is itself */
    {"\xef\xbf\xbd", "\"\xef\xbf\xbd\"", "\"\xef\xbf\xbd\""},
    /* control characters and quotes as JSON writes them */
    {"q\"\n\t\x01\x7f", "\"q\\\"\\n\\t\\u0001\\u007f\"",
     "\"q\\\"\\n\\t\\u0001\\u007f\""},
};

START_TEST(test_display_form)
{
    char *s = printed(text_print_json, cases[_i][0]);

    ck_assert_str_eq(s, cases[_i][1]);
    free(s);
}
END_TEST

START_TEST(test_escaped_bytes)
{
    char *s = printed(text_print_json_bytes, cases[_i][0]);

    ck_assert_str_eq(s, cases[_i][2]);
    free(s);
}
END_TEST

START_TEST(test_null)
{
    char *s = printed(text_print_json, NULL);

    ck_assert_str_eq(s, "null");
    free(s);
    s = printed(text_print_json_bytes, NULL);
    ck_assert_str_eq(s, "null");
    free(s);
    s = printed(print_path_name, NULL);
    ck_assert_str_eq(s, "\"path\": null");
    free(s);
}
END_TEST

START_TEST(test_name_members)
{
    char *s = printed(print_path_name, "r\xe9sum\xe9.csv");

    ck_assert_str_eq(s, "\"path\": \"r\xef\xbf\xbdsum\xef\xbf\xbd.csv\", "
                        "\"path_bytes\": \"r\\\\xe9sum\\\\xe9.csv\"");
    free(s);
    /* valid UTF-8, backslash and all: no path_bytes */
    s = printed(print_path_name, "r\xc3\xa9sum\xc3\xa9\\x.csv");
    ck_assert_str_eq(s, "\"path\": \"r\xc3\xa9sum\xc3\xa9\\\\x.csv\"");
    free(s);
}
END_TEST

START_TEST(test_is_utf8)
{
    ck_assert_int_eq(text_is_utf8(""), 1);
    ck_assert_int_eq(text_is_utf8("a/b\xc3\xa9\xf0\x9f\x98\x80"), 1);
    ck_assert_int_eq(text_is_utf8("r\xe9sum\xe9.csv"), 0);
    ck_assert_int_eq(text_is_utf8("\xf4\x90\x80\x80"), 0); /* > U+10FFFF */
    ck_assert_int_eq(text_is_utf8("\xe2\x82"), 0);
}
END_TEST

/* text_unpercent(s, plus): the decoded text, or NULL when refused. */
static char *unpercent(const char *s, int plus)
{
    char *out = malloc(strlen(s) + 1);
    size_t len;

    ck_assert_ptr_nonnull(out);
    if (text_unpercent(s, strlen(s), plus, out, &len) < 0) {
        free(out);
        return NULL;
    }
    ck_assert_uint_eq(len, strlen(out));
    return out;
}

static void unpercent_is(const char *s, int plus, const char *want)
{
    char *got = unpercent(s, plus);

    if (want == NULL)
        ck_assert_ptr_null(got);
    else
        ck_assert_str_eq(got, want);
    free(got);
}

START_TEST(test_unpercent)
{
    unpercent_is("", 1, "");
    unpercent_is("r%E9sum%e9.csv", 1, "r\xe9sum\xe9.csv");
    unpercent_is("a+b%2Bc", 1, "a b+c");
    unpercent_is("a+b", 0, "a+b"); /* the journal's form: "+" is itself */
    unpercent_is("%25", 0, "%");
    unpercent_is("a%00b", 1, NULL); /* no NUL inside a C string */
    unpercent_is("%", 1, NULL);
    unpercent_is("%4", 1, NULL);
    unpercent_is("%zz", 0, NULL);
    unpercent_is("%+1", 1, NULL);
}
END_TEST

/* Every byte from 0x80 to 0xff alone: never a lone surrogate escape, the
 * display form holds one U+FFFD and the escaped form "\\xHH". */
START_TEST(test_every_high_byte)
{
    char name[2] = {(char)_i, '\0'}, want[16];
    char *s = printed(text_print_json, name);

    ck_assert_str_eq(s, "\"\xef\xbf\xbd\"");
    ck_assert_ptr_null(strstr(s, "\\u"));
    free(s);
    s = printed(text_print_json_bytes, name);
    snprintf(want, sizeof(want), "\"\\\\x%02x\"", (unsigned)_i);
    ck_assert_str_eq(s, want);
    free(s);
}
END_TEST

static Suite *text_suite(void)
{
    Suite *s = suite_create("text");
    TCase *tc = tcase_create("json");
    int n = (int)(sizeof(cases) / sizeof(cases[0]));

    tcase_add_loop_test(tc, test_display_form, 0, n);
    tcase_add_loop_test(tc, test_escaped_bytes, 0, n);
    tcase_add_test(tc, test_null);
    tcase_add_test(tc, test_name_members);
    tcase_add_test(tc, test_is_utf8);
    tcase_add_test(tc, test_unpercent);
    tcase_add_loop_test(tc, test_every_high_byte, 0x80, 0x100);
    suite_add_tcase(s, tc);
    return s;
}

TU_MAIN(text_suite)
