#!/usr/bin/env bash
# The sink conformance suite (tests/unit/check_sinks.c) against every sink
# on a real server: the local folder, OpenSSH sshd for sftp, and the Ceph
# RADOS Gateway for s3.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/rgw.sh"

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

# s3: radosgw, a bucket of its own; "down" is a port nobody listens on.
start_rgw
rgw_mb conformance
cat >"$T/s3.conf" <<CONF
source = { path = "$T/src"; };
target = { type = "s3"; endpoint = "$RGW_ENDPOINT"; path_style = true;
           bucket = "conformance"; prefix = "p/";
           access_key_id = "$RGW_ACCESS_KEY";
           secret_access_key_file = "$RGW_SECRET_FILE"; part_size = 5242880; };
CONF
sed "s|$RGW_ENDPOINT|http://127.0.0.1:$down_port|" "$T/s3.conf" >"$T/s3-down.conf"

export SINKS="local sftp s3"
export SINK_LOCAL_CONF=$T/local.conf SINK_LOCAL_DOWN_CONF=$T/local-down.conf
export SINK_LOCAL_FETCH="cd '$T/local' && cat --"
export SINK_SFTP_CONF=$T/relay.conf SINK_SFTP_DOWN_CONF=$T/sftp-down.conf
export SINK_SFTP_FETCH="cd '$T/dst' && cat --"
export SINK_S3_CONF=$T/s3.conf SINK_S3_DOWN_CONF=$T/s3-down.conf
# a script of its own: popen's sh would not pass exported functions on
{
    echo '#!/usr/bin/env bash'
    declare -p T RGW_ENDPOINT RGW_REGION RGW_ACCESS_KEY RGW_SECRET_KEY \
        RGW_EMPTY_SHA256
    declare -f rgw_get rgw_curl rgw_check rgw_enc
    echo 'rgw_get conformance "p/$1" "$T/fetched" && cat "$T/fetched"'
} >"$T/s3-fetch"
chmod +x "$T/s3-fetch"
export SINK_S3_FETCH=$T/s3-fetch

"$CHECK_SINKS" || fail "the conformance suite failed for: $SINKS"
ok "every sink ($SINKS) passes the conformance suite"
[ -z "$(rgw_uploads conformance)" ] ||
    fail "s3: multipart uploads left behind: $(rgw_uploads conformance)"
ok "s3: no multipart upload left behind"
