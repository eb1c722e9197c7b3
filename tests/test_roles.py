"""Every view, every role: what each may see and do; a forbidden action answers 403 and changes nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.contrib.auth.models import Group as Role
from django.test import Client
from django.urls import reverse

from icewarp_admin.mailserver.models import (
    Account,
    Address,
    Domain,
    GroupMember,
    SystemVariable,
    UserTemplate,
)
from icewarp_admin.mailserver.selectors import domain_export
from icewarp_admin.mailserver.services.accounts import create_account, update_personal_data
from icewarp_admin.mailserver.services.addresses import add_account_address
from icewarp_admin.mailserver.services.domains import create_domain
from icewarp_admin.mailserver.services.groups import add_member, create_group
from icewarp_admin.mailserver.services.templates import save_template

ALL = {"administrator", "helpdesk", "operator"}
READERS = {"administrator", "helpdesk"}
ADMIN = {"administrator"}


@dataclass
class Case:
    name: str
    method: str
    url: Callable[[dict[str, Any]], str]
    allowed: set[str]
    data: Callable[[dict[str, Any]], dict[str, str]] = field(default=lambda _: {})


CASES = [
    Case("domain list", "GET", lambda o: reverse("mailserver:domain_list"), ALL),
    Case(
        "create domain",
        "POST",
        lambda o: reverse("mailserver:domain_list"),
        ADMIN,
        lambda o: {"name": "new.org"},
    ),
    Case("domain tab", "GET", lambda o: reverse("mailserver:domain_detail", args=["example.com"]), ALL),
    Case(
        "edit domain",
        "POST",
        lambda o: reverse("mailserver:domain_detail", args=["example.com"]),
        ADMIN,
        lambda o: {"description": "changed"},
    ),
    Case("delete domain", "POST", lambda o: reverse("mailserver:domain_delete", args=["empty.org"]), ADMIN),
    Case("accounts", "GET", lambda o: reverse("mailserver:account_list", args=["example.com"]), ALL),
    Case(
        "search accounts",
        "GET",
        lambda o: reverse("mailserver:account_list", args=["example.com"]) + "?q=ali",
        ALL,
    ),
    Case(
        "create account",
        "POST",
        lambda o: reverse("mailserver:account_list", args=["example.com"]),
        ADMIN,
        lambda o: {"username": "zed", "full_name": "Zed"},
    ),
    Case("account page", "GET", lambda o: o["account_url"], ALL),
    Case(
        "account settings",
        "POST",
        lambda o: o["account_url"],
        ADMIN,
        lambda o: {
            "action": "settings",
            "full_name": "X",
            "auth_mode": "standard",
            "quota_mb": "1",
            "max_message_kb": "0",
            "services": "imap",
        },
    ),
    Case(
        "password",
        "POST",
        lambda o: o["account_url"],
        ADMIN,
        lambda o: {"action": "password", "password1": "n3w-Pass!", "password2": "n3w-Pass!"},
    ),
    Case(
        "personal data",
        "POST",
        lambda o: o["account_url"],
        ADMIN,
        lambda o: {"action": "personal_data", "item_0": "New Name"},
    ),
    Case(
        "hand back personal data",
        "POST",
        lambda o: o["account_url"],
        READERS,
        lambda o: {"action": "return_personal_data"},
    ),
    Case(
        "add alias",
        "POST",
        lambda o: o["account_url"],
        ADMIN,
        lambda o: {"action": "add_alias", "alias": "al"},
    ),
    Case(
        "primary alias",
        "POST",
        lambda o: o["account_url"],
        ADMIN,
        lambda o: {"action": "primary_alias", "address_id": str(o["second_alias"].pk)},
    ),
    Case(
        "remove alias",
        "POST",
        lambda o: o["account_url"],
        ADMIN,
        lambda o: {"action": "remove_alias", "address_id": str(o["second_alias"].pk)},
    ),
    Case(
        "delete account",
        "POST",
        lambda o: reverse("mailserver:account_delete", args=["example.com", "alice"]),
        ADMIN,
    ),
    Case("groups", "GET", lambda o: reverse("mailserver:group_list", args=["example.com"]), ALL),
    Case(
        "create group",
        "POST",
        lambda o: reverse("mailserver:group_list", args=["example.com"]),
        ADMIN,
        lambda o: {"alias": "new", "name": "New", "kind": "group"},
    ),
    Case("group page", "GET", lambda o: o["group_url"], ALL),
    Case(
        "edit group",
        "POST",
        lambda o: o["group_url"],
        ADMIN,
        lambda o: {"action": "update", "name": "Renamed", "kind": "group"},
    ),
    Case(
        "add member",
        "POST",
        lambda o: o["group_url"],
        ADMIN,
        lambda o: {"action": "add_member", "address": "x@elsewhere.org"},
    ),
    Case(
        "remove member",
        "POST",
        lambda o: o["group_url"],
        ADMIN,
        lambda o: {"action": "remove_member", "member_id": str(o["membership"].pk)},
    ),
    Case(
        "delete group",
        "POST",
        lambda o: reverse("mailserver:group_delete", args=["example.com", "sales"]),
        ADMIN,
    ),
    Case("templates", "GET", lambda o: reverse("mailserver:template_list"), READERS),
    Case(
        "template page",
        "GET",
        lambda o: reverse("mailserver:template_detail", args=[o["template"].pk]),
        READERS,
    ),
    Case("new template page", "GET", lambda o: reverse("mailserver:template_create"), READERS),
    Case(
        "create template",
        "POST",
        lambda o: reverse("mailserver:template_create"),
        ADMIN,
        lambda o: {"name": "New", "quota_mb": "0", "max_message_kb": "0", "account_state": "enabled"},
    ),
    Case(
        "edit template",
        "POST",
        lambda o: reverse("mailserver:template_detail", args=[o["template"].pk]),
        ADMIN,
        lambda o: {"name": "Staff", "quota_mb": "7", "max_message_kb": "0", "account_state": "enabled"},
    ),
    Case(
        "delete template",
        "POST",
        lambda o: reverse("mailserver:template_delete", args=[o["template"].pk]),
        ADMIN,
    ),
    Case("system settings", "GET", lambda o: reverse("mailserver:system_settings"), READERS),
    Case(
        "save system settings",
        "POST",
        lambda o: reverse("mailserver:system_settings"),
        ADMIN,
        lambda o: {
            "C_Accounts_Global_ActiveDirectorySyncInterval": "9",
            "C_System_ADSyncMaxDeleteThreshold": "0",
            "C_System_ADSyncLogType": "2",
        },
    ),
    Case(
        "directory service tab",
        "GET",
        lambda o: reverse("directory_sync:directory_tab", args=["example.com"]),
        ALL,
    ),
]


@pytest.fixture
def objects(db: None) -> dict[str, Any]:
    domain = create_domain(name="example.com")
    create_domain(name="empty.org")
    alice = create_account(domain=domain, username="alice", full_name="Alice")
    second = add_account_address(account=alice, local_part="a.second")
    update_personal_data(account=alice, vcard={"FN": "Alice"})
    sales = create_group(domain=domain, alias="sales", name="Sales")
    membership = add_member(group=sales, account=alice)
    template = save_template(template=UserTemplate(name="Staff"))
    return {
        "account_url": reverse("mailserver:account_detail", args=["example.com", "alice"]),
        "group_url": reverse("mailserver:group_detail", args=["example.com", "sales"]),
        "second_alias": second,
        "membership": membership,
        "template": template,
    }


def fingerprint() -> str:
    """Everything a forbidden request could have changed."""
    state = {
        "domains": list(Domain.objects.order_by("name").values("name", "description", "default_template")),
        "export": [domain_export(domain=domain) for domain in Domain.objects.order_by("name")],
        "accounts": list(Account.objects.order_by("pk").values()),
        "addresses": list(Address.objects.order_by("pk").values()),
        "members": list(GroupMember.objects.order_by("pk").values()),
        "templates": list(UserTemplate.objects.order_by("pk").values("name", "quota_mb", "services")),
        "variables": list(SystemVariable.objects.order_by("name").values("name", "value")),
    }
    return json.dumps(state, default=str, sort_keys=True)


@pytest.mark.parametrize("role", ["administrator", "helpdesk", "operator", None])
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_role_limits(
    case: Case, role: str | None, objects: dict[str, Any], client_for: Callable[..., Client]
) -> None:
    client = client_for(role)
    before = fingerprint()
    url, data = case.url(objects), case.data(objects)
    response = client.get(url) if case.method == "GET" else client.post(url, data)
    if role in case.allowed:
        assert response.status_code in {200, 302}, response.content[:2000]
        if case.method == "POST":
            assert response.status_code == 302, f"allowed POST did not succeed: {response.content[:3000]!r}"
            assert fingerprint() != before, "an allowed action changed nothing"
    else:
        assert response.status_code == 403
        assert fingerprint() == before


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_anonymous_is_sent_to_sign_in(case: Case, objects: dict[str, Any]) -> None:
    before = fingerprint()
    url = case.url(objects)
    response = Client().get(url) if case.method == "GET" else Client().post(url, case.data(objects))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert fingerprint() == before


def test_roles_exist_after_migrate(db: None) -> None:
    assert set(Role.objects.values_list("name", flat=True)) >= {"Administrators", "Helpdesk", "Operators"}


def test_read_only_roles_see_no_edit_forms(
    objects: dict[str, Any], client_for: Callable[..., Client]
) -> None:
    page = client_for("operator").get(objects["account_url"]).content.decode()
    assert 'name="action" value="settings"' not in page
    assert "Alice" in page
    helpdesk_page = client_for("helpdesk").get(objects["account_url"]).content.decode()
    assert 'value="password"' not in helpdesk_page
