"""Near-real-time sync against real servers: `manage.py directory_watch` (a real process) listening to slapd's
syncrepl refreshAndPersist, the runs it starts (trigger push), a killed watcher or directory, the guard, the
lease that keeps a domain with one watcher, and the tab's block. Bounds are generous (10-15 s); the latency
itself is measured by benchmarks/watch.py."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from devservers.ports import free_ports
from devservers.slapd import SlapdInstance, start_slapd
from directory_sync.models import ACTIVE_STATUSES, DirectoryWatch, SyncRun, WatcherProcess
from directory_sync.services.watch import Supervisor, acquire_lease, release_lease, renew_leases
from directory_sync.sync.watch import Batch, WatchTiming
from icewarp_admin.mailserver.models import Account, Domain
from icewarp_admin.mailserver.services.domains import create_domain
from icewarp_admin.mailserver.services.system import set_system_variable
from tests.directory_helpers import Directory, configure, new_directory, sync
from tests.watch_helpers import BOUND, WatcherProcessHandle, eventually, start_watcher, watching

__all__ = ["start_watcher"]  # a fixture

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)
FILTER = "(&(objectClass=inetOrgPerson)(!(employeeType=external)))"


def account(uid: str) -> Account | None:
    return Account.objects.filter(username=uid).first()


def gone(uid: str) -> bool:
    """Removed, or disabled pending removal (the domain's grace period)."""
    found = account(uid)
    return found is None or found.removal_due_at is not None


def push_runs(domain: Domain) -> list[SyncRun]:
    return list(SyncRun.objects.filter(domain=domain, trigger=SyncRun.Trigger.PUSH).order_by("pk"))


@pytest.fixture
def directory(slapd: SlapdInstance) -> Directory:
    return new_directory(slapd)


def test_each_kind_of_change_lands_within_seconds_as_a_push_run(
    domain: Domain, directory: Directory, start_watcher: Callable[..., WatcherProcessHandle]
) -> None:
    elsewhere = directory.slapd.base_dn
    alice = directory.add_person("alice", cn="Alice Old")
    bob = directory.add_person("bob")
    carol = directory.add_person("carol")
    dave = directory.add_person("dave")
    configure(domain, directory, account_filter=FILTER)
    assert sync(domain).status == "succeeded"
    watcher = start_watcher(domain.name)
    eventually(lambda: watching(domain), what=f"the watcher listens\n{watcher.output()}")

    directory.add_person("erin")
    eventually(lambda: account("erin"), what="an added person")
    directory.modify(alice, cn="Alice New")
    eventually(lambda: account("alice").full_name == "Alice New", what="a changed attribute")  # type: ignore[union-attr]
    renamed = f"uid=bobby,{directory.base_dn}"
    directory.slapd.ldapmodify(f"dn: {bob}\nchangetype: modrdn\nnewrdn: uid=bobby\ndeleteoldrdn: 1\n")
    eventually(
        lambda: Account.objects.filter(directory_dn__iexact=renamed).exists(), what="a renamed entry (new DN)"
    )
    directory.modify(renamed, mail="bobby@example.com")
    eventually(lambda: account("bobby"), what="a rename (the username follows the new address)")
    directory.move(carol, elsewhere)
    eventually(lambda: gone("carol"), what="a move out of the DN")
    directory.modify(dave, employeeType="external")
    eventually(lambda: gone("dave"), what="a move out of the filter")
    directory.delete(f"uid=erin,{directory.base_dn}")
    eventually(lambda: gone("erin"), what="a delete")
    # The change is visible once the apply commits; the run records its outcome just after.
    eventually(
        lambda: not SyncRun.objects.filter(domain=domain, status__in=ACTIVE_STATUSES).exists(),
        what="the last run's end",
    )

    runs = push_runs(domain)
    assert runs and all(run.status == "succeeded" and not run.full_scan for run in runs), [
        (run.status, run.tracking, run.errors) for run in runs
    ]
    actions = {event.action for run in runs for event in run.events.all()}
    assert actions >= {"create", "update", "rename"} and actions & {"disable", "remove"}, actions
    watch = DirectoryWatch.objects.get(domain=domain)
    assert watch.last_lag_seconds is not None and watch.last_lag_seconds < BOUND
    assert watch.last_change_at is not None and watch.changes_received >= 7
    call_command("directory_watch", "--check", stdout=StringIO())  # the container's health check
    assert watcher.stop() == 0, watcher.output()
    with pytest.raises(CommandError, match="No directory watcher"):
        call_command("directory_watch", "--check", stdout=StringIO())
    watch.refresh_from_db()
    assert (watch.owner, watch.state) == ("", DirectoryWatch.State.STOPPED)
    assert not WatcherProcess.objects.exists()
    directory.delete(f"uid=carol,{elsewhere}")


def test_two_changes_of_one_entry_in_the_same_second_both_land(
    domain: Domain, directory: Directory, start_watcher: Callable[..., WatcherProcessHandle]
) -> None:
    alice = directory.add_person("alice", cn="Alice")
    configure(domain, directory)
    sync(domain)
    watcher = start_watcher()
    eventually(lambda: watching(domain), what=f"the watcher listens\n{watcher.output()}")
    before = len(push_runs(domain))
    directory.modify(alice, cn="Alice Two")
    time.sleep(0.35)  # the first change's batch closes and its run starts: the second comes during it
    directory.modify(alice, mail="alice.two@example.com")
    # The new address renames the account (its username follows the address).
    eventually(
        lambda: Account.objects.filter(
            directory_dn__iexact=alice, full_name="Alice Two", username="alice.two"
        ).exists(),
        what="both changes",
    )
    assert len(push_runs(domain)) > before
    assert watcher.stop() == 0


def test_a_killed_watcher_loses_nothing(
    domain: Domain, directory: Directory, start_watcher: Callable[..., WatcherProcessHandle]
) -> None:
    alice = directory.add_person("alice", cn="Alice")
    configure(domain, directory)
    sync(domain)
    first = start_watcher()
    eventually(lambda: watching(domain), what="the first watcher listens")
    first.process.kill()
    first.process.wait(timeout=10)
    # Killed in the middle of a run: the run it left "running" holds the domain's lock.
    dead_owner = DirectoryWatch.objects.get(domain=domain).owner
    left = SyncRun.objects.create(
        domain=domain, trigger=SyncRun.Trigger.PUSH, requested_by=f"watcher ({dead_owner})",
        status=SyncRun.Status.RUNNING, started_at=timezone.now(), heartbeat_at=timezone.now(),
    )  # fmt: skip
    directory.modify(alice, cn="Changed While Nobody Listened")
    directory.add_person("bob")
    second = start_watcher()
    # The dead watcher's lease is taken over at once (same host, its process is gone); its refresh from the
    # stored cookie reports what changed meanwhile.
    eventually(lambda: account("bob"), what=f"the change made while no watcher ran\n{second.output()}")
    assert account("alice").full_name == "Changed While Nobody Listened"  # type: ignore[union-attr]
    left.refresh_from_db()
    assert left.status == "failed" and "watcher process" in left.errors[0]
    assert DirectoryWatch.objects.get(domain=domain).owner.split(":")[1] == str(second.process.pid)
    assert second.stop() == 0


@pytest.fixture
def private_slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlapdInstance]:
    instance = start_slapd(Path(tmp_path_factory.mktemp("watch-slapd")))
    yield instance
    instance.stop()


