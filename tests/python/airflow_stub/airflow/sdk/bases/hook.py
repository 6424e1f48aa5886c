"""Stand-in for airflow.sdk.bases.hook (task-sdk/src/airflow/sdk/bases/
hook.py, main at 3600129f): BaseHook.get_connection(conn_id)."""
import logging

from airflow.sdk.definitions.connection import Connection


class BaseHook:
    def __init__(self, logger_name=None):
        self.log = logging.getLogger(logger_name or "airflow.task.hooks")

    @classmethod
    def get_connection(cls, conn_id):
        return Connection.get(conn_id)
