"""The push watcher of a domain: the directory says when something changed; a run follows within seconds.

It only *notices* changes. Each burst of them becomes a normal run of the domain (trigger "push") through the
per-domain lock, whose read is incremental: the change tracking (sync/tracking/) reads exactly what changed
since the stored position, and the same planner, guard, apply and record follow. So the watcher's stream
needs no cursor of its own, a change it heard twice costs nothing, and one it missed is read by the next run
anyway: the stored position, not the stream, is what nothing may be lost from.

- OpenLDAP (syncprov): an RFC 4533 refreshAndPersist search over the user and group filters, resumed from
  the stored cursor's cookie. Its refresh phase tells whether anything changed while nobody listened (a
  restart of the watcher or of the server); then each change is pushed as it happens.
- Active Directory: the change notification control on the domain's naming context. It has no resume: when
  the controller's highestCommittedUSN moved past the stored mark, a run catches up first.

Two threads per domain: the listener (connect to the primary host, else the backup; reconnect with backoff;
add what it hears to the batch) and the applier (wait until a batch closes, hand it to the outlet, which runs
it under the domain's lock; a busy domain or a failed run keeps the batch for later).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from django.db import connections
from django.utils import timezone

from directory_sync.choices import ServerType
from directory_sync.ldap import DirectoryError, SessionOptions
from directory_sync.ldap.rootdse import RootDse
from directory_sync.ldap.search import normalize_dn
from directory_sync.ldap.watch import ChangeStream, Push, open_change_stream, supports_notifications
from directory_sync.sync.config import SyncConfig
from directory_sync.sync.tracking import group_searches

logger = logging.getLogger("directory_sync.watch")

SYNCREPL = "syncrepl"
NOTIFICATION = "notification"
METHODS = {
    SYNCREPL: "syncrepl refreshAndPersist (RFC 4533)",
    NOTIFICATION: "Active Directory change notification",
}
# Object classes whose change, outside the base DN, may still be ours: an entry moved out of it.
AD_CLASSES = frozenset({"user", "group", "person", "contact", "inetorgperson"})

CRASH_PAUSE_SECONDS = 10.0  # a thread's loop that failed unexpectedly starts again after this
# Outcomes of handing a batch to the outlet.
DONE, BUSY, FAILED, LOST = "done", "busy", "failed", "lost"


@dataclass(frozen=True)
class WatchTiming:
    """How the watcher paces itself (seconds)."""

    # A batch closes once no change came for `quiet`, and at the latest `longest` after its first change: a
    # tool that writes an entry and then its groups makes one run, and a steady trickle still runs.
    quiet: float = 0.3
    longest: float = 1.5
    poll: float = 1.0  # how often the listener looks up from an idle stream (to stop, to go back to primary)
    lease: float = 30.0  # a domain's lease; renewed every `renew`
    renew: float = 10.0
    backoff_first: float = 1.0  # reconnects and failed runs wait 1, 2, 4 ... seconds
    backoff_max: float = 60.0
    busy_retry: float = 0.5  # another run of the domain is going on: look again this soon
    primary_retry: float = 300.0  # on the backup host, try the primary again this often
    recheck: float = 300.0  # a directory that cannot push is asked again this often
    stable: float = 10.0  # a connection that lasted this long resets the backoff


def backoff(timing: WatchTiming, failures: int) -> float:
    return float(min(timing.backoff_max, timing.backoff_first * 2 ** max(0, failures - 1)))


class WatchRefused(Exception):
    """The domain cannot be watched as configured (not active, no server, unusable settings)."""


@dataclass(frozen=True)
class WatchTarget:
    """What the listener needs of the domain, read again at each connection."""

    options: SessionOptions
    config: SyncConfig
    cursor: dict[str, Any]


@dataclass(frozen=True)
class TakenBatch:
    """The changes of one batch: how many (fresh: not handed over before), when the first and last came."""

    changes: int
    fresh: int
    first_at: datetime
    last_at: datetime
    first_tick: float


class WatchOutlet(Protocol):
    """What the engine asks of the rest of the console (services/watch.py): settings, status, runs."""

    def target(self) -> WatchTarget: ...

    def status(self, **fields: Any) -> None: ...

    def apply(self, batch: TakenBatch, pending: Callable[[], datetime | None]) -> str: ...


class Batch:
    """Changes heard and not applied yet; the listener adds, the applier takes once the batch closes."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._changes = 0
        self._fresh = 0
        self._first: float | None = None
        self._last = 0.0
        self._first_at: datetime | None = None
        self._last_at: datetime | None = None

    def add(self, changes: int = 1) -> None:
        with self._cond:
            now, wall = time.monotonic(), timezone.now()
            if self._first is None:
                self._first, self._first_at = now, wall
            self._last, self._last_at = now, wall
            self._changes += changes
            self._fresh += changes
            self._cond.notify_all()

    def pending_since(self) -> datetime | None:
        with self._cond:
            return self._first_at

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def take(self, stop: threading.Event, timing: WatchTiming) -> TakenBatch | None:
        """Wait until a batch closes (None once stop is set) and take it."""
        with self._cond:
            while not stop.is_set():
                if self._first is None:
                    self._cond.wait()
                    continue
                closes = min(self._last + timing.quiet, self._first + timing.longest)
                wait = closes - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                assert self._first_at is not None and self._last_at is not None
                taken = TakenBatch(self._changes, self._fresh, self._first_at, self._last_at, self._first)
                self._changes = self._fresh = 0
                self._first = self._first_at = self._last_at = None
                return taken
            return None

    def put_back(self, taken: TakenBatch) -> None:
        """A batch that could not be applied: pending again, as old as it was."""
        with self._cond:
            self._changes += taken.changes
            if self._first is None or taken.first_tick < self._first:
                self._first, self._first_at = taken.first_tick, taken.first_at
            if self._last_at is None:
                self._last, self._last_at = taken.first_tick, taken.last_at


