"""Sync history: runs across domains with filters, CSV export, a run's page and its events, object events."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.http import HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.template.loader import get_template, render_to_string
from django.test import Client, RequestFactory
from django.urls import reverse
from django.utils import timezone

from devservers.slapd import SlapdInstance
from directory_sync import selectors
from directory_sync.models import DirectorySettings, SyncEvent, SyncRun
from directory_sync.services import sync as sync_service
from icewarp_admin.mailserver.models import Account, Domain
from icewarp_admin.mailserver.roles import ADMINISTRATORS
from icewarp_admin.mailserver.services.accounts import delete_account
from icewarp_admin.mailserver.services.domains import create_domain
from icewarp_admin.mailserver.services.groups import create_group
from icewarp_admin.mailserver.services.system import set_system_variable
from tests.conftest import PASSWORD
from tests.directory_helpers import configure, new_directory, sync

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}
CSV_HEADER = [
    "run id", "domain", "trigger", "dry run", "requested by", "status", "created", "started", "finished",
    "duration s", "accounts created", "accounts updated", "accounts renamed", "accounts disabled",
    "accounts removed",
    "accounts unchanged", "accounts skipped", "groups created", "groups updated", "groups renamed",
    "groups removed", "groups unchanged", "groups skipped", "conflicts", "removals withheld", "warnings",
    "errors",
]  # fmt: skip


@pytest.fixture(autouse=True)
def history_urls(settings: Any) -> None:
    """The history's URLs, whether or not icewarp_admin/urls.py includes them yet."""
    settings.ROOT_URLCONF = "tests.history_test_urls"


@dataclass
class History:
    first: SyncRun  # command line on example.com: creates alice and bob
    dry: SyncRun  # dry run (Synchronize Now) of bob's new title
    manual: SyncRun  # Synchronize Now: bob's new title applied
    scheduled: SyncRun  # the schedule on other.org
    failed: SyncRun  # broken.net has no directory configured

    def newest_first(self) -> list[int]:
        return [run.pk for run in (self.failed, self.scheduled, self.manual, self.dry, self.first)]


def run_now(domain: Domain, trigger: str, requested_by: str = "", *, dry_run: bool = False) -> SyncRun:
    start = sync_service.run_now(domain=domain, trigger=trigger, requested_by=requested_by, dry_run=dry_run)
    assert not start.joined
    return start.run


@pytest.fixture
def history(domain: Domain, slapd: SlapdInstance) -> History:
    directory = new_directory(slapd)
    directory.add_person(
        "alice",
        cn="Alice Anders",
        sn="Anders",
        title="CTO",
        mail=["alice@example.com", "a.anders@example.com"],
    )
    bob = directory.add_person("bob", cn="Bob Brown", sn="Brown", title="Engineer")
    configure(domain, directory)
    first = sync(domain)
    directory.modify(bob, title="Lead engineer")
    dry = run_now(domain, SyncRun.Trigger.MANUAL, "console-admin", dry_run=True)
    manual = run_now(domain, SyncRun.Trigger.MANUAL, "console-admin")

    other = create_domain(name="other.org")
    other_directory = new_directory(slapd)
    other_directory.add_person("carol", mail="carol@other.org")
    configure(other, other_directory)
    scheduled = run_now(other, SyncRun.Trigger.SCHEDULE)

    failed = run_now(create_domain(name="broken.net"), SyncRun.Trigger.COMMAND, "ops")
    for run in (first, dry, manual, scheduled):
        assert run.status == SyncRun.Status.SUCCEEDED, run.errors
    assert failed.status == SyncRun.Status.FAILED
    return History(first=first, dry=dry, manual=manual, scheduled=scheduled, failed=failed)


def page(response: HttpResponseBase, status: int = 200) -> str:
    assert response.status_code == status, response.status_code
    assert isinstance(response, HttpResponse)
    return response.content.decode()


def listed(response: HttpResponseBase) -> list[int]:
    """The run ids a list page links to, in order."""
    return [int(pk) for pk in re.findall(r'href="/sync/runs/(\d+)/"', page(response))]


