/*
 * libcurl, loaded when the first S3 client is made (curlso.c).
 *
 * Linking libcurl would load its twenty-odd libraries (GnuTLS, Kerberos,
 * LDAP, RTMP, ...) into every agent, S3 or not: about 4 MiB of resident
 * memory for an agent that only speaks SFTP.  So the S3 client calls
 * libcurl through this table, filled from libcurl.so.4 with dlopen() the
 * first time it is needed; the functions are libcurl's own, with their
 * own signatures (setopt and getinfo stay variadic).
 */
#ifndef SFTPRELAY_CURLSO_H
#define SFTPRELAY_CURLSO_H

#include <curl/curl.h>
#include <stddef.h>

struct curl_so {
    CURLcode (*global_init)(long flags);
    CURL *(*easy_init)(void);
    CURLcode (*easy_setopt)(CURL *h, CURLoption o, ...);
    CURLcode (*easy_getinfo)(CURL *h, CURLINFO i, ...);
    const char *(*easy_strerror)(CURLcode c);
    void (*easy_cleanup)(CURL *h);
    CURLM *(*multi_init)(void);
    CURLMcode (*multi_add_handle)(CURLM *m, CURL *h);
    CURLMcode (*multi_remove_handle)(CURLM *m, CURL *h);
    CURLMcode (*multi_perform)(CURLM *m, int *running);
    CURLMcode (*multi_poll)(CURLM *m, struct curl_waitfd *extra,
                            unsigned n_extra, int timeout_ms, int *numfds);
    CURLMsg *(*multi_info_read)(CURLM *m, int *left);
    CURLMcode (*multi_cleanup)(CURLM *m);
    struct curl_slist *(*slist_append)(struct curl_slist *l, const char *s);
    void (*slist_free_all)(struct curl_slist *l);
    time_t (*getdate)(const char *s, const time_t *unused);
};

/* libcurl's functions, once curlso_load() succeeded. */
extern struct curl_so curlso;

/*
 * Load libcurl and curl_global_init() it, once per process (thread-safe;
 * later calls return the first one's result).  Returns 0, or -ENOENT /
 * -ENOMEM with the reason in err ("libcurl.so.4: cannot open shared
 * object file ..." when it is not installed).
 */
int curlso_load(char *err, size_t errlen);

#endif
