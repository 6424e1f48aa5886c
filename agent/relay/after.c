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
#include "sftprelay/jwriter.h"
#include "sftprelay/log.h"
#include "sftprelay/path.h"
#include "sftprelay/source.h"

/* Files waiting at most: a worker delivers a few between two runs. */
#define AFTER_MAX 64
#define FULL_WAIT_MS 5000

struct waiting {
    char *rel;
    uint64_t seq;
};

struct after {
    enum after_how how;
    const char *dir;
    struct jwriter *w;
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

int after_new(const char *spec, struct jwriter *w, struct source *src,
              struct after **out)
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
    a->src = src;
    *out = a;
    return 0;
}

static void apply(struct after *a, const char *rel)
{
    struct source *s = a->src;
    int r;

    s->err[0] = '\0';
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
            apply(a, a->q[i].rel);
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

void after_delivered(struct after *a, const char *rel)
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
