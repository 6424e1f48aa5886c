"""The sensors, the trigger and the sftp_sync DAG, driven through a
stand-in for Airflow 3 (tests/python/airflow_stub: which Airflow source
each behaviour follows is written in each of its modules), against the
journal t_airflow.sh made with the real agent."""
import asyncio
import datetime as dt
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.join(HERE, "..", "..")
sys.path[:0] = [os.path.join(HERE, "airflow_stub"),
                os.path.join(TOP, "airflow", "plugins")]

import stub_runner  # noqa: E402
from airflow.sdk import BaseSensorOperator, PokeReturnValue  # noqa: E402
from airflow.sdk.exceptions import (  # noqa: E402
    AirflowFailException, AirflowSensorTimeout, TaskDeferred)
from airflow.triggers.base import BaseTrigger  # noqa: E402
from sftprelay_airflow.journal import name_from_fields  # noqa: E402
from sftprelay_airflow.sensors import (  # noqa: E402
    SftpRelayBacklogSensor, SftpRelayDeliveredSensor)
from sftprelay_airflow.triggers import SftpRelayDeliveredTrigger  # noqa: E402

JOURNAL = os.environ["JOURNAL"]
SRC = os.environ["SRC"]


def sha256(rel):
    with open(os.path.join(SRC, rel), "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def sensor(**kw):
    return SftpRelayDeliveredSensor(task_id="t", journal_path=JOURNAL, **kw)


def first_event(trigger):
    async def go():
        async for ev in trigger.run():
            return ev.payload
    return asyncio.run(asyncio.wait_for(go(), 10))


class DeliveredSensor(unittest.TestCase):
    def test_delivered_path_pushes_its_xcom(self):
        r = sensor(path="a/b/c/file_1.txt").poke({})
        self.assertTrue(r.is_done)
        (x,) = r.xcom_value
        self.assertEqual(x["path"], "a/b/c/file_1.txt")
        self.assertEqual(x["sha256"], sha256("a/b/c/file_1.txt"))
        self.assertEqual(set(x), {"path", "size", "sha256", "delivered_at",
                                  "target_path", "delivered_sha256"})
        self.assertEqual(x["target_path"], "a/b/c/file_1.txt")
        self.assertEqual(x["delivered_sha256"], x["sha256"])

    def test_pattern(self):
        r = sensor(pattern="a/b/c/file_*.txt").poke({})
        self.assertTrue(r.is_done)
        self.assertEqual(len(r.xcom_value), 3)

    def test_failed_file_fails_the_task(self):
        with self.assertRaises(AirflowFailException) as cm:
            sensor(path="blocked/x.txt").poke({})
        self.assertIn("blocked/x.txt: failed", str(cm.exception))

    def test_pending_and_missing_wait(self):
        self.assertFalse(sensor(path="late/new.txt").poke({}).is_done)
        self.assertFalse(sensor(path="not/there.txt").poke({}).is_done)
        missing = SftpRelayDeliveredSensor(task_id="t", path="x",
                                           journal_path=JOURNAL + ".nope")
        self.assertFalse(missing.poke({}).is_done)

    def test_newer_than_as_rendered_template(self):
        later = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)).isoformat()
        self.assertFalse(sensor(path="a/b/c/file_1.txt", newer_than=later).poke({}).is_done)
        self.assertTrue(sensor(path="a/b/c/file_1.txt",
                               newer_than="2024-03-01T00:00:00Z").poke({}).is_done)

    def test_path_or_pattern(self):
        with self.assertRaises(ValueError):
            SftpRelayDeliveredSensor(task_id="t")
        with self.assertRaises(ValueError):
            SftpRelayDeliveredSensor(task_id="t", path="a", path_bytes="a")

    def test_templated_fields(self):
        self.assertEqual(set(SftpRelayDeliveredSensor.template_fields),
                         {"path", "path_bytes", "pattern", "journal_path",
                          "newer_than"})


