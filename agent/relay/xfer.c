/*
 * The transfer state machine.  Each step returns 0 to go on to the next
 * state or a negative errno that ends the attempt; whatever the target
 * acknowledged stays there for the next attempt to resume from.
 *
 * Checkpoints.  The target makes bytes durable later than they are read
 * and hashed (SFTP writes in flight, S3 parts being uploaded), so at each
 * chunk boundary the transfer keeps a mark: the offsets there and the
 * running SHA-256 (digest.h).  When the sink's durable offset moves, the
 * newest mark at or below it goes to the journal with that offset, so a
 * resumed transfer starts hashing from the mark and reads again at most
 * the bytes between the mark and the durable offset, not the whole file.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sftprelay/digest.h"
#include "sftprelay/log.h"
#include "sftprelay/path.h"
#include "sftprelay/progress.h"
#include "sftprelay/ratelimit.h"
#include "sftprelay/sidehash.h"
#include "sftprelay/transform.h"
#include "sftprelay/xfer.h"

enum xfer_state {
    XS_OPEN_SOURCE,
    XS_CONNECT,
    XS_PLACE,
    XS_OPEN_TARGET,
    XS_REHASH,
    XS_SEND,
    XS_VERIFY,
    XS_COMMIT,
    XS_DONE,
};

/* A chunk boundary: the offsets there and the digests of what came before. */
struct mark {
    int64_t out;       /* bytes given to the sink */
    struct digest md;  /* of the source bytes before (md.length of them) */
    struct digest omd; /* of the bytes given to the sink (a chain that
                        * changes bytes; else unused) */
};

/*
 * Marks kept while the target catches up, as many as it lags by: an S3
 * part in flight holds some 40 chunks of compressed text.  Past
 * MARKS_MAX (7 MiB of them) every other one is dropped, so the checkpoint
 * only gets coarser.
 */
#define MARKS_MIN 64
#define MARKS_MAX 32768

struct xfer {
    struct xfer_env *env;
    const struct xfer_job *job;
    struct xfer_result *res;
    struct source_file *f;
    struct source_stat st; /* at open */
    const char *rel;       /* where it goes on the target */
    char name[XFER_NAME_MAX]; /* the chain's name for it (report.csv.gz) */
    enum transform_resume mode; /* how the chain lets it resume */
    struct digest md;      /* of the source bytes below pos */
    struct digest omd;     /* of the bytes given to the sink (below out) */
    int64_t pos;           /* source bytes read */
    int64_t out;           /* bytes given to the sink */
    int64_t saved; /* the last checkpoint */
    int64_t saved_src; /* its source offset */
    char saved_token[SINK_TOKEN_MAX]; /* and its token ("": none) */
    struct mark base;          /* the newest mark the target passed */
    struct mark *marks;        /* [first, n): not yet passed, oldest first */
    size_t first, n_marks, cap;
    int target_open;
    struct progress_file *shown; /* its row in env->progress, or NULL */
};

static int cancelled(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};

    return fd >= 0 && poll(&p, 1, 0) > 0;
}

static int differs(const struct source_stat *a, int64_t size, int64_t mtime)
{
    return a->size != size || a->mtime_ns != mtime;
}

/* A source error in res: its words, and whether the host is down. */
static int source_err(struct xfer *x, int r)
{
    snprintf(x->res->err, sizeof(x->res->err), "source: %s",
             r == -ELOOP ? "now a symbolic link, not followed"
                         : source_error(x->env->src, r));
    x->res->source = source_error_is_host(r);
    return r;
}

static int step_open_source(struct xfer *x)
{
    const struct source_ops *ops = x->env->src->ops;
    int r;

    x->env->src->err[0] = '\0';
    r = ops->open(x->env->src, x->job->path, &x->f, &x->st);
    if (r == -ENOENT || r == -ENOTDIR) {
        snprintf(x->res->err, sizeof(x->res->err),
                 "vanished from the source before it was sent");
        return -ENOENT;
    }
    if (r < 0) {
        source_err(x, r);
        return r == -ELOOP || r == -EISDIR ? -ENOENT : r;
    }
    x->res->now = x->st;
    if (x->st.size < 0) { /* a hostile remote source's 2^63 */
        snprintf(x->res->err, sizeof(x->res->err),
                 "source: a size of %lld bytes cannot be",
                 (long long)x->st.size);
        return -EPROTO;
    }
    if (differs(&x->st, x->job->size, x->job->mtime_ns)) {
        snprintf(x->res->err, sizeof(x->res->err),
                 "changed on the source since it was queued");
        return -ESTALE;
    }
    return 0;
}

