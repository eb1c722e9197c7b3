"""Running a synchronization: the job's lifecycle around the engine (directory_sync.sync.runner).

The run's row and its outcome are written outside the apply transaction, so a failed apply never erases the
record of what was attempted. The Celery task, the command line and the approval of withheld removals all come
here.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.utils import timezone

from directory_sync.ldap import DirectoryError
from directory_sync.models import JobStatus, SyncRun
from directory_sync.secrets import SecretUnreadable
from directory_sync.services.alerts import alerts_after_run
from directory_sync.services.jobs import Heartbeat, claim, finish
from directory_sync.services.runs import RunStart, begin_run
from directory_sync.services.settings import settings_for
from directory_sync.sync.explain import NothingFound
from directory_sync.sync.runner import PHASES, RunRefused, synchronize
from icewarp_admin.logging import bind_log_context, log_context
from icewarp_admin.mailserver.models import Domain

logger = logging.getLogger("directory_sync.sync")
LOG_DEBUG, LOG_SUMMARY = 1, 2


def run_now(
    *, domain: Domain, trigger: str, requested_by: str = "", dry_run: bool = False, only: str = ""
) -> RunStart:
    """Start a run in this process (the command line): through the per-domain lock like every run; when
    another run of the domain is queued or running, that one is returned (joined) and nothing runs here.

    only: a query naming one object: the run synchronizes just that one (sync/explain.py)."""
    start = begin_run(
        domain=domain,
        trigger=trigger,
        requested_by=requested_by,
        dry_run=dry_run,
        dispatch=False,
        target=only,
    )
    if start.joined:
        return start
    return RunStart(run=execute_run(run_id=start.run.pk, only=only), joined=False)


def execute_run(*, run_id: int, only: str = "") -> SyncRun:
    """Run a queued run to its end; a run delivered twice runs once. Never raises for directory trouble."""
    with log_context(run_id=run_id):
        return _execute_run(run_id, only)


def _execute_run(run_id: int, only: str = "") -> SyncRun:
    if not only and SyncRun.objects.filter(pk=run_id, trigger=SyncRun.Trigger.SYNC_ONE).exists():
        # Its query is not in the task message: a worker that got its id (a resent queue) leaves it to the
        # process that asked for it.
        return SyncRun.objects.get(pk=run_id)
    run, claimed = claim(SyncRun, run_id)
    assert run is not None, f"run #{run_id} does not exist"
    if not claimed:
        return run
    bind_log_context(domain=run.domain.name)
    started = time.monotonic()
    try:
        with Heartbeat(run):
            outcome = synchronize(
                run,
                settings=settings_for(run.domain),
                progress=lambda **fields: _progress(run, **fields),
                only=only,
            )
    except (DirectoryError, RunRefused, SecretUnreadable, NothingFound) as error:
        finish(run, status=JobStatus.FAILED, phase="", errors=[str(error)])
    except Exception:
        logger.exception("Synchronizing domain %s failed", run.domain.name)
        finish(
            run,
            status=JobStatus.FAILED,
            phase="",
            errors=["The run stopped on an internal error; see the worker log."],
        )
    else:
        # Errors of a run that reached its end: a search failed or was cut short, so the directory was not
        # read in full (what was read is applied; nothing is removed on the strength of it).
        status = JobStatus.PARTIAL if outcome["errors"] else JobStatus.SUCCEEDED
        finish(run, status=status, phase="", **outcome)
    bind_log_context(phase=None)
    if run.trigger != SyncRun.Trigger.SYNC_ONE:  # one object says nothing of the domain's health
        alerts_after_run(run=run)
    _log_summary(run, time.monotonic() - started)
    return run


def _progress(run: SyncRun, **fields: Any) -> None:
    """Progress and a heartbeat, saved at once (outside any transaction) so the tab can show them."""
    fields["heartbeat_at"] = timezone.now()
    if "phase" in fields:
        bind_log_context(phase=fields["phase"])
    for name, value in fields.items():
        setattr(run, name, value)
    SyncRun.objects.filter(pk=run.pk).update(**fields)


def _log_summary(run: SyncRun, seconds: float) -> None:
    from icewarp_admin.mailserver.selectors import system_variable_value

    log_type = system_variable_value(name="C_System_ADSyncLogType")
    if log_type & LOG_DEBUG:
        for event in run.events.all().iterator():
            logger.info(
                "Domain %s: %s %s %s %s",
                run.domain.name,
                event.action,
                event.object_type,
                event.label,
                event.reason,
            )
    if log_type & LOG_SUMMARY:
        accounts = run.counts.get("accounts", {})
        summary = ", ".join(f"{name} {value}" for name, value in accounts.items())
        phases = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in run.phases.items())
        logger.info(
            "Synchronizing domain %s finished%s: %s; %s; conflicts %s; removals withheld %s; %.1f s (%s)",
            run.domain.name,
            " (dry run)" if run.dry_run else "",
            run.status,
            summary or "nothing compared",
            run.conflicts,
            run.removals_withheld,
            seconds,
            phases or "no phase ran",
        )


def withheld_summary(run: SyncRun) -> str:
    """The withheld removals in one line ("" when none): their number and, once, why."""
    if not run.removals_withheld:
        return ""
    return f"{run.removals_withheld} removals withheld: {run.withheld_reason or 'the guard withheld them.'}"


def run_summary(run: SyncRun) -> dict[str, Any]:
    """The run as the stable JSON of `manage.py directory_sync --json`.

    status: succeeded, partial (completed with errors: see errors), failed, or skipped. Withheld removals
    are the last of the warnings, with their reason.
    """
    # "disabled": people gone from the directory, disabled and kept for REMOVALGRACEDAYS (pending removal).
    names = ("created", "updated", "renamed", "disabled", "removed", "unchanged", "skipped")

    def counters(kind: str) -> dict[str, int]:
        return {name: int(run.counts.get(kind, {}).get(name, 0)) for name in names}

    return {
        "run": run.pk,
        "status": run.status,
        "dry_run": run.dry_run,
        "accounts": counters("accounts"),
        "groups": counters("groups"),
        "conflicts": run.conflicts,
        "removals_withheld": run.removals_withheld,
        "warnings": [*run.warnings, *filter(None, [withheld_summary(run)])],
        "errors": list(run.errors),
        "duration_s": round(run.duration_s or 0.0, 3),
        "full_scan": run.full_scan,
        "tracking": run.tracking,
        "phases": {name: float(run.phases[name]) for name in PHASES if name in run.phases},
    }
