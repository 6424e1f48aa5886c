/*
 * The source table: every source the agent knows, by source.type.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "sftprelay/source.h"

/* The first is the default. */
static const struct source_ops *const sources[] = {
    &source_local,
    &source_sftp,
    &source_s3,
};

#define N_SOURCES (sizeof(sources) / sizeof(sources[0]))

const struct source_ops *source_find(const char *name)
{
    size_t i;

    for (i = 0; i < N_SOURCES; i++)
        if (strcmp(sources[i]->name, name) == 0)
            return sources[i];
    return NULL;
}

const struct source_ops *source_at(size_t i)
{
    return i < N_SOURCES ? sources[i] : NULL;
}

const char *source_default(void)
{
    return sources[0]->name;
}

const char *source_names(void)
{
    static char buf[128];
    size_t i, n = 0;

    if (buf[0])
        return buf;
    for (i = 0; i < N_SOURCES && n < sizeof(buf); i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s", i ? ", " : "",
                              sources[i]->name);
    return buf;
}

const char *source_error(const struct source *s, int r)
{
    return s->err[0] ? s->err : strerror(-r);
}
