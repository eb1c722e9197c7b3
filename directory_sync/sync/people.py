"""One directory entry → the account it describes (or why it is skipped). Pure: no database, no network."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from django.core.exceptions import ValidationError

from directory_sync.ldap.entries import Entry
from directory_sync.rules.addresses import candidate_addresses, qualifying_local_parts
from directory_sync.rules.names import auth_value, directory_login, full_name, local_username
from directory_sync.rules.stamps import may_have_changed_since
from directory_sync.rules.vcard import render_vcard
from directory_sync.sync.config import SyncConfig
from icewarp_admin.mailserver.validators import normalize_username


@dataclass(frozen=True)
class DirectoryPerson:
    """What the directory says one account should look like."""

    key: str  # the GUID, or the primary address when the directory gives no GUID
    guid: str | None
    dn: str
    change_stamp: str
    username: str
    local_parts: tuple[str, ...]  # addresses in this domain, primary first
    full_name: str
    auth_value: str
    enabled: bool | None  # None: the directory has no say (generic LDAP has no disabled flag)
    vcard: dict[str, str] | None  # None: personal data is not synchronized
    uid: str = ""  # for posix groups, whose members are uids


@dataclass(frozen=True)
class SkippedEntry:
    dn: str
    guid: str | None
    label: str
    reason: str
    addresses: tuple[str, ...] = ()  # what the entry offered, for groups that list it as a remote member
    leaves_domain: bool = False  # no address here any more: its account goes; other skips keep the account


def texts(entry: Entry, name: str) -> list[str]:
    """Text values of an attribute (binary values are not text and are left out)."""
    return [value for value in entry.get(name) if isinstance(value, str)]


def text(entry: Entry, name: str) -> str:
    values = texts(entry, name)
    return values[0].strip() if values else ""


def login_alias(entry: Entry) -> str:
    """The login name without its realm: sAMAccountName, the UPN's user part, or uid on generic LDAP."""
    return (
        text(entry, "sAMAccountName")
        or text(entry, "userPrincipalName").split("@", 1)[0]
        or text(entry, "uid")
    )


def map_entry(entry: Entry, config: SyncConfig) -> DirectoryPerson | SkippedEntry:
    """Apply IceWarp's rules (addresses, domains, username, login, full name, vCard) to one entry."""
    raw_guid = entry.first(config.guid_attribute)
    guid = config.profile.decode_guid(raw_guid, is_binary=config.guid_is_binary) if raw_guid else None
    login = directory_login(
        login_source=config.login_source,
        dn=entry.dn,
        user_principal_name=text(entry, "userPrincipalName"),
        sam_account_name=text(entry, "sAMAccountName"),
    )
    candidates = candidate_addresses(
        mail=texts(entry, "mail"),
        other_mailbox=texts(entry, "otherMailbox"),
        proxy_addresses=texts(entry, "proxyAddresses"),
    )
    qualified = qualifying_local_parts(
        candidates,
        config.accepted,
        login_alias=login_alias(entry) if config.add_login_to_aliases else "",
    )
    label = candidates[0].address if candidates else entry.dn
    if not qualified.local_parts:
        if qualified.foreign:
            reason = (
                f"its addresses ({', '.join(qualified.foreign[:3])}) are not in {config.accepted.describe()}"
            )
        elif qualified.invalid:
            reason = f"no valid address (found {', '.join(qualified.invalid[:3])})"
        else:
            reason = "it has no e-mail address"
        return SkippedEntry(
            dn=entry.dn,
            guid=guid,
            label=label,
            reason=reason,
            leaves_domain=True,
            addresses=tuple(candidate.address.lower() for candidate in candidates),
        )

    raw_username = local_username(
        source=config.username_source,
        custom_attribute_value=text(entry, config.username_attribute) if config.username_attribute else "",
        cn=text(entry, "cn"),
        login=login,
        login_source=config.login_source,
        primary_local_part=qualified.local_parts[0],
    )
    try:
        username = normalize_username(raw_username)
    except ValidationError as error:
        return SkippedEntry(
            dn=entry.dn, guid=guid, label=label, reason=f"username “{raw_username}”: {error.messages[0]}"
        )

    stamp = text(entry, config.change_stamp_attribute)
    attributes = {
        name: [value for value in values if isinstance(value, str)]
        for name, values in entry.attributes.items()
    }
    return DirectoryPerson(
        key=guid or f"mail:{qualified.local_parts[0]}",
        guid=guid,
        dn=entry.dn,
        change_stamp=stamp,
        username=username,
        local_parts=qualified.local_parts,
        full_name=full_name(
            display_name=text(entry, "displayName"),
            cn=text(entry, "cn"),
            given_name=text(entry, "givenName"),
            surname=text(entry, "sn"),
            username=username,
            from_given_and_sn=config.full_name_from_given_and_sn,
            vcard_sync_enabled=config.vcard_enabled,
        )[:255],
        auth_value=auth_value(host=config.host, login=login),
        enabled=None
        if not config.profile.has_disabled_flag
        else not config.profile.is_account_disabled(entry.attributes),
        vcard=render_vcard(config.vcard_map, attributes) if config.vcard_map is not None else None,
        uid=text(entry, "uid") or text(entry, "sAMAccountName"),
    )


class PersonRef(Protocol):
    """What groups need of any person of the run, changed or not."""

    @property
    def key(self) -> str: ...

    @property
    def dn(self) -> str: ...

    @property
    def uid(self) -> str: ...


@dataclass(frozen=True)
class SeenPerson:
    """An entry whose change stamp says nothing changed: only what groups and removals need of it."""

    key: str
    dn: str
    uid: str


@dataclass
class Triage:
    people: list[DirectoryPerson]  # changed, new, or to be compared in full: mapped
    skipped: list[SkippedEntry]
    unchanged: list[SeenPerson]  # same stamp as last time: not mapped at all
    without_guid: int = 0
    missing_stamp: int = 0


def triage(
    entries: Iterable[Entry],
    config: SyncConfig,
    stamps: Mapping[str, str],
    *,
    full_scan: bool,
    last_read: datetime | None,
) -> Triage:
    """Map only the entries that may have changed; an unchanged stamp costs a dictionary look-up.

    stamps: directory key → change stamp stored on the linked account.
    """
    result = Triage(people=[], skipped=[], unchanged=[])
    for entry in entries:
        raw_guid = entry.first(config.guid_attribute)
        guid = config.profile.decode_guid(raw_guid, is_binary=config.guid_is_binary) if raw_guid else None
        stamp = text(entry, config.change_stamp_attribute)
        result.missing_stamp += not stamp
        if (
            not full_scan
            and guid is not None
            and stamp
            and stamps.get(guid) == stamp
            and not may_have_changed_since(stamp, last_read)
        ):
            result.unchanged.append(
                SeenPerson(key=guid, dn=entry.dn, uid=text(entry, "uid") or text(entry, "sAMAccountName"))
            )
            continue
        mapped = map_entry(entry, config)
        if isinstance(mapped, DirectoryPerson):
            result.people.append(mapped)
            result.without_guid += mapped.guid is None
        else:
            result.skipped.append(mapped)
    return result
