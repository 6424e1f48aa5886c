/*
 * The SFTP source: files under source.path on a remote SFTP server,
 * reached with the same keys as the SFTP target (sshconf.h) over our SFTP
 * client (sftpc.h).  It is polled, not watched: list() walks the tree
 * with OPENDIR/READDIR, reporting regular files only (symbolic links and
 * other kinds are skipped), and refuses any name that could leave the
 * tree ("../x", "/etc/passwd", "a/b"): a hostile server cannot make the
 * agent read or write outside source.path, nor name a target file
 * outside target.path.  A size of 2^63 bytes or more is refused too
 * (it would read as negative), and a read never hands over more bytes
 * than were asked, whatever the server sends.  Reads are pipelined
 * reads at an offset, so a transfer resumes on the source side too.
 *
 * Each instance (a worker's, a range's, the poller's) has one connection,
 * made on first use and made again after it is lost.  Whatever concerns
 * the server as a whole (not reached, login or host key refused, the
 * session lost or timed out) is -EHOSTDOWN with the reason in err; the
 * scheduler then pauses the source instead of counting an attempt.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sftprelay/conf.h"
#include "sftprelay/log.h"
#include "sftprelay/path.h"
#include "sftprelay/sftpc.h"
#include "sftprelay/source.h"
#include "sftprelay/sshchan.h"
#include "sftprelay/sshconf.h"

struct src_settings {
    struct ssh_settings ssh;
};

static const struct conf_key src_keys[] = {
    SSH_CONF_KEYS(struct src_settings, ssh),
};

static int src_check(void *settings, const struct conf_scope *s, char *err,
                     size_t errlen)
{
    struct src_settings *set = settings;

    return ssh_settings_check(&set->ssh, s, "source.type", err, errlen);
}

static const struct conf_table src_conf = {
    .section = "source",
    .title = "source sftp",
    .keys = src_keys,
    .n_keys = CONF_N_KEYS(src_keys),
    .size = sizeof(struct src_settings),
    .check = src_check,
};

struct sftp_source {
    struct source base;
    const struct ssh_settings *cf; /* borrowed: outlives the source */
    int cancel_fd;
    char peer[300]; /* user@host:port, for messages */
    char *root;
    struct ssh_chan *ch;
    struct sftpc *c;
    unsigned session; /* counts connections: a file belongs to one */
};

struct source_file {
    struct sftp_source *s;
    struct sftpc_file *f;
    unsigned session;
    char *path; /* on the server, for messages */
};

static void drop(struct sftp_source *s)
{
    sftpc_free(s->c); /* frees its open files */
    s->c = NULL;
    if (s->ch)
        s->ch->ops->close(s->ch);
    s->ch = NULL;
}

/* Whether r (with the session's state) means the server is lost. */
static int lost(const struct sftp_source *s, int r)
{
    return s->c == NULL || sftpc_dead(s->c) || r == -ETIMEDOUT ||
           r == -ECONNRESET || r == -EPROTO;
}

/*
 * Record why "what path" failed; a lost session is dropped and the
 * error becomes -EHOSTDOWN.  Returns the error to hand on.
 */
static int fail(struct sftp_source *s, int r, const char *what,
                const char *path)
{
    const char *why = s->c && sftpc_error(s->c)[0] ? sftpc_error(s->c)
                                                   : strerror(-r);

    snprintf(s->base.err, sizeof(s->base.err), "%s: %s %s: %s", s->peer, what,
             path, why);
    if (r == -ECANCELED || !lost(s, r))
        return r;
    drop(s);
    return -EHOSTDOWN;
}

static int src_connect(struct source *base)
{
    struct sftp_source *s = (struct sftp_source *)base;
    char err[2 * SSH_ERR_MAX] = "";
    int r;

    if (s->c && sftpc_poll(s->c) == 0)
        return 0;
    drop(s);
    r = ssh_settings_connect(s->cf, s->cancel_fd, &s->ch, err, sizeof(err));
    if (r == 0) {
        s->session++;
        r = sftpc_start(s->ch, NULL, &s->c);
        if (r < 0)
            snprintf(err, sizeof(err), "%s: starting SFTP: %s", s->peer,
                     sftpc_error(s->c));
    }
    if (r == 0)
        return 0;
    snprintf(s->base.err, sizeof(s->base.err), "%.*s",
             (int)sizeof(s->base.err) - 1, err);
    drop(s);
    return r == -ECANCELED ? r : -EHOSTDOWN;
}

