"""Reads for the sync history: runs, their events and warnings, an object's events, and the CSV export's rows.

A run is what it is (a dry run or a synchronization) and was started by a trigger: the trigger filter selects
the runs of a trigger, dry or not, and the kind filter dry runs or real ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.text import capfirst

from directory_sync.models import SignIn, SyncEvent, SyncRun
from icewarp_admin.mailserver.models import Account, Group
from icewarp_admin.mailserver.personal_data import VCARD_ITEMS

TRIGGER_CHOICES: list[tuple[str, str]] = list(SyncRun.Trigger.choices)
DRY, REAL = "dry", "real"
KIND_CHOICES = [(DRY, "Dry runs only"), (REAL, "Real runs only")]
COUNT_KEYS = ("created", "updated", "renamed", "disabled", "removed", "unchanged", "skipped")
# Groups are never disabled pending removal (no mailbox to keep): their CSV columns leave it out.
CSV_COUNT_KEYS = {"accounts": COUNT_KEYS, "groups": tuple(key for key in COUNT_KEYS if key != "disabled")}
COUNT_KINDS = ("accounts", "groups")
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
    *(f"{kind} {key}" for kind in COUNT_KINDS for key in CSV_COUNT_KEYS[kind]),
    "conflicts",
    "removals withheld",
    "warnings",
    "errors",
]
# Spreadsheet formula prefixes (OWASP "CSV injection"), tab and carriage return included.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
EMPTY = "—"
# Names of event fields that are not model fields, or whose verbose name is only the attribute's name.
EVENT_FIELD_LABELS = {
    "alias": "Address",
    "aliases": "Addresses",
    "directory_dn": "Directory DN",
    "directory_id": "Directory id",
    "vcard": "Personal data (vCard)",
    "members": "Members",
    "members_added": "Members added",
    "members_removed": "Members removed",
}
WARNING_OBJECTS_SHOWN = 10


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
    kind: str = "",
    date_from: date | None = None,
    date_to: date | None = None,
) -> QuerySet[SyncRun]:
    """Runs across domains, newest first; dates are days of creation in the current time zone.

    trigger: the runs it started, dry or real; kind: "dry" or "real" runs only.
    """
    runs = SyncRun.objects.select_related("domain").order_by("-created_at", "-id")
    if domain:
        runs = runs.filter(domain__name=domain)
    if status:
        if status not in SyncRun.Status.values:
            raise ValueError(f"Unknown run status {status!r}.")
        runs = runs.filter(status=status)
    if trigger:
        if trigger not in SyncRun.Trigger.values:
            raise ValueError(f"Unknown run trigger {trigger!r}.")
        runs = runs.filter(trigger=trigger)
    if kind:
        if kind not in (DRY, REAL):
            raise ValueError(f"Unknown kind of run {kind!r}.")
        runs = runs.filter(dry_run=kind == DRY)
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
    """One field of an event, its name and values already written out for people (name: as stored)."""

    name: str
    label: str
    before: str
    after: str


@dataclass(frozen=True)
class RunWarning:
    """A warning of a run as its page shows it: what happened, and the first objects it names (all of those
    kept when expanded)."""

    index: int
    summary: str
    objects: list[str]
    total: int  # how many objects there are
    kept: int  # how many the run kept (the first OBJECTS_KEPT)
    action: str  # the events of the run that list them, if any
    expanded: bool

    @property
    def more(self) -> bool:
        return not self.expanded and self.kept > len(self.objects)


def run_warnings(
    run: SyncRun, *, expanded: int | None = None, shown: int = WARNING_OBJECTS_SHOWN
) -> list[RunWarning]:
    """The run's warnings, each with the objects it names: the first few, or every one kept (expanded)."""
    details = run.warning_objects if isinstance(run.warning_objects, dict) else {}
    found = []
    for index, text in enumerate(run.warnings or []):
        detail = details.get(str(index))
        if not isinstance(detail, dict):
            found.append(RunWarning(index, str(text), [], 0, 0, "", False))
            continue
        objects = [str(name) for name in detail.get("objects") or []]
        whole = index == expanded
        found.append(
            RunWarning(
                index=index,
                summary=str(detail.get("summary") or text),
                objects=objects if whole else objects[:shown],
                total=int(detail.get("total") or len(objects)),
                kept=len(objects),
                action=str(detail.get("action") or ""),
                expanded=whole,
            )
        )
    return found


