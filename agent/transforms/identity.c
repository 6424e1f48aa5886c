/*
 * The identity transform: bytes pass as they are.  The smallest example
 * of a transform, and the default chain's only behaviour.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>

#include "sftprelay/conf.h"
#include "sftprelay/transform.h"

extern const struct transform_ops transform_identity;

/* It has no keys: the table is there so that -K lists it. */
static const struct conf_table identity_conf = {
    .section = "transforms",
    .title = "transform identity",
    .keys = NULL,
    .n_keys = 0,
};

static int identity_create(const void *settings, struct transform **out)
{
    struct transform *t = calloc(1, sizeof(*t));

    if (t == NULL)
        return -ENOMEM;
    transform_init(t, &transform_identity);
    *out = t;
    return 0;
}

static void identity_destroy(struct transform *t)
{
    free(t);
}

static int identity_begin(struct transform *t)
{
    return 0;
}

static int identity_process(struct transform *t, const void *in, size_t len,
                            int last, const void **out, size_t *outlen)
{
    *out = in;
    *outlen = len;
    return 0;
}

const struct transform_ops transform_identity = {
    .name = "identity",
    .resume = TRANSFORM_SAME,
    .suffix = "",
    .conf = &identity_conf,
    .create = identity_create,
    .destroy = identity_destroy,
    .begin = identity_begin,
    .process = identity_process,
};
