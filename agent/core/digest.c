/*
 * A SHA-256 with a state that can be saved (digest.h).
 *
 * OpenSSL's EVP interface cannot hand out the running state of a digest,
 * nor take one back; its SHA256_CTX, plain data, can.  The functions that
 * take a SHA256_CTX are deprecated since OpenSSL 3.0 in favour of EVP but
 * still built, with the same assembly (SHA extensions, AVX2) as EVP: they
 * are used here, and only here, for that reason.  struct digest keeps the
 * state in our own terms, so that no other file sees SHA256_CTX.
 */
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

#include "sftprelay/digest.h"

static void to_ctx(const struct digest *d, SHA256_CTX *c)
{
    unsigned n = (unsigned)(d->length % 64);

    memset(c, 0, sizeof(*c));
    memcpy(c->h, d->h, sizeof(d->h));
    c->Nl = (SHA_LONG)(d->length << 3);
    c->Nh = (SHA_LONG)(d->length >> 29);
    memcpy(c->data, d->block, n);
    c->num = n;
    c->md_len = SHA256_DIGEST_LENGTH;
}

static void from_ctx(const SHA256_CTX *c, struct digest *d)
{
    memcpy(d->h, c->h, sizeof(d->h));
    d->length = ((uint64_t)c->Nh << 29) | (c->Nl >> 3);
    memset(d->block, 0, sizeof(d->block));
    memcpy(d->block, c->data, c->num);
}

void digest_init(struct digest *d)
{
    SHA256_CTX c;

    SHA256_Init(&c);
    from_ctx(&c, d);
}

void digest_update(struct digest *d, const void *p, size_t n)
{
    SHA256_CTX c;

    if (n == 0)
        return;
    to_ctx(d, &c);
    SHA256_Update(&c, p, n);
    from_ctx(&c, d);
}

void digest_final(const struct digest *d, uint8_t out[DIGEST_LEN])
{
    SHA256_CTX c;

    to_ctx(d, &c);
    SHA256_Final(out, &c);
}

void digest_hex(const struct digest *d, char out[2 * DIGEST_LEN + 1])
{
    uint8_t md[DIGEST_LEN];
    int i;

    digest_final(d, md);
    for (i = 0; i < DIGEST_LEN; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

void digest_save(const struct digest *d, char *out)
{
    unsigned n = (unsigned)(d->length % 64), i;
    int k;

    k = snprintf(out, DIGEST_STATE_MAX, "sha256 %" PRIu64 " ", d->length);
    for (i = 0; i < 8; i++)
        k += snprintf(out + k, DIGEST_STATE_MAX - (size_t)k, "%08" PRIx32,
                      d->h[i]);
    out[k++] = ' ';
    for (i = 0; i < n; i++)
        k += snprintf(out + k, DIGEST_STATE_MAX - (size_t)k, "%02x",
                      d->block[i]);
    out[k] = '\0';
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

/* n bytes of lowercase hex at s into out; -EINVAL unless exactly that. */
static int unhex(const char *s, unsigned char *out, size_t n)
{
    size_t i;
    int a, b;

    for (i = 0; i < n; i++) {
        a = hexval(s[2 * i]);
        b = a < 0 ? -1 : hexval(s[2 * i + 1]);
        if (b < 0)
            return -EINVAL;
        out[i] = (unsigned char)(a << 4 | b);
    }
    return s[2 * n] == '\0' ? 0 : -EINVAL;
}

int digest_load(struct digest *d, const char *text)
{
    struct digest t = {0};
    unsigned char words[32];
    char hwords[65];
    const char *p;
    uint64_t len;
    int used = 0, i;

    if (text == NULL ||
        sscanf(text, "sha256 %" SCNu64 " %64[0-9a-f] %n", &len, hwords,
               &used) != 2 ||
        used == 0 || unhex(hwords, words, sizeof(words)) < 0)
        return -EINVAL;
    p = text + used;
    if (strlen(p) != 2 * (len % 64) || unhex(p, t.block, len % 64) < 0)
        return -EINVAL;
    for (i = 0; i < 8; i++)
        t.h[i] = (uint32_t)words[4 * i] << 24 |
                 (uint32_t)words[4 * i + 1] << 16 |
                 (uint32_t)words[4 * i + 2] << 8 | words[4 * i + 3];
    t.length = len;
    *d = t;
    return 0;
}
