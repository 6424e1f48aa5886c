r"""Read sftprelay's journal (see sftprelay-journal(5)) with sqlite3 only.

Each check opens one short read-only connection ("file:...?mode=ro" and
PRAGMA query_only), so a reader never holds the agent up.  A journal that
does not exist yet, or that is busy past the timeout, is "not yet"
(JournalUnavailable), never a crash.

Paths are relative to the agent's source.path ("a/b/c/file_1.txt").  A
name is bytes and need not be UTF-8.  Here a name is a str with surrogate
escapes for the bytes that are not UTF-8 (what os.fsdecode() gives), or
the bytes themselves.  What leaves for JSON (an XCom, a trigger's payload,
a message) is JSON-safe, as "sftprelay --json" writes it: the display form
("path": each byte that is not part of valid UTF-8 as U+FFFD) and, only
when the name is not valid UTF-8, the exact bytes as escaped text
("path_bytes": valid UTF-8 as itself, a backslash as \\, every other byte
as \xHH); name_fields() writes the two, name_from_fields() reads the bytes
back.  Times are Unix seconds.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import sqlite3
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Union

STATES = ("queued", "sending", "delivered", "failed")

# The columns of a FileState; _columns() writes them for a journal's
# schema, where older agents' journals lack the later ones.
_COLUMNS = "@COLUMNS@"
_BASE = ("path, state, size, sha256, attempts, last_error, detected_at, "
         "delivered_at, version")
_SINCE = (
    (6, ", coalesce(target_path, path), delivered_sha256"),  # transforms
    (5, ", coalesce(target_path, path), sha256"),
    (0, ", path, sha256"),
)


def _columns(con: sqlite3.Connection, sql: str) -> str:
    """sql with the columns of a FileState for this journal's schema."""
    (version,) = con.execute("PRAGMA user_version").fetchone()
    later = next(cols for since, cols in _SINCE if version >= since)
    return sql.replace(_COLUMNS, _BASE + later)


Name = Union[str, bytes]


def name_bytes(name: Name) -> bytes:
    """A name's bytes: bytes as they are, a str as UTF-8 with its surrogate
    escapes back as the bytes they stand for (os.fsencode's way)."""
    if isinstance(name, bytes):
        return name
    return name.encode("utf-8", "surrogateescape")


def name_str(name: Name) -> str:
    """A name as a str with surrogate escapes (os.fsdecode's way)."""
    if isinstance(name, str):
        return name
    return name.decode("utf-8", "surrogateescape")


def _is_escape(c: str) -> bool:
    return "\udc80" <= c <= "\udcff"


def display_name(name: Name) -> str:
    """The display form: each byte that is not part of valid UTF-8 as
    U+FFFD, one per byte (as text_print_json in the agent's text.c)."""
    return "".join("\ufffd" if _is_escape(c) else c
                   for c in name_str(name_bytes(name)))


def _escaped(s: str) -> str:
    """s with each surrogate escape as \\xHH and a backslash as \\\\; any
    other surrogate (no name has one) as \\uXXXX."""
    return "".join(
        "\\x%02x" % (ord(c) - 0xDC00) if _is_escape(c)
        else "\\u%04x" % ord(c) if "\ud800" <= c <= "\udfff"
        else "\\\\" if c == "\\" else c
        for c in s)


def escape_name(name: Name) -> str:
    """The exact bytes as escaped text (path_bytes): valid UTF-8 as itself,
    a backslash as \\\\, every other byte as \\xHH (lowercase)."""
    return _escaped(name_str(name_bytes(name)))


def _is_hex2(s: str) -> bool:
    return len(s) == 2 and all(c in "0123456789abcdefABCDEF" for c in s)


def unescape_name(text: str) -> bytes:
    """The bytes escape_name() wrote text for (ValueError if it did not)."""
    out = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        if c != "\\":
            out += c.encode("utf-8")
            i += 1
        elif text[i + 1 : i + 2] == "\\":
            out += b"\\"
            i += 2
        elif text[i + 1 : i + 2] == "x" and _is_hex2(text[i + 2 : i + 4]):
            out.append(int(text[i + 2 : i + 4], 16))
            i += 4
        else:
            raise ValueError(f"bad escape at {i} in {text!r}")
    return bytes(out)


