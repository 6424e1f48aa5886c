/*
 * source.after_delivery: what becomes of a source file once it is
 * delivered: "keep" (the default), "delete", or "move:<dir>" (renamed to
 * <dir>/<its path>, <dir> relative to source.path, made if missing; the
 * discoverers never look inside it).
 *
 * A file is removed or moved only once the journal has recorded the
 * delivery of that very version (jwriter_results(), then the row read
 * back: delivered, same size and mtime, written or renamed rather than
 * skipped), and only if the source still holds that version: a crash in
 * between can only leave it kept, never lost, and a file rewritten
 * meanwhile (the journal answered "changed while it was sent") is kept
 * for its next delivery.  A file the target already had (on_exists =
 * "skip") is kept: its bytes never reached the target.  Each worker owns one
 * struct after and applies it on its own source (its own connection),
 * between files; errors are logged with the path and change nothing of
 * the delivery.
 */
#ifndef SFTPRELAY_AFTER_H
#define SFTPRELAY_AFTER_H

#include <stdint.h>

struct after;
struct journal;
struct jwriter;
struct source;

enum after_how { AFTER_KEEP, AFTER_DELETE, AFTER_MOVE };

/*
 * Parse an after_delivery value: its enum after_how, and for "move:" the
 * folder in *dir (pointing into spec; checked by path_rel_check()).
 * -EINVAL if it is none of them.
 */
int after_parse(const char *spec, const char **dir);

/*
 * What spec says, for the files w (borrowed) records, j (borrowed: the
 * worker's own connection) reads back and src (borrowed) holds.  *out is
 * NULL for "keep": every call below accepts NULL.  Freed with
 * after_free().
 */
int after_new(const char *spec, struct jwriter *w, struct journal *j,
              struct source *src, struct after **out);

/* The delivery of rel at this size and mtime was just queued to the
 * journal writer. */
void after_delivered(struct after *a, const char *rel, int64_t size,
                     int64_t mtime_ns);

/* Remove or move every file whose delivery the journal has recorded. */
void after_run(struct after *a);

/* Wait up to timeout_ms for the journal, then after_run() (stopping). */
void after_finish(struct after *a, int timeout_ms);

void after_free(struct after *a);

#endif
