/*
 * sftprelayd: watch source.path and replicate every new file to the target.
 *
 * The main thread owns the event loop (inotify, signals, timers) and the
 * watcher, and queues what the watcher finds in the journal; the
 * scheduler's workers send.  See sftprelayd(8).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sftprelay/conf.h"
#include "sftprelay/journal.h"
#include "sftprelay/log.h"
#include "sftprelay/loop.h"
#include "sftprelay/path.h"
#include "sftprelay/sched.h"
#include "sftprelay/server.h"
#include "sftprelay/sink.h"
#include "sftprelay/source.h"
#include "sftprelay/watch.h"

#define BATCH_MAX 500 /* offers per journal transaction */
#define PRUNE_INTERVAL_MS 3600000

struct agent {
    struct conf *c;
    struct journal *j;
    struct loop *loop;
    struct sched *sched;
    struct watch *watch;
    struct server *server;
    pthread_key_t ingest_key;  /* a journal connection per session thread */
    const char *ingest_prefix; /* server.root below source.path, or "" */
    int in_batch;
    int batch_n;
    int queued; /* in the current batch */
    int stopping;
    int to_syslog;
};

/* The tables of the modules beyond the core and the plugins. */
static const struct conf_table *const conf_tables[] = {
    &server_conf_table,
    NULL,
};

static void usage(FILE *f)
{
    fprintf(f, "usage: sftprelayd [-c file] [--daemon] [--pidfile file] "
               "[--once] [-t] [-K] [-V]\n");
}

static void on_found(void *arg, const char *rel, const struct stat *st)
{
    struct agent *a = arg;
    int64_t mtime = source_mtime_ns(st);
    int queued = 0, r;

    r = journal_offer(a->j, rel, st->st_size, mtime, (int64_t)time(NULL),
                      &queued);
    if (r < 0) {
        log_error("journal: queueing %s: %s", rel, journal_errmsg(a->j));
        return;
    }
    if (queued) {
        log_info("queued %s (%lld bytes)", rel, (long long)st->st_size);
        a->queued++;
    }
    if (!a->in_batch) {
        if (queued)
            sched_notify(a->sched);
        return;
    }
    /* Long scans commit as they go, so workers are not kept waiting. */
    if (++a->batch_n >= BATCH_MAX) {
        journal_commit(a->j);
        journal_begin(a->j);
        a->batch_n = 0;
        if (a->queued)
            sched_notify(a->sched);
    }
}

static void on_batch(void *arg, int begin)
{
    struct agent *a = arg;

    if (begin) {
        a->in_batch = journal_begin(a->j) == 0;
        a->batch_n = 0;
        a->queued = 0;
        return;
    }
    if (a->in_batch && journal_commit(a->j) < 0)
        log_error("journal: %s", journal_errmsg(a->j));
    a->in_batch = 0;
    if (a->queued && a->sched)
        sched_notify(a->sched);
}

static void on_signal(struct loop *l, int fd, uint32_t events, void *arg)
{
    struct agent *a = arg;
    struct signalfd_siginfo si;

    while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        switch (si.ssi_signo) {
        case SIGHUP:
            log_init("sftprelayd", a->to_syslog);
            log_info("SIGHUP: logs reopened");
            break;
        default:
            log_info("signal %d: stopping", (int)si.ssi_signo);
            a->stopping = 1;
            loop_stop(l);
        }
    }
}

static void on_done(struct loop *l, int fd, uint32_t events, void *arg)
{
    timer_ack(fd);
    loop_stop(l);
}

static void on_prune(struct loop *l, int fd, uint32_t events, void *arg)
{
    struct agent *a = arg;
    int n = 0;

    timer_ack(fd);
    if (a->c->journal.keep_delivered_days == 0)
        return;
    if (journal_prune(a->j,
                      (int64_t)time(NULL) -
                          (int64_t)a->c->journal.keep_delivered_days * 86400,
                      &n) == 0 &&
        n > 0)
        log_info("journal: forgot %d files delivered over %d days ago", n,
                 a->c->journal.keep_delivered_days);
}

/* --- ingest: uploads to the embedded server ------------------------------ */

static void close_journal(void *j)
{
    journal_close(j);
}

/* This session thread's journal connection, opened on first use. */
static struct journal *ingest_journal(struct agent *a)
{
    struct journal *j = pthread_getspecific(a->ingest_key);

    if (j == NULL && journal_open(a->c->journal.path, 0, &j) == 0)
        pthread_setspecific(a->ingest_key, j);
    return j;
}

/* The path under source.path of rel under server.root; *out malloc'd. */
static int ingest_path(struct agent *a, const char *rel, char **out)
{
    if (a->ingest_prefix[0] == '\0') {
        *out = strdup(rel);
        return *out ? 0 : -ENOMEM;
    }
    return path_join(a->ingest_prefix, rel, out);
}

