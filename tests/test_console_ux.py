"""The Directory Service tab as people use it: feedback next to each section's button, testing unsaved
settings, labels instead of codes, the server's limits, the operators' view, the seed's field order."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client

from devservers.slapd import SlapdInstance
from directory_sync.models import ConnectionCheck, DirectorySettings
from directory_sync.services.checks import perform_connection_check
from directory_sync.services.settings import save_directory_settings
from icewarp_admin.mailserver.models import Account, Domain, SystemVariable
from icewarp_admin.mailserver.services.accounts import create_account
from tests.directory_helpers import configure, new_directory, sync

pytestmark = pytest.mark.django_db

TAB = "/domains/example.com/directory/"
HTMX = {"HX-Request": "true"}
SAVED = "Saved. The next run uses these settings: the next scheduled one, or Synchronize Now."


def server(**overrides: str) -> dict[str, str]:
    data = {
        "section": "server",
        "host": "ldap://127.0.0.1:1",
        "bind_user": "cn=admin,dc=example,dc=com",
        "base_dn": "dc=example,dc=com",
        "verify_certificate": "on",
        "timeout_seconds": "5",
        "page_size": "100",
    }
    data.update(overrides)
    return data


def test_each_section_says_saved_next_to_its_button(domain: Domain, admin: Client) -> None:
    response = admin.post(TAB, server(), headers=HTMX)
    page = response.content.decode()
    assert response.status_code == 200 and 'id="section-server"' in page
    assert f'<span class="saved-note" role="status">{SAVED}</span>' in page
    assert "Save Server settings" in page
    unchanged = admin.post(TAB, server(), headers=HTMX).content.decode()
    assert '<span class="saved-note" role="status">Nothing changed.</span>' in unchanged
    # Without htmx: back to the section, the note beside its button, the message at the top as well.
    response = admin.post(TAB, server(host="ldap://127.0.0.1:2"))
    assert response.status_code == 302 and response["Location"] == f"{TAB}?saved=server#section-server"
    page = admin.get(response["Location"]).content.decode()
    assert page.count(SAVED) == 2
    assert '<nav class="section-menu"' in page and 'href="#section-kerberos"' in page


def test_unsaved_settings_are_tested_without_being_saved(
    domain: Domain, admin: Client, slapd: SlapdInstance
) -> None:
    save_directory_settings(
        domain=domain, values={"host": "ldap://127.0.0.1:1", "base_dn": "dc=example,dc=com"}
    )
    # A subtree of its own: other tests leave referrals under the shared root, which a check reports.
    base = new_directory(slapd).base_dn
    typed = server(
        host=slapd.ldap_url, bind_user=slapd.admin_dn, password=slapd.admin_password, allow_plain_bind="on",
        base_dn=base,
    )  # fmt: skip
    response = admin.post(f"{TAB}test-unsaved/", typed, headers=HTMX)
    assert response.status_code == 200 and 'id="connection-check"' in response.content.decode()
    assert DirectorySettings.objects.get(domain=domain).host == "ldap://127.0.0.1:1"  # nothing saved
    check = ConnectionCheck.objects.get()
    assert check.unsaved_settings is not None and check.result is None
    assert check.unsaved_settings["host"] == slapd.ldap_url
    assert slapd.admin_password not in str(check.unsaved_settings)  # encrypted, as stored
    perform_connection_check(check_id=check.pk)
    check.refresh_from_db()
    assert check.status == "succeeded" and check.result is not None, check.result
    assert check.result["summary"].startswith(f"Unsaved settings: Connected to {slapd.ldap_url}")
    page = admin.get(TAB).content.decode()
    assert "Test connection of the unsaved settings" in page and "Test these settings" in page
    # A bad value comes back in its section, with the typed values, as a save would show it.
    response = admin.post(
        f"{TAB}test-unsaved/",
        {"section": "advanced", "server_type": "generic", "account_filter": "(uid=*"},
        headers=HTMX,
    )
    assert response["HX-Retarget"] == "#section-advanced"
    assert "(uid=*" in response.content.decode() and ConnectionCheck.objects.count() == 1


def test_read_only_views_show_labels_not_codes(
    domain: Domain, client_for: Callable[[str | None], Client]
) -> None:
    save_directory_settings(
        domain=domain,
        values={"host": "dc1.example.com", "login_source": "dn", "sso_matching": 1, "guid_attribute": "uid"},
    )
    helpdesk = client_for("helpdesk")
    page = helpdesk.get(TAB).content.decode()
    assert "<dt>AD login source</dt><dd>DN</dd>" in page
    assert "<dt>Remote account matching</dt><dd>Match with alias</dd>" in page
    assert "<dt>Synchronize users</dt><dd>Yes</dd>" in page
    assert "<dt>LDAP server type</dt><dd>Generic LDAP</dd>" in page
    assert "<dt>User filter</dt><dd>inetOrgPerson (default)</dd>" in page
    assert "True" not in page and "Save Server settings" not in page
    assert "<strong>Immutable id attribute</strong>: — → uid" in page
    assert "<strong>Remote account matching</strong>: Match with username → Match with alias" in page
    SystemVariable.objects.create(name="C_System_ADSyncLogType", value="1")
    settings_page = helpdesk.get("/system/settings/").content.decode()
    assert "<td>Debug</td>" in settings_page and "Directory sync log" in settings_page


def test_limits_in_the_form_match_the_server(domain: Domain, admin: Client) -> None:
    page = admin.get(TAB).content.decode()
    assert 'name="timeout_seconds" value="10" min="1" max="120"' in page
    assert 'name="base_dn" size="60" maxlength="2048"' in page
    response = admin.post(TAB, server(base_dn="dc=x," * 700 + "dc=example"), headers=HTMX)
    assert "Ensure this value has at most 2048 characters" in response.content.decode()
    response = admin.post(TAB, server(timeout_seconds="0"), headers=HTMX)
    assert "The timeout must be between 1 and 120." in response.content.decode()
    assert DirectorySettings.objects.filter(domain=domain).count() in (0, 1)
    assert not DirectorySettings.objects.filter(domain=domain, timeout_seconds=0).exists()


def test_labels_say_what_each_thing_is(domain: Domain, admin: Client) -> None:
    page = admin.get(TAB).content.decode()
    expected = (
        "Save General settings",
        "Save Advanced settings",
        ">vCard map<",
        "Save Kerberos / SSO settings",
    )
    for text in expected:
        assert text in page, text
    assert "VCard" not in page and "Save general" not in page
    assert "Entries without a change stamp are expected (no warning)" in page


def test_the_server_section_follows_the_seeds_order(domain: Domain, admin: Client) -> None:
    page = admin.get(TAB).content.decode()
    names = ("host", "backup_host", "bind_user", "password", "base_dn")
    order = [page.index(f'name="{name}"') for name in names]
    assert order == sorted(order)


def test_operators_see_the_sync_status_and_last_runs(
    domain: Domain, slapd: SlapdInstance, client_for: Callable[[str | None], Client]
) -> None:
    directory = new_directory(slapd)
    directory.add_person("ops")
    configure(domain, directory)
    run = sync(domain)
    page = client_for("operator").get(TAB).content.decode()
    assert 'id="sync-status"' in page and f'href="/sync/runs/{run.pk}/">#{run.pk}</a>' in page
    assert "All runs of example.com in the sync history" in page and "/sync/?domain=example.com" in page
    assert "<form" not in page.split('id="sync-status"')[1].split("</section>")[0]
    assert "Save Server settings" not in page


def test_a_favicon_is_served(client: Client) -> None:
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"].endswith("img/favicon.svg")
    assert 'rel="icon"' in client.get("/login/").content.decode()


def test_read_only_personal_data_is_listed_by_its_labels(
    domain: Domain, client_for: Callable[[str | None], Client]
) -> None:
    create_account(domain=domain, username="vera", password="Secret-Pass-123", full_name="Vera V.")
    Account.objects.filter(username="vera").update(
        vcard={"TEL;TYPE=PREF,WORK,VOICE": "+1 555 0100", "FN": "Vera V.", "X-ROOM": "B12"}
    )
    page = client_for("operator").get("/domains/example.com/accounts/vera/").content.decode()
    listed = page.split('id="account-personal"')[1].split("</section>")[0]
    assert "<dt>Display name</dt><dd>Vera V.</dd><dt>Work phone</dt><dd>+1 555 0100</dd>" in listed
    assert "<dt>X-ROOM</dt><dd>B12</dd>" in listed and "TEL;TYPE" not in listed
