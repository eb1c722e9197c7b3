"""Addresses are unique on the whole server; every claim of one goes through here."""

from __future__ import annotations

from django.core.exceptions import ValidationError

from icewarp_admin.mailserver.models import Account, Address, Domain, Group, Provenance


def describe_owner(address: Address) -> str:
    """Who holds an address, in words an administrator can act on."""
    if address.account_id is not None:
        account = Account.objects.select_related("domain").get(pk=address.account_id)
        return f"account {account}"
    group = Group.objects.filter(address=address).first()
    if group is not None:
        return f"{group.get_kind_display().lower()} {address.address}"
    return "an address with no owner"


def ensure_address_free(*, domain: Domain, local_part: str) -> None:
    """Raise ValidationError naming the owner when the address is already taken."""
    existing = Address.objects.select_related("domain").filter(domain=domain, local_part=local_part).first()
    if existing is not None:
        raise ValidationError(
            f"{local_part}@{domain.name} is already used by {describe_owner(existing)}.", code="address_taken"
        )


def add_account_address(
    *, account: Account, local_part: str, source: str = Provenance.MANUAL, primary: bool = False
) -> Address:
    """Give an account one more address (last, or first when primary)."""
    ensure_address_free(domain=account.domain, local_part=local_part)
    addresses = list(account.aliases.order_by("position", "id"))
    address = Address(domain=account.domain, local_part=local_part, account=account, source=source)
    ordered = [address, *addresses] if primary else [*addresses, address]
    address.save()
    _renumber(ordered)
    return address


def remove_account_address(*, address: Address) -> None:
    """Take an address away from its account; the last address of an account cannot go."""
    account = address.account
    if account is None:
        raise ValidationError("This address does not belong to an account.")
    remaining = [other for other in account.aliases.order_by("position", "id") if other.pk != address.pk]
    if not remaining:
        raise ValidationError(f"{address.address} is the only address of {account}; add another one first.")
    address.delete()
    _renumber(remaining)
    _forget_stamp_if_directory(address)


def make_primary_address(*, address: Address) -> None:
    """Put an address first, making it the account's primary address."""
    account = address.account
    if account is None:
        raise ValidationError("This address does not belong to an account.")
    others = [other for other in account.aliases.order_by("position", "id") if other.pk != address.pk]
    _renumber([address, *others])
    _forget_stamp_if_directory(address)


def _forget_stamp_if_directory(address: Address) -> None:
    """The directory owns its aliases and their order: a change here makes the next sync put them back."""
    if address.account_id is not None:
        Account.objects.filter(pk=address.account_id, directory_guid__isnull=False).update(
            directory_change_stamp=""
        )


def _renumber(addresses: list[Address]) -> None:
    changed = []
    for position, address in enumerate(addresses):
        if address.position != position:
            address.position = position
            changed.append(address)
    Address.objects.bulk_update(changed, ["position"])
