"""The mapping of one entry, for what a generic slapd cannot hold (AD's attributes); Samba tests the rest."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from directory_sync.ldap.entries import Entry
from directory_sync.models import DirectorySettings
from directory_sync.rules.addresses import accepted_domains, candidate_addresses, qualifying_local_parts
from directory_sync.servers.active_directory import ACTIVE_DIRECTORY, UserAccountControl
from directory_sync.sync.config import SyncConfig, build_config
from directory_sync.sync.people import DirectoryPerson, SkippedEntry, map_entry
from icewarp_admin.mailserver.models import Domain

pytestmark = pytest.mark.django_db

GUID = uuid.UUID("fcf144ab-1234-4cde-9f00-0123456789ab")


def ad_entry(**attributes: list[str | bytes]) -> Entry:
    base: dict[str, list[str | bytes]] = {
        "objectGUID": [GUID.bytes_le],
        "whenChanged": ["20261126120000.0Z"],
        "cn": ["Alice Anders"],
        "displayName": ["Alice Anders"],
        "userPrincipalName": ["alice@corp.example.local"],
        "sAMAccountName": ["alice"],
        "userAccountControl": ["512"],
        "proxyAddresses": ["SMTP:Alice.Anders@example.com", "smtp:alice@example.com", "X400:c=US;a= ;p=Org",
                           "smtp:alice@legacy.example.org", "SIP:alice@example.com"],
        "mail": ["alice.anders@example.com"],
    }  # fmt: skip
    base.update(attributes)
    return Entry(dn="CN=Alice Anders,OU=Staff,DC=corp,DC=example,DC=local", attributes=base)


def ad_config(domain: Domain, **values: Any) -> SyncConfig:
    settings = {
        "host": "dc1.corp.example.local",
        "base_dn": "DC=corp,DC=example,DC=local",
        "server_type": "ad",
        "login_source": "upn",
        **values,
    }
    return build_config(DirectorySettings(domain=domain, **settings))


def test_object_guid_is_a_guid_string_and_proxy_addresses_give_the_aliases(domain: Domain) -> None:
    person = map_entry(ad_entry(), ad_config(domain))
    assert isinstance(person, DirectoryPerson)
    assert person.guid == str(GUID) and person.key == str(GUID)
    assert person.local_parts == ("alice.anders", "alice")  # SMTP: is primary; X400 and SIP are not mail
    assert person.username == "alice.anders"
    assert person.change_stamp == "20261126120000.0Z"


@pytest.mark.parametrize(
    ("login_source", "expected"),
    [
        ("upn", "dc1.corp.example.local;alice@corp.example.local"),
        ("samaccountname", "dc1.corp.example.local;alice"),
        ("dn", "dc1.corp.example.local;CN=Alice Anders,OU=Staff,DC=corp,DC=example,DC=local"),
    ],
)
def test_auth_value_for_each_login_source(domain: Domain, login_source: str, expected: str) -> None:
    person = map_entry(ad_entry(), ad_config(domain, login_source=login_source))
    assert isinstance(person, DirectoryPerson) and person.auth_value == expected


@pytest.mark.parametrize(
    ("flags", "enabled"), [("512", True), ("514", False), ("66050", False), ("66048", True)]
)
def test_user_account_control_disabled_bit(domain: Domain, flags: str, enabled: bool) -> None:
    person = map_entry(ad_entry(userAccountControl=[flags]), ad_config(domain))
    assert isinstance(person, DirectoryPerson) and person.enabled is enabled
    assert (UserAccountControl.ACCOUNTDISABLE in UserAccountControl(int(flags))) is not enabled
    assert ACTIVE_DIRECTORY.has_disabled_flag


def test_login_alias_and_username_from_login(domain: Domain) -> None:
    config = ad_config(domain, add_login_to_aliases=True, username_source="login")
    person = map_entry(ad_entry(proxyAddresses=["SMTP:anders@example.com"], mail=[]), config)
    assert isinstance(person, DirectoryPerson)
    assert person.local_parts == ("anders", "alice")
    assert person.username == "alice"


def test_an_invalid_username_is_skipped_with_the_reason(domain: Domain) -> None:
    config = ad_config(domain, username_source="cn")
    skipped = map_entry(ad_entry(cn=["../../etc"]), config)
    assert isinstance(skipped, SkippedEntry) and not skipped.leaves_domain
    assert "username" in skipped.reason


def test_accepted_domains_and_rewriting() -> None:
    accepted = accepted_domains(
        domain="example.com", host_domain_active=True, host_domain="ADDomain;Partner.NET"
    )
    candidates = candidate_addresses(
        mail=["a@partner.net", "b@example.com"], other_mailbox=["c@other.org"], proxy_addresses=[]
    )
    qualified = qualifying_local_parts(candidates, accepted)
    assert qualified.local_parts == ("a", "b") and qualified.foreign == ("c@other.org",)
    assert accepted.directory_domain == "ADDomain"
    single = accepted_domains(domain="example.com", host_domain_active=True, host_domain="ADDomain")
    assert not single.accepts("partner.net") and single.accepts("example.com")
    anything = accepted_domains(domain="example.com", host_domain_active=True, host_domain="ADDomain;*")
    assert anything.accepts("whatever.org")
