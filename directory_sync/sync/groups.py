"""Groups, mailing lists and OU groups (the hierarchical address book): directory → plan, without writing.

A group's members are resolved from its member DNs and uids against what has that DN or uid now: the people
and groups read this run, else the synced objects not read (their stored DN is current). The same rule holds
whether or not the group entry changed. Only membership differences are written.
"""

from __future__ import annotations

import hashlib
import re
import sys
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError

from directory_sync.ldap.entries import Entry
from directory_sync.ldap.filters import DnError, dn_rdns, join_rdns
from directory_sync.ldap.search import normalize_dn
from directory_sync.rules.addresses import candidate_addresses, qualifying_local_parts
from directory_sync.sync.changes import (
    CONFLICT,
    CREATE,
    OU_KEY_PREFIX,
    REMOVE,
    RENAME,
    SKIP,
    UPDATE,
    Change,
    ChangeSet,
    Finding,
    MemberRef,
)
from directory_sync.sync.config import SyncConfig
from directory_sync.sync.contests import ADDRESS, GROUP, NO_CONTEXT, ConflictContext, Contest
from directory_sync.sync.people import PersonRef, SkippedEntry, TextValues, entry_key, fit
from icewarp_admin.mailserver.models import Group, Provenance
from icewarp_admin.mailserver.validators import normalize_local_part

if TYPE_CHECKING:
    from directory_sync.sync.snapshot import LocalSnapshot

DEFAULT_ROOT_NAME = "Contacts"
MEMBER_ATTRIBUTES = ("member", "uniquemember", "memberuid")
GROUP_NAME_LENGTH = 255  # Group.name


@dataclass(frozen=True, slots=True)
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
    # False when the server returned the member list only in part (an AD range read that stopped): members are
    # then only added, never taken away.
    members_complete: bool = True
    truncated: tuple[str, ...] = ()  # values cut to what the group can hold: "field: lengths"


@dataclass(frozen=True, slots=True)
class GroupChange(Change):
    group: DirectoryGroup | None = None
    add_members: frozenset[MemberRef] = frozenset()
    remove_member_ids: tuple[int, ...] = ()
    removed_members: tuple[MemberRef, ...] = ()  # the same memberships, as references (for the event)
    contest: Contest | None = None  # a conflict, or a skip of one resolved "keep local": what it is about

    def event_fields(self) -> dict[str, tuple[Any, Any]]:
        """The fields before → after, member lists included (made when recorded: a first run adds 500,000
        memberships, which the plan holds once, in add_members)."""
        fields = dict(self.fields)
        if self.add_members:
            fields["members_added"] = ([], sorted(self.add_members))
        if self.removed_members:
            fields["members_removed"] = (sorted(self.removed_members), [])
        return fields


@dataclass
class GroupPlan(ChangeSet[GroupChange]):
    # Groups whose entry changed only in what the console does not keep: new stamp and DN, no event.
    restamped: list[tuple[int, str, str]] = field(default_factory=list)


def ascii_alias(name: str) -> str:
    """A plain-ASCII alias part from a name: accents folded, anything else becomes a hyphen."""
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9._-]+", "-", folded).strip("-.") or "group"


def map_group(entry: Entry, config: SyncConfig, *, kind: str) -> DirectoryGroup | SkippedEntry:
    """A group entry → its alias (its address here, else its name), name (cn) and member references."""
    guid = entry_key(entry, config)
    values = TextValues.of(entry)
    name = values.first("cn") or values.first("displayName") or entry.dn.split(",", 1)[0].split("=", 1)[-1]
    candidates = candidate_addresses(
        mail=values.all("mail"), other_mailbox=[], proxy_addresses=values.all("proxyAddresses")
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
    cut: list[str] = []
    return DirectoryGroup(
        key=guid or f"mail:{alias}",
        dn=entry.dn,
        alias=alias,
        name=fit(name, limit=GROUP_NAME_LENGTH, field="name", cut=cut),
        kind=kind,
        change_stamp=values.first(config.change_stamp_attribute),
        # Interned: the same member in many groups is one string (500,000 memberships, 100,000 people).
        member_dns=tuple(
            sys.intern(normalize_dn(dn)) for attr in ("member", "uniqueMember") for dn in values.all(attr)
        ),
        member_uids=tuple(uid.strip() for uid in values.all("memberUid")),
        members_complete=not (entry.incomplete & set(MEMBER_ATTRIBUTES)),
        truncated=tuple(cut),
    )


def ou_groups(people: Iterable[PersonRef], config: SyncConfig) -> list[DirectoryGroup]:
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
        _ou_group(key, dns[key], names[key], refs)
        for key, refs in members.items()
        if refs  # an OU left without users disappears (and so does an empty root)
    ]


