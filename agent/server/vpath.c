/*
 * Client paths inside a root: lexical normalisation, then openat2 with
 * RESOLVE_BENEATH so the kernel refuses any escape through a link.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sftprelay/vpath.h"

int vpath_normalize(const char *path, size_t len, char **out)
{
    char *buf;
    size_t i = 0, n = 0, clen;
    const char *c;

    *out = NULL;
    if (len >= PATH_MAX || memchr(path, '\0', len) != NULL)
        return -EINVAL;
    buf = malloc(len + 1);
    if (buf == NULL)
        return -ENOMEM;
    while (i < len) {
        while (i < len && path[i] == '/')
            i++;
        c = path + i;
        while (i < len && path[i] != '/')
            i++;
        clen = (size_t)(path + i - c);
        if (clen == 0 || (clen == 1 && c[0] == '.'))
            continue;
        if (clen == 2 && c[0] == '.' && c[1] == '.') {
            if (n == 0) {
                free(buf);
                return -EACCES;
            }
            /* drop the last component */
            while (n > 0 && buf[n - 1] != '/')
                n--;
            if (n > 0)
                n--;
            continue;
        }
        if (n > 0)
            buf[n++] = '/';
        memcpy(buf + n, c, clen);
        n += clen;
    }
    buf[n] = '\0';
    *out = buf;
    return 0;
}

int vpath_display(const char *rel, char **out)
{
    size_t n = strlen(rel);

    *out = malloc(n + 2);
    if (*out == NULL)
        return -ENOMEM;
    (*out)[0] = '/';
    memcpy(*out + 1, rel, n + 1);
    return 0;
}

static int beneath(int root_fd, const char *rel, int flags, mode_t mode)
{
    /* openat2 refuses O_NOCTTY beside O_PATH. */
    struct open_how how = {
        .flags = (unsigned)flags | O_CLOEXEC | (flags & O_PATH ? 0 : O_NOCTTY),
        .mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0,
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
    };
    long fd;

    fd = syscall(SYS_openat2, root_fd, rel[0] ? rel : ".", &how, sizeof(how));
    if (fd < 0)
        return errno == EXDEV ? -EACCES : -errno;
    return (int)fd;
}

int vpath_open(int root_fd, const char *rel, int flags, mode_t mode)
{
    return beneath(root_fd, rel, flags, mode);
}

int vpath_parent(int root_fd, const char *rel, const char **base)
{
    const char *slash = strrchr(rel, '/');
    char *dir;
    int fd;

    if (rel[0] == '\0')
        return -EACCES;
    if (slash == NULL) {
        *base = rel;
        return beneath(root_fd, "", O_PATH | O_DIRECTORY, 0);
    }
    dir = strndup(rel, (size_t)(slash - rel));
    if (dir == NULL)
        return -ENOMEM;
    fd = beneath(root_fd, dir, O_PATH | O_DIRECTORY, 0);
    free(dir);
    *base = slash + 1;
    return fd;
}
