"""The agent's status endpoint over HTTP as a source of rows for the
decisions in journal.py, with the standard library only (urllib, ssl).

An Airflow worker on another host than the agent cannot read the journal's
file; it asks the agent:
  GET /v1/files?path=P or ?prefix=P [&state=S] [&limit=N] [&after=A]
      the JSON of "sftprelay list --json" for the rows named; P is the
      name's raw bytes, percent-encoded; N at most 10000 (default 1000),
      and a list cut at N says so in the header "Sftprelay-Truncated: true";
      after=A (not with path) gives the rows whose path sorts above the
      bytes A, so the next page of a cut list is after=<its last path>
  GET /v1/summary   the JSON of "sftprelay status --json"
  GET /healthz      {"ok": true}, the only one asked without the token
every request but /healthz with "Authorization: Bearer <token>"; an error
is 4xx/5xx with {"error": "..."}.

A path is asked for by name; a pattern by its longest literal prefix, a
page of page_rows rows at a time until the endpoint gives the last one,
the rows then matched here with fnmatch, as the journal reader matches
them.  The pages are read one after another, not in one transaction as
the journal reader reads them: a file that changes state meanwhile is seen
once, in the state its page found.
A name comes back as "path" and, when it is not UTF-8, "path_bytes" (see
journal.py); a FileState holds it as the journal reader does, so the
decisions give the same results from either source.

Errors: an endpoint that cannot be reached, or answers 5xx, is "not now"
(JournalUnavailable: the sensor waits); a refused token (401, 403), a bad
request (other 4xx), a certificate that does not verify or an answer that
is not the JSON described are StatusEndpointError: the task fails (and is
retried if it has retries), since waiting would not mend them.  So is a
redirect: the endpoint never answers one, and the token is not sent on
to wherever it points.  A loopback endpoint is asked directly, whatever
HTTP_PROXY says (the token would reach the proxy in clear); an https one
elsewhere goes through the environment's proxy, if any, in a CONNECT
tunnel that the proxy cannot read.
"""

from __future__ import annotations

import contextlib
import fnmatch
import ipaddress
import json
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Dict, Iterator, List, Optional

from sftprelay_airflow.journal import (
    FileState,
    JournalUnavailable,
    literal_prefix,
    name_bytes,
    name_from_fields,
    name_str,
)


class StatusEndpointError(Exception):
    """The status endpoint refused the request, or its answer is not what
    it should be: something to fix, not to wait for."""


