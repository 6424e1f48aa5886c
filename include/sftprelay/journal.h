/*
 * The journal: one SQLite database (WAL) with a row per source file.
 *
 * It is the only state the agent keeps.  The watcher offers files to it,
 * workers claim rows from it and record progress and results in it, the
 * CLI and the Airflow sensor read it.  It knows nothing of SFTP.
 *
 * A row is queued -> sending -> delivered, or back to queued after a
 * failed attempt, or failed once attempts run out.  A delivered or failed
 * file seen again with another size or mtime is queued as a new version.
 * Rows are keyed by the path relative to source.path.
 *
 * One struct journal is one connection: use one per thread.  No lock of
 * this process guards it; in the agent, one thread (the journal writer,
 * jwriter.h) makes every change but claims, which each worker makes on its
 * own connection as one statement.  Failures return a negative errno and
 * leave the SQLite message in journal_errmsg(); nothing is logged here.
 */
#ifndef SFTPRELAY_JOURNAL_H
#define SFTPRELAY_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

struct journal;

enum journal_state {
    JS_QUEUED,
    JS_SENDING,
    JS_DELIVERED,
    JS_FAILED,
    JS_COUNT,
};

/* A row.  Strings are owned by the struct: journal_file_clear() frees them. */
struct journal_file {
    int64_t id;
    char *path;
    int64_t size;
    int64_t mtime_ns;
    enum journal_state state;
    int64_t attempts;
    int64_t next_attempt;
    int64_t resume_offset; /* bytes durable on the target, without gaps */
    int64_t source_offset; /* the source bytes they came from */
    char *resume_token;    /* the sink's, for resume_offset; or NULL */
    char *stale_token;     /* an earlier version's, to throw away; or NULL */
    char *sha256;          /* hex, of the source file; NULL until delivered */
    char *last_error;
    int64_t detected_at;
    int64_t attempted_at; /* 0 if never */
    int64_t delivered_at; /* 0 if not delivered */
    int64_t version;
    char *target_path; /* once delivered: the name on the target if not path */
    char *etag;        /* the target's tag of the object, or NULL */
    char *outcome;     /* "written", "skipped", "renamed"; NULL until then */
    /* the running SHA-256s at the checkpoint (digest.h), or NULL: of the
     * source bytes, of the bytes on the target */
    char *sha256_state;
    char *delivered_state;
    char *delivered_sha256; /* hex, of the bytes on the target; NULL until
                             * delivered */
    char *chain; /* the transforms of the checkpoint (transform.h), or NULL */
};

/* How far a transfer got: what journal_checkpoint() records. */
struct journal_mark {
    int64_t offset;        /* bytes durable on the target */
    int64_t source_offset; /* bytes of the source they came from */
    const char *token;     /* the sink's resume token, or NULL */
    /* the running SHA-256s (digest.h) of the source bytes and of the bytes
     * on the target, each over as many bytes as it says, or NULL */
    const char *sha256_state;
    const char *delivered_state;
    const char *chain; /* transform_chain_id() of the chain, or NULL */
};

/* What journal_delivered() records. */
struct journal_delivery {
    const char *sha256;      /* hex, of the source file */
    const char *target_path; /* NULL: the same as the row's path */
    const char *etag;        /* NULL: the target has none */
    const char *outcome;     /* "written", "skipped", "renamed" */
    const char *delivered_sha256; /* hex, of the bytes on the target; NULL:
                                   * the same as sha256 */
};

struct journal_status {
    int64_t counts[JS_COUNT];
    int64_t oldest_pending; /* detected_at of the oldest queued/sending, 0 */
    char *last_error_path;  /* of the most recent undelivered error, or NULL */
    char *last_error;
    int64_t last_error_at;
};

#define JOURNAL_RDONLY 0x1 /* read only; the file must exist */
#define JOURNAL_CREATE 0x2 /* create the file (mode 0640) if missing */

