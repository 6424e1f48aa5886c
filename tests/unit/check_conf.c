/*
 * sftprelay.conf(5): values, defaults, and the text of every error.
 */
#include "config.h"

#include "testutil.h"
#include "sftprelay/conf.h"
#include "sftprelay/server.h"
#include "sftprelay/sink.h"
#include "sftprelay/source.h"
#include "sftprelay/transform.h"

static char *dir;

/* The tables beyond the core and the plugins, as sftprelayd has them. */
static const struct conf_table *const tables[] = {&server_conf_table, NULL};

static void setup(void)
{
    dir = tu_tmpdir();
}

static void teardown(void)
{
    tu_rmtree(dir);
    free(dir);
}

/* Load text as a config file; returns conf_load()'s result. */
static int load(const char *text, struct conf **c, char *err)
{
    char *p = tu_write_str(dir, "sftprelay.conf", text);
    int r = conf_load(p, tables, c, err, CONF_ERR_MAX);

    free(p);
    return r;
}

/* The error text with the scratch folder replaced by "DIR". */
static const char *rel_err(char *err)
{
    static char buf[CONF_ERR_MAX];
    size_t n = strlen(dir);

    if (strncmp(err, dir, n) == 0)
        snprintf(buf, sizeof(buf), "DIR%s", err + n);
    else
        snprintf(buf, sizeof(buf), "%s", err);
    return buf;
}

START_TEST(test_full_example)
{
    struct conf *c = NULL;
    char err[CONF_ERR_MAX];

    ck_assert_int_eq(
        load("source   = { path = \"/srv/sftp/upload\";"
             " exclude = [ \"*.part\", \"*.filepart\", \"*.tmp\" ];\n"
             "             settle_ms = 250; rescan_interval = 600; };\n"
             "target   = { type = \"sftp\"; host = \"target.example\";"
             " port = 2222;\n"
             "             user = \"relay\"; identity = \"/etc/k\";\n"
             "             passphrase_file = \"\"; password_file = \"\";\n"
             "             known_hosts = \"/etc/kh\"; path = \"/upload\"; };\n"
             "journal  = { path = \"/var/lib/j.db\"; keep_delivered_days = 7; "
             "};\n"
             "transfer = { workers = 2; chunk_size = 8589934592L; "
             "max_attempts = 5;\n"
             "             backoff_initial = 2; backoff_max = 60; };\n"
             "log      = { level = \"debug\"; };\n",
             &c, err),
        -EINVAL);
    /* 8 GiB chunks are out of range: the error names key and line. */
    ck_assert_str_eq(rel_err(err), "DIR/sftprelay.conf:8: transfer.chunk_size: "
                                   "8589934592 is out of range (32768 to "
                                   "268435456)");

    ck_assert_int_eq(
        load("source   = { path = \"/srv/sftp/upload\";"
             " exclude = [ \"*.part\", \"*.filepart\", \"*.tmp\" ];\n"
             "             settle_ms = 250; rescan_interval = 600; };\n"
             "target   = { type = \"sftp\"; host = \"target.example\";"
             " port = 2222;\n"
             "             user = \"relay\"; identity = \"/etc/k\";\n"
             "             known_hosts = \"/etc/kh\"; path = \"/upload\"; };\n"
             "journal  = { path = \"/var/lib/j.db\"; keep_delivered_days = 7; "
             "};\n"
             "transfer = { workers = 2; chunk_size = 1048576; max_attempts = "
             "5;\n"
             "             backoff_initial = 2; backoff_max = 60; };\n"
             "log      = { level = \"debug\"; };\n",
             &c, err),
        0);
    ck_assert_str_eq(c->source.path, "/srv/sftp/upload");
    ck_assert_uint_eq(c->source.n_exclude, 3);
    ck_assert_str_eq(c->source.exclude[2], "*.tmp");
    ck_assert_int_eq(c->source.settle_ms, 250);
    ck_assert_int_eq(c->source.rescan_interval, 600);
    ck_assert_str_eq(conf_str(c, "target.host"), "target.example");
    ck_assert_int_eq(conf_int(c, "target.port"), 2222);
    ck_assert_str_eq(conf_str(c, "target.user"), "relay");
    ck_assert_str_eq(conf_str(c, "target.known_hosts"), "/etc/kh");
    ck_assert_str_eq(conf_str(c, "target.path"), "/upload");
    ck_assert_str_eq(c->journal.path, "/var/lib/j.db");
    ck_assert_int_eq(c->journal.keep_delivered_days, 7);
    ck_assert_int_eq(c->transfer.workers, 2);
    ck_assert_int_eq(c->transfer.chunk_size, 1048576);
    ck_assert_int_eq(c->transfer.max_attempts, 5);
    ck_assert_int_eq(c->transfer.backoff_max, 60);
    ck_assert_str_eq(c->log.level, "debug");
    ck_assert_int_eq(conf_line(c, "target.port"), 3);
    ck_assert_int_eq(conf_line(c, "target.password_file"), 0);
    conf_free(c);
}
END_TEST

