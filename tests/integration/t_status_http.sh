#!/usr/bin/env bash
# The status endpoint under curl, as a user (or Prometheus, or an Airflow
# sensor on another host) asks it: a real agent replicating to sshd with
# files delivered, one failed and one queued while the target is down;
# the token asked and never logged; each endpoint's JSON against what the
# CLI prints from the same journal; bad requests; a slow client; the
# metrics text through promtool; HTTPS with a self-signed certificate;
# start-up errors that name the key.
. "$(dirname "$0")/lib.sh"

command -v curl >/dev/null || fail "curl is missing (scripts/deps)"
command -v promtool >/dev/null || fail "promtool is missing (scripts/deps: prometheus)"

start_sshd
write_conf
conf_keys transfer "max_attempts = 1;"
TOKEN="tok-$RANDOM-$RANDOM-$RANDOM-$(date +%N)"
printf '%s\n' "$TOKEN" >"$T/token"
chmod 600 "$T/token"
SPORT=$(free_port)
cp "$T/relay.conf" "$T/base.conf"
status_conf() {
    cp "$T/base.conf" "$T/relay.conf"
    echo "status = { $1 };" >>"$T/relay.conf"
}
status_conf "listen = \"127.0.0.1:$SPORT\"; token_file = \"$T/token\";
             timeout = 2; max_connections = 4;"
URL=http://127.0.0.1:$SPORT

# http PATH [CURL ARGS]: the body in $T/body, the headers in $T/headers,
# the status in CODE; with the token unless NO_TOKEN is set.
http() {
    local path=$1 auth=()
    shift
    [ -n "${NO_TOKEN:-}" ] || auth=(-H "Authorization: Bearer $TOKEN")
    CODE=$(curl -gsS --max-time 10 -o "$T/body" -D "$T/headers" \
        -w '%{http_code}' "${auth[@]}" "$@" "${BASE:-$URL}$path") || CODE=curl$?
}

# json_error PATH WANT_CODE WANT_TEXT [CURL ARGS]: a JSON {"error": TEXT}.
json_error() {
    local path=$1 code=$2 text=$3
    shift 3
    http "$path" "$@"
    [ "$CODE" = "$code" ] || fail "$path: $CODE, expected $code: $(cat "$T/body")"
    "$PY" - "$T/body" "$text" <<'PY' || fail "$path: body $(cat "$T/body")"
import json, sys
body = json.load(open(sys.argv[1]))
assert body == {"error": sys.argv[2]}, (body, sys.argv[2])
PY
}

# A file for each state: delivered (three, one whose name is Latin-1),
# failed (a plain file stands where its folder must go, max_attempts 1).
LATIN1=$(printf 'r\xe9sum\xe9.csv')
mkdir -p "$T/src/sub" "$T/src/blocked"
echo alpha >"$T/src/a.txt"
echo beta >"$T/src/sub/b.txt"
echo "latin-1" >"$T/src/$LATIN1"
echo "in the way" >"$T/dst/blocked"
echo payload >"$T/src/blocked/file.txt"
start_agent
healthy() { NO_TOKEN=1 http /healthz && [ "$CODE" = 200 ]; }
wait_for 20 healthy || fail "no status endpoint on $URL: $CODE"
is_failed() { [ "$(state_of blocked/file.txt)" = failed ]; }
wait_for 30 is_delivered a.txt || fail "a.txt not delivered"
wait_for 30 is_delivered sub/b.txt || fail "sub/b.txt not delivered"
wait_for 30 is_delivered "$LATIN1" || fail "the Latin-1 name not delivered"
wait_for 30 is_failed || fail "blocked/file.txt not failed"

# The target goes away: a file found now stays queued.
kill_target
target_down() {
    http /metrics && grep -q '^sftprelay_target_up{.*} 0$' "$T/body"
}
echo gamma >"$T/src/c.txt"
wait_for 30 target_down || fail "metrics never said the target is down"
[ "$(state_of c.txt)" = queued ] || fail "c.txt is $(state_of c.txt), not queued"
ok "an agent with 3 files delivered, 1 failed, 1 queued; the target down"

NO_TOKEN=1 http /healthz 2>/dev/null
[ "$CODE" = 200 ] || fail "healthz: $CODE"
"$PY" -c '
import json, sys
h = json.load(open(sys.argv[1]))
assert h["ok"] is True and h["uptime_seconds"] >= 0, h' "$T/body" ||
    fail "healthz: $(cat "$T/body")"
