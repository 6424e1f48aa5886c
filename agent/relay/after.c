/*
 * After delivery (after.h): a worker's short list of delivered files
 * waiting for the journal to record them, each with the count of results
 * queued when its delivery was (jwriter_results()).
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sftprelay/after.h"
#include "sftprelay/journal.h"
#include "sftprelay/jwriter.h"
#include "sftprelay/log.h"
#include "sftprelay/path.h"
#include "sftprelay/source.h"

/* Files waiting at most: a worker delivers a few between two runs. */
#define AFTER_MAX 64
#define FULL_WAIT_MS 5000

struct waiting {
    char *rel;
    int64_t size, mtime_ns; /* the version delivered */
    uint64_t seq;
};

struct after {
    enum after_how how;
    const char *dir;
    struct jwriter *w;
    struct journal *j;
    struct source *src;
    struct waiting q[AFTER_MAX];
    int n;
};

int after_parse(const char *spec, const char **dir)
{
    *dir = NULL;
    if (strcmp(spec, "keep") == 0)
        return AFTER_KEEP;
    if (strcmp(spec, "delete") == 0)
        return AFTER_DELETE;
    if (strncmp(spec, "move:", 5) == 0 && path_rel_check(spec + 5) == 0) {
        *dir = spec + 5;
        return AFTER_MOVE;
    }
    return -EINVAL;
}

int after_new(const char *spec, struct jwriter *w, struct journal *j,
              struct source *src, struct after **out)
{
    const char *dir;
    int how = after_parse(spec, &dir);
    struct after *a;

    *out = NULL;
    if (how < 0)
        return how;
    if (how == AFTER_KEEP)
        return 0;
    a = calloc(1, sizeof(*a));
    if (a == NULL)
        return -ENOMEM;
    a->how = how;
    a->dir = dir;
    a->w = w;
    a->j = j;
    a->src = src;
    *out = a;
    return 0;
}

/*
 * Whether w may go: the journal says that version is delivered (and was
 * written, not skipped), and the source still holds it.  Why not, in
 * words, into why.
 */
static int still_ours(struct after *a, const struct waiting *w,
                      const char **why)
{
    struct source *s = a->src;
    struct journal_file f;
    struct source_file *sf = NULL;
    struct source_stat st;
    int ok, r;

    *why = "the journal cannot tell its state";
    if (journal_get(a->j, w->rel, &f) < 0)
        return 0;
    ok = f.state == JS_DELIVERED && f.size == w->size &&
         f.mtime_ns == w->mtime_ns;
    *why = ok ? NULL : "it changed and is queued again";
    if (ok && f.outcome && strcmp(f.outcome, "skipped") == 0) {
        ok = 0;
        *why = "the target had a file of that name (on_exists = skip)";
    }
    journal_file_clear(&f);
    if (!ok)
        return 0;
    r = s->ops->open(s, w->rel, &sf, &st);
    if (r == 0)
        s->ops->close(sf);
    *why = r < 0 ? "it cannot be opened" : "it changed since";
    return r == 0 && st.size == w->size && st.mtime_ns == w->mtime_ns;
}

static void apply(struct after *a, const struct waiting *w)
{
    struct source *s = a->src;
    const char *rel = w->rel, *why;
    int r;

    s->err[0] = '\0';
    if (!still_ours(a, w, &why)) {
        log_info("%s: kept on the source (after_delivery): %s", rel, why);
        return;
    }
    if (a->how == AFTER_DELETE)
        r = s->ops->remove ? s->ops->remove(s, rel) : -EOPNOTSUPP;
    else
        r = s->ops->move ? s->ops->move(s, rel, a->dir) : -EOPNOTSUPP;
    if (r == 0)
        log_info("%s: delivered, %s", rel,
                 a->how == AFTER_DELETE ? "removed from the source"
                                        : "moved on the source");
    else
        log_error("%s: delivered, but %s it on the source failed: %s; it "
                  "stays there",
                  rel, a->how == AFTER_DELETE ? "removing" : "moving",
                  source_error(s, r));
}

void after_run(struct after *a)
{
    uint64_t done;
    int i, k = 0;

    if (a == NULL || a->n == 0)
        return;
    jwriter_results(a->w, NULL, &done);
    for (i = 0; i < a->n; i++) {
        if (a->q[i].seq <= done) {
            apply(a, &a->q[i]);
            free(a->q[i].rel);
        } else {
            a->q[k++] = a->q[i];
        }
    }
    a->n = k;
}

void after_finish(struct after *a, int timeout_ms)
{
    if (a == NULL || a->n == 0)
        return;
    jwriter_flush(a->w, timeout_ms);
    after_run(a);
}

void after_delivered(struct after *a, const char *rel, int64_t size,
                     int64_t mtime_ns)
{
    char *copy;

    if (a == NULL)
        return;
    if (a->n == AFTER_MAX)
        after_finish(a, FULL_WAIT_MS);
    copy = a->n < AFTER_MAX ? strdup(rel) : NULL;
    if (copy == NULL) {
        log_error("%s: delivered; kept on the source (%s)", rel,
                  a->n < AFTER_MAX ? "out of memory"
                                   : "the journal is not recording");
        return;
    }
    a->q[a->n].rel = copy;
    a->q[a->n].size = size;
    a->q[a->n].mtime_ns = mtime_ns;
    jwriter_results(a->w, &a->q[a->n].seq, NULL);
    a->n++;
}

void after_free(struct after *a)
{
    int i;

    if (a == NULL)
        return;
    for (i = 0; i < a->n; i++)
        free(a->q[i].rel);
    free(a);
}
