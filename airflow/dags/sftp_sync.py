"""sftp_sync: wait until the files each run expects have been replicated
from the source SFTP host to the target by sftprelayd, then report what
was delivered (sizes and SHA-256 checksums).

The agent does the copying as files arrive; this DAG only reads its
journal (shared with the agent through a volume), so it never touches
either SFTP server.  Params (set them when triggering a run):
  files        paths under the upload folder (templated per file)
  journal_path the agent's journal.db
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
    },
    tags=["sftprelay"],
) as dag:
    waits = [
        SftpRelayDeliveredSensor(
            task_id=f"wait_file_{i + 1}",
            path=f"{{{{ params.files[{i}] }}}}",
            journal_path="{{ params.journal_path }}",
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
                print(f"delivered {f['path']}: {f['size']} bytes, "
                      f"sha256 {f['sha256']}, at {f['delivered_at']}")
                delivered.append(f)
        return delivered

    waits >> report()
