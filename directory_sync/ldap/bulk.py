"""The sync's reader: python-ldap (OpenLDAP's C library) behind the same session interface as ldap3's.

Why a second library: on 110,000 entries ldap3 decodes BER in Python at about 5,000 entries a second, libldap
does it in C at about 60,000 (benchmarks/RESULTS.md), and the sync reads whole directories. python-ldap also
speaks RFC 4533 syncrepl, which ldap3 does not implement. The console (Test connection, single reads) keeps
ldap3.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import ssl
import tempfile
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final

import ldap
from ldap.controls import LDAPControl, SimplePagedResultsControl
from ldap.syncrepl import SyncInfoMessage, SyncRequestControl

from directory_sync.ldap.connection import (
    SHOW_DELETED_OID,
    Endpoint,
    SessionOptions,
    first_working,
    open_endpoint,
    refuse_plain_bind,
)
from directory_sync.ldap.entries import Entry
from directory_sync.ldap.errors import (
    DirectoryError,
    ErrorKind,
    Stage,
    certificate_error,
    result_error,
    result_name,
    scrub,
    seconds_text,
)
from directory_sync.ldap.rootdse import ROOT_DSE_ATTRIBUTES, RootDse
from directory_sync.ldap.search import normalize_dn, ref_target_dn

SCOPES: Final = {"base": ldap.SCOPE_BASE, "onelevel": ldap.SCOPE_ONELEVEL, "subtree": ldap.SCOPE_SUBTREE}
NO_ATTRIBUTES: Final = "1.1"
# RFC 4533: the server cannot resume from the cookie; the client must start again without one.
SYNC_REFRESH_REQUIRED: Final = 4096
# Active Directory returns at most MaxValRange values of a multi-valued attribute per read
# ("member;range=0-1499"); the rest is asked for by range.
_RANGE = re.compile(r"^(?P<name>[^;]+);range=(?P<low>\d+)-(?P<high>\d+|\*)$", re.IGNORECASE)
_CERTIFICATE_WORDS = ("certificate", "issuer", "hostname", "verify", "self-signed", "self signed", "expired")


@dataclass(slots=True)
class SyncMessage:
    """One message of a syncrepl refresh, as plain data.

    kind "entry": an entry added or changed (entry, uuid); "delete": ids that left the content; "present": ids
    unchanged and still there; "done": the end, with the new cookie (None: keep the old one) and whether the
    server listed deletions itself (refresh_deletes) or left them to be inferred from the present ids.
    """

    kind: str
    entry: Entry | None = None
    uuids: list[str] = field(default_factory=list)
    cookie: str | None = None
    refresh_deletes: bool = True


class BulkSession:
    """A bound python-ldap connection to one directory server; use as a context manager."""

    def __init__(
        self, conn: Any, endpoint: Endpoint, *, timeout_seconds: float, secret: str, ca_file: str | None
    ) -> None:
        self._conn: Any = conn
        self.endpoint = endpoint
        self.timeout_seconds = timeout_seconds
        self._secrets = (secret,) if secret else ()
        self._ca_file = ca_file
        self._root_dse: RootDse | None = None
        self._lost: DirectoryError | None = None
        self.skipped: tuple[DirectoryError, ...] = ()

    def __repr__(self) -> str:
        return f"<BulkSession {self.endpoint.url}{' closed' if self.closed else ''}>"

    def __enter__(self) -> BulkSession:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._conn is None

    def close(self) -> None:
        """Unbind and forget the connection (idempotent)."""
        if self._conn is not None:
            with contextlib.suppress(ldap.LDAPError):
                self._conn.unbind_s()
            self._conn = None
        if self._ca_file:
            with contextlib.suppress(OSError):
                os.unlink(self._ca_file)
            self._ca_file = None

    def _fail(
        self, exc: BaseException, stage: Stage, *, base: str = "", search_filter: str = ""
    ) -> DirectoryError:
        error = translate_ldap_error(
            exc,
            stage,
            endpoint=self.endpoint,
            timeout=self.timeout_seconds,
            secrets=self._secrets,
            base=base,
            search_filter=search_filter,
        )
        if error.kind in ("timeout", "connection_lost"):
            self._lost = error
        return error

    def _live(self) -> Any:
        if self._lost is not None:
            raise DirectoryError(
                "connection_lost",
                f"The connection to {self.endpoint.where} was lost earlier ({self._lost.message}): "
                "open a new session",
                host=self.endpoint.url,
            )
        if self._conn is None:
            raise DirectoryError(
                "connection_lost", f"The session with {self.endpoint.where} is closed", host=self.endpoint.url
            )
        return self._conn

    @property
    def tls_version(self) -> str | None:
        """ "TLSv1.3" etc. when the connection is encrypted (LDAPS or StartTLS)."""
        if self._conn is None:
            return None
        try:
            version = self._conn.get_option(ldap.OPT_X_TLS_VERSION)
        except (ldap.LDAPError, ValueError):
            return None
        return str(version).replace("TLS1.", "TLSv1.") if version else None

    def who_am_i(self) -> str | None:
        """The identity the server bound us as (RFC 4532), or None when anonymous or it does not say."""
        conn = self._live()
        try:
            value = conn.whoami_s()
        except ldap.LDAPError as exc:
            error = self._fail(exc, "search")
            if error.kind in ("timeout", "connection_lost"):
                raise error from None
            return None
        return str(value) if value else None

    def root_dse(self) -> RootDse:
        """The server's root DSE, read once per session."""
        if self._root_dse is None:
            entry = self.read_entry("", ROOT_DSE_ATTRIBUTES)
            self._root_dse = RootDse.from_entry(entry or Entry(dn=""))
        return self._root_dse

    def _own_partition(self, uri: str) -> bool:
        """A continuation reference to a naming context of this same server (AD's DNS and configuration
        partitions under the domain root) holds no users: it is not a failed search."""
        target = normalize_dn(ref_target_dn(uri))
        if not target:
            return False
        try:
            contexts = self.root_dse().naming_contexts
        except DirectoryError:
            return False
        return target in {normalize_dn(context) for context in contexts}

    def read_entry(
        self, dn: str, attributes: Sequence[str], *, binary_attributes: Collection[str] = ()
    ) -> Entry | None:
        """One entry by DN, or None when it does not exist."""
        conn = self._live()
        try:
            msgid = conn.search_ext(
                dn, ldap.SCOPE_BASE, "(objectClass=*)", list(attributes) or [NO_ATTRIBUTES]
            )
            found: Entry | None = None
            while True:
                kind, data, _, _ = conn.result3(msgid, all=0, timeout=self.timeout_seconds)
                if kind == ldap.RES_SEARCH_RESULT:
                    return found
                for entry_dn, values in data:
                    if entry_dn is not None and found is None:
                        found = Entry.from_raw(entry_dn, values, binary_attributes)
        except ldap.NO_SUCH_OBJECT:
            return None
        except ldap.REFERRAL:
            raise DirectoryError(
                "referral",
                f"{dn} is held on another server: referrals are not followed",
                host=self.endpoint.url,
            ) from None
        except ldap.LDAPError as exc:
            raise self._fail(exc, "search", base=dn, search_filter="(objectClass=*)") from None

    def paged_search(
        self,
        base: str,
        search_filter: str,
        attributes: Sequence[str],
        *,
        page_size: int,
        scope: str = "subtree",
        size_limit: int = 0,
        binary_attributes: Collection[str] = (),
        show_deleted: bool = False,
    ) -> Iterator[Entry]:
        """Entries of a paged search, streamed as they arrive; a failure part-way raises DirectoryError after
        the entries so far. Active Directory's ranged values ("member;range=0-1499") are read to the end; an
        entry whose remaining values could not be read says so in Entry.incomplete."""
        conn = self._live()
        paging = SimplePagedResultsControl(True, size=max(1, page_size), cookie=b"")
        controls: list[Any] = [paging]
        if show_deleted:
            controls.append(LDAPControl(SHOW_DELETED_OID, True, None))
        requested = list(attributes) or [NO_ATTRIBUTES]
        yielded = 0
        unresolved: list[str] = []
        while True:
            ranged: list[Entry] = []
            msgid: int | None = None
            try:
                msgid = conn.search_ext(
                    base, _scope(scope), search_filter, requested, serverctrls=controls, sizelimit=size_limit
                )
                while True:
                    kind, data, _, response_controls = conn.result3(
                        msgid, all=0, timeout=self.timeout_seconds
                    )
                    if kind == ldap.RES_SEARCH_RESULT:
                        msgid = None
                        break
                    for entry_dn, values in data:
                        if entry_dn is None:  # a continuation reference
                            unresolved += [uri for uri in _texts(values) if not self._own_partition(uri)]
                            continue
                        entry = Entry.from_raw(entry_dn, values, binary_attributes)
                        if _has_ranges(values):
                            ranged.append(entry)  # completed after the page: one request at a time
                            continue
                        yield entry
                        yielded += 1
                        if size_limit and yielded >= size_limit:
                            return  # the caller asked for no more (the finally clause abandons the rest)
            except ldap.SIZELIMIT_EXCEEDED:
                msgid = None
                yield from (self._complete_ranges(entry, binary_attributes) for entry in ranged)
                if size_limit and yielded + len(ranged) >= size_limit:
                    return
                raise DirectoryError(
                    "size_limit",
                    f"The server stopped the search of {base} at its size limit after "
                    f"{yielded + len(ranged)} entries: allow paged searches for the bind user, or ask the "
                    "directory administrator to raise its limit",
                    host=self.endpoint.url,
                ) from None
            except ldap.REFERRAL as exc:
                msgid = None
                raise DirectoryError(
                    "referral",
                    f"{base} is held on another server ({_info(exc) or 'a referral'}): referrals are not "
                    "followed — use that server's host and base DN",
                    host=self.endpoint.url,
                ) from None
            except ldap.LDAPError as exc:
                msgid = None
                raise self._fail(exc, "search", base=base, search_filter=search_filter) from None
            finally:
                if msgid is not None and self._conn is not None and self._lost is None:
                    # The caller stopped reading part-way: tell the server to drop the rest.
                    with contextlib.suppress(ldap.LDAPError):
                        self._conn.abandon(msgid)
            for entry in ranged:
                yield self._complete_ranges(entry, binary_attributes)
                yielded += 1
            cookie = _page_cookie(response_controls)
            if not cookie:
                break
            paging.cookie = cookie
        if unresolved:
            shown = ", ".join(unresolved[:3]) + (
                f" and {len(unresolved) - 3} more" if len(unresolved) > 3 else ""
            )
            raise DirectoryError(
                "referral",
                f"Part of {base} is held on another server ({shown}): referrals are not followed, so the "
                "search is incomplete — point the base DN at the part this server holds, or use a Global "
                "Catalog",
                host=self.endpoint.url,
            )

    def _complete_ranges(self, entry: Entry, binary_attributes: Collection[str]) -> Entry:
        """Read the rest of every ranged attribute; on failure keep what was read and mark it incomplete."""
        attributes = dict(entry.attributes)
        incomplete = set(entry.incomplete)
        for name in [name for name in attributes if _RANGE.match(name)]:
            match = _RANGE.match(name)
            assert match is not None
            base_name, high = match.group("name"), match.group("high")
            values = list(attributes.pop(name))
            while high != "*":
                wanted = f"{base_name};range={int(high) + 1}-*"
                try:
                    more = self.fetch_range(entry.dn, wanted, binary_attributes)
                except DirectoryError as error:
                    if error.kind in ("timeout", "connection_lost"):
                        raise
                    more = None
                if more is None:
                    incomplete.add(base_name.lower())
                    break
                next_name, next_values = more
                next_match = _RANGE.match(next_name)
                values += next_values
                high = next_match.group("high") if next_match else "*"
            attributes[base_name] = values
        return Entry(dn=entry.dn, attributes=attributes, incomplete=frozenset(incomplete))

    def fetch_range(
        self, dn: str, wanted: str, binary_attributes: Collection[str]
    ) -> tuple[str, list[str | bytes]] | None:
        """The next slice of a ranged attribute ("member;range=1500-*"): (returned name, values), or None when
        the server returned none (the entry is gone, or it refuses)."""
        found = self.read_entry(dn, [wanted], binary_attributes=binary_attributes)
        if found is None:
            return None
        for name, values in found.attributes.items():
            if name.split(";", 1)[0].lower() == wanted.split(";", 1)[0].lower():
                return name, values
        return None

    def syncrepl_refresh(
        self,
        base: str,
        search_filter: str,
        attributes: Sequence[str],
        *,
        cookie: str | None,
        scope: str = "subtree",
        binary_attributes: Collection[str] = (),
    ) -> Iterator[SyncMessage]:
        """An RFC 4533 refreshOnly search: what changed since the cookie (everything, without one).

        Raises DirectoryError kind "search" with detail "refresh required" when the server cannot resume from
        the cookie: the caller starts again with a full read.
        """
        conn = self._live()
        request = SyncRequestControl(cookie=cookie, mode="refreshOnly")
        unresolved: list[str] = []
        try:
            msgid = conn.search_ext(
                base, _scope(scope), search_filter, list(attributes) or [NO_ATTRIBUTES], serverctrls=[request]
            )
            while True:
                kind, data, _, controls, _, _ = conn.result4(
                    msgid, all=0, add_ctrls=1, add_intermediates=1, timeout=self.timeout_seconds
                )
                if kind == ldap.RES_SEARCH_REFERENCE:
                    for _, values, _ in data:
                        unresolved += [uri for uri in _texts(values) if not self._own_partition(uri)]
                elif kind == ldap.RES_SEARCH_ENTRY:
                    for entry_dn, values, entry_controls in data:
                        state = _control(entry_controls, "SyncStateControl")
                        if state is None:
                            continue
                        if state.state == "delete":
                            yield SyncMessage("delete", uuids=[state.entryUUID])
                        elif state.state == "present":
                            yield SyncMessage("present", uuids=[state.entryUUID])
                        else:
                            entry = Entry.from_raw(entry_dn, values, binary_attributes)
                            yield SyncMessage("entry", entry=entry, uuids=[state.entryUUID])
                elif kind == ldap.RES_INTERMEDIATE:
                    for name, value, _ in data:
                        if name != SyncInfoMessage.responseName:
                            continue
                        info = SyncInfoMessage(value)
                        if info.syncIdSet is not None:
                            ids = list(info.syncIdSet.get("syncUUIDs") or [])
                            deletes = bool(info.syncIdSet.get("refreshDeletes"))
                            yield SyncMessage("delete" if deletes else "present", uuids=ids)
                elif kind == ldap.RES_SEARCH_RESULT:
                    if unresolved:
                        raise DirectoryError(
                            "referral",
                            f"Part of {base} is held on another server ({', '.join(unresolved[:3])}): "
                            "referrals are not followed, so the changes are incomplete",
                            host=self.endpoint.url,
                        )
                    done = _control(controls, "SyncDoneControl")
                    yield SyncMessage(
                        "done",
                        cookie=done.cookie if done is not None else None,
                        refresh_deletes=bool(done.refreshDeletes) if done is not None else True,
                    )
                    return
        except ldap.LDAPError as exc:
            if _result_code(exc) == SYNC_REFRESH_REQUIRED:
                raise DirectoryError(
                    "search",
                    f"The server at {self.endpoint.where} cannot resume changes from the stored position",
                    host=self.endpoint.url,
                    detail="refresh required",
                ) from None
            raise self._fail(exc, "search", base=base, search_filter=search_filter) from None


