/*
 * An S3 client, shared by the S3 sink and the S3 source.
 *
 * Two parts:
 *  - sigv4_*() (agent/s3/sigv4.c): AWS Signature Version 4 on OpenSSL, a
 *    pure function of the request, the keys and the time; tested against
 *    AWS's published vectors (tests/data/sigv4/).
 *  - s3_*() (agent/s3/client.c): the S3 requests a file relay needs, over
 *    libcurl, their XML answers read with expat (agent/s3/xml.c).
 *
 * A client (struct s3) belongs to one thread.  Every call blocks for at
 * most a timeout without progress and returns -ECANCELED soon after the
 * cancel descriptor becomes readable.  Parts of a multipart upload may be
 * sent concurrently: s3_part_start() queues one and returns, s3_part_poll()
 * drives them all (in the calling thread, on one curl multi handle) and
 * reports each as it completes; a blocking call made meanwhile drives them
 * too.
 *
 * Errors are negative errnos the agent classifies (sink_error_is_target()),
 * with a message in s3_error() that names the endpoint, bucket and key and
 * never a secret:
 *   -EPERM        wrong keys (InvalidAccessKeyId, SignatureDoesNotMatch),
 *                 clock skew (RequestTimeTooSkewed), wrong region
 *   -EADDRNOTAVAIL the bucket does not exist (NoSuchBucket)
 *   -EKEYREJECTED TLS: the server's certificate failed verification
 *   -ECONNREFUSED, -ECONNRESET, -EHOSTUNREACH, -ETIMEDOUT: the network
 *   -EAGAIN       throttled or a server error (503 SlowDown, 500): back off
 *   -ESTALE       what a call continues is gone: NoSuchUpload, or an
 *                 object that changed under an If-Match
 *   -ENOENT       no such key
 *   -EACCES       access denied to this key
 *   -EIO          the server's answer contradicts what we sent (ETag, MD5)
 *   -EPROTO       an answer we cannot read
 *   -ECANCELED    the cancel descriptor became readable
 */
#ifndef SFTPRELAY_S3_H
#define SFTPRELAY_S3_H

#include <stddef.h>
#include <stdint.h>

/* ---- Signature Version 4 ------------------------------------------------ */

/* One header or query parameter, as given (not encoded). */
struct sigv4_pair {
    const char *name;
    const char *value;
};

/* A request to sign. */
struct sigv4_request {
    const char *method;                /* "GET", "PUT", ... */
    const char *path;                  /* "/bucket/key", not encoded */
    const struct sigv4_pair *query;    /* n_query parameters, not encoded */
    size_t n_query;
    const struct sigv4_pair *headers;  /* n_headers, every one signed: */
    size_t n_headers;                  /* host and x-amz-date among them */
    const char *payload_sha256;        /* hex SHA-256 of the body */
};

/* Credentials and scope: date is the x-amz-date, "20150830T123600Z". */
struct sigv4_key {
    const char *access_key_id;
    const char *secret_access_key;
    const char *region;
    const char *service; /* "s3" */
    const char *date;
};

#define SIGV4_AUTH_MAX 1024

/*
 * The Authorization header's value for req signed with k, into out (len
 * bytes, SIGV4_AUTH_MAX is plenty for S3's few headers).  The path is
 * RFC 3986-encoded once, '/' kept, never normalized (S3's rule); the
 * query is encoded and sorted; header names are lowercased and sorted,
 * values trimmed, runs of spaces folded, repeated names joined with ','.
 * If creq is not NULL, the canonical request is written there too (for
 * tests; creqlen bytes).  Returns 0, -ENOSPC if a buffer is too small, or
 * -ENOMEM.
 */
int sigv4_sign(const struct sigv4_request *req, const struct sigv4_key *k,
               char *out, size_t len, char *creq, size_t creqlen);

/*
 * RFC 3986 encoding of s (every byte but A-Za-z0-9-._~ as %XX, and '/'
 * too unless keep_slash) appended to out, which holds len bytes with *pos
 * used.  Returns 0 or -ENOSPC.
 */
int sigv4_encode(const char *s, int keep_slash, char *out, size_t len,
                 size_t *pos);

