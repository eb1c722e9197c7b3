"""The conflict centre and field ownership, against the real slapd: every kind of conflict listed with both
sides, each action resolving it (the next run agrees), decisions that stay, roles, and a page of 1,000."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from devservers.slapd import SlapdInstance
from directory_sync.models import SyncConflict, SyncEvent, SyncRun, SyncState
from directory_sync.services.sync import execute_run
from icewarp_admin.mailserver.models import Account, Address, Domain, Group, Provenance, UserTemplate
from icewarp_admin.mailserver.services.accounts import create_account, update_personal_data
from icewarp_admin.mailserver.services.domains import create_domain
from icewarp_admin.mailserver.services.groups import create_group
from icewarp_admin.mailserver.services.templates import save_template
from tests.directory_helpers import Directory, configure, new_directory, sync

pytestmark = pytest.mark.django_db
LIST = "/sync/conflicts/"


@pytest.fixture
def directory(slapd: SlapdInstance) -> Iterator[Directory]:
    yield new_directory(slapd)


def open_conflicts(**filters: Any) -> list[SyncConflict]:
    return list(SyncConflict.objects.filter(status="open", **filters))


def the_conflict(**filters: Any) -> SyncConflict:
    found = open_conflicts(**filters)
    assert len(found) == 1, [(c.kind, c.value, c.reason) for c in SyncConflict.objects.all()]
    return found[0]


def act(client: Client, conflict: SyncConflict, action: str, **data: Any) -> Any:
    return client.post(f"/sync/conflicts/{conflict.pk}/resolve/", {"action": action, **data})


def full_read_next(domain: Domain) -> None:
    """The next run reads every entry (its stored position is forgotten), as the daily reconcile does."""
    SyncState.objects.filter(domain=domain).update(cursor={})


def compare_all_next(domain: Domain) -> None:
    """The next run reads and maps every entry, whatever its change stamp (as after a settings change)."""
    SyncState.objects.filter(domain=domain).update(config_fingerprint="")


def owner_of(html: str, label: str) -> str:
    """The owner a page's field-ownership table gives a field."""
    found = re.search(rf"<td>{label}</td>\s*<td><span class=\"badge[^\"]*\">([^<]+)</span>", html)
    assert found, label
    return found.group(1)


def run_queued(domain: Domain) -> SyncRun:
    """The run an action queued, run here as the worker would run it."""
    queued = SyncRun.objects.get(domain=domain, status="queued")
    done = execute_run(run_id=queued.pk)
    assert done.status == "succeeded", done.errors
    return done


def account(username: str, domain: str = "example.com") -> Account:
    return Account.objects.get(domain__name=domain, username=username)


def addresses(username: str) -> list[str]:
    return [address.address for address in account(username).aliases.all()]


def page(client: Client, query: str = "") -> str:
    response = client.get(LIST + query)
    assert response.status_code == 200
    return response.content.decode()


# Each kind, both sides --------------------------------------------------------------------------------------


def test_an_address_held_by_a_manual_account(domain: Domain, directory: Directory, admin: Client) -> None:
    holder = create_account(domain=domain, username="noah.local", aliases=["noah.local", "noah"])
    dn = directory.add_person("noah")
    configure(domain, directory)
    run = sync(domain)
    conflict = the_conflict(kind="address")
    assert (conflict.value, conflict.dn, conflict.holder_account, conflict.holder_linked) == (
        "noah",
        dn,
        holder,
        False,
    )
    assert conflict.wanted_addresses == ["noah@example.com"] and conflict.wanted_username == "noah"
    assert conflict.first_run == run and conflict.runs_seen == 1
    html = page(admin)
    assert dn in html and conflict.directory_key in html and "noah@example.com" in html
    assert "/domains/example.com/accounts/noah.local/" in html and "manual" in html
    assert (
        "Keep the local one" in html
        and "Give it to the directory" in html
        and "Link the local account" in html
    )

    sync(domain)  # only the changes are read: the entry is not, its conflict stays as it was
    assert SyncConflict.objects.get(pk=conflict.pk).runs_seen == 1
    full_read_next(domain)  # a full read sees it again: the same row, not a second one
    sync(domain)
    assert the_conflict(kind="address").pk == conflict.pk
    assert SyncConflict.objects.get(pk=conflict.pk).runs_seen == 2


