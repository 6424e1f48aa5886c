/*
 * The journal writer (jwriter.h): one thread, one connection, two queues.
 *
 * Other threads append operations under `lock` and signal `more`; the
 * writer takes a batch off the queues, lets go of the lock, applies the
 * batch in one transaction, and takes the lock again only to account for
 * it.  A failed batch goes back to the head of its queues, whole and in
 * order, and is tried again after RETRY_MAX_MS at most.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/queue.h>
#include <time.h>
#include <unistd.h>

#include "sftprelay/journal.h"
#include "sftprelay/jwriter.h"
#include "sftprelay/log.h"
#include "sftprelay/loop.h"
#include "sftprelay/metrics.h"

#define OFFERS_MAX 8192    /* offers queued before jwriter_offer() blocks */
#define OFFERS_KEEP 50000  /* kept while the journal fails (7 MiB) */
#define BATCH_OFFERS 4096  /* offers per transaction */
#define RETRY_MAX_MS 5000  /* between tries while the journal fails */
#define REMIND_MS 60000    /* between reminders that it still fails */
#define STOP_FLUSH_MS 3000 /* how long stopping waits for a failing journal */
#define WAL_RESTART_MS 2000 /* between restarts of the WAL (journal.h) */

enum op_kind {
    OP_OFFER,
    OP_PARTIAL,
    OP_UPLOADED,
    OP_CHECKPOINT,
    OP_RANGE,
    OP_DELIVERED,
    OP_REQUEUE,
    OP_RESTAT,
    OP_FAIL,
    OP_AGENT_SET,
    OP_PRUNE,
    OP_SWEEP,
};

#define F_COUNT 0x1   /* requeue: the attempt counts */
#define F_RESTART 0x2 /* requeue: start over from byte 0 */

/* One change; an offer costs this and its path (about 150 bytes). */
struct op {
    TAILQ_ENTRY(op) link;
    enum op_kind kind;
    int flags;
    int queued;  /* rows it queued (offers, requeues, sweeps) */
    int result;  /* of journal_delivered(), for the log after commit */
    int changes; /* rows a prune or sweep touched */
    int64_t id, size, mtime_ns; /* the version (results), the file (offers) */
    int64_t a, b;               /* now, offset, next_attempt, before */
    int64_t flags_done;         /* OP_RANGE: its done offset (a, b: range) */
    char *path;                 /* offers; results: for logs */
    char *text;                 /* sha256, error, peer, agent value */
    char *key;                  /* agent key; delivered: target_path */
    char *etag;                 /* delivered */
    char *sha256_state;         /* checkpoint */
    char *delivered_state;      /* checkpoint */
    char *chain;                /* checkpoint */
    char *delivered_sha256;     /* delivered */
    const char *outcome;        /* delivered: a constant */
    int64_t *held;
    size_t n_held;
    uint64_t seq; /* results: counted from 1 as they are queued */
};

TAILQ_HEAD(opq, op);

struct jwriter {
    struct journal *j;
    struct jwriter_cb cb;
    pthread_t thread;
    int started;
    int space_fd;  /* readable: offers have room again */
    int cancel_fd; /* readable: stop waiting for SQLite's lock (stopping) */
    int64_t restarted_ms; /* the WAL last restarted; the writer's own */

    /* Guarded by lock. */
    pthread_mutex_t lock;
    pthread_cond_t more; /* the writer has work, or is to stop */
    pthread_cond_t idle; /* a batch ended */
    struct opq results;
    struct opq offers;
    size_t n_results, n_offers;
    int busy; /* a batch is being applied */
    int stopping;
    int failing; /* the last batch failed */
    int blocked; /* an offer waits for room */
    int lost;    /* offers were dropped while failing */
    uint64_t posted;   /* results queued, ever */
    uint64_t recorded; /* the seq of the last result committed */
    struct jwriter_stats stats;
};

static void op_free(struct op *o)
{
    if (o == NULL)
        return;
    free(o->path);
    free(o->text);
    free(o->key);
    free(o->etag);
    free(o->sha256_state);
    free(o->delivered_state);
    free(o->chain);
    free(o->delivered_sha256);
    free(o->held);
    free(o);
}

