/*
 * The local source: files under source.path, read with pread(2), opened
 * relative to the root without following symbolic links in the last
 * component.  The inotify watcher (watch.h) finds them.  After delivery
 * it removes or moves a file as source.after_delivery says, relative to
 * the root, never leaving it.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
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
 * Open rel beneath the root without following any symbolic link on the
 * way (openat2), or, on kernels before 5.6, at least not in the last
 * component.
 */
static int open_beneath(int root_fd, const char *rel)
{
    struct open_how how = {
        .flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK,
        .resolve =
            RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    };
    long fd = syscall(SYS_openat2, root_fd, rel, &how, sizeof(how));

    if (fd < 0 && errno == ENOSYS)
        fd = openat(root_fd, rel, (int)how.flags);
    return (int)fd;
}

static int local_open(struct source *s, const char *rel,
                      struct source_file **out, struct source_stat *st)
{
    struct local_source *ls = (struct local_source *)s;
    struct source_file *f = NULL;
    struct stat sb;
    int fd, r;

    fd = open_beneath(ls->root_fd, rel);
    if (fd < 0)
        return -errno;
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

static int local_remove(struct source *s, const char *rel)
{
    struct local_source *ls = (struct local_source *)s;

    return unlinkat(ls->root_fd, rel, 0) < 0 ? -errno : 0;
}

/* Make the folder of path (len bytes of it) and its missing parents. */
static int mkdirs(int root_fd, const char *path, size_t len)
{
    char *dir = strndup(path, len);
    int r = 0;

    if (dir == NULL)
        return -ENOMEM;
    if (mkdirat(root_fd, dir, 0755) < 0)
        r = -errno;
    if (r == -ENOENT && path_dir_len(dir) > 0) {
        r = mkdirs(root_fd, dir, path_dir_len(dir));
        if (r == 0 && mkdirat(root_fd, dir, 0755) < 0)
            r = -errno;
    }
    free(dir);
    return r == -EEXIST ? 0 : r;
}

static int local_move(struct source *s, const char *rel, const char *dir)
{
    struct local_source *ls = (struct local_source *)s;
    char *to = NULL;
    int r = path_join(dir, rel, &to);

    if (r == 0)
        r = mkdirs(ls->root_fd, to, path_dir_len(to));
    if (r == 0 && renameat(ls->root_fd, rel, ls->root_fd, to) < 0)
        r = -errno;
    free(to);
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
