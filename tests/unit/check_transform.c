/*
 * The transform conformance suite: the contract of transform.h, checked
 * the same way against every transform of the table, each configured as
 * a user would (a group of the list "transforms", read by conf_load()).
 * "exec" is checked twice: with cat and with gzip -1 -c; its own cases
 * (failures, timeout, abandoned files, gpg with a throwaway key) follow.
 *
 * The output is decoded here, with zlib or libzstd, by the decoder its
 * suffix names, and compared with the source bytes.  A transform whose
 * output no decoder below reads fails the suite: add its decoder.
 *
 * Chunks are transfer.chunk_size's default; the engine calls process()
 * once per chunk, the last one shorter or empty, with last set.
 */
#include "config.h"

#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>
#include <time.h>
#include <zlib.h>
#include <zstd.h>

#include "testutil.h"
#include "sftprelay/conf.h"
#include "sftprelay/transform.h"

#define CHUNK 262144
#define MAX_SUBJECTS 16

/* --- decoders ------------------------------------------------------------ */

enum dec_kind {
    DEC_COPY, /* output byte i is source byte i */
    DEC_GZIP, /* one or more gzip members */
    DEC_ZSTD, /* one or more zstd frames */
};

/* A streaming decoder: pieces of output in, source bytes out. */
struct dec {
    enum dec_kind kind;
    z_stream z;
    ZSTD_DStream *zs;
    int started;        /* some input was seen */
    int inside;         /* within a member or frame */
    unsigned char *buf; /* the decoded bytes, if kept */
    size_t len, cap;
    int keep;
    uint32_t crc; /* of every decoded byte */
    uint64_t total;
};

static void dec_init(struct dec *d, enum dec_kind kind, int keep)
{
    memset(d, 0, sizeof(*d));
    d->kind = kind;
    d->keep = keep;
    d->crc = (uint32_t)crc32(0, NULL, 0);
    if (kind == DEC_GZIP)
        ck_assert_int_eq(inflateInit2(&d->z, 15 + 16), Z_OK);
    if (kind == DEC_ZSTD)
        d->zs = ZSTD_createDStream();
}

static void dec_emit(struct dec *d, const unsigned char *p, size_t n)
{
    d->crc = (uint32_t)crc32(d->crc, p, (uInt)n);
    d->total += n;
    if (!d->keep || n == 0)
        return;
    if (d->len + n > d->cap) {
        d->cap = (d->len + n) * 2;
        d->buf = realloc(d->buf, d->cap);
        ck_assert_ptr_nonnull(d->buf);
    }
    memcpy(d->buf + d->len, p, n);
    d->len += n;
}

static void dec_gzip(struct dec *d, const unsigned char *p, size_t n)
{
    unsigned char out[65536];
    int r;

    d->z.next_in = (Bytef *)p;
    d->z.avail_in = (uInt)n;
    while (d->z.avail_in > 0) {
        d->inside = 1;
        d->z.next_out = out;
        d->z.avail_out = sizeof(out);
        r = inflate(&d->z, Z_NO_FLUSH);
        ck_assert_msg(r == Z_OK || r == Z_STREAM_END, "inflate: %d %s", r,
                      d->z.msg ? d->z.msg : "");
        dec_emit(d, out, sizeof(out) - d->z.avail_out);
        if (r == Z_STREAM_END) {
            d->inside = 0;
            ck_assert_int_eq(inflateReset(&d->z), Z_OK);
        }
    }
    /* Output held back although the input is all in. */
    do {
        d->z.next_out = out;
        d->z.avail_out = sizeof(out);
        r = inflate(&d->z, Z_NO_FLUSH);
        dec_emit(d, out, sizeof(out) - d->z.avail_out);
        if (r == Z_STREAM_END) {
            d->inside = 0;
            ck_assert_int_eq(inflateReset(&d->z), Z_OK);
        }
    } while (d->z.avail_out == 0);
}

