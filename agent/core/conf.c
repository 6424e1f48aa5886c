/*
 * sftprelay.conf(5): one table of keys, read with libconfig.
 *
 * Reading is two passes: first every setting in the file is checked
 * against the table (unknown keys and wrong types are errors), then every
 * row of the table takes its value from the file or its default.
 */
#include "config.h"

#include <errno.h>
#include <libconfig.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sftprelay/conf.h"
#include "sftprelay/server.h"

enum conf_type {
    CT_STRING,
    CT_INT,
    CT_INT64,
    CT_STRV,
    CT_USERS, /* a list of { name; password_hash; authorized_keys; } */
};

#define CK_REQUIRED 0x1 /* no default: the file must set it */

struct conf_key {
    const char *key;
    enum conf_type type;
    size_t offset;       /* of the value in struct conf */
    size_t count_offset; /* CT_STRV: of the size_t count */
    const char *def_str; /* CT_STRING; CT_STRV: "|"-separated list */
    long long def_int;
    long long min, max;
    unsigned flags;
    const char *desc;
};

#define OFF(f) offsetof(struct conf, f)
#define STR(k, f, d, fl, desc)                                                 \
    {                                                                          \
        k, CT_STRING, OFF(f), 0, d, 0, 0, 0, fl, desc                          \
    }
#define INT(k, f, d, lo, hi, desc)                                             \
    {                                                                          \
        k, CT_INT, OFF(f), 0, NULL, d, lo, hi, 0, desc                         \
    }
#define I64(k, f, d, lo, hi, desc)                                             \
    {                                                                          \
        k, CT_INT64, OFF(f), 0, NULL, d, lo, hi, 0, desc                       \
    }
#define STRV(k, f, n, d, desc)                                                 \
    {                                                                          \
        k, CT_STRV, OFF(f), OFF(n), d, 0, 0, 0, 0, desc                        \
    }
#define USERS(k, f, n, desc)                                                   \
    {                                                                          \
        k, CT_USERS, OFF(f), OFF(n), NULL, 0, 0, 0, 0, desc                    \
    }

static const struct conf_key keys[] = {
    STR("source.path", source.path, NULL, CK_REQUIRED,
        "folder watched for new files"),
    STRV("source.exclude", source.exclude, source.n_exclude,
         "*.part|*.filepart", "base-name globs never sent"),
    INT("source.settle_ms", source.settle_ms, 200, 0, 3600000,
        "quiet time after a close before a file is queued"),
    INT("source.rescan_interval", source.rescan_interval, 3600, 0, 31536000,
        "seconds between full scans of the source (0: never)"),
    STR("target.type", target.type, "sftp", 0, "sink: sftp or local"),
    STR("target.host", target.host, NULL, 0, "SFTP server name or address"),
    INT("target.port", target.port, 22, 1, 65535, "SFTP server port"),
    STR("target.user", target.user, NULL, 0,
        "login name (default: the user running the agent)"),
    STR("target.identity", target.identity, "", 0, "private key file"),
    STR("target.passphrase_file", target.passphrase_file, "", 0,
        "file holding the identity's passphrase"),
    STR("target.password_file", target.password_file, "", 0,
        "file holding the login password"),
    STR("target.known_hosts", target.known_hosts, "/etc/sftprelay/known_hosts",
        0, "known_hosts file the target's host key must be in"),
    STR("target.path", target.path, ".", 0,
        "folder on the target the source tree is replicated under"),
    INT("target.timeout", target.timeout, 60, 1, 86400,
        "seconds without progress before the connection is dropped"),
    INT("target.probe_interval", target.probe_interval, 10, 1, 3600,
        "while the target is down, longest time between probes, seconds"),
    STR("journal.path", journal.path, "/var/lib/sftprelay/journal.db", 0,
        "SQLite journal file"),
    INT("journal.keep_delivered_days", journal.keep_delivered_days, 30, 0,
        36500, "days delivered rows are kept (0: forever)"),
    INT("transfer.workers", transfer.workers, 4, 1, 64,
        "files sent at once, each on its own connection"),
    I64("transfer.chunk_size", transfer.chunk_size, 4194304, 32768, 268435456,
        "bytes read and written per step; resume granularity"),
    INT("transfer.max_attempts", transfer.max_attempts, 0, 0, 1000000,
        "attempts before a file is marked failed (0: never)"),
    INT("transfer.backoff_initial", transfer.backoff_initial, 1, 1, 86400,
        "first retry delay, seconds"),
    INT("transfer.backoff_max", transfer.backoff_max, 300, 1, 86400,
        "longest retry delay, seconds"),
    STRV("transfer.transforms", transfer.transforms, transfer.n_transforms, "",
         "transforms applied before upload, in order"),
    STR("log.level", log.level, "info", 0, "error, warn, info or debug"),
    STR("server.listen", server.listen, NULL, 0,
        "ADDRESS:PORT of the embedded SFTP server (none: no server)"),
    STRV("server.host_keys", server.host_keys, server.n_host_keys,
         "/etc/sftprelay/ssh_host_ed25519_key",
         "host key files (generated if missing)"),
    STR("server.root", server.root, NULL, 0,
        "folder clients see as / (default: source.path)"),
    INT("server.max_sessions", server.max_sessions, 64, 1, 10000,
        "sessions at once"),
    INT("server.idle_timeout", server.idle_timeout, 600, 1, 86400,
        "seconds an idle session is kept"),
    USERS("server.users", server.users, server.n_users,
          "logins: { name; password_hash; authorized_keys; }"),
};

