#!/usr/bin/env bash
# Transforms before upload, against OpenSSH's sftp-server: gzip, zstd and
# an exec filter (gpg, with a key made here) deliver report.csv as
# report.csv.gz, .zst, .gpg, which gunzip, zstd -d and gpg --decrypt turn
# back into the source for files of 0 B, 1 B, 4 KiB and 3 MiB; the journal
# and "sftprelay list --json" give the target name and both digests (of
# the source, of the bytes on the target); target.on_exists = "rename"
# numbers the name before its suffix; a filter that fails fails the file
# with its exit status and its stderr in the journal, and nothing at the
# final name.
. "$(dirname "$0")/lib.sh"

WORKERS=1 CHUNK=1048576
start_sshd

# files: the sizes every transform delivers.
files() {
    mkdir -p "$T/src/d"
    : >"$T/src/empty.csv"
    printf x >"$T/src/one.csv"
    head -c 4096 /dev/urandom | base64 >"$T/src/d/four.csv"
    # 3 MiB of text that compresses, across three chunks
    seq 1 150000 | sed 's/$/,alpha,beta,gamma/' >"$T/src/d/three.csv"
    truncate -s 3145728 "$T/src/d/three.csv"
}

# sql QUERY: one value from the journal.
sql() {
    sqlite3 -readonly "$T/state/journal.db" "$1"
}

# delivered_as REL NAME DECODE...: REL is delivered at NAME on the target,
# DECODE (reading NAME on stdin) gives the source back, and the journal
# holds NAME, the source's sha256 and that of the bytes on the target.
delivered_as() {
    local rel=$1 name=$2
    shift 2
    is_delivered "$rel" || fail "$rel not delivered"
    [ -f "$T/dst/$name" ] || fail "$rel: no $name on the target"
    [ ! -e "$T/dst/$rel" ] || [ "$rel" = "$name" ] || fail "$rel: also at its own name"
    "$@" <"$T/dst/$name" >"$T/decoded" 2>"$T/decode.err" ||
        fail "$rel: $* failed on $name: $(cat "$T/decode.err")"
    same_file "$T/src/$rel" "$T/decoded" || fail "$rel: $* of $name is not the source"
    [ "$(sql "SELECT target_path FROM files WHERE path = '$rel'")" = "$name" ] ||
        fail "$rel: the journal does not name $name"
    [ "$(sql "SELECT sha256 FROM files WHERE path = '$rel'")" = \
        "$(sha256sum <"$T/src/$rel" | cut -d' ' -f1)" ] ||
        fail "$rel: the journal's sha256 is not the source's"
    [ "$(sql "SELECT delivered_sha256 FROM files WHERE path = '$rel'")" = \
        "$(sha256sum <"$T/dst/$name" | cut -d' ' -f1)" ] ||
        fail "$rel: the journal's delivered_sha256 is not of $name"
}

# round_trip TYPE SUFFIX TRANSFORMS DECODE...: every file through it.
round_trip() {
    local type=$1 suffix=$2 group=$3 rel
    shift 3
    rm -rf "$T/src" "$T/dst" "$T/state"
    write_conf "transforms = ( $group );"
    files
    run_once "$type" || fail "$type: sftprelayd --once failed"
    for rel in empty.csv one.csv d/four.csv d/three.csv; do
        delivered_as "$rel" "$rel$suffix" "$@"
    done
    ok "$type: 0 B, 1 B, 4 KiB and 3 MiB delivered as *$suffix, decoded to the source, both digests in the journal"
}

