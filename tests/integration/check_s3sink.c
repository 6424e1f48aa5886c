/*
 * check_s3sink: the S3 sink (agent/sinks/s3.c) against a real S3 server,
 * in the cases the conformance suite (check_sinks) does not reach: an
 * upload resumed with another part size, parts the journal's checkpoint
 * does not know of yet, an upload lost at commit, 503s in the middle of
 * an upload, keys that may write but not list.
 *
 * Run by t_s3sink.sh, which starts radosgw (rgw.sh) and the fault proxy
 * (s3_faults.py) and gives in the environment: RGW_ENDPOINT,
 * RGW_ACCESS_KEY, RGW_SECRET_KEY, RGW_SECRET_FILE, RGW_REGION, S3_BUCKET
 * (made already), S3_FAULTS_URL and S3_FAULTS_CONTROL (the proxy, no
 * faults until its control file says), and S3_WRITER_KEY,
 * S3_WRITER_SECRET and S3_WRITER_SECRET_FILE, a user the bucket's policy
 * lets do what the sink needs and nothing more (no s3:ListBucket).  What is
 * checked is what a user would check: the object's bytes, the offsets a
 * transfer would checkpoint and resume at, the errors.
 */
#include "config.h"

#include <time.h>

#include "../unit/testutil.h"
#include "s3test.h"
#include "sftprelay/conf.h"
#include "sftprelay/s3.h"
#include "sftprelay/sink.h"

#define MIB (1024 * 1024)
#define PREFIX "sink/"

static char *dir;           /* scratch: the configuration files */
static struct conf *conf;   /* of the sink under test */
static struct s3 *admin;    /* the bucket owner's client, to look and meddle */
static unsigned char *data; /* the bytes every case sends from */
#define DATA_MAX (16 * MIB)

static void setup(void)
{
    struct s3_config cf = s3test_config();
    char err[256] = "";
    size_t i;

    dir = tu_tmpdir();
    ck_assert_msg(s3_new(&cf, &admin, err, sizeof(err)) == 0, "%s", err);
    data = malloc(DATA_MAX);
    ck_assert_ptr_nonnull(data);
    for (i = 0; i < DATA_MAX; i++)
        data[i] = (unsigned char)((i * 2654435761u) >> 13);
}

static void teardown(void)
{
    conf_free(conf);
    conf = NULL;
    s3_free(admin);
    admin = NULL;
    free(data);
    tu_rmtree(dir);
    free(dir);
}

/* A connected S3 sink of part_size bytes at endpoint, with these keys. */
static struct sink *sink_with(const char *endpoint, long long part_size,
                              const char *key_id, const char *secret_file)
{
    char err[CONF_ERR_MAX], *text = NULL, *file;
    struct sink *s = NULL;

    ck_assert_int_ge(
        asprintf(&text,
                 "source = { path = \"%s\"; };\n"
                 "target = { type = \"s3\"; endpoint = \"%s\";\n"
                 "  path_style = true; bucket = \"%s\"; prefix = \"%s\";\n"
                 "  part_size = %lld; access_key_id = \"%s\";\n"
                 "  secret_access_key_file = \"%s\"; };\n",
                 dir, endpoint, s3test_env("S3_BUCKET"), PREFIX, part_size,
                 key_id, secret_file),
        0);
    file = tu_write_str(dir, "s3.conf", text);
    conf_free(conf);
    conf = NULL;
    ck_assert_msg(conf_load(file, NULL, &conf, err, sizeof(err)) == 0, "%s",
                  err);
    ck_assert_int_eq(conf->target.ops->create(conf->target.settings, -1, &s),
                     0);
    ck_assert_msg(sink_connect(s) == 0, "connect: %s", sink_error(s));
    free(text);
    free(file);
    return s;
}

static struct sink *sink_of(const char *endpoint, long long part_size)
{
    return sink_with(endpoint, part_size, s3test_env("RGW_ACCESS_KEY"),
                     s3test_env("RGW_SECRET_FILE"));
}

/* Write data[from, to) in pieces of a MiB: 0, or the first error. */
static int send_range(struct sink *s, int64_t from, int64_t to)
{
    int r = 0;

    while (r == 0 && from < to) {
        size_t n = to - from > MIB ? MIB : (size_t)(to - from);

        r = sink_write(s, data + from, n);
        from += (int64_t)n;
    }
    return r;
}

static int64_t durable(struct sink *s)
{
    return s->ops->durable(s);
}

/* Let the parts in flight complete until durable() is want (60 s). */
static void wait_durable(struct sink *s, int64_t want)
{
    time_t end = time(NULL) + 60;

    while (durable(s) < want && time(NULL) < end) {
        ck_assert_msg(sink_write(s, "", 0) == 0, "%s", sink_error(s));
        usleep(20000);
    }
    ck_assert_int_eq(durable(s), want);
}