static void dec_zstd(struct dec *d, const unsigned char *p, size_t n)
{
    unsigned char out[65536];
    ZSTD_inBuffer in = {p, n, 0};
    ZSTD_outBuffer o;
    size_t r, was;

    do {
        o = (ZSTD_outBuffer){out, sizeof(out), 0};
        was = in.pos;
        r = ZSTD_decompressStream(d->zs, &o, &in);
        ck_assert_msg(!ZSTD_isError(r), "zstd: %s", ZSTD_getErrorName(r));
        dec_emit(d, out, o.pos);
        /* 0: a frame is done and flushed (a call that moves nothing
         * after that hints at the next frame's header instead) */
        if (in.pos > was || o.pos > 0)
            d->inside = r != 0;
    } while (in.pos < in.size || o.pos == o.size);
}

static void dec_feed(struct dec *d, const void *p, size_t n)
{
    if (n > 0)
        d->started = 1;
    switch (d->kind) {
    case DEC_COPY:
        dec_emit(d, p, n);
        break;
    case DEC_GZIP:
        dec_gzip(d, p, n);
        break;
    case DEC_ZSTD:
        if (n > 0)
            dec_zstd(d, p, n);
        break;
    }
}

/* The stream is complete: no member or frame left open, and, for a
 * compressed stream, at least one (an empty file has one too). */
static void dec_end(struct dec *d)
{
    if (d->kind != DEC_COPY) {
        ck_assert_msg(d->started, "no output at all: not a valid stream");
        ck_assert_msg(!d->inside, "the stream stops inside a member/frame");
    }
    if (d->kind == DEC_GZIP)
        inflateEnd(&d->z);
    ZSTD_freeDStream(d->zs);
}

static void dec_free(struct dec *d)
{
    free(d->buf);
    d->buf = NULL;
}

/* The decoder of a transform's output, by its suffix. */
static int dec_by_suffix(const char *suffix, enum dec_kind *kind)
{
    if (strcmp(suffix, "") == 0)
        *kind = DEC_COPY;
    else if (strcmp(suffix, ".gz") == 0)
        *kind = DEC_GZIP;
    else if (strcmp(suffix, ".zst") == 0)
        *kind = DEC_ZSTD;
    else
        return -1;
    return 0;
}

/* --- subjects ------------------------------------------------------------ */

struct subject {
    char name[48];
    char group[256]; /* its group in the list "transforms" */
    char fast[256];  /* the same for the big case: level 1 if it has one */
    enum dec_kind dec;
};

static struct subject subjects[MAX_SUBJECTS];
static int n_subjects;

static void add_subject(const char *name, const char *group, const char *fast,
                        enum dec_kind dec)
{
    struct subject *s = &subjects[n_subjects++];

    snprintf(s->name, sizeof(s->name), "%s", name);
    snprintf(s->group, sizeof(s->group), "%s", group);
    snprintf(s->fast, sizeof(s->fast), "%s", fast ? fast : group);
    s->dec = dec;
}

static int has_key(const struct transform_ops *ops, const char *key)
{
    size_t i;

    for (i = 0; ops->conf && i < ops->conf->n_keys; i++)
        if (strcmp(ops->conf->keys[i].name, key) == 0)
            return 1;
    return 0;
}

/* Every transform of the table, exec twice. */
static void find_subjects(void)
{
    const struct transform_ops *ops;
    char group[256], fast[256];
    enum dec_kind dec;
    size_t i;

    for (i = 0; (ops = transform_at(i)) != NULL; i++) {
        if (strcmp(ops->name, "exec") == 0) {
            add_subject("exec cat",
                        "{ type = \"exec\"; command = [ \"cat\" ]; }", NULL,
                        DEC_COPY);
            add_subject("exec gzip",
                        "{ type = \"exec\"; command = [ \"gzip\", \"-1\", "
                        "\"-c\" ]; suffix = \".gz\"; }",
                        NULL, DEC_GZIP);
            continue;
        }
        if (dec_by_suffix(ops->suffix, &dec) < 0) {
            fprintf(stderr, "check_transform: no decoder for \"%s\"\n",
                    ops->name);
            exit(EXIT_FAILURE);
        }
        snprintf(group, sizeof(group), "{ type = \"%s\"; }", ops->name);
        snprintf(fast, sizeof(fast), "{ type = \"%s\"; level = 1; }",
                 ops->name);
        add_subject(ops->name, group, has_key(ops, "level") ? fast : NULL, dec);
    }
}

/* --- fixture ------------------------------------------------------------- */

static char *dir;
static struct conf *conf;
static const struct transform_spec *spec;
static const char *name = "chain"; /* the subject, for messages */
static unsigned char *src; /* mixed text and binary, the same each run */
#define SRC_MAX (5 * CHUNK + 1)

