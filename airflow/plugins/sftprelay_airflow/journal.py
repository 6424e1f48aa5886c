"""Read sftprelay's journal (see sftprelay-journal(5)) with sqlite3 only.

Each check opens one short read-only connection ("file:...?mode=ro" and
PRAGMA query_only), so a reader never holds the agent up.  A journal that
does not exist yet, or that is busy past the timeout, is "not yet"
(JournalUnavailable), never a crash.

Paths are relative to the agent's source.path ("a/b/c/file_1.txt").  Bytes
that are not UTF-8 come back as surrogate escapes, as os.fsdecode() and
"sftprelay --json" give them.  Times are Unix seconds.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import sqlite3
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Iterator, List, Optional

STATES = ("queued", "sending", "delivered", "failed")

_COLUMNS = (
    "path, state, size, sha256, attempts, last_error, detected_at, "
    "delivered_at, version"
)


def _text(s: str) -> bytes:
    """A path as the bytes the journal holds; bound as CAST(? AS TEXT) so
    names that are not UTF-8 match byte for byte."""
    return s.encode("utf-8", "surrogateescape")


class JournalUnavailable(Exception):
    """The journal cannot be read now (missing, busy, not a journal)."""


@dataclass(frozen=True)
class FileState:
    """One row of the journal's files table."""

    path: str
    state: str
    size: int
    sha256: Optional[str]
    attempts: int
    last_error: Optional[str]
    detected_at: int
    delivered_at: Optional[int]
    version: int

    def as_xcom(self) -> dict:
        """What a sensor pushes for a delivered file."""
        return {
            "path": self.path,
            "size": self.size,
            "sha256": self.sha256,
            "delivered_at": self.delivered_at,
        }


class Journal:
    """Read-only access to one journal file."""

    def __init__(self, path: str, timeout: float = 2.0):
        self.path = path
        self.timeout = timeout

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        if not os.path.exists(self.path):
            raise JournalUnavailable(f"journal {self.path} does not exist yet")
        uri = "file:" + urllib.parse.quote(os.path.abspath(self.path)) + "?mode=ro"
        try:
            con = sqlite3.connect(uri, uri=True, timeout=self.timeout)
        except sqlite3.Error as e:
            raise JournalUnavailable(f"journal {self.path}: {e}") from e
        try:
            con.text_factory = lambda b: b.decode("utf-8", "surrogateescape")
            con.execute("PRAGMA query_only = ON")
            yield con
        except sqlite3.Error as e:
            # locked or busy past the timeout, no table yet, not a database
            raise JournalUnavailable(f"journal {self.path}: {e}") from e
        finally:
            con.close()

    def _rows(self, sql: str, args: tuple = ()) -> List[FileState]:
        with self._connect() as con:
            return [FileState(*row) for row in con.execute(sql, args)]

    def state(self, path: str) -> Optional[FileState]:
        """The row for path, or None if the agent has not seen it."""
        rows = self._rows(
            f"SELECT {_COLUMNS} FROM files WHERE path = CAST(? AS TEXT)",
            (_text(path),),
        )
        return rows[0] if rows else None

    def files(
        self, prefix: Optional[str] = None, pattern: Optional[str] = None
    ) -> List[FileState]:
        """Rows under a folder prefix ("a/b/") and/or matching a glob
        (fnmatch: "*" also crosses "/"), ordered by path."""
        sql = f"SELECT {_COLUMNS} FROM files"
        args: tuple = ()
        if prefix:
            # GLOB with the prefix's own metacharacters escaped as classes
            escaped = "".join(f"[{c}]" if c in "*?[" else c for c in prefix)
            sql += " WHERE path GLOB CAST(? AS TEXT)"
            args = (_text(escaped + "*"),)
        rows = self._rows(sql + " ORDER BY path", args)
        if pattern is not None:
            rows = [r for r in rows if fnmatch.fnmatchcase(r.path, pattern)]
        return rows

    def delivered_since(self, since: float) -> List[FileState]:
        """Files delivered at or after since, oldest first."""
        return self._rows(
            f"SELECT {_COLUMNS} FROM files WHERE state = 'delivered'"
            " AND delivered_at >= ? ORDER BY delivered_at, path",
            (int(since),),
        )

    def oldest_pending_age(self, now: Optional[float] = None) -> Optional[float]:
        """Seconds the oldest queued or sending file has waited, or None."""
        with self._connect() as con:
            (oldest,) = con.execute(
                "SELECT min(detected_at) FROM files"
                " WHERE likely(state IN ('queued', 'sending'))"
            ).fetchone()
        if oldest is None:
            return None
        return max(0.0, (time.time() if now is None else now) - oldest)


@dataclass
class Decision:
    """What a sensor should do now."""

    done: bool
    files: List[FileState] = field(default_factory=list)
    failed: List[FileState] = field(default_factory=list)
    reason: str = ""


def delivered_decision(
    journal: Journal,
    path: Optional[str] = None,
    pattern: Optional[str] = None,
    newer_than: Optional[float] = None,
) -> Decision:
    """Whether every file named by path (exact) or pattern (glob) is
    delivered.  With newer_than (Unix seconds), a file counts only in a
    version detected at or after that time: an older delivery of the same
    name is still waiting for its new version.  A failed file makes the
    decision fail at once (it stays failed until "sftprelay retry")."""
    if (path is None) == (pattern is None):
        raise ValueError("give exactly one of path and pattern")
    try:
        if path is not None:
            row = journal.state(path)
            rows = [row] if row else []
        else:
            rows = journal.files(pattern=pattern)
    except JournalUnavailable as e:
        return Decision(False, reason=str(e))
    if newer_than is not None:
        rows = [r for r in rows if r.detected_at >= newer_than]
    failed = [r for r in rows if r.state == "failed"]
    if failed:
        return Decision(
            False,
            rows,
            failed,
            "; ".join(f"{r.path}: failed: {r.last_error}" for r in failed),
        )
    if not rows:
        return Decision(False, reason=f"no file matching {path or pattern} yet")
    waiting = [r for r in rows if r.state != "delivered"]
    if waiting:
        return Decision(
            False,
            rows,
            reason=", ".join(f"{r.path} is {r.state}" for r in waiting[:5]),
        )
    return Decision(True, rows, reason=f"{len(rows)} delivered")


def backlog_decision(
    journal: Journal, max_age: float, now: Optional[float] = None
) -> Decision:
    """Whether no file has waited longer than max_age seconds."""
    try:
        age = journal.oldest_pending_age(now)
    except JournalUnavailable as e:
        return Decision(False, reason=str(e))
    if age is None or age <= max_age:
        return Decision(True, reason="no backlog" if age is None else f"oldest waits {age:.0f} s")
    return Decision(False, reason=f"oldest pending file has waited {age:.0f} s")
