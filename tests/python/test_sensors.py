"""The sensors, the trigger and the sftp_sync DAG, driven through a
stand-in for Airflow 3 (tests/python/airflow_stub), against the journal
t_airflow.sh made with the real agent.

Where each behaviour of the stand-in was taken from: Airflow 3.2 (the
release the sensors were first run in, and where the four bugs these
tests keep fixed were found), read in the apache/airflow repository on
main after 3.2.0, at the commits below; each module says more.

    behaviour                                   Airflow source, commit
    operator arguments checked against the      task-sdk/.../bases/operator.py
      real signature; defer() raises            003b1714
      TaskDeferred(trigger, method, timeout)
    sensor: poke loop, timeout, soft_fail,      task-sdk/.../bases/sensor.py
      never_fail, resume after a deferral       028148b0
    BaseTrigger abstract (serialize, run),      airflow-core/.../triggers/base.py
      TriggerEvent                              007f049b
    XComs and trigger kwargs must survive       task-sdk/.../api/client.py
      json.dumps(...).encode("utf-8")           00414da8 (stub_runner.py)
    airflow.sdk.exceptions, and                 task-sdk/.../exceptions.py,
      airflow.exceptions warning                airflow-core/.../exceptions.py
      DeprecatedImportWarning                   01585a10
    connections from AIRFLOW_CONN_<ID>          task-sdk/.../definitions/
                                                connection.py 00bce355
    BaseHook.get_connection                     task-sdk/.../bases/hook.py
                                                3600129f

Each sensor test runs twice: on the journal's file (journal_path), and
"OverHttp" through an Airflow connection (sftprelay_conn_id) to the
agent's status endpoint.  By default that endpoint is FakeEndpoint below,
an http.server that serves what the real "sftprelay list --json" and
"sftprelay status --json" print for the same journal.  To run them against
the real agent's endpoint instead, serving that journal, set

    STATUS_URL=https://127.0.0.1:9469   the endpoint
    STATUS_TOKEN=...                    its bearer token
    STATUS_CA=/path/ca.pem              optional: the CA of its certificate

beside JOURNAL, SRC and SFTPRELAY (t_airflow.sh sets those three and
passes the others through).
"""
import asyncio
import datetime as dt
import hashlib
import http.server
import importlib.util
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import unittest
import urllib.parse
from unittest import mock

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.join(HERE, "..", "..")
sys.path[:0] = [os.path.join(HERE, "airflow_stub"),
                os.path.join(TOP, "airflow", "plugins")]

import stub_runner  # noqa: E402
from airflow.sdk import BaseSensorOperator, PokeReturnValue  # noqa: E402
from airflow.sdk.exceptions import (  # noqa: E402
    AirflowFailException, AirflowSensorTimeout, TaskDeferred)
from airflow.triggers.base import BaseTrigger  # noqa: E402
from sftprelay_airflow.endpoint import (  # noqa: E402
    StatusEndpoint, StatusEndpointError, is_loopback)
from sftprelay_airflow.journal import (  # noqa: E402
    Journal, JournalUnavailable, delivered_decision, name_from_fields)
from sftprelay_airflow.sensors import (  # noqa: E402
    SftpRelayBacklogSensor, SftpRelayDeliveredSensor)
from sftprelay_airflow.sources import row_source  # noqa: E402
from sftprelay_airflow.triggers import SftpRelayDeliveredTrigger  # noqa: E402

JOURNAL = os.environ["JOURNAL"]
SRC = os.environ["SRC"]