START_TEST(test_defaults)
{
    struct conf *c = NULL;
    char err[CONF_ERR_MAX];

    ck_assert_int_eq(load("source = { path = \"/up\"; };\n"
                          "target = { host = \"127.0.0.1\"; };\n",
                          &c, err),
                     0);
    ck_assert_str_eq(c->target.type, "sftp");
    ck_assert_int_eq(c->target.probe_interval, 10);
    ck_assert_str_eq(c->source.type, "local");
    ck_assert_ptr_nonnull(c->target.ops);
    ck_assert_ptr_nonnull(c->target.settings);
    ck_assert_ptr_nonnull(c->source.ops);
    ck_assert_int_eq(conf_int(c, "target.port"), 22);
    ck_assert_ptr_nonnull(conf_str(c, "target.user"));
    ck_assert_str_eq(conf_str(c, "target.path"), ".");
    ck_assert_uint_eq(c->source.n_exclude, 2);
    ck_assert_str_eq(c->source.exclude[0], "*.part");
    ck_assert_str_eq(c->source.exclude[1], "*.filepart");
    ck_assert_int_eq(c->source.settle_ms, 200);
    ck_assert_int_eq(c->source.rescan_interval, 3600);
    ck_assert_int_eq(c->source.max_files, 10000000);
    ck_assert_str_eq(c->journal.path, "/var/lib/sftprelay/journal.db");
    ck_assert_int_eq(c->journal.keep_delivered_days, 30);
    ck_assert_int_eq(c->transfer.workers, 4);
    ck_assert_int_eq(c->transfer.chunk_size, 262144);
    ck_assert_int_eq(c->transfer.max_attempts, 0);
    ck_assert_int_eq(c->transfer.backoff_initial, 1);
    ck_assert_int_eq(c->transfer.backoff_max, 300);
    ck_assert_uint_eq(c->transfer.n_transforms, 0);
    ck_assert_str_eq(c->log.level, "info");
    conf_free(c);
}
END_TEST

/* Every transform, as errors list them: "@" stands for transform_names(),
 * so that a new transform changes no case here. */
#define KNOWN "@"

struct bad_case {
    const char *text;
    const char *err;
};