def listening_method(config: SyncConfig, root: RootDse) -> tuple[str | None, str]:
    """How this directory can push its changes to us, or why it cannot."""
    if config.profile.server_type == ServerType.ACTIVE_DIRECTORY:
        if supports_notifications(root):
            return NOTIFICATION, ""
        return None, "the server does not offer Active Directory's change notification control"
    if root.syncrepl:
        if config.guid_attribute.lower() == "entryuuid":
            return SYNCREPL, ""
        return None, "the server offers syncrepl, but the id attribute is not entryUUID"
    return None, "the server offers no syncrepl (RFC 4533)"


def push_filter(config: SyncConfig) -> str:
    """The entries whose changes matter: the user filter's and the group searches'."""
    filters = list(dict.fromkeys([config.account_filter, *(f for f, _ in group_searches(config))]))
    return filters[0] if len(filters) == 1 else f"(|{''.join(filters)})"


def heard(pushes: Iterable[Push], *, method: str, base_dn: str) -> int:
    """How many of the pushes are changes a run may have to apply."""
    if method == SYNCREPL:
        return sum(push.kind in ("change", "gone", "resync") for push in pushes)
    base = normalize_dn(base_dn)
    count = 0
    for push in pushes:
        dn = normalize_dn(push.dn)
        if dn == base or dn.endswith("," + base) or ",cn=deleted objects," in dn:
            count += 1
        elif AD_CLASSES.intersection(push.object_classes) and "computer" not in push.object_classes:
            count += 1  # moved out of the base DN: its account must go
    return count


