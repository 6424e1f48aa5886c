/*
 * What the S3 test programs (check_s3client, check_s3sink) share: the
 * server their script started, as the environment names it (rgw.sh),
 * and the fault proxy in front of it.
 */
#ifndef SFTPRELAY_S3TEST_H
#define SFTPRELAY_S3TEST_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>

#include "sftprelay/s3.h"

/* The environment variable name, which the script must have set. */
static inline const char *s3test_env(const char *name)
{
    const char *v = getenv(name);

    ck_assert_msg(v && v[0], "%s is not set: run the program's t_*.sh", name);
    return v;
}

/* The test server's settings, with the bucket owner's keys. */
static inline struct s3_config s3test_config(void)
{
    struct s3_config cf = {
        .endpoint = s3test_env("RGW_ENDPOINT"),
        .region = s3test_env("RGW_REGION"),
        .bucket = s3test_env("S3_BUCKET"),
        .path_style = 1,
        .access_key_id = s3test_env("RGW_ACCESS_KEY"),
        .secret_access_key = s3test_env("RGW_SECRET_KEY"),
        .verify_tls = 1,
        .timeout = 30,
        .cancel_fd = -1,
    };
    return cf;
}

/*
 * The fault proxy's faults from now on, written to its control file
 * S3_FAULTS_CONTROL (s3_faults.py: lines "NAME VALUE" over the faults it
 * started with; "": back to those, its counts started again).
 */
static inline void s3test_faults(const char *text)
{
    FILE *f = fopen(s3test_env("S3_FAULTS_CONTROL"), "we");

    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
}

#endif
