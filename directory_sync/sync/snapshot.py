"""The domain's side of a run, loaded once, in bulk, after the directory was read: what the planner compares.

A full read loads every synced account and group; an incremental run loads only what the changes name (their
accounts, the owners of the addresses they want, the groups they touch) plus a few counts, so its cost follows
the changes. The planner reads nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from django.db.models import Q
from django.utils import timezone

from directory_sync.ldap.search import hash_normalized, normalize_dn
from directory_sync.sync.config import SyncConfig
from directory_sync.sync.directory import DirectorySnapshot
from directory_sync.sync.groups import OU_KEY_PREFIX, MemberRef
from directory_sync.sync.people import SeenPerson
from icewarp_admin.mailserver.models import Account, Address, Group, GroupMember

CHUNK = 2000
T = TypeVar("T")


def chunked(items: Iterable[T], size: int = CHUNK) -> Iterator[list[T]]:
    """Lists of at most size items (SQLite limits the parameters of one query)."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def matching(query: Any, field: str, values: set[str], columns: tuple[str, ...]) -> Iterator[tuple[Any, ...]]:
    """Rows of query whose field is one of values (columns must include field): read whole when the query
    holds fewer rows than there are values (a first run asks about 100,000 addresses of an empty domain), else
    by IN lists."""
    if not values:
        return
    if query.count() <= len(values):
        position = columns.index(field)
        for row in query.order_by().values_list(*columns).iterator(chunk_size=5000):
            if row[position] in values:
                yield row
        return
    for batch in chunked(sorted(values)):
        yield from query.filter(**{f"{field}__anyof": batch}).order_by().values_list(*columns)


@dataclass(frozen=True, slots=True)
class LinkedAccount:
    """What a run needs of a synced account whatever the directory says: one narrow row."""

    account_id: int
    key: str
    change_stamp: str
    dn: str
    dn_hash: str
    username: str
    uid: str


@dataclass(frozen=True, slots=True)
class LocalAccount:
    """A synced account in full, for the accounts a run compares or removes."""

    id: int
    key: str
    username: str
    dn: str
    dn_hash: str
    uid: str
    change_stamp: str
    full_name: str
    auth_mode: str
    auth_value: str
    enabled: bool
    vcard: dict[str, str]
    vcard_edited_locally: bool
    mailbox_path: str
    aliases: tuple[tuple[int, str, str], ...]  # (address id, local part, source), primary first
    removal_due: datetime | None = None  # disabled, pending removal until then
    enabled_before_removal: bool = True
    kept_until: datetime | None = None  # an administrator undid its removal: kept until then

    @property
    def primary(self) -> str:
        return self.aliases[0][1] if self.aliases else ""

    def field_values(self) -> dict[str, Any]:
        return {
            "username": self.username,
            "full_name": self.full_name,
            "auth_mode": self.auth_mode,
            "auth_value": self.auth_value,
            "enabled": self.enabled,
            "vcard": self.vcard,
            "directory_dn": self.dn,
        }


@dataclass(frozen=True, slots=True)
class Owner:
    """Who holds an address or a username now."""

    account_id: int | None
    account_key: str | None  # the owner's directory key, when it is a synced account
    description: str
    source: str = ""


@dataclass(frozen=True, slots=True)
class LocalGroup:
    id: int
    key: str
    alias: str
    name: str
    kind: str
    dn: str
    address_id: int
    change_stamp: str


