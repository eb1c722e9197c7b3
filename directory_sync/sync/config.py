"""Everything one run needs to know, resolved once from the domain's settings and the global variables."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from directory_sync.ldap.filters import normalize_filter
from directory_sync.models import DirectorySettings
from directory_sync.rules.addresses import AcceptedDomains, accepted_domains
from directory_sync.rules.vcard import DEFAULT_VCARD_MAP, VCardMap, parse_vcard_map
from directory_sync.servers.base import ServerProfile
from icewarp_admin.mailserver.selectors import system_variable_value

# Attributes every account mapping reads, beyond the GUID, the change stamp and the vCard map's.
ACCOUNT_ATTRIBUTES = (
    "mail",
    "otherMailbox",
    "proxyAddresses",
    "cn",
    "displayName",
    "givenName",
    "sn",
    "userPrincipalName",
    "sAMAccountName",
    "uid",
    "userAccountControl",
    "objectClass",
)


# Bumped when the engine stores something new about synced objects: the next run of every domain reads and
# maps everything once (2: DN hashes and uids for incremental group resolution).
ENGINE_VERSION = 2


@dataclass(frozen=True)
class SyncConfig:
    domain_id: int
    domain_name: str
    host: str
    base_dn: str
    profile: ServerProfile
    sync_accounts: bool
    account_filter: str
    guid_attribute: str
    guid_is_binary: bool
    change_stamp_attribute: str
    allow_missing_change_stamp: bool
    accepted: AcceptedDomains
    login_source: str
    username_source: str
    username_attribute: str
    add_login_to_aliases: bool
    full_name_from_given_and_sn: bool
    vcard_map: VCardMap | None  # None: personal data is not synchronized
    vcard_map_text: str
    directory_vcard_wins: bool
    delete_all_data: bool
    page_size: int
    max_delete: int  # 0: no limit
    ignore_search_error: bool
    log_type: int
    # Groups (section 7).
    sync_groups: bool = False
    group_filter: str = ""
    sync_mailing_lists: bool = False
    mailing_list_filter: str = ""
    group_remote_members: bool = False
    create_ou_groups: bool = False
    ou_groups_root: str = ""
    ou_groups_root_name: str = ""
    # DISABLEVCARDDOMAINRENAME: vCard e-mail addresses keep the directory's domain (else they are moved here
    # as the account's own addresses are).
    keep_vcard_email_domains: bool = False
    # REMOVALGRACEDAYS: a person who leaves is disabled for this many days first; 0 removes at once.
    removal_grace_days: int = 0
    warnings: tuple[str, ...] = field(default=())

    @property
    def vcard_enabled(self) -> bool:
        return self.vcard_map is not None

    def account_attributes(self) -> list[str]:
        """Only what the mapping needs; operational attributes (entryUUID...) must be named to be returned."""
        names = [*ACCOUNT_ATTRIBUTES, self.guid_attribute, self.change_stamp_attribute]
        if self.username_attribute:
            names.append(self.username_attribute)
        if self.vcard_map is not None:
            names.extend(sorted(self.vcard_map.attributes()))
        seen: dict[str, str] = {}
        for name in names:
            seen.setdefault(name.lower(), name)
        return list(seen.values())

    def group_attributes(self) -> list[str]:
        names = ["cn", "mail", "proxyAddresses", "member", "uniqueMember", "memberUid", "displayName",
                 "description", "objectClass", self.guid_attribute, self.change_stamp_attribute]  # fmt: skip
        return list({name.lower(): name for name in names}.values())

    @property
    def identity(self) -> str:
        """The id attribute objects are linked by, as stored on the domain's sync state."""
        return f"{self.guid_attribute.lower()}{';binary' if self.guid_is_binary else ''}"

    def fingerprint(self) -> str:
        """A hash of every setting what a run reads or makes of an entry depends on: when it changes, the next
        run reads everything and maps every entry again, whatever its change stamp."""
        relevant = {
            "engine": ENGINE_VERSION,
            "host": self.host,
            "base": self.base_dn,
            "filter": self.account_filter,
            "sync_accounts": self.sync_accounts,
            "groups": [
                self.sync_groups,
                self.group_filter,
                self.sync_mailing_lists,
                self.mailing_list_filter,
                self.group_remote_members,
            ],
            "ou_groups": [self.create_ou_groups, self.ou_groups_root, self.ou_groups_root_name],
            "guid": [self.guid_attribute, self.guid_is_binary],
            "accepted": [self.accepted.domain, sorted(self.accepted.rewritten), self.accepted.any_domain],
            "login": self.login_source,
            "username": [self.username_source, self.username_attribute],
            "alias_login": self.add_login_to_aliases,
            "full_name": self.full_name_from_given_and_sn,
            "vcard": None if self.vcard_map is None else self.vcard_map_text,
            "vcard_wins": self.directory_vcard_wins,
            "vcard_domains": self.keep_vcard_email_domains,
        }
        return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()


