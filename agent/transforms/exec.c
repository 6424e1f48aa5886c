/*
 * The exec transform: any filter program that reads the file on its
 * standard input and writes the result on its standard output (gpg, age,
 * a company's own tool), one child per file.
 *
 * The child is started at the file's first process() call with
 * posix_spawn() (no shell): argv is the command as configured, its first
 * element found in the agent's PATH unless it holds a '/'; its
 * environment is PATH and the configured env, nothing else; its signal
 * mask and the dispositions the agent changes are reset; it leads a
 * process group of its own, so that a kill reaches what it starts; every
 * descriptor but its three pipes is closed.
 *
 * Each process() call writes its bytes to the child's stdin while it
 * reads the child's stdout and stderr, with poll() on non-blocking pipes,
 * so a filter that writes before it has read everything cannot deadlock
 * the two.  What the child wrote during the call is the call's output (a
 * stream: TRANSFORM_RESTART), held in a buffer the instance owns, which
 * may grow to EXEC_OUT_MAX: a program that writes more than that within
 * one chunk fails the file (memory stays flat).  Of stderr only the last
 * TAIL_MAX bytes are kept, for the words of a failure.  On the last call
 * stdin is closed, stdout and stderr are read to their end and the child
 * is reaped; a non-zero exit, a signal or the timeout fails the file.
 *
 * A child still running when its file is abandoned (begin() of the next
 * file, destroy()) is killed with its process group and reaped.  SIGPIPE
 * is blocked in the calling thread while it writes to the child, and one
 * raised by that write is taken back, so a child that exits early cannot
 * kill the agent.  The instance belongs to one thread.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sftprelay/conf.h"
#include "sftprelay/text.h"
#include "sftprelay/transform.h"

extern const struct transform_ops transform_exec;

struct exec_settings {
    char **command; /* argv, NULL-terminated */
    size_t n_command;
    char **env; /* "NAME=VALUE" */
    size_t n_env;
    int timeout; /* seconds for a whole file, 0: none */
};

/* Output of one call, at most; and what is kept of stderr. */
#define EXEC_OUT_MAX ((size_t)8 << 20)
#define TAIL_MAX 512

/* Where the agent has no PATH: the one a login shell starts with. */
#define DEFAULT_PATH "/usr/local/bin:/usr/bin:/bin"

static int env_name_ok(const char *s)
{
    size_t i;

    for (i = 0; s[i] && s[i] != '='; i++)
        if (!(s[i] == '_' || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= 'a' && s[i] <= 'z') ||
              (i > 0 && s[i] >= '0' && s[i] <= '9')))
            return 0;
    return i > 0 && s[i] == '=';
}

static int check_exec(void *settings, const struct conf_scope *s, char *err,
                      size_t errlen)
{
    const struct exec_settings *x = settings;
    size_t i;

    if (x->n_command == 0 || x->command[0][0] == '\0')
        return conf_fail(s, conf_scope_line(s, "command"), "command", err,
                         errlen,
                         "needs a program: [ \"gpg\", \"--batch\", "
                         "... ]");
    for (i = 0; i < x->n_env; i++)
        if (!env_name_ok(x->env[i]))
            return conf_fail(s, conf_scope_line(s, "env"), "env", err, errlen,
                             "\"%s\" is not NAME=VALUE", x->env[i]);
    return 0;
}

#define X struct exec_settings
static const struct conf_key exec_keys[] = {
    {
        .name = "command",
        .type = CONF_STRV,
        .offset = offsetof(X, command),
        .count_offset = offsetof(X, n_command),
        .flags = CONF_REQUIRED,
        .doc = "exec: the program and its arguments, no shell; found in "
               "the agent's PATH unless it holds a /",
    },
    CONF_KEY_STRV(X, env, n_env, "env", "",
                  "exec: \"NAME=VALUE\" for the program, whose environment "
                  "is PATH and these"),
    CONF_KEY_INT(X, timeout, "timeout", 0, 0, 604800,
                 "exec: seconds a file may take, from the program's start "
                 "to its exit (0: no limit)"),
};
#undef X

static const struct conf_table exec_conf = {
    .section = "transforms",
    .title = "transform exec",
    .keys = exec_keys,
    .n_keys = CONF_N_KEYS(exec_keys),
    .size = sizeof(struct exec_settings),
    .check = check_exec,
};

