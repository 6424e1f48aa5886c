/*
 * The shared SSH connection keys (sshconf.h): their check and the
 * connection they describe.
 */
#include "config.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sftprelay/sshchan.h"
#include "sftprelay/sshconf.h"

int ssh_settings_check(struct ssh_settings *s, const struct conf_scope *sc,
                       const char *type_key, char *err, size_t errlen)
{
    struct passwd *pw;

    if (s->host == NULL || s->host[0] == '\0')
        return conf_fail(sc, conf_line(sc->c, type_key), "host", err, errlen,
                         "required when %s is \"%s\"", type_key,
                         conf_str(sc->c, type_key));
    s->backend = ssh_backend_find(s->transport);
    if (s->backend == NULL)
        return conf_fail(sc, conf_scope_line(sc, "transport"), "transport",
                         err, errlen,
                         "\"%s\" is not an SSH library this agent has (%s)",
                         s->transport, ssh_backend_names());
    if (s->user)
        return 0;
    pw = getpwuid(geteuid());
    s->user = strdup(pw ? pw->pw_name : "root");
    return s->user ? 0 : -ENOMEM;
}

int ssh_settings_connect(const struct ssh_settings *s, int cancel_fd,
                         struct ssh_chan **out, char *err, size_t errlen)
{
    struct ssh_opts o = {
        .host = s->host,
        .port = s->port,
        .user = s->user,
        .identity = s->identity,
        .passphrase_file = s->passphrase_file,
        .password_file = s->password_file,
        .known_hosts = s->known_hosts,
        .ciphers = s->ciphers,
        .keepalive = s->keepalive,
        .proxy_jump = s->proxy_jump,
        .timeout_ms = s->timeout * 1000,
        .cancel_fd = cancel_fd,
    };
    char why[SSH_ERR_MAX] = "";
    int r = s->backend->open(&o, out, why, sizeof(why));

    if (r < 0 && s->proxy_jump[0])
        snprintf(err, errlen,
                 "%s (through proxy_jump %s: ssh's own words, if any, are "
                 "just before in the log)",
                 why, s->proxy_jump);
    else if (r < 0)
        snprintf(err, errlen, "%s", why);
    return r;
}