static int sink_err(struct xfer *x, int r)
{
    snprintf(x->res->err, sizeof(x->res->err), "%s", sink_error(x->env->sink));
    x->res->target = sink_error_is_target(r);
    /* -ENOENT and -ESTALE say the source file is gone or changed
     * (xfer.h); a "no such file" on the target (a folder removed under an
     * upload) or an upload the target lost is an error of this attempt,
     * tried again. */
    return r == -ENOENT || r == -ESTALE ? -EIO : r;
}

static int step_connect(struct xfer *x)
{
    int r = sink_connect(x->env->sink);

    return r < 0 ? sink_err(x, r) : 0;
}

/*
 * target.on_exists, asked before every attempt (resumes too): the target
 * may have gained the file meanwhile.  Returns 1 when the file is to be
 * left alone.
 */
static int step_place(struct xfer *x)
{
    struct sink *sk = x->env->sink;
    char numbered[XFER_NAME_MAX];
    unsigned n;
    int r;

    if (x->env->on_exists == XFER_OVERWRITE)
        return 0;
    r = sink_exists(sk, x->rel);
    if (r <= 0)
        return r < 0 ? sink_err(x, r) : 0;
    if (x->env->on_exists == XFER_SKIP) {
        /* What an earlier attempt left is of no use now. */
        if (x->job->stale_token)
            sink_discard(sk, x->rel, x->job->stale_token);
        if (x->job->resume_offset > 0 || x->job->source_offset > 0 ||
            x->job->token) {
            r = sink_discard(sk, x->rel, x->job->token);
            if (r < 0)
                return sink_err(x, r);
        }
        x->res->skipped = 1;
        return 1;
    }
    /* The first free name (report.1.csv.gz): the same one again when an
     * attempt resumes. */
    for (n = 1; r == 1; n++) {
        if (n > 1000 ||
            path_numbered(x->job->path, n, numbered, sizeof(numbered)) < 0 ||
            transform_chain_name(x->env->chain, numbered, x->res->placed,
                                 sizeof(x->res->placed)) < 0) {
            snprintf(x->res->err, sizeof(x->res->err),
                     "the target has it and no free name beside it");
            return -EEXIST;
        }
        r = sink_exists(sk, x->res->placed);
        if (r < 0)
            return sink_err(x, r);
    }
    x->rel = x->res->placed;
    x->res->renamed = 1;
    return 0;
}

/*
 * Where a chain that changes bytes can take up the journal's checkpoint:
 * one of its chunk boundaries, with the digests of the bytes on both
 * sides.  Returns 1 and loads them, or 0: start over.
 */
static int chunked_resume_point(struct xfer *x)
{
    const struct xfer_job *j = x->job;

    if (x->mode != TRANSFORM_CHUNKED || j->resume_offset <= 0 ||
        j->source_offset <= 0 || j->source_offset >= x->st.size ||
        strcmp(j->chain ? j->chain : "", xfer_chain_id(x->env)) != 0 ||
        digest_load(&x->md, j->sha256_state) < 0 ||
        digest_load(&x->omd, j->delivered_state) < 0 ||
        x->md.length != (uint64_t)j->source_offset ||
        x->omd.length != (uint64_t)j->resume_offset) {
        digest_init(&x->md);
        digest_init(&x->omd);
        return 0;
    }
    return 1;
}

/* Whether the checkpoint is of the same bytes (a chain that keeps them,
 * then as now), so a chain that keeps bytes can resume from it. */
static int same_resume_point(const struct xfer *x)
{
    const struct xfer_job *j = x->job;

    return x->mode == TRANSFORM_SAME && j->source_offset == j->resume_offset &&
           strcmp(j->chain ? j->chain : "", xfer_chain_id(x->env)) == 0;
}

