"""Usernames, logins, auth values and full names of synced accounts (IceWarp's rules, section 5)."""

from __future__ import annotations

import re

from directory_sync.choices import LoginSource, UsernameSource

_SPACES = re.compile(r"\s+")


def directory_login(*, login_source: str, dn: str, user_principal_name: str, sam_account_name: str) -> str:
    """The login the account binds with: UPN, sAMAccountName or DN; the DN when the chosen one is missing."""
    if login_source == LoginSource.USER_PRINCIPAL_NAME and user_principal_name:
        return user_principal_name
    if login_source == LoginSource.SAM_ACCOUNT_NAME and sam_account_name:
        return sam_account_name
    return dn


def auth_value(*, host: str, login: str) -> str:
    """IceWarp's u_authmodevalue: host;login (no length limit here; IceWarp stopped at 116 characters)."""
    return f"{host};{login}"


def login_of_auth_value(value: str) -> str:
    """The login part of an auth value (host;login); a value without a host is the login itself."""
    host, separator, login = value.partition(";")
    return login.strip() if separator else host.strip()


def local_username(
    *,
    source: str,
    custom_attribute_value: str,
    cn: str,
    login: str,
    login_source: str,
    primary_local_part: str,
) -> str:
    """The raw local username (normalized later): custom attribute, CN, login, or the primary alias."""
    if custom_attribute_value:
        return custom_attribute_value.split("@", 1)[0]
    if source == UsernameSource.CN and cn:
        return _SPACES.sub("_", cn.strip())
    if source == UsernameSource.LOGIN and login and login_source != LoginSource.DN:
        return login.split("@", 1)[0].split("\\")[-1]
    return primary_local_part


def full_name(
    *,
    display_name: str,
    cn: str,
    given_name: str,
    surname: str,
    username: str,
    from_given_and_sn: bool,
    vcard_sync_enabled: bool,
) -> str:
    """givenName sn when asked (vCard sync off, both set); else displayName, cn, givenName sn, username."""
    given, sn = given_name.strip(), surname.strip()
    if from_given_and_sn and not vcard_sync_enabled and given and sn:
        return f"{given} {sn}"
    for candidate in (display_name.strip(), cn.strip(), f"{given} {sn}".strip()):
        if candidate:
            return candidate
    return username
