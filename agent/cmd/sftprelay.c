/*
 * sftprelay: the command line over the journal.  It reads the journal
 * (retry is a journal update the agent picks up) and never talks to the
 * target.  See sftprelay(1).
 *
 * status --watch redraws the status every few seconds: on a terminal in
 * place (home, each line then "clear to its end", "clear to the end of
 * the screen": no blank frame, so no flicker), cut to the screen so that
 * nothing scrolls, with the cursor hidden until SIGINT, SIGTERM or SIGHUP,
 * taken by signalfd between frames; elsewhere as plain blocks, or
 * JSON lines, one after the other.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "sftprelay/conf.h"
#include "sftprelay/human.h"
#include "sftprelay/journal.h"
#include "sftprelay/log.h"
#include "sftprelay/loop.h"
#include "sftprelay/progress.h"
#include "sftprelay/report.h"
#include "sftprelay/serve.h"
#include "sftprelay/server.h"
#include "sftprelay/statusd.h"
#include "sftprelay/text.h"

struct cli {
    const char *journal_path;
    struct journal *j;
    int json;
};

struct command {
    const char *name;
    int writes;
    int (*run)(struct cli *c, int argc, char **argv);
};

static void usage(FILE *f)
{
    fputs("usage: sftprelay [-c file | -j journal] [--json] command\n"
          "commands:\n"
          "  status                 counts, files being sent, errors\n"
          "  status --watch [SEC]   the same, redrawn every SEC seconds (2)\n"
          "  list [--state STATE]   one line per file\n"
          "  show PATH              every field of one file\n"
          "  retry PATH             send PATH again\n"
          "  retry --failed         send every failed file again\n"
          "  serve --root DIR ...   run the embedded SFTP server alone\n",
          f);
}

static void fmt_time(int64_t t, char *buf, size_t len)
{
    struct tm tm;
    time_t tt = (time_t)t;

    if (t <= 0) {
        snprintf(buf, len, "-");
        return;
    }
    gmtime_r(&tt, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void fmt_age(int64_t s, char *buf, size_t len)
{
    if (s < 120)
        snprintf(buf, len, "%llds", (long long)s);
    else if (s < 7200)
        snprintf(buf, len, "%lldm", (long long)s / 60);
    else if (s < 172800)
        snprintf(buf, len, "%lldh", (long long)s / 3600);
    else
        snprintf(buf, len, "%lldd", (long long)s / 86400);
}

/* "what:        unreachable (since ...): why", or ok (if say_ok). */
static void print_outage(FILE *out, const char *what,
                         const struct report_outage *o, int say_ok)
{
    char when[32];

    if (o->err) {
        fmt_time(o->at, when, sizeof(when));
        fprintf(out, "%-12s unreachable (since %s): ", what, when);
        text_print_safe(out, o->err);
        fprintf(out, "\n");
    } else if (say_ok) {
        fprintf(out, "%-12s ok\n", what);
    }
}

/* s as text_print_safe() prints it (malloc'd), and its width on a
 * terminal (its UTF-8 characters); NULL when out of memory. */
static char *safe_text(const char *s, int *width)
{
    char *text = NULL;
    const char *p;
    size_t len;
    FILE *m = open_memstream(&text, &len);

    *width = 0;
    if (m == NULL)
        return NULL;
    text_print_safe(m, s);
    if (fclose(m) != 0) {
        free(text);
        return NULL;
    }
    for (p = text; *p; p++)
        *width += ((unsigned char)*p & 0xc0) != 0x80;
    return text;
}

#define PATH_COLUMN_MAX 60 /* paths are padded to the longest, up to this */

/*
 * The files being sent, one line each, the figures in columns:
 *   "  PATH  12.3 MiB of 1.0 GiB (1%)  2.0 MiB/s  8m12s left"
 */