/* Read a configuration whose list "transforms" is group alone. */
static struct conf *load_group(const char *group)
{
    char *text = NULL, *p, err[CONF_ERR_MAX];
    struct conf *c = NULL;

    ck_assert_int_ge(asprintf(&text,
                              "source = { path = \"/up\"; };\n"
                              "target = { host = \"h\"; };\n"
                              "transforms = ( %s );\n",
                              group),
                     0);
    p = tu_write_str(dir, "sftprelay.conf", text);
    ck_assert_msg(conf_load(p, NULL, &c, err, sizeof(err)) == 0, "%s", err);
    free(p);
    free(text);
    return c;
}

static void fill_src(void)
{
    static const char *const words[] = {
        "report", "2026-11-23", "id",    "amount", "\n",
        ",",      "\"quoted\"", "lorem", "ipsum",  "\t"};
    uint32_t x = 12345;
    size_t i = 0, n;

    src = malloc(SRC_MAX);
    ck_assert_ptr_nonnull(src);
    while (i < SRC_MAX) {
        x = x * 1103515245u + 12345u;
        if ((x >> 16) % 8 == 0) { /* now and then a binary byte */
            src[i++] = (unsigned char)(x >> 8);
            continue;
        }
        n = strlen(words[(x >> 16) % 10]);
        if (n > SRC_MAX - i)
            n = SRC_MAX - i;
        memcpy(src + i, words[(x >> 16) % 10], n);
        i += n;
    }
}

static void setup(void)
{
    dir = tu_tmpdir();
    fill_src();
}

static void teardown(void)
{
    char *kill_agent = NULL, *home = NULL;
    struct stat st;

    /* A gpg test's agent goes with its folder, whatever the test's end. */
    if (asprintf(&home, "%s/gnupg", dir) >= 0 && stat(home, &st) == 0 &&
        asprintf(&kill_agent, "gpgconf --homedir '%s' --kill all", home) >= 0)
        (void)!system(kill_agent);
    free(kill_agent);
    free(home);
    conf_free(conf);
    conf = NULL;
    free(src);
    tu_rmtree(dir);
    free(dir);
}

/* Subject i of a looped test, configured (fast: for the big case). */
static const struct subject *configure(int i, int fast)
{
    const struct subject *s = &subjects[i];

    name = s->name;
    conf = load_group(fast ? s->fast : s->group);
    ck_assert_uint_eq(conf->transforms.n, 1);
    spec = &conf->transforms.steps[0];
    return s;
}

static struct transform *instance(void)
{
    struct transform *t = NULL;

    ck_assert_int_eq(spec->ops->create(spec->settings, &t), 0);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->ops->begin(t), 0);
    return t;
}

/*
 * Send src[from, to) as the engine does, a chunk a call; last is set on
 * the call that reaches end (with empty_last, a call of 0 bytes follows
 * the last full one).  Every output goes to d.
 */
static void send(struct transform *t, size_t from, size_t to, size_t end,
                 int empty_last, struct dec *d)
{
    const void *out;
    size_t n, outlen;
    int last;

    do {
        n = to - from < CHUNK ? to - from : CHUNK;
        last = from + n == end && !empty_last;
        ck_assert_msg(
            t->ops->process(t, src + from, n, last, &out, &outlen) == 0,
            "%s: process: %s", name, t->ops->error ? t->ops->error(t) : "");
        dec_feed(d, out, outlen);
        from += n;
    } while (from < to);
    if (empty_last && to == end) {
        ck_assert_int_eq(t->ops->process(t, src + to, 0, 1, &out, &outlen), 0);
        dec_feed(d, out, outlen);
    }
}

/* The decoded bytes are src[0, len). */
static void check_same(struct dec *d, size_t len)
{
    dec_end(d);
    ck_assert_msg(d->len == len, "%s: %zu bytes decoded, not %zu", name, d->len,
                  len);
    ck_assert_msg(len == 0 || memcmp(d->buf, src, len) == 0,
                  "%s: the decoded bytes differ", name);
    dec_free(d);
}

/* --- the cases ------------------------------------------------------------ */

/* Sizes around the edges: 0, 1, one chunk, one chunk and a byte, two
 * chunks then an empty last call. */