def test_a_killed_directory_loses_nothing(
    domain: Domain, private_slapd: SlapdInstance, start_watcher: Callable[..., WatcherProcessHandle]
) -> None:
    directory = new_directory(private_slapd)
    directory.add_person("alice")
    configure(domain, directory)
    sync(domain)
    watcher = start_watcher()
    eventually(lambda: watching(domain), what="the watcher listens")
    # A change, then the server dies before the batch's run could read it.
    directory.add_person("bob")
    private_slapd.kill()
    eventually(
        lambda: DirectoryWatch.objects.filter(domain=domain, state="reconnecting").exists(),
        what="the watcher notices the lost connection",
    )
    private_slapd.restart()
    directory.add_person("carol")
    eventually(lambda: account("bob") and account("carol"), what=f"both people\n{watcher.output()}")
    assert watcher.stop() == 0


def test_the_backup_host_is_watched_while_the_primary_is_down(
    domain: Domain, directory: Directory, start_watcher: Callable[..., WatcherProcessHandle]
) -> None:
    (closed,) = free_ports(1)  # nothing listens there
    directory.add_person("alice")
    configure(domain, directory, host=f"ldap://127.0.0.1:{closed}", backup_host=directory.slapd.ldap_url)
    assert sync(domain).status == "succeeded"
    watcher = start_watcher()
    watch = eventually(lambda: watching(domain), what="the watcher listens")
    assert watch.server == directory.slapd.ldap_url
    directory.add_person("bob")
    eventually(lambda: account("bob"), what="a change pushed by the backup host")
    assert watcher.stop() == 0


