"""A synchronization run from start to finish: load → plan → guard → apply, recorded as a SyncRun.

The run's own row and its events are written outside the apply transaction, so a failed apply never
erases the record of what was attempted. The command line, the Celery task and the approval of withheld
removals all come through here.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.db import transaction
from django.utils import timezone

from directory_sync.choices import ServerType
from directory_sync.ldap import DirectoryError, open_session, options_from_settings
from directory_sync.ldap.filters import FilterError
from directory_sync.models import SyncEvent, SyncRun, SyncState
from directory_sync.rules.vcard import VCardMapError
from directory_sync.secrets import SecretUnreadable
from directory_sync.servers.usn import UsnChanges, UsnPosition, changes_since, full_read_due, read_position
from directory_sync.services.runs import Heartbeat
from directory_sync.services.settings import settings_for
from directory_sync.sync.apply import Applied, apply_plan
from directory_sync.sync.changes import CONFLICT, REMOVE, ChangeSet
from directory_sync.sync.config import SyncConfig, build_config
from directory_sync.sync.groups import GroupPlan, ou_groups, plan_groups, resolver_for
from directory_sync.sync.guard import GuardDecision, SearchOutcome, guard, with_approval
from directory_sync.sync.load import GroupSnapshot, Snapshot, load_groups, load_people
from directory_sync.sync.local import LinkedAccount, linked_accounts
from directory_sync.sync.people import PersonRef, SeenPerson, Triage, triage
from directory_sync.sync.planning import Plan, plan_accounts
from icewarp_admin.mailserver.models import Domain, Group

logger = logging.getLogger("directory_sync.sync")
EVENT_BATCH = 2000
LOG_DEBUG, LOG_SUMMARY = 1, 2


class RunRefused(Exception):
    """The run cannot start (the domain is not configured); the message says what to set up."""


def create_run(*, domain: Domain, trigger: str, requested_by: str = "", dry_run: bool = False) -> SyncRun:
    """A queued run row."""
    return SyncRun.objects.create(domain=domain, trigger=trigger, requested_by=requested_by, dry_run=dry_run)


def execute_run(*, run_id: int) -> SyncRun:
    """Run a queued run to its end; a run delivered twice runs once. Never raises for directory trouble."""
    with transaction.atomic():
        run = SyncRun.objects.select_for_update().select_related("domain").get(pk=run_id)
        if run.status != SyncRun.Status.QUEUED:
            return run
        run.status, run.started_at, run.heartbeat_at, run.phase = (
            SyncRun.Status.RUNNING,
            timezone.now(),
            timezone.now(),
            "connecting",
        )
        run.save(update_fields=["status", "started_at", "heartbeat_at", "phase"])
    started = time.monotonic()
    try:
        with Heartbeat(run.pk):
            outcome = _synchronize(run)
    except (DirectoryError, RunRefused, SecretUnreadable) as error:
        _finish(run, status=SyncRun.Status.FAILED, errors=[str(error)])
    except Exception:
        logger.exception("Synchronizing domain %s failed", run.domain.name)
        _finish(
            run,
            status=SyncRun.Status.FAILED,
            errors=["The run stopped on an internal error; see the worker log."],
        )
    else:
        _finish(run, status=SyncRun.Status.SUCCEEDED, **outcome)
    _log_summary(run, time.monotonic() - started)
    return run


def _synchronize(run: SyncRun) -> dict[str, Any]:
    settings = settings_for(run.domain)
    if not settings.pk or not settings.host or not settings.base_dn:
        raise RunRefused(f"{run.domain.name} has no directory server configured: fill in the Server section.")
    try:
        config = build_config(settings)
    except (FilterError, VCardMapError, ValueError) as error:
        raise RunRefused(
            f"The Directory Service settings of {run.domain.name} are not usable: {error}"
        ) from error
    warnings: list[str] = list(config.warnings)
    if not config.sync_accounts:
        warnings.append("Synchronizing users is switched off for this domain; accounts were not compared.")

    state, _ = SyncState.objects.get_or_create(domain=run.domain)
    full_scan = state.config_fingerprint != config.fingerprint() or state.last_success_at is None

    read_started = timezone.now()
    with open_session(options_from_settings(settings)) as session:
        _progress(run, phase="reading")
        position = (
            read_position(session) if config.profile.server_type == ServerType.ACTIVE_DIRECTORY else None
        )
        since = UsnPosition.from_json(state.cursor) if state.cursor else None
        incremental = (
            position is not None
            and position.continues(since)
            and not full_scan
            and run.approves_id is None  # an approval re-checks every withheld entry: a full read
            and not full_read_due(state.cursor.get("full_at"), read_started)
        )
        changes = None
        if incremental and since is not None:
            changes = changes_since(
                session, config, since=since.usn, naming_context=session.root_dse().default_naming_context
            )
            snapshot = Snapshot(entries=changes.entries, search=changes.search)
            _progress(run, entries_read=len(changes.entries))
        else:
            snapshot = load_people(
                session, config, on_progress=lambda read: _progress(run, entries_read=read)
            )
        groups_snapshot = (
            load_groups(session, config) if config.sync_groups or config.sync_mailing_lists else None
        )
    if not snapshot.search.complete:
        warnings.append(f"The search did not finish: {snapshot.search.problem}")

    _progress(run, phase="planning")
    linked = linked_accounts(run.domain_id)
    stamps = {key: account.change_stamp for key, account in linked.items()}
    triaged = triage(
        snapshot.entries,
        config,
        stamps,
        full_scan=full_scan or incremental,
        last_read=state.last_read_started_at,
    )
    if changes is not None:
        triaged.unchanged = _untouched_accounts(linked, triaged, changes)
    if triaged.without_guid:
        full_scan = True  # entries without an id are mapped and compared on every run
        warnings.append(
            f"{triaged.without_guid} entries have no readable {config.guid_attribute}: their e-mail address "
            "is their key and every entry is reprocessed on every run."
        )
    if triaged.missing_stamp and not config.allow_missing_change_stamp:
        warnings.append(
            f"{triaged.missing_stamp} entries have no {config.change_stamp_attribute}: "
            "they are compared in full on every run."
        )
    if config.sync_accounts:
        plan = plan_accounts(
            people=triaged.people,
            skipped=triaged.skipped,
            config=config,
            full_scan=full_scan,
            linked=linked,
            unchanged=triaged.unchanged,
        )
    else:
        # Users are still read (groups name them as members), but accounts are neither changed nor removed.
        plan = Plan(full_scan=full_scan)
    warnings += plan.warnings
    decision = guard(removals=len(plan.of(REMOVE)), search=snapshot.search, config=config, linked=len(linked))
    approved = _approved_keys(run)
    if approved is not None:
        decision = with_approval(
            decision,
            planned=[change.key for change in plan.of(REMOVE)],
            approved=approved,
            search=snapshot.search,
        )
    if decision.withheld:
        warnings.append(f"{decision.withheld} account removals withheld: {decision.reason}")
    group_plan, group_decision = _plan_groups(
        run, config, snapshot, triaged, groups_snapshot, plan, decision, linked
    )
    if group_plan is not None:
        warnings += group_plan.warnings
        if group_decision is not None and group_decision.withheld:
            warnings.append(f"{group_decision.withheld} group removals withheld: {group_decision.reason}")
    planned = len(plan.changes) + (len(group_plan.changes) if group_plan else 0)
    _progress(run, phase="applying" if not run.dry_run else "recording", actions_planned=planned)

    applied = None
    if not run.dry_run:
        applied = apply_plan(
            plan=plan, decision=decision, config=config, domain=run.domain, group_plan=group_plan,
            group_decision=group_decision,
        )  # fmt: skip
        if snapshot.search.complete:
            state.config_fingerprint = config.fingerprint()
            if position is not None:
                # The next run asks for changes above the mark read before this run's searches.
                full_at = state.cursor.get("full_at") if incremental else read_started.isoformat()
                state.cursor = {**position.to_json(), "full_at": full_at}
        state.last_success_at = timezone.now()
        state.last_read_started_at = read_started
        state.save(update_fields=["config_fingerprint", "last_success_at", "last_read_started_at", "cursor"])
    _record_events(run, plan, decision, SyncEvent.ObjectType.ACCOUNT, applied)
    counts = plan.counts()
    counts["removed"] = sum(decision.allows(change.key) for change in plan.of(REMOVE))
    all_counts = {"accounts": counts}
    conflicts, withheld, reasons = len(plan.of(CONFLICT)), decision.withheld, [decision.reason]
    if group_plan is not None and group_decision is not None:
        _record_events(run, group_plan, group_decision, SyncEvent.ObjectType.GROUP, applied)
        group_counts = group_plan.counts()
        group_counts["removed"] = sum(group_decision.allows(change.key) for change in group_plan.of(REMOVE))
        all_counts["groups"] = group_counts
        conflicts += len(group_plan.of(CONFLICT))
        withheld += group_decision.withheld
        reasons.append(group_decision.reason)
    return {
        "counts": all_counts,
        "conflicts": conflicts,
        "removals_withheld": withheld,
        "withheld_reason": " ".join(reason for reason in reasons if reason),
        "full_scan": full_scan and not incremental,
        "warnings": warnings,
        "entries_total": len(snapshot.entries),
        "actions_applied": applied.writes if applied else 0,
    }


def _plan_groups(
    run: SyncRun,
    config: SyncConfig,
    snapshot: Snapshot,
    people: Triage,
    groups: GroupSnapshot | None,
    plan: Plan,
    decision: GuardDecision,
    linked: dict[str, LinkedAccount],
) -> tuple[GroupPlan | None, GuardDecision | None]:
    """The groups' plan and guard, after the accounts' (members may be accounts this run creates)."""
    if groups is None:
        synced = Group.objects.filter(domain=run.domain, directory_guid__isnull=False).exists()
        if not config.create_ou_groups and not synced:
            return None, None
        groups = GroupSnapshot()  # no group search: synced groups from it go (guarded like any removal)
    derived = []
    people_complete = snapshot.search.complete
    everyone: list[PersonRef] = [*people.people, *people.unchanged]
    if config.create_ou_groups and people_complete:
        derived = ou_groups(everyone, config)
    all_groups = [*groups.groups, *derived]
    local_dns = {account.dn: key for key, account in linked.items()}
    resolver = resolver_for(
        people=everyone,
        skipped=people.skipped,
        groups=all_groups,
        config=config,
        local_account_dns=local_dns,
    )
    labels = {person.key: f"{person.local_parts[0]}@{config.domain_name}" for person in people.people}
    removing = [change.key for change in plan.of(REMOVE) if decision.allows(change.key)]
    taken = {
        local
        for change in plan.changes
        if change.action in {"create", "update", "rename"} and change.person
        for local in change.person.local_parts
    }
    group_plan = plan_groups(
        groups=all_groups,
        resolver=resolver,
        config=config,
        labels=labels,
        account_keys={account.account_id: key for key, account in linked.items()},
        removing_account_keys=removing,
        taken_by_accounts=taken,
        ou_groups_enabled=config.create_ou_groups,
        leave_ou_groups_alone=config.create_ou_groups and not people_complete,
    )
    if groups.duplicates:
        group_plan.warnings.append(
            f"{groups.duplicates} entries match both the group and the mailing-list filter."
        )
    if not groups.search.complete:
        group_plan.warnings.append(f"The group search did not finish: {groups.search.problem}")
    linked_groups = Group.objects.filter(domain=run.domain, directory_guid__isnull=False).count()
    search = groups.search if (config.sync_groups or config.sync_mailing_lists) else SearchOutcome(
        complete=True, entries_matched=len(all_groups) or 1
    )  # fmt: skip
    group_decision = guard(
        removals=len(group_plan.of(REMOVE)), search=search, config=config, linked=linked_groups, kind="groups"
    )
    approved = _approved_keys(run)
    if approved is not None:
        planned = [change.key for change in group_plan.of(REMOVE)]
        group_decision = with_approval(group_decision, planned=planned, approved=approved, search=search)
    return group_plan, group_decision


def _untouched_accounts(
    linked: dict[str, LinkedAccount], triaged: Triage, changes: UsnChanges
) -> list[SeenPerson]:
    """With change tracking, every linked account the directory did not report changed or deleted is as it
    was: seen without being read. The ones reported but not among the users read left the DN or the filter."""
    read = {person.key for person in triaged.people} | {entry.guid for entry in triaged.skipped if entry.guid}
    gone = (changes.touched | changes.deleted) - read
    return [
        SeenPerson(key=key, dn=account.dn, uid=account.username)
        for key, account in linked.items()
        if key not in read and key not in gone
    ]


def _approved_keys(run: SyncRun) -> set[str] | None:
    """For an approval run: the directory ids whose removal the approved run withheld."""
    if run.approves_id is None:
        return None
    return set(
        SyncEvent.objects.filter(run_id=run.approves_id, action=SyncEvent.Action.WITHHELD).values_list(
            "directory_id", flat=True
        )
    )


def _record_events(
    run: SyncRun, changes: ChangeSet[Any], decision: GuardDecision, object_type: str, applied: Applied | None
) -> None:
    """One event per object the run touched (or in a dry run would touch), exactly as planned."""
    created = applied.created_ids if applied else {}
    link = "account_id" if object_type == SyncEvent.ObjectType.ACCOUNT else "group_id"
    events = []
    for change in changes.changes:
        action = change.action
        if action == REMOVE and not decision.allows(change.key):
            action = SyncEvent.Action.WITHHELD
        # A removed object is gone: its event keeps the label and directory id, not a dangling link.
        object_id = (
            None if action == REMOVE and not run.dry_run else change.object_id or created.get(change.key)
        )
        events.append(
            SyncEvent(
                run=run,
                object_type=object_type,
                action=action,
                label=change.label[:320],
                directory_id=change.key[:64],
                dn=change.dn,
                fields={name: [_jsonable(old), _jsonable(new)] for name, (old, new) in change.fields.items()},
                reason=decision.reason if action == SyncEvent.Action.WITHHELD else change.reason,
                **{link: object_id},
            )
        )
    SyncEvent.objects.bulk_create(events, batch_size=EVENT_BATCH)


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    return value


def _progress(run: SyncRun, **fields: Any) -> None:
    """Progress and a heartbeat, saved at once (outside any transaction) so the tab can show them."""
    fields["heartbeat_at"] = timezone.now()
    for name, value in fields.items():
        setattr(run, name, value)
    SyncRun.objects.filter(pk=run.pk).update(**fields)


def _finish(run: SyncRun, *, status: str, errors: list[str] | None = None, **outcome: Any) -> None:
    run.status = status
    run.finished_at = timezone.now()
    run.phase = ""
    run.errors = errors or []
    for name, value in outcome.items():
        setattr(run, name, value)
    run.save()


def _log_summary(run: SyncRun, seconds: float) -> None:
    log_type = _log_type()
    if log_type & LOG_DEBUG:
        for event in run.events.all().iterator():
            logger.info(
                "Domain %s: %s %s %s %s",
                run.domain.name,
                event.action,
                event.object_type,
                event.label,
                event.reason,
            )
    if log_type & LOG_SUMMARY:
        accounts = run.counts.get("accounts", {})
        summary = ", ".join(f"{name} {value}" for name, value in accounts.items())
        logger.info(
            "Synchronizing domain %s finished%s: %s; %s; conflicts %s; removals withheld %s; %.1f s",
            run.domain.name,
            " (dry run)" if run.dry_run else "",
            run.status,
            summary or "nothing compared",
            run.conflicts,
            run.removals_withheld,
            seconds,
        )


def _log_type() -> int:
    from icewarp_admin.mailserver.selectors import system_variable_value

    return system_variable_value(name="C_System_ADSyncLogType")


def run_summary(run: SyncRun) -> dict[str, Any]:
    """The run as the stable JSON of `manage.py directory_sync --json`."""
    names = ("created", "updated", "renamed", "removed", "unchanged", "skipped")

    def counters(kind: str) -> dict[str, int]:
        return {name: int(run.counts.get(kind, {}).get(name, 0)) for name in names}

    return {
        "status": run.status,
        "dry_run": run.dry_run,
        "accounts": counters("accounts"),
        "groups": counters("groups"),
        "conflicts": run.conflicts,
        "removals_withheld": run.removals_withheld,
        "warnings": list(run.warnings),
        "errors": list(run.errors),
        "duration_s": round(run.duration_s or 0.0, 3),
    }
