"""Changes the directory pushes, as plain data: an RFC 4533 syncrepl refreshAndPersist search (OpenLDAP and
other syncprov servers) or Active Directory's change notification control (LDAP_SERVER_NOTIFICATION_OID).

The protocol is python-ldap's: ldap.syncrepl.SyncreplConsumer runs the sync search and calls back for each
message; AD's notification is an ordinary search with the control, answered entry by entry as objects change.
The watcher (directory_sync/sync/watch.py) only needs to *notice* changes: the run it starts reads them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final

import ldap
from ldap.controls import LDAPControl
from ldap.syncrepl import SyncreplConsumer

from directory_sync.ldap.bulk import SYNC_REFRESH_REQUIRED, BulkSession, _result_code, open_bulk_session
from directory_sync.ldap.connection import SHOW_DELETED_OID, Endpoint, SessionOptions
from directory_sync.ldap.entries import Entry
from directory_sync.ldap.errors import DirectoryError
from directory_sync.ldap.rootdse import ROOT_DSE_ATTRIBUTES, RootDse

AD_NOTIFICATION_OID: Final = "1.2.840.113556.1.4.528"
# A dead peer or a dropped NAT mapping under an idle persistent search is otherwise noticed only at the next
# write, which a watcher never makes: the kernel probes the connection instead.
KEEPALIVE_IDLE_SECONDS: Final = 60
KEEPALIVE_INTERVAL_SECONDS: Final = 10
KEEPALIVE_PROBES: Final = 3
# A burst is read in slices, so that a watcher looks up from its stream now and then.
MAX_MESSAGES_PER_POLL: Final = 1000
# python-ldap's result4 cannot poll with a timeout of 0 (it fails on the empty answer): a millisecond instead.
DRAIN_SECONDS: Final = 0.001


@dataclass(slots=True)
class Push:
    """One thing the stream said.

    kind "change": an entry was added, changed, renamed or moved in (dn, ids); "gone": ids that left the
    search (deleted, moved out, no longer matching); "resync": the server listed what is still there instead
    of what left (after its restart: deletions can only be inferred, the run must look); "refreshed": the
    refresh phase is over, what follows is pushed as it happens.
    """

    kind: str
    dn: str = ""
    ids: list[str] = field(default_factory=list)
    object_classes: tuple[str, ...] = ()


class _Consumer(SyncreplConsumer):
    """python-ldap's syncrepl consumer on a session's connection; its callbacks become Push messages."""

    def __init__(self, conn: Any, cookie: str | None) -> None:
        self._conn = conn
        self.cookie = cookie
        self.pushes: list[Push] = []
        self.refreshing = True

    def search_ext(self, *args: Any, **kwargs: Any) -> Any:
        return self._conn.search_ext(*args, **kwargs)

    def result4(self, *args: Any, **kwargs: Any) -> Any:
        return self._conn.result4(*args, **kwargs)

    def syncrepl_get_cookie(self) -> str | None:
        return self.cookie

    def syncrepl_set_cookie(self, cookie: str) -> None:
        self.cookie = cookie

    def syncrepl_entry(self, dn: str, attrs: dict[str, Any], uuid: str) -> None:
        self.pushes.append(Push("change", dn=dn, ids=[uuid]))

    def syncrepl_delete(self, uuids: list[str]) -> None:
        self.pushes.append(Push("gone", ids=list(uuids)))

    def syncrepl_present(self, uuids: list[str] | None, refreshDeletes: bool = False) -> None:
        # A list of ids: the consumer's own bookkeeping during the refresh (each entry sent is present) or
        # the server's present phase; the end of that phase (None) without refreshDeletes is what matters.
        if uuids is None and not refreshDeletes:
            self.pushes.append(Push("resync"))

    def syncrepl_refreshdone(self) -> None:
        self.refreshing = False
        self.pushes.append(Push("refreshed"))


class ChangeStream:
    """A bound connection holding one push search; poll() hands over what arrived (a context manager)."""

    def __init__(self, session: BulkSession) -> None:
        self.session = session
        self._consumer: _Consumer | None = None
        self._msgid: int | None = None
        self.mode = ""

    def __enter__(self) -> ChangeStream:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def endpoint(self) -> Endpoint:
        return self.session.endpoint

    def root_dse(self) -> RootDse:
        return self.session.root_dse()

    def root_dse_now(self) -> RootDse:
        """The root DSE read again (the session keeps its first reading): highestCommittedUSN now."""
        return RootDse.from_entry(self.session.read_entry("", ROOT_DSE_ATTRIBUTES) or Entry(dn=""))

    @property
    def cookie(self) -> str | None:
        """The syncrepl cookie of the last message (None before the first, and for AD)."""
        return self._consumer.cookie if self._consumer else None

    def current_cookie(self, base: str) -> str | None:
        """Where the server's changes stand now (an empty refreshOnly search), without reading any entry."""
        cookie = None
        for message in self.session.syncrepl_refresh(
            base, "(&(objectClass=*)(!(objectClass=*)))", ["1.1"], cookie=None, scope="base"
        ):
            if message.kind == "done":
                cookie = message.cookie
        return cookie

    def syncrepl(self, base: str, search_filter: str, *, cookie: str | None) -> None:
        """Start a refreshAndPersist search: first what changed since the cookie, then each change as it
        happens. Only ids and DNs are asked for (the run reads the entries)."""
        consumer = _Consumer(self.session._live(), cookie)
        try:
            self._msgid = consumer.syncrepl_search(
                base, ldap.SCOPE_SUBTREE, mode="refreshAndPersist", filterstr=search_filter, attrlist=["1.1"]
            )
        except ldap.LDAPError as exc:
            raise self.session._fail(exc, "search", base=base, search_filter=search_filter) from None
        self._consumer, self.mode = consumer, "syncrepl"

    def notifications(self, base: str) -> None:
        """Start Active Directory's change notification search on a naming context's head: an entry comes
        back each time an object under it changes (deleted ones too, with the show-deleted control)."""
        conn = self.session._live()
        controls = [LDAPControl(AD_NOTIFICATION_OID, True, None), LDAPControl(SHOW_DELETED_OID, True, None)]
        try:
            self._msgid = conn.search_ext(
                base, ldap.SCOPE_SUBTREE, "(objectClass=*)", ["objectClass"], serverctrls=controls
            )
        except ldap.LDAPError as exc:
            raise self.session._fail(exc, "search", base=base) from None
        self.mode = "notification"

    def poll(self, timeout: float) -> list[Push]:
        """What arrived within timeout seconds (empty: nothing). Raises DirectoryError when the connection
        is lost or the server ends the search; detail "refresh required" when it cannot resume the cookie."""
        if self._msgid is None:
            raise DirectoryError("config", "No push search was started on this connection")
        pushes: list[Push] = []
        wait: float = timeout
        try:
            for _ in range(MAX_MESSAGES_PER_POLL):
                try:
                    more = self._poll_one(wait)
                except ldap.TIMEOUT:
                    break
                wait = DRAIN_SECONDS  # what is already there, without waiting again
                if self._consumer is not None:
                    pushes += self._consumer.pushes
                    self._consumer.pushes = []
                if more is not None:
                    pushes.append(more)
        except ldap.LDAPError as exc:
            self._msgid = None
            if _result_code(exc) == SYNC_REFRESH_REQUIRED:
                raise DirectoryError(
                    "search",
                    f"The server at {self.endpoint.where} cannot resume changes from the stored position",
                    host=self.endpoint.url,
                    detail="refresh required",
                ) from None
            raise self.session._fail(exc, "search") from None
        return pushes

    def _poll_one(self, timeout: float) -> Push | None:
        """One message: syncrepl's go to the consumer's callbacks; an AD notification is returned."""
        if self._consumer is not None:
            if not self._consumer.syncrepl_poll(msgid=self._msgid, timeout=timeout):
                self._msgid = None
                raise DirectoryError(
                    "connection_lost",
                    f"The server at {self.endpoint.where} ended the persistent search",
                    host=self.endpoint.url,
                )
            return None
        kind, data, _, _ = self.session._live().result3(self._msgid, all=0, timeout=timeout)
        if kind == ldap.RES_SEARCH_RESULT:
            self._msgid = None
            raise DirectoryError(
                "connection_lost",
                f"The server at {self.endpoint.where} ended the change notification search",
                host=self.endpoint.url,
            )
        for dn, values in data or ():
            if dn is None:
                continue
            classes = tuple(
                (value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)).lower()
                for name, items in (values or {}).items()
                if name.lower() == "objectclass"
                for value in items
            )
            return Push("change", dn=dn, object_classes=classes)
        return None

    def close(self) -> None:
        """Abandon the search and unbind (idempotent)."""
        if self._msgid is not None and not self.session.closed:
            with contextlib.suppress(ldap.LDAPError, DirectoryError):
                self.session._live().abandon(self._msgid)
        self._msgid = None
        self.session.close()


def keepalive() -> None:
    """TCP keepalive on every connection this process opens from now on (libldap copies its global options
    into each new handle): a watcher's idle connection is probed by the kernel."""
    for option, value in (
        (ldap.OPT_X_KEEPALIVE_IDLE, KEEPALIVE_IDLE_SECONDS),
        (ldap.OPT_X_KEEPALIVE_INTERVAL, KEEPALIVE_INTERVAL_SECONDS),
        (ldap.OPT_X_KEEPALIVE_PROBES, KEEPALIVE_PROBES),
    ):
        with contextlib.suppress(ValueError, ldap.LDAPError):
            ldap.set_option(option, value)


def open_change_stream(options: SessionOptions) -> ChangeStream:
    """A bound connection for a push search: the primary host, else the backup."""
    keepalive()
    return ChangeStream(open_bulk_session(options))


def supports_notifications(root: RootDse) -> bool:
    return AD_NOTIFICATION_OID in root.supported_controls


__all__: Sequence[str] = [
    "AD_NOTIFICATION_OID",
    "ChangeStream",
    "Push",
    "keepalive",
    "open_change_stream",
    "supports_notifications",
]
