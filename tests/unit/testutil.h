/*
 * Helpers shared by the Check suites: scratch folders and files.
 */
#ifndef SFTPRELAY_TESTUTIL_H
#define SFTPRELAY_TESTUTIL_H

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A new scratch folder under $TMPDIR; the caller frees the string. */
static inline char *tu_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char *d = NULL;

    ck_assert_int_ge(
        asprintf(&d, "%s/sftprelay-test.XXXXXX", base ? base : "/tmp"), 0);
    ck_assert_ptr_nonnull(mkdtemp(d));
    return d;
}

/* Write len bytes to dir/name (name may contain folders, made as needed). */
static inline char *tu_write(const char *dir, const char *name,
                             const void *data, size_t len)
{
    char *p = NULL, *s;
    int fd;

    ck_assert_int_ge(asprintf(&p, "%s/%s", dir, name), 0);
    for (s = p + strlen(dir) + 1; (s = strchr(s, '/')) != NULL; s++) {
        *s = '\0';
        mkdir(p, 0755);
        *s = '/';
    }
    fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_msg(fd >= 0, "open %s: %s", p, strerror(errno));
    ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
    close(fd);
    return p;
}

static inline char *tu_write_str(const char *dir, const char *name,
                                 const char *text)
{
    return tu_write(dir, name, text, strlen(text));
}

/* Remove a scratch tree. */
static inline void tu_rmtree(const char *dir)
{
    char *cmd = NULL;

    ck_assert_int_ge(asprintf(&cmd, "rm -rf '%s'", dir), 0);
    ck_assert_int_eq(system(cmd), 0);
    free(cmd);
}

/* main() for a suite made by fn. */
#define TU_MAIN(fn)                                                            \
    int main(void)                                                             \
    {                                                                          \
        SRunner *sr = srunner_create(fn());                                    \
        int failed;                                                            \
                                                                               \
        srunner_run_all(sr, CK_NORMAL);                                        \
        failed = srunner_ntests_failed(sr);                                    \
        srunner_free(sr);                                                      \
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;                           \
    }

#endif
