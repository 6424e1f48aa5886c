/*
 * Configuration: sftprelay.conf(5), read with libconfig.
 *
 * Every module declares its keys in its own file, as a const struct
 * conf_table: one row per key with its type, default, bounds, a one-line
 * description and where its value lands in the module's settings struct
 * (Fluent Bit's config_map).  The core's tables (source, target, journal,
 * transfer, log) live in agent/core/conf.c and land in struct conf; a
 * plugin's table hangs off its ops (sink_ops.conf, source_ops.conf,
 * transform_ops.conf) and is applied when the configuration names the
 * plugin (target.type, source.type, the type of each group of the list
 * "transforms"); other modules' tables (the embedded server's) are handed
 * to conf_load() by the program.
 *
 * An unknown key, a value of the wrong type or out of bounds, or a missing
 * required key is an error whose text names the file, the line and the
 * key: "FILE:LINE: KEY: reason".
 */
#ifndef SFTPRELAY_CONF_H
#define SFTPRELAY_CONF_H

#include <stddef.h>
#include <stdint.h>

struct conf;
struct conf_scope;
struct conf_section;
struct sink_ops;
struct source_ops;
struct transform_spec;

enum conf_type {
    CONF_STRING, /* char * */
    CONF_INT,    /* int */
    CONF_INT64,  /* int64_t */
    CONF_BOOL,   /* int, 0 or 1: true or false in the file */
    CONF_STRV,   /* char **, NULL-terminated, with a size_t count */
    CONF_GROUPS, /* a list of groups, each read with elem's keys */
};

#define CONF_REQUIRED 0x1 /* no default: the file must set it */

/* One key of a table.  Fill with designated initializers. */
struct conf_key {
    const char *name; /* within its section: "host" */
    enum conf_type type;
    size_t offset;       /* of the value in the settings struct */
    size_t count_offset; /* CONF_STRV, CONF_GROUPS: of the size_t count */
    const char *def_str; /* CONF_STRING; CONF_STRV: "|"-separated list */
    const char *(*def_fn)(void); /* CONF_STRING: default known at run time */
    long long def_int;
    long long min, max; /* CONF_INT, CONF_INT64 */
    unsigned flags;
    const struct conf_table *elem; /* CONF_GROUPS: each group's keys */
    const char *doc;               /* one line, for sftprelayd -K */
};

/* The keys of one section (or of each group of a CONF_GROUPS key). */
struct conf_table {
    const char *section; /* "target"; a group list ("transforms"): its name */
    const char *title;   /* for sftprelayd -K: "sink sftp" */
    const struct conf_key *keys;
    size_t n_keys;
    /* The settings struct the offsets point into, allocated by the
     * reader; 0: the offsets are into struct conf (the core's tables). */
    size_t size;
    /*
     * Checks that span keys or need more than a type and a range, run
     * once every value is set (defaults included); may also fill derived
     * defaults.  Returns 0 or -EINVAL with err written by conf_fail().
     */
    int (*check)(void *settings, const struct conf_scope *s, char *err,
                 size_t errlen);
};

/* Where a table's values came from, for check hooks. */
struct conf_scope {
    const struct conf *c;       /* the file and every core value */
    const char *name;           /* "target", "server.users[1]" */
    int line;                   /* of its group in the file, 0 if absent */
    const struct conf_table *t; /* the table */
    const int *lines;           /* per key of t: line set on, 0 if default */
};

struct conf {
    char *file; /* the file it was read from */
    struct {
        char *type; /* a source name: "local" */
        char *path;
        char **exclude; /* globs on the base name */
        size_t n_exclude;
        int settle_ms;
        int rescan_interval;          /* seconds; 0 = never */
        int poll_interval;            /* polled sources: seconds */
        int stable_polls;             /* polls unchanged before sent */
        int max_files;                /* polled: entries per listing */
        char *after_delivery;         /* keep, delete, move:<dir> */
        const struct source_ops *ops; /* found by type */
        const void *settings;         /* the source's, from its table */
    } source;
    struct {
        char *type;                 /* a sink name */
        int probe_interval;         /* seconds between probes while down */
        char *on_exists;            /* overwrite, skip, rename */
        int on_exists_how;          /* the same as enum xfer_on_exists */
        const struct sink_ops *ops; /* found by type */
        const void *settings;       /* the sink's, from its table */
    } target;
    struct {
        char *path;
        int keep_delivered_days; /* 0 = keep forever */
    } journal;
    struct {
        int workers;
        int64_t chunk_size;
        int64_t bandwidth_limit; /* bytes per second, all workers; 0 none */
        int64_t split_size;      /* above: ranges over workers connections */
        int max_attempts; /* 0 = never give up */
        int backoff_initial;
        int backoff_max;
        char **transforms; /* the shorthand's names, as written */
        size_t n_transforms;
    } transfer;
    struct {
        /* The chain's steps in order, from the list "transforms" or the
         * shorthand transfer.transforms; for transform_chain_new(). */
        struct transform_spec *steps;
        size_t n;
    } transforms;
    struct {
        char *level;
    } log;
    struct conf_section *sections; /* every table applied, in order */
    size_t n_sections;
};

