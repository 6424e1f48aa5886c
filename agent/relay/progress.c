/*
 * The files being sent now (progress.h).
 *
 * Each row keeps a short history of how far it got: a sample (time,
 * source bytes sent) at most every SAMPLE_MS, the newest one moved by
 * every progress_add() until SAMPLE_MS have passed since it began.  The
 * rate is what was sent since the window's start, where the history
 * says how far the file was then, over the window's length: exact at
 * the samples, off by at most one sample's bytes between them.  SAMPLES
 * of them span more than the window, so the window's start is always
 * in it once the file has been sent for that long.
 *
 * Lock: progress.lock (a leaf) guards rows and every row's fields but
 * path and started_at, which are set before the row is in the table.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sftprelay/loop.h"
#include "sftprelay/progress.h"
#include "sftprelay/text.h"

#define SAMPLE_MS 250
#define SAMPLES 64 /* SAMPLES * SAMPLE_MS > PROGRESS_WINDOW_MS */

struct sample {
    int64_t ms;   /* on p->clock */
    int64_t sent; /* source bytes sent by then */
};

struct progress_file {
    struct progress *p;
    char *path;
    int64_t size, started_at;
    /* Guarded by p->lock. */
    int64_t sent, target_bytes;
    struct sample hist[SAMPLES]; /* a ring: n samples from first */
    int first, n;
    int64_t newest_born; /* when the newest sample began */
};

struct progress {
    int64_t (*clock_ms)(void);
    pthread_mutex_t lock;
    struct progress_file **rows; /* lock: in the order they began */
    size_t n, cap;
};

int progress_new(int64_t (*clock_ms)(void), struct progress **out)
{
    struct progress *p = calloc(1, sizeof(*p));

    *out = NULL;
    if (p == NULL)
        return -ENOMEM;
    p->clock_ms = clock_ms ? clock_ms : mono_ms;
    pthread_mutex_init(&p->lock, NULL);
    *out = p;
    return 0;
}

void progress_free(struct progress *p)
{
    size_t i;

    if (p == NULL)
        return;
    for (i = 0; i < p->n; i++) { /* a caller that forgot progress_end() */
        free(p->rows[i]->path);
        free(p->rows[i]);
    }
    free(p->rows);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

/* The history starts again at (ms, pf->sent).  Lock held. */
static void restart_history(struct progress_file *pf, int64_t ms)
{
    pf->first = 0;
    pf->n = 1;
    pf->hist[0] = (struct sample){.ms = ms, .sent = pf->sent};
    pf->newest_born = ms;
}

struct progress_file *progress_begin(struct progress *p, const char *path,
                                     int64_t size)
{
    struct progress_file *pf, **rows;
    size_t cap;

    if (p == NULL)
        return NULL;
    pf = calloc(1, sizeof(*pf));
    if (pf)
        pf->path = strdup(path);
    if (pf == NULL || pf->path == NULL) {
        free(pf);
        return NULL;
    }
    pf->p = p;
    pf->size = size;
    pf->started_at = (int64_t)time(NULL);
    restart_history(pf, p->clock_ms());
    pthread_mutex_lock(&p->lock);
    if (p->n == p->cap) {
        cap = p->cap ? 2 * p->cap : 8;
        rows = realloc(p->rows, cap * sizeof(*rows));
        if (rows == NULL) {
            pthread_mutex_unlock(&p->lock);
            free(pf->path);
            free(pf);
            return NULL;
        }
        p->rows = rows;
        p->cap = cap;
    }
    p->rows[p->n++] = pf;
    pthread_mutex_unlock(&p->lock);
    return pf;
}

void progress_from(struct progress_file *pf, int64_t sent, int64_t target_bytes)
{
    int64_t now;

    if (pf == NULL)
        return;
    now = pf->p->clock_ms();
    pthread_mutex_lock(&pf->p->lock);
    pf->sent = sent;
    pf->target_bytes = target_bytes;
    restart_history(pf, now);
    pthread_mutex_unlock(&pf->p->lock);
}

void progress_add(struct progress_file *pf, int64_t sent, int64_t target_bytes)
{
    struct sample *s;
    int64_t now;

    if (pf == NULL)
        return;
    now = pf->p->clock_ms();
    pthread_mutex_lock(&pf->p->lock);
    pf->sent += sent;
    pf->target_bytes += target_bytes;
    if (now - pf->newest_born >= SAMPLE_MS) {
        if (pf->n == SAMPLES) { /* the oldest goes */
            pf->first = (pf->first + 1) % SAMPLES;
            pf->n--;
        }
        pf->n++;
        pf->newest_born = now;
    }
    s = &pf->hist[(pf->first + pf->n - 1) % SAMPLES];
    *s = (struct sample){.ms = now, .sent = pf->sent};
    pthread_mutex_unlock(&pf->p->lock);
}

void progress_end(struct progress_file *pf)
{
    struct progress *p;
    size_t i;

    if (pf == NULL)
        return;
    p = pf->p;
    pthread_mutex_lock(&p->lock);
    for (i = 0; i < p->n && p->rows[i] != pf; i++)
        ;
    if (i < p->n) {
        memmove(&p->rows[i], &p->rows[i + 1],
                (p->n - i - 1) * sizeof(*p->rows));
        p->n--;
    }
    pthread_mutex_unlock(&p->lock);
    free(pf->path);
    free(pf);
}

/* Source bytes per second over the window ending at now.  Lock held. */
static int64_t rate_of(const struct progress_file *pf, int64_t now)
{
    const struct sample *base = &pf->hist[pf->first], *s;
    int64_t from = base->ms;
    int i;

    for (i = pf->n - 1; i >= 0; i--) {
        s = &pf->hist[(pf->first + i) % SAMPLES];
        if (s->ms <= now - PROGRESS_WINDOW_MS) {
            base = s; /* how far it was at the window's start */
            from = now - PROGRESS_WINDOW_MS;
            break;
        }
    }
    if (now - from < PROGRESS_RATE_MIN_MS)
        return 0;
    return (pf->sent - base->sent) * 1000 / (now - from);
}

void progress_entries_free(struct progress_entry *e, size_t n)
{
    size_t i;

    for (i = 0; e && i < n; i++)
        free(e[i].path);
    free(e);
}

int progress_snapshot(struct progress *p, struct progress_entry **out,
                      size_t *n)
{
    struct progress_entry *e = NULL;
    int64_t now;
    size_t k = 0;
    int r = 0;

    *out = NULL;
    *n = 0;
    if (p == NULL)
        return 0;
    now = p->clock_ms();
    pthread_mutex_lock(&p->lock);
    if (p->n > 0)
        e = calloc(p->n, sizeof(*e));
    if (p->n > 0 && e == NULL)
        r = -ENOMEM;
    for (; r == 0 && k < p->n; k++) {
        const struct progress_file *pf = p->rows[k];

        e[k] = (struct progress_entry){.path = strdup(pf->path),
                                       .size = pf->size,
                                       .sent = pf->sent,
                                       .target_bytes = pf->target_bytes,
                                       .rate = rate_of(pf, now),
                                       .started_at = pf->started_at};
        if (e[k].path == NULL)
            r = -ENOMEM;
    }
    pthread_mutex_unlock(&p->lock);
    if (r < 0) {
        progress_entries_free(e, k);
        return r;
    }
    *out = e;
    *n = k;
    return 0;
}

int64_t progress_eta(const struct progress_entry *e)
{
    if (e->sent >= e->size)
        return 0;
    if (e->rate <= 0)
        return -1;
    return (e->size - e->sent + e->rate - 1) / e->rate;
}

int progress_encode(const struct progress_entry *e, size_t n, char **out)
{
    const unsigned char *c;
    size_t len, i;
    FILE *m;

    *out = NULL;
    m = open_memstream(out, &len);
    if (m == NULL)
        return -ENOMEM;
    for (i = 0; i < n; i++) {
        fprintf(m, "%lld %lld %lld %lld %lld ", (long long)e[i].size,
                (long long)e[i].sent, (long long)e[i].target_bytes,
                (long long)e[i].rate, (long long)e[i].started_at);
        for (c = (const unsigned char *)e[i].path; *c; c++) {
            if (*c == '%' || *c < 0x20 || *c == 0x7f)
                fprintf(m, "%%%02X", *c);
            else
                fputc(*c, m);
        }
        fputc('\n', m);
    }
    if (fclose(m) != 0) {
        free(*out);
        *out = NULL;
        return -ENOMEM;
    }
    return 0;
}

/* A number of digits and the space after it, at *s: 0, or -EPROTO. */
static int decode_num(const char **s, int64_t *v)
{
    const char *p = *s;

    *v = 0;
    if (*p < '0' || *p > '9')
        return -EPROTO;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (*v > (INT64_MAX - (*p - '0')) / 10)
            return -EPROTO;
        *v = *v * 10 + (*p - '0');
    }
    if (*p != ' ')
        return -EPROTO;
    *s = p + 1;
    return 0;
}