#define N_KEYS (sizeof(keys) / sizeof(keys[0]))

_Static_assert(N_KEYS <= sizeof(((struct conf *)0)->lines) / sizeof(int),
               "struct conf lines[] too small");

static const char *const levels[] = {"error", "warn", "info", "debug", NULL};

static void *field(struct conf *c, size_t off)
{
    return (char *)c + off;
}

static const struct conf_key *find_key(const char *name)
{
    size_t i;

    for (i = 0; i < N_KEYS; i++)
        if (strcmp(keys[i].key, name) == 0)
            return &keys[i];
    return NULL;
}

static int is_section(const char *name)
{
    size_t i, n = strlen(name);

    for (i = 0; i < N_KEYS; i++)
        if (strncmp(keys[i].key, name, n) == 0 && keys[i].key[n] == '.')
            return 1;
    return 0;
}

static const char *type_name(enum conf_type t)
{
    switch (t) {
    case CT_STRING:
        return "a string";
    case CT_INT:
    case CT_INT64:
        return "an integer";
    case CT_STRV:
        return "a list of strings";
    case CT_USERS:
        return "a list of groups ( { name = ...; }, ... )";
    }
    return "?";
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
    if (v) {
        while (cnt > 0)
            free(v[--cnt]);
        free(v);
    }
    free(copy);
    return r;
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

static int set_default(struct conf *c, const struct conf_key *k)
{
    switch (k->type) {
    case CT_STRING:
        if (k->def_str == NULL)
            return 0;
        *(char **)field(c, k->offset) = strdup(k->def_str);
        return *(char **)field(c, k->offset) ? 0 : -ENOMEM;
    case CT_INT:
        *(int *)field(c, k->offset) = (int)k->def_int;
        return 0;
    case CT_INT64:
        *(int64_t *)field(c, k->offset) = k->def_int;
        return 0;
    case CT_STRV:
        return strv_from_default(k->def_str, (char ***)field(c, k->offset),
                                 (size_t *)field(c, k->count_offset));
    case CT_USERS:
        return 0;
    }
    return -EINVAL;
}

static void users_free(struct conf_user *u, size_t n)
{
    size_t i;

    for (i = 0; u && i < n; i++) {
        free(u[i].name);
        free(u[i].password_hash);
        free(u[i].authorized_keys);
    }
    free(u);
}

/* One element of server.users; errors name it as server.users[N].key. */
static int set_user(struct conf *c, const config_setting_t *g, int idx,
                    struct conf_user *u, char *err, size_t errlen)
{
    static const char *const names[] = {"name", "password_hash",
                                        "authorized_keys"};
    char **dst[] = {&u->name, &u->password_hash, &u->authorized_keys};
    int i, j, line = config_setting_source_line(g);

    if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
        snprintf(err, errlen,
                 "%s:%d: server.users[%d]: expected a group "
                 "{ name = ...; }",
                 c->file, line, idx);
        return -EINVAL;
    }
    for (i = 0; i < config_setting_length(g); i++) {
        const config_setting_t *e = config_setting_get_elem(g, i);
        const char *n = config_setting_name(e);

        for (j = 0; j < 3; j++)
            if (strcmp(n, names[j]) == 0)
                break;
        if (j == 3) {
            snprintf(err, errlen, "%s:%d: server.users[%d].%s: unknown key",
                     c->file, config_setting_source_line(e), idx, n);
            return -EINVAL;
        }
        if (config_setting_type(e) != CONFIG_TYPE_STRING) {
            snprintf(err, errlen,
                     "%s:%d: server.users[%d].%s: expected a "
                     "string",
                     c->file, config_setting_source_line(e), idx, n);
            return -EINVAL;
        }
        *dst[j] = strdup(config_setting_get_string(e));
        if (*dst[j] == NULL)
            return -ENOMEM;
    }
    if (u->name == NULL || u->name[0] == '\0') {
        snprintf(err, errlen, "%s:%d: server.users[%d].name: required", c->file,
                 line, idx);
        return -EINVAL;
    }
    if (u->password_hash == NULL && u->authorized_keys == NULL) {
        snprintf(err, errlen,
                 "%s:%d: server.users[%d]: needs password_hash or "
                 "authorized_keys",
                 c->file, line, idx);
        return -EINVAL;
    }
    if (u->password_hash && !server_hash_ok(u->password_hash)) {
        snprintf(err, errlen,
                 "%s:%d: server.users[%d].password_hash: not a yescrypt or "
                 "SHA-512 crypt(3) hash",
                 c->file,
                 config_setting_source_line(
                     config_setting_get_member(g, "password_hash")),
                 idx);
        return -EINVAL;
    }
    return 0;
}

