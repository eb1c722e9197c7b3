"""Reads for the push watcher: whether a domain is watched, since when, its last change and its lag."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from directory_sync.models import DirectoryWatch, WatcherProcess


@dataclass(frozen=True)
class WatchStatus:
    """What the Directory Service tab says of a domain's watcher."""

    watched: bool  # a live watcher listens to the directory now
    state: str
    state_label: str
    method: str
    server: str
    since: datetime | None
    last_change_at: datetime | None
    lag_seconds: float | None  # the last batch: first change heard → its run finished
    behind_seconds: float | None  # changes heard and not applied yet: for how long
    detail: str


def watch_status(*, domain_id: int) -> WatchStatus:
    """The domain's watcher as the tab shows it (not watched: no watcher holds it, or it cannot listen)."""
    watch = DirectoryWatch.objects.filter(domain_id=domain_id).first()
    if watch is None or not watch.held:
        return WatchStatus(
            watched=False, state="stopped", state_label="Not watched", method="", server="", since=None,
            last_change_at=watch.last_change_at if watch else None,
            lag_seconds=watch.last_lag_seconds if watch else None, behind_seconds=None,
            detail="No watcher process holds this domain: changes arrive with the schedule.",
        )  # fmt: skip
    behind = (timezone.now() - watch.pending_since).total_seconds() if watch.pending_since else None
    return WatchStatus(
        watched=watch.state == DirectoryWatch.State.WATCHING,
        state=watch.state,
        state_label=watch.get_state_display(),
        method=watch.method,
        server=watch.server,
        since=watch.watching_since,
        last_change_at=watch.last_change_at,
        lag_seconds=watch.last_lag_seconds,
        behind_seconds=round(behind, 1) if behind is not None else None,
        detail=watch.detail,
    )


def watcher_seen_here(*, host: str) -> datetime | None:
    """When a watcher process on this host last renewed its leases (None: none runs there)."""
    seen = WatcherProcess.objects.filter(host=host).order_by("-seen_at").values_list("seen_at", flat=True)
    return seen.first()
