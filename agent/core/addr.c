/*
 * Listen addresses (addr.h): parsed here once for every listener, so the
 * embedded SFTP server and the status endpoint read "ADDRESS:PORT" alike.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sftprelay/addr.h"

int addr_split(const char *listen, char *host, size_t hlen, unsigned *port)
{
    const char *colon = strrchr(listen, ':');
    const char *h = listen;
    size_t n;
    char *end;
    unsigned long p;

    if (colon == NULL)
        return -EINVAL;
    n = (size_t)(colon - listen);
    if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
        h++;
        n -= 2;
    }
    if (n == 0 || n >= hlen)
        return -EINVAL;
    memcpy(host, h, n);
    host[n] = '\0';
    errno = 0;
    p = strtoul(colon + 1, &end, 10);
    if (errno || *end || colon[1] < '0' || colon[1] > '9' || p > 65535)
        return -EINVAL;
    *port = (unsigned)p;
    return 0;
}

int addr_parse(const char *listen, struct sockaddr_storage *sa, socklen_t *len)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    char host[256], port[8];
    unsigned p;
    int rc;

    if (addr_split(listen, host, sizeof(host), &p) < 0)
        return -EINVAL;
    snprintf(port, sizeof(port), "%u", p);
    rc = getaddrinfo(host, port, &hints, &ai);
    if (rc != 0 || ai == NULL || ai->ai_addrlen > sizeof(*sa)) {
        if (ai)
            freeaddrinfo(ai);
        return rc == EAI_MEMORY ? -ENOMEM : -ENOENT;
    }
    memset(sa, 0, sizeof(*sa));
    memcpy(sa, ai->ai_addr, ai->ai_addrlen);
    *len = ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
}

int addr_is_loopback(const struct sockaddr_storage *sa)
{
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;

    if (sa->ss_family == AF_INET)
        return (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
    if (sa->ss_family != AF_INET6)
        return 0;
    if (IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr))
        return 1;
    return IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) &&
           s6->sin6_addr.s6_addr[12] == 127;
}

int addr_listen(const struct sockaddr_storage *sa, socklen_t len, int backlog,
                int *fd)
{
    int one = 1, s, r;

    *fd = -1;
    s = socket(sa->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -errno;
    if (setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(s, (const struct sockaddr *)sa, len) < 0 ||
        listen(s, backlog) < 0) {
        r = -errno;
        close(s);
        return r;
    }
    *fd = s;
    return 0;
}

void addr_name(int fd, char *buf, size_t len)
{
    struct sockaddr_storage sa;
    socklen_t sl = sizeof(sa);
    char shown[INET6_ADDRSTRLEN];

    if (getsockname(fd, (struct sockaddr *)&sa, &sl) < 0)
        return;
    if (sa.ss_family == AF_INET6) {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&sa)->sin6_addr, shown,
                  sizeof(shown));
        snprintf(buf, len, "[%s]:%d", shown,
                 ntohs(((struct sockaddr_in6 *)&sa)->sin6_port));
    } else {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&sa)->sin_addr, shown,
                  sizeof(shown));
        snprintf(buf, len, "%s:%d", shown,
                 ntohs(((struct sockaddr_in *)&sa)->sin_port));
    }
}
