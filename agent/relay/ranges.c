/*
 * A big file as byte ranges over several connections (xfer.h,
 * xfer_run_ranged()).
 *
 * Each range has a thread of its own with its own source handle and sink
 * instance (so its own SSH connection), writing into the one temporary
 * file at its offsets; the calling worker reads the whole file meanwhile
 * for its SHA-256, records each range's acknowledged progress in the
 * journal, and when every range is done commits the file as a one-
 * connection transfer would.  A range resumes from its recorded progress.
 *
 * Lock: struct ranged.lock guards each range's progress and result and
 * the count of ranges running; it is a leaf, never held across the
 * network, SQLite or logging.
 */
#include "config.h"

#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sftprelay/journal.h"
#include "sftprelay/loop.h"
#include "sftprelay/progress.h"
#include "sftprelay/ratelimit.h"
#include "sftprelay/transform.h"
#include "sftprelay/xfer.h"

#define RANGE_ALIGN (1024 * 1024) /* ranges start on MiB boundaries */
#define SAVE_EVERY_MS 200

struct ranged;

struct part {
    struct ranged *rd;
    pthread_t thread;
    int started;
    struct journal_range rg; /* rg.done: s->lock */
    int result;              /* s->lock; 1 while running */
    char err[SINK_ERR_MAX];
    int target;
    int source; /* the error concerns the source host */
    int64_t saved; /* the done last recorded (the worker's own) */
};

struct ranged {
    struct xfer_env *env;
    const struct xfer_job *job;
    const struct xfer_ranges *xr;
    int mode;
    struct progress_file *shown; /* one row, which every range moves */
    pthread_mutex_t lock;
    pthread_cond_t done;
    int running;
    struct part part[XFER_MAX_RANGES];
    int n;
};

/* The range failed with r: what failed (a noun) and why. */
static void part_fail(struct part *p, int r, const char *what, const char *why)
{
    snprintf(p->err, sizeof(p->err), "%s: %s", what, why);
    p->result = r;
}

/* The range's source failed with r. */
static void source_fail(struct part *p, const struct source *src, int r)
{
    part_fail(p, r, "source",
              r == -ESTALE ? "shorter than expected" : source_error(src, r));
    p->source = source_error_is_host(r);
}

/* Send [done, end) of one range: the thread's body. */
static int send_range(struct part *p, struct sink *sk, struct source *src,
                      void *buf)
{
    struct ranged *rd = p->rd;
    const struct xfer_env *env = rd->env;
    struct source_file *f = NULL;
    struct source_stat st;
    int64_t at = p->rg.done, ack;
    size_t want, got;
    int r;

    r = src->ops->open(src, rd->job->path, &f, &st);
    if (r < 0) {
        source_fail(p, src, r);
        return r;
    }
    r = sink_connect(sk);
    if (r == 0)
        r = sk->ops->open_range(sk, rd->job->path, rd->mode, at);
    while (r == 0 && at < p->rg.end) {
        want = env->bufsize;
        if ((int64_t)want > p->rg.end - at)
            want = (size_t)(p->rg.end - at);
        r = src->ops->read(f, buf, want, at, &got);
        if (r == 0 && got != want)
            r = -ESTALE;
        if (r < 0) {
            source_fail(p, src, r);
            break;
        }
        r = ratelimit_take(env->rate, got, env->cancel_fd);
        if (r == 0)
            r = sink_write(sk, buf, got);
        if (r == 0)
            progress_add(rd->shown, (int64_t)got, (int64_t)got);
        at += (int64_t)got;
        ack = sk->ops->durable ? sk->ops->durable(sk) : at;
        pthread_mutex_lock(&rd->lock);
        if (ack > p->rg.done)
            p->rg.done = ack;
        pthread_mutex_unlock(&rd->lock);
    }
    if (r == 0)
        r = sk->ops->close_range(sk);
    ack = sk->ops->durable ? sk->ops->durable(sk) : at;
    pthread_mutex_lock(&rd->lock);
    if (r == 0)
        ack = p->rg.end;
    if (ack > p->rg.done && ack <= p->rg.end)
        p->rg.done = ack;
    pthread_mutex_unlock(&rd->lock);
    if (r < 0 && p->err[0] == '\0') {
        snprintf(p->err, sizeof(p->err), "%s", sink_error(sk));
        p->target = sink_error_is_target(r);
    }
    src->ops->close(f);
    return r;
}

