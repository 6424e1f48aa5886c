/*
 * The S3 connection keys that every plugin reaching a bucket shares (the
 * S3 sink's target.*, the S3 source's source.*): one settings sub-struct,
 * one set of key rows, one connect.  A plugin embeds struct s3_settings
 * in its settings struct and puts S3_CONF_KEYS(its struct, its member,
 * what its bucket is, what its prefix is) in its key table; the bucket
 * and the prefix say different things to a sink and a source, the other
 * keys the same.
 */
#ifndef SFTPRELAY_S3CONF_H
#define SFTPRELAY_S3CONF_H

#include <stddef.h>

#include "sftprelay/conf.h"

struct s3;

struct s3_settings {
    char *endpoint;
    char *region;
    char *bucket;
    char *prefix;
    int path_style;
    char *access_key_id;
    char *secret_access_key_file;
    char *profile;
    char *ca_file;
    int verify_tls;
};

/* The key rows of struct s3_settings F inside settings struct T; BUCKET
 * and PREFIX are the descriptions of bucket and prefix. */
#define S3_CONF_KEYS(T, F, BUCKET, PREFIX)                                     \
    CONF_KEY_STR(T, F.endpoint, "endpoint", "", 0,                             \
                 "S3 URL, https://host[:port] (\"\": AWS's endpoint of "       \
                 "region)"),                                                   \
        CONF_KEY_STR(T, F.region, "region", "us-east-1", 0,                    \
                     "region the requests are signed for"),                    \
        CONF_KEY_STR(T, F.bucket, "bucket", NULL, CONF_REQUIRED, BUCKET),      \
        CONF_KEY_STR(T, F.prefix, "prefix", "", 0, PREFIX),                    \
        CONF_KEY_BOOL(T, F.path_style, "path_style", 0,                        \
                      "address the bucket as host/bucket, not bucket.host"),   \
        CONF_KEY_STR(T, F.access_key_id, "access_key_id", "", 0,               \
                     "access key id (\"\": AWS_ACCESS_KEY_ID or the "          \
                     "profile's)"),                                            \
        CONF_KEY_STR(T, F.secret_access_key_file, "secret_access_key_file",    \
                     "", 0,                                                    \
                     "file holding the secret access key of access_key_id"),   \
        CONF_KEY_STR(T, F.profile, "profile", "default", 0,                    \
                     "profile of ~/.aws/credentials, when no key is set "      \
                     "otherwise"),                                             \
        CONF_KEY_STR(T, F.ca_file, "ca_file", "", 0,                           \
                     "CA certificates for TLS (\"\": the system's)"),          \
        CONF_KEY_BOOL(T, F.verify_tls, "verify_tls", 1,                        \
                      "verify the server's TLS certificate")

/*
 * The check of s once read (scope sc), for the table's check hook: what
 * s3_check() refuses in endpoint, bucket and path_style, and
 * access_key_id and secret_access_key_file set one without the other,
 * name the file, the line and the key.  A secret file that is missing is
 * no error here: it may be provisioned after the agent starts, and is
 * read at each connect.  0, or -EINVAL with err written by conf_fail().
 */
int s3_settings_check(const struct s3_settings *s, const struct conf_scope *sc,
                      char *err, size_t errlen);

/*
 * A client (s3.h) for the bucket s describes, with the keys it names
 * (s3_creds_load()) read now, waiting at most timeout seconds without
 * progress and cancelled by cancel_fd (or -1); *out is freed with
 * s3_free().  It has not been to the server yet.  Returns 0; -EPERM when
 * the keys are missing or unreadable; -EINVAL for an endpoint it cannot
 * use; -ENOMEM.  On error err (errlen bytes) says why, naming the bucket
 * and never the secret.
 */
int s3_settings_connect(const struct s3_settings *s, int cancel_fd, int timeout,
                        struct s3 **out, char *err, size_t errlen);

#endif
