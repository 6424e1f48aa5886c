/*
 * The S3 client (s3.h): S3's requests over libcurl, signed with our own
 * Signature V4 (sigv4.c), answers read with xml.c.
 *
 * Every request is an easy handle on the client's one multi handle, so
 * that parts of a multipart upload travel concurrently in the calling
 * thread: a blocking call adds its handle and drives the multi handle
 * until that handle is done, the parts in flight progressing meanwhile;
 * s3_part_poll() drives it until a part is done.  The multi handle keeps
 * the connections alive between requests.  Waiting is curlso.multi_poll()
 * with the cancel descriptor among its descriptors.
 *
 * What is signed is what is sent: the Host header, the encoded path and
 * the sorted query are computed once and used both in the URL and in the
 * canonical request; CURLOPT_PATH_AS_IS keeps curl from rewriting the
 * path.  Integrity: PUT and UploadPart send Content-MD5 and sign the
 * body's SHA-256 (the server rejects other bytes), and their ETag must be
 * the MD5 of what we sent, unless the answer says the object is
 * encrypted with SSE-KMS or SSE-C: AWS's ETag is then no MD5, and the
 * server has checked the bytes against Content-MD5 already.
 *
 * libcurl's codes and S3's error codes become errnos in exactly two
 * functions, curl_error() and http_error(), with words for the user.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/evp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sftprelay/s3.h"
#include "curlso.h"
#include "xml.h"

#define ANSWER_MAX (16 << 20) /* an XML answer: a listing page is ~1 MiB */
#define HEADERS_MAX 8         /* signed headers of one request */

struct s3 {
    char *scheme;    /* "https" */
    char *host;      /* "host[:port]" as the Host header has it */
    char *bucket;
    char *region;
    char *akid;
    char *secret;
    char *ca_file;
    int path_style;
    int verify_tls;
    int timeout;
    int cancel_fd;
    int skew;        /* seconds added to the clock (tests) */
    char page[16];   /* max-keys, max-parts; "" for the default */
    CURLM *multi;
    struct xfer *parts; /* started and not yet reported */
    int n_parts;
    char desc[512];
    char err[S3_ERR_MAX];
};

/* One request: an easy handle and what it sends and receives. */
struct xfer {
    struct s3 *c;
    CURL *h;
    struct curl_slist *hdrs;
    char *op;  /* "PutObject a/b.txt", for messages */
    /* the body sent */
    const char *body;
    size_t body_len, body_pos;
    /* the answer: into sink (GetObject) or answer (XML) */
    char *sink;
    size_t sink_len, sink_pos;
    char *answer;
    size_t answer_len, answer_cap;
    int werr; /* why a write callback stopped the transfer */
    /* its headers */
    char etag[S3_ETAG_MAX];
    int64_t length;
    int64_t mtime;
    char date[128]; /* the server's Date, for clock skew */
    int etag_not_md5; /* SSE-KMS or SSE-C: the ETag is no MD5 */
    /* the outcome */
    int done;
    CURLcode cc;
    long status;
    char errbuf[CURL_ERROR_SIZE];
    int upload; /* the request names an uploadId */
    /* UploadPart */
    int number;
    void *tag;
    char md5[33];
    struct xfer *next;
};