/* Fill one key from its libconfig setting; the type was checked already. */
static int set_value(struct conf *c, const struct conf_key *k,
                     const config_setting_t *s, char *err, size_t errlen)
{
    long long v;
    int i, n;
    char **strv;

    switch (k->type) {
    case CT_STRING:
        free(*(char **)field(c, k->offset));
        *(char **)field(c, k->offset) = strdup(config_setting_get_string(s));
        return *(char **)field(c, k->offset) ? 0 : -ENOMEM;
    case CT_INT:
    case CT_INT64:
        v = config_setting_type(s) == CONFIG_TYPE_INT64
                ? config_setting_get_int64(s)
                : config_setting_get_int(s);
        if (v < k->min || v > k->max) {
            snprintf(err, errlen,
                     "%s:%d: %s: %lld is out of range (%lld to %lld)", c->file,
                     config_setting_source_line(s), k->key, v, k->min, k->max);
            return -EINVAL;
        }
        if (k->type == CT_INT)
            *(int *)field(c, k->offset) = (int)v;
        else
            *(int64_t *)field(c, k->offset) = v;
        return 0;
    case CT_STRV:
        n = config_setting_length(s);
        for (i = 0; i < n; i++) {
            const config_setting_t *e = config_setting_get_elem(s, i);

            if (config_setting_type(e) != CONFIG_TYPE_STRING) {
                snprintf(err, errlen, "%s:%d: %s: element %d is not a string",
                         c->file, config_setting_source_line(e), k->key, i + 1);
                return -EINVAL;
            }
        }
        strv = calloc((size_t)n + 1, sizeof(*strv));
        if (strv == NULL)
            return -ENOMEM;
        for (i = 0; i < n; i++) {
            strv[i] = strdup(config_setting_get_string_elem(s, i));
            if (strv[i] == NULL) {
                strv_free(strv, (size_t)i);
                return -ENOMEM;
            }
        }
        strv_free(*(char ***)field(c, k->offset),
                  *(size_t *)field(c, k->count_offset));
        *(char ***)field(c, k->offset) = strv;
        *(size_t *)field(c, k->count_offset) = (size_t)n;
        return 0;
    case CT_USERS: {
        struct conf_user *u;
        int r;

        n = config_setting_length(s);
        u = calloc((size_t)n + 1, sizeof(*u));
        if (u == NULL)
            return -ENOMEM;
        for (i = 0; i < n; i++) {
            r = set_user(c, config_setting_get_elem(s, i), i + 1, &u[i], err,
                         errlen);
            if (r < 0) {
                users_free(u, (size_t)n);
                return r;
            }
        }
        *(struct conf_user **)field(c, k->offset) = u;
        *(size_t *)field(c, k->count_offset) = (size_t)n;
        return 0;
    }
    }
    return -EINVAL;
}

