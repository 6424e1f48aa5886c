#!/usr/bin/env bash
# target.proxy_jump: the agent reaches the target through a jump host
# ("ssh -W"), the jump host's key checked against the same known_hosts.
# Two sshd on 127.0.0.1: the jump host and the target.  A jump host that
# refuses forwarding stops the delivery, which shows the jump is the way.
. "$(dirname "$0")/lib.sh"

start_sshd
jump_port=$TARGET_PORT
cp "$T/known_hosts" "$T/known_hosts.jump"
start_sshd
cat "$T/known_hosts.jump" >>"$T/known_hosts"
for backend in libssh libssh2; do
    rm -rf "$T/src" "$T/dst" "$T/state"
    write_conf
    conf_keys target "transport = \"$backend\"; proxy_jump = \"$(id -un)@127.0.0.1:$jump_port\";"
    mkdir -p "$T/src/a"
    head -c 300000 /dev/urandom >"$T/src/a/one.bin"
    echo two >"$T/src/two.txt"
    run_once "agent-$backend" || fail "$backend: --once failed: $(tail -5 "$T/agent-$backend.log")"
    same_file "$T/src/a/one.bin" "$T/dst/a/one.bin" || fail "$backend: a/one.bin differs"
    same_file "$T/src/two.txt" "$T/dst/two.txt" || fail "$backend: two.txt differs"
    ok "$backend: delivered through the jump host, byte-identical"
done

# The jump host refusing forwarding: nothing reaches the target.
stop_target
kill "${PIDS[0]}" 2>/dev/null || true
SSHD_EXTRA="AllowTcpForwarding no" start_sshd "$jump_port"
cat "$T/known_hosts.jump" >"$T/known_hosts"
start_sshd
cat "$T/known_hosts.jump" >>"$T/known_hosts"
rm -rf "$T/src" "$T/dst" "$T/state"
write_conf
conf_keys target "proxy_jump = \"$(id -un)@127.0.0.1:$jump_port\";"
echo three >"$T/src/three.txt"
rc=0
run_once agent-refused || rc=$?
[ "$rc" != 0 ] || fail "delivered although the jump host refuses forwarding"
[ ! -e "$T/dst/three.txt" ] || fail "three.txt reached the target"
[ "$(state_of three.txt)" = queued ] || fail "three.txt is '$(state_of three.txt)'"
ok "a jump host that refuses forwarding: nothing delivered, the file stays queued"

# A jump host whose key is not in known_hosts: refused.
grep -v "\]:$jump_port " "$T/known_hosts" >"$T/kh" && mv "$T/kh" "$T/known_hosts"
run_once agent-unknown && fail "delivered through a jump host of unknown key"
[ ! -e "$T/dst/three.txt" ] || fail "three.txt reached the target"
ok "a jump host whose key is unknown: refused, nothing delivered"
echo "$TESTS_RUN passed, 0 failed"
