/*
 * The SFTP sink: our SFTP v3 client (agent/sftp/client.c) over an SSH
 * channel from the backend target.transport names (agent/ssh/).
 *
 * A file goes to its temporary name with many writes in flight; the
 * journal's checkpoint is the client's acknowledged highwater.  Commit
 * queues the file's attributes (mode, and the source's mtime), an fsync
 * and the close behind the last write, checks the temporary file
 * (target.verify: its size, or its SHA-256 read back through the same
 * pipeline), then renames it into place, atomically replacing an older
 * copy where the server offers posix-rename@openssh.com.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sftprelay/conf.h"
#include "sftprelay/log.h"
#include "sftprelay/path.h"
#include "sftprelay/sftpc.h"
#include "sftprelay/sink.h"
#include "sftprelay/sshchan.h"
#include "sftprelay/sshconf.h"

enum verify { VERIFY_NONE, VERIFY_SIZE, VERIFY_SHA256 };

/* Its settings, read with sftp_conf. */
struct sftp_settings {
    struct ssh_settings ssh; /* host, port, user, ... (sshconf.h) */
    char *path;
    int fsync;
    int preserve_mtime;
    char *verify;
    /* derived by sftp_check() */
    enum verify verify_how;
};

extern const struct sink_ops sink_sftp;

struct sftp_sink {
    struct sink base;
    const struct sftp_settings *cf; /* borrowed: outlives the sink */
    int cancel_fd;
    char peer[300];
    struct ssh_chan *ch;
    struct sftpc *c;
    struct sftpc_file *f;
    char *root; /* target.path, made absolute */
    char *tmp;
    char *final;
    int64_t pos;
    int64_t acked; /* the highwater, kept when the file or session goes */
    int tail; /* the temporary file may be longer than what we wrote */
    int said_no_fsync;
};

#define S(f, k, d, doc) CONF_KEY_STR(struct sftp_settings, f, k, d, 0, doc)
static const struct conf_key sftp_keys[] = {
    SSH_CONF_KEYS(struct sftp_settings, ssh),
    S(path, "path", ".",
      "folder on the target the source tree is replicated under"),
    CONF_KEY_BOOL(struct sftp_settings, fsync, "fsync", 1,
                  "fsync@openssh.com before the rename, where offered"),
    CONF_KEY_BOOL(struct sftp_settings, preserve_mtime, "preserve_mtime", 1,
                  "give the target file the source's modification time"),
    S(verify, "verify", "size",
      "check before the rename: none, size or sha256 (read back)"),
};
#undef S

static int sftp_check(void *settings, const struct conf_scope *s, char *err,
                      size_t errlen)
{
    struct sftp_settings *set = settings;
    int r = ssh_settings_check(&set->ssh, s, "target.type", err, errlen);

    if (r < 0)
        return r;
    if (strcmp(set->verify, "none") == 0)
        set->verify_how = VERIFY_NONE;
    else if (strcmp(set->verify, "size") == 0)
        set->verify_how = VERIFY_SIZE;
    else if (strcmp(set->verify, "sha256") == 0)
        set->verify_how = VERIFY_SHA256;
    else
        return conf_fail(s, conf_scope_line(s, "verify"), "verify", err,
                         errlen, "\"%s\" is not one of none, size, sha256",
                         set->verify);
    return 0;
}

static const struct conf_table sftp_conf = {
    .section = "target",
    .title = "sink sftp",
    .keys = sftp_keys,
    .n_keys = CONF_N_KEYS(sftp_keys),
    .size = sizeof(struct sftp_settings),
    .check = sftp_check,
};

static void drop(struct sftp_sink *s);

/*
 * Record what failed ("what": a verb and an object) with the client's
 * words; drop the connection if the error concerns it.  Returns r.
 */
