"""Soft removal against the real slapd: a person who leaves is disabled and kept for the grace period
(REMOVALGRACEDAYS), comes back as the same account, is removed once the date has passed, and an administrator
can undo a run's removals from the run page."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from devservers.slapd import SlapdInstance
from directory_sync.auth import authenticate
from directory_sync.models import DirectorySettings, SignIn, SyncEvent, SyncRun
from directory_sync.services.runs import begin_run
from directory_sync.services.settings import save_directory_settings
from directory_sync.syncad import SyncadImportError, export_syncad, import_syncad
from icewarp_admin.mailserver.models import Account, Domain
from icewarp_admin.mailserver.selectors import domain_export
from icewarp_admin.mailserver.services.addresses import add_account_address
from icewarp_admin.mailserver.services.system import set_system_variable
from tests.directory_helpers import Directory, configure, new_directory, sync

pytestmark = pytest.mark.django_db

PASSWORD = "Soft-removal-Pa55"
STAFF = "(&(objectClass=inetOrgPerson)(employeeType=staff))"
TAB = "/domains/example.com/directory/"


@pytest.fixture
def directory(slapd: SlapdInstance) -> Iterator[Directory]:
    yield new_directory(slapd)


def account(username: str) -> Account:
    return Account.objects.get(username=username)


def addresses(username: str) -> list[str]:
    return [address.address for address in account(username).aliases.all()]


def events(run: SyncRun, action: str) -> list[SyncEvent]:
    return list(run.events.filter(action=action).order_by("id"))


def counts(run: SyncRun) -> dict[str, int]:
    return dict(run.counts["accounts"])


def exported(username: str, domain: Domain) -> dict[str, object]:
    return next(item for item in domain_export(domain=domain)["accounts"] if item["username"] == username)


def day(days: int) -> str:
    return timezone.localdate(timezone.now() + timedelta(days=days)).isoformat()


def leave(directory: Directory, username: str) -> None:
    directory.modify(f"uid={username},{directory.base_dn}", employeeType="former")


def come_back(directory: Directory, username: str) -> None:
    directory.modify(f"uid={username},{directory.base_dn}", employeeType="staff")


def make_due(username: str) -> None:
    """The grace period is over: move the stored date into the past."""
    Account.objects.filter(username=username).update(removal_due_at=timezone.now() - timedelta(minutes=1))


def test_leaving_the_filter_disables_the_account_and_keeps_it_pending(
    domain: Domain, directory: Directory, mail_root: Path, admin: Client
) -> None:
    directory.add_person("alice", employeeType="staff", userPassword=PASSWORD)
    directory.add_person("bob", employeeType="staff")
    configure(domain, directory, account_filter=STAFF)  # the default grace period: 7 days
    sync(domain)
    assert authenticate(address="alice@example.com", password=PASSWORD, channel=SignIn.Channel.WEB).ok
    before = account("alice")

    leave(directory, "alice")
    run = sync(domain)
    assert run.status == "succeeded", run.errors
    assert counts(run)["disabled"] == 1 and counts(run)["removed"] == 0
    alice = account("alice")
    assert alice.pk == before.pk and not alice.enabled
    assert alice.removal_due_at is not None and timezone.localdate(alice.removal_due_at).isoformat() == day(7)
    assert (mail_root / alice.mailbox_path).is_dir()
    assert addresses("alice") == ["alice@example.com"]
    (event,) = events(run, SyncEvent.Action.DISABLE)
    assert event.account_id == alice.pk
    assert event.reason.endswith(f"disabled, pending removal until {day(7)}")
    assert event.fields == {"enabled": [True, False], "removal_due_at": [None, day(7)]}
    assert exported("alice", domain)["pending_removal"] == day(7)
    assert "pending_removal" not in exported("bob", domain)

    # A pending account cannot sign in, whatever its password.
    refused = authenticate(address="alice@example.com", password=PASSWORD, channel=SignIn.Channel.WEB)
    assert not refused.ok and refused.reason == SignIn.Reason.DISABLED
    page = admin.get(reverse("mailserver:account_detail", args=["example.com", "alice"])).content.decode()
    assert f"pending removal until {day(7)}" in page
    listing = admin.get(reverse("mailserver:account_list", args=["example.com"])).content.decode()
    assert listing.count("pending removal until") == 1

    # The next runs neither disable it again nor remove it before its date.
    quiet = sync(domain)
    assert not quiet.full_scan and not quiet.events.exists()
    configure(domain, directory, account_filter=STAFF, vcard_map="FN:${cn}")  # a full read
    full = sync(domain)
    assert full.full_scan and not events(full, SyncEvent.Action.DISABLE)
    assert not events(full, SyncEvent.Action.REMOVE)
    assert account("alice").removal_due_at == alice.removal_due_at


def test_coming_back_within_the_grace_period_is_the_same_account(
    domain: Domain, directory: Directory, slapd: SlapdInstance, mail_root: Path
) -> None:
    dn = directory.add_person(
        "alice", mail=["alice@example.com", "a.anders@example.com"], employeeType="staff"
    )
    configure(domain, directory, account_filter=STAFF, removal_grace_days=30)
    sync(domain)
    add_account_address(account=account("alice"), local_part="ally")  # added here by hand
    before = account("alice")
    aliases_before = addresses("alice")

    outside = new_directory(slapd)
    moved = directory.move(dn, outside.base_dn)  # out of the DN
    assert counts(sync(domain))["disabled"] == 1
    assert not account("alice").enabled

    directory.move(moved, directory.base_dn)  # back, within the 30 days
    run = sync(domain)
    assert run.status == "succeeded", run.errors
    alice = account("alice")
    assert alice.pk == before.pk and alice.mailbox_path == before.mailbox_path
    assert (mail_root / alice.mailbox_path).is_dir()
    assert (
        addresses("alice")
        == aliases_before
        == ["alice@example.com", "a.anders@example.com", "ally@example.com"]
    )
    assert alice.enabled and alice.removal_due_at is None
    (event,) = events(run, SyncEvent.Action.UPDATE)
    assert event.account_id == alice.pk
    assert event.reason.startswith(f"back in the directory before its removal on {day(30)}")
    assert event.reason.endswith("enabled again")
    assert event.fields["enabled"] == [False, True] and event.fields["removal_due_at"] == [day(30), None]
    assert "pending_removal" not in exported("alice", domain)
    assert not sync(domain).events.exists()  # linked again for good: nothing left to do


def test_an_account_disabled_here_stays_disabled_when_it_comes_back(
    domain: Domain, directory: Directory
) -> None:
    directory.add_person("carl", employeeType="staff")
    configure(domain, directory, account_filter=STAFF)
    sync(domain)
    Account.objects.filter(username="carl").update(enabled=False)  # generic LDAP: the state is ours
    leave(directory, "carl")
    sync(domain)
    come_back(directory, "carl")
    run = sync(domain)
    assert not account("carl").enabled and account("carl").removal_due_at is None
    assert events(run, SyncEvent.Action.UPDATE)[0].reason.endswith(
        "it stays disabled, as it was before it left"
    )


def test_once_the_date_has_passed_the_next_run_removes_it_even_without_a_change(
    domain: Domain, directory: Directory, mail_root: Path
) -> None:
    directory.add_person("alice", employeeType="staff")
    directory.add_person("bob", employeeType="staff")
    directory.add_person("carol", employeeType="staff")
    configure(domain, directory, account_filter=STAFF)
    sync(domain)
    box = account("alice").mailbox_path
    leave(directory, "alice")
    sync(domain)
    make_due("alice")

    run = sync(domain)  # the directory did not change since the last run
    assert run.status == "succeeded" and not run.full_scan and run.entries_total == 0
    assert counts(run)["removed"] == 1 and "disabled" not in counts(run)
    assert not Account.objects.filter(username="alice").exists()
    assert (mail_root / box).is_dir()  # ALLDATADELETION is off: the mail stays
    (event,) = events(run, SyncEvent.Action.REMOVE)
    assert event.reason.startswith("it was disabled, pending removal until")
    assert event.fields["mailbox_path"] == [box, None]

    configure(domain, directory, account_filter=STAFF, delete_all_data=True)
    box = account("bob").mailbox_path
    leave(directory, "bob")
    sync(domain)
    assert (mail_root / box).is_dir()  # kept while pending, whatever ALLDATADELETION says
    make_due("bob")
    assert counts(sync(domain))["removed"] == 1
    assert not (mail_root / box).exists()
    assert list(Account.objects.values_list("username", flat=True)) == ["carol"]


def test_no_grace_period_removes_at_once_as_icewarp_does(domain: Domain, directory: Directory) -> None:
    directory.add_person("alice", employeeType="staff")
    directory.add_person("bob", employeeType="staff")
    configure(domain, directory, account_filter=STAFF)
    sync(domain)
    leave(directory, "alice")
    assert counts(sync(domain))["disabled"] == 1

    configure(domain, directory, account_filter=STAFF, removal_grace_days=0)
    leave(directory, "bob")
    run = sync(domain)
    assert counts(run)["removed"] == 2 and "disabled" not in counts(run)
    assert not Account.objects.exists()  # the pending one goes too: the domain now removes at once
    assert {event.label for event in events(run, SyncEvent.Action.REMOVE)} == {
        "alice@example.com",
        "bob@example.com",
    }


def test_the_guard_withholds_a_mass_pending_removal(domain: Domain, directory: Directory) -> None:
    for name in ("ann", "ben", "cat", "dan"):
        directory.add_person(name, employeeType="staff")
    configure(domain, directory, account_filter=STAFF)
    sync(domain)
    set_system_variable(name="C_System_ADSyncMaxDeleteThreshold", value=2)
    for name in ("ann", "ben", "cat"):
        leave(directory, name)
    run = sync(domain)
    assert run.removals_withheld == 3 and "disabled pending removal" in run.withheld_reason
    assert "C_System_ADSyncMaxDeleteThreshold (2)" in run.withheld_reason
    assert counts(run)["removed"] == 0 and "disabled" not in counts(run)
    assert len(events(run, SyncEvent.Action.WITHHELD)) == 3 and not events(run, SyncEvent.Action.DISABLE)
    assert Account.objects.filter(enabled=True, removal_due_at__isnull=True).count() == 4

    leave(directory, "dan")  # a bad filter that would disable everyone is withheld the same way
    set_system_variable(name="C_System_ADSyncMaxDeleteThreshold", value=0)
    configure(domain, directory, account_filter="(employeeNumber=nobody)")
    run = sync(domain)
    assert run.removals_withheld == 4 and "returned no entries at all" in run.withheld_reason
    assert Account.objects.filter(enabled=True, removal_due_at__isnull=True).count() == 4


def test_a_new_entry_wanting_a_pending_address_is_a_conflict_naming_the_holder(
    domain: Domain, directory: Directory
) -> None:
    directory.add_person("alice", employeeType="staff")
    configure(domain, directory, account_filter=STAFF)
    sync(domain)
    leave(directory, "alice")
    sync(domain)
    directory.add_person("alice2", mail="alice@example.com", employeeType="staff")
    run = sync(domain)
    (conflict,) = events(run, SyncEvent.Action.CONFLICT)
    assert f"account alice@example.com (disabled, pending removal until {day(7)})" in conflict.reason
    assert list(Account.objects.values_list("username", flat=True)) == ["alice"]


def test_undo_a_runs_removals_from_the_run_page(
    domain: Domain, directory: Directory, mail_root: Path, client_for: Callable[[str | None], Client]
) -> None:
    for name in ("alice", "bob", "carol"):
        directory.add_person(name, employeeType="staff")
    configure(domain, directory, account_filter=STAFF)
    sync(domain)
    alice_id, bob_box = account("alice").pk, account("bob").mailbox_path
    bob_key = account("bob").directory_guid
    leave(directory, "alice")
    leave(directory, "bob")
    bad = sync(domain)
    assert counts(bad)["disabled"] == 2
    make_due("bob")
    later = sync(domain)
    assert counts(later)["removed"] == 1 and not Account.objects.filter(username="bob").exists()

    url = reverse("sync_history:undo_removals", args=[bad.pk])
    page = reverse("sync_history:run", args=[bad.pk])
    for role in ("helpdesk", "operator"):
        client = client_for(role)
        assert "Undo these removals" not in client.get(page).content.decode()
        assert client.post(url).status_code == 403
    assert not SyncRun.objects.filter(trigger=SyncRun.Trigger.UNDO).exists()
    assert not account("alice").enabled

    admin = client_for("administrator")
    shown = admin.get(page).content.decode()
    assert "Undo these removals" in shown and "disabled 2 accounts, pending removal" in shown
    response = admin.post(url)
    undo = SyncRun.objects.get(trigger=SyncRun.Trigger.UNDO)
    assert response.status_code == 302 and response["Location"] == reverse("sync_history:run", args=[undo.pk])
    assert undo.undoes_id == bad.pk and undo.requested_by == "user-administrator"
    assert undo.status == "succeeded" and undo.finished_at is not None
    assert counts(undo) == {"enabled_again": 1, "restored": 1, "not_restored": 0}

    alice = account("alice")
    assert alice.pk == alice_id and alice.enabled and alice.removal_due_at is None
    assert alice.removal_kept_until is not None
    bob = account("bob")  # restored from its removal: the same mailbox folder, addresses and directory id
    assert bob.enabled and bob.mailbox_path == bob_box and (mail_root / bob_box).is_dir()
    assert addresses("bob") == ["bob@example.com"] and bob.directory_guid == bob_key
    restored = {event.label: event for event in events(undo, SyncEvent.Action.RESTORE)}
    assert set(restored) == {"alice@example.com", "bob@example.com"}
    assert restored["alice@example.com"].account_id == alice.pk
    assert f"undo of run #{bad.pk} by user-administrator" in restored["bob@example.com"].reason
    assert f"restored from its removal in run #{later.pk}" in restored["bob@example.com"].reason

    # The history shows the undo, on the run undone and as a run of its own.
    assert "Undone by user-administrator" in admin.get(page).content.decode()
    undo_page = admin.get(reverse("sync_history:run", args=[undo.pk])).content.decode()
    assert "Undo of removals" in undo_page and f"run #{bad.pk}" in undo_page
    assert (
        admin.get(reverse("sync_history:list") + "?trigger=undo")
        .content.decode()
        .count(f'href="{reverse("sync_history:run", args=[undo.pk])}"')
    )
    again = admin.post(url, HTTP_HX_REQUEST="true")  # a second undo is refused, and says so
    assert again["HX-Redirect"] == page and SyncRun.objects.filter(trigger=SyncRun.Trigger.UNDO).count() == 1
    assert "were undone already, by user-administrator" in admin.get(page).content.decode()

    # The next runs keep them although their entries are still out of the filter...
    assert not sync(domain).events.filter(action__in=["disable", "remove"]).exists()
    configure(domain, directory, account_filter=STAFF, vcard_map="FN:${cn}")  # a full read
    full = sync(domain)
    assert not full.events.filter(action__in=["disable", "remove"]).exists()
    assert any("2 accounts whose entries are missing are kept" in warning for warning in full.warnings)
    assert Account.objects.filter(enabled=True).count() == 3
    # ... until the entry is back: then it is an ordinary synced account again.
    come_back(directory, "alice")
    back = sync(domain)
    assert events(back, SyncEvent.Action.UPDATE)[0].reason == (
        "back in the directory: no longer kept by the undo of its removal"
    )
    assert account("alice").removal_kept_until is None


def test_an_undo_says_which_removed_accounts_lost_their_mail(
    domain: Domain, directory: Directory, mail_root: Path, admin: Client
) -> None:
    directory.add_person("alice", employeeType="staff")
    directory.add_person("bob", employeeType="staff")
    configure(domain, directory, account_filter=STAFF, removal_grace_days=0, delete_all_data=True)
    sync(domain)
    leave(directory, "alice")
    run = sync(domain)
    assert counts(run)["removed"] == 1

    admin.post(reverse("sync_history:undo_removals", args=[run.pk]))
    undo = SyncRun.objects.get(trigger=SyncRun.Trigger.UNDO)
    assert counts(undo) == {"enabled_again": 0, "restored": 0, "not_restored": 1}
    (skipped,) = events(undo, SyncEvent.Action.SKIP)
    assert skipped.label == "alice@example.com" and "its mail data was deleted" in skipped.reason
    assert "1 removed accounts could not be restored" in undo.warnings[0]
    assert not Account.objects.filter(username="alice").exists()


def test_an_undo_waits_for_no_run_it_is_refused_while_one_is_going_on(
    domain: Domain, directory: Directory, admin: Client
) -> None:
    directory.add_person("alice", employeeType="staff")
    configure(domain, directory, account_filter=STAFF)
    sync(domain)
    leave(directory, "alice")
    run = sync(domain)
    busy = begin_run(domain=domain, trigger=SyncRun.Trigger.MANUAL, requested_by="someone", dispatch=False)
    admin.post(reverse("sync_history:undo_removals", args=[run.pk]))
    assert not SyncRun.objects.filter(trigger=SyncRun.Trigger.UNDO).exists()
    page = admin.get(reverse("sync_history:run", args=[run.pk])).content.decode()
    assert f"is queued (#{busy.run.pk}): undo once it has ended" in page
    assert not account("alice").enabled


def test_removal_grace_days_round_trips_through_syncad(domain: Domain) -> None:
    save_directory_settings(
        domain=domain,
        values={"host": "ldap.example.com", "base_dn": "dc=example,dc=com", "removal_grace_days": 30},
    )
    text = export_syncad([domain])
    assert "<REMOVALGRACEDAYS>30</REMOVALGRACEDAYS>" in text
    import_syncad(text.replace("<REMOVALGRACEDAYS>30<", "<REMOVALGRACEDAYS>0<"))
    assert DirectorySettings.objects.get(domain=domain).removal_grace_days == 0
    import_syncad(text)
    assert DirectorySettings.objects.get(domain=domain).removal_grace_days == 30
    # IceWarp's own files do not have the key: the default.
    import_syncad(text.replace("<REMOVALGRACEDAYS>30</REMOVALGRACEDAYS>", ""))
    assert DirectorySettings.objects.get(domain=domain).removal_grace_days == 7
    for bad in ("4000", "a week", "-1"):
        with pytest.raises(SyncadImportError, match="REMOVALGRACEDAYS"):
            import_syncad(text.replace("<REMOVALGRACEDAYS>30<", f"<REMOVALGRACEDAYS>{bad}<"))
    assert DirectorySettings.objects.get(domain=domain).removal_grace_days == 7


def test_the_advanced_section_validates_the_grace_period(domain: Domain, admin: Client) -> None:
    advanced = {
        "section": "advanced",
        "server_type": "generic",
        "sync_accounts": "on",
        "login_source": "dn",
        "username_source": "alias",
    }
    assert admin.post(TAB, {**advanced, "removal_grace_days": "14"}).status_code == 302
    assert DirectorySettings.objects.get(domain=domain).removal_grace_days == 14
    for bad, says in (("3651", "between 0 and 3650"), ("soon", "whole number")):
        response = admin.post(TAB, {**advanced, "removal_grace_days": bad})
        assert response.status_code == 200 and says in response.content.decode()
    assert DirectorySettings.objects.get(domain=domain).removal_grace_days == 14
    assert "Keep removed people for (days)" in admin.get(TAB).content.decode()
