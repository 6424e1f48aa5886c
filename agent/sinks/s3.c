/*
 * The S3 sink (target.type = "s3"): objects in a bucket, through the S3
 * client of agent/s3/.
 *
 * A file up to part_size bytes is buffered and sent in one PutObject at
 * commit.  A larger one becomes a multipart upload: each part_size bytes
 * written fill a part buffer, which is sent as an UploadPart while the
 * next fills, up to parts_in_flight parts at once (the worker's memory
 * budget: parts_in_flight x part_size).  A part's bytes are durable once
 * the server answered with their MD5 as ETag; durable() is the end of the
 * parts completed without a gap from part 1, and the resume token is
 * "PART_SIZE UPLOAD_ID" (the part size of the upload, whatever the
 * configuration says by the time it resumes).
 *
 * Resume: open() asks ListParts and resumes after the last of the full
 * parts present without a gap from part 1, up to the file's size.  That
 * may be past the journal's offset, which lags the parts (it is written
 * after they complete; a kill -9 may come first): sink.h lets open()
 * resume higher when the sink vouches for the bytes, and each listed part
 * of this upload was stored only after the server checked its
 * Content-MD5.  So what is sent again is the parts that were in flight
 * (parts_in_flight at most) and any that completed after a gap one of
 * them left: with parts_in_flight = 1, one part at most.  An upload the
 * server lost (NoSuchUpload) starts again from 0.  abort() leaves the
 * upload for that; discard() (a source that changed or vanished) aborts
 * it, so no orphaned parts keep costing money.
 *
 * With whole_writes (a transform's members) a part ends with a write:
 * it may pass part_size by a write, so that every durable offset is a
 * member boundary the transfer can resume from.
 *
 * One thread (the worker's) drives the sink and its client; no lock.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sftprelay/conf.h"
#include "sftprelay/log.h"
#include "sftprelay/s3.h"
#include "sftprelay/s3conf.h"
#include "sftprelay/sink.h"

#define MIB (1024 * 1024)
#define PARTS_MAX 10000 /* S3's limit */
#define KEY_MAX 1024    /* S3's limit, in bytes */
#define TIMEOUT 60      /* seconds without progress */

extern const struct sink_ops sink_s3;

/* Its settings, read with s3_conf: the shared connection keys and its own. */
struct s3sink_settings {
    struct s3_settings s3;
    int64_t part_size;
    int parts_in_flight;
    char *storage_class;
};
/* A part buffer: cap bytes, of which len are filled. */
struct slot {
    unsigned char *buf;
    size_t cap;
    size_t len;
    int number; /* in flight when non-zero */
};

struct s3_sink {
    struct sink base;
    const struct s3sink_settings *cf; /* borrowed: outlives the sink */
    int cancel_fd;
    struct s3 *c;
    /* the file open */
    char *key;
    size_t part_size;
    char upload_id[S3_UPLOAD_ID_MAX]; /* "" until a part must go */
    char token[SINK_TOKEN_MAX];
    struct slot *slots; /* parts_in_flight, of part_size bytes when used */
    int n_slots;
    struct slot *fill;  /* the one being filled, or NULL */
    int next_number;    /* of the next part to start */
    struct s3_part *parts; /* [PARTS_MAX]: etag[0] once completed, with
                              the part's length as size */
    int contiguous;     /* parts 1..contiguous completed */
    int64_t durable;    /* their bytes: the last part may be shorter */
    int64_t written;    /* bytes given, from offset 0 */
    int err;            /* a part's failure, reported by the next call */
    int whole_writes;   /* sink_file's: parts end where writes end */
};

/* With whole_writes a part may pass part_size, to end with a write: by
 * this much, grown for a longer write (a transform's chunk of 256 KiB
 * compresses to no more than about that); never cut. */
#define PART_SLACK (2 * MIB)
#define PART_MIN (5 * MIB) /* S3's smallest part but the last */

static const struct conf_key s3_keys[] = {
    S3_CONF_KEYS(struct s3sink_settings, s3,
                 "bucket the files are delivered into",
                 "prepended to each file's relative path"),
    CONF_KEY_I64(struct s3sink_settings, part_size, "part_size", 8 * MIB,
                 5 * MIB, INT64_C(5) << 30,
                 "bytes of a multipart upload's part; smaller files: one PUT"),
    CONF_KEY_INT(struct s3sink_settings, parts_in_flight, "parts_in_flight", 4,
                 1, 16,
                 "parts of one file sent at once (memory: this x part_size); "
                 "after a crash at most this many are sent again"),
    CONF_KEY_STR(struct s3sink_settings, storage_class, "storage_class", "", 0,
                 "x-amz-storage-class of new objects (\"\": the bucket's "
                 "default)"),
};

