"""One object through the same reading, rules, planner and guard as every run: for explain and sync-one.

find: the entry a query names (a DN by a base read; a directory id; an address or a login searched under the
base DN without the user filter, which is then tested on that entry alone, so that "not matched by the filter"
can be said) and the account or group here that it names, so that "the directory no longer has it" can be.
snapshot: what a run of just this object reads, shaped as a read of changes: the loader then takes only what
the object touches (sync/snapshot.py) and the planner compares only it. A person comes with the groups that
list it or hold it here, for its own memberships.
narrow: the plans cut down to that object (and a person's memberships of groups that exist here). The guard
still decides a removal, and a removal an earlier run withheld stays withheld until it is decided on that run.
examine: the whole of it without writing anything, for the explain.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from django.core.exceptions import ValidationError

from directory_sync.ldap import BulkSession, DirectoryError, DirectorySession, Entry
from directory_sync.ldap.filters import DnError, any_of, dn_is_within, dn_rdns, escape_value
from directory_sync.ldap.search import dn_hash, normalize_dn
from directory_sync.models import SyncEvent
from directory_sync.rules.addresses import Qualified, candidate_addresses, qualifying_local_parts
from directory_sync.sync.changes import CONFLICT, REMOVE, RENAME, SKIP, UPDATE, Change
from directory_sync.sync.config import SyncConfig
from directory_sync.sync.directory import DirectorySnapshot
from directory_sync.sync.groups import DirectoryGroup, GroupChange, GroupPlan, map_group, ou_groups
from directory_sync.sync.guard import GuardDecision, SearchOutcome
from directory_sync.sync.people import (
    DirectoryPerson,
    SkippedEntry,
    TextValues,
    Triage,
    entry_key,
    login_alias,
)
from directory_sync.sync.planning import AccountChange, Plan
from directory_sync.sync.snapshot import LocalSnapshot, groups_holding
from directory_sync.sync.tracking import group_searches, partial
from icewarp_admin.mailserver.models import Account, Address, Group
from icewarp_admin.mailserver.validators import normalize_local_part

if TYPE_CHECKING:
    pass

Session = DirectorySession | BulkSession

ACCOUNT = SyncEvent.ObjectType.ACCOUNT.value
GROUP = SyncEvent.ObjectType.GROUP.value
BY_DN, BY_ID, BY_NAME = "DN", "directory id", "address or login"
# What an address or a login may be in: searched without the user filter (proxyAddresses as smtp:, which AD
# matches whatever the prefix's case). An attribute a server does not know matches nothing there.
NAME_ATTRIBUTES = ("mail", "otherMailbox", "uid", "sAMAccountName", "userPrincipalName", "cn")
GROUP_CLASSES = frozenset({"group", "groupofnames", "groupofuniquenames", "posixgroup"})
_ID = re.compile(r"^\{?[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\}?$", re.IGNORECASE)
MAX_QUERY = 1000
ENTRIES_SHOWN = 10  # the entries a query may match before it is said to be ambiguous


class QueryError(ValueError):
    """The query cannot be looked up; the message says what to type."""


class NothingFound(Exception):
    """Sync-one: the query names no entry and no synced object (or several entries); the message says so."""


@dataclass(frozen=True)
class LocalObject:
    """An account or group of the domain that a query or an entry names."""

    object_type: str
    id: int
    key: str | None  # its directory id; None: it exists only here
    dn: str
    label: str  # the address people know it by
    name: str  # the username, or the group's alias (its page's URL)


@dataclass(frozen=True)
class Found:
    """What a query names: the entry as the directory returns it now, and the object here."""

    query: str
    how: str  # BY_DN, BY_ID, BY_NAME
    entry: Entry | None
    key: str | None  # the entry's directory id
    in_base: bool
    user_filter: bool  # the entry matches the user filter (tested on the entry alone)
    group_kinds: tuple[str, ...]  # the kinds of group (group, mailing list) whose filter it matches
    local: LocalObject | None
    candidates: tuple[str, ...] = ()  # several entries match: their DNs (none was taken)
    notes: tuple[str, ...] = ()

    @property
    def object_type(self) -> str | None:
        """Account or group: as synced here, else as the filters or, failing them, the entry says."""
        if self.local is not None and self.local.key is not None:
            return self.local.object_type
        if self.entry is not None:
            if self.user_filter:
                return ACCOUNT
            if self.group_kinds:
                return GROUP
            classes = {str(value).lower() for value in self.entry.get("objectClass")}
            looks_like_group = classes & GROUP_CLASSES or any(
                self.entry.has(name) for name in ("member", "uniqueMember", "memberUid")
            )
            return GROUP if looks_like_group else ACCOUNT
        return self.local.object_type if self.local is not None else None

    @property
    def label(self) -> str:
        if self.local is not None and self.local.key is not None:
            return self.local.label
        return self.entry.dn if self.entry is not None else self.query

    @property
    def nothing(self) -> str:
        """Why there is nothing to synchronize ("" when there is)."""
        if self.candidates:
            return (
                f"“{self.query}” matches {len(self.candidates)} directory entries "
                f"({'; '.join(self.candidates[:3])}): give the DN or the directory id of the one you mean."
            )
        if self.entry is None and (self.local is None or self.local.key is None):
            return f"No directory entry and no synced account or group matches “{self.query}”."
        return ""


@dataclass
class OneObjectSnapshot(DirectorySnapshot):
    """A read of one object (see the module docstring): a snapshot of changes the planner takes as it is."""

    target: Found | None = None
    keys: frozenset[str] = frozenset()  # the object's directory id(s)
    member_of: list[DirectoryGroup] = field(default_factory=list)  # the groups that list a person now
    held: dict[str, str] = field(default_factory=dict)  # key → why its removal stays withheld

    def guarded(self, decision: GuardDecision, removals: list[str]) -> GuardDecision:
        """The guard's decision, and a removal an earlier run withheld is still waiting for its decision."""
        waiting = [key for key in removals if key in self.held]
        if not waiting or not decision.allow_removals:
            return decision
        return GuardDecision(allow_removals=False, withheld=len(removals), reason=self.held[waiting[0]])