static int fail(struct sftp_sink *s, int r, const char *what)
{
    const char *why = s->c ? sftpc_error(s->c) : "";

    sink_fail(&s->base, r, "%s: %s: %s", s->peer, what,
              why[0] ? why : strerror(-r));
    if (sink_error_is_target(r) || r == -ECANCELED || r == -EPROTO ||
        r == -ENOMEM || (s->c && sftpc_dead(s->c))) {
        /* The session is gone whatever the errno says: the next file
         * gets a new one, and this one a target error. */
        if (s->c && sftpc_dead(s->c) && !sink_error_is_target(r) &&
            r != -ECANCELED)
            r = -ECONNRESET;
        drop(s);
    }
    return r;
}

static void sftp_describe(const void *settings, char *buf, size_t len)
{
    const struct sftp_settings *c = settings;
    char peer[300];

    ssh_peer_name(c->ssh.host, c->ssh.port, peer, sizeof(peer));
    snprintf(buf, len, "%s@%s %s", c->ssh.user, peer, c->path);
}

static int sftp_create(const void *settings, int cancel_fd, struct sink **out)
{
    const struct sftp_settings *c = settings;
    struct sftp_sink *s;

    *out = NULL;
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    s->base.ops = &sink_sftp;
    s->cf = c;
    s->cancel_fd = cancel_fd;
    ssh_peer_name(c->ssh.host, c->ssh.port, s->peer, sizeof(s->peer));
    *out = &s->base;
    return 0;
}

static void reset_file(struct sftp_sink *s)
{
    if (s->f && s->c)
        sftpc_close(s->c, s->f); /* an abandoned upload: errors are moot */
    s->f = NULL;
    free(s->tmp);
    free(s->final);
    s->tmp = s->final = NULL;
    s->pos = 0;
    s->tail = 0;
}

/* Forget the connection at once: the peer sees it closed. */
static void drop(struct sftp_sink *s)
{
    struct sftpc *c = s->c;

    s->c = NULL; /* reset_file() must not wait on it */
    s->f = NULL; /* freed with the client */
    reset_file(s);
    sftpc_free(c);
    if (s->ch)
        s->ch->ops->close(s->ch);
    s->ch = NULL;
    free(s->root);
    s->root = NULL;
}

static void sftp_destroy(struct sink *base)
{
    struct sftp_sink *s = (struct sftp_sink *)base;

    drop(s);
    free(s);
}

static void sftp_disconnect(struct sink *base)
{
    drop((struct sftp_sink *)base);
}

/* target.path as an absolute path on the server. */
static int resolve_root(struct sftp_sink *s)
{
    int r;

    if (s->cf->path[0] == '/') {
        s->root = strdup(s->cf->path);
        return s->root ? 0 : -ENOMEM;
    }
    r = sftpc_realpath(s->c, s->cf->path, &s->root);
    return r < 0 ? fail(s, r, "resolving target.path") : 0;
}

static int sftp_connect(struct sink *base)
{
    struct sftp_sink *s = (struct sftp_sink *)base;
    const struct sftp_settings *cf = s->cf;
    char err[2 * SSH_ERR_MAX] = "";
    int r;

    /* A server that closed the session while it was idle has said so
     * on the socket by now: look without waiting. */
    if (s->c && s->root && !sftpc_dead(s->c)) {
        if (sftpc_poll(s->c) == 0)
            return 0;
        log_info("%s: the server closed the idle connection (%s); "
                 "connecting again",
                 s->peer, sftpc_error(s->c));
    }
    drop(s);
    r = ssh_settings_connect(&cf->ssh, s->cancel_fd, &s->ch, err, sizeof(err));
    /* Whatever stops a connection (a cipher name no library knows, say)
     * concerns the target, not the file that was to be sent. */
    if (r < 0 && r != -ECANCELED && !sink_error_is_target(r))
        r = -ENOTCONN;
    if (r < 0)
        return sink_fail(base, r, "%s", err);
    /* Any failure from here leaves no half-made session behind, and
     * concerns the target. */
    r = sftpc_start(s->ch, NULL, &s->c);
    if (r < 0)
        r = fail(s, r, "starting SFTP");
    else
        r = resolve_root(s);
    if (r < 0) {
        drop(s);
        return sink_error_is_target(r) || r == -ECANCELED ? r : -ENOTCONN;
    }
    log_debug("%s: connected with %s; SFTP writes of %zu bytes%s%s; "
              "target.path is %s",
              s->peer, cf->ssh.backend->name, sftpc_max_write(s->c),
              sftpc_extensions(s->c) & SFTPC_EXT_POSIX_RENAME
                  ? ", posix-rename"
                  : "",
              sftpc_extensions(s->c) & SFTPC_EXT_FSYNC ? ", fsync" : "",
              s->root);
    return 0;
}