static void on_uploaded(void *arg, const char *rel, const struct stat *st,
                        const char *peer)
{
    struct agent *a = arg;
    struct journal *j = ingest_journal(a);
    int64_t mtime = source_mtime_ns(st);
    char *path = NULL;
    int queued = 0;

    if (j == NULL || ingest_path(a, rel, &path) < 0)
        return;
    if (path_excluded(path_base(path), a->c->source.exclude,
                      a->c->source.n_exclude)) {
        free(path);
        return;
    }
    journal_partial_clear(j, path);
    if (journal_offer(j, path, st->st_size, mtime, (int64_t)time(NULL),
                      &queued) < 0)
        log_error("journal: queueing %s: %s", path, journal_errmsg(j));
    if (queued) {
        log_info("queued %s (%lld bytes, uploaded by %s)", path,
                 (long long)st->st_size, peer);
        sched_notify(a->sched);
    }
    free(path);
}

static void on_abandoned(void *arg, const char *rel, const struct stat *st,
                         const char *peer)
{
    struct agent *a = arg;
    struct journal *j = ingest_journal(a);
    int64_t mtime = source_mtime_ns(st);
    char *path = NULL;

    if (j == NULL || ingest_path(a, rel, &path) < 0)
        return;
    if (journal_partial_add(j, path, st->st_size, mtime, peer,
                            (int64_t)time(NULL)) < 0)
        log_error("journal: recording %s as unfinished: %s", path,
                  journal_errmsg(j));
    free(path);
}

/* Start the embedded server if the configuration has one. */
static int start_server(struct agent *a)
{
    const struct conf *c = a->c;
    const struct server_conf *sc = conf_settings(c, &server_conf_table);
    struct server_opts so = {
        .listen = sc->listen,
        .host_keys = (const char *const *)sc->host_keys,
        .n_host_keys = sc->n_host_keys,
        .root = sc->root,
        .max_sessions = sc->max_sessions,
        .idle_timeout = sc->idle_timeout,
        .login_grace = 60,
        .users = sc->users,
        .n_users = sc->n_users,
        .uploaded = on_uploaded,
        .abandoned = on_abandoned,
        .arg = a,
    };
    char fp[128];
    size_t i, n = strlen(c->source.path);
    int generated, r;

    if (sc->listen == NULL)
        return 0;
    for (i = 0; i < sc->n_host_keys; i++) {
        r = server_host_key(sc->host_keys[i], fp, sizeof(fp), &generated);
        if (r < 0)
            return r;
        log_info("host key %s%s: %s", sc->host_keys[i],
                 generated ? " (generated)" : "", fp);
    }
    while (n > 1 && c->source.path[n - 1] == '/')
        n--;
    a->ingest_prefix = sc->root + n;
    while (*a->ingest_prefix == '/')
        a->ingest_prefix++;
    r = -pthread_key_create(&a->ingest_key, close_journal);
    if (r < 0)
        return r;
    r = server_new(&so, a->loop, &a->server);
    if (r < 0)
        return r;
    log_info("serving SFTP on %s, root %s", server_address(a->server),
             sc->root);
    return 0;
}

static int write_pidfile(const char *path)
{
    char buf[32];
    int fd, n;

    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
    if (write(fd, buf, (size_t)n) != n) {
        close(fd);
        return -EIO;
    }
    return close(fd) < 0 ? -errno : 0;
}

/* Detach: fork twice, new session, standard streams to /dev/null. */
static int daemonize(void)
{
    pid_t pid;
    int fd;

    pid = fork();
    if (pid < 0)
        return -errno;
    if (pid > 0)
        _exit(0);
    if (setsid() < 0)
        return -errno;
    pid = fork();
    if (pid < 0)
        return -errno;
    if (pid > 0)
        _exit(0);
    if (chdir("/") < 0)
        return -errno;
    fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    dup2(fd, STDIN_FILENO);
    dup2(fd, STDOUT_FILENO);
    dup2(fd, STDERR_FILENO);
    if (fd > STDERR_FILENO)
        close(fd);
    return 0;
}

/* Every row delivered?  (For --once's exit status.) */
static int all_delivered(struct journal *j)
{
    struct journal_status st;
    int ok;

    if (journal_status(j, &st) < 0)
        return 0;
    ok = st.counts[JS_QUEUED] == 0 && st.counts[JS_SENDING] == 0 &&
         st.counts[JS_FAILED] == 0;
    if (!ok)
        log_warn("not delivered: %lld queued, %lld failed",
                 (long long)st.counts[JS_QUEUED],
                 (long long)st.counts[JS_FAILED]);
    journal_status_clear(&st);
    return ok;
}

