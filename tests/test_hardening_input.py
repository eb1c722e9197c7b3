"""Bad and hostile input (issue 14, items 1, 5 and 6): Test connection shows no secret, files and values are
refused before they are read whole, numbers are ASCII digits, and every value cut to fit is named."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tracemalloc
from collections.abc import Callable, Iterator
from io import BytesIO, StringIO
from pathlib import Path
from typing import Any

import ldap3
import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.core.management import CommandError, call_command
from django.test import Client

from devservers.slapd import SlapdInstance
from directory_sync.auth.kerberos import TicketRefused, keytab_entries
from directory_sync.keytabs import KeytabError, read_keytab_file
from directory_sync.models import ConnectionCheck, DirectorySettings, Keytab, SettingsChange
from directory_sync.rules.secret_attributes import is_secret_attribute
from directory_sync.rules.vcard import VCardMapError, parse_vcard_map
from directory_sync.services.checks import perform_connection_check
from directory_sync.services.keytabs import keytab_folder
from directory_sync.syncad import MAX_FILE_BYTES, SyncadImportError, import_syncad
from icewarp_admin.mailserver.models import Account, Domain, Group, SystemVariable
from icewarp_admin.mailserver.services.system import set_system_variable
from tests.directory_helpers import Directory, configure, new_directory, sync

pytestmark = pytest.mark.django_db

HUGE_FILE_BYTES = 64 * 1024 * 1024  # sparse: costs no disk, and 64 MiB of memory if anyone reads it whole
READ_NOTHING_BYTES = 8 * 1024 * 1024  # what refusing may allocate, imports and all; far below the file


@pytest.fixture
def directory(slapd: SlapdInstance) -> Iterator[Directory]:
    yield new_directory(slapd)


def sparse_file(path: Path, size: int = HUGE_FILE_BYTES) -> Path:
    with path.open("wb") as file:
        file.truncate(size)
    return path


def peak_allocation(action: Callable[[], Any]) -> int:
    """The most memory Python held at once (above what it held before) while action ran."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        with contextlib.suppress(CommandError, KeytabError, TicketRefused):
            action()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - before


# 1. Test connection: the sample shows what the sync reads, never a secret.

SECRET_VCARD_MAP = "\n".join(
    [
        "FN:${displayName,cn}",
        "TITLE:${!title}",
        "TEL;TYPE=WORK:${!telephoneNumber}",
    ]
)


def directory_values(slapd: SlapdInstance, dn: str, *names: str) -> list[str]:
    """What the directory's administrator reads of an entry (operational attributes by name)."""
    with ldap3.Connection(slapd.ldap_url, slapd.admin_dn, slapd.admin_password, auto_bind=True) as conn:
        conn.search(dn, "(objectClass=*)", search_scope=ldap3.BASE, attributes=list(names))
        attributes = conn.response[0]["raw_attributes"]
    return [bytes(value).decode() for name in names for value in attributes.get(name, [])]


def test_the_sample_shows_what_the_sync_reads_and_never_a_password(
    domain: Domain, directory: Directory, client_for: Callable[[str | None], Client]
) -> None:
    dn = directory.add_person(
        "hashed",
        displayName="Hashed Person",
        title="Chief Hardening Officer",
        telephoneNumber="+1 555 0100",
        carLicense="NOT-MAPPED-7",  # nothing the sync reads
        userPassword="first-password-1",
    )
    directory.modify(dn, userPassword="second-password-2")  # ppolicy keeps the old hash in pwdHistory
    secrets = directory_values(directory.slapd, dn, "userPassword", "pwdHistory")
    assert len(secrets) == 2 and all("{SSHA}" in value for value in secrets)
    # The administrator's bind reads every value: only what the check asks for decides what it shows.
    configure(domain, directory, vcard_map=SECRET_VCARD_MAP)
    # The form and the vCard map refuse secret attributes now; settings saved before (or imported) may still
    # name one, as the username attribute here.
    DirectorySettings.objects.filter(domain=domain).update(username_attribute="userPassword")

    check = ConnectionCheck.objects.create(domain=domain, requested_by="test")
    perform_connection_check(check_id=check.pk)
    check.refresh_from_db()
    assert check.result is not None and check.result["ok"], check.result
    stored = json.dumps(check.result)
    page = (
        client_for("helpdesk")
        .get(f"/domains/example.com/directory/checks/{check.pk}/", headers={"HX-Request": "true"})
        .content.decode()
    )
    out = StringIO()
    call_command("directory_test", "example.com", "--json", stdout=out)
    printed = out.getvalue()

    [entry] = [e for e in json.loads(printed)["sample"] if e["dn"] == dn]
    assert entry["attributes"]["userPassword"] == ["(hidden)"] and "pwdHistory" not in entry["attributes"]
    [named] = [warning for warning in check.result["warnings"] if "may hold passwords" in warning]
    assert "userpassword" in named.lower()
    for shown in (stored, page, printed):
        for secret in secrets:
            assert secret not in shown and secret.rpartition("{SSHA}")[2] not in shown
        assert "{SSHA}" not in shown and "password-" not in shown
        assert "NOT-MAPPED-7" not in shown and "carLicense" not in shown
        assert "Chief Hardening Officer" in shown and "+1 555 0100" in shown and "Hashed Person" in shown
    assert set(entry["attributes"]) >= {"objectClass", "entryUUID", "modifyTimestamp", "uid", "mail", "title"}


