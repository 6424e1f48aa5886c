#!/usr/bin/env python3
"""bench/intake.py: the measuring half of "bench/run intake" (stdlib only).

Subcommands, each called by bench/run:
  tree DIR N FOLDERS          N files of 0-1024 random bytes in FOLDERS folders
  poll ...                    sftprelay status at 20 Hz until N are delivered
  sensor ...                  the Airflow sensor's poke at 20 Hz until told to stop
                              (both start polling once bench/run writes GO)
  snapshot JOURNAL DST OUT    the delivered rows and the target's files, sorted
  note FILE KEY=VALUE...      add figures to a run's JSON
  report RESDIR OUT N         the table, the goals, and the JSON of the run
"""

import argparse
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import time

TOP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
TICK = 0.05  # 20 Hz


def sleep_to(next_t):
    """Sleep until next_t; return the tick after it (skip ticks missed)."""
    now = time.time()
    if next_t > now:
        time.sleep(next_t - now)
        return next_t + TICK
    return now + TICK


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}


def save(path, d):
    with open(path + ".tmp", "w") as f:
        json.dump(d, f, indent=1)
    os.replace(path + ".tmp", path)


def cmd_tree(a):
    """DIR/dNN/fNNNNNN: random sizes 0-1024 bytes, random bytes."""
    rnd = random.Random(a.seed)
    dirs = [os.path.join(a.dir, "d%02d" % i) for i in range(a.folders)]
    for d in dirs:
        os.makedirs(d)
    for i in range(a.n):
        with open(os.path.join(dirs[i % a.folders], "f%06d" % i), "wb") as f:
            f.write(os.urandom(rnd.randint(0, 1024)))


def wait_go(a):
    """Python takes about 0.5 s to start here, so the pollers start before
    the move (or the agent's start) they measure: each writes READY, then
    waits for the file GO, which holds T0, the moment of the action."""
    open(a.ready, "w").close()
    limit = time.time() + 60
    while not os.path.exists(a.go):
        if time.time() > limit:
            sys.exit("no %s after 60 s" % a.go)
        time.sleep(0.001)
    with open(a.go) as f:
        return float(f.read())


def after_done(path):
    try:
        return os.path.getsize(path) > 0
    except OSError:
        return False


def cmd_poll(a):
    """Run "sftprelay -c CONF status --json" every 50 ms (or back to back
    when a call takes longer), timing each call.  journaled = rows in any
    state, delivered = rows delivered (the journal is fresh for the run).
    A moment is the end of the first poll that saw it: an upper bound.
    Ends when N are delivered and the file AFTER, if given, is not empty
    (exit 0), or on timeout: no progress for
    STALL seconds, or TIMEOUT seconds in all (exit 3)."""
    a.t0 = wait_go(a)
    res = {"n": a.n, "t0": a.t0, "status_ms": [], "status_errors": 0,
           "journaled_s": None, "delivered_s": None, "timed_out": False}
    last, last_change = None, time.time()
    counts = {}
    next_t = time.time()
    while True:
        s = time.time()
        try:
            p = subprocess.run([a.sftprelay, "-c", a.conf, "status", "--json"],
                               capture_output=True, timeout=30)
            rc, out, err = p.returncode, p.stdout, p.stderr.decode(errors="replace")
        except subprocess.TimeoutExpired:
            rc, out, err = "timeout", b"", "status took over 30 s"
        e = time.time()
        res["status_ms"].append(round(1000 * (e - s), 1))
        if rc == 0:
            counts = json.loads(out)["counts"]
        else:
            res["status_errors"] += 1  # e.g. no journal yet at start-up
            res["last_status_error"] = "%s: %s" % (rc, err.strip())
        journaled = sum(counts.values())
        delivered = counts.get("delivered", 0)
        if res["journaled_s"] is None and journaled >= a.n:
            res["journaled_s"] = e - a.t0
        if delivered >= a.n and res["delivered_s"] is None:
            res["delivered_s"] = e - a.t0
        if delivered >= a.n and (not a.after or after_done(a.after)):
            break
        if (journaled, delivered) != last:
            last, last_change = (journaled, delivered), e
        if e - last_change > a.stall or e - a.t0 > a.timeout:
            res["timed_out"] = True
            res["timeout_msg"] = (
                "timeout: %d of %d delivered after %.0f s (%d journaled, "
                "%d failed; %s)" % (
                    delivered, a.n, e - a.t0, journaled,
                    counts.get("failed", 0),
                    "no progress for %.0f s" % (e - last_change)
                    if e - last_change > a.stall
                    else "limit %d s" % a.timeout))
            break
        next_t = sleep_to(next_t)
    res["counts"] = counts
    res["polls"] = len(res["status_ms"])
    save(a.out, {**load(a.out), **res})
    return 3 if res["timed_out"] else 0