def sha256(rel):
    with open(os.path.join(SRC, rel), "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def first_event(trigger):
    async def go():
        async for ev in trigger.run():
            return ev.payload
    return asyncio.run(asyncio.wait_for(go(), 10))


class OnJournal(unittest.TestCase):
    """Sensors and triggers that read the journal's file."""

    WHERE = {"journal_path": JOURNAL}
    NOWHERE = {"journal_path": JOURNAL + ".nope"}  # not there yet

    def sensor(self, **kw):
        return SftpRelayDeliveredSensor(task_id="t", **dict(self.WHERE, **kw))

    def trigger(self, **kw):
        return SftpRelayDeliveredTrigger(**dict(self.WHERE, **kw))

    def backlog(self, **kw):
        return SftpRelayBacklogSensor(task_id="b", **dict(self.WHERE, **kw))


class DeliveredSensor(OnJournal):
    def test_delivered_path_pushes_its_xcom(self):
        r = self.sensor(path="a/b/c/file_1.txt").poke({})
        self.assertTrue(r.is_done)
        (x,) = r.xcom_value
        self.assertEqual(x["path"], "a/b/c/file_1.txt")
        self.assertEqual(x["sha256"], sha256("a/b/c/file_1.txt"))
        self.assertEqual(set(x), {"path", "size", "sha256", "delivered_at",
                                  "target_path", "delivered_sha256"})
        self.assertEqual(x["target_path"], "a/b/c/file_1.txt")
        self.assertEqual(x["delivered_sha256"], x["sha256"])

    def test_pattern(self):
        r = self.sensor(pattern="a/b/c/file_*.txt").poke({})
        self.assertTrue(r.is_done)
        self.assertEqual(len(r.xcom_value), 3)

    def test_failed_file_fails_the_task(self):
        with self.assertRaises(AirflowFailException) as cm:
            self.sensor(path="blocked/x.txt").poke({})
        self.assertIn("blocked/x.txt: failed", str(cm.exception))

    def test_pending_and_missing_wait(self):
        self.assertFalse(self.sensor(path="late/new.txt").poke({}).is_done)
        self.assertFalse(self.sensor(path="not/there.txt").poke({}).is_done)
        missing = SftpRelayDeliveredSensor(task_id="t", path="x", **self.NOWHERE)
        self.assertFalse(missing.poke({}).is_done)

    def test_newer_than_as_rendered_template(self):
        later = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)).isoformat()
        self.assertFalse(self.sensor(path="a/b/c/file_1.txt", newer_than=later).poke({}).is_done)
        self.assertTrue(self.sensor(path="a/b/c/file_1.txt",
                                    newer_than="2024-03-01T00:00:00Z").poke({}).is_done)

    def test_path_or_pattern(self):
        with self.assertRaises(ValueError):
            SftpRelayDeliveredSensor(task_id="t")
        with self.assertRaises(ValueError):
            SftpRelayDeliveredSensor(task_id="t", path="a", path_bytes="a")

    def test_templated_fields(self):
        self.assertEqual(set(SftpRelayDeliveredSensor.template_fields),
                         {"path", "path_bytes", "pattern", "journal_path",
                          "sftprelay_conn_id", "newer_than"})
        self.assertEqual(set(SftpRelayBacklogSensor.template_fields),
                         {"journal_path", "sftprelay_conn_id"})


class Deferrable(OnJournal):
    def test_done_without_deferring(self):
        x = self.sensor(path="a/b/c/file_2.txt", deferrable=True).execute({})
        self.assertEqual(x[0]["sha256"], sha256("a/b/c/file_2.txt"))

    def test_defers_to_the_trigger(self):
        s = self.sensor(path="late/new.txt", deferrable=True, poke_interval=5)
        with self.assertRaises(TaskDeferred) as cm:
            s.execute({})
        trig = cm.exception.trigger
        self.assertEqual(cm.exception.method_name, "execute_complete")
        name, kwargs = trig.serialize()
        self.assertEqual(name, "sftprelay_airflow.triggers.SftpRelayDeliveredTrigger")
        self.assertEqual(kwargs["path"], "late/new.txt")
        self.assertEqual(kwargs["poll_interval"], 5.0)

    def test_trigger_events(self):
        ok = first_event(self.trigger(path="a/b/c/file_3.txt"))
        self.assertEqual(ok["status"], "success")
        self.assertEqual(ok["files"][0]["sha256"], sha256("a/b/c/file_3.txt"))
        bad = first_event(self.trigger(path="blocked/x.txt"))
        self.assertEqual(bad["status"], "failed")
        s = self.sensor(path="blocked/x.txt")
        with self.assertRaises(AirflowFailException):
            s.execute_complete({}, bad)
        self.assertEqual(s.execute_complete({}, ok), ok["files"])


BRIEF_1 = "a/b/c/file_1.txt"
LATIN1 = b"r\xe9sum\xe9.csv"  # delivered
LATIN1_FAILED = b"blocked/x-\xe9.txt"
LATIN1_QUEUED = b"late/caf\xe9.txt"


