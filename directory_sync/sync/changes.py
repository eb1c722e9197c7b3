"""What plans are made of, for accounts and groups alike: one change per object, and the set of them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

CREATE, UPDATE, RENAME, REMOVE, SKIP, CONFLICT = "create", "update", "rename", "remove", "skip", "conflict"
COUNTERS = {"created": CREATE, "updated": UPDATE, "renamed": RENAME, "removed": REMOVE, "skipped": SKIP}

# A group member: an account or a group (by directory key) or a remote address.
MemberRef = tuple[str, str]  # ("account" | "group" | "remote", key or address)
# Keys of the groups made for organizational units (the hierarchical address book) start with this.
OU_KEY_PREFIX = "ou:"


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
    warnings: list[str] = field(default_factory=list)

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


def listed(items: list[str], *, shown: int = 5) -> str:
    """The first few items of a list for a warning, and how many more there are."""
    head = "; ".join(items[:shown])
    return head + (f"; and {len(items) - shown} more" if len(items) > shown else "")
