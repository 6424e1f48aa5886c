/*
 * Sinks: where files are delivered (an SFTP server, a local folder, ...).
 *
 * A sink is a const struct sink_ops.  Adding one (object storage, say) is
 * one file with its ops and its table of target.* keys (struct conf_table,
 * conf.h), and one line in the table in agent/sinks/sink.c; users pick it
 * with target.type.  The configuration reader fills the sink's own
 * settings struct from its table; create() gets that struct.  A sink knows
 * nothing of the journal: it is told a relative path and bytes, and answers
 * with 0 or a negative errno and, on error, a message in sink_error().
 *
 * One instance serves one worker and sends one file at a time:
 *   connect -> open -> write ... -> commit  (or abort, keeping the upload
 * for a later resume).  A write may return before the target has the
 * bytes (the SFTP sink keeps many writes in flight); durable() says how
 * far the target has acknowledged them, and only that is checkpointed.  A connection stays open between files.  Every call
 * may block for up to target.timeout; it returns -ECANCELED at once when
 * the cancel descriptor given to create() becomes readable.
 *
 * Errors that concern the target as a whole (unreachable, refused login,
 * unknown host key, dropped connection) are the ones sink_error_is_target()
 * says yes to; the others concern one file.
 */
#ifndef SFTPRELAY_SINK_H
#define SFTPRELAY_SINK_H

#include <stddef.h>
#include <stdint.h>

struct conf_table;
struct sink;

#define SINK_ERR_MAX 512

/* What commit() is told of the file it completes. */
struct sink_done {
    int64_t size;         /* bytes written from offset 0 */
    int64_t mtime_ns;     /* the source file's modification time */
    int mode;             /* its permission bits */
    const uint8_t *sha256; /* 32 bytes: of the bytes written, all of them */
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
     * Start delivering rel (a path checked by path_rel_check()) to its
     * temporary name.  *offset comes in as the checkpoint the journal holds
     * and goes out as where writing resumes: at most the checkpoint, and 0
     * when the temporary file is missing or shorter.  mode is the file's
     * permission bits.
     */
    int (*open)(struct sink *s, const char *rel, int mode, int64_t *offset);
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
     * Wait for every write, check the file against d as the sink's
     * settings ask, flush, close and rename into place.  0 means
     * delivered.
     */
    int (*commit)(struct sink *s, const struct sink_done *d);
    /* Stop the current file; what was written stays for a resume. */
    void (*abort)(struct sink *s);
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

static inline int sink_open(struct sink *s, const char *rel, int mode,
                            int64_t *offset)
{
    return s->ops->open(s, rel, mode, offset);
}

static inline int sink_write(struct sink *s, const void *buf, size_t len)
{
    return s->ops->write(s, buf, len);
}

static inline int sink_commit(struct sink *s, const struct sink_done *d)
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

extern const struct sink_ops sink_sftp;
extern const struct sink_ops sink_local;

#endif
