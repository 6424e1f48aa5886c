#!/usr/bin/env bash
# sftprelayd as the source SFTP host: uploads into its own server are queued
# the moment the client closes them (before inotify's settle time), reach
# the target byte-identical, are never queued twice; an upload whose client
# vanished is never queued as if complete.
. "$(dirname "$0")/lib.sh"

start_serve                      # the target
ingest_port=$(free_port)
SETTLE_MS=3000 write_conf "server = { listen = \"127.0.0.1:$ingest_port\";
  host_keys = [ \"$T/keys/ingest_host\" ];
  users = ( { name = \"$(id -un)\"; authorized_keys = \"$T/keys/authorized_keys\"; } ); };"
sed -i 's/settle_ms = 3000;/settle_ms = 3000; rescan_interval = 2;/' "$T/relay.conf"
start_agent
serving() { grep -q "serving SFTP on 127.0.0.1:$ingest_port" "$T/agent.log"; }
wait_for 10 serving || fail "the ingest server did not start"
grep -q "host key $T/keys/ingest_host (generated): SHA256:" "$T/agent.log" ||
    fail "no fingerprint logged for the generated host key"
echo "[127.0.0.1]:$ingest_port $(cut -d' ' -f1,2 "$T/keys/ingest_host.pub")" >"$T/ingest_kh"
ok "sftprelayd serves SFTP on its own port, host key generated"

# looked_again NAME: write NAME into the source by hand and wait until it is
# delivered, and until two periodic scans began after it was written.
# Then whatever inotify saw before NAME has settled (its settle time ended
# first) and a whole rescan has passed over the tree.
scans() { grep -c 'periodic scan of ' "$T/agent.log" || true; }
looked_again() {
    local s0
    s0=$(scans)
    echo "written beside the uploads" >"$T/src/$1"
    wait_for 20 is_delivered "$1" || fail "$1 not delivered"
    scanned_twice() { [ "$(scans)" -ge $((s0 + 2)) ]; }
    wait_for 20 scanned_twice || fail "no periodic scans (rescan_interval 2)"
}

upload() { # upload BATCHFILE: OpenSSH sftp into sftprelayd's server
    sftp -b "$1" -i "$T/keys/client_ed25519" -o UserKnownHostsFile="$T/ingest_kh" \
        -o BatchMode=yes -P "$ingest_port" "$(id -un)@127.0.0.1"
}
mkdir -p "$T/up"
echo "uploaded by a partner" >"$T/up/file_1.txt"
printf 'mkdir a\nmkdir a/b\nmkdir a/b/c\nput %s a/b/c/file_1.txt\n' "$T/up/file_1.txt" >"$T/b1"
upload "$T/b1" >/dev/null 2>&1 || fail "upload into sftprelayd failed"
queued() { [ -n "$(state_of a/b/c/file_1.txt)" ]; }
wait_for 10 queued || fail "not queued"
# Queued by the server when the client closed the file, not by inotify
# after settle_ms: the log says so, and how long after the close (by the
# agent's own clock, so a slow ssh login does not count).
grep -q " queued a/b/c/file_1.txt (22 bytes, uploaded by 127.0.0.1:[0-9]*)$" "$T/agent.log" ||
    fail "the log does not say it was queued on upload"
ms=$(grep -E " $(id -un) uploaded a/b/c/file_1.txt \\(| queued a/b/c/file_1.txt \\(" \
    "$T/agent.log" | python3 -c '
import sys, datetime as d
t = [d.datetime.strptime(l.split()[0], "%Y-%m-%dT%H:%M:%S.%fZ") for l in sys.stdin]
assert len(t) == 2, t
print(round((t[1] - t[0]).total_seconds() * 1000))') ||
    fail "no 'uploaded' then 'queued' lines for a/b/c/file_1.txt"
[ "$ms" -ge 0 ] && [ "$ms" -lt 3000 ] ||
    fail "queued $ms ms after the close: not on close (settle is 3000 ms)"
ok "an upload is queued when the client closes it ($ms ms after, settle is 3 s)"

wait_for 20 is_delivered a/b/c/file_1.txt || fail "not delivered"
same_file "$T/up/file_1.txt" "$T/dst/a/b/c/file_1.txt" || fail "differs on the target"
looked_again marker1.txt
[ "$(grep -c 'queued a/b/c/file_1.txt' "$T/agent.log")" = 1 ] || fail "queued twice"
relay --json show a/b/c/file_1.txt | python3 -c '
import json, sys
f = json.load(sys.stdin)
assert f["state"] == "delivered" and f["version"] == 1 and f["attempts"] == 1, f' ||
    fail "journal row: $(relay show a/b/c/file_1.txt)"
ok "delivered to the target byte-identical, queued once (inotify and rescans agree)"

# Upload to a temporary name, then rename: only the final name travels.
echo "renamed" >"$T/up/report.csv"
printf 'put %s report.csv.filepart\nrename report.csv.filepart report.csv\n' \
    "$T/up/report.csv" >"$T/b2"
upload "$T/b2" >/dev/null 2>&1 || fail "upload + rename failed"
wait_for 20 is_delivered report.csv || fail "renamed upload not delivered"
[ -z "$(state_of report.csv.filepart)" ] || fail "the temporary name was queued"
ok "an upload renamed into place is queued under its final name only"

# A client that vanishes half-way.
head -c $((400 * 1024 * 1024)) /dev/urandom >"$T/up/big.bin"
printf 'put %s big.bin\n' "$T/up/big.bin" >"$T/b3"
setsid bash -c "$(declare -f upload); T=$T ingest_port=$ingest_port; upload $T/b3" \
    >/dev/null 2>&1 &
client=$!
PIDS+=("$client")
growing() { [ "$(stat -c %s "$T/src/big.bin" 2>/dev/null || echo 0)" -gt $((20 * 1024 * 1024)) ]; }
wait_for 30 growing || fail "the big upload did not start"
kill -9 -- "-$client" 2>/dev/null || kill -9 "$client"
wait "$client" 2>/dev/null || true
unfinished() { grep -q 'left big.bin unfinished' "$T/agent.log"; }
wait_for 10 unfinished || fail "the server did not notice the client vanished"
looked_again marker2.txt
[ -z "$(state_of big.bin)" ] || fail "a half-written upload was queued: $(relay show big.bin)"
[ "$(sqlite3 -readonly "$T/state/journal.db" "SELECT count(*) FROM partial WHERE path = 'big.bin'")" = 1 ] ||
    fail "no partial record"
[ ! -e "$T/dst/big.bin" ] || fail "a half-written upload reached the target"
ok "a vanished client's half-written upload is never queued (settle, rescans)"

upload "$T/b3" >/dev/null 2>&1 || fail "second upload of big.bin failed"
wait_for 60 is_delivered big.bin || fail "complete upload not delivered"
same_file "$T/up/big.bin" "$T/dst/big.bin" || fail "big.bin differs on the target"
[ "$(sqlite3 -readonly "$T/state/journal.db" "SELECT count(*) FROM partial")" = 0 ] ||
    fail "partial record left after a complete upload"
ok "uploaded again completely, it is delivered"

stop_agent
echo "$TESTS_RUN passed, 0 failed"