def _ou_group(key: str, dn: str, name: str, refs: set[MemberRef]) -> DirectoryGroup:
    cut: list[str] = []
    return DirectoryGroup(
        key=key,
        dn=dn,
        alias=ou_alias(name, key),
        name=fit(name, limit=GROUP_NAME_LENGTH, field="name", cut=cut),
        kind=Group.Kind.GROUP,
        members=frozenset(refs),
        truncated=tuple(cut),
    )


def ou_alias(name: str, key: str) -> str:
    """ou=<name>_<id>: plain ASCII, unique in the domain, the same on every run for the same unit."""
    short_id = hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest()[:6]
    return f"ou={ascii_alias(name)[:48]}_{short_id}"


@dataclass
class MemberResolver:
    """Turns the member DNs and uids of group entries into member references.

    Each account and group has one reference object, shared by every group that holds it (a first run resolves
    500,000 memberships of 100,000 people).
    """

    people_by_dn: dict[str, str]
    people_by_uid: dict[str, str]
    groups_by_dn: dict[str, str]
    addresses_by_dn: dict[str, str]
    remote_allowed: bool
    skipped_dns: frozenset[str] = frozenset()
    # What could not be kept, each member once: DNs or uids by why.
    left_out: set[str] = field(default_factory=set)
    skipped: set[str] = field(default_factory=set)
    unresolved: set[str] = field(default_factory=set)
    _refs: dict[str, dict[str, MemberRef]] = field(
        default_factory=lambda: {"account": {}, "group": {}, "remote": {}}
    )

    def ref(self, kind: str, value: str) -> MemberRef:
        """The one reference object of an account, group or remote address."""
        known = self._refs[kind]
        found = known.get(value)
        if found is None:
            found = known[value] = (kind, value)
        return found

    def members(self, group: DirectoryGroup) -> frozenset[MemberRef]:
        if group.members:
            return group.members
        refs: set[MemberRef] = set()
        for dn in group.member_dns:
            if dn in self.people_by_dn:
                refs.add(self.ref("account", self.people_by_dn[dn]))
            elif dn in self.groups_by_dn:
                if self.groups_by_dn[dn] != group.key:
                    refs.add(self.ref("group", self.groups_by_dn[dn]))
            elif dn in self.addresses_by_dn:
                if self.remote_allowed:
                    refs.add(self.ref("remote", self.addresses_by_dn[dn]))
                else:
                    self.left_out.add(dn)
            elif dn in self.skipped_dns:
                self.skipped.add(dn)
            else:
                self.unresolved.add(dn)
        for uid in group.member_uids:
            if uid in self.people_by_uid:
                refs.add(self.ref("account", self.people_by_uid[uid]))
            else:
                self.unresolved.add(f"uid {uid}")
        return frozenset(refs)

    def nested(self, group: DirectoryGroup) -> list[str]:
        """The keys of the groups this group names as members (for the loop check, before the plan)."""
        if group.members:
            return [value for kind, value in group.members if kind == "group"]
        return [
            self.groups_by_dn[dn]
            for dn in group.member_dns
            if dn not in self.people_by_dn and dn in self.groups_by_dn and self.groups_by_dn[dn] != group.key
        ]

    def warnings(self, domain_name: str) -> list[Finding]:
        found = []
        if self.left_out:
            found.append(
                Finding.naming(
                    f"{len(self.left_out)} group members are not synced accounts of {domain_name}: left out "
                    "(groups keep such members only when GROUPSUPPORTREMOTEMEMBERS is on)",
                    sorted(self.left_out),
                )
            )
        if self.skipped:
            found.append(
                Finding.naming(
                    f"{len(self.skipped)} group members are entries this run skipped (see why), left out",
                    sorted(self.skipped),
                    action=SKIP,
                )
            )
        if self.unresolved:
            found.append(
                Finding.naming(
                    f"{len(self.unresolved)} group members point at entries that are not synced (outside the "
                    "DN or the user filter, or gone) and were left out",
                    sorted(self.unresolved),
                )
            )
        return found


@dataclass(frozen=True)
class GroupScope:
    """What the groups read this run stand for.

    complete: every group entry of the directory was read (a full read): synced groups not among them are
    gone.
    gone: otherwise, the synced groups the directory reported as gone (deleted, moved or filtered out).
    ou_derived: the OU groups were derived again from everyone's DN this run (else they are left as they are).
    """

    complete: bool
    gone: dict[str, str]
    ou_derived: bool


