"""IceWarp's VCARDMAP: which directory attributes fill which vCard items.

A map line is ``ITEM:template``. ``${attr}`` inserts the attribute's value (names are case-insensitive),
``${a,b}`` the first non-empty of several, ``${!attr}`` (or ``${!a,b}``) drops the whole line when empty;
literal text around placeholders is kept (``N:${sn};${givenName}``). Blank lines and ``#`` comments are
ignored; LF and CRLF both work.

Rendering rules we chose where IceWarp's documents are silent:

- a line is dropped when a ``${!…}`` placeholder is empty, when every placeholder in it is empty (so
  ``N:${sn};${givenName}`` with neither gives no N, rather than ``N:;``), or when it renders to nothing;
  a line without placeholders is a constant and is kept;
- when several kept lines have the same item (several ``TEL`` lines with the same parameters), the first
  one wins: the result is a dict, its keys are unique;
- inserted values are escaped for vCard text (``\\``, newline, ``,`` and ``;``), the template's own
  literal text (the ``;`` between N's components) is not: the values are ready to write into a vCard.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache

from directory_sync.rules.secret_attributes import is_secret_attribute

__all__ = [
    "DEFAULT_VCARD_MAP",
    "AttributeValues",
    "Placeholder",
    "VCardLine",
    "VCardMap",
    "VCardMapError",
    "default_vcard_map",
    "parse_vcard_map",
    "render_vcard",
    "rewrite_email_domains",
]

DEFAULT_VCARD_MAP = "\n".join(
    [
        "FN:${displayName,fn}",
        "N:${sn};${givenName}",
        "NOTE:${!description}",
        "TITLE:${!title}",
        "ORG:${company,o};${department}",
        "TEL;TYPE=PREF,WORK,VOICE:${!telephoneNumber}",
        "TEL;TYPE=CELL:${!mobile,otherMobile}",
        "EMAIL;TYPE=INTERNET:${!mail,otherMailbox,proxyAddresses}",
    ]
)

_ATTRIBUTE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]*\Z")
_ITEM_NAME = re.compile(r"[A-Za-z0-9-]+\Z")
_PARAMETER = re.compile(r'[A-Za-z0-9-]+(?:=(?:"[^"]*"|[^";:]*))?\Z')
_PROXY_ADDRESSES = "proxyaddresses"


class VCardMapError(ValueError):
    """A vCard map line that does not parse; the message names the line and what to fix."""


@dataclass(frozen=True)
class Placeholder:
    """One ``${…}``: attributes to try in order (lower-case); required: an empty value drops the line."""

    names: tuple[str, ...]
    required: bool = False


@dataclass(frozen=True)
class VCardLine:
    """One parsed map line: the vCard item (upper-case, with its parameters) and its template."""

    number: int
    item: str
    parts: tuple[str | Placeholder, ...]
    attributes: frozenset[str] = field(default=frozenset())

    @functools.cached_property
    def placeholders(self) -> tuple[Placeholder, ...]:
        """Return the line's placeholders in order (asked for every entry a sync renders: kept)."""
        return tuple(part for part in self.parts if isinstance(part, Placeholder))


@dataclass(frozen=True)
class VCardMap:
    """A parsed vCard map: its lines in order (duplicate items allowed)."""

    lines: tuple[VCardLine, ...]

    def attributes(self) -> frozenset[str]:
        """Return the lower-case names of the attributes the map reads (ask the directory for only those)."""
        return frozenset(name for line in self.lines for name in line.attributes)

    def items(self) -> tuple[str, ...]:
        """Return the distinct vCard items the map can fill, in map order."""
        return tuple(dict.fromkeys(line.item for line in self.lines))


def _fail(number: int, line: str, problem: str) -> VCardMapError:
    """Build the error for map line number whose text is line."""
    return VCardMapError(f"Line {number} “{line}”: {problem}")


def _split_item(number: int, line: str) -> tuple[str, str]:
    """Split a map line at its first colon that is not inside ``${…}``."""
    depth_start = -1
    pos = 0
    while pos < len(line):
        if depth_start < 0 and line.startswith("${", pos):
            depth_start = pos
            pos += 2
            continue
        char = line[pos]
        if depth_start >= 0 and char == "}":
            depth_start = -1
        elif depth_start < 0 and char == ":":
            return line[:pos], line[pos + 1 :]
        pos += 1
    if depth_start >= 0 and ":" in line[depth_start:]:
        raise _fail(number, line, f"“{line[depth_start:]}” is not closed: add “}}” after the attribute name")
    raise _fail(number, line, "expected ITEM:template (a colon after the item), e.g. TEL;TYPE=CELL:${mobile}")


