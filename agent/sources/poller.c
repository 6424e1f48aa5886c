/*
 * The poller (poller.h).  What is known is an array sorted by path; each
 * listing collects a new one, sorts it and walks both together, so a
 * file's counts carry over and a vanished file is simply not carried.
 *
 * Threads: the poller's own thread owns the array and its source; the
 * only things shared are the stop eventfd (written by poller_free()) and
 * the rescan flag (an atomic int).  No lock.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "sftprelay/backoff.h"
#include "sftprelay/log.h"
#include "sftprelay/poller.h"
#include "sftprelay/source.h"

#define RETRY_MAX_S 60 /* backoff's ceiling, unless poll_interval is longer */

struct known {
    char *rel;
    struct source_stat st;
    int same; /* listings in a row that saw st, at most stable_polls */
};

struct listing {
    struct known *k;
    size_t n, cap;
    size_t max; /* entries at most; 0: no limit */
};

struct poller {
    struct poller_opts o;
    struct poller_cb cb;
    int stop_fd;
    pthread_t thread;
    int started;
    int rescan; /* atomic: forget what was reported */
    struct listing known;
    struct source *src; /* the thread's */
    int down;           /* the last listing failed: said so */
    char said[SOURCE_ERR_MAX];
};

static void listing_clear(struct listing *l)
{
    size_t i;

    for (i = 0; i < l->n; i++)
        free(l->k[i].rel);
    free(l->k);
    memset(l, 0, sizeof(*l));
}

static int add(void *arg, const char *rel, const struct source_stat *st)
{
    struct listing *l = arg;
    struct known *k;

    if (l->max && l->n >= l->max)
        return -E2BIG;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 256;

        k = realloc(l->k, cap * sizeof(*k));
        if (k == NULL)
            return -ENOMEM;
        l->k = k;
        l->cap = cap;
    }
    k = &l->k[l->n];
    k->rel = strdup(rel);
    if (k->rel == NULL)
        return -ENOMEM;
    k->st = *st;
    k->same = 1;
    l->n++;
    return 0;
}

static int by_path(const void *a, const void *b)
{
    return strcmp(((const struct known *)a)->rel,
                  ((const struct known *)b)->rel);
}

/* List the whole tree into l (sorted): 0 or the listing's error. */
static int list(struct poller *p, struct source *src, struct listing *l)
{
    struct source_walk w = {.skip = p->o.skip,
                            .exclude = p->o.exclude,
                            .n_exclude = p->o.n_exclude,
                            .found = add,
                            .arg = l,
                            .max_entries = p->o.max_files};
    int r;

    src->err[0] = '\0';
    l->max = p->o.max_files;
    r = p->o.ops->list(src, &w);
    if (r == -E2BIG && src->err[0] == '\0')
        snprintf(src->err, sizeof(src->err),
                 "more than %zu files (source.max_files); the listing "
                 "stopped",
                 l->max);
    if (r == 0 && l->n > 0) /* an empty listing has no array */
        qsort(l->k, l->n, sizeof(*l->k), by_path);
    return r;
}

/*
 * Carry the counts of what was known into now (both sorted) and report
 * what just became stable.  Returns 0 or found()'s error.
 */
static int settle(struct poller *p, struct listing *now)
{
    const struct listing *old = &p->known;
    size_t i, j = 0;
    int c, r = 0, was;

    for (i = 0; i < now->n && r == 0; i++) {
        struct known *k = &now->k[i];

        c = 1;
        while (j < old->n && (c = strcmp(old->k[j].rel, k->rel)) < 0)
            j++;
        was = 0;
        if (j < old->n && c == 0 && old->k[j].st.size == k->st.size &&
            old->k[j].st.mtime_ns == k->st.mtime_ns) {
            was = old->k[j].same;
            k->same = was < p->o.stable_polls ? was + 1 : was;
        }
        if (k->same == p->o.stable_polls && was < p->o.stable_polls)
            r = p->cb.found(p->cb.arg, k->rel, &k->st);
    }
    return r;
}

/* Say once that the source is down, or back. */
static void say(struct poller *p, int r)
{
    const char *why = r ? source_error(p->src, r) : "";

    if (r == 0 && p->down)
        log_info("source reachable again; polling %s every %d s", p->o.root,
                 p->o.interval_s);
    else if (r < 0 && (!p->down || strcmp(why, p->said) != 0))
        log_warn("source: listing %s: %s; trying again with backoff",
                 p->o.root, why);
    p->down = r < 0;
    snprintf(p->said, sizeof(p->said), "%s", why);
}

