# Shared helpers for the integration tests (sourced, bash).
#
# Each test gets a scratch folder and a real OpenSSH sshd on 127.0.0.1 on a
# free port, with its own host key, config and authorized_keys, serving
# internal-sftp (or, with SFTP_LOG=1, sftp-server logging every close with
# its byte counts); a client key; a known_hosts file made from the host key
# it generated; and an agent config.  Everything started is stopped by PID
# on exit.

set -euo pipefail

: "${abs_top_builddir:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
SFTPRELAYD=${SFTPRELAYD:-$abs_top_builddir/sftprelayd}
SFTPRELAY=${SFTPRELAY:-$abs_top_builddir/sftprelay}
SSHD=${SSHD:-/usr/sbin/sshd}

# A scratch folder, or the one given in DEMO_DIR (kept).
if [ -n "${DEMO_DIR:-}" ]; then
    T=$DEMO_DIR
    KEEP=1
    mkdir -p "$T"
else
    T=$(mktemp -d "${TMPDIR:-/tmp}/sftprelay-it.XXXXXX")
fi
PIDS=()
TESTS_RUN=0
# Debian's Python for the helpers below: a python3 earlier on PATH (a
# pyenv shim) can cost most of a second a start, and waits poll often.
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    # a test's own GnuPG home (make_gpg_key): its gpg-agent goes too
    if [ -d "$T/gnupg" ]; then
        gpgconf --homedir "$T/gnupg" --kill all 2>/dev/null || true
    fi
    if [ -z "${KEEP:-}" ]; then
        rm -rf "$T"
    fi
}
trap cleanup EXIT

# heavy: a long test (big bursts, long outages) runs once per
# ./scripts/test, in build/ (and the stress test in build-tsan/), not again
# under ASan or in distcheck, where scripts/test sets SFTPRELAY_SKIP_HEAVY.
heavy() {
    if [ -n "${SFTPRELAY_SKIP_HEAVY:-}" ]; then
        echo "SKIP: a heavy test, run once in build/ (SFTPRELAY_SKIP_HEAVY)"
        exit 77
    fi
}

fail() {
    echo "FAIL: $*" >&2
    for f in "$T"/agent*.log "$T"/sshd.log "$T"/sftp-server.log "$T"/serve.log; do
        [ -f "$f" ] || continue
        echo "---- $f (last 30 lines)" >&2
        tail -n 30 "$f" >&2
    done
    exit 1
}

ok() {
    TESTS_RUN=$((TESTS_RUN + 1))
    echo "ok $TESTS_RUN - $*"
}

# free_port [N]: a TCP port nobody listens on now (N distinct ones, one a
# line).
free_port() {
    "$PY" - "${1:-1}" <<'PY'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
    print(s.getsockname()[1])
PY
}

# wait_for SECONDS COMMAND...: poll until COMMAND succeeds.
wait_for() {
    local limit=$1 i
    shift
    for ((i = 0; i < limit * 20; i++)); do
        if "$@" 2>/dev/null; then
            return 0
        fi
        sleep 0.05
    done
    return 1
}

# alive PID: the process exists and is neither a zombie (Z) nor dead (X).
# kill -0 succeeds on a zombie, and in a container without an init that
# reaps, a stopped daemon stays one.  The state is the field after the
# command name, which is in parentheses and may itself hold ") ".
alive() {
    local stat
    [[ ${1:-} =~ ^[0-9]+$ ]] || return 1
    read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
    stat=${stat##*) }
    case ${stat%% *} in
    Z | X | "") return 1 ;;
    esac
}

port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Keys for the server and the client.
make_keys() {
    mkdir -p "$T/keys"
    ssh-keygen -q -t ed25519 -N '' -C sftprelay-test-host \
        -f "$T/keys/host_ed25519"
    ssh-keygen -q -t ed25519 -N '' -C sftprelay-test-client \
        -f "$T/keys/client_ed25519"
    cp "$T/keys/client_ed25519.pub" "$T/keys/authorized_keys"
    chmod 600 "$T/keys/authorized_keys"
}

# host_key TYPE: the path of the test's host key of TYPE (ed25519, ecdsa or
# rsa), made on first use.
host_key() {
    local f=$T/keys/host_$1
    case $1 in
    ed25519 | ecdsa | rsa) ;;
    *) fail "host_key: unknown key type '$1'" ;;
    esac
    [ -f "$T/keys/host_ed25519" ] || make_keys
    [ -f "$f" ] || ssh-keygen -q -t "$1" -N '' -C sftprelay-test-host -f "$f"
    echo "$f"
}

