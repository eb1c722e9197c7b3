"""The record phase: one event per object a run touched (or, in a dry run, would touch), written in bulk."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from directory_sync.models import SyncEvent, SyncRun
from directory_sync.sync.changes import REMOVE, Change, ChangeSet, MemberRef
from directory_sync.sync.groups import GroupChange
from directory_sync.sync.guard import GuardDecision
from directory_sync.sync.planning import AccountChange
from directory_sync.sync.snapshot import chunked
from directory_sync.sync.writes import insert_rows
from icewarp_admin.mailserver.models import Address

EVENT_FIELDS = [
    "run",
    "object_type",
    "action",
    "label",
    "directory_id",
    "dn",
    "account",
    "group",
    "fields",
    "reason",
]
MEMBER_FIELDS = ("members_added", "members_removed")


class Labels:
    """The address people know an account or group by, for the member lists of group events."""

    def __init__(self, domain_id: int, known: Mapping[str, str]) -> None:
        self.domain_id = domain_id
        self.known = dict(known)

    def learn(self, refs: Iterable[MemberRef], domain_name: str) -> None:
        """Look up, in bulk, the addresses of the members not named by this run."""
        unknown = {value for kind, value in refs if kind != "remote" and value not in self.known}
        for batch in chunked(sorted(unknown)):
            for key, local_part in (
                Address.objects.filter(
                    domain_id=self.domain_id, account__directory_guid__anyof=batch, position=0
                )
                .order_by()
                .values_list("account__directory_guid", "local_part")
            ):
                self.known[str(key)] = f"{local_part}@{domain_name}"
            for key, local_part in (
                Address.objects.filter(domain_id=self.domain_id, group__directory_guid__anyof=batch)
                .order_by()
                .values_list("group__directory_guid", "local_part")
            ):
                self.known[str(key)] = f"{local_part}@{domain_name}"

    def describe(self, refs: Iterable[Any]) -> list[str]:
        return sorted(
            value if kind == "remote" else self.known.get(value, f"{kind} {value}") for kind, value in refs
        )


def record_events(
    run: SyncRun,
    changes: ChangeSet[Any],
    decision: GuardDecision,
    object_type: str,
    *,
    created: Mapping[str, int],
    labels: Labels | None = None,
) -> int:
    """Write the events of one plan exactly as planned; returns how many."""
    if labels is not None:
        labels.learn(
            (ref for change in changes.changes if isinstance(change, GroupChange)
             for ref in (*change.add_members, *change.removed_members)),
            run.domain.name,
        )  # fmt: skip
    account = object_type == SyncEvent.ObjectType.ACCOUNT
    return insert_rows(SyncEvent, EVENT_FIELDS, _rows(run, changes.changes, decision, object_type, account,
                                                     created, labels))  # fmt: skip


def _rows(
    run: SyncRun,
    changes: list[Change],
    decision: GuardDecision,
    object_type: str,
    account: bool,
    created: Mapping[str, int],
    labels: Labels | None,
) -> Iterator[tuple[Any, ...]]:
    for change in changes:
        action = change.action
        if action == REMOVE and not decision.allows(change.key):
            action = SyncEvent.Action.WITHHELD
        elif action == REMOVE and isinstance(change, AccountChange) and change.pending_until is not None:
            action = SyncEvent.Action.DISABLE  # the account stays (disabled) until its grace period ends
        # A removed object is gone: its event keeps the label and directory id, not a dangling link.
        object_id = (
            None if action == REMOVE and not run.dry_run else change.object_id or created.get(change.key)
        )
        fields = {}
        if isinstance(change, AccountChange):
            changed = change.event_fields(run.domain.name)
        elif isinstance(change, GroupChange):
            changed = change.event_fields()
        else:
            changed = change.fields
        for name, (old, new) in changed.items():
            if name in MEMBER_FIELDS and labels is not None:
                fields[name] = [labels.describe(old), labels.describe(new)]
            else:
                fields[name] = [_jsonable(old), _jsonable(new)]
        yield (
            run.pk,
            object_type,
            action,
            change.label[:320],
            change.key[:64],
            change.dn,
            object_id if account else None,
            None if account else object_id,
            fields,
            decision.reason if action == SyncEvent.Action.WITHHELD else change.reason,
        )


def _jsonable(value: Any) -> Any:
    if type(value) in (str, int, bool, dict) or value is None:
        return value
    if isinstance(value, tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    return value
