/*
 * What a request to the status endpoint asks, read from its raw text:
 * the query of GET /v1/files and the bearer token of its Authorization
 * header.  Pure functions, apart from malloc.
 *
 * Query values are percent-decoded into raw bytes ("%E9" is the byte
 * 0xe9, so a name that is not UTF-8 can be asked for) and "+" is a space,
 * as in an HTML form (what Python's urlencode() and curl --data-urlencode
 * write): a "+" in a name is sent as "%2B".  A key not known, given
 * twice or without "=", a bad escape or "%00" are errors, never ignored.
 */
#ifndef SFTPRELAY_STATUSQ_H
#define SFTPRELAY_STATUSQ_H

#include <stddef.h>
#include <stdint.h>

#include "sftprelay/journal.h"

/* limit when the query has none, and the most it may be. */
#define STATUSQ_LIMIT_DEFAULT 1000
#define STATUSQ_LIMIT_MAX 10000

/* GET /v1/files?path=P|prefix=P&state=S&limit=N&after=A (not with path) */
struct statusq_files {
    char *path;               /* malloc'd, decoded; NULL when not asked */
    char *prefix;             /* likewise */
    char *after;              /* likewise: the rows whose path sorts above */
    enum journal_state state; /* JS_COUNT: any */
    int64_t limit;            /* 1 to STATUSQ_LIMIT_MAX */
};

/*
 * Read query (the text after "?", NULL or "" when none) into *q, cleared
 * with statusq_files_clear() (also after a failure).  Returns 0, -ENOMEM,
 * or -EINVAL with err saying what is wrong for a person ("limit: expected
 * a whole number from 1 to 10000, not \"-1\"").
 */
int statusq_files(const char *query, struct statusq_files *q, char *err,
                  size_t errlen);
void statusq_files_clear(struct statusq_files *q);

/*
 * The query of an endpoint that takes none: 0 when query is NULL or "",
 * else -EINVAL with err naming the first key.
 */
int statusq_none(const char *query, char *err, size_t errlen);

/*
 * The token of an Authorization header "Bearer TOKEN" (the scheme in any
 * case, spaces before the token skipped), pointing into header; NULL when
 * header is NULL, another scheme, or no token.
 */
const char *statusq_bearer(const char *header);

#endif
