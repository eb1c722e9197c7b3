"""The Directory Service tab: sections, validation, secrets, history, server-type defaults, roles."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from directory_sync.models import DirectorySettings, SettingsChange
from directory_sync.services.settings import save_directory_settings
from icewarp_admin.mailserver.models import Domain

pytestmark = pytest.mark.django_db

TAB = "/domains/example.com/directory/"
PASSWORD = "S3cret-bind-Pa55"

SERVER = {
    "section": "server",
    "host": "ldaps://dc1.example.com:636",
    "backup_host": "dc2.example.com",
    "bind_user": "cn=sync,dc=example,dc=com",
    "password": PASSWORD,
    "base_dn": "dc=example,dc=com",
    "verify_certificate": "on",
    "timeout_seconds": "10",
    "page_size": "500",
}


def advanced(**overrides: str) -> dict[str, str]:
    data = {
        "section": "advanced",
        "server_type": "generic",
        "sync_accounts": "on",
        "sync_groups": "on",
        "login_source": "dn",
        "username_source": "alias",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def stored(domain: Domain) -> DirectorySettings:
    return DirectorySettings.objects.get(domain=domain)


def test_server_section_saves_and_the_password_is_write_only(domain: Domain, admin: Client) -> None:
    response = admin.post(TAB, SERVER)
    assert response.status_code == 302
    settings = stored(domain)
    assert (settings.host, settings.backup_host, settings.base_dn) == (
        "ldaps://dc1.example.com:636",
        "dc2.example.com",
        "dc=example,dc=com",
    )
    assert settings.get_bind_password() == PASSWORD
    assert PASSWORD not in settings.bind_password_encrypted
    page = admin.get(TAB).content.decode()
    assert PASSWORD not in page and settings.bind_password_encrypted not in page
    assert "stored (encrypted)" in page

    # blank keeps the stored password; the checkbox removes it
    admin.post(TAB, {**SERVER, "password": "", "backup_host": ""})
    assert stored(domain).get_bind_password() == PASSWORD
    admin.post(TAB, {**SERVER, "password": "", "clear_password": "on"})
    assert stored(domain).get_bind_password() == ""


def test_invalid_section_rerenders_what_was_typed_except_the_password(domain: Domain, admin: Client) -> None:
    for headers in ({}, {"HX-Request": "true"}):
        response = admin.post(
            TAB, {**SERVER, "host": "ldap://dc1.example.com:70000", "base_dn": "not a dn"}, headers=headers
        )
        page = response.content.decode()
        assert response.status_code == 200
        assert "70000" in page and "not a dn" in page  # the typed values come back
        assert PASSWORD not in page
        assert "out of range" in page
    assert not DirectorySettings.objects.filter(domain=domain).exists()
    assert not SettingsChange.objects.exists()


def test_history_records_fields_with_secrets_masked(domain: Domain, admin: Client) -> None:
    admin.post(TAB, SERVER)
    admin.post(TAB, {**SERVER, "host": "dc9.example.com", "password": "Another-0ne"})
    first, second = reversed(list(SettingsChange.objects.filter(domain=domain)))
    assert first.changed_by_name == "user-administrator"
    assert first.changes["host"] == ["", "ldaps://dc1.example.com:636"]
    assert second.changes["host"] == ["ldaps://dc1.example.com:636", "dc9.example.com"]
    assert set(second.changes) == {"host", "bind_password"}
    everything = str([change.changes for change in SettingsChange.objects.all()])
    assert PASSWORD not in everything and "Another-0ne" not in everything
    page = admin.get(TAB).content.decode()
    assert "History of changes" in page and "dc9.example.com" in page


def test_activation_needs_a_host_and_a_dn(domain: Domain, admin: Client) -> None:
    response = admin.post(TAB, {"section": "general", "active": "on"})
    assert response.status_code == 200
    assert "fill in the Server section first" in response.content.decode()
    admin.post(TAB, SERVER)
    assert admin.post(TAB, {"section": "general", "active": "on"}).status_code == 302
    assert stored(domain).active


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (advanced(account_filter="(&(objectClass=user)"), "parenthes"),
        (advanced(group_filter="(cn=a)(sn=b)"), "&"),
        (advanced(host_domain_active="on", host_domain=""), "Give the directory"),
        (advanced(vcard_map="FN:${displayName}\r\nTEL;TYPE=CELL ${mobile}"), "Line 2"),
        (advanced(username_attribute="bad attr"), "attribute"),
        (advanced(server_type="novell"), "Select a valid choice"),
        (
            {"section": "kerberos", "sso_active": "on", "sso_service_name": "", "sso_matching": "0"},
            "service name",
        ),
        (
            {
                "section": "kerberos",
                "sso_service_name": "HTTP/mail.example.com@example.com",
                "sso_matching": "0",
            },
            "EXAMPLE.COM",
        ),
        (
            {
                "section": "server",
                "host": "dc1",
                "bind_user": "EXAMPLE\\",
                "timeout_seconds": "10",
                "page_size": "500",
            },
            "user",
        ),
        (
            {"section": "server", "host": "dc1", "timeout_seconds": "0", "page_size": "5000"},
            "between 1 and 120",
        ),
        (
            {
                "section": "server",
                "host": "dc1",
                "ca_bundle": "not pem",
                "timeout_seconds": "5",
                "page_size": "50",
            },
            "certificate",
        ),
        ({"section": "nope"}, "Unknown section"),
    ],
)
def test_every_section_refuses_bad_input_and_changes_nothing(
    domain: Domain, admin: Client, data: dict[str, str], says: str
) -> None:
    response = admin.post(TAB, data)
    assert response.status_code in {200, 400}
    assert says in response.content.decode()
    assert not DirectorySettings.objects.filter(domain=domain).exists()


def test_blank_fields_take_the_server_type_defaults(domain: Domain, admin: Client) -> None:
    admin.post(TAB, advanced(server_type="ad", login_source="upn"))
    settings = stored(domain)
    assert settings.account_filter == ""
    assert settings.effective_account_filter == "(&(objectCategory=person)(objectClass=user))"
    assert (settings.effective_guid_attribute, settings.effective_guid_is_binary) == ("objectGUID", True)
    assert settings.effective_change_stamp_attribute == "whenChanged"
    page = admin.get(TAB).content.decode()
    assert "objectGUID (default)" in page


def test_choosing_a_server_type_fills_its_defaults_but_keeps_what_was_typed(
    domain: Domain, admin: Client
) -> None:
    posted = advanced(
        server_type="ad",
        previous_server_type="generic",
        account_filter="inetOrgPerson",  # the old type's default: follows the type
        group_filter="(&(objectClass=group)(mail=*))",  # typed by the administrator: stays
        login_source="dn",  # the old type's default: follows the type
    )
    response = admin.post("/domains/example.com/directory/defaults/", posted, headers={"HX-Request": "true"})
    page = response.content.decode()
    assert response.status_code == 200
    assert page.lstrip().startswith('<section class="card" id="section-advanced">')
    assert 'placeholder="(&amp;(objectCategory=person)(objectClass=user)) (default)"' in page
    assert 'value="(&amp;(objectClass=group)(mail=*))"' in page
    assert 'value="inetOrgPerson"' not in page
    assert '<option value="upn" selected>' in page
    assert not DirectorySettings.objects.filter(domain=domain).exists()  # nothing saved until Save


def test_saving_an_unchanged_section_records_nothing(domain: Domain, admin: Client) -> None:
    admin.post(TAB, SERVER)
    admin.post(TAB, {**SERVER, "password": ""})
    assert SettingsChange.objects.count() == 1


@pytest.mark.parametrize(
    ("role", "sees_settings", "sees_history", "can_test"),
    [
        ("administrator", True, True, True),
        ("helpdesk", True, True, True),
        ("operator", False, True, False),
    ],
)
def test_what_each_role_sees_on_the_tab(
    domain: Domain,
    client_for: Callable[[str | None], Client],
    role: str,
    sees_settings: bool,
    sees_history: bool,
    can_test: bool,
) -> None:
    save_directory_settings(domain=domain, values={"host": "dc1.example.com"}, new_password=PASSWORD)
    page = client_for(role).get(TAB).content.decode()
    assert ("dc1.example.com" in page and "Server" in page) is sees_settings
    assert ("History of changes" in page) is sees_history
    assert ("Test connection</button>" in page) is can_test
    assert PASSWORD not in page


@pytest.mark.parametrize("role", ["helpdesk", "operator", None])
@pytest.mark.parametrize(
    ("url", "data"),
    [
        (TAB, SERVER),
        (TAB, {"section": "general"}),
        ("/domains/example.com/directory/defaults/", advanced()),
        ("/domains/example.com/directory/keytabs/", {}),
    ],
)
def test_only_administrators_change_settings(
    domain: Domain,
    client_for: Callable[[str | None], Client],
    role: str | None,
    url: str,
    data: dict[str, Any],
) -> None:
    response = client_for(role).post(url, data)
    assert response.status_code == 403
    assert not DirectorySettings.objects.exists()


@pytest.mark.parametrize("role", ["operator", None])
def test_operators_cannot_run_test_connection(
    domain: Domain, client_for: Callable[[str | None], Client], role: str | None
) -> None:
    assert client_for(role).post("/domains/example.com/directory/test/").status_code == 403
    from directory_sync.models import ConnectionCheck

    assert not ConnectionCheck.objects.exists()


def test_no_role_sees_nothing(domain: Domain, client_for: Callable[[str | None], Client]) -> None:
    client = client_for(None)
    assert client.get(TAB).status_code == 403
    assert client.get("/domains/example.com/directory/history/").status_code == 403


def test_the_upgrade_keeps_domains_that_bind_in_clear_working(domain: Domain) -> None:
    """Migration 0009 (ALLOWPLAINBIND) opts in exactly the domains that already sent a password in clear."""
    import importlib

    from django.apps import apps

    from icewarp_admin.mailserver.services.domains import create_domain

    migration = importlib.import_module("directory_sync.migrations.0009_directorysettings_allow_plain_bind")
    cases = {
        "plain.example": ("dc1.example.com", "", False, "pw"),
        "backup.example": ("ldaps://dc1.example.com", "dc2.example.com", False, "pw"),
        "tls.example": ("ldaps://dc1.example.com", "", False, "pw"),
        "starttls.example": ("ldap://dc1.example.com", "", True, "pw"),
        "anonymous.example": ("ldap://dc1.example.com", "", False, ""),
    }
    for name, (host, backup, starttls, password) in cases.items():
        row = DirectorySettings.objects.create(
            domain=create_domain(name=name), host=host, backup_host=backup, use_starttls=starttls
        )
        if password:
            row.set_bind_password(password)
            row.save()
    migration.keep_existing_plain_binds(apps, None)
    allowed = set(
        DirectorySettings.objects.filter(allow_plain_bind=True).values_list("domain__name", flat=True)
    )
    assert allowed == {"plain.example", "backup.example"}
    assert not DirectorySettings._meta.get_field("allow_plain_bind").default  # new domains: off
