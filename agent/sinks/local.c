/*
 * The local sink: delivers into a folder on this host (target.path), e.g.
 * a mounted share.  Same contract as the SFTP sink: a temporary name
 * beside the final one, fsync, rename into place, fsync of the folder.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sftprelay/conf.h"
#include "sftprelay/path.h"
#include "sftprelay/sink.h"

/* Its settings, read with local_conf. */
struct local_settings {
    char *path;
};

extern const struct sink_ops sink_local;

struct local_sink {
    struct sink base;
    char *root;
    int fd;
    char *tmp;
    char *final;
    int64_t pos;
};

static int local_check(void *settings, const struct conf_scope *s, char *err,
                       size_t errlen)
{
    const struct local_settings *set = settings;

    if (set->path[0] != '/')
        return conf_fail(s, conf_scope_line(s, "path"), "path", err, errlen,
                         "\"%s\" is not an absolute path", set->path);
    return 0;
}

static const struct conf_key local_keys[] = {
    CONF_KEY_STR(struct local_settings, path, "path", NULL, CONF_REQUIRED,
                 "folder on this host the source tree is replicated under"),
};

static const struct conf_table local_conf = {
    .section = "target",
    .title = "sink local",
    .keys = local_keys,
    .n_keys = CONF_N_KEYS(local_keys),
    .size = sizeof(struct local_settings),
    .check = local_check,
};

static int local_create(const void *settings, int cancel_fd, struct sink **out)
{
    const struct local_settings *set = settings;
    struct local_sink *ls;

    *out = NULL;
    ls = calloc(1, sizeof(*ls));
    if (ls == NULL)
        return -ENOMEM;
    ls->base.ops = &sink_local;
    ls->fd = -1;
    ls->root = strdup(set->path);
    if (ls->root == NULL) {
        free(ls);
        return -ENOMEM;
    }
    *out = &ls->base;
    return 0;
}

static void local_describe(const void *settings, char *buf, size_t len)
{
    const struct local_settings *set = settings;

    snprintf(buf, len, "%s", set->path);
}

static void reset_file(struct local_sink *ls)
{
    if (ls->fd >= 0)
        close(ls->fd);
    ls->fd = -1;
    free(ls->tmp);
    free(ls->final);
    ls->tmp = ls->final = NULL;
    ls->pos = 0;
}

static void local_destroy(struct sink *s)
{
    struct local_sink *ls = (struct local_sink *)s;

    reset_file(ls);
    free(ls->root);
    free(ls);
}

