/*
 * Transforms: steps a file's bytes pass through between the source and
 * the sink (compression, encryption, an external filter).  A transform is
 * a const struct transform_ops; adding one is one file with its ops and
 * its table of keys, one line in the table in agent/transforms/transform.c,
 * its build and dependency lines, and its section in sftprelay.conf(5)
 * (README.md, "Writing a transform").
 *
 * The configuration names the steps in order, each a group of the
 * top-level list "transforms" (or a bare name in the shorthand
 * transfer.transforms): conf_load() turns them into struct transform_spec,
 * one per step, and a chain is built from those per worker and reused for
 * every file it sends.  A chain and its instances belong to one thread.
 */
#ifndef SFTPRELAY_TRANSFORM_H
#define SFTPRELAY_TRANSFORM_H

#include <stddef.h>

struct conf_table;
struct transform;

/* How an interrupted file can resume through a transform. */
enum transform_resume {
    /* A stream (exec): an interrupted file starts over from byte 0. */
    TRANSFORM_RESTART = 0,
    /*
     * Each process() call's output, for the bytes given in that call,
     * stands alone (a gzip member, a zstd frame): after any call that was
     * not last, a fresh instance after begin() continues the file from
     * the next source byte, and the concatenation is one valid stream.
     */
    TRANSFORM_CHUNKED = 1,
    /* Output byte i is input byte i (identity): resume anywhere. */
    TRANSFORM_SAME = 2,
};

struct transform_ops {
    const char *name; /* its type in the configuration */
    enum transform_resume resume;
    /* Appended to the target name by default (".gz"); "" none. */
    const char *suffix;
    /*
     * The keys of its group, beside "type" and "suffix" (which every
     * transform has); their values land in a struct of conf->size bytes,
     * handed to create() as settings.
     */
    const struct conf_table *conf;
    /* A new instance with settings (borrowed; may be NULL: defaults). */
    int (*create)(const void *settings, struct transform **out);
    /* Frees t; a running helper (exec's child) is killed and reaped. */
    void (*destroy)(struct transform *t);
    /*
     * A new file starts, or one resumes at a chunk boundary; whatever the
     * instance held of a previous file is dropped.
     */
    int (*begin)(struct transform *t);
    /*
     * Transform len bytes at in; last is set for the file's final call
     * (len may be 0 then; a 0-byte file is that one call).  *out and
     * *outlen receive the result, which stays valid until the next call
     * (it may point into in).  Returns 0 or a negative errno, with words
     * from error().
     */
    int (*process)(struct transform *t, const void *in, size_t len, int last,
                   const void **out, size_t *outlen);
    /* Optional: words for the last failure, "" if none.  Owned by t. */
    const char *(*error)(const struct transform *t);
};

/* Every transform starts with this. */
struct transform {
    const struct transform_ops *ops;
    /* Readable: a wait of its own (exec's child) ends with -ECANCELED,
     * the agent is stopping.  -1: none.  Set by the chain. */
    int cancel_fd;
};

/* What create() does first: t is of ops, with no cancel descriptor. */
static inline void transform_init(struct transform *t,
                                  const struct transform_ops *ops)
{
    t->ops = ops;
    t->cancel_fd = -1;
}

/*
 * One step of a chain as the configuration gives it.  conf_load() fills
 * these (struct conf's transforms) and owns them; type and suffix are the
 * values of the common keys.
 */
struct transform_spec {
    char *type;                      /* "gzip" */
    char *suffix;                    /* NULL: ops->suffix */
    const struct transform_ops *ops; /* found by type */
    void *settings;                  /* of ops->conf, NULL if it has none */
    int line;                        /* of its group in the file, or 0 */
};

/*
 * process()'s output buffer buf, of *cap bytes (NULL and 0 at first),
 * made to hold at least need bytes: buf itself when it does, else grown
 * with realloc() to need, its bytes kept, and *cap set.  NULL when out
 * of memory (buf is then as it was).
 */
void *transform_reserve(void *buf, size_t *cap, size_t need);

struct transform_chain;

/* The transform named name, or NULL. */
const struct transform_ops *transform_find(const char *name);

/* The i-th transform of the table, from 0, or NULL past its end. */
const struct transform_ops *transform_at(size_t i);

/* The names of every transform, comma-separated, for error messages. */
const char *transform_names(void);

/*
 * A chain of n steps (none: bytes pass as they are), each created from
 * its spec (borrowed: the specs must outlive the chain).  Returns 0, or
 * the first failing create()'s negative errno.  Freed with
 * transform_chain_free() (NULL is fine).
 */
int transform_chain_new(const struct transform_spec *specs, size_t n,
                        struct transform_chain **out);
void transform_chain_free(struct transform_chain *c);

/* Every step's cancel_fd (borrowed; -1: none, the default). */
void transform_chain_set_cancel(struct transform_chain *c, int fd);

/* The weakest resume of its steps; an empty chain is TRANSFORM_SAME. */
enum transform_resume transform_chain_resume(const struct transform_chain *c);

/* Whether every step keeps offsets (TRANSFORM_SAME): for older callers. */
int transform_chain_resumable(const struct transform_chain *c);

/*
 * What the chain does to a file, as text for the journal: each step that
 * changes bytes or names, with its suffix ("gzip:.gz,exec:.gpg"); "" for
 * a chain that changes neither.  A checkpoint is taken up again only by
 * a chain with the same text.  Returns 0, or -ENAMETOOLONG.
 */
#define TRANSFORM_ID_MAX 256
int transform_chain_id(const struct transform_chain *c, char *out,
                       size_t outlen);

/*
 * The target name of rel: rel with each step's suffix appended in order
 * ("report.csv" -> "report.csv.gz.gpg") into out.  Returns 0, or
 * -ENAMETOOLONG if it does not fit in outlen bytes.
 */
int transform_chain_name(const struct transform_chain *c, const char *rel,
                         char *out, size_t outlen);

/* A new file starts: begin() on every step, in order. */
int transform_chain_begin(struct transform_chain *c);

/* Run len bytes through every step; see transform_ops.process. */
int transform_chain_process(struct transform_chain *c, const void *in,
                            size_t len, int last, const void **out,
                            size_t *outlen);

/*
 * Words for the last failure of transform_chain_process() or _begin(),
 * naming the failing step ("exec: \"gpg\" exited with status 2: ..."),
 * or "" if there was none.  Owned by c, valid until its next call.
 */
const char *transform_chain_error(const struct transform_chain *c);


#endif
