/*
 * Paths as an SFTP client names them, resolved inside a root folder.
 *
 * A client path is virtual: "/" is the root, a relative path is relative
 * to it, "." and ".." are resolved lexically, and ".." above the root is
 * refused.  The result is opened with openat2(RESOLVE_BENEATH |
 * RESOLVE_NO_MAGICLINKS), so a symbolic link planted inside the root that
 * points out of it is refused by the kernel, whatever the path.
 */
#ifndef SFTPRELAY_VPATH_H
#define SFTPRELAY_VPATH_H

#include <stddef.h>
#include <sys/types.h>

/*
 * Normalise a client path into the path relative to the root ("" for the
 * root itself), with no ".", ".." or empty components.  *out is malloc'd.
 * Returns 0, -EACCES (climbs above the root), -EINVAL (NUL byte or too
 * long: over PATH_MAX), -ENOMEM.
 */
int vpath_normalize(const char *path, size_t len, char **out);

/* The client's view of rel: "/" + rel.  *out is malloc'd. */
int vpath_display(const char *rel, char **out);

/*
 * Open rel (normalised) beneath root_fd with open(2) flags and mode.
 * Returns a descriptor or a negative errno; a path that would leave the
 * root (EXDEV from the kernel) is -EACCES.
 */
int vpath_open(int root_fd, const char *rel, int flags, mode_t mode);

/*
 * The folder holding rel, opened (O_PATH | O_DIRECTORY) beneath root_fd,
 * and rel's last component in *base (pointing into rel).  rel must not be
 * the root itself (-EACCES).  Returns a descriptor or a negative errno.
 */
int vpath_parent(int root_fd, const char *rel, const char **base);

#endif