def _scope(scope: str) -> int:
    try:
        return SCOPES[scope.lower()]
    except KeyError:
        raise DirectoryError(
            "config", f"Unknown search scope {scope!r}: use base, onelevel or subtree"
        ) from None


def _texts(values: Any) -> list[str]:
    return [
        value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value) for value in values or []
    ]


def _has_ranges(values: dict[str, Any]) -> bool:
    return any(";range=" in name.lower() for name in values)


def _page_cookie(controls: Sequence[Any]) -> bytes:
    for control in controls or ():
        if control.controlType == SimplePagedResultsControl.controlType:
            return bytes(control.cookie or b"")
    return b""


def _control(controls: Sequence[Any], class_name: str) -> Any:
    return next((control for control in controls or () if type(control).__name__ == class_name), None)


def _result_code(exc: BaseException) -> int:
    details = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
    try:
        return int(details.get("result", -1))
    except (TypeError, ValueError):
        return -1


def _info(exc: BaseException) -> str:
    details = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
    return str(details.get("info") or "").strip()


def translate_ldap_error(
    exc: BaseException,
    stage: Stage,
    *,
    endpoint: Endpoint,
    timeout: float,
    secrets: tuple[str, ...] = (),
    base: str = "",
    search_filter: str = "",
) -> DirectoryError:
    """A python-ldap exception as our DirectoryError, worded as the ldap3 path words it."""
    if isinstance(exc, DirectoryError):
        return exc
    where, host = endpoint.where, endpoint.url
    info = _info(exc)
    details = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
    detail = scrub(f"{type(exc).__name__}: {details.get('desc', exc)} {info}".strip(), *secrets)

    def err(kind: ErrorKind, message: str) -> DirectoryError:
        return DirectoryError(kind, scrub(message, *secrets), host=host, detail=detail)

    during = {"connect": "while connecting", "starttls": "during StartTLS", "bind": "during the bind"}.get(
        stage, "during a search"
    )
    if isinstance(exc, ldap.TIMEOUT):
        return err("timeout", f"No answer from {where} within {seconds_text(timeout)} ({during})")
    lowered = info.lower()
    if isinstance(exc, (ldap.SERVER_DOWN, ldap.CONNECT_ERROR)):
        if any(word in lowered for word in _CERTIFICATE_WORDS):
            return certificate_error(scrub(info, *secrets), host=host, detail=detail)
        if stage == "starttls":
            return err("tls", f"StartTLS with {where} failed: {info or 'the server closed the connection'}")
        if "tls" in lowered or "ssl" in lowered:
            return err(
                "tls",
                f"The TLS handshake with {where} failed: {info or 'the server closed the connection'} — "
                "check that the port speaks LDAPS (usually 636), or use ldap:// with StartTLS",
            )
        if stage == "search":
            return err("connection_lost", f"The connection to {where} was lost {during}: {info or exc}")
        return err("tcp", f"Cannot connect to {where}: {info or details.get('desc') or exc}")
    if isinstance(exc, ldap.FILTER_ERROR):
        return err("config", f"The filter {search_filter} is not a valid LDAP filter")
    if isinstance(exc, ldap.INVALID_DN_SYNTAX) and stage == "search":
        return err("config", f"{base or 'The DN'} is not a valid DN: check the base DN")
    code = _result_code(exc)
    if code >= 0:
        name = result_name(code, str(details.get("desc") or type(exc).__name__))
        return result_error(code, name, info, stage, err, base=base, search_filter=search_filter, where=where)
    return err(
        "search" if stage == "search" else "bind", f"The directory at {where} failed {during}: {detail}"
    )


