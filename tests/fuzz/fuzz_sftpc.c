/*
 * libFuzzer target: arbitrary bytes as the server's side of an SFTP
 * session, against a client that starts, uploads a few writes (fsync,
 * fsetstat, drain, close), then stats, renames, reads a file back and
 * frees everything.  The channel is memory: send() takes and drops
 * everything; recv() hands out the input one packet (by its length field)
 * per wait(), so replies arrive after the requests they answer as on a
 * real link, then (after one more wait) the channel's end.  A crash, a
 * sanitizer report, a leak, or a call that never returns is a finding.
 *
 * FUZZ_SFTPC_TRACE=1 prints each call's result, to check that the seeds
 * (tests/fuzz/seeds.py DIR sftpc) still reach the end of the session.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "sftprelay/sftpc.h"
#include "sftprelay/sshchan.h"

struct fchan {
    struct ssh_chan ch; /* first: the client sees only this */
    const uint8_t *p;
    size_t left;
    size_t chunk; /* bytes of the current packet still to hand out */
    int open;     /* wait() was called: the next packet may come */
};

static ssize_t f_send(struct ssh_chan *ch, const void *buf, size_t len)
{
    return (ssize_t)len;
}

static ssize_t f_recv(struct ssh_chan *ch, void *buf, size_t len)
{
    struct fchan *f = (struct fchan *)ch;

    if (f->left == 0) /* the end comes after a wait, as a packet does */
        return f->open ? -EPIPE : 0;
    if (f->chunk == 0) {
        if (!f->open)
            return 0;
        f->open = 0;
        f->chunk = f->left < 4 ? f->left : 4 + (size_t)sftp_u32_at(f->p);
        if (f->chunk > f->left)
            f->chunk = f->left;
    }
    if (len > f->chunk)
        len = f->chunk;
    f->chunk -= len;
    memcpy(buf, f->p, len);
    f->p += len;
    f->left -= len;
    return (ssize_t)len;
}

static int f_wait(struct ssh_chan *ch, int for_send)
{
    ((struct fchan *)ch)->open = 1; /* recv() has bytes or the end */
    return 0;
}

static void f_close(struct ssh_chan *ch)
{
    abort(); /* the channel is the caller's, never the client's */
}

static const struct ssh_backend fuzz_backend = {
    .name = "fuzz",
    .send = f_send,
    .recv = f_recv,
    .wait = f_wait,
    .close = f_close,
};

/* What sftpc_read() hands over: never empty, never more than asked. */
struct got {
    uint64_t n, max;
};

static int trace = -1;
static struct sftpc *traced;

/* r, printed with the call that returned it under FUZZ_SFTPC_TRACE. */
static int step(const char *what, int r)
{
    if (trace)
        fprintf(stderr, "%-60s %d %s\n", what, r,
                r < 0 && traced ? sftpc_error(traced) : "");
    return r;
}

static int on_data(void *arg, const void *p, size_t n)
{
    struct got *g = arg;

    if (n == 0 || g->n + n > g->max)
        abort();
    g->n += n;
    return 0;
}

/* The call's result, printed with its text under FUZZ_SFTPC_TRACE. */
#define STEP(call) step(#call, (call))

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t payload[70000];
    struct fchan ch = {.ch = {.ops = &fuzz_backend}, .p = data, .left = size};
    struct sftp_attrs a = {.flags = SFTP_ATTR_PERMISSIONS, .perm = 0600};
    struct sftpc_opts o = {.window = 100000};
    struct sftpc_file *f = NULL;
    struct sftpc *c = NULL;
    struct got g = {.max = 1000};
    uint64_t avail;
    char *real = NULL;
    int r;

    if (trace < 0)
        trace = getenv("FUZZ_SFTPC_TRACE") != NULL;
    strcpy(ch.ch.peer, "fuzz:22");
    r = STEP(sftpc_start(&ch.ch, &o, &c));
    traced = c;
    if (r < 0) {
        if (c == NULL)
            abort(); /* set even on error, says sftpc.h */
        goto out;
    }
    if (sftpc_max_write(c) == 0 || sftpc_max_write(c) > SFTPC_MAX_WRITE ||
        sftpc_max_read(c) == 0 || sftpc_max_read(c) > SFTPC_MAX_WRITE)
        abort();
    if (STEP(sftpc_open(c, "f", SFTP_PF_WRITE | SFTP_PF_CREAT, 0644, &f)) ==
        0) {
        STEP(sftpc_write(c, f, 0, payload, 100));
        STEP(sftpc_write(c, f, 100, payload, 40000));
        STEP(sftpc_write(c, f, 40100, payload, sizeof(payload)));
        STEP(sftpc_fsync(c, f));
        STEP(sftpc_fsetstat(c, f, &a));
        STEP(sftpc_drain(c, f));
        if (sftpc_acked(f) > 40100 + sizeof(payload))
            abort();
        STEP(sftpc_close(c, f));
        f = NULL;
    }
    STEP(sftpc_stat(c, "f", &a));
    if (STEP(sftpc_realpath(c, ".", &real)) == 0 && real == NULL)
        abort();
    free(real);
    STEP(sftpc_rename(c, "f", "g"));
    STEP(sftpc_statvfs(c, "g", &avail));
    STEP(sftpc_mkdir(c, "d", 0755));
    if (STEP(sftpc_open(c, "g", SFTP_PF_READ, 0, &f)) == 0) {
        STEP(sftpc_fstat(c, f, &a));
        STEP(sftpc_read(c, f, 0, g.max, on_data, &g));
        if (trace)
            fprintf(stderr, "read %llu bytes\n", (unsigned long long)g.n);
        STEP(sftpc_close(c, f));
    }
    STEP(sftpc_remove(c, "g"));
out:
    traced = NULL;
    sftpc_free(c);
    return 0;
}
