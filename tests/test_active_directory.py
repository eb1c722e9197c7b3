"""Test connection and account sync against a real Active Directory: a Samba AD DC (tests/samba_fixtures.py).

No mocks: the project's LDAP layer, connection check and sync engine talk to Samba over LDAPS / StartTLS.
What Samba cannot show of a Windows DC is listed in the README (NTLM bind, ...).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ldap
import pytest
from ldap3 import MODIFY_ADD, MODIFY_DELETE, MODIFY_REPLACE

from devservers.ports import free_port
from devservers.samba import SambaInstance, start_samba
from directory_sync.auth import authenticate, change_password
from directory_sync.ldap import SessionOptions, endpoint_from_host, open_session
from directory_sync.models import DirectorySettings, SignIn, SyncEvent, SyncRun, SyncState
from directory_sync.services.connection_check import run_connection_check
from icewarp_admin.mailserver.models import Account, Domain, Group
from icewarp_admin.mailserver.services.domains import create_domain
from tests.directory_helpers import sync
from tests.samba_fixtures import (
    ALICE,
    BASE,
    BIG_GROUP,
    BOB,
    BULK_USERS,
    CAROL,
    DAVE,
    DEVEL,
    ENGINEERS,
    ERIN,
    FRANK,
    GRACE,
    SALES,
    STAFF,
    UAC_DISABLED,
    add_user,
    admin_connection,
    configure_ad,
    delete_tree,
    find_dn,
    move,
    restore_seed_users,
)

# The session fixture `samba` (redundant once tests/conftest.py lists tests.samba_fixtures too).
pytestmark = pytest.mark.django_db

STAFF_PEOPLE = (ALICE, BOB, ERIN, CAROL, FRANK)  # OU=Staff and OU=Devel,OU=Staff
ENCRYPTION_REQUIRED = "The server requires an encrypted connection for this bind: use ldaps:// or StartTLS"


@pytest.fixture
def example_test(db: None) -> Domain:
    """The console domain that matches the AD mail domain."""
    return create_domain(name="example.test", description="Mail domain of the AD forest")


@pytest.fixture
def ad_changes(samba: SambaInstance) -> Iterator[SambaInstance]:
    """For tests that change the seed in AD: alice, bob, erin and Engineers are put back afterwards."""
    yield samba
    restore_seed_users(samba)


def accounts(domain: Domain) -> dict[str, Account]:
    return {account.username: account for account in Account.objects.filter(domain=domain)}


def aliases(account: Account) -> list[str]:
    return [address.address for address in account.aliases.all()]


def counts(run: SyncRun) -> dict[str, int]:
    assert run.status == SyncRun.Status.SUCCEEDED, (run.errors, run.warnings)
    return dict(run.counts["accounts"])


def events(run: SyncRun, action: str) -> list[SyncEvent]:
    return list(run.events.filter(action=action))


def group_members(domain: Domain, alias: str) -> list[str]:
    group = Group.objects.get(domain=domain, address__local_part=alias)
    found = []
    for member in group.memberships.select_related("account", "member_group__address"):
        if member.account is not None:
            found.append(member.account.username)
        elif member.member_group is not None:
            found.append(f"group {member.member_group.name}")
        else:
            found.append(f"remote {member.remote_address}")
    return sorted(found)


def object_guid(samba: SambaInstance, sam: str) -> str:
    """The entry's objectGUID as AD tools show it (ldap3 decodes it), without braces."""
    conn = admin_connection(samba)
    try:
        conn.search(BASE, f"(sAMAccountName={sam})", attributes=["objectGUID"])
        return str(conn.entries[0].objectGUID.value).strip("{}")
    finally:
        conn.unbind()


# --------------------------------------------------------------------------- Test connection


