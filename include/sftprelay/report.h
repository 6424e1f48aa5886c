/*
 * What the journal says, as JSON: one file's row and the agent's status.
 * The command line (sftprelay list/show/status --json) and the status
 * endpoint print the same objects through these functions, to any FILE
 * (stdout, or open_memstream() for an HTTP body).
 */
#ifndef SFTPRELAY_REPORT_H
#define SFTPRELAY_REPORT_H

#include <stdint.h>
#include <stdio.h>

#include "sftprelay/journal.h"

/* What the agent last said of the target, or of the source host. */
struct report_outage {
    char *err; /* malloc'd; NULL: none, or an empty one (it is up) */
    int64_t at;
};

/* The figures behind `sftprelay status`. */
struct report_status {
    struct journal_status st;
    struct report_outage target;
    struct report_outage source;
};

/*
 * Reads the status from j into *rs (cleared with report_status_clear(),
 * also after a failure).  0, or a negative errno when the journal could
 * not be read (journal_errmsg() says why); an unreadable outage key is
 * reported in that outage's err, not as a failure.
 */
int report_status_get(struct journal *j, struct report_status *rs);
void report_status_clear(struct report_status *rs);

/* The status as one JSON object (no newline); now is Unix seconds. */
void report_status_json(FILE *out, const char *journal_path,
                        const struct report_status *rs, int64_t now);

/* One file's row as one JSON object (no newline). */
void report_file_json(FILE *out, const struct journal_file *f);

/*
 * The rows q selects (journal_find()) as one JSON array, as `sftprelay
 * list --json` prints it: "[", the objects separated by ",\n ", "]\n".
 * With q->limit > 0, *more (may be NULL) is set to whether further rows
 * match (one more row is read to know).  Returns 0, or journal_find()'s
 * error (the array is closed all the same).
 */
int report_files_json(FILE *out, struct journal *j,
                      const struct journal_query *q, int *more);

#endif
