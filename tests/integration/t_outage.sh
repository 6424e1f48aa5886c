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

# No busy loop while it is down: few connection attempts in 3 seconds.
before=$(grep -c 'connect: Connection refused' "$T/agent.log" || true)
sleep 3
after=$(grep -c 'connect: Connection refused' "$T/agent.log" || true)
[ $((after - before)) -le 8 ] ||
    fail "$((after - before)) connection attempts in 3 s: not backing off"
ok "backs off while the target is down ($((after - before)) tries in 3 s)"

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
