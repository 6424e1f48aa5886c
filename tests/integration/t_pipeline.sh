#!/usr/bin/env bash
# The pipelined SFTP client: against the embedded server (sftprelay serve
# --fault-file), a server without limits@openssh.com gets 32 KiB writes; a
# write refused midway leaves nothing under the final name, says why, and
# the file is delivered once the fault clears; verify = "sha256" delivers;
# transfer.bandwidth_limit holds the rate down.  Against sshd, kill -9 in
# the middle of a large upload resumes from the checkpoint after a restart.
. "$(dirname "$0")/lib.sh"

MiB=1048576

# The journal's column COL of PATH.
column_of() {
    sqlite3 -readonly "$T/state/journal.db" \
        "SELECT $2 FROM files WHERE path = '$1'" 2>/dev/null
}

# Lines of $T/serve.log about refused large writes.
refusals() {
    grep -c 'fault injection: a write of [0-9]* bytes refused' "$T/serve.log" || true
}

: >"$T/fault"
start_serve 0 --fault-file "$T/fault"
WORKERS=1 write_conf

# (a) A server that takes writes of 32 KiB at most.  While it offers
# limits@openssh.com (saying it takes more), larger writes reach it and
# fail: the check has teeth.  Without the extension the client must keep
# to 32 KiB, and the file goes through.
echo "max_write 32768" >"$T/fault"
head -c $((5 * MiB)) /dev/urandom >"$T/src/nolimits.bin"
rc=0
run_once agent-a1 || rc=$?
[ "$rc" = 1 ] || fail "(a) writes over 32 KiB refused: --once exited $rc, expected 1"
[ "$(refusals)" -gt 0 ] || fail "(a) the server saw no write over 32 KiB"
[ ! -e "$T/dst/nolimits.bin" ] || fail "(a) a refused file is under its final name"
ok "(a) with limits@openssh.com offered, writes over 32 KiB reach the server (refused: not delivered)"
printf 'no_limits 1\nmax_write 32768\n' >"$T/fault"
before=$(refusals)
rc=0
run_once agent-a2 || rc=$?
[ "$rc" = 0 ] || fail "(a) no_limits: --once exited $rc"
is_delivered nolimits.bin || fail "(a) nolimits.bin is '$(state_of nolimits.bin)'"
same_file "$T/src/nolimits.bin" "$T/dst/nolimits.bin" || fail "(a) nolimits.bin differs"
[ "$(refusals)" = "$before" ] || fail "(a) writes over 32 KiB without limits@openssh.com"
grep -q 'SFTP writes of 32768 bytes' "$T/agent-a2.log" ||
    fail "(a) the agent does not say it writes 32768 bytes at a time"
ok "(a) without limits@openssh.com: 5 MiB delivered byte-identical in writes of 32 KiB at most"

# (b) Writes past 3 MiB refused (a quota reached midway).
printf 'write_error EACCES\nwrite_error_offset %d\n' $((3 * MiB)) >"$T/fault"
head -c $((6 * MiB)) /dev/urandom >"$T/src/midway.bin"
rc=0
run_once agent-b1 || rc=$?
[ "$rc" = 1 ] || fail "(b) write refused midway: --once exited $rc, expected 1"
[ ! -e "$T/dst/midway.bin" ] || fail "(b) a partial file is under its final name"
[ "$(state_of midway.bin)" = queued ] || fail "(b) midway.bin is '$(state_of midway.bin)', not queued"
err=$(column_of midway.bin last_error)
case $err in
*"Permission denied"*) ;;
*) fail "(b) the journal's error for midway.bin is '$err'" ;;
esac
cp_b=$(checkpoint_of midway.bin)
[ "${cp_b:-0}" -le $((3 * MiB)) ] ||
    fail "(b) checkpoint $cp_b is past the last byte the server took"
ok "(b) refused at 3 MiB: nothing under the final name, journal says '$err', checkpoint $cp_b"
: >"$T/fault"
rc=0
run_once agent-b2 || rc=$?
[ "$rc" = 0 ] || fail "(b) after the fault cleared: --once exited $rc"
is_delivered midway.bin || fail "(b) midway.bin is '$(state_of midway.bin)'"
same_file "$T/src/midway.bin" "$T/dst/midway.bin" || fail "(b) midway.bin differs"
if [ "${cp_b:-0}" -gt 0 ]; then
    grep -q 'delivered midway.bin .*resumed' "$T/agent-b2.log" ||
        fail "(b) checkpoint $cp_b kept, but the agent did not resume"
fi
ok "(b) once the fault cleared: delivered byte-identical"

