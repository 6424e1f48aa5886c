#!/usr/bin/env bash
# How journal-v1.sql and journal-v2.sql were made: a real sftprelayd (the
# release that writes that schema) replicates to a local target, then
#   - three files are delivered, one of them twice (version 2);
#   - one fails for good (a plain file where the target needs a folder);
#   - [v2] a client of the embedded server vanishes half-way (a 'partial' row);
#   - one waits in the queue after the target went away (target_error);
#   - one is being sent, with a resume offset, when the agent is killed.
# The journal is then dumped as SQL text with its user_version.  Times,
# hashes and the temporary folder differ at each run; check_journal reads
# the checked-in dumps, this script is not run by the tests.  The scratch
# folder's name in error texts is replaced by /tmp/mkjournal.
#
#   tests/data/mkjournal.sh BUILDDIR VERSION >tests/data/journal-vVERSION.sql
#
# journal-v1.sql came from a build of b274947 (the last commit writing
# schema 1, before f19e2ae), unpacked with git archive; journal-v2.sql
# from the release that writes schema 2.
set -euo pipefail
B=$(cd "$1" && pwd)
V=$2
T=$(mktemp -d "${TMPDIR:-/tmp}/mkjournal.XXXXXX")
AGENT=
cleanup() {
    [ -z "$AGENT" ] || kill -9 "$AGENT" 2>/dev/null || true
    rm -rf "$T"
}
trap cleanup EXIT
J=$T/state/journal.db
q() { sqlite3 -readonly "$J" "$1" 2>/dev/null || true; }
wait_for() { # wait_for SECONDS COMMAND...
    local i
    for ((i = 0; i < $1 * 20; i++)); do
        if "${@:2}"; then return 0; fi
        sleep 0.05
    done
    echo "mkjournal: timed out: ${*:2}" >&2
    exit 1
}
conf() { # conf MAX_ATTEMPTS BACKOFF [EXTRA]
    cat >"$T/relay.conf" <<CONF
source = { path = "$T/src"; settle_ms = 100; rescan_interval = 0; };
target = { type = "local"; path = "$T/dst"; };
journal = { path = "$J"; };
transfer = { workers = 1; chunk_size = 32768; max_attempts = $1;
             backoff_initial = $2; backoff_max = $2; };
log = { level = "info"; };
${3:-}
CONF
}
agent() { # agent [ARGS]: in the background, sets AGENT
    "$B/sftprelayd" -c "$T/relay.conf" "$@" >>"$T/agent.log" 2>&1 &
    AGENT=$!
}
stop() {
    kill "$AGENT"
    wait "$AGENT" || true
    AGENT=
}
once() {
    "$B/sftprelayd" -c "$T/relay.conf" --once >>"$T/agent.log" 2>&1 || true
}

mkdir -p "$T/src/a/b/c" "$T/src/été" "$T/src/blocked" "$T/dst" "$T/keys"
echo "first file" >"$T/src/a/b/c/file_1.txt"
echo "données" >"$T/src/été/données.txt"
echo "id,value" >"$T/src/report.csv"

# Delivered; report.csv then changes and is delivered again (version 2).
conf 1 1
once
sleep 1.1
echo "1,2" >>"$T/src/report.csv"
once

# Failed for good: the target has a plain file where blocked/ must be.
echo "never" >"$T/src/blocked/x.txt"
echo "in the way" >"$T/dst/blocked"
once

# v2: an upload into the embedded server whose client vanishes half-way.
if [ "$V" -ge 2 ]; then
    ssh-keygen -q -t ed25519 -N '' -f "$T/keys/client"
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    conf 1 1 "server = { listen = \"127.0.0.1:$port\";
  host_keys = [ \"$T/keys/host\" ];
  users = ( { name = \"$(id -un)\"; authorized_keys = \"$T/keys/client.pub\"; } ); };"
    agent
    wait_for 10 test -f "$T/keys/host.pub"
    sleep 1
    echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$T/keys/host.pub")" >"$T/kh"
    head -c $((32 * 1024 * 1024)) /dev/zero >"$T/half.bin"
    echo "put $T/half.bin upload/half.bin" >"$T/batch"
    mkdir -p "$T/src/upload"
    setsid sftp -l 4000 -b "$T/batch" -i "$T/keys/client" \
        -o UserKnownHostsFile="$T/kh" -o BatchMode=yes -P "$port" \
        "$(id -un)@127.0.0.1" >/dev/null 2>&1 &
    client=$!
    grown() { [ "$(stat -c %s "$T/src/upload/half.bin" 2>/dev/null || echo 0)" -gt 1000000 ]; }
    wait_for 30 grown
    kill -9 "$client"
    wait "$client" || true
    wait_for 10 grep -q 'left upload/half.bin unfinished' "$T/agent.log"
    stop
fi

# Queued with an error: the target folder is gone; retried an hour later.
mv "$T/dst" "$T/dst.away"
echo "waiting" >"$T/src/later.txt"
conf 0 3600
agent
has_error() { [ -n "$(q "SELECT last_error FROM files WHERE path = 'later.txt'")" ]; }
wait_for 20 has_error
stop
mv "$T/dst.away" "$T/dst"

# Sending, with a resume offset, when the agent is killed.
head -c $((512 * 1024 * 1024)) /dev/zero >"$T/src/big.bin"
agent
sending() { [ "$(q "SELECT resume_offset > 0 FROM files WHERE path = 'big.bin' AND state = 'sending'")" = 1 ]; }
wait_for 60 sending
kill -9 "$AGENT"
wait "$AGENT" || true
AGENT=

echo "-- A journal written by sftprelayd (schema version $V), made by"
echo "-- tests/data/mkjournal.sh; read by tests/unit/check_journal.c."
sqlite3 "$J" .dump | sed "s|$T/|/tmp/mkjournal/|g"
echo "PRAGMA user_version=$V;"
