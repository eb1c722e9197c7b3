"""One directory entry → the account it describes (or why it is skipped). Pure: no database, no network."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from django.core.exceptions import ValidationError

from directory_sync.ldap.entries import Entry
from directory_sync.rules.addresses import candidate_addresses, qualifying_local_parts
from directory_sync.rules.names import auth_value, directory_login, full_name, local_username
from directory_sync.rules.stamps import may_have_changed_since
from directory_sync.rules.vcard import render_vcard, rewrite_email_domains
from directory_sync.sync.changes import OBJECTS_KEPT
from directory_sync.sync.config import SyncConfig
from icewarp_admin.mailserver.validators import MAX_LOCAL_PART, normalize_username

# C0 controls but tab and line breaks, and DEL. PostgreSQL refuses NUL in text and JSON (one such value
# stopped every run of a domain); the others are never meant in a name or a phone number. A line break is kept
# where a value may have several lines (a vCard NOTE) and becomes a space in a name.
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_LINE_BREAKS = re.compile(r"[\t\n\r]+")
FULL_NAME_LENGTH = 255  # Account.full_name
KEY_LENGTH = 64  # Account.directory_guid, Account.directory_change_stamp, SyncEvent.directory_id
DIRECTORY_UID_LENGTH = 255  # Account.directory_uid


def fit(value: str, *, limit: int, field: str, cut: list[str]) -> str:
    """The value cut to what its column holds; a cut is noted in cut (field, lengths) for the run to say."""
    if len(value) <= limit:
        return value
    cut.append(f"{field}: {len(value):,} characters, the first {limit} kept")
    return value[:limit]


def clean_text(value: str) -> str:
    """A one-line value without control characters (line breaks and tabs become one space)."""
    if _CONTROLS.search(value):
        value = _CONTROLS.sub("", value)
    if "\n" in value or "\r" in value or "\t" in value:
        value = _LINE_BREAKS.sub(" ", value)
    return value


@dataclass(frozen=True, slots=True)
class TextValues:
    """An entry's text values by lower-case attribute name, cleaned of control characters.

    cleaned: the attributes that held some (the run names them, so that the source can be fixed).
    """

    values: dict[str, list[str]]
    cleaned: tuple[str, ...]

    @classmethod
    def of(cls, entry: Entry) -> TextValues:
        values: dict[str, list[str]] = {}
        cleaned: list[str] = []
        for name, raw in entry.attributes.items():
            texts: list[str] = (
                raw
                if all(type(value) is str for value in raw)
                else [  # type: ignore[assignment]
                    value for value in raw if isinstance(value, str)
                ]
            )
            if _CONTROLS.search("".join(texts)):
                texts = [_CONTROLS.sub("", value) for value in texts]
                cleaned.append(name)
            key = name.lower() if ";" not in name else name.split(";", 1)[0].lower()
            if key in values:
                values[key] = values[key] + texts
            else:
                values[key] = texts
        return cls(values, tuple(cleaned))

    def all(self, name: str) -> list[str]:
        return self.values.get(name.lower(), [])

    def first(self, name: str) -> str:
        found = self.values.get(name.lower())
        return found[0].strip() if found else ""


@dataclass(frozen=True, slots=True)
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
    cleaned: tuple[str, ...] = ()  # attributes whose control characters were removed
    truncated: tuple[str, ...] = ()  # values cut to what the account can hold, or left out: "field: why"


@dataclass(frozen=True, slots=True)
class SkippedEntry:
    dn: str
    guid: str | None
    label: str
    reason: str
    addresses: tuple[str, ...] = ()  # what the entry offered, for groups that list it as a remote member
    leaves_domain: bool = False  # no address here any more: its account goes; other skips keep the account


def login_alias(values: TextValues) -> str:
    """The login name without its realm: sAMAccountName, the UPN's user part, or uid on generic LDAP."""
    return (
        values.first("sAMAccountName")
        or values.first("userPrincipalName").split("@", 1)[0]
        or values.first("uid")
    )


def entry_key(entry: Entry, config: SyncConfig) -> str | None:
    """The entry's immutable id as our key (None when it has none)."""
    raw = entry.first(config.guid_attribute)
    if not raw:
        return None
    key = config.profile.decode_guid(raw, is_binary=config.guid_is_binary)
    return key if key and not _CONTROLS.search(key) else None


