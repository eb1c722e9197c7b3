"""Binds as a mail user (does this password sign in?) and the password changes written to the directory.

python-ldap, because it decodes the password-policy control (draft-behera-ldap-password-policy), which tells a
locked or expired account apart from a wrong password, and speaks the RFC 3062 password-modify operation.
Connections come from bulk.connect_endpoint: the same TLS settings and primary → backup failover as the sync.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any, Final, Literal

import ldap
from ldap.controls import DecodeControlTuples
from ldap.controls.ppolicy import PasswordPolicyControl

from directory_sync.ldap.bulk import connect_endpoint, translate_ldap_error
from directory_sync.ldap.connection import Endpoint, SessionOptions, first_working, refuse_plain_bind
from directory_sync.ldap.errors import DirectoryError, active_directory_bind_reason
from directory_sync.ldap.filters import escape_value

logger = logging.getLogger(__name__)

Verdict = Literal["ok", "bad_password", "disabled", "expired", "locked"]
ChangeReason = Literal["ok", "bad_password", "disabled", "expired", "locked", "policy", "not_permitted"]

# draft-behera-ldap-password-policy, PasswordPolicyResponseValue.error
_PPOLICY_EXPIRED: Final = 0
_PPOLICY_LOCKED: Final = 1
_PPOLICY_CHANGE_AFTER_RESET: Final = 2
_PPOLICY_REFUSALS: Final[dict[int, str]] = {
    3: "The directory does not let you change this password: ask your administrator",
    4: "The directory wants the current password with the change: enter it",
    5: "The new password is not strong enough for the directory's password policy",
    6: "The new password is too short for the directory's password policy",
    7: "Your password was changed too recently to be changed again: try again later",
    8: "The new password was used before (or is your current one): choose one you have not used",
}
# Active Directory's bind failures (the "data NNN" of the diagnostic) that are not a wrong password.
_AD_VERDICTS: Final[dict[str, Verdict]] = {
    "the password has expired": "expired",
    "the user must change the password before logging on": "expired",
    "the account is disabled": "disabled",
    "the account has expired": "disabled",
    "the user may not log on at this time": "disabled",
    "the user may not log on from this computer": "disabled",
    "the account is locked out": "locked",
}
_VERDICT_WORDS: Final[dict[str, str]] = {
    "ok": "Signed in",
    "bad_password": "Wrong user name or password",
    "disabled": "The directory has disabled this account",
    "expired": "The password has expired: change it before signing in",
    "locked": "The directory has locked this account after too many wrong passwords: ask your administrator",
}
_AD_OLD_PASSWORD_WRONG = re.compile(r"^0*56:", re.IGNORECASE)
_AD_POLICY = re.compile(r"^0*52d:", re.IGNORECASE)
_AD_NEEDS_TLS = re.compile(r"^0*1f:", re.IGNORECASE)
_AT_LEAST = re.compile(r"(?:equal or longer than|at least)\s+(\d+)\s+characters", re.IGNORECASE)


@dataclass(frozen=True)
class BindVerdict:
    """What the directory said to a mail user's bind: a verdict, plain words, the host that answered."""

    verdict: Verdict
    message: str
    host: str = ""
    warning: str = ""
    # The connection is authenticated as the person: on success, and when ppolicy allows a bind after a reset
    # only so that the password gets changed.
    bound: bool = False

    @property
    def ok(self) -> bool:
        return self.verdict == "ok"


@dataclass(frozen=True)
class ChangeOutcome:
    """The end of a password change: a reason code (ok, or why not) and the message to show the person."""

    reason: ChangeReason
    message: str
    host: str = ""

    @property
    def ok(self) -> bool:
        return self.reason == "ok"