def test_a_username_clash(domain: Domain, directory: Directory, admin: Client) -> None:
    create_account(domain=domain, username="olga", aliases=["olga.manual"])
    dn = directory.add_person("olga")
    configure(domain, directory)
    sync(domain)
    conflict = the_conflict(kind="username")
    assert (conflict.value, conflict.dn, conflict.holder_account) == ("olga", dn, account("olga"))
    html = page(admin, "?kind=username")
    assert "Username clash" in html and dn in html and "/domains/example.com/accounts/olga/" in html
    assert "rename it, or remove the account" in html


def test_one_entry_matched_by_two_domains(domain: Domain, directory: Directory, admin: Client) -> None:
    other = create_domain(name="other.org")
    dn = directory.add_person("pat")
    configure(domain, directory)
    sync(domain)
    # other.org reads the same DN and takes example.com's addresses as its own (HOSTDOMAIN).
    configure(other, directory, host_domain_active=True, host_domain="example.com;example.com")
    run = sync(other)
    assert run.conflicts == 1 and not Account.objects.filter(domain=other).exists()
    conflict = the_conflict(kind="other_domain")
    assert (conflict.domain, conflict.value, conflict.holder_account) == (
        other,
        "example.com",
        account("pat"),
    )
    assert conflict.directory_key == account("pat").directory_guid
    html = page(admin, "?domain=other.org")
    assert dn in html and "/domains/example.com/accounts/pat/" in html and "synced" in html
    assert "other domain" in html  # why giving is not offered


def test_an_id_moved_to_another_entry(
    domain: Domain, directory: Directory, admin: Client, mail_root: Path
) -> None:
    # The id attribute here is employeeNumber: unlike entryUUID, people can hand it on.
    bob = directory.add_person("bob", employeeNumber="42")
    carol = directory.add_person("carol", employeeNumber="57")
    configure(domain, directory, guid_attribute="employeeNumber")
    sync(domain)
    bob_id, carol_id, carol_box = account("bob").pk, account("carol").pk, account("carol").mailbox_path
    directory.delete(bob)
    directory.modify(carol, employeeNumber="42")  # bob's number, given to carol
    run = sync(domain)
    conflict = the_conflict(kind="moved_id")
    assert (conflict.directory_key, conflict.value, conflict.dn) == ("42", "57", carol)
    assert (conflict.entry_account_id, conflict.holder_account_id) == (bob_id, carol_id)
    assert "moved from" in conflict.reason
    # Following the id would have made bob's account carol's and removed carol's: nothing of it happened.
    assert run.removals_withheld == 1
    assert (account("bob").pk, account("carol").pk) == (bob_id, carol_id)
    html = page(admin)
    assert "Directory id moved" in html and carol in html and "/domains/example.com/accounts/carol/" in html
    assert "/domains/example.com/accounts/bob/" in html

    # Link carol's own account to the entry: bob's is unlinked and stays, with its mail.
    assert act(admin, conflict, "adopt").status_code == 302
    done = run_queued(domain)
    assert done.conflicts == 0 and not open_conflicts()
    assert account("carol").pk == carol_id and account("carol").directory_guid == "42"
    assert account("carol").mailbox_path == carol_box and (mail_root / carol_box).is_dir()
    assert account("bob").directory_guid is None
    assert SyncConflict.objects.get(pk=conflict.pk).resolution == "adopted"


def test_a_dn_that_carries_another_id_now(
    domain: Domain, directory: Directory, admin: Client, mail_root: Path
) -> None:
    dn = directory.add_person("dan")
    configure(domain, directory)
    sync(domain)
    before = account("dan")
    directory.delete(dn)
    directory.add_person("dan")  # the same DN, a new entryUUID: deleted and made again
    run = sync(domain)
    conflict = the_conflict(kind="moved_id")
    assert conflict.entry_account is None and conflict.holder_account_id == before.pk
    assert conflict.value == before.directory_guid and "carries another id" in conflict.reason
    assert run.removals_withheld == 1 and account("dan").pk == before.pk

    act(admin, conflict, "adopt")
    run_queued(domain)
    after = account("dan")
    assert (after.pk, after.mailbox_path) == (before.pk, before.mailbox_path)
    assert after.directory_guid == conflict.directory_key and after.directory_change_stamp
    assert (mail_root / after.mailbox_path).is_dir() and not open_conflicts()
    assert sync(domain).removals_withheld == 0 and Account.objects.count() == 1


