#!/usr/bin/env bash
# kill -9 in the middle of a large file: after a restart the upload resumes
# from the checkpoint (the target receives fewer bytes than the file holds)
# and the result is byte-identical.
. "$(dirname "$0")/lib.sh"

WORKERS=1 CHUNK=1048576 SFTP_LOG=1
start_sshd
write_conf
size=$((256 * 1024 * 1024))
head -c "$size" /dev/urandom >"$T/src/big.bin"
start_agent agent1

wait_for 60 checkpoint_past big.bin $((8 * 1048576)) ||
    fail "no checkpoint recorded"
kill -9 "$AGENT_PID"
wait "$AGENT_PID" 2>/dev/null || true
checkpoint=$(checkpoint_of big.bin)
[ "$checkpoint" -lt "$size" ] || fail "the whole file went before the kill"
[ "$(state_of big.bin)" = sending ] || fail "row not left 'sending'"
[ ! -e "$T/dst/big.bin" ] || fail "a partial file is at the final name"
ok "killed with $checkpoint of $size bytes checkpointed, no partial final file"

log_lines=$(wc -l <"$T/sftp-server.log")
start_agent agent2
wait_for 120 is_delivered big.bin || fail "not delivered after restart"
same_file "$T/src/big.bin" "$T/dst/big.bin" || fail "resumed file differs"
ok "delivered byte-identical after the restart"

# sftp-server logs every close with the bytes written through the handle.
written=$(tail -n +$((log_lines + 1)) "$T/sftp-server.log" |
    sed -n 's/.*close "[^"]*\.big\.bin\.sftprelay-tmp" bytes read [0-9]* written \([0-9]*\).*/\1/p' |
    awk '{ s += $1 } END { print s + 0 }')
[ "$written" -gt 0 ] || fail "no close of the temporary file logged by sshd"
[ "$written" -lt "$size" ] || fail "restart sent $written bytes: started over"
[ "$written" -le $((size - checkpoint)) ] ||
    fail "restart sent $written bytes, more than the $((size - checkpoint)) left"
ok "after the restart the target received $written bytes, not $size"
grep -q 'delivered big.bin .*resumed' "$T/agent2.log" ||
    fail "agent did not say it resumed"
ok "the agent reports the resume"
# The digest went on from the journal's state: at most one chunk of the
# bytes already sent was read again from the source.
reread=$(sed -n 's/.*big\.bin: resuming at byte [0-9]* of [0-9]* ([^)]*), \([0-9]*\) of them read again.*/\1/p' "$T/agent2.log")
[ -n "$reread" ] || fail "the agent did not say where it resumed"
[ "$reread" -le 1048576 ] ||
    fail "resuming read $reread bytes again for the digest, more than a chunk"
ok "resuming read $reread bytes again for the digest (at most one chunk)"

stop_agent

# SIGTERM in the middle of a file: exit 0 within seconds, checkpoint kept.
head -c "$size" /dev/urandom >"$T/src/big2.bin"
start_agent agent3
wait_for 60 checkpoint_past big2.bin $((4 * 1048576)) ||
    fail "big2.bin: no checkpoint recorded"
stop_agent_quickly
ms=$STOP_MS
[ "$(state_of big2.bin)" = queued ] || fail "big2.bin not queued after SIGTERM"
[ "$(checkpoint_of big2.bin)" -gt 0 ] || fail "big2.bin lost its checkpoint"
ok "SIGTERM mid-file: exit 0 in $ms ms, row queued at offset $(checkpoint_of big2.bin)"
start_agent agent4
wait_for 120 is_delivered big2.bin || fail "big2.bin not delivered after SIGTERM"
same_file "$T/src/big2.bin" "$T/dst/big2.bin" || fail "big2.bin differs"
grep -q 'delivered big2.bin .*resumed' "$T/agent4.log" || fail "big2.bin did not resume"
ok "and resumes after the restart"
stop_agent
echo "$TESTS_RUN passed, 0 failed"
