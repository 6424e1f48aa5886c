/*
 * The gzip transform (zlib): each call's bytes become one complete gzip
 * member (header, deflate to the end, trailer).  Members concatenated are
 * one valid gzip stream (RFC 1952, 2.2), so a file interrupted after any
 * call resumes with a fresh instance at the next source byte
 * (TRANSFORM_CHUNKED), and gunzip of the whole gives the source back.
 *
 * Memory: zlib's state (about 256 KiB at memLevel 8) and one output
 * buffer of deflateBound() of the largest call, reused.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <zlib.h>

#include "sftprelay/conf.h"
#include "sftprelay/transform.h"

extern const struct transform_ops transform_gzip;

struct gzip_settings {
    int level;
};

static const struct conf_key gzip_keys[] = {
    CONF_KEY_INT(struct gzip_settings, level, "level", 6, 1, 9,
                 "gzip: compression level, 1 fastest to 9 smallest"),
};

static const struct conf_table gzip_conf = {
    .section = "transforms",
    .title = "transform gzip",
    .keys = gzip_keys,
    .n_keys = CONF_N_KEYS(gzip_keys),
    .size = sizeof(struct gzip_settings),
};

struct gzip {
    struct transform t;
    z_stream z;
    unsigned char *out;
    size_t cap;
    int any;       /* a member was made for this file */
    char err[128]; /* the last failure's words */
};

/* The largest call deflate() takes at once: avail_in is an unsigned. */
#define GZIP_MAX_CALL ((size_t)1 << 30)

static int gzip_create(const void *settings, struct transform **out)
{
    const struct gzip_settings *s = settings;
    struct gzip *g = calloc(1, sizeof(*g));

    *out = NULL;
    if (g == NULL)
        return -ENOMEM;
    transform_init(&g->t, &transform_gzip);
    /* 15 + 16: a 32 KiB window with a gzip header and trailer. */
    if (deflateInit2(&g->z, s ? s->level : 6, Z_DEFLATED, 15 + 16, 8,
                     Z_DEFAULT_STRATEGY) != Z_OK) {
        free(g);
        return -ENOMEM;
    }
    *out = &g->t;
    return 0;
}

static void gzip_destroy(struct transform *t)
{
    struct gzip *g = (struct gzip *)t;

    if (g == NULL)
        return;
    deflateEnd(&g->z);
    free(g->out);
    free(g);
}

static int gzip_begin(struct transform *t)
{
    struct gzip *g = (struct gzip *)t;

    g->any = 0;
    g->err[0] = '\0';
    return 0;
}

static int gzip_process(struct transform *t, const void *in, size_t len,
                        int last, const void **out, size_t *outlen)
{
    struct gzip *g = (struct gzip *)t;
    unsigned char *p;
    size_t need;
    int r;

    *out = NULL;
    *outlen = 0;
    /* Nothing to say, except that an empty file is an empty member. */
    if (len == 0 && (!last || g->any))
        return 0;
    if (len > GZIP_MAX_CALL) {
        snprintf(g->err, sizeof(g->err), "%zu bytes at once: at most %zu", len,
                 GZIP_MAX_CALL);
        return -EFBIG;
    }
    if (deflateReset(&g->z) != Z_OK)
        return -EINVAL;
    need = deflateBound(&g->z, (uLong)len);
    p = transform_reserve(g->out, &g->cap, need);
    if (p == NULL)
        return -ENOMEM;
    g->out = p;
    g->z.next_in = (Bytef *)in; /* zlib does not write it */
    g->z.avail_in = (uInt)len;
    g->z.next_out = g->out;
    g->z.avail_out = (uInt)g->cap;
    r = deflate(&g->z, Z_FINISH);
    if (r != Z_STREAM_END) {
        snprintf(g->err, sizeof(g->err), "deflate: %s",
                 g->z.msg ? g->z.msg : zError(r));
        return -EIO;
    }
    g->any = 1;
    *out = g->out;
    *outlen = g->cap - g->z.avail_out;
    return 0;
}

static const char *gzip_error(const struct transform *t)
{
    return ((const struct gzip *)t)->err;
}

const struct transform_ops transform_gzip = {
    .name = "gzip",
    .resume = TRANSFORM_CHUNKED,
    .suffix = ".gz",
    .conf = &gzip_conf,
    .create = gzip_create,
    .destroy = gzip_destroy,
    .begin = gzip_begin,
    .process = gzip_process,
    .error = gzip_error,
};
