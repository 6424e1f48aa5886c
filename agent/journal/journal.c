/*
 * The journal on SQLite.  Statements are prepared once at open and reset
 * after each use; SQLite's result codes become errno values in sql_err()
 * and nowhere else.
 *
 * No lock of this process guards a connection: each thread has its own,
 * and writers meet only in SQLite's write lock.  While it is taken the
 * busy handler below waits in short steps (a tenth of a millisecond at
 * first, at most 2 ms) for up to BUSY_TIMEOUT_MS, and gives up at once
 * when the connection's cancel descriptor becomes readable, so that no
 * thread waits on the journal while the agent stops.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <poll.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sql.h"
#include "sftprelay/journal.h"
#include "sftprelay/log.h"

enum stmt_id {
    ST_OFFER,
    ST_GET,
    ST_CLAIM,
    ST_CLAIM_ONCE,
    ST_CHECKPOINT,
    ST_DELIVERED,
    ST_REQUEUE,
    ST_RESTAT,
    ST_FAIL,
    ST_RECOVER,
    ST_PRUNE,
    ST_RETRY,
    ST_RETRY_FAILED,
    ST_LIST,
    ST_LIST_STATE,
    ST_FIND_RANGE,
    ST_FIND_FROM,
    ST_COUNTS,
    ST_OLDEST_PENDING,
    ST_LAST_ERROR,
    ST_NEXT_DUE,
    ST_AGENT_SET,
    ST_AGENT_GET,
    ST_PARTIAL_ADD,
    ST_PARTIAL_CLEAR,
    ST_SWEEP,
    ST_RANGE_SAVE,
    ST_RANGES,
    ST_COUNT,
};

static const char *const stmt_sql[ST_COUNT] = {
    [ST_OFFER] = SQL_OFFER,
    [ST_GET] = SQL_GET,
    [ST_CLAIM] = SQL_CLAIM,
    [ST_CLAIM_ONCE] = SQL_CLAIM_ONCE,
    [ST_CHECKPOINT] = SQL_CHECKPOINT,
    [ST_DELIVERED] = SQL_DELIVERED,
    [ST_REQUEUE] = SQL_REQUEUE,
    [ST_RESTAT] = SQL_RESTAT,
    [ST_FAIL] = SQL_FAIL,
    [ST_RECOVER] = SQL_RECOVER,
    [ST_PRUNE] = SQL_PRUNE,
    [ST_RETRY] = SQL_RETRY,
    [ST_RETRY_FAILED] = SQL_RETRY_FAILED,
    [ST_LIST] = SQL_LIST,
    [ST_LIST_STATE] = SQL_LIST_STATE,
    [ST_FIND_RANGE] = SQL_FIND_RANGE,
    [ST_FIND_FROM] = SQL_FIND_FROM,
    [ST_COUNTS] = SQL_COUNTS,
    [ST_OLDEST_PENDING] = SQL_OLDEST_PENDING,
    [ST_LAST_ERROR] = SQL_LAST_ERROR,
    [ST_NEXT_DUE] = SQL_NEXT_DUE,
    [ST_AGENT_SET] = SQL_AGENT_SET,
    [ST_AGENT_GET] = SQL_AGENT_GET,
    [ST_PARTIAL_ADD] = SQL_PARTIAL_ADD,
    [ST_PARTIAL_CLEAR] = SQL_PARTIAL_CLEAR,
    [ST_SWEEP] = SQL_SWEEP,
    [ST_RANGE_SAVE] = SQL_RANGE_SAVE,
    [ST_RANGES] = SQL_RANGES,
};

/* Statements that write: not prepared on a read-only connection. */
static const int stmt_writes[ST_COUNT] = {
    [ST_OFFER] = 1,      [ST_CLAIM] = 1,       [ST_CLAIM_ONCE] = 1,
    [ST_CHECKPOINT] = 1, [ST_DELIVERED] = 1,   [ST_REQUEUE] = 1,
    [ST_RESTAT] = 1,     [ST_FAIL] = 1,        [ST_RECOVER] = 1,
    [ST_PRUNE] = 1,      [ST_RETRY] = 1,       [ST_RETRY_FAILED] = 1,
    [ST_AGENT_SET] = 1,  [ST_PARTIAL_ADD] = 1, [ST_PARTIAL_CLEAR] = 1,
    [ST_RANGE_SAVE] = 1,
    [ST_SWEEP] = 1,
};

static const char *const state_names[JS_COUNT] = {
    [JS_QUEUED] = "queued",
    [JS_SENDING] = "sending",
    [JS_DELIVERED] = "delivered",
    [JS_FAILED] = "failed",
};

