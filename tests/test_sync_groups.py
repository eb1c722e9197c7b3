"""Groups in the sync against the real slapd: membership, nesting, posix groups, remote members, OU groups
(the seed's hierarchical address book examples), mailing lists, dry runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devservers.ldif import people_ldif
from devservers.slapd import SlapdInstance, start_slapd
from directory_sync.models import SyncEvent, SyncRun
from icewarp_admin.mailserver.models import Account, Domain, Group, GroupMember
from icewarp_admin.mailserver.services.domains import create_domain
from icewarp_admin.mailserver.services.groups import add_member
from icewarp_admin.mailserver.services.system import set_system_variable
from tests.directory_helpers import Directory, configure, new_directory, sync

pytestmark = pytest.mark.django_db

GROUP_FILTER = "(|(objectClass=groupOfNames)(objectClass=posixGroup))"


@pytest.fixture
def directory(slapd: SlapdInstance) -> Iterator[Directory]:
    yield new_directory(slapd)


def add_group(
    directory: Directory, cn: str, members: list[str], *, mail: str | None = None, parent: str = ""
) -> str:
    dn = f"cn={cn},{parent or directory.base_dn}"
    lines = [f"dn: {dn}", "objectClass: groupOfNames", "objectClass: extensibleObject", f"cn: {cn}"]
    if mail:
        lines.append(f"mail: {mail}")
    lines += [f"member: {member}" for member in members]
    directory.slapd.ldapadd("\n".join(lines) + "\n")
    return dn


def members_of(alias: str) -> dict[str, list[str]]:
    group = Group.objects.get(address__local_part=alias)
    result: dict[str, list[str]] = {"accounts": [], "groups": [], "remote": []}
    for member in GroupMember.objects.filter(group=group).select_related("account", "member_group__address"):
        if member.account:
            result["accounts"].append(member.account.username)
        elif member.member_group:
            result["groups"].append(member.member_group.name)
        else:
            result["remote"].append(member.remote_address)
    return {kind: sorted(values) for kind, values in result.items()}


def group_counts(run: SyncRun) -> dict[str, int]:
    return run.counts["groups"]


def test_groups_members_nesting_three_levels_and_renames(domain: Domain, directory: Directory) -> None:
    alice = directory.add_person("alice")
    bob = directory.add_person("bob")
    carol = directory.add_person("carol")
    ops = add_group(directory, "Ops", [carol], mail="ops@example.com")
    eng = add_group(directory, "Engineering", [bob, ops])
    add_group(directory, "Everyone", [alice, eng], mail="all@example.com")
    configure(domain, directory, group_filter=GROUP_FILTER)
    run = sync(domain)
    assert run.status == "succeeded", run.errors
    assert group_counts(run)["created"] == 3
    assert members_of("all") == {"accounts": ["alice"], "groups": ["Engineering"], "remote": []}
    assert members_of("engineering") == {"accounts": ["bob"], "groups": ["Ops"], "remote": []}
    assert members_of("ops") == {"accounts": ["carol"], "groups": [], "remote": []}

    second = sync(domain)
    assert group_counts(second)["unchanged"] == 3 and not [e for e in second.events.all()]

    ops_group = Group.objects.get(address__local_part="ops")
    directory.modify(ops, mail="operations@example.com", cn="Ops")
    third = sync(domain)
    renamed = Group.objects.get(pk=ops_group.pk)
    assert renamed.alias == "operations" and group_counts(third)["renamed"] == 1
    assert members_of("operations")["accounts"] == ["carol"]


def test_posix_group_members_by_uid(domain: Domain, directory: Directory) -> None:
    directory.add_person("dan")
    directory.add_person("eve")
    directory.slapd.ldapadd(
        f"dn: cn=developers,{directory.base_dn}\nobjectClass: posixGroup\ncn: developers\ngidNumber: 5000\n"
        "memberUid: dan\nmemberUid: eve\nmemberUid: ghost\n"
    )
    configure(domain, directory, group_filter=GROUP_FILTER)
    run = sync(domain)
    assert members_of("developers") == {"accounts": ["dan", "eve"], "groups": [], "remote": []}
    assert any("not synced" in warning and "uid ghost" in warning for warning in run.warnings)


@pytest.mark.parametrize("remote", [True, False])
def test_members_outside_the_domain(domain: Domain, directory: Directory, remote: bool) -> None:
    inside = directory.add_person("fay")
    outside = directory.add_person("partner", mail="partner@elsewhere.org")
    add_group(directory, "Project", [inside, outside], mail="project@example.com")
    configure(domain, directory, group_filter=GROUP_FILTER, group_remote_members=remote)
    run = sync(domain)
    expected_remote = ["partner@elsewhere.org"] if remote else []
    assert members_of("project") == {"accounts": ["fay"], "groups": [], "remote": expected_remote}
    said = any("left out" in warning and "GROUPSUPPORTREMOTEMEMBERS" in warning for warning in run.warnings)
    assert said is not remote


def test_a_dry_run_lists_each_membership_added_and_removed(domain: Domain, directory: Directory) -> None:
    gus, hal, ida = (directory.add_person(name) for name in ("gus", "hal", "ida"))
    team = add_group(directory, "Team", [gus, hal], mail="team@example.com")
    configure(domain, directory, group_filter=GROUP_FILTER)
    sync(domain)
    directory.modify(team, member=[hal, ida])
    dry = sync(domain, dry_run=True)
    event = dry.events.get(object_type="group")
    assert event.action == "update"
    assert event.fields["members_added"] == [[], ["ida@example.com"]]
    assert event.fields["members_removed"] == [["gus@example.com"], []]
    assert members_of("team")["accounts"] == ["gus", "hal"]  # nothing applied
    real = sync(domain)
    assert real.events.get(object_type="group").fields == event.fields
    assert members_of("team")["accounts"] == ["hal", "ida"]


def test_removed_groups_are_guarded_and_manual_members_kept(domain: Domain, directory: Directory) -> None:
    jon = directory.add_person("jon")
    groups = [add_group(directory, f"g{number}", [jon]) for number in range(3)]
    configure(domain, directory, group_filter=GROUP_FILTER)
    sync(domain)
    kept = Group.objects.get(address__local_part="g0")
    add_member(group=kept, remote_address="friend@partner.org")
    directory.modify(groups[0], cn="g0")  # touch it
    run = sync(domain)
    assert members_of("g0")["remote"] == ["friend@partner.org"]  # a manual member stays

    set_system_variable(name="C_System_ADSyncMaxDeleteThreshold", value=1)
    directory.delete(groups[1], groups[2])
    run = sync(domain)
    assert run.removals_withheld == 2 and Group.objects.count() == 3
    set_system_variable(name="C_System_ADSyncMaxDeleteThreshold", value=0)
    run = sync(domain)
    assert group_counts(run)["removed"] == 2
    assert list(Group.objects.values_list("address__local_part", flat=True)) == ["g0"]


def test_mailing_lists(domain: Domain, directory: Directory) -> None:
    kim = directory.add_person("kim")
    add_group(directory, "Newsletter", [kim], mail="news@example.com")
    configure(
        domain, directory, sync_groups=False, sync_mailing_lists=True,
        mailing_list_filter="(&(objectClass=groupOfNames)(mail=news@*))",
    )  # fmt: skip
    sync(domain)
    news = Group.objects.get(address__local_part="news")
    assert news.kind == Group.Kind.MAILING_LIST
    assert members_of("news")["accounts"] == ["kim"]


# The seed's hierarchical address book: CN=Lukas Novak,OU=Client,OU=Webmail,OU=Devel,DC=icewarp,DC=in
SEED_LDIF = """dn: OU=Devel,DC=icewarp,DC=in
objectClass: organizationalUnit
ou: Devel

