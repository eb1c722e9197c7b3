"""Explain one object, and synchronize just that one, against the real slapd (issue 15)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from devservers.slapd import SlapdInstance
from directory_sync.models import SyncEvent, SyncRun, SyncState
from directory_sync.services.explain import explain_object, sync_one
from icewarp_admin.mailserver.models import Account, Domain, Group, GroupMember
from icewarp_admin.mailserver.services.accounts import AccountSettings, create_account, update_account
from icewarp_admin.mailserver.services.system import set_system_variable
from tests.directory_helpers import Directory, configure, new_directory, sync

pytestmark = pytest.mark.django_db
GROUP_FILTER = "(objectClass=groupOfNames)"
STAFF_FILTER = "(&(objectClass=inetOrgPerson)(employeeType=staff))"
WRITES = ("INSERT", "UPDATE", "DELETE")


@pytest.fixture
def directory(slapd: SlapdInstance) -> Iterator[Directory]:
    yield new_directory(slapd)


def explain(domain: Domain, query: str) -> dict[str, Any]:
    """The explanation, and proof that it wrote nothing to the database."""
    with CaptureQueriesContext(connection) as queries:
        found = explain_object(domain=domain, query=query)
    writes = [
        query["sql"] for query in queries.captured_queries if query["sql"].lstrip().upper().startswith(WRITES)
    ]
    assert writes == [], writes
    return found


def sync_just(domain: Domain, query: str, *, dry_run: bool = False) -> SyncRun:
    start = sync_one(domain=domain, query=query, requested_by="test", dry_run=dry_run)
    assert not start.joined
    return start.run


def add_group(directory: Directory, name: str, members: list[str]) -> str:
    dn = f"cn={name},{directory.base_dn}"
    lines = [f"dn: {dn}", "objectClass: groupOfNames", f"cn: {name}"] + [
        f"member: {member}" for member in members
    ]
    directory.slapd.ldapadd("\n".join(lines) + "\n")
    return dn


def members_of(alias: str) -> list[str]:
    group = Group.objects.get(address__local_part=alias)
    return sorted(
        GroupMember.objects.filter(group=group, account__isnull=False).values_list(
            "account__username", flat=True
        )
    )


def fields_of(explanation: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {field["label"]: (field["before"], field["after"]) for field in explanation["change"]["fields"]}


# --------------------------------------------------------------------------- explain


def test_a_synced_person_with_a_local_edit_shows_the_entry_the_rules_and_the_difference(
    domain: Domain, directory: Directory
) -> None:
    dn = directory.add_person(
        "liam", cn="Liam Lee", displayName="Liam Lee", title="Engineer", userPassword="s3cret-Passw0rd",
        mail=["liam@example.com", "l.lee@example.com"],
    )  # fmt: skip
    add_group(directory, "team", [dn])
    configure(domain, directory, sync_groups=True, group_filter=GROUP_FILTER)
    assert sync(domain).status == "succeeded"
    synced = Account.objects.get(username="liam")
    update_account(
        account=synced,
        changes=AccountSettings(full_name="Changed Here", auth_mode="directory", auth_value=synced.auth_value,
                                enabled=True, quota_mb=0, max_message_kb=0, services=list(synced.services)),
    )  # fmt: skip

    found = explain(domain, "l.lee@example.com")

    assert (found["status"], found["object_type"], found["found_by"]) == (
        "changes",
        "account",
        "address or login",
    )
    assert found["exclusion"] is None
    entry = found["entry"]
    assert entry["dn"] == dn and entry["id"] == synced.directory_guid and entry["in_base"] is True
    assert entry["filters"][0] == {
        "name": "User filter",
        "filter": "(objectClass=inetOrgPerson)",
        "matches": True,
    }
    attributes = {item["name"]: item["values"] for item in entry["attributes"]}
    assert attributes["mail"] == ["liam@example.com", "l.lee@example.com"]
    assert attributes["entryUUID"] == [synced.directory_guid]
    # Only what the sync reads, never anything password-like.
    assert "userPassword" not in attributes and "s3cret" not in json.dumps(found)

    rules = found["rules"]
    assert rules["accepted_domains"] == "example.com"
    assert rules["aliases"] == ["liam@example.com", "l.lee@example.com"]
    assert (rules["username"], rules["full_name"], rules["login"]) == ("liam", "Liam Lee", dn)
    assert rules["auth_value"] == f"{directory.slapd.ldap_url};{dn}"
    assert {"item": "TITLE", "label": "Job title", "value": "Engineer"} in rules["vcard"]
    team = {"name": "team", "address": "team@example.com", "dn": f"cn=team,{directory.base_dn}", "here": True}
    assert rules["groups"] == [team]

    assert found["here"]["label"] == "liam@example.com"
    assert found["here"]["url"] == "/domains/example.com/accounts/liam/"
    change = found["change"]
    assert (change["action"], change["reason"]) == ("update", "changed here: put back")
    assert fields_of(found) == {"Full name": ("Changed Here", "Liam Lee")}  # the history's labels
    assert Account.objects.get(pk=synced.pk).full_name == "Changed Here"  # explaining changed nothing

    # By DN and by id: the same entry; once in sync, nothing to change.
    assert explain(domain, dn)["found_by"] == "DN"
    assert sync(domain).counts["accounts"]["updated"] == 1
    by_id = explain(domain, synced.directory_guid or "")
    assert (by_id["found_by"], by_id["status"], by_id["change"]) == ("directory id", "in_sync", None)


def test_each_exclusion_says_which_rule(slapd: SlapdInstance, domain: Domain, directory: Directory) -> None:
    create_account(domain=domain, username="noah.local", aliases=["noah.local", "noah"])
    directory.add_person("ann", employeeType="staff")
    directory.add_person("noah", employeeType="staff")
    directory.add_person("fred", employeeType="former")
    directory.add_person("fay", mail="fay@elsewhere.org", employeeType="staff")
    directory.add_person("nora", mail=[], employeeType="staff")
    gone = [directory.add_person(f"w{number}", employeeType="staff") for number in range(2)]
    elsewhere = new_directory(slapd)
    olaf = elsewhere.add_person("olaf.outside", employeeType="staff")
    configure(domain, directory, account_filter=STAFF_FILTER)
    assert sync(domain).status == "succeeded"
    set_system_variable(name="C_System_ADSyncMaxDeleteThreshold", value=1)
    directory.delete(*gone)
    withholding = sync(domain)
    assert withholding.removals_withheld == 2

    def why(query: str) -> tuple[str, str]:
        found = explain(domain, query)
        return found["exclusion"]["code"], found["exclusion"]["reason"]

    assert why(olaf)[0] == "outside_dn" and directory.base_dn in why(olaf)[1]
    assert (
        why("olaf.outside@example.com")[0] == "outside_dn"
    )  # searched under the base DN, then found beside it
    code, reason = why("fred")
    assert code == "filter" and STAFF_FILTER in reason
    code, reason = why("fay@elsewhere.org")
    assert code == "foreign_domain" and "fay@elsewhere.org" in reason
    assert why("nora")[0] == "no_address"
    code, reason = why("noah@example.com")
    assert code == "conflict" and "account noah.local@example.com" in reason
    code, reason = why("w0@example.com")
    assert code == "withheld" and f"run #{withholding.pk}" in reason
    assert "C_System_ADSyncMaxDeleteThreshold (1)" in reason
    found = explain(domain, "nobody@example.com")
    assert (found["status"], found["exclusion"]["code"], found["found"]) == ("not_found", "not_found", False)
    assert explain(domain, "ann@example.com")["status"] == "in_sync"


# --------------------------------------------------------------------------- synchronize this one


def test_sync_one_changes_only_that_object_and_the_next_run_still_sees_the_rest(
    domain: Domain, directory: Directory
) -> None:
    amy = directory.add_person("amy", displayName="Amy")
    ben = directory.add_person("ben", displayName="Ben")
    configure(domain, directory)
    assert sync(domain).status == "succeeded"
    state = SyncState.objects.get(domain=domain)
    cursor, last_success = dict(state.cursor), state.last_success_at
    directory.modify(amy, displayName="Amy Adams")
    directory.modify(ben, displayName="Ben Bates")

    run = sync_just(domain, "amy")

    assert run.status == "succeeded", run.errors
    assert (run.trigger, run.requested_by, run.get_trigger_display()) == (
        "sync_one",
        "test",
        "Sync one object",
    )
    assert run.tracking == "one object: amy@example.com" and run.full_scan is False
    assert run.counts["accounts"]["updated"] == 1 and run.counts["accounts"]["unchanged"] == 0
    assert [(event.label, event.action) for event in run.events.all()] == [("amy@example.com", "update")]
    names = dict(Account.objects.values_list("username", "full_name"))
    assert names == {"amy": "Amy Adams", "ben": "Ben"}
    state.refresh_from_db()
    assert (state.cursor, state.last_success_at) == (cursor, last_success)  # the position did not move

    following = sync(domain)
    assert following.tracking == "syncrepl", following.tracking  # incremental, from the same position
    assert [event.label for event in following.events.filter(action="update")] == ["ben@example.com"]
    assert dict(Account.objects.values_list("username", "full_name"))["ben"] == "Ben Bates"


def test_an_account_gone_from_the_directory_synced_alone_obeys_the_guard(
    domain: Domain, directory: Directory
) -> None:
    dns = {name: directory.add_person(name) for name in ("pia", "quentin", "rosa", "sven")}
    configure(domain, directory, removal_grace_days=0)
    assert sync(domain).status == "succeeded"

    directory.delete(dns["pia"])
    run = sync_just(domain, "pia@example.com")
    assert run.status == "succeeded" and run.counts["accounts"]["removed"] == 1
    assert [(event.label, event.action) for event in run.events.all()] == [("pia@example.com", "remove")]
    assert sorted(Account.objects.values_list("username", flat=True)) == ["quentin", "rosa", "sven"]

    # A removal an earlier run withheld waits for its decision there, whoever synchronizes it alone.
    set_system_variable(name="C_System_ADSyncMaxDeleteThreshold", value=1)
    directory.delete(dns["quentin"], dns["rosa"])
    withholding = sync(domain)
    assert withholding.removals_withheld == 2
    run = sync_just(domain, "quentin@example.com")
    assert run.removals_withheld == 1 and f"run #{withholding.pk}" in run.withheld_reason
    assert [event.action for event in run.events.all()] == [SyncEvent.Action.WITHHELD]
    assert Account.objects.filter(username="quentin").exists()

    # A filter that matches nothing makes every synced account look gone: the one removal is withheld too.
    configure(domain, directory, account_filter="(employeeNumber=nobody)", removal_grace_days=0)
    run = sync_just(domain, "sven@example.com")
    assert run.removals_withheld == 1 and "returned no entries at all" in run.withheld_reason
    assert Account.objects.filter(username="sven").exists()


def test_a_group_and_a_person_synced_alone(domain: Domain, directory: Directory, admin: Client) -> None:
    ada = directory.add_person("ada")
    bo = directory.add_person("bo", displayName="Bo")
    team = add_group(directory, "team", [ada])
    configure(domain, directory, sync_groups=True, group_filter=GROUP_FILTER)
    assert sync(domain).status == "succeeded"
    cy = directory.add_person("cy")
    assert sync(domain).status == "succeeded"
    directory.modify(team, member=[ada, cy])
    directory.modify(bo, displayName="Bo Brandt")

    run = sync_just(domain, "team@example.com")
    assert run.status == "succeeded", run.errors
    assert run.counts["groups"]["updated"] == 1 and run.counts["accounts"]["updated"] == 0
    assert members_of("team") == ["ada", "cy"]  # members resolved against the accounts already synced
    assert Account.objects.get(username="bo").full_name == "Bo"
    page = admin.get("/domains/example.com/groups/team/").content.decode()
    assert 'id="explain"' in page and 'value="team@example.com"' in page

    # A new person listed by the group: created, and in the group; the group's other changes wait.
    di = directory.add_person("di")
    directory.modify(team, member=[cy, di])
    run = sync_just(domain, "di")
    assert run.status == "succeeded", run.errors
    assert run.counts["accounts"]["created"] == 1
    assert members_of("team") == ["ada", "cy", "di"]
    [membership] = run.events.filter(object_type="group")
    assert membership.fields == {"members_added": [[], ["di@example.com"]]}

    following = sync(domain)
    assert following.status == "succeeded"
    assert members_of("team") == ["cy", "di"]


def test_a_query_that_names_nothing_fails_its_run_saying_so(domain: Domain, directory: Directory) -> None:
    directory.add_person("eve")
    configure(domain, directory)
    run = sync_just(domain, "nobody@example.com")
    assert run.status == "failed" and run.trigger == "sync_one"
    assert run.errors == ["No directory entry and no synced account or group matches “nobody@example.com”."]
    assert not Account.objects.exists()


# --------------------------------------------------------------------------- the command line


def test_command_line_contracts(domain: Domain, directory: Directory) -> None:
    directory.add_person("zoe", displayName="Zoe")
    directory.add_person("yan")
    configure(domain, directory)
    assert sync(domain).status == "succeeded"
    directory.modify(f"uid=zoe,{directory.base_dn}", displayName="Zoe Zhang")

    out = StringIO()
    call_command("directory_explain", "example.com", "zoe@example.com", "--json", stdout=out)
    found = json.loads(out.getvalue())
    assert set(found) == {
        "query", "domain", "found_by", "found", "object_type", "status", "summary", "exclusion", "entry",
        "candidates", "rules", "here", "change", "memberships", "notes",
    }  # fmt: skip
    assert (found["status"], found["change"]["action"]) == ("changes", "update")
    out = StringIO()
    call_command("directory_explain", "example.com", "zoe", stdout=out)
    assert "Full name: Zoe → Zoe Zhang" in out.getvalue()
    with pytest.raises(CommandError, match="No directory entry matches") as caught:
        call_command("directory_explain", "example.com", "nobody@example.com", "--json", stdout=StringIO())
    assert caught.value.returncode == 1
    with pytest.raises(CommandError, match="Type a login") as caught:
        call_command("directory_explain", "example.com", "  ", stdout=StringIO())
    assert caught.value.returncode == 1

    out = StringIO()
    call_command(
        "directory_sync", "example.com", "--only", "zoe@example.com", "--dry-run", "--json", stdout=out
    )
    summary = json.loads(out.getvalue())
    assert summary["dry_run"] is True and summary["accounts"]["updated"] == 1
    assert Account.objects.get(username="zoe").full_name == "Zoe"
    out = StringIO()
    call_command("directory_sync", "example.com", "--only", "zoe@example.com", "--json", stdout=out)
    summary = json.loads(out.getvalue())
    assert set(summary) == {
        "run", "status", "dry_run", "accounts", "groups", "conflicts", "removals_withheld", "warnings",
        "errors", "duration_s", "full_scan", "tracking", "phases",
    }  # fmt: skip
    assert (summary["status"], summary["accounts"]["updated"], summary["tracking"]) == (
        "succeeded", 1, "one object: zoe@example.com",
    )  # fmt: skip
    assert SyncRun.objects.get(pk=summary["run"]).trigger == "sync_one"
    assert Account.objects.get(username="zoe").full_name == "Zoe Zhang"
    with pytest.raises(CommandError, match=r"matches “nobody@example\.com”") as caught:
        call_command("directory_sync", "example.com", "--only", "nobody@example.com", stdout=StringIO())
    assert caught.value.returncode == 1


# --------------------------------------------------------------------------- roles and pages


def test_operators_explain_and_cannot_sync_one(
    domain: Domain, directory: Directory, client_for: Callable[[str | None], Client]
) -> None:
    directory.add_person("kim")
    configure(domain, directory)
    assert sync(domain).status == "succeeded"
    url = "/domains/example.com/directory/explain/"

    operator = client_for("operator")
    response = operator.get(url, {"q": "kim@example.com"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert (
        "In the directory now" in response.content.decode()
        and "Synchronize this one now" not in response.content.decode()
    )
    assert 'id="explain"' in operator.get("/domains/example.com/directory/").content.decode()
    page = operator.get(url, {"q": "kim@example.com"}).content.decode()  # without JavaScript: a page
    assert "In the directory now" in page and "Back to the Directory Service tab" in page
    runs = SyncRun.objects.count()
    assert operator.post(url + "sync/", {"q": "kim@example.com"}).status_code == 403
    assert SyncRun.objects.count() == runs

    helpdesk = client_for("helpdesk")
    page = helpdesk.get("/domains/example.com/accounts/kim/").content.decode()
    assert 'id="explain"' in page and 'value="kim@example.com"' in page
    response = helpdesk.post(url + "sync/", {"q": "kim@example.com"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and "Synchronize this one now" in response.content.decode()
    run = SyncRun.objects.latest("pk")
    assert (run.trigger, run.requested_by, run.status) == ("sync_one", "user-helpdesk", "succeeded")
    response = helpdesk.post(url + "sync/", {"q": ""})
    assert response.status_code == 400 and "Type a login" in response.content.decode()
