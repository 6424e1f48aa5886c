/*
 * SFTP version 3 on the wire (draft-ietf-secsh-filexfer-02): the numbers
 * and the packet codec both ends use, the embedded server (sftpd.c) and
 * the client (sftpc.c).
 *
 * A packet is uint32 length, byte type, then (all but INIT and VERSION)
 * uint32 request id and the fields of its type.  Writers append to a
 * growing struct sftp_buf and remember running out of memory in it;
 * readers take fields from a struct sftp_cur and remember reading past
 * its end, so a caller checks once, after the last field.
 */
#ifndef SFTPRELAY_SFTPWIRE_H
#define SFTPRELAY_SFTPWIRE_H

#include <stddef.h>
#include <stdint.h>

enum sftp_type {
    SFTP_INIT = 1,
    SFTP_VERSION = 2,
    SFTP_OPEN = 3,
    SFTP_CLOSE = 4,
    SFTP_READ = 5,
    SFTP_WRITE = 6,
    SFTP_LSTAT = 7,
    SFTP_FSTAT = 8,
    SFTP_SETSTAT = 9,
    SFTP_FSETSTAT = 10,
    SFTP_OPENDIR = 11,
    SFTP_READDIR = 12,
    SFTP_REMOVE = 13,
    SFTP_MKDIR = 14,
    SFTP_RMDIR = 15,
    SFTP_REALPATH = 16,
    SFTP_STAT = 17,
    SFTP_RENAME = 18,
    SFTP_READLINK = 19,
    SFTP_SYMLINK = 20,
    SFTP_STATUS = 101,
    SFTP_HANDLE = 102,
    SFTP_DATA = 103,
    SFTP_NAME = 104,
    SFTP_ATTRS = 105,
    SFTP_EXTENDED = 200,
    SFTP_EXTENDED_REPLY = 201,
};

/* STATUS codes; v3 has nothing past CONNECTION_LOST and OP_UNSUPPORTED. */
enum sftp_status {
    SFTP_FX_OK = 0,
    SFTP_FX_EOF = 1,
    SFTP_FX_NO_SUCH_FILE = 2,
    SFTP_FX_PERMISSION_DENIED = 3,
    SFTP_FX_FAILURE = 4,
    SFTP_FX_BAD_MESSAGE = 5,
    SFTP_FX_NO_CONNECTION = 6,
    SFTP_FX_CONNECTION_LOST = 7,
    SFTP_FX_OP_UNSUPPORTED = 8,
};

/* ATTRS flags */
#define SFTP_ATTR_SIZE 0x1u
#define SFTP_ATTR_UIDGID 0x2u
#define SFTP_ATTR_PERMISSIONS 0x4u
#define SFTP_ATTR_ACMODTIME 0x8u
#define SFTP_ATTR_EXTENDED 0x80000000u

/* OPEN pflags */
#define SFTP_PF_READ 0x1u
#define SFTP_PF_WRITE 0x2u
#define SFTP_PF_APPEND 0x4u
#define SFTP_PF_CREAT 0x8u
#define SFTP_PF_TRUNC 0x10u
#define SFTP_PF_EXCL 0x20u

/* The version this codec speaks. */
#define SFTP_VERSION_3 3

struct sftp_attrs {
    uint32_t flags; /* SFTP_ATTR_*: which fields hold a value */
    uint64_t size;
    uint32_t uid, gid, perm, atime, mtime;
};

/* A packet being written. */
struct sftp_buf {
    uint8_t *p;
    size_t len, cap;
    int oom; /* an append failed: the packet is incomplete */
};

/* A packet being read. */
struct sftp_cur {
    const uint8_t *p;
    size_t left;
    int bad; /* a field ran past the end */
};

/* Room for more bytes: 0, or -ENOMEM (and b->oom set). */
int sftp_buf_reserve(struct sftp_buf *b, size_t more);
void sftp_buf_free(struct sftp_buf *b);

void sftp_put_u8(struct sftp_buf *b, uint8_t v);
void sftp_put_u32(struct sftp_buf *b, uint32_t v);
void sftp_put_u64(struct sftp_buf *b, uint64_t v);
/* A string: uint32 length, then n bytes. */
void sftp_put_bytes(struct sftp_buf *b, const void *p, size_t n);
void sftp_put_str(struct sftp_buf *b, const char *s);
void sftp_put_attrs(struct sftp_buf *b, const struct sftp_attrs *a);

/*
 * Start a packet of type at b->len (with id unless type is INIT or
 * VERSION); sftp_packet_end() writes its length.  Returns its start.
 */
size_t sftp_packet_begin(struct sftp_buf *b, uint8_t type, uint32_t id);
void sftp_packet_end(struct sftp_buf *b, size_t start);

/* Big-endian uint32 at p (4 readable bytes). */
uint32_t sftp_u32_at(const uint8_t *p);

uint8_t sftp_get_u8(struct sftp_cur *c);
uint32_t sftp_get_u32(struct sftp_cur *c);
uint64_t sftp_get_u64(struct sftp_cur *c);
/* A string's bytes (not NUL-terminated) and length, or NULL. */
const uint8_t *sftp_get_bytes(struct sftp_cur *c, size_t *len);
/* ATTRS; extended pairs are skipped. */
void sftp_get_attrs(struct sftp_cur *c, struct sftp_attrs *a);

#endif
