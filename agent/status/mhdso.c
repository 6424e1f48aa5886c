/*
 * libmicrohttpd by dlopen() (mhdso.h): mapped when the status endpoint
 * starts, never in an agent without a status group.  The table is filled
 * once, under pthread_once, and only read afterwards.
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>

#include "mhdso.h"
#include "sftprelay/dso.h"

struct mhd_so mhdso;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int load_result;
static char load_err[256];

#define SYM(field, name) DSO_SYM(mhdso, field, name)
static const struct dso_sym syms[] = {
    SYM(start_daemon, "MHD_start_daemon"),
    SYM(stop_daemon, "MHD_stop_daemon"),
    SYM(lookup_connection_value, "MHD_lookup_connection_value"),
    SYM(create_response_from_buffer, "MHD_create_response_from_buffer"),
    SYM(add_response_header, "MHD_add_response_header"),
    SYM(queue_response, "MHD_queue_response"),
    SYM(destroy_response, "MHD_destroy_response"),
    SYM(is_feature_supported, "MHD_is_feature_supported"),
};
#undef SYM

static void load(void)
{
    /* The soname of the ABI microhttpd.h describes (Debian's
     * libmicrohttpd12, libmicrohttpd12t64 from Debian 13). */
    load_result = dso_load(
        "libmicrohttpd.so.12", syms, sizeof(syms) / sizeof(syms[0]),
        "install libmicrohttpd12 (Debian 13: libmicrohttpd12t64)",
        "libmicrohttpd 0.9.71 or later is needed", load_err, sizeof(load_err));
}

int mhdso_load(char *err, size_t errlen)
{
    pthread_once(&once, load);
    if (load_result < 0)
        snprintf(err, errlen, "%s", load_err);
    return load_result;
}