struct exec {
    struct transform t;
    const struct exec_settings *s;
    char **envp;        /* PATH and s->env, NULL-terminated */
    pid_t pid;          /* the child, 0 if none */
    int in, out, err;   /* our ends of its stdin, stdout, stderr; -1: closed */
    int64_t deadline;   /* monotonic ms; 0: none */
    int failed;         /* the file failed: a negative errno, until begin() */
    unsigned char *buf; /* this call's output */
    size_t len, cap;
    char tail[TAIL_MAX]; /* the last bytes of its stderr */
    size_t tail_len;
    int tail_cut; /* bytes were dropped before tail */
    char msg[TAIL_MAX * 4 + 256];
};

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* --- the environment and the program ------------------------------------- */

static void strv_free(char **v)
{
    size_t i;

    for (i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

/* PATH as the agent has it, then s->env (whose PATH, if any, wins). */
static int make_envp(const struct exec_settings *s, char ***out)
{
    const char *path = getenv("PATH");
    char **v = calloc(s->n_env + 2, sizeof(*v));
    size_t i, n = 0;
    int own_path = 0;

    if (v == NULL)
        return -ENOMEM;
    for (i = 0; i < s->n_env; i++)
        if (strncmp(s->env[i], "PATH=", 5) == 0)
            own_path = 1;
    if (!own_path &&
        asprintf(&v[n++], "PATH=%s", path ? path : DEFAULT_PATH) < 0) {
        v[--n] = NULL;
        strv_free(v);
        return -ENOMEM;
    }
    for (i = 0; i < s->n_env; i++) {
        v[n] = strdup(s->env[i]);
        if (v[n++] == NULL) {
            strv_free(v);
            return -ENOMEM;
        }
    }
    *out = v;
    return 0;
}

/* The program to run: name itself if it holds a '/', else from PATH. */
static int find_program(struct exec *x, const char *name, char *out,
                        size_t outlen)
{
    const char *path = getenv("PATH"), *p, *end;
    struct stat st;
    int n;

    if (strchr(name, '/')) {
        snprintf(out, outlen, "%s", name);
        return 0;
    }
    if (path == NULL)
        path = DEFAULT_PATH;
    for (p = path;; p = end + 1) {
        end = strchr(p, ':');
        if (end == NULL)
            end = p + strlen(p);
        n = snprintf(out, outlen, "%.*s%s%s", (int)(end - p), p,
                     end > p ? "/" : "", name);
        if (n > 0 && (size_t)n < outlen && stat(out, &st) == 0 &&
            S_ISREG(st.st_mode) && access(out, X_OK) == 0)
            return 0;
        if (*end == '\0')
            break;
    }
    snprintf(x->msg, sizeof(x->msg), "\"%s\" not found in PATH (%s)", name,
             path);
    return -ENOENT;
}

/* --- the child ----------------------------------------------------------- */

/* A pipe whose ends are above 2 (so a dup2 onto 0..2 is never a no-op
 * that keeps O_CLOEXEC), both close-on-exec. */
static int make_pipe(int fds[2])
{
    int i, fd;

    if (pipe2(fds, O_CLOEXEC) < 0)
        return -errno;
    for (i = 0; i < 2; i++) {
        if (fds[i] > 2)
            continue;
        fd = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
        if (fd < 0) {
            fd = -errno;
            close(fds[0]);
            close(fds[1]);
            return fd;
        }
        close(fds[i]);
        fds[i] = fd;
    }
    return 0;
}

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);

    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    return 0;
}

/* The child gets the signals the agent blocks or changes as by default. */
static void child_signals(posix_spawnattr_t *a)
{
    static const int sigs[] = {SIGPIPE, SIGINT,  SIGTERM, SIGHUP, SIGQUIT,
                               SIGCHLD, SIGUSR1, SIGUSR2, SIGALRM};
    sigset_t none, def;
    size_t i;

    sigemptyset(&none);
    sigemptyset(&def);
    for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        sigaddset(&def, sigs[i]);
    posix_spawnattr_setsigmask(a, &none);
    posix_spawnattr_setsigdefault(a, &def);
    posix_spawnattr_setpgroup(a, 0);
    posix_spawnattr_setflags(a, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                    POSIX_SPAWN_SETPGROUP);
}

