"""Undo a run's removals: the accounts it disabled pending removal are enabled again, and those already
removed are restored from their removal's record while their mail is still on disk.

The undo is a run of its own (trigger "Undo of removals", who asked for it, its events), taken under the
domain's run lock. The accounts it brings back are kept although their entries are missing, until the entry
is back or for the domain's grace period (at least UNDO_KEEPS_AT_LEAST_DAYS): long enough to fix the filter or
the DN that made them leave. Runs say which accounts they keep so. After that, an account whose entry is
still missing leaves again: disabled, pending removal, guarded like any removal.

Groups are not restored: a group has no mailbox or personal data, and comes back whole (alias, name, members)
with its entry. Memberships of restored accounts come back when the directory's groups are read again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from directory_sync.models import JobStatus, SyncEvent, SyncRun
from directory_sync.services.jobs import finish
from directory_sync.services.settings import settings_for
from directory_sync.sync.changes import listed
from directory_sync.sync.snapshot import chunked
from directory_sync.sync.writes import insert_rows, instances
from icewarp_admin.mailserver.models import Account, Address, Domain, Provenance
from icewarp_admin.mailserver.services.mailboxes import mailbox_exists

UNDO_KEEPS_AT_LEAST_DAYS = 7
ACCOUNT = SyncEvent.ObjectType.ACCOUNT
DISABLE, REMOVE, RESTORE, SKIP = (
    SyncEvent.Action.DISABLE,
    SyncEvent.Action.REMOVE,
    SyncEvent.Action.RESTORE,
    SyncEvent.Action.SKIP,
)
EVENT_FIELDS = ["run", "object_type", "action", "label", "directory_id", "dn", "account", "fields", "reason"]


class UndoRefused(Exception):
    """The run's removals cannot be undone (now); the message says why."""


@dataclass(frozen=True)
class UndoOffer:
    """What the run page offers: how many accounts the run disabled and removed, and its undo if done."""

    disabled: int
    removed: int
    undo: SyncRun | None
    keep_days: int

    @property
    def any(self) -> bool:
        return bool(self.disabled or self.removed)


def undo_offer(*, run: SyncRun) -> UndoOffer | None:
    """None for a run whose removals cannot be undone (a dry run, an unfinished run, an undo itself)."""
    if run.dry_run or not run.is_finished or run.trigger == SyncRun.Trigger.UNDO:
        return None
    events = SyncEvent.objects.filter(run=run, object_type=ACCOUNT)
    disabled = events.filter(action=DISABLE).count()
    removed = events.filter(action=REMOVE).count()
    undo = run.undos.exclude(status=JobStatus.FAILED).order_by("-created_at").first()
    return UndoOffer(disabled, removed, undo, keep_days(run.domain))


def keep_days(domain: Domain) -> int:
    """How long an undo keeps the accounts it brought back while their entries are missing."""
    return max(settings_for(domain).removal_grace_days, UNDO_KEEPS_AT_LEAST_DAYS)


def undo_removals(*, run: SyncRun, by: str) -> SyncRun:
    """Undo every account removal of the run (see the module docstring); returns the undo's own run.

    Raises UndoRefused when there is nothing to undo, it was undone already, or another run of the domain is
    queued or running (the undo waits for none: it is refused, and can be asked again).
    """
    offer = undo_offer(run=run)
    if offer is None:
        raise UndoRefused("Only the removals of a finished synchronization (not a dry run) can be undone.")
    if offer.undo is not None:
        raise UndoRefused(
            f"These removals were undone already, by {offer.undo.requested_by or 'someone'} on "
            f"{timezone.localtime(offer.undo.created_at):%Y-%m-%d %H:%M} (run #{offer.undo.pk})."
        )
    if not offer.any:
        raise UndoRefused("This run removed no account: there is nothing to undo.")
    undo = _take_lock(run, by)
    try:
        with transaction.atomic():
            outcome = _undo(run, undo, by=by, days=offer.keep_days)
    except Exception:
        finish(
            undo, status=JobStatus.FAILED, errors=["The undo stopped on an internal error; nothing changed."]
        )
        raise
    finish(undo, status=JobStatus.SUCCEEDED, **outcome)
    return undo


def _take_lock(run: SyncRun, by: str) -> SyncRun:
    """The undo's run, created running: the one-active-run-per-domain constraint keeps syncs out meanwhile."""
    now = timezone.now()
    try:
        with transaction.atomic():
            return SyncRun.objects.create(
                domain=run.domain,
                trigger=SyncRun.Trigger.UNDO,
                requested_by=by,
                status=JobStatus.RUNNING,
                started_at=now,
                heartbeat_at=now,
                undoes=run,
                full_scan=False,
                tracking=f"undo of run #{run.pk}: the directory was not read",
            )
    except IntegrityError:
        active = SyncRun.objects.filter(domain=run.domain, status__in=[JobStatus.QUEUED, JobStatus.RUNNING])
        busy = active.first()
        raise UndoRefused(
            f"A run of {run.domain.name} is {busy.status if busy else 'going on'}"
            f"{f' (#{busy.pk})' if busy else ''}: undo once it has ended."
        ) from None