static int step_open_target(struct xfer *x)
{
    const struct xfer_job *j = x->job;
    int same = x->mode == TRANSFORM_SAME, at_mark = chunked_resume_point(x);
    int go_on = same ? same_resume_point(x) : at_mark;
    struct sink_file f = {
        .rel = x->rel,
        .mode = x->st.mode,
        .size = same ? x->st.size : -1,
        .offset = go_on ? j->resume_offset : 0,
        .token = j->token,
        .stale_token = j->stale_token,
        .whole_writes = x->mode == TRANSFORM_CHUNKED,
    };
    int r;

    if (same && (f.offset > x->st.size || f.offset < 0))
        f.offset = 0;
    if (!go_on && (j->resume_offset > 0 || j->source_offset > 0 || j->token)) {
        /* What an earlier attempt sent is thrown away with its upload. */
        log_info("%s: starting again from byte 0 (%lld bytes of it had been "
                 "read): %s",
                 x->rel, (long long)j->source_offset,
                 x->mode == TRANSFORM_RESTART
                     ? "a transform of the chain cannot resume"
                     : "its checkpoint is not of these transforms");
        if (f.stale_token == NULL)
            f.stale_token = f.token;
        f.token = NULL;
    }
    r = sink_open(x->env->sink, &f);
    if (r < 0)
        return sink_err(x, r);
    x->target_open = 1;
    if (same && f.offset > x->st.size) {
        snprintf(x->res->err, sizeof(x->res->err),
                 "the target resumed at %lld, past the file's %lld bytes",
                 (long long)f.offset, (long long)x->st.size);
        return -EPROTO;
    }
    if (!same && f.offset != (at_mark ? j->resume_offset : 0)) {
        /* The target kept less than the checkpoint: the bytes before a
         * transform's boundary cannot be made again from elsewhere. */
        log_info("%s: the target resumed at %lld, not at the checkpoint's "
                 "%lld; starting again from byte 0",
                 x->rel, (long long)f.offset, (long long)j->resume_offset);
        sink_abort(x->env->sink);
        x->target_open = 0;
        f.offset = 0;
        f.stale_token = f.token ? f.token : f.stale_token;
        f.token = NULL;
        at_mark = 0;
        digest_init(&x->md);
        digest_init(&x->omd);
        r = sink_open(x->env->sink, &f);
        if (r < 0)
            return sink_err(x, r);
        x->target_open = 1;
    }
    x->out = f.offset;
    x->pos = same ? f.offset : at_mark ? j->source_offset : 0;
    x->saved = f.offset;
    x->saved_src = x->pos;
    snprintf(x->saved_token, sizeof(x->saved_token), "%s",
             f.token ? f.token : "");
    x->res->resumed_at = f.offset;
    progress_from(x->shown, x->pos, x->out);
    return 0;
}

/* Room for one more mark: 0, or -ENOMEM. */
static int mark_room(struct xfer *x)
{
    struct mark *m;
    size_t i, n;

    if (x->first > 0 && x->n_marks == x->cap) { /* slide the rest down */
        memmove(x->marks, x->marks + x->first,
                (x->n_marks - x->first) * sizeof(*x->marks));
        x->n_marks -= x->first;
        x->first = 0;
    }
    if (x->n_marks < x->cap)
        return 0;
    if (x->cap < MARKS_MAX) {
        n = x->cap ? 2 * x->cap : MARKS_MIN;
        m = realloc(x->marks, n * sizeof(*m));
        if (m == NULL)
            return -ENOMEM;
        x->marks = m;
        x->cap = n;
        return 0;
    }
    /* The target is very far behind: keep every other mark. */
    for (i = 0, n = 0; i < x->n_marks; i += 2)
        x->marks[n++] = x->marks[i];
    x->n_marks = n;
    return 0;
}

/* A new mark at the current chunk boundary. */
static int mark_push(struct xfer *x)
{
    struct mark *m;
    int r = mark_room(x);

    if (r < 0)
        return r;
    m = &x->marks[x->n_marks++];
    m->out = x->out;
    m->md = x->md;
    m->omd = x->omd;
    return 0;
}

