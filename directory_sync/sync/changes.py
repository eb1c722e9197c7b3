"""What plans are made of, for accounts and groups alike: one change per object, and the set of them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

CREATE, UPDATE, RENAME, REMOVE, SKIP, CONFLICT = "create", "update", "rename", "remove", "skip", "conflict"
COUNTERS = {"created": CREATE, "updated": UPDATE, "renamed": RENAME, "removed": REMOVE, "skipped": SKIP}

# A group member: an account or a group (by directory key) or a remote address.
MemberRef = tuple[str, str]  # ("account" | "group" | "remote", key or address)
# Keys of the groups made for organizational units (the hierarchical address book) start with this.
OU_KEY_PREFIX = "ou:"
# The objects a warning names that the run keeps (a first run may leave out 100,000 members).
OBJECTS_KEPT = 5000


@dataclass(frozen=True)
class Finding:
    """A warning or error of a run: what happened, and the objects it is about (DNs or addresses).

    objects: the first OBJECTS_KEPT of them; total: how many there are. action: the events of the run that
    list them, when they are events (skipped entries, say).
    """

    summary: str
    objects: tuple[str, ...] = ()
    action: str = ""
    total: int = 0

    @classmethod
    def naming(cls, summary: str, objects: Sequence[str], *, action: str = "") -> Finding:
        """A finding about these objects, of which the first OBJECTS_KEPT are kept."""
        return cls(summary, tuple(objects[:OBJECTS_KEPT]), action=action, total=len(objects))

    def __str__(self) -> str:
        """The finding in one line, its first few objects named (what logs, the CSV and --json show)."""
        if not self.objects:
            return self.summary
        return f"{self.summary}: {listed(self.objects, total=self.total)}."


@dataclass(frozen=True, slots=True)
class Change:
    """One planned action on one object, with every field it changes (before → after) and why."""

    action: str
    key: str  # the directory id
    label: str  # the address people know the object by
    dn: str = ""
    object_id: int | None = None  # the account's or group's id, once it exists
    fields: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    reason: str = ""


ChangeT = TypeVar("ChangeT", bound=Change)


@dataclass
class ChangeSet(Generic[ChangeT]):
    changes: list[ChangeT] = field(default_factory=list)
    unchanged: int = 0
    warnings: list[Finding] = field(default_factory=list)
    errors: list[Finding] = field(default_factory=list)  # what the run could not read in full

    def of(self, action: str) -> list[ChangeT]:
        return [change for change in self.changes if change.action == action]

    def counts(self) -> dict[str, int]:
        totals = dict.fromkeys(COUNTERS, 0)
        by_action = {action: name for name, action in COUNTERS.items()}
        for change in self.changes:
            name = by_action.get(change.action)
            if name is not None:
                totals[name] += 1
        return {**totals, "unchanged": self.unchanged}


def listed(items: Sequence[str], *, shown: int = 5, total: int = 0) -> str:
    """The first few items of a list for a warning, and how many more there are (of total, when more than the
    items given)."""
    head = "; ".join(items[:shown])
    more = max(total, len(items)) - shown
    return head + (f"; and {more} more" if more > 0 else "")
