/*
 * The shared S3 connection keys (s3conf.h): the client they describe.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "sftprelay/s3.h"
#include "sftprelay/s3conf.h"

int s3_settings_connect(const struct s3_settings *s, int cancel_fd, int timeout,
                        struct s3 **out, char *err, size_t errlen)
{
    struct s3_creds k;
    struct s3_config sc = {
        .endpoint = s->endpoint,
        .region = s->region,
        .bucket = s->bucket,
        .path_style = s->path_style,
        .ca_file = s->ca_file,
        .verify_tls = s->verify_tls,
        .timeout = timeout,
        .cancel_fd = cancel_fd,
    };
    char why[S3_ERR_MAX];
    int r;

    *out = NULL;
    r = s3_creds_load(s->access_key_id, s->secret_access_key_file, s->profile,
                      &k, why, sizeof(why));
    if (r < 0) {
        snprintf(err, errlen, "s3://%s: %s", s->bucket, why);
        return -EPERM;
    }
    sc.access_key_id = k.access_key_id;
    sc.secret_access_key = k.secret_access_key;
    r = s3_new(&sc, out, why, sizeof(why));
    explicit_bzero(&k, sizeof(k));
    if (r < 0)
        snprintf(err, errlen, "s3: %s", why);
    return r;
}
