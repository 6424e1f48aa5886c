#!/bin/sh
# Roles of the sftprelay image (see the Dockerfile).  Key material lives in
# the /keys volume, made once by the "keys" role: the agent trusts the
# target's host key because it reads it from there, never by switching
# host-key checking off.
set -eu
role=${1:-source}

case "$role" in
keys)
    [ -f /keys/target_host_ed25519_key ] ||
        ssh-keygen -q -t ed25519 -N '' -C sftp-target -f /keys/target_host_ed25519_key
    [ -f /keys/relay_ed25519 ] ||
        ssh-keygen -q -t ed25519 -N '' -C sftprelay -f /keys/relay_ed25519
    cp /keys/relay_ed25519.pub /keys/authorized_keys
    echo "[${TARGET_HOST:-sftp-target}]:${TARGET_PORT:-2223} $(cut -d' ' -f1,2 /keys/target_host_ed25519_key.pub)" \
        >/keys/known_hosts
    chmod 600 /keys/relay_ed25519 /keys/target_host_ed25519_key
    echo "keys ready in /keys"
    ;;
target)
    mkdir -p /srv/target
    exec sftprelay serve --root /srv/target --listen "0.0.0.0:${TARGET_PORT:-2223}" \
        --user relay --authorized-keys /keys/authorized_keys \
        --host-key /keys/target_host_ed25519_key
    ;;
source)
    echo "testuser:${SFTP_SOURCE_PASSWORD:-testpass}" | chpasswd
    ssh-keygen -A >/dev/null
    mkdir -p /etc/sftprelay
    cat >/etc/sftprelay/sftprelay.conf <<CONF
source   = { path = "/home/testuser/upload"; };
target   = { type = "sftp"; host = "${TARGET_HOST:-sftp-target}";
             port = ${TARGET_PORT:-2223}; user = "relay";
             identity = "/keys/relay_ed25519";
             known_hosts = "/keys/known_hosts"; path = "/"; };
journal  = { path = "/var/lib/sftprelay/journal.db"; };
log      = { level = "info"; };
CONF
    # The journal is read by Airflow (uid ${AIRFLOW_UID:-50000}, group 0):
    # files 0640 root:root in a 0750 folder are readable through group 0.
    chmod 0750 /var/lib/sftprelay
    /usr/sbin/sshd -e
    exec sftprelayd -c /etc/sftprelay/sftprelay.conf
    ;;
*)
    echo "usage: sftprelay-entrypoint keys|source|target" >&2
    exit 2
    ;;
esac
