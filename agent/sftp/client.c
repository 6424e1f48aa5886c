/*
 * The SFTP v3 client (sftpc.h).
 *
 * One thread drives a client.  Every request gets an id and a slot in
 * c->slot[id % SFTPC_MAX_INFLIGHT] until its reply arrives; replies are
 * matched by id, in whatever order they come.  Requests whose reply is
 * wanted (open, stat, ...) keep it in their slot until it is collected,
 * so many can be in flight (the _send() and _recv() pairs); requests
 * queued on a file
 * (write, fsetstat, fsync, close) record their outcome on the file.  The
 * writes of a file also sit in the file's ring, in the order they were
 * sent, so that the acknowledged highwater only passes a write once every
 * write before it is answered too.
 *
 * Nothing blocks but pump(): it hands queued bytes to the channel, takes
 * what arrived, and when neither moved waits on the channel.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sftprelay/sftpc.h"
#include "sftprelay/sshchan.h"

#define MAX_HANDLE 256           /* the draft's bound on a handle's length */
#define READ_AHEAD 16            /* reads in flight in sftpc_read() */
#define OUT_HIGH (64 * 1024)     /* unsent bytes before sftpc_write() waits */
#define RECV_STEP (16 * 1024)    /* bytes asked of the channel at a time */

enum kind {
    K_FREE,
    K_WAITED, /* its reply stays in the slot until collected */
    K_DROP,   /* its reply is not wanted */
    K_FILE,   /* a queued request on a file: STATUS expected */
    K_WRITE,  /* likewise, and an entry of the file's ring */
    K_READ,   /* an entry of the running sftpc_read() */
};

struct slot {
    enum kind kind;
    uint32_t id;
    struct sftpc_file *f;
    uint32_t ring; /* K_WRITE: index in f->ring; K_READ: in c->rd */
    uint32_t len;  /* K_WRITE: payload bytes */
    int done;      /* K_WAITED: the reply is in rtype and rbuf */
    uint8_t rtype;
    struct sftp_buf rbuf;
};

struct wr {
    uint64_t end; /* offset after the write */
    int done;
};

/* A file's writes in flight: one more entry than there can be writes, so
 * that a full ring is not taken for an empty one. */
#define RING (SFTPC_MAX_INFLIGHT + 1)

struct sftpc_file {
    struct sftpc_file *next;
    uint8_t handle[MAX_HANDLE];
    size_t handle_len;
    int queued;     /* requests on it not yet answered */
    int closing;    /* CLOSE was sent */
    int err;        /* the first error of a queued request */
    char errmsg[256];
    int started;    /* a write was sent: acked counts from its offset */
    uint64_t acked; /* the highwater */
    struct wr ring[RING];
    uint32_t head, tail; /* ring[head..tail) in flight, modulo RING */
};

/* One read of sftpc_read(): sent, then answered. */
struct rd {
    uint64_t off;
    uint32_t len;
    int state; /* 0 sent, 1 answered */
    int err;
    uint8_t *data;
    size_t n;
};

struct sftpc {
    struct ssh_chan *ch;
    size_t window;
    unsigned ext;
    size_t max_write, max_read;
    int dead;       /* the error that ended the session, or 0 */
    char err[SFTPC_ERR_MAX];
    struct sftp_buf out;
    size_t out_sent; /* bytes of out the channel took */
    struct sftp_buf in;
    uint32_t next_id;
    int inflight;         /* slots in use */
    size_t inflight_bytes; /* write payload not yet answered */
    struct slot slot[SFTPC_MAX_INFLIGHT];
    /* the reply last collected */
    uint8_t reply_type;
    struct sftp_buf reply;
    struct sftpc_file *files;
    /* the running sftpc_read() */
    struct rd rd[READ_AHEAD];
    uint32_t rd_head, rd_tail;
};

/* --- errors ----------------------------------------------------------- */