http /healthz -I # curl -I writes the headers where the body would go
[ "$CODE" = 200 ] && ! grep -q '"ok"' "$T/body" || fail "HEAD /healthz: $CODE $(cat "$T/body")"
ok "GET /healthz answers without a token; HEAD has no body"

for p in /v1/files /v1/summary /metrics; do
    NO_TOKEN=1 json_error "$p" 401 \
        'a bearer token is needed: send the header "Authorization: Bearer TOKEN"'
    grep -qi '^WWW-Authenticate: Bearer realm="sftprelay"' "$T/headers" ||
        fail "$p: no WWW-Authenticate: $(cat "$T/headers")"
    NO_TOKEN=1 json_error "$p" 401 \
        'the bearer token is not the one in status.token_file' \
        -H "Authorization: Bearer ${TOKEN}x"
    grep -qi 'error="invalid_token"' "$T/headers" || fail "$p: wrong token's header"
    NO_TOKEN=1 json_error "$p" 401 \
        'a bearer token is needed: send the header "Authorization: Bearer TOKEN"' \
        -H "Authorization: Basic $(printf 'u:%s' "$TOKEN" | base64)"
done
ok "401 with a JSON error and WWW-Authenticate: no token, a wrong one, Basic"

# /v1/files is, byte for byte, what `sftprelay list --json` prints.
relay list --json >"$T/cli.json"
http /v1/files
[ "$CODE" = 200 ] || fail "/v1/files: $CODE"
grep -qi '^Content-Type: application/json' "$T/headers" || fail "content type"
cmp -s "$T/cli.json" "$T/body" || fail "/v1/files differs from list --json:
$(diff "$T/cli.json" "$T/body" | head)"
"$PY" - "$T/body" <<'PY' || fail "/v1/files: $(cat "$T/body")"
import json, sys
rows = json.load(open(sys.argv[1]))
assert len(rows) == 5, rows
PY
ok "GET /v1/files is byte for byte sftprelay list --json"

# files QUERY WANT...: /v1/files?QUERY holds the rows of list --json whose
# ASCII paths are WANT ("LATIN1" for the Latin-1 name), in order.
files() {
    local query=$1
    shift
    http "/v1/files?$query"
    [ "$CODE" = 200 ] || fail "/v1/files?$query: $CODE $(cat "$T/body")"
    "$PY" - "$T/cli.json" "$T/body" "$@" <<'PY' || fail "/v1/files?$query: $(cat "$T/body")"
import json, sys
cli = json.load(open(sys.argv[1]))
got = json.load(open(sys.argv[2]))
latin1 = [r for r in cli if r["path"] not in
          ("a.txt", "sub/b.txt", "blocked/file.txt", "c.txt")]
assert len(latin1) == 1, latin1
want = [latin1[0] if w == "LATIN1" else
        next(r for r in cli if r["path"] == w) for w in sys.argv[3:]]
assert got == want, (got, want)
PY
}
files "path=r%E9sum%E9.csv" LATIN1
files "path=r%e9sum%e9.csv&state=delivered" LATIN1
files "path=r%E9sum%E9.csv&state=failed"
files "path=no%2Fsuch"
files "prefix=sub%2F" sub/b.txt
files "prefix=r%E9" LATIN1
files "prefix=%E9"
files "state=failed" blocked/file.txt
files "state=queued" c.txt
files "state=delivered&limit=2" a.txt LATIN1
grep -qi '^Sftprelay-Truncated: true' "$T/headers" || fail "limit=2 of 3: no Sftprelay-Truncated"
files "state=delivered&limit=3" a.txt LATIN1 sub/b.txt
! grep -qi '^Sftprelay-Truncated' "$T/headers" || fail "limit=3 of 3: Sftprelay-Truncated"
files "limit=10000&prefix=" a.txt blocked/file.txt c.txt LATIN1 sub/b.txt
ok "?path= (percent-encoded Latin-1), ?prefix=, ?state=, ?limit= select rows"