/* base = the newest mark at or below durable; older ones are dropped. */
static void mark_reach(struct xfer *x, int64_t durable)
{
    while (x->first < x->n_marks && x->marks[x->first].out <= durable)
        x->base = x->marks[x->first++];
}

/*
 * The digest covers the whole file: it starts from the journal's state
 * when that is of bytes below where the target resumes, and reads again
 * from the source only the bytes from there.  (A chain that changes
 * bytes resumes only where both its digests were saved.)
 */
static int step_rehash(struct xfer *x)
{
    const struct source_ops *ops = x->env->src->ops;
    size_t want, got;
    int64_t at;
    int r;

    if (x->mode == TRANSFORM_SAME) {
        digest_init(&x->md);
        if (x->pos > 0 && x->job->sha256_state &&
            (digest_load(&x->md, x->job->sha256_state) < 0 ||
             x->md.length > (uint64_t)x->pos)) {
            log_debug("%s: its saved digest is not of the bytes sent; "
                      "reading them again", x->job->path);
            digest_init(&x->md);
        }
    }
    at = (int64_t)x->md.length;
    x->res->reread = x->pos - at;
    if (x->pos > 0)
        log_info("%s: resuming at byte %lld of %lld (byte %lld on the "
                 "target), %lld of them read again for the digest",
                 x->rel, (long long)x->pos, (long long)x->st.size,
                 (long long)x->out, (long long)x->res->reread);
    while (at < x->pos) {
        want = x->env->bufsize;
        if ((int64_t)want > x->pos - at)
            want = (size_t)(x->pos - at);
        r = ops->read(x->f, x->env->buf, want, at, &got);
        if (r < 0)
            return source_err(x, r);
        if (got != want) {
            snprintf(x->res->err, sizeof(x->res->err),
                     "source: shorter than expected");
            return -ESTALE;
        }
        digest_update(&x->md, x->env->buf, got);
        at += (int64_t)got;
    }
    x->base = (struct mark){.out = x->out, .md = x->md, .omd = x->omd};
    return 0;
}

/*
 * Checkpoint what the target has acknowledged, if it moved: with a chain
 * that keeps bytes, the durable offset and the digest of the newest mark
 * below it; with one that changes them, that mark itself (where both
 * offsets and both digests are known); with one that cannot resume, only
 * a new token, so that the upload it names can be thrown away.
 */
static int save(struct xfer *x)
{
    struct sink *sk = x->env->sink;
    char state[DIGEST_STATE_MAX], ostate[DIGEST_STATE_MAX];
    struct xfer_mark m = {0};
    const char *t;
    int64_t d;

    if (!x->env->checkpoint)
        return 0;
    d = sk->ops->durable ? sk->ops->durable(sk) : x->out;
    t = sink_token(sk);
    mark_reach(x, d);
    switch (x->mode) {
    case TRANSFORM_SAME:
        m.offset = d > x->saved ? d : x->saved;
        m.source_offset = m.offset;
        break;
    case TRANSFORM_CHUNKED:
        m.offset = x->base.out;
        m.source_offset = (int64_t)x->base.md.length;
        break;
    case TRANSFORM_RESTART:
        /* Nothing to resume from; how far it read, for the next attempt
         * to say what starting over costs. */
        m.source_offset = x->pos;
        break;
    }
    /* A new token is saved at once, before any byte is durable: the
     * upload it names must be found again, if only to be thrown away. */
    if (m.offset <= x->saved && m.source_offset <= x->saved_src &&
        strcmp(t ? t : "", x->saved_token) == 0)
        return 0;
    if (m.offset > x->saved)
        x->saved = m.offset;
    m.offset = x->saved;
    x->saved_src = m.source_offset;
    snprintf(x->saved_token, sizeof(x->saved_token), "%s", t ? t : "");
    m.token = t;
    m.chain = xfer_chain_id(x->env);
    if (x->mode != TRANSFORM_RESTART) {
        digest_save(&x->base.md, state);
        m.sha256_state = state;
    }
    if (x->mode == TRANSFORM_CHUNKED) {
        digest_save(&x->base.omd, ostate);
        m.delivered_state = ostate;
    }
    return x->env->checkpoint(x->env->arg, &m);
}