static int say(struct sftpc *c, int r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int say(struct sftpc *c, int r, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(c->err, sizeof(c->err), fmt, ap);
    va_end(ap);
    return r;
}

/* End the session with r; every later call returns it. */
static int die(struct sftpc *c, int r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int die(struct sftpc *c, int r, const char *fmt, ...)
{
    va_list ap;

    if (c->dead)
        return c->dead;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof(c->err), fmt, ap);
    va_end(ap);
    c->dead = r;
    return r;
}

/* A STATUS code as an errno: the one place this is decided. */
static int status_errno(uint32_t code)
{
    switch (code) {
    case SFTP_FX_OK:
        return 0;
    case SFTP_FX_EOF:
        return -ENODATA;
    case SFTP_FX_NO_SUCH_FILE:
        return -ENOENT;
    case SFTP_FX_PERMISSION_DENIED:
        return -EACCES;
    case SFTP_FX_BAD_MESSAGE:
        return -EBADMSG;
    case SFTP_FX_NO_CONNECTION:
    case SFTP_FX_CONNECTION_LOST:
        return -ECONNRESET;
    case SFTP_FX_OP_UNSUPPORTED:
        return -EOPNOTSUPP;
    default:
        return -EIO; /* SSH_FX_FAILURE: the server says no more */
    }
}

/* A STATUS payload (after the id): its errno, and its words in msg. */
static int parse_status(struct sftp_cur *cur, char *msg, size_t len, int *bad)
{
    uint32_t code = sftp_get_u32(cur);
    size_t n = 0;
    const uint8_t *p = sftp_get_bytes(cur, &n);

    /* The language tag is optional in practice: do not require it. */
    *bad = cur->bad;
    if (n >= len)
        n = len - 1;
    if (p)
        memcpy(msg, p, n);
    msg[p ? n : 0] = '\0';
    if (!p || n == 0)
        snprintf(msg, len, "%s", strerror(-status_errno(code)));
    return status_errno(code);
}

/* --- sending ---------------------------------------------------------- */

/* Hand queued bytes to the channel: 1 if some moved, 0, or an error. */
static int flush(struct sftpc *c)
{
    int moved = 0;
    ssize_t n;

    while (c->out_sent < c->out.len) {
        n = c->ch->ops->send(c->ch, c->out.p + c->out_sent,
                             c->out.len - c->out_sent);
        if (n < 0)
            return die(c, (int)n, "%s", c->ch->err[0] ? c->ch->err
                                                      : strerror((int)-n));
        if (n == 0)
            break;
        c->out_sent += (size_t)n;
        moved = 1;
    }
    /* Move what is left to the front once more than half was sent, so
     * that a steady stream does not grow the buffer for ever. */
    if (c->out_sent == c->out.len) {
        c->out.len = c->out_sent = 0;
    } else if (c->out_sent >= c->out.len / 2) {
        memmove(c->out.p, c->out.p + c->out_sent, c->out.len - c->out_sent);
        c->out.len -= c->out_sent;
        c->out_sent = 0;
    }
    return moved;
}

/* --- receiving -------------------------------------------------------- */

static struct slot *slot_of(struct sftpc *c, uint32_t id)
{
    struct slot *s = &c->slot[id % SFTPC_MAX_INFLIGHT];

    return s->kind != K_FREE && s->id == id ? s : NULL;
}

static void slot_free(struct sftpc *c, struct slot *s)
{
    s->kind = K_FREE;
    s->f = NULL;
    s->done = 0;
    c->inflight--;
}

/* Record err (with msg) as f's first error. */
static void file_fail(struct sftpc_file *f, int err, const char *msg)
{
    if (f->err)
        return;
    f->err = err;
    snprintf(f->errmsg, sizeof(f->errmsg), "%s", msg);
}

/* A write of f answered: move the highwater over what is done in order. */
static void write_done(struct sftpc_file *f, uint32_t i, int ok)
{
    f->ring[i].done = ok ? 1 : -1;
    while (f->head != f->tail && f->ring[f->head].done == 1) {
        f->acked = f->ring[f->head].end;
        f->head = (f->head + 1) % RING;
    }
}

static int on_reply(struct sftpc *c, uint8_t type, uint32_t id,
                    struct sftp_cur *cur)
{
    struct slot *s = slot_of(c, id);
    char msg[256];
    int r, bad;

    if (s == NULL)
        return die(c, -EPROTO, "server: reply (type %u) with unknown id %u",
                   (unsigned)type, (unsigned)id);
    switch (s->kind) {
    case K_WAITED:
        if (s->done)
            return die(c, -EPROTO, "server: a second reply with id %u",
                       (unsigned)id);
        s->rbuf.len = 0;
        s->rbuf.oom = 0;
        if (cur->left > 0) {
            if (sftp_buf_reserve(&s->rbuf, cur->left) < 0)
                return die(c, -ENOMEM, "out of memory");
            memcpy(s->rbuf.p, cur->p, cur->left);
            s->rbuf.len = cur->left;
        }
        s->rtype = type;
        s->done = 1;
        return 0; /* the slot is freed when the reply is collected */
    case K_READ: {
        struct rd *d = &c->rd[s->ring];
        size_t n = 0;
        const uint8_t *p;

        if (type == SFTP_DATA) {
            p = sftp_get_bytes(cur, &n);
            if (p == NULL || n > d->len)
                return die(c, -EPROTO,
                           "server: malformed DATA reply to a read");
            d->data = malloc(n ? n : 1);
            if (d->data == NULL)
                return die(c, -ENOMEM, "out of memory");
            memcpy(d->data, p, n);
            d->n = n;
        } else if (type == SFTP_STATUS) {
            d->err = parse_status(cur, msg, sizeof(msg), &bad);
            if (bad)
                return die(c, -EPROTO, "server: truncated STATUS reply");
            if (d->err == 0)
                return die(c, -EPROTO, "server: OK status for a read");
            if (d->err != -ENODATA)
                say(c, d->err, "server: %s", msg);
        } else {
            return die(c, -EPROTO, "server: reply of type %u to a read",
                       (unsigned)type);
        }
        d->state = 1;
        break;
    }
    case K_FILE:
    case K_WRITE:
        if (type != SFTP_STATUS)
            return die(c, -EPROTO, "server: reply of type %u where a STATUS "
                       "was due (id %u)",
                       (unsigned)type, (unsigned)id);
        r = parse_status(cur, msg, sizeof(msg), &bad);
        if (bad)
            return die(c, -EPROTO, "server: truncated STATUS reply (id %u)",
                       (unsigned)id);
        if (r < 0)
            file_fail(s->f, r, msg);
        if (s->kind == K_WRITE) {
            write_done(s->f, s->ring, r == 0);
            c->inflight_bytes -= s->len;
        }
        s->f->queued--;
        break;
    default:
        break;
    }
    slot_free(c, s);
    return 0;
}

/* Every complete packet in c->in: 0 or the error that ended the session. */
static int parse_input(struct sftpc *c)
{
    size_t off = 0, plen;
    struct sftp_cur cur;
    uint8_t type;
    uint32_t id;
    int r = 0;

    while (c->in.len - off >= 4 && r == 0) {
        plen = sftp_u32_at(c->in.p + off);
        if (plen > SFTPC_MAX_PACKET)
            return die(c, -EPROTO,
                       "server: reply of %zu bytes (limit %d)", plen,
                       SFTPC_MAX_PACKET);
        if (plen < 5)
            return die(c, -EPROTO, "server: reply of %zu bytes, too short",
                       plen);
        if (c->in.len - off < 4 + plen)
            break;
        cur.p = c->in.p + off + 4;
        cur.left = plen;
        cur.bad = 0;
        type = sftp_get_u8(&cur);
        id = sftp_get_u32(&cur);
        if (cur.bad)
            return die(c, -EPROTO, "server: reply of type %u, too short",
                       (unsigned)type);
        if (type == SFTP_VERSION) {
            /* Only as the answer to INIT, which is waited for alone. */
            struct slot *s = slot_of(c, 0);

            if (s == NULL || s->kind != K_WAITED)
                return die(c, -EPROTO, "server: unexpected VERSION");
            cur.p -= 4; /* the version, where the id would be */
            cur.left += 4;
            r = on_reply(c, type, 0, &cur);
        } else {
            r = on_reply(c, type, id, &cur);
        }
        off += 4 + plen;
    }
    if (off > 0) {
        memmove(c->in.p, c->in.p + off, c->in.len - off);
        c->in.len -= off;
    }
    return r;
}

/* Take what arrived: 1 if some did, 0, or an error. */
static int receive(struct sftpc *c)
{
    int moved = 0, r;
    ssize_t n;

    for (;;) {
        if (sftp_buf_reserve(&c->in, RECV_STEP) < 0)
            return die(c, -ENOMEM, "out of memory");
        n = c->ch->ops->recv(c->ch, c->in.p + c->in.len, RECV_STEP);
        if (n == -EPIPE)
            return die(c, -ECONNRESET, "%s: the server closed the SFTP "
                       "channel",
                       c->ch->peer);
        if (n < 0)
            return die(c, (int)n, "%s", c->ch->err[0] ? c->ch->err
                                                      : strerror((int)-n));
        if (n == 0)
            return moved;
        c->in.len += (size_t)n;
        moved = 1;
        r = parse_input(c);
        if (r < 0)
            return r;
    }
}

/* Move bytes both ways; wait on the channel if nothing moved. */
static int pump(struct sftpc *c)
{
    int a, b, r;

    if (c->dead)
        return c->dead;
    a = flush(c);
    if (a < 0)
        return a;
    b = receive(c);
    if (b < 0)
        return b;
    if (a || b)
        return 0;
    r = c->ch->ops->wait(c->ch, c->out.len > c->out_sent);
    if (r < 0)
        return die(c, r, "%s", c->ch->err[0] ? c->ch->err : strerror(-r));
    return 0;
}

/* --- requests ----------------------------------------------------------- */

/* A free slot for a new request (waiting while all are taken). */
static int new_slot(struct sftpc *c, enum kind kind, struct slot **out)
{
    struct slot *s;
    int r;

    for (;;) {
        if (c->dead)
            return c->dead;
        if (c->next_id == 0) /* 0 is INIT's, set by sftpc_start() */
            c->next_id = 1;
        s = &c->slot[c->next_id % SFTPC_MAX_INFLIGHT];
        if (s->kind == K_FREE)
            break;
        r = pump(c);
        if (r < 0)
            return r;
    }
    s->kind = kind;
    s->id = c->next_id++;
    s->f = NULL;
    c->inflight++;
    *out = s;
    return 0;
}

/* Send the packet begun at start; the slot waits for its reply. */
static int send_packet(struct sftpc *c, size_t start)
{
    sftp_packet_end(&c->out, start);
    if (c->out.oom)
        return die(c, -ENOMEM, "out of memory");
    return flush(c) < 0 ? c->dead : 0;
}

/*
 * Wait for the reply of request id: its type in c->reply_type, its
 * payload in c->reply.  The slot is freed either way.
 */
static int await(struct sftpc *c, uint32_t id)
{
    struct slot *s = slot_of(c, id);
    struct sftp_buf t;
    int r;

    if (s == NULL || s->kind != K_WAITED)
        return c->dead ? c->dead : -EINVAL;
    while (!s->done) {
        r = pump(c);
        /* A reply that came with the channel's end still counts. */
        if (r < 0 && !s->done) {
            slot_free(c, s);
            return r;
        }
    }
    /* The reply moves to c->reply; slots keep no memory between replies
     * (512 of them would hold 2 MiB). */
    t = c->reply;
    c->reply = s->rbuf;
    s->rbuf = (struct sftp_buf){0};
    sftp_buf_free(&t);
    c->reply_type = s->rtype;
    slot_free(c, s);
    return 0;
}

/* A request whose reply is wanted: begin it; finish with finish_call(). */
static int begin_call(struct sftpc *c, uint8_t type, size_t *start,
                      uint32_t *id)
{
    struct slot *s;
    int r = new_slot(c, K_WAITED, &s);

    if (r < 0)
        return r;
    *id = s->id;
    *start = sftp_packet_begin(&c->out, type, s->id);
    return 0;
}

/*
 * Collect the reply of request id: 0 with a reply of type want in *cur,
 * the errno of a STATUS, or -EPROTO.
 */
static int recv_call(struct sftpc *c, uint32_t id, uint8_t want,
                     const char *what, struct sftp_cur *cur)
{
    char msg[256];
    int r, bad;

    r = await(c, id);
    if (r < 0)
        return r;
    cur->p = c->reply.p;
    cur->left = c->reply.len;
    cur->bad = 0;
    if (c->reply_type == SFTP_STATUS) {
        r = parse_status(cur, msg, sizeof(msg), &bad);
        if (bad)
            return die(c, -EPROTO, "server: truncated STATUS reply to %s",
                       what);
        if (r < 0 || want == SFTP_STATUS) {
            if (r < 0)
                say(c, r, "server: %s: %s", what, msg);
            return r;
        }
        return die(c, -EPROTO, "server: OK status where %s needed a reply",
                   what);
    }
    if (c->reply_type != want)
        return die(c, -EPROTO, "server: reply of type %u to %s",
                   (unsigned)c->reply_type, what);
    return 0;
}

/* Send the request begun at start (id) and collect its reply. */
static int finish_call(struct sftpc *c, size_t start, uint32_t id,
                       uint8_t want, const char *what, struct sftp_cur *cur)
{
    int r = send_packet(c, start);

    return r < 0 ? r : recv_call(c, id, want, what, cur);
}

void sftpc_forget(struct sftpc *c, uint32_t id)
{
    struct slot *s = slot_of(c, id);

    if (s == NULL || s->kind != K_WAITED)
        return;
    if (s->done)
        slot_free(c, s);
    else
        s->kind = K_DROP;
}

/* A request with one path (and attributes a, if not NULL) whose answer
 * is a STATUS. */
static int path_call(struct sftpc *c, uint8_t type, const char *path,
                     const struct sftp_attrs *a, const char *what)
{
    struct sftp_cur cur;
    size_t start;
    uint32_t id;
    int r = begin_call(c, type, &start, &id);

    if (r < 0)
        return r;
    sftp_put_str(&c->out, path);
    if (a)
        sftp_put_attrs(&c->out, a);
    return finish_call(c, start, id, SFTP_STATUS, what, &cur);
}

/* An EXTENDED request named name, begun; its fields follow. */
static int begin_ext(struct sftpc *c, const char *name, size_t *start,
                     uint32_t *id)
{
    int r = begin_call(c, SFTP_EXTENDED, start, id);

    if (r == 0)
        sftp_put_str(&c->out, name);
    return r;
}

/* --- start ------------------------------------------------------------- */

static void on_extension(struct sftpc *c, const uint8_t *name, size_t n)
{
    static const struct {
        const char *name;
        unsigned bit;
    } known[] = {
        {"posix-rename@openssh.com", SFTPC_EXT_POSIX_RENAME},
        {"fsync@openssh.com", SFTPC_EXT_FSYNC},
        {"statvfs@openssh.com", SFTPC_EXT_STATVFS},
        {"limits@openssh.com", SFTPC_EXT_LIMITS},
    };
    size_t i;

    for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (strlen(known[i].name) == n && memcmp(known[i].name, name, n) == 0)
            c->ext |= known[i].bit;
}

/* limits@openssh.com: the server's largest read and write payloads. */
static int ask_limits(struct sftpc *c)
{
    struct sftp_cur cur;
    uint64_t max_packet, max_read, max_write;
    size_t start;
    uint32_t id;
    int r = begin_ext(c, "limits@openssh.com", &start, &id);

    if (r == 0)
        r = finish_call(c, start, id, SFTP_EXTENDED_REPLY, "limits", &cur);
    if (r < 0)
        return r == -EOPNOTSUPP || r == -EIO ? 0 : r;
    max_packet = sftp_get_u64(&cur);
    max_read = sftp_get_u64(&cur);
    max_write = sftp_get_u64(&cur);
    if (cur.bad)
        return die(c, -EPROTO, "server: malformed limits@openssh.com reply");
    /* As OpenSSH's client: a zero means "no limit" of that kind. */
    if (max_write == 0 && max_packet > 1024)
        max_write = max_packet - 1024;
    if (max_read == 0 && max_packet > 1024)
        max_read = max_packet - 1024;
    if (max_write > 0)
        c->max_write = max_write < SFTPC_MAX_WRITE ? (size_t)max_write
                                                   : SFTPC_MAX_WRITE;
    if (max_read > 0)
        c->max_read = max_read < SFTPC_MAX_WRITE ? (size_t)max_read
                                                 : SFTPC_MAX_WRITE;
    return 0;
}

int sftpc_start(struct ssh_chan *ch, const struct sftpc_opts *o,
                struct sftpc **out)
{
    struct sftpc *c = calloc(1, sizeof(*c));
    struct sftp_cur cur;
    uint32_t version;
    const uint8_t *name;
    size_t start, n, dn;
    int r;

    *out = c;
    if (c == NULL)
        return -ENOMEM;
    c->ch = ch;
    c->window = o && o->window ? o->window : SFTPC_WINDOW;
    c->max_write = c->max_read = SFTPC_DEFAULT_WRITE;
    /* INIT has no id; its slot is 0's. */
    c->slot[0].kind = K_WAITED;
    c->slot[0].id = 0;
    c->inflight = 1;
    c->next_id = 1;
    start = sftp_packet_begin(&c->out, SFTP_INIT, 0);
    sftp_put_u32(&c->out, SFTP_VERSION_3);
    r = send_packet(c, start);
    if (r == 0)
        r = await(c, 0);
    if (r < 0)
        return r;
    if (c->reply_type != SFTP_VERSION)
        return die(c, -EPROTO, "server: answered INIT with type %u",
                   (unsigned)c->reply_type);
    cur.p = c->reply.p;
    cur.left = c->reply.len;
    cur.bad = 0;
    version = sftp_get_u32(&cur);
    if (cur.bad)
        return die(c, -EPROTO, "server: malformed VERSION");
    if (version != SFTP_VERSION_3)
        return die(c, -EPROTO, "server speaks SFTP version %u; this client "
                   "speaks version 3",
                   (unsigned)version);
    while (cur.left > 0 && !cur.bad) {
        name = sftp_get_bytes(&cur, &n);
        sftp_get_bytes(&cur, &dn);
        if (!cur.bad)
            on_extension(c, name, n);
    }
    if (cur.bad)
        return die(c, -EPROTO, "server: malformed extension in VERSION");
    if (c->ext & SFTPC_EXT_LIMITS)
        return ask_limits(c);
    return 0;
}

void sftpc_free(struct sftpc *c)
{
    struct sftpc_file *f, *next;
    uint32_t i;

    if (c == NULL)
        return;
    for (f = c->files; f; f = next) {
        next = f->next;
        free(f);
    }
    for (i = 0; i < READ_AHEAD; i++)
        free(c->rd[i].data);
    for (i = 0; i < SFTPC_MAX_INFLIGHT; i++)
        sftp_buf_free(&c->slot[i].rbuf);
    sftp_buf_free(&c->out);
    sftp_buf_free(&c->in);
    sftp_buf_free(&c->reply);
    free(c);
}

const char *sftpc_error(const struct sftpc *c)
{
    return c->err;
}

int sftpc_dead(const struct sftpc *c)
{
    return c->dead;
}

int sftpc_poll(struct sftpc *c)
{
    if (!c->dead && flush(c) >= 0)
        receive(c);
    return c->dead;
}

unsigned sftpc_extensions(const struct sftpc *c)
{
    return c->ext;
}

size_t sftpc_max_write(const struct sftpc *c)
{
    return c->max_write;
}

size_t sftpc_max_read(const struct sftpc *c)
{
    return c->max_read;
}

/* --- paths ------------------------------------------------------------- */

int sftpc_realpath(struct sftpc *c, const char *path, char **out)
{
    struct sftp_cur cur;
    const uint8_t *p;
    size_t start, n;
    uint32_t id;
    int r = begin_call(c, SFTP_REALPATH, &start, &id);

    *out = NULL;
    if (r < 0)
        return r;
    sftp_put_str(&c->out, path);
    r = finish_call(c, start, id, SFTP_NAME, "resolving a path", &cur);
    if (r < 0)
        return r;
    p = sftp_get_u32(&cur) == 1 ? sftp_get_bytes(&cur, &n) : NULL;
    if (p == NULL || memchr(p, '\0', n) != NULL)
        return die(c, -EPROTO, "server: malformed REALPATH reply");
    *out = strndup((const char *)p, n);
    return *out ? 0 : -ENOMEM;
}

/* A STAT or LSTAT of path, sent. */
static int attrs_send(struct sftpc *c, uint8_t type, const char *path,
                      uint32_t *id)
{
    size_t start;
    int r = begin_call(c, type, &start, id);

    if (r < 0)
        return r;
    sftp_put_str(&c->out, path);
    return send_packet(c, start);
}

int sftpc_stat_send(struct sftpc *c, const char *path, uint32_t *id)
{
    return attrs_send(c, SFTP_STAT, path, id);
}

int sftpc_lstat_send(struct sftpc *c, const char *path, uint32_t *id)
{
    return attrs_send(c, SFTP_LSTAT, path, id);
}

int sftpc_stat_recv(struct sftpc *c, uint32_t id, struct sftp_attrs *a)
{
    struct sftp_cur cur;
    int r = recv_call(c, id, SFTP_ATTRS, "stat", &cur);

    if (r < 0)
        return r;
    sftp_get_attrs(&cur, a);
    return cur.bad ? die(c, -EPROTO, "server: malformed ATTRS reply") : 0;
}

int sftpc_stat(struct sftpc *c, const char *path, struct sftp_attrs *a)
{
    uint32_t id;
    int r = sftpc_stat_send(c, path, &id);

    return r < 0 ? r : sftpc_stat_recv(c, id, a);
}

int sftpc_lstat(struct sftpc *c, const char *path, struct sftp_attrs *a)
{
    uint32_t id;
    int r = sftpc_lstat_send(c, path, &id);

    return r < 0 ? r : sftpc_stat_recv(c, id, a);
}

int sftpc_mkdir(struct sftpc *c, const char *path, uint32_t mode)
{
    struct sftp_attrs a = {.flags = SFTP_ATTR_PERMISSIONS, .perm = mode};

    return path_call(c, SFTP_MKDIR, path, &a, "mkdir");
}

int sftpc_remove(struct sftpc *c, const char *path)
{
    return path_call(c, SFTP_REMOVE, path, NULL, "remove");
}

int sftpc_rename_send(struct sftpc *c, const char *from, const char *to,
                      uint32_t *id)
{
    size_t start;
    int r;

    if (c->ext & SFTPC_EXT_POSIX_RENAME)
        r = begin_ext(c, "posix-rename@openssh.com", &start, id);
    else
        r = begin_call(c, SFTP_RENAME, &start, id);
    if (r < 0)
        return r;
    sftp_put_str(&c->out, from);
    sftp_put_str(&c->out, to);
    return send_packet(c, start);
}

int sftpc_status_recv(struct sftpc *c, uint32_t id, const char *what)
{
    struct sftp_cur cur;

    return recv_call(c, id, SFTP_STATUS, what, &cur);
}

int sftpc_rename(struct sftpc *c, const char *from, const char *to)
{
    uint32_t id;
    int r = sftpc_rename_send(c, from, to, &id);

    return r < 0 ? r : sftpc_status_recv(c, id, "rename");
}

int sftpc_statvfs(struct sftpc *c, const char *path, uint64_t *avail)
{
    struct sftp_cur cur;
    uint64_t frsize, bavail;
    size_t start;
    uint32_t id;
    int r;

    if (!(c->ext & SFTPC_EXT_STATVFS))
        return say(c, -EOPNOTSUPP, "server: no statvfs@openssh.com");
    r = begin_ext(c, "statvfs@openssh.com", &start, &id);
    if (r < 0)
        return r;
    sftp_put_str(&c->out, path);
    r = finish_call(c, start, id, SFTP_EXTENDED_REPLY, "statvfs", &cur);
    if (r < 0)
        return r;
    sftp_get_u64(&cur); /* f_bsize */
    frsize = sftp_get_u64(&cur);
    sftp_get_u64(&cur); /* f_blocks */
    sftp_get_u64(&cur); /* f_bfree */
    bavail = sftp_get_u64(&cur);
    if (cur.bad)
        return die(c, -EPROTO, "server: malformed statvfs reply");
    *avail = frsize * bavail;
    return 0;
}

/* --- folders ----------------------------------------------------------- */

/* A request on handle h (len bytes) whose reply is wanted: begun. */
static int begin_handle_call(struct sftpc *c, uint8_t type, const uint8_t *h,
                             size_t len, size_t *start, uint32_t *id)
{
    int r = begin_call(c, type, start, id);

    if (r == 0)
        sftp_put_bytes(&c->out, h, len);
    return r;
}

/* Hand each entry of a NAME reply in cur to cb: 0, -EPROTO or cb's. */
static int each_name(struct sftpc *c, struct sftp_cur *cur,
                     int (*cb)(void *, const char *, const struct sftp_attrs *),
                     void *arg)
{
    uint32_t n = sftp_get_u32(cur);
    struct sftp_attrs a;
    const uint8_t *p;
    char *name;
    size_t len, skip;
    int r = 0;

    while (r == 0 && n-- > 0) {
        p = sftp_get_bytes(cur, &len);
        sftp_get_bytes(cur, &skip); /* the longname, for people */
        memset(&a, 0, sizeof(a));
        sftp_get_attrs(cur, &a);
        if (cur->bad || p == NULL || len == 0 || memchr(p, '\0', len))
            return die(c, -EPROTO, "server: malformed NAME reply to readdir");
        name = strndup((const char *)p, len);
        if (name == NULL)
            return -ENOMEM;
        r = cb(arg, name, &a);
        free(name);
    }
    return r;
}

int sftpc_readdir(struct sftpc *c, const char *path,
                  int (*cb)(void *arg, const char *name,
                            const struct sftp_attrs *a),
                  void *arg)
{
    uint8_t h[MAX_HANDLE];
    struct sftp_cur cur;
    const uint8_t *p;
    size_t start, hlen = 0;
    uint32_t id;
    int r, rc;

    r = begin_call(c, SFTP_OPENDIR, &start, &id);
    if (r < 0)
        return r;
    sftp_put_str(&c->out, path);
    r = finish_call(c, start, id, SFTP_HANDLE, "opendir", &cur);
    if (r < 0)
        return r;
    p = sftp_get_bytes(&cur, &hlen);
    if (p == NULL || hlen == 0 || hlen > MAX_HANDLE)
        return die(c, -EPROTO, "server: malformed HANDLE reply");
    memcpy(h, p, hlen);
    /* READDIR until EOF; the reply stays in c->reply while cb runs. */
    do {
        r = begin_handle_call(c, SFTP_READDIR, h, hlen, &start, &id);
        if (r == 0)
            r = finish_call(c, start, id, SFTP_NAME, "readdir", &cur);
        if (r == 0)
            r = each_name(c, &cur, cb, arg);
    } while (r == 0);
    if (r == -ENODATA)
        r = 0; /* the end of the folder */
    if (c->dead)
        return c->dead;
    rc = begin_handle_call(c, SFTP_CLOSE, h, hlen, &start, &id);
    if (rc == 0)
        rc = finish_call(c, start, id, SFTP_STATUS, "close", &cur);
    return r < 0 ? r : rc;
}

/* --- files ------------------------------------------------------------- */

int sftpc_open_send(struct sftpc *c, const char *path, uint32_t pflags,
                    uint32_t mode, uint32_t *id)
{
    struct sftp_attrs a = {.flags = SFTP_ATTR_PERMISSIONS, .perm = mode};
    size_t start;
    int r = begin_call(c, SFTP_OPEN, &start, id);

    if (r < 0)
        return r;
    sftp_put_str(&c->out, path);
    sftp_put_u32(&c->out, pflags);
    sftp_put_attrs(&c->out, &a);
    return send_packet(c, start);
}

int sftpc_open_recv(struct sftpc *c, uint32_t id, struct sftpc_file **out)
{
    struct sftpc_file *f;
    struct sftp_cur cur;
    const uint8_t *h;
    size_t n;
    int r;

    *out = NULL;
    r = recv_call(c, id, SFTP_HANDLE, "open", &cur);
    if (r < 0)
        return r;
    h = sftp_get_bytes(&cur, &n);
    if (h == NULL || n == 0 || n > MAX_HANDLE)
        return die(c, -EPROTO, "server: malformed HANDLE reply");
    f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -ENOMEM;
    memcpy(f->handle, h, n);
    f->handle_len = n;
    f->next = c->files;
    c->files = f;
    *out = f;
    return 0;
}

int sftpc_open(struct sftpc *c, const char *path, uint32_t pflags,
               uint32_t mode, struct sftpc_file **out)
{
    uint32_t id;
    int r = sftpc_open_send(c, path, pflags, mode, &id);

    *out = NULL;
    return r < 0 ? r : sftpc_open_recv(c, id, out);
}

int sftpc_fstat(struct sftpc *c, struct sftpc_file *f, struct sftp_attrs *a)
{
    struct sftp_cur cur;
    size_t start;
    uint32_t id;
    int r = begin_call(c, SFTP_FSTAT, &start, &id);

    if (r < 0)
        return r;
    sftp_put_bytes(&c->out, f->handle, f->handle_len);
    r = finish_call(c, start, id, SFTP_ATTRS, "fstat", &cur);
    if (r < 0)
        return r;
    sftp_get_attrs(&cur, a);
    return cur.bad ? die(c, -EPROTO, "server: malformed ATTRS reply") : 0;
}

/* f's first error, into c's message; else the session's, if it ended. */
static int file_error(struct sftpc *c, struct sftpc_file *f)
{
    if (f->err)
        return say(c, f->err, "server: %s", f->errmsg);
    return c->dead;
}

/* A request queued on f: begin it. */
static int begin_queued(struct sftpc *c, struct sftpc_file *f, uint8_t type,
                        enum kind kind, struct slot **s, size_t *start)
{
    int r = file_error(c, f);

    if (r == 0)
        r = new_slot(c, kind, s);
    if (r < 0)
        return r;
    (*s)->f = f;
    f->queued++;
    *start = sftp_packet_begin(&c->out, type, (*s)->id);
    if (type == SFTP_EXTENDED)
        return 0; /* the name comes before the handle */
    sftp_put_bytes(&c->out, f->handle, f->handle_len);
    return 0;
}

/* Wait until fewer than n bytes of writes are in flight (and unsent). */
static int make_room(struct sftpc *c, size_t n)
{
    int r;

    while ((c->inflight_bytes > 0 && c->inflight_bytes + n > c->window) ||
           c->out.len - c->out_sent > OUT_HIGH) {
        r = pump(c);
        if (r < 0)
            return r;
    }
    return 0;
}

int sftpc_write(struct sftpc *c, struct sftpc_file *f, uint64_t off,
                const void *buf, size_t len)
{
    const uint8_t *p = buf;
    struct slot *s;
    size_t start, n;
    uint32_t i;
    int r = file_error(c, f);

    if (r < 0)
        return r;
    while (len > 0) {
        n = len < c->max_write ? len : c->max_write;
        r = make_room(c, n);
        if (r == 0)
            r = begin_queued(c, f, SFTP_WRITE, K_WRITE, &s, &start);
        if (r < 0)
            return r;
        if (!f->started) {
            f->started = 1;
            f->acked = off;
        }
        i = f->tail;
        f->ring[i].end = off + n;
        f->ring[i].done = 0;
        f->tail = (f->tail + 1) % RING;
        s->ring = i;
        s->len = (uint32_t)n;
        c->inflight_bytes += n;
        sftp_put_u64(&c->out, off);
        sftp_put_bytes(&c->out, p, n);
        r = send_packet(c, start);
        if (r < 0)
            return r;
        p += n;
        off += n;
        len -= n;
    }
    return 0;
}

int sftpc_fsetstat(struct sftpc *c, struct sftpc_file *f,
                   const struct sftp_attrs *a)
{
    struct slot *s;
    size_t start;
    int r = begin_queued(c, f, SFTP_FSETSTAT, K_FILE, &s, &start);

    if (r < 0)
        return r;
    sftp_put_attrs(&c->out, a);
    return send_packet(c, start);
}

int sftpc_fsync(struct sftpc *c, struct sftpc_file *f)
{
    struct slot *s;
    size_t start;
    int r;

    if (!(c->ext & SFTPC_EXT_FSYNC))
        return say(c, -EOPNOTSUPP, "server: no fsync@openssh.com");
    r = begin_queued(c, f, SFTP_EXTENDED, K_FILE, &s, &start);
    if (r < 0)
        return r;
    sftp_put_str(&c->out, "fsync@openssh.com");
    sftp_put_bytes(&c->out, f->handle, f->handle_len);
    return send_packet(c, start);
}

int sftpc_drain(struct sftpc *c, struct sftpc_file *f)
{
    int r;

    while (f->queued > 0) {
        r = pump(c);
        if (r < 0 && f->queued > 0)
            return r;
    }
    /* Every request answered, even if the channel ended meanwhile. */
    return f->err ? file_error(c, f) : 0;
}

uint64_t sftpc_acked(const struct sftpc_file *f)
{
    return f->acked;
}

static void file_free(struct sftpc *c, struct sftpc_file *f)
{
    struct sftpc_file **pp;
    int i;

    for (pp = &c->files; *pp; pp = &(*pp)->next)
        if (*pp == f) {
            *pp = f->next;
            break;
        }
    /* A dead session leaves requests unanswered: forget them. */
    for (i = 0; i < SFTPC_MAX_INFLIGHT; i++)
        if (c->slot[i].kind != K_FREE && c->slot[i].f == f)
            slot_free(c, &c->slot[i]);
    free(f);
}

int sftpc_close_send(struct sftpc *c, struct sftpc_file *f)
{
    struct slot *s;
    size_t start;
    int r;

    if (f->closing)
        return 0;
    /* Close even after an error of a queued request: the handle is the
     * server's to free. */
    r = c->dead ? c->dead : new_slot(c, K_FILE, &s);
    if (r < 0)
        return r;
    f->closing = 1;
    s->f = f;
    f->queued++;
    start = sftp_packet_begin(&c->out, SFTP_CLOSE, s->id);
    sftp_put_bytes(&c->out, f->handle, f->handle_len);
    return send_packet(c, start);
}

int sftpc_close(struct sftpc *c, struct sftpc_file *f)
{
    int r;

    if (f == NULL)
        return 0;
    r = sftpc_close_send(c, f);
    if (r == 0)
        r = sftpc_drain(c, f);
    else
        file_error(c, f);
    file_free(c, f);
    return r;
}

/* --- reads ------------------------------------------------------------- */

/* Send a read of len bytes at off as entry i of c->rd. */
static int send_read(struct sftpc *c, struct sftpc_file *f, uint32_t i,
                     uint64_t off, uint32_t len)
{
    struct slot *s;
    size_t start;
    int r = new_slot(c, K_READ, &s);

    if (r < 0)
        return r;
    s->f = f;
    s->ring = i;
    c->rd[i] = (struct rd){.off = off, .len = len};
    start = sftp_packet_begin(&c->out, SFTP_READ, s->id);
    sftp_put_bytes(&c->out, f->handle, f->handle_len);
    sftp_put_u64(&c->out, off);
    sftp_put_u32(&c->out, len);
    return send_packet(c, start);
}

/* Wait for every read still in flight, dropping their data. */
static void read_settle(struct sftpc *c)
{
    uint32_t i;

    while (c->rd_head != c->rd_tail) {
        i = c->rd_head % READ_AHEAD;
        while (!c->dead && c->rd[i].state == 0)
            if (pump(c) < 0)
                break;
        free(c->rd[i].data);
        c->rd[i].data = NULL;
        c->rd_head++;
    }
}

int sftpc_read(struct sftpc *c, struct sftpc_file *f, uint64_t off,
               uint64_t len, int (*cb)(void *arg, const void *p, size_t n),
               void *arg)
{
    uint64_t next = off, end = off + len;
    struct rd *d;
    uint32_t n;
    int r = 0;

    if (len > UINT64_MAX - off)
        return say(c, -EINVAL, "a read of %llu bytes at %llu: past 2^64",
                   (unsigned long long)len, (unsigned long long)off);
    c->rd_head = c->rd_tail = 0;
    while (r == 0 && (c->rd_head != c->rd_tail || next < end)) {
        /* Keep READ_AHEAD reads in flight. */
        while (r == 0 && next < end && c->rd_tail - c->rd_head < READ_AHEAD) {
            n = end - next < c->max_read ? (uint32_t)(end - next)
                                         : (uint32_t)c->max_read;
            r = send_read(c, f, c->rd_tail % READ_AHEAD, next, n);
            c->rd_tail++;
            next += n;
        }
        if (r < 0)
            break;
        d = &c->rd[c->rd_head % READ_AHEAD];
        while (r == 0 && d->state == 0)
            r = pump(c);
        if (r < 0)
            break;
        if (d->err) {
            r = d->err;
            if (r == -ENODATA)
                say(c, r, "server: end of file at %llu, before %llu",
                    (unsigned long long)d->off, (unsigned long long)end);
            break;
        }
        if (d->n > 0)
            r = cb(arg, d->data, d->n);
        free(d->data);
        d->data = NULL;
        if (r == 0 && d->n < d->len) {
            /* A short read: the rest must come before what follows, so
             * ask for it and wait for it alone. */
            uint64_t roff = d->off + d->n;

            if (d->n == 0) {
                r = die(c, -EPROTO, "server: empty DATA reply");
                break;
            }
            read_settle(c);
            c->rd_head = c->rd_tail = 0;
            next = roff;
            continue;
        }
        c->rd_head++;
    }
    read_settle(c);
    return r;
}