static void opq_free(struct opq *q)
{
    struct op *o;

    for (o = TAILQ_FIRST(q); o != NULL; o = TAILQ_FIRST(q)) {
        TAILQ_REMOVE(q, o, link);
        op_free(o);
    }
}

/* A new operation; path and text are copied (either may be NULL). */
static struct op *op_new(enum op_kind kind, const struct journal_file *f,
                         const char *path, const char *text)
{
    struct op *o = calloc(1, sizeof(*o));

    if (o == NULL)
        return NULL;
    o->kind = kind;
    if (f) {
        o->id = f->id;
        o->size = f->size;
        o->mtime_ns = f->mtime_ns;
        path = f->path;
    }
    o->path = path ? strdup(path) : NULL;
    o->text = text ? strdup(text) : NULL;
    if ((path && o->path == NULL) || (text && o->text == NULL)) {
        op_free(o);
        return NULL;
    }
    return o;
}

/* *dst = a copy of src (NULL stays NULL): 0 or -ENOMEM. */
static int dup_opt(char **dst, const char *src)
{
    if (src == NULL)
        return 0;
    *dst = strdup(src);
    return *dst ? 0 : -ENOMEM;
}

/* Queue a result: never refused but for memory. */
static int post(struct jwriter *w, struct op *o)
{
    if (o == NULL)
        return -ENOMEM;
    pthread_mutex_lock(&w->lock);
    o->seq = ++w->posted;
    TAILQ_INSERT_TAIL(&w->results, o, link);
    w->n_results++;
    pthread_cond_signal(&w->more);
    pthread_mutex_unlock(&w->lock);
    return 0;
}