@dataclass
class LocalSnapshot:
    """The domain as the planner sees it (see the module docstring for what each run loads)."""

    domain_id: int
    domain_name: str
    linked: dict[str, LinkedAccount] = field(default_factory=dict)
    linked_total: int = 0
    accounts: dict[int, LocalAccount] = field(default_factory=dict)  # by account id (those compared)
    address_owners: dict[str, Owner] = field(default_factory=dict)
    username_owners: dict[str, Owner] = field(default_factory=dict)
    groups: dict[str, LocalGroup] = field(default_factory=dict)
    groups_total: int = 0
    group_members: dict[int, dict[MemberRef, tuple[int, str]]] = field(default_factory=dict)
    nesting: dict[str, set[str]] = field(default_factory=dict)  # every synced group → its nested groups
    account_dns: dict[str, str] = field(default_factory=dict)  # normalized DN → key, accounts not read
    account_uids: dict[str, str] = field(default_factory=dict)
    group_dns: dict[str, str] = field(default_factory=dict)
    alias_owners: dict[str, int] = field(default_factory=dict)  # group alias → the address row holding it
    ou_people: list[SeenPerson] | None = None  # everyone's DN, when OU groups are derived this run
    identity_changed: bool = False
    now: datetime = field(default_factory=timezone.now)  # when it was loaded: what "due" was measured by
    due: set[str] = field(default_factory=set)  # keys of the pending removals due now (loaded every run)

    def account_of(self, key: str) -> LocalAccount | None:
        linked = self.linked.get(key)
        return self.accounts.get(linked.account_id) if linked else None


def edited_here(domain_id: int, model: type[Account] | type[Group]) -> list[str]:
    """Keys of synced objects changed here since the last run (their stamp was forgotten): each run reads them
    again, so a directory-owned value edited here is put back at the next run, not at the next full read."""
    return [
        str(key)
        for key in model.objects.filter(
            domain_id=domain_id, directory_guid__isnull=False, directory_change_stamp=""
        )
        .order_by()
        .values_list("directory_guid", flat=True)
    ]


def stored_links(domain_id: int, keys: Iterable[str]) -> dict[str, tuple[str, str]]:
    """Key → (DN hash, uid) as stored for these synced accounts: what groups know them by."""
    found: dict[str, tuple[str, str]] = {}
    for batch in chunked(sorted(set(keys))):
        for key, hashed, uid in (
            Account.objects.filter(domain_id=domain_id, directory_guid__anyof=batch)
            .order_by()
            .values_list("directory_guid", "directory_dn_hash", "directory_uid")
        ):
            found[str(key)] = (hashed, uid)
    return found


def groups_holding(domain_id: int, account_keys: Iterable[str]) -> list[str]:
    """Keys of the synced groups that hold any of these accounts now (a member renamed, moved or gone)."""
    found: set[str] = set()
    for batch in chunked(set(account_keys)):
        found.update(
            str(key)
            for key in GroupMember.objects.filter(
                account__domain_id=domain_id,
                account__directory_guid__anyof=batch,
                group__directory_guid__isnull=False,
            )
            .order_by()
            .values_list("group__directory_guid", flat=True)
        )
    return sorted(found)


def load_local(config: SyncConfig, directory: DirectorySnapshot, *, identity_changed: bool) -> LocalSnapshot:
    """What the planner needs to compare this directory snapshot with the domain (module docstring)."""
    local = LocalSnapshot(
        domain_id=config.domain_id, domain_name=config.domain_name, identity_changed=identity_changed
    )
    accounts = Account.objects.filter(domain_id=config.domain_id, directory_guid__isnull=False)
    groups = Group.objects.filter(domain_id=config.domain_id, directory_guid__isnull=False)
    local.linked_total = accounts.count()
    local.groups_total = groups.count()
    local.due = _due_removals(accounts, config, local.now)

    if directory.says_nothing_changed():
        # The counts are all the guard and the run's summary need, and the due removals, which every run
        # applies even when the directory reports nothing new.
        if local.due:
            local.linked = _linked(accounts, local.due)
            local.accounts = _full_rows(linked.account_id for linked in local.linked.values())
        return local
    read_keys = {person.key for person in directory.people}
    wanted = read_keys | {f"mail:{part}" for person in directory.people for part in person.local_parts}
    wanted |= set(directory.gone_people) | {entry.guid for entry in directory.skipped if entry.guid}
    wanted |= local.due
    everyone = directory.present_people is not None or identity_changed
    local.linked = _linked(accounts, None if everyone else wanted)
    derive_ou = (
        config.create_ou_groups
        and directory.people_search.complete
        and (directory.full or _structure_changed(directory, local))
    )
    if derive_ou and not directory.full and not everyone:
        local.linked = _linked(accounts, None)
        everyone = True

    absent = directory.absent(local.linked.keys())
    compared = {linked.account_id for key, linked in local.linked.items() if key in wanted or key in absent}
    local.accounts = _full_rows(compared)
    local.address_owners = _address_owners(
        config, {part for person in directory.people for part in person.local_parts}
    )
    local.username_owners = _username_owners(config, {person.username for person in directory.people})

    if derive_ou and not directory.full:
        gone = absent | set(directory.gone_people)
        local.ou_people = [
            SeenPerson(key=key, dn=linked.dn, uid=linked.uid)
            for key, linked in local.linked.items()
            if key not in read_keys and key not in gone
        ]

    _load_groups(local, config, directory, groups, derive_ou=derive_ou)
    if not directory.full:
        _resolve_unread_members(local, config, directory, read_keys)
    return local


