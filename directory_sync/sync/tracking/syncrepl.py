"""OpenLDAP (and other RFC 4533 servers): what changed since the last run, by a syncrepl refresh.

The mark is a cookie the server hands out (read before the searches with an empty refresh). A refresh from it
sends the entries changed since, in full, and the ids of those that left the search's content: deleted, moved
out of the DN, or no longer matching the filter. When the server's session log does not reach back that far
(after a restart, say) it sends instead the ids of every entry still there (the present phase): what is not
among them left. A server that cannot resume at all makes the run read everything.
"""

from __future__ import annotations

from typing import Any

from directory_sync.ldap import BulkSession, DirectoryError, SyncMessage
from directory_sync.sync.config import SyncConfig
from directory_sync.sync.guard import SearchOutcome
from directory_sync.sync.tracking import Changes, LostPosition, Sinks, Tracker, group_searches, partial

# A filter no entry matches, for reading the position without reading entries.
NOTHING = "(&(objectClass=*)(!(objectClass=*)))"


class SyncreplTracker(Tracker):
    name = "syncrepl"

    def position(self, session: BulkSession, config: SyncConfig) -> dict[str, Any] | None:
        cookie = None
        try:
            for message in session.syncrepl_refresh(
                config.base_dn, NOTHING, ["1.1"], cookie=None, scope="base"
            ):
                if message.kind == "done":
                    cookie = message.cookie
        except DirectoryError:
            return None
        if not cookie:
            return None
        return {"kind": self.name, "server": session.endpoint.url, "cookie": cookie}

    def changes(
        self, session: BulkSession, config: SyncConfig, cursor: dict[str, Any], sinks: Sinks
    ) -> Changes:
        cookie = cursor.get("cookie")
        if not isinstance(cookie, str) or not cookie:
            raise LostPosition("no syncrepl cookie is stored")
        changes = Changes()
        gone, present, search = self._refresh(
            session, config, config.account_filter, config.account_attributes(), cookie, sinks.person
        )
        why = "the entry is gone from the directory, or left the DN or the user filter"
        changes.gone_people = dict.fromkeys(gone, why)
        changes.present_people, changes.people_search = present, search
        gone_groups: set[str] = set()
        present_groups: set[str] | None = set()
        for search_filter, kind in group_searches(config):
            gone, present, search = self._refresh(
                session, config, search_filter, config.group_attributes(), cookie,
                lambda entry, kind=kind: sinks.group(entry, kind),
            )  # fmt: skip
            gone_groups |= gone
            present_groups = None if present is None or present_groups is None else present_groups | present
            if not search.complete:
                changes.group_search = search
        why = "the entry is gone from the directory, or left the DN or the group filter"
        changes.gone_groups = dict.fromkeys(gone_groups, why)
        changes.present_groups = present_groups if list(group_searches(config)) else None
        return changes

    def _refresh(
        self,
        session: BulkSession,
        config: SyncConfig,
        search_filter: str,
        attributes: list[str],
        cookie: str,
        sink: Any,
    ) -> tuple[set[str], set[str] | None, SearchOutcome]:
        """One refresh: (ids that left, every id still there if the server said so, how the search ended)."""
        gone: set[str] = set()
        present: set[str] = set()
        read = 0
        done: SyncMessage | None = None
        try:
            for message in session.syncrepl_refresh(
                config.base_dn, search_filter, attributes, cookie=cookie,
                binary_attributes=[config.guid_attribute] if config.guid_is_binary else [],
            ):  # fmt: skip
                if message.kind == "entry" and message.entry is not None:
                    read += 1
                    present.update(message.uuids)
                    sink(message.entry)
                elif message.kind == "delete":
                    gone.update(message.uuids)
                elif message.kind == "present":
                    present.update(message.uuids)
                elif message.kind == "done":
                    done = message
        except DirectoryError as error:
            if error.detail == "refresh required":
                raise LostPosition(error.message) from None
            # What was reported gone so far is planned; the guard withholds it, the search being incomplete.
            return gone, None, partial(error, read=read, incremental=True)
        if done is None:
            raise LostPosition("the refresh ended without its done message")
        # refreshDeletes FALSE: the server sent the present ids instead of the deletions (RFC 4533 §3.4).
        return (
            gone,
            (None if done.refresh_deletes else present),
            SearchOutcome(complete=True, incremental=True, entries_matched=read),
        )
