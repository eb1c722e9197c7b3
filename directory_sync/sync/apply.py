"""Apply a guarded plan in one transaction with bulk writes keyed by id; mailbox folders after the commit.

New accounts get their mailbox names before the transaction (one listing of the domain's folder) and their
folders once it committed: a rolled-back run leaves no folder behind, and a run that dies after the commit
leaves accounts whose folder the mail server makes on first use.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from directory_sync.ldap.search import dn_hash
from directory_sync.sync.changes import CREATE, REMOVE, RENAME, UPDATE
from directory_sync.sync.config import SyncConfig
from directory_sync.sync.groups import GroupChange, GroupPlan
from directory_sync.sync.guard import GuardDecision
from directory_sync.sync.planning import AccountChange, Plan
from directory_sync.sync.snapshot import chunked
from directory_sync.sync.writes import (
    allocate_ids,
    analyze,
    copy_supported,
    delete_rows,
    insert_rows,
    instances,
    update_rows,
)
from icewarp_admin.mailserver.models import Account, Address, Domain, Group, GroupMember, Provenance
from icewarp_admin.mailserver.services.mailboxes import (
    create_mailbox_folders,
    delete_mailbox,
    free_mailbox_paths,
)

ACCOUNT_FIELDS = ("username", "full_name", "auth_mode", "auth_value", "enabled", "vcard")
LINK_FIELDS = (
    "directory_guid",
    "directory_dn",
    "directory_dn_hash",
    "directory_uid",
    "directory_change_stamp",
    "directory_last_seen",
)


# Rows written in one run beyond which PostgreSQL's statistics are refreshed at once (see writes.analyze).
ANALYZE_AFTER_ROWS = 10_000
FEW_CREATIONS = 100


class FolderMaker:
    """Makes the new accounts' folders in a thread while the apply writes the database: mkdir is kernel time
    (100,000 folders take seconds here) that overlaps the database's work. A failure is reported on the run
    and the accounts stay (the mail server makes a missing folder on first use); a rolled-back apply takes
    back the folders made, which are empty."""

    def __init__(self, paths: list[str]) -> None:
        self.paths, self.error = paths, ""
        self.made: list[str] = []
        self._thread = threading.Thread(target=self._make, name="mailbox-folders", daemon=True)
        if paths:
            self._thread.start()

    def _make(self) -> None:
        try:
            create_mailbox_folders(self.paths, made=self.made)
        except OSError as error:
            self.error = (
                f"Mailbox folders could not be made ({error}); the mail server makes them on first use."
            )

    def wait(self) -> None:
        if self._thread.is_alive():
            self._thread.join()

    def undo(self) -> None:
        self.wait()
        for path in reversed(self.made):
            with contextlib.suppress(OSError):  # only an empty folder goes: never anyone's mail
                os.rmdir(os.path.join(settings.MAIL_ROOT, path))


@dataclass
class Applied:
    created_ids: dict[str, int] = field(default_factory=dict)  # directory key → new account or group id
    writes: int = 0
    folders: FolderMaker | None = None

    def wait_for_folders(self) -> str:
        """Wait until the new accounts' folders are made; a warning when they could not be."""
        if self.folders is None:
            return ""
        self.folders.wait()
        return self.folders.error


def apply_plan(
    *,
    plan: Plan,
    decision: GuardDecision,
    config: SyncConfig,
    domain: Domain,
    group_plan: GroupPlan | None = None,
    group_decision: GuardDecision | None = None,
    before_commit: Callable[[], None] | None = None,
) -> Applied:
    """Write the plan (removals only when the guard allows them), accounts then groups; all or nothing.

    before_commit runs inside the transaction (the run's change-tracking position is stored with the changes).
    """
    applied = Applied()
    creates = plan.of(CREATE)
    updates = plan.of(UPDATE) + plan.of(RENAME)
    allowed = [change for change in plan.of(REMOVE) if decision.allows(change.key)]
    removals = [change for change in allowed if change.pending_until is None]
    disabling = [change for change in allowed if change.pending_until is not None]
    mailboxes = _mailbox_paths(domain, creates)
    applied.folders = FolderMaker(list(mailboxes.values()))
    try:
        with transaction.atomic():
            now = timezone.now()
            delete_rows(Account, [change.object_id for change in removals if change.object_id is not None])
            _disable_accounts(disabling)
            _update_accounts(updates, domain, now)
            _relink(plan, now)
            applied.created_ids = _create_accounts(creates, mailboxes, domain, now)
            applied.writes = len(creates) + len(updates) + len(allowed) + len(plan.relinks)
            if group_plan is not None:
                applied.writes += _apply_groups(
                    applied, group_plan, decision=group_decision or GuardDecision(allow_removals=True),
                    domain=domain, now=now,
                )  # fmt: skip
            if before_commit is not None:
                before_commit()
    except BaseException:
        applied.folders.undo()
        raise
    memberships = sum(len(change.add_members) for change in (group_plan.changes if group_plan else []))
    if len(creates) + memberships > ANALYZE_AFTER_ROWS:
        analyze([Account, Address, Group, GroupMember])
    if config.delete_all_data:
        # Mail is deleted only once the removal is committed: a rollback must not cost anyone their mail.
        for change in removals:
            if change.mailbox_path:
                delete_mailbox(relative_path=change.mailbox_path)
    return applied


