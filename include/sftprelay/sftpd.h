/*
 * An SFTP version 3 server engine, with no I/O of its own: bytes from the
 * client go in through sftpd_input(), replies go out through a callback.
 * The SSH server (server.c) feeds it from a channel; tests and the fuzzer
 * feed it directly.
 *
 * Every path resolves inside the root (vpath.h).  Handlers are one table,
 * one per request type.  Extensions: posix-rename@openssh.com,
 * fsync@openssh.com, statvfs@openssh.com, fstatvfs@openssh.com,
 * limits@openssh.com.  Symbolic links cannot be created.
 */
#ifndef SFTPRELAY_SFTPD_H
#define SFTPRELAY_SFTPD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#define SFTPD_MAX_PACKET (256 * 1024)          /* a request's length field */
#define SFTPD_MAX_IO (SFTPD_MAX_PACKET - 1024) /* read or write payload */
#define SFTPD_MAX_HANDLES 256

struct sftpd;

/*
 * Test-only fault injection (sftprelay serve --fault-file): every field
 * is read at each request, so a test can change it while clients run.
 */
struct sftpd_fault {
    int write_errno;          /* ENOSPC or EACCES: WRITE requests fail */
    int64_t write_errno_from; /* only WRITEs reaching past it fail; 0 all */
    int stall_ms;             /* delay before every reply */
    int64_t drop_after; /* written bytes (whole server) before a drop; <0 off */
    int no_limits;      /* limits@openssh.com neither offered nor answered */
    size_t max_write;   /* longer WRITE payloads fail; 0 no limit */
};

struct sftpd_cb {
    /* Send len bytes to the client: 0, or a negative errno to end. */
    int (*send)(void *arg, const void *buf, size_t len);
    /*
     * rel (relative to the root) was written and closed by the client, or
     * renamed into place: a complete upload.  st is its fstat; written is
     * what this session wrote through the handle (0 for a rename).  May be
     * NULL.
     */
    void (*uploaded)(void *arg, const char *rel, const struct stat *st,
                     int64_t written);
    /*
     * rel was open for writing when the session ended: an upload the
     * client never finished.  May be NULL.
     */
    void (*abandoned)(void *arg, const char *rel, const struct stat *st);
    /*
     * Bytes written so far by the whole server, for drop_after: returns
     * the new total after adding n.  May be NULL.
     */
    int64_t (*count_written)(void *arg, int64_t n);
    void *arg;
};

struct sftpd_opts {
    int root_fd;      /* borrowed; stays open while the engine lives */
    const char *peer; /* for log lines: "192.0.2.1:5555" */
    const char *user;
    const struct sftpd_fault *fault; /* NULL: none */
};

/* A new engine for one session; freed with sftpd_free(). */
int sftpd_new(const struct sftpd_opts *o, const struct sftpd_cb *cb,
              struct sftpd **out);

/*
 * Bytes from the client.  Complete requests are answered as they arrive.
 * Returns 0, or a negative errno when the session must end: -EPROTO for a
 * malformed or oversized request (logged with the peer), -ECONNABORTED
 * for an injected drop, or what send() returned.
 */
int sftpd_input(struct sftpd *s, const void *data, size_t len);

/*
 * End the session: open handles are closed; files still open for writing
 * are reported to abandoned(), never to uploaded().
 */
void sftpd_free(struct sftpd *s);

#endif
