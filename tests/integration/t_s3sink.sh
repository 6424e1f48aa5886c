#!/usr/bin/env bash
# The S3 sink against radosgw in the cases the conformance suite does not
# reach (check_s3sink holds them): resumes with another part size or past
# the journal's checkpoint, an upload lost at commit, 503s in the middle of
# an upload, and keys the bucket's policy lets write but not list.  This
# script gives check_s3sink a server, the fault proxy and such keys.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/rgw.sh"

start_rgw
export S3_BUCKET=sinkcheck
rgw_mb "$S3_BUCKET"
start_s3_faults
export S3_FAULTS_URL S3_FAULTS_CONTROL

# A user of its own, allowed by the bucket's policy what the sink needs
# (sftprelay.conf(5), target.bucket) and nothing more: no s3:ListBucket.
export S3_WRITER_KEY=SFTPRELAYWRITER00001
export S3_WRITER_SECRET=sftprelay-writer-secret-0123456789abcdefgh
export S3_WRITER_SECRET_FILE=$T/writer.secret
printf '%s\n' "$S3_WRITER_SECRET" >"$S3_WRITER_SECRET_FILE"
radosgw-admin -c "$RGW_CEPH_CONF" user create --uid=writer \
    --display-name=writer --access-key="$S3_WRITER_KEY" \
    --secret="$S3_WRITER_SECRET" >"$T/writer.out" 2>&1 ||
    fail "radosgw-admin user create writer: $(tail -n 3 "$T/writer.out")"
cat >"$T/policy.json" <<JSON
{"Version": "2012-10-17",
 "Statement": [{"Effect": "Allow",
                "Principal": {"AWS": ["arn:aws:iam:::user/writer"]},
                "Action": ["s3:PutObject", "s3:GetObject",
                           "s3:AbortMultipartUpload",
                           "s3:ListMultipartUploadParts"],
                "Resource": ["arn:aws:s3:::$S3_BUCKET/*"]}]}
JSON
hash=$(sha256sum "$T/policy.json")
st=$(rgw_curl "$T/policy.out" PUT "/$S3_BUCKET?policy=" "${hash%% *}" \
    --data-binary @"$T/policy.json")
rgw_check "PutBucketPolicy" "$st" "$T/policy.out" ||
    fail "the bucket policy was refused: $(cat "$T/policy.out")"

CK_DEFAULT_TIMEOUT=120 "$abs_top_builddir/tests/integration/check_s3sink" ||
    fail "check_s3sink failed"
ok "check_s3sink against radosgw"
[ -z "$(rgw_uploads "$S3_BUCKET")" ] ||
    fail "multipart uploads left behind: $(rgw_uploads "$S3_BUCKET")"
ok "no multipart upload left behind"
stop_rgw
echo "$TESTS_RUN passed, 0 failed"
