/*
 * The status endpoint (statusd.h): libmicrohttpd's daemon with one
 * internal polling thread, its routes a table, its journal connection
 * read-only and its own.
 *
 * A request is answered in the first call of the access handler: every
 * route is a GET without a body, so nothing needs to be read first; a
 * request with a body gets its answer (405) and libmicrohttpd closes the
 * connection after it.  The handler reads the raw URI, which
 * libmicrohttpd hands to the URI callback before it parses it, so that
 * the query is read by statusq.c as it was sent (raw bytes, unknown keys,
 * duplicates), not as libmicrohttpd would have decoded it.
 *
 * The listening socket is made here (addr.h), so that an address in use
 * is reported as such, naming it.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "mhdso.h"
#include "sftprelay/addr.h"
#include "sftprelay/conf.h"
#include "sftprelay/journal.h"
#include "sftprelay/log.h"
#include "sftprelay/metrics.h"
#include "sftprelay/report.h"
#include "sftprelay/secret.h"
#include "sftprelay/statusd.h"
#include "sftprelay/statusq.h"
#include "sftprelay/text.h"

#define BACKLOG 64
#define TYPE_JSON "application/json"
#define TYPE_METRICS "text/plain; version=0.0.4; charset=utf-8"

struct statusd {
    struct statusd_conf conf; /* what it was started with: copies */
    struct MHD_Daemon *d;
    struct journal *j;         /* the daemon's thread only, once started */
    struct progress *progress; /* the files being sent, or NULL */
    char *journal_path;
    char *token;      /* NULL: none asked */
    char *cert, *key; /* PEM, kept while the daemon runs */
    int64_t started;  /* Unix seconds */
    char address[160];
};

/* --- its keys: the status section of sftprelay.conf(5) -------------------- */

static int check_status(void *settings, const struct conf_scope *s, char *err,
                        size_t errlen)
{
    const struct statusd_conf *sc = settings;
    int line = conf_scope_line(s, "listen");
    struct sockaddr_storage sa;
    socklen_t len;
    int r;

    if (sc->listen == NULL && conf_scope_any_line(s))
        return conf_fail(s, conf_scope_any_line(s), "listen", err, errlen,
                         "required when the status section is present");
    if (sc->listen == NULL)
        return 0;
    r = addr_parse(sc->listen, &sa, &len);
    if (r == -EINVAL)
        return conf_fail(s, line, "listen", err, errlen,
                         "\"%s\" is not ADDRESS:PORT (an IPv6 address in "
                         "brackets: [::1]:9469)",
                         sc->listen);
    if (r < 0)
        return conf_fail(s, line, "listen", err, errlen,
                         "\"%s\": no such address", sc->listen);
    if (sc->token_file == NULL && !addr_is_loopback(&sa))
        return conf_fail(s, line, "listen", err, errlen,
                         "%s is not a loopback address (127.0.0.1, ::1): "
                         "status.token_file is required to serve it",
                         sc->listen);
    if (sc->cert_file == NULL && !addr_is_loopback(&sa))
        return conf_fail(s, line, "listen", err, errlen,
                         "%s is not a loopback address: status.cert_file and "
                         "status.key_file are required to serve it, so that "
                         "the token never crosses a network in clear",
                         sc->listen);
    if (sc->cert_file && sc->key_file == NULL)
        return conf_fail(s, conf_scope_line(s, "cert_file"), "key_file", err,
                         errlen, "required with status.cert_file");
    if (sc->key_file && sc->cert_file == NULL)
        return conf_fail(s, conf_scope_line(s, "key_file"), "cert_file", err,
                         errlen, "required with status.key_file");
    return 0;
}

#define SC struct statusd_conf
static const struct conf_key status_keys[] = {
    CONF_KEY_STR(SC, listen, "listen", NULL, 0,
                 "ADDRESS:PORT of the HTTP status endpoint (none: no "
                 "endpoint)"),
    CONF_KEY_STR(SC, token_file, "token_file", NULL, 0,
                 "file whose first line is the bearer token every path but "
                 "/healthz wants (none: loopback only, no token)"),
    CONF_KEY_STR(SC, cert_file, "cert_file", NULL, 0,
                 "PEM certificate (chain) for HTTPS, with key_file"),
    CONF_KEY_STR(SC, key_file, "key_file", NULL, 0,
                 "PEM private key for HTTPS, with cert_file"),
    CONF_KEY_INT(SC, max_connections, "max_connections", 16, 1, 1024,
                 "connections at once; more are refused"),
    CONF_KEY_INT(SC, timeout, "timeout", 10, 1, 3600,
                 "seconds a connection may send or read nothing before it "
                 "is closed"),
};
#undef SC

