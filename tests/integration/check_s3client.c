/*
 * check_s3client: the S3 client (s3.h) against a real S3 server.
 *
 * Run by t_s3client.sh, which starts radosgw (rgw.sh) and gives the
 * server in the environment: RGW_ENDPOINT, RGW_ACCESS_KEY, RGW_SECRET_KEY,
 * RGW_REGION, S3_BUCKET (made already), for TLS RGW_TLS_ENDPOINT and
 * RGW_CA_FILE, and S3_FAULTS_URL, a proxy that answers its first request
 * 503 SlowDown, with S3_FAULTS_CONTROL, the file that changes its faults.  What is checked is what a user would check: the bytes that
 * come back, the ETags, the error and its words.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "s3test.h"
#include "sftprelay/s3.h"

#define MIB (1024 * 1024)

static struct s3 *client(const struct s3_config *cf)
{
    struct s3 *c = NULL;
    char err[256] = "";

    ck_assert_msg(s3_new(cf, &c, err, sizeof(err)) == 0, "s3_new: %s", err);
    return c;
}

/* len bytes that differ at every offset, so a misplaced range shows. */
static unsigned char *pattern(size_t len, unsigned seed)
{
    unsigned char *p = malloc(len);
    size_t i;

    ck_assert_ptr_nonnull(p);
    for (i = 0; i < len; i++)
        p[i] = (unsigned char)((i * 2654435761u + seed) >> 13);
    return p;
}

static int count_key(void *arg, const struct s3_object *o)
{
    char **want = arg;

    if (strcmp(o->key, want[0]) == 0)
        want[1] = (char *)o; /* seen */
    return 0;
}

START_TEST(test_objects)
{
    struct s3_config cf = s3test_config();
    struct s3 *c = client(&cf);
    const char *key = "dir one/ünï+code (1)~x.txt";
    unsigned char *data = pattern(100000, 1), buf[1000];
    char etag[S3_ETAG_MAX], *want[2] = {(char *)key, NULL};
    struct s3_object o;
    size_t got;

    ck_assert_int_eq(s3_put(c, key, data, 100000, NULL, etag), 0);
    ck_assert_int_eq(strlen(etag), 32);
    ck_assert_int_eq(s3_head(c, key, &o), 0);
    ck_assert_int_eq(o.size, 100000);
    ck_assert_str_eq(o.etag, etag);
    ck_assert_int_gt(o.mtime, 1600000000);

    /* a range in the middle, one across the end, one past it */
    ck_assert_int_eq(s3_get(c, key, 5000, buf, 1000, etag, &got), 0);
    ck_assert_uint_eq(got, 1000);
    ck_assert_mem_eq(buf, data + 5000, 1000);
    ck_assert_int_eq(s3_get(c, key, 99500, buf, 1000, NULL, &got), 0);
    ck_assert_uint_eq(got, 500);
    ck_assert_mem_eq(buf, data + 99500, 500);
    ck_assert_int_eq(s3_get(c, key, 100000, buf, 1000, NULL, &got), 0);
    ck_assert_uint_eq(got, 0);
    /* the object changed since its ETag was taken */
    ck_assert_int_eq(s3_get(c, key, 0, buf, 10, "0123456789abcdef0123456789"
                            "abcdef", &got),
                     -ESTALE);

    ck_assert_int_eq(s3_list(c, "dir one/", count_key, want), 0);
    ck_assert_ptr_nonnull(want[1]);

    ck_assert_int_eq(s3_copy(c, key, "moved/copy.txt"), 0);
    ck_assert_int_eq(s3_get(c, "moved/copy.txt", 0, buf, 1000, NULL, &got),
                     0);
    ck_assert_uint_eq(got, 1000);
    ck_assert_mem_eq(buf, data, 1000);

    ck_assert_int_eq(s3_delete(c, key), 0);
    ck_assert_int_eq(s3_head(c, key, &o), -ENOENT);
    ck_assert_int_eq(s3_delete(c, key), 0); /* gone already: no error */
    ck_assert_int_eq(s3_get(c, key, 0, buf, 10, NULL, &got), -ENOENT);
    ck_assert_ptr_nonnull(strstr(s3_error(c), "no such key"));
    ck_assert_ptr_nonnull(strstr(s3_error(c), key));
    s3_free(c);
    free(data);
}
END_TEST

