"""What of a plan may be applied. Creates and updates always; removals only when the directory's answer
can be trusted to mean "gone" (Zulip's guard against a sync that would wipe users, and IceWarp's rules)."""

from __future__ import annotations

from dataclasses import dataclass

from directory_sync.sync.config import SyncConfig


@dataclass(frozen=True)
class SearchOutcome:
    """How the directory search ended."""

    complete: bool  # it ran to its last page
    problem: str = ""  # why not, in plain words
    absence_means_gone: bool = True  # False after a referral: entries may live elsewhere
    entries_matched: int = 0
    incremental: bool = False  # only changes were asked for: finding none is normal


@dataclass(frozen=True)
class GuardDecision:
    allow_removals: bool
    withheld: int = 0
    reason: str = ""
    only_keys: frozenset[str] | None = None  # an approval: just these removals may go

    def allows(self, key: str) -> bool:
        return self.allow_removals and (self.only_keys is None or key in self.only_keys)


def with_approval(
    decision: GuardDecision, *, planned: list[str], approved: set[str], search: SearchOutcome
) -> GuardDecision:
    """Removals an earlier run withheld and an administrator approved: those still planned now may go.

    Only when this run's own search was complete: an approval is checked against the directory again.
    """
    if not search.complete or not search.absence_means_gone:
        return decision
    allowed = frozenset(key for key in planned if key in approved)
    rest = [key for key in planned if key not in allowed]
    if not decision.allow_removals:
        reason = decision.reason if rest else ""
        return GuardDecision(allow_removals=True, withheld=len(rest), reason=reason, only_keys=allowed)
    return decision


def guard(
    *,
    removals: int,
    search: SearchOutcome,
    config: SyncConfig,
    linked: int,
    kind: str = "accounts",
    recreated: int = 0,
) -> GuardDecision:
    """Withhold every removal when the answer is incomplete, suspiciously empty, removes too many, or removes
    people only to create them again under a new id."""
    if not removals:
        return GuardDecision(allow_removals=True)
    if not search.absence_means_gone:
        reason = "The directory referred part of the search to another server, which was not read."
    elif not search.complete and not config.ignore_search_error:
        # Why the search stopped is among the run's errors: said once, there.
        reason = (
            "The directory search failed part-way: nothing is removed after an incomplete search "
            "(C_System_ADSyncIgnoreSearchError is 0)."
        )
    elif search.entries_matched == 0 and linked and not search.incremental:
        reason = (
            f"The directory returned no entries at all while {linked} {kind} are synced from it; "
            "check the DN and the filter."
        )
    elif recreated:
        reason = (
            f"{recreated} of the {kind} this run would remove would be created again under a new id (the "
            f"same DN or address): has the id attribute ({config.guid_attribute}) changed? Removing them "
            "would "
            "cost their mailboxes; check the settings, then approve or dismiss."
        )
    elif config.max_delete and removals > config.max_delete:
        # An account disabled pending its removal counts as removed: a bad filter that would disable 5,000
        # people is withheld like one that would remove them.
        counted = " (removed, or disabled pending removal)" if kind == "accounts" else ""
        reason = (
            f"This run would remove {removals} {kind}{counted}, more than C_System_ADSyncMaxDeleteThreshold "
            f"({config.max_delete})."
        )
    else:
        return GuardDecision(allow_removals=True)
    return GuardDecision(allow_removals=False, withheld=removals, reason=reason)
