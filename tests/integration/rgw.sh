# A real S3 server for the tests and the bench (sourced after lib.sh, bash).
#
# start_rgw runs a throwaway Ceph cluster on 127.0.0.1, all its state in
# $T/rgw: one monitor, one OSD keeping its objects in memory (memstore),
# and one RADOS Gateway (radosgw, beast frontend) serving S3; no cephx.
# It makes an S3 user with known keys and exports what a client needs:
#
#   RGW_ENDPOINT      http://127.0.0.1:PORT
#   RGW_ACCESS_KEY    the user's access key id
#   RGW_SECRET_KEY    its secret key (also in the file $RGW_SECRET_FILE)
#   RGW_REGION        the region to sign with (radosgw takes the one the
#                     client names; us-east-1)
#   RGW_TLS_ENDPOINT  https://127.0.0.1:PORT (start_rgw -t only), with a
#   RGW_CA_FILE       certificate for 127.0.0.1 signed by this test CA
#   RGW_PORT, RGW_TLS_PORT, RGW_CEPH_CONF (for radosgw-admin -c)
#   RGW_START_SECONDS how long the start took, until S3 answered
#
# stop_rgw stops the daemons by PID; start_rgw also puts stop_rgw in front
# of the EXIT trap already set (lib.sh's cleanup), so a failing test stops
# them too.  Set no EXIT trap after start_rgw.
#
# The rgw_* helpers check bytes independently of the agent's code: they
# use curl's own SigV4 signing (--aws-sigv4).  They go to RGW_VIA if set
# (the fault proxy, or RGW_TLS_ENDPOINT), else to RGW_ENDPOINT, and fail
# loudly: "rgw_put bkt/key: HTTP 403 SignatureDoesNotMatch" on stderr and
# status 1.
#
#   rgw_mb BUCKET                   make a bucket
#   rgw_put BUCKET KEY FILE         upload FILE in one PUT
#   rgw_get BUCKET KEY OUTFILE      download
#   rgw_head BUCKET KEY             the object's response headers on stdout
#   rgw_ls BUCKET [PREFIX]          the keys, one a line (all pages)
#   rgw_uploads BUCKET              multipart uploads in progress:
#                                   "KEY UPLOADID", one a line
#   rgw_purge BUCKET                remove a bucket and its objects now
#                                   (radosgw-admin, no garbage collector)
#   rgw_curl OUT METHOD PATH HASH [CURL ARGS]  one signed request; the body
#                                   to OUT, the HTTP status on stdout

RGW_REGION=us-east-1
RGW_ACCESS_KEY=SFTPRELAYTESTKEY0001
RGW_SECRET_KEY=sftprelay-test-secret-0123456789abcdefghij
RGW_PIDS=()
RGW_EMPTY_SHA256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855

