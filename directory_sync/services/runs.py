"""Queueing runs: one per domain (the database's unique constraint is the lock), the schedule, abandoned
runs, and the approval of withheld removals."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from types import TracebackType

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from directory_sync.models import DirectorySettings, SyncRun
from icewarp_admin.mailserver.models import Domain
from icewarp_admin.mailserver.selectors import system_variable_value

logger = logging.getLogger("directory_sync.sync")

ACTIVE = (SyncRun.Status.QUEUED, SyncRun.Status.RUNNING)
# A queued run this old lost its task message (a broker restarted without persistence, say).
NEVER_PICKED_UP_AFTER = timedelta(minutes=60)


def request_run(
    *,
    domain: Domain,
    trigger: str,
    requested_by: str = "",
    dry_run: bool = False,
    approves: SyncRun | None = None,
) -> tuple[SyncRun, bool]:
    """Queue a run for the domain, or join the one already queued or running: (run, joined)."""
    from directory_sync.tasks import synchronize

    for _ in range(3):
        try:
            with transaction.atomic():
                run = SyncRun.objects.create(
                    domain=domain,
                    trigger=trigger,
                    requested_by=requested_by,
                    dry_run=dry_run,
                    approves=approves,
                )
                synchronize.delay_on_commit(run.pk)  # type: ignore[attr-defined]  # DjangoTask, untyped
            return run, False
        except IntegrityError:
            active = SyncRun.objects.filter(domain=domain, status__in=ACTIVE).first()
            if active is not None:
                return active, True
            # The active run finished between the insert and the look-up: try again.
    raise RuntimeError(f"Could not queue a run for {domain.name}: the per-domain lock kept changing hands.")


def schedule_tick() -> list[SyncRun]:
    """What Celery beat calls every minute: sync each active domain whose interval has passed.

    The interval is read on every tick, so changing C_Accounts_Global_ActiveDirectorySyncInterval or a
    domain's General switch takes effect at the next tick, without restarting anything.
    """
    reap_abandoned()
    interval = timedelta(minutes=system_variable_value(name="C_Accounts_Global_ActiveDirectorySyncInterval"))
    now = timezone.now()
    started = []
    for domain_settings in DirectorySettings.objects.filter(active=True).select_related("domain"):
        domain = domain_settings.domain
        last = (
            SyncRun.objects.filter(domain=domain, trigger=SyncRun.Trigger.SCHEDULE)
            .order_by("-created_at")
            .values_list("created_at", flat=True)
            .first()
        )
        # A few seconds of slack: ticks do not land on the exact second.
        if last is not None and last > now - interval + timedelta(seconds=5):
            continue
        run, joined = request_run(domain=domain, trigger=SyncRun.Trigger.SCHEDULE, requested_by="schedule")
        if joined:
            run = record_skipped(domain=domain, busy=run)
        started.append(run)
    return started


def record_skipped(*, domain: Domain, busy: SyncRun) -> SyncRun:
    """A scheduled run that found another one going on: recorded, never run in parallel."""
    now = timezone.now()
    return SyncRun.objects.create(
        domain=domain,
        trigger=SyncRun.Trigger.SCHEDULE,
        requested_by="schedule",
        status=SyncRun.Status.SKIPPED,
        started_at=now,
        finished_at=now,
        warnings=[
            f"Run #{busy.pk} ({busy.get_trigger_display()}) was still {busy.status}: this one was skipped."
        ],
    )


def reap_abandoned() -> int:
    """Fail runs whose worker died (no heartbeat) or whose task never arrived, freeing their domain."""
    now = timezone.now()
    reaped = 0
    silent_since = now - timedelta(seconds=settings.SYNC_ABANDONED_AFTER_SECONDS)
    for run in SyncRun.objects.filter(status=SyncRun.Status.RUNNING, heartbeat_at__lt=silent_since):
        reaped += _fail_stale(
            run, f"The worker running it stopped (no sign of life since {run.heartbeat_at:%H:%M:%S} UTC)."
        )
    for run in SyncRun.objects.filter(
        status=SyncRun.Status.QUEUED, created_at__lt=now - NEVER_PICKED_UP_AFTER
    ):
        reaped += _fail_stale(
            run, "No worker picked it up within an hour; check that a Celery worker is running."
        )
    return reaped


def _fail_stale(run: SyncRun, reason: str) -> int:
    updated = SyncRun.objects.filter(pk=run.pk, status=run.status).update(
        status=SyncRun.Status.FAILED, finished_at=timezone.now(), phase="", errors=[f"Abandoned: {reason}"]
    )
    if updated:
        logger.warning("Synchronizing domain %s: run #%s abandoned: %s", run.domain.name, run.pk, reason)
    return updated


class Heartbeat:
    """While a run runs, a thread with its own database connection says so every few seconds.

    It keeps beating through a long apply transaction (which the main thread cannot interrupt to write), so
    a live run is never taken for abandoned; when the process dies, the beats stop and the reaper steps in.
    """

    def __init__(self, run_id: int, *, every: float | None = None) -> None:
        self.run_id, self.every = run_id, every or settings.SYNC_HEARTBEAT_SECONDS
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, name=f"sync-heartbeat-{run_id}", daemon=True)

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
                    SyncRun.objects.filter(pk=self.run_id, status=SyncRun.Status.RUNNING).update(
                        heartbeat_at=timezone.now()
                    )
                except Exception:  # a busy database: the next beat will do
                    logger.debug("Heartbeat of run #%s skipped", self.run_id, exc_info=True)
        finally:
            connection.close()


def resolve_withheld(*, run: SyncRun, approve: bool, by: str) -> SyncRun | None:
    """Approve (a new run re-checks the directory, then applies those removals) or dismiss them."""
    with transaction.atomic():
        locked = SyncRun.objects.select_for_update().get(pk=run.pk)
        if not locked.removals_withheld or locked.withheld_resolution or locked.dry_run:
            return None
        locked.withheld_resolution = "approved" if approve else "dismissed"
        locked.resolved_by, locked.resolved_at = by, timezone.now()
        locked.save(update_fields=["withheld_resolution", "resolved_by", "resolved_at"])
    if not approve:
        return None
    approval, _ = request_run(
        domain=run.domain, trigger=SyncRun.Trigger.APPROVAL, requested_by=by, approves=run
    )
    return approval