static void *range_main(void *arg)
{
    struct part *p = arg;
    struct ranged *rd = p->rd;
    const struct xfer_ranges *xr = rd->xr;
    struct source *src = NULL;
    struct sink *sk = NULL;
    void *buf = malloc(rd->env->bufsize);
    int r = buf ? 0 : -ENOMEM;

    if (r == 0)
        r = xr->sink_ops->create(xr->sink_settings, rd->env->cancel_fd, &sk);
    if (r == 0)
        r = xr->src_ops->create(xr->src_root, xr->src_settings,
                                rd->env->cancel_fd, &src);
    if (r == 0)
        r = send_range(p, sk, src, buf);
    else
        snprintf(p->err, sizeof(p->err), "%s", strerror(-r));
    if (sk)
        sink_abort(sk);
    sink_destroy(sk);
    if (src)
        src->ops->destroy(src);
    free(buf);
    pthread_mutex_lock(&rd->lock);
    p->result = r;
    rd->running--;
    pthread_cond_signal(&rd->done);
    pthread_mutex_unlock(&rd->lock);
    return NULL;
}

/* Record the progress of ranges that moved.  No lock held on return. */
static void save_progress(struct ranged *rd)
{
    struct journal_range now[XFER_MAX_RANGES];
    int i;

    pthread_mutex_lock(&rd->lock);
    for (i = 0; i < rd->n; i++)
        now[i] = rd->part[i].rg;
    pthread_mutex_unlock(&rd->lock);
    for (i = 0; i < rd->n; i++)
        if (now[i].done > rd->part[i].saved) {
            rd->part[i].saved = now[i].done;
            rd->xr->save(rd->xr->arg, &now[i]);
        }
}

/* Add [start, end) with done to rd's plan: 0, or -1 when it is full. */
static int add(struct ranged *rd, int64_t start, int64_t end, int64_t done)
{
    if (rd->n >= XFER_MAX_RANGES)
        return -1;
    rd->part[rd->n].rg = (struct journal_range){start, end, done};
    rd->n++;
    return 0;
}

/*
 * The ranges to send: those recorded, with any gap between them as a
 * range with no progress (a range that made none has no row); or n new
 * ones over [0, size).  Returns 1 when resuming.
 */
static int plan(struct ranged *rd, int64_t size)
{
    const struct xfer_ranges *xr = rd->xr;
    const struct journal_range *g;
    int64_t step, at = 0;
    int i, n, bad = 0;

    rd->n = 0;
    for (i = 0; i < xr->n_recorded && !bad; i++) {
        g = &xr->recorded[i];
        if (g->start < at || g->end <= g->start || g->end > size ||
            g->done < g->start || g->done > g->end)
            bad = 1;
        else if ((g->start > at && add(rd, at, g->start, at) < 0) ||
                 add(rd, g->start, g->end, g->done) < 0)
            bad = 1;
        else
            at = g->end;
    }
    if (xr->n_recorded > 0 && !bad && (at == size || add(rd, at, size, at) == 0))
        return 1;
    rd->n = 0;
    n = xr->connections < XFER_MAX_RANGES ? xr->connections : XFER_MAX_RANGES;
    step = (size / n + RANGE_ALIGN - 1) / RANGE_ALIGN * RANGE_ALIGN;
    for (at = 0; rd->n < n && at < size;) {
        int64_t end = at + step < size ? at + step : size;

        add(rd, at, end, at);
        at = end;
    }
    return 0;
}