def is_utf8(name: Name) -> bool:
    return not any(_is_escape(c) for c in name_str(name_bytes(name)))


def name_fields(name: Optional[Name], key: str = "path") -> Dict[str, Optional[str]]:
    """{key: display form}, and key + "_bytes" (escaped bytes) when the
    name is not valid UTF-8: the members "sftprelay --json" writes.  No
    name: {key: None}."""
    if name is None:
        return {key: None}
    fields: Dict[str, Optional[str]] = {key: display_name(name)}
    if not is_utf8(name):
        fields[key + "_bytes"] = escape_name(name)
    return fields


def name_from_fields(fields: dict, key: str = "path") -> bytes:
    """The exact bytes of the name name_fields() (or "sftprelay --json")
    wrote under key."""
    if fields.get(key + "_bytes") is not None:
        return unescape_name(fields[key + "_bytes"])
    return fields[key].encode("utf-8")


def name_arg(name: Optional[Name], escaped: Optional[str] = None) -> Optional[str]:
    """A name given as a str or bytes, or as escaped text (a path_bytes),
    as a str with surrogate escapes; None when neither is given."""
    if escaped is not None:
        return name_str(unescape_name(escaped))
    return None if name is None else name_str(name)


def name_text(name: Name) -> str:
    """A name (or a pattern) for a message: itself when valid UTF-8, else
    as escape_name() writes it; always JSON-safe."""
    s = name_str(name)
    return _escaped(s) if any("\ud800" <= c <= "\udfff" for c in s) else s


# fnmatch's metacharacters; a pattern's literal prefix ends at the first.
_META = "*?["
# Names made of these code points only (every byte 0x01-0x7f) are matched
# in SQL with GLOB; GLOB then agrees with fnmatch.fnmatchcase exactly.
_ASCII = [chr(c) for c in range(1, 128)]
# True for a name with a byte outside 0x01-0x7f.  SQLite decodes a name's
# bytes as UTF-8 for GLOB, and every such byte, valid UTF-8 or not, gives a
# character at or above 0x80.
_NOT_ASCII = "path GLOB '*[^\x01-\x7f]*'"


