#!/usr/bin/env bash
# SIGTERM stops the agent within 5 s whatever it is doing, exits 0 and
# leaves a consistent journal: (a) a deep queue, (b) in the middle of the
# start-up scan of a big tree, (c) while the target is down (refusing, or
# accepting and never answering), (d) in the middle of a big file (its
# checkpoint kept).  No row is lost, and no row is left 'sending': what was
# being sent is queued again.
. "$(dirname "$0")/lib.sh"
heavy

# local_conf NAME: a configuration in $T/NAME sending to a local folder.
local_conf() {
    local d=$T/$1
    mkdir -p "$d/src" "$d/dst"
    cat >"$d/relay.conf" <<CONF
source = { path = "$d/src"; settle_ms = 100; };
target = { type = "local"; path = "$d/dst"; };
journal = { path = "$d/journal.db"; };
transfer = { workers = 4; backoff_initial = 1; backoff_max = 2; };
log = { level = "debug"; };
CONF
}

# run_agent NAME [LOG]: sftprelayd with $T/NAME/relay.conf; sets AGENT_PID.
run_agent() {
    "$SFTPRELAYD" -c "$T/$1/relay.conf" >>"$T/agent-${2:-$1}.log" 2>&1 &
    AGENT_PID=$!
    PIDS+=("$AGENT_PID")
}

# sql NAME QUERY: on $T/NAME/journal.db.
sql() {
    sqlite3 -readonly "$T/$1/journal.db" "$2" 2>/dev/null
}

# term: SIGTERM; the agent must be gone within 5 s and exit 0.  Sets MS.
term() {
    local t0 rc=0
    t0=$(date +%s%N)
    kill -TERM "$AGENT_PID"
    gone() { ! alive "$AGENT_PID"; }
    wait_for 10 gone || fail "still running 10 s after SIGTERM"
    MS=$((($(date +%s%N) - t0) / 1000000))
    wait "$AGENT_PID" || rc=$?
    [ "$rc" = 0 ] || fail "exit status $rc after SIGTERM"
    [ "$MS" -le 5000 ] || fail "SIGTERM took $MS ms"
}

# consistent NAME N: N rows, none left 'sending'.
consistent() {
    local n sending
    n=$(sql "$1" "SELECT count(*) FROM files")
    sending=$(sql "$1" "SELECT count(*) FROM files WHERE state = 'sending'")
    [ "$n" = "$2" ] || fail "$1: $n rows in the journal after SIGTERM, expected $2"
    [ "$sending" = 0 ] || fail "$1: $sending rows left 'sending' after SIGTERM"
}

# (a) A deep queue: 3,000 files, stopped with most of them still queued.
local_conf deep
python3 - "$T/deep/src" <<'PY'
import os, sys
for i in range(3000):
    with open(os.path.join(sys.argv[1], "f%04d" % i), "w") as f:
        f.write("file %d\n" % i)
PY
run_agent deep
deep() {
    [ "$(sql deep "SELECT count(*) FROM files")" = 3000 ] &&
        [ "$(sql deep "SELECT count(*) FROM files WHERE state = 'delivered'")" -ge 20 ]
}
wait_for 30 deep || fail "deep: the 3,000 files were not queued and being sent"
term
left=$(sql deep "SELECT count(*) FROM files WHERE state = 'queued'")
[ "$left" -ge 1000 ] || fail "deep: only $left files queued at the stop: not a deep queue"
consistent deep 3000
ok "(a) deep queue: gone in $MS ms, exit 0, 3000 rows ($left queued), none sending"
run_agent deep deep2
all_deep() {
    [ "$(sql deep "SELECT count(*) FROM files WHERE state = 'delivered'")" = 3000 ]
}
wait_for 60 all_deep || fail "deep: not all delivered after the restart"
for i in 0000 1234 2999; do
    same_file "$T/deep/src/f$i" "$T/deep/dst/f$i" || fail "deep: f$i differs"
done
term
ok "(a) and all 3000 delivered after the restart"

