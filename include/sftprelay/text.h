/*
 * Printing paths and messages safely: for a terminal (control bytes and
 * invalid UTF-8 escaped) and as JSON strings (invalid UTF-8 bytes as
 * lone surrogates U+DC80..U+DCFF, as Python's "surrogateescape" does, so
 * a reader gets the exact bytes back).
 */
#ifndef SFTPRELAY_TEXT_H
#define SFTPRELAY_TEXT_H

#include <stdio.h>

/* Write s with C-style escapes for anything not printable UTF-8. */
void text_print_safe(FILE *f, const char *s);

/* Write s as a JSON string literal, quotes included (NULL: null). */
void text_print_json(FILE *f, const char *s);

#endif
