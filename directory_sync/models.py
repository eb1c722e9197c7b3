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
    allow_plain_bind = models.BooleanField("Allow unencrypted bind", default=False)
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
    # Ours (REMOVALGRACEDAYS): a person who leaves is disabled and kept this long before removal; 0: IceWarp's
    # removal at once.
    removal_grace_days = models.PositiveSmallIntegerField("Keep removed people for (days)", default=7)

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
        UNDO = "undo", "Undo of removals"
        SYNC_ONE = "sync_one", "Sync one object"
        PUSH = "push", "Directory change (push)"

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
    # An undo is a run of its own in the history (directory_sync.services.undo), pointing at the run undone.
    undoes = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="undos",
        help_text="The run whose removals this one undid.",
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
        """What the run is ("Dry run", "Synchronization", "Undo of removals"); the trigger says only what
        started it."""
        if self.trigger == self.Trigger.UNDO:
            return "Undo of removals"
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


# Runs that touch some objects only (one explained object, a run's removals undone): their success says
# nothing of the whole domain's synchronization (the back-off, "not synchronized" alerts).
PARTIAL_TRIGGERS = (SyncRun.Trigger.SYNC_ONE, SyncRun.Trigger.UNDO)


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
        DISABLE = "disable", "Disabled, pending removal"
        RESTORE = "restore", "Restored"

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


class AlertKind(models.TextChoices):
    """What an alert is about; each kind keeps one state per domain (AlertState)."""

    RUN_FAILED = "run_failed", "A run fails or completes with errors"
    REMOVALS_WITHHELD = "removals_withheld", "Removals are withheld"
    NOT_SYNCHRONIZED = "not_synchronized", "A domain is not synchronized for N intervals"
    CONFLICT_OPEN = "conflict_open", "A conflict stays open for N runs"
    TEST = "test", "Test alert"


class AlertSettings(models.Model):
    """The server-wide alert configuration (System → Alerts): one row."""

    recipients = models.TextField(
        "E-mail recipients", blank=True, help_text="Comma-separated addresses; empty: no e-mail."
    )
    webhook_url = models.URLField(
        "Webhook URL", max_length=2000, blank=True, help_text="Each alert is POSTed there as JSON."
    )
    webhook_secret_encrypted = models.TextField(blank=True, editable=False)
    on_run_failed = models.BooleanField(AlertKind.RUN_FAILED.label, default=True)
    on_removals_withheld = models.BooleanField(AlertKind.REMOVALS_WITHHELD.label, default=True)
    on_not_synchronized = models.BooleanField(AlertKind.NOT_SYNCHRONIZED.label, default=True)
    on_conflict_open = models.BooleanField(AlertKind.CONFLICT_OPEN.label, default=True)
    not_synchronized_intervals = models.PositiveSmallIntegerField(
        "Not synchronized after (intervals)", default=3
    )
    conflict_open_runs = models.PositiveSmallIntegerField("Conflict open after (runs)", default=3)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "alert settings"
        permissions = [("send_test_alert", "Send a test alert")]

    def __str__(self) -> str:
        return "Alert settings"

    def __repr__(self) -> str:
        return f"<AlertSettings recipients={self.recipients!r} webhook={self.webhook_url!r}>"

    @property
    def has_webhook_secret(self) -> bool:
        return bool(self.webhook_secret_encrypted)

    def set_webhook_secret(self, plain: str) -> None:
        self.webhook_secret_encrypted = encrypt_secret(plain)

    def get_webhook_secret(self) -> str:
        """Only for signing a webhook request; never shown."""
        return decrypt_secret(self.webhook_secret_encrypted)

    def enabled_for(self, kind: str) -> bool:
        return bool(getattr(self, f"on_{kind}", False))


