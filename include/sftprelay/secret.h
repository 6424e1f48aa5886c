/*
 * Secrets (passwords, key passphrases) are read from files just before
 * use, into the caller's buffer, which the caller wipes with
 * explicit_bzero() once done.  Their content is never logged; only the
 * file's name is.
 */
#ifndef SFTPRELAY_SECRET_H
#define SFTPRELAY_SECRET_H

#include <stddef.h>

#define SECRET_MAX 4096

/*
 * The first line of file (without its end of line) into buf, which holds
 * len bytes.  Returns 0 or a negative errno.
 */
int secret_read(const char *file, char *buf, size_t len);

/*
 * secret_read() for the setting key ("password_file"): on error, why
 * says "KEY FILE: reason" (for a login's message; never the secret).
 */
int secret_read_for(const char *key, const char *file, char *buf, size_t len,
                    char *why, size_t whylen);

/*
 * secret_read() for a file that must be kept from other users: one that
 * others may read or write (mode & 006) is refused with -EPERM before a
 * byte of it is read, as OpenSSH refuses a private key others can read
 * (the group may read it, so that root:sftprelay 0640 works).  An empty
 * first line is -ENODATA.
 */
int secret_read_private(const char *file, char *buf, size_t len);

/*
 * The whole of file (a PEM key, say), NUL-terminated, into *out
 * (malloc'd; the caller wipes it with explicit_bzero() and frees it); with
 * private set, refused as secret_read_private() refuses.  Returns 0,
 * -ENODATA (empty), -EFBIG (SECRET_FILE_MAX bytes or more) or another
 * negative errno.
 */
#define SECRET_FILE_MAX (1024 * 1024)
int secret_load(const char *file, int private, char **out);

/*
 * Whether given is secret, in a time that depends on the length of given
 * only, never on where the two differ or on the secret's length.  secret
 * must not be empty.
 */
int secret_equal(const char *secret, const char *given);

#endif