def _upper_bound(prefix: bytes) -> Optional[bytes]:
    """The least byte string above every string that starts with prefix,
    or None when there is none (prefix empty or all 0xff)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])


def _glob_class(members: List[str]) -> str:
    """A GLOB [...] that matches exactly these characters (1-127), written
    so that none of GLOB's own rules applies by accident: "]" only first,
    "-" only last, "^" never first, no range ending on one of the three."""
    special = [c for c in "]^-" if c in members]
    codes = sorted(ord(c) for c in members if c not in "]^-")
    runs: List[List[int]] = []
    for c in codes:
        if runs and runs[-1][1] == c - 1:
            runs[-1][1] = c
        else:
            runs.append([c, c])
    body = "".join(
        chr(a) if a == b else chr(a) + chr(b) if b == a + 1 else f"{chr(a)}-{chr(b)}"
        for a, b in runs
    )
    if "]" in special:
        body = "]" + body
    if "^" in special:
        body += "^"
    if "-" in special:
        body += "-"
    if body.startswith("^"):  # no "]" and nothing else but "-"
        return "^" if body == "^" else "[-^]"  # "^" outside brackets is "^"
    return f"[{body}]"


def _literal_glob(c: str) -> str:
    return f"[{c}]" if c in _META else c


def glob_for_ascii(pattern: str) -> Optional[str]:
    """A SQLite GLOB that matches a name made of characters 1-127 exactly
    when fnmatch.fnmatchcase(name, pattern) does, or None when no such name
    can match.  How the two differ, and how this bridges them:

    - fnmatch's "[!...]" is GLOB's "[^...]", and fnmatch's "[^...]" is a
      class that holds "^"; ranges, "]" first, "-" first or last and empty
      ranges have rules of their own in each.  So each class is parsed as
      fnmatch parses it, asked of fnmatch itself for each of the 127
      characters, and written back as a GLOB class of its members.
    - An unclosed "[" is a literal in fnmatch but makes GLOB match nothing:
      it is written "[[]".  "*", "?" as literals likewise.
    - Neither has escapes: a backslash is a literal in both.
    - "*" crosses "/" in both, and "?" matches "/" in both.
    - GLOB reads a NUL as the end of the pattern: a name holds no NUL, so a
      literal NUL (or any character above 127) makes the pattern match no
      name made of characters 1-127.
    Names with other bytes are not GLOB's: SQLite decodes them as UTF-8,
    one character for a truncated sequence, U+FFFD for several different
    invalid bytes, and for U+FFFE and U+FFFF, where surrogateescape gives
    one character per byte.  Those names go through fnmatch itself."""
    out = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        i += 1
        if c == "*":
            if not out or out[-1] != "*":
                out.append("*")
        elif c == "?":
            out.append("?")
        elif c == "[":
            # where fnmatch.translate() ends the class
            j = i
            if j < n and pattern[j] == "!":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:
                out.append("[[]")
                continue
            cls = pattern[i - 1 : j + 1]
            i = j + 1
            members = [a for a in _ASCII if fnmatch.fnmatchcase(a, cls)]
            if not members:
                return None
            out.append(_literal_glob(members[0]) if len(members) == 1 else _glob_class(members))
        elif "\x01" <= c <= "\x7f":
            out.append(_literal_glob(c))
        else:
            return None
    return "".join(out)


def literal_prefix(pattern: str) -> bytes:
    """The bytes every name that pattern (fnmatch) matches starts with: its
    characters up to the first metacharacter.  A name that starts with
    them as text starts with their bytes."""
    prefix = b""
    for c in pattern:
        if c in _META:
            break
        try:
            prefix += name_bytes(c)
        except UnicodeEncodeError:  # a lone surrogate no name holds
            break
    return prefix


class _Match:
    """A WHERE clause for the rows a path (exact) or a pattern (fnmatch)
    names, and the function it needs on the connection."""

    def __init__(self, path: Optional[str] = None, pattern: Optional[str] = None):
        self.pattern = pattern
        if pattern is None:
            self.sql = "path = CAST(? AS TEXT)"
            self.args: tuple = (name_bytes(path),)
            self.range: Optional[tuple] = None
            return
        # The literal prefix as an index range on path (BINARY: memcmp
        # order).
        prefix = literal_prefix(pattern)
        conds, args = [], []
        if prefix:
            conds.append("path >= CAST(? AS TEXT)")
            args.append(prefix)
            upper = _upper_bound(prefix)
            if upper is not None:
                conds.append("path < CAST(? AS TEXT)")
                args.append(upper)
        glob = glob_for_ascii(pattern)
        conds.append(
            f"CASE WHEN {_NOT_ASCII} THEN sftprelay_fnmatch(CAST(path AS BLOB))"
            + (" ELSE path GLOB CAST(? AS TEXT) END" if glob is not None else " ELSE 0 END")
        )
        if glob is not None:
            args.append(name_bytes(glob))
        self.range = (conds[:-1], tuple(args[: len(conds) - 1])) if prefix else None
        self.sql = " AND ".join(conds)
        self.args = tuple(args)

    def selective(self, con: sqlite3.Connection) -> bool:
        """Whether reading the rows through the index on path beats a scan
        of the table: each row found that way costs a look-up in the table
        in path order, several times what a row of a scan costs.  With no
        statistics (a reader cannot ANALYZE) the planner takes the index
        for any range, and a range over most of the table took 0.4-0.7 s
        for 100,000 rows where a scan took 0.1 s; so count the range's
        entries in the index (cheap, it holds path) against the table's."""
        if self.pattern is None:
            return True
        if self.range is None:
            return False
        conds, args = self.range
        (k,) = con.execute(
            "SELECT count(*) FROM files WHERE " + " AND ".join(conds), args
        ).fetchone()
        (n,) = con.execute("SELECT count(*) FROM files").fetchone()
        return 4 * k < n

    def install(self, con: sqlite3.Connection) -> None:
        if self.pattern is None:
            return
        pattern = self.pattern

        def match(name: bytes) -> bool:
            return fnmatch.fnmatchcase(name.decode("utf-8", "surrogateescape"), pattern)

        con.create_function("sftprelay_fnmatch", 1, match, deterministic=True)


