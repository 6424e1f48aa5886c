/*
 * Printing paths and messages safely: for a terminal (control bytes and
 * invalid UTF-8 escaped) and as JSON.
 *
 * Every JSON string written here is valid UTF-8 with no lone surrogate, so
 * any JSON reader takes it (Python's json, Airflow's XCom and trigger
 * payloads, a browser).  A name's bytes need not be UTF-8, so a name is
 * written in two forms (text_print_json_name): the display form, where
 * each byte that is not part of valid UTF-8 is U+FFFD, and, only when the
 * name is not valid UTF-8, the exact bytes as escaped text: valid UTF-8 as
 * itself, a backslash as "\\", every other byte as "\xHH" (two lowercase
 * hex digits).  A reader turns the escaped text back into the bytes.
 * These write to any FILE *: stdout for the CLI, an open_memstream() for
 * the status endpoint.
 */
#ifndef SFTPRELAY_TEXT_H
#define SFTPRELAY_TEXT_H

#include <stdio.h>

/* Write s with C-style escapes for anything not printable UTF-8. */
void text_print_safe(FILE *f, const char *s);

/*
 * Bytes of the well-formed UTF-8 sequence s starts with (1 to 4: no
 * overlong forms, no surrogates, nothing past U+10FFFF), 0 if none.
 */
int text_utf8_len(const char *s);

/*
 * Decode the n bytes at s, percent-escapes (%XX) and, when plus is set,
 * "+" as a space, into out, which holds n + 1 bytes (NUL-terminated);
 * *len receives the decoded length.  Returns 0, or -EINVAL for a bad
 * escape or a NUL byte ("%00").
 */
int text_unpercent(const char *s, size_t n, int plus, char *out, size_t *len);

/* 1 if s (NUL-terminated) is valid UTF-8 throughout, else 0. */
int text_is_utf8(const char *s);

/*
 * Write s as a JSON string literal, quotes included (NULL: null): its
 * valid UTF-8 as itself (JSON's escapes for '"', '\\' and control
 * characters), each byte that is not part of valid UTF-8 as U+FFFD, one
 * per byte.
 */
void text_print_json(FILE *f, const char *s);

/*
 * Write s's exact bytes as a JSON string literal of escaped text (NULL:
 * null): valid UTF-8 as itself, a backslash as "\\", each other byte as
 * "\xHH"; that text then written as JSON (so "\xe9" appears as "\\xe9"
 * between the quotes).
 */
void text_print_json_bytes(FILE *f, const char *s);

/*
 * Write the members for a name under key, without braces or a leading
 * comma: "key": display form, and only when name is not valid UTF-8,
 * "key_bytes": escaped bytes as text_print_json_bytes() writes them.
 * A NULL name is "key": null.  key is written as given (plain ASCII).
 */
void text_print_json_name(FILE *f, const char *key, const char *name);

#endif