static int src_create(const char *root, const void *settings, int cancel_fd,
                      struct source **out)
{
    const struct src_settings *cf = settings;
    struct sftp_source *s = calloc(1, sizeof(*s));
    char hp[280];

    *out = NULL;
    if (s == NULL)
        return -ENOMEM;
    s->base.ops = &source_sftp;
    s->cf = &cf->ssh;
    s->cancel_fd = cancel_fd;
    ssh_peer_name(cf->ssh.host, cf->ssh.port, hp, sizeof(hp));
    snprintf(s->peer, sizeof(s->peer), "%s@%s", cf->ssh.user, hp);
    s->root = strdup(root);
    if (s->root == NULL) {
        free(s);
        return -ENOMEM;
    }
    *out = &s->base;
    return 0;
}

static void src_destroy(struct source *base)
{
    struct sftp_source *s = (struct sftp_source *)base;

    if (s == NULL)
        return;
    drop(s);
    free(s->root);
    free(s);
}

/* root/rel, connected: 0, or the connection's error. */
static int prepare(struct sftp_source *s, const char *rel, char **path)
{
    int r = src_connect(&s->base);

    *path = NULL;
    if (r == 0)
        r = path_join(s->root, rel, path);
    return r;
}

/*
 * The server's attributes of path as a source_stat.  A size past
 * INT64_MAX (a hostile or broken server: no file holds 8 EiB) would read
 * as negative and make a transfer ask for almost SIZE_MAX bytes: it is
 * -EOVERFLOW, with the peer, path and size in s->base.err.
 */
static int to_stat(struct sftp_source *s, const char *path,
                   const struct sftp_attrs *a, struct source_stat *st)
{
    if (a->size > INT64_MAX) {
        snprintf(s->base.err, sizeof(s->base.err),
                 "%s: %s: the server reports a size of %llu bytes, past any "
                 "file's; refused",
                 s->peer, path, (unsigned long long)a->size);
        return -EOVERFLOW;
    }
    st->size = (int64_t)a->size;
    st->mtime_ns = (int64_t)a->mtime * 1000000000;
    st->mode = (int)(a->perm & 07777);
    return 0;
}

/*
 * Whether the attributes a of a name are a regular file's: 0, -ELOOP for
 * a symbolic link, -EISDIR or -EINVAL for other kinds.  Without
 * permissions there is no telling: 0.
 */
static int kind_of(const struct sftp_attrs *a)
{
    uint32_t t = a->perm & S_IFMT;

    if (!(a->flags & SFTP_ATTR_PERMISSIONS) || S_ISREG(t))
        return 0;
    return S_ISLNK(t) ? -ELOOP : S_ISDIR(t) ? -EISDIR : -EINVAL;
}

/*
 * SFTP's OPEN follows symbolic links and has no O_NOFOLLOW: a user of
 * the server could swap a listed file for a link to another file and get
 * that one sent.  So the name is looked at (LSTAT) just before the OPEN,
 * in the same round trip, and again once the file is open: a link either
 * time is -ELOOP.  (Two swaps within one round trip each remain unseen:
 * SFTP v3 gives no file identity to compare.)
 */
static int src_open(struct source *base, const char *rel,
                    struct source_file **out, struct source_stat *st)
{
    struct sftp_source *s = (struct sftp_source *)base;
    struct source_file *f = NULL;
    struct sftpc_file *h = NULL;
    struct sftp_attrs a = {0}, l = {0};
    uint32_t lid, oid;
    char *path = NULL;
    int r = prepare(s, rel, &path), rl;

    if (r < 0)
        goto out;
    r = sftpc_lstat_send(s->c, path, &lid);
    if (r == 0) {
        r = sftpc_open_send(s->c, path, SFTP_PF_READ, 0, &oid);
        if (r < 0)
            sftpc_forget(s->c, lid);
    }
    if (r == 0) {
        rl = sftpc_stat_recv(s->c, lid, &l);
        r = sftpc_open_recv(s->c, oid, &h);
        if (r == 0)
            r = rl;
    }
    if (r < 0) {
        r = fail(s, r, "opening", path);
        goto out;
    }
    r = kind_of(&l);
    if (r < 0)
        goto out;
    r = sftpc_fstat(s->c, h, &a);
    if (r == 0)
        r = sftpc_lstat(s->c, path, &l);
    if (r < 0) {
        r = fail(s, r, "checking", path);
        goto out;
    }
    r = kind_of(&l);
    if (r == 0)
        r = kind_of(&a);
    if (r == 0)
        r = to_stat(s, path, &a, st);
    if (r < 0)
        goto out;
    f = malloc(sizeof(*f));
    if (f == NULL) {
        r = -ENOMEM;
        goto out;
    }
    f->s = s;
    f->f = h;
    f->session = s->session;
    f->path = path;
    h = NULL; /* transferred */
    path = NULL;
    *out = f;
out:
    if (h && s->c)
        sftpc_close(s->c, h);
    free(path);
    return r;
}

