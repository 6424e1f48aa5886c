#!/usr/bin/env bash
# The Airflow pieces' Python tests (Debian's python3, stdlib unittest),
# against a journal the real agent writes here: delivered, failed and
# queued rows, names that are not UTF-8 among them, made with the local
# sink (no network).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
: "${abs_top_builddir:=$here/../../build}"
T=$(mktemp -d "${TMPDIR:-/tmp}/sftprelay-py.XXXXXX")
trap 'rm -rf "$T"' EXIT

mkdir -p "$T/src/a/b/c" "$T/src/blocked" "$T/dst"
for n in 1 2 3; do
    printf 'file %s of the brief\n' "$n" >"$T/src/a/b/c/file_$n.txt"
done
printf 'odd name\n' >"$T/src/bytes-$(printf '\xff').txt"
# A partner's Latin-1 names: one delivered, one failed, one left queued.
printf 'a;b\n' >"$T/src/r$(printf '\xe9')sum$(printf '\xe9').csv"
echo "cannot go: a file stands where its folder must" >"$T/src/blocked/x.txt"
echo "cannot go either" >"$T/src/blocked/x-$(printf '\xe9').txt"
echo "in the way" >"$T/dst/blocked"
cat >"$T/relay.conf" <<CONF
source = { path = "$T/src"; settle_ms = 0; };
target = { type = "local"; path = "$T/dst"; };
journal = { path = "$T/journal.db"; };
transfer = { max_attempts = 1; workers = 2; };
log = { level = "warn"; };
CONF
# Run 1: the brief's files are delivered, blocked/x.txt fails.
"$abs_top_builddir/sftprelayd" -c "$T/relay.conf" --once 2>>"$T/agent.log" || true
# Run 2: the target is gone; a new file stays queued.
mv "$T/dst" "$T/dst.away"
mkdir -p "$T/src/late" && echo "late" >"$T/src/late/new.txt"
echo "late too" >"$T/src/late/caf$(printf '\xe9').txt"
"$abs_top_builddir/sftprelayd" -c "$T/relay.conf" --once 2>>"$T/agent.log" || true
mv "$T/dst.away" "$T/dst"

total=0
for t in test_journal test_sensors; do
    JOURNAL=$T/journal.db SRC=$T/src SFTPRELAY=$abs_top_builddir/sftprelay \
        /usr/bin/python3 "$here/$t.py" \
        2>&1 | tee "$T/$t.out"
    grep -q '^OK' "$T/$t.out" || { cat "$T/agent.log"; exit 1; }
    total=$((total + $(sed -n 's/^Ran \([0-9]*\) tests.*/\1/p' "$T/$t.out")))
done
# The sensor tests once more against the real agent's status endpoint
# serving this journal (sftprelay_conn_id).  Its target is a folder that is
# not there: the agent holds every row as it is (the queued file waits for
# the target), so the same expectations hold.
AGENT_PID=
trap '[ -z "$AGENT_PID" ] || kill "$AGENT_PID" 2>/dev/null; rm -rf "$T"' EXIT
sport=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$T/token"
chmod 600 "$T/token"
sed "s|path = \"$T/dst\"|path = \"$T/dst.gone\"|" "$T/relay.conf" >"$T/status.conf"
echo "status = { listen = \"127.0.0.1:$sport\"; token_file = \"$T/token\"; };" >>"$T/status.conf"
"$abs_top_builddir/sftprelayd" -c "$T/status.conf" 2>>"$T/agent.log" &
AGENT_PID=$!
deadline=$((SECONDS + 30))
until curl -fsS "http://127.0.0.1:$sport/healthz" >/dev/null 2>&1; do
    kill -0 "$AGENT_PID" 2>/dev/null || { echo "FAIL: the agent with a status endpoint exited"; cat "$T/agent.log"; exit 1; }
    [ "$SECONDS" -lt "$deadline" ] || { echo "FAIL: no status endpoint after 30 s"; cat "$T/agent.log"; exit 1; }
    sleep 0.1
done
STATUS_URL=http://127.0.0.1:$sport STATUS_TOKEN=$(cat "$T/token") \
    JOURNAL=$T/journal.db SRC=$T/src SFTPRELAY=$abs_top_builddir/sftprelay \
    /usr/bin/python3 "$here/test_sensors.py" 2>&1 | tee "$T/endpoint.out"
grep -q '^OK' "$T/endpoint.out" || { cat "$T/agent.log"; exit 1; }
total=$((total + $(sed -n 's/^Ran \([0-9]*\) tests.*/\1/p' "$T/endpoint.out")))
kill "$AGENT_PID"
wait "$AGENT_PID" || { echo "FAIL: the agent did not stop cleanly"; cat "$T/agent.log"; exit 1; }
AGENT_PID=
echo "ok - the sensors against the agent's own status endpoint"

# As in docker-compose.yml: a reader with another uid and group 0 (Airflow
# runs as 50000:0) reads the agent's 0640 root:root journal, WAL and all,
# without write access to any of it.  That uid may not reach the checkout
# or the build folder (a clone in /root, mode 0700), so it gets copies of
# what it runs in a folder of its own.
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
    other() { setpriv --reuid=65534 --regid=0 --clear-groups "$@"; }
    chmod 711 "$T"
    O=$(mktemp -d "${TMPDIR:-/tmp}/sftprelay-py-other.XXXXXX")
    trap 'rm -rf "$T" "$O"' EXIT
    cp -R "$here/../../airflow/plugins/sftprelay_airflow" "$here/airflow_stub" \
        "$abs_top_builddir/sftprelay" "$O/"
    chmod -R u+w,go=rX "$O" # a read-only source tree (distcheck) copies 0444
    other test -r "$T/journal.db" ||
        { echo "FAIL: uid 65534 cannot reach $T (set TMPDIR to a folder it can)"; exit 1; }
    [ -e "$T/journal.db-wal" ] || { echo "FAIL: no WAL file beside the journal"; exit 1; }
    other test ! -w "$T/journal.db" -a ! -w "$T/journal.db-wal" ||
        { echo "FAIL: uid 65534 in group 0 may write the journal"; exit 1; }
    PYTHONDONTWRITEBYTECODE=1 JOURNAL=$T/journal.db \
        other /usr/bin/python3 -c '
import os, sys
sys.path[:0] = [sys.argv[1], os.path.join(sys.argv[1], "airflow_stub")]
from sftprelay_airflow.journal import Journal, delivered_decision
from sftprelay_airflow.sensors import SftpRelayDeliveredSensor
d = delivered_decision(Journal(os.environ["JOURNAL"]), pattern="a/b/c/*")
assert d.done and len(d.files) == 3, d
r = SftpRelayDeliveredSensor(task_id="t", journal_path=os.environ["JOURNAL"],
                             path="a/b/c/file_2.txt").poke({})
assert r.is_done, r
' "$O" || { echo "FAIL: another uid in group 0 cannot read the journal"; exit 1; }
    other "$O/sftprelay" -j "$T/journal.db" status >"$T/status" ||
        { echo "FAIL: sftprelay status as another uid"; exit 1; }
    grep -q '^delivered    5$' "$T/status" || { cat "$T/status"; exit 1; }
    echo "ok - another uid in group 0 reads the journal (Python, sensor and CLI)"
    total=$((total + 1))
fi
echo "$total passed, 0 failed"
