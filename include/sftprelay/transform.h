/*
 * Transforms: steps a file's bytes pass through between the source and
 * the sink (compression, encryption, ...).  A transform is a const struct
 * transform_ops; adding one is one file with its ops and its table of
 * keys (read from a section named after it), one line in the table in
 * agent/transforms/transform.c, and its name in transfer.transforms.
 *
 * A chain is built per worker and reused for every file it sends.
 */
#ifndef SFTPRELAY_TRANSFORM_H
#define SFTPRELAY_TRANSFORM_H

#include <stddef.h>

struct conf_table;
struct transform;

struct transform_ops {
    const char *name;
    /*
     * Whether output byte i is input byte i.  Only then can an interrupted
     * upload resume from its checkpoint; otherwise it starts over.
     */
    int preserves_offsets;
    /* Its keys, in the section named after it; values land in settings. */
    const struct conf_table *conf;
    /* A new instance with settings (borrowed; may be NULL: defaults). */
    int (*create)(const void *settings, struct transform **out);
    void (*destroy)(struct transform *t);
    /* A new file starts. */
    int (*begin)(struct transform *t);
    /*
     * Transform len bytes at in; last is set for the file's final call
     * (len may be 0 then).  *out and *outlen receive the result, which
     * stays valid until the next call (it may point into in).
     */
    int (*process)(struct transform *t, const void *in, size_t len, int last,
                   const void **out, size_t *outlen);
};

/* Every transform starts with this. */
struct transform {
    const struct transform_ops *ops;
};

struct transform_chain;

/* The transform named name, or NULL. */
const struct transform_ops *transform_find(const char *name);

/* The i-th transform of the table, from 0, or NULL past its end. */
const struct transform_ops *transform_at(size_t i);

/* The names of every transform, comma-separated, for error messages. */
const char *transform_names(void);

/*
 * A chain of the named transforms, in order (none: bytes pass as they
 * are), names[i] created with settings[i] (settings may be NULL: every
 * step with its defaults).  An unknown name is -ENOENT with *bad set to
 * it.  Freed with transform_chain_free().
 */
int transform_chain_new(char *const *names, const void *const *settings,
                        size_t n, struct transform_chain **out,
                        const char **bad);
void transform_chain_free(struct transform_chain *c);

/* Whether every step preserves offsets (resume is possible). */
int transform_chain_resumable(const struct transform_chain *c);

int transform_chain_begin(struct transform_chain *c);

/* Run len bytes through every step; see transform_ops.process. */
int transform_chain_process(struct transform_chain *c, const void *in,
                            size_t len, int last, const void **out,
                            size_t *outlen);

extern const struct transform_ops transform_identity;

#endif
