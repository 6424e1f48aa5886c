"""Where the sensors and the trigger read the agent's state: the journal's
file (journal_path), or the agent's status endpoint through an Airflow
connection (sftprelay_conn_id) when the worker is on another host."""

from __future__ import annotations

from typing import Optional, Union

try:  # Airflow 3
    from airflow.sdk import BaseHook
except ImportError:  # Airflow 2
    from airflow.hooks.base import BaseHook

from sftprelay_airflow.endpoint import StatusEndpoint
from sftprelay_airflow.journal import Journal

DEFAULT_JOURNAL = "/var/lib/sftprelay/journal.db"


def row_source(
    journal_path: Optional[str] = None, sftprelay_conn_id: Optional[str] = None
) -> Union[Journal, StatusEndpoint]:
    """The status endpoint of connection sftprelay_conn_id when it is given
    (not empty), else the journal at journal_path (default
    /var/lib/sftprelay/journal.db).  The connection is looked up now, each
    time: a rotated token is picked up at the next check."""
    if sftprelay_conn_id:
        return StatusEndpoint.from_connection(BaseHook.get_connection(sftprelay_conn_id))
    return Journal(journal_path or DEFAULT_JOURNAL)
