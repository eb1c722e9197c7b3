"""The Kerberos acceptor of single sign-on: a SPNEGO token in, the client's principal out (no web code here,
so that other protocols can use it too). Keys come from the keytab named after the service principal in the
keytab folder (CONFIG_DIR/_keytabs/HTTP#host@REALM, IceWarp's naming), uploaded or placed there by hand."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import gssapi
import gssapi.exceptions

from directory_sync.auth.krb5_tokens import TokenError, error_code, ticket_facts
from directory_sync.keytabs import KeytabEntry, KeytabError, enctype_name, file_name_for, read_keytab_file
from directory_sync.services.keytabs import keytab_folder

logger = logging.getLogger(__name__)

DEFAULT_SERVICE: Final = "HTTP"

# Kerberos error codes (RFC 4120 §7.5.9) an acceptor answers with, in a KRB-ERROR or as GSS minor statuses
# (MIT numbers its com_err table krb5 from this base).
_MIT_BASE: Final = -1765328384
AP_ERR_BAD_INTEGRITY: Final = 31
AP_ERR_TKT_EXPIRED: Final = 32
AP_ERR_TKT_NYV: Final = 33
AP_ERR_REPEAT: Final = 34
AP_ERR_NOT_US: Final = 35
AP_ERR_SKEW: Final = 37
AP_ERR_MODIFIED: Final = 41
AP_ERR_BADKEYVER: Final = 44
AP_ERR_NOKEY: Final = 45


class TicketRefused(Exception):
    """The token does not sign anyone in; code says why (for the sign-in record), message says what to fix."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Acceptance:
    """A token accepted: who (principal, its name and realm), for which service, and the answer token that
    completes mutual authentication (sent back in WWW-Authenticate)."""

    principal: str
    service: str
    answer: bytes | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        """The principal without its realm (alice of alice@EXAMPLE.COM)."""
        return self.principal.rpartition("@")[0] or self.principal

    @property
    def realm(self) -> str:
        return self.principal.rpartition("@")[2]


def service_principal(service_name: str) -> str:
    """The service principal of a domain's service name: SERVICE/host@REALM as given, or the seed's
    vhost@ADSERVER form, which is HTTP/vhost@ADSERVER."""
    text = service_name.strip()
    if "/" not in text:
        text = f"{DEFAULT_SERVICE}/{text}"
    return text


def realm_of(principal: str) -> str:
    return principal.rpartition("@")[2]


def keytab_file(principal: str) -> Path:
    """Where the keys of a service principal are: CONFIG_DIR/_keytabs/SERVICE#host@REALM."""
    return keytab_folder() / file_name_for(principal)


def keytab_entries(principal: str) -> list[KeytabEntry]:
    """The keys (without key bytes) in the service principal's keytab; TicketRefused when there is none."""
    path = keytab_file(principal)
    try:
        return read_keytab_file(path)
    except FileNotFoundError:
        raise TicketRefused(
            "no_keytab",
            f"There is no keytab for {principal}: upload it on the Directory Service tab or place the file "
            f"{path.name} in {path.parent} (exported by the domain controller for that principal)",
        ) from None
    except KeytabError as exc:
        raise TicketRefused("bad_keytab", f"The keytab {path.name} cannot be read: {exc}") from None


def _same_principal(a: str, b: str) -> bool:
    """Kerberos names are case-sensitive, but host names are not (browsers lower-case them)."""
    name_a, _, realm_a = a.rpartition("@")
    name_b, _, realm_b = b.rpartition("@")
    return realm_a == realm_b and name_a.lower() == name_b.lower()


