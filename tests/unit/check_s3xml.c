/*
 * check_s3xml: the reader of S3's XML answers (agent/s3/xml.c) takes the
 * records S3 sends and turns anything a hostile server could send instead
 * (entities, depth, huge text, garbage) into -EPROTO.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s3/xml.h"
#include "testutil.h"

/* Every element end as "depth:parent/name=text;". */
static int record(void *arg, int depth, const char *parent, const char *name,
                  const char *text)
{
    char *out = arg;
    size_t n = strlen(out);

    snprintf(out + n, 1024 - n, "%d:%s/%s=%s;", depth, parent, name, text);
    return 0;
}

static int read_str(const char *xml, char *out)
{
    out[0] = '\0';
    return s3_xml_read(xml, strlen(xml), record, out);
}

START_TEST(test_records)
{
    char out[1024];

    ck_assert_int_eq(
        read_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                 "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/"
                 "2006-03-01/\"><IsTruncated>false</IsTruncated>"
                 "<Contents><Key>a &amp; b/&#xE9;.txt</Key><Size>3</Size>"
                 "</Contents></ListBucketResult>",
                 out),
        0);
    ck_assert_str_eq(out, "2:ListBucketResult/IsTruncated=false;"
                          "3:Contents/Key=a & b/\xc3\xa9.txt;"
                          "3:Contents/Size=3;"
                          "2:ListBucketResult/Contents=;"
                          "1:/ListBucketResult=;");
}
END_TEST

static int stop_at_size(void *arg, int depth, const char *parent,
                        const char *name, const char *text)
{
    return strcmp(name, "Size") == 0 ? -ENOMEM : 0;
}

START_TEST(test_callback_stops)
{
    const char *xml = "<a><Key>k</Key><Size>1</Size><Key>z</Key></a>";

    ck_assert_int_eq(s3_xml_read(xml, strlen(xml), stop_at_size, NULL),
                     -ENOMEM);
}
END_TEST

START_TEST(test_hostile)
{
    char out[1024], *big;
    size_t i;

    /* entities: the billion laughs start with a DOCTYPE, refused */
    ck_assert_int_eq(read_str("<!DOCTYPE a [<!ENTITY x \"xxxx\">"
                              "<!ENTITY y \"&x;&x;&x;&x;\">]><a>&y;</a>",
                              out),
                     -EPROTO);
    ck_assert_int_eq(read_str("<!DOCTYPE a SYSTEM \"file:///etc/passwd\">"
                              "<a/>",
                              out),
                     -EPROTO);
    /* an undeclared entity, garbage, a cut document, nothing */
    ck_assert_int_eq(read_str("<a>&nope;</a>", out), -EPROTO);
    ck_assert_int_eq(read_str("HTTP/1.1 200 OK", out), -EPROTO);
    ck_assert_int_eq(read_str("<a><b>1</b>", out), -EPROTO);
    ck_assert_int_eq(read_str("", out), -EPROTO);
    ck_assert_int_eq(read_str("<a></b>", out), -EPROTO);

    /* too deep */
    big = calloc(1, 1 << 20);
    for (i = 0; i < 40; i++)
        strcat(big, "<d>");
    ck_assert_int_eq(read_str(big, out), -EPROTO);

    /* text longer than any S3 field, in many pieces */
    strcpy(big, "<a><Key>");
    memset(big + 8, 'x', 2 * S3_XML_TEXT_MAX);
    strcpy(big + 8 + 2 * S3_XML_TEXT_MAX, "</Key></a>");
    ck_assert_int_eq(read_str(big, out), -EPROTO);

    /* a name longer than any S3 element */
    memset(big, 0, 1 << 20);
    big[0] = '<';
    memset(big + 1, 'n', 1000);
    strcat(big, "/>");
    ck_assert_int_eq(read_str(big, out), -EPROTO);
    free(big);
}
END_TEST

static Suite *s3xml_suite(void)
{
    Suite *s = suite_create("s3xml");
    TCase *tc = tcase_create("reader");

    tcase_add_test(tc, test_records);
    tcase_add_test(tc, test_callback_stops);
    tcase_add_test(tc, test_hostile);
    suite_add_tcase(s, tc);
    return s;
}

TU_MAIN(s3xml_suite)
