"""Queue background work by task name once the current transaction commits.

Services queue through here and never import tasks.py (whose tasks import the services): the task names are
the contract between the two.
"""

from __future__ import annotations

from django.db import transaction

from icewarp_admin.celery import app

SYNCHRONIZE = "directory_sync.synchronize"
TEST_CONNECTION = "directory_sync.test_connection"


def enqueue(task_name: str, job_id: int) -> None:
    """Send the job's id (nothing else: no host, no password) to a worker after commit."""
    transaction.on_commit(lambda: app.send_task(task_name, args=[job_id]))
