#!/usr/bin/env python3
"""bench/transfer.py: the measuring half of "bench/run" (stdlib only).

Subcommands, each called by bench/run:
  measure OUT LOG TIMEFILE -- CMD...
      Run CMD (output to LOG) under GNU time (-o TIMEFILE), as a child
      subreaper: a process that CMD's tree orphans (lftp's ssh, whose
      parent dies before reaping it) comes here, and its CPU time and peak
      RSS are added to GNU time's figures of CMD and the children it
      reaped.  Writes "seconds peak-RSS-KiB CPU-seconds orphans" to OUT:
      the wall time until GNU time exits, the largest RSS of one process
      (GNU time's %M, or an orphan's), user + system time of them all, and
      how many orphans were reaped.  Exits with CMD's status.
  latency --src DIR --dst DIR --n N --pid PID --out JSON [--timeout S]
      The agent (PID) watches DIR and delivers into DIR's copy DST.  After
      one warm-up file, write N files of 4 KiB into DIR one at a time: each
      is written and closed, then DST is polled (os.stat every POLL s) until
      the file is there under its final name with its 4096 bytes, then the
      next.  Records close -> visible in ms, and the agent's VmHWM.
  text OUT MIB
      MIB MiB of mixed text into OUT: CSV rows, JSON records and log lines
      with random values (the text the gzbig and zstdbig rows compress).
  report RAW OUT KEY=VALUE...
      Medians, ratios and goals from bench/run's raw figures in RAW: prints
      the table, writes OUT (JSON, every run).  Exits 4 if a goal is missed.
"""

import argparse
import ctypes
import glob
import json
import math
import os
import platform
import random
import signal
import statistics
import sys
import time

POLL = 0.0005  # 0.5 ms between two looks at the target
SIZE = 4096
MIB = 1 << 20
GIB = 1 << 30

AGENTS = ("sftprelayd-libssh", "sftprelayd-libssh2", "sftprelayd-s3")
PEERS = ("sftp", "sftp-gcm", "lftp", "aws", "pipe")
THROUGHPUT = ("big", "ranges", "small", "mid", "rtt", "s3big", "s3small",
              "gzbig", "zstdbig")

# The goals of the issue, for each agent backend.
GOAL_RATIO = {"big": 1.0, "ranges": 1.25, "small": 2.0,
              "rtt": 10.0}  # x sftp's throughput
GOAL_CPU = ("big", "small", "mid")  # CPU s/GiB <= sftp's (default cipher)
GOAL_RSS_KIB = 16 * 1024
# S3 rows: at least as fast as aws s3 cp, with less memory (its peak RSS
# instead of the 16 MiB).
GOAL_S3 = ("s3big", "s3small")
# Transform rows: at least as fast as compressor | ssh, in 16 MiB plus the
# library's window (zstd level 3: 2^21 bytes; deflate's 32 KiB).
GOAL_PIPE = {"gzbig": 32, "zstdbig": 2048}  # window KiB
GOAL_P50_MS = 50
GOAL_P99_MS = 250


# --- measure ----------------------------------------------------------------

PR_SET_CHILD_SUBREAPER = 36
ORPHAN_WAIT = 10  # seconds orphans may outlive CMD before they are killed


def our_children():
    pids = []
    for tid in os.listdir("/proc/self/task"):
        try:
            with open("/proc/self/task/%s/children" % tid) as f:
                pids += [int(x) for x in f.read().split()]
        except OSError:
            pass
    return pids


