/*
 * The transfer state machine through the local source and sink: bytes on
 * the target, checkpoints, resume from a checkpoint, and a file that
 * changes or vanishes.
 */
#include "config.h"

#include <openssl/sha.h>
#include <zlib.h>

#include "testutil.h"
#include "sftprelay/conf.h"
#include "sftprelay/digest.h"
#include "sftprelay/sink.h"
#include "sftprelay/source.h"
#include "sftprelay/transform.h"
#include "sftprelay/sidehash.h"
#include "sftprelay/xfer.h"

#define CHUNK 65536

static char *dir, *src, *dst;
static struct conf *conf;
static struct source *source;
static struct sink *sink;
static struct transform_chain *chain;
static struct xfer_env env;
static struct sidehash *hash;
static char buf[CHUNK];
static int64_t checkpoints[64], source_offsets[64];
static char states[64][DIGEST_STATE_MAX]; /* each checkpoint's sha256_state */
static char ostates[64][DIGEST_STATE_MAX]; /* and delivered_state */
static char chains[64][TRANSFORM_ID_MAX];  /* and chain */
static int n_checkpoints, stop_after;

static int on_checkpoint(void *arg, const struct xfer_mark *m)
{
    int64_t off = m->offset;

    if (n_checkpoints < 64) {
        checkpoints[n_checkpoints] = off;
        source_offsets[n_checkpoints] = m->source_offset;
        snprintf(states[n_checkpoints], sizeof(states[0]), "%s",
                 m->sha256_state ? m->sha256_state : "");
        snprintf(ostates[n_checkpoints], sizeof(ostates[0]), "%s",
                 m->delivered_state ? m->delivered_state : "");
        snprintf(chains[n_checkpoints], sizeof(chains[0]), "%s",
                 m->chain ? m->chain : "");
    }
    n_checkpoints++;
    /* Simulate a crash after a few chunks. */
    if (stop_after && n_checkpoints >= stop_after)
        return -ECANCELED;
    return 0;
}

static void setup(void)
{
    char err[CONF_ERR_MAX], *cfile = NULL;
    FILE *f;

    dir = tu_tmpdir();
    ck_assert_int_ge(asprintf(&src, "%s/src", dir), 0);
    ck_assert_int_ge(asprintf(&dst, "%s/dst", dir), 0);
    ck_assert_int_eq(mkdir(src, 0755), 0);
    ck_assert_int_eq(mkdir(dst, 0755), 0);
    ck_assert_int_ge(asprintf(&cfile, "%s/sftprelay.conf", dir), 0);
    f = fopen(cfile, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "source = { path = \"%s\"; };\n", src);
    fprintf(f, "target = { type = \"local\"; path = \"%s\"; };\n", dst);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_int_eq(conf_load(cfile, NULL, &conf, err, sizeof(err)), 0);
    free(cfile);
    ck_assert_int_eq(
        conf->source.ops->create(src, conf->source.settings, -1, &source), 0);
    ck_assert_int_eq(conf->target.ops->create(conf->target.settings, -1, &sink),
                     0);
    ck_assert_int_eq(transform_chain_new(NULL, 0, &chain), 0);
    /* As the scheduler's workers do: the source hashed on a side thread. */
    ck_assert_int_eq(sidehash_new(&hash), 0);
    env = (struct xfer_env){
        .src = source,
        .sink = sink,
        .chain = chain,
        .buf = buf,
        .bufsize = CHUNK,
        .hash = hash,
        .cancel_fd = -1,
        .checkpoint = on_checkpoint,
    };
    n_checkpoints = stop_after = 0;
}

static void teardown(void)
{
    transform_chain_free(chain);
    sidehash_free(hash);
    sink_destroy(sink);
    source->ops->destroy(source);
    conf_free(conf);
    tu_rmtree(dir);
    free(src);
    free(dst);
    free(dir);
}

/* A file of n pseudo-random bytes at src/rel; returns its job. */
static struct xfer_job make(const char *rel, size_t n, unsigned char **data)
{
    struct xfer_job job = {.path = rel};
    struct stat st;
    unsigned char *d = malloc(n ? n : 1);
    char *p;
    size_t i;

