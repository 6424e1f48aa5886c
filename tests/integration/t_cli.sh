#!/usr/bin/env bash
# The programs' contracts: configuration errors (exit 2, file:line: key),
# max_attempts -> failed -> retry, --once, --daemon with a pidfile.
. "$(dirname "$0")/lib.sh"

start_sshd

# Configuration errors name the file, the line and the key; exit 2.
printf 'source = { path = "%s/src"; };\ntarget = { host = "h";\n  hots = "x"; };\n' \
    "$T" >"$T/bad.conf"
rc=0
out=$("$SFTPRELAYD" -c "$T/bad.conf" 2>&1) || rc=$?
[ "$rc" = 2 ] || fail "bad config: exit $rc, expected 2"
[ "$out" = "sftprelayd: $T/bad.conf:3: target.hots: unknown key" ] ||
    fail "bad config message: $out"
printf 'source = { path = "%s/src"; };\ntarget = { type = "local"; path = "/x";\n  host = "h"; };\n' \
    "$T" >"$T/bad.conf"
rc=0
out=$("$SFTPRELAYD" -c "$T/bad.conf" 2>&1) || rc=$?
[ "$rc" = 2 ] && [ "$out" = "sftprelayd: $T/bad.conf:3: target.host: not used by target.type \"local\"" ] ||
    fail "local target with a host: exit $rc: $out"
rc=0
out=$("$SFTPRELAYD" -c "$T/none.conf" 2>&1) || rc=$?
[ "$rc" = 2 ] && [ "$out" = "sftprelayd: $T/none.conf: No such file or directory" ] ||
    fail "missing config: exit $rc: $out"
ok "configuration errors exit 2 naming file, line and key"

rc=0
out=$("$SFTPRELAY" -j "$T/nothing.db" status 2>&1) || rc=$?
[ "$rc" = 1 ] || fail "status on a missing journal: exit $rc"
echo "$out" | grep -q 'has sftprelayd run yet' || fail "status on a missing journal: $out"
rc=0
"$SFTPRELAY" -j "$T/nothing.db" frobnicate >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "unknown command: exit $rc"
ok "the CLI: missing journal exits 1 with a hint, bad usage exits 2"

# A file that cannot be delivered: a plain file stands where its folder
# must go.  With max_attempts = 2 it ends failed, and retry delivers it once
# the cause is gone.
write_conf
sed -i 's/backoff_initial = 1;/backoff_initial = 1; max_attempts = 2;/' "$T/relay.conf"
echo "in the way" >"$T/dst/blocked"
mkdir -p "$T/src/blocked"
echo "payload" >"$T/src/blocked/file.txt"
start_agent
is_failed() { [ "$(state_of blocked/file.txt)" = failed ]; }
wait_for 30 is_failed || fail "not failed after max_attempts: $(relay show blocked/file.txt)"
relay --json show blocked/file.txt | python3 -c '
import json, sys
f = json.load(sys.stdin)
assert f["attempts"] == 2, f
assert "blocked" in f["last_error"], f' || fail "failed row: $(relay show blocked/file.txt)"
relay list --state failed | grep -q 'blocked/file.txt' || fail "list --state failed"
relay status | grep -q '^failed       1$' || fail "status: $(relay status)"
ok "max_attempts reached: failed, with attempts and the error in the journal"

rm "$T/dst/blocked"
[ "$(relay retry --failed)" = "queued 1 failed file again" ] || fail "retry --failed"
wait_for 30 is_delivered blocked/file.txt || fail "not delivered after retry"
same_file "$T/src/blocked/file.txt" "$T/dst/blocked/file.txt" || fail "differs after retry"
ok "retry --failed delivers it once the cause is gone"

rc=0
relay retry no/such/file 2>"$T/err" || rc=$?
[ "$rc" = 1 ] && grep -q 'no/such/file: not in the journal' "$T/err" ||
    fail "retry of an unknown path: exit $rc: $(cat "$T/err")"
