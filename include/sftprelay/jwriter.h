/*
 * The journal writer: the one thread of the agent that changes the
 * journal, but for claims (workers claim on their own connections).
 *
 * Every other thread hands it changes through the functions below, which
 * only queue and return; none waits for SQLite.  The writer applies what
 * is queued in one transaction (group commit): every pending result of
 * the workers, then up to a few thousand offers from intake.  A commit
 * that marks a file delivered is synced to disk (synchronous = FULL); the
 * others are only ordered.
 *
 * Two queues: results (checkpoints, delivered, requeue, fail, agent facts)
 * are few, never refused and never dropped; offers (files found, uploads)
 * may be many.  While the journal takes writes, jwriter_offer() blocks
 * once OFFERS_MAX are waiting, until the writer has room (back-pressure
 * on the scan).  While it refuses writes (disk full, read-only, locked by
 * another process for over 10 s) the writer keeps everything queued,
 * retries every few seconds, and says once what is wrong and which file;
 * offers beyond OFFERS_KEEP (50,000) are then dropped and reported through
 * on_commit's `lost` so that intake can rescan the tree once the journal
 * takes writes again.
 *
 * Locks: one mutex guards the queues; it is never held while SQLite runs
 * nor while on_commit() is called.  See doc/concurrency.md.
 */
#ifndef SFTPRELAY_JWRITER_H
#define SFTPRELAY_JWRITER_H

#include <stddef.h>
#include <stdint.h>

struct journal_file;
struct jwriter;

/* After each commit, from the writer thread, with no lock held. */
struct jwriter_cb {
    /*
     * queued: rows that became due (new files, files queued again);
     * recovered: the journal took writes again after failing;
     * lost: offers were dropped while it failed (rescan the tree).
     */
    void (*on_commit)(void *arg, int queued, int recovered, int lost);
    void *arg;
};

struct jwriter_stats {
    int64_t offers;  /* offers written */
    int64_t commits; /* transactions committed */
    int64_t waiting; /* changes queued now */
    int failing;     /* the last commit failed */
};

/*
 * Open a connection to the journal at path and start the writer thread.
 * cb is copied.  Freed with jwriter_free(), which writes what is queued.
 */
int jwriter_new(const char *path, const struct jwriter_cb *cb,
                struct jwriter **out);

/* What an offer says of a file. */
enum jwriter_offer_kind {
    JW_FOUND,      /* found on the source (journal_offer()) */
    JW_UPLOADED,   /* uploaded whole by peer: its unfinished mark goes */
    JW_UNFINISHED, /* left unfinished by peer (journal_partial_add()) */
};

/*
 * Queue an offer of path (peer: who uploaded it, or NULL).  Blocks while
 * the queue is full and the journal takes writes; returns -EINTR at once
 * when stop_fd (borrowed, or -1) becomes readable, -ENOBUFS if the offer
 * was dropped (the journal fails and too many are kept), -ENOMEM, or 0.
 * The writer logs "queued PATH" once the row is committed.
 */
int jwriter_offer(struct jwriter *w, enum jwriter_offer_kind kind,
                  const char *path, int64_t size, int64_t mtime_ns, int64_t now,
                  const char *peer, int stop_fd);

/* A range's progress (journal_range_save()), coalesced while queued. */
struct journal_range;
int jwriter_range(struct jwriter *w, const struct journal_file *f,
                  const struct journal_range *rg);

/* Results of a transfer, for the version f describes (see journal.h). */
struct journal_mark;
struct journal_delivery;
int jwriter_checkpoint(struct jwriter *w, const struct journal_file *f,
                       const struct journal_mark *m);
int jwriter_delivered(struct jwriter *w, const struct journal_file *f,
                      const struct journal_delivery *d, int64_t now,
                      int64_t next_attempt);
int jwriter_requeue(struct jwriter *w, const struct journal_file *f,
                    int64_t next_attempt, const char *error, int count_attempt,
                    int restart);
/* The file changed: record its new size and mtime and queue it again. */
int jwriter_restat(struct jwriter *w, const struct journal_file *f,
                   int64_t size, int64_t mtime_ns, int64_t next_attempt,
                   const char *error);
int jwriter_fail(struct jwriter *w, const struct journal_file *f,
                 const char *error);

/*
 * Housekeeping: journal_agent_set(), journal_prune(), journal_sweep().
 * A value of key still queued is replaced by the new one (and its time).
 */
int jwriter_agent_set(struct jwriter *w, const char *key, const char *value,
                      int64_t now);
int jwriter_prune(struct jwriter *w, int64_t before);
int jwriter_sweep(struct jwriter *w, int64_t now, int64_t before,
                  const int64_t *held, size_t n_held);

/*
 * Wait until the queues are empty and the last batch is committed, logged
 * and reported to on_commit(): 0, or -ETIMEDOUT after timeout_ms (the
 * journal fails, or changes keep coming).
 */
int jwriter_flush(struct jwriter *w, int timeout_ms);

void jwriter_stats(struct jwriter *w, struct jwriter_stats *out);

/*
 * Results are counted as they are queued (*posted: how many so far) and
 * committed in that order (*recorded: how many of them are in the
 * journal).  Once *recorded reaches the *posted read after a result was
 * queued, that result is in the journal (after_delivery acts on a file
 * only then).  Either pointer may be NULL.
 */
void jwriter_results(struct jwriter *w, uint64_t *posted, uint64_t *recorded);

/*
 * Stop: write what is queued (giving up after a few seconds if the journal
 * refuses writes: rows left sending are queued again at the next start),
 * join the thread, close.  NULL is fine.
 */
void jwriter_free(struct jwriter *w);

#endif
