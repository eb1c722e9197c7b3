"""Watching directories for pushed changes: the watcher process (`manage.py directory_watch`), the lease that
keeps a domain with one watcher, and the runs it starts (directory_sync/sync/watch.py is the engine).

A domain is watched by whichever watcher process holds its lease: a row (DirectoryWatch) with an owner and
an expiry that the owner renews every few seconds. Taking a lease is one UPDATE whose WHERE says "free,
expired or mine", which PostgreSQL and SQLite both run atomically, so two processes never both hold one. A
process that dies stops renewing and its domains are taken over when the lease runs out (at once when the
dead process was on the same host). With several processes and no domain named, each takes its fair share
(the domains over the live processes) and gives back what it holds beyond it.

Even two holders could not apply a domain twice: every batch is a run through services/runs.py, and the
database allows one active run per domain.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, close_old_connections, transaction
from django.db.models import F, Q
from django.utils import timezone

from directory_sync.ldap import DirectoryError, options_from_settings
from directory_sync.ldap.filters import FilterError
from directory_sync.models import (
    ACTIVE_STATUSES,
    DirectorySettings,
    DirectoryWatch,
    JobStatus,
    SyncRun,
    SyncState,
    WatcherProcess,
)
from directory_sync.rules.vcard import VCardMapError
from directory_sync.services.sync import run_now
from directory_sync.sync.config import build_config
from directory_sync.sync.watch import (
    BUSY,
    DONE,
    FAILED,
    LOST,
    DomainWatcher,
    TakenBatch,
    WatchRefused,
    WatchTarget,
    WatchTiming,
)
from icewarp_admin.mailserver.models import Domain

logger = logging.getLogger("directory_sync.watch")

REQUESTED_BY = "watcher"
STOP_WAIT_SECONDS = 60.0  # a run going on when the watcher is stopped is let finish this long


def this_host() -> str:
    """This machine's name as the leases and the process rows hold it."""
    return socket.gethostname()[:100]


def new_owner() -> str:
    """This process's name in the leases: host, pid and a token (a pid is reused after a restart)."""
    return f"{this_host()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _owner_dead(owner: str) -> bool:
    """An owner on this host whose process is gone (or is an earlier life of this pid)."""
    host, _, rest = owner.partition(":")
    pid_text, _, _ = rest.partition(":")
    if host != this_host() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return True  # the same pid with another token: this process's previous life (a container restart)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def acquire_lease(*, domain_id: int, owner: str, seconds: float) -> bool:
    """Take (or keep) the domain's lease if it is free, expired, ours, or held by a dead process here."""
    now = timezone.now()
    with contextlib.suppress(IntegrityError), transaction.atomic():
        DirectoryWatch.objects.get_or_create(domain_id=domain_id)
    free = Q(owner=owner) | Q(owner="") | Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now)
    holder = DirectoryWatch.objects.filter(domain_id=domain_id).values_list("owner", flat=True).first()
    dead = holder is not None and holder not in ("", owner) and _owner_dead(holder)
    if dead:
        free |= Q(owner=holder)
    taken = DirectoryWatch.objects.filter(free, domain_id=domain_id).update(
        owner=owner, lease_expires_at=now + timedelta(seconds=seconds)
    )
    if taken and holder and dead:
        _fail_runs_of(domain_id=domain_id, owner=holder)
    return bool(taken)


def _requester(owner: str) -> str:
    return f"{REQUESTED_BY} ({owner})"


def _fail_runs_of(*, domain_id: int, owner: str) -> None:
    """The runs a dead watcher process left going on: failed now, so that the domain is free at once rather
    than when the reaper finds their heartbeat silent (SYNC_ABANDONED_AFTER_SECONDS)."""
    failed = SyncRun.objects.filter(
        domain_id=domain_id, status__in=ACTIVE_STATUSES, requested_by=_requester(owner)
    ).update(
        status=JobStatus.FAILED, finished_at=timezone.now(), phase="",
        errors=["Abandoned: the watcher process running it stopped."],
    )  # fmt: skip
    if failed:
        logger.warning("Directory watcher: failed %s run(s) left by the dead watcher %s", failed, owner)


def renew_leases(*, owner: str, domain_ids: Sequence[int], seconds: float) -> set[int]:
    """Push the expiry of our leases on; the domains whose lease we still hold."""
    if not domain_ids:
        return set()
    now = timezone.now()
    DirectoryWatch.objects.filter(domain_id__in=domain_ids, owner=owner, lease_expires_at__gt=now).update(
        lease_expires_at=now + timedelta(seconds=seconds)
    )
    return set(
        DirectoryWatch.objects.filter(
            domain_id__in=domain_ids, owner=owner, lease_expires_at__gt=now
        ).values_list("domain_id", flat=True)
    )


