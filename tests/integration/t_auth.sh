#!/usr/bin/env bash
# Login with a passphrase-protected key read from a passphrase file; a wrong
# passphrase is refused with a clear error; the secret never reaches a log.
. "$(dirname "$0")/lib.sh"

start_sshd
secret="correct horse battery $RANDOM"
ssh-keygen -q -t ed25519 -N "$secret" -f "$T/keys/locked"
cat "$T/keys/locked.pub" >>"$T/keys/authorized_keys"
umask 077
echo "$secret" >"$T/passphrase"
echo "wrong $RANDOM" >"$T/wrong"
umask 022
write_conf
sed -i "s|identity = \"$T/keys/client_ed25519\";|identity = \"$T/keys/locked\"; passphrase_file = \"$T/wrong\";|" \
    "$T/relay.conf"
grep -q 'passphrase_file' "$T/relay.conf" || fail "config not rewritten"
echo "locked" >"$T/src/f.txt"
start_agent

refused() { relay status | grep -q "login as $(id -un) refused"; }
wait_for 20 refused || fail "wrong passphrase: status: $(relay status)"
relay status | grep -q "key $T/keys/locked" || fail "error does not name the key"
[ -z "$(ls -A "$T/dst")" ] || fail "something was sent"
ok "a wrong passphrase is refused, naming the key file"
stop_agent

sed -i "s|passphrase_file = \"$T/wrong\"|passphrase_file = \"$T/passphrase\"|" "$T/relay.conf"
start_agent agent2
wait_for 30 is_delivered f.txt || fail "not delivered with the right passphrase"
same_file "$T/src/f.txt" "$T/dst/f.txt" || fail "differs"
ok "a passphrase-protected key with its passphrase file logs in"
stop_agent

for f in "$T"/agent*.log "$T/sshd.log" "$T/state/journal.db"*; do
    ! grep -qF "$secret" "$f" || fail "the passphrase is in $f"
    ! grep -qF "$(cat "$T/wrong")" "$f" || fail "the wrong passphrase is in $f"
done
ok "neither passphrase appears in any log or in the journal"

echo "$TESTS_RUN passed, 0 failed"