def _mailbox_paths(domain: Domain, creates: list[AccountChange]) -> dict[str, str]:
    """Directory key → the mailbox folder of each new account."""
    usernames = [change.person.username for change in creates if change.person is not None]
    if not usernames:
        return {}
    # Paths the domain's accounts hold (a renamed account keeps its folder, whose name may not exist on disk
    # yet): the candidates and their username.N variants.
    query = Account.objects.filter(domain=domain).exclude(mailbox_path="")
    if len(usernames) > FEW_CREATIONS:
        in_use = set(query.order_by().values_list("mailbox_path", flat=True))
    else:
        wanted = Q()
        for username in usernames:
            wanted |= Q(mailbox_path=f"{domain.name}/{username}") | Q(
                mailbox_path__startswith=f"{domain.name}/{username}."
            )
        in_use = set(query.filter(wanted).order_by().values_list("mailbox_path", flat=True))
    # A folder username.N of a renamed account: the listing of the domain's folder finds it.
    chosen = free_mailbox_paths(domain_name=domain.name, usernames=usernames, in_use=in_use)
    return {change.key: chosen[change.person.username] for change in creates if change.person is not None}


def _link_values(change: AccountChange, now: datetime) -> tuple[Any, ...]:
    person = change.person
    assert person is not None
    return (person.key, person.dn, dn_hash(person.dn), person.uid, person.change_stamp, now)


def _disable_accounts(changes: list[AccountChange]) -> None:
    """Removals with a grace period: disabled, pending removal, everything else kept.

    Their stamp and DN hash are forgotten: every run then reads them again by id (as accounts changed here),
    so an entry that comes back is found whatever the change tracking reports, and its return counts as a
    move, so the groups that list it are read again; meanwhile no group member resolves to them.
    """
    update_rows(
        Account,
        ["enabled", "enabled_before_removal", "removal_due_at", "removal_kept_until",
         "directory_change_stamp", "directory_dn_hash"],
        [(change.object_id, False, change.fields.get("enabled", (False, False))[0], change.pending_until,
          None, "", "") for change in changes if change.object_id is not None],
    )  # fmt: skip


def _update_accounts(updates: list[AccountChange], domain: Domain, now: datetime) -> None:
    if not updates:
        return
    delete_rows(Address, [address_id for change in updates for address_id in change.drop_address_ids])
    renamed = [change for change in updates if "username" in change.fields and change.object_id is not None]
    # Usernames are unique per domain and may swap within one run: park them first.
    update_rows(
        Account, ["username"], [(change.object_id, f"~sync~{change.object_id}") for change in renamed]
    )
    by_fields: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
    for change in updates:
        names = tuple(name for name in ACCOUNT_FIELDS if name in change.fields)
        values = tuple(change.fields[name][1] for name in names)
        by_fields.setdefault(names, []).append((change.object_id, *values, *_link_values(change, now)))
    for names, rows in by_fields.items():
        update_rows(Account, [*names, *LINK_FIELDS], rows)
    # Entries back within their grace period (or kept by an undo) are ordinary synced accounts again.
    update_rows(
        Account,
        ["removal_due_at", "removal_kept_until"],
        [(change.object_id, None, None) for change in updates
         if change.object_id is not None and {"removal_due_at", "removal_kept_until"} & change.fields.keys()],
    )  # fmt: skip
    # An account the directory adopted signs in by a bind from now on: its local hash goes (rules §9: no
    # password of a directory account is kept here).
    adopted = [change.object_id for change in updates if "auth_mode" in change.fields and change.object_id]
    if adopted:
        Account.objects.filter(pk__in=adopted, auth_mode=Account.AuthMode.DIRECTORY).exclude(
            password=""
        ).update(password="")
    _reorder_addresses([change for change in updates if "aliases" in change.fields], domain_id=domain.pk)


