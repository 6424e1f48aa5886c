#!/usr/bin/env bash
# source.type = "sftp": a remote tree polled over SFTP and replicated to a
# local target, against OpenSSH's sshd and the embedded server; a file still
# growing waits until it is still, under --once too; after_delivery delete
# and move, for the sftp source and the local one; a hostile server's lies
# (names that would leave the tree, impossible sizes, oversized replies,
# links swapped in, endless trees) are refused.
. "$(dirname "$0")/lib.sh"

# src_conf PORT PATH STATE [SOURCE KEYS] [TARGET FOLDER]: an agent config
# polling PATH on 127.0.0.1:PORT, delivering to a local folder.
src_conf() {
    mkdir -p "${5:-$T/out}"
    cat >"$T/relay.conf" <<CONF
source = { type = "sftp"; path = "$2"; host = "127.0.0.1"; port = $1;
           user = "$(id -un)"; identity = "$T/keys/client_ed25519";
           known_hosts = "$T/known_hosts"; timeout = 10;
           poll_interval = 1; ${4:-} };
target = { type = "local"; path = "${5:-$T/out}"; };
journal = { path = "$T/$3/journal.db"; };
transfer = { workers = 2; backoff_initial = 1; backoff_max = 2; };
log = { level = "debug"; };
CONF
}

# A nested tree under $1: small files, a name with a space, 3 MiB.
make_tree() {
    mkdir -p "$1/a/b/c" "$1/d"
    echo "top" >"$1/top.txt"
    echo "deep" >"$1/a/b/c/deep.txt"
    echo "spaced" >"$1/d/with space.txt"
    head -c 3145728 /dev/urandom >"$1/a/big.bin"
    : >"$1/a/empty"
}
# tree_delivered SRC DST: every file of the tree delivered and identical.
tree_delivered() {
    local f
    for f in top.txt a/b/c/deep.txt a/big.bin a/empty "d/with space.txt"; do
        is_delivered "$f" && same_file "$1/$f" "$2/$f" || return 1
    done
}

# --- OpenSSH's sshd ---------------------------------------------------------
start_sshd
make_tree "$T/remote"
src_conf "$TARGET_PORT" "$T/remote" state1 "stable_polls = 2;"
start_agent
wait_for 60 tree_delivered "$T/remote" "$T/out" ||
    fail "the tree was not replicated from sshd"
ok "sshd: a nested tree replicated byte-identical to a local target"

# A file that keeps growing is not sent until it is still.
listings() { grep -c 'listed [0-9]* files under' "$T/agent.log" || true; }
n0=$(listings)
: >"$T/remote/grow.txt"
while [ "$(listings)" -lt $((n0 + 4)) ]; do
    echo "one more line at $(date +%s.%N)" >>"$T/remote/grow.txt"
    sleep 0.2 # the writer's pace: several appends between two listings
done
[ -z "$(state_of grow.txt)" ] ||
    fail "grow.txt was queued while it grew: $(state_of grow.txt)"
wait_for 30 is_delivered grow.txt || fail "grow.txt not sent once still"
same_file "$T/remote/grow.txt" "$T/out/grow.txt" || fail "grow.txt differs"
ok "a growing file waits for stable_polls listings, then goes whole"
stop_agent

# after_delivery, one listing each (--once).
mkdir -p "$T/remote2/x"
echo "delete me" >"$T/remote2/x/del.txt"
src_conf "$TARGET_PORT" "$T/remote2" state2 'after_delivery = "delete";' \
    "$T/out2"
run_once once-delete || fail "--once with after_delivery delete failed"
same_file <(echo "delete me") "$T/out2/x/del.txt" || fail "del.txt not delivered"
[ ! -e "$T/remote2/x/del.txt" ] || fail "del.txt still on the source"
ok "sftp source: after_delivery delete removes the delivered file"