#define BUSY_TIMEOUT_MS 10000

struct journal {
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT];
    char *path;
    int cancel_fd;   /* readable: stop waiting for the write lock; or -1 */
    int64_t busy_ns; /* waited so far for the current lock */
    int version;     /* a reader's schema version; 0 for a writer */
};

/* SQLite result codes as errno values: the one place they are translated. */
static int sql_err(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE:
        return 0;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return -EBUSY;
    case SQLITE_NOMEM:
        return -ENOMEM;
    case SQLITE_READONLY:
        return -EROFS;
    case SQLITE_FULL:
        return -ENOSPC;
    case SQLITE_CANTOPEN:
        return -ENOENT;
    case SQLITE_PERM:
    case SQLITE_AUTH:
        return -EACCES;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return -EPROTO;
    case SQLITE_CONSTRAINT:
        return -EEXIST;
    case SQLITE_IOERR:
        return -EIO;
    default:
        return -EINVAL;
    }
}

const char *journal_state_name(enum journal_state s)
{
    return s < JS_COUNT ? state_names[s] : "?";
}

int journal_state_parse(const char *name, enum journal_state *out)
{
    int i;

    for (i = 0; i < JS_COUNT; i++) {
        if (strcmp(name, state_names[i]) == 0) {
            *out = (enum journal_state)i;
            return 0;
        }
    }
    return -EINVAL;
}

const char *journal_errmsg(const struct journal *j)
{
    return j && j->db ? sqlite3_errmsg(j->db) : "no journal";
}

static char *col_strdup(sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);

    return t ? strdup((const char *)t) : NULL;
}

/* Fill f from a row of FILE_COLUMNS. */
static int row_to_file(sqlite3_stmt *st, struct journal_file *f)
{
    enum journal_state s = JS_QUEUED;

    memset(f, 0, sizeof(*f));
    f->id = sqlite3_column_int64(st, 0);
    f->path = col_strdup(st, 1);
    f->size = sqlite3_column_int64(st, 2);
    f->mtime_ns = sqlite3_column_int64(st, 3);
    if (journal_state_parse((const char *)sqlite3_column_text(st, 4), &s) < 0)
        return -EPROTO;
    f->state = s;
    f->attempts = sqlite3_column_int64(st, 5);
    f->next_attempt = sqlite3_column_int64(st, 6);
    f->resume_offset = sqlite3_column_int64(st, 7);
    f->sha256 = col_strdup(st, 8);
    f->last_error = col_strdup(st, 9);
    f->detected_at = sqlite3_column_int64(st, 10);
    f->attempted_at = sqlite3_column_int64(st, 11);
    f->delivered_at = sqlite3_column_int64(st, 12);
    f->version = sqlite3_column_int64(st, 13);
    f->source_offset = sqlite3_column_int64(st, 14);
    f->resume_token = col_strdup(st, 15);
    f->target_path = col_strdup(st, 16);
    f->etag = col_strdup(st, 17);
    f->outcome = col_strdup(st, 18);
    f->stale_token = col_strdup(st, 19);
    f->sha256_state = col_strdup(st, 20);
    f->delivered_state = col_strdup(st, 21);
    f->delivered_sha256 = col_strdup(st, 22);
    f->chain = col_strdup(st, 23);
    if (f->path == NULL) {
        journal_file_clear(f);
        return -ENOMEM;
    }
    return 0;
}

void journal_file_clear(struct journal_file *f)
{
    if (f == NULL)
        return;
    free(f->path);
    free(f->sha256);
    free(f->last_error);
    free(f->resume_token);
    free(f->stale_token);
    free(f->target_path);
    free(f->etag);
    free(f->outcome);
    free(f->sha256_state);
    free(f->delivered_state);
    free(f->delivered_sha256);
    free(f->chain);
    memset(f, 0, sizeof(*f));
}

/* Run SQL text; on failure journal_errmsg() says why. */
static int exec(struct journal *j, const char *sql)
{
    return sql_err(sqlite3_exec(j->db, sql, NULL, NULL, NULL));
}

static int user_version(struct journal *j, int *out)
{
    sqlite3_stmt *st = NULL;
    int rc;

    rc = sqlite3_prepare_v2(j->db, "PRAGMA user_version", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            *out = sqlite3_column_int(st, 0);
    }
    sqlite3_finalize(st);
    return sql_err(rc);
}

