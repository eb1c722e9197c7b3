"""The one lifecycle of background jobs (sync runs and connection checks): claim, beat, end, reap.

A job is a row (NetBox's jobs): queued by a request, claimed by exactly one worker, beating while it runs,
ended with an outcome. A worker that dies stops beating; the reaper fails its job and frees what it held.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from types import TracebackType
from typing import Any, TypeVar

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from directory_sync.models import BackgroundJob, ConnectionCheck, JobStatus, SyncRun
from directory_sync.services.alerts import alerts_after_run

logger = logging.getLogger("directory_sync.jobs")

JobT = TypeVar("JobT", bound=BackgroundJob)
JOB_MODELS: tuple[type[BackgroundJob], ...] = (SyncRun, ConnectionCheck)
# A queued job this old lost its task message (a broker restarted without persistence, say).
NEVER_PICKED_UP_AFTER = timedelta(minutes=60)


def claim(model: type[JobT], job_id: int) -> tuple[JobT | None, bool]:
    """Queued → running for this worker: (job, True); a job delivered twice runs once: (job, False)."""
    with transaction.atomic():
        job = model._default_manager.select_for_update().select_related("domain").filter(pk=job_id).first()
        if job is None or job.status != JobStatus.QUEUED:
            return job, False
        now = timezone.now()
        job.status, job.started_at, job.heartbeat_at = JobStatus.RUNNING, now, now
        job.save(update_fields=["status", "started_at", "heartbeat_at"])
    return job, True


def finish(job: BackgroundJob, *, status: str, **outcome: Any) -> None:
    """End a running job with its outcome."""
    job.status = status
    job.finished_at = timezone.now()
    for name, value in outcome.items():
        setattr(job, name, value)
    job.save()


def failure_fields(job: BackgroundJob, message: str) -> dict[str, Any]:
    """What a failed job of this kind records besides its status."""
    if isinstance(job, SyncRun):
        return {"errors": [message], "phase": ""}
    return {"result": {"ok": False, "summary": message, "hosts": []}}


def reap_abandoned() -> int:
    """Fail jobs whose worker died (no heartbeat) or whose task never arrived; their domain is free again.

    Beat runs it every SYNC_REAP_SECONDS (and each tick first): a dead job is failed between
    SYNC_ABANDONED_AFTER_SECONDS and that plus SYNC_REAP_SECONDS after its last beat.
    """
    now = timezone.now()
    silent_since = now - timedelta(seconds=settings.SYNC_ABANDONED_AFTER_SECONDS)
    reaped = 0
    for model in JOB_MODELS:
        for job in model._default_manager.filter(status=JobStatus.RUNNING, heartbeat_at__lt=silent_since):
            reaped += _fail_stale(
                job, f"The worker running it stopped (no sign of life since {job.heartbeat_at:%H:%M:%S} UTC)."
            )
        for job in model._default_manager.filter(
            status=JobStatus.QUEUED, created_at__lt=now - NEVER_PICKED_UP_AFTER
        ):
            reaped += _fail_stale(
                job, "No worker picked it up within an hour; check that a Celery worker is running."
            )
    return reaped


def _fail_stale(job: BackgroundJob, reason: str) -> int:
    fields = {
        "status": JobStatus.FAILED,
        "finished_at": timezone.now(),
        **failure_fields(job, f"Abandoned: {reason}"),
    }
    updated = type(job)._default_manager.filter(pk=job.pk, status=job.status).update(**fields)
    if updated:
        logger.warning("%s of domain %s abandoned: %s", type(job).__name__, job.domain_id, reason)
        if isinstance(job, SyncRun):
            # A run that died never reaches execute_run's end: its failure alerts from here.
            alerts_after_run(run=SyncRun.objects.select_related("domain").get(pk=job.pk))
    return updated


class Heartbeat:
    """While a job runs, a thread with its own database connection says so every few seconds.

    It keeps beating through a long transaction (which the main thread cannot interrupt to write), so a live
    job is never taken for abandoned; when the process dies, the beats stop and the reaper steps in.
    """

    def __init__(self, job: BackgroundJob, *, every: float | None = None) -> None:
        self.model, self.job_id = type(job), job.pk
        self.every = every or settings.SYNC_HEARTBEAT_SECONDS
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, name=f"heartbeat-{self.job_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self.thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop.set()
        self.thread.join(timeout=5)

    def _beat(self) -> None:
        try:
            if connection.vendor == "sqlite":
                with connection.cursor() as cursor:  # wait for the writer a little, never for long
                    cursor.execute("PRAGMA busy_timeout = 1000")
            while not self.stop.wait(self.every):
                try:
                    self.model._default_manager.filter(pk=self.job_id, status=JobStatus.RUNNING).update(
                        heartbeat_at=timezone.now()
                    )
                except Exception:  # a busy database: the next beat will do
                    logger.debug(
                        "Heartbeat of %s #%s skipped", self.model.__name__, self.job_id, exc_info=True
                    )
        finally:
            connection.close()
