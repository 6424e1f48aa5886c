/*
 * The SFTP engine driven packet by packet: uploads and what the ingest
 * hooks see, reads, directory listings, renames, extensions, every way out
 * of the root, malformed and oversized requests, fault injection.
 */
#include "config.h"

#include <stdint.h>

#include "testutil.h"
#include "sftprelay/sftpd.h"

enum {
    INIT = 1,
    FXP_VERSION = 2,
    OPEN = 3,
    CLOSE = 4,
    READ = 5,
    WRITE = 6,
    LSTAT = 7,
    FSTAT = 8,
    SETSTAT = 9,
    OPENDIR = 11,
    READDIR = 12,
    REMOVE = 13,
    MKDIR = 14,
    RMDIR = 15,
    REALPATH = 16,
    STAT = 17,
    RENAME = 18,
    READLINK = 19,
    SYMLINK = 20,
    STATUS = 101,
    HANDLE = 102,
    DATA = 103,
    NAME = 104,
    ATTRS = 105,
    EXTENDED = 200,
    EXTENDED_REPLY = 201
};
enum {
    OK = 0,
    FX_EOF = 1,
    NO_SUCH_FILE = 2,
    PERMISSION_DENIED = 3,
    FAILURE = 4,
    OP_UNSUPPORTED = 8
};

static char *dir, *root;
static int root_fd;
static struct sftpd *s;
static struct sftpd_fault fault;
static uint8_t out[1 << 20];
static size_t out_len, out_pos;
static char uploaded[16][256], abandoned[16][256];
static int n_uploaded, n_abandoned;
static int64_t written_total;

/* A reply as parsed. */
struct rep {
    int type;
    uint32_t id;
    uint32_t code;
    char msg[256];
    uint8_t data[65536];
    size_t len;
};

static int on_send(void *arg, const void *buf, size_t len)
{
    ck_assert_uint_le(out_len + len, sizeof(out));
    memcpy(out + out_len, buf, len);
    out_len += len;
    return 0;
}

static void on_uploaded(void *arg, const char *rel, const struct stat *st,
                        int64_t written)
{
    snprintf(uploaded[n_uploaded++ % 16], 256, "%s:%lld", rel,
             (long long)st->st_size);
}

static void on_abandoned(void *arg, const char *rel, const struct stat *st)
{
    snprintf(abandoned[n_abandoned++ % 16], 256, "%s:%lld", rel,
             (long long)st->st_size);
}

static int64_t on_count(void *arg, int64_t n)
{
    return written_total += n;
}

/* --- a tiny client ------------------------------------------------------ */

static uint8_t pk[1 << 18];
static size_t pk_len;
static uint32_t next_id = 1;

static void u32(uint32_t v)
{
    pk[pk_len++] = (uint8_t)(v >> 24);
    pk[pk_len++] = (uint8_t)(v >> 16);
    pk[pk_len++] = (uint8_t)(v >> 8);
    pk[pk_len++] = (uint8_t)v;
}

static void u64(uint64_t v)
{
    u32((uint32_t)(v >> 32));
    u32((uint32_t)v);
}

static void bytes(const void *p, size_t n)
{
    u32((uint32_t)n);
    memcpy(pk + pk_len, p, n);
    pk_len += n;
}

static void str(const char *p)
{
    bytes(p, strlen(p));
}

static uint32_t begin(int type)
{
    pk_len = 4;
    pk[pk_len++] = (uint8_t)type;
    if (type != INIT)
        u32(next_id);
    return next_id++;
}

/* Fill in the length field; returns the packet's size. */
static size_t finish(void)
{
    uint32_t n = (uint32_t)(pk_len - 4);

    pk[0] = (uint8_t)(n >> 24);
    pk[1] = (uint8_t)(n >> 16);
    pk[2] = (uint8_t)(n >> 8);
    pk[3] = (uint8_t)n;
    return pk_len;
}

