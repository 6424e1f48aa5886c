#!/usr/bin/env bash
# The sink conformance suite (tests/unit/check_sinks.c) against every sink
# on a real server: the local folder, OpenSSH sshd for sftp, and the Ceph
# RADOS Gateway for s3 when the agent has that sink.
. "$(dirname "$0")/lib.sh"

CHECK_SINKS=${CHECK_SINKS:-$abs_top_builddir/tests/unit/check_sinks}
start_sshd
write_conf
down_port=$(free_port)

# local: a folder of its own.
mkdir -p "$T/local"
cat >"$T/local.conf" <<CONF
source = { path = "$T/src"; };
target = { type = "local"; path = "$T/local"; };
CONF
cat >"$T/local-down.conf" <<CONF
source = { path = "$T/src"; };
target = { type = "local"; path = "$T/local/missing"; };
CONF

# sftp: the test's sshd, which writes into $T/dst on this host.
sed "s/port = $TARGET_PORT;/port = $down_port;/" "$T/relay.conf" >"$T/sftp-down.conf"
grep -q "port = $down_port;" "$T/sftp-down.conf" || fail "down config not written"

export SINKS="local sftp"
export SINK_LOCAL_CONF=$T/local.conf SINK_LOCAL_DOWN_CONF=$T/local-down.conf
export SINK_LOCAL_FETCH="cd '$T/local' && cat --"
export SINK_SFTP_CONF=$T/relay.conf SINK_SFTP_DOWN_CONF=$T/sftp-down.conf
export SINK_SFTP_FETCH="cd '$T/dst' && cat --"

"$CHECK_SINKS" || fail "the conformance suite failed for: $SINKS"
ok "every sink ($SINKS) passes the conformance suite"
