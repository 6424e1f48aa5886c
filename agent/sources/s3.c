/*
 * The S3 source (source.type = "s3"): the objects of a bucket under a
 * prefix, through the S3 client of agent/s3/, reached with the same keys
 * as the S3 sink (s3conf.h).
 *
 * source.prefix is a folder in the bucket ("in" and "in/" are the same;
 * "" the whole bucket): an object is named by its key relative to it
 * ("in/a/b/c/file_1.txt" is a/b/c/file_1.txt).  source.path is not used.
 * list() is ListObjectsV2 of every page; keys ending in "/" (the folder
 * markers consoles make) are skipped; a key whose relative name could
 * leave the target tree ("../x", "a//b", a name over 255 bytes) is
 * refused, logged once with the bucket and the key.
 *
 * An object's identity is its key, ETag and size.  The journal keys a
 * file's versions by (size, mtime_ns), and S3's LastModified has whole
 * seconds, so an object's mtime_ns is LastModified * 10^9 plus a hash of
 * its ETag modulo 10^9 (FNV-1a): a rewritten object is a new version even
 * within the same second and at the same size.  The nanoseconds are not
 * a time; a target that keeps the mtime gets them too.
 *
 * Reading: open() is a HEAD (size, ETag; mode 0644); read() is a ranged
 * GET with If-Match: that ETag, so an object rewritten while it is sent
 * fails with -ESTALE and the transfer starts over with the new version,
 * never a mix of two.  A GET fetches up to WINDOW bytes at once, handed
 * out over the next reads: fewer requests than one per chunk.  stat() is
 * a HEAD again, for xfer's check that the object did not change.  Reads
 * are at any offset, so a transfer resumes on the source side too.
 *
 * After delivery: remove() is DeleteObject; move() is CopyObject to
 * <prefix><dir>/<rel> then DeleteObject (CopyObject's limit: 5 GiB).
 *
 * Errors of the bucket as a whole (no server, TLS, wrong or missing keys,
 * clock skew, no such bucket, throttling; and for a listing, access
 * denied) are -EHOSTDOWN with the client's words in err: the scheduler
 * pauses the source instead of counting an attempt.  The client is then
 * dropped, so the next request reads the keys again.
 *
 * Each instance (a worker's, a range's, the poller's) has one client,
 * used by one thread at a time; no lock.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sftprelay/conf.h"
#include "sftprelay/log.h"
#include "sftprelay/path.h"
#include "sftprelay/s3.h"
#include "sftprelay/s3conf.h"
#include "sftprelay/source.h"

#define TIMEOUT 60               /* seconds without progress */
#define WINDOW (4 * 1024 * 1024) /* bytes one GET fetches at most */
#define REFUSED_MAX 1024         /* refused keys remembered, not logged again */

struct src_settings {
    struct s3_settings s3;
};

static const struct conf_key src_keys[] = {
    S3_CONF_KEYS(struct src_settings, s3, "bucket the files are taken from",
                 "folder in the bucket the files are under (\"\": the "
                 "whole bucket)"),
};

static int src_check(void *settings, const struct conf_scope *s, char *err,
                     size_t errlen)
{
    const struct src_settings *set = settings;

    return s3_settings_check(&set->s3, s, err, errlen);
}

static const struct conf_table src_conf = {
    .section = "source",
    .title = "source s3",
    .keys = src_keys,
    .n_keys = CONF_N_KEYS(src_keys),
    .size = sizeof(struct src_settings),
    .check = src_check,
};

struct s3_source {
    struct source base;
    const struct s3_settings *cf; /* borrowed: outlives the source */
    int cancel_fd;
    char *prefix;   /* cf->prefix as a folder: "" or ending in "/" */
    struct s3 *c;   /* NULL until the first request, and after a host error */
    char **refused; /* keys refused and logged already */
    size_t n_refused;
};

struct source_file {
    struct s3_source *s;
    char *key;
    struct s3_object o; /* as HEAD said at open */
    unsigned char *win; /* min(WINDOW, size) bytes, win_len valid from
                           win_off */
    int64_t win_off;
    size_t win_len;
};