# --once lists stable_polls times, poll_interval apart: a file still
# being written is left for a later run.
mkdir -p "$T/remote2b"
echo "still" >"$T/remote2b/still.txt"
(while :; do
    echo "one more line" >>"$T/remote2b/busy.txt"
    sleep 0.1
done) &
writer=$!
PIDS+=("$writer")
src_conf "$TARGET_PORT" "$T/remote2b" state2b "stable_polls = 2;" "$T/out2b"
run_once once-busy || fail "--once while a file grows failed"
kill "$writer"
wait "$writer" 2>/dev/null || true
same_file <(echo "still") "$T/out2b/still.txt" || fail "still.txt not delivered"
[ ! -e "$T/out2b/busy.txt" ] && [ -z "$(state_of busy.txt)" ] ||
    fail "busy.txt was taken while it grew: $(state_of busy.txt)"
grep -qF "listing $T/remote2b 2 times, 1 s apart" "$T/once-busy.log" ||
    fail "--once did not say it lists twice"
ok "--once sends only what stable_polls listings saw unchanged"

mkdir -p "$T/remote3/x/y"
echo "move me" >"$T/remote3/x/y/mv.txt"
src_conf "$TARGET_PORT" "$T/remote3" state3 'after_delivery = "move:done";' \
    "$T/out3"
run_once once-move || fail "--once with after_delivery move failed"
same_file <(echo "move me") "$T/out3/x/y/mv.txt" || fail "mv.txt not delivered"
[ ! -e "$T/remote3/x/y/mv.txt" ] || fail "mv.txt still where it was"
same_file <(echo "move me") "$T/remote3/done/x/y/mv.txt" ||
    fail "mv.txt not moved to done/x/y/"
run_once once-move-again || fail "the second --once failed"
[ ! -e "$T/out3/done" ] || fail "the move folder was sent as new files"
ok "sftp source: after_delivery move:done keeps the path, is not sent again"
stop_target

# --- the local source ---------------------------------------------------
local_conf() {
    mkdir -p "$T/lsrc" "$T/lout"
    cat >"$T/relay.conf" <<CONF
source = { path = "$T/lsrc"; after_delivery = "$1"; };
target = { type = "local"; path = "$T/lout"; };
journal = { path = "$T/$2/journal.db"; };
log = { level = "debug"; };
CONF
}
mkdir -p "$T/lsrc/p/q"
echo "local delete" >"$T/lsrc/p/q/l1.txt"
local_conf delete lstate1
run_once local-delete || fail "--once, local source, delete"
same_file <(echo "local delete") "$T/lout/p/q/l1.txt" || fail "l1.txt not delivered"
[ ! -e "$T/lsrc/p/q/l1.txt" ] || fail "l1.txt still in the local source"
echo "local move" >"$T/lsrc/p/q/l2.txt"
local_conf move:sent lstate2
run_once local-move || fail "--once, local source, move"
same_file <(echo "local move") "$T/lout/p/q/l2.txt" || fail "l2.txt not delivered"
same_file <(echo "local move") "$T/lsrc/sent/p/q/l2.txt" ||
    fail "l2.txt not moved to sent/p/q/"
run_once local-move-again || fail "the second --once, local source"
[ ! -e "$T/lout/sent" ] || fail "the local move folder was sent"
ok "local source: after_delivery delete and move:sent"

# --- the embedded server ------------------------------------------------
start_serve
make_tree "$T/dst/tree"
src_conf "$TARGET_PORT" /tree state4 \
    'stable_polls = 2; after_delivery = "move:../tree-done";' "$T/out4"
"$SFTPRELAYD" -c "$T/relay.conf" -t 2>"$T/bad.err" &&
    fail "move:../tree-done was accepted"
grep -q 'after_delivery' "$T/bad.err" || fail "no word on after_delivery: $(cat "$T/bad.err")"
src_conf "$TARGET_PORT" /tree state4 \
    'stable_polls = 2; after_delivery = "move:done";' "$T/out4"
start_agent agent-serve
wait_for 60 tree_delivered "$T/dst/tree/done" "$T/out4" ||
    fail "the tree was not replicated from the embedded server"
ok "embedded server: a nested tree replicated, then moved to done/"
stop_agent
stop_target

# --- a hostile server -----------------------------------------------------
SFTP_SUBSYSTEM="$(command -v python3) $(cd "$(dirname "$0")" && pwd)/hostile_sftp.py" \
    start_sshd
src_conf "$TARGET_PORT" "$T/evil" state5 "" "$T/out5"
run_once hostile || fail "--once against the hostile server failed"
for name in ../evil /etc/passwd a/b; do
    grep -qF "127.0.0.1:$TARGET_PORT: refusing the name \"$name\" the server listed in $T/evil" \
        "$T/hostile.log" || fail "no refusal of $name: $(grep refus "$T/hostile.log")"
