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

# "attempts|next_attempt|attempted_at" of PATH while it waits in the queue
# ("" while it is being sent).
queued_row() {
    sqlite3 -readonly "$T/state/journal.db" "SELECT attempts, next_attempt,
        attempted_at FROM files WHERE path = '$1' AND state = 'queued'" 2>/dev/null
}

for fault in "ENOSPC:no space left on the target" "EACCES:Permission denied"; do
    code=${fault%%:*} text=${fault#*:}
    echo "write_error $code" >"$T/fault"
    f=fault-$code.txt
    echo "payload for $code" >"$T/src/$f"
    shows() { relay status | grep -q "$text"; }
    wait_for 20 shows || fail "$code: status does not show '$text': $(relay status)"
    [ "$(state_of "$f")" = queued ] || fail "$code: not queued for a retry"
    IFS='|' read -r a1 n1 t1 <<<"$(queued_row "$f")"
    [ "${a1:-0}" -ge 1 ] || fail "$code: no attempt counted: $(relay show "$f")"
    [ "$n1" -ge $((t1 + 1)) ] ||
        fail "$code: tried at $t1, next try at $n1: no backoff"
    retried() {
        local a
        IFS='|' read -r a _ _ <<<"$(queued_row "$f")"
        [ "${a:-0}" -gt "$a1" ]
    }
    wait_for 20 retried || fail "$code: not retried: $(relay show "$f")"
    IFS='|' read -r a2 n2 t2 <<<"$(queued_row "$f")"
    [ "$t2" -ge "$n1" ] || fail "$code: retried at $t2, before its time $n1"
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
