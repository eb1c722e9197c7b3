"""One-way sync of accounts against the real slapd: each rule of sections 3–6 and 8 of the rules file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from devservers.slapd import SlapdInstance
from directory_sync.models import SyncEvent, SyncRun
from icewarp_admin.mailserver.models import Account, AccountState, Address, Domain, UserTemplate
from icewarp_admin.mailserver.selectors import domain_export
from icewarp_admin.mailserver.services.accounts import (
    AccountSettings,
    create_account,
    return_personal_data_to_directory,
    update_account,
    update_personal_data,
)
from icewarp_admin.mailserver.services.addresses import add_account_address
from icewarp_admin.mailserver.services.domains import create_domain
from icewarp_admin.mailserver.services.groups import create_group
from icewarp_admin.mailserver.services.system import set_system_variable
from icewarp_admin.mailserver.services.templates import save_template
from tests.directory_helpers import Directory, configure, new_directory, sync

pytestmark = pytest.mark.django_db


@pytest.fixture
def directory(slapd: SlapdInstance) -> Iterator[Directory]:
    yield new_directory(slapd)


def account(username: str) -> Account:
    return Account.objects.get(username=username)


def aliases(username: str) -> list[str]:
    return [address.address for address in account(username).aliases.all()]


def events(run: SyncRun, action: str | None = None) -> list[SyncEvent]:
    return [event for event in run.events.all() if action is None or event.action == action]


def counts(run: SyncRun) -> dict[str, int]:
    return run.counts["accounts"]


def test_first_sync_creates_accounts_with_mailboxes(
    domain: Domain, directory: Directory, mail_root: Path
) -> None:
    alice = directory.add_person(
        "alice", cn="Alice Anders", sn="Anders", given_name="Alice", displayName="Alice A.", title="CTO",
        telephoneNumber="+1 555 0100", mail=["alice@example.com", "a.anders@example.com"],
    )  # fmt: skip
    directory.add_person("bob", cn="Bob Brown", sn="Brown")
    configure(domain, directory)
    run = sync(domain)
    assert run.status == "succeeded", run.errors
    assert counts(run) == {
        "created": 2,
        "updated": 0,
        "renamed": 0,
        "removed": 0,
        "unchanged": 0,
        "skipped": 0,
    }

    created = account("alice")
    assert aliases("alice") == ["alice@example.com", "a.anders@example.com"]
    assert created.full_name == "Alice A."
    assert (created.auth_mode, created.auth_value) == ("directory", f"{directory.slapd.ldap_url};{alice}")
    assert created.directory_dn == alice and created.directory_guid and created.directory_change_stamp
    assert created.vcard["TITLE"] == "CTO" and created.vcard["TEL;TYPE=PREF,WORK,VOICE"] == "+1 555 0100"
    # The folder reserves the mailbox; the mail server makes the Maildir inside on first use.
    assert (mail_root / created.mailbox_path).is_dir()
    assert created.directory_dn_hash and created.directory_uid == "alice"
    assert all(address.source == "directory" for address in created.aliases.all())
    exported = domain_export(domain=domain)
    assert [item["email"] for item in exported["accounts"]] == ["alice@example.com", "bob@example.com"]
    assert exported["accounts"][0]["directory_id"] == created.directory_guid

    created_events = events(run, "create")
    assert {event.label for event in created_events} == {"alice@example.com", "bob@example.com"}
    assert all(event.account_id for event in created_events)
    assert created_events[0].fields["username"][1] in {"alice", "bob"}


def test_an_unchanged_directory_gives_an_empty_second_plan(
    domain: Domain, directory: Directory, django_assert_max_num_queries: Any
) -> None:
    for number in range(5):
        directory.add_person(f"user{number}")
    configure(domain, directory)
    assert sync(domain).status == "succeeded"
    before = list(Account.objects.values_list("pk", "updated_at", "directory_change_stamp"))
    second = sync(domain)
    assert counts(second) == {
        "created": 0,
        "updated": 0,
        "renamed": 0,
        "removed": 0,
        "unchanged": 5,
        "skipped": 0,
    }
    assert not second.full_scan
    assert events(second) == []
    assert list(Account.objects.values_list("pk", "updated_at", "directory_change_stamp")) == before


def test_identity_survives_a_new_address_and_an_ou_move(
    domain: Domain, directory: Directory, mail_root: Path
) -> None:
    sales = directory.add_ou("Sales")
    support = directory.add_ou("Support")
    dn = directory.add_person("carol", parent=sales)
    configure(domain, directory)
    sync(domain)
    original = account("carol")
    (mail_root / original.mailbox_path / "new").mkdir()  # the mail server's first delivery
    (mail_root / original.mailbox_path / "new" / "1.eml").write_text("Subject: keep me\n\nhi")

    directory.modify(dn, mail="caroline@example.com")
    moved = directory.move(dn, support)
    run = sync(domain)
    renamed = Account.objects.get(pk=original.pk)
    assert counts(run)["renamed"] == 1 and counts(run)["created"] == 0 and counts(run)["removed"] == 0
    assert renamed.username == "caroline"
    assert aliases("caroline") == ["caroline@example.com"]
    assert renamed.directory_dn == moved
    assert renamed.mailbox_path == original.mailbox_path
    assert (mail_root / renamed.mailbox_path / "new" / "1.eml").exists()
    event = events(run, "rename")[0]
    assert event.fields["username"] == ["carol", "caroline"]
    assert event.fields["directory_dn"] == [dn, moved]


def test_without_a_guid_the_address_is_the_key_and_the_run_says_so(
    domain: Domain, directory: Directory
) -> None:
    directory.add_person("dave")
    configure(domain, directory, guid_attribute="employeeNumber")  # no entry has one
    first = sync(domain)
    assert first.status == "succeeded"
    assert account("dave").directory_guid == "mail:dave"
    assert any(
        "employeeNumber" in warning and "every entry is reprocessed" in warning for warning in first.warnings
    )
    second = sync(domain)
    assert second.full_scan and counts(second)["unchanged"] == 1


def test_foreign_domains_are_skipped_and_host_domain_rewrites(domain: Domain, directory: Directory) -> None:
    directory.add_person("erin", mail="erin@partner.example.net")
    directory.add_person("frank", mail=["frank@example.com", "frank@partner.example.net"])
    directory.add_person("gina", mail="gina@elsewhere.org")
    directory.add_person("nomail", mail=[])
    configure(domain, directory)
    run = sync(domain)
    assert sorted(Account.objects.values_list("username", flat=True)) == ["frank"]
    skipped = {event.label: event.reason for event in events(run, "skip")}
    assert "not in example.com" in skipped["erin@partner.example.net"]
    assert "no e-mail address" in skipped[f"uid=nomail,{directory.base_dn}"]

    configure(domain, directory, host_domain_active=True, host_domain="EXAMPLE;partner.example.net")
    sync(domain)
    assert sorted(Account.objects.values_list("username", flat=True)) == ["erin", "frank"]
    assert aliases("erin") == ["erin@example.com"]

    configure(domain, directory, host_domain_active=True, host_domain="EXAMPLE;*")
    sync(domain)
    assert sorted(Account.objects.values_list("username", flat=True)) == ["erin", "frank", "gina"]


def test_vcard_email_domains_are_rewritten_unless_disabled(domain: Domain, directory: Directory) -> None:
    """DISABLEVCARDDOMAINRENAME: the vCard e-mail follows the account address here, unless it is set."""
    directory.add_person("erin", mail="erin@partner.example.net")
    directory.add_person("olga", mail="olga@example.com")
    configure(domain, directory, host_domain_active=True, host_domain="EXAMPLE;partner.example.net")
    sync(domain)
    assert account("erin").vcard["EMAIL;TYPE=INTERNET"] == "erin@example.com"
    assert account("olga").vcard["EMAIL;TYPE=INTERNET"] == "olga@example.com"

    configure(
        domain, directory, host_domain_active=True, host_domain="EXAMPLE;partner.example.net",
        disable_vcard_domain_rename=True,
    )  # fmt: skip
    run = sync(domain)
    assert account("erin").vcard["EMAIL;TYPE=INTERNET"] == "erin@partner.example.net"
    assert aliases("erin") == ["erin@example.com"]  # the account's own address is rewritten all the same
    assert counts(run)["updated"] == 1


def test_aliases_follow_the_directory_and_manual_ones_stay(domain: Domain, directory: Directory) -> None:
    dn = directory.add_person("henry", mail=["henry@example.com", "h@example.com", "sales@example.com"])
    configure(domain, directory)
    sync(domain)
    add_account_address(account=account("henry"), local_part="henry.manual")
    directory.modify(dn, mail=["henry@example.com", "hb@example.com"])
    run = sync(domain)
    assert aliases("henry") == ["henry@example.com", "hb@example.com", "henry.manual@example.com"]
    assert Address.objects.get(local_part="henry.manual").source == "manual"
    assert counts(run)["updated"] == 1


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"username_source": "cn"}, "ivy_ingram"),
        ({"username_attribute": "employeeNumber"}, "e-4711"),
        ({"username_source": "login", "login_source": "dn"}, "ivy.i"),  # a DN is no username: primary alias
        ({}, "ivy.i"),
    ],
)
def test_local_username_sources(
    domain: Domain, directory: Directory, values: dict[str, str], expected: str
) -> None:
    directory.add_person("ivy", cn="Ivy Ingram", mail="ivy.i@example.com", employeeNumber="E-4711@corp")
    configure(domain, directory, **values)
    sync(domain)
    assert list(Account.objects.values_list("username", flat=True)) == [expected]


def test_full_name_rule_and_the_login_added_to_aliases(domain: Domain, directory: Directory) -> None:
    directory.add_person("jack", cn="J. Jackson", sn="Jackson", given_name="Jack", mail="jack.j@example.com")
    configure(domain, directory, add_login_to_aliases=True)
    sync(domain)
    assert account("jack.j").full_name == "J. Jackson"
    assert aliases("jack.j") == ["jack.j@example.com", "jack@example.com"]
    configure(
        domain,
        directory,
        add_login_to_aliases=True,
        full_name_from_given_and_sn=True,
        disable_vcard_sync=True,
    )
    sync(domain)
    assert account("jack.j").full_name == "Jack Jackson"


def test_the_template_applies_on_creation_only(domain: Domain, directory: Directory) -> None:
    template = save_template(
        template=UserTemplate(
            name="Synced", quota_mb=250, services=["imap", "smtp"], account_state=AccountState.ENABLED
        )
    )
    domain.default_template = template
    domain.save()
    dn = directory.add_person("kate")
    configure(domain, directory)
    sync(domain)
    assert (account("kate").quota_mb, account("kate").services) == (250, ["imap", "smtp"])
    template.quota_mb = 1
    save_template(template=template)
    directory.modify(dn, title="New title")
    sync(domain)
    assert account("kate").quota_mb == 250


def test_local_edits_of_directory_fields_are_reverted_and_local_accounts_left_alone(
    domain: Domain, directory: Directory
) -> None:
    directory.add_person("liam", cn="Liam Lee", displayName="Liam Lee")
    configure(domain, directory)
    sync(domain)
    local_only = create_account(domain=domain, username="localuser", full_name="Only Here")
    synced = account("liam")
    update_account(
        account=synced,
        changes=AccountSettings(full_name="Changed Here", auth_mode="standard", auth_value="", enabled=True,
                                quota_mb=5, max_message_kb=0, services=["imap"]),
    )  # fmt: skip
    run = sync(domain)
    reverted = account("liam")
    assert (reverted.full_name, reverted.auth_mode) == ("Liam Lee", "directory")
    assert reverted.quota_mb == 5  # not a directory field: the local value stays
    event = events(run, "update")[0]
    assert (
        event.fields["full_name"] == ["Changed Here", "Liam Lee"] and event.reason == "changed here: put back"
    )
    untouched = Account.objects.get(pk=local_only.pk)
    assert (untouched.full_name, untouched.directory_guid) == ("Only Here", None)


def test_personal_data_rules(domain: Domain, directory: Directory) -> None:
    dn = directory.add_person("mia", title="Engineer", mobile="+1 555 0199")
    configure(domain, directory)
    sync(domain)
    assert account("mia").vcard["TITLE"] == "Engineer"

    update_personal_data(account=account("mia"), vcard={**account("mia").vcard, "TITLE": "Chief Tinkerer"})
    directory.modify(dn, title="Senior Engineer")
    sync(domain)
    assert account("mia").vcard["TITLE"] == "Chief Tinkerer"  # the person's own edit wins

    configure(domain, directory, directory_vcard_wins=True)
    sync(domain)
    assert account("mia").vcard["TITLE"] == "Senior Engineer"

    configure(domain, directory, directory_vcard_wins=False)
    update_personal_data(account=account("mia"), vcard={"TITLE": "Mine"})
    return_personal_data_to_directory(account=account("mia"))
    sync(domain)
    assert account("mia").vcard["TITLE"] == "Senior Engineer" and not account("mia").vcard_edited_locally

    configure(domain, directory, disable_vcard_sync=True)
    directory.modify(dn, title="Ignored")
    sync(domain)
    assert account("mia").vcard["TITLE"] == "Senior Engineer"

    configure(domain, directory, disable_vcard_sync=False, vcard_map="TITLE:${title}\nNOTE:${!description}")
    set_system_variable(name="C_System_ADSyncDisableVCardSync", value=1)
    sync(domain)
    assert account("mia").vcard["TITLE"] == "Senior Engineer"
    set_system_variable(name="C_System_ADSyncDisableVCardSync", value=0)
    sync(domain)
    assert account("mia").vcard == {"TITLE": "Ignored"}


def test_an_address_owned_elsewhere_is_a_conflict_and_the_run_goes_on(
    domain: Domain, directory: Directory
) -> None:
    create_account(domain=domain, username="noah.local", aliases=["noah.local", "noah"])
    create_group(domain=domain, alias="team", name="Team")
    directory.add_person("noah")
    directory.add_person("team", mail="team@example.com")
    directory.add_person("olga")
    configure(domain, directory)
    run = sync(domain)
    assert run.status == "succeeded" and run.conflicts == 2
    conflicts = {event.label: event.reason for event in events(run, "conflict")}
    assert "already used by account noah.local@example.com" in conflicts["noah"]
    assert "already used by group team@example.com" in conflicts["team"]
    assert sorted(
        Account.objects.filter(directory_guid__isnull=False).values_list("username", flat=True)
    ) == ["olga"]


def test_removal_keeps_the_mailbox_unless_all_data_deletion(
    domain: Domain, directory: Directory, mail_root: Path, django_capture_on_commit_callbacks: Any
) -> None:
    dn_p = directory.add_person("paul")
    dn_q = directory.add_person("quinn")
    configure(domain, directory, removal_grace_days=0)
    sync(domain)
    paul_box, quinn_box = account("paul").mailbox_path, account("quinn").mailbox_path
    directory.delete(dn_p)
    run = sync(domain)
    assert counts(run)["removed"] == 1 and not Account.objects.filter(username="paul").exists()
    assert (mail_root / paul_box).is_dir()
    assert events(run, "remove")[0].reason.startswith("the entry is gone")

    configure(domain, directory, delete_all_data=True)
    directory.modify(dn_q, mail="quinn@elsewhere.org")
    with django_capture_on_commit_callbacks(execute=True):  # folders go only once the removal is committed
        run = sync(domain)
    assert counts(run)["removed"] == 1
    assert not (mail_root / quinn_box).exists()
    assert "no longer belongs here" in events(run, "remove")[0].reason


def test_an_entry_that_no_longer_matches_the_filter_is_removed(domain: Domain, directory: Directory) -> None:
    directory.add_person("rita", employeeType="staff")
    directory.add_person("sam", employeeType="staff")
    configure(
        domain,
        directory,
        account_filter="(&(objectClass=inetOrgPerson)(employeeType=staff))",
        removal_grace_days=0,
    )
    sync(domain)
    directory.modify(f"uid=sam,{directory.base_dn}", employeeType="former")
    run = sync(domain)
    assert counts(run)["removed"] == 1
    assert list(Account.objects.values_list("username", flat=True)) == ["rita"]


def test_the_guard_withholds_removals(domain: Domain, directory: Directory) -> None:
    dns = [directory.add_person(f"staff{number}") for number in range(4)]
    configure(domain, directory)
    sync(domain)
    set_system_variable(name="C_System_ADSyncMaxDeleteThreshold", value=2)
    directory.delete(*dns[:3])
    directory.add_person("newcomer")
    run = sync(domain)
    assert run.status == "succeeded"
    assert counts(run)["created"] == 1 and counts(run)["removed"] == 0
    assert run.removals_withheld == 3 and "C_System_ADSyncMaxDeleteThreshold (2)" in run.withheld_reason
    assert Account.objects.filter(directory_guid__isnull=False).count() == 5
    assert len(events(run, "withheld")) == 3

    set_system_variable(name="C_System_ADSyncMaxDeleteThreshold", value=0)
    configure(domain, directory, account_filter="(employeeNumber=nobody)")
    run = sync(domain)
    assert run.removals_withheld == 5 and "returned no entries at all" in run.withheld_reason
    assert Account.objects.count() == 5


def test_a_referral_is_never_read_as_gone(domain: Domain, directory: Directory) -> None:
    dn = directory.add_person("tom")
    directory.add_person("uma")
    configure(domain, directory)
    sync(domain)
    directory.delete(dn)
    directory.slapd.ldapadd(
        f"dn: ou=elsewhere,{directory.base_dn}\nobjectClass: referral\nobjectClass: extensibleObject\n"
        "ou: elsewhere\nref: ldap://127.0.0.1:9/ou=elsewhere,dc=example,dc=com\n"
    )
    set_system_variable(name="C_System_ADSyncIgnoreSearchError", value=1)
    run = sync(domain)
    assert run.status == "succeeded"
    assert run.removals_withheld == 1 and "referred" in run.withheld_reason
    assert Account.objects.filter(username="tom").exists()


@pytest.mark.parametrize("read", ["full", "changes only"])
def test_a_directory_that_dies_mid_run_changes_nothing(
    domain: Domain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, read: str
) -> None:
    from devservers.ldif import people_ldif
    from devservers.slapd import start_slapd
    from directory_sync.ldap import BulkSession

    server = start_slapd(tmp_path / "dying", ldifs=[people_ldif(1500)])
    try:
        directory = Directory(slapd=server, base_dn="dc=example,dc=com")
        configure(
            domain, directory, account_filter="(&(objectClass=inetOrgPerson)(mail=*))", removal_grace_days=0
        )
        assert sync(domain).status == "succeeded"
        before = json.dumps(domain_export(domain=domain), sort_keys=True)
        server.ldapmodify("dn: uid=p00001,dc=example,dc=com\nchangetype: modify\nreplace: cn\ncn: Renamed\n")
        server.ldapdelete("uid=p00002,dc=example,dc=com")

        if read == "full":
            # An equivalent filter is a settings change: the next run reads everything, and dies at entry 500.
            configure(domain, directory, account_filter="(&(mail=*)(objectClass=inetOrgPerson))")
            import directory_sync.services.sync as runner

            original = runner._progress

            def kill_after_a_few_pages(run: SyncRun, **fields: Any) -> None:
                original(run, **fields)
                if fields.get("entries_read", 0) >= 500:
                    server.kill()

            monkeypatch.setattr(runner, "_progress", kill_after_a_few_pages)
        else:
            refresh = BulkSession.syncrepl_refresh

            def die_first(self: BulkSession, *args: Any, **kwargs: Any) -> Any:
                if kwargs.get("cookie"):  # the refresh of the changes, not the reading of the position
                    server.kill()
                return refresh(self, *args, **kwargs)

            monkeypatch.setattr(BulkSession, "syncrepl_refresh", die_first)
        run = sync(domain)
        assert run.status == "failed"
        assert run.errors and "127.0.0.1" in run.errors[0]
        assert json.dumps(domain_export(domain=domain), sort_keys=True) == before
        server.restart()
        monkeypatch.undo()
        again = sync(domain)
        assert again.status == "succeeded"
        assert counts(again)["removed"] == 1 and counts(again)["updated"] == 1
    finally:
        server.stop()


def test_a_dry_run_records_exactly_what_the_real_run_then_does(domain: Domain, directory: Directory) -> None:
    dn_a = directory.add_person("vera", mail=["vera@example.com", "v@example.com"])
    dn_b = directory.add_person("walt")
    directory.add_person("xena")
    configure(domain, directory, removal_grace_days=0)
    sync(domain)
    directory.modify(dn_a, mail="veronica@example.com", title="Boss")
    directory.delete(dn_b)
    directory.add_person("yuri")
    before = json.dumps(domain_export(domain=domain), sort_keys=True)

    dry = sync(domain, dry_run=True)
    assert dry.dry_run and dry.status == "succeeded"
    assert json.dumps(domain_export(domain=domain), sort_keys=True) == before
    real = sync(domain)

    def shape(run: SyncRun) -> list[tuple[str, str, str, str]]:
        return sorted(
            (e.action, e.label, json.dumps(e.fields, sort_keys=True), e.reason) for e in events(run)
        )

    assert shape(dry) == shape(real)
    assert dry.counts == real.counts
    assert {e.action for e in events(real)} == {"create", "rename", "remove"}


def test_command_line_json_and_exit_codes(domain: Domain, directory: Directory) -> None:
    directory.add_person("zoe")
    configure(domain, directory)
    out = StringIO()
    call_command("directory_sync", "example.com", "--dry-run", "--json", stdout=out)
    summary = json.loads(out.getvalue())
    keys = {
        "status",
        "dry_run",
        "accounts",
        "groups",
        "conflicts",
        "removals_withheld",
        "warnings",
        "errors",
        "duration_s",
        "run",
        "full_scan",
        "tracking",
        "phases",
    }
    assert set(summary) == keys
    assert set(summary["phases"]) == {"read", "load", "plan", "guard", "record"}  # a dry run applies nothing
    assert summary["dry_run"] is True and summary["accounts"]["created"] == 1
    assert not Account.objects.exists()
    out = StringIO()
    call_command("directory_sync", "example.com", stdout=out)
    assert "created 1" in out.getvalue()

    other = create_domain(name="unconfigured.org")
    with pytest.raises(CommandError, match="no directory server configured"):
        call_command("directory_sync", other.name, "--json", stdout=StringIO())
    with pytest.raises(CommandError, match="There is no domain"):
        call_command("directory_sync", "nowhere.org", stdout=StringIO())


def test_a_wrong_password_fails_the_run_plainly(domain: Domain, directory: Directory) -> None:
    directory.add_person("amy")
    settings = configure(domain, directory)
    settings.set_bind_password("wrong")
    settings.save()
    run = sync(domain)
    assert run.status == "failed"
    assert "refused" in run.errors[0] and "wrong" not in run.errors[0]
    assert not Account.objects.exists()


def test_a_synced_account_is_not_deleted_here_while_the_domain_syncs(
    domain: Domain, directory: Directory, admin: Any
) -> None:
    directory.add_person("stays")
    configure(domain, directory)
    sync(domain)
    response = admin.post("/domains/example.com/accounts/stays/delete/", follow=True)
    assert "comes from the directory" in response.content.decode()
    assert Account.objects.filter(username="stays").exists()
    configure(domain, directory, active=False)
    admin.post("/domains/example.com/accounts/stays/delete/")
    assert not Account.objects.filter(username="stays").exists()


def test_switching_users_off_changes_and_removes_no_account(domain: Domain, directory: Directory) -> None:
    dn = directory.add_person("kept", title="One")
    configure(domain, directory)
    sync(domain)
    configure(domain, directory, sync_accounts=False)
    directory.modify(dn, title="Two")
    run = sync(domain)
    assert run.status == "succeeded" and counts(run)["removed"] == 0 and counts(run)["updated"] == 0
    assert "switched off" in " ".join(run.warnings)
    assert account("kept").vcard["TITLE"] == "One"


LOG_TYPES = [(0, False, False), (1, False, True), (2, True, False), (3, True, True)]


@pytest.mark.parametrize(("log_type", "summary", "debug"), LOG_TYPES)
def test_logging_follows_the_log_type(
    domain: Domain, directory: Directory, caplog: pytest.LogCaptureFixture, log_type: int, summary: bool,
    debug: bool,
) -> None:  # fmt: skip
    directory.add_person("logged")
    configure(domain, directory)
    set_system_variable(name="C_System_ADSyncLogType", value=log_type)
    with caplog.at_level("INFO", logger="directory_sync.sync"):
        sync(domain)
    lines = [record.getMessage() for record in caplog.records if record.name == "directory_sync.sync"]
    finished = [line for line in lines if line.startswith("Synchronizing domain example.com finished")]
    assert bool(finished) is summary
    if summary:
        assert "created 1" in finished[0]
    assert any("create account logged@example.com" in line for line in lines) is debug


def test_entries_without_a_change_stamp_are_compared_and_named_unless_expected(
    domain: Domain, directory: Directory
) -> None:
    """ALLOWMISSINGWHENCHANGEDSOURCE does what its label says: such entries are synced either way, and only
    the warning naming them goes away."""
    dn = directory.add_person("stampless")
    configure(domain, directory, change_stamp_attribute="employeeNumber")
    run = sync(domain)
    assert counts(run)["created"] == 1
    assert any("have no employeeNumber" in warning and dn in warning for warning in run.warnings)

    configure(domain, directory, change_stamp_attribute="employeeNumber", allow_missing_change_stamp=True)
    directory.modify(dn, cn="Renamed Person", displayName="Renamed Person")
    run = sync(domain)
    assert counts(run)["updated"] == 1 and account("stampless").full_name == "Renamed Person"
    assert not any("employeeNumber" in warning for warning in run.warnings)


def test_a_new_entry_with_the_id_of_an_unchanged_one_does_not_take_its_account(
    domain: Domain, directory: Directory
) -> None:
    first = directory.add_person("idholder", employeeNumber="e-1")
    configure(domain, directory, guid_attribute="employeeNumber")
    sync(domain)
    copy = directory.add_person("idcopy", employeeNumber="e-1")
    run = sync(domain)  # the holder's entry is unchanged: it is not even mapped
    held = account("idholder")
    assert (held.directory_dn, held.directory_guid) == (first, "e-1")
    assert not Account.objects.filter(username="idcopy").exists()
    [conflict] = events(run, "conflict")
    assert conflict.dn == copy and "two entries with the id e-1" in conflict.reason