def test_following_a_moved_id(domain: Domain, directory: Directory, admin: Client) -> None:
    bob = directory.add_person("bob", employeeNumber="42")
    carol = directory.add_person("carol", employeeNumber="57")
    configure(domain, directory, guid_attribute="employeeNumber")
    sync(domain)
    bob_id = account("bob").pk
    directory.delete(bob)
    directory.modify(carol, employeeNumber="42")
    sync(domain)
    conflict = the_conflict(kind="moved_id")
    act(admin, conflict, "give")
    done = run_queued(domain)
    # The id is followed: the account of the gone id is no longer held back from its removal (which frees
    # carol's address for the id's account), and the moved id is not reported again.
    assert done.removals_withheld == 0 and not open_conflicts(kind="moved_id")
    assert Account.objects.get(directory_guid="42").pk == bob_id
    assert SyncConflict.objects.get(pk=conflict.pk).resolution == "given"
    full_read_next(domain)
    sync(domain)
    assert not open_conflicts(kind="moved_id")


def test_two_entries_with_one_id(domain: Domain, directory: Directory, admin: Client) -> None:
    directory.add_person("eve", employeeNumber="7")
    second = directory.add_person("fay", employeeNumber="7")
    configure(domain, directory, guid_attribute="employeeNumber")
    sync(domain)
    conflict = the_conflict(kind="duplicate_id")
    assert conflict.dn == second and "uid=eve" in conflict.holder
    html = page(admin)
    assert "Two entries with one id" in html and "fix it in the directory" in html

    act(admin, conflict, "keep_local")
    compare_all_next(domain)  # both entries mapped again: the second is skipped, not reported again
    done = run_queued(domain)
    assert done.conflicts == 0 and not open_conflicts()
    skip = SyncEvent.objects.get(run=done, action="skip", dn=second)
    assert f"kept local (conflict #{conflict.pk})" in skip.reason


def test_a_group_alias_held_by_a_manual_group(domain: Domain, directory: Directory, admin: Client) -> None:
    create_group(domain=domain, alias="team", name="Our team")
    directory.add_person("gus")
    dn = f"cn=team,{directory.base_dn}"
    directory.slapd.ldapadd(
        f"dn: {dn}\nobjectClass: groupOfNames\ncn: team\nmember: uid=gus,{directory.base_dn}\n"
    )
    configure(domain, directory)
    sync(domain)
    conflict = the_conflict(object_type="group")
    local = Group.objects.get()
    assert (conflict.kind, conflict.value, conflict.holder_group) == ("address", "team", local)
    html = page(admin)
    assert dn in html and "/domains/example.com/groups/team/" in html and "rename or delete the group" in html
    assert "Link the local group to the entry" in html

    assert act(admin, conflict, "adopt").status_code == 302
    run_queued(domain)
    linked = Group.objects.get()
    assert (linked.pk, linked.directory_guid, linked.directory_dn) == (local.pk, conflict.directory_key, dn)
    members = [m.account_id for m in linked.memberships.all()]
    assert linked.name == "team" and members == [account("gus").pk]
    assert not open_conflicts()


# Actions ---------------------------------------------------------------------------------------------------