class _Link:
    """One unbound (then bound) python-ldap connection; first_working() hands it the failover bookkeeping."""

    def __init__(self, conn: Any, ca_file: str | None, endpoint: Endpoint, options: SessionOptions) -> None:
        self.conn = conn
        self.ca_file = ca_file
        self.endpoint = endpoint
        self.options = options
        self.timeout = options.timeout_seconds
        self.bind_timeout = options.open_timeout_seconds
        self.skipped: tuple[DirectoryError, ...] = ()

    def close(self) -> None:
        with contextlib.suppress(ldap.LDAPError):
            self.conn.unbind_s()
        if self.ca_file:
            with contextlib.suppress(OSError):
                os.unlink(self.ca_file)
            self.ca_file = None


def _open_link(endpoint: Endpoint, options: SessionOptions) -> _Link:
    conn, ca_file = connect_endpoint(endpoint, options)
    return _Link(conn, ca_file, endpoint, options)


def _details(exc: BaseException) -> dict[str, Any]:
    return exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}


def _ppolicy(controls: Any) -> Any:
    """The password-policy response among controls: decoded ones (a result) or raw tuples (an exception's)."""
    items = list(controls or [])
    if items and isinstance(items[0], tuple):
        try:
            items = DecodeControlTuples(items)
        except Exception:  # a control the server garbled is as good as no control
            return None
    return next((control for control in items if isinstance(control, PasswordPolicyControl)), None)


def _warning(control: Any) -> str:
    if control is None:
        return ""
    if control.timeBeforeExpiration is not None:
        days = int(control.timeBeforeExpiration) // 86400
        return f"Your password expires in {days} day{'s' if days != 1 else ''}: change it soon"
    if control.graceAuthNsRemaining is not None:
        return f"Your password has expired; {control.graceAuthNsRemaining} sign-ins are left to change it"
    return ""


def _fail(
    exc: ldap.LDAPError, link: _Link, secrets: tuple[str, ...], stage: Literal["bind", "search"] = "search"
) -> DirectoryError:
    timeout = link.bind_timeout if stage == "bind" else link.timeout
    return translate_ldap_error(exc, stage, endpoint=link.endpoint, timeout=timeout, secrets=secrets)


def _bind(link: _Link, login: str, password: str) -> BindVerdict:
    """Bind on the link as login/password; a refusal is a verdict, a server that fails is a DirectoryError."""
    host = link.endpoint.url
    if not password:
        # An empty password makes a simple bind "unauthenticated", which most servers accept as anonymous.
        return BindVerdict("bad_password", _VERDICT_WORDS["bad_password"], host)
    # The domain's own options decide (the link was opened with them, less the bind user).
    refuse_plain_bind(link.endpoint, link.options, password=password)
    try:
        msgid = link.conn.simple_bind(login, password, serverctrls=[PasswordPolicyControl()])
        _, _, _, controls = link.conn.result3(msgid, all=1, timeout=link.bind_timeout)
    except ldap.INVALID_CREDENTIALS as exc:
        details = _details(exc)
        control = _ppolicy(details.get("ctrls"))
        if control is not None and control.error == _PPOLICY_LOCKED:
            return BindVerdict("locked", _VERDICT_WORDS["locked"], host)
        if control is not None and control.error == _PPOLICY_EXPIRED:
            return BindVerdict("expired", _VERDICT_WORDS["expired"], host)
        reason = active_directory_bind_reason(str(details.get("info") or ""))
        verdict = _AD_VERDICTS.get(reason or "", "bad_password")
        return BindVerdict(verdict, _VERDICT_WORDS[verdict], host)
    except (ldap.INVALID_DN_SYNTAX, ldap.NO_SUCH_OBJECT, ldap.UNWILLING_TO_PERFORM) as exc:
        if isinstance(exc, ldap.UNWILLING_TO_PERFORM) and "unauthenticated" not in str(_details(exc)).lower():
            raise _fail(exc, link, (password,), "bind") from None
        # The login is not a name this directory binds (a DN that is not one, an unknown user).
        return BindVerdict("bad_password", _VERDICT_WORDS["bad_password"], host)
    except ldap.LDAPError as exc:
        raise _fail(exc, link, (password,), "bind") from None
    control = _ppolicy(controls)
    if control is not None and control.error == _PPOLICY_CHANGE_AFTER_RESET:
        # ppolicy let the bind through, but only to change the password (an administrator reset it).
        reset = "Your password was reset: change it before signing in"
        return BindVerdict("expired", reset, host, bound=True)
    return BindVerdict("ok", _VERDICT_WORDS["ok"], host, _warning(control), bound=True)


