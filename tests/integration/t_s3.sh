#!/usr/bin/env bash
# The agent delivering to S3 (radosgw): small files in one PUT, big ones
# as multipart uploads, byte-identical with the object's ETag in the
# journal; kill -9 in the middle of a multipart upload resumes it after
# every part the server holds without a gap from part 1, sending again
# only the parts in flight at the kill (at most parts_in_flight: 4, or 1
# when so configured) and
# any completed after a gap one of them left; a file that changes
# while it is sent has its upload aborted; wrong keys and a missing bucket
# show in status in words; no multipart upload is left behind.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/rgw.sh"
heavy

B=relay
PART=$((5 * 1024 * 1024))
start_rgw
rgw_mb "$B"

# s3_conf [EXTRA TARGET KEYS] [EXTRA TRANSFER KEYS]
s3_conf() {
    mkdir -p "$T/src"
    cat >"$T/relay.conf" <<CONF
source = { path = "$T/src"; settle_ms = 100; };
target = { type = "s3"; endpoint = "$RGW_ENDPOINT"; path_style = true;
           bucket = "$B"; prefix = "in/"; part_size = $PART;
           access_key_id = "$RGW_ACCESS_KEY";
           secret_access_key_file = "${SECRET_FILE:-$RGW_SECRET_FILE}";
           ${1:-} };
journal = { path = "$T/state/journal.db"; };
transfer = { workers = 1; chunk_size = 1048576; backoff_initial = 1;
             backoff_max = 2; ${2:-} };
log = { level = "debug"; };
CONF
}

# on_target REL: the object in/REL is the source file REL, to the byte.
on_target() {
    rgw_get "$B" "in/$1" "$T/got" && same_file "$T/src/$1" "$T/got"
}

# part_numbers REL: the numbers of the parts the server holds of REL's
# upload, one a line, in order (none: no upload).
part_numbers() {
    local id
    id=$(rgw_uploads "$B" | awk -v k="in/$1" '$1 == k { print $2 }')
    [ -n "$id" ] || return 0
    rgw_curl "$T/parts.xml" GET \
        "/$B/$(rgw_enc "in/$1")?uploadId=$(rgw_enc -q "$id")" "" >/dev/null
    sed 's|<PartNumber>|\n|g' "$T/parts.xml" |
        sed -n 's|^\([0-9]*\)</PartNumber>.*|\1|p'
}

# parts_of REL: the parts the server holds of REL's upload, counted from
# 1 without a gap (0: no upload).
parts_of() {
    local n=0 p
    for p in $(part_numbers "$1"); do
        [ "$p" = $((n + 1)) ] || break
        n=$p
    done
    echo "$n"
}

etag_of() {
    relay --json show "$1" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["etag"])'
}

# 1. small and big files
s3_conf
head -c 1000 /dev/urandom >"$T/src/small.txt"
mkdir -p "$T/src/dir with space"
head -c $((2 * PART + 12345)) /dev/urandom >"$T/src/dir with space/big.bin"
start_agent agent1
wait_for 60 is_delivered small.txt || fail "small.txt not delivered"
wait_for 60 is_delivered "dir with space/big.bin" || fail "big.bin not delivered"
on_target small.txt || fail "small.txt differs on the bucket"
on_target "dir with space/big.bin" || fail "big.bin differs on the bucket"
ok "a small file (one PUT) and a big one (multipart) byte-identical on the bucket"
head_etag=$(rgw_head "$B" "in/dir with space/big.bin" |
    sed -n 's/^[Ee][Tt]ag: *"\(.*\)"$/\1/p')
[ "$(etag_of "dir with space/big.bin")" = "$head_etag" ] ||
    fail "journal etag $(etag_of "dir with space/big.bin") is not the object's $head_etag"
[[ $head_etag == *-3 ]] || fail "ETag $head_etag is not of a 3-part upload"
ok "the journal records the object's ETag ($head_etag)"
stop_agent

# 2. kill -9 in the middle of a multipart upload, with the default 4
# parts in flight and with target.parts_in_flight = 1: at most that many
# parts are sent again.
# kill_resume NAME INFLIGHT
kill_resume() {
    local name=$1 inflight=$2 size=$((8 * PART + 99)) keys=""
    [ "$inflight" = 4 ] || keys="parts_in_flight = $inflight;"
    s3_conf "$keys" "bandwidth_limit = 8388608;"
    head -c "$size" /dev/urandom >"$T/src/$name"
    start_agent "$name-1"
    three_parts() { [ "$(parts_of "$name")" -ge 3 ]; }
    wait_for 60 three_parts || fail "$name: no 3 parts on the server"
    kill -9 "$AGENT_PID"
    wait "$AGENT_PID" 2>/dev/null || true
    had=$(parts_of "$name")
    listed=$(part_numbers "$name" | paste -sd ' ')
    [ "$had" -lt 9 ] || fail "$name: the whole file went before the kill"
    ok "$name: killed with parts $listed on the server, 1 to $had without a gap"
    started=$(sed -n "s/.*in\/$name: part \([0-9]*\) of upload .* started.*/\1/p" \
        "$T/$name-1.log" | sort -n | tail -n 1)
    [ -n "$started" ] || fail "the agent did not log the parts it started"
    s3_conf "$keys"
    start_agent "$name-2"
    wait_for 60 is_delivered "$name" || fail "$name not delivered after restart"
    on_target "$name" || fail "$name differs on the bucket"
    next=$(sed -n "s/.*in\/$name: resuming upload .* at part \([0-9]*\) .*/\1/p" \
        "$T/$name-2.log")
    [ -n "$next" ] || fail "the agent did not say it resumed the upload"
    # The journal's checkpoint may lag the parts: the resume must not.
    [ "$next" -gt "$had" ] ||
        fail "resumed at part $next with parts 1 to $had on the server: a part it held without a gap sent again"
    # Sent again: parts next..started; those the server lacked at the kill
    # were in flight then, $inflight at most.
    resent=$((started >= next ? started - next + 1 : 0))
    lost=0
    for ((p = next; p <= started; p++)); do
        [[ " $listed " == *" $p "* ]] || lost=$((lost + 1))
    done
    [ "$lost" -le "$inflight" ] ||
        fail "resumed at part $next, parts 1 to $started started before the kill: $lost not on the server, more than the $inflight in flight"
    [ "$inflight" != 1 ] || [ "$resent" -le 1 ] ||
        fail "one part in flight, and $resent sent again after the kill"
    ok "$name: resumed at part $next with parts 1 to $had on the server: $resent sent again, $lost of them in flight at the kill (at most $inflight)"
    stop_agent
}
kill_resume killed.bin 4
kill_resume killed1.bin 1