def is_loopback(host: str) -> bool:
    """Whether host names this machine's loopback interface."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Every redirect refused: an HTTPError with its 3xx code and Location,
    before any request is made to where it points."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        raise urllib.error.HTTPError(req.full_url, code, msg, headers, fp)


class StatusEndpoint:
    """The status endpoint at url ("https://host:port"), asked with token
    (None: none sent, as a loopback endpoint without a token file wants);
    ca_file: the CA that signed its certificate when not a public one.
    TLS certificates are always verified.  A pattern's rows are asked
    page_rows at a time (the class's, unless given), as many pages as it
    takes."""

    page_rows = 10000  # the most the endpoint gives at once

    def __init__(
        self,
        url: str,
        token: Optional[str] = None,
        ca_file: Optional[str] = None,
        timeout: float = 10.0,
        page_rows: Optional[int] = None,
    ):
        u = urllib.parse.urlsplit(url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"status endpoint {url!r}: not an http(s)://host URL")
        if u.scheme == "http" and token and not is_loopback(u.hostname):
            raise ValueError(
                f"status endpoint {url}: the token would cross the network in "
                "clear; use https (the agent's status.cert_file)")
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        if page_rows is not None:
            self.page_rows = page_rows
        handlers: List[urllib.request.BaseHandler] = [_NoRedirect()]
        if is_loopback(u.hostname):
            handlers.append(urllib.request.ProxyHandler({}))
        if u.scheme == "https":
            handlers.append(urllib.request.HTTPSHandler(
                context=ssl.create_default_context(cafile=ca_file)))
        self._opener = urllib.request.build_opener(*handlers)

    @classmethod
    def from_connection(cls, conn, **kwargs) -> "StatusEndpoint":
        """From an Airflow connection of type HTTP: host (or
        "https://host"), port, schema "https" or "http" (left empty:
        https, or http for a loopback host), password the token, extra
        {"ca_file": "/path/ca.pem"} for a private CA."""
        host = conn.host or ""
        scheme = (conn.schema or "").lower()
        if "://" in host:
            given, host = host.split("://", 1)
            scheme = scheme or given.lower()
        host = host.rstrip("/")
        if not host:
            raise ValueError(f"connection {conn.conn_id}: no host")
        if not scheme:
            scheme = "http" if is_loopback(host) else "https"
        if scheme not in ("http", "https"):
            raise ValueError(f"connection {conn.conn_id}: schema {scheme!r} is "
                             "not https or http")
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"  # IPv6
        netloc = f"{host}:{conn.port}" if conn.port else host
        extra = conn.extra_dejson or {}
        return cls(f"{scheme}://{netloc}", token=conn.password or None,
                   ca_file=extra.get("ca_file"), **kwargs)

    def _get(self, path: str, query: Optional[Dict[str, str]] = None,
             headers: Optional[Dict[str, str]] = None):
        """The JSON answer to GET path?query; headers, when given, gets
        the answer's headers (lower-case names)."""
        url = self.url + path
        if query:
            url += "?" + "&".join(f"{k}={v}" for k, v in query.items())
        req = urllib.request.Request(url, headers={"Accept": "application/json"})
        if self.token:  # never copied onto a redirect's request
            req.add_unredirected_header("Authorization", f"Bearer {self.token}")
        try:
            with self._opener.open(req, timeout=self.timeout) as r:
                body = r.read()
                if headers is not None:
                    headers.update((k.lower(), v) for k, v in r.headers.items())
        except urllib.error.HTTPError as e:
            if 300 <= e.code < 400:
                e.close()  # its body unread
                raise StatusEndpointError(
                    f"status endpoint {url}: {e.code} {e.reason}, a redirect to "
                    f"{e.headers.get('Location')}: not followed (the agent's "
                    "endpoint never redirects; give its own address)") from e
            said = _error_text(e)
            if e.code >= 500:
                raise JournalUnavailable(f"status endpoint {url}: {e.code} {said}") from e
            raise StatusEndpointError(f"status endpoint {url}: {e.code} {said}") from e
        except urllib.error.URLError as e:
            if isinstance(e.reason, ssl.SSLError):
                raise StatusEndpointError(f"status endpoint {url}: {e.reason}") from e
            raise JournalUnavailable(f"status endpoint {url}: {e.reason}") from e
        except OSError as e:  # a reset or a timeout while reading
            raise JournalUnavailable(f"status endpoint {url}: {e}") from e
        try:
            return json.loads(body.decode("utf-8"))
        except ValueError as e:
            raise StatusEndpointError(f"status endpoint {url}: not JSON: {e}") from e

    def files(self, path: Optional[bytes] = None, prefix: Optional[bytes] = None,
              limit: Optional[int] = None, after: Optional[bytes] = None,
              cut: Optional[List[bool]] = None) -> List[FileState]:
        """GET /v1/files for the name path, or the names under prefix
        (those above after only, when given); cut, when given, gets
        whether the endpoint cut the list at limit."""
        key, value = ("path", path) if path is not None else ("prefix", prefix or b"")
        query = {key: urllib.parse.quote(value, safe="")}
        if limit is not None:
            query["limit"] = str(limit)
        if after is not None:
            query["after"] = urllib.parse.quote(after, safe="")
        said: Dict[str, str] = {}
        rows = self._get("/v1/files", query, said)
        if cut is not None:
            cut.append(said.get("sftprelay-truncated") == "true")
        if not isinstance(rows, list):
            raise StatusEndpointError(f"status endpoint {self.url}/v1/files: "
                                      "not a JSON array")
        try:
            return [_file_state(r) for r in rows]
        except (KeyError, TypeError, ValueError) as e:
            raise StatusEndpointError(
                f"status endpoint {self.url}/v1/files: a row without {e}") from e

    @contextlib.contextmanager
    def selection(
        self,
        path: Optional[str] = None,
        pattern: Optional[str] = None,
        newer_than: Optional[float] = None,
    ) -> Iterator["RowSelection"]:
        """As Journal.selection(): the rows path or pattern names, from the
        endpoint: one answer for a path, every page under a pattern's
        literal prefix."""
        if pattern is None:
            rows = self.files(path=name_bytes(path))
        else:
            rows = [r for r in self._all_under(literal_prefix(pattern))
                    if fnmatch.fnmatchcase(r.path, pattern)]
        if newer_than is not None:
            rows = [r for r in rows if (r.detected_at or 0) >= newer_than]
        yield RowSelection(rows)

    def _all_under(self, prefix: bytes) -> Iterator[FileState]:
        """Every row whose name starts with prefix, page after page."""
        after: Optional[bytes] = None
        while True:
            cut: List[bool] = []
            page = self.files(prefix=prefix, limit=self.page_rows, after=after, cut=cut)
            yield from page
            if not cut[0]:
                return
            last = name_bytes(page[-1].path) if page else None
            if last is None or (after is not None and last <= after):
                raise StatusEndpointError(
                    f"status endpoint {self.url}/v1/files: a page cut at "
                    f"{self.page_rows} rows that does not go past {after!r}")
            after = last

    def oldest_pending_age(self, now: Optional[float] = None) -> Optional[float]:
        """From /v1/summary's oldest_pending_age (the agent's clock), moved
        to now when now is given."""
        summary = self._get("/v1/summary")
        try:
            age = summary["oldest_pending_age"]
        except (KeyError, TypeError) as e:
            raise StatusEndpointError(f"status endpoint {self.url}/v1/summary: "
                                      f"no {e}") from e
        if age is None:
            return None
        return max(0.0, float(age) + ((now - time.time()) if now is not None else 0.0))


def _error_text(e: urllib.error.HTTPError) -> str:
    """The endpoint's {"error": ...}, or the HTTP reason."""
    try:
        return str(json.loads(e.read().decode("utf-8"))["error"])
    except Exception:
        return str(e.reason)


def _file_state(row: dict) -> FileState:
    """A row of "sftprelay list --json" as the journal reader gives it."""
    path = name_str(name_from_fields(row, "path"))
    target = name_str(name_from_fields(row, "target_path")) if row.get("target_path") else path
    return FileState(
        path=path,
        state=row["state"],
        size=row["size"],
        sha256=row["sha256"],
        attempts=row["attempts"],
        last_error=row["last_error"],
        detected_at=row["detected_at"],
        delivered_at=row["delivered_at"],
        version=row["version"],
        target_path=target,
        delivered_sha256=row.get("delivered_sha256"),
    )


class RowSelection:
    """Selection's queries over rows held in memory."""

    def __init__(self, rows: List[FileState]):
        self._rows = sorted(rows, key=lambda r: name_bytes(r.path))  # the journal's order

    def counts(self) -> Dict[str, int]:
        out: Dict[str, int] = {}
        for r in self._rows:
            out[r.state] = out.get(r.state, 0) + 1
        return out

    def failed(self) -> List[FileState]:
        return [r for r in self._rows if r.state == "failed"]

    def waiting(self, limit: int) -> List[FileState]:
        return [r for r in self._rows if r.state in ("queued", "sending")][:limit]

    def all(self) -> List[FileState]:
        return list(self._rows)