def plan_groups(
    *,
    groups: Sequence[DirectoryGroup],
    resolver: MemberResolver,
    config: SyncConfig,
    local: LocalSnapshot,
    scope: GroupScope,
    removing_account_keys: Iterable[str] = (),
    taken_by_accounts: Iterable[str] = (),
    context: ConflictContext = NO_CONTEXT,
) -> GroupPlan:
    """Compare the directory's groups and memberships with the domain's synced groups.

    context: the "keep local" decisions of earlier conflicts (the group then stays out, and says why).
    """
    plan = GroupPlan()
    ordered = sorted(groups, key=lambda item: item.dn.lower())
    wanted_aliases: dict[str, str] = {}
    for group in ordered:
        wanted_aliases.setdefault(group.alias, group.key)
    removing = set(removing_account_keys)
    taken = set(taken_by_accounts)
    edges = _nesting_without_cycles(ordered, resolver, local, scope, plan)
    adopted = _adopt(ordered, local) if local.identity_changed else {}
    cut_short: list[str] = []

    for group in ordered:
        existing = local.groups.get(group.key) or adopted.get(group.key)
        label = f"{group.alias}@{config.domain_name}"
        owner = local.alias_owners.get(group.alias)
        problem, contest = "", None
        if wanted_aliases[group.alias] != group.key:
            problem = f"{group.alias} is also the alias of another directory group"
            other = wanted_aliases[group.alias]
            contest = Contest(ADDRESS, group.alias, "another directory group", holder_key=other)
        elif group.alias in taken:
            problem = f"{label} is an address of an account synced in this run"
            contest = Contest(ADDRESS, group.alias, "an account synced in this run")
        elif owner is not None and (existing is None or owner != existing.address_id):
            problem = f"{label} is already used by another account or group"
            contest = Contest(ADDRESS, group.alias, "another account or group")
        if problem:
            kept = context.kept_local(GROUP, group.key, contest)
            plan.changes.append(
                GroupChange(
                    SKIP if kept else CONFLICT, group.key, label, group.dn, existing.id if existing else None,
                    group=group, contest=contest,
                    reason=f"{problem}; kept local (conflict #{kept.conflict_id}): the entry stays out"
                    if kept else f"{problem}; left as it was",
                )
            )  # fmt: skip
            continue
        members = resolver.members(group)
        wanted = frozenset(
            ref
            for ref in members
            if not (ref[0] == "account" and ref[1] in removing)
            and not (ref[0] == "group" and ref[1] not in edges[group.key])
        )
        if len(wanted) == len(members):
            wanted = members  # the common case: one set, not two
        have = local.group_members.get(existing.id, {}) if existing else {}
        added = wanted if not have else frozenset(ref for ref in wanted if ref not in have)
        # Members added by hand stay (and are not added again); only the directory's own ones can go, and only
        # when the directory returned the whole member list.
        dropped = {
            ref: member_id
            for ref, (member_id, source) in have.items()
            if ref not in wanted and source == Provenance.DIRECTORY and group.members_complete
        }
        if not group.members_complete:
            cut_short.append(group.dn)
        fields = _group_fields(existing, group, label)
        if existing is not None and existing.key != group.key:
            fields["directory_id"] = (existing.key, group.key)
        if existing is not None and not fields and not added and not dropped:
            if existing.change_stamp != group.change_stamp:
                plan.restamped.append((existing.id, group.change_stamp, group.dn))
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
                reason="new in the directory" if action == CREATE else _why_changed(existing, group),
                add_members=added,
                remove_member_ids=tuple(dropped.values()),
                removed_members=tuple(dropped),
            )
        )

    seen = {group.key for group in groups} | {group.key for group in adopted.values()}
    for key, existing in sorted(local.groups.items(), key=lambda item: item[1].alias):
        reason = _removal_reason(key, seen, config, scope)
        if reason:
            label = f"{existing.alias}@{config.domain_name}"
            plan.changes.append(
                GroupChange(
                    REMOVE,
                    key,
                    label,
                    existing.dn,
                    existing.id,
                    reason=reason,
                    fields={"alias": (label, None)},
                )
            )
    if not scope.complete:
        # Synced groups this run had no reason to look at are as they were.
        looked_at = {group.key for group in groups if group.key in local.groups}
        looked_at |= {change.key for change in plan.changes if change.action == REMOVE}
        plan.unchanged += max(0, local.groups_total - len(looked_at))
    if cut_short:
        plan.errors.append(
            Finding.naming(
                f"The member lists of {len(cut_short)} groups came back cut short by the server: members "
                "were only added, none taken away",
                cut_short,
            )
        )
    cut = [f"{group.dn or group.name} ({'; '.join(group.truncated)})" for group in ordered if group.truncated]
    if cut:
        plan.warnings.append(
            Finding.naming(f"{len(cut)} groups hold values longer than a group keeps, cut to fit", cut)
        )
    plan.warnings += resolver.warnings(config.domain_name)
    return plan