/* Words for a failure of the chain. */
static int transform_err(struct xfer *x, int r)
{
    const char *why = transform_chain_error(x->env->chain);

    snprintf(x->res->err, sizeof(x->res->err), "transform: %s",
             why && why[0] ? why : strerror(-r));
    return r;
}

/*
 * The chunk of got bytes in the buffer through the chain to the sink,
 * with the digest of what the sink is given.  (The source's digest of the
 * same bytes is being made beside it: see step_send.)
 */
static int put(struct xfer *x, size_t got, int last)
{
    const void *out;
    size_t outlen;
    int r;

    r = transform_chain_process(x->env->chain, x->env->buf, got, last, &out,
                                &outlen);
    if (r < 0)
        return transform_err(x, r);
    if (x->mode != TRANSFORM_SAME)
        digest_update(&x->omd, out, outlen);
    if (outlen > 0) {
        r = ratelimit_take(x->env->rate, outlen, x->env->cancel_fd);
        if (r < 0)
            return r;
        r = sink_write(x->env->sink, out, outlen);
        if (r < 0) {
            /* What the target acknowledged before the error stays. */
            save(x);
            return sink_err(x, r);
        }
    }
    x->out += (int64_t)outlen;
    x->res->sent += (int64_t)outlen;
    progress_add(x->shown, (int64_t)got, (int64_t)outlen);
    return 0;
}

/*
 * Chunk after chunk: read, then hash the source bytes on the side
 * thread (env->hash) while the chain and the sink take the same buffer;
 * both are done before the next read, and before a mark copies the
 * digest.
 */
static int step_send(struct xfer *x)
{
    const struct source_ops *ops = x->env->src->ops;
    size_t want, got;
    int last, r;

    r = transform_chain_begin(x->env->chain);
    if (r < 0)
        return transform_err(x, r);
    do {
        if (cancelled(x->env->cancel_fd))
            return -ECANCELED;
        want = x->env->bufsize;
        if ((int64_t)want > x->st.size - x->pos)
            want = (size_t)(x->st.size - x->pos);
        got = 0;
        if (want > 0) {
            r = ops->read(x->f, x->env->buf, want, x->pos, &got);
            if (r < 0)
                return source_err(x, r);
            if (got < want) {
                snprintf(x->res->err, sizeof(x->res->err),
                         "source shrank while it was sent");
                return -ESTALE;
            }
        }
        last = x->pos + (int64_t)got >= x->st.size;
        sidehash_start(x->env->hash, &x->md, x->env->buf, got);
        r = put(x, got, last);
        sidehash_wait(x->env->hash);
        if (r < 0)
            return r;
        x->pos += (int64_t)got;
        if (!last) {
            r = mark_push(x);
            if (r == 0)
                r = save(x);
            if (r < 0)
                return r;
        }
    } while (!last);
    return 0;
}

/* Sent is sent only if the source still is what we read. */
static int step_verify(struct xfer *x)
{
    struct source_stat now;
    int r = x->env->src->ops->stat(x->f, &now);

    if (r < 0)
        return source_err(x, r);
    x->res->now = now;
    if (differs(&now, x->st.size, x->st.mtime_ns)) {
        snprintf(x->res->err, sizeof(x->res->err),
                 "changed on the source while it was sent");
        return -ESTALE;
    }
    return 0;
}

static int step_commit(struct xfer *x)
{
    uint8_t md[DIGEST_LEN];
    struct sink_done d = {
        .size = x->res->resumed_at + x->res->sent,
        .mtime_ns = x->st.mtime_ns,
        .mode = x->st.mode,
    };
    int r;

    /* The sink is told the digest of the bytes it was given. */
    digest_final(x->mode == TRANSFORM_SAME ? &x->md : &x->omd, md);
    d.sha256 = md;
    r = sink_commit(x->env->sink, &d);
    if (r < 0) {
        save(x);
        return sink_err(x, r);
    }
    x->target_open = 0;
    snprintf(x->res->etag, sizeof(x->res->etag), "%s", d.etag);
    digest_hex(&x->md, x->res->sha256);
    digest_hex(x->mode == TRANSFORM_SAME ? &x->md : &x->omd,
               x->res->delivered_sha256);
    return 0;
}

