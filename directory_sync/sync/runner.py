"""A synchronization as named phases, each timed: read → load → plan → guard → apply → record.

read: the directory (everything, or the changes since the stored position), mapped as it streams in.
load: the domain's side of what was read, in bulk (sync/snapshot.py).
plan, guard: plain data; the guard decides which removals may go, and changes that depend on withheld ones
become conflicts. A dry run stops here and records the plan.
apply: one transaction, which also stores where the next run continues from.
record: the run's events.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.utils import timezone

from directory_sync.ldap import open_bulk_session, options_from_settings
from directory_sync.ldap.filters import FilterError
from directory_sync.models import DirectorySettings, SyncEvent, SyncRun, SyncState
from directory_sync.rules.vcard import VCardMapError
from directory_sync.sync.apply import Applied, apply_plan
from directory_sync.sync.changes import CONFLICT, CREATE, REMOVE, RENAME, UPDATE, ChangeSet, Finding
from directory_sync.sync.config import SyncConfig, build_config
from directory_sync.sync.conflict_record import load_conflict_context, rechecked, record_conflicts
from directory_sync.sync.contests import ConflictContext
from directory_sync.sync.directory import DirectorySnapshot, ReadContext, read_directory
from directory_sync.sync.explain import OneObjectSnapshot, guard_one, narrow, narrow_local, read_one
from directory_sync.sync.groups import (
    GroupPlan,
    GroupScope,
    ou_groups,
    plan_groups,
    recreated_groups,
    resolver_for,
)
from directory_sync.sync.guard import GuardDecision, SearchOutcome, guard, with_approval
from directory_sync.sync.people import PersonRef
from directory_sync.sync.planning import Plan, plan_accounts, recreations, removal_counts, settle
from directory_sync.sync.record import Labels, record_events
from directory_sync.sync.snapshot import (
    LocalSnapshot,
    edited_here,
    groups_holding,
    load_local,
    stored_links,
)
from icewarp_admin.mailserver.models import Account, Group

PHASES = ("read", "load", "plan", "guard", "apply", "record")
FULL_READ_EVERY_HOURS = 24
CHANGING = (CREATE, UPDATE, RENAME)


class RunRefused(Exception):
    """The run cannot start (the domain is not configured); the message says what to set up."""


Progress = Callable[..., None]


@dataclass
class PhaseClock:
    """Seconds spent in each phase (a phase entered twice adds up); on_phase shows the one going on."""

    on_phase: Callable[[str], None]
    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        self.on_phase(name)
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - started, 3)


def synchronize(
    run: SyncRun, *, settings: DirectorySettings, progress: Progress, only: str = ""
) -> dict[str, Any]:
    """One run from the directory to the record; returns the run's outcome fields. Raises for a domain that
    cannot be synchronized (RunRefused) and for directory trouble (DirectoryError): nothing is applied then.

    only: a query naming one object (sync/explain.py): the run reads, plans and applies just that object, and
    leaves the change-tracking position where it was (NothingFound when the query names nothing).
    """
    if not settings.pk or not settings.host or not settings.base_dn:
        raise RunRefused(f"{run.domain.name} has no directory server configured: fill in the Server section.")
    try:
        config = build_config(settings)
    except (FilterError, VCardMapError, ValueError) as error:
        raise RunRefused(
            f"The Directory Service settings of {run.domain.name} are not usable: {error}"
        ) from error
    state, _ = SyncState.objects.get_or_create(domain=run.domain)
    clock = PhaseClock(on_phase=lambda name: progress(phase=name))
    approved = _approved_keys(run)
    identity_changed = bool(state.id_attribute) and state.id_attribute != config.identity
    read_started = timezone.now()

    with clock("read"), open_bulk_session(options_from_settings(settings)) as session:
        if only:
            directory: DirectorySnapshot = read_one(session, config, only, identity_changed=identity_changed)
        else:
            directory = read_directory(
                session,
                config,
                _read_context(
                    config, state, approval=approved is not None, identity_changed=identity_changed
                ),
                progress=lambda read: progress(entries_read=read),
            )
    guarded = plan_and_guard(
        directory, config, identity_changed=identity_changed, approved=approved, clock=clock
    )
    plan, decision = guarded.plan, guarded.decision
    group_plan, group_decision = guarded.group_plan, guarded.group_decision
    planned = _changes(plan, decision) + (
        _changes(group_plan, group_decision) if group_plan and group_decision else 0
    )
    progress(actions_planned=planned)

    applied: Applied | None = None
    withheld = bool(decision.withheld or (group_decision and group_decision.withheld))
    if not run.dry_run:
        with clock("apply"):
            applied = apply_plan(
                plan=plan, decision=decision, config=config, domain=run.domain, group_plan=group_plan,
                group_decision=group_decision,
                before_commit=lambda: _remember(state, config, directory, read_started, withheld=withheld),
            )  # fmt: skip
    with clock("record"):
        outcome = _record(run, config, directory, plan, decision, group_plan, group_decision, applied)
    outcome["actions_applied"] = 0 if applied is None else planned
    if applied is not None:
        with clock("apply"):
            folder_error = applied.wait_for_folders()
        if folder_error:
            outcome["warnings"].append(folder_error)
    outcome["phases"] = clock.seconds
    return outcome


@dataclass
class Planned:
    """What a run means to do once guarded: the same for a run, a dry run and explain (sync/explain.py)."""

    local: LocalSnapshot
    plan: Plan
    decision: GuardDecision
    group_plan: GroupPlan | None
    group_decision: GuardDecision | None


def plan_and_guard(
    directory: DirectorySnapshot,
    config: SyncConfig,
    *,
    identity_changed: bool,
    approved: set[str] | None,
    clock: Callable[[str], AbstractContextManager[None]] | None = None,
) -> Planned:
    """load → plan → guard for what was read: the one sequence every run and every explain goes through.

    clock: times the phases (a run's PhaseClock); untimed when None. Reads the domain's side, writes nothing.
    """
    phase = clock or (lambda name: nullcontext())
    with phase("load"):
        local = load_local(config, directory, identity_changed=identity_changed)
        narrow_local(directory, local)  # a one-object run: only its own object's pending removal
        conflicts = load_conflict_context(config, directory, local)
    with phase("plan"):
        if config.sync_accounts:
            plan = plan_accounts(directory=directory, local=local, config=config, context=conflicts)
        else:
            plan = Plan(full_scan=directory.full)
    with phase("guard"):
        decision = _guard_accounts(plan, directory, local, config, approved)
        plan = settle(plan, decision)
    with phase("plan"):
        group_plan = _plan_groups(config, directory, local, plan, decision, conflicts)
        plan, group_plan = narrow(directory, local, plan, group_plan)  # a one-object run: just that object
    group_decision = None
    if group_plan is not None:
        with phase("guard"):
            group_decision = _guard_groups(group_plan, directory, local, config, approved)
    return Planned(local, plan, decision, group_plan, group_decision)


def _read_context(
    config: SyncConfig, state: SyncState, *, approval: bool, identity_changed: bool
) -> ReadContext:
    """Whether this run may read only the changes, and if not, why not."""
    now = timezone.now()
    full_at = _parse_time(state.cursor.get("full_at"))
    settings_changed = state.config_fingerprint != config.fingerprint()
    if state.last_success_at is None:
        reason = "full read: first run"
    elif identity_changed:
        reason = "full read: the id attribute changed"
    elif settings_changed:
        reason = "full read: the settings changed"
    elif approval:
        reason = "full read: an approval checks every withheld removal again"
    elif Account.objects.filter(domain_id=config.domain_id, directory_guid__startswith="mail:").exists():
        # Entries without a readable id cannot be followed by a tracker: their address is their key.
        reason = f"full read: some entries have no readable {config.guid_attribute}"
    elif full_at is None or (now - full_at).total_seconds() >= FULL_READ_EVERY_HOURS * 3600:
        reason = "full read: the daily reconcile"
    else:
        reason = ""
    domain_id = config.domain_id
    return ReadContext(
        cursor=dict(state.cursor),
        may_resume=not reason,
        full_reason=reason,
        compare_all=settings_changed or identity_changed or state.last_success_at is None,
        last_read=state.last_read_started_at,
        stamps=lambda: dict(
            (str(key), stamp)
            for key, stamp in Account.objects.filter(domain_id=domain_id, directory_guid__isnull=False)
            .order_by()
            .values_list("directory_guid", "directory_change_stamp")
            .iterator(chunk_size=5000)
        ),
        edited_here=lambda: _edited_here(domain_id),
        groups_holding=lambda keys: groups_holding(domain_id, keys),
        stored_links=lambda keys: stored_links(domain_id, keys),
    )


def _edited_here(domain_id: int) -> tuple[list[str], list[str]]:
    """Accounts and groups changed here since the last run, and the entries whose conflict people just
    resolved: the run reads them again by id."""
    accounts, groups = rechecked(domain_id)
    return (
        list(dict.fromkeys(edited_here(domain_id, Account) + accounts)),
        list(dict.fromkeys(edited_here(domain_id, Group) + groups)),
    )


def _parse_time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def _guard_accounts(
    plan: Plan,
    directory: DirectorySnapshot,
    local: LocalSnapshot,
    config: SyncConfig,
    approved: set[str] | None,
) -> GuardDecision:
    removals = plan.of(REMOVE)
    decision = guard(
        removals=len(removals),
        search=directory.people_search,
        config=config,
        linked=local.linked_total,
        recreated=len(recreations(plan)) if removals else 0,
    )
    if approved is not None:
        decision = with_approval(
            decision,
            planned=[change.key for change in removals],
            approved=approved,
            search=directory.people_search,
        )
    return guard_one(directory, decision, [change.key for change in removals])


def _plan_groups(
    config: SyncConfig,
    directory: DirectorySnapshot,
    local: LocalSnapshot,
    plan: Plan,
    decision: GuardDecision,
    conflicts: ConflictContext,
) -> GroupPlan | None:
    """The groups' plan, after the accounts' (members may be accounts this run creates)."""
    searches = config.sync_groups or config.sync_mailing_lists
    if not searches and not config.create_ou_groups and not local.groups_total:
        return None
    people_complete = directory.people_search.complete
    everyone: list[PersonRef] = [*directory.people, *directory.unchanged]
    derived = []
    ou_derived = (
        config.create_ou_groups and people_complete and (directory.full or local.ou_people is not None)
    )
    if ou_derived:
        derived = ou_groups([*everyone, *(local.ou_people or [])], config)
    groups = [*directory.groups, *derived]
    resolver = resolver_for(
        people=everyone, skipped=directory.skipped, groups=groups, config=config, local=local
    )
    removing = [change.key for change in plan.of(REMOVE) if decision.allows(change.key)]
    taken = {
        part
        for change in plan.changes
        if change.action in (CREATE, UPDATE, RENAME) and change.person
        for part in change.person.local_parts
    }
    group_plan = plan_groups(
        groups=groups,
        resolver=resolver,
        config=config,
        local=local,
        scope=GroupScope(
            complete=directory.full_groups and searches and directory.group_search.complete,
            gone=directory.absent_groups(local.groups.keys()),
            ou_derived=ou_derived,
        ),
        removing_account_keys=removing,
        taken_by_accounts=taken,
        context=conflicts,
    )
    if directory.duplicates:
        group_plan.warnings.append(
            Finding(f"{directory.duplicates} entries match both the group and the mailing-list filter.")
        )
    return group_plan


def _changes(changes: ChangeSet[Any], decision: GuardDecision) -> int:
    """What a plan changes: creations, updates, renames and the removals the guard allows (not skips)."""
    return sum(
        change.action in CHANGING or (change.action == REMOVE and decision.allows(change.key))
        for change in changes.changes
    )


def _guard_groups(
    group_plan: GroupPlan,
    directory: DirectorySnapshot,
    local: LocalSnapshot,
    config: SyncConfig,
    approved: set[str] | None,
) -> GuardDecision:
    searches = config.sync_groups or config.sync_mailing_lists
    search = directory.group_search if searches else SearchOutcome(complete=True, entries_matched=1)
    removals = [change.key for change in group_plan.of(REMOVE)]
    decision = guard(
        removals=len(removals),
        search=search,
        config=config,
        linked=local.groups_total,
        kind="groups",
        recreated=len(recreated_groups(group_plan)) if removals else 0,
    )
    if approved is not None:
        decision = with_approval(decision, planned=removals, approved=approved, search=search)
    return guard_one(directory, decision, removals)


def _remember(
    state: SyncState,
    config: SyncConfig,
    directory: DirectorySnapshot,
    read_started: datetime,
    *,
    withheld: bool,
) -> None:
    """Inside the apply's transaction: where the next run continues from.

    The mark moves only after complete searches, and only when no removal was withheld: the next run then
    reads the same way again (the same changes, or everything after a settings change) and finds those
    removals again, to apply them once the guard allows it. A run of one object moves nothing: the next run
    still reads every change it would have read.
    """
    if isinstance(directory, OneObjectSnapshot):
        return
    fields = ["last_success_at", "last_read_started_at"]
    state.last_success_at, state.last_read_started_at = timezone.now(), read_started
    if directory.people_search.complete and directory.group_search.complete and not withheld:
        full_at = read_started.isoformat() if directory.full else state.cursor.get("full_at")
        state.cursor = {**(directory.next_cursor or {}), "full_at": full_at}
        state.config_fingerprint = config.fingerprint()
        state.id_attribute = config.identity
        fields += ["cursor", "config_fingerprint", "id_attribute"]
    state.save(update_fields=fields)


def _record(
    run: SyncRun,
    config: SyncConfig,
    directory: DirectorySnapshot,
    plan: Plan,
    decision: GuardDecision,
    group_plan: GroupPlan | None,
    group_decision: GuardDecision | None,
    applied: Applied | None,
) -> dict[str, Any]:
    created = applied.created_ids if applied else {}
    record_events(run, plan, decision, SyncEvent.ObjectType.ACCOUNT, created=created)
    counts = plan.counts()
    counts.update(removal_counts(plan, decision))
    all_counts = {"accounts": counts}
    conflicts, withheld, reasons = len(plan.of(CONFLICT)), decision.withheld, [decision.reason]
    errors = _errors(directory, plan, group_plan)
    if group_plan is not None and group_decision is not None:
        known = {
            person.key: f"{person.local_parts[0]}@{config.domain_name}" for person in directory.people
        } | {group.key: f"{group.alias}@{config.domain_name}" for group in directory.groups}
        record_events(
            run, group_plan, group_decision, SyncEvent.ObjectType.GROUP, created=created,
            labels=Labels(config.domain_id, known),
        )  # fmt: skip
        group_counts = group_plan.counts()
        group_counts["removed"] = sum(group_decision.allows(change.key) for change in group_plan.of(REMOVE))
        all_counts["groups"] = group_counts
        conflicts += len(group_plan.of(CONFLICT))
        withheld += group_decision.withheld
        reasons.append(group_decision.reason)
    warnings = _warnings(config, directory, plan, group_plan)
    if not run.dry_run:
        record_conflicts(run, config=config, directory=directory, plan=plan, group_plan=group_plan)
    return {
        "counts": all_counts,
        "conflicts": conflicts,
        "removals_withheld": withheld,
        # The same reason for accounts and groups (an incomplete search, say) is said once.
        "withheld_reason": " ".join(dict.fromkeys(reason for reason in reasons if reason)),
        "full_scan": directory.full,
        "tracking": directory.tracking,
        "warnings": [str(warning) for warning in warnings],
        "warning_objects": {
            str(index): {
                "summary": warning.summary,
                "objects": list(warning.objects),
                "total": max(warning.total, len(warning.objects)),
                "action": warning.action,
            }
            for index, warning in enumerate(warnings)
            if warning.objects
        },
        "errors": errors,
        "entries_total": directory.entries_read,
    }


def _errors(directory: DirectorySnapshot, plan: Plan, group_plan: GroupPlan | None) -> list[str]:
    """What the run could not read: searches that failed or were cut short, follow-up reads that failed.

    A referral is not among them (the server answered in full for what it holds): it is a warning.
    """
    failed = {
        kind: search.problem
        for kind, search in (("user", directory.people_search), ("group", directory.group_search))
        if not search.complete and search.absence_means_gone
    }
    errors = []
    if len(failed) == 2 and failed["user"] == failed["group"]:
        errors.append(f"The user and group searches did not finish: {failed['user']}")
    else:
        errors += [f"The {kind} search did not finish: {problem}" for kind, problem in failed.items()]
    errors += directory.errors
    errors += [str(error) for error in plan.errors]
    if group_plan is not None:
        errors += [str(error) for error in group_plan.errors]
    return errors


def _warnings(
    config: SyncConfig, directory: DirectorySnapshot, plan: Plan, group_plan: GroupPlan | None
) -> list[Finding]:
    """What people should know of the run, each with the objects it names. Withheld removals are not
    among them: the run keeps their number and reason in fields of their own."""
    warnings = [Finding(warning) for warning in config.warnings]
    if not config.sync_accounts:
        warnings.append(
            Finding("Synchronizing users is switched off for this domain; accounts were not compared.")
        )
    for kind, search in (("user", directory.people_search), ("group", directory.group_search)):
        if not search.complete and not search.absence_means_gone:
            warnings.append(Finding(f"The {kind} search did not read everything: {search.problem}"))
    if directory.without_guid:
        warnings.append(
            Finding.naming(
                f"{directory.without_guid} entries have no readable {config.guid_attribute}: their e-mail "
                "address is their key and every entry is reprocessed on every run",
                [person.dn for person in directory.people if person.guid is None],
            )
        )
    if directory.missing_stamp and not config.allow_missing_change_stamp:
        warnings.append(
            Finding(
                f"{directory.missing_stamp} entries have no {config.change_stamp_attribute}: they are "
                "compared in full on every run",
                tuple(directory.missing_stamp_dns),
                total=directory.missing_stamp,
            )
        )
    warnings += [Finding(warning) for warning in directory.warnings]
    cleaned = [f"{person.dn} ({', '.join(person.cleaned)})" for person in directory.people if person.cleaned]
    if cleaned:
        warnings.append(
            Finding.naming(
                f"{len(cleaned)} entries hold control characters (a NUL, say), removed from what was stored",
                cleaned,
            )
        )
    truncated = [
        f"{person.dn} ({'; '.join(person.truncated)})" for person in directory.people if person.truncated
    ]
    if truncated:
        warnings.append(
            Finding.naming(
                f"{len(truncated)} entries hold values longer than an account keeps, cut to fit or left out",
                truncated,
            )
        )
    warnings += plan.warnings
    if group_plan is not None:
        warnings += group_plan.warnings
    return warnings


def _approved_keys(run: SyncRun) -> set[str] | None:
    """For an approval run: the directory ids whose removal the approved run withheld."""
    if run.approves_id is None:
        return None
    return set(
        SyncEvent.objects.filter(run_id=run.approves_id, action=SyncEvent.Action.WITHHELD).values_list(
            "directory_id", flat=True
        )
    )