/* Whether table files has column name: 1, 0, or a negative errno. */
static int has_column(struct journal *j, const char *name)
{
    sqlite3_stmt *st = NULL;
    int rc, n = 0;

    rc = sqlite3_prepare_v2(
        j->db, "SELECT count(*) FROM pragma_table_info('files') WHERE name = ?1",
        -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            n = sqlite3_column_int(st, 0);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? n > 0 : sql_err(rc);
}

/* Create or upgrade the schema; each step is idempotent. */
static int migrate(struct journal *j, const char *path)
{
    int v = 0, r;

    r = user_version(j, &v);
    if (r < 0)
        return r;
    if (v > JOURNAL_SCHEMA_VERSION) {
        log_error("journal %s: schema version %d is newer than this "
                  "program's (%d)",
                  path, v, JOURNAL_SCHEMA_VERSION);
        return -EPROTO;
    }
    if (v == JOURNAL_SCHEMA_VERSION)
        return 0;
    r = exec(j, "BEGIN IMMEDIATE");
    if (r < 0)
        return r;
    if (v < 1)
        r = exec(j, SQL_SCHEMA_V1);
    if (r == 0 && v < 2)
        r = exec(j, SQL_SCHEMA_V2 "PRAGMA user_version = 2;");
    if (r == 0 && v < 3)
        r = exec(j, SQL_SCHEMA_V3 "PRAGMA user_version = 3;");
    if (r == 0 && v < 4)
        r = exec(j, SQL_SCHEMA_V4 "PRAGMA user_version = 4;");
    if (r == 0 && v < 5) {
        /* ALTER TABLE is not idempotent: ask first. */
        r = has_column(j, "resume_token");
        if (r >= 0)
            r = exec(j, r ? "PRAGMA user_version = 5;"
                          : SQL_SCHEMA_V5 "PRAGMA user_version = 5;");
    }
    if (r == 0 && v < 6) {
        r = has_column(j, "sha256_state");
        if (r >= 0)
            r = exec(j, r ? "PRAGMA user_version = 6;"
                          : SQL_SCHEMA_V6 "PRAGMA user_version = 6;");
    }
    if (r < 0) {
        exec(j, "ROLLBACK");
        return r;
    }
    if (v > 0)
        log_info("journal %s: schema upgraded from version %d to %d", path, v,
                 JOURNAL_SCHEMA_VERSION);
    return exec(j, "COMMIT");
}

/* Make the folder and an empty group-readable file, so SQLite's -wal and
 * -shm files inherit mode 0640 and readers in other processes can open. */
static int precreate(const char *path)
{
    char *dir = strdup(path), *slash;
    int fd, r = 0;

    if (dir == NULL)
        return -ENOMEM;
    slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        if (mkdir(dir, 0750) < 0 && errno != EEXIST)
            r = -errno;
    }
    free(dir);
    if (r < 0)
        return r;
    fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return -errno;
    close(fd);
    return 0;
}

/*
 * SQLite's busy handler: called with n = 0, 1, ... while another
 * connection holds the write lock; returns 1 to try again, 0 to give up
 * (the statement then fails with SQLITE_BUSY).
 */
static int busy_wait(void *arg, int n)
{
    struct journal *j = arg;
    struct pollfd pfd = {.fd = j->cancel_fd, .events = POLLIN};
    struct timespec ts = {0, 100000};

    if (n == 0)
        j->busy_ns = 0;
    if (n >= 4)
        ts.tv_nsec = n >= 8 ? 2000000 : 500000;
    if (j->busy_ns >= (int64_t)BUSY_TIMEOUT_MS * 1000000)
        return 0;
    j->busy_ns += ts.tv_nsec;
    if (j->cancel_fd < 0)
        return nanosleep(&ts, NULL) == 0 || errno == EINTR;
    return ppoll(&pfd, 1, &ts, NULL) == 0;
}

/* Open the SQLite database itself into j->db. */
static int open_db(struct journal *j, const char *path, int rdonly)
{
    int oflags, rc, r = 0;
    char *uri;

    oflags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI |
             (rdonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE);
    uri = sqlite3_mprintf("file:%s%s", path, rdonly ? "?mode=ro" : "");
    if (uri == NULL)
        return -ENOMEM;
    /* A path with URI-special characters is opened as a plain file name. */
    if (strpbrk(path, "?#%") != NULL)
        oflags &= ~SQLITE_OPEN_URI;
    rc = sqlite3_open_v2(oflags & SQLITE_OPEN_URI ? uri : path, &j->db, oflags,
                         NULL);
    if (rc != SQLITE_OK) {
        log_error("journal %s: %s", path,
                  j->db ? sqlite3_errmsg(j->db) : sqlite3_errstr(rc));
        r = sql_err(rc);
    }
    sqlite3_free(uri);
    if (r == 0) {
        sqlite3_busy_handler(j->db, busy_wait, j);
        sqlite3_extended_result_codes(j->db, 1);
    }
    return r;
}