/*
 * Carry the counts into now, report what just became stable, and know
 * now from here on: 0, or found()'s error (now dropped, what is known
 * stays).
 */
static int take(struct poller *p, struct listing *now)
{
    int r = settle(p, now);

    if (r < 0) {
        listing_clear(now);
        return r;
    }
    listing_clear(&p->known);
    p->known = *now;
    return 0;
}

int poller_poll(struct poller *p)
{
    struct listing now = {0};
    int r;

    if (__atomic_exchange_n(&p->rescan, 0, __ATOMIC_SEQ_CST))
        listing_clear(&p->known);
    r = list(p, p->src, &now);
    if (r != -ECANCELED)
        say(p, r);
    if (r < 0) {
        listing_clear(&now); /* incomplete: what is known stays */
        return r;
    }
    log_debug("listed %zu files under %s", now.n, p->o.root);
    return take(p, &now);
}

/* Wait ms, or until fd (-1: none) is readable: 1 when it is. */
static int readable_within(int fd, int64_t ms)
{
    struct pollfd f = {.fd = fd, .events = POLLIN};

    return poll(&f, 1, ms > INT32_MAX ? INT32_MAX : (int)ms) > 0;
}

/* Wait ms, or until stopped: 1 when stopped. */
static int stopped_within(struct poller *p, int64_t ms)
{
    return readable_within(p->stop_fd, ms);
}

static void *poller_main(void *arg)
{
    struct poller *p = arg;
    int max_s = p->o.interval_s > RETRY_MAX_S ? p->o.interval_s : RETRY_MAX_S;
    int64_t fails = 0, ms;
    int r;

    do {
        r = poller_poll(p);
        if (r == -ECANCELED)
            break;
        fails = r < 0 ? fails + 1 : 0;
        ms = fails ? backoff_ms(fails, p->o.backoff_initial_s, max_s,
                                backoff_rnd())
                   : (int64_t)p->o.interval_s * 1000;
    } while (!stopped_within(p, ms));
    return NULL;
}

int poller_new(const struct poller_opts *o, const struct poller_cb *cb,
               struct poller **out)
{
    struct poller *p;
    int r;

    *out = NULL;
    if (o->ops->list == NULL)
        return -EOPNOTSUPP;
    p = calloc(1, sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    p->o = *o;
    p->cb = *cb;
    p->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    r = p->stop_fd < 0 ? -errno : 0;
    if (r == 0)
        r = o->ops->create(o->root, o->settings, p->stop_fd, &p->src);
    if (r < 0) {
        poller_free(p);
        return r;
    }
    *out = p;
    return 0;
}

int poller_start(struct poller *p)
{
    int r = -pthread_create(&p->thread, NULL, poller_main, p);

    p->started = r == 0;
    return r;
}

int poller_list_once(struct poller *p, int cancel_fd)
{
    struct source *src = NULL;
    struct listing now;
    int i, r;

    listing_clear(&p->known);
    if (p->o.stable_polls > 1)
        log_info("listing %s %d times, %d s apart: only files unchanged "
                 "throughout are sent (source.stable_polls)",
                 p->o.root, p->o.stable_polls, p->o.interval_s);
    r = p->o.ops->create(p->o.root, p->o.settings, cancel_fd, &src);
    if (r < 0)
        log_error("source: listing %s: %s", p->o.root, strerror(-r));
    for (i = 0; r == 0 && i < p->o.stable_polls; i++) {
        if (i > 0 &&
            readable_within(cancel_fd, (int64_t)p->o.interval_s * 1000)) {
            r = -ECANCELED;
            break;
        }
        memset(&now, 0, sizeof(now));
        r = list(p, src, &now);
        if (r < 0) {
            listing_clear(&now);
            if (r != -ECANCELED)
                log_error("source: listing %s: %s", p->o.root,
                          source_error(src, r));
            break;
        }
        log_debug("listed %zu files under %s", now.n, p->o.root);
        r = take(p, &now); /* the last round reports the stable ones */
    }
    listing_clear(&p->known);
    source_destroy(src);
    return r;
}

void poller_rescan(struct poller *p)
{
    __atomic_store_n(&p->rescan, 1, __ATOMIC_SEQ_CST);
}

void poller_free(struct poller *p)
{
    uint64_t one = 1;

    if (p == NULL)
        return;
    if (p->started) {
        if (write(p->stop_fd, &one, sizeof(one)) < 0)
            log_error("stopping the poller: %s", strerror(errno));
        pthread_join(p->thread, NULL);
    }
    source_destroy(p->src);
    listing_clear(&p->known);
    if (p->stop_fd >= 0)
        close(p->stop_fd);
    free(p);
}
