#!/usr/bin/env bash
# The target is down when the agent starts: files wait in the journal, the
# error shows in status, and everything is delivered once the target is up.
. "$(dirname "$0")/lib.sh"

make_keys
TARGET_PORT=$(free_port)
echo "[127.0.0.1]:$TARGET_PORT $(cut -d' ' -f1,2 "$T/keys/host_ed25519.pub")" \
    >"$T/known_hosts"
BACKOFF_MAX=2 write_conf
mkdir -p "$T/src/a/b/c"
for n in 1 2 3; do
    echo "file $n" >"$T/src/a/b/c/file_$n.txt"
done
start_agent

target_down() {
    relay status | grep -q '^target:      unreachable'
}
wait_for 20 target_down || fail "status does not show the target down"
relay status | grep -q 'Connection refused' ||
    fail "status does not say why: $(relay status)"
[ "$(state_of a/b/c/file_1.txt)" = queued ] || fail "file not queued"
ok "target down: files queued, status shows 'Connection refused'"

# No busy loop while it is down: it keeps trying, and its first four tries
# (backoff 0.5-1 s, then 1-2 s) span more than a second by the log's clock.
tries() { grep 'connect: Connection refused' "$T/agent.log" || true; }
four_tries() { [ "$(tries | wc -l)" -ge 4 ]; }
wait_for 20 four_tries || fail "fewer than 4 connection attempts in 20 s: not retrying"
span=$(tries | head -n 4 | python3 -c '
import sys, datetime as d
t = [d.datetime.strptime(l.split()[0], "%Y-%m-%dT%H:%M:%S.%fZ") for l in sys.stdin]
print(round((t[-1] - t[0]).total_seconds() * 1000))')
[ "$span" -ge 1000 ] || fail "4 connection attempts in $span ms: not backing off"
ok "backs off while the target is down (4 tries in $span ms)"

start_sshd "$TARGET_PORT"
for n in 1 2 3; do
    f=a/b/c/file_$n.txt
    wait_for 30 is_delivered "$f" || fail "$f not delivered after the target came up"
    same_file "$T/src/$f" "$T/dst/$f" || fail "$f differs"
done
ok "all delivered once the target is up"
relay status | grep -q '^target:      ok$' || fail "status still shows the target down"
ok "status shows the target ok again"

stop_agent
echo "$TESTS_RUN passed, 0 failed"
