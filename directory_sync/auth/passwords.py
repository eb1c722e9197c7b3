"""Does address + password sign in, and changing that password: the one place every way in goes through
(the self-service pages, the command line, the mail server's checkpassword)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.contrib.auth import password_validation
from django.contrib.auth.hashers import check_password, make_password
from django.core.exceptions import ValidationError

from directory_sync.auth.throttle import Attempt, begin_attempt, finish_attempt
from directory_sync.ldap import DirectoryError, options_from_settings
from directory_sync.ldap.binds import change_user_password, check_user_password
from directory_sync.models import DirectorySettings, SignIn
from directory_sync.rules.names import login_of_auth_value
from icewarp_admin.mailserver.models import Account
from icewarp_admin.mailserver.selectors import account_for_sign_in, system_variable_value
from icewarp_admin.mailserver.services.accounts import set_account_password

logger = logging.getLogger(__name__)

Reason = SignIn.Reason
PASS_CHANGE_DISABLE = "C_Accounts_Global_LDAP_PassChangeDisable"  # noqa: S105 - a variable name
MAX_PASSWORD_LENGTH = 1024  # longer is no password anyone types; it is refused before any hashing or bind

_MESSAGES: dict[str, str] = {
    Reason.OK: "Signed in.",
    Reason.BAD_PASSWORD: "Wrong address or password.",
    Reason.UNKNOWN: "Wrong address or password.",
    Reason.DISABLED: "This account is disabled.",
    Reason.THROTTLED: "Too many wrong passwords: wait a while before you try again.",
    Reason.DIRECTORY_DOWN: "The directory cannot check your password right now: try again later.",
    Reason.EXPIRED: "Your password has expired: change it first.",
    Reason.LOCKED: "The directory has locked this account: ask your administrator.",
}


@dataclass(frozen=True)
class AuthResult:
    """How a sign-in or a password change ended.

    reason: a SignIn.Reason value. message: what to tell the person (the same words for an unknown address and
    a wrong password). detail: what administrators see (the directory's words, which host)."""

    reason: str
    message: str
    account: Account | None = None
    detail: str = ""
    warning: str = ""

    @property
    def ok(self) -> bool:
        return self.reason == Reason.OK


def _typed(address: str) -> str:
    return address.strip().lower()[:320]


def _log(result: AuthResult, *, action: str, address: str, client: str, channel: str) -> None:
    # Never the password: only who, from where, how, and why.
    if result.ok:
        logger.info("%s of %s via %s from %s: ok", action, address, channel, client or "-")
    else:
        logger.warning(
            "%s of %s via %s from %s refused: %s (%s)",
            action, address, channel, client or "-", result.reason, result.detail or result.message,
        )  # fmt: skip


def _end(
    attempt: Attempt,
    reason: str,
    *,
    account: Account | None,
    method: str = "",
    message: str = "",
    detail: str = "",
    host: str = "",
    warning: str = "",
) -> AuthResult:
    finish_attempt(attempt, reason=reason, method=method, detail=detail or message, host=host)
    return AuthResult(
        reason=reason,
        message=message or _MESSAGES.get(reason, ""),
        account=account,
        detail=detail or message,
        warning=warning,
    )


def _directory_settings(account: Account) -> DirectorySettings | None:
    return DirectorySettings.objects.filter(domain_id=account.domain_id).first()


def _refused_early(attempt: Attempt, account: Account | None, password: str) -> AuthResult | None:
    """The refusals that need no password check (and so ask no directory)."""
    if account is None:
        make_password(password[:MAX_PASSWORD_LENGTH])  # as long as a real check: no telling who exists
        return _end(attempt, Reason.UNKNOWN, account=None)
    if attempt.throttled:
        return _end(attempt, Reason.THROTTLED, account=account)
    if not account.enabled:
        return _end(attempt, Reason.DISABLED, account=account, detail="The account is disabled here")
    if not password or len(password) > MAX_PASSWORD_LENGTH:
        # An empty password would make a directory bind anonymous, which is never a sign-in.
        return _end(attempt, Reason.BAD_PASSWORD, account=account, detail="Empty or overlong password")
    return None


def _directory_of(attempt: Attempt, account: Account) -> tuple[DirectorySettings | None, AuthResult | None]:
    settings = _directory_settings(account)
    method = SignIn.Method.DIRECTORY
    if settings is None or not settings.host.strip():
        return None, _end(
            attempt, Reason.DIRECTORY_DOWN, account=account, method=method,
            detail=f"No directory server is configured for {account.domain.name}",
        )  # fmt: skip
    if not settings.directory_sign_in:
        return None, _end(
            attempt, Reason.DISABLED, account=account, method=method,
            message="Signing in with the directory password is switched off for this domain.",
            detail=f"Directory sign-in is switched off for {account.domain.name}",
        )  # fmt: skip
    return settings, None


def _begin(
    address: str, password: str, *, client: str, channel: str, action: str
) -> tuple[str, Account | None, Attempt, AuthResult | None]:
    """The address as typed, its account, the attempt written, and a refusal that needs no password check."""
    typed = _typed(address)
    account = account_for_sign_in(address=typed)
    attempt = begin_attempt(account=account, address=typed, client=client, channel=channel, action=action)
    return typed, account, attempt, _refused_early(attempt, account, password)


def authenticate(*, address: str, password: str, client: str = "", channel: str) -> AuthResult:
    """Does address (any address or alias of an account, or username@domain) sign in with this password?"""
    typed, account, attempt, result = _begin(
        address, password, client=client, channel=channel, action=SignIn.Action.SIGN_IN
    )
    if result is None:
        assert account is not None
        if account.auth_mode == Account.AuthMode.DIRECTORY:
            result = _directory_sign_in(attempt, account, password)
        else:
            result = _local_sign_in(attempt, account, password)
    _log(result, action="Sign-in", address=typed, client=client, channel=channel)
    return result


def _local_sign_in(attempt: Attempt, account: Account, password: str) -> AuthResult:
    method = SignIn.Method.PASSWORD

    def upgrade(raw: str) -> None:  # a hash made with an older hasher is replaced by the current one
        set_account_password(account=account, raw_password=raw)

    if account.password and check_password(password, account.password, setter=upgrade):
        return _end(attempt, Reason.OK, account=account, method=method)
    return _end(attempt, Reason.BAD_PASSWORD, account=account, method=method)


def _directory_sign_in(attempt: Attempt, account: Account, password: str) -> AuthResult:
    method = SignIn.Method.DIRECTORY
    settings, refused = _directory_of(attempt, account)
    if refused is not None:
        return refused
    assert settings is not None
    try:
        options = options_from_settings(settings)
        login = settings.profile.bind_name(login_of_auth_value(account.auth_value), dn=account.directory_dn)
        verdict = check_user_password(options, login=login, password=password)
    except DirectoryError as exc:
        return _end(
            attempt, Reason.DIRECTORY_DOWN, account=account, method=method, detail=exc.message, host=exc.host
        )
    reason = {
        "ok": Reason.OK,
        "bad_password": Reason.BAD_PASSWORD,
        "disabled": Reason.DISABLED,
        "expired": Reason.EXPIRED,
        "locked": Reason.LOCKED,
    }[verdict.verdict]
    return _end(
        attempt, reason, account=account, method=method,
        message="" if reason in (Reason.OK, Reason.BAD_PASSWORD) else verdict.message,
        detail=verdict.message, host=verdict.host, warning=verdict.warning,
    )  # fmt: skip


def change_password(
    *, address: str, old_password: str, new_password: str, client: str = "", channel: str
) -> AuthResult:
    """Change the password of the account at address: the local hash of a standard account (with the password
    policy), the directory's password of a synced one (rules §9). The old password is checked first."""
    typed, account, attempt, result = _begin(
        address, old_password, client=client, channel=channel, action=SignIn.Action.PASSWORD_CHANGE
    )
    if result is None:
        assert account is not None
        if not new_password or len(new_password) > MAX_PASSWORD_LENGTH:
            result = _end(
                attempt, Reason.POLICY, account=account,
                message=f"Enter a new password (at most {MAX_PASSWORD_LENGTH} characters).",
            )  # fmt: skip
        elif new_password == old_password:
            result = _end(
                attempt, Reason.POLICY, account=account,
                message="The new password is the same as the current one: choose another.",
            )  # fmt: skip
        elif account.auth_mode == Account.AuthMode.DIRECTORY:
            result = _directory_change(attempt, account, old_password, new_password)
        else:
            result = _local_change(attempt, account, old_password, new_password)
    _log(result, action="Password change", address=typed, client=client, channel=channel)
    return result


def _local_change(attempt: Attempt, account: Account, old: str, new: str) -> AuthResult:
    method = SignIn.Method.PASSWORD
    if not account.password or not check_password(old, account.password):
        return _end(
            attempt,
            Reason.BAD_PASSWORD,
            account=account,
            method=method,
            message="The current password is wrong.",
        )
    try:
        password_validation.validate_password(new)
    except ValidationError as exc:
        return _end(attempt, Reason.POLICY, account=account, method=method, message=" ".join(exc.messages))
    set_account_password(account=account, raw_password=new)
    return _end(attempt, Reason.OK, account=account, method=method, message="Your password has been changed.")


def _directory_change(attempt: Attempt, account: Account, old: str, new: str) -> AuthResult:
    method = SignIn.Method.DIRECTORY
    if system_variable_value(name=PASS_CHANGE_DISABLE):
        return _end(
            attempt, Reason.NOT_PERMITTED, account=account, method=method,
            message="Password changes are switched off on this server: change your password where your "
            "organization manages it (for example when signing in to Windows).",
            detail=f"{PASS_CHANGE_DISABLE} is on",
        )  # fmt: skip
    settings, refused = _directory_of(attempt, account)
    if refused is not None:
        return refused
    assert settings is not None
    profile = settings.profile
    try:
        outcome = change_user_password(
            options_from_settings(settings),
            active_directory=profile.changes_passwords_by_unicode_pwd,
            login=profile.bind_name(login_of_auth_value(account.auth_value), dn=account.directory_dn),
            user_dn=account.directory_dn,
            old_password=old,
            new_password=new,
            search_base=settings.base_dn,
        )
    except DirectoryError as exc:
        return _end(
            attempt, Reason.DIRECTORY_DOWN, account=account, method=method, detail=exc.message, host=exc.host
        )
    return _end(
        attempt, outcome.reason, account=account, method=method,
        message=outcome.message + ("." if not outcome.message.endswith(".") else ""), host=outcome.host,
    )  # fmt: skip