def _reorder_addresses(changes: list[AccountChange], *, domain_id: int) -> None:
    """Add the new directory aliases and put every address of these accounts in the planned order."""
    if not changes:
        return
    insert_rows(
        Address,
        ["domain", "local_part", "account", "position", "source"],
        (
            (domain_id, local, change.object_id, 0, Provenance.DIRECTORY)
            for change in changes
            for local in change.add_aliases
        ),
    )
    plans = {
        change.object_id: (change.alias_order, set(change.person.local_parts if change.person else ()))
        for change in changes
    }
    touched = []
    for batch in chunked([account_id for account_id in plans if account_id is not None]):
        for pk, account_id, local_part, position, source in (
            Address.objects.filter(account_id__in=batch)
            .order_by()
            .values_list("pk", "account_id", "local_part", "position", "source")
        ):
            order, from_directory = plans[account_id]
            wanted = order.index(local_part) if local_part in order else len(order)
            # A manual alias the directory now lists becomes the directory's (it will follow the directory).
            provenance = Provenance.DIRECTORY if local_part in from_directory else source
            if (position, source) != (wanted, provenance):
                touched.append((pk, wanted, provenance))
    update_rows(Address, ["position", "source"], touched)


def _relink(plan: Plan, now: datetime) -> None:
    """Entries that changed only in what the console does not show: remember the new stamp, DN and uid."""
    update_rows(
        Account,
        [
            "directory_change_stamp",
            "directory_dn",
            "directory_dn_hash",
            "directory_uid",
            "directory_last_seen",
        ],
        (
            (relink.account_id, relink.change_stamp, relink.dn, dn_hash(relink.dn), relink.uid, now)
            for relink in plan.relinks
        ),
    )


def _create_accounts(
    creates: list[AccountChange], mailboxes: dict[str, str], domain: Domain, now: datetime
) -> dict[str, int]:
    people = [change.person for change in creates if change.person is not None]
    if not people:
        return {}
    template = domain.default_template
    defaults = Account(domain=domain)
    if template is not None:
        from icewarp_admin.mailserver.services.accounts import apply_template

        apply_template(account=defaults, template=template)  # on creation only
    names = ["domain", "username", "full_name", "auth_mode", "auth_value", "password", "enabled", "quota_mb",
             "max_message_kb", "services", "vcard", "vcard_edited_locally", "mailbox_path", "created_at",
             "updated_at", *LINK_FIELDS]  # fmt: skip

    def row(person: Any) -> tuple[Any, ...]:
        enabled = defaults.enabled if person.enabled is None else person.enabled
        return (
            domain.pk, person.username, person.full_name, Account.AuthMode.DIRECTORY, person.auth_value, "",
            enabled, defaults.quota_mb, defaults.max_message_kb, list(defaults.services), person.vcard or {},
            False, mailboxes[person.key], now, now, person.key, person.dn, dn_hash(person.dn), person.uid,
            person.change_stamp, now,
        )  # fmt: skip

    if copy_supported():
        ids = allocate_ids(Account, len(people))
        insert_rows(
            Account, ["id", *names], ((pk, *row(person)) for pk, person in zip(ids, people, strict=True))
        )
        created = {person.key: pk for pk, person in zip(ids, people, strict=True)}
    else:
        accounts = instances(Account, names, (row(person) for person in people))
        Account.objects.bulk_create(accounts, batch_size=1000)
        created = {person.key: int(account.pk) for person, account in zip(people, accounts, strict=True)}
    insert_rows(
        Address,
        ["domain", "local_part", "account", "position", "source"],
        (
            (domain.pk, local, created[person.key], position, Provenance.DIRECTORY)
            for person in people
            for position, local in enumerate(person.local_parts)
        ),
    )
    return created


def _apply_groups(
    applied: Applied, plan: GroupPlan, *, decision: GuardDecision, domain: Domain, now: datetime
) -> int:
    """Groups after accounts (members are resolved to the accounts this run created): removals, renames,
    creations, then the membership differences."""
    removals = [change for change in plan.of(REMOVE) if decision.allows(change.key)]
    removed_ids = [change.object_id for change in removals if change.object_id is not None]
    address_ids = list(
        Group.objects.filter(pk__anyof=removed_ids).order_by().values_list("address_id", flat=True)
    )
    delete_rows(Group, removed_ids)
    delete_rows(Address, address_ids)

    updates = plan.of(UPDATE) + plan.of(RENAME)
    current = dict(
        Group.objects.filter(pk__anyof=[change.object_id for change in updates])
        .order_by()
        .values_list("pk", "address_id")
    )
    update_rows(
        Address,
        ["local_part"],
        [(current[change.object_id], change.group.alias) for change in updates
         if change.group is not None and change.object_id is not None and "alias" in change.fields],
    )  # fmt: skip
    update_rows(
        Group,
        ["name", "kind", "directory_guid", "directory_dn", "directory_dn_hash", "directory_change_stamp",
         "directory_last_seen"],
        [(change.object_id, change.group.name, change.group.kind, change.key, change.group.dn,
          dn_hash(change.group.dn), change.group.change_stamp, now)
         for change in updates if change.group is not None],
    )  # fmt: skip
    update_rows(
        Group,
        ["directory_change_stamp", "directory_dn", "directory_dn_hash", "directory_last_seen"],
        [(group_id, stamp, dn, dn_hash(dn), now) for group_id, stamp, dn in plan.restamped],
    )

    creates = [change for change in plan.of(CREATE) if change.group is not None]
    group_ids = _create_groups(creates, domain, now)
    accounts_created = dict(applied.created_ids)
    applied.created_ids.update(group_ids)

    delete_rows(GroupMember, [member_id for change in updates for member_id in change.remove_member_ids])
    _add_members(updates + creates, domain, accounts=accounts_created, groups=group_ids)
    return len(removals) + len(updates) + len(creates) + len(plan.restamped)


