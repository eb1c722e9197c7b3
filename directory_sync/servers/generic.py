"""Generic LDAP servers (OpenLDAP, 389 DS...): inetOrgPerson, groupOfNames, entryUUID, modifyTimestamp."""

from __future__ import annotations

from directory_sync.choices import LoginSource, ServerType
from directory_sync.servers.base import ServerDefaults, ServerProfile

GENERIC_LDAP = ServerProfile(
    server_type=ServerType.GENERIC,
    label="Generic LDAP",
    defaults=ServerDefaults(
        account_filter="inetOrgPerson",
        group_filter="groupOfNames",
        mailing_list_filter="",
        guid_attribute="entryUUID",
        guid_is_binary=False,
        change_stamp_attribute="modifyTimestamp",
        login_source=LoginSource.DN,
    ),
)
