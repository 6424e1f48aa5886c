/*
 * Worker threads (sched.h).
 *
 * A worker's round: take sched's lock only to read what it needs (are we
 * stopping, is the target down, the wake-up count), let go, claim a row on
 * its own journal connection, send it, hand the result to the journal
 * writer, and mark the row no longer held.  An idle worker sleeps on the
 * condition variable until sched_notify(), until the next row is due, or
 * IDLE_POLL_MS at most (so that a "sftprelay retry" written by another
 * process is seen soon); it sleeps only if no sched_notify() came since it
 * let go of the lock, so no wake-up is lost.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "sftprelay/after.h"
#include "sftprelay/backoff.h"
#include "sftprelay/conf.h"
#include "sftprelay/journal.h"
#include "sftprelay/jwriter.h"
#include "sftprelay/log.h"
#include "sftprelay/loop.h"
#include "sftprelay/metrics.h"
#include "sftprelay/ratelimit.h"
#include "sftprelay/sched.h"
#include "sftprelay/sidehash.h"
#include "sftprelay/sink.h"
#include "sftprelay/source.h"
#include "sftprelay/transform.h"
#include "sftprelay/xfer.h"

#define IDLE_POLL_MS 2000
/* Rows a worker claims at a time: up to CLAIM_ROWS small files, no more
 * once CLAIM_BYTES are claimed (a bigger file comes alone). */
#define CLAIM_ROWS 16
#define CLAIM_BYTES (4 * 1024 * 1024)
#define SWEEP_EVERY_S 60 /* look for rows left sending by no worker */
#define ERROR_REMIND_MS 60000

struct worker {
    struct sched *s;
    int id;
    pthread_t thread;
    int started;
    struct journal *j; /* claims only */
    struct sink *sink;
    struct source *src;
    struct after *after; /* source.after_delivery, on src */
    struct transform_chain *chain;
    char chain_id[TRANSFORM_ID_MAX]; /* transform_chain_id() of chain */
    void *buf;
    struct sidehash *hash; /* hashes the source beside the worker */
    const struct journal_file *cur; /* being sent */
    int64_t started_ms;             /* mono_ms(): the send under way began */
    /* Claimed, not yet sent: batch[next..n). */
    struct journal_file batch[CLAIM_ROWS];
    int next, n;
    int64_t held[CLAIM_ROWS]; /* ids claimed and not yet recorded; s->lock */
};

static int probe_target(struct worker *w);
static int probe_source(struct worker *w);

/*
 * The target, or the source host, failed as a whole: the workers wait
 * while one of them probes it.  Fields but name, key, max_s and probe
 * are guarded by sched.lock.
 */
struct outage {
    const char *name; /* "target", "source" */
    const char *key;  /* the journal's agent fact: "target_error" */
    int max_s;        /* the longest delay between probes */
    int (*probe)(struct worker *w); /* 0 when it answers; no lock held */
    int down;
    int probing;         /* a worker is probing it */
    int64_t probes;      /* failed in a row */
    int64_t probe_at_ms; /* monotonic: the next probe */
};

struct sched {
    struct sched_opts o;
    const struct conf *c;
    struct jwriter *jw;
    int cancel_fd; /* readable once stopping: wakes every wait */
    int done_fd;   /* readable once every worker has returned */
    struct worker *w;
    int n;
    struct ratelimit *rate; /* transfer.bandwidth_limit, or NULL */

    /* Guarded by lock. */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int stopping;
    int running;      /* workers not yet returned */
    uint64_t wakeups; /* sched_notify() calls */
    int64_t once_cursor;   /* --once: the highest id claimed */
    uint8_t *once_tried;   /* --once: a bit per id claimed, from once_base */
    int64_t once_base;
    size_t once_bytes;
    struct outage target, source;
    int64_t throttled; /* answers "slow down" in a row (-EAGAIN) */
    int64_t sweep_at_ms;   /* monotonic: the next sweep */
    int64_t error_said_ms; /* monotonic: a claim error last logged */
};