const char *journal_state_name(enum journal_state s);
int journal_state_parse(const char *name, enum journal_state *out);

/*
 * Open the journal at path.  With JOURNAL_CREATE the file and its folder
 * are made if missing; without it a missing file is -ENOENT.  Unless
 * JOURNAL_RDONLY, the schema is created or migrated.  A journal written by
 * a newer schema is -EPROTO.  *out is freed with journal_close().
 */
int journal_open(const char *path, int flags, struct journal **out);
void journal_close(struct journal *j);

/* The last SQLite error message of this connection, for logs. */
const char *journal_errmsg(const struct journal *j);

/* The file this connection opened (owned by j). */
const char *journal_path(const struct journal *j);

/*
 * While another connection holds the write lock, a statement waits for it
 * up to 10 s, and fails at once with -EBUSY when fd (borrowed) becomes
 * readable.  -1: no such descriptor.
 */
void journal_set_cancel(struct journal *j, int fd);

/*
 * Whether the next commits are synced to disk (synchronous = FULL) or only
 * ordered (NORMAL, the default: a power cut may lose the last ones).
 */
int journal_set_sync(struct journal *j, int full);

/*
 * Copy the whole WAL into the database and start it again from its head
 * (waiting, like a writer, for readers of older snapshots).  Without it,
 * while readers and writers overlap without pause, the WAL only grows.
 */
int journal_wal_restart(struct journal *j);

/*
 * Group many writes into one transaction (one sync).  journal_rollback()
 * is harmless when SQLite has already rolled back after an error.
 */
int journal_begin(struct journal *j);
int journal_commit(struct journal *j);
int journal_rollback(struct journal *j);

/*
 * A file seen on the source at this size and mtime.  *queued (if not
 * NULL) is set to 1 when a row was added or queued again, 0 when the
 * journal already knew this version.  Returns 0 or a negative errno.
 */
int journal_offer(struct journal *j, const char *path, int64_t size,
                  int64_t mtime_ns, int64_t now, int *queued);

/*
 * Claim the next row due at now and mark it sending; with once_after >= 0
 * claim the next queued row whose id is greater, whatever its due time.
 * Returns 0 with *out filled (clear it with journal_file_clear()), -ENOENT
 * when nothing is due, or a negative errno.
 */
int journal_claim(struct journal *j, int64_t now, int64_t once_after,
                  struct journal_file *out);

/*
 * The same for up to max rows in one transaction, in id order, taking no
 * further row once the sizes of those before it reach max_bytes (the
 * first is always taken): small files come many at a time, a big one
 * alone.  *n is how many; -ENOENT when none.
 */
int journal_claim_batch(struct journal *j, int64_t now, int64_t once_after,
                        int max, int64_t max_bytes, struct journal_file *out,
                        int *n);

/* A byte range of a file sent over its own connection: [start, done) is
 * on the target, [done, end) is not yet. */
struct journal_range {
    int64_t start, end, done;
};

/* Record rg's progress for the version f is (only while it is sending). */
int journal_range_save(struct journal *j, const struct journal_file *f,
                       const struct journal_range *rg);

/* The ranges recorded for the version f is, by start: *n of them (at
 * most max). */
int journal_ranges(struct journal *j, const struct journal_file *f,
                   struct journal_range *out, int max, int *n);

/*
 * Record how far the transfer of the version f describes got: every byte
 * below m->offset is on the target.  A row changed meanwhile is left alone.
 */
int journal_checkpoint(struct journal *j, const struct journal_file *f,
                       const struct journal_mark *m);

/*
 * Mark the version f describes delivered, as d says.  Returns 0, or
 * -ESTALE when the row changed while it was sent (it is then queued again
 * at next_attempt), or a negative errno.
 */
int journal_delivered(struct journal *j, const struct journal_file *f,
                      const struct journal_delivery *d, int64_t now,
                      int64_t next_attempt);

