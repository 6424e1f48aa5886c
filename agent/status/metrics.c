/*
 * The agent's counters (metrics.h) and the Prometheus text format.
 *
 * Everything sits in one static struct under one mutex: the hooks run a
 * few times per file, far too seldom for the lock to matter, and a
 * scrape copies the whole struct at once, so that a histogram's buckets,
 * sum and count always agree with each other.  Nothing but copying and
 * adding happens with the lock held.
 */
#include "config.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "sftprelay/journal.h"
#include "sftprelay/metrics.h"
#include "sftprelay/text.h"

/* Upper bounds of the transfer duration histogram, in milliseconds. */
static const int64_t bucket_ms[] = {10,    50,     100,     500,
                                    1000,  5000,   10000,   30000,
                                    60000, 300000, 1800000, 3600000};
#define N_BUCKETS (sizeof(bucket_ms) / sizeof(bucket_ms[0]))

#define DESC_MAX 512
#define ERR_MAX 512

/* The target or the source host, as the scheduler last saw it. */
struct side {
    int down;
    char err[ERR_MAX]; /* the last error, kept once it is up again */
    int64_t err_at;    /* Unix seconds; 0: none since start */
    char desc[DESC_MAX];
};

struct counters {
    int64_t queued, delivered, delivered_bytes, failed;
    int64_t hist[N_BUCKETS + 1]; /* per bucket, not cumulated; +Inf last */
    int64_t hist_sum_ms, hist_count;
    struct side target, source;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct counters m; /* guarded by lock */

void metrics_queued(void)
{
    pthread_mutex_lock(&lock);
    m.queued++;
    pthread_mutex_unlock(&lock);
}

void metrics_delivered(int64_t bytes)
{
    pthread_mutex_lock(&lock);
    m.delivered++;
    m.delivered_bytes += bytes;
    pthread_mutex_unlock(&lock);
}

void metrics_failed(void)
{
    pthread_mutex_lock(&lock);
    m.failed++;
    pthread_mutex_unlock(&lock);
}

void metrics_transfer_ms(int64_t ms)
{
    size_t i = 0;

    if (ms < 0)
        ms = 0;
    while (i < N_BUCKETS && ms > bucket_ms[i])
        i++;
    pthread_mutex_lock(&lock);
    m.hist[i]++;
    m.hist_sum_ms += ms;
    m.hist_count++;
    pthread_mutex_unlock(&lock);
}

/* The side named so, or NULL.  Its address only: no lock needed. */
static struct side *side_named(const char *name)
{
    if (strcmp(name, "target") == 0)
        return &m.target;
    if (strcmp(name, "source") == 0)
        return &m.source;
    return NULL;
}

void metrics_outage(const char *name, const char *err)
{
    struct side *s = side_named(name);
    int64_t now = (int64_t)time(NULL);

    if (s == NULL)
        return;
    pthread_mutex_lock(&lock);
    s->down = err != NULL;
    if (err) {
        snprintf(s->err, sizeof(s->err), "%s", err);
        s->err_at = now;
    }
    pthread_mutex_unlock(&lock);
}

void metrics_describe(const char *target, const char *source)
{
    pthread_mutex_lock(&lock);
    snprintf(m.target.desc, sizeof(m.target.desc), "%s", target ? target : "");
    snprintf(m.source.desc, sizeof(m.source.desc), "%s", source ? source : "");
    pthread_mutex_unlock(&lock);
}

void metrics_reset(void)
{
    pthread_mutex_lock(&lock);
    memset(&m, 0, sizeof(m));
    pthread_mutex_unlock(&lock);
}

/* --- the text format ------------------------------------------------------ */

void metrics_print_label(FILE *out, const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    int n;

    while (*s) {
        n = text_utf8_len((const char *)s);
        if (n == 0) {
            fputs("\xef\xbf\xbd", out); /* U+FFFD */
            s++;
        } else if (*s == '\\' || *s == '"') {
            fputc('\\', out);
            fputc(*s++, out);
        } else if (*s == '\n') {
            fputs("\\n", out);
            s++;
        } else {
            fwrite(s, 1, (size_t)n, out);
            s += n;
        }
    }
}

static void head(FILE *out, const char *name, const char *type,
                 const char *help)
{
    fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void print_counters(FILE *out, const struct counters *c)
{
    head(out, "sftprelay_files_queued_total", "counter",
         "Files intake queued (new files and new versions) since the "
         "agent started.");
    fprintf(out, "sftprelay_files_queued_total %lld\n", (long long)c->queued);
    head(out, "sftprelay_files_delivered_total", "counter",
         "Files the journal recorded delivered since the agent started.");
    fprintf(out, "sftprelay_files_delivered_total %lld\n",
            (long long)c->delivered);
    head(out, "sftprelay_delivered_bytes_total", "counter",
         "Bytes of the files delivered (their size on the source) since "
         "the agent started.");
    fprintf(out, "sftprelay_delivered_bytes_total %lld\n",
            (long long)c->delivered_bytes);
    head(out, "sftprelay_files_failed_total", "counter",
         "Files given up on (transfer.max_attempts) since the agent "
         "started.");
    fprintf(out, "sftprelay_files_failed_total %lld\n", (long long)c->failed);
}

static void print_histogram(FILE *out, const struct counters *c)
{
    int64_t cum = 0;
    size_t i;

    head(out, "sftprelay_transfer_duration_seconds", "histogram",
         "Time from the start of the attempt that delivered a file to its "
         "end (files sent together count the whole batch's time).");
    for (i = 0; i < N_BUCKETS; i++) {
        cum += c->hist[i];
        fprintf(out,
                "sftprelay_transfer_duration_seconds_bucket{le=\"%lld.%03lld"
                "\"} %lld\n",
                (long long)bucket_ms[i] / 1000, (long long)bucket_ms[i] % 1000,
                (long long)cum);
    }
    fprintf(out,
            "sftprelay_transfer_duration_seconds_bucket{le=\"+Inf\"} %lld\n"
            "sftprelay_transfer_duration_seconds_sum %lld.%03lld\n"
            "sftprelay_transfer_duration_seconds_count %lld\n",
            (long long)c->hist_count, (long long)c->hist_sum_ms / 1000,
            (long long)c->hist_sum_ms % 1000, (long long)c->hist_count);
}

/* The gauges of a side ("target", "source"): sftprelay_SIDE_SUFFIX. */
static const struct {
    const char *suffix, *help;
} side_gauges[] = {
    {"up", "1 unless it failed as a whole and has not answered a probe "
           "since."},
    {"last_error_timestamp_seconds",
     "When it last failed as a whole (0: not since the agent started)."},
    {"last_error_info", "Its last error as the label error (no sample: none "
                        "since the agent started)."},
};

static void print_side(FILE *out, const char *name, const struct side *s)
{
    const long long value[] = {!s->down, (long long)s->err_at, 1};
    char metric[64];
    size_t i;

    for (i = 0; i < sizeof(side_gauges) / sizeof(side_gauges[0]); i++) {
        snprintf(metric, sizeof(metric), "sftprelay_%s_%s", name,
                 side_gauges[i].suffix);
        head(out, metric, "gauge", side_gauges[i].help);
        if (i == 2 && s->err_at == 0)
            return; /* no error to show */
        fprintf(out, "%s{%s=\"", metric, name);
        metrics_print_label(out, s->desc);
        if (i == 2) {
            fputs("\",error=\"", out);
            metrics_print_label(out, s->err);
        }
        fprintf(out, "\"} %lld\n", value[i]);
    }
}

static void print_journal(FILE *out, const struct journal_status *st,
                          int64_t now)
{
    int i;

    head(out, "sftprelay_files", "gauge", "Files in the journal by state.");
    for (i = 0; i < JS_COUNT; i++)
        fprintf(out, "sftprelay_files{state=\"%s\"} %lld\n",
                journal_state_name((enum journal_state)i),
                (long long)st->counts[i]);
    head(out, "sftprelay_queue_depth", "gauge",
         "Files waiting to be delivered: queued or being sent.");
    fprintf(out, "sftprelay_queue_depth %lld\n",
            (long long)(st->counts[JS_QUEUED] + st->counts[JS_SENDING]));
    head(out, "sftprelay_queue_oldest_age_seconds", "gauge",
         "Age of the oldest file waiting to be delivered (0: none).");
    fprintf(out, "sftprelay_queue_oldest_age_seconds %lld\n",
            (long long)(st->oldest_pending > 0 && now > st->oldest_pending
                            ? now - st->oldest_pending
                            : 0));
}

void metrics_print(FILE *out, const struct journal_status *st, int64_t now)
{
    struct counters c;

    pthread_mutex_lock(&lock);
    c = m;
    pthread_mutex_unlock(&lock);
    print_journal(out, st, now);
    print_counters(out, &c);
    print_histogram(out, &c);
    print_side(out, "target", &c.target);
    print_side(out, "source", &c.source);
}