class Deferrable(unittest.TestCase):
    def test_done_without_deferring(self):
        x = sensor(path="a/b/c/file_2.txt", deferrable=True).execute({})
        self.assertEqual(x[0]["sha256"], sha256("a/b/c/file_2.txt"))

    def test_defers_to_the_trigger(self):
        s = sensor(path="late/new.txt", deferrable=True, poke_interval=5)
        with self.assertRaises(TaskDeferred) as cm:
            s.execute({})
        trig = cm.exception.trigger
        self.assertEqual(cm.exception.method_name, "execute_complete")
        name, kwargs = trig.serialize()
        self.assertEqual(name, "sftprelay_airflow.triggers.SftpRelayDeliveredTrigger")
        self.assertEqual(kwargs["path"], "late/new.txt")
        self.assertEqual(kwargs["poll_interval"], 5.0)

    def test_trigger_events(self):
        ok = first_event(SftpRelayDeliveredTrigger(JOURNAL, path="a/b/c/file_3.txt"))
        self.assertEqual(ok["status"], "success")
        self.assertEqual(ok["files"][0]["sha256"], sha256("a/b/c/file_3.txt"))
        bad = first_event(SftpRelayDeliveredTrigger(JOURNAL, path="blocked/x.txt"))
        self.assertEqual(bad["status"], "failed")
        s = sensor(path="blocked/x.txt")
        with self.assertRaises(AirflowFailException):
            s.execute_complete({}, bad)
        self.assertEqual(s.execute_complete({}, ok), ok["files"])


LATIN1 = b"r\xe9sum\xe9.csv"  # delivered
LATIN1_FAILED = b"blocked/x-\xe9.txt"
LATIN1_QUEUED = b"late/caf\xe9.txt"


