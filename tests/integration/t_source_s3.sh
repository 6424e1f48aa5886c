#!/usr/bin/env bash
# source.type = "s3": a bucket's objects under a prefix (radosgw on
# 127.0.0.1) replicated to a local target: a nested tree with spaces and
# UTF-8 byte-identical; an object rewritten at the same size sent again;
# a folder marker and a hostile key skipped, the key named once in the
# log; after_delivery delete and move:<dir> on the bucket; wrong keys
# pause the source in words and count no attempt, fixed keys resume it; an
# object rewritten mid-transfer is sent whole in its new version; kill -9
# mid big object resumes from the checkpoint, bytes identical, the ranged
# GETs counted through the fault proxy (s3_faults.py, no faults).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/rgw.sh"
heavy

B=drop
start_rgw
rgw_mb "$B"
start_s3_faults # no faults: it counts the GETs, with their ranges

# src_conf STATE PREFIX [SOURCE KEYS] [TRANSFER KEYS]: an agent polling
# PREFIX of the bucket (through the proxy), delivering to $T/out-STATE;
# two workers unless TRANSFER KEYS say.
src_conf() {
    mkdir -p "$T/out-$1"
    cat >"$T/relay.conf" <<CONF
source = { type = "s3"; endpoint = "$S3_FAULTS_URL";
           path_style = true; bucket = "$B"; prefix = "$2";
           access_key_id = "$RGW_ACCESS_KEY";
           secret_access_key_file = "$T/secret";
           poll_interval = 1; stable_polls = 1; ${3:-} };
target = { type = "local"; path = "$T/out-$1"; };
journal = { path = "$T/$1/journal.db"; };
transfer = { backoff_initial = 1; backoff_max = 2; ${4:-workers = 2;} };
log = { level = "debug"; };
CONF
}
cp "$RGW_SECRET_FILE" "$T/secret"

# put KEY TEXT: the object KEY holds TEXT and a newline.
put() {
    echo "$2" >"$T/obj"
    rgw_put "$B" "$1" "$T/obj" || fail "rgw_put $1"
}

attempts_of() {
    relay --json show "$1" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["attempts"])'
}
# got REL KEY: the target file REL is the object KEY, to the byte.
got() {
    is_delivered "$1" && rgw_get "$B" "$2" "$T/cmp" &&
        same_file "$T/cmp" "$T/out-$STATE/$1"
}

# --- a tree ----------------------------------------------------------------
STATE=tree
put in/top.txt "top"
put in/a/b/c/file_1.txt "deep"
put "in/d/with space.txt" "spaced"
put "in/ü/naïve é.txt" "utf-8"
head -c 3145728 /dev/urandom >"$T/big3"
rgw_put "$B" in/a/big.bin "$T/big3"
: >"$T/empty"
rgw_put "$B" in/a/empty "$T/empty"
# A folder marker (not -T: curl would add the file's name after the "/").
st=$(rgw_curl "$T/rgw.body" PUT "/$B/in/a/marker/" "" --data-binary "")
rgw_check "put in/a/marker/" "$st" "$T/rgw.body" || fail "cannot make in/a/marker/"
# A key that would leave the tree, sent as it is (--path-as-is).
st=$(rgw_curl "$T/rgw.body" PUT "/$B/in/../evil" "" --path-as-is -T "$T/empty")
rgw_check "put in/../evil" "$st" "$T/rgw.body" || fail "cannot make in/../evil"
rgw_ls "$B" in/ | grep -qxF "in/../evil" || fail "radosgw did not keep in/../evil"
src_conf tree in
start_agent agent1
tree() {
    got top.txt in/top.txt && got a/b/c/file_1.txt in/a/b/c/file_1.txt &&
        got "d/with space.txt" "in/d/with space.txt" &&
        got "ü/naïve é.txt" "in/ü/naïve é.txt" &&
        got a/big.bin in/a/big.bin && got a/empty in/a/empty
}
wait_for 60 tree || fail "the tree was not replicated from the bucket"
ok "a nested tree (spaces, UTF-8, 3 MiB, empty) replicated byte-identical"

