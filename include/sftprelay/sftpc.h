/*
 * The SFTP version 3 client, with many requests in flight on one channel
 * (sshchan.h), as OpenSSH's sftp-client.c keeps them.
 *
 * Requests that concern an open file (write, fsetstat, fsync, close) are
 * queued, not awaited: each call returns as soon as its packet is handed
 * to the channel, blocking only while the writes in flight fill the
 * window.  Their outcome is gathered on the file: sftpc_acked() is the
 * highest offset below which every write was acknowledged (the
 * highwater: a kill -9 loses at most what was in flight past it), and the
 * first error stays on the file and is returned by every later call on it
 * and by sftpc_close().  The other requests (open, stat, mkdir, rename,
 * ...) wait for their reply while the queued ones go on.
 *
 * Every call returns 0 or a negative errno, the server's status mapped in
 * one place (SFTP_FX_NO_SUCH_FILE -ENOENT, PERMISSION_DENIED -EACCES,
 * OP_UNSUPPORTED -EOPNOTSUPP, FAILURE -EIO, ...), with the server's own
 * words in sftpc_error().  A reply that breaks the protocol (unknown id,
 * wrong type, short or oversized packet) is -EPROTO, a channel that ends
 * -ECONNRESET; after either the client is dead and every call returns the
 * same error.  Waits give up as the channel's wait() does (-ETIMEDOUT,
 * -ECANCELED).
 */
#ifndef SFTPRELAY_SFTPC_H
#define SFTPRELAY_SFTPC_H

#include <stddef.h>
#include <stdint.h>

#include "sftprelay/sftpwire.h"

struct ssh_chan;
struct sftpc;
struct sftpc_file;

/* Write payload when the server does not say (no limits@openssh.com). */
#define SFTPC_DEFAULT_WRITE 32768
/* The largest payload we ask for whatever the server says. */
#define SFTPC_MAX_WRITE (255 * 1024)
/* Reply packets longer than this end the session (-EPROTO). */
#define SFTPC_MAX_PACKET (SFTPC_MAX_WRITE + 4096)
/* Default bytes of writes in flight per channel. */
#define SFTPC_WINDOW (8 * 1024 * 1024)
/* Longest sftpc_error() text. */
#define SFTPC_ERR_MAX 512
/* Requests in flight per channel at most. */
#define SFTPC_MAX_INFLIGHT 512

/* Extensions the server offered that the client uses. */
#define SFTPC_EXT_POSIX_RENAME 0x1u /* posix-rename@openssh.com */
#define SFTPC_EXT_FSYNC 0x2u        /* fsync@openssh.com */
#define SFTPC_EXT_STATVFS 0x4u      /* statvfs@openssh.com */
#define SFTPC_EXT_LIMITS 0x8u       /* limits@openssh.com */

struct sftpc_opts {
    size_t window; /* bytes of writes in flight; 0: SFTPC_WINDOW */
};

/*
 * Start SFTP on ch (borrowed: outlives the client): INIT, VERSION, and
 * limits@openssh.com when offered.  *out is freed with sftpc_free().
 * On error *out is still set, for sftpc_error(), and must be freed.
 */
int sftpc_start(struct ssh_chan *ch, const struct sftpc_opts *o,
                struct sftpc **out);
/* Frees c and any files still open on it (the channel stays). */
void sftpc_free(struct sftpc *c);

/* The last error, in words: "server: No such file", "reply with unknown
 * id 7". */
const char *sftpc_error(const struct sftpc *c);
/* The error that ended the session, or 0 while it lives. */
int sftpc_dead(const struct sftpc *c);
/* Move what can move without waiting (a closed channel is seen so):
 * sftpc_dead(). */
int sftpc_poll(struct sftpc *c);
/* SFTPC_EXT_* the server offered. */
unsigned sftpc_extensions(const struct sftpc *c);
/* The write payload used: from limits@openssh.com, at most
 * SFTPC_MAX_WRITE; SFTPC_DEFAULT_WRITE without the extension. */
size_t sftpc_max_write(const struct sftpc *c);
/* The read payload used, likewise. */
size_t sftpc_max_read(const struct sftpc *c);

int sftpc_realpath(struct sftpc *c, const char *path, char **out);
int sftpc_stat(struct sftpc *c, const char *path, struct sftp_attrs *a);
/* As sftpc_stat(), of a symbolic link itself (not followed). */
int sftpc_lstat(struct sftpc *c, const char *path, struct sftp_attrs *a);
int sftpc_mkdir(struct sftpc *c, const char *path, uint32_t mode);
int sftpc_remove(struct sftpc *c, const char *path);
/*
 * Rename from to to, replacing to atomically with
 * posix-rename@openssh.com where offered; plain SFTP v3 RENAME (which
 * fails when to exists) otherwise.
 */
