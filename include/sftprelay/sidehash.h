/*
 * A SHA-256 update on a thread of its own, beside the worker that reads
 * the source: while the worker compresses or sends a chunk, the side
 * thread hashes the same bytes (both only read them), so that hashing
 * the source (one byte in 1.5 GB/s here) stops adding to the time of a
 * worker that is busy with a transform or a cipher.
 *
 * One update at a time: sidehash_start() hands it over; until
 * sidehash_wait() returns, the caller must not touch the digest nor
 * change the bytes.  A NULL sidehash, or fewer than 64 KiB to hash, and
 * the update is done in the caller, at sidehash_start(), so a caller
 * without a side thread needs no other code path.
 */
#ifndef SFTPRELAY_SIDEHASH_H
#define SFTPRELAY_SIDEHASH_H

#include <stddef.h>

#include "sftprelay/digest.h"

struct sidehash;

/* Starts the thread: 0, or a negative errno (then *out is NULL). */
int sidehash_new(struct sidehash **out);

/* Waits for the update under way, stops and joins the thread; NULL ok. */
void sidehash_free(struct sidehash *h);

/* digest_update(d, p, n), on h's thread (in the caller when h is NULL). */
void sidehash_start(struct sidehash *h, struct digest *d, const void *p,
                    size_t n);

/* Returns when the update last started is done (at once if none is). */
void sidehash_wait(struct sidehash *h);

#endif
