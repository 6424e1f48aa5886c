/*
 * Figures for people: sizes in binary units (12.3 MiB), rates, and
 * durations (1m05s), as `sftprelay status` prints them.  Each writes a
 * NUL-terminated text of at most len bytes (HUMAN_MAX is always enough)
 * into buf and returns buf.
 */
#ifndef SFTPRELAY_HUMAN_H
#define SFTPRELAY_HUMAN_H

#include <stddef.h>
#include <stdint.h>

#define HUMAN_MAX 32

/* "0 B", "1023 B", "1.0 KiB", "12.3 MiB", "1.0 GiB", ... up to EiB. */
char *human_bytes(int64_t n, char *buf, size_t len);

/* human_bytes() per second: "512 B/s", "2.5 MiB/s". */
char *human_rate(int64_t bytes_per_s, char *buf, size_t len);

/* "0s", "59s", "1m05s", "59m59s", "1h00m", "23h59m", "1d00h", "400d02h";
 * a negative duration (not known) is "?". */
char *human_duration(int64_t s, char *buf, size_t len);

#endif
