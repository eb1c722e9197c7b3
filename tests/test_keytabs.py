"""Keytabs: the MIT file format parser, IceWarp's file names, and upload / delete per domain."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import re
import stat
import struct
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DatabaseError

from directory_sync.keytabs import (
    MAX_KEYTAB_SIZE,
    KeytabEntry,
    KeytabError,
    file_name_for,
    parse_keytab,
    principal_from_file_name,
)
from directory_sync.models import Keytab
from directory_sync.services import keytabs as keytab_service
from directory_sync.services.keytabs import delete_keytab, keytab_path, store_keytab
from icewarp_admin.mailserver.models import Domain
from icewarp_admin.mailserver.services.domains import create_domain
from tests.kerberos_tools import RawEntry, make_keytab, make_keytab_for, raw_entry, raw_keytab

HTTP = "HTTP/mail.example.com@EXAMPLE.COM"
HTTP_FILE = "HTTP#mail.example.com@EXAMPLE.COM"


@pytest.fixture
def http_keytab(tmp_path: Path) -> bytes:
    """A real ktutil keytab for HTTP/mail.example.com@EXAMPLE.COM: kvno 3, aes256 and aes128."""
    return make_keytab(tmp_path / "http.keytab", HTTP)


def klist_keys(path: Path) -> list[str]:
    """The key bytes (hex) of a keytab, as MIT klist shows them."""
    out = subprocess.run(["klist", "-kK", str(path)], capture_output=True, text=True, check=True).stdout
    return re.findall(r"\(0x([0-9a-f]+)\)", out)


def stored_folder() -> Path:
    return Path(settings.CONFIG_DIR) / "_keytabs"


# The parser, on keytabs written by MIT ktutil


def test_parses_a_ktutil_keytab(http_keytab: bytes) -> None:
    entries = parse_keytab(http_keytab)

    assert [(e.principal, e.kvno, e.enctype, e.enctype_name) for e in entries] == [
        (HTTP, 3, 18, "aes256-cts-hmac-sha1-96"),
        (HTTP, 3, 17, "aes128-cts-hmac-sha1-96"),
    ]
    for entry in entries:
        assert entry.timestamp.tzinfo == UTC
        assert abs(datetime.now(UTC) - entry.timestamp) < timedelta(minutes=5)


@pytest.mark.parametrize(
    ("enctype_name", "number"),
    [
        ("arcfour-hmac", 23),
        ("des3-cbc-sha1", 16),
        ("aes128-cts-hmac-sha256-128", 19),
        ("aes256-cts-hmac-sha384-192", 20),
        ("camellia256-cts-cmac", 26),
    ],
)
def test_names_every_enctype_ktutil_writes(tmp_path: Path, enctype_name: str, number: int) -> None:
    data = make_keytab(tmp_path / "k.keytab", HTTP, kvno=7, enctypes=[enctype_name])

    [entry] = parse_keytab(data)

    assert (entry.enctype, entry.enctype_name, entry.kvno) == (number, enctype_name, 7)


def test_a_key_version_above_255_comes_from_the_trailing_32_bit_field(tmp_path: Path) -> None:
    data = make_keytab(tmp_path / "k.keytab", HTTP, kvno=300, enctypes=["aes256-cts-hmac-sha1-96"])

    assert [e.kvno for e in parse_keytab(data)] == [300]


def test_agrees_with_klist_on_a_keytab_of_two_principals(tmp_path: Path) -> None:
    path = tmp_path / "two.keytab"
    make_keytab_for(path, [HTTP, "IMAP/mail.example.com@EXAMPLE.COM"], kvno=4)
    klist = subprocess.run(["klist", "-ke", str(path)], capture_output=True, text=True, check=True).stdout
    shown = re.findall(r"^\s*(\d+) (\S+) \((?:DEPRECATED:)?([\w-]+)\)", klist, flags=re.MULTILINE)

    assert [(str(e.kvno), e.principal, e.enctype_name) for e in parse_keytab(path.read_bytes())] == shown
    assert len(shown) == 4


def test_entries_hold_no_key_material(tmp_path: Path) -> None:
    path = tmp_path / "k.keytab"
    make_keytab(path, HTTP)

    assert {f.name for f in dataclasses.fields(KeytabEntry)} == {
        "principal",
        "kvno",
        "enctype",
        "enctype_name",
        "timestamp",
    }
    text = repr(parse_keytab(path.read_bytes())).lower()
    assert all(key not in text for key in klist_keys(path))


# The parser, on hand-built files: what ktutil never writes


def test_skips_holes_left_by_deleted_entries() -> None:
    data = raw_keytab([40, RawEntry(vno8=1), 64, RawEntry(vno8=2, enctype=17, key=b"\x22" * 16), 8])

    assert [(e.kvno, e.enctype) for e in parse_keytab(data)] == [(1, 18), (2, 17)]


def test_reads_the_old_0x0501_format_in_native_byte_order() -> None:
    data = raw_keytab([RawEntry(vno8=9), RawEntry(vno8=9, enctype=23, key=b"\x33" * 16)], version=1)

    assert data[:2] == b"\x05\x01"
    assert [(e.principal, e.kvno, e.enctype_name) for e in parse_keytab(data)] == [
        (HTTP, 9, "aes256-cts-hmac-sha1-96"),
        (HTTP, 9, "arcfour-hmac"),
    ]


def test_a_zero_trailing_key_version_is_padding_and_the_8_bit_one_counts() -> None:
    data = raw_keytab([RawEntry(vno8=6, vno32=0), RawEntry(vno8=44, vno32=300), RawEntry(vno8=2, padding=3)])

    assert [e.kvno for e in parse_keytab(data)] == [6, 300, 2]


def test_stops_at_a_zero_record_length() -> None:
    data = raw_keytab([RawEntry(), b"\0\0\0\0", b"anything after the end marker"])

    assert len(parse_keytab(data)) == 1


def test_shows_timestamps_in_utc_and_unknown_enctypes_by_number() -> None:
    [entry] = parse_keytab(raw_keytab([RawEntry(enctype=99, timestamp=0)]))

    assert entry.timestamp == datetime(1970, 1, 1, tzinfo=UTC)
    assert entry.enctype_name == "unknown enctype 99"


def test_escapes_slash_and_at_inside_a_name_as_klist_does() -> None:
    [entry] = parse_keytab(raw_keytab([RawEntry(components=("HTTP", "a/b@c"))]))

    assert entry.principal == "HTTP/a\\/b\\@c@EXAMPLE.COM"


# The parser refuses what is not a keytab


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "The file is empty; upload the keytab file that ktpass or ktutil wrote."),
        (b"\x05", "This is not a keytab file (it does not start with 0x05 0x02)."),
        (b"GIF89a garbage", "This is not a keytab file (it does not start with 0x05 0x02)."),
        (b"\x05\x02", "The keytab holds no keys."),
        (b"\x05\x02\0\0\0\0", "The keytab holds no keys."),
        (raw_keytab([16, 4]), "The keytab holds no keys."),
    ],
)
def test_refuses_files_that_are_not_keytabs(data: bytes, message: str) -> None:
    with pytest.raises(KeytabError) as caught:
        parse_keytab(data)
    assert str(caught.value) == message


def test_refuses_an_unknown_format_version() -> None:
    with pytest.raises(KeytabError, match=r"file format 0x05 0x03; only 0x05 0x02"):
        parse_keytab(b"\x05\x03" + raw_keytab([RawEntry()])[2:])


def test_refuses_a_truncated_keytab(http_keytab: bytes) -> None:
    with pytest.raises(KeytabError) as caught:
        parse_keytab(http_keytab[:-10])
    assert str(caught.value) == "The keytab is cut short in entry 2."


def test_refuses_a_keytab_cut_inside_a_record_length() -> None:
    data = raw_keytab([RawEntry(), RawEntry(), b"\0\0"])

    with pytest.raises(KeytabError, match=r"^The keytab is cut short in entry 3\.$"):
        parse_keytab(data)


def test_refuses_an_entry_whose_fields_run_past_its_record() -> None:
    body = raw_entry(RawEntry())
    data = raw_keytab([RawEntry(), struct.pack(">i", len(body) - 8) + body])

    with pytest.raises(KeytabError, match=r"^Entry 2 of the keytab is damaged"):
        parse_keytab(data)


def test_refuses_a_principal_that_is_not_text() -> None:
    body = raw_entry(RawEntry(components=("HTTP", "ma\xefl")))
    body = body.replace("ma\xefl".encode(), b"ma\xff\xfel")
    data = raw_keytab([struct.pack(">i", len(body)) + body])

    with pytest.raises(KeytabError, match=r"principal of entry 1 is not valid UTF-8"):
        parse_keytab(data)


def test_refuses_files_over_1_mib() -> None:
    with pytest.raises(KeytabError, match=r"^The file is 1,048,6\d\d bytes; a keytab is at most 1 MiB"):
        parse_keytab(raw_keytab([RawEntry()]) + b"\0" * MAX_KEYTAB_SIZE)


# File names


def test_a_file_name_is_the_principal_with_hash_for_slash() -> None:
    assert principal_from_file_name(HTTP_FILE) == HTTP
    assert (
        principal_from_file_name("smtp#mx-1.example.com@AD.EXAMPLE.COM")
        == "smtp/mx-1.example.com@AD.EXAMPLE.COM"
    )
    assert file_name_for(HTTP) == HTTP_FILE


@pytest.mark.parametrize(
    ("file_name", "message"),
    [
        (
            "HTTP#mail.example.com@example.com",
            "The realm must be upper-case: write EXAMPLE.COM, not example.com.",
        ),
        (
            "HTTP#mail.example.com@Example.Com",
            "The realm must be upper-case: write EXAMPLE.COM, not Example.Com.",
        ),
        ("HTTPmail.example.com@EXAMPLE.COM", "must be SERVICE#host@REALM with exactly one #"),
        ("HTTP#mail#x@EXAMPLE.COM", "must be SERVICE#host@REALM with exactly one #"),
        (HTTP, "contains a / or \\; write the / of the principal as #"),
        ("HTTP#mail.example.com@EXAMPLE.COM\\x", "contains a / or \\"),
        ("../../etc/passwd", "contains a / or \\"),
        ("HTTP#..@EXAMPLE.COM", "contains “..”"),
        ("..", "contains “..”"),
        ("HTTP#mail.example.com", "must end with @ and the realm"),
        (f"{HTTP_FILE}.keytab", "Remove the .keytab extension"),
        ("HT-TP#mail.example.com@EXAMPLE.COM", "The service “HT-TP” must be letters and digits only"),
        ("HTTP#mail_1.example.com@EXAMPLE.COM", "The host “mail_1.example.com” is not a DNS name"),
        ("HTTP#@EXAMPLE.COM", "The host “” is not a DNS name"),
        ("HTTP#mail.example.com@", "The realm “” is not a Kerberos realm name"),
        ("HTTP#mail example.com@EXAMPLE.COM", "contains spaces or control characters"),
        ("", "Enter the file name"),
        ("H" * 256, "at most 255 characters"),
    ],
)
def test_refuses_bad_file_names(file_name: str, message: str) -> None:
    with pytest.raises(KeytabError) as caught:
        principal_from_file_name(file_name)
    assert message in str(caught.value)


def test_file_name_for_refuses_a_principal_that_is_not_service_slash_host() -> None:
    with pytest.raises(KeytabError, match="more than one /"):
        file_name_for("HTTP/mail/x@EXAMPLE.COM")
    with pytest.raises(KeytabError, match="upper-case"):
        file_name_for("HTTP/mail.example.com@example.com")


# Storing and deleting


@pytest.mark.django_db
def test_store_keeps_the_file_private_under_the_config_folder(domain: Domain, http_keytab: bytes) -> None:
    old_umask = os.umask(0)
    try:
        keytab = store_keytab(domain=domain, file_name=HTTP_FILE, data=http_keytab, uploaded_by="admin")
    finally:
        os.umask(old_umask)

    path = Path(settings.CONFIG_DIR) / "_keytabs" / HTTP_FILE
    assert keytab_path(keytab) == path
    assert path.read_bytes() == http_keytab
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert sorted(p.name for p in path.parent.iterdir()) == [HTTP_FILE]


@pytest.mark.django_db
def test_store_records_the_keys_but_not_their_bytes(domain: Domain, tmp_path: Path) -> None:
    source = tmp_path / "http.keytab"
    data = make_keytab(source, HTTP, kvno=5)

    keytab = store_keytab(domain=domain, file_name=HTTP_FILE, data=data, uploaded_by="admin")

    keytab.refresh_from_db()
    assert (keytab.domain, keytab.file_name, keytab.principal) == (domain, HTTP_FILE, HTTP)
    assert (keytab.size, keytab.uploaded_by) == (len(data), "admin")
    assert keytab.sha256 == hashlib.sha256(data).hexdigest()
    assert [{k: v for k, v in e.items() if k != "timestamp"} for e in keytab.entries] == [
        {"principal": HTTP, "kvno": 5, "enctype": 18, "enctype_name": "aes256-cts-hmac-sha1-96"},
        {"principal": HTTP, "kvno": 5, "enctype": 17, "enctype_name": "aes128-cts-hmac-sha1-96"},
    ]
    assert all(datetime.fromisoformat(e["timestamp"]).tzinfo == UTC for e in keytab.entries)
    stored = json.dumps(keytab.entries).lower()
    for key in klist_keys(source):
        raw = bytes.fromhex(key)
        assert key not in stored
        assert base64.b64encode(raw).decode().lower() not in stored


@pytest.mark.django_db
def test_store_refuses_a_keytab_for_another_principal_and_writes_nothing(
    domain: Domain, tmp_path: Path
) -> None:
    data = make_keytab(tmp_path / "imap.keytab", "IMAP/mail.example.com@EXAMPLE.COM")

    with pytest.raises(ValidationError) as caught:
        store_keytab(domain=domain, file_name=HTTP_FILE, data=data, uploaded_by="admin")

    message = caught.value.messages[0]
    assert f"named for {HTTP}" in message
    assert "holds keys for IMAP/mail.example.com@EXAMPLE.COM." in message
    assert not Keytab.objects.exists()
    assert not stored_folder().exists()


@pytest.mark.django_db
def test_store_refuses_a_keytab_that_also_holds_other_principals(domain: Domain, tmp_path: Path) -> None:
    data = make_keytab_for(tmp_path / "two.keytab", [HTTP, "HTTP/other.example.com@EXAMPLE.COM"])

    with pytest.raises(ValidationError, match=f"holds keys for {HTTP}, HTTP/other.example.com@EXAMPLE.COM"):
        store_keytab(domain=domain, file_name=HTTP_FILE, data=data, uploaded_by="admin")
    assert not Keytab.objects.exists()


@pytest.mark.django_db
def test_store_compares_the_realm_case_sensitively(domain: Domain, tmp_path: Path) -> None:
    data = make_keytab(tmp_path / "lower.keytab", "HTTP/mail.example.com@example.com")

    with pytest.raises(ValidationError, match="case-sensitive"):
        store_keytab(domain=domain, file_name=HTTP_FILE, data=data, uploaded_by="admin")
    assert not Keytab.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("file_name", "data", "message"),
    [
        (HTTP_FILE, b"not a keytab", "This is not a keytab file"),
        (HTTP_FILE, b"", "The file is empty"),
        ("HTTP#mail.example.com@example.com", raw_keytab([RawEntry()]), "must be upper-case"),
    ],
)
def test_store_refuses_bad_files_and_names_with_the_parsers_message(
    domain: Domain, file_name: str, data: bytes, message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        store_keytab(domain=domain, file_name=file_name, data=data, uploaded_by="admin")
    assert not Keytab.objects.exists()
    assert not stored_folder().exists()


@pytest.mark.django_db
def test_store_refuses_a_name_another_domain_already_uses(domain: Domain, http_keytab: bytes) -> None:
    store_keytab(domain=domain, file_name=HTTP_FILE, data=http_keytab, uploaded_by="admin")
    other = create_domain(name="example.org")
    replacement = raw_keytab([RawEntry(components=("HTTP", "mail.example.com"))])

    with pytest.raises(
        ValidationError, match=re.escape("already uploaded for the domain example.com; delete it there")
    ):
        store_keytab(domain=other, file_name=HTTP_FILE, data=replacement, uploaded_by="admin")

    assert (stored_folder() / HTTP_FILE).read_bytes() == http_keytab
    assert list(Keytab.objects.values_list("domain__name", flat=True)) == ["example.com"]


@pytest.mark.django_db
def test_store_writes_no_file_when_the_row_cannot_be_saved(
    domain: Domain, http_keytab: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise DatabaseError("disk full")

    monkeypatch.setattr(Keytab, "save", fail)

    with pytest.raises(DatabaseError):
        store_keytab(domain=domain, file_name=HTTP_FILE, data=http_keytab, uploaded_by="admin")
    assert not (stored_folder() / HTTP_FILE).exists()


@pytest.mark.django_db
def test_store_keeps_no_row_and_no_temporary_file_when_writing_fails(
    domain: Domain, http_keytab: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*args: object) -> None:
        raise OSError("No space left on device")

    monkeypatch.setattr(keytab_service.os, "replace", fail)

    with pytest.raises(OSError, match="No space left"):
        store_keytab(domain=domain, file_name=HTTP_FILE, data=http_keytab, uploaded_by="admin")
    assert not Keytab.objects.exists()
    assert list(stored_folder().iterdir()) == []


@pytest.mark.django_db
def test_delete_removes_the_row_and_the_file(domain: Domain, http_keytab: bytes) -> None:
    keytab = store_keytab(domain=domain, file_name=HTTP_FILE, data=http_keytab, uploaded_by="admin")
    path = keytab_path(keytab)

    delete_keytab(keytab=keytab)

    assert not Keytab.objects.exists()
    assert not path.exists()


@pytest.mark.django_db
def test_delete_does_not_mind_a_file_already_gone(domain: Domain, http_keytab: bytes) -> None:
    keytab = store_keytab(domain=domain, file_name=HTTP_FILE, data=http_keytab, uploaded_by="admin")
    keytab_path(keytab).unlink()

    delete_keytab(keytab=keytab)

    assert not Keytab.objects.exists()


def test_keytab_path_refuses_a_stored_name_that_leaves_the_folder() -> None:
    for name in ("../settings.py", "..", "sub/file", "/etc/passwd"):
        with pytest.raises(ValueError, match="points outside"):
            keytab_path(Keytab(file_name=name))
