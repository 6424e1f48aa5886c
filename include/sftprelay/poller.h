/*
 * The poller: discovery for a source that cannot be watched (a remote
 * SFTP server, object storage).  On a thread of its own, with a source
 * instance (one connection) of its own, it lists the whole tree every
 * poll_interval seconds and remembers each file's size and modification
 * time and in how many listings in a row it was seen unchanged; a file
 * is reported once that count reaches stable_polls (so a file still being
 * written is not sent), and again only if it changes and settles anew.
 * A file missing from a complete listing is forgotten.  Memory: one entry
 * per file (its path and 40 bytes), twice during a listing.
 *
 * A listing of more than max_files files (source.max_files; the source
 * may count folders and skipped names too) stops and fails, so a hostile
 * server's endless listing cannot exhaust memory.
 *
 * A listing that fails leaves what is known as it was.  When the source
 * host is down (-EHOSTDOWN) the poller says so once, tries again after a
 * backoff that grows to max(poll_interval, 60 s), and says when it is back.
 * It only reports paths; it never transfers.
 */
#ifndef SFTPRELAY_POLLER_H
#define SFTPRELAY_POLLER_H

#include <stddef.h>

struct poller;
struct source_ops;
struct source_stat;

struct poller_opts {
    const struct source_ops *ops; /* with list() */
    const char *root;             /* source.path */
    const void *settings;         /* the source's */
    char *const *exclude;         /* source.exclude */
    size_t n_exclude;
    const char *skip;       /* after_delivery's move folder, or NULL */
    int interval_s;         /* source.poll_interval */
    int stable_polls;       /* source.stable_polls */
    size_t max_files;       /* source.max_files; 0: no limit */
    int backoff_initial_s;  /* the first retry while the host is down */
};

struct poller_cb {
    /*
     * rel is ready (poller thread; or poller_list_once()'s).  A negative
     * return stops the listing under way (the agent is stopping).
     */
    int (*found)(void *arg, const char *rel, const struct source_stat *st);
    void *arg;
};

/*
 * A poller (not started); strings in o are borrowed and must outlive it.
 * Freed with poller_free().
 */
int poller_new(const struct poller_opts *o, const struct poller_cb *cb,
               struct poller **out);

/*
 * One round on the calling thread, as the thread runs it: list, then
 * report what became stable.  0, the listing's error, or found()'s.
 * (The thread's work; tests call it directly.)
 */
int poller_poll(struct poller *p);

/* Start the thread: the first listing at once. */
int poller_start(struct poller *p);

/*
 * sftprelayd --once, on the calling thread: list stable_polls times,
 * interval_s apart (the first at once), and report the files every one
 * of those listings saw with the same size and mtime, so a file still
 * being written is left for a later run.  With stable_polls 1: one
 * listing, every file.  cancel_fd (or -1) cuts it short: -ECANCELED.
 */
int poller_list_once(struct poller *p, int cancel_fd);

/* Forget what was reported: every file is reported again once stable
 * (intake lost offers while the journal failed). Any thread. */
void poller_rescan(struct poller *p);

/* Stop the thread (a listing under way is cancelled) and free.  NULL is
 * fine. */
void poller_free(struct poller *p);

#endif
