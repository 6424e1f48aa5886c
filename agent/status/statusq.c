/*
 * Requests to the status endpoint, read from their raw text (statusq.h).
 * The keys of GET /v1/files are a table: each names its setter.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sftprelay/statusq.h"
#include "sftprelay/text.h"

/* Longest part of a bad value an error message repeats. */
#define SHOWN_MAX 40

/* One key=value of a query, decoded (both malloc'd). */
struct param {
    char *key, *value;
    int has_value; /* an "=" was there */
};

static void param_clear(struct param *p)
{
    free(p->key);
    free(p->value);
    memset(p, 0, sizeof(*p));
}

/* s[0..n) decoded into *out (malloc'd), or NULL on failure. */
static int decoded(const char *s, size_t n, char **out)
{
    size_t len;
    int r;

    *out = malloc(n + 1);
    if (*out == NULL)
        return -ENOMEM;
    r = text_unpercent(s, n, 1, *out, &len);
    if (r < 0) {
        free(*out);
        *out = NULL;
    }
    return r;
}

/*
 * The next parameter at *pos (advanced past it and its "&") into *p;
 * empty ones ("a=1&&b=2", a trailing "&") are skipped.  Returns 1 with
 * one, 0 at the end, -ENOMEM, or -EINVAL with err.
 */
static int next_param(const char **pos, struct param *p, char *err,
                      size_t errlen)
{
    const char *s = *pos, *amp, *eq;
    size_t n;
    int r;

    memset(p, 0, sizeof(*p));
    while (*s == '&')
        s++;
    if (*s == '\0')
        return 0;
    amp = strchr(s, '&');
    n = amp ? (size_t)(amp - s) : strlen(s);
    *pos = s + n;
    eq = memchr(s, '=', n);
    r = decoded(s, eq ? (size_t)(eq - s) : n, &p->key);
    if (r == 0 && eq) {
        p->has_value = 1;
        r = decoded(eq + 1, n - (size_t)(eq - s) - 1, &p->value);
    }
    if (r == -EINVAL)
        snprintf(err, errlen,
                 "%.*s: a bad percent-escape or a NUL byte "
                 "(%%00)",
                 SHOWN_MAX, p->key && p->key[0] ? p->key : "query");
    if (r < 0) {
        param_clear(p);
        return r;
    }
    return 1;
}

/* --- GET /v1/files -------------------------------------------------------- */

/* p's value, decoded, into *to. */
static int take_value(char **to, struct param *p)
{
    *to = p->value;
    p->value = NULL; /* transferred */
    return 0;
}

static int set_path(struct statusq_files *q, struct param *p, char *err,
                    size_t errlen)
{
    if (p->value[0] == '\0') {
        snprintf(err, errlen, "path: empty");
        return -EINVAL;
    }
    return take_value(&q->path, p);
}

/* An empty prefix is every path. */
static int set_prefix(struct statusq_files *q, struct param *p, char *err,
                      size_t errlen)
{
    return take_value(&q->prefix, p);
}

/* The paths that sort above a page's last one; an empty one is every path. */
static int set_after(struct statusq_files *q, struct param *p, char *err,
                     size_t errlen)
{
    return take_value(&q->after, p);
}

static int set_state(struct statusq_files *q, struct param *p, char *err,
                     size_t errlen)
{
    if (journal_state_parse(p->value, &q->state) == 0)
        return 0;
    snprintf(err, errlen,
             "state: \"%.*s\" is not queued, sending, delivered or failed",
             SHOWN_MAX, p->value);
    return -EINVAL;
}

static int set_limit(struct statusq_files *q, struct param *p, char *err,
                     size_t errlen)
{
    const char *v = p->value;
    int64_t n = 0;
    size_t i;

    for (i = 0; v[i] >= '0' && v[i] <= '9' && n <= STATUSQ_LIMIT_MAX; i++)
        n = n * 10 + (v[i] - '0');
    if (i > 0 && v[i] == '\0' && n >= 1 && n <= STATUSQ_LIMIT_MAX) {
        q->limit = n;
        return 0;
    }
    snprintf(err, errlen,
             "limit: expected a whole number from 1 to %d (the maximum), "
             "not \"%.*s\"",
             STATUSQ_LIMIT_MAX, SHOWN_MAX, v);
    return -EINVAL;
}

static const struct files_key {
    const char *name;
    int (*set)(struct statusq_files *q, struct param *p, char *err,
               size_t errlen);
} files_keys[] = {
    {"path", set_path},   {"prefix", set_prefix}, {"state", set_state},
    {"limit", set_limit}, {"after", set_after},
};
#define N_FILES_KEYS (sizeof(files_keys) / sizeof(files_keys[0]))

static int unknown_key(const char *key, const char *known, char *err,
                       size_t errlen)
{
    snprintf(err, errlen, "unknown query key \"%.*s\" (%s)", SHOWN_MAX, key,
             known);
    return -EINVAL;
}

/* One parameter p of GET /v1/files into q; seen: a bit per key. */
static int files_param(struct statusq_files *q, struct param *p, unsigned *seen,
                       char *err, size_t errlen)
{
    size_t i;

    for (i = 0; i < N_FILES_KEYS; i++)
        if (strcmp(p->key, files_keys[i].name) == 0)
            break;
    if (i == N_FILES_KEYS)
        return unknown_key(p->key, "known: path, prefix, state, limit, after",
                           err, errlen);
    if (*seen & (1u << i)) {
        snprintf(err, errlen, "%s: given twice", p->key);
        return -EINVAL;
    }
    *seen |= 1u << i;
    if (!p->has_value) {
        snprintf(err, errlen, "%s: expected %s=VALUE", p->key, p->key);
        return -EINVAL;
    }
    return files_keys[i].set(q, p, err, errlen);
}

int statusq_files(const char *query, struct statusq_files *q, char *err,
                  size_t errlen)
{
    const char *pos = query ? query : "";
    struct param p;
    unsigned seen = 0;
    int r;

    memset(q, 0, sizeof(*q));
    q->state = JS_COUNT;
    q->limit = STATUSQ_LIMIT_DEFAULT;
    while ((r = next_param(&pos, &p, err, errlen)) > 0) {
        r = files_param(q, &p, &seen, err, errlen);
        param_clear(&p);
        if (r < 0)
            break;
    }
    if (r == 0 && q->path && q->prefix) {
        snprintf(err, errlen, "path and prefix: give one of them");
        r = -EINVAL;
    } else if (r == 0 && q->path && q->after) {
        snprintf(err, errlen,
                 "path and after: after pages a list, not one path");
        r = -EINVAL;
    }
    return r;
}

void statusq_files_clear(struct statusq_files *q)
{
    free(q->path);
    free(q->prefix);
    free(q->after);
    memset(q, 0, sizeof(*q));
}

int statusq_none(const char *query, char *err, size_t errlen)
{
    const char *pos = query ? query : "";
    struct param p;
    int r = next_param(&pos, &p, err, errlen);

    if (r > 0) {
        r = unknown_key(p.key, "this endpoint takes none", err, errlen);
        param_clear(&p);
    }
    return r;
}

const char *statusq_bearer(const char *header)
{
    if (header == NULL || strncasecmp(header, "Bearer", 6) != 0 ||
        (header[6] != ' ' && header[6] != '\t'))
        return NULL;
    header += 6;
    while (*header == ' ' || *header == '\t')
        header++;
    return *header ? header : NULL;
}