/* A writer's set-up: pragmas and the schema. */
static int setup_writer(struct journal *j, const char *path)
{
    int one = 1, r;

    /* Keep -wal and -shm after close: read-only readers need them. */
    sqlite3_file_control(j->db, "main", SQLITE_FCNTL_PERSIST_WAL, &one);
    r = exec(j, SQL_PRAGMAS);
    return r < 0 ? r : migrate(j, path);
}

/* A reader's set-up: query only, and a schema it understands. */
static int setup_reader(struct journal *j, const char *path)
{
    int v = 0, r;

    r = exec(j, "PRAGMA query_only = ON");
    if (r == 0)
        r = user_version(j, &v);
    if (r < 0)
        return r;
    /* An older agent's journal is read too (prepare_all()). */
    if (v < 1 || v > JOURNAL_SCHEMA_VERSION) {
        log_error("journal %s: schema version %d, expected 1 to %d", path, v,
                  JOURNAL_SCHEMA_VERSION);
        return v == 0 ? -ENOENT : -EPROTO;
    }
    j->version = v;
    return 0;
}

/* Columns later schemas added, and what a reader of an older journal
 * reads instead. */
static const struct {
    int since;
    const char *columns, *before;
} added[] = {
    {5, FILE_COLUMNS_V5, FILE_COLUMNS_V5_BEFORE},
    {6, FILE_COLUMNS_V6, FILE_COLUMNS_V6_BEFORE},
};

/*
 * sql for this connection: a reader of a journal older than a version
 * reads what stands for its columns.  *out is sql itself or malloc'd.
 */
static int sql_for(const struct journal *j, const char *sql, char **out)
{
    char *cur = (char *)sql, *next;
    const char *at;
    size_t i, n;

    for (i = 0; i < sizeof(added) / sizeof(added[0]); i++) {
        at = strstr(cur, added[i].columns);
        if (j->version == 0 || j->version >= added[i].since || at == NULL)
            continue;
        n = strlen(added[i].columns);
        next = malloc(strlen(cur) - n + strlen(added[i].before) + 1);
        if (next == NULL) {
            if (cur != sql)
                free(cur);
            return -ENOMEM;
        }
        sprintf(next, "%.*s%s%s", (int)(at - cur), cur, added[i].before,
                at + n);
        if (cur != sql)
            free(cur);
        cur = next;
    }
    *out = cur;
    return 0;
}

/* Prepare every statement this connection may run. */
static int prepare_all(struct journal *j, const char *path, int rdonly)
{
    int i, rc;

    for (i = 0; i < ST_COUNT; i++) {
        char *sql;

        if (rdonly && stmt_writes[i])
            continue;
        if (sql_for(j, stmt_sql[i], &sql) < 0)
            return -ENOMEM;
        rc = sqlite3_prepare_v3(j->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
                                &j->st[i], NULL);
        if (sql != stmt_sql[i])
            free(sql);
        /* A table an older schema lacks: that query is not for it. */
        if (rc != SQLITE_OK && rdonly && j->version < JOURNAL_SCHEMA_VERSION)
            continue;
        if (rc != SQLITE_OK)
            return sql_err(rc);
    }
    return 0;
}

int journal_open(const char *path, int flags, struct journal **out)
{
    struct journal *j = NULL;
    int rdonly = flags & JOURNAL_RDONLY;
    int r;

    *out = NULL;
    if (access(path, F_OK) < 0) {
        if (errno != ENOENT || !(flags & JOURNAL_CREATE) || rdonly)
            return -errno;
        r = precreate(path);
        if (r < 0)
            return r;
    }
    j = calloc(1, sizeof(*j));
    if (j == NULL)
        return -ENOMEM;
    j->cancel_fd = -1;
    j->path = strdup(path);
    r = j->path ? open_db(j, path, rdonly) : -ENOMEM;
    if (r == 0)
        r = rdonly ? setup_reader(j, path) : setup_writer(j, path);
    if (r == 0)
        r = prepare_all(j, path, rdonly);
    if (r < 0) {
        if (j->db && r != -EPROTO)
            log_error("journal %s: %s", path, sqlite3_errmsg(j->db));
        goto out;
    }
    *out = j;
    j = NULL; /* transferred */
out:
    journal_close(j);
    return r;
}

