#!/usr/bin/env bash
# The journal's WAL stays small under a long burst read without a pause.
# While a reader (a sensor poking back to back, a status endpoint) always
# holds a snapshot, SQLite's own checkpoints never get to restart the WAL:
# it grew by about 30 KiB a file (600 MB for 20,000 files), and so did
# every reader's work.  The journal writer restarts it every few seconds;
# 8,000 files must leave it under 64 MiB.
. "$(dirname "$0")/lib.sh"
heavy

N=8000
DB=$T/state/journal.db
mkdir -p "$T/src" "$T/dst" "$T/staging"
cat >"$T/relay.conf" <<CONF
source = { path = "$T/src"; settle_ms = 100; };
target = { type = "local"; path = "$T/dst"; };
journal = { path = "$DB"; };
transfer = { workers = 4; };
log = { level = "info"; };
CONF
python3 - "$T/staging/burst" "$N" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, "d%02d" % (i % 20))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%05d" % i), "wb") as f:
        f.write(b"%d\n" % i * (i % 90 + 1))
PY
start_agent
wait_for 10 test -e "$DB" || fail "no journal"
# Readers one after the other, each reading every row, never a pause.
/usr/bin/python3 - "$DB" "$T/stop-reader" <<'PY' &
import os, sqlite3, sys
db, stop = sys.argv[1], sys.argv[2]
while not os.path.exists(stop):
    con = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=10)
    con.execute("SELECT path, state, sha256 FROM files").fetchall()
    con.close()
PY
READER=$!
PIDS+=("$READER")
mv "$T/staging/burst" "$T/src/burst"
delivered() {
    [ "$(sqlite3 -readonly "$DB" \
        "SELECT count(*) FROM files WHERE state = 'delivered'" 2>/dev/null)" = "$N" ]
}
wait_for 180 delivered || fail "not all $N delivered"
wal=$(stat -c %s "$DB-wal")
touch "$T/stop-reader"
wait "$READER" || fail "the reader failed"
[ "$wal" -le $((64 << 20)) ] || fail "the WAL grew to $((wal >> 20)) MiB"
ok "$N files delivered; the WAL stayed at $((wal >> 20)) MiB"
diff -r "$T/src" "$T/dst" >/dev/null || fail "target differs from the source"
ok "the target holds the same bytes"
stop_agent
echo "$TESTS_RUN passed, 0 failed"
