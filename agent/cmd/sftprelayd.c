/*
 * sftprelayd: find new files under source.path and replicate them to the
 * target.
 *
 * Wiring only: the main thread owns the event loop (inotify, signals,
 * timers) and the watcher, or starts the poller's thread for a source
 * that is listed rather than watched (the source's ops say which); either
 * hands what it finds to intake; intake's journal writer records it; the
 * scheduler's workers send.  See sftprelayd(8) and doc/concurrency.md.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <malloc.h>
#include <poll.h>
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

#include "sftprelay/after.h"
#include "sftprelay/conf.h"
#include "sftprelay/intake.h"
#include "sftprelay/journal.h"
#include "sftprelay/jwriter.h"
#include "sftprelay/log.h"
#include "sftprelay/loop.h"
#include "sftprelay/metrics.h"
#include "sftprelay/path.h"
#include "sftprelay/poller.h"
#include "sftprelay/progress.h"
#include "sftprelay/sched.h"
#include "sftprelay/server.h"
#include "sftprelay/sink.h"
#include "sftprelay/source.h"
#include "sftprelay/statusd.h"
#include "sftprelay/watch.h"

#define PRUNE_INTERVAL_MS 3600000
#define SENDING_EVERY_MS 1000 /* the files being sent, to the journal */
#define SENDING_KEY "sending"

struct agent {
    const char *file; /* the configuration file */
    struct conf *c;
    struct conf *next; /* read on SIGHUP: run() again with it */
    struct journal *j; /* start-up and the end of --once only */
    struct loop *loop;
    struct sched *sched;
    struct intake *in;
    struct watch *watch;   /* a watched source, or */
    struct poller *poller; /* a polled one */
    struct server *server;
    struct statusd *status;    /* started by the first run, kept by SIGHUP */
    int runs;                  /* run() calls so far */
    struct progress *progress; /* the files being sent; kept over SIGHUP */
    int sending_said;          /* the journal's "sending" holds files */
    int sfd;      /* the signalfd: also stops intake waiting for room */
    int scan_cut; /* a scan stopped short for a signal: scan again */
    int stopping;
    int to_syslog;
};

/* The tables of the modules beyond the core and the plugins. */
static const struct conf_table *const conf_tables[] = {
    &server_conf_table,
    &statusd_conf_table,
    NULL,
};

static void usage(FILE *f)
{
    fprintf(f, "usage: sftprelayd [-c file] [--daemon] [--pidfile file] "
               "[--once] [-t] [-K] [-V]\n");
}

/*
 * A signal waiting stops a scan (-EINTR) so that SIGTERM is taken at once;
 * on_signal() scans again if the agent goes on with the same relay.
 */
static int on_found(void *arg, const char *rel, const struct stat *st)
{
    struct agent *a = arg;
    int r = intake_found(a->in, rel, st);

    if (r == -EINTR)
        a->scan_cut = 1;
    return r;
}

static void on_rescan(struct loop *l, int fd, uint32_t events, void *arg)
{
    struct agent *a = arg;

    intake_rescan_ack(a->in);
    if (a->watch)
        watch_scan(a->watch);
    else
        poller_rescan(a->poller);
}

/* SIGHUP: reopen the log, read the configuration again, restart with it. */
static void reload(struct agent *a)
{
    char err[CONF_ERR_MAX];
    struct conf *c = NULL;

    log_init("sftprelayd", a->to_syslog);
    if (conf_load(a->file, conf_tables, &c, err, sizeof(err)) < 0) {
        log_error("SIGHUP: %s; keeping the configuration in use", err);
        conf_free(c);
        return;
    }
    log_info("SIGHUP: %s read again; restarting with it", a->file);
    if (!statusd_serves(a->status, conf_settings(c, &statusd_conf_table),
                        c->journal.path))
        log_warn("SIGHUP: the status section (or journal.path) changed: the "
                 "status endpoint keeps serving as it was started until "
                 "sftprelayd is restarted");
    conf_free(a->next);
    a->next = c;
    loop_stop(a->loop);
}