/* Where src_read()'s bytes go: buf holds len. */
struct filling {
    char *buf;
    size_t len, got;
    int over; /* the server sent more than was asked */
};

/* Never past len, whatever the server sends (the client checks too). */
static int fill(void *arg, const void *p, size_t n)
{
    struct filling *fl = arg;

    if (n > fl->len - fl->got) {
        fl->over = 1;
        return -EPROTO;
    }
    memcpy(fl->buf + fl->got, p, n);
    fl->got += n;
    return 0;
}

/* Whether f's handle is still open in its source's session. */
static int open_in(const struct source_file *f)
{
    return f->s->c && f->session == f->s->session && !sftpc_dead(f->s->c);
}

static int src_read(struct source_file *f, void *buf, size_t len, int64_t off,
                    size_t *got)
{
    struct sftp_source *s = f->s;
    struct filling fl = {.buf = buf, .len = len};
    int r;

    *got = 0;
    if (off < 0)
        return -EINVAL;
    if (!open_in(f))
        return fail(s, -ECONNRESET, "reading", f->path);
    r = sftpc_read(s->c, f->f, (uint64_t)off, len, fill, &fl);
    *got = fl.got;
    if (r == -ENODATA) /* the end of the file came first */
        return 0;
    if (fl.over) {
        snprintf(s->base.err, sizeof(s->base.err),
                 "%s: reading %s: the server sent more than was asked", s->peer,
                 f->path);
        drop(s);
        return -EHOSTDOWN;
    }
    return r < 0 ? fail(s, r, "reading", f->path) : 0;
}

static int src_stat(struct source_file *f, struct source_stat *st)
{
    struct sftp_source *s = f->s;
    struct sftp_attrs a = {0};
    int r = open_in(f) ? sftpc_fstat(s->c, f->f, &a) : -ECONNRESET;

    if (r < 0)
        return fail(s, r, "checking", f->path);
    return to_stat(s, f->path, &a, st);
}

static void src_close(struct source_file *f)
{
    if (f == NULL)
        return;
    /* A lost session already freed the handle with the client. */
    if (open_in(f))
        sftpc_close(f->s->c, f->f);
    free(f->path);
    free(f);
}

/* --- listing ------------------------------------------------------------ */

/*
 * A hostile server's tree can be endless: the walk goes at most
 * MAX_DEPTH folders down (deeper ones are logged and skipped, so the
 * recursion is bounded), refuses a path of PATH_MAX bytes or more, and
 * stops the whole listing (-E2BIG) past w->max_entries entries of any
 * kind (source.max_files), which also bounds the memory it holds.
 */
#define MAX_DEPTH 64

/* One folder being listed: its files go to the walk at once, its
 * folders wait in subdirs until its listing is over (readdir's callback
 * must not use the client). */
struct lister {
    struct sftp_source *s;
    const struct source_walk *w;
    const char *rel;  /* the folder, relative to the root ("" the root) */
    const char *path; /* on the server */
    char **subdirs;
    size_t n, cap;
    size_t *entries; /* of the whole listing so far */
};

static int add_subdir(struct lister *l, char *rel)
{
    char **p;

    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        p = realloc(l->subdirs, l->cap * sizeof(*p));
        if (p == NULL) {
            free(rel);
            return -ENOMEM;
        }
        l->subdirs = p;
    }
    l->subdirs[l->n++] = rel;
    return 0;
}

