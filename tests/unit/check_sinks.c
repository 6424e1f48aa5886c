/*
 * The sink conformance suite: the transfer contract of sink.h, checked
 * the same way against every sink.
 *
 * Run by make check alone it checks the local sink in a scratch folder.
 * tests/integration/t_sinks.sh runs it again against real servers (OpenSSH
 * sshd for "sftp", the Ceph RADOS Gateway for "s3"), naming them in the
 * environment:
 *   SINKS                 the sinks to check: "local sftp s3"
 *   SINK_<NAME>_CONF      a configuration file whose target is that sink
 *   SINK_<NAME>_FETCH     a shell command printing the object named $1
 *                         (relative to the target's root); it fails when
 *                         there is none
 *   SINK_<NAME>_DOWN_CONF the same target made unreachable
 * <NAME> is the sink's name in capitals.
 */
#include "config.h"

#include <ctype.h>
#include <poll.h>
#include <openssl/sha.h>

#include "testutil.h"
#include "sftprelay/conf.h"
#include "sftprelay/sink.h"

#define MAX_SINKS 4
#define PIECE (1024 * 1024)

struct under_test {
    char name[32];
    char *conf;
    char *fetch;
    char *down_conf;
};

static struct under_test sinks[MAX_SINKS];
static int n_sinks;
static char *scratch; /* the local sink's folders when run alone */

/* Set up for one case. */
static struct conf *conf;
static struct sink *sink;
static unsigned char *data; /* the bytes every case sends from */
#define DATA_MAX (13 * 1024 * 1024)

