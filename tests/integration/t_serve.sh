#!/usr/bin/env bash
# "sftprelay serve" as OpenSSH's sftp client sees it: the usual commands,
# every way out of the root refused, logins refused, sessions bounded, a
# hostile client ended without hurting the server; and the agent pushing
# through it.
. "$(dirname "$0")/lib.sh"

mkdir -p "$T/outside"
echo "secret outside the root" >"$T/outside/secret.txt"
start_serve
grep -q '(generated): SHA256:' "$T/serve.out" || fail "no fingerprint for the generated host key"
[ "$(stat -c %a "$T/keys/serve_host")" = 600 ] || fail "host key not mode 0600"
ok "a missing host key is generated (0600) and its fingerprint printed"

mkdir -p "$T/up/tree/a/b" "$T/got"
head -c $((3 * 1024 * 1024 + 17)) /dev/urandom >"$T/up/big.bin"
echo "leaf" >"$T/up/tree/a/b/leaf.txt"
cat >"$T/batch" <<B
put $T/up/big.bin
put -r $T/up/tree
mkdir made
rename big.bin made/big.bin
chmod 640 made/big.bin
ls -l made
get made/big.bin $T/got/big.bin
get tree/a/b/leaf.txt $T/got/leaf.txt
rm tree/a/b/leaf.txt
rmdir tree/a/b
B
sftp_batch "$T/batch" >"$T/sftp.out" 2>&1 || fail "sftp batch failed: $(cat "$T/sftp.out")"
same_file "$T/up/big.bin" "$T/dst/made/big.bin" || fail "put + rename: bytes differ"
same_file "$T/up/big.bin" "$T/got/big.bin" || fail "get: bytes differ"
same_file "$T/up/tree/a/b/leaf.txt" "$T/got/leaf.txt" || fail "put -r + get differ"
[ "$(stat -c %a "$T/dst/made/big.bin")" = 640 ] || fail "chmod not applied"
[ ! -e "$T/dst/tree/a/b" ] || fail "rm/rmdir not applied"
grep -q 'big.bin' "$T/sftp.out" || fail "ls -l did not list big.bin"
ok "OpenSSH sftp: put, put -r, mkdir, rename, chmod, ls, get, rm, rmdir"

ln -s "$T/outside" "$T/dst/planted"
for cmd in "get ../outside/secret.txt $T/got/x1" "get /../outside/secret.txt $T/got/x2" \
    "get planted/secret.txt $T/got/x3" "put $T/up/tree/a/b/leaf.txt ../outside/new.txt" \
    "put $T/up/tree/a/b/leaf.txt planted/new.txt" "mkdir ../outside/d" \
    "rename made/big.bin ../outside/stolen.bin" "symlink /etc/passwd pw" \
    "ls ../outside"; do
    printf '%s\n' "$cmd" >"$T/b1"
    if sftp_batch "$T/b1" >"$T/esc.out" 2>&1; then
        fail "not refused: $cmd"
    fi
done
[ "$(ls "$T/outside")" = secret.txt ] || fail "something was written outside: $(ls "$T/outside")"
[ ! -e "$T/got/x1" ] && [ ! -e "$T/got/x2" ] && [ ! -e "$T/got/x3" ] || fail "a file from outside was read"
[ ! -e "$T/dst/pw" ] || fail "a link was created"
ok "every path out of the root is refused (.., absolute, planted link, rename, symlink)"

# Logins: a wrong password, an unknown key.
cat >"$T/askpass" <<A
#!/bin/sh
echo "wrong-password"
A
chmod +x "$T/askpass"
echo "ls" >"$T/b2"
# (sftp -b turns BatchMode on, which rules passwords out; the first -o wins.)
if SSH_ASKPASS="$T/askpass" SSH_ASKPASS_REQUIRE=force DISPLAY=none \
    sftp -o BatchMode=no -b "$T/b2" -o UserKnownHostsFile="$T/known_hosts" \
    -o PreferredAuthentications=password -o NumberOfPasswordPrompts=1 \
    -P "$TARGET_PORT" "$(id -un)@127.0.0.1" >"$T/pw.out" 2>&1; then
    fail "a wrong password was accepted"
