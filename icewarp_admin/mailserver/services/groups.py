"""Groups and mailing lists with their members: accounts, nested groups and remote addresses."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction

from icewarp_admin.mailserver.models import Account, Address, Domain, Group, GroupMember, Provenance
from icewarp_admin.mailserver.selectors import group_synced_while_active, is_ou_group
from icewarp_admin.mailserver.services.addresses import ensure_address_free
from icewarp_admin.mailserver.validators import normalize_local_part


def create_group(
    *, domain: Domain, alias: str, name: str, kind: str = Group.Kind.GROUP, description: str = ""
) -> Group:
    """Create a group with its own address alias@domain."""
    local_part = normalize_local_part(alias)
    with transaction.atomic():
        ensure_address_free(domain=domain, local_part=local_part)
        address = Address.objects.create(domain=domain, local_part=local_part, source=Provenance.MANUAL)
        return Group.objects.create(
            domain=domain,
            address=address,
            name=name.strip() or local_part,
            kind=kind,
            description=description,
        )


def update_group(*, group: Group, name: str, description: str, kind: str) -> Group:
    """Change a group's name, description and kind."""
    if not name.strip():
        raise ValidationError("A group needs a name.")
    if (group.name, group.kind) != (name.strip(), kind):
        _forget_directory_stamp(group)
    group.name, group.description, group.kind = name.strip(), description.strip(), kind
    group.save(update_fields=["name", "description", "kind", "directory_change_stamp", "updated_at"])
    return group


def _forget_directory_stamp(group: Group) -> None:
    """A synced group was changed here: the next sync reads it again and puts the directory's values back."""
    if group.is_directory_linked:
        group.directory_change_stamp = ""


def delete_group(*, group: Group) -> None:
    """Delete a group, its memberships and its address."""
    if group_synced_while_active(group):
        # A later run (the next full read at the latest) makes it again, without the members added here.
        raise ValidationError(removed_by_directory(group) + " Nothing was changed.")
    with transaction.atomic():
        address = group.address
        group.delete()
        address.delete()


def removed_by_directory(group: Group) -> str:
    """How a synced group goes away, for a page that offers no delete."""
    if is_ou_group(group):
        return (
            f"{group} was made for an organizational unit of the directory, which is synchronized: it "
            'goes when the unit has no synced users left, or when "Create groups for organizational units" '
            "is switched off."
        )
    return (
        f"{group} comes from the directory, which is synchronized: remove it there (or from the group or "
        "mailing-list filter) and the sync removes it here."
    )


def add_member(
    *,
    group: Group,
    account: Account | None = None,
    member_group: Group | None = None,
    remote_address: str = "",
    source: str = Provenance.MANUAL,
) -> GroupMember:
    """Add exactly one member: a local account, a nested group (no cycles), or a remote address."""
    if sum(bool(item) for item in (account, member_group, remote_address)) != 1:
        raise ValidationError("Choose exactly one member: an account, a group or a remote address.")
    membership = GroupMember(group=group, source=source)
    if account is not None:
        if GroupMember.objects.filter(group=group, account=account).exists():
            raise ValidationError(f"{account} is already a member of {group}.")
        membership.account = account
    elif member_group is not None:
        if member_group.pk == group.pk or group.pk in nested_group_ids(member_group):
            raise ValidationError(f"{member_group} contains {group}; nesting it would make a loop.")
        if GroupMember.objects.filter(group=group, member_group=member_group).exists():
            raise ValidationError(f"{member_group} is already a member of {group}.")
        membership.member_group = member_group
    else:
        address = remote_address.strip().lower()
        validate_email(address)
        if GroupMember.objects.filter(group=group, remote_address=address).exists():
            raise ValidationError(f"{address} is already a member of {group}.")
        membership.remote_address = address
    membership.save()
    return membership


def remove_member(*, membership: GroupMember) -> None:
    """Take a member out; a member the directory gave a synced group comes back at the next sync."""
    with transaction.atomic():
        if membership.source == Provenance.DIRECTORY:
            Group.objects.filter(pk=membership.group_id, directory_guid__isnull=False).update(
                directory_change_stamp=""
            )
        membership.delete()


def nested_group_ids(group: Group) -> set[int]:
    """Ids of every group nested inside this one, at any depth (one query per level)."""
    found: set[int] = set()
    frontier = {group.pk}
    while frontier:
        children = set(
            GroupMember.objects.filter(group_id__in=frontier, member_group__isnull=False).values_list(
                "member_group_id", flat=True
            )
        )
        frontier = {child for child in children if child is not None} - found
        found |= frontier
    return found
