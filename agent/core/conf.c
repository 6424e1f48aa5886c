/*
 * sftprelay.conf(5): a generic reader of key tables, with libconfig.
 *
 * Every table (struct conf_table) belongs to the module that declares it:
 * the core's are below, a plugin's hangs off its ops, other modules' are
 * handed in by the program.  Reading goes in steps:
 *   1. the core's tables take their defaults;
 *   2. the plugins the file names (source.type, target.type) are found
 *      by name in their tables, and their tables take their defaults;
 *   3. every setting in the file must be a key of an applied table, of
 *      its type (a key of another plugin is "not used by target.type");
 *   4. every applied table takes its values from the file (bounds,
 *      required keys);
 *   5. every table's check hook runs, in the same order;
 *   6. the transforms: each group of the top-level list "transforms" is
 *      read with the common keys (type, suffix) and the keys of the
 *      transform its type names, into a struct transform_spec; or each
 *      name of the shorthand transfer.transforms becomes one with its
 *      defaults.
 * Each applied table is a struct conf_section: its settings struct (struct
 * conf itself for the core's) and the line each key was set on.
 */
#include "config.h"

#include <errno.h>
#include <libconfig.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sftprelay/after.h"
#include "sftprelay/conf.h"
#include "sftprelay/sink.h"
#include "sftprelay/source.h"
#include "sftprelay/transform.h"

struct conf_section {
    const struct conf_table *t;
    void *settings; /* struct conf for the core's tables, else owned */
    int *lines;     /* per key: the line it was set on, 0 if defaulted */
    int line;       /* of the section in the file, 0 if absent */
};

/* --- the core's keys ------------------------------------------------------ */

static const char *const levels[] = {"error", "warn", "info", "debug", NULL};

static int check_source(void *settings, const struct conf_scope *s, char *err,
                        size_t errlen)
{
    const struct conf *c = settings;
    const struct source_ops *ops = source_find(c->source.type);
    const char *dir;

    if (ops && ops->no_path) {
        if (conf_scope_line(s, "path") > 0)
            return conf_fail(s, conf_scope_line(s, "path"), "path", err,
                             errlen, "not used by source.type \"%s\" (its "
                             "own keys say where files are)", ops->name);
    }
    else if (c->source.path[0] == '\0')
        return conf_fail(s, s->line, "path", err, errlen,
                         "required key is missing");
    else if (c->source.path[0] != '/')
        return conf_fail(s, conf_scope_line(s, "path"), "path", err, errlen,
                         "\"%s\" is not an absolute path", c->source.path);
    if (after_parse(c->source.after_delivery, &dir) < 0)
        return conf_fail(s, conf_scope_line(s, "after_delivery"),
                         "after_delivery", err, errlen,
                         "\"%s\" is not keep, delete or move:<folder> (a "
                         "relative path under source.path)",
                         c->source.after_delivery);
    return 0;
}

static int check_transfer(void *settings, const struct conf_scope *s, char *err,
                          size_t errlen)
{
    const struct conf *c = settings;

    if (c->transfer.backoff_max < c->transfer.backoff_initial)
        return conf_fail(s, conf_scope_line(s, "backoff_max"), "backoff_max",
                         err, errlen,
                         "%d is less than transfer.backoff_initial (%d)",
                         c->transfer.backoff_max, c->transfer.backoff_initial);
    return 0;
}

/* In the order of enum xfer_on_exists (xfer.h). */
static const char *const on_exists_names[] = {"overwrite", "skip", "rename",
                                              NULL};

static int check_target(void *settings, const struct conf_scope *s, char *err,
                        size_t errlen)
{
    struct conf *c = settings;
    int i;

    for (i = 0; on_exists_names[i]; i++)
        if (strcmp(c->target.on_exists, on_exists_names[i]) == 0) {
            c->target.on_exists_how = i;
            return 0;
        }
    return conf_fail(s, conf_scope_line(s, "on_exists"), "on_exists", err,
                     errlen, "\"%s\" is not overwrite, skip or rename",
                     c->target.on_exists);
}

static int check_log(void *settings, const struct conf_scope *s, char *err,
                     size_t errlen)
{
    const struct conf *c = settings;
    size_t i;

    for (i = 0; levels[i]; i++)
        if (strcmp(c->log.level, levels[i]) == 0)
            return 0;
    return conf_fail(s, conf_scope_line(s, "level"), "level", err, errlen,
                     "\"%s\" is not error, warn, info or debug", c->log.level);
}

#define C struct conf
static const struct conf_key source_keys[] = {
    {
        .name = "type",
        .type = CONF_STRING,
        .offset = offsetof(C, source.type),
        .def_fn = source_default,
        .doc = "where files come from, by name (see below)",
    },
    CONF_KEY_STR(C, source.path, "path", "", 0,
                 "the folder on the source (local or remote) files are "
                 "taken from; required but for s3"),
    CONF_KEY_STRV(C, source.exclude, source.n_exclude, "exclude",
                  "*.part|*.filepart", "base-name globs never sent"),
    CONF_KEY_INT(C, source.settle_ms, "settle_ms", 200, 0, 3600000,
                 "quiet time after a close before a file is queued"),
    CONF_KEY_INT(C, source.rescan_interval, "rescan_interval", 3600, 0,
                 31536000,
                 "seconds between full scans of the source (0: never)"),
    CONF_KEY_INT(C, source.poll_interval, "poll_interval", 10, 1, 86400,
                 "polled sources (sftp): seconds between listings"),
    CONF_KEY_INT(C, source.stable_polls, "stable_polls", 2, 1, 1000,
                 "polled sources: listings a file must be seen unchanged "
                 "in before it is sent"),
    CONF_KEY_INT(C, source.max_files, "max_files", 10000000, 1, 1000000000,
                 "polled sources: the most entries one listing may hold; "
                 "a bigger one stops, logged"),
    CONF_KEY_STR(C, source.after_delivery, "after_delivery", "keep", 0,
                 "once the journal records a delivery: keep, delete, or "
                 "move:<folder> (under source.path) the source file"),
};

