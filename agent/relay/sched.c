/*
 * Worker threads.  Claims are serialised by one mutex; everything else a
 * worker does is its own.  Idle workers sleep on a condition variable
 * until notified, until the next row is due, or for IDLE_POLL_MS at most,
 * so that a "sftprelay retry" written by another process is seen soon.
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

#include "sftprelay/backoff.h"
#include "sftprelay/conf.h"
#include "sftprelay/journal.h"
#include "sftprelay/log.h"
#include "sftprelay/sched.h"
#include "sftprelay/sink.h"
#include "sftprelay/source.h"
#include "sftprelay/transform.h"
#include "sftprelay/xfer.h"

#define IDLE_POLL_MS 2000

struct worker {
    struct sched *s;
    int id;
    pthread_t thread;
    int started;
    struct journal *j;
    struct sink *sink;
    struct source *src;
    struct transform_chain *chain;
    void *buf;
    const struct journal_file *cur; /* being sent */
};

struct sched {
    const struct conf *c;
    const struct sink_ops *sink_ops;
    int once;
    int cancel_fd; /* readable once stopping: wakes every wait */
    int done_fd;   /* readable once every worker has returned */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int stopping;
    int running; /* workers not yet returned */
    int64_t once_cursor;
    int64_t paused_until_ms; /* monotonic; target paused until then */
    int64_t target_failures; /* in a row */
    int target_down;
    struct worker *w;
    int n;
};

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t now_s(void)
{
    return (int64_t)time(NULL);
}

int sched_new(const struct conf *c, int once, struct sched **out)
{
    struct sched *s;
    pthread_condattr_t ca;
    const char *bad = NULL;
    struct transform_chain *probe = NULL;
    int r;

    *out = NULL;
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    s->c = c;
    s->once = once;
    s->once_cursor = 0;
    s->cancel_fd = s->done_fd = -1;
    s->sink_ops = sink_find(c->target.type);
    if (s->sink_ops == NULL) {
        log_error("%s: target.type: unknown sink \"%s\" (known: %s)", c->file,
                  c->target.type, sink_names());
        free(s);
        return -ENOENT;
    }
    r = transform_chain_new(c->transfer.transforms,
                            c->transfer.transform_settings,
                            c->transfer.n_transforms, &probe, &bad);
    transform_chain_free(probe);
    if (r < 0) {
        log_error("%s: transfer.transforms: unknown transform \"%s\"", c->file,
                  bad ? bad : "?");
        free(s);
        return r;
    }
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->wake, &ca);
    pthread_condattr_destroy(&ca);
    s->cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    s->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    s->n = c->transfer.workers;
    s->w = calloc((size_t)s->n, sizeof(*s->w));
    if (s->cancel_fd < 0 || s->done_fd < 0 || s->w == NULL) {
        sched_free(s);
        return -ENOMEM;
    }
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
    pthread_cond_broadcast(&s->wake);
    pthread_mutex_unlock(&s->lock);
}

/* Sleep until woken, stopping, or ms from now.  Called with the lock held. */
static void sleep_locked(struct sched *s, int64_t ms)
{
    struct timespec ts;
    int64_t until = mono_ms() + (ms > 0 ? ms : 1);

    ts.tv_sec = until / 1000;
    ts.tv_nsec = (until % 1000) * 1000000;
    if (!s->stopping)
        pthread_cond_timedwait(&s->wake, &s->lock, &ts);
}

/*
 * The next row to send, or -ENOENT when the worker should stop (once mode
 * with nothing left, or stopping).  Waits while the target is paused or
 * nothing is due.
 */
static int claim(struct worker *w, struct journal_file *f)
{
    struct sched *s = w->s;
    int64_t due, wait;
    int r;

    pthread_mutex_lock(&s->lock);
    for (;;) {
        if (s->stopping) {
            r = -ENOENT;
            break;
        }
        wait = s->paused_until_ms - mono_ms();
        if (wait > 0) {
            sleep_locked(s, wait);
            continue;
        }
        r = journal_claim(w->j, now_s(), s->once ? s->once_cursor : -1, f);
        if (r == 0) {
            if (s->once)
                s->once_cursor = f->id;
            break;
        }
        if (r != -ENOENT && r != -EBUSY) {
            log_error("journal: claiming the next file: %s",
                      journal_errmsg(w->j));
            sleep_locked(s, IDLE_POLL_MS);
            continue;
        }
        if (r == -ENOENT && s->once)
            break;
        wait = IDLE_POLL_MS;
        if (journal_next_due(w->j, &due) == 0 && (due - now_s()) * 1000 < wait)
            wait = (due - now_s()) * 1000;
        sleep_locked(s, wait);
    }
    pthread_mutex_unlock(&s->lock);
    return r;
}

static int checkpoint(void *arg, int64_t offset)
{
    struct worker *w = arg;

    return journal_checkpoint(w->j, w->cur, offset);
}

static void target_up(struct worker *w)
{
    struct sched *s = w->s;
    int was_down;

    pthread_mutex_lock(&s->lock);
    was_down = s->target_down;
    s->target_failures = 0;
    s->target_down = 0;
    pthread_mutex_unlock(&s->lock);
    if (was_down) {
        log_info("target reachable again");
        journal_agent_set(w->j, "target_error", "", now_s());
    }
}

