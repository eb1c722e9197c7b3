"""The Directory Service's own records: per-domain settings (IceWarp's syncad.dat), their history, keytabs,
connection checks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.utils import timezone

from directory_sync.choices import LoginSource, ServerType, SsoMatching, UsernameSource
from directory_sync.secrets import decrypt_secret, encrypt_secret
from icewarp_admin.mailserver.models import Domain

if TYPE_CHECKING:
    from directory_sync.servers.base import ServerProfile

__all__ = [
    "BackgroundJob",
    "ConnectionCheck",
    "DirectorySettings",
    "JobStatus",
    "Keytab",
    "LoginSource",
    "ServerType",
    "SettingsChange",
    "SignIn",
    "SsoMatching",
    "UsernameSource",
]


class DirectorySettings(models.Model):
    """One domain's Directory Service configuration: every key of IceWarp's <DOMAIN> block in syncad.dat."""

    domain = models.OneToOneField(Domain, on_delete=models.CASCADE, related_name="directory_settings")

    # General
    active = models.BooleanField("Synchronize users and groups with directory service", default=False)
    directory_sign_in = models.BooleanField(
        "Synced users sign in with their directory password", default=True
    )

    # Server
    host = models.CharField("Hostname", max_length=300, blank=True)
    backup_host = models.CharField("Backup hostname", max_length=300, blank=True)
    bind_user = models.CharField("User", max_length=500, blank=True)
    bind_password_encrypted = models.TextField(blank=True, editable=False)
    base_dn = models.TextField("DN", blank=True)
    use_starttls = models.BooleanField("Use StartTLS on ldap://", default=False)
    verify_certificate = models.BooleanField("Verify the server's certificate", default=True)
    ca_bundle = models.TextField("Trusted CA certificates (PEM)", blank=True)
    timeout_seconds = models.PositiveSmallIntegerField("Timeout (seconds)", default=10)
    page_size = models.PositiveSmallIntegerField("Search page size", default=500)

    # Advanced
    server_type = models.CharField(
        "LDAP server type", max_length=10, choices=ServerType.choices, default=ServerType.GENERIC
    )
    sync_accounts = models.BooleanField("Synchronize users", default=True)
    account_filter = models.TextField("User filter", blank=True)
    sync_groups = models.BooleanField("Synchronize groups", default=True)
    group_filter = models.TextField("Group filter", blank=True)
    sync_mailing_lists = models.BooleanField("Synchronize mailing lists", default=False)
    mailing_list_filter = models.TextField("Mailing list filter", blank=True)
    host_domain_active = models.BooleanField(
        "Directory service domain is different from this domain name", default=False
    )
    host_domain = models.CharField("Directory service domain", max_length=1000, blank=True)
    login_source = models.CharField(
        "AD login source", max_length=20, choices=LoginSource.choices, default=LoginSource.USER_PRINCIPAL_NAME
    )
    username_source = models.CharField(
        "Local username source",
        max_length=10,
        choices=UsernameSource.choices,
        default=UsernameSource.PRIMARY_ALIAS,
    )
    username_attribute = models.CharField(
        "Local username source, custom attribute", max_length=100, blank=True
    )
    add_login_to_aliases = models.BooleanField("Add AD login to local alias", default=False)
    guid_attribute = models.CharField("Immutable id attribute", max_length=100, blank=True)
    guid_is_binary = models.BooleanField("Immutable id is binary", default=False)
    change_stamp_attribute = models.CharField("Change stamp attribute", max_length=100, blank=True)
    allow_missing_change_stamp = models.BooleanField("Allow entries without a change stamp", default=False)
    full_name_from_given_and_sn = models.BooleanField("Full name from givenName and sn", default=False)
    display_name_from_given_name = models.BooleanField("Display name from givenName", default=False)
    vcard_map = models.TextField("vCard map", blank=True)
    directory_vcard_wins = models.BooleanField("Directory overwrites local vCard edits", default=False)
    disable_vcard_sync = models.BooleanField("Do not synchronize personal data (vCard)", default=False)
    disable_vcard_domain_rename = models.BooleanField(
        "Do not rewrite the domain in vCard e-mails", default=False
    )
    group_remote_members = models.BooleanField(
        "Groups may hold members from outside this domain", default=False
    )
    create_ou_groups = models.BooleanField("Create groups for organizational units", default=False)
    ou_groups_root = models.TextField("Root organizational unit", blank=True)
    ou_groups_root_name = models.CharField("Name of the root group", max_length=255, blank=True)
    delete_all_data = models.BooleanField("Delete mail data of removed accounts", default=False)

    # Kerberos / SSO
    sso_active = models.BooleanField("Enable single sign-on (Kerberos)", default=False)
    sso_service_name = models.CharField("Service name", max_length=500, blank=True)
    sso_matching = models.PositiveSmallIntegerField(
        "Remote account matching", choices=SsoMatching.choices, default=SsoMatching.USERNAME
    )

    # syncad.dat keys without behaviour here (and unknown ones), kept in file order and written back.
    extra_keys = models.JSONField(default=dict, blank=True)

    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "directory settings"
        permissions = [
            ("run_sync", "Run Synchronize Now"),
            ("test_connection", "Run Test connection"),
        ]

    def __str__(self) -> str:
        return f"Directory Service of {self.domain}"

    def __repr__(self) -> str:
        # Never the encrypted password, not even in a traceback.
        return f"<DirectorySettings domain={self.domain_id} host={self.host!r}>"

    @property
    def has_bind_password(self) -> bool:
        return bool(self.bind_password_encrypted)

    def set_bind_password(self, plain: str) -> None:
        self.bind_password_encrypted = encrypt_secret(plain)

    def get_bind_password(self) -> str:
        """The decrypted bind password: only for the LDAP bind, never for display, logs or task messages."""
        return decrypt_secret(self.bind_password_encrypted)

    @property
    def profile(self) -> ServerProfile:
        from directory_sync.servers import profile_for

        return profile_for(self.server_type)

    @property
    def effective_guid_attribute(self) -> str:
        return self.guid_attribute or self.profile.defaults.guid_attribute

    @property
    def effective_guid_is_binary(self) -> bool:
        return self.guid_is_binary if self.guid_attribute else self.profile.defaults.guid_is_binary

    @property
    def effective_change_stamp_attribute(self) -> str:
        return self.change_stamp_attribute or self.profile.defaults.change_stamp_attribute

    @property
    def effective_account_filter(self) -> str:
        """As typed (a bare objectClass or a full filter); directory_sync.ldap.filters normalizes it."""
        return self.account_filter or self.profile.defaults.account_filter

    @property
    def effective_group_filter(self) -> str:
        return self.group_filter or self.profile.defaults.group_filter


class SettingsChange(models.Model):
    """One save of a domain's directory settings: who, when, which fields, old and new (secrets masked)."""

    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="directory_settings_changes")
    changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    changed_by_name = models.CharField(max_length=150, blank=True, help_text="Kept when the user is deleted.")
    source = models.CharField(
        max_length=40, default="console", help_text="console, syncad import, command line"
    )
    changed_at = models.DateTimeField(auto_now_add=True, db_index=True)
    changes = models.JSONField(help_text="field → [old, new]")

    class Meta:
        ordering = ["-changed_at", "-id"]

    def __str__(self) -> str:
        return f"{self.domain} {self.changed_at:%Y-%m-%d %H:%M} {', '.join(self.changes)}"

    def changed_fields(self) -> list[tuple[str, str, str]]:
        """(label, old, new) as people read them: the form's label, Yes/No, a choice's label."""
        from directory_sync.display import setting_label, setting_text

        return [
            (setting_label(field), setting_text(field, old), setting_text(field, new))
            for field, (old, new) in self.changes.items()
        ]


