/*
 * The agent's bandwidth limit (ratelimit.h).  Its lock is a leaf: held
 * only to move the reservation clock, never while sleeping.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>

#include "sftprelay/loop.h"
#include "sftprelay/ratelimit.h"

#define BURST_MS 100 /* idle time a quiet link may make up for */

struct ratelimit {
    pthread_mutex_t lock;
    int64_t rate;    /* bytes per second */
    int64_t free_ns; /* monotonic time from which the link is unreserved */
};

int ratelimit_new(int64_t bytes_per_s, struct ratelimit **out)
{
    struct ratelimit *rl = calloc(1, sizeof(*rl));

    *out = NULL;
    if (rl == NULL)
        return -ENOMEM;
    pthread_mutex_init(&rl->lock, NULL);
    rl->rate = bytes_per_s;
    *out = rl;
    return 0;
}

void ratelimit_free(struct ratelimit *rl)
{
    if (rl == NULL)
        return;
    pthread_mutex_destroy(&rl->lock);
    free(rl);
}

int ratelimit_take(struct ratelimit *rl, size_t n, int cancel_fd)
{
    struct pollfd p = {.fd = cancel_fd, .events = POLLIN};
    int64_t now, start, wait_ms;
    int r;

    if (rl == NULL || n == 0)
        return 0;
    now = mono_ms() * 1000000;
    pthread_mutex_lock(&rl->lock);
    if (rl->free_ns < now - (int64_t)BURST_MS * 1000000)
        rl->free_ns = now - (int64_t)BURST_MS * 1000000;
    start = rl->free_ns;
    rl->free_ns += (int64_t)((double)n * 1e9 / (double)rl->rate);
    pthread_mutex_unlock(&rl->lock);
    for (;;) {
        now = mono_ms() * 1000000;
        if (start <= now)
            return 0;
        wait_ms = (start - now + 999999) / 1000000;
        r = poll(&p, cancel_fd >= 0 ? 1 : 0, (int)wait_ms);
        if (r > 0)
            return -ECANCELED;
        if (r < 0 && errno != EINTR)
            return -errno;
    }
}