static void on_signal(struct loop *l, int fd, uint32_t events, void *arg)
{
    struct agent *a = arg;
    struct signalfd_siginfo si;

    while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        switch (si.ssi_signo) {
        case SIGHUP:
            reload(a);
            break;
        default:
            log_info("signal %d: stopping", (int)si.ssi_signo);
            a->stopping = 1;
            loop_stop(l);
        }
    }
    /* Going on as we were (a SIGHUP refused): finish the scan cut short. */
    if (a->scan_cut && a->watch && !a->stopping && a->next == NULL) {
        a->scan_cut = 0;
        log_info("a signal cut the scan of %s short; scanning it again",
                 a->c->source.path);
        watch_scan(a->watch);
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

    timer_ack(fd);
    if (a->c->journal.keep_delivered_days == 0)
        return;
    jwriter_prune(intake_writer(a->in),
                  (int64_t)time(NULL) -
                      (int64_t)a->c->journal.keep_delivered_days * 86400);
}

/*
 * Every second: the files being sent, into the journal for `sftprelay
 * status` (one small write, queued), while there are any, and once more
 * (empty) when none is left.
 */
static void on_sending(struct loop *l, int fd, uint32_t events, void *arg)
{
    struct agent *a = arg;
    struct progress_entry *e = NULL;
    char *text = NULL;
    size_t n = 0;

    timer_ack(fd);
    if (progress_snapshot(a->progress, &e, &n) < 0 ||
        (n == 0 && !a->sending_said))
        goto out;
    if (progress_encode(e, n, &text) == 0 &&
        jwriter_agent_set(intake_writer(a->in), SENDING_KEY, text,
                          (int64_t)time(NULL)) == 0)
        a->sending_said = n > 0;
out:
    free(text);
    progress_entries_free(e, n);
}

/* --- ingest: uploads to the embedded server ------------------------------ */

static void on_uploaded(void *arg, const char *rel, const struct stat *st,
                        const char *peer)
{
    struct agent *a = arg;

    intake_uploaded(a->in, rel, st, peer);
}

static void on_abandoned(void *arg, const char *rel, const struct stat *st,
                         const char *peer)
{
    struct agent *a = arg;

    intake_abandoned(a->in, rel, st, peer);
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
    size_t i;
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
    r = server_new(&so, a->loop, &a->server);
    if (r < 0)
        return r;
    log_info("serving SFTP on %s, root %s", server_address(a->server),
             sc->root);
    return 0;
}

/*
 * The status endpoint, on the first run only (SIGHUP keeps it as it is).
 * After start_loop(): its thread must inherit the blocked signals.
 */
static int start_status(struct agent *a)
{
    const struct statusd_conf *sc = conf_settings(a->c, &statusd_conf_table);
    int r;

    if (a->runs > 1 || sc == NULL || sc->listen == NULL)
        return 0;
    r = statusd_start(sc, a->c->journal.path, a->progress, &a->status);
    if (r == 0)
        log_info("status endpoint on %s%s", statusd_address(a->status),
                 sc->token_file ? ", with a bearer token" : "");
    return r;
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

    if (journal_status(j, &st) < 0) {
        log_error("journal %s: %s", journal_path(j), journal_errmsg(j));
        return 0;
    }
    ok = st.counts[JS_QUEUED] == 0 && st.counts[JS_SENDING] == 0 &&
         st.counts[JS_FAILED] == 0;
    if (!ok)
        log_warn("not delivered: %lld queued, %lld failed",
                 (long long)st.counts[JS_QUEUED],
                 (long long)st.counts[JS_FAILED]);
    journal_status_clear(&st);
    return ok;
}

/* Where server.root is below source.path: uploads' paths start with it. */
static const char *upload_prefix(const struct conf *c)
{
    const struct server_conf *sc = conf_settings(c, &server_conf_table);
    size_t n = strlen(c->source.path);
    const char *p;

    if (sc->root == NULL || strncmp(sc->root, c->source.path, n))
        return "";
    while (n > 1 && c->source.path[n - 1] == '/')
        n--;
    for (p = sc->root + n; *p == '/'; p++)
        ;
    return p;
}

/* Where the embedded server's uploads land in the source, or NULL. */
static const char *served_prefix(const struct conf *c)
{
    const struct server_conf *sc = conf_settings(c, &server_conf_table);
    size_t n = strlen(c->source.path);

    if (sc == NULL || sc->listen == NULL || sc->root == NULL ||
        strncmp(sc->root, c->source.path, n) != 0 ||
        (sc->root[n] != '\0' && sc->root[n] != '/' && n > 1))
        return NULL;
    return upload_prefix(c);
}