/* Whether r concerns the bucket as a whole rather than one object. */
static int is_host(int r)
{
    switch (r) {
    case -EPERM:         /* wrong keys, clock skew, wrong region */
    case -EADDRNOTAVAIL: /* no such bucket */
    case -EKEYREJECTED:  /* TLS verification */
    case -ECONNREFUSED:
    case -ECONNRESET:
    case -EHOSTUNREACH:
    case -ENETUNREACH:
    case -ETIMEDOUT:
    case -EAGAIN: /* throttled, or the server failing: back off */
        return 1;
    default:
        return 0;
    }
}

/*
 * The client's last error as the source's; an error of the whole bucket
 * (or any but a lack of memory when listing) drops the client and
 * becomes -EHOSTDOWN.  A 403 without a body (HEAD's) cannot tell wrong
 * keys from a key closed to us: a one-key listing, which has a body, says
 * which.  Returns the error to hand on.
 */
static int fail(struct s3_source *s, int r, int listing)
{
    snprintf(s->base.err, sizeof(s->base.err), "%s", s3_error(s->c));
    if (r == -EACCES && !listing) {
        int p = s3_probe(s->c, s->prefix);

        if (p < 0 && is_host(p)) {
            snprintf(s->base.err, sizeof(s->base.err), "%s", s3_error(s->c));
            r = p;
        }
    }
    if (r == -ECANCELED || !(is_host(r) || (listing && r != -ENOMEM)))
        return r;
    s3_free(s->c);
    s->c = NULL;
    return -EHOSTDOWN;
}

/* A client, made if there is none: 0, or -EHOSTDOWN with err set. */
static int client(struct s3_source *s)
{
    int r;

    if (s->c)
        return 0;
    r = s3_settings_connect(s->cf, s->cancel_fd, TIMEOUT, &s->c, s->base.err,
                            sizeof(s->base.err));
    return r == -ENOMEM ? r : r < 0 ? -EHOSTDOWN : 0;
}

static int src_connect(struct source *base)
{
    struct s3_source *s = (struct s3_source *)base;
    int r = client(s);

    if (r == 0)
        r = s3_probe(s->c, s->prefix);
    return r < 0 && s->c ? fail(s, r, 1) : r;
}

static int src_create(const char *root, const void *settings, int cancel_fd,
                      struct source **out)
{
    const struct src_settings *cf = settings;
    const char *p = cf->s3.prefix;
    size_t n = strlen(p);
    struct s3_source *s = calloc(1, sizeof(*s));

    (void)root; /* the bucket and the prefix say where */
    *out = NULL;
    if (s == NULL)
        return -ENOMEM;
    s->base.ops = &source_s3;
    s->cf = &cf->s3;
    s->cancel_fd = cancel_fd;
    if (asprintf(&s->prefix, "%s%s", p, n && p[n - 1] != '/' ? "/" : "") < 0) {
        free(s);
        return -ENOMEM;
    }
    *out = &s->base;
    return 0;
}

static void src_destroy(struct source *base)
{
    struct s3_source *s = (struct s3_source *)base;
    size_t i;

    if (s == NULL)
        return;
    s3_free(s->c);
    for (i = 0; i < s->n_refused; i++)
        free(s->refused[i]);
    free(s->refused);
    free(s->prefix);
    free(s);
}

/* The object's key for rel: prefix + rel; *key is malloc'd. */
static int key_of(const struct s3_source *s, const char *rel, char **key)
{
    if (asprintf(key, "%s%s", s->prefix, rel) < 0) {
        *key = NULL;
        return -ENOMEM;
    }
    return 0;
}

/*
 * FNV-1a of the ETag, modulo 10^9: the nanoseconds of the object's
 * mtime_ns, so that another ETag is another version.
 */
static int64_t etag_ns(const char *etag)
{
    uint64_t h = UINT64_C(14695981039346656037);

    for (; *etag; etag++) {
        h ^= (unsigned char)*etag;
        h *= UINT64_C(1099511628211);
    }
    return (int64_t)(h % 1000000000);
}