/* Keys of a listing, in order, into a string "a,b,c". */
static int join_key(void *arg, const struct s3_object *o)
{
    char *s = arg;

    if (s[0])
        strcat(s, ",");
    strcat(s, o->key);
    return 0;
}

START_TEST(test_list_pages)
{
    struct s3_config cf = s3test_config();
    struct s3 *c;
    char keys[256] = "", name[32];
    int i;

    cf.page_size = 2; /* five keys: three pages */
    c = client(&cf);
    for (i = 5; i >= 1; i--) {
        snprintf(name, sizeof(name), "pages/k%d", i);
        ck_assert_int_eq(s3_put(c, name, "x", 1, NULL, NULL), 0);
    }
    ck_assert_int_eq(s3_put(c, "pagesnot/k", "x", 1, NULL, NULL), 0);
    ck_assert_int_eq(s3_list(c, "pages/", join_key, keys), 0);
    ck_assert_str_eq(keys, "pages/k1,pages/k2,pages/k3,pages/k4,pages/k5");
    s3_free(c);
}
END_TEST

START_TEST(test_multipart)
{
    struct s3_config cf = s3test_config();
    struct s3 *c;
    const char *key = "big/file.bin";
    size_t sizes[3] = {5 * MIB, 5 * MIB, MIB + 7};
    const size_t total = 11 * MIB + 7;
    unsigned char *data = pattern(total, 2), *back = malloc(total);
    char id[S3_UPLOAD_ID_MAX], etag[S3_ETAG_MAX];
    struct s3_part done_parts[3], *listed = NULL;
    struct s3_part_done d;
    struct s3_object o;
    size_t off = 0, n = 0, got;
    int i, left = 3;

    cf.page_size = 2; /* ListParts over two pages */
    c = client(&cf);
    ck_assert_int_eq(s3_mpu_create(c, key, NULL, id), 0);
    /* three parts in flight at once, reported as each completes */
    for (i = 0; i < 3; i++) {
        ck_assert_int_eq(
            s3_part_start(c, key, id, i + 1, data + off, sizes[i], &sizes[i]),
            0);
        off += sizes[i];
    }
    ck_assert_int_eq(s3_parts_in_flight(c), 3);
    while (left) {
        int r = s3_part_poll(c, -1, &d);

        ck_assert_int_ge(r, 0);
        if (r == 0)
            continue;
        ck_assert_msg(d.result == 0, "part %d: %s", d.number, s3_error(c));
        ck_assert_ptr_eq(d.tag, &sizes[d.number - 1]);
        done_parts[d.number - 1].number = d.number;
        strcpy(done_parts[d.number - 1].etag, d.etag);
        left--;
    }
    ck_assert_int_eq(s3_parts_in_flight(c), 0);
    ck_assert_int_eq(s3_part_poll(c, 0, &d), 0);

    ck_assert_int_eq(s3_mpu_list(c, key, id, &listed, &n), 0);
    ck_assert_uint_eq(n, 3);
    for (i = 0; i < 3; i++) {
        ck_assert_int_eq(listed[i].number, i + 1);
        ck_assert_int_eq(listed[i].size, (int64_t)sizes[i]);
        ck_assert_str_eq(listed[i].etag, done_parts[i].etag);
    }
    free(listed);

    ck_assert_int_eq(s3_mpu_complete(c, key, id, done_parts, 3, etag), 0);
    ck_assert_ptr_nonnull(strstr(etag, "-3"));
    ck_assert_int_eq(s3_head(c, key, &o), 0);
    ck_assert_int_eq(o.size, (int64_t)total);
    ck_assert_str_eq(o.etag, etag);
    ck_assert_int_eq(s3_get(c, key, 0, back, total, NULL, &got), 0);
    ck_assert_uint_eq(got, total);
    ck_assert(memcmp(back, data, total) == 0);
    /* the upload is finished: it is gone */
    ck_assert_int_eq(s3_mpu_list(c, key, id, &listed, &n), -ESTALE);
    s3_free(c);
    free(data);
    free(back);
}
END_TEST

