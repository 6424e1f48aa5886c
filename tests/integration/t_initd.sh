#!/usr/bin/env bash
# The LSB init script, for real: start, status, reload (SIGHUP to the same
# process), restart, stop with a pidfile, and the LSB exit codes; the
# daemon it starts delivers to a loopback SFTP target.
. "$(dirname "$0")/lib.sh"

command -v start-stop-daemon >/dev/null || { echo "SKIP: no start-stop-daemon"; exit 77; }
initd=$(cd "$(dirname "$0")/../.." && pwd)/contrib/init.d/sftprelayd
start_serve # the loopback SFTP target
write_conf
export SFTPRELAYD CONFIG=$T/relay.conf PIDFILE=$T/sftprelayd.pid
cleanup_daemon() {
    [ -s "$PIDFILE" ] && kill "$(cat "$PIDFILE")" 2>/dev/null || true
}
trap 'cleanup_daemon; cleanup' EXIT

rc=0; "$initd" status >/dev/null || rc=$?
[ "$rc" = 3 ] || fail "status before start: $rc, expected 3"
"$initd" start || fail "start failed"
pid=$(cat "$PIDFILE")
alive "$pid" || fail "no daemon behind the pidfile"
"$initd" start >/dev/null || fail "a second start is not 0"
[ "$(cat "$PIDFILE")" = "$pid" ] || fail "a second start started another daemon"
"$initd" status >/dev/null || fail "status while running is not 0"
ok "start (twice), status 0 while running, pidfile $PIDFILE"

echo "through the init script" >"$T/src/f.txt"
wait_for 20 test -f "$T/dst/f.txt" || fail "the daemon did not deliver"
same_file "$T/src/f.txt" "$T/dst/f.txt" || fail "differs"
ok "the daemon it started delivers"

# reload is SIGHUP: the same process reads the configuration again and
# applies it (here a new exclude glob).
sed -i 's|settle_ms = [0-9]*;|& exclude = [ "*.skip" ];|' "$CONFIG"
grep -q '"\*\.skip"' "$CONFIG" || fail "the test could not edit $CONFIG"
# The agent records its pid in the journal each time it (re)starts its
# relay, after the old watcher is gone: once that stamp moves, whatever is
# written next is seen with the new configuration.
stamp() {
    sqlite3 -readonly "$T/state/journal.db" \
        "SELECT updated_at FROM agent WHERE key = 'pid'"
}
t0=$(stamp)
next_second() { [ "$(date +%s)" -gt "$t0" ]; }
wait_for 3 next_second
"$initd" reload >/dev/null || fail "reload with a valid configuration failed"
[ "$(cat "$PIDFILE")" = "$pid" ] || fail "reload changed the pid: it restarted"
alive "$pid" || fail "not running after reload"
restamped() { [ "$(stamp)" -gt "$t0" ]; }
wait_for 20 restamped || fail "the agent did not restart its relay after reload"
echo "excluded after reload" >"$T/src/x.skip"
echo "after reload" >"$T/src/g.txt"
wait_for 20 test -f "$T/dst/g.txt" || fail "nothing delivered after reload"
same_file "$T/src/g.txt" "$T/dst/g.txt" || fail "g.txt differs"
[ ! -e "$T/dst/x.skip" ] && [ -z "$(state_of x.skip)" ] ||
    fail "reload did not apply the new exclude glob"
ok "reload sends SIGHUP: same pid $pid, the new exclude glob applies"

cp "$CONFIG" "$T/good2.conf"
echo 'source = { oops = 1; };' >>"$CONFIG"
rc=0; "$initd" reload >/dev/null 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "reload with a broken configuration: $rc, expected 1"
alive "$pid" || fail "a broken configuration stopped the running agent"
[ "$(cat "$PIDFILE")" = "$pid" ] || fail "a broken configuration changed the pid"
cp "$T/good2.conf" "$CONFIG"
ok "reload checks the configuration first: a broken one leaves the agent running"

"$initd" restart >/dev/null || fail "restart failed"
pid2=$(cat "$PIDFILE")
alive "$pid2" || fail "not running after restart"
[ "$pid2" != "$pid" ] || fail "restart kept pid $pid: it did not restart"
gone1() { ! alive "$pid"; }
wait_for 10 gone1 || fail "the old daemon $pid still runs after restart"
"$initd" force-reload >/dev/null || fail "force-reload failed"
pid3=$(cat "$PIDFILE")
[ "$pid3" != "$pid2" ] && alive "$pid3" || fail "force-reload did not restart"
pid2=$pid3
ok "restart and force-reload start a new process"

"$initd" stop || fail "stop failed"
gone() { ! alive "$pid2"; }
wait_for 10 gone || fail "still running after stop"
[ ! -e "$PIDFILE" ] || fail "pidfile left behind"
rc=0; "$initd" status >/dev/null || rc=$?
[ "$rc" = 3 ] || fail "status after stop: $rc, expected 3"
"$initd" stop >/dev/null || fail "stopping a stopped daemon is not 0"
rc=0; "$initd" frobnicate >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "an unknown action: $rc, expected 2"
rc=0; "$initd" reload >/dev/null 2>&1 || rc=$?
[ "$rc" = 7 ] || fail "reload when stopped: $rc, expected 7"
ok "stop (twice), status 3 when stopped, 2 for an unknown action, reload 7"

echo "$TESTS_RUN passed, 0 failed"
