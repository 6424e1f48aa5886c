/*
 * Intake (intake.h): paths in, offers out, workers woken.
 *
 * Owns the journal writer.  Its commit callback runs on the writer's
 * thread with no lock held; it only wakes the scheduler (which takes the
 * scheduler's lock for an instant) and, when offers were dropped, makes
 * rescan_fd readable for the thread that runs the watcher.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "sftprelay/intake.h"
#include "sftprelay/jwriter.h"
#include "sftprelay/log.h"
#include "sftprelay/path.h"
#include "sftprelay/sched.h"
#include "sftprelay/source.h"

#define STOP_CHECK_EVERY 256 /* files found between looks at stop_fd */

struct intake {
    struct intake_opts o;
    struct sched *sched;
    struct jwriter *w;
    int rescan_fd;
    unsigned found; /* intake_found() calls: its thread only */
};

static void on_commit(void *arg, int queued, int recovered, int lost)
{
    struct intake *in = arg;
    uint64_t one = 1;

    if (queued > 0 && in->sched)
        sched_notify(in->sched);
    if (lost) {
        log_warn("journal %s: some files found while it failed were not "
                 "kept; scanning the source again",
                 in->o.journal);
        if (write(in->rescan_fd, &one, sizeof(one)) < 0)
            log_error("intake: asking for a scan: %s", strerror(errno));
    }
}

int intake_new(const struct intake_opts *o, struct sched *s,
               struct intake **out)
{
    struct jwriter_cb cb = {.on_commit = on_commit};
    struct intake *in;
    int r;

    *out = NULL;
    in = calloc(1, sizeof(*in));
    if (in == NULL)
        return -ENOMEM;
    in->o = *o;
    in->sched = s;
    in->rescan_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (in->rescan_fd < 0) {
        r = -errno;
        free(in);
        return r;
    }
    cb.arg = in;
    r = jwriter_new(o->journal, &cb, &in->w);
    if (r < 0) {
        intake_free(in);
        return r;
    }
    *out = in;
    return 0;
}

struct jwriter *intake_writer(struct intake *in)
{
    return in->w;
}

/* Whether stop_fd is readable now. */
static int stop_asked(const struct intake *in)
{
    struct pollfd p = {.fd = in->o.stop_fd, .events = POLLIN};

    return in->o.stop_fd >= 0 && poll(&p, 1, 0) > 0;
}

/* After an offer: a lost one is found by the rescan intake asks for. */
static int offered(const char *rel, int r)
{
    if (r == -ENOMEM)
        log_error("%s: out of memory; a scan will find it again", rel);
    return r == -EINTR ? r : 0;
}

int intake_listed(struct intake *in, const char *rel,
                  const struct source_stat *st)
{
    if (++in->found % STOP_CHECK_EVERY == 0 && stop_asked(in))
        return -EINTR;
    return offered(rel, jwriter_offer(in->w, JW_FOUND, rel, st->size,
                                      st->mtime_ns, (int64_t)time(NULL), NULL,
                                      in->o.stop_fd));
}

int intake_found(struct intake *in, const char *rel, const struct stat *st)
{
    struct source_stat ss = {.size = st->st_size,
                             .mtime_ns = source_mtime_ns(st),
                             .mode = (int)(st->st_mode & 07777)};

    return intake_listed(in, rel, &ss);
}

/* The path under source.path of rel under server.root; NULL if excluded. */
static char *upload_path(const struct intake *in, const char *rel)
{
    char *path = NULL;

    if (in->o.upload_prefix[0] == '\0')
        path = strdup(rel);
    else if (path_join(in->o.upload_prefix, rel, &path) < 0)
        path = NULL;
    if (path == NULL)
        log_error("%s: out of memory; the next scan will find it", rel);
    else if (path_excluded(path_base(path), in->o.exclude, in->o.n_exclude)) {
        free(path);
        path = NULL;
    }
    return path;
}

static void upload(struct intake *in, enum jwriter_offer_kind kind,
                   const char *rel, const struct stat *st, const char *peer)
{
    char *path = upload_path(in, rel);

    if (path == NULL)
        return;
    offered(path,
            jwriter_offer(in->w, kind, path, st->st_size, source_mtime_ns(st),
                          (int64_t)time(NULL), peer, -1));
    free(path);
}

void intake_uploaded(struct intake *in, const char *rel, const struct stat *st,
                     const char *peer)
{
    upload(in, JW_UPLOADED, rel, st, peer);
}

void intake_abandoned(struct intake *in, const char *rel, const struct stat *st,
                      const char *peer)
{
    upload(in, JW_UNFINISHED, rel, st, peer);
}

int intake_rescan_fd(const struct intake *in)
{
    return in->rescan_fd;
}

void intake_rescan_ack(struct intake *in)
{
    uint64_t n;

    if (read(in->rescan_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
        log_error("intake: %s", strerror(errno));
}

void intake_free(struct intake *in)
{
    if (in == NULL)
        return;
    jwriter_free(in->w);
    if (in->rescan_fd >= 0)
        close(in->rescan_fd);
    free(in);
}