void journal_close(struct journal *j)
{
    int i;

    if (j == NULL)
        return;
    for (i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(j->st[i]);
    sqlite3_close(j->db);
    free(j->path);
    free(j);
}

const char *journal_path(const struct journal *j)
{
    return j->path;
}

void journal_set_cancel(struct journal *j, int fd)
{
    j->cancel_fd = fd;
}

int journal_set_sync(struct journal *j, int full)
{
    return exec(j, full ? SQL_SYNC_FULL : SQL_SYNC_NORMAL);
}

int journal_wal_restart(struct journal *j)
{
    int rc = sqlite3_wal_checkpoint_v2(j->db, NULL, SQLITE_CHECKPOINT_RESTART,
                                       NULL, NULL);

    return sql_err(rc);
}

int journal_begin(struct journal *j)
{
    return exec(j, "BEGIN IMMEDIATE");
}

int journal_commit(struct journal *j)
{
    return exec(j, "COMMIT");
}

int journal_rollback(struct journal *j)
{
    /* Nothing to roll back if SQLite already did (disk full, I/O error). */
    if (sqlite3_get_autocommit(j->db))
        return 0;
    return exec(j, "ROLLBACK");
}

/* A prepared statement; NULL for a writer on a read-only connection. */
static sqlite3_stmt *stmt(struct journal *j, enum stmt_id id)
{
    return j->st[id];
}

/* Run a statement that returns no rows; *changes gets the row count. */
static int run(struct journal *j, sqlite3_stmt *st, int *changes)
{
    int rc = sqlite3_step(st);
    int r = sql_err(rc);

    if (r == 0 && changes)
        *changes = sqlite3_changes(j->db);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return r;
}

/* Bind a string as text, or NULL. */
static void bind_text(sqlite3_stmt *st, int col, const char *s)
{
    if (s)
        sqlite3_bind_text(st, col, s, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, col);
}

int journal_offer(struct journal *j, const char *path, int64_t size,
                  int64_t mtime_ns, int64_t now, int *queued)
{
    sqlite3_stmt *st = stmt(j, ST_OFFER);
    int changes = 0, r;

    if (st == NULL)
        return -EROFS;
    bind_text(st, 1, path);
    sqlite3_bind_int64(st, 2, size);
    sqlite3_bind_int64(st, 3, mtime_ns);
    sqlite3_bind_int64(st, 4, now);
    r = run(j, st, &changes);
    if (r == 0 && queued)
        *queued = changes > 0;
    return r;
}

/* Step a statement expected to return at most one row of FILE_COLUMNS. */
static int one_file(struct journal *j, sqlite3_stmt *st,
                    struct journal_file *out)
{
    int rc = sqlite3_step(st);
    int r;

    if (rc == SQLITE_ROW) {
        r = row_to_file(st, out);
        /* Step to the end so an UPDATE ... RETURNING completes. */
        while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW)
            ;
        if (r == 0 && rc != SQLITE_DONE)
            r = sql_err(rc);
    } else if (rc == SQLITE_DONE) {
        r = -ENOENT;
    } else {
        r = sql_err(rc);
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return r;
}

static int by_id(const void *a, const void *b)
{
    const struct journal_file *x = a, *y = b;

    return (x->id > y->id) - (x->id < y->id);
}

int journal_claim_batch(struct journal *j, int64_t now, int64_t once_after,
                        int max, int64_t max_bytes, struct journal_file *out,
                        int *n)
{
    sqlite3_stmt *st = stmt(j, once_after >= 0 ? ST_CLAIM_ONCE : ST_CLAIM);
    int rc, r = 0, i;

    *n = 0;
    if (st == NULL)
        return -EROFS;
    sqlite3_bind_int64(st, 1, now);
    sqlite3_bind_int(st, 2, max);
    sqlite3_bind_int64(st, 3, max_bytes > 0 ? max_bytes : 1);
    if (once_after >= 0)
        sqlite3_bind_int64(st, 4, once_after);
    /* Every row is read, so that the UPDATE ... RETURNING completes. */
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (r == 0 && *n < max)
            r = row_to_file(st, &out[*n]);
        if (r == 0 && *n < max)
            (*n)++;
    }
    if (rc != SQLITE_DONE && r == 0)
        r = sql_err(rc);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (r < 0) {
        for (i = 0; i < *n; i++)
            journal_file_clear(&out[i]);
        *n = 0;
        return r;
    }
    if (*n == 0)
        return -ENOENT;
    qsort(out, (size_t)*n, sizeof(*out), by_id);
    return 0;
}

int journal_claim(struct journal *j, int64_t now, int64_t once_after,
                  struct journal_file *out)
{
    int n;

    return journal_claim_batch(j, now, once_after, 1, 0, out, &n);
}

