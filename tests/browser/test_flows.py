"""The main flows of each role in a real browser (Chromium through Playwright) against the live console, a
real Celery worker and the real slapd: what a person does, step by step, with a screenshot of each step."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

from devservers.slapd import SlapdInstance
from directory_sync.models import DirectorySettings, SyncRun
from icewarp_admin.mailserver.models import Account
from icewarp_admin.mailserver.services.accounts import update_personal_data
from icewarp_admin.mailserver.services.domains import create_domain
from tests.directory_helpers import Directory, configure, new_directory, sync
from tests.servers import Worker

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

SignIn = Callable[[str], tuple[Any, Any]]


def people(slapd: SlapdInstance) -> Directory:
    directory = new_directory(slapd)
    directory.add_person(
        "ann", mail=["ann@example.com", "ann.smith@example.com"], cn="Ann Smith", title="Lead"
    )
    directory.add_person("ben", cn="Ben Brown")
    directory.add_person("cid", cn="Cid Clark")
    return directory


def no_changing_controls(page: Any) -> list[str]:
    """The page's controls that would change something (every POST form but signing out)."""
    forms = page.locator("form[method=post]:not([action='/logout/'])")
    return [forms.nth(index).evaluate("f => f.outerHTML.slice(0, 120)") for index in range(forms.count())]


def test_administrator_configures_tests_unsaved_settings_and_synchronizes(
    signed_in: SignIn, live_server: Any, slapd: SlapdInstance, celery_worker: Worker
) -> None:
    create_domain(name="example.com")
    directory = people(slapd)
    page, shot = signed_in("administrator")
    page.goto(f"{live_server.url}/domains/example.com/directory/")
    shot("empty-tab")

    server = page.locator("#section-server")
    server.locator("input[name=host]").fill(slapd.ldap_url)
    server.locator("input[name=bind_user]").fill(slapd.admin_dn)
    server.locator("input[name=password]").fill(slapd.admin_password)
    server.locator("input[name=base_dn]").fill(directory.base_dn)
    server.locator("input[name=allow_plain_bind]").check()  # the test slapd speaks plain ldap:// on loopback
    server.get_by_role("button", name="Test these settings").click()
    check = page.locator("#connection-check")
    check.get_by_text("Unsaved settings: Connected to").wait_for(timeout=60_000)
    assert DirectorySettings.objects.filter(domain__name="example.com", host=slapd.ldap_url).count() == 0
    shot("unsaved-settings-tested")
    server.get_by_role("button", name="Save Server settings").click()
    page.locator("#section-server .saved-note").wait_for()
    assert "The next run uses these settings" in page.locator("#section-server .saved-note").inner_text()
    shot("server-saved")

    advanced = page.locator("#section-advanced")
    advanced.locator("select[name=login_source]").select_option("dn")
    advanced.locator("input[name=account_filter]").fill("(uid=*")
    advanced.get_by_role("button", name="Save Advanced settings").click()
    error = page.locator("#section-advanced .field.has-error")
    error.wait_for()
    assert "account_filter" in error.inner_html()
    assert page.locator("#section-advanced input[name=account_filter]").input_value() == "(uid=*"
    shot("bad-filter-shown-next-to-the-field")
    page.locator("#section-advanced input[name=account_filter]").fill("(objectClass=inetOrgPerson)")
    page.locator("#section-advanced").get_by_role("button", name="Save Advanced settings").click()
    page.locator("#section-advanced .saved-note").wait_for()

    general = page.locator("#section-general")
    general.locator("input[name=active]").check()
    general.get_by_role("button", name="Save General settings").click()
    page.locator("#section-general .saved-note").wait_for()
    shot("active")

    page.get_by_role("button", name="Dry run").click()
    page.locator("#sync-run .run-box h3").get_by_text("Dry run").wait_for()
    page.locator("#sync-run").get_by_text(re.compile(r"Accounts:.*created 3")).wait_for(timeout=60_000)
    shot("dry-run-counts")
    assert Account.objects.filter(domain__name="example.com").count() == 0
    page.get_by_role("button", name="Synchronize Now").click()
    page.locator("#sync-run .run-box h3").get_by_text("Synchronization").wait_for()
    page.locator("#sync-run").get_by_text(re.compile(r"Accounts:.*created 3")).wait_for(timeout=60_000)
    shot("synchronized")
    assert Account.objects.filter(domain__name="example.com").count() == 3