# 3. a file that changes while it is sent: its upload is aborted
s3_conf "" "bandwidth_limit = 8388608;"
head -c $((6 * PART)) /dev/urandom >"$T/src/changing.bin"
start_agent agent4
one_part() { [ "$(parts_of changing.bin)" -ge 1 ]; }
wait_for 60 one_part || fail "no part of changing.bin on the server"
old=$(rgw_uploads "$B" | awk '$1 == "in/changing.bin" { print $2 }')
head -c 100 /dev/urandom >>"$T/src/changing.bin"
old_gone() { ! rgw_uploads "$B" | grep -qF "$old"; }
wait_for 60 old_gone || fail "the upload of the old version was not aborted"
wait_for 60 is_delivered changing.bin || fail "changing.bin not delivered"
on_target changing.bin || fail "changing.bin differs on the bucket"
ok "a file that changed while sent: its upload aborted, the new version delivered"
stop_agent

# 4. errors in words, of the whole target
echo "not-the-secret" >"$T/wrong.secret"
SECRET_FILE=$T/wrong.secret s3_conf
echo x >"$T/src/after.txt"
start_agent agent5
wait_for 30 status_says "wrong keys: the secret access key is not the one" ||
    fail "status does not say wrong keys: $(relay status)"
! grep -rqF "$RGW_SECRET_KEY" "$T"/agent*.log || fail "the secret is in a log"
ok "wrong secret: status says \"wrong keys\", the logs hold no secret"
stop_agent
s3_conf
sed -i "s|bucket = \"$B\"|bucket = \"nosuch\"|" "$T/relay.conf"
start_agent agent6
wait_for 30 status_says "bucket nosuch does not exist at $RGW_ENDPOINT" ||
    fail "status does not say the bucket is missing: $(relay status)"
ok "missing bucket: status says \"bucket nosuch does not exist at $RGW_ENDPOINT\""
stop_agent

# 6. gzip before S3: parts end with a member (whole writes), so kill -9
# resumes the multipart upload at a member boundary, and the object
# gunzips to the source.
s3_conf "" "bandwidth_limit = 1048576;"
echo 'transforms = ( { type = "gzip"; level = 1; } );' >>"$T/relay.conf"
awk 'BEGIN { srand(7); for (i = 0; i < 1300000; i++)
    printf "%d,%s,%.2f,%08x\n", i, rand() < .5 ? "order" : "invoice",
           rand() * 1e4, int(rand() * 4294967295) }' >"$T/src/text.csv"
start_agent agent7
wait_for 60 checkpoint_past text.csv $((2 * PART)) ||
    fail "text.csv.gz: no checkpoint past 2 parts"
kill -9 "$AGENT_PID"
wait "$AGENT_PID" 2>/dev/null || true
s3_conf
echo 'transforms = ( { type = "gzip"; level = 1; } );' >>"$T/relay.conf"
start_agent agent8
wait_for 60 is_delivered text.csv || fail "text.csv not delivered after the restart"
at=$(sed -n 's/.*text\.csv\.gz: resuming at byte [0-9]* of [0-9]* (byte \([0-9]*\) on the target).*/\1/p' \
    "$T/agent8.log")
[ -n "$at" ] && [ "$at" -gt 0 ] || fail "text.csv.gz did not resume: $(grep text.csv "$T/agent8.log")"
rgw_get "$B" in/text.csv.gz "$T/got.gz" || fail "no in/text.csv.gz on the bucket"
gzip -dc <"$T/got.gz" | cmp -s - "$T/src/text.csv" ||
    fail "in/text.csv.gz does not gunzip to the source"
ok "gzip to S3: killed past 2 parts, resumed at byte $at of the object, which gunzips to the source"
stop_agent

[ -z "$(rgw_uploads "$B")" ] || fail "uploads left behind: $(rgw_uploads "$B")"
ok "no multipart upload left behind"
stop_rgw
echo "$TESTS_RUN passed, 0 failed"