static int type_ok(const struct conf_key *k, const config_setting_t *s)
{
    int t = config_setting_type(s);

    switch (k->type) {
    case CT_STRING:
        return t == CONFIG_TYPE_STRING;
    case CT_INT:
    case CT_INT64:
        return t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64;
    case CT_STRV:
        return t == CONFIG_TYPE_ARRAY || t == CONFIG_TYPE_LIST;
    case CT_USERS:
        return t == CONFIG_TYPE_LIST;
    }
    return 0;
}

/* Pass one: every setting in the file must be a known key of its type. */
static int check_file(struct conf *c, const config_t *cfg, char *err,
                      size_t errlen)
{
    const config_setting_t *root = config_root_setting(cfg);
    int i, j;

    for (i = 0; i < config_setting_length(root); i++) {
        const config_setting_t *sec = config_setting_get_elem(root, i);
        const char *sname = config_setting_name(sec);

        if (!is_section(sname)) {
            snprintf(err, errlen, "%s:%d: %s: unknown section", c->file,
                     config_setting_source_line(sec), sname);
            return -EINVAL;
        }
        if (config_setting_type(sec) != CONFIG_TYPE_GROUP) {
            snprintf(err, errlen, "%s:%d: %s: expected a group { ... }",
                     c->file, config_setting_source_line(sec), sname);
            return -EINVAL;
        }
        for (j = 0; j < config_setting_length(sec); j++) {
            const config_setting_t *s = config_setting_get_elem(sec, j);
            const struct conf_key *k;
            char name[128];

            snprintf(name, sizeof(name), "%s.%s", sname,
                     config_setting_name(s));
            k = find_key(name);
            if (k == NULL) {
                snprintf(err, errlen, "%s:%d: %s: unknown key", c->file,
                         config_setting_source_line(s), name);
                return -EINVAL;
            }
            if (!type_ok(k, s)) {
                snprintf(err, errlen, "%s:%d: %s: expected %s", c->file,
                         config_setting_source_line(s), name,
                         type_name(k->type));
                return -EINVAL;
            }
        }
    }
    return 0;
}

static int default_user(struct conf *c)
{
    struct passwd *pw;

    if (c->target.user)
        return 0;
    pw = getpwuid(geteuid());
    c->target.user = strdup(pw ? pw->pw_name : "root");
    return c->target.user ? 0 : -ENOMEM;
}

/* "FILE:LINE" where key was set, or "FILE" where it has its default. */
static void where(const struct conf *c, const char *key, char *buf, size_t len)
{
    int line = conf_line(c, key);

    if (line > 0)
        snprintf(buf, len, "%s:%d", c->file, line);
    else
        snprintf(buf, len, "%s", c->file);
}

/* Whether path is dir or below it (textually, after trailing slashes). */
static int inside(const char *path, const char *dir)
{
    size_t n = strlen(dir);

    while (n > 1 && dir[n - 1] == '/')
        n--;
    return strncmp(path, dir, n) == 0 &&
           (path[n] == '\0' || path[n] == '/' || (n == 1 && dir[0] == '/'));
}

