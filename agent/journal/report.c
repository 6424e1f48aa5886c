/*
 * The journal's rows and status as JSON (report.h).  Times are Unix
 * seconds, or null when unset; strings go through text_print_json(), so
 * what a person's terminal or a JSON parser gets is always valid text.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sftprelay/progress.h"
#include "sftprelay/report.h"
#include "sftprelay/text.h"

static void kv_str(FILE *out, const char *key, const char *v, int comma)
{
    fprintf(out, "%s\"%s\": ", comma ? ", " : "", key);
    text_print_json(out, v);
}

/* A name: "key" in display form, and "key_bytes" when it is not UTF-8. */
static void kv_name(FILE *out, const char *key, const char *name, int comma)
{
    fprintf(out, "%s", comma ? ", " : "");
    text_print_json_name(out, key, name);
}

static void kv_int(FILE *out, const char *key, int64_t v, int comma)
{
    fprintf(out, "%s\"%s\": %lld", comma ? ", " : "", key, (long long)v);
}

/* A time (never the first key): Unix seconds, or null when unset. */
static void kv_time(FILE *out, const char *key, int64_t v)
{
    if (v > 0)
        kv_int(out, key, v, 1);
    else
        fprintf(out, ", \"%s\": null", key);
}

void report_file_json(FILE *out, const struct journal_file *f)
{
    fprintf(out, "{");
    kv_name(out, "path", f->path, 0);
    kv_str(out, "state", journal_state_name(f->state), 1);
    kv_int(out, "size", f->size, 1);
    kv_int(out, "mtime_ns", f->mtime_ns, 1);
    kv_int(out, "attempts", f->attempts, 1);
    kv_time(out, "next_attempt", f->state == JS_QUEUED ? f->next_attempt : 0);
    kv_int(out, "resume_offset", f->resume_offset, 1);
    kv_int(out, "source_offset", f->source_offset, 1);
    kv_str(out, "sha256", f->sha256, 1);
    kv_str(out, "delivered_sha256", f->delivered_sha256, 1);
    kv_name(out, "target_path", f->target_path ? f->target_path : f->path, 1);
    kv_str(out, "etag", f->etag, 1);
    kv_str(out, "outcome", f->outcome, 1);
    kv_str(out, "last_error", f->last_error, 1);
    kv_time(out, "detected_at", f->detected_at);
    kv_time(out, "attempted_at", f->attempted_at);
    kv_time(out, "delivered_at", f->delivered_at);
    kv_int(out, "version", f->version, 1);
    fprintf(out, "}");
}

struct files_ctx {
    FILE *out;
    int64_t n, limit;
};

static int file_one(const struct journal_file *f, void *arg)
{
    struct files_ctx *fc = arg;

    if (fc->limit > 0 && fc->n >= fc->limit) {
        fc->n++; /* the one more, read to say there are more */
        return 0;
    }
    fputs(fc->n ? ",\n " : "", fc->out);
    report_file_json(fc->out, f);
    fc->n++;
    return 0;
}

int report_files_json(FILE *out, struct journal *j,
                      const struct journal_query *q, int *more)
{
    struct journal_query q1 = *q;
    struct files_ctx fc = {.out = out, .limit = q->limit};
    int r;

    if (q1.limit > 0)
        q1.limit++;
    fputs("[", out);
    r = journal_find(j, &q1, file_one, &fc);
    fputs("]\n", out);
    if (more)
        *more = fc.limit > 0 && fc.n > fc.limit;
    return r;
}

/* The agent's last word under key ("target_error", "source_error"). */
static void outage_get(struct journal *j, const char *key,
                       struct report_outage *o)
{
    int r;

    o->err = NULL;
    o->at = 0;
    r = journal_agent_get(j, key, &o->err, &o->at);
    if (r < 0 && r != -ENOENT) { /* not "ok": say that it is not known */
        if (asprintf(&o->err, "not known: journal: %s", journal_errmsg(j)) < 0)
            o->err = NULL;
        return;
    }
    if (o->err && !o->err[0]) {
        free(o->err);
        o->err = NULL;
    }
}

