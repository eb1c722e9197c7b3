"""Our own directory errors: a kind the caller can branch on and a plain-language message."""

from __future__ import annotations

import re
import ssl
from typing import Any, Final, Literal, get_args

from ldap3.core import exceptions as lx
from ldap3.core.results import (
    RESULT_ADMIN_LIMIT_EXCEEDED,
    RESULT_BUSY,
    RESULT_CODES,
    RESULT_CONFIDENTIALITY_REQUIRED,
    RESULT_INAPPROPRIATE_AUTHENTICATION,
    RESULT_INAPPROPRIATE_MATCHING,
    RESULT_INSUFFICIENT_ACCESS_RIGHTS,
    RESULT_INVALID_CREDENTIALS,
    RESULT_INVALID_DN_SYNTAX,
    RESULT_NO_SUCH_OBJECT,
    RESULT_SIZE_LIMIT_EXCEEDED,
    RESULT_STRONGER_AUTH_REQUIRED,
    RESULT_TIME_LIMIT_EXCEEDED,
    RESULT_UNAVAILABLE,
    RESULT_UNAVAILABLE_CRITICAL_EXTENSION,
    RESULT_UNDEFINED_ATTRIBUTE_TYPE,
)

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

ERROR_KINDS: Final[frozenset[str]] = frozenset(get_args(ErrorKind))

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

    def __reduce__(self) -> tuple[Any, ...]:
        # Exception pickling replays args only; keep the keyword attributes too.
        return (self.__class__, (self.kind, self.message), {"host": self.host, "detail": self.detail})

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


Stage = Literal["connect", "starttls", "bind", "search"]

_STAGE_WORDS: Final[dict[str, str]] = {
    "connect": "while connecting",
    "starttls": "during StartTLS",
    "bind": "during the bind",
    "search": "during a search",
}
_SSL_REASON = re.compile(r"\[SSL: [A-Z_]+\]\s*(.*?)\s*\(_ssl\.c:\d+\)")


def seconds_text(seconds: float) -> str:
    """10 -> "10 s", 2.5 -> "2.5 s"."""
    return f"{seconds:g} s"


def ssl_reason(exc: BaseException) -> str:
    """The readable part of an ssl error ("certificate verify failed: unable to get local issuer ...")."""
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return str(exc.verify_message)
    if isinstance(exc, ssl.SSLError) and exc.reason:
        text = str(exc)
        match = _SSL_REASON.search(text)
        return match.group(1) if match else str(exc.reason).replace("_", " ").lower()
    text = str(exc)
    match = _SSL_REASON.search(text)
    if match:
        return match.group(1).removeprefix("certificate verify failed: ")
    return text


def certificate_error(reason: str, *, host: str, detail: str = "") -> DirectoryError:
    """The server's certificate failed verification."""
    return DirectoryError(
        "certificate",
        f"The server's certificate is not trusted: {reason} — add the CA under Trusted CA certificates, "
        "or check the host name",
        host=host,
        detail=detail,
    )


def _underlying(exc: BaseException) -> list[BaseException]:
    """The socket-level exceptions behind an ldap3 error (ldap3 keeps one per address it tried)."""
    found: list[BaseException] = [exc]
    for arg in getattr(exc, "args", ())[1:]:
        if isinstance(arg, list):
            found.extend(
                item[0]
                for item in arg
                if isinstance(item, tuple) and item and isinstance(item[0], BaseException)
            )
    return found


