"""Directory snapshot + local snapshot → the accounts' plan: plain data, computed without reading or writing.

The same plan serves the dry run, the history (its events) and the apply.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from directory_sync.ldap.search import dn_hash
from directory_sync.sync.changes import (
    CONFLICT,
    CREATE,
    REMOVE,
    RENAME,
    SKIP,
    UPDATE,
    Change,
    ChangeSet,
    Finding,
)
from directory_sync.sync.config import SyncConfig
from directory_sync.sync.contests import (
    ACCOUNT,
    ADDRESS,
    DUPLICATE_ID,
    GIVEN,
    MOVED_ID,
    NO_CONTEXT,
    OTHER_DOMAIN,
    USERNAME,
    WITHHELD,
    ConflictContext,
    Contest,
    Decision,
    Holder,
)
from directory_sync.sync.directory import DirectorySnapshot
from directory_sync.sync.guard import GuardDecision
from directory_sync.sync.people import DirectoryPerson, SeenPerson
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
    # A conflict (or an entry skipped because its conflict was resolved "keep local"): what it is about.
    contest: Contest | None = None
    # A removal that only disables the account, pending its removal at this moment (REMOVALGRACEDAYS): the
    # guard counts it as a removal; the history records it as "Disabled, pending removal".
    pending_until: datetime | None = None

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
    context: ConflictContext = NO_CONTEXT


@dataclass(frozen=True, slots=True)
class _Claim:
    """The outcome of a person's claims: the person as it may be synced (without the addresses kept local),
    why it cannot be (problem), what removals it needs, and the "keep local" decision that skips it."""

    person: DirectoryPerson
    problem: str = ""
    needs: frozenset[str] = frozenset()
    contest: Contest | None = None
    kept: Decision | None = None
    dropped: tuple[tuple[str, int], ...] = ()  # (local part, conflict id) left out: kept local


def plan_accounts(
    *,
    directory: DirectorySnapshot,
    local: LocalSnapshot,
    config: SyncConfig,
    context: ConflictContext = NO_CONTEXT,
) -> Plan:
    """Compare what the directory says with what the domain has; only changed entries get a close look.

    context: what conflicts need beyond the snapshot (sync/contests.py), and the decisions to honour.
    """
    plan = Plan(full_scan=directory.full)
    by_key = _unique_people(
        directory.people,
        plan,
        context,
        linked_dns={key: linked.dn for key, linked in local.linked.items()},
        unchanged=directory.unchanged,
    )
    people = list(by_key.values())
    adopted = _adopt(people, local, directory)
    leaving = _leaving(directory, local, adopted)
    for key in _due(directory, local, {adopted.get(person.key, person.key) for person in people}):
        leaving.setdefault(key, "")
    departures = {
        key: _departure(account, reason, config, now=local.now)
        for key, reason in leaving.items()
        if (account := local.account_of(key)) is not None
    }
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
        # Only accounts removed now free their addresses and username: a pending removal keeps them, so that
        # a returning person gets them back (a new entry that wants them is a conflict naming the holder).
        removing={
            local.linked[key].account_id: key
            for key, change in departures.items()
            if change is not None and change.pending_until is None
        },
        context=context,
    )
    for person in people:
        for local_part in person.local_parts:
            claims.wanted_addresses.setdefault(local_part, person.key)
        claims.wanted_usernames.setdefault(person.username, person.key)

    for person in people:
        current = local.account_of(adopted.get(person.key, person.key))
        claim = _settle_claims(person, current, claims)
        person, needs = claim.person, claim.needs
        if claim.kept is not None:
            plan.changes.append(_kept_local(person, claim, current))
        elif claim.problem:
            plan.changes.append(_conflict(person, claim.problem, current, claim.contest))
        elif current is None:
            plan.changes.append(_without(_create(person, config, needs), claim.dropped, config))
        else:
            change = _update(person, current, config)
            if change is not None:
                change = _without(change, claim.dropped, config)
                plan.changes.append(replace(change, needs_removal_of=needs) if needs else change)
            else:
                plan.unchanged += 1
                link = (current.change_stamp, current.dn, current.uid, current.dn_hash)
                if link != (person.change_stamp, person.dn, person.uid, dn_hash(person.dn)):
                    plan.relinks.append(Relink(current.id, person.change_stamp, person.dn, person.uid))

    for key in sorted(departures, key=lambda key: local.linked[key].username):
        departure = departures[key]
        if departure is not None:
            plan.changes.append(departure)
    kept = sorted(
        f"{account.primary or account.username}@{config.domain_name}"
        for key in departures
        if (account := local.account_of(key)) is not None and departures[key] is None and account.kept_until
    )
    if kept:
        plan.warnings.append(
            Finding.naming(
                f"{len(kept)} accounts whose entries are missing are kept: an administrator undid their "
                "removal (each until its entry is back, or until the date on its page)",
                kept,
            )
        )
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
                contest=Contest(WITHHELD, ",".join(blocking), holders, holder_key=blocking[0]),
            )
        settled.append(change)
    plan.changes = settled
    return plan


def recreations(plan: Plan) -> list[str]:
    """Removals that the same run undoes with a creation: the same DN or an address moves to a new id.

    That is what a changed id attribute looks like when the accounts could not be linked again: the people
    stay, their mailboxes would not. The guard withholds such removals like any mass removal. So are the
    removals of accounts whose DN or address a moved id is contesting: people decide those first.
    """
    created_dns = {dn_hash(change.dn) for change in plan.of(CREATE)}
    created_addresses = {
        part for change in plan.of(CREATE) if change.person for part in change.person.local_parts
    }
    contested = {
        change.contest.holder_key
        for change in plan.changes
        if change.contest is not None and change.contest.kind == MOVED_ID
    }
    # A pending removal keeps its addresses and username: the new entry that wants them is a conflict, not a
    # creation, and says the same.
    claimed = {
        change.contest.holder_key
        for change in plan.of(CONFLICT)
        if change.object_id is None
        and change.contest is not None
        and change.contest.kind in (ADDRESS, USERNAME)
    }
    found = []
    for change in plan.of(REMOVE):
        local_part = change.label.split("@", 1)[0]
        if (
            dn_hash(change.dn) in created_dns
            or local_part in created_addresses
            or change.key in contested
            or (change.pending_until is not None and change.key in claimed)
        ):
            found.append(change.key)
    return found


def removal_counts(plan: Plan, decision: GuardDecision) -> dict[str, int]:
    """The run's removal counters: removed, and (when any) disabled pending removal; withheld ones neither."""
    allowed = [change for change in plan.of(REMOVE) if decision.allows(change.key)]
    removed = sum(change.pending_until is None for change in allowed)
    disabled = len(allowed) - removed
    return {"removed": removed, "disabled": disabled} if disabled else {"removed": removed}


