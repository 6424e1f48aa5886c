/*
 * The status endpoint: a small HTTP server in sftprelayd, over
 * libmicrohttpd (loaded with dlopen() when the configuration has a
 * status group), so that hosts other than the agent's (an Airflow
 * worker, Prometheus) can ask what the journal says.  sftprelay.conf(5)
 * and the README ("Status endpoint") describe it for users.
 *
 *   GET /healthz       200 {"ok": true, "uptime_seconds": N}; no token
 *   GET /v1/files      the array `sftprelay list --json` prints, of the
 *                      rows ?path=P or ?prefix=P, &state=S, &limit=N ask
 *                      for (statusq.h; at most STATUSQ_LIMIT_MAX)
 *   GET /v1/summary    the object `sftprelay status --json` prints, the
 *                      files being sent taken from the agent's own
 *                      table (progress.h), not its copy in the journal
 *   GET /metrics       the Prometheus text (metrics.h)
 *
 * Every path but /healthz wants "Authorization: Bearer TOKEN" when
 * status.token_file is set (401 otherwise); without one, the endpoint
 * may only listen on a loopback address (a configuration error
 * otherwise).  Errors are 4xx or 5xx with a JSON body {"error": "..."}.
 *
 * Threads: libmicrohttpd's one internal thread accepts, reads and writes
 * every connection without blocking (a slow client holds only its own
 * connection, until status.timeout), and answers each request there,
 * from a read-only journal connection of its own that no other thread
 * uses.  A body is made whole before it is sent, so no read transaction
 * stays open while a client reads slowly (the journal writer's WAL
 * restart waits for old readers).  No lock of the agent is taken but
 * metrics.lock and progress.lock, each for an instant.
 */
#ifndef SFTPRELAY_STATUSD_H
#define SFTPRELAY_STATUSD_H

struct conf_table;
struct progress;
struct statusd;

/*
 * The status section of sftprelay.conf(5), read with statusd_conf_table
 * (conf_load()'s extra tables; conf_settings() finds it, owned by the
 * struct conf).  listen is NULL when the file has no status section.
 */
struct statusd_conf {
    char *listen;
    char *token_file; /* NULL: no token asked, loopback only */
    char *cert_file;  /* both, or neither: HTTPS */
    char *key_file;
    int max_connections;
    int timeout; /* seconds a connection may do nothing */
};

extern const struct conf_table statusd_conf_table;

/*
 * Serve as sc says (read during the call only) from the journal at
 * journal_path (copied) and the files being sent in progress (borrowed,
 * to outlive the endpoint; NULL: the journal's copy): load
 * libmicrohttpd, read the token, the certificate and the key, listen,
 * start the thread.  Call it with the signals the process takes by
 * signalfd blocked (the thread inherits the mask).  Errors are logged,
 * naming the key and its file or address.  Returns 0 with *out (stopped
 * with statusd_stop()), or a negative errno.
 */
int statusd_start(const struct statusd_conf *sc, const char *journal_path,
                  struct progress *progress, struct statusd **out);

/* Where it listens: "http://127.0.0.1:9469" (owned by sd). */
const char *statusd_address(const struct statusd *sd);

/* Stop the thread, close every connection and the journal; NULL is fine. */
void statusd_stop(struct statusd *sd);

/*
 * Whether sd (NULL: none running) serves as sc (NULL, or its listen
 * NULL: no status section) and journal_path say: what SIGHUP asks, since
 * the endpoint is not restarted by it.
 */
int statusd_serves(const struct statusd *sd, const struct statusd_conf *sc,
                   const char *journal_path);

#endif