int journal_range_save(struct journal *j, const struct journal_file *f,
                       const struct journal_range *rg)
{
    sqlite3_stmt *st = stmt(j, ST_RANGE_SAVE);

    if (st == NULL)
        return -EROFS;
    sqlite3_bind_int64(st, 1, f->id);
    sqlite3_bind_int64(st, 2, f->size);
    sqlite3_bind_int64(st, 3, f->mtime_ns);
    sqlite3_bind_int64(st, 4, rg->start);
    sqlite3_bind_int64(st, 5, rg->end);
    sqlite3_bind_int64(st, 6, rg->done);
    return run(j, st, NULL);
}

int journal_ranges(struct journal *j, const struct journal_file *f,
                   struct journal_range *out, int max, int *n)
{
    sqlite3_stmt *st = stmt(j, ST_RANGES);
    int rc;

    *n = 0;
    if (st == NULL)
        return -EROFS;
    sqlite3_bind_int64(st, 1, f->id);
    sqlite3_bind_int64(st, 2, f->size);
    sqlite3_bind_int64(st, 3, f->mtime_ns);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        if (*n < max) {
            out[*n].start = sqlite3_column_int64(st, 0);
            out[*n].end = sqlite3_column_int64(st, 1);
            out[*n].done = sqlite3_column_int64(st, 2);
            (*n)++;
        }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? 0 : sql_err(rc);
}

int journal_checkpoint(struct journal *j, const struct journal_file *f,
                       const struct journal_mark *m)
{
    sqlite3_stmt *st = stmt(j, ST_CHECKPOINT);

    if (st == NULL)
        return -EROFS;
    sqlite3_bind_int64(st, 1, m->offset);
    sqlite3_bind_int64(st, 5, m->source_offset);
    bind_text(st, 6, m->token);
    bind_text(st, 7, m->sha256_state);
    bind_text(st, 8, m->delivered_state);
    bind_text(st, 9, m->chain);
    sqlite3_bind_int64(st, 2, f->id);
    sqlite3_bind_int64(st, 3, f->size);
    sqlite3_bind_int64(st, 4, f->mtime_ns);
    return run(j, st, NULL);
}

int journal_delivered(struct journal *j, const struct journal_file *f,
                      const struct journal_delivery *d, int64_t now,
                      int64_t next_attempt)
{
    sqlite3_stmt *st = stmt(j, ST_DELIVERED);
    int changes = 0, r;

    if (st == NULL)
        return -EROFS;
    bind_text(st, 1, d->sha256);
    bind_text(st, 6, d->target_path);
    bind_text(st, 7, d->etag);
    bind_text(st, 8, d->outcome);
    bind_text(st, 9, d->delivered_sha256 ? d->delivered_sha256 : d->sha256);
    sqlite3_bind_int64(st, 2, now);
    sqlite3_bind_int64(st, 3, f->id);
    sqlite3_bind_int64(st, 4, f->size);
    sqlite3_bind_int64(st, 5, f->mtime_ns);
    r = run(j, st, &changes);
    if (r < 0 || changes > 0)
        return r;
    r = journal_requeue(j, f->id, next_attempt,
                        "source file changed while it was sent", 0, 1);
    return r < 0 ? r : -ESTALE;
}

int journal_requeue(struct journal *j, int64_t id, int64_t next_attempt,
                    const char *error, int count_attempt, int restart)
{
    sqlite3_stmt *st = stmt(j, ST_REQUEUE);

    if (st == NULL)
        return -EROFS;
    sqlite3_bind_int64(st, 1, next_attempt);
    bind_text(st, 2, error);
    sqlite3_bind_int(st, 3, count_attempt ? 1 : 0);
    sqlite3_bind_int(st, 4, restart ? 1 : 0);
    sqlite3_bind_int64(st, 5, id);
    return run(j, st, NULL);
}

int journal_restat(struct journal *j, int64_t id, int64_t size,
                   int64_t mtime_ns)
{
    sqlite3_stmt *st = stmt(j, ST_RESTAT);

    if (st == NULL)
        return -EROFS;
    sqlite3_bind_int64(st, 1, size);
    sqlite3_bind_int64(st, 2, mtime_ns);
    sqlite3_bind_int64(st, 3, id);
    return run(j, st, NULL);
}

int journal_fail(struct journal *j, int64_t id, const char *error)
{
    sqlite3_stmt *st = stmt(j, ST_FAIL);

    if (st == NULL)
        return -EROFS;
    bind_text(st, 1, error);
    sqlite3_bind_int64(st, 2, id);
    return run(j, st, NULL);
}

