/*
 * transfer.bandwidth_limit: bytes per second for the whole agent, shared
 * by every worker.  Each take() reserves the next free stretch of the
 * link's time and sleeps until it starts, so workers share the limit
 * fairly and a quiet link may burst for a tenth of a second.
 */
#ifndef SFTPRELAY_RATELIMIT_H
#define SFTPRELAY_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

struct ratelimit;

/* A limit of bytes_per_s (> 0); *out is freed with ratelimit_free(). */
int ratelimit_new(int64_t bytes_per_s, struct ratelimit **out);
void ratelimit_free(struct ratelimit *rl);

/*
 * Wait until n more bytes may be sent: 0, or -ECANCELED as soon as
 * cancel_fd (if >= 0) is readable.  rl may be NULL: no limit.
 */
int ratelimit_take(struct ratelimit *rl, size_t n, int cancel_fd);

#endif