@pytest.mark.parametrize(
    "name",
    [
        "userPassword", "userPassword;binary", "unicodePwd", "unixUserPassword", "msSFU30Password",
        "ms-Mcs-AdmPwd", "msLAPS-Password", "msLAPS-EncryptedPassword", "msLAPS-EncryptedDSRMPassword",
        "pwdHistory", "ntPwdHistory", "sambaNTPassword", "supplementalCredentials", "krbPrincipalKey",
        "msDS-ManagedPassword", "msFVE-RecoveryPassword", "userPKCS12", "trustAuthIncoming", "someAppSecret",
    ],
)  # fmt: skip
def test_password_like_attributes_are_hidden_whoever_names_them(name: str) -> None:
    assert is_secret_attribute(name)


@pytest.mark.parametrize(
    "name",
    ["displayName", "mail", "cn", "entryUUID", "objectGUID", "modifyTimestamp", "uSNChanged", "description",
     "telephoneNumber", "sAMAccountName", "userPrincipalName", "proxyAddresses", "userAccountControl"],
)  # fmt: skip
def test_what_the_mapping_reads_is_shown(name: str) -> None:
    assert not is_secret_attribute(name)


# 5. Bad input: syncad.dat, keytabs, system variables.

FILE = """<DOMAINS>
  <DOMAIN>
    <DOMAIN>example.com</DOMAIN>
    <HOST>ldap://one.example.com</HOST>
    <DN>dc=example,dc=com</DN>
    {extra}
  </DOMAIN>
</DOMAINS>
"""


def settings_rows() -> list[tuple[str, str]]:
    return list(DirectorySettings.objects.order_by("pk").values_list("host", "base_dn"))


def test_a_key_given_twice_is_refused_with_both_lines(domain: Domain) -> None:
    text = FILE.format(extra="<TIMEOUT>10</TIMEOUT>\n    <HOST>ldap://two.example.com</HOST>")
    with pytest.raises(SyncadImportError) as refused:
        import_syncad(text)
    assert "example.com: <HOST> is given 2 times (lines 4 and 7); keep one." in str(refused.value)
    assert settings_rows() == [] and not SettingsChange.objects.exists()
    import_syncad(FILE.format(extra="<TIMEOUT>10</TIMEOUT>"))  # the same file, the key once
    assert settings_rows() == [("ldap://one.example.com", "dc=example,dc=com")]


@pytest.mark.parametrize("key", ["VCARDMAP", "SOMEFUTUREKEY", "PASS"])
def test_a_value_over_64_kib_is_refused(domain: Domain, key: str) -> None:
    text = FILE.format(extra=f"<{key}>{'x' * (64 * 1024 + 1)}</{key}>")
    with pytest.raises(
        SyncadImportError, match=f"<{key}> on line 6 holds 65,537 characters; a value is at most"
    ):
        import_syncad(text)
    assert settings_rows() == [] and not SettingsChange.objects.exists()


def test_a_file_over_1_mib_is_refused_and_one_just_under_is_read(domain: Domain) -> None:
    padding = "<!-- " + "x" * (MAX_FILE_BYTES - len(FILE) - 20) + " -->"
    under = FILE.format(extra=padding)
    assert MAX_FILE_BYTES - 100 < len(under.encode()) <= MAX_FILE_BYTES
    over = FILE.format(extra=padding + "y" * 100)
    with pytest.raises(
        SyncadImportError, match=r"^The file is 1,048,6\d\d bytes; a syncad.dat file is at most"
    ):
        import_syncad(over)
    assert settings_rows() == []
    import_syncad(under)
    assert settings_rows() == [("ldap://one.example.com", "dc=example,dc=com")]


def test_the_command_checks_the_size_before_reading(domain: Domain, tmp_path: Path) -> None:
    huge = sparse_file(tmp_path / "huge.dat")

    def import_huge() -> None:
        call_command("syncad", "import", str(huge), stdout=StringIO())

    with pytest.raises(
        CommandError, match=r"The file is 67,108,864 bytes; a syncad\.dat file is at most 1,048,576"
    ):
        import_huge()
    assert peak_allocation(import_huge) < READ_NOTHING_BYTES
    assert settings_rows() == []