static int s3sink_check(void *settings, const struct conf_scope *s,
                        char *err, size_t errlen)
{
    const struct s3sink_settings *set = settings;

    return s3_settings_check(&set->s3, s, err, errlen);
}

static const struct conf_table s3_conf = {
    .section = "target",
    .title = "sink s3",
    .keys = s3_keys,
    .n_keys = CONF_N_KEYS(s3_keys),
    .size = sizeof(struct s3sink_settings),
    .check = s3sink_check,
};

static void s3sink_describe(const void *settings, char *buf, size_t len)
{
    const struct s3sink_settings *set = settings;
    const struct s3_settings *cf = &set->s3;

    snprintf(buf, len, "s3://%s/%s (%s)", cf->bucket, cf->prefix,
             cf->endpoint[0] ? cf->endpoint : cf->region);
}

static int s3sink_create(const void *settings, int cancel_fd, struct sink **out)
{
    struct s3_sink *s = calloc(1, sizeof(*s));

    *out = NULL;
    if (s == NULL)
        return -ENOMEM;
    s->cf = settings;
    s->n_slots = s->cf->parts_in_flight;
    s->parts = calloc(PARTS_MAX, sizeof(*s->parts));
    s->slots = calloc((size_t)s->n_slots, sizeof(*s->slots));
    if (s->parts == NULL || s->slots == NULL) {
        free(s->parts);
        free(s->slots);
        free(s);
        return -ENOMEM;
    }
    s->base.ops = &sink_s3;
    s->cancel_fd = cancel_fd;
    *out = &s->base;
    return 0;
}

/* Forget the file open: parts in flight are dropped, buffers kept. */
static void reset_file(struct s3_sink *s)
{
    int i;

    if (s->c)
        s3_parts_drop(s->c);
    for (i = 0; i < s->n_slots; i++) {
        s->slots[i].len = 0;
        s->slots[i].number = 0;
    }
    free(s->key);
    s->key = NULL;
    s->fill = NULL;
    s->upload_id[0] = '\0';
    s->token[0] = '\0';
    s->next_number = 1;
    s->contiguous = 0;
    s->durable = 0;
    s->written = 0;
    s->err = 0;
    s->whole_writes = 0;
    memset(s->parts, 0, PARTS_MAX * sizeof(*s->parts));
}

static void s3sink_disconnect(struct sink *sk)
{
    struct s3_sink *s = (struct s3_sink *)sk;

    reset_file(s);
    s3_free(s->c);
    s->c = NULL;
}

static void s3sink_destroy(struct sink *sk)
{
    struct s3_sink *s = (struct s3_sink *)sk;
    int i;

    s3sink_disconnect(sk);
    for (i = 0; i < s->n_slots; i++)
        free(s->slots[i].buf);
    free(s->slots);
    free(s->parts);
    free(s);
}

/* The client's last error as the sink's; returns r. */
static int fail(struct s3_sink *s, int r)
{
    return sink_fail(&s->base, r, "%s", s3_error(s->c));
}

/*
 * A client with the keys, and one request to see they work: a one-key
 * listing.  It needs s3:ListBucket, which keys that may only write lack:
 * their 403 AccessDenied (-EACCES) still says the server knows the keys
 * and their signature (wrong keys are InvalidAccessKeyId or
 * SignatureDoesNotMatch, -EPERM), so they are taken.
 */
static int s3sink_connect(struct sink *sk)
{
    struct s3_sink *s = (struct s3_sink *)sk;
    char why[SINK_ERR_MAX];
    int r;

    if (s->c)
        return 0;
    r = s3_settings_connect(&s->cf->s3, s->cancel_fd, TIMEOUT, &s->c, why,
                            sizeof(why));
    if (r < 0)
        /* keys missing or unreadable: the whole target is refused */
        return sink_fail(sk, r == -EINVAL ? -EPROTO : r, "%s", why);
    r = s3_probe(s->c, s->cf->s3.prefix);
    if (r == -EACCES) {
        log_debug("%s: keys accepted, not allowed to list (%s)",
                  s3_describe(s->c), s3_error(s->c));
        r = 0;
    }
    if (r < 0) {
        fail(s, r);
        s3_free(s->c);
        s->c = NULL;
    }
    return r;
}