static void to_stat(const struct s3_object *o, struct source_stat *st)
{
    st->size = o->size;
    st->mtime_ns = o->mtime * 1000000000 + etag_ns(o->etag);
    st->mode = 0644;
}

static int src_open(struct source *base, const char *rel,
                    struct source_file **out, struct source_stat *st)
{
    struct s3_source *s = (struct s3_source *)base;
    struct source_file *f = calloc(1, sizeof(*f));
    int r = f ? key_of(s, rel, &f->key) : -ENOMEM;

    *out = NULL;
    if (r == 0)
        r = client(s);
    if (r == 0) {
        r = s3_head(s->c, f->key, &f->o);
        if (r < 0)
            r = fail(s, r, 0);
    }
    if (r < 0) {
        if (f)
            free(f->key);
        free(f);
        return r;
    }
    f->s = s;
    to_stat(&f->o, st);
    *out = f; /* transferred */
    return 0;
}

/* One GET of len bytes at off into buf, the object as it was at open. */
static int get(struct source_file *f, int64_t off, void *buf, size_t len,
               size_t *got)
{
    struct s3_source *s = f->s;
    int r = client(s);

    *got = 0;
    if (r == 0) {
        r = s3_get(s->c, f->key, off, buf, len, f->o.etag, got);
        if (r < 0)
            r = fail(s, r, 0);
    }
    return r;
}

/* Fill the window with the bytes from at: up to WINDOW, not past the end
 * HEAD told (the window is as big as the object, if smaller). */
static int fill_window(struct source_file *f, int64_t at)
{
    size_t want = WINDOW;

    if ((int64_t)want > f->o.size)
        want = (size_t)f->o.size;
    if (f->win == NULL) {
        f->win = malloc(want);
        if (f->win == NULL)
            return -ENOMEM;
    }
    if ((int64_t)want > f->o.size - at)
        want = (size_t)(f->o.size - at);
    f->win_len = 0;
    f->win_off = at;
    return get(f, at, f->win, want, &f->win_len);
}

static int src_read(struct source_file *f, void *buf, size_t len, int64_t off,
                    size_t *got)
{
    size_t n, done = 0;
    int64_t at, end;
    int r;

    *got = 0;
    while (done < len && off + (int64_t)done < f->o.size) {
        at = off + (int64_t)done;
        end = f->win_off + (int64_t)f->win_len;
        if (at >= f->win_off && at < end) {
            n = (size_t)(end - at);
            if (n > len - done)
                n = len - done;
            memcpy((char *)buf + done, f->win + (at - f->win_off), n);
            done += n;
            continue;
        }
        if (len - done >= WINDOW) { /* straight into buf: no copy */
            r = get(f, at, (char *)buf + done, len - done, &n);
            if (r == 0)
                done += n;
            if (r < 0)
                return r;
            break;
        }
        r = fill_window(f, at);
        if (r < 0)
            return r;
        if (f->win_len == 0)
            break; /* shorter than HEAD said: the caller sees it */
    }
    *got = done;
    return 0;
}

static int src_stat(struct source_file *f, struct source_stat *st)
{
    struct s3_source *s = f->s;
    struct s3_object o;
    int r = client(s);

    if (r == 0) {
        r = s3_head(s->c, f->key, &o);
        if (r < 0)
            return fail(s, r, 0);
        to_stat(&o, st);
    }
    return r;
}

static void src_close(struct source_file *f)
{
    if (f == NULL)
        return;
    free(f->win);
    free(f->key);
    free(f);
}

/* --- listing ------------------------------------------------------------ */

struct lister {
    struct s3_source *s;
    const struct source_walk *w;
    int stopped; /* found()'s negative return, handed on as it is */
};