static void print_sending(FILE *out, const struct report_status *rs,
                          int64_t now)
{
    char sent[HUMAN_MAX], size[HUMAN_MAX], rate[HUMAN_MAX], left[HUMAN_MAX];
    const struct progress_entry *e;
    int pct, pad = 0, w;
    char *path;
    size_t i;

    if (rs->sending_stale && rs->sending_at > 0) {
        fmt_age(now - rs->sending_at, left, sizeof(left));
        fprintf(out,
                "sending now: not known: the agent's list is %s old "
                "(is sftprelayd running?)\n",
                left);
        return;
    }
    if (rs->sending_stale) {
        fprintf(out, "sending now: not known: the journal's list cannot be "
                     "read\n");
        return;
    }
    fprintf(out, "sending now:%s\n", rs->n_sending ? "" : " nothing");
    for (i = 0; i < rs->n_sending; i++) {
        free(safe_text(rs->sending[i].path, &w));
        pad = w > pad ? w : pad;
    }
    pad = pad < PATH_COLUMN_MAX ? pad : PATH_COLUMN_MAX;
    for (i = 0; i < rs->n_sending; i++) {
        e = &rs->sending[i];
        path = safe_text(e->path, &w);
        if (path == NULL)
            return;
        pct =
            e->size > 0 ? (int)((double)e->sent * 100 / (double)e->size) : 100;
        fprintf(out, "  %s%*s  %s of %s (%d%%)  %s  %s left\n", path,
                pad > w ? pad - w : 0, "",
                human_bytes(e->sent, sent, sizeof(sent)),
                human_bytes(e->size, size, sizeof(size)), pct > 100 ? 100 : pct,
                human_rate(e->rate, rate, sizeof(rate)),
                human_duration(progress_eta(e), left, sizeof(left)));
        free(path);
    }
}

/* The status as text for people. */
static void print_status_text(FILE *out, const struct cli *c,
                              const struct report_status *rs, int64_t now)
{
    const struct journal_status *st = &rs->st;
    char when[32], age[32];
    int i;

    fprintf(out, "journal:     %s\n", c->journal_path);
    for (i = 0; i < JS_COUNT; i++)
        fprintf(out, "%-12s %lld\n", journal_state_name((enum journal_state)i),
                (long long)st->counts[i]);
    print_sending(out, rs, now);
    if (st->oldest_pending > 0) {
        fmt_age(now - st->oldest_pending, age, sizeof(age));
        fprintf(out, "oldest pending: waiting %s\n", age);
    } else {
        fprintf(out, "oldest pending: none\n");
    }
    print_outage(out, "target:", &rs->target, 1);
    /* a local source is never down */
    print_outage(out, "source:", &rs->source, 0);
    if (st->last_error) {
        fmt_time(st->last_error_at, when, sizeof(when));
        fprintf(out, "last error:  ");
        text_print_safe(out, st->last_error_path);
        fprintf(out, ": ");
        text_print_safe(out, st->last_error);
        fprintf(out, " (%s)\n", when);
    }
}

/* The status, as text or JSON, on out; what fails on err.  0 or 1. */
static int show_status(struct cli *c, FILE *out, FILE *err)
{
    struct report_status rs;
    int64_t now = (int64_t)time(NULL);
    int ret = 0;

    if (report_status_get(c->j, &rs) < 0) {
        fprintf(err, "sftprelay: journal %s: %s\n", c->journal_path,
                journal_errmsg(c->j));
        ret = 1;
    } else if (c->json) {
        report_status_json(out, c->journal_path, &rs, now);
        fprintf(out, "\n");
    } else {
        print_status_text(out, c, &rs, now);
    }
    report_status_clear(&rs);
    return ret;
}

#define WATCH_DEFAULT 2.0
#define WATCH_MIN 0.1
#define WATCH_MAX 86400.0

/* --watch's SECONDS: 0, or -EINVAL (said on stderr). */
static int watch_seconds(const char *s, double *every)
{
    char *end;

    errno = 0;
    *every = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(*every) || *every < WATCH_MIN ||
        *every > WATCH_MAX) {
        fprintf(stderr,
                "sftprelay: --watch: \"%s\" is not a number of seconds "
                "from %.1f to %.0f\n",
                s, WATCH_MIN, WATCH_MAX);
        return -EINVAL;
    }
    return 0;
}

/* Draw text on the terminal from its top-left corner, in place. */
static void draw(const char *text)
{
    struct winsize ws;
    int rows = 24, cols = 80, n, w;
    const char *line, *p;

    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 1 &&
        ws.ws_col > 1) {
        rows = ws.ws_row;
        cols = ws.ws_col;
    }
    fputs("\033[H", stdout); /* home */
    /* rows - 1 lines, cols - 1 characters (UTF-8) each: nothing wraps or
     * scrolls */
    for (line = text, n = 0; *line && n < rows - 1; n++) {
        for (p = line, w = 0; *p && *p != '\n'; p++) {
            w += ((unsigned char)*p & 0xc0) != 0x80;
            if (w < cols)
                fputc(*p, stdout);
        }
        fputs("\033[K\n", stdout); /* the rest of the line cleared */
        line = *p ? p + 1 : p;
    }
    fputs("\033[J", stdout); /* and the rest of the screen */
}