START_TEST(test_abort)
{
    struct s3_config cf = s3test_config();
    struct s3 *c = client(&cf);
    unsigned char *data = pattern(5 * MIB, 3);
    char id[S3_UPLOAD_ID_MAX];
    struct s3_part *listed = NULL;
    struct s3_part_done d;
    size_t n;

    ck_assert_int_eq(s3_mpu_create(c, "aborted.bin", NULL, id), 0);
    ck_assert_int_eq(s3_part_start(c, "aborted.bin", id, 1, data, 5 * MIB,
                                   NULL),
                     0);
    while (s3_part_poll(c, -1, &d) == 0)
        ;
    ck_assert_int_eq(d.result, 0);
    ck_assert_int_eq(s3_mpu_abort(c, "aborted.bin", id), 0);
    ck_assert_msg(s3_mpu_list(c, "aborted.bin", id, &listed, &n) == -ESTALE, "%s", s3_error(c));
    ck_assert_ptr_nonnull(strstr(s3_error(c), "multipart upload is gone"));
    ck_assert_int_eq(s3_mpu_abort(c, "aborted.bin", id), 0);
    /* a part for an upload that is gone */
    ck_assert_int_eq(s3_part_start(c, "aborted.bin", id, 2, data, 5 * MIB,
                                   NULL),
                     0);
    while (s3_part_poll(c, -1, &d) == 0)
        ;
    ck_assert_int_eq(d.result, -ESTALE);
    s3_free(c);
    free(data);
}
END_TEST

/* An error's errno, and its words, which never hold the secret. */
static void expect_error(struct s3_config *cf, int want, const char *words)
{
    struct s3 *c = client(cf);
    int r = s3_put(c, "k", "x", 1, NULL, NULL);

    ck_assert_msg(r == want, "got %d (%s), want %d", r, s3_error(c), want);
    ck_assert_msg(strstr(s3_error(c), words) != NULL, "\"%s\" not in \"%s\"",
                  words, s3_error(c));
    ck_assert_ptr_nonnull(strstr(s3_error(c), "PutObject k"));
    ck_assert_ptr_null(strstr(s3_error(c), cf->secret_access_key));
    s3_free(c);
}

START_TEST(test_errors)
{
    struct s3_config cf = s3test_config();
    char words[256];

    cf.secret_access_key = "not-the-secret-0123456789";
    expect_error(&cf, -EPERM, "wrong keys: the secret access key is not");
    cf = s3test_config();
    cf.access_key_id = "NOSUCHKEYID000000000";
    expect_error(&cf, -EPERM, "wrong keys: the server knows no access key id "
                              "NOSUCHKEYID000000000");
    cf = s3test_config();
    cf.bucket = "no-such-bucket";
    snprintf(words, sizeof(words), "bucket no-such-bucket does not exist at %s",
             cf.endpoint);
    expect_error(&cf, -EADDRNOTAVAIL, words);
    cf = s3test_config();
    cf.skew_seconds = 3600;
    expect_error(&cf, -EPERM, "clock skew");
}
END_TEST

