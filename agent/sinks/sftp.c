/*
 * The SFTP sink, on libssh2 in non-blocking mode.
 *
 * Every libssh2 call runs in a loop: on LIBSSH2_ERROR_EAGAIN, again()
 * polls the socket in the directions libssh2_session_block_directions()
 * reports, and the cancel descriptor, for at most target.timeout.  Large
 * writes are handed to libssh2_sftp_write() whole: it splits them into
 * packets and keeps many in flight, returning as acknowledgements arrive.
 *
 * The host key must be in target.known_hosts; an unknown or changed key
 * ends the connection before anything is sent.  Secrets are read from
 * their files just before use and wiped after; only file names are logged.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <libssh2.h>
#include <limits.h>
#include <libssh2_sftp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sftprelay/conf.h"
#include "sftprelay/log.h"
#include "sftprelay/path.h"
#include "sftprelay/secret.h"
#include "sftprelay/sink.h"

/*
 * Every block libssh2 allocates for a session is linked here, so that what
 * it leaves behind when a connection dies is freed with the session:
 * libssh2 1.10 keeps a file handle (and its queued writes) whose close
 * could not be sent.
 */
struct block {
    struct block *prev, *next;
};

/* Its settings, read with sftp_conf. */
struct sftp_settings {
    char *host;
    int port;
    char *user;
    char *identity;
    char *passphrase_file;
    char *password_file;
    char *known_hosts;
    char *path;
    int timeout; /* seconds without progress before a peer is dropped */
};

struct sftp_sink {
    struct sink base;
    struct block arena;             /* list head */
    const struct sftp_settings *cf; /* borrowed: outlives the sink */
    int cancel_fd;
    int timeout_ms;
    int wait_err; /* why the last wait gave up: -ETIMEDOUT, -ECANCELED */
    char peer[300];
    int sock;
    LIBSSH2_SESSION *ssh;
    LIBSSH2_KNOWNHOSTS *kh; /* while connecting; uses the session's memory */
    LIBSSH2_SFTP *sftp;
    LIBSSH2_SFTP_HANDLE *h;
    char *root; /* target.path, made absolute */
    char *tmp;
    char *final;
    int64_t pos;
    int tail; /* the temporary file may be longer than what we wrote */
};

#define S(f, k, d, doc) CONF_KEY_STR(struct sftp_settings, f, k, d, 0, doc)
static const struct conf_key sftp_keys[] = {
    S(host, "host", NULL, "SFTP server name or address"),
    CONF_KEY_INT(struct sftp_settings, port, "port", 22, 1, 65535,
                 "SFTP server port"),
    S(user, "user", NULL, "login name (default: the user running the agent)"),
    S(identity, "identity", "", "private key file"),
    S(passphrase_file, "passphrase_file", "",
      "file holding the identity's passphrase"),
    S(password_file, "password_file", "", "file holding the login password"),
    S(known_hosts, "known_hosts", "/etc/sftprelay/known_hosts",
      "known_hosts file the target's host key must be in"),
    S(path, "path", ".",
      "folder on the target the source tree is replicated under"),
    CONF_KEY_INT(struct sftp_settings, timeout, "timeout", 60, 1, 86400,
                 "seconds without progress before the connection is dropped"),
};
#undef S

/* target.host is required; target.user defaults to the agent's user. */
static int sftp_check(void *settings, const struct conf_scope *s, char *err,
                      size_t errlen)
{
    struct sftp_settings *set = settings;
    struct passwd *pw;

    if (set->host == NULL || set->host[0] == '\0')
        return conf_fail(s, conf_line(s->c, "target.type"), "host", err, errlen,
                         "required when target.type is \"sftp\"");
    if (set->user)
        return 0;
    pw = getpwuid(geteuid());
    set->user = strdup(pw ? pw->pw_name : "root");
    return set->user ? 0 : -ENOMEM;
}

static const struct conf_table sftp_conf = {
    .section = "target",
    .title = "sink sftp",
    .keys = sftp_keys,
    .n_keys = CONF_N_KEYS(sftp_keys),
    .size = sizeof(struct sftp_settings),
    .check = sftp_check,
};

static void link_block(struct block *head, struct block *b)
{
    b->prev = head;
    b->next = head->next;
    head->next->prev = b;
    head->next = b;
}

static void unlink_block(struct block *b)
{
    b->prev->next = b->next;
    b->next->prev = b->prev;
}

static void *arena_alloc(size_t n, void **abstract)
{
    struct sftp_sink *s = *abstract;
    struct block *b = malloc(sizeof(*b) + n);

    if (b == NULL)
        return NULL;
    link_block(&s->arena, b);
    return b + 1;
}

static void arena_free(void *p, void **abstract)
{
    struct block *b = (struct block *)p - 1;

    if (p == NULL)
        return;
    unlink_block(b);
    free(b);
}