static const struct bad_case bad_cases[] = {
    {"source = { path = \"/up\"; };\ntarget = { host = \"h\";\n hots = \"x\"; "
     "};\n",
     "DIR/sftprelay.conf:3: target.hots: unknown key"},
    {"source = { path = \"/up\";\n settle_ms = \"fast\"; };\n"
     "target = { host = \"h\"; };\n",
     "DIR/sftprelay.conf:2: source.settle_ms: expected an integer"},
    {"source = { path = \"/up\"; exclude = \"*.part\"; };\n"
     "target = { host = \"h\"; };\n",
     "DIR/sftprelay.conf:1: source.exclude: expected a list of strings"},
    {"source = { path = \"/up\"; exclude = ( \"a\", 3 ); };\n"
     "target = { host = \"h\"; };\n",
     "DIR/sftprelay.conf:1: source.exclude: element 2 is not a string"},
    {"\nsource = { settle_ms = 10; };\ntarget = { host = \"h\"; };\n",
     "DIR/sftprelay.conf:2: source.path: required key is missing"},
    {"target = { host = \"h\"; };\n",
     "DIR/sftprelay.conf: source.path: required key is missing"},
    {"source = { path = \"/up\"; };\ntarget = { type = \"sftp\"; };\n",
     "DIR/sftprelay.conf:2: target.host: required when target.type is "
     "\"sftp\""},
    {"source = { path = \"/up\"; };\ntarget = { host = \"h\";\n"
     " port = 70000; };\n",
     "DIR/sftprelay.conf:3: target.port: 70000 is out of range (1 to 65535)"},
    {"source = { path = \"/up\"; };\ntarget = { host = \"h\"; };\n"
     "log = { level = \"loud\"; };\n",
     "DIR/sftprelay.conf:3: log.level: \"loud\" is not error, warn, info or "
     "debug"},
    {"source = { path = \"up\"; };\ntarget = { host = \"h\"; };\n",
     "DIR/sftprelay.conf:1: source.path: \"up\" is not an absolute path"},
    {"source = { path = \"/up\"; };\ntarget = { host = \"h\"; };\n"
     "transfer = { backoff_initial = 10;\n backoff_max = 5; };\n",
     "DIR/sftprelay.conf:4: transfer.backoff_max: 5 is less than "
     "transfer.backoff_initial (10)"},
    {"source = { path = \"/up\"; };\nservr = { listen = \"x\"; };\n",
     "DIR/sftprelay.conf:2: servr: unknown section"},
    {"source = { path = \"/up\"; };\ntarget = { host = \"h\"; };\n"
     "server = {\n max_sessions = 3; };\n",
     "DIR/sftprelay.conf:4: server.listen: required when the server section "
     "is present"},
    {"source = { path = \"/up\"; };\ntarget = { host = \"h\"; };\n"
     "server = { listen = \"0.0.0.0:2222\"; };\n",
     "DIR/sftprelay.conf:3: server.users: at least one user is needed"},
    {"source = { path = \"/up\"; };\ntarget = { host = \"h\"; };\n"
     "server = { listen = \"0.0.0.0:2222\";\n users = ( { name = \"p\";\n"
     "  password_hash = \"hunter2\"; } ); };\n",
     "DIR/sftprelay.conf:5: server.users[1].password_hash: not a yescrypt or "
     "SHA-512 crypt(3) hash"},
    {"source = { path = \"/up\"; };\ntarget = { host = \"h\"; };\n"
     "server = { listen = \"0.0.0.0:2222\";\n users = ( { name = \"p\";\n"
     "  pasword = \"x\"; } ); };\n",
     "DIR/sftprelay.conf:5: server.users[1].pasword: unknown key"},
    {"source = { path = \"/up\"; };\ntarget = { host = \"h\"; };\n"
     "server = { listen = \"0.0.0.0:2222\";\n users = ( { name = \"p\";\n"
     "  authorized_keys = \"/k\"; } );\n root = \"/elsewhere\"; };\n",
     "DIR/sftprelay.conf:6: server.root: \"/elsewhere\" is not source.path or "
     "inside it, so uploads would not be replicated"},
    {"source = { path = \"/up\"; };\ntarget = { host = \"h\"; };\n"
     "server = { listen = \"0.0.0.0:2222\";\n users = ( { name = \"p\"; } ); "
     "};\n",
     "DIR/sftprelay.conf:4: server.users[1]: needs password_hash or "
     "authorized_keys"},
    {"source = \"/up\";\n",
     "DIR/sftprelay.conf:1: source: expected a group { ... }"},
    {"source = { type = \"s3\"; bucket = \"b\";\n path = \"/\"; };\n"
     "target = { host = \"h\"; };\n",
     "DIR/sftprelay.conf:2: source.path: not used by source.type \"s3\" (its "
     "own keys say where files are)"},
    {"source = { type = \"s3\"; bucket = \"b\"; };\n"
     "target = { host = \"h\"; };\n"
     "server = {\n listen = \"127.0.0.1:2222\";\n users = ( { name = \"p\";\n"
     "  authorized_keys = \"/k\"; } ); };\n",
     "DIR/sftprelay.conf:4: server.listen: uploads land in a local "
     "source.path, and source.type \"s3\" is not a local folder"},
    {"source = { path = \"/up\"; };\n\ntarget = { host = /h; };\n",
     "DIR/sftprelay.conf:3: syntax error"},
    {"source = { path = \"/up\"; };\n",
     "DIR/sftprelay.conf: target.host: required when target.type is "
     "\"sftp\""},
    {"source = { path = \"/up\"; };\ntarget = { host = \"h\";\n"
     " probe_interval = 0; };\n",
     "DIR/sftprelay.conf:3: target.probe_interval: 0 is out of range (1 to "
     "3600)"},
    {"source = { path = \"/up\"; };\ntarget = {\n type = \"ftp\"; };\n",
     "DIR/sftprelay.conf:3: target.type: unknown sink \"ftp\" (known: sftp, "
     "local, s3)"},
    {"source = { path = \"/up\"; };\ntarget = {\n type = \"s3\"; };\n",
     "DIR/sftprelay.conf:2: target.bucket: required key is missing"},
    {"source = { path = \"/up\"; };\ntarget = { type = \"s3\";\n"
     " bucket = \"b\"; part_size = 1048576; };\n",
     "DIR/sftprelay.conf:3: target.part_size: 1048576 is out of range "
     "(5242880 to 5368709120)"},
    {"source = { path = \"/up\"; };\ntarget = { type = \"s3\"; bucket = \"bkt\";\n"
     " endpoint = \"https://10.0.0.1/some/path\"; path_style = true; };\n",
     "DIR/sftprelay.conf:3: target.endpoint: \"https://10.0.0.1/some/path\": "
     "a path after the host is not supported"},
    {"source = { path = \"/up\"; };\ntarget = { type = \"s3\"; bucket = \"bkt\";\n"
     " endpoint = \"http://127.0.0.1:7480\"; };\n",
     "DIR/sftprelay.conf:3: target.endpoint: \"http://127.0.0.1:7480\": an "
     "address cannot carry the bucket's name; set path_style = true"},
    {"source = { path = \"/up\"; };\ntarget = { type = \"s3\";\n"
     " bucket = \"b/x\"; };\n",
     "DIR/sftprelay.conf:3: target.bucket: \"b/x\" is not a bucket name (3 to "
     "255 letters, digits, '.', '-' and '_')"},
    {"source = { path = \"/up\"; };\ntarget = { type = \"s3\";\n"
     " bucket = \"ab\"; };\n",
     "DIR/sftprelay.conf:3: target.bucket: \"ab\" is not a bucket name (3 to "
     "255 letters, digits, '.', '-' and '_')"},
    {"source = { path = \"/up\"; };\ntarget = { type = \"s3\";\n"
     " bucket = \"Drop_Box\"; };\n",
     "DIR/sftprelay.conf:3: target.bucket: \"Drop_Box\": capitals and '_' "
     "cannot be in a host name; set path_style = true"},
    {"source = { path = \"/up\"; };\ntarget = { type = \"s3\"; bucket = \"bkt\";\n"
     " secret_access_key_file = \"/etc/sftprelay/s3.secret\"; };\n",
     "DIR/sftprelay.conf:3: target.secret_access_key_file: set without "
     "target.access_key_id, whose secret it is"},
    {"source = { type = \"s3\"; bucket = \"bkt\";\n"
     " endpoint = \"ftp://s3.example\"; };\ntarget = { host = \"h\"; };\n",
     "DIR/sftprelay.conf:2: source.endpoint: \"ftp://s3.example\" is not an "
     "http:// or https:// URL"},
    {"source = { type = \"s3\"; bucket = \"bkt\";\n"
     " access_key_id = \"AKIA\"; };\ntarget = { host = \"h\"; };\n",
     "DIR/sftprelay.conf:2: source.access_key_id: set without "
     "source.secret_access_key_file, which holds its secret"},
    {"source = { path = \"/up\";\n type = \"gcs\"; };\n",
     "DIR/sftprelay.conf:2: source.type: unknown source \"gcs\" (known: "
     "local, sftp, s3)"},
    {"source = {\n type = \"s3\"; };\n",
     "DIR/sftprelay.conf:1: source.bucket: required key is missing"},
    {"source = { path = \"/up\"; };\ntarget = { host = \"h\"; };\n"
     "transfer = { transforms = [\n \"lz4\" ]; };\n",
     "DIR/sftprelay.conf:4: transfer.transforms: unknown transform \"lz4\" "
     "(known: " KNOWN ")"},
    {"source = { path = \"/up\"; };\ntarget = { type = \"local\";\n"
     " path = \"mnt\"; };\n",
     "DIR/sftprelay.conf:3: target.path: \"mnt\" is not an absolute path"},
    {"source = { path = \"/up\"; };\ntarget = { type = \"local\"; };\n",
     "DIR/sftprelay.conf:2: target.path: required key is missing"},
    {"source = { path = \"/up\"; };\ntarget = { host = \"h\";\n"
     " type = 3; };\n",
     "DIR/sftprelay.conf:3: target.type: expected a string"},
    {"source = { path = \"/up\"; };\ntarget = { host = \"h\"; };\n"
     "identity = { };\n",
     "DIR/sftprelay.conf:3: identity: a transform's keys go in its group: "
     "transforms = ( { type = \"identity\"; ... } )"},
    /* The list of transforms: each group checked against its type. */
    {"source = { path = \"/up\"; };\ntarget = { host = \"h\"; };\n"
     "transforms = ( { type = \"identity\"; },\n { type = \"lz4\"; } );\n",
     "DIR/sftprelay.conf:4: transforms[2].type: unknown transform \"lz4\" "
     "(known: " KNOWN ")"},
    {"source = { path = \"/up\"; };\ntarget = { host = \"h\"; };\n"
     "transforms = ( { type = \"identity\";\n level = 9; } );\n",
     "DIR/sftprelay.conf:4: transforms[1].level: unknown key"},
    {"source = { path = \"/up\"; };\ntarget = { host = \"h\"; };\n"
     "transforms = (\n { suffix = \".x\"; } );\n",
     "DIR/sftprelay.conf:4: transforms[1].type: required key is missing"},
    {"source = { path = \"/up\"; };\ntarget = { host = \"h\"; };\n"
     "transforms = (\n { type = 1; } );\n",
     "DIR/sftprelay.conf:4: transforms[1].type: expected a string"},
    {"source = { path = \"/up\"; };\ntarget = { host = \"h\"; };\n"
     "transforms = ( { type = \"identity\";\n suffix = [ \".x\" ]; } );\n",
     "DIR/sftprelay.conf:4: transforms[1].suffix: expected a string"},
    {"source = { path = \"/up\"; };\ntarget = { host = \"h\"; };\n"
     "transforms = ( { type = \"identity\"; },\n"
     " { type = \"gzip\";\n level = 12; } );\n",
     "DIR/sftprelay.conf:5: transforms[2].level: 12 is out of range (1 to 9)"},
    {"source = { path = \"/up\"; };\ntarget = { host = \"h\"; };\n"
     "transforms = ( { type = \"gzip\";\n level = \"fast\"; } );\n",
     "DIR/sftprelay.conf:4: transforms[1].level: expected an integer"},
    {"source = { path = \"/up\"; };\ntarget = { host = \"h\"; };\n"
     "gzip = {\n level = 9; };\n",
     "DIR/sftprelay.conf:3: gzip: a transform's keys go in its group: "
     "transforms = ( { type = \"gzip\"; ... } )"},
    {"source = { path = \"/up\"; };\ntarget = { host = \"h\"; };\n"
     "transforms = ( { type = \"gzip\"; },\n { type = \"exec\"; } );\n",
     "DIR/sftprelay.conf:4: transforms[2].command: required"},
    {"source = { path = \"/up\"; };\ntarget = { host = \"h\"; };\n"
     "transforms = ( { type = \"exec\";\n command = [ ]; } );\n",
     "DIR/sftprelay.conf:4: transforms[1].command: needs a program: [ \"gpg\", "
     "\"--batch\", ... ]"},
    {"source = { path = \"/up\"; };\ntarget = { host = \"h\"; };\n"
     "transforms = ( { type = \"exec\"; command = [ \"gpg\" ];\n"
     " env = [ \"GNUPGHOME\" ]; } );\n",
     "DIR/sftprelay.conf:4: transforms[1].env: \"GNUPGHOME\" is not "
     "NAME=VALUE"},
    {"source = { path = \"/up\"; };\ntarget = { host = \"h\"; };\n"
     "transforms = ( { type = \"exec\"; command = [ \"gpg\" ];\n"
     " timeout = -1; } );\n",
     "DIR/sftprelay.conf:4: transforms[1].timeout: -1 is out of range (0 to "
     "604800)"},
    {"source = { path = \"/up\"; };\ntarget = { host = \"h\"; };\n"
     "transfer = { transforms = [ \"gzip\",\n \"exec\" ]; };\n",
     "DIR/sftprelay.conf:4: transfer.transforms: exec needs command: write "
     "transforms = ( { type = \"exec\"; command = ...; } ) instead"},
    {"source = { path = \"/up\"; };\ntarget = { host = \"h\"; };\n"
     "transforms = ( \"identity\" );\n",
     "DIR/sftprelay.conf:3: transforms[1]: expected a group { type = ...; }"},
    {"source = { path = \"/up\"; };\ntarget = { host = \"h\"; };\n"
     "transforms = { type = \"identity\"; };\n",
     "DIR/sftprelay.conf:3: transforms: expected a list of groups ( { type = "
     "...; }, ... )"},
    {"source = { path = \"/up\"; };\ntarget = { host = \"h\"; };\n"
     "transfer = { transforms = [ \"identity\" ]; };\n"
     "transforms = ( { type = \"identity\"; } );\n",
     "DIR/sftprelay.conf:4: transforms: transfer.transforms is set too (line "
     "3); use one of them"},
};