/* Checks that span keys or need more than a type and a range. */
static int check_values(struct conf *c, char *err, size_t errlen)
{
    char at[PATH_MAX + 16];
    size_t i;
    int ok = 0;

    for (i = 0; levels[i]; i++)
        if (strcmp(c->log.level, levels[i]) == 0)
            ok = 1;
    if (!ok) {
        snprintf(err, errlen,
                 "%s:%d: log.level: \"%s\" is not error, warn, info or debug",
                 c->file, conf_line(c, "log.level"), c->log.level);
        return -EINVAL;
    }
    if (c->source.path[0] != '/') {
        snprintf(err, errlen,
                 "%s:%d: source.path: \"%s\" is not an absolute path", c->file,
                 conf_line(c, "source.path"), c->source.path);
        return -EINVAL;
    }
    if (c->transfer.backoff_max < c->transfer.backoff_initial) {
        snprintf(err, errlen,
                 "%s:%d: transfer.backoff_max: %d is less than "
                 "transfer.backoff_initial (%d)",
                 c->file, conf_line(c, "transfer.backoff_max"),
                 c->transfer.backoff_max, c->transfer.backoff_initial);
        return -EINVAL;
    }
    if (c->server.listen == NULL) {
        for (i = 0; i < N_KEYS; i++) {
            if (c->lines[i] && strncmp(keys[i].key, "server.", 7) == 0) {
                snprintf(err, errlen,
                         "%s:%d: server.listen: required when the server "
                         "section is present",
                         c->file, c->lines[i]);
                return -EINVAL;
            }
        }
    } else if (c->server.n_users == 0) {
        where(c, "server.listen", at, sizeof(at));
        snprintf(err, errlen, "%s: server.users: at least one user is needed",
                 at);
        return -EINVAL;
    }
    if (c->server.listen && c->server.root == NULL) {
        c->server.root = strdup(c->source.path);
        if (c->server.root == NULL)
            return -ENOMEM;
    }
    if (c->server.root && !inside(c->server.root, c->source.path)) {
        where(c, "server.root", at, sizeof(at));
        snprintf(err, errlen,
                 "%s: server.root: \"%s\" is not source.path or inside it, "
                 "so uploads would not be replicated",
                 at, c->server.root);
        return -EINVAL;
    }
    if (strcmp(c->target.type, "sftp") == 0 &&
        (c->target.host == NULL || c->target.host[0] == '\0')) {
        where(c, "target.type", at, sizeof(at));
        snprintf(err, errlen,
                 "%s: target.host: required when target.type is \"sftp\"", at);
        return -EINVAL;
    }
    return 0;
}

/* Name the section's line where the section exists, else the file alone. */
static void missing_key(const config_t *cfg, const char *file, const char *key,
                        char *err, size_t errlen)
{
    char section[64];
    const config_setting_t *sec;
    size_t n = strcspn(key, ".");

    snprintf(section, sizeof(section), "%.*s", (int)n, key);
    sec = config_lookup(cfg, section);
    if (sec)
        snprintf(err, errlen, "%s:%d: %s: required key is missing", file,
                 config_setting_source_line(sec), key);
    else
        snprintf(err, errlen, "%s: %s: required key is missing", file, key);
}

static int conf_alloc(const char *file, struct conf **out)
{
    struct conf *c;
    size_t i;
    int r;

    *out = NULL;
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    c->file = strdup(file);
    if (c->file == NULL) {
        free(c);
        return -ENOMEM;
    }
    for (i = 0; i < N_KEYS; i++) {
        r = set_default(c, &keys[i]);
        if (r < 0) {
            conf_free(c);
            return r;
        }
    }
    *out = c;
    return 0;
}

int conf_defaults(struct conf **out)
{
    struct conf *c = NULL;
    int r;

    r = conf_alloc("(defaults)", &c);
    if (r < 0)
        return r;
    r = default_user(c);
    if (r < 0) {
        conf_free(c);
        return r;
    }
    *out = c;
    return 0;
}