def _message(text: Optional[str]) -> Optional[str]:
    """An error message from the journal (it may quote a name's bytes) in
    display form, JSON-safe."""
    return None if text is None else display_name(text)


class JournalUnavailable(Exception):
    """The journal (or the status endpoint) cannot be read now: missing,
    busy, not a journal, unreachable.  The decisions wait on it."""


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
    # Where it is on the target (the transforms' suffixes, a free name
    # beside the target's), and the sha256 of the bytes there: the same as
    # path and sha256 when nothing changed them.
    target_path: str = ""
    delivered_sha256: Optional[str] = None

    def as_xcom(self) -> dict:
        """What a sensor pushes for a delivered file: JSON-safe, the names
        as name_fields() writes them (path_bytes, target_path_bytes when
        not UTF-8)."""
        return {
            **name_fields(self.path, "path"),
            "size": self.size,
            "sha256": self.sha256,
            "delivered_at": self.delivered_at,
            **name_fields(self.target_path or self.path, "target_path"),
            "delivered_sha256": self.delivered_sha256,
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
            return [FileState(*row) for row in con.execute(_columns(con, sql), args)]

    @contextlib.contextmanager
    def selection(
        self,
        path: Optional[str] = None,
        pattern: Optional[str] = None,
        newer_than: Optional[float] = None,
    ) -> Iterator["Selection"]:
        """The rows named by path (exact) or pattern (as files() reads it),
        detected at or after newer_than if given, read in one snapshot."""
        m = _Match(path, pattern)
        with self._connect() as con:
            m.install(con)
            con.execute("BEGIN")  # one read transaction: one snapshot
            where, args = m.sql, m.args
            if newer_than is not None:
                where += " AND detected_at >= ?"
                args += (newer_than,)
            yield Selection(con, where, args, m.selective(con))

    def state(self, path: str) -> Optional[FileState]:
        """The row for path, or None if the agent has not seen it."""
        rows = self._rows(
            f"SELECT {_COLUMNS} FROM files WHERE path = CAST(? AS TEXT)",
            (name_bytes(path),),
        )
        return rows[0] if rows else None

    def files(
        self, prefix: Optional[str] = None, pattern: Optional[str] = None
    ) -> List[FileState]:
        """Rows under a folder prefix ("a/b/") and/or matching a glob
        (fnmatch: "*" also crosses "/"), ordered by path."""
        conds, args = [], ()
        if prefix:
            # GLOB with the prefix's own metacharacters escaped as classes
            escaped = "".join(f"[{c}]" if c in "*?[" else c for c in prefix)
            conds.append("path GLOB CAST(? AS TEXT)")
            args = (name_bytes(escaped + "*"),)
        m = _Match(pattern=pattern) if pattern is not None else None
        if m is not None:
            conds.append(m.sql)
            args += m.args
        sql = f"SELECT {_COLUMNS} FROM files"
        if conds:
            sql += " WHERE " + " AND ".join(conds)
        with self._connect() as con:
            if m is not None:
                m.install(con)
            return [
                FileState(*r)
                for r in con.execute(_columns(con, sql) + " ORDER BY path", args)
            ]

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


class Selection:
    """Queries over the rows a Journal.selection() names.  When they are
    many, counts() scans the table and waiting() goes through the pending
    rows (files_pending or files_due) rather than the index on path."""

    def __init__(self, con: sqlite3.Connection, where: str, args: tuple, selective: bool):
        self._con, self._where, self._args = con, where, args
        self._selective = selective

    def _rows(self, sql: str, args: tuple) -> List[FileState]:
        return [FileState(*r) for r in self._con.execute(_columns(self._con, sql), args)]

    def counts(self) -> Dict[str, int]:
        """How many rows are in each state (states with none left out)."""
        table = "files" if self._selective else "files NOT INDEXED"
        return dict(
            self._con.execute(
                f"SELECT state, count(*) FROM {table} WHERE {self._where}"
                " GROUP BY state",
                self._args,
            )
        )

    def failed(self) -> List[FileState]:
        """The failed rows, ordered by path."""
        return self._rows(
            f"SELECT {_COLUMNS} FROM files WHERE {self._where}"
            " AND state = 'failed' ORDER BY path",
            self._args,
        )

    def waiting(self, limit: int) -> List[FileState]:
        """The first limit queued or sending rows, ordered by path."""
        order = "path" if self._selective else "+path"  # +: not by its index
        return self._rows(
            f"SELECT {_COLUMNS} FROM files WHERE {self._where}"
            f" AND state IN ('queued', 'sending') ORDER BY {order} LIMIT ?",
            self._args + (limit,),
        )

    def all(self) -> List[FileState]:
        """Every row, ordered by path (when they are many, a scan and a
        sort beat reading them in the index's order: 0.9 s, not 1.35 s, for
        100,000 rows)."""
        table = "files" if self._selective else "files NOT INDEXED"
        return self._rows(
            f"SELECT {_COLUMNS} FROM {table} WHERE {self._where} ORDER BY path",
            self._args,
        )


@dataclass
class Decision:
    """What a sensor should do now.  files holds every file named when
    done; while not done it is empty (the failed files are in failed)."""

    done: bool
    files: List[FileState] = field(default_factory=list)
    failed: List[FileState] = field(default_factory=list)
    reason: str = ""


# A source of rows, what the decisions read: Journal (the SQLite file) or
# endpoint.StatusEndpoint (the agent's status endpoint over HTTP).  It has
#   selection(path, pattern, newer_than): a context manager giving the rows
#     path (exact) or pattern (fnmatch) names, detected at or after
#     newer_than, in one snapshot, as an object with counts(), failed(),
#     waiting(limit) and all() (see Selection);
#   oldest_pending_age(now): seconds the oldest queued or sending file has
#     waited, or None;
# and raises JournalUnavailable for "not now" (keep waiting).


def delivered_decision(
    source: "Journal",
    path: Optional[Name] = None,
    pattern: Optional[Name] = None,
    newer_than: Optional[float] = None,
) -> Decision:
    """Whether every file named by path (exact) or pattern (glob) is
    delivered.  With newer_than (Unix seconds), a file counts only in a
    version detected at or after that time: an older delivery of the same
    name is still waiting for its new version.  A failed file makes the
    decision fail at once (it stays failed until "sftprelay retry").

    It counts the rows by state first, and reads rows only for what it
    says: the failed ones, the first 5 waiting ones, or all when done."""
    if (path is None) == (pattern is None):
        raise ValueError("give exactly one of path and pattern")
    path, pattern = name_arg(path), name_arg(pattern)
    try:
        with source.selection(path, pattern, newer_than) as sel:
            counts = sel.counts()
            if counts.get("failed"):
                failed = sel.failed()
                return Decision(
                    False,
                    failed=failed,
                    reason="; ".join(
                        f"{name_text(r.path)}: failed: {_message(r.last_error)}"
                        for r in failed
                    ),
                )
            if not counts:
                return Decision(
                    False, reason=f"no file matching {name_text(path or pattern)} yet"
                )
            if sum(counts.values()) > counts.get("delivered", 0):
                # no failed row: the others are queued or sending
                waiting = sel.waiting(5)
                return Decision(
                    False,
                    reason=", ".join(f"{name_text(r.path)} is {r.state}" for r in waiting),
                )
            rows = sel.all()
    except JournalUnavailable as e:
        return Decision(False, reason=str(e))
    return Decision(True, rows, reason=f"{len(rows)} delivered")


def backlog_decision(
    source: "Journal", max_age: float, now: Optional[float] = None
) -> Decision:
    """Whether no file has waited longer than max_age seconds."""
    try:
        age = source.oldest_pending_age(now)
    except JournalUnavailable as e:
        return Decision(False, reason=str(e))
    if age is None or age <= max_age:
        return Decision(True, reason="no backlog" if age is None else f"oldest waits {age:.0f} s")
    return Decision(False, reason=f"oldest pending file has waited {age:.0f} s")