def build_config(settings: DirectorySettings) -> SyncConfig:
    """Resolve a domain's settings (defaults of its server type included) and the global variables."""
    global_vcard_off = bool(system_variable_value(name="C_System_ADSyncDisableVCardSync"))
    vcard_map: VCardMap | None = None
    vcard_map_text = settings.vcard_map.strip() or DEFAULT_VCARD_MAP
    if not (global_vcard_off or settings.disable_vcard_sync):
        vcard_map = parse_vcard_map(vcard_map_text)
    return SyncConfig(
        domain_id=settings.domain_id,
        domain_name=settings.domain.name,
        host=settings.host,
        base_dn=settings.base_dn,
        profile=settings.profile,
        sync_accounts=settings.sync_accounts,
        account_filter=normalize_filter(settings.effective_account_filter),
        guid_attribute=settings.effective_guid_attribute,
        guid_is_binary=settings.effective_guid_is_binary,
        change_stamp_attribute=settings.effective_change_stamp_attribute,
        allow_missing_change_stamp=settings.allow_missing_change_stamp,
        accepted=accepted_domains(
            domain=settings.domain.name,
            host_domain_active=settings.host_domain_active,
            host_domain=settings.host_domain,
        ),
        login_source=settings.login_source,
        username_source=settings.username_source,
        username_attribute=settings.username_attribute,
        add_login_to_aliases=settings.add_login_to_aliases,
        full_name_from_given_and_sn=settings.full_name_from_given_and_sn,
        vcard_map=vcard_map,
        vcard_map_text=vcard_map_text,
        directory_vcard_wins=settings.directory_vcard_wins,
        keep_vcard_email_domains=settings.disable_vcard_domain_rename,
        delete_all_data=settings.delete_all_data,
        removal_grace_days=settings.removal_grace_days,
        page_size=min(max(settings.page_size, 1), 1000),
        max_delete=system_variable_value(name="C_System_ADSyncMaxDeleteThreshold"),
        ignore_search_error=bool(system_variable_value(name="C_System_ADSyncIgnoreSearchError")),
        log_type=system_variable_value(name="C_System_ADSyncLogType"),
        sync_groups=settings.sync_groups,
        group_filter=normalize_filter(settings.effective_group_filter) if settings.sync_groups else "",
        sync_mailing_lists=settings.sync_mailing_lists and bool(settings.mailing_list_filter.strip()),
        mailing_list_filter=normalize_filter(settings.mailing_list_filter)
        if settings.mailing_list_filter.strip()
        else "",
        group_remote_members=settings.group_remote_members,
        create_ou_groups=settings.create_ou_groups,
        ou_groups_root=settings.ou_groups_root.strip(),
        ou_groups_root_name=settings.ou_groups_root_name.strip(),
        warnings=(
            ("Mailing lists are switched on but the mailing-list filter is empty: none were synchronized.",)
            if settings.sync_mailing_lists and not settings.mailing_list_filter.strip()
            else ()
        ),
    )