class NotUtf8Names(OnJournal):
    """A partner's Latin-1 names: XComs, trigger payloads and messages
    carry only JSON-safe text (what Airflow can send), the exact bytes as
    path_bytes."""

    def assert_latin1_xcom(self, out):
        self.assertEqual(out.state, "success", out)
        (x,) = out.xcom
        self.assertEqual(x["path"], "r\ufffdsum\ufffd.csv")
        self.assertEqual(x["path_bytes"], "r\\xe9sum\\xe9.csv")
        self.assertEqual((x["target_path"], x["target_path_bytes"]),
                         (x["path"], x["path_bytes"]))
        self.assertEqual(name_from_fields(x), LATIN1)
        self.assertEqual(name_from_fields(x, "target_path"), LATIN1)
        with open(os.path.join(SRC, os.fsdecode(LATIN1)), "rb") as f:
            self.assertEqual(x["sha256"], hashlib.sha256(f.read()).hexdigest())

    def test_path_as_surrogate_escaped_str(self):
        self.assert_latin1_xcom(stub_runner.run_task(self.sensor(path=os.fsdecode(LATIN1))))

    def test_path_as_bytes_or_escaped_text(self):
        self.assert_latin1_xcom(stub_runner.run_task(self.sensor(path=LATIN1)))
        self.assert_latin1_xcom(stub_runner.run_task(
            self.sensor(path_bytes="r\\xe9sum\\xe9.csv")))
        self.assert_latin1_xcom(stub_runner.run_task(
            self.sensor(path=LATIN1, deferrable=True)))

    def test_pattern(self):
        self.assert_latin1_xcom(stub_runner.run_task(self.sensor(pattern="r?sum?.csv")))

    def test_failed_name_in_the_message(self):
        for deferrable in (False, True):
            out = stub_runner.run_task(self.sensor(path=LATIN1_FAILED, deferrable=deferrable))
            self.assertEqual(out.state, "failed", out)
            self.assertIsInstance(out.error, AirflowFailException)
            self.assertIn("blocked/x-\\xe9.txt: failed", str(out.error))
            stub_runner.to_wire(str(out.error))
        event = first_event(self.trigger(pattern="blocked/*"))
        stub_runner.to_wire(event)
        self.assertIn("blocked/x-\\xe9.txt: failed", event["reason"])

    def test_deferred_on_a_queued_name(self):
        s = self.sensor(path=os.fsdecode(LATIN1_QUEUED), deferrable=True, timeout=0.3,
                   poke_interval=0.05)
        out = stub_runner.run_task(s)
        self.assertEqual(out.state, "deferred", out)
        name, kwargs = out.deferral.trigger.serialize()
        self.assertEqual(kwargs["path_bytes"], "late/caf\\xe9.txt")
        # the trigger made again from its payload waits for the same name
        again = SftpRelayDeliveredTrigger(**json.loads(stub_runner.to_wire(kwargs)))
        self.assertEqual(again.path, os.fsdecode(LATIN1_QUEUED))
        out = stub_runner.run_to_end(s)
        self.assertIsInstance(out.error, AirflowSensorTimeout)

    def test_trigger_success_payload(self):
        payload = first_event(self.trigger(path=LATIN1))
        stub_runner.to_wire(payload)
        self.assertEqual(name_from_fields(payload["files"][0]), LATIN1)


class Timeout(OnJournal):
    """A deferrable sensor times out as a poking one does: defer() gets
    what is left of timeout, counted from the start of the try."""

    def test_deferral_has_the_timeout(self):
        s = self.sensor(path="late/new.txt", deferrable=True, timeout=0.3, poke_interval=0.05)
        out = stub_runner.run_task(s)
        self.assertEqual(out.state, "deferred", out)
        self.assertIsNotNone(out.deferral.timeout)
        self.assertLessEqual(out.deferral.timeout, dt.timedelta(seconds=0.3))
        self.assertGreater(out.deferral.timeout, dt.timedelta(seconds=0.1))

    def test_times_out_while_deferred(self):
        s = self.sensor(path="late/new.txt", deferrable=True, timeout=0.3, poke_interval=0.05)
        out = stub_runner.run_to_end(s)
        self.assertEqual(out.state, "failed", out)
        self.assertIsInstance(out.error, AirflowSensorTimeout)
        s = self.sensor(path="late/new.txt", deferrable=True, timeout=0.3, poke_interval=0.05,
                   soft_fail=True)
        self.assertEqual(stub_runner.run_to_end(s).state, "skipped")

    def test_counts_from_the_start_of_the_try(self):
        now = dt.datetime.now(dt.timezone.utc)
        s = self.sensor(path="late/new.txt", deferrable=True, timeout=150)
        out = stub_runner.run_task(s, stub_runner.context_for(now - dt.timedelta(seconds=100)))
        self.assertEqual(out.state, "deferred", out)
        left = out.deferral.timeout.total_seconds()
        self.assertTrue(45 < left <= 50, left)
        # already past: no deferral, the timeout at once
        out = stub_runner.run_task(s, stub_runner.context_for(now - dt.timedelta(seconds=200)))
        self.assertEqual(out.state, "failed", out)
        self.assertIsInstance(out.error, AirflowSensorTimeout)
        s = self.sensor(path="late/new.txt", deferrable=True, timeout=150, soft_fail=True)
        out = stub_runner.run_task(s, stub_runner.context_for(now - dt.timedelta(seconds=200)))
        self.assertEqual(out.state, "skipped", out)


