/*
 * The SFTP v3 packet codec (sftpwire.h).
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sftprelay/sftpwire.h"

int sftp_buf_reserve(struct sftp_buf *b, size_t more)
{
    size_t cap;
    uint8_t *p;

    if (b->oom)
        return -ENOMEM;
    if (b->len + more <= b->cap)
        return 0;
    cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more)
        cap *= 2;
    p = realloc(b->p, cap);
    if (p == NULL) {
        b->oom = 1;
        return -ENOMEM;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

void sftp_buf_free(struct sftp_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

void sftp_put_u8(struct sftp_buf *b, uint8_t v)
{
    if (sftp_buf_reserve(b, 1) == 0)
        b->p[b->len++] = v;
}

void sftp_put_u32(struct sftp_buf *b, uint32_t v)
{
    if (sftp_buf_reserve(b, 4) < 0)
        return;
    b->p[b->len++] = (uint8_t)(v >> 24);
    b->p[b->len++] = (uint8_t)(v >> 16);
    b->p[b->len++] = (uint8_t)(v >> 8);
    b->p[b->len++] = (uint8_t)v;
}

void sftp_put_u64(struct sftp_buf *b, uint64_t v)
{
    sftp_put_u32(b, (uint32_t)(v >> 32));
    sftp_put_u32(b, (uint32_t)v);
}

void sftp_put_bytes(struct sftp_buf *b, const void *p, size_t n)
{
    sftp_put_u32(b, (uint32_t)n);
    if (n > 0 && sftp_buf_reserve(b, n) == 0) {
        memcpy(b->p + b->len, p, n);
        b->len += n;
    }
}

void sftp_put_str(struct sftp_buf *b, const char *s)
{
    sftp_put_bytes(b, s, strlen(s));
}

void sftp_put_attrs(struct sftp_buf *b, const struct sftp_attrs *a)
{
    uint32_t f = a->flags & ~SFTP_ATTR_EXTENDED;

    sftp_put_u32(b, f);
    if (f & SFTP_ATTR_SIZE)
        sftp_put_u64(b, a->size);
    if (f & SFTP_ATTR_UIDGID) {
        sftp_put_u32(b, a->uid);
        sftp_put_u32(b, a->gid);
    }
    if (f & SFTP_ATTR_PERMISSIONS)
        sftp_put_u32(b, a->perm);
    if (f & SFTP_ATTR_ACMODTIME) {
        sftp_put_u32(b, a->atime);
        sftp_put_u32(b, a->mtime);
    }
}

size_t sftp_packet_begin(struct sftp_buf *b, uint8_t type, uint32_t id)
{
    size_t start = b->len;

    sftp_put_u32(b, 0); /* the length, written by sftp_packet_end() */
    sftp_put_u8(b, type);
    if (type != SFTP_INIT && type != SFTP_VERSION)
        sftp_put_u32(b, id);
    return start;
}

void sftp_packet_end(struct sftp_buf *b, size_t start)
{
    uint32_t n;

    if (b->oom || b->len < start + 4)
        return;
    n = (uint32_t)(b->len - start - 4);
    b->p[start] = (uint8_t)(n >> 24);
    b->p[start + 1] = (uint8_t)(n >> 16);
    b->p[start + 2] = (uint8_t)(n >> 8);
    b->p[start + 3] = (uint8_t)n;
}

uint32_t sftp_u32_at(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

uint8_t sftp_get_u8(struct sftp_cur *c)
{
    uint8_t v;

    if (c->left < 1) {
        c->bad = 1;
        return 0;
    }
    v = c->p[0];
    c->p++;
    c->left--;
    return v;
}

uint32_t sftp_get_u32(struct sftp_cur *c)
{
    uint32_t v;

    if (c->left < 4) {
        c->bad = 1;
        return 0;
    }
    v = sftp_u32_at(c->p);
    c->p += 4;
    c->left -= 4;
    return v;
}

uint64_t sftp_get_u64(struct sftp_cur *c)
{
    uint64_t hi = sftp_get_u32(c);

    return hi << 32 | sftp_get_u32(c);
}

const uint8_t *sftp_get_bytes(struct sftp_cur *c, size_t *len)
{
    uint32_t n = sftp_get_u32(c);
    const uint8_t *p = c->p;

    if (c->bad || n > c->left) {
        c->bad = 1;
        *len = 0;
        return NULL;
    }
    c->p += n;
    c->left -= n;
    *len = n;
    return p;
}

void sftp_get_attrs(struct sftp_cur *c, struct sftp_attrs *a)
{
    uint32_t n, i;
    size_t len;

    memset(a, 0, sizeof(*a));
    a->flags = sftp_get_u32(c);
    if (a->flags & SFTP_ATTR_SIZE)
        a->size = sftp_get_u64(c);
    if (a->flags & SFTP_ATTR_UIDGID) {
        a->uid = sftp_get_u32(c);
        a->gid = sftp_get_u32(c);
    }
    if (a->flags & SFTP_ATTR_PERMISSIONS)
        a->perm = sftp_get_u32(c);
    if (a->flags & SFTP_ATTR_ACMODTIME) {
        a->atime = sftp_get_u32(c);
        a->mtime = sftp_get_u32(c);
    }
    if (a->flags & SFTP_ATTR_EXTENDED) {
        n = sftp_get_u32(c);
        for (i = 0; i < n && !c->bad; i++) {
            sftp_get_bytes(c, &len);
            sftp_get_bytes(c, &len);
        }
    }
}
