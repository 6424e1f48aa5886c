/*
 * The zstd transform (libzstd): each call's bytes become one complete
 * zstd frame, with its content size and a checksum.  Frames concatenated
 * are one valid zstd stream, so a file interrupted after any call resumes
 * with a fresh instance at the next source byte (TRANSFORM_CHUNKED), and
 * zstd -d of the whole gives the source back.
 *
 * Memory: the compression context (a few MiB at level 3, more with
 * threads) and one output buffer of ZSTD_compressBound() of the largest
 * call, reused.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <zstd.h>

#include "sftprelay/conf.h"
#include "sftprelay/transform.h"

extern const struct transform_ops transform_zstd;

struct zstd_settings {
    int level;
    int threads;
};

/* A context with s's parameters; NULL with *err set if one is refused. */
static ZSTD_CCtx *new_cctx(const struct zstd_settings *s, const char **err)
{
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    size_t r;

    *err = "out of memory";
    if (cc == NULL)
        return NULL;
    r = ZSTD_CCtx_setParameter(cc, ZSTD_c_compressionLevel, s->level);
    if (!ZSTD_isError(r))
        r = ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, 1);
    if (!ZSTD_isError(r))
        r = ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, 1);
    if (!ZSTD_isError(r) && s->threads > 0)
        r = ZSTD_CCtx_setParameter(cc, ZSTD_c_nbWorkers, s->threads);
    if (ZSTD_isError(r)) {
        *err = ZSTD_getErrorName(r);
        ZSTD_freeCCtx(cc);
        return NULL;
    }
    return cc;
}

/* threads needs a libzstd built with them: found at start-up. */
static int check_zstd(void *settings, const struct conf_scope *s, char *err,
                      size_t errlen)
{
    const char *why;
    ZSTD_CCtx *cc = new_cctx(settings, &why);

    if (cc == NULL)
        return conf_fail(s, conf_scope_line(s, "threads"), "threads", err,
                         errlen, "libzstd %s refuses it: %s",
                         ZSTD_versionString(), why);
    ZSTD_freeCCtx(cc);
    return 0;
}

static const struct conf_key zstd_keys[] = {
    CONF_KEY_INT(struct zstd_settings, level, "level", 3, -7, 19,
                 "zstd: compression level, -7 fastest to 19 smallest"),
    CONF_KEY_INT(struct zstd_settings, threads, "threads", 0, 0, 64,
                 "zstd: worker threads per file (0: compress in the "
                 "worker's own)"),
};

static const struct conf_table zstd_conf = {
    .section = "transforms",
    .title = "transform zstd",
    .keys = zstd_keys,
    .n_keys = CONF_N_KEYS(zstd_keys),
    .size = sizeof(struct zstd_settings),
    .check = check_zstd,
};

struct zstd {
    struct transform t;
    ZSTD_CCtx *cc;
    void *out;
    size_t cap;
    int any;       /* a frame was made for this file */
    char err[128]; /* the last failure's words */
};

static int zstd_create(const void *settings, struct transform **out)
{
    static const struct zstd_settings defaults = {.level = 3};
    struct zstd *z = calloc(1, sizeof(*z));
    const char *why;

    *out = NULL;
    if (z == NULL)
        return -ENOMEM;
    transform_init(&z->t, &transform_zstd);
    z->cc = new_cctx(settings ? settings : &defaults, &why);
    if (z->cc == NULL) {
        free(z);
        return -EINVAL;
    }
    *out = &z->t;
    return 0;
}

static void zstd_destroy(struct transform *t)
{
    struct zstd *z = (struct zstd *)t;

    if (z == NULL)
        return;
    ZSTD_freeCCtx(z->cc);
    free(z->out);
    free(z);
}

static int zstd_begin(struct transform *t)
{
    struct zstd *z = (struct zstd *)t;

    z->any = 0;
    z->err[0] = '\0';
    return 0;
}

static int zstd_process(struct transform *t, const void *in, size_t len,
                        int last, const void **out, size_t *outlen)
{
    struct zstd *z = (struct zstd *)t;
    size_t need = ZSTD_compressBound(len), r;
    void *p;

    *out = NULL;
    *outlen = 0;
    /* Nothing to say, except that an empty file is an empty frame. */
    if (len == 0 && (!last || z->any))
        return 0;
    p = transform_reserve(z->out, &z->cap, need);
    if (p == NULL)
        return -ENOMEM;
    z->out = p;
    r = ZSTD_compress2(z->cc, z->out, z->cap, in, len);
    if (ZSTD_isError(r)) {
        snprintf(z->err, sizeof(z->err), "%s", ZSTD_getErrorName(r));
        return -EIO;
    }
    z->any = 1;
    *out = z->out;
    *outlen = r;
    return 0;
}

static const char *zstd_error(const struct transform *t)
{
    return ((const struct zstd *)t)->err;
}

const struct transform_ops transform_zstd = {
    .name = "zstd",
    .resume = TRANSFORM_CHUNKED,
    .suffix = ".zst",
    .conf = &zstd_conf,
    .create = zstd_create,
    .destroy = zstd_destroy,
    .begin = zstd_begin,
    .process = zstd_process,
    .error = zstd_error,
};