def text(html: str) -> str:
    """The page as read: tags dropped, whitespace collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def run_url(run: SyncRun) -> str:
    return reverse("sync_history:run", args=[run.pk])


def csv_rows(response: HttpResponseBase) -> list[list[str]]:
    assert isinstance(response, StreamingHttpResponse)
    body = b"".join(response.streaming_content).decode()  # type: ignore[arg-type]
    return list(csv.reader(io.StringIO(body, newline="")))


# The list -------------------------------------------------------------------------------------------------


def test_the_list_shows_every_run_newest_first(history: History, admin: Client) -> None:
    response = admin.get(reverse("sync_history:list"))
    assert listed(response) == history.newest_first()
    shown = text(page(response))
    assert "5 runs" in shown
    for expected in ("example.com", "other.org", "broken.net", "Command line", "Synchronize Now", "Schedule"):
        assert expected in shown
    assert "Dry run" in shown and "console-admin" in shown and "created 2" in shown
    assert "Succeeded" in shown and "Failed" in shown and "1 error" in shown


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"domain": "other.org"}, ["scheduled"]),
        ({"status": "failed"}, ["failed"]),
        ({"kind": "dry"}, ["dry"]),
        ({"trigger": "manual"}, ["manual", "dry"]),
        ({"trigger": "manual", "kind": "real"}, ["manual"]),
        ({"trigger": "manual", "kind": "dry"}, ["dry"]),
        ({"kind": "real"}, ["failed", "scheduled", "manual", "first"]),
        ({"trigger": "command"}, ["failed", "first"]),
        ({"trigger": "schedule"}, ["scheduled"]),
        ({"domain": "example.com", "status": "succeeded"}, ["manual", "dry", "first"]),
        ({"trigger": "approval"}, []),
    ],
)
def test_each_filter(history: History, admin: Client, query: dict[str, str], expected: list[str]) -> None:
    response = admin.get(reverse("sync_history:list"), query)
    assert listed(response) == [getattr(history, name).pk for name in expected]
    if not expected:
        assert "No runs match these filters." in page(response)


def test_the_date_filter_takes_days_of_creation(history: History, admin: Client) -> None:
    SyncRun.objects.filter(pk=history.first.pk).update(created_at=datetime(2020, 1, 15, 12, tzinfo=UTC))
    url = reverse("sync_history:list")
    assert listed(admin.get(url, {"date_to": "2020-01-31"})) == [history.first.pk]
    assert listed(admin.get(url, {"date_from": "2020-01-15", "date_to": "2020-01-15"})) == [history.first.pk]
    later = listed(admin.get(url, {"date_from": "2020-01-16"}))
    assert later == [pk for pk in history.newest_first() if pk != history.first.pk]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"date_from": "15.01.2020x"}, "Enter a valid date."),
        ({"status": "exploded"}, "Select a valid choice. exploded is not one of the available choices."),
        ({"trigger": "cron"}, "Select a valid choice."),
        ({"trigger": "dry_run"}, "Select a valid choice."),
        ({"kind": "maybe"}, "Select a valid choice."),
        ({"domain": "nowhere.example"}, "Select a valid choice."),
        ({"date_from": "2024-05-02", "date_to": "2024-05-01"}, "The start date is after the end date."),
        ({"status": "failed", "date_to": "yesterday"}, "Enter a valid date."),
    ],
)
def test_bad_filter_input_is_shown_and_the_list_stays_unfiltered(
    history: History, admin: Client, query: dict[str, str], message: str
) -> None:
    response = admin.get(reverse("sync_history:list"), query)
    assert escape(message) in page(response)
    assert "no filter is applied" in page(response)
    assert listed(response) == history.newest_first()


def test_an_htmx_filter_gets_the_table_alone(history: History, admin: Client) -> None:
    response = admin.get(reverse("sync_history:list"), {"status": "failed"}, headers=HTMX)
    html = page(response)
    assert html.lstrip().startswith('<div id="run-table">') and "<html" not in html
    assert listed(response) == [history.failed.pk]
    assert 'href="/sync/export.csv?status=failed"' in html


def test_the_full_page_has_the_htmx_filter_form(admin: Client) -> None:
    html = page(admin.get(reverse("sync_history:list")))
    assert 'hx-get="/sync/"' in html and 'hx-target="#run-table"' in html and 'hx-push-url="true"' in html
    assert "No runs." in html


def test_pages_of_fifty_keep_the_filters(domain: Domain, admin: Client) -> None:
    SyncRun.objects.bulk_create(
        [SyncRun(domain=domain, trigger="schedule", status="succeeded") for _ in range(60)]
        + [SyncRun(domain=domain, trigger="manual", status="failed")]
    )
    url = reverse("sync_history:list")
    first = admin.get(url, {"status": "succeeded"})
    assert len(listed(first)) == 50
    assert "Page 1 of 2" in page(first)
    assert 'href="/sync/?status=succeeded&amp;page=2"' in page(first)
    second = admin.get(url, {"status": "succeeded", "page": "2"})
    assert len(listed(second)) == 10
    assert 'href="/sync/?status=succeeded&amp;page=1"' in page(second)
    assert set(listed(first)).isdisjoint(listed(second))
    assert len(listed(admin.get(url, {"status": "succeeded", "page": "nonsense"}))) == 50


# CSV ------------------------------------------------------------------------------------------------------


def test_the_csv_export(history: History, admin: Client) -> None:
    response = admin.get(reverse("sync_history:csv"))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="sync-history-')
    rows = csv_rows(response)
    assert rows[0] == CSV_HEADER == selectors.CSV_HEADER
    assert [int(row[0]) for row in rows[1:]] == history.newest_first()
    by_id = {int(row[0]): dict(zip(CSV_HEADER, row, strict=True)) for row in rows[1:]}

    first = by_id[history.first.pk]
    assert (first["domain"], first["trigger"], first["dry run"]) == ("example.com", "Command line", "no")
    assert (first["requested by"], first["status"]) == ("test", "Succeeded")
    created, updated, removed = (first[f"accounts {key}"] for key in ("created", "updated", "removed"))
    assert (created, updated, removed) == ("2", "0", "0")
    assert datetime.fromisoformat(first["started"]) <= datetime.fromisoformat(first["finished"])
    assert float(first["duration s"]) >= 0
    assert (first["groups created"], first["groups removed"]) == ("0", "0")
    dry = by_id[history.dry.pk]
    assert (dry["trigger"], dry["dry run"], dry["accounts updated"]) == ("Synchronize Now", "yes", "1")
    failed = by_id[history.failed.pk]
    assert failed["status"] == "Failed" and "no directory server configured" in failed["errors"]
    assert failed["accounts created"] == ""


def test_the_csv_export_applies_the_filters(history: History, admin: Client) -> None:
    url = reverse("sync_history:csv")
    assert [row[0] for row in csv_rows(admin.get(url, {"kind": "dry"}))[1:]] == [str(history.dry.pk)]
    rows = csv_rows(admin.get(url, {"domain": "example.com", "status": "succeeded"}))
    assert [int(row[0]) for row in rows[1:]] == [history.manual.pk, history.dry.pk, history.first.pk]
    assert csv_rows(admin.get(url, {"status": "queued"})) == [CSV_HEADER]
    assert "nothing exported" in page(admin.get(url, {"date_from": "not a date"}), status=400)


def test_the_csv_export_neutralizes_formulas(domain: Domain, admin: Client) -> None:
    SyncRun.objects.create(
        domain=domain,
        trigger="manual",
        status="failed",
        requested_by="=cmd|' /C calc'!A0",
        warnings=["+SUM(A1:A9)", "fine"],
        errors=["@import", "second - fine"],
    )
    SyncRun.objects.create(
        domain=domain, trigger="manual", status="failed", requested_by="\tcalc", errors=["-2+3"],
        warnings=["\r=1+1"],
    )  # fmt: skip
    rows = csv_rows(admin.get(reverse("sync_history:csv")))
    tabbed, formula = (dict(zip(CSV_HEADER, row, strict=True)) for row in rows[1:])
    assert formula["requested by"] == "'=cmd|' /C calc'!A0"
    assert formula["warnings"] == "'+SUM(A1:A9); fine"
    assert formula["errors"] == "'@import; second - fine"
    assert formula["domain"] == "example.com"
    assert tabbed["requested by"] == "'\tcalc"
    assert tabbed["errors"] == "'-2+3"
    assert tabbed["warnings"] == "'\r=1+1"


@pytest.mark.parametrize(
    ("cell", "safe"),
    [
        *[
            ("=1+1", "'=1+1"),
            ("+1", "'+1"),
            ("-1", "'-1"),
            ("@A1", "'@A1"),
            ("\t=1", "'\t=1"),
            ("\r=1", "'\r=1"),
        ],
        *[("a=1", "a=1"), ("", ""), ("12", "12"), ("example.com", "example.com")],
    ],
)
def test_neutralize(cell: str, safe: str) -> None:
    assert selectors.neutralize(cell) == safe


# A run's page ---------------------------------------------------------------------------------------------


def test_the_run_page_shows_counts_warnings_withheld_removals_and_events(
    domain: Domain, slapd: SlapdInstance, admin: Client
) -> None:
    directory = new_directory(slapd)
    dns = [directory.add_person(f"staff{number}") for number in range(3)]
    configure(domain, directory)
    sync(domain)
    set_system_variable(name="C_System_ADSyncMaxDeleteThreshold", value=1)
    directory.delete(*dns[:2])
    directory.add_person("newcomer", title="Intern")
    run = sync(domain)
    assert run.removals_withheld == 2

    html = page(admin.get(run_url(run)))
    shown = text(html)
    assert "Synchronization of example.com #" in shown and "Succeeded" in shown
    assert "Command line" in shown and "Requested by test" in shown
    assert "Created 1" in shown and "Unchanged 1" in shown and "Removed 0" in shown
    # The withheld removals and their reason are said once, in their own section: not among the warnings.
    assert not any("withheld" in warning for warning in run.warnings)
    outcome = html.split('id="events"')[0]  # each withheld event says why as well, in the events table
    assert "Removals withheld 2" in shown and outcome.count(escape(run.withheld_reason)) == 1
    assert "C_System_ADSyncMaxDeleteThreshold (1)" in run.withheld_reason
    for number in (0, 1):
        account_page = reverse("mailserver:account_detail", args=["example.com", f"staff{number}"])
        assert f'<a href="{account_page}">staff{number}@example.com</a>' in html
    assert "hx-trigger" not in html.split('id="run-header"')[1].split(">")[0]

    newcomer_page = reverse("mailserver:account_detail", args=["example.com", "newcomer"])
    assert f'<a href="{newcomer_page}">newcomer@example.com</a>' in html
    assert "3 events" in shown
    assert "Username : — → newcomer" in shown and "Job title: Intern" in shown
    assert "Auth mode : — → LDAP / Active Directory" in shown
    assert "Removal withheld" in shown and '<span class="badge action withheld">' in html


def test_the_page_of_a_failed_run_says_why(history: History, admin: Client) -> None:
    shown = text(page(admin.get(run_url(history.failed))))
    assert "Why the run failed" in shown and "broken.net has no directory server configured" in shown
    assert "Nothing was counted: the run stopped before comparing anything." in shown


def test_the_page_of_a_dry_run(history: History, admin: Client) -> None:
    shown = text(page(admin.get(run_url(history.dry))))
    assert "Dry run of example.com" in shown and "dry run: nothing was changed" in shown
    assert "Trigger Synchronize Now Requested by console-admin" in shown
    assert "Full scan no: only entries changed since the last run were compared" in shown
    assert "Personal data (vCard) : Job title: Engineer → Job title: Lead engineer" in shown
    assert "Changes planned 1" in shown and "Changes applied none: a dry run changes nothing" in shown


def test_event_search_and_action_filter(history: History, admin: Client) -> None:
    url = run_url(history.first)
    headers = {**HTMX, "HX-Target": "run-events"}

    def found(**query: str) -> str:
        html = page(admin.get(url, query, headers=headers))
        assert html.lstrip().startswith('<div id="run-events"') and "<html" not in html
        return text(html)

    alice_id = SyncEvent.objects.get(run=history.first, label="alice@example.com").directory_id
    assert "1 event matching “ALICE”" in found(q="ALICE")
    assert "alice@example.com" in found(q="ALICE") and "bob@example.com" not in found(q="ALICE")
    assert "bob@example.com" in found(q="uid=bob") and "alice@example.com" not in found(q="uid=bob")
    assert "alice@example.com" in found(q=alice_id) and "bob@example.com" not in found(q=alice_id)
    assert "2 events matching “new in the directory”" in found(q="new in the directory")
    assert "2 events" in found(action="create")
    assert "0 events" in found(action="update") and "No events match." in found(action="update")
    assert "0 events" in found(q="alice", action="remove")
    bad = found(action="explode")
    assert "This search is not valid" in bad and "Select a valid choice." in bad and "2 events" in bad

    full = page(admin.get(url, {"q": "alice"}))
    assert 'value="alice"' in full and "1 event matching" in full and "<html" in full
    assert "Addresses : — → alice@example.com, a.anders@example.com" in text(full)


def test_an_event_links_to_its_account_while_it_exists(history: History, admin: Client) -> None:
    alice_page = reverse("mailserver:account_detail", args=["example.com", "alice"])
    assert f'href="{alice_page}"' in page(admin.get(run_url(history.first)))
    DirectorySettings.objects.filter(domain__name="example.com").update(active=False)  # else it may not go
    delete_account(account=Account.objects.get(username="alice"))
    html = page(admin.get(run_url(history.first)))
    assert f'href="{alice_page}"' not in html and "alice@example.com" in html


def test_an_event_links_to_its_group(domain: Domain, admin: Client) -> None:
    group = create_group(domain=domain, alias="staff", name="Staff")
    run = SyncRun.objects.create(domain=domain, trigger="manual", status="succeeded")
    SyncEvent.objects.create(
        run=run, object_type="group", action="update", label="staff@example.com", group=group,
        fields={"members": [["a@example.com"], ["a@example.com", "b@example.com"]]},
    )  # fmt: skip
    html = page(admin.get(run_url(run)))
    group_page = reverse("mailserver:group_detail", args=["example.com", "staff"])
    assert f'<a href="{group_page}">staff@example.com</a>' in html
    assert "Members : a@example.com → a@example.com, b@example.com" in text(html)


def test_events_are_paginated_by_a_hundred(domain: Domain, admin: Client) -> None:
    run = SyncRun.objects.create(domain=domain, trigger="manual", status="succeeded")
    SyncEvent.objects.bulk_create(
        SyncEvent(run=run, object_type="account", action="create", label=f"user{number:03}@example.com")
        for number in range(130)
    )
    first = text(page(admin.get(run_url(run), {"action": "create"})))
    assert "user099@example.com" in first and "user100@example.com" not in first
    query, headers = {"action": "create", "page": "2"}, {**HTMX, "HX-Target": "run-events"}
    second_html = page(admin.get(run_url(run), query, headers=headers))
    assert "user100@example.com" in second_html and "user099@example.com" not in second_html
    assert f'href="{run_url(run)}?action=create&amp;page=1"' in second_html


# Polling while a run is under way -------------------------------------------------------------------------


def test_a_running_run_polls_until_it_finishes(domain: Domain, admin: Client) -> None:
    run = SyncRun.objects.create(
        domain=domain, trigger="manual", requested_by="console-admin", status="running",
        started_at=timezone.now(), phase="read", entries_read=120,
    )  # fmt: skip
    url, headers = run_url(run), {**HTMX, "HX-Target": "run-header"}
    full = page(admin.get(url))
    assert 'hx-trigger="every 250ms"' in full and "No events yet" in full and "<progress" in full

    polled = admin.get(url, headers=headers)
    html = page(polled)
    assert html.lstrip().startswith('<section class="card run-header" id="run-header"')
    assert 'hx-trigger="every 250ms"' in html and "<progress" in html
    assert "Phase: Reading the directory" in text(html) and "Entries read 120" in text(html)

    SyncRun.objects.filter(pk=run.pk).update(phase="apply", actions_planned=10, actions_applied=4)
    assert '<progress max="10" value="4">' in page(admin.get(url, headers=headers))

    SyncRun.objects.filter(pk=run.pk).update(
        status="succeeded", finished_at=timezone.now(), phase="", counts={"accounts": {"created": 7}}
    )
    html = page(admin.get(url, headers=headers), status=286)
    assert "hx-trigger" not in html and "<progress" not in html
    assert 'id="run-outcome" hx-swap-oob="true"' in html and 'id="run-events" hx-swap-oob="true"' in html
    assert "Created 7" in text(html)


def test_a_queued_run_waits_for_a_worker(domain: Domain, admin: Client) -> None:
    run = SyncRun.objects.create(domain=domain, trigger="schedule")
    html = page(admin.get(run_url(run), headers={**HTMX, "HX-Target": "run-header"}))
    assert "Waiting for a worker" in html and 'hx-trigger="every 250ms"' in html


def test_an_unknown_run_is_404(admin: Client) -> None:
    assert admin.get(reverse("sync_history:run", args=[999999])).status_code == 404


# Who may see it -------------------------------------------------------------------------------------------


def history_urls_of(history: History) -> list[str]:
    return [reverse("sync_history:list"), reverse("sync_history:csv"), run_url(history.manual)]


@pytest.mark.parametrize("role", ["administrator", "helpdesk", "operator"])
def test_every_role_reads_the_history(
    history: History, client_for: Callable[[str | None], Client], role: str
) -> None:
    client = client_for(role)
    for url in history_urls_of(history):
        assert client.get(url).status_code == 200, url
    assert 'id="run-events"' in page(client.get(run_url(history.manual)))
    events = client.get(run_url(history.manual), headers={**HTMX, "HX-Target": "run-events"})
    assert events.status_code == 200


def test_no_role_is_forbidden(history: History, client_for: Callable[[str | None], Client]) -> None:
    client = client_for(None)
    for url in history_urls_of(history):
        assert client.get(url).status_code == 403, url


def test_anonymous_is_sent_to_sign_in(history: History, client: Client) -> None:
    for url in history_urls_of(history):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login")), url


def test_runs_without_events_for_whom_may_not_see_events(
    history: History, django_user_model: Any, client: Client
) -> None:
    user = django_user_model.objects.create_user(username="runs-only", password=PASSWORD)
    user.user_permissions.add(Permission.objects.get(codename="view_syncrun"))
    client.force_login(user)
    html = page(client.get(run_url(history.manual)))
    assert "Synchronization of example.com" in html and 'id="run-events"' not in html
    events = client.get(run_url(history.manual), headers={**HTMX, "HX-Target": "run-events"})
    assert events.status_code == 403


def test_the_history_is_read_only(history: History, admin: Client) -> None:
    for url in history_urls_of(history):
        assert admin.post(url).status_code == 405, url


# An account's and a group's events ------------------------------------------------------------------------


def test_object_events_list_what_touched_an_account(history: History, make_user: Callable[..., Any]) -> None:
    bob = Account.objects.get(username="bob")
    rows = selectors.object_events(account=bob)
    assert [row.event.run_id for row in rows] == [history.manual.pk, history.dry.pk, history.first.pk]
    alice = Account.objects.get(username="alice")
    assert [row.event.run_id for row in selectors.object_events(account=alice)] == [history.first.pk]
    assert len(selectors.object_events(account=bob, limit=1)) == 1

    request = RequestFactory().get("/")
    request.user = make_user("reader", ADMINISTRATORS)
    html = render_to_string("directory_sync/object_events.html", {"events": rows}, request=request)
    assert f'<a href="{run_url(history.manual)}">#{history.manual.pk}</a>' in html
    shown = text(html)
    assert "dry run" in shown
    assert "Personal data (vCard) : Job title: Engineer → Job title: Lead engineer" in shown
    assert "new in the directory" in shown and rows[0].event.reason in shown

    request.user = make_user("nobody")
    assert "<section" not in render_to_string(
        "directory_sync/object_events.html", {"events": rows}, request=request
    )
    request.user = make_user("reader2", ADMINISTRATORS)
    empty = render_to_string("directory_sync/object_events.html", {"events": []}, request=request)
    assert "No synchronization has touched this yet." in empty


def test_object_events_of_a_group(domain: Domain) -> None:
    group = create_group(domain=domain, alias="staff", name="Staff")
    run = SyncRun.objects.create(domain=domain, trigger="manual", status="succeeded")
    event = SyncEvent.objects.create(
        run=run, object_type="group", action="create", label="staff", group=group
    )
    assert [row.event for row in selectors.object_events(group=group)] == [event]
    with pytest.raises(ValueError, match="exactly one"):
        selectors.object_events()


# Selectors ------------------------------------------------------------------------------------------------


def test_run_list_refuses_unknown_values(db: None) -> None:
    with pytest.raises(ValueError, match="status"):
        selectors.run_list(status="exploded")
    with pytest.raises(ValueError, match="trigger"):
        selectors.run_list(trigger="cron")


def test_fields_are_described_compactly() -> None:
    described = selectors.describe_fields(
        {
            "username": [None, "alice"],
            "enabled": [True, False],
            "aliases": [["a@example.com"], ["a@example.com", "b@example.com"]],
            "vcard": [{"TITLE": "CTO", "ORG": "Example"}, {"TITLE": "CEO", "ORG": "Example", "NOTE": "x"}],
            "new_vcard": [None, {"TITLE": "CTO"}],
            "quota_mb": [0, 100],
        }
    )
    assert [(change.name, change.before, change.after) for change in described] == [
        ("username", "—", "alice"),
        ("enabled", "Yes", "No"),
        ("aliases", "a@example.com", "a@example.com, b@example.com"),
        ("vcard", "Job title: CTO", "Job title: CEO; Note: x"),
        ("new_vcard", "—", "TITLE: CTO"),
        ("quota_mb", "0", "100"),
    ]


def test_the_withheld_list_has_the_hook_for_approval() -> None:
    assert get_template("directory_sync/run_detail.html#withheld-actions").render({}).strip() == ""