static void *arena_realloc(void *p, size_t n, void **abstract)
{
    struct sftp_sink *s = *abstract;
    struct block *b, *nb;

    if (p == NULL)
        return arena_alloc(n, abstract);
    b = (struct block *)p - 1;
    unlink_block(b);
    nb = realloc(b, sizeof(*b) + n);
    if (nb == NULL) {
        link_block(&s->arena, b);
        return NULL;
    }
    link_block(&s->arena, nb);
    return nb + 1;
}

/* Free what libssh2 left of a session it has let go of. */
static void arena_clear(struct sftp_sink *s)
{
    struct block *b;
    int n = 0;

    while (s->arena.next != &s->arena) {
        b = s->arena.next;
        unlink_block(b);
        free(b);
        n++;
    }
    if (n > 0)
        log_debug("%s: freed %d blocks libssh2 left behind", s->peer, n);
}

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_rc;

static void init_libssh2(void)
{
    init_rc = libssh2_init(0);
}

/*
 * libssh2 and SFTP status codes as errno values: the one place they are
 * translated (ssh2_errno, and fx_errno for the SFTP status it needs).
 * EAGAIN here means a wait gave up, for the reason it kept.
 */
static int fx_errno(unsigned long fx)
{
    switch (fx) {
    case LIBSSH2_FX_NO_SUCH_FILE:
    case LIBSSH2_FX_NO_SUCH_PATH:
        return -ENOENT;
    case LIBSSH2_FX_PERMISSION_DENIED:
    case LIBSSH2_FX_WRITE_PROTECT:
        return -EACCES;
    case LIBSSH2_FX_NO_SPACE_ON_FILESYSTEM:
    case LIBSSH2_FX_QUOTA_EXCEEDED:
        return -ENOSPC;
    case LIBSSH2_FX_FILE_ALREADY_EXISTS:
        return -EEXIST;
    case LIBSSH2_FX_NOT_A_DIRECTORY:
        return -ENOTDIR;
    case LIBSSH2_FX_DIR_NOT_EMPTY:
        return -ENOTEMPTY;
    case LIBSSH2_FX_NO_CONNECTION:
    case LIBSSH2_FX_CONNECTION_LOST:
        return -ECONNRESET;
    case LIBSSH2_FX_OP_UNSUPPORTED:
        return -EOPNOTSUPP;
    case LIBSSH2_FX_INVALID_HANDLE:
        return -EBADF;
    case LIBSSH2_FX_LOCK_CONFLICT:
        return -EBUSY;
    case LIBSSH2_FX_INVALID_FILENAME:
        return -EINVAL;
    case LIBSSH2_FX_LINK_LOOP:
        return -ELOOP;
    case LIBSSH2_FX_BAD_MESSAGE:
        return -EBADMSG;
    default:
        return -EIO; /* SSH_FX_FAILURE: the server says no more */
    }
}

static int ssh2_errno(struct sftp_sink *s, int rc)
{
    switch (rc) {
    case 0:
        return 0;
    case LIBSSH2_ERROR_EAGAIN:
        return s->wait_err ? s->wait_err : -ETIMEDOUT;
    case LIBSSH2_ERROR_SOCKET_SEND:
    case LIBSSH2_ERROR_SOCKET_RECV:
    case LIBSSH2_ERROR_SOCKET_DISCONNECT:
    case LIBSSH2_ERROR_CHANNEL_CLOSED:
    case LIBSSH2_ERROR_CHANNEL_EOF_SENT:
    case LIBSSH2_ERROR_CHANNEL_FAILURE:
    case LIBSSH2_ERROR_BAD_SOCKET:
        return -ECONNRESET;
    case LIBSSH2_ERROR_TIMEOUT:
    case LIBSSH2_ERROR_SOCKET_TIMEOUT:
        return -ETIMEDOUT;
    case LIBSSH2_ERROR_ALLOC:
        return -ENOMEM;
    case LIBSSH2_ERROR_AUTHENTICATION_FAILED:
    case LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED:
    case LIBSSH2_ERROR_PASSWORD_EXPIRED:
    case LIBSSH2_ERROR_FILE:
    case LIBSSH2_ERROR_AGENT_PROTOCOL:
        return -EPERM;
    case LIBSSH2_ERROR_BANNER_RECV:
    case LIBSSH2_ERROR_BANNER_SEND:
    case LIBSSH2_ERROR_KEX_FAILURE:
    case LIBSSH2_ERROR_HOSTKEY_INIT:
    case LIBSSH2_ERROR_HOSTKEY_SIGN:
    case LIBSSH2_ERROR_DECRYPT:
    case LIBSSH2_ERROR_PROTO:
    case LIBSSH2_ERROR_METHOD_NONE:
    case LIBSSH2_ERROR_METHOD_NOT_SUPPORTED:
    case LIBSSH2_ERROR_INVALID_MAC:
    case LIBSSH2_ERROR_KEY_EXCHANGE_FAILURE:
        return -EPROTO;
    case LIBSSH2_ERROR_SFTP_PROTOCOL:
        return fx_errno(s->sftp ? libssh2_sftp_last_error(s->sftp)
                                : LIBSSH2_FX_FAILURE);
    default:
        return -EIO;
    }
}

static void drop(struct sftp_sink *s);

