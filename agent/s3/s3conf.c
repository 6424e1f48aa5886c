/*
 * The shared S3 connection keys (s3conf.h): their check and the client
 * they describe.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "sftprelay/s3.h"
#include "sftprelay/s3conf.h"

int s3_settings_check(const struct s3_settings *s, const struct conf_scope *sc,
                      char *err, size_t errlen)
{
    struct s3_config cf = {
        .endpoint = s->endpoint,
        .region = s->region,
        .bucket = s->bucket,
        .path_style = s->path_style,
    };
    const char *field = NULL;
    char why[S3_ERR_MAX];
    int line, r;

    r = s3_check(&cf, &field, why, sizeof(why));
    if (r == -EINVAL) {
        line = conf_scope_line(sc, field);
        return conf_fail(sc, line ? line : sc->line, field, err, errlen, "%s",
                         why);
    }
    if (r < 0)
        return r;
    if (s->secret_access_key_file[0] && !s->access_key_id[0])
        return conf_fail(sc, conf_scope_line(sc, "secret_access_key_file"),
                         "secret_access_key_file", err, errlen,
                         "set without %s.access_key_id, whose secret it is",
                         sc->name);
    if (s->access_key_id[0] && !s->secret_access_key_file[0])
        return conf_fail(sc, conf_scope_line(sc, "access_key_id"),
                         "access_key_id", err, errlen,
                         "set without %s.secret_access_key_file, which holds "
                         "its secret", sc->name);
    return 0;
}

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
