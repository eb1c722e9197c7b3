"""Sessions with a directory server: connect, TLS, bind once, then search; primary host, then backup."""

from __future__ import annotations

import contextlib
import logging
import math
import socket
import ssl
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar

from django.conf import settings as django_settings
from django.core.exceptions import ValidationError
from ldap3 import ANONYMOUS, AUTO_BIND_NONE, NONE, SIMPLE, SYNC, Connection, Server, Tls
from ldap3.core.exceptions import LDAPException

from directory_sync.ldap import search as _search
from directory_sync.ldap.entries import Entry
from directory_sync.ldap.errors import DirectoryError, Stage, translate
from directory_sync.ldap.rootdse import ROOT_DSE_ATTRIBUTES, RootDse
from directory_sync.secrets import SecretUnreadable

if TYPE_CHECKING:
    from directory_sync.models import DirectorySettings

logger = logging.getLogger(__name__)

LDAP_PORT: Final = 389
LDAPS_PORT: Final = 636
DEFAULT_TIMEOUT_SECONDS: Final = 10.0
# A server that accepted the connection answers a bind in milliseconds; one that does not is given up on
# sooner than a search would be: a directory that never answers holds a worker seconds, not the whole timeout.
DEFAULT_BIND_TIMEOUT_SECONDS: Final = 5.0

# Active Directory: return deleted objects (tombstones) as well; how removals are found between full reads.
SHOW_DELETED_OID = "1.2.840.113556.1.4.417"