/*
 * Record what failed ("what": a verb and an object) with libssh2's own
 * words, drop the connection if the error concerns it, return the errno.
 */
static int fail(struct sftp_sink *s, int rc, const char *what)
{
    int r = ssh2_errno(s, rc);
    char *msg = NULL;

    if (rc == LIBSSH2_ERROR_SFTP_PROTOCOL || rc == LIBSSH2_ERROR_EAGAIN ||
        s->ssh == NULL)
        sink_fail(&s->base, r, "%s: %s: %s", s->peer, what, strerror(-r));
    else {
        libssh2_session_last_error(s->ssh, &msg, NULL, 0);
        sink_fail(&s->base, r, "%s: %s: %s", s->peer, what,
                  msg && *msg ? msg : strerror(-r));
    }
    if (sink_error_is_target(r) || r == -ECANCELED)
        drop(s);
    return r;
}

/*
 * After a libssh2 call: whether to call it again.  On EAGAIN wait for the
 * socket; give up (0) on timeout or cancel, keeping the reason.
 */
static int again(struct sftp_sink *s, int rc)
{
    struct pollfd p[2];
    int dirs, n;

    if (rc != LIBSSH2_ERROR_EAGAIN)
        return 0;
    dirs = libssh2_session_block_directions(s->ssh);
    p[0].fd = s->sock;
    p[0].events = 0;
    if (dirs & LIBSSH2_SESSION_BLOCK_INBOUND)
        p[0].events |= POLLIN;
    if (dirs & LIBSSH2_SESSION_BLOCK_OUTBOUND)
        p[0].events |= POLLOUT;
    if (p[0].events == 0)
        p[0].events = POLLIN;
    p[1].fd = s->cancel_fd;
    p[1].events = POLLIN;
    do {
        n = poll(p, 2, s->timeout_ms);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        s->wait_err = -errno;
        return 0;
    }
    if (p[1].revents) {
        s->wait_err = -ECANCELED;
        return 0;
    }
    if (n == 0) {
        s->wait_err = -ETIMEDOUT;
        return 0;
    }
    return 1;
}

/* The last libssh2 error of the session, as a call's return code. */
static int last_rc(struct sftp_sink *s)
{
    return libssh2_session_last_errno(s->ssh);
}

static void sftp_describe(const void *settings, char *buf, size_t len)
{
    const struct sftp_settings *c = settings;

    snprintf(buf, len, "%s@%s%s%s:%d %s", c->user,
             strchr(c->host, ':') ? "[" : "", c->host,
             strchr(c->host, ':') ? "]" : "", c->port, c->path);
}

static int sftp_create(const void *settings, int cancel_fd, struct sink **out)
{
    const struct sftp_settings *c = settings;
    struct sftp_sink *s;

    *out = NULL;
    pthread_once(&init_once, init_libssh2);
    if (init_rc != 0)
        return -ENOMEM;
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    s->base.ops = &sink_sftp;
    s->cf = c;
    s->cancel_fd = cancel_fd;
    s->timeout_ms = c->timeout * 1000;
    s->sock = -1;
    s->arena.prev = s->arena.next = &s->arena;
    snprintf(s->peer, sizeof(s->peer), "%s%s%s:%d",
             strchr(c->host, ':') ? "[" : "", c->host,
             strchr(c->host, ':') ? "]" : "", c->port);
    *out = &s->base;
    return 0;
}

static void reset_file(struct sftp_sink *s)
{
    if (s->h)
        libssh2_sftp_close_handle(s->h); /* best effort; may not finish */
    s->h = NULL;
    free(s->tmp);
    free(s->final);
    s->tmp = s->final = NULL;
    s->pos = 0;
    s->tail = 0;
}

/* Forget the connection at once: the peer sees it closed. */
static void drop(struct sftp_sink *s)
{
    if (s->sock >= 0)
        shutdown(s->sock, SHUT_RDWR);
    s->h = NULL; /* freed with the session */
    reset_file(s);
    if (s->sftp)
        libssh2_sftp_shutdown(s->sftp);
    s->sftp = NULL;
    if (s->kh) /* before the session: it is allocated from it */
        libssh2_knownhost_free(s->kh);
    s->kh = NULL;
    if (s->ssh) {
        libssh2_session_free(s->ssh);
        arena_clear(s);
    }
    s->ssh = NULL;
    if (s->sock >= 0)
        close(s->sock);
    s->sock = -1;
    free(s->root);
    s->root = NULL;
}

static void sftp_destroy(struct sink *base)
{
    struct sftp_sink *s = (struct sftp_sink *)base;

    drop(s);
    free(s);
}

static void sftp_disconnect(struct sink *base)
{
    drop((struct sftp_sink *)base);
}

/*
 * Wait for a non-blocking connect() on fd to finish, for at most the
 * timeout: 0 connected, -ECANCELED, -ETIMEDOUT or the connect error.
 */
