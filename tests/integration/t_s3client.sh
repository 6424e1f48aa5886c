#!/usr/bin/env bash
# The S3 client (agent/s3/) against radosgw: objects, ranges, listings over
# several pages, a multipart upload with its parts in flight at once,
# abort, and the errors a user meets (wrong keys, a missing bucket, clock
# skew, TLS, throttling, no server, no answer), in words.  check_s3client holds the
# cases; this script gives it a real server.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/rgw.sh"

start_rgw -t
export S3_BUCKET=sftprelay-test
rgw_mb "$S3_BUCKET"
start_s3_faults --fail-first 1
export S3_FAULTS_URL S3_FAULTS_CONTROL
CK_DEFAULT_TIMEOUT=120 "$abs_top_builddir/tests/integration/check_s3client" ||
    fail "check_s3client failed"
ok "check_s3client against radosgw"
[ -z "$(rgw_uploads "$S3_BUCKET")" ] ||
    fail "multipart uploads left behind: $(rgw_uploads "$S3_BUCKET")"
ok "no multipart upload left behind"
stop_rgw
echo "$TESTS_RUN passed, 0 failed"
