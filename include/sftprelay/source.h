/*
 * Sources: where files come from.  Reading is what the transfer needs; a
 * source is a const struct source_ops so that another kind of source
 * (object storage, say) is one new file.  Discovery of new files for the
 * local source is the watcher's job (watch.h), which only reports paths.
 */
#ifndef SFTPRELAY_SOURCE_H
#define SFTPRELAY_SOURCE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

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

struct source_ops {
    const char *name;
    /* A source rooted at root; freed with destroy(). */
    int (*create)(const char *root, struct source **out);
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
};

struct source {
    const struct source_ops *ops;
};

extern const struct source_ops source_local;

#endif