def test_standard_input_is_read_no_further_than_the_limit(
    domain: Domain, monkeypatch: pytest.MonkeyPatch
) -> None:
    endless = BytesIO(FILE.format(extra="<!-- " + "z" * (2 * MAX_FILE_BYTES) + " -->").encode())

    class Stdin:
        buffer = endless

    monkeypatch.setattr(sys, "stdin", Stdin)
    with pytest.raises(CommandError, match=r"The file is 1,048,577 bytes; a syncad.dat file is at most"):
        call_command("syncad", "import", "-", stdout=StringIO())
    assert endless.tell() == MAX_FILE_BYTES + 1
    assert settings_rows() == []


def test_a_keytab_upload_over_1_mib_is_refused_without_reading_it(
    domain: Domain, admin: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload = BytesIO(b"\x05\x02" + b"\0" * (2 * 1024 * 1024))
    upload.name = "HTTP#mail.example.com@EXAMPLE.COM"

    def must_not_read(self: UploadedFile, *args: Any) -> bytes:
        raise AssertionError("the upload was read before its size was checked")

    monkeypatch.setattr(UploadedFile, "read", must_not_read)
    response = admin.post("/domains/example.com/directory/keytabs/", {"file": upload})
    assert response.status_code == 200
    assert "The file is 2,097,154 bytes; a keytab is at most 1 MiB" in response.content.decode()
    assert not Keytab.objects.exists()
    assert not keytab_folder().exists() or not any(keytab_folder().iterdir())


def test_a_keytab_file_on_disk_is_measured_before_it_is_read(domain: Domain) -> None:
    keytab_folder().mkdir(parents=True)
    huge = sparse_file(keytab_folder() / "HTTP#mail.example.com@EXAMPLE.COM")
    with pytest.raises(KeytabError, match="The file is 67,108,864 bytes; a keytab is at most 1 MiB"):
        read_keytab_file(huge)
    with pytest.raises(TicketRefused, match="cannot be read: The file is 67,108,864 bytes") as refused:
        keytab_entries("HTTP/mail.example.com@EXAMPLE.COM")
    assert refused.value.code == "bad_keytab"
    assert peak_allocation(lambda: keytab_entries("HTTP/mail.example.com@EXAMPLE.COM")) < READ_NOTHING_BYTES


NOT_PLAIN_NUMBERS = ["٣", "７", "+7", "1_000", "1 000", "3.0", "0x10", "-0", "-5", "", "1" * 5000]


@pytest.mark.parametrize("value", NOT_PLAIN_NUMBERS)
def test_tool_set_system_takes_ascii_digits_only(value: str) -> None:
    name = "C_System_ADSyncMaxDeleteThreshold"
    with pytest.raises(CommandError) as refused:
        call_command("tool", "set", "system", name, value, stdout=StringIO())
    message = str(refused.value)
    assert message.startswith(f"{name} ")
    assert "digits 0-9 only (no sign, spaces, separators or other scripts)" in message or (
        "between 0 and 10000000" in message
    )
    assert not SystemVariable.objects.exists()


@pytest.mark.parametrize(("value", "stored"), [("7", 7), (" 12 ", 12), ("0", 0), ("10000000", 10_000_000)])
def test_plain_numbers_are_taken(value: str, stored: int) -> None:
    assert set_system_variable(name="C_System_ADSyncMaxDeleteThreshold", value=value) == stored


def test_the_choice_variable_takes_only_its_digits() -> None:
    with pytest.raises(ValidationError, match="must be one of 0 \\(None\\)"):
        set_system_variable(name="C_System_ADSyncLogType", value="٣")
    assert set_system_variable(name="C_System_ADSyncLogType", value="3") == 3


@pytest.mark.parametrize("value", ["٣", "+7", "1_000", "７"])
def test_the_system_settings_form_takes_ascii_digits_only(admin: Client, value: str) -> None:
    response = admin.post(
        "/system/settings/",
        {
            "C_Accounts_Global_ActiveDirectorySyncInterval": value,
            "C_System_ADSyncMaxDeleteThreshold": "0",
            "C_System_ADSyncLogType": "2",
        },
    )
    assert response.status_code == 200
    assert "written with the digits 0-9 only" in response.content.decode()
    assert not SystemVariable.objects.exists()


# 6. Values cut to fit a column are named in the run's warnings.


def test_values_cut_to_fit_are_named_and_the_run_goes_on(domain: Domain, directory: Directory) -> None:
    long_name = "N" * 100_000
    wordy = directory.add_person("wordy", displayName=long_name)
    long_alias = f"{'a' * 70}@example.com"
    aliased = directory.add_person("aliased", mail=["aliased@example.com", long_alias])
    # Not in the DN: slapd's database refuses an RDN much past 240 characters.
    posix = f"cn=posix,{directory.base_dn}"
    directory.slapd.ldapadd(
        f"dn: {posix}\nobjectClass: inetOrgPerson\ncn: posix\nsn: Posix\nuid: {'u' * 300}\n"
        "mail: posix@example.com\n"
    )
    group = f"mail=long-group@example.com,{directory.base_dn}"
    directory.slapd.ldapadd(
        f"dn: {group}\nobjectClass: groupOfNames\nobjectClass: extensibleObject\ncn: {'G' * 300}\n"
        f"mail: long-group@example.com\nmember: {wordy}\n"
    )
    configure(domain, directory, sync_groups=True, group_filter="(objectClass=groupOfNames)")

    run = sync(domain)
    assert run.status == "succeeded", (run.errors, run.warnings)
    assert Account.objects.get(username="wordy").full_name == "N" * 255
    assert Account.objects.get(username="posix").directory_uid == ""
    assert [a.address for a in Account.objects.get(username="aliased").aliases.all()] == [
        "aliased@example.com"
    ]
    assert Group.objects.get(address__local_part="long-group").name == "G" * 255

    [accounts] = [w for w in run.warning_objects.values() if "longer than an account keeps" in w["summary"]]
    assert accounts["summary"] == "3 entries hold values longer than an account keeps, cut to fit or left out"
    assert sorted(accounts["objects"]) == sorted(
        [
            f"{wordy} (full name: 100,000 characters, the first 255 kept)",
            f"{aliased} (address {long_alias}: its part before the @ is longer than the 64 characters an "
            "alias holds, left out)",
            f"{posix} (uid: 300 characters, more than the 255 kept: not kept)",
        ]
    )
    [groups] = [w for w in run.warning_objects.values() if "longer than a group keeps" in w["summary"]]
    assert groups["objects"] == [f"{group} (name: 300 characters, the first 255 kept)"]
    assert any(warning.startswith("3 entries hold values longer") for warning in run.warnings)

    again = sync(domain)  # nothing changed: nothing is cut again, nothing is said again
    assert again.status == "succeeded" and not any("longer than" in warning for warning in again.warnings)
    assert Account.objects.get(username="wordy").full_name == "N" * 255


def test_a_hostile_file_leaves_the_settings_as_they_were(domain: Domain, tmp_path: Path) -> None:
    import_syncad(FILE.format(extra=""))
    before = settings_rows()
    path = tmp_path / "dup.dat"
    path.write_text(FILE.format(extra="<DN>dc=other,dc=com</DN>"))
    with pytest.raises(CommandError, match=r"<DN> is given 2 times \(lines 5 and 6\)"):
        call_command("syncad", "import", str(path), stdout=StringIO())
    assert settings_rows() == before and os.path.getsize(path) < MAX_FILE_BYTES


def test_a_vcard_map_or_username_attribute_naming_a_secret_is_refused(
    domain: Domain, client_for: Callable[[str | None], Client]
) -> None:
    with pytest.raises(VCardMapError, match="may hold a password or a key"):
        parse_vcard_map("X-HASH:${!userPassword}")
    response = client_for("administrator").post(
        "/domains/example.com/directory/",
        {"section": "advanced", "server_type": "generic", "username_attribute": "unicodePwd"},
        headers={"HX-Request": "true"},
    )
    assert "may hold a password or a key" in response.content.decode()
    assert not DirectorySettings.objects.filter(domain=domain, username_attribute="unicodePwd").exists()


def test_ids_and_stamps_too_long_to_keep_are_said_not_cut(domain: Domain, directory: Directory) -> None:
    """A directory that hands out 100-character ids or stamps: the entry is skipped (id) or compared in full
    (stamp), named, and the run does not stop on a column too short for them."""
    long_id = directory.add_person("longid", employeeNumber="i" * 100, title="t" * 100)
    directory.add_person("shortid", employeeNumber="id-7", title="s" * 100)
    configure(domain, directory, guid_attribute="employeeNumber", change_stamp_attribute="title")
    run = sync(domain)
    assert run.status == "succeeded", run.errors
    assert list(Account.objects.values_list("username", flat=True)) == ["shortid"]
    [skipped] = run.events.filter(action="skip")
    assert skipped.dn == long_id and "employeeNumber is 100 characters long (at most 64)" in skipped.reason
    shortid = Account.objects.get(username="shortid")
    assert shortid.directory_guid == "id-7" and shortid.directory_change_stamp == ""