def accept(token: bytes, *, service: str) -> Acceptance:
    """Accept a SPNEGO (or raw Kerberos) token for the service principal with its keytab; TicketRefused says
    why not: no keytab, a ticket for another service, no key of the ticket's version or encryption type, clock
    skew, a ticket expired or replayed, a token that is not Kerberos."""
    try:
        ticket = ticket_facts(token)
    except TokenError as exc:
        raise TicketRefused("bad_token", f"The Negotiate token cannot be used: {exc}") from None
    if not _same_principal(ticket.service, service):
        raise TicketRefused(
            "wrong_service",
            f"The ticket is for {ticket.service}, not for {service}: the browser asked for a ticket to "
            "another "
            "host name than the one the domain's service name gives, or to another realm",
        )
    entries = keytab_entries(service)
    own = [entry for entry in entries if _same_principal(entry.principal, service)]
    path = keytab_file(service)
    if not own:
        held = ", ".join(sorted({entry.principal for entry in entries})) or "nothing"
        raise TicketRefused(
            "no_keytab", f"The keytab {path.name} holds no key for {service} (it holds {held})"
        )
    if ticket.kvno is not None and ticket.kvno not in {entry.kvno for entry in own}:
        versions = ", ".join(str(kvno) for kvno in sorted({entry.kvno for entry in own}))
        raise TicketRefused(
            "wrong_key",
            f"The ticket was made with key version {ticket.kvno} of {service}, which the keytab lacks (it "
            "holds "
            f"version {versions}): the service account's password changed since the export; export it again",
        )
    usable = [entry for entry in own if ticket.kvno is None or entry.kvno == ticket.kvno]
    if ticket.enctype not in {entry.enctype for entry in usable}:
        held = ", ".join(sorted({entry.enctype_name for entry in usable}))
        raise TicketRefused(
            "wrong_key",
            f"The ticket is encrypted with {enctype_name(ticket.enctype)}, for which the keytab of "
            f"{service} has "
            f"no key (it holds {held}): export the keytab with that encryption type",
        )
    try:
        credentials = gssapi.Credentials(
            usage="accept",
            name=gssapi.Name(service, gssapi.NameType.kerberos_principal),
            store={"keytab": str(path)},
        )
        context = gssapi.SecurityContext(creds=credentials, usage="accept")
        answer = context.step(token)
        # python-gssapi keeps a failure that came with an answer token (MIT answers clock skew with a
        # KRB-ERROR, so that the client may correct its clock) and raises it here.
        complete = context.complete
    except gssapi.exceptions.GSSError as exc:
        said = " ".join(str(exc).split())
        raise _refusal(_code_of(exc, said), said, service=service) from None
    if not complete:
        code = error_code(answer or b"")
        raise _refusal(code, f"Kerberos error {code}", service=service)
    return Acceptance(principal=str(context.initiator_name), service=service, answer=answer or None)


_WORDS: Final[tuple[tuple[str, int], ...]] = (
    ("clock skew", AP_ERR_SKEW),
    ("not yet valid", AP_ERR_TKT_NYV),
    ("ticket expired", AP_ERR_TKT_EXPIRED),
    ("replay", AP_ERR_REPEAT),
    ("integrity", AP_ERR_BAD_INTEGRITY),
    ("cannot decrypt", AP_ERR_BAD_INTEGRITY),
    ("key version", AP_ERR_BADKEYVER),
    ("wrong principal", AP_ERR_NOT_US),
)


def _code_of(exc: gssapi.exceptions.GSSError, said: str) -> int | None:
    """The Kerberos error code of a GSS failure: from MIT's minor status when it is one of its krb5 table,
    else from MIT's words (its GSS mechanism reports some under a table of its own)."""
    minor = getattr(exc, "min_code", 0) or 0
    minor = minor - 2**32 if minor >= 2**31 else minor  # python-gssapi reports it unsigned
    if 0 < minor - _MIT_BASE < 128:
        return minor - _MIT_BASE
    lowered = said.lower()
    return next((code for words, code in _WORDS if words in lowered), None)


def _refusal(code: int | None, said: str, *, service: str) -> TicketRefused:
    """The refusal for a Kerberos error code (RFC 4120 numbering), in plain words."""
    logger.info("Kerberos token refused for %s: %s (code %s)", service, said, code)
    if code == AP_ERR_SKEW:
        return TicketRefused(
            "clock_skew",
            "The clocks of this server and of the person's computer differ by more than Kerberos allows "
            "(5 minutes): synchronize both with the domain controller (NTP)",
        )
    if code == AP_ERR_TKT_NYV:
        return TicketRefused(
            "clock_skew",
            "The Kerberos ticket is not valid yet by this server's clock: synchronize the clocks",
        )
    if code == AP_ERR_TKT_EXPIRED:
        return TicketRefused("expired", "The Kerberos ticket has expired: sign in to the computer again")
    if code == AP_ERR_REPEAT:
        return TicketRefused(
            "replay", "The same Kerberos token was presented twice: it is refused the second time"
        )
    if code in (AP_ERR_BAD_INTEGRITY, AP_ERR_MODIFIED, AP_ERR_BADKEYVER, AP_ERR_NOKEY):
        return TicketRefused(
            "wrong_key",
            f"The keytab of {service} holds other keys than the domain controller used: export it again",
        )
    if code == AP_ERR_NOT_US or "wrong principal" in said.lower():
        return TicketRefused("wrong_service", f"The ticket is not for {service}")
    return TicketRefused("refused", f"The Kerberos ticket was refused ({said})")


