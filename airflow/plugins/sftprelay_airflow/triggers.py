"""The async trigger behind SftpRelayDeliveredSensor(deferrable=True).
It runs in the triggerer; each check runs in a thread (asyncio.to_thread)
so SQLite never blocks the triggerer's event loop."""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Dict, Optional, Tuple

from airflow.triggers.base import BaseTrigger, TriggerEvent

from sftprelay_airflow.journal import (
    Journal, Name, delivered_decision, name_arg, name_fields)


class SftpRelayDeliveredTrigger(BaseTrigger):
    """Fires once every matching file is delivered, or one has failed.
    path and pattern may be str with surrogate escapes or bytes; they
    travel in serialize() as name_fields() writes them (path_bytes,
    pattern_bytes for names that are not UTF-8), so the payload is
    JSON-safe."""

    def __init__(
        self,
        journal_path: str,
        path: Optional[Name] = None,
        pattern: Optional[Name] = None,
        newer_than: Optional[float] = None,
        poll_interval: float = 10.0,
        path_bytes: Optional[str] = None,
        pattern_bytes: Optional[str] = None,
    ):
        super().__init__()
        self.journal_path = journal_path
        self.path = name_arg(path, path_bytes)
        self.pattern = name_arg(pattern, pattern_bytes)
        self.newer_than = newer_than
        self.poll_interval = poll_interval

    def serialize(self) -> Tuple[str, Dict[str, Any]]:
        return (
            "sftprelay_airflow.triggers.SftpRelayDeliveredTrigger",
            {
                "journal_path": self.journal_path,
                **name_fields(self.path, "path"),
                **name_fields(self.pattern, "pattern"),
                "newer_than": self.newer_than,
                "poll_interval": self.poll_interval,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        journal = Journal(self.journal_path)
        while True:
            d = await asyncio.to_thread(
                delivered_decision, journal, self.path, self.pattern,
                self.newer_than,
            )
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
