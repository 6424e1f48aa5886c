#!/usr/bin/env bash
# The brief's examples against a real OpenSSH sshd: files appear at the
# same path on the target, byte-identical; deletions and files made on the
# target never travel back.
. "$(dirname "$0")/lib.sh"

start_sshd
write_conf
mkdir -p "$T/src/a/b/c"
start_agent

for n in 1 2 3; do
    f=a/b/c/file_$n.txt
    printf 'file %s of the brief, %s\n' "$n" "$(date +%F)" >"$T/src/$f"
    wait_for 20 is_delivered "$f" || fail "$f not delivered"
    same_file "$T/src/$f" "$T/dst/$f" || fail "$f differs on the target"
    ok "$f replicated to the same path, byte-identical"
done

head -c $((10 * 1024 * 1024)) /dev/urandom >"$T/src/a/blob.bin"
wait_for 30 is_delivered a/blob.bin || fail "10 MiB file not delivered"
same_file "$T/src/a/blob.bin" "$T/dst/a/blob.bin" || fail "10 MiB file differs"
sha=$(sha256sum "$T/src/a/blob.bin" | cut -d' ' -f1)
[ "$(relay --json show a/blob.bin | python3 -c \
    'import json,sys; print(json.load(sys.stdin)["sha256"])')" = "$sha" ] ||
    fail "journal sha256 is not the file's"
ok "10 MiB binary byte-identical, journal holds its SHA-256"

# Deleting on the source and making a file on the target, then a later
# file in the same folder: once the agent has delivered it, it has seen the
# deletion (inotify reports in order) and written into the target folder
# beside the target's own file.
cp "$T/src/a/b/c/file_1.txt" "$T/file_1.orig"
row_before=$(relay --json show a/b/c/file_1.txt)
rm "$T/src/a/b/c/file_1.txt"
echo "made on the target" >"$T/dst/a/b/c/target_only.txt"
cp "$T/dst/a/b/c/target_only.txt" "$T/target_only.orig"
echo "written after the deletion" >"$T/src/a/b/c/file_4.txt"
wait_for 20 is_delivered a/b/c/file_4.txt || fail "file_4.txt not delivered"
same_file "$T/src/a/b/c/file_4.txt" "$T/dst/a/b/c/file_4.txt" || fail "file_4.txt differs"

same_file "$T/file_1.orig" "$T/dst/a/b/c/file_1.txt" ||
    fail "deleting on the source changed or deleted file_1.txt on the target"
[ "$(relay --json show a/b/c/file_1.txt)" = "$row_before" ] ||
    fail "the journal row of the deleted file changed: $(relay show a/b/c/file_1.txt)"
ok "deleted on the source, kept on the target, its journal row unchanged"

[ ! -e "$T/src/a/b/c/target_only.txt" ] || fail "a target file reached the source"
[ -z "$(state_of a/b/c/target_only.txt)" ] || fail "a target file is in the journal"
same_file "$T/target_only.orig" "$T/dst/a/b/c/target_only.txt" ||
    fail "the target's own file was changed"
ok "a file made on the target never reaches the source nor the journal, and is left as is"

# The target holds exactly the delivered files and its own: no temporary
# files, nothing else.
expected=$(printf '%s\n' a/blob.bin a/b/c/file_1.txt a/b/c/file_2.txt \
    a/b/c/file_3.txt a/b/c/file_4.txt a/b/c/target_only.txt | sort)
got=$(cd "$T/dst" && find . -type f | sed 's|^\./||' | sort)
[ "$got" = "$expected" ] || fail "target tree: $got"
ok "the target holds the delivered files and its own, no temporary files"

relay --json status | python3 -c '
import json, sys
s = json.load(sys.stdin)
want = {"queued": 0, "sending": 0, "delivered": 5, "failed": 0}
assert {k: s["counts"].get(k) for k in want} == want, s["counts"]
assert s["target_error"] is None and s["last_error"] is None, s' ||
    fail "status: $(relay status)"
out=$(relay status)
echo "$out" | grep -qx 'delivered    5' || fail "status: $out"
echo "$out" | grep -qx 'target:      ok' || fail "status: $out"
ok "sftprelay status: 5 delivered, none queued or failed, target ok"

stop_agent
echo "$TESTS_RUN passed, 0 failed"
