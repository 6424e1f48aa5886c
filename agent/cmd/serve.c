/*
 * "sftprelay serve": the embedded SFTP server on its own, with no
 * replication, for demos, tests and small set-ups.  See sftprelay(1).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "sftprelay/log.h"
#include "sftprelay/loop.h"
#include "sftprelay/secret.h"
#include "sftprelay/serve.h"
#include "sftprelay/server.h"

#define DEFAULT_HOST_KEY "sftprelay_host_ed25519_key"

static void usage(FILE *f)
{
    fputs("usage: sftprelay serve --root DIR --listen ADDR:PORT --user NAME\n"
          "                       [--password-file FILE] "
          "[--authorized-keys FILE]\n"
          "                       [--host-key FILE] [--max-sessions N] "
          "[--idle-timeout S]\n",
          f);
}

static void on_signal(struct loop *l, int fd, uint32_t events, void *arg)
{
    struct signalfd_siginfo si;

    if (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
        log_info("signal %d: stopping", (int)si.ssi_signo);
    loop_stop(l);
}

/* The password in file, hashed; the plain text is wiped. */
static int hash_password_file(const char *file, char **hash)
{
    char pw[SECRET_MAX];
    int r;

    *hash = NULL;
    r = secret_read(file, pw, sizeof(pw));
    if (r == 0 && pw[0] == '\0')
        r = -EINVAL;
    if (r == 0)
        r = server_hash_password(pw, hash);
    explicit_bzero(pw, sizeof(pw));
    return r;
}

int serve_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"root", required_argument, NULL, 'r'},
        {"listen", required_argument, NULL, 'l'},
        {"host-key", required_argument, NULL, 'k'},
        {"user", required_argument, NULL, 'u'},
        {"password-file", required_argument, NULL, 'p'},
        {"authorized-keys", required_argument, NULL, 'a'},
        {"max-sessions", required_argument, NULL, 'm'},
        {"idle-timeout", required_argument, NULL, 'i'},
        {"fault-file", required_argument, NULL, 'F'}, /* tests only */
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *host_key = DEFAULT_HOST_KEY, *password_file = NULL;
    struct server_opts so = {
        .max_sessions = 64, .idle_timeout = 600, .login_grace = 60};
    struct server_user user = {0};
    struct server *srv = NULL;
    struct loop *l = NULL;
    struct loop_handler h = {.fn = on_signal};
    char fp[128], *hash = NULL;
    sigset_t mask;
    int opt, r, sfd = -1, generated = 0;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'r':
            so.root = optarg;
            break;
        case 'l':
            so.listen = optarg;
            break;
        case 'k':
            host_key = optarg;
            break;
        case 'u':
            user.name = optarg;
            break;
        case 'p':
            password_file = optarg;
            break;
        case 'a':
            user.authorized_keys = optarg;
            break;
        case 'm':
            so.max_sessions = atoi(optarg);
            break;
        case 'i':
            so.idle_timeout = atoi(optarg);
            break;
        case 'F':
            so.fault_file = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc || so.root == NULL || so.listen == NULL ||
        user.name == NULL ||
        (password_file == NULL && user.authorized_keys == NULL) ||
        so.max_sessions < 1 || so.idle_timeout < 1) {
        usage(stderr);
        return 2;
    }
    log_set_level(LOG_LVL_INFO);
    if (password_file) {
        r = hash_password_file(password_file, &hash);
        if (r < 0) {
            fprintf(stderr, "sftprelay serve: --password-file %s: %s\n",
                    password_file, r == -EINVAL ? "empty" : strerror(-r));
            return 1;
        }
        user.password_hash = hash;
    }
    if (user.authorized_keys && access(user.authorized_keys, R_OK) < 0) {
        fprintf(stderr, "sftprelay serve: --authorized-keys %s: %s\n",
                user.authorized_keys, strerror(errno));
        free(hash);
        return 1;
    }
    r = server_host_key(host_key, fp, sizeof(fp), &generated);
    if (r < 0) {
        fprintf(stderr, "sftprelay serve: --host-key %s: %s\n", host_key,
                strerror(-r));
        free(hash);
        return 1;
    }
    printf("host key %s%s: %s\n", host_key, generated ? " (generated)" : "",
           fp);
    so.host_keys = &host_key;
    so.n_host_keys = 1;
    so.users = &user;
    so.n_users = 1;

    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    pthread_sigmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    r = loop_new(&l);
    if (r == 0) {
        sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
        r = sfd < 0 ? -errno : loop_add(l, sfd, EPOLLIN, &h);
    }
    if (r == 0)
        r = server_new(&so, l, &srv);
    if (r == 0) {
        printf("listening on %s, root %s, user %s\n", server_address(srv),
               so.root, user.name);
        fflush(stdout);
        r = loop_run(l);
    }
    server_free(srv);
    loop_free(l);
    if (sfd >= 0)
        close(sfd);
    free(hash);
    return r < 0 ? 1 : 0;
}