def _unique_people(
    people: Sequence[DirectoryPerson],
    plan: Plan,
    context: ConflictContext,
    *,
    linked_dns: Mapping[str, str] | None = None,
    unchanged: Sequence[SeenPerson] = (),
) -> dict[str, DirectoryPerson]:
    """People by key; a second entry with a key already seen is a conflict.

    The entry at the DN of the key's linked account comes first, then by DN (a stable choice): a new entry
    carrying an existing entry's id must not take its account over. An unchanged entry of this read (not even
    mapped: its stamp is the account's) holds its key the same way.
    """
    linked_dns = linked_dns or {}
    unchanged_dns = {seen.key: seen.dn for seen in unchanged}

    def holder_first(person: DirectoryPerson) -> tuple[bool, str]:
        dn = person.dn.lower()
        return (linked_dns.get(person.key, "").lower() != dn, dn)

    by_key: dict[str, DirectoryPerson] = {}
    for person in sorted(people, key=holder_first):
        first = by_key.get(person.key)
        unchanged_holder = unchanged_dns.get(person.key)
        if first is None and (unchanged_holder is None or unchanged_holder.lower() == person.dn.lower()):
            by_key[person.key] = person
            continue
        holder_dn = first.dn if first is not None else unchanged_holder
        problem = f"the directory has two entries with the id {person.key}"
        contest = Contest(
            DUPLICATE_ID, dn_hash(person.dn), f"the directory entry {holder_dn}", holder_key=person.key
        )
        kept = context.kept_local(ACCOUNT, person.key, contest)
        if kept is not None:
            plan.changes.append(
                _kept_local(person, _Claim(person, problem, contest=contest, kept=kept), None)
            )
        else:
            plan.changes.append(_conflict(person, problem, None, contest))
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


