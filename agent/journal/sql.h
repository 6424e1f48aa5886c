/*
 * The journal's SQL, in one place.  Times are Unix seconds (UTC); sizes
 * and offsets are bytes; mtime_ns is the source file's mtime in
 * nanoseconds.  See sftprelay-journal(5).
 */
#ifndef SFTPRELAY_JOURNAL_SQL_H
#define SFTPRELAY_JOURNAL_SQL_H

#define JOURNAL_SCHEMA_VERSION 6

/*
 * The WAL is kept to 16 MiB on disk once it restarts (it is kept, not
 * deleted, for read-only readers); the journal writer restarts it every
 * few seconds (journal_wal_restart()), since with readers always at work
 * SQLite's own checkpoints never get to (600 MB for 20,000 files).
 *
 * Bookkeeping commits at NORMAL: losing the last ones to a power cut only
 * makes the start-up scan queue a file again or a resume start earlier.
 * The commit that says "delivered" runs at FULL (SQL_SYNC_FULL), which
 * also makes every earlier commit durable.
 */
#define SQL_PRAGMAS                                                            \
    "PRAGMA journal_mode = WAL;"                                               \
    "PRAGMA synchronous = NORMAL;"                                             \
    "PRAGMA journal_size_limit = 16777216;"                                    \
    "PRAGMA foreign_keys = ON;"

#define SQL_SYNC_FULL "PRAGMA synchronous = FULL"
#define SQL_SYNC_NORMAL "PRAGMA synchronous = NORMAL"

/* Version 1.  Each statement is idempotent, so a migration can rerun. */
#define SQL_SCHEMA_V1                                                          \
    "CREATE TABLE IF NOT EXISTS files ("                                       \
    "  id            INTEGER PRIMARY KEY,"                                     \
    "  path          TEXT    NOT NULL UNIQUE,"                                 \
    "  size          INTEGER NOT NULL,"                                        \
    "  mtime_ns      INTEGER NOT NULL,"                                        \
    "  state         TEXT    NOT NULL CHECK (state IN"                         \
    "                  ('queued', 'sending', 'delivered', 'failed')),"         \
    "  attempts      INTEGER NOT NULL DEFAULT 0,"                              \
    "  next_attempt  INTEGER NOT NULL DEFAULT 0,"                              \
    "  resume_offset INTEGER NOT NULL DEFAULT 0,"                              \
    "  sha256        TEXT,"                                                    \
    "  last_error    TEXT,"                                                    \
    "  detected_at   INTEGER NOT NULL,"                                        \
    "  attempted_at  INTEGER,"                                                 \
    "  delivered_at  INTEGER,"                                                 \
    "  version       INTEGER NOT NULL DEFAULT 1"                               \
    ");"                                                                       \
    "CREATE INDEX IF NOT EXISTS files_due ON files (state, next_attempt);"     \
    "CREATE INDEX IF NOT EXISTS files_delivered ON files (delivered_at)"       \
    "  WHERE state = 'delivered';"                                             \
    "CREATE TABLE IF NOT EXISTS agent ("                                       \
    "  key        TEXT PRIMARY KEY,"                                           \
    "  value      TEXT,"                                                       \
    "  updated_at INTEGER NOT NULL"                                            \
    ");"

/*
 * Version 2: uploads the embedded server saw abandoned half-way.  A file
 * found on the source at exactly that size and mtime is not queued.
 */
#define SQL_SCHEMA_V2                                                          \
    "CREATE TABLE IF NOT EXISTS partial ("                                     \
    "  path        TEXT PRIMARY KEY,"                                          \
    "  size        INTEGER NOT NULL,"                                          \
    "  mtime_ns    INTEGER NOT NULL,"                                          \
    "  peer        TEXT,"                                                      \
    "  recorded_at INTEGER NOT NULL"                                           \
    ");"

/*
 * Version 3: what `sftprelay status`, the status endpoint and the Airflow
 * sensor ask for, answered from small partial indexes instead of a scan of
 * every row (100,000 queued files took 0.5 s to count and sort).
 */
#define SQL_SCHEMA_V3                                                          \
    "CREATE INDEX IF NOT EXISTS files_pending ON files (detected_at)"          \
    "  WHERE state IN ('queued', 'sending');"                                  \
    "CREATE INDEX IF NOT EXISTS files_errors ON files (attempted_at)"          \
    "  WHERE last_error IS NOT NULL AND state != 'delivered';"