def _create_groups(creates: list[GroupChange], domain: Domain, now: datetime) -> dict[str, int]:
    if not creates:
        return {}
    groups = [change.group for change in creates if change.group is not None]
    if copy_supported():
        address_ids = allocate_ids(Address, len(groups))
        insert_rows(
            Address,
            ["id", "domain", "local_part", "position", "source"],
            (
                (pk, domain.pk, group.alias, 0, Provenance.DIRECTORY)
                for pk, group in zip(address_ids, groups, strict=True)
            ),
        )
        group_ids = allocate_ids(Group, len(groups))
        insert_rows(
            Group,
            ["id", "domain", "address", "name", "kind", "description", "created_at", "updated_at",
             *LINK_FIELDS[:3], "directory_change_stamp", "directory_last_seen"],
            ((pk, domain.pk, address_id, group.name, group.kind, "", now, now, group.key, group.dn,
              dn_hash(group.dn), group.change_stamp, now)
             for pk, address_id, group in zip(group_ids, address_ids, groups, strict=True)),
        )  # fmt: skip
        return {group.key: pk for pk, group in zip(group_ids, groups, strict=True)}
    addresses = [
        Address(domain=domain, local_part=group.alias, source=Provenance.DIRECTORY) for group in groups
    ]
    Address.objects.bulk_create(addresses, batch_size=1000)
    rows = [
        Group(
            domain=domain,
            address=address,
            name=group.name,
            kind=group.kind,
            directory_guid=group.key,
            directory_dn=group.dn,
            directory_dn_hash=dn_hash(group.dn),
            directory_change_stamp=group.change_stamp,
            directory_last_seen=now,
        )
        for group, address in zip(groups, addresses, strict=True)
    ]
    Group.objects.bulk_create(rows, batch_size=1000)
    return {group.key: int(row.pk) for group, row in zip(groups, rows, strict=True)}


def _add_members(
    changes: list[GroupChange], domain: Domain, *, accounts: dict[str, int], groups: dict[str, int]
) -> None:
    """Resolve member references (directory keys) to the ids they have now, after this run's creations.

    accounts, groups: the ids this run created, by key; the others are looked up.
    """
    group_ids = dict(groups)
    group_ids.update((change.key, change.object_id) for change in changes if change.object_id is not None)
    wanted_accounts = {value for change in changes for kind, value in change.add_members if kind == "account"}
    wanted_groups = {value for change in changes for kind, value in change.add_members if kind == "group"}
    account_ids = {key: accounts[key] for key in wanted_accounts if key in accounts}
    account_ids.update(_ids_by_key(Account, domain, wanted_accounts - set(account_ids)))
    group_ids.update(_ids_by_key(Group, domain, wanted_groups - set(group_ids)))

    def rows() -> Iterable[tuple[Any, ...]]:
        for change in changes:
            group_id = group_ids.get(change.key)
            if group_id is None:
                continue
            for kind, value in change.add_members:
                if kind == "account" and value in account_ids:
                    yield group_id, account_ids[value], None, "", Provenance.DIRECTORY
                elif kind == "group" and value in group_ids and group_ids[value] != group_id:
                    yield group_id, None, group_ids[value], "", Provenance.DIRECTORY
                elif kind == "remote":
                    yield group_id, None, None, value, Provenance.DIRECTORY

    # Members already there (added by hand, say) are not among these: the planner compared with every member.
    insert_rows(GroupMember, ["group", "account", "member_group", "remote_address", "source"], rows())


def _ids_by_key(model: type[Account] | type[Group], domain: Domain, keys: Iterable[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for batch in chunked(sorted(keys)):
        found.update(
            (str(key), pk)
            for key, pk in model.objects.filter(domain=domain, directory_guid__anyof=batch)
            .order_by()
            .values_list("directory_guid", "pk")
        )
    return found
