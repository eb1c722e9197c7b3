"""Alerts: what a finished run or a schedule tick means for each domain's alert states, the alert a change of
state raises, the test alert, and saving the configuration.

Each (domain, kind) keeps one AlertState. ok → alerting raises an alert, alerting → ok sends "recovered", and
no change sends nothing, however many runs see the same trouble. An alert is one delivery per channel, each
sent by a worker after commit (directory_sync.services.alert_delivery). Evaluating never raises: a run or a
tick never fails because of an alert.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.utils import timezone

from directory_sync.dispatch import DELIVER_ALERT, enqueue
from directory_sync.models import (
    Alert,
    AlertDelivery,
    AlertKind,
    AlertSettings,
    AlertState,
    DomainAlertSettings,
    JobStatus,
    SyncRun,
)
from directory_sync.selectors_alerts import (
    ALERT_SETTINGS_PK,
    alert_channels,
    alert_settings,
    conflict_events,
    settled_keys,
    synchronization_times,
)
from directory_sync.services.alert_delivery import attempt_delivery
from icewarp_admin.mailserver.models import Domain
from icewarp_admin.mailserver.selectors import system_variable_value

logger = logging.getLogger("directory_sync.alerts")

SUBJECT_PREFIX = "[Directory sync]"
RECOVERED = {
    AlertKind.RUN_FAILED: "synchronizes again",
    AlertKind.REMOVALS_WITHHELD: "no removals withheld any more",
    AlertKind.NOT_SYNCHRONIZED: "synchronized again",
    AlertKind.CONFLICT_OPEN: "the open conflicts are resolved",
}
# A message names this many objects (errors, conflicts), then says how many more there are.
NAMED_IN_MESSAGE = 20
# Open conflicts remembered per domain from run to run; a directory with more has a configuration problem.
CONFLICTS_TRACKED = 1000


@dataclass(frozen=True)
class Finding:
    """What an evaluation found for one kind: alerting or not, and what to say if that is news."""

    alerting: bool
    summary: str = ""
    lines: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)


def alerts_after_run(*, run: SyncRun) -> None:
    """What a finished run means for its domain's alerts (dry runs and skipped runs mean nothing)."""
    try:
        _evaluate_run(run)
    except Exception:
        logger.exception("Evaluating the alerts of run #%s of %s failed", run.pk, run.domain.name)


def alerts_on_tick() -> None:
    """The schedule's part: domains that have not synchronized for N intervals."""
    try:
        _evaluate_schedule()
    except Exception:
        logger.exception("Evaluating the not-synchronized alerts failed")


def _evaluate_run(run: SyncRun) -> None:
    if run.dry_run or run.status not in (JobStatus.SUCCEEDED, JobStatus.PARTIAL, JobStatus.FAILED):
        return
    config = alert_settings()
    if not _alerts_on(run.domain):
        return
    if config.on_run_failed:
        _update_state(domain=run.domain, kind=AlertKind.RUN_FAILED, finding=_run_failure(run), run=run)
    if run.status == JobStatus.FAILED:
        # It read nothing: withheld removals and open conflicts are as the last run left them.
        return
    if config.on_removals_withheld:
        _update_state(domain=run.domain, kind=AlertKind.REMOVALS_WITHHELD, finding=_withheld(run), run=run)
    if config.on_conflict_open:
        _evaluate_conflicts(run, needed_runs=config.conflict_open_runs)


def _alerts_on(domain: Domain) -> bool:
    return not DomainAlertSettings.objects.filter(domain=domain, enabled=False).exists()


def _run_path(run: SyncRun) -> str:
    return reverse("sync_history:run", args=[run.pk])


def _run_failure(run: SyncRun) -> Finding:
    """A failed run, and one that completed with errors (the directory was not read in full), are failing."""
    if run.status == JobStatus.SUCCEEDED:
        return Finding(alerting=False)
    what = "failed" if run.status == JobStatus.FAILED else "completed with errors"
    errors = [str(error) for error in run.errors]
    return Finding(
        alerting=True,
        summary=f"synchronization {what}",
        lines=[
            f"Run #{run.pk} ({run.get_trigger_display()}) {what}: {_run_path(run)}",
            *(f"- {error}" for error in errors[:NAMED_IN_MESSAGE]),
            *_more(errors),
        ],
        facts={"errors": errors[:NAMED_IN_MESSAGE], "errors_total": len(errors)},
    )


