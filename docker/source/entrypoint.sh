#!/bin/sh
# Roles of the sftprelay image (see the Dockerfile).  Key material lives in
# the shared key volume, made once by the "keys" role: the agent trusts the
# target's host key because it reads it from there, never by switching
# host-key checking off.
#   keys    make the keys, known_hosts and authorized_keys in $KEYS
#   config  write the agent's configuration to $ETC/sftprelay.conf
#   source  OpenSSH (internal-sftp, testuser chrooted) and sftprelayd
#   target  "sftprelay serve" on $TARGET_PORT
# Where the servers listen, for a host-network run (tests/integration/
# t_compose_run.sh): SOURCE_SSH_LISTEN (ADDRESS:PORT, default sshd_config's
# port 22 on every address) and TARGET_LISTEN (default 0.0.0.0:TARGET_PORT).
set -eu
role=${1:-source}
KEYS=${KEYS:-/keys}
ETC=${ETC:-/etc/sftprelay}
TARGET_HOST=${TARGET_HOST:-sftp-target}
TARGET_PORT=${TARGET_PORT:-2223}
TARGET_LISTEN=${TARGET_LISTEN:-0.0.0.0:$TARGET_PORT}

write_config() {
    mkdir -p "$ETC"
    cat >"$ETC/sftprelay.conf" <<CONF
source   = { path = "/home/testuser/upload"; };
target   = { type = "sftp"; host = "$TARGET_HOST"; port = $TARGET_PORT;
             user = "relay"; identity = "$KEYS/relay_ed25519";
             known_hosts = "$KEYS/known_hosts"; path = "/"; };
journal  = { path = "/var/lib/sftprelay/journal.db"; };
log      = { level = "info"; };
CONF
}

case "$role" in
keys)
    [ -f "$KEYS/target_host_ed25519_key" ] ||
        ssh-keygen -q -t ed25519 -N '' -C sftp-target \
            -f "$KEYS/target_host_ed25519_key"
    [ -f "$KEYS/relay_ed25519" ] ||
        ssh-keygen -q -t ed25519 -N '' -C sftprelay -f "$KEYS/relay_ed25519"
    cp "$KEYS/relay_ed25519.pub" "$KEYS/authorized_keys"
    echo "[$TARGET_HOST]:$TARGET_PORT $(cut -d' ' -f1,2 "$KEYS/target_host_ed25519_key.pub")" \
        >"$KEYS/known_hosts"
    chmod 600 "$KEYS/relay_ed25519" "$KEYS/target_host_ed25519_key"
    echo "keys ready in $KEYS"
    ;;
config)
    write_config
    ;;
target)
    mkdir -p /srv/target
    exec sftprelay serve --root /srv/target --listen "$TARGET_LISTEN" \
        --user relay --authorized-keys "$KEYS/authorized_keys" \
        --host-key "$KEYS/target_host_ed25519_key"
    ;;
source)
    echo "testuser:${SFTP_SOURCE_PASSWORD:-testpass}" | chpasswd
    ssh-keygen -A >/dev/null
    write_config
    # The journal is read by Airflow (uid AIRFLOW_UID, group 0): files 0640
    # root:root in a 0750 folder are readable through group 0.
    chmod 0750 /var/lib/sftprelay
    if [ -n "${SOURCE_SSH_LISTEN:-}" ]; then
        /usr/sbin/sshd -e -o ListenAddress="$SOURCE_SSH_LISTEN"
    else
        /usr/sbin/sshd -e
    fi
    exec sftprelayd -c "$ETC/sftprelay.conf"
    ;;
*)
    echo "usage: sftprelay-entrypoint keys|config|source|target" >&2
    exit 2
    ;;
esac