def _check_item(number: int, line: str, item: str) -> str:
    """Return the upper-cased vCard item (NAME;PARAM=…), or raise VCardMapError."""
    if not item:
        raise _fail(number, line, "the vCard item before “:” is empty; write e.g. FN:${displayName}")
    name, *parameters = item.split(";")
    if not _ITEM_NAME.match(name):
        raise _fail(
            number,
            line,
            f"“{item}” is not a vCard item name: use letters, digits and hyphens (FN, TEL, X-DEPARTMENT), "
            "optionally followed by ;PARAM=value parts (TEL;TYPE=CELL)",
        )
    for parameter in parameters:
        if not _PARAMETER.match(parameter):
            raise _fail(
                number,
                line,
                f"“;{parameter}” is not a vCard parameter: write ;NAME=value, e.g. ;TYPE=WORK",
            )
    return item.upper()


def _parse_placeholder(number: int, line: str, content: str) -> Placeholder:
    """Parse the text between ``${`` and ``}``."""
    shown = "${" + content + "}"
    body = content.strip()
    required = body.startswith("!")
    if required:
        body = body[1:].strip()
    if not body:
        raise _fail(number, line, f"“{shown}” is empty: write an attribute name inside, e.g. ${{mail}}")
    if "!" in body:
        raise _fail(
            number,
            line,
            f"in “{shown}” the “!” must come first, right after “${{”: write ${{!{body.replace('!', '')}}}",
        )
    names = [name.strip() for name in body.split(",")]
    for name in names:
        if not name:
            raise _fail(
                number, line, f"“{shown}” has an empty attribute name: separate names by single commas"
            )
        if ";" in name:
            raise _fail(
                number,
                line,
                f"“{name}” in “{shown}”: attribute options such as ;binary are not supported, "
                "write the name alone",
            )
        if not _ATTRIBUTE_NAME.match(name):
            raise _fail(
                number,
                line,
                f"“{name}” in “{shown}” is not an attribute name: it starts with a letter and has only "
                "letters, digits and hyphens",
            )
        if is_secret_attribute(name):
            raise _fail(
                number,
                line,
                f"“{name}” may hold a password or a key: the sync never copies it into personal data",
            )
    return Placeholder(names=tuple(name.lower() for name in names), required=required)


def _parse_template(number: int, line: str, template: str) -> tuple[str | Placeholder, ...]:
    """Split a template into literal text and placeholders."""
    parts: list[str | Placeholder] = []
    pos = 0
    while True:
        start = template.find("${", pos)
        if start < 0:
            if template[pos:]:
                parts.append(template[pos:])
            return tuple(parts)
        if start > pos:
            parts.append(template[pos:start])
        end = template.find("}", start + 2)
        if end < 0:
            raise _fail(
                number, line, f"“{template[start:]}” is not closed: add “}}” after the attribute name"
            )
        nested = template.find("${", start + 2, end)
        if nested >= 0:
            raise _fail(
                number, line, f"“{template[start:nested]}” is not closed: add “}}” before the next “${{”"
            )
        parts.append(_parse_placeholder(number, line, template[start + 2 : end]))
        pos = end + 1


def _lines(text: str) -> Iterator[tuple[int, str]]:
    """Yield (line number, trimmed text) of each line that is neither blank nor a comment."""
    for number, raw in enumerate(text.replace("\r\n", "\n").split("\n"), start=1):
        line = raw.strip()
        if line and not line.startswith("#"):
            yield number, line


def parse_vcard_map(text: str) -> VCardMap:
    """Parse a VCARDMAP text, or raise VCardMapError naming the first line that fails."""
    lines: list[VCardLine] = []
    for number, line in _lines(text):
        item, template = _split_item(number, line)
        parts = _parse_template(number, line, template.strip())
        attributes = frozenset(name for part in parts if isinstance(part, Placeholder) for name in part.names)
        lines.append(
            VCardLine(
                number=number,
                item=_check_item(number, line, item.strip()),
                parts=parts,
                attributes=attributes,
            )
        )
    return VCardMap(lines=tuple(lines))