    for (i = 0; i < n; i++)
        d[i] = (unsigned char)((i * 2654435761u) >> 13);
    p = tu_write(src, rel, d, n);
    ck_assert_int_eq(stat(p, &st), 0);
    job.size = st.st_size;
    job.mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    free(p);
    *data = d;
    return job;
}

static void assert_target(const char *rel, const unsigned char *d, size_t n)
{
    char *p = NULL;
    unsigned char *got = malloc(n + 1);
    FILE *f;

    ck_assert_int_ge(asprintf(&p, "%s/%s", dst, rel), 0);
    f = fopen(p, "rb");
    ck_assert_msg(f != NULL, "%s missing on the target", p);
    ck_assert_uint_eq(fread(got, 1, n + 1, f), n);
    fclose(f);
    ck_assert_int_eq(memcmp(got, d, n), 0);
    free(got);
    free(p);
}

static void hex_sha256(const unsigned char *d, size_t n, char *out)
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    int i;

    SHA256(d, n, md);
    for (i = 0; i < SHA256_DIGEST_LENGTH; i++)
        sprintf(out + 2 * i, "%02x", md[i]);
}

START_TEST(test_delivers_with_checkpoints)
{
    struct xfer_result res;
    unsigned char *d;
    struct xfer_job job = make("a/b/c/file_1.txt", 5 * CHUNK + 123, &d);
    char want[65];

    ck_assert_int_eq(xfer_run(&env, &job, &res), 0);
    assert_target("a/b/c/file_1.txt", d, (size_t)job.size);
    hex_sha256(d, (size_t)job.size, want);
    ck_assert_str_eq(res.sha256, want);
    /* One checkpoint per acknowledged chunk, but not the last. */
    ck_assert_int_eq(n_checkpoints, 5);
    ck_assert_int_eq(checkpoints[0], CHUNK);
    ck_assert_int_eq(checkpoints[4], 5 * CHUNK);
    ck_assert_int_eq(res.sent, job.size);
    free(d);
}
END_TEST

START_TEST(test_empty_file)
{
    struct xfer_result res;
    unsigned char *d;
    struct xfer_job job = make("empty", 0, &d);

    ck_assert_int_eq(xfer_run(&env, &job, &res), 0);
    assert_target("empty", d, 0);
    ck_assert_str_eq(res.sha256, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b"
                                 "934ca495991b7852b855");
    free(d);
}
END_TEST

START_TEST(test_resume_from_checkpoint)
{
    struct xfer_result res;
    unsigned char *d;
    struct xfer_job job = make("big.bin", 8 * CHUNK + 7, &d);
    char *tmp = NULL, want[65];
    struct stat st;

    stop_after = 3;
    ck_assert_int_eq(xfer_run(&env, &job, &res), -ECANCELED);
    ck_assert_int_eq(checkpoints[2], 3 * CHUNK);
    /* The final name does not exist yet; the temporary one holds 3 chunks. */
    ck_assert_int_ge(asprintf(&tmp, "%s/big.bin", dst), 0);
    ck_assert_int_eq(stat(tmp, &st), -1);
    free(tmp);
    ck_assert_int_ge(asprintf(&tmp, "%s/.big.bin.sftprelay-tmp", dst), 0);
    ck_assert_int_eq(stat(tmp, &st), 0);
    ck_assert_int_eq(st.st_size, 3 * CHUNK);

    stop_after = 0;
    n_checkpoints = 0;
    job.resume_offset = job.source_offset = 3 * CHUNK;
    job.sha256_state = states[2];
    ck_assert_int_eq(xfer_run(&env, &job, &res), 0);
    ck_assert_int_eq(res.resumed_at, 3 * CHUNK);
    ck_assert_int_eq(res.sent, 5 * CHUNK + 7); /* not the whole file */
    ck_assert_int_eq(res.reread, 0); /* the digest went on from its state */
    assert_target("big.bin", d, (size_t)job.size);
    hex_sha256(d, (size_t)job.size, want);
    ck_assert_str_eq(res.sha256, want); /* covers the resumed part too */
    ck_assert_int_eq(stat(tmp, &st), -1);
    free(tmp);
    free(d);
}
END_TEST

