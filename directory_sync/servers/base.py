"""The shape of a server profile."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass


@dataclass(frozen=True)
class ServerDefaults:
    """What choosing a server type fills in (only where the administrator has not typed something else)."""

    account_filter: str
    group_filter: str
    mailing_list_filter: str
    guid_attribute: str
    guid_is_binary: bool
    change_stamp_attribute: str
    login_source: str


@dataclass(frozen=True)
class ServerProfile:
    server_type: str
    label: str
    defaults: ServerDefaults

    def decode_guid(self, value: bytes | str, *, is_binary: bool) -> str:
        """The immutable id as a stable string: a binary GUID as its canonical UUID text."""
        if isinstance(value, str):
            return value.strip().lower()
        if is_binary and len(value) == 16:
            return str(uuid.UUID(bytes_le=value))
        try:
            return value.decode("utf-8").strip().lower()
        except UnicodeDecodeError:
            return base64.b64encode(value).decode("ascii")

    def id_assertion(self, attribute: str, key: str, *, is_binary: bool) -> str:
        """A filter item that finds the entry with this key: (attribute=value), a binary GUID as its bytes."""
        from directory_sync.ldap.filters import escape_value

        value: str | bytes = key
        if is_binary:
            try:
                value = uuid.UUID(key).bytes_le
            except ValueError:
                value = base64.b64decode(key + "=" * (-len(key) % 4))
        return f"({attribute}={escape_value(value)})"

    @property
    def changes_passwords_by_unicode_pwd(self) -> bool:
        """Whether a password change writes AD's unicodePwd (else RFC 3062, then userPassword)."""
        return False

    def bind_name(self, login: str, *, dn: str) -> str:
        """The name a person binds with, from the login of their auth value."""
        return login

    @property
    def has_disabled_flag(self) -> bool:
        """Whether entries carry an account-disabled flag the sync must follow (AD does, generic LDAP not)."""
        return False

    def is_account_disabled(self, attributes: dict[str, list[str | bytes]]) -> bool:
        """Whether the directory marks the entry as disabled."""
        return False