def _adopt(groups: Sequence[DirectoryGroup], local: LocalSnapshot) -> dict[str, Any]:
    """After the id attribute changed: directory group key → the synced group linked under the old key that
    has its DN, else its alias (it is linked again, members and address kept, instead of removed and made
    new)."""
    keys = {group.key for group in groups}
    spare = [g for key, g in local.groups.items() if key not in keys and not key.startswith(OU_KEY_PREFIX)]
    by_dn = {normalize_dn(group.dn): group for group in spare}
    by_alias = {group.alias: group for group in spare}
    adopted: dict[str, Any] = {}
    used: set[str] = set()
    for group in groups:
        if group.key in local.groups:
            continue
        match = by_dn.get(normalize_dn(group.dn)) or by_alias.get(group.alias)
        if match is not None and match.key not in used:
            adopted[group.key] = match
            used.add(match.key)
    return adopted


def recreated_groups(plan: GroupPlan) -> list[str]:
    """Group removals that the same run undoes with a creation of the same alias or DN (see the accounts')."""
    created = {change.group.alias for change in plan.of(CREATE) if change.group is not None}
    created |= {normalize_dn(change.dn) for change in plan.of(CREATE)}
    return [
        change.key
        for change in plan.of(REMOVE)
        if change.label.split("@", 1)[0] in created or normalize_dn(change.dn) in created
    ]


def _why_changed(existing: Any, group: DirectoryGroup) -> str:
    if existing is not None and existing.key != group.key:
        return "linked again after the id attribute changed (same DN or address)"
    if existing is not None and existing.change_stamp == "" and group.change_stamp:
        return "changed here: put back"
    return "changed in the directory"


def _removal_reason(key: str, seen: set[str], config: SyncConfig, scope: GroupScope) -> str:
    """Why a synced group goes (empty: it stays)."""
    if key in seen:
        return ""
    if key.startswith(OU_KEY_PREFIX):
        if not config.create_ou_groups:
            return "groups for organizational units are switched off"
        return "the organizational unit has no synced users any more" if scope.ou_derived else ""
    if scope.complete:
        return "the entry is gone from the directory or no longer matches the group filter"
    return scope.gone.get(key, "")


def _nesting_without_cycles(
    groups: Sequence[DirectoryGroup],
    resolver: MemberResolver,
    local: LocalSnapshot,
    scope: GroupScope,
    plan: GroupPlan,
) -> dict[str, set[str]]:
    """Keys of the nested groups to keep: an edge that would close a loop (A in B in A) is dropped, and said.

    The groups not compared this run keep their nesting as it is here, and count for loops too.
    """
    compared = {group.key for group in groups}
    reachable: dict[str, set[str]] = {
        parent: set(children)
        for parent, children in local.nesting.items()
        if parent not in compared and not (scope.complete and not parent.startswith(OU_KEY_PREFIX))
    }
    kept: dict[str, set[str]] = {group.key: set() for group in groups}
    loops: list[str] = []

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
        for child in sorted(set(resolver.nested(group))):
            if reaches(child, group.key):
                loops.append(f"{group.dn} and {child}")
                continue
            reachable.setdefault(group.key, set()).add(child)
            kept[group.key].add(child)
    if loops:
        plan.warnings.append(
            Finding.naming(
                f"{len(loops)} pairs of groups contain each other: those nestings were left out", loops
            )
        )
    return kept


def _group_fields(existing: Any, group: DirectoryGroup, label: str) -> dict[str, tuple[Any, Any]]:
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


def resolver_for(
    *,
    people: Iterable[PersonRef],
    skipped: Sequence[SkippedEntry],
    groups: Sequence[DirectoryGroup],
    config: SyncConfig,
    local: LocalSnapshot,
) -> MemberResolver:
    """People and groups of this run by their DN now; synced objects not read this run by their stored DN."""
    people_by_dn = dict(local.account_dns)
    people_by_uid = dict(local.account_uids)
    for person in people:
        people_by_dn[sys.intern(normalize_dn(person.dn))] = person.key
        if person.uid:
            people_by_uid[person.uid] = person.key
    groups_by_dn = dict(local.group_dns)
    groups_by_dn.update((normalize_dn(group.dn), group.key) for group in groups)
    return MemberResolver(
        people_by_dn=people_by_dn,
        people_by_uid=people_by_uid,
        groups_by_dn=groups_by_dn,
        addresses_by_dn={normalize_dn(entry.dn): entry.addresses[0] for entry in skipped if entry.addresses},
        remote_allowed=config.group_remote_members,
        skipped_dns=frozenset(normalize_dn(entry.dn) for entry in skipped),
    )
