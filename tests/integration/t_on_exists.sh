#!/usr/bin/env bash
# target.on_exists over SFTP: skip leaves the target's file and records
# "skipped"; rename delivers beside it (report.csv as report.1.csv, then
# report.2.csv) and records where; overwrite replaces it.
. "$(dirname "$0")/lib.sh"

start_sshd
write_conf

# field PATH KEY: a field of "sftprelay --json show PATH".
field() {
    relay --json show "$1" |
        "$PY" -c 'import json,sys; v=json.load(sys.stdin)[sys.argv[1]]; print("" if v is None else v)' "$2"
}

# set_policy VALUE: target.on_exists in the config.
set_policy() {
    sed -i '/^target\.on_exists/d; s/ on_exists = "[a-z]*";//' "$T/relay.conf"
    conf_keys target "on_exists = \"$1\";"
}

mkdir -p "$T/dst/in"
echo theirs >"$T/dst/in/report.csv"
echo theirs >"$T/dst/README"
echo ours-1 >"$T/src/in/report.csv" 2>/dev/null || {
    mkdir -p "$T/src/in"
    echo ours-1 >"$T/src/in/report.csv"
}
echo ours-1 >"$T/src/README"
echo fresh >"$T/src/fresh.txt"

set_policy skip
run_once skip || fail "sftprelayd --once exited $?"
[ "$(cat "$T/dst/in/report.csv")" = theirs ] || fail "skip replaced the file"
[ "$(cat "$T/dst/README")" = theirs ] || fail "skip replaced README"
same_file "$T/src/fresh.txt" "$T/dst/fresh.txt" || fail "fresh.txt not sent"
[ "$(field in/report.csv state)" = delivered ] || fail "skipped file not delivered"
[ "$(field in/report.csv outcome)" = skipped ] || fail "outcome not 'skipped'"
[ "$(field fresh.txt outcome)" = written ] || fail "outcome not 'written'"
grep -q "skipped in/report.csv: the target has it" "$T/skip.log" ||
    fail "no log line for the skipped file"
ok "skip: the target's files stay, the journal says skipped"

# A new version of each, with rename: beside the target's.
set_policy rename
echo ours-2 >"$T/src/in/report.csv"
echo ours-2 >"$T/src/README"
run_once rename1 || fail "sftprelayd --once exited $?"
[ "$(cat "$T/dst/in/report.csv")" = theirs ] || fail "rename replaced the file"
[ "$(cat "$T/dst/in/report.1.csv")" = ours-2 ] || fail "not delivered as report.1.csv"
[ "$(cat "$T/dst/README.1")" = ours-2 ] || fail "not delivered as README.1"
[ "$(field in/report.csv outcome)" = renamed ] || fail "outcome not 'renamed'"
[ "$(field in/report.csv target_path)" = in/report.1.csv ] ||
    fail "target_path is not in/report.1.csv"
echo ours-3 >"$T/src/in/report.csv"
run_once rename2 || fail "sftprelayd --once exited $?"
[ "$(cat "$T/dst/in/report.2.csv")" = ours-3 ] || fail "not delivered as report.2.csv"
[ "$(cat "$T/dst/in/report.1.csv")" = ours-2 ] || fail "report.1.csv changed"
ok "rename: report.csv as report.1.csv, then report.2.csv; the journal says where"

set_policy overwrite
echo ours-4 >"$T/src/in/report.csv"
run_once overwrite || fail "sftprelayd --once exited $?"
[ "$(cat "$T/dst/in/report.csv")" = ours-4 ] || fail "overwrite kept the old file"
[ "$(field in/report.csv target_path)" = in/report.csv ] || fail "target_path wrong"
ok "overwrite: replaced"

# A value that is not one of the three is refused, naming the key.
set_policy never
out=$("$SFTPRELAYD" -c "$T/relay.conf" -t 2>&1) && fail "accepted on_exists = never"
grep -q 'target.on_exists: "never" is not overwrite, skip or rename' <<<"$out" ||
    fail "error text: $out"
ok "a bad value is named: $out"
