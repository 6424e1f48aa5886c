/*
 * Recursive inotify watcher.  Watch descriptors map to folder paths in a
 * tree keyed by descriptor; files waiting to settle are in a tree keyed by
 * path and a FIFO ordered by deadline (settle_ms is the same for every
 * file, so touching a file moves it to the tail).
 *
 * A file closed after writing is reported at once, and remembered for
 * settle_ms: closed or written again within that time, it waits until it
 * has been quiet for settle_ms and is reported again.  So a file written
 * in one go is sent without delay, and one written in several sessions
 * is sent once per quiet spell, not once per close.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <search.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/queue.h>
#include <time.h>
#include <unistd.h>

#include "sftprelay/log.h"
#include "sftprelay/loop.h"
#include "sftprelay/path.h"
#include "sftprelay/watch.h"

#define WATCH_MASK                                                             \
    (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_MODIFY |    \
     IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR | IN_DONT_FOLLOW |             \
     IN_EXCL_UNLINK)
#define FALLBACK_SCAN_MS 60000 /* at most; rescan_interval if shorter */

struct wdent {
    int wd;
    char *rel; /* "" for the root */
};

struct pend {
    char *rel;
    int64_t due_ms;
    int reported; /* reported at its close: only remembered until due */
    TAILQ_ENTRY(pend) link;
};

struct watch {
    struct watch_opts o;
    struct watch_cb cb;
    struct loop *loop;
    int ifd;
    int settle_fd;
    int rescan_fd;
    int fallback_fd;
    void *wds;      /* struct wdent, by wd */
    void *pendings; /* struct pend, by rel */
    TAILQ_HEAD(, pend) queue;
    void *links; /* char *, symbolic links already reported */
    char **unwatched;
    size_t n_unwatched;
    int warned_enospc;
    int64_t fallback_ms;
};

static int cmp_wd(const void *a, const void *b)
{
    int x = ((const struct wdent *)a)->wd, y = ((const struct wdent *)b)->wd;

    return (x > y) - (x < y);
}

static int cmp_pend(const void *a, const void *b)
{
    return strcmp(((const struct pend *)a)->rel, ((const struct pend *)b)->rel);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(a, b);
}

static int excluded(const struct watch *w, const char *base)
{
    return path_excluded(base, w->o.exclude, w->o.n_exclude);
}

static int skipped(const struct watch *w, const char *rel)
{
    return w->o.skip && path_is_under(rel, w->o.skip);
}

/* root/rel into buf; -ENAMETOOLONG if it does not fit. */
static int full_path(const struct watch *w, const char *rel, char *buf)
{
    int n =
        snprintf(buf, PATH_MAX, "%s%s%s", w->o.root, rel[0] ? "/" : "", rel);

    return n < 0 || n >= PATH_MAX ? -ENAMETOOLONG : 0;
}

static int join_rel(const char *dir, const char *name, char **out)
{
    if (dir[0] == '\0') {
        *out = strdup(name);
        return *out ? 0 : -ENOMEM;
    }
    return path_join(dir, name, out);
}

static void report_link_once(struct watch *w, const char *rel)
{
    char *copy;

    if (tfind(rel, &w->links, cmp_str))
        return;
    copy = strdup(rel);
    if (copy == NULL || tsearch(copy, &w->links, cmp_str) == NULL) {
        free(copy);
        return;
    }
    log_info("%s: symbolic link, not followed", rel);
}

static void arm_settle(struct watch *w)
{
    struct pend *p = TAILQ_FIRST(&w->queue);
    int64_t ms;

    if (p == NULL) {
        timer_arm(w->settle_fd, 0, 0);
        return;
    }
    ms = p->due_ms - mono_ms();
    timer_arm(w->settle_fd, ms > 0 ? ms : 1, 0);
}

/*
 * rel was written or moved in: (re)start its quiet period, and report it
 * when it ends (reported: it was reported just now, so only remember it).
 */
static void settle(struct watch *w, const char *rel, int reported)
{
    struct pend key = {.rel = (char *)rel}, *p;
    void *node = tfind(&key, &w->pendings, cmp_pend);
    int was_first;

    if (node) {
        p = *(struct pend **)node;
        was_first = p == TAILQ_FIRST(&w->queue);
        TAILQ_REMOVE(&w->queue, p, link);
    } else {
        p = calloc(1, sizeof(*p));
        if (p)
            p->rel = strdup(rel);
        if (p == NULL || p->rel == NULL ||
            tsearch(p, &w->pendings, cmp_pend) == NULL) {
            log_error("%s: out of memory; the next scan will find it", rel);
            if (p)
                free(p->rel);
            free(p);
            return;
        }
        was_first = 0;
    }
    p->due_ms = mono_ms() + w->o.settle_ms;
    p->reported = reported;
    TAILQ_INSERT_TAIL(&w->queue, p, link);
    if (was_first || TAILQ_FIRST(&w->queue) == p)
        arm_settle(w);
}