def _due_removals(accounts: Any, config: SyncConfig, now: datetime) -> set[str]:
    """Keys of the pending removals whose date has passed (every one when the domain now removes at once)."""
    pending = accounts.filter(removal_due_at__isnull=False)
    if config.removal_grace_days:
        pending = pending.filter(removal_due_at__lte=now)
    return {str(key) for key in pending.order_by().values_list("directory_guid", flat=True)}


def _linked(accounts: Any, keys: set[str] | None) -> dict[str, LinkedAccount]:
    fields = ("pk", "directory_guid", "directory_change_stamp", "directory_dn", "directory_dn_hash",
              "username", "directory_uid")  # fmt: skip
    linked: dict[str, LinkedAccount] = {}
    batches: Iterable[Any] = [accounts] if keys is None else (
        accounts.filter(directory_guid__anyof=batch) for batch in chunked(sorted(keys))
    )  # fmt: skip
    for query in batches:
        for pk, key, stamp, dn, hashed, username, uid in query.order_by().values_list(*fields):
            linked[str(key)] = LinkedAccount(pk, str(key), stamp, dn, hashed, username, uid)
    return linked


def _structure_changed(directory: DirectorySnapshot, local: LocalSnapshot) -> bool:
    """Whether this incremental run moves anyone between organizational units (new, gone or moved people)."""
    if directory.gone_people or directory.present_people is not None:
        return True
    for person in directory.people:
        linked = local.linked.get(person.key)
        if linked is None or normalize_dn(linked.dn) != normalize_dn(person.dn):
            return True
    return False


def _full_rows(account_ids: Iterable[int]) -> dict[int, LocalAccount]:
    """Full rows (with aliases) of the given accounts, in bulk."""
    rows: dict[int, tuple[Any, ...]] = {}
    aliases: dict[int, list[tuple[int, str, str]]] = {}
    fields = ("pk", "directory_guid", "username", "directory_dn", "directory_dn_hash", "directory_uid",
              "directory_change_stamp", "full_name", "auth_mode", "auth_value", "enabled", "vcard",
              "vcard_edited_locally", "mailbox_path", "removal_due_at", "enabled_before_removal",
              "removal_kept_until")  # fmt: skip
    for batch in chunked(account_ids):
        for row in Account.objects.filter(pk__anyof=batch).order_by().values_list(*fields):
            rows[row[0]] = row
        for address_id, account_id, local_part, source in (
            Address.objects.filter(account_id__in=batch)
            .order_by("account_id", "position", "id")
            .values_list("pk", "account_id", "local_part", "source")
        ):
            aliases.setdefault(account_id, []).append((address_id, local_part, source))
    return {
        pk: LocalAccount(
            id=pk,
            key=str(key or ""),
            username=username,
            dn=dn,
            dn_hash=hashed,
            uid=uid,
            change_stamp=stamp,
            full_name=name,
            auth_mode=mode,
            auth_value=value,
            enabled=enabled,
            vcard=vcard or {},
            vcard_edited_locally=edited,
            mailbox_path=mailbox,
            aliases=tuple(aliases.get(pk, [])),
            removal_due=due,
            enabled_before_removal=enabled_before,
            kept_until=kept,
        )
        for pk, (
            _,
            key,
            username,
            dn,
            hashed,
            uid,
            stamp,
            name,
            mode,
            value,
            enabled,
            vcard,
            edited,
            mailbox,
            due,
            enabled_before,
            kept,
        ) in rows.items()
    }