def guard_one(directory: DirectorySnapshot, decision: GuardDecision, removals: list[str]) -> GuardDecision:
    """For the runner's guard: a one-object run keeps an earlier run's withheld removal withheld."""
    if isinstance(directory, OneObjectSnapshot):
        return directory.guarded(decision, removals)
    return decision


# --------------------------------------------------------------------------- find


def clean_query(query: str) -> str:
    text = query.strip()
    if not text:
        raise QueryError("Type a login, an address, a DN or a directory id.")
    if len(text) > MAX_QUERY:
        raise QueryError(f"The query is {len(text):,} characters long: type at most {MAX_QUERY:,}.")
    if any(ord(char) < 32 for char in text):
        raise QueryError("The query holds control characters: type it on one line.")
    return text


def _is_dn(text: str) -> bool:
    if "=" not in text or ("@" in text and "," not in text):
        return False
    try:
        return bool(dn_rdns(text))
    except DnError:
        return False


def find(session: Session, config: SyncConfig, query: str) -> Found:
    """The entry and the object here that a query names (module docstring); reads, never writes."""
    text = clean_query(query)
    entries: list[Entry]
    notes: list[str] = []
    if _is_dn(text):
        how, local = BY_DN, _local_by_dn(config, text)
        entry = session.read_entry(text, _attributes(config), binary_attributes=_binary(config))
        entries = [entry] if entry is not None else []
    elif _ID.match(text):
        key = text.strip("{}").lower()
        how, local = BY_ID, _local_by_key(config, key)
        entries = _by_id(session, config, key)
    else:
        how, local = BY_NAME, _local_by_name(config, text)
        entries = []
        if local is not None and local.key and not local.key.startswith("mail:"):
            entries = _by_id(session, config, local.key)
            if not entries:
                # Its own entry is gone: the account is what was asked about; another entry may have the name.
                notes += [
                    f"The directory entry {other.dn} has “{text}” now (another directory id)."
                    for other in _by_name(session, config, text)
                ]
        else:
            entries = _by_name(session, config, text)

    entries = list({normalize_dn(entry.dn): entry for entry in entries}.values())
    if len(entries) > 1:
        linked = [entry for entry in entries if local is not None and entry_key(entry, config) == local.key]
        if len(linked) != 1:
            dns = tuple(sorted(entry.dn for entry in entries))
            return Found(text, how, None, None, False, False, (), local, candidates=dns)
        entries = linked
    if not entries:
        return Found(text, how, None, None, False, False, (), local, notes=tuple(notes))

    entry = entries[0]
    entry_id = entry_key(entry, config)
    linked_here = _local_by_key(config, entry_id) if entry_id else None
    if linked_here is None and local is not None:
        what = "exists only here" if local.key is None else f"is linked to the directory id {local.key}"
        notes.append(f"The {local.object_type} {local.label} here {what}, not to this entry.")
    user_filter = _matches(session, config, entry.dn, config.account_filter)
    kinds = tuple(
        kind
        for search_filter, kind in group_searches(config)
        if _matches(session, config, entry.dn, search_filter)
    )
    return Found(
        query=text,
        how=how,
        entry=entry,
        key=entry_id,
        in_base=dn_is_within(entry.dn, config.base_dn),
        user_filter=user_filter,
        group_kinds=kinds,
        local=linked_here,
        notes=tuple(notes),
    )


