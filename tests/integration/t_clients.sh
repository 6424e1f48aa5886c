#!/usr/bin/env bash
# Another real client (paramiko, from Debian) against "sftprelay serve":
# every request it offers; a stalled and a hostile client beside a working
# one; idle sessions closed after idle_timeout.
. "$(dirname "$0")/lib.sh"

PY=/usr/bin/python3 # Debian's, which has python3-paramiko
"$PY" -c 'import paramiko' 2>/dev/null || fail "python3-paramiko is missing (scripts/deps)"

start_serve 0 --idle-timeout 3
"$PY" "$(dirname "$0")/paramiko_client.py" "$TARGET_PORT" \
    "$T/keys/client_ed25519" "$T/known_hosts" "$(id -un)" "$T/dst" \
    >"$T/paramiko.out" 2>&1 || fail "paramiko: $(cat "$T/paramiko.out")"
grep '^ok ' "$T/paramiko.out"
TESTS_RUN=$(grep -c '^ok ' "$T/paramiko.out")
alive "$TARGET_PID" || fail "the server died"

# An idle session is closed after idle_timeout.
hold_session
closed() { grep -q 'idle for 3 s; disconnecting' "$T/serve.log"; }
wait_for 15 closed || fail "an idle session was not closed"
release_session
ok "an idle session is closed after idle_timeout"

echo "$TESTS_RUN passed, 0 failed"