def check_service(service_name: str, *, bind_user: str = "", bind_password: str = "") -> dict[str, Any]:
    """Test connection's Kerberos step for a service name: its keytab (principal, key versions, encryption
    types) and whether the realm's KDC answers with a ticket for the service that the keytab reads (asked as
    the service itself, or, where the KDC does not let a service sign in, as the domain's bind user).
    JSON-ready; "errors" says what to fix."""
    service = service_principal(service_name)
    path = keytab_file(service)
    report: dict[str, Any] = {
        "ok": False,
        "service": service,
        "keytab": path.name,
        "keys": [],
        "kdc_ok": False,
        "kdc": "",
        "errors": [],
    }
    try:
        entries = keytab_entries(service)
    except TicketRefused as exc:
        report["errors"].append(exc.message)
        return report
    own = [entry for entry in entries if _same_principal(entry.principal, service)]
    report["keys"] = [
        {"principal": entry.principal, "kvno": entry.kvno, "enctype": entry.enctype_name} for entry in entries
    ]
    if not own:
        held = ", ".join(sorted({entry.principal for entry in entries})) or "nothing"
        report["errors"].append(f"The keytab {path.name} holds no key for {service} (it holds {held})")
    report["kdc_ok"], report["kdc"] = _probe_kdc(
        service, path, bind_user=bind_user, bind_password=bind_password
    )
    if not report["kdc_ok"]:
        report["errors"].append(report["kdc"])
    report["ok"] = not report["errors"]
    return report


def _user_principal(bind_user: str, realm: str) -> str:
    """The bind user as a principal of the realm (DOMAIN\\name or name@suffix → name@REALM); "" for a DN."""
    user = bind_user.strip()
    if "=" in user or not user:
        return ""
    if "\\" in user:
        user = user.rpartition("\\")[2]
    return f"{user.partition('@')[0]}@{realm}"


def _ticket_for(service: str, credentials: gssapi.Credentials) -> bytes:
    target = gssapi.Name(service, gssapi.NameType.kerberos_principal)
    return gssapi.SecurityContext(name=target, creds=credentials, usage="initiate").step() or b""


def _probe_kdc(service: str, path: Path, *, bind_user: str, bind_password: str) -> tuple[bool, str]:
    """Ask the realm's KDC for a ticket to the service, as the service (keys from the keytab), else as the
    bind user, and read it with the keytab."""
    realm = realm_of(service)
    name = gssapi.Name(service, gssapi.NameType.kerberos_principal)
    store: dict[bytes | str, bytes | str] = {
        "client_keytab": str(path),
        "ccache": f"MEMORY:keytab-check-{uuid.uuid4().hex}",
    }
    try:
        credentials = gssapi.Credentials(usage="initiate", name=name, store=store)
        token = _ticket_for(service, credentials)
    except gssapi.exceptions.GSSError as exc:
        said = " ".join(str(exc).split())
        lowered = said.lower()
        if "not found in kerberos database" in lowered:
            # Active Directory lets only users and computers sign in: ask as the bind user instead.
            return _probe_as_user(service, realm, bind_user=bind_user, bind_password=bind_password)
        if "cannot contact any kdc" in lowered or "cannot find kdc" in lowered or "cannot resolve" in lowered:
            return False, (
                f"No KDC of {realm} answers: list it in krb5.conf ([realms] {realm} = {{ kdc = host }}) or "
                f"publish DNS SRV records _kerberos._tcp.{realm.lower()}"
            )
        if "preauthentication failed" in lowered or "password incorrect" in lowered or "integrity" in lowered:
            return False, (
                f"The KDC of {realm} answers, but the keytab's key of {service} is not the current one: "
                "export "
                "the keytab again"
            )
        return False, f"The KDC of {realm} could not be asked: {said}"
    try:
        accept(token, service=service)
    except TicketRefused as exc:
        return (
            False,
            f"The KDC of {realm} issued a ticket for {service} that this keytab cannot read: {exc.message}",
        )
    return True, f"The KDC of {realm} answers; a ticket it issued for {service} is accepted with this keytab"


def _probe_as_user(service: str, realm: str, *, bind_user: str, bind_password: str) -> tuple[bool, str]:
    user = _user_principal(bind_user, realm)
    if not user or not bind_password:
        return True, (
            f"The KDC of {realm} answers; it gives {service} itself no ticket and the bind user is no "
            "Kerberos principal, so the keytab's keys were not tried"
        )
    try:
        acquired = gssapi.raw.acquire_cred_with_password(
            gssapi.Name(user, gssapi.NameType.kerberos_principal), bind_password.encode(), usage="initiate"
        )
        token = _ticket_for(service, gssapi.Credentials(acquired.creds))
    except gssapi.exceptions.GSSError as exc:
        said = " ".join(str(exc).split())
        if "preauthentication failed" in said.lower():
            said = "the KDC refused the bind password"
        return False, f"The KDC of {realm} gave the bind user {user} no ticket for {service}: {said}"
    try:
        accept(token, service=service)
    except TicketRefused as refused:
        return (
            False,
            f"A ticket the KDC of {realm} issued for {service} is not read by this keytab: {refused.message}",
        )
    return (
        True,
        f"The KDC of {realm} answers; a ticket it issued to {user} for {service} is read with this keytab",
    )