int conf_load(const char *file, struct conf **out, char *err, size_t errlen)
{
    struct conf *c = NULL;
    config_t cfg;
    size_t i;
    int r;

    *out = NULL;
    err[0] = '\0';
    config_init(&cfg);
    r = conf_alloc(file, &c);
    if (r < 0)
        goto out;
    if (access(file, R_OK) < 0) {
        r = -errno;
        snprintf(err, errlen, "%s: %s", file, strerror(errno));
        goto out;
    }
    if (config_read_file(&cfg, file) != CONFIG_TRUE) {
        r = config_error_type(&cfg) == CONFIG_ERR_FILE_IO ? -EIO : -EINVAL;
        snprintf(err, errlen, "%s:%d: %s",
                 config_error_file(&cfg) ? config_error_file(&cfg) : file,
                 config_error_line(&cfg), config_error_text(&cfg));
        goto out;
    }
    r = check_file(c, &cfg, err, errlen);
    if (r < 0)
        goto out;
    for (i = 0; i < N_KEYS; i++) {
        const config_setting_t *s = config_lookup(&cfg, keys[i].key);

        if (s == NULL) {
            if (keys[i].flags & CK_REQUIRED) {
                missing_key(&cfg, file, keys[i].key, err, errlen);
                r = -EINVAL;
                goto out;
            }
            continue;
        }
        c->lines[i] = config_setting_source_line(s);
        r = set_value(c, &keys[i], s, err, errlen);
        if (r < 0)
            goto out;
    }
    r = default_user(c);
    if (r < 0)
        goto out;
    r = check_values(c, err, errlen);
    if (r < 0)
        goto out;
    *out = c;
    c = NULL; /* transferred */
out:
    config_destroy(&cfg);
    conf_free(c);
    return r;
}

void conf_free(struct conf *c)
{
    size_t i;

    if (c == NULL)
        return;
    for (i = 0; i < N_KEYS; i++) {
        if (keys[i].type == CT_STRING)
            free(*(char **)field(c, keys[i].offset));
        else if (keys[i].type == CT_STRV)
            strv_free(*(char ***)field(c, keys[i].offset),
                      *(size_t *)field(c, keys[i].count_offset));
        else if (keys[i].type == CT_USERS)
            users_free(*(struct conf_user **)field(c, keys[i].offset),
                       *(size_t *)field(c, keys[i].count_offset));
    }
    free(c->file);
    free(c);
}

int conf_line(const struct conf *c, const char *key)
{
    size_t i;

    for (i = 0; i < N_KEYS; i++)
        if (strcmp(keys[i].key, key) == 0)
            return c->lines[i];
    return 0;
}

int conf_check_target_keys(const struct conf *c, const char *const *accepted,
                           char *err, size_t errlen)
{
    static const char prefix[] = "target.";
    size_t i, j;

    for (i = 0; i < N_KEYS; i++) {
        const char *name = keys[i].key + strlen(prefix);
        int ok = 0;

        if (c->lines[i] == 0 ||
            strncmp(keys[i].key, prefix, strlen(prefix)) != 0 ||
            strcmp(name, "type") == 0 || strcmp(name, "probe_interval") == 0)
            continue;
        for (j = 0; accepted[j]; j++)
            if (strcmp(accepted[j], name) == 0)
                ok = 1;
        if (!ok) {
            snprintf(err, errlen, "%s:%d: %s: not used by target.type \"%s\"",
                     c->file, c->lines[i], keys[i].key, c->target.type);
            return -EINVAL;
        }
    }
    return 0;
}

void conf_print_keys(void)
{
    size_t i;

    for (i = 0; i < N_KEYS; i++) {
        const struct conf_key *k = &keys[i];

        switch (k->type) {
        case CT_STRING:
            printf("%-28s %-12s %s\n", k->key,
                   k->flags & CK_REQUIRED ? "(required)"
                   : k->def_str           ? k->def_str
                                          : "(none)",
                   k->desc);
            break;
        case CT_INT:
        case CT_INT64:
            printf("%-28s %-12lld %s\n", k->key, k->def_int, k->desc);
            break;
        case CT_STRV:
            printf("%-28s [%s] %s\n", k->key, k->def_str, k->desc);
            break;
        case CT_USERS:
            printf("%-28s ()           %s\n", k->key, k->desc);
            break;
        }
    }
}