def _address_owners(config: SyncConfig, local_parts: Iterable[str]) -> dict[str, Owner]:
    owners: dict[str, Owner] = {}
    columns = (
        "local_part",
        "account_id",
        "account__username",
        "account__directory_guid",
        "source",
        "group__kind",
        "account__removal_due_at",
    )
    query = Address.objects.filter(domain_id=config.domain_id)
    for local_part, account_id, username, key, source, group_kind, due in matching(
        query, "local_part", set(local_parts), columns
    ):
        if account_id is not None:
            owners[local_part] = Owner(
                account_id, str(key) if key else None, _account_description(username, config, due), source
            )
        else:
            kind = "mailing list" if group_kind == Group.Kind.MAILING_LIST else "group"
            owners[local_part] = Owner(None, None, f"{kind} {local_part}@{config.domain_name}")
    return owners


def _username_owners(config: SyncConfig, usernames: Iterable[str]) -> dict[str, Owner]:
    owners: dict[str, Owner] = {}
    query = Account.objects.filter(domain_id=config.domain_id)
    for username, pk, key, due in matching(
        query, "username", set(usernames), ("username", "pk", "directory_guid", "removal_due_at")
    ):
        owners[username] = Owner(pk, str(key) if key else None, _account_description(username, config, due))
    return owners


def _account_description(username: str, config: SyncConfig, due: datetime | None) -> str:
    """An account as a conflict names it; a pending removal keeps its addresses and username until its date
    (so that a returning person gets them back), and says so."""
    described = f"account {username}@{config.domain_name}"
    if due is not None:
        described += f" (disabled, pending removal until {timezone.localtime(due).date().isoformat()})"
    return described


def _load_groups(
    local: LocalSnapshot, config: SyncConfig, directory: DirectorySnapshot, groups: Any, *, derive_ou: bool
) -> None:
    """The synced groups this run compares, their members, every nesting edge, and the owners of their
    aliases."""
    fields = ("pk", "directory_guid", "address__local_part", "name", "kind", "directory_dn", "address_id",
              "directory_change_stamp")  # fmt: skip
    if directory.full_groups or directory.present_groups is not None:
        query = groups
    else:
        keys = {group.key for group in directory.groups} | set(directory.gone_groups)
        condition = Q(directory_guid__anyof=sorted(keys))
        if derive_ou or not config.create_ou_groups:
            # OU groups are compared when derived again, and removed when the feature was switched off.
            condition |= Q(directory_guid__startswith=OU_KEY_PREFIX)
        query = groups.filter(condition)
    for pk, key, alias, name, kind, dn, address_id, stamp in query.order_by().values_list(*fields):
        local.groups[str(key)] = LocalGroup(pk, str(key), alias, name, kind, dn, address_id, stamp)

    for parent, child in (
        GroupMember.objects.filter(
            group__domain_id=config.domain_id,
            group__directory_guid__isnull=False,
            member_group__directory_guid__isnull=False,
        )
        .order_by()
        .values_list("group__directory_guid", "member_group__directory_guid")
    ):
        local.nesting.setdefault(str(parent), set()).add(str(child))

    columns = ("pk", "group_id", "account_id", "account__directory_guid", "member_group_id",
               "member_group__directory_guid", "remote_address", "source")  # fmt: skip
    members = GroupMember.objects.filter(group__domain_id=config.domain_id)
    if directory.full_groups:
        compared = list(local.groups.values())
        queries: Iterable[Any] = [members.filter(group__directory_guid__isnull=False)]
    else:
        # Only the groups read this run are compared member by member (and the OU groups when derived again);
        # the others are here to be found absent.
        read = {group.key for group in directory.groups}
        compared = [
            g
            for key, g in local.groups.items()
            if key in read or (derive_ou and key.startswith(OU_KEY_PREFIX))
        ]
        queries = (members.filter(group_id__in=batch) for batch in chunked([g.id for g in compared]))
    local.group_members = {group.id: {} for group in compared}
    for query in queries:
        for (
            pk,
            group_id,
            account_id,
            account_key,
            member_group_id,
            group_key,
            remote,
            source,
        ) in query.order_by().values_list(*columns).iterator(chunk_size=10_000):
            if account_id is not None:
                ref: MemberRef = ("account", str(account_key) if account_key else f"id:{account_id}")
            elif member_group_id is not None:
                ref = ("group", str(group_key) if group_key else f"id:{member_group_id}")
            else:
                ref = ("remote", remote)
            local.group_members[group_id][ref] = (pk, source)

    aliases = {group.alias for group in directory.groups}
    condition = Q(local_part__anyof=sorted(aliases))
    if derive_ou:
        condition |= Q(local_part__startswith="ou=")
    local.alias_owners = dict(
        Address.objects.filter(condition, domain_id=config.domain_id)
        .order_by()
        .values_list("local_part", "pk")
    )


