"""Servers without syncrepl or USNs: entries stamped (modifyTimestamp) since the mark, and an id-only scan.

The mark is this machine's clock at the start of the read, less a margin: the server stamps with its own
clock, and an entry changed while the previous run read is read again rather than missed. Removals show as ids
missing from the scan, which asks for the id attribute alone. The daily full read covers a clock that drifts
further.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from directory_sync.ldap import BulkSession, DirectoryError
from directory_sync.ldap.filters import escape_value
from directory_sync.sync.config import SyncConfig
from directory_sync.sync.people import entry_key
from directory_sync.sync.tracking import Changes, LostPosition, Sinks, Tracker, group_searches, partial

MARGIN = timedelta(minutes=10)
ID_PAGE = 1000
TIMESTAMP_ATTRIBUTES = frozenset({"modifytimestamp", "whenchanged"})


def is_timestamp(attribute: str) -> bool:
    """Whether the change stamp attribute is a GeneralizedTime the server compares with >=."""
    return attribute.lower() in TIMESTAMP_ATTRIBUTES


class TimestampTracker(Tracker):
    name = "timestamps"

    def position(self, session: BulkSession, config: SyncConfig) -> dict[str, Any] | None:
        since = datetime.now(UTC) - MARGIN
        return {"kind": self.name, "server": session.endpoint.url, "since": since.strftime("%Y%m%d%H%M%SZ")}

    def changes(
        self, session: BulkSession, config: SyncConfig, cursor: dict[str, Any], sinks: Sinks
    ) -> Changes:
        since = cursor.get("since")
        if not isinstance(since, str) or not since:
            raise LostPosition("no timestamp mark is stored")
        changed = f"({config.change_stamp_attribute}>={escape_value(since)})"
        binary = [config.guid_attribute] if config.guid_is_binary else []
        changes = Changes(present_people=set(), present_groups=set())
        assert changes.present_people is not None and changes.present_groups is not None
        read = 0
        try:
            for entry in session.paged_search(
                config.base_dn, config.account_filter, [config.guid_attribute], page_size=ID_PAGE,
                binary_attributes=binary,
            ):  # fmt: skip
                if (key := entry_key(entry, config)) is not None:
                    changes.present_people.add(key)
            for entry in session.paged_search(
                config.base_dn, f"(&{config.account_filter}{changed})", config.account_attributes(),
                page_size=config.page_size, binary_attributes=binary,
            ):  # fmt: skip
                read += 1
                sinks.person(entry)
        except DirectoryError as error:
            changes.people_search = partial(error, read=read, incremental=True)
            changes.present_people = None
        read = 0
        try:
            for search_filter, kind in group_searches(config):
                for entry in session.paged_search(
                    config.base_dn, search_filter, [config.guid_attribute], page_size=ID_PAGE,
                    binary_attributes=binary,
                ):  # fmt: skip
                    if (key := entry_key(entry, config)) is not None:
                        changes.present_groups.add(key)
                for entry in session.paged_search(
                    config.base_dn, f"(&{search_filter}{changed})", config.group_attributes(),
                    page_size=config.page_size, binary_attributes=binary,
                ):  # fmt: skip
                    read += 1
                    sinks.group(entry, kind)
        except DirectoryError as error:
            changes.group_search = partial(error, read=read, incremental=True)
            changes.present_groups = None
        return changes
