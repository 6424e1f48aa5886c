/*
 * The local source: files under source.path, read with pread(2), opened
 * relative to the root without following any symbolic link on the way
 * (openat2; on kernels before 5.6 at least not in the last component).
 * The inotify watcher (watch.h) finds them.  After delivery it removes or
 * moves a file as source.after_delivery says, in folders opened the same
 * way, so never outside the root.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sftprelay/conf.h"
#include "sftprelay/path.h"
#include "sftprelay/source.h"

/* Its keys beyond the core's source.*: none yet (-K lists it). */
static const struct conf_table local_conf = {
    .section = "source",
    .title = "source local",
    .keys = NULL,
    .n_keys = 0,
};

struct local_source {
    struct source base;
    int root_fd;
};

struct source_file {
    int fd;
};

static int local_create(const char *root, const void *settings,
                        int cancel_fd, struct source **out)
{
    struct local_source *ls = calloc(1, sizeof(*ls));
    int r;

    if (ls == NULL)
        return -ENOMEM;
    ls->base.ops = &source_local;
    ls->root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (ls->root_fd < 0) {
        r = -errno;
        free(ls);
        return r;
    }
    *out = &ls->base;
    return 0;
}

static void local_destroy(struct source *s)
{
    struct local_source *ls = (struct local_source *)s;

    if (ls == NULL)
        return;
    close(ls->root_fd);
    free(ls);
}

static void fill_stat(const struct stat *st, struct source_stat *out)
{
    out->size = st->st_size;
    out->mtime_ns = source_mtime_ns(st);
    out->mode = st->st_mode & 07777;
}

/*
 * Open rel beneath the folder fd without following any symbolic link on
 * the way, the last component included (openat2: -ELOOP; -EXDEV for a
 * way out), or, on kernels before 5.6, at least not in the last
 * component.  An fd, or a negative errno.
 */
static int open_beneath(int fd, const char *rel, int flags)
{
    struct open_how how = {
        .flags = (uint64_t)(flags | O_CLOEXEC),
        .resolve =
            RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    };
    long r = syscall(SYS_openat2, fd, rel, &how, sizeof(how));

    if (r < 0 && errno == ENOSYS)
        r = openat(fd, rel, flags | O_NOFOLLOW | O_CLOEXEC);
    return r < 0 ? -errno : (int)r;
}

/* The folder dir (relative to fd; "." fd itself), for *at() calls. */
static int open_dir(int fd, const char *dir)
{
    return open_beneath(fd, dir, O_PATH | O_DIRECTORY);
}

/* The folder rel is in, opened with open_dir(): an fd, or a negative
 * errno. */
static int open_parent(int root_fd, const char *rel)
{
    size_t n = path_dir_len(rel);
    char *dir;
    int fd;

    if (n == 0)
        return open_dir(root_fd, ".");
    dir = strndup(rel, n);
    if (dir == NULL)
        return -ENOMEM;
    fd = open_dir(root_fd, dir);
    free(dir);
    return fd;
}

static int local_open(struct source *s, const char *rel,
                      struct source_file **out, struct source_stat *st)
{
    struct local_source *ls = (struct local_source *)s;
    struct source_file *f = NULL;
    struct stat sb;
    int fd, r;

    fd = open_beneath(ls->root_fd, rel, O_RDONLY | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return fd;
    if (fstat(fd, &sb) < 0) {
        r = -errno;
        goto out;
    }
    if (!S_ISREG(sb.st_mode)) {
        r = S_ISDIR(sb.st_mode) ? -EISDIR : -EINVAL;
        goto out;
    }
    f = malloc(sizeof(*f));
    if (f == NULL) {
        r = -ENOMEM;
        goto out;
    }
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    fill_stat(&sb, st);
    f->fd = fd;
    fd = -1; /* transferred */
    *out = f;
    r = 0;
out:
    if (fd >= 0)
        close(fd);
    return r;
}

static int local_read(struct source_file *f, void *buf, size_t len, int64_t off,
                      size_t *got)
{
    size_t done = 0;
    ssize_t n;

    while (done < len) {
        n = pread(f->fd, (char *)buf + done, len - done, off + (off_t)done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        done += (size_t)n;
    }
    *got = done;
    return 0;
}

static int local_stat(struct source_file *f, struct source_stat *st)
{
    struct stat sb;

    if (fstat(f->fd, &sb) < 0)
        return -errno;
    fill_stat(&sb, st);
    return 0;
}

static void local_close(struct source_file *f)
{
    if (f == NULL)
        return;
    close(f->fd);
    free(f);
}

/*
 * After delivery, a writer of the source folder may have swapped a folder
 * on rel's way for a link (to /etc, say): remove and move act relative
 * to folders opened with open_dir(), so that they fail with -ELOOP
 * instead of following it.
 */
static int local_remove(struct source *s, const char *rel)
{
    struct local_source *ls = (struct local_source *)s;
    int fd = open_parent(ls->root_fd, rel), r;

    if (fd < 0)
        return fd;
    r = unlinkat(fd, path_base(rel), 0) < 0 ? -errno : 0;
    close(fd);
    return r;
}

/* The folder dir, made with its missing parents: an fd from open_dir(),
 * or a negative errno. */
static int make_dirs(int root_fd, const char *dir)
{
    int fd = open_dir(root_fd, dir), up;

    if (fd != -ENOENT)
        return fd;
    up = open_parent(root_fd, dir);
    if (up == -ENOENT && path_dir_len(dir) > 0) {
        char *parent = strndup(dir, path_dir_len(dir));

        up = parent ? make_dirs(root_fd, parent) : -ENOMEM;
        free(parent);
    }
    if (up < 0)
        return up;
    if (mkdirat(up, path_base(dir), 0755) < 0 && errno != EEXIST)
        fd = -errno;
    else
        fd = open_dir(up, path_base(dir));
    close(up);
    return fd;
}

static int local_move(struct source *s, const char *rel, const char *dir)
{
    struct local_source *ls = (struct local_source *)s;
    char *to = NULL, *to_dir = NULL;
    int from_fd = -1, to_fd = -1;
    int r = path_join(dir, rel, &to);

    if (r < 0)
        goto out;
    to_dir = strndup(to, path_dir_len(to));
    if (to_dir == NULL) {
        r = -ENOMEM;
        goto out;
    }
    from_fd = open_parent(ls->root_fd, rel);
    to_fd = from_fd < 0 ? from_fd : make_dirs(ls->root_fd, to_dir);
    if (to_fd < 0) {
        r = to_fd;
        goto out;
    }
    if (renameat(from_fd, path_base(rel), to_fd, path_base(to)) < 0)
        r = -errno;
out:
    if (from_fd >= 0)
        close(from_fd);
    if (to_fd >= 0)
        close(to_fd);
    free(to);
    free(to_dir);
    return r;
}

const struct source_ops source_local = {
    .name = "local",
    .conf = &local_conf,
    .create = local_create,
    .destroy = local_destroy,
    .open = local_open,
    .read = local_read,
    .stat = local_stat,
    .close = local_close,
    .watched = 1,
    .remove = local_remove,
    .move = local_move,
};