/*
 * The canonical query string of n parameters ("a=1&b=" encoded and
 * sorted), the one to put in the URL too, into out (len bytes).  Returns
 * 0, -ENOSPC or -ENOMEM.
 */
int sigv4_query(const struct sigv4_pair *query, size_t n, char *out,
                size_t len);

/* Lowercase hex of the SHA-256 of len bytes at p, into hex[65]. */
void sigv4_sha256_hex(const void *p, size_t len, char hex[65]);

/* The SHA-256 of no bytes, the payload hash of GET, HEAD and DELETE. */
#define SIGV4_EMPTY_SHA256                                                     \
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* ---- Credentials (agent/s3/creds.c) ------------------------------------- */

struct s3_creds {
    char access_key_id[256];
    char secret_access_key[4096]; /* wipe with explicit_bzero() after use */
};

/*
 * The keys to sign with, looked for as the AWS tools do: access_key_id
 * with the first line of secret_file if secret_file is set; else
 * AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; else profile ("" or NULL:
 * "default") of AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials.
 * Returns 0, or a negative errno with why (whylen bytes) naming what was
 * looked at, never the secret.
 */
int s3_creds_load(const char *access_key_id, const char *secret_file,
                  const char *profile, struct s3_creds *out, char *why,
                  size_t whylen);

/* ---- The client ---------------------------------------------------------- */

struct s3;

#define S3_ERR_MAX 512
#define S3_ETAG_MAX 80     /* an ETag without its quotes */
#define S3_UPLOAD_ID_MAX 512

/* What s3_new() needs; strings are copied. */
struct s3_config {
    const char *endpoint; /* "https://host[:port]"; NULL or "": AWS's */
    const char *region;   /* "us-east-1" */
    const char *bucket;
    int path_style;       /* https://host/bucket/key, else bucket.host */
    const char *access_key_id;
    const char *secret_access_key; /* kept until s3_free(), then wiped */
    const char *ca_file;  /* NULL or "": the system's CAs */
    int verify_tls;       /* 0: accept any certificate (tests only) */
    int timeout;          /* seconds without progress, then -ETIMEDOUT */
    int cancel_fd;        /* -1: none */
    int skew_seconds;     /* added to this clock when signing: tests */
    int page_size;        /* keys or parts a listing page asks for; 0:
                             the server's default (1000) */
};

/* A stored object, as HEAD or a listing tells it. */
struct s3_object {
    const char *key;       /* listings only; valid during the callback */
    int64_t size;
    int64_t mtime;         /* seconds since the epoch */
    char etag[S3_ETAG_MAX];
};

/* A part of a multipart upload, as ListParts tells it. */
struct s3_part {
    int number;
    int64_t size;
    char etag[S3_ETAG_MAX];
};

/* Options of a new object (PUT, CreateMultipartUpload). */
struct s3_put_opts {
    const char *storage_class; /* NULL or "": the bucket's default */
};

/*
 * Whether s3_new() can use cf's endpoint, bucket and path_style: an
 * http:// or https:// URL with a host and no path; a bucket name of 3 to
 * 255 of S3's characters; an address or a bucket that cannot be in a host
 * name only with path_style.  Returns 0, -EINVAL with *field naming the
 * member at fault ("endpoint", "bucket") and err (errlen bytes) why, or
 * -ENOMEM.
 */
int s3_check(const struct s3_config *cf, const char **field, char *err,
             size_t errlen);

/*
 * A new client for cf; *out is freed with s3_free().  It connects on
 * its first request.  Returns 0, -EINVAL (with *err saying why, errlen
 * bytes) for what s3_check() refuses, or -ENOMEM.
 */
int s3_new(const struct s3_config *cf, struct s3 **out, char *err,
           size_t errlen);

/* Free c (NULL is fine), dropping parts in flight, wiping the secret. */
void s3_free(struct s3 *c);

/* Why the last failed call failed, with endpoint, bucket and key. */
const char *s3_error(const struct s3 *c);

/* "http://127.0.0.1:7480 bucket b", for logs. */
const char *s3_describe(const struct s3 *c);

