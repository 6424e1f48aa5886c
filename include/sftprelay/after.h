/*
 * source.after_delivery: what becomes of a source file once it is
 * delivered: "keep" (the default), "delete", or "move:<dir>" (renamed to
 * <dir>/<its path>, <dir> relative to source.path, made if missing; the
 * discoverers never look inside it).
 *
 * A file is removed or moved only after the journal has recorded its
 * delivery (jwriter_results()), so that a crash in between can only
 * leave it kept, never lost: at the next start it is found again, and
 * the journal knows that version is delivered.  Each worker owns one
 * struct after and applies it on its own source (its own connection),
 * between files; errors are logged with the path and change nothing of
 * the delivery.
 */
#ifndef SFTPRELAY_AFTER_H
#define SFTPRELAY_AFTER_H

#include <stdint.h>

struct after;
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
 * What spec says, for the files w (borrowed) records and src (borrowed)
 * holds.  *out is NULL for "keep": every call below accepts NULL.
 * Freed with after_free().
 */
int after_new(const char *spec, struct jwriter *w, struct source *src,
              struct after **out);

/* rel's delivery was just queued to the journal writer. */
void after_delivered(struct after *a, const char *rel);

/* Remove or move every file whose delivery the journal has recorded. */
void after_run(struct after *a);

/* Wait up to timeout_ms for the journal, then after_run() (stopping). */
void after_finish(struct after *a, int timeout_ms);

void after_free(struct after *a);

#endif