/* The object's key for rel: prefix + rel. */
static int key_of(struct s3_sink *s, const char *rel, char **key)
{
    *key = NULL;
    if (asprintf(key, "%s%s", s->cf->s3.prefix, rel) < 0) {
        *key = NULL;
        return sink_fail(&s->base, -ENOMEM, "out of memory");
    }
    if (strlen(*key) > KEY_MAX) {
        free(*key);
        *key = NULL;
        return sink_fail(&s->base, -ENAMETOOLONG,
                         "s3://%s/%s%s: a key longer than S3's %d bytes",
                         s->cf->s3.bucket, s->cf->s3.prefix, rel, KEY_MAX);
    }
    return 0;
}

/* "PART_SIZE UPLOAD_ID" into part size and id; -EINVAL if not that. */
static int parse_token(const char *t, size_t *part_size, char *id)
{
    char *end;
    unsigned long long n;

    if (t == NULL)
        return -EINVAL;
    n = strtoull(t, &end, 10);
    if (end == t || *end != ' ' || n < 5 * MIB || strlen(end + 1) == 0 ||
        strlen(end + 1) >= S3_UPLOAD_ID_MAX)
        return -EINVAL;
    *part_size = (size_t)n;
    strcpy(id, end + 1);
    return 0;
}

static void set_token(struct s3_sink *s)
{
    snprintf(s->token, sizeof(s->token), "%zu %s", s->part_size,
             s->upload_id);
}

/*
 * Take up what ListParts says of our upload: parts 1..k present without
 * a gap and whole are kept, whatever the journal's offset, as long as
 * they end within size (-1: not known); the rest is sent again.  With
 * whole_writes, parts of any length are taken, up to offset and no
 * further.  Returns where writing resumes.
 */
static int64_t adopt(struct s3_sink *s, const struct s3_part *v, size_t n,
                     int64_t size, int64_t offset)
{
    int64_t part = (int64_t)s->part_size, end = 0;
    size_t k = 0;

    while (k < n && v[k].number == (int)k + 1 &&
           (s->whole_writes ? v[k].size > 0 && end + v[k].size <= offset
                            : v[k].size == part) &&
           (size < 0 || end + v[k].size <= size)) {
        s->parts[k] = v[k];
        end += v[k].size;
        k++;
    }
    s->contiguous = (int)k;
    s->next_number = (int)k + 1;
    s->written = end;
    s->durable = end;
    return end;
}

static int s3sink_open(struct sink *sk, struct sink_file *f)
{
    struct s3_sink *s = (struct s3_sink *)sk;
    char old_id[S3_UPLOAD_ID_MAX];
    struct s3_part *listed = NULL;
    size_t old_size, n = 0;
    int r;

    reset_file(s);
    r = key_of(s, f->rel, &s->key);
    if (r < 0)
        return r;
    s->part_size = (size_t)s->cf->part_size;
    s->whole_writes = f->whole_writes;
    /* An upload of an earlier version: thrown away before anything else. */
    if (parse_token(f->stale_token, &old_size, old_id) == 0) {
        r = s3_mpu_abort(s->c, s->key, old_id);
        if (r < 0)
            return fail(s, r);
    }
    if (parse_token(f->token, &old_size, old_id) < 0) {
        f->offset = 0; /* no upload to resume */
        return 0;
    }
    /* The upload of this version, whatever the journal's offset: it may
     * lag the parts on the server by a commit. */
    r = s3_mpu_list(s->c, s->key, old_id, &listed, &n);
    if (r == -ESTALE) {
        log_info("%s: the server lost upload %s; starting again from 0",
                 s->key, old_id);
        f->offset = 0;
        return 0;
    }
    if (r < 0)
        return fail(s, r);
    s->part_size = old_size;
    snprintf(s->upload_id, sizeof(s->upload_id), "%s", old_id);
    set_token(s);
    f->offset = adopt(s, listed, n, f->size, f->offset);
    log_info("%s: resuming upload %s at part %d (%zu parts on the server)",
             s->key, s->upload_id, s->next_number, n);
    free(listed);
    return 0;
}

/* Record a completed part; parts 1..contiguous stay durable. */
static int part_done(struct s3_sink *s, const struct s3_part_done *d)
{
    struct slot *sl = d->tag;
    struct s3_part *p = &s->parts[d->number - 1];
    int64_t len = (int64_t)sl->len;

    sl->number = 0;
    sl->len = 0;
    if (d->result < 0) {
        /* The upload vanished mid-way: no errno of ours says "source
         * changed" here; the next attempt's open() starts anew. */
        s->err = d->result == -ESTALE ? -EIO : d->result;
        return fail(s, s->err);
    }
    p->number = d->number;
    p->size = len;
    snprintf(p->etag, S3_ETAG_MAX, "%s", d->etag);
    while (s->contiguous < PARTS_MAX && s->parts[s->contiguous].etag[0]) {
        s->durable += s->parts[s->contiguous].size;
        s->contiguous++;
    }
    return 0;
}