static const struct conf_key target_keys[] = {
    {
        .name = "type",
        .type = CONF_STRING,
        .offset = offsetof(C, target.type),
        .def_fn = sink_default,
        .doc = "where files are delivered: a sink, by name (see below)",
    },
    CONF_KEY_INT(C, target.probe_interval, "probe_interval", 10, 1, 3600,
                 "while the target is down, how often a cheap reachability "
                 "probe runs (jittered)"),
    CONF_KEY_STR(C, target.on_exists, "on_exists", "overwrite", 0,
                 "when the target has the file already: overwrite, skip or "
                 "rename (deliver report.csv as report.1.csv)"),
};

static const struct conf_key journal_keys[] = {
    CONF_KEY_STR(C, journal.path, "path", "/var/lib/sftprelay/journal.db", 0,
                 "SQLite journal file"),
    CONF_KEY_INT(C, journal.keep_delivered_days, "keep_delivered_days", 30, 0,
                 36500, "days delivered rows are kept (0: forever)"),
};

static const struct conf_key transfer_keys[] = {
    CONF_KEY_INT(C, transfer.workers, "workers", 4, 1, 64,
                 "files sent at once, each on its own connection"),
    CONF_KEY_I64(C, transfer.chunk_size, "chunk_size", 262144, 32768,
                 268435456,
                 "bytes read and handed to the target per step"),
    CONF_KEY_I64(C, transfer.split_size, "split_size", 67108864, 0,
                 INT64_C(1) << 50,
                 "files above this many bytes go as ranges over up to "
                 "workers connections (0: never)"),
    CONF_KEY_I64(C, transfer.bandwidth_limit, "bandwidth_limit", 0, 0,
                 INT64_C(1) << 40,
                 "bytes per second for the whole agent (0: no limit)"),
    CONF_KEY_INT(C, transfer.max_attempts, "max_attempts", 0, 0, 1000000,
                 "attempts before a file is marked failed (0: never)"),
    CONF_KEY_INT(C, transfer.backoff_initial, "backoff_initial", 1, 1, 86400,
                 "first retry delay, seconds"),
    CONF_KEY_INT(C, transfer.backoff_max, "backoff_max", 300, 1, 86400,
                 "longest retry delay, seconds"),
    CONF_KEY_STRV(C, transfer.transforms, transfer.n_transforms, "transforms",
                  "",
                  "shorthand for the list transforms: names, each "
                  "transform with its defaults"),
};

static const struct conf_key log_keys[] = {
    CONF_KEY_STR(C, log.level, "level", "info", 0,
                 "error, warn, info or debug"),
};
#undef C

#define CORE(s, k, chk)                                                        \
    {                                                                          \
        .section = (s), .title = "core", .keys = (k),                          \
        .n_keys = CONF_N_KEYS(k), .check = (chk)                               \
    }
static const struct conf_table core[] = {
    CORE("source", source_keys, check_source),
    CORE("target", target_keys, check_target),
    CORE("journal", journal_keys, NULL),
    CORE("transfer", transfer_keys, check_transfer),
    CORE("log", log_keys, check_log),
};
#undef CORE

#define N_CORE (sizeof(core) / sizeof(core[0]))

/* The keys every group of the list "transforms" has. */
#define S struct transform_spec
static const struct conf_key transform_common_keys[] = {
    CONF_KEY_STR(S, type, "type", NULL, CONF_REQUIRED,
                 "the transform, by name (see below)"),
    CONF_KEY_STR(S, suffix, "suffix", NULL, 0,
                 "appended to the target name (default: the transform's "
                 "own, \".gz\"); \"\" keeps the name"),
};
#undef S

static const struct conf_table transform_common = {
    .section = "transforms",
    .title = "transforms (a list of groups, applied in order)",
    .keys = transform_common_keys,
    .n_keys = CONF_N_KEYS(transform_common_keys),
    .size = sizeof(struct transform_spec),
};

/* --- values --------------------------------------------------------------- */

static void *field(void *base, size_t off)
{
    return (char *)base + off;
}

static const struct conf_key *find_key(const struct conf_table *t,
                                       const char *name, size_t *idx)
{
    size_t i;

    for (i = 0; i < t->n_keys; i++) {
        if (strcmp(t->keys[i].name, name) == 0) {
            if (idx)
                *idx = i;
            return &t->keys[i];
        }
    }
    return NULL;
}

static const char *type_name(enum conf_type t)
{
    switch (t) {
    case CONF_STRING:
        return "a string";
    case CONF_INT:
    case CONF_INT64:
        return "an integer";
    case CONF_BOOL:
        return "true or false";
    case CONF_STRV:
        return "a list of strings";
    case CONF_GROUPS:
        return "a list of groups ( { name = ...; }, ... )";
    }
    return "?";
}

static int type_ok(const struct conf_key *k, const config_setting_t *s)
{
    int t = config_setting_type(s);

    switch (k->type) {
    case CONF_STRING:
        return t == CONFIG_TYPE_STRING;
    case CONF_INT:
    case CONF_INT64:
        return t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64;
    case CONF_BOOL:
        return t == CONFIG_TYPE_BOOL;
    case CONF_STRV:
        return t == CONFIG_TYPE_ARRAY || t == CONFIG_TYPE_LIST;
    case CONF_GROUPS:
        return t == CONFIG_TYPE_LIST;
    }
    return 0;
}

