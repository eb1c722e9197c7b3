"""Test connection against real slapd servers: every step, the data checks, failures, and time bounds."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devservers.ports import free_port
from devservers.slapd import SlapdInstance, make_ca, start_slapd
from directory_sync.models import DirectorySettings
from directory_sync.services.connection_check import check_to_text, run_connection_check
from icewarp_admin.mailserver.models import Domain

pytestmark = pytest.mark.django_db

USERS = 25
GROUPS = 2
LONG_TEXT = "x" * 600
BINARY = b"\xff\x00\xfe binary"


@pytest.fixture(scope="module")
def tree(slapd: SlapdInstance) -> str:
    """A unique OU in the shared server: 25 people (one with a long and a binary value) and 2 groups."""
    ou = f"ou=check-{uuid.uuid4().hex[:8]},{slapd.base_dn}"
    entries = [f"dn: {ou}\nobjectClass: organizationalUnit\nou: {ou.split(',')[0][3:]}\n"]
    for i in range(USERS):
        extra = ""
        if i == 0:
            extra = f"description: {LONG_TEXT}\naudio:: {base64.b64encode(BINARY).decode()}\n"
        entries.append(
            f"dn: uid=u{i:02d},{ou}\nobjectClass: inetOrgPerson\nuid: u{i:02d}\ncn: User {i}\nsn: U\n"
            f"mail: u{i:02d}@example.com\nuserPassword: user-pw-{i}\n{extra}"
        )
    for g in range(GROUPS):
        entries.append(f"dn: cn=g{g},{ou}\nobjectClass: groupOfNames\ncn: g{g}\nmember: uid=u00,{ou}\n")
    slapd.ldapadd("\n".join(entries))
    return ou


@pytest.fixture(scope="module")
def wrong_ca_pem(tmp_path_factory: pytest.TempPathFactory) -> str:
    crt, _ = make_ca(tmp_path_factory.mktemp("check-wrong-ca"), common_name="Not the server's CA")
    return crt.read_text()


@pytest.fixture
def hung(tmp_path: Path) -> Iterator[SlapdInstance]:
    """A private server that is paused (accepts TCP, never answers) during the test."""
    instance = start_slapd(tmp_path / "hung")
    instance.pause()
    yield instance
    instance.resume()
    instance.stop()


def make_settings(domain: Domain, slapd: SlapdInstance, base_dn: str, **fields: Any) -> DirectorySettings:
    password = fields.pop("password", slapd.reader_password)
    values: dict[str, Any] = {
        "host": slapd.ldap_url,
        "bind_user": slapd.reader_dn,
        "base_dn": base_dn,
        "ca_bundle": slapd.ca_cert.read_text(),
        "timeout_seconds": 5,
        "allow_plain_bind": True,
    }
    values.update(fields)
    row = DirectorySettings.objects.create(domain=domain, **values)
    row.set_bind_password(password)
    row.save()
    return row


def step_names(host: dict[str, Any]) -> list[str]:
    return [step["name"] for step in host["steps"]]


def failed_step(host: dict[str, Any]) -> dict[str, Any]:
    return next(step for step in host["steps"] if not step["ok"])


def assert_secret_free(result: dict[str, Any], *passwords: str) -> None:
    text = json.dumps(result)  # also proves the result is JSON-serializable
    for password in passwords:
        assert password not in text
    assert "user-pw-" not in text  # userPassword values of the entries


def test_a_plain_bind_is_refused_unless_allowed(domain: Domain, slapd: SlapdInstance, tree: str) -> None:
    """ALLOWPLAINBIND: off, the password never leaves over plain ldap://; the check says how to fix it."""
    result = run_connection_check(make_settings(domain, slapd, tree, allow_plain_bind=False))
    assert_secret_free(result, slapd.reader_password)
    assert not result["ok"]
    [host] = result["hosts"]
    assert step_names(host) == ["Name lookup", "TCP connection", "Bind"]
    refused = host["steps"][2]["error"]
    assert refused.startswith(f"The password would cross the network unencrypted to {slapd.ldap_url}")
    assert "“Allow unencrypted bind” (ALLOWPLAINBIND)" in refused and "ldaps://" in refused
    # StartTLS (or ldaps://) needs no opt-in, and draws no warning.
    DirectorySettings.objects.filter(domain=domain).update(use_starttls=True)
    result = run_connection_check(DirectorySettings.objects.get(domain=domain))
    assert result["ok"], result
    assert not any("unencrypted" in warning for warning in result["warnings"])