/*
 * Version 4: a big file sent as byte ranges over several connections
 * keeps each range's progress: every byte of [start, done) is on the
 * target.  A row belongs to one version of its file (size, mtime_ns) and
 * goes when the file is delivered or changes.
 */
#define SQL_SCHEMA_V4                                                          \
    "CREATE TABLE IF NOT EXISTS ranges ("                                      \
    "  file_id  INTEGER NOT NULL REFERENCES files (id) ON DELETE CASCADE,"    \
    "  size     INTEGER NOT NULL,"                                             \
    "  mtime_ns INTEGER NOT NULL,"                                             \
    "  start    INTEGER NOT NULL,"                                             \
    "  end      INTEGER NOT NULL,"                                             \
    "  done     INTEGER NOT NULL,"                                             \
    "  PRIMARY KEY (file_id, start)"                                           \
    ");"                                                                       \
    "CREATE TRIGGER IF NOT EXISTS ranges_gone AFTER UPDATE OF state, size,"    \
    "  mtime_ns ON files"                                                      \
    "  WHEN NEW.state = 'delivered' OR NEW.size != OLD.size"                   \
    "    OR NEW.mtime_ns != OLD.mtime_ns"                                      \
    "  BEGIN DELETE FROM ranges WHERE file_id = NEW.id; END;"                  \
    "CREATE TRIGGER IF NOT EXISTS ranges_deleted AFTER DELETE ON files"        \
    "  BEGIN DELETE FROM ranges WHERE file_id = OLD.id; END;"

/*
 * Version 5: the transfer contract (sink.h).  With resume_offset (bytes
 * on the target) the row keeps source_offset (bytes of the source they
 * came from: a transform changes lengths) and the sink's resume_token
 * (an S3 UploadId); when the file changes, or its upload must start over,
 * the token moves to stale_token, so that the next attempt throws that
 * upload away; its first checkpoint clears it.  The two are never both
 * set (a token is checkpointed only after the sink's open() threw the
 * stale upload away, and the same statement clears stale_token), so
 * coalesce(resume_token, stale_token) loses none.  Once delivered: target_path
 * (the name on the target when target.on_exists renamed it), etag (the
 * target's tag of the object) and outcome (written, skipped, renamed).
 */
#define SQL_SCHEMA_V5                                                          \
    "ALTER TABLE files ADD COLUMN source_offset INTEGER NOT NULL DEFAULT 0;"   \
    "ALTER TABLE files ADD COLUMN resume_token TEXT;"                          \
    "ALTER TABLE files ADD COLUMN stale_token TEXT;"                           \
    "ALTER TABLE files ADD COLUMN target_path TEXT;"                           \
    "ALTER TABLE files ADD COLUMN etag TEXT;"                                  \
    "ALTER TABLE files ADD COLUMN outcome TEXT;"                               \
    "UPDATE files SET source_offset = resume_offset;"

/*
 * Version 6: digests that resume.  sha256_state is the running SHA-256 of
 * the source bytes at the last checkpoint, delivered_state that of the
 * bytes on the target (digest.h: each says how many bytes it covers), so
 * that a resumed transfer need not read again what it sent; once
 * delivered, delivered_sha256 is the digest of the bytes on the target
 * (sha256 stays that of the source: they differ through a transform);
 * chain names the transforms that made the checkpoint, which only the
 * same transforms take up.
 */
#define SQL_SCHEMA_V6                                                          \
    "ALTER TABLE files ADD COLUMN sha256_state TEXT;"                          \
    "ALTER TABLE files ADD COLUMN delivered_state TEXT;"                       \
    "ALTER TABLE files ADD COLUMN delivered_sha256 TEXT;"                      \
    "ALTER TABLE files ADD COLUMN chain TEXT;"                                 \
    "UPDATE files SET delivered_sha256 = sha256 WHERE state = 'delivered';"

/* ?1 file_id, ?2 size, ?3 mtime_ns, ?4 start, ?5 end, ?6 done. */
#define SQL_RANGE_SAVE                                                         \
    "INSERT INTO ranges (file_id, size, mtime_ns, start, end, done)"           \
    "  SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE EXISTS (SELECT 1 FROM files"         \
    "    WHERE id = ?1 AND size = ?2 AND mtime_ns = ?3"                        \
    "      AND state = 'sending')"                                             \
    " ON CONFLICT (file_id, start) DO UPDATE SET end = excluded.end,"          \
    "  done = max(done, excluded.done), size = excluded.size,"                 \
    "  mtime_ns = excluded.mtime_ns"

