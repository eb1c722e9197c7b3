"""Explain and synchronize one object against Active Directory: the Samba DC of tests/samba_fixtures.py.

objectGUID (binary) as the directory id, userAccountControl's disabled flag, proxyAddresses as the aliases.
No mocks. It needs the single Samba DC of the suite: run it where tests/test_active_directory.py runs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from ldap3 import MODIFY_REPLACE

from devservers.samba import SambaInstance
from directory_sync.models import SyncRun
from directory_sync.services.explain import explain_object, sync_one
from icewarp_admin.mailserver.models import Account, Domain
from icewarp_admin.mailserver.services.domains import create_domain
from tests.directory_helpers import sync
from tests.samba_fixtures import (
    ALICE,
    BASE,
    CAROL,
    DAVE,
    FRANK,
    SALES,
    STAFF,
    admin_connection,
    configure_ad,
    find_dn,
    restore_seed_users,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def example_test(db: None) -> Domain:
    return create_domain(name="example.test", description="Mail domain of the AD forest")


@pytest.fixture
def renamed(samba: SambaInstance) -> Iterator[SambaInstance]:
    """For tests that change display names in AD: put back afterwards."""
    yield samba
    conn = admin_connection(samba)
    try:
        for user in (ALICE, FRANK):
            conn.modify(find_dn(conn, user.sam), {"displayName": [(MODIFY_REPLACE, [user.display_name])]})
    finally:
        conn.unbind()
    restore_seed_users(samba)


def object_guid(samba: SambaInstance, sam: str) -> str:
    """The entry's objectGUID as AD tools show it (ldap3 decodes it), without braces."""
    conn = admin_connection(samba)
    try:
        conn.search(BASE, f"(sAMAccountName={sam})", attributes=["objectGUID"])
        return str(conn.entries[0].objectGUID.value).strip("{}")
    finally:
        conn.unbind()


def set_display_name(samba: SambaInstance, sam: str, name: str) -> None:
    conn = admin_connection(samba)
    try:
        conn.modify(find_dn(conn, sam), {"displayName": [(MODIFY_REPLACE, [name])]})
    finally:
        conn.unbind()


def test_an_ad_entry_by_its_object_guid_by_its_logins_and_its_proxy_addresses(
    samba: SambaInstance, example_test: Domain
) -> None:
    configure_ad(example_test, samba, base_dn=STAFF)
    assert sync(example_test).status == SyncRun.Status.SUCCEEDED
    guid = object_guid(samba, "alice")
    alice = Account.objects.get(domain=example_test, username="alice")
    assert alice.directory_guid == guid

    found = explain_object(domain=example_test, query="{" + guid.upper() + "}")  # as AD tools write it
    assert (found["found_by"], found["status"], found["object_type"]) == (
        "directory id",
        "in_sync",
        "account",
    )
    entry = found["entry"]
    assert entry["dn"] == ALICE.dn and entry["id"] == guid and entry["in_base"] is True
    attributes = {item["name"]: item["values"] for item in entry["attributes"]}
    assert attributes["objectGUID"] == [guid]  # the binary GUID as its text
    assert "SMTP:alice@example.test" in attributes["proxyAddresses"]
    assert not any("unicodePwd" in name or "Password" in name for name in attributes)
    rules = found["rules"]
    assert rules["aliases"] == ["alice@example.test", "alice.anders@example.test", "aa@example.test"]
    sources = {(item["address"], item["source"]) for item in rules["addresses"]}
    assert ("alice@example.test", "proxyAddresses SMTP") in sources
    assert ("aa@example.test", "proxyAddresses smtp") in sources
    assert "X400" not in json.dumps(rules["addresses"])  # not a mail address
    assert (rules["login"], rules["enabled"], rules["full_name"]) == (
        "alice@example.test",
        True,
        "Alice Anders",
    )
    assert found["here"]["label"] == "alice@example.test"

    by_sam = explain_object(domain=example_test, query="carol")
    assert (by_sam["found_by"], by_sam["entry"]["dn"]) == ("address or login", CAROL.dn)
    by_upn = explain_object(domain=example_test, query="carol@corp.example.local")
    assert by_upn["entry"]["dn"] == CAROL.dn and by_upn["here"]["label"] == "carol@example.test"


def test_disabled_filtered_out_outside_the_dn_and_a_foreign_domain_in_ad(
    samba: SambaInstance, example_test: Domain
) -> None:
    configure_ad(example_test, samba, base_dn=STAFF)
    assert sync(example_test).status == SyncRun.Status.SUCCEEDED

    bob = explain_object(domain=example_test, query="bob@example.test")
    assert bob["exclusion"]["code"] == "disabled" and bob["rules"]["enabled"] is False
    assert "userAccountControl" in bob["exclusion"]["reason"]

    outside = explain_object(domain=example_test, query="dave")
    assert outside["exclusion"]["code"] == "outside_dn" and outside["entry"]["dn"] == DAVE.dn
    assert SALES in outside["exclusion"]["reason"]

    configure_ad(example_test, samba, base_dn=STAFF, account_filter="(userAccountControl=66048)")
    filtered = explain_object(domain=example_test, query="bob@example.test")
    assert filtered["exclusion"]["code"] == "filter"
    assert "disabled in the directory" in filtered["exclusion"]["reason"]

    configure_ad(example_test, samba, account_filter="")  # the whole domain, the default filter
    foreign = explain_object(domain=example_test, query="dave")
    assert foreign["exclusion"]["code"] == "foreign_domain"
    assert "dave@partner.example.net" in foreign["exclusion"]["reason"]


def test_sync_one_by_object_guid_leaves_the_rest_to_the_next_run(
    renamed: SambaInstance, example_test: Domain
) -> None:
    samba = renamed
    configure_ad(example_test, samba, base_dn=STAFF)
    assert sync(example_test).status == SyncRun.Status.SUCCEEDED
    set_display_name(samba, "alice", "Alice A. Anders")
    set_display_name(samba, "frank", "Frank F. Fischer")

    start = sync_one(domain=example_test, query=object_guid(samba, "alice"), requested_by="test")
    run = start.run
    assert run.status == SyncRun.Status.SUCCEEDED, run.errors
    assert (run.trigger, run.tracking) == ("sync_one", "one object: alice@example.test")
    assert run.counts["accounts"]["updated"] == 1
    names = dict(Account.objects.filter(domain=example_test).values_list("username", "full_name"))
    assert (names["alice"], names["frank.fischer"]) == ("Alice A. Anders", "Frank Fischer")

    following = sync(example_test)
    assert following.tracking == "USN", following.tracking
    assert [event.label for event in following.events.filter(action="update")] == [
        "frank.fischer@example.test"
    ]