def _due(directory: DirectorySnapshot, local: LocalSnapshot, read: set[str]) -> set[str]:
    """Pending removals whose date has passed and whose entry this run did not find: removed now, even by a
    run that read no change (an incremental run reads every pending account again by its id, as an account
    changed here: not finding it means it is still out of the DN or the filter)."""
    if directory.errors:
        return set()  # a read by id failed: an entry that is back may be among the unread
    present = read | {entry.guid for entry in directory.skipped if entry.guid and not entry.leaves_domain}
    return {key for key in local.due if key not in present and key in local.linked}


def _departure(
    account: LocalAccount, reason: str, config: SyncConfig, *, now: datetime
) -> AccountChange | None:
    """What becomes of a synced account whose entry left: disabled pending removal (the grace period),
    removed (no grace period, or its date has passed), or nothing yet (pending, or kept by an undo)."""
    grace = config.removal_grace_days
    if account.removal_due is not None:
        if grace and account.removal_due > now:
            return None  # still pending: disabled and kept until its date
        until = _day(account.removal_due)
        why = (
            f"it was pending removal until {until}, and the domain now removes at once"
            if not grace
            else f"it was disabled, pending removal until {until}; its entry did not come back"
        )
        return _remove(account, why, config)
    if account.kept_until is not None and account.kept_until > now:
        return None  # an administrator undid its removal; the run warns that it is kept
    if not grace:
        return _remove(account, reason, config)
    return _disable(account, reason, config, until=now + timedelta(days=grace))


def _day(moment: datetime) -> str:
    return timezone.localtime(moment).date().isoformat()


def _settle_claims(person: DirectoryPerson, current: LocalAccount | None, claims: _Claims) -> _Claim:
    """The person's claims after the "keep local" decisions: an address kept local is left out (while the
    entry has others), any other contest kept local skips the entry; neither is reported again."""
    dropped: list[tuple[str, int]] = []
    while True:
        problem, needs, contest = _claim_problem(person, current, claims)
        kept = claims.context.kept_local(ACCOUNT, person.key, contest)
        if kept is None or contest is None:
            return _Claim(person, problem, needs, contest, dropped=tuple(dropped))
        if contest.kind == ADDRESS and len(person.local_parts) > 1:
            parts = tuple(part for part in person.local_parts if part != contest.value)
            person = replace(person, local_parts=parts)
            dropped.append((contest.value, kept.conflict_id))
            continue
        return _Claim(person, problem, needs, contest, kept, tuple(dropped))


def _claim_problem(
    person: DirectoryPerson, current: LocalAccount | None, claims: _Claims
) -> tuple[str, frozenset[str], Contest | None]:
    """Why this person cannot take its id, addresses or username (empty when it can), the removals it needs,
    and what the conflict is about."""
    own_id = current.id if current else None
    identity = _identity_problem(person, current, claims)
    if identity is not None:
        return identity[0], frozenset(), identity[1]
    needs: set[str] = set()
    for local_part in person.local_parts:
        wanted_by = claims.wanted_addresses[local_part]
        if wanted_by != person.key:
            other = claims.by_key[wanted_by].dn
            return (
                f"{local_part} is also an address of the directory entry {other}",
                frozenset(),
                Contest(ADDRESS, local_part, f"the directory entry {other}", holder_key=wanted_by),
            )
        owner = claims.local.address_owners.get(local_part)
        if owner is None or (own_id is not None and owner.account_id == own_id):
            continue
        released = _released(owner, claims, local_part=local_part)
        if released is None:
            contest = Contest(ADDRESS, local_part, owner.description, owner.account_id, owner.account_key)
            return f"{local_part} is already used by {owner.description}", frozenset(), contest
        needs |= released
    wanted_by = claims.wanted_usernames[person.username]
    if wanted_by != person.key:
        other = claims.by_key[wanted_by].dn
        return (
            f"the username {person.username} is also wanted by the directory entry {other}",
            frozenset(),
            Contest(USERNAME, person.username, f"the directory entry {other}", holder_key=wanted_by),
        )
    owner = claims.local.username_owners.get(person.username)
    if owner is not None and owner.account_id != own_id:
        released = _released(owner, claims, username=person.username)
        if released is None:
            contest = Contest(
                USERNAME, person.username, owner.description, owner.account_id, owner.account_key
            )
            return (
                f"the username {person.username} is already used by {owner.description}",
                frozenset(),
                contest,
            )
        needs |= released
    return "", frozenset(needs), None