class SoftFail(OnJournal):
    """soft_fail=True skips a task whose file failed, as Airflow's own
    sensors do, in poke mode and deferrable mode alike."""

    def test_poke_mode(self):
        out = stub_runner.run_task(self.sensor(path="blocked/x.txt", soft_fail=True))
        self.assertEqual(out.state, "skipped", out)
        out = stub_runner.run_task(self.sensor(path="blocked/x.txt"))
        self.assertEqual(out.state, "failed", out)
        self.assertIsInstance(out.error, AirflowFailException)

    def test_deferrable_failed_before_it_starts(self):
        out = stub_runner.run_task(self.sensor(path="blocked/x.txt", deferrable=True,
                                          soft_fail=True))
        self.assertEqual(out.state, "skipped", out)
        out = stub_runner.run_task(self.sensor(path="blocked/x.txt", deferrable=True,
                                          never_fail=True))
        self.assertEqual(out.state, "skipped", out)
        out = stub_runner.run_task(self.sensor(path="blocked/x.txt", deferrable=True))
        self.assertEqual(out.state, "failed", out)
        self.assertIsInstance(out.error, AirflowFailException)

    def test_deferrable_failed_while_deferred(self):
        s = self.sensor(path="late/new.txt", deferrable=True, soft_fail=True)
        event = {"status": "failed", "reason": "late/new.txt: failed: boom"}
        out = stub_runner.resume_task(s, "execute_complete", {"event": event})
        self.assertEqual(out.state, "skipped", out)


class Backlog(OnJournal):
    def test_backlog(self):
        self.assertTrue(self.backlog(max_age=dt.timedelta(hours=1)).poke({}))
        self.assertFalse(self.backlog(max_age=-1).poke({}))
        self.assertFalse(SftpRelayBacklogSensor(task_id="b", max_age=60, **self.NOWHERE)
                         .poke({}))


def python(code):
    """Run code in a fresh python3 that finds the stand-in and the plugin;
    its stderr, or AssertionError with it when it fails."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path[:2]))
    p = subprocess.run([sys.executable, "-W", "error::FutureWarning", "-c", code],
                       env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise AssertionError(p.stderr)
    return p.stderr


# --- the status endpoint ------------------------------------------------

TOKEN = "t0ken-for-the-tests"


def cli_json(*args):
    """What the real "sftprelay -j JOURNAL ARGS --json" prints, parsed."""
    out = subprocess.run([os.environ["SFTPRELAY"], "-j", JOURNAL, *args, "--json"],
                         check=True, capture_output=True).stdout
    return json.loads(out.decode("utf-8"))


class FakeEndpoint(http.server.ThreadingHTTPServer):
    """The status endpoint's contract on 127.0.0.1 (plain HTTP): the rows
    and the summary are what the real CLI prints for JOURNAL."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), FakeHandler)
        self.rows = cli_json("list")
        self.summary = cli_json("status")
        self.requests = []
        threading.Thread(target=self.serve_forever, daemon=True).start()


class FakeHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, code, body, cut=False):
        data = json.dumps(body).encode("utf-8")
        self.send_response(code)
        if cut:
            self.send_header("Sftprelay-Truncated", "true")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        self.server.requests.append(self.path)
        if url.path == "/healthz":
            return self.reply(200, {"ok": True, "uptime_seconds": 1})
        if self.headers.get("Authorization") != "Bearer " + TOKEN:
            return self.reply(401, {"error": "a valid bearer token is required"})
        if url.path == "/v1/summary":
            return self.reply(200, self.server.summary)
        if url.path != "/v1/files":
            return self.reply(404, {"error": "no such endpoint"})
        q = {}
        for part in filter(None, url.query.split("&")):
            k, _, v = part.partition("=")
            q[k] = urllib.parse.unquote_to_bytes(v)
        if ("path" in q) == ("prefix" in q):
            return self.reply(400, {"error": "give path or prefix"})
        if "path" in q and "after" in q:  # as the agent's endpoint
            return self.reply(400, {"error": "path and after: after pages a list, "
                                             "not one path"})
        rows = [r for r in self.server.rows
                if (name_from_fields(r) == q["path"] if "path" in q
                    else name_from_fields(r).startswith(q["prefix"]))
                and ("state" not in q or r["state"] == q["state"].decode())
                and ("after" not in q or name_from_fields(r) > q["after"])]
        limit = int(q.get("limit", b"1000"))
        if not 1 <= limit <= 10000:  # as the agent's endpoint
            return self.reply(400, {"error": "limit: from 1 to 10000"})
        return self.reply(200, rows[:limit], cut=len(rows) > limit)