const struct conf_table statusd_conf_table = {
    .section = "status",
    .title = "status",
    .keys = status_keys,
    .n_keys = CONF_N_KEYS(status_keys),
    .size = sizeof(struct statusd_conf),
    .check = check_status,
};

static int same_str(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

int statusd_serves(const struct statusd *sd, const struct statusd_conf *sc,
                   const char *journal_path)
{
    const struct statusd_conf *a = sd ? &sd->conf : NULL;

    if (sd == NULL || sc == NULL || sc->listen == NULL)
        return sd == NULL && (sc == NULL || sc->listen == NULL);
    return same_str(a->listen, sc->listen) &&
           same_str(a->token_file, sc->token_file) &&
           same_str(a->cert_file, sc->cert_file) &&
           same_str(a->key_file, sc->key_file) &&
           a->max_connections == sc->max_connections &&
           a->timeout == sc->timeout &&
           same_str(sd->journal_path, journal_path);
}

/* A copy of sc's strings into sd->conf, for statusd_serves(). */
static int keep_conf(struct statusd *sd, const struct statusd_conf *sc)
{
    const char *const from[] = {sc->listen, sc->token_file, sc->cert_file,
                                sc->key_file};
    char **to[] = {&sd->conf.listen, &sd->conf.token_file, &sd->conf.cert_file,
                   &sd->conf.key_file};
    size_t i;

    sd->conf.max_connections = sc->max_connections;
    sd->conf.timeout = sc->timeout;
    for (i = 0; i < sizeof(to) / sizeof(to[0]); i++) {
        *to[i] = from[i] ? strdup(from[i]) : NULL;
        if (from[i] && *to[i] == NULL)
            return -ENOMEM;
    }
    return 0;
}

/* --- replies -------------------------------------------------------------- */

/* An answer being made: its body grows in a memory stream. */
struct reply {
    unsigned status;
    const char *type;
    FILE *out;
    char *body;
    size_t len;
    const char *hname, *hvalue; /* one more header, or NULL */
};

static void reply_open(struct reply *rp)
{
    rp->body = NULL;
    rp->len = 0;
    rp->out = open_memstream(&rp->body, &rp->len);
    rp->status = 200;
    rp->type = TYPE_JSON;
    rp->hname = rp->hvalue = NULL;
}

static void reply_drop(struct reply *rp)
{
    if (rp->out)
        fclose(rp->out);
    free(rp->body);
    rp->out = NULL;
    rp->body = NULL;
}

/* Throw away what rp holds and make it {"error": "..."} with status. */
static void reply_error(struct reply *rp, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void reply_error(struct reply *rp, unsigned status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    reply_drop(rp);
    reply_open(rp);
    rp->status = status;
    if (rp->out == NULL)
        return;
    fputs("{\"error\": ", rp->out);
    text_print_json(rp->out, msg);
    fputs("}\n", rp->out);
}

static enum MHD_Result respond(struct MHD_Connection *c, struct reply *rp)
{
    static char oom[] = "{\"error\": \"out of memory\"}\n";
    struct MHD_Response *resp;
    enum MHD_Result ret;

    if (rp->out == NULL || fclose(rp->out) != 0) {
        rp->out = NULL;
        free(rp->body);
        rp->body = NULL;
        rp->status = 500;
        rp->hname = NULL;
        resp = mhdso.create_response_from_buffer(sizeof(oom) - 1, oom,
                                                 MHD_RESPMEM_PERSISTENT);
    } else {
        resp = mhdso.create_response_from_buffer(rp->len, rp->body,
                                                 MHD_RESPMEM_MUST_FREE);
    }
    if (resp == NULL) {
        free(rp->body);
        return MHD_NO;
    }
    mhdso.add_response_header(resp, "Content-Type", rp->type);
    mhdso.add_response_header(resp, "Cache-Control", "no-store");
    if (rp->hname)
        mhdso.add_response_header(resp, rp->hname, rp->hvalue);
    ret = mhdso.queue_response(c, rp->status, resp);
    mhdso.destroy_response(resp);
    return ret;
}

/* --- routes --------------------------------------------------------------- */

/* A journal error as a 500, naming the journal. */
static void journal_failed(struct statusd *sd, struct reply *rp, int r)
{
    reply_error(rp, 500, "journal %s: %s", sd->journal_path,
                r == -ENOMEM ? strerror(ENOMEM) : journal_errmsg(sd->j));
}

/* An endpoint that takes no query: 0, or rp holds the 400. */
static int no_query(const char *query, struct reply *rp)
{
    char err[256];

    if (statusq_none(query, err, sizeof(err)) == 0)
        return 0;
    reply_error(rp, 400, "%s", err);
    return -EINVAL;
}

static void serve_healthz(struct statusd *sd, const char *query,
                          struct reply *rp)
{
    if (no_query(query, rp) == 0)
        fprintf(rp->out, "{\"ok\": true, \"uptime_seconds\": %lld}\n",
                (long long)((int64_t)time(NULL) - sd->started));
}

static void serve_summary(struct statusd *sd, const char *query,
                          struct reply *rp)
{
    struct report_status rs;
    int r;

    if (no_query(query, rp) < 0)
        return;
    r = report_status_get(sd->j, &rs);
    if (r == 0 && sd->progress) /* fresher than the journal's copy */
        report_status_fill_sending(&rs, sd->progress);
    if (r < 0)
        journal_failed(sd, rp, r);
    else {
        report_status_json(rp->out, sd->journal_path, &rs, (int64_t)time(NULL));
        fputs("\n", rp->out); /* as sftprelay status --json */
    }
    report_status_clear(&rs);
}

static void serve_metrics(struct statusd *sd, const char *query,
                          struct reply *rp)
{
    struct journal_status st;
    int r;

    if (no_query(query, rp) < 0)
        return;
    r = journal_status(sd->j, &st);
    if (r < 0)
        journal_failed(sd, rp, r);
    else {
        rp->type = TYPE_METRICS;
        metrics_print(rp->out, &st, (int64_t)time(NULL));
    }
    journal_status_clear(&st);
}

static void serve_files(struct statusd *sd, const char *query, struct reply *rp)
{
    struct statusq_files q;
    struct journal_query jq;
    char err[256];
    int more = 0, r;

    r = statusq_files(query, &q, err, sizeof(err));
    if (r == -EINVAL)
        reply_error(rp, 400, "%s", err);
    else if (r < 0)
        reply_error(rp, 500, "%s", strerror(-r));
    if (r < 0)
        goto out;
    jq = (struct journal_query){.state = q.state,
                                .path = q.path,
                                .prefix = q.prefix,
                                .after = q.after,
                                .limit = q.limit};
    r = report_files_json(rp->out, sd->j, &jq, &more);
    if (r < 0)
        journal_failed(sd, rp, r);
    else if (more) {
        rp->hname = "Sftprelay-Truncated";
        rp->hvalue = "true";
    }
out:
    statusq_files_clear(&q);
}

static const struct route {
    const char *path;
    int open; /* answered without a token */
    void (*serve)(struct statusd *sd, const char *query, struct reply *rp);
} routes[] = {
    {"/healthz", 1, serve_healthz},
    {"/metrics", 0, serve_metrics},
    {"/v1/files", 0, serve_files},
    {"/v1/summary", 0, serve_summary},
};
#define N_ROUTES (sizeof(routes) / sizeof(routes[0]))

/* The route for the n bytes of path, or NULL. */
static const struct route *find_route(const char *path, size_t n)
{
    size_t i;

    for (i = 0; i < N_ROUTES; i++)
        if (strlen(routes[i].path) == n && memcmp(routes[i].path, path, n) == 0)
            return &routes[i];
    return NULL;
}

/* 0 when the request may go on; else rp holds the 401. */
static int authorized(struct statusd *sd, struct MHD_Connection *c,
                      struct reply *rp)
{
    const char *tok;

    if (sd->token == NULL)
        return 0;
    tok = statusq_bearer(
        mhdso.lookup_connection_value(c, MHD_HEADER_KIND, "Authorization"));
    if (tok && secret_equal(sd->token, tok))
        return 0;
    if (tok == NULL) {
        reply_error(rp, 401,
                    "a bearer token is needed: send the header "
                    "\"Authorization: Bearer TOKEN\"");
        rp->hvalue = "Bearer realm=\"sftprelay\"";
    } else {
        reply_error(rp, 401,
                    "the bearer token is not the one in "
                    "status.token_file");
        rp->hvalue = "Bearer realm=\"sftprelay\", error=\"invalid_token\"";
    }
    rp->hname = "WWW-Authenticate";
    return -EACCES;
}

/*
 * The longest request target answered (a path= of some hundred bytes,
 * percent-encoded, is far shorter); libmicrohttpd reads up to
 * STATUSD_MEMORY a connection, so one up to about that long still gets
 * a JSON 414 rather than the library's own page.
 */
#define STATUSD_MAX_TARGET 8192
#define STATUSD_MEMORY (64 * 1024)

/* Fill rp with the answer to method uri (the raw request target). */
static void serve(struct statusd *sd, struct MHD_Connection *c,
                  const char *method, const char *uri, struct reply *rp)
{
    const char *q = strchr(uri, '?');
    size_t n = q ? (size_t)(q - uri) : strlen(uri);
    const struct route *rt = find_route(uri, n);

    if (strlen(uri) > STATUSD_MAX_TARGET) {
        reply_error(rp, 414,
                    "the request target is %zu bytes: at most %d are read",
                    strlen(uri), STATUSD_MAX_TARGET);
        return;
    }
    if (rt == NULL) {
        reply_error(rp, 404,
                    "no such path: %.*s (known: /healthz, /metrics, "
                    "/v1/files, /v1/summary)",
                    (int)(n < 100 ? n : 100), uri);
        return;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        reply_error(rp, 405, "%s: only GET and HEAD are answered", rt->path);
        rp->hname = "Allow";
        rp->hvalue = "GET, HEAD";
        return;
    }
    if (!rt->open && authorized(sd, c, rp) < 0)
        return;
    rt->serve(sd, q ? q + 1 : NULL, rp);
}

/* --- libmicrohttpd's callbacks -------------------------------------------- */

/* One request: its raw target, and whether it was answered. */
struct request {
    char *uri;
    int answered;
};

/* Before libmicrohttpd parses the URI: keep it as it came. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
    struct request *rq = calloc(1, sizeof(*rq));

    if (rq)
        rq->uri = strdup(uri);
    return rq;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct request *rq = *con_cls;

    if (rq)
        free(rq->uri);
    free(rq);
    *con_cls = NULL;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
                                  const char *url, const char *method,
                                  const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct statusd *sd = cls;
    struct request *rq = *con_cls;
    struct reply rp;

    if (rq && rq->answered) { /* a body after the answer: not read */
        *upload_data_size = 0;
        return MHD_YES;
    }
    reply_open(&rp);
    if (rq == NULL || rq->uri == NULL)
        reply_error(&rp, 500, "out of memory");
    else if (rp.out)
        serve(sd, c, method, rq->uri, &rp);
    if (rq)
        rq->answered = 1;
    return respond(c, &rp);
}

