#!/usr/bin/env bash
# Progress a person can see.  A file sent slowly (transfer.bandwidth_limit,
# to a local target): `status --json` and the status endpoint's /v1/summary
# list it with the bytes sent, a rate and a time left; `status --watch 1` in tmux (its own server, on a socket
# in the test's folder) shows it with those figures, redrawn in place
# while the bytes grow, and C-c gives the shell back with exit 0 and the
# cursor shown; piped, --watch prints plain blocks; once it is delivered
# the list is empty.  An agent killed while sending is not shown as
# sending; one stopped says at once that it sends nothing.  A file sent as
# ranges over several connections is one row, with their sum.
. "$(dirname "$0")/lib.sh"

command -v tmux >/dev/null || fail "tmux is missing (./scripts/deps installs it)"
command -v curl >/dev/null || fail "curl is missing (./scripts/deps installs it)"

KIB=1024
MIB=$((1024 * 1024))
LIMIT=$((256 * KIB))
SIZE=$((16 * MIB)) # 64 s at the limit, which goes once the checks are done
mkdir -p "$T/src" "$T/dst"
cat >"$T/relay.conf" <<CONF
source = { path = "$T/src"; settle_ms = 100; };
target = { type = "local"; path = "$T/dst"; };
journal = { path = "$T/state/journal.db"; };
transfer = { workers = 2; chunk_size = 65536; bandwidth_limit = $LIMIT;
             backoff_initial = 1; backoff_max = 2; };
log = { level = "debug"; };
status = { listen = "127.0.0.1:$(free_port)"; };
CONF

# put NAME BYTES: a file of random bytes ($T/NAME) appears whole in the
# source.
put() {
    head -c "$2" /dev/urandom >"$T/$1"
    cp "$T/$1" "$T/$1.tmp"
    mv "$T/$1.tmp" "$T/src/$1"
}

# sending PATH: "SENT SIZE TARGET_BYTES RATE ETA" of PATH in status
# --json's list of files being sent ("" when it is not in it; ETA -1 when
# null).
sending() {
    relay --json status 2>/dev/null | "$PY" -c '
import json, sys
for e in json.load(sys.stdin)["sending"]:
    if e["path"] == sys.argv[1]:
        print(e["sent"], e["size"], e["target_bytes"], e["rate"],
              -1 if e["eta"] is None else e["eta"])' "$1" 2>/dev/null || true
}

# reload: SIGHUP, and wait until the relay runs again with the file read
# again (it logs "watching" at each start).
reload() {
    local n
    n=$(grep -c ' watching ' "$T/agent.log" || true)
    kill -HUP "$AGENT_PID"
    restarted() { [ "$(grep -c ' watching ' "$T/agent.log")" -gt "$n" ]; }
    wait_for 30 restarted || fail "no restart after SIGHUP"
}

# json_says EXPR: EXPR (Python, on d, the status --json object) holds.
json_says() {
    relay --json status 2>/dev/null |
        "$PY" -c 'import json, sys; d = json.load(sys.stdin); sys.exit(0 if eval(sys.argv[1]) else 1)' "$1"
}

start_agent
put big.bin "$SIZE"

# --- status --json during the transfer -----------------------------------
moving() {
    read -r SENT SZ TB RATE ETA <<<"$(sending big.bin)" || return 1
    [ -n "${ETA:-}" ] && [ "$SENT" -gt 0 ] && [ "$RATE" -gt 0 ] && [ "$ETA" -ge 0 ]
}
wait_for 30 moving || fail "status --json never showed big.bin moving: $(relay --json status)"
[ "$SZ" = "$SIZE" ] && [ "$SENT" -lt "$SIZE" ] && [ "$TB" = "$SENT" ] ||
    fail "big.bin: sent $SENT of $SZ, $TB on the target"
# The rate is the limit's, within a burst and sampling (2 workers share it).
[ "$RATE" -le $((LIMIT * 3 / 2)) ] || fail "a rate of $RATE B/s with a limit of $LIMIT"
want=$(((SIZE - SENT) / RATE))
[ "$ETA" -ge $((want / 2)) ] && [ "$ETA" -le $((want * 2 + 2)) ] ||
    fail "$ETA s left for $((SIZE - SENT)) bytes at $RATE B/s"
json_says 'd["sending_stale"] is False and d["sending_at"] > 0 and d["sending"][0]["started_at"] > 0' ||
    fail "status --json: $(relay --json status)"
ok "status --json lists big.bin being sent: $SENT of $SIZE bytes, $RATE B/s, $ETA s left"