def test_settings_changes_restart_the_watcher_and_a_domain_switched_off_is_let_go(
    domain: Domain, directory: Directory, start_watcher: Callable[..., WatcherProcessHandle]
) -> None:
    directory.add_person("alice")
    configure(domain, directory)
    sync(domain)
    watcher = start_watcher()
    first = eventually(lambda: watching(domain), what="the watcher listens")
    configure(domain, directory, account_filter=FILTER)
    eventually(
        lambda: (again := watching(domain)) is not None and again.watching_since != first.watching_since,
        what="the watcher listening again with the new settings",
    )
    configure(domain, directory, active=False)
    eventually(
        lambda: DirectoryWatch.objects.filter(domain=domain, owner="", state="stopped").exists(),
        what="the domain let go",
    )
    assert watcher.process.poll() is None  # the process keeps watching the other domains
    assert watcher.stop() == 0


def test_the_guard_withholds_a_burst_of_removals(
    domain: Domain, directory: Directory, start_watcher: Callable[..., WatcherProcessHandle]
) -> None:
    people = [directory.add_person(f"user{number}") for number in range(5)]
    configure(domain, directory, removal_grace_days=0)
    sync(domain)
    set_system_variable(name="C_System_ADSyncMaxDeleteThreshold", value="2")
    watcher = start_watcher()
    eventually(lambda: watching(domain), what="the watcher listens")
    directory.delete(*people[:4])
    run = eventually(
        lambda: next((run for run in push_runs(domain) if run.removals_withheld), None),
        what="a push run that withholds the removals",
    )
    assert run.removals_withheld == 4
    assert Account.objects.filter(domain=domain, removal_due_at__isnull=True).count() == 5
    assert watcher.stop() == 0


def test_a_directory_without_syncrepl_is_not_watched(
    domain: Domain, tmp_path: Path, start_watcher: Callable[..., WatcherProcessHandle]
) -> None:
    plain = start_slapd(tmp_path / "plain", syncrepl=False)
    try:
        configure(domain, new_directory(plain))
        watcher = start_watcher()
        watch = eventually(
            lambda: DirectoryWatch.objects.filter(domain=domain, state="unsupported").first(),
            what="the domain marked as not watched",
        )
        assert "syncrepl" in watch.detail
        assert watcher.stop() == 0
    finally:
        plain.stop()


# --------------------------------------------------------------------------- leases and sharing


def test_a_lease_has_one_holder_until_it_expires_or_is_given_back(domain: Domain) -> None:
    assert acquire_lease(domain_id=domain.pk, owner="a:1:x", seconds=30)
    assert not acquire_lease(domain_id=domain.pk, owner="b:2:y", seconds=30)
    assert renew_leases(owner="a:1:x", domain_ids=[domain.pk], seconds=30) == {domain.pk}
    assert renew_leases(owner="b:2:y", domain_ids=[domain.pk], seconds=30) == set()
    DirectoryWatch.objects.filter(domain=domain).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert acquire_lease(domain_id=domain.pk, owner="b:2:y", seconds=30)
    assert renew_leases(owner="a:1:x", domain_ids=[domain.pk], seconds=30) == set()
    release_lease(domain_id=domain.pk, owner="b:2:y")
    assert acquire_lease(domain_id=domain.pk, owner="a:1:x", seconds=30)


