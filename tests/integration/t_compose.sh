#!/usr/bin/env bash
# docker-compose.yml is valid (Debian's docker-compose config -q, with
# .env.example) and holds what it and the README promise, without an
# engine: the settings every Airflow service must share (as the official
# Airflow 3 docker-compose.yaml sets them), a healthcheck on what each
# service serves, the journal mounted read-write where the sensors run, the
# README's login being the one airflow-init creates.  Then the image's
# parts that can be checked here.  t_compose_run.sh builds and runs the
# sftprelay services for real.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
command -v docker-compose >/dev/null || { echo "docker-compose missing (scripts/deps)"; exit 1; }
cd "$top"
: "${abs_top_builddir:=$top/build}"
T=$(mktemp -d "${TMPDIR:-/tmp}/sftprelay-compose.XXXXXX")
trap 'rm -rf "$T"' EXIT
passed=0
ok() {
    passed=$((passed + 1))
    echo "ok $passed - $*"
}

docker-compose -f docker-compose.yml --env-file .env.example config -q
ok "docker-compose config -q with .env.example"

# Without a JWT secret the file refuses to start, rather than let each
# service make its own.
grep -v '^AIRFLOW__API_AUTH__JWT_SECRET=' .env.example >"$T/nosecret.env"
if docker-compose -f docker-compose.yml --env-file "$T/nosecret.env" config -q \
    2>"$T/nosecret.err"; then
    echo "FAIL: docker-compose config passes without AIRFLOW__API_AUTH__JWT_SECRET"
    exit 1
fi
grep -q 'AIRFLOW__API_AUTH__JWT_SECRET' "$T/nosecret.err" ||
    { cat "$T/nosecret.err"; echo "FAIL: the error does not name the secret"; exit 1; }
ok "no AIRFLOW__API_AUTH__JWT_SECRET in .env: config fails and names it"

docker-compose -f docker-compose.yml --env-file .env.example config >"$T/config.yml"
/usr/bin/python3 - "$T/config.yml" >"$T/shape.out" 2>&1 <<'PY' ||
import re, sys, yaml
c = yaml.safe_load(open(sys.argv[1]))
env_example = dict(
    line.split("=", 1) for line in open(".env.example").read().splitlines()
    if line and not line.startswith("#"))
readme = open("README.md").read()
s = c["services"]
airflow = {"airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
           "airflow-worker", "airflow-triggerer", "airflow-init"}
want = airflow | {"postgres", "redis", "sftp-keys", "sftp-source",
                  "sftp-target"}
assert set(s) == want, sorted(set(s) ^ want)
def ok(what):
    print("ok - " + what)

# The settings every Airflow service shares (the x-airflow-common anchor).
fab = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
image = env_example["AIRFLOW_IMAGE_NAME"]
assert re.fullmatch(r"apache/airflow:3\.\d+\.\d+", image), image
assert "${AIRFLOW_IMAGE_NAME:-" + image + "}" in open("docker-compose.yml").read(), \
    "the file's default image is not .env.example's " + image
for name in sorted(airflow):
    env = s[name]["environment"]
    for key, value in {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__AUTH_MANAGER": fab,
        "AIRFLOW__API_AUTH__JWT_SECRET":
            env_example["AIRFLOW__API_AUTH__JWT_SECRET"],
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL":
            "http://airflow-apiserver:8080/execution/",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "true",
    }.items():
        assert env.get(key) == value, (name, key, env.get(key))
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith(
        "postgresql+psycopg2://"), name
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith(
        "db+postgresql+psycopg2://"), name
    assert s[name]["image"] == image, (name, s[name]["image"])
    assert s[name]["user"].endswith(":0"), name
ok("every Airflow service: %s, CeleryExecutor, FabAuthManager, the JWT secret "
   "from .env, the execution API URL, psycopg2 URLs" % image)

# Healthchecks on what each service serves (Airflow 3's endpoints), and
# the dependency conditions that wait on them.
def check(name):
    t = s[name]["healthcheck"]["test"]
    return " ".join(t) if isinstance(t, list) else t
health = {
    "postgres": "pg_isready",
    "redis": "redis-cli ping",
    "airflow-apiserver": r"http://localhost:8080/api/v2/(monitor/health|version)",
    "airflow-scheduler": r"http://localhost:8974/health",
    "airflow-dag-processor": r"airflow jobs check --job-type DagProcessorJob",
    "airflow-triggerer": r"airflow jobs check --job-type TriggererJob",
    "airflow-worker": r"celery_executor\.app inspect ping",
    "sftp-target": r"ssh-keyscan",
}
for name, pattern in health.items():
    assert re.search(pattern, check(name)), (name, check(name))
