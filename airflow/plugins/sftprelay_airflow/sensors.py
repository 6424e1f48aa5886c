"""Airflow sensors on sftprelay's state: its journal's file, or its status
endpoint (over HTTP, for a worker on another host).  Thin wrappers: the
decisions are journal.py's, and they never talk to the SFTP servers."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any, Optional, Sequence

try:  # Airflow 3
    from airflow.sdk import BaseSensorOperator, PokeReturnValue
except ImportError:  # Airflow 2
    from airflow.sensors.base import BaseSensorOperator, PokeReturnValue
try:  # Airflow 3: the task exceptions are the task SDK's
    from airflow.sdk.exceptions import (
        AirflowException, AirflowFailException, AirflowSensorTimeout,
        AirflowSkipException)
except ImportError:  # Airflow 2 and the first Airflow 3 releases
    from airflow.exceptions import (
        AirflowException, AirflowFailException, AirflowSensorTimeout,
        AirflowSkipException)

from sftprelay_airflow.journal import (
    Name,
    backlog_decision,
    delivered_decision,
    name_arg,
)
from sftprelay_airflow.sources import row_source
from sftprelay_airflow.triggers import SftpRelayDeliveredTrigger


def _epoch(value: Any) -> Optional[float]:
    """newer_than as Unix seconds: a number, an ISO 8601 string (what a
    template such as "{{ data_interval_start }}" renders to) or a
    datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.timestamp()
    raise TypeError(f"newer_than: cannot read {value!r} as a time")


class SftpRelayDeliveredSensor(BaseSensorOperator):
    """Succeeds when every file named by path (exact) or pattern (glob) is
    delivered to the target, and pushes their path, size, sha256 and
    delivered_at as its XCom; fails at once when one of them failed.

    :param path: a path relative to the agent's source.path (templated);
        a str (with surrogate escapes for bytes that are not UTF-8, as
        os.fsdecode() gives) or bytes
    :param path_bytes: the path as escaped text, as an XCom's or
        "sftprelay --json"'s path_bytes gives it (templated)
    :param pattern: a glob over such paths, "*" crossing "/" (templated)
    :param journal_path: the agent's journal.path, for a worker on the
        agent's host (templated; default /var/lib/sftprelay/journal.db)
    :param sftprelay_conn_id: an Airflow connection (type HTTP) to the
        agent's status endpoint, for a worker on another host: host, port,
        schema "https" or "http" (empty: https, http for a loopback host),
        password the token, extra {"ca_file": "..."} for a private CA.
        When it is given (rendered not empty) journal_path is not used
        (templated)
    :param newer_than: count only versions detected at or after this time
        (Unix seconds, ISO 8601 or datetime; templated)
    :param deferrable: wait in the triggerer instead of a worker slot; the
        sensor's timeout holds there too, counted from the start of the try
    """

    template_fields: Sequence[str] = (
        "path", "path_bytes", "pattern", "journal_path", "sftprelay_conn_id",
        "newer_than")

    def __init__(
        self,
        *,
        path: Optional[Name] = None,
        path_bytes: Optional[str] = None,
        pattern: Optional[Name] = None,
        journal_path: Optional[str] = None,
        sftprelay_conn_id: Optional[str] = None,
        newer_than: Any = None,
        deferrable: bool = False,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if [path, path_bytes, pattern].count(None) != 2:
            raise ValueError(
                "SftpRelayDeliveredSensor: give exactly one of path, path_bytes and pattern")
        self.path = path
        self.path_bytes = path_bytes
        self.pattern = pattern
        self.journal_path = journal_path
        self.sftprelay_conn_id = sftprelay_conn_id
        self.newer_than = newer_than
        self.deferrable = deferrable

    def _decide(self):
        return delivered_decision(
            row_source(self.journal_path, self.sftprelay_conn_id),
            path=name_arg(self.path, self.path_bytes),
            pattern=name_arg(self.pattern),
            newer_than=_epoch(self.newer_than),
        )

    def poke(self, context: Any) -> PokeReturnValue:
        d = self._decide()
        if d.failed:
            raise AirflowFailException(d.reason)
        if not d.done:
            self.log.info("waiting: %s", d.reason)
            return PokeReturnValue(is_done=False)
        return PokeReturnValue(is_done=True, xcom_value=[f.as_xcom() for f in d.files])

    def execute(self, context: Any) -> Any:
        if not self.deferrable:
            return super().execute(context)
        started = time.monotonic()
        try:
            r = self.poke(context)
            if r.is_done:
                return r.xcom_value
            left = self._time_left(context, started)
            if left <= 0:
                raise AirflowSensorTimeout(
                    f"Sensor has timed out: {self.timeout} s have passed "
                    "since the task started")
        except (AirflowFailException, AirflowSensorTimeout) as e:
            # as BaseSensorOperator.execute() treats them
            if self.soft_fail or getattr(self, "never_fail", False):
                raise AirflowSkipException(f"skipped (soft_fail): {e}") from e
            raise
        self.defer(
            trigger=SftpRelayDeliveredTrigger(
                journal_path=self.journal_path,
                sftprelay_conn_id=self.sftprelay_conn_id,
                path=name_arg(self.path, self.path_bytes),
                pattern=name_arg(self.pattern),
                newer_than=_epoch(self.newer_than),
                poll_interval=float(self.poke_interval),
            ),
            method_name="execute_complete",
            timeout=dt.timedelta(seconds=left),
        )

    def _time_left(self, context: Any, started: float) -> float:
        """Seconds left of timeout, counted as Airflow's sensors count it:
        from the start of this try (the task instance's start_date), or
        failing that from when execute() began."""
        ti = context.get("ti") if hasattr(context, "get") else None
        start = getattr(ti, "start_date", None)
        if isinstance(start, dt.datetime):
            if start.tzinfo is None:
                start = start.replace(tzinfo=dt.timezone.utc)
            elapsed = (dt.datetime.now(dt.timezone.utc) - start).total_seconds()
        else:
            elapsed = time.monotonic() - started
        return float(self.timeout) - max(0.0, elapsed)

    def execute_complete(self, context: Any, event: dict) -> Any:
        if event.get("status") == "error":  # the endpoint refused: not soft
            raise AirflowException(event.get("reason", "sftprelay: error"))
        if event.get("status") != "success":
            raise AirflowFailException(event.get("reason", "sftprelay: failed"))
        return event["files"]


class SftpRelayBacklogSensor(BaseSensorOperator):
    """Succeeds when no file has waited longer than max_age (seconds or a
    timedelta) to be delivered.  journal_path or sftprelay_conn_id as for
    SftpRelayDeliveredSensor."""

    template_fields: Sequence[str] = ("journal_path", "sftprelay_conn_id")

    def __init__(
        self,
        *,
        max_age: Any,
        journal_path: Optional[str] = None,
        sftprelay_conn_id: Optional[str] = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.max_age = max_age.total_seconds() if isinstance(max_age, dt.timedelta) else float(max_age)
        self.journal_path = journal_path
        self.sftprelay_conn_id = sftprelay_conn_id

    def poke(self, context: Any) -> bool:
        d = backlog_decision(row_source(self.journal_path, self.sftprelay_conn_id),
                             self.max_age)
        if not d.done:
            self.log.info("waiting: %s", d.reason)
        return d.done
