"""Directory people + the domain's accounts → a plan: plain data, computed without writing anything.

The same plan serves the dry run, the preview, the history (its events) and the apply.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from directory_sync.sync.changes import CONFLICT, CREATE, REMOVE, RENAME, SKIP, UPDATE, Change, ChangeSet
from directory_sync.sync.config import SyncConfig
from directory_sync.sync.local import (
    LinkedAccount,
    LocalAccount,
    Owner,
    address_owners,
    load_accounts,
    username_owners,
)
from directory_sync.sync.people import DirectoryPerson, SeenPerson, SkippedEntry
from icewarp_admin.mailserver.models import Account, Provenance


@dataclass(frozen=True)
class AccountChange(Change):
    person: DirectoryPerson | None = None
    # What the apply does with addresses: local parts to add, address ids to drop, the final order.
    add_aliases: tuple[str, ...] = ()
    drop_address_ids: tuple[int, ...] = ()
    alias_order: tuple[str, ...] = ()
    mailbox_path: str = ""


@dataclass
class Plan(ChangeSet[AccountChange]):
    # Accounts whose entry changed only in what the console does not keep: new stamp and DN, no event.
    stamp_only: list[tuple[int, str, str]] = field(default_factory=list)
    full_scan: bool = True


@dataclass
class _Context:
    """What the planner knows while it decides, for the claim checks."""

    by_key: dict[str, DirectoryPerson]
    local: dict[int, LocalAccount]
    owners: dict[str, Owner]
    user_owners: dict[str, Owner]
    wanted_addresses: dict[str, str]  # local part → the key of the first entry that wants it
    wanted_usernames: dict[str, str]
    processed_ids: set[int]
    removing_ids: set[int]


def plan_accounts(
    *,
    people: Sequence[DirectoryPerson],
    skipped: Sequence[SkippedEntry],
    config: SyncConfig,
    full_scan: bool,
    linked: Mapping[str, LinkedAccount],
    unchanged: Sequence[SeenPerson] = (),
) -> Plan:
    """Compare what the directory says with what the domain has; only changed entries get a close look."""
    plan = Plan(full_scan=full_scan)
    by_key = _unique_people(people, plan)
    to_process = list(by_key.values())
    plan.unchanged += len(unchanged)
    present = {person.key for person in unchanged}
    adopted = _adopt_mail_keyed(to_process, linked)
    leaving = _leaving(linked, by_key.keys() | present, adopted, skipped)
    plan.changes += [
        AccountChange(
            action=SKIP, key=entry.guid or entry.dn, label=entry.label, dn=entry.dn, reason=entry.reason
        )
        for entry in skipped
    ]

    wanted_ids = {
        linked[adopted.get(p.key, p.key)].account_id
        for p in to_process
        if adopted.get(p.key, p.key) in linked
    }
    removing_ids = {linked[key].account_id for key in leaving}
    local = load_accounts(wanted_ids | removing_ids)
    local_by_key = {account.key: account for account in local.values()}
    context = _Context(
        by_key=by_key,
        local=local,
        owners=address_owners(
            config.domain_id, config.domain_name, {lp for p in to_process for lp in p.local_parts}
        ),
        user_owners=username_owners(config.domain_id, config.domain_name, {p.username for p in to_process}),
        wanted_addresses={},
        wanted_usernames={},
        processed_ids=wanted_ids,
        removing_ids=removing_ids,
    )
    for person in to_process:
        for local_part in person.local_parts:
            context.wanted_addresses.setdefault(local_part, person.key)
        context.wanted_usernames.setdefault(person.username, person.key)

    for person in to_process:
        current = local_by_key.get(adopted.get(person.key, person.key))
        problem = _claim_problem(person, current, context)
        if problem:
            plan.changes.append(_conflict(person, problem, current))
        elif current is None:
            plan.changes.append(_create(person, config))
        else:
            change = _update(person, current, config)
            if change is not None:
                plan.changes.append(change)
            else:
                plan.unchanged += 1
                if (current.change_stamp, current.dn) != (person.change_stamp, person.dn):
                    plan.stamp_only.append((current.id, person.change_stamp, person.dn))

    for key, reason in sorted(leaving.items(), key=lambda item: local_by_key[item[0]].username):
        plan.changes.append(_remove(local_by_key[key], reason, config))
    return plan


def _unique_people(people: Sequence[DirectoryPerson], plan: Plan) -> dict[str, DirectoryPerson]:
    """People by key; a second entry with a key already seen is a conflict (sorted by DN: stable)."""
    by_key: dict[str, DirectoryPerson] = {}
    for person in sorted(people, key=lambda item: item.dn.lower()):
        if person.key in by_key:
            plan.changes.append(_conflict(person, f"the directory has two entries with the id {person.key}"))
        else:
            by_key[person.key] = person
    return by_key


def _adopt_mail_keyed(
    people: Sequence[DirectoryPerson], linked: Mapping[str, LinkedAccount]
) -> dict[str, str]:
    """Accounts linked by e-mail (synced while no GUID was readable) are taken over by their entry's GUID."""
    adopted: dict[str, str] = {}
    for person in people:
        if person.guid and person.key not in linked:
            for local_part in person.local_parts:
                mail_key = f"mail:{local_part}"
                if mail_key in linked and mail_key not in adopted.values():
                    adopted[person.key] = mail_key
                    break
    return adopted