/* Make the folder path (len bytes of it) and any missing parents. */
static int remote_mkdirs(struct sftp_sink *s, const char *path, size_t len)
{
    struct sftp_attrs a;
    char *dir = strndup(path, len);
    char what[64 + PATH_MAX];
    int r;

    if (dir == NULL)
        return -ENOMEM;
    r = sftpc_mkdir(s->c, dir, 0755);
    if (r == -ENOENT && path_dir_len(dir) > 0) {
        r = remote_mkdirs(s, dir, path_dir_len(dir));
        if (r == 0)
            r = sftpc_mkdir(s->c, dir, 0755);
    }
    if (r == -EIO || r == -EEXIST || r == -EACCES) {
        /* Made meanwhile, or there already: fine if it is a folder. */
        int st = sftpc_stat(s->c, dir, &a);

        if (st == 0 && (a.flags & SFTP_ATTR_PERMISSIONS) &&
            (a.perm & 0170000) != 0040000) {
            sink_fail(&s->base, -ENOTDIR, "%s: %s exists and is not a folder",
                      s->peer, dir);
            free(dir);
            return -ENOTDIR;
        }
        if (st == 0)
            r = 0;
    }
    if (r < 0 && !s->base.err[0]) {
        snprintf(what, sizeof(what), "creating folder %s", dir);
        r = fail(s, r, what);
    }
    free(dir);
    return r;
}

/* rel's temporary and final paths under root. */
static int names_of(const char *root, const char *rel, char **tmp,
                    char **final)
{
    char *tmprel = NULL;
    int r = path_tmp_name(rel, &tmprel);

    if (r == 0)
        r = path_join(root, tmprel, tmp);
    if (r == 0)
        r = path_join(root, rel, final);
    free(tmprel);
    return r;
}

/* Forget the file before, and name the one to send. */
static int start_file(struct sftp_sink *s, const char *rel)
{
    int r;

    reset_file(s);
    s->base.err[0] = '\0';
    r = names_of(s->root, rel, &s->tmp, &s->final);
    return r < 0 ? sink_fail(&s->base, r, "%s: invalid path", rel) : 0;
}

static int open_tmp(struct sftp_sink *s, int64_t offset, int mode)
{
    uint32_t flags = SFTP_PF_WRITE | SFTP_PF_CREAT;

    if (offset == 0)
        flags |= SFTP_PF_TRUNC;
    return sftpc_open(s->c, s->tmp, flags, (uint32_t)mode, &s->f);
}

static int sftp_open(struct sink *base, struct sink_file *sf)
{
    struct sftp_sink *s = (struct sftp_sink *)base;
    int64_t *offset = &sf->offset;
    int mode = sf->mode & 0777 ? sf->mode & 0777 : 0644;
    struct sftp_attrs a;
    char what[64 + PATH_MAX];
    int r = start_file(s, sf->rel);

    if (r < 0)
        return r;
    r = open_tmp(s, *offset, mode);
    if (r == -ENOENT) {
        /* A new folder: make it, then try again. */
        r = remote_mkdirs(s, s->tmp, path_dir_len(s->tmp));
        if (r < 0)
            return r;
        r = open_tmp(s, *offset, mode);
    }
    if (r < 0) {
        snprintf(what, sizeof(what), "opening %s", s->tmp);
        return fail(s, r, what);
    }
    if (*offset > 0) {
        /* Resume no further than the temporary file really reaches. */
        r = sftpc_fstat(s->c, s->f, &a);
        if (r < 0)
            return fail(s, r, "checking the temporary file");
        if (!(a.flags & SFTP_ATTR_SIZE) || a.size < (uint64_t)*offset)
            *offset = (a.flags & SFTP_ATTR_SIZE) ? (int64_t)a.size : 0;
        s->tail = (int64_t)a.size > *offset;
    }
    s->pos = *offset;
    s->acked = *offset;
    return 0;
}

