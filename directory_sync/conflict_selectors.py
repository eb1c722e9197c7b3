"""Reads for the conflict centre: the filtered list, and what each conflict offers to do about it.

A page of conflicts costs a fixed number of queries however long the list: the holders, entries, runs and the
holders' addresses come with the page (select_related, one prefetch).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import Prefetch, QuerySet

from directory_sync.models import SyncConflict, SyncEvent
from icewarp_admin.mailserver.models import Account, Address, Provenance

Kind = SyncConflict.Kind
GROUP = SyncEvent.ObjectType.GROUP
OPEN, RESOLVED, ALL = "open", "resolved", "all"
STATUS_CHOICES = [(OPEN, "Open"), (RESOLVED, "Resolved"), (ALL, "Open and resolved")]


def conflict_list(*, domain: str = "", status: str = OPEN, kind: str = "") -> QuerySet[SyncConflict]:
    """Conflicts across domains (or of one), open ones by default, the latest seen first."""
    conflicts = SyncConflict.objects.all()
    if domain:
        conflicts = conflicts.filter(domain__name=domain)
    if status in (OPEN, RESOLVED):
        conflicts = conflicts.filter(status=status)
    if kind:
        conflicts = conflicts.filter(kind=kind)
    return (
        conflicts.select_related(
            "domain",
            "entry_account",
            "entry_group__address",
            "holder_account__domain",
            "holder_group__address",
            "last_run",
            "resolution_run",
        )
        .prefetch_related(
            Prefetch("holder_account__aliases", queryset=Address.objects.order_by("position", "id"))
        )
        .order_by("-last_seen_at", "-id")
    )


def open_count() -> int:
    return SyncConflict.objects.filter(status=OPEN).count()


@dataclass(frozen=True)
class ConflictRow:
    """One conflict with the actions it offers: what each does in words ("" when not offered) and, when an
    action is not offered, why not."""

    conflict: SyncConflict
    keep: str = ""
    give: str = ""
    give_asks: bool = False  # giving renames or removes an account: the form asks which, explicitly
    adopt: str = ""
    not_offered: str = ""


def conflict_rows(conflicts: Iterable[SyncConflict]) -> list[ConflictRow]:
    return [_row(conflict) for conflict in conflicts]


def _row(conflict: SyncConflict) -> ConflictRow:
    if not conflict.is_open:
        return ConflictRow(conflict)
    if conflict.kind == Kind.WITHHELD:
        return ConflictRow(
            conflict,
            not_offered="It waits for a removal the guard withheld: approve or dismiss the withheld removals "
            "on the run's page.",
        )
    keep = _keep_text(conflict)
    if conflict.kind == Kind.MOVED_ID:
        adopt = ""
        if conflict.holder_account is not None:
            adopt = f"Link {_name(conflict.holder_account)} to this entry, keeping its mailbox"
            if conflict.entry_account is not None:
                adopt += f"; {conflict.entry_account.username} is unlinked and stays as a local account"
        return ConflictRow(
            conflict,
            keep=keep,
            give=f"Follow the id: its account takes this entry; {conflict.holder} gives up the DN and "
            "addresses",
            adopt=adopt,
        )
    if conflict.kind == Kind.OTHER_DOMAIN:
        return ConflictRow(
            conflict,
            keep=keep,
            not_offered="To move it here, take the entry out of the other domain's DN or user filter first.",
        )
    if conflict.kind == Kind.DUPLICATE_ID:
        return ConflictRow(
            conflict, keep=keep, not_offered="Two entries carry one id: fix it in the directory."
        )
    holder = conflict.holder_account
    group = conflict.holder_group
    if group is not None and conflict.object_type == GROUP and not group.is_directory_linked:
        adopt = (
            ""
            if conflict.entry_group is not None
            else (
                f"Link the group {group.address.local_part}@{conflict.domain.name} to this entry: its "
                "members added here stay, the directory's are added"
            )
        )
        why = "It is the group's only address: to give it up, rename or delete the group first."
        return ConflictRow(conflict, keep=keep, adopt=adopt, not_offered=why)
    if group is not None:
        return ConflictRow(
            conflict,
            keep=keep,
            not_offered=f"{group.address.local_part}@{conflict.domain.name} is a group's "
            "only address: rename or delete the group first.",
        )
    if holder is None:
        return ConflictRow(
            conflict,
            keep=keep,
            not_offered=f"{conflict.holder.capitalize()} wants it too: fix it in the directory.",
        )
    if holder.is_directory_linked:
        if conflict.kind == Kind.ADDRESS and conflict.holder_source == Provenance.MANUAL:
            give = f"Remove the manual alias {_contested(conflict)} from {_name(holder)}"
            return ConflictRow(conflict, keep=keep, give=give)
        return ConflictRow(
            conflict,
            keep=keep,
            not_offered=f"{_name(holder)} is synced from the directory: change it there.",
        )
    adopt = (
        ""
        if conflict.entry_account is not None or conflict.object_type == GROUP
        else f"Link {_name(holder)} to this entry: it keeps its mailbox and becomes the entry's synced "
        "account"
    )
    others = [address for address in holder.aliases.all() if address.local_part != conflict.value]
    if conflict.kind == Kind.ADDRESS and others:
        give = f"Remove {_contested(conflict)} from {_name(holder)}"
        return ConflictRow(conflict, keep=keep, give=give, adopt=adopt)
    what = "only address" if conflict.kind == Kind.ADDRESS else "username"
    give = f"{_contested(conflict)} is the {what} of {_name(holder)}: rename it, or remove the account"
    return ConflictRow(conflict, keep=keep, give=give, give_asks=True, adopt=adopt)


def _keep_text(conflict: SyncConflict) -> str:
    if conflict.kind == Kind.ADDRESS and len(conflict.wanted_addresses) > 1:
        return f"Keep {_contested(conflict)} where it is: the entry is synced without it"
    if conflict.kind == Kind.ADDRESS:
        return f"Keep {_contested(conflict)} where it is: the entry, which has no other address, stays out"
    if conflict.kind == Kind.OTHER_DOMAIN:
        return f"Keep the entry with {conflict.holder}: this domain leaves it out"
    return "Keep the local side as it is: the entry stays out"


def _contested(conflict: SyncConflict) -> str:
    if conflict.kind == Kind.ADDRESS:
        return f"{conflict.value}@{conflict.domain.name}"
    return conflict.value


def _name(account: Account) -> str:
    """The account as an address (holders come with their domain: another domain's, for some)."""
    return f"{account.username}@{account.domain.name}"