def test_plain_ldap_as_the_reader(domain: Domain, slapd: SlapdInstance, tree: str) -> None:
    result = run_connection_check(make_settings(domain, slapd, tree))
    assert_secret_free(result, slapd.reader_password)
    assert result["ok"], result
    assert result["errors"] == []
    assert result["summary"].startswith(
        f"Connected to {slapd.ldap_url} as {slapd.reader_dn}: 25 users and 2 groups"
    )
    assert (
        f"The bind password travels unencrypted to {slapd.ldap_url} (“Allow unencrypted bind” is on): use "
        "ldaps:// (usually port 636) or turn on “Use StartTLS on ldap://”, then turn “Allow unencrypted "
        "bind” off"
    ) in result["warnings"]
    [host] = result["hosts"]
    assert (host["role"], host["url"], host["ok"]) == ("primary", slapd.ldap_url, True)
    assert step_names(host) == ["Name lookup", "TCP connection", "Bind"]
    assert host["steps"][0]["detail"] == "127.0.0.1"
    assert host["steps"][2]["detail"] == f"Bound as dn:{slapd.reader_dn}"
    assert all(step["ms"] >= 0 and step["error"] == "" for step in host["steps"])
    assert host["certificate"] is None

    root = result["root_dse"]
    assert root["server_kind"] == "OpenLDAP"
    assert slapd.base_dn in root["naming_contexts"]
    assert root["paged_results"] and root["syncrepl"]

    identity = result["identity"]
    assert identity["guid_attribute"] == "entryUUID" and identity["guid_readable"]
    assert identity["change_stamp_attribute"] == "modifyTimestamp" and identity["change_stamp_readable"]
    assert identity["warning"] is None
    assert uuid.UUID(identity["guid_example"])

    counts = result["counts"]
    assert counts["base_dn"] == tree
    assert (counts["entries"], counts["entries_complete"]) == (1 + USERS + GROUPS, True)
    assert (counts["users"], counts["users_filter"]) == (USERS, "(objectClass=inetOrgPerson)")
    assert (counts["groups"], counts["groups_filter"]) == (GROUPS, "(objectClass=groupOfNames)")

    sample = result["sample"]
    assert len(sample) == 20
    for entry in sample:
        assert entry["dn"].endswith(tree)
        assert uuid.UUID(entry["attributes"]["entryUUID"][0])
        assert entry["attributes"]["modifyTimestamp"][0].endswith("Z")
        assert "userPassword" not in entry["attributes"]  # the reader cannot read it
    first = next(e for e in sample if e["dn"].startswith("uid=u00,"))["attributes"]
    assert first["description"] == ["x" * 500 + "…"]
    assert "audio" not in first  # the sync does not read it, so the sample does not ask for it


def test_an_admin_bind_never_shows_passwords(domain: Domain, slapd: SlapdInstance, tree: str) -> None:
    row = make_settings(domain, slapd, tree, bind_user=slapd.admin_dn, password=slapd.admin_password)
    result = run_connection_check(row)
    assert result["ok"], result
    assert_secret_free(result, slapd.admin_password)
    assert all("userPassword" not in e["attributes"] for e in result["sample"])  # not even asked for


def test_starttls_records_the_step_and_the_certificate(
    domain: Domain, slapd: SlapdInstance, tree: str
) -> None:
    result = run_connection_check(make_settings(domain, slapd, tree, use_starttls=True))
    assert result["ok"], result
    [host] = result["hosts"]
    assert step_names(host) == ["Name lookup", "TCP connection", "StartTLS", "Bind"]
    assert host["steps"][2]["detail"] in ("TLSv1.2", "TLSv1.3")
    cert = host["certificate"]
    assert cert["trusted"] is True
    assert "127.0.0.1" in cert["san"] and "localhost" in cert["san"]
    assert cert["days_left"] > 30
    assert not any("unencrypted" in w for w in result["warnings"])


def test_ldaps_with_the_right_ca(domain: Domain, slapd: SlapdInstance, tree: str) -> None:
    result = run_connection_check(make_settings(domain, slapd, tree, host=slapd.ldaps_url))
    assert result["ok"], result
    [host] = result["hosts"]
    assert step_names(host) == ["Name lookup", "TCP connection", "TLS", "Bind"]
    assert host["steps"][2]["detail"].startswith("TLSv1.")
    cert = host["certificate"]
    assert cert["trusted"] is True
    assert cert["subject"] == "CN=localhost"
    assert "devservers test CA" in cert["issuer"]
    assert cert["not_after"][:4].isdigit()


