"""What a conflict is about, as the planners say it, and what they are told of earlier decisions: plain data.

The record phase turns contests into conflict rows (sync/conflict_record.py); the conflict centre's actions
turn rows into decisions that later plans honour (a "keep local" is durable: the planner leaves the contested
value out instead of reporting the conflict again).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from directory_sync.models import SyncConflict, SyncEvent

ADDRESS = SyncConflict.Kind.ADDRESS.value
USERNAME = SyncConflict.Kind.USERNAME.value
OTHER_DOMAIN = SyncConflict.Kind.OTHER_DOMAIN.value
MOVED_ID = SyncConflict.Kind.MOVED_ID.value
DUPLICATE_ID = SyncConflict.Kind.DUPLICATE_ID.value
WITHHELD = SyncConflict.Kind.WITHHELD.value
KEPT_LOCAL = SyncConflict.Resolution.KEPT_LOCAL.value
GIVEN = SyncConflict.Resolution.GIVEN.value
ACCOUNT = SyncEvent.ObjectType.ACCOUNT.value
GROUP = SyncEvent.ObjectType.GROUP.value


@dataclass(frozen=True, slots=True)
class Contest:
    """What one conflict is about: its kind, the contested value, and who holds it (in words, and its account
    or directory id when the planner knows them; the record phase looks up the holders of addresses)."""

    kind: str
    value: str
    holder: str
    holder_account_id: int | None = None
    holder_key: str | None = None


@dataclass(frozen=True, slots=True)
class Holder:
    """A synced account that stands in an entry's way: of another domain, or known by the entry's DN."""

    account_id: int
    key: str
    description: str
    domain_name: str = ""


@dataclass(frozen=True, slots=True)
class Decision:
    """How people resolved a conflict that a plan may meet again."""

    resolution: str
    conflict_id: int


@dataclass(frozen=True)
class ConflictContext:
    """What the planners need beyond the domain's snapshot to see conflicts and honour earlier decisions.

    elsewhere: directory key → its account in another domain. by_dn: DN hash → the synced account of this
    domain stored with that DN (for the DNs of the entries read). decisions: (object type, key, kind, value) →
    the latest "keep local" or "give" of a conflict about it.
    """

    elsewhere: Mapping[str, Holder] = field(default_factory=dict)
    by_dn: Mapping[str, Holder] = field(default_factory=dict)
    decisions: Mapping[tuple[str, str, str, str], Decision] = field(default_factory=dict)

    def decision(self, object_type: str, key: str, contest: Contest | None) -> Decision | None:
        if contest is None:
            return None
        return self.decisions.get((object_type, key, contest.kind, contest.value))

    def kept_local(self, object_type: str, key: str, contest: Contest | None) -> Decision | None:
        """The "keep local" decision about this very contest, if any."""
        decision = self.decision(object_type, key, contest)
        return decision if decision is not None and decision.resolution == KEPT_LOCAL else None


NO_CONTEXT = ConflictContext()
