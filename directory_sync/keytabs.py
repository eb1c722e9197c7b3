"""Reading MIT keytab files (what ktpass and ktutil write) and checking their IceWarp file names.

Pure Python, no Django. The parser reports principals, key versions and encryption types; key bytes are
skipped, never kept. Format: krb5 doc/formats/keytab_file_format.rst.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

__all__ = [
    "ENCTYPE_NAMES",
    "MAX_KEYTAB_SIZE",
    "KeytabEntry",
    "KeytabError",
    "check_keytab_size",
    "enctype_name",
    "file_name_for",
    "parse_keytab",
    "principal_from_file_name",
    "read_keytab_file",
]

MAX_KEYTAB_SIZE = 1024 * 1024
MAX_FILE_NAME = 255

# The names klist shows (MIT krb5 lib/crypto/krb/etypes.c), plus IANA's name for 5, which MIT never had.
ENCTYPE_NAMES: dict[int, str] = {
    1: "des-cbc-crc",
    2: "des-cbc-md4",
    3: "des-cbc-md5",
    4: "des-cbc-raw",
    5: "des3-cbc-md5",
    6: "des3-cbc-raw",
    8: "des-hmac-sha1",
    16: "des3-cbc-sha1",
    17: "aes128-cts-hmac-sha1-96",
    18: "aes256-cts-hmac-sha1-96",
    19: "aes128-cts-hmac-sha256-128",
    20: "aes256-cts-hmac-sha384-192",
    23: "arcfour-hmac",
    24: "arcfour-hmac-exp",
    25: "camellia128-cts-cmac",
    26: "camellia256-cts-cmac",
}

_EXAMPLE_NAME = "HTTP#mail.example.com@EXAMPLE.COM"
_SERVICE = re.compile(r"^[A-Za-z0-9]+$")
_HOST_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_REALM_LABEL = re.compile(r"^[A-Z0-9]([A-Z0-9-]{0,61}[A-Z0-9])?$")


class KeytabError(ValueError):
    """A keytab file or keytab file name that cannot be used; the message says what is wrong."""


@dataclass(frozen=True)
class KeytabEntry:
    """One key of a keytab, without the key itself."""

    principal: str
    kvno: int
    enctype: int
    enctype_name: str
    timestamp: datetime


def enctype_name(enctype: int) -> str:
    """MIT's name of an encryption type number, e.g. 18 → aes256-cts-hmac-sha1-96."""
    return ENCTYPE_NAMES.get(enctype, f"unknown enctype {enctype}")


class _Truncated(Exception):
    """A field runs past the end of its record."""


class _Reader:
    """Reads the fields of one record, never past its end."""

    def __init__(self, data: bytes, start: int, end: int, byte_order: str) -> None:
        self.data, self.pos, self.end, self.byte_order = data, start, end, byte_order

    def remaining(self) -> int:
        return self.end - self.pos

    def take(self, count: int) -> bytes:
        if count > self.remaining():
            raise _Truncated
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def skip(self, count: int) -> None:
        if count > self.remaining():
            raise _Truncated
        self.pos += count

    def uint8(self) -> int:
        return self.take(1)[0]

    def uint16(self) -> int:
        value: int = struct.unpack(self.byte_order + "H", self.take(2))[0]
        return value

    def uint32(self) -> int:
        value: int = struct.unpack(self.byte_order + "I", self.take(4))[0]
        return value

    def counted_string(self, number: int, what: str) -> str:
        raw = self.take(self.uint16())
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise KeytabError(f"The {what} of entry {number} is not valid UTF-8 text.") from None


def check_keytab_size(size: int) -> None:
    """Refuse a file of this many bytes before it is read (KeytabError) when it cannot be a keytab."""
    if size > MAX_KEYTAB_SIZE:
        raise KeytabError(
            f"The file is {size:,} bytes; a keytab is at most 1 MiB (a few hundred bytes per key), "
            "so this is not a keytab."
        )


def read_keytab_file(path: Path) -> list[KeytabEntry]:
    """The entries of a keytab file on disk, its size checked before a byte is read. OSError when it cannot be
    opened (FileNotFoundError: there is none), KeytabError when it is not a keytab."""
    with path.open("rb") as file:
        check_keytab_size(os.fstat(file.fileno()).st_size)
        # One byte more than allowed: a file that grew since the check is refused, not read to its end.
        data = file.read(MAX_KEYTAB_SIZE + 1)
    return parse_keytab(data)


def parse_keytab(data: bytes) -> list[KeytabEntry]:
    """The entries of a keytab file (format 0x0501 or 0x0502), or KeytabError saying why it is not one."""
    check_keytab_size(len(data))
    if not data:
        raise KeytabError("The file is empty; upload the keytab file that ktpass or ktutil wrote.")
    if len(data) < 2 or data[0] != 0x05:
        raise KeytabError("This is not a keytab file (it does not start with 0x05 0x02).")
    version = data[1]
    if version not in (1, 2):
        raise KeytabError(
            f"This keytab uses file format 0x05 0x{version:02x}; only 0x05 0x02 (and the old 0x05 0x01) "
            "can be read. Export it again with ktpass or ktutil."
        )
    # Version 1 was written in the byte order of the machine that wrote it; we assume it was this one's.
    byte_order = ">" if version == 2 else "="

    entries: list[KeytabEntry] = []
    pos = 2
    while pos < len(data):
        number = len(entries) + 1
        if len(data) - pos < 4:
            raise KeytabError(f"The keytab is cut short in entry {number}.")
        (size,) = struct.unpack(byte_order + "i", data[pos : pos + 4])
        pos += 4
        if size == 0:
            break  # MIT's end marker; whatever follows is not read
        if abs(size) > len(data) - pos:
            raise KeytabError(f"The keytab is cut short in entry {number}.")
        if size < 0:
            # A hole: a deleted entry, zero-filled, its space kept for a later one.
            pos += -size
            continue
        try:
            entries.append(_read_entry(_Reader(data, pos, pos + size, byte_order), version, number))
        except _Truncated:
            raise KeytabError(
                f"Entry {number} of the keytab is damaged: its fields run past its record length."
            ) from None
        pos += size
    if not entries:
        raise KeytabError("The keytab holds no keys.")
    return entries


