/*
 * The sink table and what every sink shares.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "sftprelay/sink.h"

extern const struct sink_ops sink_sftp, sink_local, sink_s3;

/* Every sink the agent knows, by target.type; the first is the default. */
static const struct sink_ops *const sinks[] = {
    &sink_sftp,
    &sink_local,
    &sink_s3,
};

#define N_SINKS (sizeof(sinks) / sizeof(sinks[0]))

const struct sink_ops *sink_find(const char *name)
{
    size_t i;

    for (i = 0; i < N_SINKS; i++)
        if (strcmp(sinks[i]->name, name) == 0)
            return sinks[i];
    return NULL;
}

const struct sink_ops *sink_at(size_t i)
{
    return i < N_SINKS ? sinks[i] : NULL;
}

const char *sink_default(void)
{
    return sinks[0]->name;
}

const char *sink_names(void)
{
    static char buf[128];
    size_t i, n = 0;

    if (buf[0])
        return buf;
    for (i = 0; i < N_SINKS && n < sizeof(buf); i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s", i ? ", " : "",
                              sinks[i]->name);
    return buf;
}

int sink_error_is_target(int r)
{
    switch (-r) {
    case ECONNREFUSED:
    case ECONNRESET:
    case ECONNABORTED:
    case ETIMEDOUT:
    case EHOSTUNREACH:
    case EHOSTDOWN:
    case ENETUNREACH:
    case ENETDOWN:
    case ENOTCONN:
    case EPIPE:
    case EPERM:        /* login refused */
    case EKEYREJECTED: /* host key unknown or changed */
    case EPROTO:       /* handshake or protocol failure */
    case EADDRNOTAVAIL:
        return 1;
    default:
        return 0;
    }
}

int sink_fail(struct sink *s, int r, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(s->err, sizeof(s->err), fmt, ap);
    va_end(ap);
    return r;
}