def _attributes(config: SyncConfig) -> list[str]:
    """What the sync reads of a user or a group entry (never *: see is_secret_attribute)."""
    return list(
        {name.lower(): name for name in (*config.account_attributes(), *config.group_attributes())}.values()
    )


def _binary(config: SyncConfig) -> list[str]:
    return [config.guid_attribute] if config.guid_is_binary else []


def _search(session: Session, config: SyncConfig, base: str, search_filter: str) -> list[Entry]:
    return list(
        session.paged_search(
            base, search_filter, _attributes(config), page_size=ENTRIES_SHOWN, size_limit=ENTRIES_SHOWN,
            binary_attributes=_binary(config),
        )
    )  # fmt: skip


def _search_everywhere(session: Session, config: SyncConfig, search_filter: str) -> list[Entry]:
    """Under the base DN, else in the rest of the naming context that holds it (to say "outside the DN")."""
    found = _search(session, config, config.base_dn, search_filter)
    if found:
        return found
    for context in _outer_contexts(session, config):
        try:
            found = _search(session, config, context, search_filter)
        except DirectoryError as error:
            if error.kind in ("timeout", "connection_lost"):
                raise
            continue  # a part of the tree the bind user may not read: not where the base DN is
        if found:
            return found
    return []


def _outer_contexts(session: Session, config: SyncConfig) -> list[str]:
    """The naming contexts that hold the base DN (without being it)."""
    root = session.root_dse()
    contexts = [root.default_naming_context] if root.default_naming_context else root.naming_contexts
    base, outer = normalize_dn(config.base_dn), []
    for context in contexts:
        try:
            if normalize_dn(context) != base and dn_is_within(config.base_dn, context):
                outer.append(context)
        except DnError:
            continue
    return outer


def _by_id(session: Session, config: SyncConfig, key: str) -> list[Entry]:
    try:
        assertion = config.profile.id_assertion(config.guid_attribute, key, is_binary=config.guid_is_binary)
    except ValueError:
        return []
    return _search_everywhere(session, config, assertion)


def _by_name(session: Session, config: SyncConfig, text: str) -> list[Entry]:
    value = escape_value(text)
    items = [f"({name}={value})" for name in NAME_ATTRIBUTES] + [f"(proxyAddresses=smtp:{value})"]
    if "@" not in text:
        items.append(f"(mail={escape_value(f'{text}@{config.domain_name}')})")
    return _search_everywhere(session, config, any_of(items))


def _matches(session: Session, config: SyncConfig, dn: str, search_filter: str) -> bool:
    """Whether the filter matches this one entry (a base search)."""
    for _ in session.paged_search(
        dn, search_filter, [config.guid_attribute], page_size=1, scope="base", size_limit=1,
        binary_attributes=_binary(config),
    ):  # fmt: skip
        return True
    return False