def translate(
    exc: BaseException,
    stage: Stage,
    *,
    where: str,
    host: str,
    timeout: float,
    secrets: tuple[str, ...] = (),
    tls_failure: BaseException | None = None,
    base: str = "",
    search_filter: str = "",
) -> DirectoryError:
    """Map an ldap3 / socket / ssl exception to a DirectoryError with a plain message.

    where: "host:port" for messages; host: the endpoint URL stored on the error; tls_failure: the original
    ssl exception (ldap3 re-creates it and loses the certificate details).
    """
    if isinstance(exc, DirectoryError):
        return exc
    detail = scrub(f"{type(exc).__name__}: {exc}", *secrets)
    during = _STAGE_WORDS[stage]

    def err(kind: ErrorKind, message: str) -> DirectoryError:
        return DirectoryError(kind, scrub(message, *secrets), host=host, detail=detail)

    causes = _underlying(exc)
    if tls_failure is not None:
        causes.insert(0, tls_failure)
    for cause in causes:
        if isinstance(cause, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(cause):
            return certificate_error(scrub(ssl_reason(cause), *secrets), host=host, detail=detail)
        if isinstance(cause, lx.LDAPCertificateError):
            return certificate_error("its names do not match the host name", host=host, detail=detail)

    if isinstance(exc, lx.LDAPOperationResult):
        code = int(getattr(exc, "result", -1) or -1)
        name = str(getattr(exc, "description", "") or "error")
        diagnostic = str(getattr(exc, "message", "") or "").strip()
        return result_error(
            code, name, diagnostic, stage, err, base=base, search_filter=search_filter, where=where
        )
    if isinstance(exc, lx.LDAPPasswordIsMandatoryError):
        return err("config", "No bind password is set: enter the password of the bind user")
    if isinstance(exc, lx.LDAPUserNameIsMandatoryError):
        return err("config", "No bind user is set: enter the bind user (a DN, user@REALM or DOMAIN\\user)")
    if isinstance(exc, lx.LDAPInvalidFilterError):
        return err("config", f"The filter {search_filter} is not a valid LDAP filter: {exc}")
    if isinstance(exc, lx.LDAPInvalidDnError):
        return err("config", f"{base or 'The DN'} is not a valid DN: check the base DN")
    ldaps_hint = ": if this port speaks LDAPS (usually 636), use ldaps://"
    if isinstance(exc, lx.LDAPSessionTerminatedByServerError):
        if stage == "starttls":
            return err("tls", f"StartTLS with {where} failed: the server closed the connection{ldaps_hint}")
        hint = ldaps_hint if stage in ("connect", "bind") else ""
        return err("connection_lost", f"The server at {where} closed the connection {during}{hint}")

    if any(isinstance(c, TimeoutError) for c in causes):
        return err("timeout", f"No answer from {where} within {seconds_text(timeout)} ({during})")
    if (
        stage == "connect"
        and causes
        and all(isinstance(c, ConnectionRefusedError) for c in causes[1:] or causes)
    ):
        return err("tcp", f"Nothing listens on {where} (connection refused)")
    for cause in causes:
        if isinstance(cause, ssl.SSLError):
            if stage == "starttls":
                return err("tls", f"StartTLS with {where} failed: {ssl_reason(cause)}")
            return err(
                "tls",
                f"The TLS handshake with {where} failed: {ssl_reason(cause)} — check that the port speaks "
                "LDAPS (usually 636), or use ldap:// with StartTLS",
            )
    if isinstance(exc, lx.LDAPStartTLSError) or stage == "starttls":
        return err("tls", f"StartTLS with {where} failed: {exc}")
    if stage == "connect":
        reason = next((c.strerror for c in causes if isinstance(c, OSError) and c.strerror), None)
        return err("tcp", f"Cannot connect to {where}: {reason or exc}")
    if isinstance(exc, (lx.LDAPCommunicationError, OSError)):
        return err("connection_lost", f"The connection to {where} was lost {during}: {exc}")
    if stage == "bind":
        return err("bind", f"The bind to {where} failed: {exc}")
    return err("search", f"The search on {where} failed: {exc}")


def result_name(code: int, fallback: str = "error") -> str:
    """The RFC 4511 name of an LDAP result code ("invalidCredentials"), whichever library received it."""
    return str(RESULT_CODES.get(code, fallback))


def result_error(
    code: int,
    name: str,
    diagnostic: str,
    stage: Stage,
    err: Any,
    *,
    base: str,
    search_filter: str,
    where: str,
) -> DirectoryError:
    """A DirectoryError for an LDAP result code the server sent back (whichever library received it)."""
    said = f': the server said "{diagnostic}"' if diagnostic else ""
    if stage == "bind":
        if code == RESULT_INVALID_CREDENTIALS:
            reason = active_directory_bind_reason(diagnostic)
            extra = f": {reason}" if reason else ""
            return err("bind", f"The server refused the bind user and password ({name}){extra}")
        if code in (RESULT_STRONGER_AUTH_REQUIRED, RESULT_CONFIDENTIALITY_REQUIRED):
            return err(
                "bind", "The server requires an encrypted connection for this bind: use ldaps:// or StartTLS"
            )
        if code == RESULT_INAPPROPRIATE_AUTHENTICATION:
            return err("bind", f"The server does not accept this kind of bind ({name}){said}")
        if code == RESULT_INVALID_DN_SYNTAX:
            return err(
                "bind",
                f"The server cannot read the bind user ({name}): write it as a DN (cn=...,dc=...), "
                "user@REALM or DOMAIN\\user",
            )
        return err("bind", f"The bind was refused ({name}){said}")
    if stage == "starttls":
        return err(
            "tls",
            f"The server refused StartTLS ({name}){said}: check that TLS is enabled on the server, or use ldaps://",
        )
    if code == RESULT_NO_SUCH_OBJECT:
        return err("search", f"{base or 'The base DN'} does not exist on the server ({name}): check the DN")
    if code == RESULT_INSUFFICIENT_ACCESS_RIGHTS:
        return err("search", f"The bind user may not search {base or 'this DN'} ({name})")
    if code in (RESULT_STRONGER_AUTH_REQUIRED, RESULT_CONFIDENTIALITY_REQUIRED):
        return err("search", "The server requires an encrypted connection: use ldaps:// or StartTLS")
    if code == RESULT_ADMIN_LIMIT_EXCEEDED:
        return err(
            "size_limit",
            f"The server stopped the search at an administrative limit ({name}){said}: lower the page "
            "size, or ask the directory administrator to raise the limit for the bind user",
        )
    if code == RESULT_SIZE_LIMIT_EXCEEDED:
        return err("size_limit", f"The server stopped the search at its size limit ({name})")
    if code == RESULT_TIME_LIMIT_EXCEEDED:
        return err("timeout", f"The server stopped the search at its time limit ({name})")
    if code in (RESULT_BUSY, RESULT_UNAVAILABLE):
        return err("search", f"The server at {where} is {name} and cannot search now{said}")
    if code == RESULT_UNAVAILABLE_CRITICAL_EXTENSION:
        return err("search", f"The server does not support a control this search needs ({name}){said}")
    if code in (RESULT_INAPPROPRIATE_MATCHING, RESULT_UNDEFINED_ATTRIBUTE_TYPE):
        return err("search", f"The server cannot evaluate the filter {search_filter} ({name}){said}")
    return err("search", f"The server refused the search ({name}){said}")
