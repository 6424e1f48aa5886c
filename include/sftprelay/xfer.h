/*
 * One file's transfer: source -> transform chain -> sink, as a state
 * machine (open the source, connect, open the target, re-hash what was
 * already sent, send, verify, commit).
 *
 * The transfer knows nothing of the journal: it reports each acknowledged
 * offset through the checkpoint callback and returns a result that the
 * scheduler records.
 */
#ifndef SFTPRELAY_XFER_H
#define SFTPRELAY_XFER_H

#include <stddef.h>
#include <stdint.h>

#include "sftprelay/sink.h"
#include "sftprelay/source.h"

struct journal_range;
struct progress;
struct ratelimit;
struct transform_chain;

/* How far a transfer got, for the checkpoint callback. */
struct xfer_mark {
    int64_t offset;        /* every byte the sink was given below it is on
                            * the target (sink durable()) */
    int64_t source_offset; /* the source bytes they came from */
    const char *token;     /* the sink's resume token (sink token()), or NULL */
    /* the running SHA-256s (digest.h) of the source bytes and of the bytes
     * on the target, each of as many bytes as it says (at most the
     * offsets above) */
    const char *sha256_state;
    const char *delivered_state; /* NULL: the same bytes as the source's */
    const char *chain; /* the chain's transform_chain_id() */
};

/* target.on_exists: what to do when the target has the file already. */
enum xfer_on_exists {
    XFER_OVERWRITE, /* replace it (atomically, where the sink can) */
    XFER_SKIP,      /* leave it; the file counts as delivered, "skipped" */
    XFER_RENAME,    /* deliver beside it: report.csv -> report.1.csv */
};

/* What a worker owns and reuses for every file. */
struct xfer_env {
    struct source *src;
    struct sink *sink;
    struct transform_chain *chain;
    const char *chain_id; /* its transform_chain_id(): "" changes nothing */
    void *buf; /* bufsize bytes: the chunk size */
    size_t bufsize;
    /* hashes the source beside the worker; NULL: the worker does */
    struct sidehash *hash;
    int cancel_fd;         /* readable: stop between chunks with -ECANCELED */
    struct ratelimit *rate; /* transfer.bandwidth_limit; NULL: none */
    /* the files being sent, where each transfer shows its file while it
     * runs (progress.h; not those of xfer_run_many()); NULL: none */
    struct progress *progress;
    enum xfer_on_exists on_exists;
    /* As the target makes bytes durable: record m (borrowed). */
    int (*checkpoint)(void *arg, const struct xfer_mark *m);
    void *arg;
};

/* env's chain_id, "" when it has none. */
static inline const char *xfer_chain_id(const struct xfer_env *env)
{
    return env->chain_id ? env->chain_id : "";
}

/* The file to send: the version the journal knows. */
struct xfer_job {
    const char *path; /* relative to the source root */
    int64_t size;
    int64_t mtime_ns;
    /* the journal's checkpoint: as struct xfer_mark */
    int64_t resume_offset;
    int64_t source_offset;
    const char *token;
    const char *stale_token; /* an earlier upload to throw away first */
    const char *sha256_state; /* as struct xfer_mark; NULL: none */
    const char *delivered_state;
    const char *chain; /* the chain that made the checkpoint, or NULL */
};

/* Longest name on the target a result holds. */
#define XFER_NAME_MAX 4096

struct xfer_result {
    char sha256[65];        /* hex, of the source file's bytes */
    char delivered_sha256[65]; /* hex, of the bytes on the target */
    /* where it landed if not at path (the transforms' suffixes, a free
     * name beside the target's), or "" */
    char placed[XFER_NAME_MAX];
    int renamed;            /* target.on_exists = "rename" chose placed */
    char etag[SINK_ETAG_MAX];   /* the target's tag of it, or "" */
    int skipped;            /* target.on_exists = "skip" left the target's */
    struct source_stat now; /* the source file as last seen */
    int64_t resumed_at;     /* where this attempt started */
    int64_t reread;         /* source bytes read again to rebuild the digest */
    int64_t sent;           /* bytes this attempt wrote */
    int target;             /* the error concerns the whole target */
    int source; /* the error concerns the source host (source.h) */
    char err[SINK_ERR_MAX];
};

/*
 * Send job.  Returns 0 once the file is in place on the target (or was
 * left alone: res->skipped), or:
 *   -ENOENT   the source file is gone (res->err says so);
 *   -ESTALE   it changed: res->now holds its new size and mtime;
 *   -ECANCELED the cancel descriptor fired; the upload can resume;
 *   -EAGAIN   the target asked to slow down: try again after a back-off;
 *   another negative errno, with res->err and res->target set.
 */
int xfer_run(struct xfer_env *env, const struct xfer_job *job,
             struct xfer_result *res);

/*
 * Whether xfer_run_many() can take these n jobs together: the sink has
 * put_many, target.on_exists is overwrite, the chain keeps bytes as they
 * are, none resumes, each is at most XFER_SMALL bytes and all fit in the
 * buffer.
 */
#define XFER_SMALL (64 * 1024)
int xfer_can_batch(const struct xfer_env *env, const struct xfer_job *jobs,
                   size_t n);

/*
 * Send n small files together (xfer_can_batch() said yes): each is read
 * whole into the buffer, checked unchanged, then all go to the sink's
 * put_many() with their requests in flight together.  r[i] and res[i]
 * are what xfer_run() would have returned for jobs[i].  Returns 0, or
 * -EOPNOTSUPP when the sink declined before doing anything (send them
 * one by one).
 */
int xfer_run_many(struct xfer_env *env, const struct xfer_job *jobs,
                  size_t n, struct xfer_result *res, int *r);

/* A big file as byte ranges over several connections (ranges.c). */
#define XFER_MAX_RANGES 16
struct xfer_ranges {
    int64_t split_size; /* files above this go as ranges; 0: never */
    int connections;    /* ranges of a new upload (transfer.workers) */
    /* to make each range's own sink and source */
    const struct sink_ops *sink_ops;
    const void *sink_settings;
    const struct source_ops *src_ops;
    const char *src_root;
    const void *src_settings;
    /* the ranges the journal recorded for this version, by start */
    const struct journal_range *recorded;
    int n_recorded;
    /* record a range's progress (the journal's writer); no lock held */
    int (*save)(void *arg, const struct journal_range *rg);
    void *arg;
};

/* Whether job goes as ranges: above split_size, and the sink and the
 * chain allow it. */
int xfer_can_range(const struct xfer_env *env, const struct xfer_job *job,
                   const struct xfer_ranges *xr);

/*
 * Send job as ranges, each over its own connection from its recorded
 * progress (or as xr->connections new ranges), then commit it over
 * env->sink.  Returns as xfer_run() does; progress stays recorded.
 */
int xfer_run_ranged(struct xfer_env *env, const struct xfer_job *job,
                    const struct xfer_ranges *xr, struct xfer_result *res);

#endif
