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

/* The options of "sftprelay serve".  Strings point into argv. */
struct serve_args {
    const char *host_key;
    const char *password_file;
    struct server_opts so;
    struct server_user user;
};

static const struct option serve_opts[] = {
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

/*
 * Read the command line into a (whose defaults the caller sets).  Returns
 * 0, with *help set when --help was asked for (nothing else is checked
 * then), or -EINVAL when an option is unknown, a required one missing or
 * a number out of range.  Prints nothing but getopt's own complaints.
 */
static int parse_args(int argc, char **argv, struct serve_args *a, int *help)
{
    int opt;

    *help = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", serve_opts, NULL)) != -1) {
        switch (opt) {
        case 'r':
            a->so.root = optarg;
            break;
        case 'l':
            a->so.listen = optarg;
            break;
        case 'k':
            a->host_key = optarg;
            break;
        case 'u':
            a->user.name = optarg;
            break;
        case 'p':
            a->password_file = optarg;
            break;
        case 'a':
            a->user.authorized_keys = optarg;
            break;
        case 'm':
            a->so.max_sessions = atoi(optarg);
            break;
        case 'i':
            a->so.idle_timeout = atoi(optarg);
            break;
        case 'F':
            a->so.fault_file = optarg;
            break;
        case 'h':
            *help = 1;
            return 0;
        default:
            return -EINVAL;
        }
    }
    if (optind != argc || a->so.root == NULL || a->so.listen == NULL ||
        a->user.name == NULL ||
        (a->password_file == NULL && a->user.authorized_keys == NULL) ||
        a->so.max_sessions < 1 || a->so.idle_timeout < 1)
        return -EINVAL;
    return 0;
}

/*
 * Check the user's credentials: hash the password file (if given) into
 * *hash, which a->user.password_hash then points to and the caller frees,
 * and make sure the authorized keys file (if given) can be read.  Says
 * what is wrong on stderr.  Returns 0 or a negative errno.
 */
static int load_credentials(struct serve_args *a, char **hash)
{
    int r = 0;

    *hash = NULL;
    if (a->password_file) {
        r = hash_password_file(a->password_file, hash);
        if (r < 0) {
            fprintf(stderr, "sftprelay serve: --password-file %s: %s\n",
                    a->password_file, r == -EINVAL ? "empty" : strerror(-r));
            goto out;
        }
        a->user.password_hash = *hash;
    }
    if (a->user.authorized_keys && access(a->user.authorized_keys, R_OK) < 0) {
        r = -errno;
        fprintf(stderr, "sftprelay serve: --authorized-keys %s: %s\n",
                a->user.authorized_keys, strerror(-r));
        goto out;
    }
out:
    return r;
}

/*
 * Read the host key, or make one if the file is missing, and print its
 * fingerprint on stdout.  Says what is wrong on stderr.  Returns 0 or a
 * negative errno.
 */
static int load_host_key(const char *host_key)
{
    char fp[128];
    int r, generated = 0;

    r = server_host_key(host_key, fp, sizeof(fp), &generated);
    if (r < 0) {
        fprintf(stderr, "sftprelay serve: --host-key %s: %s\n", host_key,
                strerror(-r));
        goto out;
    }
    printf("host key %s%s: %s\n", host_key, generated ? " (generated)" : "",
           fp);
out:
    return r;
}

/*
 * Serve so until SIGTERM or SIGINT: those are blocked and read from a
 * signalfd on a loop of our own, SIGPIPE is ignored.  Prints where the
 * server listens once it does.  Everything made here is freed here.
 * Returns 0 or a negative errno.
 */
static int run_server(const struct server_opts *so, const char *user)
{
    struct server *srv = NULL;
    struct loop *l = NULL;
    struct loop_handler h = {.fn = on_signal};
    sigset_t mask;
    int r, sfd = -1;

    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    pthread_sigmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    r = loop_new(&l);
    if (r < 0)
        goto out;
    sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    r = sfd < 0 ? -errno : loop_add(l, sfd, EPOLLIN, &h);
    if (r < 0)
        goto out;
    r = server_new(so, l, &srv);
    if (r < 0)
        goto out;
    printf("listening on %s, root %s, user %s\n", server_address(srv), so->root,
           user);
    fflush(stdout);
    r = loop_run(l);
out:
    server_free(srv);
    loop_free(l);
    if (sfd >= 0)
        close(sfd);
    return r;
}

int serve_main(int argc, char **argv)
{
    struct serve_args a = {
        .host_key = DEFAULT_HOST_KEY,
        .so = {.max_sessions = 64, .idle_timeout = 600, .login_grace = 60},
    };
    char *hash = NULL;
    int help, r, ret = 1;

    if (parse_args(argc, argv, &a, &help) < 0) {
        usage(stderr);
        return 2;
    }
    if (help) {
        usage(stdout);
        return 0;
    }
    log_set_level(LOG_LVL_INFO);
    r = load_credentials(&a, &hash);
    if (r < 0)
        goto out;
    r = load_host_key(a.host_key);
    if (r < 0)
        goto out;
    a.so.host_keys = &a.host_key;
    a.so.n_host_keys = 1;
    a.so.users = &a.user;
    a.so.n_users = 1;
    r = run_server(&a.so, a.user.name);
    ret = r < 0 ? 1 : 0;
out:
    free(hash); /* a.user.password_hash pointed to it */
    return ret;
}