listings() { grep -c 'listed [0-9]* files' "$T/agent1.log" || true; }
n0=$(listings)
wait_for 30 eval '[ "$(listings)" -ge $((n0 + 2)) ]' ||
    fail "the poller does not list again"
[ ! -e "$T/out-tree/a/marker" ] || fail "the folder marker became a file"
grep -qF 'skipping the folder marker "in/a/marker/"' "$T/agent1.log" ||
    fail "no word of the folder marker"
n=$(grep -c 'refusing the key "in/../evil"' "$T/agent1.log" || true)
[ "$n" = 1 ] || fail "in/../evil refused $n times in the log, not once"
grep -qF "s3://$B: refusing the key \"in/../evil\"" "$T/agent1.log" ||
    fail "the refusal does not name the bucket"
[ ! -e "$T/evil" ] && [ ! -e "$T/out-tree/../evil" ] || fail "evil escaped"
ok "a folder marker skipped; in/../evil refused, logged once with the bucket"

# Rewritten at the same size, most likely within the same second.
put in/top.txt "TOP"
wait_for 30 eval 'same_file <(echo TOP) "$T/out-tree/top.txt"' ||
    fail "the rewritten in/top.txt was not sent again"
ok "an object rewritten at the same size is sent again (its ETag differs)"

# Rewritten while it is sent: the new version, whole, never a mix.
head -c 16777216 /dev/urandom >"$T/v1"
head -c 16777216 /dev/urandom >"$T/v2"
rgw_put "$B" in/moving.bin "$T/v1"
stop_agent
src_conf tree in "" "workers = 2; bandwidth_limit = 4194304;"
start_agent agent2
under_way() {
    [ "$(sqlite3 -readonly "$T/tree/journal.db" \
        "SELECT resume_offset FROM files WHERE path = 'moving.bin'")" -gt 0 ]
} 2>/dev/null
wait_for 30 under_way || fail "moving.bin never started"
rgw_put "$B" in/moving.bin "$T/v2"
wait_for 60 eval 'is_delivered moving.bin && same_file "$T/v2" "$T/out-tree/moving.bin"' ||
    fail "moving.bin is not its second version: $(state_of moving.bin)"
grep -qF "the object changed since it was listed" "$T/agent2.log" ||
    fail "no word of the object changing mid-transfer"
ok "an object rewritten mid-transfer: the read stops (If-Match), the new version goes whole"
stop_agent

# --- after_delivery ----------------------------------------------------------
STATE=del
put del/x/del.txt "delete me"
src_conf del del 'after_delivery = "delete";'
run_once once-del || fail "--once with after_delivery delete failed"
same_file <(echo "delete me") "$T/out-del/x/del.txt" || fail "del.txt not delivered"
[ -z "$(rgw_ls "$B" del/)" ] || fail "left on the bucket: $(rgw_ls "$B" del/)"
ok "after_delivery delete removes the object"

STATE=mv
put mv/x/y/mv.txt "move me"
src_conf mv mv 'after_delivery = "move:done";'
run_once once-mv || fail "--once with after_delivery move failed"
same_file <(echo "move me") "$T/out-mv/x/y/mv.txt" || fail "mv.txt not delivered"
[ "$(rgw_ls "$B" mv/)" = mv/done/x/y/mv.txt ] ||
    fail "the bucket holds $(rgw_ls "$B" mv/ | tr '\n' ' '), not mv/done/x/y/mv.txt"
rgw_get "$B" mv/done/x/y/mv.txt "$T/cmp" && same_file <(echo "move me") "$T/cmp" ||
    fail "mv/done/x/y/mv.txt is not the object"
run_once once-mv-again || fail "the second --once failed"
[ ! -e "$T/out-mv/done" ] || fail "the move folder was sent as new files"
ok "after_delivery move:done copies to mv/done/x/y/mv.txt, deletes, is not sent again"

# --- wrong keys: the source paused, no attempt ---------------------------------
STATE=keys
head -c 8388608 /dev/urandom >"$T/k"
rgw_put "$B" keys/k.bin "$T/k"
src_conf keys keys "" "workers = 1; bandwidth_limit = 1048576;"
start_agent agent3
started() {
    [ "$(sqlite3 -readonly "$T/keys/journal.db" \
        "SELECT resume_offset FROM files WHERE path = 'k.bin'")" -gt 0 ]
} 2>/dev/null
wait_for 30 started || fail "k.bin never started"
stop_agent
before=$(attempts_of k.bin)
echo "not-the-secret" >"$T/secret"
start_agent agent4
wait_for 30 status_says "source:      unreachable" ||
    fail "status does not show the source paused: $(relay status)"
