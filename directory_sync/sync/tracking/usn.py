"""Active Directory: what changed since the last run, by uSNChanged on the same controller.

A domain controller numbers every change it commits (USN). A run remembers the controller, its database's
invocationId and the highestCommittedUSN read before its searches; the next run asks only for objects whose
uSNChanged is above that mark, and for the tombstones of objects deleted since (show-deleted control). Another
controller (a failover to the backup host), a restored database (new invocationId) or a lost mark means a full
read.
"""

from __future__ import annotations

import uuid
from typing import Any

from directory_sync.ldap import BulkSession, DirectoryError
from directory_sync.sync.config import SyncConfig
from directory_sync.sync.people import entry_key
from directory_sync.sync.tracking import Changes, LostPosition, Sinks, Tracker, group_searches, partial

ID_PAGE = 1000


class UsnTracker(Tracker):
    name = "usn"

    def position(self, session: BulkSession, config: SyncConfig) -> dict[str, Any] | None:
        root = session.read_entry("", ["highestCommittedUSN", "dsServiceName", "dnsHostName", "serverName"])
        if root is None:
            return None
        usn, service = root.first("highestCommittedUSN"), root.first("dsServiceName")
        server = root.first("dnsHostName") or root.first("serverName")
        if not isinstance(usn, str) or not isinstance(service, str) or not isinstance(server, str):
            return None
        settings = session.read_entry(service, ["invocationId"], binary_attributes=["invocationId"])
        raw = settings.first("invocationId") if settings else None
        if not isinstance(raw, bytes) or len(raw) != 16:
            return None
        return {
            "kind": self.name,
            "server": server.lower(),
            "invocation_id": str(uuid.UUID(bytes_le=raw)),
            "usn": int(usn),
        }

    def resumes(self, cursor: dict[str, Any], position: dict[str, Any]) -> bool:
        try:
            return (
                super().resumes(cursor, position)
                and cursor.get("invocation_id") == position.get("invocation_id")
                and int(cursor["usn"]) <= int(position["usn"])
            )
        except (KeyError, TypeError, ValueError):
            return False

    def changes(
        self, session: BulkSession, config: SyncConfig, cursor: dict[str, Any], sinks: Sinks
    ) -> Changes:
        """Ids of everything changed or deleted since the mark, then the changed users and groups in full.

        The ids come first: an entry changed again between the searches is then read in full by the later one,
        and never taken for gone.
        """
        try:
            since = int(cursor["usn"])
        except (KeyError, TypeError, ValueError):
            raise LostPosition("the stored USN mark is unreadable") from None
        changes = Changes()
        above = f"(uSNChanged>={since + 1})"
        binary = [config.guid_attribute] if config.guid_is_binary else []
        context = session.root_dse().default_naming_context or config.base_dn
        touched: set[str] = set()
        deleted: set[str] = set()
        try:
            for entry in session.paged_search(
                context, above, [config.guid_attribute], page_size=ID_PAGE, binary_attributes=binary
            ):
                if (key := entry_key(entry, config)) is not None:
                    touched.add(key)
            for entry in session.paged_search(
                context, f"(&(isDeleted=TRUE){above})", [config.guid_attribute], page_size=ID_PAGE,
                binary_attributes=binary, show_deleted=True,
            ):  # fmt: skip
                if (key := entry_key(entry, config)) is not None:
                    deleted.add(key)
        except DirectoryError as error:
            changes.people_search = changes.group_search = partial(error, read=0, incremental=True)
            return changes

        read_people: set[str] = set()
        read = 0
        try:
            for entry in session.paged_search(
                config.base_dn, f"(&{config.account_filter}{above})", config.account_attributes(),
                page_size=config.page_size, binary_attributes=binary,
            ):  # fmt: skip
                read += 1
                if (key := entry_key(entry, config)) is not None:
                    read_people.add(key)
                sinks.person(entry)
        except DirectoryError as error:
            changes.people_search = partial(error, read=read, incremental=True)
        read_groups: set[str] = set()
        read = 0
        try:
            for search_filter, kind in group_searches(config):
                for entry in session.paged_search(
                    config.base_dn, f"(&{search_filter}{above})", config.group_attributes(),
                    page_size=config.page_size, binary_attributes=binary,
                ):  # fmt: skip
                    read += 1
                    if (key := entry_key(entry, config)) is not None:
                        read_groups.add(key)
                    sinks.group(entry, kind)
        except DirectoryError as error:
            changes.group_search = partial(error, read=read, incremental=True)

        for key in touched - read_people:
            changes.gone_people[key] = "the entry left the DN or no longer matches the user filter"
        for key in touched - read_groups:
            changes.gone_groups[key] = "the entry left the DN or no longer matches the group filter"
        for key in deleted:
            changes.gone_people[key] = changes.gone_groups[key] = (
                "the entry is gone from the directory (deleted)"
            )
        return changes