START_TEST(test_bad)
{
    const struct bad_case *bc = &bad_cases[_i];
    const char *at = strchr(bc->err, '@');
    struct conf *c = NULL;
    char err[CONF_ERR_MAX], want[CONF_ERR_MAX];

    ck_assert_int_eq(load(bc->text, &c, err), -EINVAL);
    ck_assert_ptr_null(c);
    if (at)
        snprintf(want, sizeof(want), "%.*s%s%s", (int)(at - bc->err), bc->err,
                 transform_names(), at + 1);
    else
        snprintf(want, sizeof(want), "%s", bc->err);
    ck_assert_str_eq(rel_err(err), want);
}
END_TEST

START_TEST(test_transforms)
{
    struct conf *c = NULL;
    char err[CONF_ERR_MAX];

    ck_assert_int_eq(load("source = { path = \"/up\"; };\n"
                          "target = { host = \"h\"; };\n"
                          "transforms = ( { type = \"identity\"; },\n"
                          "  { type = \"identity\"; suffix = \".x\"; } );\n",
                          &c, err),
                     0);
    ck_assert_uint_eq(c->transforms.n, 2);
    ck_assert_ptr_eq(c->transforms.steps[0].ops, transform_find("identity"));
    ck_assert_str_eq(c->transforms.steps[0].type, "identity");
    ck_assert_ptr_null(c->transforms.steps[0].suffix);
    ck_assert_int_eq(c->transforms.steps[0].line, 3);
    ck_assert_str_eq(c->transforms.steps[1].suffix, ".x");
    ck_assert_int_eq(c->transforms.steps[1].line, 4);
    conf_free(c);

    /* The shorthand: each name with its defaults. */
    ck_assert_int_eq(load("source = { path = \"/up\"; };\n"
                          "target = { host = \"h\"; };\n"
                          "transfer = { transforms = [ \"identity\" ]; };\n",
                          &c, err),
                     0);
    ck_assert_uint_eq(c->transforms.n, 1);
    ck_assert_ptr_eq(c->transforms.steps[0].ops, transform_find("identity"));
    ck_assert_int_eq(c->transforms.steps[0].line, 3);
    conf_free(c);

    /* A type's own keys land in its settings, one struct per group. */
    ck_assert_int_eq(load("source = { path = \"/up\"; };\n"
                          "target = { host = \"h\"; };\n"
                          "transforms = ( { type = \"gzip\"; level = 1; },\n"
                          "  { type = \"gzip\"; suffix = \"\"; } );\n",
                          &c, err),
                     0);
    ck_assert_uint_eq(c->transforms.n, 2);
    ck_assert_ptr_eq(c->transforms.steps[0].ops, transform_find("gzip"));
    ck_assert_int_eq(*(const int *)c->transforms.steps[0].settings, 1);
    ck_assert_int_eq(*(const int *)c->transforms.steps[1].settings, 6);
    ck_assert_str_eq(c->transforms.steps[1].suffix, "");
    conf_free(c);

    /* The example of sftprelay.conf(5). */
    ck_assert_int_eq(
        load("source = { path = \"/up\"; };\n"
             "target = { host = \"h\"; };\n"
             "transforms = ( { type = \"gzip\"; level = 6; },\n"
             "  { type = \"exec\";\n"
             "    command = [ \"gpg\", \"--batch\", \"--encrypt\", \"-r\",\n"
             "                \"ops@example.com\" ];\n"
             "    env = [ \"GNUPGHOME=/etc/sftprelay/gnupg\" ];\n"
             "    suffix = \".gpg\"; timeout = 600; } );\n",
             &c, err),
        0);
    ck_assert_uint_eq(c->transforms.n, 2);
    ck_assert_ptr_eq(c->transforms.steps[1].ops, transform_find("exec"));
    ck_assert_str_eq(c->transforms.steps[1].type, "exec");
    ck_assert_str_eq(c->transforms.steps[1].suffix, ".gpg");
    ck_assert_int_eq(c->transforms.steps[1].line, 4);
    conf_free(c);

    /* None: an empty chain. */
    ck_assert_int_eq(load("source = { path = \"/up\"; };\n"
                          "target = { host = \"h\"; };\n",
                          &c, err),
                     0);
    ck_assert_uint_eq(c->transforms.n, 0);
    conf_free(c);
}
END_TEST

