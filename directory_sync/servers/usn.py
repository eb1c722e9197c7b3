"""Active Directory change tracking: what changed since the last run, by uSNChanged on the same controller.

A domain controller numbers every change it commits (USN). A run remembers the controller, its database's
invocationId and highestCommittedUSN read before its searches; the next run asks only for objects whose
uSNChanged is above that mark, and for the tombstones of objects deleted since (show-deleted control). Another
controller, a restored database (new invocationId) or a lost mark means a full read.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from directory_sync.ldap import DirectoryError, DirectorySession, Entry
from directory_sync.sync.config import SyncConfig
from directory_sync.sync.guard import SearchOutcome

PARTIAL_KINDS = {"search", "size_limit", "referral"}


@dataclass(frozen=True)
class UsnPosition:
    """Where a controller's change numbering stood."""

    server: str
    invocation_id: str
    usn: int

    def to_json(self) -> dict[str, Any]:
        return {"server": self.server, "invocation_id": self.invocation_id, "usn": self.usn}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> UsnPosition | None:
        try:
            return cls(
                server=str(data["server"]), invocation_id=str(data["invocation_id"]), usn=int(data["usn"])
            )
        except (KeyError, TypeError, ValueError):
            return None

    def continues(self, earlier: UsnPosition | None) -> bool:
        """Whether changes since `earlier` can be asked of this controller (same one, same database)."""
        return (
            earlier is not None
            and earlier.server.lower() == self.server.lower()
            and earlier.invocation_id == self.invocation_id
            and earlier.usn <= self.usn
        )


def read_position(session: DirectorySession) -> UsnPosition | None:
    """The controller's identity and highestCommittedUSN now (None when the server is not AD-like)."""
    root = session.read_entry("", ["highestCommittedUSN", "dsServiceName", "dnsHostName", "serverName"])
    if root is None:
        return None
    usn_text, service = root.first("highestCommittedUSN"), root.first("dsServiceName")
    server = root.first("dnsHostName") or root.first("serverName")
    if not isinstance(usn_text, str) or not isinstance(service, str) or not isinstance(server, str):
        return None
    settings = session.read_entry(service, ["invocationId"], binary_attributes=["invocationId"])
    raw = settings.first("invocationId") if settings else None
    if not isinstance(raw, bytes) or len(raw) != 16:
        return None
    return UsnPosition(server=server, invocation_id=str(uuid.UUID(bytes_le=raw)), usn=int(usn_text))


@dataclass
class UsnChanges:
    entries: list[Entry] = field(default_factory=list)  # changed users in the DN matching the filter: in full
    touched: set[str] = field(
        default_factory=set
    )  # ids of every object changed since, anywhere in the domain
    deleted: set[str] = field(default_factory=set)  # ids of objects deleted since
    search: SearchOutcome = field(default_factory=lambda: SearchOutcome(complete=True, incremental=True))


def changes_since(
    session: DirectorySession, config: SyncConfig, *, since: int, naming_context: str
) -> UsnChanges:
    """Three small searches instead of reading every user again."""
    changes = UsnChanges()
    above = f"(uSNChanged>={since + 1})"
    binary = [config.guid_attribute] if config.guid_is_binary else []

    def key(entry: Entry) -> str | None:
        raw = entry.first(config.guid_attribute)
        return config.profile.decode_guid(raw, is_binary=config.guid_is_binary) if raw else None

    try:
        for entry in session.paged_search(
            config.base_dn, f"(&{config.account_filter}{above})", config.account_attributes(),
            page_size=config.page_size, binary_attributes=binary,
        ):  # fmt: skip
            changes.entries.append(entry)
        # Objects that changed but are no longer users of this DN and filter (moved out, filtered out).
        for entry in session.paged_search(
            naming_context or config.base_dn, above, [config.guid_attribute], page_size=1000,
            binary_attributes=binary,
        ):  # fmt: skip
            if (found := key(entry)) is not None:
                changes.touched.add(found)
        for entry in session.paged_search(
            naming_context or config.base_dn, f"(&(isDeleted=TRUE){above})", [config.guid_attribute],
            page_size=1000, binary_attributes=binary, show_deleted=True,
        ):  # fmt: skip
            if (found := key(entry)) is not None:
                changes.deleted.add(found)
    except DirectoryError as error:
        if error.kind not in PARTIAL_KINDS:
            raise
        changes.search = SearchOutcome(
            complete=False, problem=error.message, absence_means_gone=error.kind != "referral",
            entries_matched=len(changes.entries), incremental=True,
        )  # fmt: skip
    return changes


def full_read_due(last_full: str | None, now: datetime, *, every_hours: int = 24) -> bool:
    """A full read at least daily: a safety net under change tracking (a missed tombstone, a restore)."""
    if not last_full:
        return True
    try:
        previous = datetime.fromisoformat(last_full)
    except ValueError:
        return True
    return (now - previous).total_seconds() >= every_hours * 3600