class Keytab(models.Model):
    """A Kerberos keytab file for SSO, kept under CONFIG_DIR/_keytabs as IceWarp keeps them."""

    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="keytabs")
    file_name = models.CharField(max_length=255, unique=True, help_text="The principal, with / written #.")
    principal = models.CharField(max_length=255)
    entries = models.JSONField(help_text="[{principal, kvno, enctype, enctype_name, timestamp}] as parsed")
    size = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    uploaded_by = models.CharField(max_length=150, blank=True)
    uploaded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["file_name"]

    def __str__(self) -> str:
        return self.file_name


class JobStatus(models.TextChoices):
    """The one lifecycle of everything that runs in the background: queued → running → an ending."""

    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    # It ran to its end, but did not read the directory in full (a search failed or was cut short): what was
    # read was applied, nothing was removed on the strength of it.
    PARTIAL = "partial", "Completed with errors"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"


ACTIVE_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)
FINISHED_STATUSES = (JobStatus.SUCCEEDED, JobStatus.PARTIAL, JobStatus.FAILED, JobStatus.SKIPPED)
# The badge class (static/css/console.css) of each status; any other status is amber ("warn").
STATUS_BADGES: dict[str, str] = {JobStatus.SUCCEEDED: "ok", JobStatus.FAILED: "off"}
# How often a page asks about a run still going on, by the run's age in seconds: small runs end in a fraction
# of a second, so the first answers come quickly; a long run is asked less often.
POLL_INTERVALS = ((5, "250ms"), (30, "1s"))
POLL_INTERVAL_LATER = "2s"