START_TEST(test_server_section)
{
    const struct server_conf *sc;
    struct conf *c = NULL;
    char err[CONF_ERR_MAX];

    ck_assert_int_eq(
        load("source = { path = \"/srv/up\"; };\n"
             "target = { host = \"h\"; };\n"
             "server = { listen = \"0.0.0.0:2222\";\n"
             "  host_keys = [ \"/etc/k1\" ];\n"
             "  users = ( { name = \"partner\";\n"
             "    password_hash = \"$y$j9T$abc$def\";\n"
             "    authorized_keys = \"/etc/p.keys\"; },\n"
             "    { name = \"other\"; authorized_keys = \"/etc/o\"; } ); };\n",
             &c, err),
        0);
    sc = conf_settings(c, &server_conf_table);
    ck_assert_ptr_nonnull(sc);
    ck_assert_str_eq(sc->listen, "0.0.0.0:2222");
    ck_assert_uint_eq(sc->n_host_keys, 1);
    ck_assert_str_eq(sc->root, "/srv/up"); /* source.path */
    ck_assert_int_eq(sc->max_sessions, 64);
    ck_assert_int_eq(sc->idle_timeout, 600);
    ck_assert_uint_eq(sc->n_users, 2);
    ck_assert_str_eq(sc->users[0].name, "partner");
    ck_assert_str_eq(sc->users[0].password_hash, "$y$j9T$abc$def");
    ck_assert_str_eq(sc->users[1].authorized_keys, "/etc/o");
    ck_assert_ptr_null(sc->users[1].password_hash);
    conf_free(c);

    ck_assert_int_eq(load("source = { path = \"/up\"; };\n"
                          "target = { host = \"h\"; };\n",
                          &c, err),
                     0);
    sc = conf_settings(c, &server_conf_table);
    ck_assert_ptr_null(sc->listen); /* no section, no server */
    conf_free(c);
}
END_TEST

