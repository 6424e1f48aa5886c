/*
 * The files being sent now, for people: the agent's in-memory table of
 * them, with how far each got and how fast it goes.
 *
 * A transfer adds its file when it starts (progress_begin()), moves it
 * at each chunk (progress_add()) and takes it away when it ends
 * (progress_end()).  A big file sent as byte ranges over several
 * connections is one row, which every range's thread moves: the row
 * holds the sum.  Small files sent together in one batch (xfer.h,
 * xfer_run_many()) are not shown: each is at most 64 KiB and the batch
 * goes faster than anyone refreshes a screen.
 *
 * The rate is of the source bytes over the last PROGRESS_WINDOW_MS, not
 * since the start, so a file that resumed or stalled shows what it does
 * now; it is 0 (unknown) for the first PROGRESS_RATE_MIN_MS of a file.
 *
 * Readers take a copy with progress_snapshot() and print or store it with
 * no lock held.  The agent writes that copy into the journal's agent
 * table (key "sending", progress_encode()) at most once a second while
 * files are being sent, for `sftprelay status`, which reads it back with
 * progress_decode().
 *
 * Lock: progress.lock guards the table and every row's figures; a leaf,
 * held only to copy or add numbers, never across I/O.  See
 * doc/concurrency.md.
 */
#ifndef SFTPRELAY_PROGRESS_H
#define SFTPRELAY_PROGRESS_H

#include <stddef.h>
#include <stdint.h>

#define PROGRESS_WINDOW_MS 10000  /* the rate is over this much time */
#define PROGRESS_RATE_MIN_MS 1000 /* and over at least this much */

struct progress;
struct progress_file;

/* One file as a snapshot gives it. */
struct progress_entry {
    char *path;           /* malloc'd: the path relative to source.path */
    int64_t size;         /* source bytes */
    int64_t sent;         /* source bytes read and sent so far */
    int64_t target_bytes; /* bytes written to the target (transformed) */
    int64_t rate;         /* source bytes per second; 0: not known */
    int64_t started_at;   /* Unix seconds */
};

/*
 * A new, empty table.  clock_ms gives the time rates are measured in
 * (NULL: mono_ms(); tests give their own).  Freed with progress_free(),
 * once no file is in it.  0, or -ENOMEM.
 */
int progress_new(int64_t (*clock_ms)(void), struct progress **out);
void progress_free(struct progress *p);

/*
 * Show path (copied), of size source bytes, as being sent, from byte 0.
 * Returns its row, which the caller ends with progress_end(), or NULL:
 * p is NULL (nothing is shown) or memory ran out (this file is not
 * shown).  Every function below accepts a NULL row and does nothing.
 */
struct progress_file *progress_begin(struct progress *p, const char *path,
                                     int64_t size);

/*
 * The transfer resumes: sent source bytes and target_bytes are already
 * there.  The rate starts over from here (what was sent before is not
 * counted as sent now).
 */
void progress_from(struct progress_file *pf, int64_t sent,
                   int64_t target_bytes);

/* sent more source bytes went out, as target_bytes; any thread. */
void progress_add(struct progress_file *pf, int64_t sent, int64_t target_bytes);

/* The transfer ended: the row goes and is freed. */
void progress_end(struct progress_file *pf);

/*
 * Copy the table out (in the order the files started), rates measured
 * now: *out (free it with progress_entries_free()) holds *n entries.
 * p may be NULL (none).  0, or -ENOMEM with *out NULL and *n 0.
 */
int progress_snapshot(struct progress *p, struct progress_entry **out,
                      size_t *n);
void progress_entries_free(struct progress_entry *e, size_t n);

/* Seconds until e is sent at its rate (rounded up), or -1: not known. */
int64_t progress_eta(const struct progress_entry *e);

/*
 * The entries as the journal's "sending" value (sftprelay-journal(5)):
 * one line per file, "SIZE SENT TARGET_BYTES RATE STARTED_AT PATH", the
 * path with '%', control bytes and DEL as %XX; "" for none.  *out is
 * malloc'd.  0, or -ENOMEM.
 */
int progress_encode(const struct progress_entry *e, size_t n, char **out);

/*
 * The entries in text made by progress_encode(): *out (free it with
 * progress_entries_free()) holds *n.  0, -EPROTO when text is not such
 * (nothing is returned), or -ENOMEM.
 */
int progress_decode(const char *text, struct progress_entry **out, size_t *n);

#endif
