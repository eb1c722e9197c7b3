"""Creating, changing and removing accounts, with their mailboxes and addresses."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.hashers import make_password
from django.core.exceptions import ValidationError
from django.db import transaction

from icewarp_admin.mailserver.models import Account, AccountState, Address, Domain, Provenance, UserTemplate
from icewarp_admin.mailserver.selectors import synced_while_active
from icewarp_admin.mailserver.services.addresses import ensure_address_free
from icewarp_admin.mailserver.services.mailboxes import create_mailbox, delete_mailbox
from icewarp_admin.mailserver.validators import normalize_local_part, normalize_username


@dataclass(frozen=True)
class AccountSettings:
    """The fields an administrator edits on the account page (identity and addresses have their own calls)."""

    full_name: str
    auth_mode: str
    auth_value: str
    enabled: bool
    quota_mb: int
    max_message_kb: int
    services: list[str]


def create_account(
    *,
    domain: Domain,
    username: str,
    full_name: str = "",
    password: str = "",
    aliases: list[str] | None = None,
    template: UserTemplate | None = None,
    auth_mode: str = Account.AuthMode.STANDARD,
    auth_value: str = "",
    source: str = Provenance.MANUAL,
) -> Account:
    """Create an account with its Maildir and addresses; the template (or the domain's) applies now only.

    aliases are local parts, primary first; without them the username is the only address.
    """
    username = normalize_username(username)
    local_parts = [normalize_local_part(alias) for alias in (aliases or [username])]
    if len(set(local_parts)) != len(local_parts):
        raise ValidationError("The same address is listed twice.")
    if Account.objects.filter(domain=domain, username=username).exists():
        raise ValidationError(f"{domain.name} already has an account named {username}.", code="duplicate")
    for local_part in local_parts:
        ensure_address_free(domain=domain, local_part=local_part)

    template = template or domain.default_template
    account = Account(
        domain=domain,
        username=username,
        full_name=full_name.strip(),
        auth_mode=auth_mode,
        auth_value=auth_value,
        password=make_password(password) if password else "",
    )
    if template is not None:
        apply_template(account=account, template=template)
    mailbox = create_mailbox(domain_name=domain.name, username=username)
    account.mailbox_path = mailbox
    try:
        with transaction.atomic():
            account.save()
            Address.objects.bulk_create(
                Address(
                    domain=domain, local_part=local_part, account=account, position=position, source=source
                )
                for position, local_part in enumerate(local_parts)
            )
    except BaseException:
        delete_mailbox(relative_path=mailbox)
        raise
    return account


def apply_template(*, account: Account, template: UserTemplate) -> None:
    """Copy a template's defaults onto an unsaved account."""
    account.quota_mb = template.quota_mb
    account.max_message_kb = template.max_message_kb
    account.services = list(template.services)
    account.enabled = template.account_state == AccountState.ENABLED


def forget_directory_stamp(account: Account) -> None:
    """A synced account was changed here: the next sync compares it in full and puts the values back."""
    if account.is_directory_linked:
        account.directory_change_stamp = ""


def update_account(*, account: Account, changes: AccountSettings) -> Account:
    """Save the editable settings of an account."""
    if changes.auth_mode == Account.AuthMode.DIRECTORY and not changes.auth_value.strip():
        raise ValidationError("Directory authentication needs an auth value: host;login.")
    before = (account.full_name, account.auth_mode, account.auth_value, account.enabled)
    account.full_name = changes.full_name.strip()
    account.auth_mode = changes.auth_mode
    account.auth_value = changes.auth_value.strip()
    account.enabled = changes.enabled
    if account.auth_mode == Account.AuthMode.DIRECTORY:
        account.password = ""  # it signs in by a bind now; no local hash of a directory account is kept
    account.quota_mb = changes.quota_mb
    account.max_message_kb = changes.max_message_kb
    account.services = sorted(set(changes.services))
    if (account.full_name, account.auth_mode, account.auth_value, account.enabled) != before:
        forget_directory_stamp(account)
    account.full_clean(exclude=["domain", "username", "mailbox_path", "password"])
    account.save()
    return account


def set_account_password(*, account: Account, raw_password: str) -> None:
    """Set the local password used by standard authentication."""
    if account.auth_mode == Account.AuthMode.DIRECTORY:
        raise ValidationError(
            "This account signs in with its directory password: change it in the directory, or the person "
            "changes it on the self-service pages."
        )
    if not raw_password:
        raise ValidationError("Enter a password.")
    account.password = make_password(raw_password)
    account.save(update_fields=["password", "updated_at"])


def update_personal_data(*, account: Account, vcard: dict[str, str]) -> Account:
    """Save personal data typed in on this server; from now on the directory leaves it alone."""
    cleaned = {item.strip().upper(): value.strip() for item, value in vcard.items() if item.strip()}
    account.vcard = {item: value for item, value in cleaned.items() if value}
    account.vcard_edited_locally = True
    account.save(update_fields=["vcard", "vcard_edited_locally", "updated_at"])
    return account


def return_personal_data_to_directory(*, account: Account) -> Account:
    """Hand a person's personal data back to the directory: the next sync overwrites it again."""
    account.vcard_edited_locally = False
    forget_directory_stamp(account)
    account.save(update_fields=["vcard_edited_locally", "directory_change_stamp", "updated_at"])
    return account


def delete_account(*, account: Account, delete_mailbox_folder: bool = False) -> None:
    """Remove an account and its addresses; its mailbox folder stays unless asked otherwise."""
    if synced_while_active(account):
        # The next run would create it again, with an empty mailbox: the directory is where it goes.
        raise ValidationError(
            f"{account} comes from the directory, which is synchronized: remove it there (or from the user "
            "filter) and the sync removes it here. Nothing was changed."
        )
    mailbox = account.mailbox_path
    with transaction.atomic():
        account.delete()
    if delete_mailbox_folder and mailbox:
        delete_mailbox(relative_path=mailbox)