static int run(struct agent *a, int once)
{
    struct watch_opts wo = {
        .root = a->c->source.path,
        .exclude = a->c->source.exclude,
        .n_exclude = a->c->source.n_exclude,
        .settle_ms = once ? 0 : a->c->source.settle_ms,
        .rescan_interval = once ? 0 : a->c->source.rescan_interval,
    };
    struct watch_cb cb = {.found = on_found, .batch = on_batch, .arg = a};
    struct loop_handler h = {.arg = a};
    char pid[16], where[PATH_MAX + 300];
    sigset_t mask;
    int sfd = -1, prune_fd = -1, r, n = 0;

    r = journal_open(a->c->journal.path, JOURNAL_CREATE, &a->j);
    if (r < 0) {
        log_error("journal %s: %s", a->c->journal.path, strerror(-r));
        return r;
    }
    if (journal_recover(a->j, &n) == 0 && n > 0)
        log_info("resuming %d files a previous run was sending", n);
    snprintf(pid, sizeof(pid), "%d", (int)getpid());
    journal_agent_set(a->j, "pid", pid, (int64_t)time(NULL));

    /* Signals arrive through the loop; workers inherit the mask. */
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);

    r = loop_new(&a->loop);
    if (r < 0)
        goto out;
    sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    prune_fd = timer_new();
    if (sfd < 0 || prune_fd < 0) {
        r = -errno;
        goto out;
    }
    h.fn = on_signal;
    loop_add(a->loop, sfd, EPOLLIN, &h);
    h.fn = on_prune;
    loop_add(a->loop, prune_fd, EPOLLIN, &h);
    timer_arm(prune_fd, 1, PRUNE_INTERVAL_MS);

    r = sched_new(a->c, once, &a->sched);
    if (r < 0)
        goto out;
    r = watch_new(&wo, a->loop, &cb, &a->watch);
    if (r < 0) {
        log_error("source.path %s: %s", a->c->source.path, strerror(-r));
        goto out;
    }
    a->c->target.ops->describe(a->c->target.settings, where, sizeof(where));
    log_info("watching %s, sending to %s %s", a->c->source.path,
             a->c->target.type, where);
    watch_scan(a->watch);
    r = sched_start(a->sched);
    if (r < 0) {
        log_error("starting workers: %s", strerror(-r));
        goto out;
    }
    if (!once) {
        r = start_server(a);
        if (r < 0) {
            log_error("embedded SFTP server: %s", strerror(-r));
            goto out;
        }
    }
    h.fn = on_done;
    loop_add(a->loop, sched_done_fd(a->sched), EPOLLIN, &h);
    r = loop_run(a->loop);
    server_free(a->server); /* no new uploads while the workers stop */
    a->server = NULL;
    sched_stop(a->sched);
    if (r == 0 && once && !a->stopping)
        r = all_delivered(a->j) ? 0 : -EAGAIN;
out:
    server_free(a->server);
    watch_free(a->watch);
    sched_free(a->sched);
    loop_free(a->loop);
    if (sfd >= 0)
        close(sfd);
    if (prune_fd >= 0)
        close(prune_fd);
    journal_close(a->j);
    return r;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"daemon", no_argument, NULL, 'd'},
        {"pidfile", required_argument, NULL, 'p'},
        {"once", no_argument, NULL, 'o'},
        {"print-keys", no_argument, NULL, 'K'},
        {"test-config", no_argument, NULL, 't'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *file = CONF_DEFAULT_FILE, *pidfile = NULL;
    struct agent a = {0};
    char err[CONF_ERR_MAX];
    enum log_level level;
    int daemon = 0, once = 0, test_only = 0, opt, r;

    while ((opt = getopt_long(argc, argv, "c:tKVh", opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            file = optarg;
            break;
        case 'd':
            daemon = 1;
            break;
        case 'p':
            pidfile = optarg;
            break;
        case 'o':
            once = 1;
            break;
        case 'K':
            conf_print_keys(conf_tables);
            return 0;
        case 't':
            test_only = 1;
            break;
        case 'V':
            printf("sftprelayd %s\n", PACKAGE_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    log_init("sftprelayd", 0);
    r = conf_load(file, conf_tables, &a.c, err, sizeof(err));
    if (r < 0) {
        fprintf(stderr, "sftprelayd: %s\n", err);
        return 2;
    }
    if (test_only) { /* -t: the configuration is valid */
        conf_free(a.c);
        return 0;
    }
    if (log_level_parse(a.c->log.level, &level) == 0)
        log_set_level(level);
    umask(027);
    if (daemon) {
        r = daemonize();
        if (r < 0) {
            fprintf(stderr, "sftprelayd: detaching: %s\n", strerror(-r));
            conf_free(a.c);
            return 1;
        }
        a.to_syslog = 1;
        log_init("sftprelayd", 1);
    }
    if (pidfile) {
        r = write_pidfile(pidfile);
        if (r < 0) {
            log_error("pidfile %s: %s", pidfile, strerror(-r));
            conf_free(a.c);
            return 1;
        }
    }
    r = run(&a, once);
    if (pidfile)
        unlink(pidfile);
    conf_free(a.c);
    log_info("stopped");
    return r < 0 ? 1 : 0;
}