static int connect_wait(struct sftp_sink *s, int fd)
{
    struct pollfd p[2] = {
        {.fd = fd, .events = POLLOUT},
        {.fd = s->cancel_fd, .events = POLLIN},
    };
    socklen_t len = sizeof(int);
    int n, err;

    do {
        n = poll(p, 2, s->timeout_ms);
    } while (n < 0 && errno == EINTR);
    if (n > 0 && p[1].revents)
        return -ECANCELED;
    if (n <= 0)
        return n == 0 ? -ETIMEDOUT : -errno;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    return -err;
}

/* A connected non-blocking socket to ai in *fd, or a negative errno. */
static int connect_one(struct sftp_sink *s, const struct addrinfo *ai, int *fd)
{
    int r;

    *fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                 ai->ai_protocol);
    if (*fd < 0)
        return -errno;
    if (connect(*fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS)
        r = -errno;
    else
        r = connect_wait(s, *fd);
    if (r < 0) {
        close(*fd);
        *fd = -1;
    }
    return r;
}

/* A non-blocking TCP connection to target.host:target.port. */
static int tcp_connect(struct sftp_sink *s)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL, *ai;
    char port[16];
    int fd = -1, r = -EHOSTUNREACH, err, one = 1;

    snprintf(port, sizeof(port), "%d", s->cf->port);
    err = getaddrinfo(s->cf->host, port, &hints, &res);
    if (err != 0)
        return sink_fail(&s->base, -EHOSTUNREACH, "%s: resolving: %s", s->peer,
                         gai_strerror(err));
    for (ai = res; ai && fd < 0 && r != -ECANCELED; ai = ai->ai_next)
        r = connect_one(s, ai, &fd);
    freeaddrinfo(res);
    if (fd < 0)
        return sink_fail(&s->base, r, "%s: connect: %s", s->peer, strerror(-r));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    s->sock = fd;
    return 0;
}

static const struct {
    int hostkey_type;
    int knownhost_type;
    const char *name;
} key_types[] = {
    {LIBSSH2_HOSTKEY_TYPE_ED25519, LIBSSH2_KNOWNHOST_KEY_ED25519,
     "ssh-ed25519"},
    {LIBSSH2_HOSTKEY_TYPE_ECDSA_256, LIBSSH2_KNOWNHOST_KEY_ECDSA_256,
     "ecdsa-sha2-nistp256"},
    {LIBSSH2_HOSTKEY_TYPE_ECDSA_384, LIBSSH2_KNOWNHOST_KEY_ECDSA_384,
     "ecdsa-sha2-nistp384"},
    {LIBSSH2_HOSTKEY_TYPE_ECDSA_521, LIBSSH2_KNOWNHOST_KEY_ECDSA_521,
     "ecdsa-sha2-nistp521"},
    {LIBSSH2_HOSTKEY_TYPE_RSA, LIBSSH2_KNOWNHOST_KEY_SSHRSA, "ssh-rsa"},
};

#define N_KEY_TYPES (sizeof(key_types) / sizeof(key_types[0]))

