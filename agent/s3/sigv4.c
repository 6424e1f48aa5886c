/*
 * AWS Signature Version 4, on OpenSSL.
 *
 * Our own signer rather than libcurl's CURLOPT_AWS_SIGV4: with libcurl
 * 7.88 against radosgw the path and query must be encoded and sorted by
 * us anyway, and x-amz-content-sha256 sent on every request; owning the
 * canonical request makes what is signed exactly what is sent, and lets
 * the published test vectors check it with no network.
 *
 *   canonical request = METHOD \n PATH \n QUERY \n HEADERS \n SIGNED \n HASH
 *   string to sign    = AWS4-HMAC-SHA256 \n DATE \n SCOPE \n sha256(creq)
 *   signing key       = HMAC chain "AWS4"+secret, day, region, service,
 *                       "aws4_request"
 */
#include "config.h"

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "sftprelay/s3.h"

static const char hexdig[] = "0123456789abcdef";

static void hex(const unsigned char *p, size_t n, char *out)
{
    size_t i;

    for (i = 0; i < n; i++) {
        out[2 * i] = hexdig[p[i] >> 4];
        out[2 * i + 1] = hexdig[p[i] & 15];
    }
    out[2 * n] = '\0';
}

void sigv4_sha256_hex(const void *p, size_t len, char out[65])
{
    unsigned char md[SHA256_DIGEST_LENGTH];

    SHA256(p, len, md);
    hex(md, sizeof(md), out);
}

/* Append n bytes of s to out (len bytes, *pos used, kept NUL-ended). */
static int put(char *out, size_t len, size_t *pos, const char *s, size_t n)
{
    if (*pos + n >= len)
        return -ENOSPC;
    memcpy(out + *pos, s, n);
    *pos += n;
    out[*pos] = '\0';
    return 0;
}

/* Append each string given, up to a NULL. */
static int cat(char *out, size_t len, size_t *pos, ...)
{
    const char *s;
    va_list ap;
    int r = 0;

    va_start(ap, pos);
    while (r == 0 && (s = va_arg(ap, const char *)) != NULL)
        r = put(out, len, pos, s, strlen(s));
    va_end(ap);
    return r;
}

int sigv4_encode(const char *s, int keep_slash, char *out, size_t len,
                 size_t *pos)
{
    const unsigned char *p;
    char esc[3] = {'%', 0, 0};
    int r;

    for (p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
            (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' ||
            *p == '_' || *p == '~' || (keep_slash && *p == '/')) {
            r = put(out, len, pos, (const char *)p, 1);
        } else {
            /* RFC 3986 asks for upper-case hex digits here */
            esc[1] = "0123456789ABCDEF"[*p >> 4];
            esc[2] = "0123456789ABCDEF"[*p & 15];
            r = put(out, len, pos, esc, 3);
        }
        if (r < 0)
            return r;
    }
    return 0;
}

/* A query parameter or header made canonical, with its place for ties. */
struct item {
    char *name;
    char *value;
    size_t order;
};

/* Query parameters: by name, then by value. */
static int cmp_query(const void *a, const void *b)
{
    const struct item *x = a, *y = b;
    int c = strcmp(x->name, y->name);

    return c ? c : strcmp(x->value, y->value);
}

/* Headers: by name; a repeated name keeps its values in the order given. */
static int cmp_header(const void *a, const void *b)
{
    const struct item *x = a, *y = b;
    int c = strcmp(x->name, y->name);

    return c ? c : (x->order > y->order) - (x->order < y->order);
}

static void free_items(struct item *v, size_t n)
{
    size_t i;

    for (i = 0; v && i < n; i++) {
        free(v[i].name);
        free(v[i].value);
    }
    free(v);
}

/* Encoded copy of s, or NULL. */
static char *encoded(const char *s)
{
    size_t len = strlen(s) * 3 + 1, pos = 0;
    char *out = malloc(len);

    if (out)
        sigv4_encode(s, 0, out, len, &pos); /* cannot overflow */
    if (out)
        out[pos] = '\0';
    return out;
}