def test_keep_local_syncs_the_entry_without_the_address_for_good(
    domain: Domain, directory: Directory, client_for: Callable[[str | None], Client]
) -> None:
    holder = create_account(domain=domain, username="noah.local", aliases=["noah.local", "noah"])
    dn = directory.add_person("noah", mail=["noah@example.com", "n.smith@example.com"])
    configure(domain, directory)
    sync(domain)
    conflict = the_conflict(kind="address")
    helpdesk = client_for("helpdesk")
    response = act(helpdesk, conflict, "keep_local")
    assert response.status_code == 302 and response["Location"] == LIST
    resolved = SyncConflict.objects.get(pk=conflict.pk)
    assert (resolved.status, resolved.resolution, resolved.resolved_by) == (
        "resolved",
        "kept_local",
        "user-helpdesk",
    )
    assert resolved.resolved_at is not None and resolved.recheck

    done = run_queued(domain)
    synced = Account.objects.get(directory_guid=conflict.directory_key)
    assert [a.address for a in synced.aliases.all()] == ["n.smith@example.com"]
    assert addresses("noah.local") == ["noah.local@example.com", "noah@example.com"]
    created = SyncEvent.objects.get(run=done, action="create")
    assert f"without noah@example.com (conflict #{conflict.pk}): kept local" in created.reason
    assert not SyncConflict.objects.get(pk=conflict.pk).recheck

    # Later runs, full and after a change of the entry, do not open it again.
    directory.modify(dn, title="Engineer")
    assert sync(domain).conflicts == 0
    full_read_next(domain)
    assert sync(domain).conflicts == 0
    assert not open_conflicts() and holder.aliases.count() == 2
    html = page(helpdesk, "?status=resolved")
    assert "Kept the local one" in html and "user-helpdesk" in html and dn in html
    assert dn not in page(helpdesk)  # not among the open ones


def test_keep_local_leaves_an_entry_with_one_address_out(
    domain: Domain, directory: Directory, admin: Client
) -> None:
    create_account(domain=domain, username="noah.local", aliases=["noah.local", "noah"])
    dn = directory.add_person("noah")
    configure(domain, directory)
    sync(domain)
    conflict = the_conflict(kind="address")
    act(admin, conflict, "keep_local")
    done = run_queued(domain)
    assert done.conflicts == 0 and done.counts["accounts"]["skipped"] == 1
    assert "kept local" in SyncEvent.objects.get(run=done, dn=dn).reason
    full_read_next(domain)
    assert sync(domain).conflicts == 0 and not open_conflicts()
    assert not Account.objects.filter(directory_guid__isnull=False).exists()


def test_give_removes_a_manual_alias_and_the_entry_gets_it(
    domain: Domain, directory: Directory, admin: Client
) -> None:
    create_account(domain=domain, username="noah.local", aliases=["noah.local", "noah"])
    directory.add_person("noah")
    configure(domain, directory)
    sync(domain)
    conflict = the_conflict(kind="address")
    assert act(admin, conflict, "give").status_code == 302
    assert addresses("noah.local") == ["noah.local@example.com"]
    run_queued(domain)
    assert (
        addresses("noah") == ["noah@example.com"] and account("noah").directory_guid == conflict.directory_key
    )
    resolved = SyncConflict.objects.get(pk=conflict.pk)
    assert resolved.resolution == "given" and "Removed noah@example.com" in resolved.resolution_note
    assert not open_conflicts()


def test_give_renames_a_manual_account_only_when_asked(
    domain: Domain, directory: Directory, admin: Client, mail_root: Path
) -> None:
    holder = create_account(domain=domain, username="olga")  # its username is its only address
    directory.add_person("olga")
    configure(domain, directory)
    sync(domain)
    conflict = the_conflict()
    response = act(admin, conflict, "give")
    assert response.status_code == 200  # nothing said what to do with olga: asked again, nothing changed
    html = response.content.decode()
    assert "must be renamed or removed" in html and "Nothing was changed" in html
    assert SyncConflict.objects.get(pk=conflict.pk).status == "open" and addresses("olga") == [
        "olga@example.com"
    ]

    response = act(admin, conflict, "give", rename_to="olga old")
    assert response.status_code == 200 and "not a valid address part" in response.content.decode()
    assert act(admin, conflict, "give", rename_to="olga.old").status_code == 302
    renamed = Account.objects.get(pk=holder.pk)
    assert renamed.username == "olga.old" and addresses("olga.old") == ["olga.old@example.com"]
    assert renamed.mailbox_path == holder.mailbox_path  # it keeps its folder
    run_queued(domain)
    assert account("olga").directory_guid == conflict.directory_key and addresses("olga") == [
        "olga@example.com"
    ]
    assert not open_conflicts()