def _read_entry(reader: _Reader, version: int, number: int) -> KeytabEntry:
    count = reader.uint16()
    if version == 1:
        count -= 1  # version 1 counts the realm as a component
    if count < 1:
        raise KeytabError(f"Entry {number} of the keytab has a principal without a name.")
    realm = reader.counted_string(number, "realm")
    components = [reader.counted_string(number, "principal") for _ in range(count)]
    if version == 2:
        reader.uint32()  # name type
    timestamp = reader.uint32()
    kvno = reader.uint8()
    enctype = reader.uint16()
    reader.skip(reader.uint16())  # the key itself: skipped, never copied
    if reader.remaining() >= 4:
        kvno32 = reader.uint32()
        # Older writers leave zero padding here, so zero means "no 32-bit version".
        if kvno32:
            kvno = kvno32
    return KeytabEntry(
        principal=_unparse(components, realm),
        kvno=kvno,
        enctype=enctype,
        enctype_name=enctype_name(enctype),
        timestamp=datetime.fromtimestamp(timestamp, tz=UTC),
    )


def _quote(text: str, special: str) -> str:
    escapes = {"\n": "\\n", "\t": "\\t", "\b": "\\b", "\0": "\\0"}
    return "".join(escapes.get(c, "\\" + c if c in special else c) for c in text)


def _unparse(components: list[str], realm: str) -> str:
    """The principal's text form as klist shows it: / and @ inside a name are escaped with \\."""
    return "/".join(_quote(c, "/@\\") for c in components) + "@" + _quote(realm, "@\\")


def principal_from_file_name(file_name: str) -> str:
    """The principal a keytab file name stands for (SERVICE#host@REALM → SERVICE/host@REALM)."""
    if not file_name:
        raise KeytabError(f"Enter the file name, e.g. {_EXAMPLE_NAME}.")
    if len(file_name) > MAX_FILE_NAME:
        raise KeytabError(
            f"A keytab file name is at most {MAX_FILE_NAME} characters; this has {len(file_name)}."
        )
    if "/" in file_name or "\\" in file_name:
        raise KeytabError(
            f"“{file_name}” contains a / or \\; write the / of the principal as #, e.g. {_EXAMPLE_NAME}."
        )
    if ".." in file_name:
        raise KeytabError(
            f"“{file_name}” contains “..”; a keytab file name is a principal, e.g. {_EXAMPLE_NAME}."
        )
    if any(c.isspace() or not c.isprintable() for c in file_name):
        raise KeytabError(f"“{file_name}” contains spaces or control characters; e.g. {_EXAMPLE_NAME}.")
    for extension in (".keytab", ".kt"):
        if file_name.endswith(extension):
            raise KeytabError(
                f"Remove the {file_name[-len(extension) :]} extension: the file name is exactly the "
                f"principal, e.g. {_EXAMPLE_NAME}."
            )
    if file_name.count("#") != 1:
        raise KeytabError(
            f"“{file_name}” must be SERVICE#host@REALM with exactly one #, e.g. {_EXAMPLE_NAME}."
        )
    if file_name.count("@") != 1:
        raise KeytabError(f"“{file_name}” must end with @ and the realm (one @), e.g. {_EXAMPLE_NAME}.")
    service, rest = file_name.split("#")
    host, realm = rest.split("@")
    if not _SERVICE.match(service):
        raise KeytabError(
            f"The service “{service}” must be letters and digits only (HTTP, SMTP, IMAP, POP, XMPP)."
        )
    if not host or len(host) > 253 or not all(_HOST_LABEL.match(label) for label in host.split(".")):
        raise KeytabError(f"The host “{host}” is not a DNS name, e.g. mail.example.com.")
    if realm != realm.upper():
        raise KeytabError(f"The realm must be upper-case: write {realm.upper()}, not {realm}.")
    if not realm or len(realm) > 253 or not all(_REALM_LABEL.match(label) for label in realm.split(".")):
        raise KeytabError(f"The realm “{realm}” is not a Kerberos realm name, e.g. EXAMPLE.COM.")
    return f"{service}/{host}@{realm}"


def file_name_for(principal: str) -> str:
    """The IceWarp file name of a service principal (SERVICE/host@REALM → SERVICE#host@REALM)."""
    name = principal.replace("/", "#", 1)
    if "/" in name:
        raise KeytabError(f"“{principal}” has more than one /; a service principal is SERVICE/host@REALM.")
    principal_from_file_name(name)
    return name