static int fail(struct s3 *c, int r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Record "ENDPOINT bucket B: message"; returns r. */
static int fail(struct s3 *c, int r, const char *fmt, ...)
{
    va_list ap;
    int n;

    n = snprintf(c->err, sizeof(c->err), "%s: ", c->desc);
    if (n < 0 || (size_t)n >= sizeof(c->err))
        return r;
    va_start(ap, fmt);
    vsnprintf(c->err + n, sizeof(c->err) - (size_t)n, fmt, ap);
    va_end(ap);
    return r;
}

const char *s3_error(const struct s3 *c)
{
    return c->err;
}

const char *s3_describe(const struct s3 *c)
{
    return c->desc;
}

/* ---- set-up ------------------------------------------------------------- */

static int is_ip_literal(const char *host)
{
    size_t i;

    if (host[0] == '[')
        return 1;
    for (i = 0; host[i] && host[i] != ':'; i++)
        if (!isdigit((unsigned char)host[i]) && host[i] != '.')
            return 0;
    return 1;
}

/* Whether b may be a bucket's name: S3's characters, 3 to 255 of them
 * (63 since 2018, but older buckets in us-east-1 have longer names). */
static int is_bucket_name(const char *b)
{
    size_t n = strlen(b);

    return n >= 3 && n <= 255 &&
           strspn(b, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                     "0123456789.-_") == n;
}

/*
 * The endpoint of cf (AWS's for its region when it has none), checked
 * and split: *ep (malloc'd, the caller frees it) is the scheme, *host
 * points into it.  Returns 0; -EINVAL with *field naming what is wrong
 * ("endpoint", "bucket") and err saying why; or -ENOMEM.
 */
static int parse(const struct s3_config *cf, char **ep, char **host,
                 const char **field, char *err, size_t errlen)
{
    char *rest, *slash;

    *host = NULL;
    *field = "endpoint";
    if (cf->endpoint && cf->endpoint[0])
        *ep = strdup(cf->endpoint);
    else if (asprintf(ep, "https://s3.%s.amazonaws.com",
                      cf->region ? cf->region : "us-east-1") < 0)
        *ep = NULL;
    if (*ep == NULL)
        return -ENOMEM;
    rest = strstr(*ep, "://");
    if (rest == NULL || (strncmp(*ep, "http://", 7) != 0 &&
                         strncmp(*ep, "https://", 8) != 0)) {
        snprintf(err, errlen, "\"%s\" is not an http:// or https:// URL",
                 *ep);
        return -EINVAL;
    }
    *rest = '\0';
    rest += 3;
    slash = strchr(rest, '/');
    if (slash && slash[1] != '\0') {
        snprintf(err, errlen, "\"%s://%s\": a path after the host is not "
                 "supported", *ep, rest);
        return -EINVAL;
    }
    if (slash)
        *slash = '\0';
    if (rest[0] == '\0') {
        snprintf(err, errlen, "\"%s://\": no host", *ep);
        return -EINVAL;
    }
    if (!cf->path_style && is_ip_literal(rest)) {
        snprintf(err, errlen, "\"%s://%s\": an address cannot carry the "
                 "bucket's name; set path_style = true", *ep, rest);
        return -EINVAL;
    }
    *field = "bucket";
    if (cf->bucket == NULL || !is_bucket_name(cf->bucket)) {
        snprintf(err, errlen, "\"%s\" is not a bucket name (3 to 255 "
                 "letters, digits, '.', '-' and '_')",
                 cf->bucket ? cf->bucket : "");
        return -EINVAL;
    }
    if (!cf->path_style && strpbrk(cf->bucket, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                               "_") != NULL) {
        snprintf(err, errlen, "\"%s\": capitals and '_' cannot be in a host "
                 "name; set path_style = true", cf->bucket);
        return -EINVAL;
    }
    *host = rest;
    return 0;
}

int s3_check(const struct s3_config *cf, const char **field, char *err,
             size_t errlen)
{
    char *ep = NULL, *host;
    int r = parse(cf, &ep, &host, field, err, errlen);

    if (r == -ENOMEM)
        snprintf(err, errlen, "out of memory");
    free(ep);
    return r;
}

int s3_new(const struct s3_config *cf, struct s3 **out, char *err,
           size_t errlen)
{
    struct s3 *c = NULL;
    char *ep = NULL, *rest, why[S3_ERR_MAX];
    const char *field;
    int r = -ENOMEM;

    *out = NULL;
    r = curlso_load(err, errlen);
    if (r < 0)
        return r;
    r = -ENOMEM;
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        goto out;
    r = parse(cf, &ep, &rest, &field, why, sizeof(why));
    if (r == -EINVAL)
        snprintf(err, errlen, "%s %s", field, why);
    if (r < 0)
        goto out;

    r = -ENOMEM;
    c->scheme = strdup(ep);
    c->host = strdup(rest);
    c->bucket = strdup(cf->bucket);
    c->region = strdup(cf->region ? cf->region : "us-east-1");
    c->akid = strdup(cf->access_key_id ? cf->access_key_id : "");
    c->secret = strdup(cf->secret_access_key ? cf->secret_access_key : "");
    c->ca_file = cf->ca_file && cf->ca_file[0] ? strdup(cf->ca_file) : NULL;
    c->multi = curlso.multi_init();
    if (!c->scheme || !c->host || !c->bucket || !c->region || !c->akid ||
        !c->secret || (cf->ca_file && cf->ca_file[0] && !c->ca_file) ||
        !c->multi)
        goto out;
    c->path_style = cf->path_style;
    c->verify_tls = cf->verify_tls;
    c->timeout = cf->timeout > 0 ? cf->timeout : 60;
    c->cancel_fd = cf->cancel_fd;
    c->skew = cf->skew_seconds;
    if (cf->page_size > 0)
        snprintf(c->page, sizeof(c->page), "%d", cf->page_size);
    snprintf(c->desc, sizeof(c->desc), "%s://%s bucket %s", c->scheme,
             c->host, c->bucket);
    *out = c;
    c = NULL; /* transferred */
    r = 0;
out:
    if (r == -ENOMEM && errlen)
        snprintf(err, errlen, "out of memory");
    free(ep);
    s3_free(c);
    return r;
}

static void xfer_free(struct xfer *x);

void s3_parts_drop(struct s3 *c)
{
    struct xfer *x;

    while ((x = c->parts) != NULL) {
        c->parts = x->next;
        xfer_free(x);
    }
    c->n_parts = 0;
}

void s3_free(struct s3 *c)
{
    if (c == NULL)
        return;
    s3_parts_drop(c);
    if (c->multi)
        curlso.multi_cleanup(c->multi);
    if (c->secret)
        explicit_bzero(c->secret, strlen(c->secret));
    free(c->secret);
    free(c->scheme);
    free(c->host);
    free(c->bucket);
    free(c->region);
    free(c->akid);
    free(c->ca_file);
    free(c);
}

/* ---- one request -------------------------------------------------------- */

static void xfer_free(struct xfer *x)
{
    if (x == NULL)
        return;
    if (x->h) {
        curlso.multi_remove_handle(x->c->multi, x->h); /* fine if not added */
        curlso.easy_cleanup(x->h);
    }
    curlso.slist_free_all(x->hdrs);
    free(x->op);
    free(x->answer);
    free(x);
}

static size_t on_read(char *buf, size_t size, size_t n, void *arg)
{
    struct xfer *x = arg;
    size_t left = x->body_len - x->body_pos;

    if (left > size * n)
        left = size * n;
    memcpy(buf, x->body + x->body_pos, left);
    x->body_pos += left;
    return left;
}

static size_t on_write(char *buf, size_t size, size_t n, void *arg)
{
    struct xfer *x = arg;
    size_t len = size * n;
    long status = 0;

    curlso.easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
    if (x->sink && status / 100 == 2) {
        if (len > x->sink_len - x->sink_pos) {
            x->werr = -EIO; /* more than the Range asked for */
            return 0;
        }
        memcpy(x->sink + x->sink_pos, buf, len);
        x->sink_pos += len;
        return len;
    }
    if (x->answer_len + len > ANSWER_MAX) {
        x->werr = -EPROTO;
        return 0;
    }
    if (x->answer_len + len + 1 > x->answer_cap) {
        size_t cap = (x->answer_len + len + 1) * 2;
        char *p = realloc(x->answer, cap);

        if (p == NULL) {
            x->werr = -ENOMEM;
            return 0;
        }
        x->answer = p;
        x->answer_cap = cap;
    }
    memcpy(x->answer + x->answer_len, buf, len);
    x->answer_len += len;
    x->answer[x->answer_len] = '\0';
    return len;
}

/* Copy an ETag's value without its quotes (and a W/ prefix). */
static void set_etag(char *out, const char *v, size_t n)
{
    if (n >= 2 && v[0] == 'W' && v[1] == '/') {
        v += 2;
        n -= 2;
    }
    while (n && (*v == '"' || *v == ' ')) {
        v++;
        n--;
    }
    while (n && (v[n - 1] == '"' || v[n - 1] == ' '))
        n--;
    if (n >= S3_ETAG_MAX)
        n = S3_ETAG_MAX - 1;
    memcpy(out, v, n);
    out[n] = '\0';
}

static size_t on_header(char *buf, size_t size, size_t n, void *arg)
{
    struct xfer *x = arg;
    size_t len = size * n, vlen;
    char *colon, *v, tmp[128];

    if (len >= 5 && strncmp(buf, "HTTP/", 5) == 0) {
        /* a new answer (after a 100 Continue): forget the last one's */
        x->etag[0] = '\0';
        x->length = -1;
        x->date[0] = '\0';
        x->etag_not_md5 = 0;
        return len;
    }
    colon = memchr(buf, ':', len);
    if (colon == NULL)
        return len;
    v = colon + 1;
    vlen = len - (size_t)(v - buf);
    while (vlen && (*v == ' ' || *v == '\t')) {
        v++;
        vlen--;
    }
    while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n'))
        vlen--;
    if (vlen >= sizeof(tmp))
        return len;
    memcpy(tmp, v, vlen);
    tmp[vlen] = '\0';
#define IS(name) ((size_t)(colon - buf) == strlen(name) &&                     \
                  strncasecmp(buf, name, strlen(name)) == 0)
    if (IS("ETag"))
        set_etag(x->etag, tmp, vlen);
    else if (IS("Content-Length"))
        x->length = strtoll(tmp, NULL, 10);
    else if (IS("Last-Modified"))
        x->mtime = (int64_t)curlso.getdate(tmp, NULL);
    else if (IS("Date"))
        snprintf(x->date, sizeof(x->date), "%s", tmp);
    else if ((IS("x-amz-server-side-encryption") &&
              strncmp(tmp, "aws:kms", 7) == 0) || /* aws:kms, aws:kms:dsse */
             IS("x-amz-server-side-encryption-customer-algorithm"))
        x->etag_not_md5 = 1;
#undef IS
    return len;
}