/* ?1 file_id, ?2 size, ?3 mtime_ns. */
#define SQL_RANGES                                                             \
    "SELECT start, end, done FROM ranges"                                      \
    " WHERE file_id = ?1 AND size = ?2 AND mtime_ns = ?3 ORDER BY start"

#define FILE_COLUMNS                                                           \
    "id, path, size, mtime_ns, state, attempts, next_attempt, "                \
    "resume_offset, sha256, last_error, detected_at, attempted_at, "           \
    "delivered_at, version, " FILE_COLUMNS_V5 ", " FILE_COLUMNS_V6

/* Those of versions 5 and 6, and what a reader of an older journal reads
 * instead. */
#define FILE_COLUMNS_V5                                                        \
    "source_offset, resume_token, target_path, etag, outcome, stale_token"
#define FILE_COLUMNS_V5_BEFORE "resume_offset, NULL, NULL, NULL, NULL, NULL"
#define FILE_COLUMNS_V6                                                        \
    "sha256_state, delivered_state, delivered_sha256, chain"
#define FILE_COLUMNS_V6_BEFORE "NULL, NULL, sha256, NULL"

/*
 * A file seen on the source: a new row, or a changed one queued again.
 * An unchanged row is left alone; a row being sent keeps its state and the
 * worker finds out at the end (SQL_DELIVERED matches nothing).
 * ?1 path, ?2 size, ?3 mtime_ns, ?4 now.
 */
#define SQL_OFFER                                                              \
    "INSERT INTO files (path, size, mtime_ns, state, detected_at,"             \
    "                   next_attempt)"                                         \
    "  SELECT ?1, ?2, ?3, 'queued', ?4, ?4"                                    \
    "  WHERE NOT EXISTS (SELECT 1 FROM partial"                                \
    "                    WHERE path = ?1 AND size = ?2 AND mtime_ns = ?3)"     \
    " ON CONFLICT (path) DO UPDATE SET"                                        \
    "  size = excluded.size,"                                                  \
    "  mtime_ns = excluded.mtime_ns,"                                          \
    "  version = version + (state IN ('delivered', 'failed')),"                \
    "  detected_at = CASE WHEN state IN ('delivered', 'failed')"               \
    "                THEN excluded.detected_at ELSE detected_at END,"          \
    "  state = CASE state WHEN 'sending' THEN 'sending' ELSE 'queued' END,"    \
    "  attempts = 0,"                                                          \
    "  next_attempt = excluded.next_attempt,"                                  \
    "  resume_offset = 0,"                                                     \
    "  source_offset = 0,"                                                     \
    "  stale_token = coalesce(resume_token, stale_token),"                     \
    "  resume_token = NULL, sha256_state = NULL, delivered_state = NULL,"      \
    "  sha256 = NULL, delivered_sha256 = NULL,"                                \
    "  last_error = NULL,"                                                     \
    "  delivered_at = NULL,"                                                   \
    "  target_path = NULL, etag = NULL, outcome = NULL"                        \
    " WHERE size != excluded.size OR mtime_ns != excluded.mtime_ns"

/* Whether path is known at this size and mtime.  ?1 path. */
#define SQL_GET "SELECT " FILE_COLUMNS " FROM files WHERE path = ?1"

/*
 * The next files due, in order: at most ?2 of them, and no more once the
 * sizes before a file reach ?3 bytes (the first is always taken).  ?1 now.
 */
#define SQL_CLAIM                                                              \
    "UPDATE files SET state = 'sending', attempted_at = ?1"                    \
    " WHERE id IN (SELECT id FROM"                                             \
    "   (SELECT id, SUM(size) OVER (ORDER BY next_attempt, id"                 \
    "                ROWS UNBOUNDED PRECEDING) - size AS before"               \
    "    FROM (SELECT id, size, next_attempt FROM files"                       \
    "          WHERE state = 'queued' AND next_attempt <= ?1"                  \
    "          ORDER BY next_attempt, id LIMIT ?2))"                           \
    "   WHERE before < ?3)"                                                    \
    " RETURNING " FILE_COLUMNS

/* The same for --once: the next queued files after id ?4, whatever their
 * due time. */
