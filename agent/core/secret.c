/*
 * Secrets read from files.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sftprelay/secret.h"

/* The first line of the file open on fd into buf; closes fd. */
static int read_line(int fd, char *buf, size_t len)
{
    ssize_t n;
    int r;

    do {
        n = read(fd, buf, len - 1);
    } while (n < 0 && errno == EINTR);
    r = n < 0 ? -errno : 0;
    close(fd);
    if (r < 0)
        return r;
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    return 0;
}

int secret_read(const char *file, char *buf, size_t len)
{
    int fd = open(file, O_RDONLY | O_CLOEXEC);

    return fd < 0 ? -errno : read_line(fd, buf, len);
}

/* file opened into *fd; with private, refused if others may read or write
 * it (-EPERM). */
static int open_checked(const char *file, int private, int *fd)
{
    struct stat st;
    int r;

    *fd = open(file, O_RDONLY | O_CLOEXEC);
    if (*fd < 0)
        return -errno;
    if (fstat(*fd, &st) < 0)
        r = -errno;
    else if (private && (st.st_mode & (S_IROTH | S_IWOTH)))
        r = -EPERM;
    else
        return 0;
    close(*fd);
    *fd = -1;
    return r;
}

int secret_read_private(const char *file, char *buf, size_t len)
{
    int fd, r = open_checked(file, 1, &fd);

    if (r == 0)
        r = read_line(fd, buf, len); /* closes fd */
    return r == 0 && buf[0] == '\0' ? -ENODATA : r;
}

int secret_load(const char *file, int private, char **out)
{
    char *buf = NULL;
    size_t n = 0;
    ssize_t got;
    int fd, r = open_checked(file, private, &fd);

    *out = NULL;
    if (r < 0)
        return r;
    buf = malloc(SECRET_FILE_MAX + 1);
    r = buf ? 0 : -ENOMEM;
    while (r == 0 && n < SECRET_FILE_MAX) {
        got = read(fd, buf + n, SECRET_FILE_MAX - n);
        if (got < 0 && errno != EINTR)
            r = -errno;
        else if (got == 0)
            break;
        else if (got > 0)
            n += (size_t)got;
    }
    close(fd);
    if (r == 0 && n == SECRET_FILE_MAX)
        r = -EFBIG;
    if (r == 0 && n == 0)
        r = -ENODATA;
    if (r < 0) {
        if (buf)
            explicit_bzero(buf, n);
        free(buf);
        return r;
    }
    buf[n] = '\0';
    *out = buf;
    return 0;
}

int secret_equal(const char *secret, const char *given)
{
    size_t n = strlen(secret), m = strlen(given), i;
    unsigned char d = n != m;

    for (i = 0; i < m; i++)
        d |= (unsigned char)(given[i] ^ secret[i % n]);
    return d == 0;
}

int secret_read_for(const char *key, const char *file, char *buf, size_t len,
                    char *why, size_t whylen)
{
    int r = secret_read(file, buf, len);

    if (r < 0)
        snprintf(why, whylen, "%s %s: %s", key, file, strerror(-r));
    return r;
}