def _resolve_unread_members(
    local: LocalSnapshot, config: SyncConfig, directory: DirectorySnapshot, read_keys: set[str]
) -> None:
    """Members the groups read this run name by DN or uid, found among the synced objects not read this run.

    A synced object read this run answers to its new DN only; one gone answers to nothing: a member DN
    resolves to whatever has that DN now, whether or not the group entry changed.
    """
    gone = set(directory.gone_people) | directory.absent(local.linked.keys())
    read_dns = {normalize_dn(person.dn) for person in directory.people}
    read_dns |= {normalize_dn(entry.dn) for entry in directory.skipped}
    read_dns |= {normalize_dn(group.dn) for group in directory.groups}
    # Member DNs are normalized already (map_group): hashed as they are.
    wanted = {
        hash_normalized(dn): dn for group in directory.groups for dn in group.member_dns if dn not in read_dns
    }
    wanted_dns = set(wanted.values())
    read_groups = {group.key for group in directory.groups} | set(directory.gone_groups)
    accounts = Account.objects.filter(domain_id=config.domain_id, directory_guid__isnull=False).order_by()
    for batch in chunked(wanted):
        for key, dn in accounts.filter(directory_dn_hash__anyof=batch).values_list(
            "directory_guid", "directory_dn"
        ):
            normalized = normalize_dn(dn)
            if normalized in wanted_dns and str(key) not in read_keys and str(key) not in gone:
                local.account_dns[normalized] = str(key)
    # Most members are people: groups are asked only about the DNs no account answered to.
    rest = [hashed for hashed, dn in wanted.items() if dn not in local.account_dns]
    groups = Group.objects.filter(domain_id=config.domain_id, directory_guid__isnull=False).order_by()
    for batch in chunked(rest):
        for key, dn in groups.filter(directory_dn_hash__anyof=batch).values_list(
            "directory_guid", "directory_dn"
        ):
            if str(key) not in read_groups:
                local.group_dns[normalize_dn(dn)] = str(key)
    read_uids = {person.uid for person in directory.people if person.uid}
    uids = {uid for group in directory.groups for uid in group.member_uids} - read_uids
    for batch in chunked(uids):
        for key, uid in (
            Account.objects.filter(
                domain_id=config.domain_id, directory_guid__isnull=False, directory_uid__anyof=batch
            )
            .order_by()
            .values_list("directory_guid", "directory_uid")
        ):
            if str(key) not in read_keys and str(key) not in gone:
                local.account_uids[uid] = str(key)