relay retry blocked/file.txt >/dev/null || fail "retry of a delivered file"
wait_for 30 is_delivered blocked/file.txt || fail "not delivered again after retry PATH"
ok "retry PATH sends a delivered file again; an unknown path exits 1"

# A partner's Latin-1 name: every JSON string is valid UTF-8 (U+FFFD for
# each byte that is not), and path_bytes / target_path_bytes carry the
# exact bytes as escaped text; a UTF-8 name has no *_bytes member.
latin1="r$(printf '\xe9')sum$(printf '\xe9').csv"
echo "a;b" >"$T/src/$latin1"
wait_for 30 is_delivered "$latin1" || fail "$latin1 not delivered"
check_names() {
    "$PY" -c '
import json, sys
raw = sys.stdin.buffer.read()
rows = json.loads(raw.decode("utf-8"))  # strict: no invalid UTF-8
rows = rows if isinstance(rows, list) else [rows]
json.dumps(rows, ensure_ascii=False).encode("utf-8")  # no lone surrogate
by = {r["path"]: r for r in rows}
f = by["r\ufffdsum\ufffd.csv"]
assert f["path_bytes"] == "r\\xe9sum\\xe9.csv", f
assert f["target_path"] == f["path"], f
assert f["target_path_bytes"] == f["path_bytes"], f
for r in rows:
    if r is not f:
        assert "path_bytes" not in r and "target_path_bytes" not in r, r'
}
relay list --json | check_names || fail "list --json: $(relay list --json)"
relay --json show "$latin1" | check_names ||
    fail "show --json: $(relay --json show "$latin1")"
ok "--json: a name that is not UTF-8 as U+FFFD and as escaped bytes"
stop_agent

# --once: deliver what is pending and exit 0; exit 1 when the target is down.
echo "once" >"$T/src/once.txt"
"$SFTPRELAYD" -c "$T/relay.conf" --once >>"$T/agent-once.log" 2>&1 ||
    fail "--once exited $?"
is_delivered once.txt || fail "--once did not deliver once.txt"
stop_target
echo "twice" >"$T/src/twice.txt"
rc=0
"$SFTPRELAYD" -c "$T/relay.conf" --once >>"$T/agent-once.log" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "--once with the target down exited $rc, expected 1"
[ "$(state_of twice.txt)" = queued ] || fail "twice.txt not left queued"
ok "--once exits 0 when all is delivered, 1 when the target is down"

# --daemon with a pidfile; SIGTERM removes it.
start_sshd "$TARGET_PORT"
"$SFTPRELAYD" -c "$T/relay.conf" --daemon --pidfile "$T/agent.pid" ||
    fail "--daemon exited $?"
wait_for 10 test -s "$T/agent.pid" || fail "no pidfile"
dpid=$(cat "$T/agent.pid")
PIDS+=("$dpid")
alive "$dpid" || fail "daemon $dpid not running"
wait_for 30 is_delivered twice.txt || fail "daemon did not deliver twice.txt"
kill -HUP "$dpid"
# A file written after the SIGHUP is delivered: the daemon took the signal
# and carried on.
echo "after SIGHUP" >"$T/src/after-hup.txt"
wait_for 30 is_delivered after-hup.txt || fail "nothing delivered after SIGHUP"
same_file "$T/src/after-hup.txt" "$T/dst/after-hup.txt" || fail "after-hup.txt differs"
alive "$dpid" || fail "daemon died on SIGHUP"
kill "$dpid"
gone() { ! alive "$dpid"; }
wait_for 10 gone || fail "daemon still running 10 s after SIGTERM"
[ ! -e "$T/agent.pid" ] || fail "pidfile left behind"
ok "--daemon writes its pidfile, survives SIGHUP, stops on SIGTERM"

echo "$TESTS_RUN passed, 0 failed"
