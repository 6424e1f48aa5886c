#!/usr/bin/env bash
# Out of inotify watches: the agent names the folder and the sysctl, and
# still delivers from the folders it cannot watch by scanning them.  The
# limit is lowered for the agent alone, in a user namespace of its own.
. "$(dirname "$0")/lib.sh"

if ! unshare -U -r sh -c 'echo 2 >/proc/sys/user/max_inotify_watches' 2>/dev/null; then
    echo "SKIP: cannot lower max_inotify_watches in a user namespace here"
    exit 77
fi

start_sshd
write_conf
sed -i 's/rescan_interval = [0-9]*;//; s/settle_ms = \([0-9]*\);/settle_ms = \1; rescan_interval = 2;/' \
    "$T/relay.conf"
grep -q 'rescan_interval = 2' "$T/relay.conf" || fail "config not rewritten"
mkdir -p "$T/src/w1" "$T/src/w2/w3" "$T/src/w4/w5"
# Two watches: the root and one folder; the rest cannot be watched.
unshare -U -r sh -c 'echo 2 >/proc/sys/user/max_inotify_watches && exec "$@"' \
    sh "$SFTPRELAYD" -c "$T/relay.conf" >>"$T/agent.log" 2>&1 &
AGENT_PID=$!
PIDS+=("$AGENT_PID")

warned() { grep -q 'cannot watch: out of inotify watches (raise fs.inotify.max_user_watches)' "$T/agent.log"; }
wait_for 10 warned || fail "no warning about the inotify limit"
grep 'cannot watch' "$T/agent.log" | grep -q "$T/src/w" || fail "the warning does not name the folder"
ok "out of watches: the warning names the folder and fs.inotify.max_user_watches"

for d in w1 w2/w3 w4/w5; do
    echo "in $d" >"$T/src/$d/late.txt"
done
for d in w1 w2/w3 w4/w5; do
    wait_for 20 is_delivered "$d/late.txt" || fail "$d/late.txt not delivered"
    same_file "$T/src/$d/late.txt" "$T/dst/$d/late.txt" || fail "$d/late.txt differs"
done
ok "files in folders it cannot watch are still delivered"

stop_agent
echo "$TESTS_RUN passed, 0 failed"