int journal_recover(struct journal *j, int *count)
{
    sqlite3_stmt *st = stmt(j, ST_RECOVER);

    if (st == NULL)
        return -EROFS;
    return run(j, st, count);
}

int journal_prune(struct journal *j, int64_t before, int *count)
{
    sqlite3_stmt *st = stmt(j, ST_PRUNE);

    if (st == NULL)
        return -EROFS;
    sqlite3_bind_int64(st, 1, before);
    return run(j, st, count);
}

int journal_retry(struct journal *j, const char *path)
{
    sqlite3_stmt *st = stmt(j, ST_RETRY);
    struct journal_file f;
    int changes = 0, r;

    if (st == NULL)
        return -EROFS;
    bind_text(st, 1, path);
    r = run(j, st, &changes);
    if (r < 0 || changes > 0)
        return r;
    r = journal_get(j, path, &f);
    if (r < 0)
        return r;
    journal_file_clear(&f);
    return -EBUSY;
}

int journal_retry_failed(struct journal *j, int *count)
{
    sqlite3_stmt *st = stmt(j, ST_RETRY_FAILED);

    if (st == NULL)
        return -EROFS;
    return run(j, st, count);
}

int journal_get(struct journal *j, const char *path, struct journal_file *out)
{
    sqlite3_stmt *st = stmt(j, ST_GET);

    bind_text(st, 1, path);
    return one_file(j, st, out);
}

/* Call fn for each row st gives, then reset st; as journal_list(). */
static int each_row(sqlite3_stmt *st,
                    int (*fn)(const struct journal_file *f, void *arg),
                    void *arg)
{
    struct journal_file f;
    int rc, r = 0;

    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        r = row_to_file(st, &f);
        if (r < 0)
            break;
        r = fn(&f, arg);
        journal_file_clear(&f);
        if (r < 0)
            break;
    }
    if (r == 0 && rc != SQLITE_DONE)
        r = sql_err(rc);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return r;
}

int journal_list(struct journal *j, enum journal_state state,
                 int (*fn)(const struct journal_file *f, void *arg), void *arg)
{
    sqlite3_stmt *st = stmt(j, state == JS_COUNT ? ST_LIST : ST_LIST_STATE);

    if (state != JS_COUNT)
        sqlite3_bind_text(st, 1, state_names[state], -1, SQLITE_STATIC);
    return each_row(st, fn, arg);
}

/* q->path's row, if it is in q->state. */
static int find_path(struct journal *j, const struct journal_query *q,
                     int (*fn)(const struct journal_file *f, void *arg),
                     void *arg)
{
    struct journal_file f;
    int r = journal_get(j, q->path, &f);

    if (r == -ENOENT)
        return 0;
    if (r < 0)
        return r;
    if (q->state == JS_COUNT || q->state == f.state)
        r = fn(&f, arg);
    journal_file_clear(&f);
    return r;
}

/*
 * The first string above every string that starts with prefix (n bytes),
 * into end: prefix less its trailing 0xff bytes, its last byte plus one.
 * 0 when there is none (every byte 0xff, or none).
 */
static size_t prefix_end(const char *prefix, size_t n, char *end)
{
    while (n > 0 && (unsigned char)prefix[n - 1] == 0xff)
        n--;
    if (n == 0)
        return 0;
    memcpy(end, prefix, n);
    end[n - 1] = (char)((unsigned char)end[n - 1] + 1);
    return n;
}

int journal_find(struct journal *j, const struct journal_query *q,
                 int (*fn)(const struct journal_file *f, void *arg), void *arg)
{
    const char *prefix = q->prefix ? q->prefix : "", *from = prefix;
    size_t n = strlen(prefix);
    char *end = NULL;
    sqlite3_stmt *st;
    int r;

    if (q->path)
        return find_path(j, q, fn, arg);
    end = malloc(n + 1);
    if (end == NULL)
        return -ENOMEM;
    n = prefix_end(prefix, n, end);
    /* The index is searched from the greater of the two (strcmp: bytes
     * compared unsigned, as SQLite's BINARY compares them). */
    if (q->after && strcmp(q->after, prefix) > 0)
        from = q->after;
    st = stmt(j, n ? ST_FIND_RANGE : ST_FIND_FROM);
    sqlite3_bind_text(st, 1, from, -1, SQLITE_STATIC);
    if (n)
        sqlite3_bind_text(st, 2, end, (int)n, SQLITE_STATIC);
    if (q->after)
        sqlite3_bind_text(st, 5, q->after, -1, SQLITE_STATIC);
    if (q->state != JS_COUNT)
        sqlite3_bind_text(st, 3, state_names[q->state], -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, q->limit > 0 ? q->limit : -1);
    r = each_row(st, fn, arg);
    free(end);
    return r;
}