# start_sshd [-k TYPES] [PORT]: sshd serving SFTP on 127.0.0.1; sets
# TARGET_PORT and TARGET_PID, writes $T/known_hosts (as start_serve does)
# with a line for each host key.  TYPES is a comma-separated list of host
# key types, ed25519 (the default), ecdsa, rsa: the server has those keys
# and signs with nothing else (rsa: rsa-sha2-512 and rsa-sha2-256 only,
# never SHA-1).  SSHD_EXTRA holds more sshd_config lines.
start_sshd() {
    local types=ed25519 type key keys="" algs=""
    if [ "${1:-}" = -k ]; then
        types=$2
        shift 2
    fi
    [ -f "$T/keys/host_ed25519" ] || make_keys
    TARGET_PORT=${1:-$(free_port)}
    TARGET_PATH=$T/dst
    : >"$T/known_hosts"
    for type in ${types//,/ }; do
        key=$(host_key "$type")
        keys+="HostKey $key"$'\n'
        case $type in
        ed25519) algs+=,ssh-ed25519 ;;
        ecdsa) algs+=,ecdsa-sha2-nistp256 ;;
        rsa) algs+=,rsa-sha2-512,rsa-sha2-256 ;;
        esac
        echo "[127.0.0.1]:$TARGET_PORT $(cut -d' ' -f1,2 "$key.pub")" \
            >>"$T/known_hosts"
    done
    if [ "$(id -u)" = 0 ]; then
        mkdir -p /run/sshd
        chmod 755 /run/sshd
    fi
    # internal-sftp logs only to syslog; with SFTP_LOG=1 the same server
    # code runs as sftp-server, logging every close (with the bytes written
    # through the handle) to $T/sftp-server.log.
    # SFTP_SUBSYSTEM: another server program (a hostile one, say).
    local sftp="${SFTP_SUBSYSTEM:-internal-sftp}"
    if [ -n "${SFTP_LOG:-}" ]; then
        sftp="/usr/lib/openssh/sftp-server -e -l INFO 2>>$T/sftp-server.log"
    fi
    cat >"$T/sshd_config" <<CONF
Port $TARGET_PORT
ListenAddress 127.0.0.1
${keys}HostKeyAlgorithms ${algs#,}
PidFile none
AuthorizedKeysFile $T/keys/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
AllowUsers $(id -un)
Subsystem sftp $sftp
LogLevel INFO
MaxStartups 100
${SSHD_EXTRA:-}
CONF
    "$SSHD" -D -e -f "$T/sshd_config" >>"$T/sshd.log" 2>&1 &
    TARGET_PID=$!
    PIDS+=("$TARGET_PID")
    wait_for 10 port_open "$TARGET_PORT" || fail "sshd did not start on $TARGET_PORT"
}

# start_serve [PORT] [EXTRA ARGS]: "sftprelay serve" on 127.0.0.1 with
# root $T/dst, user $(id -un), the test's key and password ($T/password);
# sets TARGET_PORT and TARGET_PID, writes $T/known_hosts.
start_serve() {
    [ -f "$T/keys/host_ed25519" ] || make_keys
    mkdir -p "$T/dst"
    [ -f "$T/password" ] || echo "pw-$RANDOM-$RANDOM" >"$T/password"
    local port=${1:-0} out=$T/serve.out
    shift || true
    : >"$out"
    "$SFTPRELAY" serve --root "$T/dst" --listen "127.0.0.1:$port" \
        --user "$(id -un)" --authorized-keys "$T/keys/authorized_keys" \
        --password-file "$T/password" --host-key "$T/keys/serve_host" "$@" \
        >>"$out" 2>>"$T/serve.log" &
    TARGET_PID=$!
    PIDS+=("$TARGET_PID")
    listening() { grep -q '^listening on ' "$out"; }
    wait_for 10 listening || fail "sftprelay serve did not start: $(cat "$T/serve.log")"
    TARGET_PORT=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\),.*/\1/p' "$out")
    TARGET_PATH=/ # its root is $T/dst
    echo "[127.0.0.1]:$TARGET_PORT $(cut -d' ' -f1,2 "$T/keys/serve_host.pub")" \
        >"$T/known_hosts"
}

# descendants PID: every process below PID.
descendants() {
    local c
    for c in $(pgrep -P "$1" || true); do
        echo "$c"
        descendants "$c"
    done
}

# kill_target: the sshd listener and every session it forked (each
# worker's connection is a child of it, which would outlive the listener).
kill_target() {
    local all
    all="$TARGET_PID $(descendants "$TARGET_PID")"
    # shellcheck disable=SC2086
    kill $all 2>/dev/null || true
    wait "$TARGET_PID" 2>/dev/null || true
}

stop_target() {
    kill "$TARGET_PID" 2>/dev/null || true
    wait "$TARGET_PID" 2>/dev/null || true
}

# sftp_batch FILE [ARGS]: OpenSSH's sftp with the test key, in batch mode.
sftp_batch() {
    local batch=$1
    shift
    sftp -b "$batch" -i "$T/keys/client_ed25519" \
        -o UserKnownHostsFile="$T/known_hosts" -o BatchMode=yes \
        -P "$TARGET_PORT" "$@" "$(id -un)@127.0.0.1"
}