/* Trimmed copy of a header value, runs of spaces folded to one. */
static char *folded(const char *s)
{
    char *out = malloc(strlen(s) + 1), *o = out;

    if (out == NULL)
        return NULL;
    while (*s == ' ' || *s == '\t')
        s++;
    for (; *s; s++) {
        if ((*s == ' ' || *s == '\t') && (o > out && o[-1] == ' '))
            continue;
        *o++ = *s == '\t' ? ' ' : *s;
    }
    while (o > out && o[-1] == ' ')
        o--;
    *o = '\0';
    return out;
}

static char *lowered(const char *s)
{
    char *out = strdup(s), *p;

    for (p = out; p && *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    return out;
}

/* Sorted canonical items of query (is_query) or headers. */
static int canon_items(const struct sigv4_pair *in, size_t n, int is_query,
                       struct item **out)
{
    struct item *v = calloc(n ? n : 1, sizeof(*v));
    size_t i;

    *out = NULL;
    if (v == NULL)
        return -ENOMEM;
    for (i = 0; i < n; i++) {
        v[i].order = i;
        v[i].name = is_query ? encoded(in[i].name) : lowered(in[i].name);
        v[i].value = is_query ? encoded(in[i].value ? in[i].value : "")
                              : folded(in[i].value);
        if (v[i].name == NULL || v[i].value == NULL) {
            free_items(v, n);
            return -ENOMEM;
        }
    }
    qsort(v, n, sizeof(*v), is_query ? cmp_query : cmp_header);
    *out = v;
    return 0;
}

/* The query string: the same in the URL and the canonical request. */
static int put_query(const struct item *q, size_t n, char *out, size_t len,
                     size_t *pos)
{
    size_t i;
    int r = 0;

    for (i = 0; i < n && r == 0; i++)
        r = cat(out, len, pos, i ? "&" : "", q[i].name, "=", q[i].value,
                NULL);
    return r;
}

int sigv4_query(const struct sigv4_pair *query, size_t n, char *out,
                size_t len)
{
    struct item *q = NULL;
    size_t pos = 0;
    int r;

    if (len == 0)
        return -ENOSPC;
    out[0] = '\0';
    r = canon_items(query, n, 1, &q);
    if (r == 0)
        r = put_query(q, n, out, len, &pos);
    free_items(q, n);
    return r;
}

/* "name:v1,v2\n" per header name, then the signed names "a;b". */
static int put_headers(const struct item *h, size_t n, char *out, size_t len,
                       size_t *pos, char *names, size_t nlen)
{
    size_t i, npos = 0;
    int r = 0;

    names[0] = '\0';
    for (i = 0; i < n && r == 0; i++) {
        int same = i > 0 && strcmp(h[i].name, h[i - 1].name) == 0;

        if (same) {
            /* a repeated name: its values joined, in the order given */
            (*pos)--; /* over the previous line's '\n' */
            r = cat(out, len, pos, ",", NULL);
        } else {
            r = cat(names, nlen, &npos, i ? ";" : "", h[i].name, NULL);
            if (r == 0)
                r = cat(out, len, pos, h[i].name, ":", NULL);
        }
        if (r == 0)
            r = cat(out, len, pos, h[i].value, "\n", NULL);
    }
    return r;
}

static int hmac(const void *key, size_t klen, const char *msg,
                unsigned char out[32])
{
    unsigned int olen = 32;

    if (HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg,
             strlen(msg), out, &olen) == NULL)
        return -ENOMEM;
    return 0;
}

