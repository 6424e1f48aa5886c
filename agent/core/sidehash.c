/*
 * The side hasher (sidehash.h): one thread, one job slot, one leaf lock.
 * sidehash.lock guards the slot (the job, busy, stopping); the thread
 * hashes with it let go, and no one holds it while calling out.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "sftprelay/sidehash.h"

/* Fewer bytes are hashed in the caller: handing them over costs more. */
#define SIDE_MIN 65536

struct sidehash {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* a job was handed over, or one is done */
    struct digest *d;
    const void *p;
    size_t n;
    int busy;     /* a job is handed over and not done */
    int stopping; /* sidehash_free() was called */
};

static void *side_main(void *arg)
{
    struct sidehash *h = arg;
    struct digest *d;
    const void *p;
    size_t n;

    pthread_mutex_lock(&h->lock);
    for (;;) {
        while (!h->busy && !h->stopping)
            pthread_cond_wait(&h->cond, &h->lock);
        if (!h->busy) /* stopping, and nothing left to do */
            break;
        d = h->d;
        p = h->p;
        n = h->n;
        pthread_mutex_unlock(&h->lock);
        digest_update(d, p, n);
        pthread_mutex_lock(&h->lock);
        h->busy = 0;
        pthread_cond_broadcast(&h->cond);
    }
    pthread_mutex_unlock(&h->lock);
    return NULL;
}

int sidehash_new(struct sidehash **out)
{
    struct sidehash *h = calloc(1, sizeof(*h));
    int r;

    *out = NULL;
    if (h == NULL)
        return -ENOMEM;
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->cond, NULL);
    r = pthread_create(&h->thread, NULL, side_main, h);
    if (r != 0) {
        pthread_cond_destroy(&h->cond);
        pthread_mutex_destroy(&h->lock);
        free(h);
        return -r;
    }
    *out = h;
    return 0;
}

void sidehash_free(struct sidehash *h)
{
    if (h == NULL)
        return;
    pthread_mutex_lock(&h->lock);
    h->stopping = 1;
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->lock);
    pthread_join(h->thread, NULL);
    pthread_cond_destroy(&h->cond);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

void sidehash_start(struct sidehash *h, struct digest *d, const void *p,
                    size_t n)
{
    sidehash_wait(h);
    if (h == NULL || n < SIDE_MIN) {
        digest_update(d, p, n);
        return;
    }
    pthread_mutex_lock(&h->lock);
    h->d = d;
    h->p = p;
    h->n = n;
    h->busy = 1;
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->lock);
}

void sidehash_wait(struct sidehash *h)
{
    if (h == NULL)
        return;
    pthread_mutex_lock(&h->lock);
    while (h->busy)
        pthread_cond_wait(&h->cond, &h->lock);
    pthread_mutex_unlock(&h->lock);
}