def check_user_password(options: SessionOptions, *, login: str, password: str) -> BindVerdict:
    """Does login/password bind on the domain's directory (primary host, else the backup)? A DirectoryError
    when neither answers. options: the domain's session options (its bind user is not used)."""
    if not login.strip():
        raise DirectoryError("config", "The account has no directory login: synchronize the domain again")
    if not password:
        return BindVerdict("bad_password", _VERDICT_WORDS["bad_password"])
    link = first_working(_anonymous(options), _open_link)
    try:
        return _bind(link, login, password)
    finally:
        link.close()


def _anonymous(options: SessionOptions) -> SessionOptions:
    return replace(options, bind_user="", bind_password="")


def unicode_pwd(password: str) -> bytes:
    """Active Directory's unicodePwd value: the password in double quotes, UTF-16-LE."""
    return f'"{password}"'.encode("utf-16-le")


def _ad_refusal(info: str) -> ChangeOutcome | None:
    """Active Directory's (and Samba's) refusal of a new password, in plain words."""
    lowered = info.lower()
    if _AD_OLD_PASSWORD_WRONG.match(info):
        return ChangeOutcome("bad_password", "The current password is wrong")
    if _AD_NEEDS_TLS.match(info):
        return ChangeOutcome(
            "not_permitted",
            "Active Directory changes passwords only over an encrypted connection: the domain's directory "
            "settings must use ldaps:// or StartTLS",
        )
    if not _AD_POLICY.match(info):
        return None
    if "too short" in lowered:
        least = _AT_LEAST.search(info)
        return ChangeOutcome(
            "policy",
            "The new password is too short"
            + (f": use at least {least.group(1)} characters" if least else " for the domain's policy"),
        )
    if "complexity" in lowered:
        return ChangeOutcome(
            "policy",
            "The new password is not complex enough: use at least three of upper-case letters, lower-case "
            "letters, digits and symbols, and not your name",
        )
    if "history" in lowered or "already used" in lowered:
        return ChangeOutcome("policy", "The new password was used before: choose one you have not used")
    if "too young" in lowered or "minimum password age" in lowered or "min_pwd_age" in lowered:
        return ChangeOutcome(
            "policy", "Your password was changed too recently to be changed again: try again later"
        )
    return ChangeOutcome(
        "policy",
        "The directory refused the new password: it does not meet the domain's password policy (length, "
        "complexity, history or minimum age)",
    )


def _generic_refusal(exc: ldap.LDAPError) -> ChangeOutcome | None:
    details = _details(exc)
    control = _ppolicy(details.get("ctrls"))
    if control is not None and control.error in _PPOLICY_REFUSALS:
        reason: ChangeReason = "not_permitted" if control.error == 3 else "policy"
        return ChangeOutcome(reason, _PPOLICY_REFUSALS[control.error])
    if isinstance(exc, ldap.CONSTRAINT_VIOLATION):
        said = str(details.get("info") or "").strip()
        return ChangeOutcome(
            "policy",
            "The directory refused the new password" + (f": {said}" if said else " (its password policy)"),
        )
    return None


def _service_link(service: SessionOptions) -> _Link:
    """A link bound as the domain's bind user, for changes the person's own bind may not make."""
    if not service.bind_user or not service.bind_password:
        raise DirectoryError(
            "config",
            "The domain's directory settings have no bind user and password, which this change needs",
        )
    link = first_working(service, _open_link)
    try:
        refuse_plain_bind(link.endpoint, service, password=service.bind_password)
        msgid = link.conn.simple_bind(service.bind_user, service.bind_password)
        link.conn.result3(msgid, all=1, timeout=link.bind_timeout)
    except ldap.LDAPError as exc:
        link.close()
        raise _fail(exc, link, (service.bind_password,), "bind") from None
    return link


