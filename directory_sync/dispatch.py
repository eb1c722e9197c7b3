"""Queue background work by task name once the current transaction commits.

Services queue through here and never import tasks.py (whose tasks import the services): the task names are
the contract between the two.
"""

from __future__ import annotations

from uuid import uuid4

from django.db import transaction

from icewarp_admin.celery import app

SYNCHRONIZE = "directory_sync.synchronize"
TEST_CONNECTION = "directory_sync.test_connection"
DELIVER_ALERT = "directory_sync.deliver_alert"
# Routed to the "schedule" queue (settings.CELERY_TASK_ROUTES), never behind syncs.
SCHEDULE_TICK = "directory_sync.schedule_tick"
REAP_ABANDONED = "directory_sync.reap_abandoned"


def enqueue(task_name: str, job_id: int) -> None:
    """Send the job's id (nothing else: no host, no password) to a worker after commit.

    The task id names the job ("synchronize-42-…"), so that a worker's log says which run it received; each
    sending has its own id (a job may be sent again, see services.runs.schedule_tick).
    """
    task_id = f"{task_name.rsplit('.', 1)[-1]}-{job_id}-{uuid4().hex[:12]}"
    transaction.on_commit(lambda: app.send_task(task_name, args=[job_id], task_id=task_id))
