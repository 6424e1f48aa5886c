"""Stand-in for airflow.sdk, the task SDK Airflow 3 DAGs and plugins import
(task-sdk/src/airflow/sdk/__init__.py): the names sftprelay_airflow and the
DAG file use.  DAG and task only record what the tests look at."""
from airflow.sdk.bases.hook import BaseHook
from airflow.sdk.bases.operator import BaseOperator, _current_dag
from airflow.sdk.bases.sensor import BaseSensorOperator, PokeReturnValue
from airflow.sdk.definitions.connection import Connection

__all__ = ["BaseHook", "BaseOperator", "BaseSensorOperator", "Connection",
           "DAG", "PokeReturnValue", "task"]


class DAG:
    def __init__(self, dag_id, **kwargs):
        self.dag_id = dag_id
        self.kwargs = kwargs
        self.tasks = []

    def __enter__(self):
        _current_dag.append(self)
        return self

    def __exit__(self, *exc):
        _current_dag.pop()


class _TaskFlowTask(BaseOperator):
    def __init__(self, fn, **kwargs):
        super().__init__(task_id=fn.__name__, **kwargs)
        self.fn = fn


def task(fn):
    def make(*args, **kwargs):
        return _TaskFlowTask(fn)
    return make