def test_ldaps_with_a_wrong_ca(domain: Domain, slapd: SlapdInstance, tree: str, wrong_ca_pem: str) -> None:
    result = run_connection_check(
        make_settings(domain, slapd, tree, host=slapd.ldaps_url, ca_bundle=wrong_ca_pem)
    )
    assert not result["ok"]
    [host] = result["hosts"]
    assert step_names(host) == ["Name lookup", "TCP connection", "TLS"]
    assert failed_step(host)["error"].startswith("Certificate not trusted: ")
    assert host["certificate"]["trusted"] is False  # shown only to say who presented it
    assert host["certificate"]["subject"] == "CN=localhost"
    assert result["counts"] is None and result["sample"] == []
    assert "Certificate not trusted" in result["errors"][0]
    assert result["summary"].startswith("Cannot use the directory: Primary host")


def test_starttls_with_a_wrong_ca(domain: Domain, slapd: SlapdInstance, tree: str, wrong_ca_pem: str) -> None:
    result = run_connection_check(
        make_settings(domain, slapd, tree, use_starttls=True, ca_bundle=wrong_ca_pem)
    )
    assert not result["ok"]
    [host] = result["hosts"]
    assert step_names(host) == ["Name lookup", "TCP connection", "StartTLS"]
    assert "not trusted" in failed_step(host)["error"]
    assert host["certificate"]["trusted"] is False


def test_verification_off_works_with_a_warning(
    domain: Domain, slapd: SlapdInstance, tree: str, wrong_ca_pem: str
) -> None:
    row = make_settings(
        domain, slapd, tree, host=slapd.ldaps_url, ca_bundle=wrong_ca_pem, verify_certificate=False
    )
    result = run_connection_check(row)
    assert result["ok"], result
    assert result["hosts"][0]["certificate"]["trusted"] is False
    assert any("not verified" in w for w in result["warnings"])


def test_a_wrong_password(domain: Domain, slapd: SlapdInstance, tree: str) -> None:
    password = "N0t-The-Passw0rd"
    result = run_connection_check(make_settings(domain, slapd, tree, password=password))
    assert_secret_free(result, password)
    assert not result["ok"]
    [host] = result["hosts"]
    assert step_names(host) == ["Name lookup", "TCP connection", "Bind"]
    assert failed_step(host)["error"] == "The server refused the bind user and password (invalidCredentials)"
    assert result["root_dse"] is None


def test_a_dead_primary_with_a_working_backup(domain: Domain, slapd: SlapdInstance, tree: str) -> None:
    dead = f"ldap://127.0.0.1:{free_port()}"
    result = run_connection_check(make_settings(domain, slapd, tree, host=dead, backup_host=slapd.ldap_url))
    primary, backup = result["hosts"]
    assert (primary["role"], primary["ok"], backup["role"], backup["ok"]) == (
        "primary",
        False,
        "backup",
        True,
    )
    assert failed_step(primary)["name"] == "TCP connection"
    assert "connection refused" in failed_step(primary)["error"]
    assert result["counts"]["users"] == USERS  # the data checks ran on the backup
    assert len(result["sample"]) == 20
    assert not result["ok"]
    assert result["summary"].startswith(f"Connected to the backup host {slapd.ldap_url}")
    assert "primary host" in result["summary"]


def test_a_port_where_nothing_listens(domain: Domain, slapd: SlapdInstance, tree: str) -> None:
    port = free_port()
    started = time.monotonic()
    result = run_connection_check(make_settings(domain, slapd, tree, host=f"127.0.0.1:{port}"))
    assert time.monotonic() - started < 2
    assert not result["ok"]
    [host] = result["hosts"]
    assert host["url"] == f"ldap://127.0.0.1:{port}"
    assert failed_step(host)["error"] == f"Nothing listens on 127.0.0.1:{port} (connection refused)"
    assert result["errors"] == [
        f"Primary host ldap://127.0.0.1:{port}: Nothing listens on 127.0.0.1:{port} (connection refused)"
    ]


def test_an_unknown_host_name(domain: Domain, slapd: SlapdInstance, tree: str) -> None:
    result = run_connection_check(make_settings(domain, slapd, tree, host="ldap.example.invalid"))
    [host] = result["hosts"]
    assert step_names(host) == ["Name lookup"]
    assert failed_step(host)["error"] == "Cannot resolve ldap.example.invalid: check the host name"