@cache
def default_vcard_map() -> VCardMap:
    """Return DEFAULT_VCARD_MAP, parsed (the map that applies when the domain's map is empty)."""
    return parse_vcard_map(DEFAULT_VCARD_MAP)


class AttributeValues:
    """A case-insensitive, read-only view of an entry's attributes (text values) for rendering."""

    def __init__(self, attributes: Mapping[str, Sequence[str] | str], *, lower_case: bool = False) -> None:
        """Index attributes by lower-case name; a single string counts as one value.

        lower_case: the names are lower-case already and the values lists (the sync's own view): used as is.
        """
        self._values: Mapping[str, Sequence[str] | str] = attributes
        if lower_case:
            return
        values_by_name: dict[str, list[str]] = {}
        for name, values in attributes.items():
            listed = [values] if isinstance(values, str) else list(values)
            values_by_name.setdefault(name.lower(), []).extend(listed)
        self._values = values_by_name

    def values(self, name: str) -> list[str]:
        """Return every value of the attribute (empty list when absent)."""
        return list(self._values.get(name.lower(), []))

    def first(self, name: str) -> str:
        """Return the attribute's first non-empty value, stripped; for proxyAddresses the SMTP address."""
        key = name.lower()
        values = self._values.get(key)
        if not values:
            return ""
        if key == _PROXY_ADDRESSES:
            stripped = [value.strip() for value in values]
            primary = [value[5:].strip() for value in stripped if value.startswith("SMTP:")]
            secondary = [value[5:].strip() for value in stripped if value[:5].lower() == "smtp:"]
            return next((value for value in primary + secondary if value), "")
        for value in values:
            value = value.strip()
            if value:
                return value
        return ""


_NEEDS_ESCAPE = re.compile(r"[\\\r\n,;]")


def _escape(value: str) -> str:
    """Escape a value for a vCard text property (RFC 6350 §3.4)."""
    if not _NEEDS_ESCAPE.search(value):
        return value
    return (
        value.replace("\\", "\\\\")
        .replace("\r\n", "\n")
        .replace("\r", "\n")
        .replace("\n", "\\n")
        .replace(",", "\\,")
        .replace(";", "\\;")
    )


def render_vcard(
    vmap: VCardMap,
    attributes: Mapping[str, Sequence[str] | str],
    *,
    escape: bool = True,
    lower_case: bool = False,
) -> dict[str, str]:
    """Return {ITEM: value} for an entry (see the module docstring for which lines are dropped).

    lower_case: the attribute names are lower-case and their values lists already (saves a copy per entry).
    """
    view = AttributeValues(attributes, lower_case=lower_case)
    rendered: dict[str, str] = {}
    for line in vmap.lines:
        if line.item in rendered:
            continue
        pieces: list[str] = []
        filled = 0
        dropped = False
        for part in line.parts:
            if isinstance(part, str):
                pieces.append(part)
                continue
            value = ""
            for name in part.names:
                value = view.first(name)
                if value:
                    break
            if not value and part.required:
                dropped = True
                break
            if value:
                filled += 1
            pieces.append(_escape(value) if escape else value)
        text = "".join(pieces)
        if dropped or not text or (line.placeholders and not filled):
            continue
        rendered[line.item] = text
    return rendered


def rewrite_email_domains(
    vcard: dict[str, str], *, domain: str, rewritten: frozenset[str], any_domain: bool = False
) -> dict[str, str]:
    """The vCard with the e-mail addresses of its EMAIL items moved to this domain when their domain is one
    whose addresses the sync rewrites here (the directory domain differs; DISABLEVCARDDOMAINRENAME off), as
    the account's own addresses are."""
    if not rewritten and not any_domain:
        return vcard
    changed = dict(vcard)
    for item, value in vcard.items():
        if not item.upper().startswith("EMAIL"):
            continue
        local, at, mail_domain = value.strip().rpartition("@")
        mail_domain = mail_domain.lower()
        if at and local and mail_domain != domain and (any_domain or mail_domain in rewritten):
            changed[item] = f"{local}@{domain}"
    return changed
