/*
 * The embedded SFTP server: libssh sessions, one thread each, feeding the
 * SFTP engine (sftpd.c).
 *
 * libssh's callbacks only record: channel data is appended to a buffer
 * that the session loop hands to the engine after each poll, because
 * ssh_channel_write() may process incoming packets, and with them call the
 * data callback again.  Past PENDING_MAX buffered bytes the callback
 * takes nothing more, so the channel window closes and the client waits.
 */
#include "config.h"

#include <arpa/inet.h>
#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <libssh/callbacks.h>
#include <libssh/libssh.h>
#include <libssh/server.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sftprelay/addr.h"
#include "sftprelay/conf.h"
#include "sftprelay/log.h"
#include "sftprelay/loop.h"
#include "sftprelay/server.h"
#include "sftprelay/sftpd.h"
#include "sftprelay/source.h"

#define PENDING_MAX (8 * 1024 * 1024)
#define MAX_AUTH_TRIES 6
#define POLL_MS 500

struct server {
    struct server_opts o;
    struct loop *loop;
    ssh_bind bind;
    int bind_fd;
    int root_fd;
    char address[128];
    pthread_mutex_t lock;
    pthread_cond_t idle;
    int sessions;
    int stopping;
    int64_t written; /* bytes written by every session, for fault tests */
};

struct session {
    struct server *srv;
    ssh_session ssh;
    ssh_channel chan;
    struct ssh_server_callbacks_struct scb;
    struct ssh_channel_callbacks_struct ccb;
    struct sftpd *sftpd;
    struct sftpd_fault fault;
    struct timespec fault_mtime; /* of the fault file when last read */
    off_t fault_size;
    char peer[80];
    char user[64];
    int authed;
    int failures;
    int sftp_requested;
    /* channel data not yet given to the engine */
    uint8_t *pending;
    size_t pending_len, pending_cap;
};

static int64_t now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

/* --- credentials -----------------------------------------------------------
 */

int server_hash_ok(const char *hash)
{
    return hash &&
           (strncmp(hash, "$y$", 3) == 0 || strncmp(hash, "$6$", 3) == 0);
}

int server_hash_password(const char *password, char **out)
{
    struct crypt_data *cd = calloc(1, sizeof(*cd));
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    const char *h;
    int r = -EINVAL;

    *out = NULL;
    if (cd == NULL)
        return -ENOMEM;
    if (crypt_gensalt_rn("$y$", 0, NULL, 0, salt, sizeof(salt)) != NULL) {
        h = crypt_r(password, salt, cd);
        if (h && h[0] == '$') {
            *out = strdup(h);
            r = *out ? 0 : -ENOMEM;
        }
    }
    explicit_bzero(cd, sizeof(*cd));
    free(cd);
    return r;
}

/* --- its keys: the server section of sftprelay.conf(5) --------------------
 */

/* One element of server.users. */
static int check_user(void *settings, const struct conf_scope *s, char *err,
                      size_t errlen)
{
    const struct server_user *u = settings;

    if (u->name[0] == '\0')
        return conf_fail(s, s->line, "name", err, errlen, "required");
    if (u->password_hash == NULL && u->authorized_keys == NULL)
        return conf_fail(s, s->line, NULL, err, errlen,
                         "needs password_hash or authorized_keys");
    if (u->password_hash && !server_hash_ok(u->password_hash))
        return conf_fail(s, conf_scope_line(s, "password_hash"),
                         "password_hash", err, errlen,
                         "not a yescrypt or SHA-512 crypt(3) hash");
    return 0;
}

#define U(f, fl, doc) CONF_KEY_STR(struct server_user, f, #f, NULL, fl, doc)
static const struct conf_key user_keys[] = {
    U(name, CONF_REQUIRED, "the login name"),
    U(password_hash, 0, "crypt(3) hash of the password: yescrypt or SHA-512"),
    U(authorized_keys, 0, "authorized_keys file, read at each login"),
};
#undef U