def map_entry(entry: Entry, config: SyncConfig, *, key: str | None = None) -> DirectoryPerson | SkippedEntry:
    """Apply IceWarp's rules (addresses, domains, username, login, full name, vCard) to one entry.

    key: the entry's id when the caller read it already.
    """
    guid = key if key is not None else entry_key(entry, config)
    if guid is not None and len(guid) > KEY_LENGTH:
        # A directory that hands out such ids is not one to link mailboxes by: said, not stored cut.
        return SkippedEntry(
            dn=clean_text(entry.dn), guid=None, label=clean_text(entry.dn),
            reason=f"its {config.guid_attribute} is {len(guid)} characters long (at most {KEY_LENGTH}): "
            "choose an immutable id attribute (GUIDSOURCE) such as entryUUID or objectGUID",
        )  # fmt: skip
    if _CONTROLS.search(entry.dn):
        return SkippedEntry(
            dn=clean_text(entry.dn), guid=guid, label=clean_text(entry.dn),
            reason="its DN holds control characters; fix the entry in the directory",
        )  # fmt: skip
    values = TextValues.of(entry)
    login = directory_login(
        login_source=config.login_source,
        dn=entry.dn,
        user_principal_name=values.first("userPrincipalName"),
        sam_account_name=values.first("sAMAccountName"),
    )
    candidates = candidate_addresses(
        mail=values.all("mail"),
        other_mailbox=values.all("otherMailbox"),
        proxy_addresses=values.all("proxyAddresses"),
    )
    qualified = qualifying_local_parts(
        candidates,
        config.accepted,
        login_alias=login_alias(values) if config.add_login_to_aliases else "",
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

    person_key = guid or f"mail:{qualified.local_parts[0]}"
    if len(person_key) > KEY_LENGTH:
        return SkippedEntry(
            dn=entry.dn, guid=None, label=label,
            reason=f"it has no readable {config.guid_attribute}, and its address is too long to stand in for "
            "one: give the entry an id the sync can read",
        )  # fmt: skip
    raw_username = local_username(
        source=config.username_source,
        custom_attribute_value=values.first(config.username_attribute) if config.username_attribute else "",
        cn=values.first("cn"),
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
    cut: list[str] = [
        f"address {address}: its part before the @ is longer than the {MAX_LOCAL_PART} characters an alias "
        "holds, left out"
        for address in qualified.invalid
        if len(address.rpartition("@")[0].strip()) > MAX_LOCAL_PART
    ]
    name = clean_text(
        full_name(
            display_name=values.first("displayName"),
            cn=values.first("cn"),
            given_name=values.first("givenName"),
            surname=values.first("sn"),
            username=username,
            from_given_and_sn=config.full_name_from_given_and_sn,
            vcard_sync_enabled=config.vcard_enabled,
        )
    )
    return DirectoryPerson(
        key=person_key,
        guid=guid,
        dn=entry.dn,
        # A stamp that does not fit is no stamp: the entry is compared in full at every run.
        change_stamp=stamp if len(stamp := values.first(config.change_stamp_attribute)) <= KEY_LENGTH else "",
        username=username,
        local_parts=qualified.local_parts,
        full_name=fit(name, limit=FULL_NAME_LENGTH, field="full name", cut=cut),
        auth_value=auth_value(host=config.host, login=login),
        enabled=None
        if not config.profile.has_disabled_flag
        else not config.profile.is_account_disabled(entry.attributes),
        vcard=_vcard(config, values),
        uid=_uid(values, cut),
        cleaned=values.cleaned,
        truncated=tuple(cut),
    )


def _uid(values: TextValues, cut: list[str]) -> str:
    """The login posix groups name the person by; one longer than the account keeps is not kept (cut, it would
    name someone else or nobody)."""
    uid = values.first("uid") or values.first("sAMAccountName")
    if len(uid) <= DIRECTORY_UID_LENGTH:
        return uid
    cut.append(f"uid: {len(uid):,} characters, more than the {DIRECTORY_UID_LENGTH} kept: not kept")
    return ""


def _vcard(config: SyncConfig, values: TextValues) -> dict[str, str] | None:
    if config.vcard_map is None:
        return None
    vcard = render_vcard(config.vcard_map, values.values, lower_case=True)
    if config.keep_vcard_email_domains:
        return vcard
    accepted = config.accepted
    return rewrite_email_domains(
        vcard, domain=accepted.domain, rewritten=accepted.rewritten, any_domain=accepted.any_domain
    )


class PersonRef(Protocol):
    """What groups need of any person of the run, changed or not."""

    @property
    def key(self) -> str: ...

    @property
    def dn(self) -> str: ...

    @property
    def uid(self) -> str: ...


@dataclass(frozen=True, slots=True)
class SeenPerson:
    """An entry whose change stamp says nothing changed: only what groups and removals need of it."""

    key: str
    dn: str
    uid: str


@dataclass
class Triage:
    """Entries sorted as they stream in: mapped (maybe changed), skipped, or unchanged (not even mapped).

    stamps: directory key → change stamp stored on the linked account; compare_all maps every entry.
    """

    config: SyncConfig
    stamps: Mapping[str, str]
    compare_all: bool
    last_read: datetime | None
    people: list[DirectoryPerson] = field(default_factory=list)
    skipped: list[SkippedEntry] = field(default_factory=list)
    unchanged: list[SeenPerson] = field(default_factory=list)
    without_guid: int = 0
    missing_stamp: int = 0
    missing_stamp_dns: list[str] = field(default_factory=list)  # the first OBJECTS_KEPT of them
    read: int = 0

    def add(self, entry: Entry, *, compare: bool = False, key: str | None = None) -> None:
        """Sort one entry; an unchanged stamp costs a dictionary look-up. key: its id, when read already."""
        self.read += 1
        guid = key if key is not None else entry_key(entry, self.config)
        raw_stamp = entry.first(self.config.change_stamp_attribute)
        stamp = raw_stamp.strip() if isinstance(raw_stamp, str) else ""
        if not stamp:
            self.missing_stamp += 1
            if len(self.missing_stamp_dns) < OBJECTS_KEPT:
                self.missing_stamp_dns.append(entry.dn)
        if (
            not (compare or self.compare_all)
            and guid is not None
            and stamp
            and self.stamps.get(guid) == stamp
            and not may_have_changed_since(stamp, self.last_read)
        ):
            raw_uid = entry.first("uid") or entry.first("sAMAccountName")
            uid = clean_text(raw_uid).strip() if isinstance(raw_uid, str) else ""
            # As map_entry has it: a uid longer than the account keeps names nobody.
            if len(uid) > DIRECTORY_UID_LENGTH:
                uid = ""
            self.unchanged.append(SeenPerson(key=guid, dn=entry.dn, uid=uid))
            return
        mapped = map_entry(entry, self.config, key=guid)
        if isinstance(mapped, DirectoryPerson):
            self.people.append(mapped)
            self.without_guid += mapped.guid is None
        else:
            self.skipped.append(mapped)
