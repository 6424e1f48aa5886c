/*
 * The scheduler: transfer.workers threads, each with its own journal
 * connection (for claims only), sink (one connection to the target, kept
 * between files), source, transform chain and chunk buffer.  A worker
 * claims the next due row, runs the transfer, and hands the result to the
 * journal writer: delivered, queued again with backoff, or failed.
 *
 * A failure that concerns the target as a whole marks the target down: the
 * file goes back to the queue, due at once, without counting an attempt,
 * and every worker waits while one of them probes the target (it connects
 * again) at a jittered interval that grows from transfer.backoff_initial
 * to target.probe_interval.  The probe that succeeds wakes them all.
 * The same holds for the source host (a remote source: the error is
 * -EHOSTDOWN, source.h), probed with the source's connect() at most every
 * source.poll_interval.
 * Exponential backoff (transfer.backoff_*) is for errors of one file.
 *
 * Locking: sched's one mutex guards its own fields only (stopping, the
 * target's state, the wake-up count, the ids workers hold).  It is never
 * held while SQLite, the network or the filesystem runs, nor while
 * another lock is taken.  See doc/concurrency.md.
 */
#ifndef SFTPRELAY_SCHED_H
#define SFTPRELAY_SCHED_H

struct conf;
struct jwriter;
struct progress;
struct sched;
struct sink_ops;
struct source_ops;

struct sched_opts {
    const struct conf *c;            /* borrowed; must outlive the sched */
    const struct sink_ops *sink;     /* found by name by the caller */
    const struct source_ops *source; /* likewise */
    /* Try every queued file once and then stop, instead of running until
     * sched_stop(); also when the journal cannot be claimed from. */
    int once;
    /* Seconds between sweeps for rows left sending by no worker (0: 60). */
    int sweep_s;
    /* Borrowed, or NULL: where workers show the files they send
     * (progress.h); it may outlive the sched (SIGHUP). */
    struct progress *progress;
};

/*
 * A scheduler (not started).  Errors: a transform's create() failing,
 * -ENOMEM, with a message logged.  Freed with sched_free().
 */
int sched_new(const struct sched_opts *o, struct sched **out);

/* Start the workers; their results go to w (borrowed). */
int sched_start(struct sched *s, struct jwriter *w);

/* New work may be due: wake idle workers.  Any thread; never blocks. */
void sched_notify(struct sched *s);

/*
 * A descriptor that becomes readable once every worker has stopped (in
 * once mode: when no queued file is left to try).
 */
int sched_done_fd(const struct sched *s);

/*
 * Stop: cancel transfers in flight (their checkpoints are kept; the rows
 * are queued again), join.  Returns within a few seconds whatever the
 * workers are doing.
 */
void sched_stop(struct sched *s);

void sched_free(struct sched *s);

#endif
