/*
 * Exponential backoff with jitter.
 */
#ifndef SFTPRELAY_BACKOFF_H
#define SFTPRELAY_BACKOFF_H

#include <stdint.h>

/*
 * Milliseconds to wait after the n-th failure in a row (n >= 1): the
 * delay doubles from initial_s up to max_s seconds, and a random draw
 * (rnd) picks a point in its upper half ("equal jitter"), so that agents
 * restarted together do not retry in step.  Never less than 1 ms.
 */
int64_t backoff_ms(int64_t n, int initial_s, int max_s, uint32_t rnd);

/* A random 32-bit value for backoff_ms(), different in every thread. */
uint32_t backoff_rnd(void);

#endif
