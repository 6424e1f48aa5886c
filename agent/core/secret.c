/*
 * Secrets read from files.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sftprelay/secret.h"

int secret_read(const char *file, char *buf, size_t len)
{
    ssize_t n;
    int fd = open(file, O_RDONLY | O_CLOEXEC), r;

    if (fd < 0)
        return -errno;
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

int secret_read_for(const char *key, const char *file, char *buf, size_t len,
                    char *why, size_t whylen)
{
    int r = secret_read(file, buf, len);

    if (r < 0)
        snprintf(why, whylen, "%s %s: %s", key, file, strerror(-r));
    return r;
}
