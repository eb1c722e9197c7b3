"""Runs whose cost follows the changes, against real slapd servers: syncrepl (the suite's server has
syncprov), modifyTimestamp ranges (a server without it), and what must hold whatever the tracking: a restart,
a lost cookie, the per-domain lock, control characters, a changed id attribute, a cut member list, stale
member DNs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from devservers.slapd import SlapdInstance, start_slapd
from directory_sync.ldap import BulkSession, Entry
from directory_sync.models import ConnectionCheck, JobStatus, SyncEvent, SyncRun, SyncState
from directory_sync.services.jobs import reap_abandoned
from directory_sync.services.runs import begin_run
from directory_sync.services.sync import run_summary
from icewarp_admin.mailserver.models import Account, Domain, Group, GroupMember
from icewarp_admin.mailserver.services.accounts import AccountSettings, update_account
from icewarp_admin.mailserver.services.groups import remove_member, update_group
from icewarp_admin.mailserver.services.system import set_system_variable
from tests.directory_helpers import Directory, configure, new_directory, sync

pytestmark = pytest.mark.django_db
GROUP_FILTER = "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))"


@pytest.fixture
def directory(slapd: SlapdInstance) -> Iterator[Directory]:
    yield new_directory(slapd)


@pytest.fixture(scope="module")
def plain_slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlapdInstance]:
    """A server without syncprov: it offers no syncrepl, only modifyTimestamp."""
    instance = start_slapd(Path(tmp_path_factory.mktemp("plain-slapd")), syncrepl=False)
    yield instance
    instance.stop()


def counts(run: SyncRun, kind: str = "accounts") -> dict[str, int]:
    return run.counts[kind]


def names(run: SyncRun, action: str) -> list[str]:
    return sorted(event.label for event in run.events.filter(action=action))


def add_group(directory: Directory, name: str, members: list[str], *, unique: bool = False) -> str:
    dn = f"cn={name},{directory.base_dn}"
    kind, attribute = ("groupOfUniqueNames", "uniqueMember") if unique else ("groupOfNames", "member")
    lines = [f"dn: {dn}", f"objectClass: {kind}", f"cn: {name}"] + [
        f"{attribute}: {member}" for member in members
    ]
    directory.slapd.ldapadd("\n".join(lines) + "\n")
    return dn


def members_of(alias: str) -> list[str]:
    group = Group.objects.get(address__local_part=alias)
    return sorted(
        GroupMember.objects.filter(group=group, account__isnull=False).values_list(
            "account__username", flat=True
        )
    )


# --------------------------------------------------------------------------- syncrepl


def test_syncrepl_reads_only_what_changed(domain: Domain, directory: Directory) -> None:
    alice = directory.add_person("alice", title="CTO")
    bob = directory.add_person("bob")
    carol = directory.add_person("carol")
    dave = directory.add_person("dave")
    for number in range(20):
        directory.add_person(f"p{number:02d}")
    configure(
        domain,
        directory,
        account_filter="(&(objectClass=inetOrgPerson)(!(employeeType=gone)))",
        removal_grace_days=0,
    )
    first = sync(domain)
    assert first.full_scan and first.tracking == "full read: first run"
    assert counts(first)["created"] == 24
    assert set(first.phases) == {"read", "load", "plan", "guard", "apply", "record"}

    quiet = sync(domain)
    assert not quiet.full_scan and quiet.tracking == "syncrepl"
    assert quiet.entries_total == 0 and counts(quiet)["unchanged"] == 24 and not quiet.events.exists()

    directory.modify(alice, title="CEO")  # a change
    directory.slapd.ldapmodify(  # a rename: new RDN and a new address
        f"dn: {bob}\nchangetype: modrdn\nnewrdn: uid=robert\ndeleteoldrdn: 1\n\n"
        f"dn: uid=robert,{directory.base_dn}\nchangetype: modify\nreplace: mail\nmail: robert@example.com\n"
    )
    directory.modify(carol, employeeType="gone")  # out of the filter
    directory.delete(dave)  # gone
    bob_id = Account.objects.get(username="bob").pk
    run = sync(domain)
    assert run.tracking == "syncrepl" and not run.full_scan
    assert run.entries_total == 2  # alice and robert, nobody else
    assert counts(run) == {
        "created": 0,
        "updated": 1,
        "renamed": 1,
        "removed": 2,
        "unchanged": 20,
        "skipped": 0,
    }
    assert Account.objects.get(username="alice").vcard["TITLE"] == "CEO"
    assert Account.objects.get(pk=bob_id).username == "robert"  # the same account, its mailbox kept
    assert names(run, "remove") == ["carol@example.com", "dave@example.com"]
    assert not Account.objects.filter(username__in=["carol", "dave"]).exists()


def test_a_restart_of_the_server_loses_nothing(domain: Domain, slapd: SlapdInstance, tmp_path: Path) -> None:
    server = start_slapd(tmp_path / "restarting")
    try:
        directory = new_directory(server)
        people = [directory.add_person(f"r{number}") for number in range(5)]
        kept, dropped = add_group(directory, "kept", people[1:3]), add_group(directory, "dropped", people[3:])
        configure(domain, directory, group_filter=GROUP_FILTER, removal_grace_days=0)
        assert counts(sync(domain))["created"] == 5
        server.stop()
        server.restart()  # syncprov's session log is in memory: gone
        directory.delete(people[0], dropped)
        directory.modify(people[1], cn="Renamed")
        directory.modify(kept, description="touched")
        run = sync(domain)
        # Without its log the server lists every entry still there (the present phase): what is missing left.
        assert run.tracking == "syncrepl" and run.status == "succeeded"
        assert counts(run)["removed"] == 1 and counts(run)["updated"] == 1
        assert sorted(Account.objects.values_list("username", flat=True)) == ["r1", "r2", "r3", "r4"]
        assert counts(run, "groups")["removed"] == 1
        assert list(Group.objects.values_list("address__local_part", flat=True)) == ["kept"]
    finally:
        server.stop()


def test_a_lost_or_stale_position_means_a_full_read(domain: Domain, directory: Directory) -> None:
    dn = directory.add_person("erin")
    directory.add_person("frank")
    configure(domain, directory, removal_grace_days=0)
    sync(domain)
    state = SyncState.objects.get(domain=domain)
    state.cursor = {}  # lost
    state.save()
    directory.delete(dn)
    run = sync(domain)
    assert run.full_scan and run.tracking.startswith("full read")
    assert counts(run)["removed"] == 1

    state.refresh_from_db()
    # A cookie from before the server's history: it cannot resume, and says so or sends everything.
    state.cursor = {**state.cursor, "cookie": "rid=000,csn=19700101000000.000000Z#000000#000#000000"}
    state.save()
    directory.add_person("gina")
    run = sync(domain)
    assert run.status == "succeeded", run.errors
    assert counts(run)["created"] == 1 and counts(run)["removed"] == 0
    assert sorted(Account.objects.values_list("username", flat=True)) == ["frank", "gina"]


def test_a_settings_change_means_a_full_read_and_is_said(domain: Domain, directory: Directory) -> None:
    directory.add_person("hal")
    configure(domain, directory)
    sync(domain)
    configure(domain, directory, vcard_map="FN:${cn}")
    run = sync(domain)
    assert run.full_scan and run.tracking == "full read: the settings changed"


def test_changed_here_is_put_back_at_the_next_run_not_the_next_full_read(
    domain: Domain, directory: Directory
) -> None:
    directory.add_person("ivan", cn="Ivan I.")
    hub = add_group(directory, "hub", [f"uid=ivan,{directory.base_dn}"])
    configure(domain, directory, group_filter=GROUP_FILTER)
    sync(domain)
    ivan = Account.objects.get(username="ivan")
    settings = AccountSettings(
        full_name="Changed here", auth_mode=ivan.auth_mode, auth_value=ivan.auth_value, enabled=True,
        quota_mb=0, max_message_kb=0, services=list(ivan.services),
    )  # fmt: skip
    update_account(account=ivan, changes=settings)
    group = Group.objects.get(address__local_part="hub")
    update_group(group=group, name="Renamed here", description="", kind=group.kind)
    remove_member(membership=GroupMember.objects.get(group=group))
    run = sync(domain)
    assert run.tracking == "syncrepl"  # not a full read: the edits here were looked up
    assert Account.objects.get(username="ivan").full_name == "Ivan I."
    assert Group.objects.get(address__local_part="hub").name == "hub" and members_of("hub") == ["ivan"]
    assert run.events.get(object_type="account").reason == "changed here: put back"
    assert run.events.get(object_type="group").reason == "changed here: put back"
    again = sync(domain)
    assert not again.events.exists()  # put back once: the stamps are remembered again
    assert hub


# --------------------------------------------------------------------------- modifyTimestamp


def test_servers_without_syncrepl_are_followed_by_timestamp_and_an_id_scan(
    domain: Domain, plain_slapd: SlapdInstance
) -> None:
    directory = new_directory(plain_slapd)
    keep = directory.add_person("jane")
    gone = directory.add_person("kyle")
    moved_out = directory.add_person("lena")
    configure(
        domain,
        directory,
        account_filter="(&(objectClass=inetOrgPerson)(!(employeeType=gone)))",
        removal_grace_days=0,
    )
    assert counts(sync(domain))["created"] == 3
    quiet = sync(domain)
    assert quiet.tracking == "modifyTimestamp" and not quiet.full_scan
    directory.modify(keep, title="Engineer")
    directory.delete(gone)
    directory.modify(moved_out, employeeType="gone")
    directory.add_person("mona")
    run = sync(domain)
    assert run.tracking == "modifyTimestamp"
    assert counts(run)["created"] == 1 and counts(run)["updated"] == 1 and counts(run)["removed"] == 2
    assert Account.objects.get(username="jane").vcard["TITLE"] == "Engineer"


# --------------------------------------------------------------------------- the lock


@pytest.mark.parametrize(("dry_run", "status"), [(False, "joined"), (True, "busy")])
def test_the_command_line_goes_through_the_lock(
    domain: Domain, directory: Directory, dry_run: bool, status: str
) -> None:
    directory.add_person("nina")
    configure(domain, directory)
    busy = begin_run(domain=domain, trigger=SyncRun.Trigger.MANUAL, requested_by="someone", dispatch=False)
    assert not busy.joined
    out = StringIO()
    args = ["directory_sync", "example.com", "--json", *(["--dry-run"] if dry_run else [])]
    with pytest.raises(SystemExit) as exited:
        call_command(*args, stdout=out)
    assert exited.value.code == 3
    answer = json.loads(out.getvalue())
    assert answer["status"] == status and answer["run"] == busy.run.pk
    assert answer["active_run"]["status"] == "queued" and answer["active_run"]["trigger"] == "manual"
    assert SyncRun.objects.count() == 1 and not Account.objects.exists()


def test_one_lifecycle_reaps_dead_checks_and_runs(domain: Domain, settings: Any) -> None:
    from datetime import timedelta

    from django.utils import timezone

    old = timezone.now() - timedelta(seconds=settings.SYNC_ABANDONED_AFTER_SECONDS + 30)
    check = ConnectionCheck.objects.create(domain=domain, status=JobStatus.RUNNING, heartbeat_at=old)
    run = SyncRun.objects.create(domain=domain, trigger="manual", status=JobStatus.RUNNING, heartbeat_at=old)
    assert reap_abandoned() == 2
    check.refresh_from_db()
    run.refresh_from_db()
    assert check.status == run.status == "failed"
    assert check.result is not None and check.result["summary"].startswith("Abandoned: ")
    assert run.errors[0].startswith("Abandoned: ")


# --------------------------------------------------------------------------- control characters


def test_control_characters_are_removed_and_named_and_the_run_goes_on(
    domain: Domain, directory: Directory
) -> None:
    directory.add_person("olga", displayName="Olga\x00 O\x01.", description="Line one\nLine two\x1b")
    directory.add_person("pete")
    configure(domain, directory, vcard_map="FN:${displayName}\nNOTE:${!description}")
    run = sync(domain)
    assert run.status == "succeeded", run.errors
    olga = Account.objects.get(username="olga")
    assert olga.full_name == "Olga O." and olga.vcard["NOTE"] == "Line one\\nLine two"
    assert any("control characters" in warning and "uid=olga" in warning for warning in run.warnings)
    assert Account.objects.filter(username="pete").exists()


# --------------------------------------------------------------------------- identity


def test_a_changed_id_attribute_links_the_accounts_again(domain: Domain, directory: Directory) -> None:
    quinn = directory.add_person("quinn", employeeNumber="E1")
    directory.add_person("ruth", employeeNumber="E2")
    add_group(directory, "team", [quinn])
    configure(domain, directory, group_filter=GROUP_FILTER)
    sync(domain)
    ids = dict(Account.objects.values_list("username", "pk"))
    group_id = Group.objects.get(address__local_part="team").pk
    configure(domain, directory, group_filter=GROUP_FILTER, guid_attribute="employeeNumber")
    run = sync(domain)
    assert run.status == "succeeded" and run.tracking == "full read: the id attribute changed"
    assert counts(run)["created"] == counts(run)["removed"] == 0
    assert dict(Account.objects.values_list("username", "pk")) == ids  # the same accounts, the same mailboxes
    assert set(Account.objects.values_list("directory_guid", flat=True)) == {"e1", "e2"}
    relinked = run.events.filter(object_type="account")
    assert {event.reason for event in relinked} == {
        "linked again after the id attribute changed (same DN or address)"
    }
    assert Group.objects.get(address__local_part="team").pk == group_id and members_of("team") == ["quinn"]


def test_removing_and_creating_the_same_people_is_withheld(domain: Domain, directory: Directory) -> None:
    dn = directory.add_person("sam")
    configure(domain, directory)
    sync(domain)
    sam = Account.objects.get(username="sam")
    # Made to look like another entry's account: neither its key nor its DN matches any more.
    Account.objects.filter(pk=sam.pk).update(directory_guid="stale-id", directory_dn="uid=other,dc=x")
    directory.modify(dn, cn="Sam again")
    configure(domain, directory, vcard_map="FN:${cn}")  # a full read: "stale-id" is found gone
    run = sync(domain)
    assert run.removals_withheld == 1 and "created again under a new id" in run.withheld_reason
    assert Account.objects.get(pk=sam.pk).username == "sam"  # kept, with its mailbox
    assert counts(run)["created"] == 0 and run.conflicts == 1  # the new one would need its address


# --------------------------------------------------------------------------- groups


def test_a_member_list_cut_short_never_shrinks_a_group(
    domain: Domain, directory: Directory, monkeypatch: pytest.MonkeyPatch
) -> None:
    people = [directory.add_person(f"t{number}") for number in range(6)]
    group = add_group(directory, "big", people[:5])
    configure(domain, directory, group_filter=GROUP_FILTER)
    sync(domain)
    assert members_of("big") == ["t0", "t1", "t2", "t3", "t4"]
    directory.slapd.ldapmodify(
        f"dn: {group}\nchangetype: modify\nadd: member\nmember: {people[5]}\n-\ndelete: member\nmember: "
        f"{people[0]}\n"
    )
    # What Active Directory's range reads give when the rest cannot be read: the first values only, marked so.
    search = BulkSession.paged_search

    def cut(self: BulkSession, *args: Any, **kwargs: Any) -> Iterator[Entry]:
        for entry in search(self, *args, **kwargs):
            if entry.dn.lower() == group.lower():
                values = sorted(entry.get("member"))
                entry = Entry(entry.dn, {**entry.attributes, "member": values[-2:]}, frozenset({"member"}))
            yield entry

    monkeypatch.setattr(BulkSession, "paged_search", cut)
    configure(domain, directory, group_filter=GROUP_FILTER, vcard_map="FN:${cn}")  # a full read
    run = sync(domain)
    assert members_of("big") == ["t0", "t1", "t2", "t3", "t4", "t5"]  # t5 added, nobody taken away
    # An incomplete read: the run completed with errors, and says which member list came back cut short.
    assert run.status == "partial" and any("cut short" in error and group in error for error in run.errors)
    monkeypatch.undo()
    configure(domain, directory, group_filter=GROUP_FILTER, vcard_map="FN:${sn}")
    sync(domain)
    assert members_of("big") == ["t1", "t2", "t3", "t4", "t5"]  # read whole again: t0 goes


@pytest.mark.parametrize("group_changes", [False, True])
def test_a_stale_member_dn_resolves_the_same_whether_or_not_the_group_changed(
    domain: Domain, directory: Directory, group_changes: bool
) -> None:
    uma = directory.add_person("uma")
    vic = directory.add_person("vic")
    # uniqueMember: the suite's server keeps only member consistent (refint), like a server without integrity.
    team = add_group(directory, "team", [uma, vic], unique=True)
    configure(domain, directory, group_filter=GROUP_FILTER)
    sync(domain)
    assert members_of("team") == ["uma", "vic"]
    directory.slapd.ldapmodify(f"dn: {uma}\nchangetype: modrdn\nnewrdn: uid=uma2\ndeleteoldrdn: 0\n")
    if group_changes:
        directory.modify(team, description="touched")
    run = sync(domain)
    # The group still names uma's old DN, which is nobody's now: she is no longer a member, either way.
    assert members_of("team") == ["vic"]
    assert any("1 group members point at entries that are not synced" in warning for warning in run.warnings)


def test_group_member_warnings_count_each_member_once(domain: Domain, directory: Directory) -> None:
    wes = directory.add_person("wes")
    outsiders = [directory.add_person(f"x{number}", mail=f"x{number}@elsewhere.org") for number in range(3)]
    add_group(directory, "mixed", [wes, *outsiders])
    add_group(directory, "again", outsiders)
    configure(domain, directory, group_filter=GROUP_FILTER)
    run = sync(domain)
    # Six memberships of three outsiders: each named once.
    warning = next(text for text in run.warnings if "are not synced accounts of example.com" in text)
    assert warning.startswith("3 group members") and "uid=x0" in warning


def test_the_run_summary_names_its_phases(domain: Domain, directory: Directory) -> None:
    directory.add_person("yara")
    configure(domain, directory)
    summary = run_summary(sync(domain))
    assert list(summary["phases"]) == ["read", "load", "plan", "guard", "apply", "record"]
    assert all(isinstance(value, float) for value in summary["phases"].values())
    assert SyncEvent.objects.filter(label="yara@example.com").exists()


def test_a_withheld_removal_is_found_again_until_it_is_applied(domain: Domain, directory: Directory) -> None:
    people = [directory.add_person(f"z{number}") for number in range(3)]
    configure(domain, directory, removal_grace_days=0)
    sync(domain)
    set_system_variable(name="C_System_ADSyncMaxDeleteThreshold", value=1)
    directory.delete(people[0], people[1])
    assert sync(domain).removals_withheld == 2
    assert sync(domain).removals_withheld == 2  # the mark did not move: the same removals are seen again
    set_system_variable(name="C_System_ADSyncMaxDeleteThreshold", value=0)
    assert counts(sync(domain))["removed"] == 2


def test_two_entries_with_one_id_are_a_conflict_not_a_silent_choice(
    domain: Domain, directory: Directory
) -> None:
    directory.add_person("abe", employeeNumber="SAME")
    directory.add_person("bea", employeeNumber="SAME")
    configure(domain, directory, guid_attribute="employeeNumber")
    run = sync(domain)
    assert counts(run)["created"] == 1 and run.conflicts == 1
    conflict = run.events.get(action="conflict")
    assert "two entries with the id same" in conflict.reason