class BackgroundJob(models.Model):
    """A row per job with explicit states; a worker claims it, beats while it runs, and ends it
    (directory_sync.services.jobs). A job whose worker died stops beating and is failed by the reaper."""

    Status = JobStatus

    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="+")
    requested_by = models.CharField(max_length=150, blank=True)
    status = models.CharField(
        max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED, db_index=True
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="Last sign of life of the worker running it."
    )

    class Meta:
        abstract = True
        ordering = ["-created_at", "-id"]

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    @property
    def duration_s(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class ConnectionCheck(BackgroundJob):
    """One run of Test connection, polled by the tab until it ends."""

    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="connection_checks")
    result = models.JSONField(null=True, blank=True)
    # "Test these settings": the form's values, not saved (the bind password encrypted, as stored). None: the
    # domain's saved settings.
    unsaved_settings = models.JSONField(null=True, blank=True, editable=False)

    class Meta(BackgroundJob.Meta):
        pass

    def __str__(self) -> str:
        return f"Test connection of {self.domain} ({self.status})"

    @property
    def tests_unsaved_settings(self) -> bool:
        return self.unsaved_settings is not None


PHASE_LABELS = {
    "read": "Reading the directory",
    "load": "Loading the domain's accounts and groups",
    "plan": "Planning",
    "guard": "Checking removals",
    "apply": "Applying",
    "record": "Recording events",
}