def test_give_removes_a_manual_account_with_confirmation(
    domain: Domain, directory: Directory, client_for: Callable[[str | None], Client], mail_root: Path
) -> None:
    holder = create_account(domain=domain, username="olga")
    directory.add_person("olga")
    configure(domain, directory)
    sync(domain)
    conflict = the_conflict()
    # Helpdesk resolves conflicts, but removing an account is an administrator's.
    assert act(client_for("helpdesk"), conflict, "give", remove_holder="on").status_code == 403
    assert Account.objects.filter(pk=holder.pk).exists()
    assert act(client_for("administrator"), conflict, "give", remove_holder="on").status_code == 302
    assert not Account.objects.filter(pk=holder.pk).exists() and (mail_root / holder.mailbox_path).is_dir()
    run_queued(domain)
    assert account("olga").directory_guid == conflict.directory_key and not open_conflicts()


def test_adopt_links_the_manual_account_keeping_its_mailbox_and_id(
    domain: Domain, directory: Directory, admin: Client, mail_root: Path
) -> None:
    holder = create_account(
        domain=domain, username="noah.local", aliases=["noah.local", "noah"], password="secret-1234"
    )
    (mail_root / holder.mailbox_path / "cur" / "1.eml").parent.mkdir(parents=True)
    (mail_root / holder.mailbox_path / "cur" / "1.eml").write_text("Subject: kept\n\nmail")
    dn = directory.add_person("noah", cn="Noah Nguyen")
    configure(domain, directory)
    sync(domain)
    conflict = the_conflict(kind="address")
    assert act(admin, conflict, "adopt").status_code == 302
    run_queued(domain)
    adopted = Account.objects.get(pk=holder.pk)
    assert (adopted.directory_guid, adopted.directory_dn) == (conflict.directory_key, dn)
    assert (
        adopted.username == "noah" and adopted.full_name == "Noah Nguyen" and adopted.auth_mode == "directory"
    )
    assert adopted.password == "" and adopted.directory_change_stamp
    assert adopted.mailbox_path == holder.mailbox_path
    assert (mail_root / adopted.mailbox_path / "cur" / "1.eml").read_text().endswith("mail")
    assert [(a.local_part, a.source) for a in adopted.aliases.all()] == [
        ("noah", Provenance.DIRECTORY),
        ("noah.local", Provenance.MANUAL),
    ]
    assert Account.objects.count() == 1 and not open_conflicts()
    assert SyncConflict.objects.get(pk=conflict.pk).resolution == "adopted"


def test_a_conflict_the_directory_solves_is_closed_by_the_run(domain: Domain, directory: Directory) -> None:
    create_account(domain=domain, username="noah.local", aliases=["noah.local", "noah"])
    dn = directory.add_person("noah")
    configure(domain, directory)
    sync(domain)
    conflict = the_conflict()
    directory.modify(dn, mail="noah.nguyen@example.com")
    run = sync(domain)
    closed = SyncConflict.objects.get(pk=conflict.pk)
    assert (closed.status, closed.resolution, closed.resolution_run) == ("resolved", "by_directory", run)
    synced = Account.objects.get(directory_guid=conflict.directory_key)
    assert [address.address for address in synced.aliases.all()] == ["noah.nguyen@example.com"]


def test_a_dry_run_opens_no_conflict(domain: Domain, directory: Directory) -> None:
    create_account(domain=domain, username="noah.local", aliases=["noah.local", "noah"])
    directory.add_person("noah")
    configure(domain, directory)
    assert sync(domain, dry_run=True).conflicts == 1
    assert not SyncConflict.objects.exists()


def test_an_action_on_a_resolved_conflict_says_so(
    domain: Domain, directory: Directory, admin: Client
) -> None:
    create_account(domain=domain, username="noah.local", aliases=["noah.local", "noah"])
    directory.add_person("noah")
    configure(domain, directory)
    sync(domain)
    conflict = the_conflict()
    act(admin, conflict, "keep_local")
    response = act(admin, conflict, "give")
    assert response.status_code == 200 and "resolved already" in response.content.decode()
    assert addresses("noah.local") == ["noah.local@example.com", "noah@example.com"]