/*
 * A regular file found: report it, or let it settle if it is fresh.
 * Returns 0, or found()'s error.
 */
static void touch(struct watch *w, const char *rel)
{
    settle(w, rel, 0);
}

static int consider(struct watch *w, const char *rel, int fresh_ok)
{
    char full[PATH_MAX];
    struct stat st;
    struct timespec now;
    int64_t age_ms;

    if (full_path(w, rel, full) < 0) {
        log_warn("%s: path longer than PATH_MAX, skipped", rel);
        return 0;
    }
    if (lstat(full, &st) < 0)
        return 0; /* gone meanwhile */
    if (S_ISLNK(st.st_mode)) {
        report_link_once(w, rel);
        return 0;
    }
    if (!S_ISREG(st.st_mode))
        return 0;
    clock_gettime(CLOCK_REALTIME, &now);
    age_ms = (int64_t)(now.tv_sec - st.st_mtim.tv_sec) * 1000 +
             (now.tv_nsec - st.st_mtim.tv_nsec) / 1000000;
    if (!fresh_ok && age_ms < w->o.settle_ms) {
        touch(w, rel);
        return 0;
    }
    return w->cb.found(w->cb.arg, rel, &st);
}

static void note_unwatched(struct watch *w, const char *rel)
{
    char **v;
    size_t i;

    for (i = 0; i < w->n_unwatched; i++)
        if (strcmp(w->unwatched[i], rel) == 0)
            return;
    v = realloc(w->unwatched, (w->n_unwatched + 1) * sizeof(*v));
    if (v == NULL)
        return;
    w->unwatched = v;
    v[w->n_unwatched] = strdup(rel);
    if (v[w->n_unwatched])
        w->n_unwatched++;
    timer_arm(w->fallback_fd, w->fallback_ms, w->fallback_ms);
}

/* Watch the folder rel; a folder already watched gets its new path. */
static int add_watch(struct watch *w, const char *rel)
{
    char full[PATH_MAX];
    struct wdent *e, key;
    void *node;
    int wd, r;

    r = full_path(w, rel, full);
    if (r < 0)
        return r;
    wd = inotify_add_watch(w->ifd, full, WATCH_MASK);
    if (wd < 0) {
        r = -errno;
        if (r == -ENOSPC) {
            if (!w->warned_enospc++)
                log_warn("%s: cannot watch: out of inotify watches (raise "
                         "fs.inotify.max_user_watches); scanning it every "
                         "%lld s instead",
                         full, (long long)w->fallback_ms / 1000);
            note_unwatched(w, rel);
        } else if (r != -ENOENT && r != -ENOTDIR) {
            log_warn("%s: cannot watch: %s", full, strerror(-r));
        }
        return r;
    }
    key.wd = wd;
    node = tfind(&key, &w->wds, cmp_wd);
    if (node) {
        e = *(struct wdent **)node;
        if (strcmp(e->rel, rel) != 0) {
            char *copy = strdup(rel);

            if (copy) {
                free(e->rel);
                e->rel = copy;
            }
        }
        return 0;
    }
    e = calloc(1, sizeof(*e));
    if (e)
        e->rel = strdup(rel);
    if (e == NULL || e->rel == NULL)
        goto nomem;
    e->wd = wd;
    if (tsearch(e, &w->wds, cmp_wd) == NULL)
        goto nomem;
    return 0;
nomem:
    if (e)
        free(e->rel);
    free(e);
    inotify_rm_watch(w->ifd, wd);
    return -ENOMEM;
}

/* The type of a directory entry, with lstat(2) where readdir() did not say. */
static unsigned char entry_type(const struct watch *w, const struct dirent *de,
                                const char *child)
{
    struct stat st;
    char cf[PATH_MAX];

    if (de->d_type != DT_UNKNOWN)
        return de->d_type;
    if (full_path(w, child, cf) < 0 || lstat(cf, &st) < 0)
        return DT_UNKNOWN;
    return S_ISDIR(st.st_mode)   ? DT_DIR
           : S_ISLNK(st.st_mode) ? DT_LNK
           : S_ISREG(st.st_mode) ? DT_REG
                                 : DT_UNKNOWN;
}

/*
 * Watch and scan the folder rel and everything under it.  Returns 0, or
 * found()'s error, which stops the scan.
 */
