"""sftp_sync: wait until the files each run expects have been replicated
from the source SFTP host to the target by sftprelayd, then report what
was delivered (sizes and SHA-256 checksums).

The agent does the copying as files arrive; this DAG only reads the
agent's state, so it never touches either SFTP server.  It reads it one of
two ways:
- on the agent's host (as in docker-compose.yml, the journal shared
  through a volume): the journal's file, journal_path;
- from another host: the agent's status endpoint, through an Airflow
  connection of type HTTP (host, port, schema https, the token as
  password), named by the param sftprelay_conn_id or, when that is empty,
  by the Airflow Variable sftprelay_conn_id.  Either set, it is used and
  journal_path is not.
Params (set them when triggering a run):
  files             paths under the upload folder (templated per file)
  journal_path      the agent's journal.db
  sftprelay_conn_id the connection to the agent's status endpoint ("":
                    the Variable sftprelay_conn_id, or none: the journal)
"""

from __future__ import annotations

import datetime as dt

try:  # Airflow 3
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.decorators import task

from sftprelay_airflow.sensors import SftpRelayDeliveredSensor

BRIEF_FILES = ["a/b/c/file_1.txt", "a/b/c/file_2.txt", "a/b/c/file_3.txt"]

with DAG(
    dag_id="sftp_sync",
    description="Wait for sftprelayd to replicate the expected files",
    schedule=None,
    start_date=dt.datetime(2024, 3, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    params={
        "files": BRIEF_FILES,
        "journal_path": "/var/lib/sftprelay/journal.db",
        "sftprelay_conn_id": "",
    },
    tags=["sftprelay"],
) as dag:
    waits = [
        SftpRelayDeliveredSensor(
            task_id=f"wait_file_{i + 1}",
            path=f"{{{{ params.files[{i}] }}}}",
            journal_path="{{ params.journal_path }}",
            sftprelay_conn_id=(
                "{{ params.sftprelay_conn_id"
                " or var.value.get('sftprelay_conn_id', '') }}"
            ),
            mode="reschedule",
            poke_interval=30,
            timeout=6 * 3600,
        )
        for i in range(len(BRIEF_FILES))
    ]

    @task
    def report(**context):
        """Log and return what reached the target."""
        ti = context["ti"]
        delivered = []
        for w in waits:
            for f in ti.xcom_pull(task_ids=w.task_id) or []:
                # path_bytes: the exact name, when it is not UTF-8
                print(f"delivered {f.get('path_bytes', f['path'])}: "
                      f"{f['size']} bytes, sha256 {f['sha256']}, "
                      f"at {f['delivered_at']}")
                delivered.append(f)
        return delivered

    waits >> report()