/* The signature of sts under the key derived from k, as hex. */
static int signature(const struct sigv4_key *k, const char *sts,
                     char sig[65])
{
    unsigned char a[32], b[32];
    char day[9];
    char *secret = NULL;
    size_t slen = strlen(k->secret_access_key) + 5;
    int r = -ENOMEM;

    secret = malloc(slen);
    if (secret == NULL)
        goto out;
    memcpy(secret, "AWS4", 4);
    memcpy(secret + 4, k->secret_access_key, slen - 4);
    memcpy(day, k->date, 8);
    day[8] = '\0';
    r = hmac(secret, slen - 1, day, a);
    if (r == 0)
        r = hmac(a, 32, k->region, b);
    if (r == 0)
        r = hmac(b, 32, k->service, a);
    if (r == 0)
        r = hmac(a, 32, "aws4_request", b);
    if (r == 0)
        r = hmac(b, 32, sts, a);
    if (r == 0)
        hex(a, 32, sig);
out:
    if (secret)
        explicit_bzero(secret, slen);
    free(secret);
    explicit_bzero(a, sizeof(a));
    explicit_bzero(b, sizeof(b));
    return r;
}

int sigv4_sign(const struct sigv4_request *req, const struct sigv4_key *k,
               char *out, size_t len, char *creq_out, size_t creqlen)
{
    struct item *q = NULL, *h = NULL;
    char *creq = NULL, names[1024], sts[512], hash[65], sig[65];
    size_t clen = 1024, pos = 0, i;
    int r;

    if (strlen(k->date) != 16)
        return -EINVAL;
    clen += strlen(req->method) + strlen(req->path) * 3;
    for (i = 0; i < req->n_query; i++)
        clen += 3 * (strlen(req->query[i].name) +
                     strlen(req->query[i].value ? req->query[i].value : "")) +
                2;
    for (i = 0; i < req->n_headers; i++)
        clen += strlen(req->headers[i].name) +
                strlen(req->headers[i].value) + 2;
    r = -ENOMEM;
    creq = malloc(clen);
    if (creq == NULL)
        goto out;
    r = canon_items(req->query, req->n_query, 1, &q);
    if (r == 0)
        r = canon_items(req->headers, req->n_headers, 0, &h);
    if (r < 0)
        goto out;

    r = cat(creq, clen, &pos, req->method, "\n", NULL);
    if (r == 0)
        r = sigv4_encode(req->path, 1, creq, clen, &pos);
    if (r == 0)
        r = cat(creq, clen, &pos, "\n", NULL);
    if (r == 0)
        r = put_query(q, req->n_query, creq, clen, &pos);
    if (r == 0)
        r = cat(creq, clen, &pos, "\n", NULL);
    if (r == 0)
        r = put_headers(h, req->n_headers, creq, clen, &pos, names,
                        sizeof(names));
    if (r == 0)
        r = cat(creq, clen, &pos, "\n", names, "\n", req->payload_sha256,
                NULL);
    if (r < 0)
        goto out;
    if (creq_out) {
        r = -ENOSPC;
        if (pos >= creqlen)
            goto out;
        memcpy(creq_out, creq, pos + 1);
    }

    sigv4_sha256_hex(creq, pos, hash);
    r = -ENOSPC;
    if ((size_t)snprintf(sts, sizeof(sts),
                         "AWS4-HMAC-SHA256\n%s\n%.8s/%s/%s/aws4_request\n%s",
                         k->date, k->date, k->region, k->service,
                         hash) >= sizeof(sts))
        goto out;
    r = signature(k, sts, sig);
    if (r < 0)
        goto out;
    r = -ENOSPC;
    if ((size_t)snprintf(out, len,
                         "AWS4-HMAC-SHA256 Credential=%s/%.8s/%s/%s/"
                         "aws4_request, SignedHeaders=%s, Signature=%s",
                         k->access_key_id, k->date, k->region, k->service,
                         names, sig) >= len)
        goto out;
    r = 0;
out:
    free_items(q, req->n_query);
    free_items(h, req->n_headers);
    free(creq);
    return r;
}