/*
 * Put a claimed row back in the queue, due at next_attempt, with error as
 * its last error.  count_attempt says whether this attempt counts towards
 * transfer.max_attempts; restart whether the upload starts over at byte 0.
 */
int journal_requeue(struct journal *j, int64_t id, int64_t next_attempt,
                    const char *error, int count_attempt, int restart);

/* Record a new size and mtime for a row (the file changed); offset -> 0. */
int journal_restat(struct journal *j, int64_t id, int64_t size,
                   int64_t mtime_ns);

/* Give up on a claimed row: it stays failed until retried by hand. */
int journal_fail(struct journal *j, int64_t id, const char *error);

/* At start-up: rows a previous run left sending are queued, due now. */
int journal_recover(struct journal *j, int *count);

/*
 * Rows left sending that no worker holds: queue again, due at now, those
 * claimed before `before` whose id is not among held[0..n_held).
 */
int journal_sweep(struct journal *j, int64_t now, int64_t before,
                  const int64_t *held, size_t n_held, int *count);

/* Forget delivered rows delivered before the given time. */
int journal_prune(struct journal *j, int64_t before, int *count);

/*
 * By hand: queue path again, due now (a delivered file is sent again as a
 * new version).  -ENOENT if unknown, -EBUSY while it is being sent.
 */
int journal_retry(struct journal *j, const char *path);
int journal_retry_failed(struct journal *j, int *count);

/* The row for path: 0, -ENOENT, or a negative errno. */
int journal_get(struct journal *j, const char *path, struct journal_file *out);

/*
 * Call fn for each row (all states if state is JS_COUNT), ordered by path.
 * fn returns 0 to go on or a negative value to stop, which is returned.
 */
int journal_list(struct journal *j, enum journal_state state,
                 int (*fn)(const struct journal_file *f, void *arg), void *arg);

/* Which rows journal_find() gives. */
struct journal_query {
    enum journal_state state; /* JS_COUNT: any */
    const char *path;   /* exactly this path (then prefix is not read); NULL */
    const char *prefix; /* paths that start with these bytes; NULL, "": any */
    const char *after;  /* only paths above these bytes (a next page); NULL */
    int64_t limit;      /* at most this many rows; 0: no limit */
};

/*
 * Call fn for each row q selects, ordered by path, as journal_list()
 * does; a prefix is a range of the path's index (bytes compared as they
 * are, whatever their encoding), so a narrow one over a big journal is
 * quick, and so is after: the range starts past it, so the next page of
 * a long list (after = the last path of this one) is a search of the
 * index, not a count of the rows skipped.  q's strings are borrowed.
 */
int journal_find(struct journal *j, const struct journal_query *q,
                 int (*fn)(const struct journal_file *f, void *arg),
                 void *arg);

/* Counts and the oldest pending file.  Clear with journal_status_clear(). */
int journal_status(struct journal *j, struct journal_status *out);
void journal_status_clear(struct journal_status *s);

/* When the next queued row is due: 0, or -ENOENT when none is queued. */
int journal_next_due(struct journal *j, int64_t *when);

/* Agent-wide facts (target state, pid): a key/value table. */
int journal_agent_set(struct journal *j, const char *key, const char *value,
                      int64_t now);
/* *value is malloc'd (NULL if the key holds NULL); -ENOENT if unset. */
int journal_agent_get(struct journal *j, const char *key, char **value,
                      int64_t *updated_at);

/*
 * An upload left unfinished (the client vanished): a file found at this
 * size and mtime is not queued until it changes.  journal_partial_clear()
 * forgets it, when the file has been uploaded completely.
 */
int journal_partial_add(struct journal *j, const char *path, int64_t size,
                        int64_t mtime_ns, const char *peer, int64_t now);
int journal_partial_clear(struct journal *j, const char *path);

void journal_file_clear(struct journal_file *f);

#endif
