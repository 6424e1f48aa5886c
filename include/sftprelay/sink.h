/*
 * Sinks: where files are delivered (an SFTP server, a local folder, object
 * storage, ...).
 *
 * A sink is a const struct sink_ops.  Adding one is one file with its ops
 * and its table of target.* keys (struct conf_table, conf.h), one line in
 * the table in agent/sinks/sink.c, its build and dependency lines and its
 * section of sftprelay.conf(5); users pick it with target.type.  The
 * configuration reader fills the sink's own settings struct from its
 * table; create() gets that struct.  A sink knows nothing of the journal:
 * it is told a relative path and bytes, and answers with 0 or a negative
 * errno and, on error, a message in sink_error().
 *
 * The transfer contract.  One instance serves one worker and sends one
 * file at a time:
 *   connect -> open -> write ... -> commit   (delivered)
 *                                -> abort    (kept for a resume)
 *                                -> discard  (thrown away)
 * A connection stays open between files.  Every call may block for up to
 * the sink's timeout; it returns -ECANCELED soon after the cancel
 * descriptor given to create() becomes readable.
 *
 * Durability.  A write may return before the target has the bytes (the
 * SFTP sink keeps many writes in flight, the S3 sink sends whole parts).
 * durable() says below which offset every byte is safe on the target (SFTP:
 * the acknowledged highwater; S3: the end of the last of the contiguous
 * completed parts); only that is checkpointed.  With it the journal stores
 * the sink's resume token, if it has one (token(): opaque text such as an
 * S3 UploadId), and gives both back to open() on the next attempt, after a
 * crash too; a new token is recorded at once, before any byte is durable,
 * so that the upload it names is found again, if only to be thrown away.
 * open() may resume lower than the checkpoint (a lost part) or at 0 (the
 * target lost the upload: a temporary file removed, an upload aborted by
 * a lifecycle rule); higher only where the sink can vouch for the bytes
 * (S3: parts the server lists for the upload the token names, each stored
 * only once the server checked its Content-MD5; the journal's checkpoint
 * lags them by a commit), never past the file's size.  A big file sent
 * as ranges over several connections (open_range) checkpoints each
 * range's durable() the same way (the journal's ranges table).
 *
 * Offsets are of the bytes the sink is given, which a transform may make
 * longer or shorter than the source file (xfer.h keeps both).
 *
 * Errors that concern the target as a whole (unreachable, refused login,
 * unknown host key, wrong keys, dropped connection) are the ones
 * sink_error_is_target() says yes to; the others concern one file.
 * -EAGAIN is the target asking to slow down (S3's 503 SlowDown): the file
 * is tried again after a back-off, which counts as no attempt.
 */
#ifndef SFTPRELAY_SINK_H
#define SFTPRELAY_SINK_H

#include <stddef.h>
#include <stdint.h>

struct conf_table;
struct sink;

#define SINK_ERR_MAX 512

/* Longest resume token, and longest object tag (an S3 ETag). */
#define SINK_TOKEN_MAX 1024
#define SINK_ETAG_MAX 128

/* The file open() starts or resumes. */
struct sink_file {
    const char *rel; /* where it lands: checked by path_rel_check() */
    int mode;        /* its permission bits */
    int64_t size;    /* bytes the sink will be given; -1: not known */
    /*
     * In: the durable offset the journal holds; out: where writing
     * resumes (see above).
     */
    int64_t offset;
    /* The token the journal holds with offset (the upload to resume,
     * whatever the offset), or NULL. */
    const char *token;
    /* An upload of an earlier version of the file (or one that must start
     * over) to throw away first, or NULL. */
    const char *stale_token;
    /*
     * 1: the bytes are a transform's output, each write one independent
     * piece (a gzip member) and the only places a transfer can resume
     * from: resume at offset or lower, never higher, and a sink that
     * groups bytes (S3's parts) ends its groups at the end of a write.
     */
    int whole_writes;
};

/* What commit() is told of the file it completes, and answers. */
struct sink_done {
    int64_t size;         /* bytes written from offset 0 */
    int64_t mtime_ns;     /* the source file's modification time */
    int mode;             /* its permission bits */
    const uint8_t *sha256; /* 32 bytes: of the bytes written, all of them;
                            * NULL when not known */
    char etag[SINK_ETAG_MAX]; /* out: the target's tag of the object
                               * (S3's ETag), or "" */
};

/* A small file put_many() delivers whole. */
struct sink_item {
    const char *rel;  /* checked by path_rel_check() */
    const void *data; /* d.size bytes */
    struct sink_done d;
    int result;             /* out: 0 delivered, or a negative errno */
    char err[SINK_ERR_MAX]; /* out: why not */
};

/* Files put_many() takes at most at once. */
#define SINK_PUT_MAX 32