# (b) In the middle of the start-up scan of 50,000 files (empty, in 50
# folders; the target is a local folder).
local_conf scan
python3 - "$T/scan/src" <<'PY'
import os, sys
for d in range(50):
    p = os.path.join(sys.argv[1], "d%02d" % d)
    os.mkdir(p)
    for i in range(1000):
        open(os.path.join(p, "f%04d" % i), "w").close()
PY
run_agent scan
scanning() {
    local n
    n=$(sql scan "SELECT count(*) FROM files")
    [ -n "$n" ] && [ "$n" -ge 1000 ]
}
wait_for 30 scanning || fail "scan: nothing queued"
term
n=$(sql scan "SELECT count(*) FROM files")
[ "$n" -lt 50000 ] || fail "scan: the scan had finished ($n rows): not mid-scan"
consistent scan "$n"
ok "(b) mid-scan: gone in $MS ms, exit 0, $n of 50000 files queued, none sending"
run_agent scan scan2
scanned() { [ "$(sql scan "SELECT count(*) FROM files")" = 50000 ]; }
wait_for 60 scanned || fail "scan: the restart's scan did not queue all 50000"
term
consistent scan 50000
ok "(b) the next start's scan queues the other $((50000 - n)); stopped again in $MS ms"

# (c) The target is down: refusing connections, then accepting them and
# never answering (the probe hangs in the SSH handshake).
make_keys
TARGET_PORT=$(free_port)
echo "[127.0.0.1]:$TARGET_PORT $(cut -d' ' -f1,2 "$T/keys/host_ed25519.pub")" \
    >"$T/known_hosts"
write_conf
for i in 1 2 3; do echo "down $i" >"$T/src/down$i.txt"; done
start_agent agent-down
probing() { grep -q 'probing it every 10 s at most$' "$T/agent-down.log"; }
wait_for 20 probing || fail "down: the agent did not find the target down"
term
consistent state 3
ok "(c) target refusing: gone in $MS ms, exit 0, 3 rows, none sending"

python3 - "$TARGET_PORT" >"$T/silent.log" 2>&1 <<'PY' &
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(16)
held = []
while True:
    c, _ = s.accept()
    held.append(c)  # never a byte back
    print("accepted", flush=True)
PY
SILENT=$!
PIDS+=("$SILENT")
accepted() { grep -q accepted "$T/silent.log"; }
wait_for 10 port_open "$TARGET_PORT" || fail "the silent listener did not start"
# port_open's own connection is logged too: wait for it before the log is
# emptied, so that the next "accepted" is the agent's.
wait_for 10 accepted || fail "the silent listener did not log port_open's connection"
: >"$T/silent.log"
start_agent agent-silent
wait_for 20 accepted || fail "silent: the agent did not connect"
term
consistent state 3
ok "(c) target silent, connection hanging: gone in $MS ms, exit 0, none sending"
kill "$SILENT"
wait "$SILENT" 2>/dev/null || true

# (d) In the middle of a big file: the checkpoint stays in the journal.
start_sshd "$TARGET_PORT"
size=$((128 * 1024 * 1024))
head -c "$size" /dev/urandom >"$T/src/big.bin"
WORKERS=1 write_conf
start_agent agent-big
started() {
    local o
    o=$(checkpoint_of big.bin)
    [ -n "$o" ] && [ "$o" -ge $((4 * 1048576)) ]
}
wait_for 60 started || fail "big.bin: no checkpoint recorded"
term
cp=$(checkpoint_of big.bin)
[ "$cp" -gt 0 ] && [ "$cp" -lt "$size" ] || fail "big.bin: checkpoint $cp after SIGTERM"
[ "$(state_of big.bin)" = queued ] || fail "big.bin: $(state_of big.bin) after SIGTERM"
consistent state 4
ok "(d) mid-file: gone in $MS ms, exit 0, big.bin queued at offset $cp of $size"
start_agent agent-big2
wait_for 60 is_delivered big.bin || fail "big.bin not delivered after the restart"
same_file "$T/src/big.bin" "$T/dst/big.bin" || fail "big.bin differs"
grep -q 'delivered big.bin .*resumed' "$T/agent-big2.log" || fail "big.bin did not resume"
term
ok "(d) and resumed from it after the restart"

echo "$TESTS_RUN passed, 0 failed"
