#!/usr/bin/env bash
# docker-compose.yml's sftprelay services, built and run for real: the
# image from docker/source/Dockerfile, then sftp-keys, sftp-target and
# sftp-source; the brief's three files uploaded with OpenSSH's sftp to the
# source host must appear byte-identical on the target.  The Airflow
# services are not run: their images come from a registry this machine
# cannot reach (t_compose.sh checks their shape).
#
# No registry either for the Dockerfile's base image, so it is made here:
# debootstrap --variant=minbase of the Dockerfile's Debian suite, from the
# mirror the host's apt uses, imported under the exact name the Dockerfile
# starts FROM.  The tarball is kept in $CACHE (default
# /var/cache/sftprelay-test) so that a second run skips debootstrap.
#
# The engine: a running one if DOCKER_HOST or /var/run/docker.sock
# answers, else a dockerd started here and stopped by PID at the end, with
# --bridge=none --iptables=false (no docker0, no private range), its data
# root in $CACHE/docker (the imported base image and BuildKit's cache
# outlive the run, one run at a time under a lock).  Everything runs on the
# host network: the image build (apt inside must reach Debian's mirror),
# and the services, through a test override: free ports on 127.0.0.1, the
# name sftp-target mapped to 127.0.0.1.  Host networking cannot publish
# ports, and compose v1 merges an override's ports with the file's, so the
# file resolved with the override (docker-compose config) is run with the
# three services' published ports taken out.
#
# Everything started is removed: containers, volumes, the image built; the
# engine too if this test started it.  An engine that cannot start or run
# a container here (no root, no cgroups, no overlay) is SKIP, never PASS.
. "$(dirname "$0")/lib.sh"
heavy

top=$(cd "$(dirname "$0")/../.." && pwd)
# Debian's docker.io client: another one earlier on PATH may speak a newer
# API than Debian's engine.
DOCKER=/usr/bin/docker
CACHE=${SFTPRELAY_TEST_CACHE:-/var/cache/sftprelay-test}
t_start=$(date +%s)
echo "# the sftprelay services only: Airflow's images are on a registry this" \
    "machine cannot reach (t_compose.sh checks the Airflow services' shape)"

for tool in "$DOCKER" dockerd docker-compose debootstrap zstd sftp; do
    command -v "$tool" >/dev/null ||
        fail "$tool missing (scripts/deps installs docker.io, docker-compose, debootstrap)"
done

skip() {
    echo "SKIP: $*"
    exit 77
}

# seconds since the test started, for the step lines
since() {
    echo "$(($(date +%s) - t_start)) s"
}

DOCKERD_PID=
OWN_ENGINE=
IMAGE=
BASE_IMPORTED=
PROJECT=
teardown() {
    set +e
    if [ -n "$PROJECT" ]; then
        dc down -v --remove-orphans >>"$T/down.log" 2>&1 ||
            echo "docker-compose down failed: $(tail -n 5 "$T/down.log")" >&2
    fi
    [ -z "$IMAGE" ] || "$DOCKER" rmi -f "$IMAGE" >/dev/null 2>&1
    # A base image imported into someone else's engine goes; in this
    # test's own engine it is the cache of the next run.
    [ -z "$BASE_IMPORTED" ] || [ -n "$OWN_ENGINE" ] ||
        "$DOCKER" rmi "$BASE_IMPORTED" >/dev/null 2>&1
    stop_engine
}
trap 'teardown; cleanup' EXIT

# stop_engine: the dockerd started here, if any, stopped by PID; then what
# it leaves mounted in its exec root (the host's network namespace, bound
# for host-network containers) unmounted.
stop_engine() {
    if [ -n "$DOCKERD_PID" ]; then
        kill "$DOCKERD_PID" 2>/dev/null || true
        wait "$DOCKERD_PID" 2>/dev/null || true
        DOCKERD_PID=
    fi
    awk -v d="$T/engine/" 'index($2, d) == 1 {print $2}' /proc/mounts |
        sort -r | while read -r m; do
        umount "$m" || echo "cannot unmount $m" >&2
    done
}