def test_operators_read_and_cannot_act(
    domain: Domain, directory: Directory, client_for: Callable[[str | None], Client]
) -> None:
    create_account(domain=domain, username="noah.local", aliases=["noah.local", "noah"])
    directory.add_person("noah")
    configure(domain, directory)
    sync(domain)
    conflict = the_conflict()
    operator = client_for("operator")
    html = page(operator)
    assert "noah@example.com" in html and 'href="/sync/conflicts/"' in html
    assert "Keep the local one" not in html and "/resolve/" not in html
    for action in ("keep_local", "give", "adopt"):
        assert act(operator, conflict, action).status_code == 403
    assert SyncConflict.objects.get(pk=conflict.pk).status == "open"
    assert addresses("noah.local") == ["noah.local@example.com", "noah@example.com"]
    assert not SyncRun.objects.filter(status="queued").exists()
    assert client_for(None).get(LIST).status_code == 403


def test_the_record_phase_writes_conflicts_in_bulk(domain: Domain, directory: Directory) -> None:
    """The same queries for 5 conflicts as for 40: nothing per conflict. (New rows go in by COPY on
    PostgreSQL, in batches as large as the database takes elsewhere.)"""

    def conflict_queries(count: int, start: int) -> tuple[int, int]:
        for number in range(start, start + count):
            create_account(domain=domain, username=f"held{number}.local", aliases=[f"held{number}"])
            directory.add_person(f"held{number}")
        with CaptureQueriesContext(connection) as queries:
            sync(domain)
        ours = [
            query["sql"]
            for query in queries.captured_queries
            if "directory_sync_syncconflict" in query["sql"]
        ]
        inserts = sum(sql.startswith("INSERT") for sql in ours)
        return len(ours) - inserts, inserts

    configure(domain, directory)
    conflict_queries(1, 0)
    full_read_next(domain)  # both measured runs read everything: the open ones are seen again, new ones too
    few, _ = conflict_queries(5, 1)
    full_read_next(domain)
    many, inserts = conflict_queries(40, 6)
    assert len(open_conflicts()) == 46 and SyncConflict.objects.filter(runs_seen=3).count() == 1
    assert few == many and inserts <= 2


def test_a_thousand_conflicts_render_in_a_bounded_number_of_queries(
    domain: Domain, admin: Client, django_assert_max_num_queries: Any
) -> None:
    now = timezone.now()
    holders = Account.objects.bulk_create(
        Account(domain=domain, username=f"holder{number}", mailbox_path=f"example.com/holder{number}")
        for number in range(1000)
    )
    Address.objects.bulk_create(
        Address(domain=domain, local_part=f"holder{number}", account=holder)
        for number, holder in enumerate(holders)
    )
    SyncConflict.objects.bulk_create(
        SyncConflict(
            domain=domain, object_type="account", kind="address", directory_key=f"key-{number}",
            value=f"holder{number}", dn=f"uid=holder{number},dc=example,dc=com", label=f"holder{number}",
            wanted_addresses=[f"holder{number}@example.com"], holder=f"account holder{number}@example.com",
            holder_account=holder, first_seen_at=now, last_seen_at=now,
        )
        for number, holder in enumerate(holders)
    )  # fmt: skip
    with django_assert_max_num_queries(12):
        html = page(admin)
    assert "1000 conflicts" in html and html.count("Keep the local one") == 100
    with django_assert_max_num_queries(12):
        assert "Page 10 of 10" in page(admin, "?page=10")


def test_bad_filters_and_actions_say_what_to_fix(domain: Domain, directory: Directory, admin: Client) -> None:
    create_account(domain=domain, username="noah.local", aliases=["noah.local", "noah"])
    directory.add_person("noah")
    configure(domain, directory)
    sync(domain)
    html = page(admin, "?kind=nonsense&domain=nowhere.example")
    assert "These filters are not valid" in html and "noah@example.com" in html
    response = act(admin, the_conflict(), "explode")
    assert response.status_code == 200 and "Choose keep the local one" in response.content.decode()


# Field ownership -------------------------------------------------------------------------------------------


