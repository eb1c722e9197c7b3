"""Resolving conflicts (the conflict centre): keep the local one, give it to the directory's entry, or link
the local account to the entry.

Each action is one transaction that changes what it says, records who, when and what on the conflict, marks
the entry to be read again and queues a run of the domain (or joins the one going on), which makes it so:
the entry synced without the contested value, with it, or as the adopted account.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from directory_sync.ldap.search import dn_hash
from directory_sync.models import SyncConflict, SyncEvent, SyncRun
from directory_sync.services.runs import begin_run
from icewarp_admin.mailserver.models import Account, Address, Domain, Group, Provenance
from icewarp_admin.mailserver.services.accounts import delete_account
from icewarp_admin.mailserver.services.addresses import ensure_address_free, remove_account_address
from icewarp_admin.mailserver.validators import normalize_local_part, normalize_username

Kind = SyncConflict.Kind
Resolution = SyncConflict.Resolution
KEEP_LOCAL, GIVE, ADOPT = "keep_local", "give", "adopt"
ACTIONS = (KEEP_LOCAL, GIVE, ADOPT)
UNCHANGED = "Nothing was changed."


@dataclass(frozen=True)
class Resolved:
    """A conflict as an action left it, and the run that makes it so (joined: one was going on already)."""

    conflict: SyncConflict
    run: SyncRun
    joined: bool


def keep_local(*, conflict_id: int, by: str) -> Resolved:
    """The local side keeps it: from now on the entry is synced without the contested address, or stays out
    (a username, an id); later runs honour the decision instead of reporting the conflict again."""
    return _resolve(conflict_id, by=by, resolution=Resolution.KEPT_LOCAL, act=_keep)


def give_to_directory(
    *, conflict_id: int, by: str, rename_to: str = "", remove_holder: bool = False
) -> Resolved:
    """The local holder gives the contested value up: a manual alias is removed; an account whose username or
    only address it is must be renamed (rename_to) or removed (remove_holder, its mailbox folder kept), as
    asked explicitly. A moved id is followed. The run then gives the entry what it wants."""

    def give(conflict: SyncConflict) -> str:
        return _give(conflict, rename_to=rename_to.strip(), remove_holder=remove_holder)

    return _resolve(conflict_id, by=by, resolution=Resolution.GIVEN, act=give)


def adopt_local(*, conflict_id: int, by: str) -> Resolved:
    """The local account becomes the entry's synced account (directory id and DN; its stamp forgotten, so the
    run compares it in full), keeping its mailbox and its id here."""
    return _resolve(conflict_id, by=by, resolution=Resolution.ADOPTED, act=_adopt)


def _resolve(conflict_id: int, *, by: str, resolution: str, act: Callable[[SyncConflict], str]) -> Resolved:
    with transaction.atomic():
        conflict = SyncConflict.objects.select_for_update().select_related("domain").get(pk=conflict_id)
        if not conflict.is_open:
            who = conflict.resolved_by or "the directory"
            when = (
                timezone.localtime(conflict.resolved_at).strftime("%Y-%m-%d %H:%M")
                if conflict.resolved_at
                else ""
            )
            raise ValidationError(
                f"This conflict is resolved already ({conflict.get_resolution_display()}, by {who} {when}). "
                f"{UNCHANGED}"
            )
        note = act(conflict)
        start = begin_run(domain=conflict.domain, trigger=SyncRun.Trigger.MANUAL, requested_by=by)
        conflict.status = SyncConflict.Status.RESOLVED
        conflict.resolution = resolution
        conflict.resolved_by, conflict.resolved_at = by, timezone.now()
        conflict.resolution_note = note + (
            f" Run #{start.run.pk} was going on already: the next run reads the entry again."
            if start.joined
            else f" Run #{start.run.pk} reads the entry again."
        )
        conflict.resolution_run = start.run
        conflict.recheck = True
        conflict.save(
            update_fields=["status", "resolution", "resolved_by", "resolved_at", "resolution_note",
                           "resolution_run", "recheck"]
        )  # fmt: skip
    return Resolved(conflict=conflict, run=start.run, joined=start.joined)


def _keep(conflict: SyncConflict) -> str:
    if conflict.kind == Kind.WITHHELD:
        raise ValidationError(
            "This entry waits for a removal the guard withheld: approve or dismiss the withheld removals on "
            f"the run's page. {UNCHANGED}"
        )
    if conflict.kind == Kind.ADDRESS:
        return (
            f"Kept {_address(conflict.domain, conflict.value)} for {conflict.holder}: the entry is synced "
            "without it (it stays out if it has no other address)."
        )
    if conflict.kind == Kind.USERNAME:
        return f"Kept the username {conflict.value} for {conflict.holder}: the entry stays out."
    if conflict.kind == Kind.MOVED_ID:
        return f"Kept the accounts as they are: the entry with the id {conflict.directory_key} stays out."
    if conflict.kind == Kind.OTHER_DOMAIN:
        return f"Kept the entry with {conflict.holder}: this domain leaves it out."
    return "The entry stays out."


def _give(conflict: SyncConflict, *, rename_to: str, remove_holder: bool) -> str:
    domain = conflict.domain
    if conflict.kind == Kind.MOVED_ID:
        return (
            f"The directory id {conflict.directory_key} is followed: its account takes the entry; the "
            f"removal of {conflict.holder}, if its entry is gone, is no longer held back, and what it holds "
            "follows once it is removed."
        )
    if conflict.kind == Kind.ADDRESS:
        address = (
            Address.objects.select_related("account").filter(domain=domain, local_part=conflict.value).first()
        )
        where = _address(domain, conflict.value)
        if address is None:
            return f"{where} is free now: the entry gets it."
        account = address.account
        if account is None:
            raise ValidationError(
                f"{where} is the address of a group, which has no other: rename or delete the group first, "
                f"then synchronize. {UNCHANGED}"
            )
        if account.is_directory_linked and address.source == Provenance.DIRECTORY:
            raise ValidationError(
                f"{where} comes from the directory for the account {account.username}@{domain.name}: change "
                f"it there. {UNCHANGED}"
            )
        if account.aliases.exclude(pk=address.pk).exists():
            remove_account_address(address=address)
            return f"Removed {where} from the account {account.username}@{domain.name}."
        return _rename_or_remove(account, rename_to=rename_to, remove=remove_holder, address=address)
    if conflict.kind == Kind.USERNAME:
        account = Account.objects.filter(domain=domain, username=conflict.value).first()
        if account is None:
            return f"The username {conflict.value} is free now: the entry gets it."
        if account.is_directory_linked:
            raise ValidationError(
                f"The username {conflict.value} belongs to an account synced from the directory: change it "
                f"there. {UNCHANGED}"
            )
        return _rename_or_remove(account, rename_to=rename_to, remove=remove_holder, address=None)
    raise ValidationError(f"{conflict.get_kind_display()}: nothing here can give it up. {UNCHANGED}")


def _rename_or_remove(account: Account, *, rename_to: str, remove: bool, address: Address | None) -> str:
    """An account that gives up its username or its only address: renamed or removed, as asked."""
    domain = account.domain
    what = (
        f"its only address {address.address}" if address is not None else f"its username {account.username}"
    )
    if remove and rename_to:
        raise ValidationError(f"Either rename {account} or remove it, not both. {UNCHANGED}")
    if remove:
        folder = account.mailbox_path
        delete_account(account=account)
        return f"Removed the account {account.username}@{domain.name} (its mailbox folder {folder} was kept)."
    if not rename_to:
        raise ValidationError(
            f"{what.capitalize()} is contested: to give it up, {account.username}@{domain.name} must be "
            f"renamed or removed. Type a new name, or tick “Remove the account”, and try again. {UNCHANGED}"
        )
    if address is not None:
        new_part = normalize_local_part(rename_to.split("@", 1)[0])
        ensure_address_free(domain=domain, local_part=new_part)
        old = address.address
        address.local_part = new_part
        address.save(update_fields=["local_part"])
        renamed = (
            f"Renamed the address {old} of the account {account.username}@{domain.name} to {address.address}"
        )
        if account.username == old.split("@", 1)[0]:
            # Its username is the same word: the entry wants it too, so it goes with the address.
            renamed += _rename_account(account, rename_to=new_part, domain=domain)
        return renamed + "."
    return _rename_account(account, rename_to=rename_to, domain=domain).lstrip("; ").capitalize() + "."


def _rename_account(account: Account, *, rename_to: str, domain: Domain) -> str:
    new_name = normalize_username(rename_to.split("@", 1)[0])
    if Account.objects.filter(domain=domain, username=new_name).exclude(pk=account.pk).exists():
        raise ValidationError(
            f"{domain.name} already has an account named {new_name}: choose another. {UNCHANGED}"
        )
    old = account.username
    account.username = new_name
    account.save(update_fields=["username", "updated_at"])
    # The mailbox folder stays where it is (a renamed account keeps its folder, as the sync's renames do).
    return f"; renamed the account {old}@{domain.name} to {new_name}@{domain.name}"


def _adopt(conflict: SyncConflict) -> str:
    domain = conflict.domain
    key = conflict.directory_key
    if conflict.object_type == SyncEvent.ObjectType.GROUP:
        return _adopt_group(conflict)
    current = Account.objects.filter(domain=domain, directory_guid=key).first()
    if conflict.kind == Kind.MOVED_ID:
        holder = (
            Account.objects.filter(pk=conflict.holder_account_id, domain=domain).first()
            if conflict.holder_account_id is not None
            else None
        )
        if holder is None:
            raise ValidationError(f"{conflict.holder} is no longer here: nothing to link. {UNCHANGED}")
        note = ""
        if current is not None and current.pk != holder.pk:
            # One id, one account: the account that followed the id so far keeps its mail, unlinked.
            _unlink(current)
            note = f" {current.username}@{domain.name} is no longer linked: it stays as a local account."
        _link(holder, conflict)
        return f"Linked {holder.username}@{domain.name} to the entry {conflict.dn}.{note}"
    if conflict.kind not in (Kind.ADDRESS, Kind.USERNAME):
        raise ValidationError(
            f"{conflict.get_kind_display()}: there is no local account to link. {UNCHANGED}"
        )
    if current is not None:
        raise ValidationError(
            f"The entry is synced to {current.username}@{domain.name} already: give the address to it, or "
            f"keep the local one. {UNCHANGED}"
        )
    if conflict.kind == Kind.ADDRESS:
        holder = Account.objects.filter(aliases__domain=domain, aliases__local_part=conflict.value).first()
    else:
        holder = Account.objects.filter(domain=domain, username=conflict.value).first()
    if holder is None:
        raise ValidationError(
            f"No account here holds {conflict.value} any more: nothing to link. {UNCHANGED}"
        )
    if holder.is_directory_linked:
        raise ValidationError(
            f"{holder.username}@{domain.name} is synced from another directory entry already: only a local "
            f"account can be linked. {UNCHANGED}"
        )
    _link(holder, conflict)
    return (
        f"Linked the local account {holder.username}@{domain.name} to the entry {conflict.dn}: it keeps its "
        f"mailbox ({holder.mailbox_path}) and becomes the entry's synced account."
    )


def _adopt_group(conflict: SyncConflict) -> str:
    """A group entry whose alias a local group holds: that group becomes the entry's synced group."""
    domain = conflict.domain
    if conflict.kind != Kind.ADDRESS:
        raise ValidationError(f"{conflict.get_kind_display()}: there is no local group to link. {UNCHANGED}")
    if Group.objects.filter(domain=domain, directory_guid=conflict.directory_key).exists():
        raise ValidationError(f"The entry is synced to another group here already. {UNCHANGED}")
    group = Group.objects.filter(domain=domain, address__local_part=conflict.value).first()
    if group is None or group.is_directory_linked:
        raise ValidationError(
            f"{_address(domain, conflict.value)} is not held by a local group: only a local group can be "
            f"linked to a group entry. {UNCHANGED}"
        )
    group.directory_guid = conflict.directory_key
    group.directory_dn = conflict.dn
    group.directory_dn_hash = dn_hash(conflict.dn) if conflict.dn else ""
    group.directory_change_stamp = ""  # the run compares it in full: name, kind and members
    group.save(
        update_fields=["directory_guid", "directory_dn", "directory_dn_hash", "directory_change_stamp",
                       "updated_at"]
    )  # fmt: skip
    return (
        f"Linked the local group {_address(domain, conflict.value)} to the entry {conflict.dn}: its members "
        "added here stay, the directory's are added."
    )


def _link(account: Account, conflict: SyncConflict) -> None:
    account.directory_guid = conflict.directory_key
    account.directory_dn = conflict.dn
    account.directory_dn_hash = dn_hash(conflict.dn) if conflict.dn else ""
    # No stamp: the run compares the account with its entry in full and puts the directory's values in.
    account.directory_change_stamp = ""
    account.save(
        update_fields=[
            "directory_guid",
            "directory_dn",
            "directory_dn_hash",
            "directory_change_stamp",
            "updated_at",
        ]
    )


def _unlink(account: Account) -> None:
    account.directory_guid = None
    account.directory_dn = account.directory_dn_hash = account.directory_change_stamp = (
        account.directory_uid
    ) = ""
    account.save(
        update_fields=["directory_guid", "directory_dn", "directory_dn_hash", "directory_change_stamp",
                       "directory_uid", "updated_at"]
    )  # fmt: skip


def _address(domain: Domain, local_part: str) -> str:
    return f"{local_part}@{domain.name}"