/* Take the completed parts' results; wait_ms as s3_part_poll(). */
static int harvest(struct s3_sink *s, int wait_ms)
{
    struct s3_part_done d;
    int r;

    while ((r = s3_part_poll(s->c, wait_ms, &d)) == 1) {
        r = part_done(s, &d);
        if (r < 0)
            return r;
        wait_ms = 0; /* one was waited for: take the others as they are */
    }
    return r < 0 ? fail(s, r) : 0;
}

/*
 * A buffer of part_size bytes free to fill, waiting for a part in flight
 * if all are.  The part size is the upload's (open() may resume one of
 * another size than the last file's), so a buffer of another size is
 * made again here, whatever path open() took.
 */
static int free_slot(struct s3_sink *s, struct slot **out)
{
    size_t cap = s->part_size + (s->whole_writes ? PART_SLACK : 0);
    struct slot *sl;
    int i, r;

    for (;;) {
        for (i = 0; i < s->n_slots; i++) {
            sl = &s->slots[i];
            if (sl->number)
                continue;
            if (sl->cap < cap || (sl->cap > cap && !s->whole_writes)) {
                free(sl->buf);
                sl->cap = 0;
                sl->buf = malloc(cap);
                if (sl->buf == NULL)
                    return sink_fail(&s->base, -ENOMEM, "out of memory");
                sl->cap = cap;
            }
            *out = sl;
            return 0;
        }
        r = harvest(s, -1);
        if (r < 0)
            return r;
    }
}

/* Send the full buffer as the next part, creating the upload first. */
static int start_part(struct s3_sink *s)
{
    struct s3_put_opts o = {.storage_class = s->cf->storage_class};
    struct slot *sl = s->fill;
    int r;

    if (s->upload_id[0] == '\0') {
        r = s3_mpu_create(s->c, s->key, &o, s->upload_id);
        if (r < 0)
            return fail(s, r);
        set_token(s);
    }
    if (s->next_number > PARTS_MAX)
        return sink_fail(&s->base, -EFBIG, "%s: more than %d parts of %zu "
                         "bytes: raise target.part_size", s->key, PARTS_MAX,
                         s->part_size);
    r = s3_part_start(s->c, s->key, s->upload_id, s->next_number, sl->buf,
                      sl->len, sl);
    if (r < 0)
        return fail(s, r);
    log_debug("%s: part %d of upload %s started (%zu bytes)", s->key,
              s->next_number, s->upload_id, sl->len);
    sl->number = s->next_number++;
    s->fill = NULL;
    return 0;
}

/* Whether the part being filled goes now, before len more bytes. */
static int part_full(const struct s3_sink *s, size_t len)
{
    const struct slot *sl = s->fill;

    if (sl == NULL || sl->len == 0)
        return 0;
    if (!s->whole_writes)
        return sl->len == s->part_size;
    /* End the part with the last write that fits, once it is big enough;
     * else the write goes on into the slack. */
    return sl->len + len > s->part_size && sl->len >= PART_MIN;
}

/* With whole_writes, a write is never cut: the slot grows to hold it. */
static int fit(struct s3_sink *s, size_t len)
{
    struct slot *sl = s->fill;
    unsigned char *p;

    if (!s->whole_writes || sl->len + len <= sl->cap)
        return 0;
    p = realloc(sl->buf, sl->len + len);
    if (p == NULL)
        return sink_fail(&s->base, -ENOMEM, "out of memory");
    sl->buf = p;
    sl->cap = sl->len + len;
    return 0;
}

static int s3sink_write(struct sink *sk, const void *buf, size_t len)
{
    struct s3_sink *s = (struct s3_sink *)sk;
    const unsigned char *p = buf;
    size_t n;
    int r;

    if (s->err)
        return s->err;
    r = harvest(s, 0); /* keep durable() current for the checkpoint */
    if (r < 0)
        return r;
    while (len > 0) {
        /* A full buffer goes only when more bytes follow it: a file of
         * exactly part_size is one PUT. */
        if (part_full(s, len)) {
            r = start_part(s);
            if (r < 0)
                return r;
        }
        if (s->fill == NULL) {
            r = free_slot(s, &s->fill);
            if (r < 0)
                return r;
        }
        r = fit(s, len);
        if (r < 0)
            return r;
        n = (s->whole_writes ? s->fill->cap : s->part_size) - s->fill->len;
        if (n > len)
            n = len;
        memcpy(s->fill->buf + s->fill->len, p, n);
        s->fill->len += n;
        s->written += (int64_t)n;
        p += n;
        len -= n;
    }
    return 0;
}