static const struct conf_table user_table = {
    .section = "users",
    .keys = user_keys,
    .n_keys = CONF_N_KEYS(user_keys),
    .size = sizeof(struct server_user),
    .check = check_user,
};

/* Whether path is dir or below it (textually, after trailing slashes). */
static int inside(const char *path, const char *dir)
{
    size_t n = strlen(dir);

    while (n > 1 && dir[n - 1] == '/')
        n--;
    return strncmp(path, dir, n) == 0 &&
           (path[n] == '\0' || path[n] == '/' || (n == 1 && dir[0] == '/'));
}

/* server.listen is required once any server key is set. */
static int check_listen(const struct server_conf *sc,
                        const struct conf_scope *s, char *err, size_t errlen)
{
    if (sc->listen == NULL && conf_scope_any_line(s))
        return conf_fail(s, conf_scope_any_line(s), "listen", err, errlen,
                         "required when the server section is present");
    if (sc->listen == NULL)
        return 0;
    if (sc->n_users == 0)
        return conf_fail(s, conf_scope_line(s, "listen"), "users", err, errlen,
                         "at least one user is needed");
    return 0;
}

static int check_server(void *settings, const struct conf_scope *s, char *err,
                        size_t errlen)
{
    struct server_conf *sc = settings;
    const char *source = s->c->source.path;
    const struct source_ops *ops = source_find(s->c->source.type);
    int r;

    r = check_listen(sc, s, err, errlen);
    if (r < 0 || sc->listen == NULL)
        return r;
    if (ops == NULL || !ops->watched)
        return conf_fail(s, conf_scope_line(s, "listen"), "listen", err,
                         errlen, "uploads land in a local source.path, and "
                         "source.type \"%s\" is not a local folder",
                         s->c->source.type);
    if (sc->root == NULL) {
        sc->root = strdup(source);
        if (sc->root == NULL)
            return -ENOMEM;
    }
    if (!inside(sc->root, source))
        return conf_fail(s, conf_scope_line(s, "root"), "root", err, errlen,
                         "\"%s\" is not source.path or inside it, so "
                         "uploads would not be replicated",
                         sc->root);
    return 0;
}

#define SC struct server_conf
static const struct conf_key server_keys[] = {
    CONF_KEY_STR(SC, listen, "listen", NULL, 0,
                 "ADDRESS:PORT of the embedded SFTP server (none: no "
                 "server)"),
    CONF_KEY_STRV(SC, host_keys, n_host_keys, "host_keys",
                  "/etc/sftprelay/ssh_host_ed25519_key",
                  "host key files (generated if missing)"),
    CONF_KEY_STR(SC, root, "root", NULL, 0,
                 "folder clients see as / (default: source.path)"),
    CONF_KEY_INT(SC, max_sessions, "max_sessions", 64, 1, 10000,
                 "sessions at once"),
    CONF_KEY_INT(SC, idle_timeout, "idle_timeout", 600, 1, 86400,
                 "seconds an idle session is kept"),
    CONF_KEY_GROUPS(SC, users, n_users, "users", &user_table,
                    "logins: ( { name; password_hash; authorized_keys; } )"),
};
#undef SC

const struct conf_table server_conf_table = {
    .section = "server",
    .title = "server",
    .keys = server_keys,
    .n_keys = CONF_N_KEYS(server_keys),
    .size = sizeof(struct server_conf),
    .check = check_server,
};

/* Constant-time comparison of two strings of the same length. */
static int same(const char *a, const char *b)
{
    size_t n = strlen(a), i;
    unsigned char d = 0;

    if (n != strlen(b))
        return 0;
    for (i = 0; i < n; i++)
        d |= (unsigned char)(a[i] ^ b[i]);
    return d == 0;
}