engine_up() {
    "$DOCKER" info >/dev/null 2>&1
}

# --- the engine -------------------------------------------------------------
links_before=$(ip -o link show | awk -F': ' '{print $2}' | sort)
if [ -n "${DOCKER_HOST:-}" ] && engine_up; then
    echo "using the engine at DOCKER_HOST=$DOCKER_HOST"
elif [ -S /var/run/docker.sock ] &&
    DOCKER_HOST=unix:///var/run/docker.sock engine_up; then
    export DOCKER_HOST=unix:///var/run/docker.sock
    echo "using the engine at $DOCKER_HOST"
else
    [ "$(id -u)" = 0 ] || skip "no Docker engine runs, and starting one needs root"
    grep -q '^cgroup' /proc/mounts || skip "no cgroup filesystem is mounted"
    grep -qw overlay /proc/filesystems ||
        modprobe overlay 2>/dev/null ||
        skip "the kernel has no overlay filesystem"
    mkdir -p "$CACHE"
    # One run at a time owns the data root.
    exec 9>"$CACHE/lock"
    flock 9
    echo '{}' >"$T/daemon.json" # not /etc/docker/daemon.json's settings
    dockerd --config-file "$T/daemon.json" --data-root "$CACHE/docker" \
        --exec-root "$T/engine" --pidfile "$T/dockerd.pid" \
        --host "unix://$T/docker.sock" --bridge=none --iptables=false \
        --ip-masq=false --userland-proxy=false --log-level=warn \
        >"$T/dockerd.log" 2>&1 9>&- &
    DOCKERD_PID=$!
    OWN_ENGINE=1
    export DOCKER_HOST=unix://$T/docker.sock
    dockerd_up() {
        engine_up && return 0
        alive "$DOCKERD_PID" && return 1
        DOCKERD_PID=
        skip "the Docker engine could not start: $(tail -n 3 "$T/dockerd.log")"
    }
    for ((i = 0; i < 1200; i++)); do
        dockerd_up && break
        sleep 0.1
    done
    engine_up || fail "dockerd did not answer in 120 s: $(tail -n 5 "$T/dockerd.log")"
    driver=$("$DOCKER" info -f '{{.Driver}}')
    [ "$driver" = overlay2 ] ||
        skip "no overlay filesystem for the engine (it chose '$driver')"
    # Left by a run that was killed: this data root is this test's alone.
    stale=$("$DOCKER" ps -aq)
    # shellcheck disable=SC2086
    [ -z "$stale" ] || "$DOCKER" rm -f $stale >/dev/null
    "$DOCKER" volume prune -f >/dev/null
    stale=$("$DOCKER" images -q --filter reference='sftprelay-test')
    # shellcheck disable=SC2086
    [ -z "$stale" ] || "$DOCKER" rmi -f $stale >/dev/null
fi
ok "engine up ($("$DOCKER" version -f '{{.Server.Version}}'), $(since))"

# --- the base image -----------------------------------------------------------
# The Dockerfile's FROM images that are not its own stages.
dockerfile=$top/docker/source/Dockerfile
stages=$(sed -n 's/^FROM[[:space:]].*[[:space:]][Aa][Ss][[:space:]]\+\([^[:space:]]*\).*/\1/p' "$dockerfile")
bases=$(sed -n 's/^FROM[[:space:]]\+\([^[:space:]]*\).*/\1/p' "$dockerfile" |
    grep -vxF "${stages:-/}" | sort -u)
[ -n "$bases" ] || fail "no FROM in $dockerfile"

