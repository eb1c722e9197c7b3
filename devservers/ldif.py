"""Writing LDIF for test, demo and benchmark directories."""

from __future__ import annotations

import base64
from collections.abc import Callable


def ldif_line(attr: str, value: str) -> str:
    """One LDIF attribute line, base64-encoded when the value is not LDIF-safe (RFC 2849)."""
    safe = (
        value.isascii()
        and value.isprintable()
        and not value.startswith((" ", ":", "<"))
        and value == value.rstrip()
    )
    if safe:
        return f"{attr}: {value}"
    return f"{attr}:: {base64.b64encode(value.encode()).decode()}"


def people_ldif(
    count: int,
    *,
    parent: str = "dc=example,dc=com",
    prefix: str = "p",
    mail_domain: str = "example.com",
    extra: Callable[[int], list[tuple[str, str]]] | None = None,
) -> str:
    """count inetOrgPerson entries uid=<prefix><n>, each with a cn, an sn and a mail at mail_domain."""
    entries = []
    for number in range(count):
        uid = f"{prefix}{number:05d}"
        lines = [
            f"dn: uid={uid},{parent}",
            "objectClass: inetOrgPerson",
            f"uid: {uid}",
            f"cn: Person {number}",
        ]
        lines += ["sn: Person", f"mail: {uid}@{mail_domain}"]
        lines += [ldif_line(attr, value) for attr, value in (extra(number) if extra else [])]
        entries.append("\n".join(lines) + "\n")
    return "\n".join(entries) + "\n"
