"""The read phase: what the directory says, as one snapshot of plain data, mapped as it streams in.

A full read takes every user and group entry (an entry whose change stamp is the one stored is not even
mapped). An incremental read asks the tracker for what changed since the stored position, then reads again the
objects changed here since the last run and the groups whose members changed, so that the planner sees every
group whose membership may differ.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from directory_sync.ldap import BulkSession, DirectoryError, Entry
from directory_sync.ldap.filters import any_of, escape_value
from directory_sync.ldap.search import dn_hash
from directory_sync.sync.changes import OU_KEY_PREFIX
from directory_sync.sync.config import SyncConfig
from directory_sync.sync.groups import DirectoryGroup, map_group
from directory_sync.sync.guard import SearchOutcome
from directory_sync.sync.people import DirectoryPerson, SeenPerson, SkippedEntry, Triage, entry_key
from directory_sync.sync.tracking import (
    Changes,
    LostPosition,
    Tracker,
    group_searches,
    partial,
    tracker_for,
)

ID_BATCH = 100  # ids or member values per filter of a follow-up search
PROGRESS_EVERY = 1000


@dataclass
class DirectorySnapshot:
    """What the directory said this run.

    full: every user entry was read (the user search's ids are the whole content); full_groups: likewise for
    groups. Otherwise only changes were read: gone_* name what left, and present_* (when the tracker learned
    it) holds every id the filter matches now.
    """

    full: bool
    full_groups: bool
    people: list[DirectoryPerson] = field(default_factory=list)  # mapped: new, changed, or compared in full
    unchanged: list[SeenPerson] = field(default_factory=list)  # full read: same stamp as stored, not mapped
    skipped: list[SkippedEntry] = field(default_factory=list)
    present_people: set[str] | None = None
    gone_people: dict[str, str] = field(default_factory=dict)
    people_search: SearchOutcome = field(default_factory=lambda: SearchOutcome(complete=True))
    groups: list[DirectoryGroup] = field(default_factory=list)
    skipped_groups: list[SkippedEntry] = field(default_factory=list)
    present_groups: set[str] | None = None
    gone_groups: dict[str, str] = field(default_factory=dict)
    group_search: SearchOutcome = field(default_factory=lambda: SearchOutcome(complete=True))
    duplicates: int = 0  # entries matched by both the group and the mailing-list filter
    without_guid: int = 0
    missing_stamp: int = 0
    missing_stamp_dns: list[str] = field(default_factory=list)  # the first of them
    entries_read: int = 0
    tracking: str = ""  # how the changes were learned, for the run record
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # follow-up reads that failed: the read is incomplete
    next_cursor: dict[str, Any] | None = None  # what the next run continues from, once this one is applied

    def says_nothing_changed(self) -> bool:
        """An incremental read that found no change at all (nor anything edited here)."""
        return not (
            self.full
            or self.people
            or self.unchanged
            or self.skipped
            or self.groups
            or self.skipped_groups
            or self.gone_people
            or self.gone_groups
            or self.present_people is not None
            or self.present_groups is not None
        )

    def absent_groups(self, synced_keys: Iterable[str]) -> dict[str, str]:
        """The synced groups that left, by why: reported gone, or missing from the ids the tracker listed."""
        gone = dict(self.gone_groups)
        if self.present_groups is not None:
            read = {group.key for group in self.groups}
            reason = "the entry is gone from the directory, or left the DN or the group filter"
            gone.update(
                (key, reason)
                for key in synced_keys
                if key not in self.present_groups and key not in read and not key.startswith(OU_KEY_PREFIX)
            )
        return gone

    def absent(self, synced_keys: Iterable[str]) -> set[str]:
        """The synced keys whose entry the directory no longer has (deleted, moved out, filtered out)."""
        read = {person.key for person in self.people} | {entry.guid for entry in self.skipped if entry.guid}
        if self.present_people is None:
            return {key for key in synced_keys if key in self.gone_people and key not in read}
        return {key for key in synced_keys if key not in self.present_people and key not in read}


@dataclass
class ReadContext:
    """What the read needs to know of the domain and of the last run."""

    cursor: dict[str, Any]
    may_resume: bool  # False: settings changed, first run, daily safety net, approval...
    full_reason: str
    compare_all: bool  # map every entry even when its stamp is the stored one
    last_read: datetime | None
    stamps: Callable[[], Mapping[str, str]]  # key → stored stamp of the synced accounts (full reads only)
    edited_here: Callable[[], tuple[list[str], list[str]]]  # keys of accounts and groups changed here
    groups_holding: Callable[[Iterable[str]], list[str]]  # keys of the synced groups that hold these accounts
    stored_links: Callable[[Iterable[str]], dict[str, tuple[str, str]]]  # key → (DN hash, uid) stored


class _Collector:
    """The sinks: people go through the triage, groups are mapped; each object is taken once."""

    def __init__(
        self, snapshot: DirectorySnapshot, triage: Triage, config: SyncConfig, progress: Callable[[int], None]
    ) -> None:
        self.snapshot, self.triage, self.config, self.progress = snapshot, triage, config, progress
        self.group_keys: set[str] = set()
        self.person_keys: set[str] = set()

    def person(self, entry: Entry, *, again: bool = False) -> None:
        """again: a second look (an account changed here): skipped when the entry was read already. Two
        entries of one read with the same id are both kept: the planner reports them as a conflict."""
        key = entry_key(entry, self.config)
        if again and key in self.person_keys:
            return
        if key is not None:
            self.person_keys.add(key)
        self.triage.add(entry, compare=again, key=key)
        self._tick()

    def group(self, entry: Entry, kind: str, *, again: bool = False) -> None:
        mapped = map_group(entry, self.config, kind=kind)
        self._tick()
        if isinstance(mapped, SkippedEntry):
            self.snapshot.skipped_groups.append(mapped)
        elif mapped.key in self.group_keys:
            self.snapshot.duplicates += not again
        else:
            self.group_keys.add(mapped.key)
            self.snapshot.groups.append(mapped)

    def _tick(self) -> None:
        self.snapshot.entries_read += 1
        if self.snapshot.entries_read % PROGRESS_EVERY == 0:
            self.progress(self.snapshot.entries_read)


def read_directory(
    session: BulkSession, config: SyncConfig, context: ReadContext, *, progress: Callable[[int], None]
) -> DirectorySnapshot:
    """Read what this run needs: only the changes when the stored position allows, else everything."""
    tracker = tracker_for(config, session)
    position = tracker.position(session, config) if tracker else None
    reason = context.full_reason
    if tracker is None:
        reason = (
            f"full read: the server reports no changes (no syncrepl, USN or timestamp "
            f"{config.change_stamp_attribute})"
        )
    elif position is None:
        reason = "full read: the server did not give a position to continue from"
    elif context.may_resume and tracker.resumes(context.cursor, position):
        try:
            snapshot = _incremental(session, config, context, tracker, progress)
        except LostPosition as lost:
            reason = f"full read: {lost}"
        else:
            snapshot.next_cursor = position
            progress(snapshot.entries_read)
            return snapshot
    elif context.may_resume:
        reason = "full read: the stored position is from another server or database"
    snapshot = _full(session, config, context, progress)
    snapshot.tracking = reason
    snapshot.next_cursor = position
    progress(snapshot.entries_read)
    return snapshot


def _full(
    session: BulkSession, config: SyncConfig, context: ReadContext, progress: Callable[[int], None]
) -> DirectorySnapshot:
    """Every user and group entry, paged, mapped as it comes (unless its stamp is the stored one)."""
    snapshot = DirectorySnapshot(full=True, full_groups=True)
    triage = Triage(
        config, {} if context.compare_all else context.stamps(), context.compare_all, context.last_read
    )
    sinks = _Collector(snapshot, triage, config, progress)
    binary = [config.guid_attribute] if config.guid_is_binary else []
    try:
        for entry in session.paged_search(
            config.base_dn, config.account_filter, config.account_attributes(), page_size=config.page_size,
            binary_attributes=binary,
        ):  # fmt: skip
            sinks.person(entry)
    except DirectoryError as error:
        snapshot.people_search = partial(error, read=triage.read, incremental=False)
    else:
        snapshot.people_search = SearchOutcome(complete=True, entries_matched=triage.read)
    read = 0
    try:
        for search_filter, kind in group_searches(config):
            for entry in session.paged_search(
                config.base_dn, search_filter, config.group_attributes(), page_size=config.page_size,
                binary_attributes=binary,
            ):  # fmt: skip
                read += 1
                sinks.group(entry, kind)
    except DirectoryError as error:
        snapshot.group_search = partial(error, read=read, incremental=False)
    else:
        snapshot.group_search = SearchOutcome(complete=True, entries_matched=read)
    _take_triage(snapshot, triage)
    snapshot.present_people = {person.key for person in snapshot.people}
    snapshot.present_people |= {person.key for person in snapshot.unchanged}
    snapshot.present_people |= {entry.guid for entry in snapshot.skipped if entry.guid}
    return snapshot


def _incremental(
    session: BulkSession,
    config: SyncConfig,
    context: ReadContext,
    tracker: Tracker,
    progress: Callable[[int], None],
) -> DirectorySnapshot:
    """The changes since the stored position, the objects changed here, and the groups their members touch."""
    snapshot = DirectorySnapshot(full=False, full_groups=False)
    triage = Triage(config, {}, True, context.last_read)
    sinks = _Collector(snapshot, triage, config, progress)
    changes: Changes = tracker.changes(session, config, context.cursor, sinks)
    snapshot.tracking = {"usn": "USN", "syncrepl": "syncrepl", "timestamps": "modifyTimestamp"}[tracker.name]
    snapshot.gone_people, snapshot.gone_groups = changes.gone_people, changes.gone_groups
    snapshot.present_people, snapshot.present_groups = changes.present_people, changes.present_groups
    snapshot.people_search, snapshot.group_search = changes.people_search, changes.group_search

    accounts_here, groups_here = context.edited_here()
    _read_by_id(session, config, [key for key in accounts_here if key not in sinks.person_keys], sinks)
    _take_triage(snapshot, triage)
    _read_groups_by_id(session, config, [key for key in groups_here if key not in sinks.group_keys], sinks)

    # Groups whose members may resolve differently now: only entries that are new here, or known by another DN
    # or uid than before, change what a group's member list means (an edited title does not).
    stored = context.stored_links(person.key for person in snapshot.people)
    moved = [
        person for person in snapshot.people if stored.get(person.key) != (dn_hash(person.dn), person.uid)
    ]
    # The groups that list them by their new DN or uid (a group may have named them before they qualified) ...
    named = {entry.dn for entry in snapshot.skipped} | {person.dn for person in moved}
    _read_groups_listing(session, config, sorted(named), sorted({p.uid for p in moved if p.uid}), sinks)
    # ... and those that hold them now, which may list them by the old DN: servers whose referential integrity
    # rewrites member values do it without a new change stamp, others leave a stale DN that resolves to
    # nobody. (A departed account's memberships go with it: its groups need no second look.)
    holding = context.groups_holding(person.key for person in moved if person.key in stored)
    _read_groups_by_id(session, config, [key for key in holding if key not in sinks.group_keys], sinks)
    return snapshot


def _take_triage(snapshot: DirectorySnapshot, triage: Triage) -> None:
    snapshot.people, snapshot.skipped, snapshot.unchanged = triage.people, triage.skipped, triage.unchanged
    snapshot.without_guid, snapshot.missing_stamp = triage.without_guid, triage.missing_stamp
    snapshot.missing_stamp_dns = triage.missing_stamp_dns


def _id_filters(config: SyncConfig, keys: list[str]) -> Iterable[str]:
    for start in range(0, len(keys), ID_BATCH):
        batch = keys[start : start + ID_BATCH]
        yield any_of(
            [config.profile.id_assertion(config.guid_attribute, key, is_binary=config.guid_is_binary)
             for key in batch]
        )  # fmt: skip


def _read_by_id(session: BulkSession, config: SyncConfig, keys: list[str], sinks: _Collector) -> None:
    """The user entries with these ids (accounts changed here), compared in full whatever their stamp."""
    binary = [config.guid_attribute] if config.guid_is_binary else []
    for ids in _id_filters(config, [key for key in keys if not key.startswith("mail:")]):
        try:
            for entry in session.paged_search(
                config.base_dn, f"(&{config.account_filter}{ids})", config.account_attributes(),
                page_size=config.page_size, binary_attributes=binary,
            ):  # fmt: skip
                sinks.person(entry, again=True)
        except DirectoryError as error:
            partial(error, read=0, incremental=True)  # a lost connection fails the run
            sinks.snapshot.errors.append(
                f"Accounts changed here could not be read again ({error.message}): they are put back at the "
                "next run."
            )


def _read_groups_by_id(session: BulkSession, config: SyncConfig, keys: list[str], sinks: _Collector) -> None:
    keys = [key for key in keys if not key.startswith(("mail:", "ou:"))]
    for ids in _id_filters(config, keys):
        _group_search(session, config, ids, sinks)


def _read_groups_listing(
    session: BulkSession, config: SyncConfig, dns: list[str], uids: list[str], sinks: _Collector
) -> None:
    values = [f"(member={escape_value(dn)})" for dn in dns] + [
        f"(uniqueMember={escape_value(dn)})" for dn in dns
    ]
    values += [f"(memberUid={escape_value(uid)})" for uid in uids]
    for start in range(0, len(values), ID_BATCH * 2):
        _group_search(session, config, any_of(values[start : start + ID_BATCH * 2]), sinks)


def _group_search(session: BulkSession, config: SyncConfig, restriction: str, sinks: _Collector) -> None:
    binary = [config.guid_attribute] if config.guid_is_binary else []
    for search_filter, kind in group_searches(config):
        try:
            for entry in session.paged_search(
                config.base_dn, f"(&{search_filter}{restriction})", config.group_attributes(),
                page_size=config.page_size, binary_attributes=binary,
            ):  # fmt: skip
                sinks.group(entry, kind, again=True)
        except DirectoryError as error:
            partial(error, read=0, incremental=True)  # a lost connection fails the run
            sinks.snapshot.errors.append(
                f"Some groups whose members changed could not be read ({error.message}): they are compared "
                "at the next full read."
            )


__all__ = ["DirectorySnapshot", "LostPosition", "ReadContext", "read_directory"]