START_TEST(test_missing_file)
{
    struct conf *c = NULL;
    char err[CONF_ERR_MAX], *p = NULL;

    ck_assert_int_ge(asprintf(&p, "%s/nope.conf", dir), 0);
    ck_assert_int_eq(conf_load(p, tables, &c, err, sizeof(err)), -ENOENT);
    ck_assert_str_eq(rel_err(err), "DIR/nope.conf: No such file or directory");
    free(p);
}
END_TEST

/* S3 keys that pass the check: the secret file may not exist yet (it is
 * read at connect); an address with path_style; capitals with it. */
START_TEST(test_s3_keys)
{
    struct conf *c = NULL;
    char err[CONF_ERR_MAX];

    ck_assert_msg(
        load("source = { path = \"/up\"; };\n"
             "target = { type = \"s3\"; bucket = \"partner-drop\";\n"
             "  region = \"eu-west-1\"; access_key_id = \"AKIA\";\n"
             "  secret_access_key_file = \"/nonexistent/s3.secret\"; };\n",
             &c, err) == 0,
        "%s", err);
    conf_free(c);
    ck_assert_msg(
        load("source = { type = \"s3\";\n"
             "  endpoint = \"http://127.0.0.1:7480/\"; path_style = true;\n"
             "  bucket = \"Legacy_Bucket\"; };\n"
             "target = { host = \"h\"; };\n",
             &c, err) == 0,
        "%s", err);
    conf_free(c);
}
END_TEST