static int spawn(struct exec *x)
{
    int pin[2] = {-1, -1}, pout[2] = {-1, -1}, perr[2] = {-1, -1};
    char prog[PATH_MAX];
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    int r;

    r = find_program(x, x->s->command[0], prog, sizeof(prog));
    if (r < 0)
        return r;
    r = make_pipe(pin);
    if (r == 0)
        r = make_pipe(pout);
    if (r == 0)
        r = make_pipe(perr);
    if (r < 0)
        goto out;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pin[0], 0);
    posix_spawn_file_actions_adddup2(&fa, pout[1], 1);
    posix_spawn_file_actions_adddup2(&fa, perr[1], 2);
#ifdef HAVE_POSIX_SPAWN_FILE_ACTIONS_ADDCLOSEFROM_NP
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
#endif
    posix_spawnattr_init(&attr);
    child_signals(&attr);
    r = -posix_spawn(&x->pid, prog, &fa, &attr, x->s->command, x->envp);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    if (r < 0) {
        x->pid = 0;
        snprintf(x->msg, sizeof(x->msg), "\"%s\" (%.512s) could not start: %s",
                 x->s->command[0], prog, strerror(-r));
        goto out;
    }
    x->in = pin[1];
    x->out = pout[0];
    x->err = perr[0];
    pin[1] = pout[0] = perr[0] = -1; /* transferred */
    x->deadline = x->s->timeout > 0 ? now_ms() + x->s->timeout * 1000LL : 0;
    if (set_nonblock(x->in) < 0 || set_nonblock(x->out) < 0 ||
        set_nonblock(x->err) < 0)
        r = -errno;
out:
    close_fd(&pin[0]);
    close_fd(&pin[1]);
    close_fd(&pout[0]);
    close_fd(&pout[1]);
    close_fd(&perr[0]);
    close_fd(&perr[1]);
    return r;
}

/* Kill the child and its group, if it runs, reap it, close our ends. */
static void stop(struct exec *x)
{
    if (x->pid > 0) {
        kill(-x->pid, SIGKILL);
        kill(x->pid, SIGKILL);
        while (waitpid(x->pid, NULL, 0) < 0 && errno == EINTR)
            ;
        x->pid = 0;
    }
    close_fd(&x->in);
    close_fd(&x->out);
    close_fd(&x->err);
}

/* --- words --------------------------------------------------------------- */

/* x->msg: "\"prog\" what: stderr's tail", the tail on one line, escaped. */
static void say(struct exec *x, const char *what)
{
    char tail[TAIL_MAX + 1];
    size_t n = x->tail_len, at;
    FILE *f;

    while (n > 0 && (x->tail[n - 1] == '\n' || x->tail[n - 1] == '\r' ||
                     x->tail[n - 1] == ' '))
        n--;
    memcpy(tail, x->tail, n);
    tail[n] = '\0';
    at = (size_t)snprintf(x->msg, sizeof(x->msg), "\"%s\" %s%s%s",
                          x->s->command[0], what, n ? ": " : "",
                          n && x->tail_cut ? "..." : "");
    if (n == 0 || at >= sizeof(x->msg) - 1)
        return;
    f = fmemopen(x->msg + at, sizeof(x->msg) - at, "w");
    if (f == NULL)
        return;
    text_print_safe(f, tail);
    fclose(f);
}

/* Fail the file: kill what is left of the child, keep r for later calls. */
static int fail(struct exec *x, int r, const char *what)
{
    stop(x);
    if (what)
        say(x, what);
    x->failed = r;
    return r;
}