# The endpoint: the same object, the files from the agent's own table.
url=$(sed -n 's/.*status endpoint on \(http:[^, ]*\).*/\1/p' "$T/agent.log" | head -n 1)
[ -n "$url" ] || fail "no status endpoint in the log"
curl -sS --max-time 10 "$url/v1/summary" | "$PY" -c '
import json, sys, time
d = json.load(sys.stdin)
e = [x for x in d["sending"] if x["path"] == "big.bin"]
assert len(e) == 1 and 0 < e[0]["sent"] < e[0]["size"] == int(sys.argv[1]), d
assert e[0]["rate"] > 0 and e[0]["eta"] is not None, d
assert not d["sending_stale"] and d["sending_at"] >= time.time() - 2, d' "$SIZE" ||
    fail "/v1/summary: $(curl -sS "$url/v1/summary")"
ok "/v1/summary lists big.bin with its figures too"

# --- status --watch on a terminal (tmux) ---------------------------------
TM=(tmux -S "$T/tmux.sock" -f /dev/null)
"${TM[@]}" new-session -d -x 160 -y 40 "env PS1='prompt\$ ' bash --norc --noprofile"
PIDS+=("$("${TM[@]}" display -p '#{pid}')") # the server, killed at the end
pane() { "${TM[@]}" capture-pane -p -S - -E - 2>/dev/null; }
at_prompt() { pane | grep -q '^prompt\$'; }
wait_for 10 at_prompt || fail "no shell prompt in tmux: $(pane)"
"${TM[@]}" send-keys "$SFTPRELAY -c $T/relay.conf status --watch 1; echo \"watch exited \$?\"" Enter

# A line of big.bin with its figures: "1.3 MiB of 16.0 MiB (8%)  256.0
# KiB/s  58s left", a rate and a time left known.
LINE_RE='^  big\.bin +([0-9.]+) (B|KiB|MiB) of 16\.0 MiB \([0-9]+%\)  [0-9.]+ (B|KiB|MiB)/s  [0-9][0-9dhms]* left$'
shown_line() { pane | grep -E "$LINE_RE" | grep -v '  0 B/s  '; }
# The bytes the pane shows sent, in bytes.
shown_bytes() {
    shown_line | grep -oE '[0-9.]+ (B|KiB|MiB) of ' |
        awk '{ m = $2 == "MiB" ? 1048576 : $2 == "KiB" ? 1024 : 1; printf "%d\n", $1 * m }'
}
showing() { shown_line >/dev/null; }
wait_for 30 showing || fail "the pane never showed big.bin's figures: $(pane)"
first=$(shown_bytes)
grown() { [ "$(shown_bytes)" -gt "$first" ]; }
wait_for 30 grown || fail "the bytes shown never grew past $first: $(pane)"
# Redrawn in place: one header on the whole pane, its history empty.
headers=$(pane | grep -c '^Every 1\.0s: sftprelay status   [0-9-]* [0-9:]*$' || true)
[ "$headers" = 1 ] || fail "$headers headers on the pane: $(pane)"
[ "$("${TM[@]}" display -p '#{history_size}')" = 0 ] ||
    fail "the pane scrolled: $(pane)"
[ "$("${TM[@]}" display -p '#{cursor_flag}')" = 0 ] || fail "the cursor is shown while watching"
pane | grep -q '^sending now:$' || fail "no 'sending now:' on the pane: $(pane)"
ok "status --watch 1 in tmux: big.bin with its figures, redrawn in place as the bytes grow ($first, then $(shown_bytes))"

"${TM[@]}" send-keys C-c
back() { pane | grep -A1 '^watch exited ' | grep -q '^prompt\$'; }
wait_for 10 back || fail "no prompt after C-c: $(pane)"
pane | grep -q '^watch exited 0$' || fail "status --watch did not exit 0 on C-c: $(pane)"
[ "$("${TM[@]}" display -p '#{cursor_flag}')" = 1 ] || fail "the cursor is hidden after C-c"
pane | grep -qE "$LINE_RE" || fail "the last frame is gone after C-c: $(pane)"
"${TM[@]}" kill-server
ok "C-c: exit 0, the cursor shown again, the shell's prompt below the last frame"

# --- piped: plain blocks, no escape sequences ----------------------------
rc=0
timeout 60 "$SFTPRELAY" -c "$T/relay.conf" status --watch 1 2>"$T/piped.err" |
    head -n 40 >"$T/piped.txt" || rc=$?