static void load(const char *file, struct conf **c, struct sink **s)
{
    char err[CONF_ERR_MAX];

    ck_assert_msg(conf_load(file, NULL, c, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq((*c)->target.ops->create((*c)->target.settings, -1, s),
                     0);
}

static void setup_sink(int i)
{
    size_t k;

    load(sinks[i].conf, &conf, &sink);
    ck_assert_msg(strcmp(sink->ops->name, sinks[i].name) == 0,
                  "%s: target.type is %s", sinks[i].conf, sink->ops->name);
    ck_assert_msg(sink_connect(sink) == 0, "%s: connect: %s", sinks[i].name,
                  sink_error(sink));
    data = malloc(DATA_MAX);
    ck_assert_ptr_nonnull(data);
    for (k = 0; k < DATA_MAX; k++)
        data[k] = (unsigned char)(k * 7 + k / 4099);
}

static void teardown_sink(void)
{
    sink_destroy(sink);
    conf_free(conf);
    free(data);
    sink = NULL;
    conf = NULL;
}

/* A name no other case or run uses. */
static void name(char *buf, size_t len, const char *what)
{
    static int seq;

    snprintf(buf, len, "conformance/%d-%d/%s", (int)getpid(), ++seq, what);
}

/* What SINK_<NAME>_FETCH prints for rel: *len bytes, or NULL if none. */
static unsigned char *fetch(int i, const char *rel, size_t *len)
{
    char *cmd = NULL;
    unsigned char *buf = malloc(DATA_MAX + 1);
    size_t n = 0, got;
    FILE *p;

    ck_assert_ptr_nonnull(buf);
    ck_assert_int_ge(asprintf(&cmd, "%s '%s' 2>/dev/null", sinks[i].fetch, rel),
                     0);
    p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    while ((got = fread(buf + n, 1, DATA_MAX + 1 - n, p)) > 0)
        n += got;
    free(cmd);
    if (pclose(p) != 0) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

/* The object rel holds exactly data[0..size). */
static void assert_delivered(int i, const char *rel, size_t size)
{
    size_t len = 0;
    unsigned char *got = fetch(i, rel, &len);

    ck_assert_msg(got != NULL, "%s: %s is not on the target", sinks[i].name,
                  rel);
    ck_assert_msg(len == size, "%s: %s holds %zu bytes, not %zu",
                  sinks[i].name, rel, len, size);
    ck_assert_msg(memcmp(got, data, size) == 0, "%s: %s differs",
                  sinks[i].name, rel);
    free(got);
    ck_assert_int_eq(sink_exists(sink, rel), 1);
}

/* Write data[from..to) in pieces. */
static void write_range(size_t from, size_t to)
{
    size_t n;

    while (from < to) {
        n = to - from < PIECE ? to - from : PIECE;
        ck_assert_msg(sink_write(sink, data + from, n) == 0, "write: %s",
                      sink_error(sink));
        from += n;
    }
}

static void commit(size_t size)
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    struct sink_done d = {.size = (int64_t)size,
                          .mtime_ns = INT64_C(1700000000123456789),
                          .mode = 0640,
                          .sha256 = md};

    SHA256(data, size, md);
    ck_assert_msg(sink_commit(sink, &d) == 0, "commit: %s", sink_error(sink));
}

/* Open rel afresh; returns where the sink resumes. */
static int64_t open_at(const char *rel, size_t size, int64_t offset,
                       const char *token)
{
    struct sink_file f = {.rel = rel,
                          .mode = 0640,
                          .size = (int64_t)size,
                          .offset = offset,
                          .token = token};

    ck_assert_msg(sink_open(sink, &f) == 0, "open %s: %s", rel,
                  sink_error(sink));
    /* Past the checkpoint only where the sink vouches for the bytes (S3's
     * listed parts), never past the file. */
    ck_assert_int_le(f.offset, (int64_t)size);
    ck_assert_int_ge(f.offset, 0);
    return f.offset;
}

/* Deliver data[0..size) to rel whole. */
static void deliver(const char *rel, size_t size)
{
    open_at(rel, size, 0, NULL);
    write_range(0, size);
    commit(size);
}

/* What an interrupted upload leaves for the next attempt. */
struct left {
    int64_t durable;
    char token[SINK_TOKEN_MAX]; /* "" for none */
};

/* Send written bytes of a file of size to rel, then abort. */
static void interrupted(const char *rel, size_t size, size_t written,
                        struct left *l)
{
    const char *t;

    int i;

    open_at(rel, size, 0, NULL);
    write_range(0, written);
    l->durable = (int64_t)written;
    /* What is in flight becomes durable as the target answers: wait
     * (30 s at most) for some of it, so that the resume is checked. */
    for (i = 0; sink->ops->durable && i < 3000; i++) {
        l->durable = sink->ops->durable(sink);
        if (l->durable > 0)
            break;
        poll(NULL, 0, 10);
    }
    t = sink_token(sink);
    snprintf(l->token, sizeof(l->token), "%s", t ? t : "");
    sink_abort(sink);
}

static const char *token_of(const struct left *l)
{
    return l->token[0] ? l->token : NULL;
}

/* Sizes around the boundaries sinks have: empty, one byte, a piece, and
 * past 5 MiB (S3's smallest part) unaligned. */
static const size_t sizes[] = {0, 1, PIECE + 3, 6 * 1024 * 1024 + 7};

START_TEST(test_open_write_commit)
{
    char rel[128];
    size_t k;

    setup_sink(_i);
    for (k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        name(rel, sizeof(rel), "file.bin");
        ck_assert_int_eq(sink_exists(sink, rel), 0);
        deliver(rel, sizes[k]);
        assert_delivered(_i, rel, sizes[k]);
    }
    teardown_sink();
}
END_TEST

/* A file of another size replaces the one there. */
START_TEST(test_overwrite)
{
    char rel[128];

    setup_sink(_i);
    name(rel, sizeof(rel), "again.bin");
    deliver(rel, 3 * PIECE);
    deliver(rel, 1000);
    assert_delivered(_i, rel, 1000);
    teardown_sink();
}
END_TEST

/* abort() keeps what durable() said; the next open resumes there. */
START_TEST(test_resume_from_token)
{
    const size_t size = 13 * 1024 * 1024;
    struct left l;
    char rel[128];
    int64_t at;

    setup_sink(_i);
    name(rel, sizeof(rel), "resumed.bin");
    interrupted(rel, size, 11 * 1024 * 1024, &l);
    ck_assert_int_eq(sink_exists(sink, rel), 0); /* not in place yet */
    /* A new instance, as after kill -9. */
    sink_destroy(sink);
    ck_assert_int_eq(conf->target.ops->create(conf->target.settings, -1, &sink),
                     0);
    ck_assert_int_eq(sink_connect(sink), 0);
    ck_assert_msg(l.durable > 0, "%s: 11 MiB written, none durable",
                  sinks[_i].name);
    at = open_at(rel, size, l.durable, token_of(&l));
    ck_assert_msg(at > 0, "%s: durable %lld, resumed at 0", sinks[_i].name,
                  (long long)l.durable);
    write_range((size_t)at, size);
    commit(size);
    assert_delivered(_i, rel, size);
    teardown_sink();
}
END_TEST

/* The target lost the upload (removed, aborted): the stale offset and
 * token start over at 0, and nothing is lost. */
START_TEST(test_resume_after_loss)
{
    const size_t size = 7 * 1024 * 1024;
    struct left l;
    char rel[128];

    setup_sink(_i);
    name(rel, sizeof(rel), "lost.bin");
    interrupted(rel, size, size, &l);
    ck_assert_msg(sink_discard(sink, rel, token_of(&l)) == 0, "discard: %s",
                  sink_error(sink));
    ck_assert_int_eq(open_at(rel, size, l.durable, token_of(&l)), 0);
    write_range(0, size);
    commit(size);
    assert_delivered(_i, rel, size);
    teardown_sink();
}
END_TEST

/* A changed source: discard() leaves nothing, under any name. */
START_TEST(test_discard)
{
    struct left l;
    char rel[128];
    size_t len;

    setup_sink(_i);
    name(rel, sizeof(rel), "changed.bin");
    interrupted(rel, 6 * 1024 * 1024, 6 * 1024 * 1024, &l);
    ck_assert_int_eq(sink_discard(sink, rel, token_of(&l)), 0);
    ck_assert_int_eq(sink_exists(sink, rel), 0);
    ck_assert_ptr_null(fetch(_i, rel, &len));
    /* Twice is harmless. */
    ck_assert_int_eq(sink_discard(sink, rel, token_of(&l)), 0);
    teardown_sink();
}
END_TEST

/* An error of one file is not the target's; the sink goes on. */
START_TEST(test_file_error_class)
{
    char rel[1400], ok[128];
    size_t n = 0;
    int r, k;
    struct sink_file f = {.mode = 0640, .size = 10};

    setup_sink(_i);
    /* Four 300-byte names: too long a component for a file system, too
     * long a key (1,024 bytes) for S3. */
    n += (size_t)snprintf(rel, sizeof(rel), "conformance");
    for (k = 0; k < 4; k++) {
        rel[n++] = '/';
        memset(rel + n, 'n', 300);
        n += 300;
    }
    rel[n] = '\0';
    f.rel = rel;
    r = sink_open(sink, &f);
    if (r == 0) {
        r = sink_write(sink, data, 10);
        if (r == 0)
            r = sink_commit(sink, &(struct sink_done){.size = 10});
        if (r < 0)
            sink_abort(sink);
    }
    ck_assert_msg(r < 0, "%s: a 1,200-byte name was accepted", sinks[_i].name);
    ck_assert_msg(!sink_error_is_target(r), "%s: %s counted against the target",
                  sinks[_i].name, sink_error(sink));
    ck_assert_str_ne(sink_error(sink), "");
    ck_assert_int_eq(sink_connect(sink), 0);
    name(ok, sizeof(ok), "after-error.txt");
    deliver(ok, 5);
    assert_delivered(_i, ok, 5);
    teardown_sink();
}
END_TEST

/* An unreachable target is the target's error, in words. */
START_TEST(test_target_error_class)
{
    struct conf *dc = NULL;
    struct sink *ds = NULL;
    int r;

    setup_sink(_i);
    if (sinks[_i].down_conf == NULL) {
        teardown_sink();
        return;
    }
    load(sinks[_i].down_conf, &dc, &ds);
    r = sink_connect(ds);
    ck_assert_msg(r < 0, "%s: connected to a target that is down",
                  sinks[_i].name);
    ck_assert_msg(sink_error_is_target(r), "%s: %s (%d) not a target error",
                  sinks[_i].name, sink_error(ds), r);
    ck_assert_str_ne(sink_error(ds), "");
    sink_destroy(ds);
    conf_free(dc);
    teardown_sink();
}
END_TEST

/* A file holding text (outside a test: no ck_assert). */
static char *conf_file(const char *dir, const char *base, const char *text)
{
    char *p = NULL;
    FILE *f;

    if (asprintf(&p, "%s/%s", dir, base) < 0 || (f = fopen(p, "w")) == NULL ||
        fputs(text, f) < 0 || fclose(f) != 0) {
        perror("check_sinks: writing a configuration");
        exit(2);
    }
    return p;
}

/* Without SINKS: the local sink in a scratch folder. */
static void local_only(void)
{
    const char *tmp = getenv("TMPDIR");
    char *dst = NULL, *text = NULL;

    if (asprintf(&scratch, "%s/sftprelay-test.XXXXXX", tmp ? tmp : "/tmp") < 0 ||
        mkdtemp(scratch) == NULL || asprintf(&dst, "%s/dst", scratch) < 0 ||
        mkdir(dst, 0755) < 0) {
        perror("check_sinks: a scratch folder");
        exit(2);
    }
    snprintf(sinks[0].name, sizeof(sinks[0].name), "local");
    if (asprintf(&text,
                 "source = { path = \"%s\"; };\n"
                 "target = { type = \"local\"; path = \"%s\"; };\n",
                 scratch, dst) < 0)
        exit(2);
    sinks[0].conf = conf_file(scratch, "local.conf", text);
    free(text);
    if (asprintf(&text,
                 "source = { path = \"%s\"; };\n"
                 "target = { type = \"local\"; path = \"%s/missing\"; };\n",
                 scratch, dst) < 0 ||
        asprintf(&sinks[0].fetch, "cd '%s' && cat --", dst) < 0)
        exit(2);
    sinks[0].down_conf = conf_file(scratch, "down.conf", text);
    free(text);
    free(dst);
    n_sinks = 1;
}

static char *env_of(const char *which, const char *what)
{
    char key[96], *p;
    const char *v;

    snprintf(key, sizeof(key), "SINK_%s_%s", which, what);
    for (p = key; *p; p++)
        *p = (char)toupper((unsigned char)*p);
    v = getenv(key);
    return v && v[0] ? strdup(v) : NULL;
}

static void from_env(const char *list)
{
    char *l = strdup(list), *save = NULL, *tok;

    for (tok = strtok_r(l, " ", &save); tok && n_sinks < MAX_SINKS;
         tok = strtok_r(NULL, " ", &save)) {
        struct under_test *u = &sinks[n_sinks++];

        snprintf(u->name, sizeof(u->name), "%s", tok);
        u->conf = env_of(tok, "CONF");
        u->fetch = env_of(tok, "FETCH");
        u->down_conf = env_of(tok, "DOWN_CONF");
        if (!u->conf || !u->fetch) {
            fprintf(stderr, "check_sinks: SINK_%s_CONF and _FETCH needed\n",
                    tok);
            exit(2);
        }
    }
    free(l);
}

int main(void)
{
    const char *list = getenv("SINKS");
    Suite *s = suite_create("sinks");
    TCase *tc = tcase_create("contract");
    SRunner *sr;
    int failed;

    if (list && list[0])
        from_env(list);
    else
        local_only();
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_open_write_commit, 0, n_sinks);
    tcase_add_loop_test(tc, test_overwrite, 0, n_sinks);
    tcase_add_loop_test(tc, test_resume_from_token, 0, n_sinks);
    tcase_add_loop_test(tc, test_resume_after_loss, 0, n_sinks);
    tcase_add_loop_test(tc, test_discard, 0, n_sinks);
    tcase_add_loop_test(tc, test_file_error_class, 0, n_sinks);
    tcase_add_loop_test(tc, test_target_error_class, 0, n_sinks);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    if (scratch) {
        char *cmd = NULL;

        if (asprintf(&cmd, "rm -rf '%s'", scratch) > 0 && system(cmd) != 0)
            fprintf(stderr, "check_sinks: could not remove %s\n", scratch);
        free(cmd);
    }
    return failed ? 1 : 0;
}