/* Words for how the child ended (status from waitpid()); 0 if well. */
static int ended(struct exec *x, int status)
{
    char what[96];

    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    if (WIFEXITED(status))
        snprintf(what, sizeof(what), "exited with status %d",
                 WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(what, sizeof(what), "was killed by signal %d (%s)",
                 WTERMSIG(status), strsignal(WTERMSIG(status)));
    else
        snprintf(what, sizeof(what), "ended with status %#x", status);
    return fail(x, -EIO, what);
}

static int timed_out(struct exec *x)
{
    char what[64];

    snprintf(what, sizeof(what), "timed out after %d s and was killed",
             x->s->timeout);
    return fail(x, -ETIMEDOUT, what);
}

/* --- the pipes ------------------------------------------------------------ */

/* Keep the last TAIL_MAX bytes of what the child says on stderr. */
static int read_err(struct exec *x)
{
    char b[4096];
    ssize_t n = read(x->err, b, sizeof(b));
    size_t keep;

    if (n == 0)
        close_fd(&x->err);
    if (n <= 0)
        return n < 0 && errno != EAGAIN && errno != EINTR ? -errno : 0;
    if ((size_t)n >= TAIL_MAX) {
        memcpy(x->tail, b + n - TAIL_MAX, TAIL_MAX);
        x->tail_cut |= (size_t)n > TAIL_MAX || x->tail_len > 0;
        x->tail_len = TAIL_MAX;
        return 0;
    }
    keep = TAIL_MAX - (size_t)n;
    if (x->tail_len > keep) {
        memmove(x->tail, x->tail + x->tail_len - keep, keep);
        x->tail_len = keep;
        x->tail_cut = 1;
    }
    memcpy(x->tail + x->tail_len, b, (size_t)n);
    x->tail_len += (size_t)n;
    return 0;
}

/* Read what the child wrote into the call's output. */
static int read_out(struct exec *x)
{
    unsigned char *b;
    ssize_t n;

    if (x->len == x->cap) {
        if (x->cap >= EXEC_OUT_MAX) {
            char what[128];

            snprintf(what, sizeof(what),
                     "wrote more than %zu MiB for one chunk of input",
                     EXEC_OUT_MAX >> 20);
            return fail(x, -EFBIG, what);
        }
        b = transform_reserve(x->buf, &x->cap, x->cap ? x->cap * 2 : 65536);
        if (b == NULL)
            return fail(x, -ENOMEM, NULL);
        x->buf = b;
    }
    n = read(x->out, x->buf + x->len, x->cap - x->len);
    if (n == 0)
        close_fd(&x->out);
    if (n < 0 && errno != EAGAIN && errno != EINTR)
        return fail(x, -errno, NULL);
    if (n > 0)
        x->len += (size_t)n;
    return 0;
}

/*
 * Write what is left of in to the child's stdin; *pos moves on.  SIGPIPE
 * is blocked by the caller: a child gone is EPIPE, which closes stdin and
 * sets *broke.
 */
static int write_in(struct exec *x, const unsigned char *in, size_t len,
                    size_t *pos, int *broke)
{
    ssize_t n = write(x->in, in + *pos, len - *pos);

    if (n > 0)
        *pos += (size_t)n;
    if (n < 0 && errno == EPIPE) {
        close_fd(&x->in);
        *broke = 1;
        return 0;
    }
    if (n < 0 && errno != EAGAIN && errno != EINTR)
        return fail(x, -errno, NULL);
    return 0;
}

/*
 * One turn: wait for any of the pipes (at most wait_ms, -1: until the
 * deadline), then serve those ready.  Returns 0, 1 if nothing was ready
 * in time, or a negative errno.
 */
static int turn(struct exec *x, const unsigned char *in, size_t len,
                size_t *pos, int *broke, int wait_ms)
{
    struct pollfd p[4] = {
        {.fd = *pos < len ? x->in : -1, .events = POLLOUT},
        {.fd = x->out, .events = POLLIN},
        {.fd = x->err, .events = POLLIN},
        {.fd = x->t.cancel_fd, .events = POLLIN},
    };
    int left = -1, n, r = 0;

    if (x->deadline) {
        left = (int)(x->deadline - now_ms());
        if (left <= 0)
            return timed_out(x);
    }
    if (wait_ms >= 0 && (left < 0 || wait_ms < left))
        left = wait_ms;
    n = poll(p, 4, left);
    if (n < 0 && errno != EINTR)
        return fail(x, -errno, NULL);
    if (n <= 0)
        return n == 0 && wait_ms < 0 ? timed_out(x) : n == 0;
    if (p[3].revents) /* the agent is stopping: the file waits */
        return fail(x, -ECANCELED, "was stopped with the agent");
    if (p[0].revents)
        r = write_in(x, in, len, pos, broke);
    if (r == 0 && p[1].revents)
        r = read_out(x);
    if (r == 0 && p[2].revents)
        r = read_err(x);
    return r;
}

/* Whether fd (-1: none) is readable now. */
static int readable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};

    return fd >= 0 && poll(&p, 1, 0) > 0;
}