def _no_rights(service: SessionOptions, what: str) -> ChangeOutcome:
    return ChangeOutcome(
        "not_permitted",
        f"The directory did not let you change your own password, and the bind user "
        f"{service.bind_user or '(none)'} may not change it either: give the bind user {what} "
        "(a read-only bind user can synchronize, but not change passwords)",
    )


def _own_dn(link: _Link, *, login: str, stored_dn: str, search_base: str) -> str:
    """The person's DN now: the stored one, unless the entry moved since the last sync; then it is found by
    the login (escaped: it reaches a filter)."""
    try:
        link.conn.search_ext_s(stored_dn, ldap.SCOPE_BASE, "(objectClass=*)", ["1.1"], timeout=link.timeout)
        return stored_dn
    except ldap.NO_SUCH_OBJECT:
        pass
    except ldap.LDAPError:
        return stored_dn
    if not search_base or "=" in login:
        return stored_dn
    name = login.split("\\", 1)[-1].split("@", 1)[0]
    wanted = f"(|(userPrincipalName={escape_value(login)})(sAMAccountName={escape_value(name)}))"
    try:
        found = link.conn.search_ext_s(
            search_base, ldap.SCOPE_SUBTREE, wanted, ["1.1"], sizelimit=2, timeout=link.timeout
        )
    except ldap.LDAPError:
        return stored_dn
    dns = [dn for dn, _ in found if dn]
    return dns[0] if len(dns) == 1 else stored_dn


def change_user_password(
    service: SessionOptions,
    *,
    active_directory: bool,
    login: str,
    user_dn: str,
    old_password: str,
    new_password: str,
    search_base: str = "",
) -> ChangeOutcome:
    """Change a person's directory password, old and new in one operation so that the directory's own policy
    (length, complexity, history, age) decides. The person's bind checks the old password; the domain's bind
    user steps in where the person may not write (and for an expired password, which cannot bind).
    service: the domain's session options. A DirectoryError when no directory host answers."""
    if not old_password:
        return ChangeOutcome("bad_password", "Enter your current password")
    if not new_password:
        return ChangeOutcome("policy", "Enter a new password")
    link = first_working(_anonymous(service), _open_link)
    try:
        verdict = _bind(link, login, old_password)
        if verdict.verdict in ("bad_password", "disabled", "locked"):
            return ChangeOutcome(verdict.verdict, verdict.message, link.endpoint.url)
        if active_directory:
            encrypted = link.endpoint.use_ssl or service.use_starttls
            if not encrypted:
                return ChangeOutcome(
                    "not_permitted",
                    "Active Directory changes passwords only over an encrypted connection: the domain's "
                    "directory settings must use ldaps:// or StartTLS",
                    link.endpoint.url,
                )
            outcome = _change_active_directory(
                link, service, verdict, login=login, user_dn=user_dn, old=old_password, new=new_password,
                search_base=search_base,
            )  # fmt: skip
        else:
            outcome = _change_generic(
                link, service, verdict, user_dn=user_dn, old=old_password, new=new_password
            )
        return replace(outcome, host=outcome.host or link.endpoint.url)
    finally:
        link.close()


