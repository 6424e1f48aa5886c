#!/usr/bin/env bash
# Both SSH backends (target.transport) against OpenSSH's sshd with each
# host key type: files of 0 B, 1 B and 300 KiB in nested folders arrive
# byte-identical with their modes and modification times; libssh2 refuses
# an RSA-only server in words that name the fix; target.ciphers is applied
# and a cipher no library knows is named; a changed host key is refused by
# both backends.
. "$(dirname "$0")/lib.sh"

FILES="empty.txt a/one.txt a/b/random.bin"

# fresh: an empty source, target and journal for the next case.
fresh() {
    rm -rf "$T/src" "$T/dst" "$T/state"
}

# make_files: FILES, with modes umask would not give and old mtimes.
make_files() {
    mkdir -p "$T/src/a/b"
    : >"$T/src/empty.txt"
    printf x >"$T/src/a/one.txt"
    head -c $((300 * 1024)) /dev/urandom >"$T/src/a/b/random.bin"
    chmod 0600 "$T/src/empty.txt"
    chmod 0664 "$T/src/a/one.txt"
    chmod 0751 "$T/src/a/b/random.bin"
    touch -d @1500000000 "$T/src/empty.txt"
    touch -d @1600000001 "$T/src/a/one.txt"
    touch -d @1700000002 "$T/src/a/b/random.bin"
}

# nothing_sent: no file at all on the target, temporary or final.
nothing_sent() {
    [ -z "$(find "$T/dst" -type f 2>/dev/null)" ]
}

# setup BACKEND [KEYS]: a fresh case against the running sshd.
setup() {
    fresh
    write_conf
    conf_keys target "transport = \"$1\"; ${2:-}"
    make_files
}

# A run that must deliver nothing and say why: CASE, LOG, TEXT.
refused() {
    local rc=0
    run_once "$2" || rc=$?
    [ "$rc" != 0 ] || fail "$1: --once exited 0"
    nothing_sent || fail "$1: something reached the target: $(find "$T/dst" -type f)"
    [ "$(state_of a/one.txt)" = queued ] ||
        fail "$1: a/one.txt is '$(state_of a/one.txt)', not queued"
    status_says "$3" || fail "$1: status does not say '$3': $(relay status)"
}

for backend in libssh libssh2; do
    for kt in ed25519 ecdsa rsa; do
        c="$backend, $kt host key"
        start_sshd -k "$kt"
        setup "$backend" "preserve_mtime = true;"
        log=agent-$backend-$kt
        if [ "$backend" = libssh2 ] && [ "$kt" = rsa ]; then
            refused "$c" "$log" 'transport = "libssh"'
            ok "$c: refused, nothing sent, the error names target.transport = \"libssh\""
            stop_target
            continue
        fi
        rc=0
        run_once "$log" || rc=$?
        [ "$rc" = 0 ] || fail "$c: --once exited $rc"
        for f in $FILES; do
            is_delivered "$f" || fail "$c: $f is '$(state_of "$f")', not delivered"
            same_file "$T/src/$f" "$T/dst/$f" || fail "$c: $f differs"
            m=$(stat -c %a "$T/dst/$f")
            [ "$m" = "$(stat -c %a "$T/src/$f")" ] ||
                fail "$c: $f has mode $m on the target, $(stat -c %a "$T/src/$f") here"
            t=$(stat -c %Y "$T/dst/$f")
            [ "$t" = "$(stat -c %Y "$T/src/$f")" ] ||
                fail "$c: $f has mtime $t on the target, $(stat -c %Y "$T/src/$f") here"
        done
        ok "$c: 0 B, 1 B, 300 KiB nested: delivered, same bytes, mode and mtime"
        stop_target
    done
done

# A server that takes only AES-128-GCM: the cipher asked for is used, and
# one it does not take fails (so the setting is not ignored).
SSHD_EXTRA="Ciphers aes128-gcm@openssh.com" start_sshd
setup libssh 'ciphers = "aes128-gcm@openssh.com";'
rc=0
run_once agent-gcm || rc=$?
[ "$rc" = 0 ] || fail "libssh, ciphers = aes128-gcm: --once exited $rc"
for f in $FILES; do
    is_delivered "$f" || fail "aes128-gcm: $f not delivered"
    same_file "$T/src/$f" "$T/dst/$f" || fail "aes128-gcm: $f differs"
done
ok "libssh with ciphers = \"aes128-gcm@openssh.com\" delivers to a GCM-only server"
setup libssh 'ciphers = "aes256-ctr";'
rc=0
run_once agent-ctr || rc=$?
[ "$rc" != 0 ] || fail "libssh, ciphers = aes256-ctr: delivered to a GCM-only server"
nothing_sent || fail "aes256-ctr: something reached the GCM-only server"
status_says "target.ciphers" || fail "aes256-ctr: status does not name target.ciphers: $(relay status)"
ok "libssh with ciphers = \"aes256-ctr\" does not reach a GCM-only server, and says target.ciphers"
stop_target

# A cipher name no library knows.
start_sshd
for backend in libssh libssh2; do
    setup "$backend" 'ciphers = "bogus-cipher-9";'
    refused "$backend, bogus cipher" "agent-bogus-$backend" "target.ciphers"
    status_says "bogus-cipher-9" ||
        fail "$backend: the error does not name bogus-cipher-9: $(relay status)"
    ok "$backend: ciphers = \"bogus-cipher-9\" fails, naming target.ciphers and the cipher"
done

# A changed host key: known_hosts holds another ed25519 key for the server.
ssh-keygen -q -t ed25519 -N '' -f "$T/keys/impostor"
good_known_hosts=$(cat "$T/known_hosts")
for backend in libssh libssh2; do
    setup "$backend"
    echo "[127.0.0.1]:$TARGET_PORT $(cut -d' ' -f1,2 "$T/keys/impostor.pub")" \
        >"$T/known_hosts"
    refused "$backend, changed host key" "agent-changed-$backend" "host key CHANGED"
    echo "$good_known_hosts" >"$T/known_hosts"
    ok "$backend: a changed host key is refused ('host key CHANGED'), nothing sent"
done

# A target.path that does not exist on the server (relative, resolved by
# the server): a target error in words, every file still queued, and the
# agent alive to say so (it used to crash on the next file).
setup libssh
sed -i '/known_hosts/s|path = "[^"]*";|path = "no/such/folder";|' "$T/relay.conf"
refused "libssh, missing target.path" agent-nopath "resolving target.path"
grep -q "Segmentation\|core dumped" "$T/agent-nopath.log" &&
    fail "missing target.path: the agent crashed"
ok "a missing relative target.path is a target error naming it; nothing sent"

stop_target
echo "$TESTS_RUN passed, 0 failed"
