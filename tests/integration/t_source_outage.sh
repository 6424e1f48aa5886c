#!/usr/bin/env bash
# The SFTP source's host goes away mid-transfer: the file goes back to the
# queue with 0 attempts, status says the source is unreachable, the poller
# says so once, and the file is delivered once sshd is back.  Then kill -9
# of the agent mid big file from the source: the next run resumes from
# its checkpoint and the bytes are identical.
. "$(dirname "$0")/lib.sh"
heavy

start_sshd
PORT=$TARGET_PORT
mkdir -p "$T/remote/in" "$T/out"
cat >"$T/relay.conf" <<CONF
source = { type = "sftp"; path = "$T/remote"; host = "127.0.0.1";
           port = $PORT; user = "$(id -un)";
           identity = "$T/keys/client_ed25519";
           known_hosts = "$T/known_hosts"; timeout = 5;
           poll_interval = 1; stable_polls = 1; };
target = { type = "local"; path = "$T/out"; };
journal = { path = "$T/state/journal.db"; };
transfer = { workers = 1; chunk_size = 262144; bandwidth_limit = 1048576;
             backoff_initial = 1; backoff_max = 2; };
log = { level = "debug"; };
CONF
head -c 8388608 /dev/urandom >"$T/remote/in/big.bin"
start_agent

attempts_of() {
    relay --json show "$1" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["attempts"])'
}
under_way() { [ "$(checkpoint_of in/big.bin)" -gt 0 ] 2>/dev/null; }
wait_for 30 under_way || fail "big.bin never started"
kill_target
source_down() { status_says "source:      unreachable"; }
wait_for 30 source_down || fail "status does not show the source down: $(relay status)"
queued() { [ "$(state_of in/big.bin)" = queued ]; }
wait_for 10 queued || fail "big.bin not queued again: $(state_of in/big.bin)"
[ "$(attempts_of in/big.bin)" = 0 ] ||
    fail "the outage counted $(attempts_of in/big.bin) attempts"
ok "source lost mid-transfer: queued again with 0 attempts, status says so"

said() { grep -c 'source: listing .*trying again with backoff' "$T/agent.log" || true; }
wait_for 20 eval '[ "$(said)" -ge 1 ]' || fail "the poller did not say the source is down"
tries() { grep -c 'source probe: ' "$T/agent.log" || true; }
wait_for 20 eval '[ "$(tries)" -ge 2 ]' || fail "no worker probes the source"
[ "$(said)" = 1 ] || fail "the poller said it $(said) times"
ok "the poller says it once; a worker probes the source meanwhile"

start_sshd "$PORT"
wait_for 60 is_delivered in/big.bin || fail "big.bin not delivered after sshd came back"
same_file "$T/remote/in/big.bin" "$T/out/in/big.bin" || fail "big.bin differs"
[ "$(attempts_of in/big.bin)" = 1 ] ||
    fail "big.bin took $(attempts_of in/big.bin) attempts"
wait_for 10 eval '! source_down' || fail "status still shows the source down"
ok "delivered once the source is back, in 1 attempt; status ok again"

# kill -9 mid big file: the next run resumes.
head -c 12582912 /dev/urandom >"$T/remote/in/huge.bin"
far() { [ "$(checkpoint_of in/huge.bin)" -gt 2097152 ] 2>/dev/null; }
wait_for 60 far || fail "huge.bin never got past 2 MiB"
kill -9 "$AGENT_PID"
wait "$AGENT_PID" 2>/dev/null || true
at=$(checkpoint_of in/huge.bin)
start_agent agent2
wait_for 60 is_delivered in/huge.bin || fail "huge.bin not delivered after the restart"
same_file "$T/remote/in/huge.bin" "$T/out/in/huge.bin" || fail "huge.bin differs"
grep -qE "sending in/huge.bin \([0-9]+ bytes from [1-9][0-9]*\)" "$T/agent2.log" ||
    fail "the second run did not resume (checkpoint $at): $(grep 'sending in/huge' "$T/agent2.log")"
ok "kill -9 at $at bytes: the next run resumes, bytes identical"
stop_agent
echo "$TESTS_RUN passed, 0 failed"
