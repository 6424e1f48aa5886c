/*
 * The SFTP client (sftpc.h) over a mock channel: a struct ssh_backend of
 * this file whose send(), recv() and wait() work on memory.  Bytes the
 * client sends wait in the mock until the client blocks in wait(); then
 * the server reads them all and its replies become recv()'s bytes.  So the
 * client fills its window before it hears anything, as on a slow link.
 *
 * Two servers answer: the embedded engine (sftpd.h) over a scratch root,
 * for the happy paths and the bytes on disk; and a script of this file,
 * which answers each request as the test wants: out of order, short,
 * oversized, with unknown ids, the wrong type, errors in the middle of a
 * window, or not at all (a closed channel, a wait that times out).
 *
 * The mock parses every packet both ways: which writes were sent and how
 * big, which were answered, so a test can check the window and the write
 * size the way a server would see them.
 */
#include "config.h"

#include <stdarg.h>
#include <stdint.h>

#include "testutil.h"
#include "sftprelay/sftpc.h"
#include "sftprelay/sftpd.h"
#include "sftprelay/sftpwire.h"
#include "sftprelay/sshchan.h"

#define MAX_WRITES 8192

/* A write the client sent, as the server saw it. */
struct wrec {
    uint32_t id;
    uint64_t off;
    size_t len;
    int answered;
};

/* A request of the client, parsed. */
struct pkt {
    uint8_t type;
    uint32_t id;
    char path[256]; /* the first string: a path, or an extension's name */
    uint64_t off;   /* WRITE, READ */
    size_t len;     /* WRITE: payload; READ: asked */
    const uint8_t *raw;
    size_t raw_len; /* with its length field */
};

struct mock;
/* The scripted server: answers (or not) one request. */
typedef void (*script_fn)(struct mock *m, const struct pkt *p);

struct mock {
    struct ssh_chan ch; /* first: the client only sees this */
    struct sftpd *engine;
    int root_fd;
    script_fn script;
    unsigned strip;     /* SFTPC_EXT_* removed from the engine's VERSION */
    unsigned offer;     /* script: SFTPC_EXT_* in VERSION */
    uint32_t version;   /* script: VERSION's number */
    uint64_t lim_write; /* script: limits@openssh.com's max-write-length */
    uint64_t lim_read;

    struct sftp_buf pend; /* sent by the client, not yet served */
    struct sftp_buf sent; /* sent by the client, not yet counted */
    struct sftp_buf in;   /* for the client */
    size_t in_pos;        /* delivered */
    size_t in_seen;       /* parsed for the counts below */
    struct sftp_buf held; /* replies held back until the client waits */

    size_t send_room;  /* most bytes waiting in pend; 0 no limit */
    size_t send_chunk; /* most bytes per send(); 0 no limit */
    size_t recv_chunk; /* most bytes per recv(); 0 no limit */
    int closed;        /* the server went away: recv -EPIPE once in is read */
    int wait_err;      /* wait() returns it */
    int closes;        /* close() calls: the client must make none */
    int stalls;        /* waits with nothing to come */

    /* what went over the channel */
    struct wrec w[MAX_WRITES];
    size_t nw, n_requests;
    uint64_t outstanding, max_outstanding; /* write payload unanswered */
    size_t inflight, max_inflight;         /* requests unanswered */
    size_t max_write_seen;
    int n_ext[8]; /* EXTENDED requests: by ext_names[] index */
    int n_rename, n_fsync_like;
    int n_type[256];
    int n_writes_script; /* the script's own count */
};

static const char *const ext_names[] = {
    "posix-rename@openssh.com", "fsync@openssh.com",    "statvfs@openssh.com",
    "limits@openssh.com",       "fstatvfs@openssh.com",
};
#define N_EXT_NAMES (sizeof(ext_names) / sizeof(ext_names[0]))
enum { X_RENAME, X_FSYNC, X_STATVFS, X_LIMITS, X_FSTATVFS };
static const char *const ext_versions[] = {"1", "1", "2", "1", "2"};

static int ext_index(const char *name)
{
    size_t i;

    for (i = 0; i < N_EXT_NAMES; i++)
        if (strcmp(name, ext_names[i]) == 0)
            return (int)i;
    return -1;
}

/* --- the mock's accounting -------------------------------------------- */

static struct wrec *find_write(struct mock *m, uint32_t id)
{
    size_t i;

    for (i = m->nw; i-- > 0;)
        if (m->w[i].id == id && !m->w[i].answered)
            return &m->w[i];
    return NULL;
}

/* Parse the request at raw (complete, length included) into p. */
static void parse_request(const uint8_t *raw, size_t n, struct pkt *p)
{
    struct sftp_cur c = {.p = raw + 4, .left = n - 4};
    const uint8_t *s;
    size_t len;

    memset(p, 0, sizeof(*p));
    p->raw = raw;
    p->raw_len = n;
    p->type = sftp_get_u8(&c);
    if (p->type != SFTP_INIT)
        p->id = sftp_get_u32(&c);
    if (p->type == SFTP_INIT || p->type == SFTP_CLOSE ||
        p->type == SFTP_FSTAT || p->type == SFTP_FSETSTAT)
        return;
    s = sftp_get_bytes(&c, &len);
    if (s && len < sizeof(p->path) && p->type != SFTP_WRITE &&
        p->type != SFTP_READ)
        memcpy(p->path, s, len);
    if (p->type == SFTP_WRITE) {
        p->off = sftp_get_u64(&c);
        s = sftp_get_bytes(&c, &p->len);
    } else if (p->type == SFTP_READ) {
        p->off = sftp_get_u64(&c);
        p->len = sftp_get_u32(&c);
    }
    ck_assert_msg(!c.bad, "request of type %u is malformed", p->type);
}

/* Count the client's packets completed by the last send(). */
static void account_requests(struct mock *m)
{
    struct pkt p;
    size_t pos = 0;
    uint32_t n;
    int x;

    while (m->sent.len - pos >= 4) {
        n = sftp_u32_at(m->sent.p + pos);
        ck_assert_uint_ge(n, 1);
        ck_assert_uint_le(n, SFTPD_MAX_PACKET);
        if (m->sent.len - pos - 4 < n)
            break;
        parse_request(m->sent.p + pos, 4 + n, &p);
        pos += 4 + n;
        m->n_type[p.type]++;
        if (p.type == SFTP_INIT)
            continue;
        m->n_requests++;
        m->inflight++;
        if (m->inflight > m->max_inflight)
            m->max_inflight = m->inflight;
        x = p.type == SFTP_EXTENDED ? ext_index(p.path) : -1;
        if (x >= 0)
            m->n_ext[x]++;
        if (p.type != SFTP_WRITE)
            continue;
        ck_assert_uint_lt(m->nw, MAX_WRITES);
        m->w[m->nw].id = p.id;
        m->w[m->nw].off = p.off;
        m->w[m->nw].len = p.len;
        m->nw++;
        if (p.len > m->max_write_seen)
            m->max_write_seen = p.len;
        m->outstanding += p.len;
        if (m->outstanding > m->max_outstanding)
            m->max_outstanding = m->outstanding;
    }
    memmove(m->sent.p, m->sent.p + pos, m->sent.len - pos);
    m->sent.len -= pos;
}

/* Count the replies recv() handed over completely. */
static void account_replies(struct mock *m)
{
    struct wrec *w;
    uint32_t n;
    uint8_t type;

    while (m->in_pos - m->in_seen >= 5) {
        n = sftp_u32_at(m->in.p + m->in_seen);
        if (n > SFTPC_MAX_PACKET || n < 5 || m->in_pos - m->in_seen - 4 < n)
            break;
        type = m->in.p[m->in_seen + 4];
        if (type != SFTP_VERSION) {
            uint32_t id = sftp_u32_at(m->in.p + m->in_seen + 5);

            if (m->inflight > 0)
                m->inflight--;
            w = find_write(m, id);
            if (w) {
                w->answered = 1;
                m->outstanding -= w->len;
            }
        }
        m->in_seen += 4 + n;
    }
}

/* --- replies ---------------------------------------------------------- */

