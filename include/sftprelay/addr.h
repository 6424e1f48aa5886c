/*
 * Listen addresses as sftprelay.conf(5) writes them: "ADDRESS:PORT", an
 * IPv6 address in brackets ("[::1]:9469"), ADDRESS numeric or a name.
 * Used by the embedded SFTP server and the status endpoint.
 */
#ifndef SFTPRELAY_ADDR_H
#define SFTPRELAY_ADDR_H

#include <stddef.h>
#include <sys/socket.h>

/*
 * Split listen into host (brackets removed, at most hlen - 1 bytes) and
 * port (0 to 65535).  Returns 0, or -EINVAL when listen is not
 * ADDRESS:PORT.
 */
int addr_split(const char *listen, char *host, size_t hlen, unsigned *port);

/*
 * Resolve listen (addr_split()'s form) into *sa, of *len bytes: the first
 * address getaddrinfo() gives for it.  Returns 0, -EINVAL (not
 * ADDRESS:PORT) or -ENOENT (a name that does not resolve).
 */
int addr_parse(const char *listen, struct sockaddr_storage *sa, socklen_t *len);

/* Whether sa is a loopback address: 127.0.0.0/8, ::1, ::ffff:127.0.0.0/104. */
int addr_is_loopback(const struct sockaddr_storage *sa);

/*
 * A TCP socket listening on sa (SO_REUSEADDR, close-on-exec), into *fd.
 * Returns 0 or a negative errno (-EADDRINUSE, -EACCES, ...).
 */
int addr_listen(const struct sockaddr_storage *sa, socklen_t len, int backlog,
                int *fd);

/*
 * The address fd is bound to as "ADDRESS:PORT" or "[ADDRESS]:PORT" into
 * buf; buf is left as it is if the socket cannot tell.
 */
void addr_name(int fd, char *buf, size_t len);

#endif
