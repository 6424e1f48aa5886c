/*
 * Path mapping between the source tree and the target tree.
 *
 * A file is named by its path relative to source.path ("a/b/c/file_1.txt"):
 * that is the key in the journal and the path under target.path on the
 * target.  Names are byte strings: spaces, newlines and non-UTF-8 bytes
 * pass through unchanged.  Only "/" separates components; "." and ".."
 * components, empty components and absolute paths are refused, so a path
 * can never leave target.path.
 */
#ifndef SFTPRELAY_PATH_H
#define SFTPRELAY_PATH_H

#include <stddef.h>

/* Longest file name component a target is assumed to accept. */
#define PATH_NAME_MAX 255

/* Returns 0 if rel is a valid relative path as above, -EINVAL if not. */
int path_rel_check(const char *rel);

/*
 * Join dir and rel with one "/" ("." as dir yields rel itself).
 * *out is malloc'd; the caller frees it.  Returns 0, -ENOMEM.
 */
int path_join(const char *dir, const char *rel, char **out);

/*
 * The temporary name an upload of rel is written to before it is renamed
 * into place: ".NAME.sftprelay-tmp" in the same directory, or, where that
 * would exceed PATH_NAME_MAX, ".sftprelay-HEX.tmp" with HEX derived from
 * the whole path.  The same rel always gives the same name, so an
 * interrupted upload is found again.  *out is malloc'd; the caller frees
 * it.  Returns 0, -EINVAL (bad rel), -ENOMEM.
 */
int path_tmp_name(const char *rel, char **out);

/*
 * rel with n before its extension, for a file delivered beside one of
 * the same name (target.on_exists = "rename"): "a/report.csv", 1 ->
 * "a/report.1.csv"; "a/README" -> "a/README.1".  Into out (len bytes):
 * 0, or -ENAMETOOLONG.
 */
int path_numbered(const char *rel, unsigned n, char *out, size_t len);

/* Whether base is a temporary name made by path_tmp_name(). */
int path_is_tmp_name(const char *base);

/* The last component of p (p itself when there is no "/"). */
const char *path_base(const char *p);

/*
 * Length of the directory part of p, without the trailing "/": 0 when p
 * has no directory part.
 */
size_t path_dir_len(const char *p);

/* Whether base matches one of n fnmatch(3) globs (leading dots literal). */
int path_excluded(const char *base, char *const *globs, size_t n);

/* Whether rel is dir or inside it (both relative; "" is the whole tree). */
int path_is_under(const char *rel, const char *dir);

#endif
