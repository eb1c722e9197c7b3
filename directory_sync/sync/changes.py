"""What plans are made of, for accounts and groups alike: one change per object, and the set of them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

CREATE, UPDATE, RENAME, REMOVE, SKIP, CONFLICT = "create", "update", "rename", "remove", "skip", "conflict"
COUNTERS = {"created": CREATE, "updated": UPDATE, "renamed": RENAME, "removed": REMOVE, "skipped": SKIP}


@dataclass(frozen=True)
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
        return {
            **{name: len(self.of(action)) for name, action in COUNTERS.items()},
            "unchanged": self.unchanged,
        }
