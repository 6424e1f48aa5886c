/*
 * The embedded SFTP server, on libssh in server mode: an ingest endpoint
 * for sftprelayd (uploads are queued the moment the client closes them),
 * and "sftprelay serve", a standalone server for demos and tests.
 *
 * One thread per session, so a slow or hostile client never stalls
 * another; at most max_sessions at once.  The listener runs on the
 * caller's event loop.  Logins by password (crypt(3) hashes only:
 * yescrypt or SHA-512) or by a key in an authorized_keys file; failed
 * logins are logged with the peer and slowed down.  A session that has
 * not logged in and opened SFTP within the grace time, or that stays idle
 * for idle_timeout seconds, is closed.
 */
#ifndef SFTPRELAY_SERVER_H
#define SFTPRELAY_SERVER_H

#include <stddef.h>
#include <sys/stat.h>

struct conf_table;
struct loop;
struct server;

struct server_user {
    const char *name;
    const char *password_hash;   /* crypt(3) hash, or NULL */
    const char *authorized_keys; /* file, or NULL */
};

/*
 * The server section of sftprelay.conf(5), read with server_conf_table
 * (conf_load()'s extra tables; conf_settings() finds it, owned by the
 * struct conf).  listen is NULL when the file has no server section.
 */
struct server_conf {
    char *listen;
    char **host_keys;
    size_t n_host_keys;
    char *root; /* defaults to source.path */
    int max_sessions;
    int idle_timeout;
    struct server_user *users;
    size_t n_users;
};

extern const struct conf_table server_conf_table;

struct server_opts {
    const char *listen;           /* "ADDR:PORT"; port 0 picks a free one */
    const char *const *host_keys; /* key files (generated if missing) */
    size_t n_host_keys;
    const char *root; /* the folder clients see as "/" */
    int max_sessions;
    int idle_timeout; /* seconds */
    int login_grace;  /* seconds to log in and start SFTP */
    const struct server_user *users;
    size_t n_users;
    const char *fault_file; /* tests only: see sftpd_fault */
    /*
     * Ingest hooks, called from session threads; may be NULL.  rel is
     * relative to root; peer is the client's address.
     */
    void (*uploaded)(void *arg, const char *rel, const struct stat *st,
                     const char *peer);
    void (*abandoned)(void *arg, const char *rel, const struct stat *st,
                      const char *peer);
    void *arg;
};

/*
 * Listen as o says (o and what it points to are borrowed and must outlive
 * the server) with the listener on loop l.  Errors are logged, naming the
 * address or file.  Freed with server_free(), which ends every session.
 */
int server_new(const struct server_opts *o, struct loop *l,
               struct server **out);

/* The address actually listened on: "127.0.0.1:2222". */
const char *server_address(const struct server *s);

void server_free(struct server *s);

/*
 * Load the host key at path, or generate an ed25519 key there (mode 0600,
 * with path.pub beside it) if it does not exist; *generated says which.
 * fp receives its SHA256 fingerprint.  Returns 0 or a negative errno.
 */
int server_host_key(const char *path, char *fp, size_t fplen, int *generated);

/*
 * Whether hash is a crypt(3) hash the server accepts: yescrypt ("$y$")
 * or SHA-512 ("$6$").
 */
int server_hash_ok(const char *hash);

/* A yescrypt hash of password (malloc'd), for "serve --password-file". */
int server_hash_password(const char *password, char **out);

#endif
