"""Reads for the sync history: runs, their events, an object's events, and the CSV export's rows.

A dry run is listed with the trigger "Dry run" whatever started it: the trigger filter "dry_run" selects dry
runs, and every other trigger value selects the real runs of that trigger.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone

from directory_sync.models import SignIn, SyncEvent, SyncRun
from icewarp_admin.mailserver.models import Account, Group

DRY_RUN = "dry_run"
TRIGGER_CHOICES: list[tuple[str, str]] = [*SyncRun.Trigger.choices, (DRY_RUN, "Dry run")]
COUNT_KEYS = ("created", "updated", "renamed", "removed", "unchanged", "skipped")
CSV_HEADER = [
    "run id",
    "domain",
    "trigger",
    "dry run",
    "requested by",
    "status",
    "created",
    "started",
    "finished",
    "duration s",
    *(f"accounts {key}" for key in COUNT_KEYS),
    "conflicts",
    "removals withheld",
    "warnings",
    "errors",
]
# Spreadsheet formula prefixes (OWASP "CSV injection"), tab and carriage return included.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
EMPTY = "—"


def trigger_label(run: SyncRun) -> str:
    """How a run was started, as the history shows it: "Dry run" for every dry run."""
    return "Dry run" if run.dry_run else run.get_trigger_display()


def counts_summary(run: SyncRun) -> str:
    """The run's non-zero counts in one line ("created 2 · unchanged 5"); other kinds than accounts named."""
    parts = []
    for kind, counts in (run.counts or {}).items():
        if not isinstance(counts, dict):
            continue
        prefix = "" if kind == "accounts" else f"{kind} "
        parts += [f"{prefix}{name} {value}" for name, value in counts.items() if value]
    return " · ".join(parts) or "no changes"


def run_list(
    *,
    domain: str = "",
    status: str = "",
    trigger: str = "",
    date_from: date | None = None,
    date_to: date | None = None,
) -> QuerySet[SyncRun]:
    """Runs across domains, newest first; dates are days of creation in the current time zone."""
    runs = SyncRun.objects.select_related("domain").order_by("-created_at", "-id")
    if domain:
        runs = runs.filter(domain__name=domain)
    if status:
        if status not in SyncRun.Status.values:
            raise ValueError(f"Unknown run status {status!r}.")
        runs = runs.filter(status=status)
    if trigger == DRY_RUN:
        runs = runs.filter(dry_run=True)
    elif trigger:
        if trigger not in SyncRun.Trigger.values:
            raise ValueError(f"Unknown run trigger {trigger!r}.")
        runs = runs.filter(trigger=trigger, dry_run=False)
    if date_from:
        runs = runs.filter(created_at__date__gte=date_from)
    if date_to:
        runs = runs.filter(created_at__date__lte=date_to)
    return runs


def run_events(*, run: SyncRun, search: str = "", action: str = "") -> QuerySet[SyncEvent]:
    """A run's events as recorded; the search is case-insensitive over label, DN, reason and directory id."""
    events = SyncEvent.objects.filter(run=run).select_related(
        "account__domain", "group__domain", "group__address"
    )
    if action:
        events = events.filter(action=action)
    if search:
        events = events.filter(
            Q(label__icontains=search)
            | Q(dn__icontains=search)
            | Q(reason__icontains=search)
            | Q(directory_id__icontains=search)
        )
    return events.order_by("id")


@dataclass(frozen=True)
class FieldChange:
    """One field of an event, its values already written out for people."""

    name: str
    before: str
    after: str


@dataclass(frozen=True)
class EventRow:
    """An event with its fields written out (what the run page and the object pages list)."""

    event: SyncEvent
    changes: list[FieldChange]


def event_rows(events: Iterable[SyncEvent]) -> list[EventRow]:
    return [EventRow(event=event, changes=describe_fields(event.fields)) for event in events]


def object_events(
    *, account: Account | None = None, group: Group | None = None, limit: int = 50
) -> list[EventRow]:
    """The latest events that touched one account or one group, newest first."""
    if (account is None) == (group is None):
        raise ValueError("Give exactly one of account and group.")
    events = SyncEvent.objects.select_related("run")
    events = events.filter(account=account) if account is not None else events.filter(group=group)
    return event_rows(events.order_by("-id")[:limit])


def describe_fields(fields: dict[str, Any]) -> list[FieldChange]:
    """Each field as "before → after" text; of two dicts (a vCard) only the items that differ."""
    changes = []
    for name, pair in fields.items():
        before, after = pair if isinstance(pair, list | tuple) and len(pair) == 2 else (None, pair)
        if isinstance(before, dict) and isinstance(after, dict):
            differing = [key for key in {**before, **after} if before.get(key) != after.get(key)]
            before = {key: before[key] for key in differing if key in before}
            after = {key: after[key] for key in differing if key in after}
        changes.append(FieldChange(name=name, before=describe_value(before), after=describe_value(after)))
    return changes


def describe_value(value: Any) -> str:
    """A stored value in one short line: lists comma-separated, dicts as ITEM=value items."""
    if value is None or value in ("", [], {}):
        return EMPTY
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return "; ".join(f"{key}={describe_value(item)}" for key, item in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(describe_value(item) for item in value)
    return str(value)


def neutralize(cell: str) -> str:
    """A cell a spreadsheet will not read as a formula."""
    return f"'{cell}" if cell.startswith(FORMULA_PREFIXES) else cell


def runs_csv_rows(queryset: QuerySet[SyncRun]) -> Iterator[list[str]]:
    """The header, then one row per run; every cell is text, neutralized against formula injection."""
    yield CSV_HEADER
    for run in queryset.select_related("domain").iterator(chunk_size=500):
        accounts = (run.counts or {}).get("accounts") or {}
        duration = run.duration_s
        row = [
            str(run.pk),
            run.domain.name,
            run.get_trigger_display(),
            "yes" if run.dry_run else "no",
            run.requested_by,
            run.get_status_display(),
            _timestamp(run.created_at),
            _timestamp(run.started_at),
            _timestamp(run.finished_at),
            f"{duration:.1f}" if duration is not None else "",
            *(str(accounts.get(key, "")) for key in COUNT_KEYS),
            str(run.conflicts),
            str(run.removals_withheld),
            "; ".join(str(warning) for warning in run.warnings or []),
            "; ".join(str(error) for error in run.errors or []),
        ]
        yield [neutralize(cell) for cell in row]


def _timestamp(moment: datetime | None) -> str:
    return timezone.localtime(moment).isoformat(timespec="seconds") if moment else ""


def recent_sign_ins(*, account: Account, limit: int = 10) -> list[SignIn]:
    """The account's latest sign-ins and password changes, newest first."""
    return list(SignIn.objects.filter(account=account).order_by("-at", "-id")[:limit])
