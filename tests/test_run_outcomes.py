"""How a run ends and how it reads: completed with errors, titles and triggers, counts, named warnings,
polling, and events in words."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import timedelta
from html import escape
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.http import HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from devservers.slapd import SlapdInstance
from directory_sync import selectors
from directory_sync.models import FINISHED_STATUSES, JobStatus, SyncEvent, SyncRun
from directory_sync.services.sync import run_summary
from icewarp_admin.mailserver.models import Account, Domain
from icewarp_admin.mailserver.services.groups import create_group
from tests.directory_helpers import Directory, configure, new_directory, sync

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}
GROUP_FILTER = "(objectClass=groupOfNames)"
MISSING_BASE = "ou=nowhere,dc=example,dc=com"


@pytest.fixture(autouse=True)
def history_urls(settings: Any) -> None:
    """The history's URLs, whether or not icewarp_admin/urls.py includes them yet."""
    settings.ROOT_URLCONF = "tests.history_test_urls"


@pytest.fixture
def directory(slapd: SlapdInstance) -> Directory:
    return new_directory(slapd)


def page(response: HttpResponseBase, status: int = 200) -> str:
    assert response.status_code == status, response.status_code
    assert isinstance(response, HttpResponse)
    return response.content.decode()


def text(html: str) -> str:
    """The page as read: tags dropped, whitespace collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def run_url(run: SyncRun) -> str:
    return reverse("sync_history:run", args=[run.pk])


def box_url(run: SyncRun) -> str:
    return reverse("directory_sync:run_status", args=[run.domain.name, run.pk])


def add_group(directory: Directory, cn: str, members: list[str]) -> str:
    dn = f"cn={cn},{directory.base_dn}"
    lines = [
        f"dn: {dn}",
        "objectClass: groupOfNames",
        f"cn: {cn}",
        *(f"member: {member}" for member in members),
    ]
    directory.slapd.ldapadd("\n".join(lines) + "\n")
    return dn


def partial_run(domain: Domain, directory: Directory, *, dry_run: bool = False) -> SyncRun:
    """A first good run of two people, then one against a base DN the server does not have."""
    directory.add_person("ann")
    directory.add_person("ben")
    configure(domain, directory)
    assert sync(domain).status == JobStatus.SUCCEEDED
    configure(domain, directory, base_dn=MISSING_BASE)
    return sync(domain, dry_run=dry_run)


# Completed with errors -------------------------------------------------------------------------------------


def test_partial_is_a_finished_status_of_its_own() -> None:
    assert (JobStatus.PARTIAL.value, JobStatus.PARTIAL.label) == ("partial", "Completed with errors")
    assert JobStatus.PARTIAL in FINISHED_STATUSES
    assert set(FINISHED_STATUSES) == {"succeeded", "partial", "failed", "skipped"}
    assert SyncRun(status=JobStatus.PARTIAL).is_finished
    assert SyncRun(status=JobStatus.PARTIAL).status_badge == "warn"
    assert SyncRun(status=JobStatus.SUCCEEDED).status_badge == "ok"
    assert SyncRun(status=JobStatus.FAILED).status_badge == "off"


def test_a_base_dn_that_does_not_exist_completes_with_errors(domain: Domain, directory: Directory) -> None:
    run = partial_run(domain, directory)
    assert run.status == "partial" and run.is_finished and run.finished_at is not None
    assert run.errors and "does not exist" in run.errors[0] and MISSING_BASE in run.errors[0]
    # Nothing read is not "everyone left": the removals are withheld, and the accounts stay.
    assert run.removals_withheld == 2 and "failed part-way" in run.withheld_reason
    assert Account.objects.filter(domain=domain).count() == 2
    # Why the search failed is said once: in the errors, not again in the warnings or the withheld reason.
    said = [*run.errors, *run.warnings, run.withheld_reason]
    assert sum(entry.count("does not exist") for entry in said) == 1
    assert not any("withheld" in warning for warning in run.warnings)
    assert run.withheld_reason.count("failed part-way") == 1  # accounts' and groups' reasons, said once
    assert run.actions_planned == run.actions_applied == 0


def test_a_dry_run_against_a_missing_base_dn_completes_with_errors(
    domain: Domain, directory: Directory
) -> None:
    run = partial_run(domain, directory, dry_run=True)
    assert run.status == "partial" and run.dry_run and run.removals_withheld == 2


def test_a_complete_run_after_it_succeeds_again(domain: Domain, directory: Directory) -> None:
    partial_run(domain, directory)
    configure(domain, directory)
    run = sync(domain)
    assert run.status == "succeeded" and run.errors == []


def test_the_command_line_says_partial_with_exit_code_2(domain: Domain, directory: Directory) -> None:
    partial_run(domain, directory)
    out = StringIO()
    with pytest.raises(CommandError, match=r"Completed with errors: .*does not exist") as raised:
        call_command("directory_sync", "example.com", "--json", stdout=out)
    assert raised.value.returncode == 2
    summary = json.loads(out.getvalue())
    assert summary["status"] == "partial" and summary["errors"][0].startswith("The user and group searches")
    assert summary["removals_withheld"] == 2
    # The JSON keeps the withheld removals among its warnings, once, with their reason (no search problem).
    withheld = [warning for warning in summary["warnings"] if "withheld" in warning]
    assert len(withheld) == 1 and withheld[0].startswith("2 removals withheld: ")
    assert "does not exist" not in " ".join(summary["warnings"])

    out = StringIO()
    with pytest.raises(CommandError) as raised:
        call_command("directory_sync", "example.com", stdout=out)
    assert raised.value.returncode == 2
    printed = out.getvalue()
    assert ": partial (completed with errors) in " in printed
    assert printed.count("does not exist") == 1 and printed.count("removals withheld") == 1


def test_the_command_documents_its_exit_codes() -> None:
    from directory_sync.management.commands import directory_sync as command

    assert "2 completed with errors" in command.Command.help and "3 another run" in command.Command.help
    assert "2 it completed with errors" in (command.__doc__ or "")


def test_a_partial_run_is_shown_as_completed_with_errors(
    domain: Domain, directory: Directory, admin: Client
) -> None:
    run = partial_run(domain, directory)

    box = page(admin.get(box_url(run), headers=HTMX), status=286)
    assert '<span class="badge warn">Completed with errors</span>' in box
    assert "hx-trigger" not in box and "does not exist" in box
    assert text(box).count("failed part-way") == 1

    listed = page(admin.get(reverse("sync_history:list"), {"status": "partial"}))
    assert f'href="{run_url(run)}"' in listed and "Completed with errors" in listed
    assert re.search(r'<option value="partial"[^>]*>Completed with errors</option>', listed)
    assert re.findall(r'href="/sync/runs/(\d+)/"', listed) == [str(run.pk)]

    detail = page(admin.get(run_url(run)))
    shown = text(detail)
    assert "Completed with errors" in shown and "What the run could not read" in shown
    assert shown.count("does not exist") == 1
    assert detail.split('id="events"')[0].count(escape(run.withheld_reason)) == 1

    export = admin.get(reverse("sync_history:csv"), {"status": "partial"})
    assert isinstance(export, StreamingHttpResponse)
    body = b"".join(export.streaming_content).decode()
    rows = list(csv.DictReader(io.StringIO(body, newline="")))
    assert [(row["run id"], row["status"]) for row in rows] == [(str(run.pk), "Completed with errors")]
    assert "does not exist" in rows[0]["errors"]


def test_a_group_search_that_fails_alone_completes_with_errors(
    domain: Domain, directory: Directory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from directory_sync.ldap import BulkSession, DirectoryError, Entry

    directory.add_person("cid")
    search = BulkSession.paged_search

    def refuse_groups(self: BulkSession, base: str, search_filter: str, *args: Any, **kwargs: Any) -> Any:
        if "groupOfNames" in search_filter:
            raise DirectoryError("search", "The server cannot evaluate the group filter (test)")
        entries: list[Entry] = list(search(self, base, search_filter, *args, **kwargs))
        return iter(entries)

    monkeypatch.setattr(BulkSession, "paged_search", refuse_groups)
    configure(domain, directory, group_filter=GROUP_FILTER)
    run = sync(domain)
    assert run.status == "partial"
    assert run.errors == [
        "The group search did not finish: The server cannot evaluate the group filter (test)"
    ]
    assert Account.objects.filter(username="cid").exists()  # what was read was applied


# Titles, triggers and who ---------------------------------------------------------------------------------


def test_runs_are_titled_by_what_they_are(domain: Domain, admin: Client) -> None:
    now = timezone.now()
    dry = SyncRun.objects.create(
        domain=domain, trigger="manual", requested_by="console-admin", dry_run=True, status="succeeded",
        started_at=now, finished_at=now,
    )  # fmt: skip
    real = SyncRun.objects.create(
        domain=domain, trigger="schedule", requested_by="schedule", status="succeeded", started_at=now,
        finished_at=now,
    )  # fmt: skip
    assert (dry.title, real.title) == ("Dry run", "Synchronization")
    assert (dry.requester, real.requester) == ("console-admin", "")

    box = text(page(admin.get(box_url(dry), headers=HTMX), status=286))
    assert f"Dry run #{dry.pk}" in box and "Synchronize Now · console-admin" in box
    box = text(page(admin.get(box_url(real), headers=HTMX), status=286))
    assert f"Synchronization #{real.pk}" in box and "Schedule ·" in box and "schedule ·" not in box

    shown = text(page(admin.get(reverse("sync_history:list"))))
    assert f"Dry run #{dry.pk}" in shown and f"Synchronization #{real.pk}" in shown
    assert "Schedule — " in shown  # who: not "schedule" again

    detail = text(page(admin.get(run_url(dry))))
    assert (
        "Dry run of example.com" in detail and "Trigger Synchronize Now Requested by console-admin" in detail
    )
    detail = text(page(admin.get(run_url(real))))
    assert "Trigger Schedule Requested by —" in detail


def test_the_trigger_filter_includes_dry_runs_and_the_kind_filter_splits_them(domain: Domain) -> None:
    dry = SyncRun.objects.create(domain=domain, trigger="manual", dry_run=True, status="succeeded")
    real = SyncRun.objects.create(domain=domain, trigger="manual", status="succeeded")
    command = SyncRun.objects.create(domain=domain, trigger="command", dry_run=True, status="succeeded")

    def ids(*, trigger: str = "", kind: str = "") -> list[int]:
        return [run.pk for run in selectors.run_list(trigger=trigger, kind=kind)]

    assert ids(trigger="manual") == [real.pk, dry.pk]
    assert ids(trigger="manual", kind="dry") == [dry.pk]
    assert ids(trigger="manual", kind="real") == [real.pk]
    assert ids(kind="dry") == [command.pk, dry.pk]
    with pytest.raises(ValueError, match="kind"):
        selectors.run_list(kind="dry_run")
    with pytest.raises(ValueError, match="trigger"):
        selectors.run_list(trigger="dry_run")


# Counts that say what they are ----------------------------------------------------------------------------


def test_skips_are_not_changes(domain: Domain, directory: Directory, admin: Client) -> None:
    for name in ("dan", "eva", "fay", "gil"):
        directory.add_person(name, mail=[])  # no address: skipped
    configure(domain, directory)
    run = sync(domain)
    assert run.status == "succeeded" and run.counts["accounts"]["skipped"] == 4
    assert (run.actions_planned, run.actions_applied) == (0, 0)
    shown = text(page(admin.get(run_url(run))))
    assert "Changes planned 0" in shown and "Changes applied 0" in shown and "Skipped 4" in shown
    assert "planned / applied" not in shown

    directory.add_person("hal")
    run = sync(domain)
    assert (run.actions_planned, run.actions_applied) == (1, 1)
    box = text(page(admin.get(box_url(run), headers=HTMX), status=286))
    assert "Accounts: created 1" in box


# Warnings that name their objects -------------------------------------------------------------------------


def test_warnings_name_their_objects_and_link_to_all_of_them(
    domain: Domain, directory: Directory, admin: Client
) -> None:
    inside = directory.add_person("ida")
    outsiders = [directory.add_person(f"out{n:02}", mail=f"out{n:02}@elsewhere.org") for n in range(12)]
    add_group(directory, "partners", [inside, *outsiders])
    configure(domain, directory, group_filter=GROUP_FILTER)
    run = sync(domain)
    assert run.status == "succeeded", run.errors

    index = next(i for i, warning in enumerate(run.warnings) if "are not synced accounts" in warning)
    stored = run.warning_objects[str(index)]
    assert stored["total"] == 12 and stored["objects"] == sorted(dn.lower() for dn in outsiders)
    assert stored["summary"].startswith("12 group members are not synced accounts of example.com")
    # The text form (the CSV, --json) names the first few.
    assert "out00" in run.warnings[index] and "and 7 more" in run.warnings[index]

    html = page(admin.get(run_url(run)))
    item = html.split(f'id="warning-{index}"')[1].split('id="warning-')[0].split("</section>")[0]
    assert item.count("<li><code>") == 10 and "out09" in item and "out10" not in item
    assert f'href="{run_url(run)}?warning={index}#warning-{index}">Show all 12</a>' in item

    expanded = page(admin.get(run_url(run), {"warning": str(index)}))
    item = expanded.split(f'id="warning-{index}"')[1].split('id="warning-')[0].split("</section>")[0]
    assert item.count("<li><code>") == 12 and "out11" in item and "Show all" not in item
    assert page(admin.get(run_url(run), {"warning": "nonsense"}))  # ignored, not an error


def test_skipped_members_link_to_the_skipped_events(
    domain: Domain, directory: Directory, admin: Client
) -> None:
    kit = directory.add_person("kit")
    nobody = directory.add_person("nobody", mail=[])
    add_group(directory, "crew", [kit, nobody])
    configure(domain, directory, group_filter=GROUP_FILTER)
    run = sync(domain)
    index = next(i for i, warning in enumerate(run.warnings) if "entries this run skipped" in warning)
    assert run.warning_objects[str(index)]["action"] == "skip"
    html = page(admin.get(run_url(run)))
    assert f'href="{run_url(run)}?action=skip#events">See them among the events' in html


def test_warnings_of_runs_without_objects_are_shown_as_they_are(domain: Domain, admin: Client) -> None:
    run = SyncRun.objects.create(
        domain=domain, trigger="manual", status="succeeded", warnings=["Something to know."]
    )
    [warning] = selectors.run_warnings(run)
    assert (warning.summary, warning.objects, warning.more) == ("Something to know.", [], False)
    assert "Something to know." in text(page(admin.get(run_url(run))))


def test_the_csv_has_group_counts(domain: Domain, directory: Directory, admin: Client) -> None:
    member = directory.add_person("liv")
    add_group(directory, "team", [member])
    configure(domain, directory, group_filter=GROUP_FILTER)
    run = sync(domain)
    export = admin.get(reverse("sync_history:csv"))
    assert isinstance(export, StreamingHttpResponse)
    body = b"".join(export.streaming_content).decode()
    [row] = list(csv.DictReader(io.StringIO(body, newline="")))
    assert row["run id"] == str(run.pk)
    assert (row["accounts created"], row["groups created"], row["groups removed"]) == ("1", "1", "0")


# Polling --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("age", "every"), [(0, "250ms"), (10, "1s"), (120, "2s")])
def test_a_run_is_polled_quickly_at_first(domain: Domain, admin: Client, age: int, every: str) -> None:
    run = SyncRun.objects.create(domain=domain, trigger="manual", status="running", phase="read")
    SyncRun.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(seconds=age))
    run.refresh_from_db()
    assert run.poll_every == every
    box = page(admin.get(box_url(run), headers=HTMX))
    assert f'hx-trigger="every {every}"' in box and "<progress" in box
    header = page(admin.get(run_url(run), headers={**HTMX, "HX-Target": "run-header"}))
    assert f'hx-trigger="every {every}"' in header


def test_the_answer_that_finds_the_run_finished_stops_polling_and_shows_the_counts(
    domain: Domain, admin: Client
) -> None:
    run = SyncRun.objects.create(domain=domain, trigger="manual", status="running", phase="apply")
    assert "every 250ms" in page(admin.get(box_url(run), headers=HTMX))
    SyncRun.objects.filter(pk=run.pk).update(
        status="succeeded", finished_at=timezone.now(), phase="",
        counts={"accounts": {"created": 3, "updated": 0, "unchanged": 7}, "groups": {"created": 1}},
    )  # fmt: skip
    box = page(admin.get(box_url(run), headers=HTMX), status=286)
    assert "hx-trigger" not in box and "<progress" not in box
    shown = text(box)
    assert "Accounts: created 3 · unchanged 7" in shown and "Groups: created 1" in shown


# Events in words ------------------------------------------------------------------------------------------


def test_events_name_fields_and_values_as_people_read_them(
    domain: Domain, directory: Directory, admin: Client
) -> None:
    directory.add_person("max", cn="Max Mustermann")
    configure(domain, directory)
    run = sync(domain)
    shown = text(page(admin.get(run_url(run))))
    assert "Auth mode : — → LDAP / Active Directory" in shown and "auth_mode" not in shown
    assert "Full name : — → Max Mustermann" in shown and "Addresses : — → max@example.com" in shown
    assert "Directory DN : — → uid=max," in shown and "directory_dn" not in shown

    group = create_group(domain=domain, alias="staff", name="Staff")
    account = Account.objects.get(username="max")
    SyncEvent.objects.create(
        run=run, object_type="group", action="create", label="staff@example.com", group=group,
        fields={"alias": [None, "staff@example.com"], "kind": [None, "mailing_list"],
                "members_added": [[], ["max@example.com"]]},
    )  # fmt: skip
    SyncEvent.objects.create(
        run=run, object_type="account", action="update", label="max@example.com", account=account,
        fields={"enabled": [True, False], "auth_mode": ["standard", "directory"]},
    )  # fmt: skip
    rows = selectors.object_events(group=group)
    # PostgreSQL's jsonb keeps keys in an order of its own: compare the fields, not their order.
    assert {change.label: change.after for change in rows[0].changes} == {
        "Address": "staff@example.com",
        "Kind": "Mailing list",
        "Members added": "max@example.com",
    }
    [update, _] = selectors.object_events(account=account)
    assert {change.label: (change.before, change.after) for change in update.changes} == {
        "Enabled": ("Yes", "No"),
        "Auth mode": ("Standard (local password)", "LDAP / Active Directory"),
    }
    account_page = text(page(admin.get(reverse("mailserver:account_detail", args=["example.com", "max"]))))
    assert "Enabled : Yes → No" in account_page


def test_run_summary_json_status_is_the_run_status(domain: Domain) -> None:
    run = SyncRun.objects.create(
        domain=domain, trigger="command", status="partial", errors=["The user search did not finish: x"],
        removals_withheld=1, withheld_reason="Because.", warnings=["w"],
    )  # fmt: skip
    summary = run_summary(run)
    assert summary["status"] == "partial" and summary["warnings"] == ["w", "1 removals withheld: Because."]