/* What a request is: its method, key, query, extra headers and body. */
struct req {
    const char *method;
    const char *op;  /* "PutObject", for messages */
    const char *key; /* "" for the bucket */
    const struct sigv4_pair *query;
    size_t n_query;
    const struct sigv4_pair *headers; /* extra, signed */
    size_t n_headers;
    const void *body;
    size_t body_len;
};

static void md5_of(const void *p, size_t len, unsigned char md[16])
{
    unsigned int n = 16;

    EVP_Digest(p, len, md, &n, EVP_md5(), NULL);
}

static int add_header(struct xfer *x, const char *name, const char *value)
{
    char *line = NULL;
    struct curl_slist *l;

    if (asprintf(&line, "%s: %s", name, value) < 0)
        return -ENOMEM;
    l = curlso.slist_append(x->hdrs, line);
    free(line);
    if (l == NULL)
        return -ENOMEM;
    x->hdrs = l;
    return 0;
}

/*
 * A new easy handle for q, signed, not yet added to the multi handle.
 * The body is borrowed (q->body must outlive the transfer).
 */
static int prepare(struct s3 *c, const struct req *q, struct xfer **out)
{
    struct sigv4_pair h[HEADERS_MAX + 3];
    struct sigv4_request sr = {0};
    struct sigv4_key k = {0};
    struct xfer *x = NULL;
    char amz_date[20], sha[65], auth[SIGV4_AUTH_MAX], host[600];
    char *path = NULL, *url = NULL, *query = NULL;
    size_t plen, pos = 0, qlen, i, n = 0;
    time_t now = time(NULL) + c->skew;
    struct tm tm;
    int r = -ENOMEM;

    *out = NULL;
    if (q->n_headers > HEADERS_MAX)
        return -EINVAL;
    x = calloc(1, sizeof(*x));
    if (x == NULL)
        goto out;
    x->c = c;
    x->length = -1;
    for (i = 0; i < q->n_query; i++)
        if (strcmp(q->query[i].name, "uploadId") == 0)
            x->upload = 1;
    if (asprintf(&x->op, "%s%s%s", q->op, q->key[0] ? " " : "", q->key) < 0) {
        x->op = NULL;
        goto out;
    }

    /* path-style: host/bucket/key; virtual-hosted: bucket.host/key */
    if (asprintf(&path, "/%s%s%s", c->path_style ? c->bucket : "",
                 c->path_style && q->key[0] ? "/" : "", q->key) < 0) {
        path = NULL;
        goto out;
    }
    snprintf(host, sizeof(host), "%s%s%s", c->path_style ? "" : c->bucket,
             c->path_style ? "" : ".", c->host);
    qlen = 16;
    for (i = 0; i < q->n_query; i++)
        qlen += 3 * (strlen(q->query[i].name) + strlen(q->query[i].value)) + 2;
    query = malloc(qlen);
    plen = strlen(c->scheme) + strlen(host) + strlen(path) * 3 + qlen + 8;
    url = malloc(plen);
    if (query == NULL || url == NULL)
        goto out;
    r = sigv4_query(q->query, q->n_query, query, qlen);
    if (r < 0)
        goto out;
    pos = (size_t)snprintf(url, plen, "%s://%s", c->scheme, host);
    r = sigv4_encode(path, 1, url, plen, &pos);
    if (r == 0 && query[0])
        pos += (size_t)snprintf(url + pos, plen - pos, "?%s", query);
    if (r < 0)
        goto out;

    gmtime_r(&now, &tm);
    strftime(amz_date, sizeof(amz_date), "%Y%m%dT%H%M%SZ", &tm);
    if (q->body_len)
        sigv4_sha256_hex(q->body, q->body_len, sha);
    else
        strcpy(sha, SIGV4_EMPTY_SHA256);
    h[n++] = (struct sigv4_pair){"Host", host};
    h[n++] = (struct sigv4_pair){"x-amz-date", amz_date};
    h[n++] = (struct sigv4_pair){"x-amz-content-sha256", sha};
    for (i = 0; i < q->n_headers; i++)
        h[n++] = q->headers[i];
    sr.method = q->method;
    sr.path = path;
    sr.query = q->query;
    sr.n_query = q->n_query;
    sr.headers = h;
    sr.n_headers = n;
    sr.payload_sha256 = sha;
    k.access_key_id = c->akid;
    k.secret_access_key = c->secret;
    k.region = c->region;
    k.service = "s3";
    k.date = amz_date;
    r = sigv4_sign(&sr, &k, auth, sizeof(auth), NULL, 0);
    if (r < 0)
        goto out;

    r = -ENOMEM;
    for (i = 0; i < n; i++)
        if (add_header(x, h[i].name, h[i].value) < 0)
            goto out;
    /* no 100-continue round trip: the body follows the headers at once */
    if (add_header(x, "Authorization", auth) < 0 ||
        add_header(x, "Expect", "") < 0)
        goto out;

    x->h = curlso.easy_init();
    if (x->h == NULL)
        goto out;
    x->body = q->body;
    x->body_len = q->body_len;
    curlso.easy_setopt(x->h, CURLOPT_URL, url);
    curlso.easy_setopt(x->h, CURLOPT_HTTPHEADER, x->hdrs);
    curlso.easy_setopt(x->h, CURLOPT_PRIVATE, x);
    curlso.easy_setopt(x->h, CURLOPT_NOSIGNAL, 1L);
    curlso.easy_setopt(x->h, CURLOPT_PATH_AS_IS, 1L);
    curlso.easy_setopt(x->h, CURLOPT_ERRORBUFFER, x->errbuf);
    curlso.easy_setopt(x->h, CURLOPT_CONNECTTIMEOUT, (long)c->timeout);
    /* a transfer without progress for timeout seconds is dropped */
    curlso.easy_setopt(x->h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curlso.easy_setopt(x->h, CURLOPT_LOW_SPEED_TIME, (long)c->timeout);
    curlso.easy_setopt(x->h, CURLOPT_SSL_VERIFYPEER, c->verify_tls ? 1L : 0L);
    curlso.easy_setopt(x->h, CURLOPT_SSL_VERIFYHOST, c->verify_tls ? 2L : 0L);
    if (c->ca_file)
        curlso.easy_setopt(x->h, CURLOPT_CAINFO, c->ca_file);
    curlso.easy_setopt(x->h, CURLOPT_HEADERFUNCTION, on_header);
    curlso.easy_setopt(x->h, CURLOPT_HEADERDATA, x);
    curlso.easy_setopt(x->h, CURLOPT_WRITEFUNCTION, on_write);
    curlso.easy_setopt(x->h, CURLOPT_WRITEDATA, x);
    if (strcmp(q->method, "HEAD") == 0) {
        curlso.easy_setopt(x->h, CURLOPT_NOBODY, 1L);
    } else if (strcmp(q->method, "PUT") == 0) {
        curlso.easy_setopt(x->h, CURLOPT_UPLOAD, 1L);
        curlso.easy_setopt(x->h, CURLOPT_READFUNCTION, on_read);
        curlso.easy_setopt(x->h, CURLOPT_READDATA, x);
        curlso.easy_setopt(x->h, CURLOPT_INFILESIZE_LARGE,
                         (curl_off_t)q->body_len);
    } else if (strcmp(q->method, "POST") == 0) {
        curlso.easy_setopt(x->h, CURLOPT_POST, 1L);
        curlso.easy_setopt(x->h, CURLOPT_POSTFIELDS,
                         q->body_len ? (const char *)q->body : "");
        curlso.easy_setopt(x->h, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)q->body_len);
    } else if (strcmp(q->method, "GET") != 0) {
        curlso.easy_setopt(x->h, CURLOPT_CUSTOMREQUEST, q->method);
    }
    *out = x;
    x = NULL; /* transferred */
    r = 0;
out:
    if (r == -ENOMEM)
        fail(c, r, "%s %s: out of memory", q->op, q->key);
    else if (r < 0)
        fail(c, r, "%s %s: cannot sign the request: %s", q->op, q->key,
             strerror(-r));
    xfer_free(x);
    free(path);
    free(url);
    free(query);
    return r;
}