/* One refresh: on the terminal in place, else a block or a JSON line. */
static void watch_frame(struct cli *c, double every, int tty)
{
    char *text = NULL, when[32];
    size_t len;
    time_t t = time(NULL);
    struct tm tm;
    FILE *m = open_memstream(&text, &len);

    if (m == NULL)
        return;
    if (!c->json) {
        localtime_r(&t, &tm);
        strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
        fprintf(m,
                every * 10 == (double)(int64_t)(every * 10) ? "Every %.1fs"
                                                            : "Every %gs",
                every);
        fprintf(m, ": sftprelay status   %s\n\n", when);
    }
    show_status(c, m, c->json ? stderr : m);
    if (fclose(m) == 0) {
        if (tty)
            draw(text);
        else
            printf("%s%s", text, c->json ? "" : "\n");
    }
    fflush(stdout);
    free(text);
}

/* status --watch: a refresh every `every` seconds until SIGINT/SIGTERM. */
static int watch_status(struct cli *c, double every)
{
    const char *term = getenv("TERM");
    int tty =
        !c->json && isatty(STDOUT_FILENO) && term && strcmp(term, "dumb") != 0;
    struct pollfd p = {.events = POLLIN};
    int64_t next = mono_ms(), now;
    sigset_t mask;

    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    p.fd = signalfd(-1, &mask, SFD_CLOEXEC);
    if (p.fd < 0) {
        fprintf(stderr, "sftprelay: signalfd: %s\n", strerror(errno));
        return 1;
    }
    if (tty)
        fputs("\033[?25l", stdout); /* the cursor hidden */
    do {
        watch_frame(c, every, tty);
        next += (int64_t)(every * 1000);
        now = mono_ms();
        if (next < now) /* a slow journal: the next one now */
            next = now;
    } while (poll(&p, 1, (int)(next - now)) == 0 || (p.revents & POLLIN) == 0);
    if (tty) /* the terminal's "^C" wiped, the cursor shown again */
        fputs("\r\033[K\033[?25h", stdout);
    fflush(stdout);
    close(p.fd);
    return 0;
}

static int cmd_status(struct cli *c, int argc, char **argv)
{
    double every = 0;
    const char *v;
    int i;

    for (i = 1; i < argc; i++) {
        v = NULL;
        if (strncmp(argv[i], "--watch=", 8) == 0)
            v = argv[i] + 8;
        else if (strcmp(argv[i], "--watch") != 0) {
            usage(stderr);
            return 2;
        } else if (i + 1 < argc && strcmp(argv[i + 1], "--watch") &&
                   strncmp(argv[i + 1], "--watch=", 8))
            v = argv[++i]; /* its SECONDS, if any */
        every = WATCH_DEFAULT;
        if (v && watch_seconds(v, &every) < 0)
            return 2;
    }
    if (every > 0)
        return watch_status(c, every);
    return show_status(c, stdout, stderr);
}

static int list_one(const struct journal_file *f, void *arg)
{
    printf("%-9s %12lld %3lld  ", journal_state_name(f->state),
           (long long)f->size, (long long)f->attempts);
    text_print_safe(stdout, f->path);
    printf("\n");
    return 0;
}