# head leaves after 40 lines: SIGPIPE (141) ends the writer
[ "$rc" = 0 ] || [ "$rc" = 141 ] || fail "status --watch | head: exit $rc: $(cat "$T/piped.err")"
[ "$(wc -l <"$T/piped.txt")" = 40 ] || fail "status --watch | head: $(cat "$T/piped.txt")"
! grep -q $'\x1b' "$T/piped.txt" || fail "an escape sequence in piped output: $(cat -v "$T/piped.txt")"
blocks=$(grep -c '^Every 1\.0s: sftprelay status   ' "$T/piped.txt")
[ "$blocks" -ge 2 ] || fail "$blocks blocks in 40 lines: $(cat "$T/piped.txt")"
grep -qE "$LINE_RE" "$T/piped.txt" || fail "big.bin not in the piped blocks: $(cat "$T/piped.txt")"
ok "status --watch 1 | head -n 40: $blocks plain blocks, no escape byte"

# --- bad values, JSON lines ----------------------------------------------
for bad in abc 0 -1 1s; do
    rc=0
    relay status --watch "$bad" >/dev/null 2>"$T/err" || rc=$?
    [ "$rc" = 2 ] && grep -qF -- "--watch: \"$bad\" is not a number of seconds" "$T/err" ||
        fail "status --watch $bad: exit $rc: $(cat "$T/err")"
done
rc=0
timeout 60 "$SFTPRELAY" -c "$T/relay.conf" --json status --watch 0.5 | head -n 3 >"$T/lines.json" || rc=$?
"$PY" -c '
import json, sys
lines = open(sys.argv[1]).read().splitlines()
assert len(lines) == 3, lines
for l in lines:
    assert isinstance(json.loads(l)["sending"], list), l' "$T/lines.json" ||
    fail "status --json --watch: $(cat "$T/lines.json")"
ok "a bad --watch value is a usage error naming it; --json --watch prints a JSON object a line"

# --- delivered: nothing is being sent ------------------------------------
# The rest at full speed: SIGHUP restarts the relay without the limit (the
# table stays; the file resumes).
sed -i "s/bandwidth_limit = $LIMIT;//" "$T/relay.conf"
reload
wait_for 60 is_delivered big.bin || fail "big.bin not delivered: $(relay status)"
same_file "$T/big.bin" "$T/dst/big.bin" || fail "big.bin differs on the target"
empty() { json_says 'd["sending"] == [] and d["sending_stale"] is False'; }
wait_for 10 empty || fail "status --json after delivery: $(relay --json status)"
relay status | grep -q '^sending now: nothing$' || fail "status after delivery: $(relay status)"
ok "delivered: status lists nothing being sent"

# --- an agent killed while sending; one stopped -------------------------
sed -i "s/chunk_size = 65536;/& bandwidth_limit = $LIMIT;/" "$T/relay.conf"
reload
put second.bin $((4 * MIB))
seen() { [ -n "$(sending second.bin)" ]; }
wait_for 30 seen || fail "second.bin not listed: $(relay --json status)"
kill -9 "$AGENT_PID"
wait "$AGENT_PID" 2>/dev/null || true
stale() {
    json_says 'd["sending"] == [] and d["sending_stale"] is True' &&
        relay status | grep -q "^sending now: not known: the agent's list is [0-9]*s old (is sftprelayd running?)$"
}
wait_for 30 stale || fail "a killed agent's list still shown: $(relay status)"
ok "kill -9 while sending: after a few seconds status says it is not known, not that second.bin is sent"

start_agent agent2
wait_for 30 seen || fail "second.bin not listed after the restart: $(relay status)"
stop_agent
relay status | grep -q '^sending now: nothing$' || fail "after SIGTERM: $(relay status)"
ok "an agent stopped while sending leaves no file listed"

# --- ranges: one row with their sum --------------------------------------
rm -rf "$T/state" "$T/src" "$T/dst"
start_sshd
WORKERS=3 CHUNK=262144 write_conf
conf_keys transfer "split_size = $MIB; bandwidth_limit = $((512 * KIB));"
start_agent agent3
put ranged.bin $((6 * MIB))
# 3 ranges of 2 MiB: past 2.5 MiB, the row holds more than any one range.
one_row() {
    read -r SENT SZ TB RATE ETA <<<"$(sending ranged.bin)" || return 1
    [ -n "${ETA:-}" ] && [ "$SENT" -gt $((5 * MIB / 2)) ] &&
        json_says 'len(d["sending"]) == 1'
}
wait_for 60 one_row || fail "ranged.bin: $(relay --json status)"
grep -q "ranged.bin as ranges over 3 connections" "$T/agent3.log" ||
    fail "not sent as ranges: $(grep ranged.bin "$T/agent3.log" | head -3)"
[ "$SENT" -le $((6 * MIB)) ] && [ "$TB" = "$SENT" ] || fail "ranged.bin: $SENT sent, $TB on the target"
wait_for 60 is_delivered ranged.bin || fail "ranged.bin not delivered"
stop_agent
ok "ranged.bin over 3 connections: one row, $SENT bytes sent (more than one range holds)"

echo "$TESTS_RUN passed, 0 failed"
