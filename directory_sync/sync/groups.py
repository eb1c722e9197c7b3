"""Groups, mailing lists and OU groups (the hierarchical address book): directory → plan, without writing.

Memberships are recomputed on every run from the whole snapshot (they depend on other entries: a member
created in this run, an OU a user moved to), and only their differences are written.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError

from directory_sync.ldap.entries import Entry
from directory_sync.ldap.filters import DnError, dn_rdns, join_rdns
from directory_sync.ldap.search import normalize_dn
from directory_sync.rules.addresses import candidate_addresses, qualifying_local_parts
from directory_sync.sync.changes import CONFLICT, CREATE, REMOVE, RENAME, UPDATE, Change, ChangeSet
from directory_sync.sync.config import SyncConfig
from directory_sync.sync.local import primary_addresses
from directory_sync.sync.people import PersonRef, SkippedEntry, text, texts
from icewarp_admin.mailserver.models import Address, Group, GroupMember, Provenance
from icewarp_admin.mailserver.validators import normalize_local_part

OU_KEY_PREFIX = "ou:"
DEFAULT_ROOT_NAME = "Contacts"

# A member is an account or a group (by directory key) or a remote address.
MemberRef = tuple[str, str]  # ("account" | "group" | "remote", key or address)


@dataclass(frozen=True)
class DirectoryGroup:
    """What the directory says one group should look like."""

    key: str
    dn: str
    alias: str
    name: str
    kind: str
    change_stamp: str = ""
    member_dns: tuple[str, ...] = ()  # normalized
    member_uids: tuple[str, ...] = ()
    members: frozenset[MemberRef] = frozenset()  # set for OU groups directly


@dataclass(frozen=True)
class GroupChange(Change):
    group: DirectoryGroup | None = None
    add_members: frozenset[MemberRef] = frozenset()
    remove_member_ids: tuple[int, ...] = ()


class GroupPlan(ChangeSet[GroupChange]):
    pass


def ascii_alias(name: str) -> str:
    """A plain-ASCII alias part from a name: accents folded, anything else becomes a hyphen."""
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9._-]+", "-", folded).strip("-.") or "group"


def map_group(entry: Entry, config: SyncConfig, *, kind: str) -> DirectoryGroup | SkippedEntry:
    """A group entry → its alias (its address here, else its name), name (cn) and member references."""
    raw_guid = entry.first(config.guid_attribute)
    guid = config.profile.decode_guid(raw_guid, is_binary=config.guid_is_binary) if raw_guid else None
    name = text(entry, "cn") or text(entry, "displayName") or entry.dn.split(",", 1)[0].split("=", 1)[-1]
    candidates = candidate_addresses(
        mail=texts(entry, "mail"), other_mailbox=[], proxy_addresses=texts(entry, "proxyAddresses")
    )
    qualified = qualifying_local_parts(candidates, config.accepted)
    if qualified.local_parts:
        alias = qualified.local_parts[0]
    elif candidates:
        reason = f"its address is not in {config.accepted.describe()}"
        return SkippedEntry(dn=entry.dn, guid=guid, label=candidates[0].address, reason=reason)
    else:
        try:
            alias = normalize_local_part(ascii_alias(name))
        except ValidationError:
            return SkippedEntry(
                dn=entry.dn, guid=guid, label=name, reason=f"no usable alias from the name {name}"
            )
    member_dns = tuple(
        normalize_dn(value) for attr in ("member", "uniqueMember") for value in texts(entry, attr)
    )
    return DirectoryGroup(
        key=guid or f"mail:{alias}",
        dn=entry.dn,
        alias=alias,
        name=name[:255],
        kind=kind,
        change_stamp=text(entry, config.change_stamp_attribute),
        member_dns=member_dns,
        member_uids=tuple(value.strip() for value in texts(entry, "memberUid")),
    )


def ou_groups(people: Sequence[PersonRef], config: SyncConfig) -> list[DirectoryGroup]:
    """The OU groups of section 7: the user in its nearest OU's group, each OU group in its parent's."""
    root_key = OU_KEY_PREFIX + "root"
    root_dn, root_name = "", config.ou_groups_root_name or DEFAULT_ROOT_NAME
    if config.ou_groups_root:
        root_rdns = dn_rdns(config.ou_groups_root)
        root_dn = join_rdns(root_rdns)
        root_key = OU_KEY_PREFIX + normalize_dn(root_dn)
        root_name = config.ou_groups_root_name or (root_rdns[0].value if root_rdns else DEFAULT_ROOT_NAME)
    names: dict[str, str] = {root_key: root_name}
    dns: dict[str, str] = {root_key: root_dn}
    members: dict[str, set[MemberRef]] = {root_key: set()}
    for person in people:
        try:
            rdns = dn_rdns(person.dn)
        except DnError:
            continue
        # OUs from the top down, each with its own DN (the tail of the person's DN, escapes kept).
        chain: list[tuple[str, str, str]] = []
        for index in range(len(rdns) - 1, 0, -1):
            if rdns[index].attribute.lower() == "ou":
                ou_dn = join_rdns(rdns[index:])
                chain.append((OU_KEY_PREFIX + normalize_dn(ou_dn), ou_dn, rdns[index].value))
        if root_dn:
            positions = [position for position, (key, _, _) in enumerate(chain) if key == root_key]
            if not positions:
                continue  # the person is not under the root unit: in no OU group
            chain = chain[positions[0] + 1 :]
        parent = root_key
        for key, ou_dn, name in chain:
            names.setdefault(key, name)
            dns.setdefault(key, ou_dn)
            members.setdefault(key, set())
            members[parent].add(("group", key))
            parent = key
        members[parent].add(("account", person.key))
    return [
        DirectoryGroup(
            key=key,
            dn=dns[key],
            alias=ou_alias(names[key], key),
            name=names[key],
            kind=Group.Kind.GROUP,
            members=frozenset(refs),
        )
        for key, refs in members.items()
        if refs  # an OU left without users disappears (and so does an empty root)
    ]


def ou_alias(name: str, key: str) -> str:
    """ou=<name>_<id>: plain ASCII, unique in the domain, the same on every run for the same unit."""
    short_id = hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest()[:6]
    return f"ou={ascii_alias(name)[:48]}_{short_id}"


@dataclass
class MemberResolver:
    """Turns the member DNs and uids of group entries into member references."""

    people_by_dn: dict[str, str]
    people_by_uid: dict[str, str]
    groups_by_dn: dict[str, str]
    addresses_by_dn: dict[str, str]
    remote_allowed: bool
    skipped_dns: frozenset[str] = frozenset()
    left_out: int = 0
    skipped: int = 0
    unresolved: int = 0

    def members(self, group: DirectoryGroup) -> frozenset[MemberRef]:
        if group.members:
            return group.members
        refs: set[MemberRef] = set()
        for dn in group.member_dns:
            if dn in self.people_by_dn:
                refs.add(("account", self.people_by_dn[dn]))
            elif dn in self.groups_by_dn:
                if self.groups_by_dn[dn] != group.key:
                    refs.add(("group", self.groups_by_dn[dn]))
            elif dn in self.addresses_by_dn:
                self._remote(refs, self.addresses_by_dn[dn])
            elif dn in self.skipped_dns:
                self.skipped += 1
            else:
                self.unresolved += 1
        for uid in group.member_uids:
            if uid in self.people_by_uid:
                refs.add(("account", self.people_by_uid[uid]))
            else:
                self.unresolved += 1
        return frozenset(refs)

    def _remote(self, refs: set[MemberRef], address: str) -> None:
        if self.remote_allowed:
            refs.add(("remote", address))
        else:
            self.left_out += 1


def resolver_for(
    *,
    people: Sequence[PersonRef],
    skipped: Sequence[SkippedEntry],
    groups: Sequence[DirectoryGroup],
    config: SyncConfig,
    local_account_dns: dict[str, str],
) -> MemberResolver:
    """People of this run first; accounts synced before (not read again) by their stored DN."""
    people_by_dn = {normalize_dn(dn): key for dn, key in local_account_dns.items()}
    people_by_dn.update({normalize_dn(person.dn): person.key for person in people})
    addresses = {normalize_dn(entry.dn): entry.addresses[0] for entry in skipped if entry.addresses}
    return MemberResolver(
        people_by_dn=people_by_dn,
        people_by_uid={person.uid: person.key for person in people if person.uid},
        groups_by_dn={normalize_dn(group.dn): group.key for group in groups},
        addresses_by_dn=addresses,
        remote_allowed=config.group_remote_members,
        skipped_dns=frozenset(normalize_dn(entry.dn) for entry in skipped),
    )


@dataclass(frozen=True)
class LocalGroup:
    id: int
    key: str
    alias: str
    name: str
    kind: str
    dn: str
    address_id: int


def plan_groups(
    *,
    groups: Sequence[DirectoryGroup],
    resolver: MemberResolver,
    config: SyncConfig,
    labels: dict[str, str],
    account_keys: Mapping[int, str],
    removing_account_keys: Iterable[str] = (),
    taken_by_accounts: Iterable[str] = (),
    ou_groups_enabled: bool = False,
    leave_ou_groups_alone: bool = False,
) -> GroupPlan:
    """Compare the directory's groups and memberships with the domain's synced groups.

    labels: directory key → the address people know the account or group by (for the events).
    """
    plan = GroupPlan()
    local = _local_groups(config.domain_id)
    if leave_ou_groups_alone:
        # The user search did not finish: OU groups cannot be derived, so they stay exactly as they are.
        local = {key: group for key, group in local.items() if not key.startswith(OU_KEY_PREFIX)}
    current_members = _current_members(local.values(), account_keys)
    alias_owner = dict(
        Address.objects.filter(domain_id=config.domain_id, local_part__in=[group.alias for group in groups])
        .values_list("local_part", "pk")
    )  # fmt: skip
    wanted_aliases: dict[str, str] = {}
    ordered = sorted(groups, key=lambda item: item.dn.lower())
    for group in ordered:
        wanted_aliases.setdefault(group.alias, group.key)
    removing = set(removing_account_keys)
    taken = set(taken_by_accounts)
    edges = _nesting_without_cycles(ordered, resolver, plan)
    labels = {**labels, **{group.key: f"{group.alias}@{config.domain_name}" for group in groups}}

    def describe(refs: Iterable[MemberRef]) -> list[str]:
        refs = list(refs)
        unknown = {value for kind, value in refs if kind == "account" and value not in labels}
        if unknown:  # members whose entry did not change this run: their address comes from the database
            labels.update(primary_addresses(config.domain_id, config.domain_name, unknown))
        return sorted(
            value if kind == "remote" else labels.get(value, f"{kind} {value}") for kind, value in refs
        )

    for group in ordered:
        existing = local.get(group.key)
        label = f"{group.alias}@{config.domain_name}"
        problem = ""
        owner = alias_owner.get(group.alias)
        if wanted_aliases[group.alias] != group.key:
            problem = f"{group.alias} is also the alias of another directory group"
        elif group.alias in taken:
            problem = f"{label} is an address of an account synced in this run"
        elif owner is not None and (existing is None or owner != existing.address_id):
            problem = f"{label} is already used by another account or group"
        if problem:
            plan.changes.append(
                GroupChange(
                    CONFLICT, group.key, label, group.dn, group=group, reason=f"{problem}; left as it was"
                )
            )
            continue
        wanted = {
            ref
            for ref in resolver.members(group)
            if not (ref[0] == "account" and ref[1] in removing)
            and not (ref[0] == "group" and ref not in edges[group.key])
        }
        have = current_members.get(existing.id, {}) if existing else {}
        added = frozenset(ref for ref in wanted if ref not in have)
        # Members added by hand stay (and are not added again); only the directory's own ones can go.
        dropped = {
            ref: member_id
            for ref, (member_id, source) in have.items()
            if ref not in wanted and source == Provenance.DIRECTORY
        }
        fields = _group_fields(existing, group, label)
        if added:
            fields["members_added"] = ([], describe(added))
        if dropped:
            fields["members_removed"] = (describe(dropped), [])
        if existing is not None and not fields:
            plan.unchanged += 1
            continue
        action = CREATE if existing is None else RENAME if "alias" in fields else UPDATE
        plan.changes.append(
            GroupChange(
                action=action,
                key=group.key,
                label=label,
                dn=group.dn,
                object_id=existing.id if existing else None,
                group=group,
                fields=fields,
                reason="new in the directory" if action == CREATE else "changed in the directory",
                add_members=added,
                remove_member_ids=tuple(dropped.values()),
            )
        )

    seen = {group.key for group in groups}
    for key, existing in sorted(local.items(), key=lambda item: item[1].alias):
        if key in seen:
            continue
        if key.startswith(OU_KEY_PREFIX) and not ou_groups_enabled:
            reason = "groups for organizational units are switched off"
        elif key.startswith(OU_KEY_PREFIX):
            reason = "the organizational unit has no synced users any more"
        else:
            reason = "the entry is gone from the directory or no longer matches the group filter"
        label = f"{existing.alias}@{config.domain_name}"
        plan.changes.append(
            GroupChange(
                REMOVE, key, label, existing.dn, existing.id, reason=reason, fields={"alias": (label, None)}
            )
        )
    if resolver.left_out:
        plan.warnings.append(
            f"{resolver.left_out} group members are not synced accounts of {config.domain_name}: left out "
            "(groups keep such members only when GROUPSUPPORTREMOTEMEMBERS is on)."
        )
    if resolver.skipped:
        plan.warnings.append(
            f"{resolver.skipped} group members are entries this run skipped (see why): they were left out."
        )
    if resolver.unresolved:
        plan.warnings.append(
            f"{resolver.unresolved} group members point at entries this run did not read (outside the DN or "
            "the user filter) and were left out."
        )
    return plan


def _nesting_without_cycles(
    groups: Sequence[DirectoryGroup], resolver: MemberResolver, plan: GroupPlan
) -> dict[str, set[MemberRef]]:
    """Nested-group references to keep: an edge that would close a loop (A in B in A) is dropped, and said."""
    reachable: dict[str, set[str]] = {group.key: set() for group in groups}
    kept: dict[str, set[MemberRef]] = {group.key: set() for group in groups}

    def reaches(start: str, target: str) -> bool:
        seen, stack = set(), [start]
        while stack:
            node = stack.pop()
            if node == target:
                return True
            if node not in seen:
                seen.add(node)
                stack.extend(reachable.get(node, ()))
        return False

    for group in groups:
        for kind, child in sorted(resolver.members(group)):
            if kind != "group":
                continue
            if reaches(child, group.key):
                plan.warnings.append(f"{group.dn} and {child} contain each other; that nesting was left out.")
                continue
            reachable[group.key].add(child)
            kept[group.key].add((kind, child))
    return kept


def _local_groups(domain_id: int) -> dict[str, LocalGroup]:
    rows = Group.objects.filter(domain_id=domain_id, directory_guid__isnull=False).values_list(
        "pk", "directory_guid", "address__local_part", "name", "kind", "directory_dn", "address_id"
    )
    return {
        str(key): LocalGroup(pk, str(key), alias, name, kind, dn, address)
        for pk, key, alias, name, kind, dn, address in rows
    }


def _group_fields(
    existing: LocalGroup | None, group: DirectoryGroup, label: str
) -> dict[str, tuple[Any, Any]]:
    if existing is None:
        return {"alias": (None, label), "name": (None, group.name), "kind": (None, group.kind)}
    fields: dict[str, tuple[Any, Any]] = {}
    for name, old, new in (
        ("alias", existing.alias, group.alias),
        ("name", existing.name, group.name),
        ("kind", existing.kind, group.kind),
    ):
        if old != new:
            fields[name] = (old, new)
    return fields


def _current_members(
    groups: Iterable[LocalGroup], account_keys: Mapping[int, str]
) -> dict[int, dict[MemberRef, tuple[int, str]]]:
    """The members of the synced groups as references → (membership id, provenance)."""
    ids = [group.id for group in groups]
    keys_by_group = {group.id: group.key for group in groups}
    current: dict[int, dict[MemberRef, tuple[int, str]]] = {group_id: {} for group_id in ids}
    for pk, group_id, account_id, member_group_id, remote, source in GroupMember.objects.filter(
        group_id__in=ids
    ).values_list("pk", "group_id", "account_id", "member_group_id", "remote_address", "source"):
        if account_id is not None:
            ref: MemberRef = ("account", account_keys.get(account_id) or f"id:{account_id}")
        elif member_group_id is not None:
            ref = ("group", keys_by_group.get(member_group_id) or f"id:{member_group_id}")
        else:
            ref = ("remote", remote)
        current[group_id][ref] = (pk, source)
    return current
