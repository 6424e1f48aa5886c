/*
 * The transform table and chains of transforms.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sftprelay/transform.h"

/* Every transform the agent knows, by name. */
static const struct transform_ops *const transforms[] = {
    &transform_identity,
};

#define N_TRANSFORMS (sizeof(transforms) / sizeof(transforms[0]))

struct transform_chain {
    struct transform **steps;
    size_t n;
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

int transform_chain_new(char *const *names, const void *const *settings,
                        size_t n, struct transform_chain **out,
                        const char **bad)
{
    struct transform_chain *c;
    size_t i;
    int r;

    *out = NULL;
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    c->steps = calloc(n ? n : 1, sizeof(*c->steps));
    if (c->steps == NULL) {
        free(c);
        return -ENOMEM;
    }
    for (i = 0; i < n; i++) {
        const struct transform_ops *ops = transform_find(names[i]);

        if (ops == NULL) {
            if (bad)
                *bad = names[i];
            transform_chain_free(c);
            return -ENOENT;
        }
        r = ops->create(settings ? settings[i] : NULL, &c->steps[c->n]);
        if (r < 0) {
            transform_chain_free(c);
            return r;
        }
        c->n++;
    }
    *out = c;
    return 0;
}

void transform_chain_free(struct transform_chain *c)
{
    size_t i;

    if (c == NULL)
        return;
    for (i = 0; i < c->n; i++)
        c->steps[i]->ops->destroy(c->steps[i]);
    free(c->steps);
    free(c);
}

int transform_chain_resumable(const struct transform_chain *c)
{
    size_t i;

    for (i = 0; i < c->n; i++)
        if (!c->steps[i]->ops->preserves_offsets)
            return 0;
    return 1;
}

int transform_chain_begin(struct transform_chain *c)
{
    size_t i;
    int r;

    for (i = 0; i < c->n; i++) {
        r = c->steps[i]->ops->begin(c->steps[i]);
        if (r < 0)
            return r;
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
            return r;
    }
    return 0;
}