static int password_ok(const char *hash, const char *password)
{
    struct crypt_data *cd;
    const char *h;
    int ok;

    if (!server_hash_ok(hash))
        return 0;
    cd = calloc(1, sizeof(*cd));
    if (cd == NULL)
        return 0;
    h = crypt_r(password, hash, cd);
    ok = h && h[0] == '$' && same(h, hash);
    explicit_bzero(cd, sizeof(*cd));
    free(cd);
    return ok;
}

/*
 * Whether key is listed in the authorized_keys file.  Lines with options
 * before the key type are skipped: their restrictions are not enforced
 * here, so the key must not be accepted without them.
 */
static int key_authorized(const char *file, const ssh_key key, const char *peer)
{
    char line[16384], *save = NULL, *type, *b64;
    FILE *f = fopen(file, "re");
    int ok = 0, lineno = 0;

    if (f == NULL) {
        log_warn("authorized_keys %s: %s", file, strerror(errno));
        return 0;
    }
    while (!ok && fgets(line, sizeof(line), f)) {
        ssh_key k = NULL;
        enum ssh_keytypes_e t;

        lineno++;
        type = strtok_r(line, " \t\r\n", &save);
        if (type == NULL || type[0] == '#')
            continue;
        t = ssh_key_type_from_name(type);
        if (t == SSH_KEYTYPE_UNKNOWN) {
            log_warn("%s:%d: key options are not supported; line skipped", file,
                     lineno);
            continue;
        }
        b64 = strtok_r(NULL, " \t\r\n", &save);
        if (b64 == NULL || ssh_pki_import_pubkey_base64(b64, t, &k) != SSH_OK)
            continue;
        ok = ssh_key_cmp(k, key, SSH_KEY_CMP_PUBLIC) == 0;
        ssh_key_free(k);
    }
    fclose(f);
    (void)peer;
    return ok;
}

static const struct server_user *find_user(const struct server *srv,
                                           const char *name)
{
    size_t i;

    for (i = 0; i < srv->o.n_users; i++)
        if (strcmp(srv->o.users[i].name, name) == 0)
            return &srv->o.users[i];
    return NULL;
}

/* After a failed login: log it, slow the peer down, maybe hang up. */
static int refuse(struct session *ss, const char *what, const char *user)
{
    ss->failures++;
    log_warn("%s: failed %s for %s (%d of %d)", ss->peer, what, user,
             ss->failures, MAX_AUTH_TRIES);
    sleep((unsigned)(ss->failures < 5 ? ss->failures : 5));
    if (ss->failures >= MAX_AUTH_TRIES) {
        log_warn("%s: too many failed logins; disconnecting", ss->peer);
        ssh_disconnect(ss->ssh);
    }
    return SSH_AUTH_DENIED;
}

static int on_auth_password(ssh_session s, const char *user,
                            const char *password, void *arg)
{
    struct session *ss = arg;
    const struct server_user *u = find_user(ss->srv, user);

    if (u && u->password_hash && password_ok(u->password_hash, password)) {
        snprintf(ss->user, sizeof(ss->user), "%s", user);
        ss->authed = 1;
        log_info("%s: %s logged in with a password", ss->peer, user);
        return SSH_AUTH_SUCCESS;
    }
    return refuse(ss, "password", user);
}

static int on_auth_pubkey(ssh_session s, const char *user,
                          struct ssh_key_struct *key, char state, void *arg)
{
    struct session *ss = arg;
    const struct server_user *u = find_user(ss->srv, user);
    int ok = u && u->authorized_keys &&
             key_authorized(u->authorized_keys, key, ss->peer);

    if (state == SSH_PUBLICKEY_STATE_NONE)
        return ok ? SSH_AUTH_SUCCESS : SSH_AUTH_DENIED; /* a probe */
    if (ok && state == SSH_PUBLICKEY_STATE_VALID) {
        snprintf(ss->user, sizeof(ss->user), "%s", user);
        ss->authed = 1;
        log_info("%s: %s logged in with a key", ss->peer, user);
        return SSH_AUTH_SUCCESS;
    }
    return refuse(ss, "public key", user);
}