# (d) verify = "sha256": read back and compared before the rename.
WORKERS=1 write_conf
conf_keys target 'verify = "sha256";'
head -c $((3 * MiB + 12345)) /dev/urandom >"$T/src/verified.bin"
rc=0
run_once agent-d || rc=$?
[ "$rc" = 0 ] || fail "(d) verify = sha256: --once exited $rc"
is_delivered verified.bin || fail "(d) verified.bin is '$(state_of verified.bin)'"
same_file "$T/src/verified.bin" "$T/dst/verified.bin" || fail "(d) verified.bin differs"
want=$(sha256sum <"$T/src/verified.bin" | cut -d' ' -f1)
[ "$(column_of verified.bin sha256)" = "$want" ] ||
    fail "(d) journal sha256 $(column_of verified.bin sha256), file $want"
ok "(d) verify = \"sha256\": delivered byte-identical, journal holds its SHA-256"

# (e) 8 MiB at 4 MiB/s cannot take less than about 2 s (a lower bound).
WORKERS=1 write_conf
conf_keys transfer "bandwidth_limit = $((4 * MiB));"
head -c $((8 * MiB)) /dev/urandom >"$T/src/limited.bin"
t0=$(date +%s%N)
rc=0
run_once agent-e || rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$rc" = 0 ] || fail "(e) bandwidth_limit: --once exited $rc"
is_delivered limited.bin || fail "(e) limited.bin is '$(state_of limited.bin)'"
same_file "$T/src/limited.bin" "$T/dst/limited.bin" || fail "(e) limited.bin differs"
[ "$ms" -ge 1500 ] || fail "(e) 8 MiB at 4 MiB/s delivered in $ms ms"
ok "(e) bandwidth_limit = 4 MiB/s: 8 MiB took $ms ms (>= 1500)"
stop_target

# (c) kill -9 in the middle of 200 MiB sent to sshd at 20 MB/s.
SFTP_LOG=1 start_sshd
WORKERS=1 write_conf
conf_keys transfer "bandwidth_limit = 20000000;"
size=$((200 * MiB))
head -c "$size" /dev/urandom >"$T/staging.bin"
mv "$T/staging.bin" "$T/src/big.bin"
start_agent agent-c1
checkpointed() {
    local o
    o=$(checkpoint_of big.bin)
    [ -n "$o" ] && [ "$o" -ge $((16 * MiB)) ]
}
wait_for 60 checkpointed || fail "(c) no checkpoint of 16 MiB recorded"
seen=$(checkpoint_of big.bin)
kill -9 "$AGENT_PID"
wait "$AGENT_PID" 2>/dev/null || true
cp_c=$(checkpoint_of big.bin)
[ "$cp_c" -ge "$seen" ] || fail "(c) checkpoint went back from $seen to $cp_c"
[ "$cp_c" -lt "$size" ] || fail "(c) the whole file went before the kill"
[ "$(state_of big.bin)" = sending ] || fail "(c) row is '$(state_of big.bin)', not sending"
[ ! -e "$T/dst/big.bin" ] || fail "(c) a partial file is under the final name"
ok "(c) killed with $cp_c of $size bytes checkpointed; nothing under the final name"
# sftp-server logs the killed session's handle when it sees the end.
killed_logged() { grep -q 'forced close "[^"]*big\.bin' "$T/sftp-server.log"; }
wait_for 20 killed_logged || fail "(c) sshd did not see the killed session end"
lines=$(wc -l <"$T/sftp-server.log")
rc=0
run_once agent-c2 || rc=$?
[ "$rc" = 0 ] || fail "(c) after the restart: --once exited $rc"
is_delivered big.bin || fail "(c) big.bin is '$(state_of big.bin)' after the restart"
same_file "$T/src/big.bin" "$T/dst/big.bin" || fail "(c) big.bin differs after the resume"
grep -q 'delivered big.bin .*resumed' "$T/agent-c2.log" || fail "(c) the agent did not say it resumed"
from=$(sed -n 's/.*sending big\.bin ([0-9]* bytes from \([0-9]*\)).*/\1/p' "$T/agent-c2.log" | head -n 1)
[ "${from:-0}" -ge "$cp_c" ] || fail "(c) restarted from ${from:-?}, below the checkpoint $cp_c"
written=$(tail -n +$((lines + 1)) "$T/sftp-server.log" |
    sed -n 's/.*close "[^"]*big\.bin[^"]*" bytes read [0-9]* written \([0-9]*\).*/\1/p' |
    awk '{ s += $1 } END { print s + 0 }')
[ "$written" -gt 0 ] || fail "(c) sshd logged no write to big.bin after the restart"
[ "$written" -le $((size - cp_c)) ] ||
    fail "(c) the restart wrote $written bytes, more than the $((size - cp_c)) past the checkpoint"
ok "(c) resumed from $from (checkpoint $cp_c): $written bytes re-sent, byte-identical"

stop_target
echo "$TESTS_RUN passed, 0 failed"
