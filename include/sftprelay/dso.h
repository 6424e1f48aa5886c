/*
 * Libraries loaded with dlopen() only when a configuration needs them
 * (libcurl for S3, libmicrohttpd for the status endpoint), so that an
 * agent without them does not map them and every library they bring:
 * each costs megabytes of resident memory (README, "Status endpoint").
 */
#ifndef SFTPRELAY_DSO_H
#define SFTPRELAY_DSO_H

#include <stddef.h>

/* Where one function goes (a pointer of its own type) and its name. */
struct dso_sym {
    void **slot;
    const char *name;
};

#define DSO_SYM(table, field, name)                                            \
    {                                                                          \
        (void **)&(table).field, (name)                                        \
    }

/*
 * dlopen(soname) and fill every slot of syms[0..n) with dlsym().  The
 * library stays loaded for the life of the process.  Returns 0, or
 * -ENOENT with err saying why: dlerror() and "(missing)" when the library
 * cannot be loaded, "SONAME has no NAME (old)" when a function is not in
 * it.  Not thread-safe: call it under pthread_once().
 */
int dso_load(const char *soname, const struct dso_sym *syms, size_t n,
             const char *missing, const char *old, char *err, size_t errlen);

#endif