for name in airflow - {"airflow-init"}:
    dep = s[name]["depends_on"]
    assert dep["airflow-init"]["condition"] == "service_completed_successfully", name
    assert dep["postgres"]["condition"] == "service_healthy", name
    assert dep["redis"]["condition"] == "service_healthy", name
assert s["airflow-worker"]["depends_on"]["airflow-apiserver"]["condition"] == "service_healthy"
assert s["sftp-source"]["depends_on"]["sftp-target"]["condition"] == "service_healthy"
assert s["sftp-target"]["depends_on"]["sftp-keys"]["condition"] == "service_completed_successfully"
ok("healthchecks: api-server /api/v2, scheduler :8974/health, jobs check, "
   "celery ping, postgres, redis, sftp-target; conditions wait on them")

# The journal: read-write where the agent writes it and where the sensors
# read it (SQLite in WAL mode opens -wal and -shm beside it).
def parts(v):
    """A volume or port as a list of parts, whatever form compose printed."""
    if isinstance(v, dict):
        return [str(v.get("source", v.get("published"))), str(v["target"])] + \
            (["ro"] if v.get("read_only") else [])
    return str(v).split(":")
for name in ("airflow-worker", "airflow-triggerer", "sftp-source"):
    vols = [parts(v) for v in s[name]["volumes"]]
    j = [v for v in vols if v[:2] == ["journal", "/var/lib/sftprelay"]]
    assert len(j) == 1 and "ro" not in j[0][2:], (name, vols)
for name in airflow - {"airflow-worker", "airflow-triggerer"}:
    assert all(parts(v)[0] != "journal" for v in s[name].get("volumes", [])), name
ok("the journal volume read-write in the worker, the triggerer and sftp-source")

# The README's login is the user airflow-init creates.
init = s["airflow-init"]["environment"]
assert init["_AIRFLOW_DB_MIGRATE"] == "true"
assert init["_AIRFLOW_WWW_USER_CREATE"] == "true"
user = env_example["_AIRFLOW_WWW_USER_USERNAME"]
password = env_example["_AIRFLOW_WWW_USER_PASSWORD"]
assert (init["_AIRFLOW_WWW_USER_USERNAME"], init["_AIRFLOW_WWW_USER_PASSWORD"]) == (user, password)
assert "`%s` / `%s`" % (user, password) in readme, "README login is not %s / %s" % (user, password)
ok("README login %s / %s is the user airflow-init creates (FAB)" % (user, password))

assert ["2222", "22"] in [parts(p)[-2:] for p in s["sftp-source"]["ports"]], s["sftp-source"]["ports"]
assert ["2223", "2223"] in [parts(p)[-2:] for p in s["sftp-target"]["ports"]], s["sftp-target"]["ports"]
ok("sftp-source on 2222, sftp-target on 2223")
PY
    { cat "$T/shape.out"; echo "FAIL: compose shape"; exit 1; }
while read -r line; do
    ok "${line#ok - }"
done < <(grep '^ok - ' "$T/shape.out")

# The image's parts that can be checked without a Docker engine: its sshd
# configuration (as the test run overrides its address too), the build
# list it installs, and the entrypoint's keys and config roles, whose
# agent configuration must pass sftprelayd -t.
ssh-keygen -q -t ed25519 -N '' -f "$T/hk"
for extra in "" "-o ListenAddress=127.0.0.1:2345"; do
    # shellcheck disable=SC2086
    /usr/sbin/sshd -t -f docker/source/sshd_config -o HostKey="$T/hk" $extra \
        2>"$T/sshd.err" ||
        { cat "$T/sshd.err"; echo "FAIL: docker/source/sshd_config ($extra) is not valid"; exit 1; }
done
sh -n docker/source/entrypoint.sh
grep -q 'sftprelay-deps --list build' docker/source/Dockerfile ||
    { echo "FAIL: the Dockerfile does not install scripts/deps' build list"; exit 1; }
build_list=$(./scripts/deps --list build)
grep -qx autoconf <<<"$build_list" ||
    { echo "FAIL: scripts/deps --list build: $build_list"; exit 1; }
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
ok "image parts: sshd_config, scripts/deps' build list, keys and config roles"

# Host keys are never waved through.
if grep -rn --exclude-dir=.git -i 'StrictHostKeyChecking[= ]*no' docker docker-compose.yml \
    tests/integration/t_compose_run.sh; then
    echo "host-key checking switched off somewhere"
    exit 1
fi
ok "host-key checking is never switched off"
echo "$passed passed, 0 failed"