def _undo(run: SyncRun, undo: SyncRun, *, by: str, days: int) -> dict[str, Any]:
    now = timezone.now()
    kept_until = now + timedelta(days=days)
    until = _day(kept_until)
    why = f"undo of run #{run.pk} by {by}"
    keep = f"kept until its entry is back, or until {until}"
    events: list[dict[str, Any]] = [
        dict(row)
        for row in SyncEvent.objects.filter(run=run, object_type=ACCOUNT, action__in=[DISABLE, REMOVE])
        .order_by("id")
        .values("action", "account_id", "directory_id", "label", "dn")
    ]
    rows: list[tuple[Any, ...]] = []
    # Disabled by this run and still pending from it (not disabled again by a later run): enabled again. An
    # account removed since has lost its link on the event (SET_NULL).
    disabled = {event["account_id"]: event for event in events if event["action"] == DISABLE}
    ids = [pk for pk in disabled if pk is not None]
    present: set[int] = set()
    pending: dict[int, tuple[bool, datetime | None]] = {}
    again: dict[int, int] = {}
    for batch in chunked(ids):
        present.update(Account.objects.filter(pk__in=batch).values_list("pk", flat=True))
        pending.update(
            (pk, (before, due))
            for pk, before, due in Account.objects.filter(
                pk__in=batch, domain=run.domain, removal_due_at__isnull=False
            ).values_list("pk", "enabled_before_removal", "removal_due_at")
        )
        again.update(
            SyncEvent.objects.filter(account_id__in=batch, action=DISABLE, run_id__gt=run.pk)
            .order_by("run_id")
            .values_list("account_id", "run_id")
        )
    enabling = [pk for pk in pending if pk not in again]
    for batch in chunked(enabling):
        Account.objects.filter(pk__in=batch, enabled_before_removal=True).update(enabled=True)
        Account.objects.filter(pk__in=batch).update(removal_due_at=None, removal_kept_until=kept_until)
    for pk in enabling:
        before, due = pending[pk]
        state = "enabled again" if before else "it stays disabled, as it was before it left"
        fields: dict[str, list[Any]] = {
            "removal_due_at": [_day(due) if due else None, None],
            "removal_kept_until": [None, until],
        }
        if before:
            fields = {"enabled": [False, True], **fields}
        rows.append(_row(undo, RESTORE, disabled[pk], pk, fields, f"{why}: {state}; {keep}"))
    for pk in pending:
        if pk in again:
            rows.append(
                _row(undo, SKIP, disabled[pk], pk, {}, f"disabled again by run #{again[pk]}: undo that run")
            )

    # Removed (by this run, or by a later one once the grace period ended): restored from the removal's
    # record.
    gone = [
        event
        for event in events
        if event["action"] == REMOVE or event["account_id"] is None or event["account_id"] not in present
    ]
    restored, refused = _restore(run, undo, gone, why=why, keep=keep, kept_until=kept_until, rows=rows)
    insert_rows(SyncEvent, EVENT_FIELDS, rows)

    counts = {"enabled_again": len(enabling), "restored": restored, "not_restored": len(refused)}
    warnings = []
    if refused:
        warnings.append(
            f"{len(refused)} removed accounts could not be restored (the events say why): {listed(refused)}."
        )
    return {
        "counts": {"accounts": counts},
        "warnings": warnings,
        "actions_planned": len(enabling) + restored,
        "actions_applied": len(enabling) + restored,
    }