/* --- channel ---------------------------------------------------------------
 */

static int on_data(ssh_session s, ssh_channel c, void *data, uint32_t len,
                   int is_stderr, void *arg)
{
    struct session *ss = arg;
    size_t cap;
    uint8_t *p;

    if (is_stderr || ss->sftpd == NULL)
        return (int)len;
    if (ss->pending_len >= PENDING_MAX)
        return 0; /* keep it in libssh's buffer; the window closes */
    if (ss->pending_len + len > ss->pending_cap) {
        cap = ss->pending_cap ? ss->pending_cap : 65536;
        while (cap < ss->pending_len + len)
            cap *= 2;
        p = realloc(ss->pending, cap);
        if (p == NULL)
            return 0;
        ss->pending = p;
        ss->pending_cap = cap;
    }
    memcpy(ss->pending + ss->pending_len, data, len);
    ss->pending_len += len;
    return (int)len;
}

static int on_send(void *arg, const void *buf, size_t len)
{
    struct session *ss = arg;
    const uint8_t *p = buf;

    while (len > 0) {
        uint32_t n = len > 65536 ? 65536 : (uint32_t)len;
        int w = ssh_channel_write(ss->chan, p, n);

        if (w < 0)
            return -ECONNRESET;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

static void on_uploaded(void *arg, const char *rel, const struct stat *st,
                        int64_t written)
{
    struct session *ss = arg;

    log_info("%s: %s uploaded %s (%lld bytes, %lld written in this session)",
             ss->peer, ss->user, rel, (long long)st->st_size,
             (long long)written);
    if (ss->srv->o.uploaded)
        ss->srv->o.uploaded(ss->srv->o.arg, rel, st, ss->peer);
}

static void on_abandoned(void *arg, const char *rel, const struct stat *st)
{
    struct session *ss = arg;

    log_warn("%s: %s left %s unfinished (%lld bytes); not queued", ss->peer,
             ss->user, rel, (long long)st->st_size);
    if (ss->srv->o.abandoned)
        ss->srv->o.abandoned(ss->srv->o.arg, rel, st, ss->peer);
}

static int64_t on_count(void *arg, int64_t n)
{
    struct session *ss = arg;

    return __atomic_add_fetch(&ss->srv->written, n, __ATOMIC_RELAXED);
}

static int on_subsystem(ssh_session s, ssh_channel c, const char *name,
                        void *arg)
{
    struct session *ss = arg;
    struct sftpd_opts o = {.root_fd = ss->srv->root_fd,
                           .peer = ss->peer,
                           .user = ss->user,
                           .fault = &ss->fault};
    struct sftpd_cb cb = {.send = on_send,
                          .uploaded = on_uploaded,
                          .abandoned = on_abandoned,
                          .count_written = on_count,
                          .arg = ss};

    if (strcmp(name, "sftp") != 0 || ss->sftpd != NULL) {
        log_warn("%s: subsystem \"%s\" refused", ss->peer, name);
        return SSH_ERROR;
    }
    if (sftpd_new(&o, &cb, &ss->sftpd) < 0)
        return SSH_ERROR;
    ss->sftp_requested = 1;
    return SSH_OK;
}

static ssh_channel on_channel_open(ssh_session s, void *arg)
{
    struct session *ss = arg;

    if (ss->chan != NULL)
        return NULL; /* one channel per session */
    ss->chan = ssh_channel_new(s);
    if (ss->chan == NULL)
        return NULL;
    memset(&ss->ccb, 0, sizeof(ss->ccb));
    ss->ccb.userdata = ss;
    ss->ccb.channel_data_function = on_data;
    ss->ccb.channel_subsystem_request_function = on_subsystem;
    ssh_callbacks_init(&ss->ccb);
    ssh_set_channel_callbacks(ss->chan, &ss->ccb);
    return ss->chan;
}

/* --- fault injection (tests) ------------------------------------------------
 */

/*
 * Re-read the fault file when it changes.  Lines: "write_error ENOSPC",
 * "write_error EACCES", "write_error_offset N" (write_error only for
 * writes reaching past byte N of a file), "stall_ms N", "drop_after_bytes
 * N", "no_limits 1" (limits@openssh.com not offered to sessions that
 * start after), "max_write N" (longer writes fail).  A missing or empty
 * file means no fault.
 */
static void load_fault(struct session *ss)
{
    const char *file = ss->srv->o.fault_file;
    struct stat st;
    char key[32], val[32];
    FILE *f;

    if (file == NULL)
        return;
    if (stat(file, &st) < 0)
        memset(&st, 0, sizeof(st));
    if (st.st_mtim.tv_sec == ss->fault_mtime.tv_sec &&
        st.st_mtim.tv_nsec == ss->fault_mtime.tv_nsec &&
        st.st_size == ss->fault_size && ss->fault_mtime.tv_sec != 0)
        return;
    ss->fault_mtime = st.st_mtim;
    ss->fault_size = st.st_size;
    memset(&ss->fault, 0, sizeof(ss->fault));
    ss->fault.drop_after = -1;
    f = fopen(file, "re");
    if (f == NULL)
        return;
    while (fscanf(f, "%31s %31s", key, val) == 2) {
        if (strcmp(key, "write_error") == 0)
            ss->fault.write_errno = strcmp(val, "ENOSPC") == 0   ? ENOSPC
                                    : strcmp(val, "EACCES") == 0 ? EACCES
                                                                 : 0;
        else if (strcmp(key, "stall_ms") == 0)
            ss->fault.stall_ms = atoi(val);
        else if (strcmp(key, "drop_after_bytes") == 0)
            ss->fault.drop_after = strtoll(val, NULL, 10);
        else if (strcmp(key, "write_error_offset") == 0)
            ss->fault.write_errno_from = strtoll(val, NULL, 10);
        else if (strcmp(key, "no_limits") == 0)
            ss->fault.no_limits = atoi(val);
        else if (strcmp(key, "max_write") == 0)
            ss->fault.max_write = strtoul(val, NULL, 10);
    }
    fclose(f);
}

/* --- a session --------------------------------------------------------------
 */

/* Hand buffered channel data to the engine; <0 ends the session. */
static int feed(struct session *ss)
{
    uint8_t *buf = ss->pending;
    size_t len = ss->pending_len;
    int r;

    if (len == 0 || ss->sftpd == NULL)
        return 0;
    /* New data that arrives while the engine writes goes to a new buffer. */
    ss->pending = NULL;
    ss->pending_len = ss->pending_cap = 0;
    r = sftpd_input(ss->sftpd, buf, len);
    free(buf);
    return r;
}

/* Route libssh's server callbacks to ss; password and key logins only. */
static void set_server_callbacks(struct session *ss)
{
    ss->scb.userdata = ss;
    ss->scb.auth_password_function = on_auth_password;
    ss->scb.auth_pubkey_function = on_auth_pubkey;
    ss->scb.channel_open_request_session_function = on_channel_open;
    ssh_callbacks_init(&ss->scb);
    ssh_set_server_callbacks(ss->ssh, &ss->scb);
    ssh_set_auth_methods(ss->ssh,
                         SSH_AUTH_METHOD_PASSWORD | SSH_AUTH_METHOD_PUBLICKEY);
}

/*
 * Whether the session should end after a poll: the channel is done with,
 * the server stops, or the peer took longer than the login grace (counted
 * from start) or stayed idle longer than the idle timeout (since last).
 * Logs the timeouts.
 */
static int session_over(struct session *ss, int64_t start, int64_t last)
{
    struct server *srv = ss->srv;
    int stopping;

    if (ss->chan &&
        (ssh_channel_is_eof(ss->chan) || ssh_channel_is_closed(ss->chan)))
        return 1;
    if (ss->chan == NULL && ss->sftp_requested)
        return 1;
    pthread_mutex_lock(&srv->lock);
    stopping = srv->stopping;
    pthread_mutex_unlock(&srv->lock);
    if (stopping)
        return 1;
    if (!ss->sftp_requested && now_s() - start > srv->o.login_grace) {
        log_warn("%s: no login and SFTP within %d s; disconnecting", ss->peer,
                 srv->o.login_grace);
        return 1;
    }
    if (ss->sftp_requested && now_s() - last > srv->o.idle_timeout) {
        log_info("%s: idle for %d s; disconnecting", ss->peer,
                 srv->o.idle_timeout);
        return 1;
    }
    return 0;
}

/*
 * Poll ev and hand what arrives to the engine until the connection drops,
 * a request is malformed or session_over() says so.  start is when the
 * session began, for the login grace.
 */
static void session_poll(struct session *ss, ssh_event ev, int64_t start)
{
    int64_t last = start;
    int r;

    for (;;) {
        r = ssh_event_dopoll(ev, POLL_MS);
        if (r == SSH_ERROR || !ssh_is_connected(ss->ssh))
            break;
        load_fault(ss);
        if (ss->pending_len > 0) {
            last = now_s();
            r = feed(ss);
            if (r < 0) {
                if (r == -EPROTO)
                    log_warn("%s: malformed SFTP request; session ended",
                             ss->peer);
                break;
            }
        }
        if (session_over(ss, start, last))
            break;
    }
}

/*
 * Close and free ss's channel, if any.  As sshd does: EOF, exit status 0,
 * close, then poll ev (if not NULL) a little so the client hangs up.
 */
static void channel_finish(struct session *ss, ssh_event ev)
{
    int i;

    if (ss->chan == NULL)
        return;
    if (!ssh_channel_is_closed(ss->chan)) {
        ssh_channel_send_eof(ss->chan);
        ssh_channel_request_send_exit_status(ss->chan, 0);
        ssh_channel_close(ss->chan);
    }
    if (ev)
        for (i = 0; i < 4 && ssh_is_connected(ss->ssh); i++)
            ssh_event_dopoll(ev, POLL_MS);
    ssh_channel_free(ss->chan);
    ss->chan = NULL;
}

/*
 * One session from key exchange to the end of its channel.  The engine,
 * the channel and the event are freed here; ss->ssh is the caller's.
 */
static void session_run(struct session *ss)
{
    ssh_event ev = NULL;
    int64_t start = now_s();

    set_server_callbacks(ss);
    if (ssh_handle_key_exchange(ss->ssh) != SSH_OK) {
        log_info("%s: key exchange failed: %s", ss->peer,
                 ssh_get_error(ss->ssh));
        goto out;
    }
    ev = ssh_event_new();
    if (ev == NULL || ssh_event_add_session(ev, ss->ssh) != SSH_OK)
        goto out;
    session_poll(ss, ev, start);
out:
    /* Files left open were never finished: report them as such. */
    sftpd_free(ss->sftpd);
    ss->sftpd = NULL;
    channel_finish(ss, ev);
    if (ev) {
        ssh_event_remove_session(ev, ss->ssh);
        ssh_event_free(ev);
    }
}

static void *session_main(void *arg)
{
    struct session *ss = arg;
    struct server *srv = ss->srv;

    session_run(ss);
    ssh_disconnect(ss->ssh);
    ssh_free(ss->ssh);
    log_debug("%s: session closed", ss->peer);
    free(ss->pending);
    free(ss);
    pthread_mutex_lock(&srv->lock);
    if (--srv->sessions == 0)
        pthread_cond_broadcast(&srv->idle);
    pthread_mutex_unlock(&srv->lock);
    return NULL;
}

static void peer_name(int fd, char *buf, size_t len)
{
    struct sockaddr_storage sa;
    socklen_t sl = sizeof(sa);
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;

    if (getpeername(fd, (struct sockaddr *)&sa, &sl) == 0) {
        if (sa.ss_family == AF_INET) {
            struct sockaddr_in *in = (struct sockaddr_in *)&sa;

            inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
            port = ntohs(in->sin_port);
        } else if (sa.ss_family == AF_INET6) {
            struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&sa;

            inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
            port = ntohs(in6->sin6_port);
        }
    }
    snprintf(buf, len, "%s:%d", host, port);
}

static void on_accept(struct loop *l, int fd, uint32_t events, void *arg)
{
    struct server *srv = arg;
    struct session *ss;
    pthread_attr_t at;
    pthread_t t;
    ssh_session s = ssh_new();
    int full, one = 1;

    if (s == NULL)
        return;
    if (ssh_bind_accept(srv->bind, s) != SSH_OK) {
        ssh_free(s);
        return;
    }
    ss = calloc(1, sizeof(*ss));
    if (ss == NULL) {
        ssh_disconnect(s);
        ssh_free(s);
        return;
    }
    ss->srv = srv;
    ss->ssh = s;
    ss->fault.drop_after = -1;
    /* Small replies (status, window adjust) must not wait for Nagle. */
    setsockopt(ssh_get_fd(s), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    peer_name(ssh_get_fd(s), ss->peer, sizeof(ss->peer));
    pthread_mutex_lock(&srv->lock);
    full = srv->sessions >= srv->o.max_sessions;
    if (!full)
        srv->sessions++;
    pthread_mutex_unlock(&srv->lock);
    if (full) {
        log_warn("%s: refused: already %d sessions (server.max_sessions)",
                 ss->peer, srv->o.max_sessions);
        ssh_disconnect(s);
        ssh_free(s);
        free(ss);
        return;
    }
    log_debug("%s: connected", ss->peer);
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &at, session_main, ss) != 0) {
        ssh_disconnect(s);
        ssh_free(s);
        free(ss);
        pthread_mutex_lock(&srv->lock);
        srv->sessions--;
        pthread_mutex_unlock(&srv->lock);
    }
    pthread_attr_destroy(&at);
}

/* --- host keys --------------------------------------------------------------
 */

int server_host_key(const char *path, char *fp, size_t fplen, int *generated)
{
    ssh_key key = NULL, pub = NULL;
    unsigned char *hash = NULL;
    size_t hlen = 0;
    char *hex = NULL, *pubpath = NULL;
    int r = -EINVAL;
    mode_t old;

    *generated = 0;
    if (access(path, F_OK) == 0) {
        if (ssh_pki_import_privkey_file(path, NULL, NULL, NULL, &key) !=
            SSH_OK) {
            log_error("host key %s: cannot be read", path);
            goto out;
        }
    } else {
        if (ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, &key) != SSH_OK)
            goto out;
        old = umask(077);
        r = ssh_pki_export_privkey_file(key, NULL, NULL, NULL, path);
        umask(old);
        if (r != SSH_OK || chmod(path, 0600) < 0) {
            log_error("host key %s: cannot be written", path);
            r = -EACCES;
            goto out;
        }
        if (ssh_pki_export_privkey_to_pubkey(key, &pub) == SSH_OK &&
            asprintf(&pubpath, "%s.pub", path) >= 0)
            ssh_pki_export_pubkey_file(pub, pubpath);
        *generated = 1;
    }
    if (ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &hlen) !=
        SSH_OK)
        goto out;
    hex = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, hlen);
    snprintf(fp, fplen, "%s", hex ? hex : "?");
    r = 0;
