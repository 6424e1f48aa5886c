#!/usr/bin/env bash
# The LSB init script, for real: start, status, reload, stop with a
# pidfile, and the LSB exit codes; the daemon it starts delivers to a
# loopback SFTP target.
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

"$initd" reload >/dev/null || fail "reload with a valid configuration failed"
pid2=$(cat "$PIDFILE")
alive "$pid2" || fail "not running after reload"
cp "$CONFIG" "$T/good.conf"
echo 'source = { oops = 1; };' >>"$CONFIG"
rc=0; "$initd" reload >/dev/null 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "reload with a broken configuration: $rc, expected 1"
alive "$pid2" || fail "a broken configuration stopped the running agent"
cp "$T/good.conf" "$CONFIG"
ok "reload checks the configuration first: a broken one leaves the agent running"

"$initd" stop || fail "stop failed"
gone() { ! alive "$pid2"; }
wait_for 10 gone || fail "still running after stop"
[ ! -e "$PIDFILE" ] || fail "pidfile left behind"
rc=0; "$initd" status >/dev/null || rc=$?
[ "$rc" = 3 ] || fail "status after stop: $rc, expected 3"
"$initd" stop >/dev/null || fail "stopping a stopped daemon is not 0"
rc=0; "$initd" frobnicate >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "an unknown action: $rc, expected 2"
ok "stop (twice), status 3 when stopped, 2 for an unknown action"

echo "$TESTS_RUN passed, 0 failed"