static int (*const steps[])(struct xfer *) = {
    [XS_OPEN_SOURCE] = step_open_source,
    [XS_CONNECT] = step_connect,
    [XS_PLACE] = step_place,
    [XS_OPEN_TARGET] = step_open_target,
    [XS_REHASH] = step_rehash,
    [XS_SEND] = step_send,
    [XS_VERIFY] = step_verify,
    [XS_COMMIT] = step_commit,
};

/*
 * The source changed or vanished: throw away what was sent of it, so that
 * no upload is left to cost money (S3) or space (a temporary file).  The
 * next version starts from 0 anyway.
 */
static void throw_away(struct xfer *x)
{
    struct sink *sk = x->env->sink;
    char token[SINK_TOKEN_MAX] = "";
    const char *t = x->target_open ? sink_token(sk) : x->job->token;
    int r;

    if (!x->target_open && x->job->resume_offset == 0 &&
        x->job->source_offset == 0 && !x->job->token)
        return; /* nothing was sent */
    if (t)
        snprintf(token, sizeof(token), "%s", t);
    if (x->target_open) {
        sink_abort(sk);
        x->target_open = 0;
    }
    r = sink_connect(sk);
    if (r == 0)
        r = sink_discard(sk, x->rel, t ? token : NULL);
    if (r < 0)
        log_warn("%s: its unfinished upload%s%s could not be thrown away: %s",
                 x->rel, t ? " " : "", token, sink_error(sk));
}

int xfer_run(struct xfer_env *env, const struct xfer_job *job,
             struct xfer_result *res)
{
    struct xfer x = {.env = env, .job = job, .res = res, .rel = job->path};
    enum xfer_state st = XS_OPEN_SOURCE;
    int r = 0;

    memset(res, 0, sizeof(*res));
    x.mode = transform_chain_resume(env->chain);
    digest_init(&x.md);
    digest_init(&x.omd);
    /* The chain's name for it on the target (report.csv.gz). */
    r = transform_chain_name(env->chain, job->path, x.name, sizeof(x.name));
    if (r < 0) {
        snprintf(res->err, sizeof(res->err),
                 "its name with the transforms' suffixes is too long");
        goto out;
    }
    if (strcmp(x.name, job->path) != 0) {
        x.rel = x.name;
        snprintf(res->placed, sizeof(res->placed), "%s", x.name);
    }
    x.shown = progress_begin(env->progress, job->path, job->size);
    while (st != XS_DONE) {
        r = steps[st](&x);
        if (r < 0)
            goto out;
        if (r > 0) { /* left alone */
            r = 0;
            break;
        }
        st++;
    }
out:
    if (r == -ESTALE || r == -ENOENT)
        throw_away(&x);
    if (r == -ECANCELED && !res->err[0])
        snprintf(res->err, sizeof(res->err), "stopped");
    if (r < 0 && !res->err[0])
        snprintf(res->err, sizeof(res->err), "%s", strerror(-r));
    if (x.target_open)
        sink_abort(env->sink);
    /* A file that failed leaves nothing running (exec's child). */
    if (r < 0)
        transform_chain_begin(env->chain);
    if (x.f)
        env->src->ops->close(x.f);
    free(x.marks);
    progress_end(x.shown);
    return r;
}

/* --- many small files ------------------------------------------------- */

int xfer_can_batch(const struct xfer_env *env, const struct xfer_job *jobs,
                   size_t n)
{
    int64_t total = 0;
    size_t i;

    if (n < 2 || n > SINK_PUT_MAX || !env->sink->ops->put_many ||
        env->on_exists != XFER_OVERWRITE ||
        !transform_chain_resumable(env->chain) || xfer_chain_id(env)[0])
        return 0;
    for (i = 0; i < n; i++) {
        if (jobs[i].resume_offset > 0 || jobs[i].token || jobs[i].stale_token ||
            jobs[i].size > XFER_SMALL)
            return 0;
        total += jobs[i].size;
    }
    return total <= (int64_t)env->bufsize;
}

/* Read job whole into buf (its size), hashed into digest, checked
 * unchanged. */
