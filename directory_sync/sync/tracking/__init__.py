"""How a run learns what changed since the last one: one interface, three ways.

- Active Directory: uSNChanged above the mark of the same controller, tombstones for deletions (usn.py).
- OpenLDAP and other RFC 4533 servers: a syncrepl refresh from the stored cookie (syncrepl.py).
- Anything else with a modifyTimestamp: entries stamped since the mark, and an id-only scan for removals
  (timestamps.py).

A tracker reads a position before the searches (the mark the next run continues from), then streams the
changed entries to the run's sinks and reports what left. A position it cannot continue from means a full
read.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from directory_sync.ldap import BulkSession, DirectoryError, Entry
from directory_sync.sync.config import SyncConfig
from directory_sync.sync.guard import SearchOutcome

# A search that ends with one of these still returned trustworthy entries; anything else fails the run.
PARTIAL_KINDS = frozenset({"search", "size_limit", "referral"})


class Sinks(Protocol):
    """Where changed entries go as they arrive (mapped at once: the whole directory is never held twice)."""

    def person(self, entry: Entry) -> None: ...

    def group(self, entry: Entry, kind: str) -> None: ...


@dataclass
class Changes:
    """What a tracker reported besides the entries it streamed."""

    gone_people: dict[str, str] = field(default_factory=dict)  # key → why it left
    gone_groups: dict[str, str] = field(default_factory=dict)
    # The ids of everything the filter matches now, when the tracker learned them (a syncrepl present phase,
    # an id scan): synced objects not among them left.
    present_people: set[str] | None = None
    present_groups: set[str] | None = None
    people_search: SearchOutcome = field(
        default_factory=lambda: SearchOutcome(complete=True, incremental=True)
    )
    group_search: SearchOutcome = field(
        default_factory=lambda: SearchOutcome(complete=True, incremental=True)
    )


class LostPosition(Exception):
    """The directory cannot continue from the stored position: the run reads everything instead."""


class Tracker(ABC):
    name: str

    @abstractmethod
    def position(self, session: BulkSession, config: SyncConfig) -> dict[str, Any] | None:
        """Where the directory's changes stand now (None: it cannot say)."""

    def resumes(self, cursor: dict[str, Any], position: dict[str, Any]) -> bool:
        """Whether the changes since the stored cursor can be asked of the server at this position."""
        return cursor.get("kind") == self.name and cursor.get("server") == position.get("server")

    @abstractmethod
    def changes(
        self, session: BulkSession, config: SyncConfig, cursor: dict[str, Any], sinks: Sinks
    ) -> Changes:
        """Stream what changed since the cursor into the sinks; report what left."""


def group_searches(config: SyncConfig) -> Iterator[tuple[str, str]]:
    """(filter, kind) of each group search the settings ask for."""
    from icewarp_admin.mailserver.models import Group

    if config.sync_groups and config.group_filter:
        yield config.group_filter, Group.Kind.GROUP
    if config.sync_mailing_lists:
        yield config.mailing_list_filter, Group.Kind.MAILING_LIST


def partial(error: DirectoryError, *, read: int, incremental: bool) -> SearchOutcome:
    """The outcome of a search the server ended early (re-raises what is not such an ending)."""
    if error.kind not in PARTIAL_KINDS:
        raise error
    return SearchOutcome(
        complete=False,
        problem=error.message,
        absence_means_gone=error.kind != "referral",
        entries_matched=read,
        incremental=incremental,
    )


def tracker_for(config: SyncConfig, session: BulkSession) -> Tracker | None:
    """The way this directory reports changes (None: every run reads everything)."""
    from directory_sync.choices import ServerType
    from directory_sync.sync.tracking.syncrepl import SyncreplTracker
    from directory_sync.sync.tracking.timestamps import TimestampTracker, is_timestamp
    from directory_sync.sync.tracking.usn import UsnTracker

    if config.profile.server_type == ServerType.ACTIVE_DIRECTORY:
        return UsnTracker()
    root = session.root_dse()
    if root.syncrepl and config.guid_attribute.lower() == "entryuuid":
        return SyncreplTracker()
    if is_timestamp(config.change_stamp_attribute):
        return TimestampTracker()
    return None