/* libmicrohttpd's own messages (a client's TLS mistakes): debug only. */
static void on_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    size_t n;

    vsnprintf(msg, sizeof(msg), fmt, ap);
    n = strlen(msg);
    while (n > 0 && msg[n - 1] == '\n')
        msg[--n] = '\0';
    log_debug("status: libmicrohttpd: %s", msg);
}

/* --- start and stop ------------------------------------------------------- */

/* Log why the file of key could not be read (r); returns r. */
static int unreadable(const char *key, const char *file, int r)
{
    if (r == -EPERM)
        log_error("status.%s %s: others may read or write it; chmod o-rwx "
                  "%s",
                  key, file, file);
    else if (r == -ENODATA)
        log_error("status.%s %s: empty", key, file);
    else if (r == -EFBIG)
        log_error("status.%s %s: bigger than %d bytes", key, file,
                  SECRET_FILE_MAX);
    else
        log_error("status.%s %s: %s", key, file, strerror(-r));
    return r;
}

/* The token, the certificate and the key sc names, into sd. */
static int load_secrets(struct statusd *sd, const struct statusd_conf *sc)
{
    char tok[SECRET_MAX];
    int r = 0;

    if (sc->token_file) {
        r = secret_read_private(sc->token_file, tok, sizeof(tok));
        if (r < 0)
            unreadable("token_file", sc->token_file, r);
        else
            sd->token = strdup(tok);
        if (r == 0 && sd->token == NULL)
            r = -ENOMEM;
        explicit_bzero(tok, sizeof(tok));
    }
    if (r == 0 && sc->cert_file &&
        mhdso.is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
        log_error("status.cert_file: this libmicrohttpd cannot serve HTTPS");
        r = -ENOTSUP;
    }
    if (r == 0 && sc->cert_file) {
        r = secret_load(sc->cert_file, 0, &sd->cert);
        if (r < 0)
            unreadable("cert_file", sc->cert_file, r);
    }
    if (r == 0 && sc->key_file) {
        r = secret_load(sc->key_file, 1, &sd->key);
        if (r < 0)
            unreadable("key_file", sc->key_file, r);
    }
    return r;
}