/* Deliver rel as size bytes of data: open (resuming as token and offset
 * say, asserting where it resumes), write the rest, commit. */
static void deliver(struct sink *s, const char *rel, int64_t size,
                    const char *token, int64_t offset, int64_t resumes_at)
{
    struct sink_file f = {.rel = rel,
                          .mode = 0644,
                          .size = size,
                          .offset = offset,
                          .token = token};
    struct sink_done d = {.size = size};

    ck_assert_msg(sink_open(s, &f) == 0, "open: %s", sink_error(s));
    ck_assert_int_eq(f.offset, resumes_at);
    ck_assert_msg(send_range(s, f.offset, size) == 0, "write: %s",
                  sink_error(s));
    ck_assert_msg(sink_commit(s, &d) == 0, "commit: %s", sink_error(s));
}

/* The object PREFIX rel holds data[0, size), to the byte, as c sees it. */
static void on_bucket_for(struct s3 *c, const char *rel, int64_t size)
{
    char key[256];
    unsigned char *back = malloc((size_t)size + 1);
    struct s3_object o;
    size_t got = 0;

    ck_assert_ptr_nonnull(back);
    snprintf(key, sizeof(key), PREFIX "%s", rel);
    ck_assert_msg(s3_head(c, key, &o) == 0, "%s", s3_error(c));
    ck_assert_int_eq(o.size, size);
    ck_assert_msg(s3_get(c, key, 0, back, (size_t)size + 1, NULL, &got) == 0,
                  "%s", s3_error(c));
    ck_assert_uint_eq(got, (size_t)size);
    ck_assert_msg(memcmp(back, data, (size_t)size) == 0,
                  "%s: other bytes than were sent", key);
    free(back);
}

static void on_bucket(const char *rel, int64_t size)
{
    on_bucket_for(admin, rel, size);
}

/* An upload of PREFIX rel made as an earlier agent would have: n parts of
 * part bytes from data; its token ("PART_SIZE UPLOAD_ID") into token. */
static void upload_parts(const char *rel, int n, size_t part, char *token,
                         size_t len)
{
    char key[256], id[S3_UPLOAD_ID_MAX];
    struct s3_part_done d;
    int i, left = n;

    snprintf(key, sizeof(key), PREFIX "%s", rel);
    ck_assert_int_eq(s3_mpu_create(admin, key, NULL, id), 0);
    for (i = 0; i < n; i++)
        ck_assert_int_eq(s3_part_start(admin, key, id, i + 1,
                                       data + (size_t)i * part, part, NULL),
                         0);
    while (left) {
        int r = s3_part_poll(admin, -1, &d);

        ck_assert_int_ge(r, 0);
        if (r == 0)
            continue;
        ck_assert_msg(d.result == 0, "part %d: %s", d.number, s3_error(admin));
        left--;
    }
    snprintf(token, len, "%zu %s", part, id);
}

/* Abort the upload token names, as a lifecycle rule would. */
static void lose_upload(const char *rel, const char *token)
{
    char key[256];

    snprintf(key, sizeof(key), PREFIX "%s", rel);
    ck_assert_int_eq(s3_mpu_abort(admin, key, strchr(token, ' ') + 1), 0);
}

/*
 * An upload resumed with a smaller part size than the configuration's
 * (its token keeps its own), then lost: the next file starts a new upload
 * at the configured size, and the part buffers grow with it.
 */
START_TEST(test_part_size_grows)
{
    struct sink *s = sink_of(s3test_env("RGW_ENDPOINT"), 6 * MIB);
    struct sink_file f = {
        .rel = "grow.bin", .mode = 0644, .size = 13 * MIB, .offset = 5 * MIB};
    char token[SINK_TOKEN_MAX];

    upload_parts("grow.bin", 1, 5 * MIB, token, sizeof(token));
    f.token = token;
    ck_assert_msg(sink_open(s, &f) == 0, "open: %s", sink_error(s));
    ck_assert_int_eq(f.offset, 5 * MIB);
    /* a part of 5 MiB in flight, the next buffer filling */
    ck_assert_int_eq(send_range(s, 5 * MIB, 11 * MIB), 0);
    sink_abort(s);
    lose_upload("grow.bin", token);
    deliver(s, "grow.bin", 13 * MIB, token, 5 * MIB, 0);
    on_bucket("grow.bin", 13 * MIB);
    sink_destroy(s);
}
END_TEST

/*
 * A CompleteMultipartUpload that fails (503 SlowDown from the proxy): the
 * offset a transfer would checkpoint then is within the file, the last,
 * shorter part counted at its length; the next attempt resumes after the
 * full parts.
 */