/*
 * The digest's state in the journal is what saves reading the sent bytes
 * again: one of an earlier checkpoint costs the bytes since, one that is
 * not a state (or is of more bytes than were sent) costs them all, and the
 * digest is right either way.
 */
/* Send job from 0 until its n-th checkpoint, keeping their states. */
static void interrupt_at(struct xfer_job *job, int n,
                         char saved[][DIGEST_STATE_MAX])
{
    struct xfer_result res;

    stop_after = n;
    n_checkpoints = 0;
    job->resume_offset = job->source_offset = 0;
    job->sha256_state = NULL;
    ck_assert_int_eq(xfer_run(&env, job, &res), -ECANCELED);
    memcpy(saved, states, (size_t)n * sizeof(states[0]));
    stop_after = 0;
}

START_TEST(test_resume_digest_state)
{
    static const struct {
        int state;      /* of checkpoint [state], -1: garbage, -2: past */
        int64_t reread; /* chunks */
    } cases[] = {{1, 2}, {0, 3}, {-1, 4}, {-2, 4}};
    struct xfer_result res;
    unsigned char *d;
    struct xfer_job job = make("big.bin", 8 * CHUNK + 7, &d);
    char want[65], saved[6][DIGEST_STATE_MAX];
    size_t i;

    hex_sha256(d, (size_t)job.size, want);
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        /* The target holds 4 chunks, or 6 with a state of 6 chunks: it
         * resumes at 4 as asked either way. */
        interrupt_at(&job, cases[i].state == -2 ? 6 : 4, saved);
        job.resume_offset = job.source_offset = 4 * CHUNK;
        job.sha256_state = cases[i].state >= 0    ? saved[cases[i].state]
                           : cases[i].state == -1 ? "sha256 12 zz"
                                                  : saved[5];
        ck_assert_int_eq(xfer_run(&env, &job, &res), 0);
        ck_assert_int_eq(res.resumed_at, 4 * CHUNK);
        ck_assert_int_eq(res.reread, cases[i].reread * CHUNK);
        ck_assert_str_eq(res.sha256, want);
        assert_target("big.bin", d, (size_t)job.size);
    }
    free(d);
}
END_TEST

/* The target file rel: its bytes in *len, malloc'd. */
static unsigned char *target_bytes(const char *rel, size_t *len)
{
    char *p = NULL;
    unsigned char *d;
    struct stat st;
    FILE *f;

    ck_assert_int_ge(asprintf(&p, "%s/%s", dst, rel), 0);
    f = fopen(p, "rb");
    ck_assert_msg(f != NULL, "%s missing on the target", p);
    ck_assert_int_eq(fstat(fileno(f), &st), 0);
    d = malloc((size_t)st.st_size + 1);
    *len = fread(d, 1, (size_t)st.st_size, f);
    ck_assert_uint_eq(*len, (size_t)st.st_size);
    fclose(f);
    free(p);
    return d;
}

/* gunzip of every member of gz: want, byte for byte. */
static void assert_gunzips_to(const unsigned char *gz, size_t n,
                              const unsigned char *want, size_t wn)
{
    unsigned char *out = malloc(wn + 1);
    z_stream z = {0};
    int r;

    ck_assert_int_eq(inflateInit2(&z, 15 + 16), Z_OK);
    z.next_in = (unsigned char *)gz;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)wn + 1;
    do {
        r = inflate(&z, Z_NO_FLUSH);
        if (r == Z_STREAM_END && z.avail_in > 0) /* the next member */
            r = inflateReset(&z);
    } while (r == Z_OK);
    ck_assert_int_eq(r, Z_STREAM_END);
    ck_assert_uint_eq(z.total_out ? (size_t)(z.next_out - out) : 0, wn);
    ck_assert_int_eq(memcmp(out, want, wn), 0);
    inflateEnd(&z);
    free(out);
}

