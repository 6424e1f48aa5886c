/*
 * The "libssh2" SSH backend (sshchan.h): libssh2 in non-blocking mode.
 *
 * Every libssh2 call of open() runs in a loop: on LIBSSH2_ERROR_EAGAIN,
 * again() polls the socket in the directions
 * libssh2_session_block_directions() reports, and the cancel descriptor,
 * for at most timeout_ms.  After open(), nothing blocks but wait().
 *
 * libssh2 asks that a write which returned EAGAIN be repeated with the
 * same bytes: it may have queued them already.  send() therefore keeps a
 * copy of what it handed over (at most one SSH packet, PEND_MAX), reports
 * those bytes taken, and writes the copy again until libssh2 has all of
 * it; wait() does so too, so that a request is never left half sent.
 *
 * The host key must be in known_hosts; an unknown or changed key ends the
 * connection before anything is sent.  Secrets are read from their files
 * just before use and wiped after; only file names reach messages.
 *
 * libssh2 1.10 has no GCM or chacha20 ciphers and cannot verify
 * rsa-sha2-256/512 host keys; both are detected at run time, so a newer
 * libssh2 is used as it is.
 */
#include "config.h"

#include <errno.h>
#include <libssh2.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sftprelay/log.h"
#include "sftprelay/secret.h"
#include "sftprelay/sshchan.h"

/* The largest channel packet libssh2 sends; what send() may hold. */
#define PEND_MAX 32768

/*
 * Every block libssh2 allocates for a session is linked here, so that what
 * it leaves behind when a connection dies is freed with the session:
 * libssh2 1.10 keeps blocks (queued packets, handles) whose close could not
 * be sent.
 */
struct block {
    struct block *prev, *next;
};

struct l2_chan {
    struct ssh_chan base;
    struct block arena; /* list head */
    int sock;
    int cancel_fd;
    int timeout_ms;
    int keepalive;
    int wait_err; /* why the last wait gave up: -ETIMEDOUT, -ECANCELED */
    LIBSSH2_SESSION *ssh;
    LIBSSH2_CHANNEL *ch;
    size_t pend_len; /* bytes taken by send() that libssh2 has not yet */
    unsigned char pend[PEND_MAX];
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
    struct l2_chan *c = *abstract;
    struct block *b = malloc(sizeof(*b) + n);

    if (b == NULL)
        return NULL;
    link_block(&c->arena, b);
    return b + 1;
}

static void arena_free(void *p, void **abstract)
{
    struct block *b = (struct block *)p - 1;

    (void)abstract;
    if (p == NULL)
        return;
    unlink_block(b);
    free(b);
}

static void *arena_realloc(void *p, size_t n, void **abstract)
{
    struct l2_chan *c = *abstract;
    struct block *b, *nb;

    if (p == NULL)
        return arena_alloc(n, abstract);
    b = (struct block *)p - 1;
    unlink_block(b);
    nb = realloc(b, sizeof(*b) + n);
    if (nb == NULL) {
        link_block(&c->arena, b);
        return NULL;
    }
    link_block(&c->arena, nb);
    return nb + 1;
}

/* Free what libssh2 left of a session it has let go of. */
static void arena_clear(struct l2_chan *c)
{
    struct block *b;
    int n = 0;

    while (c->arena.next != &c->arena) {
        b = c->arena.next;
        unlink_block(b);
        free(b);
        n++;
    }
    if (n > 0)
        log_debug("%s: freed %d blocks libssh2 left behind", c->base.peer, n);
}

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_rc;

static void init_libssh2(void)
{
    init_rc = libssh2_init(0);
}

/*
 * libssh2 error codes as errno values: the one place they are translated.
 * EAGAIN here means a wait gave up, for the reason it kept.
 */
static int ssh2_errno(const struct l2_chan *c, int rc)
{
    switch (rc) {
    case 0:
        return 0;
    case LIBSSH2_ERROR_EAGAIN:
        return c->wait_err ? c->wait_err : -ETIMEDOUT;
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
    case LIBSSH2_ERROR_CHANNEL_REQUEST_DENIED:
        return -EPROTO;
    default:
        return -EIO;
    }
}

