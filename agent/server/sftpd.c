/*
 * SFTP version 3 (draft-ietf-secsh-filexfer-02) as real clients use it,
 * with OpenSSH's extensions.  One request, one handler in handlers[];
 * errno values become SFTP status codes in status_of() and nowhere else.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "sftprelay/log.h"
#include "sftprelay/sftpd.h"
#include "sftprelay/sftpwire.h"
#include "sftprelay/vpath.h"

#define READDIR_BATCH 100

/* A request being read: a cursor over its payload, and its id. */
struct req {
    struct sftp_cur c;
    uint32_t id;
};

struct handle {
    int used;
    uint32_t gen;
    int fd;
    DIR *dir;
    char *rel;
    int writing;
    int64_t written; /* bytes written through this handle */
};

struct sftpd {
    struct sftpd_opts o;
    struct sftpd_cb cb;
    int inited;
    struct sftp_buf in;
    struct sftp_buf out;
    struct handle h[SFTPD_MAX_HANDLES];
    uint32_t gen;
};

struct handler {
    int type;
    const char *name;
    int (*fn)(struct sftpd *s, struct req *r);
};

/* A file's ATTRS, from its stat. */
static void put_stat(struct sftp_buf *b, const struct stat *st)
{
    struct sftp_attrs a = {
        .flags = SFTP_ATTR_SIZE | SFTP_ATTR_UIDGID | SFTP_ATTR_PERMISSIONS |
                 SFTP_ATTR_ACMODTIME,
        .size = (uint64_t)st->st_size,
        .uid = st->st_uid,
        .gid = st->st_gid,
        .perm = st->st_mode,
        .atime = (uint32_t)st->st_atime,
        .mtime = (uint32_t)st->st_mtime,
    };

    sftp_put_attrs(b, &a);
}

/* --- replies ---------------------------------------------------------- */

/* errno to SFTP v3 status: the one place this is decided. */
static uint32_t status_of(int err)
{
    switch (err) {
    case 0:
        return SFTP_FX_OK;
    case ENOENT:
    case ENOTDIR:
    case ELOOP:
    case ENAMETOOLONG:
        return SFTP_FX_NO_SUCH_FILE;
    case EACCES:
    case EPERM:
    case EROFS:
    case EXDEV:
        return SFTP_FX_PERMISSION_DENIED;
    case EOPNOTSUPP:
    case ENOSYS:
        return SFTP_FX_OP_UNSUPPORTED;
    case EPROTO:
    case EBADMSG:
        return SFTP_FX_BAD_MESSAGE;
    default:
        return SFTP_FX_FAILURE;
    }
}

/* Start a reply packet; finish with reply_send(). */
static void reply_begin(struct sftpd *s, uint8_t type, uint32_t id)
{
    s->out.len = 0;
    sftp_put_u32(&s->out, 0); /* length, filled in later */
    sftp_put_u8(&s->out, type);
    sftp_put_u32(&s->out, id);
}

static int reply_send(struct sftpd *s)
{
    uint32_t n = (uint32_t)(s->out.len - 4);
    const struct sftpd_fault *f = s->o.fault;

    if (s->out.p == NULL)
        return -ENOMEM;
    s->out.p[0] = (uint8_t)(n >> 24);
    s->out.p[1] = (uint8_t)(n >> 16);
    s->out.p[2] = (uint8_t)(n >> 8);
    s->out.p[3] = (uint8_t)n;
    if (f && f->stall_ms > 0) {
        struct timespec ts = {f->stall_ms / 1000,
                              (long)(f->stall_ms % 1000) * 1000000};

        nanosleep(&ts, NULL);
    }
    return s->cb.send(s->cb.arg, s->out.p, s->out.len);
}

static int send_status(struct sftpd *s, uint32_t id, uint32_t code,
                       const char *msg)
{
    reply_begin(s, SFTP_STATUS, id);
    sftp_put_u32(&s->out, code);
    sftp_put_str(&s->out, msg);
    sftp_put_str(&s->out, "");
    return reply_send(s);
}

/* A STATUS reply for err (0 = OK), with msg or errno's text. */
static int status(struct sftpd *s, uint32_t id, int err, const char *msg)
{
    return send_status(s, id, status_of(err),
                       msg        ? msg
                       : err == 0 ? "Success"
                                  : strerror(err));
}

static int status_r(struct sftpd *s, struct req *r, int neg_err)
{
    return status(s, r->id, -neg_err, NULL);
}

/* --- handles ---------------------------------------------------------- */

