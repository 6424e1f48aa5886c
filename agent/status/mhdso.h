/*
 * libmicrohttpd, loaded when the status endpoint starts (mhdso.c).
 *
 * Linking it maps libmicrohttpd and GnuTLS with its own dozen libraries
 * into every agent: 2.5 MiB more resident memory for an idle agent that
 * serves no status (README, "Status endpoint").  So the endpoint calls it
 * through this table, filled from libmicrohttpd.so.12 with dlopen() when
 * the configuration has a status group; the functions are
 * libmicrohttpd's own, with their own signatures.
 */
#ifndef SFTPRELAY_MHDSO_H
#define SFTPRELAY_MHDSO_H

#include <microhttpd.h>
#include <stddef.h>

struct mhd_so {
    struct MHD_Daemon *(*start_daemon)(unsigned int flags, uint16_t port,
                                       MHD_AcceptPolicyCallback apc,
                                       void *apc_cls,
                                       MHD_AccessHandlerCallback dh,
                                       void *dh_cls, ...);
    void (*stop_daemon)(struct MHD_Daemon *d);
    const char *(*lookup_connection_value)(struct MHD_Connection *c,
                                           enum MHD_ValueKind kind,
                                           const char *key);
    struct MHD_Response *(*create_response_from_buffer)(
        size_t size, void *buffer, enum MHD_ResponseMemoryMode mode);
    enum MHD_Result (*add_response_header)(struct MHD_Response *r,
                                           const char *header,
                                           const char *content);
    enum MHD_Result (*queue_response)(struct MHD_Connection *c,
                                      unsigned int status,
                                      struct MHD_Response *r);
    void (*destroy_response)(struct MHD_Response *r);
    enum MHD_Result (*is_feature_supported)(enum MHD_FEATURE f);
};

/* libmicrohttpd's functions, once mhdso_load() succeeded. */
extern struct mhd_so mhdso;

/*
 * Load libmicrohttpd, once per process (thread-safe; later calls return
 * the first one's result).  Returns 0, or -ENOENT with the reason in err.
 */
int mhdso_load(char *err, size_t errlen);

#endif