class Recorder(http.server.ThreadingHTTPServer):
    """A server on 127.0.0.1 that notes each request it gets (its request
    line and headers) in seen, and answers each with code and headers."""

    daemon_threads = True

    def __init__(self, code, headers=None):
        super().__init__(("127.0.0.1", 0), RecorderHandler)
        self.code, self.headers, self.seen = code, headers or {}, []
        self.url = "http://127.0.0.1:%d" % self.server_address[1]
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def stop(self):
        self.shutdown()
        self.server_close()


class RecorderHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.seen.append((self.requestline, dict(self.headers)))
        self.send_response(self.server.code)
        for k, v in self.server.headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"[]")

    do_CONNECT = do_GET  # as a proxy is asked for a tunnel


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_endpoint = []


def endpoint_url():
    """STATUS_URL, or the fake's URL (started once)."""
    if os.environ.get("STATUS_URL"):
        return os.environ["STATUS_URL"]
    if not _endpoint:
        _endpoint.append(FakeEndpoint())
    return "http://127.0.0.1:%d" % _endpoint[0].server_address[1]


def connection_env(conn_id, url, token):
    """AIRFLOW_CONN_<ID> for url, as a deployment would write it (JSON)."""
    u = urllib.parse.urlsplit(url)
    conn = {"conn_type": "http", "host": u.hostname, "port": u.port,
            "schema": u.scheme, "password": token}
    if os.environ.get("STATUS_CA"):
        conn["extra"] = {"ca_file": os.environ["STATUS_CA"]}
    os.environ["AIRFLOW_CONN_" + conn_id.upper()] = json.dumps(conn)


class OverHttp:
    """The same tests through sftprelay_conn_id and the status endpoint."""

    WHERE = {"sftprelay_conn_id": "sftprelay_status"}
    NOWHERE = {"sftprelay_conn_id": "sftprelay_down"}  # nothing listens

    @classmethod
    def setUpClass(cls):
        connection_env("sftprelay_status", endpoint_url(),
                       os.environ.get("STATUS_TOKEN", TOKEN))
        connection_env("sftprelay_down", "http://127.0.0.1:%d" % closed_port(), TOKEN)


class DeliveredSensorOverHttp(OverHttp, DeliveredSensor):
    pass


class DeferrableOverHttp(OverHttp, Deferrable):
    pass


class NotUtf8NamesOverHttp(OverHttp, NotUtf8Names):
    pass


class TimeoutOverHttp(OverHttp, Timeout):
    pass


class SoftFailOverHttp(OverHttp, SoftFail):
    pass


class BacklogOverHttp(OverHttp, Backlog):
    pass