static const struct {
    size_t len;
    int empty_last;
} sizes[] = {
    {0, 0},         {1, 0},         {CHUNK - 1, 0}, {CHUNK, 0},
    {CHUNK + 1, 0}, {2 * CHUNK, 1}, {5 * CHUNK, 0},
};
#define N_SIZES (sizeof(sizes) / sizeof(sizes[0]))

START_TEST(test_sizes)
{
    const struct subject *s = configure(_i / (int)N_SIZES, 0);
    size_t len = sizes[_i % N_SIZES].len;
    struct transform *t;
    struct dec d;

    (void)s;
    t = instance();
    dec_init(&d, s->dec, 1);
    send(t, 0, len, len, sizes[_i % N_SIZES].empty_last, &d);
    check_same(&d, len);
    t->ops->destroy(t);
}
END_TEST

/* One instance sends file after file: begin() starts each afresh. */
START_TEST(test_reuse)
{
    const struct subject *s = configure(_i, 0);
    struct transform *t = instance();
    struct dec d;
    int k;

    for (k = 0; k < 3; k++) {
        if (k > 0)
            ck_assert_int_eq(t->ops->begin(t), 0);
        dec_init(&d, s->dec, 1);
        send(t, 0, (size_t)k * 1000, (size_t)k * 1000, 0, &d);
        check_same(&d, (size_t)k * 1000);
    }
    t->ops->destroy(t);
}
END_TEST

/*
 * Resume at each checkpoint: chunks 0..k from one instance, then the
 * rest from a fresh one (and from the same one after begin(), as a
 * worker does), decode to the whole source.  Only what the transform
 * declares resumable is held to it.
 */
START_TEST(test_resume)
{
    const struct subject *s = configure(_i, 0);
    size_t len = 5 * CHUNK - 77, k;
    struct transform *a, *b;
    struct dec d;
    int fresh;

    if (spec->ops->resume == TRANSFORM_RESTART)
        return;
    for (k = 1; k * CHUNK < len; k++) {
        for (fresh = 0; fresh < 2; fresh++) {
            a = instance();
            dec_init(&d, s->dec, 1);
            send(a, 0, k * CHUNK, len, 0, &d);
            if (fresh) {
                a->ops->destroy(a);
                b = instance();
            } else {
                b = a;
                ck_assert_int_eq(b->ops->begin(b), 0);
            }
            send(b, k * CHUNK, len, len, 0, &d);
            check_same(&d, len);
            b->ops->destroy(b);
        }
    }
}
END_TEST

/*
 * Past 2 GiB: 2 GiB and a chunk, mostly zeros with each chunk's number
 * in its first bytes, checked by length and CRC of the decoded stream.
 */
START_TEST(test_big)
{
    const struct subject *s = configure(_i, 1);
    const uint64_t n_chunks = (UINT64_C(2) << 30) / CHUNK + 1;
    unsigned char *buf = calloc(1, CHUNK);
    uint32_t crc = (uint32_t)crc32(0, NULL, 0);
    struct transform *t;
    const void *out;
    size_t outlen;
    uint64_t i;
    struct dec d;

    ck_assert_ptr_nonnull(buf);
    t = instance();
    dec_init(&d, s->dec, 0);
    for (i = 0; i < n_chunks; i++) {
        memcpy(buf, &i, sizeof(i));
        crc = (uint32_t)crc32(crc, buf, CHUNK);
        ck_assert_msg(t->ops->process(t, buf, CHUNK, i + 1 == n_chunks, &out,
                                      &outlen) == 0,
                      "%s: process: %s", name,
                      t->ops->error ? t->ops->error(t) : "");
        dec_feed(&d, out, outlen);
    }
    dec_end(&d);
    ck_assert_uint_eq(d.total, n_chunks * CHUNK);
    ck_assert_uint_eq(d.crc, crc);
    t->ops->destroy(t);
    free(buf);
}
END_TEST

/* --- exec ---------------------------------------------------------------- */

/*
 * Configure the groups pre (may be "") and then an exec step running
 * script, written to the scratch folder, with sh; spec is that step.
 */