#define SQL_CLAIM_ONCE                                                         \
    "UPDATE files SET state = 'sending', attempted_at = ?1"                    \
    " WHERE id IN (SELECT id FROM"                                             \
    "   (SELECT id, SUM(size) OVER (ORDER BY id"                               \
    "                ROWS UNBOUNDED PRECEDING) - size AS before"               \
    "    FROM (SELECT id, size FROM files"                                     \
    "          WHERE state = 'queued' AND id > ?4"                             \
    "          ORDER BY id LIMIT ?2))"                                         \
    "   WHERE before < ?3)"                                                    \
    " RETURNING " FILE_COLUMNS

/*
 * ?1 offset, ?2 id, ?3 size, ?4 mtime_ns: only for the version being sent;
 * ?5 source_offset, ?6 resume_token, ?7 sha256_state, ?8 delivered_state,
 * ?9 chain.
 */
#define SQL_CHECKPOINT                                                         \
    "UPDATE files SET resume_offset = ?1, source_offset = ?5,"                 \
    "  resume_token = ?6, stale_token = NULL,"                                 \
    "  sha256_state = ?7, delivered_state = ?8, chain = ?9"                    \
    " WHERE id = ?2 AND state = 'sending' AND size = ?3 AND mtime_ns = ?4"

/*
 * ?1 sha256, ?2 now, ?3 id, ?4 size, ?5 mtime_ns, ?6 target_path, ?7 etag,
 * ?8 outcome, ?9 delivered_sha256.
 */
#define SQL_DELIVERED                                                          \
    "UPDATE files SET state = 'delivered', sha256 = ?1, delivered_at = ?2,"    \
    "  resume_offset = size, source_offset = size, resume_token = NULL,"       \
    "  stale_token = NULL, sha256_state = NULL, delivered_state = NULL,"       \
    "  delivered_sha256 = ?9,"                                                 \
    "  target_path = ?6, etag = ?7, outcome = ?8,"                             \
    "  last_error = NULL, attempts = attempts + 1"                             \
    " WHERE id = ?3 AND state = 'sending' AND size = ?4 AND mtime_ns = ?5"

/*
 * Back to the queue after a failed attempt.  ?1 next_attempt, ?2 error,
 * ?3 1 to count the attempt, ?4 1 to start over from byte 0, ?5 id.
 */
#define SQL_REQUEUE                                                            \
    "UPDATE files SET state = 'queued', next_attempt = ?1, last_error = ?2,"   \
    "  attempts = attempts + ?3,"                                              \
    "  resume_offset = CASE ?4 WHEN 1 THEN 0 ELSE resume_offset END,"          \
    "  source_offset = CASE ?4 WHEN 1 THEN 0 ELSE source_offset END,"          \
    "  stale_token = CASE ?4 WHEN 1 THEN coalesce(resume_token, stale_token)"  \
    "                ELSE stale_token END,"                                    \
    "  resume_token = CASE ?4 WHEN 1 THEN NULL ELSE resume_token END,"         \
    "  sha256_state = CASE ?4 WHEN 1 THEN NULL ELSE sha256_state END,"         \
    "  delivered_state = CASE ?4 WHEN 1 THEN NULL ELSE delivered_state END"    \
    " WHERE id = ?5 AND state = 'sending'"

/* A new size and mtime seen by a worker.  ?1 size, ?2 mtime_ns, ?3 id. */
#define SQL_RESTAT                                                             \
    "UPDATE files SET size = ?1, mtime_ns = ?2, resume_offset = 0,"            \
    "  source_offset = 0, stale_token = coalesce(resume_token, stale_token),"  \
    "  resume_token = NULL, sha256_state = NULL, delivered_state = NULL"       \
    " WHERE id = ?3"

/* Given up on.  ?1 error, ?2 id. */
#define SQL_FAIL                                                               \
    "UPDATE files SET state = 'failed', last_error = ?1,"                      \
    "  attempts = attempts + 1"                                                \
    " WHERE id = ?2 AND state = 'sending'"

/* Rows left 'sending' by an agent that stopped without finishing. */
#define SQL_RECOVER                                                            \
    "UPDATE files SET state = 'queued', next_attempt = 0"                      \
    " WHERE state = 'sending'"

/* ?1 delivered before. */
#define SQL_PRUNE                                                              \
    "DELETE FROM files WHERE state = 'delivered' AND delivered_at < ?1"

