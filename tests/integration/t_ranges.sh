#!/usr/bin/env bash
# A file above transfer.split_size goes as byte ranges over several
# connections into one temporary file, each range's progress in the
# journal; kill -9 in the middle, and the next start resumes every range
# from its progress: byte-identical, nothing under the final name before.
. "$(dirname "$0")/lib.sh"
heavy

start_sshd
WORKERS=4 write_conf
conf_keys transfer 'split_size = 8388608; bandwidth_limit = 16777216;'
size=$((64 * 1024 * 1024))
head -c "$size" /dev/urandom >"$T/big.bin"
ranges() { sqlite3 -readonly "$T/state/journal.db" "$1" 2>/dev/null; }

start_agent agent1
cp "$T/big.bin" "$T/src/big.bin"
moving() { [ "$(ranges 'SELECT count(*) FROM ranges WHERE done > start')" -ge 3 ]; }
wait_for 60 moving || fail "no three ranges with progress: $(ranges 'SELECT * FROM ranges')"
grep -q "big.bin as ranges over 4 connections" "$T/agent1.log" ||
    fail "not sent as ranges: $(grep big.bin "$T/agent1.log" | head -3)"
ranges "SELECT * FROM ranges" >"$T/ranges.before"
kill -9 "$AGENT_PID"
wait "$AGENT_PID" 2>/dev/null || true
[ ! -e "$T/dst/big.bin" ] || fail "big.bin under its final name after kill -9"
[ "$(ranges 'SELECT count(*) FROM ranges')" = 4 ] || fail "ranges: $(ranges "SELECT * FROM ranges") (before the kill: $(cat "$T/ranges.before"))"
before=$(ranges 'SELECT sum(done - start) FROM ranges')
[ "$before" -gt 0 ] && [ "$before" -lt "$size" ] || fail "progress $before of $size"
ok "kill -9 mid-file: 4 ranges recorded, $before of $size bytes on the target, nothing under the final name"

sed -i 's/bandwidth_limit = 16777216;//' "$T/relay.conf"
start_agent agent2
wait_for 60 is_delivered big.bin || fail "big.bin not delivered after the restart"
same_file "$T/big.bin" "$T/dst/big.bin" || fail "big.bin differs on the target"
grep -q "big.bin as ranges over 4 connections, resuming" "$T/agent2.log" ||
    fail "the restart did not resume the ranges"
grep -q "delivered big.bin ($size bytes, resumed" "$T/agent2.log" ||
    fail "not logged as resumed: $(grep 'delivered big.bin' "$T/agent2.log")"
[ "$(ranges 'SELECT count(*) FROM ranges')" = 0 ] || fail "ranges left after delivery"
[ -z "$(find "$T/dst" -name '*.sftprelay-tmp')" ] || fail "a temporary file is left"
sha=$(sha256sum "$T/big.bin" | cut -d' ' -f1)
[ "$(relay --json show big.bin | python3 -c 'import json,sys; print(json.load(sys.stdin)["sha256"])')" = "$sha" ] ||
    fail "the journal's sha256 is not the file's"
ok "resumed every range after the restart: byte-identical, sha256 recorded, ranges cleared"
stop_agent
echo "$TESTS_RUN passed, 0 failed"
