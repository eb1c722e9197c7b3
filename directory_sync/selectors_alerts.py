"""Reads for alerts: the configuration (server-wide and a domain's), the states, and the recent alerts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Max, Min, Q, QuerySet

from directory_sync.models import (
    PARTIAL_TRIGGERS,
    Alert,
    AlertDelivery,
    AlertSettings,
    AlertState,
    DomainAlertSettings,
    JobStatus,
    SyncEvent,
    SyncRun,
)
from icewarp_admin.mailserver.models import Domain

RECENT_ALERTS_SHOWN = 50
# A run that applied what it read: a "Completed with errors" run synchronized too (its failure is the
# run_failed alert's business, not "not synchronized").
SYNCHRONIZED_STATUSES = (JobStatus.SUCCEEDED, JobStatus.PARTIAL)


# The server-wide configuration is one row, always this one.
ALERT_SETTINGS_PK = 1


def alert_settings() -> AlertSettings:
    """The server-wide configuration; the defaults (unsaved) until an administrator saves it."""
    return AlertSettings.objects.filter(pk=ALERT_SETTINGS_PK).first() or AlertSettings(pk=ALERT_SETTINGS_PK)


def domain_alert_settings(*, domain: Domain) -> DomainAlertSettings:
    """A domain's additions; the defaults (unsaved: alerts on, nothing extra) until saved."""
    return DomainAlertSettings.objects.filter(domain=domain).first() or DomainAlertSettings(domain=domain)


def split_addresses(text: str) -> list[str]:
    """The addresses of a comma-separated list (line breaks and semicolons count as commas), each once."""
    parts = (part.strip() for part in text.replace(";", ",").replace("\n", ",").split(","))
    return list(dict.fromkeys(part for part in parts if part))


@dataclass(frozen=True)
class Channel:
    """Where an alert goes: an e-mail to recipients, or one webhook (whose secret source holds)."""

    channel: str
    source: str
    target: str


def alert_channels(*, domain: Domain | None) -> list[Channel]:
    """The configured channels for the domain's alerts (server-wide ones only when domain is None): one
    e-mail to every recipient, one POST per distinct webhook."""
    server = alert_settings()
    extra = domain_alert_settings(domain=domain) if domain is not None else None
    recipients = split_addresses(server.recipients)
    extra_recipients = split_addresses(extra.extra_recipients) if extra is not None else []
    channels = []
    everyone = list(dict.fromkeys([*recipients, *extra_recipients]))
    if everyone:
        source = AlertDelivery.Source.SERVER if recipients else AlertDelivery.Source.DOMAIN
        channels.append(Channel(AlertDelivery.Channel.EMAIL, source, ", ".join(everyone)))
    if server.webhook_url:
        channels.append(
            Channel(AlertDelivery.Channel.WEBHOOK, AlertDelivery.Source.SERVER, server.webhook_url)
        )
    if extra is not None and extra.webhook_url and extra.webhook_url != server.webhook_url:
        channels.append(
            Channel(AlertDelivery.Channel.WEBHOOK, AlertDelivery.Source.DOMAIN, extra.webhook_url)
        )
    return channels


def alert_states(*, domain: Domain | None = None, alerting_only: bool = False) -> QuerySet[AlertState]:
    states = AlertState.objects.select_related("domain")
    if domain is not None:
        states = states.filter(domain=domain)
    if alerting_only:
        states = states.filter(alerting=True)
    return states


def recent_alerts(*, domain: Domain | None = None, limit: int = RECENT_ALERTS_SHOWN) -> list[Alert]:
    """The newest alerts (of the domain, or all), each with its deliveries."""
    alerts = Alert.objects.select_related("domain", "run").prefetch_related("deliveries")
    if domain is not None:
        alerts = alerts.filter(domain=domain)
    return list(alerts[:limit])


@dataclass(frozen=True)
class SyncTimes:
    domain: Domain
    last_synchronized: datetime | None  # the last real run that applied what it read finished then
    first_run: datetime | None  # "not synchronized since" before any success


def synchronization_times() -> list[SyncTimes]:
    """Each domain whose synchronization is switched on, with when it last synchronized, in one query."""
    real = Q(sync_runs__dry_run=False) & ~Q(sync_runs__trigger__in=PARTIAL_TRIGGERS)
    domains = Domain.objects.filter(directory_settings__active=True).annotate(
        last_synchronized=Max(
            "sync_runs__finished_at", filter=real & Q(sync_runs__status__in=SYNCHRONIZED_STATUSES)
        ),
        first_run=Min("sync_runs__created_at", filter=real),
    )
    return [SyncTimes(domain, domain.last_synchronized, domain.first_run) for domain in domains]


def conflict_events(*, run: SyncRun) -> dict[str, str]:
    """The run's conflicts: "object type:directory id" → label."""
    rows = run.events.filter(action=SyncEvent.Action.CONFLICT).values_list(
        "object_type", "directory_id", "label"
    )
    return {f"{kind}:{key}": label for kind, key, label in rows}


def settled_keys(*, run: SyncRun, keys: set[str]) -> set[str]:
    """Of these conflicts' keys, those the run did something else with (created, updated, skipped...)."""
    ids = {key.split(":", 1)[1] for key in keys}
    rows = (
        run.events.filter(directory_id__in=ids)
        .exclude(action=SyncEvent.Action.CONFLICT)
        .values_list("object_type", "directory_id")
    )
    return {f"{kind}:{key}" for kind, key in rows} & keys