START_TEST(test_target_keys_per_sink)
{
    struct conf *c = NULL;
    char err[CONF_ERR_MAX];

    /* A key of another sink is refused by conf_load() itself. */
    ck_assert_int_eq(load("source = { path = \"/up\"; };\n"
                          "target = { type = \"local\"; path = \"/mnt\";\n"
                          "  host = \"h\"; };\n",
                          &c, err),
                     -EINVAL);
    ck_assert_ptr_null(c);
    ck_assert_str_eq(rel_err(err), "DIR/sftprelay.conf:3: target.host: not "
                                   "used by target.type \"local\"");

    ck_assert_int_eq(load("source = { path = \"/up\"; };\n"
                          "target = { type = \"local\"; path = \"/mnt\"; };\n",
                          &c, err),
                     0);
    ck_assert_str_eq(c->target.type, "local");
    ck_assert_str_eq(conf_str(c, "target.path"), "/mnt");
    ck_assert_ptr_null(conf_str(c, "target.host"));
    ck_assert_int_eq(conf_line(c, "target.path"), 2);
    conf_free(c);
}
END_TEST

START_TEST(test_generic_keys)
{
    struct conf *c = NULL;
    char err[CONF_ERR_MAX];

    ck_assert_int_eq(load("source = { path = \"/up\"; type = \"local\"; };\n"
                          "target = { host = \"h\";\n"
                          "  probe_interval = 30; };\n",
                          &c, err),
                     0);
    ck_assert_int_eq(c->target.probe_interval, 30);
    ck_assert_int_eq(conf_int(c, "target.probe_interval"), 30);
    ck_assert_int_eq(conf_line(c, "target.probe_interval"), 3);
    ck_assert_str_eq(c->source.type, "local");
    ck_assert_str_eq(c->source.ops->name, "local");
    ck_assert_str_eq(c->target.ops->name, "sftp");
    conf_free(c);
}
END_TEST

/* The SFTP sink's transfer keys as read: the defaults, then set. */
struct sftp_keys_case {
    const char *text;
    const char *transport, *ciphers, *verify;
    int keepalive, fsync, preserve_mtime;
    long long bandwidth_limit;
};

static const struct sftp_keys_case sftp_keys_cases[] = {
    {"source = { path = \"/up\"; };\ntarget = { host = \"h\"; };\n", "libssh",
     "", "size", 30, 1, 1, 0},
    {"source = { path = \"/up\"; };\n"
     "target = { host = \"h\"; transport = \"libssh2\";\n"
     "  ciphers = \"^aes128-gcm@openssh.com\"; keepalive = 0;\n"
     "  fsync = false; preserve_mtime = false;\n"
     "  verify = \"sha256\"; };\n"
     "transfer = { bandwidth_limit = 4194304; };\n",
     "libssh2", "^aes128-gcm@openssh.com", "sha256", 0, 0, 0, 4194304},
    {"source = { path = \"/up\"; };\n"
     "target = { host = \"h\"; verify = \"none\"; };\n",
     "libssh", "", "none", 30, 1, 1, 0},
};

