# shellcheck shell=bash
# bench/intake.sh: "bench/run intake [N]" (sourced by bench/run, after
# tests/integration/lib.sh).  The agent, sftprelayd with BENCH_WORKERS
# workers, runs the whole time; for each target (the local sink, and
# OpenSSH's sshd on 127.0.0.1) three scenarios on N files of 0-1 KiB of
# random bytes in BENCH_INTAKE_FOLDERS folders (default 40):
#   moved-in  the tree, made outside source.path on the same file system,
#             is moved in with one mv while the agent runs (fresh journal)
#   backlog   the same tree is in source.path when the agent starts (fresh
#             journal)
#   rescan    the agent restarts on the backlog run's journal, all
#             delivered: its start-up scan is timed, and nothing may be
#             sent again
# Measured with bench/intake.py: files/s journaled and delivered, time to
# drain, peak RSS (VmHWM, read just before the agent is stopped), and the
# wall time of "sftprelay status --json" and of the Airflow sensor's poke,
# each polled at 20 Hz during the run.  Every copy is checked with diff -r.
#
# Every wait is bounded: a run ends with "timeout: X of N delivered after S
# s" after BENCH_INTAKE_STALL seconds without progress (default 60) or
# BENCH_INTAKE_TIMEOUT seconds in all (default 300 + N/100); the agent is
# then stopped by PID (SIGKILL if SIGTERM does not end it in 15 s).

INTAKE_PY=$BENCH_DIR/intake.py
STOP_WAIT=15
AGENT_PID=

# alive PID: the process exists and is not a zombie.
alive() {
    local st
    st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)
    [ -n "$st" ] && [ "$st" != Z ]
}

# intake_conf CONF TARGET SRC DST JOURNAL: the agent's configuration.
intake_conf() {
    local conf=$1 tgt=$2 src=$3 dst=$4 journal=$5 target
    if [ "$tgt" = local ]; then
        target="target = { type = \"local\"; path = \"$dst\"; };"
    else
        target="target = { host = \"127.0.0.1\"; port = $TARGET_PORT; user = \"$(id -un)\";
           identity = \"$T/keys/client_ed25519\";
           known_hosts = \"$T/known_hosts\"; path = \"$dst\"; timeout = 60; };"
    fi
    cat >"$conf" <<CONF
source = { path = "$src"; settle_ms = $SETTLE_MS; rescan_interval = 0; };
$target
journal = { path = "$journal"; };
transfer = { workers = $BENCH_WORKERS; chunk_size = 4194304; };
log = { level = "warn"; };
CONF
}

# forget_pid PID: a process already waited for, which cleanup must not signal.
forget_pid() {
    local p keep=()
    for p in "${PIDS[@]}"; do
        [ "$p" = "$1" ] || keep+=("$p")
    done
    PIDS=("${keep[@]}")
}

intake_start_agent() {
    "$SFTPRELAYD" -c "$1" >>"$2" 2>&1 &
    AGENT_PID=$!
    PIDS+=("$AGENT_PID")
}

# intake_stop_agent: SIGTERM, then SIGKILL after STOP_WAIT seconds (a
# deadlocked agent never reads its signalfd).  Sets AGENT_RC.
intake_stop_agent() {
    local pid=$AGENT_PID i
    AGENT_RC=0
    [ -n "$pid" ] || return 0
    AGENT_PID=
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < STOP_WAIT * 20; i++)); do
        alive "$pid" || break
        sleep 0.05
    done
    if alive "$pid"; then
        log "agent $pid still running ${STOP_WAIT} s after SIGTERM: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || AGENT_RC=$?
    forget_pid "$pid"
}

note() { python3 "$INTAKE_PY" note "$@"; }

# timeout_msg RES: the poller's "timeout: X of N delivered after S s ...".
timeout_msg() {
    python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["timeout_msg"])' "$1"
}

# usec: the time now in microseconds.
usec() { echo "${EPOCHREALTIME/./}"; }

# scan_watch PID T0 LIMIT: print the seconds from T0 (usec) until the agent
# runs more than two threads.  It starts its journal writer, scans
# source.path, then starts its workers, so that is the end of its start-up
# scan.  Polled every 5 ms; exits 3 after LIMIT seconds, 1 if the agent
# exits.
scan_watch() {
    local pid=$1 t0=$2 limit=$3 th now
    while :; do
        th=$(awk '/^Threads:/{print $2}' "/proc/$pid/status" 2>/dev/null || true)
        now=$(usec)
        if [ "${th:-0}" -gt 2 ]; then
            printf '%d.%06d\n' $(((now - t0) / 1000000)) $(((now - t0) % 1000000))
            return 0
        fi
        alive "$pid" || return 1
        [ $((now - t0)) -lt $((limit * 1000000)) ] || return 3
        sleep 0.005
    done
}

pollers_ready() { [ -e "$T/ready-poll" ] && [ -e "$T/ready-sensor" ]; }

