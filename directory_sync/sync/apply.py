"""Apply a guarded plan in one transaction, with bulk writes keyed by id; mailbox folders made beforehand."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone

from directory_sync.sync.changes import CREATE, REMOVE, RENAME, UPDATE
from directory_sync.sync.config import SyncConfig
from directory_sync.sync.groups import GroupChange, GroupPlan
from directory_sync.sync.guard import GuardDecision
from directory_sync.sync.local import chunked
from directory_sync.sync.planning import AccountChange, Plan
from icewarp_admin.mailserver.models import Account, Address, Domain, Group, GroupMember, Provenance
from icewarp_admin.mailserver.services.accounts import apply_template
from icewarp_admin.mailserver.services.mailboxes import create_mailbox, delete_mailbox

BATCH = 1000
ACCOUNT_FIELDS = ("username", "full_name", "auth_mode", "auth_value", "enabled", "vcard")


@dataclass
class Applied:
    created_ids: dict[str, int] = field(
        default_factory=dict
    )  # directory key → new account or group id (ids are unique in a directory)
    writes: int = 0


def apply_plan(
    *,
    plan: Plan,
    decision: GuardDecision,
    config: SyncConfig,
    domain: Domain,
    group_plan: GroupPlan | None = None,
    group_decision: GuardDecision | None = None,
) -> Applied:
    """Write the plan (removals only when the guard allows them), accounts then groups; all or nothing."""
    applied = Applied()
    creates = plan.of(CREATE)
    updates = plan.of(UPDATE) + plan.of(RENAME)
    removals = [change for change in plan.of(REMOVE) if decision.allows(change.key)]
    # Folders are made before the transaction (a failure rolls the rows back and removes these again).
    folders = [create_mailbox(domain_name=domain.name, username=change.person.username) for change in creates
               if change.person is not None]  # fmt: skip
    try:
        with transaction.atomic():
            now = timezone.now()
            _remove(removals)
            _update(updates, now)
            applied.created_ids = _create(creates, folders, domain, now)
            _stamp_only(plan.stamp_only, now)
            applied.writes = len(creates) + len(updates) + len(removals) + len(plan.stamp_only)
            if group_plan is not None:
                applied.writes += _apply_groups(
                    applied,
                    group_plan,
                    decision=group_decision or GuardDecision(allow_removals=True),
                    domain=domain,
                    now=now,
                )
    except BaseException:
        for folder in folders:
            delete_mailbox(relative_path=folder)
        raise
    if config.delete_all_data and removals:
        mailboxes = [change.mailbox_path for change in removals if change.mailbox_path]

        def delete_mailboxes() -> None:
            for path in mailboxes:
                delete_mailbox(relative_path=path)

        # Mail is deleted only once the removal is committed: a rollback must not cost anyone their mail.
        transaction.on_commit(delete_mailboxes)
    return applied


def _remove(removals: list[AccountChange]) -> None:
    ids = [change.object_id for change in removals if change.object_id is not None]
    for batch in chunked(ids, BATCH):
        Account.objects.filter(pk__in=batch).delete()


def _update(updates: list[AccountChange], now: Any) -> None:
    if not updates:
        return
    ids = [change.object_id for change in updates if change.object_id is not None]
    accounts = {
        account.pk: account
        for batch in chunked(ids, BATCH)
        for account in Account.objects.filter(pk__in=batch)
    }
    dropped = [address_id for change in updates for address_id in change.drop_address_ids]
    for batch in chunked(dropped, BATCH):
        Address.objects.filter(pk__in=batch).delete()

    renamed = [change for change in updates if "username" in change.fields]
    if renamed:
        # Usernames are unique per domain and may swap within one run: park them first.
        for change in renamed:
            accounts[change.object_id].username = f"~sync~{change.object_id}"  # type: ignore[index]
        parked = [accounts[change.object_id] for change in renamed]  # type: ignore[index]
        Account.objects.bulk_update(parked, ["username"], batch_size=BATCH)

    changed_fields: set[str] = {
        "directory_change_stamp",
        "directory_dn",
        "directory_guid",
        "directory_last_seen",
    }
    for change in updates:
        account, person = accounts[change.object_id], change.person  # type: ignore[index]
        assert person is not None
        for name in ACCOUNT_FIELDS:
            if name in change.fields:
                setattr(account, name, change.fields[name][1])
                changed_fields.add(name)
        account.directory_guid = person.key
        account.directory_dn = person.dn
        account.directory_change_stamp = person.change_stamp
        account.directory_last_seen = now
    Account.objects.bulk_update(list(accounts.values()), sorted(changed_fields), batch_size=BATCH)
    domain_id = next(iter(accounts.values())).domain_id
    _reorder_addresses([change for change in updates if "aliases" in change.fields], domain_id=domain_id)


def _reorder_addresses(changes: list[AccountChange], *, domain_id: int) -> None:
    """Add the new directory aliases and put every address of these accounts in the planned order."""
    if not changes:
        return
    Address.objects.bulk_create(
        (
            Address(
                domain_id=domain_id,
                local_part=local,
                account_id=change.object_id,
                source=Provenance.DIRECTORY,
            )
            for change in changes
            for local in change.add_aliases
        ),
        batch_size=BATCH,
    )
    plans = {
        change.object_id: (change.alias_order, set(change.person.local_parts if change.person else ()))
        for change in changes
    }
    touched = []
    for batch in chunked([account_id for account_id in plans if account_id is not None], BATCH):
        for address in Address.objects.filter(account_id__in=batch):
            order, from_directory = plans[address.account_id]
            position = order.index(address.local_part) if address.local_part in order else len(order)
            # A manual alias the directory now lists becomes the directory's (it will follow the directory).
            source = Provenance.DIRECTORY if address.local_part in from_directory else address.source
            if (address.position, address.source) != (position, source):
                address.position, address.source = position, source
                touched.append(address)
    Address.objects.bulk_update(touched, ["position", "source"], batch_size=BATCH)


def _create(creates: list[AccountChange], folders: list[str], domain: Domain, now: Any) -> dict[str, int]:
    if not creates:
        return {}
    template = domain.default_template
    accounts = []
    for change, folder in zip(creates, folders, strict=True):
        person = change.person
        assert person is not None
        account = Account(
            domain=domain,
            username=person.username,
            full_name=person.full_name,
            auth_mode=Account.AuthMode.DIRECTORY,
            auth_value=person.auth_value,
            vcard=person.vcard or {},
            mailbox_path=folder,
            directory_guid=person.key,
            directory_dn=person.dn,
            directory_change_stamp=person.change_stamp,
            directory_last_seen=now,
        )
        if template is not None:
            apply_template(account=account, template=template)  # on creation only
        if person.enabled is not None:
            account.enabled = person.enabled
        accounts.append(account)
    Account.objects.bulk_create(accounts, batch_size=BATCH)
    created = {change.key: account.pk for change, account in zip(creates, accounts, strict=True)}
    Address.objects.bulk_create(
        (
            Address(
                domain=domain,
                local_part=local,
                account_id=account.pk,
                position=position,
                source=Provenance.DIRECTORY,
            )
            for change, account in zip(creates, accounts, strict=True)
            if change.person is not None
            for position, local in enumerate(change.person.local_parts)
        ),
        batch_size=BATCH,
    )
    return created


def _stamp_only(rows: list[tuple[int, str, str]], now: Any) -> None:
    """Entries that changed only in attributes the console does not keep: remember the new stamp and DN."""
    accounts = [
        Account(pk=pk, directory_change_stamp=stamp, directory_dn=dn, directory_last_seen=now)
        for pk, stamp, dn in rows
    ]
    Account.objects.bulk_update(
        accounts, ["directory_change_stamp", "directory_dn", "directory_last_seen"], batch_size=BATCH
    )


def _apply_groups(
    applied: Applied, plan: GroupPlan, *, decision: GuardDecision, domain: Domain, now: Any
) -> int:
    """Groups after accounts (members are resolved to the accounts this run created): removals, renames,
    creations, then the membership differences."""
    removals = [change for change in plan.of(REMOVE) if decision.allows(change.key)]
    removed_ids = [change.object_id for change in removals if change.object_id is not None]
    address_ids = list(Group.objects.filter(pk__in=removed_ids).values_list("address_id", flat=True))
    Group.objects.filter(pk__in=removed_ids).delete()
    Address.objects.filter(pk__in=address_ids).delete()

    updates = plan.of(UPDATE) + plan.of(RENAME)
    groups = {
        group.pk: group
        for group in Group.objects.filter(pk__in=[c.object_id for c in updates]).select_related("address")
    }
    renamed_addresses = []
    for change in updates:
        group, wanted = groups[change.object_id], change.group  # type: ignore[index]
        assert wanted is not None
        if group.address.local_part != wanted.alias:
            group.address.local_part = wanted.alias
            renamed_addresses.append(group.address)
        group.name, group.kind = wanted.name, wanted.kind
        group.directory_dn, group.directory_change_stamp, group.directory_last_seen = (
            wanted.dn,
            wanted.change_stamp,
            now,
        )
    Address.objects.bulk_update(renamed_addresses, ["local_part"], batch_size=BATCH)
    Group.objects.bulk_update(
        list(groups.values()),
        ["name", "kind", "directory_dn", "directory_change_stamp", "directory_last_seen"],
        batch_size=BATCH,
    )

    creates = plan.of(CREATE)
    addresses = [
        Address(domain=domain, local_part=change.group.alias, source=Provenance.DIRECTORY)
        for change in creates
        if change.group is not None
    ]
    Address.objects.bulk_create(addresses, batch_size=BATCH)
    new_groups = [
        Group(
            domain=domain,
            address=address,
            name=change.group.name,
            kind=change.group.kind,
            directory_guid=change.key,
            directory_dn=change.group.dn,
            directory_change_stamp=change.group.change_stamp,
            directory_last_seen=now,
        )
        for change, address in zip(creates, addresses, strict=True)
        if change.group is not None
    ]
    Group.objects.bulk_create(new_groups, batch_size=BATCH)
    applied.created_ids.update((str(group.directory_guid), group.pk) for group in new_groups)

    dropped = [member_id for change in updates for member_id in change.remove_member_ids]
    for batch in chunked(dropped, BATCH):
        GroupMember.objects.filter(pk__in=batch).delete()
    _add_members(updates + creates, domain)
    return len(removals) + len(updates) + len(creates)


def _add_members(changes: list[GroupChange], domain: Domain) -> None:
    """Resolve member references (directory keys) to the ids they have now, after this run's creations."""
    keys = {ref[1] for change in changes for ref in change.add_members if ref[0] != "remote"}
    account_ids: dict[str, int] = {}
    group_ids: dict[str, int] = {}
    for batch in chunked(keys, BATCH):
        for key, pk in Account.objects.filter(domain=domain, directory_guid__in=batch).values_list(
            "directory_guid", "pk"
        ):
            account_ids[str(key)] = pk
        for key, pk in Group.objects.filter(domain=domain, directory_guid__in=batch).values_list(
            "directory_guid", "pk"
        ):
            group_ids[str(key)] = pk
    own_ids = dict(
        Group.objects.filter(domain=domain, directory_guid__in=[c.key for c in changes]).values_list(
            "directory_guid", "pk"
        )
    )
    members = []
    for change in changes:
        group_id = own_ids.get(change.key)
        if group_id is None:
            continue
        for kind, value in change.add_members:
            if kind == "account" and value in account_ids:
                members.append(
                    GroupMember(group_id=group_id, account_id=account_ids[value], source=Provenance.DIRECTORY)
                )
            elif kind == "group" and value in group_ids and group_ids[value] != group_id:
                members.append(
                    GroupMember(
                        group_id=group_id, member_group_id=group_ids[value], source=Provenance.DIRECTORY
                    )
                )
            elif kind == "remote":
                members.append(
                    GroupMember(group_id=group_id, remote_address=value, source=Provenance.DIRECTORY)
                )
    # A member an administrator added by hand already: the directory's copy is skipped, the manual one stays.
    GroupMember.objects.bulk_create(members, batch_size=BATCH, ignore_conflicts=True)
