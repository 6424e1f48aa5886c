"""A minimal stand-in for the parts of Apache Airflow's documented API
that sftprelay_airflow uses (Airflow cannot be installed here: no PyPI).
It lets the tests drive the sensors, the trigger and the DAG file; it is
not Airflow and is used by the tests only."""
