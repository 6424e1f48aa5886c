#!/usr/bin/env bash
# Transforms on big files, against OpenSSH's sftp-server: 100 MiB of
# mixed text through gzip, zstd and gpg decodes to the source; kill -9 in
# the middle of a gzip-compressed 100 MiB file resumes at the last member
# boundary the journal recorded, re-sending at most one chunk of what
# reached the target, and the result gunzips to the source; a file that
# changes while it is compressed is sent again from its start, never
# delivered as a mix of versions; an exec filter, which cannot resume,
# starts over from byte 0 after a kill and says so.
. "$(dirname "$0")/lib.sh"
heavy

WORKERS=1 CHUNK=1048576 SFTP_LOG=1
start_sshd

sql() {
    sqlite3 -readonly "$T/state/journal.db" "$1"
}

# mixed_text FILE MIB: numbers, words and base64 noise, MIB MiB of it.
mixed_text() {
    "$PY" - "$1" "$2" <<'PY'
import base64, os, random, sys
path, mib = sys.argv[1], int(sys.argv[2])
rnd = random.Random(11)
words = ["order", "invoice", "partner", "EUR", "USD", "shipped", "pending",
         "Zürich", "Köln", "total", "tax", "line"]
with open(path, "w", encoding="utf-8") as f:
    n = 0
    while n < mib << 20:
        line = "%d,%s,%s,%.2f,%s\n" % (
            rnd.randrange(10 ** 9), rnd.choice(words), rnd.choice(words),
            rnd.random() * 1e4,
            base64.b64encode(os.urandom(rnd.randrange(4, 24))).decode())
        n += f.write(line)
PY
    truncate -s $(($2 << 20)) "$1"
}

mkdir -p "$T/src" "$T/dst"
mixed_text "$T/big.csv" 100

# 1. 100 MiB round trips
make_gpg_key
gpg_cmd="command = [ \"gpg\", \"--homedir\", \"$T/gnupg\", \"--batch\",
    \"--trust-model\", \"always\", \"--encrypt\", \"-r\", \"test@example.invalid\" ];"
for t in gzip:.gz zstd:.zst gpg:.gpg; do
    type=${t%%:*} suffix=${t#*:}
    rm -rf "$T/src" "$T/dst" "$T/state"
    case $type in
    gpg) write_conf "transforms = ( { type = \"exec\"; suffix = \".gpg\"; $gpg_cmd } );"
        decode=(gpg --homedir "$T/gnupg" --batch --quiet --decrypt) ;;
    gzip) write_conf 'transforms = ( { type = "gzip"; } );'; decode=(gzip -dc) ;;
    zstd) write_conf 'transforms = ( { type = "zstd"; } );'; decode=(zstd -dcq) ;;
    esac
    cp "$T/big.csv" "$T/src/big.csv"
    run_once "$type" || fail "$type: sftprelayd --once failed"
    is_delivered big.csv || fail "$type: big.csv not delivered"
    "${decode[@]}" <"$T/dst/big.csv$suffix" | cmp -s - "$T/src/big.csv" ||
        fail "$type: big.csv$suffix does not decode to the source"
    ok "$type: 100 MiB of text delivered as big.csv$suffix ($(stat -c %s "$T/dst/big.csv$suffix") bytes), decoded to the source"
done

# 2. kill -9 in the middle of a gzip-compressed file
rm -rf "$T/src" "$T/dst" "$T/state"
write_conf 'transforms = ( { type = "gzip"; level = 6; } );'
conf_keys transfer 'bandwidth_limit = 4194304;'
cp "$T/big.csv" "$T/src/big.csv"
start_agent agent1
wait_for 60 checkpoint_past big.csv $((4 * 1048576)) ||
    fail "no checkpoint of big.csv recorded"
