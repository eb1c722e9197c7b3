"""Keytabs for tests: real ones written by MIT ktutil, and hand-built ones for what ktutil never writes."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

KTUTIL = shutil.which("ktutil") or "/usr/bin/ktutil"

DEFAULT_ENCTYPES = ("aes256-cts-hmac-sha1-96", "aes128-cts-hmac-sha1-96")
TEST_PASSWORD = "Secret-1"


def make_keytab(
    path: Path,
    principal: str,
    *,
    kvno: int = 3,
    enctypes: Sequence[str] = DEFAULT_ENCTYPES,
    password: str = TEST_PASSWORD,
) -> bytes:
    """Write a real keytab for one principal with ktutil (one key per enctype) and return its bytes."""
    return make_keytab_for(path, [principal], kvno=kvno, enctypes=enctypes, password=password)


def make_keytab_for(
    path: Path,
    principals: Iterable[str],
    *,
    kvno: int = 3,
    enctypes: Sequence[str] = DEFAULT_ENCTYPES,
    password: str = TEST_PASSWORD,
) -> bytes:
    """Write a real keytab holding keys for several principals with ktutil and return its bytes."""
    if path.exists():
        # ktutil's wkt appends to an existing keytab instead of replacing it.
        raise FileExistsError(f"{path} exists; make_keytab writes new files only")
    lines: list[str] = []
    for principal in principals:
        for enctype in enctypes:
            lines += [f"addent -password -p {principal} -k {kvno} -e {enctype}", password]
    lines += [f"wkt {path}", "quit"]
    # ktutil reads the password from stdin when it is a pipe. KRB5_CONFIG=/dev/null keeps the host's
    # krb5.conf (default realm, permitted enctypes) out of the test.
    result = subprocess.run(
        [KTUTIL],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        start_new_session=True,
        env={**os.environ, "KRB5_CONFIG": "/dev/null"},
    )
    # ktutil exits 0 even when a command fails (a bad enctype, say), so its stderr is the verdict.
    if result.returncode != 0 or result.stderr.strip() or not path.exists():
        raise RuntimeError(f"ktutil failed (exit {result.returncode}): {result.stderr.strip()}")
    return path.read_bytes()


@dataclass(frozen=True)
class RawEntry:
    """One hand-built keytab entry; the defaults make a valid aes256 key for HTTP/mail.example.com."""

    components: tuple[str, ...] = ("HTTP", "mail.example.com")
    realm: str = "EXAMPLE.COM"
    name_type: int = 3  # KRB5_NT_SRV_HST
    timestamp: int = 1_700_000_000
    vno8: int = 5
    enctype: int = 18
    key: bytes = b"\x11" * 32
    vno32: int | None = None
    padding: int = 0


def raw_entry(entry: RawEntry, *, version: int = 2) -> bytes:
    """The bytes of one entry (without its record length) in keytab file format 0x0501 or 0x0502."""
    order = ">" if version == 2 else "="

    def counted(text: str) -> bytes:
        raw = text.encode()
        return struct.pack(order + "H", len(raw)) + raw

    count = len(entry.components) + (1 if version == 1 else 0)
    body = struct.pack(order + "H", count) + counted(entry.realm)
    body += b"".join(counted(c) for c in entry.components)
    if version == 2:
        body += struct.pack(order + "I", entry.name_type)
    body += struct.pack(order + "IBHH", entry.timestamp, entry.vno8, entry.enctype, len(entry.key))
    body += entry.key
    if entry.vno32 is not None:
        body += struct.pack(order + "I", entry.vno32)
    return body + b"\0" * entry.padding


def raw_keytab(records: Iterable[RawEntry | int | bytes], *, version: int = 2) -> bytes:
    """A keytab file from entries, holes (a positive int: that many zero bytes) and raw bytes as they are."""
    order = ">" if version == 2 else "="
    out = bytes([0x05, version])
    for record in records:
        if isinstance(record, RawEntry):
            body = raw_entry(record, version=version)
            out += struct.pack(order + "i", len(body)) + body
        elif isinstance(record, int):
            out += struct.pack(order + "i", -record) + b"\0" * record
        else:
            out += record
    return out