class Paged(OverHttp):
    """Through the endpoint again, its rows asked two at a time: most
    patterns' rows come in several pages."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.page_rows = StatusEndpoint.page_rows
        StatusEndpoint.page_rows = 2

    @classmethod
    def tearDownClass(cls):
        StatusEndpoint.page_rows = cls.page_rows
        super().tearDownClass()


class DeliveredSensorPaged(Paged, DeliveredSensor):
    pass


class NotUtf8NamesPaged(Paged, NotUtf8Names):
    pass


class Endpoint(unittest.TestCase):
    """The HTTP source itself: the same decisions as the journal, refusals
    that fail the task, connections as Airflow gives them."""

    @classmethod
    def setUpClass(cls):
        OverHttp.setUpClass()
        cls.url = endpoint_url()
        cls.token = os.environ.get("STATUS_TOKEN", TOKEN)
        cls.ca = os.environ.get("STATUS_CA")

    def endpoint(self, **kw):
        return StatusEndpoint(self.url, token=self.token, ca_file=self.ca, **kw)

    def assert_same_decisions(self, e):
        """The decisions from e are the journal's, for paths and patterns."""
        j = Journal(JOURNAL)
        asks = [{"path": p} for p in ("a/b/c/file_1.txt", "blocked/x.txt", "late/new.txt",
                                      "no/such", LATIN1, LATIN1_QUEUED, LATIN1_FAILED)]
        asks += [{"pattern": p} for p in ("a/b/c/*", "*", "*.txt", "late/*", "r?sum?.csv",
                                          "blocked/*", "[a-c]*", "no/*")]
        asks += [{"pattern": "a/*", "newer_than": t} for t in (0, 4e9)]
        for ask in asks:
            dj, de = delivered_decision(j, **ask), delivered_decision(e, **ask)
            self.assertEqual(
                (dj.done, dj.reason, [f.as_xcom() for f in dj.files],
                 [f.as_xcom() for f in dj.failed]),
                (de.done, de.reason, [f.as_xcom() for f in de.files],
                 [f.as_xcom() for f in de.failed]), ask)

    def test_same_decisions_as_the_journal(self):
        self.assert_same_decisions(self.endpoint())

    def test_pattern_over_several_pages(self):
        for rows in (1, 2, 3):
            self.assert_same_decisions(self.endpoint(page_rows=rows))
        if os.environ.get("STATUS_URL"):
            return  # the requests are counted on the fake
        fake = _endpoint[0]
        n = len(fake.requests)
        self.assertTrue(delivered_decision(self.endpoint(page_rows=2),
                                           pattern="a/b/c/*").done)
        self.assertEqual(fake.requests[n:], [
            "/v1/files?prefix=a%2Fb%2Fc%2F&limit=2",
            "/v1/files?prefix=a%2Fb%2Fc%2F&limit=2&after=a%2Fb%2Fc%2Ffile_2.txt"])
        n = len(fake.requests)
        delivered_decision(self.endpoint(page_rows=2), pattern="*")
        self.assertEqual(len(fake.requests) - n, (len(fake.rows) + 1) // 2)

    def test_pattern_over_30000_rows(self):
        # as many pages of the endpoint's most (10000 rows) as it takes,
        # every row as the journal reader would give them
        fake = FakeEndpoint()
        self.addCleanup(fake.shutdown)
        self.addCleanup(fake.server_close)
        row = next(r for r in fake.rows if r["path"] == "a/b/c/file_1.txt")
        fake.rows = [dict(row, path=f"big/{i:05}.csv", target_path=f"big/{i:05}.csv")
                     for i in range(30000)]
        connection_env("sftprelay_big", "http://127.0.0.1:%d" % fake.server_address[1],
                       TOKEN)
        r = SftpRelayDeliveredSensor(task_id="t", pattern="big/*.csv",
                                     sftprelay_conn_id="sftprelay_big").poke({})
        self.assertTrue(r.is_done)
        self.assertEqual([x["path"] for x in r.xcom_value],
                         [row["path"] for row in fake.rows])
        self.assertEqual(len(fake.requests), 3)

    def test_wrong_token_fails_the_task(self):
        connection_env("sftprelay_bad_token", self.url, "not-the-token")
        s = SftpRelayDeliveredSensor(task_id="t", path="a/b/c/file_1.txt",
                                     sftprelay_conn_id="sftprelay_bad_token")
        with self.assertRaises(StatusEndpointError) as cm:
            s.poke({})
        self.assertIn("401", str(cm.exception))
        out = stub_runner.run_task(s)
        self.assertEqual(out.state, "failed", out)
        # deferred: the trigger's error event fails the task, soft_fail or not
        s = SftpRelayDeliveredSensor(task_id="t", path="late/new.txt", deferrable=True,
                                     soft_fail=True, **OverHttp.WHERE)
        out = stub_runner.run_task(s)
        self.assertEqual(out.state, "deferred", out)
        out.deferral.trigger.sftprelay_conn_id = "sftprelay_bad_token"  # rotated
        out = stub_runner.resume_task(s, *stub_runner.run_trigger(out.deferral))
        self.assertEqual(out.state, "failed", out)
        self.assertIn("401", str(out.error))

    def test_healthz_needs_no_token(self):
        self.assertIs(StatusEndpoint(self.url, ca_file=self.ca)._get("/healthz")["ok"],
                      True)

    def test_connection_forms(self):
        from airflow.sdk import Connection
        c = Connection.from_uri("http://:s%40cret@10.1.2.3:9469/https", conn_id="x")
        e = StatusEndpoint.from_connection(c)
        self.assertEqual((e.url, e.token), ("https://10.1.2.3:9469", "s@cret"))
        # extra's ca_file is the CA the certificate is checked against
        c = Connection.from_uri("http://10.1.2.3:9469/https?ca_file=%2Fno%2Fca.pem",
                                conn_id="x")
        with self.assertRaises(FileNotFoundError):
            StatusEndpoint.from_connection(c)
        # no schema: https, but http for loopback; a token never in clear
        e = StatusEndpoint.from_connection(Connection(conn_id="x", host="agent.example",
                                                      port=9469))
        self.assertEqual(e.url, "https://agent.example:9469")
        e = StatusEndpoint.from_connection(Connection(conn_id="x", host="::1", port=9469,
                                                      password="t"))
        self.assertEqual(e.url, "http://[::1]:9469")
        with self.assertRaises(ValueError):
            StatusEndpoint.from_connection(Connection(conn_id="x", host="10.1.2.3",
                                                      schema="http", password="t"))
        e = StatusEndpoint.from_connection(Connection(conn_id="x",
                                                      host="https://agent.example"))
        self.assertEqual(e.url, "https://agent.example")


class EndpointToken(unittest.TestCase):
    """The token goes to the endpoint named and nowhere else: not to the
    environment's proxy when the endpoint is on loopback, never along a
    redirect."""

    def sensor(self, conn_id):
        return SftpRelayDeliveredSensor(task_id="t", path="a/b/c/file_1.txt",
                                        sftprelay_conn_id=conn_id)

    def test_no_proxy_for_loopback(self):
        OverHttp.setUpClass()
        if not is_loopback(urllib.parse.urlsplit(endpoint_url()).hostname):
            self.skipTest("STATUS_URL is not on loopback")
        proxy = Recorder(502)
        self.addCleanup(proxy.stop)
        env = {k: proxy.url for k in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY",
                                      "https_proxy")}
        with mock.patch.dict(os.environ, env):
            for k in ("NO_PROXY", "no_proxy"):
                os.environ.pop(k, None)
            self.assertTrue(self.sensor("sftprelay_status").poke({}).is_done)
            self.assertEqual(proxy.seen, [])
            # the same environment sends https to another host through
            # the proxy, in a tunnel: the token is not in the CONNECT
            e = StatusEndpoint("https://agent.example:9469", token=TOKEN, timeout=5)
            with self.assertRaises(JournalUnavailable):
                e.oldest_pending_age()
        ((line, headers),) = proxy.seen
        self.assertTrue(line.startswith("CONNECT agent.example:9469 "), line)
        self.assertNotIn("Authorization", headers)

    def test_redirect_fails_the_task(self):
        other = Recorder(200)
        self.addCleanup(other.stop)
        where = other.url + "/v1/files?path=a%2Fb%2Fc%2Ffile_1.txt"
        for code in (301, 302, 303, 307, 308):
            redirector = Recorder(code, {"Location": where})
            self.addCleanup(redirector.stop)
            connection_env("sftprelay_redirect", redirector.url, TOKEN)
            with self.assertRaises(StatusEndpointError) as cm:
                self.sensor("sftprelay_redirect").poke({})
            said = str(cm.exception)
            self.assertTrue(said.startswith(
                f"status endpoint {redirector.url}/v1/files?path=a%2Fb%2Fc%2Ffile_1.txt:"
                f" {code} "), said)
            self.assertIn(f", a redirect to {where}: not followed", said)
            out = stub_runner.run_task(self.sensor("sftprelay_redirect"))
            self.assertEqual(out.state, "failed", out)
            self.assertEqual([h.get("Authorization") for _, h in redirector.seen],
                             ["Bearer " + TOKEN] * 2)
        self.assertEqual(other.seen, [])