@dataclass(frozen=True)
class Endpoint:
    """One server address: host (no brackets), port, LDAPS or not."""

    host: str
    port: int
    use_ssl: bool

    @property
    def url(self) -> str:
        """ldap[s]://host:port (IPv6 in brackets)."""
        return f"{'ldaps' if self.use_ssl else 'ldap'}://{self.where}"

    @property
    def where(self) -> str:
        """host:port as shown in messages."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class SessionOptions:
    """Everything needed to open a session; the password is left out of repr()."""

    endpoints: tuple[Endpoint, ...]
    bind_user: str
    bind_password: str = field(repr=False)
    use_starttls: bool = False
    verify_certificate: bool = True
    ca_bundle_pem: str = ""
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    # ALLOWPLAINBIND: a password may cross the network in clear (ldap:// without StartTLS). Off by default.
    allow_plain_bind: bool = False
    bind_timeout_seconds: float = DEFAULT_BIND_TIMEOUT_SECONDS

    @property
    def open_timeout_seconds(self) -> float:
        """How long connecting, TLS and the bind may take: the bind timeout, never more than the timeout."""
        return min(self.timeout_seconds, self.bind_timeout_seconds)


def endpoint_from_host(value: str, *, role: str = "host") -> Endpoint:
    """An Endpoint from a Hostname field (host, host:port, ldap[s]://host[:port]); DirectoryError "config"."""
    # Imported here: directory_sync.validation imports directory_sync.ldap.filters, i.e. this package.
    from directory_sync.validation import parse_host

    try:
        host, port, use_ssl = parse_host(value)
    except ValidationError as exc:
        raise DirectoryError(
            "config", f"The {role} “{value.strip()}” is not valid: {' '.join(exc.messages)}"
        ) from None
    return Endpoint(host=host, port=port or (LDAPS_PORT if use_ssl else LDAP_PORT), use_ssl=use_ssl)


def options_from_settings(settings: DirectorySettings) -> SessionOptions:
    """SessionOptions of a domain's settings: primary host, then the backup host when set."""
    if not settings.host.strip():
        raise DirectoryError(
            "config", "No host is configured: enter the directory server's host name or ldap[s]:// address"
        )
    endpoints = [endpoint_from_host(settings.host, role="host")]
    if settings.backup_host.strip():
        endpoints.append(endpoint_from_host(settings.backup_host, role="backup host"))
    try:
        password = settings.get_bind_password() if settings.has_bind_password else ""
    except SecretUnreadable:
        raise DirectoryError(
            "config", "The stored bind password cannot be decrypted with the configured keys: enter it again"
        ) from None
    return SessionOptions(
        endpoints=tuple(endpoints),
        bind_user=settings.bind_user.strip(),
        bind_password=password,
        use_starttls=settings.use_starttls,
        verify_certificate=settings.verify_certificate,
        ca_bundle_pem=settings.ca_bundle or "",
        timeout_seconds=float(settings.timeout_seconds or DEFAULT_TIMEOUT_SECONDS),
        allow_plain_bind=settings.allow_plain_bind,
        bind_timeout_seconds=float(django_settings.DIRECTORY_BIND_TIMEOUT_SECONDS),
    )


ENCRYPTION_FIX = "use ldaps:// (usually port 636) or turn on “Use StartTLS on ldap://”"
PLAIN_BIND_FIX = (
    f"{ENCRYPTION_FIX}; on a network you trust, tick “Allow unencrypted bind” (ALLOWPLAINBIND) instead"
)


def refuse_plain_bind(endpoint: Endpoint, options: SessionOptions, *, password: str) -> None:
    """Refuse to send a password over an unencrypted connection unless the domain allows it.

    Called just before each simple bind with a password (the bind user's or a mail user's), after the
    connection and StartTLS: an unreachable server is reported as such first, and nothing secret has left yet.
    """
    if password and not endpoint.use_ssl and not options.use_starttls and not options.allow_plain_bind:
        raise DirectoryError(
            "config",
            f"The password would cross the network unencrypted to {endpoint.url}: {PLAIN_BIND_FIX}",
            host=endpoint.url,
        )


def make_ssl_context(verify: bool, ca_bundle_pem: str = "") -> ssl.SSLContext:
    """The TLS context of every connection: TLS >= 1.2; trusts the pasted CAs, else the system's."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if ca_bundle_pem.strip():
        try:
            context.load_verify_locations(cadata=ca_bundle_pem)
        except (ssl.SSLError, ValueError, TypeError) as exc:
            raise DirectoryError(
                "config",
                "The Trusted CA certificates field does not hold a valid PEM certificate: paste the CA "
                "certificate(s) from -----BEGIN CERTIFICATE----- to -----END CERTIFICATE-----",
                detail=str(exc),
            ) from None
    else:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    return context


class _Tls(Tls):
    """ldap3's Tls with our own SSLContext and host name check, keeping the original ssl error."""

    def __init__(self, context: ssl.SSLContext, server_hostname: str) -> None:
        super().__init__(validate=context.verify_mode)
        self.context = context
        self.server_hostname = server_hostname
        self.failure: BaseException | None = None

    def wrap_socket(self, connection: Any, do_handshake: bool = False) -> None:
        # ldap3 re-creates the ssl exception from its text, which drops verify_message; keep the original.
        try:
            connection.socket = self.context.wrap_socket(
                connection.socket,
                server_side=False,
                do_handshake_on_connect=do_handshake,
                server_hostname=self.server_hostname,
            )
        except (ssl.SSLError, OSError) as exc:
            self.failure = exc
            raise


def _new_connection(endpoint: Endpoint, options: SessionOptions, *, verify: bool) -> tuple[Any, _Tls | None]:
    """An unopened ldap3 Connection (no password in it) and its Tls."""
    tls = None
    if endpoint.use_ssl or options.use_starttls:
        tls = _Tls(make_ssl_context(verify, options.ca_bundle_pem), endpoint.host)
    server = Server(
        endpoint.host,
        port=endpoint.port,
        use_ssl=endpoint.use_ssl,
        tls=tls,
        get_info=NONE,
        connect_timeout=options.open_timeout_seconds,
    )
    conn = Connection(
        server,
        user=options.bind_user or None,
        password=None,
        authentication=SIMPLE if options.bind_user else ANONYMOUS,
        auto_bind=AUTO_BIND_NONE,
        client_strategy=SYNC,
        # Until the bind is done (open_endpoint then waits the search timeout). ldap3 packs this into
        # SO_RCVTIMEO with struct "LL": a float raises struct.error.
        receive_timeout=_whole_seconds(options.open_timeout_seconds),
        auto_referrals=False,
        raise_exceptions=True,
        read_only=True,
        return_empty_attributes=False,
    )
    return conn, tls


def _whole_seconds(seconds: float) -> int:
    return max(1, math.ceil(seconds))


def _close_quietly(conn: Any) -> None:
    with contextlib.suppress(Exception):  # the connection is being thrown away
        conn.unbind()
    # ldap3 leaves the socket open when the TLS handshake or the unbind itself fails.
    sock = getattr(conn, "socket", None)
    if sock is not None:
        with contextlib.suppress(Exception):
            sock.close()


def _resolve(endpoint: Endpoint) -> None:
    try:
        socket.getaddrinfo(endpoint.host, endpoint.port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise DirectoryError(
            "dns", f"Cannot resolve {endpoint.host}: check the host name", host=endpoint.url, detail=str(exc)
        ) from None


def open_endpoint(
    endpoint: Endpoint, options: SessionOptions, *, timings: dict[str, float] | None = None
) -> DirectorySession:
    """Connect to one endpoint, StartTLS when asked, bind once; timings (ms): connect, starttls, bind."""
    if timings is None:
        timings = {}
    _resolve(endpoint)
    conn, tls = _new_connection(endpoint, options, verify=options.verify_certificate)

    def fail(exc: BaseException, stage: Stage) -> DirectoryError:
        return translate(
            exc,
            stage,
            where=endpoint.where,
            host=endpoint.url,
            timeout=options.open_timeout_seconds,
            secrets=(options.bind_password,),
            tls_failure=tls.failure if tls else None,
        )

    stage: Stage = "connect"
    try:
        started = time.perf_counter()
        conn.open(read_server_info=False)
        timings["connect"] = (time.perf_counter() - started) * 1000
        if options.use_starttls and not endpoint.use_ssl:
            stage = "starttls"
            started = time.perf_counter()
            conn.start_tls(read_server_info=False)
            timings["starttls"] = (time.perf_counter() - started) * 1000
        refuse_plain_bind(endpoint, options, password=options.bind_password if options.bind_user else "")
        stage = "bind"
        started = time.perf_counter()
        # The password lives in the ldap3 objects only for the bind: Connection.__repr__ prints it, and
        # conn.request keeps the bind request (with the password) until the next operation.
        conn.password = options.bind_password if options.bind_user else None
        try:
            conn.bind(read_server_info=False)
        finally:
            conn.password = None
            conn.request = None
        timings["bind"] = (time.perf_counter() - started) * 1000
        # ldap3 sets the receive timeout only when it opens the socket: from here on, searches wait longer.
        conn.receive_timeout = _whole_seconds(options.timeout_seconds)
        conn.socket.settimeout(conn.receive_timeout)
    except (LDAPException, OSError) as exc:
        _close_quietly(conn)
        raise fail(exc, stage) from None
    return DirectorySession(
        conn, endpoint, timeout_seconds=options.timeout_seconds, secret=options.bind_password
    )


class _Failover(Protocol):
    endpoint: Endpoint
    skipped: tuple[DirectoryError, ...]


SessionT = TypeVar("SessionT", bound=_Failover)


def first_working(
    options: SessionOptions, opener: Callable[[Endpoint, SessionOptions], SessionT]
) -> SessionT:
    """A bound session on the first endpoint that works (the primary host, then the backup); else the
    primary's error, naming the backup's. Both readers open their sessions through here."""
    if not options.endpoints:
        raise DirectoryError("config", "No host is configured: enter the directory server's host name")
    failures: list[DirectoryError] = []
    for endpoint in options.endpoints:
        try:
            session = opener(endpoint, options)
        except DirectoryError as exc:
            failures.append(exc)
            continue
        if failures:
            logger.warning(
                "Directory host %s failed (%s); using %s", failures[0].host, failures[0].message, endpoint.url
            )
        session.skipped = tuple(failures)
        return session
    primary = failures[0]
    if len(failures) == 1:
        raise primary
    others = "; ".join(f"{f.host}: {f.message}" for f in failures[1:])
    raise DirectoryError(
        primary.kind,
        f"{primary.message} (the backup host failed too — {others})",
        host=primary.host,
        detail=primary.detail,
    )


def open_session(options: SessionOptions) -> DirectorySession:
    """A bound ldap3 session on the first endpoint that works."""
    return first_working(options, open_endpoint)


def fetch_peer_certificate(endpoint: Endpoint, options: SessionOptions) -> bytes | None:
    """The certificate the server presents (DER), fetched WITHOUT verification: only to show who it is."""
    try:
        _resolve(endpoint)
        conn, _ = _new_connection(endpoint, options, verify=False)
    except DirectoryError:
        return None
    try:
        conn.open(read_server_info=False)
        if not endpoint.use_ssl:
            conn.start_tls(read_server_info=False)
        sock = conn.socket
        return sock.getpeercert(binary_form=True) if isinstance(sock, ssl.SSLSocket) else None
    except (LDAPException, OSError):
        return None
    finally:
        _close_quietly(conn)


class DirectorySession:
    """A bound connection to one directory server; use as a context manager."""

    def __init__(self, conn: Any, endpoint: Endpoint, *, timeout_seconds: float, secret: str = "") -> None:
        self._conn = conn
        self.endpoint = endpoint
        self.timeout_seconds = timeout_seconds
        self._secrets = (secret,) if secret else ()
        self._root_dse: RootDse | None = None
        self._lost: DirectoryError | None = None
        self.skipped: tuple[DirectoryError, ...] = ()

    def __repr__(self) -> str:
        return f"<DirectorySession {self.endpoint.url}{' closed' if self.closed else ''}>"

    def __enter__(self) -> DirectorySession:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        """Whether the session was closed (or its connection lost)."""
        return self._conn is None or bool(self._conn.closed)

    def close(self) -> None:
        """Unbind and drop the connection (idempotent)."""
        if self._conn is not None:
            _close_quietly(self._conn)
            self._conn = None

    def _fail(
        self, exc: BaseException, stage: Stage, *, base: str = "", search_filter: str = ""
    ) -> DirectoryError:
        error = translate(
            exc,
            stage,
            where=self.endpoint.where,
            host=self.endpoint.url,
            timeout=self.timeout_seconds,
            secrets=self._secrets,
            base=base,
            search_filter=search_filter,
        )
        if error.kind in ("timeout", "connection_lost"):
            self._lost = error
        return error

    def _live(self) -> Any:
        """The ldap3 connection, or DirectoryError when it is closed or was lost."""
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
        sock = getattr(self._conn, "socket", None)
        return sock.version() if isinstance(sock, ssl.SSLSocket) else None

    def peer_certificate_der(self) -> bytes | None:
        """The server certificate (DER) of an encrypted connection."""
        sock = getattr(self._conn, "socket", None)
        return sock.getpeercert(binary_form=True) if isinstance(sock, ssl.SSLSocket) else None

    def who_am_i(self) -> str | None:
        """The identity the server bound us as (RFC 4532), or None when it does not say."""
        conn = self._live()
        try:
            value = conn.extend.standard.who_am_i()
        except LDAPException as exc:
            error = self._fail(exc, "search")
            if error.kind in ("timeout", "connection_lost"):
                raise error from None
            return None
        return str(value) if value else None

    def root_dse(self) -> RootDse:
        """The server's root DSE (read once per session, operational attributes named explicitly)."""
        if self._root_dse is None:
            entry = _search.read_entry(
                self._live(), self._fail, "", ROOT_DSE_ATTRIBUTES, host=self.endpoint.url
            )
            self._root_dse = RootDse.from_entry(entry or Entry(dn=""))
        return self._root_dse

    def _own_partition(self, uri: str) -> bool:
        """Whether a continuation reference points at a naming context this same server lists.

        AD answers every subtree search from the domain root with references to its DomainDnsZones,
        ForestDnsZones and Configuration partitions: they hold no users, and are not a failed search.
        """
        target = _search.normalize_dn(_search.ref_target_dn(uri))
        if not target:
            return False
        try:
            contexts = self.root_dse().naming_contexts
        except DirectoryError:
            return False
        return target in {_search.normalize_dn(c) for c in contexts}

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
        """Entries of a paged search; a failure part-way raises DirectoryError after the entries so far.

        show_deleted asks Active Directory for tombstones too (LDAP_SERVER_SHOW_DELETED_OID).
        """
        return _search.paged_search(
            self._live(),
            self._fail,
            base,
            search_filter,
            attributes,
            page_size=page_size,
            scope=scope,
            size_limit=size_limit,
            binary_attributes=binary_attributes,
            ignore_reference=self._own_partition,
            host=self.endpoint.url,
            controls=[(SHOW_DELETED_OID, True, None)] if show_deleted else (),
        )

    def count(
        self, base: str, search_filter: str, *, time_budget_s: float, page_size: int = 1000
    ) -> tuple[int, bool]:
        """(entries under base matching the filter, complete); complete is False past the time budget."""
        return _search.count(
            self._live(),
            self._fail,
            base,
            search_filter,
            time_budget_s=time_budget_s,
            page_size=page_size,
            ignore_reference=self._own_partition,
            host=self.endpoint.url,
        )

    def read_entry(
        self, dn: str, attributes: Sequence[str], *, binary_attributes: Collection[str] = ()
    ) -> Entry | None:
        """One entry by DN, or None when it does not exist."""
        return _search.read_entry(
            self._live(),
            self._fail,
            dn,
            attributes,
            binary_attributes=binary_attributes,
            host=self.endpoint.url,
        )