static int handle_new(struct sftpd *s, int fd, DIR *dir, const char *rel,
                      int writing)
{
    int i;

    for (i = 0; i < SFTPD_MAX_HANDLES; i++) {
        struct handle *h = &s->h[i];

        if (h->used)
            continue;
        h->rel = strdup(rel);
        if (h->rel == NULL)
            return -ENOMEM;
        h->used = 1;
        h->gen = ++s->gen;
        h->fd = fd;
        h->dir = dir;
        h->writing = writing;
        return i;
    }
    return -EMFILE;
}

static int reply_handle(struct sftpd *s, uint32_t id, int i)
{
    uint8_t hb[8];
    uint32_t g = s->h[i].gen;

    hb[0] = (uint8_t)(i >> 24);
    hb[1] = (uint8_t)(i >> 16);
    hb[2] = (uint8_t)(i >> 8);
    hb[3] = (uint8_t)i;
    hb[4] = (uint8_t)(g >> 24);
    hb[5] = (uint8_t)(g >> 16);
    hb[6] = (uint8_t)(g >> 8);
    hb[7] = (uint8_t)g;
    reply_begin(s, SFTP_HANDLE, id);
    sftp_put_bytes(&s->out, hb, sizeof(hb));
    return reply_send(s);
}

/* The handle a request names, or NULL. */
static struct handle *get_handle(struct sftpd *s, struct req *r)
{
    size_t len;
    const uint8_t *p = sftp_get_bytes(&r->c, &len);
    uint32_t i, g;

    if (p == NULL || len != 8)
        return NULL;
    i = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
        p[3];
    g = (uint32_t)p[4] << 24 | (uint32_t)p[5] << 16 | (uint32_t)p[6] << 8 |
        p[7];
    if (i >= SFTPD_MAX_HANDLES || !s->h[i].used || s->h[i].gen != g)
        return NULL;
    return &s->h[i];
}

/* Close a handle; report a completed upload if it was written. */
static int handle_close(struct sftpd *s, struct handle *h, int complete)
{
    struct stat st;
    int r = 0, have = 0;

    if (h->dir) {
        closedir(h->dir);
    } else {
        have = h->writing && fstat(h->fd, &st) == 0 && S_ISREG(st.st_mode);
        /* Before the close, which a watcher on the folder will see. */
        if (have && !complete && s->cb.abandoned)
            s->cb.abandoned(s->cb.arg, h->rel, &st);
        if (close(h->fd) < 0)
            r = -errno;
    }
    if (have && complete && r == 0 && s->cb.uploaded)
        s->cb.uploaded(s->cb.arg, h->rel, &st, h->written);
    free(h->rel);
    memset(h, 0, sizeof(*h));
    h->fd = -1;
    return r;
}

/* --- paths ------------------------------------------------------------ */

/* The request's next string as a normalised path; *rel is malloc'd. */
static int get_path(struct req *r, char **rel)
{
    size_t len;
    const uint8_t *p = sftp_get_bytes(&r->c, &len);

    *rel = NULL;
    if (p == NULL)
        return -EBADMSG;
    return vpath_normalize((const char *)p, len, rel);
}

/* --- handlers ----------------------------------------------------------- */

/* The open(2) flags for SFTP pflags pf, with O_NONBLOCK for the open. */
static int open_flags(uint32_t pf)
{
    int flags = O_NONBLOCK;

    if ((pf & SFTP_PF_READ) && (pf & SFTP_PF_WRITE))
        flags |= O_RDWR;
    else if (pf & SFTP_PF_WRITE)
        flags |= O_WRONLY;
    else
        flags |= O_RDONLY;
    if (pf & SFTP_PF_APPEND)
        flags |= O_APPEND;
    if (pf & SFTP_PF_CREAT)
        flags |= O_CREAT;
    if (pf & SFTP_PF_TRUNC)
        flags |= O_TRUNC;
    if (pf & SFTP_PF_EXCL)
        flags |= O_EXCL;
    return flags;
}

/*
 * Open rel under the root with flags (O_NONBLOCK, so a FIFO cannot block
 * the open) and mode, and keep it only if it is a regular file, made
 * blocking again.  *out is the caller's to close.  Returns 0, -EISDIR for
 * a folder, -EPERM for anything else that is not a regular file, or a
 * negative errno.
 */
static int open_regular(struct sftpd *s, const char *rel, int flags,
                        mode_t mode, int *out)
{
    struct stat st;
    int fd, r;

    *out = -1;
    fd = vpath_open(s->o.root_fd, rel, flags, mode);
    if (fd < 0) {
        r = fd;
        goto out;
    }
    if (fstat(fd, &st) < 0) {
        r = -errno;
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        /* Folders are for opendir; devices and FIFOs are never served. */
        r = S_ISDIR(st.st_mode) ? -EISDIR : -EPERM;
        goto out;
    }
    /* Back to blocking I/O for a regular file. */
    fcntl(fd, F_SETFL, flags & O_APPEND);
    *out = fd;
    fd = -1; /* transferred */
    r = 0;
out:
    if (fd >= 0)
        close(fd);
    return r;
}

