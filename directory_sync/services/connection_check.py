"""Test connection: every step from name lookup to a sample of users, as plain JSON-ready data."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from cryptography import x509

from directory_sync.auth.kerberos import check_service
from directory_sync.ldap import (
    ENCRYPTION_FIX,
    DirectoryError,
    DirectorySession,
    Endpoint,
    Entry,
    SessionOptions,
    Value,
    fetch_peer_certificate,
    make_ssl_context,
    open_endpoint,
    options_from_settings,
)
from directory_sync.ldap.filters import FilterError, normalize_filter
from directory_sync.models import DirectorySettings
from directory_sync.rules.secret_attributes import is_secret_attribute
from directory_sync.sync.config import ACCOUNT_ATTRIBUTES, build_config

SAMPLE_SIZE: Final = 20
IDENTITY_PROBE_SIZE: Final = 5
MAX_VALUE_CHARS: Final = 500
COUNT_BUDGET_S: Final = 6.0
CERTIFICATE_WARNING_DAYS: Final = 30
ALL_OBJECTS: Final = "(objectClass=*)"
HIDDEN: Final = "(hidden)"


def sample_attributes(settings: DirectorySettings) -> list[str]:
    """What the sample asks for: the attributes the sync's mapping reads (accounts' and groups', the vCard
    map's, objectClass, the id and the change stamp). Never `*`: an administrator's bind would also return
    every secret the entries hold, for helpdesk to see and the check's record to keep."""
    try:
        config = build_config(settings)
    except ValueError:  # an invalid filter or vCard map: the sync refuses to run, the check says why
        names = [
            *ACCOUNT_ATTRIBUTES,
            settings.username_attribute,
            settings.effective_guid_attribute,
            settings.effective_change_stamp_attribute,
        ]
    else:
        names = [*config.account_attributes(), *config.group_attributes()]
    return list({name.lower(): name for name in names if name}.values())


@dataclass
class _Step:
    name: str
    ok: bool = False
    ms: float = 0.0
    detail: str = ""
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "ms": round(self.ms, 1),
            "detail": self.detail,
            "error": self.error,
        }


def _now() -> dt.datetime:
    return dt.datetime.now(tz=dt.UTC)


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def describe_certificate(der: bytes, *, trusted: bool) -> dict[str, Any] | None:
    """Subject, issuer, expiry and names of a DER certificate (None when it cannot be parsed)."""
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        return None
    not_after = cert.not_valid_after_utc
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        san = [str(n) for n in names.get_values_for_type(x509.DNSName)]
        san += [str(ip) for ip in names.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        san = []
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "not_after": not_after.isoformat(),
        "days_left": (not_after - _now()).days,
        "san": san,
        "sha256": hashlib.sha256(der).hexdigest(),
        "trusted": trusted,
    }


