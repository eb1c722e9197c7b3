"""Checking LDAP search filters (RFC 4515) and DNs (RFC 4514) as an administrator types them."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NoReturn

from ldap3.core.exceptions import LDAPException, LDAPInvalidFilterError
from ldap3.operation.search import parse_filter
from ldap3.utils.dn import safe_dn

__all__ = [
    "DnError",
    "FilterError",
    "check_dn",
    "dn_is_within",
    "dn_key",
    "normalize_filter",
]

_DESCR = r"[A-Za-z][A-Za-z0-9-]*"
_NUMERICOID = r"(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*))+"
_OID = rf"(?:{_DESCR}|{_NUMERICOID})"
_ATTRIBUTE_DESCRIPTION = rf"{_OID}(?:;[A-Za-z0-9-]+)*"
_ATTRIBUTE = re.compile(rf"{_ATTRIBUTE_DESCRIPTION}\Z")
_EXTENSIBLE = re.compile(rf"(?P<attr>{_ATTRIBUTE_DESCRIPTION})?(?P<dn>:dn)?(?::(?P<rule>{_OID}))?\Z", re.I)
_OBJECT_CLASS = re.compile(rf"{_DESCR}\Z")
_DN_TYPE = re.compile(rf"{_DESCR}\Z")
_NUMERIC_TYPE = re.compile(rf"{_NUMERICOID}\Z")
_HEX = frozenset("0123456789abcdefABCDEF")
_ESCAPE_HINT = r"\2a for *, \28 for (, \29 for ), \5c for \ "
_EXAMPLE_AND = "(&(objectClass=user)(mail=*))"


class FilterError(ValueError):
    """A search filter the directory would refuse; the message says what to fix."""


class DnError(ValueError):
    """A distinguished name that is not valid DN syntax; the message says what to fix."""


def _quote(text: str, limit: int = 40) -> str:
    """Return text in quotes, shortened to limit characters."""
    short = text if len(text) <= limit else text[: limit - 1] + "…"
    return f"“{short}”"


# --------------------------------------------------------------------------- filters


def normalize_filter(value: str) -> str:
    """Return the filter to send (a bare objectClass becomes (objectClass=…)), or raise FilterError."""
    text = value.strip()
    if not text:
        raise FilterError(
            "Enter a filter: an object class such as User or inetOrgPerson, "
            f"or a full filter such as {_EXAMPLE_AND}."
        )
    if _OBJECT_CLASS.match(text):
        return f"(objectClass={text})"
    if not text.startswith("("):
        if "=" in text and "(" not in text:
            raise FilterError(
                f"Put the whole filter in parentheses, e.g. ({text.rstrip(')')}); "
                f"combine several conditions as {_EXAMPLE_AND}."
            )
        raise FilterError(
            f"{_quote(text)} is neither an object class name (such as User or inetOrgPerson: letters, digits "
            f"and hyphens) nor a filter in parentheses (such as {_EXAMPLE_AND})."
        )
    _FilterParser(text).parse()
    try:
        parse_filter(text, None, auto_escape=False, auto_encode=False, validator=None, check_names=False)
    except (LDAPInvalidFilterError, LDAPException) as exc:  # a safety net: the checks above should catch all
        raise FilterError(
            f"The LDAP library refuses this filter ({exc}); check its syntax (RFC 4515)."
        ) from exc
    return text


class _FilterParser:
    """A recursive-descent RFC 4515 parser that only checks, with messages for administrators."""

    def __init__(self, text: str) -> None:
        """Remember the filter text."""
        self.text = text
        self.opened = text.count("(")
        self.closed = text.count(")")

    def counts(self) -> str:
        """Describe how many parentheses the filter opens and closes."""
        return f"it opens {self.opened} parenthes{'i' if self.opened == 1 else 'e'}s and closes {self.closed}"

    def fail(self, message: str) -> NoReturn:
        """Raise FilterError with message."""
        raise FilterError(message)

    def unclosed(self, start: int) -> NoReturn:
        """Report a condition that the text ends inside of."""
        self.fail(
            f"The filter is not closed: {self.counts()}; add the missing “)” "
            f"(the condition starting at {_quote(self.text[start:], 30)} is still open)."
        )

    def skip_spaces(self, pos: int) -> int:
        """Return the first position at or after pos that is not white space."""
        while pos < len(self.text) and self.text[pos].isspace():
            pos += 1
        return pos

    def parse(self) -> None:
        """Check the whole text: exactly one filter, nothing after it."""
        end = self.parse_one(0)
        rest = self.text[end:].lstrip()
        if not rest:
            return
        if rest.startswith("("):
            self.fail(
                "Two conditions side by side need & or | in front: write (&(a=1)(b=2)) to require both, "
                "or (|(a=1)(b=2)) to accept either."
            )
        if rest.startswith(")"):
            self.fail(
                f"The filter has one “)” too many: {self.counts()}. "
                "If the “)” belongs to a value, write it as \\29."
            )
        self.fail(
            f"Unexpected text {_quote(rest)} after the end of the filter. "
            "If “)” belongs to a value, write it as \\29; if it is another condition, put it in parentheses "
            "and combine with & or |."
        )

    def parse_one(self, start: int) -> int:
        """Check the filter that opens at start; return the position after its “)”."""
        text = self.text
        pos = start + 1
        if pos >= len(text):
            self.unclosed(start)
        char = text[pos]
        if char == ")":
            self.fail(
                "The filter contains an empty condition “()”: write a condition inside, e.g. (cn=John)."
            )
        if char == "(":
            self.fail(
                f"{_quote(text[start:], 30)}: “((” opens a condition without saying what it is. "
                f"Remove the extra “(”, or put & or | before a list of conditions, e.g. {_EXAMPLE_AND}."
            )
        if char in "&|":
            return self.parse_list(start, char)
        if char == "!":
            return self.parse_not(start)
        return self.parse_item(start)

    def parse_list(self, start: int, operator: str) -> int:
        """Check (&…) or (|…); return the position after its “)”."""
        text = self.text
        pos = start + 2
        count = 0
        while True:
            pos = self.skip_spaces(pos)
            if pos >= len(text):
                self.unclosed(start)
            if text[pos] == ")":
                if not count:
                    self.fail(
                        f"“({operator})” needs at least one condition after “{operator}”, "
                        f"e.g. ({operator}(objectClass=user)(mail=*))."
                    )
                return pos + 1
            if text[pos] != "(":
                self.fail(
                    f"Inside ({operator}…) each condition needs its own parentheses: "
                    f"{_quote(text[pos:], 30)} should start with “(”, e.g. ({operator}(a=1)(b=2))."
                )
            pos = self.parse_one(pos)
            count += 1

    def parse_not(self, start: int) -> int:
        """Check (!…); return the position after its “)”."""
        text = self.text
        pos = self.skip_spaces(start + 2)
        if pos >= len(text):
            self.unclosed(start)
        if text[pos] == ")":
            self.fail("“(!)” needs one condition to negate, e.g. (!(userAccountControl=514)).")
        if text[pos] != "(":
            self.fail(
                f"After “!” put the condition to negate in its own parentheses: "
                f"write (!({text[pos:].split(')')[0]})) instead of {_quote(text[start:], 30)}."
            )
        pos = self.skip_spaces(self.parse_one(pos))
        if pos >= len(text):
            self.unclosed(start)
        if text[pos] == "(":
            self.fail("“!” negates exactly one condition: to negate several, write (!(|(a=1)(b=2))).")
        if text[pos] != ")":
            self.fail(
                f"Unexpected text {_quote(text[pos:], 30)} inside (!…): it takes exactly one condition."
            )
        return pos + 1

    def parse_item(self, start: int) -> int:
        """Check a single condition such as (cn=John*); return the position after its “)”."""
        text = self.text
        ends = [i for i in (text.find("(", start + 1), text.find(")", start + 1)) if i >= 0]
        if not ends:
            self.unclosed(start)
        end = min(ends)
        item = text[start + 1 : end]
        if text[end] == "(":
            if "=" in item:
                attribute = item.split("=", 1)[0].rstrip("~<>:")
                self.fail(
                    f"“(” inside the value of {attribute or 'a condition'} in {_quote(text[start:], 30)}: "
                    "if it belongs to the value, write it as \\28 (and “)” as \\29); if it starts another "
                    "condition, close this one with “)” first and combine them with & or | "
                    f"(the filter {self.counts()})."
                )
            self.fail(f"“(” cannot appear inside the condition {_quote(text[start:], 30)}.")
        self.check_item(item)
        return end + 1

    def check_item(self, item: str) -> None:
        """Check the text between the parentheses of a single condition."""
        shown = _quote(f"({item})")
        if not item.strip():
            self.fail(
                "The filter contains an empty condition “( )”: write a condition inside, e.g. (cn=John)."
            )
        if "=" not in item:
            if any(op in item for op in "~<>"):
                self.fail(f"{shown} has no valid comparison: use =, ~=, >= or <=, e.g. (cn~=John).")
            self.fail(
                f"{shown} is not a condition: write attribute=value, e.g. (objectClass={item.strip()}) "
                "to match an object class."
            )
        left, value = item.split("=", 1)
        if left.endswith(":"):
            self.check_extensible(left[:-1], value, shown)
            return
        operator = left[-1:] if left[-1:] in ("~", "<", ">") else ""
        attribute = left[: len(left) - len(operator)]
        self.check_attribute(attribute, shown)
        if operator:
            self.check_value(value, shown, f"{operator}=")
            return
        if value == "*":
            return
        if "*" in value:
            if "**" in value:
                self.fail(f"{shown} has two * in a row: one * already matches any run of characters.")
            for part in value.split("*"):
                self.check_value(part, shown, "=")
            return
        self.check_value(value, shown, "=")

    def check_attribute(self, attribute: str, shown: str) -> None:
        """Check an attribute description such as cn, mail or cn;lang-en."""
        if not attribute:
            self.fail(f"{shown} has no attribute before “=”: write the attribute name, e.g. (mail=*).")
        if any(char.isspace() for char in attribute):
            self.fail(f"The attribute name {_quote(attribute)} in {shown} cannot contain spaces.")
        if not _ATTRIBUTE.match(attribute):
            self.fail(
                f"{_quote(attribute)} in {shown} is not an attribute name: it starts with a letter and has "
                "only letters, digits and hyphens (or is a numeric OID such as 2.5.4.3)."
            )

    def check_extensible(self, left: str, value: str, shown: str) -> None:
        """Check an extensible match such as (userAccountControl:1.2.840.113556.1.4.803:=2)."""
        match = _EXTENSIBLE.match(left)
        if not match or not (match["attr"] or match["rule"]):
            self.fail(
                f"{shown} is not a valid extensible match: write attribute:rule:=value, "
                "e.g. (userAccountControl:1.2.840.113556.1.4.803:=2)."
            )
        self.check_value(value, shown, ":=")

    def check_value(self, value: str, shown: str, operator: str) -> None:
        """Check an assertion value: no raw *, and backslash escapes of two hex digits."""
        if "*" in value:
            self.fail(
                f"“*” in {shown} only works with = (for “present” or substrings), not with {operator}; "
                "write \\2a to match a literal *."
            )
        pos = value.find("\\")
        while pos >= 0:
            escape = value[pos : pos + 3]
            if len(escape) < 3 or escape[1] not in _HEX or escape[2] not in _HEX:
                self.fail(
                    f"{_quote(escape)} in {shown} is not a valid escape: a backslash must be followed by two "
                    f"hex digits ({_ESCAPE_HINT.strip()})."
                )
            pos = value.find("\\", pos + 3)
        if "\x00" in value:
            self.fail(f"{shown} contains a NUL character: write it as \\00.")


# --------------------------------------------------------------------------- DNs


def _within(part: str, text: str) -> str:
    """Return “ in <text>” unless part is the whole text."""
    return "" if part == text else f" in {_quote(text)}"


_DN_ESCAPABLE = frozenset('\\"+,;<># =')


def _parse_dn(value: str) -> list[list[tuple[str, str]]]:
    """Split a DN into RDNs of (type, raw value as typed, escapes kept), or raise DnError."""
    text = value.strip()
    if not text:
        raise DnError("Enter a DN such as dc=example,dc=com.")
    rdns: list[list[tuple[str, str]]] = []
    avas: list[tuple[str, str]] = []
    pos = 0
    length = len(text)
    while True:
        # attribute type, up to “=”
        equals = pos
        while equals < length and text[equals] not in "=,+;":
            equals += 1
        attribute = text[pos:equals].strip()
        if equals >= length or text[equals] != "=":
            if not attribute:
                if equals >= length:
                    raise DnError(f"{_quote(text)} ends with a separator: remove it or add the missing part.")
                raise DnError(
                    f"{_quote(text)} has an empty part (two separators in a row, or one at the start)."
                )
            raise DnError(
                f"{_quote(attribute)}{_within(attribute, text)} is not attribute=value: "
                "a DN looks like cn=Users,dc=example,dc=com."
            )
        if not attribute:
            raise DnError(f"{_quote(text)} has no attribute name before an “=”: write e.g. ou=Sales.")
        if any(char.isspace() for char in attribute):
            raise DnError(f"The attribute name {_quote(attribute)} in {_quote(text)} cannot contain spaces.")
        if _NUMERIC_TYPE.match(attribute):
            raise DnError(
                f"Use the attribute's name (cn, ou, dc…) rather than the numeric OID {_quote(attribute)}."
            )
        if not _DN_TYPE.match(attribute):
            raise DnError(
                f"{_quote(attribute)}{_within(attribute, text)} is not an attribute name: it starts with a "
                "letter and has only letters, digits and hyphens (e.g. cn, ou, dc)."
            )
        # attribute value, up to an unescaped “,” or “+”
        pos = equals + 1
        while pos < length and text[pos] == " ":
            pos += 1
        raw: list[str] = []
        significant = 0
        if pos < length and text[pos] == "#":
            raise DnError(
                f"Hex-encoded values (starting with #) are not supported{_within('', text)}: "
                "write the value as text, or escape a leading # as \\#."
            )
        while pos < length and text[pos] not in ",+":
            char = text[pos]
            if char == "\\":
                pair = text[pos + 1 : pos + 3]
                if pair[:1] and pair[0] in _DN_ESCAPABLE:
                    raw.append("\\" + pair[0])
                    pos += 2
                elif len(pair) == 2 and pair[0] in _HEX and pair[1] in _HEX:
                    raw.append("\\" + pair)
                    pos += 3
                else:
                    escape = "\\" + pair[:1]
                    raise DnError(
                        f"{_quote(escape)} in {_quote(text)} is not a valid escape: after a backslash "
                        'write one of , + ; < > " \\ = # or a space, or two hex digits.'
                    )
                significant = len(raw)
                continue
            if char == '"':
                raise DnError(
                    f"Quotes are not DN syntax ({_quote(text)}): escape special characters with a backslash "
                    "instead, e.g. cn=Smith\\, John."
                )
            if char == ";":
                raise DnError(f"Separate the parts of {_quote(text)} with commas, not “;”.")
            if char in "<>":
                raise DnError(f"“{char}” in {_quote(text)} must be escaped: write \\{char}.")
            if char == "\x00":
                raise DnError(f"{_quote(text)} contains a NUL character: write it as \\00.")
            raw.append(char)
            if char != " ":
                significant = len(raw)
            pos += 1
        raw_value = "".join(raw[:significant])
        if not raw_value:
            raise DnError(f"“{attribute}=”{_within(attribute + '=', text)} has no value: write it after “=”.")
        avas.append((attribute, raw_value))
        if pos >= length:
            rdns.append(avas)
            return rdns
        if text[pos] == ",":
            rdns.append(avas)
            avas = []
        pos += 1
        if pos >= length or not text[pos:].strip():
            raise DnError(f"{_quote(text)} ends with “{text[pos - 1]}”: remove it or add the missing part.")


def check_dn(value: str) -> str:
    """Return the DN with insignificant spaces removed (cn=a,dc=b), or raise DnError saying what to fix."""
    rdns = _parse_dn(value)
    dn = ",".join("+".join(f"{attribute}={raw}" for attribute, raw in rdn) for rdn in rdns)
    try:
        safe_dn(dn)
    except LDAPException as exc:  # a safety net: _parse_dn should already refuse what ldap3 refuses
        raise DnError(f"The LDAP library refuses the DN {_quote(dn)} ({exc}).") from exc
    return dn


def _unescape_dn_value(raw: str) -> str:
    """Return the text a raw (escaped) DN attribute value stands for."""
    data = bytearray()
    pos = 0
    while pos < len(raw):
        char = raw[pos]
        if char == "\\":
            pair = raw[pos + 1 : pos + 3]
            if len(pair) == 2 and pair[0] in _HEX and pair[1] in _HEX:
                data.append(int(pair, 16))
                pos += 3
                continue
            data.extend(raw[pos + 1].encode())
            pos += 2
            continue
        data.extend(char.encode())
        pos += 1
    return data.decode("utf-8", errors="replace")


def dn_key(value: str) -> tuple[frozenset[tuple[str, str]], ...]:
    """Return a DN's RDNs normalized for case-insensitive comparison (raises DnError on bad syntax)."""
    return tuple(
        frozenset(
            (attribute.lower(), " ".join(_unescape_dn_value(raw).split()).casefold())
            for attribute, raw in rdn
        )
        for rdn in _parse_dn(value)
    )