START_TEST(test_complete_fails)
{
    struct sink *s = sink_of(s3test_env("S3_FAULTS_URL"), 5 * MIB);
    const int64_t size = 5 * MIB + 100;
    struct sink_file f = {.rel = "complete.bin", .mode = 0644, .size = size};
    struct sink_done d = {.size = size};
    char token[SINK_TOKEN_MAX];
    int64_t at;

    ck_assert_msg(sink_open(s, &f) == 0, "open: %s", sink_error(s));
    ck_assert_int_eq(send_range(s, 0, size), 0);
    wait_durable(s, 5 * MIB);
    /* from here on: UploadPart 2 passes, CompleteMultipartUpload gets 503 */
    s3test_faults("fail_every 2\n");
    ck_assert_int_eq(sink_commit(s, &d), -EAGAIN);
    ck_assert_ptr_nonnull(strstr(sink_error(s), "CompleteMultipartUpload"));
    at = durable(s);
    ck_assert_int_eq(at, size);
    ck_assert_ptr_nonnull(sink_token(s));
    snprintf(token, sizeof(token), "%s", sink_token(s));
    sink_abort(s);
    s3test_faults("");
    deliver(s, "complete.bin", size, token, at, 5 * MIB);
    on_bucket("complete.bin", size);
    sink_destroy(s);
}
END_TEST

/*
 * Parts on the server that the journal's checkpoint does not cover (it
 * lags them: it is written after they complete, and a kill -9 may come
 * first): open() takes every full part listed without a gap from part 1,
 * up to the file's size and no further.
 */
START_TEST(test_resume_past_checkpoint)
{
    struct sink *s = sink_of(s3test_env("RGW_ENDPOINT"), 5 * MIB);
    struct sink_file f = {
        .rel = "ahead.bin", .mode = 0644, .size = 10 * MIB, .offset = 5 * MIB};
    char token[SINK_TOKEN_MAX];

    upload_parts("ahead.bin", 3, 5 * MIB, token, sizeof(token));
    /* a file of two parts (shorter than the upload): not past its end */
    f.token = token;
    ck_assert_msg(sink_open(s, &f) == 0, "open: %s", sink_error(s));
    ck_assert_int_eq(f.offset, 10 * MIB);
    sink_abort(s);
    deliver(s, "ahead.bin", 15 * MIB + 10, token, 5 * MIB, 15 * MIB);
    on_bucket("ahead.bin", 15 * MIB + 10);
    sink_destroy(s);
}
END_TEST

/*
 * An upload lost just before CompleteMultipartUpload (a lifecycle rule, an
 * operator): commit fails with an error of this attempt, not -ESTALE
 * (which a transfer reads as "the source changed"), and the next open()
 * with the same token starts a new upload from 0.  radosgw answers such a
 * CompleteMultipartUpload 500 InternalError; the proxy answers it as AWS
 * does, 404 NoSuchUpload.
 */
START_TEST(test_lost_at_commit)
{
    struct sink *s = sink_of(s3test_env("S3_FAULTS_URL"), 5 * MIB);
    struct sink_file f = {
        .rel = "lost.bin", .mode = 0644, .size = 10 * MIB, .offset = 5 * MIB};
    struct sink_done d = {.size = 10 * MIB};
    char token[SINK_TOKEN_MAX];

    upload_parts("lost.bin", 2, 5 * MIB, token, sizeof(token));
    f.token = token;
    ck_assert_msg(sink_open(s, &f) == 0, "open: %s", sink_error(s));
    ck_assert_int_eq(f.offset, 10 * MIB); /* nothing left but to complete */
    lose_upload("lost.bin", token);
    s3test_faults("fail_first 1\nno_such_upload 1\n");
    ck_assert_msg(sink_commit(s, &d) == -EIO, "%s", sink_error(s));
    ck_assert_ptr_nonnull(strstr(sink_error(s), "upload is gone"));
    s3test_faults("");
    sink_abort(s);
    deliver(s, "lost.bin", 10 * MIB, token, 10 * MIB, 0);
    on_bucket("lost.bin", 10 * MIB);
    sink_destroy(s);
}
END_TEST

/*
 * A part refused (the proxy's answer to the third request: the upload's
 * second part): 503 SlowDown makes the next write or the commit say
 * -EAGAIN (a back-off, no attempt counted); 500 InternalError says -EIO,
 * an attempt of the file, not of the whole target.  Either way the upload
 * resumes after the part that got in.
 */
static const struct {
    const char *fault;
    int r;
    const char *words;
} part_refusals[] = {
    {"fail_every 3\n", -EAGAIN, "throttled"},
    {"fail_every 3\ninternal_error 1\n", -EIO, "server error"},
};