def _restore(
    run: SyncRun,
    undo: SyncRun,
    gone: list[dict[str, Any]],
    *,
    why: str,
    keep: str,
    kept_until: datetime,
    rows: list[tuple[Any, ...]],
) -> tuple[int, list[str]]:
    """Accounts removed since the run, re-created from the fields their removal event kept: the same
    username, addresses, mailbox folder and directory link. Only while the folder is on disk (the domain keeps
    removed accounts' mail unless ALLDATADELETION), the username is free, and no account holds the entry."""
    domain = run.domain
    keys = sorted({event["directory_id"] for event in gone if event["directory_id"]})
    removal: dict[str, tuple[int, dict[str, Any], str, str]] = {}
    for batch in chunked(keys):
        for key, run_id, fields, dn, label in (
            SyncEvent.objects.filter(
                run__domain=domain,
                run__dry_run=False,
                run_id__gte=run.pk,
                object_type=ACCOUNT,
                action=REMOVE,
                directory_id__in=batch,
            )
            .order_by("id")
            .values_list("directory_id", "run_id", "fields", "dn", "label")
        ):
            removal[key] = (run_id, fields or {}, dn, label)  # the latest removal of each entry
    linked = _existing(Account.objects.filter(domain=domain, directory_guid__in=keys), "directory_guid", keys)
    wanted_names = {_before(fields, "username") for _, fields, _, _ in removal.values()}
    taken_names = _existing(Account.objects.filter(domain=domain), "username", wanted_names)
    wanted_parts = {
        address.split("@", 1)[0]
        for _, fields, _, _ in removal.values()
        for address in _before(fields, "aliases") or []
    }
    taken_parts = _existing(Address.objects.filter(domain=domain), "local_part", wanted_parts)
    folders = {_before(fields, "mailbox_path") for _, fields, _, _ in removal.values()}
    held_folders = _existing(Account.objects.filter(domain=domain), "mailbox_path", folders)

    restoring: list[tuple[str, dict[str, Any], str, str, int]] = []
    refused: list[str] = []
    seen: set[str] = set()
    for event in gone:
        key = event["directory_id"]
        if not key or key in seen:
            continue
        seen.add(key)
        found = removal.get(key)
        if found is None:
            problem = "no removal of it was recorded"
        else:
            problem = _why_not(found[1], key, linked, taken_names, held_folders)
        if problem:
            refused.append(event["label"])
            rows.append(_row(undo, SKIP, event, None, {}, f"{why}: not restored: {problem}"))
            continue
        assert found is not None
        run_id, fields, dn, label = found
        taken_names.add(_before(fields, "username"))
        restoring.append((key, fields, dn, label, run_id))

    if not restoring:
        return 0, refused
    defaults = Account(domain=domain)
    if domain.default_template is not None:
        from icewarp_admin.mailserver.services.accounts import apply_template

        apply_template(account=defaults, template=domain.default_template)
    accounts = instances(
        Account,
        ["domain", "username", "full_name", "auth_mode", "auth_value", "password", "enabled", "quota_mb",
         "max_message_kb", "services", "vcard", "mailbox_path", "directory_guid", "directory_dn",
         "removal_kept_until"],
        [(domain.pk, _before(fields, "username"), _before(fields, "full_name") or "",
          Account.AuthMode.DIRECTORY, _before(fields, "auth_value") or "", "", True, defaults.quota_mb,
          defaults.max_message_kb,
          list(defaults.services), _before(fields, "vcard") or {}, _before(fields, "mailbox_path"), key, dn,
          kept_until)
         for key, fields, dn, _, _ in restoring],
    )  # fmt: skip
    # The stamp stays empty: the next run reads the entry again by its id, and finds it or keeps the account.
    Account.objects.bulk_create(accounts, batch_size=1000)
    addresses = []
    for (key, fields, _, label, run_id), account in zip(restoring, accounts, strict=True):
        manual = {address.split("@", 1)[0] for address in _before(fields, "manual_aliases") or []}
        parts = [address.split("@", 1)[0] for address in _before(fields, "aliases") or []]
        free = [part for part in parts if part not in taken_parts]
        taken_parts.update(free)
        addresses += [
            (
                domain.pk,
                part,
                account.pk,
                position,
                Provenance.MANUAL if part in manual else Provenance.DIRECTORY,
            )
            for position, part in enumerate(free)
        ]
        left_out = [f"{part}@{domain.name}" for part in parts if part not in free]
        note = f" (without {', '.join(left_out)}: held by others now)" if left_out else ""
        rows.append(
            _row(
                undo, RESTORE, {"label": label, "directory_id": key, "dn": account.directory_dn}, account.pk,
                {"username": [None, account.username],
                 "aliases": [None, [f"{part}@{domain.name}" for part in free]],
                 "mailbox_path": [None, account.mailbox_path],
                 "removal_kept_until": [None, _day(kept_until)]},
                f"{why}: restored from its removal in run #{run_id} with the same mailbox folder{note}; "
                f"group memberships come back from the directory; {keep}",
            )
        )  # fmt: skip
    insert_rows(Address, ["domain", "local_part", "account", "position", "source"], addresses)
    return len(restoring), refused


def _why_not(
    fields: dict[str, Any], key: str, linked: set[str], taken_names: set[str], held_folders: set[str]
) -> str:
    username, folder = _before(fields, "username"), _before(fields, "mailbox_path")
    if key in linked:
        return "its entry is back already, as another account"
    if not username or not folder:
        return "its removal did not record what it was (removed before this console kept that)"
    if folder in held_folders:
        return f"its mailbox folder {folder} belongs to another account now"
    if not mailbox_exists(folder):
        return (
            f"its mail data was deleted (the folder {folder} is gone: the domain deletes removed accounts' "
            "mail, ALLDATADELETION)"
        )
    if username in taken_names:
        return f"the username {username} is taken by another account now"
    return ""


def _existing(query: Any, field: str, values: set[str] | list[str]) -> set[str]:
    found: set[str] = set()
    for batch in chunked(sorted(value for value in values if value)):
        found.update(query.filter(**{f"{field}__in": batch}).values_list(field, flat=True))
    return found


def _before(fields: dict[str, Any], name: str) -> Any:
    pair = fields.get(name)
    return pair[0] if isinstance(pair, list | tuple) and len(pair) == 2 else None


def _row(
    undo: SyncRun,
    action: str,
    event: dict[str, Any],
    account_id: int | None,
    fields: dict[str, Any],
    reason: str,
) -> tuple[Any, ...]:
    return (
        undo.pk,
        ACCOUNT,
        action,
        event["label"][:320],
        (event["directory_id"] or "")[:64],
        event["dn"] or "",
        account_id,
        fields,
        reason,
    )


def _day(moment: datetime) -> str:
    return timezone.localtime(moment).date().isoformat()