static void base64(const unsigned char *in, size_t len, char *out)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i;

    for (i = 0; i + 2 < len; i += 3) {
        *out++ = tab[in[i] >> 2];
        *out++ = tab[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
        *out++ = tab[((in[i + 1] & 15) << 2) | (in[i + 2] >> 6)];
        *out++ = tab[in[i + 2] & 63];
    }
    if (i < len) {
        *out++ = tab[in[i] >> 2];
        if (i + 1 < len) {
            *out++ = tab[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
            *out++ = tab[(in[i + 1] & 15) << 2];
        } else {
            *out++ = tab[(in[i] & 3) << 4];
        }
    }
    *out = '\0';
}

/*
 * Prefer the host key types known_hosts holds for this host, so that the
 * key the server shows is one we can check.
 */
static void prefer_known_types(struct sftp_sink *s, LIBSSH2_KNOWNHOSTS *kh)
{
    struct libssh2_knownhost *prev = NULL, *e;
    char prefs[256] = "";
    int have[N_KEY_TYPES] = {0};
    size_t i;

    while (libssh2_knownhost_get(kh, &e, prev) == 0) {
        prev = e;
        for (i = 0; i < N_KEY_TYPES; i++) {
            int t = key_types[i].knownhost_type;

            if ((e->typemask & LIBSSH2_KNOWNHOST_KEY_MASK) != t)
                continue;
            if (libssh2_knownhost_checkp(
                    kh, s->cf->host, s->cf->port, e->key, 0,
                    LIBSSH2_KNOWNHOST_TYPE_PLAIN |
                        LIBSSH2_KNOWNHOST_KEYENC_BASE64 | t,
                    NULL) == LIBSSH2_KNOWNHOST_CHECK_MATCH)
                have[i] = 1;
        }
    }
    for (i = 0; i < N_KEY_TYPES; i++)
        if (have[i])
            snprintf(prefs + strlen(prefs), sizeof(prefs) - strlen(prefs),
                     "%s%s", prefs[0] ? "," : "", key_types[i].name);
    if (prefs[0])
        libssh2_session_method_pref(s->ssh, LIBSSH2_METHOD_HOSTKEY, prefs);
}

static int load_known_hosts(struct sftp_sink *s, LIBSSH2_KNOWNHOSTS **out)
{
    const char *file = s->cf->known_hosts;
    LIBSSH2_KNOWNHOSTS *kh = libssh2_knownhost_init(s->ssh);
    int n;

    *out = NULL;
    if (kh == NULL)
        return sink_fail(&s->base, -ENOMEM, "out of memory");
    if (access(file, R_OK) < 0) {
        n = errno;
        libssh2_knownhost_free(kh);
        return sink_fail(&s->base, -EKEYREJECTED,
                         "%s: cannot check the host key: known_hosts %s: %s",
                         s->peer, file, strerror(n));
    }
    n = libssh2_knownhost_readfile(kh, file, LIBSSH2_KNOWNHOST_FILE_OPENSSH);
    if (n < 0) {
        libssh2_knownhost_free(kh);
        return sink_fail(&s->base, -EKEYREJECTED,
                         "%s: cannot check the host key: known_hosts %s "
                         "could not be parsed",
                         s->peer, file);
    }
    *out = kh;
    return 0;
}

static int check_host_key(struct sftp_sink *s, LIBSSH2_KNOWNHOSTS *kh)
{
    const char *file = s->cf->known_hosts, *name = "unknown";
    const char *key, *hash;
    char fp[64] = "";
    size_t len, i;
    int type, kt = 0, rc;

    key = libssh2_session_hostkey(s->ssh, &len, &type);
    if (key == NULL)
        return sink_fail(&s->base, -EKEYREJECTED, "%s: no host key", s->peer);
    for (i = 0; i < N_KEY_TYPES; i++) {
        if (key_types[i].hostkey_type == type) {
            kt = key_types[i].knownhost_type;
            name = key_types[i].name;
        }
    }
    hash = libssh2_hostkey_hash(s->ssh, LIBSSH2_HOSTKEY_HASH_SHA256);
    if (hash) {
        strcpy(fp, "SHA256:");
        base64((const unsigned char *)hash, 32, fp + 7);
        fp[strcspn(fp, "=")] = '\0';
    }
    rc = libssh2_knownhost_checkp(
        kh, s->cf->host, s->cf->port, key, len,
        LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW | kt, NULL);
    switch (rc) {
    case LIBSSH2_KNOWNHOST_CHECK_MATCH:
        return 0;
    case LIBSSH2_KNOWNHOST_CHECK_MISMATCH:
        return sink_fail(&s->base, -EKEYREJECTED,
                         "%s: host key CHANGED: the server shows %s %s, which "
                         "does not match known_hosts %s; refusing to connect",
                         s->peer, name, fp, file);
    case LIBSSH2_KNOWNHOST_CHECK_NOTFOUND:
        return sink_fail(&s->base, -EKEYREJECTED,
                         "%s: host key %s %s is not in known_hosts %s; "
                         "refusing to connect",
                         s->peer, name, fp, file);
    default:
        return sink_fail(&s->base, -EKEYREJECTED,
                         "%s: host key %s %s could not be checked against %s",
                         s->peer, name, fp, file);
    }
}

static int auth_key(struct sftp_sink *s, char *why, size_t whylen)
{
    const struct sftp_settings *c = s->cf;
    char pass[SECRET_MAX] = "";
    char *msg = NULL;
    int rc, r;

    if (c->passphrase_file[0]) {
        r = secret_read(c->passphrase_file, pass, sizeof(pass));
        if (r < 0) {
            snprintf(why, whylen, "passphrase_file %s: %s", c->passphrase_file,
                     strerror(-r));
            return r;
        }
    }
    do {
        rc = libssh2_userauth_publickey_fromfile_ex(
            s->ssh, c->user, (unsigned)strlen(c->user), NULL, c->identity,
            pass[0] ? pass : NULL);
    } while (again(s, rc));
    explicit_bzero(pass, sizeof(pass));
    if (rc != 0) {
        libssh2_session_last_error(s->ssh, &msg, NULL, 0);
        snprintf(why, whylen, "key %s: %s", c->identity, msg ? msg : "refused");
    }
    return rc;
}

static int auth_password(struct sftp_sink *s, char *why, size_t whylen)
{
    const struct sftp_settings *c = s->cf;
    char pw[SECRET_MAX];
    int rc, r;

    r = secret_read(c->password_file, pw, sizeof(pw));
    if (r < 0) {
        snprintf(why, whylen, "password_file %s: %s", c->password_file,
                 strerror(-r));
        return r;
    }
    do {
        rc = libssh2_userauth_password_ex(s->ssh, c->user,
                                          (unsigned)strlen(c->user), pw,
                                          (unsigned)strlen(pw), NULL);
    } while (again(s, rc));
    explicit_bzero(pw, sizeof(pw));
    if (rc != 0)
        snprintf(why, whylen, "password from %s: refused", c->password_file);
    return rc;
}

static int auth_agent(struct sftp_sink *s, char *why, size_t whylen)
{
    LIBSSH2_AGENT *agent = libssh2_agent_init(s->ssh);
    struct libssh2_agent_publickey *id = NULL, *prev = NULL;
    int rc = -1;

    snprintf(why, whylen, "ssh-agent: no key accepted");
    if (agent == NULL || libssh2_agent_connect(agent) != 0 ||
        libssh2_agent_list_identities(agent) != 0) {
        snprintf(why, whylen, "ssh-agent: not reachable (SSH_AUTH_SOCK)");
        goto out;
    }
    while (libssh2_agent_get_identity(agent, &id, prev) == 0) {
        prev = id;
        do {
            rc = libssh2_agent_userauth(agent, s->cf->user, id);
        } while (again(s, rc));
        if (rc == 0)
            break;
        if (rc == LIBSSH2_ERROR_EAGAIN)
            goto out;
    }
out:
    if (agent) {
        libssh2_agent_disconnect(agent);
        libssh2_agent_free(agent);
    }
    return rc;
}

static int authenticate(struct sftp_sink *s)
{
    const struct sftp_settings *c = s->cf;
    char why[3][300] = {"", "", ""};
    int rc = -1;

    if (c->identity[0])
        rc = auth_key(s, why[0], sizeof(why[0]));
    if (rc != 0 && rc != LIBSSH2_ERROR_EAGAIN && c->password_file[0])
        rc = auth_password(s, why[1], sizeof(why[1]));
    if (rc != 0 && rc != LIBSSH2_ERROR_EAGAIN && !c->identity[0] &&
        !c->password_file[0])
        rc = auth_agent(s, why[2], sizeof(why[2]));
    if (rc == 0)
        return 0;
    if (rc == LIBSSH2_ERROR_EAGAIN)
        return fail(s, rc, "login");
    return sink_fail(&s->base, -EPERM, "%s: login as %s refused (%s%s%s%s%s)",
                     s->peer, c->user, why[0],
                     why[0][0] && why[1][0] ? "; " : "", why[1],
                     (why[0][0] || why[1][0]) && why[2][0] ? "; " : "", why[2]);
}

/* target.path as an absolute path on the server. */
static int resolve_root(struct sftp_sink *s)
{
    char buf[4096];
    int rc;

    if (s->cf->path[0] == '/') {
        s->root = strdup(s->cf->path);
        return s->root ? 0 : -ENOMEM;
    }
    do {
        rc = libssh2_sftp_realpath(s->sftp, s->cf->path, buf, sizeof(buf) - 1);
    } while (again(s, rc));
    if (rc < 0)
        return fail(s, rc, "resolving target.path");
    buf[rc] = '\0';
    s->root = strdup(buf);
    return s->root ? 0 : -ENOMEM;
}

static int sftp_connect(struct sink *base)
{
    struct sftp_sink *s = (struct sftp_sink *)base;
    int rc, r;

    if (s->sftp)
        return 0;
    drop(s);
    s->wait_err = 0;
    r = tcp_connect(s);
    if (r < 0)
        return r;
    s->ssh = libssh2_session_init_ex(arena_alloc, arena_free, arena_realloc, s);
    if (s->ssh == NULL) {
        drop(s);
        return sink_fail(base, -ENOMEM, "out of memory");
    }
    libssh2_session_set_blocking(s->ssh, 0);
    r = load_known_hosts(s, &s->kh);
    if (r < 0)
        goto out;
    prefer_known_types(s, s->kh);
    do {
        rc = libssh2_session_handshake(s->ssh, s->sock);
    } while (again(s, rc));
    if (rc != 0) {
        r = fail(s, rc, "SSH handshake");
        goto out;
    }
    r = check_host_key(s, s->kh);
    if (r < 0)
        goto out;
    libssh2_knownhost_free(s->kh);
    s->kh = NULL;
    r = authenticate(s);
    if (r < 0)
        goto out;
    do {
        s->sftp = libssh2_sftp_init(s->ssh);
    } while (s->sftp == NULL && again(s, last_rc(s)));
    if (s->sftp == NULL) {
        r = fail(s, last_rc(s), "starting SFTP");
        goto out;
    }
    r = resolve_root(s);
    if (r < 0)
        goto out;
    log_debug("%s: connected, target.path is %s", s->peer, s->root);
    r = 0;
out:
    if (r < 0)
        drop(s);
    return r;
}

static int remote_stat(struct sftp_sink *s, const char *path,
                       LIBSSH2_SFTP_ATTRIBUTES *a)
{
    int rc;

    do {
        rc = libssh2_sftp_stat_ex(s->sftp, path, (unsigned)strlen(path),
                                  LIBSSH2_SFTP_STAT, a);
    } while (again(s, rc));
    return rc;
}

/* Make the folder path (len bytes of it) and any missing parents. */
static int remote_mkdirs(struct sftp_sink *s, const char *path, size_t len)
{
    LIBSSH2_SFTP_ATTRIBUTES a;
    char *dir = strndup(path, len);
    int rc, r = 0;

    if (dir == NULL)
        return -ENOMEM;
    do {
        rc = libssh2_sftp_mkdir_ex(s->sftp, dir, (unsigned)len, 0755);
    } while (again(s, rc));
    if (rc == 0)
        goto out;
    r = ssh2_errno(s, rc);
    if (r == -ENOENT && path_dir_len(dir) > 0) {
        r = remote_mkdirs(s, dir, path_dir_len(dir));
        if (r < 0)
            goto out;
        do {
            rc = libssh2_sftp_mkdir_ex(s->sftp, dir, (unsigned)len, 0755);
        } while (again(s, rc));
        r = ssh2_errno(s, rc);
    }
    if (r == -EIO || r == -EEXIST) {
        /* Made meanwhile, or there already: fine if it is a folder. */
        rc = remote_stat(s, dir, &a);
        r = rc == 0 ? (LIBSSH2_SFTP_S_ISDIR(a.permissions) ? 0 : -ENOTDIR)
                    : ssh2_errno(s, rc);
    }
    if (r < 0 && r != -ENOTDIR) {
        char what[64 + PATH_MAX];

        snprintf(what, sizeof(what), "creating folder %s", dir);
        r = fail(s, rc, what);
    } else if (r == -ENOTDIR) {
        sink_fail(&s->base, r, "%s: %s exists and is not a folder", s->peer,
                  dir);
    }
out:
    free(dir);
    return r;
}

static LIBSSH2_SFTP_HANDLE *open_tmp(struct sftp_sink *s, unsigned long flags,
                                     int mode)
{
    LIBSSH2_SFTP_HANDLE *h;

    do {
        h = libssh2_sftp_open_ex(s->sftp, s->tmp, (unsigned)strlen(s->tmp),
                                 flags, mode, LIBSSH2_SFTP_OPENFILE);
    } while (h == NULL && again(s, last_rc(s)));
    return h;
}

static int sftp_open(struct sink *base, const char *rel, int mode,
                     int64_t *offset)
{
    struct sftp_sink *s = (struct sftp_sink *)base;
    LIBSSH2_SFTP_ATTRIBUTES a;
    unsigned long flags = LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT;
    char *tmprel = NULL;
    int rc, r;

    reset_file(s);
    r = path_tmp_name(rel, &tmprel);
    if (r < 0)
        return sink_fail(base, r, "%s: invalid path", rel);
    r = path_join(s->root, tmprel, &s->tmp);
    if (r == 0)
        r = path_join(s->root, rel, &s->final);
    free(tmprel);
    if (r < 0)
        return sink_fail(base, r, "out of memory");
    if (*offset == 0)
        flags |= LIBSSH2_FXF_TRUNC;
    mode = mode & 0777 ? mode & 0777 : 0644;
    s->h = open_tmp(s, flags, mode);
    if (s->h == NULL && ssh2_errno(s, last_rc(s)) == -ENOENT) {
        /* A new folder: make it, then try again. */
        r = remote_mkdirs(s, s->tmp, path_dir_len(s->tmp));
        if (r < 0)
            return r;
        s->h = open_tmp(s, flags, mode);
    }
    if (s->h == NULL) {
        char what[64 + PATH_MAX];

        snprintf(what, sizeof(what), "opening %s", s->tmp);
        return fail(s, last_rc(s), what);
    }
    if (*offset > 0) {
        /* Resume no further than the temporary file really reaches. */
        do {
            rc = libssh2_sftp_fstat_ex(s->h, &a, 0);
        } while (again(s, rc));
        if (rc != 0)
            return fail(s, rc, "checking the temporary file");
        if (!(a.flags & LIBSSH2_SFTP_ATTR_SIZE) ||
            a.filesize < (libssh2_uint64_t)*offset)
            *offset =
                (a.flags & LIBSSH2_SFTP_ATTR_SIZE) ? (int64_t)a.filesize : 0;
        s->tail = (int64_t)a.filesize > *offset;
        libssh2_sftp_seek64(s->h, (libssh2_uint64_t)*offset);
    }
    s->pos = *offset;
    return 0;
}

/*
 * SFTP v3 has no "no space" status: servers answer FAILURE.  After a
 * failed write, ask for the free space beside the file (statvfs@openssh
 * .com); returns 1 if it cannot hold need more bytes.
 */
static int out_of_space(struct sftp_sink *s, uint64_t need, uint64_t *avail)
{
    LIBSSH2_SFTP_STATVFS v;
    size_t dl = path_dir_len(s->tmp);
    int rc;

    do {
        rc = libssh2_sftp_statvfs(s->sftp, s->tmp, dl ? dl : 1, &v);
    } while (again(s, rc));
    if (rc != 0)
        return 0;
    *avail = v.f_bavail * v.f_frsize;
    return *avail < need;
}

static int sftp_write(struct sink *base, const void *buf, size_t len)
{
    struct sftp_sink *s = (struct sftp_sink *)base;
    size_t done = 0;
    ssize_t n;

    while (done < len) {
        do {
            n = libssh2_sftp_write(s->h, (const char *)buf + done, len - done);
        } while (again(s, (int)n));
        if (n < 0) {
            char what[64 + PATH_MAX];
            uint64_t avail = 0;

            if (n == LIBSSH2_ERROR_SFTP_PROTOCOL &&
                ssh2_errno(s, (int)n) == -EIO &&
                out_of_space(s, len - done, &avail))
                return sink_fail(base, -ENOSPC,
                                 "%s: writing %s: no space left on the target "
                                 "(%llu bytes free)",
                                 s->peer, s->tmp, (unsigned long long)avail);
            snprintf(what, sizeof(what), "writing %s", s->tmp);
            return fail(s, (int)n, what);
        }
        done += (size_t)n;
    }
    s->pos += (int64_t)len;
    return 0;
}

static int rename_into_place(struct sftp_sink *s)
{
    LIBSSH2_SFTP_ATTRIBUTES a;
    int rc;

#ifdef HAVE_LIBSSH2_SFTP_POSIX_RENAME_EX
    do {
        rc = libssh2_sftp_posix_rename_ex(s->sftp, s->tmp, strlen(s->tmp),
                                          s->final, strlen(s->final));
    } while (again(s, rc));
    if (rc == 0 || ssh2_errno(s, rc) != -EOPNOTSUPP)
        return rc;
#endif
    do {
        rc = libssh2_sftp_rename_ex(s->sftp, s->tmp, (unsigned)strlen(s->tmp),
                                    s->final, (unsigned)strlen(s->final),
                                    LIBSSH2_SFTP_RENAME_OVERWRITE |
                                        LIBSSH2_SFTP_RENAME_ATOMIC |
                                        LIBSSH2_SFTP_RENAME_NATIVE);
    } while (again(s, rc));
    if (rc != LIBSSH2_ERROR_SFTP_PROTOCOL ||
        (ssh2_errno(s, rc) != -EIO && ssh2_errno(s, rc) != -EEXIST))
        return rc;
    /*
     * SFTP v3 rename does not replace an existing file.  Without
     * posix-rename@openssh.com the old file is removed first: for that
     * moment the name is absent (never partial).
     */
    if (remote_stat(s, s->final, &a) != 0 ||
        LIBSSH2_SFTP_S_ISDIR(a.permissions))
        return rc;
    do {
        rc = libssh2_sftp_unlink_ex(s->sftp, s->final,
                                    (unsigned)strlen(s->final));
    } while (again(s, rc));
    if (rc != 0)
        return rc;
    do {
        rc = libssh2_sftp_rename_ex(s->sftp, s->tmp, (unsigned)strlen(s->tmp),
                                    s->final, (unsigned)strlen(s->final), 0);
    } while (again(s, rc));
    return rc;
}

static int sftp_commit(struct sink *base, const struct sink_done *d)
{
    struct sftp_sink *s = (struct sftp_sink *)base;
    LIBSSH2_SFTP_ATTRIBUTES a;
    char what[64 + 2 * PATH_MAX];
    int rc;

    (void)d;
    if (s->tail) {
        /* An earlier, longer upload of the same name left a tail. */
        memset(&a, 0, sizeof(a));
        a.flags = LIBSSH2_SFTP_ATTR_SIZE;
        a.filesize = (libssh2_uint64_t)s->pos;
        do {
            rc = libssh2_sftp_fstat_ex(s->h, &a, 1);
        } while (again(s, rc));
        if (rc != 0) {
            snprintf(what, sizeof(what), "truncating %s", s->tmp);
            return fail(s, rc, what);
        }
    }
    do {
        rc = libssh2_sftp_fsync(s->h);
    } while (again(s, rc));
    /* Servers without fsync@openssh.com answer "unsupported": go on. */
    if (rc != 0 && !(rc == LIBSSH2_ERROR_SFTP_PROTOCOL &&
                     ssh2_errno(s, rc) == -EOPNOTSUPP)) {
        snprintf(what, sizeof(what), "syncing %s", s->tmp);
        return fail(s, rc, what);
    }
    do {
        rc = libssh2_sftp_close_handle(s->h);
    } while (again(s, rc));
    s->h = NULL;
    if (rc != 0) {
        snprintf(what, sizeof(what), "closing %s", s->tmp);
        return fail(s, rc, what);
    }
    rc = rename_into_place(s);
    if (rc != 0) {
        snprintf(what, sizeof(what), "renaming %s to %s", s->tmp, s->final);
        return fail(s, rc, what);
    }
    reset_file(s);
    return 0;
}

static void sftp_abort(struct sink *base)
{
    struct sftp_sink *s = (struct sftp_sink *)base;
    int rc;

    if (s->h && s->ssh) {
        do {
            rc = libssh2_sftp_close_handle(s->h);
        } while (again(s, rc));
        if (rc != 0)
            drop(s); /* the session is in an unknown state */
        s->h = NULL;
    }
    reset_file(s);
}

const struct sink_ops sink_sftp = {
    .name = "sftp",
    .conf = &sftp_conf,
    .create = sftp_create,
    .describe = sftp_describe,
    .destroy = sftp_destroy,
    .connect = sftp_connect,
    .disconnect = sftp_disconnect,
    .open = sftp_open,
    .write = sftp_write,
    .commit = sftp_commit,
    .abort = sftp_abort,
};