def _withheld(run: SyncRun) -> Finding:
    if not run.removals_withheld:
        return Finding(alerting=False)
    return Finding(
        alerting=True,
        summary=f"{run.removals_withheld} removal{pluralize(run.removals_withheld)} withheld",
        lines=[
            f"Run #{run.pk} withheld {run.removals_withheld} removals: {run.withheld_reason}",
            f"An administrator approves or dismisses them on the run's page: {_run_path(run)}",
        ],
        facts={"removals_withheld": run.removals_withheld, "reason": run.withheld_reason},
    )


def _evaluate_conflicts(run: SyncRun, *, needed_runs: int) -> None:
    """A conflict is open from the run that reports it until a run creates or updates that object, or a
    complete full read no longer reports it: a run that reads only changes does not see an unchanged entry,
    so its silence resolves nothing. An open conflict counts every run since its first report."""
    with transaction.atomic():
        state = _locked_state(run.domain, AlertKind.CONFLICT_OPEN)
        tracked = {key: dict(entry) for key, entry in state.details.get("open", {}).items()}
        reported = conflict_events(run=run)
        read_everything = run.status == JobStatus.SUCCEEDED and run.full_scan
        settled = settled_keys(run=run, keys=set(tracked) - set(reported))
        for key in list(tracked):
            if key not in reported and (read_everything or key in settled):
                del tracked[key]
        now = timezone.now().isoformat()
        for key, label in reported.items():
            if key not in tracked and len(tracked) < CONFLICTS_TRACKED:
                tracked[key] = {"label": label, "since": now, "runs": 0}
        for entry in tracked.values():
            entry["runs"] += 1
        details_changed = state.details != {"open": tracked}
        state.details = {"open": tracked}
        lasting = sorted(
            (entry for entry in tracked.values() if entry["runs"] >= needed_runs), key=lambda e: e["since"]
        )
        labels = [entry["label"] for entry in lasting]
        finding = Finding(
            alerting=bool(lasting),
            summary=f"{len(lasting)} conflict{pluralize(len(lasting))} open for {needed_runs} runs or more",
            lines=[
                f"These objects were left as they were in each of the last {needed_runs} runs or more "
                f"(the last: {_run_path(run)}):",
                *(f"- {label}" for label in labels[:NAMED_IN_MESSAGE]),
                *_more(labels),
            ],
            facts={"conflicts": lasting[:NAMED_IN_MESSAGE], "conflicts_total": len(lasting)},
        )
        _change_state(state, finding, run=run, save_always=details_changed)


def _evaluate_schedule() -> None:
    config = alert_settings()
    if not config.on_not_synchronized:
        return
    interval = system_variable_value(name="C_Accounts_Global_ActiveDirectorySyncInterval")
    allowed = timedelta(minutes=interval * config.not_synchronized_intervals)
    now = timezone.now()
    muted = set(DomainAlertSettings.objects.filter(enabled=False).values_list("domain_id", flat=True))
    for times in synchronization_times():
        since = times.last_synchronized or times.first_run
        if times.domain.pk in muted or since is None:
            continue
        late = now - since >= allowed
        what = (
            "Last synchronized"
            if times.last_synchronized
            else "Never synchronized; the first run was asked for"
        )
        finding = Finding(
            alerting=late,
            summary=f"not synchronized for {_minutes(now - since)}",
            lines=[
                f"{what} at {_when(since)}; runs are due every {interval} minutes and an alert is raised "
                f"after {config.not_synchronized_intervals} intervals without one that synchronized.",
                "A failed run, a stopped worker or a stopped Celery beat are the usual causes.",
            ],
            facts={
                "last_synchronized": times.last_synchronized.isoformat() if times.last_synchronized else None,
                "interval_minutes": interval,
                "intervals": config.not_synchronized_intervals,
            },
        )
        _update_state(domain=times.domain, kind=AlertKind.NOT_SYNCHRONIZED, finding=finding)


def _update_state(*, domain: Domain, kind: str, finding: Finding, run: SyncRun | None = None) -> None:
    with transaction.atomic():
        _change_state(_locked_state(domain, kind), finding, run=run)


def _locked_state(domain: Domain, kind: str) -> AlertState:
    state, _ = AlertState.objects.select_for_update().get_or_create(domain=domain, kind=kind)
    return state


def _change_state(
    state: AlertState, finding: Finding, *, run: SyncRun | None, save_always: bool = False
) -> None:
    """Inside the state's lock: record the new state and, when it changed, raise the alert that says so."""
    if state.alerting == finding.alerting:
        if save_always:
            state.save(update_fields=["details"])
        return
    state.alerting, state.since = finding.alerting, timezone.now()
    state.save()
    if finding.alerting:
        event, summary, lines = Alert.Event.RAISED, finding.summary, finding.lines
    else:
        event, summary = Alert.Event.RECOVERED, RECOVERED[AlertKind(state.kind)]
        lines = [f"{AlertKind(state.kind).label}: over since {_when(state.since)}."]
        if run is not None:
            lines.append(f"Run #{run.pk}: {_run_path(run)}")
    raise_alert(
        domain=state.domain, kind=state.kind, event=event, summary=summary, lines=lines, facts=finding.facts,
        run=run,
    )  # fmt: skip