# ?after=: the rows whose path sorts above those bytes, so a client pages
# through a long list (after= the last path of a page) while the header
# says there are more.
files "after=blocked%2Ffile.txt" c.txt LATIN1 sub/b.txt
files "after=b" blocked/file.txt c.txt LATIN1 sub/b.txt
files "after=r%E9sum%E9.csv" sub/b.txt
files "after=r%E9" LATIN1 sub/b.txt
files "after=%FF"
files "after=" a.txt blocked/file.txt c.txt LATIN1 sub/b.txt
files "prefix=sub%2F&after=a.txt" sub/b.txt
files "prefix=sub%2F&after=sub%2Fb.txt"
files "after=r%E9&prefix=r%E9" LATIN1
files "prefix=c&after=r"
files "state=delivered&limit=1" a.txt
grep -qi '^Sftprelay-Truncated: true' "$T/headers" || fail "page 1 of 3: no Sftprelay-Truncated"
files "state=delivered&limit=1&after=a.txt" LATIN1
grep -qi '^Sftprelay-Truncated: true' "$T/headers" || fail "page 2 of 3: no Sftprelay-Truncated"
files "state=delivered&limit=1&after=r%E9sum%E9.csv" sub/b.txt
! grep -qi '^Sftprelay-Truncated' "$T/headers" || fail "page 3 of 3: Sftprelay-Truncated"
ok "?after= (a Latin-1 one too) alone, with prefix= and state=: the next page"

limit_error() {
    json_error "/v1/files?limit=$1" 400 \
        "limit: expected a whole number from 1 to 10000 (the maximum), not \"$2\""
}
limit_error 99999999999999999999 99999999999999999999
limit_error 10001 10001
limit_error -1 -1
limit_error 0 0
limit_error ten ten
limit_error "" ""
json_error "/v1/files?colour=red" 400 \
    'unknown query key "colour" (known: path, prefix, state, limit, after)'
json_error "/v1/files?path=a&path=b" 400 "path: given twice"
json_error "/v1/files?path=a&prefix=b" 400 "path and prefix: give one of them"
json_error "/v1/files?after=a.txt&path=c.txt" 400 \
    "path and after: after pages a list, not one path"
json_error "/v1/files?after=a&after=b" 400 "after: given twice"
json_error "/v1/files?after" 400 "after: expected after=VALUE"
json_error "/v1/files?after=r%E9%0" 400 \
    "after: a bad percent-escape or a NUL byte (%00)"
json_error "/v1/files?state=done" 400 \
    'state: "done" is not queued, sending, delivered or failed'
json_error "/v1/files?path=a%00b" 400 \
    "path: a bad percent-escape or a NUL byte (%00)"
json_error "/v1/summary?verbose=1" 400 \
    'unknown query key "verbose" (this endpoint takes none)'
json_error /v2/files 404 \
    "no such path: /v2/files (known: /healthz, /metrics, /v1/files, /v1/summary)"
NO_TOKEN=1 json_error /nope 404 \
    "no such path: /nope (known: /healthz, /metrics, /v1/files, /v1/summary)"
json_error /v1/files 405 "/v1/files: only GET and HEAD are answered" \
    -X POST --data 'x=1'
grep -qi '^Allow: GET, HEAD' "$T/headers" || fail "405 without Allow"
json_error /healthz 405 "/healthz: only GET and HEAD are answered" -X DELETE
long=$(printf 'a%.0s' $(seq 20000))
json_error "/v1/files?path=$long" 414 \
    "the request target is 20015 bytes: at most 8192 are read"
ok "400 for bad limits (huge, negative, not a number), keys and after= with path=, 404, 405, 414 (a 20 kB path=): JSON errors"

# /v1/summary: what sftprelay status --json says (the age moves on; the
# files being sent are the agent's own table, of now, not the journal's
# copy of a second ago).
relay --json status >"$T/cli-status.json"
http /v1/summary
[ "$CODE" = 200 ] || fail "/v1/summary: $CODE"
"$PY" - "$T/cli-status.json" "$T/body" <<'PY' || fail "/v1/summary: $(cat "$T/body")"
import json, sys
cli = json.load(open(sys.argv[1]))
got = json.load(open(sys.argv[2]))
assert abs(got.pop("oldest_pending_age") - cli.pop("oldest_pending_age")) <= 2
assert got.pop("sending_at") >= cli.pop("sending_at"), (got, cli)
assert got == cli, (got, cli)
assert got["counts"] == {"queued": 1, "sending": 0, "delivered": 3, "failed": 1}
assert got["target_error"], got
PY
ok "GET /v1/summary is sftprelay status --json"

# /metrics: promtool's checks, and the journal's numbers.
http /metrics
[ "$CODE" = 200 ] || fail "/metrics: $CODE"
grep -qi '^Content-Type: text/plain; version=0.0.4' "$T/headers" ||
    fail "metrics content type: $(cat "$T/headers")"
promtool check metrics <"$T/body" >"$T/promtool.out" 2>&1 ||
    fail "promtool check metrics: $(cat "$T/promtool.out")"
