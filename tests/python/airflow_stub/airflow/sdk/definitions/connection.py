"""Stand-in for airflow.sdk.definitions.connection (task-sdk/src/airflow/
sdk/definitions/connection.py, main at 00bce355): a Connection's fields,
extra_dejson, and Connection.get() from an environment variable
AIRFLOW_CONN_<CONN_ID> in URI or JSON form, as Airflow's environment
variables secrets backend reads it (JSON when the value starts with "{").
Only that one backend: no metadata database, no secrets manager."""
import json
import os
import urllib.parse

from airflow.sdk.exceptions import AirflowNotFoundException


class Connection:
    def __init__(self, *, conn_id, conn_type=None, description=None, host=None,
                 schema=None, login=None, password=None, port=None, extra=None):
        self.conn_id = conn_id
        self.conn_type = conn_type
        self.description = description
        self.host = host
        self.schema = schema
        self.login = login
        self.password = password
        if port is not None and (type(port) is not int or not 0 <= port <= 65535):
            raise ValueError(f"Expected value for `port` in the range 0-65535, "
                             f"but got {port!r} instead.")
        self.port = port
        self.extra = extra

    @property
    def extra_dejson(self):
        try:
            return json.loads(self.extra) if self.extra else {}
        except ValueError:
            return {}

    @classmethod
    def from_uri(cls, uri, conn_id):
        """type://login:password@host:port/schema?extra=... ; every part
        percent-decoded; the query becomes extra (its "__extra__" as it
        stands, else the query's pairs as a JSON object)."""
        u = urllib.parse.urlsplit(uri)
        unq = urllib.parse.unquote
        extra = None
        if u.query:
            q = dict(urllib.parse.parse_qsl(u.query, keep_blank_values=True))
            extra = q["__extra__"] if "__extra__" in q else json.dumps(q)
        return cls(conn_id=conn_id, conn_type=u.scheme.replace("-", "_") or None,
                   host=unq(u.hostname or "") or None, schema=unq(u.path[1:]),
                   login=unq(u.username) if u.username else None,
                   password=unq(u.password) if u.password else None,
                   port=u.port, extra=extra)

    @classmethod
    def from_json(cls, value, conn_id):
        kw = json.loads(value)
        extra = kw.pop("extra", None)
        if extra:
            kw["extra"] = extra if isinstance(extra, str) else json.dumps(extra)
        if kw.get("port") is not None:
            kw["port"] = int(kw["port"])
        return cls(conn_id=conn_id, **kw)

    @classmethod
    def get(cls, conn_id):
        value = os.environ.get("AIRFLOW_CONN_" + conn_id.upper())
        if value is None:
            raise AirflowNotFoundException(f"The conn_id `{conn_id}` isn't defined")
        if value.lstrip().startswith("{"):
            return cls.from_json(value, conn_id)
        return cls.from_uri(value, conn_id)