/* Reap the child once its pipes are closed, within the deadline. */
static int reap(struct exec *x)
{
    int status = 0;
    pid_t p;

    for (;;) {
        p = waitpid(x->pid, &status,
                    x->deadline || x->t.cancel_fd >= 0 ? WNOHANG : 0);
        if (p == x->pid)
            break;
        if (p < 0 && errno != EINTR)
            return fail(x, -errno, NULL);
        if (x->deadline && now_ms() >= x->deadline)
            return timed_out(x);
        if (p == 0 && readable(x->t.cancel_fd))
            return fail(x, -ECANCELED, "was stopped with the agent");
        if (p == 0)
            usleep(5000);
    }
    x->pid = 0;
    return ended(x, status);
}

/*
 * Feed in to the child and collect its output; on the last call, or
 * when it stopped reading, read its pipes to their end and reap it.
 */
static int pump(struct exec *x, const unsigned char *in, size_t len, int last)
{
    size_t pos = 0;
    int broke = 0, r = 0;

    while (r == 0 && pos < len && !broke)
        r = turn(x, in, len, &pos, &broke, -1);
    /* What is ready now goes with this call. */
    while (r == 0 && !last && !broke && (x->out >= 0 || x->err >= 0))
        r = turn(x, in, len, &pos, &broke, 0); /* 1: nothing more now */
    if (r < 0)
        return r;
    if (!last && !broke)
        return 0;
    close_fd(&x->in);
    r = 0;
    while (r == 0 && (x->out >= 0 || x->err >= 0))
        r = turn(x, in, len, &pos, &broke, -1);
    if (r < 0)
        return r;
    r = reap(x);
    if (r == 0 && broke)
        return fail(x, -EIO,
                    "stopped reading its input and exited with "
                    "status 0");
    return r;
}

/* --- the ops ------------------------------------------------------------- */

static int exec_create(const void *settings, struct transform **out)
{
    struct exec *x;
    int r;

    *out = NULL;
    if (settings == NULL)
        return -EINVAL; /* command is required */
    x = calloc(1, sizeof(*x));
    if (x == NULL)
        return -ENOMEM;
    transform_init(&x->t, &transform_exec);
    x->s = settings;
    x->in = x->out = x->err = -1;
    r = make_envp(x->s, &x->envp);
    if (r < 0) {
        free(x);
        return r;
    }
    *out = &x->t;
    return 0;
}

static void exec_destroy(struct transform *t)
{
    struct exec *x = (struct exec *)t;

    if (x == NULL)
        return;
    stop(x);
    strv_free(x->envp);
    free(x->buf);
    free(x);
}

static int exec_begin(struct transform *t)
{
    struct exec *x = (struct exec *)t;

    stop(x); /* a file abandoned midway */
    x->failed = 0;
    x->tail_len = 0;
    x->tail_cut = 0;
    x->msg[0] = '\0';
    return 0;
}

static int exec_process(struct transform *t, const void *in, size_t len,
                        int last, const void **out, size_t *outlen)
{
    struct exec *x = (struct exec *)t;
    sigset_t pipe_set, old, pending;
    struct timespec zero = {0, 0};
    int was_pending, r;

    *out = NULL;
    *outlen = 0;
    if (x->failed)
        return x->failed;
    x->len = 0;
    if (x->pid == 0) {
        r = spawn(x);
        if (r < 0)
            return fail(x, r, NULL);
    }
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    sigpending(&pending);
    was_pending = sigismember(&pending, SIGPIPE);
    r = pump(x, in, len, last);
    sigpending(&pending);
    if (!was_pending && sigismember(&pending, SIGPIPE))
        sigtimedwait(&pipe_set, NULL, &zero); /* ours: take it back */
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r < 0)
        return r;
    *out = x->buf;
    *outlen = x->len;
    return 0;
}

static const char *exec_error(const struct transform *t)
{
    return ((const struct exec *)t)->msg;
}

const struct transform_ops transform_exec = {
    .name = "exec",
    .resume = TRANSFORM_RESTART,
    .suffix = "",
    .conf = &exec_conf,
    .create = exec_create,
    .destroy = exec_destroy,
    .begin = exec_begin,
    .process = exec_process,
    .error = exec_error,
};
