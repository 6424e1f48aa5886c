#!/usr/bin/env bash
# docker-compose.yml is valid (Debian's docker-compose config -q; there is
# no Docker engine here, so nothing is run) and has the shape the README
# promises.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
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
# Host keys are never waved through.
if grep -rn --exclude-dir=.git -i 'StrictHostKeyChecking[= ]*no' docker docker-compose.yml; then
    echo "host-key checking switched off somewhere"
    exit 1
fi
echo "3 passed, 0 failed"