out:
    ssh_string_free_char(hex);
    ssh_clean_pubkey_hash(&hash);
    ssh_key_free(key);
    ssh_key_free(pub);
    free(pubpath);
    return r;
}

/* --- the server ------------------------------------------------------------
 */

/*
 * Make srv->bind listen on host:port with the host keys of srv->o,
 * non-blocking, and set srv->bind_fd.  Both belong to srv (server_free()).
 * Logs what fails.  Returns 0, -ENOMEM, -EINVAL (a host key) or
 * -EADDRINUSE.
 */
static int bind_listen(struct server *srv, const char *host, unsigned port)
{
    const struct server_opts *o = &srv->o;
    size_t i;
    int r = -ENOMEM;

    ssh_init();
    srv->bind = ssh_bind_new();
    if (srv->bind == NULL)
        goto out;
    ssh_bind_options_set(srv->bind, SSH_BIND_OPTIONS_BINDADDR, host);
    ssh_bind_options_set(srv->bind, SSH_BIND_OPTIONS_BINDPORT, &port);
    r = -EINVAL;
    for (i = 0; i < o->n_host_keys; i++) {
        if (ssh_bind_options_set(srv->bind, SSH_BIND_OPTIONS_HOSTKEY,
                                 o->host_keys[i]) != SSH_OK) {
            log_error("host key %s: %s", o->host_keys[i],
                      ssh_get_error(srv->bind));
            goto out;
        }
    }
    r = -EADDRINUSE;
    if (ssh_bind_listen(srv->bind) != SSH_OK) {
        log_error("listening on %s: %s", o->listen, ssh_get_error(srv->bind));
        goto out;
    }
    ssh_bind_set_blocking(srv->bind, 0);
    srv->bind_fd = ssh_bind_get_fd(srv->bind);
    r = 0;
out:
    return r;
}

