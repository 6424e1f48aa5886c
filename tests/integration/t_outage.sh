#!/usr/bin/env bash
# The target is down when the agent starts: files wait in the journal, the
# error shows in status, and everything is delivered once the target is up.
# Then an outage while it runs: it idles, and delivers at once on return.
. "$(dirname "$0")/lib.sh"
heavy

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

# An outage while the agent runs, with the default target.probe_interval
# (10 s): the target goes away for about 30 s while 50 files arrive.  The
# agent idles meanwhile, the file that met the outage does not count an
# attempt, and once the target is back every file is delivered within 15 s
# of its return (by the journal's delivered_at, in Unix seconds).

cpu_ticks() { # utime + stime of the agent, in clock ticks
    local stat
    read -r stat <"/proc/$AGENT_PID/stat"
    set -- ${stat##*) }
    echo $((${12} + ${13}))
}
probing() { grep -c 'probing it every 10 s at most$' "$T/agent.log" || true; }
saids=$(probing)
kill_target
mkdir -p "$T/src/out"
echo "met the outage" >"$T/src/out/f00.txt"
said_again() { [ "$(probing)" -gt "$saids" ]; }
wait_for 30 said_again || fail "the agent did not say it probes every 10 s"
t_down=$(date +%s.%N)
cpu0=$(cpu_ticks)
met() {
    relay --json show out/f00.txt | python3 -c '
import json, sys
f = json.load(sys.stdin)
assert f["state"] == "queued" and f["attempts"] == 0 and f["last_error"], f'
}
wait_for 10 met || fail "f00.txt after the target error: $(relay show out/f00.txt)"
ok "target lost: f00.txt queued with 0 attempts, 'probing it every 10 s at most'"

for i in $(seq -w 1 49); do
    echo "file $i, written while the target is down" >"$T/src/out/f$i.txt"
    sleep 0.5 # the outage: about 30 s while the files arrive
done
cpu1=$(cpu_ticks)
down_s=$(python3 -c "import time; print(round(time.time() - $t_down, 1))")
t_up=$(date +%s)
start_sshd "$TARGET_PORT"
hz=$(getconf CLK_TCK)
cpu_ms=$(((cpu1 - cpu0) * 1000 / hz))
[ "$cpu_ms" -lt 1000 ] ||
    fail "the agent used $cpu_ms ms of CPU in a $down_s s outage: a busy loop"
ok "the agent idled while the target was down: $cpu_ms ms of CPU in $down_s s"

delivered_out() {
    [ "$(sqlite3 -readonly "$T/state/journal.db" "SELECT count(*) FROM files
        WHERE path LIKE 'out/%' AND state = 'delivered'")" = 50 ]
}
wait_for 60 delivered_out || fail "not all 50 files delivered after the target returned"
last=$(sqlite3 -readonly "$T/state/journal.db" \
    "SELECT max(delivered_at) FROM files WHERE path LIKE 'out/%'")
lag=$((last - t_up))
[ "$lag" -le 15 ] ||
    fail "the last file was delivered $lag s after the target returned"
for i in $(seq -w 0 49); do
    same_file "$T/src/out/f$i.txt" "$T/dst/out/f$i.txt" || fail "out/f$i.txt differs"
done
a=$(relay --json show out/f00.txt |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["attempts"])')
[ "$a" = 1 ] || fail "f00.txt took $a attempts: the outage counted one"
ok "all 50 delivered $lag s after the target returned; f00.txt in 1 attempt"

stop_agent
echo "$TESTS_RUN passed, 0 failed"