/* The folder after_delivery moves files to, kept from discovery; NULL. */
static const char *after_folder(const struct conf *c)
{
    const char *dir;

    return after_parse(c->source.after_delivery, &dir) == AFTER_MOVE ? dir
                                                                    : NULL;
}

/* The journal at start-up: rows a previous run left sending, our pid. */
static int open_journal(struct agent *a)
{
    char pid[16];
    int r, n = 0;

    r = journal_open(a->c->journal.path, JOURNAL_CREATE, &a->j);
    if (r < 0) {
        log_error("journal %s: %s", a->c->journal.path, strerror(-r));
        return r;
    }
    r = journal_recover(a->j, &n);
    if (r == 0 && n > 0)
        log_info("resuming %d files a previous run was sending", n);
    snprintf(pid, sizeof(pid), "%d", (int)getpid());
    if (r == 0)
        r = journal_agent_set(a->j, "pid", pid, (int64_t)time(NULL));
    /* What a run that died was sending is not being sent. */
    if (r == 0)
        r = journal_agent_set(a->j, SENDING_KEY, "", (int64_t)time(NULL));
    a->sending_said = 0;
    if (r < 0)
        log_error("journal %s: %s", a->c->journal.path, journal_errmsg(a->j));
    return r;
}

/* The loop, its signals and timers.  Signals arrive through the loop. */
static int start_loop(struct agent *a, int *prune_fd, int *sending_fd)
{
    struct loop_handler h = {.arg = a};
    sigset_t mask;
    int r;

    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &mask, NULL); /* threads inherit the mask */
    signal(SIGPIPE, SIG_IGN);
    r = loop_new(&a->loop);
    if (r < 0)
        return r;
    a->sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    *prune_fd = timer_new();
    *sending_fd = timer_new();
    if (a->sfd < 0 || *prune_fd < 0 || *sending_fd < 0)
        return a->sfd < 0 ? -errno : *prune_fd < 0 ? *prune_fd : *sending_fd;
    h.fn = on_signal;
    r = loop_add(a->loop, a->sfd, EPOLLIN, &h);
    h.fn = on_prune;
    if (r == 0)
        r = loop_add(a->loop, *prune_fd, EPOLLIN, &h);
    if (r == 0)
        r = timer_arm(*prune_fd, 1, PRUNE_INTERVAL_MS);
    h.fn = on_sending;
    if (r == 0)
        r = loop_add(a->loop, *sending_fd, EPOLLIN, &h);
    if (r == 0)
        r = timer_arm(*sending_fd, SENDING_EVERY_MS, SENDING_EVERY_MS);
    return r;
}

/*
 * --once tries what the scan found: it must be in the journal first.
 * Waits until it is, or until a signal comes (the loop then serves it).
 */
static void queue_found(struct agent *a)
{
    struct pollfd p = {.fd = a->sfd, .events = POLLIN};

    while (jwriter_flush(intake_writer(a->in), 1000) == -ETIMEDOUT)
        if (poll(&p, 1, 0) > 0)
            return;
}

static int on_listed(void *arg, const char *rel, const struct source_stat *st)
{
    struct agent *a = arg;

    return intake_listed(a->in, rel, st);
}

/* The inotify watcher on source.path, and its first scan. */
static int start_watch(struct agent *a, int once)
{
    const struct conf *c = a->c;
    struct watch_opts wo = {.root = c->source.path,
                            .exclude = c->source.exclude,
                            .n_exclude = c->source.n_exclude,
                            .settle_ms = once ? 0 : c->source.settle_ms,
                            .rescan_interval =
                                once ? 0 : c->source.rescan_interval,
                            .settle_under = served_prefix(c),
                            .skip = after_folder(c)};
    struct watch_cb cb = {.found = on_found, .arg = a};
    int r;

    r = watch_new(&wo, a->loop, &cb, &a->watch);
    if (r < 0) {
        log_error("source.path %s: %s", c->source.path, strerror(-r));
        return r;
    }
    a->scan_cut = 0;
    watch_scan(a->watch);
    return 0;
}

