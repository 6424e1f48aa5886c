#!/usr/bin/env bash
# Host keys are verified: a changed or unknown key delivers nothing, and
# the error shows in status.
. "$(dirname "$0")/lib.sh"

start_sshd
ssh-keygen -q -t ed25519 -N '' -f "$T/keys/impostor"
good_known_hosts=$(cat "$T/known_hosts")
echo "[127.0.0.1]:$TARGET_PORT $(cut -d' ' -f1,2 "$T/keys/impostor.pub")" \
    >"$T/known_hosts"
write_conf
echo "secret payload" >"$T/src/file_1.txt"
start_agent

shows_changed() {
    relay status | grep -q 'host key CHANGED'
}
wait_for 20 shows_changed || fail "status does not show the changed key: $(relay status)"
relay status | grep -q 'SHA256:' || fail "status does not give the fingerprint"
[ -z "$(ls -A "$T/dst")" ] || fail "something reached the target: $(ls -A "$T/dst")"
[ "$(state_of file_1.txt)" = queued ] || fail "file not left queued"
ok "changed host key: nothing sent, status shows 'host key CHANGED'"
stop_agent

: >"$T/known_hosts"
start_agent agent2
shows_unknown() {
    relay status | grep -q 'is not in known_hosts'
}
wait_for 20 shows_unknown || fail "status does not show the unknown key: $(relay status)"
[ -z "$(ls -A "$T/dst")" ] || fail "something reached the target"
ok "unknown host key: nothing sent, status says it is not in known_hosts"

echo "$good_known_hosts" >"$T/known_hosts"
wait_for 30 is_delivered file_1.txt || fail "not delivered once known_hosts is right"
same_file "$T/src/file_1.txt" "$T/dst/file_1.txt" || fail "file differs"
ok "delivered once known_hosts holds the right key, without a restart"

stop_agent
echo "$TESTS_RUN passed, 0 failed"