@dataclass(frozen=True)
class EventRow:
    """An event with its fields written out (what the run page and the object pages list)."""

    event: SyncEvent
    changes: list[FieldChange]


def event_rows(events: Iterable[SyncEvent]) -> list[EventRow]:
    return [
        EventRow(
            event=event,
            changes=describe_fields(
                event.fields, model=Group if event.object_type == SyncEvent.ObjectType.GROUP else Account
            ),
        )
        for event in events
    ]


def object_events(
    *, account: Account | None = None, group: Group | None = None, limit: int = 50
) -> list[EventRow]:
    """The latest events that touched one account or one group, newest first."""
    if (account is None) == (group is None):
        raise ValueError("Give exactly one of account and group.")
    events = SyncEvent.objects.select_related("run")
    events = events.filter(account=account) if account is not None else events.filter(group=group)
    return event_rows(events.order_by("-id")[:limit])


def describe_fields(fields: dict[str, Any], *, model: type[models.Model] | None = None) -> list[FieldChange]:
    """Each field as "before → after" text; of two dicts (a vCard) only the items that differ. With the model
    of the object (Account, Group), fields are named by their verbose names and choices by their labels."""
    changes = []
    for name, pair in fields.items():
        before, after = pair if isinstance(pair, list | tuple) and len(pair) == 2 else (None, pair)
        if isinstance(before, dict) and isinstance(after, dict):
            differing = [key for key in {**before, **after} if before.get(key) != after.get(key)]
            before = {key: before[key] for key in differing if key in before}
            after = {key: after[key] for key in differing if key in after}
        if name == "vcard":
            before, after = vcard_labels(before), vcard_labels(after)
        field = _model_field(model, name)
        changes.append(
            FieldChange(
                name=name,
                label=field_label(model, name),
                before=describe_value(before, field=field),
                after=describe_value(after, field=field),
            )
        )
    return changes


def vcard_labels(vcard: Any) -> Any:
    """Personal data keyed by the labels of the account page ("Work phone", not TEL;TYPE=PREF,WORK,VOICE)."""
    if not isinstance(vcard, dict):
        return vcard
    labels = dict(VCARD_ITEMS)
    return {labels.get(item, item): value for item, value in vcard.items()}


def field_label(model: type[models.Model] | None, name: str) -> str:
    """An event field's name for people: the model field's verbose name, capitalized."""
    if name in EVENT_FIELD_LABELS:
        return EVENT_FIELD_LABELS[name]
    field = _model_field(model, name)
    verbose = getattr(field, "verbose_name", None) or name.replace("_", " ")
    return str(capfirst(str(verbose)))


def _model_field(model: type[models.Model] | None, name: str) -> Any:
    if model is None:
        return None
    try:
        return model._meta.get_field(name)
    except FieldDoesNotExist:
        return None


def describe_value(value: Any, *, field: Any = None) -> str:
    """A stored value in one short line: Yes/No, a choice's label, lists comma-separated, dicts as
    "item: value" items."""
    if value is None or value in ("", [], {}):
        return EMPTY
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, dict):
        return "; ".join(f"{key}: {describe_value(item)}" for key, item in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(describe_value(item) for item in value)
    choices = dict(getattr(field, "flatchoices", None) or ())
    if isinstance(value, str) and value in choices:
        return str(choices[value])
    return str(value)


def neutralize(cell: str) -> str:
    """A cell a spreadsheet will not read as a formula."""
    return f"'{cell}" if cell.startswith(FORMULA_PREFIXES) else cell


def runs_csv_rows(queryset: QuerySet[SyncRun]) -> Iterator[list[str]]:
    """The header, then one row per run; every cell is text, neutralized against formula injection."""
    yield CSV_HEADER
    for run in queryset.select_related("domain").iterator(chunk_size=500):
        counts = run.counts if isinstance(run.counts, dict) else {}
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
            *(
                str((counts.get(kind) or {}).get(key, ""))
                for kind in COUNT_KINDS
                for key in CSV_COUNT_KEYS[kind]
            ),
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
