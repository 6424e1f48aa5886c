"""A stand-in for the parts of Apache Airflow 3 that sftprelay_airflow
uses (Airflow cannot be installed here: no PyPI).  It lets the tests drive
the sensors, the trigger and the DAG file; it is not Airflow and is used by
the tests only.

Each behaviour that matters to the sensors follows Airflow's own source,
read in the apache/airflow repository (main after 3.2; the task SDK is
airflow.sdk, the package Airflow 3 tasks import).  Every module here names
the file and commit it follows; where it does less than Airflow it says
so.  stub_runner.py (beside this package) plays the task runner and the
triggerer: it pushes XComs and stores trigger payloads the way Airflow's
HTTP layer does, so what Airflow could not encode fails here too.
"""


class DeprecatedImportWarning(FutureWarning):
    """airflow-core/src/airflow/__init__.py: warned when a name is imported
    from where it used to live (airflow.exceptions -> airflow.sdk.exceptions)."""