/* Pause every worker; returns the delay in seconds for the file's row. */
static int64_t target_down(struct worker *w, const char *err)
{
    struct sched *s = w->s;
    int64_t ms, n;

    pthread_mutex_lock(&s->lock);
    n = ++s->target_failures;
    ms = backoff_ms(n, s->c->transfer.backoff_initial,
                    s->c->transfer.backoff_max, backoff_rnd());
    if (s->paused_until_ms < mono_ms() + ms)
        s->paused_until_ms = mono_ms() + ms;
    s->target_down = 1;
    pthread_mutex_unlock(&s->lock);
    log_warn("target: %s; next try in %.1f s", err, (double)ms / 1000);
    journal_agent_set(w->j, "target_error", err, now_s());
    return (ms + 999) / 1000;
}

static void record(struct worker *w, const struct journal_file *f,
                   const struct xfer_result *res, int r)
{
    const struct conf *c = w->s->c;
    int64_t settle = (c->source.settle_ms + 999) / 1000, delay;
    int q;

    switch (r) {
    case 0:
        q = journal_delivered(w->j, f, res->sha256, now_s(), now_s() + settle);
        if (q == 0)
            log_info("delivered %s (%lld bytes%s, sha256 %s)", f->path,
                     (long long)f->size, res->resumed_at ? ", resumed" : "",
                     res->sha256);
        else if (q == -ESTALE)
            log_info("%s changed while it was sent; sending it again", f->path);
        target_up(w);
        return;
    case -ECANCELED:
        journal_requeue(w->j, f->id, 0, NULL, 0, 0);
        return;
    case -ESTALE:
        log_info("%s: %s; sending it again once it settles", f->path, res->err);
        journal_restat(w->j, f->id, res->now.size, res->now.mtime_ns);
        journal_requeue(w->j, f->id, now_s() + settle, res->err, 0, 1);
        return;
    case -ENOENT:
        log_warn("%s: %s", f->path, res->err);
        journal_fail(w->j, f->id, res->err);
        return;
    }
    if (res->target) {
        delay = target_down(w, res->err);
        journal_requeue(w->j, f->id, now_s() + delay, res->err, 0, 0);
        return;
    }
    target_up(w);
    if (c->transfer.max_attempts > 0 &&
        f->attempts + 1 >= c->transfer.max_attempts) {
        log_error("%s: %s; giving up after %lld attempts", f->path, res->err,
                  (long long)f->attempts + 1);
        journal_fail(w->j, f->id, res->err);
        return;
    }
    delay = (backoff_ms(f->attempts + 1, c->transfer.backoff_initial,
                        c->transfer.backoff_max, backoff_rnd()) +
             999) /
            1000;
    log_warn("%s: %s; next try in %lld s", f->path, res->err, (long long)delay);
    journal_requeue(w->j, f->id, now_s() + delay, res->err, 1, 0);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct sched *s = w->s;
    struct xfer_env env = {
        .src = w->src,
        .sink = w->sink,
        .chain = w->chain,
        .buf = w->buf,
        .bufsize = (size_t)s->c->transfer.chunk_size,
        .cancel_fd = s->cancel_fd,
        .checkpoint = checkpoint,
        .arg = w,
    };
    struct xfer_result res;
    struct journal_file f;
    uint64_t one = 1;
    int r;

    while (claim(w, &f) == 0) {
        struct xfer_job job = {
            .path = f.path,
            .size = f.size,
            .mtime_ns = f.mtime_ns,
            .resume_offset = f.resume_offset,
        };

        w->cur = &f;
        log_debug("worker %d: sending %s (%lld bytes from %lld)", w->id, f.path,
                  (long long)f.size, (long long)f.resume_offset);
        r = xfer_run(&env, &job, &res);
        record(w, &f, &res, r);
        w->cur = NULL;
        journal_file_clear(&f);
    }
    sink_disconnect(w->sink);
    pthread_mutex_lock(&s->lock);
    if (--s->running == 0 && write(s->done_fd, &one, sizeof(one)) < 0)
        log_error("signalling the end of the workers: %s", strerror(errno));
    pthread_mutex_unlock(&s->lock);
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
    r = s->sink_ops->create(c->target.settings, s->cancel_fd, &w->sink);
    if (r < 0)
        return r;
    r = c->source.ops->create(c->source.path, c->source.settings, &w->src);
    if (r < 0) {
        log_error("source.path %s: %s", c->source.path, strerror(-r));
        return r;
    }
    r = transform_chain_new(c->transfer.transforms,
                            c->transfer.transform_settings,
                            c->transfer.n_transforms, &w->chain, NULL);
    if (r < 0)
        return r;
    w->buf = malloc((size_t)c->transfer.chunk_size);
    return w->buf ? 0 : -ENOMEM;
}

int sched_start(struct sched *s)
{
    int i, r;

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
        if (w->src)
            w->src->ops->destroy(w->src);
        transform_chain_free(w->chain);
        free(w->buf);
        journal_close(w->j);
    }
    free(s->w);
    if (s->cancel_fd >= 0)
        close(s->cancel_fd);
    if (s->done_fd >= 0)
        close(s->done_fd);
    pthread_cond_destroy(&s->wake);
    pthread_mutex_destroy(&s->lock);
    free(s);
}