[ ! -s "$T/promtool.out" ] || fail "promtool: $(cat "$T/promtool.out")"
"$PY" - "$T/body" "$T/cli-status.json" "127.0.0.1:$TARGET_PORT" <<'PY' ||
import json, re, sys
text = open(sys.argv[1]).read()
journal = json.load(open(sys.argv[2]))
def value(name):
    m = re.search("^" + re.escape(name) + r" (\S+)$", text, re.M)
    assert m, name
    return float(m.group(1))
counts = journal["counts"]
for state, n in counts.items():
    assert value('sftprelay_files{state="%s"}' % state) == n, state
assert value("sftprelay_files_delivered_total") == counts["delivered"] == 3
assert value("sftprelay_files_failed_total") == 1
assert value("sftprelay_files_queued_total") == 5
assert value("sftprelay_delivered_bytes_total") == 6 + 5 + 8
assert value("sftprelay_queue_depth") == 1
assert value("sftprelay_queue_oldest_age_seconds") >= 0
assert value("sftprelay_transfer_duration_seconds_count") == 3
assert value('sftprelay_transfer_duration_seconds_bucket{le="+Inf"}') == 3
target = re.search(r'^sftprelay_target_up\{target="([^"]*)"\} 0$', text, re.M)
assert target and sys.argv[3] in target.group(1), text
assert value('sftprelay_target_last_error_timestamp_seconds{target="%s"}'
             % target.group(1)) > 0
assert re.search(r'^sftprelay_target_last_error_info\{target="[^"]*",'
                 r'error="[^"]+"\} 1$', text, re.M), text
PY
    fail "metrics: $(grep -v '^#' "$T/body")"
ok "GET /metrics passes promtool check metrics; its numbers are the journal's"

# The target back: its metric says so, c.txt goes.
start_sshd "$TARGET_PORT"
wait_for 30 is_delivered c.txt || fail "c.txt not delivered once the target is back"
target_up() { http /metrics && grep -q '^sftprelay_target_up{.*} 1$' "$T/body"; }
wait_for 10 target_up || fail "metrics never said the target is up again"
grep -q '^sftprelay_target_last_error_info{' "$T/body" ||
    fail "the last error was forgotten once the target came back"
ok "target up again: sftprelay_target_up 1, the last error kept"

# Slow clients: half a request, or nothing at all, hold only their own
# connection until status.timeout (2 s) drops them; others are answered.
cat >"$T/slow.py" <<'PY'
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
socks[0].sendall(b"GET /v1/files HTTP/1.1\r\nHost: x\r\nAuthoriz")
print("holding", flush=True)
t0 = time.monotonic()
for s in socks:
    s.settimeout(20)
    data = s.recv(100)
    assert data == b"", data
print("dropped after %.1f s" % (time.monotonic() - t0), flush=True)
PY
"$PY" "$T/slow.py" "$SPORT" 1 >"$T/slow.out" 2>&1 &
SLOW=$!
PIDS+=("$SLOW")
holding() { grep -q holding "$T/slow.out"; }
wait_for 10 holding || fail "slow client: $(cat "$T/slow.out")"
http /v1/summary
[ "$CODE" = 200 ] || fail "a request beside a slow client: $CODE"
# Answered while the slow client is still held, not once it is dropped.
! grep -q dropped "$T/slow.out" ||
    fail "a request beside a slow client waited for it to be dropped"
wait "$SLOW" || fail "the slow client was not dropped: $(cat "$T/slow.out")"
ok "a client sending half a request does not delay others; $(tail -n 1 "$T/slow.out")"

# As many silent connections as status.max_connections: all dropped after
# the timeout, then requests are answered again.
"$PY" "$T/slow.py" "$SPORT" 4 >"$T/slow.out" 2>&1 || fail "silent clients: $(cat "$T/slow.out")"
http /healthz 2>/dev/null
[ "$CODE" = 200 ] || fail "healthz after the silent clients: $CODE"
ok "max_connections silent clients are dropped after the timeout; $(tail -n 1 "$T/slow.out")"

# SIGHUP with another status section: logged, the endpoint kept as it is.
sed -i 's/timeout = 2;/timeout = 3;/' "$T/relay.conf"
kill -HUP "$AGENT_PID"
hup_said() { grep -q 'SIGHUP: the status section (or journal.path) changed' "$T/agent.log"; }
wait_for 10 hup_said || fail "SIGHUP did not say the status section needs a restart"
wait_for 10 healthy || fail "no endpoint after SIGHUP"
ok "SIGHUP: a changed status section is logged as needing a restart; still served"
stop_agent
grep -qF -- "$TOKEN" "$T"/agent*.log && fail "the token is in the agent's log"
ok "the token never reaches the log"