class SyncRun(BackgroundJob):
    """One synchronization of a domain (or a dry run of one), and its events."""

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule", "Schedule"
        MANUAL = "manual", "Synchronize Now"
        COMMAND = "command", "Command line"
        APPROVAL = "approval", "Approved removals"

    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="sync_runs")
    trigger = models.CharField(max_length=10, choices=Trigger.choices)
    dry_run = models.BooleanField(default=False)
    # Progress, updated while running (the tab polls it).
    phase = models.CharField(max_length=20, blank=True)
    entries_read = models.PositiveIntegerField(default=0)
    entries_total = models.PositiveIntegerField(null=True, blank=True)
    actions_planned = models.PositiveIntegerField(
        default=0, help_text="Creations, updates, renames and removals the run means to apply (no skips)."
    )
    actions_applied = models.PositiveIntegerField(
        default=0, help_text="Creations, updates, renames and removals applied (none in a dry run)."
    )
    # Outcome.
    counts = models.JSONField(
        default=dict, blank=True, help_text='{"accounts": {"created": n, ...}, "groups": {...}}'
    )
    conflicts = models.PositiveIntegerField(default=0)
    removals_withheld = models.PositiveIntegerField(default=0)
    withheld_reason = models.TextField(blank=True)
    full_scan = models.BooleanField(
        default=True, help_text="Every entry was compared, not only changed ones."
    )
    tracking = models.CharField(
        max_length=120,
        blank=True,
        help_text="How the run learned what changed: a full read (and why), syncrepl, USN...",
    )
    phases = models.JSONField(
        default=dict,
        blank=True,
        help_text="Seconds spent in each phase: read, load, plan, guard, apply, record.",
    )
    warnings = models.JSONField(default=list, blank=True)
    warning_objects = models.JSONField(
        default=dict,
        blank=True,
        help_text='Warning number → the objects it names: {"summary": text, "objects": [DN or address, ...], '
        '"total": n, "action": event action listing them}; the first 5,000 objects are kept.',
    )
    errors = models.JSONField(
        default=list, blank=True, help_text="Why it failed, or what it did not read (completed with errors)."
    )
    # Withheld removals: an administrator approves them (a new run applies them after checking the directory
    # again) or dismisses them.
    approves = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="approvals",
        help_text="The run whose withheld removals this run applies.",
    )
    withheld_resolution = models.CharField(
        max_length=10, blank=True, choices=[("approved", "Approved"), ("dismissed", "Dismissed")]
    )
    resolved_by = models.CharField(max_length=150, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta(BackgroundJob.Meta):
        indexes = [models.Index(fields=["domain", "-created_at"])]
        constraints = [
            # The per-domain lock: at most one queued or running run per domain, kept by the database itself,
            # so it holds across web servers and workers on any machine and never expires under a live run.
            models.UniqueConstraint(
                fields=["domain"],
                condition=models.Q(status__in=["queued", "running"]),
                name="one_active_sync_run_per_domain",
            )
        ]
        permissions = [("approve_removals", "Approve or dismiss withheld removals")]

    def __str__(self) -> str:
        kind = "Dry run" if self.dry_run else "Sync"
        return f"{kind} of {self.domain} #{self.pk} ({self.status})"

    @property
    def title(self) -> str:
        """What the run is ("Dry run", "Synchronization"); the trigger says only what started it."""
        return "Dry run" if self.dry_run else "Synchronization"

    @property
    def requester(self) -> str:
        """Who asked for it, unless that only repeats the trigger (the schedule, the command line)."""
        who = self.requested_by.strip()
        if who.casefold() in {self.trigger.casefold(), str(self.get_trigger_display()).casefold()}:
            return ""
        return who

    @property
    def status_badge(self) -> str:
        return STATUS_BADGES.get(self.status, "warn")

    @property
    def poll_every(self) -> str:
        """The htmx polling interval for this run now ("250ms", "1s", "2s")."""
        age = (timezone.now() - self.created_at).total_seconds() if self.created_at else 0.0
        return next((every for seconds, every in POLL_INTERVALS if age < seconds), POLL_INTERVAL_LATER)

    def count_summaries(self) -> list[tuple[str, str]]:
        """("Accounts", "created 2 · unchanged 5"), one per kind of object counted; zeros left out."""
        summaries = []
        for kind, counts in (self.counts or {}).items():
            if isinstance(counts, dict):
                parts = [f"{name.replace('_', ' ')} {value}" for name, value in counts.items() if value]
                label = kind.replace("_", " ").capitalize()
                summaries.append((label, " · ".join(parts) or "nothing compared"))
        return summaries

    @property
    def phase_label(self) -> str:
        """The phase going on, in words."""
        return PHASE_LABELS.get(self.phase, self.phase.capitalize() or "Starting")

    def phase_timings(self) -> list[tuple[str, float]]:
        """(phase in words, seconds) in the order the phases ran."""
        return [
            (PHASE_LABELS.get(name, name), float(seconds)) for name, seconds in (self.phases or {}).items()
        ]


class SyncEvent(models.Model):
    """One object a run touched (or, in a dry run, would touch): what, how, fields before → after, why."""

    class Action(models.TextChoices):
        CREATE = "create", "Created"
        UPDATE = "update", "Updated"
        RENAME = "rename", "Renamed"
        REMOVE = "remove", "Removed"
        SKIP = "skip", "Skipped"
        CONFLICT = "conflict", "Conflict"
        WITHHELD = "withheld", "Removal withheld"

    class ObjectType(models.TextChoices):
        ACCOUNT = "account", "Account"
        GROUP = "group", "Group"

    run = models.ForeignKey(SyncRun, on_delete=models.CASCADE, related_name="events")
    object_type = models.CharField(max_length=10, choices=ObjectType.choices)
    action = models.CharField(max_length=10, choices=Action.choices)
    label = models.CharField(max_length=320, help_text="The object as people know it: its address or alias.")
    directory_id = models.CharField(max_length=64, blank=True)
    dn = models.TextField(blank=True)
    account = models.ForeignKey(
        "mailserver.Account", null=True, blank=True, on_delete=models.SET_NULL, related_name="sync_events"
    )
    group = models.ForeignKey(
        "mailserver.Group", null=True, blank=True, on_delete=models.SET_NULL, related_name="sync_events"
    )
    fields = models.JSONField(default=dict, blank=True, help_text="field → [before, after]")
    reason = models.TextField(blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["run", "action"]), models.Index(fields=["directory_id"])]

    def __str__(self) -> str:
        return f"{self.get_action_display()} {self.object_type} {self.label}"