def _local_object(obj: Account | Group, domain_name: str) -> LocalObject:
    if isinstance(obj, Account):
        primary = obj.aliases.order_by("position", "id").values_list("local_part", flat=True).first()
        label = f"{primary or obj.username}@{domain_name}"
        return LocalObject(ACCOUNT, obj.pk, obj.directory_guid, obj.directory_dn, label, obj.username)
    alias = obj.address.local_part
    return LocalObject(GROUP, obj.pk, obj.directory_guid, obj.directory_dn, f"{alias}@{domain_name}", alias)


def _first(config: SyncConfig, **lookup: str) -> LocalObject | None:
    """The account, else the group, of the domain with these directory fields."""
    account = Account.objects.filter(domain_id=config.domain_id, **lookup).first()
    if account is not None:
        return _local_object(account, config.domain_name)
    group = Group.objects.filter(domain_id=config.domain_id, **lookup).select_related("address").first()
    return _local_object(group, config.domain_name) if group is not None else None


def _local_by_key(config: SyncConfig, key: str) -> LocalObject | None:
    return _first(config, directory_guid=key)


def _local_by_dn(config: SyncConfig, dn: str) -> LocalObject | None:
    try:
        hashed = dn_hash(dn)
    except DnError:
        return None
    return _first(config, directory_dn_hash=hashed)


def _local_by_name(config: SyncConfig, text: str) -> LocalObject | None:
    """The account or group with this address, alias or username (an address of a domain rewritten here
    counts as this domain's)."""
    local_part, at, domain = text.rpartition("@")
    if at and domain.strip().lower() not in {config.domain_name, *config.accepted.rewritten}:
        return None
    try:
        part = normalize_local_part(local_part if at else text)
    except ValidationError:
        return None
    address = Address.objects.filter(domain_id=config.domain_id, local_part=part).first()
    if address is not None and address.account_id is not None:
        return _local_object(Account.objects.get(pk=address.account_id), config.domain_name)
    if address is not None:
        group = Group.objects.filter(address=address).select_related("address").first()
        if group is not None:
            return _local_object(group, config.domain_name)
    if at:
        return None
    account = Account.objects.filter(domain_id=config.domain_id, username=part).first()
    return _local_object(account, config.domain_name) if account is not None else None


# --------------------------------------------------------------------------- snapshot


def read_one(
    session: Session, config: SyncConfig, query: str, *, identity_changed: bool
) -> OneObjectSnapshot:
    """The read phase of a run of one object; NothingFound when the query names nothing to synchronize."""
    if identity_changed:
        raise NothingFound(
            f"The id attribute changed since the last run ({config.guid_attribute} now): synchronize the "
            "whole domain first, so that every account is linked again."
        )
    try:
        found = find(session, config, query)
    except QueryError as error:
        raise NothingFound(str(error)) from error
    if found.nothing:
        raise NothingFound(found.nothing)
    return snapshot_of(session, config, found)


def snapshot_of(session: Session, config: SyncConfig, found: Found) -> OneObjectSnapshot:
    """What a run of just this object reads (module docstring)."""
    snapshot = OneObjectSnapshot(full=False, full_groups=False, target=found)
    snapshot.tracking = f"one object: {found.label}"[:120]
    snapshot.people_search = SearchOutcome(complete=True, incremental=True)
    snapshot.group_search = SearchOutcome(complete=True, incremental=True)
    entry = found.entry
    linked = found.local.key if found.local is not None else None
    if found.object_type == GROUP:
        _group_target(session, config, found, snapshot, linked)
    else:
        _person_target(session, config, found, snapshot, linked)
    snapshot.keys = frozenset(key for key in (found.key, linked) if key)
    for key in snapshot.keys:
        snapshot.held.update(_held(config, key))
    snapshot.entries_read += entry is not None
    return snapshot