def release_lease(*, domain_id: int, owner: str) -> None:
    DirectoryWatch.objects.filter(domain_id=domain_id, owner=owner).update(
        owner="", lease_expires_at=None, state=DirectoryWatch.State.STOPPED, watching_since=None
    )


def record_watch(*, domain_id: int, owner: str, **fields: Any) -> bool:
    """Update the domain's watch row while we hold it (a watcher that lost its lease writes nothing)."""
    return bool(DirectoryWatch.objects.filter(domain_id=domain_id, owner=owner).update(**fields))


class DomainOutlet:
    """The engine's view of the console for one domain: its settings, its watch row, its runs."""

    def __init__(self, *, domain_id: int, owner: str, timing: WatchTiming) -> None:
        self.domain_id, self.owner, self.timing = domain_id, owner, timing

    def target(self) -> WatchTarget:
        close_old_connections()
        settings = DirectorySettings.objects.select_related("domain").filter(domain_id=self.domain_id).first()
        if settings is None or not settings.active:
            raise WatchRefused("Not watched: the domain is not synchronized with a directory.")
        if not settings.host or not settings.base_dn:
            raise WatchRefused("Not watched: no directory server is configured.")
        try:
            config = build_config(settings)
            options = options_from_settings(settings)
        except (FilterError, VCardMapError, ValueError, DirectoryError) as error:
            raise WatchRefused(f"Not watched: the settings are not usable ({error}).") from error
        cursor = SyncState.objects.filter(domain_id=self.domain_id).values_list("cursor", flat=True).first()
        return WatchTarget(options=options, config=config, cursor=dict(cursor or {}))

    def status(self, **fields: Any) -> None:
        close_old_connections()
        record_watch(domain_id=self.domain_id, owner=self.owner, **fields)

    def apply(self, batch: TakenBatch, pending: Callable[[], datetime | None]) -> str:
        """One run of the domain for the batch, in this thread, through the per-domain lock."""
        close_old_connections()
        if not renew_leases(owner=self.owner, domain_ids=[self.domain_id], seconds=self.timing.lease):
            return LOST
        record_watch(
            domain_id=self.domain_id, owner=self.owner, pending_since=batch.first_at,
            last_change_at=batch.last_at, changes_received=F("changes_received") + batch.fresh,
        )  # fmt: skip
        domain = Domain.objects.get(pk=self.domain_id)
        start = run_now(domain=domain, trigger=SyncRun.Trigger.PUSH, requested_by=_requester(self.owner))
        if start.joined:
            return (
                BUSY  # the batch waits for the active run to end, then runs: that one may have read too early
            )
        run = start.run
        if run.status == JobStatus.FAILED:
            record_watch(
                domain_id=self.domain_id, owner=self.owner, last_run=run,
                detail=f"Run #{run.pk} failed: {'; '.join(run.errors)[:500]}",
            )  # fmt: skip
            return FAILED
        finished = run.finished_at or timezone.now()
        record_watch(
            domain_id=self.domain_id, owner=self.owner, last_run=run, last_applied_at=finished,
            last_lag_seconds=round((finished - batch.first_at).total_seconds(), 3), pending_since=pending(),
        )  # fmt: skip
        return DONE