static void exec_conf(const char *pre, const char *script)
{
    char *path = tu_write_str(dir, "filter.sh", script), *groups = NULL;

    ck_assert_int_ge(asprintf(&groups,
                              "%s{ type = \"exec\"; command = [ \"sh\", "
                              "\"%s\" ]; }",
                              pre, path),
                     0);
    conf = load_group(groups);
    spec = &conf->transforms.steps[conf->transforms.n - 1];
    free(groups);
    free(path);
}

static struct transform *exec_script(const char *script)
{
    exec_conf("", script);
    return instance();
}

/* Send src[0, len) a chunk a call until a call fails; returns its result. */
static int send_until_error(struct transform *t, size_t len)
{
    const void *out;
    size_t at = 0, n, outlen;
    int r;

    do {
        n = len - at < CHUNK ? len - at : CHUNK;
        r = t->ops->process(t, src + at, n, at + n == len, &out, &outlen);
        at += n;
    } while (r == 0 && at < len);
    return r;
}

static int count_fds(void)
{
    char path[64];
    int fd, n = 0;

    for (fd = 0; fd < 1024; fd++) {
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        n += access(path, F_OK) == 0;
    }
    return n;
}

/* No child is left, running or zombie. */
static void no_children(void)
{
    errno = 0;
    ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1);
    ck_assert_int_eq(errno, ECHILD);
}

/* Exits 3 after reading some input: the words name it and its stderr's
 * tail, on one line; through a chain, the step's name comes first. */
START_TEST(test_exec_fails_midway)
{
    struct transform_chain *ch = NULL;
    const void *out;
    size_t outlen, at;
    int r = 0;

    exec_conf("{ type = \"gzip\"; }, ",
              "head -c 1000 >/dev/null\n"
              "printf 'gpg: ops@example.com: skipped: No public key\\n"
              "\\tand a tab\\n' >&2\n"
              "exit 3\n");
    ck_assert_int_eq(
        transform_chain_new(conf->transforms.steps, conf->transforms.n, &ch),
        0);
    ck_assert_int_eq(transform_chain_resume(ch), TRANSFORM_RESTART);
    ck_assert_int_eq(transform_chain_begin(ch), 0);
    for (at = 0; r == 0 && at < 5 * CHUNK; at += CHUNK)
        r = transform_chain_process(ch, src + at, CHUNK,
                                    at + CHUNK == 5 * CHUNK, &out, &outlen);
    ck_assert_int_eq(r, -EIO);
    ck_assert_str_eq(transform_chain_error(ch),
                     "exec: \"sh\" exited with status 3: gpg: "
                     "ops@example.com: skipped: No public key\\n\\tand a tab");
    /* Later calls fail the same way until the next file. */
    ck_assert_int_eq(transform_chain_process(ch, src, 1, 1, &out, &outlen),
                     -EIO);
    no_children();
    ck_assert_int_eq(transform_chain_begin(ch), 0);
    ck_assert_str_eq(transform_chain_error(ch), "");
    transform_chain_free(ch);
}
END_TEST

/* Only the last 512 bytes of stderr are kept, marked as cut. */
START_TEST(test_exec_stderr_tail)
{
    struct transform *t =
        exec_script("cat >/dev/null\n"
                    "i=0; while [ $i -lt 200 ]; do echo \"line $i\" >&2; "
                    "i=$((i+1)); done\n"
                    "kill -9 $$\n");
    const char *e;

    ck_assert_int_eq(send_until_error(t, CHUNK + 1), -EIO);
    e = t->ops->error(t);
    ck_assert_msg(
        strncmp(e, "\"sh\" was killed by signal 9 (Killed): ...", 40) == 0,
        "%s", e);
    ck_assert_msg(strstr(e, "line 198\\nline 199") != NULL, "%s", e);
    ck_assert_ptr_null(strstr(e, "line 1\\n"));
    ck_assert_uint_le(strlen(e), 60 + 512 + 200);
    t->ops->destroy(t);
    no_children();
}
END_TEST

START_TEST(test_exec_timeout)
{
    struct transform *t;
    time_t start = time(NULL);

    conf = load_group("{ type = \"exec\"; command = [ \"sleep\", \"30\" ];\n"
                      "timeout = 1; }");
    spec = &conf->transforms.steps[0];
    t = instance();
    ck_assert_int_eq(send_until_error(t, 2 * CHUNK), -ETIMEDOUT);
    ck_assert_str_eq(t->ops->error(t),
                     "\"sleep\" timed out after 1 s and was killed");
    ck_assert_int_le(time(NULL) - start, 5);
    no_children();
    t->ops->destroy(t);
}
END_TEST