done
same_file <(echo "hello from a hostile server") "$T/out5/ok.txt" ||
    fail "ok.txt not delivered"
[ "$(find "$T" -name evil -o -name passwd | wc -l)" = 0 ] ||
    fail "a hostile name was written: $(find "$T" -name evil -o -name passwd)"
ok "a hostile server's names are refused, naming the server and the name"

# Sizes past 2^63 would read as negative and make a transfer ask for
# almost 2^64 bytes: refused in a listing (huge.bin) and once opened
# (liar.bin, listed small), naming the server and the file.
src_conf "$TARGET_PORT" "$T/evil-big" state6 "" "$T/out6"
start_agent agent-big
wait_for 30 is_delivered ok.txt || fail "ok.txt not delivered from evil-big"
said_big() { grep -qF "127.0.0.1:$TARGET_PORT: $1: the server reports a size of $2 bytes" \
    "$T/agent-big.log"; }
wait_for 10 said_big huge.bin 9223372036854775813 ||
    fail "huge.bin's size was not refused"
wait_for 30 said_big "$T/evil-big/liar.bin" 18446744073709551615 ||
    fail "liar.bin's size was not refused once opened"
stop_agent
[ ! -e "$T/out6/huge.bin" ] && [ ! -e "$T/out6/liar.bin" ] ||
    fail "a file of an impossible size was written"
ok "sizes past 2^63 are refused, in a listing and once opened"

# More DATA than a READ asked for ends the session, never the buffer.
src_conf "$TARGET_PORT" "$T/evil-data" state7 "" "$T/out7"
start_agent agent-data
said_data() { grep -q "malformed DATA reply to a read" "$T/agent-data.log"; }
wait_for 30 said_data || fail "no word on the oversized DATA reply"
stop_agent
[ ! -e "$T/out7/ok.txt" ] || fail "ok.txt was delivered from oversized replies"
ok "DATA longer than its READ asked is a protocol error"

# OPEN follows links: a name that is a link when looked at, just before
# the open or once open, is refused, never sent.
src_conf "$TARGET_PORT" "$T/evil-link" state8 "" "$T/out8"
start_agent agent-link
wait_for 30 is_delivered ok.txt || fail "ok.txt not delivered from evil-link"
refused_link() { [ "$(state_of "$1")" = failed ] &&
    grep -qF "$1: source: now a symbolic link, not followed" "$T/agent-link.log"; }
wait_for 30 refused_link swap.txt || fail "swap.txt (a link at LSTAT) not refused"
wait_for 30 refused_link late.txt || fail "late.txt (a link once open) not refused"
stop_agent
[ ! -e "$T/out8/swap.txt" ] && [ ! -e "$T/out8/late.txt" ] ||
    fail "a link's target was sent"
ok "a file swapped for a link before or while it is opened is not sent"

# An endless tree: folders without end are listed 64 deep, then skipped
# (logged); a folder without end stops the listing at source.max_files.
src_conf "$TARGET_PORT" "$T/evil-deep" state9 "" "$T/out9"
start_agent agent-deep
wait_for 60 is_delivered ok.txt || fail "ok.txt not delivered from evil-deep"
grep -qF "127.0.0.1:$TARGET_PORT: not listing $T/evil-deep/d/d/" "$T/agent-deep.log" &&
    grep -q "more than 64 folders below source.path" "$T/agent-deep.log" ||
    fail "no word on the endless folders"
stop_agent
src_conf "$TARGET_PORT" "$T/evil-wide" state10 "max_files = 1000;" "$T/out10"
start_agent agent-wide
said_wide() { grep -qF "127.0.0.1:$TARGET_PORT: listing $T/evil-wide: more than 1000 entries (source.max_files); the listing stopped" \
    "$T/agent-wide.log"; }
wait_for 30 said_wide || fail "no word on the endless folder"
stop_agent
[ -z "$(ls "$T/out10")" ] || fail "an incomplete listing sent files"
ok "endless folders and endless listings are cut short, naming the server"

echo "$TESTS_RUN passed, 0 failed"
