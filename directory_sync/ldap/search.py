"""Searches over a bound ldap3 connection: manual paging, referrals as errors, raw values kept."""

from __future__ import annotations

import contextlib
import hashlib
import math
import time
import urllib.parse
from collections.abc import Callable, Collection, Generator, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

from ldap3 import BASE, LEVEL, SUBTREE
from ldap3.core.exceptions import LDAPException, LDAPNoSuchObjectResult
from ldap3.core.results import (
    RESULT_REFERRAL,
    RESULT_SIZE_LIMIT_EXCEEDED,
    RESULT_SUCCESS,
    RESULT_TIME_LIMIT_EXCEEDED,
)

from directory_sync.ldap.entries import Entry
from directory_sync.ldap.errors import DirectoryError, Stage
from directory_sync.ldap.rootdse import PAGED_RESULTS_OID

Scope = Literal["base", "onelevel", "subtree"]

SCOPES: Final[dict[str, str]] = {
    "base": BASE,
    "onelevel": LEVEL,
    "one": LEVEL,
    "level": LEVEL,
    "subtree": SUBTREE,
    "sub": SUBTREE,
}
NO_ATTRIBUTES: Final = "1.1"
ALL_OBJECTS: Final = "(objectClass=*)"


class Translate(Protocol):
    """Turns an ldap3 exception into our DirectoryError (the session knows host, timeout and secrets)."""

    def __call__(
        self, exc: BaseException, stage: Stage, *, base: str = "", search_filter: str = ""
    ) -> DirectoryError: ...