def test_a_guid_attribute_the_bind_user_cannot_read(domain: Domain, slapd: SlapdInstance, tree: str) -> None:
    result = run_connection_check(make_settings(domain, slapd, tree, guid_attribute="nsUniqueId"))
    identity = result["identity"]
    assert identity["guid_attribute"] == "nsUniqueId"
    assert identity["guid_readable"] is False and identity["change_stamp_readable"] is True
    message = (
        "The bind user cannot read nsUniqueId: every sync will reprocess every entry "
        "(slow on large directories)"
    )
    assert identity["warning"] == message
    assert message in result["warnings"]
    assert result["ok"]  # a warning, not an error


def test_a_base_dn_that_does_not_exist(domain: Domain, slapd: SlapdInstance) -> None:
    base = f"ou=missing-{uuid.uuid4().hex[:6]},{slapd.base_dn}"
    result = run_connection_check(make_settings(domain, slapd, base))
    assert not result["ok"]
    assert result["hosts"][0]["ok"]
    assert result["errors"] == [f"The base DN {base} does not exist on the server: check the DN"]


def test_an_invalid_user_filter(domain: Domain, slapd: SlapdInstance, tree: str) -> None:
    result = run_connection_check(make_settings(domain, slapd, tree, account_filter="(uid=*"))
    assert not result["ok"]
    assert result["errors"][0].startswith("The user filter is not valid: ")
    assert result["counts"]["groups"] == GROUPS


def test_nothing_configured(domain: Domain) -> None:
    result = run_connection_check(DirectorySettings.objects.create(domain=domain))
    assert not result["ok"]
    assert result["hosts"] == []
    assert result["errors"][0].startswith("No host is configured")
    assert result["summary"] == result["errors"][0]
    json.dumps(result)


def test_no_base_dn(domain: Domain, slapd: SlapdInstance) -> None:
    result = run_connection_check(make_settings(domain, slapd, ""))
    assert not result["ok"]
    assert result["hosts"][0]["ok"]  # the host is still tested
    assert result["errors"] == ["No base DN is configured: enter the DN under which the users and groups are"]
    assert result["counts"] is None


def test_hung_hosts_are_bounded_by_the_timeout(
    domain: Domain, slapd: SlapdInstance, tree: str, hung: SlapdInstance
) -> None:
    row = make_settings(
        domain, slapd, tree, host=hung.ldaps_url, backup_host=hung.ldap_url, timeout_seconds=2
    )
    started = time.monotonic()
    result = run_connection_check(row)
    elapsed = time.monotonic() - started
    assert elapsed < 2 * 2 + 2
    primary, backup = result["hosts"]
    assert failed_step(primary)["name"] == "TLS"
    assert failed_step(primary)["error"].startswith(f"No answer from 127.0.0.1:{hung.ldaps_port} within 2 s")
    assert failed_step(backup)["name"] == "Bind"
    assert failed_step(backup)["error"].startswith(f"No answer from 127.0.0.1:{hung.ldap_port} within 2 s")
    assert not result["ok"]


def test_a_hung_primary_with_a_working_backup(
    domain: Domain, slapd: SlapdInstance, tree: str, hung: SlapdInstance
) -> None:
    row = make_settings(
        domain, slapd, tree, host=hung.ldap_url, backup_host=slapd.ldap_url, timeout_seconds=2
    )
    started = time.monotonic()
    result = run_connection_check(row)
    assert time.monotonic() - started < 2 + 3
    assert [h["ok"] for h in result["hosts"]] == [False, True]
    assert result["counts"]["users"] == USERS


def test_the_text_rendering(domain: Domain, slapd: SlapdInstance, tree: str) -> None:
    row = make_settings(domain, slapd, tree, use_starttls=True)
    text = check_to_text(run_connection_check(row))
    assert text.startswith("Test connection: OK\n")
    assert f"Primary host {slapd.ldap_url}: ok" in text
    assert "[ok  ] StartTLS" in text
    assert "Server: OpenLDAP" in text
    assert f"  users:   {USERS}  (objectClass=inetOrgPerson)" in text
    assert "First 20 users:" in text
    row.set_bind_password("bad-password")
    row.save()
    failed = check_to_text(run_connection_check(row))
    assert failed.startswith("Test connection: FAILED\n")
    assert "[FAIL] Bind" in failed and "Errors:" in failed
