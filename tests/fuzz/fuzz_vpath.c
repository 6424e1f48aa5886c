/*
 * libFuzzer target: client paths through the normaliser.  A normalised
 * path never has ".", ".." or empty components and never starts with "/".
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sftprelay/vpath.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *rel = NULL, *shown = NULL, *copy, *tok, *save = NULL;
    int r = vpath_normalize((const char *)data, size, &rel);

    if (r < 0) {
        if (r != -EACCES && r != -EINVAL && r != -ENOMEM)
            abort();
        return 0;
    }
    if (rel[0] == '/' || strlen(rel) > size || strstr(rel, "//"))
        abort();
    if (rel[0] && rel[strlen(rel) - 1] == '/')
        abort();
    copy = strdup(rel);
    for (tok = strtok_r(copy, "/", &save); tok; tok = strtok_r(NULL, "/", &save))
        if (strcmp(tok, ".") == 0 || strcmp(tok, "..") == 0)
            abort();
    if (vpath_display(rel, &shown) < 0 || shown[0] != '/' ||
        strcmp(shown + 1, rel) != 0)
        abort();
    free(copy);
    free(shown);
    free(rel);
    return 0;
}