static int do_open(struct sftpd *s, struct req *r)
{
    char *rel = NULL;
    struct sftp_attrs a;
    uint32_t pf;
    int fd = -1, ret;
    mode_t mode = 0666;

    ret = get_path(r, &rel);
    pf = sftp_get_u32(&r->c);
    sftp_get_attrs(&r->c, &a);
    if (r->c.bad)
        ret = -EBADMSG;
    if (ret < 0)
        goto out;
    if (a.flags & SFTP_ATTR_PERMISSIONS)
        mode = a.perm & 07777;
    ret = open_regular(s, rel, open_flags(pf), mode, &fd);
    if (ret < 0)
        goto out;
    /* ret becomes the handle's index */
    ret = handle_new(s, fd, NULL, rel, (pf & SFTP_PF_WRITE) != 0);
    if (ret >= 0)
        fd = -1; /* transferred to the handle */
out:
    if (fd >= 0)
        close(fd);
    free(rel);
    return ret < 0 ? status_r(s, r, ret) : reply_handle(s, r->id, ret);
}

static int do_close(struct sftpd *s, struct req *r)
{
    struct handle *h = get_handle(s, r);

    if (h == NULL)
        return status(s, r->id, EBADF, "No such handle");
    return status_r(s, r, handle_close(s, h, 1));
}

