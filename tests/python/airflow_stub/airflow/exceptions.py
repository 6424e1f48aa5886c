"""Stand-in for airflow.exceptions (airflow-core/src/airflow/exceptions.py,
main at 01585a10): in Airflow 3 the task exceptions live in
airflow.sdk.exceptions; importing them from here still works but warns
DeprecatedImportWarning (a FutureWarning, shown by default)."""
import importlib
import warnings

from airflow import DeprecatedImportWarning
from airflow.sdk.exceptions import AirflowException, AirflowNotFoundException

__all__ = ["AirflowException", "AirflowNotFoundException"]

_MOVED = {
    "AirflowFailException", "AirflowSensorTimeout", "AirflowSkipException",
    "AirflowTaskTimeout", "TaskDeferralError", "TaskDeferralTimeout",
    "TaskDeferred",
}


def __getattr__(name):
    if name in _MOVED:
        warnings.warn(
            f"airflow.exceptions.{name} is deprecated and will be removed in a "
            f"future version. Use airflow.sdk.exceptions.{name} instead.",
            DeprecatedImportWarning, stacklevel=2)
        return getattr(importlib.import_module("airflow.sdk.exceptions"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
