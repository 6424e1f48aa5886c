/*
 * The watcher: finds files under source.path that are ready to be sent,
 * and only reports their paths; it never transfers.
 *
 * Recursive inotify: a file is ready when it is closed after writing or
 * moved into the tree, after settle_ms without another event for it.  New
 * folders are watched and scanned at once, so files written before the
 * watch existed are not missed.  A full scan runs at start-up, on inotify
 * queue overflow and every rescan_interval seconds; folders that could not
 * be watched (fs.inotify.max_user_watches) are rescanned every minute, or
 * every rescan_interval if that is shorter.
 * Symbolic links are never followed; names matching an exclude glob (files
 * and folders, by base name) are skipped.
 */
#ifndef SFTPRELAY_WATCH_H
#define SFTPRELAY_WATCH_H

#include <stddef.h>
#include <sys/stat.h>

struct loop;
struct watch;

struct watch_opts {
    const char *root;
    char *const *exclude;
    size_t n_exclude;
    int settle_ms;
    int rescan_interval; /* seconds; 0 = never */
    /*
     * Files under this folder (relative to root; "" the whole tree) are
     * reported by someone else when they are closed (the embedded
     * server's uploads): the watcher lets them settle first, as a
     * safety net, instead of reporting them at their close.  NULL: none.
     */
    const char *settle_under;
    /* A folder (relative to root) never watched nor scanned: where
     * source.after_delivery moves delivered files.  NULL: none. */
    const char *skip;
};

struct watch_cb {
    /*
     * rel (relative to root) is ready; st is its lstat(2).  Returns 0, or
     * a negative errno to stop the scan under way (the agent is stopping;
     * what was not reported is found by the next scan).
     */
    int (*found)(void *arg, const char *rel, const struct stat *st);
    void *arg;
};

/*
 * Watch o->root on loop l (both borrowed).  The first full scan is
 * watch_scan()'s job.  -ENOENT / -ENOTDIR if the root is missing.
 */
int watch_new(const struct watch_opts *o, struct loop *l,
              const struct watch_cb *cb, struct watch **out);

/*
 * Scan the whole tree now, adding watches as it goes.  Returns 0, or what
 * found() returned to stop it.
 */
int watch_scan(struct watch *w);

void watch_free(struct watch *w);

#endif
