"""Reads for views and commands."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.db import connection
from django.db.models import Case, Count, Prefetch, Q, QuerySet, Value, When
from django.db.models.expressions import RawSQL
from django.utils import timezone

from directory_sync.sync.changes import OU_KEY_PREFIX
from icewarp_admin.mailserver.models import (
    Account,
    Address,
    Domain,
    Group,
    GroupMember,
    Provenance,
    SystemVariable,
)
from icewarp_admin.mailserver.system_variables import SYSTEM_VARIABLES, VariableSpec, find_variable
from icewarp_admin.mailserver.validators import normalize_domain_name


def find_domain(name: str) -> Domain | None:
    """The domain of that name, in either its Unicode or ASCII form; None when there is none."""
    try:
        normalized = normalize_domain_name(name)
    except ValidationError:
        return None
    return Domain.objects.filter(name=normalized).first()


def system_variable_value(*, name: str) -> int:
    """The current value of a global variable (its default when never set)."""
    spec = find_variable(name)
    stored = SystemVariable.objects.filter(name=spec.name).values_list("value", flat=True).first()
    return spec.default if stored is None else int(stored)


def system_variables() -> list[tuple[VariableSpec, int]]:
    """Every known global variable with its current value, in one query."""
    stored = dict(SystemVariable.objects.values_list("name", "value"))
    return [
        (spec, int(stored[spec.name]) if spec.name in stored else spec.default) for spec in SYSTEM_VARIABLES
    ]


# Fields of a synced account that the directory owns (the sync puts them back when changed here).
DIRECTORY_OWNED_FIELDS = ("full_name", "auth_mode", "auth_value")


def directory_owned_fields(account: Account) -> frozenset[str]:
    """What of this account the directory owns; AD also owns the account state (userAccountControl)."""
    if not account.is_directory_linked:
        return frozenset()
    owned = set(DIRECTORY_OWNED_FIELDS)
    try:
        server_type = account.domain.directory_settings.server_type
    except ObjectDoesNotExist:
        server_type = ""
    if server_type == "ad":
        owned.add("enabled")
    return frozenset(owned)


# Where a field's value comes from, as the account and group pages say it.
OWNED_BY_DIRECTORY, SEEDED_ONCE, LOCAL = "directory", "seeded", "local"
OWNERSHIP_LABELS = {OWNED_BY_DIRECTORY: "Directory", SEEDED_ONCE: "Seeded once", LOCAL: "Local"}
# What "reset to the directory" takes, per field of an account page (the run puts these back).
RESETTABLE_ACCOUNT_FIELDS = ("username", "full_name", "auth", "enabled", "aliases", "vcard")
SEEDED_FIELDS = ("quota_mb", "max_message_kb", "services")


@dataclass(frozen=True)
class FieldOwnership:
    """One field of a synced object: who owns it, what that means, and whether it can be reset."""

    field: str
    label: str
    owner: str
    note: str
    resettable: bool = False

    @property
    def owner_label(self) -> str:
        return OWNERSHIP_LABELS[self.owner]


def account_field_ownership(account: Account) -> list[FieldOwnership]:
    """Per field of a synced account: the directory owns it (locked here, put back at each run), the user
    template seeded it once when the sync created the account (then it is this server's), or it is local.
    Nothing for a local-only account: everything of it is this server's."""
    if not account.is_directory_linked:
        return []
    owned = directory_owned_fields(account)
    settings = _directory_settings(account.domain)
    put_back = "put back at each run when changed here"
    template = account.domain.default_template
    seeded = (
        f"set once from the user template {template.name} when the sync created the account; yours to change"
        if template is not None
        else "set once (the defaults: the domain had no user template) when the sync created the account; "
        "yours to change"
    )
    directory_addresses = sum(
        1 for address in account.aliases.all() if address.source == Provenance.DIRECTORY
    )
    manual_addresses = len(account.aliases.all()) - directory_addresses
    rows = [
        FieldOwnership(
            "username", "Username", OWNED_BY_DIRECTORY, f"from the directory's entry; {put_back}", True
        ),
        FieldOwnership(
            "full_name", "Full name", OWNED_BY_DIRECTORY, f"from the directory's entry; {put_back}", True
        ),
        FieldOwnership(
            "auth", "Authentication", OWNED_BY_DIRECTORY, f"a bind with the entry's login; {put_back}", True
        ),
        FieldOwnership("enabled", "State", OWNED_BY_DIRECTORY, f"userAccountControl; {put_back}", True)
        if "enabled" in owned
        else FieldOwnership(
            "enabled", "State", SEEDED_ONCE, f"{seeded} (this directory has no disabled flag)"
        ),
        FieldOwnership("quota_mb", "Mailbox quota", SEEDED_ONCE, seeded),
        FieldOwnership("max_message_kb", "Largest outgoing message", SEEDED_ONCE, seeded),
        FieldOwnership("services", "Services", SEEDED_ONCE, seeded),
        FieldOwnership(
            "aliases",
            "Addresses",
            OWNED_BY_DIRECTORY,
            f"{directory_addresses} from the directory, in its order ({put_back}); {manual_addresses} "
            "added here (local, kept)",
            True,
        ),
    ]
    vcard_off = settings is None or settings.disable_vcard_sync
    if vcard_off or system_variable_value(name="C_System_ADSyncDisableVCardSync"):
        rows.append(FieldOwnership("vcard", "Personal data", LOCAL, "personal data is not synchronized here"))
    elif account.vcard_edited_locally and not settings.directory_vcard_wins:
        rows.append(
            FieldOwnership(
                "vcard",
                "Personal data",
                LOCAL,
                "edited on this server: the directory no longer overwrites it",
                True,
            )
        )
    else:
        rows.append(
            FieldOwnership(
                "vcard", "Personal data", OWNED_BY_DIRECTORY, f"from the vCard map; {put_back}", True
            )
        )
    return rows


def group_field_ownership(group: Group) -> list[FieldOwnership]:
    """Per field of a synced group (see account_field_ownership); nothing for a local-only group."""
    if not group.is_directory_linked:
        return []
    put_back = "put back at each run when changed here"
    source = "the organizational unit" if is_ou_group(group) else "the directory's entry"
    return [
        FieldOwnership("alias", "Address", OWNED_BY_DIRECTORY, f"from {source}", True),
        FieldOwnership("name", "Name", OWNED_BY_DIRECTORY, f"from {source}; {put_back}", True),
        FieldOwnership("kind", "Kind", OWNED_BY_DIRECTORY, f"which filter found it; {put_back}", True),
        FieldOwnership(
            "members",
            "Members",
            OWNED_BY_DIRECTORY,
            "those the directory lists; members added here are kept",
            True,
        ),
        FieldOwnership("description", "Description", LOCAL, "never read nor written by the sync"),
    ]


def _directory_settings(domain: Domain) -> Any:
    try:
        return domain.directory_settings
    except ObjectDoesNotExist:
        return None


def synced_while_active(account: Account) -> bool:
    """Whether the account is linked to a directory its domain synchronizes now."""
    if not account.is_directory_linked:
        return False
    try:
        return bool(account.domain.directory_settings.active)
    except ObjectDoesNotExist:
        return False


def domain_list() -> QuerySet[Domain]:
    """Domains with their account and group counts."""
    return Domain.objects.annotate(
        account_count=Count("accounts", distinct=True), group_count=Count("groups", distinct=True)
    ).order_by("name")


def account_list(*, domain: Domain, search: str = "") -> QuerySet[Account]:
    """A domain's accounts, optionally those whose username, full name or any address contains the term."""
    accounts = Account.objects.filter(domain=domain)
    term = search.strip().lower()
    if term:
        local = term.split("@", 1)[0] if "@" in term else term
        accounts = accounts.filter(_account_search(local_part=local, text=term))
    return accounts.order_by("username").prefetch_related(
        Prefetch("aliases", queryset=Address.objects.select_related("domain").order_by("position", "id"))
    )


# Trigram indexes need three characters; a shorter term matches the start of usernames and addresses instead.
MIN_SUBSTRING_SEARCH = 3


def _account_search(*, local_part: str, text: str) -> Q:
    """Accounts matching a search, through migration 0003's trigram indexes or the unique (prefix) ones.

    One IN over a UNION of id subqueries lets the database answer each part from its own index (an OR of the
    conditions makes it test every row of the domain instead) and needs no DISTINCT over 100,000 rows.
    """
    if len(local_part) < MIN_SUBSTRING_SEARCH or len(text) < MIN_SUBSTRING_SEARCH:
        # A range on the (domain, username) and (domain, local_part) indexes; startswith keeps it exact.
        upper = local_part[:-1] + chr(ord(local_part[-1]) + 1)
        prefix_usernames = Account.objects.filter(
            username__gte=local_part, username__lt=upper, username__startswith=local_part
        ).order_by()
        prefix_addresses = Address.objects.filter(
            account__isnull=False,
            local_part__gte=local_part,
            local_part__lt=upper,
            local_part__startswith=local_part,
        ).order_by()
        return Q(pk__in=prefix_usernames.values("pk").union(prefix_addresses.values("account_id")))
    if connection.vendor == "sqlite":
        return Q(
            pk__in=RawSQL(
                "SELECT rowid FROM mailserver_account_fts WHERE mailserver_account_fts MATCH %s "
                "UNION SELECT account_id FROM mailserver_address WHERE account_id IS NOT NULL AND id IN "
                "(SELECT rowid FROM mailserver_address_fts WHERE mailserver_address_fts MATCH %s)",
                [_fts_phrase(text), _fts_phrase(local_part)],
            )
        )
    by_username = Account.objects.filter(username__contains=local_part).order_by().values("pk")
    by_name = Account.objects.filter(full_name__icontains=text).order_by().values("pk")
    by_address = (
        Address.objects.filter(account__isnull=False, local_part__contains=local_part)
        .order_by()
        .values("account_id")
    )
    return Q(pk__in=by_username.union(by_name, by_address))


def _fts_phrase(term: str) -> str:
    """An FTS5 query that matches the term as a literal substring (quotes doubled, never parsed as syntax)."""
    return '"' + term.replace('"', '""') + '"'


def account_detail(*, domain: Domain, username: str) -> Account:
    """One account with its addresses and groups; raises Account.DoesNotExist."""
    return (
        Account.objects.select_related("domain")
        .prefetch_related(
            Prefetch("aliases", queryset=Address.objects.select_related("domain").order_by("position", "id")),
            Prefetch(
                "group_memberships", queryset=GroupMember.objects.select_related("group__address__domain")
            ),
        )
        .get(domain=domain, username=username)
    )


def group_list(*, domain: Domain) -> QuerySet[Group]:
    """A domain's groups with their member counts and origin (see group_origin)."""
    return (
        Group.objects.filter(domain=domain)
        .select_related("address__domain")
        .annotate(member_count=Count("memberships"), origin=_group_origin_expression())
        .order_by("address__local_part")
    )


def group_detail(*, domain: Domain, alias: str) -> Group:
    """One group with its members; raises Group.DoesNotExist."""
    return (
        Group.objects.select_related("address__domain", "domain")
        .prefetch_related(
            Prefetch(
                "memberships",
                queryset=GroupMember.objects.select_related(
                    "account__domain", "member_group__address__domain"
                )
                .prefetch_related(
                    Prefetch("account__aliases", queryset=Address.objects.select_related("domain"))
                )
                .order_by("id"),
            ),
            Prefetch(
                "parent_memberships", queryset=GroupMember.objects.select_related("group__address__domain")
            ),
        )
        .get(domain=domain, address__local_part=alias)
    )


# Where a group comes from, as the group list and page show it: two groups may both be called "Support".
GROUP_ORIGIN_OU, GROUP_ORIGIN_DIRECTORY, GROUP_ORIGIN_MANUAL = "ou", "directory", "manual"


def _group_origin_expression() -> Case:
    return Case(
        When(directory_guid__startswith=OU_KEY_PREFIX, then=Value(GROUP_ORIGIN_OU)),
        When(directory_guid__isnull=False, then=Value(GROUP_ORIGIN_DIRECTORY)),
        default=Value(GROUP_ORIGIN_MANUAL),
    )


def is_ou_group(group: Group) -> bool:
    """Whether the sync made this group for an organizational unit (the hierarchical address book)."""
    return group.directory_guid is not None and group.directory_guid.startswith(OU_KEY_PREFIX)


def group_origin(group: Group) -> str:
    """ "ou" (an organizational unit's address-book group), "directory" (a directory group) or "manual"."""
    if is_ou_group(group):
        return GROUP_ORIGIN_OU
    return GROUP_ORIGIN_DIRECTORY if group.is_directory_linked else GROUP_ORIGIN_MANUAL


# Fields of a synced group that the directory owns. The planner compares alias, name and kind
# (directory_sync.sync.groups._group_fields) and the apply writes them back: the name is the entry's cn (an OU
# group's, the unit's name) and the kind is which search found the entry (group filter or mailing-list
# filter). The description is never read nor written by the sync, so it stays editable here. The alias is no
# form field (it is the group's address).
GROUP_DIRECTORY_OWNED_FIELDS = ("name", "kind")


def group_directory_owned_fields(group: Group) -> frozenset[str]:
    """What of this group the directory owns: nothing for a local-only group."""
    return frozenset(GROUP_DIRECTORY_OWNED_FIELDS) if group.is_directory_linked else frozenset()


def member_from_directory(membership: GroupMember, group: Group) -> bool:
    """Whether the directory gave this member to the synced group (the next run would put it back)."""
    return group.is_directory_linked and membership.source == Provenance.DIRECTORY


def group_synced_while_active(group: Group) -> bool:
    """Whether the group is linked to a directory its domain synchronizes now (the directory removes it)."""
    if not group.is_directory_linked:
        return False
    try:
        return bool(group.domain.directory_settings.active)
    except ObjectDoesNotExist:
        return False


def address_from_directory(address: Address, account: Account) -> bool:
    """Whether the directory gave this address to the synced account (the next run would put it back)."""
    return account.is_directory_linked and address.source == Provenance.DIRECTORY


def domain_export(*, domain: Domain) -> dict[str, Any]:
    """The domain's accounts and groups as the stable JSON contract of `manage.py domain_export`."""
    addresses_by_account: dict[int, list[str]] = {}
    for account_id, local_part in (
        Address.objects.filter(domain=domain, account__isnull=False)
        .order_by("account_id", "position", "id")
        .values_list("account_id", "local_part")
    ):
        addresses_by_account.setdefault(account_id, []).append(f"{local_part}@{domain.name}")

    group_alias = dict(Group.objects.filter(domain=domain).values_list("pk", "address__local_part"))
    groups_by_account: dict[int, list[str]] = {}
    members_by_group: dict[int, list[str]] = {}
    nested_by_group: dict[int, list[str]] = {}
    for group_id, account_id, member_group_id, remote in GroupMember.objects.filter(
        group__domain=domain
    ).values_list("group_id", "account_id", "member_group_id", "remote_address"):
        if account_id is not None:
            groups_by_account.setdefault(account_id, []).append(group_alias[group_id])
            members_by_group.setdefault(group_id, []).extend(addresses_by_account.get(account_id, [])[:1])
        elif member_group_id is not None:
            nested_by_group.setdefault(group_id, []).append(
                group_alias.get(member_group_id) or _foreign_group_address(member_group_id)
            )
        else:
            members_by_group.setdefault(group_id, []).append(remote)

    accounts = []
    for account in Account.objects.filter(domain=domain).order_by("username"):
        aliases = addresses_by_account.get(account.pk, [])
        exported = {
            "username": account.username,
            "email": aliases[0] if aliases else f"{account.username}@{domain.name}",
            "aliases": aliases,
            "full_name": account.full_name,
            "auth_mode": account.auth_mode,
            "auth_value": account.auth_value,
            "directory_id": account.directory_guid,
            "enabled": account.enabled,
            "vcard": dict(sorted(account.vcard.items())),
            "groups": sorted(groups_by_account.get(account.pk, [])),
        }
        if account.removal_due_at is not None:
            # Left the directory: disabled, and removed by the first sync after this date.
            exported["pending_removal"] = timezone.localtime(account.removal_due_at).date().isoformat()
        accounts.append(exported)
    groups = [
        {
            "alias": alias,
            "name": name,
            "kind": kind,
            "members": sorted(members_by_group.get(pk, [])),
            "member_groups": sorted(nested_by_group.get(pk, [])),
            "directory_id": guid,
        }
        for pk, alias, name, kind, guid in Group.objects.filter(domain=domain).values_list(
            "pk", "address__local_part", "name", "kind", "directory_guid"
        )
    ]
    return {
        "domain": domain.name,
        "accounts": sorted(accounts, key=lambda item: item["email"]),
        "groups": sorted(groups, key=lambda item: item["alias"]),
    }


def _foreign_group_address(group_id: int) -> str:
    group = Group.objects.select_related("address__domain").get(pk=group_id)
    return group.address.address


def account_for_sign_in(*, address: str) -> Account | None:
    """The account an address signs in as: any of its addresses, or username@domain, case-insensitive; None
    for anything else (a group's address, an unknown domain, text that is no address)."""
    local, at, domain_part = address.strip().rpartition("@")
    if not at or not local or not domain_part:
        return None
    try:
        domain_name = normalize_domain_name(domain_part)
    except ValidationError:
        return None
    local = local.lower()
    owner = (
        Address.objects.filter(domain__name=domain_name, local_part=local, account__isnull=False)
        .values_list("account_id", flat=True)
        .first()
    )
    accounts = Account.objects.select_related("domain")
    if owner is not None:
        return accounts.filter(pk=owner).first()
    return accounts.filter(domain__name=domain_name, username=local).first()
