/*
 * What both SSH backends share: their table, the TCP connection, the
 * cipher-list syntax and the wait on a socket.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sftprelay/sshchan.h"

/* By target.transport; the first is the default. */
static const struct ssh_backend *const backends[] = {
    &ssh_libssh,
    &ssh_libssh2,
};

#define N_BACKENDS (sizeof(backends) / sizeof(backends[0]))

const struct ssh_backend *ssh_backend_find(const char *name)
{
    size_t i;

    for (i = 0; i < N_BACKENDS; i++)
        if (strcmp(backends[i]->name, name) == 0)
            return backends[i];
    return NULL;
}

const char *ssh_backend_names(void)
{
    static char buf[128];
    size_t i, n = 0;

    if (buf[0])
        return buf;
    for (i = 0; i < N_BACKENDS && n < sizeof(buf); i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s", i ? ", " : "",
                              backends[i]->name);
    return buf;
}

const char *ssh_backend_default(void)
{
    return backends[0]->name;
}

void ssh_peer_name(const char *host, int port, char *buf, size_t len)
{
    int v6 = strchr(host, ':') != NULL;

    snprintf(buf, len, "%s%s%s:%d", v6 ? "[" : "", host, v6 ? "]" : "", port);
}

int ssh_poll(int fd, short events, int cancel_fd, int timeout_ms)
{
    struct pollfd p[2] = {
        {.fd = fd, .events = events},
        {.fd = cancel_fd, .events = POLLIN},
    };
    int n;

    do {
        n = poll(p, cancel_fd >= 0 ? 2 : 1, timeout_ms);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    if (cancel_fd >= 0 && p[1].revents)
        return -ECANCELED;
    if (n == 0)
        return -ETIMEDOUT;
    return 1;
}

/* Connect fd to ai within the timeout: 0 or a negative errno. */
static int connect_one(const struct ssh_opts *o, const struct addrinfo *ai,
                       int fd)
{
    socklen_t len = sizeof(int);
    int r, err = 0;

    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
        return 0;
    if (errno != EINPROGRESS)
        return -errno;
    r = ssh_poll(fd, POLLOUT, o->cancel_fd, o->timeout_ms);
    if (r < 0)
        return r;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return -errno;
    return -err;
}

/* Split "[user@]host[:port]" (host may be "[v6]") into its parts. */
static int parse_jump(const char *spec, char *user, char *host, char *port,
                      size_t len)
{
    const char *at = strrchr(spec, '@'), *h = at ? at + 1 : spec, *colon;
    size_t hl;

    user[0] = port[0] = '\0';
    if (at && (size_t)(at - spec) < len)
        snprintf(user, len, "%.*s", (int)(at - spec), spec);
    if (h[0] == '[') {
        colon = strchr(h, ']');
        if (colon == NULL)
            return -EINVAL;
        hl = (size_t)(colon - h - 1);
        h++;
        colon = colon[1] == ':' ? colon + 1 : NULL;
    } else {
        colon = strchr(h, ':');
        hl = colon ? (size_t)(colon - h) : strlen(h);
    }
    if (hl == 0 || hl >= len || (colon && strlen(colon + 1) >= len))
        return -EINVAL;
    snprintf(host, len, "%.*s", (int)hl, h);
    if (colon)
        snprintf(port, len, "%s", colon + 1);
    return 0;
}

/* In the child: become "ssh -W TARGET" to the jump host on fd. */
static void exec_jump(const struct ssh_opts *o, int fd, const char *user,
                      const char *host, const char *port)
{
    char target[300], kh[PATH_MAX + 32], ct[64];
    const char *argv[32];
    sigset_t none;
    int n = 0;

    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (dup2(fd, 0) < 0 || dup2(fd, 1) < 0)
        _exit(127);
    snprintf(target, sizeof(target), "%s%s%s:%d",
             strchr(o->host, ':') ? "[" : "", o->host,
             strchr(o->host, ':') ? "]" : "", o->port);
    snprintf(kh, sizeof(kh), "UserKnownHostsFile=%s", o->known_hosts);
    snprintf(ct, sizeof(ct), "ConnectTimeout=%d",
             o->timeout_ms > 1000 ? o->timeout_ms / 1000 : 1);
    argv[n++] = "ssh";
    argv[n++] = "-W";
    argv[n++] = target;
    argv[n++] = "-F";
    argv[n++] = "none"; /* no ~/.ssh/config: the agent's settings only */
    argv[n++] = "-o";
    argv[n++] = "BatchMode=yes";
    argv[n++] = "-o";
    argv[n++] = "StrictHostKeyChecking=yes";
    argv[n++] = "-o";
    argv[n++] = kh;
    argv[n++] = "-o";
    argv[n++] = "GlobalKnownHostsFile=/dev/null";
    argv[n++] = "-o";
    argv[n++] = ct;
    if (o->identity && o->identity[0]) {
        argv[n++] = "-i";
        argv[n++] = o->identity;
    }
    if (user[0]) {
        argv[n++] = "-l";
        argv[n++] = user;
    }
    if (port[0]) {
        argv[n++] = "-p";
        argv[n++] = port;
    }
    argv[n++] = host;
    argv[n] = NULL;
    execvp("ssh", (char *const *)argv);
    _exit(127);
}

/*
 * A socket pair to "ssh -W" through the jump host.  The child is forked
 * twice so that init, not the agent, reaps it: it exits when the agent
 * closes its end.
 */
static int jump_connect(const struct ssh_opts *o, char *err, size_t errlen)
{
    char user[256], host[256], port[256], peer[300];
    int sv[2], st;
    pid_t pid;

    ssh_peer_name(o->host, o->port, peer, sizeof(peer));
    if (parse_jump(o->proxy_jump, user, host, port, sizeof(host)) < 0) {
        snprintf(err, errlen,
                 "%s: target.proxy_jump \"%s\" is not [user@]host[:port]",
                 peer, o->proxy_jump);
        return -EINVAL;
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    pid = fork();
    if (pid == 0) {
        if (fork() != 0)
            _exit(0);
        close(sv[0]);
        exec_jump(o, sv[1], user, host, port);
    }
    close(sv[1]);
    if (pid < 0) {
        close(sv[0]);
        snprintf(err, errlen, "%s: starting ssh for target.proxy_jump: %s",
                 peer, strerror(errno));
        return -EAGAIN;
    }
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
    return sv[0];
}

int ssh_tcp_connect(const struct ssh_opts *o, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL, *ai;
    char port[16], peer[300];
    int fd = -1, r = -EHOSTUNREACH, gai, one = 1;

    if (o->proxy_jump && o->proxy_jump[0])
        return jump_connect(o, err, errlen);
    ssh_peer_name(o->host, o->port, peer, sizeof(peer));
    snprintf(port, sizeof(port), "%d", o->port);
    gai = getaddrinfo(o->host, port, &hints, &res);
    if (gai != 0) {
        snprintf(err, errlen, "%s: resolving: %s", peer, gai_strerror(gai));
        return -EHOSTUNREACH;
    }
    for (ai = res; ai && r != -ECANCELED; ai = ai->ai_next) {
        fd = socket(ai->ai_family,
                    ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd < 0) {
            r = -errno;
            continue;
        }
        r = connect_one(o, ai, fd);
        if (r == 0)
            break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        snprintf(err, errlen, "%s: connect: %s", peer, strerror(-r));
        return r;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    return fd;
}

/* Whether the comma-separated list has name. */
static int has(const char *list, const char *name)
{
    size_t n = strlen(name);
    const char *p = list;

    while ((p = strstr(p, name)) != NULL) {
        if ((p == list || p[-1] == ',') && (p[n] == ',' || p[n] == '\0'))
            return 1;
        p += n;
    }
    return 0;
}

/* Append name to out (a list of at most len bytes) unless it has it. */
static int append(char *out, size_t len, const char *name)
{
    size_t n = strlen(out);

    if (name[0] == '\0' || has(out, name))
        return 0;
    if (n + strlen(name) + 2 > len)
        return -ENAMETOOLONG;
    snprintf(out + n, len - n, "%s%s", n ? "," : "", name);
    return 0;
}

/* Every name of list, in order, into out, except those in skip. */
static int append_all(char *out, size_t len, const char *list,
                      const char *skip)
{
    char *copy = strdup(list), *save = NULL, *tok;
    int r = 0;

    if (copy == NULL)
        return -ENOMEM;
    for (tok = strtok_r(copy, ",", &save); tok && r == 0;
         tok = strtok_r(NULL, ",", &save))
        if (skip == NULL || !has(skip, tok))
            r = append(out, len, tok);
    free(copy);
    return r;
}

int ssh_cipher_list(const char *spec, const char *def, char *out, size_t len)
{
    int r;

    out[0] = '\0';
    if (spec == NULL || spec[0] == '\0')
        r = append_all(out, len, def, NULL);
    else if (spec[0] == '+') {
        r = append_all(out, len, def, NULL);
        if (r == 0)
            r = append_all(out, len, spec + 1, NULL);
    } else if (spec[0] == '-')
        r = append_all(out, len, def, spec + 1);
    else if (spec[0] == '^') {
        r = append_all(out, len, spec + 1, NULL);
        if (r == 0)
            r = append_all(out, len, def, NULL);
    } else
        r = append_all(out, len, spec, NULL);
    if (r < 0)
        return r;
    return out[0] ? 0 : -EINVAL;
}
