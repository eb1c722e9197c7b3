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


@dataclass(frozen=True)
class GuardDecision:
    allow_removals: bool
    withheld: int = 0
    reason: str = ""


def guard(
    *, removals: int, search: SearchOutcome, config: SyncConfig, linked: int, kind: str = "accounts"
) -> GuardDecision:
    """Withhold every removal when the answer is incomplete, suspiciously empty, or removes too many."""
    if not removals:
        return GuardDecision(allow_removals=True)
    if not search.absence_means_gone:
        reason = f"The directory referred part of the search elsewhere ({search.problem})."
    elif not search.complete and not config.ignore_search_error:
        reason = (
            f"The directory search failed part-way ({search.problem}); nothing is removed after an "
            "incomplete search (C_System_ADSyncIgnoreSearchError is 0)."
        )
    elif search.entries_matched == 0 and linked:
        reason = (
            f"The directory returned no entries at all while {linked} {kind} are synced from it; "
            "check the DN and the filter."
        )
    elif config.max_delete and removals > config.max_delete:
        reason = (
            f"This run would remove {removals} {kind}, more than C_System_ADSyncMaxDeleteThreshold "
            f"({config.max_delete})."
        )
    else:
        return GuardDecision(allow_removals=True)
    return GuardDecision(allow_removals=False, withheld=removals, reason=reason)