START_TEST(test_exec_not_found)
{
    struct transform *t;
    char want[512];

    conf =
        load_group("{ type = \"exec\"; command = [ \"no-such-filter-x\" ]; }");
    spec = &conf->transforms.steps[0];
    t = instance();
    ck_assert_int_eq(send_until_error(t, 10), -ENOENT);
    snprintf(want, sizeof(want), "\"no-such-filter-x\" not found in PATH (%s)",
             getenv("PATH"));
    ck_assert_str_eq(t->ops->error(t), want);
    t->ops->destroy(t);
}
END_TEST

/* A file abandoned midway: its child is killed and reaped, its pipes
 * closed, by begin() of the next file or by destroy(). */
START_TEST(test_exec_abandon)
{
    int fds = count_fds();
    struct transform *t;
    struct dec d;
    const void *out;
    size_t outlen;

    conf = load_group("{ type = \"exec\"; command = [ \"cat\" ]; }");
    spec = &conf->transforms.steps[0];
    t = instance();
    ck_assert_int_eq(t->ops->process(t, src, CHUNK, 0, &out, &outlen), 0);
    ck_assert_int_gt(count_fds(), fds);
    ck_assert_int_eq(t->ops->begin(t), 0);
    no_children();
    ck_assert_int_eq(count_fds(), fds);
    dec_init(&d, DEC_COPY, 1);
    send(t, 0, 3 * CHUNK, 3 * CHUNK, 0, &d);
    check_same(&d, 3 * CHUNK);
    no_children();
    ck_assert_int_eq(t->ops->process(t, src, CHUNK, 0, &out, &outlen), 0);
    t->ops->destroy(t);
    no_children();
    ck_assert_int_eq(count_fds(), fds);
}
END_TEST

/* A program that exits without reading: the write fails with EPIPE, and
 * SIGPIPE neither kills the caller nor stays pending. */
START_TEST(test_exec_sigpipe)
{
    struct transform *t;
    sigset_t pending;

    conf = load_group("{ type = \"exec\"; command = [ \"true\" ]; }");
    spec = &conf->transforms.steps[0];
    t = instance();
    ck_assert_int_eq(send_until_error(t, 5 * CHUNK), -EIO);
    ck_assert_str_eq(t->ops->error(t), "\"true\" stopped reading its input "
                                       "and exited with status 0");
    sigpending(&pending);
    ck_assert(!sigismember(&pending, SIGPIPE));
    t->ops->destroy(t);
    no_children();
}
END_TEST

/* The program's environment is PATH and env, nothing of the agent's. */
START_TEST(test_exec_env)
{
    struct transform *t;
    struct dec d;
    char want[4096];

    setenv("SFTPRELAY_SECRET", "hunter2", 1);
    conf = load_group("{ type = \"exec\"; command = [ \"env\" ];\n"
                      "env = [ \"LANG=C\", \"GNUPGHOME=/x y\" ]; }");
    spec = &conf->transforms.steps[0];
    t = instance();
    dec_init(&d, DEC_COPY, 1);
    send(t, 0, 0, 0, 0, &d);
    snprintf(want, sizeof(want), "PATH=%s\nLANG=C\nGNUPGHOME=/x y\n",
             getenv("PATH"));
    ck_assert_uint_eq(d.len, strlen(want));
    ck_assert_int_eq(memcmp(d.buf, want, d.len), 0);
    dec_free(&d);
    t->ops->destroy(t);
}
END_TEST

/* A filter that writes much before it reads anything does not deadlock. */
START_TEST(test_exec_writes_first)
{
    struct transform *t = exec_script("head -c 300000 /dev/zero\ncat\n");
    struct dec d;

    dec_init(&d, DEC_COPY, 1);
    send(t, 0, 2 * CHUNK, 2 * CHUNK, 0, &d);
    ck_assert_uint_eq(d.len, 300000 + 2 * CHUNK);
    ck_assert_int_eq(memcmp(d.buf + 300000, src, 2 * CHUNK), 0);
    dec_free(&d);
    t->ops->destroy(t);
}
END_TEST