static int64_t now_s(void)
{
    return (int64_t)time(NULL);
}

int sched_new(const struct sched_opts *o, struct sched **out)
{
    const struct conf *c = o->c;
    struct sched *s;
    struct transform_chain *probe = NULL;
    int r;

    *out = NULL;
    r = transform_chain_new(c->transforms.steps, c->transforms.n, &probe);
    transform_chain_free(probe);
    if (r < 0) {
        log_error("%s: transforms: %s", c->file, strerror(-r));
        return r;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    s->o = *o;
    s->c = c;
    s->target = (struct outage){.name = "target",
                                .key = "target_error",
                                .max_s = c->target.probe_interval,
                                .probe = probe_target};
    s->source = (struct outage){.name = "source",
                                .key = "source_error",
                                .max_s = c->source.poll_interval,
                                .probe = probe_source};
    pthread_mutex_init(&s->lock, NULL);
    mono_cond_init(&s->wake);
    s->cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    s->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    s->n = c->transfer.workers;
    s->w = calloc((size_t)s->n, sizeof(*s->w));
    if (s->cancel_fd < 0 || s->done_fd < 0 || s->w == NULL ||
        (c->transfer.bandwidth_limit > 0 &&
         ratelimit_new(c->transfer.bandwidth_limit, &s->rate) < 0)) {
        sched_free(s);
        return -ENOMEM;
    }
    if (s->o.sweep_s <= 0)
        s->o.sweep_s = SWEEP_EVERY_S;
    s->sweep_at_ms = mono_ms() + (int64_t)s->o.sweep_s * 1000;
    *out = s;
    return 0;
}

int sched_done_fd(const struct sched *s)
{
    return s->done_fd;
}

void sched_notify(struct sched *s)
{
    pthread_mutex_lock(&s->lock);
    s->wakeups++;
    pthread_cond_broadcast(&s->wake);
    pthread_mutex_unlock(&s->lock);
}

/* Sleep until woken, stopping, or ms from now.  Called with the lock held. */
static void sleep_locked(struct sched *s, int64_t ms)
{
    struct timespec ts = mono_timespec(mono_ms() + (ms > 0 ? ms : 1));

    if (!s->stopping)
        pthread_cond_timedwait(&s->wake, &s->lock, &ts);
}

/* The delay before the next probe of o, which is down.  Lock held. */
static int64_t probe_delay(struct sched *s, const struct outage *o)
{
    return backoff_ms(o->probes, s->c->transfer.backoff_initial, o->max_s,
                      backoff_rnd());
}

/* Say that o is back, in the log and in the journal. */
static void said_up(struct sched *s, const struct outage *o)
{
    log_info("%s reachable again", o->name);
    metrics_outage(o->name, NULL);
    if (jwriter_agent_set(s->jw, o->key, "", now_s()) < 0)
        log_error("journal: out of memory recording the %s's state", o->name);
}

/* Connect again: 0 if the target answers.  No lock held. */
static int probe_target(struct worker *w)
{
    int r;

    sink_disconnect(w->sink);
    r = sink_connect(w->sink);
    if (r < 0 && r != -ECANCELED)
        log_debug("target probe: %s", sink_error(w->sink));
    return r;
}

/* Connect again: 0 if the source host answers.  No lock held. */
static int probe_source(struct worker *w)
{
    int r;

    w->src->err[0] = '\0';
    r = w->src->ops->connect ? w->src->ops->connect(w->src) : 0;
    if (r < 0 && r != -ECANCELED)
        log_debug("source probe: %s", source_error(w->src, r));
    return r;
}

/*
 * While o is down, wait; the first worker due probes it.  (With --once,
 * each file is tried once whatever the target does.)  Lock held (let go
 * while probing).  -ENOENT when stopping.
 */
static int wait_up(struct worker *w, struct outage *o)
{
    struct sched *s = w->s;
    int64_t now;
    int r;

    while (!s->stopping && o->down && !s->o.once) {
        now = mono_ms();
        if (o->probing || now < o->probe_at_ms) {
            sleep_locked(s, o->probing ? IDLE_POLL_MS : o->probe_at_ms - now);
            continue;
        }
        o->probing = 1;
        pthread_mutex_unlock(&s->lock);
        r = o->probe(w);
        if (r == 0)
            said_up(s, o);
        pthread_mutex_lock(&s->lock);
        o->probing = 0;
        if (r == 0) {
            o->down = 0;
            o->probes = 0;
            s->wakeups++;
            pthread_cond_broadcast(&s->wake);
        } else {
            o->probes++;
            o->probe_at_ms = mono_ms() + probe_delay(s, o);
        }
    }
    return s->stopping ? -ENOENT : 0;
}

/*
 * Every sweep_s, busy or idle, queue again rows left sending by no worker
 * (claimed over sweep_s ago: a row is marked held at once after its
 * claim, so none being sent is taken).
 */
static void sweep(struct worker *w)
{
    struct sched *s = w->s;
    int64_t held[64 * CLAIM_ROWS];
    size_t n = 0;
    int i, k;

    pthread_mutex_lock(&s->lock);
    if (s->o.once || mono_ms() < s->sweep_at_ms) {
        pthread_mutex_unlock(&s->lock);
        return;
    }
    s->sweep_at_ms = mono_ms() + (int64_t)s->o.sweep_s * 1000;
    for (i = 0; i < s->n; i++)
        for (k = 0; k < CLAIM_ROWS && n < sizeof(held) / sizeof(held[0]); k++)
            if (s->w[i].held[k])
                held[n++] = s->w[i].held[k];
    pthread_mutex_unlock(&s->lock);
    if (jwriter_sweep(s->jw, now_s(), now_s() - s->o.sweep_s, held, n) < 0)
        log_error("journal: out of memory for the sweep; trying again in "
                  "%d s",
                  s->o.sweep_s);
}

/*
 * A result the journal writer could not take (out of memory): the row
 * stays sending, and the sweep queues it again within two minutes.
 */
static void posted(const struct journal_file *f, int r)
{
    if (r < 0)
        log_error("%s: recording the result: %s; it is sent again within "
                  "%d s",
                  f->path, strerror(-r), 2 * SWEEP_EVERY_S);
}

/* Whether a claim error is to be logged now: once a minute, all workers. */
static int say_claim_error(struct sched *s)
{
    int64_t now = mono_ms();
    int say;

    pthread_mutex_lock(&s->lock);
    say = s->error_said_ms == 0 || now - s->error_said_ms >= ERROR_REMIND_MS;
    if (say)
        s->error_said_ms = now;
    pthread_mutex_unlock(&s->lock);
    return say;
}

/* How long an idle worker may sleep after claim() found nothing (r). */
static int64_t idle_ms(struct worker *w, int r)
{
    int64_t due, wait = IDLE_POLL_MS;

    if (r != -ENOENT && r != -EBUSY) {
        if (say_claim_error(w->s))
            log_error("journal %s: claiming the next file: %s; %s",
                      journal_path(w->j), journal_errmsg(w->j),
                      w->s->o.once ? "stopping" : "trying again");
        return wait;
    }
    if (r == -ENOENT && journal_next_due(w->j, &due) == 0 &&
        (due - now_s()) * 1000 < wait)
        wait = (due - now_s()) * 1000;
    return wait;
}

/*
 * --once: mark id claimed in this run; 1 if it already was, -ENOMEM.
 * Claims go in id order, so the bits cover a short range.  Lock held.
 */
static int once_mark(struct sched *s, int64_t id)
{
    size_t byte, n;
    uint8_t *p;

    if (s->once_tried == NULL)
        s->once_base = id;
    if (id < s->once_base)
        return 1; /* below the first claim: claimed before this run's */
    byte = (size_t)((id - s->once_base) / 8);
    if (byte >= s->once_bytes) {
        n = s->once_bytes ? s->once_bytes : 1024;
        while (n <= byte)
            n *= 2;
        p = realloc(s->once_tried, n);
        if (p == NULL)
            return -ENOMEM;
        memset(p + s->once_bytes, 0, n - s->once_bytes);
        s->once_tried = p;
        s->once_bytes = n;
    }
    if (s->once_tried[byte] & (1u << ((id - s->once_base) % 8)))
        return 1;
    s->once_tried[byte] |= (uint8_t)(1u << ((id - s->once_base) % 8));
    if (id > s->once_cursor)
        s->once_cursor = id;
    return 0;
}

/*
 * Take a claimed row, or (--once) give back one this run already tried:
 * another worker may have tried it and queued it again after this one
 * read the cursor.  (Comparing with the cursor is not enough: two workers
 * claim 51 and 52 from the same cursor, and 52's worker may move the
 * cursor first.)
 */
static int claimed(struct worker *w, struct journal_file *f, int slot)
{
    struct sched *s = w->s;
    int tried = 0;

    pthread_mutex_lock(&s->lock);
    if (s->o.once)
        tried = once_mark(s, f->id) != 0;
    if (!tried)
        w->held[slot] = f->id;
    pthread_mutex_unlock(&s->lock);
    if (tried) {
        posted(f,
               jwriter_requeue(s->jw, f, f->next_attempt, f->last_error, 0, 0));
        journal_file_clear(f);
    }
    return !tried;
}

/* The row in slot of w's batch is recorded: no longer held. */
static void unhold(struct worker *w, int slot)
{
    pthread_mutex_lock(&w->s->lock);
    w->held[slot] = 0;
    pthread_mutex_unlock(&w->s->lock);
}

/*
 * Give back the rows claimed and not sent (stopping, or the target went
 * down): queued again as they were, no attempt counted.
 */
static void give_back(struct worker *w)
{
    struct journal_file *f;

    for (; w->next < w->n; w->next++) {
        f = &w->batch[w->next];
        if (f->id == 0)
            continue; /* given back when claimed */
        posted(f, jwriter_requeue(w->s->jw, f, f->next_attempt, f->last_error,
                                  0, 0));
        journal_file_clear(f);
        unhold(w, w->next);
    }
    w->next = w->n = 0;
}

/* Claim a batch into w->batch: 0 if one row or more is w's to send. */
static int claim_batch(struct worker *w, int64_t cursor)
{
    int r, i, kept = 0;

    r = journal_claim_batch(w->j, now_s(), cursor, CLAIM_ROWS, CLAIM_BYTES,
                            w->batch, &w->n);
    if (r < 0)
        return r;
    w->next = 0;
    for (i = 0; i < w->n; i++)
        kept += claimed(w, &w->batch[i], i);
    if (kept == 0) {
        w->n = 0;
        return -EAGAIN;
    }
    return 0;
}

/*
 * The next row to send (its slot in w->batch), or -ENOENT when the worker
 * should stop (once mode with nothing left, or stopping).  Waits while
 * the target is down or nothing is due.
 */
static int claim(struct worker *w)
{
    struct sched *s = w->s;
    uint64_t seen;
    int64_t cursor, wait;
    int r, down;

    for (;;) {
        while (w->next < w->n && w->batch[w->next].id == 0)
            w->next++; /* given back when claimed (--once) */
        after_run(w->after);
        sweep(w);
        pthread_mutex_lock(&s->lock);
        down = (s->target.down || s->source.down) && !s->o.once;
        pthread_mutex_unlock(&s->lock);
        /* Another worker found the target down: what this one claimed
         * waits in the journal, queued, not here. */
        if (down && w->next < w->n)
            give_back(w);
        pthread_mutex_lock(&s->lock);
        r = wait_up(w, &s->target);
        if (r == 0)
            r = wait_up(w, &s->source);
        seen = s->wakeups;
        cursor = s->o.once ? s->once_cursor : -1;
        pthread_mutex_unlock(&s->lock);
        if (r < 0)
            return r;
        if (w->next < w->n)
            return w->next++;
        r = claim_batch(w, cursor);
        if (r == 0 || r == -EAGAIN)
            continue;
        wait = idle_ms(w, r);
        /* --once ends when nothing is left, or the journal fails. */
        if (s->o.once && r != -EBUSY)
            return -ENOENT;
        pthread_mutex_lock(&s->lock);
        if (s->wakeups == seen)
            sleep_locked(s, wait);
        pthread_mutex_unlock(&s->lock);
    }
}

static int checkpoint(void *arg, const struct xfer_mark *m)
{
    struct worker *w = arg;
    struct journal_mark jm = {.offset = m->offset,
                              .source_offset = m->source_offset,
                              .token = m->token,
                              .sha256_state = m->sha256_state,
                              .delivered_state = m->delivered_state,
                              .chain = m->chain};

    return jwriter_checkpoint(w->s->jw, w->cur, &jm);
}

/* A transfer went through: o is up, if it was thought down. */
static void is_up(struct worker *w, struct outage *o)
{
    struct sched *s = w->s;
    int was_down;

    pthread_mutex_lock(&s->lock);
    was_down = o->down;
    o->down = 0;
    o->probes = 0;
    if (was_down) {
        s->wakeups++;
        pthread_cond_broadcast(&s->wake);
    }
    pthread_mutex_unlock(&s->lock);
    if (was_down)
        said_up(s, o);
}

static void target_up(struct worker *w)
{
    pthread_mutex_lock(&w->s->lock);
    w->s->throttled = 0;
    pthread_mutex_unlock(&w->s->lock);
    is_up(w, &w->s->target);
    is_up(w, &w->s->source);
}

/* o failed as a whole: every worker waits for a probe. */
static void is_down(struct worker *w, struct outage *o, const char *err)
{
    struct sched *s = w->s;
    int was_down;

    pthread_mutex_lock(&s->lock);
    was_down = o->down;
    if (!was_down) {
        o->down = 1;
        o->probes = 1;
        o->probe_at_ms = mono_ms() + probe_delay(s, o);
    }
    pthread_mutex_unlock(&s->lock);
    if (was_down)
        return;
    metrics_outage(o->name, err);
    log_warn("%s: %s; probing it every %d s at most", o->name, err, o->max_s);
    if (jwriter_agent_set(s->jw, o->key, err, now_s()) < 0)
        log_error("journal: out of memory recording the %s's state", o->name);
}

/* A failed attempt of one file: back off, or give up. */
static void file_failed(struct worker *w, const struct journal_file *f,
                        const struct xfer_result *res)
{
    const struct conf *c = w->s->c;
    int64_t delay;

    if (c->transfer.max_attempts > 0 &&
        f->attempts + 1 >= c->transfer.max_attempts) {
        log_error("%s: %s; giving up after %lld attempts", f->path, res->err,
                  (long long)f->attempts + 1);
        posted(f, jwriter_fail(w->s->jw, f, res->err));
        return;
    }
    delay = (backoff_ms(f->attempts + 1, c->transfer.backoff_initial,
                        c->transfer.backoff_max, backoff_rnd()) +
             999) /
            1000;
    log_warn("%s: %s; next try in %lld s", f->path, res->err, (long long)delay);
    posted(f, jwriter_requeue(w->s->jw, f, now_s() + delay, res->err, 1, 0));
}

/* Hand the result of a transfer to the journal writer. */
static void record(struct worker *w, const struct journal_file *f,
                   const struct xfer_result *res, int r)
{
    struct jwriter *jw = w->s->jw;
    int64_t settle = (w->s->c->source.settle_ms + 999) / 1000;

    switch (r) {
    case 0: {
        /* "resumed" in the log: from a checkpoint, or ranges' progress. */
        struct journal_file g = *f;
        struct journal_delivery d = {
            .sha256 = res->sha256[0] ? res->sha256 : NULL,
            .delivered_sha256 =
                res->delivered_sha256[0] ? res->delivered_sha256 : NULL,
            .target_path = res->placed[0] ? res->placed : NULL,
            .etag = res->etag[0] ? res->etag : NULL,
            .outcome = res->skipped   ? "skipped"
                       : res->renamed ? "renamed"
                                      : "written",
        };
        int q;

        if (res->resumed_at > g.resume_offset)
            g.resume_offset = res->resumed_at;
        metrics_transfer_ms(mono_ms() - w->started_ms);
        q = jwriter_delivered(jw, &g, &d, now_s(), now_s() + settle);
        posted(f, q);
        if (q == 0 && !res->skipped)
            after_delivered(w->after, f->path, f->size, f->mtime_ns);
        target_up(w);
        return;
    }
    case -ECANCELED:
        posted(f, jwriter_requeue(jw, f, 0, NULL, 0, 0));
        return;
    case -EAGAIN: {
        /* The target asks to slow down: not the file's fault, no attempt.
         * Every worker's files back off more while it keeps asking. */
        const struct conf *c = w->s->c;
        int64_t delay, n;

        pthread_mutex_lock(&w->s->lock);
        n = ++w->s->throttled;
        pthread_mutex_unlock(&w->s->lock);
        delay = (backoff_ms(n, c->transfer.backoff_initial,
                            c->transfer.backoff_max, backoff_rnd()) +
                 999) /
                1000;
        log_warn("%s: %s; next try in %lld s", f->path, res->err,
                 (long long)delay);
        posted(f, jwriter_requeue(jw, f, now_s() + delay, res->err, 0, 0));
        return;
    }
    case -ESTALE:
        log_info("%s: %s; sending it again once it settles", f->path, res->err);
        posted(f, jwriter_restat(jw, f, res->now.size, res->now.mtime_ns,
                                 now_s() + settle, res->err));
        return;
    case -ENOENT:
        log_warn("%s: %s", f->path, res->err);
        posted(f, jwriter_fail(jw, f, res->err));
        return;
    }
    /* No attempt counted: the file is not at fault. */
    if (res->target || res->source) {
        is_down(w, res->target ? &w->s->target : &w->s->source, res->err);
        posted(f, jwriter_requeue(jw, f, now_s(), res->err, 0, 0));
        give_back(w); /* the rest waits in the journal */
        return;
    }
    target_up(w);
    file_failed(w, f, res);
}

static struct xfer_job job_of(const struct journal_file *f)
{
    struct xfer_job job = {
        .path = f->path,
        .size = f->size,
        .mtime_ns = f->mtime_ns,
        .resume_offset = f->resume_offset,
        .source_offset = f->source_offset,
        .token = f->resume_token,
        .stale_token = f->stale_token,
        .sha256_state = f->sha256_state,
        .delivered_state = f->delivered_state,
        .chain = f->chain,
    };

    return job;
}

/*
 * The rows from slot on (slot, then those claim() has not handed out yet)
 * that can go together as small files: how many, at least 1.
 */
static int gather(struct worker *w, const struct xfer_env *env, int slot,
                  struct xfer_job *jobs)
{
    int k = 1;

    jobs[0] = job_of(&w->batch[slot]);
    while (k < CLAIM_ROWS && w->next + k - 1 < w->n &&
           w->batch[w->next + k - 1].id != 0) {
        jobs[k] = job_of(&w->batch[w->next + k - 1]);
        if (!xfer_can_batch(env, jobs, (size_t)k + 1))
            break;
        k++;
    }
    return k;
}

/*
 * Send the k rows from slot on together; 0, or -EOPNOTSUPP when the sink
 * wants them one at a time (nothing was sent).
 */
static int send_many(struct worker *w, struct xfer_env *env, int slot,
                     const struct xfer_job *jobs, int k)
{
    struct xfer_result res[CLAIM_ROWS];
    int rc[CLAIM_ROWS], i, r, first = w->next;

    log_debug("worker %d: sending %s and %d more small files together",
              w->id, jobs[0].path, k - 1);
    w->started_ms = mono_ms();
    r = xfer_run_many(env, jobs, (size_t)k, res, rc);
    if (r < 0)
        return r;
    w->next = first + k - 1; /* past the rows sent with slot */
    for (i = 0; i < k; i++) {
        int at = i == 0 ? slot : first + i - 1;
        struct journal_file *f = &w->batch[at];

        record(w, f, &res[i], rc[i]);
        unhold(w, at);
        journal_file_clear(f);
    }
    return 0;
}

static int save_range(void *arg, const struct journal_range *rg)
{
    struct worker *w = arg;

    return jwriter_range(w->s->jw, w->cur, rg);
}

/* Send one file: as ranges over several connections if it is big. */
static int send_one(struct worker *w, struct xfer_env *env,
                    const struct journal_file *f, const struct xfer_job *job,
                    struct xfer_result *res)
{
    const struct conf *c = w->s->c;
    struct journal_range rec[XFER_MAX_RANGES];
    struct xfer_ranges xr = {
        .split_size = c->transfer.split_size,
        .connections = c->transfer.workers,
        .sink_ops = w->s->o.sink,
        .sink_settings = c->target.settings,
        .src_ops = w->s->o.source,
        .src_root = c->source.path,
        .src_settings = c->source.settings,
        .recorded = rec,
        .save = save_range,
        .arg = w,
    };

    if (!xfer_can_range(env, job, &xr))
        return xfer_run(env, job, res);
    if (journal_ranges(w->j, f, rec, XFER_MAX_RANGES, &xr.n_recorded) < 0)
        xr.n_recorded = 0;
    log_debug("worker %d: %s as ranges over %d connections%s", w->id,
              f->path, xr.n_recorded ? xr.n_recorded : xr.connections,
              xr.n_recorded ? ", resuming" : "");
    return xfer_run_ranged(env, job, &xr, res);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct sched *s = w->s;
    struct xfer_env env = {
        .src = w->src,
        .sink = w->sink,
        .chain = w->chain,
        .chain_id = w->chain_id,
        .buf = w->buf,
        .bufsize = (size_t)s->c->transfer.chunk_size,
        .hash = w->hash,
        .cancel_fd = s->cancel_fd,
        .rate = s->rate,
        .progress = s->o.progress,
        .on_exists = (enum xfer_on_exists)s->c->target.on_exists_how,
        .checkpoint = checkpoint,
        .arg = w,
    };
    struct xfer_result res;
    struct xfer_job jobs[CLAIM_ROWS], job;
    struct journal_file *f;
    uint64_t one = 1;
    int r, last, slot, k;

    while ((slot = claim(w)) >= 0) {
        k = gather(w, &env, slot, jobs);
        if (k > 1 && send_many(w, &env, slot, jobs, k) == 0)
            continue;
        f = &w->batch[slot];
        job = job_of(f);
        w->cur = f;
        w->started_ms = mono_ms();
        log_debug("worker %d: sending %s (%lld bytes from %lld)", w->id,
                  f->path, (long long)f->size, (long long)f->resume_offset);
        r = send_one(w, &env, f, &job, &res);
        record(w, f, &res, r);
        w->cur = NULL;
        unhold(w, slot);
        journal_file_clear(f);
    }
    give_back(w);
    after_finish(w->after, 2000);
    sink_disconnect(w->sink);
    pthread_mutex_lock(&s->lock);
    last = --s->running == 0;
    pthread_mutex_unlock(&s->lock);
    if (last && write(s->done_fd, &one, sizeof(one)) < 0)
        log_error("signalling the end of the workers: %s", strerror(errno));
    return NULL;
}

static int worker_init(struct sched *s, struct worker *w, int id)
{
    const struct conf *c = s->c;
    int r;

    w->s = s;
    w->id = id;
    r = journal_open(c->journal.path, JOURNAL_CREATE, &w->j);
    if (r < 0) {
        log_error("journal %s: %s", c->journal.path, strerror(-r));
        return r;
    }
    journal_set_cancel(w->j, s->cancel_fd);
    r = s->o.sink->create(c->target.settings, s->cancel_fd, &w->sink);
    if (r < 0)
        return r;
    r = s->o.source->create(c->source.path, c->source.settings, s->cancel_fd,
                            &w->src);
    if (r < 0) {
        log_error("source.path %s: %s", c->source.path, strerror(-r));
        return r;
    }
    r = after_new(c->source.after_delivery, s->jw, w->j, w->src, &w->after);
    if (r < 0)
        return r;
    r = transform_chain_new(c->transforms.steps, c->transforms.n, &w->chain);
    if (r < 0)
        return r;
    transform_chain_set_cancel(w->chain, s->cancel_fd);
    r = transform_chain_id(w->chain, w->chain_id, sizeof(w->chain_id));
    if (r < 0) {
        log_error("transforms: too many to name in the journal");
        return r;
    }
    /* Without a side hasher the worker hashes: slower, not wrong. */
    if (sidehash_new(&w->hash) < 0)
        log_warn("worker %d: hashing the source in the worker itself", id);
    w->buf = malloc((size_t)c->transfer.chunk_size);
    return w->buf ? 0 : -ENOMEM;
}

int sched_start(struct sched *s, struct jwriter *jw)
{
    int i, r;

    s->jw = jw;
    for (i = 0; i < s->n; i++) {
        r = worker_init(s, &s->w[i], i);
        if (r < 0)
            return r;
    }
    s->running = s->n;
    for (i = 0; i < s->n; i++) {
        r = -pthread_create(&s->w[i].thread, NULL, worker_main, &s->w[i]);
        if (r < 0) {
            pthread_mutex_lock(&s->lock);
            s->running -= s->n - i;
            pthread_mutex_unlock(&s->lock);
            return r;
        }
        s->w[i].started = 1;
    }
    return 0;
}

void sched_stop(struct sched *s)
{
    uint64_t one = 1;
    int i;

    if (s == NULL)
        return;
    pthread_mutex_lock(&s->lock);
    s->stopping = 1;
    pthread_cond_broadcast(&s->wake);
    pthread_mutex_unlock(&s->lock);
    if (write(s->cancel_fd, &one, sizeof(one)) < 0)
        log_error("cancelling transfers: %s", strerror(errno));
    for (i = 0; i < s->n; i++) {
        if (s->w[i].started)
            pthread_join(s->w[i].thread, NULL);
        s->w[i].started = 0;
    }
}

void sched_free(struct sched *s)
{
    int i;

    if (s == NULL)
        return;
    sched_stop(s);
    for (i = 0; s->w && i < s->n; i++) {
        struct worker *w = &s->w[i];

        sink_destroy(w->sink);
        after_free(w->after);
        if (w->src)
            w->src->ops->destroy(w->src);
        transform_chain_free(w->chain);
        free(w->buf);
        sidehash_free(w->hash);
        journal_close(w->j);
    }
    free(s->w);
    free(s->once_tried);
    ratelimit_free(s->rate);
    if (s->cancel_fd >= 0)
        close(s->cancel_fd);
    if (s->done_fd >= 0)
        close(s->done_fd);
    pthread_cond_destroy(&s->wake);
    pthread_mutex_destroy(&s->lock);
    free(s);
}