/* The files the agent last said it was sending, unless that is stale. */
static void sending_get(struct journal *j, struct report_status *rs)
{
    char *text = NULL;
    int r;

    r = journal_agent_get(j, "sending", &text, &rs->sending_at);
    if (r == -ENOENT) /* an agent that never said */
        return;
    if (r < 0 || text == NULL ||
        (text[0] &&
         ((int64_t)time(NULL) - rs->sending_at > REPORT_SENDING_STALE_S ||
          progress_decode(text, &rs->sending, &rs->n_sending) < 0)))
        rs->sending_stale = 1;
    free(text);
}

int report_status_get(struct journal *j, struct report_status *rs)
{
    int r;

    memset(rs, 0, sizeof(*rs));
    r = journal_status(j, &rs->st);
    if (r < 0)
        return r;
    outage_get(j, "target_error", &rs->target);
    outage_get(j, "source_error", &rs->source);
    sending_get(j, rs);
    return 0;
}

int report_status_fill_sending(struct report_status *rs, struct progress *p)
{
    int r;

    progress_entries_free(rs->sending, rs->n_sending);
    r = progress_snapshot(p, &rs->sending, &rs->n_sending);
    rs->sending_at = (int64_t)time(NULL);
    rs->sending_stale = r < 0;
    return r;
}

void report_status_clear(struct report_status *rs)
{
    journal_status_clear(&rs->st);
    free(rs->target.err);
    free(rs->source.err);
    progress_entries_free(rs->sending, rs->n_sending);
    memset(rs, 0, sizeof(*rs));
}

/* The files being sent: ", \"sending\": [...]" and when they were said. */
static void sending_json(FILE *out, const struct report_status *rs)
{
    const struct progress_entry *e;
    size_t i;
    int64_t eta;

    fprintf(out, ", \"sending\": [");
    for (i = 0; i < rs->n_sending; i++) {
        e = &rs->sending[i];
        fprintf(out, "%s{", i ? ", " : "");
        kv_name(out, "path", e->path, 0);
        kv_int(out, "size", e->size, 1);
        kv_int(out, "sent", e->sent, 1);
        kv_int(out, "target_bytes", e->target_bytes, 1);
        kv_int(out, "rate", e->rate, 1);
        eta = progress_eta(e);
        if (eta >= 0)
            kv_int(out, "eta", eta, 1);
        else
            fprintf(out, ", \"eta\": null");
        kv_time(out, "started_at", e->started_at);
        fprintf(out, "}");
    }
    fprintf(out, "]");
    kv_time(out, "sending_at", rs->sending_at);
    fprintf(out, ", \"sending_stale\": %s",
            rs->sending_stale ? "true" : "false");
}

void report_status_json(FILE *out, const char *journal_path,
                        const struct report_status *rs, int64_t now)
{
    const struct journal_status *st = &rs->st;
    int i;

    fprintf(out, "{\"journal\": ");
    text_print_json(out, journal_path);
    fprintf(out, ", \"counts\": {");
    for (i = 0; i < JS_COUNT; i++)
        kv_int(out, journal_state_name((enum journal_state)i), st->counts[i],
               i > 0);
    fprintf(out, "}");
    if (st->oldest_pending > 0)
        kv_int(out, "oldest_pending_age", now - st->oldest_pending, 1);
    else
        fprintf(out, ", \"oldest_pending_age\": null");
    sending_json(out, rs);
    kv_str(out, "target_error", rs->target.err, 1);
    kv_time(out, "target_error_at", rs->target.err ? rs->target.at : 0);
    kv_str(out, "source_error", rs->source.err, 1);
    kv_time(out, "source_error_at", rs->source.err ? rs->source.at : 0);
    kv_name(out, "last_error_path", st->last_error_path, 1);
    kv_str(out, "last_error", st->last_error, 1);
    kv_time(out, "last_error_at", st->last_error_at);
    fprintf(out, "}");
}