def _leaving(
    linked: Mapping[str, LinkedAccount],
    present: set[str],
    adopted: dict[str, str],
    skipped: Sequence[SkippedEntry],
) -> dict[str, str]:
    """Linked accounts whose entry is gone, no longer matches the filter, or left this domain → why."""
    taken_over = set(adopted.values())
    leaving = {
        key: "the entry is gone from the directory or no longer matches the user filter"
        for key in linked
        if key not in present and key not in taken_over
    }
    for entry in skipped:
        if entry.guid not in leaving:
            continue
        if entry.leaves_domain:
            leaving[entry.guid] = f"the entry no longer belongs here: {entry.reason}"
        else:
            # Skipped for another reason (an invalid username, say): the account stays as it is.
            del leaving[entry.guid]
    return leaving


def _claim_problem(person: DirectoryPerson, current: LocalAccount | None, context: _Context) -> str:
    """Why this person cannot take its addresses or its username (empty when it can)."""
    own_id = current.id if current else None
    for local_part in person.local_parts:
        wanted_by = context.wanted_addresses[local_part]
        if wanted_by != person.key:
            return f"{local_part} is also an address of the directory entry {context.by_key[wanted_by].dn}"
        owner = context.owners.get(local_part)
        if (
            owner is None
            or (own_id is not None and owner.account_id == own_id)
            or _released(owner, local_part, context)
        ):
            continue
        return f"{local_part} is already used by {owner.description}"
    wanted_by = context.wanted_usernames[person.username]
    if wanted_by != person.key:
        other = context.by_key[wanted_by].dn
        return f"the username {person.username} is also wanted by the directory entry {other}"
    owner = context.user_owners.get(person.username)
    if (
        owner is not None
        and owner.account_id != own_id
        and not _released(owner, None, context, person.username)
    ):
        return f"the username {person.username} is already used by {owner.description}"
    return ""


def _released(owner: Owner, local_part: str | None, context: _Context, username: str = "") -> bool:
    """Whether the current holder gives the address (or username) up in this same run."""
    if owner.account_id is None:
        return False  # a group's address
    if owner.account_id in context.removing_ids:
        return True
    if owner.account_id not in context.processed_ids or owner.source == Provenance.MANUAL:
        return False
    holder = context.by_key.get(context.local[owner.account_id].key)
    if holder is None:
        return False
    if local_part is not None:
        return local_part not in holder.local_parts
    return holder.username != username


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


def _create(person: DirectoryPerson, config: SyncConfig) -> AccountChange:
    fields: dict[str, tuple[Any, Any]] = {
        name: (None, value) for name, value in _desired_fields(person).items()
    }
    fields["aliases"] = (None, [f"{local}@{config.domain_name}" for local in person.local_parts])
    fields["directory_dn"] = (None, person.dn)
    if person.vcard is not None:
        fields["vcard"] = (None, person.vcard)
    return AccountChange(
        action=CREATE,
        key=person.key,
        label=f"{person.local_parts[0]}@{config.domain_name}",
        dn=person.dn,
        person=person,
        fields=fields,
        add_aliases=person.local_parts,
        alias_order=person.local_parts,
        reason="new in the directory",
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
