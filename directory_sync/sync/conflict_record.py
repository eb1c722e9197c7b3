"""Conflicts in and out of a run: what the planners are told (load), and the conflict rows (record).

load: the accounts of other domains linked to the ids read, the synced accounts stored with the DNs read, and
the decisions people took on earlier conflicts, in a few bulk queries.
record (real runs only): one row per open conflict, opened or brought up to date in bulk; an open conflict
that a run looked at (a full read, or its entry was read) and no longer finds is closed, "resolved by the
directory". A run can meet 100,000 conflicts: nothing here queries per object.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from directory_sync.ldap.search import dn_hash
from directory_sync.models import SyncConflict, SyncRun
from directory_sync.sync.changes import CONFLICT, Change
from directory_sync.sync.config import SyncConfig
from directory_sync.sync.contests import (
    ACCOUNT,
    ADDRESS,
    GIVEN,
    GROUP,
    KEPT_LOCAL,
    ConflictContext,
    Contest,
    Decision,
    Holder,
)
from directory_sync.sync.directory import DirectorySnapshot
from directory_sync.sync.groups import GroupChange, GroupPlan
from directory_sync.sync.planning import AccountChange, Plan
from directory_sync.sync.snapshot import CHUNK, LocalSnapshot, chunked, matching
from directory_sync.sync.writes import insert_rows, update_rows
from icewarp_admin.mailserver.models import Account, Address, Domain

OPEN, RESOLVED = SyncConflict.Status.OPEN.value, SyncConflict.Status.RESOLVED.value
BY_DIRECTORY = SyncConflict.Resolution.BY_DIRECTORY.value
Claim = tuple[str, str, str, str]  # (object type, kind, directory key, value)


def rechecked(domain_id: int) -> tuple[list[str], list[str]]:
    """Keys of the entries people acted on since the last run (accounts, groups): the run reads them again
    by id, whatever the change tracking says, so that the action takes effect now."""
    accounts: list[str] = []
    groups: list[str] = []
    for object_type, key in (
        SyncConflict.objects.filter(domain_id=domain_id, recheck=True)
        .order_by()
        .values_list("object_type", "directory_key")
    ):
        (accounts if object_type == ACCOUNT else groups).append(key)
    return accounts, groups


def load_conflict_context(
    config: SyncConfig, directory: DirectorySnapshot, local: LocalSnapshot
) -> ConflictContext:
    """What the planners need to see the conflicts of ids (sync/contests.py), and the decisions to honour."""
    if directory.says_nothing_changed():
        return ConflictContext()
    return ConflictContext(
        elsewhere=_linked_elsewhere(config, directory),
        by_dn=_synced_by_dn(config, directory, local),
        decisions=_decisions(config.domain_id),
    )


def _linked_elsewhere(config: SyncConfig, directory: DirectorySnapshot) -> dict[str, Holder]:
    keys = {person.key for person in directory.people if person.guid}
    others = list(Domain.objects.exclude(pk=config.domain_id).order_by().values_list("pk", flat=True))
    if not keys or not others:
        return {}
    # (domain, directory_guid) is indexed: both as arrays, the look-up stays on the index.
    query = Account.objects.filter(domain_id__in=others, directory_guid__isnull=False)
    columns = ("directory_guid", "pk", "username", "domain__name")
    rows: Iterable[tuple[Any, ...]] = (
        query.filter(directory_guid__anyof=sorted(keys)).order_by().values_list(*columns)
        if len(keys) <= CHUNK
        else matching(query, "directory_guid", keys, columns)
    )
    return {
        str(key): Holder(pk, str(key), f"account {username}@{domain_name}", domain_name)
        for key, pk, username, domain_name in rows
    }


def _synced_by_dn(
    config: SyncConfig, directory: DirectorySnapshot, local: LocalSnapshot
) -> dict[str, Holder]:
    """The synced accounts of this domain stored with the DNs of the entries read, by DN hash."""
    hashes = {dn_hash(person.dn) for person in directory.people}
    found: dict[str, Holder] = {}
    if not hashes:
        return found
    if directory.present_people is not None or local.identity_changed:
        # The snapshot holds every synced account already (load_local): no query.
        for linked in local.linked.values():
            hashed = linked.dn_hash or dn_hash(linked.dn)
            if hashed in hashes:
                found[hashed] = Holder(
                    linked.account_id, linked.key, f"account {linked.username}@{config.domain_name}"
                )
        return found
    accounts = Account.objects.filter(domain_id=config.domain_id, directory_guid__isnull=False).order_by()
    for batch in chunked(sorted(hashes)):
        for pk, key, hashed, username in accounts.filter(directory_dn_hash__anyof=batch).values_list(
            "pk", "directory_guid", "directory_dn_hash", "username"
        ):
            found[hashed] = Holder(pk, str(key), f"account {username}@{config.domain_name}")
    return found


def _decisions(domain_id: int) -> dict[tuple[str, str, str, str], Decision]:
    decisions: dict[tuple[str, str, str, str], Decision] = {}
    for pk, object_type, key, kind, value, resolution in (
        SyncConflict.objects.filter(domain_id=domain_id, resolution__in=(KEPT_LOCAL, GIVEN))
        .order_by("resolved_at", "pk")
        .values_list("pk", "object_type", "directory_key", "kind", "value", "resolution")
    ):
        decisions[(object_type, key, kind, value)] = Decision(resolution, pk)
    return decisions


@dataclass(frozen=True, slots=True)
class _Found:
    """One conflict of this run, with its holder as the database has it now."""

    change: Change
    contest: Contest
    holder_account_id: int | None
    holder_group_id: int | None
    holder_linked: bool
    holder_source: str


def record_conflicts(
    run: SyncRun,
    *,
    config: SyncConfig,
    directory: DirectorySnapshot,
    plan: Plan | None,
    group_plan: GroupPlan | None,
) -> None:
    """Open, update and close the domain's conflict rows after a real run (see the module docstring)."""
    changes: list[tuple[str, Sequence[Change]]] = []
    if plan is not None and config.sync_accounts:
        changes.append((ACCOUNT, plan.changes))
    if group_plan is not None:
        changes.append((GROUP, group_plan.changes))
    found: dict[Claim, tuple[Change, Contest]] = {}
    for object_type, planned in changes:
        for change in planned:
            contest = getattr(change, "contest", None)
            if change.action == CONFLICT and contest is not None:
                found[(object_type, contest.kind, change.key[:64], contest.value[:320])] = (change, contest)
    holders = _holders(config, found.values())
    now = timezone.now()
    with transaction.atomic():
        open_rows = {
            (object_type, kind, key, value): (pk, runs_seen)
            for pk, object_type, kind, key, value, runs_seen in SyncConflict.objects.filter(
                domain_id=config.domain_id, status=OPEN
            )
            .order_by()
            .values_list("pk", "object_type", "kind", "directory_key", "value", "runs_seen")
            .iterator(chunk_size=5000)
        }
        insert_rows(
            SyncConflict,
            _ROW_FIELDS,
            (_row(run, config, claim, holders[claim], now) for claim in found if claim not in open_rows),
        )
        update_rows(
            SyncConflict,
            _UPDATED_FIELDS,
            (
                (open_rows[claim][0], *_updated(run, config, holders[claim], now, open_rows[claim][1]))
                for claim in found
                if claim in open_rows
            ),
        )
        judged = _judged(config, directory, plan, group_plan)
        gone = [
            pk for claim, (pk, _) in open_rows.items() if claim not in found and judged(claim[0], claim[2])
        ]
        for batch in chunked(gone):
            SyncConflict.objects.filter(pk__in=batch, status=OPEN).update(
                status=RESOLVED,
                resolution=BY_DIRECTORY,
                resolved_at=now,
                resolved_by="",
                resolution_note="A run that read the entry found no conflict any more.",
                resolution_run=run,
                last_run=run,
            )
        done = [
            pk
            for pk, object_type, key in SyncConflict.objects.filter(domain_id=config.domain_id, recheck=True)
            .order_by()
            .values_list("pk", "object_type", "directory_key")
            if judged(object_type, key)
        ]
        for batch in chunked(done):
            SyncConflict.objects.filter(pk__in=batch).update(recheck=False)