def _probe_tcp(endpoint: Endpoint, timeout: float) -> None:
    """A plain TCP connect first: libldap reports a refused or silent port only as "Can't contact". Over
    LDAPS, the TLS handshake too: libldap waits for it with no timeout at all (its non-blocking TLS is not
    built in), so a server that accepts connections and never answers would hold the run for good."""
    try:
        infos = socket.getaddrinfo(endpoint.host, endpoint.port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise DirectoryError(
            "dns", f"Cannot resolve {endpoint.host}: check the host name", host=endpoint.url, detail=str(exc)
        ) from None
    family, kind, proto, _, address = infos[0]
    try:
        with socket.socket(family, kind, proto) as sock:
            sock.settimeout(timeout)
            sock.connect(address)
            if endpoint.use_ssl:
                _probe_handshake(sock, endpoint, timeout)
    except TimeoutError:
        raise DirectoryError(
            "timeout", f"No answer from {endpoint.where} within {seconds_text(timeout)} (while connecting)",
            host=endpoint.url,
        ) from None  # fmt: skip
    except ConnectionRefusedError:
        raise DirectoryError(
            "tcp", f"Nothing listens on {endpoint.where} (connection refused)", host=endpoint.url
        ) from None
    except OSError as exc:
        raise DirectoryError(
            "tcp", f"Cannot connect to {endpoint.where}: {exc.strerror or exc}", host=endpoint.url
        ) from None


def _probe_handshake(sock: socket.socket, endpoint: Endpoint, timeout: float) -> None:
    """Whether the server answers a TLS handshake at all (what it presents is libldap's to judge, after)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with context.wrap_socket(sock, server_hostname=endpoint.host):
            pass
    except TimeoutError:
        raise DirectoryError(
            "timeout",
            f"No answer from {endpoint.where} within {seconds_text(timeout)} (during the TLS handshake)",
            host=endpoint.url,
        ) from None
    except (ssl.SSLError, OSError):
        pass  # it answered; libldap's own handshake says what is wrong


def _ca_file(options: SessionOptions) -> str | None:
    """A private file holding the pasted CA certificates (libldap reads CAs from files only)."""
    if not options.ca_bundle_pem.strip():
        return None
    try:
        ssl.create_default_context(cadata=options.ca_bundle_pem)
    except (ssl.SSLError, ValueError) as exc:
        raise DirectoryError(
            "config",
            "The Trusted CA certificates field does not hold a valid PEM certificate: paste the CA "
            "certificate(s) from -----BEGIN CERTIFICATE----- to -----END CERTIFICATE-----",
            detail=str(exc),
        ) from None
    handle, path = tempfile.mkstemp(prefix="directory-ca-", suffix=".pem")
    with os.fdopen(handle, "w") as output:
        output.write(options.ca_bundle_pem)
    return path


def _system_ca_file() -> str | None:
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile, "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and os.path.exists(candidate):
            return candidate
    return None


def connect_endpoint(endpoint: Endpoint, options: SessionOptions) -> tuple[Any, str | None]:
    """A python-ldap connection to one endpoint, StartTLS done when asked, not bound yet; and the temporary CA
    file it reads (the caller removes it). Binding as the bind user or as a mail user is the caller's, waiting
    at most options.open_timeout_seconds for the answer."""
    opening = options.open_timeout_seconds
    _probe_tcp(endpoint, opening)
    ca_file = _ca_file(options)
    conn = ldap.initialize(endpoint.url)
    try:
        conn.set_option(ldap.OPT_PROTOCOL_VERSION, 3)
        conn.set_option(ldap.OPT_REFERRALS, 0)
        conn.set_option(ldap.OPT_NETWORK_TIMEOUT, opening)
        # Synchronous calls without a timeout of their own (StartTLS, the LDAPS handshake's bind) wait as long
        # as a bind; the search timeout applies once the connection stands.
        conn.set_option(ldap.OPT_TIMEOUT, opening)
        if endpoint.use_ssl or options.use_starttls:
            conn.set_option(
                ldap.OPT_X_TLS_REQUIRE_CERT,
                ldap.OPT_X_TLS_DEMAND if options.verify_certificate else ldap.OPT_X_TLS_NEVER,
            )
            trusted = ca_file or _system_ca_file()
            if trusted:
                conn.set_option(ldap.OPT_X_TLS_CACERTFILE, trusted)
            conn.set_option(ldap.OPT_X_TLS_PROTOCOL_MIN, ldap.OPT_X_TLS_PROTOCOL_TLS1_2)
            conn.set_option(ldap.OPT_X_TLS_NEWCTX, 0)  # the options above apply only to a new context
        if options.use_starttls and not endpoint.use_ssl:
            conn.start_tls_s()
        elif endpoint.use_ssl:
            _handshake(conn)
        conn.set_option(ldap.OPT_TIMEOUT, options.timeout_seconds)
    except ldap.LDAPError as exc:
        _discard(conn, ca_file)
        stage: Stage = "starttls" if options.use_starttls and not endpoint.use_ssl else "connect"
        error = translate_ldap_error(exc, stage, endpoint=endpoint, timeout=opening)
        if error.kind in ("tcp", "tls", "connection_lost") and (endpoint.use_ssl or options.use_starttls):
            raise _tls_diagnosis(endpoint, options, error) from None
        raise error from None
    except BaseException:
        _discard(conn, ca_file)
        raise
    return conn, ca_file


def _handshake(conn: Any) -> None:
    """libldap connects, and shakes hands over LDAPS, only at the first operation: an anonymous bind makes
    that happen here, so that a broken TLS setup is a failure to connect (the backup host is tried), not of a
    bind."""
    try:
        conn.simple_bind_s("", "")
    except (ldap.SERVER_DOWN, ldap.CONNECT_ERROR, ldap.TIMEOUT):
        raise
    except ldap.LDAPError:
        pass  # the server answered (anonymous binds may be refused): the connection stands


def _discard(conn: Any, ca_file: str | None) -> None:
    with contextlib.suppress(ldap.LDAPError):
        conn.unbind_s()
    if ca_file:
        with contextlib.suppress(OSError):
            os.unlink(ca_file)


def open_bulk_endpoint(endpoint: Endpoint, options: SessionOptions) -> BulkSession:
    """Connect to one endpoint with python-ldap, StartTLS when asked, bind once."""
    if options.bind_user and not options.bind_password:
        # libldap would send an "unauthenticated" bind (a DN without a password), which binds as nobody.
        raise DirectoryError("config", "No bind password is set: enter the password of the bind user")
    conn, ca_file = connect_endpoint(endpoint, options)
    session = BulkSession(
        conn, endpoint, timeout_seconds=options.timeout_seconds, secret=options.bind_password, ca_file=ca_file
    )
    try:
        refuse_plain_bind(endpoint, options, password=options.bind_password if options.bind_user else "")
        if options.bind_user:
            msgid = conn.simple_bind(options.bind_user, options.bind_password)
        else:
            msgid = conn.simple_bind("", "")
        conn.result3(msgid, all=1, timeout=options.open_timeout_seconds)
    except ldap.LDAPError as exc:
        session.close()
        error = translate_ldap_error(
            exc,
            "bind",
            endpoint=endpoint,
            timeout=options.open_timeout_seconds,
            secrets=(options.bind_password,),
        )
        if error.kind in ("tcp", "tls", "connection_lost") and (endpoint.use_ssl or options.use_starttls):
            raise _tls_diagnosis(endpoint, options, error) from None
        raise error from None
    except BaseException:
        session.close()
        raise
    return session


def _tls_diagnosis(endpoint: Endpoint, options: SessionOptions, error: DirectoryError) -> DirectoryError:
    """libldap (GnuTLS) reports a failed handshake as "(unknown error code)": the console's reader repeats the
    handshake to say why (an untrusted certificate, a name it lacks, a port that does not speak TLS)."""
    try:
        with open_endpoint(endpoint, options):
            pass
    except DirectoryError as precise:
        return precise
    return error


def open_bulk_session(options: SessionOptions) -> BulkSession:
    """A bound session on the first endpoint that works (the primary host, then the backup)."""
    return first_working(options, open_bulk_endpoint)