/* The configuration file the programs read when given none. */
#define CONF_DEFAULT_FILE SYSCONFDIR "/sftprelay/sftprelay.conf"

/* Longest error message the functions below produce. */
#define CONF_ERR_MAX 512

/*
 * Read file into a new struct conf (*out, freed with conf_free()), with
 * the core's tables, those of the plugins it names, and extra, a
 * NULL-terminated list of other modules' tables (may be NULL).
 * On error returns -EINVAL (bad content) or a negative errno (unreadable,
 * out of memory) and writes "FILE:LINE: KEY: what is wrong" to err.
 */
int conf_load(const char *file, const struct conf_table *const *extra,
              struct conf **out, char *err, size_t errlen);

void conf_free(struct conf *c);

/* The line key ("target.host") was set on, 0 if it has its default. */
int conf_line(const struct conf *c, const char *key);

/* The value of a string key ("target.host"), or NULL. */
const char *conf_str(const struct conf *c, const char *key);

/* The value of an integer key ("target.port"), or 0. */
long long conf_int(const struct conf *c, const char *key);

/*
 * The settings struct table t was read into, or NULL if it was not
 * applied.  Owned by c.
 */
const void *conf_settings(const struct conf *c, const struct conf_table *t);

/* The line key (a name in s's table) was set on, 0 if it has its default. */
int conf_scope_line(const struct conf_scope *s, const char *key);

/* The line of the first key of s's table the file sets, 0 if none. */
int conf_scope_any_line(const struct conf_scope *s);

/*
 * Write "FILE:LINE: NAME.KEY: message" to err ("FILE: ..." when line is
 * 0, "...: NAME: ..." when key is NULL) and return -EINVAL.
 */
int conf_fail(const struct conf_scope *s, int line, const char *key, char *err,
              size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/*
 * Print every key of every table with its type, default, bounds and
 * description (sftprelayd -K), grouped: core, each source, each sink,
 * each transform, then extra (as for conf_load()).
 */
void conf_print_keys(const struct conf_table *const *extra);

/* Helpers for declaring keys: T is the settings struct, F its field. */
#define CONF_KEY_STR(T, F, k, def, fl, d)                                      \
    {                                                                          \
        .name = (k), .type = CONF_STRING, .offset = offsetof(T, F),            \
        .def_str = (def), .flags = (fl), .doc = (d)                            \
    }
#define CONF_KEY_INT(T, F, k, def, lo, hi, d)                                  \
    {                                                                          \
        .name = (k), .type = CONF_INT, .offset = offsetof(T, F),               \
        .def_int = (def), .min = (lo), .max = (hi), .doc = (d)                 \
    }
#define CONF_KEY_I64(T, F, k, def, lo, hi, d)                                  \
    {                                                                          \
        .name = (k), .type = CONF_INT64, .offset = offsetof(T, F),             \
        .def_int = (def), .min = (lo), .max = (hi), .doc = (d)                 \
    }
#define CONF_KEY_BOOL(T, F, k, def, d)                                         \
    {                                                                          \
        .name = (k), .type = CONF_BOOL, .offset = offsetof(T, F),              \
        .def_int = (def), .doc = (d)                                           \
    }
#define CONF_KEY_STRV(T, F, N, k, def, d)                                      \
    {                                                                          \
        .name = (k), .type = CONF_STRV, .offset = offsetof(T, F),              \
        .count_offset = offsetof(T, N), .def_str = (def), .doc = (d)           \
    }
#define CONF_KEY_GROUPS(T, F, N, k, el, d)                                     \
    {                                                                          \
        .name = (k), .type = CONF_GROUPS, .offset = offsetof(T, F),            \
        .count_offset = offsetof(T, N), .elem = (el), .doc = (d)               \
    }

#define CONF_N_KEYS(a) (sizeof(a) / sizeof((a)[0]))

#endif
