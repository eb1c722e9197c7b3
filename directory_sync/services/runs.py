"""Starting runs: one per domain (the database's unique constraint is the lock), the schedule, and the
approval of withheld removals. Every run starts in begin_run: the button, the schedule, the command line and
the tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from directory_sync.backoff import state_of, sync_interval, with_schedule_state
from directory_sync.dispatch import SYNCHRONIZE, enqueue
from directory_sync.models import ACTIVE_STATUSES, DirectorySettings, JobStatus, SyncRun
from directory_sync.services.alerts import alerts_on_tick
from directory_sync.services.health import record_tick
from directory_sync.services.jobs import reap_abandoned
from icewarp_admin.mailserver.models import Domain

# Ticks do not land on the exact second: a domain due this close after the tick is queued by it.
TICK_SLACK = timedelta(seconds=5)


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
    target: str = "",
) -> RunStart:
    """Queue a run of the domain under its lock, or join the active one; dispatch hands it to a worker.

    target: the query of a run of one object, named on the run from the start (such a run is executed by the
    process that asks for it: services.sync.run_now).
    """
    if target and dispatch:
        raise ValueError("A run of one object runs in the process that asks for it, not in a worker.")
    for _ in range(3):
        try:
            with transaction.atomic():
                run = SyncRun.objects.create(
                    domain=domain,
                    trigger=trigger,
                    requested_by=requested_by,
                    dry_run=dry_run,
                    approves=approves,
                    tracking=f"one object: {target}"[:120] if target else "",
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


def schedule_tick(*, redelivered: bool = False) -> list[SyncRun]:
    """What Celery beat calls every minute: sync each active domain whose interval has passed.

    The interval is read on every tick, so changing C_Accounts_Global_ActiveDirectorySyncInterval or a
    domain's General switch takes effect at the next tick, without restarting anything. A domain whose
    scheduled runs keep failing waits longer (directory_sync.backoff) and is queued after the others.
    Ticking twice queues nothing twice: what a tick queued makes the domain not due.

    redelivered: this tick's message was delivered before, to a worker that died, maybe between committing a
    run and sending it: every queued run is sent again (a run delivered twice runs once).
    """
    record_tick()
    reap_abandoned()
    if redelivered:
        for run_id in SyncRun.objects.filter(status=JobStatus.QUEUED).values_list("pk", flat=True):
            enqueue(SYNCHRONIZE, run_id)
    interval = sync_interval()
    now = timezone.now()
    active_domains = DirectorySettings.objects.filter(active=True).select_related("domain")
    active = with_schedule_state(queryset=active_domains)
    due = [
        (state, domain_settings.domain)
        for domain_settings in active
        if (state := state_of(settings=domain_settings, interval=interval)).due(now, slack=TICK_SLACK)
    ]
    due.sort(key=lambda item: (item[0].failures, item[1].name))
    started = []
    for _, domain in due:
        run, joined = request_run(domain=domain, trigger=SyncRun.Trigger.SCHEDULE, requested_by="schedule")
        if joined:
            if run.trigger == SyncRun.Trigger.SCHEDULE and run.created_at >= now:
                continue  # queued by another delivery of this same tick, since it looked
            run = record_skipped(domain=domain, busy=run)
        started.append(run)
    alerts_on_tick()
    return started


def record_skipped(*, domain: Domain, busy: SyncRun) -> SyncRun:
    """A scheduled run that found another one going on: recorded, never run in parallel."""
    skipped = SyncRun.objects.create(
        domain=domain,
        trigger=SyncRun.Trigger.SCHEDULE,
        requested_by="schedule",
        status=JobStatus.SKIPPED,
        warnings=[
            f"Run #{busy.pk} ({busy.get_trigger_display()}) was still {busy.status}: this one was skipped."
        ],
    )
    # It started and ended when it was recorded (created_at is set by the save itself).
    skipped.started_at = skipped.finished_at = skipped.created_at
    skipped.save(update_fields=["started_at", "finished_at"])
    return skipped


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