fi
grep -q "failed password for $(id -un)" "$T/serve.log" || fail "failed password not logged"
grep -q "127.0.0.1:[0-9]*: failed password" "$T/serve.log" || fail "failed login does not name the peer"
printf '#!/bin/sh\ncat %s\n' "$T/password" >"$T/askpass"
SSH_ASKPASS="$T/askpass" SSH_ASKPASS_REQUIRE=force DISPLAY=none \
    sftp -o BatchMode=no -b "$T/b2" -o UserKnownHostsFile="$T/known_hosts" \
    -o PreferredAuthentications=password -o NumberOfPasswordPrompts=1 \
    -P "$TARGET_PORT" "$(id -un)@127.0.0.1" >"$T/pw.out" 2>&1 ||
    fail "the right password was refused: $(cat "$T/pw.out")"
ssh-keygen -q -t ed25519 -N '' -f "$T/keys/stranger"
if sftp -b "$T/b2" -i "$T/keys/stranger" -o IdentitiesOnly=yes \
    -o UserKnownHostsFile="$T/known_hosts" -o BatchMode=yes \
    -P "$TARGET_PORT" "$(id -un)@127.0.0.1" >"$T/key.out" 2>&1; then
    fail "an unknown key was accepted"
fi
ok "a wrong password and an unknown key are refused, and logged with the peer"
! grep -qF "$(cat "$T/password")" "$T/serve.log" "$T/serve.out" || fail "the password is in a log"
ok "the password never reaches a log"

# A hostile client: garbage on the SFTP channel; the server carries on.
head -c 4096 /dev/urandom | ssh -i "$T/keys/client_ed25519" \
    -o UserKnownHostsFile="$T/known_hosts" -o BatchMode=yes -p "$TARGET_PORT" \
    -s "$(id -un)@127.0.0.1" sftp >/dev/null 2>&1 || true
printf '\x7f\xff\xff\xff' | ssh -i "$T/keys/client_ed25519" \
    -o UserKnownHostsFile="$T/known_hosts" -o BatchMode=yes -p "$TARGET_PORT" \
    -s "$(id -un)@127.0.0.1" sftp >/dev/null 2>&1 || true
sftp_batch "$T/b2" >/dev/null 2>&1 || fail "the server did not survive malformed requests"
alive "$TARGET_PID" || fail "the server died"
ok "malformed and oversized requests end that session only"

# The agent pushes through it.
write_conf
mkdir -p "$T/src/a/b/c"
start_agent
for n in 1 2 3; do
    echo "file $n" >"$T/src/a/b/c/file_$n.txt"
done
head -c $((20 * 1024 * 1024)) /dev/urandom >"$T/src/blob.bin"
for f in a/b/c/file_1.txt a/b/c/file_2.txt a/b/c/file_3.txt blob.bin; do
    wait_for 30 is_delivered "$f" || fail "$f not delivered through sftprelay serve"
    same_file "$T/src/$f" "$T/dst/$f" || fail "$f differs"
done
ok "the agent delivers through sftprelay serve, byte-identical"
stop_agent
stop_target

# At most max_sessions at once: the second client is turned away.
start_serve 0 --max-sessions 1
hold_session
holding() { grep -q 'logged in with a key' "$T/serve.log"; }
: >"$T/serve.log"
wait_for 10 holding || fail "the first client did not log in"
if sftp_batch "$T/b2" >/dev/null 2>&1; then
    fail "a second session was accepted with max_sessions 1"
fi
grep -q 'already 1 sessions (server.max_sessions)' "$T/serve.log" || fail "refusal not logged"
release_session
ok "max_sessions bounds the sessions at once"

echo "$TESTS_RUN passed, 0 failed"