static int on_entry(void *arg, const char *name, const struct sftp_attrs *a)
{
    struct lister *l = arg;
    struct source_stat st;
    char *rel = NULL;
    int r;

    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return 0;
    if (l->w->max_entries && ++*l->entries > l->w->max_entries) {
        snprintf(l->s->base.err, sizeof(l->s->base.err),
                 "%s: listing %s: more than %zu entries (source.max_files); "
                 "the listing stopped",
                 l->s->peer, l->path, l->w->max_entries);
        return -E2BIG;
    }
    if (strchr(name, '/') || path_join(l->rel[0] ? l->rel : ".", name, &rel) ||
        path_rel_check(rel) < 0 || strlen(rel) >= PATH_MAX) {
        log_error("%s: refusing the name \"%.300s\" the server listed in "
                  "%.300s: not a file name within source.path%s",
                  l->s->peer, name, l->path,
                  rel && strlen(rel) >= PATH_MAX ? " (too long)" : "");
        free(rel);
        return 0;
    }
    /* Without permissions there is no telling a file from a link. */
    r = 0;
    if (path_excluded(name, l->w->exclude, l->w->n_exclude) ||
        !(a->flags & SFTP_ATTR_PERMISSIONS)) {
        free(rel);
        return 0;
    }
    if (S_ISDIR(a->perm & S_IFMT) &&
        !(l->w->skip && path_is_under(rel, l->w->skip)))
        return add_subdir(l, rel);
    if (S_ISREG(a->perm & S_IFMT)) {
        if (to_stat(l->s, rel, a, &st) < 0)
            log_error("%s", l->s->base.err); /* the rest goes on */
        else
            r = l->w->found(l->w->arg, rel, &st);
    }
    free(rel);
    return r;
}

/* List the folder rel, depth folders below the root, and everything
 * under it. */
static int walk(struct sftp_source *s, const struct source_walk *w,
                const char *rel, int depth, size_t *entries)
{
    struct lister l = {.s = s, .w = w, .rel = rel, .entries = entries};
    char *path = rel[0] ? NULL : strdup(s->root);
    size_t i;
    int r = rel[0] ? path_join(s->root, rel, &path) : path ? 0 : -ENOMEM;

    l.path = path;
    if (r == 0 && depth > MAX_DEPTH) {
        log_error("%s: not listing %s: more than %d folders below "
                  "source.path",
                  s->peer, path, MAX_DEPTH);
        free(path);
        return 0;
    }
    if (r == 0)
        r = sftpc_readdir(s->c, path, on_entry, &l);
    /* -E2BIG (too many entries) stays as it is: s->base.err says so. */
    if (r < 0 && r != -E2BIG && s->c && !lost(s, r) && rel[0] &&
        (r == -ENOENT || r == -EACCES)) {
        /* A folder removed meanwhile, or closed to us: the rest goes on. */
        log_debug("%s: listing %s: %s", s->peer, path, sftpc_error(s->c));
        r = 0;
        l.n = 0;
    } else if (r < 0 && r != -E2BIG && s->c && sftpc_error(s->c)[0]) {
        r = fail(s, r, "listing", path);
    }
    for (i = 0; i < l.n; i++) {
        if (r == 0)
            r = walk(s, w, l.subdirs[i], depth + 1, entries);
        free(l.subdirs[i]);
    }
    free(l.subdirs);
    free(path);
    return r;
}

static int src_list(struct source *base, const struct source_walk *w)
{
    struct sftp_source *s = (struct sftp_source *)base;
    size_t entries = 0;
    int r = src_connect(base);

    return r < 0 ? r : walk(s, w, "", 0, &entries);
}

/* --- after delivery ------------------------------------------------------ */

static int src_remove(struct source *base, const char *rel)
{
    struct sftp_source *s = (struct sftp_source *)base;
    char *path = NULL;
    int r = prepare(s, rel, &path);

    if (r == 0) {
        r = sftpc_remove(s->c, path);
        if (r < 0)
            r = fail(s, r, "removing", path);
    }
    free(path);
    return r;
}

static int src_move(struct source *base, const char *rel, const char *dir)
{
    struct sftp_source *s = (struct sftp_source *)base;
    char *from = NULL, *to = NULL, *todir = NULL, *p;
    int r = prepare(s, rel, &from);

    if (r == 0)
        r = path_join(dir, rel, &todir);
    if (r == 0)
        r = path_join(s->root, todir, &to);
    /* Make each folder on the way; one that is there already fails
     * harmlessly, and the rename says what really went wrong. */
    for (p = to ? to + strlen(s->root) + 1 : NULL; r == 0 && p &&
                                                   (p = strchr(p, '/')) != NULL;
         p++) {
        *p = '\0';
        sftpc_mkdir(s->c, to, 0755);
        *p = '/';
    }
    if (r == 0) {
        r = sftpc_rename(s->c, from, to);
        if (r < 0)
            r = fail(s, r, "moving", from);
    }
    free(from);
    free(to);
    free(todir);
    return r;
}

const struct source_ops source_sftp = {
    .name = "sftp",
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