def test_helpdesk_finds_a_person_hands_data_back_and_synchronizes(
    signed_in: SignIn, live_server: Any, slapd: SlapdInstance, celery_worker: Worker
) -> None:
    domain = create_domain(name="example.com")
    configure(domain, people(slapd))
    sync(domain)
    update_personal_data(account=Account.objects.get(username="ann"), vcard={"TITLE": "Edited here"})
    page, shot = signed_in("helpdesk")
    page.goto(f"{live_server.url}/domains/example.com/accounts/")
    page.get_by_role("searchbox", name="Search accounts").fill("ann.smith")
    page.locator("table").get_by_role("link", name="ann").wait_for()
    shot("found-by-alias")
    page.locator("table").get_by_role("link", name="ann").click()
    page.get_by_role("button", name="Hand personal data back to the directory").click()
    page.get_by_text("Personal data handed back to the directory").wait_for()
    shot("personal-data-handed-back")
    assert not Account.objects.get(username="ann").vcard_edited_locally

    page.goto(f"{live_server.url}/domains/example.com/directory/")
    assert page.get_by_role("button", name=re.compile("^Save ")).count() == 0
    assert page.locator("#section-server input").count() == 0
    page.get_by_role("button", name="Synchronize Now").click()
    page.locator("#sync-run").get_by_text(re.compile(r"Accounts:.*updated 1")).wait_for(timeout=60_000)
    shot("synchronized")
    assert Account.objects.get(username="ann").vcard["TITLE"] == "Lead"
    forbidden = page.request.post(
        f"{live_server.url}/domains/example.com/directory/",
        form={"section": "server", "host": "ldap://evil.example:389"},
        headers={"X-CSRFToken": page.evaluate("document.cookie.match(/csrftoken=([^;]+)/)[1]")},
    )
    assert forbidden.status == 403
    assert DirectorySettings.objects.get(domain=domain).host == slapd.ldap_url


def test_operator_filters_failed_runs_reads_one_and_exports_csv(
    signed_in: SignIn, live_server: Any, slapd: SlapdInstance
) -> None:
    domain = create_domain(name="example.com")
    configure(domain, people(slapd))
    good = sync(domain)
    DirectorySettings.objects.filter(domain=domain).update(host="ldap://127.0.0.1:1")
    failed = sync(domain)
    assert (good.status, failed.status) == (SyncRun.Status.SUCCEEDED, SyncRun.Status.FAILED)
    page, shot = signed_in("operator")
    page.goto(f"{live_server.url}/sync/")
    page.locator("select[name=status]").select_option("failed")
    page.get_by_role("button", name=re.compile("Filter|Show")).first.click()
    page.wait_for_url(re.compile(r".*status=failed.*"))
    rows = page.locator("table tbody tr")
    assert rows.count() == 1 and f"#{failed.pk}" in rows.first.inner_text()
    shot("failed-runs")
    assert not no_changing_controls(page)

    page.goto(f"{live_server.url}/sync/runs/{good.pk}/")
    page.get_by_role("searchbox", name="Search events").fill("ben")
    # The search answers as one types (htmx): wait until the other people are gone from the table.
    expect(page.locator("#events table")).not_to_contain_text("ann@example.com")
    expect(page.locator("#events").get_by_role("link", name="ben@example.com")).to_be_visible()
    shot("run-events-searched")
    assert not no_changing_controls(page)

    page.goto(f"{live_server.url}/sync/")
    with page.expect_download() as download:
        page.get_by_role("link", name=re.compile("CSV")).click()
    text = download.value.path().read_text()
    assert text.splitlines()[0].startswith("run id,domain")
    assert f"\n{good.pk}," in text and f"\n{failed.pk}," in text
    page.goto(f"{live_server.url}/domains/example.com/directory/")
    page.locator("#sync-status").wait_for()
    shot("operator-directory-tab")
    assert not no_changing_controls(page)