def test_the_pages_say_who_owns_each_field(
    domain: Domain, directory: Directory, admin: Client, client_for: Callable[[str | None], Client]
) -> None:
    template = save_template(template=UserTemplate(name="Staff", quota_mb=500, services=["imap"]))
    domain.default_template = template
    domain.save()
    directory.add_person("hana")
    directory.slapd.ldapadd(
        f"dn: cn=crew,{directory.base_dn}\nobjectClass: groupOfNames\ncn: crew\n"
        f"member: uid=hana,{directory.base_dn}\n"
    )
    create_account(domain=domain, username="local.only")
    configure(domain, directory)
    sync(domain)
    html = admin.get("/domains/example.com/accounts/hana/").content.decode()
    assert "Field ownership" in html
    for label in ("Username", "Full name", "Authentication", "Addresses", "Personal data"):
        assert owner_of(html, label) == "Directory"
    for label in ("Mailbox quota", "Largest outgoing message", "Services", "State"):
        assert owner_of(html, label) == "Seeded once"
    assert "from the user template Staff" in html and "Reset everything to the directory" in html
    assert "Seeded once from the user template when the sync created the account" in html  # the form says it

    assert "Field ownership" not in admin.get("/domains/example.com/accounts/local.only/").content.decode()
    update_personal_data(account=account("hana"), vcard={"TITLE": "Mine"})
    edited = admin.get("/domains/example.com/accounts/hana/").content.decode()
    assert owner_of(edited, "Personal data") == "Local" and "Edited on this server" in edited
    group_page = admin.get("/domains/example.com/groups/crew/").content.decode()
    assert "Field ownership" in group_page and "Reset to the directory" in group_page
    assert owner_of(group_page, "Description") == "Local" and owner_of(group_page, "Name") == "Directory"
    operator_page = client_for("operator").get("/domains/example.com/accounts/hana/").content.decode()
    assert "Field ownership" in operator_page and "Reset everything" not in operator_page


def test_reset_to_the_directory_puts_the_value_back(
    domain: Domain, directory: Directory, client_for: Callable[[str | None], Client]
) -> None:
    directory.add_person("ivan", cn="Ivan Ivanov", title="Engineer")
    configure(domain, directory)
    sync(domain)
    url = "/domains/example.com/accounts/ivan/"
    # An edit that did not forget the stamp (made behind the console's back): runs do not see it...
    Account.objects.filter(username="ivan").update(full_name="Somebody Else")
    sync(domain)
    assert account("ivan").full_name == "Somebody Else"
    # ...until it is reset: the stamp goes, a run is queued, and it puts the directory's value back.
    assert (
        client_for("operator").post(url, {"action": "reset_field", "field": "full_name"}).status_code == 403
    )
    helpdesk = client_for("helpdesk")
    response = helpdesk.post(url, {"action": "reset_field", "field": "full_name"})
    assert response.status_code == 302 and account("ivan").directory_change_stamp == ""
    run_queued(domain)
    assert account("ivan").full_name == "Ivan Ivanov" and account("ivan").directory_change_stamp

    update_personal_data(account=account("ivan"), vcard={**account("ivan").vcard, "TITLE": "Chief"})
    sync(domain)
    assert account("ivan").vcard["TITLE"] == "Chief"
    helpdesk.post(url, {"action": "reset_field", "field": "vcard"})
    run_queued(domain)
    assert account("ivan").vcard["TITLE"] == "Engineer" and not account("ivan").vcard_edited_locally

    response = helpdesk.post(url, {"action": "reset_field", "field": "password"})
    assert response.status_code == 200 and "Only these fields can be reset" in response.content.decode()
    assert not SyncRun.objects.filter(status="queued").exists()


def test_reset_a_group_to_the_directory(domain: Domain, directory: Directory, admin: Client) -> None:
    directory.add_person("jan")
    directory.slapd.ldapadd(
        f"dn: cn=crew,{directory.base_dn}\nobjectClass: groupOfNames\ncn: crew\n"
        f"member: uid=jan,{directory.base_dn}\n"
    )
    configure(domain, directory)
    sync(domain)
    Group.objects.filter(address__local_part="crew").update(name="Renamed behind the back")
    response = admin.post("/domains/example.com/groups/crew/", {"action": "reset_to_directory"})
    assert response.status_code == 302
    run_queued(domain)
    assert Group.objects.get(address__local_part="crew").name == "crew"