rgw_fail() {
    local f
    for f in "$T"/rgw/log/*; do
        [ -s "$f" ] || continue
        echo "---- $f (last 15 lines)" >&2
        tail -n 15 "$f" >&2
    done
    fail "$@"
}

# rgw_conf DIR MON_PORT: the cluster's ceph.conf.
rgw_conf() {
    local d=$1 fsid
    fsid=$(cat /proc/sys/kernel/random/uuid)
    cat <<CONF
[global]
fsid = $fsid
mon_host = v2:127.0.0.1:$2
public_addr = 127.0.0.1
cluster_addr = 127.0.0.1
ms_bind_ipv6 = false
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
ms_mon_client_mode = crc
keyring = /dev/null
run_dir = $d/run
admin_socket = $d/run/\$name.asok
pid_file =
crash_dir = $d/crash
log_file = $d/log/\$name.log
mon_cluster_log_file = $d/log/\$cluster.\$channel.log
mon_data = $d/mon/\$name
osd_data = $d/osd/\$name
osd_objectstore = memstore
memstore_device_bytes = $((${RGW_MEMSTORE_MB:-1024} << 20))
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
mon_allow_pool_size_one = true
mon_warn_on_pool_no_redundancy = false
paxos_propose_interval = 0.01

[mon.a]
public_addr = v2:127.0.0.1:$2

[client.rgw]
rgw_data = $d/rgw
CONF
}

# rgw_tls DIR: a throwaway CA (DIR/ca.pem) and a certificate for
# 127.0.0.1 it signed (DIR/rgw.pem, key DIR/rgw.key).
rgw_tls() {
    local d=$1
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -days 2 -subj "/CN=sftprelay test CA" -keyout "$d/ca.key" \
        -out "$d/ca.pem" -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign" 2>/dev/null
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -subj "/CN=127.0.0.1" -keyout "$d/rgw.key" -out "$d/rgw.csr" \
        2>/dev/null
    printf '%s\n' "subjectAltName = IP:127.0.0.1" \
        "basicConstraints = CA:FALSE" "extendedKeyUsage = serverAuth" \
        >"$d/rgw.ext"
    openssl x509 -req -in "$d/rgw.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
        -set_serial "$RANDOM$RANDOM" -days 2 -extfile "$d/rgw.ext" \
        -out "$d/rgw.pem" 2>/dev/null
}

# rgw_spawn NAME CMD...: a daemon in the foreground of a background job,
# its output to $T/rgw/log/NAME.out.
rgw_spawn() {
    local name=$1
    shift
    "$@" >>"$T/rgw/log/$name.out" 2>&1 &
    RGW_PIDS+=("$!")
}

# rgw_up: S3 answers on every endpoint, or one of the daemons has exited
# (its PID in RGW_DEAD).
rgw_up() {
    local pid
    for pid in "${RGW_PIDS[@]}"; do
        alive "$pid" || {
            RGW_DEAD=$pid
            return 0
        }
    done
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$RGW_ENDPOINT/")" = 200 ] ||
        return 1
    [ -z "$RGW_TLS_ENDPOINT" ] ||
        [ "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$RGW_CA_FILE" \
            "$RGW_TLS_ENDPOINT/")" = 200 ]
}

# start_rgw [-t]: the cluster and the gateway, ready to serve; -t: also
# TLS on RGW_TLS_ENDPOINT.  RGW_MEMSTORE_MB (1024) is the OSD's capacity:
# the objects live in its memory.
start_rgw() {
    local d=$T/rgw c mon_port frontends t0 uuid prev
    command -v radosgw >/dev/null ||
        fail "no radosgw: install Ceph's packages with scripts/deps"
    t0=$(date +%s%N)
    mkdir -p "$d"/{mon/mon.a,osd/osd.0,rgw,run,log,crash}
    {
        read -r mon_port
        read -r RGW_PORT
        read -r RGW_TLS_PORT
    } < <(free_port 3)
    RGW_CEPH_CONF=$d/ceph.conf
    c=(-c "$RGW_CEPH_CONF")
    rgw_conf "$d" "$mon_port" >"$RGW_CEPH_CONF"
    frontends="beast endpoint=127.0.0.1:$RGW_PORT"
    RGW_ENDPOINT=http://127.0.0.1:$RGW_PORT
    RGW_TLS_ENDPOINT=
    RGW_CA_FILE=
    if [ "${1:-}" = -t ]; then
        rgw_tls "$d" || fail "openssl could not make the test certificates"
        RGW_TLS_ENDPOINT=https://127.0.0.1:$RGW_TLS_PORT
        RGW_CA_FILE=$d/ca.pem
        frontends+=" ssl_endpoint=127.0.0.1:$RGW_TLS_PORT"
        frontends+=" ssl_certificate=$d/rgw.pem ssl_private_key=$d/rgw.key"
    fi
    RGW_SECRET_FILE=$d/secret
    printf '%s\n' "$RGW_SECRET_KEY" >"$RGW_SECRET_FILE"
    chmod 600 "$RGW_SECRET_FILE"
    export RGW_ENDPOINT RGW_ACCESS_KEY RGW_SECRET_KEY RGW_SECRET_FILE \
        RGW_REGION RGW_TLS_ENDPOINT RGW_CA_FILE RGW_CEPH_CONF

    if [ -z "${RGW_TRAPPED:-}" ]; then
        eval "prev=($(trap -p EXIT))"
        trap "stop_rgw; ${prev[2]:-}" EXIT
        RGW_TRAPPED=1
    fi
    ceph-mon "${c[@]}" --mkfs -i a >>"$d/log/mkfs.out" 2>&1 ||
        rgw_fail "ceph-mon --mkfs failed"
    rgw_spawn mon ceph-mon "${c[@]}" -f -i a
    uuid=$(cat /proc/sys/kernel/random/uuid)
    # The CLI waits for the monitor to answer.
    ceph "${c[@]}" --connect-timeout 30 osd new "$uuid" 0 \
        >>"$d/log/mkfs.out" 2>&1 || rgw_fail "ceph osd new failed"
    ceph-osd "${c[@]}" -i 0 --mkfs --osd-uuid "$uuid" >>"$d/log/mkfs.out" 2>&1 ||
        rgw_fail "ceph-osd --mkfs failed"
    rgw_spawn osd ceph-osd "${c[@]}" -f -i 0
    rgw_spawn rgw radosgw "${c[@]}" -f -n client.rgw --rgw-frontends "$frontends"
    RGW_DEAD=
    wait_for 60 rgw_up || rgw_fail "radosgw did not answer on $RGW_ENDPOINT"
    [ -z "$RGW_DEAD" ] ||
        rgw_fail "a Ceph daemon (pid $RGW_DEAD) exited while starting"
    radosgw-admin "${c[@]}" user create --uid=sftprelay-test \
        --display-name="sftprelay test" --access-key="$RGW_ACCESS_KEY" \
        --secret="$RGW_SECRET_KEY" >>"$d/log/mkfs.out" 2>&1 ||
        rgw_fail "radosgw-admin user create failed"
    RGW_START_SECONDS=$(awk -v a="$t0" -v b="$(date +%s%N)" \
        'BEGIN {printf "%.2f", (b - a) / 1e9}')
    export RGW_START_SECONDS
}

rgw_none_alive() {
    local pid
    for pid in "$@"; do
        ! alive "$pid" || return 1
    done
}

# rgw_stop_pids BOUND PID...: SIGTERM, then wait for each to exit (reaped);
# SIGKILL what is left after BOUND seconds.
rgw_stop_pids() {
    local bound=$1 pid
    shift
    kill "$@" 2>/dev/null || true
    if ! wait_for "$bound" rgw_none_alive "$@"; then
        echo "stop_rgw: SIGKILL to what is left of $* after $bound s" >&2
        kill -KILL "$@" 2>/dev/null || true
    fi
    for pid in "$@"; do
        wait "$pid" 2>/dev/null || true
    done
}

# stop_rgw: the gateway, the OSD, the monitor, in that order, each waited
# for by PID before the next (an OSD whose monitor is gone waits 5 s for
# the monitor's answer to "I am stopping").
stop_rgw() {
    local i
    for ((i = ${#RGW_PIDS[@]} - 1; i >= 0; i--)); do
        rgw_stop_pids 30 "${RGW_PIDS[i]}"
    done
    RGW_PIDS=()
}

# rgw_enc [-q] STRING: STRING RFC 3986-encoded, as SigV4 wants it: '/'
# kept in a path, encoded in a query value (-q).
rgw_enc() {
    local LC_ALL=C keep=/ s out="" c i
    if [ "$1" = -q ]; then
        keep=""
        shift
    fi
    s=$1
    for ((i = 0; i < ${#s}; i++)); do
        c=${s:i:1}
        if [[ $c == [A-Za-z0-9._~-] || $c == "$keep" ]]; then
            out+=$c
        else
            printf -v c '%02X' "'$c" # of a byte above 127: FF...FFxx
            out+="%${c: -2}"
        fi
    done
    printf '%s' "$out"
}

# rgw_curl OUT METHOD PATH HASH [CURL ARGS]: one request signed with the
# test user's keys (RGW_SECRET_KEY may be overridden to sign wrongly).
# PATH is encoded already, with its query sorted; HASH is the payload's
# SHA-256 ("": the empty body's).  The body goes to OUT (the headers, for
# HEAD); prints the HTTP status (000: curl failed, before or after an
# answer; its error on stderr).
rgw_curl() {
    local out=$1 method=$2 path=$3 hash=${4:-$RGW_EMPTY_SHA256}
    local url=${RGW_VIA:-$RGW_ENDPOINT} how=(-X "$method") tls=() st
    shift 4
    [ "$method" != HEAD ] || how=(--head)
    [[ $url != https:* ]] || [ -z "${RGW_CA_FILE:-}" ] ||
        tls=(--cacert "$RGW_CA_FILE")
    st=$(curl -sS -o "$out" -w '%{http_code}' "${how[@]}" "${tls[@]}" \
        --aws-sigv4 "aws:amz:$RGW_REGION:s3" \
        --user "$RGW_ACCESS_KEY:$RGW_SECRET_KEY" \
        -H "x-amz-content-sha256: $hash" "$@" "$url$path") || st=000
    echo "$st"
}

# rgw_check WHAT STATUS BODY: a 2xx STATUS, or "WHAT: HTTP STATUS CODE" on
# stderr and status 1.
rgw_check() {
    local code=""
    case $2 in
    2??) return 0 ;;
    esac
    [ ! -f "$3" ] ||
        code=$(sed -n 's|.*<Code>\([^<]*\)</Code>.*|\1|p' "$3" 2>/dev/null)
    echo "$1: HTTP $2${code:+ $code}" >&2
    return 1
}

rgw_mb() {
    local st
    st=$(rgw_curl "$T/rgw.body" PUT "/$(rgw_enc "$1")" "")
    rgw_check "rgw_mb $1" "$st" "$T/rgw.body"
}

rgw_put() {
    local st hash
    hash=$(sha256sum <"$3")
    st=$(rgw_curl "$T/rgw.body" PUT "/$(rgw_enc "$1/$2")" "${hash%% *}" \
        -T "$3")
    rgw_check "rgw_put $1/$2" "$st" "$T/rgw.body"
}

rgw_get() {
    local st
    st=$(rgw_curl "$3" GET "/$(rgw_enc "$1/$2")" "")
    rgw_check "rgw_get $1/$2" "$st" "$3" || {
        rm -f "$3"
        return 1
    }
}

rgw_head() {
    local st
    st=$(rgw_curl "$T/rgw.head" HEAD "/$(rgw_enc "$1/$2")" "")
    rgw_check "rgw_head $1/$2" "$st" "" || return 1
    tr -d '\r' <"$T/rgw.head"
}

# rgw_xml Key|Upload: from an S3 listing on stdin, each object's key, or
# each upload's "KEY UPLOADID", one a line, unescaped; the
# NextContinuationToken, if any, to $T/rgw.next.
rgw_xml() {
    local xml
    xml=$(tr -d '\n')
    sed -n 's|.*<NextContinuationToken>\([^<]*\)<.*|\1|p' <<<"$xml" \
        >"$T/rgw.next"
    case $1 in
    Key) sed 's|<Contents>|\n|g' <<<"$xml" |
        sed -n 's|.*<Key>\([^<]*\)</Key>.*|\1|p' ;;
    Upload) sed 's|<Upload>|\n|g' <<<"$xml" |
        sed -n 's|.*<Key>\([^<]*\)</Key>.*<UploadId>\([^<]*\)<.*|\1 \2|p' ;;
    esac | sed "s/&lt;/</g; s/&gt;/>/g; s/&quot;/\"/g; s/&apos;/'/g; s/&amp;/\\&/g"
}

rgw_ls() {
    local q st token="" prefix=""
    [ -z "${2:-}" ] || prefix="&prefix=$(rgw_enc -q "$2")"
    while :; do
        q="list-type=2$prefix"
        [ -z "$token" ] || q="continuation-token=$(rgw_enc -q "$token")&$q"
        st=$(rgw_curl "$T/rgw.body" GET "/$(rgw_enc "$1")?$q" "")
        rgw_check "rgw_ls $1" "$st" "$T/rgw.body" || return 1
        rgw_xml Key <"$T/rgw.body" || return 1
        token=$(<"$T/rgw.next")
        [ -n "$token" ] || return 0
    done
}

rgw_uploads() {
    local st
    st=$(rgw_curl "$T/rgw.body" GET "/$(rgw_enc "$1")?uploads=" "")
    rgw_check "rgw_uploads $1" "$st" "$T/rgw.body" || return 1
    rgw_xml Upload <"$T/rgw.body"
}

rgw_purge() {
    radosgw-admin -c "$RGW_CEPH_CONF" bucket rm --bucket="$1" \
        --purge-objects --bypass-gc >>"$T/rgw/log/purge.out" 2>&1 || {
        echo "rgw_purge $1: radosgw-admin failed (see $T/rgw/log/purge.out)" >&2
        return 1
    }
}

# start_s3_faults [OPTIONS]: tests/integration/s3_faults.py in front of the
# gateway's HTTP port, reading its faults from $S3_FAULTS_CONTROL (empty
# at first: none) and OPTIONS; sets S3_FAULTS_URL (http://127.0.0.1:PORT,
# e.g. for RGW_VIA or an agent's endpoint) and S3_FAULTS_PID.  Its log:
# $T/s3_faults.log, a line a request.
start_s3_faults() {
    local out=$T/s3_faults.port
    S3_FAULTS_CONTROL=$T/s3_faults
    : >"$S3_FAULTS_CONTROL"
    : >"$out"
    python3 "$(dirname "${BASH_SOURCE[0]}")/s3_faults.py" --to "$RGW_PORT" \
        --control "$S3_FAULTS_CONTROL" "$@" >"$out" 2>>"$T/s3_faults.log" &
    S3_FAULTS_PID=$!
    PIDS+=("$S3_FAULTS_PID")
    wait_for 20 test -s "$out" ||
        fail "s3_faults.py did not start: $(tail -n 5 "$T/s3_faults.log")"
    S3_FAULTS_URL=http://127.0.0.1:$(<"$out")
}