static int local_connect(struct sink *s)
{
    struct local_sink *ls = (struct local_sink *)s;
    struct stat st;

    if (stat(ls->root, &st) < 0)
        return sink_fail(s, -ENOTCONN, "target.path %s: %s", ls->root,
                         strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return sink_fail(s, -ENOTCONN, "target.path %s: not a folder",
                         ls->root);
    return 0;
}

static void local_disconnect(struct sink *s)
{
}

/* Make every missing folder of path's directory part. */
static int mkdirs(char *path)
{
    char *s;
    struct stat st;

    for (s = strchr(path + 1, '/'); s; s = strchr(s + 1, '/')) {
        *s = '\0';
        if (mkdir(path, 0755) < 0 && errno != EEXIST) {
            int r = -errno;

            *s = '/';
            return r;
        }
        if (errno == EEXIST && (stat(path, &st) < 0 || !S_ISDIR(st.st_mode))) {
            *s = '/';
            return -ENOTDIR;
        }
        *s = '/';
    }
    return 0;
}

/* ls->tmp and ls->final for rel. */
static int names(struct local_sink *ls, const char *rel)
{
    char *tmprel = NULL;
    int r;

    reset_file(ls);
    r = path_tmp_name(rel, &tmprel);
    if (r < 0)
        return sink_fail(&ls->base, r, "%s: invalid path", rel);
    r = path_join(ls->root, tmprel, &ls->tmp);
    if (r == 0)
        r = path_join(ls->root, rel, &ls->final);
    free(tmprel);
    return r < 0 ? sink_fail(&ls->base, r, "out of memory") : 0;
}

static int local_open(struct sink *s, struct sink_file *f)
{
    struct local_sink *ls = (struct local_sink *)s;
    int64_t *offset = &f->offset;
    int mode = f->mode;
    struct stat st;
    int flags = O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW;
    int r;

    r = names(ls, f->rel);
    if (r < 0)
        return r;
    r = mkdirs(ls->tmp);
    if (r < 0)
        return sink_fail(s, r, "%s: creating its folder: %s", ls->final,
                         strerror(-r));
    if (*offset == 0)
        flags |= O_TRUNC;
    ls->fd = open(ls->tmp, flags, mode & 0777 ? mode & 0777 : 0644);
    if (ls->fd < 0)
        return sink_fail(s, -errno, "%s: %s", ls->tmp, strerror(errno));
    if (fstat(ls->fd, &st) < 0)
        return sink_fail(s, -errno, "%s: %s", ls->tmp, strerror(errno));
    if (st.st_size < *offset)
        *offset = st.st_size;
    ls->pos = *offset;
    return 0;
}

static int local_write(struct sink *s, const void *buf, size_t len)
{
    struct local_sink *ls = (struct local_sink *)s;
    size_t done = 0;
    ssize_t n;

    while (done < len) {
        n = pwrite(ls->fd, (const char *)buf + done, len - done,
                   ls->pos + (off_t)done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return sink_fail(s, -errno, "%s: %s", ls->tmp, strerror(errno));
        done += (size_t)n;
    }
    ls->pos += (int64_t)len;
    return 0;
}

static int sync_dir_of(const char *path)
{
    char *dir = strdup(path);
    int fd, r = 0;

    if (dir == NULL)
        return -ENOMEM;
    dir[path_dir_len(dir)] = '\0';
    fd = open(dir[0] ? dir : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) < 0)
        r = -errno;
    if (fd >= 0)
        close(fd);
    free(dir);
    return r;
}

static int local_commit(struct sink *s, struct sink_done *d)
{
    struct local_sink *ls = (struct local_sink *)s;
    struct timespec t[2] = {
        {.tv_nsec = UTIME_OMIT},
        {.tv_sec = d->mtime_ns / 1000000000, .tv_nsec = d->mtime_ns % 1000000000},
    };
    int r;

    /* An earlier, longer upload of the same name may have left a tail.
     * The source's mode and modification time are kept. */
    if (ftruncate(ls->fd, ls->pos) < 0 ||
        (d->mode & 07777 && fchmod(ls->fd, (mode_t)(d->mode & 07777)) < 0) ||
        futimens(ls->fd, t) < 0 || fsync(ls->fd) < 0)
        return sink_fail(s, -errno, "%s: %s", ls->tmp, strerror(errno));
    r = close(ls->fd);
    ls->fd = -1;
    if (r < 0)
        return sink_fail(s, -errno, "%s: %s", ls->tmp, strerror(errno));
    if (rename(ls->tmp, ls->final) < 0)
        return sink_fail(s, -errno, "renaming %s to %s: %s", ls->tmp, ls->final,
                         strerror(errno));
    r = sync_dir_of(ls->final);
    if (r < 0)
        return sink_fail(s, r, "%s: syncing its folder: %s", ls->final,
                         strerror(-r));
    reset_file(ls);
    return 0;
}

static void local_abort(struct sink *s)
{
    reset_file((struct local_sink *)s);
}

static int local_discard(struct sink *s, const char *rel, const char *token)
{
    struct local_sink *ls = (struct local_sink *)s;
    int r = names(ls, rel);

    (void)token;
    if (r == 0 && unlink(ls->tmp) < 0 && errno != ENOENT)
        r = sink_fail(s, -errno, "%s: %s", ls->tmp, strerror(errno));
    reset_file(ls);
    return r;
}

static int local_exists(struct sink *s, const char *rel)
{
    struct local_sink *ls = (struct local_sink *)s;
    struct stat st;
    int r = names(ls, rel);

    if (r == 0 && lstat(ls->final, &st) == 0)
        r = 1;
    else if (r == 0 && errno != ENOENT && errno != ENOTDIR)
        r = sink_fail(s, -errno, "%s: %s", ls->final, strerror(errno));
    reset_file(ls);
    return r;
}

const struct sink_ops sink_local = {
    .name = "local",
    .conf = &local_conf,
    .create = local_create,
    .describe = local_describe,
    .destroy = local_destroy,
    .connect = local_connect,
    .disconnect = local_disconnect,
    .open = local_open,
    .write = local_write,
    .commit = local_commit,
    .abort = local_abort,
    .discard = local_discard,
    .exists = local_exists,
};
