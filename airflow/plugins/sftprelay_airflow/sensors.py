"""Airflow sensors on sftprelay's journal.  Thin wrappers: the decisions
are journal.py's, and they never talk to the SFTP servers."""

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
        AirflowFailException, AirflowSensorTimeout, AirflowSkipException)
except ImportError:  # Airflow 2 and the first Airflow 3 releases
    from airflow.exceptions import (
        AirflowFailException, AirflowSensorTimeout, AirflowSkipException)

from sftprelay_airflow.journal import (
    Journal,
    Name,
    backlog_decision,
    delivered_decision,
    name_arg,
)
from sftprelay_airflow.triggers import SftpRelayDeliveredTrigger

DEFAULT_JOURNAL = "/var/lib/sftprelay/journal.db"


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
    :param journal_path: the agent's journal.path (templated)
    :param newer_than: count only versions detected at or after this time
        (Unix seconds, ISO 8601 or datetime; templated)
    :param deferrable: wait in the triggerer instead of a worker slot; the
        sensor's timeout holds there too, counted from the start of the try
    """

    template_fields: Sequence[str] = (
        "path", "path_bytes", "pattern", "journal_path", "newer_than")

    def __init__(
        self,
        *,
        path: Optional[Name] = None,
        path_bytes: Optional[str] = None,
        pattern: Optional[Name] = None,
        journal_path: str = DEFAULT_JOURNAL,
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
        self.newer_than = newer_than
        self.deferrable = deferrable

    def _decide(self):
        return delivered_decision(
            Journal(self.journal_path),
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
        if event.get("status") != "success":
            raise AirflowFailException(event.get("reason", "sftprelay: failed"))
        return event["files"]


class SftpRelayBacklogSensor(BaseSensorOperator):
    """Succeeds when no file has waited longer than max_age (seconds or a
    timedelta) to be delivered."""

    template_fields: Sequence[str] = ("journal_path",)

    def __init__(self, *, max_age: Any, journal_path: str = DEFAULT_JOURNAL, **kwargs: Any):
        super().__init__(**kwargs)
        self.max_age = max_age.total_seconds() if isinstance(max_age, dt.timedelta) else float(max_age)
        self.journal_path = journal_path

    def poke(self, context: Any) -> bool:
        d = backlog_decision(Journal(self.journal_path), self.max_age)
        if not d.done:
            self.log.info("waiting: %s", d.reason)
        return d.done