def cmd_sensor(a):
    """SftpRelayDeliveredSensor(pattern=...).poke() every 50 ms, through the
    stand-in for Airflow the Python tests use, until STOP exists or LIMIT
    seconds after T0.  Each poke opens the journal read-only, as in Airflow."""
    sys.path[:0] = [os.path.join(TOP, "tests", "python", "airflow_stub"),
                    os.path.join(TOP, "airflow", "plugins")]
    from airflow.sdk.exceptions import AirflowFailException
    from sftprelay_airflow.sensors import SftpRelayDeliveredSensor

    sensor = SftpRelayDeliveredSensor(task_id="bench", pattern=a.pattern,
                                      journal_path=a.journal)
    a.t0 = wait_go(a)
    ms, done_s, failed = [], None, 0
    next_t = time.time()
    while not os.path.exists(a.stop) and time.time() < a.t0 + a.limit:
        s = time.time()
        try:
            r = sensor.poke({})
        except AirflowFailException:
            failed += 1
            r = None
        e = time.time()
        ms.append(round(1000 * (e - s), 1))
        if r is not None and r.is_done and done_s is None:
            done_s = e - a.t0
        next_t = sleep_to(next_t)
    save(a.out, {**load(a.out), "sensor_ms": ms, "sensor_done_s": done_s,
                 "sensor_failed_pokes": failed})


def cmd_snapshot(a):
    """What a re-send would change: each journal row's state, version,
    attempts, delivered_at and sha256, and each target file's inode, size
    and mtime (both sinks write a temporary file and rename it into place,
    so a re-sent file gets a new inode)."""
    con = sqlite3.connect("file:%s?mode=ro" % a.journal, uri=True, timeout=10)
    rows = con.execute("SELECT path, state, version, attempts, delivered_at,"
                       " sha256 FROM files ORDER BY path").fetchall()
    con.close()
    lines = ["journal %r" % (r,) for r in rows]
    for d, _, files in os.walk(a.dst):
        for name in files:
            p = os.path.join(d, name)
            st = os.lstat(p)
            lines.append("target %s %d %d %d" % (os.path.relpath(p, a.dst),
                                                 st.st_ino, st.st_size,
                                                 st.st_mtime_ns))
    lines.sort()
    with open(a.out, "w") as f:
        f.write("\n".join(lines) + "\n")


def cmd_note(a):
    d = load(a.file)
    for kv in a.kv:
        k, v = kv.split("=", 1)
        try:
            d[k] = json.loads(v)
        except ValueError:
            d[k] = v
    save(a.file, d)


def med_max(v):
    return (statistics.median(v), max(v)) if v else (None, None)


