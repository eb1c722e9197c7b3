"""The push watcher on Active Directory (the suite's Samba DC): the change notification control
(1.2.840.113556.1.4.528) tells `manage.py directory_watch` that something changed, and the run it starts reads
the changes by USN. Each kind of change lands within seconds; changes made while no watcher ran are caught up
(the controller's highestCommittedUSN moved past the stored mark)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
from ldap3 import MODIFY_REPLACE

from devservers.samba import SambaInstance
from directory_sync.models import ACTIVE_STATUSES, DirectoryWatch, SyncRun
from icewarp_admin.mailserver.models import Account
from icewarp_admin.mailserver.services.domains import create_domain
from tests.directory_helpers import sync
from tests.samba_fixtures import (
    BASE,
    UAC_DISABLED,
    add_user,
    admin_connection,
    configure_ad,
    delete_tree,
    move,
)
from tests.watch_helpers import WatcherProcessHandle, eventually, start_watcher, watching

__all__ = ["start_watcher"]  # a fixture

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def watch_ou(samba: SambaInstance) -> Iterator[str]:
    """An OU of this test's own (and one outside it to move people to), removed afterwards."""
    conn = admin_connection(samba)
    ours, elsewhere = f"OU=Watch{os.getpid()},{BASE}", f"OU=Former{os.getpid()},{BASE}"
    for ou in (ours, elsewhere):
        delete_tree(conn, ou)
        conn.add(ou, "organizationalUnit")
    try:
        yield ours
    finally:
        for ou in (ours, elsewhere):
            delete_tree(conn, ou)
        conn.unbind()


def account(sam: str) -> Account | None:
    return Account.objects.filter(username=sam).first()


def gone(sam: str) -> bool:
    found = account(sam)
    return found is None or found.removal_due_at is not None


def test_active_directory_pushes_each_change_and_a_restart_catches_up(
    samba: SambaInstance, watch_ou: str, start_watcher: Callable[..., WatcherProcessHandle]
) -> None:
    elsewhere = watch_ou.replace("OU=Watch", "OU=Former", 1)
    domain = create_domain(name="example.test")
    conn = admin_connection(samba)
    alice = add_user(conn, f"CN=Watch Alice,{watch_ou}", "walice", mail="walice@example.test")
    carol = add_user(conn, f"CN=Watch Carol,{watch_ou}", "wcarol", mail="wcarol@example.test")
    configure_ad(domain, samba, base_dn=watch_ou, account_filter="User", group_filter="")
    first = sync(domain)
    assert first.status == "succeeded" and account("walice"), first.errors
    watcher = start_watcher()
    watch = eventually(lambda: watching(domain), what="the watcher listens")
    assert watch.method == "Active Directory change notification"

    bob = add_user(conn, f"CN=Watch Bob,{watch_ou}", "wbob", mail="wbob@example.test")
    eventually(lambda: account("wbob"), what="an added user")
    conn.modify(alice, {"displayName": [(MODIFY_REPLACE, ["Alice Renamed"])]})
    eventually(
        lambda: Account.objects.filter(username="walice", full_name="Alice Renamed").exists(),
        what="a changed attribute",
    )
    conn.modify(bob, {"userAccountControl": [(MODIFY_REPLACE, [str(UAC_DISABLED)])]})
    eventually(lambda: account("wbob") and not account("wbob").enabled, what="a disabled user")  # type: ignore[union-attr]
    move(conn, carol, elsewhere)
    eventually(lambda: gone("wcarol"), what="a move out of the DN")
    conn.delete(bob)
    eventually(lambda: gone("wbob"), what="a delete")

    # Changes made while no watcher runs: the next one sees the USN moved and catches up.
    watcher.process.kill()
    watcher.process.wait(timeout=10)
    add_user(conn, f"CN=Watch Dave,{watch_ou}", "wdave", mail="wdave@example.test")
    second = start_watcher()
    eventually(lambda: account("wdave"), what=f"the change made while no watcher ran\n{second.output()}")

    # The account is there once the apply commits; the run records its outcome just after.
    eventually(
        lambda: not SyncRun.objects.filter(domain=domain, status__in=ACTIVE_STATUSES).exists(),
        what="the catch-up run's end",
    )

    runs = list(SyncRun.objects.filter(domain=domain, trigger=SyncRun.Trigger.PUSH))
    outcomes = [(run.status, run.tracking, run.full_scan, run.errors) for run in runs]
    # A run the killed watcher left going on is failed by the next one (and its changes read again).
    applied = [run for run in runs if not (run.status == "failed" and "Abandoned" in run.errors[0])]
    assert applied and all(run.tracking == "USN" and not run.full_scan for run in applied), outcomes
    assert second.stop() == 0, second.output()
    assert DirectoryWatch.objects.get(domain=domain).owner == ""