class NotUtf8Names(unittest.TestCase):
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
        self.assert_latin1_xcom(stub_runner.run_task(sensor(path=os.fsdecode(LATIN1))))

    def test_path_as_bytes_or_escaped_text(self):
        self.assert_latin1_xcom(stub_runner.run_task(sensor(path=LATIN1)))
        self.assert_latin1_xcom(stub_runner.run_task(
            sensor(path_bytes="r\\xe9sum\\xe9.csv")))
        self.assert_latin1_xcom(stub_runner.run_task(
            sensor(path=LATIN1, deferrable=True)))

    def test_pattern(self):
        self.assert_latin1_xcom(stub_runner.run_task(sensor(pattern="r?sum?.csv")))

    def test_failed_name_in_the_message(self):
        for deferrable in (False, True):
            out = stub_runner.run_task(sensor(path=LATIN1_FAILED, deferrable=deferrable))
            self.assertEqual(out.state, "failed", out)
            self.assertIsInstance(out.error, AirflowFailException)
            self.assertIn("blocked/x-\\xe9.txt: failed", str(out.error))
            stub_runner.to_wire(str(out.error))
        event = first_event(SftpRelayDeliveredTrigger(JOURNAL, pattern="blocked/*"))
        stub_runner.to_wire(event)
        self.assertIn("blocked/x-\\xe9.txt: failed", event["reason"])

    def test_deferred_on_a_queued_name(self):
        s = sensor(path=os.fsdecode(LATIN1_QUEUED), deferrable=True, timeout=0.3,
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
        payload = first_event(SftpRelayDeliveredTrigger(JOURNAL, path=LATIN1))
        stub_runner.to_wire(payload)
        self.assertEqual(name_from_fields(payload["files"][0]), LATIN1)


class Timeout(unittest.TestCase):
    """A deferrable sensor times out as a poking one does: defer() gets
    what is left of timeout, counted from the start of the try."""

    def test_deferral_has_the_timeout(self):
        s = sensor(path="late/new.txt", deferrable=True, timeout=0.3, poke_interval=0.05)
        out = stub_runner.run_task(s)
        self.assertEqual(out.state, "deferred", out)
        self.assertIsNotNone(out.deferral.timeout)
        self.assertLessEqual(out.deferral.timeout, dt.timedelta(seconds=0.3))
        self.assertGreater(out.deferral.timeout, dt.timedelta(seconds=0.1))

    def test_times_out_while_deferred(self):
        s = sensor(path="late/new.txt", deferrable=True, timeout=0.3, poke_interval=0.05)
        out = stub_runner.run_to_end(s)
        self.assertEqual(out.state, "failed", out)
        self.assertIsInstance(out.error, AirflowSensorTimeout)
        s = sensor(path="late/new.txt", deferrable=True, timeout=0.3, poke_interval=0.05,
                   soft_fail=True)
        self.assertEqual(stub_runner.run_to_end(s).state, "skipped")

    def test_counts_from_the_start_of_the_try(self):
        now = dt.datetime.now(dt.timezone.utc)
        s = sensor(path="late/new.txt", deferrable=True, timeout=150)
        out = stub_runner.run_task(s, stub_runner.context_for(now - dt.timedelta(seconds=100)))
        self.assertEqual(out.state, "deferred", out)
        left = out.deferral.timeout.total_seconds()
        self.assertTrue(45 < left <= 50, left)
        # already past: no deferral, the timeout at once
        out = stub_runner.run_task(s, stub_runner.context_for(now - dt.timedelta(seconds=200)))
        self.assertEqual(out.state, "failed", out)
        self.assertIsInstance(out.error, AirflowSensorTimeout)
        s = sensor(path="late/new.txt", deferrable=True, timeout=150, soft_fail=True)
        out = stub_runner.run_task(s, stub_runner.context_for(now - dt.timedelta(seconds=200)))
        self.assertEqual(out.state, "skipped", out)


class SoftFail(unittest.TestCase):
    """soft_fail=True skips a task whose file failed, as Airflow's own
    sensors do, in poke mode and deferrable mode alike."""

    def test_poke_mode(self):
        out = stub_runner.run_task(sensor(path="blocked/x.txt", soft_fail=True))
        self.assertEqual(out.state, "skipped", out)
        out = stub_runner.run_task(sensor(path="blocked/x.txt"))
        self.assertEqual(out.state, "failed", out)
        self.assertIsInstance(out.error, AirflowFailException)

    def test_deferrable_failed_before_it_starts(self):
        out = stub_runner.run_task(sensor(path="blocked/x.txt", deferrable=True,
                                          soft_fail=True))
        self.assertEqual(out.state, "skipped", out)
        out = stub_runner.run_task(sensor(path="blocked/x.txt", deferrable=True,
                                          never_fail=True))
        self.assertEqual(out.state, "skipped", out)
        out = stub_runner.run_task(sensor(path="blocked/x.txt", deferrable=True))
        self.assertEqual(out.state, "failed", out)
        self.assertIsInstance(out.error, AirflowFailException)

    def test_deferrable_failed_while_deferred(self):
        s = sensor(path="late/new.txt", deferrable=True, soft_fail=True)
        event = {"status": "failed", "reason": "late/new.txt: failed: boom"}
        out = stub_runner.resume_task(s, "execute_complete", {"event": event})
        self.assertEqual(out.state, "skipped", out)


class Backlog(unittest.TestCase):
    def test_backlog(self):
        self.assertTrue(SftpRelayBacklogSensor(task_id="b", max_age=dt.timedelta(hours=1),
                                               journal_path=JOURNAL).poke({}))
        self.assertFalse(SftpRelayBacklogSensor(task_id="b", max_age=-1,
                                                journal_path=JOURNAL).poke({}))


def python(code):
    """Run code in a fresh python3 that finds the stand-in and the plugin;
    its stderr, or AssertionError with it when it fails."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path[:2]))
    p = subprocess.run([sys.executable, "-W", "error::FutureWarning", "-c", code],
                       env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise AssertionError(p.stderr)
    return p.stderr


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
            sensor(path="x", poke_intervall=5)
        self.assertIn("Invalid arguments were passed to SftpRelayDeliveredSensor",
                      str(cm.exception))
        with self.assertRaises(ValueError):
            sensor(path="x", mode="sometimes")
        with self.assertRaises(ValueError):
            sensor(path="x", soft_fail=True, never_fail=True)

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
        (report,) = [t for t in dag.tasks if t.task_id == "report"]
        self.assertEqual(sorted(u.task_id for u in report.upstream),
                         ["wait_file_1", "wait_file_2", "wait_file_3"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