/* The chain becomes the n steps of specs (0: none). */
static void use_chain(const struct transform_spec *specs, size_t n)
{
    static char id[TRANSFORM_ID_MAX];

    transform_chain_free(chain);
    ck_assert_int_eq(transform_chain_new(specs, n, &chain), 0);
    ck_assert_int_eq(transform_chain_id(chain, id, sizeof(id)), 0);
    env.chain = chain;
    env.chain_id = id;
}

/* The chain becomes one gzip step; job runs until its n-th checkpoint. */
static void gzip_interrupted(struct xfer_job *job, int n)
{
    static struct transform_spec spec; /* the chain borrows it */
    struct xfer_result res;

    spec = (struct transform_spec){.type = "gzip",
                                   .ops = transform_find("gzip")};

    use_chain(&spec, 1);
    stop_after = n;
    ck_assert_int_eq(xfer_run(&env, job, &res), -ECANCELED);
    stop_after = 0;
}

/* The job resumes from checkpoint i as the journal recorded it. */
static void resume_from(struct xfer_job *job, int i)
{
    job->resume_offset = checkpoints[i];
    job->source_offset = source_offsets[i];
    job->sha256_state = states[i];
    job->delivered_state = ostates[i];
    job->chain = chains[i];
}

/*
 * Through gzip (each chunk a member): the target name gains ".gz", a
 * kill after 3 checkpoints resumes at the third member boundary with
 * nothing sent again, the result gunzips to the source, and both digests
 * are right (of the source, of the bytes on the target).
 */
START_TEST(test_gzip_resumes_at_a_member)
{
    struct xfer_result res;
    unsigned char *d, *gz;
    struct xfer_job job = make("big.csv", 8 * CHUNK + 7, &d);
    char want[65], got[65];
    int64_t first_out;
    size_t n;

    gzip_interrupted(&job, 3);
    ck_assert_int_eq(source_offsets[2], 3 * CHUNK);
    ck_assert_int_gt(checkpoints[2], 0);
    ck_assert_int_lt(checkpoints[2], 3 * CHUNK); /* compressed */
    ck_assert_str_ne(ostates[2], "");
    first_out = checkpoints[2];
    resume_from(&job, 2);
    ck_assert_int_eq(xfer_run(&env, &job, &res), 0);
    ck_assert_int_eq(res.resumed_at, first_out);
    ck_assert_int_eq(res.reread, 0);
    ck_assert_str_eq(res.placed, "big.csv.gz");
    ck_assert_int_eq(res.renamed, 0);
    gz = target_bytes("big.csv.gz", &n);
    ck_assert_int_eq(res.resumed_at + res.sent, (int64_t)n);
    assert_gunzips_to(gz, n, d, (size_t)job.size);
    hex_sha256(d, (size_t)job.size, want);
    ck_assert_str_eq(res.sha256, want);
    hex_sha256(gz, n, got);
    ck_assert_str_eq(res.delivered_sha256, got);
    free(gz);
    free(d);
}
END_TEST

/* A checkpoint whose digests do not fit starts over at byte 0. */
START_TEST(test_gzip_bad_checkpoint_starts_over)
{
    struct xfer_result res;
    unsigned char *d, *gz;
    struct xfer_job job = make("f.csv", 4 * CHUNK, &d);
    size_t n;

    gzip_interrupted(&job, 2);
    resume_from(&job, 1);
    job.delivered_state = states[1]; /* of other bytes */
    ck_assert_int_eq(xfer_run(&env, &job, &res), 0);
    ck_assert_int_eq(res.resumed_at, 0);
    gz = target_bytes("f.csv.gz", &n);
    assert_gunzips_to(gz, n, d, (size_t)job.size);
    free(gz);
    free(d);
}
END_TEST

/*
 * A checkpoint of other transforms than the chain's now (the
 * configuration changed between two runs) is not taken up: no target
 * file mixes gzip members with plain bytes.
 */