/* Start the ranges' threads; wait for them, recording their progress. */
static void run_parts(struct ranged *rd)
{
    int i;

    for (i = 0; i < rd->n; i++) {
        struct part *p = &rd->part[i];

        p->rd = rd;
        p->saved = p->rg.done - 1; /* every range gets its row at once */
        p->result = 0;
        if (p->rg.done >= p->rg.end)
            continue;
        pthread_mutex_lock(&rd->lock);
        p->result = 1;
        rd->running++;
        pthread_mutex_unlock(&rd->lock);
        if (pthread_create(&p->thread, NULL, range_main, p) != 0) {
            pthread_mutex_lock(&rd->lock);
            rd->running--;
            pthread_mutex_unlock(&rd->lock);
            part_fail(p, -EAGAIN, "starting a thread", strerror(EAGAIN));
            continue;
        }
        p->started = 1;
    }
}

static void wait_parts(struct ranged *rd)
{
    struct timespec ts;
    int i;

    pthread_mutex_lock(&rd->lock);
    while (rd->running > 0) {
        ts = mono_timespec(mono_ms() + SAVE_EVERY_MS);
        pthread_cond_timedwait(&rd->done, &rd->lock, &ts);
        pthread_mutex_unlock(&rd->lock);
        save_progress(rd);
        pthread_mutex_lock(&rd->lock);
    }
    pthread_mutex_unlock(&rd->lock);
    for (i = 0; i < rd->n; i++)
        if (rd->part[i].started)
            pthread_join(rd->part[i].thread, NULL);
    save_progress(rd);
}

/* Read the whole file for its SHA-256, recording progress meanwhile. */
static int hash_all(struct ranged *rd, struct source_file *f, int64_t size,
                    unsigned char *md, struct xfer_result *res)
{
    const struct source_ops *ops = rd->env->src->ops;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int64_t at = 0, saved_ms = mono_ms();
    unsigned int len = 0;
    size_t want, got;
    int r = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 ? 0 : -ENOMEM;

    while (r == 0 && at < size) {
        want = rd->env->bufsize;
        if ((int64_t)want > size - at)
            want = (size_t)(size - at);
        r = ops->read(f, rd->env->buf, want, at, &got);
        if (r == 0 && got != want)
            r = -ESTALE;
        if (r == 0)
            EVP_DigestUpdate(ctx, rd->env->buf, got);
        at += (int64_t)got;
        if (mono_ms() - saved_ms >= SAVE_EVERY_MS) {
            save_progress(rd);
            saved_ms = mono_ms();
        }
    }
    if (r == 0)
        EVP_DigestFinal_ex(ctx, md, &len);
    EVP_MD_CTX_free(ctx);
    if (r < 0)
        snprintf(res->err, sizeof(res->err), "source: %s",
                 r == -ESTALE ? "shrank while it was read"
                              : source_error(rd->env->src, r));
    if (r < 0)
        res->source = source_error_is_host(r);
    return r;
}

int xfer_can_range(const struct xfer_env *env, const struct xfer_job *job,
                   const struct xfer_ranges *xr)
{
    return xr->split_size > 0 && job->size > xr->split_size &&
           xr->connections > 1 && env->sink->ops->open_range &&
           env->on_exists == XFER_OVERWRITE &&
           transform_chain_resumable(env->chain) && !xfer_chain_id(env)[0];
}