# write_conf [EXTRA]: agent config replicating $T/src to $T/dst over SFTP.
write_conf() {
    mkdir -p "$T/src" "$T/dst"
    cat >"$T/relay.conf" <<CONF
source = { path = "$T/src"; settle_ms = ${SETTLE_MS:-100}; };
target = { host = "127.0.0.1"; port = $TARGET_PORT; user = "$(id -un)";
           identity = "$T/keys/client_ed25519";
           known_hosts = "$T/known_hosts"; path = "${TARGET_PATH:-$T/dst}";
           timeout = 10; };
journal = { path = "$T/state/journal.db"; };
transfer = { workers = ${WORKERS:-2}; chunk_size = ${CHUNK:-1048576};
             backoff_initial = 1; backoff_max = ${BACKOFF_MAX:-2}; };
log = { level = "debug"; };
${1:-}
CONF
}

# start_agent [NAME]: sftprelayd in the background; sets AGENT_PID.
start_agent() {
    local name=${1:-agent}
    "$SFTPRELAYD" -c "$T/relay.conf" >>"$T/$name.log" 2>&1 &
    AGENT_PID=$!
    PIDS+=("$AGENT_PID")
}

# stop_agent: SIGTERM; the agent must exit 0 (a sanitizer report would not).
stop_agent() {
    local rc=0
    kill "$AGENT_PID" 2>/dev/null || true
    wait "$AGENT_PID" || rc=$?
    [ "$rc" = 0 ] || fail "sftprelayd exited $rc after SIGTERM"
}

# stop_agent_quickly: stop_agent, which must take under 5 s; STOP_MS is
# how long it took.
stop_agent_quickly() {
    local t0
    t0=$(date +%s%N)
    stop_agent
    STOP_MS=$((($(date +%s%N) - t0) / 1000000))
    [ "$STOP_MS" -lt 5000 ] || fail "SIGTERM took $STOP_MS ms"
}

# checkpoint_past PATH BYTES: the journal holds a checkpoint of PATH at
# BYTES or more.
checkpoint_past() {
    local o
    o=$(checkpoint_of "$1")
    [ -n "$o" ] && [ "$o" -ge "$2" ]
}

# The resume offset the journal holds for PATH ("" if no row yet).
checkpoint_of() {
    sqlite3 -readonly "$T/state/journal.db" \
        "SELECT resume_offset FROM files WHERE path = '$1'" 2>/dev/null
}

# hold_session / release_session: an SFTP session that logs in and then
# stays idle (sftp reading its batch from a fifo kept open); sets HOLDER.
hold_session() {
    rm -f "$T/hold"
    mkfifo "$T/hold"
    sftp_batch "$T/hold" >/dev/null 2>&1 &
    HOLDER=$!
    PIDS+=("$HOLDER")
    exec 7>"$T/hold"
}

release_session() {
    exec 7>&-
    wait "$HOLDER" 2>/dev/null || true
}

relay() {
    "$SFTPRELAY" -c "$T/relay.conf" "$@"
}

# The state of PATH in the journal ("" if none).
state_of() {
    relay --json show "$1" 2>/dev/null |
        "$PY" -c 'import json,sys; print(json.load(sys.stdin)["state"])' \
            2>/dev/null || true
}

is_delivered() {
    [ "$(state_of "$1")" = delivered ]
}

# same_file SRC DST: byte-identical.
same_file() {
    cmp -s "$1" "$2"
}

# conf_keys SECTION TEXT: add TEXT ("key = value; ...") to SECTION
# (target or transfer) of the config write_conf wrote.
conf_keys() {
    local anchor
    case $1 in
    target) anchor='timeout = [0-9]*;' ;;
    transfer) anchor='backoff_max = [0-9]*;' ;;
    *) fail "conf_keys: unknown section '$1'" ;;
    esac
    sed -i "s|$anchor|& $2|" "$T/relay.conf"
    grep -qF "$2" "$T/relay.conf" || fail "conf_keys: $1 not rewritten"
}

# make_gpg_key: a throwaway key pair for test@example.invalid in
# $T/gnupg (no passphrase), for exec transforms that encrypt.
make_gpg_key() {
    mkdir -m 700 "$T/gnupg"
    gpg --homedir "$T/gnupg" --batch --passphrase '' --quick-gen-key \
        'sftprelay test <test@example.invalid>' future-default default never \
        >"$T/gpg-keygen.log" 2>&1 || fail "gpg could not make a key"
}

# run_once NAME: sftprelayd --once, its output to $T/NAME.log; returns its
# exit status.
run_once() {
    "$SFTPRELAYD" -c "$T/relay.conf" --once >>"$T/$1.log" 2>&1
}

# status_says TEXT: TEXT is in "sftprelay status" (what the journal holds).
status_says() {
    local status
    status=$(relay status 2>/dev/null || true)
    grep -qF -- "$1" <<<"$status"
}