/* Output beyond the bound within one chunk fails the file. */
START_TEST(test_exec_too_much)
{
    struct transform *t =
        exec_script("cat >/dev/null\nhead -c 20000000 /dev/zero\n");

    ck_assert_int_eq(send_until_error(t, CHUNK), -EFBIG);
    ck_assert_str_eq(t->ops->error(t),
                     "\"sh\" wrote more than 8 MiB for one chunk of input");
    t->ops->destroy(t);
    no_children();
}
END_TEST

/* gpg with its home in home and an empty passphrase, then args; returns
 * its exit status. */
static int gpg(const char *home, const char *args)
{
    char *cmd = NULL;
    int r;

    ck_assert_int_ge(asprintf(&cmd,
                              "gpg --homedir '%s' --batch --pinentry-mode "
                              "loopback --passphrase '' %s 2>/dev/null",
                              home, args),
                     0);
    r = system(cmd);
    free(cmd);
    return WIFEXITED(r) ? WEXITSTATUS(r) : -1;
}

/* The example of sftprelay.conf(5): gpg encrypts for a throwaway key,
 * and gpg --decrypt gives the source back. */
START_TEST(test_exec_gpg)
{
    char *home = NULL, *group = NULL, *enc = NULL, *args = NULL;
    struct transform *t;
    struct dec d;
    FILE *f;
    size_t len = 3 * CHUNK + 5, n;
    unsigned char *back = malloc(len + 1);

    ck_assert_int_ge(asprintf(&home, "%s/gnupg", dir), 0);
    ck_assert_int_eq(mkdir(home, 0700), 0);
    ck_assert_int_eq(gpg(home, "--quick-gen-key 'Ops <ops@example.com>' "
                               "future-default default never"),
                     0);
    ck_assert_int_ge(
        asprintf(&group,
                 "{ type = \"exec\"; command = [ \"gpg\", \"--batch\", "
                 "\"--trust-model\", \"always\", \"--encrypt\", \"-r\", "
                 "\"ops@example.com\" ];\n env = [ \"GNUPGHOME=%s\" ]; "
                 "suffix = \".gpg\"; timeout = 60; }",
                 home),
        0);
    conf = load_group(group);
    spec = &conf->transforms.steps[0];
    t = instance();
    dec_init(&d, DEC_COPY, 1);
    send(t, 0, len, len, 0, &d);
    dec_end(&d);
    enc = tu_write(dir, "report.csv.gpg", d.buf, d.len);
    ck_assert_int_ge(
        asprintf(&args, "--decrypt -o '%s/report.csv' '%s'", dir, enc), 0);
    ck_assert_int_eq(gpg(home, args), 0);
    free(args);
    t->ops->destroy(t);
    dec_free(&d);
    enc[strlen(enc) - 4] = '\0'; /* the plain file beside it */
    f = fopen(enc, "r");
    ck_assert_ptr_nonnull(f);
    n = fread(back, 1, len + 1, f);
    fclose(f);
    ck_assert_uint_eq(n, len);
    ck_assert_int_eq(memcmp(back, src, len), 0);
    free(enc);
    free(back);
    free(group);
    free(home);
}
END_TEST

/* --- the chain ----------------------------------------------------------- */

START_TEST(test_chain_name)
{
    struct transform_chain *ch = NULL;
    char out[32];

    conf = load_group("{ type = \"gzip\"; }, { type = \"identity\"; },\n"
                      "{ type = \"identity\"; suffix = \".gpg\"; },\n"
                      "{ type = \"gzip\"; suffix = \"\"; }");
    ck_assert_int_eq(
        transform_chain_new(conf->transforms.steps, conf->transforms.n, &ch),
        0);
    ck_assert_int_eq(transform_chain_name(ch, "report.csv", out, sizeof(out)),
                     0);
    ck_assert_str_eq(out, "report.csv.gz.gpg");
    /* 21 bytes and the NUL fit in 22, not in 21. */
    ck_assert_int_eq(transform_chain_name(ch, "d/report.csv", out, 22), 0);
    ck_assert_str_eq(out, "d/report.csv.gz.gpg");
    ck_assert_int_eq(transform_chain_name(ch, "dd/report.csv", out, 20),
                     -ENAMETOOLONG);
    ck_assert_int_eq(
        transform_chain_name(ch, "a-name-too-long-to-fit-at-all", out, 20),
        -ENAMETOOLONG);
    ck_assert_int_eq(transform_chain_resume(ch), TRANSFORM_CHUNKED);
    ck_assert_int_eq(transform_chain_resumable(ch), 0);
    ck_assert_str_eq(transform_chain_error(ch), "");
    transform_chain_free(ch);
}
END_TEST

