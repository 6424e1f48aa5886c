#!/usr/bin/env bash
# SIGHUP: the agent reads its configuration again and restarts with it in
# the same process (a new exclude glob and a new target.path take effect);
# an invalid file is logged with its file, line and key, and the agent runs
# on with the configuration it had.
. "$(dirname "$0")/lib.sh"

start_sshd
write_conf
start_agent
pid=$AGENT_PID

echo "before the reload" >"$T/src/one.txt"
wait_for 20 is_delivered one.txt || fail "one.txt not delivered"
same_file "$T/src/one.txt" "$T/dst/one.txt" || fail "one.txt differs"
ok "delivers before the reload"

# The new configuration: *.skip excluded, and the files go to dst2.
mkdir -p "$T/dst2"
sed -i -e 's|settle_ms = [0-9]*;|& exclude = [ "*.skip" ];|' \
    -e "s|path = \"$T/dst\";|path = \"$T/dst2\";|" "$T/relay.conf"
grep -q '"\*\.skip"' "$T/relay.conf" && grep -q "\"$T/dst2\"" "$T/relay.conf" ||
    fail "the test could not edit $T/relay.conf"
watching() { grep -c '^.* watching ' "$T/agent.log" || true; }
[ "$(watching)" = 1 ] || fail "expected one 'watching' line, got $(watching)"
kill -HUP "$pid"
restarted() { [ "$(watching)" = 2 ]; }
wait_for 20 restarted || fail "no restart after SIGHUP"
grep -qF "SIGHUP: $T/relay.conf read again; restarting with it" "$T/agent.log" ||
    fail "the agent did not say it read the configuration again"
alive "$pid" || fail "the agent died on SIGHUP"
ok "SIGHUP: the configuration read again, the relay restarted in process $pid"

# An excluded name, then a later file: once the later one is delivered the
# agent has seen both (inotify reports in order; a scan offers both before
# any worker starts).
echo "excluded now" >"$T/src/x.skip"
echo "after the reload" >"$T/src/two.txt"
wait_for 20 is_delivered two.txt || fail "two.txt not delivered after SIGHUP"
same_file "$T/src/two.txt" "$T/dst2/two.txt" ||
    fail "two.txt is not in the new target.path"
[ ! -e "$T/dst/two.txt" ] || fail "two.txt went to the old target.path"
[ -z "$(state_of x.skip)" ] || fail "x.skip (excluded by the new glob) is in the journal"
[ ! -e "$T/dst/x.skip" ] && [ ! -e "$T/dst2/x.skip" ] || fail "x.skip was sent"
ok "the new settings apply: two.txt to the new target.path, x.skip excluded"

# An invalid file: logged with file, line and key; the agent runs on with
# the configuration it had.
cp "$T/relay.conf" "$T/good.conf"
sed -i 's/backoff_initial = 1;/backoff_initiel = 1;/' "$T/relay.conf"
line=$(grep -n 'backoff_initiel' "$T/relay.conf" | cut -d: -f1)
kill -HUP "$pid"
msg="SIGHUP: $T/relay.conf:$line: transfer.backoff_initiel: unknown key; keeping the configuration in use"
refused() { grep -qF "$msg" "$T/agent.log"; }
wait_for 20 refused || fail "no log line: $msg"
alive "$pid" || fail "an invalid configuration stopped the agent"
[ "$(watching)" = 2 ] || fail "an invalid configuration restarted the relay"
ok "an invalid configuration is logged (file:$line: key) and the agent runs on"
cp "$T/good.conf" "$T/relay.conf" # for sftprelay (the CLI) below

echo "still excluded" >"$T/src/y.skip"
echo "after the invalid file" >"$T/src/three.txt"
wait_for 20 is_delivered three.txt || fail "three.txt not delivered"
same_file "$T/src/three.txt" "$T/dst2/three.txt" || fail "three.txt not in dst2"
[ -z "$(state_of y.skip)" ] && [ ! -e "$T/dst2/y.skip" ] || fail "y.skip was sent"
ok "and still delivers with the configuration in use (dst2, *.skip excluded)"

# A SIGHUP in the middle of the start-up scan, with an invalid file: the
# agent keeps its configuration and still finds every file of the tree.
stop_agent
python3 - "$T/src" <<'PY'
import os, sys
for d in range(50):
    p = os.path.join(sys.argv[1], "many", "d%02d" % d)
    os.makedirs(p)
    for i in range(1000):
        open(os.path.join(p, "f%04d" % i), "w").close()
PY
start_agent agent2
pid=$AGENT_PID
started() { grep -q '^.* watching ' "$T/agent2.log"; }
wait_for 20 started || fail "agent2 did not start"
sed -i 's/backoff_initial = 1;/backoff_initiel = 1;/' "$T/relay.conf"
rows() {
    sqlite3 -readonly "$T/state/journal.db" \
        "SELECT count(*) FROM files WHERE path LIKE 'many/%'" 2>/dev/null
}
some() { [ "$(rows)" -ge 1000 ]; }
wait_for 20 some || fail "the scan queued nothing"
kill -HUP "$pid"
n=$(rows)
refused() { grep -qF "transfer.backoff_initiel: unknown key; keeping" "$T/agent2.log"; }
wait_for 20 refused || fail "agent2 did not refuse the invalid file"
cp "$T/good.conf" "$T/relay.conf"
[ "$n" -lt 50000 ] || fail "the scan was over ($n rows) before the SIGHUP"
all() { [ "$(rows)" = 50000 ]; }
wait_for 30 all || fail "$(rows) of 50000 files queued: the SIGHUP cut the scan"
alive "$pid" || fail "agent2 died"
ok "a refused SIGHUP mid-scan (at $n of 50000 files): the scan still finds them all"

stop_agent
echo "$TESTS_RUN passed, 0 failed"
