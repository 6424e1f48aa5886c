/*
 * Path mapping: validation of relative paths, joining, temporary names.
 */
#include "config.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sftprelay/path.h"

#define TMP_PREFIX "."
#define TMP_SUFFIX ".sftprelay-tmp"
#define TMP_HASHED_PREFIX ".sftprelay-"
#define TMP_HASHED_SUFFIX ".tmp"

int path_rel_check(const char *rel)
{
    const char *p = rel, *slash;
    size_t len;

    if (rel == NULL || *rel == '\0' || *rel == '/')
        return -EINVAL;
    for (;;) {
        slash = strchr(p, '/');
        len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 0 || len > PATH_NAME_MAX)
            return -EINVAL;
        if ((len == 1 && p[0] == '.') ||
            (len == 2 && p[0] == '.' && p[1] == '.'))
            return -EINVAL;
        if (slash == NULL)
            return 0;
        p = slash + 1;
    }
}

int path_join(const char *dir, const char *rel, char **out)
{
    size_t dl = strlen(dir);
    int n;

    *out = NULL;
    if (strcmp(dir, ".") == 0) {
        *out = strdup(rel);
        return *out ? 0 : -ENOMEM;
    }
    while (dl > 1 && dir[dl - 1] == '/')
        dl--;
    if (dl == 1 && dir[0] == '/')
        n = asprintf(out, "/%s", rel);
    else
        n = asprintf(out, "%.*s/%s", (int)dl, dir, rel);
    if (n < 0) {
        *out = NULL;
        return -ENOMEM;
    }
    return 0;
}

const char *path_base(const char *p)
{
    const char *s = strrchr(p, '/');

    return s ? s + 1 : p;
}

size_t path_dir_len(const char *p)
{
    const char *s = strrchr(p, '/');

    return s ? (size_t)(s - p) : 0;
}

/* 64-bit FNV-1a: stable across runs and machines, enough to tell names apart.
 */
static uint64_t fnv1a(const char *s)
{
    uint64_t h = 14695981039346656037ULL;

    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

int path_tmp_name(const char *rel, char **out)
{
    const char *base;
    size_t dl;
    int n;

    *out = NULL;
    if (path_rel_check(rel) < 0)
        return -EINVAL;
    base = path_base(rel);
    dl = path_dir_len(rel);
    if (strlen(TMP_PREFIX) + strlen(base) + strlen(TMP_SUFFIX) <= PATH_NAME_MAX)
        n = asprintf(out, "%.*s%s" TMP_PREFIX "%s" TMP_SUFFIX, (int)dl, rel,
                     dl ? "/" : "", base);
    else
        n = asprintf(
            out, "%.*s%s" TMP_HASHED_PREFIX "%016llx" TMP_HASHED_SUFFIX,
            (int)dl, rel, dl ? "/" : "", (unsigned long long)fnv1a(rel));
    if (n < 0) {
        *out = NULL;
        return -ENOMEM;
    }
    return 0;
}

int path_numbered(const char *rel, unsigned n, char *out, size_t len)
{
    const char *base = path_base(rel);
    const char *dot = strrchr(base, '.');
    int w;

    /* No extension: the whole name; ".profile" has none either. */
    if (dot == NULL || dot == base)
        dot = base + strlen(base);
    w = snprintf(out, len, "%.*s.%u%s", (int)(dot - rel), rel, n, dot);
    if (w < 0 || (size_t)w >= len || strlen(path_base(out)) > PATH_NAME_MAX)
        return -ENAMETOOLONG;
    return 0;
}

int path_is_tmp_name(const char *base)
{
    size_t bl = strlen(base), sl = strlen(TMP_SUFFIX);
    size_t hp = strlen(TMP_HASHED_PREFIX), hs = strlen(TMP_HASHED_SUFFIX);

    if (bl > sl + 1 && base[0] == '.' &&
        strcmp(base + bl - sl, TMP_SUFFIX) == 0)
        return 1;
    return bl == hp + 16 + hs && strncmp(base, TMP_HASHED_PREFIX, hp) == 0 &&
           strcmp(base + bl - hs, TMP_HASHED_SUFFIX) == 0;
}

int path_excluded(const char *base, char *const *globs, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (fnmatch(globs[i], base, FNM_PERIOD) == 0)
            return 1;
    return 0;
}

int path_is_under(const char *rel, const char *dir)
{
    size_t n = strlen(dir);

    if (n == 0)
        return 1;
    return strncmp(rel, dir, n) == 0 && (rel[n] == '\0' || rel[n] == '/');
}