int server_new(const struct server_opts *o, struct loop *l, struct server **out)
{
    struct server *srv = NULL;
    struct loop_handler h;
    char host[64];
    unsigned port = 0;
    int r = -EINVAL;

    *out = NULL;
    if (addr_split(o->listen, host, sizeof(host), &port) < 0) {
        log_error("listen address \"%s\": expected ADDRESS:PORT", o->listen);
        goto out;
    }
    r = -ENOMEM;
    srv = calloc(1, sizeof(*srv));
    if (srv == NULL)
        goto out;
    srv->o = *o;
    srv->loop = l;
    srv->bind_fd = -1;
    pthread_mutex_init(&srv->lock, NULL);
    pthread_cond_init(&srv->idle, NULL);
    srv->root_fd = open(o->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (srv->root_fd < 0) {
        r = -errno;
        log_error("server root %s: %s", o->root, strerror(errno));
        goto out;
    }
    r = bind_listen(srv, host, port);
    if (r < 0)
        goto out;
    addr_name(srv->bind_fd, srv->address, sizeof(srv->address));
    h.fn = on_accept;
    h.arg = srv;
    r = loop_add(l, srv->bind_fd, EPOLLIN, &h);
    if (r < 0)
        goto out;
    *out = srv;
    srv = NULL; /* transferred */
out:
    server_free(srv);
    return r;
}

const char *server_address(const struct server *s)
{
    return s->address;
}

void server_free(struct server *srv)
{
    if (srv == NULL)
        return;
    if (srv->bind_fd >= 0)
        loop_del(srv->loop, srv->bind_fd);
    pthread_mutex_lock(&srv->lock);
    srv->stopping = 1;
    while (srv->sessions > 0)
        pthread_cond_wait(&srv->idle, &srv->lock);
    pthread_mutex_unlock(&srv->lock);
    if (srv->bind)
        ssh_bind_free(srv->bind);
    if (srv->root_fd >= 0)
        close(srv->root_fd);
    pthread_cond_destroy(&srv->idle);
    pthread_mutex_destroy(&srv->lock);
    free(srv);
}