/* By hand: failed or waiting rows now; delivered rows as a new version. */
#define SQL_RETRY                                                              \
    "UPDATE files SET"                                                         \
    "  version = version + (state = 'delivered'),"                             \
    "  resume_offset = CASE state WHEN 'delivered' THEN 0"                     \
    "                  ELSE resume_offset END,"                                \
    "  source_offset = CASE state WHEN 'delivered' THEN 0"                     \
    "                  ELSE source_offset END,"                                \
    "  state = 'queued', attempts = 0, next_attempt = 0, last_error = NULL,"   \
    "  sha256 = NULL, delivered_sha256 = NULL, delivered_at = NULL,"           \
    "  target_path = NULL, etag = NULL, outcome = NULL"                        \
    " WHERE path = ?1 AND state != 'sending'"

#define SQL_RETRY_FAILED                                                       \
    "UPDATE files SET state = 'queued', attempts = 0, next_attempt = 0,"       \
    "  last_error = NULL"                                                      \
    " WHERE state = 'failed'"

#define SQL_LIST "SELECT " FILE_COLUMNS " FROM files ORDER BY path"

#define SQL_LIST_STATE                                                         \
    "SELECT " FILE_COLUMNS " FROM files WHERE state = ?1 ORDER BY path"

/*
 * The rows from ?1 on, before ?2 (a prefix's range) or to the end, above
 * ?5 (NULL: any; ?1 is then ?5 or above, so that only ?5's own row is
 * left out here), in state ?3 (NULL: any), by path, at most ?4 (-1: all).
 * Two statements, so that each range is a search of the path's index.
 */
#define SQL_FIND_RANGE                                                         \
    "SELECT " FILE_COLUMNS " FROM files WHERE path >= ?1 AND path < ?2"        \
    "  AND (?5 IS NULL OR path > ?5)"                                          \
    "  AND (?3 IS NULL OR state = ?3) ORDER BY path LIMIT ?4"

#define SQL_FIND_FROM                                                          \
    "SELECT " FILE_COLUMNS " FROM files WHERE path >= ?1"                      \
    "  AND (?5 IS NULL OR path > ?5)"                                          \
    "  AND (?3 IS NULL OR state = ?3) ORDER BY path LIMIT ?4"

#define SQL_COUNTS "SELECT state, count(*) FROM files GROUP BY state"

/* likely(): without statistics the planner would take files_due and read
 * every pending row rather than the first entry of files_pending. */
#define SQL_OLDEST_PENDING                                                     \
    "SELECT min(detected_at) FROM files"                                       \
    " WHERE likely(state IN ('queued', 'sending'))"

#define SQL_LAST_ERROR                                                         \
    "SELECT path, last_error, attempted_at FROM files"                         \
    " WHERE last_error IS NOT NULL AND state != 'delivered'"                   \
    " ORDER BY attempted_at DESC, id DESC LIMIT 1"

#define SQL_NEXT_DUE                                                           \
    "SELECT min(next_attempt) FROM files WHERE state = 'queued'"

/* ?1 key, ?2 value, ?3 now. */
#define SQL_AGENT_SET                                                          \
    "INSERT INTO agent (key, value, updated_at) VALUES (?1, ?2, ?3)"           \
    " ON CONFLICT (key) DO UPDATE SET value = excluded.value,"                 \
    "  updated_at = excluded.updated_at"

/* ?1 path, ?2 size, ?3 mtime_ns, ?4 peer, ?5 now. */
#define SQL_PARTIAL_ADD                                                        \
    "INSERT OR REPLACE INTO partial (path, size, mtime_ns, peer, recorded_at)" \
    " VALUES (?1, ?2, ?3, ?4, ?5)"

#define SQL_PARTIAL_CLEAR "DELETE FROM partial WHERE path = ?1"

/*
 * Rows left 'sending' that no worker holds (a claim whose answer was lost):
 * queued again.  ?1 now, ?2 claimed before, ?3 ids held, as a JSON array.
 */
#define SQL_SWEEP                                                              \
    "UPDATE files SET state = 'queued', next_attempt = ?1"                     \
    " WHERE state = 'sending' AND attempted_at < ?2"                           \
    "   AND id NOT IN (SELECT value FROM json_each(?3))"

#define SQL_AGENT_GET "SELECT value, updated_at FROM agent WHERE key = ?1"

#endif