static int64_t s3sink_durable(struct sink *sk)
{
    struct s3_sink *s = (struct s3_sink *)sk;

    /* Take the parts completed meanwhile, without waiting: asked between
     * writes, it moves on as the server answers.  A part's failure is
     * kept in s->err for the next write or commit. */
    if (s->c && s->err == 0 && s3_parts_in_flight(s->c) > 0)
        harvest(s, 0);
    /* the last part is as long as the bytes it took, never longer */
    return s->durable < s->written ? s->durable : s->written;
}

static const char *s3sink_token(struct sink *sk)
{
    struct s3_sink *s = (struct s3_sink *)sk;

    return s->token[0] ? s->token : NULL;
}

static int s3sink_commit(struct sink *sk, struct sink_done *d)
{
    struct s3_sink *s = (struct s3_sink *)sk;
    struct s3_put_opts o = {.storage_class = s->cf->storage_class};
    struct slot *last = s->fill;
    int r;

    if (s->err)
        return s->err;
    if (d->size != s->written)
        return sink_fail(sk, -EIO, "%s: %lld bytes written, %lld expected",
                         s->key, (long long)s->written, (long long)d->size);
    if (s->upload_id[0] == '\0') {
        /* small enough for one PUT, even of no bytes */
        r = s3_put(s->c, s->key, last ? last->buf : (const void *)"",
                   last ? last->len : 0, &o, d->etag);
        if (r < 0)
            return fail(s, r);
        reset_file(s);
        return 0;
    }
    if (last && last->len) {
        r = start_part(s);
        if (r < 0)
            return r;
    }
    while (s3_parts_in_flight(s->c) > 0) {
        r = harvest(s, -1);
        if (r < 0)
            return r;
    }
    if (s->contiguous != s->next_number - 1)
        return sink_fail(sk, -EIO, "%s: part %d missing", s->key,
                         s->contiguous + 1);
    r = s3_mpu_complete(s->c, s->key, s->upload_id, s->parts, (size_t)
                        s->contiguous, d->etag);
    if (r < 0)
        /* The upload vanished (NoSuchUpload), as in part_done(): an error
         * of this attempt, and the next open() starts a new upload. */
        return fail(s, r == -ESTALE ? -EIO : r);
    reset_file(s);
    return 0;
}

static void s3sink_abort(struct sink *sk)
{
    /* the upload stays on the server for a resume */
    reset_file((struct s3_sink *)sk);
}

static int s3sink_discard(struct sink *sk, const char *rel, const char *token)
{
    struct s3_sink *s = (struct s3_sink *)sk;
    char id[S3_UPLOAD_ID_MAX], *key = NULL;
    size_t size;
    int r;

    if (parse_token(token, &size, id) < 0)
        return 0; /* nothing of ours on the server */
    r = key_of(s, rel, &key);
    if (r == 0) {
        r = s3_mpu_abort(s->c, key, id);
        if (r < 0)
            fail(s, r);
    }
    free(key);
    return r;
}

static int s3sink_exists(struct sink *sk, const char *rel)
{
    struct s3_sink *s = (struct s3_sink *)sk;
    struct s3_object o;
    char *key = NULL;
    int r = key_of(s, rel, &key);

    if (r == 0)
        r = s3_head(s->c, key, &o);
    if (r == 0)
        r = 1;
    else if (r == -ENOENT)
        r = 0;
    else if (key)
        fail(s, r);
    free(key);
    return r;
}

const struct sink_ops sink_s3 = {
    .name = "s3",
    .conf = &s3_conf,
    .create = s3sink_create,
    .describe = s3sink_describe,
    .destroy = s3sink_destroy,
    .connect = s3sink_connect,
    .disconnect = s3sink_disconnect,
    .open = s3sink_open,
    .write = s3sink_write,
    .durable = s3sink_durable,
    .token = s3sink_token,
    .commit = s3sink_commit,
    .abort = s3sink_abort,
    .discard = s3sink_discard,
    .exists = s3sink_exists,
};