def _lookup(host: str, port: int, timeout: float) -> list[tuple[Any, ...]]:
    """getaddrinfo with a time limit (the resolver's own can be much longer)."""
    box: dict[str, Any] = {}

    def resolve() -> None:
        try:
            box["addresses"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            box["error"] = exc

    worker = threading.Thread(target=resolve, name="directory-check-dns", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise TimeoutError(f"no answer within {timeout:g} s")
    if "error" in box:
        raise box["error"]
    return list(box["addresses"])


def _where(address: tuple[Any, ...]) -> str:
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


def _tcp_connect(addresses: list[tuple[Any, ...]], timeout: float) -> tuple[socket.socket, str]:
    """Connect to the first address that answers, all attempts together within timeout."""
    deadline = time.monotonic() + timeout
    last: OSError | None = None
    last_where = ""
    for family, kind, proto, _, sockaddr in addresses:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        sock = socket.socket(family, kind, proto)
        sock.settimeout(remaining)
        try:
            sock.connect(sockaddr)
        except OSError as exc:
            sock.close()
            last, last_where = exc, _where(sockaddr)
            continue
        return sock, _where(sockaddr)
    if last is None:
        last = TimeoutError("timed out")
    raise _TcpFailure(last, last_where)


class _TcpFailure(Exception):
    def __init__(self, cause: OSError, where: str) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.where = where


def _tcp_message(failure: _TcpFailure, endpoint: Endpoint, timeout: float) -> str:
    where = failure.where or endpoint.where
    if isinstance(failure.cause, ConnectionRefusedError):
        return f"Nothing listens on {where} (connection refused)"
    if isinstance(failure.cause, TimeoutError):
        return f"No answer from {where} within {timeout:g} s"
    return f"Cannot connect to {where}: {failure.cause.strerror or failure.cause}"


def _check_host(
    role: str, endpoint: Endpoint, options: SessionOptions, warnings: list[str]
) -> tuple[dict[str, Any], DirectorySession | None]:
    """Name lookup, TCP, TLS, StartTLS and bind for one host; the bound session when all worked."""
    timeout = options.timeout_seconds
    steps: list[_Step] = []
    host: dict[str, Any] = {"role": role, "url": endpoint.url, "ok": False, "steps": [], "certificate": None}

    def done(session: DirectorySession | None = None) -> tuple[dict[str, Any], DirectorySession | None]:
        host["steps"] = [step.as_dict() for step in steps]
        host["ok"] = bool(steps) and all(step.ok for step in steps) and session is not None
        return host, session

    step = _Step("Name lookup")
    steps.append(step)
    started = time.perf_counter()
    try:
        addresses = _lookup(endpoint.host, endpoint.port, timeout)
    except TimeoutError:
        step.ms = _elapsed_ms(started)
        step.error = f"Looking up {endpoint.host} took longer than {timeout:g} s: check the DNS servers"
        return done()
    except (OSError, UnicodeError):
        step.ms = _elapsed_ms(started)
        step.error = f"Cannot resolve {endpoint.host}: check the host name"
        return done()
    step.ms = _elapsed_ms(started)
    step.ok = True
    step.detail = ", ".join(dict.fromkeys(str(a[4][0]) for a in addresses))

    step = _Step("TCP connection")
    steps.append(step)
    started = time.perf_counter()
    try:
        sock, where = _tcp_connect(addresses, timeout)
    except _TcpFailure as failure:
        step.ms = _elapsed_ms(started)
        step.error = _tcp_message(failure, endpoint, timeout)
        return done()
    step.ms = _elapsed_ms(started)
    step.ok = True
    step.detail = f"Connected to {where}"

    with sock:
        if endpoint.use_ssl:
            step = _Step("TLS")
            steps.append(step)
            if not _tls_step(step, sock, endpoint, options, host):
                return done()

    timings: dict[str, float] = {}
    started = time.perf_counter()
    try:
        session = open_endpoint(endpoint, options, timings=timings)
    except DirectoryError as exc:
        failed_ms = _elapsed_ms(started) - sum(timings.values())
        starttls = options.use_starttls and not endpoint.use_ssl
        if starttls and "starttls" in timings:
            steps.append(_Step("StartTLS", ok=True, ms=timings["starttls"], detail="Encrypted"))
        name = "StartTLS" if starttls and "connect" in timings and "starttls" not in timings else "Bind"
        steps.append(_Step(name, ok=False, ms=failed_ms, error=exc.message))
        if name == "StartTLS" and exc.kind == "certificate":
            steps[-1].error = f"Certificate not trusted: {exc.message}"
            der = fetch_peer_certificate(endpoint, options)
            host["certificate"] = describe_certificate(der, trusted=False) if der else None
        return done()
    if options.use_starttls and not endpoint.use_ssl:
        steps.append(
            _Step(
                "StartTLS",
                ok=True,
                ms=timings.get("starttls", 0.0),
                detail=session.tls_version or "Encrypted",
            )
        )
        der = session.peer_certificate_der()
        if der:
            host["certificate"] = describe_certificate(der, trusted=options.verify_certificate)
    try:
        identity = session.who_am_i()
    except DirectoryError:
        identity = None
    who = identity or options.bind_user or "anonymous"
    steps.append(_Step("Bind", ok=True, ms=timings.get("bind", 0.0), detail=f"Bound as {who}"))
    _certificate_warnings(host, warnings)
    return done(session)


def _tls_step(
    step: _Step, sock: socket.socket, endpoint: Endpoint, options: SessionOptions, host: dict[str, Any]
) -> bool:
    """The LDAPS handshake with the session's own verification; records the certificate either way."""
    started = time.perf_counter()
    try:
        context = make_ssl_context(options.verify_certificate, options.ca_bundle_pem)
    except DirectoryError as exc:
        step.error = exc.message
        return False
    sock.settimeout(options.timeout_seconds)
    try:
        with context.wrap_socket(sock, server_hostname=endpoint.host) as tls:
            step.ms = _elapsed_ms(started)
            der = tls.getpeercert(binary_form=True)
            cipher = tls.cipher()
            step.detail = f"{tls.version()}, {cipher[0] if cipher else 'unknown cipher'}"
    except ssl.SSLCertVerificationError as exc:
        step.ms = _elapsed_ms(started)
        step.error = (
            f"Certificate not trusted: {exc.verify_message or exc.reason} — add the CA under Trusted CA "
            "certificates, or check the host name"
        )
        untrusted = fetch_peer_certificate(endpoint, options)
        host["certificate"] = describe_certificate(untrusted, trusted=False) if untrusted else None
        return False
    except TimeoutError:
        step.ms = _elapsed_ms(started)
        step.error = f"No answer from {endpoint.where} within {options.timeout_seconds:g} s (TLS handshake)"
        return False
    except (ssl.SSLError, OSError) as exc:
        step.ms = _elapsed_ms(started)
        reason = exc.reason if isinstance(exc, ssl.SSLError) and exc.reason else exc
        step.error = (
            f"The TLS handshake with {endpoint.where} failed ({reason}) — check that the port speaks LDAPS "
            "(usually 636), or use ldap:// with StartTLS"
        )
        return False
    step.ok = True
    if der:
        host["certificate"] = describe_certificate(der, trusted=options.verify_certificate)
    return True


def _certificate_warnings(host: dict[str, Any], warnings: list[str]) -> None:
    cert = host.get("certificate")
    if cert and cert["days_left"] < CERTIFICATE_WARNING_DAYS:
        when = "has expired" if cert["days_left"] < 0 else f"expires in {cert['days_left']} days"
        warnings.append(f"The certificate of {host['url']} {when}: renew it before the sync stops working")


def _show_values(
    name: str, values: list[Value], *, guid_attribute: str, decode_guid: Callable[[bytes | str], str]
) -> list[str]:
    """Values for display: secrets hidden, the binary GUID as text, other binary as b64:..., long text cut."""
    if is_secret_attribute(name):
        return [HIDDEN]
    shown: list[str] = []
    for value in values:
        if isinstance(value, bytes):
            if name.lower() == guid_attribute.lower():
                text = decode_guid(value)
            else:
                text = "b64:" + base64.b64encode(value).decode("ascii")
        else:
            text = value
        shown.append(text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS] + "…")
    return shown


def _normalized(label: str, value: str, errors: list[str]) -> str | None:
    try:
        return normalize_filter(value)
    except FilterError as exc:
        errors.append(f"The {label} filter is not valid: {exc}")
        return None


def _check_data(session: DirectorySession, settings: DirectorySettings, result: dict[str, Any]) -> None:
    """Root DSE, identity readability, counts and a sample, on the session that bound first."""
    errors: list[str] = result["errors"]
    warnings: list[str] = result["warnings"]
    try:
        root = session.root_dse()
    except DirectoryError as exc:
        warnings.append(f"Cannot read the server's root DSE: {exc.message}")
    else:
        result["root_dse"] = root.as_dict()
        if not root.paged_results:
            warnings.append(
                "The server does not announce paged results: a large directory may be cut at its size limit"
            )
    base = settings.base_dn.strip()
    if not base:
        return
    try:
        if session.read_entry(base, ["1.1"]) is None:
            errors.append(f"The base DN {base} does not exist on the server: check the DN")
            return
    except DirectoryError as exc:
        errors.append(exc.message)
        return

    users_filter = _normalized("user", settings.effective_account_filter, errors)
    groups_filter = _normalized("group", settings.effective_group_filter, errors)
    guid = settings.effective_guid_attribute
    stamp = settings.effective_change_stamp_attribute
    binary = [guid] if settings.effective_guid_is_binary else []
    profile = settings.profile

    def decode_guid(value: bytes | str) -> str:
        return profile.decode_guid(value, is_binary=settings.effective_guid_is_binary)

    result["identity"] = _identity(
        session, base, users_filter, guid, stamp, binary, decode_guid, warnings, errors
    )

    deadline = time.monotonic() + COUNT_BUDGET_S
    counts: dict[str, Any] = {
        "base_dn": base,
        "entries": None,
        "entries_complete": False,
        "users": None,
        "users_complete": False,
        "users_filter": users_filter or settings.effective_account_filter,
        "groups": None,
        "groups_complete": False,
        "groups_filter": groups_filter or settings.effective_group_filter,
    }
    result["counts"] = counts
    page = max(1, min(settings.page_size or 500, 1000))
    for key, search_filter, share in (
        ("entries", ALL_OBJECTS, 3),
        ("users", users_filter, 2),
        ("groups", groups_filter, 1),
    ):
        if search_filter is None:
            continue
        budget = max(0.5, (deadline - time.monotonic()) / share)
        try:
            counts[key], counts[f"{key}_complete"] = session.count(
                base, search_filter, time_budget_s=budget, page_size=page
            )
        except DirectoryError as exc:
            errors.append(f"Counting {key} failed: {exc.message}")
            if exc.kind in ("timeout", "connection_lost"):
                return
        if not counts[f"{key}_complete"] and counts[key] is not None:
            warnings.append(f"Counting {key} stopped after {budget:.1f} s: {counts[key]} so far")
    if counts["users"] == 0:
        warnings.append(
            f"No entry under {base} matches the user filter {users_filter}: no account would be synchronized"
        )

    if users_filter is None:
        return
    attributes = sample_attributes(settings)
    secrets = [name for name in attributes if is_secret_attribute(name)]
    if secrets:
        warnings.append(
            f"The settings make the sync read {', '.join(secrets)}, which may hold passwords or keys: take "
            "them out of the vCard map and the username attribute (the sample shows them as hidden)"
        )
    sample: list[dict[str, Any]] = result["sample"]
    try:
        for entry in session.paged_search(
            base,
            users_filter,
            attributes,
            page_size=SAMPLE_SIZE,
            size_limit=SAMPLE_SIZE,
            binary_attributes=binary,
        ):
            sample.append(_sample_entry(entry, guid, decode_guid))
    except DirectoryError as exc:
        errors.append(f"Reading sample users failed after {len(sample)} entries: {exc.message}")


def _sample_entry(entry: Entry, guid: str, decode_guid: Callable[[bytes | str], str]) -> dict[str, Any]:
    return {
        "dn": entry.dn,
        "attributes": {
            name: _show_values(name, values, guid_attribute=guid, decode_guid=decode_guid)
            for name, values in entry.attributes.items()
        },
    }


def _identity(
    session: DirectorySession,
    base: str,
    users_filter: str | None,
    guid: str,
    stamp: str,
    binary: list[str],
    decode_guid: Callable[[bytes | str], str],
    warnings: list[str],
    errors: list[str],
) -> dict[str, Any]:
    """Whether the bind user can read the GUID and change-stamp attributes on a few entries."""
    identity: dict[str, Any] = {
        "guid_attribute": guid,
        "guid_readable": False,
        "guid_example": None,
        "change_stamp_attribute": stamp,
        "change_stamp_readable": False,
        "warning": None,
        "probed_entries": 0,
    }
    entries: list[Entry] = []
    try:
        for search_filter in [f for f in (users_filter, ALL_OBJECTS) if f]:
            entries = list(
                session.paged_search(
                    base,
                    search_filter,
                    [guid, stamp],
                    page_size=IDENTITY_PROBE_SIZE,
                    size_limit=IDENTITY_PROBE_SIZE,
                    binary_attributes=binary,
                )
            )
            if entries:
                break
    except DirectoryError as exc:
        errors.append(f"Reading {guid} and {stamp} failed: {exc.message}")
        return identity
    identity["probed_entries"] = len(entries)
    with_guid = [e for e in entries if e.has(guid)]
    identity["guid_readable"] = bool(with_guid)
    identity["change_stamp_readable"] = any(e.has(stamp) for e in entries)
    if with_guid:
        first = with_guid[0].first(guid)
        if is_secret_attribute(guid):
            identity["guid_example"] = HIDDEN
        else:
            identity["guid_example"] = decode_guid(first) if first is not None else None
    problems = [
        f"The bind user cannot read {name}: every sync will reprocess every entry (slow on large directories)"
        for name, readable in ((guid, identity["guid_readable"]), (stamp, identity["change_stamp_readable"]))
        if not readable
    ]
    if problems:
        identity["warning"] = "; ".join(problems)
        warnings.extend(problems)
    return identity


def _scrub(value: Any, secret: str) -> Any:
    """The result with the password masked wherever it might have slipped in."""
    if isinstance(value, str):
        return value.replace(secret, "********")
    if isinstance(value, list):
        return [_scrub(item, secret) for item in value]
    if isinstance(value, dict):
        return {key: _scrub(item, secret) for key, item in value.items()}
    return value


def _summary(result: dict[str, Any], bound: dict[str, Any] | None, options: SessionOptions | None) -> str:
    errors: list[str] = result["errors"]
    hosts: list[dict[str, Any]] = result["hosts"]
    failed = [h for h in hosts if not h["ok"]]
    if bound is None:
        if not hosts:
            return errors[0] if errors else "The directory is not configured."
        return f"Cannot use the directory: {errors[0]}" if errors else "Cannot use the directory."
    counts = result.get("counts") or {}
    who = f" as {options.bind_user}" if options and options.bind_user else " anonymously"
    if failed:
        other = failed[0]
        step_error = next((s["error"] for s in other["steps"] if not s["ok"]), "it failed")
        return (
            f"Connected to the {bound['role']} host {bound['url']}{who}, but the {other['role']} host "
            f"{other['url']} failed: {step_error}"
        )
    if errors:
        return f"Connected to {bound['url']}{who}, but {errors[0][0].lower()}{errors[0][1:]}"
    if counts.get("users") is not None:
        more = "" if counts.get("users_complete") else "+"
        groups = counts.get("groups")
        group_text = (
            f" and {groups}{'' if counts.get('groups_complete') else '+'} groups"
            if groups is not None
            else ""
        )
        users = f"{counts['users']}{more} users{group_text}"
        text = f"Connected to {bound['url']}{who}: {users} under {counts['base_dn']}."
    else:
        text = f"Connected to {bound['url']}{who}."
    warnings = result["warnings"]
    if warnings:
        text += f" {len(warnings)} warning{'s' if len(warnings) > 1 else ''}."
    return text


def run_connection_check(settings: DirectorySettings) -> dict[str, Any]:
    """Test connection: each host step by step, then root DSE, identity, counts and a sample (JSON-ready)."""
    result: dict[str, Any] = {
        "ok": False,
        "summary": "",
        "checked_at": _now().isoformat(),
        "hosts": [],
        "root_dse": None,
        "identity": None,
        "counts": None,
        "sample": [],
        "kerberos": None,
        "errors": [],
        "warnings": [],
    }
    errors: list[str] = result["errors"]
    warnings: list[str] = result["warnings"]
    try:
        options = options_from_settings(settings)
    except DirectoryError as exc:
        errors.append(exc.message)
        result["summary"] = _summary(result, None, None)
        return result
    if not settings.base_dn.strip():
        errors.append("No base DN is configured: enter the DN under which the users and groups are")
    if not options.verify_certificate and (options.use_starttls or any(e.use_ssl for e in options.endpoints)):
        warnings.append(
            "The server's certificate is not verified: anyone on the network path could pose as the directory"
        )
    plain = [e.url for e in options.endpoints if not e.use_ssl]
    if options.bind_password and plain and not options.use_starttls and options.allow_plain_bind:
        warnings.append(
            f"The bind password travels unencrypted to {', '.join(plain)} (“Allow unencrypted bind” is on): "
            f"{ENCRYPTION_FIX}, then turn “Allow unencrypted bind” off"
        )

    session: DirectorySession | None = None
    bound: dict[str, Any] | None = None
    for role, endpoint in zip(("primary", "backup"), options.endpoints, strict=False):
        host, host_session = _check_host(role, endpoint, options, warnings)
        result["hosts"].append(host)
        if not host["ok"]:
            failed = next((s for s in host["steps"] if not s["ok"]), None)
            errors.append(
                f"{role.capitalize()} host {endpoint.url}: {failed['error'] if failed else 'failed'}"
            )
        if host_session is not None and session is None:
            session, bound = host_session, host
        elif host_session is not None:
            host_session.close()
    if session is not None:
        with session:
            _check_data(session, settings, result)
    if settings.sso_active and settings.sso_service_name.strip():
        result["kerberos"] = check_service(
            settings.sso_service_name, bind_user=options.bind_user, bind_password=options.bind_password
        )
        errors.extend(f"Single sign-on: {error}" for error in result["kerberos"]["errors"])
    result["ok"] = session is not None and not errors
    result["summary"] = _summary(result, bound, options)
    if len(options.bind_password) >= 4:
        result = _scrub(result, options.bind_password)
    return result


def _ms(value: Any) -> str:
    return f"{float(value or 0):7.1f} ms"


def check_to_text(result: dict[str, Any]) -> str:
    """The check as plain text for a terminal (manage.py directory_test DOMAIN)."""
    lines = [
        f"Test connection: {'OK' if result.get('ok') else 'FAILED'}",
        str(result.get("summary", "")),
        f"Checked at {result.get('checked_at', '')}",
    ]
    for host in result.get("hosts") or []:
        lines += [
            "",
            f"{str(host['role']).capitalize()} host {host['url']}: {'ok' if host['ok'] else 'FAILED'}",
        ]
        for step in host.get("steps") or []:
            mark = "ok  " if step["ok"] else "FAIL"
            text = step["detail"] if step["ok"] else step["error"]
            lines.append(f"  [{mark}] {step['name']:<15} {_ms(step['ms'])}  {text}")
        cert = host.get("certificate")
        if cert:
            trust = "" if cert.get("trusted") else " (NOT TRUSTED)"
            lines.append(f"  Certificate{trust}: {cert['subject']}")
            lines.append(f"    issued by {cert['issuer']}")
            lines.append(f"    valid until {cert['not_after']} ({cert['days_left']} days)")
            if cert.get("san"):
                lines.append(f"    names: {', '.join(cert['san'])}")
    kerberos = result.get("kerberos")
    if kerberos:
        lines += ["", f"Single sign-on {kerberos['service']}: {'ok' if kerberos['ok'] else 'FAILED'}"]
        lines.append(f"  Keytab {kerberos['keytab']}: {len(kerberos['keys'])} keys")
        lines += [f"    {k['principal']} version {k['kvno']} {k['enctype']}" for k in kerberos["keys"]]
        if kerberos["kdc"]:
            lines.append(f"  KDC: {kerberos['kdc']}")
        lines += [f"  {error}" for error in kerberos["errors"] if error != kerberos["kdc"]]
    root = result.get("root_dse")
    if root:
        vendor = " ".join(x for x in (root.get("vendor_name"), root.get("vendor_version")) if x)
        features = [
            name for name in ("paged_results", "dirsync", "syncrepl", "server_side_sort") if root.get(name)
        ]
        lines += [
            "",
            f"Server: {root.get('server_kind')}{f' ({vendor})' if vendor else ''}",
            f"  Naming contexts: {', '.join(root.get('naming_contexts') or []) or '-'}",
            f"  Features: {', '.join(features) or '-'}",
        ]
    identity = result.get("identity")
    if identity:
        lines += [
            "",
            "Identity:",
            f"  {identity['guid_attribute']}: {'readable' if identity['guid_readable'] else 'NOT readable'}",
            f"  {identity['change_stamp_attribute']}: "
            f"{'readable' if identity['change_stamp_readable'] else 'NOT readable'}",
        ]
    counts = result.get("counts")
    if counts:

        def shown(key: str) -> str:
            value = counts.get(key)
            if value is None:
                return "unknown"
            return f"{value}{'' if counts.get(f'{key}_complete') else '+ (counting stopped)'}"

        lines += [
            "",
            f"Under {counts['base_dn']}:",
            f"  entries: {shown('entries')}",
            f"  users:   {shown('users')}  {counts.get('users_filter', '')}",
            f"  groups:  {shown('groups')}  {counts.get('groups_filter', '')}",
        ]
    sample = result.get("sample") or []
    if sample:
        lines += ["", f"First {len(sample)} users:"]
        for entry in sample:
            lines.append(f"  {entry['dn']}")
            for name, values in entry["attributes"].items():
                lines.append(f"    {name}: {'; '.join(values)}")
    for title, items in (("Warnings", result.get("warnings")), ("Errors", result.get("errors"))):
        if items:
            lines += ["", f"{title}:"] + [f"  - {item}" for item in items]
    return "\n".join(lines) + "\n"
