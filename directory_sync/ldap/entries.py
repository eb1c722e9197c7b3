"""Directory entries as plain data: the DN and the attribute values as the server returned them."""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

Value = str | bytes

# Attributes whose values are binary by nature: kept as bytes even when they happen to be valid UTF-8
# (a 16-byte objectGUID decodes as text now and then, and would then be mistaken for a text id).
BINARY_ATTRIBUTES: Final[frozenset[str]] = frozenset(
    name.lower()
    for name in (
        "objectGUID",
        "objectSid",
        "sIDHistory",
        "tokenGroups",
        "nTSecurityDescriptor",
        "msExchMailboxGuid",
        "msExchArchiveGUID",
        "mS-DS-ConsistencyGuid",
        "msDS-GenerationId",
        "logonHours",
        "thumbnailPhoto",
        "jpegPhoto",
        "photo",
        "audio",
        "userCertificate",
        "cACertificate",
        "userSMIMECertificate",
        "userPKCS12",
        "crossCertificatePair",
        "certificateRevocationList",
        "authorityRevocationList",
        "msDS-KeyCredentialLink",
        "unicodePwd",
        "dBCSPwd",
        "supplementalCredentials",
        "userPassword",
    )
)


def _base_name(name: str) -> str:
    """The attribute type without options: "member;range=0-1499" -> "member"."""
    return name.split(";", 1)[0].lower()


def is_binary_attribute(name: str, extra: Collection[str] = ()) -> bool:
    """Whether values of this attribute must stay bytes."""
    base = _base_name(name)
    if base in BINARY_ATTRIBUTES or ";binary" in name.lower():
        return True
    return any(base == _base_name(other) for other in extra)


@functools.lru_cache(maxsize=4096)
def _binary(name: str, extra: tuple[str, ...]) -> bool:
    return is_binary_attribute(name, extra)


def decode_values(name: str, raw: Iterable[bytes], binary: Collection[str] = ()) -> list[Value]:
    """Raw values as text when they are valid UTF-8, as bytes otherwise or when the attribute is binary."""
    if _binary(name, tuple(binary)):
        return [bytes(value) for value in raw]
    try:
        return [value.decode("utf-8") for value in raw]
    except (UnicodeDecodeError, AttributeError):
        pass
    values: list[Value] = []
    for value in raw:
        try:
            values.append(bytes(value).decode("utf-8"))
        except UnicodeDecodeError:
            values.append(bytes(value))
    return values


@dataclass(frozen=True)
class Entry:
    """One directory entry; attribute names keep the spelling the directory used.

    incomplete: attributes (lower-case names) whose values the server returned only in part (an Active
    Directory range read that stopped): what is there is true, what is missing is unknown.
    """

    dn: str
    attributes: dict[str, list[Value]] = field(default_factory=dict)
    incomplete: frozenset[str] = frozenset()

    @functools.cached_property
    def _by_lower_name(self) -> dict[str, list[Value]]:
        # The sync asks each entry for a dozen attributes: index the names once instead of scanning each time.
        return {key.lower(): values for key, values in self.attributes.items()}

    def get(self, name: str) -> list[Value]:
        """All values of an attribute (case-insensitive; options such as ;binary are matched too)."""
        exact = self._by_lower_name.get(name.lower())
        if exact is not None:
            return list(exact)
        base = _base_name(name)
        found: list[Value] = []
        for key, values in self.attributes.items():
            if _base_name(key) == base:
                found.extend(values)
        return found

    def first(self, name: str) -> Value | None:
        """The first value of an attribute, or None."""
        values = self.get(name)
        return values[0] if values else None

    def has(self, name: str) -> bool:
        """Whether the entry carries at least one value of the attribute."""
        return bool(self.get(name))

    @classmethod
    def from_raw(
        cls, dn: str, raw_attributes: Mapping[str, Iterable[bytes]], binary: Collection[str] = ()
    ) -> Entry:
        """Build an entry from raw (bytes) values, dropping attributes that came back without values."""
        attributes: dict[str, list[Value]] = {}
        for name, raw in raw_attributes.items():
            values = decode_values(str(name), raw, binary)
            if values:
                attributes[str(name)] = values
        return cls(dn=dn, attributes=attributes)
