"""Watch directories for pushed changes and apply each burst within seconds (stable contract).

`python manage.py directory_watch [DOMAIN ...]` runs in the foreground until stopped: SIGTERM or SIGINT stops
it cleanly (a run going on finishes, connections are closed, leases given back) and it exits 0. Without
domains it watches every active domain, sharing them out with the other watcher processes; with domains, just
those. Several processes never apply one domain twice (a lease per domain, see services/watch.py).
`--check` only says whether a watcher process on this host is alive (exit 0) or not (1).
"""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from directory_sync.selectors_watch import watcher_seen_here
from directory_sync.services.watch import this_host, watch_domains
from directory_sync.sync.watch import WatchTiming
from icewarp_admin.mailserver.selectors import find_domain


class Command(BaseCommand):
    help = (
        "Listen for changes the directories push (OpenLDAP syncrepl, Active Directory change notification) "
        "and synchronize each domain within seconds; runs until SIGTERM (exit 0)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("domains", nargs="*", metavar="DOMAIN", help="Watch only these domains.")
        defaults = WatchTiming()
        parser.add_argument(
            "--lease-seconds",
            type=float,
            default=defaults.lease,
            help=f"How long a domain stays with a watcher that stopped (default {defaults.lease:g}).",
        )
        parser.add_argument(
            "--batch-seconds",
            type=float,
            default=defaults.longest,
            help="A burst of changes is applied at the latest this long after its first change "
            f"(default {defaults.longest:g}).",
        )
        parser.add_argument(
            "--check",
            action="store_true",
            help="Do not watch: exit 0 when a watcher process on this host is alive (a container's health "
            "check), 1 when none renewed its leases lately.",
        )

    def handle(
        self,
        *args: Any,
        domains: list[str],
        lease_seconds: float,
        batch_seconds: float,
        check: bool,
        **options: Any,
    ) -> None:
        if check:
            seen = watcher_seen_here(host=this_host())
            if seen is None or (timezone.now() - seen).total_seconds() > 3 * WatchTiming().renew + 5:
                raise CommandError("No directory watcher on this host renewed its leases lately.")
            self.stdout.write(f"A directory watcher on this host was alive at {seen:%Y-%m-%d %H:%M:%S} UTC.")
            return
        names = []
        for name in domains:
            found = find_domain(name)
            if found is None:
                raise CommandError(f"There is no domain {name}.")
            names.append(found.name)
        if lease_seconds < 3 or batch_seconds <= 0:
            raise CommandError("--lease-seconds must be at least 3 and --batch-seconds above 0.")
        defaults = WatchTiming()
        timing = WatchTiming(
            lease=lease_seconds,
            renew=min(defaults.renew, lease_seconds / 3),
            longest=batch_seconds,
            quiet=min(defaults.quiet, batch_seconds),
        )
        stop = threading.Event()
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, lambda *_: stop.set())
        watch_domains(names=names, stop=stop, timing=timing)
