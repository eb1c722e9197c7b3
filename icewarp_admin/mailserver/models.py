"""The mail server's own concepts, named as IceWarp names them."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from icewarp_admin.mailserver.validators import display_domain_name


class Service(models.TextChoices):
    SMTP = "smtp", "SMTP"
    POP3 = "pop3", "POP3"
    IMAP = "imap", "IMAP"
    WEBMAIL = "webmail", "WebClient"
    GROUPWARE = "groupware", "Groupware"
    ACTIVESYNC = "activesync", "ActiveSync"
    WEBDAV = "webdav", "WebDAV"
    IM = "im", "Instant messaging"
    SMS = "sms", "SMS"
    FTP = "ftp", "FTP"


def all_services() -> list[str]:
    """Every service, the default set a new template enables."""
    return [service.value for service in Service]


def validate_services(value: Any) -> None:
    """Check a stored list of enabled services."""
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValidationError("Services must be a list of service names.")
    unknown = sorted(set(value) - set(Service.values))
    if unknown:
        raise ValidationError(f"Unknown services: {', '.join(unknown)}.")


class Provenance(models.TextChoices):
    """Where a piece of data came from: the directory owns it, or somebody typed it in."""

    DIRECTORY = "directory", "Directory"
    MANUAL = "manual", "Manual"


class AccountState(models.TextChoices):
    ENABLED = "enabled", "Enabled"
    DISABLED = "disabled", "Disabled"


class UserTemplate(models.Model):
    """Defaults applied once, when an account is created."""

    name = models.CharField(max_length=100, unique=True)
    description = models.CharField(max_length=255, blank=True)
    quota_mb = models.PositiveIntegerField("mailbox quota (MB)", default=0, help_text="0 means unlimited.")
    max_message_kb = models.PositiveIntegerField(
        "largest outgoing message (kB)", default=0, help_text="0 means the server's limit."
    )
    services = models.JSONField(default=all_services, blank=True, validators=[validate_services])
    account_state = models.CharField(
        max_length=10, choices=AccountState.choices, default=AccountState.ENABLED
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Domain(models.Model):
    name = models.CharField(max_length=253, unique=True, help_text="Lower-case ASCII (IDNA) form.")
    description = models.CharField(max_length=255, blank=True)
    default_template = models.ForeignKey(
        UserTemplate, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def display_name(self) -> str:
        return display_domain_name(self.name)


class DirectoryLinked(models.Model):
    """The link of a local object to the directory entry it is synced from (none: a local-only object)."""

    # NULL, not "": a local-only object has no id, and the unique (domain, guid) constraint must skip it.
    directory_guid = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    directory_dn = models.TextField(blank=True)
    # The DN as a fixed-size key (sha1 of its normalized form): a group that lists a member by DN finds the
    # member's row through an index, without reading every synced object (directory_sync.sync.snapshot).
    directory_dn_hash = models.CharField(max_length=40, blank=True)
    directory_change_stamp = models.CharField(max_length=64, blank=True)
    directory_last_seen = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True

    @property
    def is_directory_linked(self) -> bool:
        return self.directory_guid is not None


class Account(DirectoryLinked):
    class AuthMode(models.TextChoices):
        STANDARD = "standard", "Standard (local password)"
        DIRECTORY = "directory", "LDAP / Active Directory"

    domain = models.ForeignKey(Domain, on_delete=models.PROTECT, related_name="accounts")
    username = models.CharField(max_length=64)
    full_name = models.CharField(max_length=255, blank=True)
    # IceWarp's u_authmodevalue: "host;login" for directory auth. No length limit (IceWarp stopped at 116).
    auth_mode = models.CharField(max_length=10, choices=AuthMode.choices, default=AuthMode.STANDARD)
    auth_value = models.TextField(blank=True)
    password = models.CharField(
        max_length=128, blank=True, help_text="Django password hash; standard auth only."
    )
    enabled = models.BooleanField(default=True)
    quota_mb = models.PositiveIntegerField("mailbox quota (MB)", default=0)
    max_message_kb = models.PositiveIntegerField("largest outgoing message (kB)", default=0)
    services = models.JSONField(default=all_services, blank=True, validators=[validate_services])
    vcard = models.JSONField(default=dict, blank=True, help_text="Personal data: vCard item → value.")
    vcard_edited_locally = models.BooleanField(
        default=False, help_text="The person edited their personal data; the directory stops overwriting it."
    )
    mailbox_path = models.CharField(max_length=512, help_text="Maildir folder, relative to the mail root.")
    # The login name groups list their posix members by (memberUid): uid, or sAMAccountName on AD.
    directory_uid = models.CharField(max_length=255, blank=True)
    # Soft removal: a person who left the directory is disabled and kept until this moment, then removed by
    # the next run (directory_sync.sync.planning); enabled_before_removal is what a return or an undo
    # restores.
    removal_due_at = models.DateTimeField("pending removal until", null=True, blank=True)
    # A default in the database too: the sync inserts accounts with COPY, naming only the columns it fills.
    enabled_before_removal = models.BooleanField(default=True, db_default=True)
    # An administrator undid its removal: runs keep it, although its entry is missing, until then.
    removal_kept_until = models.DateTimeField("kept by an undo until", null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["username"]
        indexes = [
            models.Index(fields=["domain", "directory_dn_hash"], name="account_directory_dn"),
            models.Index(fields=["domain", "directory_uid"], name="account_directory_uid"),
            # Synced accounts changed here (their stamp was forgotten): each run looks them up, so that the
            # change is put back at the next run even when the directory reports nothing new.
            models.Index(
                fields=["domain"],
                condition=Q(directory_change_stamp="", directory_guid__isnull=False),
                name="account_edited_here",
            ),
            # Every run looks up the domain's pending removals that are due.
            models.Index(
                fields=["domain", "removal_due_at"],
                condition=Q(removal_due_at__isnull=False),
                name="account_pending_removal",
            ),
        ]
        constraints = [
            models.UniqueConstraint(fields=["domain", "username"], name="account_username_unique_in_domain"),
            models.UniqueConstraint(
                fields=["domain", "directory_guid"],
                condition=Q(directory_guid__isnull=False),
                name="account_guid_unique_in_domain",
            ),
        ]
        permissions = [
            ("return_vcard_to_directory", "Hand a person's personal data back to the directory"),
        ]

    def __str__(self) -> str:
        return f"{self.username}@{self.domain.name}"

    @property
    def email(self) -> str:
        """The primary address; aliases are expected to be prefetched in list views."""
        primary = next(iter(self.aliases.all()), None)
        return primary.address if primary else f"{self.username}@{self.domain.name}"


class Group(DirectoryLinked):
    class Kind(models.TextChoices):
        GROUP = "group", "Group"
        MAILING_LIST = "mailing_list", "Mailing list"

    domain = models.ForeignKey(Domain, on_delete=models.PROTECT, related_name="groups")
    address = models.OneToOneField("Address", on_delete=models.PROTECT, related_name="group")
    name = models.CharField(max_length=255)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.GROUP)
    description = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["address__local_part"]
        indexes = [
            models.Index(fields=["domain", "directory_dn_hash"], name="group_directory_dn"),
            models.Index(
                fields=["domain"],
                condition=Q(directory_change_stamp="", directory_guid__isnull=False),
                name="group_edited_here",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["domain", "directory_guid"],
                condition=Q(directory_guid__isnull=False),
                name="group_guid_unique_in_domain",
            ),
        ]

    def __str__(self) -> str:
        return self.address.address

    @property
    def alias(self) -> str:
        return self.address.local_part


class Address(models.Model):
    """Every address the server delivers to; one row per address, so each is unique server-wide."""

    domain = models.ForeignKey(Domain, on_delete=models.PROTECT, related_name="addresses")
    local_part = models.CharField(max_length=64)
    account = models.ForeignKey(
        Account, null=True, blank=True, on_delete=models.CASCADE, related_name="aliases"
    )
    position = models.PositiveSmallIntegerField(default=0, help_text="0 is the account's primary address.")
    source = models.CharField(max_length=10, choices=Provenance.choices, default=Provenance.MANUAL)

    class Meta:
        ordering = ["position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["domain", "local_part"], name="address_unique_on_server"),
        ]
        indexes = [models.Index(fields=["account", "position"])]
        verbose_name_plural = "addresses"

    def __str__(self) -> str:
        return self.address

    @property
    def address(self) -> str:
        return f"{self.local_part}@{self.domain.name}"


class GroupMember(models.Model):
    """One member of a group: an account, a nested group, or a remote address."""

    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="memberships")
    account = models.ForeignKey(
        Account, null=True, blank=True, on_delete=models.CASCADE, related_name="group_memberships"
    )
    member_group = models.ForeignKey(
        Group, null=True, blank=True, on_delete=models.CASCADE, related_name="parent_memberships"
    )
    remote_address = models.CharField(max_length=254, blank=True)
    source = models.CharField(max_length=10, choices=Provenance.choices, default=Provenance.MANUAL)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(account__isnull=False, member_group__isnull=True, remote_address="")
                    | Q(account__isnull=True, member_group__isnull=False, remote_address="")
                    | (Q(account__isnull=True, member_group__isnull=True) & ~Q(remote_address=""))
                ),
                name="group_member_is_exactly_one_kind",
            ),
            models.CheckConstraint(
                condition=~Q(member_group=models.F("group")), name="group_not_member_of_itself"
            ),
            models.UniqueConstraint(
                fields=["group", "account"], condition=Q(account__isnull=False), name="group_account_once"
            ),
            models.UniqueConstraint(
                fields=["group", "member_group"],
                condition=Q(member_group__isnull=False),
                name="group_group_once",
            ),
            models.UniqueConstraint(
                fields=["group", "remote_address"], condition=~Q(remote_address=""), name="group_remote_once"
            ),
        ]

    def __str__(self) -> str:
        if self.account_id:
            return f"account {self.account_id}"
        if self.member_group_id:
            return f"group {self.member_group_id}"
        return self.remote_address


class SystemVariable(models.Model):
    """A global API variable that differs from its default; specs and defaults live in system_variables.py."""

    name = models.CharField(max_length=100, primary_key=True)
    value = models.TextField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name}={self.value}"