class SyncState(models.Model):
    """What the next run of a domain needs to know from the last one (change tracking)."""

    domain = models.OneToOneField(Domain, on_delete=models.CASCADE, related_name="sync_state")
    config_fingerprint = models.CharField(
        max_length=64,
        blank=True,
        help_text="Settings the mapping depends on; a change forces a full reprocess.",
    )
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_read_started_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the last successful run began reading: later stamps are re-read.",
    )
    cursor = models.JSONField(default=dict, blank=True, help_text="Server-specific change-tracking position.")
    id_attribute = models.CharField(
        max_length=120,
        blank=True,
        help_text="The id attribute the synced objects were linked by; when the settings name another, the "
        "next run links them again by DN or address instead of removing and re-creating them.",
    )

    def __str__(self) -> str:
        return f"Sync state of {self.domain}"


class SignIn(models.Model):
    """One attempt of a mail user to sign in (or to change their password): who, from where, how it ended.

    Never the password. The rows are also the throttle's memory: recent failures per account and per client.
    """

    class Channel(models.TextChoices):
        WEB = "web", "Self-service pages"
        IMAP = "imap", "Mail server (checkpassword)"
        COMMAND = "command", "Command line"
        CONSOLE = "console", "Console"

    class Action(models.TextChoices):
        SIGN_IN = "sign_in", "Sign-in"
        PASSWORD_CHANGE = "password_change", "Password change"

    class Method(models.TextChoices):
        PASSWORD = "password", "Local password"
        DIRECTORY = "directory", "Directory bind"
        KERBEROS = "kerberos", "Kerberos (single sign-on)"
        NONE = "", "None"

    class Reason(models.TextChoices):
        OK = "ok", "Signed in"
        BAD_PASSWORD = "bad_password", "Wrong password"
        UNKNOWN = "unknown", "Unknown address"
        DISABLED = "disabled", "Disabled"
        THROTTLED = "throttled", "Too many failures"
        DIRECTORY_DOWN = "directory_down", "Directory did not answer"
        EXPIRED = "expired", "Password expired"
        LOCKED = "locked", "Locked by the directory"
        POLICY = "policy", "New password refused"
        NOT_PERMITTED = "not_permitted", "Change not permitted"
        TICKET = "ticket", "Kerberos ticket refused"
        # An administrator forgave the failures before it (the throttle counts from here, as after a success).
        CLEARED = "cleared", "Failures cleared"
        # Written before the password is checked: parallel attempts count each other (see auth.throttle).
        PENDING = "pending", "In progress"

    account = models.ForeignKey(
        "mailserver.Account", null=True, blank=True, on_delete=models.SET_NULL, related_name="sign_ins"
    )
    address = models.CharField(max_length=320, help_text="As typed (trimmed, lower case).")
    client = models.CharField(max_length=64, blank=True, help_text="The client's IP address, when known.")
    channel = models.CharField(max_length=10, choices=Channel.choices)
    action = models.CharField(max_length=20, choices=Action.choices, default=Action.SIGN_IN)
    method = models.CharField(max_length=10, choices=Method.choices, blank=True)
    reason = models.CharField(max_length=20, choices=Reason.choices, default=Reason.PENDING)
    detail = models.CharField(max_length=500, blank=True)
    host = models.CharField(max_length=300, blank=True, help_text="The directory server that answered.")
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["account", "at"], name="signin_account_at"),
            models.Index(fields=["client", "at"], name="signin_client_at"),
            models.Index(fields=["at"], name="signin_at"),
        ]
        permissions = [("clear_failures", "Clear a mail user's sign-in failures")]

    def __str__(self) -> str:
        return f"{self.address} {self.reason} at {self.at:%Y-%m-%d %H:%M:%S}"

    @property
    def ok(self) -> bool:
        return self.reason == self.Reason.OK
