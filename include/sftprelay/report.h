/*
 * What the journal says, as JSON: one file's row and the agent's status.
 * The command line (sftprelay list/show/status --json) and the status
 * endpoint print the same objects through these functions, to any FILE
 * (stdout, or open_memstream() for an HTTP body).
 *
 * The files being sent now come from the agent's progress table
 * (progress.h): the command line reads the copy the agent writes into
 * the journal every second (key "sending"); the agent's own endpoint may
 * take them from the table itself with report_status_fill_sending().
 */
#ifndef SFTPRELAY_REPORT_H
#define SFTPRELAY_REPORT_H

#include <stdint.h>
#include <stdio.h>

#include "sftprelay/journal.h"

struct progress;
struct progress_entry;

/* A list of files being sent older than this is not believed. */
#define REPORT_SENDING_STALE_S 5

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
    /* The files being sent now (malloc'd, n_sending of them). */
    struct progress_entry *sending;
    size_t n_sending;
    int64_t sending_at; /* when the agent said so (Unix s); 0: never */
    /* The agent's last list held files but is over REPORT_SENDING_STALE_S
     * old (or unreadable): the agent is not running, or stuck; sending
     * is then empty. */
    int sending_stale;
};

/*
 * Reads the status from j into *rs (cleared with report_status_clear(),
 * also after a failure), the files being sent from the journal's copy.
 * 0, or a negative errno when the journal could not be read
 * (journal_errmsg() says why); an unreadable outage key is reported in
 * that outage's err, not as a failure, and an unreadable list of files
 * being sent as sending_stale.
 */
int report_status_get(struct journal *j, struct report_status *rs);
void report_status_clear(struct report_status *rs);

/*
 * Replace rs's files being sent by those of p now (the agent's own
 * table, fresher than the journal's copy): for a status served by the
 * agent.  0, or -ENOMEM (rs then has none, and says stale).
 */
int report_status_fill_sending(struct report_status *rs, struct progress *p);

/*
 * The status as one JSON object (no newline); now is Unix seconds.  The
 * files being sent are its "sending" array of {"path" (and "path_bytes"
 * when it is not UTF-8, as list --json), "size", "sent" (source bytes),
 * "target_bytes", "rate" (source bytes/s over the last
 * seconds; 0: not known), "eta" (seconds, or null: not known),
 * "started_at"}, with "sending_at" (null: never said) and
 * "sending_stale".
 */
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