def _judged(
    config: SyncConfig, directory: DirectorySnapshot, plan: Plan | None, group_plan: GroupPlan | None
) -> Any:
    """Whether this run looked at an object (by type and key): it read every entry, or this one."""
    people = {person.key for person in directory.people} | {e.guid for e in directory.skipped if e.guid}
    people |= set(directory.gone_people)  # an entry that left is in conflict no more
    groups = {group.key for group in directory.groups} | {e.guid for e in directory.skipped_groups if e.guid}
    groups |= set(directory.gone_groups)
    all_people = directory.full and directory.people_search.complete
    all_groups = directory.full_groups and directory.group_search.complete

    def judged(object_type: str, key: str) -> bool:
        if object_type == ACCOUNT:
            return plan is not None and config.sync_accounts and (all_people or key in people)
        return group_plan is not None and (all_groups or key in groups)

    return judged


def _holders(config: SyncConfig, found: Iterable[tuple[Change, Contest]]) -> dict[Claim, _Found]:
    """Who holds each contested value now: the owners of addresses are looked up (after the apply), the other
    holders are the planners' (checked to still exist)."""
    found = list(found)
    addresses = {contest.value for _, contest in found if contest.kind == ADDRESS}
    owners: dict[str, tuple[int | None, int | None, bool, str]] = {}
    for batch in chunked(sorted(addresses)):
        for local_part, account_id, account_key, group_id, group_key, source in (
            Address.objects.filter(domain_id=config.domain_id, local_part__anyof=batch)
            .order_by()
            .values_list(
                "local_part",
                "account_id",
                "account__directory_guid",
                "group__id",
                "group__directory_guid",
                "source",
            )
        ):
            linked = (account_key if account_id is not None else group_key) is not None
            owners[local_part] = (account_id, group_id, linked, source)
    ids = {contest.holder_account_id for _, contest in found if contest.holder_account_id is not None}
    existing: set[int] = set()
    for id_batch in chunked(sorted(ids)):
        existing.update(Account.objects.filter(pk__in=id_batch).values_list("pk", flat=True))
    result: dict[Claim, _Found] = {}
    for change, contest in found:
        object_type = GROUP if isinstance(change, GroupChange) else ACCOUNT
        claim = (object_type, contest.kind, change.key[:64], contest.value[:320])
        owner = owners.get(contest.value) if contest.kind == ADDRESS else None
        # A holder named by its directory id alone is another entry of the directory, not who has it here.
        if owner is not None and not (contest.holder_key and contest.holder_account_id is None):
            result[claim] = _Found(change, contest, *owner)
        else:
            holder_id = contest.holder_account_id if contest.holder_account_id in existing else None
            result[claim] = _Found(change, contest, holder_id, None, contest.holder_key is not None, "")
    return result


