/*
 * A byte channel to a server's "sftp" subsystem over SSH, on one of two
 * SSH libraries (target.transport): "libssh" (the default) or "libssh2".
 * The SFTP client (sftpc.h) speaks SFTP over it and knows nothing of
 * either library, as curl's lib/vssh/ keeps its backends side by side.
 *
 * A backend is a const struct ssh_backend.  open() does all of the SSH
 * part: TCP (ssh_tcp_connect()), key exchange, the host key checked
 * against known_hosts (an unknown or changed key fails, never is
 * accepted), login, and the subsystem.  Each backend translates its
 * library's errors to errno values in exactly one function; the values
 * keep the classes sink_error_is_target() knows:
 *   -EHOSTUNREACH, -ECONNREFUSED, -ETIMEDOUT  not reached
 *   -EKEYREJECTED  host key unknown, changed, or known_hosts unreadable
 *   -EPERM         login refused (or a secret file unreadable)
 *   -EPROTO        no algorithm in common, or the peer broke the protocol
 *   -ECONNRESET    the connection or channel went away
 *   -ECANCELED     the cancel descriptor became readable
 * with a message in words that names the peer and, where the user can act,
 * the fix.  Secrets are read from their files just before use and wiped
 * after; no secret reaches a message.
 *
 * I/O never blocks: send() and recv() move what they can now, and wait()
 * blocks (polling the socket and the cancel descriptor) until one of them
 * can move more.
 */
#ifndef SFTPRELAY_SSHCHAN_H
#define SFTPRELAY_SSHCHAN_H

#include <stddef.h>
#include <sys/types.h>

#define SSH_ERR_MAX 512

struct ssh_opts {
    const char *host;
    int port;
    const char *user;
    const char *identity;        /* private key file, "" none */
    const char *passphrase_file; /* "" none */
    const char *password_file;   /* "" none */
    const char *known_hosts;     /* OpenSSH format; must hold the host key */
    const char *ciphers;         /* OpenSSH syntax ("+x", "-x", "^x" or a list); "" default */
    int keepalive;               /* seconds between keepalives; 0 off */
    const char *proxy_jump;      /* "[user@]host[:port]", "" or NULL none */
    int timeout_ms;              /* without progress: -ETIMEDOUT */
    int cancel_fd;               /* readable: -ECANCELED at once; -1 none */
};

struct ssh_chan {
    const struct ssh_backend *ops;
    char peer[300]; /* "host:port", "[v6]:port": for messages */
    char err[SSH_ERR_MAX]; /* what went wrong last */
};

struct ssh_backend {
    const char *name; /* target.transport */
    /*
     * Connect and start the "sftp" subsystem; *out is closed with
     * close().  On error returns a negative errno, writes the reason to
     * err, and *out is NULL.
     */
    int (*open)(const struct ssh_opts *o, struct ssh_chan **out, char *err,
                size_t errlen);
    /*
     * Take up to len bytes for the peer: the number taken (0 when the
     * peer's window or the library's queue is full), or a negative errno.
     * Bytes taken are the backend's to deliver; it holds at most about
     * one call's worth beyond the socket.
     */
    ssize_t (*send)(struct ssh_chan *c, const void *buf, size_t len);
    /*
     * Bytes from the peer: the number read, 0 when none are waiting,
     * -EPIPE once the channel is closed or at its end, or another
     * negative errno.
     */
    ssize_t (*recv)(struct ssh_chan *c, void *buf, size_t len);
    /*
     * Block until recv() has bytes, or (for_send) send() may take some,
     * pushing out what the backend holds and sending keepalives meanwhile.
     * 0, -ETIMEDOUT after timeout_ms without progress, -ECANCELED, or a
     * negative errno (c->err says why).
     */
    int (*wait)(struct ssh_chan *c, int for_send);
    /* Close the channel and the connection; frees c. */
    void (*close)(struct ssh_chan *c);
};

extern const struct ssh_backend ssh_libssh;
extern const struct ssh_backend ssh_libssh2;

/* The backend named name, or NULL. */
const struct ssh_backend *ssh_backend_find(const char *name);

/* Every backend's name, "libssh, libssh2", for error messages. */
const char *ssh_backend_names(void);

/* The default backend's name. */
const char *ssh_backend_default(void);

/*
 * A non-blocking TCP connection to o->host:o->port (each address in turn,
 * within o->timeout_ms each, cancellable), TCP_NODELAY and SO_KEEPALIVE
 * on.  Returns the socket, or a negative errno with the reason in err.
 * With o->proxy_jump, the socket is one end of a socket pair whose other
 * end is OpenSSH's "ssh -W host:port" to the jump host, which checks the
 * jump host's key against o->known_hosts and logs in with o->identity
 * (or ssh-agent); the SSH session to the target then runs through it, end
 * to end, with its own host key check.
 */
int ssh_tcp_connect(const struct ssh_opts *o, char *err, size_t errlen);

/* "host:port", or "[host]:port" for an IPv6 address, into buf. */
void ssh_peer_name(const char *host, int port, char *buf, size_t len);

/*
 * Apply OpenSSH cipher syntax spec to def (the backend's default list,
 * comma-separated) and write the resulting list to out: a plain list
 * replaces def, "+a,b" appends, "-a,b" removes, "^a,b" puts first.
 * Returns 0, or -EINVAL when the result is empty.
 */
int ssh_cipher_list(const char *spec, const char *def, char *out, size_t len);

/*
 * Poll fd for events and cancel_fd for input, for at most timeout_ms:
 * 1 when fd is ready, -ETIMEDOUT, -ECANCELED or a negative errno.
 */
int ssh_poll(int fd, short events, int cancel_fd, int timeout_ms);

#endif