def test_a_dead_process_on_this_host_loses_its_lease_at_once(domain: Domain) -> None:
    here = socket.gethostname()
    with subprocess.Popen(["sleep", "30"]) as alive:
        assert acquire_lease(domain_id=domain.pk, owner=f"{here}:{alive.pid}:live", seconds=300)
        assert not acquire_lease(domain_id=domain.pk, owner="elsewhere:1:x", seconds=30)
        alive.kill()
    # Its process is gone: whoever looks on this host takes the lease without waiting for it to expire.
    assert acquire_lease(domain_id=domain.pk, owner="elsewhere:1:x", seconds=30)
    assert not acquire_lease(domain_id=domain.pk, owner=f"{here}:{os.getpid()}:other", seconds=30)


def test_concurrent_takers_get_a_lease_once(domain: Domain) -> None:
    winners: list[str] = []
    barrier = threading.Barrier(4)

    def take(owner: str) -> None:
        from django.db import connection

        barrier.wait()
        try:
            if acquire_lease(domain_id=domain.pk, owner=owner, seconds=30):
                winners.append(owner)
        finally:
            connection.close()

    threads = [threading.Thread(target=take, args=(f"host:{n}:t",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1


def test_two_watcher_processes_share_the_domains_out(slapd: SlapdInstance) -> None:
    domains = [create_domain(name=f"share{n}.example.com") for n in range(2)]
    for each in domains:
        configure(each, new_directory(slapd))
    timing = WatchTiming(lease=10, renew=1)
    first, second = (
        Supervisor(timing=timing, owner="here:1:first"),
        Supervisor(timing=timing, owner="here:2:second"),
    )
    try:
        first.tick()
        assert len(first.watchers) == 2
        for _ in range(30):
            second.tick()
            first.tick()
            if len(first.watchers) == 1 and len(second.watchers) == 1:
                break
            time.sleep(0.2)
        assert (len(first.watchers), len(second.watchers)) == (1, 1)
        assert set(first.watchers).isdisjoint(second.watchers)
        owners = dict(DirectoryWatch.objects.values_list("domain_id", "owner"))
        assert {owners[key] for key in first.watchers} == {"here:1:first"}
        assert {owners[key] for key in second.watchers} == {"here:2:second"}
    finally:
        first.shutdown()
        second.shutdown()
    assert set(DirectoryWatch.objects.values_list("owner", flat=True)) == {""}


# --------------------------------------------------------------------------- the batch and the tab


def test_a_batch_closes_when_quiet_and_at_the_latest_after_its_first_change() -> None:
    timing = WatchTiming(quiet=0.2, longest=0.6)
    stop = threading.Event()
    batch = Batch()
    batch.add()
    started = time.monotonic()
    taken = batch.take(stop, timing)
    assert taken is not None and taken.changes == 1 and 0.15 < time.monotonic() - started < 0.5

    keep_adding = threading.Event()

    def trickle() -> None:
        while not keep_adding.wait(0.05):
            batch.add()

    thread = threading.Thread(target=trickle)
    batch.add()
    started = time.monotonic()
    thread.start()
    taken = batch.take(stop, timing)
    keep_adding.set()
    thread.join()
    assert taken is not None and taken.changes > 3 and 0.5 < time.monotonic() - started < 1.0
    batch.put_back(taken)
    assert batch.pending_since() == taken.first_at
    stop.set()
    assert Batch().take(stop, timing) is None


def test_the_tab_says_whether_the_domain_is_watched(
    domain: Domain, directory: Directory, admin: Client
) -> None:
    configure(domain, directory)
    page = admin.get(f"/domains/{domain.name}/directory/").content.decode()
    assert "Not watched" in page
    now = timezone.now()
    DirectoryWatch.objects.create(
        domain=domain, owner="here:1:x", lease_expires_at=now + timedelta(seconds=30),
        state=DirectoryWatch.State.WATCHING, method="syncrepl refreshAndPersist (RFC 4533)",
        server=directory.slapd.ldap_url, watching_since=now - timedelta(minutes=5),
        last_change_at=now - timedelta(seconds=30), last_lag_seconds=0.8,
    )  # fmt: skip
    page = admin.get(f"/domains/{domain.name}/directory/").content.decode()
    assert "Watched" in page and "syncrepl refreshAndPersist" in page and "0.8 s" in page
