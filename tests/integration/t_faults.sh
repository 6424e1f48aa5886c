#!/usr/bin/env bash
# The agent against a target that misbehaves on purpose (sftprelay serve
# --fault-file): "no space" and "permission denied" are retried with
# backoff and shown in status, then delivered once the fault clears; a
# connection dropped in the middle of a large file resumes from the
# checkpoint; a stalled server times out and is tried again.
. "$(dirname "$0")/lib.sh"

: >"$T/fault"
start_serve 0 --fault-file "$T/fault"
WORKERS=1 CHUNK=1048576 BACKOFF_MAX=2 write_conf
start_agent

attempts_of() {
    relay --json show "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["attempts"])'
}

for fault in "ENOSPC:no space left on the target" "EACCES:Permission denied"; do
    code=${fault%%:*} text=${fault#*:}
    echo "write_error $code" >"$T/fault"
    f=fault-$code.txt
    echo "payload for $code" >"$T/src/$f"
    shows() { relay status | grep -q "$text"; }
    wait_for 20 shows || fail "$code: status does not show '$text': $(relay status)"
    [ "$(state_of "$f")" = queued ] || fail "$code: not queued for a retry"
    a1=$(attempts_of "$f")
    sleep 3
    a2=$(attempts_of "$f")
    [ "$a2" -gt "$a1" ] || fail "$code: not retried ($a1 then $a2 attempts)"
    [ "$a2" -le $((a1 + 4)) ] || fail "$code: $a1 then $a2 attempts in 3 s: no backoff"
    : >"$T/fault"
    wait_for 30 is_delivered "$f" || fail "$code: not delivered once the fault cleared"
    same_file "$T/src/$f" "$T/dst/$f" || fail "$code: differs"
    ok "$code: retried with backoff, shown in status ('$text'), delivered once cleared"
done

# A dropped connection in the middle of a large file.
size=$((160 * 1024 * 1024))
head -c "$size" /dev/urandom >"$T/staging.bin"
echo "drop_after_bytes $((48 * 1024 * 1024))" >"$T/fault"
: >"$T/serve.log.mark"
lines=$(wc -l <"$T/serve.log")
mv "$T/staging.bin" "$T/src/big.bin"
dropped() { grep -q 'fault injection: dropping the connection' "$T/serve.log"; }
wait_for 60 dropped || fail "the connection was not dropped"
target_err() { relay status | grep -q '^target:      unreachable'; }
wait_for 20 target_err || fail "status does not show the target error: $(relay status)"
checkpoint=$(checkpoint_of big.bin)
[ "$checkpoint" -gt 0 ] || fail "no checkpoint before the drop"
: >"$T/fault"
wait_for 120 is_delivered big.bin || fail "not delivered after the drop"
same_file "$T/src/big.bin" "$T/dst/big.bin" || fail "big.bin differs after the resume"
written=$(tail -n +$((lines + 1)) "$T/serve.log" |
    sed -n 's/.*uploaded \.big\.bin\.sftprelay-tmp ([0-9]* bytes, \([0-9]*\) written in this session).*/\1/p' |
    tail -n 1)
[ -n "$written" ] || fail "the server did not log the final session's upload"
[ "$written" -lt "$size" ] || fail "the last session wrote $written bytes: started over"
grep -q 'delivered big.bin .*resumed' "$T/agent.log" || fail "the agent did not resume"
ok "dropped at $checkpoint bytes: resumed, the last session wrote $written of $size bytes"

# A server that stalls longer than target.timeout.
stop_agent
sed -i 's/timeout = 10;/timeout = 1;/' "$T/relay.conf"
echo "stall_ms 2500" >"$T/fault"
echo "stalled" >"$T/src/stall.txt"
start_agent agent2
timed_out() { grep -q 'Connection timed out\|timed out' "$T/agent2.log"; }
wait_for 30 timed_out || fail "no timeout reported with a stalled server"
: >"$T/fault"
wait_for 60 is_delivered stall.txt || fail "not delivered once the stall cleared"
ok "a stalled server times out and is tried again"

stop_agent
echo "$TESTS_RUN passed, 0 failed"