def _change_active_directory(
    link: _Link,
    service: SessionOptions,
    verdict: BindVerdict,
    *,
    login: str,
    user_dn: str,
    old: str,
    new: str,
    search_base: str,
) -> ChangeOutcome:
    # A change (delete the old value, add the new) rather than a reset (replace): Active Directory then checks
    # the old password and applies history and minimum age, which a reset by an administrator skips.
    changes = [
        (ldap.MOD_DELETE, "unicodePwd", [unicode_pwd(old)]),
        (ldap.MOD_ADD, "unicodePwd", [unicode_pwd(new)]),
    ]
    secrets = (old, new, service.bind_password)
    # An expired password cannot bind, and "User cannot change password" forbids the person's own change: the
    # bind user then makes the same change operation, which Active Directory still checks against the old one.
    service_link: _Link | None = None
    try:
        for current in _writers(link, service, own_bind=verdict.bound):
            if current is not link:
                service_link = current
            dn = _own_dn(current, login=login, stored_dn=user_dn, search_base=search_base)
            try:
                current.conn.modify_ext_s(dn, changes)
                return ChangeOutcome("ok", "Your password has been changed")
            except ldap.INSUFFICIENT_ACCESS:
                continue
            except (ldap.CONSTRAINT_VIOLATION, ldap.UNWILLING_TO_PERFORM) as exc:
                refusal = _ad_refusal(str(_details(exc).get("info") or ""))
                if refusal is not None:
                    return refusal
                raise _fail(exc, current, secrets) from None
            except ldap.LDAPError as exc:
                raise _fail(exc, current, secrets) from None
        return _no_rights(service, "the Change Password right on the users")
    finally:
        if service_link is not None:
            service_link.close()


def _writers(link: _Link, service: SessionOptions, *, own_bind: bool) -> Iterator[_Link]:
    """Who tries to write, in order: the person (when their bind succeeded), then the domain's bind user."""
    if own_bind:
        yield link
    yield _service_link(service)


def _change_generic(
    link: _Link, service: SessionOptions, verdict: BindVerdict, *, user_dn: str, old: str, new: str
) -> ChangeOutcome:
    """RFC 3062 password modify as the person; the bind user when the person may not; replacing userPassword
    when the server does not speak RFC 3062."""
    service_link: _Link | None = None
    try:
        for current in _writers(link, service, own_bind=verdict.bound):
            if current is not link:
                service_link = current
            # RFC 3062: no user identity means "my own password"; the bind user names the person.
            identity = None if current is link else user_dn
            outcome = _password_modify(
                current, identity=identity, user_dn=user_dn, old=old, new=new,
                secrets=(old, new, service.bind_password),
            )  # fmt: skip
            if outcome is not None:
                return outcome
        return _no_rights(service, "write access to userPassword")
    finally:
        if service_link is not None:
            service_link.close()


def _password_modify(
    link: _Link, *, identity: str | None, user_dn: str, old: str, new: str, secrets: tuple[str, ...]
) -> ChangeOutcome | None:
    """One attempt; None when this identity lacks the rights (the caller tries the next)."""
    try:
        msgid = link.conn.passwd(identity, old, new, serverctrls=[PasswordPolicyControl()])
        link.conn.result3(msgid, all=1, timeout=link.timeout)
        return ChangeOutcome("ok", "Your password has been changed")
    except ldap.INSUFFICIENT_ACCESS:
        return None
    except (ldap.PROTOCOL_ERROR, ldap.UNWILLING_TO_PERFORM) as exc:
        refusal = _generic_refusal(exc)
        if refusal is not None:
            return refusal
        # The server does not implement RFC 3062 (1.3.6.1.4.1.4203.1.11.3): write userPassword itself, which
        # the server hashes or checks by its own policy.
        logger.info("Password modify refused on %s (%s): replacing userPassword", link.endpoint.url, exc)
    except ldap.LDAPError as exc:
        refusal = _generic_refusal(exc)
        if refusal is not None:
            return refusal
        raise _fail(exc, link, secrets) from None
    try:
        link.conn.modify_ext_s(
            user_dn, [(ldap.MOD_REPLACE, "userPassword", [new.encode("utf-8")])],
            serverctrls=[PasswordPolicyControl()],
        )  # fmt: skip
        return ChangeOutcome("ok", "Your password has been changed")
    except ldap.INSUFFICIENT_ACCESS:
        return None
    except ldap.LDAPError as exc:
        refusal = _generic_refusal(exc)
        if refusal is not None:
            return refusal
        raise _fail(exc, link, secrets) from None