dn: OU=Webmail,OU=Devel,DC=icewarp,DC=in
objectClass: organizationalUnit
ou: Webmail

dn: OU=Client,OU=Webmail,OU=Devel,DC=icewarp,DC=in
objectClass: organizationalUnit
ou: Client

dn: CN=Lukas Novak,OU=Client,OU=Webmail,OU=Devel,DC=icewarp,DC=in
objectClass: inetOrgPerson
cn: Lukas Novak
sn: Novak
uid: lukas
mail: lukas@icewarp.in
"""


@pytest.fixture(scope="module")
def icewarp_in(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlapdInstance]:
    server = start_slapd(
        Path(tmp_path_factory.mktemp("icewarp")), base_dn="DC=icewarp,DC=in", ldifs=[SEED_LDIF]
    )
    yield server
    server.stop()


@pytest.mark.parametrize(
    ("root", "root_name", "expected"),
    [
        ("", "", ["Contacts", "Devel", "Webmail", "Client"]),
        ("", "Units", ["Units", "Devel", "Webmail", "Client"]),
        ("OU=Webmail,OU=Devel,DC=icewarp,DC=in", "", ["Webmail", "Client"]),
        ("OU=Webmail,OU=Devel,DC=icewarp,DC=in", "Units", ["Units", "Client"]),
        ("OU=Devel,DC=icewarp,DC=in", "Units", ["Units", "Webmail", "Client"]),
    ],
)
def test_the_seeds_ou_group_examples(
    icewarp_in: SlapdInstance, root: str, root_name: str, expected: list[str]
) -> None:
    domain = create_domain(name="icewarp.in")
    directory = Directory(slapd=icewarp_in, base_dn="DC=icewarp,DC=in")
    configure(domain, directory, sync_groups=False, create_ou_groups=True, ou_groups_root=root,
              ou_groups_root_name=root_name)  # fmt: skip
    run = sync(domain)
    assert run.status == "succeeded", run.errors
    # root first, then each unit inside its parent: follow the nesting from the root down
    chain = []
    current = next(g for g in Group.objects.all() if not g.parent_memberships.exists())
    while True:
        chain.append(current.name)
        children = [m.member_group for m in current.memberships.all() if m.member_group is not None]
        if not children:
            break
        assert len(children) == 1
        current = children[0]
    assert chain == expected
    assert Group.objects.count() == len(expected)
    leaf = Group.objects.get(name="Client")
    assert [m.account.username for m in leaf.memberships.all() if m.account is not None] == ["lukas"]
    for group in Group.objects.all():
        assert group.alias.startswith("ou=") and group.alias.isascii()
    aliases = sorted(Group.objects.values_list("address__local_part", flat=True))
    sync(domain)
    assert sorted(Group.objects.values_list("address__local_part", flat=True)) == aliases  # stable


def test_moving_a_user_moves_its_ou_membership_and_empty_units_go(
    domain: Domain, directory: Directory
) -> None:
    sales = directory.add_ou("Sales")
    support = directory.add_ou("Podpora")  # accents fold: "Podpóra" below
    directory.slapd.ldapmodify(f"dn: {support}\nchangetype: modify\nreplace: description\ndescription: x\n")
    lea = directory.add_person("lea", parent=sales)
    configure(domain, directory, sync_groups=False, create_ou_groups=True, ou_groups_root=directory.base_dn)
    sync(domain)
    assert sorted(Group.objects.values_list("name", flat=True)) == [
        "Sales",
        directory.base_dn.split(",")[0][3:],
    ]
    directory.move(lea, support)
    run = sync(domain)
    names = sorted(Group.objects.values_list("name", flat=True))
    assert names == ["Podpora", directory.base_dn.split(",")[0][3:]]
    assert group_counts(run)["removed"] == 1 and group_counts(run)["created"] == 1
    podpora = Group.objects.get(name="Podpora")
    assert [m.account.username for m in podpora.memberships.all() if m.account is not None] == ["lea"]
    assert Account.objects.get(username="lea").directory_dn.startswith("uid=lea,ou=Podpora")


def test_a_5000_member_group(domain: Domain, tmp_path: Path) -> None:
    people = people_ldif(5000, prefix="m")
    members = "".join(f"member: uid=m{n:05d},dc=example,dc=com\n" for n in range(5000))
    group = f"dn: cn=everyone,dc=example,dc=com\nobjectClass: groupOfNames\ncn: everyone\n{members}\n"
    server = start_slapd(tmp_path / "big", ldifs=[people, group])
    try:
        configure(domain, Directory(slapd=server, base_dn="dc=example,dc=com"), page_size=1000)
        run = sync(domain)
        assert run.status == "succeeded", run.errors
        assert GroupMember.objects.filter(group__address__local_part="everyone").count() == 5000
        second = sync(domain)
        assert group_counts(second)["unchanged"] == 1 and not second.events.exists()
    finally:
        server.stop()


def test_group_events_name_the_group(domain: Domain, directory: Directory) -> None:
    mo = directory.add_person("mo")
    add_group(directory, "Crew", [mo], mail="crew@example.com")
    configure(domain, directory, group_filter=GROUP_FILTER)
    run = sync(domain)
    event = SyncEvent.objects.get(run=run, object_type="group")
    assert (event.action, event.label) == ("create", "crew@example.com")
    assert event.group is not None and event.fields["members_added"] == [[], ["mo@example.com"]]