# measure RES CONF JOURNAL AFTER ACTION...: start the status poller and
# the sensor poller (they take ~0.5 s to start), note the time T0, run
# ACTION in this shell, hand the pollers T0 and wait until N are delivered
# (and the file AFTER, unless "", is not empty) or the run times out
# (bounded by the poller; returns 3 then).
measure() {
    local res=$1 conf=$2 journal=$3 after=$4 ppid spid rc=0
    shift 4
    rm -f "$T/go" "$T/ready-poll" "$T/ready-sensor" "$T/sensor.stop"
    python3 "$INTAKE_PY" sensor --journal "$journal" --pattern 'batch/*' \
        --stop "$T/sensor.stop" --out "$res" --limit "$((TIMEOUT + 60))" \
        --ready "$T/ready-sensor" --go "$T/go" &
    spid=$!
    PIDS+=("$spid")
    python3 "$INTAKE_PY" poll --sftprelay "$SFTPRELAY" --conf "$conf" \
        --n "$N" --after "$after" --timeout "$TIMEOUT" --stall "$STALL" --out "$res" \
        --ready "$T/ready-poll" --go "$T/go" &
    ppid=$!
    PIDS+=("$ppid")
    wait_for 30 pollers_ready || fail "the pollers did not start"
    T0=$(usec)
    "$@"
    printf '%d.%06d\n' $((T0 / 1000000)) $((T0 % 1000000)) >"$T/go.tmp"
    mv "$T/go.tmp" "$T/go"
    wait "$ppid" || rc=$?
    forget_pid "$ppid"
    touch "$T/sensor.stop"
    wait "$spid" || true
    forget_pid "$spid"
    [ "$rc" = 0 ] || [ "$rc" = 3 ] || fail "bench/intake.py poll exited $rc"
    [ "$rc" = 0 ] || log "$(timeout_msg "$res")"
    return "$rc"
}

# finish RES SRC DST [TIMED_OUT]: peak RSS, stop the agent, check the copy.
finish() {
    local res=$1 src=$2 dst=$3 timed_out=${4:-0} hwm n
    hwm=$(awk '/^VmHWM:/{print $2}' "/proc/$AGENT_PID/status" 2>/dev/null || true)
    [ -n "$hwm" ] && note "$res" "vmhwm_kib=$hwm"
    intake_stop_agent
    note "$res" "agent_rc=$AGENT_RC"
    diff -rq "$src" "$dst" >"$T/diff.out" 2>&1 || true
    n=$(wc -l <"$T/diff.out")
    if [ "$n" = 0 ]; then
        note "$res" identical=true check=ok
    else
        note "$res" identical=false "check=diff: $n"
        log "FAIL: $dst is not a copy of $src: diff -rq lists $n files or folders that differ or are missing, e.g.:"
        head -n 5 "$T/diff.out" >&2
    fi
    [ "$timed_out" = 0 ] || note "$res" check=timeout
}

# moved_in TARGET: the agent watches an empty source.path; the tree is
# moved in with one rename.
moved_in() {
    local tgt=$1 name=moved-in-$1 src=$T/src-$1 dst=$T/dst-$1/moved-in
    local res=$T/res/moved-in-$1.json conf=$T/moved-in-$1.conf rc=0
    mkdir -p "$src" "$dst" "$T/state-$name"
    intake_conf "$conf" "$tgt" "$src" "$dst" "$T/state-$name/journal.db"
    note "$res" scenario=moved-in "target=$tgt" "n=$N"
    log "$name: agent on an empty $src"
    intake_start_agent "$conf" "$T/agent-$name.log"
    scan_watch "$AGENT_PID" "$(usec)" 30 >/dev/null ||
        fail "$name: the agent did not start"
    log "$name: mv of $N files into the watched folder"
    measure "$res" "$conf" "$T/state-$name/journal.db" "" \
        mv "$T/stage/batch" "$src/batch" || rc=$?
    finish "$res" "$src" "$dst" "$rc"
    rm -rf "$dst" # keep the disk for the next runs
}

# backlog TARGET: the tree is already in source.path when the agent starts.
backlog() {
    local tgt=$1 name=backlog-$1 src=$T/src-$1 dst=$T/dst-$1/backlog
    local res=$T/res/backlog-$1.json conf=$T/backlog-$1.conf rc=0
    mkdir -p "$dst" "$T/state-$name"
    intake_conf "$conf" "$tgt" "$src" "$dst" "$T/state-$name/journal.db"
    note "$res" scenario=backlog "target=$tgt" "n=$N"
    log "$name: agent started on $N files waiting in $src"
    measure "$res" "$conf" "$T/state-$name/journal.db" "" \
        intake_start_agent "$conf" "$T/agent-$name.log" || rc=$?
    finish "$res" "$src" "$dst" "$rc"
    return "$rc"
}

# start_and_watch_scan CONF LOG: start the agent, and scan_watch it in the
# background into $T/scan.out (sets SCAN_PID).  The status poller goes on
# until the scan is over, so its figures cover the scan.
start_and_watch_scan() {
    intake_start_agent "$1" "$2"
    scan_watch "$AGENT_PID" "$T0" "$TIMEOUT" >"$T/scan.out" &
    SCAN_PID=$!
    PIDS+=("$SCAN_PID")
}