/*
 * SFTP v3 has no "no space" status: servers answer FAILURE.  After one,
 * ask for the free space beside the file (statvfs@openssh.com): if it
 * is (nearly) gone, say so.  Returns r, or -ENOSPC.
 */
static int io_fail(struct sftp_sink *s, int r, const char *verb)
{
    uint64_t avail = 0;
    char dir[PATH_MAX];
    char what[64 + PATH_MAX];
    size_t dl = path_dir_len(s->tmp);

    snprintf(dir, sizeof(dir), "%.*s", (int)(dl ? dl : 1), s->tmp);
    if (r == -EIO && sftpc_statvfs(s->c, dir, &avail) == 0 &&
        avail < 1024 * 1024)
        return sink_fail(&s->base, -ENOSPC,
                         "%s: %s %s: no space left on the target (%llu bytes "
                         "free)",
                         s->peer, verb, s->tmp, (unsigned long long)avail);
    snprintf(what, sizeof(what), "%s %s", verb, s->tmp);
    return fail(s, r, what);
}

static int sftp_write(struct sink *base, const void *buf, size_t len)
{
    struct sftp_sink *s = (struct sftp_sink *)base;
    int r = sftpc_write(s->c, s->f, (uint64_t)s->pos, buf, len);

    if (sftpc_acked(s->f) > (uint64_t)s->acked)
        s->acked = (int64_t)sftpc_acked(s->f);
    if (r < 0)
        return io_fail(s, r, "writing");
    s->pos += (int64_t)len;
    return 0;
}

static int64_t sftp_durable(struct sink *base)
{
    struct sftp_sink *s = (struct sftp_sink *)base;

    if (s->f && sftpc_acked(s->f) > (uint64_t)s->acked)
        s->acked = (int64_t)sftpc_acked(s->f);
    return s->acked;
}

/*
 * Queue what goes behind f's last write: its size when an older upload
 * left a tail (tail), attributes, fsync.  0 or the client's error.
 */
static int queue_finish(struct sftp_sink *s, struct sftpc_file *f,
                        const struct sink_done *d, int tail)
{
    struct sftp_attrs a = {0};
    int r;

    if (tail) {
        a.flags |= SFTP_ATTR_SIZE;
        a.size = (uint64_t)d->size;
    }
    /* Permission bits only: no set-id bits on a drop box's target. */
    if (d->mode & 0777) {
        a.flags |= SFTP_ATTR_PERMISSIONS;
        a.perm = (uint32_t)(d->mode & 0777);
    }
    if (s->cf->preserve_mtime) {
        a.flags |= SFTP_ATTR_ACMODTIME;
        a.mtime = (uint32_t)(d->mtime_ns / 1000000000);
        a.atime = a.mtime;
    }
    r = a.flags ? sftpc_fsetstat(s->c, f, &a) : 0;
    if (r == 0 && s->cf->fsync) {
        r = sftpc_fsync(s->c, f);
        if (r == -EOPNOTSUPP) {
            if (!s->said_no_fsync)
                log_info("%s: the server has no fsync@openssh.com: files "
                         "are renamed into place unsynced",
                         s->peer);
            s->said_no_fsync = 1;
            r = 0;
        }
    }
    return r;
}

static int finish_file(struct sftp_sink *s, const struct sink_done *d)
{
    struct sink_done at = *d;
    int r;

    at.size = s->pos;
    r = queue_finish(s, s->f, &at, s->tail);
    return r < 0 ? io_fail(s, r, "finishing") : 0;
}