static int cmd_list(struct cli *c, int argc, char **argv)
{
    static const struct option opts[] = {
        {"state", required_argument, NULL, 's'},
        {"json", no_argument, NULL, 'J'},
        {NULL, 0, NULL, 0},
    };
    struct journal_query q = {.state = JS_COUNT};
    int opt, r;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "s:", opts, NULL)) != -1) {
        switch (opt) {
        case 's':
            if (journal_state_parse(optarg, &q.state) < 0) {
                fprintf(stderr,
                        "sftprelay: --state: \"%s\" is not queued, "
                        "sending, delivered or failed\n",
                        optarg);
                return 2;
            }
            break;
        case 'J':
            c->json = 1;
            break;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    /* The status endpoint's GET /v1/files prints the same array. */
    if (c->json)
        r = report_files_json(stdout, c->j, &q, NULL);
    else
        r = journal_list(c->j, q.state, list_one, NULL);
    if (r < 0) {
        fprintf(stderr, "sftprelay: journal %s: %s\n", c->journal_path,
                journal_errmsg(c->j));
        return 1;
    }
    return 0;
}

static int cmd_show(struct cli *c, int argc, char **argv)
{
    struct journal_file f;
    char t[4][40];
    int r;

    if (argc != 2) {
        usage(stderr);
        return 2;
    }
    r = journal_get(c->j, argv[1], &f);
    if (r == -ENOENT) {
        fprintf(stderr, "sftprelay: ");
        text_print_safe(stderr, argv[1]);
        fprintf(stderr, ": not in the journal\n");
        return 1;
    }
    if (r < 0) {
        fprintf(stderr, "sftprelay: journal %s: %s\n", c->journal_path,
                journal_errmsg(c->j));
        return 1;
    }
    if (c->json) {
        report_file_json(stdout, &f);
        printf("\n");
    } else {
        fmt_time(f.detected_at, t[0], sizeof(t[0]));
        fmt_time(f.attempted_at, t[1], sizeof(t[1]));
        fmt_time(f.delivered_at, t[2], sizeof(t[2]));
        fmt_time(f.state == JS_QUEUED ? f.next_attempt : 0, t[3], sizeof(t[3]));
        printf("path:          ");
        text_print_safe(stdout, f.path);
        printf("\nstate:         %s\n"
               "size:          %lld\n"
               "version:       %lld\n"
               "attempts:      %lld\n"
               "resume offset: %lld\n"
               "sha256:        %s\n"
               "delivered sha: %s\n"
               "outcome:       %s\n"
               "etag:          %s\n"
               "detected:      %s\n"
               "last attempt:  %s\n"
               "next attempt:  %s\n"
               "delivered:     %s\n",
               journal_state_name(f.state), (long long)f.size,
               (long long)f.version, (long long)f.attempts,
               (long long)f.resume_offset, f.sha256 ? f.sha256 : "-",
               f.delivered_sha256 ? f.delivered_sha256 : "-",
               f.outcome ? f.outcome : "-", f.etag ? f.etag : "-", t[0], t[1],
               t[3], t[2]);
        printf("target path:   ");
        text_print_safe(stdout, f.target_path ? f.target_path : f.path);
        printf("\nlast error:    ");
        text_print_safe(stdout, f.last_error ? f.last_error : "-");
        printf("\n");
    }
    journal_file_clear(&f);
    return 0;
}

static int cmd_retry(struct cli *c, int argc, char **argv)
{
    int n = 0, r;

    if (argc != 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--failed") == 0) {
        r = journal_retry_failed(c->j, &n);
        if (r < 0) {
            fprintf(stderr, "sftprelay: journal %s: %s\n", c->journal_path,
                    journal_errmsg(c->j));
            return 1;
        }
        if (c->json)
            printf("{\"queued\": %d}\n", n);
        else
            printf("queued %d failed file%s again\n", n, n == 1 ? "" : "s");
        return 0;
    }
    r = journal_retry(c->j, argv[1]);
    if (r == 0) {
        if (c->json) {
            printf("{\"queued\": ");
            text_print_json(stdout, argv[1]);
            printf("}\n");
        } else {
            printf("queued ");
            text_print_safe(stdout, argv[1]);
            printf(" again\n");
        }
        return 0;
    }
    fprintf(stderr, "sftprelay: ");
    text_print_safe(stderr, argv[1]);
    if (r == -ENOENT)
        fprintf(stderr, ": not in the journal\n");
    else if (r == -EBUSY)
        fprintf(stderr, ": being sent now; retry it if it fails\n");
    else
        fprintf(stderr, ": %s\n", journal_errmsg(c->j));
    return 1;
}

static const struct command commands[] = {
    {"status", 0, cmd_status},
    {"list", 0, cmd_list},
    {"show", 0, cmd_show},
    {"retry", 1, cmd_retry},
};

static const struct option main_opts[] = {
    {"config", required_argument, NULL, 'c'},
    {"journal", required_argument, NULL, 'j'},
    {"json", no_argument, NULL, 'J'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

/*
 * Read the options before the command into c and *file (strings point
 * into argv); optind is then the command's index.  --help and --version
 * are answered here and set *done.  Returns 0, or -EINVAL on an unknown
 * option (getopt has said which).
 */
static int parse_options(int argc, char **argv, struct cli *c,
                         const char **file, int *done)
{
    int opt;

    *done = 0;
    while ((opt = getopt_long(argc, argv, "+c:j:hV", main_opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            *file = optarg;
            break;
        case 'j':
            c->journal_path = optarg;
            break;
        case 'J':
            c->json = 1;
            break;
        case 'h':
            usage(stdout);
            *done = 1;
            return 0;
        case 'V':
            printf("sftprelay %s\n", PACKAGE_VERSION);
            *done = 1;
            return 0;
        default:
            return -EINVAL;
        }
    }
    return 0;
}

/* The journal command called name in commands[], or NULL. */
static const struct command *find_command(const char *name)
{
    const struct command *cmd = NULL;
    size_t i;

    for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(name, commands[i].name) == 0)
            cmd = &commands[i];
    return cmd;
}

/*
 * --json may also follow the command (list reads its own): take each one
 * after argv[first] out of argv and set c->json.  Returns the new argc.
 */
static int take_json(const struct command *cmd, int argc, char **argv,
                     int first, struct cli *c)
{
    size_t i;

    for (i = (size_t)first + 1; i < (size_t)argc; i++) {
        if (strcmp(argv[i], "--json") == 0 && cmd->run != cmd_list) {
            c->json = 1;
            memmove(&argv[i], &argv[i + 1],
                    (size_t)(argc - (int)i) * sizeof(*argv));
            argc--;
            i--;
        }
    }
    return argc;
}

/*
 * Take c->journal_path from the configuration file (the default one when
 * file is NULL).  *conf holds the string: the caller frees it with
 * conf_free().  Says what is wrong on stderr.  Returns 0 or a negative
 * errno.
 */
static int journal_path_from_conf(struct cli *c, const char *file,
                                  struct conf **conf)
{
    /* The whole file is checked: the server's and the status endpoint's
     * keys are allowed too. */
    static const struct conf_table *const tables[] = {
        &server_conf_table, &statusd_conf_table, NULL};
    char err[CONF_ERR_MAX];
    int r;

    r = conf_load(file ? file : CONF_DEFAULT_FILE, tables, conf, err,
                  sizeof(err));
    if (r < 0) {
        fprintf(stderr, "sftprelay: %s\n", err);
        goto out;
    }
    c->journal_path = (*conf)->journal.path;
out:
    return r;
}

/*
 * Open c->journal_path into c->j (closed with journal_close()), read only
 * unless cmd writes.  Says what is wrong on stderr.  Returns 0 or a
 * negative errno.
 */
static int open_journal(struct cli *c, const struct command *cmd)
{
    int r;

    r = journal_open(c->journal_path, cmd->writes ? 0 : JOURNAL_RDONLY, &c->j);
    if (r < 0)
        fprintf(stderr, "sftprelay: journal %s: %s%s\n", c->journal_path,
                strerror(-r), r == -ENOENT ? " (has sftprelayd run yet?)" : "");
    return r;
}

int main(int argc, char **argv)
{
    const struct command *cmd = NULL;
    const char *file = NULL;
    struct cli c = {0};
    struct conf *conf = NULL;
    int done, ret;

    if (parse_options(argc, argv, &c, &file, &done) < 0) {
        usage(stderr);
        return 2;
    }
    if (done)
        return 0;
    if (optind >= argc) {
        usage(stderr);
        return 2;
    }
    cmd = find_command(argv[optind]);
    if (cmd == NULL && strcmp(argv[optind], "serve") == 0) {
        log_init("sftprelay", 0);
        return serve_main(argc - optind, argv + optind);
    }
    if (cmd == NULL) {
        fprintf(stderr, "sftprelay: unknown command \"%s\"\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    argc = take_json(cmd, argc, argv, optind, &c);
    log_init("sftprelay", 0);
    log_set_level(LOG_LVL_WARN);
    ret = 2;
    if (c.journal_path == NULL && journal_path_from_conf(&c, file, &conf) < 0)
        goto out;
    ret = 1;
    if (open_journal(&c, cmd) < 0)
        goto out;
    ret = cmd->run(&c, argc - optind, argv + optind);
    journal_close(c.j);
out:
    conf_free(conf);
    return ret;
}