@dataclass
class Page:
    """One page of a paged search: raw entries, continuation references, the result code."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    code: int = RESULT_SUCCESS
    last: bool = True


def scope_constant(scope: str) -> str:
    """The ldap3 scope for "base" / "onelevel" / "subtree"."""
    try:
        return SCOPES[scope.lower()]
    except KeyError:
        raise DirectoryError(
            "config", f"Unknown search scope {scope!r}: use base, onelevel or subtree"
        ) from None


def _cookie(result: dict[str, Any]) -> bytes | None:
    control = (result.get("controls") or {}).get(PAGED_RESULTS_OID) or {}
    cookie = (control.get("value") or {}).get("cookie")
    return bytes(cookie) if cookie else None


def _pages(
    conn: Any,
    fail: Translate,
    base: str,
    search_filter: str,
    attributes: Sequence[str],
    *,
    scope: str,
    page_size: int,
    size_limit: int = 0,
    time_limit: Callable[[], int] | None = None,
    host: str = "",
    controls: Sequence[tuple[str, bool, Any]] = (),
) -> Generator[Page, None, None]:
    """Run a paged search page by page; an early close abandons it on the server (RFC 2696 size 0)."""
    ldap_scope = scope_constant(scope)
    requested = list(attributes) or [NO_ATTRIBUTES]
    cookie: bytes | None = None
    done = False
    try:
        while True:
            try:
                conn.search(
                    base,
                    search_filter,
                    search_scope=ldap_scope,
                    attributes=list(requested),
                    paged_size=max(1, page_size),
                    paged_cookie=cookie,
                    size_limit=max(0, size_limit),
                    time_limit=time_limit() if time_limit else 0,
                    controls=list(controls) or None,
                )
            except LDAPException as exc:
                done = True
                raise fail(exc, "search", base=base, search_filter=search_filter) from exc
            result: dict[str, Any] = conn.result or {}
            page = Page(code=int(result.get("result", RESULT_SUCCESS)))
            for item in conn.response or []:
                kind = item.get("type")
                if kind == "searchResEntry":
                    page.entries.append(item)
                elif kind == "searchResRef":
                    page.references.extend(str(uri) for uri in item.get("uri") or [])
            if page.code == RESULT_REFERRAL:
                done = True
                targets = ", ".join(str(uri) for uri in result.get("referrals") or []) or "another server"
                raise DirectoryError(
                    "referral",
                    f"{base} is held on another server ({targets}): referrals are not followed — use that "
                    "server's host and base DN",
                    host=host,
                )
            cookie = _cookie(result)
            page.last = cookie is None
            done = page.last
            yield page
            if page.last:
                return
    finally:
        if not done and cookie:
            # Tell the server to drop the paged search state; best effort, the caller has stopped reading.
            with contextlib.suppress(Exception):
                conn.search(
                    base,
                    search_filter,
                    search_scope=ldap_scope,
                    attributes=[NO_ATTRIBUTES],
                    paged_size=0,
                    paged_cookie=cookie,
                )


def ref_target_dn(uri: str) -> str:
    """The DN an LDAP URL points at ("ldap://h/dc=x,dc=y??sub" -> "dc=x,dc=y")."""
    parsed = urllib.parse.urlsplit(uri)
    return urllib.parse.unquote(parsed.path.lstrip("/").split("?", 1)[0])


def normalize_dn(dn: str) -> str:
    """A rough canonical DN for comparisons: lower case, no spaces around separators."""
    lowered = dn.lower()
    if ", " not in lowered and " ," not in lowered and "= " not in lowered and " =" not in lowered:
        return (
            lowered.strip()
        )  # the common case: nothing to strip inside (a sync normalizes 600,000 of these)
    return ",".join("=".join(p.strip() for p in rdn.split("=", 1)) for rdn in lowered.split(","))


def dn_hash(dn: str) -> str:
    """A fixed-size key of a DN (sha1 of its normalized form) that an index can hold, whatever its length."""
    return hash_normalized(normalize_dn(dn))


def hash_normalized(normalized_dn: str) -> str:
    """dn_hash of a DN normalized already."""
    return hashlib.sha1(normalized_dn.encode("utf-8"), usedforsecurity=False).hexdigest()


def paged_search(
    conn: Any,
    fail: Translate,
    base: str,
    search_filter: str,
    attributes: Sequence[str],
    *,
    page_size: int,
    scope: str = "subtree",
    size_limit: int = 0,
    binary_attributes: Collection[str] = (),
    ignore_reference: Callable[[str], bool] = lambda uri: False,
    host: str = "",
    controls: Sequence[tuple[str, bool, Any]] = (),
) -> Iterator[Entry]:
    """Yield entries page by page; errors are raised after the entries already yielded."""
    page = min(page_size, size_limit) if size_limit > 0 else page_size
    yielded = 0
    unresolved: list[str] = []
    with closing(
        _pages(
            conn,
            fail,
            base,
            search_filter,
            attributes,
            scope=scope,
            page_size=page,
            size_limit=size_limit,
            host=host,
            controls=controls,
        )
    ) as pages:
        for current in pages:
            for raw in current.entries:
                yield Entry.from_raw(
                    str(raw.get("dn", "")), raw.get("raw_attributes") or {}, binary_attributes
                )
                yielded += 1
                if size_limit > 0 and yielded >= size_limit:
                    return
            unresolved.extend(uri for uri in current.references if not ignore_reference(uri))
            if current.code == RESULT_SIZE_LIMIT_EXCEEDED:
                raise DirectoryError(
                    "size_limit",
                    f"The server stopped the search of {base} at its size limit after {yielded} entries: "
                    "allow paged searches for the bind user, or ask the directory administrator to raise "
                    "its limit",
                    host=host,
                )
            if current.code == RESULT_TIME_LIMIT_EXCEEDED:
                raise DirectoryError(
                    "timeout",
                    f"The server stopped the search of {base} at its time limit after {yielded} entries",
                    host=host,
                )
    if unresolved:
        shown = ", ".join(unresolved[:3]) + (
            f" and {len(unresolved) - 3} more" if len(unresolved) > 3 else ""
        )
        raise DirectoryError(
            "referral",
            f"Part of {base} is held on another server ({shown}): referrals are not followed, so the search "
            "is incomplete — point the base DN at the part this server holds, or use a Global Catalog",
            host=host,
        )


def count(
    conn: Any,
    fail: Translate,
    base: str,
    search_filter: str,
    *,
    time_budget_s: float,
    page_size: int = 1000,
    ignore_reference: Callable[[str], bool] = lambda uri: False,
    host: str = "",
) -> tuple[int, bool]:
    """Count entries page by page until done or the time budget is spent: (count so far, complete)."""
    deadline = time.monotonic() + max(0.0, time_budget_s)

    def remaining_seconds() -> int:
        return max(1, math.ceil(deadline - time.monotonic()))

    total = 0
    unresolved: list[str] = []
    with closing(
        _pages(
            conn,
            fail,
            base,
            search_filter,
            [NO_ATTRIBUTES],
            scope="subtree",
            page_size=page_size,
            time_limit=remaining_seconds,
            host=host,
        )
    ) as pages:
        for current in pages:
            total += len(current.entries)
            unresolved.extend(uri for uri in current.references if not ignore_reference(uri))
            if current.code in (RESULT_SIZE_LIMIT_EXCEEDED, RESULT_TIME_LIMIT_EXCEEDED):
                return total, False
            if not current.last and time.monotonic() >= deadline:
                return total, False
    if unresolved:
        raise DirectoryError(
            "referral",
            f"Part of {base} is held on another server ({unresolved[0]}): referrals are not followed",
            host=host,
        )
    return total, True


def read_entry(
    conn: Any,
    fail: Translate,
    dn: str,
    attributes: Sequence[str],
    *,
    binary_attributes: Collection[str] = (),
    host: str = "",
) -> Entry | None:
    """One entry by DN (base scope), or None when it does not exist."""
    try:
        conn.search(dn, ALL_OBJECTS, search_scope=BASE, attributes=list(attributes) or [NO_ATTRIBUTES])
    except LDAPNoSuchObjectResult:
        return None
    except LDAPException as exc:
        raise fail(exc, "search", base=dn, search_filter=ALL_OBJECTS) from exc
    result: dict[str, Any] = conn.result or {}
    if int(result.get("result", RESULT_SUCCESS)) == RESULT_REFERRAL:
        targets = ", ".join(str(uri) for uri in result.get("referrals") or []) or "another server"
        raise DirectoryError(
            "referral", f"{dn} is held on another server ({targets}): referrals are not followed", host=host
        )
    for item in conn.response or []:
        if item.get("type") == "searchResEntry":
            return Entry.from_raw(
                str(item.get("dn", "")), item.get("raw_attributes") or {}, binary_attributes
            )
    return None
