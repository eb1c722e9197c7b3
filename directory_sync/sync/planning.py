"""Directory snapshot + local snapshot → the accounts' plan: plain data, computed without reading or writing.

The same plan serves the dry run, the history (its events) and the apply.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from directory_sync.ldap.search import dn_hash
from directory_sync.sync.changes import CONFLICT, CREATE, REMOVE, RENAME, SKIP, UPDATE, Change, ChangeSet
from directory_sync.sync.config import SyncConfig
from directory_sync.sync.directory import DirectorySnapshot
from directory_sync.sync.guard import GuardDecision
from directory_sync.sync.people import DirectoryPerson
from directory_sync.sync.snapshot import LinkedAccount, LocalAccount, LocalSnapshot, Owner
from icewarp_admin.mailserver.models import Account, Provenance


@dataclass(frozen=True, slots=True)
class AccountChange(Change):
    person: DirectoryPerson | None = None
    # What the apply does with addresses: local parts to add, address ids to drop, the final order.
    add_aliases: tuple[str, ...] = ()
    drop_address_ids: tuple[int, ...] = ()
    alias_order: tuple[str, ...] = ()
    mailbox_path: str = ""
    # Accounts whose removal in this run frees an address or username this change takes.
    needs_removal_of: frozenset[str] = frozenset()

    def event_fields(self, domain_name: str) -> dict[str, tuple[Any, Any]]:
        """The fields before → after; a creation's are made from its person when recorded (a first run plans
        100,000 of them: kept as fields, they would hold a copy of the whole directory)."""
        if self.action != CREATE or self.fields or self.person is None:
            return self.fields
        return _creation_fields(self.person, domain_name)


@dataclass(frozen=True, slots=True)
class Relink:
    """An account whose entry changed only in what the console does not show: new stamp, DN or uid."""

    account_id: int
    change_stamp: str
    dn: str
    uid: str


@dataclass
class Plan(ChangeSet[AccountChange]):
    relinks: list[Relink] = field(default_factory=list)
    full_scan: bool = True


@dataclass
class _Claims:
    """What the planner knows while it decides, for the claim checks."""

    by_key: dict[str, DirectoryPerson]
    local: LocalSnapshot
    current_of: dict[int, str]  # account id → key of the person now processed against it
    wanted_addresses: dict[str, str]  # local part → the key of the first entry that wants it
    wanted_usernames: dict[str, str]
    removing: dict[int, str]  # account id → its key, for the accounts this run removes


def plan_accounts(*, directory: DirectorySnapshot, local: LocalSnapshot, config: SyncConfig) -> Plan:
    """Compare what the directory says with what the domain has; only changed entries get a close look."""
    plan = Plan(full_scan=directory.full)
    by_key = _unique_people(directory.people, plan)
    people = list(by_key.values())
    adopted = _adopt(people, local, directory)
    leaving = _leaving(directory, local, adopted)
    plan.changes += [
        AccountChange(
            action=SKIP, key=entry.guid or entry.dn, label=entry.label, dn=entry.dn, reason=entry.reason
        )
        for entry in directory.skipped
    ]
    current_of: dict[int, str] = {}
    for person in people:
        linked = local.linked.get(adopted.get(person.key, person.key))
        if linked is not None:
            current_of[linked.account_id] = person.key
    claims = _Claims(
        by_key=by_key,
        local=local,
        current_of=current_of,
        wanted_addresses={},
        wanted_usernames={},
        removing={local.linked[key].account_id: key for key in leaving},
    )
    for person in people:
        for local_part in person.local_parts:
            claims.wanted_addresses.setdefault(local_part, person.key)
        claims.wanted_usernames.setdefault(person.username, person.key)

    for person in people:
        current = local.account_of(adopted.get(person.key, person.key))
        problem, needs = _claim_problem(person, current, claims)
        if problem:
            plan.changes.append(_conflict(person, problem, current))
        elif current is None:
            plan.changes.append(_create(person, config, needs))
        else:
            change = _update(person, current, config)
            if change is not None:
                plan.changes.append(replace(change, needs_removal_of=needs) if needs else change)
            else:
                plan.unchanged += 1
                link = (current.change_stamp, current.dn, current.uid, current.dn_hash)
                if link != (person.change_stamp, person.dn, person.uid, dn_hash(person.dn)):
                    plan.relinks.append(Relink(current.id, person.change_stamp, person.dn, person.uid))

    for key, reason in sorted(leaving.items(), key=lambda item: local.linked[item[0]].username):
        account = local.account_of(key)
        if account is not None:
            plan.changes.append(_remove(account, reason, config))
    # Synced accounts this run had no reason to look at are as they were.
    looked_at = len(current_of) + len(leaving)
    plan.unchanged += (
        max(0, local.linked_total - looked_at) if not directory.full else len(directory.unchanged)
    )
    return plan


def settle(plan: Plan, decision: GuardDecision) -> Plan:
    """After the guard: a change that needed an address or username of an account whose removal was withheld
    cannot be applied either; it becomes a conflict, and says why."""
    withheld = {change.key: change.label for change in plan.of(REMOVE) if not decision.allows(change.key)}
    if not withheld:
        return plan
    settled: list[AccountChange] = []
    for change in plan.changes:
        blocking = sorted(key for key in change.needs_removal_of if key in withheld)
        if change.action in (CREATE, UPDATE, RENAME) and blocking:
            holders = ", ".join(withheld[key] for key in blocking)
            change = replace(
                change,
                action=CONFLICT,
                reason=f"its address or username is still held by {holders}, whose removal was withheld; "
                "left as it was",
                fields={},
            )
        settled.append(change)
    plan.changes = settled
    return plan


def recreations(plan: Plan) -> list[str]:
    """Removals that the same run undoes with a creation: the same DN or an address moves to a new id.

    That is what a changed id attribute looks like when the accounts could not be linked again: the people
    stay, their mailboxes would not. The guard withholds such removals like any mass removal.
    """
    created_dns = {dn_hash(change.dn) for change in plan.of(CREATE)}
    created_addresses = {
        part for change in plan.of(CREATE) if change.person for part in change.person.local_parts
    }
    found = []
    for change in plan.of(REMOVE):
        local_part = change.label.split("@", 1)[0]
        if dn_hash(change.dn) in created_dns or local_part in created_addresses:
            found.append(change.key)
    return found


def _unique_people(people: Sequence[DirectoryPerson], plan: Plan) -> dict[str, DirectoryPerson]:
    """People by key; a second entry with a key already seen is a conflict (sorted by DN: stable)."""
    by_key: dict[str, DirectoryPerson] = {}
    for person in sorted(people, key=lambda item: item.dn.lower()):
        if person.key in by_key:
            plan.changes.append(_conflict(person, f"the directory has two entries with the id {person.key}"))
        else:
            by_key[person.key] = person
    return by_key


def _adopt(
    people: Sequence[DirectoryPerson], local: LocalSnapshot, directory: DirectorySnapshot
) -> dict[str, str]:
    """Accounts linked under another key that these people take over: person key → the account's key.

    Accounts synced while no GUID was readable are keyed by address ("mail:..."). After the id attribute
    changed, every account is keyed the old way: it is linked again to the entry with its DN, else with its
    address.
    """
    adopted: dict[str, str] = {}
    taken: set[str] = set()
    absent: set[str] = set()
    by_dn: dict[str, str] = {}
    if local.identity_changed:
        absent = directory.absent(local.linked.keys())
        by_dn = {
            linked.dn_hash or dn_hash(linked.dn): key for key, linked in local.linked.items() if key in absent
        }
    for person in people:
        if person.key in local.linked:
            continue
        candidate = None
        if person.guid:
            candidate = next(
                (f"mail:{part}" for part in person.local_parts
                 if f"mail:{part}" in local.linked and f"mail:{part}" not in taken),
                None,
            )  # fmt: skip
        if candidate is None and local.identity_changed:
            candidate = by_dn.get(dn_hash(person.dn))
            if candidate is None or candidate in taken:
                owner = next(
                    (
                        local.address_owners[part]
                        for part in person.local_parts
                        if part in local.address_owners
                    ),
                    None,
                )
                candidate = owner.account_key if owner and owner.account_key in absent else None
        if candidate is not None and candidate not in taken:
            adopted[person.key] = candidate
            taken.add(candidate)
    return adopted


def _leaving(
    directory: DirectorySnapshot, local: LocalSnapshot, adopted: Mapping[str, str]
) -> dict[str, str]:
    """Synced accounts whose entry is gone, no longer matches the filter, or left this domain → why."""
    taken_over = set(adopted.values())
    leaving = {
        key: directory.gone_people.get(
            key, "the entry is gone from the directory or no longer matches the user filter"
        )
        for key in directory.absent(local.linked.keys())
        if key not in taken_over
    }
    for entry in directory.skipped:
        if entry.guid not in local.linked:
            continue
        if entry.leaves_domain:
            leaving[entry.guid] = f"the entry no longer belongs here: {entry.reason}"
        else:
            # Skipped for another reason (an invalid username, say): the account stays as it is.
            leaving.pop(entry.guid, None)
    return leaving


def _claim_problem(
    person: DirectoryPerson, current: LocalAccount | None, claims: _Claims
) -> tuple[str, frozenset[str]]:
    """Why this person cannot take its addresses or its username (empty when it can), and the removals it
    needs."""
    own_id = current.id if current else None
    needs: set[str] = set()
    for local_part in person.local_parts:
        wanted_by = claims.wanted_addresses[local_part]
        if wanted_by != person.key:
            return (
                f"{local_part} is also an address of the directory entry {claims.by_key[wanted_by].dn}",
                frozenset(),
            )
        owner = claims.local.address_owners.get(local_part)
        if owner is None or (own_id is not None and owner.account_id == own_id):
            continue
        released = _released(owner, claims, local_part=local_part)
        if released is None:
            return f"{local_part} is already used by {owner.description}", frozenset()
        needs |= released
    wanted_by = claims.wanted_usernames[person.username]
    if wanted_by != person.key:
        other = claims.by_key[wanted_by].dn
        return f"the username {person.username} is also wanted by the directory entry {other}", frozenset()
    owner = claims.local.username_owners.get(person.username)
    if owner is not None and owner.account_id != own_id:
        released = _released(owner, claims, username=person.username)
        if released is None:
            return f"the username {person.username} is already used by {owner.description}", frozenset()
        needs |= released
    return "", frozenset(needs)


def _released(owner: Owner, claims: _Claims, *, local_part: str = "", username: str = "") -> set[str] | None:
    """Whether the current holder gives the address (or username) up in this same run: the removals that free
    it (an empty set when another change frees it), or None when it stays taken."""
    if owner.account_id is None:
        return None  # a group's address
    if owner.account_id in claims.removing:
        return {claims.removing[owner.account_id]}
    holder_key = claims.current_of.get(owner.account_id)
    if holder_key is None or owner.source == Provenance.MANUAL:
        return None
    holder = claims.by_key[holder_key]
    if local_part:
        return set() if local_part not in holder.local_parts else None
    return set() if holder.username != username else None


def _conflict(person: DirectoryPerson, problem: str, current: LocalAccount | None = None) -> AccountChange:
    return AccountChange(
        action=CONFLICT,
        key=person.key,
        label=person.local_parts[0] if person.local_parts else person.dn,
        dn=person.dn,
        object_id=current.id if current else None,
        person=person,
        reason=f"{problem}; left as it was",
    )


def _desired_fields(person: DirectoryPerson) -> dict[str, Any]:
    desired: dict[str, Any] = {
        "username": person.username,
        "full_name": person.full_name,
        "auth_mode": Account.AuthMode.DIRECTORY,
        "auth_value": person.auth_value,
    }
    if person.enabled is not None:
        desired["enabled"] = person.enabled
    return desired


def _creation_fields(person: DirectoryPerson, domain_name: str) -> dict[str, tuple[Any, Any]]:
    fields: dict[str, tuple[Any, Any]] = {
        name: (None, value) for name, value in _desired_fields(person).items()
    }
    fields["aliases"] = (None, [f"{local}@{domain_name}" for local in person.local_parts])
    fields["directory_dn"] = (None, person.dn)
    if person.vcard is not None:
        fields["vcard"] = (None, person.vcard)
    return fields


def _create(person: DirectoryPerson, config: SyncConfig, needs: frozenset[str]) -> AccountChange:
    return AccountChange(
        action=CREATE,
        key=person.key,
        label=f"{person.local_parts[0]}@{config.domain_name}",
        dn=person.dn,
        person=person,
        add_aliases=person.local_parts,
        alias_order=person.local_parts,
        reason="new in the directory",
        needs_removal_of=needs,
    )


def _update(person: DirectoryPerson, current: LocalAccount, config: SyncConfig) -> AccountChange | None:
    """The field-by-field difference, or None when the account already matches the entry."""
    existing = current.field_values()
    fields = {
        name: (existing[name], value)
        for name, value in _desired_fields(person).items()
        if existing[name] != value
    }
    vcard_owned = person.vcard is not None and (
        not current.vcard_edited_locally or config.directory_vcard_wins
    )
    if vcard_owned and current.vcard != person.vcard:
        fields["vcard"] = (current.vcard, person.vcard)

    # Aliases: the directory's in its order (primary first), then the manual ones as they were.
    manual = [local for _, local, source in current.aliases if source != Provenance.DIRECTORY]
    order = (*person.local_parts, *[local for local in manual if local not in person.local_parts])
    held = {local for _, local, _ in current.aliases}
    add = tuple(local for local in person.local_parts if local not in held)
    drop = tuple(
        address_id
        for address_id, local, source in current.aliases
        if source == Provenance.DIRECTORY and local not in person.local_parts
    )
    current_order = tuple(local for _, local, _ in current.aliases)
    adopting = tuple(local for local in manual if local in person.local_parts)  # manual → directory
    if add or drop or adopting or current_order != order:
        fields["aliases"] = (
            [f"{local}@{config.domain_name}" for local in current_order],
            [f"{local}@{config.domain_name}" for local in order],
        )
    if current.key != person.key:
        fields["directory_id"] = (current.key, person.key)
    if not fields:
        return None
    if person.dn != current.dn:
        fields["directory_dn"] = (current.dn, person.dn)
    renamed = "username" in fields or current.primary != person.local_parts[0]
    # A local edit clears the stored stamp (forget_directory_stamp): that is how it shows here.
    locally_edited = current.change_stamp == "" and person.change_stamp != ""
    reason = "changed here: put back" if locally_edited else "changed in the directory"
    if "directory_id" in fields and not current.key.startswith("mail:"):
        reason = "linked again after the id attribute changed (same DN or address)"
    return AccountChange(
        action=RENAME if renamed else UPDATE,
        key=person.key,
        label=f"{person.local_parts[0]}@{config.domain_name}",
        dn=person.dn,
        object_id=current.id,
        person=person,
        fields=fields,
        add_aliases=add,
        drop_address_ids=drop,
        alias_order=order,
        mailbox_path=current.mailbox_path,
        reason=reason,
    )


def _remove(account: LocalAccount, reason: str, config: SyncConfig) -> AccountChange:
    return AccountChange(
        action=REMOVE,
        key=account.key,
        label=f"{account.primary or account.username}@{config.domain_name}",
        dn=account.dn,
        object_id=account.id,
        reason=reason,
        mailbox_path=account.mailbox_path,
        fields={"username": (account.username, None)},
    )


__all__ = ["AccountChange", "LinkedAccount", "Plan", "Relink", "plan_accounts", "recreations", "settle"]
