/*
 * The transform table and chains of transforms.
 *
 * A chain is an array of instances, one per configured step, run in
 * order on each call: the output of step i is the input of step i + 1.
 * A failing step's words are kept, with its name, for
 * transform_chain_error().
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sftprelay/transform.h"

extern const struct transform_ops transform_identity, transform_gzip,
    transform_zstd, transform_exec;

/* Every transform the agent knows, by name. */
static const struct transform_ops *const transforms[] = {
    &transform_identity,
    &transform_gzip,
    &transform_zstd,
    &transform_exec,
};

#define N_TRANSFORMS (sizeof(transforms) / sizeof(transforms[0]))

struct transform_chain {
    struct transform **steps;
    const struct transform_spec *specs; /* borrowed, n of them */
    size_t n;
    char err[2560]; /* the last failure's words, "" if none */
};

const struct transform_ops *transform_find(const char *name)
{
    size_t i;

    for (i = 0; i < N_TRANSFORMS; i++)
        if (strcmp(transforms[i]->name, name) == 0)
            return transforms[i];
    return NULL;
}

const struct transform_ops *transform_at(size_t i)
{
    return i < N_TRANSFORMS ? transforms[i] : NULL;
}

void *transform_reserve(void *buf, size_t *cap, size_t need)
{
    void *p;

    if (need <= *cap)
        return buf;
    p = realloc(buf, need);
    if (p)
        *cap = need;
    return p;
}

const char *transform_names(void)
{
    static char buf[128];
    size_t i, n = 0;

    if (buf[0])
        return buf;
    for (i = 0; i < N_TRANSFORMS && n < sizeof(buf); i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s", i ? ", " : "",
                              transforms[i]->name);
    return buf;
}

int transform_chain_new(const struct transform_spec *specs, size_t n,
                        struct transform_chain **out)
{
    struct transform_chain *c;
    size_t i;
    int r = -ENOMEM;

    *out = NULL;
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    c->steps = calloc(n ? n : 1, sizeof(*c->steps));
    if (c->steps == NULL)
        goto out;
    c->specs = specs;
    for (i = 0; i < n; i++) {
        r = specs[i].ops->create(specs[i].settings, &c->steps[c->n]);
        if (r < 0)
            goto out;
        c->n++;
    }
    *out = c;
    c = NULL; /* transferred */
    r = 0;
out:
    transform_chain_free(c);
    return r;
}

void transform_chain_set_cancel(struct transform_chain *c, int fd)
{
    size_t i;

    for (i = 0; i < c->n; i++)
        c->steps[i]->cancel_fd = fd;
}

void transform_chain_free(struct transform_chain *c)
{
    size_t i;

    if (c == NULL)
        return;
    for (i = 0; c->steps && i < c->n; i++)
        c->steps[i]->ops->destroy(c->steps[i]);
    free(c->steps);
    free(c);
}

enum transform_resume transform_chain_resume(const struct transform_chain *c)
{
    enum transform_resume weakest = TRANSFORM_SAME;
    size_t i;

    for (i = 0; i < c->n; i++)
        if (c->steps[i]->ops->resume < weakest)
            weakest = c->steps[i]->ops->resume;
    return weakest;
}

int transform_chain_resumable(const struct transform_chain *c)
{
    return transform_chain_resume(c) == TRANSFORM_SAME;
}

/* Step i's suffix: its own, or its type's. */
static const char *suffix_of(const struct transform_chain *c, size_t i)
{
    const char *s = c->specs[i].suffix ? c->specs[i].suffix
                                       : c->specs[i].ops->suffix;

    return s ? s : "";
}

int transform_chain_id(const struct transform_chain *c, char *out,
                       size_t outlen)
{
    size_t i, n = 0;
    int k;

    out[0] = '\0';
    for (i = 0; i < c->n; i++) {
        if (c->specs[i].ops->resume == TRANSFORM_SAME && !suffix_of(c, i)[0])
            continue; /* changes nothing */
        k = snprintf(out + n, outlen - n, "%s%s%s%s", n ? "," : "",
                     c->specs[i].ops->name, suffix_of(c, i)[0] ? ":" : "",
                     suffix_of(c, i));
        if (k < 0 || (size_t)k >= outlen - n)
            return -ENAMETOOLONG;
        n += (size_t)k;
    }
    return 0;
}

int transform_chain_name(const struct transform_chain *c, const char *rel,
                         char *out, size_t outlen)
{
    size_t i, n = strlen(rel), add;
    const char *suffix;

    if (n >= outlen)
        return -ENAMETOOLONG;
    memmove(out, rel, n + 1);
    for (i = 0; i < c->n; i++) {
        suffix = suffix_of(c, i);
        add = strlen(suffix);
        if (n + add >= outlen)
            return -ENAMETOOLONG;
        memcpy(out + n, suffix, add);
        n += add;
        out[n] = '\0';
    }
    return 0;
}

/* Step t failed with r: its words, with its name, for the caller. */
static int fail(struct transform_chain *c, const struct transform *t, int r)
{
    const char *words = t->ops->error ? t->ops->error(t) : "";

    snprintf(c->err, sizeof(c->err), "%s: %s", t->ops->name,
             words[0] ? words : strerror(-r));
    return r;
}

int transform_chain_begin(struct transform_chain *c)
{
    size_t i;
    int r;

    c->err[0] = '\0';
    for (i = 0; i < c->n; i++) {
        r = c->steps[i]->ops->begin(c->steps[i]);
        if (r < 0)
            return fail(c, c->steps[i], r);
    }
    return 0;
}

int transform_chain_process(struct transform_chain *c, const void *in,
                            size_t len, int last, const void **out,
                            size_t *outlen)
{
    size_t i;
    int r;

    *out = in;
    *outlen = len;
    for (i = 0; i < c->n; i++) {
        r = c->steps[i]->ops->process(c->steps[i], *out, *outlen, last, out,
                                      outlen);
        if (r < 0)
            return fail(c, c->steps[i], r);
    }
    return 0;
}

const char *transform_chain_error(const struct transform_chain *c)
{
    return c->err;
}
