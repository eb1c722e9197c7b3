"""Microsoft Active Directory: objectGUID (binary), whenChanged, userAccountControl, proxyAddresses."""

from __future__ import annotations

import enum

from directory_sync.choices import LoginSource, ServerType
from directory_sync.ldap.filters import DnError, dn_key
from directory_sync.servers.base import ServerDefaults, ServerProfile


def dns_domain_of(dn: str) -> str:
    """The DNS name of the domain an entry lives in: its DC= components joined by dots ("" if none)."""
    try:
        rdns = dn_key(dn)
    except DnError:
        return ""
    return ".".join(value for rdn in rdns for attribute, value in rdn if attribute == "dc" and value)


class UserAccountControl(enum.IntFlag):
    """The bits of AD's userAccountControl that matter here (MS-ADTS 2.2.16)."""

    SCRIPT = 0x0001
    ACCOUNTDISABLE = 0x0002
    LOCKOUT = 0x0010
    PASSWD_NOTREQD = 0x0020
    NORMAL_ACCOUNT = 0x0200
    WORKSTATION_TRUST_ACCOUNT = 0x1000
    SERVER_TRUST_ACCOUNT = 0x2000
    DONT_EXPIRE_PASSWORD = 0x10000
    PASSWORD_EXPIRED = 0x800000


class ActiveDirectoryProfile(ServerProfile):
    @property
    def changes_passwords_by_unicode_pwd(self) -> bool:
        return True

    def bind_name(self, login: str, *, dn: str) -> str:
        """A bare sAMAccountName does not bind (Samba refuses it, AD only sometimes): it becomes the implicit
        UPN name@dns-domain of the domain the entry lives in, which every domain controller accepts. A UPN,
        DOMAIN\\name or a DN binds as it is."""
        if not login or "@" in login or "\\" in login or "=" in login:
            return login
        domain = dns_domain_of(dn)
        return f"{login}@{domain}" if domain else login

    @property
    def has_disabled_flag(self) -> bool:
        return True

    def is_account_disabled(self, attributes: dict[str, list[str | bytes]]) -> bool:
        for name, values in attributes.items():
            if name.lower() == "useraccountcontrol" and values:
                raw = values[0]
                try:
                    flags = UserAccountControl(int(raw.decode() if isinstance(raw, bytes) else raw))
                except ValueError:
                    return False
                return UserAccountControl.ACCOUNTDISABLE in flags
        return False


ACTIVE_DIRECTORY = ActiveDirectoryProfile(
    server_type=ServerType.ACTIVE_DIRECTORY,
    label="Active Directory",
    defaults=ServerDefaults(
        account_filter="(&(objectCategory=person)(objectClass=user))",
        # Without the exclusion every built-in group (Administrators, Domain Users...) becomes an address.
        group_filter="(&(objectClass=group)(!(isCriticalSystemObject=TRUE)))",
        mailing_list_filter="",
        guid_attribute="objectGUID",
        guid_is_binary=True,
        change_stamp_attribute="whenChanged",
        login_source=LoginSource.USER_PRINCIPAL_NAME,
    ),
)