/* Wait for room among the offers, or for stop_fd.  Lock held. */
static int wait_room(struct jwriter *w, int stop_fd)
{
    struct pollfd p[2] = {{.fd = w->space_fd, .events = POLLIN},
                          {.fd = stop_fd, .events = POLLIN}};
    uint64_t n;
    int r = 0;

    while (r == 0 && w->n_offers >= OFFERS_MAX && !w->failing && !w->stopping) {
        w->blocked = 1;
        pthread_mutex_unlock(&w->lock);
        if (poll(p, stop_fd >= 0 ? 2 : 1, 1000) > 0) {
            if (p[1].revents & POLLIN)
                r = -EINTR;
            else if (read(w->space_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
                r = -errno;
        }
        pthread_mutex_lock(&w->lock);
    }
    return r;
}

int jwriter_offer(struct jwriter *w, enum jwriter_offer_kind kind,
                  const char *path, int64_t size, int64_t mtime_ns, int64_t now,
                  const char *peer, int stop_fd)
{
    static const enum op_kind kinds[] = {
        [JW_FOUND] = OP_OFFER,
        [JW_UPLOADED] = OP_UPLOADED,
        [JW_UNFINISHED] = OP_PARTIAL,
    };
    struct op *o = op_new(kinds[kind], NULL, path, peer);
    int r;

    if (o == NULL) { /* found again by the scan on_commit's lost asks for */
        pthread_mutex_lock(&w->lock);
        w->lost = 1;
        pthread_mutex_unlock(&w->lock);
        return -ENOMEM;
    }
    o->size = size;
    o->mtime_ns = mtime_ns;
    o->a = now;
    pthread_mutex_lock(&w->lock);
    r = wait_room(w, stop_fd);
    if (r == 0 && w->failing && w->n_offers >= OFFERS_KEEP) {
        w->lost = 1;
        r = -ENOBUFS;
    }
    if (r == 0) {
        TAILQ_INSERT_TAIL(&w->offers, o, link);
        w->n_offers++;
        o = NULL;
        pthread_cond_signal(&w->more);
    }
    pthread_mutex_unlock(&w->lock);
    op_free(o);
    return r;
}

int jwriter_checkpoint(struct jwriter *w, const struct journal_file *f,
                       const struct journal_mark *m)
{
    struct op *o, *n = op_new(OP_CHECKPOINT, f, NULL, m->token);

    if (n && (dup_opt(&n->sha256_state, m->sha256_state) < 0 ||
              dup_opt(&n->delivered_state, m->delivered_state) < 0 ||
              dup_opt(&n->chain, m->chain) < 0)) {
        op_free(n);
        n = NULL;
    }
    if (n == NULL)
        return post(w, n);
    n->a = m->offset;
    n->b = m->source_offset;
    /* A checkpoint still queued for this version is moved forward. */
    pthread_mutex_lock(&w->lock);
    TAILQ_FOREACH_REVERSE(o, &w->results, opq, link)
    {
        if (o->kind == OP_CHECKPOINT && o->id == f->id &&
            o->size == f->size && o->mtime_ns == f->mtime_ns) {
            struct op t = *o;

            o->a = n->a;
            o->b = n->b;
            o->text = n->text;
            o->sha256_state = n->sha256_state;
            o->delivered_state = n->delivered_state;
            o->chain = n->chain;
            n->text = t.text;
            n->sha256_state = t.sha256_state;
            n->delivered_state = t.delivered_state;
            n->chain = t.chain;
            pthread_mutex_unlock(&w->lock);
            op_free(n);
            return 0;
        }
    }
    pthread_mutex_unlock(&w->lock);
    return post(w, n);
}

int jwriter_range(struct jwriter *w, const struct journal_file *f,
                  const struct journal_range *rg)
{
    struct op *o;

    /* A range's progress still queued is moved forward. */
    pthread_mutex_lock(&w->lock);
    TAILQ_FOREACH_REVERSE(o, &w->results, opq, link)
    {
        if (o->kind == OP_RANGE && o->id == f->id && o->a == rg->start &&
            o->size == f->size && o->mtime_ns == f->mtime_ns) {
            if (rg->done > o->flags_done)
                o->flags_done = rg->done;
            pthread_mutex_unlock(&w->lock);
            return 0;
        }
    }
    pthread_mutex_unlock(&w->lock);
    o = op_new(OP_RANGE, f, NULL, NULL);
    if (o) {
        o->a = rg->start;
        o->b = rg->end;
        o->flags_done = rg->done;
    }
    return post(w, o);
}

int jwriter_delivered(struct jwriter *w, const struct journal_file *f,
                      const struct journal_delivery *d, int64_t now,
                      int64_t next_attempt)
{
    struct op *o = op_new(OP_DELIVERED, f, NULL, d->sha256);

    if (o) {
        o->a = now;
        o->b = next_attempt;
        o->flags = f->resume_offset > 0;
        o->outcome = d->outcome;
        if (dup_opt(&o->key, d->target_path) < 0 ||
            dup_opt(&o->etag, d->etag) < 0 ||
            dup_opt(&o->delivered_sha256, d->delivered_sha256) < 0) {
            op_free(o);
            o = NULL;
        }
    }
    return post(w, o);
}

int jwriter_requeue(struct jwriter *w, const struct journal_file *f,
                    int64_t next_attempt, const char *error, int count_attempt,
                    int restart)
{
    struct op *o = op_new(OP_REQUEUE, f, NULL, error);

    if (o) {
        o->b = next_attempt;
        o->flags = (count_attempt ? F_COUNT : 0) | (restart ? F_RESTART : 0);
    }
    return post(w, o);
}

int jwriter_restat(struct jwriter *w, const struct journal_file *f,
                   int64_t size, int64_t mtime_ns, int64_t next_attempt,
                   const char *error)
{
    struct op *o = op_new(OP_RESTAT, f, NULL, error);

    if (o) {
        o->size = size;
        o->mtime_ns = mtime_ns;
        o->b = next_attempt;
    }
    return post(w, o);
}

int jwriter_fail(struct jwriter *w, const struct journal_file *f,
                 const char *error)
{
    return post(w, op_new(OP_FAIL, f, NULL, error));
}

int jwriter_agent_set(struct jwriter *w, const char *key, const char *value,
                      int64_t now)
{
    struct op *o, *n = op_new(OP_AGENT_SET, NULL, NULL, value);
    char *t;

    if (n)
        n->key = strdup(key);
    if (n && n->key == NULL) {
        op_free(n);
        n = NULL;
    }
    if (n == NULL)
        return post(w, n);
    n->a = now;
    /* A value of key still queued is replaced: the last one counts, and
     * one written every second does not pile up while the journal
     * refuses writes. */
    pthread_mutex_lock(&w->lock);
    TAILQ_FOREACH_REVERSE(o, &w->results, opq, link)
    {
        if (o->kind == OP_AGENT_SET && strcmp(o->key, key) == 0) {
            t = o->text;
            o->text = n->text;
            n->text = t;
            o->a = now;
            pthread_mutex_unlock(&w->lock);
            op_free(n);
            return 0;
        }
    }
    pthread_mutex_unlock(&w->lock);
    return post(w, n);
}

int jwriter_prune(struct jwriter *w, int64_t before)
{
    struct op *o = op_new(OP_PRUNE, NULL, NULL, NULL);

    if (o)
        o->b = before;
    return post(w, o);
}

int jwriter_sweep(struct jwriter *w, int64_t now, int64_t before,
                  const int64_t *held, size_t n_held)
{
    struct op *o = op_new(OP_SWEEP, NULL, NULL, NULL);

    if (o && n_held > 0) {
        o->held = malloc(n_held * sizeof(*held));
        if (o->held == NULL) {
            op_free(o);
            return -ENOMEM;
        }
        memcpy(o->held, held, n_held * sizeof(*held));
        o->n_held = n_held;
    }
    if (o) {
        o->a = now;
        o->b = before;
    }
    return post(w, o);
}

/* Apply one operation inside the batch's transaction; o->queued says how
 * many rows it made due. */
static int apply(struct journal *j, struct op *o)
{
    const struct journal_file f = {
        .id = o->id, .size = o->size, .mtime_ns = o->mtime_ns};
    int r = 0;

    o->queued = 0;
    switch (o->kind) {
    case OP_UPLOADED:
        r = journal_partial_clear(j, o->path);
        if (r == 0)
            r = journal_offer(j, o->path, o->size, o->mtime_ns, o->a,
                              &o->queued);
        break;
    case OP_OFFER:
        r = journal_offer(j, o->path, o->size, o->mtime_ns, o->a, &o->queued);
        break;
    case OP_PARTIAL:
        r = journal_partial_add(j, o->path, o->size, o->mtime_ns, o->text,
                                o->a);
        break;
    case OP_CHECKPOINT: {
        struct journal_mark m = {.offset = o->a,
                                 .source_offset = o->b,
                                 .token = o->text,
                                 .sha256_state = o->sha256_state,
                                 .delivered_state = o->delivered_state,
                                 .chain = o->chain};

        r = journal_checkpoint(j, &f, &m);
        break;
    }
    case OP_RANGE: {
        struct journal_range rg = {.start = o->a, .end = o->b,
                                   .done = o->flags_done};

        r = journal_range_save(j, &f, &rg);
        break;
    }
    case OP_DELIVERED: {
        struct journal_delivery d = {.sha256 = o->text,
                                     .target_path = o->key,
                                     .etag = o->etag,
                                     .outcome = o->outcome,
                                     .delivered_sha256 = o->delivered_sha256};

        o->result = journal_delivered(j, &f, &d, o->a, o->b);
        o->queued = o->result == -ESTALE;
        r = o->queued ? 0 : o->result;
        break;
    }
    case OP_RESTAT:
        r = journal_restat(j, o->id, o->size, o->mtime_ns);
        if (r == 0)
            r = journal_requeue(j, o->id, o->b, o->text, 0, 1);
        o->queued = 1;
        break;
    case OP_REQUEUE:
        r = journal_requeue(j, o->id, o->b, o->text, o->flags & F_COUNT,
                            o->flags & F_RESTART);
        o->queued = 1;
        break;
    case OP_FAIL:
        r = journal_fail(j, o->id, o->text);
        break;
    case OP_AGENT_SET:
        r = journal_agent_set(j, o->key, o->text, o->a);
        break;
    case OP_PRUNE:
        r = journal_prune(j, o->b, &o->changes);
        break;
    case OP_SWEEP:
        r = journal_sweep(j, o->a, o->b, o->held, o->n_held, &o->changes);
        o->queued = o->changes;
        break;
    }
    return r;
}

/* What the log says once a batch is committed. */
static void report(const struct op *o)
{
    switch (o->kind) {
    case OP_OFFER:
        if (o->queued) { /* 100,000 in a burst: not each at info */
            log_debug("queued %s (%lld bytes)", o->path, (long long)o->size);
            metrics_queued();
        }
        break;
    case OP_UPLOADED:
        if (o->queued) {
            log_info("queued %s (%lld bytes, uploaded by %s)", o->path,
                     (long long)o->size, o->text);
            metrics_queued();
        }
        break;
    case OP_FAIL:
        metrics_failed();
        break;
    case OP_DELIVERED:
        if (o->result == 0)
            metrics_delivered(o->size);
        if (o->result == 0 && o->outcome && strcmp(o->outcome, "skipped") == 0)
            log_info("skipped %s: the target has it (target.on_exists)",
                     o->path);
        else if (o->result == 0)
            log_info("delivered %s%s%s (%lld bytes%s, sha256 %s)", o->path,
                     o->key ? " as " : "", o->key ? o->key : "",
                     (long long)o->size, o->flags ? ", resumed" : "",
                     o->text);
        else
            log_info("%s changed while it was sent; sending it again",
                     o->path);
        break;
    case OP_PRUNE:
        if (o->changes > 0)
            log_info("journal: forgot %d files delivered before %lld",
                     o->changes, (long long)o->b);
        break;
    case OP_SWEEP:
        if (o->changes > 0)
            log_warn("journal: %d files left sending by no worker are queued "
                     "again",
                     o->changes);
        break;
    default:
        break;
    }
}

struct batch {
    struct opq results, offers;
    size_t n_results, n_offers;
    int queued;
    int any_delivered;
    const struct op *bad; /* the operation that failed */
};

/*
 * A connection that could not even roll back may still hold the write
 * lock: start afresh with a new one.
 */
static void reopen(struct jwriter *w)
{
    struct journal *j = NULL;
    char *path = strdup(journal_path(w->j));

    if (path && journal_open(path, JOURNAL_CREATE, &j) == 0) {
        journal_close(w->j);
        w->j = j;
        journal_set_cancel(w->j, w->cancel_fd);
    }
    free(path);
}

/* Apply a whole batch in one transaction: 0 or a negative errno. */
static int apply_batch(struct jwriter *w, struct batch *b)
{
    struct opq *qs[2] = {&b->results, &b->offers};
    struct op *o;
    int i, r;

    b->queued = 0;
    b->bad = NULL;
    r = journal_set_sync(w->j, b->any_delivered);
    if (r == 0)
        r = journal_begin(w->j);
    for (i = 0; r == 0 && i < 2; i++) {
        TAILQ_FOREACH(o, qs[i], link)
        {
            r = apply(w->j, o);
            if (r < 0) {
                b->bad = o;
                break;
            }
            b->queued += o->queued;
        }
    }
    if (r == 0)
        r = journal_commit(w->j);
    if (r < 0 && journal_rollback(w->j) < 0)
        reopen(w);
    return r;
}

/* Take a batch off the queues.  Lock held. */
static void take(struct jwriter *w, struct batch *b, int one)
{
    struct op *o;
    size_t max = one ? 1 : BATCH_OFFERS;

    memset(b, 0, sizeof(*b));
    TAILQ_INIT(&b->results);
    TAILQ_INIT(&b->offers);
    for (o = TAILQ_FIRST(&w->results); o && (!one || b->n_results == 0);
         o = TAILQ_FIRST(&w->results)) {
        TAILQ_REMOVE(&w->results, o, link);
        TAILQ_INSERT_TAIL(&b->results, o, link);
        b->n_results++;
        b->any_delivered |= o->kind == OP_DELIVERED;
    }
    if (one && b->n_results)
        max = 0;
    for (o = TAILQ_FIRST(&w->offers); o && b->n_offers < max;
         o = TAILQ_FIRST(&w->offers)) {
        TAILQ_REMOVE(&w->offers, o, link);
        TAILQ_INSERT_TAIL(&b->offers, o, link);
        b->n_offers++;
    }
    w->n_results -= b->n_results;
    w->n_offers -= b->n_offers;
}

/* Put a failed batch back at the head of the queues.  Lock held. */
static void put_back(struct jwriter *w, struct batch *b)
{
    TAILQ_CONCAT(&b->results, &w->results, link);
    TAILQ_CONCAT(&w->results, &b->results, link);
    TAILQ_CONCAT(&b->offers, &w->offers, link);
    TAILQ_CONCAT(&w->offers, &b->offers, link);
    w->n_results += b->n_results;
    w->n_offers += b->n_offers;
}

/* What to do about an error: a hint for the log. */
static const char *advice(int r)
{
    switch (r) {
    case -ENOSPC:
        return "free space on the filesystem that holds it";
    case -EROFS:
    case -EACCES:
        return "check that the agent's user can write it and its folder";
    case -EBUSY:
        return "another process holds its write lock";
    default:
        return "check the disk and the file";
    }
}

struct fail_log {
    int64_t since_ms; /* failing since, 0 if not */
    int64_t said_ms;  /* last said so */
    int64_t retry_ms; /* next delay */
};

/* Say that a batch failed: at once the first time, then once a minute. */
static void say_failed(struct jwriter *w, struct fail_log *fl, int r,
                       const struct op *bad, size_t waiting)
{
    int64_t now = mono_ms();
    const char *what = bad && bad->path ? bad->path : "bookkeeping";

    if (fl->since_ms == 0) {
        fl->since_ms = now;
        log_error("journal %s: %s (writing %s); %zu changes kept in memory, "
                  "retrying every %d s at most: %s",
                  journal_path(w->j), journal_errmsg(w->j), what, waiting,
                  RETRY_MAX_MS / 1000, advice(r));
        fl->said_ms = now;
    } else if (now - fl->said_ms >= REMIND_MS) {
        log_warn("journal %s: still failing after %lld s (%s); %zu changes "
                 "waiting",
                 journal_path(w->j), (long long)(now - fl->since_ms) / 1000,
                 journal_errmsg(w->j), waiting);
        fl->said_ms = now;
    } else {
        log_debug("journal %s: still failing (%s); %zu changes waiting",
                  journal_path(w->j), journal_errmsg(w->j), waiting);
    }
}

/* Drop the one operation that fails on its own (a bug, not the disk). */
static void drop_bad(struct jwriter *w, struct batch *b, int r)
{
    struct op *o = (struct op *)b->bad;
    struct opq *q = o->kind <= OP_UPLOADED ? &b->offers : &b->results;

    log_error("journal %s: %s: %s; this change is dropped (a scan or a "
              "retry will redo it)",
              journal_path(w->j), o->path ? o->path : "bookkeeping",
              journal_errmsg(w->j));
    TAILQ_REMOVE(q, o, link);
    if (q == &b->offers)
        b->n_offers--;
    else
        b->n_results--;
    op_free(o);
    b->bad = NULL;
}

/*
 * Account for a batch (lock held; logs nothing): a failed one goes back to
 * the queues.  Returns whether it was committed.
 */
static int settle(struct jwriter *w, struct batch *b, int r, int *recovered,
                  int *lost)
{
    uint64_t one = 1;

    *recovered = *lost = 0;
    if (r < 0) {
        put_back(w, b);
        w->failing = 1;
        return 0;
    }
    *recovered = w->failing;
    w->failing = 0;
    /* Results are committed in the order they were queued. */
    if (!TAILQ_EMPTY(&b->results))
        w->recorded = TAILQ_LAST(&b->results, opq)->seq;
    if (w->lost && w->n_offers == 0) {
        *lost = 1;
        w->lost = 0;
    }
    w->stats.commits++;
    w->stats.offers += (int64_t)b->n_offers;
    if (w->blocked && w->n_offers < OFFERS_MAX) {
        w->blocked = 0;
        if (write(w->space_fd, &one, sizeof(one)) < 0)
            *lost = 1; /* cannot happen with an eventfd; rescan anyway */
    }
    return 1;
}

/* After a committed batch, with no lock held: log, free, call back. */
static void committed(struct jwriter *w, struct batch *b, int recovered,
                      int lost, struct fail_log *fl)
{
    struct opq *qs[2] = {&b->results, &b->offers};
    struct op *o;
    int i;

    if (recovered) {
        log_info("journal %s: writable again after %lld s", journal_path(w->j),
                 (long long)(mono_ms() - fl->since_ms) / 1000);
        memset(fl, 0, sizeof(*fl));
    }
    for (i = 0; i < 2; i++) {
        TAILQ_FOREACH(o, qs[i], link)
        {
            report(o);
        }
        opq_free(qs[i]);
    }
    if (w->cb.on_commit)
        w->cb.on_commit(w->cb.arg, b->queued, recovered, lost);
    if (mono_ms() - w->restarted_ms >= WAL_RESTART_MS) {
        w->restarted_ms = mono_ms();
        if (journal_wal_restart(w->j) < 0 && journal_wal_restart(w->j) < 0)
            log_debug("journal %s: restarting the WAL: %s",
                      journal_path(w->j), journal_errmsg(w->j));
    }
}

/* Wait for work or a retry.  Lock held; 0 when it is time to stop. */
static int wait_work(struct jwriter *w, const struct fail_log *fl,
                     int64_t *stop_by)
{
    struct timespec ts;
    int64_t until;

    for (;;) {
        if (w->stopping && *stop_by == 0)
            *stop_by = mono_ms() + STOP_FLUSH_MS;
        if (w->n_results + w->n_offers == 0) {
            if (w->stopping)
                return 0;
            pthread_cond_wait(&w->more, &w->lock);
            continue;
        }
        if (!w->failing)
            return 1;
        if (*stop_by && mono_ms() >= *stop_by)
            return 0;
        until = mono_ms() + (fl->retry_ms ? fl->retry_ms : 1);
        if (*stop_by && until > *stop_by)
            until = *stop_by;
        ts = mono_timespec(until);
        pthread_cond_timedwait(&w->more, &w->lock, &ts);
        if (mono_ms() >= until)
            return 1;
    }
}

/* The next delay between tries of a failing journal. */
static int64_t next_retry(int64_t ms)
{
    if (ms == 0)
        return 500;
    return ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : ms * 2;
}

static void *writer_main(void *arg)
{
    struct jwriter *w = arg;
    struct fail_log fl = {0};
    struct batch b;
    const struct op *culprit;
    int64_t stop_by = 0;
    size_t waiting, isolate = 0;
    int r, recovered, lost, ok;

    pthread_mutex_lock(&w->lock);
    while (wait_work(w, &fl, &stop_by)) {
        take(w, &b, isolate > 0);
        w->busy = 1;
        pthread_mutex_unlock(&w->lock);
        r = apply_batch(w, &b);
        if (r < 0 && isolate > 0 && b.bad && (r == -EEXIST || r == -EINVAL)) {
            drop_bad(w, &b, r);
            r = 0;
        }
        /* The change to name if it failed: valid while it waits again. */
        culprit = b.bad ? b.bad : TAILQ_FIRST(&b.results);
        if (culprit == NULL)
            culprit = TAILQ_FIRST(&b.offers);
        /* A change refused on its own (not the disk): the batch it was in
         * is applied one change at a time, to find it. */
        if (r < 0 && isolate == 0 && b.bad && (r == -EEXIST || r == -EINVAL))
            isolate = b.n_results + b.n_offers;
        else if (isolate > 0 && r == 0)
            isolate--;
        pthread_mutex_lock(&w->lock);
        ok = settle(w, &b, r, &recovered, &lost);
        waiting = w->n_results + w->n_offers;
        pthread_mutex_unlock(&w->lock);
        fl.retry_ms = ok || isolate ? 0 : next_retry(fl.retry_ms);
        if (ok)
            committed(w, &b, recovered, lost, &fl);
        else
            say_failed(w, &fl, r, culprit, waiting);
        pthread_mutex_lock(&w->lock);
        /* Idle once the batch is logged and on_commit has run. */
        w->busy = 0;
        pthread_cond_broadcast(&w->idle);
    }
    waiting = w->n_results + w->n_offers;
    pthread_mutex_unlock(&w->lock);
    if (waiting > 0)
        log_error("journal %s: stopping with %zu changes not written (%s); "
                  "files being sent are sent again at the next start, files "
                  "found are found again by its scan",
                  journal_path(w->j), waiting, journal_errmsg(w->j));
    return NULL;
}

int jwriter_new(const char *path, const struct jwriter_cb *cb,
                struct jwriter **out)
{
    struct jwriter *w;
    int r;

    *out = NULL;
    w = calloc(1, sizeof(*w));
    if (w == NULL)
        return -ENOMEM;
    w->space_fd = w->cancel_fd = -1;
    w->cb = *cb;
    TAILQ_INIT(&w->results);
    TAILQ_INIT(&w->offers);
    pthread_mutex_init(&w->lock, NULL);
    mono_cond_init(&w->more);
    mono_cond_init(&w->idle);
    w->space_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    w->cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    r = w->space_fd < 0 || w->cancel_fd < 0 ? -errno : 0;
    if (r == 0)
        r = journal_open(path, JOURNAL_CREATE, &w->j);
    if (r == 0) {
        journal_set_cancel(w->j, w->cancel_fd);
        r = -pthread_create(&w->thread, NULL, writer_main, w);
    }
    if (r < 0) {
        jwriter_free(w);
        return r;
    }
    w->started = 1;
    *out = w;
    return 0;
}

int jwriter_flush(struct jwriter *w, int timeout_ms)
{
    struct timespec ts = mono_timespec(mono_ms() + timeout_ms);
    int r = 0;

    pthread_mutex_lock(&w->lock);
    while (r == 0 && (w->busy || w->n_results + w->n_offers > 0))
        if (pthread_cond_timedwait(&w->idle, &w->lock, &ts) == ETIMEDOUT)
            r = -ETIMEDOUT;
    pthread_mutex_unlock(&w->lock);
    return r;
}

void jwriter_results(struct jwriter *w, uint64_t *posted, uint64_t *recorded)
{
    pthread_mutex_lock(&w->lock);
    if (posted)
        *posted = w->posted;
    if (recorded)
        *recorded = w->recorded;
    pthread_mutex_unlock(&w->lock);
}

void jwriter_stats(struct jwriter *w, struct jwriter_stats *out)
{
    pthread_mutex_lock(&w->lock);
    *out = w->stats;
    out->waiting = (int64_t)(w->n_results + w->n_offers);
    out->failing = w->failing;
    pthread_mutex_unlock(&w->lock);
}

/* Join the writer; past the flush deadline, cut its wait for SQLite. */
static void join_writer(struct jwriter *w)
{
    struct timespec ts;
    uint64_t one = 1;

    clock_gettime(CLOCK_REALTIME, &ts); /* pthread_timedjoin_np's clock */
    ts.tv_sec += STOP_FLUSH_MS / 1000 + 1;
    if (pthread_timedjoin_np(w->thread, NULL, &ts) == 0)
        return;
    if (write(w->cancel_fd, &one, sizeof(one)) < 0)
        log_error("journal writer: cancelling: %s", strerror(errno));
    pthread_join(w->thread, NULL);
}

void jwriter_free(struct jwriter *w)
{
    if (w == NULL)
        return;
    if (w->started) {
        pthread_mutex_lock(&w->lock);
        w->stopping = 1;
        pthread_cond_signal(&w->more);
        pthread_mutex_unlock(&w->lock);
        join_writer(w);
    }
    opq_free(&w->results);
    opq_free(&w->offers);
    journal_close(w->j);
    if (w->space_fd >= 0)
        close(w->space_fd);
    if (w->cancel_fd >= 0)
        close(w->cancel_fd);
    pthread_cond_destroy(&w->idle);
    pthread_cond_destroy(&w->more);
    pthread_mutex_destroy(&w->lock);
    free(w);
}
