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

rm "$T/src/a/b/c/file_1.txt"
sleep 0.5
[ -f "$T/dst/a/b/c/file_1.txt" ] || fail "deleting on the source deleted on the target"
ok "deleted on the source, kept on the target"

echo "made on the target" >"$T/dst/a/b/c/target_only.txt"
sleep 0.5
[ ! -e "$T/src/a/b/c/target_only.txt" ] || fail "a target file reached the source"
ok "a file made on the target never reaches the source"

# No temporary files are left behind on the target.
leftover=$(find "$T/dst" -name '*.sftprelay-tmp' | wc -l)
[ "$leftover" = 0 ] || fail "temporary files left on the target"
ok "no temporary files left on the target"

out=$(relay status)
echo "$out" | grep -q '^delivered    4$' || fail "status: $out"
echo "$out" | grep -q '^target:      ok$' || fail "status: $out"
ok "sftprelay status counts 4 delivered, target ok"

stop_agent
echo "$TESTS_RUN passed, 0 failed"