def _identity_problem(
    person: DirectoryPerson, current: LocalAccount | None, claims: _Claims
) -> tuple[str, Contest] | None:
    """Whether the entry's id stands in another account's way.

    Another domain: a new entry whose id is linked to an account of another domain (two domains whose DNs
    overlap). A moved id: the entry's DN is stored on another synced account of this domain, whose own entry
    was not read at another DN this run; or the id's account sees its DN change to one whose primary address a
    directory alias of another synced account holds (an id attribute reassigned to another person, a
    restored entry). Following the id would hand one person's account and mailbox to another.
    """
    context = claims.context
    if current is None and person.guid:
        other = context.elsewhere.get(person.key)
        if other is not None:
            problem = f"its directory id {person.key} is already synced to {other.description}"
            return problem, Contest(
                OTHER_DOMAIN, other.domain_name, other.description, other.account_id, other.key
            )
    if current is None and not context.by_dn:
        return None  # a first run: no synced account to stand in the way
    hashed = dn_hash(person.dn)
    if current is not None and (current.dn_hash or dn_hash(current.dn)) == hashed:
        return None
    holder: Holder | None = context.by_dn.get(hashed)
    what = "DN"
    if holder is not None and (
        holder.key == person.key or (current is not None and holder.account_id == current.id)
    ):
        holder = None
    if holder is None and current is not None and person.local_parts:
        owner = claims.local.address_owners.get(person.local_parts[0])
        if (
            owner is not None
            and owner.account_id is not None
            and owner.account_id != current.id
            and owner.account_key is not None
            and owner.source == Provenance.DIRECTORY
        ):
            holder, what = Holder(owner.account_id, owner.account_key, owner.description), "primary address"
    if holder is None or holder.key in claims.by_key:
        return None  # the holder's own entry was read elsewhere: an ordinary move
    contest = Contest(MOVED_ID, holder.key, holder.description, holder.account_id, holder.key)
    decision = context.decision(ACCOUNT, person.key, contest)
    if decision is not None and decision.resolution == GIVEN:
        return None  # people chose to follow the id
    if current is None:
        problem = (
            f"its DN belongs to {holder.description}, linked to the directory id {holder.key}: the entry "
            f"carries another id now ({person.key})"
        )
    else:
        problem = (
            f"its directory id {person.key} moved from {current.dn} to this entry, whose {what} belongs to "
            f"{holder.description} (directory id {holder.key})"
        )
    return problem, contest


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


def _conflict(
    person: DirectoryPerson, problem: str, current: LocalAccount | None = None, contest: Contest | None = None
) -> AccountChange:
    return AccountChange(
        action=CONFLICT,
        key=person.key,
        label=person.local_parts[0] if person.local_parts else person.dn,
        dn=person.dn,
        object_id=current.id if current else None,
        person=person,
        reason=f"{problem}; left as it was",
        contest=contest,
    )


