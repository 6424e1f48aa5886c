#!/usr/bin/env bash
# What the watcher takes and what it leaves: uploads by rename, excluded
# names, links, folders moved in, files present before the agent started,
# and a delivered file that changes (its target copy is replaced).
. "$(dirname "$0")/lib.sh"

start_sshd
write_conf
mkdir -p "$T/src/early/deep"
echo "was here before the agent" >"$T/src/early/deep/before.txt"
start_agent

wait_for 20 is_delivered early/deep/before.txt ||
    fail "a file present at start-up was not delivered"
ok "a file present before the agent started is delivered"

# Upload to a temporary name, then rename (WinSCP, FileZilla, rclone).
mkdir -p "$T/src/in"
echo "renamed into place" >"$T/src/in/report.csv.filepart"
mv "$T/src/in/report.csv.filepart" "$T/src/in/report.csv"
wait_for 20 is_delivered in/report.csv || fail "renamed upload not delivered"
same_file "$T/src/in/report.csv" "$T/dst/in/report.csv" || fail "report.csv differs"
ok "an upload renamed into place is delivered"

# An excluded name and a link renamed into place, then a later file: once
# that one is delivered the agent has seen both (inotify reports in order),
# and it says it did not follow the link.
echo "partial" >"$T/src/in/upload.part"
mkdir -p "$T/staging"
ln -s /etc/passwd "$T/staging/passwd-link"
mv "$T/staging/passwd-link" "$T/src/in/passwd-link"
echo "after the excluded file and the link" >"$T/src/in/after.txt"
wait_for 20 is_delivered in/after.txt || fail "in/after.txt not delivered"
link_seen() { grep -q "^.* in/passwd-link: symbolic link, not followed$" "$T/agent.log"; }
wait_for 20 link_seen || fail "the agent did not report the link it skipped"
[ ! -e "$T/dst/in/upload.part" ] || fail "an excluded *.part file was sent"
[ ! -e "$T/dst/in/passwd-link" ] || fail "a symbolic link was followed"
[ -z "$(state_of in/upload.part)" ] || fail "an excluded file is in the journal"
[ -z "$(state_of in/passwd-link)" ] || fail "a symbolic link is in the journal"
ok "excluded names and symbolic links are never sent"

# A tree made elsewhere and moved in at once: no events for its files.
mkdir -p "$T/staging/x/y/z"
for i in 1 2 3; do echo "moved $i" >"$T/staging/x/y/z/m$i.txt"; done
ln -s /etc/passwd "$T/staging/x/y/z/link"
mv "$T/staging/x" "$T/src/x"
for i in 1 2 3; do
    wait_for 20 is_delivered "x/y/z/m$i.txt" || fail "moved-in x/y/z/m$i.txt not delivered"
done
grep -q "^.* x/y/z/link: symbolic link, not followed$" "$T/agent.log" ||
    fail "the scan did not report the link it skipped"
[ ! -e "$T/dst/x/y/z/link" ] && [ -z "$(state_of x/y/z/link)" ] ||
    fail "a symbolic link found by a scan was followed"
ok "a folder moved into the tree is scanned and delivered, its link skipped"

# Folders created and written at once.
mkdir -p "$T/src/n1/n2/n3" && echo fast >"$T/src/n1/n2/n3/fast.txt"
wait_for 20 is_delivered n1/n2/n3/fast.txt || fail "file in a new folder not delivered"
ok "a file written right after its folders were created is delivered"

# Hard names.
name=$'with space\nand newline \xc3\xa9'
echo "hard name" >"$T/src/in/$name"
wait_for 20 is_delivered "in/$name" || fail "hard name not delivered"
same_file "$T/src/in/$name" "$T/dst/in/$name" || fail "hard name differs"
ok "a name with a space, a newline and UTF-8 is delivered as is"

# A delivered file changes: sent again, replacing the target copy.
echo "version 2, longer than the first" >"$T/src/in/report.csv"
changed() {
    is_delivered in/report.csv && same_file "$T/src/in/report.csv" "$T/dst/in/report.csv"
}
wait_for 20 changed || fail "changed file not re-delivered"
v=$(relay --json show in/report.csv | python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])')
[ "$v" = 2 ] || fail "version $v, expected 2"
ok "a changed file replaces its target copy (journal version 2)"

stop_agent
echo "$TESTS_RUN passed, 0 failed"