/* The path from *s to the end of its line, unescaped into *path
 * (malloc'd); *s moves past the newline.  0, -EPROTO or -ENOMEM. */
static int decode_path(const char **s, char **path)
{
    const char *p = *s, *nl = strchr(p, '\n');
    size_t len;

    *path = NULL;
    if (nl == NULL || nl == p)
        return -EPROTO;
    *path = malloc((size_t)(nl - p) + 1);
    if (*path == NULL)
        return -ENOMEM;
    if (text_unpercent(p, (size_t)(nl - p), 0, *path, &len) < 0) {
        free(*path); /* not two hex digits, or NUL */
        *path = NULL;
        return -EPROTO;
    }
    *s = nl + 1;
    return 0;
}

/* One line at *s into *e; *s moves past it.  0, -EPROTO or -ENOMEM. */
static int decode_entry(const char **s, struct progress_entry *e)
{
    int64_t *nums[] = {&e->size, &e->sent, &e->target_bytes, &e->rate,
                       &e->started_at};
    size_t i;
    int r = 0;

    memset(e, 0, sizeof(*e));
    for (i = 0; r == 0 && i < sizeof(nums) / sizeof(nums[0]); i++)
        r = decode_num(s, nums[i]);
    return r == 0 ? decode_path(s, &e->path) : r;
}

int progress_decode(const char *text, struct progress_entry **out, size_t *n)
{
    struct progress_entry *e = NULL, *grown;
    const char *s = text;
    size_t k = 0, cap = 0;
    int r = 0;

    *out = NULL;
    *n = 0;
    while (r == 0 && *s) {
        if (k == cap) {
            cap = cap ? 2 * cap : 8;
            grown = realloc(e, cap * sizeof(*e));
            if (grown == NULL) {
                r = -ENOMEM;
                break;
            }
            e = grown;
        }
        r = decode_entry(&s, &e[k]);
        if (r == 0)
            k++;
    }
    if (r < 0) {
        progress_entries_free(e, k);
        return r;
    }
    *out = e;
    *n = k;
    return 0;
}