def _kept_local(person: DirectoryPerson, claim: _Claim, current: LocalAccount | None) -> AccountChange:
    """An entry skipped as people resolved its conflict "keep local": said on its events, not reopened."""
    number = claim.kept.conflict_id if claim.kept else 0
    return AccountChange(
        action=SKIP,
        key=person.key,
        label=person.local_parts[0] if person.local_parts else person.dn,
        dn=person.dn,
        object_id=current.id if current else None,
        reason=f"{claim.problem}; kept local (conflict #{number}): the entry stays out",
        contest=claim.contest,
    )


def _without(
    change: AccountChange, dropped: tuple[tuple[str, int], ...], config: SyncConfig
) -> AccountChange:
    """A change's reason names the addresses left out because their conflict was resolved "keep local"."""
    if not dropped:
        return change
    left_out = ", ".join(f"{part}@{config.domain_name} (conflict #{number})" for part, number in dropped)
    return replace(change, reason=f"{change.reason}; without {left_out}: kept local")


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
    back = _back(person, current, fields)
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
    reason = back or reason
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


def _back(person: DirectoryPerson, current: LocalAccount, fields: dict[str, tuple[Any, Any]]) -> str:
    """An account whose entry is back: a pending removal is enabled again (unless the directory has the
    entry disabled, or it was disabled here before it left), an undo's protection ends. Adds the fields that
    say so; returns the reason ("" for any other account)."""
    if current.removal_due is not None:
        enabled = person.enabled if person.enabled is not None else current.enabled_before_removal
        if enabled != current.enabled:
            fields["enabled"] = (current.enabled, enabled)
        fields["removal_due_at"] = (_day(current.removal_due), None)
        if enabled:
            state = "enabled again"
        elif person.enabled is False:
            state = "it stays disabled, as the directory has it"
        else:
            state = "it stays disabled, as it was before it left"
        return (
            f"back in the directory before its removal on {_day(current.removal_due)}: the same account "
            f"linked again, {state}"
        )
    if current.kept_until is not None:
        fields["removal_kept_until"] = (_day(current.kept_until), None)
        return "back in the directory: no longer kept by the undo of its removal"
    return ""


def _remove(account: LocalAccount, reason: str, config: SyncConfig) -> AccountChange:
    """A removal; its event keeps what the account was (names, addresses, mailbox folder), from which an
    undo restores it while its mail is still on disk (services/undo.py)."""
    fields: dict[str, tuple[Any, Any]] = {"username": (account.username, None)}
    kept = {
        "full_name": account.full_name,
        "aliases": [f"{local}@{config.domain_name}" for _, local, _ in account.aliases],
        "manual_aliases": [
            f"{local}@{config.domain_name}"
            for _, local, source in account.aliases
            if source != Provenance.DIRECTORY
        ],
        "auth_value": account.auth_value,
        "mailbox_path": account.mailbox_path,
        "vcard": account.vcard,
    }
    fields |= {name: (value, None) for name, value in kept.items() if value}
    return AccountChange(
        action=REMOVE,
        key=account.key,
        label=f"{account.primary or account.username}@{config.domain_name}",
        dn=account.dn,
        object_id=account.id,
        reason=reason,
        mailbox_path=account.mailbox_path,
        fields=fields,
    )


def _disable(account: LocalAccount, reason: str, config: SyncConfig, *, until: datetime) -> AccountChange:
    """The first step of a removal with a grace period: the account is disabled and keeps everything (its
    addresses stay reserved) until the date."""
    fields: dict[str, tuple[Any, Any]] = {"removal_due_at": (None, _day(until))}
    if account.enabled:
        fields = {"enabled": (True, False), **fields}
    return AccountChange(
        action=REMOVE,
        key=account.key,
        label=f"{account.primary or account.username}@{config.domain_name}",
        dn=account.dn,
        object_id=account.id,
        reason=f"{reason}: disabled, pending removal until {_day(until)}",
        mailbox_path=account.mailbox_path,
        fields=fields,
        pending_until=until,
    )


__all__ = [
    "AccountChange",
    "LinkedAccount",
    "Plan",
    "Relink",
    "plan_accounts",
    "recreations",
    "removal_counts",
    "settle",
]