/* Listen on sc->listen into *fd; sd->address says where. */
static int listen_on(struct statusd *sd, const struct statusd_conf *sc, int *fd)
{
    struct sockaddr_storage sa;
    socklen_t len;
    char where[128] = "?";
    int r;

    r = addr_parse(sc->listen, &sa, &len);
    if (r == 0)
        r = addr_listen(&sa, len, BACKLOG, fd);
    if (r < 0) {
        log_error("status.listen %s: %s", sc->listen, strerror(-r));
        return r;
    }
    addr_name(*fd, where, sizeof(where));
    snprintf(sd->address, sizeof(sd->address), "%s://%s",
             sd->cert ? "https" : "http", where);
    return 0;
}

/* The daemon on fd, which it owns from then on (whether libmicrohttpd
 * closes it when it fails to start is not said; the agent exits then). */
static int start_daemon(struct statusd *sd, const struct statusd_conf *sc,
                        int fd)
{
    /* An END first: no TLS options. */
    struct MHD_OptionItem tls[] = {
        {sd->cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, sd->cert},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, sd->key},
        {MHD_OPTION_END, 0, NULL},
    };
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO |
                     MHD_USE_ITC | MHD_USE_ERROR_LOG;

    if (sd->cert)
        flags |= MHD_USE_TLS;
    sd->d = mhdso.start_daemon(
        flags, 0, NULL, NULL, on_request, sd, MHD_OPTION_EXTERNAL_LOGGER,
        on_log, sd, MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)sc->max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)sc->timeout, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)STATUSD_MEMORY, MHD_OPTION_URI_LOG_CALLBACK, on_uri, sd,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, sd, MHD_OPTION_ARRAY, tls,
        MHD_OPTION_END);
    if (sd->d)
        return 0;
    log_error("status.listen %s: libmicrohttpd could not start%s", sc->listen,
              sd->cert ? " (are status.cert_file and status.key_file a PEM "
                         "certificate and its key?)"
                       : "");
    return -EINVAL;
}

