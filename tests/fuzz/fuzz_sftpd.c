/*
 * libFuzzer target: random SFTP request streams against the engine, in a
 * scratch root with a sentinel folder beside it and a link planted inside
 * pointing at it.  A crash, a sanitizer report, or any change to the
 * sentinel (an escape from the root) is a finding.
 */
#include "config.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sftprelay/log.h"
#include "sftprelay/sftpd.h"

static char base[] = "/tmp/sftprelay-fuzz.XXXXXX";
static char root[sizeof(base) + 8], outside[sizeof(base) + 8];
static int root_fd = -1;
static unsigned long runs;

static int discard(void *arg, const void *buf, size_t len)
{
    return 0;
}

/* Number of entries in the sentinel folder, and its one file's size. */
static void sentinel(int *entries, off_t *size)
{
    char p[sizeof(outside) + 16];
    struct dirent *de;
    struct stat st;
    DIR *d = opendir(outside);

    *entries = 0;
    while (d && (de = readdir(d)) != NULL)
        (*entries)++;
    if (d)
        closedir(d);
    snprintf(p, sizeof(p), "%s/secret", outside);
    *size = stat(p, &st) == 0 ? st.st_size : -1;
}

static void reset_root(void)
{
    char cmd[sizeof(root) + 32], link[sizeof(root) + 16];

    if (root_fd >= 0)
        close(root_fd);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    if (system(cmd) != 0)
        abort();
    mkdir(root, 0755);
    mkdir(strcat(strcpy(link, root), "/d"), 0755);
    snprintf(link, sizeof(link), "%s/planted", root);
    if (symlink(outside, link) != 0)
        abort();
    root_fd = open(root, O_RDONLY | O_DIRECTORY);
}

static void setup(void)
{
    char p[sizeof(outside) + 16];
    FILE *f;

    if (mkdtemp(base) == NULL)
        abort();
    snprintf(root, sizeof(root), "%s/root", base);
    snprintf(outside, sizeof(outside), "%s/outside", base);
    mkdir(outside, 0755);
    snprintf(p, sizeof(p), "%s/secret", outside);
    f = fopen(p, "w");
    fputs("must never change\n", f);
    fclose(f);
    reset_root();
    log_set_level(LOG_LVL_ERROR);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t init[] = {0, 0, 0, 5, 1, 0, 0, 0, 3};
    struct sftpd_opts o = {.peer = "fuzz", .user = "fuzz"};
    struct sftpd_cb cb = {.send = discard};
    struct sftpd *s = NULL;
    int entries;
    off_t secret;

    if (root_fd < 0)
        setup();
    if (++runs % 2000 == 0)
        reset_root();
    o.root_fd = root_fd;
    if (sftpd_new(&o, &cb, &s) < 0)
        abort();
    sftpd_input(s, init, sizeof(init));
    sftpd_input(s, data, size);
    sftpd_free(s);
    sentinel(&entries, &secret);
    if (entries != 3 || secret != 18) {
        fprintf(stderr, "escape: the folder beside the root changed\n");
        abort();
    }
    return 0;
}