int xfer_run_ranged(struct xfer_env *env, const struct xfer_job *job,
                    const struct xfer_ranges *xr, struct xfer_result *res)
{
    struct ranged rd = {.env = env, .job = job, .xr = xr};
    const struct source_ops *ops = env->src->ops;
    struct source_file *f = NULL;
    struct source_stat st, now;
    unsigned char md[EVP_MAX_MD_SIZE];
    struct sink_done d;
    int64_t off, had = 0;
    int r, i, resuming;

    memset(res, 0, sizeof(*res));
    pthread_mutex_init(&rd.lock, NULL);
    mono_cond_init(&rd.done);
    rd.shown = progress_begin(env->progress, job->path, job->size);
    env->src->err[0] = '\0';
    r = ops->open(env->src, job->path, &f, &st);
    if (r < 0) {
        snprintf(res->err, sizeof(res->err), "%s",
                 r == -ENOENT ? "vanished from the source before it was sent"
                              : source_error(env->src, r));
        res->source = source_error_is_host(r);
        r = r == -ENOENT || r == -ENOTDIR ? -ENOENT : r;
        goto out;
    }
    res->now = st;
    if (st.size != job->size || st.mtime_ns != job->mtime_ns) {
        snprintf(res->err, sizeof(res->err),
                 "changed on the source since it was queued");
        r = -ESTALE;
        goto out;
    }
    rd.mode = st.mode;
    resuming = plan(&rd, st.size);
    for (i = 0; i < rd.n; i++)
        had += rd.part[i].rg.done - rd.part[i].rg.start;
    res->resumed_at = had;
    progress_from(rd.shown, had, had);
    /* A new upload starts from an empty temporary file. */
    r = sink_connect(env->sink);
    if (r == 0 && !resuming) {
        struct sink_file sf = {.rel = job->path, .mode = st.mode,
                               .size = st.size, .offset = 0};

        r = sink_open(env->sink, &sf);
        if (r == 0)
            sink_abort(env->sink);
    }
    if (r < 0) {
        snprintf(res->err, sizeof(res->err), "%s", sink_error(env->sink));
        res->target = sink_error_is_target(r);
        r = r == -ENOENT ? -EIO : r;
        goto out;
    }
    run_parts(&rd);
    save_progress(&rd);
    r = hash_all(&rd, f, st.size, md, res);
    wait_parts(&rd);
    for (i = 0; i < rd.n && r == 0; i++)
        if (rd.part[i].result != 0) {
            r = rd.part[i].result;
            snprintf(res->err, sizeof(res->err), "range %lld-%lld: %s",
                     (long long)rd.part[i].rg.start,
                     (long long)rd.part[i].rg.end, rd.part[i].err);
            res->target = rd.part[i].target;
            res->source = rd.part[i].source;
            if (r == -ENOENT)
                r = -EIO;
        }
    for (i = 0; i < rd.n; i++)
        res->sent += rd.part[i].rg.done - rd.part[i].rg.start;
    res->sent -= had;
    if (r < 0)
        goto out;
    r = ops->stat(f, &now);
    if (r == 0 && (now.size != st.size || now.mtime_ns != st.mtime_ns)) {
        res->now = now;
        snprintf(res->err, sizeof(res->err),
                 "changed on the source while it was sent");
        r = -ESTALE;
    }
    if (r < 0)
        goto out;
    /* Every range is on the target: commit as one connection would. */
    struct sink_file sf = {.rel = job->path, .mode = st.mode,
                           .size = st.size, .offset = st.size};

    r = sink_open(env->sink, &sf);
    off = sf.offset;
    if (r == 0 && off != st.size) {
        sink_abort(env->sink);
        snprintf(res->err, sizeof(res->err),
                 "the temporary file holds %lld bytes of %lld; sending it "
                 "again",
                 (long long)off, (long long)st.size);
        for (i = 0; i < rd.n; i++) {
            rd.part[i].rg.done = rd.part[i].rg.start;
            xr->save(xr->arg, &rd.part[i].rg);
        }
        r = -EIO;
        goto out;
    }
    d = (struct sink_done){.size = st.size, .mtime_ns = st.mtime_ns,
                           .mode = st.mode, .sha256 = md};
    if (r == 0)
        r = sink_commit(env->sink, &d);
    if (r < 0) {
        sink_abort(env->sink);
        snprintf(res->err, sizeof(res->err), "%s", sink_error(env->sink));
        res->target = sink_error_is_target(r);
        r = r == -ENOENT ? -EIO : r;
        goto out;
    }
    for (i = 0; i < 32; i++)
        snprintf(res->sha256 + 2 * i, 3, "%02x", md[i]);
out:
    if (f)
        ops->close(f);
    progress_end(rd.shown);
    pthread_cond_destroy(&rd.done);
    pthread_mutex_destroy(&rd.lock);
    return r;
}