int statusd_start(const struct statusd_conf *sc, const char *journal_path,
                  struct progress *progress, struct statusd **out)
{
    struct statusd *sd = NULL;
    char err[256];
    int fd = -1, r;

    *out = NULL;
    r = mhdso_load(err, sizeof(err));
    if (r < 0) {
        log_error("status: libmicrohttpd: %s", err);
        goto out;
    }
    r = -ENOMEM;
    sd = calloc(1, sizeof(*sd));
    if (sd == NULL)
        goto out;
    sd->started = (int64_t)time(NULL);
    sd->progress = progress;
    sd->journal_path = strdup(journal_path);
    if (sd->journal_path == NULL || keep_conf(sd, sc) < 0)
        goto out;
    r = load_secrets(sd, sc);
    if (r < 0)
        goto out;
    r = journal_open(journal_path, JOURNAL_RDONLY, &sd->j);
    if (r < 0) {
        log_error("status: journal %s: %s", journal_path, strerror(-r));
        goto out;
    }
    r = listen_on(sd, sc, &fd);
    if (r == 0)
        r = start_daemon(sd, sc, fd);
    if (r < 0)
        goto out;
    *out = sd;
    sd = NULL; /* transferred */
out:
    statusd_stop(sd);
    return r;
}

const char *statusd_address(const struct statusd *sd)
{
    return sd->address;
}

void statusd_stop(struct statusd *sd)
{
    if (sd == NULL)
        return;
    if (sd->d)
        mhdso.stop_daemon(sd->d); /* joins its thread, closes the socket */
    journal_close(sd->j);
    if (sd->token)
        explicit_bzero(sd->token, strlen(sd->token));
    if (sd->key)
        explicit_bzero(sd->key, strlen(sd->key));
    free(sd->token);
    free(sd->key);
    free(sd->cert);
    free(sd->journal_path);
    free(sd->conf.listen);
    free(sd->conf.token_file);
    free(sd->conf.cert_file);
    free(sd->conf.key_file);
    free(sd);
}
