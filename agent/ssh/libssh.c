/*
 * The "libssh" SSH backend (sshchan.h), on libssh 0.10 in non-blocking
 * mode.
 *
 * Every libssh call that can return SSH_AGAIN runs in a loop: again()
 * polls the socket for input (and for output while libssh holds some)
 * and the cancel descriptor, for at most o->timeout_ms, and the call is
 * made again.  libssh reads and writes the socket itself inside each call.
 *
 * libssh gets a duplicate of the socket from ssh_tcp_connect() and closes
 * that copy itself (on error, or in ssh_free()); the backend polls and
 * finally closes its own copy, so the descriptor it polls never goes away
 * under it; both share one open file, kept O_NONBLOCK (keep_nonblocking()).
 * No configuration file is read (SSH_OPTIONS_PROCESS_CONFIG
 * off) and the only known_hosts file is o->known_hosts; libssh puts the
 * host key types that file holds for the host first in its offer.
 *
 * libssh's results become errno values in lssh_errno() alone.  One
 * connection is used by one thread at a time; ssh_init() runs once.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <libssh/libssh.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sftprelay/secret.h"
#include "sftprelay/sshchan.h"

#define DEFAULT_CIPHERS                                                        \
    "aes128-gcm@openssh.com,chacha20-poly1305@openssh.com,"                    \
    "aes256-gcm@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr"

/* Signature algorithms for our own key: no SHA-1 "ssh-rsa". */
#define KEY_TYPES                                                              \
    "ssh-ed25519,ecdsa-sha2-nistp521,ecdsa-sha2-nistp384,"                     \
    "ecdsa-sha2-nistp256,rsa-sha2-512,rsa-sha2-256"

/* The most send() hands libssh at once. */
#define SEND_MAX (128 * 1024)

/* Cipher names tried, to tell the user which this libssh supports. */
static const char *const known_ciphers[] = {
    "chacha20-poly1305@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-gcm@openssh.com",
    "aes256-ctr",
    "aes192-ctr",
    "aes128-ctr",
    "aes256-cbc",
    "aes192-cbc",
    "aes128-cbc",
    "3des-cbc",
};

#define N_KNOWN_CIPHERS (sizeof(known_ciphers) / sizeof(known_ciphers[0]))

/* libssh's names for the lists of a key exchange, in words. */
static const struct {
    const char *libssh;
    const char *words;
    const char *key; /* the setting that chooses the client's list */
} kex_lists[] = {
    {"kex algos", "no key exchange algorithm in common", NULL},
    {"server host key algo", "no host key algorithm in common", NULL},
    {"encryption client->server", "no cipher in common", "target.ciphers"},
    {"encryption server->client", "no cipher in common", "target.ciphers"},
    {"mac algo client->server", "no MAC algorithm in common", NULL},
    {"mac algo server->client", "no MAC algorithm in common", NULL},
    {"compression algo client->server", "no compression in common", NULL},
    {"compression algo server->client", "no compression in common", NULL},
};

#define N_KEX_LISTS (sizeof(kex_lists) / sizeof(kex_lists[0]))

struct lchan {
    struct ssh_chan base;
    ssh_session s;
    ssh_channel ch;
    int fd;     /* ours: polled, closed by lssh_close() */
    int lib_fd; /* libssh's copy, until ssh_connect() takes it */
    int timeout_ms;
    int cancel_fd;
    int keepalive;    /* seconds; 0 off */
    int wait_err;     /* why the last wait gave up */
    int64_t last_out; /* ms, monotonic: when we last sent something */
    char ciphers[512];
};

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_rc;

