/*
 * A SHA-256 whose running state can be written down and read back, so
 * that a transfer resumed after a crash goes on hashing from its last
 * checkpoint instead of reading again every byte already sent (from a
 * remote source, that is the network again).
 *
 * The state is text: "sha256 <bytes hashed> <state words, hex> <pending
 * bytes, hex>", under 300 characters, kept in the journal.
 */
#ifndef SFTPRELAY_DIGEST_H
#define SFTPRELAY_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#define DIGEST_LEN 32       /* bytes of a SHA-256 */
#define DIGEST_STATE_MAX 300 /* the text of a state, with its NUL */

/* The running state; plain data, copied by assignment. */
struct digest {
    uint32_t h[8];
    uint64_t length;       /* bytes hashed */
    unsigned char block[64]; /* length % 64 bytes not hashed yet */
};

/* d = the state of no bytes hashed. */
void digest_init(struct digest *d);

/* Hash n more bytes at p into d. */
void digest_update(struct digest *d, const void *p, size_t n);

/* The SHA-256 of every byte given (d is left as it was). */
void digest_final(const struct digest *d, uint8_t out[DIGEST_LEN]);

/* out (65 bytes): the hex of digest_final(). */
void digest_hex(const struct digest *d, char out[2 * DIGEST_LEN + 1]);

/* d as text into out (DIGEST_STATE_MAX bytes). */
void digest_save(const struct digest *d, char *out);

/* Read text written by digest_save(): 0, or -EINVAL if it is not one. */
int digest_load(struct digest *d, const char *text);

#endif