START_TEST(test_chain_empty)
{
    struct transform_chain *ch = NULL;
    const void *out;
    size_t outlen;
    char rel[16];

    ck_assert_int_eq(transform_chain_new(NULL, 0, &ch), 0);
    ck_assert_int_eq(transform_chain_resume(ch), TRANSFORM_SAME);
    ck_assert_int_eq(transform_chain_resumable(ch), 1);
    ck_assert_int_eq(transform_chain_name(ch, "a.csv", rel, sizeof(rel)), 0);
    ck_assert_str_eq(rel, "a.csv");
    ck_assert_int_eq(transform_chain_begin(ch), 0);
    ck_assert_int_eq(transform_chain_process(ch, "abc", 3, 1, &out, &outlen),
                     0);
    ck_assert_uint_eq(outlen, 3);
    ck_assert_int_eq(memcmp(out, "abc", 3), 0);
    transform_chain_free(ch);
    transform_chain_free(NULL);
}
END_TEST

/* gzip then gzip: the chain feeds each step the previous one's output. */
START_TEST(test_chain_steps)
{
    struct transform_chain *ch = NULL;
    struct dec outer, inner;
    const void *out;
    size_t outlen, at;

    conf = load_group("{ type = \"gzip\"; level = 1; }, { type = \"gzip\"; }");
    ck_assert_int_eq(
        transform_chain_new(conf->transforms.steps, conf->transforms.n, &ch),
        0);
    ck_assert_int_eq(transform_chain_begin(ch), 0);
    dec_init(&outer, DEC_GZIP, 1);
    for (at = 0; at < 3 * CHUNK; at += CHUNK) {
        ck_assert_int_eq(transform_chain_process(ch, src + at, CHUNK,
                                                 at + CHUNK == 3 * CHUNK, &out,
                                                 &outlen),
                         0);
        dec_feed(&outer, out, outlen);
    }
    dec_end(&outer);
    dec_init(&inner, DEC_GZIP, 1);
    dec_feed(&inner, outer.buf, outer.len);
    check_same(&inner, 3 * CHUNK);
    dec_free(&outer);
    transform_chain_free(ch);
}
END_TEST

static Suite *transform_suite(void)
{
    Suite *s = suite_create("transform");
    TCase *tc = tcase_create("conformance");
    TCase *big = tcase_create("past 2 GiB");
    TCase *chain = tcase_create("chain");
    TCase *ex = tcase_create("exec");

    find_subjects();
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_sizes, 0, n_subjects * (int)N_SIZES);
    tcase_add_loop_test(tc, test_reuse, 0, n_subjects);
    tcase_add_loop_test(tc, test_resume, 0, n_subjects);
    suite_add_tcase(s, tc);

    tcase_add_checked_fixture(big, setup, teardown);
    tcase_set_timeout(big, 120);
    tcase_add_loop_test(big, test_big, 0, n_subjects);
    suite_add_tcase(s, big);

    tcase_add_checked_fixture(ex, setup, teardown);
    tcase_set_timeout(ex, 30);
    tcase_add_test(ex, test_exec_fails_midway);
    tcase_add_test(ex, test_exec_stderr_tail);
    tcase_add_test(ex, test_exec_timeout);
    tcase_add_test(ex, test_exec_not_found);
    tcase_add_test(ex, test_exec_abandon);
    tcase_add_test(ex, test_exec_sigpipe);
    tcase_add_test(ex, test_exec_env);
    tcase_add_test(ex, test_exec_writes_first);
    tcase_add_test(ex, test_exec_too_much);
    tcase_add_test(ex, test_exec_gpg);
    suite_add_tcase(s, ex);

    tcase_add_checked_fixture(chain, setup, teardown);
    tcase_add_test(chain, test_chain_name);
    tcase_add_test(chain, test_chain_empty);
    tcase_add_test(chain, test_chain_steps);
    suite_add_tcase(s, chain);
    return s;
}

TU_MAIN(transform_suite)