static void init_libssh(void)
{
    init_rc = ssh_init();
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * The one place libssh's results are translated to errno values.  rc is
 * what a libssh call returned (SSH_AGAIN: a wait gave up, for the reason
 * it kept).
 */
static int lssh_errno(struct lchan *c, int rc)
{
    const char *text;

    switch (rc) {
    case SSH_OK:
        return 0;
    case SSH_AGAIN:
        return c->wait_err ? c->wait_err : -ETIMEDOUT;
    case SSH_EOF:
        return -EPIPE;
    default:
        break;
    }
    text = ssh_get_error(c->s);
    if (strstr(text, "no match for method"))
        return -EPROTO;
    if (strstr(text, "Socket error") || strstr(text, "DISCONNECT") ||
        strstr(text, "closed") || !ssh_is_connected(c->s))
        return -ECONNRESET;
    if (strstr(text, "Not enough space") || strstr(text, "out of memory"))
        return -ENOMEM;
    if (ssh_get_error_code(c->s) == SSH_REQUEST_DENIED ||
        ssh_get_error_code(c->s) == SSH_FATAL)
        return -EPROTO;
    return -EIO;
}

/* The reason for c->base.err (messages may be cut to fit). */
static void say(struct lchan *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void say(struct lchan *c, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(c->base.err, sizeof(c->base.err), fmt, ap);
    va_end(ap);
}

/*
 * libssh's "no match for method X: server [A], client [B]" in words into
 * buf: which list, what each side offers.  0, or -ENOENT if text is not
 * such a message.
 */
static int kex_words(const char *text, char *buf, size_t len)
{
    const char *p = strstr(text, "no match for method "), *srv, *cli, *end;
    size_t i;

    if (p == NULL)
        return -ENOENT;
    p += strlen("no match for method ");
    srv = strstr(p, ": server [");
    cli = srv ? strstr(srv, "], client [") : NULL;
    end = cli ? strchr(cli + 11, ']') : NULL;
    if (end == NULL)
        return -ENOENT;
    for (i = 0; i < N_KEX_LISTS; i++)
        if (strncmp(p, kex_lists[i].libssh, (size_t)(srv - p)) == 0 &&
            kex_lists[i].libssh[srv - p] == '\0')
            break;
    snprintf(buf, len, "%s: the server offers %.*s; we offer %.*s%s%s%s",
             i < N_KEX_LISTS ? kex_lists[i].words : "no algorithm in common",
             (int)(cli - srv - 10), srv + 10, (int)(end - cli - 11), cli + 11,
             i < N_KEX_LISTS && kex_lists[i].key ? " (" : "",
             i < N_KEX_LISTS && kex_lists[i].key ? kex_lists[i].key : "",
             i < N_KEX_LISTS && kex_lists[i].key ? ")" : "");
    return 0;
}

/*
 * Record in c->base.err what failed ("what": a verb and an object), in
 * words with libssh's own text after, and return the errno.
 */
static int fail(struct lchan *c, int rc, const char *what)
{
    int r = lssh_errno(c, rc);
    const char *text = rc == SSH_AGAIN ? "" : ssh_get_error(c->s);
    char words[SSH_ERR_MAX];

    if (r == -ETIMEDOUT)
        say(c, "%s: %s: timed out, no progress for %d ms", c->base.peer, what,
            c->timeout_ms);
    else if (rc == SSH_AGAIN || text[0] == '\0')
        say(c, "%s: %s: %s", c->base.peer, what, strerror(-r));
    else if (kex_words(text, words, sizeof(words)) == 0)
        say(c, "%s: %s: %s (libssh: %s)", c->base.peer, what, words, text);
    else
        say(c, "%s: %s: %s", c->base.peer, what, text);
    return r;
}

/* What to poll the socket for: input, and output while libssh holds some. */
static short events(struct lchan *c)
{
    if (ssh_get_poll_flags(c->s) & SSH_WRITE_PENDING)
        return POLLIN | POLLOUT;
    return POLLIN;
}

/*
 * After a libssh call returned rc: whether to make it again.  On SSH_AGAIN
 * wait for the socket; give up (0) on timeout or cancel, keeping why.
 */
static int again(struct lchan *c, int rc)
{
    int r;

    if (rc != SSH_AGAIN)
        return 0;
    r = ssh_poll(c->fd, events(c), c->cancel_fd, c->timeout_ms);
    if (r < 0) {
        c->wait_err = r;
        return 0;
    }
    return 1;
}

/*
 * libssh 0.10 makes the socket blocking once it sees it connected, then
 * send()s all it holds whenever poll() says POLLOUT: to a peer that stops
 * reading, that would block without end, deaf to the cancel descriptor.
 * Non-blocking, such a send() takes what fits and libssh keeps the rest.
 */
static void keep_nonblocking(struct lchan *c)
{
    int fl = fcntl(c->fd, F_GETFL);

    if (fl >= 0 && !(fl & O_NONBLOCK))
        fcntl(c->fd, F_SETFL, fl | O_NONBLOCK);
}

/* Every cipher of known_ciphers this libssh takes, into buf. */
static void supported_ciphers(struct lchan *c, char *buf, size_t len)
{
    size_t i, n = 0;

    buf[0] = '\0';
    for (i = 0; i < N_KNOWN_CIPHERS && n < len; i++)
        if (ssh_options_set(c->s, SSH_OPTIONS_CIPHERS_C_S, known_ciphers[i]) ==
            SSH_OK)
            n += (size_t)snprintf(buf + n, len - n, "%s%s", n ? "," : "",
                                  known_ciphers[i]);
}

/*
 * o->ciphers applied to the default, each name checked, set for both
 * directions.  -EINVAL for a name libssh does not know.
 */
static int set_ciphers(struct lchan *c, const char *spec)
{
    char *copy = NULL, *tok, *save = NULL, have[256];
    int r = -EINVAL;

    if (ssh_cipher_list(spec, DEFAULT_CIPHERS, c->ciphers, sizeof(c->ciphers)) <
        0) {
        supported_ciphers(c, have, sizeof(have));
        say(c, "target.ciphers \"%s\" leaves no cipher; libssh supports %s",
            spec, have);
        goto out;
    }
    copy = strdup(c->ciphers);
    if (copy == NULL) {
        r = -ENOMEM;
        goto out;
    }
    for (tok = strtok_r(copy, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        if (ssh_options_set(c->s, SSH_OPTIONS_CIPHERS_C_S, tok) != SSH_OK) {
            supported_ciphers(c, have, sizeof(have));
            say(c, "target.ciphers: unknown cipher \"%s\"; libssh supports %s",
                tok, have);
            goto out;
        }
    }
    if (ssh_options_set(c->s, SSH_OPTIONS_CIPHERS_C_S, c->ciphers) != SSH_OK ||
        ssh_options_set(c->s, SSH_OPTIONS_CIPHERS_S_C, c->ciphers) != SSH_OK) {
        say(c, "target.ciphers \"%s\": %s", c->ciphers, ssh_get_error(c->s));
        goto out;
    }
    r = 0;
out:
    free(copy);
    return r;
}

/* The session's settings: host, user, socket, known_hosts, ciphers. */
static int set_options(struct lchan *c, const struct ssh_opts *o)
{
    unsigned port = (unsigned)o->port;
    bool no = false;
    socket_t fd = c->lib_fd;

    if (ssh_options_set(c->s, SSH_OPTIONS_PROCESS_CONFIG, &no) != SSH_OK ||
        ssh_options_set(c->s, SSH_OPTIONS_HOST, o->host) != SSH_OK ||
        ssh_options_set(c->s, SSH_OPTIONS_PORT, &port) != SSH_OK ||
        (o->user && o->user[0] &&
         ssh_options_set(c->s, SSH_OPTIONS_USER, o->user) != SSH_OK) ||
        ssh_options_set(c->s, SSH_OPTIONS_KNOWNHOSTS, o->known_hosts) !=
            SSH_OK ||
        ssh_options_set(c->s, SSH_OPTIONS_GLOBAL_KNOWNHOSTS, "/dev/null") !=
            SSH_OK ||
        ssh_options_set(c->s, SSH_OPTIONS_PUBLICKEY_ACCEPTED_TYPES,
                        KEY_TYPES) != SSH_OK ||
        ssh_options_set(c->s, SSH_OPTIONS_FD, &fd) != SSH_OK) {
        say(c, "%s: setting up libssh: %s", c->base.peer, ssh_get_error(c->s));
        return -EINVAL;
    }
    return set_ciphers(c, o->ciphers ? o->ciphers : "");
}

/*
 * The server's host key must be in o->known_hosts; anything else fails
 * closed with -EKEYREJECTED.
 */
static int check_host_key(struct lchan *c, const char *file)
{
    ssh_key key = NULL;
    unsigned char *hash = NULL;
    size_t hlen = 0;
    char *fp = NULL;
    const char *type = "unknown", *why = "";
    int r = -EKEYREJECTED;

    if (ssh_get_server_publickey(c->s, &key) != SSH_OK) {
        say(c, "%s: no host key: %s", c->base.peer, ssh_get_error(c->s));
        goto out;
    }
    type = ssh_key_type_to_char(ssh_key_type(key));
    if (ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &hlen) ==
        SSH_OK)
        fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, hlen);
    switch (ssh_session_is_known_server(c->s)) {
    case SSH_KNOWN_HOSTS_OK:
        r = 0;
        goto out;
    case SSH_KNOWN_HOSTS_CHANGED:
        say(c,
            "%s: host key CHANGED: the server shows %s %s, which does not "
            "match known_hosts %s; refusing to connect",
            c->base.peer, type, fp ? fp : "?", file);
        goto out;
    case SSH_KNOWN_HOSTS_OTHER:
        why = ", which holds a key of another type for this host";
        break;
    case SSH_KNOWN_HOSTS_UNKNOWN:
        break;
    case SSH_KNOWN_HOSTS_NOT_FOUND:
        why = " (missing)";
        break;
    default:
        say(c, "%s: host key %s %s could not be checked against %s: %s",
            c->base.peer, type, fp ? fp : "?", file, ssh_get_error(c->s));
        goto out;
    }
    say(c, "%s: host key %s %s is not in known_hosts %s%s; refusing to connect",
        c->base.peer, type, fp ? fp : "?", file, why);
out:
    ssh_string_free_char(fp);
    ssh_clean_pubkey_hash(&hash);
    ssh_key_free(key);
    return r;
}

/*
 * One login attempt: an ssh_userauth_*() call (done again while it says
 * SSH_AUTH_AGAIN).  SSH_AUTH_SUCCESS, SSH_AUTH_DENIED (or PARTIAL),
 * SSH_AUTH_ERROR, or SSH_AUTH_AGAIN when the wait gave up.
 */
enum auth_kind { AUTH_KEY, AUTH_PASSWORD, AUTH_AGENT };

static int auth_call(struct lchan *c, enum auth_kind kind, ssh_key key,
                     const char *pw)
{
    int rc;

    do {
        if (kind == AUTH_KEY)
            rc = ssh_userauth_publickey(c->s, NULL, key);
        else if (kind == AUTH_PASSWORD)
            rc = ssh_userauth_password(c->s, NULL, pw);
        else
            rc = ssh_userauth_agent(c->s, NULL);
    } while (again(c, rc == SSH_AUTH_AGAIN ? SSH_AGAIN : rc));
    return rc;
}

static int auth_key(struct lchan *c, const struct ssh_opts *o, char *why,
                    size_t whylen)
{
    char pass[SECRET_MAX] = "";
    ssh_key key = NULL;
    int rc = SSH_AUTH_DENIED, r;

    if (o->passphrase_file && o->passphrase_file[0]) {
        r = secret_read_for("passphrase_file", o->passphrase_file, pass,
                            sizeof(pass), why, whylen);
        if (r < 0)
            goto out;
    }
    /* Never NULL: OpenSSL would ask for an encrypted PEM key's on a tty. */
    r = ssh_pki_import_privkey_file(o->identity, pass, NULL, NULL, &key);
    explicit_bzero(pass, sizeof(pass));
    if (r == SSH_EOF) {
        snprintf(why, whylen, "key %s: cannot be read", o->identity);
        goto out;
    }
    if (r != SSH_OK) {
        snprintf(why, whylen, "key %s: not a private key, or %s", o->identity,
                 o->passphrase_file && o->passphrase_file[0]
                     ? "the passphrase is wrong"
                     : "it needs a passphrase (passphrase_file)");
        goto out;
    }
    rc = auth_call(c, AUTH_KEY, key, NULL);
    if (rc == SSH_AUTH_DENIED || rc == SSH_AUTH_PARTIAL)
        snprintf(why, whylen, "key %s: refused", o->identity);
out:
    explicit_bzero(pass, sizeof(pass));
    ssh_key_free(key);
    return rc;
}

static int auth_password(struct lchan *c, const struct ssh_opts *o, char *why,
                         size_t whylen)
{
    char pw[SECRET_MAX];
    int rc, r;

    r = secret_read_for("password_file", o->password_file, pw, sizeof(pw),
                        why, whylen);
    if (r < 0)
        return SSH_AUTH_DENIED;
    rc = auth_call(c, AUTH_PASSWORD, NULL, pw);
    explicit_bzero(pw, sizeof(pw));
    if (rc == SSH_AUTH_DENIED || rc == SSH_AUTH_PARTIAL)
        snprintf(why, whylen, "password from %s: refused", o->password_file);
    return rc;
}

static int auth_agent(struct lchan *c, char *why, size_t whylen)
{
    const char *sock = getenv("SSH_AUTH_SOCK");
    int rc;

    if (sock == NULL || sock[0] == '\0') {
        snprintf(why, whylen, "ssh-agent: not reachable (SSH_AUTH_SOCK)");
        return SSH_AUTH_DENIED;
    }
    rc = auth_call(c, AUTH_AGENT, NULL, NULL);
    if (rc == SSH_AUTH_DENIED || rc == SSH_AUTH_PARTIAL)
        snprintf(why, whylen, "ssh-agent: no key accepted");
    return rc;
}

/* Identity file, then password file; ssh-agent when neither is set. */
static int authenticate(struct lchan *c, const struct ssh_opts *o)
{
    int has_key = o->identity && o->identity[0];
    int has_pw = o->password_file && o->password_file[0];
    char why[3][300] = {"", "", ""};
    int rc = SSH_AUTH_DENIED;

    if (has_key)
        rc = auth_key(c, o, why[0], sizeof(why[0]));
    if ((rc == SSH_AUTH_DENIED || rc == SSH_AUTH_PARTIAL) && has_pw)
        rc = auth_password(c, o, why[1], sizeof(why[1]));
    if ((rc == SSH_AUTH_DENIED || rc == SSH_AUTH_PARTIAL) && !has_key &&
        !has_pw)
        rc = auth_agent(c, why[2], sizeof(why[2]));
    if (rc == SSH_AUTH_SUCCESS)
        return 0;
    if (rc == SSH_AUTH_AGAIN)
        return fail(c, SSH_AGAIN, "login");
    if (rc == SSH_AUTH_ERROR)
        return fail(c, SSH_ERROR, "login");
    say(c, "%s: login as %s refused (%s%s%s%s%s)", c->base.peer,
        o->user ? o->user : "?", why[0], why[0][0] && why[1][0] ? "; " : "",
        why[1], (why[0][0] || why[1][0]) && why[2][0] ? "; " : "", why[2]);
    return -EPERM;
}

/* A session channel with the "sftp" subsystem. */
static int open_channel(struct lchan *c)
{
    int rc;

    c->ch = ssh_channel_new(c->s);
    if (c->ch == NULL) {
        say(c, "%s: out of memory", c->base.peer);
        return -ENOMEM;
    }
    do {
        rc = ssh_channel_open_session(c->ch);
    } while (again(c, rc));
    if (rc != SSH_OK)
        return fail(c, rc, "opening a session channel");
    do {
        rc = ssh_channel_request_subsystem(c->ch, "sftp");
    } while (again(c, rc));
    if (rc != SSH_OK)
        return fail(c, rc, "starting the sftp subsystem");
    return 0;
}

static void lssh_close(struct ssh_chan *base);

static int lssh_open(const struct ssh_opts *o, struct ssh_chan **out, char *err,
                     size_t errlen)
{
    struct lchan *c = NULL;
    FILE *kh;
    int r = -ENOMEM, rc;

    *out = NULL;
    pthread_once(&init_once, init_libssh);
    if (init_rc != SSH_OK) {
        snprintf(err, errlen, "libssh could not be initialised");
        return -ENOMEM;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    c->base.ops = &ssh_libssh;
    c->fd = c->lib_fd = -1;
    c->timeout_ms = o->timeout_ms;
    c->cancel_fd = o->cancel_fd;
    c->keepalive = o->keepalive;
    ssh_peer_name(o->host, o->port, c->base.peer, sizeof(c->base.peer));
    kh = fopen(o->known_hosts, "re");
    if (kh == NULL) {
        r = -EKEYREJECTED;
        say(c, "%s: cannot check the host key: known_hosts %s: %s",
            c->base.peer, o->known_hosts, strerror(errno));
        goto out;
    }
    fclose(kh);
    c->s = ssh_new();
    if (c->s == NULL) {
        say(c, "out of memory");
        goto out;
    }
    ssh_set_blocking(c->s, 0);
    c->fd = ssh_tcp_connect(o, c->base.err, sizeof(c->base.err));
    if (c->fd < 0) {
        r = c->fd;
        goto out;
    }
    c->lib_fd = fcntl(c->fd, F_DUPFD_CLOEXEC, 0);
    if (c->lib_fd < 0) {
        r = -errno;
        say(c, "%s: %s", c->base.peer, strerror(-r));
        goto out;
    }
    r = set_options(c, o);
    if (r < 0)
        goto out;
    c->lib_fd = -1; /* transferred: ssh_connect() takes it */
    do {
        rc = ssh_connect(c->s);
        keep_nonblocking(c);
    } while (again(c, rc));
    if (rc != SSH_OK) {
        r = fail(c, rc, "SSH handshake");
        goto out;
    }
    r = check_host_key(c, o->known_hosts);
    if (r < 0)
        goto out;
    r = authenticate(c, o);
    if (r < 0)
        goto out;
    r = open_channel(c);
    if (r < 0)
        goto out;
    c->last_out = now_ms();
    *out = &c->base;
    c = NULL; /* transferred */
out:
    if (c) {
        snprintf(err, errlen, "%s", c->base.err);
        lssh_close(&c->base);
    }
    return r;
}

static ssize_t lssh_send(struct ssh_chan *base, const void *buf, size_t len)
{
    struct lchan *c = (struct lchan *)base;
    int rc;

    /* What libssh still holds goes first: take nothing more until then. */
    if (ssh_get_poll_flags(c->s) & SSH_WRITE_PENDING) {
        rc = ssh_blocking_flush(c->s, 0);
        if (rc == SSH_AGAIN)
            return 0;
        if (rc != SSH_OK)
            return fail(c, rc, "sending");
    }
    if (ssh_channel_is_closed(c->ch) || ssh_channel_is_eof(c->ch)) {
        say(c, "%s: the server closed the sftp channel", c->base.peer);
        return -EPIPE;
    }
    if (len > SEND_MAX)
        len = SEND_MAX;
    rc = ssh_channel_write(c->ch, buf, (uint32_t)len);
    if (rc < 0)
        return fail(c, rc, "sending");
    if (rc > 0)
        c->last_out = now_ms();
    return rc;
}

static ssize_t lssh_recv(struct ssh_chan *base, void *buf, size_t len)
{
    struct lchan *c = (struct lchan *)base;
    int n;

    if (len > SEND_MAX)
        len = SEND_MAX;
    n = ssh_channel_read_nonblocking(c->ch, buf, (uint32_t)len, 0);
    if (n > 0)
        return n;
    if (n == SSH_ERROR)
        return fail(c, n, "receiving");
    if (n == SSH_EOF || ssh_channel_is_eof(c->ch) ||
        ssh_channel_is_closed(c->ch)) {
        say(c, "%s: the server closed the sftp channel", c->base.peer);
        return -EPIPE;
    }
    return 0;
}

static int lssh_wait(struct ssh_chan *base, int for_send)
{
    struct lchan *c = (struct lchan *)base;
    int64_t start = now_ms(), t, left, due;
    int held, n, r;

    for (;;) {
        /* libssh reads what came and writes what it holds, at once. */
        r = ssh_blocking_flush(c->s, 0);
        if (r != SSH_OK && r != SSH_AGAIN)
            return fail(c, r, "waiting for the server");
        held = r == SSH_AGAIN;
        n = ssh_channel_poll(c->ch, 0);
        if (n == SSH_ERROR)
            return fail(c, n, "waiting for the server");
        if (n != 0 || ssh_channel_is_closed(c->ch))
            return 0; /* bytes or the end: recv() says which */
        if (for_send && !held && ssh_channel_window_size(c->ch) > 0)
            return 0;
        t = now_ms();
        left = c->timeout_ms - (t - start);
        if (left <= 0) {
            c->wait_err = -ETIMEDOUT;
            return fail(c, SSH_AGAIN, "waiting for the server");
        }
        if (c->keepalive > 0) {
            due = c->last_out + (int64_t)c->keepalive * 1000 - t;
            if (due <= 0) {
                if (ssh_send_ignore(c->s, "") != SSH_OK)
                    return fail(c, SSH_ERROR, "sending a keepalive");
                c->last_out = t;
                continue;
            }
            if (due < left)
                left = due;
        }
        r = ssh_poll(c->fd, held ? POLLIN | POLLOUT : POLLIN, c->cancel_fd,
                     (int)left);
        if (r < 0 && r != -ETIMEDOUT) {
            c->wait_err = r;
            return fail(c, SSH_AGAIN, "waiting for the server");
        }
    }
}

static void lssh_close(struct ssh_chan *base)
{
    struct lchan *c = (struct lchan *)base;

    if (c == NULL)
        return;
    if (c->ch) {
        ssh_channel_close(c->ch); /* best effort: never waits */
        ssh_channel_free(c->ch);
    }
    if (c->s) {
        ssh_disconnect(c->s);
        ssh_free(c->s);
    }
    if (c->lib_fd >= 0)
        close(c->lib_fd);
    if (c->fd >= 0)
        close(c->fd);
    free(c);
}

const struct ssh_backend ssh_libssh = {
    .name = "libssh",
    .open = lssh_open,
    .send = lssh_send,
    .recv = lssh_recv,
    .wait = lssh_wait,
    .close = lssh_close,
};