# mirror_for KIND: the host apt's Debian mirror (KIND main) or security
# mirror (KIND security), from sources.list and deb822 .sources files.
mirror_for() {
    "$PY" - "$1" /etc/apt/sources.list /etc/apt/sources.list.d/* <<'PY'
import re, sys
kind, files = sys.argv[1], sys.argv[2:]
found = []
for f in files:
    try:
        text = open(f).read()
    except OSError:
        continue
    if f.endswith(".sources"):
        for stanza in re.split(r"\n\s*\n", text):
            fields = dict(re.findall(r"^(\w[\w-]*):[ \t]*(.*)$", stanza, re.M))
            if "deb" not in fields.get("Types", "").split():
                continue
            for uri in fields.get("URIs", "").split():
                found += [(uri, s) for s in fields.get("Suites", "").split()]
    else:
        for line in text.splitlines():
            m = re.match(r"\s*deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)", line)
            if m:
                found.append(m.groups())
for uri, suite in found:
    uri = uri.rstrip("/")
    if kind == "security" and uri.endswith("/debian-security"):
        print(uri)
        break
    if kind == "main" and uri.endswith("/debian") and "security" not in suite:
        print(uri)
        break
else:
    print({"main": "http://deb.debian.org/debian",
           "security": "http://deb.debian.org/debian-security"}[kind])
PY
}

# base_tarball SUITE: the cached minbase tarball of SUITE, made if missing.
base_tarball() {
    local suite=$1 tar=$CACHE/debian-$1-minbase.tar.zst main security
    if [ ! -s "$tar" ]; then
        main=$(mirror_for main)
        security=$(mirror_for security)
        echo "debootstrap --variant=minbase $suite from $main" >&2
        debootstrap --variant=minbase "$suite" "$T/rootfs" "$main" \
            >"$T/debootstrap.log" 2>&1 ||
            fail "debootstrap $suite: $(tail -n 5 "$T/debootstrap.log")"
        cat >"$T/rootfs/etc/apt/sources.list" <<LIST
deb $main $suite main
deb $main $suite-updates main
deb $security $suite-security main
LIST
        rm -rf "$T/rootfs"/var/cache/apt/archives/*.deb \
            "$T/rootfs"/var/cache/apt/*.bin "$T/rootfs"/var/lib/apt/lists/*
        mkdir -p "$CACHE"
        tar --numeric-owner -C "$T/rootfs" -cf - . |
            zstd -q -T0 -o "$tar.tmp.$$" || fail "could not write $tar"
        mv "$tar.tmp.$$" "$tar"
        rm -rf "$T/rootfs"
    fi
    echo "$tar"
}

for base in $bases; do
    suite=${base#debian:}
    suite=${suite%-slim}
    [[ $base == debian:* && $suite =~ ^[a-z]+$ ]] ||
        fail "cannot make the base image $base here (only debian:SUITE[-slim])"
    tar=$(base_tarball "$suite")
    sum=$(sha256sum "$tar" | cut -c1-16)
    # Imported again only when absent or made from another tarball: a new
    # import is a new image, and BuildKit would build everything again.
    label=$("$DOCKER" image inspect -f '{{index .Config.Labels "sftprelay.base"}}' \
        "$base" 2>/dev/null || echo absent)
    [ "$label" != "<no value>" ] || label=
    if [ "$label" = absent ] || { [ -n "$label" ] && [ "$label" != "$sum" ]; }; then
        zstd -dc "$tar" | "$DOCKER" import --change "LABEL sftprelay.base=$sum" \
            - "$base" >/dev/null || fail "docker import $base"
        BASE_IMPORTED=$base
        [ -z "$OWN_ENGINE" ] || "$DOCKER" image prune -f >/dev/null
    fi # else: this same import, or a real $base (not ours): used as is
    # Can this engine run a container at all?
    "$DOCKER" run --rm --network none "$base" true >"$T/probe.log" 2>&1 ||
        skip "the engine cannot run a container: $(tail -n 2 "$T/probe.log")"
done
ok "base image $bases ($(since))"

# --- the image ----------------------------------------------------------------
IMAGE=sftprelay-test:$$
DOCKER_BUILDKIT=1 "$DOCKER" build --network host --progress plain \
    -f "$dockerfile" -t "$IMAGE" "$top" >"$T/build.log" 2>&1 ||
    fail "docker build: $(tail -n 20 "$T/build.log")"
[ -z "$OWN_ENGINE" ] || "$DOCKER" builder prune -f --keep-storage 3GB >/dev/null
ok "image built from docker/source/Dockerfile ($(since))"

# --- the services -------------------------------------------------------------
read -r sport tport < <(free_port 2 | paste -s -d ' ')
password="pw-$RANDOM$RANDOM"
cat >"$T/override.yml" <<YML
# Test override: host network, servers on 127.0.0.1 ports free now.
services:
  sftp-keys:
    image: $IMAGE
    network_mode: host
    environment:
      TARGET_PORT: "$tport"
  sftp-target:
    image: $IMAGE
    network_mode: host
    restart: "no"
    environment:
      TARGET_PORT: "$tport"
      TARGET_LISTEN: "127.0.0.1:$tport"
  sftp-source:
    image: $IMAGE
    network_mode: host
    restart: "no"
    extra_hosts:
      - "sftp-target:127.0.0.1"
    environment:
      TARGET_PORT: "$tport"
      SOURCE_SSH_LISTEN: "127.0.0.1:$sport"
      SFTP_SOURCE_PASSWORD: "$password"
# Never a bridge network: the project's default one is the host's.
networks:
  default:
    external: true
    name: host
YML
docker-compose -f "$top/docker-compose.yml" -f "$T/override.yml" \
    --env-file "$top/.env.example" config >"$T/resolved.yml" 2>"$T/config.log" ||
    fail "docker-compose config with the override: $(cat "$T/config.log")"
"$PY" - "$T/resolved.yml" "$T/compose.yml" <<'PY' || fail "cannot reduce the compose file"
import sys, yaml
c = yaml.safe_load(open(sys.argv[1]))
run = ("sftp-keys", "sftp-target", "sftp-source")
c["services"] = {n: s for n, s in c["services"].items() if n in run}
for s in c["services"].values():
    assert s["network_mode"] == "host", s
    s.pop("ports", None)
yaml.safe_dump(c, open(sys.argv[2], "w"), sort_keys=False)
PY

PROJECT=sftprelay-test-$$
dc() {
    docker-compose -p "$PROJECT" -f "$T/compose.yml" "$@"
}
# The agent's and the servers' output, for fail(), which shows agent*.log.
die() {
    dc logs --no-color >"$T/agent-containers.log" 2>&1 || true
    fail "$@"
}
# up waits for sftp-keys to complete and sftp-target to be healthy.
dc up -d --no-build sftp-source >"$T/up.log" 2>&1 ||
    die "docker-compose up: $(tail -n 20 "$T/up.log")"
src=$(dc ps -q sftp-source)
tgt=$(dc ps -q sftp-target)
{ [ -n "$src" ] && [ -n "$tgt" ]; } || die "no source or target container"
wait_for 60 port_open "$sport" || die "the source host's sshd is not on 127.0.0.1:$sport"
ok "sftp-keys done, sftp-target healthy, sftp-source up on 127.0.0.1 ($(since))"

links_after=$(ip -o link show | awk -F': ' '{print $2}' | sort)
[ "$links_before" = "$links_after" ] ||
    die "network interfaces appeared: $(comm -13 <(echo "$links_before") <(echo "$links_after"))"
if [ -n "$OWN_ENGINE" ]; then
    bridges=$("$DOCKER" network ls -q --filter driver=bridge)
    [ -z "$bridges" ] || die "a bridge network exists: $bridges"
fi
ok "no bridge, no new interface: host network only"

# --- the brief's three files ----------------------------------------------------
# The source's host key, read from its container: never accepted blindly.
echo "[127.0.0.1]:$sport $("$DOCKER" exec "$src" cut -d' ' -f1,2 \
    /etc/ssh/ssh_host_ed25519_key.pub)" >"$T/known_hosts" ||
    die "cannot read the source's host key"
printf '#!/bin/sh\necho "%s"\n' "$password" >"$T/askpass"
chmod 700 "$T/askpass"
# upload BATCH: OpenSSH's sftp to the source host, testuser's password
# from SSH_ASKPASS (BatchMode=no first: -b would otherwise forbid asking).
upload() {
    SSH_ASKPASS=$T/askpass SSH_ASKPASS_REQUIRE=force \
        sftp -o BatchMode=no -b "$1" -P "$sport" \
        -o UserKnownHostsFile="$T/known_hosts" -o GlobalKnownHostsFile=/dev/null \
        -o PubkeyAuthentication=no -o PreferredAuthentications=password \
        -o NumberOfPasswordPrompts=1 testuser@127.0.0.1 </dev/null
}
# on_target PATH: the target holds PATH, the same bytes as $T/up/PATH.
on_target() {
    "$DOCKER" exec "$tgt" cat "/srv/target/$1" 2>/dev/null | cmp -s - "$T/up/$1"
}
mkdir -p "$T/up/a/b/c"
for n in 1 2 3; do
    f=a/b/c/file_$n.txt
    printf 'file %s of the brief, %s\n' "$n" "$(date +%F)" >"$T/up/$f"
    {
        echo "cd upload"
        echo "-mkdir a"
        echo "-mkdir a/b"
        echo "-mkdir a/b/c"
        echo "put $T/up/$f a/b/c/"
    } >"$T/batch"
    upload "$T/batch" >"$T/sftp.log" 2>&1 || die "sftp upload of $f: $(cat "$T/sftp.log")"
    wait_for 60 on_target "$f" || die "$f not on the target, byte-identical, in 60 s"
    ok "$f uploaded to sftp-source, on sftp-target byte-identical ($(since))"
done

# The same three files read back over SFTP from the target, as the agent's
# key and known_hosts (from the keys volume) allow.
"$DOCKER" exec "$tgt" cat /keys/relay_ed25519 >"$T/relay_key"
chmod 600 "$T/relay_key"
"$DOCKER" exec "$tgt" cat /keys/known_hosts |
    sed "s/^\[sftp-target\]:$tport /[127.0.0.1]:$tport /" >"$T/target_known_hosts"
mkdir -p "$T/got"
printf 'get a/b/c/file_1.txt %s/\nget a/b/c/file_2.txt %s/\nget a/b/c/file_3.txt %s/\n' \
    "$T/got" "$T/got" "$T/got" >"$T/batch"
sftp -b "$T/batch" -i "$T/relay_key" -P "$tport" \
    -o UserKnownHostsFile="$T/target_known_hosts" -o GlobalKnownHostsFile=/dev/null \
    relay@127.0.0.1 >"$T/sftp.log" 2>&1 || die "sftp from the target: $(cat "$T/sftp.log")"
for n in 1 2 3; do
    same_file "$T/up/a/b/c/file_$n.txt" "$T/got/file_$n.txt" ||
        die "file_$n.txt read over SFTP from the target differs"
done
status=$("$DOCKER" exec "$src" sftprelay -c /etc/sftprelay/sftprelay.conf status 2>&1) ||
    die "sftprelay status in sftp-source: $status"
grep -q '^delivered  *3$' <<<"$status" || die "sftprelay status: $status"
ok "the three files read back over SFTP from sftp-target; the journal says 3 delivered"

# --- everything goes ------------------------------------------------------------
dc down -v --remove-orphans >"$T/down.log" 2>&1 ||
    die "docker-compose down: $(tail -n 5 "$T/down.log")"
PROJECT=
left=$("$DOCKER" ps -aq --filter "label=com.docker.compose.project=sftprelay-test-$$")
[ -z "$left" ] || fail "containers left: $left"
left=$("$DOCKER" volume ls -q --filter "label=com.docker.compose.project=sftprelay-test-$$")
[ -z "$left" ] || fail "volumes left: $left"
"$DOCKER" rmi "$IMAGE" >/dev/null || fail "docker rmi $IMAGE"
IMAGE=
if [ -n "$DOCKERD_PID" ]; then
    stop_engine
    ! pgrep -f "$T/engine" >/dev/null || fail "containerd or a shim outlived dockerd"
    ! grep -qF " $T/" /proc/mounts || fail "mounts left: $(grep -F " $T/" /proc/mounts)"
fi
ok "containers, volumes and the image removed, the engine stopped if started here ($(since))"
echo "$TESTS_RUN passed, 0 failed"