class Supervisor:
    """The watcher process: which domains it holds, a DomainWatcher for each, leases renewed."""

    def __init__(
        self, *, names: Sequence[str] = (), timing: WatchTiming | None = None, owner: str | None = None
    ) -> None:
        self.names = [name.lower() for name in names]
        self.timing = timing or WatchTiming()
        self.owner = owner or new_owner()
        self.watchers: dict[int, tuple[DomainWatcher, datetime]] = {}
        self.stopping: dict[int, DomainWatcher] = {}
        self._released: set[int] = set()  # stopping watchers whose lease is given back once they end

    def run(self, stop: threading.Event) -> None:
        """Watch until stop is set, then stop every watcher, give the leases back and forget this process."""
        logger.info(
            "Directory watcher %s started%s", self.owner, f" for {', '.join(self.names)}" * bool(self.names)
        )
        try:
            while not stop.is_set():
                try:
                    self.tick()
                except Exception:  # the database went away, say: the next pass tries again
                    logger.exception("Directory watcher pass failed")
                stop.wait(self.timing.renew)
        finally:
            self.shutdown()

    def tick(self) -> None:
        """One pass: renew, stop what is no longer ours or wanted, take our share of the rest."""
        close_old_connections()
        now = timezone.now()
        WatcherProcess.objects.update_or_create(
            owner=self.owner, defaults={"host": this_host(), "pid": os.getpid(), "seen_at": now}
        )
        wanted = self._wanted()
        held = renew_leases(owner=self.owner, domain_ids=list(self.watchers), seconds=self.timing.lease)
        for domain_id, (watcher, stamp) in list(self.watchers.items()):
            if domain_id not in held:
                logger.warning("Directory watcher: the lease of %s was lost", watcher.name)
                self._retire(domain_id)
            elif domain_id not in wanted:
                self._retire(domain_id, release=True)
            elif wanted[domain_id][1] != stamp or not watcher.alive or watcher.stopping:
                self._retire(domain_id)  # settings changed (or it died): started again below
        self._reap()
        fair = self._fair_share(len(wanted), now)
        for domain_id in sorted(self.watchers, key=lambda key: wanted[key][0], reverse=True):
            if len(self.watchers) <= fair:
                break
            self._retire(domain_id, release=True)  # another process takes it
            break  # one a pass: the shares settle without swapping domains back and forth
        for domain_id, (name, stamp) in sorted(wanted.items(), key=lambda item: item[1][0]):
            if len(self.watchers) >= fair:
                break
            if domain_id in self.watchers or domain_id in self.stopping:
                continue
            if acquire_lease(domain_id=domain_id, owner=self.owner, seconds=self.timing.lease):
                self._start(domain_id, name, stamp)

    def _wanted(self) -> dict[int, tuple[str, datetime]]:
        """domain id → (name, settings stamp) of the active domains this process may watch."""
        rows = DirectorySettings.objects.filter(active=True).exclude(host="").exclude(base_dn="")
        if self.names:
            rows = rows.filter(domain__name__in=self.names)
        return {
            domain_id: (name, stamp)
            for domain_id, name, stamp in rows.values_list("domain_id", "domain__name", "updated_at")
        }

    def _fair_share(self, domains: int, now: datetime) -> float:
        if self.names:
            return math.inf  # named domains: the operator shared them out
        alive = now - timedelta(seconds=self.timing.lease)
        processes = [
            owner
            for owner in WatcherProcess.objects.filter(seen_at__gte=alive).values_list("owner", flat=True)
            if owner == self.owner or not _owner_dead(owner)
        ]
        return math.ceil(domains / max(1, len(processes)))

    def _start(self, domain_id: int, name: str, stamp: datetime) -> None:
        outlet = DomainOutlet(domain_id=domain_id, owner=self.owner, timing=self.timing)
        record_watch(
            domain_id=domain_id, owner=self.owner, state=DirectoryWatch.State.CONNECTING, detail="",
            watching_since=None, pending_since=None,
        )  # fmt: skip
        watcher = DomainWatcher(name=name, outlet=outlet, timing=self.timing)
        watcher.start()
        self.watchers[domain_id] = (watcher, stamp)

    def _retire(self, domain_id: int, *, release: bool = False) -> None:
        """Stop a domain's watcher without waiting for it (a run may be going on); the lease is given back
        once it has ended."""
        watcher, _ = self.watchers.pop(domain_id)
        watcher.stop()
        self.stopping[domain_id] = watcher
        if release:
            self._released.add(domain_id)

    def _reap(self) -> None:
        for domain_id, watcher in list(self.stopping.items()):
            if watcher.alive:
                continue
            del self.stopping[domain_id]
            if domain_id in self._released:
                self._released.discard(domain_id)
                release_lease(domain_id=domain_id, owner=self.owner)

    def shutdown(self) -> None:
        """Stop every watcher (a run going on may finish), close their connections, give the leases back."""
        for domain_id in list(self.watchers):
            self._retire(domain_id, release=True)
        deadline = time.monotonic() + STOP_WAIT_SECONDS
        for watcher in self.stopping.values():
            watcher.join(max(0.0, deadline - time.monotonic()))
        close_old_connections()
        for domain_id, watcher in list(self.stopping.items()):
            if watcher.alive:
                logger.warning(
                    "Directory watcher: %s did not stop within %g s", watcher.name, STOP_WAIT_SECONDS
                )
            release_lease(domain_id=domain_id, owner=self.owner)
        self.stopping.clear()
        WatcherProcess.objects.filter(owner=self.owner).delete()
        WatcherProcess.objects.filter(seen_at__lt=timezone.now() - timedelta(days=1)).delete()
        logger.info("Directory watcher %s stopped", self.owner)


def watch_domains(
    *, names: Sequence[str] = (), stop: threading.Event, timing: WatchTiming | None = None
) -> None:
    """Watch the active domains (or those named) until stop is set; see `manage.py directory_watch`."""
    Supervisor(names=names, timing=timing).run(stop)