START_TEST(test_sftp_transfer_keys)
{
    const struct sftp_keys_case *k = &sftp_keys_cases[_i];
    struct conf *c = NULL;
    char err[CONF_ERR_MAX];

    ck_assert_int_eq(load(k->text, &c, err), 0);
    ck_assert_str_eq(conf_str(c, "target.transport"), k->transport);
    ck_assert_str_eq(conf_str(c, "target.ciphers"), k->ciphers);
    ck_assert_str_eq(conf_str(c, "target.verify"), k->verify);
    ck_assert_int_eq(conf_int(c, "target.keepalive"), k->keepalive);
    ck_assert_int_eq(conf_int(c, "target.fsync"), k->fsync);
    ck_assert_int_eq(conf_int(c, "target.preserve_mtime"), k->preserve_mtime);
    ck_assert_int_eq(c->transfer.bandwidth_limit, k->bandwidth_limit);
    conf_free(c);
}
END_TEST

/* A bad value of the SFTP sink's transfer keys: where, and what the text
 * must hold (the whole of the text is the sink's to word). */
struct bad_sftp_case {
    const char *text;
    const char *prefix; /* the error starts with it */
    const char *words[3];
};

static const struct bad_sftp_case bad_sftp_cases[] = {
    {"source = { path = \"/up\"; };\ntarget = { host = \"h\";\n"
     " transport = \"putty\"; };\n",
     "DIR/sftprelay.conf:3: target.transport: ",
     {"\"putty\"", "libssh, libssh2", NULL}},
    {"source = { path = \"/up\"; };\ntarget = { host = \"h\";\n"
     " verify = \"md5\"; };\n",
     "DIR/sftprelay.conf:3: target.verify: ",
     {"\"md5\"", "sha256", NULL}},
    {"source = { path = \"/up\"; };\ntarget = { host = \"h\";\n"
     " fsync = 1; };\n",
     "DIR/sftprelay.conf:3: target.fsync: expected true or false",
     {NULL}},
    {"source = { path = \"/up\"; };\ntarget = { host = \"h\";\n"
     " preserve_mtime = \"yes\"; };\n",
     "DIR/sftprelay.conf:3: target.preserve_mtime: expected true or false",
     {NULL}},
    {"source = { path = \"/up\"; };\ntarget = { host = \"h\";\n"
     " keepalive = 90000; };\n",
     "DIR/sftprelay.conf:3: target.keepalive: 90000 is out of range (0 to "
     "86400)",
     {NULL}},
    {"source = { path = \"/up\"; };\ntarget = { host = \"h\"; };\n"
     "transfer = {\n bandwidth_limit = -1; };\n",
     "DIR/sftprelay.conf:4: transfer.bandwidth_limit: -1 is out of range",
     {NULL}},
};

START_TEST(test_sftp_transfer_keys_bad)
{
    const struct bad_sftp_case *bc = &bad_sftp_cases[_i];
    struct conf *c = NULL;
    char err[CONF_ERR_MAX];
    const char *e;
    size_t i;

    ck_assert_int_eq(load(bc->text, &c, err), -EINVAL);
    ck_assert_ptr_null(c);
    e = rel_err(err);
    ck_assert_msg(strncmp(e, bc->prefix, strlen(bc->prefix)) == 0,
                  "error \"%s\" does not start with \"%s\"", e, bc->prefix);
    for (i = 0; i < 3 && bc->words[i]; i++)
        ck_assert_msg(strstr(e, bc->words[i]), "error \"%s\" lacks \"%s\"", e,
                      bc->words[i]);
}
END_TEST

static Suite *conf_suite(void)
{
    Suite *s = suite_create("conf");
    TCase *tc = tcase_create("load");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_full_example);
    tcase_add_test(tc, test_defaults);
    tcase_add_loop_test(tc, test_bad, 0,
                        sizeof(bad_cases) / sizeof(bad_cases[0]));
    tcase_add_test(tc, test_transforms);
    tcase_add_test(tc, test_server_section);
    tcase_add_test(tc, test_missing_file);
    tcase_add_test(tc, test_s3_keys);
    tcase_add_test(tc, test_target_keys_per_sink);
    tcase_add_test(tc, test_generic_keys);
    tcase_add_loop_test(tc, test_sftp_transfer_keys, 0,
                        sizeof(sftp_keys_cases) / sizeof(sftp_keys_cases[0]));
    tcase_add_loop_test(tc, test_sftp_transfer_keys_bad, 0,
                        sizeof(bad_sftp_cases) / sizeof(bad_sftp_cases[0]));
    suite_add_tcase(s, tc);
    return s;
}

TU_MAIN(conf_suite)