def host_steps(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {step["name"]: step for step in result["hosts"][0]["steps"]}


def test_connection_check_over_ldaps_reads_an_active_directory(
    samba: SambaInstance,
    example_test: Domain,
) -> None:
    settings = configure_ad(example_test, samba, account_filter="User")
    result = run_connection_check(settings)

    assert result["ok"], (result["errors"], result["summary"])
    assert result["errors"] == []
    steps = host_steps(result)
    assert list(steps) == ["Name lookup", "TCP connection", "TLS", "Bind"]
    assert steps["TLS"]["detail"].startswith("TLSv1.")
    assert result["hosts"][0]["certificate"]["trusted"] is True
    assert "dc1.example.test" in result["hosts"][0]["certificate"]["san"]

    root = result["root_dse"]
    assert root["server_kind"] == "Active Directory"
    assert root["default_naming_context"] == BASE
    assert root["dirsync"] and root["paged_results"]
    assert root["dns_host_name"] == "dc1.example.test"
    assert root["forest_functionality"] is not None and root["forest_functionality"] >= 2

    identity = result["identity"]
    assert (identity["guid_attribute"], identity["change_stamp_attribute"]) == ("objectGUID", "whenChanged")
    assert identity["guid_readable"] and identity["change_stamp_readable"]
    uuid.UUID(identity["guid_example"])  # the binary objectGUID shown as a UUID
    # Everything that has objectClass=user: seed people, 1,600 bulk users, built-in accounts, the DC itself.
    users = result["counts"]["users"]
    assert result["counts"]["users_filter"] == "(objectClass=User)"
    assert users >= BULK_USERS + 8 and result["counts"]["users_complete"]
    assert result["summary"].startswith(f"Connected to {samba.ldaps_url} as {samba.admin_upn}")
    assert result["sample"], "no sample users"
    for entry in result["sample"]:
        uuid.UUID(entry["attributes"]["objectGUID"][0])

    # The AD default filter (&(objectCategory=person)(objectClass=user)) leaves the DC's computer object out.
    settings = configure_ad(example_test, samba, account_filter="")
    default = run_connection_check(settings)["counts"]
    assert default["users_filter"] == "(&(objectCategory=person)(objectClass=user))"
    assert default["users"] == users - 1


def test_connection_check_over_starttls(samba: SambaInstance, example_test: Domain) -> None:
    settings = configure_ad(example_test, samba, host=samba.ldap_url, use_starttls=True)
    result = run_connection_check(settings)

    assert result["ok"], (result["errors"], result["summary"])
    steps = host_steps(result)
    assert list(steps) == ["Name lookup", "TCP connection", "StartTLS", "Bind"]
    assert steps["StartTLS"]["ok"] and steps["StartTLS"]["detail"].startswith("TLSv1.")
    assert result["root_dse"]["server_kind"] == "Active Directory"
    assert result["warnings"] == []


def test_plain_ldap_simple_bind_is_refused_in_plain_words(
    samba: SambaInstance,
    example_test: Domain,
) -> None:
    """Samba, like AD requiring LDAP signing, refuses a simple bind over plain LDAP (strongerAuthRequired)."""
    settings = configure_ad(example_test, samba, host=samba.ldap_url, use_starttls=False)
    # Without ALLOWPLAINBIND the password never leaves: our own refusal comes first.
    refused = host_steps(run_connection_check(settings))["Bind"]["error"]
    assert refused.startswith(f"The password would cross the network unencrypted to {samba.ldap_url}")
    settings = configure_ad(
        example_test, samba, host=samba.ldap_url, use_starttls=False, allow_plain_bind=True
    )
    result = run_connection_check(settings)

    assert not result["ok"]
    bind = host_steps(result)["Bind"]
    assert not bind["ok"]
    assert bind["error"] == ENCRYPTION_REQUIRED
    assert result["errors"] == [f"Primary host {samba.ldap_url}: {ENCRYPTION_REQUIRED}"]
    assert "requires an encrypted connection" in result["summary"]
    assert any(warning.startswith("The bind password travels unencrypted") for warning in result["warnings"])
    assert samba.admin_password not in str(result)

    # The sync says the same and changes nothing.
    run = sync(example_test)
    assert run.status == SyncRun.Status.FAILED
    assert run.errors == [ENCRYPTION_REQUIRED]
    assert not Account.objects.filter(domain=example_test).exists()


@pytest.mark.parametrize("form", ["upn", "netbios", "dn"])
def test_the_three_ad_bind_user_forms(samba: SambaInstance, example_test: Domain, form: str) -> None:
    bind_user = {"upn": samba.admin_upn, "netbios": f"{samba.domain}\\Administrator", "dn": samba.admin_dn}
    settings = configure_ad(example_test, samba, bind_user=bind_user[form])
    result = run_connection_check(settings)
    assert result["ok"], result["errors"]
    assert host_steps(result)["Bind"]["detail"] == f"Bound as {bind_user[form]}"


@pytest.mark.parametrize(
    ("user", "password", "reason"),
    [
        ("Administrator@EXAMPLE.TEST", "Not-the-Passw0rd", "wrong user name or password"),  # data 52e
        (BOB.user_principal_name, BOB.password, "the account is disabled"),  # data 533
    ],
)
def test_ad_bind_failures_say_why(
    samba: SambaInstance,
    example_test: Domain,
    user: str,
    password: str,
    reason: str,
) -> None:
    configure_ad(example_test, samba, bind_user=user)
    settings = DirectorySettings.objects.get(domain=example_test)
    settings.set_bind_password(password)
    settings.save()
    result = run_connection_check(settings)
    assert not result["ok"]
    assert host_steps(result)["Bind"]["error"] == (
        f"The server refused the bind user and password (invalidCredentials): {reason}"
    )


# --------------------------------------------------------------------------- account sync


def test_bare_user_filter_syncs_the_whole_domain_in_pages(
    samba: SambaInstance,
    example_test: Domain,
    mail_root: Path,
) -> None:
    """`User` → (objectClass=User): 1,606 people in pages of 500; built-in accounts and the DC are skipped.

    Groups: only the mail-enabled ones (AD's built-in groups have no address), BigGroup with 1,600 members.
    """
    mail_groups = "(&(objectClass=group)(mail=*))"
    configure_ad(example_test, samba, account_filter="User", group_filter=mail_groups, page_size=500)
    run = sync(example_test)

    people = [ALICE, BOB, CAROL, ERIN, FRANK, GRACE]
    assert counts(run) == {
        "created": BULK_USERS + len(people),
        "updated": 0,
        "renamed": 0,
        "removed": 0,
        "unchanged": 0,
        "skipped": 6,
    }
    assert run.counts["groups"]["created"] == 3
    assert run.entries_total == BULK_USERS + len(people) + 6 + 3  # users (some skipped) and groups read
    assert run.warnings == []  # the references to the DNS and configuration partitions are not a failure
    skipped = {event.dn.split(",", 1)[0]: event.reason for event in events(run, "skip")}
    assert skipped == {
        "CN=Administrator": "it has no e-mail address",
        "CN=Guest": "it has no e-mail address",
        "CN=krbtgt": "it has no e-mail address",
        "CN=DC1": "it has no e-mail address",  # the DC's computer object is a user too
        "CN=websvc": "it has no e-mail address",
        "CN=dave": "its addresses (dave@partner.example.net) are not in example.test",
    }
    found = accounts(example_test)
    assert len(found) == BULK_USERS + len(people)
    bulk = found["bulk0042"]
    assert (bulk.full_name, bulk.enabled, aliases(bulk)) == (
        "Bulk User 0042",
        True,
        ["bulk0042@example.test"],
    )
    assert bulk.directory_dn == "CN=bulk0042,OU=Bulk,DC=example,DC=test"
    assert (mail_root / bulk.mailbox_path).is_dir()
    big = Group.objects.get(domain=example_test, address__local_part="biggroup")
    assert (big.name, big.directory_dn) == ("BigGroup", BIG_GROUP.dn)
    assert big.memberships.filter(account__isnull=False).count() == BULK_USERS

    again = sync(example_test)
    assert counts(again)["unchanged"] == BULK_USERS + len(people)
    assert counts(again)["created"] == counts(again)["updated"] == counts(again)["removed"] == 0
    assert again.counts["groups"]["unchanged"] == 3
    assert not again.full_scan


def test_nested_groups_keep_their_nesting(samba: SambaInstance, example_test: Domain) -> None:
    """Engineers holds alice, bob and the group Admins-Nested, which holds carol (in OU=Devel below)."""
    configure_ad(example_test, samba, base_dn=STAFF)
    run = sync(example_test)
    assert run.counts["groups"]["created"] == 2, run.counts

    def members(alias: str) -> list[str]:
        return group_members(example_test, alias)

    assert members("engineers") == ["alice", "bob", "group Admins-Nested"]
    assert members("admins-nested") == ["carol"]
    engineers = Group.objects.get(domain=example_test, address__local_part="engineers")
    assert engineers.directory_guid == object_guid(samba, "Engineers")

    # A membership change touches the group's whenChanged only (memberOf is a back link): still seen.
    conn = admin_connection(samba)
    try:
        conn.modify(ENGINEERS.dn, {"member": [(MODIFY_ADD, [ERIN.dn]), (MODIFY_DELETE, [BOB.dn])]})
        run = sync(example_test)
    finally:
        conn.modify(ENGINEERS.dn, {"member": [(MODIFY_REPLACE, list(ENGINEERS.members))]})
        conn.unbind()
    assert not run.full_scan
    assert members("engineers") == ["alice", "erin", "group Admins-Nested"]


def test_user_account_control_filter_syncs_only_erin(samba: SambaInstance, example_test: Domain) -> None:
    """The seed's complex-filter example, synchronized over StartTLS."""
    configure_ad(
        example_test,
        samba,
        host=samba.ldap_url,
        use_starttls=True,
        account_filter="(userAccountControl=66048)",
    )
    run = sync(example_test)
    assert counts(run)["created"] == 1
    erin = Account.objects.get(domain=example_test)
    assert (erin.username, erin.full_name, erin.enabled) == ("erin", "Erin Evans", True)
    assert aliases(erin) == ["erin@example.test"]


def test_staff_accounts_aliases_names_and_state(samba: SambaInstance, example_test: Domain) -> None:
    """OU=Staff with its nested OU=Devel: proxyAddresses, UAC, displayName/cn, objectGUID identity."""
    configure_ad(example_test, samba, base_dn=STAFF)
    run = sync(example_test)
    assert counts(run)["created"] == len(STAFF_PEOPLE)
    found = accounts(example_test)
    assert sorted(found) == ["alice", "bob", "carol", "erin", "frank.fischer"]

    alice = found["alice"]
    # SMTP: is the primary, smtp: the others, X400: is not an address; mail repeats the primary.
    assert aliases(alice) == ["alice@example.test", "alice.anders@example.test", "aa@example.test"]
    assert alice.full_name == "Alice Anders"  # displayName
    assert found["carol"].full_name == "Carol Clark"  # no displayName: cn
    assert alice.directory_guid == object_guid(samba, "alice")
    assert alice.directory_dn == ALICE.dn
    assert alice.directory_change_stamp  # whenChanged
    assert (alice.enabled, found["bob"].enabled, found["erin"].enabled) == (True, False, True)
    assert alice.auth_value == f"{samba.ldaps_url};alice@example.test"  # login source: userPrincipalName
    assert found["carol"].auth_value == f"{samba.ldaps_url};carol@corp.example.local"  # UPN suffix ≠ mail


def test_login_sources_give_the_auth_value(samba: SambaInstance, example_test: Domain) -> None:
    host = samba.ldaps_url
    expected = {
        "upn": f"{host};alice@example.test",
        "samaccountname": f"{host};alice",
        "dn": f"{host};{ALICE.dn}",
    }
    for source, auth_value in expected.items():
        configure_ad(example_test, samba, base_dn=STAFF, login_source=source)
        run = sync(example_test)
        assert run.status == SyncRun.Status.SUCCEEDED, run.errors
        alice = Account.objects.get(domain=example_test, username="alice")
        assert (alice.auth_mode, alice.auth_value) == ("directory", auth_value), source
    carol = Account.objects.get(domain=example_test, username="carol")
    assert carol.auth_value == f"{host};{CAROL.dn}"
    # The login source changed twice: every account was updated, none created again.
    assert Account.objects.filter(domain=example_test).count() == len(STAFF_PEOPLE)


def test_object_guid_keeps_the_account_through_a_new_address_and_an_ou_move(
    ad_changes: SambaInstance, example_test: Domain, mail_root: Path
) -> None:
    samba = ad_changes
    configure_ad(example_test, samba, base_dn=STAFF)
    assert sync(example_test).status == SyncRun.Status.SUCCEEDED
    before = Account.objects.get(domain=example_test, username="alice")
    (mail_root / before.mailbox_path / "new").mkdir()  # the mail server's first delivery
    (mail_root / before.mailbox_path / "new" / "1.eml").write_text("Subject: kept\n\nhello\n")

    conn = admin_connection(samba)
    try:
        dn = move(conn, find_dn(conn, "alice"), DEVEL)
        conn.modify(
            dn,
            {
                "mail": [(MODIFY_REPLACE, ["alice.new@example.test"])],
                "proxyAddresses": [
                    (MODIFY_REPLACE, ["SMTP:alice.new@example.test", "smtp:alice.anders@example.test"])
                ],
            },
        )
    finally:
        conn.unbind()
    run = sync(example_test)

    assert counts(run)["renamed"] == 1
    assert counts(run)["created"] == counts(run)["removed"] == 0
    after = Account.objects.get(pk=before.pk)
    assert after.username == "alice.new"
    assert aliases(after) == ["alice.new@example.test", "alice.anders@example.test"]
    assert after.directory_dn == f"CN=alice,{DEVEL}"
    assert after.directory_guid == before.directory_guid
    assert after.mailbox_path == before.mailbox_path
    assert (mail_root / after.mailbox_path / "new" / "1.eml").read_text().startswith("Subject: kept")
    [renamed] = events(run, "rename")
    assert renamed.fields["directory_dn"] == [ALICE.dn, f"CN=alice,{DEVEL}"]


def test_disabled_in_ad_is_disabled_here_and_enabled_again(
    ad_changes: SambaInstance, example_test: Domain
) -> None:
    samba = ad_changes
    configure_ad(example_test, samba, base_dn=STAFF)
    sync(example_test)
    bob = Account.objects.get(domain=example_test, username="bob")
    assert bob.enabled is False

    samba.samba_tool("user", "enable", "bob")
    run = sync(example_test)
    assert counts(run)["updated"] == 1
    bob.refresh_from_db()
    assert bob.enabled is True
    [update] = events(run, "update")
    assert update.fields == {"enabled": [False, True]}

    conn = admin_connection(samba)
    try:
        conn.modify(BOB.dn, {"userAccountControl": [(MODIFY_REPLACE, [str(UAC_DISABLED)])]})
    finally:
        conn.unbind()
    sync(example_test)
    bob.refresh_from_db()
    assert bob.enabled is False


def test_add_login_to_aliases_adds_the_sam_account_name(
    samba: SambaInstance,
    example_test: Domain,
) -> None:
    configure_ad(example_test, samba, base_dn=DEVEL, add_login_to_aliases=True)
    run = sync(example_test)
    assert counts(run)["created"] == 2
    frank = Account.objects.get(domain=example_test, username="frank.fischer")
    assert aliases(frank) == ["frank.fischer@example.test", "frank@example.test"]
    assert frank.full_name == "Frank Fischer"
    carol = Account.objects.get(domain=example_test, username="carol")
    assert aliases(carol) == ["carol@example.test"]  # the login's alias is her address already


def test_nested_group_membership_as_the_user_filter(samba: SambaInstance, example_test: Domain) -> None:
    """LDAP_MATCHING_RULE_IN_CHAIN: Engineers holds alice, bob and (through Admins-Nested) carol."""
    in_chain = f"(&(objectClass=user)(memberOf:1.2.840.113556.1.4.1941:={ENGINEERS.dn}))"
    configure_ad(example_test, samba, account_filter=in_chain)
    run = sync(example_test)
    assert counts(run)["created"] == 3
    assert sorted(accounts(example_test)) == ["alice", "bob", "carol"]


def test_big_group_members_are_read_whole(samba: SambaInstance, example_test: Domain) -> None:
    """BigGroup's 1,600 members through the project's LDAP layer (Samba returns them without ranges)."""
    settings = configure_ad(example_test, samba)
    options = SessionOptions(
        endpoints=(endpoint_from_host(settings.host),),
        bind_user=settings.bind_user,
        bind_password=samba.admin_password,
        ca_bundle_pem=settings.ca_bundle,
    )
    with open_session(options) as session:
        entry = session.read_entry(BIG_GROUP.dn, ["member", "mail", "objectGUID"])
        assert entry is not None
        members = entry.get("member")
        assert len(members) == BULK_USERS
        assert entry.first("mail") == BIG_GROUP.mail
        in_group = list(
            session.paged_search(BASE, f"(memberOf={BIG_GROUP.dn})", ["sAMAccountName"], page_size=500)
        )
        assert len(in_group) == BULK_USERS


def test_created_renamed_and_deleted_in_ad(
    samba: SambaInstance, example_test: Domain, mail_root: Path
) -> None:
    """An OU of its own: a user with an escaped comma and accents in its CN; a new RDN; a tombstone."""
    ou = f"OU=Lifecycle,{BASE}"
    conn = admin_connection(samba)
    try:
        delete_tree(conn, ou)  # left by an interrupted run
        conn.add(ou, "organizationalUnit")
        zoe = add_user(
            conn,
            f"CN=Ångström\\, Zoë,{ou}",
            "zoe",
            mail="Zoe.Angstrom@Example.TEST",
            displayName="Zoë Ångström",
        )
        temp = add_user(conn, f"CN=temp,{ou}", "temp", mail="temp@example.test")
        configure_ad(example_test, samba, base_dn=ou, login_source="dn", removal_grace_days=0)
        run = sync(example_test)
        assert counts(run)["created"] == 2
        account = Account.objects.get(domain=example_test, username="zoe.angstrom")
        assert aliases(account) == ["zoe.angstrom@example.test"]
        assert account.full_name == "Zoë Ångström"
        assert account.auth_value == f"{samba.ldaps_url};{zoe}"
        gone = Account.objects.get(domain=example_test, username="temp")

        conn.modify_dn(zoe, "CN=Zoë Ångström")
        conn.delete(temp)  # AD keeps a tombstone, which a search does not return
        run = sync(example_test)
        assert (counts(run)["updated"], counts(run)["removed"], counts(run)["created"]) == (1, 1, 0)
        renamed = Account.objects.get(pk=account.pk)
        assert renamed.directory_dn == renamed.auth_value.split(";", 1)[1] == f"CN=Zoë Ångström,{ou}"
        assert not Account.objects.filter(pk=gone.pk).exists()
        assert (mail_root / gone.mailbox_path).is_dir()  # ALLDATADELETION is 0: the mail stays
    finally:
        delete_tree(conn, ou)
        conn.unbind()


def test_ou_groups_follow_the_ad_tree(samba: SambaInstance, example_test: Domain) -> None:
    """Section 7 on AD DNs: Contacts ⊃ Staff ⊃ Devel, each user in the group of its nearest OU."""
    configure_ad(example_test, samba, base_dn=STAFF, create_ou_groups=True, sync_groups=False)
    run = sync(example_test)
    assert run.counts["groups"]["created"] == 3, run.counts
    by_name = {group.name: group.alias for group in Group.objects.filter(domain=example_test)}
    assert sorted(by_name) == ["Contacts", "Devel", "Staff"]
    assert all(alias.startswith("ou=") for alias in by_name.values())
    assert group_members(example_test, by_name["Contacts"]) == ["group Staff"]
    assert group_members(example_test, by_name["Staff"]) == ["alice", "bob", "erin", "group Devel"]
    assert group_members(example_test, by_name["Devel"]) == ["carol", "frank.fischer"]


def test_ou_groups_root_with_an_escaped_comma(samba: SambaInstance, example_test: Domain) -> None:
    root = f"OU=Sales\\, EMEA,{BASE}"
    conn = admin_connection(samba)
    try:
        delete_tree(conn, root)  # left by an interrupted run
        conn.add(root, "organizationalUnit")
        conn.add(f"OU=Team,{root}", "organizationalUnit")
        add_user(conn, f"CN=u1,OU=Team,{root}", "u1", mail="u1@example.test")
        configure_ad(
            example_test, samba, base_dn=root, create_ou_groups=True, ou_groups_root=root, sync_groups=False
        )
        run = sync(example_test)
    finally:
        delete_tree(conn, root)
        conn.unbind()
    assert counts(run)["created"] == 1
    # Expected: the root OU's group (named after it) holding Team's group, which holds u1.
    assert sorted(Group.objects.filter(domain=example_test).values_list("name", flat=True)) == [
        "Sales, EMEA",
        "Team",
    ]


def test_backup_host_over_ipv6_takes_over(samba: SambaInstance, example_test: Domain) -> None:
    """Primary down (nothing listens), backup ldaps://[::1]:636: the run and Test connection use it."""
    dead = f"ldaps://127.0.0.1:{free_port()}"
    settings = configure_ad(example_test, samba, host=dead, backup_host="ldaps://[::1]:636", base_dn=DEVEL)
    run = sync(example_test)
    assert counts(run)["created"] == 2
    result = run_connection_check(settings)
    assert [host["ok"] for host in result["hosts"]] == [False, True]
    assert result["summary"].startswith("Connected to the backup host ldaps://[::1]:636")


# --------------------------------------------------------------------------- "directory domain differs"


def test_directory_domain_alone_skips_other_mail_domains(
    samba: SambaInstance,
    example_test: Domain,
) -> None:
    """Seed example 1: HOSTDOMAIN = EXAMPLE (the AD domain only): other mail domains are skipped."""
    configure_ad(example_test, samba, base_dn=SALES, host_domain_active=True, host_domain=samba.domain)
    run = sync(example_test)
    assert counts(run)["created"] == 1 and counts(run)["skipped"] == 1
    assert list(accounts(example_test)) == ["grace"]
    [skipped] = events(run, "skip")
    assert skipped.dn == DAVE.dn
    assert skipped.reason == "its addresses (dave@partner.example.net) are not in example.test"


def test_directory_domain_with_a_second_mail_domain_rewrites_it(
    samba: SambaInstance,
    example_test: Domain,
) -> None:
    """Seed example 2: EXAMPLE;partner.example.net: dave@partner.example.net becomes dave@example.test."""
    configure_ad(
        example_test, samba, base_dn=SALES, host_domain_active=True, host_domain="EXAMPLE;partner.example.net"
    )
    run = sync(example_test)
    assert counts(run)["created"] == 2 and counts(run)["skipped"] == 0
    dave = Account.objects.get(domain=example_test, username="dave")
    assert aliases(dave) == ["dave@example.test"]
    assert dave.auth_value == f"{samba.ldaps_url};dave@example.test"


def test_directory_domain_with_a_wildcard_accepts_every_mail_domain(
    samba: SambaInstance,
    example_test: Domain,
) -> None:
    """Seed example 3: EXAMPLE;*: addresses of any domain are taken, rewritten to this one."""
    configure_ad(example_test, samba, base_dn=SALES, host_domain_active=True, host_domain="EXAMPLE;*")
    run = sync(example_test)
    assert counts(run)["created"] == 2
    assert {name: aliases(account) for name, account in accounts(example_test).items()} == {
        "dave": ["dave@example.test"],
        "grace": ["grace@example.test"],
    }


def test_console_domain_differs_from_the_ad_mail_domain(samba: SambaInstance, db: None) -> None:
    """Console domain mail.example.com, AD mail in example.test: EXAMPLE;example.test rewrites to it."""
    console = create_domain(name="mail.example.com", description="Console name differs from AD")
    configure_ad(
        console,
        samba,
        base_dn=STAFF,
        host_domain_active=True,
        host_domain="EXAMPLE;example.test",
        removal_grace_days=0,
    )
    run = sync(console)
    assert counts(run)["created"] == len(STAFF_PEOPLE)
    alice = accounts(console)["alice"]
    assert aliases(alice) == [
        "alice@mail.example.com",
        "alice.anders@mail.example.com",
        "aa@mail.example.com",
    ]
    # The login stays the directory's: userPrincipalName in the AD domain.
    assert alice.auth_value == f"{samba.ldaps_url};alice@example.test"

    # Without the setting nothing of example.test belongs to mail.example.com: the accounts leave.
    configure_ad(console, samba, base_dn=STAFF, host_domain_active=False)
    run = sync(console)
    assert (counts(run)["removed"], counts(run)["skipped"]) == (len(STAFF_PEOPLE), len(STAFF_PEOPLE))


# --------------------------------------------------------------------------- the DC itself (keep these last)


def test_a_second_dc_is_refused_while_one_runs(samba: SambaInstance, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"TCP port 389 on 127\.0\.0\.1 is already in use"):
        start_samba(tmp_path / "second", stop_at_exit=False)
    assert not (tmp_path / "second" / "dc").exists()  # refused before anything was provisioned


def test_a_dead_dc_fails_the_run_and_comes_back(samba: SambaInstance, example_test: Domain) -> None:
    configure_ad(example_test, samba, base_dn=DEVEL)
    assert counts(sync(example_test))["created"] == 2
    samba.kill()
    try:
        assert not samba.running
        run = sync(example_test)
        assert run.status == SyncRun.Status.FAILED
        assert run.errors == ["Nothing listens on 127.0.0.1:636 (connection refused)"]
        assert Account.objects.filter(domain=example_test).count() == 2  # nothing removed
    finally:
        samba.restart()
    assert samba.running
    run = sync(example_test)
    assert counts(run)["unchanged"] == 2


def test_change_tracking_by_usn_reads_only_what_changed(samba: SambaInstance, example_test: Domain) -> None:
    """After a full read, runs ask for uSNChanged above the mark: a change, a deletion (tombstone) and a move
    out of the DN are found; an unchanged directory reads nothing; another invocationId means a full read."""
    ou = f"OU=Tracking,{BASE}"
    elsewhere = f"OU=TrackingElsewhere,{BASE}"
    conn = admin_connection(samba)
    try:
        for dn in (ou, elsewhere):
            delete_tree(conn, dn)
            conn.add(dn, "organizationalUnit")
        keep = add_user(conn, f"CN=keep,{ou}", "keep", mail="keep@example.test", title="Before")
        gone = add_user(conn, f"CN=gone,{ou}", "gone", mail="gone@example.test")
        moved = add_user(conn, f"CN=moved,{ou}", "moved", mail="moved@example.test")
        for number in range(5):
            add_user(conn, f"CN=still{number},{ou}", f"still{number}", mail=f"still{number}@example.test")
        configure_ad(example_test, samba, base_dn=ou, sync_groups=False, removal_grace_days=0)
        first = sync(example_test)
        assert first.full_scan and counts(first)["created"] == 8

        quiet = sync(example_test)
        assert not quiet.full_scan and quiet.entries_total == 0
        assert counts(quiet)["unchanged"] == 8 and not quiet.events.exists()

        conn.modify(keep, {"title": [(MODIFY_REPLACE, ["After"])]})
        conn.delete(gone)
        move(conn, moved, elsewhere)
        changed = sync(example_test)
        assert not changed.full_scan and changed.entries_total == 1
        assert (counts(changed)["updated"], counts(changed)["removed"], counts(changed)["unchanged"]) == (
            1,
            2,
            5,
        )
        assert Account.objects.get(domain=example_test, username="keep").vcard["TITLE"] == "After"
        assert not Account.objects.filter(domain=example_test, username__in=["gone", "moved"]).exists()

        state = SyncState.objects.get(domain=example_test)
        state.cursor = {**state.cursor, "invocation_id": "00000000-0000-0000-0000-000000000000"}
        state.save()
        restored = sync(example_test)  # as after a restore from backup: the marks mean nothing, read it all
        assert restored.entries_total == 6 and counts(restored)["unchanged"] == 6  # every entry read again
    finally:
        for dn in (ou, elsewhere):
            delete_tree(conn, dn)
        conn.unbind()


def test_change_tracking_follows_renames_groups_filter_exits_and_edits_here(
    samba: SambaInstance, example_test: Domain
) -> None:
    """Runs between full reads: a rename, a user leaving the filter, a group's new member and a group deleted
    are found by USN; an account or group edited here is put back at the next run; a DC restart keeps the
    numbering, so changes made while it was down are found; a lost mark means a full read."""
    from icewarp_admin.mailserver.services.accounts import AccountSettings, update_account
    from icewarp_admin.mailserver.services.groups import update_group

    ou = f"OU=Tracking2,{BASE}"
    conn = admin_connection(samba)
    try:
        delete_tree(conn, ou)
        conn.add(ou, "organizationalUnit")
        ann = add_user(conn, f"CN=ann,{ou}", "ann", mail="ann@example.test", title="Staff")
        ben = add_user(conn, f"CN=ben,{ou}", "ben", mail="ben@example.test")
        cid = add_user(conn, f"CN=cid,{ou}", "cid", mail="cid@example.test")
        crew = f"CN=crew,{ou}"
        conn.add(crew, "group", {"sAMAccountName": "crew2", "mail": "crew@example.test", "member": [ann]})
        extra = f"CN=extra,{ou}"
        conn.add(extra, "group", {"sAMAccountName": "extra2", "mail": "extra@example.test", "member": [ben]})
        account_filter = "(&(objectCategory=person)(objectClass=user)(!(description=left)))"
        configure_ad(
            example_test,
            samba,
            base_dn=ou,
            account_filter=account_filter,
            group_filter="(objectClass=group)",
            removal_grace_days=0,
        )
        assert sync(example_test).full_scan

        conn.modify_dn(ann, "CN=anne")  # a rename
        anne = f"CN=anne,{ou}"
        conn.modify(anne, {"mail": [(MODIFY_REPLACE, ["anne@example.test"])]})
        conn.modify(ben, {"description": [(MODIFY_REPLACE, ["left"])]})  # out of the filter
        conn.modify(crew, {"member": [(MODIFY_ADD, [cid])]})
        conn.delete(extra)
        run = sync(example_test)
        assert run.tracking == "USN" and not run.full_scan
        assert counts(run)["renamed"] == 1 and counts(run)["removed"] == 1
        assert Account.objects.get(domain=example_test, directory_dn__iexact=anne).username == "anne"
        assert not Account.objects.filter(domain=example_test, username="ben").exists()
        crew_group = Group.objects.get(domain=example_test, address__local_part="crew")
        assert sorted(crew_group.memberships.values_list("account__username", flat=True)) == ["anne", "cid"]
        assert not Group.objects.filter(domain=example_test, address__local_part="extra").exists()

        cid_account = Account.objects.get(domain=example_test, username="cid")
        changes = AccountSettings(
            full_name="Changed here", auth_mode=cid_account.auth_mode, auth_value=cid_account.auth_value,
            enabled=True, quota_mb=0, max_message_kb=0, services=list(cid_account.services),
        )  # fmt: skip
        update_account(account=cid_account, changes=changes)
        update_group(group=crew_group, name="Renamed here", description="", kind=crew_group.kind)
        put_back = sync(example_test)
        assert put_back.tracking == "USN"  # not the daily full read
        assert Account.objects.get(domain=example_test, username="cid").full_name == "cid"
        assert Group.objects.get(pk=crew_group.pk).name == "crew"

        samba.stop()
        samba.restart()
        conn.unbind()
        conn = admin_connection(samba)
        conn.modify(cid, {"title": [(MODIFY_REPLACE, ["After the restart"])]})
        after = sync(example_test)
        assert after.tracking == "USN" and counts(after)["updated"] == 1

        state = SyncState.objects.get(domain=example_test)
        state.cursor = {}
        state.save()
        lost = sync(example_test)
        assert lost.full_scan and lost.tracking.startswith("full read")
    finally:
        delete_tree(conn, ou)
        conn.unbind()


def test_range_reads_continue_to_the_last_value_and_a_cut_is_marked(
    samba: SambaInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Active Directory returns a big group's members in slices (member;range=0-1499...): the sync's reader
    asks for the rest until the last; when the rest cannot be read, the entry says which attribute is
    incomplete. Samba slices only when asked, so the first slice is asked for here."""
    from directory_sync.ldap import BulkSession, open_bulk_session

    options = SessionOptions(
        endpoints=(endpoint_from_host(samba.ldaps_url),),
        bind_user=samba.admin_upn,
        bind_password=samba.admin_password,
        ca_bundle_pem=samba.ca_cert.read_text(),
    )
    with open_bulk_session(options) as session:
        whole = next(
            iter(
                session.paged_search(BIG_GROUP.dn, "(objectClass=*)", ["member"], page_size=10, scope="base")
            )
        )
        sliced = next(
            iter(
                session.paged_search(
                    BIG_GROUP.dn, "(objectClass=*)", ["member;range=0-99"], page_size=10, scope="base"
                )
            )
        )
    assert len(whole.get("member")) == len(BIG_GROUP.members) == 1600
    assert sorted(sliced.get("member")) == sorted(whole.get("member")) and not sliced.incomplete

    monkeypatch.setattr(BulkSession, "fetch_range", lambda self, dn, wanted, binary: None)
    with open_bulk_session(options) as session:
        cut = next(
            iter(
                session.paged_search(
                    BIG_GROUP.dn, "(objectClass=*)", ["member;range=0-99"], page_size=10, scope="base"
                )
            )
        )
    assert len(cut.get("member")) == 100 and cut.incomplete == frozenset({"member"})


# --------------------------------------------------------------------------- mail users sign in (rules §9)
# Mail users of the AD sign in by their own bind and change their password with unicodePwd, so that the
# domain's policy (length, complexity) decides.

SIGN_IN_OU = f"OU=MailSignIn,{BASE}"
SID_DN = f"CN=Sid Sample,{SIGN_IN_OU}"
PASSWORD = "Sid!Passw0rd-1"
WEB = SignIn.Channel.WEB


@pytest.fixture
def people(samba: SambaInstance) -> Iterator[SambaInstance]:
    """OU=MailSignIn with sid (a normal user) and tess; removed again afterwards."""
    conn = admin_connection(samba)
    delete_tree(conn, SIGN_IN_OU)
    conn.add(SIGN_IN_OU, ["top", "organizationalUnit"])
    add_user(conn, SID_DN, "sid", password=PASSWORD, mail="sid@example.test", displayName="Sid Sample")
    add_user(conn, f"CN=tess,{SIGN_IN_OU}", "tess", password="Tess!Passw0rd-1", mail="tess@example.test")
    conn.unbind()
    yield samba
    conn = admin_connection(samba)
    delete_tree(conn, SIGN_IN_OU)
    conn.unbind()


def synced(domain: Domain, samba: SambaInstance, **values: object) -> None:
    configure_ad(domain, samba, base_dn=SIGN_IN_OU, **values)
    run = sync(domain)
    assert run.status == SyncRun.Status.SUCCEEDED, run.errors


def bind_ok(samba: SambaInstance, login: str, password: str) -> bool:
    conn = ldap.initialize(samba.ldaps_url)
    conn.set_option(ldap.OPT_X_TLS_CACERTFILE, str(samba.ca_cert))
    conn.set_option(ldap.OPT_X_TLS_NEWCTX, 0)
    try:
        conn.simple_bind_s(login, password)
        return True
    except ldap.INVALID_CREDENTIALS:
        return False
    finally:
        conn.unbind_s()


@pytest.mark.parametrize(
    ("source", "login"),
    [("upn", "sid@example.test"), ("samaccountname", "sid"), ("dn", SID_DN)],
)
def test_each_login_source_signs_in(
    people: SambaInstance, example_test: Domain, source: str, login: str
) -> None:
    synced(example_test, people, login_source=source)
    account = Account.objects.get(username="sid")
    assert account.auth_value == f"{people.ldaps_url};{login}"
    result = authenticate(address="sid@example.test", password=PASSWORD, channel=WEB)
    assert result.ok, result
    result = authenticate(address="sid@example.test", password="Not!Sid-Passw0rd", channel=WEB)
    assert result.reason == "bad_password"


def test_a_person_disabled_in_ad_since_the_last_sync_is_refused_as_disabled(
    people: SambaInstance, example_test: Domain
) -> None:
    synced(example_test, people)
    conn = admin_connection(people)
    conn.modify(f"CN=tess,{SIGN_IN_OU}", {"userAccountControl": [(MODIFY_REPLACE, [str(UAC_DISABLED)])]})
    conn.unbind()
    result = authenticate(address="tess@example.test", password="Tess!Passw0rd-1", channel=WEB)
    assert result.reason == "disabled"
    assert result.message == "The directory has disabled this account"


def test_the_domain_policy_refuses_weak_passwords_in_plain_words(
    people: SambaInstance, example_test: Domain
) -> None:
    synced(example_test, people, login_source="samaccountname")

    def change(old: str, new: str) -> tuple[str, str]:
        result = change_password(address="sid@example.test", old_password=old, new_password=new, channel=WEB)
        return result.reason, result.message

    reason, message = change(PASSWORD, "Sh0rt!")
    assert reason == "policy" and message.startswith(
        "The new password is too short: use at least 7 characters"
    )
    reason, message = change(PASSWORD, "alllowercaseletters")
    assert reason == "policy" and "not complex enough" in message
    assert change("Wrong!Passw0rd-9", "Sid!Passw0rd-2")[0] == "bad_password"
    assert change(PASSWORD, "Sid!Passw0rd-2") == ("ok", "Your password has been changed.")
    assert authenticate(address="sid@example.test", password="Sid!Passw0rd-2", channel=WEB).ok
    assert authenticate(address="sid@example.test", password=PASSWORD, channel=WEB).reason == "bad_password"
    assert bind_ok(people, "sid@example.test", "Sid!Passw0rd-2")
    assert Account.objects.get(username="sid").password == ""


def test_a_change_over_starttls(people: SambaInstance, example_test: Domain) -> None:
    synced(example_test, people, host=people.ldap_url, use_starttls=True)
    result = change_password(
        address="sid@example.test", old_password=PASSWORD, new_password="Sid!Passw0rd-3", channel=WEB
    )
    assert result.ok, result
    assert SignIn.objects.filter(action="password_change", reason="ok").get().host == people.ldap_url


def test_a_person_who_must_change_the_password_does_it_through_the_bind_user(
    people: SambaInstance, example_test: Domain
) -> None:
    synced(example_test, people)
    conn = admin_connection(people)
    conn.modify(SID_DN, {"pwdLastSet": [(MODIFY_REPLACE, ["0"])]})  # "must change at next logon"
    conn.unbind()
    result = authenticate(address="sid@example.test", password=PASSWORD, channel=WEB)
    assert result.reason == "expired"
    changed = change_password(
        address="sid@example.test", old_password=PASSWORD, new_password="Sid!Passw0rd-4", channel=WEB
    )
    assert changed.ok, changed
    assert authenticate(address="sid@example.test", password="Sid!Passw0rd-4", channel=WEB).ok


def test_a_person_moved_since_the_last_sync_still_changes_the_password(
    people: SambaInstance, example_test: Domain
) -> None:
    synced(example_test, people, login_source="samaccountname")
    conn = admin_connection(people)
    conn.add(f"OU=Moved,{SIGN_IN_OU}", ["top", "organizationalUnit"])
    move(conn, SID_DN, f"OU=Moved,{SIGN_IN_OU}")
    conn.unbind()
    result = change_password(
        address="sid@example.test", old_password=PASSWORD, new_password="Sid!Passw0rd-5", channel=WEB
    )
    assert result.ok, result
    assert authenticate(address="sid@example.test", password="Sid!Passw0rd-5", channel=WEB).ok