static int send_pk(void)
{
    return sftpd_input(s, pk, finish());
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

/* The next reply the engine sent. */
static void reply(struct rep *r)
{
    const uint8_t *p = out + out_pos;
    uint32_t n, len;

    memset(r, 0, sizeof(*r));
    ck_assert_uint_ge(out_len - out_pos, 5);
    n = rd32(p);
    ck_assert_uint_le(out_pos + 4 + n, out_len);
    r->type = p[4];
    if (r->type != FXP_VERSION)
        r->id = rd32(p + 5);
    if (r->type == STATUS) {
        r->code = rd32(p + 9);
        len = rd32(p + 13);
        snprintf(r->msg, sizeof(r->msg), "%.*s", (int)len, p + 17);
    } else if (r->type == HANDLE || r->type == DATA || r->type == NAME) {
        len = r->type == NAME ? rd32(p + 13) : rd32(p + 9);
        r->len = len;
        memcpy(r->data, p + (r->type == NAME ? 17 : 13), len);
    } else {
        r->len = n - (r->type == FXP_VERSION ? 1 : 5);
        memcpy(r->data, p + (r->type == FXP_VERSION ? 5 : 9), r->len);
    }
    out_pos += 4 + n;
}

static void expect_status(uint32_t id, uint32_t code)
{
    struct rep r;

    reply(&r);
    ck_assert_int_eq(r.type, STATUS);
    ck_assert_uint_eq(r.id, id);
    ck_assert_msg(r.code == code, "status %u (%s), expected %u", r.code, r.msg,
                  code);
}

/* open path; returns the handle in h (8 bytes) or the status code. */
static uint32_t open_path(const char *path, uint32_t pflags, uint8_t h[8])
{
    struct rep r;
    uint32_t id = begin(OPEN);

    str(path);
    u32(pflags);
    u32(0);
    ck_assert_int_eq(send_pk(), 0);
    reply(&r);
    ck_assert_uint_eq(r.id, id);
    if (r.type == STATUS)
        return r.code;
    ck_assert_int_eq(r.type, HANDLE);
    ck_assert_uint_eq(r.len, 8);
    memcpy(h, r.data, 8);
    return OK;
}

static void write_at(const uint8_t h[8], uint64_t off, const char *data,
                     uint32_t code)
{
    uint32_t id = begin(WRITE);

    bytes(h, 8);
    u64(off);
    str(data);
    ck_assert_int_eq(send_pk(), 0);
    expect_status(id, code);
}

static void close_h(const uint8_t h[8])
{
    uint32_t id = begin(CLOSE);

    bytes(h, 8);
    ck_assert_int_eq(send_pk(), 0);
    expect_status(id, OK);
}

/* A one-path request; returns the reply. */
static void path_req(int type, const char *path, struct rep *r)
{
    uint32_t id = begin(type);

    str(path);
    if (type == MKDIR)
        u32(0);
    ck_assert_int_eq(send_pk(), 0);
    reply(r);
    ck_assert_uint_eq(r->id, id);
}

static uint32_t path_status(int type, const char *path)
{
    struct rep r;

    path_req(type, path, &r);
    ck_assert_int_eq(r.type, STATUS);
    return r.code;
}

static void setup(void)
{
    struct sftpd_opts o = {.peer = "test", .user = "u", .fault = &fault};
    struct sftpd_cb cb = {.send = on_send,
                          .uploaded = on_uploaded,
                          .abandoned = on_abandoned,
                          .count_written = on_count};
    struct rep r;

    dir = tu_tmpdir();
    ck_assert_int_ge(asprintf(&root, "%s/root", dir), 0);
    ck_assert_int_eq(mkdir(root, 0755), 0);
    free(tu_write_str(dir, "outside.txt", "secret outside the root\n"));
    free(tu_write_str(root, "a/existing.txt", "existing\n"));
    root_fd = open(root, O_RDONLY | O_DIRECTORY);
    ck_assert_int_ge(root_fd, 0);
    o.root_fd = root_fd;
    memset(&fault, 0, sizeof(fault));
    fault.drop_after = -1;
    out_len = out_pos = 0;
    n_uploaded = n_abandoned = 0;
    written_total = 0;
    ck_assert_int_eq(sftpd_new(&o, &cb, &s), 0);
    begin(INIT);
    u32(3);
    ck_assert_int_eq(send_pk(), 0);
    reply(&r);
    ck_assert_int_eq(r.type, FXP_VERSION);
    ck_assert_uint_eq(rd32(r.data), 3);
}

static void teardown(void)
{
    sftpd_free(s);
    close(root_fd);
    tu_rmtree(dir);
    free(root);
    free(dir);
}

static char *slurp(const char *rel)
{
    static char buf[4096];
    char *p = NULL;
    FILE *f;
    size_t n;

    ck_assert_int_ge(asprintf(&p, "%s/%s", root, rel), 0);
    f = fopen(p, "rb");
    free(p);
    if (f == NULL)
        return NULL;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* A new engine answering INIT with fault in force: the VERSION reply. */
static void init_with_fault(struct rep *r)
{
    struct sftpd *t;
    struct sftpd_opts o = {.root_fd = root_fd, .peer = "t", .fault = &fault};
    struct sftpd_cb cb = {.send = on_send};

    ck_assert_int_eq(sftpd_new(&o, &cb, &t), 0);
    out_len = out_pos = 0;
    begin(INIT);
    u32(3);
    ck_assert_int_eq(sftpd_input(t, pk, finish()), 0);
    sftpd_free(t);
    reply(r);
    ck_assert_int_eq(r->type, FXP_VERSION);
}

START_TEST(test_version_lists_extensions)
{
    /* Version 3, and the extensions after it. */
    const char *want[] = {"posix-rename@openssh.com", "statvfs@openssh.com",
                          "fsync@openssh.com", "limits@openssh.com"};
    struct rep r;
    size_t i;

    init_with_fault(&r); /* no fault set */
    ck_assert_uint_eq(rd32(r.data), 3);
    for (i = 0; i < 4; i++)
        ck_assert_ptr_nonnull(memmem(r.data, r.len, want[i], strlen(want[i])));
}
END_TEST

START_TEST(test_upload_and_ingest_hook)
{
    uint8_t h[8];

    ck_assert_uint_eq(open_path("/a/b.txt", 0x2 | 0x8 | 0x10, h), OK);
    write_at(h, 0, "hello", OK);
    write_at(h, 5, " world", OK);
    ck_assert_int_eq(n_uploaded, 0); /* not before the close */
    close_h(h);
    ck_assert_str_eq(slurp("a/b.txt"), "hello world");
    ck_assert_int_eq(n_uploaded, 1);
    ck_assert_str_eq(uploaded[0], "a/b.txt:11");
    /* A relative path is relative to the root too. */
    ck_assert_uint_eq(open_path("a/c.txt", 0x2 | 0x8, h), OK);
    write_at(h, 3, "xyz", OK); /* a hole, then data */
    close_h(h);
    ck_assert_str_eq(uploaded[1], "a/c.txt:6");
    /* Exclusive create of an existing file fails. */
    ck_assert_uint_eq(open_path("a/c.txt", 0x2 | 0x8 | 0x20, h), FAILURE);
    /* Append goes to the end whatever the offset. */
    ck_assert_uint_eq(open_path("a/b.txt", 0x2 | 0x4, h), OK);
    write_at(h, 0, "!", OK);
    close_h(h);
    ck_assert_str_eq(slurp("a/b.txt"), "hello world!");
}
END_TEST

START_TEST(test_abandoned_upload_not_reported_complete)
{
    uint8_t h[8];

    ck_assert_uint_eq(open_path("half.bin", 0x2 | 0x8, h), OK);
    write_at(h, 0, "only the first half", OK);
    sftpd_free(s); /* the client vanished */
    s = NULL;
    ck_assert_int_eq(n_uploaded, 0);
    ck_assert_int_eq(n_abandoned, 1);
    ck_assert_str_eq(abandoned[0], "half.bin:19");
}
END_TEST

START_TEST(test_read_and_eof)
{
    struct rep r;
    uint8_t h[8];
    uint32_t id;

    ck_assert_uint_eq(open_path("a/existing.txt", 0x1, h), OK);
    id = begin(READ);
    bytes(h, 8);
    u64(0);
    u32(100);
    ck_assert_int_eq(send_pk(), 0);
    reply(&r);
    ck_assert_int_eq(r.type, DATA);
    ck_assert_uint_eq(r.id, id);
    ck_assert_uint_eq(r.len, 9);
    ck_assert_int_eq(memcmp(r.data, "existing\n", 9), 0);
    id = begin(READ);
    bytes(h, 8);
    u64(9);
    u32(100);
    ck_assert_int_eq(send_pk(), 0);
    expect_status(id, FX_EOF);
    /* Writing through a read handle is refused. */
    write_at(h, 0, "x", PERMISSION_DENIED);
    close_h(h);
    ck_assert_int_eq(n_uploaded, 0);
}
END_TEST

START_TEST(test_escapes_refused)
{
    static const char *const out_paths[] = {
        "../outside.txt",
        "/../outside.txt",
        "a/../../outside.txt",
        "/a/../../../../outside.txt",
        "..",
    };
    struct rep r;
    uint8_t h[8];
    char *link = NULL;
    size_t i;

    for (i = 0; i < sizeof(out_paths) / sizeof(out_paths[0]); i++) {
        ck_assert_msg(open_path(out_paths[i], 0x1, h) == PERMISSION_DENIED,
                      "open %s not refused", out_paths[i]);
        ck_assert_uint_eq(path_status(STAT, out_paths[i]), PERMISSION_DENIED);
        ck_assert_uint_eq(path_status(MKDIR, out_paths[i]), PERMISSION_DENIED);
        ck_assert_uint_eq(path_status(REMOVE, out_paths[i]), PERMISSION_DENIED);
    }
    /* An absolute path means the root's: /outside.txt is not the real one. */
    ck_assert_uint_eq(open_path("/outside.txt", 0x1, h), NO_SUCH_FILE);
    /* A link planted inside the root pointing out of it. */
    ck_assert_int_ge(asprintf(&link, "%s/evil", root), 0);
    ck_assert_int_eq(symlink(dir, link), 0);
    ck_assert_uint_eq(open_path("evil/outside.txt", 0x1, h), PERMISSION_DENIED);
    ck_assert_uint_eq(open_path("evil/new.txt", 0x2 | 0x8, h),
                      PERMISSION_DENIED);
    ck_assert_uint_eq(path_status(OPENDIR, "evil"), PERMISSION_DENIED);
    ck_assert_uint_eq(path_status(STAT, "evil"), PERMISSION_DENIED);
    path_req(LSTAT, "evil", &r); /* the link itself may be seen */
    ck_assert_int_eq(r.type, ATTRS);
    free(link);
    /* A link to /etc/passwd, absolute. */
    ck_assert_int_ge(asprintf(&link, "%s/pw", root), 0);
    ck_assert_int_eq(symlink("/etc/passwd", link), 0);
    ck_assert_uint_eq(open_path("pw", 0x1, h), PERMISSION_DENIED);
    free(link);
    /* Renaming out of the root, and creating links, are refused. */
    {
        uint32_t id = begin(RENAME);

        str("a/existing.txt");
        str("../stolen.txt");
        ck_assert_int_eq(send_pk(), 0);
        expect_status(id, PERMISSION_DENIED);
        id = begin(SYMLINK);
        str("x");
        str("/etc/passwd");
        ck_assert_int_eq(send_pk(), 0);
        expect_status(id, PERMISSION_DENIED);
    }
    ck_assert_str_eq(slurp("a/existing.txt"), "existing\n");
    /* realpath never leaves the root. */
    path_req(REALPATH, ".", &r);
    ck_assert_int_eq(r.type, NAME);
    ck_assert_int_eq(memcmp(r.data, "/", r.len), 0);
    path_req(REALPATH, "/a/./b/../c", &r);
    ck_assert_int_eq(memcmp(r.data, "/a/c", r.len), 0);
    ck_assert_uint_eq(path_status(REALPATH, "../.."), PERMISSION_DENIED);
}
END_TEST

START_TEST(test_dirs_and_rename)
{
    struct rep r;
    uint8_t h[8];
    uint32_t id;
    int names = 0, eof = 0, guard;

    ck_assert_uint_eq(path_status(MKDIR, "d"), OK);
    ck_assert_uint_eq(path_status(MKDIR, "d"), FAILURE);
    free(tu_write_str(root, "d/one", "1"));
    free(tu_write_str(root, "d/two", "2"));
    path_req(OPENDIR, "/d", &r);
    ck_assert_int_eq(r.type, HANDLE);
    memcpy(h, r.data, 8);
    for (guard = 0; guard < 10 && !eof; guard++) {
        id = begin(READDIR);
        bytes(h, 8);
        ck_assert_int_eq(send_pk(), 0);
        reply(&r);
        ck_assert_uint_eq(r.id, id);
        if (r.type == STATUS) {
            ck_assert_uint_eq(r.code, FX_EOF);
            eof = 1;
        } else {
            ck_assert_int_eq(r.type, NAME);
            names++;
        }
    }
    ck_assert(eof);
    ck_assert_int_ge(names, 1);
    close_h(h);

    /* SFTP v3 rename does not replace; posix-rename does. */
    id = begin(RENAME);
    str("d/one");
    str("d/two");
    ck_assert_int_eq(send_pk(), 0);
    expect_status(id, FAILURE);
    ck_assert_str_eq(slurp("d/two"), "2");
    id = begin(EXTENDED);
    str("posix-rename@openssh.com");
    str("d/one");
    str("d/two");
    ck_assert_int_eq(send_pk(), 0);
    expect_status(id, OK);
    ck_assert_str_eq(slurp("d/two"), "1");
    /* A file renamed into place counts as an upload. */
    ck_assert_int_eq(n_uploaded, 1);
    ck_assert_str_eq(uploaded[0], "d/two:1");

    ck_assert_uint_eq(path_status(RMDIR, "d"), FAILURE); /* not empty */
    ck_assert_uint_eq(path_status(REMOVE, "d/two"), OK);
    ck_assert_uint_eq(path_status(REMOVE, "d/two"), NO_SUCH_FILE);
    ck_assert_uint_eq(path_status(REMOVE, "d"), FAILURE); /* a folder */
    ck_assert_uint_eq(path_status(RMDIR, "d"), OK);
}
END_TEST

START_TEST(test_setstat_and_attrs)
{
    struct rep r;
    struct stat st;
    char *p = NULL;
    uint32_t id;

    id = begin(SETSTAT);
    str("a/existing.txt");
    u32(0x1 | 0x4 | 0x8);
    u64(3);
    u32(0600);
    u32(1000000000);
    u32(1000000000);
    ck_assert_int_eq(send_pk(), 0);
    expect_status(id, OK);
    ck_assert_int_ge(asprintf(&p, "%s/a/existing.txt", root), 0);
    ck_assert_int_eq(stat(p, &st), 0);
    free(p);
    ck_assert_int_eq(st.st_size, 3);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    ck_assert_int_eq(st.st_mtime, 1000000000);
    path_req(STAT, "a/existing.txt", &r);
    ck_assert_int_eq(r.type, ATTRS);
    ck_assert_uint_eq(rd32(r.data + 8), 3); /* low word of the size */
    /* chown is not offered */
    id = begin(SETSTAT);
    str("a/existing.txt");
    u32(0x2);
    u32(0);
    u32(0);
    ck_assert_int_eq(send_pk(), 0);
    expect_status(id, OP_UNSUPPORTED);
}
END_TEST

START_TEST(test_extensions)
{
    struct rep r;
    uint8_t h[8];
    uint32_t id;

    id = begin(EXTENDED);
    str("limits@openssh.com");
    ck_assert_int_eq(send_pk(), 0);
    reply(&r);
    ck_assert_int_eq(r.type, EXTENDED_REPLY);
    ck_assert_uint_eq(r.id, id);
    ck_assert_uint_eq(rd32(r.data + 4), SFTPD_MAX_PACKET);
    id = begin(EXTENDED);
    str("statvfs@openssh.com");
    str("/");
    ck_assert_int_eq(send_pk(), 0);
    reply(&r);
    ck_assert_int_eq(r.type, EXTENDED_REPLY);
    ck_assert_uint_eq(r.len, 11 * 8);
    ck_assert_uint_eq(open_path("f", 0x2 | 0x8, h), OK);
    id = begin(EXTENDED);
    str("fsync@openssh.com");
    bytes(h, 8);
    ck_assert_int_eq(send_pk(), 0);
    expect_status(id, OK);
    close_h(h);
    id = begin(EXTENDED);
    str("copy-data");
    ck_assert_int_eq(send_pk(), 0);
    expect_status(id, OP_UNSUPPORTED);
}
END_TEST

START_TEST(test_malformed_and_oversized)
{
    uint8_t h[8] = {0, 0, 0, 9, 0, 0, 0, 1};
    uint8_t short_pk[5] = {0, 0, 0, 1, OPEN};
    uint32_t id;

    /* A stale or forged handle is refused, the session goes on. */
    id = begin(CLOSE);
    bytes(h, 8);
    ck_assert_int_eq(send_pk(), 0);
    expect_status(id, FAILURE);
    /* An unknown request type gets "unsupported". */
    id = begin(99);
    ck_assert_int_eq(send_pk(), 0);
    expect_status(id, OP_UNSUPPORTED);
    /* A truncated request (no id) ends the session. */
    ck_assert_int_eq(sftpd_input(s, short_pk, sizeof(short_pk)), -EPROTO);
}
END_TEST

START_TEST(test_oversized_request)
{
    uint8_t huge[4] = {0x7f, 0xff, 0xff, 0xff};

    ck_assert_int_eq(sftpd_input(s, huge, sizeof(huge)), -EPROTO);
}
END_TEST

START_TEST(test_truncated_fields_answered)
{
    uint32_t id = begin(OPEN);

    u32(1000); /* a string longer than the packet */
    ck_assert_int_eq(send_pk(), 0);
    expect_status(id, 5 /* BAD_MESSAGE */);
}
END_TEST

START_TEST(test_partial_packets)
{
    struct rep r;
    size_t i;

    begin(REALPATH);
    str("a");
    {
        size_t n = finish();
        uint8_t copy[64];

        memcpy(copy, pk, n);
        for (i = 0; i < n; i++) /* one byte at a time */
            ck_assert_int_eq(sftpd_input(s, copy + i, 1), 0);
    }
    reply(&r);
    ck_assert_int_eq(r.type, NAME);
    ck_assert_int_eq(memcmp(r.data, "/a", 2), 0);
}
END_TEST

START_TEST(test_fault_injection)
{
    uint8_t h[8];
    struct rep r;
    uint32_t id;

    ck_assert_uint_eq(open_path("f", 0x2 | 0x8, h), OK);
    fault.write_errno = ENOSPC;
    id = begin(WRITE);
    bytes(h, 8);
    u64(0);
    str("data");
    ck_assert_int_eq(send_pk(), 0);
    reply(&r);
    ck_assert_uint_eq(r.id, id);
    ck_assert_uint_eq(r.code, FAILURE);
    ck_assert_str_eq(r.msg, "No space left on device");
    fault.write_errno = EACCES;
    write_at(h, 0, "data", PERMISSION_DENIED);
    fault.write_errno = 0;
    write_at(h, 0, "data", OK);
    fault.drop_after = 6;
    write_at(h, 4, "56", OK); /* 6 bytes so far */
    begin(WRITE);
    bytes(h, 8);
    u64(6);
    str("7");
    ck_assert_int_eq(send_pk(), -ECONNABORTED);
}
END_TEST

START_TEST(test_fault_no_limits)
{
    const char *kept[] = {"posix-rename@openssh.com", "statvfs@openssh.com",
                          "fsync@openssh.com"};
    const char *lim = "limits@openssh.com";
    struct rep r;
    uint32_t id;
    size_t i;

    fault.no_limits = 1;
    init_with_fault(&r);
    ck_assert_ptr_null(memmem(r.data, r.len, lim, strlen(lim)));
    for (i = 0; i < 3; i++)
        ck_assert_ptr_nonnull(memmem(r.data, r.len, kept[i], strlen(kept[i])));
    /* Asked for anyway, it is not there either. */
    out_len = out_pos = 0;
    id = begin(EXTENDED);
    str(lim);
    ck_assert_int_eq(send_pk(), 0);
    expect_status(id, OP_UNSUPPORTED);

    fault.no_limits = 0;
    init_with_fault(&r);
    ck_assert_ptr_nonnull(memmem(r.data, r.len, lim, strlen(lim)));
}
END_TEST

START_TEST(test_fault_write_error_midway)
{
    uint8_t h[8];

    ck_assert_uint_eq(open_path("f", 0x2 | 0x8, h), OK);
    fault.write_errno = EACCES;
    fault.write_errno_from = 6;
    write_at(h, 0, "0123", OK);
    write_at(h, 4, "45", OK); /* ends at 6: still below the fault */
    write_at(h, 6, "6", PERMISSION_DENIED);
    write_at(h, 5, "56", PERMISSION_DENIED); /* reaches past 6 */
    write_at(h, 2, "ab", OK);                /* below 6: still taken */
    fault.write_errno = 0;
    write_at(h, 6, "6789", OK);
    close_h(h);
    ck_assert_str_eq(slurp("f"), "01ab456789");
}
END_TEST

START_TEST(test_fault_max_write)
{
    uint8_t h[8];
    struct rep r;
    uint32_t id;

    ck_assert_uint_eq(open_path("f", 0x2 | 0x8, h), OK);
    fault.max_write = 4;
    write_at(h, 0, "0123", OK);
    id = begin(WRITE);
    bytes(h, 8);
    u64(4);
    str("45678");
    ck_assert_int_eq(send_pk(), 0);
    reply(&r);
    ck_assert_uint_eq(r.id, id);
    ck_assert_uint_eq(r.code, FAILURE);
    ck_assert_str_eq(r.msg, "Write larger than the server takes");
    fault.max_write = 0;
    write_at(h, 4, "45678", OK);
    close_h(h);
    ck_assert_str_eq(slurp("f"), "012345678");
}
END_TEST

static Suite *sftpd_suite(void)
{
    Suite *suite = suite_create("sftpd");
    TCase *tc = tcase_create("protocol");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_version_lists_extensions);
    tcase_add_test(tc, test_upload_and_ingest_hook);
    tcase_add_test(tc, test_abandoned_upload_not_reported_complete);
    tcase_add_test(tc, test_read_and_eof);
    tcase_add_test(tc, test_escapes_refused);
    tcase_add_test(tc, test_dirs_and_rename);
    tcase_add_test(tc, test_setstat_and_attrs);
    tcase_add_test(tc, test_extensions);
    tcase_add_test(tc, test_malformed_and_oversized);
    tcase_add_test(tc, test_oversized_request);
    tcase_add_test(tc, test_truncated_fields_answered);
    tcase_add_test(tc, test_partial_packets);
    tcase_add_test(tc, test_fault_injection);
    tcase_add_test(tc, test_fault_no_limits);
    tcase_add_test(tc, test_fault_write_error_midway);
    tcase_add_test(tc, test_fault_max_write);
    suite_add_tcase(suite, tc);
    return suite;
}

TU_MAIN(sftpd_suite)
