/*
 * libcurl by dlopen() (curlso.h): the library and every library it needs
 * are mapped the first time an S3 client is made, never in an agent that
 * does not speak S3.  The table is filled once, under pthread_once, and
 * only read afterwards.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>

#include "curlso.h"
#include "sftprelay/dso.h"

struct curl_so curlso;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int load_result;
static char load_err[256];

#define SYM(field, name) DSO_SYM(curlso, field, name)
static const struct dso_sym syms[] = {
    SYM(global_init, "curl_global_init"),
    SYM(easy_init, "curl_easy_init"),
    SYM(easy_setopt, "curl_easy_setopt"),
    SYM(easy_getinfo, "curl_easy_getinfo"),
    SYM(easy_strerror, "curl_easy_strerror"),
    SYM(easy_cleanup, "curl_easy_cleanup"),
    SYM(multi_init, "curl_multi_init"),
    SYM(multi_add_handle, "curl_multi_add_handle"),
    SYM(multi_remove_handle, "curl_multi_remove_handle"),
    SYM(multi_perform, "curl_multi_perform"),
    SYM(multi_poll, "curl_multi_poll"),
    SYM(multi_info_read, "curl_multi_info_read"),
    SYM(multi_cleanup, "curl_multi_cleanup"),
    SYM(slist_append, "curl_slist_append"),
    SYM(slist_free_all, "curl_slist_free_all"),
    SYM(getdate, "curl_getdate"),
};
#undef SYM

static void load(void)
{
    CURLcode c;

    /* The soname of the ABI curl.h describes (libcurl4 in Debian 12,
     * libcurl4t64 in Debian 13). */
    load_result =
        dso_load("libcurl.so.4", syms, sizeof(syms) / sizeof(syms[0]),
                 "install libcurl4 (Debian 13: libcurl4t64)",
                 "libcurl 7.74 or later is needed", load_err, sizeof(load_err));
    if (load_result < 0)
        return;
    c = curlso.global_init(CURL_GLOBAL_ALL);
    if (c != CURLE_OK) {
        snprintf(load_err, sizeof(load_err), "libcurl: %s",
                 curlso.easy_strerror(c));
        load_result = -ENOMEM;
    }
}

int curlso_load(char *err, size_t errlen)
{
    pthread_once(&once, load);
    if (load_result < 0)
        snprintf(err, errlen, "%s", load_err);
    return load_result;
}