int sftpc_rename(struct sftpc *c, const char *from, const char *to);
/*
 * List the folder path (OPENDIR, READDIR until the end, CLOSE): cb gets
 * each entry's name exactly as the server sent it (NUL-terminated; "."
 * and ".." included, if the server sends them; the caller checks names)
 * and its attributes.  cb must not call the client; a negative return
 * stops the listing with that value (the folder is still closed).
 */
int sftpc_readdir(struct sftpc *c, const char *path,
                  int (*cb)(void *arg, const char *name,
                            const struct sftp_attrs *a),
                  void *arg);
/* Bytes free to an unprivileged user on path's file system
 * (statvfs@openssh.com): -EOPNOTSUPP without the extension. */
int sftpc_statvfs(struct sftpc *c, const char *path, uint64_t *avail);

/*
 * Pipelined forms of the calls below: _send() sends the request and
 * gives its id, the matching _recv() waits for and takes its reply, in
 * any order (each id exactly once, or sftpc_forget()).  Many files can
 * so be opened, checked and renamed in one round trip.
 */
int sftpc_open_send(struct sftpc *c, const char *path, uint32_t pflags,
                    uint32_t mode, uint32_t *id);
int sftpc_open_recv(struct sftpc *c, uint32_t id, struct sftpc_file **f);
int sftpc_stat_send(struct sftpc *c, const char *path, uint32_t *id);
int sftpc_lstat_send(struct sftpc *c, const char *path, uint32_t *id);
/* The reply to sftpc_stat_send() or sftpc_lstat_send(). */
int sftpc_stat_recv(struct sftpc *c, uint32_t id, struct sftp_attrs *a);
int sftpc_rename_send(struct sftpc *c, const char *from, const char *to,
                      uint32_t *id);
/* The STATUS answering id (a rename): 0 or its errno; what names it in
 * sftpc_error(). */
int sftpc_status_recv(struct sftpc *c, uint32_t id, const char *what);
/* The reply to id is not wanted: it is dropped when it comes (not for
 * an open: its handle would stay open on the server). */
void sftpc_forget(struct sftpc *c, uint32_t id);

/* Open path with SFTP_PF_* pflags, creating it with mode. */
int sftpc_open(struct sftpc *c, const char *path, uint32_t pflags,
               uint32_t mode, struct sftpc_file **f);
int sftpc_fstat(struct sftpc *c, struct sftpc_file *f, struct sftp_attrs *a);

/* Queue a write of len bytes at off, split into sftpc_max_write()
 * packets.  The bytes are copied: buf may be reused on return. */
int sftpc_write(struct sftpc *c, struct sftpc_file *f, uint64_t off,
                const void *buf, size_t len);
/* Queue a SETSTAT of the file's attributes. */
int sftpc_fsetstat(struct sftpc *c, struct sftpc_file *f,
                   const struct sftp_attrs *a);
/* Queue fsync@openssh.com: -EOPNOTSUPP (nothing queued) without it. */
int sftpc_fsync(struct sftpc *c, struct sftpc_file *f);
/* Wait until every request queued on f is answered: its first error. */
int sftpc_drain(struct sftpc *c, struct sftpc_file *f);
/*
 * The highwater: every write below it is acknowledged, counted from the
 * offset of the file's first write (0 before any write).
 */
uint64_t sftpc_acked(const struct sftpc_file *f);
/*
 * Close f: queue CLOSE (unless sftpc_close_send() did), wait for every
 * request on it, free f.  Returns the first error of any of them.
 */
int sftpc_close(struct sftpc *c, struct sftpc_file *f);
/* Queue CLOSE now, so that requests sent before sftpc_close() follow it
 * on the wire. */
int sftpc_close_send(struct sftpc *c, struct sftpc_file *f);

/*
 * Read len bytes from off, many reads in flight, handing the bytes to
 * cb in order.  A short file ends the read with -ENODATA (EOF before
 * off + len); cb's negative return ends it with that value.  cb never
 * gets more than len bytes in all: a DATA reply longer than its read
 * asked is -EPROTO (the session ends).  -EINVAL when off + len passes
 * 2^64.
 */
int sftpc_read(struct sftpc *c, struct sftpc_file *f, uint64_t off,
               uint64_t len, int (*cb)(void *arg, const void *p, size_t n),
               void *arg);

#endif