/*
 * PutObject: len bytes at buf as key, with Content-MD5 and the payload's
 * SHA-256 signed; the answer's ETag must be their MD5 (-EIO if not),
 * unless the answer says SSE-KMS or SSE-C (x-amz-server-side-encryption:
 * aws:kms, or a customer algorithm), whose ETags are no MD5.  etag
 * (S3_ETAG_MAX bytes) receives it unless NULL.
 */
int s3_put(struct s3 *c, const char *key, const void *buf, size_t len,
           const struct s3_put_opts *o, char *etag);

/* HeadObject: -ENOENT if key is not there. */
int s3_head(struct s3 *c, const char *key, struct s3_object *out);

/*
 * GetObject of len bytes from offset off into buf (a Range request);
 * *got says how many came (fewer at the object's end; 0 past it).  If
 * if_match is not NULL or "", the object must still have that ETag, else
 * -ESTALE.
 */
int s3_get(struct s3 *c, const char *key, int64_t off, void *buf,
           size_t len, const char *if_match, size_t *got);

/*
 * Whether the bucket answers to our keys: one ListObjectsV2 page of at
 * most one key under prefix.  The errors of any request (wrong keys, no
 * bucket, no server) in one cheap call.
 */
int s3_probe(struct s3 *c, const char *prefix);

/* DeleteObject; deleting a missing key is no error (S3's rule). */
int s3_delete(struct s3 *c, const char *key);

/* CopyObject from src_key to dst_key in the same bucket. */
int s3_copy(struct s3 *c, const char *src_key, const char *dst_key);

/*
 * ListObjectsV2 of every key under prefix, page by page: fn is called
 * for each object (its fields valid during the call); a non-zero return
 * stops the listing and is returned.
 */
int s3_list(struct s3 *c, const char *prefix,
            int (*fn)(void *arg, const struct s3_object *o), void *arg);

/* CreateMultipartUpload: the UploadId into upload_id (S3_UPLOAD_ID_MAX). */
int s3_mpu_create(struct s3 *c, const char *key, const struct s3_put_opts *o,
                  char *upload_id);

/*
 * ListParts, every page: *parts (malloc'd, the caller frees it) holds *n
 * parts in increasing number.  -ESTALE if the upload is gone.
 */
int s3_mpu_list(struct s3 *c, const char *key, const char *upload_id,
                struct s3_part **parts, size_t *n);

/*
 * CompleteMultipartUpload of n parts (in increasing number; etag and
 * number used).  etag (S3_ETAG_MAX) receives the object's ETag, asked of
 * HEAD where the answer has none (radosgw's known bug).
 */
int s3_mpu_complete(struct s3 *c, const char *key, const char *upload_id,
                    const struct s3_part *parts, size_t n, char *etag);

/* AbortMultipartUpload; an upload already gone is no error. */
int s3_mpu_abort(struct s3 *c, const char *key, const char *upload_id);

/*
 * UploadPart, started and not waited for: len bytes at buf (borrowed
 * until s3_part_poll() reports the part or s3_parts_drop()) as part
 * number of upload_id, with Content-MD5 and the payload's SHA-256.  tag
 * comes back with the result.  Returns 0, or an error of the start.
 */
int s3_part_start(struct s3 *c, const char *key, const char *upload_id,
                  int number, const void *buf, size_t len, void *tag);

/* What s3_part_poll() reports of one part. */
struct s3_part_done {
    void *tag;
    int number;
    int result;             /* 0, or a negative errno (s3_error() says) */
    char etag[S3_ETAG_MAX]; /* checked as s3_put()'s */
};

/*
 * Drive the parts in flight for up to wait_ms (0: do what can be done
 * without waiting; -1: until one completes).  Returns 1 with *done filled
 * when a part completed, 0 when none did in that time or none is in
 * flight, or -ECANCELED.
 */
int s3_part_poll(struct s3 *c, int wait_ms, struct s3_part_done *done);

/* Parts started and not yet reported. */
int s3_parts_in_flight(const struct s3 *c);

/* Drop every part in flight without waiting; their buffers are free. */
void s3_parts_drop(struct s3 *c);

#endif
