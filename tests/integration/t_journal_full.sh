#!/usr/bin/env bash
# The journal's filesystem fills up while files arrive: the agent says
# once which file is full and what to do, keeps what it could not write,
# and once space is freed (the agent still running) delivers every file,
# with no row left sending.  The journal lives on a 16 MiB tmpfs (its WAL
# alone grows to 4 MiB between checkpoints) mounted in a mount namespace of
# the test's own.
if [ -z "${IN_MOUNT_NS:-}" ]; then
    for ns in "-m" "-U -r -m"; do
        # shellcheck disable=SC2086
        if unshare $ns true 2>/dev/null; then
            IN_MOUNT_NS=1 exec unshare $ns --propagation private "$BASH" "$0"
        fi
    done
    echo "SKIP: cannot make a mount namespace here"
    exit 77
fi
. "$(dirname "$0")/lib.sh"
heavy

# The tmpfs goes after the agent, before the scratch folder.
unmount_then_cleanup() {
    kill "${AGENT_PID:-}" 2>/dev/null && wait "$AGENT_PID" 2>/dev/null
    umount "$T/jfs" 2>/dev/null
    cleanup
}
trap unmount_then_cleanup EXIT

N=3000
mkdir -p "$T/src" "$T/dst" "$T/jfs"
mount -t tmpfs -o size=16m sftprelay-journal "$T/jfs" || {
    echo "SKIP: cannot mount a tmpfs here"
    exit 77
}
cat >"$T/relay.conf" <<CONF
source = { path = "$T/src"; settle_ms = 100; };
target = { type = "local"; path = "$T/dst"; };
journal = { path = "$T/jfs/journal.db"; };
transfer = { workers = 4; backoff_initial = 1; backoff_max = 2; };
log = { level = "debug"; };
CONF
jq() { sqlite3 -readonly "$T/jfs/journal.db" "$1"; }

start_agent
echo first >"$T/src/first.txt"
first_done() { [ "$(jq "SELECT state FROM files WHERE path = 'first.txt'")" = delivered ]; }
wait_for 20 first_done || fail "first.txt not delivered"

# Fill the journal's filesystem to the last block.
dd if=/dev/zero of="$T/jfs/filler" bs=4k 2>/dev/null || true
python3 - "$T/src" "$N" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, "burst", "d%02d" % (i % 30))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%04d.txt" % i), "wb") as f:
        f.write(b"%d\n" % i * (i % 50 + 1))
PY
said() { grep -q "journal $T/jfs/journal.db: database or disk is full" "$T/agent.log"; }
wait_for 30 said || fail "no error naming the journal's file"
grep "journal $T/jfs/journal.db: database or disk is full" "$T/agent.log" |
    head -n 1 | grep -q 'free space on the filesystem that holds it' ||
    fail "the error does not say what to do"
ok "a full journal is named, with what to do"

# Every file found is taken in: kept in memory (the writer says how many
# changes wait) or, where the full disk let a commit through, journaled.
taken() {
    local most rows
    most=$(grep -o 'still failing ([^)]*); [0-9]* changes' "$T/agent.log" |
        grep -o '[0-9]* changes' | cut -d' ' -f1 | sort -n | tail -n 1)
    rows=$(jq "SELECT count(*) FROM files" 2>/dev/null || echo 0)
    # first.txt is a row of its own; the rest are waiting, or journaled.
    [ $((${most:-0} + ${rows:-0} - 1)) -ge "$N" ]
}
wait_for 150 taken || fail "the $N files found are not all taken in"
alive "$AGENT_PID" || fail "the agent died on a full journal"
ok "the $N files found while it is full are taken in"

rm -f "$T/jfs/filler"
all_in() {
    [ "$(jq "SELECT count(*) FROM files WHERE state = 'delivered'")" = $((N + 1)) ]
}
wait_for 120 all_in || fail "not all delivered once space was freed: $(jq \
    "SELECT state, count(*) FROM files GROUP BY state" | tr '\n' ' ')"
[ "$(jq "SELECT count(*) FROM files WHERE state != 'delivered'")" = 0 ] ||
    fail "rows left behind: $(jq "SELECT state, count(*) FROM files GROUP BY state")"
diff -r "$T/src" "$T/dst" >/dev/null || fail "target differs from the source"
grep -q "journal $T/jfs/journal.db: writable again" "$T/agent.log" ||
    fail "no word that the journal is writable again"
said=$(grep -E '(error|warn): .*disk is full' "$T/agent.log" | wc -l)
[ "$said" -le 10 ] || fail "the full disk was logged $said times"
ok "once space is freed every file is delivered, none left sending"

stop_agent
echo "$TESTS_RUN passed, 0 failed"