# rescan TARGET: restart on the backlog run's journal, everything
# delivered, and time the start-up scan.  Nothing may be sent again: the
# journal's rows (state, version, attempts, delivered_at, sha256) and the
# target's files (inode, size, mtime; both sinks rename a new copy into
# place) must be unchanged.  BENCH_RESCAN_TOUCH=1 touches one source file
# first, to show the check failing.
rescan() {
    local tgt=$1 name=rescan-$1 src=$T/src-$1 dst=$T/dst-$1/backlog
    local res=$T/res/rescan-$1.json conf=$T/backlog-$1.conf
    local journal=$T/state-backlog-$1/journal.db rc=0 n hwm
    note "$res" scenario=rescan "target=$tgt" "n=$N"
    python3 "$INTAKE_PY" snapshot "$journal" "$dst" "$T/before"
    if [ -n "${BENCH_RESCAN_TOUCH:-}" ]; then
        log "$name: BENCH_RESCAN_TOUCH: touching batch/d00/f000000 (must be re-sent)"
        touch "$src/batch/d00/f000000"
    fi
    log "$name: agent restarted on its journal, $N files delivered"
    rm -f "$T/scan.out"
    measure "$res" "$conf" "$journal" "$T/scan.out" \
        start_and_watch_scan "$conf" "$T/agent-$name.log" || rc=$?
    wait "$SCAN_PID" || fail "$name: no end of the start-up scan"
    forget_pid "$SCAN_PID"
    note "$res" "scan_s=$(cat "$T/scan.out")"
    sleep 1 # anything a worker picked up meanwhile lands
    hwm=$(awk '/^VmHWM:/{print $2}' "/proc/$AGENT_PID/status" 2>/dev/null || true)
    [ -n "$hwm" ] && note "$res" "vmhwm_kib=$hwm"
    intake_stop_agent
    note "$res" "agent_rc=$AGENT_RC"
    python3 "$INTAKE_PY" snapshot "$journal" "$dst" "$T/after"
    n=$(diff "$T/before" "$T/after" | grep -c '^>' || true)
    if [ "$n" = 0 ] && [ "$rc" = 0 ]; then
        note "$res" not_resent=true check=ok
    else
        note "$res" not_resent=false "check=$n rows/files changed"
        log "FAIL: $name: $n journal rows or target files changed, e.g.:"
        diff "$T/before" "$T/after" | head -n 6 >&2
    fi
    rm -rf "$dst"
}

intake_main() {
    N=${1:-100000}
    FOLDERS=${BENCH_INTAKE_FOLDERS:-40}
    SETTLE_MS=${BENCH_SETTLE_MS:-200}
    STALL=${BENCH_INTAKE_STALL:-60}
    TIMEOUT=${BENCH_INTAKE_TIMEOUT:-$((300 + N / 100))}
    local targets=${BENCH_INTAKE_TARGETS:-local sftp} tgt rc=0
    if ! [[ "$N" =~ ^[1-9][0-9]*$ ]]; then
        echo "usage: bench/run intake [N]" >&2
        exit 2
    fi
    [ -x "$SFTPRELAYD" ] || fail "no $SFTPRELAYD; run ./scripts/build build"
    trap 'intake_stop_agent; cleanup' EXIT
    log "scratch folder $T; N=$N in $FOLDERS folders; targets: $targets"
    log "a run ends after ${STALL} s without progress or ${TIMEOUT} s in all"
    mkdir -p "$T/stage/batch" "$T/res"
    log "writing $N files of 0-1 KiB"
    python3 "$INTAKE_PY" tree "$T/stage/batch" "$N" "$FOLDERS"
    sync
    for tgt in $targets; do
        case $tgt in
        local) ;;
        sftp) [ -n "${TARGET_PORT:-}" ] || start_sshd "$(free_port)" ;;
        *) fail "BENCH_INTAKE_TARGETS: unknown target $tgt" ;;
        esac
        moved_in "$tgt"
        if backlog "$tgt"; then
            rescan "$tgt"
        else
            log "rescan-$tgt skipped: the backlog run did not drain"
        fi
        mv "$T/src-$tgt/batch" "$T/stage/batch" # outside again, for the next target
    done
    mkdir -p "$RESULTS"
    python3 "$INTAKE_PY" report "$T/res" "$RESULTS/intake-latest.json" "$N" || rc=$?
    [ "$rc" = 0 ] || [ "$rc" = 4 ] || fail "bench/intake.py report exited $rc"
    local f
    for f in "$T"/agent-*.log; do
        [ -s "$f" ] || continue
        log "$(basename "$f") (log level warn):"
        head -n 5 "$f" >&2
    done
    echo "bench/results/intake-latest.json written"
    [ "$rc" = 0 ] # a goal missed: exit 1
}
