/*
 * Where S3 keys come from, in the order the AWS tools use: a key id and
 * a secret file named in the configuration; else the environment
 * (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY); else a profile of the shared
 * credentials file (AWS_SHARED_CREDENTIALS_FILE, or ~/.aws/credentials).
 * The secret is read just before use into the caller's buffer; messages
 * name files, profiles and variables, never the secret.
 */
#include "config.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sftprelay/s3.h"
#include "sftprelay/secret.h"

/* s trimmed of blanks at both ends, in place. */
static char *trim(char *s)
{
    char *e;

    while (*s == ' ' || *s == '\t')
        s++;
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' ||
                     e[-1] == '\r'))
        *--e = '\0';
    return s;
}

/* The profile's keys from an INI file like ~/.aws/credentials. */
static int from_file(const char *file, const char *profile,
                     struct s3_creds *out, char *why, size_t whylen)
{
    char line[SECRET_MAX], *p, *eq;
    int in = 0, r = -ENOENT;
    FILE *f = fopen(file, "re");

    if (f == NULL) {
        snprintf(why, whylen, "no keys: target.access_key_id and "
                 "secret_access_key_file are not set, nor "
                 "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, and %s: %s",
                 file, strerror(errno));
        return -ENOENT;
    }
    while (fgets(line, sizeof(line), f)) {
        p = trim(line);
        if (*p == '[') {
            p[strcspn(p, "]")] = '\0';
            in = strcmp(trim(p + 1), profile) == 0;
            continue;
        }
        eq = strchr(p, '=');
        if (!in || eq == NULL)
            continue;
        *eq = '\0';
        if (strcmp(trim(p), "aws_access_key_id") == 0)
            snprintf(out->access_key_id, sizeof(out->access_key_id), "%s",
                     trim(eq + 1));
        else if (strcmp(trim(p), "aws_secret_access_key") == 0)
            snprintf(out->secret_access_key, sizeof(out->secret_access_key),
                     "%s", trim(eq + 1));
    }
    explicit_bzero(line, sizeof(line));
    fclose(f);
    if (out->access_key_id[0] && out->secret_access_key[0])
        r = 0;
    else
        snprintf(why, whylen, "%s: profile [%s] has no aws_access_key_id "
                 "and aws_secret_access_key", file, profile);
    return r;
}

int s3_creds_load(const char *access_key_id, const char *secret_file,
                  const char *profile, struct s3_creds *out, char *why,
                  size_t whylen)
{
    const char *id = getenv("AWS_ACCESS_KEY_ID");
    const char *secret = getenv("AWS_SECRET_ACCESS_KEY");
    const char *file = getenv("AWS_SHARED_CREDENTIALS_FILE");
    const char *home = getenv("HOME");
    char path[4096];
    struct passwd *pw;
    int r;

    memset(out, 0, sizeof(*out));
    if (secret_file && secret_file[0]) {
        if (!access_key_id || !access_key_id[0]) {
            snprintf(why, whylen, "secret_access_key_file is set and "
                     "access_key_id is not");
            return -EINVAL;
        }
        snprintf(out->access_key_id, sizeof(out->access_key_id), "%s",
                 access_key_id);
        return secret_read_for("secret_access_key_file", secret_file,
                               out->secret_access_key,
                               sizeof(out->secret_access_key), why, whylen);
    }
    if (id && id[0] && secret && secret[0]) {
        snprintf(out->access_key_id, sizeof(out->access_key_id), "%s", id);
        snprintf(out->secret_access_key, sizeof(out->secret_access_key), "%s",
                 secret);
        return 0;
    }
    if (file == NULL || file[0] == '\0') {
        if (home == NULL || home[0] == '\0') {
            pw = getpwuid(geteuid());
            home = pw ? pw->pw_dir : "/";
        }
        snprintf(path, sizeof(path), "%s/.aws/credentials", home);
        file = path;
    }
    r = from_file(file, profile && profile[0] ? profile : "default", out, why,
                  whylen);
    /* a key id in the configuration names which key to use */
    if (r == 0 && access_key_id && access_key_id[0] &&
        strcmp(access_key_id, out->access_key_id) != 0) {
        snprintf(why, whylen, "%s: profile [%s] holds the key of another "
                 "access_key_id than %s", file, profile, access_key_id);
        r = -EINVAL;
    }
    if (r < 0)
        explicit_bzero(out, sizeof(*out));
    return r;
}
