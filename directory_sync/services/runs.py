"""Starting runs: one per domain (the database's unique constraint is the lock), the schedule, and the
approval of withheld removals. Every run starts in begin_run: the button, the schedule, the command line and
the tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from directory_sync.dispatch import SYNCHRONIZE, enqueue
from directory_sync.models import ACTIVE_STATUSES, DirectorySettings, JobStatus, SyncRun
from directory_sync.services.jobs import reap_abandoned
from icewarp_admin.mailserver.models import Domain
from icewarp_admin.mailserver.selectors import system_variable_value


@dataclass(frozen=True)
class RunStart:
    """The run a request got: a new one, or (joined) the one of the domain already queued or running."""

    run: SyncRun
    joined: bool


def begin_run(
    *,
    domain: Domain,
    trigger: str,
    requested_by: str = "",
    dry_run: bool = False,
    approves: SyncRun | None = None,
    dispatch: bool = True,
) -> RunStart:
    """Queue a run of the domain under its lock, or join the active one; dispatch hands it to a worker."""
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
                if dispatch:
                    enqueue(SYNCHRONIZE, run.pk)
            return RunStart(run=run, joined=False)
        except IntegrityError:
            active = SyncRun.objects.filter(domain=domain, status__in=ACTIVE_STATUSES).first()
            if active is not None:
                return RunStart(run=active, joined=True)
            # The active run finished between the insert and the look-up: try again.
    raise RuntimeError(f"Could not queue a run for {domain.name}: the per-domain lock kept changing hands.")


def request_run(
    *,
    domain: Domain,
    trigger: str,
    requested_by: str = "",
    dry_run: bool = False,
    approves: SyncRun | None = None,
) -> tuple[SyncRun, bool]:
    """Queue a run for a worker, or join the one already queued or running: (run, joined)."""
    start = begin_run(
        domain=domain, trigger=trigger, requested_by=requested_by, dry_run=dry_run, approves=approves
    )
    return start.run, start.joined


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
        status=JobStatus.SKIPPED,
        started_at=now,
        finished_at=now,
        warnings=[
            f"Run #{busy.pk} ({busy.get_trigger_display()}) was still {busy.status}: this one was skipped."
        ],
    )


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
