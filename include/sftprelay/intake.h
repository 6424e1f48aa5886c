/*
 * Intake: where every discoverer hands the paths it finds (the inotify
 * watcher and its scans, the embedded server's uploads).  Intake alone
 * offers them to the journal, through the journal writer (jwriter.h),
 * which batches them into group commits; after each commit that queued
 * something, intake wakes the scheduler's idle workers.
 *
 * While the journal refuses writes, the writer keeps what it can; when it
 * has had to drop offers, intake asks for a scan of the whole tree once
 * the journal takes writes again (rescan_fd becomes readable), so that
 * nothing found is lost.
 *
 * intake_found() is for the thread that runs the watcher (or the poller:
 * intake_listed()); the upload calls are for any thread.  None of them
 * waits for SQLite; each may wait for room in the writer's queue (which
 * the writer keeps emptying), and intake_found() gives up that wait when stop_fd becomes readable.
 */
#ifndef SFTPRELAY_INTAKE_H
#define SFTPRELAY_INTAKE_H

#include <stddef.h>
#include <sys/stat.h>

struct intake;
struct jwriter;
struct sched;

struct intake_opts {
    const char *journal; /* the journal's file */
    /* Uploads: server.root below source.path ("" if the same), and the
     * source's exclude globs (the watcher applies them to what it finds). */
    const char *upload_prefix;
    char *const *exclude;
    size_t n_exclude;
    int stop_fd; /* readable: intake_found() stops waiting (-1: none) */
};

/*
 * Start intake and its journal writer; wake s (borrowed; may be NULL)
 * after commits that queued files.  Strings in o are borrowed and must
 * outlive it.  Freed with intake_free().
 */
int intake_new(const struct intake_opts *o, struct sched *s,
               struct intake **out);

/* The journal writer, for the scheduler's results (owned by intake). */
struct jwriter *intake_writer(struct intake *in);

/*
 * rel (relative to source.path) is ready; st is its lstat(2).  Returns 0,
 * or -EINTR when stop_fd became readable: the caller stops its scan.
 */
int intake_found(struct intake *in, const char *rel, const struct stat *st);

/* The same for a file a polled source listed (poller.h), on the thread
 * that runs the poller (one thread calls intake_found() or this). */
struct source_stat;
int intake_listed(struct intake *in, const char *rel,
                  const struct source_stat *st);

/* rel (relative to server.root) was uploaded whole, or left unfinished. */
void intake_uploaded(struct intake *in, const char *rel, const struct stat *st,
                     const char *peer);
void intake_abandoned(struct intake *in, const char *rel, const struct stat *st,
                      const char *peer);

/*
 * A descriptor that becomes readable when the tree must be scanned again;
 * intake_rescan_ack() empties it.
 */
int intake_rescan_fd(const struct intake *in);
void intake_rescan_ack(struct intake *in);

/* Write what is queued and stop the writer.  NULL is fine. */
void intake_free(struct intake *in);

#endif
