"""Our own directory errors: a kind the caller can branch on and a plain-language message."""

from __future__ import annotations

import re
from typing import Final, Literal

ErrorKind = Literal[
    "config",
    "dns",
    "tcp",
    "tls",
    "certificate",
    "bind",
    "timeout",
    "search",
    "referral",
    "connection_lost",
    "size_limit",
]

ERROR_KINDS: Final[frozenset[str]] = frozenset(
    {
        "config",
        "dns",
        "tcp",
        "tls",
        "certificate",
        "bind",
        "timeout",
        "search",
        "referral",
        "connection_lost",
        "size_limit",
    }
)

_MASK: Final = "********"


class DirectoryError(Exception):
    """A directory operation failed; `message` says what happened and what to check, never the password."""

    def __init__(self, kind: ErrorKind, message: str, *, host: str = "", detail: str = "") -> None:
        if kind not in ERROR_KINDS:
            raise ValueError(f"unknown directory error kind {kind!r}")
        super().__init__(message)
        self.kind: ErrorKind = kind
        self.message = message
        self.host = host
        self.detail = detail

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"DirectoryError(kind={self.kind!r}, host={self.host!r}, message={self.message!r})"

    def as_dict(self) -> dict[str, str]:
        """The error as JSON-ready data."""
        return {"kind": self.kind, "message": self.message, "host": self.host, "detail": self.detail}


def scrub(text: str, *secrets: str) -> str:
    """Text with every occurrence of the given secrets masked (defence in depth for server-supplied text)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, _MASK)
    return text


_AD_BIND_CODES: Final[dict[str, str]] = {
    "525": "the user does not exist",
    "52e": "wrong user name or password",
    "530": "the user may not log on at this time",
    "531": "the user may not log on from this computer",
    "532": "the password has expired",
    "533": "the account is disabled",
    "568": "the user is in too many groups",
    "701": "the account has expired",
    "773": "the user must change the password before logging on",
    "775": "the account is locked out",
}
_AD_DATA = re.compile(r"\bdata ([0-9a-f]{3,4})\b", re.IGNORECASE)


def active_directory_bind_reason(diagnostic: str) -> str | None:
    """The plain reason behind an Active Directory bind failure ("... data 52e ..."), if it names one."""
    match = _AD_DATA.search(diagnostic or "")
    if not match:
        return None
    return _AD_BIND_CODES.get(match.group(1).lower())