START_TEST(test_part_refused)
{
    struct sink *s = sink_of(s3test_env("S3_FAULTS_URL"), 5 * MIB);
    const int64_t size = 12 * MIB;
    struct sink_file f = {.rel = "slow.bin", .mode = 0644, .size = size};
    struct sink_done d = {.size = size};
    char token[SINK_TOKEN_MAX];
    int r;

    /* CreateMultipartUpload, part 1, part 2 */
    s3test_faults(part_refusals[_i].fault);
    ck_assert_msg(sink_open(s, &f) == 0, "open: %s", sink_error(s));
    ck_assert_int_eq(send_range(s, 0, 5 * MIB + 1), 0);
    wait_durable(s, 5 * MIB);
    r = send_range(s, 5 * MIB + 1, size);
    if (r == 0)
        r = sink_commit(s, &d);
    ck_assert_msg(r == part_refusals[_i].r, "%d: %s", r, sink_error(s));
    ck_assert(!sink_error_is_target(r));
    ck_assert_ptr_nonnull(strstr(sink_error(s), "UploadPart 2 of"));
    ck_assert_ptr_nonnull(strstr(sink_error(s), part_refusals[_i].words));
    ck_assert_int_eq(durable(s), 5 * MIB);
    snprintf(token, sizeof(token), "%s", sink_token(s));
    sink_abort(s);
    s3test_faults("");
    deliver(s, "slow.bin", size, token, 5 * MIB, 5 * MIB);
    on_bucket("slow.bin", size);
    sink_destroy(s);
}
END_TEST

/*
 * Keys the bucket's policy lets do what sftprelay.conf(5) says the sink
 * needs, and not list the bucket: the connect probe's 403 AccessDenied
 * means the keys were accepted; files go in one PUT and as a multipart
 * upload resumed with ListParts; an upload is thrown away; a delivered
 * key is seen by exists().
 */
START_TEST(test_write_only_keys)
{
    struct sink *s = sink_with(s3test_env("RGW_ENDPOINT"), 5 * MIB,
                               s3test_env("S3_WRITER_KEY"),
                               s3test_env("S3_WRITER_SECRET_FILE"));
    const int64_t size = 11 * MIB;
    struct sink_file f = {.rel = "wo/big.bin", .mode = 0644, .size = size};
    struct s3_config cf = s3test_config();
    struct s3 *writer = NULL;
    char token[SINK_TOKEN_MAX], err[256] = "";

    /* what another account writes is its own: read it with its keys */
    cf.access_key_id = s3test_env("S3_WRITER_KEY");
    cf.secret_access_key = s3test_env("S3_WRITER_SECRET");
    ck_assert_msg(s3_new(&cf, &writer, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(s3_probe(writer, PREFIX), -EACCES); /* the case */

    deliver(s, "wo/small.bin", 1000, NULL, 0, 0);
    on_bucket_for(writer, "wo/small.bin", 1000);
    ck_assert_int_eq(sink_exists(s, "wo/small.bin"), 1);

    ck_assert_msg(sink_open(s, &f) == 0, "open: %s", sink_error(s));
    ck_assert_int_eq(send_range(s, 0, 5 * MIB + 1), 0);
    wait_durable(s, 5 * MIB);
    snprintf(token, sizeof(token), "%s", sink_token(s));
    sink_abort(s);
    deliver(s, "wo/big.bin", size, token, 5 * MIB, 5 * MIB);
    on_bucket_for(writer, "wo/big.bin", size);

    f.rel = "wo/dropped.bin";
    ck_assert_msg(sink_open(s, &f) == 0, "open: %s", sink_error(s));
    ck_assert_int_eq(send_range(s, 0, 5 * MIB + 1), 0);
    wait_durable(s, 5 * MIB);
    snprintf(token, sizeof(token), "%s", sink_token(s));
    sink_abort(s);
    ck_assert_msg(sink_discard(s, "wo/dropped.bin", token) == 0, "%s",
                  sink_error(s));
    /* gone: t_s3sink.sh finds no upload left in the bucket */
    s3_free(writer);
    sink_destroy(s);
}
END_TEST

static Suite *s3sink_suite(void)
{
    Suite *s = suite_create("s3sink");
    TCase *tc = tcase_create("radosgw");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_part_size_grows);
    tcase_add_test(tc, test_complete_fails);
    tcase_add_test(tc, test_resume_past_checkpoint);
    tcase_add_test(tc, test_lost_at_commit);
    tcase_add_loop_test(tc, test_part_refused, 0,
                        sizeof(part_refusals) / sizeof(part_refusals[0]));
    tcase_add_test(tc, test_write_only_keys);
    suite_add_tcase(s, tc);
    return s;
}

TU_MAIN(s3sink_suite)
