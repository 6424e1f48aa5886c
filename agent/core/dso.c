/*
 * Libraries by dlopen() (dso.h): one loader for every such library, so
 * each module only lists the functions it calls.
 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>

#include "sftprelay/dso.h"

int dso_load(const char *soname, const struct dso_sym *syms, size_t n,
             const char *missing, const char *old, char *err, size_t errlen)
{
    void *h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    size_t i;

    if (h == NULL) {
        snprintf(err, errlen, "%s (%s)", dlerror(), missing);
        return -ENOENT;
    }
    for (i = 0; i < n; i++) {
        *syms[i].slot = dlsym(h, syms[i].name);
        if (*syms[i].slot == NULL) {
            snprintf(err, errlen, "%s has no %s (%s)", soname, syms[i].name,
                     old);
            return -ENOENT; /* h stays loaded: harmless, and never used */
        }
    }
    return 0;
}
