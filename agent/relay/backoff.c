/*
 * Exponential backoff with equal jitter.
 */
#include "config.h"

#include <stdint.h>
#include <sys/random.h>
#include <time.h>

#include "sftprelay/backoff.h"

int64_t backoff_ms(int64_t n, int initial_s, int max_s, uint32_t rnd)
{
    int64_t cap = (int64_t)max_s * 1000, d = (int64_t)initial_s * 1000;
    int64_t half;

    if (n < 1)
        n = 1;
    while (--n > 0 && d < cap)
        d *= 2;
    if (d > cap)
        d = cap;
    half = d / 2;
    d = d - half + (int64_t)(rnd % (uint64_t)(half + 1));
    return d > 0 ? d : 1;
}

uint32_t backoff_rnd(void)
{
    uint32_t v;
    struct timespec ts;

    if (getrandom(&v, sizeof(v), GRND_NONBLOCK) == (ssize_t)sizeof(v))
        return v;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint32_t)ts.tv_nsec;
}