static int do_read(struct sftpd *s, struct req *r)
{
    struct handle *h = get_handle(s, r);
    uint64_t off = sftp_get_u64(&r->c);
    uint32_t len = sftp_get_u32(&r->c);
    ssize_t n;

    if (r->c.bad)
        return status(s, r->id, EBADMSG, NULL);
    if (h == NULL || h->dir)
        return status(s, r->id, EBADF, "No such handle");
    if (len > SFTPD_MAX_IO)
        len = SFTPD_MAX_IO;
    reply_begin(s, SFTP_DATA, r->id);
    sftp_put_u32(&s->out, 0);
    if (sftp_buf_reserve(&s->out, len) < 0)
        return status(s, r->id, ENOMEM, NULL);
    do {
        n = pread(h->fd, s->out.p + s->out.len, len, (off_t)off);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return status(s, r->id, errno, NULL);
    if (n == 0)
        return send_status(s, r->id, SFTP_FX_EOF, "End of file");
    s->out.p[9] = (uint8_t)(n >> 24);
    s->out.p[10] = (uint8_t)(n >> 16);
    s->out.p[11] = (uint8_t)(n >> 8);
    s->out.p[12] = (uint8_t)n;
    s->out.len += (size_t)n;
    return reply_send(s);
}

static int do_write(struct sftpd *s, struct req *r)
{
    struct handle *h = get_handle(s, r);
    uint64_t off = sftp_get_u64(&r->c);
    size_t len, done = 0;
    const uint8_t *p = sftp_get_bytes(&r->c, &len);
    const struct sftpd_fault *f = s->o.fault;
    int64_t total;
    ssize_t n;

    if (r->c.bad)
        return status(s, r->id, EBADMSG, NULL);
    if (h == NULL || h->dir)
        return status(s, r->id, EBADF, "No such handle");
    if (!h->writing)
        return status(s, r->id, EACCES, "Handle not open for writing");
    if (f && f->write_errno &&
        (f->write_errno_from <= 0 || off + len > (uint64_t)f->write_errno_from))
        return status(s, r->id, f->write_errno, NULL);
    if (f && f->max_write > 0 && len > f->max_write) {
        log_info("%s: fault injection: a write of %zu bytes refused (max %zu)",
                 s->o.peer, len, f->max_write);
        return status(s, r->id, EINVAL, "Write larger than the server takes");
    }
    while (done < len) {
        n = pwrite(h->fd, p + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return status(s, r->id, errno, NULL);
        done += (size_t)n;
    }
    h->written += (int64_t)len;
    total =
        s->cb.count_written ? s->cb.count_written(s->cb.arg, (int64_t)len) : 0;
    if (f && f->drop_after >= 0 && total > f->drop_after) {
        log_info("%s: fault injection: dropping the connection", s->o.peer);
        return -ECONNABORTED;
    }
    return status(s, r->id, 0, NULL);
}

/* stat or lstat of a normalised path. */
static int stat_rel(struct sftpd *s, const char *rel, int follow,
                    struct stat *st)
{
    const char *base;
    int fd, ret = 0;

    if (follow || rel[0] == '\0') {
        fd = vpath_open(s->o.root_fd, rel, O_PATH, 0);
        if (fd < 0)
            return fd;
        if (fstat(fd, st) < 0)
            ret = -errno;
        close(fd);
        return ret;
    }
    fd = vpath_parent(s->o.root_fd, rel, &base);
    if (fd < 0)
        return fd;
    if (fstatat(fd, base, st, AT_SYMLINK_NOFOLLOW) < 0)
        ret = -errno;
    close(fd);
    return ret;
}

static int reply_attrs(struct sftpd *s, uint32_t id, const struct stat *st)
{
    reply_begin(s, SFTP_ATTRS, id);
    put_stat(&s->out, st);
    return reply_send(s);
}

static int do_stat_common(struct sftpd *s, struct req *r, int follow)
{
    char *rel = NULL;
    struct stat st;
    int ret = get_path(r, &rel);

    if (ret == 0)
        ret = stat_rel(s, rel, follow, &st);
    free(rel);
    return ret < 0 ? status_r(s, r, ret) : reply_attrs(s, r->id, &st);
}

static int do_stat(struct sftpd *s, struct req *r)
{
    return do_stat_common(s, r, 1);
}

static int do_lstat(struct sftpd *s, struct req *r)
{
    return do_stat_common(s, r, 0);
}

static int do_fstat(struct sftpd *s, struct req *r)
{
    struct handle *h = get_handle(s, r);
    struct stat st;
    int ret;

    if (h == NULL)
        return status(s, r->id, EBADF, "No such handle");
    ret = h->dir ? fstat(dirfd(h->dir), &st) : fstat(h->fd, &st);
    return ret < 0 ? status(s, r->id, errno, NULL) : reply_attrs(s, r->id, &st);
}

/* Apply attributes to an open descriptor. */
static int apply_fd(int fd, const struct sftp_attrs *a)
{
    struct timespec ts[2];

    if (a->flags & SFTP_ATTR_UIDGID)
        return -EOPNOTSUPP;
    if ((a->flags & SFTP_ATTR_SIZE) && ftruncate(fd, (off_t)a->size) < 0)
        return -errno;
    if ((a->flags & SFTP_ATTR_PERMISSIONS) && fchmod(fd, a->perm & 07777) < 0)
        return -errno;
    if (a->flags & SFTP_ATTR_ACMODTIME) {
        ts[0].tv_sec = a->atime;
        ts[1].tv_sec = a->mtime;
        ts[0].tv_nsec = ts[1].tv_nsec = 0;
        if (futimens(fd, ts) < 0)
            return -errno;
    }
    return 0;
}

static int do_setstat(struct sftpd *s, struct req *r)
{
    char *rel = NULL;
    struct sftp_attrs a;
    struct stat st;
    int fd = -1, ret = get_path(r, &rel);

    sftp_get_attrs(&r->c, &a);
    if (ret == 0 && r->c.bad)
        ret = -EBADMSG;
    if (ret == 0)
        ret = stat_rel(s, rel, 1, &st);
    if (ret == 0) {
        /* Only regular files are opened for writing; folders read-only. */
        fd = vpath_open(s->o.root_fd, rel,
                        S_ISREG(st.st_mode) && (a.flags & SFTP_ATTR_SIZE)
                            ? O_WRONLY | O_NONBLOCK
                            : O_RDONLY | O_NONBLOCK,
                        0);
        ret = fd < 0 ? fd : apply_fd(fd, &a);
    }
    if (fd >= 0)
        close(fd);
    free(rel);
    return status_r(s, r, ret);
}

static int do_fsetstat(struct sftpd *s, struct req *r)
{
    struct handle *h = get_handle(s, r);
    struct sftp_attrs a;

    sftp_get_attrs(&r->c, &a);
    if (r->c.bad)
        return status(s, r->id, EBADMSG, NULL);
    if (h == NULL || h->dir)
        return status(s, r->id, EBADF, "No such handle");
    return status_r(s, r, apply_fd(h->fd, &a));
}

static int do_opendir(struct sftpd *s, struct req *r)
{
    char *rel = NULL;
    DIR *d = NULL;
    int fd = -1, i, ret = get_path(r, &rel);

    if (ret == 0) {
        fd = vpath_open(s->o.root_fd, rel, O_RDONLY | O_DIRECTORY, 0);
        ret = fd < 0 ? fd : 0;
    }
    if (ret == 0) {
        d = fdopendir(fd);
        if (d == NULL)
            ret = -errno;
        else
            fd = -1; /* owned by d */
    }
    if (ret == 0) {
        i = handle_new(s, -1, d, rel, 0);
        if (i >= 0) {
            free(rel);
            return reply_handle(s, r->id, i);
        }
        ret = i;
    }
    if (d)
        closedir(d);
    if (fd >= 0)
        close(fd);
    free(rel);
    return status_r(s, r, ret);
}

/* "ls -l" style line, as OpenSSH's sftp-server writes it. */
static void longname(char *buf, size_t len, const char *name,
                     const struct stat *st)
{
    char mode[11] = "----------", when[16], user[16], group[16];
    struct passwd pw, *pwp = NULL;
    struct group gr, *grp = NULL;
    char pwbuf[1024], grbuf[1024];
    struct tm tm;
    time_t mt = st->st_mtime;
    int i;

    mode[0] = S_ISDIR(st->st_mode) ? 'd' : S_ISLNK(st->st_mode) ? 'l' : '-';
    for (i = 0; i < 9; i++)
        if (st->st_mode & (0400 >> i))
            mode[1 + i] = "rwxrwxrwx"[i];
    localtime_r(&mt, &tm);
    if (time(NULL) - mt < 15552000)
        strftime(when, sizeof(when), "%b %e %H:%M", &tm);
    else
        strftime(when, sizeof(when), "%b %e  %Y", &tm);
    getpwuid_r(st->st_uid, &pw, pwbuf, sizeof(pwbuf), &pwp);
    getgrgid_r(st->st_gid, &gr, grbuf, sizeof(grbuf), &grp);
    if (pwp)
        snprintf(user, sizeof(user), "%s", pwp->pw_name);
    else
        snprintf(user, sizeof(user), "%u", (unsigned)st->st_uid);
    if (grp)
        snprintf(group, sizeof(group), "%s", grp->gr_name);
    else
        snprintf(group, sizeof(group), "%u", (unsigned)st->st_gid);
    snprintf(buf, len, "%s %4u %-8s %-8s %8llu %s %s", mode,
             (unsigned)st->st_nlink, user, group,
             (unsigned long long)st->st_size, when, name);
}

static int do_readdir(struct sftpd *s, struct req *r)
{
    struct handle *h = get_handle(s, r);
    struct dirent *de;
    struct stat st;
    char line[PATH_MAX + 128];
    size_t count_at;
    uint32_t n = 0;

    if (h == NULL || h->dir == NULL)
        return status(s, r->id, EBADF, "No such handle");
    reply_begin(s, SFTP_NAME, r->id);
    count_at = s->out.len;
    sftp_put_u32(&s->out, 0);
    while (n < READDIR_BATCH) {
        errno = 0;
        de = readdir(h->dir);
        if (de == NULL)
            break;
        if (fstatat(dirfd(h->dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        longname(line, sizeof(line), de->d_name, &st);
        sftp_put_str(&s->out, de->d_name);
        sftp_put_str(&s->out, line);
        put_stat(&s->out, &st);
        n++;
    }
    if (n == 0)
        return errno ? status(s, r->id, errno, NULL)
                     : send_status(s, r->id, SFTP_FX_EOF, "End of file");
    s->out.p[count_at] = (uint8_t)(n >> 24);
    s->out.p[count_at + 1] = (uint8_t)(n >> 16);
    s->out.p[count_at + 2] = (uint8_t)(n >> 8);
    s->out.p[count_at + 3] = (uint8_t)n;
    return reply_send(s);
}

/* Run fn(parent fd, base) for the normalised path in the request. */
static int at_parent(struct sftpd *s, const char *rel,
                     int (*fn)(int dirfd, const char *base, void *arg),
                     void *arg)
{
    const char *base;
    int fd = vpath_parent(s->o.root_fd, rel, &base), ret;

    if (fd < 0)
        return fd;
    ret = fn(fd, base, arg);
    close(fd);
    return ret;
}

static int rm_file(int dirfd, const char *base, void *arg)
{
    struct stat st;

    if (fstatat(dirfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISDIR(st.st_mode))
        return -EISDIR;
    return unlinkat(dirfd, base, 0) < 0 ? -errno : 0;
}

static int rm_dir(int dirfd, const char *base, void *arg)
{
    return unlinkat(dirfd, base, AT_REMOVEDIR) < 0 ? -errno : 0;
}

static int mk_dir(int dirfd, const char *base, void *arg)
{
    return mkdirat(dirfd, base, *(mode_t *)arg) < 0 ? -errno : 0;
}

static int do_remove(struct sftpd *s, struct req *r)
{
    char *rel = NULL;
    int ret = get_path(r, &rel);

    if (ret == 0)
        ret = at_parent(s, rel, rm_file, NULL);
    free(rel);
    return status_r(s, r, ret);
}

static int do_rmdir(struct sftpd *s, struct req *r)
{
    char *rel = NULL;
    int ret = get_path(r, &rel);

    if (ret == 0)
        ret = at_parent(s, rel, rm_dir, NULL);
    free(rel);
    return status_r(s, r, ret);
}

static int do_mkdir(struct sftpd *s, struct req *r)
{
    char *rel = NULL;
    struct sftp_attrs a;
    mode_t mode = 0777;
    int ret = get_path(r, &rel);

    sftp_get_attrs(&r->c, &a);
    if (ret == 0 && r->c.bad)
        ret = -EBADMSG;
    if (a.flags & SFTP_ATTR_PERMISSIONS)
        mode = a.perm & 07777;
    if (ret == 0)
        ret = at_parent(s, rel, mk_dir, &mode);
    free(rel);
    return status_r(s, r, ret);
}

static int reply_name(struct sftpd *s, uint32_t id, const char *name)
{
    reply_begin(s, SFTP_NAME, id);
    sftp_put_u32(&s->out, 1);
    sftp_put_str(&s->out, name);
    sftp_put_str(&s->out, name);
    sftp_put_u32(&s->out, 0); /* no attributes */
    return reply_send(s);
}

static int do_realpath(struct sftpd *s, struct req *r)
{
    char *rel = NULL, *shown = NULL;
    int ret = get_path(r, &rel);

    if (ret == 0)
        ret = vpath_display(rel, &shown);
    if (ret == 0)
        ret = reply_name(s, r->id, shown);
    else
        ret = status_r(s, r, ret);
    free(shown);
    free(rel);
    return ret;
}

/*
 * Rename from to to.  replace: posix-rename semantics; otherwise SFTP v3's,
 * which refuse to replace an existing file.
 */
static int rename_rel(struct sftpd *s, const char *from, const char *to,
                      int replace)
{
    const char *fb, *tb;
    int ffd = -1, tfd = -1, ret;
    struct stat st;

    ffd = vpath_parent(s->o.root_fd, from, &fb);
    if (ffd < 0)
        return ffd;
    tfd = vpath_parent(s->o.root_fd, to, &tb);
    if (tfd < 0) {
        close(ffd);
        return tfd;
    }
    ret = renameat2(ffd, fb, tfd, tb, replace ? 0 : RENAME_NOREPLACE);
    if (ret < 0 && errno == EINVAL && !replace) {
        /* The filesystem cannot refuse for us. */
        if (fstatat(tfd, tb, &st, AT_SYMLINK_NOFOLLOW) == 0)
            errno = EEXIST;
        else
            ret = renameat(ffd, fb, tfd, tb);
    }
    ret = ret < 0 ? -errno : 0;
    if (ret == 0 && s->cb.uploaded &&
        fstatat(tfd, tb, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
        s->cb.uploaded(s->cb.arg, to, &st, 0);
    close(ffd);
    close(tfd);
    return ret;
}

static int do_rename(struct sftpd *s, struct req *r)
{
    char *from = NULL, *to = NULL;
    int ret = get_path(r, &from);

    if (ret == 0)
        ret = get_path(r, &to);
    if (ret == 0)
        ret = rename_rel(s, from, to, 0);
    free(from);
    free(to);
    return status_r(s, r, ret);
}

static int read_link(int dirfd, const char *base, void *arg)
{
    char *out = arg;
    ssize_t n = readlinkat(dirfd, base, out, PATH_MAX - 1);

    if (n < 0)
        return -errno;
    out[n] = '\0';
    return 0;
}

static int do_readlink(struct sftpd *s, struct req *r)
{
    char *rel = NULL, target[PATH_MAX];
    int ret = get_path(r, &rel);

    if (ret == 0)
        ret = at_parent(s, rel, read_link, target);
    free(rel);
    return ret < 0 ? status_r(s, r, ret) : reply_name(s, r->id, target);
}

static int do_symlink(struct sftpd *s, struct req *r)
{
    return status(s, r->id, EPERM, "Symbolic links are not allowed");
}

/* --- extensions ----------------------------------------------------------- */

static int reply_statvfs(struct sftpd *s, uint32_t id,
                         const struct statvfs *vin)
{
    struct statvfs copy = *vin, *v = &copy;

    /* A full disk, as a test asked for, looks full from here too. */
    if (s->o.fault && s->o.fault->write_errno == ENOSPC)
        v->f_bfree = v->f_bavail = 0;
    reply_begin(s, SFTP_EXTENDED_REPLY, id);
    sftp_put_u64(&s->out, v->f_bsize);
    sftp_put_u64(&s->out, v->f_frsize);
    sftp_put_u64(&s->out, v->f_blocks);
    sftp_put_u64(&s->out, v->f_bfree);
    sftp_put_u64(&s->out, v->f_bavail);
    sftp_put_u64(&s->out, v->f_files);
    sftp_put_u64(&s->out, v->f_ffree);
    sftp_put_u64(&s->out, v->f_favail);
    sftp_put_u64(&s->out, v->f_fsid);
    sftp_put_u64(&s->out,
            (v->f_flag & ST_RDONLY ? 1 : 0) | (v->f_flag & ST_NOSUID ? 2 : 0));
    sftp_put_u64(&s->out, v->f_namemax);
    return reply_send(s);
}

static int ext_posix_rename(struct sftpd *s, struct req *r)
{
    char *from = NULL, *to = NULL;
    int ret = get_path(r, &from);

    if (ret == 0)
        ret = get_path(r, &to);
    if (ret == 0)
        ret = rename_rel(s, from, to, 1);
    free(from);
    free(to);
    return status_r(s, r, ret);
}

static int ext_fsync(struct sftpd *s, struct req *r)
{
    struct handle *h = get_handle(s, r);

    if (h == NULL || h->dir)
        return status(s, r->id, EBADF, "No such handle");
    return status_r(s, r, fsync(h->fd) < 0 ? -errno : 0);
}

static int ext_statvfs(struct sftpd *s, struct req *r)
{
    char *rel = NULL;
    struct statvfs v;
    int fd = -1, ret = get_path(r, &rel);

    if (ret == 0) {
        fd = vpath_open(s->o.root_fd, rel, O_PATH, 0);
        ret = fd < 0 ? fd : fstatvfs(fd, &v) < 0 ? -errno : 0;
    }
    if (fd >= 0)
        close(fd);
    free(rel);
    return ret < 0 ? status_r(s, r, ret) : reply_statvfs(s, r->id, &v);
}

static int ext_fstatvfs(struct sftpd *s, struct req *r)
{
    struct handle *h = get_handle(s, r);
    struct statvfs v;

    if (h == NULL)
        return status(s, r->id, EBADF, "No such handle");
    if (fstatvfs(h->dir ? dirfd(h->dir) : h->fd, &v) < 0)
        return status(s, r->id, errno, NULL);
    return reply_statvfs(s, r->id, &v);
}

static int ext_limits(struct sftpd *s, struct req *r)
{
    reply_begin(s, SFTP_EXTENDED_REPLY, r->id);
    sftp_put_u64(&s->out, SFTPD_MAX_PACKET);
    sftp_put_u64(&s->out, SFTPD_MAX_IO);
    sftp_put_u64(&s->out, SFTPD_MAX_IO);
    sftp_put_u64(&s->out, SFTPD_MAX_HANDLES);
    return reply_send(s);
}

static const struct {
    const char *name;
    const char *version;
    int (*fn)(struct sftpd *s, struct req *r);
} extensions[] = {
    {"posix-rename@openssh.com", "1", ext_posix_rename},
    {"statvfs@openssh.com", "2", ext_statvfs},
    {"fstatvfs@openssh.com", "2", ext_fstatvfs},
    {"fsync@openssh.com", "1", ext_fsync},
    {"limits@openssh.com", "1", ext_limits},
};

#define N_EXTENSIONS (sizeof(extensions) / sizeof(extensions[0]))

/* Whether extension i is hidden by fault injection (no_limits). */
static int ext_hidden(const struct sftpd *s, size_t i)
{
    return s->o.fault && s->o.fault->no_limits &&
           extensions[i].fn == ext_limits;
}

static int do_extended(struct sftpd *s, struct req *r)
{
    size_t len, i;
    const uint8_t *name = sftp_get_bytes(&r->c, &len);

    if (name == NULL)
        return status(s, r->id, EBADMSG, NULL);
    for (i = 0; i < N_EXTENSIONS; i++)
        if (strlen(extensions[i].name) == len &&
            memcmp(extensions[i].name, name, len) == 0 && !ext_hidden(s, i))
            return extensions[i].fn(s, r);
    return status(s, r->id, EOPNOTSUPP, "Unsupported extension");
}

static const struct handler handlers[] = {
    {SFTP_OPEN, "open", do_open},
    {SFTP_CLOSE, "close", do_close},
    {SFTP_READ, "read", do_read},
    {SFTP_WRITE, "write", do_write},
    {SFTP_LSTAT, "lstat", do_lstat},
    {SFTP_FSTAT, "fstat", do_fstat},
    {SFTP_SETSTAT, "setstat", do_setstat},
    {SFTP_FSETSTAT, "fsetstat", do_fsetstat},
    {SFTP_OPENDIR, "opendir", do_opendir},
    {SFTP_READDIR, "readdir", do_readdir},
    {SFTP_REMOVE, "remove", do_remove},
    {SFTP_MKDIR, "mkdir", do_mkdir},
    {SFTP_RMDIR, "rmdir", do_rmdir},
    {SFTP_REALPATH, "realpath", do_realpath},
    {SFTP_STAT, "stat", do_stat},
    {SFTP_RENAME, "rename", do_rename},
    {SFTP_READLINK, "readlink", do_readlink},
    {SFTP_SYMLINK, "symlink", do_symlink},
    {SFTP_EXTENDED, "extended", do_extended},
};

#define N_HANDLERS (sizeof(handlers) / sizeof(handlers[0]))

/* --- the engine ------------------------------------------------------------
 */

static int do_init(struct sftpd *s, struct req *r)
{
    uint32_t version = sftp_get_u32(&r->c);
    size_t i;

    if (r->c.bad)
        return -EPROTO;
    log_debug("%s: SFTP init, client version %u", s->o.peer, (unsigned)version);
    s->inited = 1;
    s->out.len = 0;
    sftp_put_u32(&s->out, 0);
    sftp_put_u8(&s->out, SFTP_VERSION);
    sftp_put_u32(&s->out, 3);
    for (i = 0; i < N_EXTENSIONS; i++) {
        if (ext_hidden(s, i))
            continue;
        sftp_put_str(&s->out, extensions[i].name);
        sftp_put_str(&s->out, extensions[i].version);
    }
    return reply_send(s);
}

static int dispatch(struct sftpd *s, uint8_t type, const uint8_t *p, size_t len)
{
    struct req r = {.c = {.p = p, .left = len}};
    size_t i;

    if (type == SFTP_INIT) {
        if (s->inited) {
            log_warn("%s: second SFTP init; ending the session", s->o.peer);
            return -EPROTO;
        }
        return do_init(s, &r);
    }
    if (!s->inited) {
        log_warn("%s: SFTP request %u before init; ending the session",
                 s->o.peer, (unsigned)type);
        return -EPROTO;
    }
    r.id = sftp_get_u32(&r.c);
    if (r.c.bad) {
        log_warn("%s: SFTP request %u without an id; ending the session",
                 s->o.peer, (unsigned)type);
        return -EPROTO;
    }
    for (i = 0; i < N_HANDLERS; i++)
        if (handlers[i].type == type)
            return handlers[i].fn(s, &r);
    return status(s, r.id, EOPNOTSUPP, "Unsupported request");
}

int sftpd_input(struct sftpd *s, const void *data, size_t len)
{
    size_t off = 0, plen;
    int r;

    if (sftp_buf_reserve(&s->in, len) < 0)
        return -ENOMEM;
    memcpy(s->in.p + s->in.len, data, len);
    s->in.len += len;
    for (;;) {
        if (s->in.len - off < 4)
            break;
        plen = (size_t)s->in.p[off] << 24 | (size_t)s->in.p[off + 1] << 16 |
               (size_t)s->in.p[off + 2] << 8 | s->in.p[off + 3];
        if (plen < 1 || plen > SFTPD_MAX_PACKET) {
            log_warn("%s: SFTP request of %zu bytes (limit %d); ending the "
                     "session",
                     s->o.peer, plen, SFTPD_MAX_PACKET);
            return -EPROTO;
        }
        if (s->in.len - off < 4 + plen)
            break;
        r = dispatch(s, s->in.p[off + 4], s->in.p + off + 5, plen - 1);
        off += 4 + plen;
        if (r < 0)
            return r;
    }
    memmove(s->in.p, s->in.p + off, s->in.len - off);
    s->in.len -= off;
    return 0;
}

int sftpd_new(const struct sftpd_opts *o, const struct sftpd_cb *cb,
              struct sftpd **out)
{
    struct sftpd *s = calloc(1, sizeof(*s));
    int i;

    *out = NULL;
    if (s == NULL)
        return -ENOMEM;
    s->o = *o;
    s->cb = *cb;
    for (i = 0; i < SFTPD_MAX_HANDLES; i++)
        s->h[i].fd = -1;
    *out = s;
    return 0;
}

void sftpd_free(struct sftpd *s)
{
    int i;

    if (s == NULL)
        return;
    for (i = 0; i < SFTPD_MAX_HANDLES; i++)
        if (s->h[i].used)
            handle_close(s, &s->h[i], 0);
    free(s->in.p);
    free(s->out.p);
    free(s);
}