static int read_whole(struct xfer *x, void *buf, uint8_t *digest)
{
    const struct source_ops *ops = x->env->src->ops;
    const void *out;
    size_t got = 0, outlen;
    int r;

    r = step_open_source(x);
    if (r < 0)
        return r;
    if (x->st.size > 0) {
        r = ops->read(x->f, buf, (size_t)x->st.size, 0, &got);
        if (r < 0)
            return source_err(x, r);
    }
    if ((int64_t)got != x->st.size) {
        snprintf(x->res->err, sizeof(x->res->err),
                 "source shrank while it was read");
        return -ESTALE;
    }
    r = step_verify(x); /* the bytes read are one version */
    if (r < 0)
        return r;
    r = transform_chain_begin(x->env->chain);
    if (r == 0)
        r = transform_chain_process(x->env->chain, buf, got, 1, &out,
                                    &outlen);
    if (r == 0 && outlen != got)
        r = -EINVAL; /* a chain that keeps offsets keeps lengths */
    if (r < 0) {
        snprintf(x->res->err, sizeof(x->res->err), "transform: %s",
                 strerror(-r));
        return r;
    }
    if (out != buf)
        memmove(buf, out, outlen);
    digest_update(&x->md, buf, got);
    digest_final(&x->md, digest);
    digest_hex(&x->md, x->res->sha256);
    return 0;
}

/* res's text for the error r of a put_many() item. */
static int item_result(struct xfer_result *res, const struct sink_item *it)
{
    int r = it->result;

    if (r == 0)
        return 0;
    snprintf(res->err, sizeof(res->err), "%s", it->err);
    res->target = sink_error_is_target(r);
    return r == -ENOENT ? -EIO : r;
}

int xfer_run_many(struct xfer_env *env, const struct xfer_job *jobs,
                  size_t n, struct xfer_result *res, int *rc)
{
    struct sink_item items[SINK_PUT_MAX];
    uint8_t digest[SINK_PUT_MAX][32];
    size_t idx[SINK_PUT_MAX], k = 0, i, j;
    char *buf = env->buf;
    int64_t off = 0, total = 0;
    int r;

    for (i = 0; i < n; i++) {
        struct xfer x = {.env = env, .job = &jobs[i], .res = &res[i]};

        memset(&res[i], 0, sizeof(res[i]));
        digest_init(&x.md);
        rc[i] = read_whole(&x, buf + off, digest[k]);
        if (rc[i] < 0 && !res[i].err[0])
            snprintf(res[i].err, sizeof(res[i].err), "%s", strerror(-rc[i]));
        if (x.f)
            env->src->ops->close(x.f);
        if (rc[i] < 0)
            continue;
        items[k] = (struct sink_item){
            .rel = jobs[i].path,
            .data = buf + off,
            .d = {.size = x.st.size, .mtime_ns = x.st.mtime_ns,
                  .mode = x.st.mode, .sha256 = digest[k]},
            .result = -EINPROGRESS,
        };
        idx[k++] = i;
        off += x.st.size;
    }
    if (k == 0)
        return 0;
    r = sink_connect(env->sink);
    for (j = 0; r == 0 && j < k; j++)
        total += items[j].d.size;
    if (r == 0)
        r = ratelimit_take(env->rate, (size_t)total, env->cancel_fd);
    if (r == 0)
        r = env->sink->ops->put_many(env->sink, items, k);
    if (r == -EOPNOTSUPP)
        return r;
    for (j = 0; j < k; j++) {
        i = idx[j];
        if (r < 0 && items[j].result == 0)
            continue; /* delivered before the target failed */
        if (r < 0 && items[j].result != 0 && !items[j].err[0]) {
            items[j].result = r;
            snprintf(items[j].err, sizeof(items[j].err), "%s",
                     sink_error(env->sink));
        }
        rc[i] = item_result(&res[i], &items[j]);
        if (rc[i] == 0) {
            res[i].sent = items[j].d.size;
            snprintf(res[i].etag, sizeof(res[i].etag), "%s", items[j].d.etag);
        }
        else
            res[i].sha256[0] = '\0';
    }
    return 0;
}