/* The poller of a listed source: its thread, or (--once) one listing. */
static int start_poller(struct agent *a, int once)
{
    const struct conf *c = a->c;
    struct poller_opts po = {.ops = c->source.ops,
                             .root = c->source.path,
                             .settings = c->source.settings,
                             .exclude = c->source.exclude,
                             .n_exclude = c->source.n_exclude,
                             .skip = after_folder(c),
                             .interval_s = c->source.poll_interval,
                             .stable_polls = c->source.stable_polls,
                             .max_files = (size_t)c->source.max_files,
                             .backoff_initial_s = c->transfer.backoff_initial};
    struct poller_cb cb = {.found = on_listed, .arg = a};
    int r;

    r = poller_new(&po, &cb, &a->poller);
    if (r == 0 && once) {
        r = poller_list_once(a->poller, a->sfd);
        return r == -ECANCELED ? 0 : r;
    }
    if (r == 0)
        r = poller_start(a->poller);
    if (r < 0)
        log_error("source %s %s: %s", c->source.type, c->source.path,
                  strerror(-r));
    return r;
}

/* The labels of /metrics: "TYPE WHERE" of the target and the source. */
static void describe_for_metrics(const struct conf *c, const char *where)
{
    char target[PATH_MAX + 400], source[PATH_MAX + 100];

    snprintf(target, sizeof(target), "%s %s", c->target.type, where);
    snprintf(source, sizeof(source), "%s %s", c->source.type, c->source.path);
    metrics_describe(target, source);
}

/* Intake, the scheduler and the watcher or poller, wired together. */
static int start_relay(struct agent *a, int once)
{
    const struct conf *c = a->c;
    struct sched_opts so = {.c = c,
                            .once = once,
                            .sink = c->target.ops,
                            .source = c->source.ops,
                            .progress = a->progress};
    struct intake_opts io = {.journal = c->journal.path,
                             .upload_prefix = upload_prefix(c),
                             .exclude = c->source.exclude,
                             .n_exclude = c->source.n_exclude,
                             .stop_fd = a->sfd};
    struct loop_handler h = {.fn = on_rescan, .arg = a};
    char where[PATH_MAX + 300];
    int r;

    r = sched_new(&so, &a->sched);
    if (r == 0)
        r = intake_new(&io, a->sched, &a->in);
    if (r == 0)
        r = loop_add(a->loop, intake_rescan_fd(a->in), EPOLLIN, &h);
    if (r < 0)
        return r;
    c->target.ops->describe(c->target.settings, where, sizeof(where));
    describe_for_metrics(c, where);
    if (c->source.ops->watched)
        log_info("watching %s, sending to %s %s", c->source.path,
                 c->target.type, where);
    else
        log_info("polling %s source %s every %d s, sending to %s %s",
                 c->source.type, c->source.path, c->source.poll_interval,
                 c->target.type, where);
    r = c->source.ops->watched ? start_watch(a, once) : start_poller(a, once);
    if (r < 0)
        return r;
    if (once)
        queue_found(a);
    r = sched_start(a->sched, intake_writer(a->in));
    if (r < 0)
        log_error("starting workers: %s", strerror(-r));
    return r;
}

/*
 * Stop in order: no new uploads, workers cancelled (their last results
 * queued), the writer's queue written, then the rest.
 */
static void stop_all(struct agent *a)
{
    poller_free(a->poller); /* before intake, which it calls */
    a->poller = NULL;
    server_free(a->server);
    a->server = NULL;
    sched_stop(a->sched);
    /* Nothing is being sent any more. */
    if (a->in && jwriter_agent_set(intake_writer(a->in), SENDING_KEY, "",
                                   (int64_t)time(NULL)) == 0)
        a->sending_said = 0;
    intake_free(a->in); /* writes what is queued */
    a->in = NULL;
    watch_free(a->watch);
    a->watch = NULL;
    sched_free(a->sched);
    a->sched = NULL;
}

static int run(struct agent *a, int once)
{
    struct loop_handler h = {.fn = on_done, .arg = a};
    int prune_fd = -1, sending_fd = -1, r;

    a->sfd = -1;
    a->runs++;
    r = open_journal(a);
    if (r == 0)
        r = start_loop(a, &prune_fd, &sending_fd);
    if (r == 0 && !once)
        r = start_status(a);
    if (r == 0)
        r = start_relay(a, once);
    if (r == 0 && !once) {
        r = start_server(a);
        if (r < 0)
            log_error("embedded SFTP server: %s", strerror(-r));
    }
    if (r == 0)
        r = loop_add(a->loop, sched_done_fd(a->sched), EPOLLIN, &h);
    if (r == 0)
        r = loop_run(a->loop);
    stop_all(a);
    if (r == 0 && once && !a->stopping)
        r = all_delivered(a->j) ? 0 : -EAGAIN;
    loop_free(a->loop);
    a->loop = NULL;
    if (a->sfd >= 0)
        close(a->sfd);
    if (prune_fd >= 0)
        close(prune_fd);
    if (sending_fd >= 0)
        close(sending_fd);
    journal_close(a->j);
    a->j = NULL;
    return r;
}