def raise_alert(
    *,
    domain: Domain | None,
    kind: str,
    event: str,
    summary: str,
    lines: list[str],
    facts: dict[str, Any],
    run: SyncRun | None = None,
    requested_by: str = "",
    queue: bool = True,
) -> Alert:
    """Record an alert and a delivery per configured channel; queue each for a worker (after commit)."""
    where = domain.name if domain is not None else "server"
    subject = f"{SUBJECT_PREFIX} {where}: {summary}"
    message = "\n".join(lines)
    alert = Alert.objects.create(
        domain=domain,
        kind=kind,
        event=event,
        run=run,
        subject=subject,
        message=message,
        payload={},
        requested_by=requested_by,
    )
    alert.payload = {
        "alert": alert.pk,
        "kind": kind,
        "event": event,
        "domain": domain.name if domain is not None else None,
        "subject": subject,
        "message": message,
        "at": alert.created_at.isoformat(),
        "run": _run_facts(run),
        "details": facts,
    }
    alert.save(update_fields=["payload"])
    for channel in alert_channels(domain=domain):
        delivery = AlertDelivery.objects.create(
            alert=alert, channel=channel.channel, source=channel.source, target=channel.target
        )
        if queue:
            enqueue(DELIVER_ALERT, delivery.pk)
    return alert


def _run_facts(run: SyncRun | None) -> dict[str, Any] | None:
    if run is None:
        return None
    return {
        "id": run.pk,
        "status": run.status,
        "trigger": run.trigger,
        "path": _run_path(run),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "conflicts": run.conflicts,
        "removals_withheld": run.removals_withheld,
    }


def send_test_alert(*, domain: Domain | None, requested_by: str) -> Alert:
    """Send a test alert through each configured channel now, in this process, and record how each went
    (no retries: the administrator reads the outcome at once). ValidationError when no channel is set."""
    if not alert_channels(domain=domain):
        raise ValidationError(
            "Nothing to send to: add e-mail recipients or a webhook URL and save them first.",
            code="no_channel",
        )
    where = f"the alerts of {domain.name}" if domain is not None else "the server-wide alerts"
    alert = raise_alert(
        domain=domain,
        kind=AlertKind.TEST,
        event=Alert.Event.TEST,
        summary="test alert",
        lines=[f"A test of {where}, sent by {requested_by}. Nothing is wrong."],
        facts={},
        requested_by=requested_by,
        queue=False,
    )
    for delivery in alert.deliveries.select_related("alert__domain"):
        attempt_delivery(delivery=delivery)
    return alert


def save_alert_settings(*, values: dict[str, Any], new_secret: str = "", clear_secret: bool = False) -> None:
    """Save the server-wide configuration; the webhook secret is stored encrypted, or kept when none typed."""
    with transaction.atomic():
        config, _ = AlertSettings.objects.select_for_update().get_or_create(pk=ALERT_SETTINGS_PK)
        for name, value in values.items():
            setattr(config, name, value)
        if clear_secret:
            config.webhook_secret_encrypted = ""
        elif new_secret:
            config.set_webhook_secret(new_secret)
        config.save()


def save_domain_alert_settings(
    *, domain: Domain, values: dict[str, Any], new_secret: str = "", clear_secret: bool = False
) -> None:
    """Save a domain's additions to the alerts (extra recipients, its webhook, or no alerts at all)."""
    with transaction.atomic():
        config, _ = DomainAlertSettings.objects.select_for_update().get_or_create(domain=domain)
        for name, value in values.items():
            setattr(config, name, value)
        if clear_secret:
            config.webhook_secret_encrypted = ""
        elif new_secret:
            config.set_webhook_secret(new_secret)
        config.save()


def _more(items: list[str]) -> list[str]:
    return [f"... and {len(items) - NAMED_IN_MESSAGE} more"] if len(items) > NAMED_IN_MESSAGE else []


def _minutes(span: timedelta) -> str:
    minutes = int(span.total_seconds() // 60)
    if minutes < 120:
        return f"{minutes} minutes"
    hours = minutes // 60
    return f"{hours} hours" if hours < 48 else f"{hours // 24} days"


def _when(moment: datetime) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S %Z")
