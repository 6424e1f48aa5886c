"""Apache Airflow pieces for sftprelay: sensors that wait on the agent's
journal.  The logic is in journal.py (stdlib only); sensors.py and
triggers.py are thin Airflow wrappers around it."""
