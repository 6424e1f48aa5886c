/*
 * Sources: where files come from.  Reading is what the transfer needs; a
 * source is a const struct source_ops so that another kind of source
 * (object storage, say) is one new file with its ops and its table of
 * keys, and one line in the table in agent/sources/source.c.  Discovery of new
 * files for the local source is the watcher's job (watch.h), which only reports
 * paths.
 */
#ifndef SFTPRELAY_SOURCE_H
#define SFTPRELAY_SOURCE_H

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

struct source_ops {
    const char *name;
    /* Its source.* keys beyond the core's; values land in its settings. */
    const struct conf_table *conf;
    /*
     * A source rooted at root, with settings (read with conf; borrowed,
     * must outlive it); freed with destroy().
     */
    int (*create)(const char *root, const void *settings, struct source **out);
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

#endif