def _person_target(
    session: Session, config: SyncConfig, found: Found, snapshot: OneObjectSnapshot, linked: str | None
) -> None:
    entry = found.entry
    if not config.sync_accounts:
        return
    if entry is not None and found.in_base and found.user_filter:
        triage = Triage(config, {}, True, None)
        triage.add(entry, compare=True, key=found.key)
        snapshot.people, snapshot.skipped = triage.people, triage.skipped
        snapshot.without_guid, snapshot.missing_stamp = triage.without_guid, triage.missing_stamp
        snapshot.missing_stamp_dns = triage.missing_stamp_dns
        snapshot.people_search = SearchOutcome(complete=True, entries_matched=1)
        if snapshot.people:
            _memberships(session, config, snapshot, snapshot.people[0])
    elif linked is not None:
        snapshot.gone_people = {linked: _gone_reason(found, config, "user filter")}
        snapshot.people_search = _probe(session, config, [config.account_filter])


def _group_target(
    session: Session, config: SyncConfig, found: Found, snapshot: OneObjectSnapshot, linked: str | None
) -> None:
    entry = found.entry
    filters = list(group_searches(config))
    if not filters:
        return  # groups are not synchronized: a run leaves the synced ones as they are
    if entry is not None and found.in_base and found.group_kinds:
        mapped = map_group(entry, config, kind=found.group_kinds[0])
        snapshot.group_search = SearchOutcome(complete=True, entries_matched=1)
        if isinstance(mapped, DirectoryGroup):
            snapshot.groups = [mapped]
            return
        snapshot.skipped_groups = [mapped]
        if linked is not None:
            snapshot.gone_groups = {linked: f"the entry no longer belongs here: {mapped.reason}"}
    elif linked is not None:
        snapshot.gone_groups = {linked: _gone_reason(found, config, "group filter")}
        snapshot.group_search = _probe(session, config, [search_filter for search_filter, _ in filters])


def _gone_reason(found: Found, config: SyncConfig, which: str) -> str:
    if found.entry is None:
        return "the entry is gone from the directory (no entry has its directory id)"
    if not found.in_base:
        return f"the entry left the DN {config.base_dn} (it is at {found.entry.dn})"
    return f"the entry no longer matches the {which}"


def _probe(session: Session, config: SyncConfig, filters: list[str]) -> SearchOutcome:
    """Whether the filters still match anything: the guard keeps the one removal when they match nothing
    while objects are synced (a wrong DN or filter looks like everyone gone)."""
    try:
        for search_filter in filters:
            for _ in session.paged_search(
                config.base_dn, search_filter, [config.guid_attribute], page_size=1, size_limit=1,
                binary_attributes=_binary(config),
            ):  # fmt: skip
                return SearchOutcome(complete=True, entries_matched=1)
    except DirectoryError as error:
        return partial(error, read=0, incremental=False)
    return SearchOutcome(complete=True, entries_matched=0)


def _memberships(
    session: Session, config: SyncConfig, snapshot: OneObjectSnapshot, person: DirectoryPerson
) -> None:
    """The groups that list the person now, and those that hold its account here (it may have left them)."""
    values = [f"(member={escape_value(person.dn)})", f"(uniqueMember={escape_value(person.dn)})"]
    if person.uid:
        values.append(f"(memberUid={escape_value(person.uid)})")
    restrictions = [any_of(values)]
    held = [
        key for key in groups_holding(config.domain_id, [person.key]) if not key.startswith(("mail:", "ou:"))
    ]
    if held:
        restrictions.append(
            any_of(
                [
                    config.profile.id_assertion(config.guid_attribute, key, is_binary=config.guid_is_binary)
                    for key in held
                ]
            )
        )
    groups: dict[str, DirectoryGroup] = {}
    try:
        for restriction in restrictions:
            for search_filter, kind in group_searches(config):
                for entry in session.paged_search(
                    config.base_dn, f"(&{search_filter}{restriction})", config.group_attributes(),
                    page_size=config.page_size, binary_attributes=_binary(config),
                ):  # fmt: skip
                    snapshot.entries_read += 1
                    mapped = map_group(entry, config, kind=kind)
                    if isinstance(mapped, DirectoryGroup):
                        groups.setdefault(mapped.key, mapped)
    except DirectoryError as error:
        partial(error, read=0, incremental=True)  # a lost connection fails the run
        snapshot.errors.append(
            f"The groups of {person.dn} could not be read ({error.message}): its memberships are compared at "
            "the next run."
        )
        return
    snapshot.groups = list(groups.values())
    dn = normalize_dn(person.dn)
    snapshot.member_of = [
        group
        for group in snapshot.groups
        if dn in group.member_dns or (person.uid and person.uid in group.member_uids)
    ]