# HTTPS with a self-signed certificate.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 -keyout "$T/status.key" \
    -out "$T/status.crt" >"$T/openssl.log" 2>&1 || fail "openssl: $(cat "$T/openssl.log")"
chmod 600 "$T/status.key"
status_conf "listen = \"127.0.0.1:$SPORT\"; token_file = \"$T/token\";
             cert_file = \"$T/status.crt\"; key_file = \"$T/status.key\";"
start_agent agent-tls
BASE=https://127.0.0.1:$SPORT
tls_up() { NO_TOKEN=1 http /healthz --cacert "$T/status.crt" && [ "$CODE" = 200 ]; }
wait_for 20 tls_up || fail "no HTTPS endpoint: $CODE"
http /v1/summary --cacert "$T/status.crt"
[ "$CODE" = 200 ] || fail "HTTPS /v1/summary: $CODE"
NO_TOKEN=1 json_error /v1/files 401 \
    'a bearer token is needed: send the header "Authorization: Bearer TOKEN"' \
    --cacert "$T/status.crt"
http /healthz 2>/dev/null
case $CODE in curl*) ;; *) fail "HTTPS without the CA accepted: $CODE" ;; esac
BASE=http://127.0.0.1:$SPORT
NO_TOKEN=1 http /healthz 2>/dev/null
case $CODE in curl*) ;; *) fail "plain HTTP to the HTTPS port answered $CODE" ;; esac
BASE=
stop_agent
ok "HTTPS with cert_file and key_file: curl --cacert works, plain HTTP does not"

# Without token_file: loopback only, no token asked.
status_conf "listen = \"[::1]:$SPORT\";"
start_agent agent-open
BASE=http://[::1]:$SPORT
open_up() { NO_TOKEN=1 http /v1/summary && [ "$CODE" = 200 ]; }
wait_for 20 open_up || fail "no endpoint on [::1] without a token: $CODE $(cat "$T/body")"
BASE=
stop_agent
ok "no token_file: served on loopback ([::1]) without a token"

# Start-up errors name the key.
startup_error() { # WANT_RC WANT_TEXT: sftprelayd exits WANT_RC saying it
    local rc=0
    "$SFTPRELAYD" -c "$T/relay.conf" >"$T/start.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    wait "$pid" || rc=$?
    [ "$rc" = "$1" ] || fail "exit $rc, expected $1: $(cat "$T/start.log")"
    grep -qF -- "$2" "$T/start.log" || fail "no \"$2\" in: $(cat "$T/start.log")"
}
status_conf "listen = \"0.0.0.0:$SPORT\";"
line=$(grep -n '^status' "$T/relay.conf" | cut -d: -f1)
startup_error 2 "$T/relay.conf:$line: status.listen: 0.0.0.0:$SPORT is not a loopback address (127.0.0.1, ::1): status.token_file is required to serve it"
status_conf "listen = \"0.0.0.0:$SPORT\"; token_file = \"$T/token\";"
startup_error 2 "$T/relay.conf:$line: status.listen: 0.0.0.0:$SPORT is not a loopback address: status.cert_file and status.key_file are required to serve it, so that the token never crosses a network in clear"
status_conf "token_file = \"$T/token\";"
startup_error 2 "status.listen: required when the status section is present"
status_conf "listen = \"127.0.0.1:$SPORT\"; cert_file = \"$T/status.crt\";"
startup_error 2 "status.key_file: required with status.cert_file"
chmod 644 "$T/token"
status_conf "listen = \"127.0.0.1:$SPORT\"; token_file = \"$T/token\";"
startup_error 1 "status.token_file $T/token: others may read or write it; chmod o-rwx $T/token"
: >"$T/empty"
chmod 600 "$T/empty"
status_conf "listen = \"127.0.0.1:$SPORT\"; token_file = \"$T/empty\";"
startup_error 1 "status.token_file $T/empty: empty"
chmod 600 "$T/token"
status_conf "listen = \"127.0.0.1:$TARGET_PORT\"; token_file = \"$T/token\";"
startup_error 1 "status.listen 127.0.0.1:$TARGET_PORT: Address already in use"
grep -qF -- "$TOKEN" "$T"/agent*.log "$T/start.log" && fail "the token is in a log"
ok "start-up errors: non-loopback without token_file or without HTTPS, missing keys, a token file others can read, an empty one, an address in use"

echo "$TESTS_RUN passed, 0 failed"