def cmd_measure(a):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        sys.exit("measure: prctl: %s" % os.strerror(ctypes.get_errno()))
    argv = [a.gnu_time, "-f", "%e %M %U %S", "-o", a.timefile] + a.command
    with open(a.log, "ab") as log:
        fd = log.fileno()
        t0 = time.monotonic()
        pid = os.posix_spawn(argv[0], argv, os.environ,
                             file_actions=[(os.POSIX_SPAWN_DUP2, fd, 1),
                                           (os.POSIX_SPAWN_DUP2, fd, 2)])
        _, status = os.waitpid(pid, 0)
        wall = time.monotonic() - t0
    orphans, cpu, rss = 0, 0.0, 0
    deadline = time.monotonic() + ORPHAN_WAIT
    while True:
        try:
            done, _, ru = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if done == 0:
            if time.monotonic() > deadline:
                for p in our_children():
                    os.kill(p, signal.SIGKILL)
            time.sleep(0.01)
            continue
        orphans += 1
        cpu += ru.ru_utime + ru.ru_stime
        rss = max(rss, ru.ru_maxrss)
    rc = os.waitstatus_to_exitcode(status)
    if rc != 0:
        return rc
    with open(a.timefile) as f:
        _, m, u, s = f.read().split("\n")[-2].split()
    with open(a.out, "w") as f:
        f.write("%.3f %d %.3f %d\n" % (wall, max(int(m), rss),
                                       float(u) + float(s) + cpu, orphans))
    return 0


# --- latency ----------------------------------------------------------------


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def vmhwm_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def send_one(src, dst, name, pid, timeout):
    """Write src/name, wait for dst/name; return close -> visible, seconds."""
    with open(os.path.join(src, name), "wb") as f:
        f.write(os.urandom(SIZE))
    t_close = time.monotonic()
    target = os.path.join(dst, name)
    deadline = t_close + timeout
    looks = 0
    while True:
        try:
            if os.stat(target).st_size == SIZE:
                return time.monotonic() - t_close
        except FileNotFoundError:
            pass
        looks += 1
        if looks % 100 == 0:
            if time.monotonic() > deadline:
                sys.exit("latency: %s not on the target after %d s" %
                         (name, timeout))
            if not alive(pid):
                sys.exit("latency: the agent (pid %d) exited" % pid)
        time.sleep(POLL)


def percentile(sorted_values, q):
    """Nearest rank: the smallest value with at least q of them <= it."""
    n = len(sorted_values)
    return sorted_values[max(0, math.ceil(q * n) - 1)]


def cmd_latency(a):
    send_one(a.src, a.dst, "warmup.bin", a.pid, a.timeout)
    ms = []
    for i in range(a.n):
        ms.append(round(1000 * send_one(a.src, a.dst, "l%05d.bin" % i, a.pid,
                                        a.timeout), 2))
    s = sorted(ms)
    res = {"n": a.n, "p50_ms": percentile(s, 0.50),
           "p99_ms": percentile(s, 0.99), "max_ms": s[-1],
           "mean_ms": round(statistics.mean(s), 2),
           "peak_rss_kib": vmhwm_kib(a.pid), "samples_ms": ms}
    with open(a.out, "w") as f:
        json.dump(res, f)


# --- report -----------------------------------------------------------------


def median(xs):
    return statistics.median(xs) if xs else None


def rnd(x, nd=2):
    return None if x is None else round(x, nd)


def fmt(x, f="%.2f"):
    return "-" if x is None else f % x