def _held(config: SyncConfig, key: str) -> dict[str, str]:
    """A removal of this object that the last real run about it withheld, and that waits for its decision."""
    event = (
        SyncEvent.objects.filter(run__domain_id=config.domain_id, run__dry_run=False, directory_id=key[:64])
        .select_related("run")
        .order_by("-id")
        .first()
    )
    if (
        event is None
        or event.action != SyncEvent.Action.WITHHELD
        or event.run.withheld_resolution == "approved"
    ):
        return {}
    if event.run.withheld_resolution == "dismissed":
        return {key: f"Its removal was withheld by run #{event.run_id} and dismissed there ({event.reason})"}
    waiting = f"Its removal was withheld by run #{event.run_id} and waits for an approval there"
    return {key: f"{waiting} ({event.reason})"}


# --------------------------------------------------------------------------- narrow


def narrow_local(directory: DirectorySnapshot, local: LocalSnapshot) -> None:
    """A one-object run answers for its own object only: other accounts whose pending removal is due are
    not read by it, so they are no business of its planner (the next run reads them again by id)."""
    if isinstance(directory, OneObjectSnapshot):
        local.due &= directory.keys


def narrow(
    directory: DirectorySnapshot, local: LocalSnapshot, plan: Plan, group_plan: GroupPlan | None
) -> tuple[Plan, GroupPlan | None]:
    """A one-object run's plans cut down to its object (nothing changes for any other run)."""
    if not isinstance(directory, OneObjectSnapshot):
        return plan, group_plan
    keys = directory.keys
    plan.changes = [change for change in plan.changes if change.key in keys]
    plan.unchanged = int(bool(directory.people) and not plan.changes)
    if group_plan is None:
        return plan, None
    target = directory.target
    if target is not None and target.object_type == GROUP:
        group_plan.changes = [change for change in group_plan.changes if change.key in keys]
        ids = {local.groups[key].id for key in keys if key in local.groups}
        group_plan.restamped = [row for row in group_plan.restamped if row[0] in ids]
        group_plan.unchanged = int(bool(directory.groups) and not group_plan.changes)
        return plan, group_plan
    # A person: its memberships of groups that exist here, and nothing else of those groups.
    refs = {("account", key) for key in keys}
    label = target.label if target is not None else ""
    kept: list[GroupChange] = []
    for change in group_plan.changes:
        existing = local.groups.get(change.key)
        if change.action not in (UPDATE, RENAME) or change.group is None or existing is None:
            continue
        added = frozenset(ref for ref in change.add_members if ref in refs)
        removed = [
            (ref, member_id)
            for ref, member_id in zip(change.removed_members, change.remove_member_ids, strict=True)
            if ref in refs
        ]
        if not added and not removed:
            continue
        # The group as it is here: the apply writes back its own name, DN and stamp, not the directory's.
        as_here = replace(
            change.group,
            name=existing.name,
            kind=existing.kind,
            dn=existing.dn,
            change_stamp=existing.change_stamp,
        )
        kept.append(
            replace(
                change, action=UPDATE, fields={}, group=as_here, add_members=added,
                removed_members=tuple(ref for ref, _ in removed),
                remove_member_ids=tuple(member_id for _, member_id in removed),
                reason=f"the membership of {label} (a synchronization of that one object)",
            )
        )  # fmt: skip
    group_plan.changes = kept
    group_plan.restamped, group_plan.unchanged = [], 0
    group_plan.warnings, group_plan.errors = [], []
    # The run looked at these groups only: the record judges their conflicts, not the others'.
    touched = {change.key for change in kept}
    directory.groups = [group for group in directory.groups if group.key in touched]
    return plan, group_plan


