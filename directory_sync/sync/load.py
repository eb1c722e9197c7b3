"""Read the directory once per run: paged, only the attributes the mapping needs, mapped as they come."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from directory_sync.ldap import DirectoryError, DirectorySession
from directory_sync.ldap.entries import Entry
from directory_sync.sync.config import SyncConfig
from directory_sync.sync.groups import DirectoryGroup, map_group
from directory_sync.sync.guard import SearchOutcome
from directory_sync.sync.people import SkippedEntry
from icewarp_admin.mailserver.models import Group

# A search that ends with one of these still returned trustworthy entries; anything else fails the run.
PARTIAL_KINDS = {"search", "size_limit", "referral"}


@dataclass
class Snapshot:
    entries: list[Entry] = field(default_factory=list)
    search: SearchOutcome = field(default_factory=lambda: SearchOutcome(complete=True))


def load_people(
    session: DirectorySession, config: SyncConfig, *, on_progress: Callable[[int], None] | None = None
) -> Snapshot:
    """Every entry under the DN that matches the user filter, as the directory returned it.

    A lost connection or a timeout raises (the run fails and nothing is applied); a search the server ended
    early (size limit, an error result, a referral) returns what it read, marked incomplete.
    """
    snapshot = Snapshot()
    binary = [config.guid_attribute] if config.guid_is_binary else []
    try:
        for entry in session.paged_search(
            config.base_dn,
            config.account_filter,
            config.account_attributes(),
            page_size=config.page_size,
            binary_attributes=binary,
        ):
            snapshot.entries.append(entry)
            if on_progress is not None and len(snapshot.entries) % 250 == 0:
                on_progress(len(snapshot.entries))
    except DirectoryError as error:
        if error.kind not in PARTIAL_KINDS:
            raise
        snapshot.search = SearchOutcome(
            complete=False,
            problem=error.message,
            absence_means_gone=error.kind != "referral",
            entries_matched=len(snapshot.entries),
        )
    else:
        snapshot.search = SearchOutcome(complete=True, entries_matched=len(snapshot.entries))
    if on_progress is not None:
        on_progress(len(snapshot.entries))
    return snapshot


@dataclass
class GroupSnapshot:
    groups: list[DirectoryGroup] = field(default_factory=list)
    skipped: list[SkippedEntry] = field(default_factory=list)
    search: SearchOutcome = field(default_factory=lambda: SearchOutcome(complete=True))
    duplicates: int = 0


def load_groups(session: DirectorySession, config: SyncConfig) -> GroupSnapshot:
    """Group entries (group filter) and mailing lists (mailing-list filter), mapped; same failure rules."""
    snapshot = GroupSnapshot()
    searches = []
    if config.sync_groups and config.group_filter:
        searches.append((config.group_filter, Group.Kind.GROUP))
    if config.sync_mailing_lists:
        searches.append((config.mailing_list_filter, Group.Kind.MAILING_LIST))
    binary = [config.guid_attribute] if config.guid_is_binary else []
    seen: set[str] = set()
    read = 0
    for search_filter, kind in searches:
        try:
            for entry in session.paged_search(
                config.base_dn, search_filter, config.group_attributes(), page_size=config.page_size,
                binary_attributes=binary,
            ):  # fmt: skip
                read += 1
                mapped = map_group(entry, config, kind=kind)
                if isinstance(mapped, SkippedEntry):
                    snapshot.skipped.append(mapped)
                elif mapped.key in seen:
                    snapshot.duplicates += 1
                else:
                    seen.add(mapped.key)
                    snapshot.groups.append(mapped)
        except DirectoryError as error:
            if error.kind not in PARTIAL_KINDS:
                raise
            snapshot.search = SearchOutcome(
                complete=False, problem=error.message, absence_means_gone=error.kind != "referral",
                entries_matched=read,
            )  # fmt: skip
            return snapshot
    snapshot.search = SearchOutcome(complete=True, entries_matched=read)
    return snapshot