int journal_status(struct journal *j, struct journal_status *out)
{
    sqlite3_stmt *st;
    enum journal_state s;
    int rc, r = 0;

    memset(out, 0, sizeof(*out));
    st = stmt(j, ST_COUNTS);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        if (journal_state_parse((const char *)sqlite3_column_text(st, 0), &s) ==
            0)
            out->counts[s] = sqlite3_column_int64(st, 1);
    r = sql_err(rc);
    sqlite3_reset(st);
    if (r < 0)
        return r;

    st = stmt(j, ST_OLDEST_PENDING);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        out->oldest_pending = sqlite3_column_int64(st, 0);
    r = sql_err(rc);
    sqlite3_reset(st);
    if (r < 0)
        return r;

    st = stmt(j, ST_LAST_ERROR);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        out->last_error_path = col_strdup(st, 0);
        out->last_error = col_strdup(st, 1);
        out->last_error_at = sqlite3_column_int64(st, 2);
    }
    r = sql_err(rc);
    sqlite3_reset(st);
    return r;
}

void journal_status_clear(struct journal_status *s)
{
    free(s->last_error_path);
    free(s->last_error);
    memset(s, 0, sizeof(*s));
}

int journal_next_due(struct journal *j, int64_t *when)
{
    sqlite3_stmt *st = stmt(j, ST_NEXT_DUE);
    int rc, r;

    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_NULL)
        r = -ENOENT;
    else if (rc == SQLITE_ROW) {
        *when = sqlite3_column_int64(st, 0);
        r = 0;
    } else
        r = sql_err(rc) < 0 ? sql_err(rc) : -ENOENT;
    sqlite3_reset(st);
    return r;
}

int journal_agent_set(struct journal *j, const char *key, const char *value,
                      int64_t now)
{
    sqlite3_stmt *st = stmt(j, ST_AGENT_SET);

    if (st == NULL)
        return -EROFS;
    bind_text(st, 1, key);
    bind_text(st, 2, value);
    sqlite3_bind_int64(st, 3, now);
    return run(j, st, NULL);
}

int journal_agent_get(struct journal *j, const char *key, char **value,
                      int64_t *updated_at)
{
    sqlite3_stmt *st = stmt(j, ST_AGENT_GET);
    int rc, r;

    *value = NULL;
    bind_text(st, 1, key);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *value = col_strdup(st, 0);
        if (updated_at)
            *updated_at = sqlite3_column_int64(st, 1);
        r = 0;
    } else {
        r = rc == SQLITE_DONE ? -ENOENT : sql_err(rc);
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return r;
}

int journal_partial_add(struct journal *j, const char *path, int64_t size,
                        int64_t mtime_ns, const char *peer, int64_t now)
{
    sqlite3_stmt *st = stmt(j, ST_PARTIAL_ADD);

    if (st == NULL)
        return -EROFS;
    bind_text(st, 1, path);
    sqlite3_bind_int64(st, 2, size);
    sqlite3_bind_int64(st, 3, mtime_ns);
    bind_text(st, 4, peer);
    sqlite3_bind_int64(st, 5, now);
    return run(j, st, NULL);
}

int journal_partial_clear(struct journal *j, const char *path)
{
    sqlite3_stmt *st = stmt(j, ST_PARTIAL_CLEAR);

    if (st == NULL)
        return -EROFS;
    bind_text(st, 1, path);
    return run(j, st, NULL);
}

int journal_sweep(struct journal *j, int64_t now, int64_t before,
                  const int64_t *held, size_t n_held, int *count)
{
    sqlite3_stmt *st = stmt(j, ST_SWEEP);
    char *ids = NULL, *next;
    size_t i;
    int r;

    if (st == NULL)
        return -EROFS;
    ids = sqlite3_mprintf("[");
    for (i = 0; ids && i < n_held; i++) {
        next =
            sqlite3_mprintf("%s%s%lld", ids, i ? "," : "", (long long)held[i]);
        sqlite3_free(ids);
        ids = next;
    }
    next = ids ? sqlite3_mprintf("%s]", ids) : NULL;
    sqlite3_free(ids);
    if (next == NULL)
        return -ENOMEM;
    sqlite3_bind_int64(st, 1, now);
    sqlite3_bind_int64(st, 2, before);
    sqlite3_bind_text(st, 3, next, -1, sqlite3_free);
    r = run(j, st, count);
    return r;
}