static void append(struct sftp_buf *b, const void *p, size_t n)
{
    ck_assert_int_eq(sftp_buf_reserve(b, n), 0);
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void reply_status(struct sftp_buf *b, uint32_t id, uint32_t code,
                         const char *msg)
{
    size_t start = sftp_packet_begin(b, SFTP_STATUS, id);

    sftp_put_u32(b, code);
    sftp_put_str(b, msg);
    sftp_put_str(b, "en");
    sftp_packet_end(b, start);
    ck_assert(!b->oom);
}

static void reply_handle(struct sftp_buf *b, uint32_t id, const char *h)
{
    size_t start = sftp_packet_begin(b, SFTP_HANDLE, id);

    sftp_put_str(b, h);
    sftp_packet_end(b, start);
}

static void reply_attrs(struct sftp_buf *b, uint32_t id, uint64_t size)
{
    struct sftp_attrs a = {.flags = SFTP_ATTR_SIZE | SFTP_ATTR_PERMISSIONS,
                           .size = size,
                           .perm = 0100644};
    size_t start = sftp_packet_begin(b, SFTP_ATTRS, id);

    sftp_put_attrs(b, &a);
    sftp_packet_end(b, start);
}

static void reply_version(struct sftp_buf *b, uint32_t version, unsigned offer)
{
    static const unsigned bit[] = {SFTPC_EXT_POSIX_RENAME, SFTPC_EXT_FSYNC,
                                   SFTPC_EXT_STATVFS, SFTPC_EXT_LIMITS, 0};
    size_t start = sftp_packet_begin(b, SFTP_VERSION, 0), i;

    sftp_put_u32(b, version);
    for (i = 0; i < N_EXT_NAMES; i++)
        if (bit[i] & offer) {
            sftp_put_str(b, ext_names[i]);
            sftp_put_str(b, ext_versions[i]);
        }
    sftp_packet_end(b, start);
}

/*
 * The script's default answers: VERSION with m->offer, limits from
 * m->lim_*, a handle for OPEN, sizes for stats, OK for the rest.
 */
static void script_basic(struct mock *m, const struct pkt *p)
{
    size_t start;

    switch (p->type) {
    case SFTP_INIT:
        reply_version(&m->in, m->version, m->offer);
        break;
    case SFTP_OPEN:
        reply_handle(&m->in, p->id, "fh-1");
        break;
    case SFTP_STAT:
    case SFTP_LSTAT:
    case SFTP_FSTAT:
        reply_attrs(&m->in, p->id, 42);
        break;
    case SFTP_READ:
        reply_status(&m->in, p->id, SFTP_FX_EOF, "End of file");
        break;
    case SFTP_REALPATH:
        start = sftp_packet_begin(&m->in, SFTP_NAME, p->id);
        sftp_put_u32(&m->in, 1);
        sftp_put_str(&m->in, "/x");
        sftp_put_str(&m->in, "/x");
        sftp_put_u32(&m->in, 0);
        sftp_packet_end(&m->in, start);
        break;
    case SFTP_EXTENDED:
        if (strcmp(p->path, "limits@openssh.com") == 0) {
            start = sftp_packet_begin(&m->in, SFTP_EXTENDED_REPLY, p->id);
            sftp_put_u64(&m->in, 256 * 1024);
            sftp_put_u64(&m->in, m->lim_read);
            sftp_put_u64(&m->in, m->lim_write);
            sftp_put_u64(&m->in, 64);
            sftp_packet_end(&m->in, start);
            break;
        }
        reply_status(&m->in, p->id, SFTP_FX_OK, "Success");
        break;
    default:
        reply_status(&m->in, p->id, SFTP_FX_OK, "Success");
        break;
    }
}

/* The engine's replies; VERSION loses the extensions in m->strip. */
static int engine_send(void *arg, const void *buf, size_t len)
{
    static const unsigned bit[] = {SFTPC_EXT_POSIX_RENAME, SFTPC_EXT_FSYNC,
                                   SFTPC_EXT_STATVFS, SFTPC_EXT_LIMITS, 0};
    struct mock *m = arg;
    const uint8_t *b = buf;
    struct sftp_cur c = {.p = b + 5, .left = len - 5};
    struct sftp_buf v = {0};
    const uint8_t *name, *ver;
    size_t start, nlen, vlen, i;
    char s[64];
    int drop;

    if (m->strip == 0 || len < 9 || b[4] != SFTP_VERSION) {
        append(&m->in, buf, len);
        return 0;
    }
    start = sftp_packet_begin(&v, SFTP_VERSION, 0);
    sftp_put_u32(&v, sftp_get_u32(&c));
    while (c.left > 0) {
        name = sftp_get_bytes(&c, &nlen);
        ver = sftp_get_bytes(&c, &vlen);
        ck_assert(!c.bad && nlen < sizeof(s));
        memcpy(s, name, nlen);
        s[nlen] = '\0';
        drop = 0;
        for (i = 0; i < N_EXT_NAMES; i++)
            if (strcmp(s, ext_names[i]) == 0 && (bit[i] & m->strip))
                drop = 1;
        if (!drop) {
            sftp_put_bytes(&v, name, nlen);
            sftp_put_bytes(&v, ver, vlen);
        }
    }
    sftp_packet_end(&v, start);
    append(&m->in, v.p, v.len);
    sftp_buf_free(&v);
    return 0;
}

/*
 * The server reads what waits: the engine every byte, the script every
 * complete request.
 */
static void serve(struct mock *m)
{
    size_t pos = 0;
    uint32_t n;
    struct pkt p;

    if (m->engine) {
        if (m->pend.len > 0)
            ck_assert_int_eq(sftpd_input(m->engine, m->pend.p, m->pend.len), 0);
        m->pend.len = 0;
        return;
    }
    while (m->pend.len - pos >= 4) {
        n = sftp_u32_at(m->pend.p + pos);
        if (m->pend.len - pos - 4 < n)
            break;
        parse_request(m->pend.p + pos, 4 + n, &p);
        m->script(m, &p);
        pos += 4 + n;
    }
    memmove(m->pend.p, m->pend.p + pos, m->pend.len - pos);
    m->pend.len -= pos;
}

/* --- the channel ------------------------------------------------------ */

static ssize_t m_send(struct ssh_chan *ch, const void *buf, size_t len)
{
    struct mock *m = (struct mock *)ch;

    if (m->closed)
        return -EPIPE;
    if (m->send_room) {
        if (m->pend.len >= m->send_room)
            return 0;
        if (len > m->send_room - m->pend.len)
            len = m->send_room - m->pend.len;
    }
    if (m->send_chunk && len > m->send_chunk)
        len = m->send_chunk;
    append(&m->pend, buf, len);
    append(&m->sent, buf, len);
    account_requests(m);
    return (ssize_t)len;
}

static ssize_t m_recv(struct ssh_chan *ch, void *buf, size_t len)
{
    struct mock *m = (struct mock *)ch;
    size_t n = m->in.len - m->in_pos;

    if (n == 0)
        return m->closed ? -EPIPE : 0;
    if (n > len)
        n = len;
    if (m->recv_chunk && n > m->recv_chunk)
        n = m->recv_chunk;
    memcpy(buf, m->in.p + m->in_pos, n);
    m->in_pos += n;
    account_replies(m);
    if (m->in_pos == m->in.len && m->in_seen == m->in_pos) {
        m->in.len = 0;
        m->in_pos = 0;
        m->in_seen = 0;
    }
    return (ssize_t)n;
}

static int m_wait(struct ssh_chan *ch, int for_send)
{
    struct mock *m = (struct mock *)ch;

    if (m->wait_err)
        return m->wait_err;
    serve(m);
    if (m->in_pos == m->in.len && m->held.len > 0) {
        append(&m->in, m->held.p, m->held.len);
        m->held.len = 0;
    }
    if (m->in_pos < m->in.len || m->closed)
        return 0;
    if (for_send && (!m->send_room || m->pend.len < m->send_room))
        return 0;
    /* Nothing will ever come: a real channel would time out. */
    m->stalls++;
    snprintf(m->ch.err, sizeof(m->ch.err), "mock: timed out");
    return -ETIMEDOUT;
}

static void m_close(struct ssh_chan *ch)
{
    ((struct mock *)ch)->closes++;
}

static const struct ssh_backend mock_backend = {
    .name = "mock",
    .send = m_send,
    .recv = m_recv,
    .wait = m_wait,
    .close = m_close,
};

/* --- fixtures --------------------------------------------------------- */

static char *dir;
static struct mock *m;
static struct sftpc *c;
/* Buffers of the running test, freed by teardown() even when it fails. */
static void *scratch[4];

static struct mock *mock_new(int engine)
{
    struct mock *k = calloc(1, sizeof(*k));
    struct sftpd_opts o = {.peer = "mock", .user = "test"};
    struct sftpd_cb cb = {.send = engine_send};

    ck_assert_ptr_nonnull(k);
    k->ch.ops = &mock_backend;
    snprintf(k->ch.peer, sizeof(k->ch.peer), "mock:22");
    k->root_fd = -1;
    k->version = 3;
    k->script = script_basic;
    k->lim_write = 64 * 1024;
    k->lim_read = 64 * 1024;
    if (engine) {
        k->root_fd = open(dir, O_RDONLY | O_DIRECTORY);
        ck_assert_int_ge(k->root_fd, 0);
        o.root_fd = k->root_fd;
        cb.arg = k;
        ck_assert_int_eq(sftpd_new(&o, &cb, &k->engine), 0);
    }
    return k;
}

static void mock_free(struct mock *k)
{
    if (k == NULL)
        return;
    ck_assert_int_eq(k->closes, 0); /* the channel is the caller's */
    sftpd_free(k->engine);
    if (k->root_fd >= 0)
        close(k->root_fd);
    sftp_buf_free(&k->pend);
    sftp_buf_free(&k->sent);
    sftp_buf_free(&k->in);
    sftp_buf_free(&k->held);
    free(k);
}

static void setup_engine(void)
{
    dir = tu_tmpdir();
    m = mock_new(1);
}

static void setup_script(void)
{
    dir = tu_tmpdir();
    m = mock_new(0);
}

static void teardown(void)
{
    size_t i;

    for (i = 0; i < sizeof(scratch) / sizeof(scratch[0]); i++) {
        free(scratch[i]);
        scratch[i] = NULL;
    }
    sftpc_free(c);
    c = NULL;
    mock_free(m);
    m = NULL;
    tu_rmtree(dir);
    free(dir);
}

/* Start the client on m; the start must succeed. */
static void start_client(size_t window)
{
    struct sftpc_opts o = {.window = window};
    int r = sftpc_start(&m->ch, &o, &c);

    ck_assert_msg(r == 0, "sftpc_start: %d (%s)", r,
                  c ? sftpc_error(c) : "no client");
    ck_assert_ptr_nonnull(c);
}

/* --- helpers ---------------------------------------------------------- */

static uint8_t *random_bytes(size_t n, unsigned seed)
{
    uint8_t *p = malloc(n ? n : 1);
    uint32_t x = seed * 2654435761u + 1;
    size_t i;

    ck_assert_ptr_nonnull(p);
    for (i = 0; scratch[i] != NULL; i++)
        ck_assert_uint_lt(i + 1, sizeof(scratch) / sizeof(scratch[0]));
    scratch[i] = p;
    for (i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (uint8_t)x;
    }
    return p;
}

/* The whole of dir/name; *len its size. */
static uint8_t *slurp(const char *name, size_t *len)
{
    char *p = NULL;
    struct stat st;
    uint8_t *b;
    int fd;

    ck_assert_int_ge(asprintf(&p, "%s/%s", dir, name), 0);
    fd = open(p, O_RDONLY);
    ck_assert_msg(fd >= 0, "open %s: %s", p, strerror(errno));
    ck_assert_int_eq(fstat(fd, &st), 0);
    b = malloc((size_t)st.st_size + 1);
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(read(fd, b, (size_t)st.st_size), st.st_size);
    close(fd);
    free(p);
    *len = (size_t)st.st_size;
    return b;
}

static void assert_file(const char *name, const uint8_t *want, size_t len)
{
    size_t got_len;
    uint8_t *got = slurp(name, &got_len);

    ck_assert_uint_eq(got_len, len);
    ck_assert_msg(memcmp(got, want, len) == 0, "%s: bytes differ", name);
    free(got);
}

static int exists(const char *name, mode_t type)
{
    char *p = NULL;
    struct stat st;
    int r;

    ck_assert_int_ge(asprintf(&p, "%s/%s", dir, name), 0);
    r = lstat(p, &st) == 0 && (st.st_mode & S_IFMT) == type;
    free(p);
    return r;
}

/* sftpc_error(c) holds one of the words given (NULL-terminated). */
static void assert_error_has(const char *first, ...)
{
    const char *e = sftpc_error(c), *w;
    va_list ap;
    int found = 0;

    ck_assert_ptr_nonnull(e);
    va_start(ap, first);
    for (w = first; w && !found; w = va_arg(ap, const char *))
        found = strcasestr(e, w) != NULL;
    va_end(ap);
    ck_assert_msg(found, "error text \"%s\" lacks \"%s\"", e, first);
}

/* Write len bytes of data at off in calls of at most step bytes. */
static void write_all(struct sftpc_file *f, uint64_t off, const uint8_t *data,
                      size_t len, size_t step)
{
    size_t done, n;
    int r;

    for (done = 0; done < len; done += n) {
        n = len - done < step ? len - done : step;
        r = sftpc_write(c, f, off + done, data + done, n);
        ck_assert_msg(r == 0, "sftpc_write at %zu: %d (%s)", done, r,
                      sftpc_error(c));
    }
}

/* Upload data to name through the client; checks every step. */
static void upload(const char *name, const uint8_t *data, size_t len,
                   size_t step)
{
    struct sftpc_file *f = NULL;

    ck_assert_int_eq(sftpc_open(c, name,
                                SFTP_PF_WRITE | SFTP_PF_CREAT | SFTP_PF_TRUNC,
                                0644, &f),
                     0);
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(sftpc_acked(f), 0);
    write_all(f, 0, data, len, step);
    ck_assert_int_eq(sftpc_drain(c, f), 0);
    ck_assert_uint_eq(sftpc_acked(f), len);
    ck_assert_int_eq(sftpc_close(c, f), 0);
}

/* A read callback gathering bytes in order. */
struct sink {
    uint8_t *p;
    size_t len, cap;
    int calls;
    int fail_after; /* calls; then return fail */
    int fail;
};

static int gather(void *arg, const void *p, size_t n)
{
    struct sink *s = arg;

    ck_assert_uint_le(s->len + n, s->cap);
    memcpy(s->p + s->len, p, n);
    s->len += n;
    if (++s->calls == s->fail_after)
        return s->fail;
    return 0;
}

/* --- against the embedded engine -------------------------------------- */

START_TEST(test_start_reads_extensions_and_limits)
{
    start_client(0);
    ck_assert_uint_eq(sftpc_extensions(c),
                      SFTPC_EXT_POSIX_RENAME | SFTPC_EXT_FSYNC |
                          SFTPC_EXT_STATVFS | SFTPC_EXT_LIMITS);
    ck_assert_uint_eq(m->n_ext[X_LIMITS], 1);
    ck_assert_uint_eq(sftpc_max_write(c), SFTPD_MAX_IO);
    ck_assert_uint_eq(sftpc_max_write(c), 261120);
    ck_assert_uint_eq(sftpc_max_read(c), SFTPD_MAX_IO);
    ck_assert_int_eq(m->stalls, 0);
}
END_TEST

START_TEST(test_upload_many_mib_pipelined)
{
    size_t len = 8 * 1024 * 1024 + 12345;
    uint8_t *data = random_bytes(len, 1);
    struct sftpc_file *f = NULL;

    start_client(0);
    ck_assert_int_eq(sftpc_open(c, "big.bin",
                                SFTP_PF_WRITE | SFTP_PF_CREAT | SFTP_PF_TRUNC,
                                0644, &f),
                     0);
    write_all(f, 0, data, len, 1024 * 1024 + 7);
    ck_assert_int_eq(sftpc_fsync(c, f), 0);
    ck_assert_int_eq(sftpc_drain(c, f), 0);
    ck_assert_uint_eq(sftpc_acked(f), len);
    ck_assert_int_eq(sftpc_close(c, f), 0);
    assert_file("big.bin", data, len);
    /* pipelined: many writes in flight, every one full-sized but the
     * last of each call */
    ck_assert_uint_ge(m->max_inflight, 8);
    ck_assert_uint_le(m->max_inflight, SFTPC_MAX_INFLIGHT);
    ck_assert_uint_eq(m->max_write_seen, 261120);
    ck_assert_uint_eq(m->n_ext[X_FSYNC], 1);
    ck_assert_uint_eq(m->outstanding, 0);
    ck_assert_int_eq(m->stalls, 0);
}
END_TEST

START_TEST(test_window_honoured)
{
    size_t window = 1024 * 1024, len = 6 * 1024 * 1024 + 99;
    uint8_t *data = random_bytes(len, 2);

    start_client(window);
    upload("w.bin", data, len, 3 * 1024 * 1024);
    assert_file("w.bin", data, len);
    ck_assert_msg(m->max_outstanding <= window + sftpc_max_write(c),
                  "%llu bytes of writes in flight, window %zu",
                  (unsigned long long)m->max_outstanding, window);
    /* and the window is used, not one write at a time */
    ck_assert_uint_ge(m->max_outstanding, window / 2);
}
END_TEST

START_TEST(test_default_window_honoured)
{
    size_t len = 10 * 1024 * 1024 + 1;
    uint8_t *data = random_bytes(len, 3);

    start_client(0);
    upload("d.bin", data, len, len);
    ck_assert_uint_le(m->max_outstanding, SFTPC_WINDOW + sftpc_max_write(c));
    ck_assert_uint_ge(m->max_outstanding, SFTPC_WINDOW / 2);
    assert_file("d.bin", data, len);
}
END_TEST

/* A channel that takes a few bytes at a time and gives back fewer. */
START_TEST(test_channel_in_small_pieces)
{
    size_t len = 1024 * 1024 + 3;
    uint8_t *data = random_bytes(len, 4);
    struct sftp_attrs a;

    m->send_room = 70000;
    m->send_chunk = 4097;
    m->recv_chunk = 7;
    start_client(0);
    upload("small.bin", data, len, 100000);
    assert_file("small.bin", data, len);
    ck_assert_int_eq(sftpc_stat(c, "small.bin", &a), 0);
    ck_assert(a.flags & SFTP_ATTR_SIZE);
    ck_assert_uint_eq(a.size, len);
}
END_TEST

START_TEST(test_rename_replaces_existing)
{
    free(tu_write_str(dir, "report.csv", "old contents\n"));
    start_client(0);
    upload("report.csv.part", (const uint8_t *)"new contents\n", 13, 13);
    ck_assert_int_eq(sftpc_rename(c, "report.csv.part", "report.csv"), 0);
    assert_file("report.csv", (const uint8_t *)"new contents\n", 13);
    ck_assert(!exists("report.csv.part", S_IFREG));
    ck_assert_uint_eq(m->n_ext[X_RENAME], 1);
    ck_assert_uint_eq(m->n_type[SFTP_RENAME], 0);
}
END_TEST

/*
 * Many files opened, written, checked and renamed with their requests in
 * flight together; replies collected in another order than sent.
 */
START_TEST(test_pipelined_files)
{
    struct sftpc_file *f[3];
    struct sftp_attrs a;
    uint32_t open_id[3], stat_id[3], ren_id[3], miss;
    char tmp[32], fin[32];
    int i;

    start_client(0);
    for (i = 0; i < 3; i++) {
        snprintf(tmp, sizeof(tmp), "f%d.part", i);
        ck_assert_int_eq(sftpc_open_send(c, tmp,
                                         SFTP_PF_WRITE | SFTP_PF_CREAT |
                                             SFTP_PF_TRUNC,
                                         0644, &open_id[i]),
                         0);
    }
    ck_assert_int_eq(sftpc_stat_send(c, "no/such", &miss), 0);
    for (i = 2; i >= 0; i--) {
        snprintf(tmp, sizeof(tmp), "f%d.part", i);
        ck_assert_int_eq(sftpc_open_recv(c, open_id[i], &f[i]), 0);
        ck_assert_int_eq(sftpc_write(c, f[i], 0, tmp, strlen(tmp)), 0);
        ck_assert_int_eq(sftpc_close_send(c, f[i]), 0);
        ck_assert_int_eq(sftpc_stat_send(c, tmp, &stat_id[i]), 0);
    }
    ck_assert_int_eq(sftpc_stat_recv(c, miss, &a), -ENOENT);
    for (i = 0; i < 3; i++) {
        snprintf(tmp, sizeof(tmp), "f%d.part", i);
        snprintf(fin, sizeof(fin), "f%d", i);
        ck_assert_int_eq(sftpc_stat_recv(c, stat_id[i], &a), 0);
        ck_assert_uint_eq(a.size, strlen(tmp));
        ck_assert_int_eq(sftpc_close(c, f[i]), 0);
        ck_assert_int_eq(sftpc_rename_send(c, tmp, fin, &ren_id[i]), 0);
    }
    /* One reply not wanted: dropped, its slot free again. */
    sftpc_forget(c, ren_id[1]);
    ck_assert_int_eq(sftpc_status_recv(c, ren_id[2], "rename"), 0);
    ck_assert_int_eq(sftpc_status_recv(c, ren_id[0], "rename"), 0);
    for (i = 0; i < 3; i++) {
        snprintf(tmp, sizeof(tmp), "f%d.part", i);
        snprintf(fin, sizeof(fin), "f%d", i);
        assert_file(fin, (const uint8_t *)tmp, strlen(tmp));
    }
}
END_TEST

START_TEST(test_mkdir_stat_remove)
{
    struct sftp_attrs a;

    free(tu_write_str(dir, "f", "12345"));
    start_client(0);
    ck_assert_int_eq(sftpc_mkdir(c, "incoming", 0750), 0);
    ck_assert(exists("incoming", S_IFDIR));
    ck_assert_int_eq(sftpc_mkdir(c, "incoming", 0750), -EIO); /* FAILURE */
    ck_assert_int_eq(sftpc_stat(c, "incoming", &a), 0);
    ck_assert(a.flags & SFTP_ATTR_PERMISSIONS);
    ck_assert(S_ISDIR(a.perm));
    ck_assert_int_eq(sftpc_stat(c, "f", &a), 0);
    ck_assert_uint_eq(a.size, 5);
    ck_assert_int_eq(sftpc_stat(c, "missing", &a), -ENOENT);
    assert_error_has("No such file", NULL);
    ck_assert_int_eq(sftpc_remove(c, "f"), 0);
    ck_assert(!exists("f", S_IFREG));
    ck_assert_int_eq(sftpc_remove(c, "f"), -ENOENT);
    /* an error of the server's leaves the session working */
    ck_assert_int_eq(sftpc_stat(c, "incoming", &a), 0);
}
END_TEST

START_TEST(test_lstat_sees_the_link)
{
    char *l = NULL;
    struct sftp_attrs a;

    free(tu_write_str(dir, "f", "12345"));
    ck_assert_int_ge(asprintf(&l, "%s/l", dir), 0);
    ck_assert_int_eq(symlink("f", l), 0);
    free(l);
    start_client(0);
    ck_assert_int_eq(sftpc_lstat(c, "l", &a), 0);
    ck_assert(a.flags & SFTP_ATTR_PERMISSIONS);
    ck_assert(S_ISLNK(a.perm));
    ck_assert_int_eq(sftpc_lstat(c, "f", &a), 0);
    ck_assert(S_ISREG(a.perm));
    ck_assert_uint_eq(a.size, 5);
    ck_assert_int_eq(sftpc_lstat(c, "missing", &a), -ENOENT);
}
END_TEST

START_TEST(test_open_missing_folder)
{
    struct sftpc_file *f = NULL;

    start_client(0);
    ck_assert_int_eq(
        sftpc_open(c, "nowhere/f", SFTP_PF_WRITE | SFTP_PF_CREAT, 0644, &f),
        -ENOENT);
    assert_error_has("No such file", NULL);
}
END_TEST

START_TEST(test_read_back_in_order)
{
    size_t len = 1024 * 1024 + 777;
    uint8_t *data = random_bytes(len, 5);
    struct sink s = {.cap = len + 4096};
    struct sftpc_file *f = NULL;

    s.p = random_bytes(s.cap, 0);
    free(tu_write(dir, "r.bin", data, len));
    start_client(0);
    ck_assert_int_eq(sftpc_open(c, "r.bin", SFTP_PF_READ, 0, &f), 0);
    ck_assert_int_eq(sftpc_read(c, f, 0, len, gather, &s), 0);
    ck_assert_uint_eq(s.len, len);
    ck_assert(memcmp(s.p, data, len) == 0);
    ck_assert_uint_ge(m->max_inflight, 2); /* many reads in flight */

    /* from the middle */
    s.len = 0;
    ck_assert_int_eq(sftpc_read(c, f, 1000, 300000, gather, &s), 0);
    ck_assert_uint_eq(s.len, 300000);
    ck_assert(memcmp(s.p, data + 1000, 300000) == 0);

    /* past the end: what there is, then -ENODATA */
    s.len = 0;
    ck_assert_int_eq(sftpc_read(c, f, len - 5000, 10000, gather, &s), -ENODATA);
    ck_assert_uint_eq(s.len, 5000);
    ck_assert(memcmp(s.p, data + len - 5000, 5000) == 0);
    ck_assert_int_eq(sftpc_close(c, f), 0);
}
END_TEST

START_TEST(test_read_stopped_by_callback)
{
    size_t len = 2 * 1024 * 1024;
    uint8_t *data = random_bytes(len, 6);
    struct sink s = {.cap = len, .fail_after = 1, .fail = -EINTR};
    struct sftpc_file *f = NULL;
    struct sftp_attrs a;

    s.p = random_bytes(s.cap, 0);
    free(tu_write(dir, "r.bin", data, len));
    start_client(0);
    ck_assert_int_eq(sftpc_open(c, "r.bin", SFTP_PF_READ, 0, &f), 0);
    ck_assert_int_eq(sftpc_read(c, f, 0, len, gather, &s), -EINTR);
    ck_assert_int_eq(s.calls, 1);
    ck_assert(memcmp(s.p, data, s.len) == 0);
    sftpc_close(c, f);
    /* the reads still in flight were gathered: the session goes on */
    ck_assert_int_eq(sftpc_stat(c, "r.bin", &a), 0);
    ck_assert_uint_eq(a.size, len);
}
END_TEST

START_TEST(test_without_limits_default_write)
{
    size_t len = 1024 * 1024 + 100, i;
    uint8_t *data = random_bytes(len, 7);

    m->strip = SFTPC_EXT_LIMITS;
    start_client(0);
    ck_assert_uint_eq(sftpc_extensions(c) & SFTPC_EXT_LIMITS, 0);
    ck_assert(sftpc_extensions(c) & SFTPC_EXT_POSIX_RENAME);
    ck_assert_uint_eq(sftpc_max_write(c), SFTPC_DEFAULT_WRITE);
    ck_assert_uint_eq(sftpc_max_write(c), 32768);
    ck_assert_int_eq(m->n_ext[X_LIMITS], 0); /* not asked: not offered */
    upload("n.bin", data, len, len);
    assert_file("n.bin", data, len);
    ck_assert_uint_eq(m->max_write_seen, 32768);
    for (i = 0; i < m->nw; i++)
        ck_assert_uint_le(m->w[i].len, 32768);
    ck_assert_uint_eq(m->nw, (len + 32767) / 32768);
}
END_TEST

START_TEST(test_without_extensions)
{
    struct sftpc_file *f = NULL;
    uint64_t avail = 1;

    m->strip = SFTPC_EXT_POSIX_RENAME | SFTPC_EXT_FSYNC | SFTPC_EXT_STATVFS |
               SFTPC_EXT_LIMITS;
    free(tu_write_str(dir, "taken", "keep me"));
    start_client(0);
    ck_assert_uint_eq(sftpc_extensions(c), 0);
    ck_assert_int_eq(
        sftpc_open(c, "a", SFTP_PF_WRITE | SFTP_PF_CREAT, 0644, &f), 0);
    ck_assert_int_eq(sftpc_write(c, f, 0, "abc", 3), 0);
    ck_assert_int_eq(sftpc_fsync(c, f), -EOPNOTSUPP);
    ck_assert_int_eq(m->n_ext[X_FSYNC], 0);
    ck_assert_int_eq(sftpc_close(c, f), 0); /* fsync's refusal is not f's */
    ck_assert_int_eq(sftpc_statvfs(c, ".", &avail), -EOPNOTSUPP);
    /* plain RENAME: refuses to replace, renames to a new name */
    ck_assert_int_eq(sftpc_rename(c, "a", "taken"), -EIO);
    assert_file("taken", (const uint8_t *)"keep me", 7);
    ck_assert_int_eq(sftpc_rename(c, "a", "b"), 0);
    assert_file("b", (const uint8_t *)"abc", 3);
    ck_assert_int_eq(m->n_ext[X_RENAME], 0);
    ck_assert_int_eq(m->n_type[SFTP_RENAME], 2);
}
END_TEST

START_TEST(test_fsetstat_fstat_realpath_statvfs)
{
    struct sftp_attrs a = {.flags = SFTP_ATTR_PERMISSIONS, .perm = 0600};
    struct sftpc_file *f = NULL;
    char *real = NULL, *p = NULL;
    uint64_t avail = 0;
    struct stat st;

    start_client(0);
    ck_assert_int_eq(sftpc_mkdir(c, "d", 0755), 0);
    ck_assert_int_eq(
        sftpc_open(c, "d/f", SFTP_PF_WRITE | SFTP_PF_CREAT, 0644, &f), 0);
    ck_assert_int_eq(sftpc_write(c, f, 0, "hello", 5), 0);
    ck_assert_int_eq(sftpc_fsetstat(c, f, &a), 0);
    ck_assert_int_eq(sftpc_drain(c, f), 0);
    memset(&a, 0, sizeof(a));
    ck_assert_int_eq(sftpc_fstat(c, f, &a), 0);
    ck_assert_uint_eq(a.size, 5);
    ck_assert_uint_eq(a.perm & 07777, 0600);
    ck_assert_int_eq(sftpc_close(c, f), 0);
    ck_assert_int_ge(asprintf(&p, "%s/d/f", dir), 0);
    ck_assert_int_eq(stat(p, &st), 0);
    ck_assert_uint_eq(st.st_mode & 07777, 0600);

    ck_assert_int_eq(sftpc_realpath(c, "d/../d/f", &real), 0);
    ck_assert_str_eq(real, "/d/f");
    ck_assert_int_eq(sftpc_statvfs(c, "d", &avail), 0);
    ck_assert_uint_gt(avail, 0);
    free(real);
    free(p);
}
END_TEST

/* Resuming: the highwater is an offset in the file, from the first write. */
START_TEST(test_acked_from_resume_offset)
{
    size_t len = 150000;
    uint8_t *data = random_bytes(len, 8);
    struct sftpc_file *f = NULL;

    free(tu_write(dir, "part", data, 100000));
    start_client(0);
    ck_assert_int_eq(sftpc_open(c, "part", SFTP_PF_WRITE, 0644, &f), 0);
    ck_assert_uint_eq(sftpc_acked(f), 0);
    write_all(f, 100000, data + 100000, len - 100000, 20000);
    ck_assert_int_eq(sftpc_drain(c, f), 0);
    ck_assert_uint_eq(sftpc_acked(f), len);
    ck_assert_int_eq(sftpc_close(c, f), 0);
    assert_file("part", data, len);
}
END_TEST

/*
 * Many small writes, as a sink writing 4 KiB buffers makes them: the
 * highwater follows the acks, never goes back, and ends at the end.
 */
START_TEST(test_acked_after_many_small_writes)
{
    static const size_t counts[] = {511, 512, 1024, 1500};
    size_t n = counts[_i], i, len = n * 4096;
    uint8_t *data = random_bytes(len, 14);
    struct sftpc_file *f = NULL;
    uint64_t last = 0, now;

    start_client(0);
    ck_assert_int_eq(
        sftpc_open(c, "many", SFTP_PF_WRITE | SFTP_PF_CREAT, 0644, &f), 0);
    for (i = 0; i < n; i++) {
        ck_assert_int_eq(sftpc_write(c, f, i * 4096, data + i * 4096, 4096), 0);
        now = sftpc_acked(f);
        ck_assert_uint_ge(now, last);
        ck_assert_uint_le(now, (i + 1) * 4096);
        last = now;
    }
    ck_assert_int_eq(sftpc_drain(c, f), 0);
    ck_assert_msg(sftpc_acked(f) == len,
                  "%zu writes of 4096 bytes, all acknowledged: acked %llu, "
                  "expected %zu",
                  n, (unsigned long long)sftpc_acked(f), len);
    ck_assert_int_eq(sftpc_close(c, f), 0);
    assert_file("many", data, len);
}
END_TEST

/* Freeing the client frees its open files (ASan sees any leak). */
START_TEST(test_free_with_files_open)
{
    struct sftpc_file *f = NULL, *g = NULL;

    start_client(0);
    ck_assert_int_eq(
        sftpc_open(c, "x", SFTP_PF_WRITE | SFTP_PF_CREAT, 0644, &f), 0);
    ck_assert_int_eq(
        sftpc_open(c, "y", SFTP_PF_WRITE | SFTP_PF_CREAT, 0644, &g), 0);
    ck_assert_int_eq(sftpc_write(c, f, 0, "data", 4), 0);
    ck_assert_int_eq(sftpc_close(c, g), 0);
    sftpc_free(c);
    c = NULL;
}
END_TEST

/* --- against a scripted server ---------------------------------------- */

static struct sftpc_file *open_script(void)
{
    struct sftpc_file *f = NULL;

    ck_assert_int_eq(
        sftpc_open(c, "f", SFTP_PF_WRITE | SFTP_PF_CREAT, 0644, &f), 0);
    ck_assert_ptr_nonnull(f);
    return f;
}

/* Start against script, open a file and queue a write of 3 bytes on it. */
static struct sftpc_file *start_and_write(script_fn script)
{
    struct sftpc_file *f;

    m->script = script;
    start_client(0);
    f = open_script();
    ck_assert_int_eq(sftpc_write(c, f, 0, "abc", 3), 0);
    return f;
}

/* Writes answered 3, 1, 5, 4 at once; 2 only when the client waits. */
static void script_out_of_order(struct mock *k, const struct pkt *p)
{
    static uint32_t ids[5];

    if (p->type != SFTP_WRITE) {
        script_basic(k, p);
        return;
    }
    ids[k->n_writes_script++] = p->id;
    if (k->n_writes_script < 5)
        return;
    reply_status(&k->in, ids[2], SFTP_FX_OK, "Success");
    reply_status(&k->in, ids[0], SFTP_FX_OK, "Success");
    reply_status(&k->in, ids[4], SFTP_FX_OK, "Success");
    reply_status(&k->in, ids[3], SFTP_FX_OK, "Success");
    reply_status(&k->held, ids[1], SFTP_FX_OK, "Success");
}

START_TEST(test_out_of_order_acks)
{
    uint8_t *data = random_bytes(5000, 9);
    struct sftpc_file *f;
    struct sftp_attrs a;
    int i;

    m->script = script_out_of_order;
    start_client(0);
    f = open_script();
    for (i = 0; i < 5; i++)
        ck_assert_int_eq(
            sftpc_write(c, f, (uint64_t)i * 1000, data + i * 1000, 1000), 0);
    /* a stat's reply comes after those of writes 3, 1, 5, 4 */
    ck_assert_int_eq(sftpc_stat(c, "other", &a), 0);
    ck_assert_uint_eq(m->nw, 5);
    ck_assert_uint_eq(sftpc_acked(f), 1000); /* 2 missing: stops at 1's end */
    ck_assert_int_eq(sftpc_drain(c, f), 0);
    ck_assert_uint_eq(sftpc_acked(f), 5000);
    ck_assert_int_eq(sftpc_close(c, f), 0);
}
END_TEST

/* Write 3 of 8 fails; the others succeed. */
static void script_disk_full(struct mock *k, const struct pkt *p)
{
    if (p->type != SFTP_WRITE) {
        script_basic(k, p);
        return;
    }
    if (++k->n_writes_script == 3)
        reply_status(&k->in, p->id, SFTP_FX_FAILURE, "disk full");
    else
        reply_status(&k->in, p->id, SFTP_FX_OK, "Success");
}

START_TEST(test_status_error_mid_window)
{
    size_t len = 8 * 32768;
    uint8_t *data = random_bytes(len, 10);
    struct sftpc_file *f;

    m->script = script_disk_full;
    start_client(0);
    ck_assert_uint_eq(sftpc_max_write(c), SFTPC_DEFAULT_WRITE);
    f = open_script();
    ck_assert_int_eq(sftpc_write(c, f, 0, data, len), 0);
    ck_assert_uint_eq(m->nw, 8); /* all queued before any answer */
    ck_assert_int_eq(sftpc_drain(c, f), -EIO);
    ck_assert_int_eq(m->n_writes_script, 8);
    ck_assert_uint_eq(m->outstanding, 0); /* 4..8 were answered */
    ck_assert_uint_eq(sftpc_acked(f), 2 * 32768);
    assert_error_has("disk full", NULL);
    /* the error stays on the file */
    ck_assert_int_eq(sftpc_write(c, f, len, data, 10), -EIO);
    ck_assert_int_eq(sftpc_drain(c, f), -EIO);
    ck_assert_uint_eq(sftpc_acked(f), 2 * 32768);
    ck_assert_int_eq(sftpc_close(c, f), -EIO);
    /* and only there: the session goes on */
    ck_assert_int_eq(sftpc_mkdir(c, "d", 0755), 0);
}
END_TEST

/* Without drain: close reports the first failure of the file. */
static void script_denied(struct mock *k, const struct pkt *p)
{
    if (p->type == SFTP_WRITE && ++k->n_writes_script == 2)
        reply_status(&k->in, p->id, SFTP_FX_PERMISSION_DENIED, "quota");
    else if (p->type == SFTP_WRITE && k->n_writes_script == 3)
        reply_status(&k->in, p->id, SFTP_FX_FAILURE, "later failure");
    else
        script_basic(k, p);
}

START_TEST(test_close_returns_first_error)
{
    uint8_t *data = random_bytes(4 * 32768, 11);
    struct sftpc_file *f;

    m->script = script_denied;
    start_client(0);
    f = open_script();
    ck_assert_int_eq(sftpc_write(c, f, 0, data, 4 * 32768), 0);
    ck_assert_int_eq(sftpc_close(c, f), -EACCES);
    assert_error_has("quota", NULL);
}
END_TEST

/* Writes 1 and 2 answered, then the channel closes. */
static void script_hang_up(struct mock *k, const struct pkt *p)
{
    if (k->closed)
        return;
    if (p->type != SFTP_WRITE) {
        script_basic(k, p);
        return;
    }
    reply_status(&k->in, p->id, SFTP_FX_OK, "Success");
    if (++k->n_writes_script == 2)
        k->closed = 1;
}

START_TEST(test_channel_closed_mid_window)
{
    uint8_t *data = random_bytes(8 * 32768, 12);
    struct sftpc_file *f, *g = NULL;
    struct sftp_attrs a;

    m->script = script_hang_up;
    start_client(0);
    f = open_script();
    ck_assert_int_eq(sftpc_write(c, f, 0, data, 8 * 32768), 0);
    ck_assert_int_eq(sftpc_drain(c, f), -ECONNRESET);
    ck_assert_uint_eq(sftpc_acked(f), 2 * 32768);
    /* dead: every later call says so */
    ck_assert_int_eq(sftpc_write(c, f, 0, data, 10), -ECONNRESET);
    ck_assert_int_eq(sftpc_stat(c, "x", &a), -ECONNRESET);
    ck_assert_int_eq(sftpc_open(c, "g", SFTP_PF_READ, 0, &g), -ECONNRESET);
    ck_assert_int_eq(sftpc_close(c, f), -ECONNRESET);
    ck_assert_int_eq(sftpc_mkdir(c, "d", 0755), -ECONNRESET);
    ck_assert_int_eq(m->stalls, 0);
}
END_TEST

/* After the channel ends, every call returns -ECONNRESET. */
START_TEST(test_dead_client_every_call)
{
    uint8_t *data = random_bytes(4 * 32768, 15);
    struct sftp_attrs a = {.flags = SFTP_ATTR_PERMISSIONS, .perm = 0600};
    struct sftpc_file *f, *g = NULL;
    struct sink s = {.cap = 16};
    uint64_t avail;
    char *real = NULL;
    uint8_t buf[16];

    s.p = buf;
    m->script = script_hang_up;
    m->offer = SFTPC_EXT_POSIX_RENAME | SFTPC_EXT_FSYNC | SFTPC_EXT_STATVFS;
    start_client(0);
    f = open_script();
    ck_assert_int_eq(sftpc_write(c, f, 0, data, 4 * 32768), 0);
    ck_assert_int_eq(sftpc_drain(c, f), -ECONNRESET);
    ck_assert_int_eq(sftpc_realpath(c, ".", &real), -ECONNRESET);
    ck_assert_int_eq(sftpc_stat(c, "x", &a), -ECONNRESET);
    ck_assert_int_eq(sftpc_mkdir(c, "x", 0755), -ECONNRESET);
    ck_assert_int_eq(sftpc_remove(c, "x"), -ECONNRESET);
    ck_assert_int_eq(sftpc_rename(c, "x", "y"), -ECONNRESET);
    ck_assert_int_eq(sftpc_statvfs(c, "x", &avail), -ECONNRESET);
    ck_assert_int_eq(sftpc_open(c, "g", SFTP_PF_READ, 0, &g), -ECONNRESET);
    ck_assert_int_eq(sftpc_fstat(c, f, &a), -ECONNRESET);
    ck_assert_int_eq(sftpc_write(c, f, 0, data, 1), -ECONNRESET);
    ck_assert_int_eq(sftpc_fsetstat(c, f, &a), -ECONNRESET);
    ck_assert_int_eq(sftpc_fsync(c, f), -ECONNRESET);
    ck_assert_int_eq(sftpc_read(c, f, 0, 10, gather, &s), -ECONNRESET);
    ck_assert_int_eq(sftpc_drain(c, f), -ECONNRESET);
    ck_assert_int_eq(s.calls, 0);
    /* even a write of nothing */
    ck_assert_int_eq(sftpc_write(c, f, 0, data, 0), -ECONNRESET);
    ck_assert_int_eq(sftpc_close(c, f), -ECONNRESET);
}
END_TEST

/* The channel ends in the middle of a reply. */
static void script_cut_reply(struct mock *k, const struct pkt *p)
{
    struct sftp_buf b = {0};

    if (p->type != SFTP_STAT) {
        script_basic(k, p);
        return;
    }
    reply_attrs(&b, p->id, 42);
    append(&k->in, b.p, b.len - 3);
    k->closed = 1;
    sftp_buf_free(&b);
}

START_TEST(test_channel_closed_inside_reply)
{
    struct sftp_attrs a;

    m->script = script_cut_reply;
    start_client(0);
    ck_assert_int_eq(sftpc_stat(c, "x", &a), -ECONNRESET);
    ck_assert_int_eq(sftpc_stat(c, "x", &a), -ECONNRESET);
}
END_TEST

static int short_kind;

/* STATUS replies cut inside: in the code, or a message past the end. */
static void script_short(struct mock *k, const struct pkt *p)
{
    uint8_t b[64];
    size_t n = 0;

    if (p->type != SFTP_WRITE && p->type != SFTP_STAT) {
        script_basic(k, p);
        return;
    }
    memset(b, 0, sizeof(b));
    b[4] = SFTP_STATUS;
    b[5] = (uint8_t)(p->id >> 24);
    b[6] = (uint8_t)(p->id >> 16);
    b[7] = (uint8_t)(p->id >> 8);
    b[8] = (uint8_t)p->id;
    if (short_kind == 0) {
        n = 11; /* type, id, two bytes of the code */
    } else if (short_kind == 1) {
        b[12] = SFTP_FX_FAILURE; /* then a message of 200 bytes, 4 given */
        b[15] = 200;
        memcpy(b + 17, "oops", 4);
        n = 21;
    } else {
        n = 5; /* type, then half an id */
    }
    b[3] = (uint8_t)(n - 4);
    append(&k->in, b, n);
}

START_TEST(test_short_replies)
{
    struct sftpc_file *f;
    struct sftp_attrs a;

    short_kind = _i;
    f = start_and_write(script_short);
    ck_assert_int_eq(sftpc_drain(c, f), -EPROTO);
    assert_error_has("short", "truncat", "malformed", NULL);
    ck_assert_uint_eq(sftpc_acked(f), 0);
    ck_assert_int_eq(sftpc_stat(c, "x", &a), -EPROTO);
    ck_assert_int_eq(sftpc_close(c, f), -EPROTO);
}
END_TEST

START_TEST(test_short_reply_to_stat)
{
    struct sftp_attrs a;

    m->script = script_short;
    short_kind = _i;
    start_client(0);
    ck_assert_int_eq(sftpc_stat(c, "x", &a), -EPROTO);
    assert_error_has("short", "truncat", "malformed", NULL);
    ck_assert_int_eq(sftpc_mkdir(c, "x", 0755), -EPROTO);
}
END_TEST

static uint32_t bad_len;

/* A reply announcing bad_len bytes, of which a few come. */
static void script_oversized(struct mock *k, const struct pkt *p)
{
    uint8_t b[32] = {0};

    if (p->type != SFTP_STAT) {
        script_basic(k, p);
        return;
    }
    b[0] = (uint8_t)(bad_len >> 24);
    b[1] = (uint8_t)(bad_len >> 16);
    b[2] = (uint8_t)(bad_len >> 8);
    b[3] = (uint8_t)bad_len;
    b[4] = SFTP_ATTRS;
    b[5] = (uint8_t)(p->id >> 24);
    b[6] = (uint8_t)(p->id >> 16);
    b[7] = (uint8_t)(p->id >> 8);
    b[8] = (uint8_t)p->id;
    append(&k->in, b, sizeof(b));
}

START_TEST(test_oversized_reply)
{
    static const uint32_t lens[] = {SFTPC_MAX_PACKET + 1, 0x7fffffffu,
                                    0xffffffffu, 0};
    struct sftp_attrs a;

    m->script = script_oversized;
    bad_len = lens[_i];
    start_client(0);
    /* decided on the length alone: no waiting for the rest */
    ck_assert_int_eq(sftpc_stat(c, "x", &a), -EPROTO);
    ck_assert_int_eq(m->stalls, 0);
    ck_assert_int_eq(sftpc_stat(c, "x", &a), -EPROTO);
}
END_TEST

/* Replies to ids nobody asked for. */
static void script_unknown_id(struct mock *k, const struct pkt *p)
{
    if (p->type == SFTP_STAT)
        reply_attrs(&k->in, 999, 1);
    else if (p->type == SFTP_WRITE)
        reply_status(&k->in, p->id + 1000, SFTP_FX_OK, "Success");
    else
        script_basic(k, p);
}

START_TEST(test_unknown_id_stat)
{
    struct sftp_attrs a;

    m->script = script_unknown_id;
    start_client(0);
    ck_assert_int_eq(sftpc_stat(c, "x", &a), -EPROTO);
    assert_error_has("unknown id 999", NULL);
    ck_assert_int_eq(sftpc_mkdir(c, "d", 0755), -EPROTO);
}
END_TEST

/* A second reply to one pipelined stat: the session ends (-EPROTO). */
static void script_twice(struct mock *k, const struct pkt *p)
{
    script_basic(k, p);
    if (p->type == SFTP_STAT)
        reply_attrs(&k->in, p->id, 7);
}

START_TEST(test_duplicate_reply)
{
    struct sftp_attrs a;
    uint32_t one, two;

    m->script = script_twice;
    start_client(0);
    ck_assert_int_eq(sftpc_stat_send(c, "x", &one), 0);
    ck_assert_int_eq(sftpc_stat_send(c, "y", &two), 0);
    ck_assert_int_eq(sftpc_stat_recv(c, two, &a), -EPROTO);
    assert_error_has("second reply", NULL);
    ck_assert_int_eq(sftpc_dead(c), -EPROTO);
}
END_TEST

/* VERSION too short to hold its version number. */
static void script_short_version(struct mock *k, const struct pkt *p)
{
    static const uint8_t b[] = {0, 0, 0, 3, SFTP_VERSION, 0, 0};

    if (p->type == SFTP_INIT)
        append(&k->in, b, sizeof(b));
    else
        script_basic(k, p);
}

START_TEST(test_short_version)
{
    struct sftpc_opts o = {0};

    m->script = script_short_version;
    ck_assert_int_eq(sftpc_start(&m->ch, &o, &c), -EPROTO);
    assert_error_has("short", NULL);
}
END_TEST

START_TEST(test_unknown_id_write)
{
    struct sftpc_file *f;

    f = start_and_write(script_unknown_id);
    ck_assert_int_eq(sftpc_drain(c, f), -EPROTO);
    assert_error_has("unknown id", NULL);
    ck_assert_uint_eq(sftpc_acked(f), 0);
    ck_assert_int_eq(sftpc_close(c, f), -EPROTO);
}
END_TEST

/* A reply of the wrong type: HANDLE for a WRITE, DATA for a STAT. */
static void script_wrong_type(struct mock *k, const struct pkt *p)
{
    size_t start;

    if (p->type == SFTP_WRITE) {
        reply_handle(&k->in, p->id, "fh-2");
    } else if (p->type == SFTP_STAT) {
        start = sftp_packet_begin(&k->in, SFTP_DATA, p->id);
        sftp_put_str(&k->in, "data");
        sftp_packet_end(&k->in, start);
    } else {
        script_basic(k, p);
    }
}

START_TEST(test_wrong_reply_type_write)
{
    struct sftpc_file *f;
    struct sftp_attrs a;

    f = start_and_write(script_wrong_type);
    ck_assert_int_eq(sftpc_drain(c, f), -EPROTO);
    ck_assert_uint_eq(sftpc_acked(f), 0);
    ck_assert_int_eq(sftpc_close(c, f), -EPROTO);
    ck_assert_int_eq(sftpc_stat(c, "x", &a), -EPROTO);
}
END_TEST

START_TEST(test_wrong_reply_type_stat)
{
    struct sftp_attrs a;

    m->script = script_wrong_type;
    start_client(0);
    ck_assert_int_eq(sftpc_stat(c, "x", &a), -EPROTO);
    ck_assert_int_eq(sftpc_mkdir(c, "x", 0755), -EPROTO);
}
END_TEST

/* The server's status codes, mapped as sftpc.h says, the session alive. */
static uint32_t stat_code;

static void script_stat_code(struct mock *k, const struct pkt *p)
{
    if (p->type == SFTP_STAT)
        reply_status(&k->in, p->id, stat_code, "the server's words");
    else
        script_basic(k, p);
}

START_TEST(test_status_codes_mapped)
{
    static const struct {
        uint32_t code;
        int err;
    } map[] = {
        {SFTP_FX_NO_SUCH_FILE, -ENOENT},
        {SFTP_FX_PERMISSION_DENIED, -EACCES},
        {SFTP_FX_FAILURE, -EIO},
        {SFTP_FX_OP_UNSUPPORTED, -EOPNOTSUPP},
    };
    struct sftp_attrs a;
    size_t i;

    m->script = script_stat_code;
    start_client(0);
    for (i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        stat_code = map[i].code;
        ck_assert_int_eq(sftpc_stat(c, "x", &a), map[i].err);
        assert_error_has("the server's words", NULL);
        ck_assert_int_eq(sftpc_mkdir(c, "d", 0755), 0);
    }
}
END_TEST

START_TEST(test_version_not_3)
{
    static const uint32_t versions[] = {2, 4, 6};
    struct sftpc_opts o = {0};

    m->version = versions[_i];
    ck_assert_int_eq(sftpc_start(&m->ch, &o, &c), -EPROTO);
    ck_assert_ptr_nonnull(c);
    assert_error_has("version", NULL);
}
END_TEST

START_TEST(test_limits_bounded)
{
    size_t i;

    m->offer = SFTPC_EXT_LIMITS;
    m->lim_write = 4 * 1024 * 1024;
    m->lim_read = 4 * 1024 * 1024;
    start_client(0);
    ck_assert_uint_eq(sftpc_max_write(c), SFTPC_MAX_WRITE);
    ck_assert_uint_eq(sftpc_max_read(c), SFTPC_MAX_WRITE);
    sftpc_free(c);
    c = NULL;

    /* a small limit is kept, and writes are cut to it */
    mock_free(m);
    m = mock_new(0);
    m->offer = SFTPC_EXT_LIMITS;
    m->lim_write = 1000;
    start_client(0);
    ck_assert_uint_eq(sftpc_max_write(c), 1000);
    {
        uint8_t *data = random_bytes(2500, 13);
        struct sftpc_file *f = open_script();

        ck_assert_int_eq(sftpc_write(c, f, 7, data, 2500), 0);
        ck_assert_int_eq(sftpc_drain(c, f), 0);
        ck_assert_uint_eq(sftpc_acked(f), 2507);
        ck_assert_int_eq(sftpc_close(c, f), 0);
        ck_assert_uint_eq(m->nw, 3);
        for (i = 0; i < 3; i++) {
            ck_assert_uint_eq(m->w[i].off, 7 + 1000 * i);
            ck_assert_uint_eq(m->w[i].len, i < 2 ? 1000 : 500);
        }
    }
}
END_TEST

/* A script that never answers what matters, and a wait that gives up. */
static void script_silent(struct mock *k, const struct pkt *p)
{
    if (p->type == SFTP_INIT || p->type == SFTP_OPEN)
        script_basic(k, p);
}

START_TEST(test_wait_errors_propagate)
{
    static const int errs[] = {-ETIMEDOUT, -ECANCELED};
    struct sftpc_file *f;
    struct sftp_attrs a;

    f = start_and_write(script_silent);
    m->wait_err = errs[_i];
    ck_assert_int_eq(sftpc_stat(c, "x", &a), errs[_i]);
    ck_assert_int_eq(sftpc_drain(c, f), errs[_i]);
    ck_assert_uint_eq(sftpc_acked(f), 0);
}
END_TEST

START_TEST(test_wait_error_in_start)
{
    static const int errs[] = {-ETIMEDOUT, -ECANCELED};
    struct sftpc_opts o = {0};

    m->wait_err = errs[_i];
    ck_assert_int_eq(sftpc_start(&m->ch, &o, &c), errs[_i]);
    ck_assert_ptr_nonnull(c);
}
END_TEST

static size_t extra_data;

/* READ answered with extra_data bytes more than it asked. */
static void script_long_data(struct mock *k, const struct pkt *p)
{
    size_t start, n = p->len + extra_data;
    uint8_t *b;

    if (p->type != SFTP_READ) {
        script_basic(k, p);
        return;
    }
    b = calloc(1, n);
    ck_assert_ptr_nonnull(b);
    start = sftp_packet_begin(&k->in, SFTP_DATA, p->id);
    sftp_put_bytes(&k->in, b, n);
    sftp_packet_end(&k->in, start);
    free(b);
}

/* A hostile server cannot make a read hand over more than was asked. */
START_TEST(test_read_no_more_than_asked)
{
    static const size_t extras[] = {1, 4096};
    struct sink s = {.cap = 100};
    struct sftpc_file *f = NULL;

    s.p = random_bytes(s.cap, 0);
    m->script = script_long_data;
    extra_data = extras[_i];
    start_client(0);
    ck_assert_int_eq(sftpc_open(c, "r.bin", SFTP_PF_READ, 0, &f), 0);
    ck_assert_int_eq(sftpc_read(c, f, 0, s.cap, gather, &s), -EPROTO);
    ck_assert_uint_eq(s.len, 0);
    assert_error_has("malformed DATA", NULL);
    ck_assert_int_eq(sftpc_dead(c), -EPROTO);
}
END_TEST

/* off + len past 2^64: refused before anything is sent. */
START_TEST(test_read_past_2_64)
{
    struct sink s = {.cap = 1};
    struct sftpc_file *f = NULL;

    s.p = random_bytes(s.cap, 0);
    start_client(0);
    ck_assert_int_eq(sftpc_open(c, "r.bin", SFTP_PF_READ, 0, &f), 0);
    ck_assert_int_eq(sftpc_read(c, f, 10, UINT64_MAX, gather, &s), -EINVAL);
    ck_assert_int_eq(m->n_type[SFTP_READ], 0);
    ck_assert_int_eq(sftpc_dead(c), 0);
    ck_assert_int_eq(sftpc_close(c, f), 0);
}
END_TEST

static Suite *sftpc_suite(void)
{
    Suite *s = suite_create("sftpc");
    TCase *e = tcase_create("engine"), *h = tcase_create("scripted");

    tcase_add_checked_fixture(e, setup_engine, teardown);
    tcase_add_test(e, test_start_reads_extensions_and_limits);
    tcase_add_test(e, test_upload_many_mib_pipelined);
    tcase_add_test(e, test_window_honoured);
    tcase_add_test(e, test_default_window_honoured);
    tcase_add_test(e, test_channel_in_small_pieces);
    tcase_add_test(e, test_rename_replaces_existing);
    tcase_add_test(e, test_pipelined_files);
    tcase_add_test(e, test_mkdir_stat_remove);
    tcase_add_test(e, test_lstat_sees_the_link);
    tcase_add_test(e, test_open_missing_folder);
    tcase_add_test(e, test_read_back_in_order);
    tcase_add_test(e, test_read_stopped_by_callback);
    tcase_add_test(e, test_without_limits_default_write);
    tcase_add_test(e, test_without_extensions);
    tcase_add_test(e, test_fsetstat_fstat_realpath_statvfs);
    tcase_add_test(e, test_acked_from_resume_offset);
    tcase_add_loop_test(e, test_acked_after_many_small_writes, 0, 4);
    tcase_add_test(e, test_free_with_files_open);
    suite_add_tcase(s, e);

    tcase_add_checked_fixture(h, setup_script, teardown);
    tcase_add_test(h, test_out_of_order_acks);
    tcase_add_test(h, test_status_error_mid_window);
    tcase_add_test(h, test_close_returns_first_error);
    tcase_add_test(h, test_channel_closed_mid_window);
    tcase_add_test(h, test_dead_client_every_call);
    tcase_add_test(h, test_channel_closed_inside_reply);
    tcase_add_loop_test(h, test_short_replies, 0, 3);
    tcase_add_loop_test(h, test_short_reply_to_stat, 0, 3);
    tcase_add_loop_test(h, test_oversized_reply, 0, 4);
    tcase_add_test(h, test_unknown_id_stat);
    tcase_add_test(h, test_duplicate_reply);
    tcase_add_test(h, test_short_version);
    tcase_add_test(h, test_unknown_id_write);
    tcase_add_test(h, test_wrong_reply_type_write);
    tcase_add_test(h, test_wrong_reply_type_stat);
    tcase_add_test(h, test_status_codes_mapped);
    tcase_add_loop_test(h, test_version_not_3, 0, 3);
    tcase_add_test(h, test_limits_bounded);
    tcase_add_loop_test(h, test_wait_errors_propagate, 0, 2);
    tcase_add_loop_test(h, test_wait_error_in_start, 0, 2);
    tcase_add_loop_test(h, test_read_no_more_than_asked, 0, 2);
    tcase_add_test(h, test_read_past_2_64);
    suite_add_tcase(s, h);
    return s;
}

TU_MAIN(sftpc_suite)
