/*
 * The SSH connection keys that every plugin reaching an SFTP server
 * shares (the SFTP sink's target.*, the SFTP source's source.*): one
 * settings sub-struct, one set of key rows, one check, one connect.
 * A plugin embeds struct ssh_settings in its settings struct and puts
 * SSH_CONF_KEYS(its struct, its member) in its key table.
 */
#ifndef SFTPRELAY_SSHCONF_H
#define SFTPRELAY_SSHCONF_H

#include <stddef.h>

#include "sftprelay/conf.h"

struct ssh_chan;

struct ssh_settings {
    char *host;
    int port;
    char *user;
    char *identity;
    char *passphrase_file;
    char *password_file;
    char *known_hosts;
    int timeout; /* seconds without progress before a peer is dropped */
    char *transport;
    char *ciphers;
    int keepalive;
    char *proxy_jump;
    const struct ssh_backend *backend; /* derived by ssh_settings_check() */
};

/* The key rows of struct ssh_settings F inside settings struct T. */
#define SSH_CONF_KEYS(T, F)                                                    \
    CONF_KEY_STR(T, F.host, "host", NULL, 0,                                   \
                 "SFTP server name or address"),                               \
        CONF_KEY_INT(T, F.port, "port", 22, 1, 65535, "SFTP server port"),     \
        CONF_KEY_STR(T, F.user, "user", NULL, 0,                               \
                     "login name (default: the user running the agent)"),      \
        CONF_KEY_STR(T, F.identity, "identity", "", 0, "private key file"),    \
        CONF_KEY_STR(T, F.passphrase_file, "passphrase_file", "", 0,           \
                     "file holding the identity's passphrase"),                \
        CONF_KEY_STR(T, F.password_file, "password_file", "", 0,               \
                     "file holding the login password"),                       \
        CONF_KEY_STR(T, F.known_hosts, "known_hosts",                          \
                     "/etc/sftprelay/known_hosts", 0,                          \
                     "known_hosts file the server's host key must be in"),     \
        CONF_KEY_INT(T, F.timeout, "timeout", 60, 1, 86400,                    \
                     "seconds without progress before the connection is "      \
                     "dropped"),                                               \
        CONF_KEY_STR(T, F.transport, "transport", "libssh", 0,                 \
                     "SSH library: libssh or libssh2"),                        \
        CONF_KEY_STR(T, F.ciphers, "ciphers", "", 0,                           \
                     "ciphers, OpenSSH syntax (\"\": the library's fastest "   \
                     "first)"),                                                \
        CONF_KEY_INT(T, F.keepalive, "keepalive", 30, 0, 86400,                \
                     "seconds between SSH keepalives while waiting (0: "       \
                     "none)"),                                                 \
        CONF_KEY_STR(T, F.proxy_jump, "proxy_jump", "", 0,                     \
                     "[user@]host[:port] to reach the server through (ssh "    \
                     "-W)")

/*
 * Check s once read (scope sc): host is required ("required when
 * <type_key> is \"<type>\""), transport must name a backend; fills
 * backend and the default user.  0, or -EINVAL with err written.
 */
int ssh_settings_check(struct ssh_settings *s, const struct conf_scope *sc,
                       const char *type_key, char *err, size_t errlen);

/*
 * Connect as s says and start the "sftp" subsystem (sshchan.h's open(),
 * with its error classes); *out is closed with (*out)->ops->close().
 * On error err says why, naming proxy_jump when one is used.
 */
int ssh_settings_connect(const struct ssh_settings *s, int cancel_fd,
                         struct ssh_chan **out, char *err, size_t errlen);

#endif