struct sink_ops {
    const char *name;
    /* Its target.* keys; their values land in its settings struct. */
    const struct conf_table *conf;
    /*
     * A new unconnected instance for settings (read with conf; borrowed,
     * must outlive it); *out is freed with destroy().
     */
    int (*create)(const void *settings, int cancel_fd, struct sink **out);
    /* Where settings deliver to, for logs: "relay@host:22 /upload". */
    void (*describe)(const void *settings, char *buf, size_t len);
    void (*destroy)(struct sink *s);
    /* Connect, or nothing if connected. */
    int (*connect)(struct sink *s);
    void (*disconnect)(struct sink *s);
    /*
     * Start or resume delivering f->rel to its temporary name (or upload),
     * from f->offset as described above.
     */
    int (*open)(struct sink *s, struct sink_file *f);
    /*
     * Write len bytes at the current offset: 0 once they are taken (buf
     * may be reused), or an error of this or an earlier write.
     */
    int (*write)(struct sink *s, const void *buf, size_t len);
    /*
     * The offset below which every byte written is on the target, for
     * checkpoints.  NULL: every write is acknowledged when it returns.
     */
    int64_t (*durable)(struct sink *s);
    /*
     * The resume token that goes with durable(), or NULL when the sink
     * needs none (a temporary file is found by its name).  Owned by s,
     * valid until the next call.  NULL op: never a token.
     */
    const char *(*token)(struct sink *s);
    /*
     * Wait for every write, check the file against d as the sink's
     * settings ask, flush, close and rename into place.  0 means
     * delivered.
     */
    int (*commit)(struct sink *s, struct sink_done *d);
    /* Stop the current file; what was written stays for a resume. */
    void (*abort)(struct sink *s);
    /*
     * Throw away the unfinished upload of rel (connected, no file open):
     * its temporary file, or the upload token names (NULL: none
     * recorded), because the source changed or vanished.  0 also when
     * there was nothing to throw away.
     */
    int (*discard)(struct sink *s, const char *rel, const char *token);
    /*
     * Whether rel is on the target already (connected, no file open): 1,
     * 0, or a negative errno.  For target.on_exists.
     */
    int (*exists)(struct sink *s, const char *rel);
    /*
     * Deliver n (at most SINK_PUT_MAX) small files whole, connected and
     * with no file open, their requests in flight together: each as
     * open, write, commit would, with the same checks.  Sets every
     * item's result; returns 0, or a negative errno that concerns the
     * target as a whole (items it stopped have it too), or -EOPNOTSUPP
     * before doing anything when the settings need one file at a time.
     * NULL: the sink has no such form.
     */
    int (*put_many)(struct sink *s, struct sink_item *items, size_t n);
    /*
     * One byte range of a big file sent over several connections: start
     * writing rel's temporary file at start, keeping what it holds (it
     * exists: another instance made it).  Writes and durable() as above;
     * close_range() waits for them and closes the file, no rename.  NULL:
     * the sink sends a file over one connection only.
     */
    int (*open_range)(struct sink *s, const char *rel, int mode, int64_t start);
    int (*close_range)(struct sink *s);
};

/* Every sink starts with this. */
struct sink {
    const struct sink_ops *ops;
    char err[SINK_ERR_MAX]; /* what went wrong last, for logs and status */
};

/* The sink named name ("sftp", "local"), or NULL. */
const struct sink_ops *sink_find(const char *name);

/* The i-th sink of the table, from 0, or NULL past its end. */
const struct sink_ops *sink_at(size_t i);

/* The name of the default sink (the table's first). */
const char *sink_default(void);

/* The names of every sink, comma-separated, for error messages. */
const char *sink_names(void);

/* Whether error r (negative errno) concerns the target as a whole. */
int sink_error_is_target(int r);

/* Record a message for sink_error(); returns r. */
int sink_fail(struct sink *s, int r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static inline const char *sink_error(const struct sink *s)
{
    return s->err;
}

static inline int sink_connect(struct sink *s)
{
    return s->ops->connect(s);
}

static inline void sink_disconnect(struct sink *s)
{
    s->ops->disconnect(s);
}

static inline int sink_open(struct sink *s, struct sink_file *f)
{
    return s->ops->open(s, f);
}

static inline int sink_write(struct sink *s, const void *buf, size_t len)
{
    return s->ops->write(s, buf, len);
}

static inline int sink_commit(struct sink *s, struct sink_done *d)
{
    return s->ops->commit(s, d);
}

static inline void sink_abort(struct sink *s)
{
    s->ops->abort(s);
}

static inline void sink_destroy(struct sink *s)
{
    if (s)
        s->ops->destroy(s);
}

static inline int sink_discard(struct sink *s, const char *rel,
                               const char *token)
{
    return s->ops->discard(s, rel, token);
}

static inline int sink_exists(struct sink *s, const char *rel)
{
    return s->ops->exists(s, rel);
}

/* The token for the current file: sink token(), or NULL. */
static inline const char *sink_token(struct sink *s)
{
    return s->ops->token ? s->ops->token(s) : NULL;
}

#endif