# --------------------------------------------------------------------------- examine


@dataclass
class Examination:
    """One object as a run would see and plan it now (nothing written)."""

    found: Found
    directory: OneObjectSnapshot | None = None
    plan: Plan | None = None
    decision: GuardDecision | None = None
    group_plan: GroupPlan | None = None
    group_decision: GuardDecision | None = None
    labels: dict[str, str] = field(default_factory=dict)  # group member keys → addresses, for the diff

    @property
    def person(self) -> DirectoryPerson | None:
        return self.directory.people[0] if self.directory and self.directory.people else None

    @property
    def skipped(self) -> SkippedEntry | None:
        if self.directory is None:
            return None
        skipped = [*self.directory.skipped, *self.directory.skipped_groups]
        return skipped[0] if skipped else None

    @property
    def group(self) -> DirectoryGroup | None:
        target = self.found
        if self.directory is None or target.object_type != GROUP or not self.directory.groups:
            return None
        return self.directory.groups[0]

    @property
    def change(self) -> Change | None:
        """The object's own planned change (an account's or a group's), if any: a skipped entry whose account
        goes has two, and the removal is what becomes of it."""
        changes: list[Change] = []
        if self.found.object_type == GROUP and self.group_plan is not None:
            changes += self.group_plan.changes
        elif self.found.object_type != GROUP and self.plan is not None:
            changes += self.plan.changes
        acting = [change for change in changes if change.action != SKIP]
        return next(iter(acting or changes), None)

    @property
    def memberships(self) -> list[GroupChange]:
        """A person's membership changes (groups that exist here)."""
        if self.found.object_type == GROUP or self.group_plan is None:
            return []
        return list(self.group_plan.changes)

    def removal_withheld(self) -> str:
        """Why the guard keeps the object's planned removal ("" when none is planned or it may go)."""
        change = self.change
        decision = self.group_decision if self.found.object_type == GROUP else self.decision
        if change is None or change.action != REMOVE or decision is None or decision.allows(change.key):
            return ""
        return decision.reason or "the guard withholds it"


def examine(session: Session, config: SyncConfig, query: str) -> Examination:
    """Find, read and plan one object exactly as a run of it would, without writing anything."""
    from directory_sync.sync import runner  # runner imports this module for its one-object runs

    found = find(session, config, query)
    examination = Examination(found)
    if found.nothing:
        return examination
    directory = snapshot_of(session, config, found)
    planned = runner.plan_and_guard(directory, config, identity_changed=False, approved=None)
    examination.directory, examination.plan, examination.decision = directory, planned.plan, planned.decision
    examination.group_plan, examination.group_decision = planned.group_plan, planned.group_decision
    return examination


# --------------------------------------------------------------------------- why


@dataclass(frozen=True)
class Exclusion:
    """Which rule keeps the object out (or, for "disabled", what it makes of it), in words."""

    code: str
    reason: str


def addresses_of(entry: Entry, config: SyncConfig) -> tuple[list[tuple[str, str, bool]], Qualified]:
    """The entry's candidate addresses (address, where from, accepted here) and what qualifies: the rules'
    own functions, as the mapping calls them."""
    values = TextValues.of(entry)
    candidates = candidate_addresses(
        mail=values.all("mail"),
        other_mailbox=values.all("otherMailbox"),
        proxy_addresses=values.all("proxyAddresses"),
    )
    qualified = qualifying_local_parts(
        candidates, config.accepted, login_alias=login_alias(values) if config.add_login_to_aliases else ""
    )
    shown = [
        (
            candidate.address,
            candidate.source,
            config.accepted.accepts(candidate.address.rpartition("@")[2].strip().lower()),
        )
        for candidate in candidates
    ]
    return shown, qualified


