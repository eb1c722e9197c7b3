"""Bad input to every form: the page comes back (200) saying what to fix, and nothing changes."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from icewarp_admin.mailserver.models import Account, Domain, UserTemplate
from icewarp_admin.mailserver.services.accounts import create_account
from icewarp_admin.mailserver.services.domains import create_domain
from icewarp_admin.mailserver.services.groups import create_group
from icewarp_admin.mailserver.services.templates import save_template
from tests.test_roles import fingerprint

ACCOUNT_URL = "/domains/example.com/accounts/alice/"
GROUP_URL = "/domains/example.com/groups/sales/"


@pytest.fixture
def setup(db: None) -> dict[str, Any]:
    domain = create_domain(name="example.com")
    alice = create_account(domain=domain, username="alice")
    create_account(domain=domain, username="bob")
    create_group(domain=domain, alias="sales", name="Sales")
    template = save_template(template=UserTemplate(name="Staff"))
    return {"domain": domain, "alice": alice, "template": template}


BAD_POSTS = [
    ("/domains/", {"name": "not a domain"}, "not a domain name"),
    ("/domains/", {"name": "EXAMPLE.com"}, "already exists"),
    ("/domains/", {"name": ""}, "This field is required"),
    ("/domains/", {"name": "x.org", "default_template": "999"}, "Select a valid choice"),
    ("/domains/example.com/", {"description": "x" * 300}, "at most 255 characters"),
    ("/domains/example.com/accounts/", {"username": "two words"}, "not a valid address part"),
    ("/domains/example.com/accounts/", {"username": "Alice"}, "already has an account named alice"),
    ("/domains/example.com/accounts/", {"username": "../etc"}, "not a valid address part"),
    (
        ACCOUNT_URL,
        {
            "action": "settings",
            "auth_mode": "directory",
            "auth_value": "",
            "quota_mb": "0",
            "max_message_kb": "0",
        },
        "host;login",
    ),
    (
        ACCOUNT_URL,
        {"action": "settings", "auth_mode": "standard", "quota_mb": "-5", "max_message_kb": "0"},
        "greater than or equal to 0",
    ),
    (
        ACCOUNT_URL,
        {"action": "settings", "auth_mode": "kerberos", "quota_mb": "0", "max_message_kb": "0"},
        "Select a valid choice",
    ),
    (
        ACCOUNT_URL,
        {
            "action": "settings",
            "auth_mode": "standard",
            "quota_mb": "0",
            "max_message_kb": "0",
            "services": "telnet",
        },
        "Select a valid choice",
    ),
    (ACCOUNT_URL, {"action": "password", "password1": "a", "password2": "b"}, "The two passwords differ"),
    (ACCOUNT_URL, {"action": "add_alias", "alias": "bob"}, "already used by account bob@example.com"),
    (ACCOUNT_URL, {"action": "add_alias", "alias": "sales"}, "already used by group sales@example.com"),
    (ACCOUNT_URL, {"action": "add_alias", "alias": "x@other.org"}, "must be in example.com"),
    (ACCOUNT_URL, {"action": "add_alias", "alias": "bad alias"}, "not a valid address part"),
    (ACCOUNT_URL, {"action": "personal_data", "item_0": "x" * 2001}, "at most 2000 characters"),
    (
        "/domains/example.com/groups/",
        {"alias": "alice", "name": "A", "kind": "group"},
        "already used by account",
    ),
    (
        "/domains/example.com/groups/",
        {"alias": "a b", "name": "A", "kind": "group"},
        "not a valid address part",
    ),
    ("/domains/example.com/groups/", {"alias": "ok", "name": "A", "kind": "club"}, "Select a valid choice"),
    (GROUP_URL, {"action": "add_member", "address": "not-an-address"}, "valid email address"),
    (GROUP_URL, {"action": "add_member", "address": "sales@example.com"}, "loop"),
    (GROUP_URL, {"action": "update", "name": "", "kind": "group"}, "This field is required"),
    (
        "/templates/new/",
        {"name": "Staff", "quota_mb": "0", "max_message_kb": "0", "account_state": "enabled"},
        "already exists",
    ),
    (
        "/templates/new/",
        {"name": "T2", "quota_mb": "x", "max_message_kb": "0", "account_state": "enabled"},
        "Enter a whole number",
    ),
    (
        "/system/settings/",
        {
            "C_Accounts_Global_ActiveDirectorySyncInterval": "0",
            "C_System_ADSyncMaxDeleteThreshold": "0",
            "C_System_ADSyncLogType": "2",
        },
        "must be between 1 and 1440",
    ),
    (
        "/system/settings/",
        {
            "C_Accounts_Global_ActiveDirectorySyncInterval": "5",
            "C_System_ADSyncMaxDeleteThreshold": "0",
            "C_System_ADSyncLogType": "9",
        },
        "Select a valid choice",
    ),
]


@pytest.mark.parametrize(("url", "data", "says"), BAD_POSTS, ids=[f"{u} {d}"[:60] for u, d, _ in BAD_POSTS])
@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
def test_bad_input_rerenders_with_the_reason_and_changes_nothing(
    url: str, data: dict[str, str], says: str, htmx: bool, setup: dict[str, Any], admin: Client
) -> None:
    before = fingerprint()
    headers = {"HX-Request": "true"} if htmx else {}
    response = admin.post(url, data, headers=headers)
    assert response.status_code == 200
    assert says in response.content.decode(), response.content.decode()[:3000]
    assert fingerprint() == before


@pytest.mark.parametrize(
    ("url", "data", "status"),
    [
        (ACCOUNT_URL, {"action": "explode"}, 400),
        (ACCOUNT_URL, {"action": "remove_alias", "address_id": "x"}, 404),
        (ACCOUNT_URL, {"action": "remove_alias", "address_id": "999999"}, 404),
        (GROUP_URL, {"action": "remove_member", "member_id": "'; drop"}, 404),
        (GROUP_URL, {"action": "nope"}, 400),
        ("/domains/nowhere.org/accounts/", {"username": "x"}, 404),
        ("/domains/example.com/accounts/nobody/", {}, 404),
    ],
)
def test_malformed_requests_are_refused_without_a_server_error(
    url: str, data: dict[str, str], status: int, setup: dict[str, Any], admin: Client
) -> None:
    before = fingerprint()
    response = admin.post(url, data) if data else admin.get(url)
    assert response.status_code == status
    assert fingerprint() == before


def test_removing_the_last_alias_is_refused(setup: dict[str, Any], admin: Client) -> None:
    only = setup["alice"].aliases.get()
    response = admin.post(ACCOUNT_URL, {"action": "remove_alias", "address_id": str(only.pk)})
    assert response.status_code == 200
    assert "only address" in response.content.decode()
    assert setup["alice"].aliases.count() == 1


def test_deleting_a_domain_with_accounts_is_refused(setup: dict[str, Any], admin: Client) -> None:
    response = admin.post(reverse("mailserver:domain_delete", args=["example.com"]), follow=True)
    assert "still has 2 account(s)" in response.content.decode()
    assert Domain.objects.filter(name="example.com").exists()


def test_htmx_save_returns_the_section_only(setup: dict[str, Any], admin: Client) -> None:
    data = {
        "action": "settings",
        "full_name": "Alice A",
        "auth_mode": "standard",
        "quota_mb": "10",
        "max_message_kb": "0",
        "services": ["imap", "smtp"],
        "enabled": "on",
    }
    response = admin.post(ACCOUNT_URL, data, headers={"HX-Request": "true"})
    page = response.content.decode()
    assert response.status_code == 200
    assert page.lstrip().startswith('<section class="card" id="account-settings">')
    assert "Account saved." in page and 'hx-swap-oob="true"' in page
    alice = Account.objects.get(username="alice")
    assert (alice.full_name, alice.quota_mb, alice.services) == ("Alice A", 10, ["imap", "smtp"])


def test_account_search_and_pagination(setup: dict[str, Any], admin: Client, settings: Any) -> None:
    settings.ACCOUNTS_PAGE_SIZE = 2
    domain = setup["domain"]
    for name in ["carol", "dave", "erin"]:
        create_account(domain=domain, username=name, full_name=f"{name.title()} Example")
    page = admin.get("/domains/example.com/accounts/?page=2").content.decode()
    assert "Page 2 of 3" in page and "carol" in page and "dave" in page and "erin" not in page
    found = admin.get("/domains/example.com/accounts/?q=ERIN%20EX", headers={"HX-Request": "true"})
    body = found.content.decode()
    assert body.lstrip().startswith('<div id="account-table">')
    assert "erin@example.com" in body and "carol" not in body
    by_address = admin.get("/domains/example.com/accounts/?q=dave@example.com").content.decode()
    assert "1 account matching" in by_address
    assert admin.get("/domains/example.com/accounts/?page=zzz").status_code == 200
