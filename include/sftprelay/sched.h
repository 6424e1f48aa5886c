/*
 * The scheduler: transfer.workers threads, each with its own journal
 * connection, sink (one connection to the target, kept between files),
 * transform chain and chunk buffer.  A worker claims the next due row,
 * runs the transfer, and records the result: delivered, queued again with
 * backoff, or failed.
 *
 * A failure that concerns the target as a whole pauses every worker for
 * a backoff delay (no busy loop while the target is down) and does not
 * count against the file's attempts.
 */
#ifndef SFTPRELAY_SCHED_H
#define SFTPRELAY_SCHED_H

struct conf;
struct sched;

/*
 * A scheduler for c (borrowed; must outlive it).  once: try every queued
 * file once and then stop, instead of running until sched_stop().
 * Errors: -ENOENT (unknown target.type or transform), -ENOMEM, ...
 * with a message logged.  Freed with sched_free().
 */
int sched_new(const struct conf *c, int once, struct sched **out);

/* Start the workers. */
int sched_start(struct sched *s);

/* New work may be due: wake idle workers. */
void sched_notify(struct sched *s);

/*
 * A descriptor that becomes readable once every worker has stopped (in
 * once mode: when no queued file is left to try).
 */
int sched_done_fd(const struct sched *s);

/* Stop: cancel transfers in flight (they keep their checkpoints), join. */
void sched_stop(struct sched *s);

void sched_free(struct sched *s);

#endif