@unittest.skipUnless(shutil.which("openssl"), "no openssl to make a certificate")
class EndpointTls(unittest.TestCase):
    """Over https the certificate is verified: against extra's ca_file for
    a private CA, and a certificate that does not verify fails the task
    rather than make it wait."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp()
        cls.cert, key = os.path.join(cls.dir, "cert.pem"), os.path.join(cls.dir, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-keyout", key, "-out", cls.cert, "-days", "1",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                       check=True, capture_output=True)
        cls.server = FakeEndpoint()
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(cls.cert, key)
        cls.server.socket = tls.wrap_socket(cls.server.socket, server_side=True)
        cls.port = cls.server.server_address[1]

    @classmethod
    def tearDownClass(cls):
        cls.server.shutdown()
        shutil.rmtree(cls.dir)

    def test_private_ca(self):
        os.environ["AIRFLOW_CONN_SFTPRELAY_TLS"] = json.dumps(
            {"conn_type": "http", "host": "127.0.0.1", "port": self.port,
             "password": TOKEN, "schema": "https", "extra": {"ca_file": self.cert}})
        s = SftpRelayDeliveredSensor(task_id="t", path="a/b/c/file_1.txt",
                                     sftprelay_conn_id="sftprelay_tls")
        self.assertTrue(s.poke({}).is_done)

    def test_unverified_certificate_fails(self):
        os.environ["AIRFLOW_CONN_SFTPRELAY_TLS_NO_CA"] = json.dumps(
            {"conn_type": "http", "host": "127.0.0.1", "port": self.port,
             "password": TOKEN, "schema": "https"})
        s = SftpRelayDeliveredSensor(task_id="t", path="a/b/c/file_1.txt",
                                     sftprelay_conn_id="sftprelay_tls_no_ca")
        with self.assertRaises(StatusEndpointError) as cm:
            s.poke({})
        self.assertIn("CERTIFICATE_VERIFY_FAILED", str(cm.exception))


class Imports(unittest.TestCase):
    def test_no_deprecated_imports(self):
        # Airflow 3 warns DeprecatedImportWarning (a FutureWarning) for the
        # task exceptions taken from airflow.exceptions: here an error.
        python("import sftprelay_airflow.sensors, sftprelay_airflow.triggers")

    def test_older_airflow_3_without_them_in_the_sdk(self):
        # Before they moved, airflow.sdk.exceptions did not have them and
        # airflow.exceptions did, without a warning.
        python("""