def dn_is_within(dn: str, base: str) -> bool:
    """Tell whether dn is base itself or lies below it (an empty base holds everything)."""
    if not base.strip():
        return True
    inner, outer = dn_key(dn), dn_key(base)
    return len(inner) >= len(outer) and inner[len(inner) - len(outer) :] == outer


@dataclass(frozen=True)
class Rdn:
    """One RDN of a DN (its first AVA): the type, the value unescaped, and the value as written (escaped)."""

    attribute: str
    value: str
    raw: str


def dn_rdns(value: str) -> list[Rdn]:
    """A DN's RDNs from the leaf up."""
    return [Rdn(rdn[0][0], _unescape_dn_value(rdn[0][1]), rdn[0][1]) for rdn in _parse_dn(value) if rdn]


def join_rdns(rdns: Sequence[Rdn]) -> str:
    """The DN made of these RDNs, values kept escaped as written (so "OU=Sales\\, EMEA" stays one RDN)."""
    return ",".join(f"{rdn.attribute}={rdn.raw}" for rdn in rdns)


_FILTER_SPECIALS = frozenset("*()\\\0")


def escape_value(value: str | bytes) -> str:
    """An assertion value for a filter (RFC 4515): bytes as \\xx each, text with * ( ) \\ NUL escaped."""
    if isinstance(value, bytes):
        return "".join(f"\\{byte:02x}" for byte in value)
    return "".join(f"\\{ord(char):02x}" if char in _FILTER_SPECIALS else char for char in value)


def any_of(assertions: Sequence[str]) -> str:
    """(|a b c) of assertions written as (attr=value); one assertion is returned as it is."""
    if len(assertions) == 1:
        return assertions[0]
    return f"(|{''.join(assertions)})"