/*
 * The temporary file failed its check: remove it, so that the next
 * attempt starts from byte 0 rather than resuming bad bytes.  Returns r.
 */
static int discard(struct sftp_sink *s, int r)
{
    struct sftpc_file *f = NULL;

    s->acked = 0;
    if (sftpc_remove(s->c, s->tmp) < 0 &&
        sftpc_open(s->c, s->tmp, SFTP_PF_WRITE | SFTP_PF_TRUNC, 0600, &f) == 0)
        sftpc_close(s->c, f); /* cannot remove it: empty it */
    return r;
}

struct hashing {
    EVP_MD_CTX *md;
};

static int hash_cb(void *arg, const void *p, size_t n)
{
    struct hashing *h = arg;

    return EVP_DigestUpdate(h->md, p, n) == 1 ? 0 : -ENOMEM;
}

/* Read the temporary file back and compare its SHA-256 with want. */
static int verify_sha256(struct sftp_sink *s, const struct sink_done *d)
{
    struct hashing h = {.md = EVP_MD_CTX_new()};
    unsigned char md[EVP_MAX_MD_SIZE];
    struct sftpc_file *f = NULL;
    unsigned int len = 0;
    int r;

    if (h.md == NULL || EVP_DigestInit_ex(h.md, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(h.md);
        return -ENOMEM;
    }
    r = sftpc_open(s->c, s->tmp, SFTP_PF_READ, 0, &f);
    if (r == 0)
        r = sftpc_read(s->c, f, 0, (uint64_t)d->size, hash_cb, &h);
    if (f) {
        int rc = sftpc_close(s->c, f);

        r = r < 0 ? r : rc;
    }
    if (r == 0)
        EVP_DigestFinal_ex(h.md, md, &len);
    EVP_MD_CTX_free(h.md);
    if (r < 0)
        return io_fail(s, r, "reading back");
    if (len != 32 || memcmp(md, d->sha256, 32) != 0)
        return discard(s, sink_fail(&s->base, -EIO,
                                    "%s: %s: SHA-256 read back from the "
                                    "target differs from the source's; not "
                                    "renamed into place",
                                    s->peer, s->tmp));
    return 0;
}

/* Check the temporary file as target.verify says, the handle closed. */
static int verify(struct sftp_sink *s, const struct sink_done *d)
{
    struct sftp_attrs a;
    struct sftpc_file *f = s->f;
    char what[64 + PATH_MAX];
    int r, rs = 0;

    if (s->cf->verify_how != VERIFY_NONE) {
        /* CLOSE first on the wire, then the stat: one round trip. */
        r = sftpc_close_send(s->c, f);
        if (r == 0)
            rs = sftpc_stat(s->c, s->tmp, &a);
    }
    s->f = NULL;
    r = sftpc_close(s->c, f);
    if (r < 0)
        return io_fail(s, r, "closing");
    if (s->cf->verify_how == VERIFY_NONE)
        return 0;
    if (rs < 0) {
        snprintf(what, sizeof(what), "checking %s", s->tmp);
        return fail(s, rs, what);
    }
    if (!(a.flags & SFTP_ATTR_SIZE) || a.size != (uint64_t)d->size)
        return discard(s, sink_fail(&s->base, -EIO,
                                    "%s: %s holds %llu bytes where %lld were "
                                    "sent; not renamed into place",
                                    s->peer, s->tmp,
                                    (unsigned long long)a.size,
                                    (long long)d->size));
    if (s->cf->verify_how == VERIFY_SHA256 && d->sha256)
        return verify_sha256(s, d);
    return 0;
}

static int rename_into_place(struct sftp_sink *s)
{
    struct sftp_attrs a;
    int r = sftpc_rename(s->c, s->tmp, s->final);

    if (r == 0 || (sftpc_extensions(s->c) & SFTPC_EXT_POSIX_RENAME) ||
        (r != -EIO && r != -EEXIST))
        return r;
    /*
     * SFTP v3 rename does not replace an existing file.  Without
     * posix-rename@openssh.com the old file is removed first: for that
     * moment the name is absent (never partial).
     */
    if (sftpc_stat(s->c, s->final, &a) != 0 ||
        ((a.flags & SFTP_ATTR_PERMISSIONS) && (a.perm & 0170000) == 0040000))
        return r;
    r = sftpc_remove(s->c, s->final);
    return r < 0 ? r : sftpc_rename(s->c, s->tmp, s->final);
}

static int sftp_commit(struct sink *base, struct sink_done *d)
{
    struct sftp_sink *s = (struct sftp_sink *)base;
    char what[64 + 2 * PATH_MAX];
    int r;

    r = finish_file(s, d);
    if (r == 0)
        r = verify(s, d);
    if (r < 0)
        return r;
    r = rename_into_place(s);
    if (r < 0) {
        snprintf(what, sizeof(what), "renaming %s to %s", s->tmp, s->final);
        return fail(s, r, what);
    }
    reset_file(s);
    return 0;
}

/* --- ranges of a big file ------------------------------------------------ */

static int sftp_open_range(struct sink *base, const char *rel, int mode,
                           int64_t start)
{
    struct sftp_sink *s = (struct sftp_sink *)base;
    char what[64 + PATH_MAX];
    int r = start_file(s, rel);

    if (r < 0)
        return r;
    r = sftpc_open(s->c, s->tmp, SFTP_PF_WRITE | SFTP_PF_CREAT,
                   (uint32_t)(mode & 0777 ? mode & 0777 : 0644), &s->f);
    if (r < 0) {
        snprintf(what, sizeof(what), "opening %s", s->tmp);
        return fail(s, r, what);
    }
    s->pos = start;
    s->acked = start;
    return 0;
}

static int sftp_close_range(struct sink *base)
{
    struct sftp_sink *s = (struct sftp_sink *)base;
    int r;

    sftp_durable(base);
    r = sftpc_close(s->c, s->f);
    s->f = NULL;
    if (r < 0)
        return io_fail(s, r, "writing");
    s->acked = s->pos; /* every write answered, none refused */
    return 0;
}

/* --- many small files at once ------------------------------------------ */

/* Where one item of put_many() is. */
struct put {
    char *tmp, *final;
    struct sftpc_file *f;
    uint32_t open_id, stat_id, ren_id;
    int stage; /* PUT_* below: what was sent and not yet collected */
};

enum { PUT_NONE, PUT_OPENING, PUT_WRITING, PUT_RENAMING, PUT_DONE };

/* The item failed with r: its own words, from the sink's or client's. */
static int item_fail(struct sftp_sink *s, struct sink_item *it, int r,
                     const char *verb, const char *path)
{
    const char *why = s->base.err[0] ? s->base.err
                      : s->c         ? sftpc_error(s->c)
                                     : "";
    int n;

    /* Long paths and long server messages are cut, not overflowed. */
    if (s->base.err[0])
        n = snprintf(it->err, sizeof(it->err), "%s", why);
    else
        n = snprintf(it->err, sizeof(it->err), "%s: %s %s: %s", s->peer,
                     verb, path, why[0] ? why : strerror(-r));
    if (n >= (int)sizeof(it->err)) /* cut: end it visibly */
        memcpy(it->err + sizeof(it->err) - 4, "...", 4);
    it->result = r;
    s->base.err[0] = '\0';
    return r;
}

/* Whether r ends the session, and with it every item still open. */
static int session_error(int r)
{
    return sink_error_is_target(r) || r == -ECANCELED || r == -EPROTO ||
           r == -ENOMEM;
}

/* Open item i's temporary file now (a folder had to be made first). */
static int put_open_again(struct sftp_sink *s, struct sink_item *it,
                          struct put *p)
{
    int r = remote_mkdirs(s, p->tmp, path_dir_len(p->tmp));

    if (r == 0)
        r = sftpc_open(s->c, p->tmp,
                       SFTP_PF_WRITE | SFTP_PF_CREAT | SFTP_PF_TRUNC,
                       (uint32_t)(it->d.mode & 0777 ? it->d.mode & 0777 : 0644),
                       &p->f);
    return r;
}

/* Item's open answered: queue its bytes and what follows them. */
static int put_write(struct sftp_sink *s, struct sink_item *it, struct put *p)
{
    int r = sftpc_open_recv(s->c, p->open_id, &p->f);

    if (r == -ENOENT)
        r = put_open_again(s, it, p);
    if (r < 0)
        return item_fail(s, it, r, "opening", p->tmp);
    r = sftpc_write(s->c, p->f, 0, it->data, (size_t)it->d.size);
    if (r == 0)
        r = queue_finish(s, p->f, &it->d, 0);
    if (r == 0)
        r = sftpc_close_send(s->c, p->f);
    if (r == 0 && s->cf->verify_how != VERIFY_NONE)
        r = sftpc_stat_send(s->c, p->tmp, &p->stat_id);
    if (r < 0)
        return item_fail(s, it, r, "writing", p->tmp);
    p->stage = PUT_WRITING;
    return 0;
}

/* Item's writes, close and stat answered: check it, then rename it. */
static int put_rename(struct sftp_sink *s, struct sink_item *it, struct put *p)
{
    struct sftp_attrs a = {0};
    int rs = 0, r;

    if (s->cf->verify_how != VERIFY_NONE)
        rs = sftpc_stat_recv(s->c, p->stat_id, &a);
    r = sftpc_close(s->c, p->f);
    p->f = NULL;
    if (r < 0)
        return item_fail(s, it, r, "writing", p->tmp);
    if (rs < 0)
        return item_fail(s, it, rs, "checking", p->tmp);
    if (s->cf->verify_how != VERIFY_NONE &&
        (!(a.flags & SFTP_ATTR_SIZE) || a.size != (uint64_t)it->d.size)) {
        sftpc_remove(s->c, p->tmp);
        snprintf(it->err, sizeof(it->err),
                 "%s: %s holds %llu bytes where %lld were sent; not renamed "
                 "into place",
                 s->peer, p->tmp, (unsigned long long)a.size,
                 (long long)it->d.size);
        it->result = -EIO;
        return -EIO;
    }
    r = sftpc_rename_send(s->c, p->tmp, p->final, &p->ren_id);
    if (r < 0)
        return item_fail(s, it, r, "renaming", p->tmp);
    p->stage = PUT_RENAMING;
    return 0;
}

/* Item's rename answered. */
static int put_done(struct sftp_sink *s, struct sink_item *it, struct put *p)
{
    int r = sftpc_status_recv(s->c, p->ren_id, "rename");

    if (r < 0 && !session_error(r)) {
        /* Without posix-rename@openssh.com an older copy is in the way:
         * the one-file path removes it first. */
        s->tmp = p->tmp;
        s->final = p->final;
        r = rename_into_place(s);
        s->tmp = s->final = NULL;
    }
    if (r < 0)
        return item_fail(s, it, r, "renaming", p->tmp);
    it->result = 0;
    p->stage = PUT_DONE;
    return 0;
}

static int sftp_put_many(struct sink *base, struct sink_item *it, size_t n)
{
    struct sftp_sink *s = (struct sftp_sink *)base;
    struct put p[SINK_PUT_MAX] = {0};
    size_t i;
    int r = 0, dead = 0;

    if (s->cf->verify_how == VERIFY_SHA256 || n > SINK_PUT_MAX || !s->c)
        return -EOPNOTSUPP;
    base->err[0] = '\0';
    for (i = 0; i < n; i++) {
        it[i].result = -EINPROGRESS;
        it[i].err[0] = '\0';
        r = names_of(s->root, it[i].rel, &p[i].tmp, &p[i].final);
        if (r < 0) {
            snprintf(it[i].err, sizeof(it[i].err), "%s: invalid path",
                     it[i].rel);
            it[i].result = r;
            continue;
        }
        r = sftpc_open_send(
            s->c, p[i].tmp, SFTP_PF_WRITE | SFTP_PF_CREAT | SFTP_PF_TRUNC,
            (uint32_t)(it[i].d.mode & 0777 ? it[i].d.mode & 0777 : 0644),
            &p[i].open_id);
        if (r < 0)
            break;
        p[i].stage = PUT_OPENING;
    }
    /* Each stage for every item, so that the next requests of all of
     * them travel together. */
    for (i = 0; r >= 0 && i < n; i++)
        if (p[i].stage == PUT_OPENING)
            r = session_error(put_write(s, &it[i], &p[i])) ? it[i].result : 0;
    for (i = 0; r >= 0 && i < n; i++)
        if (p[i].stage == PUT_WRITING)
            r = session_error(put_rename(s, &it[i], &p[i])) ? it[i].result
                                                             : 0;
    for (i = 0; r >= 0 && i < n; i++)
        if (p[i].stage == PUT_RENAMING)
            r = session_error(put_done(s, &it[i], &p[i])) ? it[i].result : 0;
    if (r < 0) {
        dead = r;
        for (i = 0; i < n; i++)
            if (it[i].result == -EINPROGRESS)
                item_fail(s, &it[i], r, "sending", p[i].tmp ? p[i].tmp : "");
        sink_fail(base, r, "%s", it[0].err);
        for (i = 0; i < n; i++)
            if (it[i].result < 0 && it[i].err[0]) {
                sink_fail(base, r, "%s", it[i].err);
                break;
            }
        drop(s); /* frees what the client held of open files */
    }
    for (i = 0; i < n; i++) {
        if (!dead && p[i].f)
            sftpc_close(s->c, p[i].f);
        free(p[i].tmp);
        free(p[i].final);
    }
    return dead;
}

static void sftp_abort(struct sink *base)
{
    struct sftp_sink *s = (struct sftp_sink *)base;
    int r = 0;

    if (s->f && s->c) {
        r = sftpc_close(s->c, s->f);
        s->f = NULL;
    }
    /* A session in an unknown state is not used again. */
    if (r == -EPROTO || r == -ECONNRESET || r == -ETIMEDOUT ||
        r == -ECANCELED || (s->c && sftpc_dead(s->c)))
        drop(s);
    reset_file(s);
}

static int sftp_discard(struct sink *base, const char *rel, const char *token)
{
    struct sftp_sink *s = (struct sftp_sink *)base;
    char what[64 + PATH_MAX];
    int r = start_file(s, rel);

    (void)token; /* the temporary file is found by its name */
    if (r == 0)
        r = sftpc_remove(s->c, s->tmp);
    if (r == -ENOENT)
        r = 0;
    if (r < 0) {
        snprintf(what, sizeof(what), "removing %s", s->tmp ? s->tmp : rel);
        r = fail(s, r, what);
    }
    reset_file(s);
    return r;
}

static int sftp_exists(struct sink *base, const char *rel)
{
    struct sftp_sink *s = (struct sftp_sink *)base;
    struct sftp_attrs a;
    char what[64 + PATH_MAX];
    int r = start_file(s, rel);

    if (r == 0)
        r = sftpc_stat(s->c, s->final, &a);
    if (r == 0)
        r = 1;
    else if (r == -ENOENT)
        r = 0;
    else if (s->final) {
        snprintf(what, sizeof(what), "checking %s", s->final);
        r = fail(s, r, what);
    }
    reset_file(s);
    return r;
}

const struct sink_ops sink_sftp = {
    .name = "sftp",
    .conf = &sftp_conf,
    .create = sftp_create,
    .describe = sftp_describe,
    .destroy = sftp_destroy,
    .connect = sftp_connect,
    .disconnect = sftp_disconnect,
    .open = sftp_open,
    .write = sftp_write,
    .durable = sftp_durable,
    .commit = sftp_commit,
    .abort = sftp_abort,
    .discard = sftp_discard,
    .exists = sftp_exists,
    .put_many = sftp_put_many,
    .open_range = sftp_open_range,
    .close_range = sftp_close_range,
};