def workloads(p):
    """name, bytes, files, unit of each workload."""
    big_mb, small_n = p["big_mb"], p["small_n"]
    mid_n, mid_mb, rtt_n = p["mid_n"], p["mid_mb"], p["rtt_n"]
    big = ("%d GiB file" % (big_mb // 1024) if big_mb % 1024 == 0
           else "%d MiB file" % big_mb)
    return {
        "big": (big, big_mb * MIB, 1, "MB/s"),
        "ranges": (big + ", ranges", big_mb * MIB, 1, "MB/s"),
        "small": ("%d x 4 KiB" % small_n, small_n * SIZE, small_n, "files/s"),
        "mid": ("%d x %d MiB" % (mid_n, mid_mb), mid_n * mid_mb * MIB, mid_n,
                "MB/s"),
        "rtt": ("%g ms RTT, %d x 4 KiB" % (2 * p["rtt_delay_ms"], rtt_n),
                rtt_n * SIZE, rtt_n, "files/s"),
        "s3big": (big + " to S3", big_mb * MIB, 1, "MB/s"),
        "s3small": ("%d x 4 KiB to S3" % small_n, small_n * SIZE, small_n,
                    "files/s"),
        "gzbig": ("%d MiB text, gzip -1" % p.get("text_mb", 0),
                  p.get("text_mb", 0) * MIB, 1, "MB/s"),
        "zstdbig": ("%d MiB text, zstd -3" % p.get("text_mb", 0),
                    p.get("text_mb", 0) * MIB, 1, "MB/s"),
    }


def transfer_result(path, nbytes, nfiles):
    runs = []
    with open(path) as f:
        for line in f:
            s, m, c, orphans, st = line.split()
            runs.append({"seconds": float(s), "peak_rss_kib": int(m),
                         "cpu_seconds": float(c), "orphans": int(orphans),
                         "steal_pct": float(st)})
    sec = median([r["seconds"] for r in runs])
    cpu = median([r["cpu_seconds"] for r in runs])
    return {
        "runs": runs,
        "seconds": rnd(sec),
        "seconds_min_max": [min(r["seconds"] for r in runs),
                            max(r["seconds"] for r in runs)],
        "mb_per_s": rnd(nbytes / MIB / sec, 1) if sec else None,
        "files_per_s": rnd(nfiles / sec, 1) if sec else None,
        "cpu_seconds": rnd(cpu),
        "cpu_s_per_gib": rnd(cpu / (nbytes / GIB)),
        "peak_rss_kib": int(median([r["peak_rss_kib"] for r in runs])),
    }


def latency_result(paths):
    runs = []
    for path in paths:
        with open(path) as f:
            runs.append(json.load(f))
    rss = [r["peak_rss_kib"] for r in runs if r["peak_rss_kib"] is not None]
    return {"runs": runs,
            "p50_ms": rnd(median([r["p50_ms"] for r in runs])),
            "p99_ms": rnd(median([r["p99_ms"] for r in runs])),
            "max_ms": max(r["max_ms"] for r in runs),
            "peak_rss_kib": int(median(rss)) if rss else None}


def goal(goals, tool, wl, what, value, limit, ok):
    g = {"tool": tool, "workload": wl, "goal": what, "value": value,
         "limit": limit, "pass": bool(ok)}
    goals.append(g)
    return "%s:%s" % (what.split()[0], "PASS" if ok else "FAIL")


def cmd_report(a):
    p = {}
    for kv in a.params:
        k, v = kv.split("=", 1)
        try:
            p[k] = int(v)
        except ValueError:
            try:
                p[k] = float(v)
            except ValueError:
                p[k] = v
    versions = {k[8:]: p.pop(k) for k in list(p) if k.startswith("version_")}
    res = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
           "machine": dict(cpus=os.cpu_count(), kernel=platform.release(),
                           **versions),
           "params": p, "workloads": {}, "goals": []}
    goals = res["goals"]
    wls = workloads(p)
    rows = [("%-22s  %-18s  %7s  %7s  %8s  %9s  %7s" + "  %6s" * len(PEERS) +
             "  %s") % ("workload", "tool", "seconds", "MB/s", "files/s",
                        "CPU s/GiB", "RSS MiB", "xsftp", "xgcm", "xlftp",
                        "xaws", "xpipe", "goals")]
    steal = []
    for wl in THROUGHPUT:
        # ranges: the agents' big file over several connections, against
        # the peers' runs of the same file (big).
        src = {t: os.path.join(a.raw, "%s.%s" % (
            "big" if wl == "ranges" and t in PEERS else wl, t))
            for t in AGENTS + PEERS}
        tools = [t for t in AGENTS + PEERS if os.path.exists(src[t])]
        if wl == "ranges" and not any(t in AGENTS for t in tools):
            continue
        if not tools:
            continue
        name, nbytes, nfiles, unit = wls[wl]
        w = res["workloads"][wl] = {"name": name, "bytes": nbytes,
                                    "files": nfiles, "unit": unit}
        for t in tools:
            w[t] = transfer_result(src[t], nbytes, nfiles)
            if wl != "ranges" or t in AGENTS:
                steal += [r["steal_pct"] for r in w[t]["runs"]]
        for t in [t for t in PEERS if t in w] + [t for t in AGENTS if t in w]:
            r = w[t]
            ratios, marks = {}, []
            if t in AGENTS:
                for peer in PEERS:
                    if peer in w and r["seconds"]:
                        ratios[peer] = rnd(w[peer]["seconds"] / r["seconds"])
                if "sftp" in w:
                    r["cpu_ratio_sftp"] = rnd(r["cpu_s_per_gib"] /
                                              w["sftp"]["cpu_s_per_gib"])
                r["ratio"] = ratios
                if wl in GOAL_RATIO and "sftp" in ratios:
                    marks.append(goal(
                        goals, t, wl, "x>=%g sftp" % GOAL_RATIO[wl],
                        ratios["sftp"], GOAL_RATIO[wl],
                        ratios["sftp"] >= GOAL_RATIO[wl]))
                if wl in GOAL_CPU and "sftp" in w:
                    marks.append(goal(
                        goals, t, wl, "cpu s/GiB <= sftp",
                        r["cpu_s_per_gib"], w["sftp"]["cpu_s_per_gib"],
                        r["cpu_s_per_gib"] <= w["sftp"]["cpu_s_per_gib"]))
                if wl in GOAL_S3 and "aws" in ratios:
                    marks.append(goal(goals, t, wl, "x>=1 aws",
                                      ratios["aws"], 1.0, ratios["aws"] >= 1.0))
                    marks.append(goal(
                        goals, t, wl, "rss KiB < aws",
                        r["peak_rss_kib"], w["aws"]["peak_rss_kib"],
                        r["peak_rss_kib"] < w["aws"]["peak_rss_kib"]))
                elif wl in GOAL_PIPE:
                    if "pipe" in ratios:
                        marks.append(goal(goals, t, wl, "x>=1 pipe",
                                          ratios["pipe"], 1.0,
                                          ratios["pipe"] >= 1.0))
                    limit = GOAL_RSS_KIB + GOAL_PIPE[wl]
                    marks.append(goal(
                        goals, t, wl, "rss KiB <= 16 MiB + window",
                        r["peak_rss_kib"], limit, r["peak_rss_kib"] <= limit))
                elif wl not in GOAL_S3:
                    marks.append(goal(goals, t, wl, "rss KiB <= 16 MiB",
                                      r["peak_rss_kib"], GOAL_RSS_KIB,
                                      r["peak_rss_kib"] <= GOAL_RSS_KIB))
            rows.append(
                ("%-22s  %-18s  %7.2f  %7s  %8s  %9.2f  %7.1f" +
                 "  %6s" * len(PEERS) + "  %s") % (
                    name, t, r["seconds"],
                    fmt(r["mb_per_s"], "%.1f") if unit == "MB/s" else "-",
                    fmt(r["files_per_s"], "%.1f") if unit == "files/s" else "-",
                    r["cpu_s_per_gib"], r["peak_rss_kib"] / 1024,
                    *[fmt(ratios.get(peer)) if t in AGENTS else ""
                      for peer in PEERS], " ".join(marks)))
    lat = {}
    for t in AGENTS:
        paths = sorted(glob.glob(os.path.join(a.raw, "latency.%s.*.json" % t)))
        if paths:
            lat[t] = latency_result(paths)
    if lat:
        res["workloads"]["latency"] = w = {
            "name": "close -> visible, %d x 4 KiB, settle %s ms" % (
                p["lat_n"], p["settle_ms"]),
            "settle_ms": p["settle_ms"], **lat}
        rows.append("")
        rows.append("%-46s  %-18s  %7s  %7s  %7s  %7s  %s" % (
            "workload", "tool", "p50 ms", "p99 ms", "max ms", "RSS MiB",
            "goals"))
        for t, r in lat.items():
            marks = [
                goal(goals, t, "latency", "p50 ms <= %d" % GOAL_P50_MS,
                     r["p50_ms"], GOAL_P50_MS, r["p50_ms"] <= GOAL_P50_MS),
                goal(goals, t, "latency", "p99 ms <= %d" % GOAL_P99_MS,
                     r["p99_ms"], GOAL_P99_MS, r["p99_ms"] <= GOAL_P99_MS)]
            if r["peak_rss_kib"] is not None:
                marks.append(goal(goals, t, "latency", "rss KiB <= 16 MiB",
                                  r["peak_rss_kib"], GOAL_RSS_KIB,
                                  r["peak_rss_kib"] <= GOAL_RSS_KIB))
            rows.append("%-46s  %-18s  %7.1f  %7.1f  %7.1f  %7s  %s" % (
                w["name"], t, r["p50_ms"], r["p99_ms"], r["max_ms"],
                fmt(r["peak_rss_kib"] and r["peak_rss_kib"] / 1024, "%.1f"),
                " ".join(marks)))
    missed = [g for g in goals if not g["pass"]]
    rows.append("")
    rows.append("goals: %d of %d met%s" % (
        len(goals) - len(missed), len(goals),
        " (FAIL above; the JSON lists each)" if missed else ""))
    if steal:
        res["steal_pct_max"] = max(steal)
        rows.append("CPU steal during the runs: median %.1f%%, max %.1f%%%s" % (
            statistics.median(steal), max(steal),
            "  (noisy host: compare the runs in the JSON)"
            if max(steal) > 5 else ""))
    with open(a.out, "w") as f:
        json.dump(res, f, indent=2)
    print("\n".join(r.rstrip() for r in rows))
    return 4 if missed else 0


