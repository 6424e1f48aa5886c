"""The async trigger behind SftpRelayDeliveredSensor(deferrable=True).
It runs in the triggerer; each check runs in a thread (asyncio.to_thread)
so neither SQLite nor HTTP (nor the look-up of the connection) blocks the
triggerer's event loop."""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Dict, Optional, Tuple

from airflow.triggers.base import BaseTrigger, TriggerEvent

from sftprelay_airflow.endpoint import StatusEndpointError
from sftprelay_airflow.journal import (
    Decision, Name, delivered_decision, name_arg, name_fields)
from sftprelay_airflow.sources import row_source


class SftpRelayDeliveredTrigger(BaseTrigger):
    """Fires once every matching file is delivered, or one has failed.
    path and pattern may be str with surrogate escapes or bytes; they
    travel in serialize() as name_fields() writes them (path_bytes,
    pattern_bytes for names that are not UTF-8), so the payload is
    JSON-safe."""

    def __init__(
        self,
        journal_path: Optional[str] = None,
        path: Optional[Name] = None,
        pattern: Optional[Name] = None,
        newer_than: Optional[float] = None,
        poll_interval: float = 10.0,
        path_bytes: Optional[str] = None,
        pattern_bytes: Optional[str] = None,
        sftprelay_conn_id: Optional[str] = None,
    ):
        super().__init__()
        self.journal_path = journal_path
        self.sftprelay_conn_id = sftprelay_conn_id
        self.path = name_arg(path, path_bytes)
        self.pattern = name_arg(pattern, pattern_bytes)
        self.newer_than = newer_than
        self.poll_interval = poll_interval

    def serialize(self) -> Tuple[str, Dict[str, Any]]:
        return (
            "sftprelay_airflow.triggers.SftpRelayDeliveredTrigger",
            {
                "journal_path": self.journal_path,
                "sftprelay_conn_id": self.sftprelay_conn_id,  # never the token
                **name_fields(self.path, "path"),
                **name_fields(self.pattern, "pattern"),
                "newer_than": self.newer_than,
                "poll_interval": self.poll_interval,
            },
        )

    def _check(self) -> Decision:
        source = row_source(self.journal_path, self.sftprelay_conn_id)
        return delivered_decision(source, self.path, self.pattern, self.newer_than)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        while True:
            try:
                d = await asyncio.to_thread(self._check)
            except (StatusEndpointError, ValueError) as e:
                yield TriggerEvent({"status": "error", "reason": str(e)})
                return
            if d.failed:
                yield TriggerEvent({"status": "failed", "reason": d.reason})
                return
            if d.done:
                yield TriggerEvent(
                    {"status": "success", "files": [f.as_xcom() for f in d.files]}
                )
                return
            self.log.info("waiting: %s", d.reason)
            await asyncio.sleep(self.poll_interval)