static int scan_dir(struct watch *w, const char *rel)
{
    char full[PATH_MAX];
    DIR *d;
    struct dirent *de;
    int fd, r = 0;

    if (skipped(w, rel))
        return 0;
    add_watch(w, rel);
    if (full_path(w, rel, full) < 0) {
        log_warn("%s: path longer than PATH_MAX, skipped", rel);
        return 0;
    }
    fd = open(full, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return 0;
    d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return 0;
    }
    while (r == 0 && (de = readdir(d)) != NULL) {
        char *child = NULL;
        unsigned char type;

        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
            excluded(w, de->d_name) || join_rel(rel, de->d_name, &child) < 0)
            continue;
        type = entry_type(w, de, child);
        if (type == DT_DIR)
            r = scan_dir(w, child);
        else if (type == DT_LNK)
            report_link_once(w, child);
        else if (type == DT_REG)
            r = consider(w, child, 0);
        free(child);
    }
    closedir(d);
    return r;
}

int watch_scan(struct watch *w)
{
    return scan_dir(w, "");
}

struct prefix_walk {
    const char *prefix;
    size_t len;
    int *wds;
    size_t n, cap;
};

static void collect_prefix(const void *node, VISIT which, void *arg)
{
    const struct wdent *e = *(struct wdent *const *)node;
    struct prefix_walk *pw = arg;

    if (which != postorder && which != leaf)
        return;
    if (strncmp(e->rel, pw->prefix, pw->len) != 0 ||
        (e->rel[pw->len] != '\0' && e->rel[pw->len] != '/'))
        return;
    if (pw->n == pw->cap) {
        size_t cap = pw->cap ? pw->cap * 2 : 16;
        int *v = realloc(pw->wds, cap * sizeof(*v));

        if (v == NULL)
            return;
        pw->wds = v;
        pw->cap = cap;
    }
    pw->wds[pw->n++] = e->wd;
}

static void forget_wd(struct watch *w, int wd)
{
    struct wdent key = {.wd = wd}, *e;
    void *node = tfind(&key, &w->wds, cmp_wd);

    if (node == NULL)
        return;
    e = *(struct wdent **)node;
    tdelete(&key, &w->wds, cmp_wd);
    free(e->rel);
    free(e);
}

/* The folder rel left the tree: stop watching it and its subfolders. */
static void unwatch_tree(struct watch *w, const char *rel)
{
    struct prefix_walk pw = {.prefix = rel, .len = strlen(rel)};
    size_t i;

    twalk_r(w->wds, collect_prefix, &pw);
    for (i = 0; i < pw.n; i++) {
        inotify_rm_watch(w->ifd, pw.wds[i]);
        forget_wd(w, pw.wds[i]);
    }
    free(pw.wds);
}

/*
 * rel was closed after writing, or moved in: report it now, unless it
 * was written or closed within the last settle_ms.
 */
static void closed(struct watch *w, const char *rel)
{
    struct pend key = {.rel = (char *)rel};

    if (w->o.settle_ms == 0 || tfind(&key, &w->pendings, cmp_pend) ||
        (w->o.settle_under && path_is_under(rel, w->o.settle_under))) {
        touch(w, rel);
        return;
    }
    if (consider(w, rel, 1) == 0)
        settle(w, rel, 1);
}

static void handle_event(struct watch *w, const struct inotify_event *ev)
{
    struct wdent key = {.wd = ev->wd}, *e;
    void *node;
    char *rel = NULL;

    if (ev->mask & IN_Q_OVERFLOW) {
        log_warn("inotify queue overflow: scanning %s", w->o.root);
        watch_scan(w);
        return;
    }
    node = tfind(&key, &w->wds, cmp_wd);
    if (node == NULL)
        return;
    e = *(struct wdent **)node;
    if (ev->mask & IN_IGNORED) {
        forget_wd(w, ev->wd);
        return;
    }
    if (ev->len == 0 || ev->name[0] == '\0') {
        if ((ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF)) && e->rel[0] == '\0')
            log_error("source.path %s was removed or moved; waiting for it",
                      w->o.root);
        return;
    }
    if (excluded(w, ev->name) || join_rel(e->rel, ev->name, &rel) < 0)
        return;
    if (skipped(w, rel)) {
        free(rel);
        return;
    }
    if (ev->mask & IN_ISDIR) {
        if (ev->mask & IN_MOVED_FROM)
            unwatch_tree(w, rel);
        else if (ev->mask & (IN_CREATE | IN_MOVED_TO))
            scan_dir(w, rel);
    } else if (ev->mask & (IN_CLOSE_WRITE | IN_MOVED_TO)) {
        closed(w, rel);
    } else if (ev->mask & IN_MODIFY) {
        struct pend pk = {.rel = rel};

        /* Still being written: wait longer, if it is waiting at all. */
        if (tfind(&pk, &w->pendings, cmp_pend))
            touch(w, rel);
    }
    free(rel);
}

static void on_inotify(struct loop *l, int fd, uint32_t events, void *arg)
{
    struct watch *w = arg;
    char buf[64 * 1024]
        __attribute__((aligned(__alignof__(struct inotify_event))));
    ssize_t n;
    char *p;

    for (;;) {
        n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        for (p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;

            handle_event(w, ev);
            p += sizeof(*ev) + ev->len;
        }
    }
}