def cmd_report(a):
    runs = []
    for name in sorted(os.listdir(a.resdir)):
        if name.endswith(".json"):
            runs.append(load(os.path.join(a.resdir, name)))
    order = {"moved-in": 0, "backlog": 1, "rescan": 2}
    runs.sort(key=lambda r: (r["target"] != "local", order[r["scenario"]]))

    def f(v, fmt):
        return "-" if v is None else fmt % v

    hdr = ("%-9s  %-6s  %11s  %11s  %7s  %6s  %7s  %17s  %17s  %s" % (
        "scenario", "target", "journaled/s", "delivered/s", "drain s",
        "scan s", "RSS MiB", "status max/med ms", "sensor max/med ms",
        "check"))
    rows = [hdr]
    for r in runs:
        n = r["n"]
        js, ds = r.get("journaled_s"), r.get("delivered_s")
        if r["scenario"] == "rescan":  # nothing new to journal or deliver
            js = ds = None
        r["journaled_per_s"] = round(n / js) if js else None
        r["delivered_per_s"] = round(n / ds) if ds else None
        r["status_med_ms"], r["status_max_ms"] = med_max(r.get("status_ms", []))
        r["sensor_med_ms"], r["sensor_max_ms"] = med_max(r.get("sensor_ms", []))
        rss = r.get("vmhwm_kib")
        rows.append("%-9s  %-6s  %11s  %11s  %7s  %6s  %7s  %17s  %17s  %s" % (
            r["scenario"], r["target"], f(r["journaled_per_s"], "%d"),
            f(r["delivered_per_s"], "%d"), f(ds, "%.2f"),
            f(r.get("scan_s"), "%.2f"), f(rss and rss / 1024, "%.1f"),
            "%s/%s" % (f(r["status_max_ms"], "%.0f"), f(r["status_med_ms"], "%.0f")),
            "%s/%s" % (f(r["sensor_max_ms"], "%.0f"), f(r["sensor_med_ms"], "%.0f")),
            r.get("check", "?")))
    rows.append("journaled/s, delivered/s: N over the time from the mv (moved-in) or the "
                "agent's start (backlog)")
    rows.append("to the end of the first status poll (20 Hz) that showed N; "
                "N = %d files of 0-1 KiB" % a.n)

    intake = [r for r in runs if r["scenario"] != "rescan"]
    goals = []

    def goal(name, ok, detail):
        goals.append((name, ok))
        rows.append("%s: %s (%s)" % ("PASS" if ok else "FAIL", name, detail))

    jps = [r["journaled_per_s"] for r in intake]
    goal("intake >= 20,000 files/s journaled",
         bool(jps) and None not in jps and min(jps) >= 20000,
         "lowest %s" % (min(jps) if jps and None not in jps else "n/a: a run timed out"))
    smax = [r["status_max_ms"] for r in runs if r["status_max_ms"] is not None]
    goal("sftprelay status < 1 s", bool(smax) and max(smax) < 1000,
         "slowest %.0f ms" % max(smax) if smax else "no polls")
    emax = [r["sensor_max_ms"] for r in runs if r["sensor_max_ms"] is not None]
    goal("Airflow sensor poke < 1 s", bool(emax) and max(emax) < 1000,
         "slowest %.0f ms" % max(emax) if emax else "no pokes")
    rss = [r.get("vmhwm_kib") for r in runs]
    goal("peak RSS <= 32 MiB", None not in rss and max(rss) <= 32 * 1024,
         "highest %.1f MiB" % (max(rss) / 1024) if None not in rss
         else "not read for every run")
    same = [r.get("identical") for r in intake]
    goal("all delivered byte-identical", bool(same) and all(same),
         "%d of %d runs" % (sum(bool(s) for s in same), len(same)))
    targets = sorted({r["target"] for r in runs})
    clean = [t for t in targets if any(
        r["scenario"] == "rescan" and r["target"] == t and r.get("not_resent")
        for r in runs)]
    goal("nothing re-sent on rescan", clean == targets,
         "%d of %d targets' rescans checked clean" % (len(clean), len(targets)))

    loadavg = os.getloadavg()
    rows.append("load average at the end: %.1f %.1f %.1f on %d CPUs%s" % (
        *loadavg, os.cpu_count(),
        "  (other jobs ran: the figures are skewed)"
        if loadavg[2] > os.cpu_count() else ""))
    out = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "n": a.n,
           "cpus": os.cpu_count(), "loadavg": loadavg, "runs": runs,
           "goals": {g: ok for g, ok in goals}}
    with open(a.out, "w") as fh:
        json.dump(out, fh, indent=1)
    print("\n".join(rows))
    return 0 if all(ok for _, ok in goals) else 4  # 1 is a crash


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("tree")
    s.add_argument("dir")
    s.add_argument("n", type=int)
    s.add_argument("folders", type=int)
    s.add_argument("--seed", type=int, default=1)
    s = sub.add_parser("poll")
    for k in ("sftprelay", "conf", "out", "ready", "go"):
        s.add_argument("--" + k, required=True)
    s.add_argument("--n", type=int, required=True)
    s.add_argument("--after")
    for k in ("timeout", "stall"):
        s.add_argument("--" + k, type=float, required=True)
    s = sub.add_parser("sensor")
    for k in ("journal", "pattern", "stop", "out", "ready", "go"):
        s.add_argument("--" + k, required=True)
    s.add_argument("--limit", type=float, required=True)
    s = sub.add_parser("snapshot")
    for k in ("journal", "dst", "out"):
        s.add_argument(k)
    s = sub.add_parser("note")
    s.add_argument("file")
    s.add_argument("kv", nargs="+")
    s = sub.add_parser("report")
    s.add_argument("resdir")
    s.add_argument("out")
    s.add_argument("n", type=int)
    a = p.parse_args()
    return globals()["cmd_" + a.cmd.replace("-", "_")](a) or 0


if __name__ == "__main__":
    sys.exit(main())