def exclusion(examination: Examination, config: SyncConfig) -> Exclusion | None:
    """The first rule that keeps the object out, as a run applies them: found, DN, filter, domain and address,
    conflict, guard; or, for an entry that is synchronized, that the directory disables it."""
    found = examination.found
    if found.candidates:
        return Exclusion("ambiguous", found.nothing)
    kind = found.object_type
    if found.entry is None:
        if found.local is None:
            return Exclusion(
                "not_found",
                f"No directory entry matches “{found.query}”, and no account or group here has it.",
            )
        if found.local.key is None:
            return Exclusion(
                "not_found",
                f"The {found.local.object_type} {found.local.label} exists only here (no directory link), "
                f"and no directory entry matches “{found.query}”.",
            )
        return _gone(
            examination, f"The directory no longer has it: no entry has its directory id {found.local.key}."
        )
    if kind == ACCOUNT and not config.sync_accounts:
        return Exclusion(
            "sync_off", "Synchronizing users is switched off for this domain (Advanced section)."
        )
    if kind == GROUP and not list(group_searches(config)):
        return Exclusion(
            "sync_off", "Synchronizing groups and mailing lists is switched off for this domain."
        )
    if not found.in_base:
        return _gone(
            examination,
            f"Outside the DN: {found.entry.dn} is not under the base DN {config.base_dn}.",
            "outside_dn",
        )
    if kind == ACCOUNT and not found.user_filter:
        reason = f"Not matched by the user filter {config.account_filter}."
        if config.profile.has_disabled_flag and config.profile.is_account_disabled(found.entry.attributes):
            reason += " The entry is disabled in the directory (userAccountControl)."
        return _gone(examination, reason, "filter")
    if kind == GROUP and not found.group_kinds:
        filters = " or ".join(search_filter for search_filter, _ in group_searches(config))
        return _gone(examination, f"Not matched by the group filter {filters}.", "filter")
    skipped = examination.skipped
    if skipped is not None:
        code = "invalid"
        if kind == ACCOUNT:
            _, qualified = addresses_of(found.entry, config)
            if not qualified.local_parts:
                code = "foreign_domain" if qualified.foreign else "no_address"
        else:
            values = TextValues.of(found.entry)
            offered = candidate_addresses(
                mail=values.all("mail"), other_mailbox=[], proxy_addresses=values.all("proxyAddresses")
            )
            code = "foreign_domain" if offered else "invalid"  # as map_group skips a group
        return _gone(examination, f"Skipped: {skipped.reason}.", code)
    change = examination.change
    if change is not None and change.action == CONFLICT:
        holder = getattr(change, "contest", None)
        who = f" (held by {holder.holder})" if holder is not None and holder.holder else ""
        return Exclusion("conflict", f"A conflict{who}: {change.reason}.")
    if change is not None and change.action == SKIP:
        return Exclusion("kept_local", f"Skipped: {change.reason}.")
    person = examination.person
    if person is not None and person.enabled is False:
        return Exclusion(
            "disabled", "Disabled in the directory (userAccountControl): the account here is disabled too."
        )
    return None


def _gone(examination: Examination, reason: str, code: str = "gone") -> Exclusion:
    """An exclusion; when the object is synced here, what becomes of it (removed, or kept by the guard)."""
    change = examination.change
    if change is None or change.action != REMOVE:
        return Exclusion(code, reason)
    withheld = examination.removal_withheld()
    if withheld:
        return Exclusion("withheld", f"{reason} Its removal is withheld: {withheld}")
    return Exclusion(
        code, f"{reason} What a run does with the {examination.found.object_type} here: {change.reason}."
    )


def member_labels(refs: Iterable[tuple[str, str]], labels: dict[str, str]) -> list[str]:
    return sorted(value if kind == "remote" else labels.get(value, f"{kind} {value}") for kind, value in refs)


def nearest_ou_group(person: DirectoryPerson, config: SyncConfig) -> DirectoryGroup | None:
    """The OU group the person is a member of (the hierarchical address book), when OU groups are on."""
    if not config.create_ou_groups:
        return None
    for group in ou_groups([person], config):
        if ("account", person.key) in group.members:
            return group
    return None


__all__ = [
    "AccountChange",
    "Examination",
    "Exclusion",
    "Found",
    "NothingFound",
    "OneObjectSnapshot",
    "QueryError",
    "examine",
    "exclusion",
    "find",
    "guard_one",
    "narrow",
    "narrow_local",
    "read_one",
]
