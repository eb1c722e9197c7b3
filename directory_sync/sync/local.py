"""The accounts a domain has now, loaded in bulk: every link's change stamp, full rows only where needed."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from icewarp_admin.mailserver.models import Account, Address, Group

CHUNK = 2000
T = TypeVar("T")


def chunked(items: Iterable[T], size: int = CHUNK) -> Iterator[list[T]]:
    """Lists of at most size items (SQLite limits the parameters of one query)."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


@dataclass(frozen=True)
class LinkedAccount:
    """What a run needs of every synced account, whatever the directory says: one narrow row each."""

    account_id: int
    change_stamp: str
    dn: str
    username: str


@dataclass(frozen=True)
class LocalAccount:
    id: int
    key: str
    username: str
    dn: str
    change_stamp: str
    full_name: str
    auth_mode: str
    auth_value: str
    enabled: bool
    vcard: dict[str, str]
    vcard_edited_locally: bool
    mailbox_path: str
    aliases: tuple[tuple[int, str, str], ...]  # (address id, local part, source), primary first

    @property
    def primary(self) -> str:
        return self.aliases[0][1] if self.aliases else ""

    def field_values(self) -> dict[str, Any]:
        return {
            "username": self.username,
            "full_name": self.full_name,
            "auth_mode": self.auth_mode,
            "auth_value": self.auth_value,
            "enabled": self.enabled,
            "vcard": self.vcard,
            "directory_dn": self.dn,
        }


def linked_accounts(domain_id: int) -> dict[str, LinkedAccount]:
    """Directory key → the synced account (id, stamp, DN, username): read once per run, used by each step."""
    rows = Account.objects.filter(domain_id=domain_id, directory_guid__isnull=False).values_list(
        "directory_guid", "pk", "directory_change_stamp", "directory_dn", "username"
    )
    return {str(key): LinkedAccount(pk, stamp, dn, username) for key, pk, stamp, dn, username in rows}


def load_accounts(account_ids: Iterable[int]) -> dict[int, LocalAccount]:
    """Full rows (with aliases) of the given accounts, in bulk."""
    accounts: dict[int, dict[str, Any]] = {}
    aliases: dict[int, list[tuple[int, str, str]]] = {}
    fields = (
        "pk", "directory_guid", "username", "directory_dn", "directory_change_stamp", "full_name",
        "auth_mode", "auth_value", "enabled", "vcard", "vcard_edited_locally", "mailbox_path",
    )  # fmt: skip
    for batch in chunked(account_ids):
        for row in Account.objects.filter(pk__in=batch).values_list(*fields):
            accounts[row[0]] = dict(zip(fields, row, strict=True))
        for address_id, account_id, local_part, source in (
            Address.objects.filter(account_id__in=batch)
            .order_by("account_id", "position", "id")
            .values_list("pk", "account_id", "local_part", "source")
        ):
            aliases.setdefault(account_id, []).append((address_id, local_part, source))
    return {
        pk: LocalAccount(
            id=pk,
            key=row["directory_guid"] or "",
            username=row["username"],
            dn=row["directory_dn"],
            change_stamp=row["directory_change_stamp"],
            full_name=row["full_name"],
            auth_mode=row["auth_mode"],
            auth_value=row["auth_value"],
            enabled=row["enabled"],
            vcard=row["vcard"] or {},
            vcard_edited_locally=row["vcard_edited_locally"],
            mailbox_path=row["mailbox_path"],
            aliases=tuple(aliases.get(pk, [])),
        )
        for pk, row in accounts.items()
    }


@dataclass(frozen=True)
class Owner:
    """Who holds an address or a username now."""

    account_id: int | None
    account_key: str | None  # the owner's directory key, when it is a synced account
    description: str
    source: str = ""


def address_owners(domain_id: int, domain_name: str, local_parts: Iterable[str]) -> dict[str, Owner]:
    """Current owners of the given addresses of the domain (accounts and groups), in bulk."""
    owners: dict[str, Owner] = {}
    for batch in chunked(set(local_parts)):
        rows = Address.objects.filter(domain_id=domain_id, local_part__in=batch).values_list(
            "local_part", "account_id", "account__username", "account__directory_guid", "source", "pk"
        )
        group_addresses = dict(
            Group.objects.filter(address__domain_id=domain_id, address__local_part__in=batch).values_list(
                "address__local_part", "kind"
            )
        )
        for local, account_id, username, key, source, _ in rows:
            if account_id is not None:
                owners[local] = Owner(account_id, key, f"account {username}@{domain_name}", source)
            else:
                kind = "mailing list" if group_addresses.get(local) == Group.Kind.MAILING_LIST else "group"
                owners[local] = Owner(None, None, f"{kind} {local}@{domain_name}")
    return owners


def primary_addresses(domain_id: int, domain_name: str, keys: Iterable[str]) -> dict[str, str]:
    """Directory key → primary address of the linked accounts with those keys (for the events' wording)."""
    found: dict[str, str] = {}
    for batch in chunked(set(keys)):
        rows = Address.objects.filter(
            account__domain_id=domain_id, account__directory_guid__in=batch, position=0
        ).values_list("account__directory_guid", "local_part")
        for key, local_part in rows:
            found[str(key)] = f"{local_part}@{domain_name}"
    return found


def username_owners(domain_id: int, domain_name: str, usernames: Iterable[str]) -> dict[str, Owner]:
    """Accounts of the domain that hold the given usernames."""
    owners: dict[str, Owner] = {}
    for batch in chunked(set(usernames)):
        for username, pk, key in Account.objects.filter(domain_id=domain_id, username__in=batch).values_list(
            "username", "pk", "directory_guid"
        ):
            owners[username] = Owner(pk, key, f"account {username}@{domain_name}")
    return owners
