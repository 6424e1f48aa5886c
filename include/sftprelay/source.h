/*
 * Sources: where files come from.  A source is a const struct source_ops,
 * so that another kind of source (object storage, say) is one new file
 * with its ops and its table of keys, and one line in the table in
 * agent/sources/source.c; users pick it with source.type.  source.path is
 * the folder on the source, local or remote, that files are named
 * relative to.
 *
 * A source does three things:
 *   - discovery: either it is watched (watched = 1: source.path is a local
 *     folder the inotify watcher follows, watch.h), or the poller
 *     (poller.h) calls list() every source.poll_interval and hands a file
 *     to intake once it was unchanged for source.stable_polls polls;
 *   - reading, for the transfer: open, read at any offset (so a transfer
 *     resumes on the source side too), stat, close;
 *   - after delivery (source.after_delivery), once the journal has
 *     recorded it: remove() or move() the file (after.h).
 *
 * Errors that concern the source host as a whole (unreachable, login
 * refused, host key, connection lost) are -EHOSTDOWN from every op, with
 * the reason in source_error(): the scheduler then pauses the source
 * instead of counting an attempt of the file.  A local source has none.
 */
#ifndef SFTPRELAY_SOURCE_H
#define SFTPRELAY_SOURCE_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

struct conf_table;
struct source;
struct source_file;

/* What identifies one version of a file. */
struct source_stat {
    int64_t size;
    int64_t mtime_ns;
    int mode; /* permission bits */
};

/* A file's mtime in nanoseconds, as the journal keys versions by it. */
static inline int64_t source_mtime_ns(const struct stat *st)
{
    return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

#define SOURCE_ERR_MAX 512

/* What list() walks past, and whom it tells. */
struct source_walk {
    /* A folder (relative to the root) not walked: after_delivery's
     * move:<dir>.  NULL: none. */
    const char *skip;
    char *const *exclude; /* base-name globs of files and folders skipped */
    size_t n_exclude;
    /*
     * A regular file (symbolic links and other kinds are skipped), rel
     * checked by path_rel_check().  A negative return stops the walk
     * with that value.
     */
    int (*found)(void *arg, const char *rel, const struct source_stat *st);
    void *arg;
    /* The most entries a listing may hold (0: no limit): past it list()
     * stops with -E2BIG, saying so in the source's err. */
    size_t max_entries;
};

struct source_ops {
    const char *name;
    /*
     * 1: source.path is not used (the source's own keys say where files
     * are: S3's bucket and prefix), and setting it is an error; 0: it is
     * required, the folder files are named relative to.
     */
    int no_path;
    /* Its source.* keys beyond the core's; values land in its settings. */
    const struct conf_table *conf;
    /*
     * A source rooted at root, with settings (read with conf; borrowed,
     * must outlive it); a wait on the network returns -ECANCELED once
     * cancel_fd (borrowed, or -1) becomes readable.  Connects lazily: a
     * host that is down fails the first op, not create().  Freed with
     * destroy().
     */
    int (*create)(const char *root, const void *settings, int cancel_fd,
                  struct source **out);
    void (*destroy)(struct source *s);
    /*
     * Open rel for reading: -ENOENT if it is gone, -EISDIR or -ELOOP if it
     * is no longer a regular file.  Thread-safe.
     */
    int (*open)(struct source *s, const char *rel, struct source_file **out,
                struct source_stat *st);
    /* Read up to len bytes at off; *got is 0 at the end of the file. */
    int (*read)(struct source_file *f, void *buf, size_t len, int64_t off,
                size_t *got);
    /* The open file's size and mtime now. */
    int (*stat)(struct source_file *f, struct source_stat *st);
    void (*close)(struct source_file *f);

    /* 1: found by the inotify watcher (a local folder); 0: by list(). */
    int watched;
    /*
     * Walk the whole tree, calling w->found for each regular file: 0, a
     * negative errno (the listing is incomplete: the poller forgets
     * nothing), or found()'s.  NULL when watched.
     */
    int (*list)(struct source *s, const struct source_walk *w);
    /* after_delivery "delete": remove rel. */
    int (*remove)(struct source *s, const char *rel);
    /* after_delivery "move:<dir>": rename rel to dir/rel, making the
     * folders missing on the way (dir is relative to the root). */
    int (*move)(struct source *s, const char *rel, const char *dir);
    /* Connect now (the scheduler's probe while the host is down): 0 once
     * it answers.  NULL: the source is never down. */
    int (*connect)(struct source *s);
};

struct source {
    const struct source_ops *ops;
    char err[SOURCE_ERR_MAX]; /* what went wrong last, in words */
};

/* The text of the last error of s: its own words, or strerror(-r). */
const char *source_error(const struct source *s, int r);

/* Whether error r concerns the source host as a whole. */
static inline int source_error_is_host(int r)
{
    return r == -EHOSTDOWN;
}

/* The source named name ("local"), or NULL. */
const struct source_ops *source_find(const char *name);

/* The i-th source of the table, from 0, or NULL past its end. */
const struct source_ops *source_at(size_t i);

/* The name of the default source (the table's first). */
const char *source_default(void);

/* The names of every source, comma-separated, for error messages. */
const char *source_names(void);

static inline void source_destroy(struct source *s)
{
    if (s)
        s->ops->destroy(s);
}

extern const struct source_ops source_local;
extern const struct source_ops source_sftp;
extern const struct source_ops source_s3;

#endif