import sys, types
import airflow, airflow.sdk.exceptions as sdk
old = types.ModuleType("airflow.exceptions")
for name in ("AirflowException", "AirflowFailException",
             "AirflowSkipException", "AirflowSensorTimeout"):
    setattr(old, name, getattr(sdk, name))
    delattr(sdk, name)
sys.modules["airflow.exceptions"] = airflow.exceptions = old
import sftprelay_airflow.sensors as s
assert s.AirflowFailException is old.AirflowFailException
""")


class StandIn(unittest.TestCase):
    """The stand-in refuses what Airflow 3 refuses."""

    def test_unknown_operator_argument(self):
        with self.assertRaises(TypeError) as cm:
            SftpRelayDeliveredSensor(task_id="t", path="x", poke_intervall=5)
        self.assertIn("Invalid arguments were passed to SftpRelayDeliveredSensor",
                      str(cm.exception))
        with self.assertRaises(ValueError):
            SftpRelayDeliveredSensor(task_id="t", path="x", mode="sometimes")
        with self.assertRaises(ValueError):
            SftpRelayDeliveredSensor(task_id="t", path="x", soft_fail=True, never_fail=True)

    def test_trigger_is_abstract(self):
        class Half(BaseTrigger):
            def serialize(self):
                return ("x.Half", {})
        with self.assertRaises(TypeError):
            Half()

    def test_wire_refuses_lone_surrogates(self):
        with self.assertRaises(UnicodeEncodeError):
            stub_runner.to_wire({"path": os.fsdecode(b"r\xe9sum\xe9.csv")})
        self.assertEqual(stub_runner.to_wire({"p": "r\ufffd"}),
                         b'{"p": "r\xef\xbf\xbd"}')

    def test_poke_mode_times_out_and_soft_fail_skips(self):
        class Never(BaseSensorOperator):
            def poke(self, context):
                return PokeReturnValue(False)
        out = stub_runner.run_task(Never(task_id="n", timeout=0.05, poke_interval=0.01))
        self.assertEqual(out.state, "failed")
        self.assertIsInstance(out.error, AirflowSensorTimeout)
        out = stub_runner.run_task(Never(task_id="n", timeout=0.05, poke_interval=0.01,
                                         soft_fail=True))
        self.assertEqual(out.state, "skipped")


class Dag(unittest.TestCase):
    def test_sftp_sync_dag(self):
        spec = importlib.util.spec_from_file_location(
            "sftp_sync", os.path.join(TOP, "airflow", "dags", "sftp_sync.py"))
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        dag = mod.dag
        self.assertEqual(dag.dag_id, "sftp_sync")
        self.assertEqual(dag.kwargs["params"]["files"],
                         ["a/b/c/file_1.txt", "a/b/c/file_2.txt", "a/b/c/file_3.txt"])
        waits = [t for t in dag.tasks if isinstance(t, SftpRelayDeliveredSensor)]
        self.assertEqual([w.path for w in waits],
                         ["{{ params.files[0] }}", "{{ params.files[1] }}",
                          "{{ params.files[2] }}"])
        self.assertTrue(all(w.mode == "reschedule" for w in waits))
        # the journal by default; the status endpoint once a connection is
        # named by the param or the Variable
        self.assertEqual(dag.kwargs["params"]["journal_path"],
                         "/var/lib/sftprelay/journal.db")
        self.assertEqual(dag.kwargs["params"]["sftprelay_conn_id"], "")
        self.assertTrue(all(w.journal_path == "{{ params.journal_path }}" for w in waits))
        self.assertTrue(all(
            w.sftprelay_conn_id == "{{ params.sftprelay_conn_id"
            " or var.value.get('sftprelay_conn_id', '') }}" for w in waits))
        # with its fields as Airflow renders them (the stand-in renders no
        # templates): no connection, the journal; one, the endpoint
        OverHttp.setUpClass()
        for conn_id in ("", "sftprelay_status"):
            w = waits[0]
            w.path, w.journal_path, w.sftprelay_conn_id = BRIEF_1, JOURNAL, conn_id
            out = stub_runner.run_task(w)
            self.assertEqual(out.state, "success", out)
            self.assertEqual(out.xcom[0]["sha256"], sha256(BRIEF_1))
        self.assertEqual(type(row_source(JOURNAL, "")).__name__, "Journal")
        self.assertEqual(type(row_source(JOURNAL, "sftprelay_status")).__name__,
                         "StatusEndpoint")
        (report,) = [t for t in dag.tasks if t.task_id == "report"]
        self.assertEqual(sorted(u.task_id for u in report.upstream),
                         ["wait_file_1", "wait_file_2", "wait_file_3"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