class DomainWatcher:
    """One domain's listener and applier threads."""

    def __init__(self, *, name: str, outlet: WatchOutlet, timing: WatchTiming) -> None:
        self.name, self.outlet, self.timing = name, outlet, timing
        self.batch = Batch()
        self._stop = threading.Event()
        self._listening = threading.Event()  # the listener is connected: the directory answers
        self._stale_cookie: str | None = None
        self._threads = [
            threading.Thread(target=self._guarded, args=(self._listen,), name=f"watch-{name}", daemon=True),
            threading.Thread(target=self._guarded, args=(self._apply,), name=f"apply-{name}", daemon=True),
        ]

    def __repr__(self) -> str:
        return f"<DomainWatcher {self.name}{' stopping' if self._stop.is_set() else ''}>"

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Ask both threads to end: the listener within a poll, the applier after the run going on."""
        self._stop.set()
        self.batch.wake()

    def join(self, timeout: float) -> bool:
        """Wait for both threads; True when they ended."""
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not self.alive

    @property
    def alive(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _guarded(self, loop: Callable[[], None]) -> None:
        """A thread's loop; an unexpected error is logged and the loop starts again after a pause."""
        try:
            while not self._stop.is_set():
                try:
                    loop()
                    return
                except Exception:
                    logger.exception("Watcher of %s: %s stopped on an error", self.name, loop.__name__)
                    self._stop.wait(CRASH_PAUSE_SECONDS)
        finally:
            connections.close_all()

    # ----------------------------------------------------------------------- listener

    def _listen(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                target = self.outlet.target()
            except WatchRefused as refused:
                self.outlet.status(state="unsupported", detail=str(refused), watching_since=None)
                self._stop.wait(self.timing.recheck)
                continue
            self.outlet.status(state="connecting" if not failures else "reconnecting")
            started = time.monotonic()
            try:
                with open_change_stream(target.options) as stream:
                    self._session(stream, target)
            except DirectoryError as error:
                failures = 1 if time.monotonic() - started >= self.timing.stable else failures + 1
                delay = backoff(self.timing, failures)
                logger.warning("Watcher of %s: %s; connecting again in %g s", self.name, error.message, delay)
                self.outlet.status(
                    state="reconnecting", detail=f"{error.message} (trying again in {delay:g} s)",
                    watching_since=None,
                )  # fmt: skip
                self._stop.wait(delay)
            else:
                failures = 0

    def _session(self, stream: ChangeStream, target: WatchTarget) -> None:
        """Listen on one connection until it fails (DirectoryError), the watcher stops, or it is time to go
        back to the primary host."""
        config = target.config
        root = stream.root_dse()
        method, why_not = listening_method(config, root)
        if method is None:
            self.outlet.status(
                state="unsupported", method="", server=stream.endpoint.url, watching_since=None,
                detail=f"Not watched: {why_not}. The schedule keeps the domain in sync.",
            )  # fmt: skip
            self._stop.wait(self.timing.recheck)
            return
        cookie: str | None = None
        try:
            if method == SYNCREPL:
                cookie = self._resume_cookie(target.cursor, stream)
                if cookie is None:
                    # No position of ours on this server: listen from now, and let one run catch up.
                    cookie = stream.current_cookie(config.base_dn)
                    self.batch.add()
                stream.syncrepl(config.base_dn, push_filter(config), cookie=cookie)
            else:
                stream.notifications(root.default_naming_context or config.base_dn)
                # Read after the search started: a change in between is both notified and counted here.
                if not _usn_current(target.cursor, stream.root_dse_now()):
                    self.batch.add()  # the controller changed since the last run: catch up first
        except DirectoryError as error:
            if error.detail != "refresh required":
                raise
            self._refresh_required(cookie)
            return
        on_primary = stream.endpoint == target.options.endpoints[0]
        self.outlet.status(
            state="watching", method=METHODS[method], server=stream.endpoint.url, detail="",
            watching_since=timezone.now(),
        )  # fmt: skip
        logger.info("Watcher of %s: listening to %s (%s)", self.name, stream.endpoint.url, METHODS[method])
        self._listening.set()
        try:
            self._listen_on(stream, method, cookie, config.base_dn, on_primary=on_primary)
        finally:
            self._listening.clear()

    def _listen_on(
        self, stream: ChangeStream, method: str, cookie: str | None, base_dn: str, *, on_primary: bool
    ) -> None:
        connected = time.monotonic()
        while not self._stop.is_set():
            try:
                pushes = stream.poll(self.timing.poll)
            except DirectoryError as error:
                if error.detail != "refresh required":
                    raise
                self._refresh_required(cookie)
                return
            if count := heard(pushes, method=method, base_dn=base_dn):
                self.batch.add(count)
            if not on_primary and time.monotonic() - connected >= self.timing.primary_retry:
                return

    def _resume_cookie(self, cursor: dict[str, Any], stream: ChangeStream) -> str | None:
        """The stored cursor's cookie, when it is this server's and the server did not refuse it already."""
        cookie = cursor.get("cookie")
        if (
            cursor.get("kind") == SYNCREPL
            and cursor.get("server") == stream.endpoint.url
            and isinstance(cookie, str)
            and cookie
            and cookie != self._stale_cookie
        ):
            return cookie
        return None

    def _refresh_required(self, cookie: str | None) -> None:
        """e-syncRefreshRequired: the server cannot resume from the stored cookie. The run that follows reads
        everything (its own refresh fails the same way); listening starts again from a new cookie."""
        logger.info(
            "Watcher of %s: the server cannot resume from the stored cookie; a full run follows", self.name
        )
        self._stale_cookie = cookie
        self.batch.add()

    # ----------------------------------------------------------------------- applier

    def _apply(self) -> None:
        failures = 0
        while True:
            taken = self.batch.take(self._stop, self.timing)
            if taken is None:
                return
            outcome = self.outlet.apply(taken, self.batch.pending_since)
            if outcome == DONE:
                failures = 0
                continue
            self.batch.put_back(taken)
            if outcome == LOST:
                logger.warning("Watcher of %s: the lease was lost; stopping", self.name)
                self.stop()
                return
            if outcome == BUSY:
                self._stop.wait(self.timing.busy_retry)
                continue
            failures += 1
            self._stop.wait(backoff(self.timing, failures))
            # A directory that went away: one run once the listener is connected again, not one a minute.
            while not self._listening.is_set() and not self._stop.wait(self.timing.poll):
                pass


def _usn_current(cursor: dict[str, Any], root: RootDse) -> bool:
    """Whether the stored USN mark is this controller's highest committed USN (nothing changed since)."""
    try:
        return (
            cursor.get("kind") == "usn"
            and str(cursor.get("server", "")).lower()
            in {root.dns_host_name.lower(), root.server_name.lower()}
            and root.highest_committed_usn is not None
            and int(cursor["usn"]) >= root.highest_committed_usn
        )
    except (KeyError, TypeError, ValueError):
        return False
