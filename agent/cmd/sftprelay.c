/*
 * sftprelay: the command line over the journal.  It reads the journal
 * (retry is a journal update the agent picks up) and never talks to the
 * target.  See sftprelay(1).
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sftprelay/conf.h"
#include "sftprelay/journal.h"
#include "sftprelay/log.h"
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
          "  status                 counts per state, oldest pending, errors\n"
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
static void print_outage(const char *what, const struct report_outage *o,
                         int say_ok)
{
    char when[32];

    if (o->err) {
        fmt_time(o->at, when, sizeof(when));
        printf("%-12s unreachable (since %s): ", what, when);
        text_print_safe(stdout, o->err);
        printf("\n");
    } else if (say_ok) {
        printf("%-12s ok\n", what);
    }
}

/* The status as text for people on stdout. */
static void print_status_text(const struct cli *c,
                              const struct report_status *rs, int64_t now)
{
    const struct journal_status *st = &rs->st;
    char when[32], age[32];
    int i;

    printf("journal:     %s\n", c->journal_path);
    for (i = 0; i < JS_COUNT; i++)
        printf("%-12s %lld\n", journal_state_name((enum journal_state)i),
               (long long)st->counts[i]);
    if (st->oldest_pending > 0) {
        fmt_age(now - st->oldest_pending, age, sizeof(age));
        printf("oldest pending: waiting %s\n", age);
    } else {
        printf("oldest pending: none\n");
    }
    print_outage("target:", &rs->target, 1);
    print_outage("source:", &rs->source, 0); /* a local source is never down */
    if (st->last_error) {
        fmt_time(st->last_error_at, when, sizeof(when));
        printf("last error:  ");
        text_print_safe(stdout, st->last_error_path);
        printf(": ");
        text_print_safe(stdout, st->last_error);
        printf(" (%s)\n", when);
    }
}

static int cmd_status(struct cli *c, int argc, char **argv)
{
    struct report_status rs;
    int64_t now = (int64_t)time(NULL);

    if (argc > 1) {
        usage(stderr);
        return 2;
    }
    if (report_status_get(c->j, &rs) < 0) {
        fprintf(stderr, "sftprelay: journal %s: %s\n", c->journal_path,
                journal_errmsg(c->j));
        report_status_clear(&rs);
        return 1;
    }
    if (c->json) {
        report_status_json(stdout, c->journal_path, &rs, now);
        printf("\n");
    } else {
        print_status_text(c, &rs, now);
    }
    report_status_clear(&rs);
    return 0;
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