/* Log the refusal of key once (REFUSED_MAX keys remembered). */
static void refuse(struct s3_source *s, const char *key)
{
    size_t i;
    char **p;

    for (i = 0; i < s->n_refused; i++)
        if (strcmp(s->refused[i], key) == 0)
            return;
    log_error("s3://%s: refusing the key \"%s\": not a file name within "
              "source.prefix \"%s\"",
              s->cf->bucket, key, s->prefix);
    if (s->n_refused == REFUSED_MAX)
        return;
    p = realloc(s->refused, (s->n_refused + 1) * sizeof(*p));
    if (p == NULL)
        return;
    s->refused = p;
    p[s->n_refused] = strdup(key);
    if (p[s->n_refused])
        s->n_refused++;
}

/* Whether a component of rel matches an exclude glob. */
static int excluded(const char *rel, const struct source_walk *w)
{
    char name[PATH_NAME_MAX + 1];
    const char *p = rel, *slash;
    size_t len;

    for (;;) {
        slash = strchr(p, '/');
        len = slash ? (size_t)(slash - p) : strlen(p);
        memcpy(name, p, len); /* path_rel_check(): len <= PATH_NAME_MAX */
        name[len] = '\0';
        if (path_excluded(name, w->exclude, w->n_exclude))
            return 1;
        if (slash == NULL)
            return 0;
        p = slash + 1;
    }
}

static int on_object(void *arg, const struct s3_object *o)
{
    struct lister *l = arg;
    size_t n = strlen(l->s->prefix);
    const char *rel = o->key + n;
    struct source_stat st;
    int r;

    if (strncmp(o->key, l->s->prefix, n) != 0)
        return 0; /* not asked for (rel is not looked at) */
    if (rel[0] == '\0' || rel[strlen(rel) - 1] == '/') {
        log_debug("s3://%s: skipping the folder marker \"%s\"",
                  l->s->cf->bucket, o->key);
        return 0;
    }
    if (path_rel_check(rel) < 0) {
        refuse(l->s, o->key);
        return 0;
    }
    if ((l->w->skip && path_is_under(rel, l->w->skip)) || excluded(rel, l->w))
        return 0;
    to_stat(o, &st);
    r = l->w->found(l->w->arg, rel, &st);
    if (r < 0)
        l->stopped = r;
    return r;
}

static int src_list(struct source *base, const struct source_walk *w)
{
    struct s3_source *s = (struct s3_source *)base;
    struct lister l = {.s = s, .w = w};
    int r = client(s);

    if (r < 0)
        return r;
    r = s3_list(s->c, s->prefix, on_object, &l);
    if (r < 0 && !l.stopped)
        r = fail(s, r, 1);
    return r;
}

/* --- after delivery ------------------------------------------------------ */

static int src_remove(struct source *base, const char *rel)
{
    struct s3_source *s = (struct s3_source *)base;
    char *key = NULL;
    int r = key_of(s, rel, &key);

    if (r == 0)
        r = client(s);
    if (r == 0) {
        r = s3_delete(s->c, key);
        if (r < 0)
            r = fail(s, r, 0);
    }
    free(key);
    return r;
}

static int src_move(struct source *base, const char *rel, const char *dir)
{
    struct s3_source *s = (struct s3_source *)base;
    char *from = NULL, *to = NULL;
    int r = key_of(s, rel, &from);

    if (r == 0 && asprintf(&to, "%s%s/%s", s->prefix, dir, rel) < 0) {
        to = NULL;
        r = -ENOMEM;
    }
    if (r == 0)
        r = client(s);
    if (r == 0) {
        r = s3_copy(s->c, from, to);
        if (r == 0)
            r = s3_delete(s->c, from);
        if (r < 0)
            r = fail(s, r, 0);
    }
    free(from);
    free(to);
    return r;
}

const struct source_ops source_s3 = {
    .name = "s3",
    .no_path = 1,
    .conf = &src_conf,
    .create = src_create,
    .destroy = src_destroy,
    .open = src_open,
    .read = src_read,
    .stat = src_stat,
    .close = src_close,
    .watched = 0,
    .list = src_list,
    .remove = src_remove,
    .move = src_move,
    .connect = src_connect,
};