class DomainAlertSettings(models.Model):
    """A domain's additions to the server-wide alerts: extra recipients, its own webhook, or silence."""

    domain = models.OneToOneField(Domain, on_delete=models.CASCADE, related_name="alert_settings")
    enabled = models.BooleanField("Send alerts for this domain", default=True)
    extra_recipients = models.TextField(
        "Extra e-mail recipients", blank=True, help_text="Comma-separated; they get this domain's alerts too."
    )
    webhook_url = models.URLField(
        "Extra webhook URL",
        max_length=2000,
        blank=True,
        help_text="This domain's alerts are POSTed there too.",
    )
    webhook_secret_encrypted = models.TextField(blank=True, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Alert settings of {self.domain}"

    def __repr__(self) -> str:
        return f"<DomainAlertSettings domain={self.domain_id} webhook={self.webhook_url!r}>"

    @property
    def has_webhook_secret(self) -> bool:
        return bool(self.webhook_secret_encrypted)

    def set_webhook_secret(self, plain: str) -> None:
        self.webhook_secret_encrypted = encrypt_secret(plain)

    def get_webhook_secret(self) -> str:
        return decrypt_secret(self.webhook_secret_encrypted)


class AlertState(models.Model):
    """The state of one kind of alert for one domain: an alert is sent when it changes, not at every run."""

    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="alert_states")
    kind = models.CharField(max_length=20, choices=AlertKind.choices)
    alerting = models.BooleanField(default=False)
    since = models.DateTimeField(default=timezone.now, help_text="When it entered this state.")
    details = models.JSONField(
        default=dict, blank=True, help_text="What the evaluation carries from run to run (open conflicts)."
    )

    class Meta:
        ordering = ["domain", "kind"]
        constraints = [models.UniqueConstraint(fields=["domain", "kind"], name="one_alert_state_per_kind")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of {self.domain}: {'alerting' if self.alerting else 'ok'}"


class Alert(models.Model):
    """One change of state (raised or recovered) or a test, and what was said; sent by its deliveries."""

    class Event(models.TextChoices):
        RAISED = "raised", "Raised"
        RECOVERED = "recovered", "Recovered"
        TEST = "test", "Test"

    domain = models.ForeignKey(Domain, null=True, blank=True, on_delete=models.CASCADE, related_name="alerts")
    kind = models.CharField(max_length=20, choices=AlertKind.choices)
    event = models.CharField(max_length=10, choices=Event.choices)
    run = models.ForeignKey(SyncRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts")
    subject = models.CharField(max_length=300)
    message = models.TextField()
    payload = models.JSONField(help_text="The webhook's JSON body.")
    requested_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.subject


DELIVERY_ATTEMPTS = 5


class AlertDelivery(models.Model):
    """One alert through one channel: an e-mail to its recipients, or a POST to one webhook."""

    class Channel(models.TextChoices):
        EMAIL = "email", "E-mail"
        WEBHOOK = "webhook", "Webhook"

    class Source(models.TextChoices):
        """Whose configuration it came from: the webhook's secret is read from there when it is sent."""

        SERVER = "server", "Server-wide"
        DOMAIN = "domain", "Domain"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.CharField(max_length=10, choices=Channel.choices)
    source = models.CharField(max_length=10, choices=Source.choices)
    target = models.TextField(help_text="The recipients (comma-separated) or the webhook URL.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.get_channel_display()} of alert #{self.alert_id} ({self.status})"

    @property
    def will_retry(self) -> bool:
        return self.status == self.Status.FAILED and self.attempts < DELIVERY_ATTEMPTS


class SyncConflict(models.Model):
    """A directory entry that wants what something here holds (an address, a username, its id), one row per
    (domain, kind, directory key, contested value) while open. Runs open and close them; people resolve them
    (directory_sync.services.conflicts), and resolved ones stay as the history."""

    class Kind(models.TextChoices):
        ADDRESS = "address", "Address held elsewhere"
        USERNAME = "username", "Username clash"
        OTHER_DOMAIN = "other_domain", "Entry synced by another domain"
        MOVED_ID = "moved_id", "Directory id moved"
        DUPLICATE_ID = "duplicate_id", "Two entries with one id"
        WITHHELD = "withheld", "Waits for a withheld removal"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        RESOLVED = "resolved", "Resolved"

    class Resolution(models.TextChoices):
        KEPT_LOCAL = "kept_local", "Kept the local one"
        GIVEN = "given", "Given to the directory's entry"
        ADOPTED = "adopted", "Local account linked to the entry"
        BY_DIRECTORY = "by_directory", "Resolved by the directory"

    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="sync_conflicts")
    object_type = models.CharField(max_length=10, choices=SyncEvent.ObjectType.choices)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    directory_key = models.CharField(max_length=64, help_text="The entry's directory id (or mail:<address>).")
    value = models.CharField(
        max_length=320, blank=True, help_text="What is contested: a local part, a username, a domain, an id."
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    # The directory's side.
    dn = models.TextField(blank=True)
    label = models.CharField(max_length=320)
    wanted_addresses = models.JSONField(default=list, blank=True)
    wanted_username = models.CharField(max_length=64, blank=True)
    entry_account = models.ForeignKey(
        "mailserver.Account", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    entry_group = models.ForeignKey(
        "mailserver.Group", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The local side: who holds the contested value.
    holder = models.CharField(max_length=500, help_text="The holder in words, as the run found it.")
    holder_account = models.ForeignKey(
        "mailserver.Account", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    holder_group = models.ForeignKey(
        "mailserver.Group", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    holder_linked = models.BooleanField(default=False, help_text="The holder is synced from the directory.")
    holder_key = models.CharField(max_length=64, blank=True)
    holder_source = models.CharField(
        max_length=10, blank=True, help_text="directory or manual: where the contested address came from."
    )
    reason = models.TextField(blank=True)
    first_seen_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    first_run = models.ForeignKey(SyncRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    last_run = models.ForeignKey(SyncRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    runs_seen = models.PositiveIntegerField(default=1)
    # Set by an action: the next run reads the entry again by its id, whatever the change tracking says.
    recheck = models.BooleanField(default=False)
    resolution = models.CharField(max_length=20, choices=Resolution.choices, blank=True)
    resolved_by = models.CharField(max_length=150, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution_note = models.TextField(blank=True, help_text="What the action did, in words.")
    resolution_run = models.ForeignKey(
        SyncRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-last_seen_at", "-id"]
        indexes = [
            models.Index(fields=["status", "-last_seen_at"], name="conflict_status_seen"),
            models.Index(fields=["domain", "status"], name="conflict_domain_status"),
            models.Index(fields=["domain", "resolution"], name="conflict_domain_resolution"),
            models.Index(fields=["domain"], condition=models.Q(recheck=True), name="conflict_recheck"),
        ]
        constraints = [
            # Resolved rows are the history: the same claim may open again later, as a new row.
            models.UniqueConstraint(
                fields=["domain", "object_type", "kind", "directory_key", "value"],
                condition=models.Q(status="open"),
                name="one_open_conflict_per_claim",
            )
        ]
        permissions = [("resolve_syncconflict", "Resolve directory conflicts")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.label} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status == self.Status.OPEN


class DirectoryWatch(models.Model):
    """A domain's push watcher (directory_sync/sync/watch.py): which watcher process holds it (a lease it
    renews), how it listens, and how far behind the directory the domain is."""

    class State(models.TextChoices):
        CONNECTING = "connecting", "Connecting"
        WATCHING = "watching", "Watching"
        RECONNECTING = "reconnecting", "Reconnecting"
        UNSUPPORTED = "unsupported", "Not supported by the directory"
        STOPPED = "stopped", "Stopped"

    domain = models.OneToOneField(Domain, on_delete=models.CASCADE, related_name="directory_watch")
    owner = models.CharField(max_length=200, blank=True, help_text="host:pid:token of the watcher process.")
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    state = models.CharField(max_length=20, choices=State.choices, default=State.STOPPED)
    method = models.CharField(max_length=60, blank=True, help_text="How the directory pushes its changes.")
    server = models.CharField(max_length=300, blank=True)
    detail = models.TextField(blank=True, help_text="The last error, or why the directory cannot push.")
    watching_since = models.DateTimeField(null=True, blank=True)
    last_change_at = models.DateTimeField(null=True, blank=True, help_text="When the last change arrived.")
    pending_since = models.DateTimeField(
        null=True, blank=True, help_text="When the oldest change not applied yet arrived."
    )
    last_applied_at = models.DateTimeField(null=True, blank=True)
    last_lag_seconds = models.FloatField(
        null=True, blank=True, help_text="From the first change of the last batch arriving to its run's end."
    )
    last_run = models.ForeignKey(SyncRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    changes_received = models.PositiveBigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Watcher of {self.domain} ({self.state})"

    @property
    def held(self) -> bool:
        """A live watcher process holds the domain (its lease has not run out)."""
        expires = self.lease_expires_at
        return bool(self.owner) and expires is not None and expires > timezone.now()


class WatcherProcess(models.Model):
    """A running `manage.py directory_watch`: the domains are shared out among the live ones."""

    owner = models.CharField(max_length=200, unique=True)
    host = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField(auto_now_add=True)
    seen_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.owner
