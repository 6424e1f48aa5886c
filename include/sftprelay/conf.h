/*
 * Configuration: sftprelay.conf(5), read with libconfig.
 *
 * Every key is one row of a table (agent/conf.c): its type, default,
 * bounds and where it lands in struct conf.  An unknown key, a value of
 * the wrong type or out of bounds, or a missing required key is an error
 * whose text names the file, the line and the key.
 */
#ifndef SFTPRELAY_CONF_H
#define SFTPRELAY_CONF_H

#include <stddef.h>
#include <stdint.h>

/* A login of the embedded server (server.users). */
struct conf_user {
    char *name;
    char *password_hash;   /* crypt(3), or NULL */
    char *authorized_keys; /* file, or NULL */
};

struct conf {
    char *file; /* the file it was read from */
    struct {
        char *path;
        char **exclude; /* globs on the base name */
        size_t n_exclude;
        int settle_ms;
        int rescan_interval; /* seconds; 0 = never */
    } source;
    struct {
        char *type; /* a sink name: "sftp", "local" */
        char *host;
        int port;
        char *user;
        char *identity;
        char *passphrase_file;
        char *password_file;
        char *known_hosts;
        char *path;
        int timeout; /* seconds without progress before a peer is dropped */
        int probe_interval; /* seconds between probes while it is down */
    } target;
    struct {
        char *path;
        int keep_delivered_days; /* 0 = keep forever */
    } journal;
    struct {
        int workers;
        int64_t chunk_size;
        int max_attempts; /* 0 = never give up */
        int backoff_initial;
        int backoff_max;
        char **transforms; /* transform names, applied in order */
        size_t n_transforms;
    } transfer;
    struct {
        char *level;
    } log;
    struct {
        char *listen; /* NULL: no embedded server */
        char **host_keys;
        size_t n_host_keys;
        char *root; /* defaults to source.path */
        int max_sessions;
        int idle_timeout;
        struct conf_user *users;
        size_t n_users;
    } server;
    int lines[64]; /* line each table key was set on, 0 if defaulted */
};

/* The configuration file the programs read when given none. */
#define CONF_DEFAULT_FILE SYSCONFDIR "/sftprelay/sftprelay.conf"

/* Longest error message the functions below produce. */
#define CONF_ERR_MAX 512

/*
 * Read file into a new struct conf (*out, freed with conf_free()).
 * On error returns -EINVAL (bad content) or a negative errno (unreadable,
 * out of memory) and writes "FILE:LINE: KEY: what is wrong" to err.
 */
int conf_load(const char *file, struct conf **out, char *err, size_t errlen);

/*
 * Fill a struct conf with defaults only, as conf_load() would for an
 * empty file, without requiring anything.  For tools and tests.
 */
int conf_defaults(struct conf **out);

void conf_free(struct conf *c);

/* The line key ("target.host") was set on, 0 if it has its default. */
int conf_line(const struct conf *c, const char *key);

/*
 * Check that every target.* key set in the file is one the sink accepts
 * (a NULL-terminated list of names without the "target." prefix; "type"
 * is always accepted).  Returns 0 or -EINVAL with err filled.
 */
int conf_check_target_keys(const struct conf *c, const char *const *accepted,
                           char *err, size_t errlen);

/* Print every key with its default and description (sftprelayd -K). */
void conf_print_keys(void);

#endif
