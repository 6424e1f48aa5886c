/*
 * The agent's own counters, for the status endpoint's GET /metrics: kept
 * in memory since the process started (a SIGHUP keeps them, a restart
 * begins at zero, as Prometheus expects of counters), fed by one-line
 * hooks where things happen, and printed with what the journal says in
 * the Prometheus text format (version 0.0.4).
 *
 *   metrics_queued()       the journal writer committed a file found or
 *                          uploaded as queued (a new file or a new version)
 *   metrics_delivered()    the journal writer committed a delivery
 *   metrics_failed()       the journal writer committed a file given up on
 *   metrics_transfer_ms()  a worker's transfer ended in the file's delivery
 *   metrics_outage()       the scheduler found the target or the source
 *                          host down, or answering again
 *
 * One lock (metrics.lock, doc/concurrency.md) guards everything; it is a
 * leaf, held only to add to a counter or to copy them all, never while
 * anything else runs.  Any thread may call any function.
 */
#ifndef SFTPRELAY_METRICS_H
#define SFTPRELAY_METRICS_H

#include <stdint.h>
#include <stdio.h>

struct journal_status;

void metrics_queued(void);
void metrics_delivered(int64_t bytes);
void metrics_failed(void);
void metrics_transfer_ms(int64_t ms);

/*
 * side ("target" or "source"; anything else is ignored) is down, err
 * saying why (copied); err NULL: it answers again.  The last error and
 * its time are kept once it is up again.
 */
void metrics_outage(const char *side, const char *err);

/* What the target and the source are, for the labels (copied; NULL: ""). */
void metrics_describe(const char *target, const char *source);

/*
 * The whole exposition text to out: the counters above, and st's figures
 * (files by state, queue depth, age of the oldest pending file at now,
 * Unix seconds).
 */
void metrics_print(FILE *out, const struct journal_status *st, int64_t now);

/*
 * s as a label value, quotes excluded: backslash, double quote and line
 * feed escaped as the format wants (\\ \" \n), bytes that are not UTF-8
 * as U+FFFD (the format is UTF-8).
 */
void metrics_print_label(FILE *out, const char *s);

/* Every counter back to zero, every string forgotten (tests). */
void metrics_reset(void);

#endif