/* Write the reason for r to c->base.err; returns r. */
static int say(struct l2_chan *c, int r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int say(struct l2_chan *c, int r, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(c->base.err, sizeof(c->base.err), fmt, ap);
    va_end(ap);
    return r;
}

/*
 * Record what failed ("what": a verb and an object) with libssh2's own
 * words, and return the errno.
 */
static int fail(struct l2_chan *c, int rc, const char *what)
{
    int r = ssh2_errno(c, rc);
    char *msg = NULL;

    if (rc != LIBSSH2_ERROR_EAGAIN && c->ssh)
        libssh2_session_last_error(c->ssh, &msg, NULL, 0);
    return say(c, r, "%s: %s: %s", c->base.peer, what,
               msg && *msg ? msg : strerror(-r));
}

/* The last libssh2 error of the session, as a call's return code. */
static int last_rc(const struct l2_chan *c)
{
    return libssh2_session_last_errno(c->ssh);
}

/* The events to poll the socket for, as libssh2 asks. */
static short block_events(const struct l2_chan *c)
{
    int dirs = libssh2_session_block_directions(c->ssh);
    short ev = 0;

    if (dirs & LIBSSH2_SESSION_BLOCK_INBOUND)
        ev |= POLLIN;
    if (dirs & LIBSSH2_SESSION_BLOCK_OUTBOUND)
        ev |= POLLOUT;
    return ev ? ev : POLLIN;
}

/*
 * After a libssh2 call: whether to call it again.  On EAGAIN wait for the
 * socket; give up (0) on timeout or cancel, keeping the reason.
 */
static int again(struct l2_chan *c, int rc)
{
    int r;

    if (rc != LIBSSH2_ERROR_EAGAIN)
        return 0;
    r = ssh_poll(c->sock, block_events(c), c->cancel_fd, c->timeout_ms);
    if (r < 0) {
        c->wait_err = r;
        return 0;
    }
    return 1;
}

/* Whether this libssh2 supports name for method (LIBSSH2_METHOD_*). */
static int supports(LIBSSH2_SESSION *ssh, int method, const char *name)
{
    const char **algs = NULL;
    int n, i, found = 0;

    n = libssh2_session_supported_algs(ssh, method, &algs);
    for (i = 0; i < n; i++)
        if (strcmp(algs[i], name) == 0)
            found = 1;
    if (n > 0)
        libssh2_free(ssh, algs);
    return found;
}

/* The ciphers this libssh2 supports, comma-separated, into buf. */
static void supported_list(LIBSSH2_SESSION *ssh, int method, char *buf,
                           size_t len)
{
    const char **algs = NULL;
    size_t used = 0;
    int n, i;

    buf[0] = '\0';
    n = libssh2_session_supported_algs(ssh, method, &algs);
    for (i = 0; i < n && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? "," : "",
                                 algs[i]);
    if (n > 0)
        libssh2_free(ssh, algs);
}

/*
 * target.ciphers applied to libssh2's default preference, both ways.
 * Returns 0, or -EINVAL naming the cipher this libssh2 lacks.
 */
static int set_ciphers(struct l2_chan *c, const char *spec)
{
    char def[256] = "", list[1024], have[1024], *save = NULL, *tok;
    int r;

    if (supports(c->ssh, LIBSSH2_METHOD_CRYPT_CS, "aes128-gcm@openssh.com") &&
        supports(c->ssh, LIBSSH2_METHOD_CRYPT_CS, "aes256-gcm@openssh.com"))
        strcpy(def, "aes128-gcm@openssh.com,aes256-gcm@openssh.com,");
    strcat(def, "aes128-ctr,aes192-ctr,aes256-ctr");
    r = ssh_cipher_list(spec, def, list, sizeof(list));
    if (r < 0)
        return say(c, -EINVAL, "%s: target.ciphers \"%s\" leaves no cipher",
                   c->base.peer, spec);
    strcpy(have, list);
    for (tok = strtok_r(have, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save))
        if (!supports(c->ssh, LIBSSH2_METHOD_CRYPT_CS, tok))
            break;
    if (tok) {
        char names[1024];

        supported_list(c->ssh, LIBSSH2_METHOD_CRYPT_CS, names, sizeof(names));
        return say(c, -EINVAL,
                   "%s: target.ciphers: %s is not supported by libssh2 %s "
                   "(it supports: %s)",
                   c->base.peer, tok, libssh2_version(0), names);
    }
    if (libssh2_session_method_pref(c->ssh, LIBSSH2_METHOD_CRYPT_CS, list) ||
        libssh2_session_method_pref(c->ssh, LIBSSH2_METHOD_CRYPT_SC, list))
        return fail(c, last_rc(c), "setting target.ciphers");
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
/* The mask of ssh-rsa alone: it is the last of key_types. */
#define RSA_ONLY (1u << (N_KEY_TYPES - 1))

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
 * key the server shows is one we can check.  Returns the mask (bit i for
 * key_types[i]) of the types it holds.
 */
static unsigned prefer_known_types(struct l2_chan *c, const struct ssh_opts *o,
                                   LIBSSH2_KNOWNHOSTS *kh)
{
    struct libssh2_knownhost *prev = NULL, *e;
    char prefs[256] = "";
    unsigned have = 0;
    size_t i;

    while (libssh2_knownhost_get(kh, &e, prev) == 0) {
        prev = e;
        for (i = 0; i < N_KEY_TYPES; i++) {
            int t = key_types[i].knownhost_type;

            if ((e->typemask & LIBSSH2_KNOWNHOST_KEY_MASK) != t)
                continue;
            if (libssh2_knownhost_checkp(kh, o->host, o->port, e->key, 0,
                                         LIBSSH2_KNOWNHOST_TYPE_PLAIN |
                                             LIBSSH2_KNOWNHOST_KEYENC_BASE64 |
                                             t,
                                         NULL) == LIBSSH2_KNOWNHOST_CHECK_MATCH)
                have |= 1u << i;
        }
    }
    for (i = 0; i < N_KEY_TYPES; i++) {
        if (!(have & (1u << i)))
            continue;
        /* A libssh2 that verifies rsa-sha2-* wants them named. */
        if (key_types[i].knownhost_type == LIBSSH2_KNOWNHOST_KEY_SSHRSA &&
            supports(c->ssh, LIBSSH2_METHOD_HOSTKEY, "rsa-sha2-256"))
            snprintf(prefs + strlen(prefs), sizeof(prefs) - strlen(prefs),
                     "%srsa-sha2-512,rsa-sha2-256", prefs[0] ? "," : "");
        snprintf(prefs + strlen(prefs), sizeof(prefs) - strlen(prefs), "%s%s",
                 prefs[0] ? "," : "", key_types[i].name);
    }
    if (prefs[0])
        libssh2_session_method_pref(c->ssh, LIBSSH2_METHOD_HOSTKEY, prefs);
    return have;
}

static int load_known_hosts(struct l2_chan *c, const char *file,
                            LIBSSH2_KNOWNHOSTS **out)
{
    LIBSSH2_KNOWNHOSTS *kh = libssh2_knownhost_init(c->ssh);
    int n;

    *out = NULL;
    if (kh == NULL)
        return say(c, -ENOMEM, "out of memory");
    if (access(file, R_OK) < 0) {
        n = errno;
        libssh2_knownhost_free(kh);
        return say(c, -EKEYREJECTED,
                   "%s: cannot check the host key: known_hosts %s: %s",
                   c->base.peer, file, strerror(n));
    }
    n = libssh2_knownhost_readfile(kh, file, LIBSSH2_KNOWNHOST_FILE_OPENSSH);
    if (n < 0) {
        libssh2_knownhost_free(kh);
        return say(c, -EKEYREJECTED,
                   "%s: cannot check the host key: known_hosts %s "
                   "could not be parsed",
                   c->base.peer, file);
    }
    *out = kh;
    return 0;
}

static int check_host_key(struct l2_chan *c, const struct ssh_opts *o,
                          LIBSSH2_KNOWNHOSTS *kh)
{
    const char *file = o->known_hosts, *name = "unknown";
    const char *key, *hash;
    char fp[64] = "";
    size_t len, i;
    int type, kt = 0, rc;

    key = libssh2_session_hostkey(c->ssh, &len, &type);
    if (key == NULL)
        return say(c, -EKEYREJECTED, "%s: no host key", c->base.peer);
    for (i = 0; i < N_KEY_TYPES; i++) {
        if (key_types[i].hostkey_type == type) {
            kt = key_types[i].knownhost_type;
            name = key_types[i].name;
        }
    }
    hash = libssh2_hostkey_hash(c->ssh, LIBSSH2_HOSTKEY_HASH_SHA256);
    if (hash) {
        strcpy(fp, "SHA256:");
        base64((const unsigned char *)hash, 32, fp + 7);
        fp[strcspn(fp, "=")] = '\0';
    }
    rc = libssh2_knownhost_checkp(
        kh, o->host, o->port, key, len,
        LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW | kt, NULL);
    switch (rc) {
    case LIBSSH2_KNOWNHOST_CHECK_MATCH:
        return 0;
    case LIBSSH2_KNOWNHOST_CHECK_MISMATCH:
        return say(c, -EKEYREJECTED,
                   "%s: host key CHANGED: the server shows %s %s, which "
                   "does not match known_hosts %s; refusing to connect",
                   c->base.peer, name, fp, file);
    case LIBSSH2_KNOWNHOST_CHECK_NOTFOUND:
        return say(c, -EKEYREJECTED,
                   "%s: host key %s %s is not in known_hosts %s; "
                   "refusing to connect",
                   c->base.peer, name, fp, file);
    default:
        return say(c, -EKEYREJECTED,
                   "%s: host key %s %s could not be checked against %s",
                   c->base.peer, name, fp, file);
    }
}

/*
 * The key exchange and the host key check.  A failed exchange with a host
 * known_hosts knows only by ssh-rsa keys is, against OpenSSH >= 8.8, one
 * whose server offers only rsa-sha2-256/512, which libssh2 1.10 cannot
 * verify: say so, and what to do.
 */
static int handshake(struct l2_chan *c, const struct ssh_opts *o)
{
    LIBSSH2_KNOWNHOSTS *kh = NULL;
    unsigned known;
    int rc, r;

    r = load_known_hosts(c, o->known_hosts, &kh);
    if (r < 0)
        return r;
    known = prefer_known_types(c, o, kh);
    do {
        rc = libssh2_session_handshake(c->ssh, c->sock);
    } while (again(c, rc));
    if (rc == LIBSSH2_ERROR_KEX_FAILURE && known == RSA_ONLY &&
        !supports(c->ssh, LIBSSH2_METHOD_HOSTKEY, "rsa-sha2-256"))
        r = say(c, -EPROTO,
                "%s: the server offers only RSA host keys "
                "(rsa-sha2-256/512), which libssh2 %s cannot verify; set "
                "target.transport = \"libssh\", or give the server an "
                "ed25519 host key",
                c->base.peer, libssh2_version(0));
    else if (rc != 0)
        r = fail(c, rc, "SSH handshake");
    else
        r = check_host_key(c, o, kh);
    libssh2_knownhost_free(kh); /* before the session: it uses its memory */
    return r;
}

static int auth_key(struct l2_chan *c, const struct ssh_opts *o, char *why,
                    size_t whylen)
{
    char pass[SECRET_MAX] = "";
    char *msg = NULL;
    int rc, r;

    if (o->passphrase_file[0]) {
        r = secret_read_for("passphrase_file", o->passphrase_file, pass,
                            sizeof(pass), why, whylen);
        if (r < 0)
            return r;
    }
    do {
        rc = libssh2_userauth_publickey_fromfile_ex(
            c->ssh, o->user, (unsigned)strlen(o->user), NULL, o->identity,
            pass[0] ? pass : NULL);
    } while (again(c, rc));
    explicit_bzero(pass, sizeof(pass));
    if (rc != 0) {
        libssh2_session_last_error(c->ssh, &msg, NULL, 0);
        snprintf(why, whylen, "key %s: %s", o->identity, msg ? msg : "refused");
    }
    return rc;
}

static int auth_password(struct l2_chan *c, const struct ssh_opts *o, char *why,
                         size_t whylen)
{
    char pw[SECRET_MAX];
    int rc, r;

    r = secret_read_for("password_file", o->password_file, pw, sizeof(pw),
                        why, whylen);
    if (r < 0)
        return r;
    do {
        rc = libssh2_userauth_password_ex(c->ssh, o->user,
                                          (unsigned)strlen(o->user), pw,
                                          (unsigned)strlen(pw), NULL);
    } while (again(c, rc));
    explicit_bzero(pw, sizeof(pw));
    if (rc != 0)
        snprintf(why, whylen, "password from %s: refused", o->password_file);
    return rc;
}

static int auth_agent(struct l2_chan *c, const struct ssh_opts *o, char *why,
                      size_t whylen)
{
    LIBSSH2_AGENT *agent = libssh2_agent_init(c->ssh);
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
            rc = libssh2_agent_userauth(agent, o->user, id);
        } while (again(c, rc));
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

/*
 * Log in: the key (with its passphrase) if there is one, then the
 * password if there is one; with neither, the keys of ssh-agent.
 */
static int authenticate(struct l2_chan *c, const struct ssh_opts *o)
{
    char why[3][300] = {"", "", ""};
    int rc = -1;

    if (o->identity[0])
        rc = auth_key(c, o, why[0], sizeof(why[0]));
    if (rc != 0 && rc != LIBSSH2_ERROR_EAGAIN && o->password_file[0])
        rc = auth_password(c, o, why[1], sizeof(why[1]));
    if (rc != 0 && rc != LIBSSH2_ERROR_EAGAIN && !o->identity[0] &&
        !o->password_file[0])
        rc = auth_agent(c, o, why[2], sizeof(why[2]));
    if (rc == 0)
        return 0;
    if (rc == LIBSSH2_ERROR_EAGAIN)
        return fail(c, rc, "login");
    return say(c, -EPERM, "%s: login as %s refused (%s%s%s%s%s)", c->base.peer,
               o->user, why[0], why[0][0] && why[1][0] ? "; " : "", why[1],
               (why[0][0] || why[1][0]) && why[2][0] ? "; " : "", why[2]);
}

/* A session channel running the "sftp" subsystem. */
static int start_sftp(struct l2_chan *c)
{
    int rc;

    do {
        c->ch = libssh2_channel_open_session(c->ssh);
    } while (c->ch == NULL && again(c, last_rc(c)));
    if (c->ch == NULL)
        return fail(c, last_rc(c), "opening a session channel");
    do {
        rc = libssh2_channel_subsystem(c->ch, "sftp");
    } while (again(c, rc));
    if (rc != 0)
        return fail(c, rc, "starting the sftp subsystem");
    /* Nothing reads stderr: let it not fill the window. */
    do {
        rc = libssh2_channel_handle_extended_data2(
            c->ch, LIBSSH2_CHANNEL_EXTENDED_DATA_IGNORE);
    } while (again(c, rc));
    return rc == 0 ? 0 : fail(c, rc, "ignoring stderr");
}

static void l2_close(struct ssh_chan *base);

static int l2_open(const struct ssh_opts *o, struct ssh_chan **out, char *err,
                   size_t errlen)
{
    struct l2_chan *c = NULL;
    int r = -ENOMEM;

    *out = NULL;
    pthread_once(&init_once, init_libssh2);
    if (init_rc != 0) {
        snprintf(err, errlen, "libssh2 could not be initialised");
        return -ENOMEM;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    c->base.ops = &ssh_libssh2;
    c->arena.prev = c->arena.next = &c->arena;
    c->cancel_fd = o->cancel_fd;
    c->timeout_ms = o->timeout_ms;
    c->keepalive = o->keepalive;
    ssh_peer_name(o->host, o->port, c->base.peer, sizeof(c->base.peer));
    c->sock = ssh_tcp_connect(o, c->base.err, sizeof(c->base.err));
    if (c->sock < 0) {
        r = c->sock;
        goto out;
    }
    c->ssh = libssh2_session_init_ex(arena_alloc, arena_free, arena_realloc, c);
    if (c->ssh == NULL) {
        r = say(c, -ENOMEM, "out of memory");
        goto out;
    }
    libssh2_session_set_blocking(c->ssh, 0);
    r = set_ciphers(c, o->ciphers);
    if (r < 0)
        goto out;
    r = handshake(c, o);
    if (r < 0)
        goto out;
    if (o->keepalive > 0)
        libssh2_keepalive_config(c->ssh, 0, (unsigned)o->keepalive);
    r = authenticate(c, o);
    if (r < 0)
        goto out;
    r = start_sftp(c);
    if (r < 0)
        goto out;
    log_debug("%s: sftp subsystem started (libssh2 %s, %s)", c->base.peer,
              libssh2_version(0),
              libssh2_session_methods(c->ssh, LIBSSH2_METHOD_CRYPT_CS));
    *out = &c->base;
    c = NULL; /* transferred */
out:
    if (c) {
        snprintf(err, errlen, "%s", c->base.err);
        l2_close(&c->base);
    }
    return r;
}

/*
 * Hand libssh2 again what send() took and it has not yet: the number of
 * bytes it took now (0 none), or a negative errno.
 */
static ssize_t flush(struct l2_chan *c)
{
    ssize_t n;

    if (c->pend_len == 0)
        return 0;
    n = libssh2_channel_write(c->ch, (const char *)c->pend, c->pend_len);
    if (n == LIBSSH2_ERROR_EAGAIN)
        return 0;
    if (n < 0)
        return fail(c, (int)n, "sending");
    c->pend_len -= (size_t)n;
    memmove(c->pend, c->pend + n, c->pend_len);
    return n;
}

static ssize_t l2_send(struct ssh_chan *base, const void *buf, size_t len)
{
    struct l2_chan *c = (struct l2_chan *)base;
    ssize_t n = flush(c);

    if (n < 0)
        return n;
    if (c->pend_len > 0 || len == 0)
        return 0;
    if (len > PEND_MAX)
        len = PEND_MAX;
    n = libssh2_channel_write(c->ch, buf, len);
    if (n >= 0)
        return n;
    if (n != LIBSSH2_ERROR_EAGAIN)
        return fail(c, (int)n, "sending");
    /* libssh2 may hold them already: it wants the same bytes again. */
    memcpy(c->pend, buf, len);
    c->pend_len = len;
    return (ssize_t)len;
}

static ssize_t l2_recv(struct ssh_chan *base, void *buf, size_t len)
{
    struct l2_chan *c = (struct l2_chan *)base;
    ssize_t n = libssh2_channel_read(c->ch, buf, len);

    if (n > 0)
        return n;
    if (n == 0 || n == LIBSSH2_ERROR_EAGAIN) {
        if (!libssh2_channel_eof(c->ch))
            return 0;
        return say(c, -EPIPE, "%s: the server closed the sftp channel",
                   c->base.peer);
    }
    return fail(c, (int)n, "receiving");
}

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Poll the socket in the directions libssh2 asks for (always for input:
 * the peer may answer or open its window), and for output too when
 * send()'s bytes wait and libssh2 says nothing of reading.  Keepalives
 * go out when the connection has nothing else queued.
 */
static int l2_wait(struct ssh_chan *base, int for_send)
{
    struct l2_chan *c = (struct l2_chan *)base;
    long long deadline = now_ms() + c->timeout_ms, left;
    int dirs, next, rc, r;
    ssize_t n;
    short ev;

    for (;;) {
        n = flush(c);
        if (n < 0)
            return (int)n;
        if (n > 0)
            return 0; /* progress */
        dirs = libssh2_session_block_directions(c->ssh);
        next = 0;
        if (c->keepalive > 0 && c->pend_len == 0 &&
            !(dirs & LIBSSH2_SESSION_BLOCK_OUTBOUND)) {
            rc = libssh2_keepalive_send(c->ssh, &next);
            if (rc < 0 && rc != LIBSSH2_ERROR_EAGAIN)
                return fail(c, rc, "sending a keepalive");
        }
        ev = POLLIN;
        if ((dirs & LIBSSH2_SESSION_BLOCK_OUTBOUND) ||
            (for_send && c->pend_len > 0 &&
             !(dirs & LIBSSH2_SESSION_BLOCK_INBOUND)))
            ev |= POLLOUT;
        left = deadline - now_ms();
        if (left <= 0) {
            c->wait_err = -ETIMEDOUT;
            return fail(c, LIBSSH2_ERROR_EAGAIN, "waiting for the server");
        }
        if (next > 0 && (long long)next * 1000 < left)
            left = (long long)next * 1000;
        r = ssh_poll(c->sock, ev, c->cancel_fd, (int)left);
        if (r == -ETIMEDOUT)
            continue; /* a keepalive is due, or the deadline has come */
        if (r < 0) {
            c->wait_err = r;
            return fail(c, LIBSSH2_ERROR_EAGAIN, "waiting for the server");
        }
        n = flush(c); /* the socket moved: push out what we hold */
        return n < 0 ? (int)n : 0;
    }
}

/* How long close() waits for the server at most, in milliseconds. */
#define CLOSE_WAIT_MS 2000

static void l2_close(struct ssh_chan *base)
{
    struct l2_chan *c = (struct l2_chan *)base;
    int rc;

    if (c == NULL)
        return;
    if (c->timeout_ms > CLOSE_WAIT_MS)
        c->timeout_ms = CLOSE_WAIT_MS;
    if (c->ch) {
        do {
            rc = libssh2_channel_close(c->ch);
        } while (again(c, rc));
        libssh2_channel_free(c->ch); /* or with the session */
    }
    if (c->ssh) {
        do {
            rc = libssh2_session_disconnect(c->ssh, "closed");
        } while (again(c, rc));
        /* What could not be sent fails now rather than waits. */
        if (c->sock >= 0)
            shutdown(c->sock, SHUT_RDWR);
        libssh2_session_free(c->ssh);
        arena_clear(c);
    }
    if (c->sock >= 0)
        close(c->sock);
    free(c);
}

const struct ssh_backend ssh_libssh2 = {
    .name = "libssh2",
    .open = l2_open,
    .send = l2_send,
    .recv = l2_recv,
    .wait = l2_wait,
    .close = l2_close,
};