START_TEST(test_other_chain_starts_over)
{
    static struct transform_spec plain; /* the chain borrows it */
    struct xfer_result res;
    unsigned char *d;
    struct xfer_job job = make("big.csv", 8 * CHUNK + 7, &d);

    plain = (struct transform_spec){.type = "identity",
                                    .ops = transform_find("identity"),
                                    .suffix = ".gz"};

    gzip_interrupted(&job, 3);
    ck_assert_str_eq(chains[2], "gzip:.gz");
    resume_from(&job, 2);
    use_chain(&plain, 1); /* the same name, bytes as they are */
    ck_assert_int_eq(xfer_run(&env, &job, &res), 0);
    ck_assert_int_eq(res.resumed_at, 0);
    assert_target("big.csv.gz", d, (size_t)job.size);
    free(d);
}
END_TEST

START_TEST(test_resume_beyond_temp_file_restarts_lower)
{
    struct xfer_result res;
    unsigned char *d;
    struct xfer_job job = make("f", 4 * CHUNK, &d);

    /* The journal says 3 chunks, but no temporary file exists: start at 0. */
    job.resume_offset = job.source_offset = 3 * CHUNK;
    ck_assert_int_eq(xfer_run(&env, &job, &res), 0);
    ck_assert_int_eq(res.resumed_at, 0);
    assert_target("f", d, (size_t)job.size);
    free(d);
}
END_TEST

START_TEST(test_changed_since_queued)
{
    struct xfer_result res;
    unsigned char *d, *d2;
    struct xfer_job job = make("g", 1000, &d);
    struct xfer_job now = make("g", 2000, &d2);

    ck_assert_int_eq(xfer_run(&env, &job, &res), -ESTALE);
    ck_assert_int_eq(res.now.size, now.size);
    ck_assert_str_eq(res.err, "changed on the source since it was queued");
    free(d);
    free(d2);
}
END_TEST

START_TEST(test_vanished)
{
    struct xfer_result res;
    struct xfer_job job = {.path = "gone", .size = 1, .mtime_ns = 1};

    ck_assert_int_eq(xfer_run(&env, &job, &res), -ENOENT);
    ck_assert_str_eq(res.err, "vanished from the source before it was sent");
}
END_TEST

START_TEST(test_symlink_not_followed)
{
    struct xfer_result res;
    struct xfer_job job = {.path = "link", .size = 1, .mtime_ns = 1};
    char *p = NULL;

    ck_assert_int_ge(asprintf(&p, "%s/link", src), 0);
    ck_assert_int_eq(symlink("/etc/passwd", p), 0);
    ck_assert_int_eq(xfer_run(&env, &job, &res), -ENOENT);
    ck_assert_str_eq(res.err, "source: now a symbolic link, not followed");
    free(p);
}
END_TEST

START_TEST(test_target_missing_is_target_error)
{
    struct xfer_result res;
    unsigned char *d;
    struct xfer_job job = make("h", 10, &d);

    tu_rmtree(dst);
    ck_assert_int_eq(xfer_run(&env, &job, &res), -ENOTCONN);
    ck_assert(res.target);
    ck_assert_int_eq(strncmp(res.err, "target.path ", 12), 0);
    free(d);
}
END_TEST

static Suite *xfer_suite(void)
{
    Suite *s = suite_create("xfer");
    TCase *tc = tcase_create("local");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_delivers_with_checkpoints);
    tcase_add_test(tc, test_empty_file);
    tcase_add_test(tc, test_resume_from_checkpoint);
    tcase_add_test(tc, test_resume_digest_state);
    tcase_add_test(tc, test_gzip_resumes_at_a_member);
    tcase_add_test(tc, test_gzip_bad_checkpoint_starts_over);
    tcase_add_test(tc, test_other_chain_starts_over);
    tcase_add_test(tc, test_resume_beyond_temp_file_restarts_lower);
    tcase_add_test(tc, test_changed_since_queued);
    tcase_add_test(tc, test_vanished);
    tcase_add_test(tc, test_symlink_not_followed);
    tcase_add_test(tc, test_target_missing_is_target_error);
    suite_add_tcase(s, tc);
    return s;
}

TU_MAIN(xfer_suite)