_ENTRY_FIELDS = ["dn", "label", "wanted_addresses", "wanted_username", "entry_account", "entry_group"]
_HOLDER_FIELDS = ["holder", "holder_account", "holder_group", "holder_linked", "holder_key", "holder_source"]
_ROW_FIELDS = [
    "domain", "object_type", "kind", "directory_key", "value", "status", *_ENTRY_FIELDS, *_HOLDER_FIELDS,
    "reason", "first_seen_at", "last_seen_at", "first_run", "last_run", "runs_seen", "recheck", "resolution",
    "resolved_by", "resolved_at", "resolution_note", "resolution_run",
]  # fmt: skip
# update_rows sets attributes by these names on other databases: relations by their ids.
_UPDATED_FIELDS = [
    "dn", "label", "wanted_addresses", "wanted_username", "entry_account_id", "entry_group_id", "holder",
    "holder_account_id", "holder_group_id", "holder_linked", "holder_key", "holder_source", "reason",
    "last_seen_at", "last_run_id", "runs_seen",
]  # fmt: skip


def _entry(config: SyncConfig, found: _Found) -> tuple[Any, ...]:
    change = found.change
    wanted: list[str] = []
    username = ""
    if isinstance(change, AccountChange) and change.person is not None:
        wanted = [f"{part}@{config.domain_name}" for part in change.person.local_parts]
        username = change.person.username
    elif isinstance(change, GroupChange) and change.group is not None:
        wanted = [f"{change.group.alias}@{config.domain_name}"]
    account = change.object_id if isinstance(change, AccountChange) else None
    group = change.object_id if isinstance(change, GroupChange) else None
    return (change.dn, change.label[:320], wanted, username[:64], account, group)


def _holder(found: _Found) -> tuple[Any, ...]:
    contest = found.contest
    return (
        contest.holder[:500],
        found.holder_account_id,
        found.holder_group_id,
        found.holder_linked,
        (contest.holder_key or "")[:64],
        found.holder_source,
    )


def _row(run: SyncRun, config: SyncConfig, claim: Claim, found: _Found, now: Any) -> tuple[Any, ...]:
    object_type, kind, key, value = claim
    return (
        config.domain_id, object_type, kind, key, value, OPEN, *_entry(config, found), *_holder(found),
        found.change.reason, now, now, run.pk, run.pk, 1, False, "", "", None, "", None,
    )  # fmt: skip


def _updated(run: SyncRun, config: SyncConfig, found: _Found, now: Any, runs_seen: int) -> tuple[Any, ...]:
    return (*_entry(config, found), *_holder(found), found.change.reason, now, run.pk, runs_seen + 1)