static void strv_free(char **v, size_t n)
{
    size_t i;

    if (v == NULL)
        return;
    for (i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static int strv_from_default(const char *def, char ***out, size_t *n)
{
    char *copy = NULL, *tok, *save = NULL;
    char **v = NULL;
    size_t cnt = 0;
    int r = -ENOMEM;

    *out = NULL;
    *n = 0;
    if (def == NULL || *def == '\0')
        return 0;
    copy = strdup(def);
    if (copy == NULL)
        goto out;
    for (tok = strtok_r(copy, "|", &save); tok;
         tok = strtok_r(NULL, "|", &save)) {
        char **nv = realloc(v, (cnt + 2) * sizeof(*v));

        if (nv == NULL)
            goto out;
        v = nv;
        v[cnt] = strdup(tok);
        if (v[cnt] == NULL)
            goto out;
        v[++cnt] = NULL;
    }
    *out = v;
    *n = cnt;
    v = NULL; /* transferred */
    r = 0;
out:
    strv_free(v, cnt);
    free(copy);
    return r;
}

/* Free every value t's keys hold in base (not base itself). */
static void free_values(void *base, const struct conf_table *t)
{
    size_t i, j, n;
    char *elems;

    for (i = 0; i < t->n_keys; i++) {
        const struct conf_key *k = &t->keys[i];

        switch (k->type) {
        case CONF_STRING:
            free(*(char **)field(base, k->offset));
            break;
        case CONF_STRV:
            strv_free(*(char ***)field(base, k->offset),
                      *(size_t *)field(base, k->count_offset));
            break;
        case CONF_GROUPS:
            elems = *(char **)field(base, k->offset);
            n = *(size_t *)field(base, k->count_offset);
            for (j = 0; elems && j < n; j++)
                free_values(elems + j * k->elem->size, k->elem);
            free(elems);
            break;
        default:
            break;
        }
    }
}

static int set_default(void *base, const struct conf_key *k)
{
    const char *def = k->def_fn ? k->def_fn() : k->def_str;

    switch (k->type) {
    case CONF_STRING:
        if (def == NULL)
            return 0;
        *(char **)field(base, k->offset) = strdup(def);
        return *(char **)field(base, k->offset) ? 0 : -ENOMEM;
    case CONF_INT:
    case CONF_BOOL:
        *(int *)field(base, k->offset) = (int)k->def_int;
        return 0;
    case CONF_INT64:
        *(int64_t *)field(base, k->offset) = k->def_int;
        return 0;
    case CONF_STRV:
        return strv_from_default(def, (char ***)field(base, k->offset),
                                 (size_t *)field(base, k->count_offset));
    case CONF_GROUPS:
        return 0;
    }
    return -EINVAL;
}

static int set_defaults(void *base, const struct conf_table *t)
{
    size_t i;
    int r;

    for (i = 0; i < t->n_keys; i++) {
        r = set_default(base, &t->keys[i]);
        if (r < 0)
            return r;
    }
    return 0;
}

static int set_groups(const struct conf_scope *s, void *base,
                      const struct conf_key *k, const config_setting_t *list,
                      char *err, size_t errlen);

static int set_int(const struct conf_scope *s, void *base,
                   const struct conf_key *k, const config_setting_t *v,
                   char *err, size_t errlen)
{
    long long n = config_setting_type(v) == CONFIG_TYPE_INT64
                      ? config_setting_get_int64(v)
                      : config_setting_get_int(v);

    if (n < k->min || n > k->max)
        return conf_fail(s, config_setting_source_line(v), k->name, err, errlen,
                         "%lld is out of range (%lld to %lld)", n, k->min,
                         k->max);
    if (k->type == CONF_INT)
        *(int *)field(base, k->offset) = (int)n;
    else
        *(int64_t *)field(base, k->offset) = n;
    return 0;
}

static int set_strv(const struct conf_scope *s, void *base,
                    const struct conf_key *k, const config_setting_t *v,
                    char *err, size_t errlen)
{
    int i, n = config_setting_length(v);
    char **strv;

    for (i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(v, i);

        if (config_setting_type(e) != CONFIG_TYPE_STRING)
            return conf_fail(s, config_setting_source_line(e), k->name, err,
                             errlen, "element %d is not a string", i + 1);
    }
    strv = calloc((size_t)n + 1, sizeof(*strv));
    if (strv == NULL)
        return -ENOMEM;
    for (i = 0; i < n; i++) {
        strv[i] = strdup(config_setting_get_string_elem(v, i));
        if (strv[i] == NULL) {
            strv_free(strv, (size_t)i);
            return -ENOMEM;
        }
    }
    strv_free(*(char ***)field(base, k->offset),
              *(size_t *)field(base, k->count_offset));
    *(char ***)field(base, k->offset) = strv;
    *(size_t *)field(base, k->count_offset) = (size_t)n;
    return 0;
}

/* Fill one key from its setting v, whose type was checked already. */
static int set_value(const struct conf_scope *s, void *base,
                     const struct conf_key *k, const config_setting_t *v,
                     char *err, size_t errlen)
{
    char **str;

    switch (k->type) {
    case CONF_STRING:
        str = (char **)field(base, k->offset);
        free(*str);
        *str = strdup(config_setting_get_string(v));
        return *str ? 0 : -ENOMEM;
    case CONF_INT:
    case CONF_INT64:
        return set_int(s, base, k, v, err, errlen);
    case CONF_BOOL:
        *(int *)field(base, k->offset) = config_setting_get_bool(v);
        return 0;
    case CONF_STRV:
        return set_strv(s, base, k, v, err, errlen);
    case CONF_GROUPS:
        return set_groups(s, base, k, v, err, errlen);
    }
    return -EINVAL;
}

/* Where a group's members may land: a table (s->t), its lines, values. */
struct dest {
    const struct conf_scope *s;
    int *lines; /* the same as s->lines, writable */
    void *base;
};

/*
 * The members of group g, each a key of one of the n tables of d (a
 * transform's group: the common keys, then its own), into their bases.
 */
static int set_members(const struct dest *d, size_t n,
                       const config_setting_t *g, char *err, size_t errlen)
{
    const struct conf_key *k = NULL;
    size_t idx = 0, j;
    int i, r;

    for (i = 0; i < config_setting_length(g); i++) {
        const config_setting_t *e = config_setting_get_elem(g, i);
        int line = config_setting_source_line(e);

        for (j = 0; j < n; j++) {
            k = find_key(d[j].s->t, config_setting_name(e), &idx);
            if (k)
                break;
        }
        if (k == NULL)
            return conf_fail(d[0].s, line, config_setting_name(e), err, errlen,
                             "unknown key");
        if (!type_ok(k, e))
            return conf_fail(d[j].s, line, k->name, err, errlen, "expected %s",
                             type_name(k->type));
        r = set_value(d[j].s, d[j].base, k, e, err, errlen);
        if (r < 0)
            return r;
        d[j].lines[idx] = line;
    }
    for (j = 0; j < n; j++)
        for (idx = 0; idx < d[j].s->t->n_keys; idx++)
            if ((d[j].s->t->keys[idx].flags & CONF_REQUIRED) &&
                d[j].lines[idx] == 0)
                return conf_fail(d[j].s, d[j].s->line,
                                 d[j].s->t->keys[idx].name, err, errlen,
                                 "required");
    return 0;
}

/* Element idx (from 1) of a group list; errors name it "KEY[idx]". */
static int set_group(const struct conf_scope *s, const struct conf_key *k,
                     int idx, void *base, const config_setting_t *g, char *err,
                     size_t errlen)
{
    char name[128];
    int *lines = calloc(k->elem->n_keys + 1, sizeof(*lines));
    struct conf_scope es = {
        .c = s->c,
        .name = name,
        .line = config_setting_source_line(g),
        .t = k->elem,
        .lines = lines,
    };
    struct dest d = {.s = &es, .lines = lines, .base = base};
    int r;

    if (lines == NULL)
        return -ENOMEM;
    snprintf(name, sizeof(name), "%s.%s[%d]", s->name, k->name, idx);
    r = set_defaults(base, k->elem);
    if (r == 0 && config_setting_type(g) != CONFIG_TYPE_GROUP)
        r = conf_fail(&es, es.line, NULL, err, errlen,
                      "expected a group { name = ...; }");
    if (r == 0)
        r = set_members(&d, 1, g, err, errlen);
    if (r == 0 && k->elem->check)
        r = k->elem->check(base, &es, err, errlen);
    free(lines);
    return r;
}

static int set_groups(const struct conf_scope *s, void *base,
                      const struct conf_key *k, const config_setting_t *list,
                      char *err, size_t errlen)
{
    size_t n = (size_t)config_setting_length(list), i, size = k->elem->size;
    char *elems = calloc(n + 1, size);
    int r = 0;

    if (elems == NULL)
        return -ENOMEM;
    for (i = 0; i < n && r == 0; i++)
        r = set_group(s, k, (int)i + 1, elems + i * size,
                      config_setting_get_elem(list, (unsigned)i), err, errlen);
    if (r < 0) {
        while (i > 0)
            free_values(elems + --i * size, k->elem);
        free(elems);
        return r;
    }
    *(char **)field(base, k->offset) = elems;
    *(size_t *)field(base, k->count_offset) = n;
    return 0;
}

/* --- sections ------------------------------------------------------------- */

static struct conf_scope scope_of(const struct conf *c,
                                  const struct conf_section *sec)
{
    struct conf_scope s = {
        .c = c,
        .name = sec->t->section,
        .line = sec->line,
        .t = sec->t,
        .lines = sec->lines,
    };

    return s;
}

/*
 * Apply table t with its defaults: into base (the core's: struct conf), or
 * into a new settings struct.  *settings receives where.
 */
static int add_section(struct conf *c, const struct conf_table *t, void *base,
                       const void **settings)
{
    struct conf_section *v, *sec;

    v = realloc(c->sections, (c->n_sections + 1) * sizeof(*v));
    if (v == NULL)
        return -ENOMEM;
    c->sections = v;
    sec = &v[c->n_sections];
    memset(sec, 0, sizeof(*sec));
    sec->t = t;
    sec->lines = calloc(t->n_keys + 1, sizeof(*sec->lines));
    sec->settings = base ? base : calloc(1, t->size ? t->size : 1);
    if (sec->lines == NULL || sec->settings == NULL) {
        free(sec->lines);
        if (sec->settings != base)
            free(sec->settings);
        return -ENOMEM;
    }
    c->n_sections++;
    if (settings)
        *settings = sec->settings;
    return set_defaults(sec->settings, t);
}

static struct conf_section *find_section(const struct conf *c,
                                         const struct conf_table *t)
{
    size_t i;

    for (i = 0; i < c->n_sections; i++)
        if (c->sections[i].t == t)
            return &c->sections[i];
    return NULL;
}

/* The key named "section.key" among the applied tables, or NULL. */
static const struct conf_key *lookup(const struct conf *c, const char *key,
                                     struct conf_section **secp, size_t *idx)
{
    size_t i, n = strcspn(key, ".");
    const struct conf_key *k;

    if (key[n] != '.')
        return NULL;
    for (i = 0; i < c->n_sections; i++) {
        struct conf_section *sec = &c->sections[i];

        if (strlen(sec->t->section) != n ||
            strncmp(sec->t->section, key, n) != 0)
            continue;
        k = find_key(sec->t, key + n + 1, idx);
        if (k) {
            *secp = sec;
            return k;
        }
    }
    return NULL;
}

/* --- plugins -------------------------------------------------------------- */

/* Whether a plugin the file does not use has key in section. */
static int other_plugin_has(const char *section, const char *key)
{
    const struct conf_table *t;
    size_t i;

    for (i = 0; sink_at(i) || source_at(i) || transform_at(i); i++) {
        const struct conf_table *ts[] = {
            sink_at(i) ? sink_at(i)->conf : NULL,
            source_at(i) ? source_at(i)->conf : NULL,
            transform_at(i) ? transform_at(i)->conf : NULL,
        };
        size_t j;

        for (j = 0; j < 3; j++) {
            t = ts[j];
            if (t && strcmp(t->section, section) == 0 && find_key(t, key, NULL))
                return 1;
        }
    }
    return 0;
}

/*
 * The name the file gives key ("target.type"), if it is a string, into
 * *value (a core string, replaced); *line receives its line or 0.
 */
static int selector(const config_t *cfg, const char *key, char **value,
                    int *line)
{
    const config_setting_t *s = config_lookup(cfg, key);
    char *v;

    *line = 0;
    if (s == NULL || config_setting_type(s) != CONFIG_TYPE_STRING)
        return 0;
    *line = config_setting_source_line(s);
    v = strdup(config_setting_get_string(s));
    if (v == NULL)
        return -ENOMEM;
    free(*value);
    *value = v;
    return 0;
}

static int unknown(const struct conf *c, const char *key, int line,
                   const char *what, const char *name, const char *known,
                   char *err, size_t errlen)
{
    if (line > 0)
        snprintf(err, errlen, "%s:%d: %s: unknown %s \"%s\" (known: %s)",
                 c->file, line, key, what, name, known);
    else
        snprintf(err, errlen, "%s: %s: unknown %s \"%s\" (known: %s)", c->file,
                 key, what, name, known);
    return -EINVAL;
}

/* The sink and the source the file names, with their tables. */
static int find_sink_source(struct conf *c, const config_t *cfg, char *err,
                            size_t errlen)
{
    int line, r;

    r = selector(cfg, "source.type", &c->source.type, &line);
    if (r < 0)
        return r;
    c->source.ops = source_find(c->source.type);
    if (c->source.ops == NULL)
        return unknown(c, "source.type", line, "source", c->source.type,
                       source_names(), err, errlen);
    r = selector(cfg, "target.type", &c->target.type, &line);
    if (r < 0)
        return r;
    c->target.ops = sink_find(c->target.type);
    if (c->target.ops == NULL)
        return unknown(c, "target.type", line, "sink", c->target.type,
                       sink_names(), err, errlen);
    if (c->source.ops->conf) {
        r = add_section(c, c->source.ops->conf, NULL, &c->source.settings);
        if (r < 0)
            return r;
    }
    if (c->target.ops->conf)
        return add_section(c, c->target.ops->conf, NULL, &c->target.settings);
    return 0;
}

/* --- transforms ---------------------------------------------------------- */

/* sp's settings struct for sp->ops, with its defaults. */
static int spec_settings(struct transform_spec *sp)
{
    const struct conf_table *t = sp->ops->conf;

    if (t == NULL)
        return 0;
    sp->settings = calloc(1, t->size ? t->size : 1);
    if (sp->settings == NULL)
        return -ENOMEM;
    return set_defaults(sp->settings, t);
}

static void spec_free(struct transform_spec *sp)
{
    if (sp->settings) {
        free_values(sp->settings, sp->ops->conf);
        free(sp->settings);
    }
    free_values(sp, &transform_common);
}

/* Run sp's check hook, if its transform has one, in scope sc. */
static int spec_check(struct transform_spec *sp, struct conf_scope *sc,
                      char *err, size_t errlen)
{
    const struct conf_table *t = sp->ops->conf;

    if (t == NULL || t->check == NULL)
        return 0;
    sc->t = t;
    return t->check(sp->settings, sc, err, errlen);
}

/*
 * Group idx (from 1) of the list "transforms" into *sp: its type first,
 * then every member, a common key or one of that type's table.
 */
static int read_transform(const struct conf *c, const config_setting_t *g,
                          int idx, struct transform_spec *sp, char *err,
                          size_t errlen)
{
    const config_setting_t *type;
    const struct conf_table *t;
    char name[32];
    int common_lines[CONF_N_KEYS(transform_common_keys)] = {0};
    int *lines = NULL, r, line = config_setting_source_line(g);
    struct conf_scope cs = {
        .c = c,
        .name = name,
        .line = line,
        .t = &transform_common,
        .lines = common_lines,
    };
    struct conf_scope ts = cs;
    struct dest d[2] = {{.s = &cs, .lines = common_lines, .base = sp}};

    snprintf(name, sizeof(name), "transforms[%d]", idx);
    sp->line = line;
    if (config_setting_type(g) != CONFIG_TYPE_GROUP)
        return conf_fail(&cs, line, NULL, err, errlen,
                         "expected a group { type = ...; }");
    type = config_setting_get_member(g, "type");
    if (type == NULL)
        return conf_fail(&cs, line, "type", err, errlen,
                         "required key is missing");
    if (config_setting_type(type) != CONFIG_TYPE_STRING)
        return conf_fail(&cs, config_setting_source_line(type), "type", err,
                         errlen, "expected a string");
    sp->ops = transform_find(config_setting_get_string(type));
    if (sp->ops == NULL)
        return conf_fail(&cs, config_setting_source_line(type), "type", err,
                         errlen, "unknown transform \"%s\" (known: %s)",
                         config_setting_get_string(type), transform_names());
    t = sp->ops->conf;
    r = spec_settings(sp);
    if (r == 0 && t) {
        lines = calloc(t->n_keys + 1, sizeof(*lines));
        r = lines ? 0 : -ENOMEM;
        ts.t = t;
        ts.lines = lines;
        d[1] = (struct dest){.s = &ts, .lines = lines, .base = sp->settings};
    }
    if (r == 0)
        r = set_members(d, t ? 2 : 1, g, err, errlen);
    if (r == 0)
        r = spec_check(sp, &ts, err, errlen);
    free(lines);
    return r;
}

/* A name of the shorthand transfer.transforms, at e, into *sp: that
 * transform with its defaults. */
static int shorthand_transform(const struct conf *c, const config_setting_t *e,
                               struct transform_spec *sp, char *err,
                               size_t errlen)
{
    const char *type = config_setting_get_string(e);
    int line = config_setting_source_line(e);
    struct conf_scope sc = {.c = c, .name = "transfer", .line = line};
    const struct conf_table *t;
    size_t i;
    int r;

    sp->line = line;
    sp->ops = type ? transform_find(type) : NULL;
    if (sp->ops == NULL)
        return unknown(c, "transfer.transforms", line, "transform",
                       type ? type : "?", transform_names(), err, errlen);
    sp->type = strdup(type);
    if (sp->type == NULL)
        return -ENOMEM;
    t = sp->ops->conf;
    for (i = 0; t && i < t->n_keys; i++)
        if (t->keys[i].flags & CONF_REQUIRED)
            return conf_fail(&sc, line, "transforms", err, errlen,
                             "%s needs %s: write transforms = ( { type = "
                             "\"%s\"; %s = ...; } ) instead",
                             type, t->keys[i].name, type, t->keys[i].name);
    r = spec_settings(sp);
    if (r < 0)
        return r;
    sc.name = "transfer.transforms";
    return spec_check(sp, &sc, err, errlen);
}

/*
 * The chain's steps, into c->transforms: from the list "transforms", or
 * from the shorthand transfer.transforms; not both.
 */
static int read_transforms(struct conf *c, const config_t *cfg, char *err,
                           size_t errlen)
{
    const config_setting_t *list = config_lookup(cfg, "transforms");
    const config_setting_t *names = config_lookup(cfg, "transfer.transforms");
    struct transform_spec *sp;
    int i, n, r;

    if (list && names) {
        snprintf(err, errlen,
                 "%s:%d: transforms: transfer.transforms is set too (line "
                 "%d); use one of them",
                 c->file, config_setting_source_line(list),
                 config_setting_source_line(names));
        return -EINVAL;
    }
    if (list == NULL)
        list = names;
    n = list ? config_setting_length(list) : 0;
    c->transforms.steps = calloc((size_t)n + 1, sizeof(*sp));
    if (c->transforms.steps == NULL)
        return -ENOMEM;
    for (i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(list, i);

        sp = &c->transforms.steps[i];
        c->transforms.n++; /* so that conf_free() frees it */
        if (list == names)
            r = shorthand_transform(c, e, sp, err, errlen);
        else
            r = read_transform(c, e, i + 1, sp, err, errlen);
        if (r < 0)
            return r;
    }
    return 0;
}

/* --- reading -------------------------------------------------------------- */

static int section_applied(const struct conf *c, const char *name)
{
    size_t i;

    for (i = 0; i < c->n_sections; i++)
        if (strcmp(c->sections[i].t->section, name) == 0)
            return 1;
    return 0;
}

/* One setting of section sname: a key of an applied table, of its type. */
static int check_setting(const struct conf *c, const char *sname,
                         const config_setting_t *s, char *err, size_t errlen)
{
    const struct conf_key *k;
    struct conf_section *sec;
    struct conf_scope sc = {.c = c, .name = sname};
    int line = config_setting_source_line(s);
    char name[128], sel[80];
    size_t idx;

    snprintf(name, sizeof(name), "%s.%s", sname, config_setting_name(s));
    k = lookup(c, name, &sec, &idx);
    if (k && !type_ok(k, s))
        return conf_fail(&sc, line, k->name, err, errlen, "expected %s",
                         type_name(k->type));
    if (k)
        return 0;
    snprintf(sel, sizeof(sel), "%s.type", sname);
    if (other_plugin_has(sname, config_setting_name(s)) && conf_str(c, sel))
        return conf_fail(&sc, line, config_setting_name(s), err, errlen,
                         "not used by %s \"%s\"", sel, conf_str(c, sel));
    return conf_fail(&sc, line, config_setting_name(s), err, errlen,
                     "unknown key");
}

/* Every setting in the file must be a key of an applied table. */
static int check_file(const struct conf *c, const config_t *cfg, char *err,
                      size_t errlen)
{
    const config_setting_t *root = config_root_setting(cfg);
    int i, j, r;

    for (i = 0; i < config_setting_length(root); i++) {
        const config_setting_t *sec = config_setting_get_elem(root, i);
        const char *sname = config_setting_name(sec);
        int line = config_setting_source_line(sec);

        if (strcmp(sname, "transforms") == 0 &&
            config_setting_type(sec) != CONFIG_TYPE_LIST) {
            snprintf(err, errlen,
                     "%s:%d: transforms: expected a list of groups ( { type "
                     "= ...; }, ... )",
                     c->file, line);
            return -EINVAL;
        }
        if (strcmp(sname, "transforms") == 0)
            continue; /* read_transforms() */
        if (transform_find(sname)) {
            snprintf(err, errlen,
                     "%s:%d: %s: a transform's keys go in its group: "
                     "transforms = ( { type = \"%s\"; ... } )",
                     c->file, line, sname, sname);
            return -EINVAL;
        }
        if (!section_applied(c, sname)) {
            snprintf(err, errlen, "%s:%d: %s: unknown section", c->file, line,
                     sname);
            return -EINVAL;
        }
        if (config_setting_type(sec) != CONFIG_TYPE_GROUP) {
            snprintf(err, errlen, "%s:%d: %s: expected a group { ... }",
                     c->file, line, sname);
            return -EINVAL;
        }
        for (j = 0; j < config_setting_length(sec); j++) {
            r = check_setting(c, sname, config_setting_get_elem(sec, j), err,
                              errlen);
            if (r < 0)
                return r;
        }
    }
    return 0;
}

/* Every key of one applied table takes its value from the file. */
static int apply_section(struct conf *c, struct conf_section *sec,
                         const config_t *cfg, char *err, size_t errlen)
{
    const config_setting_t *g = config_lookup(cfg, sec->t->section), *v;
    struct conf_scope sc;
    size_t i;
    int r;

    sec->line = g ? config_setting_source_line(g) : 0;
    sc = scope_of(c, sec);
    for (i = 0; i < sec->t->n_keys; i++) {
        const struct conf_key *k = &sec->t->keys[i];

        v = g ? config_setting_get_member(g, k->name) : NULL;
        if (v == NULL && (k->flags & CONF_REQUIRED))
            return conf_fail(&sc, sec->line, k->name, err, errlen,
                             "required key is missing");
        if (v == NULL)
            continue;
        sec->lines[i] = config_setting_source_line(v);
        r = set_value(&sc, sec->settings, k, v, err, errlen);
        if (r < 0)
            return r;
    }
    return 0;
}

static int apply_all(struct conf *c, const config_t *cfg, char *err,
                     size_t errlen)
{
    struct conf_scope sc;
    size_t i;
    int r;

    for (i = 0; i < c->n_sections; i++) {
        r = apply_section(c, &c->sections[i], cfg, err, errlen);
        if (r < 0)
            return r;
    }
    for (i = 0, r = 0; r == 0 && i < c->n_sections; i++) {
        if (c->sections[i].t->check == NULL)
            continue;
        sc = scope_of(c, &c->sections[i]);
        r = c->sections[i].t->check(c->sections[i].settings, &sc, err, errlen);
    }
    return r;
}

static int conf_alloc(const char *file, const struct conf_table *const *extra,
                      struct conf **out)
{
    struct conf *c;
    size_t i;
    int r = -ENOMEM;

    *out = NULL;
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    c->file = strdup(file);
    if (c->file == NULL)
        goto out;
    for (i = 0, r = 0; i < N_CORE && r == 0; i++)
        r = add_section(c, &core[i], c, NULL);
    for (i = 0; extra && extra[i] && r == 0; i++)
        r = add_section(c, extra[i], NULL, NULL);
    if (r < 0)
        goto out;
    *out = c;
    c = NULL; /* transferred */
out:
    conf_free(c);
    return r;
}

static int read_file(config_t *cfg, const char *file, char *err, size_t errlen)
{
    if (access(file, R_OK) < 0) {
        snprintf(err, errlen, "%s: %s", file, strerror(errno));
        return -errno;
    }
    if (config_read_file(cfg, file) != CONFIG_TRUE) {
        snprintf(err, errlen, "%s:%d: %s",
                 config_error_file(cfg) ? config_error_file(cfg) : file,
                 config_error_line(cfg), config_error_text(cfg));
        return config_error_type(cfg) == CONFIG_ERR_FILE_IO ? -EIO : -EINVAL;
    }
    return 0;
}

int conf_load(const char *file, const struct conf_table *const *extra,
              struct conf **out, char *err, size_t errlen)
{
    struct conf *c = NULL;
    config_t cfg;
    int r;

    *out = NULL;
    err[0] = '\0';
    config_init(&cfg);
    r = conf_alloc(file, extra, &c);
    if (r == 0)
        r = read_file(&cfg, file, err, errlen);
    if (r == 0)
        r = find_sink_source(c, &cfg, err, errlen);
    if (r == 0)
        r = check_file(c, &cfg, err, errlen);
    if (r == 0)
        r = apply_all(c, &cfg, err, errlen);
    if (r == 0)
        r = read_transforms(c, &cfg, err, errlen);
    if (r == 0) {
        *out = c;
        c = NULL; /* transferred */
    }
    config_destroy(&cfg);
    conf_free(c);
    return r;
}

void conf_free(struct conf *c)
{
    size_t i;

    if (c == NULL)
        return;
    for (i = 0; i < c->n_sections; i++) {
        struct conf_section *sec = &c->sections[i];

        free_values(sec->settings, sec->t);
        if (sec->settings != c)
            free(sec->settings);
        free(sec->lines);
    }
    free(c->sections);
    for (i = 0; i < c->transforms.n; i++)
        spec_free(&c->transforms.steps[i]);
    free(c->transforms.steps);
    free(c->file);
    free(c);
}

/* --- queries -------------------------------------------------------------- */

int conf_line(const struct conf *c, const char *key)
{
    struct conf_section *sec;
    size_t idx;

    return lookup(c, key, &sec, &idx) ? sec->lines[idx] : 0;
}

const char *conf_str(const struct conf *c, const char *key)
{
    const struct conf_key *k;
    struct conf_section *sec;
    size_t idx;

    k = lookup(c, key, &sec, &idx);
    if (k == NULL || k->type != CONF_STRING)
        return NULL;
    return *(char **)field(sec->settings, k->offset);
}

long long conf_int(const struct conf *c, const char *key)
{
    const struct conf_key *k;
    struct conf_section *sec;
    size_t idx;

    k = lookup(c, key, &sec, &idx);
    if (k && (k->type == CONF_INT || k->type == CONF_BOOL))
        return *(int *)field(sec->settings, k->offset);
    if (k && k->type == CONF_INT64)
        return *(int64_t *)field(sec->settings, k->offset);
    return 0;
}

const void *conf_settings(const struct conf *c, const struct conf_table *t)
{
    struct conf_section *sec = find_section(c, t);

    return sec ? sec->settings : NULL;
}

int conf_scope_line(const struct conf_scope *s, const char *key)
{
    size_t idx;

    return find_key(s->t, key, &idx) ? s->lines[idx] : 0;
}

int conf_scope_any_line(const struct conf_scope *s)
{
    size_t i;

    for (i = 0; i < s->t->n_keys; i++)
        if (s->lines[i])
            return s->lines[i];
    return 0;
}

int conf_fail(const struct conf_scope *s, int line, const char *key, char *err,
              size_t errlen, const char *fmt, ...)
{
    va_list ap;
    size_t n;

    if (line > 0)
        n = (size_t)snprintf(err, errlen, "%s:%d: %s%s%s: ", s->c->file, line,
                             s->name, key ? "." : "", key ? key : "");
    else
        n = (size_t)snprintf(err, errlen, "%s: %s%s%s: ", s->c->file, s->name,
                             key ? "." : "", key ? key : "");
    if (n < errlen) {
        va_start(ap, fmt);
        vsnprintf(err + n, errlen - n, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

/* --- sftprelayd -K -------------------------------------------------------- */

static const char *kind(enum conf_type t)
{
    static const char *const names[] = {
        [CONF_STRING] = "string", [CONF_INT] = "integer",
        [CONF_INT64] = "integer", [CONF_BOOL] = "boolean",
        [CONF_STRV] = "strings",
        [CONF_GROUPS] = "groups",
    };

    return names[t];
}

static void print_key(const char *prefix, const struct conf_key *k)
{
    const char *def = k->def_fn ? k->def_fn() : k->def_str;
    char name[128], val[96];
    size_t i;

    snprintf(name, sizeof(name), "%s.%s", prefix, k->name);
    if (k->flags & CONF_REQUIRED)
        snprintf(val, sizeof(val), "(required)");
    else if (k->type == CONF_INT || k->type == CONF_INT64)
        snprintf(val, sizeof(val), "%lld (%lld..%lld)", k->def_int, k->min,
                 k->max);
    else if (k->type == CONF_BOOL)
        snprintf(val, sizeof(val), "%s", k->def_int ? "true" : "false");
    else if (k->type == CONF_STRV)
        snprintf(val, sizeof(val), "[%s]", def ? def : "");
    else if (k->type == CONF_GROUPS)
        snprintf(val, sizeof(val), "()");
    else
        snprintf(val, sizeof(val), def ? "\"%s\"" : "(none)", def);
    for (i = 0; val[0] == '[' && val[i]; i++)
        if (val[i] == '|')
            val[i] = ',';
    printf("  %-30s %-8s %-22s %s\n", name, kind(k->type), val, k->doc);
    if (k->type != CONF_GROUPS)
        return;
    snprintf(name, sizeof(name), "%s.%s[]", prefix, k->name);
    for (i = 0; i < k->elem->n_keys; i++)
        print_key(name, &k->elem->keys[i]);
}

/* t's keys, as prefix.key (NULL: its section's name). */
static void print_table(const struct conf_table *t, const char *prefix,
                        const char **title)
{
    size_t i;

    if (t == NULL)
        return;
    if (*title == NULL || strcmp(*title, t->title) != 0)
        printf("%s%s:\n", *title ? "\n" : "", t->title);
    *title = t->title;
    for (i = 0; i < t->n_keys; i++)
        print_key(prefix ? prefix : t->section, &t->keys[i]);
    if (t->n_keys == 0)
        printf("  (no keys)\n");
}

void conf_print_keys(const struct conf_table *const *extra)
{
    const char *title = NULL;
    size_t i;

    for (i = 0; i < N_CORE; i++)
        print_table(&core[i], NULL, &title);
    for (i = 0; source_at(i); i++)
        print_table(source_at(i)->conf, NULL, &title);
    for (i = 0; sink_at(i); i++)
        print_table(sink_at(i)->conf, NULL, &title);
    print_table(&transform_common, "transforms[]", &title);
    for (i = 0; transform_at(i); i++)
        print_table(transform_at(i)->conf, "transforms[]", &title);
    for (i = 0; extra && extra[i]; i++)
        print_table(extra[i], NULL, &title);
}