/* The command line (sftprelayd(8)). */
struct args {
    const char *file;
    const char *pidfile;
    int daemon, once, test_only;
};

/*
 * Parse the command line into *o.  Returns 0 to go on, or the exit status
 * plus one when there is nothing more to do (-K, -V, -h, a bad option).
 */
static int parse_args(int argc, char **argv, struct args *o)
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
    int opt;

    while ((opt = getopt_long(argc, argv, "c:tKVh", opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            o->file = optarg;
            break;
        case 'd':
            o->daemon = 1;
            break;
        case 'p':
            o->pidfile = optarg;
            break;
        case 'o':
            o->once = 1;
            break;
        case 'K':
            conf_print_keys(conf_tables);
            return 1;
        case 't':
            o->test_only = 1;
            break;
        case 'V':
            printf("sftprelayd %s\n", PACKAGE_VERSION);
            return 1;
        case 'h':
            usage(stdout);
            return 1;
        default:
            usage(stderr);
            return 3;
        }
    }
    if (optind == argc)
        return 0;
    usage(stderr);
    return 3;
}

/* Detach if asked, write the pidfile: 0, or 1 (the exit status). */
static int go_background(struct agent *a, const struct args *o)
{
    int r;

    umask(027);
    if (o->daemon) {
        r = daemonize();
        if (r < 0) {
            fprintf(stderr, "sftprelayd: detaching: %s\n", strerror(-r));
            return 1;
        }
        a->to_syslog = 1;
        log_init("sftprelayd", 1);
    }
    if (o->pidfile) {
        r = write_pidfile(o->pidfile);
        if (r < 0) {
            log_error("pidfile %s: %s", o->pidfile, strerror(-r));
            return 1;
        }
    }
    return 0;
}

static void apply_log_level(const struct conf *c)
{
    enum log_level level;

    if (log_level_parse(c->log.level, &level) == 0)
        log_set_level(level);
}

#define MALLOC_KEEP (1024 * 1024)

int main(int argc, char **argv)
{
    struct args o = {.file = CONF_DEFAULT_FILE};
    struct agent a = {0};
    char err[CONF_ERR_MAX];
    int r;

    r = parse_args(argc, argv, &o);
    if (r > 0)
        return r - 1;
    /*
     * Every claim and result is a transaction on a connection whose page
     * cache another connection's write made stale: SQLite frees it and
     * reads it back.  glibc would hand those pages to the kernel and take
     * them again each time (madvise, page faults, TLB flushes across
     * CPUs: half the agent's CPU with small files).  Keep what was freed,
     * up to MALLOC_KEEP; memory stays bounded by the peak.
     */
    mallopt(M_TRIM_THRESHOLD, MALLOC_KEEP);
    mallopt(M_ARENA_MAX, 2);
    log_init("sftprelayd", 0);
    if (conf_load(o.file, conf_tables, &a.c, err, sizeof(err)) < 0) {
        fprintf(stderr, "sftprelayd: %s\n", err);
        return 2;
    }
    apply_log_level(a.c);
    r = o.test_only ? 0 : go_background(&a, &o); /* -t: it is valid */
    if (r != 0 || o.test_only) {
        conf_free(a.c);
        return r;
    }
    a.file = o.file;
    if (progress_new(NULL, &a.progress) < 0) {
        log_error("out of memory");
        conf_free(a.c);
        return 1;
    }
    for (r = run(&a, o.once); r == 0 && a.next && !a.stopping;
         r = run(&a, o.once)) {
        conf_free(a.c); /* SIGHUP: again, with what it read */
        a.c = a.next;
        a.next = NULL;
        apply_log_level(a.c);
    }
    statusd_stop(a.status); /* after the workers: nothing it reads remains */
    conf_free(a.next);
    if (o.pidfile)
        unlink(o.pidfile);
    progress_free(a.progress);
    conf_free(a.c);
    log_info("stopped");
    return r < 0 ? 1 : 0;
}