kill -9 "$AGENT_PID"
wait "$AGENT_PID" 2>/dev/null || true
tmp="$T/dst/.big.csv.gz.sftprelay-tmp"
had=$(stat -c %s "$tmp") || fail "no temporary file on the target"
[ ! -e "$T/dst/big.csv.gz" ] || fail "a partial file is at the final name"
ok "killed with $had bytes of big.csv.gz on the target, journal at $(checkpoint_of big.csv)"
write_conf 'transforms = ( { type = "gzip"; level = 6; } );'
start_agent agent2
wait_for 120 is_delivered big.csv || fail "big.csv not delivered after the restart"
gzip -dc <"$T/dst/big.csv.gz" | cmp -s - "$T/src/big.csv" ||
    fail "the resumed big.csv.gz does not gunzip to the source"
at=$(sed -n 's/.*big\.csv\.gz: resuming at byte [0-9]* of [0-9]* (byte \([0-9]*\) on the target).*/\1/p' \
    "$T/agent2.log")
[ -n "$at" ] && [ "$at" -gt 0 ] || fail "the agent did not resume big.csv.gz"
resent=$((had - at))
[ "$resent" -le 1048576 ] ||
    fail "resumed at $at with $had on the target: $resent bytes sent again, more than a chunk"
ok "resumed at target byte $at of the $had it had: $resent bytes sent again (at most a chunk), gunzips to the source"
stop_agent

# 3. a file that changes while it is compressed
rm -rf "$T/src" "$T/dst" "$T/state"
write_conf 'transforms = ( { type = "gzip"; level = 6; } );'
conf_keys transfer 'bandwidth_limit = 4194304;'
cp "$T/big.csv" "$T/src/big.csv"
start_agent agent3
wait_for 60 checkpoint_past big.csv $((4 * 1048576)) ||
    fail "no checkpoint of big.csv recorded"
# the new version: other bytes, the same size
sed 's/invoice/INVOICE/' "$T/src/big.csv" >"$T/new.csv"
cp "$T/new.csv" "$T/src/big.csv"
delivered_new() {
    is_delivered big.csv && [ -f "$T/dst/big.csv.gz" ] &&
        [ "$(sql "SELECT sha256 FROM files WHERE path = 'big.csv'")" = \
            "$(sha256sum <"$T/new.csv" | cut -d' ' -f1)" ]
}
wait_for 180 delivered_new || fail "the new version of big.csv was not delivered"
gzip -dc <"$T/dst/big.csv.gz" | cmp -s - "$T/new.csv" ||
    fail "big.csv.gz is not the new version: a mix of versions?"
grep -Eq 'big\.csv: .*(changed on the source|shrank)' "$T/agent3.log" ||
    fail "the agent did not say big.csv changed"
ok "a file rewritten while compressed: sent again, big.csv.gz gunzips to the new version"
stop_agent

# 4. exec cannot resume: after kill -9 it starts over, saying so
rm -rf "$T/src" "$T/dst" "$T/state"
write_conf "transforms = ( { type = \"exec\"; suffix = \".gpg\"; $gpg_cmd } );"
conf_keys transfer 'bandwidth_limit = 4194304;'
cp "$T/big.csv" "$T/src/big.csv"
start_agent agent4
some_sent() { [ -s "$T/dst/.big.csv.gpg.sftprelay-tmp" ]; }
wait_for 60 some_sent || fail "nothing of big.csv.gpg sent"
kill -9 "$AGENT_PID"
wait "$AGENT_PID" 2>/dev/null || true
write_conf "transforms = ( { type = \"exec\"; suffix = \".gpg\"; $gpg_cmd } );"
start_agent agent5
wait_for 120 is_delivered big.csv || fail "big.csv not delivered after the restart"
gpg --homedir "$T/gnupg" --batch --quiet --decrypt <"$T/dst/big.csv.gpg" |
    cmp -s - "$T/src/big.csv" || fail "big.csv.gpg does not decrypt to the source"
grep -q 'big.csv.gpg: starting again from byte 0 ([1-9][0-9]* bytes of it had been read): a transform of the chain cannot resume' \
    "$T/agent5.log" || fail "the agent did not say it started over"
ok "exec after kill -9: started over from byte 0, saying so; decrypts to the source"
stop_agent
echo "$TESTS_RUN passed, 0 failed"
