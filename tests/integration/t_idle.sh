#!/usr/bin/env bash
# A connection the server closed while it was idle is not the next file's
# problem: the agent notices before using it, connects again, and the file
# goes on its first attempt, with no "target" warning.
. "$(dirname "$0")/lib.sh"

start_serve 0 --idle-timeout 1
WORKERS=1 write_conf
conf_keys target 'keepalive = 0;'
start_agent
echo one >"$T/src/one.txt"
wait_for 20 is_delivered one.txt || fail "one.txt not delivered"
dropped() { grep -q "idle for 1 s; disconnecting" "$T/serve.log"; }
wait_for 20 dropped || fail "the server did not drop the idle session"
echo two >"$T/src/two.txt"
wait_for 20 is_delivered two.txt || fail "two.txt not delivered"
same_file "$T/src/two.txt" "$T/dst/two.txt" || fail "two.txt differs"
relay --json show two.txt | python3 -c '
import json, sys
f = json.load(sys.stdin)
assert f["attempts"] == 1 and not f.get("last_error"), f' ||
    fail "two.txt: $(relay show two.txt)"
grep -q "warn: .*target" "$T/agent.log" && fail "a target warning: $(grep warn "$T/agent.log")"
grep -q "server closed the idle connection" "$T/agent.log" ||
    fail "the agent did not say it connected again"
ok "a session closed while idle is replaced before the next file; first attempt, no warning"
stop_agent
echo "$TESTS_RUN passed, 0 failed"
