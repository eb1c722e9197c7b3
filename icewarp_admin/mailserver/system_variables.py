"""IceWarp's global API variables this console knows: names, types, defaults, limits."""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.core.exceptions import ValidationError

_INTEGER = re.compile(r"-?[0-9]+")
_MAX_DIGITS = 20


@dataclass(frozen=True)
class VariableSpec:
    name: str
    label: str
    help: str
    kind: str  # "int" | "bool" | "choice"
    default: int
    minimum: int = 0
    maximum: int = 2**31 - 1
    choices: tuple[tuple[int, str], ...] = ()

    def display(self, value: int) -> str:
        """The value as people read it: Yes/No for a switch, a choice's label, the number otherwise."""
        if self.kind == "bool":
            return "Yes" if value else "No"
        if self.kind == "choice":
            return dict(self.choices).get(value, str(value))
        return str(value)

    def validate(self, raw: str) -> None:
        """Raise ValidationError unless parse takes the value (a form field's validator)."""
        self.parse(raw)

    def parse(self, raw: str | int | bool) -> int:
        """Turn a typed-in value into the stored integer, or raise ValidationError saying what is allowed."""
        text = str(int(raw) if isinstance(raw, bool) else raw).strip()
        if self.kind == "bool":
            lowered = text.lower()
            if lowered in {"1", "true", "yes", "on"}:
                return 1
            if lowered in {"0", "false", "no", "off"}:
                return 0
            raise ValidationError(f"{self.name} is a switch: give 1 (on) or 0 (off), not “{raw}”.")
        # int() would also take "٣", "+7" and "1_000": only what IceWarp itself writes is a number here.
        if _INTEGER.fullmatch(text) is None or (text.startswith("-") and self.minimum >= 0):
            raise ValidationError(self._refusal(raw))
        # int() of a long enough text is slow, and the number past any limit anyway.
        value = int(text) if len(text) <= _MAX_DIGITS else self.maximum + 1
        if self.kind == "choice":
            if value not in {number for number, _ in self.choices}:
                raise ValidationError(self._refusal(raw))
            return value
        if not self.minimum <= value <= self.maximum:
            raise ValidationError(
                f"{self.name} must be between {self.minimum} and {self.maximum}; “{raw}” is not."
            )
        return value

    def _refusal(self, raw: object) -> str:
        if self.kind == "choice":
            listing = ", ".join(f"{number} ({label})" for number, label in self.choices)
            return f"{self.name} must be one of {listing}; “{raw}” is not."
        sign = "an optional leading - and no +" if self.minimum < 0 else "no sign"
        return (
            f"{self.name} takes a whole number between {self.minimum} and {self.maximum}, written with the "
            f"digits 0-9 only ({sign}, spaces, separators or other scripts); “{raw}” is not."
        )


SYSTEM_VARIABLES: tuple[VariableSpec, ...] = (
    VariableSpec(
        name="C_Accounts_Global_ActiveDirectorySyncInterval",
        label="Directory sync interval (minutes)",
        help="Minutes between scheduled synchronizations of every active domain.",
        kind="int",
        default=5,
        minimum=1,
        maximum=24 * 60,
    ),
    VariableSpec(
        name="C_System_ADSyncDisableVCardSync",
        label="Do not fill personal data from the directory",
        help="Synchronize accounts only; leave every person's vCard alone.",
        kind="bool",
        default=0,
    ),
    VariableSpec(
        name="C_System_ADSyncMaxDeleteThreshold",
        label="Most accounts one sync may remove",
        help="When above 0, a run that would remove more accounts than this removes none of them.",
        kind="int",
        default=0,
        maximum=10_000_000,
    ),
    VariableSpec(
        name="C_System_ADSyncIgnoreSearchError",
        label="Remove accounts even after a failed search",
        help="When off, a search that failed part-way removes nothing, even though it returned data.",
        kind="bool",
        default=0,
    ),
    VariableSpec(
        name="C_Accounts_Global_LDAP_PassChangeDisable",
        label="Refuse password changes written to the directory",
        help="Synced users cannot change their directory password from the mail server.",
        kind="bool",
        default=0,
    ),
    VariableSpec(
        name="C_System_ADSyncLogType",
        label="Directory sync log",
        help="What each run writes to the log.",
        kind="choice",
        default=2,
        choices=((0, "None"), (1, "Debug"), (2, "Summary"), (3, "Debug and summary")),
    ),
)

_BY_NAME = {spec.name.lower(): spec for spec in SYSTEM_VARIABLES}


def find_variable(name: str) -> VariableSpec:
    """Look a variable up case-insensitively (as IceWarp does); LookupError lists the known ones."""
    try:
        return _BY_NAME[name.strip().lower()]
    except KeyError:
        known = ", ".join(spec.name for spec in SYSTEM_VARIABLES)
        raise LookupError(f"Unknown system variable “{name}”. Known variables: {known}.") from None