/* A port on 127.0.0.1 that listens and never answers, or -1 closed. */
static int silent_port(int *fd, int listen_too)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof(a);

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    *fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(*fd, 0);
    ck_assert_int_eq(bind(*fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(getsockname(*fd, (struct sockaddr *)&a, &len), 0);
    if (listen_too)
        ck_assert_int_eq(listen(*fd, 8), 0);
    return ntohs(a.sin_port);
}

START_TEST(test_network)
{
    struct s3_config cf = s3test_config();
    char ep[64];
    int fd, port, efd;
    uint64_t one = 1;

    /* nobody listening */
    port = silent_port(&fd, 0);
    snprintf(ep, sizeof(ep), "http://127.0.0.1:%d", port);
    cf.endpoint = ep;
    expect_error(&cf, -ECONNREFUSED, "cannot connect");
    close(fd);

    /* a server that takes the request and never answers */
    port = silent_port(&fd, 1);
    snprintf(ep, sizeof(ep), "http://127.0.0.1:%d", port);
    cf.timeout = 1;
    expect_error(&cf, -ETIMEDOUT, "no progress for 1 s");

    /* the same, cancelled: the call returns without waiting its timeout */
    efd = eventfd(0, EFD_CLOEXEC);
    ck_assert_int_eq(write(efd, &one, 8), 8);
    cf.timeout = 3600;
    cf.cancel_fd = efd;
    expect_error(&cf, -ECANCELED, "cancelled");
    close(efd);
    close(fd);
}
END_TEST

/* 503 SlowDown (from s3_faults.py, once) is "try again later". */
START_TEST(test_throttled)
{
    struct s3_config cf = s3test_config();
    struct s3 *c;

    cf.endpoint = s3test_env("S3_FAULTS_URL");
    expect_error(&cf, -EAGAIN, "throttled: the server asks us to slow down");
    c = client(&cf);
    ck_assert_int_eq(s3_put(c, "k", "x", 1, NULL, NULL), 0);
    s3_free(c);
}
END_TEST

/*
 * An ETag that is not the MD5 of the bytes sent is an error (-EIO), unless
 * the answer says SSE-KMS: AWS's ETag of such an object is not its MD5,
 * and Content-MD5 had the server check the bytes already.  The proxy
 * rewrites the answers; radosgw stores the bytes.
 */
START_TEST(test_etag_not_md5)
{
    struct s3_config cf = s3test_config();
    unsigned char *data = pattern(5 * MIB, 4);
    char id[S3_UPLOAD_ID_MAX], etag[S3_ETAG_MAX];
    struct s3_part_done d;
    struct s3 *c;

    cf.endpoint = s3test_env("S3_FAULTS_URL");
    c = client(&cf);
    s3test_faults("fail_first 0\netag_other 1\n");
    ck_assert_int_eq(s3_put(c, "kms.txt", "x", 1, NULL, etag), -EIO);
    ck_assert_ptr_nonnull(strstr(s3_error(c), "is not the MD5"));

    s3test_faults("fail_first 0\nsse_kms 1\n");
    ck_assert_msg(s3_put(c, "kms.txt", "x", 1, NULL, etag) == 0, "%s",
                  s3_error(c));
    ck_assert_str_eq(etag, "0123456789abcdef0123456789abcdef");
    ck_assert_int_eq(s3_mpu_create(c, "kms.bin", NULL, id), 0);
    ck_assert_int_eq(s3_part_start(c, "kms.bin", id, 1, data, 5 * MIB, NULL),
                     0);
    while (s3_part_poll(c, -1, &d) == 0)
        ;
    ck_assert_msg(d.result == 0, "%s", s3_error(c));
    ck_assert_str_eq(d.etag, "0123456789abcdef0123456789abcdef");
    ck_assert_int_eq(s3_mpu_abort(c, "kms.bin", id), 0);
    s3test_faults("");
    s3_free(c);
    free(data);
}
END_TEST

START_TEST(test_tls)
{
    struct s3_config cf = s3test_config();
    const char *tls = getenv("RGW_TLS_ENDPOINT");
    struct s3 *c;

    if (tls == NULL || tls[0] == '\0')
        return; /* t_s3client.sh starts radosgw with TLS: never here */
    cf.endpoint = tls;
    /* the system's CAs do not know the test CA */
    expect_error(&cf, -EKEYREJECTED, "TLS: the server's certificate failed "
                                     "verification against the system's CAs");
    cf.ca_file = s3test_env("RGW_CA_FILE");
    c = client(&cf);
    ck_assert_int_eq(s3_put(c, "tls.txt", "x", 1, NULL, NULL), 0);
    s3_free(c);
    cf.ca_file = NULL;
    cf.verify_tls = 0;
    c = client(&cf);
    ck_assert_int_eq(s3_put(c, "tls.txt", "y", 1, NULL, NULL), 0);
    s3_free(c);
}
END_TEST

START_TEST(test_config)
{
    struct s3_config cf = s3test_config();
    struct s3 *c = NULL;
    char err[256], want[256];

    cf.path_style = 0; /* an address cannot carry the bucket's name */
    ck_assert_int_eq(s3_new(&cf, &c, err, sizeof(err)), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "set path_style = true"));
    cf = s3test_config();
    cf.endpoint = "ftp://127.0.0.1";
    ck_assert_int_eq(s3_new(&cf, &c, err, sizeof(err)), -EINVAL);
    cf.endpoint = NULL; /* AWS's, for the region */
    cf.path_style = 0;
    ck_assert_int_eq(s3_new(&cf, &c, err, sizeof(err)), 0);
    snprintf(want, sizeof(want), "https://s3.%s.amazonaws.com bucket %s",
             cf.region, cf.bucket);
    ck_assert_str_eq(s3_describe(c), want);
    s3_free(c);
}
END_TEST

static Suite *s3client_suite(void)
{
    Suite *s = suite_create("s3client");
    TCase *tc = tcase_create("radosgw");

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_config);
    tcase_add_test(tc, test_objects);
    tcase_add_test(tc, test_list_pages);
    tcase_add_test(tc, test_multipart);
    tcase_add_test(tc, test_abort);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_network);
    tcase_add_test(tc, test_throttled);
    tcase_add_test(tc, test_etag_not_md5);
    tcase_add_test(tc, test_tls);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(s3client_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
