#!/usr/bin/env bash
# The S3 server of the tests (rgw.sh): Ceph's RADOS Gateway on 127.0.0.1,
# checked with curl's own SigV4.  It keeps bytes, and it refuses what AWS
# refuses and moto accepts: a wrong secret, a payload that does not match
# its signed hash.  The fault proxy (s3_faults.py) answers 503 SlowDown
# and cuts an upload midway; TLS is verified against the test CA only.
# Everything is stopped by PID, and no Ceph process of the test remains.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/rgw.sh"

start_rgw -t
ok "radosgw ready in $RGW_START_SECONDS s (a monitor, a memstore OSD, the gateway)"

b=sftprelay-test
key='dir/a b+ü&x.bin'
size=$((3 * 1024 * 1024 + 17))
head -c "$size" /dev/urandom >"$T/a.bin"
rgw_mb "$b"
rgw_put "$b" "$key" "$T/a.bin"
rgw_get "$b" "$key" "$T/a.got"
same_file "$T/a.bin" "$T/a.got" || fail "rgw_get: other bytes than rgw_put's"
[ "$(rgw_ls "$b")" = "$key" ] || fail "rgw_ls: $(rgw_ls "$b")"
[ "$(rgw_ls "$b" dir/)" = "$key" ] || fail "rgw_ls with a prefix"
[ -z "$(rgw_ls "$b" nothing/)" ] || fail "rgw_ls: keys outside the prefix"
rgw_head "$b" "$key" | grep -qix "content-length: $size" ||
    fail "rgw_head: no Content-Length $size"
ok "put, get, ls, head: the same bytes under a key that needs encoding"

path=/$b/$(rgw_enc "$key")
st=$(RGW_SECRET_KEY=not-the-secret rgw_curl "$T/body" GET "$path" "")
[ "$st" = 403 ] && grep -q '<Code>SignatureDoesNotMatch</Code>' "$T/body" ||
    fail "a wrong secret got HTTP $st: $(cat "$T/body")"
ok "a wrong secret: 403 SignatureDoesNotMatch"

other=$(echo other bytes | sha256sum)
st=$(rgw_curl "$T/body" PUT "/$b/forged.bin" "${other%% *}" -T "$T/a.bin")
[ "$st" = 400 ] && grep -q '<Code>XAmzContentSHA256Mismatch</Code>' "$T/body" ||
    fail "a wrong payload hash got HTTP $st: $(cat "$T/body")"
! rgw_head "$b" forged.bin >/dev/null 2>&1 || fail "the forged upload was kept"
ok "a payload that does not match x-amz-content-sha256: 400, not stored"

st=$(rgw_curl "$T/body" POST "/$b/part.bin?uploads=" "" \
    -H "Content-Type: application/octet-stream")
id=$(sed -n 's|.*<UploadId>\([^<]*\)</UploadId>.*|\1|p' "$T/body")
[ "$st" = 200 ] && [ -n "$id" ] || fail "CreateMultipartUpload: HTTP $st"
[ "$(rgw_uploads "$b")" = "part.bin $id" ] ||
    fail "rgw_uploads: '$(rgw_uploads "$b")', not 'part.bin $id'"
st=$(rgw_curl "$T/body" DELETE "/$b/part.bin?uploadId=$(rgw_enc -q "$id")" "")
[ "$st" = 204 ] || fail "AbortMultipartUpload: HTTP $st"
[ -z "$(rgw_uploads "$b")" ] || fail "an aborted upload is still listed"
ok "rgw_uploads lists an upload in progress, and no more once aborted"

start_s3_faults
echo "fail_first 1" >"$S3_FAULTS_CONTROL"
! RGW_VIA=$S3_FAULTS_URL rgw_get "$b" "$key" "$T/b.got" 2>"$T/err" ||
    fail "the proxy did not answer 503"
grep -q 'HTTP 503 SlowDown' "$T/err" || fail "not a 503 SlowDown: $(cat "$T/err")"
RGW_VIA=$S3_FAULTS_URL rgw_get "$b" "$key" "$T/b.got"
same_file "$T/a.bin" "$T/b.got" || fail "other bytes through the proxy"
ok "the fault proxy: 503 SlowDown first, then the signed request passes"

echo "drop_after 100000" >"$S3_FAULTS_CONTROL"
! RGW_VIA=$S3_FAULTS_URL rgw_put "$b" cut.bin "$T/a.bin" 2>"$T/err" ||
    fail "an upload cut midway succeeded"
grep -q 'HTTP 000' "$T/err" || fail "the cut upload got an answer: $(cat "$T/err")"
! rgw_head "$b" cut.bin >/dev/null 2>&1 || fail "a cut upload was stored"
RGW_VIA=$S3_FAULTS_URL rgw_put "$b" cut.bin "$T/a.bin"
rgw_get "$b" cut.bin "$T/c.got"
same_file "$T/a.bin" "$T/c.got" || fail "other bytes after the cut"
ok "the fault proxy: an upload cut after 100000 bytes is not stored; the next one is"

RGW_VIA=$RGW_TLS_ENDPOINT rgw_get "$b" "$key" "$T/d.got"
same_file "$T/a.bin" "$T/d.got" || fail "other bytes over TLS"
rc=0
curl -sS -o /dev/null "$RGW_TLS_ENDPOINT/" 2>"$T/err" || rc=$?
[ "$rc" = 60 ] || fail "curl without RGW_CA_FILE: exit $rc, not 60: $(cat "$T/err")"
ok "TLS: verified with RGW_CA_FILE, refused with the system's CAs"

pids=("${RGW_PIDS[@]}")
t0=$(date +%s%N)
stop_rgw
t1=$(date +%s%N)
for pid in "${pids[@]}"; do
    ! alive "$pid" || fail "Ceph process $pid still runs after stop_rgw"
done
left=$(pgrep -af -- "$RGW_CEPH_CONF" || true)
[ -z "$left" ] || fail "Ceph processes of the test remain: $left"
ok "stopped by PID in $(((t1 - t0) / 1000000)) ms; no Ceph process of the test remains"
echo "$TESTS_RUN passed, 0 failed"
