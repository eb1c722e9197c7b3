"""When the schedule next tries a domain, read from its run history (no column of its own).

A domain whose scheduled runs keep failing (a directory that is down, or never answers) is tried less often,
so that it does not hold a worker slot the healthy domains wait for: after n failed scheduled runs in a row,
the next scheduled attempt waits 1, 2, 4, … sync intervals (at most 16 intervals, and at most a day unless the
interval itself is longer). A successful run of any kind ends the streak. Synchronize Now is never held back:
it does not go through the schedule.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db.models import Count, DateTimeField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from directory_sync.models import PARTIAL_TRIGGERS, DirectorySettings, JobStatus, SyncRun
from icewarp_admin.mailserver.selectors import system_variable_value

MAX_BACKOFF_INTERVALS = 16
MAX_BACKOFF = timedelta(days=1)
# Runs that reached their end: the directory answered.
SUCCESSES = (JobStatus.SUCCEEDED, JobStatus.PARTIAL)
_BEFORE_ANY_RUN = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class ScheduleState:
    """Where a domain stands with the schedule."""

    domain_id: int
    failures: int  # scheduled runs failed in a row, since the domain's last successful run
    last_attempt_at: datetime | None  # the latest scheduled run (a skipped one too)
    interval: timedelta

    @property
    def delay(self) -> timedelta:
        """How long after the last attempt the next one comes: the interval, doubled for each failure after
        the first, capped."""
        if self.failures <= 1:
            return self.interval
        factor = min(2 ** (self.failures - 1), MAX_BACKOFF_INTERVALS)
        return min(self.interval * factor, max(self.interval, MAX_BACKOFF))

    @property
    def next_attempt_at(self) -> datetime | None:
        """When the schedule tries next; None: at the next tick (never scheduled yet)."""
        return None if self.last_attempt_at is None else self.last_attempt_at + self.delay

    def due(self, now: datetime, *, slack: timedelta) -> bool:
        """Whether a tick at now starts a run (slack: ticks do not land on the exact second)."""
        return self.next_attempt_at is None or self.next_attempt_at <= now + slack

    @property
    def summary(self) -> str:
        """ "3 failures in a row; next attempt at 14:35" ("" while the domain's runs succeed)."""
        if not self.failures:
            return ""
        streak = (
            "The last scheduled run failed" if self.failures == 1 else f"{self.failures} failures in a row"
        )
        when = self.next_attempt_at
        if when is None:
            return streak
        local, today = timezone.localtime(when), timezone.localdate()
        at = f"{local:%H:%M}" if local.date() == today else f"{local:%Y-%m-%d %H:%M}"
        return f"{streak}; next attempt at {at}"


def sync_interval() -> timedelta:
    """C_Accounts_Global_ActiveDirectorySyncInterval, read afresh: a change applies at the next tick."""
    return timedelta(minutes=system_variable_value(name="C_Accounts_Global_ActiveDirectorySyncInterval"))


def with_schedule_state(*, queryset: QuerySet[DirectorySettings]) -> QuerySet[DirectorySettings]:
    """The settings annotated with last_attempt_at and failures (one query however many domains)."""
    runs = SyncRun.objects.filter(domain_id=OuterRef("domain_id")).order_by()
    latest_scheduled = (
        runs.filter(trigger=SyncRun.Trigger.SCHEDULE).order_by("-created_at").values("created_at")
    )
    latest_success = (
        runs.filter(status__in=SUCCESSES, dry_run=False)
        .exclude(trigger__in=PARTIAL_TRIGGERS)
        .order_by("-created_at")
        .values("created_at")
    )
    failures_since = (
        runs.filter(trigger=SyncRun.Trigger.SCHEDULE, status=JobStatus.FAILED)
        .filter(
            created_at__gt=Coalesce(
                OuterRef("last_success_at"), Value(_BEFORE_ANY_RUN), output_field=DateTimeField()
            )
        )
        .values("domain_id")
        .annotate(count=Count("pk"))
        .values("count")
    )
    return queryset.annotate(
        last_attempt_at=Subquery(latest_scheduled[:1], output_field=DateTimeField()),
        last_success_at=Subquery(latest_success[:1], output_field=DateTimeField()),
    ).annotate(failures=Coalesce(Subquery(failures_since), 0))


def state_of(*, settings: DirectorySettings, interval: timedelta) -> ScheduleState:
    """The state of settings annotated by with_schedule_state."""
    return ScheduleState(
        domain_id=settings.domain_id,
        failures=int(getattr(settings, "failures", 0)),
        last_attempt_at=getattr(settings, "last_attempt_at", None),
        interval=interval,
    )


def schedule_state(*, domain_id: int, interval: timedelta | None = None) -> ScheduleState:
    """A domain's state with the schedule (failures 0 and no last attempt when it has no settings)."""
    if interval is None:
        interval = sync_interval()
    annotated = with_schedule_state(queryset=DirectorySettings.objects.filter(domain_id=domain_id)).first()
    if annotated is None:
        return ScheduleState(domain_id=domain_id, failures=0, last_attempt_at=None, interval=interval)
    return state_of(settings=annotated, interval=interval)