status_says "wrong keys" || fail "status does not say wrong keys: $(relay status)"
grep -q "wrong keys" "$T/agent4.log" || fail "the log does not say wrong keys"
[ "$(state_of k.bin)" = queued ] || fail "k.bin is $(state_of k.bin), not queued"
[ "$(attempts_of k.bin)" = "$before" ] ||
    fail "wrong keys counted attempts: $(attempts_of k.bin), was $before"
! grep -rqF "$RGW_SECRET_KEY" "$T"/agent*.log || fail "the secret is in a log"
ok "wrong keys: the source paused, \"wrong keys\" in status and log, no attempt counted"
cp "$RGW_SECRET_FILE" "$T/secret"
STATE=keys
wait_for 60 got k.bin keys/k.bin || fail "k.bin not delivered once the keys are right"
[ "$(attempts_of k.bin)" = $((before + 1)) ] ||
    fail "k.bin took $(attempts_of k.bin) attempts, was $before"
ok "the right keys back in the file: the source resumes without a restart"
stop_agent

# --- kill -9 mid big object --------------------------------------------------
STATE=state
size=$((64 * 1024 * 1024 + 12345))
head -c "$size" /dev/urandom >"$T/huge"
rgw_put "$B" big/huge.bin "$T/huge"
src_conf state big "" "workers = 1; bandwidth_limit = 16777216;"
: >"$T/s3_faults.log"
start_agent agent5
far() { [ "$(checkpoint_of huge.bin)" -gt 25165824 ] 2>/dev/null; }
wait_for 60 far || fail "huge.bin never got past 24 MiB"
kill -9 "$AGENT_PID"
wait "$AGENT_PID" 2>/dev/null || true
at=$(checkpoint_of huge.bin)
# read_bytes: the bytes the ranged GETs of huge.bin asked for so far.
read_bytes() {
    sed -n 's|.* GET /'"$B"'/big/huge.bin (bytes=\([0-9]*\)-\([0-9]*\)).*|\1 \2|p' \
        "$T/s3_faults.log" | awk '{ n += $2 - $1 + 1 } END { print n + 0 }'
}
gets() { grep -c "GET /$B/big/huge.bin (bytes=" "$T/s3_faults.log" || true; }
read1=$(read_bytes) gets1=$(gets)
src_conf state big "" "workers = 1;"
start_agent agent6
wait_for 120 is_delivered huge.bin || fail "huge.bin not delivered after the restart"
same_file "$T/huge" "$T/out-state/huge.bin" || fail "huge.bin differs"
grep -qE "sending huge.bin \([0-9]+ bytes from [1-9][0-9]*\)" "$T/agent6.log" ||
    fail "the second run did not resume (checkpoint $at): $(grep 'sending huge' "$T/agent6.log")"
read2=$(($(read_bytes) - read1)) gets2=$(($(gets) - gets1))
ok "kill -9 at $at of $size bytes: the target resumed there, bytes identical"
# What the source gave: the resumed run goes on hashing from the SHA-256
# state of its checkpoint, so it reads only the bytes not yet sent (and at
# most a chunk before them), in GETs of up to 4 MiB that never ask past
# the object's end.
echo "# GETs of huge.bin: $gets1 ($read1 bytes) before the kill, $gets2 ($read2 bytes) after"
left=$((size - at))
[ "$read2" -ge "$left" ] && [ "$read2" -le $((left + 262144)) ] ||
    fail "the resumed run asked for $read2 bytes; $left were left to send"
[ "$gets2" -le $((read2 / 4194304 + 2)) ] ||
    fail "$gets2 GETs after the restart: more than one per 4 MiB"
ok "the resumed run read $read2 bytes ($left left to send: at most a chunk read again), in $gets2 ranged GETs"
stop_agent
stop_rgw
echo "$TESTS_RUN passed, 0 failed"