WORDS = ("order", "invoice", "partner", "shipped", "pending", "EUR", "USD",
         "Zürich", "Köln", "total", "tax", "line", "warehouse", "refund")


def cmd_text(a):
    """Mixed text: CSV rows, JSON records and log lines, random values."""
    rnd = random.Random(7)
    left = a.mib * MIB
    with open(a.out, "w", encoding="utf-8") as f:
        while left > 0:
            k = rnd.random()
            if k < 0.5:
                line = "%d,%s,%s,%.2f,%s,%04d-%02d-%02d\n" % (
                    rnd.randrange(10 ** 9), rnd.choice(WORDS),
                    rnd.choice(WORDS), rnd.random() * 1e5,
                    "%08x" % rnd.getrandbits(32), rnd.randrange(2000, 2030),
                    rnd.randrange(1, 13), rnd.randrange(1, 29))
            elif k < 0.8:
                line = json.dumps({
                    "id": rnd.getrandbits(40), "partner": rnd.choice(WORDS),
                    "lines": [rnd.randrange(100) for _ in range(rnd.randrange(1, 6))],
                    "amount": round(rnd.random() * 1e4, 2),
                    "note": " ".join(rnd.choice(WORDS)
                                     for _ in range(rnd.randrange(3, 9)))}) + "\n"
            else:
                line = "%s.%06d %s sftprelayd[%d]: %s %s %d bytes\n" % (
                    time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(
                        1700000000 + rnd.randrange(10 ** 7))),
                    rnd.randrange(10 ** 6), rnd.choice(("INFO", "WARN")),
                    rnd.randrange(1, 65536), rnd.choice(WORDS),
                    rnd.choice(WORDS), rnd.randrange(10 ** 8))
            left -= f.write(line)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    txt = sub.add_parser("text")
    txt.add_argument("out")
    txt.add_argument("mib", type=int)
    lat = sub.add_parser("latency")
    lat.add_argument("--src", required=True)
    lat.add_argument("--dst", required=True)
    lat.add_argument("--n", type=int, required=True)
    lat.add_argument("--pid", type=int, required=True)
    lat.add_argument("--out", required=True)
    lat.add_argument("--timeout", type=int, default=30)
    mea = sub.add_parser("measure")
    mea.add_argument("--gnu-time", default="/usr/bin/time")
    mea.add_argument("out")
    mea.add_argument("log")
    mea.add_argument("timefile")
    mea.add_argument("command", nargs="+")
    rep = sub.add_parser("report")
    rep.add_argument("raw")
    rep.add_argument("out")
    rep.add_argument("params", nargs="*")
    a = ap.parse_args()
    if a.cmd == "latency":
        cmd_latency(a)
        return 0
    if a.cmd == "measure":
        return cmd_measure(a)
    if a.cmd == "text":
        return cmd_text(a)
    return cmd_report(a)


if __name__ == "__main__":
    sys.exit(main())