round_trip gzip .gz '{ type = "gzip"; level = 6; }' gzip -dc
round_trip zstd .zst '{ type = "zstd"; level = 3; }' zstd -dcq
make_gpg_key
round_trip gpg .gpg "{ type = \"exec\"; suffix = \".gpg\"; timeout = 60;
    command = [ \"gpg\", \"--homedir\", \"$T/gnupg\", \"--batch\",
                \"--trust-model\", \"always\", \"--encrypt\",
                \"-r\", \"test@example.invalid\" ]; }" \
    gpg --homedir "$T/gnupg" --batch --quiet --decrypt
round_trip 'gzip then gpg' .gz.gpg "{ type = \"gzip\"; level = 1; },
    { type = \"exec\"; suffix = \".gpg\";
      command = [ \"gpg\", \"--homedir\", \"$T/gnupg\", \"--batch\",
                  \"--trust-model\", \"always\", \"--encrypt\",
                  \"-r\", \"test@example.invalid\" ]; }" \
    sh -c "gpg --homedir '$T/gnupg' --batch --quiet --decrypt | gzip -dc"

# What a user reads: both names and both digests.
json=$(relay list --json)
"$PY" - "$json" <<'PY' || fail "list --json lacks the names or digests"
import json, sys
rows = {r["path"]: r for r in json.loads(sys.argv[1])}
r = rows["d/three.csv"]
assert r["target_path"] == "d/three.csv.gz.gpg", r
assert r["sha256"] and r["delivered_sha256"] and r["sha256"] != r["delivered_sha256"], r
PY
ok "sftprelay list --json gives the target name and both digests"

# The shorthand, and on_exists = "rename": the free name keeps the suffix
# last (report.1.csv.gz).
rm -rf "$T/src" "$T/dst" "$T/state"
write_conf
conf_keys target 'on_exists = "rename";'
conf_keys transfer 'transforms = [ "gzip" ];'
mkdir -p "$T/dst"
seq 1 1000 >"$T/src/report.csv"
echo old >"$T/dst/report.csv.gz"
run_once shorthand || fail "shorthand: sftprelayd --once failed"
delivered_as report.csv report.1.csv.gz gzip -dc
[ "$(cat "$T/dst/report.csv.gz")" = old ] || fail "the target's report.csv.gz was replaced"
[ "$(sql "SELECT outcome FROM files WHERE path = 'report.csv'")" = renamed ] ||
    fail "outcome is not renamed"
ok "transfer.transforms = [ \"gzip\" ]; on_exists = rename: report.1.csv.gz beside the target's report.csv.gz"

# A filter that fails: the file fails with its words, nothing lands.
rm -rf "$T/src" "$T/dst" "$T/state"
write_conf 'transforms = ( { type = "exec"; suffix = ".x";
    command = [ "sh", "-c", "cat >/dev/null; echo no key for ops@example.com >&2; exit 3" ]; } );'
conf_keys transfer 'max_attempts = 1;'
seq 1 100000 >"$T/src/secret.csv"
run_once failing || true
[ "$(state_of secret.csv)" = failed ] || fail "secret.csv is $(state_of secret.csv), not failed"
err=$(sql "SELECT last_error FROM files WHERE path = 'secret.csv'")
[[ $err == *"exited with status 3"* && $err == *"no key for ops@example.com"* ]] ||
    fail "the journal's error says: $err"
[ -z "$(find "$T/dst" -name 'secret*' 2>/dev/null)" ] ||
    fail "a failed filter left $(find "$T/dst" -name 'secret*')"
ok "a filter exiting 3: the file failed with \"$err\", nothing on the target"
# A filter that hangs (no timeout): stopping the agent stops it too; the
# file waits in the queue.
rm -rf "$T/src" "$T/dst" "$T/state"
write_conf 'transforms = ( { type = "exec"; suffix = ".x";
    command = [ "sh", "-c", "cat >/dev/null; exec sleep 600" ]; } );'
seq 1 1000 >"$T/src/stuck.csv"
start_agent hang
sending() { [ "$(state_of stuck.csv)" = sending ]; }
wait_for 30 sending || fail "stuck.csv is not being sent"
stop_agent_quickly
ms=$STOP_MS
[ "$(state_of stuck.csv)" = queued ] || fail "stuck.csv is $(state_of stuck.csv), not queued"
gone() { ! pgrep -fx 'sleep 600' >/dev/null; }
wait_for 5 gone || fail "the hanging filter outlived the agent"
ok "a filter that hangs: SIGTERM stops the agent in $ms ms, the file queued, the filter gone"
echo "$TESTS_RUN passed, 0 failed"