static void on_settle(struct loop *l, int fd, uint32_t events, void *arg)
{
    struct watch *w = arg;
    struct pend *p;
    int64_t now = mono_ms();
    int r = 0;

    timer_ack(fd);
    while (r == 0 && (p = TAILQ_FIRST(&w->queue)) != NULL && p->due_ms <= now) {
        TAILQ_REMOVE(&w->queue, p, link);
        tdelete(p, &w->pendings, cmp_pend);
        if (!p->reported)
            r = consider(w, p->rel, 1);
        free(p->rel);
        free(p);
    }
    arm_settle(w);
}

static void on_rescan(struct loop *l, int fd, uint32_t events, void *arg)
{
    struct watch *w = arg;

    timer_ack(fd);
    log_debug("periodic scan of %s", w->o.root);
    watch_scan(w);
}

static void on_fallback(struct loop *l, int fd, uint32_t events, void *arg)
{
    struct watch *w = arg;
    char **v = w->unwatched;
    size_t i, n = w->n_unwatched;

    timer_ack(fd);
    w->unwatched = NULL;
    w->n_unwatched = 0;
    timer_arm(w->fallback_fd, 0, 0);
    for (i = 0; i < n; i++) {
        scan_dir(w, v[i]);
        free(v[i]);
    }
    free(v);
}

int watch_new(const struct watch_opts *o, struct loop *l,
              const struct watch_cb *cb, struct watch **out)
{
    struct watch *w;
    struct stat st;
    struct loop_handler h;
    int r;

    *out = NULL;
    if (stat(o->root, &st) < 0)
        return -errno;
    if (!S_ISDIR(st.st_mode))
        return -ENOTDIR;
    w = calloc(1, sizeof(*w));
    if (w == NULL)
        return -ENOMEM;
    w->o = *o;
    w->cb = *cb;
    w->loop = l;
    w->fallback_ms = FALLBACK_SCAN_MS;
    if (o->rescan_interval > 0 &&
        (int64_t)o->rescan_interval * 1000 < w->fallback_ms)
        w->fallback_ms = (int64_t)o->rescan_interval * 1000;
    TAILQ_INIT(&w->queue);
    w->settle_fd = w->rescan_fd = w->fallback_fd = -1;
    w->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->ifd < 0) {
        r = -errno;
        goto fail;
    }
    w->settle_fd = timer_new();
    w->rescan_fd = timer_new();
    w->fallback_fd = timer_new();
    if (w->settle_fd < 0 || w->rescan_fd < 0 || w->fallback_fd < 0) {
        r = -EMFILE;
        goto fail;
    }
    h.arg = w;
    h.fn = on_inotify;
    r = loop_add(l, w->ifd, EPOLLIN, &h);
    h.fn = on_settle;
    if (r == 0)
        r = loop_add(l, w->settle_fd, EPOLLIN, &h);
    h.fn = on_rescan;
    if (r == 0)
        r = loop_add(l, w->rescan_fd, EPOLLIN, &h);
    h.fn = on_fallback;
    if (r == 0)
        r = loop_add(l, w->fallback_fd, EPOLLIN, &h);
    if (r < 0)
        goto fail;
    if (o->rescan_interval > 0)
        timer_arm(w->rescan_fd, (int64_t)o->rescan_interval * 1000,
                  (int64_t)o->rescan_interval * 1000);
    *out = w;
    return 0;
fail:
    watch_free(w);
    return r;
}

static void free_wdent(void *p)
{
    struct wdent *e = p;

    free(e->rel);
    free(e);
}

static void free_nothing(void *p)
{
}

void watch_free(struct watch *w)
{
    struct pend *p;
    size_t i;

    if (w == NULL)
        return;
    if (w->loop) {
        loop_del(w->loop, w->ifd);
        loop_del(w->loop, w->settle_fd);
        loop_del(w->loop, w->rescan_fd);
        loop_del(w->loop, w->fallback_fd);
    }
    while ((p = TAILQ_FIRST(&w->queue)) != NULL) {
        TAILQ_REMOVE(&w->queue, p, link);
        free(p->rel);
        free(p);
    }
    tdestroy(w->pendings, free_nothing);
    tdestroy(w->wds, free_wdent);
    tdestroy(w->links, free);
    for (i = 0; i < w->n_unwatched; i++)
        free(w->unwatched[i]);
    free(w->unwatched);
    if (w->ifd >= 0)
        close(w->ifd);
    if (w->settle_fd >= 0)
        close(w->settle_fd);
    if (w->rescan_fd >= 0)
        close(w->rescan_fd);
    if (w->fallback_fd >= 0)
        close(w->fallback_fd);
    free(w);
}
