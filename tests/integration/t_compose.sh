#!/usr/bin/env bash
# docker-compose.yml is valid (Debian's docker-compose config -q; there is
# no Docker engine here, so nothing is run) and has the shape the README
# promises.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
command -v docker-compose >/dev/null || { echo "docker-compose missing (scripts/deps)"; exit 1; }
cd "$top"
docker-compose -f docker-compose.yml --env-file .env.example config -q
docker-compose -f docker-compose.yml --env-file .env.example config |
    /usr/bin/python3 -c '
import sys, yaml
c = yaml.safe_load(sys.stdin)
s = c["services"]
want = {"postgres", "redis", "airflow-apiserver", "airflow-scheduler",
        "airflow-dag-processor", "airflow-worker", "airflow-triggerer",
        "airflow-init", "sftp-keys", "sftp-source", "sftp-target"}
assert set(s) == want, sorted(set(s) ^ want)
for name in want - {"postgres", "redis", "sftp-keys", "sftp-source", "sftp-target"}:
    env = s[name]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
    assert s[name]["image"].startswith("apache/airflow:3."), name
def short(v):
    """A volume or port as a list of parts, whatever form compose printed."""
    if isinstance(v, dict):
        return [str(v.get("source", v.get("published"))), str(v["target"])] + \
            (["ro"] if v.get("read_only") else [])
    return str(v).split(":")
for name in ("airflow-worker", "airflow-triggerer"):
    vols = [short(v) for v in s[name]["volumes"]]
    assert ["journal", "/var/lib/sftprelay", "ro"] in vols, (name, vols)
assert ["2222", "22"] in [short(p)[-2:] for p in s["sftp-source"]["ports"]], s["sftp-source"]["ports"]
assert ["2223", "2223"] in [short(p)[-2:] for p in s["sftp-target"]["ports"]], s["sftp-target"]["ports"]
assert s["sftp-source"]["depends_on"]["sftp-target"]["condition"] == "service_healthy"
assert s["airflow-worker"]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
print("compose shape ok")
'
# The image's parts that can be checked without a Docker engine: its sshd
# configuration, and the entrypoint's keys and config roles, whose agent
# configuration must pass sftprelayd -t.
: "${abs_top_builddir:=$top/build}"
T=$(mktemp -d "${TMPDIR:-/tmp}/sftprelay-compose.XXXXXX")
trap 'rm -rf "$T"' EXIT
ssh-keygen -q -t ed25519 -N '' -f "$T/hk"
/usr/sbin/sshd -t -f docker/source/sshd_config -o HostKey="$T/hk" 2>"$T/sshd.err" ||
    { cat "$T/sshd.err"; echo "docker/source/sshd_config is not valid"; exit 1; }
sh -n docker/source/entrypoint.sh
mkdir -p "$T/keys"
KEYS=$T/keys sh docker/source/entrypoint.sh keys >/dev/null
[ "$(cut -d' ' -f1 "$T/keys/known_hosts")" = "[sftp-target]:2223" ] ||
    { echo "known_hosts: $(cat "$T/keys/known_hosts")"; exit 1; }
[ "$(cut -d' ' -f2,3 "$T/keys/known_hosts")" = "$(cut -d' ' -f1,2 "$T/keys/target_host_ed25519_key.pub")" ] ||
    { echo "known_hosts does not hold the target's host key"; exit 1; }
cmp -s "$T/keys/authorized_keys" "$T/keys/relay_ed25519.pub" ||
    { echo "authorized_keys is not the agent's key"; exit 1; }
[ "$(stat -c %a "$T/keys/relay_ed25519")" = 600 ] || { echo "key not 0600"; exit 1; }
KEYS=$T/keys ETC=$T/etc sh docker/source/entrypoint.sh config
"$abs_top_builddir/sftprelayd" -t -c "$T/etc/sftprelay.conf" ||
    { echo "the source container's agent configuration is not valid"; exit 1; }
echo "image parts ok"

# Host keys are never waved through.
if grep -rn --exclude-dir=.git -i 'StrictHostKeyChecking[= ]*no' docker docker-compose.yml; then
    echo "host-key checking switched off somewhere"
    exit 1
fi
echo "4 passed, 0 failed"
