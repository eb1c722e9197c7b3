"""Reads of the console's sign-in failures and lockouts (django-axes' AccessAttempt records).

Axes counts, per user name and per address, the failures of the records whose last failure is within the
cool-off period, and refuses the sign-in when they reach the limit. These reads apply the same rule, and say
when each lockout ends: when enough of its newest failures have aged out of the period.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from axes.helpers import get_cool_off
from axes.models import AccessAttempt
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Max, QuerySet
from django.utils import timezone

LockoutKind = Literal["user", "address"]
KIND_FIELDS: dict[LockoutKind, tuple[str, str]] = {
    "user": ("username", "ip_address"),
    "address": ("ip_address", "username"),
}


@dataclass
class SignInFailures:
    """Recent failed console sign-ins of one user name or from one address."""

    kind: LockoutKind
    value: str
    failures: int = 0
    last_failure: datetime | None = None
    locked_until: datetime | None = None
    # The addresses a user name was tried from, or the user names tried from an address.
    seen_with: list[str] = field(default_factory=list)

    @property
    def locked(self) -> bool:
        return self.locked_until is not None


def sign_in_failures(*, now: datetime | None = None, limit: int = 200) -> list[SignInFailures]:
    """User names and addresses with failures within the cool-off period: the locked ones first, then the most
    recent; at most `limit` of each kind."""
    now = now or timezone.now()
    found: list[SignInFailures] = []
    for kind, (key_field, _) in KIND_FIELDS.items():
        recent = _recent(now=now).exclude(**{f"{key_field}__isnull": True})
        keys = list(
            recent.values(key_field)
            .annotate(last=Max("attempt_time"))
            .order_by("-last")
            .values_list(key_field, flat=True)[:limit]
        )
        found.extend(_summaries(kind=kind, records=recent.filter(**{f"{key_field}__in": keys}), now=now))
    found.sort(key=lambda item: (not item.locked, -(item.last_failure or now).timestamp()))
    return found


def locked_until(
    *, username: str | None, address: str | None, now: datetime | None = None
) -> datetime | None:
    """When a sign-in as that user name from that address is no longer refused (None: it is not)."""
    now = now or timezone.now()
    ends: list[datetime] = []
    wanted: dict[LockoutKind, str | None] = {"user": username, "address": address}
    for kind, value in wanted.items():
        if not value:
            continue
        records = _recent(now=now).filter(**{KIND_FIELDS[kind][0]: value})
        ends.extend(
            item.locked_until for item in _summaries(kind=kind, records=records, now=now) if item.locked_until
        )
    return max(ends, default=None)


def _recent(*, now: datetime) -> QuerySet[AccessAttempt]:
    return AccessAttempt.objects.filter(attempt_time__gte=now - _cool_off())


def _cool_off() -> timedelta:
    cool_off = get_cool_off()
    if cool_off is None:
        raise ImproperlyConfigured("AXES_COOLOFF_TIME must be set: without it a console lockout never ends")
    return cool_off


def _summaries(*, kind: LockoutKind, records: QuerySet[AccessAttempt], now: datetime) -> list[SignInFailures]:
    key_field, other_field = KIND_FIELDS[kind]
    grouped: dict[str, list[tuple[datetime, int, str | None]]] = defaultdict(list)
    for key, other, failures, when in records.values_list(
        key_field, other_field, "failures_since_start", "attempt_time"
    ):
        grouped[key].append((when, failures, other))
    summaries = []
    for key, rows in grouped.items():
        rows.sort(key=lambda row: row[0], reverse=True)
        summary = SignInFailures(kind=kind, value=key, last_failure=rows[0][0])
        for when, failures, other in rows:
            summary.failures += failures
            if other is not None and other not in summary.seen_with:
                summary.seen_with.append(other)
            # Locked while the records still in the period reach the limit: until the record that brings the
            # newest ones to the limit ages out.
            if summary.locked_until is None and summary.failures >= settings.AXES_FAILURE_LIMIT:
                ends = when + _cool_off()
                summary.locked_until = ends if ends > now else None
        summaries.append(summary)
    return summaries