/* Mark every finished transfer done. */
static void collect(struct s3 *c)
{
    CURLMsg *m;
    int left;

    while ((m = curlso.multi_info_read(c->multi, &left)) != NULL) {
        struct xfer *x = NULL;

        if (m->msg != CURLMSG_DONE)
            continue;
        curlso.easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        x->cc = m->data.result;
        curlso.easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &x->status);
        x->done = 1;
        curlso.multi_remove_handle(c->multi, x->h);
    }
}

static int part_ready(const struct s3 *c)
{
    const struct xfer *p;

    for (p = c->parts; p; p = p->next)
        if (p->done)
            return 1;
    return 0;
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* How long a turn without waiting may go on while the sockets are ready. */
#define DRIVE_BUSY_MS 20

/*
 * Drive every transfer until x is done (x NULL: until a part is done),
 * for at most wait_ms (-1: no limit but the transfers' own timeouts; 0:
 * no wait, but as long as the sockets are ready, DRIVE_BUSY_MS at most).
 * Returns 0, or -ECANCELED as soon as the cancel descriptor is readable.
 */
static int drive(struct s3 *c, const struct xfer *x, int wait_ms)
{
    int64_t deadline = wait_ms < 0 ? -1 : now_ms() + wait_ms;
    int64_t busy_until = now_ms() + DRIVE_BUSY_MS;
    int running, ready;

    for (;;) {
        struct curl_waitfd w = {.fd = c->cancel_fd, .events = CURL_WAIT_POLLIN};
        int64_t left = 1000;

        curlso.multi_perform(c->multi, &running);
        collect(c);
        if (x ? x->done : part_ready(c))
            return 0;
        if (wait_ms == 0) {
            /* Without waiting, but as long as the sockets take more:
             * parts in flight move on between the caller's writes, also
             * when those are slow (a rate limit, a slow source). */
            ready = 0;
            if (running == 0 || now_ms() >= busy_until ||
                curlso.multi_poll(c->multi, NULL, 0, 0, &ready) != CURLM_OK ||
                ready == 0)
                return 0;
            continue;
        }
        if (deadline >= 0) {
            left = deadline - now_ms();
            if (left <= 0)
                return 0;
            if (left > 1000)
                left = 1000;
        }
        curlso.multi_poll(c->multi, &w, c->cancel_fd >= 0 ? 1 : 0, (int)left,
                        NULL);
        if (c->cancel_fd >= 0 && (w.revents & CURL_WAIT_POLLIN))
            return -ECANCELED;
    }
}

/* libcurl's failure as an errno, with words. */
static int curl_error(struct s3 *c, const struct xfer *x)
{
    const char *why = x->errbuf[0] ? x->errbuf : curlso.easy_strerror(x->cc);

    switch (x->cc) {
    case CURLE_COULDNT_CONNECT:
        return fail(c, -ECONNREFUSED, "%s: cannot connect: %s", x->op, why);
    case CURLE_COULDNT_RESOLVE_HOST:
        return fail(c, -EHOSTUNREACH, "%s: unknown host: %s", x->op, why);
    case CURLE_OPERATION_TIMEDOUT:
        return fail(c, -ETIMEDOUT, "%s: no progress for %d s: %s", x->op,
                    c->timeout, why);
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
        return fail(c, -EKEYREJECTED,
                    "%s: TLS: the server's certificate failed verification "
                    "against %s: %s",
                    x->op, c->ca_file ? c->ca_file : "the system's CAs", why);
    case CURLE_SSL_CONNECT_ERROR:
        return fail(c, -EPROTO, "%s: TLS handshake failed: %s", x->op, why);
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
        return fail(c, -ECONNRESET, "%s: connection lost: %s", x->op, why);
    case CURLE_WRITE_ERROR:
        if (x->werr == -EIO)
            return fail(c, -EIO, "%s: more bytes than the range asked",
                        x->op);
        if (x->werr == -ENOMEM)
            return fail(c, -ENOMEM, "%s: out of memory", x->op);
        return fail(c, -EPROTO, "%s: an answer longer than %d bytes", x->op,
                    ANSWER_MAX);
    case CURLE_OUT_OF_MEMORY:
        return fail(c, -ENOMEM, "%s: out of memory", x->op);
    default:
        return fail(c, -EPROTO, "%s: %s", x->op, why);
    }
}

/* Whether an element's end is the one named want at depth d. */
static int at(int depth, const char *name, int d, const char *want)
{
    return depth == d && strcmp(name, want) == 0;
}

/* An S3 error answer: <Error><Code/><Message/></Error>. */
struct error_doc {
    char code[64];
    char message[256];
    char root[64];
};

static int on_error_elem(void *arg, int depth, const char *parent,
                         const char *name, const char *text)
{
    struct error_doc *e = arg;

    if (depth == 1)
        snprintf(e->root, sizeof(e->root), "%s", name);
    else if (at(depth, name, 2, "Code"))
        snprintf(e->code, sizeof(e->code), "%s", text);
    else if (at(depth, name, 2, "Message"))
        snprintf(e->message, sizeof(e->message), "%s", text);
    return 0;
}

/* The server's refusal (status >= 300, or an <Error> in a 200) in words. */
static int http_error(struct s3 *c, const struct xfer *x)
{
    struct error_doc e = {.root = ""};
    long st = x->status;
    const char *code;
    char said[400];

    if (x->answer_len)
        s3_xml_read(x->answer, x->answer_len, on_error_elem, &e);
    code = e.code;
    if (!code[0]) /* HEAD has no body: the status must speak */
        code = st == 404 ? "NotFound" : st == 403 ? "Forbidden" : "";
    snprintf(said, sizeof(said), "HTTP %ld %s%s%s", st, code,
             e.message[0] ? ": " : "", e.message);

#define CODE(s) (strcmp(code, s) == 0)
    if (CODE("InvalidAccessKeyId"))
        return fail(c, -EPERM, "%s: wrong keys: the server knows no access "
                    "key id %s (%s)", x->op, c->akid, said);
    if (CODE("SignatureDoesNotMatch"))
        return fail(c, -EPERM, "%s: wrong keys: the secret access key is not "
                    "the one of access key id %s (%s)", x->op, c->akid, said);
    if (CODE("RequestTimeTooSkewed"))
        return fail(c, -EPERM, "%s: clock skew: this machine's clock is too "
                    "far from the server's (%s%s); set the clock (NTP) (%s)",
                    x->op, x->date[0] ? "server time " : "", x->date, said);
    if (CODE("AuthorizationHeaderMalformed") || CODE("PermanentRedirect") ||
        st == 301)
        return fail(c, -EPERM, "%s: wrong region: the bucket is not in "
                    "region %s at this endpoint (%s)", x->op, c->region, said);
    if (CODE("NoSuchBucket"))
        return fail(c, -EADDRNOTAVAIL, "%s: bucket %s does not exist at "
                    "%s://%s (%s)", x->op, c->bucket, c->scheme, c->host,
                    said);
    /* radosgw says NoSuchKey where AWS says NoSuchUpload */
    if (CODE("NoSuchUpload") || (x->upload && st == 404))
        return fail(c, -ESTALE, "%s: the multipart upload is gone on the "
                    "server (%s)", x->op, said);
    if (CODE("PreconditionFailed") || st == 412)
        return fail(c, -ESTALE, "%s: the object changed since it was listed "
                    "(%s)", x->op, said);
    if (CODE("NoSuchKey") || st == 404)
        return fail(c, -ENOENT, "%s: no such key (%s)", x->op, said);
    if (CODE("AccessDenied") || st == 403)
        return fail(c, -EACCES, "%s: access denied (%s)", x->op, said);
    if (CODE("BadDigest") || CODE("InvalidDigest") ||
        CODE("XAmzContentSHA256Mismatch"))
        return fail(c, -EIO, "%s: the server received other bytes than we "
                    "sent (%s)", x->op, said);
    if (CODE("SlowDown") || st == 503)
        return fail(c, -EAGAIN, "%s: throttled: the server asks us to slow "
                    "down (%s)", x->op, said);
    /* Not "slow down": an attempt of the file, tried again after its
     * back-off, so that a server that always fails on one object ends
     * in a failed file rather than in endless tries. */
    if (st >= 500 || CODE("InternalError"))
        return fail(c, -EIO, "%s: server error (%s)", x->op, said);
    return fail(c, -EIO, "%s: refused (%s)", x->op, said);
#undef CODE
}

/* The outcome of a finished transfer: 0, or the errno of its failure. */
static int outcome(struct s3 *c, const struct xfer *x)
{
    if (x->cc != CURLE_OK)
        return curl_error(c, x);
    if (x->status < 200 || x->status >= 300)
        return http_error(c, x);
    return 0;
}

/* Send x and wait for its answer; x is freed by the caller. */
static int run(struct s3 *c, struct xfer *x)
{
    int r;

    if (curlso.multi_add_handle(c->multi, x->h) != CURLM_OK)
        return fail(c, -ENOMEM, "%s: out of memory", x->op);
    r = drive(c, x, -1);
    if (r < 0)
        return fail(c, r, "%s: cancelled", x->op);
    return outcome(c, x);
}

/* prepare() and run() of q; *out (freed by the caller) is the transfer. */
static int request(struct s3 *c, const struct req *q, char *sink,
                   size_t sink_len, struct xfer **out)
{
    int r;

    r = prepare(c, q, out);
    if (r < 0)
        return r;
    (*out)->sink = sink;
    (*out)->sink_len = sink_len;
    return run(c, *out);
}

/* An answer that must be XML of root element root: an <Error> in a 200
 * (CompleteMultipartUpload, CopyObject do that) is an error. */
static int check_root(struct s3 *c, struct xfer *x, const char *root)
{
    struct error_doc e = {.root = ""};
    int r;

    r = s3_xml_read(x->answer ? x->answer : "", x->answer_len,
                    on_error_elem, &e);
    if (r < 0)
        return fail(c, -EPROTO, "%s: an answer that is not XML", x->op);
    if (strcmp(e.root, "Error") == 0) {
        x->status = 500; /* the error travels in a 200: S3 says retry */
        return http_error(c, x);
    }
    if (strcmp(e.root, root) != 0)
        return fail(c, -EPROTO, "%s: an answer <%s> where <%s> was due",
                    x->op, e.root, root);
    return 0;
}

/* ---- objects ------------------------------------------------------------ */

/* Content-MD5 (base64) and its hex for a body. */
static void body_md5(const void *buf, size_t len, char b64[25], char hexs[33])
{
    unsigned char md[16];
    int i;

    md5_of(buf, len, md);
    EVP_EncodeBlock((unsigned char *)b64, md, 16);
    for (i = 0; i < 16; i++)
        snprintf(hexs + 2 * i, 3, "%02x", md[i]);
}

/*
 * The ETag of an uploaded body must be the MD5 of what we sent, unless
 * the server says it is not one (SSE-KMS, SSE-C): Content-MD5 had the
 * server check the bytes anyway.
 */
/*
 * A new object's headers after the n in h: its type (without it curl
 * would send a form's on a POST) and storage class.  Returns the count.
 */
static size_t object_headers(struct sigv4_pair *h, size_t n,
                             const struct s3_put_opts *o)
{
    h[n++] = (struct sigv4_pair){"Content-Type", "application/octet-stream"};
    if (o && o->storage_class && o->storage_class[0])
        h[n++] = (struct sigv4_pair){"x-amz-storage-class", o->storage_class};
    return n;
}

static int check_etag(struct s3 *c, const struct xfer *x, const char *md5)
{
    if (!x->etag_not_md5 && strcasecmp(x->etag, md5) != 0)
        return fail(c, -EIO, "%s: the server's ETag \"%s\" is not the MD5 "
                    "%s of the bytes sent", x->op, x->etag, md5);
    return 0;
}

int s3_put(struct s3 *c, const char *key, const void *buf, size_t len,
           const struct s3_put_opts *o, char *etag)
{
    char b64[25], md5[33];
    struct sigv4_pair h[3];
    struct req q = {.method = "PUT", .op = "PutObject", .key = key,
                    .headers = h, .body = buf, .body_len = len};
    struct xfer *x = NULL;
    int r;

    body_md5(buf, len, b64, md5);
    h[q.n_headers++] = (struct sigv4_pair){"Content-MD5", b64};
    q.n_headers = object_headers(h, q.n_headers, o);
    r = request(c, &q, NULL, 0, &x);
    if (r == 0)
        r = check_etag(c, x, md5);
    if (r == 0 && etag)
        snprintf(etag, S3_ETAG_MAX, "%s", x->etag);
    xfer_free(x);
    return r;
}

int s3_head(struct s3 *c, const char *key, struct s3_object *out)
{
    struct req q = {.method = "HEAD", .op = "HeadObject", .key = key};
    struct xfer *x = NULL;
    int r;

    memset(out, 0, sizeof(*out));
    r = request(c, &q, NULL, 0, &x);
    if (r == 0) {
        out->size = x->length;
        out->mtime = x->mtime;
        snprintf(out->etag, sizeof(out->etag), "%s", x->etag);
    }
    xfer_free(x);
    return r;
}

int s3_get(struct s3 *c, const char *key, int64_t off, void *buf,
           size_t len, const char *if_match, size_t *got)
{
    char range[64], match[S3_ETAG_MAX + 2];
    struct sigv4_pair h[2];
    struct req q = {.method = "GET", .op = "GetObject", .key = key,
                    .headers = h};
    struct xfer *x = NULL;
    int r;

    *got = 0;
    if (len == 0)
        return 0;
    snprintf(range, sizeof(range), "bytes=%lld-%lld", (long long)off,
             (long long)(off + (int64_t)len - 1));
    h[q.n_headers++] = (struct sigv4_pair){"Range", range};
    if (if_match && if_match[0]) {
        snprintf(match, sizeof(match), "\"%s\"", if_match);
        h[q.n_headers++] = (struct sigv4_pair){"If-Match", match};
    }
    r = prepare(c, &q, &x);
    if (r < 0)
        return r;
    x->sink = buf;
    x->sink_len = len;
    r = run(c, x);
    if (r == 0 && x->status == 200 && off != 0)
        r = fail(c, -EPROTO, "%s: the server ignored the Range", x->op);
    if (r == -EIO && x->status == 416) /* at or past the end */
        r = 0;
    if (r == 0)
        *got = x->sink_pos;
    xfer_free(x);
    return r;
}

int s3_delete(struct s3 *c, const char *key)
{
    struct req q = {.method = "DELETE", .op = "DeleteObject", .key = key};
    struct xfer *x = NULL;
    int r;

    r = request(c, &q, NULL, 0, &x);
    if (r == -ENOENT)
        r = 0;
    xfer_free(x);
    return r;
}

int s3_copy(struct s3 *c, const char *src_key, const char *dst_key)
{
    size_t len = 3 * (strlen(c->bucket) + strlen(src_key)) + 4, pos = 0;
    char *src = malloc(len);
    struct sigv4_pair h[1];
    struct req q = {.method = "PUT", .op = "CopyObject", .key = dst_key,
                    .headers = h, .n_headers = 1};
    struct xfer *x = NULL;
    int r = -ENOMEM;

    if (src == NULL)
        return fail(c, -ENOMEM, "CopyObject %s: out of memory", dst_key);
    /* "/bucket/key", URL-encoded as the header asks */
    src[pos++] = '/';
    sigv4_encode(c->bucket, 0, src, len, &pos);
    src[pos++] = '/';
    r = sigv4_encode(src_key, 1, src, len, &pos);
    src[pos] = '\0';
    h[0] = (struct sigv4_pair){"x-amz-copy-source", src};
    if (r == 0)
        r = request(c, &q, NULL, 0, &x);
    if (r == 0)
        r = check_root(c, x, "CopyObjectResult");
    xfer_free(x);
    free(src);
    return r;
}

/* ---- listings ----------------------------------------------------------- */

/* What a listing page says of the next one. */
struct more {
    int truncated;
    char next[S3_XML_TEXT_MAX + 1]; /* the token or marker of the next */
};

/* Read IsTruncated and the element naming the next page into m. */
static int on_more(struct more *m, int depth, const char *name,
                   const char *text, const char *next)
{
    if (at(depth, name, 2, "IsTruncated"))
        m->truncated = strcmp(text, "true") == 0;
    else if (at(depth, name, 2, next))
        snprintf(m->next, sizeof(m->next), "%s", text);
    else
        return 0;
    return 1;
}

/*
 * One listing page: q sent with the page size as parameter size_name and,
 * after a truncated page, m->next as parameter next_name; the answer read
 * with elem(arg), what it says of the next page into m.
 */
static int read_page(struct s3 *c, const struct req *q, const char *size_name,
                     const char *next_name,
                     int (*elem)(void *arg, int depth, const char *parent,
                                 const char *name, const char *text),
                     void *arg, struct more *m)
{
    struct sigv4_pair qp[4];
    struct req pq = *q;
    struct xfer *x = NULL;
    int r;

    memcpy(qp, q->query, q->n_query * sizeof(*qp)); /* two at most */
    pq.query = qp;
    if (c->page[0])
        qp[pq.n_query++] = (struct sigv4_pair){size_name, c->page};
    if (m->truncated)
        qp[pq.n_query++] = (struct sigv4_pair){next_name, m->next};
    r = request(c, &pq, NULL, 0, &x); /* sent: m may change now */
    if (r < 0)
        goto out;
    m->truncated = 0;
    m->next[0] = '\0';
    r = s3_xml_read(x->answer ? x->answer : "", x->answer_len, elem, arg);
    if (r == -EPROTO)
        r = fail(c, r, "%s: an answer we cannot read", x->op);
    else if (r == 0 && m->truncated && m->next[0] == '\0')
        r = fail(c, -EPROTO, "%s: truncated, with no next page", x->op);
out:
    xfer_free(x);
    return r;
}

/* One page of ListObjectsV2, read element by element. */
struct list_page {
    struct more more;
    struct s3_object o;
    char key[S3_XML_TEXT_MAX + 1];
    int (*fn)(void *arg, const struct s3_object *o);
    void *arg;
};

/* "2009-10-12T17:50:30.000Z" as seconds since the epoch. */
static int64_t iso8601(const char *s)
{
    struct tm tm = {0};

    if (sscanf(s, "%d-%d-%dT%d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
               &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm);
}

static int on_list_elem(void *arg, int depth, const char *parent,
                        const char *name, const char *text)
{
    struct list_page *p = arg;
    int r;

    if (on_more(&p->more, depth, name, text, "NextContinuationToken"))
        return 0;
    if (depth == 3 && strcmp(parent, "Contents") == 0) {
        if (strcmp(name, "Key") == 0)
            snprintf(p->key, sizeof(p->key), "%s", text);
        else if (strcmp(name, "Size") == 0)
            p->o.size = strtoll(text, NULL, 10);
        else if (strcmp(name, "ETag") == 0)
            set_etag(p->o.etag, text, strlen(text));
        else if (strcmp(name, "LastModified") == 0)
            p->o.mtime = iso8601(text);
        return 0;
    }
    if (!at(depth, name, 2, "Contents"))
        return 0;
    p->o.key = p->key;
    r = p->key[0] ? p->fn(p->arg, &p->o) : -EPROTO;
    memset(&p->o, 0, sizeof(p->o));
    p->key[0] = '\0';
    return r;
}

int s3_list(struct s3 *c, const char *prefix,
            int (*fn)(void *arg, const struct s3_object *o), void *arg)
{
    const struct sigv4_pair qp[] = {{"list-type", "2"}, {"prefix", prefix}};
    const struct req q = {.method = "GET", .op = "ListObjectsV2", .key = "",
                          .query = qp, .n_query = 2};
    struct list_page *p = calloc(1, sizeof(*p));
    int r;

    if (p == NULL)
        return fail(c, -ENOMEM, "ListObjectsV2: out of memory");
    p->fn = fn;
    p->arg = arg;
    do
        r = read_page(c, &q, "max-keys", "continuation-token", on_list_elem,
                      p, &p->more);
    while (r == 0 && p->more.truncated);
    free(p);
    return r;
}

int s3_probe(struct s3 *c, const char *prefix)
{
    const struct sigv4_pair qp[] = {{"list-type", "2"}, {"max-keys", "1"},
                                    {"prefix", prefix}};
    const struct req q = {.method = "GET", .op = "ListObjectsV2", .key = "",
                          .query = qp, .n_query = 3};
    struct xfer *x = NULL;
    int r = request(c, &q, NULL, 0, &x);

    xfer_free(x);
    return r;
}

/* ---- multipart uploads -------------------------------------------------- */

struct upload_id {
    char *out;
};

static int on_create_elem(void *arg, int depth, const char *parent,
                          const char *name, const char *text)
{
    struct upload_id *u = arg;

    if (at(depth, name, 2, "UploadId"))
        snprintf(u->out, S3_UPLOAD_ID_MAX, "%s", text);
    return 0;
}

int s3_mpu_create(struct s3 *c, const char *key, const struct s3_put_opts *o,
                  char *upload_id)
{
    const struct sigv4_pair qp[] = {{"uploads", ""}};
    struct sigv4_pair h[2];
    struct req q = {.method = "POST", .op = "CreateMultipartUpload",
                    .key = key, .query = qp, .n_query = 1, .headers = h};
    struct upload_id u = {upload_id};
    struct xfer *x = NULL;
    int r;

    upload_id[0] = '\0';
    q.n_headers = object_headers(h, q.n_headers, o);
    r = request(c, &q, NULL, 0, &x);
    if (r == 0)
        r = check_root(c, x, "InitiateMultipartUploadResult");
    if (r == 0)
        s3_xml_read(x->answer, x->answer_len, on_create_elem, &u);
    if (r == 0 && upload_id[0] == '\0')
        r = fail(c, -EPROTO, "%s: no UploadId in the answer", x->op);
    xfer_free(x);
    return r;
}

/* One page of ListParts. */
struct parts_page {
    struct more more;
    struct s3_part *v;
    size_t n, cap;
    struct s3_part cur;
};

static int on_parts_elem(void *arg, int depth, const char *parent,
                         const char *name, const char *text)
{
    struct parts_page *p = arg;

    if (on_more(&p->more, depth, name, text, "NextPartNumberMarker"))
        return 0;
    if (depth == 3 && strcmp(parent, "Part") == 0) {
        if (strcmp(name, "PartNumber") == 0)
            p->cur.number = atoi(text);
        else if (strcmp(name, "Size") == 0)
            p->cur.size = strtoll(text, NULL, 10);
        else if (strcmp(name, "ETag") == 0)
            set_etag(p->cur.etag, text, strlen(text));
        return 0;
    }
    if (!at(depth, name, 2, "Part"))
        return 0;
    if (p->cur.number < 1 || p->cur.number > 10000 ||
        (p->n && p->cur.number <= p->v[p->n - 1].number))
        return -EPROTO; /* S3 lists parts once, in order */
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        struct s3_part *v = realloc(p->v, cap * sizeof(*v));

        if (v == NULL)
            return -ENOMEM;
        p->v = v;
        p->cap = cap;
    }
    p->v[p->n++] = p->cur;
    memset(&p->cur, 0, sizeof(p->cur));
    return 0;
}

int s3_mpu_list(struct s3 *c, const char *key, const char *upload_id,
                struct s3_part **parts, size_t *n)
{
    const struct sigv4_pair qp[] = {{"uploadId", upload_id}};
    const struct req q = {.method = "GET", .op = "ListParts", .key = key,
                          .query = qp, .n_query = 1};
    struct parts_page *p = calloc(1, sizeof(*p));
    int marker = 0, r;

    *parts = NULL;
    *n = 0;
    if (p == NULL)
        return fail(c, -ENOMEM, "ListParts: out of memory");
    do {
        r = read_page(c, &q, "max-parts", "part-number-marker",
                      on_parts_elem, p, &p->more);
        /* a marker that does not move on would list forever */
        if (r == 0 && p->more.truncated) {
            if (atoi(p->more.next) <= marker)
                r = fail(c, -EPROTO, "ListParts %s: the next page's marker "
                         "goes back", key);
            marker = atoi(p->more.next);
        }
    } while (r == 0 && p->more.truncated);
    if (r == 0) {
        *parts = p->v;
        *n = p->n;
        p->v = NULL; /* transferred */
    }
    free(p->v);
    free(p);
    return r;
}

static int on_complete_elem(void *arg, int depth, const char *parent,
                            const char *name, const char *text)
{
    if (at(depth, name, 2, "ETag"))
        set_etag(arg, text, strlen(text));
    return 0;
}

int s3_mpu_complete(struct s3 *c, const char *key, const char *upload_id,
                    const struct s3_part *parts, size_t n, char *etag)
{
    const struct sigv4_pair qp[] = {{"uploadId", upload_id}};
    const struct sigv4_pair h[] = {{"Content-Type", "application/xml"}};
    struct req q = {.method = "POST", .op = "CompleteMultipartUpload",
                    .key = key, .query = qp, .n_query = 1, .headers = h,
                    .n_headers = 1};
    size_t cap = 64 + n * (S3_ETAG_MAX + 64), pos, i;
    char *body = malloc(cap), tag[S3_ETAG_MAX] = "";
    struct xfer *x = NULL;
    struct s3_object o;
    int r;

    if (body == NULL)
        return fail(c, -ENOMEM, "CompleteMultipartUpload: out of memory");
    pos = (size_t)snprintf(body, cap, "<CompleteMultipartUpload>");
    for (i = 0; i < n; i++)
        pos += (size_t)snprintf(body + pos, cap - pos,
                                "<Part><PartNumber>%d</PartNumber>"
                                "<ETag>\"%s\"</ETag></Part>",
                                parts[i].number, parts[i].etag);
    pos += (size_t)snprintf(body + pos, cap - pos,
                            "</CompleteMultipartUpload>");
    q.body = body;
    q.body_len = pos;
    r = request(c, &q, NULL, 0, &x);
    if (r == 0)
        r = check_root(c, x, "CompleteMultipartUploadResult");
    if (r == 0)
        s3_xml_read(x->answer, x->answer_len, on_complete_elem, tag);
    xfer_free(x);
    free(body);
    if (r == 0 && tag[0] == '\0') {
        /* radosgw answers with an empty ETag: ask the object */
        r = s3_head(c, key, &o);
        if (r == 0)
            snprintf(tag, sizeof(tag), "%s", o.etag);
    }
    if (r == 0 && etag)
        snprintf(etag, S3_ETAG_MAX, "%s", tag);
    return r;
}

int s3_mpu_abort(struct s3 *c, const char *key, const char *upload_id)
{
    const struct sigv4_pair qp[] = {{"uploadId", upload_id}};
    struct req q = {.method = "DELETE", .op = "AbortMultipartUpload",
                    .key = key, .query = qp, .n_query = 1};
    struct xfer *x = NULL;
    int r;

    r = request(c, &q, NULL, 0, &x);
    if (r == -ESTALE) /* already gone: what we wanted */
        r = 0;
    xfer_free(x);
    return r;
}

/* ---- parts in flight ---------------------------------------------------- */

int s3_part_start(struct s3 *c, const char *key, const char *upload_id,
                  int number, const void *buf, size_t len, void *tag)
{
    char b64[25], md5[33], num[16], op[32];
    const struct sigv4_pair qp[] = {{"partNumber", num},
                                    {"uploadId", upload_id}};
    const struct sigv4_pair h[] = {{"Content-MD5", b64}};
    struct req q = {.method = "PUT", .op = op, .key = key,
                    .query = qp, .n_query = 2, .headers = h, .n_headers = 1,
                    .body = buf, .body_len = len};
    struct xfer *x = NULL;
    int r;

    snprintf(num, sizeof(num), "%d", number);
    snprintf(op, sizeof(op), "UploadPart %d of", number);
    body_md5(buf, len, b64, md5);
    r = prepare(c, &q, &x);
    if (r < 0)
        return r;
    memcpy(x->md5, md5, sizeof(md5));
    x->number = number;
    x->tag = tag;
    if (curlso.multi_add_handle(c->multi, x->h) != CURLM_OK) {
        xfer_free(x);
        return fail(c, -ENOMEM, "UploadPart %d of %s: out of memory", number,
                    key);
    }
    x->next = c->parts;
    c->parts = x;
    c->n_parts++;
    return 0;
}

int s3_parts_in_flight(const struct s3 *c)
{
    return c->n_parts;
}

int s3_part_poll(struct s3 *c, int wait_ms, struct s3_part_done *done)
{
    struct xfer **pp, *x;
    int r;

    memset(done, 0, sizeof(*done));
    if (c->parts == NULL)
        return 0;
    if (!part_ready(c)) {
        r = drive(c, NULL, wait_ms);
        if (r < 0)
            return fail(c, r, "UploadPart: cancelled");
    }
    for (pp = &c->parts; *pp; pp = &(*pp)->next)
        if ((*pp)->done)
            break;
    x = *pp;
    if (x == NULL)
        return 0;
    *pp = x->next;
    c->n_parts--;
    done->tag = x->tag;
    done->number = x->number;
    done->result = outcome(c, x);
    if (done->result == 0)
        done->result = check_etag(c, x, x->md5);
    if (done->result == 0)
        snprintf(done->etag, sizeof(done->etag), "%s", x->etag);
    xfer_free(x);
    return 1;
}
